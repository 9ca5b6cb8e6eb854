/*
 * cmd_model.c - `encore model init DIR --tiny [--seed N]`: write a complete
 * tiny model in the StableAvatar checkpoint layout (SPEC 7.1), with the real
 * tensor names, seeded random weights and safetensors files. It is the model
 * the demo and the tests use: the real architecture at a size that renders
 * a short 64x64 video in seconds on one core. Its video is not a face.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/parse.h"
#include "commands.h"
#include "worker/model_set.h"

static const char usage[] =
    "usage: encore model init DIR --tiny [--seed N]\n"
    "\n"
    "Writes a tiny StableAvatar model (DiT with audio adapter, VAE, text encoder and\n"
    "tokenizer, CLIP image tower, wav2vec2) in the published checkpoint layout, with\n"
    "seeded random weights. The demo and the tests render with it.\n"
    "  --tiny     the tiny configuration (the only one that can be generated)\n"
    "  --seed N   weight seed (default 1)\n";

static int model_init(int argc, char **argv)
{
    const char *dir = NULL;
    int tiny = 0;
    int64_t seed = 1;

    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            fputs(usage, stdout);
            return EXIT_STATUS_OK;
        } else if (strcmp(argv[i], "--tiny") == 0) {
            tiny = 1;
        } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            if (parse_i64(argv[++i], 0, INT64_MAX, &seed) < 0)
                return cli_usage_error(usage, "model init: bad seed '%s'", argv[i]);
        } else if (argv[i][0] == '-') {
            return cli_usage_error(usage, "model init: unknown option '%s'", argv[i]);
        } else if (!dir) {
            dir = argv[i];
        } else {
            return cli_usage_error(usage, "model init: unexpected argument '%s'", argv[i]);
        }
    }
    if (!dir)
        return cli_usage_error(usage, "model init: no directory given");
    if (!tiny)
        return cli_usage_error(usage, "model init: only --tiny models can be generated; real "
                               "weights are used in place with --models DIR");
    int rc = model_set_write_tiny(dir, (uint64_t)seed);
    if (rc < 0) {
        fprintf(stderr, "encore model init: cannot write the tiny model into '%s': %s\n", dir,
                enc_err_str(rc));
        return EXIT_STATUS_FAILURE;
    }
    printf("wrote a tiny model (seed %lld) to %s\n", (long long)seed, dir);
    return EXIT_STATUS_OK;
}

int cmd_model(const struct global_opts *g, int argc, char **argv)
{
    (void)g;
    if (argc < 2)
        return cli_usage_error(usage, "model: which subcommand?");
    if (cli_is_help(argv[1])) {
        fputs(usage, stdout);
        return EXIT_STATUS_OK;
    }
    if (strcmp(argv[1], "init") == 0)
        return model_init(argc - 1, argv + 1);
    return cli_usage_error(usage, "model: unknown subcommand '%s'", argv[1]);
}
