/*
 * t_media_video.c - the pixel rule, H.264 chunk encoding (libx264) and the
 * stitch with AAC audio, checked by reading the results back with
 * libavformat/libavcodec and with the ffprobe CLI.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/media.h"
#include "tests/tap.h"
#include "tests/unit/media_test_util.h"

#define W 96
#define H 64
#define T 17 /* 4(L-1)+1 frames with L = 5 */
#define SPLIT 9

static float video[3 * T * H * W]; /* [3, T, H, W] in [-1, 1], as the VAE gives */
static uint8_t ref_rgb[T * H * W * 3];

static void make_video(void)
{
    for (int t = 0; t < T; t++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                double u = (double)x / W, v = (double)y / H, p = t * 0.15;
                double c[3] = {0.8 * sin(2 * M_PI * u + p) * cos(M_PI * v),
                               0.7 * cos(2 * M_PI * (u + v) - p),
                               0.6 * sin(M_PI * v + 0.5 * p) - 0.2};
                for (int ch = 0; ch < 3; ch++)
                    video[((size_t)ch * T + t) * H * W + y * W + x] = (float)c[ch];
            }
    for (int t = 0; t < T; t++)
        media_frame_to_rgb(video + (size_t)t * H * W, (int64_t)T * H * W, W, H,
                           ref_rgb + (size_t)t * H * W * 3);
}

static double psnr(const uint8_t *a, const uint8_t *b, size_t n)
{
    double se = 0;
    for (size_t i = 0; i < n; i++)
        se += (double)(a[i] - b[i]) * (a[i] - b[i]);
    if (se == 0)
        return 99;
    return 10 * log10(255.0 * 255.0 / (se / n));
}

static int encode_chunk(const char *path, int from, int to)
{
    struct video_chunk_params p;
    video_chunk_params_default(&p, W, H);
    struct video_chunk_writer *w = video_chunk_writer_new(path, &p);
    if (!w)
        return -100;
    for (int t = from; t < to; t++) {
        int rc = video_chunk_writer_add_f32(w, video + (size_t)t * H * W, (int64_t)T * H * W);
        if (rc) {
            video_chunk_writer_destroy(&w);
            return rc;
        }
    }
    return video_chunk_writer_close(&w);
}

static void test_pixel_rule(void)
{
    is_int(media_pixel_from_unit(-1.0f), 0, "-1 -> 0");
    is_int(media_pixel_from_unit(1.0f), 255, "1 -> 255");
    is_int(media_pixel_from_unit(0.0f), 127, "0 -> 127 (127.5 truncated)");
    is_int(media_pixel_from_unit(0.999f), 254, "0.999 -> 254 (254.87 truncated)");
    is_int(media_pixel_from_unit(3.0f), 255, "above range clamps to 255");
    is_int(media_pixel_from_unit(-7.0f), 0, "below range clamps to 0");
    is_int(media_pixel_from_unit(NAN), 0, "NaN -> 0");
    /* float32 arithmetic: x/2 + 0.5 then *255, no double rounding. */
    float x = 0.2f;
    is_int(media_pixel_from_unit(x), (uint8_t)((x / 2.0f + 0.5f) * 255.0f), "0.2 as float32");
}

static void test_chunks_and_stitch(void)
{
    const char *c0 = mt_path("c0.mp4"), *c1 = mt_path("c1.mp4"), *all = mt_path("all.mp4");
    const char *audio = mt_path("voice.wav"), *out = mt_path("out.mp4");
    is_int(encode_chunk(c0, 0, SPLIT), 0, "encode chunk 0 (frames 0..8)");
    is_int(encode_chunk(c1, SPLIT, T), 0, "encode chunk 1 (frames 9..16)");
    is_int(encode_chunk(all, 0, T), 0, "encode all frames as one chunk");

    struct media_info mi;
    is_int(media_probe(c1, &mi), 0, "probe chunk 1");
    ok(strcmp(mi.vcodec, "h264") == 0 && mi.n_frames == T - SPLIT && mi.n_keyframes == 1,
       "chunk 1: h264, %lld frames, %lld key frame", (long long)mi.n_frames,
       (long long)mi.n_keyframes);

    /* Same frames, same parameters -> same bytes (one x264 thread, bitexact). */
    const char *again = mt_path("c0b.mp4");
    encode_chunk(again, 0, SPLIT);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cmp -s %s %s", c0, again);
    ok(system(cmd) == 0, "re-encoding a chunk gives identical bytes");

    mt_ffmpeg("-f lavfi -i 'aevalsrc=0.4*sin(2*PI*330*t)|0.4*sin(2*PI*331*t):s=44100:d=2' "
              "-c:a pcm_s16le %s",
              audio);
    const char *chunks[2] = {c0, c1};
    is_int(media_mux_stitch(out, chunks, 2, audio, T, 25), 0, "stitch 2 chunks + audio");
    ok(access(mt_path("out.mp4.part"), F_OK) != 0, "no .part file left behind");
    is_int(media_probe(out, &mi), 0, "probe out.mp4");
    ok(mi.n_video_streams == 1 && strcmp(mi.vcodec, "h264") == 0 && mi.w == W && mi.h == H,
       "one H.264 stream %dx%d", mi.w, mi.h);
    ok(mi.fps_num == 25 * mi.fps_den && mi.fps_den > 0, "25 fps (%d/%d)", mi.fps_num, mi.fps_den);
    is_int(mi.n_frames, T, "exactly 4(L-1)+1 = 17 frames");
    is_int(mi.n_keyframes, 2, "a key frame at each chunk start");
    ok(mi.n_audio_streams == 1 && strcmp(mi.acodec, "aac") == 0 && mi.a_rate == 44100 &&
           mi.a_channels == 2,
       "one AAC stream, 44100 Hz stereo (%s %d x%d)", mi.acodec, mi.a_rate, mi.a_channels);
    is_near(mi.a_duration, T / 25.0, 1 / 25.0, "audio trimmed to the video (%.4f s)",
            mi.a_duration);

    /* ffprobe's view of the same file. */
    snprintf(cmd, sizeof cmd,
             "ffprobe -v error -count_packets -show_entries "
             "stream=codec_name,avg_frame_rate,nb_read_packets,duration -of csv=p=0 %s",
             out);
    FILE *pf = popen(cmd, "r");
    char line[256], vline[256] = "", aline[256] = "";
    while (pf && fgets(line, sizeof line, pf)) {
        line[strcspn(line, "\n")] = 0;
        if (strncmp(line, "h264", 4) == 0)
            snprintf(vline, sizeof vline, "%s", line);
        else if (strncmp(line, "aac", 3) == 0)
            snprintf(aline, sizeof aline, "%s", line);
    }
    if (pf)
        pclose(pf);
    ok(strncmp(vline, "h264,25/1,", 10) == 0 && strstr(vline, ",17") != NULL,
       "ffprobe: video '%s' (h264, 25/1, 17 packets)", vline);
    double adur = -1;
    const char *comma = strchr(aline, ',');
    if (comma && (comma = strchr(comma + 1, ',')))
        adur = strtod(comma + 1, NULL);
    is_near(adur, T / 25.0, 1 / 25.0, "ffprobe: audio '%s' lasts the video's 0.68 s", aline);

    /* Decode back: close to the input frames (lossy). */
    uint8_t *rgb = NULL, *rgb_all = NULL;
    int64_t n = 0, n_all = 0;
    int w = 0, h = 0;
    is_int(media_video_read_frames(out, &rgb, &n, &w, &h), 0, "decode out.mp4");
    is_int(media_video_read_frames(all, &rgb_all, &n_all, &w, &h), 0, "decode the 1-chunk file");
    double worst = 99;
    size_t fsz = (size_t)W * H * 3;
    for (int64_t t = 0; rgb && t < n && t < T; t++) {
        double p = psnr(rgb + t * fsz, ref_rgb + t * fsz, fsz);
        worst = p < worst ? p : worst;
    }
    ok(n == T && worst > 30, "every frame PSNR > 30 dB against the input (worst %.1f)", worst);
    if (rgb && rgb_all && n == T && n_all == T) {
        double pb = psnr(rgb + SPLIT * fsz, rgb_all + SPLIT * fsz, fsz);
        double pa = psnr(rgb_all + SPLIT * fsz, ref_rgb + SPLIT * fsz, fsz);
        double ps = psnr(rgb + SPLIT * fsz, ref_rgb + SPLIT * fsz, fsz);
        ok(pb > 35, "boundary frame: stitched vs single-chunk PSNR %.1f dB", pb);
        ok(fabs(pa - ps) < 3, "boundary frame quality: %.1f dB stitched, %.1f dB single", ps, pa);
        /* Not bit-identical: x264's lookahead (mb-tree) sees different
         * futures in the two encodes, so quantisers differ slightly. */
        double pw = 99;
        for (int t = 0; t < SPLIT; t++) {
            double q = psnr(rgb + t * fsz, rgb_all + t * fsz, fsz);
            pw = q < pw ? q : pw;
        }
        ok(pw > 35, "frames before the join agree with the 1-chunk encode (worst %.1f dB)", pw);
    } else {
        skip(3, "decode failed");
    }
    free(rgb);
    free(rgb_all);

    /* Trim to 13 frames; audio follows. */
    const char *trim = mt_path("trim.mp4");
    is_int(media_mux_stitch(trim, chunks, 2, audio, 13, 25), 0, "stitch trimmed to 13 frames");
    media_probe(trim, &mi);
    is_int(mi.n_frames, 13, "13 frames kept");
    is_near(mi.a_duration, 13 / 25.0, 1 / 25.0, "audio trimmed to 0.52 s (%.4f)", mi.a_duration);

    /* Short audio is padded with silence; mono stays mono; no audio at all. */
    const char *short_wav = mt_path("short.wav"), *padded = mt_path("padded.mp4");
    mt_ffmpeg("-f lavfi -i 'sine=f=200:sample_rate=16000:d=0.2' %s", short_wav);
    is_int(media_mux_stitch(padded, chunks, 2, short_wav, 0, 25), 0, "stitch with short audio");
    media_probe(padded, &mi);
    ok(mi.a_rate == 16000 && mi.a_channels == 1, "16 kHz mono audio kept as is (%d x%d)", mi.a_rate,
       mi.a_channels);
    is_near(mi.a_duration, T / 25.0, 1 / 25.0, "short audio padded to the video (%.4f)",
            mi.a_duration);
    const char *silent = mt_path("silent.mp4");
    is_int(media_mux_stitch(silent, chunks, 2, NULL, 0, 25), 0, "stitch without audio");
    media_probe(silent, &mi);
    ok(mi.n_audio_streams == 0 && mi.n_frames == T, "video only, %lld frames",
       (long long)mi.n_frames);
}

static void test_errors(void)
{
    struct video_chunk_params p;
    video_chunk_params_default(&p, 95, 64);
    ok(video_chunk_writer_new(mt_path("odd.mp4"), &p) == NULL, "odd width refused");
    video_chunk_params_default(&p, W, H);
    struct video_chunk_writer *w = video_chunk_writer_new(mt_path("none.mp4"), &p);
    is_int(video_chunk_writer_close(&w), ENC_EINVAL, "a chunk with no frames -> ENC_EINVAL");
    ok(w == NULL && access(mt_path("none.mp4"), F_OK) != 0, "and its file is removed");
    ok(video_chunk_writer_new(mt_path("nodir/x.mp4"), &p) == NULL, "unwritable path refused");

    /* A chunk of another size cannot be joined. */
    const char *big = mt_path("big.mp4"), *c0 = mt_path("c0.mp4"), *out = mt_path("bad.mp4");
    video_chunk_params_default(&p, 2 * W, H);
    w = video_chunk_writer_new(big, &p);
    uint8_t *frame = calloc((size_t)2 * W * H * 3, 1);
    video_chunk_writer_add_rgb(w, frame);
    is_int(video_chunk_writer_close(&w), 0, "encode a chunk of another size");
    free(frame);
    const char *mixed[2] = {c0, big};
    is_int(media_mux_stitch(out, mixed, 2, NULL, 0, 25), ENC_EINVAL, "mixed sizes -> ENC_EINVAL");
    ok(mt_error_names(big), "error names the chunk: %s", mt_last_error);
    ok(access(out, F_OK) != 0, "no output on failure");

    const char *one[1] = {c0};
    is_int(media_mux_stitch(out, one, 1, NULL, 100, 25), ENC_EINVAL,
           "more frames than the chunks hold -> ENC_EINVAL");
    const char *missing[1] = {mt_path("gone.mp4")};
    is_int(media_mux_stitch(out, missing, 1, NULL, 0, 25), ENC_EIO, "missing chunk -> ENC_EIO");
    ok(mt_error_names(missing[0]), "error names the chunk: %s", mt_last_error);
    const char *notvid[1] = {mt_path("voice.wav")};
    is_int(media_mux_stitch(out, notvid, 1, NULL, 0, 25), ENC_EINVAL,
           "audio file as chunk -> ENC_EINVAL");
    const char *txt = mt_path("junk.wav");
    mt_write_text(txt, "not audio\n");
    is_int(media_mux_stitch(out, one, 1, txt, 0, 25), ENC_EINVAL, "bad audio -> ENC_EINVAL");
    ok(mt_error_names(txt), "error names the audio: %s", mt_last_error);
}

int main(void)
{
    mt_setup("video");
    make_video();
    test_pixel_rule();
    test_chunks_and_stitch();
    test_errors();
    mt_cleanup();
    return done_testing();
}
