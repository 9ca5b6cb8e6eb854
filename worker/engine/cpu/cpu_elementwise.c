/*
 * cpu_elementwise.c - per-element ops, permute, copy and fill.
 *
 * Work is cut into chunks of EW_CHUNK elements (or whole rows for the ops
 * with a per-row broadcast); each element is a fixed formula of its inputs,
 * so the result cannot depend on the thread count. Activations evaluate in
 * double and round once to f32, in the forms that do not cancel for large
 * negative inputs: gelu_tanh x / (1 + e^(-2u)), gelu_erf x/2 erfc(-x/sqrt 2),
 * silu x / (1 + e^-x). Outputs may alias their first input (same index).
 */
#include <math.h>
#include <string.h>

#include "common/err.h"
#include "worker/engine/cpu/cpu_backend.h"

#define EW_CHUNK 16384

enum ew_kind {
    EW_ADD,
    EW_MUL,
    EW_SCALE,
    EW_GELU_TANH,
    EW_GELU_ERF,
    EW_SILU,
    EW_FILL,
};

struct ew_job {
    enum ew_kind kind;
    float *y;
    const float *a;
    const float *b;     /* add/mul: (nb) repeating */
    int64_t n, nb;
    float alpha;
};

static void ew_task(void *arg, int64_t task, int tid)
{
    (void)tid;
    struct ew_job *j = arg;
    int64_t i0 = task * EW_CHUNK;
    int64_t i1 = i0 + EW_CHUNK < j->n ? i0 + EW_CHUNK : j->n;
    float *y = j->y;
    const float *a = j->a;
    switch (j->kind) {
    case EW_ADD:
    case EW_MUL: {
        int64_t bi = i0 % j->nb;
        for (int64_t i = i0; i < i1; i++) {
            y[i] = j->kind == EW_ADD ? a[i] + j->b[bi] : a[i] * j->b[bi];
            if (++bi == j->nb)
                bi = 0;
        }
        break;
    }
    case EW_SCALE:
        for (int64_t i = i0; i < i1; i++)
            y[i] = j->alpha * a[i];
        break;
    case EW_GELU_TANH: {
        const double k = sqrt(2.0 / M_PI);
        for (int64_t i = i0; i < i1; i++) {
            double x = a[i];
            double u = k * (x + 0.044715 * x * x * x);
            y[i] = (float)(x / (1.0 + exp(-2.0 * u)));
        }
        break;
    }
    case EW_GELU_ERF:
        for (int64_t i = i0; i < i1; i++) {
            double x = a[i];
            y[i] = (float)(0.5 * x * erfc(-x * M_SQRT1_2));
        }
        break;
    case EW_SILU:
        for (int64_t i = i0; i < i1; i++) {
            double x = a[i];
            y[i] = (float)(x / (1.0 + exp(-x)));
        }
        break;
    case EW_FILL:
        for (int64_t i = i0; i < i1; i++)
            y[i] = j->alpha;
        break;
    }
}

static int run_ew(struct backend *be, struct ew_job *j)
{
    if (j->n <= 0)
        return 0;
    cpu_pool_run(cpu_ctx_of(be)->pool, (j->n + EW_CHUNK - 1) / EW_CHUNK, ew_task, j);
    return 0;
}

int cpu_add(struct backend *be, struct tensor *y, const struct tensor *a, const struct tensor *b)
{
    struct ew_job j = {.kind = EW_ADD, .y = y->data, .a = a->data, .b = b->data,
                       .n = tensor_numel(a), .nb = tensor_numel(b)};
    return run_ew(be, &j);
}

int cpu_mul(struct backend *be, struct tensor *y, const struct tensor *a, const struct tensor *b)
{
    struct ew_job j = {.kind = EW_MUL, .y = y->data, .a = a->data, .b = b->data,
                       .n = tensor_numel(a), .nb = tensor_numel(b)};
    return run_ew(be, &j);
}

int cpu_scale(struct backend *be, struct tensor *y, const struct tensor *x, float alpha)
{
    struct ew_job j = {.kind = EW_SCALE, .y = y->data, .a = x->data, .n = tensor_numel(x),
                       .alpha = alpha};
    return run_ew(be, &j);
}

int cpu_gelu_tanh(struct backend *be, struct tensor *y, const struct tensor *x)
{
    struct ew_job j = {.kind = EW_GELU_TANH, .y = y->data, .a = x->data, .n = tensor_numel(x)};
    return run_ew(be, &j);
}

int cpu_gelu_erf(struct backend *be, struct tensor *y, const struct tensor *x)
{
    struct ew_job j = {.kind = EW_GELU_ERF, .y = y->data, .a = x->data, .n = tensor_numel(x)};
    return run_ew(be, &j);
}

int cpu_silu(struct backend *be, struct tensor *y, const struct tensor *x)
{
    struct ew_job j = {.kind = EW_SILU, .y = y->data, .a = x->data, .n = tensor_numel(x)};
    return run_ew(be, &j);
}

int cpu_fill(struct backend *be, struct tensor *y, float value)
{
    struct ew_job j = {.kind = EW_FILL, .y = y->data, .n = tensor_numel(y), .alpha = value};
    return run_ew(be, &j);
}

/* ---- modulate and gated_add: rows of D with a per-batch vector ---- */

struct mod_job {
    float *y;
    const float *x;
    const float *shift, *scale;  /* modulate: (Bv, D) */
    const float *gate;           /* gated_add: (Bv, D) */
    int64_t T, D, Bv;            /* Bv = 1 or B */
    int64_t rows_per_task, rows;
};

static void mod_task(void *arg, int64_t task, int tid)
{
    (void)tid;
    struct mod_job *j = arg;
    int64_t r0 = task * j->rows_per_task;
    int64_t r1 = r0 + j->rows_per_task < j->rows ? r0 + j->rows_per_task : j->rows;
    for (int64_t r = r0; r < r1; r++) {
        int64_t bi = j->Bv == 1 ? 0 : r / j->T;
        float *y = j->y + r * j->D;
        const float *x = j->x + r * j->D;
        if (j->gate) {
            const float *g = j->gate + bi * j->D;
            for (int64_t d = 0; d < j->D; d++)
                y[d] += x[d] * g[d];
        } else {
            const float *sh = j->shift + bi * j->D, *sc = j->scale + bi * j->D;
            for (int64_t d = 0; d < j->D; d++)
                y[d] = x[d] * (1.0f + sc[d]) + sh[d];
        }
    }
}

static int run_rows(struct backend *be, struct mod_job *j, int64_t rows, cpu_task_fn *fn)
{
    if (rows <= 0 || j->D <= 0)
        return 0;
    j->rows = rows;
    j->rows_per_task = EW_CHUNK / j->D > 1 ? EW_CHUNK / j->D : 1;
    cpu_pool_run(cpu_ctx_of(be)->pool, (rows + j->rows_per_task - 1) / j->rows_per_task, fn, j);
    return 0;
}

int cpu_modulate(struct backend *be, struct tensor *y, const struct tensor *x,
                 const struct tensor *shift, const struct tensor *scale)
{
    int64_t B = x->shape[0], T = x->shape[1], D = x->shape[2];
    struct mod_job j = {.y = y->data, .x = x->data, .shift = shift->data, .scale = scale->data,
                        .T = T, .D = D, .Bv = tensor_numel(shift) == D ? 1 : B};
    return run_rows(be, &j, B * T, mod_task);
}

int cpu_gated_add(struct backend *be, struct tensor *x, const struct tensor *y,
                  const struct tensor *gate)
{
    int64_t B = x->shape[0], T = x->shape[1], D = x->shape[2];
    struct mod_job j = {.y = x->data, .x = y->data, .gate = gate->data, .T = T, .D = D,
                        .Bv = tensor_numel(gate) == D ? 1 : B};
    return run_rows(be, &j, B * T, mod_task);
}

/* ---- copy and permute ---- */

struct copy_job {
    char *y;
    const char *x;
    size_t n;          /* bytes */
};

#define COPY_CHUNK (1 << 20)

static void copy_task(void *arg, int64_t task, int tid)
{
    (void)tid;
    struct copy_job *j = arg;
    size_t o = (size_t)task * COPY_CHUNK;
    size_t n = j->n - o < COPY_CHUNK ? j->n - o : COPY_CHUNK;
    memmove(j->y + o, j->x + o, n);
}

int cpu_copy(struct backend *be, struct tensor *y, const struct tensor *x)
{
    struct copy_job j = {.y = y->data, .x = x->data, .n = tensor_nbytes(x)};
    if (j.n == 0 || y->data == x->data)
        return 0;
    /* overlapping distinct buffers must be moved in one piece */
    const char *xe = j.x + j.n, *ye = j.y + j.n;
    if (j.y < xe && j.x < ye) {
        memmove(j.y, j.x, j.n);
        return 0;
    }
    cpu_pool_run(cpu_ctx_of(be)->pool, (int64_t)((j.n + COPY_CHUNK - 1) / COPY_CHUNK), copy_task,
                 &j);
    return 0;
}

struct perm_job {
    char *y;
    const char *x;
    size_t es;                     /* element size */
    int ndim;
    int64_t yshape[TENSOR_MAX_DIMS];
    int64_t xstride[TENSOR_MAX_DIMS]; /* x's stride (elements) along y's dim i */
    int64_t inner;                 /* y's last dim */
    int64_t rows_per_task, rows;
};

static void perm_task(void *arg, int64_t task, int tid)
{
    (void)tid;
    struct perm_job *j = arg;
    int64_t r0 = task * j->rows_per_task;
    int64_t r1 = r0 + j->rows_per_task < j->rows ? r0 + j->rows_per_task : j->rows;
    int last = j->ndim - 1;
    int64_t ls = j->xstride[last];
    for (int64_t r = r0; r < r1; r++) {
        int64_t rem = r, off = 0;
        for (int d = last - 1; d >= 0; d--) {
            off += (rem % j->yshape[d]) * j->xstride[d];
            rem /= j->yshape[d];
        }
        char *yr = j->y + (size_t)(r * j->inner) * j->es;
        if (j->es == 4) {
            const float *xs = (const float *)(const void *)j->x + off;
            float *yd = (float *)(void *)yr;
            for (int64_t i = 0; i < j->inner; i++)
                yd[i] = xs[i * ls];
        } else {
            for (int64_t i = 0; i < j->inner; i++)
                memcpy(yr + (size_t)i * j->es, j->x + (size_t)(off + i * ls) * j->es, j->es);
        }
    }
}

int cpu_permute(struct backend *be, struct tensor *y, const struct tensor *x, const int *perm)
{
    struct perm_job j = {.y = y->data, .x = x->data, .es = dtype_size(x->dtype), .ndim = x->ndim};
    if (tensor_numel(x) == 0)
        return 0;
    if (x->ndim == 0) {
        memcpy(j.y, j.x, j.es);
        return 0;
    }
    int64_t xs[TENSOR_MAX_DIMS];
    int64_t s = 1;
    for (int d = x->ndim - 1; d >= 0; d--) {
        xs[d] = s;
        s *= x->shape[d];
    }
    for (int i = 0; i < x->ndim; i++) {
        j.yshape[i] = y->shape[i];
        j.xstride[i] = xs[perm[i]];
    }
    j.inner = y->shape[x->ndim - 1];
    j.rows = tensor_numel(y) / j.inner;
    j.rows_per_task = EW_CHUNK / j.inner > 1 ? EW_CHUNK / j.inner : 1;
    cpu_pool_run(cpu_ctx_of(be)->pool, (j.rows + j.rows_per_task - 1) / j.rows_per_task,
                 perm_task, &j);
    return 0;
}
