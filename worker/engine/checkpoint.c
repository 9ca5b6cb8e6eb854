/*
 * checkpoint.c - open a checkpoint file and dispatch on its content.
 *
 * The file is mapped read-only once; a zip ("PK\3\4") goes to the torch
 * reader (torch_zip + torch_pickle, glued here), anything else to the
 * safetensors reader. Readers fill the struct through checkpoint_impl.h.
 * Invariants of an open ckpt: tensor names are unique and indexed by an
 * open-addressing hash; every tensor's data is either inside the mapping or
 * inside a buffer in `owned`, both freed only by ckpt_close().
 */
#include "checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../common/bf16.h"
#include "../../common/err.h"
#include "../../common/log.h"
#include "../../common/xmalloc.h"
#include "checkpoint_impl.h"
#include "safetensors.h"
#include "torch_pickle.h"
#include "torch_zip.h"

struct ckpt {
    char *path;
    void *map; /* the read-only mapping of the file */
    size_t map_size;
    struct ckpt_tensor *t; /* count tensors in file order */
    size_t count, cap;
    size_t *slots; /* hash of names: tensor index + 1, 0 = empty */
    size_t nslots; /* power of two, > 2 * count */
    void **owned;  /* names and copied/widened data */
    size_t nowned, capowned;
    char **meta_keys, **meta_vals;
    size_t nmeta;
};

static const struct {
    const char *name;
    size_t size;
} elems[CKPT_ELEM_COUNT] = {
    [CKPT_ELEM_F32] = {"F32", 4},   [CKPT_ELEM_BF16] = {"BF16", 2}, [CKPT_ELEM_F16] = {"F16", 2},
    [CKPT_ELEM_F64] = {"F64", 8},   [CKPT_ELEM_I64] = {"I64", 8},   [CKPT_ELEM_I32] = {"I32", 4},
    [CKPT_ELEM_I16] = {"I16", 2},   [CKPT_ELEM_I8] = {"I8", 1},     [CKPT_ELEM_U8] = {"U8", 1},
    [CKPT_ELEM_BOOL] = {"BOOL", 1},
};

size_t ckpt_elem_size(enum ckpt_elem e)
{
    return (unsigned)e < CKPT_ELEM_COUNT ? elems[e].size : 0;
}

const char *ckpt_elem_name(enum ckpt_elem e)
{
    return (unsigned)e < CKPT_ELEM_COUNT ? elems[e].name : "?";
}

int ckpt_shape_numel(int ndim, const int64_t *shape, size_t elem, int64_t *numel, size_t *nbytes)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || __builtin_mul_overflow(n, shape[i], &n))
            return ENC_EINVAL;
    }
    size_t b;
    if (n > (int64_t)(SIZE_MAX / 2) || __builtin_mul_overflow((size_t)n, elem, &b))
        return ENC_EINVAL;
    *numel = n;
    *nbytes = b;
    return 0;
}

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static size_t *find_slot(const struct ckpt *ck, const char *name)
{
    size_t mask = ck->nslots - 1, h = (size_t)hash_name(name) & mask;
    while (ck->slots[h] && strcmp(ck->t[ck->slots[h] - 1].name, name) != 0)
        h = (h + 1) & mask;
    return &ck->slots[h];
}

static void rehash(struct ckpt *ck)
{
    free(ck->slots);
    ck->nslots = ck->nslots ? ck->nslots * 2 : 64;
    ck->slots = xcalloc(ck->nslots, sizeof *ck->slots);
    for (size_t i = 0; i < ck->count; i++)
        *find_slot(ck, ck->t[i].name) = i + 1;
}

void *ckpt_own(struct ckpt *ck, size_t n)
{
    if (ck->nowned == ck->capowned) {
        ck->capowned = ck->capowned ? ck->capowned * 2 : 64;
        ck->owned = xrealloc(ck->owned, ck->capowned * sizeof *ck->owned);
    }
    void *p = xmalloc(n);
    ck->owned[ck->nowned++] = p;
    return p;
}

void ckpt_add_meta(struct ckpt *ck, const char *key, const char *value)
{
    ck->meta_keys = xrealloc(ck->meta_keys, (ck->nmeta + 1) * sizeof *ck->meta_keys);
    ck->meta_vals = xrealloc(ck->meta_vals, (ck->nmeta + 1) * sizeof *ck->meta_vals);
    ck->meta_keys[ck->nmeta] = xstrdup(key);
    ck->meta_vals[ck->nmeta] = xstrdup(value);
    ck->nmeta++;
}

/* widen() converts n integer elements of elem at src (any alignment) to int64. */
static void widen(int64_t *dst, const uint8_t *src, enum ckpt_elem elem, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        switch (elem) {
        case CKPT_ELEM_I32: {
            int32_t v;
            memcpy(&v, src + 4 * i, 4);
            dst[i] = v;
            break;
        }
        case CKPT_ELEM_I16: {
            int16_t v;
            memcpy(&v, src + 2 * i, 2);
            dst[i] = v;
            break;
        }
        case CKPT_ELEM_I8: dst[i] = (int8_t)src[i]; break;
        case CKPT_ELEM_U8: dst[i] = src[i]; break;
        case CKPT_ELEM_BOOL: dst[i] = src[i] != 0; break;
        default: dst[i] = 0; break;
        }
    }
}

int ckpt_add(struct ckpt *ck, const char *name, enum ckpt_elem elem, int ndim, const int64_t *shape,
             const void *data, size_t nbytes)
{
    int64_t numel;
    size_t want;
    if (ndim < 0 || ndim > TENSOR_MAX_DIMS)
        return log_error_rc(ENC_ENOTSUP, "'%s': tensor '%s' has %d dimensions (at most %d)",
                            ck->path, name, ndim, TENSOR_MAX_DIMS);
    if (ckpt_shape_numel(ndim, shape, ckpt_elem_size(elem), &numel, &want) || want != nbytes)
        return log_error_rc(ENC_EINVAL, "'%s': tensor '%s': %zu bytes for its shape", ck->path,
                            name, nbytes);
    if (ck->nslots && *find_slot(ck, name))
        return log_error_rc(ENC_EINVAL, "'%s': tensor '%s' appears twice", ck->path, name);
    if (ck->count == ck->cap) {
        ck->cap = ck->cap ? ck->cap * 2 : 64;
        ck->t = xrealloc(ck->t, ck->cap * sizeof *ck->t);
    }
    struct ckpt_tensor *t = &ck->t[ck->count];
    memset(t, 0, sizeof *t);
    char *nm = ckpt_own(ck, strlen(name) + 1);
    memcpy(nm, name, strlen(name) + 1);
    t->name = nm;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    switch (elem) {
    case CKPT_ELEM_F32: t->dtype = DTYPE_F32; break;
    case CKPT_ELEM_BF16: t->dtype = DTYPE_BF16; break;
    case CKPT_ELEM_F16: t->dtype = DTYPE_F16; break;
    case CKPT_ELEM_F64: t->dtype = DTYPE_F64; break;
    case CKPT_ELEM_I64: t->dtype = DTYPE_I64; break;
    default: t->dtype = DTYPE_I64; break;
    }
    if (t->dtype == DTYPE_I64 && elem != CKPT_ELEM_I64) {
        int64_t *w = ckpt_own(ck, (size_t)numel * 8);
        widen(w, data, elem, numel);
        t->data = w;
        t->nbytes = (size_t)numel * 8;
    } else {
        t->data = data;
        t->nbytes = nbytes;
    }
    ck->count++;
    if (2 * ck->count >= ck->nslots)
        rehash(ck);
    else
        *find_slot(ck, name) = ck->count;
    return 0;
}

/* is_contiguous() tells whether stride is the row-major stride of shape
 * (dims of size 1 may have any stride). */
static int is_contiguous(const struct torch_pickle_tensor *p)
{
    int64_t want = 1;
    for (int i = p->ndim - 1; i >= 0; i--) {
        if (p->shape[i] != 1 && p->stride[i] != want)
            return 0;
        want *= p->shape[i];
    }
    return 1;
}

/* gather() copies a strided tensor of numel elements into dst, row-major. */
static void gather(uint8_t *dst, const uint8_t *base, const struct torch_pickle_tensor *p,
                   size_t es, int64_t numel)
{
    int64_t idx[TENSOR_MAX_DIMS] = {0};
    for (int64_t k = 0; k < numel; k++) {
        int64_t off = 0;
        for (int i = 0; i < p->ndim; i++)
            off += idx[i] * p->stride[i];
        memcpy(dst + (size_t)k * es, base + (size_t)off * es, es);
        for (int i = p->ndim - 1; i >= 0; i--) {
            if (++idx[i] < p->shape[i])
                break;
            idx[i] = 0;
        }
    }
}

/* add_torch_tensor() resolves one pickled tensor against its storage entry. */
static int add_torch_tensor(struct ckpt *ck, const struct torch_zip *z, const char *prefix,
                            const struct torch_pickle_tensor *p)
{
    char *ename = xasprintf("%sdata/%s", prefix, p->storage_key);
    const struct zip_entry *e = torch_zip_find(z, ename);
    const uint8_t *sdata;
    int rc;
    size_t es = ckpt_elem_size(p->elem);
    int64_t numel, span = 1;
    size_t nbytes, sbytes;
    if (!e) {
        rc = log_error_rc(ENC_EINVAL, "'%s': tensor '%s': storage '%s' has no entry '%s'", ck->path,
                          p->name, p->storage_key, ename);
        goto out;
    }
    if ((rc = torch_zip_data(z, e, &sdata)))
        goto out;
    if (__builtin_mul_overflow((uint64_t)p->storage_numel, (uint64_t)es, &sbytes) ||
        e->size < sbytes) {
        rc = log_error_rc(ENC_EINVAL,
                          "'%s': tensor '%s': storage '%s' holds %llu bytes, %lld %s elements "
                          "need more",
                          ck->path, p->name, p->storage_key, (unsigned long long)e->size,
                          (long long)p->storage_numel, ckpt_elem_name(p->elem));
        goto out;
    }
    if (ckpt_shape_numel(p->ndim, p->shape, es, &numel, &nbytes)) {
        rc = log_error_rc(ENC_EINVAL, "'%s': tensor '%s': bad size", ck->path, p->name);
        goto out;
    }
    if (numel > 0) {
        /* the last element reached must lie inside the storage */
        int64_t last = p->offset;
        for (int i = 0; i < p->ndim; i++) {
            int64_t step;
            if (p->stride[i] < 0 || __builtin_mul_overflow(p->shape[i] - 1, p->stride[i], &step) ||
                __builtin_add_overflow(last, step, &last)) {
                rc = log_error_rc(ENC_EINVAL, "'%s': tensor '%s': bad stride", ck->path, p->name);
                goto out;
            }
        }
        span = last + 1;
        if (span > p->storage_numel) {
            rc = log_error_rc(ENC_EINVAL,
                              "'%s': tensor '%s': reaches element %lld of a %lld-element "
                              "storage",
                              ck->path, p->name, (long long)last, (long long)p->storage_numel);
            goto out;
        }
    }
    const uint8_t *base = sdata + (size_t)(numel > 0 ? p->offset : 0) * es;
    if (numel > 0 && !is_contiguous(p)) {
        uint8_t *copy = ckpt_own(ck, nbytes);
        gather(copy, base, p, es, numel);
        base = copy;
    }
    rc = ckpt_add(ck, p->name, p->elem, p->ndim, p->shape, base, nbytes);
out:
    free(ename);
    return rc;
}

static int open_torch(struct ckpt *ck, const uint8_t *buf, size_t size)
{
    struct torch_zip z;
    struct torch_pickle_tensor *pt = NULL;
    size_t npt = 0;
    char *prefix = NULL;
    const uint8_t *pkl;
    int rc = torch_zip_open(&z, ck->path, buf, size);
    if (rc)
        goto out;
    /* the pickle is <archive>/data.pkl (or data.pkl at the top) */
    const struct zip_entry *pe = NULL;
    for (size_t i = 0; i < z.count && !pe; i++) {
        const struct zip_entry *e = &z.entries[i];
        if (e->name_len >= 8 && memcmp(e->name + e->name_len - 8, "data.pkl", 8) == 0 &&
            (e->name_len == 8 || e->name[e->name_len - 9] == '/') &&
            !memchr(e->name, '/', e->name_len - 8 - (e->name_len > 8)))
            pe = e;
    }
    if (!pe) {
        rc = log_error_rc(ENC_EINVAL, "'%s': zip has no data.pkl (not a torch.save checkpoint)",
                          ck->path);
        goto out;
    }
    prefix = xmalloc(pe->name_len - 8 + 1);
    memcpy(prefix, pe->name, pe->name_len - 8);
    prefix[pe->name_len - 8] = 0;
    char *bo_name = xasprintf("%sbyteorder", prefix);
    const struct zip_entry *bo = torch_zip_find(&z, bo_name);
    free(bo_name);
    const uint8_t *bod;
    if (bo && torch_zip_data(&z, bo, &bod) == 0 &&
        !(bo->size == 6 && memcmp(bod, "little", 6) == 0)) {
        rc = log_error_rc(ENC_ENOTSUP, "'%s': big-endian torch checkpoints are not supported",
                          ck->path);
        goto out;
    }
    if ((rc = torch_zip_data(&z, pe, &pkl)))
        goto out;
    if ((rc = torch_pickle_load(ck->path, pkl, (size_t)pe->size, &pt, &npt)))
        goto out;
    for (size_t i = 0; i < npt; i++)
        if ((rc = add_torch_tensor(ck, &z, prefix, &pt[i])))
            goto out;
out:
    torch_pickle_free(&pt, npt);
    torch_zip_release(&z);
    free(prefix);
    return rc;
}

int ckpt_open(const char *path, struct ckpt **out)
{
    struct ckpt *ck = xcalloc(1, sizeof *ck);
    struct stat st;
    int rc = 0;
    *out = NULL;
    ck->path = xstrdup(path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = log_error_rc(ENC_EIO, "cannot open '%s': %s", path, strerror(errno));
        goto fail;
    }
    if (fstat(fd, &st) != 0) {
        rc = log_error_rc(ENC_EIO, "cannot stat '%s': %s", path, strerror(errno));
        close(fd);
        goto fail;
    }
    if (!S_ISREG(st.st_mode) || st.st_size == 0) {
        rc = log_error_rc(ENC_EINVAL, "'%s': %s", path,
                          S_ISREG(st.st_mode) ? "empty file" : "not a regular file");
        close(fd);
        goto fail;
    }
    ck->map_size = (size_t)st.st_size;
    ck->map = mmap(NULL, ck->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (ck->map == MAP_FAILED) {
        ck->map = NULL;
        rc = log_error_rc(ENC_EIO, "cannot map '%s': %s", path, strerror(errno));
        goto fail;
    }
    const uint8_t *b = ck->map;
    if (ck->map_size >= 4 && memcmp(b, "PK\x03\x04", 4) == 0)
        rc = open_torch(ck, b, ck->map_size);
    else if (ck->map_size >= 4 && b[0] == 0x80 && b[1] <= 5 && b[2] == 0x8a && b[3] == 0x0a)
        /* PROTO n, LONG1 of 10 bytes: the magic number legacy torch.save starts
         * with (as a safetensors header length it would be far over the limit) */
        rc = log_error_rc(ENC_ENOTSUP,
                          "'%s': legacy (pre-1.6, non-zip) torch serialization is not "
                          "supported; re-save it with a newer torch",
                          path);
    else
        rc = safetensors_load(ck, path, b, ck->map_size);
    if (rc)
        goto fail;
    log_debug("'%s': %zu tensors", path, ck->count);
    *out = ck;
    return 0;
fail:
    ckpt_close(&ck);
    return rc;
}

void ckpt_close(struct ckpt **ckp)
{
    struct ckpt *ck = ckp ? *ckp : NULL;
    if (!ck)
        return;
    if (ck->map)
        munmap(ck->map, ck->map_size);
    for (size_t i = 0; i < ck->nowned; i++)
        free(ck->owned[i]);
    for (size_t i = 0; i < ck->nmeta; i++) {
        free(ck->meta_keys[i]);
        free(ck->meta_vals[i]);
    }
    free(ck->meta_keys);
    free(ck->meta_vals);
    free(ck->owned);
    free(ck->slots);
    free(ck->t);
    free(ck->path);
    free(ck);
    *ckp = NULL;
}

const char *ckpt_path(const struct ckpt *ck)
{
    return ck->path;
}

size_t ckpt_count(const struct ckpt *ck)
{
    return ck->count;
}

const struct ckpt_tensor *ckpt_at(const struct ckpt *ck, size_t i)
{
    return i < ck->count ? &ck->t[i] : NULL;
}

const struct ckpt_tensor *ckpt_find(const struct ckpt *ck, const char *name)
{
    if (!ck->nslots || !name)
        return NULL;
    size_t s = *find_slot(ck, name);
    return s ? &ck->t[s - 1] : NULL;
}

const char *ckpt_meta(const struct ckpt *ck, const char *key)
{
    for (size_t i = 0; i < ck->nmeta; i++)
        if (strcmp(ck->meta_keys[i], key) == 0)
            return ck->meta_vals[i];
    return NULL;
}

int64_t ckpt_numel(const struct ckpt_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

float *ckpt_read_f32(const struct ckpt_tensor *t)
{
    int64_t n = ckpt_numel(t);
    float *out = xmalloc((size_t)n * sizeof *out + 1);
    const uint8_t *s = t->data;
    if (t->dtype == DTYPE_F32) {
        memcpy(out, s, (size_t)n * sizeof *out);
        return out;
    }
    for (int64_t i = 0; i < n; i++) {
        switch (t->dtype) {
        case DTYPE_F32: memcpy(&out[i], s + 4 * i, 4); break;
        case DTYPE_BF16: {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            out[i] = bf16_to_f32(h);
            break;
        }
        case DTYPE_F16: {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            out[i] = f16_to_f32(h);
            break;
        }
        case DTYPE_F64: {
            double d;
            memcpy(&d, s + 8 * i, 8);
            out[i] = (float)d;
            break;
        }
        case DTYPE_I64: {
            int64_t v;
            memcpy(&v, s + 8 * i, 8);
            out[i] = (float)v;
            break;
        }
        case DTYPE_COUNT: out[i] = 0; break;
        }
    }
    return out;
}
