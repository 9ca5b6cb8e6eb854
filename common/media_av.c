/*
 * media_av.c - shared libav* plumbing of the media module (see media_av.h).
 *
 * FFmpeg logs through a process-global callback; we install ours once and
 * forward its warnings and errors at debug level, since each media function
 * logs its own one-line error naming the file.
 */
#include "common/media_av.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"

static pthread_once_t av_once = PTHREAD_ONCE_INIT;

static void av_log_forward(void *avcl, int level, const char *fmt, va_list ap)
{
    (void)avcl;
    if (level > AV_LOG_WARNING || LOG_LEVEL_DEBUG > log_threshold)
        return;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && line[n - 1] == '\n')
        line[--n] = '\0';
    if (n > 0)
        log_debug("ffmpeg: %s", line);
}

static void av_setup(void)
{
    av_log_set_callback(av_log_forward);
}

void media_av_init(void)
{
    pthread_once(&av_once, av_setup);
}

const char *media_av_strerror(int averr)
{
    static _Thread_local char buf[AV_ERROR_MAX_STRING_SIZE + 16];
    if (av_strerror(averr, buf, sizeof buf) < 0)
        snprintf(buf, sizeof buf, "ffmpeg error %d", averr);
    return buf;
}

/* An open failure that is about the file system, not the content. */
static int is_io_error(int averr)
{
    return averr == AVERROR(ENOENT) || averr == AVERROR(EACCES) || averr == AVERROR(EISDIR) ||
           averr == AVERROR(EIO) || averr == AVERROR(EPERM) || averr == AVERROR(ENOTDIR);
}

int media_av_open(struct media_av_input *in, const char *path, enum AVMediaType type,
                  const char *what)
{
    int ret, rc;
    memset(in, 0, sizeof *in);
    in->path = path;
    media_av_init();
    ret = avformat_open_input(&in->fmt, path, NULL, NULL);
    if (ret < 0) {
        in->fmt = NULL;
        if (is_io_error(ret))
            return log_error_rc(ENC_EIO, "cannot open '%s': %s", path, media_av_strerror(ret));
        return log_error_rc(ENC_EINVAL, "'%s': not a readable %s file (%s)", path, what,
                            media_av_strerror(ret));
    }
    ret = avformat_find_stream_info(in->fmt, NULL);
    if (ret < 0) {
        rc = log_error_rc(ENC_EINVAL, "'%s': cannot read stream info (%s)", path,
                          media_av_strerror(ret));
        goto fail;
    }
    const AVCodec *codec = NULL;
    ret = av_find_best_stream(in->fmt, type, -1, -1, &codec, 0);
    if (ret < 0) {
        rc = log_error_rc(ENC_EINVAL, "'%s': no %s stream%s", path, what,
                          ret == AVERROR_DECODER_NOT_FOUND ? " with a known decoder" : "");
        goto fail;
    }
    in->st = in->fmt->streams[ret];
    for (unsigned i = 0; i < in->fmt->nb_streams; i++)
        if (in->fmt->streams[i] != in->st)
            in->fmt->streams[i]->discard = AVDISCARD_ALL;
    in->dec = avcodec_alloc_context3(codec);
    if (!in->dec) {
        rc = log_error_rc(ENC_ENOMEM, "'%s': cannot allocate a decoder", path);
        goto fail;
    }
    ret = avcodec_parameters_to_context(in->dec, in->st->codecpar);
    if (ret >= 0) {
        in->dec->thread_count = 1;
        if (type == AVMEDIA_TYPE_VIDEO)
            in->dec->max_pixels = MEDIA_AV_MAX_PIXELS; /* refuse image bombs early */
        in->dec->pkt_timebase = in->st->time_base;
        ret = avcodec_open2(in->dec, codec, NULL);
    }
    if (ret < 0) {
        rc = log_error_rc(ENC_EINVAL, "'%s': cannot open the %s decoder (%s)", path, codec->name,
                          media_av_strerror(ret));
        goto fail;
    }
    in->pkt = av_packet_alloc();
    if (!in->pkt) {
        rc = log_error_rc(ENC_ENOMEM, "'%s': cannot allocate a packet", path);
        goto fail;
    }
    return 0;
fail:
    media_av_close(in);
    return rc;
}

int media_av_next_frame(struct media_av_input *in, AVFrame *frame)
{
    for (;;) {
        int ret = avcodec_receive_frame(in->dec, frame);
        if (ret >= 0)
            return 1;
        if (ret == AVERROR_EOF)
            return 0;
        if (ret != AVERROR(EAGAIN))
            in->n_bad++; /* a decode error on data already sent: count it, go on */
        if (in->eof_sent)
            return 0;
        ret = av_read_frame(in->fmt, in->pkt);
        if (ret == AVERROR_EOF) {
            in->eof_sent = 1;
            avcodec_send_packet(in->dec, NULL);
            continue;
        }
        if (ret < 0) {
            /* A read error that is not EOF: treat what came so far as the
             * stream, as a truncated file reads; the caller's length checks
             * decide whether that is acceptable. */
            in->n_bad++;
            in->eof_sent = 1;
            avcodec_send_packet(in->dec, NULL);
            continue;
        }
        if (in->pkt->stream_index != in->st->index) {
            av_packet_unref(in->pkt);
            continue;
        }
        ret = avcodec_send_packet(in->dec, in->pkt);
        av_packet_unref(in->pkt);
        if (ret < 0 && ret != AVERROR(EAGAIN))
            in->n_bad++;
    }
}

void media_av_close(struct media_av_input *in)
{
    av_packet_free(&in->pkt);
    avcodec_free_context(&in->dec);
    if (in->fmt)
        avformat_close_input(&in->fmt);
    in->st = NULL;
}
