/*
 * sim.h - the `sim` backend: a cheap, deterministic stand-in for the DiT
 * denoise step, for load tests and for checking the farm's exactness
 * without a model (`encore-worker --backend sim --sim-ms N`: the worker
 * makes each denoise task last N ms from taking it to its result being
 * ready, this function's compute included: it sleeps only what is left).
 *
 * sim_denoise() is a pure function of its inputs (the window's input
 * latents, its position, the step and the seed) that, like the DiT, mixes
 * every frame of the window into every output value. It is NOT a model: its
 * output is meaningless as video. sim_render_local() is the single-process
 * reference: the sliding-window loop of SPEC 2.2 with the blend of DESIGN 2,
 * computed sequentially over the whole latent sequence.
 */
#ifndef ENCORE_SIM_H
#define ENCORE_SIM_H

#include <stdint.h>

#include "common/wire.h"

/*
 * sim_denoise(): out[len][16][h][w] (f32) from x[len][16][h][w] (f32) for
 * the window starting at latent frame start, at step (0-based) of steps.
 */
void sim_denoise(uint64_t seed, int step, int steps, int64_t start, int64_t len, int64_t h,
                 int64_t w, const float *x, float *out);

/*
 * sim_denoise_frames() is sim_denoise(), same bits, with the input frames
 * given as bf16, in[f] -> [16][h][w] for f < len (x is their f32 values),
 * and the output handed over frame by frame: output frame f is computed
 * into y (f32 [16][h][w], the caller's scratch) and passed to
 * emit(ctx, f, y), in order f = 0..len-1. in[f] is not read after
 * emit(ctx, f, ...), which may thus overwrite it.
 */
void sim_denoise_frames(uint64_t seed, int step, int steps, int64_t start, int64_t len,
                        int64_t h, int64_t w, const uint16_t *const *in, float *y,
                        void (*emit)(void *ctx, int64_t f, const float *y), void *ctx);

/* sim_initial(): the initial latents (bf16-rounded noise) of frames
 * [start, start+len), [len][16][h][w]. */
void sim_initial(uint64_t seed, int64_t start, int64_t len, int64_t h, int64_t w, float *x);

/*
 * sim_render_local() runs job p end to end in this process and returns the
 * final latents, bf16 [L][16][h][w] frame-major, in *out (caller frees) with
 * L in *latent_frames. Returns 0 or ENC_EINVAL for bad parameters.
 */
int sim_render_local(const struct wire_job_params *p, uint16_t **out, int64_t *latent_frames);

/* sim_check_params() validates render parameters the way the coordinator
 * does; 0 or ENC_EINVAL with msg (size n) naming the bad one. */
int sim_check_params(const struct wire_job_params *p, char *msg, size_t n);

#endif
