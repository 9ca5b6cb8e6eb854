/*
 * cmd_parity.c - `encore parity [--weights FILE] FIXTURE...`
 *
 * Opens each fixture, dispatches on its "kind" metadata to the module's
 * handler, prints one line per checked tensor and a summary per fixture.
 * Exit 0 only when every check of every fixture passed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "commands.h"
#include "parity.h"
#include "worker/engine/backend.h"

static const char usage[] =
    "usage: encore parity [--weights FILE.pt|FILE.safetensors] [--threads N] [--device D]\n"
    "                     FIXTURE...\n"
    "\n"
    "Runs the module each fixture holds (its metadata 'kind': dit_forward, scheduler,\n"
    "sliding_window_loop, vae_decode, vae_encode, clip_vision, umt5_encoder, tokenizer,\n"
    "wav2vec2) on the fixture's inputs and compares with the reference outputs the\n"
    "original PyTorch code computed. Prints one line per output tensor: name, max abs\n"
    "error, max rel error, PASS/FAIL. Exits 0 only if everything passes.\n"
    "  --weights FILE   take the model weights from FILE instead of the fixture\n"
    "  --threads N      cpu threads (default: one per core)\n"
    "  --device D       cpu (default) or cuda:N in a CUDA=1 build\n";

static const struct {
    const char *kind;
    parity_kind_fn *fn;
} kinds[] = {
    {"dit_forward", parity_dit_forward},
    {"scheduler", parity_scheduler},
    {"sliding_window_loop", parity_sliding_window_loop},
    {"vae_decode", parity_vae_decode},
    {"vae_encode", parity_vae_encode},
    {"clip_vision", parity_clip_vision},
    {"umt5_encoder", parity_umt5_encoder},
    {"tokenizer", parity_tokenizer},
    {"wav2vec2", parity_wav2vec2},
};

static int run_fixture(const char *path, const char *weights, struct backend *be, int *failed)
{
    struct parity_run r = {.path = path, .weights_path = weights, .be = be};
    int rc = ckpt_open(path, &r.fx);
    if (rc < 0) {
        fprintf(stderr, "encore parity: cannot read fixture '%s': %s\n", path, enc_err_str(rc));
        return EXIT_STATUS_USAGE;
    }
    const char *kind = ckpt_meta(r.fx, "kind");
    if (!kind)
        kind = ckpt_meta(r.fx, "fixture");
    parity_kind_fn *fn = NULL;
    for (size_t i = 0; kind && i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(kind, kinds[i].kind) == 0)
            fn = kinds[i].fn;
    if (!fn) {
        fprintf(stderr, "encore parity: '%s': unknown fixture kind '%s'\n", path,
                kind ? kind : "(none)");
        ckpt_close(&r.fx);
        return EXIT_STATUS_USAGE;
    }
    printf("%s (%s)\n", path, kind);
    fflush(stdout);
    rc = fn(&r);
    if (rc < 0) {
        printf("  %s: %s\n", kind, enc_err_str(rc)); /* kind lives in r.fx */
        ckpt_close(&r.fx);
        *failed = 1;
        return EXIT_STATUS_FAILURE;
    }
    ckpt_close(&r.fx);
    if (r.n_checked == 0 || r.n_failed)
        *failed = 1;
    printf("  %d checks, %d failed\n", r.n_checked, r.n_failed);
    return EXIT_STATUS_OK;
}

int cmd_parity(const struct global_opts *g, int argc, char **argv)
{
    const char *weights = NULL, *device = "cpu";
    int threads = 0, i = 1, failed = 0, status = EXIT_STATUS_OK;

    (void)g;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (cli_is_help(argv[i])) {
            fputs(usage, stdout);
            return EXIT_STATUS_OK;
        } else if (strcmp(argv[i], "--weights") == 0 && i + 1 < argc) {
            weights = argv[++i];
        } else if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) {
            device = argv[++i];
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > 1024)
                return cli_usage_error(usage, "parity: bad thread count '%s'", argv[i]);
            threads = (int)v;
        } else {
            return cli_usage_error(usage, "parity: unknown option '%s'", argv[i]);
        }
    }
    if (i >= argc)
        return cli_usage_error(usage, "parity: no fixture given");
    struct backend *be = backend_open(device, threads);
    if (!be)
        return EXIT_STATUS_FAILURE;
    for (; i < argc; i++) {
        int st = run_fixture(argv[i], weights, be, &failed);
        if (st > status)
            status = st;
    }
    backend_destroy(&be);
    if (status == EXIT_STATUS_OK && failed)
        status = EXIT_STATUS_FAILURE;
    printf("parity: %s\n", status == EXIT_STATUS_OK ? "all checks passed" : "FAILED");
    return status;
}
