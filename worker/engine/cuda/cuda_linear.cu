/*
 * cuda_linear.cu - y[M,N] = x[M,K] . w[N,K]^T + b[N] on cuBLAS, plus the
 * weight-conversion and row-bias kernels conv3d shares.
 *
 * Row-major y = x w^T is column-major y^T = w^T x^T, i.e. one
 * cublasSgemm(T, N, N, M, K) with w as the K x N operand (lda K), x as the
 * K x M operand (ldb K), y with ldc N: no transposition is materialised.
 * The GEMM accumulates in f32 (CUBLAS_COMPUTE_32F semantics, no TF32: the
 * handle is in the default math mode) and writes y = sum; the bias is then
 * added by a kernel, y = fl(sum + b), the order the cpu backend uses.
 *
 * Weights stay on the device as the checkpoint has them (F32, BF16, F16).
 * cuBLAS has no GEMM that multiplies a bf16/f16 matrix by an f32 one, and
 * rounding the activations to bf16 would break the cpu parity the engine
 * promises, so a BF16/F16 weight is widened to f32 (exactly) on the device,
 * LIN_SCRATCH bytes of rows at a time, and each slice is one sgemm writing
 * its columns of y. The slicing depends only on (N, K): results are the same
 * bytes on every run.
 *
 * Opt-in (ENCORE_CUDA_GEMM=bf16, read when the backend opens): a BF16 weight
 * is used as is by cublasGemmEx on the tensor cores, the activations being
 * rounded to bf16 (to nearest even) into scratch, with f32 accumulation
 * (CUBLAS_COMPUTE_32F) and an f32 output. Much faster; the result then
 * differs from the cpu backend by the rounding of x (about 2^-9 relative),
 * so it is not the default. Still the same bytes run to run.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <limits.h>

#include "cuda_backend.h"

#define LIN_THREADS 256
#define LIN_SCRATCH ((size_t)256 << 20) /* bytes of widened weight per slice */
#define LIN_MAX_ROWS ((int64_t)1 << 30) /* rows of x per sgemm call (int API) */

__global__ void widen_bf16_kernel(float *dst, const uint16_t *src, int64_t n)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = __uint_as_float((uint32_t)src[i] << 16);
}

__global__ void widen_f16_kernel(float *dst, const uint16_t *src, int64_t n)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = __half2float(__ushort_as_half(src[i]));
}

__global__ void narrow_bf16_kernel(uint16_t *dst, const float *src, int64_t n)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = __bfloat16_as_ushort(__float2bfloat16_rn(src[i]));
}

__global__ void add_rowvec_kernel(float *y, const float *b, int64_t rows, int64_t cols, int64_t ld)
{
    int64_t n = rows * cols;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / cols, col = i - r * cols;
        float *p = y + r * ld + col;
        *p = __fadd_rn(*p, b[col]);
    }
}

int cuda_weight_to_f32(struct cuda_ctx *c, float *dst, const void *src, enum dtype dt, int64_t n)
{
    if (n <= 0)
        return 0;
    switch (dt) {
    case DTYPE_F32:
        return cuda_check(cudaMemcpyAsync(dst, src, (size_t)n * sizeof(float),
                                          cudaMemcpyDeviceToDevice, c->stream),
                          "weight copy");
    case DTYPE_BF16:
        widen_bf16_kernel<<<cuda_blocks(n, LIN_THREADS), LIN_THREADS, 0, c->stream>>>(
            dst, (const uint16_t *)src, n);
        return cuda_launch_check("widen bf16 weight");
    case DTYPE_F16:
        widen_f16_kernel<<<cuda_blocks(n, LIN_THREADS), LIN_THREADS, 0, c->stream>>>(
            dst, (const uint16_t *)src, n);
        return cuda_launch_check("widen f16 weight");
    default:
        return log_error_rc(ENC_EINVAL, "cuda weight: dtype %s is not a weight type",
                            dtype_name(dt));
    }
}

int cuda_add_rowvec(struct cuda_ctx *c, float *y, const float *b, int64_t rows, int64_t cols,
                    int64_t ld)
{
    if (rows <= 0 || cols <= 0)
        return 0;
    add_rowvec_kernel<<<cuda_blocks(rows * cols, LIN_THREADS), LIN_THREADS, 0, c->stream>>>(
        y, b, rows, cols, ld);
    return cuda_launch_check("add bias");
}

/* gemm_rows() is y[:, n0:n0+nn] = x . wt^T for wt (nn, K) f32, in row chunks. */
static int gemm_rows(struct cuda_ctx *c, float *y, const float *x, const float *wt, int64_t M,
                     int64_t N, int64_t K, int64_t n0, int64_t nn)
{
    const float one = 1.0f, zero = 0.0f;
    for (int64_t m0 = 0; m0 < M; m0 += LIN_MAX_ROWS) {
        int64_t mm = M - m0 < LIN_MAX_ROWS ? M - m0 : LIN_MAX_ROWS;
        int rc = cuda_blas_check(cublasSgemm(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)nn, (int)mm,
                                             (int)K, &one, wt, (int)K, x + m0 * K, (int)K, &zero,
                                             y + m0 * N + n0, (int)N),
                                 "linear sgemm");
        if (rc)
            return rc;
    }
    return 0;
}

/* gemm_bf16() is y = bf16(x) . w^T on the tensor cores for a BF16 w (N, K),
 * LIN_SCRATCH bytes of rounded rows of x at a time. */
static int gemm_bf16(struct cuda_ctx *c, float *y, const float *x, const void *w, int64_t M,
                     int64_t N, int64_t K)
{
    int64_t mb = (int64_t)(LIN_SCRATCH / ((size_t)K * sizeof(uint16_t)));
    if (mb < 1)
        mb = 1;
    if (mb > M)
        mb = M;
    if (mb > LIN_MAX_ROWS)
        mb = LIN_MAX_ROWS;
    uint16_t *xb = (uint16_t *)cuda_scratch(c, (size_t)(mb * K) * sizeof(uint16_t), "linear");
    if (!xb)
        return ENC_ENOMEM;
    const float one = 1.0f, zero = 0.0f;
    for (int64_t m0 = 0; m0 < M; m0 += mb) {
        int64_t mm = M - m0 < mb ? M - m0 : mb;
        narrow_bf16_kernel<<<cuda_blocks(mm * K, LIN_THREADS), LIN_THREADS, 0, c->stream>>>(
            xb, x + m0 * K, mm * K);
        int rc = cuda_launch_check("narrow activations to bf16");
        if (rc)
            return rc;
        rc = cuda_blas_check(cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)N, (int)mm,
                                          (int)K, &one, w, CUDA_R_16BF, (int)K, xb, CUDA_R_16BF,
                                          (int)K, &zero, y + m0 * N, CUDA_R_32F, (int)N,
                                          CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                             "linear bf16 gemm");
        if (rc)
            return rc;
    }
    return 0;
}

int cuda_linear(struct backend *be, struct tensor *y, const struct tensor *x,
                const struct tensor *w, const struct tensor *b)
{
    struct cuda_ctx *c = cuda_ctx_of(be);
    int64_t K = x->shape[x->ndim - 1];
    int64_t N = w->shape[0];
    int64_t M = K ? tensor_numel(x) / K : tensor_numel(y) / (N ? N : 1);
    float *yd = (float *)y->data;
    const float *bd = b ? (const float *)b->data : NULL;
    int rc;
    if (M == 0 || N == 0)
        return 0;
    if (K > INT_MAX || N > INT_MAX)
        return log_error_rc(ENC_EINVAL, "cuda linear: N=%lld K=%lld beyond the cuBLAS int range",
                            (long long)N, (long long)K);
    if (K == 0) { /* empty sum: y = b or 0 */
        if ((rc = cuda_check(cudaMemsetAsync(yd, 0, (size_t)(M * N) * sizeof(float), c->stream),
                             "linear memset")))
            return rc;
        return bd ? cuda_add_rowvec(c, yd, bd, M, N, N) : 0;
    }
    if (w->dtype == DTYPE_BF16 && c->gemm_bf16) {
        rc = gemm_bf16(c, yd, (const float *)x->data, w->data, M, N, K);
    } else if (w->dtype == DTYPE_F32) {
        rc = gemm_rows(c, yd, (const float *)x->data, (const float *)w->data, M, N, K, 0, N);
    } else {
        int64_t nb = (int64_t)(LIN_SCRATCH / ((size_t)K * sizeof(float)));
        if (nb < 1)
            nb = 1;
        if (nb > N)
            nb = N;
        float *wt = (float *)cuda_scratch(c, (size_t)(nb * K) * sizeof(float), "linear");
        if (!wt)
            return ENC_ENOMEM;
        rc = 0;
        for (int64_t n0 = 0; n0 < N && !rc; n0 += nb) {
            int64_t nn = N - n0 < nb ? N - n0 : nb;
            const char *src = (const char *)w->data + (size_t)(n0 * K) * dtype_size(w->dtype);
            rc = cuda_weight_to_f32(c, wt, src, w->dtype, nn * K);
            if (!rc)
                rc = gemm_rows(c, yd, (const float *)x->data, wt, M, N, K, n0, nn);
        }
    }
    if (!rc && bd)
        rc = cuda_add_rowvec(c, yd, bd, M, N, N);
    return rc;
}
