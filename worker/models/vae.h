/*
 * vae.h - the Wan 2.1 3D causal VAE (z_dim 16) on the engine backend:
 * a streaming decoder for the output video, an encoder for the reference
 * clip, segment decoding with a causal warm-up, and the `y` conditioning
 * tensor (SPEC-stableavatar 1.7, 1.8, 8).
 *
 * The configuration (base width, channel multipliers, number of residual
 * blocks, which resamples are temporal, attention blocks) is read off the
 * checkpoint's tensor shapes and key names: the real 0.5 GB Wan2.1_VAE.pth
 * and the tiny fixture models load through the same code. Key names may
 * carry the "model." prefix the original loader adds (or "weights.", as in
 * the parity fixtures).
 *
 * Decoding streams: one latent frame [z, h, w] in, 1 frame (the first
 * latent) or 2^u frames (later latents; u = number of temporal upsamples,
 * 2 for Wan: 4 frames) out, each [3, 8h, 8w] f32 clamped to [-1, 1]. The
 * decoder holds only its causal caches (two input frames per 3-tap conv)
 * and the current latent's activations, never the video: memory does not
 * grow with length. The original decodes the same way, one latent frame per
 * call with caches carried over, so streaming changes no number.
 *
 * Segments: the decoder is causal and its receptive field R is finite
 * (vae_receptive_field(); 38 latent frames for the Wan structure). Decoding
 * latents [a, b) by starting a fresh stream at a - R, as if it were latent
 * 0, and discarding the frames of latents < a gives frames byte-identical
 * to a full-stream decode.
 *
 * Latent normalisation is the original's, in f32 on the host:
 *   encode: z = (mu - mean) * inv_std;  decode: x = z / inv_std + mean;
 * with inv_std = f32(1 / std) (SPEC 8.1). Everything else runs through the
 * backend_*() ops, so the cuda backend runs it unchanged.
 */
#ifndef ENCORE_VAE_H
#define ENCORE_VAE_H

#include <stdint.h>

#include "worker/engine/backend.h"
#include "worker/engine/checkpoint.h"

#define VAE_Z_DIM 16

/* The latent normalisation constants of AutoencoderKLWan (SPEC 8.1). */
extern const float vae_latents_mean[VAE_Z_DIM];
extern const float vae_latents_std[VAE_Z_DIM];

/* Which halves of the model vae_load() binds. */
enum vae_part {
    VAE_PART_DECODER = 1, /* decoder.*, conv2.* */
    VAE_PART_ENCODER = 2, /* encoder.*, conv1.* */
    VAE_PART_ALL = 3,
};

struct vae;

/* The configuration as read from the checkpoint (for reports and tests). */
struct vae_info {
    int z_dim;         /* 16 */
    int dec_blocks;    /* decoder middle + upsample blocks */
    int enc_blocks;    /* encoder downsample + middle blocks */
    int dec_time_up;   /* temporal upsamples u: 2^u frames per latent (> 0) */
    int enc_time_down; /* temporal downsamples */
    int spatial;       /* spatial factor (8) */
    int dec_width;     /* widest decoder channel count (384 real) */
    int64_t n_params;  /* parameters bound */
};

/*
 * vae_load() binds the parts asked for from n stacked checkpoints
 * (borrowed: they must stay open while the vae lives) on be. Every missing or
 * misshapen tensor is logged by name and the load refused (ENC_EINVAL);
 * tensors of the bound parts nobody asked for are warned about.
 */
int vae_load(struct backend *be, struct ckpt *const *cks, int n, unsigned parts, struct vae **out);
/* vae_open() opens path (safetensors or .pth) and loads it; the vae owns the
 * checkpoint. */
int vae_open(struct backend *be, const char *path, unsigned parts, struct vae **out);
void vae_destroy(struct vae **vae);
void vae_get_info(const struct vae *vae, struct vae_info *info);

/*
 * vae_receptive_field() is the smallest warm-up w (in latent frames) such
 * that a segment decoded from a - w reproduces the full stream's frames of
 * latent a bit for bit, derived from the loaded decoder's layer structure
 * (38 for Wan 2.1). Needs the decoder part.
 */
int vae_receptive_field(const struct vae *vae);
/* vae_frames_of_latent() returns the first video frame index of latent k and
 * stores the count in *n (1 for k = 0, 2^u after). */
int64_t vae_frames_of_latent(const struct vae *vae, int64_t k, int *n);

/* ---- decoding ---- */

/* A decoded frame: rgb is [3, H, W] f32 (clamped to [-1, 1] unless
 * vae_decoder_set_clamp(dec, 0)), valid only during the call. frame is the
 * video frame index. A nonzero return stops the decode and is passed up. */
typedef int vae_frame_fn(void *ctx, int64_t frame, const float *rgb);

struct vae_decoder;

/*
 * vae_decoder_new() starts a decode stream for latents of h x w whose first
 * pushed latent is latent first_latent of the video: a stream that starts
 * at first_latent > 0 is a warm-up, decoded as if that latent were latent
 * 0; frames of latents < emit_from are computed but not delivered
 * (emit_from must be > first_latent when first_latent > 0). NULL with a
 * logged reason on bad sizes or a vae without a decoder.
 */
struct vae_decoder *vae_decoder_new(struct vae *vae, int64_t h, int64_t w, int64_t first_latent,
                                    int64_t emit_from);
void vae_decoder_set_clamp(struct vae_decoder *dec, int clamp);
/*
 * vae_decoder_push() decodes the next latent frame (host, [z, h, w], in the
 * DiT's normalised space) and hands each of its output frames to cb. Returns
 * 0, an enc_err from the backend, or cb's nonzero return.
 */
int vae_decoder_push(struct vae_decoder *dec, const float *latent, vae_frame_fn *cb, void *ctx);
/* The next latent index push() expects. */
int64_t vae_decoder_next_latent(const struct vae_decoder *dec);
void vae_decoder_destroy(struct vae_decoder **dec);

/*
 * vae_decode_range() decodes latents [a, b) of a video with warm-up
 * `warmup` latents (< 0: vae_receptive_field()). latents is the host array
 * of all latent frames, [L][z][h][w] frame-major; only frames
 * max(0, a - max(warmup, 1)) .. b-1 are read (a stream started at a > 0
 * needs one chunk to throw away). Frames of [a, b) go to cb in order.
 */
int vae_decode_range(struct vae *vae, int64_t h, int64_t w, const float *latents, int64_t a,
                     int64_t b, int warmup, vae_frame_fn *cb, void *ctx);

/* vae_frame_to_rgb24() applies the output pixel rule (SPEC 1.8) to a frame
 * [3, H, W] in [-1, 1]: v = clamp(x / 2 + 0.5, 0, 1) * 255, truncated to
 * uint8, written packed as rgb[H][W][3]. */
void vae_frame_to_rgb24(const float *frame, int64_t H, int64_t W, uint8_t *rgb);

/* ---- encoding ---- */

/*
 * vae_encode() encodes the clip pixels [3, T, H, W] (host, [-1, 1]) in
 * chunks [0], [1..4], [5..8], ... as the original: F = 1 + (T-1)/4 latent
 * frames (trailing frames past the last full chunk are dropped, as there,
 * with a warning). Writes the normalised posterior mean lat [z, F, h, w];
 * mu_raw and logvar (same shape, unnormalised) when not NULL.
 */
int vae_encode(struct vae *vae, const float *pixels, int64_t T, int64_t H, int64_t W, float *lat,
               float *mu_raw, float *logvar);
/*
 * vae_encode_reference() encodes the pipeline's reference clip (SPEC 1.7):
 * frame 0 = image [3, H, W] in [-1, 1], then n_frames - 1 frames of 0.0,
 * without materialising the clip. lat [z, F, h, w], F = 1 + (n_frames-1)/4.
 */
int vae_encode_reference(struct vae *vae, const float *image, int64_t H, int64_t W,
                         int64_t n_frames, float *lat);
/* vae_latent_dims() gives the latent size of an H x W x T clip. */
void vae_latent_dims(const struct vae *vae, int64_t T, int64_t H, int64_t W, int64_t *F, int64_t *h,
                     int64_t *w);

/*
 * vae_make_y() builds the DiT's conditioning y [4 + z, F, h, w] from the
 * reference latents lat [z, F, h, w] (SPEC 1.7): channels 0..3 the mask
 * (1 at latent 0, 0 after: the pixel mask of frame 0 repeated 4 times and
 * folded by 4 onto the channel axis), then the latents.
 */
void vae_make_y(const float *lat, int z, int64_t F, int64_t h, int64_t w, float *y);

/* ---- tiny model and bench ---- */

/*
 * vae_write_tiny() writes a seeded tiny VAE with the real key names and
 * structure (dim_mult [1,2,4,4], 2/3 residual blocks, temporal flags of Wan)
 * but base width 4, as safetensors f32 at path. Same seed, same bytes.
 */
int vae_write_tiny(const char *path, uint64_t seed);
/* vae_write_tiny_dim(): the same with base width dim (>= 1). */
int vae_write_tiny_dim(const char *path, uint64_t seed, int dim);

struct vae_bench_result {
    double frames_per_s; /* decoded video frames per second */
    double latents_per_s;
    double rss_mib_first; /* resident set after n_latents / 10 latents */
    double rss_mib_last;  /* resident set after n_latents */
    double rss_mib_peak;  /* the process's peak resident set (VmHWM) */
    double seconds;
};

/*
 * vae_bench() decodes n_latents seeded random latent frames of h x w with
 * vae on its backend, frames discarded, and reports throughput and the RSS
 * after a tenth and after all of them (flat when streaming is right).
 */
int vae_bench(struct vae *vae, int64_t h, int64_t w, int n_latents, struct vae_bench_result *res);

#endif
