/*
 * media_av.h - the media module's private helpers around libav* (FFmpeg).
 *
 * Only media_*.c include this file (and through it the libav headers). It
 * holds what the audio, image, video and mux parts share: one-time setup of
 * FFmpeg's logging, error-code translation, and "open the first stream of a
 * kind and its decoder" / "next decoded frame" loops.
 */
#ifndef ENCORE_MEDIA_AV_H
#define ENCORE_MEDIA_AV_H

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/avutil.h>

/* Largest picture a decoder may allocate (w * h): 100 megapixels. */
#define MEDIA_AV_MAX_PIXELS 100000000

/* An input file with one opened decoder. */
struct media_av_input {
    const char *path; /* borrowed, for messages */
    AVFormatContext *fmt;
    AVCodecContext *dec;
    AVStream *st;
    AVPacket *pkt;
    int eof_sent; /* the decoder was sent the flush packet */
    int n_bad;    /* packets the decoder refused (corrupt data) */
};

/* media_av_init() routes FFmpeg's log lines to encore's log (debug level)
 * once per process. Every media entry point calls it. */
void media_av_init(void);

/* media_av_strerror() names an AVERROR code (static storage per thread). */
const char *media_av_strerror(int averr);

/*
 * media_av_open() opens path, finds the best stream of `type` and opens its
 * decoder (threads: 1, so results do not depend on the core count). 0, or
 * ENC_EIO (cannot open the file), ENC_EINVAL (not readable media, no stream
 * of that type, no decoder). Logs naming the file; `what` ("audio", "image")
 * words the message.
 */
int media_av_open(struct media_av_input *in, const char *path, enum AVMediaType type,
                  const char *what);

/*
 * media_av_next_frame() decodes the next frame of the opened stream into
 * frame: 1 got one, 0 end of stream, <0 enc_err (I/O error). Packets the
 * decoder rejects as invalid are counted in n_bad and skipped.
 */
int media_av_next_frame(struct media_av_input *in, AVFrame *frame);

/* media_av_close() releases everything; safe on a zeroed or failed input. */
void media_av_close(struct media_av_input *in);

#endif
