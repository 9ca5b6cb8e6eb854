/*
 * t_media_examples.c - media_make_examples() writes the demo inputs: they
 * decode through the media module, fit the size budget, are deterministic,
 * and equal the copies committed in examples/.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/media.h"
#include "tests/tap.h"
#include "tests/unit/media_test_util.h"

static long file_size(const char *p)
{
    FILE *f = fopen(p, "rb");
    long n = -1;
    if (f && fseek(f, 0, SEEK_END) == 0)
        n = ftell(f);
    if (f)
        fclose(f);
    return n;
}

static int same_file(const char *a, const char *b)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", a, b);
    return system(cmd) == 0;
}

int main(void)
{
    mt_setup("examples");
    is_int(media_make_examples(mt_dir), 0, "media_make_examples writes the files");
    const char *wav = mt_path("speech.wav"), *png = mt_path("portrait.png");
    long ws = file_size(wav), ps = file_size(png);
    ok(ws > 0 && ws <= 200 * 1024, "speech.wav is %ld bytes (<= 200 KB)", ws);
    ok(ps > 0 && ps <= 100 * 1024, "portrait.png is %ld bytes (<= 100 KB)", ps);

    struct audio_pcm a;
    is_int(media_audio_decode(wav, &a), 0, "speech.wav decodes");
    is_int(a.n, 5 * MEDIA_AUDIO_RATE, "5 s at 16 kHz");
    double e = 0, peak = 0;
    int active = 0;
    for (int64_t i = 0; i < a.n; i++) {
        e += (double)a.samples[i] * a.samples[i];
        peak = fabs(a.samples[i]) > peak ? fabs(a.samples[i]) : peak;
    }
    /* Syllables: count 50 ms windows with energy, expect speech and pauses. */
    for (int64_t w0 = 0; w0 + 800 <= a.n; w0 += 800) {
        double we = 0;
        for (int64_t i = w0; i < w0 + 800; i++)
            we += (double)a.samples[i] * a.samples[i];
        active += we / 800 > 1e-3;
    }
    ok(peak > 0.5 && peak < 1.0 && e / a.n > 1e-3, "loud, unclipped (peak %.2f)", peak);
    ok(active > 40 && active < 95, "%d of 100 windows voiced: syllables and pauses", active);
    audio_pcm_release(&a);

    struct image_rgb img;
    is_int(media_image_decode(png, &img), 0, "portrait.png decodes");
    ok(img.w == 512 && img.h == 512, "512x512");
    image_rgb_release(&img);

    char other[512];
    snprintf(other, sizeof other, "%s/again", mt_dir);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", other);
    if (system(cmd) != 0)
        diag("mkdir failed");
    media_make_examples(other);
    ok(same_file(wav, mt_path("again/speech.wav")) && same_file(png, mt_path("again/portrait.png")),
       "deterministic bytes");
    ok(same_file(wav, "examples/speech.wav") && same_file(png, "examples/portrait.png"),
       "examples/ holds exactly what media_make_examples writes");
    mt_cleanup();
    return done_testing();
}
