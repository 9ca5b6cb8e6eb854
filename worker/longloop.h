/*
 * longloop.h - the single-process long-video sliding-window loop (SPEC 2.2):
 * the core of `encore render --local` and the reference the farm's final
 * latents must equal byte for byte (DESIGN 2, exactness invariant).
 *
 * For each step s and each window k of the plan, in start order:
 *   x   = state[s-1] over the window's frames (the previous step's merged
 *         latents, bf16 values; state[-1] = the initial latents);
 *   out = model(k, x, t_s, audio_k)            [3, 16, f, h, w]
 *   v   = guide(out, audio_scale, text_scale)  (sampler_guide)
 *   x'  = x + f32(sigma_{s+1} - sigma_s) * v   (sampler_euler_step, f32)
 *   frames j < O of window k > 0 at step s > 0: bf16(w_j x'_j + (1-w_j) prev_j)
 *   where prev_j is state[s] at that frame as already stored (the previous
 *   window's value, bf16); every other frame: bf16(x'_j); later windows
 *   overwrite earlier ones.
 * Windows of one step are independent except for that merge. The audio
 * features of a window are obtained once, at its first forward, and reused
 * for every step.
 */
#ifndef ENCORE_LONGLOOP_H
#define ENCORE_LONGLOOP_H

#include <stdint.h>

#include "common/blend.h"
#include "common/plan.h"

struct dit;
struct dit_job_inputs;
struct dit_job;

/*
 * longloop_model_fn runs the 3-branch model on window k: x [16, f, h, w]
 * (bf16 values as f32), timestep t, audio [n_audio, dim] the window's
 * features; writes out3 [3, 16, f, h, w] (uncond, audio-only, cond).
 * Returns 0 or a negative enc_err (already logged); the loop stops on error.
 */
typedef int longloop_model_fn(void *ctx, int64_t k, const float *x, int64_t f, float t,
                              const float *audio, int64_t n_audio, float *out3);

/*
 * longloop_audio_fn computes the features of window k (its slice is
 * w->audio_begin..audio_end) into a new array *feat [*n_tokens, dim] that
 * the loop frees with free(). Called at most once per window per run.
 * Returns 0 or a negative enc_err (already logged).
 */
typedef int longloop_audio_fn(void *ctx, int64_t k, const struct plan_window *w, float **feat,
                              int64_t *n_tokens);

/* Progress: called after window k of step s (0-based) is merged. */
typedef void longloop_progress_fn(void *ctx, int step, int64_t window);
/* Called after step s with the merged state [16, L, h, w] as bf16 bits. */
typedef void longloop_step_fn(void *ctx, int step, const uint16_t *state_bf16);

/* The audio features of every window: precomputed arrays, or a callback. */
struct longloop_audio {
    const float *const *feat; /* [n_windows] arrays [n_tokens[k], dim], or NULL */
    const int64_t *n_tokens;  /* [n_windows] */
    longloop_audio_fn *fn;    /* used when feat is NULL */
    void *ctx;
};

struct longloop_params {
    const struct plan *plan; /* windows; latent_frames L; overlap O */
    int64_t h, w;            /* latent grid */
    int steps;               /* Euler steps, >= 1 */
    float audio_scale, text_scale;
    enum blend_scheme scheme;
    longloop_progress_fn *progress; /* optional */
    longloop_step_fn *on_step;      /* optional */
    void *cb_ctx;                   /* for progress and on_step */
};

/*
 * One denoise step of one window, shared by the local loop and the farm's
 * workers so both compute the same bytes: the model on x, guidance, then
 * the Euler update in f32.
 */
struct longloop_stepper {
    longloop_model_fn *model;
    void *model_ctx;
    const float *sigmas;    /* [steps + 1] (sampler_schedule) */
    const float *timesteps; /* [steps] */
    float audio_scale, text_scale;
};

/*
 * longloop_window_step() runs step s of window k on x [16, f, h, w] (bf16
 * values as f32, the window's input) and leaves the window's output, before
 * any blend, in x (f32). out3 [3, 16, f, h, w] and v [16, f, h, w] are
 * scratch. Returns 0 or the model's error.
 */
int longloop_window_step(const struct longloop_stepper *st, int64_t k, int s, float *x, int64_t f,
                         int64_t hw, const float *audio, int64_t n_audio, float *out3, float *v);

/* The DiT as a longloop_model_fn: ctx is a struct longloop_dit_model. */
struct longloop_dit_model {
    struct dit *d;
    struct dit_job *job;
};
int longloop_dit_forward(void *ctx, int64_t k, const float *x, int64_t f, float t,
                         const float *audio, int64_t n_audio, float *out3);

/*
 * longloop_init_latents() writes the job's initial latents [16, L, h, w]:
 * frame f is noise_latent_frame(seed, f, h, w) (bf16 values), so they equal
 * what any worker draws for any window.
 */
void longloop_init_latents(uint64_t seed, int64_t L, int64_t h, int64_t w, float *out);

/*
 * longloop_run() runs the loop with any model: init [16, L, h, w] initial
 * latents (rounded to bf16 if they are not bf16 values already), out
 * [16, L, h, w] the final latents (bf16 values as f32; may alias init).
 * Returns 0, ENC_EINVAL for inconsistent parameters, or the first error of
 * the model or audio callback.
 */
int longloop_run(const struct longloop_params *lp, const struct longloop_audio *audio,
                 longloop_model_fn *model, void *model_ctx, const float *init, float *out);

/*
 * longloop_run_dit() is longloop_run() with the DiT as the model: it makes
 * the per-render job from `in` (text, CLIP, y; frames = F, h, w of the
 * plan), runs the loop through dit_forward() and frees the job.
 */
int longloop_run_dit(struct dit *d, const struct dit_job_inputs *in,
                     const struct longloop_params *lp, const struct longloop_audio *audio,
                     const float *init, float *out);

#endif
