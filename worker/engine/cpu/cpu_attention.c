/*
 * cpu_attention.c - softmax(q k^T * scale) v without the score matrix.
 *
 * Flash-style: one task per (batch, head, block of ATT_QB queries). The task
 * walks the keys in blocks of ATT_KB, always in the same order, computing
 * S = scale * Q_blk K_blk^T with sgemm, keeping a running row maximum m and
 * sum l (online softmax), rescaling its accumulator and adding P V_blk with
 * sgemm. Per-thread scratch is ATT_QB x ATT_KB scores plus ATT_QB x D
 * accumulators: independent of Tq and Tk. Heads are read in place through
 * the row stride H*D, so nothing is gathered. The task grid depends only on
 * the shapes, so the bytes of o do not depend on the thread count.
 */
#include "cpu_attention.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "common/err.h"
#include "worker/engine/cpu/cpu_backend.h"

#define ATT_QB 128
#define ATT_KB 256
#define LANES 8 /* score rows are padded to whole groups of 8 */

/* GCC/clang vector extensions: 4 floats, one SSE/NEON register. Only IEEE
 * add, sub, mul and bit operations are used, so the bytes equal a scalar
 * evaluation whatever the target's SIMD width. */
#define VW 4
typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

/* exp_row() sets p[c] = e^(p[c] - m) for c < n (n a multiple of 8, every
 * p[c] <= m): Cephes' expf (range reduction by ln 2 in two parts, degree-5
 * polynomial, about 1 ulp); arguments below -87 are clamped (e^-87 ~ 1.6e-38,
 * negligible against the row maximum's 1). */
static void exp_row(float *p, int64_t n, float m)
{
    const v4f lo = (v4f){0} - 87.0f;
    for (int64_t c = 0; c < n; c += VW) {
        v4f x;
        memcpy(&x, p + c, sizeof x);
        x = x - m;
        v4i lt = x < lo;
        x = (v4f)((lt & (v4i)lo) | (~lt & (v4i)x));
        v4f t = x * 1.44269504088896341f + 12582912.0f; /* 1.5*2^23: round to integer */
        v4f n_ = t - 12582912.0f;
        v4f r = x - n_ * 0.693359375f;
        r = r - n_ * -2.12194440e-4f;
        v4f q = (v4f){0} + 1.9875691500e-4f;
        q = q * r + 1.3981999507e-3f;
        q = q * r + 8.3334519073e-3f;
        q = q * r + 4.1665795894e-2f;
        q = q * r + 1.6666665459e-1f;
        q = q * r + 5.0000001201e-1f;
        v4f y = q * r * r + r + 1.0f;
        v4i e = ((v4i)t - 0x4B400000 + 127) << 23; /* 2^n */
        y = y * (v4f)e;
        memcpy(p + c, &y, sizeof y);
    }
}

/* row_max() is the largest of p[0..n) (n a multiple of 8), found lane-wise. */
static float row_max(const float *p, int64_t n)
{
    v4f mx;
    memcpy(&mx, p, sizeof mx);
    for (int64_t c = VW; c < n; c += VW) {
        v4f x;
        memcpy(&x, p + c, sizeof x);
        v4i gt = x > mx;
        mx = (v4f)((gt & (v4i)x) | (~gt & (v4i)mx));
    }
    float m = mx[0];
    for (int i = 1; i < VW; i++)
        m = mx[i] > m ? mx[i] : m;
    return m;
}

/* row_sum() adds p[0..n) in 8 lanes, then the lanes in order, in double. */
static double row_sum(const float *p, int64_t n)
{
    v4f acc = {0};
    for (int64_t c = 0; c < n; c += VW) {
        v4f x;
        memcpy(&x, p + c, sizeof x);
        acc = acc + x;
    }
    double s = 0.0;
    for (int i = 0; i < VW; i++)
        s += acc[i];
    return s;
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* per-thread scratch layout, in bytes, for head dim D */
static size_t task_scratch_bytes(int64_t qb, int64_t kb, int64_t D)
{
    int64_t ks = (kb + LANES - 1) / LANES * LANES;
    return (size_t)(qb * ks + qb * D) * sizeof(float) + (size_t)(2 * qb) * sizeof(double);
}

size_t cpu_attention_scratch_bytes(int64_t Tq, int64_t Tk, int64_t H, int64_t D, int n_threads)
{
    (void)H;
    int64_t qb = min64(Tq, ATT_QB), kb = min64(Tk, ATT_KB);
    if (qb < 1)
        qb = 1;
    if (kb < 1)
        kb = 1;
    return (size_t)(n_threads > 0 ? n_threads : 1) * task_scratch_bytes(qb, kb, D);
}

struct att_job {
    float *o;
    const float *q, *k, *v;
    int64_t Tq, Tk, H, D;
    int64_t qb, kb; /* block sizes in use */
    int64_t ks;     /* score row stride: kb rounded up to LANES */
    int64_t n_qblk;
    float scale;
    struct cpu_ctx *ctx;
};

static void att_task(void *arg, int64_t task, int tid)
{
    struct att_job *j = arg;
    int64_t qi = task % j->n_qblk;
    int64_t bh = task / j->n_qblk;
    int64_t h = bh % j->H, b = bh / j->H;
    int64_t D = j->D, HD = j->H * j->D;
    int64_t i0 = qi * j->qb;
    int64_t nq = min64(j->qb, j->Tq - i0);

    double *m = cpu_scratch(j->ctx, tid); /* (nq) running max */
    double *l = m + j->qb;                /* (nq) running sum */
    float *S = (float *)(l + j->qb);      /* (nq, ks) scores, then P */
    float *acc = S + j->qb * j->ks;       /* (nq, D) unnormalised output */

    const float *Q = j->q + ((b * j->Tq + i0) * j->H + h) * D;
    for (int64_t r = 0; r < nq; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0;
    }
    for (int64_t k0 = 0; k0 < j->Tk; k0 += j->kb) {
        int64_t nk = min64(j->kb, j->Tk - k0);
        const float *K = j->k + ((b * j->Tk + k0) * j->H + h) * D;
        const float *V = j->v + ((b * j->Tk + k0) * j->H + h) * D;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)nk, (int)D, j->scale, Q,
                    (int)HD, K, (int)HD, 0.0f, S, (int)j->ks);
        int64_t nk8 = (nk + LANES - 1) / LANES * LANES;
        for (int64_t r = 0; r < nq; r++) {
            float *s = S + r * j->ks;
            for (int64_t c = nk; c < nk8; c++)
                s[c] = s[0]; /* pad to whole groups; zeroed after exp */
            float mx = row_max(s, nk8);
            double m_new = (double)mx > m[r] ? (double)mx : m[r];
            exp_row(s, nk8, (float)m_new);
            for (int64_t c = nk; c < nk8; c++)
                s[c] = 0.0f;
            double sum = row_sum(s, nk8);
            if (k0 > 0) {
                float corr = (float)exp(m[r] - m_new);
                if (corr != 1.0f) {
                    float *a = acc + r * D;
                    for (int64_t d = 0; d < D; d++)
                        a[d] *= corr;
                }
                l[r] = l[r] * corr + sum;
            } else {
                l[r] = sum;
            }
            m[r] = m_new;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nq, (int)D, (int)nk, 1.0f, S,
                    (int)j->ks, V, (int)HD, k0 > 0 ? 1.0f : 0.0f, acc, (int)D);
    }
    for (int64_t r = 0; r < nq; r++) {
        float inv = (float)(1.0 / l[r]);
        const float *a = acc + r * D;
        float *out = j->o + ((b * j->Tq + i0 + r) * j->H + h) * D;
        for (int64_t d = 0; d < D; d++)
            out[d] = a[d] * inv;
    }
}

int cpu_attention(struct backend *be, struct tensor *o, const struct tensor *q,
                  const struct tensor *k, const struct tensor *v, float scale)
{
    struct cpu_ctx *c = cpu_ctx_of(be);
    int64_t B = q->shape[0], Tq = q->shape[1], H = q->shape[2], D = q->shape[3];
    int64_t Tk = k->shape[1];
    if (B == 0 || Tq == 0 || H == 0 || D == 0)
        return 0;
    struct att_job j = {
        .o = o->data,
        .q = q->data,
        .k = k->data,
        .v = v->data,
        .Tq = Tq,
        .Tk = Tk,
        .H = H,
        .D = D,
        .qb = min64(Tq, ATT_QB),
        .kb = min64(Tk, ATT_KB),
        .scale = scale,
        .ctx = c,
    };
    j.n_qblk = (Tq + j.qb - 1) / j.qb;
    j.ks = (j.kb + LANES - 1) / LANES * LANES;
    int rc = cpu_scratch_reserve(c, task_scratch_bytes(j.qb, j.kb, D), "attention");
    if (rc)
        return rc;
    cpu_pool_run(c->pool, B * H * j.n_qblk, att_task, &j);
    return 0;
}
