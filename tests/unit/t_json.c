/* t_json.c - the strict JSON parser: values, escapes, limits, errors with offsets. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/json.h"
#include "tests/tap.h"

static struct json *parse(const char *s)
{
    struct json *j = NULL;
    struct json_error e;
    if (json_parse(s, strlen(s), &j, &e))
        diag("  parse error at %zu: %s", e.offset, e.msg);
    return j;
}

/* bad() checks that s is refused at byte `at` with a message holding msg. */
static void bad(const char *s, size_t at, const char *msg)
{
    struct json *j = NULL;
    struct json_error e;
    int rc = json_parse(s, strlen(s), &j, &e);
    ok(rc == ENC_EINVAL && !j && e.offset == at && strstr(e.msg, msg), "refuses %.40s (at %zu: %s)",
       s, e.offset, e.msg);
    json_free(&j);
}

int main(void)
{
    struct json *j =
        parse(" {\"a\": [1, -2.5e3, true, false, null, \"x\"], \"b\": {\"c\": 9007199254740993},"
              " \"big\": 123456789012345678, \"e\": 1e2, \"f\": 0.5} ");
    ok(j && j->type == JSON_OBJECT && json_len(j) == 5, "object of 5 members");
    const struct json *a = json_get(j, "a");
    double d;
    int64_t i;
    int bo;
    is_int(json_len(a), 6, "array of 6");
    ok(json_int(json_at(a, 0), &i) == 0 && i == 1, "int 1");
    ok(json_num(json_at(a, 1), &d) == 0 && d == -2500.0, "-2.5e3");
    ok(json_int(json_at(a, 1), &i) == 0 && i == -2500, "-2.5e3 is integral");
    ok(json_bool(json_at(a, 2), &bo) == 0 && bo == 1, "true");
    ok(json_bool(json_at(a, 3), &bo) == 0 && bo == 0, "false");
    ok(json_at(a, 4)->type == JSON_NULL, "null");
    is_str(json_str(json_at(a, 5)), "x", "string");
    ok(json_int(json_get(json_get(j, "b"), "c"), &i) == 0 && i == 9007199254740993LL,
       "2^53+1 exact as int64");
    ok(json_int(json_get(j, "big"), &i) == 0 && i == 123456789012345678LL, "18-digit int exact");
    ok(json_int(json_get(j, "e"), &i) == 0 && i == 100, "1e2 integral");
    ok(json_int(json_get(j, "f"), &i) == ENC_EINVAL, "0.5 is not an int");
    ok(json_get(j, "zz") == NULL && json_get(a, "a") == NULL && json_at(a, 6) == NULL,
       "absent lookups give NULL");
    ok(json_str(json_get(j, "a")) == NULL && json_num(a, &d) == ENC_EINVAL, "type-checked getters");
    is_str(json_key_at(j, 1), "b", "keys in document order");
    json_free(&j);
    ok(j == NULL, "json_free NULLs the pointer");

    j = parse("\"a\\u00e9\\u4e2d\\ud83d\\ude00\\n\\\"\\\\\\/\\t\\b\\f\\r\"");
    ok(j && strcmp(j->str, "a\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80\n\"\\/\t\b\f\r") == 0,
       "escapes and surrogate pair decode to UTF-8");
    json_free(&j);
    j = parse("\"a\\u0000b\"");
    ok(j && j->len == 3 && j->str[1] == 0 && j->str[2] == 'b', "\\u0000 kept with its length");
    json_free(&j);
    j = parse("\"\xc3\xa9\xf0\x9f\x98\x80\"");
    ok(j && j->len == 6, "raw UTF-8 accepted");
    json_free(&j);
    j = parse("[]");
    ok(j && j->type == JSON_ARRAY && json_len(j) == 0, "empty array");
    json_free(&j);
    j = parse("{}");
    ok(j && j->type == JSON_OBJECT && json_len(j) == 0, "empty object");
    json_free(&j);

    bad("", 0, "end of input");
    bad("   ", 3, "end of input");
    bad("{\"a\":1,}", 7, "trailing comma");
    bad("[1,]", 3, "trailing comma");
    bad("[1 2]", 3, "','");
    bad("{\"a\" 1}", 5, "':'");
    bad("{1:2}", 1, "key expected");
    bad("01", 0, "leading zero");
    bad("1.", 2, "digit expected");
    bad("1e", 2, "exponent");
    bad("-", 0, "bad number");
    bad("NaN", 0, "unexpected character");
    bad("tru", 0, "unexpected token");
    bad("\"abc", 0, "unterminated string");
    bad("\"a\tb\"", 2, "control character");
    bad("\"\\x\"", 1, "bad escape");
    bad("\"\\u12g4\"", 5, "hex digit");
    bad("\"\\ud83d\"", 1, "not followed by a low one");
    bad("\"\\ude00\"", 1, "lone low surrogate");
    bad("\"\\ud83d\\u0041\"", 1, "followed by");
    bad("\"\xc3\"", 1, "UTF-8");
    bad("\"\xed\xa0\x80\"", 1, "UTF-8"); /* encoded surrogate */
    bad("\"\xc0\xaf\"", 1, "UTF-8");     /* overlong */
    bad("{\"a\":1,\"a\":2}", 0, "duplicate key \"a\"");
    bad("[1] x", 4, "trailing data");
    bad("[1e999]", 1, "out of range");
    bad("{\"a\":[1,{\"b\":", 13, "end of input");

    /* duplicates in a big object (hashed check) */
    char big[4096];
    size_t n = 0;
    n += (size_t)snprintf(big + n, sizeof big - n, "{");
    for (int k = 0; k < 40; k++)
        n += (size_t)snprintf(big + n, sizeof big - n, "\"k%d\":%d,", k, k);
    n += (size_t)snprintf(big + n, sizeof big - n, "\"k17\":0}");
    bad(big, 0, "duplicate key \"k17\"");
    big[n - 6] = '9';
    big[n - 5] = '9';
    j = parse(big);
    ok(j && json_len(j) == 41, "41 distinct keys accepted");
    json_free(&j);

    /* depth limit */
    char deep[2 * JSON_MAX_DEPTH + 8];
    for (int k = 0; k < JSON_MAX_DEPTH; k++) {
        deep[k] = '[';
        deep[JSON_MAX_DEPTH + k] = ']';
    }
    deep[2 * JSON_MAX_DEPTH] = 0;
    j = parse(deep);
    ok(j != NULL, "nesting of %d accepted", JSON_MAX_DEPTH);
    json_free(&j);
    char deeper[2 * JSON_MAX_DEPTH + 8];
    deeper[0] = '[';
    memcpy(deeper + 1, deep, sizeof deep - 7);
    deeper[2 * JSON_MAX_DEPTH + 1] = ']';
    deeper[2 * JSON_MAX_DEPTH + 2] = 0;
    bad(deeper, JSON_MAX_DEPTH, "nesting deeper");

    /* every prefix of a document is refused, none crashes */
    const char *doc = "{\"x\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                      "\"s\":\"\\ud83d\\ude00\\u00e9\",\"n\":-1.25e-3}";
    size_t fails = 0, len = strlen(doc);
    for (size_t k = 0; k < len; k++) {
        struct json_error e;
        if (json_parse(doc, k, &j, &e) == ENC_EINVAL && !j && e.offset <= k)
            fails++;
        json_free(&j);
    }
    is_int(fails, len, "all %zu proper prefixes refused with an offset inside them", len);
    return done_testing();
}
