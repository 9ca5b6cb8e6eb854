/*
 * cmd_bench.c - `encore bench engine|farm|render [options] [--json]`.
 */
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "commands.h"

static const char usage[] =
    "usage: encore bench engine|farm|render|encoders [options] [--json]\n"
    "  engine   DiT forward GFLOP/s vs OpenBLAS sgemm, memory, attention scratch\n"
    "  farm     coordinator throughput and efficiency with simulated workers\n"
    "  render   seconds per render stage with the tiny model\n"
    "  encoders VAE decode and wav2vec2 throughput, streaming decode memory\n"
    "`encore bench NAME --help` lists each bench's options.\n";

int cmd_bench(const struct global_opts *g, int argc, char **argv)
{
    (void)g;
    if (argc < 2)
        return cli_usage_error(usage, "bench: which bench?");
    if (cli_is_help(argv[1])) {
        fputs(usage, stdout);
        return EXIT_STATUS_OK;
    }
    if (strcmp(argv[1], "engine") == 0)
        return bench_engine(argc - 1, argv + 1);
    if (strcmp(argv[1], "farm") == 0)
        return bench_farm(argc - 1, argv + 1);
    if (strcmp(argv[1], "render") == 0)
        return bench_render(argc - 1, argv + 1);
    if (strcmp(argv[1], "encoders") == 0)
        return bench_encoders(argc - 1, argv + 1);
    return cli_usage_error(usage, "bench: unknown bench '%s'", argv[1]);
}
