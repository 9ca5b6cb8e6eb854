/*
 * clip.h - the CLIP ViT-H/14 image tower as StableAvatar uses it (SPEC 1.5):
 * open-clip xlm-roberta-large-vit-huge-14's `visual` with use_31_block,
 * i.e. patch conv, class token, positional embedding, pre-norm and every
 * transformer block but the last, no post-norm, no head.
 *
 * The configuration (width, patch size, token grid and so the image size,
 * blocks, MLP width) is read off the tensor shapes; the head count comes
 * from the checkpoint's "config" metadata ("heads") when present, else
 * width / 80 (ViT-H/14: 16 heads x 80). Keys are those of
 * models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth, with the
 * "visual." prefix or without.
 *
 * One forward at a time per struct clip (thread-compatible).
 */
#ifndef ENCORE_CLIP_H
#define ENCORE_CLIP_H

#include <stdint.h>

#include "../engine/backend.h"
#include "../engine/checkpoint.h"

struct clip_config {
    int64_t dim;        /* 1280 */
    int64_t patch;      /* 14 */
    int64_t grid;       /* 16: patches per side */
    int64_t image_size; /* grid * patch = 224 */
    int64_t n_tokens;   /* grid^2 + 1 = 257 */
    int64_t n_blocks;   /* 32 in the checkpoint; n_blocks - 1 are run */
    int64_t n_heads;    /* 16 */
    int64_t mlp;        /* 5120 */
    float eps;          /* 1e-5 */
};

struct clip;

/*
 * clip_load() binds the vision tower from cks (later checkpoints override
 * earlier ones), reporting missing, misshapen and unexpected `visual.` keys
 * by name. Returns 0 or a negative enc_err. The checkpoints must stay open
 * while the model lives. Free with clip_destroy().
 */
int clip_load(struct backend *be, struct ckpt *const *cks, int n_cks, struct clip **out);
void clip_destroy(struct clip **m);
const struct clip_config *clip_get_config(const struct clip *m);

/*
 * clip_init_random() builds a tower of configuration cfg with seeded random
 * weights in memory (benchmarks); same distributions as the tiny model
 * file. Returns 0 or ENC_EINVAL / ENC_ENOMEM.
 */
int clip_init_random(struct backend *be, const struct clip_config *cfg, uint64_t seed,
                     struct clip **out);

/* clip_config_vit_h() fills the real ViT-H/14 configuration (1280 wide, 16
 * heads, 224 px, 257 tokens, 32 blocks of which 31 run, MLP 5120). */
void clip_config_vit_h(struct clip_config *cfg);
/* clip_config_tiny() fills the configuration `encore model init --tiny`
 * writes: width 64, 4 heads, image 56 (17 tokens), 3 blocks (2 run). */
void clip_config_tiny(struct clip_config *cfg);

/* A debug tap sees named intermediates as host f32 copies: "resized"
 * [3, S, S] (before normalisation), "pixel_values" [3, S, S],
 * "embeddings" [n_tokens, dim], "block0", "block1", ... [n_tokens, dim]. */
typedef void clip_tap_fn(void *ctx, const char *name, const float *data, int64_t n);

/*
 * clip_forward() encodes image [3, H, W] (RGB in [-1, 1] at the video size;
 * rounded to bf16 here, as the pipeline casts it) into out [n_tokens, dim]:
 * bicubic resize to image_size, x*0.5+0.5, per-channel normalisation, then
 * the tower. tap may be NULL. Returns 0 or a negative enc_err.
 */
int clip_forward(struct clip *m, const float *image, int64_t H, int64_t W, float *out,
                 clip_tap_fn *tap, void *tap_ctx);

/*
 * clip_write_tiny() writes the tiny tower (clip_config_tiny, "visual." key
 * names, f32, seeded by seed, "config" metadata) to path as .safetensors.
 * Returns 0 or ENC_EIO.
 */
int clip_write_tiny(const char *path, uint64_t seed);

#endif
