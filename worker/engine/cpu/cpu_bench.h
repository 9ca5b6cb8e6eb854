/*
 * cpu_bench.h - microbenchmarks of the cpu backend for `encore bench engine`.
 *
 * Each returns the measured rate in GFLOP/s (2*M*N*K per GEMM), or a
 * negative value when the backend is not cpu or memory cannot be had. The
 * inputs are seeded random data; a run repeats the operation until
 * min_seconds have passed (after one untimed warm-up call).
 */
#ifndef ENCORE_CPU_BENCH_H
#define ENCORE_CPU_BENCH_H

#include <stdint.h>

#include "worker/engine/backend.h"

/* cpu_bench_sgemm_gflops() times plain cblas_sgemm, x[M,K] . w[N,K]^T, with
 * OpenBLAS's own threading set to be->n_threads (restored to 1 after): the
 * ceiling the backend's tiled linear is measured against. */
double cpu_bench_sgemm_gflops(struct backend *be, int64_t M, int64_t N, int64_t K,
                              double min_seconds);
/* cpu_bench_linear_gflops() times backend_linear on the same shape with an
 * f32 weight and no bias. */
double cpu_bench_linear_gflops(struct backend *be, int64_t M, int64_t N, int64_t K,
                               double min_seconds);
/* cpu_bench_linear_dtype_gflops() is the same with a weight of dtype wdt
 * (F32, BF16 or F16). */
double cpu_bench_linear_dtype_gflops(struct backend *be, int64_t M, int64_t N, int64_t K,
                                     enum dtype wdt, double min_seconds);
/* cpu_bench_attention_gflops() times backend_attention on q [B,L,H,D] and k,
 * v [B,L,H,D], counting 4*B*H*L*L*D flops per call. */
double cpu_bench_attention_gflops(struct backend *be, int64_t B, int64_t L, int64_t H, int64_t D,
                                  double min_seconds);

#endif
