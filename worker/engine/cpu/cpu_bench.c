/*
 * cpu_bench.c - GEMM and attention rate measurements on the cpu backend.
 *
 * Plain sgemm is run with OpenBLAS's own threads (not bit-reproducible, only
 * a ceiling); the backend's ops run as the models run them. OpenBLAS is put
 * back to one thread before returning, which the backend relies on.
 */
#include "cpu_bench.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/bf16.h"
#include "common/log.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void fill_random(float *p, size_t n, uint32_t seed)
{
    uint32_t s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = (float)((double)(s >> 8) / 16777216.0 - 0.5);
    }
}

static int is_cpu(const struct backend *be)
{
    return be && strcmp(backend_name(be), "cpu") == 0;
}

double cpu_bench_sgemm_gflops(struct backend *be, int64_t M, int64_t N, int64_t K,
                              double min_seconds)
{
    if (!is_cpu(be) || M < 1 || N < 1 || K < 1)
        return -1.0;
    float *a = malloc((size_t)(M * K) * sizeof(float));
    float *b = malloc((size_t)(N * K) * sizeof(float));
    float *c = malloc((size_t)(M * N) * sizeof(float));
    if (!a || !b || !c) {
        free(a);
        free(b);
        free(c);
        return -1.0;
    }
    fill_random(a, (size_t)(M * K), 1);
    fill_random(b, (size_t)(N * K), 2);
    openblas_set_num_threads(be->n_threads);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K, 1.0f, a, (int)K,
                b, (int)K, 0.0f, c, (int)N);
    int reps = 0;
    double t0 = now_s(), t;
    do {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K, 1.0f, a,
                    (int)K, b, (int)K, 0.0f, c, (int)N);
        reps++;
        t = now_s() - t0;
    } while (t < min_seconds);
    openblas_set_num_threads(1);
    free(a);
    free(b);
    free(c);
    return 2.0 * (double)M * (double)N * (double)K * reps / t * 1e-9;
}

double cpu_bench_linear_dtype_gflops(struct backend *be, int64_t M, int64_t N, int64_t K,
                                     enum dtype wdt, double min_seconds)
{
    if (!is_cpu(be) || M < 1 || N < 1 || K < 1)
        return -1.0;
    struct tensor *x = tensor_new_shape(be, DTYPE_F32, M, K);
    struct tensor *w = tensor_new_shape(be, wdt, N, K);
    struct tensor *y = tensor_new_shape(be, DTYPE_F32, M, N);
    double rate = -1.0;
    if (!x || !w || !y)
        goto out;
    fill_random(x->data, (size_t)(M * K), 1);
    if (wdt == DTYPE_F32) {
        fill_random(w->data, (size_t)(N * K), 2);
    } else {
        float *tmp = malloc((size_t)(N * K) * sizeof(float));
        if (!tmp)
            goto out;
        fill_random(tmp, (size_t)(N * K), 2);
        uint16_t *h = w->data;
        for (int64_t i = 0; i < N * K; i++)
            h[i] = wdt == DTYPE_BF16 ? f32_to_bf16(tmp[i]) : 0x3c00; /* f16: 1.0 */
        free(tmp);
    }
    if (backend_linear(be, y, x, w, NULL) != 0)
        goto out;
    int reps = 0;
    double t0 = now_s(), t;
    do {
        backend_linear(be, y, x, w, NULL);
        reps++;
        t = now_s() - t0;
    } while (t < min_seconds);
    rate = 2.0 * (double)M * (double)N * (double)K * reps / t * 1e-9;
out:
    tensor_destroy(&x);
    tensor_destroy(&w);
    tensor_destroy(&y);
    return rate;
}

double cpu_bench_linear_gflops(struct backend *be, int64_t M, int64_t N, int64_t K,
                               double min_seconds)
{
    return cpu_bench_linear_dtype_gflops(be, M, N, K, DTYPE_F32, min_seconds);
}

double cpu_bench_attention_gflops(struct backend *be, int64_t B, int64_t L, int64_t H, int64_t D,
                                  double min_seconds)
{
    if (!is_cpu(be) || B < 1 || L < 1 || H < 1 || D < 1)
        return -1.0;
    struct tensor *q = tensor_new_shape(be, DTYPE_F32, B, L, H, D);
    struct tensor *k = tensor_new_shape(be, DTYPE_F32, B, L, H, D);
    struct tensor *v = tensor_new_shape(be, DTYPE_F32, B, L, H, D);
    struct tensor *o = tensor_new_shape(be, DTYPE_F32, B, L, H, D);
    double rate = -1.0;
    if (!q || !k || !v || !o)
        goto out;
    size_t n = (size_t)(B * L * H * D);
    fill_random(q->data, n, 1);
    fill_random(k->data, n, 2);
    fill_random(v->data, n, 3);
    if (backend_attention(be, o, q, k, v, 0.08838834764831845f) != 0)
        goto out;
    int reps = 0;
    double t0 = now_s(), t;
    do {
        backend_attention(be, o, q, k, v, 0.08838834764831845f);
        reps++;
        t = now_s() - t0;
    } while (t < min_seconds);
    rate = 4.0 * (double)B * (double)H * (double)L * (double)L * (double)D * reps / t * 1e-9;
out:
    tensor_destroy(&q);
    tensor_destroy(&k);
    tensor_destroy(&v);
    tensor_destroy(&o);
    return rate;
}
