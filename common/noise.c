/*
 * noise.c - Philox4x32-10 counter-based generator and Box-Muller normals.
 *
 * Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as
 * easy as 1, 2, 3", SC'11): a 128-bit counter and a 64-bit key, 10 rounds of
 *   (hi0, lo0) = M0 * c0, (hi1, lo1) = M1 * c2,
 *   c = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0),
 * with the key bumped by the Weyl constants (W0, W1) between rounds.
 *
 * Normal number i of (seed, stream): Philox block i/2 with counter
 * (i/2 low, i/2 high, stream low, stream high) and key (seed low, seed high)
 * gives two 53-bit uniforms u1 in (0, 1] (words 0-1) and u2 in [0, 1) (words
 * 2-3); r = sqrt(-2 ln u1), a = 2 pi u2, and the value is r cos a for even i,
 * r sin a for odd i, computed in double and rounded once to f32. So each value
 * depends only on (seed, stream, i), whatever range a caller asks for.
 *
 * Initial latents: latent frame f is stream f, element (c, y, x) is index
 * (c*h + y)*w + x, rounded to bf16 (the original draws its noise in bf16).
 */
#include "common/noise.h"

#include <math.h>

#include "common/bf16.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void noise_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

/* the two normals of Philox block b of (seed, stream) */
static void normal_pair(uint64_t seed, uint64_t stream, uint64_t b, double *z0, double *z1)
{
    uint32_t ctr[4] = {(uint32_t)b, (uint32_t)(b >> 32), (uint32_t)stream,
                       (uint32_t)(stream >> 32)};
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t x[4];
    noise_philox4x32_10(ctr, key, x);
    uint64_t a = ((uint64_t)x[1] << 32 | x[0]) >> 11;
    uint64_t c = ((uint64_t)x[3] << 32 | x[2]) >> 11;
    const double ulp = 1.0 / 9007199254740992.0; /* 2^-53 */
    double u1 = (double)(a + 1) * ulp;           /* (0, 1]: log never sees 0 */
    double u2 = (double)c * ulp;                 /* [0, 1) */
    double r = sqrt(-2.0 * log(u1));
    double t = 6.283185307179586476925286766559 * u2;
    *z0 = r * cos(t);
    *z1 = r * sin(t);
}

void noise_fill_normal(uint64_t seed, uint64_t stream, uint64_t first, float *out, size_t n)
{
    size_t i = 0;
    double z0, z1;
    if (n > 0 && (first & 1)) { /* odd start: second half of a pair */
        normal_pair(seed, stream, first >> 1, &z0, &z1);
        out[i++] = (float)z1;
    }
    for (; i + 1 < n; i += 2) {
        normal_pair(seed, stream, (first + i) >> 1, &z0, &z1);
        out[i] = (float)z0;
        out[i + 1] = (float)z1;
    }
    if (i < n) {
        normal_pair(seed, stream, (first + i) >> 1, &z0, &z1);
        out[i] = (float)z0;
    }
}

void noise_latent_frame(uint64_t seed, int64_t f, int64_t h, int64_t w, float *out)
{
    size_t n = (size_t)(16 * h * w);
    noise_fill_normal(seed, (uint64_t)f, 0, out, n);
    for (size_t i = 0; i < n; i++)
        out[i] = bf16_round(out[i]);
}
