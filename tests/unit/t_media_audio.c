/*
 * t_media_audio.c - audio decoding to 16 kHz mono float on real files made
 * by the ffmpeg CLI: WAV, FLAC, MP3, M4A/AAC, stereo 44.1 kHz; lengths,
 * frequency, channel averaging, the resampler's pass and stop band,
 * streaming, and clear errors for bad inputs.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/media.h"
#include "tests/tap.h"
#include "tests/unit/media_test_util.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* Amplitude of the f Hz component of x[a..b) (one-bin DFT, Hann window). */
static double tone_amp(const float *x, int64_t a, int64_t b, double f)
{
    double re = 0, im = 0, wsum = 0;
    for (int64_t i = a; i < b; i++) {
        double w = 0.5 - 0.5 * cos(2 * M_PI * (i - a) / (b - a));
        double ph = 2 * M_PI * f * i / MEDIA_AUDIO_RATE;
        re += w * x[i] * cos(ph);
        im += w * x[i] * sin(ph);
        wsum += w;
    }
    return 2 * sqrt(re * re + im * im) / wsum;
}

/* Frequency from interpolated rising zero crossings in x[a..b). */
static double zc_freq(const float *x, int64_t a, int64_t b)
{
    double first = -1, last = -1;
    int n = 0;
    for (int64_t i = a + 1; i < b; i++)
        if (x[i - 1] < 0 && x[i] >= 0) {
            double t = (i - 1) + x[i - 1] / (x[i - 1] - x[i]);
            if (first < 0)
                first = t;
            last = t;
            n++;
        }
    return n > 1 ? (n - 1) * MEDIA_AUDIO_RATE / (last - first) : 0;
}

static double peak(const float *x, int64_t a, int64_t b)
{
    double p = 0;
    for (int64_t i = a; i < b; i++)
        p = fabs(x[i]) > p ? fabs(x[i]) : p;
    return p;
}

struct collect {
    float *x;
    int64_t n, cap, max_block;
    int calls;
};

static int collect_fn(void *ctx, const float *s, int64_t n)
{
    struct collect *c = ctx;
    if (c->n + n > c->cap) {
        c->cap = (c->n + n) * 2;
        c->x = realloc(c->x, (size_t)c->cap * sizeof *c->x);
    }
    memcpy(c->x + c->n, s, (size_t)n * sizeof *s);
    c->n += n;
    c->max_block = n > c->max_block ? n : c->max_block;
    c->calls++;
    return 0;
}

static void test_formats(void)
{
    /* 2 s of 440 Hz at 44.1 kHz stereo, amplitude 0.5, in four formats. */
    static const struct {
        const char *name, *args;
        int64_t tol; /* samples of length tolerance at 16 kHz */
        double atol; /* amplitude tolerance (lossy codecs) */
    } fmts[] = {
        {"s.wav", "", 0, 0.01},
        {"s.flac", "", 0, 0.01},
        {"s.mp3", "-c:a libmp3lame -b:a 192k", 16, 0.03},
        {"s.m4a", "-c:a aac -b:a 160k", 16, 0.03},
    };
    const char *src = mt_path("src.wav");
    mt_ffmpeg("-f lavfi -i 'aevalsrc=0.5*sin(2*PI*440*t)|0.5*sin(2*PI*440*t):s=44100:d=2' "
              "-c:a pcm_s16le %s",
              src);
    for (size_t i = 0; i < sizeof fmts / sizeof fmts[0]; i++) {
        const char *path = mt_path(fmts[i].name);
        if (i == 0)
            path = src;
        else
            mt_ffmpeg("-i %s %s %s", src, fmts[i].args, path);
        struct audio_pcm a;
        int rc = media_audio_decode(path, &a);
        is_int(rc, 0, "%s: decodes", fmts[i].name);
        if (rc) {
            skip(4, "no samples");
            continue;
        }
        ok(llabs(a.n - 32000) <= fmts[i].tol, "%s: 2 s -> %lld samples (want 32000 +- %lld)",
           fmts[i].name, (long long)a.n, (long long)fmts[i].tol);
        ok(a.src_rate == 44100 && a.src_channels == 2, "%s: source 44100 Hz x2 (%d x%d)",
           fmts[i].name, a.src_rate, a.src_channels);
        double f = zc_freq(a.samples, 4000, 28000);
        is_near(f, 440.0, 0.2, "%s: the sine keeps its frequency", fmts[i].name);
        is_near(tone_amp(a.samples, 4000, 28000, 440), 0.5, fmts[i].atol, "%s: and its amplitude",
                fmts[i].name);
        audio_pcm_release(&a);
    }
}

static void test_exact_and_lengths(void)
{
    /* 16 kHz mono s16 WAV: no resampling, samples are s16 / 32768 exactly. */
    const char *w16 = mt_path("m16.wav");
    mt_ffmpeg("-f lavfi -i 'aevalsrc=0.3*sin(2*PI*1000*t)+0.2*sin(2*PI*123*t):s=16000:d=1.5' "
              "-c:a pcm_s16le %s",
              w16);
    struct audio_pcm a;
    is_int(media_audio_decode(w16, &a), 0, "16 kHz mono WAV decodes");
    FILE *f = fopen(w16, "rb");
    /* Find the data chunk (the CLI writes a LIST chunk before it). */
    char tag[5] = {0};
    int exact = a.n == 24000 && f && fseek(f, 12, SEEK_SET) == 0;
    while (exact && fread(tag, 1, 4, f) == 4) {
        uint8_t sz[4];
        exact = fread(sz, 1, 4, f) == 4;
        if (strcmp(tag, "data") == 0)
            break;
        long skipn = sz[0] | sz[1] << 8 | sz[2] << 16 | (long)sz[3] << 24;
        exact = exact && fseek(f, skipn + (skipn & 1), SEEK_CUR) == 0;
    }
    for (int64_t i = 0; exact && i < a.n; i++) {
        int lo = fgetc(f), hi = fgetc(f);
        int16_t v = (int16_t)(lo | hi << 8);
        exact = a.samples[i] == v / 32768.0f;
    }
    if (f)
        fclose(f);
    ok(exact, "16 kHz mono WAV: n = 24000 and samples = s16 / 32768 exactly");
    ok(a.cap <= a.n + MEDIA_AUDIO_RATE, "buffer sized from the duration (cap %lld, n %lld)",
       (long long)a.cap, (long long)a.n);
    audio_pcm_release(&a);

    /* An odd length at 44.1 kHz: ceil(54441 * 16000 / 44100) = 19752. */
    const char *odd = mt_path("odd.wav");
    mt_ffmpeg("-f lavfi -i 'sine=f=300:sample_rate=44100:d=2' -af atrim=end_sample=54441 %s", odd);
    is_int(media_audio_decode(odd, &a), 0, "odd-length WAV decodes");
    is_int(a.n, 19752, "length is ceil(n_in * 16000 / 44100), as librosa");
    audio_pcm_release(&a);
    /* 22.05 kHz and 48 kHz. */
    const char *w22 = mt_path("w22.wav"), *w48 = mt_path("w48.flac");
    mt_ffmpeg("-f lavfi -i 'sine=f=300:sample_rate=22050:d=1' %s", w22);
    mt_ffmpeg("-f lavfi -i 'sine=f=300:sample_rate=48000:d=1' %s", w48);
    is_int(media_audio_decode(w22, &a), 0, "22.05 kHz decodes");
    is_int(a.n, 16000, "22.05 kHz, 1 s -> 16000");
    audio_pcm_release(&a);
    is_int(media_audio_decode(w48, &a), 0, "48 kHz FLAC decodes");
    is_int(a.n, 16000, "48 kHz, 1 s -> 16000");
    audio_pcm_release(&a);
}

static void test_stereo_and_band(void)
{
    struct audio_pcm a;
    /* L = x, R = -x: the average is silence. */
    const char *anti = mt_path("anti.wav");
    mt_ffmpeg("-f lavfi -i 'aevalsrc=0.5*sin(2*PI*440*t)|-0.5*sin(2*PI*440*t):s=44100:d=1' "
              "-c:a pcm_f32le %s",
              anti);
    is_int(media_audio_decode(anti, &a), 0, "anti-phase stereo decodes");
    ok(a.n > 0 && peak(a.samples, 0, a.n) < 1e-6, "L = -R averages to silence (peak %.2g)",
       a.n > 0 ? peak(a.samples, 0, a.n) : -1.0);
    audio_pcm_release(&a);
    /* L = 0.6 sin 300, R = 0.2 sin 700: mono has 0.3 at 300 Hz, 0.1 at 700 Hz. */
    const char *two = mt_path("two.wav");
    mt_ffmpeg("-f lavfi -i 'aevalsrc=0.6*sin(2*PI*300*t)|0.2*sin(2*PI*700*t):s=44100:d=1' "
              "-c:a pcm_f32le %s",
              two);
    is_int(media_audio_decode(two, &a), 0, "two-tone stereo decodes");
    is_near(tone_amp(a.samples, 2000, 14000, 300), 0.3, 0.002, "left channel averaged in (0.3)");
    is_near(tone_amp(a.samples, 2000, 14000, 700), 0.1, 0.002, "right channel averaged in (0.1)");
    audio_pcm_release(&a);
    /* Pass band and stop band of the 44.1k -> 16k resampler. */
    const char *band = mt_path("band.wav");
    mt_ffmpeg("-f lavfi -i 'aevalsrc=0.4*sin(2*PI*6000*t)+0.4*sin(2*PI*10000*t):s=44100:d=1' "
              "-c:a pcm_f32le %s",
              band);
    is_int(media_audio_decode(band, &a), 0, "two-tone band test decodes");
    double pass = tone_amp(a.samples, 2000, 14000, 6000);
    /* 10 kHz folds to 6 kHz at 16 kHz: any alias lands on 6000 too, so test
     * a lone 10 kHz tone for the stop band. */
    is_near(pass, 0.4, 0.004, "6 kHz passes (amplitude %.4f)", pass);
    audio_pcm_release(&a);
    const char *stop = mt_path("stop.wav");
    mt_ffmpeg("-f lavfi -i 'aevalsrc=0.9*sin(2*PI*10000*t):s=44100:d=1' -c:a pcm_f32le %s", stop);
    is_int(media_audio_decode(stop, &a), 0, "10 kHz tone decodes");
    double p = peak(a.samples, 1000, a.n - 1000);
    ok(p < 0.9e-4, "10 kHz (above 8 kHz Nyquist) is stopped: peak %.2e (< -80 dB)", p);
    audio_pcm_release(&a);
}

static void test_stream(void)
{
    const char *src = mt_path("long.flac");
    mt_ffmpeg("-f lavfi -i 'aevalsrc=0.3*sin(2*PI*220*t)|0.3*sin(2*PI*330*t):s=44100:d=20' %s",
              src);
    struct audio_pcm a;
    struct collect c = {0};
    int rate = 0, ch = 0;
    int64_t total = 0;
    is_int(media_audio_decode(src, &a), 0, "20 s FLAC decodes");
    is_int(media_audio_stream(src, collect_fn, &c, &rate, &ch, &total), 0, "and streams");
    ok(c.n == a.n && total == a.n && memcmp(c.x, a.samples, (size_t)a.n * sizeof(float)) == 0,
       "streamed blocks concatenate to the decoded buffer (%lld samples)", (long long)c.n);
    ok(c.calls > 10 && c.max_block <= 65536, "samples arrive in %d blocks of <= %lld", c.calls,
       (long long)c.max_block);
    ok(rate == 44100 && ch == 2, "stream reports the source format");
    ok(a.cap <= a.n + MEDIA_AUDIO_RATE, "one buffer, sized from the duration (cap - n = %lld)",
       (long long)(a.cap - a.n));
    free(c.x);
    audio_pcm_release(&a);
}

static int abort_fn(void *ctx, const float *s, int64_t n)
{
    (void)ctx;
    (void)s;
    (void)n;
    return 7;
}

static void test_errors(void)
{
    struct audio_pcm a;
    const char *missing = mt_path("missing.wav");
    is_int(media_audio_decode(missing, &a), ENC_EIO, "missing file -> ENC_EIO");
    ok(mt_error_names(missing), "error names the file: %s", mt_last_error);
    ok(a.samples == NULL && a.n == 0, "nothing returned on failure");

    const char *txt = mt_path("text.wav");
    mt_write_text(txt, "hello, this is a text file and not audio at all\n");
    is_int(media_audio_decode(txt, &a), ENC_EINVAL, "text named .wav -> ENC_EINVAL");
    ok(mt_error_names(txt), "error names the file: %s", mt_last_error);

    const char *empty = mt_path("empty.wav");
    mt_ffmpeg("-f lavfi -i 'sine=d=1' -af atrim=end_sample=0 -c:a pcm_s16le %s", empty);
    is_int(media_audio_decode(empty, &a), ENC_EINVAL, "WAV with no samples -> ENC_EINVAL");
    ok(mt_error_names(empty), "error names the file: %s", mt_last_error);

    const char *zero = mt_path("zero.mp3");
    mt_write_text(zero, "");
    is_int(media_audio_decode(zero, &a), ENC_EINVAL, "zero-byte file -> ENC_EINVAL");
    ok(mt_error_names(zero), "error names the file: %s", mt_last_error);

    const char *cut = mt_path("cut.wav");
    mt_ffmpeg("-f lavfi -i 'sine=d=4:sample_rate=16000' -c:a pcm_s16le %s", cut);
    mt_truncate(cut, 100 + 16000 * 2); /* 1 s of the 4 s the header declares */
    is_int(media_audio_decode(cut, &a), ENC_EINVAL, "truncated WAV -> ENC_EINVAL");
    ok(mt_error_names(cut), "error names the file: %s", mt_last_error);

    const char *cutm4a = mt_path("cut.m4a");
    mt_ffmpeg("-f lavfi -i 'sine=d=4' -c:a aac %s", cutm4a);
    mt_truncate(cutm4a, 3000);
    is_int(media_audio_decode(cutm4a, &a), ENC_EINVAL, "truncated M4A -> ENC_EINVAL");
    ok(mt_error_names(cutm4a), "error names the file: %s", mt_last_error);

    const char *cutflac = mt_path("cut.flac");
    mt_ffmpeg("-f lavfi -i 'sine=d=4' %s", cutflac);
    mt_truncate(cutflac, 8000);
    is_int(media_audio_decode(cutflac, &a), ENC_EINVAL, "truncated FLAC -> ENC_EINVAL");

    const char *png = mt_path("pic.png");
    mt_ffmpeg("-f lavfi -i color=c=red:s=16x16 -frames:v 1 %s", png);
    is_int(media_audio_decode(png, &a), ENC_EINVAL, "an image has no audio -> ENC_EINVAL");
    ok(mt_error_names(png), "error names the file: %s", mt_last_error);

    const char *ok_wav = mt_path("m16.wav");
    is_int(media_audio_stream(ok_wav, abort_fn, NULL, NULL, NULL, NULL), 7,
           "a callback's nonzero return stops the stream and is returned");
}

int main(void)
{
    mt_setup("audio");
    test_formats();
    test_exact_and_lengths();
    test_stereo_and_band();
    test_stream();
    test_errors();
    mt_cleanup();
    return done_testing();
}
