/*
 * cuda_backend.h - what the cuda backend's op files share (internal).
 *
 * The cuda backend keeps every tensor in device memory and runs every op on
 * one CUDA stream of its device, so ops execute in the order they are called
 * and a whole forward runs without a host round trip (only upload, download
 * and sync wait for the device). One cuBLAS handle bound to that stream does
 * the GEMMs, with atomics disallowed and the default (non-TF32) math mode.
 * Reductions are written with a fixed order (per-thread strided sums, then a
 * fixed shared-memory tree or shuffle butterfly): no atomics, so the bytes of
 * every result are the same run to run on one device model and toolkit.
 * Scratch is one grow-only device buffer used in stream order by one op at a
 * time. Not re-entrant: one op at a time per backend (as the cpu backend).
 *
 * Errors: a failed CUDA or cuBLAS call is logged once with the call's name
 * and the CUDA error string, and becomes ENC_EDEVICE (ENC_ENOMEM for an
 * allocation). The .cu files include the C headers inside extern "C".
 */
#ifndef ENCORE_CUDA_BACKEND_H
#define ENCORE_CUDA_BACKEND_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

extern "C" {
#include "common/err.h"
#include "common/log.h"
#include "worker/engine/backend.h"
}

struct cuda_ctx {
    int device;
    cudaStream_t stream; /* every op and copy runs here, in call order */
    cublasHandle_t blas; /* bound to stream */
    int use_pool;        /* 1: cudaMallocAsync/cudaFreeAsync on stream */
    int gemm_bf16;       /* 1: bf16 weights x bf16-rounded activations (opt-in) */
    int max_smem_optin;  /* bytes of dynamic shared memory a block may opt into */
    void *scratch;       /* (scratch_cap) device bytes, grow-only */
    size_t scratch_cap;
    /* rope3d cos/sin tables of the last parameters, kept on the device */
    struct rope3d_params rope_key;
    double *rope_tab; /* (rope_cap / 8) doubles or NULL */
    size_t rope_cap;
    char name[96]; /* "cuda:N (device name)" for messages */
};

/* cuda_ctx_of() is be's context with its device made current. */
struct cuda_ctx *cuda_ctx_of(struct backend *be);

/* cuda_check() logs "cuda <what>: <error string>" and returns ENC_EDEVICE
 * (ENC_ENOMEM for cudaErrorMemoryAllocation) when err is not cudaSuccess. */
int cuda_check(cudaError_t err, const char *what);
/* cuda_blas_check() is the same for a cuBLAS status. */
int cuda_blas_check(cublasStatus_t st, const char *what);
/* cuda_launch_check() checks the launch just made (cudaGetLastError). */
int cuda_launch_check(const char *what);

/* cuda_dev_alloc() is bytes of device memory (stream-ordered), NULL when
 * out of memory (logged); cuda_dev_free() frees it after queued work. */
void *cuda_dev_alloc(struct cuda_ctx *c, size_t bytes);
void cuda_dev_free(struct cuda_ctx *c, void *p);

/* cuda_scratch() returns at least bytes of device scratch, valid until the
 * next call (earlier work on the stream may still use the old buffer; the
 * grow waits for it). NULL, with ENC_ENOMEM logged, when it cannot grow. */
void *cuda_scratch(struct cuda_ctx *c, size_t bytes, const char *what);

/* cuda_blocks() is the grid size of a grid-stride loop over n items. */
static inline unsigned cuda_blocks(int64_t n, int threads)
{
    int64_t b = (n + threads - 1) / threads;
    if (b < 1)
        b = 1;
    if (b > 65535L * 16)
        b = 65535L * 16;
    return (unsigned)b;
}

/* cuda_weight_to_f32() converts n elements of a F32/BF16/F16 device array
 * to f32 into dst (exact). 0 or ENC_EDEVICE. */
int cuda_weight_to_f32(struct cuda_ctx *c, float *dst, const void *src, enum dtype dt, int64_t n);
/* cuda_add_rowvec() adds b[cols] to every row of y[rows, ld] (first cols
 * columns), in place: y = y + b as one f32 rounding. */
int cuda_add_rowvec(struct cuda_ctx *c, float *y, const float *b, int64_t rows, int64_t cols,
                    int64_t ld);

extern "C" {
/* The ops (contracts in backend.h; shapes already checked by backend.c). */
int cuda_linear(struct backend *be, struct tensor *y, const struct tensor *x,
                const struct tensor *w, const struct tensor *b);
int cuda_layer_norm(struct backend *be, struct tensor *y, const struct tensor *x,
                    const struct tensor *w, const struct tensor *b, float eps);
int cuda_rms_norm(struct backend *be, struct tensor *y, const struct tensor *x,
                  const struct tensor *w, float eps);
int cuda_modulate(struct backend *be, struct tensor *y, const struct tensor *x,
                  const struct tensor *shift, const struct tensor *scale);
int cuda_gated_add(struct backend *be, struct tensor *x, const struct tensor *y,
                   const struct tensor *gate);
int cuda_add(struct backend *be, struct tensor *y, const struct tensor *a, const struct tensor *b);
int cuda_mul(struct backend *be, struct tensor *y, const struct tensor *a, const struct tensor *b);
int cuda_scale(struct backend *be, struct tensor *y, const struct tensor *x, float alpha);
int cuda_gelu_tanh(struct backend *be, struct tensor *y, const struct tensor *x);
int cuda_gelu_erf(struct backend *be, struct tensor *y, const struct tensor *x);
int cuda_silu(struct backend *be, struct tensor *y, const struct tensor *x);
int cuda_rope3d(struct backend *be, struct tensor *x, const struct rope3d_params *p);
int cuda_attention(struct backend *be, struct tensor *o, const struct tensor *q,
                   const struct tensor *k, const struct tensor *v, float scale);
int cuda_permute(struct backend *be, struct tensor *y, const struct tensor *x, const int *perm);
int cuda_copy(struct backend *be, struct tensor *y, const struct tensor *x);
int cuda_fill(struct backend *be, struct tensor *y, float value);
int cuda_conv3d(struct backend *be, struct tensor *y, const struct tensor *x,
                const struct tensor *w, const struct tensor *b, const struct conv_params *p);
}

#endif
