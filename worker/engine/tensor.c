/*
 * tensor.c - tensor bookkeeping; all memory goes through the owning backend.
 */
#include "tensor.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>

#include "../../common/xmalloc.h"
#include "backend.h"

size_t dtype_size(enum dtype dt)
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

const char *dtype_name(enum dtype dt)
{
    static const char *names[DTYPE_COUNT] = {"F32", "BF16", "F16", "I64", "F64"};
    return (unsigned)dt < DTYPE_COUNT ? names[dt] : "?";
}

int64_t tensor_numel(const struct tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

size_t tensor_nbytes(const struct tensor *t)
{
    return (size_t)tensor_numel(t) * dtype_size(t->dtype);
}

struct tensor *tensor_new(struct backend *be, enum dtype dt, int ndim, const int64_t *shape)
{
    if (ndim < 0 || ndim > TENSOR_MAX_DIMS || (unsigned)dt >= DTYPE_COUNT)
        return NULL;
    struct tensor *t = xcalloc(1, sizeof *t);
    t->dtype = dt;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) {
            free(t);
            return NULL;
        }
        t->shape[i] = shape[i];
    }
    t->be = be;
    t->data = backend_alloc(be, tensor_nbytes(t));
    if (!t->data) {
        free(t);
        return NULL;
    }
    t->owns_data = 1;
    return t;
}

void tensor_destroy(struct tensor **tp)
{
    struct tensor *t = tp ? *tp : NULL;
    if (!t)
        return;
    if (t->owns_data)
        backend_free(t->be, t->data);
    free(t);
    *tp = NULL;
}

struct tensor tensor_view(const struct tensor *t, int64_t offset, int ndim, const int64_t *shape)
{
    struct tensor v = {0};
    v.dtype = t->dtype;
    v.ndim = ndim;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        v.shape[i] = shape[i];
        n *= shape[i];
    }
    if (offset < 0 || ndim > TENSOR_MAX_DIMS || offset + n > tensor_numel(t)) {
        char buf[96];
        fprintf(stderr, "BUG: view of %lld elements at %lld outside tensor %s\n", (long long)n,
                (long long)offset, tensor_shape_str(t, buf, sizeof buf));
        abort();
    }
    v.data = (char *)t->data + (size_t)offset * dtype_size(t->dtype);
    v.be = t->be;
    v.owns_data = 0;
    return v;
}

const char *tensor_shape_str(const struct tensor *t, char *buf, size_t n)
{
    size_t used = 0;
    if (n == 0)
        return buf;
    buf[0] = 0;
    used += (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < t->ndim && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, i ? ",%lld" : "%lld",
                                 (long long)t->shape[i]);
    if (used < n)
        snprintf(buf + used, n - used, "]");
    return buf;
}

int tensor_same_shape(const struct tensor *a, const struct tensor *b)
{
    if (a->ndim != b->ndim)
        return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return 0;
    return 1;
}
