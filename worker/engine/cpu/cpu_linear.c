/*
 * cpu_linear.c - y[M,N] = x[M,K] . w[N,K]^T + b[N] with tiled sgemm.
 *
 * The output is cut into tiles of at most LIN_MB rows by LIN_NB columns (256
 * x 256: single-core sgemm stays at ~90% of an untiled call); the
 * tile grid depends only on (M, N), never on the thread count, and each tile
 * is one single-threaded cblas_sgemm over the whole K, so every byte of y is
 * the same however many threads run. A BF16/F16 weight is converted tile by
 * tile (LIN_NB rows of w) into per-thread scratch; a thread keeps its last
 * converted tile and reuses it when its next task needs the same one
 * (conversion is exact, so reuse cannot change results). The whole weight is
 * never converted or copied.
 */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/xmalloc.h"
#include "worker/engine/cpu/cpu_backend.h"

#define LIN_MB 256
#define LIN_NB 256

struct linear_job {
    float *y;               /* (M, N) */
    const float *x;         /* (M, K) */
    const struct tensor *w; /* (N, K) */
    const float *b;         /* (N) or NULL */
    int64_t M, N, K;
    int64_t n_mb; /* row tiles */
    struct cpu_ctx *ctx;
    int64_t *cached; /* (n_threads) column tile held in scratch, -1 none */
};

static void linear_task(void *arg, int64_t task, int tid)
{
    struct linear_job *j = arg;
    int64_t nb = task / j->n_mb, mb = task % j->n_mb;
    int64_t n0 = nb * LIN_NB, m0 = mb * LIN_MB;
    int64_t nn = j->N - n0 < LIN_NB ? j->N - n0 : LIN_NB;
    int64_t mm = j->M - m0 < LIN_MB ? j->M - m0 : LIN_MB;
    const float *wt;
    if (j->w->dtype == DTYPE_F32) {
        wt = (const float *)j->w->data + n0 * j->K;
    } else {
        float *s = cpu_scratch(j->ctx, tid);
        if (j->cached[tid] != nb) {
            cpu_weight_rows_to_f32(s, j->w, n0, nn, j->K);
            j->cached[tid] = nb;
        }
        wt = s;
    }
    float *yt = j->y + m0 * j->N + n0;
    /* with a bias, the tile starts as b and the product is added (beta 1),
     * as torch's addmm does; that also spares sgemm its zeroing pass */
    if (j->b)
        for (int64_t i = 0; i < mm; i++)
            memcpy(yt + i * j->N, j->b + n0, (size_t)nn * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)mm, (int)nn, (int)j->K, 1.0f,
                j->x + m0 * j->K, (int)j->K, wt, (int)j->K, j->b ? 1.0f : 0.0f, yt, (int)j->N);
}

int cpu_linear(struct backend *be, struct tensor *y, const struct tensor *x, const struct tensor *w,
               const struct tensor *b)
{
    struct cpu_ctx *c = cpu_ctx_of(be);
    int64_t K = x->shape[x->ndim - 1];
    int64_t N = w->shape[0];
    int64_t M = K ? tensor_numel(x) / K : tensor_numel(y) / (N ? N : 1);
    if (M == 0 || N == 0)
        return 0;
    if (K == 0) { /* empty sum: y = b or 0 */
        float *yy = y->data;
        for (int64_t i = 0; i < M; i++)
            for (int64_t n = 0; n < N; n++)
                yy[i * N + n] = b ? ((const float *)b->data)[n] : 0.0f;
        return 0;
    }
    if (w->dtype != DTYPE_F32) {
        int rc = cpu_scratch_reserve(c, (size_t)(LIN_NB * K) * sizeof(float), "linear");
        if (rc)
            return rc;
    }
    int64_t *cached = xmalloc((size_t)c->n_threads * sizeof *cached);
    for (int i = 0; i < c->n_threads; i++)
        cached[i] = -1;
    struct linear_job j = {
        .y = y->data,
        .x = x->data,
        .w = w,
        .b = b ? b->data : NULL,
        .M = M,
        .N = N,
        .K = K,
        .n_mb = (M + LIN_MB - 1) / LIN_MB,
        .ctx = c,
        .cached = cached,
    };
    int64_t n_nb = (N + LIN_NB - 1) / LIN_NB;
    cpu_pool_run(c->pool, n_nb * j.n_mb, linear_task, &j);
    free(cached);
    return 0;
}
