/*
 * wav2vec2.h - the wav2vec2-base audio encoder (SPEC 9), as StableAvatar
 * uses it: Hugging Face Wav2Vec2Model with the post-LN encoder, only
 * last_hidden_state kept.
 *
 * The configuration (conv widths and kernels, hidden size, FFN size, layers,
 * positional conv kernel and groups) is read off the checkpoint's tensor
 * shapes; the two values shapes cannot give come from the checkpoint's
 * "config" metadata when present ("num_attention_heads", "conv_stride"),
 * otherwise the base-960h values (head size 64; strides 5,2,2,...).
 * Key names are those of facebook/wav2vec2-base-960h, with or without the
 * "wav2vec2." prefix of the CTC checkpoint.
 *
 * One forward at a time per struct wav2vec2 (thread-compatible).
 */
#ifndef ENCORE_WAV2VEC2_H
#define ENCORE_WAV2VEC2_H

#include <stdint.h>

#include "../engine/backend.h"
#include "../engine/checkpoint.h"

#define WAV2VEC2_MAX_CONV 8

struct wav2vec2_config {
    int n_conv;                             /* feature-extractor conv layers (7) */
    int64_t conv_dim[WAV2VEC2_MAX_CONV];    /* output channels (512) */
    int64_t conv_kernel[WAV2VEC2_MAX_CONV]; /* 10,3,3,3,3,2,2 */
    int64_t conv_stride[WAV2VEC2_MAX_CONV]; /* 5,2,2,2,2,2,2 */
    int64_t hidden;                         /* 768: the output width */
    int64_t ffn;                            /* 3072 */
    int64_t n_layers;                       /* 12 */
    int64_t n_heads;                        /* 12 (x 64) */
    int64_t pos_kernel;                     /* 128 */
    int64_t pos_groups;                     /* 16 */
    float eps;                              /* 1e-5, every LayerNorm and the GroupNorm */
};

struct wav2vec2;

/*
 * wav2vec2_load() binds the model from cks (later checkpoints override
 * earlier ones), reporting missing, misshapen and unexpected keys by name.
 * Returns 0 or a negative enc_err. The checkpoints must stay open while the
 * model lives. Free with wav2vec2_destroy().
 */
int wav2vec2_load(struct backend *be, struct ckpt *const *cks, int n_cks, struct wav2vec2 **out);
/*
 * wav2vec2_init_random() builds a model of configuration cfg with seeded
 * random weights in memory (benchmarks); same distributions as the tiny
 * model file. Returns 0 or ENC_EINVAL / ENC_ENOMEM.
 */
int wav2vec2_init_random(struct backend *be, const struct wav2vec2_config *cfg, uint64_t seed,
                         struct wav2vec2 **out);
void wav2vec2_destroy(struct wav2vec2 **m);
const struct wav2vec2_config *wav2vec2_get_config(const struct wav2vec2 *m);

/* wav2vec2_config_base() fills the facebook/wav2vec2-base configuration. */
void wav2vec2_config_base(struct wav2vec2_config *cfg);
/* wav2vec2_config_tiny() fills the configuration `encore model init --tiny`
 * writes (hidden 768, one layer; see wav2vec2.c). */
void wav2vec2_config_tiny(struct wav2vec2_config *cfg);

/*
 * wav2vec2_frames_cfg() is the number of output frames for n_samples input
 * samples: n <- floor((n - k)/s) + 1 over the convs; 0 when the input is
 * shorter than the receptive field. wav2vec2_frames() uses the base
 * kernels/strides (the same for every wav2vec2-base shaped model).
 */
int64_t wav2vec2_frames_cfg(const struct wav2vec2_config *cfg, int64_t n_samples);
int64_t wav2vec2_frames(int64_t n_samples);

/*
 * wav2vec2_normalize() is the processor's per-slice normalisation:
 * out = (x - mean) / sqrt(var + 1e-7), population variance, with numpy 1.x
 * float32 rounding (bit-exact to the processor). out may alias x.
 */
void wav2vec2_normalize(const float *x, int64_t n, float *out);

/*
 * wav2vec2_forward() encodes one slice of raw 16 kHz mono samples [n]
 * (normalised here, as the processor does) into out [n_frames, hidden],
 * n_frames = wav2vec2_frames_cfg(cfg, n), which is also stored in
 * *n_frames. ENC_EINVAL when the slice is too short for one frame.
 */
int wav2vec2_forward(struct wav2vec2 *m, const float *samples, int64_t n, float *out,
                     int64_t *n_frames);
/*
 * wav2vec2_forward_ex() is wav2vec2_forward() with the intermediates for
 * parity: input_values [n] (after normalisation) and conv_features
 * [n_frames, conv_dim_last] (after the conv stack, before the projection
 * LayerNorm); either may be NULL. normalize = 0 takes samples as already
 * normalised input values.
 */
int wav2vec2_forward_ex(struct wav2vec2 *m, const float *samples, int64_t n, int normalize,
                        float *input_values, float *conv_features, float *out, int64_t *n_frames);

/*
 * wav2vec2_write_tiny() writes the tiny model (wav2vec2_config_tiny, real
 * HF key names without prefix, f32, weight-normed positional conv as
 * weight_g/weight_v, "config" metadata) to path as .safetensors, weights
 * seeded by seed. Returns 0 or ENC_EIO.
 */
int wav2vec2_write_tiny(const char *path, uint64_t seed);
/* wav2vec2_write_random() is the same for any configuration. */
int wav2vec2_write_random(const char *path, const struct wav2vec2_config *cfg, uint64_t seed);

/*
 * wav2vec2_bench() runs reps forwards of a slice of audio_seconds of noise
 * (after one warm-up) and returns seconds of audio encoded per wall-clock
 * second, or a negative value on failure.
 */
double wav2vec2_bench(struct wav2vec2 *m, double audio_seconds, int reps);

#endif
