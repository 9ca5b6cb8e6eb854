/*
 * decode_stage.c - latents to H.264 chunks (see decode_stage.h).
 */
#include "decode_stage.h"

#include <stdlib.h>
#include <string.h>

#include "../common/err.h"
#include "../common/log.h"
#include "../common/media.h"
#include "../common/progress.h"
#include "models/vae.h"

int64_t decode_segment_count(int64_t L, int64_t seg)
{
    return seg > 0 ? (L + seg - 1) / seg : 0;
}

void decode_latents_frame_major(const float *in, int64_t z, int64_t L, int64_t h, int64_t w,
                                float *out)
{
    int64_t plane = h * w;
    for (int64_t c = 0; c < z; c++)
        for (int64_t f = 0; f < L; f++)
            memcpy(out + (f * z + c) * plane, in + (c * L + f) * plane,
                   (size_t)plane * sizeof(float));
}

struct chunk_sink {
    struct vae *vae;
    struct video_chunk_writer *cw;
    int64_t H, W;
    int64_t frames;
    /* decode_stream(): segment cutting */
    int64_t seg, cur_seg, cur_latent;
    int fps;
    char *const *paths;
    decode_progress_fn *progress;
    void *progress_ctx;
    double encode_s; /* time inside the video encoder */
};

static int open_chunk(struct chunk_sink *s, const char *path)
{
    struct video_chunk_params p;
    video_chunk_params_default(&p, (int)s->W, (int)s->H);
    p.fps = s->fps;
    s->cw = video_chunk_writer_new(path, &p);
    return s->cw ? 0 : ENC_EIO;
}

static int put_frame(void *ctx, int64_t frame, const float *rgb)
{
    struct chunk_sink *s = ctx;
    (void)frame;
    double t = progress_now();
    int rc = video_chunk_writer_add_f32(s->cw, rgb, s->H * s->W);
    s->encode_s += progress_now() - t;
    s->frames++;
    return rc;
}

int decode_segment(struct vae *vae, const float *lat, int64_t h, int64_t w, int64_t a,
                   int64_t b, int warmup, int fps, const char *chunk_path)
{
    struct vae_info vi;
    vae_get_info(vae, &vi);
    struct chunk_sink s = {.vae = vae, .H = h * vi.spatial, .W = w * vi.spatial, .fps = fps};
    int rc = open_chunk(&s, chunk_path);
    if (rc < 0)
        return rc;
    rc = vae_decode_range(vae, h, w, lat, a, b, warmup, put_frame, &s);
    int rc2 = video_chunk_writer_close(&s.cw);
    return rc < 0 ? rc : rc2;
}

int decode_segment_from(struct vae *vae, const float *lat, int64_t first, int64_t h, int64_t w,
                        int64_t a, int64_t b, int fps, const char *chunk_path)
{
    if (first < 0 || a < first || b <= a || (a > 0 && first == a))
        return log_error_rc(ENC_EINVAL, "decode: bad segment [%lld, %lld) from latent %lld",
                            (long long)a, (long long)b, (long long)first);
    struct vae_info vi;
    vae_get_info(vae, &vi);
    struct chunk_sink s = {.vae = vae, .H = h * vi.spatial, .W = w * vi.spatial, .fps = fps};
    struct vae_decoder *dec = vae_decoder_new(vae, h, w, first, a);
    if (!dec)
        return ENC_EINVAL;
    int rc = open_chunk(&s, chunk_path);
    int64_t per = vi.z_dim * h * w;
    for (int64_t k = first; rc == 0 && k < b; k++)
        rc = vae_decoder_push(dec, lat + (k - first) * per, put_frame, &s);
    vae_decoder_destroy(&dec);
    if (s.cw) {
        int rc2 = video_chunk_writer_close(&s.cw);
        if (rc == 0)
            rc = rc2;
    }
    return rc;
}

/* stream_frame(): the frames of latent k go to segment k / seg. */
static int stream_frame(void *ctx, int64_t frame, const float *rgb)
{
    struct chunk_sink *s = ctx;
    int64_t seg = s->cur_latent / s->seg;
    int rc;
    if (seg != s->cur_seg) {
        if (s->cw && (rc = video_chunk_writer_close(&s->cw)) < 0)
            return rc;
        if ((rc = open_chunk(s, s->paths[seg])) < 0)
            return rc;
        s->cur_seg = seg;
    }
    if ((rc = put_frame(s, frame, rgb)) < 0)
        return rc;
    if (s->progress)
        s->progress(s->progress_ctx, s->frames);
    return 0;
}

int decode_stream(struct vae *vae, const float *lat, int64_t L, int64_t h, int64_t w,
                  int64_t seg, int fps, char *const *chunk_paths, decode_progress_fn *progress,
                  void *ctx, double *encode_seconds)
{
    struct vae_info vi;
    vae_get_info(vae, &vi);
    struct chunk_sink s = {.vae = vae, .H = h * vi.spatial, .W = w * vi.spatial, .seg = seg,
                           .cur_seg = -1, .fps = fps, .paths = chunk_paths,
                           .progress = progress, .progress_ctx = ctx};
    struct vae_decoder *dec = vae_decoder_new(vae, h, w, 0, 0);
    int rc = dec ? 0 : ENC_EINVAL;
    for (int64_t k = 0; rc == 0 && k < L; k++) {
        s.cur_latent = k;
        rc = vae_decoder_push(dec, lat + k * vi.z_dim * h * w, stream_frame, &s);
    }
    vae_decoder_destroy(&dec);
    if (s.cw) {
        double t = progress_now();
        int rc2 = video_chunk_writer_close(&s.cw);
        s.encode_s += progress_now() - t;
        if (rc == 0)
            rc = rc2;
    }
    if (encode_seconds)
        *encode_seconds = s.encode_s;
    return rc;
}
