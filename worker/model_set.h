/*
 * model_set.h - the parts of a StableAvatar model under one directory
 * (--models DIR, SPEC 7.1), found by name, opened by mmap and loaded only
 * when a stage needs them.
 *
 * Layout (the published one; encore's tiny model uses the same names with
 * .safetensors files — every reader picks its format by content):
 *   Wan2.1-Fun-V1.1-1.3B-InP/diffusion_pytorch_model.safetensors  DiT base
 *   Wan2.1-Fun-V1.1-1.3B-InP/config.json                          DiT hyper-parameters
 *   Wan2.1-Fun-V1.1-1.3B-InP/Wan2.1_VAE.pth                       VAE
 *   Wan2.1-Fun-V1.1-1.3B-InP/models_t5_umt5-xxl-enc-bf16.pth      umT5 encoder
 *   Wan2.1-Fun-V1.1-1.3B-InP/google/umt5-xxl/spiece.model         tokenizer
 *   Wan2.1-Fun-V1.1-1.3B-InP/models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth
 *   wav2vec2-base-960h/model.safetensors (or pytorch_model.bin)
 *   StableAvatar-1.3B/transformer3d-square.pt   audio adapter + tuned blocks, stacked
 *                                               over the base (optional: the tiny
 *                                               model holds everything in the base)
 * Every missing file is named in the error.
 */
#ifndef ENCORE_MODEL_SET_H
#define ENCORE_MODEL_SET_H

#include <stdint.h>

#include "engine/backend.h"

enum model_part {
    MODEL_PART_DIT = 1u << 0,
    MODEL_PART_VAE_ENCODER = 1u << 1,
    MODEL_PART_VAE_DECODER = 1u << 2,
    MODEL_PART_TEXT = 1u << 3, /* umT5 + tokenizer */
    MODEL_PART_CLIP = 1u << 4,
    MODEL_PART_AUDIO = 1u << 5, /* wav2vec2 */
    MODEL_PART_ALL = (1u << 6) - 1,
};

struct dit;
struct vae;
struct umt5;
struct tokenizer;
struct clip;
struct wav2vec2;

struct model_set {
    char *dir;
    struct backend *be; /* borrowed */
    char *path[6];      /* resolved files, by part bit index */
    char *avatar_path;  /* StableAvatar .pt, or NULL */
    char *tokenizer_path;
    char *dit_config_path; /* config.json or NULL */
    unsigned loaded;
    struct ckpt *ck[6], *avatar_ck;
    struct dit *dit;
    struct vae *vae;
    struct umt5 *t5;
    struct tokenizer *tok;
    struct clip *clip;
    struct wav2vec2 *w2v;
};

/*
 * model_set_open() resolves every file of the parts asked for under dir
 * (nothing is read yet). ENC_EINVAL naming each missing file. Free with
 * model_set_destroy().
 */
int model_set_open(const char *dir, struct backend *be, unsigned parts, struct model_set **out);
/* model_set_load() loads the parts not loaded yet. 0 or the loader's error. */
int model_set_load(struct model_set *ms, unsigned parts);
/* model_set_unload() frees parts (the 11 GB text encoder after prepare). */
void model_set_unload(struct model_set *ms, unsigned parts);
void model_set_destroy(struct model_set **ms);

/*
 * model_set_write_tiny() writes encore's tiny model into dir (created):
 * every part, seeded by seed. Prints nothing; 0 or an enc_err.
 */
int model_set_write_tiny(const char *dir, uint64_t seed);
/*
 * model_set_tiny_dir() returns (caller frees) the directory of the default
 * tiny model, $ENCORE_CACHE or $XDG_CACHE_HOME/encore or ~/.cache/encore,
 * plus "/tiny-v1-seed<seed>", writing it first if it is not complete.
 * NULL after logging when it cannot be written.
 */
char *model_set_tiny_dir(uint64_t seed);

#endif
