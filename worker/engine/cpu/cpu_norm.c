/*
 * cpu_norm.c - layer norm and RMS norm over the last dimension.
 *
 * One task per block of rows; each row's statistics are computed in double
 * in index order (two passes for layer norm: mean, then centred variance),
 * and every output is evaluated in double and rounded once to f32. So rows
 * match a double-precision reference to about one f32 rounding, and nothing
 * depends on the thread count. y may alias x: a row is fully read into its
 * statistics before it is written, and each element is read before its own
 * write.
 */
#include <math.h>

#include "common/err.h"
#include "worker/engine/cpu/cpu_backend.h"

#define NORM_CHUNK 16384

struct norm_job {
    float *y;
    const float *x;
    const float *w, *b;   /* (D) or NULL */
    int64_t D, rows, rows_per_task;
    double eps;
    int rms;
};

static void norm_task(void *arg, int64_t task, int tid)
{
    (void)tid;
    struct norm_job *j = arg;
    int64_t r0 = task * j->rows_per_task;
    int64_t r1 = r0 + j->rows_per_task < j->rows ? r0 + j->rows_per_task : j->rows;
    int64_t D = j->D;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = j->x + r * D;
        float *y = j->y + r * D;
        if (j->rms) {
            double ss = 0.0;
            for (int64_t d = 0; d < D; d++)
                ss += (double)x[d] * x[d];
            double inv = 1.0 / sqrt(ss / (double)D + j->eps);
            for (int64_t d = 0; d < D; d++) {
                double v = x[d] * inv;
                if (j->w)
                    v *= j->w[d];
                y[d] = (float)v;
            }
        } else {
            double sum = 0.0;
            for (int64_t d = 0; d < D; d++)
                sum += x[d];
            double mean = sum / (double)D;
            double var = 0.0;
            for (int64_t d = 0; d < D; d++) {
                double c = x[d] - mean;
                var += c * c;
            }
            double inv = 1.0 / sqrt(var / (double)D + j->eps);
            for (int64_t d = 0; d < D; d++) {
                double v = (x[d] - mean) * inv;
                if (j->w)
                    v *= j->w[d];
                if (j->b)
                    v += j->b[d];
                y[d] = (float)v;
            }
        }
    }
}

static int run_norm(struct backend *be, struct norm_job *j, const struct tensor *x)
{
    j->D = x->shape[x->ndim - 1];
    if (j->D == 0)
        return 0;
    j->rows = tensor_numel(x) / j->D;
    j->rows_per_task = NORM_CHUNK / j->D > 1 ? NORM_CHUNK / j->D : 1;
    if (j->rows == 0)
        return 0;
    cpu_pool_run(cpu_ctx_of(be)->pool, (j->rows + j->rows_per_task - 1) / j->rows_per_task,
                 norm_task, j);
    return 0;
}

int cpu_layer_norm(struct backend *be, struct tensor *y, const struct tensor *x,
                   const struct tensor *w, const struct tensor *b, float eps)
{
    struct norm_job j = {.y = y->data, .x = x->data, .w = w ? w->data : NULL,
                         .b = b ? b->data : NULL, .eps = eps};
    return run_norm(be, &j, x);
}

int cpu_rms_norm(struct backend *be, struct tensor *y, const struct tensor *x,
                 const struct tensor *w, float eps)
{
    struct norm_job j = {.y = y->data, .x = x->data, .w = w ? w->data : NULL, .eps = eps,
                         .rms = 1};
    return run_norm(be, &j, x);
}
