/*
 * render_local.h - one whole render in this process: audio and portrait in,
 * MP4 with sound out (`encore render --local`, and the reference the farm's
 * results are compared with).
 *
 * Stages, each with a progress line and ETA: load (decode the audio, read
 * and resize the image, plan the windows), prepare (text, CLIP, y, audio
 * features), denoise (the sliding-window loop), decode (VAE stream to H.264
 * chunks, one per segment), stitch (chunks + AAC audio into the MP4).
 */
#ifndef ENCORE_RENDER_LOCAL_H
#define ENCORE_RENDER_LOCAL_H

#include <stdint.h>

#include "../common/blend.h"

struct render_params {
    const char *models;    /* model directory; NULL: the tiny model */
    const char *prompt;    /* NULL: the default prompt */
    const char *negative;  /* NULL: the original's negative prompt */
    int width, height;     /* output size, multiples of 16 */
    int clip_frames;       /* C, video frames per window (81) */
    int overlap;           /* O, latent frames */
    int steps;
    enum blend_scheme blend;
    uint64_t seed;
    float text_scale, audio_scale;
    int fps;               /* 25 (the model's rate; others are refused) */
    int segment_latents;   /* decode segment length (DECODE_SEGMENT_LATENTS) */
    const char *device;    /* backend: "cpu" (default) or "cuda:N" (a CUDA=1 build) */
    int threads;           /* cpu threads; 0: one per core */
    const char *save_latents; /* write the final latents here (safetensors), or NULL */
    const char *work_dir;  /* chunks go here; NULL: a temporary directory */
    int quiet;
};

/* render_params_default() fills the defaults of DESIGN 7. */
void render_params_default(struct render_params *rp);

enum render_stage {
    RENDER_STAGE_LOAD = 0,
    RENDER_STAGE_PREPARE,
    RENDER_STAGE_DENOISE,
    RENDER_STAGE_DECODE,
    RENDER_STAGE_STITCH,
    RENDER_STAGE_COUNT
};

struct render_report {
    double stage_s[RENDER_STAGE_COUNT];
    double encode_s;         /* seconds of the decode stage spent encoding H.264 */
    int64_t latent_frames;   /* L */
    int64_t windows;
    int64_t frames;          /* video frames written, 4(L-1)+1 */
    double duration_s;       /* frames / fps */
};

/*
 * render_local() renders audio_path + image_path into out_path. Returns 0,
 * ENC_EINVAL for bad input (named in the log: audio that does not decode,
 * an image that cannot be read, bad parameters), or another enc_err.
 * rep may be NULL.
 */
int render_local(const struct render_params *rp, const char *audio_path, const char *image_path,
                 const char *out_path, struct render_report *rep);

/* render_stage_name() names a stage ("load", "prepare", ...). */
const char *render_stage_name(enum render_stage s);

#endif
