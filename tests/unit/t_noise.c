/* t_noise.c - Philox4x32-10 known answers (Random123), normal statistics, and
 * that every value depends only on its (seed, stream, index). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/bf16.h"
#include "common/noise.h"
#include "tests/tap.h"

static void kat(const uint32_t ctr[4], const uint32_t key[2], const uint32_t want[4],
                const char *what)
{
    uint32_t got[4];
    noise_philox4x32_10(ctr, key, got);
    int same = memcmp(got, want, sizeof(got)) == 0;
    if (!ok(same, "philox4x32-10 KAT %s", what))
        diag("  got %08x %08x %08x %08x", got[0], got[1], got[2], got[3]);
}

int main(void)
{
    {
        const uint32_t c[4] = {0, 0, 0, 0}, k[2] = {0, 0};
        const uint32_t w[4] = {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8};
        kat(c, k, w, "zero");
    }
    {
        const uint32_t c[4] = {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff};
        const uint32_t k[2] = {0xffffffff, 0xffffffff};
        const uint32_t w[4] = {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd};
        kat(c, k, w, "all ones");
    }
    {
        const uint32_t c[4] = {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344};
        const uint32_t k[2] = {0xa4093822, 0x299f31d0};
        const uint32_t w[4] = {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1};
        kat(c, k, w, "pi digits");
    }

    /* statistics over 1e6 draws */
    enum { N = 1000000 };
    float *x = malloc(sizeof(float) * N);
    noise_fill_normal(42, 7, 0, x, N);
    double s1 = 0, s2 = 0, s3 = 0, s4 = 0;
    int64_t tail = 0, bad = 0;
    for (int i = 0; i < N; i++) {
        double v = x[i];
        if (!isfinite(v))
            bad++;
        s1 += v;
        s2 += v * v;
        s3 += v * v * v;
        s4 += v * v * v * v;
        if (fabs(v) > 1.959964)
            tail++;
    }
    double mean = s1 / N, var = s2 / N - mean * mean;
    is_int(bad, 0, "all 1e6 draws finite");
    /* standard errors: mean 1e-3, variance ~1.4e-3, skew ~2.4e-3, kurtosis ~5e-3 */
    is_near(mean, 0.0, 5e-3, "mean of 1e6 draws ~ 0 (%.5f)", mean);
    is_near(var, 1.0, 7e-3, "variance of 1e6 draws ~ 1 (%.5f)", var);
    is_near(s3 / N, 0.0, 1.5e-2, "third moment ~ 0 (%.5f)", s3 / N);
    is_near(s4 / N, 3.0, 3e-2, "fourth moment ~ 3 (%.5f)", s4 / N);
    is_near((double)tail / N, 0.05, 2e-3, "5%% beyond +-1.96 (%.4f)", (double)tail / N);
    /* lag-1 correlation, within and across Box-Muller pairs */
    double c1 = 0;
    for (int i = 0; i + 1 < N; i++)
        c1 += (double)x[i] * x[i + 1];
    is_near(c1 / (N - 1), 0.0, 5e-3, "lag-1 correlation ~ 0 (%.5f)", c1 / (N - 1));

    /* a value depends on (seed, stream, index) only: any sub-range agrees */
    float y[1001];
    int same = 1;
    for (uint64_t first = 0; first < 9; first++) {
        for (size_t n = 0; n < 7; n++) {
            noise_fill_normal(42, 7, first, y, n);
            for (size_t i = 0; i < n; i++)
                same &= memcmp(&y[i], &x[first + i], 4) == 0;
        }
    }
    noise_fill_normal(42, 7, 123457, y, 1001);
    same &= memcmp(y, x + 123457, sizeof(float) * 1001) == 0;
    ok(same, "sub-ranges (odd and even starts, any length) equal the full fill");
    noise_fill_normal(43, 7, 0, y, 1000);
    ok(memcmp(y, x, sizeof(float) * 1000) != 0, "another seed gives other values");
    noise_fill_normal(42, 8, 0, y, 1000);
    ok(memcmp(y, x, sizeof(float) * 1000) != 0, "another stream gives other values");
    noise_fill_normal(42, (uint64_t)1 << 40, 0, y, 4);
    noise_fill_normal(42, 0, 0, y + 4, 4);
    ok(memcmp(y, y + 4, 16) != 0, "the stream's high word matters");
    noise_fill_normal((uint64_t)1 << 40, 0, 0, y, 4);
    noise_fill_normal(0, 0, 0, y + 4, 4);
    ok(memcmp(y, y + 4, 16) != 0, "the seed's high word matters");
    noise_fill_normal(42, 7, (uint64_t)1 << 34, y, 4);
    noise_fill_normal(42, 7, 0, y + 4, 4);
    ok(memcmp(y, y + 4, 16) != 0, "the index's high word matters");
    free(x);

    /* latent frames: [16][h][w], bf16 values, frame f = stream f, whatever else ran */
    int64_t h = 6, w = 8, n = 16 * h * w;
    float *a = malloc(sizeof(float) * (size_t)n), *b = malloc(sizeof(float) * (size_t)n);
    float *ref = malloc(sizeof(float) * (size_t)n);
    noise_latent_frame(42, 5, h, w, a);
    noise_latent_frame(42, 3, h, w, b); /* other calls in between change nothing */
    noise_latent_frame(42, 5, h, w, b);
    ok(memcmp(a, b, sizeof(float) * (size_t)n) == 0, "noise_latent_frame is repeatable");
    noise_fill_normal(42, 5, 0, ref, (size_t)n);
    int exact = 1, is_bf16 = 1;
    for (int64_t i = 0; i < n; i++) {
        exact &= a[i] == bf16_round(ref[i]);
        is_bf16 &= a[i] == bf16_round(a[i]);
    }
    ok(exact && is_bf16, "latent frame f = bf16(stream f, index (c*h+y)*w+x)");
    noise_latent_frame(42, 6, h, w, b);
    ok(memcmp(a, b, sizeof(float) * (size_t)n) != 0, "frames differ");
    free(a);
    /* the real grid: a 64x64 frame is one 65536-value range of stream f */
    a = malloc(sizeof(float) * 16 * 64 * 64);
    noise_latent_frame(42, 9, 64, 64, a);
    noise_fill_normal(42, 9, 65535, ref, 1);
    ok(a[65535] == bf16_round(ref[0]), "64x64 frame: last value is index 65535");
    free(a);
    free(b);
    free(ref);
    return done_testing();
}
