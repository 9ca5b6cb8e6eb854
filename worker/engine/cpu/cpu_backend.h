/*
 * cpu_backend.h - what the cpu backend's op files share (internal).
 *
 * The cpu backend computes in float32 on host memory. Every op cuts its work
 * into tasks whose boundaries depend only on the problem shape and runs them
 * on the backend's pool; a task's bytes never depend on the thread that ran
 * it, so results are identical for any thread count. Ops that need scratch
 * reserve it per thread with cpu_scratch_reserve() before running tasks.
 * Not re-entrant: one op at a time per backend.
 */
#ifndef ENCORE_CPU_BACKEND_H
#define ENCORE_CPU_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "worker/engine/backend.h"
#include "worker/engine/cpu/cpu_pool.h"

struct cpu_ctx {
    struct cpu_pool *pool;
    int n_threads;
    void **scratch;       /* (n_threads) 64-byte aligned per-thread buffers */
    size_t *scratch_cap;  /* (n_threads) their sizes in bytes */
};

static inline struct cpu_ctx *cpu_ctx_of(struct backend *be)
{
    return be->ctx;
}

/* cpu_scratch_reserve() makes every thread's scratch at least bytes long
 * (grow-only). 0 or ENC_ENOMEM (logged with the size). */
int cpu_scratch_reserve(struct cpu_ctx *c, size_t bytes, const char *what);
/* cpu_scratch() is thread tid's buffer, valid after a reserve. */
static inline void *cpu_scratch(struct cpu_ctx *c, int tid)
{
    return c->scratch[tid];
}

/* cpu_weight_rows_to_f32() converts rows [r0, r0+nr) of a row-major weight
 * matrix with k columns (F32, BF16 or F16) into dst (nr x k floats). */
void cpu_weight_rows_to_f32(float *dst, const struct tensor *w, int64_t r0, int64_t nr,
                            int64_t k);

/* The ops (contracts in backend.h; shapes already checked by backend.c). */
int cpu_linear(struct backend *be, struct tensor *y, const struct tensor *x,
               const struct tensor *w, const struct tensor *b);
int cpu_layer_norm(struct backend *be, struct tensor *y, const struct tensor *x,
                   const struct tensor *w, const struct tensor *b, float eps);
int cpu_rms_norm(struct backend *be, struct tensor *y, const struct tensor *x,
                 const struct tensor *w, float eps);
int cpu_modulate(struct backend *be, struct tensor *y, const struct tensor *x,
                 const struct tensor *shift, const struct tensor *scale);
int cpu_gated_add(struct backend *be, struct tensor *x, const struct tensor *y,
                  const struct tensor *gate);
int cpu_add(struct backend *be, struct tensor *y, const struct tensor *a,
            const struct tensor *b);
int cpu_mul(struct backend *be, struct tensor *y, const struct tensor *a,
            const struct tensor *b);
int cpu_scale(struct backend *be, struct tensor *y, const struct tensor *x, float alpha);
int cpu_gelu_tanh(struct backend *be, struct tensor *y, const struct tensor *x);
int cpu_gelu_erf(struct backend *be, struct tensor *y, const struct tensor *x);
int cpu_silu(struct backend *be, struct tensor *y, const struct tensor *x);
int cpu_rope3d(struct backend *be, struct tensor *x, const struct rope3d_params *p);
int cpu_attention(struct backend *be, struct tensor *o, const struct tensor *q,
                  const struct tensor *k, const struct tensor *v, float scale);
int cpu_permute(struct backend *be, struct tensor *y, const struct tensor *x, const int *perm);
int cpu_copy(struct backend *be, struct tensor *y, const struct tensor *x);
int cpu_fill(struct backend *be, struct tensor *y, float value);
int cpu_conv3d(struct backend *be, struct tensor *y, const struct tensor *x,
               const struct tensor *w, const struct tensor *b, const struct conv_params *p);

#endif
