/*
 * t_sim.c - sim_denoise_frames() (bf16 input frames, output frame by
 * frame, what the worker runs) gives exactly sim_denoise()'s bits (what
 * the single-process reference runs), over window sizes, steps, seeds,
 * subnormal and signed-zero inputs, and with each output frame overwriting
 * its own input as the worker's cache does. With any bf16 pattern as input
 * (NaN, inf) both give NaN at the same places: NaN payloads are not
 * specified by C (the farm never sees a NaN: noise and outputs are finite).
 * And sim_denoise() itself still gives the bits it gave when the farm's
 * exactness tests were first written (a pinned FNV-1a hash of 3 steps).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/bf16.h"
#include "common/latent_file.h"
#include "tests/tap.h"
#include "worker/sim.h"

struct sink {
    float *out;          /* [len][fs] what was emitted */
    uint16_t *overwrite; /* non-NULL: emit also rounds frame f into here (the inputs) */
    int64_t fs, next;
    int in_order;
};

static void emit(void *ctx, int64_t f, const float *y)
{
    struct sink *s = ctx;
    s->in_order &= f == s->next++;
    memcpy(s->out + f * s->fs, y, sizeof(float) * (size_t)s->fs);
    if (s->overwrite)
        f32_to_bf16_n(s->overwrite + f * s->fs, y, s->fs);
}

static uint32_t rng = 12345;

enum inputs { NORMAL, TINY, ANY };

static uint16_t next_bf16(enum inputs kind)
{
    rng = rng * 1664525u + 1013904223u;
    uint16_t v = (uint16_t)(rng >> 16);
    if (kind == NORMAL) /* finite, |x| in [2^-8, 2^8) */
        v = (uint16_t)((v & 0x807f) | (uint16_t)((119 + (rng >> 8) % 16) << 7));
    else if (kind == TINY) /* subnormals and signed zeros */
        v &= 0x807f;
    return v;
}

/* equal(): bit for bit, except that any NaN equals any NaN. */
static int equal(const float *a, const float *b, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], 4) != 0 && !(isnan(a[i]) && isnan(b[i])))
            return 0;
    return 1;
}

/* same(): one window; 1 when both functions agree bit for bit. */
static int same(int64_t len, int64_t h, int64_t w, int step, int steps, uint64_t seed,
                enum inputs kind, int in_place)
{
    int64_t fs = LATENT_CHANNELS * h * w, n = len * fs;
    uint16_t *x16 = malloc(sizeof(uint16_t) * (size_t)n);
    float *x = malloc(sizeof(float) * (size_t)n), *want = malloc(sizeof(float) * (size_t)n);
    float *got = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)fs);
    const uint16_t **in = malloc(sizeof *in * (size_t)len);
    for (int64_t i = 0; i < n; i++)
        x16[i] = next_bf16(kind);
    bf16_to_f32_n(x, x16, n);
    for (int64_t f = 0; f < len; f++)
        in[f] = x16 + f * fs;
    sim_denoise(seed, step, steps, 100 + len, len, h, w, x, want);
    struct sink s = {got, in_place ? x16 : NULL, fs, 0, 1};
    sim_denoise_frames(seed, step, steps, 100 + len, len, h, w, in, y, emit, &s);
    int ok = s.in_order && s.next == len &&
             (kind == ANY ? equal(got, want, n)
                          : memcmp(got, want, sizeof(float) * (size_t)n) == 0);
    free(x16);
    free(x);
    free(want);
    free(got);
    free(y);
    free(in);
    return ok;
}

/* pinned(): FNV-1a of three chained sim_denoise() steps on a fixed window. */
static uint64_t pinned(void)
{
    int64_t len = 21, h = 8, w = 8, n = len * LATENT_CHANNELS * h * w;
    float *x = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)n);
    uint32_t r = 777;
    for (int64_t i = 0; i < n; i++) {
        r = r * 1664525u + 1013904223u;
        x[i] = bf16_round((float)(int32_t)(r >> 8) * (1.0f / 4194304.0f) - 2.0f);
    }
    uint64_t hash = 1469598103934665603ull;
    for (int s = 0; s < 3; s++) {
        sim_denoise(42, s, 3, 16, len, h, w, x, y);
        const uint8_t *b = (const uint8_t *)y;
        for (int64_t i = 0; i < 4 * n; i++) {
            hash ^= b[i];
            hash *= 1099511628211ull;
        }
        for (int64_t i = 0; i < n; i++)
            x[i] = bf16_round(y[i]);
    }
    free(x);
    free(y);
    return hash;
}

int main(void)
{
    plan(7);
    uint64_t hash = pinned();
    ok(hash == 0x26a7c2ad32908fbeull, "sim_denoise: the pinned bits (hash 0x%016llx)",
       (unsigned long long)hash);
    int good = 1, cases = 0;
    static const int64_t hw[][2] = {{1, 1}, {2, 3}, {8, 8}, {5, 7}};
    for (int g = 0; g < 4; g++)
        for (int64_t len = 1; len <= 21; len += 4)
            for (int step = 0; step < 3; step++) {
                good &= same(len, hw[g][0], hw[g][1], step, 3, 42 + (uint64_t)g, NORMAL, 0);
                cases++;
            }
    ok(good, "finite inputs: same bits in %d windows", cases);
    ok(same(21, 8, 8, 7, 50, 7, TINY, 0), "subnormal and signed-zero inputs: same bits");
    ok(same(21, 8, 8, 7, 50, 7, ANY, 0), "any bf16 pattern: same bits, NaN where it is NaN");
    ok(same(21, 8, 8, 1, 20, 9, NORMAL, 1), "output frames overwriting their inputs: same bits");
    ok(same(1, 1, 1, 0, 1, 0, NORMAL, 0), "a one-frame window of one pixel");
    ok(same(3, 64, 64, 19, 20, 1ull << 63, NORMAL, 1), "a 512x512 window, last step");
    return done_testing();
}
