/*
 * cuda_permute.cu - y = x with its dims reordered, y.shape[i] = x.shape[perm[i]].
 *
 * One thread per output element (grid-stride): the element's y index is
 * split into coordinates, which give its x offset through x's strides
 * permuted into y's dim order. Writes are coalesced; reads gather. The
 * kernel moves whole elements of 2, 4 or 8 bytes (every dtype), so it is
 * exact for any dtype.
 */
#include "cuda_backend.h"

#define PERM_THREADS 256

struct perm_shape {
    int ndim;
    int64_t yshape[TENSOR_MAX_DIMS];
    int64_t xstride[TENSOR_MAX_DIMS]; /* x's stride (elements) along y's dim i */
};

template <typename E>
__global__ void permute_kernel(E *y, const E *x, int64_t n, struct perm_shape s)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t rem = i, off = 0;
        for (int d = s.ndim - 1; d >= 0; d--) {
            int64_t q = rem / s.yshape[d];
            off += (rem - q * s.yshape[d]) * s.xstride[d];
            rem = q;
        }
        y[i] = x[off];
    }
}

int cuda_permute(struct backend *be, struct tensor *y, const struct tensor *x, const int *perm)
{
    struct cuda_ctx *c = cuda_ctx_of(be);
    int64_t n = tensor_numel(x);
    size_t es = dtype_size(x->dtype);
    if (n == 0)
        return 0;
    struct perm_shape s;
    s.ndim = x->ndim;
    int64_t xs[TENSOR_MAX_DIMS], st = 1;
    for (int d = x->ndim - 1; d >= 0; d--) {
        xs[d] = st;
        st *= x->shape[d];
    }
    for (int i = 0; i < x->ndim; i++) {
        s.yshape[i] = y->shape[i];
        s.xstride[i] = xs[perm[i]];
    }
    unsigned grid = cuda_blocks(n, PERM_THREADS);
    switch (es) {
    case 2:
        permute_kernel<uint16_t><<<grid, PERM_THREADS, 0, c->stream>>>(
            (uint16_t *)y->data, (const uint16_t *)x->data, n, s);
        break;
    case 4:
        permute_kernel<uint32_t><<<grid, PERM_THREADS, 0, c->stream>>>(
            (uint32_t *)y->data, (const uint32_t *)x->data, n, s);
        break;
    case 8:
        permute_kernel<uint64_t><<<grid, PERM_THREADS, 0, c->stream>>>(
            (uint64_t *)y->data, (const uint64_t *)x->data, n, s);
        break;
    default: return log_error_rc(ENC_EINVAL, "cuda permute: element size %zu not supported", es);
    }
    return cuda_launch_check("permute");
}
