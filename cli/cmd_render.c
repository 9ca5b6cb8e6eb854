/*
 * cmd_render.c - `encore render AUDIO IMAGE -o OUT.mp4 [render options]`.
 *
 * Renders in this process with the engine: load, prepare, denoise, decode,
 * stitch, each with progress and ETA, and ends with the path, duration and
 * frame count. The tiny model is used unless --models DIR names a real one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common/blend.h"
#include "common/err.h"
#include "common/log.h"
#include "common/parse.h"
#include "worker/render_local.h"

static const char usage[] =
    "usage: encore render AUDIO IMAGE -o OUT.mp4 [render options] [--local]\n"
    "\n"
    "Renders a lip-synced video of IMAGE speaking or singing AUDIO (any format FFmpeg\n"
    "reads) into OUT.mp4 with the audio muxed in.\n"
    "\n"
    "render options:\n"
    "  --models DIR        StableAvatar checkpoints (published layout); default: --tiny\n"
    "  --tiny              encore's tiny test model (not a face model; seconds per clip)\n"
    "  --prompt TEXT       what the video shows (default: \"The protagonist is talking.\")\n"
    "  --negative TEXT     negative prompt (default: the original's)\n"
    "  --size WxH          output size, multiples of 16 (default 512x512; 64x64 with --tiny)\n"
    "  --clip-frames N     video frames per window, 4k+1 (default 81)\n"
    "  --overlap N         latent frames shared by consecutive windows (default 5)\n"
    "  --blend log|uniform overlap weights (default log)\n"
    "  --steps N           denoising steps (default 50)\n"
    "  --seed N            noise seed (default 42)\n"
    "  --text-scale X      text guidance (default 3.0)\n"
    "  --audio-scale X     audio guidance (default 5.0)\n"
    "  --fps 25            frame rate (the model's: only 25)\n"
    "  --save-latents FILE also write the final latents (safetensors, bf16)\n"
    "  --threads N         cpu threads (default: one per core)\n"
    "  --quiet             no progress lines\n"
    "  --local             single process (the default in this build)\n";

int cmd_render(const struct global_opts *g, int argc, char **argv)
{
    struct render_params rp;
    const char *audio = NULL, *image = NULL, *out = NULL, *size = NULL;
    double d;
    int64_t n;

    (void)g;
    render_params_default(&rp);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (cli_is_help(a)) {
            fputs(usage, stdout);
            return EXIT_STATUS_OK;
        } else if (a[0] != '-' || strcmp(a, "-") == 0) {
            if (!audio)
                audio = a;
            else if (!image)
                image = a;
            else
                return cli_usage_error(usage, "render: unexpected argument '%s'", a);
        } else if (strcmp(a, "--local") == 0) {
        } else if (strcmp(a, "--tiny") == 0) {
            rp.models = NULL;
        } else if (strcmp(a, "--quiet") == 0) {
            rp.quiet = 1;
        } else if (!v) {
            return cli_usage_error(usage, "render: unknown option or missing value '%s'", a);
        } else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
            out = argv[++i];
        } else if (strcmp(a, "--models") == 0) {
            rp.models = argv[++i];
        } else if (strcmp(a, "--prompt") == 0) {
            rp.prompt = argv[++i];
        } else if (strcmp(a, "--negative") == 0) {
            rp.negative = argv[++i];
        } else if (strcmp(a, "--size") == 0) {
            size = argv[++i];
            if (sscanf(size, "%dx%d", &rp.width, &rp.height) != 2)
                return cli_usage_error(usage, "render: bad size '%s' (WxH)", size);
        } else if (strcmp(a, "--clip-frames") == 0) {
            if (parse_int(argv[++i], 5, 1 << 20, &rp.clip_frames) < 0)
                return cli_usage_error(usage, "render: bad clip frames '%s'", v);
        } else if (strcmp(a, "--overlap") == 0) {
            if (parse_int(argv[++i], 0, 1 << 20, &rp.overlap) < 0)
                return cli_usage_error(usage, "render: bad overlap '%s'", v);
        } else if (strcmp(a, "--blend") == 0) {
            int s = blend_parse_scheme(argv[++i]);
            if (s < 0)
                return cli_usage_error(usage, "render: unknown blend scheme '%s' (log or "
                                       "uniform)", v);
            rp.blend = (enum blend_scheme)s;
        } else if (strcmp(a, "--steps") == 0) {
            if (parse_int(argv[++i], 1, 1000, &rp.steps) < 0)
                return cli_usage_error(usage, "render: bad steps '%s' (1..1000)", v);
        } else if (strcmp(a, "--seed") == 0) {
            if (parse_i64(argv[++i], 0, INT64_MAX, &n) < 0)
                return cli_usage_error(usage, "render: bad seed '%s'", v);
            rp.seed = (uint64_t)n;
        } else if (strcmp(a, "--text-scale") == 0) {
            if (parse_double(argv[++i], -100, 100, &d) < 0)
                return cli_usage_error(usage, "render: bad text scale '%s'", v);
            rp.text_scale = (float)d;
        } else if (strcmp(a, "--audio-scale") == 0) {
            if (parse_double(argv[++i], -100, 100, &d) < 0)
                return cli_usage_error(usage, "render: bad audio scale '%s'", v);
            rp.audio_scale = (float)d;
        } else if (strcmp(a, "--fps") == 0) {
            if (parse_int(argv[++i], 1, 1000, &rp.fps) < 0)
                return cli_usage_error(usage, "render: bad fps '%s'", v);
        } else if (strcmp(a, "--save-latents") == 0) {
            rp.save_latents = argv[++i];
        } else if (strcmp(a, "--threads") == 0) {
            if (parse_int(argv[++i], 1, 1024, &rp.threads) < 0)
                return cli_usage_error(usage, "render: bad thread count '%s'", v);
        } else {
            return cli_usage_error(usage, "render: unknown option '%s'", a);
        }
    }
    if (!audio || !image)
        return cli_usage_error(usage, "render: AUDIO and IMAGE are required");
    if (!out)
        return cli_usage_error(usage, "render: no output file (-o OUT.mp4)");
    if (!rp.models && !size)
        rp.width = rp.height = 64; /* the tiny model's default size */

    struct render_report rep;
    int rc = render_local(&rp, audio, image, out, &rep);
    if (rc == 0)
        printf("%s: %.2f s, %lld frames at %d fps, %dx%d\n", out, rep.duration_s,
               (long long)rep.frames, rp.fps, rp.width, rp.height);
    if (rc == ENC_EINVAL)
        return EXIT_STATUS_USAGE;
    return rc < 0 ? EXIT_STATUS_FAILURE : EXIT_STATUS_OK;
}
