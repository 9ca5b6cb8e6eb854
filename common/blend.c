/*
 * blend.c - overlap weights and the per-frame blend (DESIGN 2, SPEC 2.5).
 *
 * The weights reproduce, bit for bit, what the original computes in float32:
 *   uniform: w_j = f32(j / (O - 1)), the quotient taken in double (Python's
 *            j / (O-1) assigned into a float32 tensor);
 *   log:     u = float32 torch.linspace(0, 1, O); c = f32(f32(e) - 1);
 *            g_j = f32(log1p(f32(u_j * c))) (log1p in double, rounded once);
 *            w_j = f32(f32(g_j - g_0) / f32(g_max - g_0)).
 * torch.linspace on the CPU computes step = f32(1/(O-1)) and fills the
 * first half as start + step*i and the second half as end - step*(O-1-i);
 * that is what u_j follows here (torch's SIMD path, used only for O >= 8 on
 * AVX2 machines without AVX-512, may differ by an ulp in a few u_j).
 *
 * The blend itself is f32 without contraction: w*cur + (1-w)*prev with prev
 * widened from its stored bf16, rounded once to bf16 at the store.
 */
#include "common/blend.h"

#include <math.h>
#include <string.h>

#include "common/bf16.h"

int blend_parse_scheme(const char *name)
{
    if (!name)
        return -1;
    if (strcmp(name, "log") == 0)
        return BLEND_SCHEME_LOG;
    if (strcmp(name, "uniform") == 0)
        return BLEND_SCHEME_UNIFORM;
    return -1;
}

const char *blend_scheme_name(enum blend_scheme s)
{
    switch (s) {
    case BLEND_SCHEME_LOG: return "log";
    case BLEND_SCHEME_UNIFORM: return "uniform";
    }
    return "?";
}

/* torch.linspace(0, 1, n) in float32 on the CPU (scalar kernel), n >= 2 */
static float linspace01(int i, int n)
{
    float step = 1.0f / (float)(n - 1);
    int halfway = n / 2;
    if (i < halfway)
        return 0.0f + step * (float)i;
    return 1.0f - step * (float)(n - 1 - i);
}

void blend_weights(enum blend_scheme s, int overlap, float *w)
{
    if (overlap <= 0)
        return;
    if (overlap == 1) {
        w[0] = 1.0f;
        return;
    }
    if (s == BLEND_SCHEME_UNIFORM) {
        for (int j = 0; j < overlap; j++)
            w[j] = (float)((double)j / (double)(overlap - 1));
        return;
    }
    float e = (float)exp(1.0); /* torch.exp(torch.tensor(1.0)): 2.7182817f */
    float c = e - 1.0f;
    float gmin = 0, gmax = 0;
    for (int j = 0; j < overlap; j++) {
        float x = linspace01(j, overlap) * c;
        w[j] = (float)log1p((double)x);
        if (j == 0 || w[j] < gmin)
            gmin = w[j];
        if (j == 0 || w[j] > gmax)
            gmax = w[j];
    }
    float range = gmax - gmin;
    for (int j = 0; j < overlap; j++)
        w[j] = (w[j] - gmin) / range;
}

void blend_frame(uint16_t *dst_bf16, const float *cur, const uint16_t *prev_bf16, float w,
                 int64_t n)
{
    float wp = 1.0f - w;
    float v[16];
    int64_t i = 0;
    /* Blocks of 16 through a float buffer: the same IEEE operations per
     * value, but the loops vectorize; dst may alias prev (the reference
     * loop does: each block is read before it is written). */
    for (; i + 16 <= n; i += 16) {
        for (int q = 0; q < 16; q++)
            v[q] = cur[i + q] * w + bf16_to_f32(prev_bf16[i + q]) * wp;
        f32_to_bf16_n(dst_bf16 + i, v, 16);
    }
    for (; i < n; i++)
        dst_bf16[i] = f32_to_bf16(cur[i] * w + bf16_to_f32(prev_bf16[i]) * wp);
}
