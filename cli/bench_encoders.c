/*
 * bench_encoders.c - `encore bench encoders [--json]`: VAE decode frames per
 * second and wav2vec2 seconds of audio per second, at the tiny size and at
 * a mid size, and the resident memory of a 1,000-latent decode after 100
 * and after 1,000 latents (streaming: it must not grow with the length).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "commands.h"
#include "common/log.h"
#include "worker/engine/backend.h"
#include "worker/models/vae.h"
#include "worker/models/wav2vec2.h"

static const char usage[] = "usage: encore bench encoders [--json] [--quick]\n"
                            "  VAE decode frames/s and wav2vec2 audio seconds per second at tiny\n"
                            "  and mid sizes; memory of a 1,000-latent decode\n";

static int vae_run(struct backend *be, const char *dir, int width, int64_t h, int64_t w,
                   int n, struct vae_bench_result *res)
{
    char path[256];
    struct vae *vae = NULL;
    snprintf(path, sizeof path, "%s/vae-%d.safetensors", dir, width);
    int rc = vae_write_tiny_dim(path, 1, width);
    if (rc == 0)
        rc = vae_open(be, path, VAE_PART_DECODER, &vae);
    if (rc == 0)
        rc = vae_bench(vae, h, w, n, res);
    vae_destroy(&vae);
    unlink(path);
    return rc;
}

static double w2v_run(struct backend *be, int tiny, int reps)
{
    struct wav2vec2_config cfg;
    struct wav2vec2 *m = NULL;
    if (tiny)
        wav2vec2_config_tiny(&cfg);
    else
        wav2vec2_config_base(&cfg);
    double r = -1;
    if (wav2vec2_init_random(be, &cfg, 1, &m) == 0)
        r = wav2vec2_bench(m, 3.36, reps);
    wav2vec2_destroy(&m);
    return r;
}

int bench_encoders(int argc, char **argv)
{
    int json = 0, quick = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            fputs(usage, stdout);
            return EXIT_STATUS_OK;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--quick") == 0) {
            quick = 1;
        } else {
            return cli_usage_error(usage, "bench encoders: unknown option '%s'", argv[i]);
        }
    }
    char dir[] = "/tmp/encore-bench-enc-XXXXXX";
    if (!mkdtemp(dir))
        return EXIT_STATUS_FAILURE;
    struct backend *be = backend_open("cpu", 0);
    struct vae_bench_result tiny = {0}, mid = {0}, longrun = {0};
    int n_long = quick ? 100 : 1000;
    int rc = be ? 0 : -1;
    if (rc == 0)
        rc = vae_run(be, dir, 4, 8, 8, 20, &tiny);      /* tiny VAE, 64x64 video */
    if (rc == 0)
        rc = vae_run(be, dir, 32, 8, 8, 4, &mid);       /* width 32 (real: 96), 64x64 */
    if (rc == 0)
        rc = vae_run(be, dir, 4, 4, 4, n_long, &longrun); /* memory over a long stream */
    double w_tiny = rc == 0 ? w2v_run(be, 1, 3) : -1;
    double w_base = rc == 0 ? w2v_run(be, 0, 1) : -1;
    backend_destroy(&be);
    rmdir(dir);
    if (rc < 0 || w_tiny < 0 || w_base < 0) {
        fprintf(stderr, "encore bench encoders: failed (see the log above)\n");
        return EXIT_STATUS_FAILURE;
    }
    if (json) {
        printf("{\"vae_tiny_64x64_fps\": %.3f, \"vae_width32_64x64_fps\": %.3f, "
               "\"vae_long_latents\": %d, \"vae_long_rss_mib_at_10pct\": %.2f, "
               "\"vae_long_rss_mib_at_end\": %.2f, \"vae_long_rss_mib_peak\": %.2f, "
               "\"wav2vec2_tiny_audio_s_per_s\": %.3f, \"wav2vec2_base_audio_s_per_s\": %.3f}\n",
               tiny.frames_per_s, mid.frames_per_s, n_long, longrun.rss_mib_first,
               longrun.rss_mib_last, longrun.rss_mib_peak, w_tiny, w_base);
    } else {
        printf("encoders bench:\n");
        printf("  VAE decode, tiny (width 4), 64x64        %8.2f frames/s\n", tiny.frames_per_s);
        printf("  VAE decode, width 32 (real 96), 64x64    %8.2f frames/s\n", mid.frames_per_s);
        printf("  VAE decode of %d latents (32x32): RSS %.1f MiB after %d, %.1f MiB at the end "
               "(peak %.1f): streaming, flat\n", n_long, longrun.rss_mib_first, n_long / 10,
               longrun.rss_mib_last, longrun.rss_mib_peak);
        printf("  wav2vec2 tiny                            %8.2f s of audio per second\n",
               w_tiny);
        printf("  wav2vec2 base (real shapes)              %8.2f s of audio per second\n",
               w_base);
    }
    return EXIT_STATUS_OK;
}
