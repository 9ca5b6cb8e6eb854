/*
 * cpu_rope.c - 3-D rotary position embedding, in place on x [B, T, H, Dh].
 *
 * Token n = (f*h' + i)*w' + j of the grid rotates its pair m (elements 2m,
 * 2m+1 of every head, read as a + ib) by the angle pos*omega: pos is f for
 * the first split[0] pairs, i for the next split[1], j for the last split[2];
 * omega = theta^(-2k/(2*split)) with k the pair's index within its axis. The
 * cos/sin tables are built per call in double (pos * omega, then cos/sin),
 * the complex product is done in double and rounded once to f32. Tokens past
 * f*h'*w' are left alone. One task per block of tokens of one batch entry.
 */
#include <math.h>
#include <stdlib.h>

#include "common/err.h"
#include "common/xmalloc.h"
#include "worker/engine/cpu/cpu_backend.h"

#define ROPE_TOKENS 64

struct rope_job {
    float *x;
    int64_t T, H, Dh, n_rot;        /* n_rot = f*h'*w' */
    int64_t grid[3];
    int split[3];
    const double *cs[3];            /* per axis: (grid[a], split[a], 2) cos, sin */
    int64_t tasks_per_batch;
};

static void rope_task(void *arg, int64_t task, int tid)
{
    (void)tid;
    struct rope_job *j = arg;
    int64_t bi = task / j->tasks_per_batch;
    int64_t n0 = (task % j->tasks_per_batch) * ROPE_TOKENS;
    int64_t n1 = n0 + ROPE_TOKENS < j->n_rot ? n0 + ROPE_TOKENS : j->n_rot;
    int64_t hw = j->grid[1] * j->grid[2];
    for (int64_t n = n0; n < n1; n++) {
        int64_t pos[3] = {n / hw, (n % hw) / j->grid[2], n % j->grid[2]};
        float *tok = j->x + (bi * j->T + n) * j->H * j->Dh;
        for (int64_t h = 0; h < j->H; h++) {
            float *xh = tok + h * j->Dh;
            int m = 0;
            for (int a = 0; a < 3; a++) {
                const double *t = j->cs[a] + pos[a] * j->split[a] * 2;
                for (int k = 0; k < j->split[a]; k++, m++) {
                    double c = t[2 * k], s = t[2 * k + 1];
                    double re = xh[2 * m], im = xh[2 * m + 1];
                    xh[2 * m] = (float)(re * c - im * s);
                    xh[2 * m + 1] = (float)(re * s + im * c);
                }
            }
        }
    }
}

int cpu_rope3d(struct backend *be, struct tensor *x, const struct rope3d_params *p)
{
    struct rope_job j = {.x = x->data, .T = x->shape[1], .H = x->shape[2], .Dh = x->shape[3]};
    int64_t B = x->shape[0];
    for (int a = 0; a < 3; a++) {
        j.grid[a] = p->grid[a];
        j.split[a] = p->split[a];
    }
    j.n_rot = p->grid[0] * p->grid[1] * p->grid[2];
    if (B == 0 || j.n_rot == 0 || j.H == 0)
        return 0;
    double *tables[3];
    for (int a = 0; a < 3; a++) {
        int s = p->split[a];
        tables[a] = xmalloc((size_t)(p->grid[a] * s * 2 + 1) * sizeof(double));
        for (int k = 0; k < s; k++) {
            /* as Wan's rope_params: 1 / theta^(2k / 2s), in double */
            double omega = 1.0 / pow(p->theta, (double)(2 * k) / (double)(2 * s));
            for (int64_t pos = 0; pos < p->grid[a]; pos++) {
                double ang = (double)pos * omega;
                tables[a][(pos * s + k) * 2] = cos(ang);
                tables[a][(pos * s + k) * 2 + 1] = sin(ang);
            }
        }
        j.cs[a] = tables[a];
    }
    j.tasks_per_batch = (j.n_rot + ROPE_TOKENS - 1) / ROPE_TOKENS;
    cpu_pool_run(cpu_ctx_of(be)->pool, B * j.tasks_per_batch, rope_task, &j);
    for (int a = 0; a < 3; a++)
        free(tables[a]);
    return 0;
}
