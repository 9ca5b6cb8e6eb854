/*
 * media_mux.c - the stitch: chunks + the job's audio -> out.mp4; and probes.
 *
 * Video: the chunks' H.264 packets are copied, never decoded. A first pass
 * opens every chunk, checks that it holds one H.264 stream with the same
 * size and the same SPS/PPS (extradata) as the first chunk, that it starts
 * with a key frame and has no reordering (pts == dts), and counts its frames.
 * The second pass gives frame k of the output pts = dts = k at 1/fps and
 * stops after n_frames frames (possible without re-encoding because chunks
 * have no B-frames: dropping trailing frames breaks no reference).
 *
 * Audio: the first audio stream of the job's audio file is decoded,
 * converted by libswresample to float planar at the output rate (the file's
 * own rate when AAC has it, else 48 kHz) and 1 or 2 channels, and encoded
 * with FFmpeg's native "aac" encoder; exactly round(frames * rate / fps)
 * samples are encoded (the tail cut, or silence appended), so the audio ends
 * with the video. The encoder's 1024-sample priming is recorded by the MP4
 * muxer in an edit list.
 *
 * The two streams are interleaved by timestamp as they are produced, so
 * memory stays at a few packets whatever the length. The file is written to
 * OUT.part and renamed into place on success; on failure nothing is left.
 */
#include "common/media.h"

#include <errno.h>
#include <libavutil/audio_fifo.h>
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
#include <libswresample/swresample.h>
#include <libswscale/swscale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/media_av.h"
#include "common/xmalloc.h"

/* ---- video: packets copied from the chunks ---------------------------- */

struct vsrc {
    const char *const *chunks;
    int n_chunks, idx;
    AVFormatContext *ic;
    int stream;
    int64_t in_chunk; /* frames read from the open chunk */
    int64_t total;    /* frames handed out */
    int64_t limit;    /* frames wanted */
};

static int open_chunk(const char *path, AVFormatContext **ic, int *stream)
{
    int ret;
    *ic = NULL;
    media_av_init();
    ret = avformat_open_input(ic, path, NULL, NULL);
    if (ret < 0) {
        *ic = NULL;
        return log_error_rc(ret == AVERROR(ENOENT) ? ENC_EIO : ENC_EINVAL,
                            "cannot open chunk '%s': %s", path, media_av_strerror(ret));
    }
    if ((ret = avformat_find_stream_info(*ic, NULL)) < 0) {
        avformat_close_input(ic);
        return log_error_rc(ENC_EINVAL, "chunk '%s': unreadable (%s)", path,
                            media_av_strerror(ret));
    }
    int n_video = 0;
    for (unsigned i = 0; i < (*ic)->nb_streams; i++)
        if ((*ic)->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_VIDEO) {
            *stream = (int)i;
            n_video++;
        }
    if (n_video != 1 || (*ic)->streams[*stream]->codecpar->codec_id != AV_CODEC_ID_H264) {
        avformat_close_input(ic);
        return log_error_rc(ENC_EINVAL, "chunk '%s': not one H.264 video stream", path);
    }
    return 0;
}

/* Pass 1: check every chunk against the first; total frames in *n. */
static int check_chunks(const char *const *chunks, int n_chunks, AVCodecParameters *par0,
                        int64_t *n)
{
    AVPacket *pkt = av_packet_alloc();
    int rc = 0;
    *n = 0;
    if (!pkt)
        return log_error_rc(ENC_ENOMEM, "stitch: cannot allocate a packet");
    for (int i = 0; i < n_chunks && rc == 0; i++) {
        AVFormatContext *ic;
        int s;
        if ((rc = open_chunk(chunks[i], &ic, &s)) < 0)
            break;
        const AVCodecParameters *par = ic->streams[s]->codecpar;
        if (i == 0) {
            avcodec_parameters_copy(par0, par);
        } else if (par->width != par0->width || par->height != par0->height ||
                   par->extradata_size != par0->extradata_size ||
                   (par->extradata_size > 0 &&
                    memcmp(par->extradata, par0->extradata, (size_t)par->extradata_size))) {
            rc = log_error_rc(ENC_EINVAL, "chunk '%s': encoded with other parameters than '%s'",
                              chunks[i], chunks[0]);
        }
        int64_t frames = 0;
        while (rc == 0) {
            int ret = av_read_frame(ic, pkt);
            if (ret == AVERROR_EOF)
                break;
            if (ret < 0) {
                rc = log_error_rc(ENC_EINVAL, "chunk '%s': read error (%s)", chunks[i],
                                  media_av_strerror(ret));
                break;
            }
            if (pkt->stream_index == s) {
                if (frames == 0 && !(pkt->flags & AV_PKT_FLAG_KEY))
                    rc = log_error_rc(ENC_EINVAL, "chunk '%s': does not start with a key frame",
                                      chunks[i]);
                else if (pkt->pts != AV_NOPTS_VALUE && pkt->dts != AV_NOPTS_VALUE &&
                         pkt->pts != pkt->dts)
                    rc =
                        log_error_rc(ENC_EINVAL, "chunk '%s': has reordered (B) frames", chunks[i]);
                frames++;
            }
            av_packet_unref(pkt);
        }
        if (rc == 0 && frames == 0)
            rc = log_error_rc(ENC_EINVAL, "chunk '%s': no frames", chunks[i]);
        *n += frames;
        avformat_close_input(&ic);
    }
    av_packet_free(&pkt);
    return rc;
}

/* Next packet, timestamps in frames (1/fps). 1 got, 0 done, <0 error. */
static int vsrc_next(struct vsrc *v, AVPacket *pkt)
{
    while (v->total < v->limit) {
        if (!v->ic) {
            if (v->idx >= v->n_chunks)
                return 0;
            int rc = open_chunk(v->chunks[v->idx], &v->ic, &v->stream);
            if (rc < 0)
                return rc;
            v->in_chunk = 0;
        }
        int ret = av_read_frame(v->ic, pkt);
        if (ret == AVERROR_EOF) {
            avformat_close_input(&v->ic);
            v->idx++;
            continue;
        }
        if (ret < 0)
            return log_error_rc(ENC_EINVAL, "chunk '%s': read error (%s)", v->chunks[v->idx],
                                media_av_strerror(ret));
        if (pkt->stream_index != v->stream) {
            av_packet_unref(pkt);
            continue;
        }
        pkt->pts = pkt->dts = v->total;
        pkt->duration = 1;
        v->in_chunk++;
        v->total++;
        return 1;
    }
    return 0;
}

/* ---- audio: decoded, resampled, AAC-encoded --------------------------- */

struct asrc {
    struct media_av_input in;
    AVFrame *dec_frame, *enc_frame;
    SwrContext *swr;
    AVCodecContext *enc;
    AVAudioFifo *fifo;
    int rate, channels;
    int64_t target; /* samples to encode */
    int64_t sent;   /* samples given to the encoder */
    int in_eof, flushed;
};

static int pick_rate(const AVCodec *codec, int want)
{
    const int *r = codec->supported_samplerates;
    if (!r)
        return want;
    for (; *r; r++)
        if (*r == want)
            return want;
    return 48000;
}

static int asrc_open(struct asrc *a, const char *path, int64_t n_frames, int fps)
{
    int rc, ret;
    memset(a, 0, sizeof *a);
    if ((rc = media_av_open(&a->in, path, AVMEDIA_TYPE_AUDIO, "audio")) < 0)
        return rc;
    const AVCodec *codec = avcodec_find_encoder_by_name("aac");
    if (!codec)
        return log_error_rc(ENC_ENOTSUP, "stitch: this FFmpeg has no aac encoder");
    AVCodecContext *d = a->in.dec;
    int in_ch = d->ch_layout.nb_channels;
    if (d->sample_rate <= 0 || in_ch <= 0)
        return log_error_rc(ENC_EINVAL, "'%s': audio format unknown", path);
    a->rate = pick_rate(codec, d->sample_rate);
    a->channels = in_ch >= 2 ? 2 : 1;
    a->target = av_rescale(n_frames, a->rate, fps);
    a->enc = avcodec_alloc_context3(codec);
    a->dec_frame = av_frame_alloc();
    a->enc_frame = av_frame_alloc();
    if (!a->enc || !a->dec_frame || !a->enc_frame)
        return log_error_rc(ENC_ENOMEM, "stitch: cannot allocate the audio encoder");
    a->enc->sample_fmt = AV_SAMPLE_FMT_FLTP;
    a->enc->sample_rate = a->rate;
    av_channel_layout_default(&a->enc->ch_layout, a->channels);
    a->enc->bit_rate = 96000 * a->channels;
    a->enc->time_base = (AVRational){1, a->rate};
    a->enc->thread_count = 1;
    a->enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER | AV_CODEC_FLAG_BITEXACT;
    if ((ret = avcodec_open2(a->enc, codec, NULL)) < 0)
        return log_error_rc(ENC_EINVAL, "stitch: cannot open the aac encoder (%s)",
                            media_av_strerror(ret));
    a->fifo = av_audio_fifo_alloc(AV_SAMPLE_FMT_FLTP, a->channels, a->enc->frame_size * 4);
    if (!a->fifo)
        return log_error_rc(ENC_ENOMEM, "stitch: cannot allocate the audio fifo");
    return 0;
}

static int asrc_setup_swr(struct asrc *a, const AVFrame *f)
{
    AVChannelLayout in_layout = {0};
    int ret;
    if (f->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC)
        av_channel_layout_default(&in_layout, f->ch_layout.nb_channels);
    else
        av_channel_layout_copy(&in_layout, &f->ch_layout);
    ret = swr_alloc_set_opts2(&a->swr, &a->enc->ch_layout, AV_SAMPLE_FMT_FLTP, a->rate, &in_layout,
                              f->format, f->sample_rate, 0, NULL);
    av_channel_layout_uninit(&in_layout);
    if (ret >= 0)
        ret = swr_init(a->swr);
    if (ret < 0)
        return log_error_rc(ENC_EINVAL, "'%s': cannot set up audio conversion (%s)", a->in.path,
                            media_av_strerror(ret));
    return 0;
}

/* Convert (in = NULL: drain) into the fifo. */
static int asrc_convert(struct asrc *a, const AVFrame *f)
{
    int n_in = f ? f->nb_samples : 0;
    int cap = swr_get_out_samples(a->swr, n_in);
    if (cap <= 0)
        return 0;
    uint8_t **buf = NULL;
    int ret =
        av_samples_alloc_array_and_samples(&buf, NULL, a->channels, cap, AV_SAMPLE_FMT_FLTP, 0);
    if (ret < 0)
        return log_error_rc(ENC_ENOMEM, "stitch: audio buffer");
    int got = swr_convert(a->swr, buf, cap, f ? (const uint8_t **)f->extended_data : NULL, n_in);
    if (got > 0 && av_audio_fifo_write(a->fifo, (void **)buf, got) < got)
        got = AVERROR(ENOMEM);
    av_freep(&buf[0]);
    av_freep(&buf);
    if (got < 0)
        return log_error_rc(ENC_EINVAL, "'%s': audio conversion failed (%s)", a->in.path,
                            media_av_strerror(got));
    return 0;
}

/* Fill the fifo with at least `need` samples or reach the input's end. */
static int asrc_fill(struct asrc *a, int need)
{
    while (!a->in_eof && av_audio_fifo_size(a->fifo) < need) {
        int r = media_av_next_frame(&a->in, a->dec_frame);
        if (r < 0)
            return r;
        if (r == 0) {
            a->in_eof = 1;
            if (a->swr)
                return asrc_convert(a, NULL);
            return 0;
        }
        int rc = 0;
        if (!a->swr)
            rc = asrc_setup_swr(a, a->dec_frame);
        if (rc == 0)
            rc = asrc_convert(a, a->dec_frame);
        av_frame_unref(a->dec_frame);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Next AAC packet (timestamps in 1/rate). 1 got, 0 done, <0 error. */
static int asrc_next(struct asrc *a, AVPacket *pkt)
{
    for (;;) {
        int ret = avcodec_receive_packet(a->enc, pkt);
        if (ret >= 0)
            return 1;
        if (ret == AVERROR_EOF)
            return 0;
        if (ret != AVERROR(EAGAIN))
            return log_error_rc(ENC_EINVAL, "stitch: aac encoding failed (%s)",
                                media_av_strerror(ret));
        if (a->flushed)
            return 0;
        int64_t left = a->target - a->sent;
        if (left <= 0) {
            avcodec_send_frame(a->enc, NULL);
            a->flushed = 1;
            continue;
        }
        int n = left < a->enc->frame_size ? (int)left : a->enc->frame_size;
        int rc = asrc_fill(a, n);
        if (rc < 0)
            return rc;
        AVFrame *f = a->enc_frame;
        av_frame_unref(f);
        f->format = AV_SAMPLE_FMT_FLTP;
        f->sample_rate = a->rate;
        f->nb_samples = n;
        av_channel_layout_copy(&f->ch_layout, &a->enc->ch_layout);
        if (av_frame_get_buffer(f, 0) < 0)
            return log_error_rc(ENC_ENOMEM, "stitch: audio frame");
        int have = av_audio_fifo_read(a->fifo, (void **)f->data, n);
        if (have < 0)
            have = 0;
        for (int c = 0; c < a->channels; c++) /* silence past the input's end */
            memset(f->data[c] + (size_t)have * sizeof(float), 0,
                   (size_t)(n - have) * sizeof(float));
        f->pts = a->sent;
        a->sent += n;
        if ((ret = avcodec_send_frame(a->enc, f)) < 0)
            return log_error_rc(ENC_EINVAL, "stitch: aac encoding failed (%s)",
                                media_av_strerror(ret));
    }
}

static void asrc_close(struct asrc *a)
{
    av_audio_fifo_free(a->fifo);
    swr_free(&a->swr);
    avcodec_free_context(&a->enc);
    av_frame_free(&a->dec_frame);
    av_frame_free(&a->enc_frame);
    media_av_close(&a->in);
}

/* ---- the stitch -------------------------------------------------------- */

int media_mux_stitch(const char *out_path, const char *const *chunks, int n_chunks,
                     const char *audio_path, int64_t n_frames, int fps)
{
    AVCodecParameters *par0 = avcodec_parameters_alloc();
    AVFormatContext *oc = NULL;
    AVPacket *vpkt = av_packet_alloc(), *apkt = av_packet_alloc();
    AVDictionary *opts = NULL;
    struct vsrc v = {.chunks = chunks, .n_chunks = n_chunks};
    struct asrc a;
    int have_audio = 0, rc = 0, ret, opened = 0;
    char *tmp = xasprintf("%s.part", out_path);
    int64_t total = 0;
    memset(&a, 0, sizeof a);
    media_av_init();
    if (!par0 || !vpkt || !apkt) {
        rc = log_error_rc(ENC_ENOMEM, "stitch: out of memory");
        goto done;
    }
    if (n_chunks < 1 || fps < 1) {
        rc = log_error_rc(ENC_EINVAL, "'%s': nothing to stitch (%d chunks, fps %d)", out_path,
                          n_chunks, fps);
        goto done;
    }
    if ((rc = check_chunks(chunks, n_chunks, par0, &total)) < 0)
        goto done;
    if (n_frames <= 0)
        n_frames = total;
    if (n_frames > total) {
        rc = log_error_rc(ENC_EINVAL, "'%s': %lld frames wanted, the chunks hold %lld", out_path,
                          (long long)n_frames, (long long)total);
        goto done;
    }
    v.limit = n_frames;
    if (audio_path) {
        if ((rc = asrc_open(&a, audio_path, n_frames, fps)) < 0)
            goto done;
        have_audio = 1;
    }

    const AVOutputFormat *ofmt = av_guess_format(NULL, out_path, NULL);
    if (!ofmt)
        ofmt = av_guess_format("mp4", NULL, NULL);
    ret = avformat_alloc_output_context2(&oc, ofmt, NULL, tmp);
    if (ret < 0 || !oc) {
        oc = NULL;
        rc = log_error_rc(ENC_EINVAL, "'%s': cannot set up the container (%s)", out_path,
                          media_av_strerror(ret));
        goto done;
    }
    oc->flags |= AVFMT_FLAG_BITEXACT;
    AVStream *vs = avformat_new_stream(oc, NULL);
    AVStream *as = have_audio ? avformat_new_stream(oc, NULL) : NULL;
    if (!vs || (have_audio && !as)) {
        rc = log_error_rc(ENC_ENOMEM, "stitch: cannot add streams");
        goto done;
    }
    avcodec_parameters_copy(vs->codecpar, par0);
    vs->codecpar->codec_tag = 0;
    vs->time_base = (AVRational){1, fps};
    vs->avg_frame_rate = (AVRational){fps, 1};
    vs->r_frame_rate = (AVRational){fps, 1};
    if (have_audio) {
        avcodec_parameters_from_context(as->codecpar, a.enc);
        as->time_base = a.enc->time_base;
    }
    if ((ret = avio_open(&oc->pb, tmp, AVIO_FLAG_WRITE)) < 0) {
        rc = log_error_rc(ENC_EIO, "cannot create '%s': %s", tmp, media_av_strerror(ret));
        goto done;
    }
    opened = 1;
    if (strcmp(oc->oformat->name, "mp4") == 0 || strcmp(oc->oformat->name, "mov") == 0)
        av_dict_set(&opts, "movflags", "+faststart", 0);
    ret = avformat_write_header(oc, &opts);
    av_dict_free(&opts);
    if (ret < 0) {
        rc = log_error_rc(ENC_EIO, "'%s': cannot write the header (%s)", out_path,
                          media_av_strerror(ret));
        goto done;
    }

    AVRational vtb = {1, fps}, atb = have_audio ? a.enc->time_base : vtb;
    int hv = vsrc_next(&v, vpkt);
    int ha = have_audio ? asrc_next(&a, apkt) : 0;
    while (rc == 0 && (hv > 0 || ha > 0)) {
        if (hv < 0 || ha < 0) {
            rc = hv < 0 ? hv : ha;
            break;
        }
        int take_video = hv > 0 && (ha <= 0 || av_compare_ts(vpkt->dts, vtb, apkt->dts, atb) <= 0);
        AVPacket *p = take_video ? vpkt : apkt;
        av_packet_rescale_ts(p, take_video ? vtb : atb, take_video ? vs->time_base : as->time_base);
        p->stream_index = take_video ? vs->index : as->index;
        ret = av_interleaved_write_frame(oc, p);
        if (ret < 0) {
            rc = log_error_rc(ENC_EIO, "cannot write '%s': %s", out_path, media_av_strerror(ret));
            break;
        }
        if (take_video)
            hv = vsrc_next(&v, vpkt);
        else
            ha = asrc_next(&a, apkt);
    }
    if (rc == 0 && (hv < 0 || ha < 0))
        rc = hv < 0 ? hv : ha;
    if (rc == 0 && v.total != n_frames)
        rc = log_error_rc(ENC_EINVAL, "'%s': wrote %lld of %lld frames", out_path,
                          (long long)v.total, (long long)n_frames);
    if (rc == 0 && (ret = av_write_trailer(oc)) < 0)
        rc = log_error_rc(ENC_EIO, "cannot finish '%s': %s", out_path, media_av_strerror(ret));
    if (rc == 0 && (ret = avio_closep(&oc->pb)) < 0)
        rc = log_error_rc(ENC_EIO, "cannot close '%s': %s", tmp, media_av_strerror(ret));
    if (rc == 0 && rename(tmp, out_path) != 0)
        rc = log_error_rc(ENC_EIO, "cannot rename '%s' to '%s'", tmp, out_path);
done:
    if (v.ic)
        avformat_close_input(&v.ic);
    if (oc) {
        if (oc->pb)
            avio_closep(&oc->pb);
        avformat_free_context(oc);
    }
    if (rc != 0 && opened)
        remove(tmp);
    asrc_close(&a);
    av_packet_free(&vpkt);
    av_packet_free(&apkt);
    avcodec_parameters_free(&par0);
    free(tmp);
    return rc;
}

/* ---- probes ------------------------------------------------------------ */

int media_probe(const char *path, struct media_info *info)
{
    AVFormatContext *ic = NULL;
    AVPacket *pkt = NULL;
    int ret, vidx = -1, rc = 0;
    memset(info, 0, sizeof *info);
    media_av_init();
    if ((ret = avformat_open_input(&ic, path, NULL, NULL)) < 0)
        return log_error_rc(ENC_EIO, "cannot open '%s': %s", path, media_av_strerror(ret));
    if ((ret = avformat_find_stream_info(ic, NULL)) < 0) {
        rc = log_error_rc(ENC_EINVAL, "'%s': unreadable (%s)", path, media_av_strerror(ret));
        goto done;
    }
    for (unsigned i = 0; i < ic->nb_streams; i++) {
        const AVStream *st = ic->streams[i];
        const AVCodecParameters *par = st->codecpar;
        if (par->codec_type == AVMEDIA_TYPE_VIDEO) {
            if (info->n_video_streams++ == 0) {
                vidx = (int)i;
                info->has_video = 1;
                snprintf(info->vcodec, sizeof info->vcodec, "%s", avcodec_get_name(par->codec_id));
                info->w = par->width;
                info->h = par->height;
                info->fps_num = st->avg_frame_rate.num;
                info->fps_den = st->avg_frame_rate.den;
            }
        } else if (par->codec_type == AVMEDIA_TYPE_AUDIO) {
            if (info->n_audio_streams++ == 0) {
                info->has_audio = 1;
                snprintf(info->acodec, sizeof info->acodec, "%s", avcodec_get_name(par->codec_id));
                info->a_rate = par->sample_rate;
                info->a_channels = par->ch_layout.nb_channels;
            }
        }
    }
    pkt = av_packet_alloc();
    while (pkt && vidx >= 0 && av_read_frame(ic, pkt) >= 0) {
        if (pkt->stream_index == vidx) {
            info->n_frames++;
            if (pkt->flags & AV_PKT_FLAG_KEY)
                info->n_keyframes++;
        }
        av_packet_unref(pkt);
    }
    if (info->has_audio) {
        struct media_av_input in;
        AVFrame *f = av_frame_alloc();
        int64_t n = 0;
        if ((rc = media_av_open(&in, path, AVMEDIA_TYPE_AUDIO, "audio")) < 0) {
            av_frame_free(&f);
            goto done;
        }
        while (f && media_av_next_frame(&in, f) > 0) {
            n += f->nb_samples;
            av_frame_unref(f);
        }
        if (in.dec->sample_rate > 0)
            info->a_duration = (double)n / in.dec->sample_rate;
        av_frame_free(&f);
        media_av_close(&in);
    }
done:
    av_packet_free(&pkt);
    avformat_close_input(&ic);
    return rc;
}

int media_video_read_frames(const char *path, uint8_t **rgb, int64_t *n, int *w, int *h)
{
    struct media_av_input in;
    AVFrame *f = NULL;
    struct SwsContext *sws = NULL;
    int64_t cap = 0;
    int rc, r = 0;
    *rgb = NULL;
    *n = 0;
    if ((rc = media_av_open(&in, path, AVMEDIA_TYPE_VIDEO, "video")) < 0)
        return rc;
    *w = in.dec->width;
    *h = in.dec->height;
    f = av_frame_alloc();
    while (f && (r = media_av_next_frame(&in, f)) > 0) {
        if (f->width != *w || f->height != *h) {
            rc = log_error_rc(ENC_EINVAL, "'%s': frame size changes", path);
            break;
        }
        if (!sws)
            sws = sws_getContext(*w, *h, f->format, *w, *h, AV_PIX_FMT_RGB24,
                                 SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT | SWS_BITEXACT,
                                 NULL, NULL, NULL);
        if (!sws) {
            rc = log_error_rc(ENC_EINVAL, "'%s': cannot convert frames to RGB", path);
            break;
        }
        size_t fsz = (size_t)*w * *h * 3;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            *rgb = xrealloc(*rgb, (size_t)cap * fsz);
        }
        uint8_t *dst[4] = {*rgb + (size_t)*n * fsz, NULL, NULL, NULL};
        int dst_ls[4] = {*w * 3, 0, 0, 0};
        sws_scale(sws, (const uint8_t *const *)f->data, f->linesize, 0, *h, dst, dst_ls);
        (*n)++;
        av_frame_unref(f);
    }
    if (rc == 0 && !f)
        rc = log_error_rc(ENC_ENOMEM, "'%s': cannot allocate a frame", path);
    if (rc == 0 && r < 0)
        rc = r;
    if (rc < 0) {
        free(*rgb);
        *rgb = NULL;
        *n = 0;
    }
    sws_freeContext(sws);
    av_frame_free(&f);
    media_av_close(&in);
    return rc;
}
