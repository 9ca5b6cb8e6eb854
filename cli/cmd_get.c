/*
 * cmd_get.c - `encore get JOB [-o OUT.mp4] [--latents FILE]`: fetch a
 * finished job's final latents (safetensors, tensor `latents`, bf16
 * [16, L, H/8, W/8]). The MP4 (decode + stitch) is not in this build yet.
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
    if (out) {
        fprintf(stderr, "encore get: '%s': MP4 output (VAE decode and stitch) is not in this "
                        "build yet; use --latents FILE\n", out);
        return EXIT_STATUS_FAILURE;
    }
    if (!latents)
        return cli_usage_error(usage, "nothing to get: give --latents FILE");
    struct wire_msg req, rep;
    wire_msg_init(&req, WIRE_GET_LATENTS);
    req.u.get_latents.job_id = (uint64_t)id;
    int rc = client_call(NULL, g->coordinator, "get", &req, &rep, 60000);
    if (rc)
        return rc;
    const struct wire_tensor *t = &rep.tensors[0];
    if (rep.kind != WIRE_LATENTS || rep.n_tensors != 1 || t->ndim != 4 ||
        t->dtype != WIRE_DTYPE_BF16) {
        wire_msg_release(&rep);
        fprintf(stderr, "encore get: unexpected reply from the coordinator\n");
        return EXIT_STATUS_FAILURE;
    }
    rc = client_write_latents(latents, t->data, t->shape[1], t->shape[2], t->shape[3]);
    wire_msg_release(&rep);
    return rc;
}
