/*
 * bench_engine.c - `encore bench engine [--json] [--threads N] [--reps N]`:
 * the DiT forward at a mid-size configuration (dim 512, 8 heads, 8 layers,
 * a 21-frame window of 16x16 latents, batch 3) in GFLOP/s of its analytic
 * FLOP count, next to plain OpenBLAS sgemm on the model's typical GEMM shape
 * measured in the same run, their ratio, the peak resident memory, and the
 * worst-case attention scratch at the real 480x832 size (computed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "commands.h"
#include "common/err.h"
#include "common/log.h"
#include "common/noise.h"
#include "common/parse.h"
#include "common/xmalloc.h"
#include "worker/engine/backend.h"
#include "worker/engine/cpu/cpu_attention.h"
#include "worker/engine/cpu/cpu_bench.h"
#include "worker/models/dit.h"

static const char usage[] =
    "usage: encore bench engine [--json] [--threads N] [--reps N]\n"
    "  DiT forward GFLOP/s (dim 512, 8 heads, 8 layers, 21x16x16 latents, batch 3)\n"
    "  against OpenBLAS sgemm on the model's GEMM shape, peak RSS, and the\n"
    "  attention scratch a 480x832 window needs.\n";

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static size_t peak_rss_bytes(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (size_t)ru.ru_maxrss * 1024;
}

int bench_engine(int argc, char **argv)
{
    int json = 0, threads = 0, reps = 3, rc = EXIT_STATUS_FAILURE;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            fputs(usage, stdout);
            return EXIT_STATUS_OK;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            if (parse_int(argv[++i], 1, 1024, &threads) < 0)
                return cli_usage_error(usage, "bench engine: bad thread count '%s'", argv[i]);
        } else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
            if (parse_int(argv[++i], 1, 1000, &reps) < 0)
                return cli_usage_error(usage, "bench engine: bad repetition count '%s'",
                                       argv[i]);
        } else {
            return cli_usage_error(usage, "bench engine: unknown option '%s'", argv[i]);
        }
    }

    const int64_t F = 21, H = 16, W = 16, NT = 64, NCLIP = 257, NA = 167;
    struct dit_tiny_dims dims = {.dim = 512, .num_heads = 8, .num_layers = 8, .ffn_dim = 2048,
                                 .text_dim = 512, .clip_dim = 1280, .audio_dim = 768,
                                 .vocal_ffn_dim = 1024};
    char dir[] = "/tmp/encore-bench-XXXXXX", path[256];
    struct backend *be = NULL;
    struct ckpt *ck = NULL;
    struct dit *d = NULL;
    struct dit_job *job = NULL;
    float *text = NULL, *clip = NULL, *y = NULL, *x = NULL, *audio = NULL, *out = NULL;

    if (!mkdtemp(dir)) {
        fprintf(stderr, "encore bench engine: cannot make a temporary directory\n");
        return EXIT_STATUS_FAILURE;
    }
    snprintf(path, sizeof path, "%s/dit.safetensors", dir);
    if (dit_write_tiny(path, 3, &dims) < 0 || ckpt_open(path, &ck) < 0)
        goto out;
    be = backend_open("cpu", threads);
    if (!be || dit_load(be, &ck, 1, NULL, &d) < 0)
        goto out;
    const struct dit_config *c = dit_get_config(d);
    text = xmalloc((size_t)(NT * c->text_dim) * sizeof(float));
    clip = xmalloc((size_t)(NCLIP * c->clip_dim) * sizeof(float));
    y = xcalloc((size_t)(20 * F * H * W), sizeof(float));
    x = xmalloc((size_t)(16 * F * H * W) * sizeof(float));
    audio = xmalloc((size_t)(NA * c->audio_dim) * sizeof(float));
    out = xmalloc((size_t)(3 * 16 * F * H * W) * sizeof(float));
    noise_fill_normal(1, 1, 0, text, (size_t)(NT * c->text_dim));
    noise_fill_normal(1, 2, 0, clip, (size_t)(NCLIP * c->clip_dim));
    noise_fill_normal(1, 3, 0, x, (size_t)(16 * F * H * W));
    noise_fill_normal(1, 4, 0, audio, (size_t)(NA * c->audio_dim));
    struct dit_job_inputs in = {.text_neg = text, .n_neg = NT, .text_pos = text, .n_pos = NT,
                                .clip = clip, .n_clip = NCLIP, .y = y, .frames = F, .h = H,
                                .w = W, .clip_frames = (int)(4 * (F - 1) + 1)};
    if (dit_job_new(d, &in, &job) < 0 || dit_forward(d, job, x, F, 500.0f, audio, NA, out) < 0)
        goto out; /* the first forward warms caches and page-faults the weights */
    /* Fastest of reps, as the sgemm figure is its fastest repetition: on a
     * shared machine the minimum is the figure least disturbed by others. */
    double secs = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        if (dit_forward(d, job, x, F, 500.0f, audio, NA, out) < 0)
            goto out;
        double dt = now() - t0;
        if (dt < secs)
            secs = dt;
    }
    double flops = dit_flops(c, F, H, W, NT, NCLIP, NA);
    double dit_gflops = flops / secs * 1e-9;
    int64_t tokens = 3 * F * (H / 2) * (W / 2);
    double sgemm = cpu_bench_sgemm_gflops(be, tokens, c->dim, c->dim, 0.5);
    double sgemm_ffn = cpu_bench_sgemm_gflops(be, tokens, c->ffn_dim, c->dim, 0.5);
    size_t scratch = cpu_attention_scratch_bytes(32760, 32760, 12, 128, be->n_threads);
    size_t scratch2 = cpu_attention_scratch_bytes(2 * 32760, 2 * 32760, 12, 128, be->n_threads);
    size_t rss = peak_rss_bytes();
    if (json) {
        printf("{\"dit_gflops\": %.3f, \"sgemm_gflops\": %.3f, \"sgemm_ffn_gflops\": %.3f, "
               "\"ratio\": %.4f, \"forward_s\": %.4f, \"forward_gflop\": %.3f, "
               "\"threads\": %d, \"peak_rss_bytes\": %zu, \"attn_scratch_bytes_480x832\": %zu, "
               "\"attn_scratch_bytes_2x_tokens\": %zu, \"config\": {\"dim\": %lld, "
               "\"heads\": %lld, \"layers\": %lld, \"ffn\": %lld, \"frames\": %lld, "
               "\"latent_h\": %lld, \"latent_w\": %lld, \"batch\": 3}}\n",
               dit_gflops, sgemm, sgemm_ffn, dit_gflops / sgemm, secs, flops * 1e-9,
               be->n_threads, rss, scratch, scratch2, (long long)c->dim,
               (long long)c->num_heads, (long long)c->num_layers, (long long)c->ffn_dim,
               (long long)F, (long long)H, (long long)W);
    } else {
        printf("engine bench: DiT dim %lld, %lld heads, %lld layers, ffn %lld; window %lldx%lldx"
               "%lld latents, batch 3, %d threads\n",
               (long long)c->dim, (long long)c->num_heads, (long long)c->num_layers,
               (long long)c->ffn_dim, (long long)F, (long long)H, (long long)W, be->n_threads);
        printf("  DiT forward          %8.3f s   %8.2f GFLOP   %8.2f GFLOP/s\n", secs,
               flops * 1e-9, dit_gflops);
        printf("  OpenBLAS sgemm       %lldx%lldx%lld  %8.2f GFLOP/s  (ffn shape %8.2f)\n",
               (long long)tokens, (long long)c->dim, (long long)c->dim, sgemm, sgemm_ffn);
        printf("  ratio DiT / sgemm    %8.3f   (target >= 0.6)\n", dit_gflops / sgemm);
        printf("  peak RSS             %8.1f MiB\n", (double)rss / (1 << 20));
        printf("  attention scratch at 480x832 (32760 tokens): %.1f MiB; at twice the tokens "
               "%.1f MiB (linear, not quadratic)\n",
               (double)scratch / (1 << 20), (double)scratch2 / (1 << 20));
    }
    rc = EXIT_STATUS_OK;
out:
    if (rc != EXIT_STATUS_OK)
        fprintf(stderr, "encore bench engine: failed (see the log above)\n");
    dit_job_destroy(&job);
    dit_destroy(&d);
    ckpt_close(&ck);
    backend_destroy(&be);
    unlink(path);
    rmdir(dir);
    free(text);
    free(clip);
    free(y);
    free(x);
    free(audio);
    free(out);
    return rc;
}
