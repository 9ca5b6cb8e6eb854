/*
 * st_writer.c - the safetensors writer (see st_writer.h).
 *
 * Layout choice: the header lists tensors in insertion order (so a reader's
 * file order is the insertion order); the data block holds them back to
 * back with no gaps, the 8-byte ones first, then 4-, then 2-byte ones, each
 * class in insertion order. The header is padded with spaces so the data
 * block starts at a multiple of 8; hence every tensor is aligned to its
 * element size and the file passes the official safetensors validation,
 * which refuses gaps between tensors (so "8-byte-aligned offsets" is met
 * as natural alignment, the one layout both constraints allow).
 * The file is written to "<path>.tmp.<pid>" beside the target, fsync'd and
 * renamed over it, then the directory is fsync'd: readers see the old file
 * or the new one, never a part.
 */
#include "st_writer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../common/bf16.h"
#include "../../common/err.h"
#include "../../common/log.h"
#include "../../common/xmalloc.h"

struct st_item {
    char *name;
    enum dtype dt;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    void *data;
    size_t nbytes;
    uint64_t begin; /* offset in the data block, set by st_writer_write */
};

struct st_writer {
    struct st_item *items;
    size_t n, cap;
    char **mkeys, **mvals;
    size_t nmeta;
};

/* Element sizes of the dtypes the writer accepts; 0 = not writable. */
static size_t elem_size(enum dtype dt)
{
    switch (dt) {
    case DTYPE_F32: return 4;
    case DTYPE_BF16: return 2;
    case DTYPE_F16: return 2;
    case DTYPE_I64: return 8;
    case DTYPE_F64: return 8;
    case DTYPE_COUNT: break;
    }
    return 0;
}

static const char *st_dtype_name(enum dtype dt)
{
    switch (dt) {
    case DTYPE_F32: return "F32";
    case DTYPE_BF16: return "BF16";
    case DTYPE_F16: return "F16";
    case DTYPE_I64: return "I64";
    case DTYPE_F64: return "F64";
    case DTYPE_COUNT: break;
    }
    return "?";
}

/* f32_to_f16() rounds to nearest, ties to even, as torch's .half() does;
 * overflow gives infinity, NaN stays NaN, small values become subnormal. */
static uint16_t f32_to_f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u)
        return (uint16_t)(sign | 0x7e00 | ((a >> 13) & 0x3ff));
    if (a >= 0x477ff000u) /* >= 65520 rounds past the largest half */
        return (uint16_t)(sign | 0x7c00);
    if (a < 0x38800000u) {   /* below 2^-14: subnormal half */
        if (a < 0x33000000u) /* below 2^-25 (a tie at 2^-25 goes to even 0) */
            return sign;
        uint32_t e = a >> 23, m = (a & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e, q = m >> shift, rem = m & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1)))
            q++;
        return (uint16_t)(sign | q);
    }
    uint32_t r = a - 0x38000000u; /* rebias the exponent from 127 to 15 */
    r += 0xfffu + ((r >> 13) & 1);
    return (uint16_t)(sign | (r >> 13));
}

struct st_writer *st_writer_new(void)
{
    return xcalloc(1, sizeof(struct st_writer));
}

void st_writer_meta(struct st_writer *w, const char *key, const char *value)
{
    for (size_t i = 0; i < w->nmeta; i++) {
        if (strcmp(w->mkeys[i], key) == 0) {
            free(w->mvals[i]);
            w->mvals[i] = xstrdup(value);
            return;
        }
    }
    w->mkeys = xrealloc(w->mkeys, (w->nmeta + 1) * sizeof *w->mkeys);
    w->mvals = xrealloc(w->mvals, (w->nmeta + 1) * sizeof *w->mvals);
    w->mkeys[w->nmeta] = xstrdup(key);
    w->mvals[w->nmeta] = xstrdup(value);
    w->nmeta++;
}

/* new_item() validates and appends an item with an uninitialised buffer. */
static struct st_item *new_item(struct st_writer *w, const char *name, enum dtype dt, int ndim,
                                const int64_t *shape)
{
    size_t es = (unsigned)dt < DTYPE_COUNT ? elem_size(dt) : 0;
    if (!name || !*name || strcmp(name, "__metadata__") == 0) {
        log_error("safetensors writer: bad tensor name '%s'", name ? name : "(null)");
        return NULL;
    }
    if (!es) {
        log_error("safetensors writer: tensor '%s': unsupported dtype %d", name, (int)dt);
        return NULL;
    }
    if (ndim < 0 || ndim > TENSOR_MAX_DIMS) {
        log_error("safetensors writer: tensor '%s': %d dimensions", name, ndim);
        return NULL;
    }
    size_t nb = es;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || __builtin_mul_overflow(nb, (size_t)shape[i], &nb)) {
            log_error("safetensors writer: tensor '%s': bad shape", name);
            return NULL;
        }
    }
    for (size_t i = 0; i < w->n; i++) {
        if (strcmp(w->items[i].name, name) == 0) {
            log_error("safetensors writer: tensor '%s' added twice", name);
            return NULL;
        }
    }
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 16;
        w->items = xrealloc(w->items, w->cap * sizeof *w->items);
    }
    struct st_item *it = &w->items[w->n++];
    memset(it, 0, sizeof *it);
    it->name = xstrdup(name);
    it->dt = dt;
    it->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        it->shape[i] = shape[i];
    it->nbytes = nb;
    it->data = xmalloc(nb);
    return it;
}

int st_writer_add(struct st_writer *w, const char *name, enum dtype dt, int ndim,
                  const int64_t *shape, const void *data)
{
    struct st_item *it = new_item(w, name, dt, ndim, shape);
    if (!it)
        return ENC_EINVAL;
    if (it->nbytes)
        memcpy(it->data, data, it->nbytes);
    return 0;
}

int st_writer_add_f32_as(struct st_writer *w, const char *name, enum dtype dt, int ndim,
                         const int64_t *shape, const float *data)
{
    if (dt != DTYPE_F32 && dt != DTYPE_BF16 && dt != DTYPE_F16) {
        log_error("safetensors writer: tensor '%s': cannot convert f32 to %s", name,
                  st_dtype_name(dt));
        return ENC_EINVAL;
    }
    struct st_item *it = new_item(w, name, dt, ndim, shape);
    if (!it)
        return ENC_EINVAL;
    size_t n = it->nbytes / elem_size(dt);
    if (dt == DTYPE_F32) {
        if (n)
            memcpy(it->data, data, it->nbytes);
        return 0;
    }
    uint16_t *h = it->data;
    for (size_t i = 0; i < n; i++)
        h[i] = dt == DTYPE_BF16 ? f32_to_bf16(data[i]) : f32_to_f16(data[i]);
    return 0;
}

/* A growable text buffer for the header. */
struct text {
    char *s;
    size_t len, cap;
};

static void text_add(struct text *t, const char *s, size_t n)
{
    if (t->len + n + 1 > t->cap) {
        t->cap = (t->len + n + 1) * 2;
        t->s = xrealloc(t->s, t->cap);
    }
    memcpy(t->s + t->len, s, n);
    t->len += n;
    t->s[t->len] = 0;
}

static void text_str(struct text *t, const char *s)
{
    text_add(t, s, strlen(s));
}

/* text_json_str() appends s as a JSON string literal. */
static void text_json_str(struct text *t, const char *s)
{
    text_add(t, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            text_add(t, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            text_add(t, esc, 6);
        } else {
            text_add(t, (const char *)&c, 1);
        }
    }
    text_add(t, "\"", 1);
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t k = write(fd, c, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        c += k;
        n -= (size_t)k;
    }
    return 0;
}

int st_writer_write(struct st_writer *w, const char *path)
{
    struct text h = {0};
    char num[64];
    uint64_t off = 0;
    /* offsets: 8-byte elements first, then 4, then 2, insertion order within */
    for (size_t es = 8; es >= 2; es /= 2)
        for (size_t i = 0; i < w->n; i++)
            if (elem_size(w->items[i].dt) == es) {
                w->items[i].begin = off;
                off += w->items[i].nbytes;
            }
    text_str(&h, "{");
    if (w->nmeta) {
        text_str(&h, "\"__metadata__\":{");
        for (size_t i = 0; i < w->nmeta; i++) {
            if (i)
                text_str(&h, ",");
            text_json_str(&h, w->mkeys[i]);
            text_str(&h, ":");
            text_json_str(&h, w->mvals[i]);
        }
        text_str(&h, "}");
    }
    for (size_t i = 0; i < w->n; i++) {
        const struct st_item *it = &w->items[i];
        if (i || w->nmeta)
            text_str(&h, ",");
        text_json_str(&h, it->name);
        text_str(&h, ":{\"dtype\":\"");
        text_str(&h, st_dtype_name(it->dt));
        text_str(&h, "\",\"shape\":[");
        for (int d = 0; d < it->ndim; d++) {
            snprintf(num, sizeof num, d ? ",%lld" : "%lld", (long long)it->shape[d]);
            text_str(&h, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)it->begin,
                 (unsigned long long)(it->begin + it->nbytes));
        text_str(&h, num);
    }
    text_str(&h, "}");
    while ((8 + h.len) % 8)
        text_str(&h, " ");

    int rc = 0;
    char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = log_error_rc(ENC_EIO, "cannot create '%s': %s", tmp, strerror(errno));
        goto out;
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (uint8_t)((uint64_t)h.len >> (8 * i));
    int bad = write_all(fd, len8, 8) || write_all(fd, h.s, h.len);
    for (size_t es = 8; es >= 2 && !bad; es /= 2)
        for (size_t i = 0; i < w->n && !bad; i++)
            if (elem_size(w->items[i].dt) == es)
                bad = write_all(fd, w->items[i].data, w->items[i].nbytes);
    if (bad || fsync(fd) != 0) {
        rc = log_error_rc(ENC_EIO, "cannot write '%s': %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        goto out;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        rc = log_error_rc(ENC_EIO, "cannot write '%s': %s", path, strerror(errno));
        unlink(tmp);
        goto out;
    }
    /* make the rename durable */
    char *dir = xstrdup(path), *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = 0;
    int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    free(dir);
out:
    free(tmp);
    free(h.s);
    return rc;
}

void st_writer_destroy(struct st_writer **wp)
{
    struct st_writer *w = wp ? *wp : NULL;
    if (!w)
        return;
    for (size_t i = 0; i < w->n; i++) {
        free(w->items[i].name);
        free(w->items[i].data);
    }
    for (size_t i = 0; i < w->nmeta; i++) {
        free(w->mkeys[i]);
        free(w->mvals[i]);
    }
    free(w->items);
    free(w->mkeys);
    free(w->mvals);
    free(w);
    *wp = NULL;
}
