/*
 * media_audio.c - any audio FFmpeg reads -> 16 kHz mono float (SPEC 1.2).
 *
 * Mirrors librosa.load(path, sr=16000): decode, average the channels
 * (to_mono = mean over channels), resample with soxr at "HQ" quality,
 * length ceil(n_in * 16000 / rate_in). The channel average is libswresample's
 * rematrix with an explicit matrix of 1/C per channel (done before resampling,
 * as librosa does); the resampler is libswresample's soxr engine at 20-bit
 * precision, i.e. the libsoxr HQ recipe that librosa's default res_type
 * 'soxr_hq' uses (python-soxr quality 'HQ'). When libswresample was built
 * without soxr it falls back to its own windowed-sinc filter and says so.
 *
 * Streaming invariant: samples flow decoder -> resampler -> a fixed scratch
 * block -> the caller's callback. Nothing here holds more than one block;
 * media_audio_decode()'s callback appends to one buffer preallocated from the
 * container's duration and grown in place, so an hour of audio is held once.
 * The emitted count never exceeds ceil(n_in_so_far * 16000 / rate_in) (that
 * bound only grows), so the final length fix (pad zeros or drop a surplus)
 * never takes back samples already handed out.
 */
#include "common/media.h"

#include <errno.h>
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
#include <libswresample/swresample.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/media_av.h"
#include "common/xmalloc.h"

#define OUT_RATE MEDIA_AUDIO_RATE
#define MAX_SECONDS (24 * 3600) /* longer input is refused, not allocated */
#define MAX_SAMPLES ((int64_t)MAX_SECONDS * OUT_RATE)
#define PREALLOC_MAX ((int64_t)2 * 3600 * OUT_RATE + OUT_RATE)

struct astream {
    struct media_av_input in;
    SwrContext *swr;
    int rate, channels; /* of the input, fixed at the first frame */
    int64_t n_in;       /* input samples (per channel) decoded so far */
    int64_t n_out;      /* 16 kHz samples handed to fn */
    int64_t declared;   /* input samples the container states, or -1 */
    float *scratch;     /* resampler output block */
    int scratch_cap;
    float *held; /* resampler output beyond the current bound */
    int64_t n_held, held_cap;
    media_audio_chunk_fn *fn;
    void *ctx;
};

/* ceil(n * OUT_RATE / rate) */
static int64_t out_len(int64_t n, int rate)
{
    return (n * OUT_RATE + rate - 1) / rate;
}

static int swr_setup(struct astream *s, const AVFrame *fr)
{
    AVChannelLayout in_layout = {0}, out_layout = AV_CHANNEL_LAYOUT_MONO;
    int ret;
    s->rate = fr->sample_rate;
    s->channels = fr->ch_layout.nb_channels;
    if (s->rate <= 0 || s->channels <= 0)
        return log_error_rc(ENC_EINVAL, "'%s': bad audio format (%d Hz, %d channels)", s->in.path,
                            s->rate, s->channels);
    if (fr->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC)
        av_channel_layout_default(&in_layout, s->channels);
    else if (av_channel_layout_copy(&in_layout, &fr->ch_layout) < 0)
        return log_error_rc(ENC_ENOMEM, "'%s': cannot copy the channel layout", s->in.path);
    ret = swr_alloc_set_opts2(&s->swr, &out_layout, AV_SAMPLE_FMT_FLT, OUT_RATE, &in_layout,
                              fr->format, s->rate, 0, NULL);
    av_channel_layout_uninit(&in_layout);
    if (ret < 0)
        return log_error_rc(ENC_EINVAL, "'%s': cannot set up the resampler (%s)", s->in.path,
                            media_av_strerror(ret));
    /* Plain average of the channels, as librosa.to_mono (np.mean). */
    double *m = xmalloc((size_t)s->channels * sizeof *m);
    for (int c = 0; c < s->channels; c++)
        m[c] = 1.0 / s->channels;
    ret = swr_set_matrix(s->swr, m, s->channels);
    free(m);
    if (ret < 0)
        return log_error_rc(ENC_EINVAL, "'%s': cannot set the downmix (%s)", s->in.path,
                            media_av_strerror(ret));
    av_opt_set(s->swr, "resampler", "soxr", 0);
    av_opt_set_double(s->swr, "precision", 20.0, 0);
    ret = swr_init(s->swr);
    if (ret < 0) {
        log_warn("'%s': libswresample has no soxr, using its own resampler", s->in.path);
        av_opt_set(s->swr, "resampler", "swr", 0);
        av_opt_set_int(s->swr, "filter_size", 64, 0);
        ret = swr_init(s->swr);
    }
    if (ret < 0)
        return log_error_rc(ENC_EINVAL, "'%s': cannot start the resampler (%s)", s->in.path,
                            media_av_strerror(ret));
    return 0;
}

/* Input samples that count: the decoded ones, but not beyond a declared
 * length that is a little shorter (encoder padding at the end of AAC in MP4,
 * which FFmpeg 5 does not trim). */
static int64_t n_in_used(const struct astream *s)
{
    if (s->declared > 0 && s->n_in > s->declared && s->n_in - s->declared <= 4096)
        return s->declared;
    return s->n_in;
}

/* Hand out samples up to the current length bound; keep any surplus. */
static int emit(struct astream *s, const float *x, int64_t n)
{
    int64_t bound = out_len(n_in_used(s), s->rate);
    /* Earlier surplus first, in order. */
    if (s->n_held > 0) {
        if (s->n_held + n > s->held_cap) {
            s->held_cap = (s->n_held + n) * 2;
            s->held = xrealloc(s->held, (size_t)s->held_cap * sizeof *s->held);
        }
        memcpy(s->held + s->n_held, x, (size_t)n * sizeof *x);
        s->n_held += n;
        x = s->held;
        n = s->n_held;
    }
    int64_t take = bound - s->n_out;
    if (take > n)
        take = n;
    if (take < 0)
        take = 0;
    if (take > 0) {
        int r = s->fn(s->ctx, x, take);
        if (r)
            return r;
        s->n_out += take;
    }
    int64_t rest = n - take;
    if (rest > 0) {
        if (x != s->held) {
            if (rest > s->held_cap) {
                s->held_cap = rest * 2;
                s->held = xrealloc(s->held, (size_t)s->held_cap * sizeof *s->held);
            }
            memcpy(s->held, x + take, (size_t)rest * sizeof *x);
        } else {
            memmove(s->held, s->held + take, (size_t)rest * sizeof *x);
        }
    }
    s->n_held = rest;
    return 0;
}

static int convert(struct astream *s, const uint8_t **data, int n_in)
{
    int cap = swr_get_out_samples(s->swr, n_in);
    if (cap < 0)
        return log_error_rc(ENC_EINVAL, "'%s': resampler error", s->in.path);
    if (cap > s->scratch_cap) {
        s->scratch_cap = cap + 1024;
        s->scratch = xrealloc(s->scratch, (size_t)s->scratch_cap * sizeof *s->scratch);
    }
    uint8_t *out = (uint8_t *)s->scratch;
    int got = swr_convert(s->swr, &out, s->scratch_cap, data, n_in);
    if (got < 0)
        return log_error_rc(ENC_EINVAL, "'%s': resampling failed (%s)", s->in.path,
                            media_av_strerror(got));
    return got > 0 ? emit(s, s->scratch, got) : 0;
}

/* The declared length, when the container states it (not a bitrate guess). */
static int64_t declared_samples(const struct astream *s)
{
    const AVStream *st = s->in.st;
    if (s->in.fmt->duration_estimation_method == AVFMT_DURATION_FROM_BITRATE)
        return -1;
    if (st->duration == AV_NOPTS_VALUE || st->duration <= 0)
        return -1;
    return av_rescale_q(st->duration, st->time_base, (AVRational){1, s->rate});
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/*
 * FFmpeg's WAV reader quietly shortens a stream whose file ends before the
 * "data" chunk does. Read the RIFF chunk list ourselves and report a data
 * chunk that runs past the end of the file (size 0 or 0xffffffff, written
 * by streaming writers, means "unknown" and is accepted).
 */
static int check_wav_complete(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t h[12], c[8];
    int rc = 0;
    if (!f)
        return 0;
    if (fread(h, 1, 12, f) == 12 && memcmp(h, "RIFF", 4) == 0 && memcmp(h + 8, "WAVE", 4) == 0 &&
        fseek(f, 0, SEEK_END) == 0) {
        long fsize = ftell(f);
        long pos = 12;
        while (pos + 8 <= fsize && fseek(f, pos, SEEK_SET) == 0 && fread(c, 1, 8, f) == 8) {
            uint32_t size = get_le32(c + 4);
            if (memcmp(c, "data", 4) == 0) {
                if (size != 0 && size != 0xffffffffu && pos + 8 + (long)size > fsize)
                    rc = log_error_rc(ENC_EINVAL,
                                      "'%s': truncated WAV: data chunk of %u bytes, %ld present",
                                      path, size, fsize - pos - 8);
                break;
            }
            pos += 8 + (long)size + (size & 1);
        }
    }
    fclose(f);
    return rc;
}

static int run(struct astream *s)
{
    AVFrame *fr = av_frame_alloc();
    int rc = 0, r;
    if (!fr)
        return log_error_rc(ENC_ENOMEM, "'%s': cannot allocate a frame", s->in.path);
    while ((r = media_av_next_frame(&s->in, fr)) > 0) {
        if (!s->swr) {
            if ((rc = swr_setup(s, fr)) < 0)
                goto done;
            s->declared = declared_samples(s);
        }
        if (fr->sample_rate != s->rate || fr->ch_layout.nb_channels != s->channels) {
            rc = log_error_rc(ENC_EINVAL,
                              "'%s': audio format changes mid-stream (%d Hz x %d "
                              "-> %d Hz x %d)",
                              s->in.path, s->rate, s->channels, fr->sample_rate,
                              fr->ch_layout.nb_channels);
            goto done;
        }
        s->n_in += fr->nb_samples;
        if ((rc = convert(s, (const uint8_t **)fr->extended_data, fr->nb_samples)) != 0)
            goto done;
        av_frame_unref(fr);
    }
    if (r < 0) {
        rc = r;
        goto done;
    }
    if (strcmp(s->in.fmt->iformat->name, "wav") == 0 && (rc = check_wav_complete(s->in.path)) < 0)
        goto done;
    if (s->n_in == 0) {
        rc = log_error_rc(ENC_EINVAL, "'%s': no audio samples%s", s->in.path,
                          s->in.n_bad ? " (corrupt data)" : "");
        goto done;
    }
    int64_t want = s->declared;
    if (want > 0 && s->n_in < want - want / 20 - s->rate / 10) {
        rc = log_error_rc(ENC_EINVAL, "'%s': truncated audio: %.2f s decoded of %.2f s declared",
                          s->in.path, (double)s->n_in / s->rate, (double)want / s->rate);
        goto done;
    }
    if (s->in.n_bad)
        log_warn("'%s': skipped %d corrupt audio packets", s->in.path, s->in.n_bad);
    /* Drain the resampler's tail, then fix the length to ceil(n * 16k / rate). */
    if ((rc = convert(s, NULL, 0)) != 0)
        goto done;
    int64_t target = out_len(n_in_used(s), s->rate);
    if (s->n_out < target) {
        float zeros[1024] = {0};
        while (s->n_out < target && rc == 0) {
            int64_t k = target - s->n_out < 1024 ? target - s->n_out : 1024;
            rc = emit(s, zeros, k);
        }
    }
done:
    av_frame_free(&fr);
    return rc;
}

int media_audio_stream(const char *path, media_audio_chunk_fn *fn, void *ctx, int *src_rate,
                       int *src_channels, int64_t *n_total)
{
    struct astream s = {.fn = fn, .ctx = ctx, .declared = -1};
    int rc = media_av_open(&s.in, path, AVMEDIA_TYPE_AUDIO, "audio");
    if (rc < 0)
        return rc;
    rc = run(&s);
    if (rc == 0) {
        if (src_rate)
            *src_rate = s.rate;
        if (src_channels)
            *src_channels = s.channels;
        if (n_total)
            *n_total = s.n_out;
    }
    swr_free(&s.swr);
    free(s.scratch);
    free(s.held);
    media_av_close(&s.in);
    return rc;
}

/* media_audio_decode()'s sink: append to one growing buffer. */
struct sink {
    struct audio_pcm *pcm;
    const char *path;
};

static int append(void *ctx, const float *x, int64_t n)
{
    struct sink *k = ctx;
    struct audio_pcm *a = k->pcm;
    if (a->n + n > MAX_SAMPLES)
        return log_error_rc(ENC_EINVAL, "'%s': audio longer than %d hours", k->path,
                            MAX_SECONDS / 3600);
    if (a->n + n > a->cap) {
        /* Grows in place for large blocks (glibc mremap), no second copy. */
        int64_t cap = a->cap + a->cap / 2;
        if (cap < a->n + n)
            cap = a->n + n + OUT_RATE;
        a->samples = xrealloc(a->samples, (size_t)cap * sizeof *a->samples);
        a->cap = cap;
    }
    memcpy(a->samples + a->n, x, (size_t)n * sizeof *x);
    a->n += n;
    return 0;
}

int media_audio_decode(const char *path, struct audio_pcm *out)
{
    struct sink k = {.pcm = out, .path = path};
    struct astream s = {.fn = append, .ctx = &k, .declared = -1};
    memset(out, 0, sizeof *out);
    int rc = media_av_open(&s.in, path, AVMEDIA_TYPE_AUDIO, "audio");
    if (rc < 0)
        return rc;
    /* Size the buffer from the stated duration (+1 s for estimates). */
    int64_t dur = s.in.fmt->duration;
    int64_t cap = OUT_RATE * 60;
    if (dur != AV_NOPTS_VALUE && dur > 0)
        cap = av_rescale(dur, OUT_RATE, AV_TIME_BASE) + OUT_RATE;
    if (cap > PREALLOC_MAX) /* a bogus header must not reserve gigabytes */
        cap = PREALLOC_MAX;
    out->samples = xmalloc((size_t)cap * sizeof *out->samples);
    out->cap = cap;
    rc = run(&s);
    if (rc == 0) {
        out->src_rate = s.rate;
        out->src_channels = s.channels;
        if (out->cap > out->n + 4 * OUT_RATE) {
            out->samples = xrealloc(out->samples, (size_t)out->n * sizeof *out->samples);
            out->cap = out->n;
        }
    } else {
        audio_pcm_release(out);
    }
    swr_free(&s.swr);
    free(s.scratch);
    free(s.held);
    media_av_close(&s.in);
    return rc;
}

void audio_pcm_release(struct audio_pcm *a)
{
    if (!a)
        return;
    free(a->samples);
    memset(a, 0, sizeof *a);
}

static void put_le(uint8_t *p, uint32_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

int media_audio_write_wav(const char *path, const float *samples, int64_t n, int rate)
{
    if (n < 0 || rate <= 0 || n > (int64_t)(UINT32_MAX - 44) / 2)
        return log_error_rc(ENC_EINVAL, "'%s': bad wav geometry (%lld samples, %d Hz)", path,
                            (long long)n, rate);
    FILE *f = fopen(path, "wb");
    if (!f)
        return log_error_rc(ENC_EIO, "cannot create '%s': %s", path, strerror(errno));
    uint8_t h[44];
    memcpy(h, "RIFF", 4);
    put_le(h + 4, (uint32_t)(36 + 2 * n), 4);
    memcpy(h + 8, "WAVEfmt ", 8);
    put_le(h + 16, 16, 4); /* fmt chunk size */
    put_le(h + 20, 1, 2);  /* PCM */
    put_le(h + 22, 1, 2);  /* mono */
    put_le(h + 24, (uint32_t)rate, 4);
    put_le(h + 28, (uint32_t)rate * 2, 4); /* byte rate */
    put_le(h + 32, 2, 2);                  /* block align */
    put_le(h + 34, 16, 2);                 /* bits */
    memcpy(h + 36, "data", 4);
    put_le(h + 40, (uint32_t)(2 * n), 4);
    int ok = fwrite(h, 1, sizeof h, f) == sizeof h;
    uint8_t buf[2 * 1024];
    for (int64_t i = 0; ok && i < n;) {
        int k = 0;
        for (; k < 1024 && i < n; k++, i++) {
            float v = samples[i];
            v = v > 1.0f ? 1.0f : (v < -1.0f ? -1.0f : (v != v ? 0.0f : v));
            long q = lrintf(v * 32767.0f);
            put_le(buf + 2 * k, (uint32_t)(uint16_t)(int16_t)q, 2);
        }
        ok = fwrite(buf, 2, (size_t)k, f) == (size_t)k;
    }
    if (fclose(f) != 0)
        ok = 0;
    if (!ok) {
        remove(path);
        return log_error_rc(ENC_EIO, "cannot write '%s'", path);
    }
    return 0;
}
