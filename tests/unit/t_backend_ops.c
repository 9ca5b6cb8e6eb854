/*
 * t_backend_ops.c - every backend op against a naive double-precision
 * reference, on random inputs of awkward sizes (odd, one key, one query,
 * tiles plus a remainder, bf16/f16 weights, groups, strides, asymmetric
 * padding), plus the wrappers' shape checks, call counting and the
 * attention scratch bound.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/bf16.h"
#include "common/err.h"
#include "common/log.h"
#include "tests/tap.h"
#include "worker/engine/backend.h"
#include "worker/engine/cpu/cpu_attention.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static double urand(void) /* uniform in [-1, 1) */
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

static float *rand_f32(int64_t n, double amp)
{
    float *p = malloc((size_t)(n ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        p[i] = (float)(amp * urand());
    return p;
}

/* f16 bits of a value k/1024, |k| <= 1024 (exact in f16) */
static uint16_t f16_of_k(int k)
{
    if (k == 0)
        return 0;
    uint16_t sign = k < 0 ? 0x8000 : 0;
    int a = k < 0 ? -k : k;
    int e = 0;
    while ((a >> e) > 1)
        e++;                                   /* a in [2^e, 2^(e+1)) */
    int exp = e - 10 + 15;                     /* value = a * 2^-10 */
    uint16_t man = (uint16_t)(((unsigned)a << (10 - e)) & 0x3ff);
    return (uint16_t)(sign | (exp << 10) | man);
}

/* A random weight of dtype dt; *ref gets its exact f32 values. */
static struct tensor *rand_weight(struct backend *be, enum dtype dt, int ndim,
                                  const int64_t *shape, float **ref)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    float *f = malloc((size_t)n * sizeof(float));
    uint16_t *h = malloc((size_t)n * 2);
    for (int64_t i = 0; i < n; i++) {
        if (dt == DTYPE_F16) {
            int k = (int)lround(urand() * 1024.0);
            h[i] = f16_of_k(k);
            f[i] = f16_to_f32(h[i]);
        } else {
            f[i] = (float)(0.5 * urand());
            if (dt == DTYPE_BF16) {
                h[i] = f32_to_bf16(f[i]);
                f[i] = bf16_to_f32(h[i]);
            }
        }
    }
    struct tensor *t =
        backend_tensor_from_host(be, dt, ndim, shape, dt == DTYPE_F32 ? (void *)f : (void *)h, 0);
    free(h);
    *ref = f;
    return t;
}

static struct tensor *from_host(struct backend *be, int ndim, const int64_t *shape,
                                const float *h)
{
    return backend_tensor_from_host(be, DTYPE_F32, ndim, shape, h, 0);
}
#define T_(be, h, ...)                                                                         \
    from_host((be), (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)),                \
              (int64_t[]){__VA_ARGS__}, (h))

/* max over i of |got - want| / (abs_tol + rel_tol * scale_i) must be <= 1 */
static int close_to(const float *got, const double *want, const double *scale, int64_t n,
                    double rel, double abs_tol, const char *what)
{
    double worst = 0;
    int64_t wi = 0;
    for (int64_t i = 0; i < n; i++) {
        double s = scale ? scale[i] : fabs(want[i]);
        double e = fabs((double)got[i] - want[i]) / (abs_tol + rel * s);
        if (!(e <= worst)) {
            worst = e;
            wi = i;
        }
    }
    if (!(worst <= 1.0))
        diag("%s: worst at %lld: got %.9g want %.9g (%.3g of tolerance)", what, (long long)wi,
             n ? got[wi] : 0.0, n ? want[wi] : 0.0, worst);
    return worst <= 1.0;
}

static struct backend *be;

/* ---- linear ---- */

static void test_linear(int64_t M, int64_t N, int64_t K, enum dtype dt, int bias)
{
    float *x = rand_f32(M * K, 1.0), *wf = NULL, *b = bias ? rand_f32(N, 1.0) : NULL;
    struct tensor *tx = T_(be, x, M, K);
    struct tensor *tw = rand_weight(be, dt, 2, (int64_t[]){N, K}, &wf);
    struct tensor *tb = bias ? T_(be, b, N) : NULL;
    struct tensor *ty = tensor_new_shape(be, DTYPE_F32, M, N);
    double *want = malloc((size_t)(M * N) * sizeof(double));
    double *scale = malloc((size_t)(M * N) * sizeof(double));
    for (int64_t i = 0; i < M; i++)
        for (int64_t n = 0; n < N; n++) {
            double s = bias ? b[n] : 0, a = bias ? fabs(b[n]) : 0;
            for (int64_t k = 0; k < K; k++) {
                s += (double)x[i * K + k] * wf[n * K + k];
                a += fabs((double)x[i * K + k] * wf[n * K + k]);
            }
            want[i * N + n] = s;
            scale[i * N + n] = a;
        }
    int rc = backend_linear(be, ty, tx, tw, tb);
    ok(rc == 0 && close_to(ty->data, want, scale, M * N, 1e-6, 1e-7, "linear"),
       "linear M=%lld N=%lld K=%lld w=%s%s", (long long)M, (long long)N, (long long)K,
       dtype_name(dt), bias ? " +bias" : "");
    tensor_destroy(&tx);
    tensor_destroy(&tw);
    tensor_destroy(&tb);
    tensor_destroy(&ty);
    free(x);
    free(wf);
    free(b);
    free(want);
    free(scale);
}

/* ---- norms ---- */

static void test_norms(int64_t rows, int64_t D)
{
    float *x = rand_f32(rows * D, 3.0), *w = rand_f32(D, 1.0), *b = rand_f32(D, 1.0);
    for (int64_t i = 0; i < rows * D; i++)
        x[i] += 5.0f; /* an offset makes the mean matter */
    double *want = malloc((size_t)(rows * D) * sizeof(double));
    for (int affine = 0; affine < 2; affine++) {
        struct tensor *tx = T_(be, x, rows, D), *tw = T_(be, w, D), *tb = T_(be, b, D);
        for (int64_t r = 0; r < rows; r++) {
            double mean = 0, var = 0;
            for (int64_t d = 0; d < D; d++)
                mean += x[r * D + d];
            mean /= (double)D;
            for (int64_t d = 0; d < D; d++)
                var += (x[r * D + d] - mean) * (x[r * D + d] - mean);
            var /= (double)D;
            for (int64_t d = 0; d < D; d++) {
                double v = (x[r * D + d] - mean) / sqrt(var + 1e-5);
                want[r * D + d] = affine ? v * w[d] + b[d] : v;
            }
        }
        /* in place: y aliases x */
        int rc = backend_layer_norm(be, tx, tx, affine ? tw : NULL, affine ? tb : NULL, 1e-5f);
        ok(rc == 0 && close_to(tx->data, want, NULL, rows * D, 1e-6, 1e-6, "layer_norm"),
           "layer_norm rows=%lld D=%lld %s, in place", (long long)rows, (long long)D,
           affine ? "affine" : "no affine");
        backend_upload(be, tx, x, (size_t)(rows * D) * 4);
        for (int64_t r = 0; r < rows; r++) {
            double ss = 0;
            for (int64_t d = 0; d < D; d++)
                ss += (double)x[r * D + d] * x[r * D + d];
            double inv = 1.0 / sqrt(ss / (double)D + 1e-6);
            for (int64_t d = 0; d < D; d++)
                want[r * D + d] = x[r * D + d] * inv * (affine ? w[d] : 1.0);
        }
        struct tensor *ty = tensor_new_shape(be, DTYPE_F32, rows, D);
        rc = backend_rms_norm(be, ty, tx, affine ? tw : NULL, 1e-6f);
        ok(rc == 0 && close_to(ty->data, want, NULL, rows * D, 1e-6, 1e-6, "rms_norm"),
           "rms_norm rows=%lld D=%lld %s", (long long)rows, (long long)D,
           affine ? "weighted" : "no weight");
        tensor_destroy(&ty);
        tensor_destroy(&tx);
        tensor_destroy(&tw);
        tensor_destroy(&tb);
    }
    free(x);
    free(w);
    free(b);
    free(want);
}

/* ---- modulate, gated_add, add, mul, scale, activations ---- */

static void test_rowwise(int64_t B, int64_t T, int64_t D, int per_batch)
{
    int64_t n = B * T * D, Bv = per_batch ? B : 1;
    float *x = rand_f32(n, 2.0), *y = rand_f32(n, 2.0), *sh = rand_f32(Bv * D, 1.0),
          *sc = rand_f32(Bv * D, 1.0);
    double *want = malloc((size_t)n * sizeof(double));
    struct tensor *tx = T_(be, x, B, T, D), *ty = T_(be, y, B, T, D), *tsh = T_(be, sh, Bv, D),
                  *tsc = T_(be, sc, Bv, D), *to = tensor_new_shape(be, DTYPE_F32, B, T, D);
    for (int64_t i = 0; i < n; i++) {
        int64_t bi = per_batch ? i / (T * D) : 0, d = i % D;
        want[i] = x[i] * (1.0 + sc[bi * D + d]) + sh[bi * D + d];
    }
    int rc = backend_modulate(be, to, tx, tsh, tsc);
    ok(rc == 0 && close_to(to->data, want, NULL, n, 1e-6, 1e-6, "modulate"),
       "modulate B=%lld T=%lld D=%lld shift %s", (long long)B, (long long)T, (long long)D,
       per_batch ? "[B,D]" : "[1,D]");
    for (int64_t i = 0; i < n; i++) {
        int64_t bi = per_batch ? i / (T * D) : 0, d = i % D;
        want[i] = x[i] + (double)y[i] * sc[bi * D + d];
    }
    rc = backend_gated_add(be, tx, ty, tsc);
    ok(rc == 0 && close_to(tx->data, want, NULL, n, 1e-6, 1e-6, "gated_add"),
       "gated_add B=%lld T=%lld D=%lld", (long long)B, (long long)T, (long long)D);
    tensor_destroy(&tx);
    tensor_destroy(&ty);
    tensor_destroy(&tsh);
    tensor_destroy(&tsc);
    tensor_destroy(&to);
    free(x);
    free(y);
    free(sh);
    free(sc);
    free(want);
}

static void test_elementwise(void)
{
    const int64_t n = 70007, nb = 7; /* 10001 repeats of b */
    float *a = rand_f32(n, 12.0), *b = rand_f32(nb, 2.0);
    a[0] = -30.0f; /* deep negative tails */
    a[1] = 30.0f;
    a[2] = 0.0f;
    double *want = malloc((size_t)n * sizeof(double));
    struct tensor *ta = T_(be, a, n), *tb = T_(be, b, nb), *ty = tensor_new_shape(be, DTYPE_F32, n);
    int rc;

    for (int64_t i = 0; i < n; i++)
        want[i] = (double)a[i] + b[i % nb];
    rc = backend_add(be, ty, ta, tb);
    ok(rc == 0 && close_to(ty->data, want, NULL, n, 1e-6, 1e-6, "add"), "add, b repeats");
    for (int64_t i = 0; i < n; i++)
        want[i] = (double)a[i] * b[i % nb];
    rc = backend_mul(be, ty, ta, tb);
    ok(rc == 0 && close_to(ty->data, want, NULL, n, 1e-6, 1e-6, "mul"), "mul, b repeats");
    for (int64_t i = 0; i < n; i++)
        want[i] = (double)a[i] * 0.37f;
    rc = backend_scale(be, ty, ta, 0.37f);
    ok(rc == 0 && close_to(ty->data, want, NULL, n, 1e-6, 0, "scale"), "scale");

    const double k = sqrt(2.0 / M_PI);
    for (int64_t i = 0; i < n; i++) {
        double x = a[i];
        want[i] = 0.5 * x * (1.0 + tanh(k * (x + 0.044715 * x * x * x)));
    }
    rc = backend_gelu_tanh(be, ty, ta);
    /* the textbook form rounds to -0 in the far negative tail: absolute slack there */
    ok(rc == 0 && close_to(ty->data, want, NULL, n, 1e-6, 1e-12, "gelu_tanh"), "gelu_tanh");
    for (int64_t i = 0; i < n; i++)
        want[i] = 0.5 * a[i] * (1.0 + erf(a[i] / sqrt(2.0)));
    rc = backend_gelu_erf(be, ty, ta);
    /* erf form cancels below about -5: compare those with an absolute tolerance */
    ok(rc == 0 && close_to(ty->data, want, NULL, n, 1e-6, 1e-12, "gelu_erf"), "gelu_erf");
    for (int64_t i = 0; i < n; i++)
        want[i] = a[i] / (1.0 + exp(-(double)a[i]));
    rc = backend_silu(be, ty, ta);
    ok(rc == 0 && close_to(ty->data, want, NULL, n, 1e-6, 1e-30, "silu"), "silu");
    rc = backend_silu(be, ta, ta);
    ok(rc == 0 && close_to(ta->data, want, NULL, n, 1e-6, 1e-30, "silu"), "silu in place");

    rc = backend_fill(be, ty, -2.5f);
    int all = 1;
    for (int64_t i = 0; i < n; i++)
        all &= ((float *)ty->data)[i] == -2.5f;
    ok(rc == 0 && all, "fill");
    tensor_destroy(&ta);
    tensor_destroy(&tb);
    tensor_destroy(&ty);
    free(a);
    free(b);
    free(want);
}

/* ---- permute and copy ---- */

static void test_permute(int ndim, const int64_t *shape, const int *perm)
{
    int64_t n = 1, ys[TENSOR_MAX_DIMS], xs[TENSOR_MAX_DIMS];
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    for (int i = 0; i < ndim; i++)
        ys[i] = shape[perm[i]];
    int64_t s = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        xs[d] = s;
        s *= shape[d];
    }
    float *x = rand_f32(n, 1.0);
    struct tensor *tx = from_host(be, ndim, shape, x);
    struct tensor *ty = tensor_new(be, DTYPE_F32, ndim, ys);
    int rc = backend_permute(be, ty, tx, perm);
    int good = rc == 0;
    const float *y = ty->data;
    for (int64_t i = 0; i < n && good; i++) {
        int64_t rem = i, off = 0;
        for (int d = ndim - 1; d >= 0; d--) {
            off += (rem % ys[d]) * xs[perm[d]];
            rem /= ys[d];
        }
        good = y[i] == x[off];
    }
    ok(good, "permute of %d dims", ndim);
    struct tensor *tc = tensor_new_shape(be, DTYPE_F32, n);
    rc = backend_copy(be, tc, tx);
    ok(rc == 0 && memcmp(tc->data, x, (size_t)n * 4) == 0, "copy of %lld elements, reshaped",
       (long long)n);
    tensor_destroy(&tc);
    tensor_destroy(&tx);
    tensor_destroy(&ty);
    free(x);
}

/* ---- rope3d ---- */

static void test_rope(int64_t B, int64_t H, const int64_t grid[3], const int split[3],
                      int64_t extra)
{
    int64_t Dh = 2 * (split[0] + split[1] + split[2]);
    int64_t nrot = grid[0] * grid[1] * grid[2], T = nrot + extra, n = B * T * H * Dh;
    float *x = rand_f32(n, 2.0);
    double *want = malloc((size_t)n * sizeof(double));
    for (int64_t i = 0; i < n; i++)
        want[i] = x[i];
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < nrot; t++) {
            int64_t pos[3] = {t / (grid[1] * grid[2]), (t / grid[2]) % grid[1], t % grid[2]};
            for (int64_t h = 0; h < H; h++) {
                int64_t m = 0;
                for (int a = 0; a < 3; a++)
                    for (int k = 0; k < split[a]; k++, m++) {
                        double ang = (double)pos[a] * pow(10000.0, -(2.0 * k) / (2.0 * split[a]));
                        int64_t o = ((b * T + t) * H + h) * Dh + 2 * m;
                        double re = x[o], im = x[o + 1];
                        want[o] = re * cos(ang) - im * sin(ang);
                        want[o + 1] = re * sin(ang) + im * cos(ang);
                    }
            }
        }
    struct tensor *tx = T_(be, x, B, T, H, Dh);
    struct rope3d_params p = {.grid = {grid[0], grid[1], grid[2]},
                              .split = {split[0], split[1], split[2]},
                              .theta = 10000.0};
    int rc = backend_rope3d(be, tx, &p);
    int untouched = 1;
    const float *y = tx->data;
    for (int64_t b = 0; b < B; b++)
        untouched &= memcmp(y + (b * T + nrot) * H * Dh, x + (b * T + nrot) * H * Dh,
                            (size_t)(extra * H * Dh) * 4) == 0;
    ok(rc == 0 && close_to(y, want, NULL, n, 1e-6, 1e-6, "rope3d") && untouched,
       "rope3d grid %lldx%lldx%lld split %d/%d/%d, %lld padding tokens untouched",
       (long long)grid[0], (long long)grid[1], (long long)grid[2], split[0], split[1], split[2],
       (long long)extra);
    tensor_destroy(&tx);
    free(x);
    free(want);
}

/* ---- attention ---- */

static void test_attention(int64_t B, int64_t Tq, int64_t Tk, int64_t H, int64_t D)
{
    float *q = rand_f32(B * Tq * H * D, 2.0), *k = rand_f32(B * Tk * H * D, 2.0),
          *v = rand_f32(B * Tk * H * D, 1.0);
    double *want = malloc((size_t)(B * Tq * H * D) * sizeof(double));
    double *s = malloc((size_t)Tk * sizeof(double));
    double scale = 1.0 / sqrt((double)D);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < Tq; i++) {
                const float *qi = q + ((b * Tq + i) * H + h) * D;
                double mx = -INFINITY, sum = 0;
                for (int64_t j = 0; j < Tk; j++) {
                    const float *kj = k + ((b * Tk + j) * H + h) * D;
                    double d = 0;
                    for (int64_t c = 0; c < D; c++)
                        d += (double)qi[c] * kj[c];
                    s[j] = d * (float)scale;
                    if (s[j] > mx)
                        mx = s[j];
                }
                for (int64_t j = 0; j < Tk; j++) {
                    s[j] = exp(s[j] - mx);
                    sum += s[j];
                }
                double *o = want + ((b * Tq + i) * H + h) * D;
                for (int64_t c = 0; c < D; c++) {
                    double acc = 0;
                    for (int64_t j = 0; j < Tk; j++)
                        acc += s[j] * v[((b * Tk + j) * H + h) * D + c];
                    o[c] = acc / sum;
                }
            }
    struct tensor *tq = T_(be, q, B, Tq, H, D), *tk = T_(be, k, B, Tk, H, D),
                  *tv = T_(be, v, B, Tk, H, D), *to = tensor_new_shape(be, DTYPE_F32, B, Tq, H, D);
    int rc = backend_attention(be, to, tq, tk, tv, (float)scale);
    ok(rc == 0 && close_to(to->data, want, NULL, B * Tq * H * D, 1e-5, 1e-5, "attention"),
       "attention B=%lld Tq=%lld Tk=%lld H=%lld D=%lld", (long long)B, (long long)Tq,
       (long long)Tk, (long long)H, (long long)D);
    tensor_destroy(&tq);
    tensor_destroy(&tk);
    tensor_destroy(&tv);
    tensor_destroy(&to);
    free(q);
    free(k);
    free(v);
    free(want);
    free(s);
}

/* ---- conv3d ---- */

static void test_conv(int64_t cin, int64_t cout, const int64_t in[3], const int64_t ker[3],
                      const struct conv_params *p, enum dtype dt, int bias, const char *what)
{
    int64_t g = p->groups, cig = cin / g, cog = cout / g, out[3];
    for (int a = 0; a < 3; a++)
        out[a] = (in[a] + p->pad_front[a] + p->pad_back[a] - ker[a]) / p->stride[a] + 1;
    int64_t nx = cin * in[0] * in[1] * in[2], P = out[0] * out[1] * out[2];
    float *x = rand_f32(nx, 1.0), *wf = NULL, *b = bias ? rand_f32(cout, 1.0) : NULL;
    struct tensor *tx = T_(be, x, cin, in[0], in[1], in[2]);
    struct tensor *tw =
        rand_weight(be, dt, 5, (int64_t[]){cout, cig, ker[0], ker[1], ker[2]}, &wf);
    struct tensor *tb = bias ? T_(be, b, cout) : NULL;
    struct tensor *ty = tensor_new_shape(be, DTYPE_F32, cout, out[0], out[1], out[2]);
    double *want = malloc((size_t)(cout * P) * sizeof(double));
    double *scale = malloc((size_t)(cout * P) * sizeof(double));
    for (int64_t co = 0; co < cout; co++) {
        int64_t gi = co / cog;
        for (int64_t t = 0; t < out[0]; t++)
            for (int64_t hh = 0; hh < out[1]; hh++)
                for (int64_t ww = 0; ww < out[2]; ww++) {
                    double s = bias ? b[co] : 0, a = bias ? fabs(b[co]) : 0;
                    for (int64_t ci = 0; ci < cig; ci++)
                        for (int64_t dt_ = 0; dt_ < ker[0]; dt_++)
                            for (int64_t dh = 0; dh < ker[1]; dh++)
                                for (int64_t dw = 0; dw < ker[2]; dw++) {
                                    int64_t ti = t * p->stride[0] - p->pad_front[0] + dt_;
                                    int64_t hi = hh * p->stride[1] - p->pad_front[1] + dh;
                                    int64_t wi = ww * p->stride[2] - p->pad_front[2] + dw;
                                    if (ti < 0 || ti >= in[0] || hi < 0 || hi >= in[1] ||
                                        wi < 0 || wi >= in[2])
                                        continue;
                                    double xv = x[(((gi * cig + ci) * in[0] + ti) * in[1] + hi) *
                                                      in[2] +
                                                  wi];
                                    double wv =
                                        wf[(((co * cig + ci) * ker[0] + dt_) * ker[1] + dh) *
                                               ker[2] +
                                           dw];
                                    s += xv * wv;
                                    a += fabs(xv * wv);
                                }
                    int64_t o = co * P + (t * out[1] + hh) * out[2] + ww;
                    want[o] = s;
                    scale[o] = a;
                }
    }
    int rc = backend_conv3d(be, ty, tx, tw, tb, p);
    ok(rc == 0 && close_to(ty->data, want, scale, cout * P, 1e-6, 1e-7, "conv3d"),
       "conv3d %s: %lld->%lld ch, in %lldx%lldx%lld, w %s", what, (long long)cin,
       (long long)cout, (long long)in[0], (long long)in[1], (long long)in[2], dtype_name(dt));
    tensor_destroy(&tx);
    tensor_destroy(&tw);
    tensor_destroy(&tb);
    tensor_destroy(&ty);
    free(x);
    free(wf);
    free(b);
    free(want);
    free(scale);
}

/* ---- errors ---- */

static char last_line[512];
static int n_lines;

static void sink(void *ctx, enum log_level level, const char *line)
{
    (void)ctx;
    (void)level;
    n_lines++;
    snprintf(last_line, sizeof last_line, "%s", line);
}

static int two_shapes(void)
{
    const char *a = strchr(last_line, '[');
    return a && strchr(a + 1, '[') != NULL;
}

static void test_errors(void)
{
    struct tensor *x = tensor_new_shape(be, DTYPE_F32, 4, 8);
    struct tensor *w = tensor_new_shape(be, DTYPE_F32, 5, 9);
    struct tensor *y = tensor_new_shape(be, DTYPE_F32, 4, 5);
    struct tensor *q = tensor_new_shape(be, DTYPE_F32, 1, 3, 2, 4);
    struct tensor *k = tensor_new_shape(be, DTYPE_F32, 1, 5, 3, 4);
    struct tensor *o = tensor_new_shape(be, DTYPE_F32, 1, 3, 2, 4);
    struct tensor *b3 = tensor_new_shape(be, DTYPE_F32, 3);
    struct tensor *xi = tensor_new_shape(be, DTYPE_I64, 4, 8);
    struct tensor *cx = tensor_new_shape(be, DTYPE_F32, 4, 2, 5, 5);
    struct tensor *cw = tensor_new_shape(be, DTYPE_F32, 6, 2, 1, 3, 3);
    struct tensor *cy = tensor_new_shape(be, DTYPE_F32, 6, 2, 5, 4);
    log_set_sink(sink, NULL);
    uint64_t calls = be->op_calls[BACKEND_OP_LINEAR];

    n_lines = 0;
    is_int(backend_linear(be, y, x, w, NULL), ENC_EINVAL, "linear with K 8 vs 9 is EINVAL");
    ok(n_lines == 1 && two_shapes(), "the error names both shapes: %s", last_line);
    is_int(be->op_calls[BACKEND_OP_LINEAR], calls, "a refused call is not counted");
    n_lines = 0;
    is_int(backend_attention(be, o, q, k, k, 1.0f), ENC_EINVAL, "attention with H 2 vs 3");
    ok(n_lines == 1 && two_shapes(), "the error names both shapes: %s", last_line);
    is_int(backend_add(be, x, x, b3), ENC_EINVAL, "add with 32 vs 3 elements");
    is_int(backend_layer_norm(be, y, x, NULL, NULL, 1e-5f), ENC_EINVAL, "layer_norm shapes");
    is_int(backend_gelu_tanh(be, x, xi), ENC_EINVAL, "gelu of an I64 tensor");
    is_int(backend_permute(be, x, x, (int[]){0, 0}), ENC_EINVAL, "permute with a bad perm");
    is_int(backend_modulate(be, q, q, b3, b3), ENC_EINVAL, "modulate of a 4-D x");
    struct conv_params cp = {.stride = {1, 1, 1}, .pad_front = {0, 1, 1}, .pad_back = {0, 1, 1},
                             .groups = 2};
    n_lines = 0;
    is_int(backend_conv3d(be, cy, cx, cw, NULL, &cp), ENC_EINVAL, "conv3d into a y of the wrong width");
    ok(n_lines == 1, "conv3d says what it wanted: %s", last_line);
    cp.groups = 3;
    is_int(backend_conv3d(be, cy, cx, cw, NULL, &cp), ENC_EINVAL, "conv3d with bad groups");
    struct rope3d_params rp = {.grid = {1, 1, 3}, .split = {1, 1, 1}, .theta = 10000};
    is_int(backend_rope3d(be, q, &rp), ENC_EINVAL, "rope3d with splits not filling the head");

    struct tensor wy = tensor_view_shape(y, 0, 4, 5);
    struct tensor wok = tensor_view_shape(w, 0, 5, 8);
    is_int(backend_linear(be, &wy, x, &wok, NULL), 0, "linear through views works");
    is_int(be->op_calls[BACKEND_OP_LINEAR], calls + 1, "and is counted");
    log_set_sink(NULL, NULL);
    tensor_destroy(&x);
    tensor_destroy(&w);
    tensor_destroy(&y);
    tensor_destroy(&q);
    tensor_destroy(&k);
    tensor_destroy(&o);
    tensor_destroy(&b3);
    tensor_destroy(&xi);
    tensor_destroy(&cx);
    tensor_destroy(&cw);
    tensor_destroy(&cy);
}

int main(void)
{
    be = backend_open("cpu", 2);
    ok(be != NULL, "cpu backend opens");
    if (!be)
        return done_testing();
    is_str(backend_name(be), "cpu", "named cpu");
    ok(strstr(backend_list(), "cpu") != NULL, "backend_list has cpu");
#ifndef ENCORE_CUDA
    log_set_sink(sink, NULL);
    ok(backend_open("cuda:0", 1) == NULL && strstr(last_line, "not built"),
       "cuda:0 is refused: %s", last_line);
    log_set_sink(NULL, NULL);
#endif

    float host[6] = {1, 2, 3, 4, 5, 6};
    struct tensor *ad = backend_tensor_from_host(be, DTYPE_F32, 2, (int64_t[]){2, 3}, host, 1);
    ok(ad && ad->data == (void *)host && !ad->owns_data, "cpu adopts host memory in place");
    float *back = backend_tensor_to_f32(be, ad);
    ok(back && memcmp(back, host, sizeof host) == 0, "tensor_to_f32 round trip");
    free(back);
    tensor_destroy(&ad);

    test_linear(300, 131, 77, DTYPE_F32, 1);
    test_linear(1, 5, 3, DTYPE_F32, 0);
    test_linear(517, 259, 64, DTYPE_BF16, 1);
    test_linear(129, 300, 33, DTYPE_F16, 0);
    test_linear(7, 3, 1536, DTYPE_BF16, 1);

    test_norms(37, 1537);
    test_norms(3, 1);
    test_rowwise(3, 17, 33, 1);
    test_rowwise(2, 5, 1536, 0);
    test_elementwise();

    test_permute(4, (int64_t[]){3, 5, 7, 2}, (int[]){2, 0, 3, 1});
    test_permute(6, (int64_t[]){2, 3, 1, 4, 5, 3}, (int[]){5, 3, 0, 4, 1, 2});
    test_permute(2, (int64_t[]){129, 257}, (int[]){1, 0});

    test_rope(2, 2, (int64_t[]){3, 4, 5}, (int[]){22, 21, 21}, 7);
    test_rope(1, 3, (int64_t[]){2, 1, 3}, (int[]){2, 1, 1}, 0);

    test_attention(2, 37, 1, 3, 16);
    test_attention(1, 1, 3000, 2, 64);
    test_attention(1, 300, 300, 2, 64);
    test_attention(5, 45, 17, 2, 32);
    test_attention(1, 129, 513, 1, 128);

    struct conv_params causal = {.stride = {1, 1, 1}, .pad_front = {2, 1, 1},
                                 .pad_back = {0, 1, 1}, .groups = 1};
    test_conv(5, 7, (int64_t[]){3, 13, 17}, (int64_t[]){3, 3, 3}, &causal, DTYPE_F32, 1,
              "causal k3");
    struct conv_params down = {.stride = {1, 2, 2}, .pad_front = {0, 0, 0},
                               .pad_back = {0, 1, 1}, .groups = 1};
    test_conv(6, 130, (int64_t[]){2, 9, 11}, (int64_t[]){1, 3, 3}, &down, DTYPE_BF16, 1,
              "stride 2 asymmetric pad");
    struct conv_params c1d = {.stride = {1, 1, 5}, .groups = 1};
    test_conv(1, 8, (int64_t[]){1, 1, 400}, (int64_t[]){1, 1, 10}, &c1d, DTYPE_F16, 0,
              "1-d k10 s5");
    struct conv_params grp = {.stride = {1, 1, 1}, .pad_front = {0, 0, 4},
                              .pad_back = {0, 0, 3}, .groups = 4};
    test_conv(12, 8, (int64_t[]){1, 1, 50}, (int64_t[]){1, 1, 8}, &grp, DTYPE_F32, 1,
              "grouped pos-conv");
    struct conv_params patch = {.stride = {1, 14, 14}, .groups = 1};
    test_conv(3, 20, (int64_t[]){1, 28, 42}, (int64_t[]){1, 14, 14}, &patch, DTYPE_BF16, 0,
              "patch 14x14");
    struct conv_params dw = {.stride = {2, 1, 1}, .pad_front = {1, 1, 0}, .pad_back = {0, 0, 1},
                             .groups = 3};
    test_conv(3, 3, (int64_t[]){5, 4, 3}, (int64_t[]){2, 2, 2}, &dw, DTYPE_F16, 1, "depthwise");

    test_errors();

    size_t s1 = cpu_attention_scratch_bytes(32760, 32760, 12, 128, 4);
    size_t s2 = cpu_attention_scratch_bytes(65520, 65520, 12, 128, 4);
    diag("attention scratch at L=32760: %zu bytes, at 2L: %zu", s1, s2);
    ok(s1 > 0 && s2 <= 2 * s1 && s1 < (size_t)32760 * 4 * 64,
       "attention scratch is at most linear in L (not Tq x Tk)");

    backend_destroy(&be);
    ok(be == NULL, "backend_destroy NULLs the pointer");
    return done_testing();
}
