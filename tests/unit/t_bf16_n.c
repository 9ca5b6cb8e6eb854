/*
 * t_bf16_n.c - the block conversions of bf16.h (bf16_to_f32_n,
 * f32_to_bf16_n) give exactly the scalar conversions' bits: every bf16
 * pattern, and f32 patterns covering ties, subnormals, infinities and NaNs,
 * at lengths that exercise both the blocks and the tail.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/bf16.h"
#include "tests/tap.h"

int main(void)
{
    plan(4);
    enum { N = 65536 };
    uint16_t *h = malloc(sizeof(uint16_t) * N), *h2 = malloc(sizeof(uint16_t) * N);
    float *f = malloc(sizeof(float) * N);
    for (int i = 0; i < N; i++)
        h[i] = (uint16_t)i;
    bf16_to_f32_n(f, h, N);
    int same = 1;
    for (int i = 0; i < N; i++) {
        float want = bf16_to_f32(h[i]);
        same &= memcmp(&f[i], &want, 4) == 0;
    }
    ok(same, "bf16_to_f32_n: all 65536 patterns");

    /* f32 patterns: every 65537th bit pattern, plus each bf16 value with
     * low halves 0x7fff, 0x8000 (ties), 0x8001 and 0xffff, plus 16 passes
     * of a prime stride over all 2^32 patterns (NaNs, subnormals, both signs). */
    uint32_t *u = malloc(sizeof(uint32_t) * N);
    int tests = 0, bad = 0;
    for (int pass = 0; pass < 21; pass++) {
        static const uint32_t low[4] = {0x7fffu, 0x8000u, 0x8001u, 0xffffu};
        for (int i = 0; i < N; i++)
            u[i] = pass == 0  ? (uint32_t)i * 65537u
                   : pass < 5 ? ((uint32_t)i << 16) | low[pass - 1]
                              : (uint32_t)((pass - 5) * N + i) * 4099u;
        memcpy(f, u, sizeof(float) * N);
        f32_to_bf16_n(h2, f, N);
        for (int i = 0; i < N; i++) {
            tests++;
            bad += h2[i] != f32_to_bf16(f[i]);
        }
    }
    ok(bad == 0, "f32_to_bf16_n: %d of %d patterns differ from the scalar rounding", bad, tests);

    int tail_ok = 1;
    for (int n = 0; n < 40; n++) { /* short lengths: the tail path alone or after blocks */
        uint16_t a[40], b[40];
        memset(a, 0, sizeof a);
        memset(b, 0, sizeof b);
        f32_to_bf16_n(a, f + 1000, n);
        for (int i = 0; i < n; i++)
            b[i] = f32_to_bf16(f[1000 + i]);
        tail_ok &= memcmp(a, b, sizeof a) == 0;
    }
    ok(tail_ok, "f32_to_bf16_n: lengths 0..39 write exactly n values");
    uint32_t qnan = 0x7fc00001u, snan = 0x7f800001u;
    float x[2];
    memcpy(&x[0], &qnan, 4);
    memcpy(&x[1], &snan, 4);
    uint16_t y[2];
    f32_to_bf16_n(y, x, 2);
    ok((y[0] & 0x7f80) == 0x7f80 && (y[0] & 0x7f) && (y[1] & 0x7f80) == 0x7f80 && (y[1] & 0x7f),
       "NaN stays NaN (0x%04x 0x%04x)", y[0], y[1]);
    free(h);
    free(h2);
    free(f);
    free(u);
    return done_testing();
}
