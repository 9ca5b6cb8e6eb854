/*
 * noise.h - counter-based Gaussian noise (Philox4x32-10 + Box-Muller).
 *
 * Every value is a pure function of (seed, stream, index), so any process
 * can produce the initial latents of any window, whatever the partitioning:
 * the initial latent at (channel c, frame f, row y, col x) of a job is
 * noise_latent(seed, c, f, y, x), independent of window layout and of the
 * number of workers. Values are rounded to bf16 (the original draws them in
 * bf16).
 */
#ifndef ENCORE_NOISE_H
#define ENCORE_NOISE_H

#include <stddef.h>
#include <stdint.h>

/* noise_fill_normal() writes n N(0,1) f32 values for counters
 * first..first+n-1 of (seed, stream). */
void noise_fill_normal(uint64_t seed, uint64_t stream, uint64_t first, float *out, size_t n);

/* noise_latent_frame() writes the bf16-rounded initial noise of latent
 * frame f, laid out [16 channels][h][w] as f32. */
void noise_latent_frame(uint64_t seed, int64_t f, int64_t h, int64_t w, float *out);

#endif
