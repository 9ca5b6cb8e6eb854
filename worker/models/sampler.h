/*
 * sampler.h - flow-matching Euler schedule and the 3-way guidance (SPEC 3.2, 4).
 *
 * Bit-exact with diffusers v0.30.1 FlowMatchEulerDiscreteScheduler as the
 * original configures it (1000 train steps, shift 5, no dynamic shifting):
 * float32 where it computes in float32, float64 where it uses numpy.
 */
#ifndef ENCORE_SAMPLER_H
#define ENCORE_SAMPLER_H

#include <stdint.h>

#define SAMPLER_TRAIN_STEPS 1000
#define SAMPLER_SHIFT 5.0

/* sampler_train_sigmas() writes the n_train training sigmas (descending;
 * timesteps are sigma*1000 in f32). */
void sampler_train_sigmas(int n_train, double shift, float *sigmas);

/* sampler_schedule() writes sigmas[0..n] (sigmas[n] = 0) and timesteps[0..n-1]
 * for n inference steps. n >= 1. */
void sampler_schedule(int n, int n_train, double shift, float *sigmas, float *timesteps);

/* sampler_euler_step(): x[i] = f32(x[i] + f32(sigma_next - sigma) * v[i]). */
void sampler_euler_step(float *x, const float *v, int64_t n, float sigma, float sigma_next);

/*
 * sampler_guide() combines the 3 branch outputs out = [3][n] (uncond,
 * audio-only, cond) into v[n] = u + audio_scale*(a - u) + text_scale*(c - a),
 * in f32 in that order.
 */
void sampler_guide(float *v, const float *out3, int64_t n, float audio_scale, float text_scale);

#endif
