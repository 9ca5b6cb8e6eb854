/*
 * media.h - encore's audio, image and video I/O, on FFmpeg's libraries.
 *
 * The media module (media_audio.c, media_image.c, media_video.c,
 * media_mux.c, media_examples.c) is the only code that includes libav*
 * headers; everything else sees the plain types below.
 *
 *   audio in   any file FFmpeg reads -> 16 kHz mono float (SPEC 1.2)
 *   image in   PNG / JPEG / WebP / BMP / TIFF / GIF -> 8-bit RGB, and the
 *              PIL bicubic resize of SPEC 1.4 (image_resize_pil.h)
 *   video out  frames -> an H.264 chunk file (libx264, yuv420p, one closed
 *              GOP starting with an IDR, no B-frames, fixed parameters)
 *   stitch     chunks -> out.mp4 by copying packets (no re-encode), plus the
 *              job's audio encoded as AAC and trimmed to the video's length
 *
 * Errors: every fallible function returns 0 or a negative enc_err and logs
 * one line naming the file: ENC_EIO when a file cannot be opened or written,
 * ENC_EINVAL when its content is not what is expected (no audio stream, not
 * an image, truncated or corrupt data, empty audio).
 */
#ifndef ENCORE_MEDIA_H
#define ENCORE_MEDIA_H

#include <stddef.h>
#include <stdint.h>

/* ---- audio ------------------------------------------------------------- */

#define MEDIA_AUDIO_RATE 16000 /* the model's sample rate (SPEC 1.2) */

/* A decoded waveform: mono, MEDIA_AUDIO_RATE Hz, float32 (full scale 1.0). */
struct audio_pcm {
    float *samples;   /* (n,) owned; freed by audio_pcm_release() */
    int64_t n;        /* samples */
    int64_t cap;      /* allocated samples, >= n (the one copy in memory) */
    int src_rate;     /* the file's sample rate, Hz */
    int src_channels; /* the file's channel count (averaged to mono) */
};

/* Called with each block of 16 kHz mono samples, in order; nonzero aborts
 * the decode and that value is returned by media_audio_stream(). */
typedef int media_audio_chunk_fn(void *ctx, const float *samples, int64_t n);

/*
 * media_audio_decode() decodes the first audio stream of `path` to 16 kHz
 * mono float, the way the original's librosa.load(path, sr=16000) does:
 * channels averaged, then resampled with libswresample's soxr engine at
 * 20-bit precision (the same libsoxr "HQ" recipe librosa's soxr_hq uses; see
 * docs/media.md), length ceil(n_in * 16000 / rate_in). The buffer is sized
 * from the container's duration and grows in place, so only one copy of the
 * samples is ever held. On success *out owns samples; on failure *out is
 * zeroed. Fails with ENC_EIO (cannot open), ENC_EINVAL (no audio stream,
 * undecodable, zero samples).
 */
int media_audio_decode(const char *path, struct audio_pcm *out);

/*
 * media_audio_stream() decodes like media_audio_decode() but hands the
 * samples to fn block by block (blocks of at most a few thousand samples)
 * and keeps nothing; *src_rate / *src_channels / *n_total are set when not
 * NULL. The blocks concatenated equal media_audio_decode()'s samples.
 */
int media_audio_stream(const char *path, media_audio_chunk_fn *fn, void *ctx, int *src_rate,
                       int *src_channels, int64_t *n_total);

/* audio_pcm_release() frees the samples and zeroes *a; NULL-safe. */
void audio_pcm_release(struct audio_pcm *a);

/*
 * media_audio_write_wav() writes mono float samples as a 16-bit PCM WAV
 * (values clamped to [-1, 1], scaled by 32767, rounded). ENC_EIO on failure.
 */
int media_audio_write_wav(const char *path, const float *samples, int64_t n, int rate);

/* ---- images ------------------------------------------------------------ */

/* An 8-bit RGB image, rows top to bottom, pixels interleaved R,G,B. */
struct image_rgb {
    uint8_t *px; /* (h, w, 3) owned; freed by image_rgb_release() */
    int w, h;
};

/*
 * media_image_decode() reads a still image (PNG, JPEG, WebP, BMP, TIFF, GIF:
 * the first frame) and converts it to RGB as PIL's convert('RGB') does:
 * alpha is dropped (not composited), grey is replicated, a palette is
 * expanded, 16-bit samples are reduced to 8 bits. EXIF orientation is not
 * applied (PIL's Image.open does not either). On success *out owns px.
 * ENC_EIO when the file cannot be opened, ENC_EINVAL when it is not a
 * decodable image.
 */
int media_image_decode(const char *path, struct image_rgb *out);

/*
 * media_image_load() decodes `path` and stretches it to w x h with Pillow's
 * bicubic resize (SPEC 1.4: Image.open(p).convert('RGB').resize((w, h))).
 */
int media_image_load(const char *path, int w, int h, struct image_rgb *out);

/* media_image_write_png() writes img as an 8-bit RGB PNG. ENC_EIO on failure. */
int media_image_write_png(const char *path, const struct image_rgb *img);

/*
 * media_image_to_chw() converts img to the model's input: x/255 then
 * (x - 0.5) * 2 in float32, planar. out: (3, h, w).
 */
void media_image_to_chw(const struct image_rgb *img, float *out);

/* image_rgb_release() frees px and zeroes *img; NULL-safe. */
void image_rgb_release(struct image_rgb *img);

/* ---- video chunks ------------------------------------------------------ */

/*
 * media_pixel_from_unit() is the original's output pixel rule (SPEC 1.8):
 * v = x/2 + 0.5 clamped to [0, 1], then (uint8)(v * 255) truncated, all in
 * float32. NaN maps to 0.
 */
uint8_t media_pixel_from_unit(float x);

/*
 * media_frame_to_rgb() applies media_pixel_from_unit to one frame.
 * chw: channel c, row y, column x at chw[c * plane_stride + y * w + x]
 * (plane_stride = T*H*W for a [3, T, H, W] video, H*W for one [3, H, W]
 * frame); rgb: (h, w, 3).
 */
void media_frame_to_rgb(const float *chw, int64_t plane_stride, int w, int h, uint8_t *rgb);

/* Encoder settings; every chunk of one video must use the same values. */
struct video_chunk_params {
    int w, h;           /* even, >= 16 */
    int fps;            /* frames per second (25) */
    int crf;            /* x264 constant rate factor (18) */
    const char *preset; /* x264 preset ("medium") */
};

/* video_chunk_params_default() fills the values encore renders with. */
void video_chunk_params_default(struct video_chunk_params *p, int w, int h);

struct video_chunk_writer;

/*
 * video_chunk_writer_new() starts encoding an H.264 chunk into `path` (the
 * container follows the extension; use .mp4). The chunk is one closed GOP
 * that starts with an IDR frame, has no B-frames and one slice per frame,
 * encoded with one x264 thread so the bytes do not depend on the machine's
 * core count. Returns NULL (and logs) on a bad size or when the file or the
 * encoder cannot be opened.
 */
struct video_chunk_writer *video_chunk_writer_new(const char *path,
                                                  const struct video_chunk_params *p);

/* video_chunk_writer_add_f32() encodes one frame in [-1, 1] with the pixel
 * rule; chw and plane_stride as media_frame_to_rgb(). */
int video_chunk_writer_add_f32(struct video_chunk_writer *w, const float *chw,
                               int64_t plane_stride);

/* video_chunk_writer_add_rgb() encodes one (h, w, 3) RGB frame. */
int video_chunk_writer_add_rgb(struct video_chunk_writer *w, const uint8_t *rgb);

/*
 * video_chunk_writer_close() flushes the encoder, finishes the file and
 * frees the writer (*w becomes NULL). Returns 0 or the first error seen;
 * a chunk with no frames is ENC_EINVAL. On failure the file is removed.
 */
int video_chunk_writer_close(struct video_chunk_writer **w);

/* video_chunk_writer_destroy() abandons the chunk: frees the writer and
 * removes the partial file. NULL-safe. */
void video_chunk_writer_destroy(struct video_chunk_writer **w);

/* ---- stitch ------------------------------------------------------------ */

/*
 * media_mux_stitch() joins the chunk files, in order, into out_path (MP4) by
 * copying their H.264 packets with continuous timestamps at `fps`, keeps the
 * first n_frames frames (n_frames <= 0: all; more than the chunks hold is
 * ENC_EINVAL), and when audio_path is not NULL adds its first audio stream
 * encoded with FFmpeg's native AAC encoder at the file's rate (48 kHz if AAC
 * has no such rate), mono or stereo, trimmed to (or padded with silence up
 * to) the video's duration. Chunks must share codec parameters and each must
 * start with a key frame (ENC_EINVAL otherwise, naming the chunk).
 */
int media_mux_stitch(const char *out_path, const char *const *chunks, int n_chunks,
                     const char *audio_path, int64_t n_frames, int fps);

/* ---- inspection (tests, checks after the stitch) ----------------------- */

struct media_info {
    int has_video;
    char vcodec[32]; /* codec name, e.g. "h264" */
    int w, h;
    int fps_num, fps_den; /* the stream's average frame rate */
    int64_t n_frames;     /* counted video packets */
    int64_t n_keyframes;  /* of those, key frames */
    int n_video_streams;
    int has_audio;
    char acodec[32]; /* e.g. "aac" */
    int a_rate, a_channels;
    double a_duration; /* seconds, from the decoded sample count */
    int n_audio_streams;
};

/* media_probe() describes a media file by reading it through. */
int media_probe(const char *path, struct media_info *info);

/*
 * media_video_read_frames() decodes every frame of the first video stream
 * into *rgb, a new (n, h, w, 3) array the caller frees.
 */
int media_video_read_frames(const char *path, uint8_t **rgb, int64_t *n, int *w, int *h);

/* ---- demo inputs ------------------------------------------------------- */

/*
 * media_make_examples() writes the demo inputs into dir (which must exist):
 * speech.wav (about 5 s of formant-synthesised vowels, 16 kHz 16-bit mono)
 * and portrait.png (512x512 procedurally drawn face). Deterministic bytes.
 */
int media_make_examples(const char *dir);

#endif
