/*
 * media_video.c - the decode task's encoder: frames -> one H.264 chunk file.
 *
 * Each chunk is its own libx264 session (avcodec_find_encoder_by_name
 * ("libx264")), so every chunk starts with an IDR frame and is one closed
 * GOP. The parameters are fixed so that all chunks of a job carry the same
 * SPS/PPS and can be joined by copying packets (media_mux.c):
 *   yuv420p (BT.601, limited range, tagged), crf and preset from the params,
 *   no B-frames (decode order = display order: a chunk can be cut after any
 *   frame and timestamps only need an offset), no scene-cut I-frames, one
 *   GOP per chunk, one encoder thread (the bytes do not depend on the core
 *   count), bit-exact container (no version strings).
 * RGB -> YUV uses libswscale (bicubic chroma, accurate rounding, bit-exact),
 * the conversion the ffmpeg binary behind the original's imageio applies.
 * Float frames are turned into pixels with the original's rule (SPEC 1.8).
 */
#include "common/media.h"

#include <libavutil/opt.h>
#include <libswscale/swscale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/media_av.h"
#include "common/xmalloc.h"

struct video_chunk_writer {
    char *path;
    struct video_chunk_params p;
    AVFormatContext *oc;
    AVCodecContext *enc;
    AVStream *st;
    struct SwsContext *sws;
    AVFrame *yuv;
    AVPacket *pkt;
    uint8_t *rgb; /* (h, w, 3) scratch for float frames */
    int64_t n_frames;
    int header_done;
    int err; /* first error; later calls return it */
};

uint8_t media_pixel_from_unit(float x)
{
    float v = x / 2.0f + 0.5f;
    if (!(v > 0.0f)) /* also NaN */
        v = 0.0f;
    if (v > 1.0f)
        v = 1.0f;
    return (uint8_t)(v * 255.0f);
}

void media_frame_to_rgb(const float *chw, int64_t plane_stride, int w, int h, uint8_t *rgb)
{
    size_t plane = (size_t)w * h;
    for (int c = 0; c < 3; c++) {
        const float *src = chw + c * plane_stride;
        for (size_t i = 0; i < plane; i++)
            rgb[3 * i + c] = media_pixel_from_unit(src[i]);
    }
}

void video_chunk_params_default(struct video_chunk_params *p, int w, int h)
{
    p->w = w;
    p->h = h;
    p->fps = 25;
    p->crf = 18;
    p->preset = "medium";
}

static void writer_free(struct video_chunk_writer *w)
{
    sws_freeContext(w->sws);
    av_frame_free(&w->yuv);
    av_packet_free(&w->pkt);
    avcodec_free_context(&w->enc);
    if (w->oc) {
        if (w->oc->pb)
            avio_closep(&w->oc->pb);
        avformat_free_context(w->oc);
    }
    free(w->rgb);
    free(w->path);
    free(w);
}

struct video_chunk_writer *video_chunk_writer_new(const char *path,
                                                  const struct video_chunk_params *p)
{
    struct video_chunk_writer *w;
    AVDictionary *opts = NULL;
    char buf[32];
    int ret;
    media_av_init();
    if (p->w < 16 || p->h < 16 || (p->w & 1) || (p->h & 1) || p->w > 16384 || p->h > 16384) {
        log_error("'%s': frame size %dx%d is not even and >= 16", path, p->w, p->h);
        return NULL;
    }
    if (p->fps < 1 || p->fps > 240 || p->crf < 0 || p->crf > 51 || !p->preset) {
        log_error("'%s': bad encoder settings (fps %d, crf %d)", path, p->fps, p->crf);
        return NULL;
    }
    const AVCodec *codec = avcodec_find_encoder_by_name("libx264");
    if (!codec) {
        log_error("'%s': this FFmpeg has no libx264 encoder", path);
        return NULL;
    }
    w = xcalloc(1, sizeof *w);
    w->path = xstrdup(path);
    w->p = *p;
    ret = avformat_alloc_output_context2(&w->oc, NULL, NULL, path);
    if (ret < 0 || !w->oc) {
        log_error("'%s': no container for this file name (%s)", path, media_av_strerror(ret));
        w->oc = NULL;
        goto fail;
    }
    w->oc->flags |= AVFMT_FLAG_BITEXACT;
    w->st = avformat_new_stream(w->oc, NULL);
    w->enc = avcodec_alloc_context3(codec);
    w->yuv = av_frame_alloc();
    w->pkt = av_packet_alloc();
    w->rgb = xmalloc((size_t)p->w * p->h * 3);
    if (!w->st || !w->enc || !w->yuv || !w->pkt) {
        log_error("'%s': cannot allocate the encoder", path);
        goto fail;
    }
    AVCodecContext *e = w->enc;
    e->width = p->w;
    e->height = p->h;
    e->pix_fmt = AV_PIX_FMT_YUV420P;
    e->time_base = (AVRational){1, p->fps};
    e->framerate = (AVRational){p->fps, 1};
    e->sample_aspect_ratio = (AVRational){1, 1};
    e->gop_size = 1 << 20; /* one GOP per chunk */
    e->max_b_frames = 0;
    e->thread_count = 1;
    e->color_range = AVCOL_RANGE_MPEG;
    e->colorspace = AVCOL_SPC_SMPTE170M;
    e->flags |= AV_CODEC_FLAG_CLOSED_GOP;
    if (w->oc->oformat->flags & AVFMT_GLOBALHEADER)
        e->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    av_dict_set(&opts, "preset", p->preset, 0);
    snprintf(buf, sizeof buf, "%d", p->crf);
    av_dict_set(&opts, "crf", buf, 0);
    av_dict_set(&opts, "x264-params", "scenecut=0:open-gop=0:bframes=0:sliced-threads=0", 0);
    ret = avcodec_open2(e, codec, &opts);
    av_dict_free(&opts);
    if (ret < 0) {
        log_error("'%s': cannot open libx264 (%s)", path, media_av_strerror(ret));
        goto fail;
    }
    ret = avcodec_parameters_from_context(w->st->codecpar, e);
    if (ret < 0) {
        log_error("'%s': cannot set stream parameters (%s)", path, media_av_strerror(ret));
        goto fail;
    }
    w->st->time_base = e->time_base;
    w->st->avg_frame_rate = e->framerate;
    w->st->sample_aspect_ratio = e->sample_aspect_ratio;
    w->yuv->format = AV_PIX_FMT_YUV420P;
    w->yuv->width = p->w;
    w->yuv->height = p->h;
    w->yuv->color_range = AVCOL_RANGE_MPEG;
    w->yuv->colorspace = AVCOL_SPC_SMPTE170M;
    if ((ret = av_frame_get_buffer(w->yuv, 0)) < 0) {
        log_error("'%s': cannot allocate a frame (%s)", path, media_av_strerror(ret));
        goto fail;
    }
    w->sws = sws_getContext(p->w, p->h, AV_PIX_FMT_RGB24, p->w, p->h, AV_PIX_FMT_YUV420P,
                            SWS_BICUBIC | SWS_ACCURATE_RND | SWS_BITEXACT, NULL, NULL, NULL);
    if (!w->sws) {
        log_error("'%s': cannot set up RGB -> YUV conversion", path);
        goto fail;
    }
    ret = avio_open(&w->oc->pb, path, AVIO_FLAG_WRITE);
    if (ret < 0) {
        log_error("cannot create '%s': %s", path, media_av_strerror(ret));
        goto fail;
    }
    ret = avformat_write_header(w->oc, NULL);
    if (ret < 0) {
        log_error("'%s': cannot write the header (%s)", path, media_av_strerror(ret));
        remove(path);
        goto fail;
    }
    w->header_done = 1;
    return w;
fail:
    writer_free(w);
    return NULL;
}

/* Send frame (NULL: flush) and write every packet the encoder gives back. */
static int encode(struct video_chunk_writer *w, AVFrame *frame)
{
    int ret = avcodec_send_frame(w->enc, frame);
    if (ret < 0)
        return log_error_rc(ENC_EINVAL, "'%s': encoding failed (%s)", w->path,
                            media_av_strerror(ret));
    for (;;) {
        ret = avcodec_receive_packet(w->enc, w->pkt);
        if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF)
            return 0;
        if (ret < 0)
            return log_error_rc(ENC_EINVAL, "'%s': encoding failed (%s)", w->path,
                                media_av_strerror(ret));
        av_packet_rescale_ts(w->pkt, w->enc->time_base, w->st->time_base);
        w->pkt->stream_index = w->st->index;
        ret = av_interleaved_write_frame(w->oc, w->pkt);
        if (ret < 0)
            return log_error_rc(ENC_EIO, "cannot write '%s': %s", w->path, media_av_strerror(ret));
    }
}

int video_chunk_writer_add_rgb(struct video_chunk_writer *w, const uint8_t *rgb)
{
    if (w->err)
        return w->err;
    int ret = av_frame_make_writable(w->yuv);
    if (ret < 0)
        return w->err = log_error_rc(ENC_ENOMEM, "'%s': frame buffer (%s)", w->path,
                                     media_av_strerror(ret));
    const uint8_t *src[4] = {rgb, NULL, NULL, NULL};
    int src_ls[4] = {w->p.w * 3, 0, 0, 0};
    sws_scale(w->sws, src, src_ls, 0, w->p.h, w->yuv->data, w->yuv->linesize);
    w->yuv->pts = w->n_frames;
    w->yuv->pict_type = w->n_frames == 0 ? AV_PICTURE_TYPE_I : AV_PICTURE_TYPE_NONE;
    int rc = encode(w, w->yuv);
    if (rc < 0)
        return w->err = rc;
    w->n_frames++;
    return 0;
}

int video_chunk_writer_add_f32(struct video_chunk_writer *w, const float *chw, int64_t plane_stride)
{
    if (w->err)
        return w->err;
    media_frame_to_rgb(chw, plane_stride, w->p.w, w->p.h, w->rgb);
    return video_chunk_writer_add_rgb(w, w->rgb);
}

int video_chunk_writer_close(struct video_chunk_writer **wp)
{
    struct video_chunk_writer *w = *wp;
    int rc;
    if (!w)
        return 0;
    *wp = NULL;
    rc = w->err;
    if (rc == 0 && w->n_frames == 0)
        rc = log_error_rc(ENC_EINVAL, "'%s': chunk has no frames", w->path);
    if (rc == 0)
        rc = encode(w, NULL);
    if (rc == 0) {
        int ret = av_write_trailer(w->oc);
        if (ret < 0)
            rc = log_error_rc(ENC_EIO, "cannot finish '%s': %s", w->path, media_av_strerror(ret));
    }
    if (rc == 0 && w->oc->pb) {
        int ret = avio_closep(&w->oc->pb);
        if (ret < 0)
            rc = log_error_rc(ENC_EIO, "cannot close '%s': %s", w->path, media_av_strerror(ret));
    }
    if (rc != 0) {
        if (w->oc->pb)
            avio_closep(&w->oc->pb);
        remove(w->path);
    }
    writer_free(w);
    return rc;
}

void video_chunk_writer_destroy(struct video_chunk_writer **wp)
{
    struct video_chunk_writer *w = *wp;
    if (!w)
        return;
    *wp = NULL;
    if (w->oc->pb)
        avio_closep(&w->oc->pb);
    remove(w->path);
    writer_free(w);
}
