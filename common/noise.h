/*
 * noise.h - counter-based Gaussian noise (Philox4x32-10 + Box-Muller).
 *
 * Every value is a pure function of (seed, stream, index), so any process
 * can produce the initial latents of any window, whatever the partitioning:
 * the initial latent at (channel c, frame f, row y, col x) of a job with an
 * h x w latent grid is a pure function of (seed, f, h, w, c, y, x) (stream f,
 * index (c*h + y)*w + x), independent of window layout and of the number of
 * workers. Values are rounded to bf16 (the original draws them in bf16).
 */
#ifndef ENCORE_NOISE_H
#define ENCORE_NOISE_H

#include <stddef.h>
#include <stdint.h>

/* noise_philox4x32_10() is one Philox4x32-10 block: out = philox(ctr, key). */
void noise_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* noise_fill_normal() writes n N(0,1) f32 values for counters
 * first..first+n-1 of (seed, stream); value i depends only on
 * (seed, stream, i). */
void noise_fill_normal(uint64_t seed, uint64_t stream, uint64_t first, float *out, size_t n);

/* noise_latent_frame() writes the bf16-rounded initial noise of latent
 * frame f, laid out [16 channels][h][w] as f32. */
void noise_latent_frame(uint64_t seed, int64_t f, int64_t h, int64_t w, float *out);

#endif
