/*
 * cuda_conv.cu - 3-D convolution (groups, stride, asymmetric zero padding) as
 * im2col + one strided-batched sgemm per slice of output positions.
 *
 * Per group g the convolution is y_g[Cout_g, P] = w_g[Cout_g, Kg] . col_g[Kg, P]
 * with P = T'H'W' output positions and Kg = Cin_g*kt*kh*kw. The output
 * positions are cut into slices of np (as many as CONV_SCRATCH bytes of col
 * allow; a function of the shapes only); for each slice a kernel writes
 * col[Cin*kt*kh*kw, np] for all groups at once (zeros where the window hangs
 * over the padding), and one cublasSgemmStridedBatched with one batch entry
 * per group writes y[:, p0:p0+np] in column-major terms
 * y_g^T = col_g^T . w_g^T (lda np, ldb Kg, ldc P): nothing is transposed in
 * memory. A BF16/F16 weight is widened to f32 once per call into scratch.
 * The bias is added afterwards, y = fl(sum + b), as on the cpu.
 */
#include <limits.h>

#include "cuda_backend.h"

#define CONV_THREADS 256
#define CONV_SCRATCH ((size_t)256 << 20) /* bytes of col per slice */

struct conv_shape {
    int64_t T, H, W, Ho, Wo;
    int kt, kh, kw;
    int stride[3], pad[3];
};

/* col[(ci*kvol + kk)*np + i] for output positions p0 + i */
__global__ void im2col_kernel(float *col, const float *x, int64_t n, int64_t np, int64_t p0,
                              struct conv_shape s)
{
    int64_t kvol = (int64_t)s.kt * s.kh * s.kw;
    int64_t HoWo = s.Ho * s.Wo;
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n;
         e += (int64_t)gridDim.x * blockDim.x) {
        int64_t i = e % np, row = e / np;
        int64_t kk = row % kvol, ci = row / kvol;
        int64_t dw = kk % s.kw, dh = (kk / s.kw) % s.kh, dt = kk / ((int64_t)s.kw * s.kh);
        int64_t p = p0 + i;
        int64_t to = p / HoWo, ho = (p % HoWo) / s.Wo, wo = p % s.Wo;
        int64_t ti = to * s.stride[0] - s.pad[0] + dt;
        int64_t hi = ho * s.stride[1] - s.pad[1] + dh;
        int64_t wi = wo * s.stride[2] - s.pad[2] + dw;
        bool inside = ti >= 0 && ti < s.T && hi >= 0 && hi < s.H && wi >= 0 && wi < s.W;
        col[e] = inside ? x[((ci * s.T + ti) * s.H + hi) * s.W + wi] : 0.0f;
    }
}

/* y[co, i] += b[co] for y (Cout, P) */
__global__ void add_chanvec_kernel(float *y, const float *b, int64_t n, int64_t P)
{
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n;
         e += (int64_t)gridDim.x * blockDim.x)
        y[e] = __fadd_rn(y[e], b[e / P]);
}

int cuda_conv3d(struct backend *be, struct tensor *y, const struct tensor *x,
                const struct tensor *w, const struct tensor *b, const struct conv_params *p)
{
    struct cuda_ctx *c = cuda_ctx_of(be);
    struct conv_shape s;
    s.T = x->shape[1];
    s.H = x->shape[2];
    s.W = x->shape[3];
    s.Ho = y->shape[2];
    s.Wo = y->shape[3];
    s.kt = (int)w->shape[2];
    s.kh = (int)w->shape[3];
    s.kw = (int)w->shape[4];
    for (int a = 0; a < 3; a++) {
        s.stride[a] = p->stride[a];
        s.pad[a] = p->pad_front[a];
    }
    int64_t cin = x->shape[0], cout = y->shape[0], groups = p->groups;
    int64_t cout_g = cout / groups, cin_g = w->shape[1];
    int64_t kvol = (int64_t)s.kt * s.kh * s.kw, Kg = cin_g * kvol;
    int64_t P = y->shape[1] * s.Ho * s.Wo;
    float *yd = (float *)y->data;
    int rc;
    if (P == 0 || cout == 0)
        return 0;
    if (P > INT_MAX || Kg > INT_MAX || cout_g > INT_MAX || groups > INT_MAX)
        return log_error_rc(ENC_EINVAL, "cuda conv3d: P=%lld Kg=%lld beyond the cuBLAS int range",
                            (long long)P, (long long)Kg);
    if (Kg == 0) {
        rc = cuda_check(cudaMemsetAsync(yd, 0, (size_t)(cout * P) * sizeof(float), c->stream),
                        "conv3d memset");
    } else {
        int64_t col_row = cin * kvol; /* floats of col per position */
        int64_t np = (int64_t)(CONV_SCRATCH / ((size_t)col_row * sizeof(float)));
        if (np < 1)
            np = 1;
        if (np > P)
            np = P;
        size_t wbytes = w->dtype == DTYPE_F32 ? 0 : (size_t)(cout * Kg) * sizeof(float);
        size_t wpad = (wbytes + 255) / 256 * 256;
        char *scr =
            (char *)cuda_scratch(c, wpad + (size_t)(col_row * np) * sizeof(float), "conv3d");
        if (!scr)
            return ENC_ENOMEM;
        const float *wf = (const float *)w->data;
        if (wbytes) {
            if ((rc = cuda_weight_to_f32(c, (float *)scr, w->data, w->dtype, cout * Kg)))
                return rc;
            wf = (const float *)scr;
        }
        float *col = (float *)(scr + wpad);
        const float one = 1.0f, zero = 0.0f;
        rc = 0;
        for (int64_t p0 = 0; p0 < P && !rc; p0 += np) {
            int64_t nn = P - p0 < np ? P - p0 : np;
            int64_t n = col_row * nn;
            im2col_kernel<<<cuda_blocks(n, CONV_THREADS), CONV_THREADS, 0, c->stream>>>(
                col, (const float *)x->data, n, nn, p0, s);
            if ((rc = cuda_launch_check("conv3d im2col")))
                break;
            rc = cuda_blas_check(cublasSgemmStridedBatched(
                                     c->blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)nn, (int)cout_g,
                                     (int)Kg, &one, col, (int)nn, Kg * nn, wf, (int)Kg, cout_g * Kg,
                                     &zero, yd + p0, (int)P, cout_g * P, (int)groups),
                                 "conv3d sgemm");
        }
    }
    if (!rc && b) {
        add_chanvec_kernel<<<cuda_blocks(cout * P, CONV_THREADS), CONV_THREADS, 0, c->stream>>>(
            yd, (const float *)b->data, cout * P, P);
        rc = cuda_launch_check("conv3d bias");
    }
    return rc;
}
