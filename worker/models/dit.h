/*
 * dit.h - the Wan2.1 i2v diffusion transformer with StableAvatar's audio
 * adapter (SPEC 5-6), on the engine's backend interface.
 *
 * The configuration (width, heads, layers, FFN, text and CLIP dims, adapter
 * heads) is read off the checkpoint's tensor shapes, never hard-coded, so the
 * tiny fixture models and the real 1.3B model run the same code.
 *
 * Use: dit_load() once per model; dit_job_new() once per render (it embeds
 * the text and CLIP contexts, constant over all windows and steps); then
 * dit_forward() for every window and step. Thread-compatible: one forward at
 * a time per struct dit.
 */
#ifndef ENCORE_DIT_H
#define ENCORE_DIT_H

#include <stdint.h>

#include "../engine/backend.h"
#include "../engine/checkpoint.h"

struct dit_config {
    int64_t dim, ffn_dim, freq_dim, num_heads, head_dim, num_layers;
    int64_t in_dim, out_dim, text_dim, clip_dim;
    int64_t audio_dim;                 /* wav2vec2 width (768) */
    int64_t vocal_heads, vocal_ffn_dim, vocal_layers;
    int64_t text_len;                  /* contexts are zero-padded to this (512) */
    int rope_split[3];                 /* complex pairs: t, h, w */
    float eps;                         /* 1e-6 */
};

struct dit;
struct dit_job;

/*
 * Hyper-parameters the tensor shapes do not tell. Zero means: read it from
 * the checkpoints' "config" metadata (a JSON object, or its "dit_config"
 * member, with num_heads / text_len as Wan's config.json names them), else
 * the Wan defaults (head_dim 128, text_len 512, 8 adapter heads).
 */
struct dit_hparams {
    int64_t num_heads;
    int64_t text_len;
    int64_t vocal_heads;
};

/* dit_hparams_from_meta() fills the zero fields of out from the checkpoints'
 * "config" metadata where present (later checkpoints first). */
void dit_hparams_from_meta(struct ckpt *const *cks, int n, struct dit_hparams *out);

/*
 * dit_load() binds the DiT and adapter weights from cks (later checkpoints
 * override earlier ones: the base DiT, then StableAvatar's .pt), reporting
 * missing, misshapen and unexpected keys by name. hp may be NULL.
 * Returns 0 or a negative enc_err. The checkpoints must stay open while the
 * model lives. Free with dit_destroy().
 */
int dit_load(struct backend *be, struct ckpt *const *cks, int n_cks,
             const struct dit_hparams *hp, struct dit **out);
void dit_destroy(struct dit **d);
const struct dit_config *dit_get_config(const struct dit *d);

/* Per-render constants, host f32 arrays (borrowed for the call). */
struct dit_job_inputs {
    const float *text_neg; /* [n_neg, text_dim] */
    int64_t n_neg;
    const float *text_pos; /* [n_pos, text_dim] */
    int64_t n_pos;
    const float *clip;     /* [n_clip, clip_dim] CLIP image tokens (257) */
    int64_t n_clip;
    const float *y;        /* [20, frames, h, w] mask + reference latents of a full window */
    int64_t frames, h, w;  /* frames = F, latent frames per window */
    int clip_frames;       /* C = 4(F-1)+1 video frames: splits the audio tokens */
};

int dit_job_new(struct dit *d, const struct dit_job_inputs *in, struct dit_job **out);
void dit_job_destroy(struct dit_job **job);

/*
 * dit_forward() runs the 3-branch batch of SPEC 3.1 on one window:
 * x [16, f, h, w] noisy latents (f <= F; a shorter last window is run in
 * the full F-frame token buffer, as the original does), timestep t,
 * audio [n_audio, audio_dim] wav2vec2 features of the window's slice.
 * Writes out [3, 16, f, h, w]: uncond, audio-only, cond.
 */
int dit_forward(struct dit *d, struct dit_job *job, const float *x, int64_t f, float t,
                const float *audio, int64_t n_audio, float *out);

/* A debug tap sees named intermediates ("e", "e0", "x_embed", "block0", ...,
 * "head", "vocal_proj_feature", "vocal_block0", ..., "vocal_context",
 * "text_context_neg", "text_context_pos", "img_context") as host f32 copies during dit_forward(). */
typedef void dit_tap_fn(void *ctx, const char *name, const float *data, int ndim,
                        const int64_t *shape);
void dit_set_tap(struct dit *d, dit_tap_fn *fn, void *ctx);

/* dit_flops() is the analytic FLOP count of one dit_forward() (2 per MAC). */
double dit_flops(const struct dit_config *c, int64_t frames, int64_t h, int64_t w,
                 int64_t n_text, int64_t n_clip, int64_t n_audio);

/* The sizes of a tiny model (dit_write_tiny). */
struct dit_tiny_dims {
    int64_t dim, num_heads, num_layers, ffn_dim, text_dim, clip_dim, audio_dim, vocal_ffn_dim;
};

/* dit_write_tiny() writes a seeded tiny DiT + adapter with the real tensor
 * names and its hyper-parameters in the "config" metadata. */
int dit_write_tiny(const char *path, uint64_t seed, const struct dit_tiny_dims *dims);

#endif
