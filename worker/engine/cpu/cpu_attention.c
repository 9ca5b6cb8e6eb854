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

#include "common/err.h"
#include "worker/engine/cpu/cpu_backend.h"

#define ATT_QB 128
#define ATT_KB 256

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* per-thread scratch layout, in bytes, for head dim D */
static size_t task_scratch_bytes(int64_t qb, int64_t kb, int64_t D)
{
    return (size_t)(qb * kb + qb * D) * sizeof(float) + (size_t)(2 * qb) * sizeof(double);
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
    int64_t qb, kb;       /* block sizes in use */
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

    double *m = cpu_scratch(j->ctx, tid);     /* (nq) running max */
    double *l = m + j->qb;                     /* (nq) running sum */
    float *S = (float *)(l + j->qb);           /* (nq, kb) scores, then P */
    float *acc = S + j->qb * j->kb;            /* (nq, D) unnormalised output */

    const float *Q = j->q + ((b * j->Tq + i0) * j->H + h) * D;
    for (int64_t r = 0; r < nq; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0;
    }
    for (int64_t k0 = 0; k0 < j->Tk; k0 += j->kb) {
        int64_t nk = min64(j->kb, j->Tk - k0);
        const float *K = j->k + ((b * j->Tk + k0) * j->H + h) * D;
        const float *V = j->v + ((b * j->Tk + k0) * j->H + h) * D;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)nk, (int)D, j->scale,
                    Q, (int)HD, K, (int)HD, 0.0f, S, (int)j->kb);
        for (int64_t r = 0; r < nq; r++) {
            float *s = S + r * j->kb;
            float mx = s[0];
            for (int64_t c = 1; c < nk; c++)
                if (s[c] > mx)
                    mx = s[c];
            double m_new = (double)mx > m[r] ? (double)mx : m[r];
            float mf = (float)m_new;
            float sum = 0.0f;
            for (int64_t c = 0; c < nk; c++) {
                s[c] = expf(s[c] - mf);
                sum += s[c];
            }
            if (k0 > 0) {
                float corr = (float)exp(m[r] - m_new);
                float *a = acc + r * D;
                for (int64_t d = 0; d < D; d++)
                    a[d] *= corr;
                l[r] = l[r] * corr + sum;
            } else {
                l[r] = sum;
            }
            m[r] = m_new;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nq, (int)D, (int)nk, 1.0f, S,
                    (int)j->kb, V, (int)HD, k0 > 0 ? 1.0f : 0.0f, acc, (int)D);
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
        .o = o->data, .q = q->data, .k = k->data, .v = v->data,
        .Tq = Tq, .Tk = Tk, .H = H, .D = D,
        .qb = min64(Tq, ATT_QB), .kb = min64(Tk, ATT_KB),
        .scale = scale, .ctx = c,
    };
    j.n_qblk = (Tq + j.qb - 1) / j.qb;
    int rc = cpu_scratch_reserve(c, task_scratch_bytes(j.qb, j.kb, D), "attention");
    if (rc)
        return rc;
    cpu_pool_run(c->pool, B * H * j.n_qblk, att_task, &j);
    return 0;
}
