/*
 * sim.c - the sim backend and the single-process reference loop (sim.h).
 *
 * All arithmetic is f32 with -ffp-contract=off and a fixed evaluation
 * order, so the same inputs give the same bytes in any process.
 */
#include "sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bf16.h"
#include "common/blend.h"
#include "common/err.h"
#include "common/latent_file.h"
#include "common/noise.h"
#include "common/plan.h"
#include "common/xmalloc.h"

static uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* GCC's -O2 cost model leaves the frame loops scalar; they are the
 * stand-in model's whole cost, so ask for the vectorizer there, and on
 * x86-64 for an AVX2 clone too, picked at load time (its 32-bit multiplies
 * make the hash 2.5x faster). Same bits either way: integer operations and
 * IEEE f32 operations in the same order, no contraction. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define SIM_VECTORIZE                                                                          \
    __attribute__((optimize("tree-loop-vectorize", "vect-cost-model=dynamic"),                  \
                   target_clones("avx2", "default")))
#elif defined(__GNUC__) && !defined(__clang__)
#define SIM_VECTORIZE __attribute__((optimize("tree-loop-vectorize", "vect-cost-model=dynamic")))
#else
#define SIM_VECTORIZE
#endif

/* sim_value(): output value i of a frame keyed b32 from its input value x. */
static inline float sim_value(uint32_t i, uint32_t b32, float x, float dt, float mean)
{
    uint32_t r = b32 + i * 0x9e3779b9u;
    r ^= r >> 16;
    r *= 0x7feb352du;
    r ^= r >> 15;
    r *= 0x846ca68bu;
    r ^= r >> 16;
    float v = (float)(int32_t)(r >> 8) * (1.0f / 16777216.0f) - 0.5f;
    return x + dt * (v - x) + 0.001f * mean;
}

/* sim_frame(): one output frame; a 32-bit hash per value. */
SIM_VECTORIZE
static void sim_frame(const float *__restrict xf, float *__restrict of, uint32_t n, uint32_t b32,
                      float dt, float mean)
{
    for (uint32_t i = 0; i < n; i++)
        of[i] = sim_value(i, b32, xf[i], dt, mean);
}

/* sim_frame_bf16(): sim_frame() on bf16 inputs (their exact f32 values). */
SIM_VECTORIZE
static void sim_frame_bf16(const uint16_t *__restrict xf, float *__restrict of, uint32_t n,
                           uint32_t b32, float dt, float mean)
{
    for (uint32_t i = 0; i < n; i++) {
        float x;
        uint32_t u = (uint32_t)xf[i] << 16;
        memcpy(&x, &u, 4);
        of[i] = sim_value(i, b32, x, dt, mean);
    }
}

/* frame_key(): the hash key of output frame f of the window at start. */
static uint32_t frame_key(uint64_t seed, int step, int64_t start, int64_t f)
{
    uint64_t base =
        mix64(seed ^ mix64((uint64_t)(start + f) * 0x100000001b3ull ^ (uint64_t)step << 48));
    return (uint32_t)base ^ (uint32_t)(base >> 32);
}

/* The window mean: four running sums in a fixed order (value e goes to sum
 * e % 4, not one long dependency chain), added pairwise. sum4() adds n
 * values (n a multiple of 4) to the sums; window_mean() is the mean of n. */
static void sum4(const float *x, int64_t n, double acc[4])
{
    double a[4] = {acc[0], acc[1], acc[2], acc[3]};
    for (int64_t e = 0; e < n; e += 4)
        for (int q = 0; q < 4; q++)
            a[q] += x[e + q];
    for (int q = 0; q < 4; q++)
        acc[q] = a[q];
}

static float window_mean(const double acc[4], int64_t n)
{
    return (float)(((acc[0] + acc[1]) + (acc[2] + acc[3])) / (double)n);
}

void sim_denoise(uint64_t seed, int step, int steps, int64_t start, int64_t len, int64_t h,
                 int64_t w, const float *x, float *out)
{
    int64_t fs = LATENT_CHANNELS * h * w, n = len * fs; /* fs: a multiple of 16 */
    double acc[4] = {0, 0, 0, 0};
    sum4(x, n, acc);
    float mean = window_mean(acc, n);
    float dt = 1.0f / (float)steps;
    for (int64_t f = 0; f < len; f++)
        sim_frame(x + f * fs, out + f * fs, (uint32_t)fs, frame_key(seed, step, start, f), dt,
                  mean);
}

void sim_denoise_frames(uint64_t seed, int step, int steps, int64_t start, int64_t len,
                        int64_t h, int64_t w, const uint16_t *const *in, float *y,
                        void (*emit)(void *ctx, int64_t f, const float *y), void *ctx)
{
    int64_t fs = LATENT_CHANNELS * h * w; /* a multiple of 16: the sums see the same order */
    double acc[4] = {0, 0, 0, 0};
    float chunk[256];
    for (int64_t f = 0; f < len; f++)
        for (int64_t e = 0; e < fs; e += 256) {
            int64_t n = fs - e < 256 ? fs - e : 256;
            bf16_to_f32_n(chunk, in[f] + e, n);
            sum4(chunk, n, acc);
        }
    float mean = window_mean(acc, len * fs);
    float dt = 1.0f / (float)steps;
    for (int64_t f = 0; f < len; f++) {
        sim_frame_bf16(in[f], y, (uint32_t)fs, frame_key(seed, step, start, f), dt, mean);
        emit(ctx, f, y);
    }
}

void sim_initial(uint64_t seed, int64_t start, int64_t len, int64_t h, int64_t w, float *x)
{
    int64_t fs = LATENT_CHANNELS * h * w;
    for (int64_t f = 0; f < len; f++)
        noise_latent_frame(seed, start + f, h, w, x + f * fs);
}

int sim_check_params(const struct wire_job_params *p, char *msg, size_t n)
{
    int F = (p->clip_frames - 1) / 4 + 1;
    if (p->steps < 1 || p->steps > 10000)
        snprintf(msg, n, "steps must be in 1..10000, not %d", p->steps);
    else if (p->clip_frames < 5 || (p->clip_frames - 1) % 4 != 0 || p->clip_frames > 1001)
        snprintf(msg, n, "clip frames must be 4k+1 in 5..1001, not %d", p->clip_frames);
    else if (p->overlap < 0 || p->overlap >= F)
        snprintf(msg, n, "overlap %d must be in 0..%d (below the window of %d latent frames)",
                 p->overlap, F - 1, F);
    else if (blend_parse_scheme(p->blend) < 0)
        snprintf(msg, n, "unknown blend scheme '%s' (log or uniform)", p->blend);
    else if (p->width < 8 || p->height < 8 || p->width % 8 || p->height % 8 ||
             p->width > 4096 || p->height > 4096)
        snprintf(msg, n, "size %dx%d must be multiples of 8 in 8..4096", p->width, p->height);
    else if (p->n_samples < PLAN_SAMPLES_PER_FRAME)
        snprintf(msg, n, "audio of %lld samples holds no video frame",
                 (long long)p->n_samples);
    else if (!p->model[0])
        snprintf(msg, n, "no model named (--tiny, --models DIR or --backend sim)");
    else
        return 0;
    return ENC_EINVAL;
}

int sim_render_local(const struct wire_job_params *p, uint16_t **out, int64_t *latent_frames)
{
    struct plan pl;
    struct plan_params pp = {.clip_frames = p->clip_frames, .overlap = p->overlap};
    char msg[256];
    int rc;
    if (sim_check_params(p, msg, sizeof msg))
        return ENC_EINVAL;
    if ((rc = plan_make(&pl, p->n_samples, &pp)))
        return rc;
    int64_t h = p->height / 8, w = p->width / 8, fs = LATENT_CHANNELS * h * w;
    int64_t L = pl.latent_frames, F = pl.frames_per_window, O = p->overlap;
    uint16_t *cur = xcalloc((size_t)(L * fs), 2), *next = xcalloc((size_t)(L * fs), 2);
    float *x = xmalloc(sizeof(float) * (size_t)(F * fs));
    float *y = xmalloc(sizeof(float) * (size_t)(F * fs));
    float wts[64];
    blend_weights((enum blend_scheme)blend_parse_scheme(p->blend), (int)O, wts);
    for (int s = 0; s < p->steps; s++) {
        for (int64_t k = 0; k < pl.n_windows; k++) {
            const struct plan_window *win = &pl.windows[k];
            /* Inputs always come from the previous step's merged state. */
            if (s == 0)
                sim_initial(p->seed, win->start, win->len, h, w, x);
            else
                for (int64_t i = 0; i < win->len * fs; i++)
                    x[i] = bf16_to_f32(cur[win->start * fs + i]);
            sim_denoise(p->seed, s, p->steps, win->start, win->len, h, w, x, y);
            for (int64_t f = 0; f < win->len; f++) {
                uint16_t *dst = next + (win->start + f) * fs;
                if (k > 0 && s > 0 && f < O)
                    blend_frame(dst, y + f * fs, dst, wts[f], fs);
                else
                    for (int64_t i = 0; i < fs; i++)
                        dst[i] = f32_to_bf16(y[f * fs + i]);
            }
        }
        uint16_t *t = cur;
        cur = next;
        next = t;
    }
    free(next);
    free(x);
    free(y);
    plan_release(&pl);
    *out = cur;
    *latent_frames = L;
    return 0;
}
