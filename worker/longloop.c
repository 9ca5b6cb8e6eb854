/*
 * longloop.c - the single-process sliding-window loop (SPEC 2.2; the
 * recipe is in longloop.h).
 *
 * State: two bf16 buffers [16, L, h, w], `cur` (the previous step's merged
 * latents, read by every window of this step) and `next` (this step's,
 * written window by window). Every latent frame lies in some window, so
 * `next` is fully rewritten each step and the original's zero-filled
 * pred_latents never shows. Per window the loop holds x and v [16, f, h, w]
 * and out3 [3, 16, f, h, w] in f32.
 *
 * Invariant: the result depends only on the inputs and the model's values,
 * never on timing; the blend and the bf16 stores are the only roundings
 * besides the model's.
 */
#include "worker/longloop.h"

#include <stdlib.h>
#include <string.h>

#include "common/bf16.h"
#include "common/err.h"
#include "common/log.h"
#include "common/noise.h"
#include "common/xmalloc.h"
#include "worker/models/sampler.h"

#define LATENT_CHANNELS 16

void longloop_init_latents(uint64_t seed, int64_t L, int64_t h, int64_t w, float *out)
{
    const int64_t hw = h * w;
    float *frame = xmalloc(sizeof(float) * (size_t)(LATENT_CHANNELS * hw));
    for (int64_t f = 0; f < L; f++) {
        noise_latent_frame(seed, f, h, w, frame);
        for (int c = 0; c < LATENT_CHANNELS; c++)
            memcpy(out + ((int64_t)c * L + f) * hw, frame + (int64_t)c * hw,
                   sizeof(float) * (size_t)hw);
    }
    free(frame);
}

int longloop_window_step(const struct longloop_stepper *st, int64_t k, int s, float *x, int64_t f,
                         int64_t hw, const float *audio, int64_t n_audio, float *out3, float *v)
{
    const int64_t n = LATENT_CHANNELS * f * hw;
    int rc = st->model(st->model_ctx, k, x, f, st->timesteps[s], audio, n_audio, out3);
    if (rc != 0)
        return rc;
    sampler_guide(v, out3, n, st->audio_scale, st->text_scale);
    sampler_euler_step(x, v, n, st->sigmas[s], st->sigmas[s + 1]);
    return 0;
}

int longloop_run(const struct longloop_params *lp, const struct longloop_audio *audio,
                 longloop_model_fn *model, void *model_ctx, const float *init, float *out)
{
    const struct plan *p = lp->plan;
    if (!p || p->n_windows < 1 || lp->h < 1 || lp->w < 1 || lp->steps < 1 || !model)
        return log_error_rc(ENC_EINVAL, "longloop: bad parameters (steps %d, grid %lldx%lld)",
                            lp->steps, (long long)lp->h, (long long)lp->w);
    if (!audio || (!audio->feat && !audio->fn))
        return log_error_rc(ENC_EINVAL, "longloop: no audio features");

    const int64_t L = p->latent_frames, hw = lp->h * lp->w, F = p->frames_per_window;
    const int O = p->overlap;
    const int64_t n_state = LATENT_CHANNELS * L * hw, n_win = LATENT_CHANNELS * F * hw;
    int rc = 0;

    float *sigmas = xcalloc((size_t)lp->steps + 1, sizeof(float));
    float *timesteps = xcalloc((size_t)lp->steps, sizeof(float));
    sampler_schedule(lp->steps, SAMPLER_TRAIN_STEPS, SAMPLER_SHIFT, sigmas, timesteps);
    float *wts = xcalloc((size_t)(O > 0 ? O : 1), sizeof(float));
    blend_weights(lp->scheme, O, wts);
    const struct longloop_stepper st = {.model = model, .model_ctx = model_ctx, .sigmas = sigmas,
                                        .timesteps = timesteps, .audio_scale = lp->audio_scale,
                                        .text_scale = lp->text_scale};

    uint16_t *cur = xmalloc(sizeof(uint16_t) * (size_t)n_state);
    uint16_t *next = xmalloc(sizeof(uint16_t) * (size_t)n_state);
    float *x = xmalloc(sizeof(float) * (size_t)n_win);
    float *v = xmalloc(sizeof(float) * (size_t)n_win);
    float *out3 = xmalloc(sizeof(float) * (size_t)(3 * n_win));
    float **own_feat = xcalloc((size_t)p->n_windows, sizeof(float *));
    int64_t *own_n = xcalloc((size_t)p->n_windows, sizeof(int64_t));

    for (int64_t i = 0; i < n_state; i++)
        cur[i] = f32_to_bf16(init[i]);

    for (int s = 0; s < lp->steps && rc == 0; s++) {
        for (int64_t k = 0; k < p->n_windows && rc == 0; k++) {
            const struct plan_window *pw = &p->windows[k];
            const int64_t f = pw->len;

            /* x [16, f, h, w] from the previous step's merged state */
            for (int c = 0; c < LATENT_CHANNELS; c++) {
                const uint16_t *src = cur + ((int64_t)c * L + pw->start) * hw;
                float *dst = x + (int64_t)c * f * hw;
                for (int64_t i = 0; i < f * hw; i++)
                    dst[i] = bf16_to_f32(src[i]);
            }

            const float *feat;
            int64_t n_tok;
            if (audio->feat) {
                feat = audio->feat[k];
                n_tok = audio->n_tokens[k];
            } else {
                if (!own_feat[k]) {
                    rc = audio->fn(audio->ctx, k, pw, &own_feat[k], &own_n[k]);
                    if (rc != 0)
                        break;
                }
                feat = own_feat[k];
                n_tok = own_n[k];
            }
            if (!feat || n_tok < 1) {
                rc = log_error_rc(ENC_EINVAL, "longloop: window %lld has no audio features",
                                  (long long)k);
                break;
            }

            rc = longloop_window_step(&st, k, s, x, f, hw, feat, n_tok, out3, v);
            if (rc != 0)
                break;

            int blend = k > 0 && s > 0;
            for (int c = 0; c < LATENT_CHANNELS; c++) {
                for (int64_t j = 0; j < f; j++) {
                    const float *src = x + ((int64_t)c * f + j) * hw;
                    uint16_t *dst = next + ((int64_t)c * L + pw->start + j) * hw;
                    if (blend && j < O) {
                        blend_frame(dst, src, dst, wts[j], hw);
                    } else {
                        for (int64_t i = 0; i < hw; i++)
                            dst[i] = f32_to_bf16(src[i]);
                    }
                }
            }
            if (lp->progress)
                lp->progress(lp->cb_ctx, s, k);
        }
        if (rc != 0)
            break;
        uint16_t *t = cur;
        cur = next;
        next = t;
        if (lp->on_step)
            lp->on_step(lp->cb_ctx, s, cur);
    }

    if (rc == 0)
        for (int64_t i = 0; i < n_state; i++)
            out[i] = bf16_to_f32(cur[i]);

    for (int64_t k = 0; k < p->n_windows; k++)
        free(own_feat[k]);
    free(own_feat);
    free(own_n);
    free(out3);
    free(v);
    free(x);
    free(next);
    free(cur);
    free(wts);
    free(timesteps);
    free(sigmas);
    return rc;
}
