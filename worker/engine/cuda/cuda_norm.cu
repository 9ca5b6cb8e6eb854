/*
 * cuda_norm.cu - layer norm and RMS norm over the last dimension.
 *
 * One block of NORM_THREADS threads per row (grid-stride over rows). Each
 * thread sums its strided elements in double in index order, then the block
 * adds the partial sums with a fixed shared-memory tree: the same order on
 * every run, no atomics. Layer norm takes two passes (mean, then the centred
 * variance), as the cpu backend does, and every output is evaluated in double
 * and rounded once to f32, so results differ from the cpu's only by the
 * order of the double sums. y may alias x: a row's statistics are complete
 * (block barrier) before any of its elements is written, and each thread
 * reads an element before writing that same element.
 */
#include "cuda_backend.h"

#define NORM_THREADS 256
#define NORM_MAX_BLOCKS 65535

/* block_sum() returns the block-wide sum of v, added in a fixed tree order;
 * every thread gets it. red has NORM_THREADS doubles. */
__device__ static double block_sum(double v, double *red)
{
    unsigned t = threadIdx.x;
    red[t] = v;
    __syncthreads();
    for (unsigned s = NORM_THREADS / 2; s > 0; s >>= 1) {
        if (t < s)
            red[t] = red[t] + red[t + s];
        __syncthreads();
    }
    double r = red[0];
    __syncthreads(); /* red is reused by the next call */
    return r;
}

template <bool RMS>
__global__ void __launch_bounds__(NORM_THREADS)
    norm_kernel(float *y, const float *x, const float *w, const float *b, int64_t rows, int64_t D,
                double eps)
{
    __shared__ double red[NORM_THREADS];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *xr = x + r * D;
        float *yr = y + r * D;
        double mean = 0.0, acc = 0.0;
        if (RMS) {
            for (int64_t d = threadIdx.x; d < D; d += NORM_THREADS)
                acc += (double)xr[d] * xr[d];
        } else {
            double s = 0.0;
            for (int64_t d = threadIdx.x; d < D; d += NORM_THREADS)
                s += xr[d];
            mean = block_sum(s, red) / (double)D;
            for (int64_t d = threadIdx.x; d < D; d += NORM_THREADS) {
                double c = xr[d] - mean;
                acc += c * c;
            }
        }
        double inv = 1.0 / sqrt(block_sum(acc, red) / (double)D + eps);
        for (int64_t d = threadIdx.x; d < D; d += NORM_THREADS) {
            double v = RMS ? xr[d] * inv : (xr[d] - mean) * inv;
            if (w)
                v *= w[d];
            if (b)
                v += b[d];
            yr[d] = (float)v;
        }
    }
}

static int run_norm(struct backend *be, struct tensor *y, const struct tensor *x,
                    const struct tensor *w, const struct tensor *b, float eps, bool rms)
{
    struct cuda_ctx *c = cuda_ctx_of(be);
    int64_t D = x->shape[x->ndim - 1];
    if (D == 0)
        return 0;
    int64_t rows = tensor_numel(x) / D;
    if (rows == 0)
        return 0;
    unsigned grid = (unsigned)(rows < NORM_MAX_BLOCKS ? rows : NORM_MAX_BLOCKS);
    float *yd = (float *)y->data;
    const float *xd = (const float *)x->data;
    const float *wd = w ? (const float *)w->data : NULL;
    const float *bd = b ? (const float *)b->data : NULL;
    if (rms)
        norm_kernel<true><<<grid, NORM_THREADS, 0, c->stream>>>(yd, xd, wd, NULL, rows, D, eps);
    else
        norm_kernel<false><<<grid, NORM_THREADS, 0, c->stream>>>(yd, xd, wd, bd, rows, D, eps);
    return cuda_launch_check(rms ? "rms_norm" : "layer_norm");
}

int cuda_layer_norm(struct backend *be, struct tensor *y, const struct tensor *x,
                    const struct tensor *w, const struct tensor *b, float eps)
{
    return run_norm(be, y, x, w, b, eps, false);
}

int cuda_rms_norm(struct backend *be, struct tensor *y, const struct tensor *x,
                  const struct tensor *w, float eps)
{
    return run_norm(be, y, x, w, NULL, eps, true);
}
