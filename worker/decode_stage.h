/*
 * decode_stage.h - the `decode` task (DESIGN 3): final latents of a segment
 * through the VAE decoder, encoded as one H.264 chunk.
 *
 * A segment is a span [a, b) of latent frames; its chunk holds the video
 * frames of those latents (latent 0: 1 frame, each later latent: 4). A
 * segment decoded with a warm-up of at least the decoder's receptive field
 * gives the same frames as the same latents of one full-stream decode, so
 * segments can be decoded anywhere, in any order, and join seamlessly.
 */
#ifndef ENCORE_DECODE_STAGE_H
#define ENCORE_DECODE_STAGE_H

#include <stdint.h>

struct vae;

/* Default segment length in latent frames (64 video frames, 2.56 s). */
#define DECODE_SEGMENT_LATENTS 16

/* The warm-up the farm sends before a segment: the Wan VAE's receptive
 * field (vae_receptive_field(), 38 latents for the Wan structure and the
 * tiny model). A worker whose VAE needs more refuses the task. */
#define DECODE_WARMUP_LATENTS 38

/* decode_segment_count() is the number of segments of seg latents in L. */
int64_t decode_segment_count(int64_t L, int64_t seg);

/*
 * decode_segment() decodes latents [a, b) of lat (frame-major [L][16][h][w],
 * normalised) with the given warm-up (< 0: the receptive field) and writes
 * its frames to chunk_path at fps. 0 or a negative enc_err.
 */
int decode_segment(struct vae *vae, const float *lat, int64_t h, int64_t w, int64_t a,
                   int64_t b, int warmup, int fps, const char *chunk_path);

/*
 * decode_segment_from() is decode_segment() for a caller that holds only
 * latents [first, b) (lat: frame-major [b - first][16][h][w]) with warm-up
 * a - first: first < a when a > 0, first == 0 when a == 0. The farm's decode
 * task. Gives the same frames as decode_segment() with that warm-up.
 */
int decode_segment_from(struct vae *vae, const float *lat, int64_t first, int64_t h, int64_t w,
                        int64_t a, int64_t b, int fps, const char *chunk_path);

/* The progress callback of decode_stream(): frames written so far. */
typedef void decode_progress_fn(void *ctx, int64_t frames_done);

/*
 * decode_stream() decodes all L latents as one stream and cuts the frames
 * into chunk_paths[i] for segment i (seg latents each): the single-process
 * path, with no warm-up work and the same frames as decode_segment().
 * encode_seconds (may be NULL) gets the time spent encoding video.
 */
int decode_stream(struct vae *vae, const float *lat, int64_t L, int64_t h, int64_t w,
                  int64_t seg, int fps, char *const *chunk_paths, decode_progress_fn *progress,
                  void *ctx, double *encode_seconds);

/* decode_latents_frame_major() turns [16, L, h, w] into [L][16][h][w]. */
void decode_latents_frame_major(const float *in, int64_t z, int64_t L, int64_t h, int64_t w,
                                float *out);

#endif
