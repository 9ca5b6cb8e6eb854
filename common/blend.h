/*
 * blend.h - the dynamic weighted sliding-window blend (DESIGN 2, SPEC 2.5).
 *
 * Weights follow SPEC 2.5's exact float32 recipe; the blend of one window's
 * stepped output into the running state is computed in f32 against the
 * previous window's value as stored in bf16, and the bf16 store is the only
 * rounding.
 */
#ifndef ENCORE_BLEND_H
#define ENCORE_BLEND_H

#include <stdint.h>

enum blend_scheme {
    BLEND_SCHEME_LOG = 0,     /* the paper's; encore's default */
    BLEND_SCHEME_UNIFORM = 1, /* the original script's default */
};

/* blend_parse_scheme(): "log" or "uniform" -> scheme; -1 if unknown. */
int blend_parse_scheme(const char *name);
const char *blend_scheme_name(enum blend_scheme s);

/* blend_weights() writes the O weights w_0..w_{O-1} (w_j weights the current
 * window). For O == 1, where the original divides by zero, w = {1}: the
 * later window wins, as it does at step 0. O == 0 writes nothing. */
void blend_weights(enum blend_scheme s, int overlap, float *w);

/*
 * blend_frame() computes, for one latent frame of n values,
 *   dst_bf16[i] = bf16( w * cur[i] + (1 - w) * prev_bf16[i] )
 * in f32 (no FMA contraction). dst may alias prev.
 */
void blend_frame(uint16_t *dst_bf16, const float *cur, const uint16_t *prev_bf16, float w,
                 int64_t n);

#endif
