/*
 * cuda_elementwise.cu - per-element ops, modulate, gated_add, copy and fill.
 *
 * Grid-stride kernels, one output element per iteration: each element is a
 * fixed formula of its inputs, so nothing depends on the launch shape. The
 * formulas are the cpu backend's, term for term: activations evaluate in
 * double and round once to f32 in the forms that do not cancel for large
 * negative inputs (gelu_tanh x / (1 + e^(-2u)), gelu_erf x/2 erfc(-x/sqrt 2),
 * silu x / (1 + e^-x)); the f32 arithmetic of add, mul, scale, modulate and
 * gated_add uses the _rn intrinsics so no multiply-add is ever fused (the
 * build passes --fmad=false too, as the C side uses -ffp-contract=off).
 * Outputs may alias their first input at the same index.
 */
#include "cuda_backend.h"

#define EW_THREADS 256

enum ew_kind {
    EW_ADD,
    EW_MUL,
    EW_SCALE,
    EW_GELU_TANH,
    EW_GELU_ERF,
    EW_SILU,
    EW_FILL,
};

/* sqrt(2/pi) and 1/sqrt(2) in double, the values of glibc's M_ constants */
#define EW_SQRT_2_OVER_PI 0.79788456080286535588
#define EW_SQRT1_2 0.70710678118654752440

#define GRID_STRIDE(i, n)                                                                          \
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n);                      \
         i += (int64_t)gridDim.x * blockDim.x)

template <enum ew_kind K>
__global__ void ew_kernel(float *y, const float *a, const float *b, int64_t n, int64_t nb,
                          float alpha)
{
    GRID_STRIDE(i, n)
    {
        switch (K) {
        case EW_ADD: y[i] = __fadd_rn(a[i], b[i % nb]); break;
        case EW_MUL: y[i] = __fmul_rn(a[i], b[i % nb]); break;
        case EW_SCALE: y[i] = __fmul_rn(alpha, a[i]); break;
        case EW_GELU_TANH: {
            double x = a[i];
            double u = EW_SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
            y[i] = (float)(x / (1.0 + exp(-2.0 * u)));
            break;
        }
        case EW_GELU_ERF: {
            double x = a[i];
            y[i] = (float)(0.5 * x * erfc(-x * EW_SQRT1_2));
            break;
        }
        case EW_SILU: {
            double x = a[i];
            y[i] = (float)(x / (1.0 + exp(-x)));
            break;
        }
        case EW_FILL: y[i] = alpha; break;
        }
    }
}

template <enum ew_kind K>
static int run_ew(struct backend *be, float *y, const float *a, const float *b, int64_t n,
                  int64_t nb, float alpha, const char *what)
{
    struct cuda_ctx *c = cuda_ctx_of(be);
    if (n <= 0)
        return 0;
    ew_kernel<K><<<cuda_blocks(n, EW_THREADS), EW_THREADS, 0, c->stream>>>(y, a, b, n, nb, alpha);
    return cuda_launch_check(what);
}

#define F(t) ((float *)(t)->data)
#define CF(t) ((const float *)(t)->data)

int cuda_add(struct backend *be, struct tensor *y, const struct tensor *a, const struct tensor *b)
{
    return run_ew<EW_ADD>(be, F(y), CF(a), CF(b), tensor_numel(a), tensor_numel(b), 0.0f, "add");
}

int cuda_mul(struct backend *be, struct tensor *y, const struct tensor *a, const struct tensor *b)
{
    return run_ew<EW_MUL>(be, F(y), CF(a), CF(b), tensor_numel(a), tensor_numel(b), 0.0f, "mul");
}

int cuda_scale(struct backend *be, struct tensor *y, const struct tensor *x, float alpha)
{
    return run_ew<EW_SCALE>(be, F(y), CF(x), NULL, tensor_numel(x), 1, alpha, "scale");
}

int cuda_gelu_tanh(struct backend *be, struct tensor *y, const struct tensor *x)
{
    return run_ew<EW_GELU_TANH>(be, F(y), CF(x), NULL, tensor_numel(x), 1, 0.0f, "gelu_tanh");
}

int cuda_gelu_erf(struct backend *be, struct tensor *y, const struct tensor *x)
{
    return run_ew<EW_GELU_ERF>(be, F(y), CF(x), NULL, tensor_numel(x), 1, 0.0f, "gelu_erf");
}

int cuda_silu(struct backend *be, struct tensor *y, const struct tensor *x)
{
    return run_ew<EW_SILU>(be, F(y), CF(x), NULL, tensor_numel(x), 1, 0.0f, "silu");
}

int cuda_fill(struct backend *be, struct tensor *y, float value)
{
    return run_ew<EW_FILL>(be, F(y), NULL, NULL, tensor_numel(y), 1, value, "fill");
}

/* ---- modulate and gated_add: rows of D with a per-batch row vector ---- */

/* y[r, d] = x[r, d] * (1 + scale[v, d]) + shift[v, d], v = Bv == 1 ? 0 : r / T */
__global__ void modulate_kernel(float *y, const float *x, const float *shift, const float *scale,
                                int64_t n, int64_t T, int64_t D, int64_t Bv)
{
    GRID_STRIDE(i, n)
    {
        int64_t r = i / D, d = i - r * D;
        int64_t v = (Bv == 1 ? 0 : r / T) * D + d;
        y[i] = __fadd_rn(__fmul_rn(x[i], __fadd_rn(1.0f, scale[v])), shift[v]);
    }
}

/* x[r, d] += y[r, d] * gate[v, d] */
__global__ void gated_add_kernel(float *x, const float *y, const float *gate, int64_t n, int64_t T,
                                 int64_t D, int64_t Bv)
{
    GRID_STRIDE(i, n)
    {
        int64_t r = i / D, d = i - r * D;
        int64_t v = (Bv == 1 ? 0 : r / T) * D + d;
        x[i] = __fadd_rn(x[i], __fmul_rn(y[i], gate[v]));
    }
}

int cuda_modulate(struct backend *be, struct tensor *y, const struct tensor *x,
                  const struct tensor *shift, const struct tensor *scale)
{
    struct cuda_ctx *c = cuda_ctx_of(be);
    int64_t B = x->shape[0], T = x->shape[1], D = x->shape[2];
    int64_t n = B * T * D;
    if (n <= 0)
        return 0;
    modulate_kernel<<<cuda_blocks(n, EW_THREADS), EW_THREADS, 0, c->stream>>>(
        F(y), CF(x), CF(shift), CF(scale), n, T, D, tensor_numel(shift) == D ? 1 : B);
    return cuda_launch_check("modulate");
}

int cuda_gated_add(struct backend *be, struct tensor *x, const struct tensor *y,
                   const struct tensor *gate)
{
    struct cuda_ctx *c = cuda_ctx_of(be);
    int64_t B = x->shape[0], T = x->shape[1], D = x->shape[2];
    int64_t n = B * T * D;
    if (n <= 0)
        return 0;
    gated_add_kernel<<<cuda_blocks(n, EW_THREADS), EW_THREADS, 0, c->stream>>>(
        F(x), CF(y), CF(gate), n, T, D, tensor_numel(gate) == D ? 1 : B);
    return cuda_launch_check("gated_add");
}

/* ---- copy ---- */

int cuda_copy(struct backend *be, struct tensor *y, const struct tensor *x)
{
    struct cuda_ctx *c = cuda_ctx_of(be);
    size_t n = tensor_nbytes(x);
    if (n == 0 || y->data == x->data)
        return 0;
    const char *xs = (const char *)x->data, *ys = (const char *)y->data;
    if (ys < xs + n && xs < ys + n) {
        /* cudaMemcpy does not handle overlap: go through scratch */
        void *tmp = cuda_scratch(c, n, "copy");
        if (!tmp)
            return ENC_ENOMEM;
        int rc = cuda_check(cudaMemcpyAsync(tmp, x->data, n, cudaMemcpyDeviceToDevice, c->stream),
                            "copy");
        if (rc)
            return rc;
        return cuda_check(cudaMemcpyAsync(y->data, tmp, n, cudaMemcpyDeviceToDevice, c->stream),
                          "copy");
    }
    return cuda_check(cudaMemcpyAsync(y->data, x->data, n, cudaMemcpyDeviceToDevice, c->stream),
                      "copy");
}
