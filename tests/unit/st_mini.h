/*
 * st_mini.h - a minimal read-only safetensors loader for unit tests.
 *
 * Independent of worker/engine/checkpoint (so the tests of common/ do not
 * depend on it): reads the whole file, finds a tensor's entry in the JSON
 * header by its quoted name and widens F32/BF16/I64 data to double or f32.
 * Test-only: malformed files make the lookups return NULL, nothing more.
 */
#ifndef ENCORE_ST_MINI_H
#define ENCORE_ST_MINI_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct st_mini {
    unsigned char *buf;
    size_t size;
    char *header; /* NUL-terminated copy */
    size_t data0; /* offset of the data block */
};

struct st_mini_tensor {
    char dtype[8];
    int ndim;
    int64_t shape[8];
    int64_t numel;
    const unsigned char *data;
};

static inline int st_mini_open(struct st_mini *s, const char *path)
{
    memset(s, 0, sizeof(*s));
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (n < 8) {
        fclose(f);
        return -1;
    }
    s->buf = malloc((size_t)n);
    s->size = (size_t)n;
    if (fread(s->buf, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        free(s->buf);
        return -1;
    }
    fclose(f);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = hl << 8 | s->buf[i];
    if (hl > s->size - 8) {
        free(s->buf);
        return -1;
    }
    s->header = malloc(hl + 1);
    memcpy(s->header, s->buf + 8, hl);
    s->header[hl] = 0;
    s->data0 = 8 + hl;
    return 0;
}

static inline void st_mini_close(struct st_mini *s)
{
    free(s->buf);
    free(s->header);
    memset(s, 0, sizeof(*s));
}

static inline int st_mini_find(const struct st_mini *s, const char *name, struct st_mini_tensor *t)
{
    char key[256];
    snprintf(key, sizeof(key), "\"%s\":", name);
    const char *p = strstr(s->header, key);
    if (!p) {
        snprintf(key, sizeof(key), "\"%s\" :", name);
        p = strstr(s->header, key);
    }
    if (!p)
        return -1;
    memset(t, 0, sizeof(*t));
    const char *d = strstr(p, "\"dtype\"");
    const char *sh = strstr(p, "\"shape\"");
    const char *off = strstr(p, "\"data_offsets\"");
    if (!d || !sh || !off)
        return -1;
    d = strchr(d + 7, '"');
    if (!d)
        return -1;
    int i = 0;
    for (d++; *d && *d != '"' && i < 7; d++)
        t->dtype[i++] = *d;
    sh = strchr(sh, '[');
    if (!sh)
        return -1;
    sh++;
    t->numel = 1;
    while (*sh && *sh != ']' && t->ndim < 8) {
        char *end;
        long long v = strtoll(sh, &end, 10);
        if (end == sh) {
            sh++;
            continue;
        }
        t->shape[t->ndim++] = v;
        t->numel *= v;
        sh = end;
    }
    off = strchr(off, '[');
    if (!off)
        return -1;
    char *end;
    long long b = strtoll(off + 1, &end, 10);
    if (s->data0 + (size_t)b > s->size)
        return -1;
    t->data = s->buf + s->data0 + b;
    return 0;
}

/* st_mini_f32() returns a new f32 copy of a F32/BF16/I64 tensor, or NULL. */
static inline float *st_mini_f32(const struct st_mini *s, const char *name,
                                 struct st_mini_tensor *t)
{
    if (st_mini_find(s, name, t) != 0)
        return NULL;
    float *out = malloc(sizeof(float) * (size_t)(t->numel ? t->numel : 1));
    for (int64_t i = 0; i < t->numel; i++) {
        if (strcmp(t->dtype, "F32") == 0) {
            memcpy(&out[i], t->data + 4 * i, 4);
        } else if (strcmp(t->dtype, "BF16") == 0) {
            uint32_t u = (uint32_t)(t->data[2 * i] | t->data[2 * i + 1] << 8) << 16;
            memcpy(&out[i], &u, 4);
        } else if (strcmp(t->dtype, "I64") == 0) {
            int64_t v;
            memcpy(&v, t->data + 8 * i, 8);
            out[i] = (float)v;
        } else {
            free(out);
            return NULL;
        }
    }
    return out;
}

/* st_mini_i64() returns a new int64 copy of an I64 tensor, or NULL. */
static inline int64_t *st_mini_i64(const struct st_mini *s, const char *name,
                                   struct st_mini_tensor *t)
{
    if (st_mini_find(s, name, t) != 0 || strcmp(t->dtype, "I64") != 0)
        return NULL;
    int64_t *out = malloc(sizeof(int64_t) * (size_t)(t->numel ? t->numel : 1));
    memcpy(out, t->data, 8 * (size_t)t->numel);
    return out;
}

#endif
