/*
 * json.c - strict recursive-descent JSON parser (see json.h).
 *
 * The parser walks the input once with a cursor; every failure goes through
 * fail(), which records the first error and its offset and makes every
 * caller unwind. Partially built values are owned by their parent as soon
 * as they are created, so a failure frees the whole partial tree with one
 * json_free(). Recursion depth is bounded by JSON_MAX_DEPTH.
 */
#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "xmalloc.h"

struct parser {
    const unsigned char *s;
    size_t n;
    size_t pos;
    int failed;
    struct json_error *err;
};

static __attribute__((format(printf, 3, 4))) int fail(struct parser *p, size_t at, const char *fmt,
                                                      ...)
{
    if (!p->failed && p->err) {
        va_list ap;
        p->err->offset = at;
        va_start(ap, fmt);
        vsnprintf(p->err->msg, sizeof p->err->msg, fmt, ap);
        va_end(ap);
    }
    p->failed = 1;
    return ENC_EINVAL;
}

static void skip_ws(struct parser *p)
{
    while (p->pos < p->n) {
        unsigned char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->pos++;
    }
}

/* A growable byte buffer for decoded strings. */
struct sbuf {
    char *b;
    size_t len, cap;
};

static void sbuf_put(struct sbuf *sb, const void *src, size_t k)
{
    if (sb->len + k + 1 > sb->cap) {
        size_t cap = sb->cap ? sb->cap * 2 : 32;
        while (cap < sb->len + k + 1)
            cap *= 2;
        sb->b = xrealloc(sb->b, cap);
        sb->cap = cap;
    }
    memcpy(sb->b + sb->len, src, k);
    sb->len += k;
    sb->b[sb->len] = 0;
}

static void put_utf8(struct sbuf *sb, uint32_t cp)
{
    unsigned char u[4];
    size_t k;
    if (cp < 0x80) {
        u[0] = (unsigned char)cp;
        k = 1;
    } else if (cp < 0x800) {
        u[0] = (unsigned char)(0xc0 | (cp >> 6));
        u[1] = (unsigned char)(0x80 | (cp & 0x3f));
        k = 2;
    } else if (cp < 0x10000) {
        u[0] = (unsigned char)(0xe0 | (cp >> 12));
        u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (unsigned char)(0x80 | (cp & 0x3f));
        k = 3;
    } else {
        u[0] = (unsigned char)(0xf0 | (cp >> 18));
        u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (unsigned char)(0x80 | (cp & 0x3f));
        k = 4;
    }
    sbuf_put(sb, u, k);
}

/* utf8_len() returns the length of the valid UTF-8 sequence at s[0..n), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t k;
    uint32_t cp, min;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        k = 2;
        cp = c & 0x1f;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        k = 3;
        cp = c & 0x0f;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        k = 4;
        cp = c & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (k > n)
        return 0;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return k;
}

static int hex4(struct parser *p, uint32_t *out)
{
    uint32_t v = 0;
    if (p->n - p->pos < 4)
        return fail(p, p->pos, "truncated \\u escape");
    for (int i = 0; i < 4; i++) {
        unsigned char c = p->s[p->pos + (size_t)i];
        uint32_t d;
        if (c >= '0' && c <= '9')
            d = (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = (uint32_t)(c - 'A' + 10);
        else
            return fail(p, p->pos + (size_t)i, "bad hex digit in \\u escape");
        v = v * 16 + d;
    }
    p->pos += 4;
    *out = v;
    return 0;
}

/* parse_string() decodes the string at the cursor (on the opening quote). */
static int parse_string(struct parser *p, char **out, size_t *out_len)
{
    struct sbuf sb = {0};
    size_t start = p->pos;
    p->pos++; /* opening quote */
    sbuf_put(&sb, "", 0);
    for (;;) {
        if (p->pos >= p->n) {
            fail(p, start, "unterminated string");
            goto bad;
        }
        unsigned char c = p->s[p->pos];
        if (c == '"') {
            p->pos++;
            break;
        }
        if (c < 0x20) {
            fail(p, p->pos, "control character 0x%02x in string", c);
            goto bad;
        }
        if (c >= 0x20 && c < 0x80 && c != '\\') {
            /* copy a run of plain ASCII at once */
            size_t k = 1;
            while (p->pos + k < p->n) {
                unsigned char d = p->s[p->pos + k];
                if (d < 0x20 || d >= 0x80 || d == '"' || d == '\\')
                    break;
                k++;
            }
            sbuf_put(&sb, p->s + p->pos, k);
            p->pos += k;
            continue;
        }
        if (c != '\\') {
            /* one multi-byte UTF-8 sequence, validated */
            size_t k = utf8_len(p->s + p->pos, p->n - p->pos);
            if (!k) {
                fail(p, p->pos, "invalid UTF-8 in string");
                goto bad;
            }
            sbuf_put(&sb, p->s + p->pos, k);
            p->pos += k;
            continue;
        }
        size_t esc = p->pos;
        p->pos++;
        if (p->pos >= p->n) {
            fail(p, esc, "truncated escape");
            goto bad;
        }
        c = p->s[p->pos++];
        char ch;
        switch (c) {
        case '"': ch = '"'; break;
        case '\\': ch = '\\'; break;
        case '/': ch = '/'; break;
        case 'b': ch = '\b'; break;
        case 'f': ch = '\f'; break;
        case 'n': ch = '\n'; break;
        case 'r': ch = '\r'; break;
        case 't': ch = '\t'; break;
        case 'u': {
            uint32_t cp, lo;
            if (hex4(p, &cp))
                goto bad;
            if (cp >= 0xdc00 && cp <= 0xdfff) {
                fail(p, esc, "lone low surrogate \\u%04x", (unsigned)cp);
                goto bad;
            }
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (p->n - p->pos < 2 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u') {
                    fail(p, esc, "high surrogate \\u%04x not followed by a low one", (unsigned)cp);
                    goto bad;
                }
                p->pos += 2;
                if (hex4(p, &lo))
                    goto bad;
                if (lo < 0xdc00 || lo > 0xdfff) {
                    fail(p, esc, "high surrogate \\u%04x followed by \\u%04x", (unsigned)cp,
                         (unsigned)lo);
                    goto bad;
                }
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            put_utf8(&sb, cp);
            continue;
        }
        default: fail(p, esc, "bad escape '\\%c'", c >= 0x20 && c < 0x7f ? c : '?'); goto bad;
        }
        sbuf_put(&sb, &ch, 1);
    }
    *out = sb.b;
    *out_len = sb.len;
    return 0;
bad:
    free(sb.b);
    return ENC_EINVAL;
}

static int parse_number(struct parser *p, struct json *j)
{
    size_t start = p->pos, i = p->pos;
    int integral = 1;
    const unsigned char *s = p->s;
    if (i < p->n && s[i] == '-')
        i++;
    if (i >= p->n || !(s[i] >= '0' && s[i] <= '9'))
        return fail(p, start, "bad number");
    if (s[i] == '0') {
        i++;
        if (i < p->n && s[i] >= '0' && s[i] <= '9')
            return fail(p, start, "leading zero in number");
    } else {
        while (i < p->n && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    if (i < p->n && s[i] == '.') {
        integral = 0;
        i++;
        if (i >= p->n || !(s[i] >= '0' && s[i] <= '9'))
            return fail(p, i, "digit expected after '.'");
        while (i < p->n && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    if (i < p->n && (s[i] == 'e' || s[i] == 'E')) {
        integral = 0;
        i++;
        if (i < p->n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= p->n || !(s[i] >= '0' && s[i] <= '9'))
            return fail(p, i, "digit expected in exponent");
        while (i < p->n && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    size_t len = i - start;
    if (len > 1000)
        return fail(p, start, "number literal of %zu characters", len);
    char buf[1024];
    memcpy(buf, s + start, len);
    buf[len] = 0;
    errno = 0;
    double d = strtod(buf, NULL);
    if (!isfinite(d))
        return fail(p, start, "number out of range");
    j->type = JSON_NUMBER;
    j->num = d;
    if (integral) {
        errno = 0;
        long long v = strtoll(buf, NULL, 10);
        if (errno == 0) {
            j->ival = v;
            j->is_int = 1;
        }
    } else if (d == floor(d) && fabs(d) <= 9007199254740992.0) {
        j->ival = (int64_t)d;
        j->is_int = 1;
    }
    p->pos = i;
    return 0;
}

static int literal(struct parser *p, const char *word)
{
    size_t k = strlen(word);
    if (p->n - p->pos < k || memcmp(p->s + p->pos, word, k) != 0)
        return fail(p, p->pos, "unexpected token");
    p->pos += k;
    return 0;
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* dup_key() finds the first duplicate key of object j; -1 when none. */
static long dup_key(const struct json *j)
{
    size_t n = j->len;
    if (n < 2)
        return -1;
    if (n <= 16) {
        for (size_t a = 1; a < n; a++)
            for (size_t b = 0; b < a; b++)
                if (strcmp(j->keys[a], j->keys[b]) == 0)
                    return (long)a;
        return -1;
    }
    size_t cap = 1;
    while (cap < 2 * n)
        cap *= 2;
    size_t *slot = xcalloc(cap, sizeof *slot); /* index + 1, 0 = empty */
    long found = -1;
    for (size_t a = 0; a < n && found < 0; a++) {
        size_t h = (size_t)hash_str(j->keys[a]) & (cap - 1);
        while (slot[h]) {
            if (strcmp(j->keys[slot[h] - 1], j->keys[a]) == 0) {
                found = (long)a;
                break;
            }
            h = (h + 1) & (cap - 1);
        }
        if (found < 0)
            slot[h] = a + 1;
    }
    free(slot);
    return found;
}

static void push_item(struct json *j, size_t *cap, struct json *v, char *key)
{
    if (j->len == *cap) {
        *cap = *cap ? *cap * 2 : 4;
        j->items = xrealloc(j->items, *cap * sizeof *j->items);
        if (j->type == JSON_OBJECT)
            j->keys = xrealloc(j->keys, *cap * sizeof *j->keys);
    }
    j->items[j->len] = v;
    if (j->type == JSON_OBJECT)
        j->keys[j->len] = key;
    j->len++;
}

static int parse_value(struct parser *p, struct json *j, int depth);

static int parse_container(struct parser *p, struct json *j, int depth, int is_obj)
{
    size_t cap = 0, open = p->pos;
    unsigned char close = is_obj ? '}' : ']';
    j->type = is_obj ? JSON_OBJECT : JSON_ARRAY;
    if (depth >= JSON_MAX_DEPTH)
        return fail(p, open, "nesting deeper than %d", JSON_MAX_DEPTH);
    p->pos++;
    skip_ws(p);
    if (p->pos < p->n && p->s[p->pos] == close) {
        p->pos++;
        return 0;
    }
    for (;;) {
        char *key = NULL;
        skip_ws(p);
        if (is_obj) {
            size_t klen;
            if (p->pos >= p->n || p->s[p->pos] != '"')
                return fail(p, p->pos,
                            p->pos >= p->n ? "unterminated object" : "object key expected");
            if (parse_string(p, &key, &klen))
                return ENC_EINVAL;
            skip_ws(p);
            if (p->pos >= p->n || p->s[p->pos] != ':') {
                free(key);
                return fail(p, p->pos, "':' expected after object key");
            }
            p->pos++;
            skip_ws(p);
        }
        struct json *v = xcalloc(1, sizeof *v);
        push_item(j, &cap, v, key);
        if (parse_value(p, v, depth + 1))
            return ENC_EINVAL;
        skip_ws(p);
        if (p->pos >= p->n)
            return fail(p, open, is_obj ? "unterminated object" : "unterminated array");
        if (p->s[p->pos] == ',') {
            p->pos++;
            skip_ws(p);
            if (p->pos < p->n && p->s[p->pos] == close)
                return fail(p, p->pos, "trailing comma");
            continue;
        }
        if (p->s[p->pos] == close) {
            p->pos++;
            break;
        }
        return fail(p, p->pos, is_obj ? "',' or '}' expected" : "',' or ']' expected");
    }
    if (is_obj) {
        long d = dup_key(j);
        if (d >= 0)
            return fail(p, open, "duplicate key \"%.60s\" in object", j->keys[d]);
    }
    return 0;
}

static int parse_value(struct parser *p, struct json *j, int depth)
{
    skip_ws(p);
    if (p->pos >= p->n)
        return fail(p, p->pos, "unexpected end of input");
    switch (p->s[p->pos]) {
    case '{': return parse_container(p, j, depth, 1);
    case '[': return parse_container(p, j, depth, 0);
    case '"': j->type = JSON_STRING; return parse_string(p, &j->str, &j->len);
    case 't':
        j->type = JSON_BOOL;
        j->boolean = 1;
        return literal(p, "true");
    case 'f': j->type = JSON_BOOL; return literal(p, "false");
    case 'n': j->type = JSON_NULL; return literal(p, "null");
    default:
        if (p->s[p->pos] == '-' || (p->s[p->pos] >= '0' && p->s[p->pos] <= '9'))
            return parse_number(p, j);
        return fail(p, p->pos, "unexpected character '%c'",
                    p->s[p->pos] >= 0x20 && p->s[p->pos] < 0x7f ? p->s[p->pos] : '?');
    }
}

int json_parse(const char *text, size_t n, struct json **out, struct json_error *err)
{
    struct parser p = {(const unsigned char *)text, n, 0, 0, err};
    *out = NULL;
    if (err) {
        err->offset = 0;
        err->msg[0] = 0;
    }
    if (n > JSON_MAX_BYTES)
        return fail(&p, 0, "input of %zu bytes exceeds the %zu-byte limit", n, JSON_MAX_BYTES);
    if (!text)
        return fail(&p, 0, "no input");
    struct json *j = xcalloc(1, sizeof *j);
    if (parse_value(&p, j, 0) == 0) {
        skip_ws(&p);
        if (p.pos != n)
            fail(&p, p.pos, "trailing data after the JSON value");
    }
    if (p.failed) {
        json_free(&j);
        return ENC_EINVAL;
    }
    *out = j;
    return 0;
}

static void free_tree(struct json *j)
{
    if (!j)
        return;
    for (size_t i = 0; i < j->len && j->items; i++) {
        free_tree(j->items[i]);
        if (j->keys)
            free(j->keys[i]);
    }
    free(j->items);
    free(j->keys);
    free(j->str);
    free(j);
}

void json_free(struct json **j)
{
    if (!j || !*j)
        return;
    free_tree(*j);
    *j = NULL;
}

const struct json *json_get(const struct json *j, const char *key)
{
    if (!j || j->type != JSON_OBJECT || !key)
        return NULL;
    for (size_t i = 0; i < j->len; i++)
        if (strcmp(j->keys[i], key) == 0)
            return j->items[i];
    return NULL;
}

const struct json *json_at(const struct json *j, size_t i)
{
    if (!j || (j->type != JSON_ARRAY && j->type != JSON_OBJECT) || i >= j->len)
        return NULL;
    return j->items[i];
}

const char *json_key_at(const struct json *j, size_t i)
{
    if (!j || j->type != JSON_OBJECT || i >= j->len)
        return NULL;
    return j->keys[i];
}

size_t json_len(const struct json *j)
{
    if (!j || (j->type != JSON_ARRAY && j->type != JSON_OBJECT))
        return 0;
    return j->len;
}

const char *json_str(const struct json *j)
{
    return j && j->type == JSON_STRING ? j->str : NULL;
}

int json_num(const struct json *j, double *out)
{
    if (!j || j->type != JSON_NUMBER)
        return ENC_EINVAL;
    *out = j->num;
    return 0;
}

int json_int(const struct json *j, int64_t *out)
{
    if (!j || j->type != JSON_NUMBER || !j->is_int)
        return ENC_EINVAL;
    *out = j->ival;
    return 0;
}

int json_bool(const struct json *j, int *out)
{
    if (!j || j->type != JSON_BOOL)
        return ENC_EINVAL;
    *out = j->boolean;
    return 0;
}

const char *json_type_name(enum json_type t)
{
    switch (t) {
    case JSON_NULL: return "null";
    case JSON_BOOL: return "boolean";
    case JSON_NUMBER: return "number";
    case JSON_STRING: return "string";
    case JSON_ARRAY: return "array";
    case JSON_OBJECT: return "object";
    }
    return "?";
}
