/*
 * bench_render.c - `encore bench render`: seconds per render stage and the
 * share of wall time spent outside the model (loading and planning, video
 * encoding, stitching) for a clip of speech-like audio, rendered in this
 * process with the tiny model (or --models DIR).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "commands.h"
#include "common/err.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/media.h"
#include "common/parse.h"
#include "common/xmalloc.h"
#include "worker/model_set.h"
#include "worker/models/clip.h"
#include "worker/models/dit.h"
#include "worker/models/umt5.h"
#include "worker/models/wav2vec2.h"
#include "worker/render_local.h"

static const char usage[] =
    "usage: encore bench render [--seconds N] [--steps N] [--size WxH] [--models DIR | --mid]\n"
    "                           [--threads N] [--json]\n"
    "  Renders N seconds (default 60) of generated speech-like audio with the generated\n"
    "  portrait at WxH (default 64x64) in STEPS steps (default 10) and prints the\n"
    "  seconds of each stage and the share of wall time outside the model.\n"
    "  --mid: the tiny encoders and VAE with a mid-size DiT (dim 512, 8 heads, 8 layers),\n"
    "  the configuration of `encore bench engine`.\n";

/* write_mid_model(): the tiny model with its DiT replaced by a mid-size one. */
static int write_mid_model(const char *dir)
{
    struct clip_config cc;
    struct wav2vec2_config wc;
    int rc = model_set_write_tiny(dir, 1);
    if (rc < 0)
        return rc;
    clip_config_tiny(&cc);
    wav2vec2_config_tiny(&wc);
    struct dit_tiny_dims dims = {.dim = 512, .num_heads = 8, .num_layers = 8, .ffn_dim = 2048,
                                 .text_dim = UMT5_TINY_DIM, .clip_dim = cc.dim,
                                 .audio_dim = wc.hidden, .vocal_ffn_dim = 1024};
    char *path = xasprintf("%s/Wan2.1-Fun-V1.1-1.3B-InP/diffusion_pytorch_model.safetensors", dir);
    rc = dit_write_tiny(path, 3, &dims);
    free(path);
    return rc;
}

/* make_inputs(): the examples, with the speech looped to `seconds`. */
static int make_inputs(const char *dir, int seconds, char **audio, char **image)
{
    struct audio_pcm pcm = {0};
    int rc = media_make_examples(dir);
    char *speech = xasprintf("%s/speech.wav", dir);
    *image = xasprintf("%s/portrait.png", dir);
    *audio = xasprintf("%s/bench-%ds.wav", dir, seconds);
    if (rc == 0)
        rc = media_audio_decode(speech, &pcm);
    if (rc == 0 && pcm.n > 0) {
        int64_t n = (int64_t)seconds * 16000;
        float *x = xmalloc((size_t)n * sizeof(float));
        for (int64_t i = 0; i < n; i++)
            x[i] = pcm.samples[i % pcm.n];
        rc = media_audio_write_wav(*audio, x, n, 16000);
        free(x);
    }
    audio_pcm_release(&pcm);
    unlink(speech);
    free(speech);
    return rc;
}

int bench_render(int argc, char **argv)
{
    struct render_params rp;
    int seconds = 60, json = 0, mid = 0;

    render_params_default(&rp);
    rp.width = rp.height = 64;
    rp.steps = 10;
    rp.quiet = 1;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (cli_is_help(argv[i])) {
            fputs(usage, stdout);
            return EXIT_STATUS_OK;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--seconds") == 0 && v) {
            if (parse_int(argv[++i], 1, 36000, &seconds) < 0)
                return cli_usage_error(usage, "bench render: bad seconds '%s'", v);
        } else if (strcmp(argv[i], "--steps") == 0 && v) {
            if (parse_int(argv[++i], 1, 1000, &rp.steps) < 0)
                return cli_usage_error(usage, "bench render: bad steps '%s'", v);
        } else if (strcmp(argv[i], "--threads") == 0 && v) {
            if (parse_int(argv[++i], 1, 1024, &rp.threads) < 0)
                return cli_usage_error(usage, "bench render: bad thread count '%s'", v);
        } else if (strcmp(argv[i], "--size") == 0 && v) {
            if (sscanf(argv[++i], "%dx%d", &rp.width, &rp.height) != 2)
                return cli_usage_error(usage, "bench render: bad size '%s' (WxH)", v);
        } else if (strcmp(argv[i], "--mid") == 0) {
            mid = 1;
        } else if (strcmp(argv[i], "--models") == 0 && v) {
            rp.models = argv[++i];
        } else {
            return cli_usage_error(usage, "bench render: unknown option '%s'", argv[i]);
        }
    }

    char dir[] = "/tmp/encore-bench-render-XXXXXX";
    char *audio = NULL, *image = NULL, *out = NULL;
    struct render_report rep;
    int rc = EXIT_STATUS_FAILURE;
    if (!mkdtemp(dir)) {
        fprintf(stderr, "encore bench render: cannot make a temporary directory\n");
        return EXIT_STATUS_FAILURE;
    }
    out = xasprintf("%s/out.mp4", dir);
    char *mid_dir = mid ? xasprintf("%s/mid-model", dir) : NULL;
    if (mid) {
        if (write_mid_model(mid_dir) < 0) {
            fprintf(stderr, "encore bench render: cannot write the mid-size model\n");
            goto done;
        }
        rp.models = mid_dir;
    }
    if (make_inputs(dir, seconds, &audio, &image) < 0 ||
        render_local(&rp, audio, image, out, &rep) < 0) {
        fprintf(stderr, "encore bench render: the render failed (see the log above)\n");
        goto done;
    }
    double total = 0;
    for (int s = 0; s < RENDER_STAGE_COUNT; s++)
        total += rep.stage_s[s];
    double outside = rep.stage_s[RENDER_STAGE_LOAD] + rep.stage_s[RENDER_STAGE_STITCH] +
                     rep.encode_s;
    if (json) {
        printf("{\"seconds_audio\": %d, \"size\": \"%dx%d\", \"steps\": %d, \"frames\": %lld, "
               "\"latent_frames\": %lld, \"windows\": %lld",
               seconds, rp.width, rp.height, rp.steps, (long long)rep.frames,
               (long long)rep.latent_frames, (long long)rep.windows);
        for (int s = 0; s < RENDER_STAGE_COUNT; s++)
            printf(", \"%s_s\": %.3f", render_stage_name(s), rep.stage_s[s]);
        printf(", \"encode_s\": %.3f, \"total_s\": %.3f, \"outside_model_s\": %.3f, "
               "\"outside_model_share\": %.4f}\n",
               rep.encode_s, total, outside, outside / total);
    } else {
        printf("render bench: %d s of audio, %dx%d, %d steps: %lld frames, %lld latent frames, "
               "%lld windows\n", seconds, rp.width, rp.height, rp.steps, (long long)rep.frames,
               (long long)rep.latent_frames, (long long)rep.windows);
        for (int s = 0; s < RENDER_STAGE_COUNT; s++)
            printf("  %-8s %9.3f s\n", render_stage_name(s), rep.stage_s[s]);
        printf("  (video encoding inside decode: %.3f s)\n", rep.encode_s);
        printf("  total    %9.3f s; outside the model %.3f s = %.1f%% (target < 10%% at the "
               "mid-size model)\n", total, outside, 100 * outside / total);
    }
    rc = EXIT_STATUS_OK;
done:
    if (audio)
        unlink(audio);
    if (image)
        unlink(image);
    unlink(out);
    fs_remove_tree(dir);
    free(mid_dir);
    free(audio);
    free(image);
    free(out);
    return rc;
}
