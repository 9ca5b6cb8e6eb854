/*
 * cmd_get.c - `encore get JOB [-o OUT.mp4] [--latents FILE]`: fetch a
 * finished job's MP4 and/or its final latents (safetensors, tensor
 * `latents`, bf16 [16, L, H/8, W/8]).
 */
#include <stdio.h>
#include <string.h>

#include "cli/client.h"
#include "common/parse.h"
#include "commands.h"

static const char usage[] =
    "usage: encore [--coordinator EP] get JOB [-o OUT.mp4] [--latents FILE]\n";

int cmd_get(const struct global_opts *g, int argc, char **argv)
{
    int64_t id = 0;
    const char *out = NULL, *latents = NULL;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            fputs(usage, stdout);
            return EXIT_STATUS_OK;
        } else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc) {
            out = argv[++i];
        } else if (strcmp(argv[i], "--latents") == 0 && i + 1 < argc) {
            latents = argv[++i];
        } else if (id || parse_i64(argv[i], 1, INT64_MAX, &id)) {
            return cli_usage_error(usage, "bad argument '%s'", argv[i]);
        }
    }
    if (!id)
        return cli_usage_error(usage, "no job id given");
    if (!out && !latents)
        return cli_usage_error(usage, "nothing to get: give -o OUT.mp4 and/or --latents FILE");
    int rc = 0;
    if (out)
        rc = client_get_output(NULL, g->coordinator, "get", (uint64_t)id, out);
    if (rc == 0 && latents)
        rc = client_get_latents(NULL, g->coordinator, "get", (uint64_t)id, latents);
    return rc;
}
