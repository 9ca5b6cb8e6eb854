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
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "worker/engine/cpu/cpu_backend.h"

#define ATT_QB 128
#define ATT_KB 256
#define LANES 8 /* score rows are padded to whole groups of 8 */

/* Score rows are processed with GCC/clang vector extensions: 4 floats (one
 * SSE/NEON register) everywhere, 8 (one AVX2 register) where the cpu has
 * AVX2, picked once at run time. Both evaluate the same IEEE add, sub, mul
 * and bit operations per element (no FMA), and sums run in the same 8
 * logical lanes, so the two paths give identical bytes. */
typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

/* EXPF_V(VF, VI, x) replaces x (lanes <= 0) by e^x: Cephes' expf (range
 * reduction by ln 2 in two parts, degree-5 polynomial, about 1 ulp), with
 * arguments below -87 clamped (e^-87 ~ 1.6e-38, negligible next to the row
 * maximum's 1). */
#define EXPF_V(VF, VI, x)                                                                          \
    do {                                                                                           \
        const VF lo_ = (VF){0} - 87.0f;                                                            \
        VI lt_ = (x) < lo_;                                                                        \
        (x) = (VF)((lt_ & (VI)lo_) | (~lt_ & (VI)(x)));                                            \
        VF t_ = (x)*1.44269504088896341f + 12582912.0f; /* 1.5*2^23: round to integer */           \
        VF n_ = t_ - 12582912.0f;                                                                  \
        VF r_ = (x)-n_ * 0.693359375f;                                                             \
        r_ = r_ - n_ * -2.12194440e-4f;                                                            \
        VF q_ = (VF){0} + 1.9875691500e-4f;                                                        \
        q_ = q_ * r_ + 1.3981999507e-3f;                                                           \
        q_ = q_ * r_ + 8.3334519073e-3f;                                                           \
        q_ = q_ * r_ + 4.1665795894e-2f;                                                           \
        q_ = q_ * r_ + 1.6666665459e-1f;                                                           \
        q_ = q_ * r_ + 5.0000001201e-1f;                                                           \
        VF y_ = q_ * r_ * r_ + r_ + 1.0f;                                                          \
        VI e_ = ((VI)t_ - 0x4B400000 + 127) << 23; /* 2^n */                                       \
        (x) = y_ * (VF)e_;                                                                         \
    } while (0)

/* The row kernels, for n a multiple of LANES:
 * row_max() is the largest of p[0..n);
 * row_exp() sets p[c] = e^(p[c] - m) (every p[c] <= m);
 * row_sum() adds p[0..n) in LANES lanes (lane i takes p[i], p[i+8], ...),
 * then the lanes in order, in double. */
static float row_max4(const float *p, int64_t n)
{
    v4f mx;
    memcpy(&mx, p, sizeof mx);
    for (int64_t c = 4; c < n; c += 4) {
        v4f x;
        memcpy(&x, p + c, sizeof x);
        v4i gt = x > mx;
        mx = (v4f)((gt & (v4i)x) | (~gt & (v4i)mx));
    }
    float m = mx[0];
    for (int i = 1; i < 4; i++)
        m = mx[i] > m ? mx[i] : m;
    return m;
}

static void row_exp4(float *p, int64_t n, float m)
{
    for (int64_t c = 0; c < n; c += 4) {
        v4f x;
        memcpy(&x, p + c, sizeof x);
        x = x - m;
        EXPF_V(v4f, v4i, x);
        memcpy(p + c, &x, sizeof x);
    }
}

static double row_sum4(const float *p, int64_t n)
{
    v4f a0 = {0}, a1 = {0};
    for (int64_t c = 0; c < n; c += 8) {
        v4f x0, x1;
        memcpy(&x0, p + c, sizeof x0);
        memcpy(&x1, p + c + 4, sizeof x1);
        a0 = a0 + x0;
        a1 = a1 + x1;
    }
    double s = 0.0;
    for (int i = 0; i < 4; i++)
        s += a0[i];
    for (int i = 0; i < 4; i++)
        s += a1[i];
    return s;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_AVX2_PATH 1
#define AVX2 __attribute__((target("avx2")))

static AVX2 float row_max8(const float *p, int64_t n)
{
    v8f mx;
    memcpy(&mx, p, sizeof mx);
    for (int64_t c = 8; c < n; c += 8) {
        v8f x;
        memcpy(&x, p + c, sizeof x);
        v8i gt = x > mx;
        mx = (v8f)((gt & (v8i)x) | (~gt & (v8i)mx));
    }
    float m = mx[0];
    for (int i = 1; i < 8; i++)
        m = mx[i] > m ? mx[i] : m;
    return m;
}

static AVX2 void row_exp8(float *p, int64_t n, float m)
{
    for (int64_t c = 0; c < n; c += 8) {
        v8f x;
        memcpy(&x, p + c, sizeof x);
        x = x - m;
        EXPF_V(v8f, v8i, x);
        memcpy(p + c, &x, sizeof x);
    }
}

static AVX2 double row_sum8(const float *p, int64_t n)
{
    v8f a = {0};
    for (int64_t c = 0; c < n; c += 8) {
        v8f x;
        memcpy(&x, p + c, sizeof x);
        a = a + x;
    }
    double s = 0.0;
    for (int i = 0; i < 8; i++)
        s += a[i];
    return s;
}
#endif

struct row_kernels {
    float (*max)(const float *p, int64_t n);
    void (*exp)(float *p, int64_t n, float m);
    double (*sum)(const float *p, int64_t n);
};

/* row_kernels_pick() chooses the widest path this cpu runs; ENCORE_NO_AVX2
 * set forces the 4-wide one (the tests compare both). */
static struct row_kernels row_kernels_pick(void)
{
    struct row_kernels k = {row_max4, row_exp4, row_sum4};
#ifdef HAVE_AVX2_PATH
    const char *off = getenv("ENCORE_NO_AVX2");
    if (!(off && *off) && __builtin_cpu_supports("avx2")) {
        k.max = row_max8;
        k.exp = row_exp8;
        k.sum = row_sum8;
    }
#endif
    return k;
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
    struct row_kernels rk;
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
            float mx = j->rk.max(s, nk8);
            double m_new = (double)mx > m[r] ? (double)mx : m[r];
            j->rk.exp(s, nk8, (float)m_new);
            for (int64_t c = nk; c < nk8; c++)
                s[c] = 0.0f;
            double sum = j->rk.sum(s, nk8);
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
        .rk = row_kernels_pick(),
    };
    j.n_qblk = (Tq + j.qb - 1) / j.qb;
    j.ks = (j.kb + LANES - 1) / LANES * LANES;
    int rc = cpu_scratch_reserve(c, task_scratch_bytes(j.qb, j.kb, D), "attention");
    if (rc)
        return rc;
    cpu_pool_run(c->pool, B * H * j.n_qblk, att_task, &j);
    return 0;
}
