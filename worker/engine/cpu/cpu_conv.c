/*
 * cpu_conv.c - 3-D convolution (groups, stride, asymmetric zero padding) as
 * tiled im2col + sgemm.
 *
 * Per group g the convolution is y_g[Cout_g, P] = w_g[Cout_g, Kg] . col[Kg, P]
 * with P = T'H'W' output positions and Kg = Cin_g*kt*kh*kw. One task computes
 * a tile of at most CONV_COB output channels by CONV_PB positions: it builds
 * the Kg x CONV_PB slice of col in per-thread scratch (zeros where the window
 * hangs over the padding), converts the weight rows to f32 if they are
 * BF16/F16, and makes one single-threaded sgemm call. Scratch is bounded by
 * Kg*(CONV_PB + CONV_COB) floats per thread whatever the spatial size. The
 * tile grid depends only on the shapes, so results do not depend on threads.
 * A thread keeps its last col slice and weight tile and reuses them when its
 * next task needs the same one (an exact reuse).
 */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/xmalloc.h"
#include "worker/engine/cpu/cpu_backend.h"

#define CONV_COB 128
#define CONV_PB 256

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

struct conv_job {
    float *y;               /* (Cout, To, Ho, Wo) */
    const float *x;         /* (Cin, T, H, W) */
    const struct tensor *w; /* (Cout, Cin_g, kt, kh, kw) */
    const float *b;         /* (Cout) or NULL */
    const struct conv_params *p;
    int64_t T, H, W, To, Ho, Wo, P;
    int64_t cin_g, cout_g, kt, kh, kw, Kg;
    int64_t n_cob, n_pb;
    int64_t pb_max, cob_max; /* largest tile: min(P, CONV_PB), min(Cout_g, CONV_COB) */
    struct cpu_ctx *ctx;
    int64_t (*cache)[2]; /* (n_threads) [col slice key, weight tile key], -1 none */
};

/* ceil_div() for b > 0 and any a */
static int64_t ceil_div(int64_t a, int64_t b)
{
    return a >= 0 ? (a + b - 1) / b : -((-a) / b);
}

/* im2col() builds col[Kg, np] for output positions p0.. of group g. Each
 * row of col (one kernel tap of one input channel) is filled run by run: a
 * run is the positions sharing an output row (to, ho); within it the taps
 * that land inside the input are copied (memcpy when stride is 1) and the
 * ones over the padding are zero. */
static void im2col(const struct conv_job *j, float *col, int64_t g, int64_t p0, int64_t np)
{
    const struct conv_params *cp = j->p;
    int64_t HoWo = j->Ho * j->Wo;
    int64_t to0 = p0 / HoWo, ho0 = (p0 % HoWo) / j->Wo, wo0 = p0 % j->Wo;
    int64_t sw = cp->stride[2], pw = cp->pad_front[2];
    int64_t kk = 0;
    for (int64_t ci = 0; ci < j->cin_g; ci++) {
        const float *xc = j->x + (g * j->cin_g + ci) * j->T * j->H * j->W;
        for (int64_t dt = 0; dt < j->kt; dt++)
            for (int64_t dh = 0; dh < j->kh; dh++)
                for (int64_t dw = 0; dw < j->kw; dw++, kk++) {
                    float *row = col + kk * np;
                    /* output columns wo in [wlo, whi) read inside the input */
                    int64_t wlo = ceil_div(pw - dw, sw);
                    int64_t whi = (j->W - 1 + pw - dw) >= 0 ? (j->W - 1 + pw - dw) / sw + 1 : 0;
                    if (wlo < 0)
                        wlo = 0;
                    int64_t to = to0, ho = ho0, wo = wo0;
                    for (int64_t i = 0; i < np;) {
                        int64_t run = j->Wo - wo < np - i ? j->Wo - wo : np - i;
                        int64_t ti = to * cp->stride[0] - cp->pad_front[0] + dt;
                        int64_t hi = ho * cp->stride[1] - cp->pad_front[1] + dh;
                        float *dst = row + i;
                        if (ti < 0 || ti >= j->T || hi < 0 || hi >= j->H) {
                            memset(dst, 0, (size_t)run * sizeof(float));
                        } else {
                            const float *src = xc + (ti * j->H + hi) * j->W;
                            int64_t a = wlo > wo ? wlo : wo, b = whi < wo + run ? whi : wo + run;
                            if (b < a)
                                b = a = wo + run; /* no tap inside: all zero */
                            for (int64_t w = wo; w < a; w++)
                                dst[w - wo] = 0.0f;
                            if (sw == 1 && b > a)
                                memcpy(dst + (a - wo), src + a - pw + dw,
                                       (size_t)(b - a) * sizeof(float));
                            else if (sw != 1)
                                for (int64_t w = a; w < b; w++)
                                    dst[w - wo] = src[w * sw - pw + dw];
                            for (int64_t w = b; w < wo + run; w++)
                                dst[w - wo] = 0.0f;
                        }
                        i += run;
                        wo = 0;
                        if (++ho == j->Ho) {
                            ho = 0;
                            to++;
                        }
                    }
                }
    }
}

static void conv_task(void *arg, int64_t task, int tid)
{
    struct conv_job *j = arg;
    int64_t cob = task % j->n_cob;
    int64_t pb = (task / j->n_cob) % j->n_pb;
    int64_t g = task / (j->n_cob * j->n_pb);
    int64_t co0 = cob * CONV_COB, p0 = pb * CONV_PB;
    int64_t nco = min64(CONV_COB, j->cout_g - co0), np = min64(CONV_PB, j->P - p0);

    float *col = cpu_scratch(j->ctx, tid); /* (Kg, np) */
    float *wbuf = col + j->Kg * j->pb_max; /* (nco, Kg) when not f32 */
    int64_t col_key = g * j->n_pb + pb, w_key = g * j->n_cob + cob;
    if (j->cache[tid][0] != col_key) {
        im2col(j, col, g, p0, np);
        j->cache[tid][0] = col_key;
    }
    int64_t row0 = g * j->cout_g + co0;
    const float *wt;
    if (j->w->dtype == DTYPE_F32) {
        wt = (const float *)j->w->data + row0 * j->Kg;
    } else {
        if (j->cache[tid][1] != w_key) {
            cpu_weight_rows_to_f32(wbuf, j->w, row0, nco, j->Kg);
            j->cache[tid][1] = w_key;
        }
        wt = wbuf;
    }
    float *yt = j->y + row0 * j->P + p0;
    /* with a bias the tile starts as b and the product is added (beta 1) */
    if (j->b) {
        for (int64_t r = 0; r < nco; r++) {
            float bias = j->b[row0 + r];
            float *yr = yt + r * j->P;
            for (int64_t i = 0; i < np; i++)
                yr[i] = bias;
        }
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nco, (int)np, (int)j->Kg, 1.0f, wt,
                (int)j->Kg, col, (int)np, j->b ? 1.0f : 0.0f, yt, (int)j->P);
}

int cpu_conv3d(struct backend *be, struct tensor *y, const struct tensor *x, const struct tensor *w,
               const struct tensor *b, const struct conv_params *p)
{
    struct cpu_ctx *c = cpu_ctx_of(be);
    struct conv_job j = {
        .y = y->data,
        .x = x->data,
        .w = w,
        .b = b ? b->data : NULL,
        .p = p,
        .T = x->shape[1],
        .H = x->shape[2],
        .W = x->shape[3],
        .To = y->shape[1],
        .Ho = y->shape[2],
        .Wo = y->shape[3],
        .cin_g = w->shape[1],
        .cout_g = w->shape[0] / p->groups,
        .kt = w->shape[2],
        .kh = w->shape[3],
        .kw = w->shape[4],
        .ctx = c,
    };
    j.P = j.To * j.Ho * j.Wo;
    j.Kg = j.cin_g * j.kt * j.kh * j.kw;
    if (j.P == 0 || j.cout_g == 0)
        return 0;
    if (j.Kg == 0) {
        float *yy = y->data;
        for (int64_t co = 0; co < y->shape[0]; co++)
            for (int64_t i = 0; i < j.P; i++)
                yy[co * j.P + i] = j.b ? j.b[co] : 0.0f;
        return 0;
    }
    j.n_cob = (j.cout_g + CONV_COB - 1) / CONV_COB;
    j.n_pb = (j.P + CONV_PB - 1) / CONV_PB;
    j.pb_max = min64(j.P, CONV_PB);
    j.cob_max = min64(j.cout_g, CONV_COB);
    size_t floats = (size_t)(j.Kg * j.pb_max);
    if (w->dtype != DTYPE_F32)
        floats += (size_t)(j.Kg * j.cob_max);
    int rc = cpu_scratch_reserve(c, floats * sizeof(float), "conv3d");
    if (rc)
        return rc;
    j.cache = xmalloc((size_t)c->n_threads * sizeof *j.cache);
    for (int i = 0; i < c->n_threads; i++)
        j.cache[i][0] = j.cache[i][1] = -1;
    cpu_pool_run(c->pool, (int64_t)p->groups * j.n_pb * j.n_cob, conv_task, &j);
    free(j.cache);
    return 0;
}
