/*
 * prepare.h - the `prepare` task (DESIGN 3): everything a render needs
 * besides the noise, computed once per job.
 *
 * - the prompt and negative prompt through the tokenizer and umT5, each
 *   truncated to its real length (SPEC 1.6);
 * - the CLIP image tokens of the reference (SPEC 1.5);
 * - y, the mask and reference latents of a full window (SPEC 1.7);
 * - per-window wav2vec2 features of each window's audio slice (SPEC 2.4),
 *   once per window, not once per step as the original does.
 * The result is saved as one safetensors file, the job's content-addressed
 * blob that every worker caches.
 */
#ifndef ENCORE_PREPARE_H
#define ENCORE_PREPARE_H

#include <stdint.h>

#include "../common/plan.h"
#include "model_set.h"
#include "models/dit.h"

/* The original's hard-coded negative prompt (SPEC 1.1). */
extern const char prepare_default_negative[];
/* The default prompt: the training prompts' form (SPEC 6.3). */
extern const char prepare_default_prompt[];

struct prepare_params {
    const char *prompt;   /* NULL: prepare_default_prompt */
    const char *negative; /* NULL: prepare_default_negative */
    int clip_frames;      /* C: video frames per window (81) */
    int text_len;         /* tokenizer max_length (512) */
    int quiet;            /* no progress lines */
};

struct prepared {
    int64_t text_dim, n_neg, n_pos;
    float *text_neg;      /* (n_neg, text_dim) */
    float *text_pos;      /* (n_pos, text_dim) */
    int64_t clip_dim, n_clip;
    float *clip;          /* (n_clip, clip_dim) */
    int64_t frames, h, w; /* F latent frames per window; latent grid */
    int clip_frames;      /* C */
    int64_t y_ch;         /* 4 mask + z latent channels (20) */
    float *y;             /* (y_ch, F, h, w) */
    int64_t audio_dim, n_windows;
    int64_t *n_tokens;    /* (n_windows) */
    float **audio;        /* n_windows arrays (n_tokens[k], audio_dim) */
};

/*
 * prepare_job() runs the encoders (loading the text, CLIP, VAE and wav2vec2
 * parts of ms as needed, and unloading the text encoder afterwards) on
 * image (3, H, W) in [-1, 1] and the 16 kHz samples cut by plan. Fills out
 * (release with prepared_release()). 0 or a negative enc_err.
 */
int prepare_job(struct model_set *ms, const struct prepare_params *pp, const float *image,
                int64_t H, int64_t W, const struct plan *plan, const float *samples,
                struct prepared *out);

/* prepared_job_inputs() points in at p's arrays (valid while p lives). */
void prepared_job_inputs(const struct prepared *p, struct dit_job_inputs *in);

/* prepared_save() writes p as safetensors; prepared_load() reads it back,
 * refusing a file that is not a prepared job (ENC_EINVAL naming it). */
int prepared_save(const struct prepared *p, const char *path);
int prepared_load(const char *path, struct prepared *out);
void prepared_release(struct prepared *p);

#endif
