/*
 * sampler.c - FlowMatchEulerDiscreteScheduler (diffusers v0.30.1) as the
 * original configures it, and the 3-way guidance combination (SPEC 3.2, 4).
 *
 * Precision follows the reference operation by operation (no FMA: the build
 * uses -ffp-contract=off):
 *   training:  s_k = f32(k/1000), k = n_train..1;
 *              sigma_k = f32(f32(shift*s_k) / f32(1 + f32((shift-1)*s_k)));
 *   inference: numpy linspace(1000*sigma_max, 1000*sigma_min, n) in double
 *              (y_i = start + i*step, step = (stop-start)/(n-1), last = stop),
 *              s = y/1000, shifted again in double, rounded to f32;
 *              t_i = f32(sigma_i * 1000); sigma_n = 0.
 *   Euler:     x = f32(x + f32(f32(sigma_next - sigma) * v)).
 */
#include "worker/models/sampler.h"

static float shift_f32(float s, float shift)
{
    float num = shift * s;
    float den = 1.0f + (shift - 1.0f) * s;
    return num / den;
}

void sampler_train_sigmas(int n_train, double shift, float *sigmas)
{
    float sh = (float)shift;
    for (int i = 0; i < n_train; i++) {
        /* numpy linspace(1, n, n, float32) reversed holds exact integers */
        float t = (float)(n_train - i);
        float s = t / (float)n_train;
        sigmas[i] = shift_f32(s, sh);
    }
}

void sampler_schedule(int n, int n_train, double shift, float *sigmas, float *timesteps)
{
    float train_max, train_min;
    {
        float s_max = 1.0f, s_min = 1.0f / (float)n_train;
        train_max = shift_f32(s_max, (float)shift);
        train_min = shift_f32(s_min, (float)shift);
    }
    double start = (double)train_max * n_train, stop = (double)train_min * n_train;
    double step = n > 1 ? (stop - start) / (double)(n - 1) : 0.0;
    for (int i = 0; i < n; i++) {
        double y = (n > 1 && i == n - 1) ? stop : (double)i * step + start;
        double s = y / (double)n_train;
        s = shift * s / (1.0 + (shift - 1.0) * s);
        sigmas[i] = (float)s;
        timesteps[i] = sigmas[i] * (float)n_train;
    }
    sigmas[n] = 0.0f;
}

void sampler_euler_step(float *x, const float *v, int64_t n, float sigma, float sigma_next)
{
    float dt = sigma_next - sigma;
    for (int64_t i = 0; i < n; i++) {
        float d = dt * v[i];
        x[i] = x[i] + d;
    }
}

void sampler_guide(float *v, const float *out3, int64_t n, float audio_scale, float text_scale)
{
    const float *u = out3, *a = out3 + n, *c = out3 + 2 * n;
    for (int64_t i = 0; i < n; i++) {
        float ga = audio_scale * (a[i] - u[i]);
        float gt = text_scale * (c[i] - a[i]);
        v[i] = (u[i] + ga) + gt;
    }
}
