/*
 * json.h - a small, strict JSON (RFC 8259) parser into a tree.
 *
 * Used for safetensors headers, fixture metadata and configuration. The
 * parser accepts exactly the RFC grammar: no comments, no trailing commas,
 * no NaN/Infinity, no leading zeros, raw bytes must be valid UTF-8 and
 * control characters must be escaped; \u escapes (surrogate pairs included)
 * become UTF-8; duplicate object keys are an error. Nesting deeper than
 * JSON_MAX_DEPTH or input longer than JSON_MAX_BYTES is refused. On error
 * the parser reports what went wrong and the byte offset where it did.
 *
 * Numbers keep their double value and, when the literal is an integer that
 * fits in int64 (or the double is integral and exact), the exact int64.
 * A tree owns all its strings; free it with json_free().
 */
#ifndef ENCORE_JSON_H
#define ENCORE_JSON_H

#include <stddef.h>
#include <stdint.h>

#define JSON_MAX_DEPTH 128
#define JSON_MAX_BYTES ((size_t)1 << 30)

enum json_type {
    JSON_NULL = 0,
    JSON_BOOL,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT,
};

struct json {
    enum json_type type;
    int boolean;  /* JSON_BOOL */
    double num;   /* JSON_NUMBER */
    int64_t ival; /* JSON_NUMBER: exact value when is_int */
    int is_int;
    char *str;           /* JSON_STRING: UTF-8, NUL-terminated (may hold \u0000) */
    size_t len;          /* JSON_STRING: bytes in str; ARRAY/OBJECT: element count */
    struct json **items; /* ARRAY/OBJECT: len values, in document order */
    char **keys;         /* OBJECT: len keys, NUL-terminated */
};

/* Why a parse failed: a message and the byte offset into the input. */
struct json_error {
    size_t offset;
    char msg[120];
};

/*
 * json_parse() parses text[0..n) (one value, optional surrounding
 * whitespace) into a new tree in *out. Returns 0, or ENC_EINVAL with err
 * filled (err may be NULL). The caller frees *out with json_free().
 */
int json_parse(const char *text, size_t n, struct json **out, struct json_error *err);
/* json_free() frees a tree; accepts NULL and NULLs *j. */
void json_free(struct json **j);

/* json_get() returns the value of key in object j, or NULL (also when j is
 * NULL or not an object). */
const struct json *json_get(const struct json *j, const char *key);
/* json_at() returns element i of array or object j, or NULL. */
const struct json *json_at(const struct json *j, size_t i);
/* json_key_at() returns the i-th key of object j, or NULL. */
const char *json_key_at(const struct json *j, size_t i);
/* json_len() counts the elements of an array or object; 0 for others. */
size_t json_len(const struct json *j);
/* json_str() returns the string of j, or NULL when j is not a string. */
const char *json_str(const struct json *j);
/* json_num() stores the number j in *out: 0, or ENC_EINVAL when j is not a
 * number. */
int json_num(const struct json *j, double *out);
/* json_int() stores j in *out when it is an integral number that fits in
 * int64: 0, or ENC_EINVAL. */
int json_int(const struct json *j, int64_t *out);
/* json_bool() stores 0/1: 0, or ENC_EINVAL when j is not true/false. */
int json_bool(const struct json *j, int *out);
/* json_type_name() names a type ("object", "string", ...). */
const char *json_type_name(enum json_type t);

#endif
