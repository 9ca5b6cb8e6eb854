/*
 * cmd_model.c - `encore model init DIR --tiny [--seed N]`: write a complete
 * tiny model in the StableAvatar checkpoint layout (SPEC 7.1), with the real
 * tensor names, seeded random weights and safetensors files. It is the model
 * the demo and the tests use: the real architecture at a size that renders
 * a short 64x64 video in seconds on one core. Its video is not a face.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/err.h"
#include "common/log.h"
#include "common/parse.h"
#include "commands.h"
#include "model_layout.h"
#include "worker/models/dit.h"

static const char usage[] =
    "usage: encore model init DIR --tiny [--seed N]\n"
    "\n"
    "Writes a tiny StableAvatar model (DiT with audio adapter, VAE, text encoder and\n"
    "tokenizer, CLIP image tower, wav2vec2) in the published checkpoint layout, with\n"
    "seeded random weights. The demo and the tests render with it.\n"
    "  --tiny     the tiny configuration (the only one that can be generated)\n"
    "  --seed N   weight seed (default 1)\n";

/* The tiny configuration, declared in one place. */
static const struct dit_tiny_dims tiny_dit = {
    .dim = 64, .num_heads = 2, .num_layers = 2, .ffn_dim = 128,
    .text_dim = MODEL_TINY_TEXT_DIM, .clip_dim = MODEL_TINY_CLIP_DIM,
    .audio_dim = MODEL_TINY_AUDIO_DIM, .vocal_ffn_dim = 128,
};

static int write_dit(const char *path, uint64_t seed)
{
    return dit_write_tiny(path, seed, &tiny_dit);
}

static const struct {
    const char *relpath;
    int (*write)(const char *path, uint64_t seed);
} parts[] = {
    {MODEL_DIT_DIR "/" MODEL_DIT_FILE_ST, write_dit},
};

static int mkdir_p(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n >= sizeof buf)
        return log_error_rc(ENC_EINVAL, "path too long: '%s'", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != 0)
            continue;
        char c = buf[i];
        buf[i] = 0;
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return log_error_rc(ENC_EIO, "cannot create directory '%s': %s", buf,
                                strerror(errno));
        buf[i] = c;
    }
    return 0;
}

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
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, parts[i].relpath);
        char *slash = strrchr(path, '/');
        *slash = 0;
        if (mkdir_p(path) < 0)
            return EXIT_STATUS_FAILURE;
        *slash = '/';
        int rc = parts[i].write(path, (uint64_t)seed);
        if (rc < 0) {
            fprintf(stderr, "encore model init: cannot write '%s': %s\n", path,
                    enc_err_str(rc));
            return EXIT_STATUS_FAILURE;
        }
        printf("wrote %s\n", path);
    }
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
