/*
 * backend.h - the engine's compute interface: a table of ops plus a context.
 *
 * Models are written once against the backend_*() wrappers below; a backend
 * (cpu now, cuda with `make CUDA=1`) implements struct backend_ops. Tensors
 * passed to an op live on that op's backend, so a device backend runs a
 * whole forward without a host round trip per op.
 *
 * Contracts common to every op:
 * - activations are DTYPE_F32 and contiguous (views are fine); only the
 *   weight argument of linear and conv may also be BF16 or F16;
 * - the output is the first argument; it may alias an input only where the
 *   op says so;
 * - results are a pure function of the inputs: the same bytes whatever the
 *   number of threads or streams (DESIGN 2, the exactness invariant);
 * - an op returns 0 or a negative enc_err (ENC_EINVAL on a shape mismatch,
 *   logged with the shapes; ENC_ENOMEM when scratch cannot be had).
 * The wrappers check shapes before dispatch, so backends may assume them.
 */
#ifndef ENCORE_BACKEND_H
#define ENCORE_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "tensor.h"

struct backend;

/* The shape of one 3-D convolution (conv1d and conv2d are the kt=1/kh=1 cases). */
struct conv_params {
    int stride[3];       /* t, h, w */
    int pad_front[3];    /* zero padding before: t, h, w */
    int pad_back[3];     /* zero padding after: t, h, w */
    int groups;          /* 1, or Cin for depthwise-style grouped convs */
};

/* The layout of 3-D rotary embedding over a (frames, rows, cols) token grid. */
struct rope3d_params {
    int64_t grid[3];     /* f, h', w': the first f*h'*w' tokens are rotated */
    int split[3];        /* complex pairs per axis, sum = head_dim/2 */
    double theta;        /* 10000 */
};

enum backend_op {
    BACKEND_OP_LINEAR = 0,
    BACKEND_OP_LAYER_NORM,
    BACKEND_OP_RMS_NORM,
    BACKEND_OP_MODULATE,
    BACKEND_OP_GATED_ADD,
    BACKEND_OP_ADD,
    BACKEND_OP_MUL,
    BACKEND_OP_SCALE,
    BACKEND_OP_GELU_TANH,
    BACKEND_OP_GELU_ERF,
    BACKEND_OP_SILU,
    BACKEND_OP_ROPE3D,
    BACKEND_OP_ATTENTION,
    BACKEND_OP_PERMUTE,
    BACKEND_OP_COPY,
    BACKEND_OP_FILL,
    BACKEND_OP_CONV3D,
    BACKEND_OP_COUNT
};

struct backend_ops {
    const char *name;
    void (*destroy)(struct backend *be);

    /* Memory. alloc returns NULL when out of memory. */
    void *(*alloc)(struct backend *be, size_t bytes);
    void (*free)(struct backend *be, void *p);
    int (*upload)(struct backend *be, void *dst, const void *host_src, size_t bytes);
    int (*download)(struct backend *be, void *host_dst, const void *src, size_t bytes);
    /* adopt_host: make read-only host memory (e.g. an mmap'd checkpoint)
     * usable as tensor data; cpu returns it unchanged, cuda copies it. The
     * result is freed with release_adopted (a no-op on cpu). */
    void *(*adopt_host)(struct backend *be, const void *host, size_t bytes);
    void (*release_adopted)(struct backend *be, void *p);
    int (*sync)(struct backend *be);

    /* Ops; see the wrappers for each contract. */
    int (*linear)(struct backend *be, struct tensor *y, const struct tensor *x,
                  const struct tensor *w, const struct tensor *b);
    int (*layer_norm)(struct backend *be, struct tensor *y, const struct tensor *x,
                      const struct tensor *w, const struct tensor *b, float eps);
    int (*rms_norm)(struct backend *be, struct tensor *y, const struct tensor *x,
                    const struct tensor *w, float eps);
    int (*modulate)(struct backend *be, struct tensor *y, const struct tensor *x,
                    const struct tensor *shift, const struct tensor *scale);
    int (*gated_add)(struct backend *be, struct tensor *x, const struct tensor *y,
                     const struct tensor *gate);
    int (*add)(struct backend *be, struct tensor *y, const struct tensor *a,
               const struct tensor *b);
    int (*mul)(struct backend *be, struct tensor *y, const struct tensor *a,
               const struct tensor *b);
    int (*scale)(struct backend *be, struct tensor *y, const struct tensor *x, float alpha);
    int (*gelu_tanh)(struct backend *be, struct tensor *y, const struct tensor *x);
    int (*gelu_erf)(struct backend *be, struct tensor *y, const struct tensor *x);
    int (*silu)(struct backend *be, struct tensor *y, const struct tensor *x);
    int (*rope3d)(struct backend *be, struct tensor *x, const struct rope3d_params *p);
    int (*attention)(struct backend *be, struct tensor *o, const struct tensor *q,
                     const struct tensor *k, const struct tensor *v, float scale);
    int (*permute)(struct backend *be, struct tensor *y, const struct tensor *x,
                   const int *perm);
    int (*copy)(struct backend *be, struct tensor *y, const struct tensor *x);
    int (*fill)(struct backend *be, struct tensor *y, float value);
    int (*conv3d)(struct backend *be, struct tensor *y, const struct tensor *x,
                  const struct tensor *w, const struct tensor *b, const struct conv_params *p);
};

struct backend {
    const struct backend_ops *ops;
    void *ctx;            /* the implementation's state */
    int n_threads;        /* worker threads the backend may use (cpu) */
    uint64_t op_calls[BACKEND_OP_COUNT];   /* per-op call counts, for tracing */
};

/*
 * backend_open() opens "cpu" or "cuda:N". n_threads <= 0 means one per core
 * (ENCORE_THREADS overrides). Returns NULL, with a logged reason, when the
 * backend was not built in or there is no such device. Free with
 * backend_destroy().
 */
struct backend *backend_open(const char *spec, int n_threads);
void backend_destroy(struct backend **be);
const char *backend_name(const struct backend *be);
/* backend_list() names the backends this build has, e.g. "cpu" or "cpu,cuda". */
const char *backend_list(void);

void *backend_alloc(struct backend *be, size_t bytes);
void backend_free(struct backend *be, void *p);
int backend_upload(struct backend *be, struct tensor *dst, const void *host, size_t bytes);
int backend_download(struct backend *be, void *host, const struct tensor *src, size_t bytes);
int backend_sync(struct backend *be);

/*
 * backend_tensor_from_host() makes a new tensor on be holding a copy of the
 * host array (same dtype), or adopts it without a copy when adopt is set
 * and the backend can (cpu): the host memory must then outlive the tensor.
 * NULL on out-of-memory. Free with tensor_destroy().
 */
struct tensor *backend_tensor_from_host(struct backend *be, enum dtype dt, int ndim,
                                        const int64_t *shape, const void *host, int adopt);
/* backend_tensor_to_f32() downloads an f32 tensor into a new host array
 * (caller frees) of numel floats; NULL on failure. */
float *backend_tensor_to_f32(struct backend *be, const struct tensor *t);

/* y[M,N] = x[M,K] . w[N,K]^T + b[N]; w may be F32, BF16 or F16; b may be NULL.
 * Leading dims of x and y are flattened into M. y must not alias x. */
int backend_linear(struct backend *be, struct tensor *y, const struct tensor *x,
                   const struct tensor *w, const struct tensor *b);
/* y = (x - mean) / sqrt(var + eps) * w + b over the last dim; w, b may be
 * NULL (no affine). var is the population variance. y may alias x. */
int backend_layer_norm(struct backend *be, struct tensor *y, const struct tensor *x,
                       const struct tensor *w, const struct tensor *b, float eps);
/* y = x * rsqrt(mean(x^2) + eps) * w over the last dim; w may be NULL. y may alias x. */
int backend_rms_norm(struct backend *be, struct tensor *y, const struct tensor *x,
                     const struct tensor *w, float eps);
/* y[b,t,:] = x[b,t,:] * (1 + scale[b,:]) + shift[b,:]; x,y [B,T,D]; shift,
 * scale [B,D] (or [1,D], broadcast over b). y may alias x. */
int backend_modulate(struct backend *be, struct tensor *y, const struct tensor *x,
                     const struct tensor *shift, const struct tensor *scale);
/* x[b,t,:] += y[b,t,:] * gate[b,:]; x,y [B,T,D]; gate [B,D] or [1,D]. */
int backend_gated_add(struct backend *be, struct tensor *x, const struct tensor *y,
                      const struct tensor *gate);
/* y = a + b elementwise; b may have fewer elements than a when numel(a) is a
 * multiple of numel(b) (b repeats: a row bias). y may alias a. */
int backend_add(struct backend *be, struct tensor *y, const struct tensor *a,
                const struct tensor *b);
/* y = a * b elementwise, same broadcast rule as add. y may alias a. */
int backend_mul(struct backend *be, struct tensor *y, const struct tensor *a,
                const struct tensor *b);
/* y = alpha * x. y may alias x. */
int backend_scale(struct backend *be, struct tensor *y, const struct tensor *x, float alpha);
/* GELU with the tanh approximation; y may alias x. */
int backend_gelu_tanh(struct backend *be, struct tensor *y, const struct tensor *x);
/* exact GELU, 0.5 x (1 + erf(x / sqrt 2)); y may alias x. */
int backend_gelu_erf(struct backend *be, struct tensor *y, const struct tensor *x);
/* x * sigmoid(x); y may alias x. */
int backend_silu(struct backend *be, struct tensor *y, const struct tensor *x);
/* In place on x [B, T, H, Dh]: adjacent pairs (2m, 2m+1) of each head are
 * rotated by the angle of token n = (f*h'+i)*w'+j for n < f*h'*w' (pair m
 * uses axis t for m < split[0], h next, w last; omega = theta^(-2k/(2*split))
 * with k the pair's index within its axis); angles and products in double,
 * rounded to f32. Tokens past the grid are left alone. */
int backend_rope3d(struct backend *be, struct tensor *x, const struct rope3d_params *p);
/* o[B,Tq,H,D] = softmax(q . k^T * scale) . v per batch and head, with q
 * [B,Tq,H,D], k and v [B,Tk,H,D]. No mask. Memory O(Tq + Tk): the Tq x Tk
 * score matrix is never materialised. o must not alias q, k or v. */
int backend_attention(struct backend *be, struct tensor *o, const struct tensor *q,
                      const struct tensor *k, const struct tensor *v, float scale);
/* y = x with its dims reordered: y.shape[i] = x.shape[perm[i]]. */
int backend_permute(struct backend *be, struct tensor *y, const struct tensor *x,
                    const int *perm);
/* y = x, same numel and dtype (shapes may differ: a reshape copy). */
int backend_copy(struct backend *be, struct tensor *y, const struct tensor *x);
/* every element of y = value (f32). */
int backend_fill(struct backend *be, struct tensor *y, float value);
/* y[Cout,T',H',W'] = conv of x[Cin,T,H,W] with w[Cout,Cin/groups,kt,kh,kw]
 * (F32/BF16/F16) plus b[Cout] (may be NULL), zero padding as p says, no
 * dilation: T' = (T + pf + pb - kt) / st + 1, same for H', W'. */
int backend_conv3d(struct backend *be, struct tensor *y, const struct tensor *x,
                   const struct tensor *w, const struct tensor *b, const struct conv_params *p);

/* The cpu backend (worker/engine/cpu/); always built. */
struct backend *backend_cpu_new(int n_threads);
#ifdef ENCORE_CUDA
/* The cuda backend (worker/engine/cuda/); built with `make CUDA=1`. */
struct backend *backend_cuda_new(int device);
#endif

#endif
