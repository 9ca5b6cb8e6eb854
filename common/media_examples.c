/*
 * media_examples.c - the demo inputs, drawn and synthesised from scratch.
 *
 * speech.wav: 5 s, 16 kHz, 16-bit mono. A source-filter voice: a glottal
 * pulse train (a smoothed sawtooth) whose pitch follows a sentence contour
 * (declination from ~140 Hz to ~105 Hz with a rise on stressed syllables)
 * is shaped by three parallel formant resonators whose centre frequencies
 * glide between vowels (/a/ /i/ /u/ /e/ /o/); a syllable envelope (about
 * four syllables a second, attack and decay, with short gaps filled by a
 * little fricative noise) makes it sound like babble, which is all the audio
 * encoder needs to produce moving mouth features.
 *
 * portrait.png: 512x512 RGB. A stylised head and shoulders in front of a
 * soft gradient: hair, face oval with side shading, ears, eyes (white, iris,
 * pupil, highlight), brows, nose shadow, lips, neck and a shirt. Shapes are
 * signed-distance ellipses with one-pixel antialiasing.
 *
 * Both use only deterministic arithmetic (an LCG for noise), so the files
 * are the same bytes on every run of the same build.
 */
#include "common/media.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/xmalloc.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

#define SPEECH_SECONDS 5
#define PORTRAIT_SIZE 512

/* ---- speech ------------------------------------------------------------ */

struct resonator {
    double y1, y2;
};

/* Two-pole resonator at f Hz, bandwidth bw Hz, unit gain at f (approx.). */
static double resonate(struct resonator *r, double x, double f, double bw, double rate)
{
    double rr = exp(-M_PI * bw / rate);
    double c = -rr * rr, b = 2.0 * rr * cos(2.0 * M_PI * f / rate);
    double a = 1.0 - b - c;
    double y = a * x + b * r->y1 + c * r->y2;
    r->y2 = r->y1;
    r->y1 = y;
    return y;
}

static uint32_t lcg_next(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s;
}

static double smoothstep(double e0, double e1, double x)
{
    double t = (x - e0) / (e1 - e0);
    t = t < 0 ? 0 : (t > 1 ? 1 : t);
    return t * t * (3 - 2 * t);
}

static float *make_speech(int64_t *n_out)
{
    static const double vowels[5][3] = {
        {730, 1090, 2440}, /* a */
        {270, 2290, 3010}, /* i */
        {300, 870, 2240},  /* u */
        {530, 1840, 2480}, /* e */
        {570, 840, 2410},  /* o */
    };
    static const int seq[] = {0, 1, 3, 4, 2, 0, 3, 1, 4, 0, 2, 3, 1, 0, 4, 3, 2, 1, 0, 3};
    const int n_seq = (int)(sizeof seq / sizeof seq[0]);
    const double rate = MEDIA_AUDIO_RATE, syl = 0.24; /* seconds per syllable */
    int64_t n = (int64_t)SPEECH_SECONDS * MEDIA_AUDIO_RATE;
    float *x = xmalloc((size_t)n * sizeof *x);
    struct resonator res[3] = {{0}};
    struct resonator lp = {0};
    uint32_t seed = 0x5eed1234u;
    double phase = 0, peak = 0;
    for (int64_t i = 0; i < n; i++) {
        double t = i / rate;
        double u = t / syl;
        int k = (int)u;
        double fr = u - k;
        /* Pauses between phrases: every 6th syllable is silent. */
        int silent = (k % 6) == 5 || t > SPEECH_SECONDS - 0.35 || t < 0.15;
        const double *v0 = vowels[seq[k % n_seq]], *v1 = vowels[seq[(k + 1) % n_seq]];
        double g = smoothstep(0.55, 1.0, fr); /* formant glide into the next vowel */
        double f[3];
        for (int j = 0; j < 3; j++)
            f[j] = v0[j] + (v1[j] - v0[j]) * g;
        /* Pitch: phrase declination, a rise on every third syllable. */
        double phrase = fmod(t, 1.44) / 1.44;
        double f0 = 140.0 - 35.0 * phrase + ((k % 3) == 0 ? 18.0 * sin(M_PI * fr) : 0.0) +
                    3.0 * sin(2 * M_PI * 5.5 * t);
        phase += f0 / rate;
        phase -= floor(phase);
        double src = 1.0 - 2.0 * phase; /* sawtooth, then smoothed */
        src = resonate(&lp, src, 800.0, 1200.0, rate);
        double noise = ((lcg_next(&seed) >> 8) / 8388608.0 - 1.0);
        /* Syllable envelope: attack 20%, hold, decay from 70%. */
        double env = silent ? 0.0 : smoothstep(0.0, 0.2, fr) * (1.0 - smoothstep(0.7, 1.0, fr));
        double voiced = 0;
        static const double bw[3] = {80, 100, 140}, gain[3] = {1.0, 0.6, 0.3};
        for (int j = 0; j < 3; j++)
            voiced += gain[j] * resonate(&res[j], src, f[j], bw[j], rate);
        /* Onset consonant: a short noise burst before each syllable. */
        double fric = (!silent && fr < 0.12) ? 0.15 * noise * (1.0 - fr / 0.12) : 0.0;
        double y = env * voiced + fric + 0.002 * noise;
        x[i] = (float)y;
        if (fabs(y) > peak)
            peak = fabs(y);
    }
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)(x[i] * (0.7 / peak));
    *n_out = n;
    return x;
}

/* ---- portrait ---------------------------------------------------------- */

/* Coverage of an ellipse (centre cx, cy, radii rx, ry) at pixel centre px, py:
 * 1 inside, 0 outside, linear over about one pixel at the edge. */
static double ellipse(double px, double py, double cx, double cy, double rx, double ry)
{
    double dx = (px - cx) / rx, dy = (py - cy) / ry;
    double d = sqrt(dx * dx + dy * dy);
    double edge = (d - 1.0) * (rx < ry ? rx : ry); /* ~ distance in pixels */
    return edge <= -0.5 ? 1.0 : (edge >= 0.5 ? 0.0 : 0.5 - edge);
}

static void blend(double *c, const double *col, double a)
{
    for (int i = 0; i < 3; i++)
        c[i] = c[i] * (1 - a) + col[i] * a;
}

static void make_portrait(struct image_rgb *img)
{
    const int s = PORTRAIT_SIZE;
    static const double skin[3] = {224, 172, 138}, hair[3] = {58, 40, 30}, shirt[3] = {46, 84, 128},
                        white[3] = {245, 243, 238}, iris[3] = {70, 110, 90},
                        pupil[3] = {15, 12, 10}, lips[3] = {178, 80, 84}, brow[3] = {60, 42, 32};
    img->w = img->h = s;
    img->px = xmalloc((size_t)s * s * 3);
    for (int y = 0; y < s; y++) {
        for (int x = 0; x < s; x++) {
            double px = x + 0.5, py = y + 0.5, c[3];
            /* Background: vertical gradient, slightly lighter behind the head. */
            double gy = py / s;
            double halo = exp(-((px - 256) * (px - 256) + (py - 220) * (py - 220)) / 40000.0);
            c[0] = 150 - 40 * gy + 20 * halo;
            c[1] = 170 - 40 * gy + 20 * halo;
            c[2] = 190 - 30 * gy + 15 * halo;
            /* Shirt and shoulders. */
            blend(c, shirt, ellipse(px, py, 256, 560, 230, 150));
            /* Neck with a shadow under the chin. */
            double neck = ellipse(px, py, 256, 390, 52, 80) * (py > 330 ? 1.0 : 0.0);
            double ncol[3] = {skin[0] * 0.82, skin[1] * 0.8, skin[2] * 0.8};
            blend(c, ncol, neck);
            /* Hair behind the head. */
            blend(c, hair, ellipse(px, py, 256, 215, 140, 160));
            /* Ears. */
            blend(c, skin, ellipse(px, py, 145, 245, 18, 34));
            blend(c, skin, ellipse(px, py, 367, 245, 18, 34));
            /* Face, shaded towards the sides and the chin. */
            double face = ellipse(px, py, 256, 250, 110, 140);
            double shade =
                1.0 - 0.18 * pow(fabs(px - 256) / 110.0, 2.0) - 0.08 * smoothstep(250, 390, py);
            double fcol[3] = {skin[0] * shade, skin[1] * shade, skin[2] * shade};
            blend(c, fcol, face);
            /* Fringe over the forehead. */
            blend(c, hair, ellipse(px, py, 256, 118, 122, 64) * (1.0 - smoothstep(140, 166, py)));
            /* Eyes. */
            for (int e = -1; e <= 1; e += 2) {
                double ex = 256 + e * 45, ey = 232;
                blend(c, brow, ellipse(px, py, ex, ey - 28, 30, 6));
                blend(c, white, ellipse(px, py, ex, ey, 24, 12));
                blend(c, iris, ellipse(px, py, ex, ey, 10, 10) * ellipse(px, py, ex, ey, 24, 12));
                blend(c, pupil, ellipse(px, py, ex, ey, 4.5, 4.5));
                blend(c, white, ellipse(px, py, ex + 3, ey - 3, 2, 2));
            }
            /* Nose: a soft shadow and nostrils. */
            double nshadow = 0.10 * ellipse(px, py, 262, 275, 10, 32);
            double ncol2[3] = {skin[0] * 0.7, skin[1] * 0.6, skin[2] * 0.6};
            blend(c, ncol2, nshadow);
            blend(c, ncol2, 0.5 * ellipse(px, py, 248, 303, 5, 3));
            blend(c, ncol2, 0.5 * ellipse(px, py, 264, 303, 5, 3));
            /* Lips: upper and lower. */
            blend(c, lips, ellipse(px, py, 256, 334, 34, 7));
            blend(c, lips, ellipse(px, py, 256, 344, 30, 9));
            double mouth[3] = {110, 40, 45};
            blend(c, mouth, ellipse(px, py, 256, 338, 30, 1.5));
            uint8_t *d = img->px + ((size_t)y * s + x) * 3;
            for (int i = 0; i < 3; i++) {
                double vv = c[i] < 0 ? 0 : (c[i] > 255 ? 255 : c[i]);
                d[i] = (uint8_t)(vv + 0.5);
            }
        }
    }
}

int media_make_examples(const char *dir)
{
    int64_t n = 0;
    struct image_rgb img = {0};
    char *wav = xasprintf("%s/speech.wav", dir), *png = xasprintf("%s/portrait.png", dir);
    float *x = make_speech(&n);
    int rc = media_audio_write_wav(wav, x, n, MEDIA_AUDIO_RATE);
    free(x);
    if (rc == 0) {
        make_portrait(&img);
        rc = media_image_write_png(png, &img);
        image_rgb_release(&img);
    }
    if (rc == 0)
        log_info("wrote '%s' and '%s'", wav, png);
    free(wav);
    free(png);
    return rc;
}
