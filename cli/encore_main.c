/*
 * encore_main.c - the `encore` command: dispatch to a subcommand.
 */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "commands.h"

static const char usage[] =
    "usage: encore [--coordinator EP] <command> [<options>] <args>\n"
    "\n"
    "commands:\n"
    "  render AUDIO IMAGE -o OUT.mp4   render a video (embedded farm, or --local)\n"
    "  submit AUDIO IMAGE              queue a job on a coordinator; prints its id\n"
    "  status [JOB] [--json]           job states\n"
    "  watch JOB                       live progress, ETA and wavefront\n"
    "  cancel JOB                      cancel a job\n"
    "  workers [--json]                connected workers\n"
    "  get JOB -o OUT.mp4              fetch a finished job's video or latents\n"
    "  model init DIR --tiny           write a tiny model with the real layout\n"
    "  parity FIXTURE...               check modules against reference tensors\n"
    "  bench engine|farm|render        print performance figures\n"
    "  examples DIR                    write the demo inputs (speech, portrait)\n"
    "\n"
    "`encore <command> --help` describes each command.\n";

static const struct {
    const char *name;
    command_fn *fn;
} commands[] = {
    {"render", cmd_render}, {"submit", cmd_submit},   {"status", cmd_status},
    {"watch", cmd_watch},   {"cancel", cmd_cancel},   {"workers", cmd_workers},
    {"get", cmd_get},       {"model", cmd_model},     {"parity", cmd_parity},
    {"bench", cmd_bench},   {"examples", cmd_examples},
};

int main(int argc, char **argv)
{
    struct global_opts g = {.coordinator = DEFAULT_COORDINATOR_EP};
    int i = 1;

    log_init("encore");
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (cli_is_help(argv[i])) {
            fputs(usage, stdout);
            return EXIT_STATUS_OK;
        } else if (strcmp(argv[i], "--coordinator") == 0 && i + 1 < argc) {
            g.coordinator = argv[++i];
        } else if (strcmp(argv[i], "--log-level") == 0 && i + 1 < argc) {
            int lvl = log_parse_level(argv[++i]);
            if (lvl < 0)
                return cli_usage_error(usage, "unknown log level '%s'", argv[i]);
            log_set_level((enum log_level)lvl);
        } else {
            return cli_usage_error(usage, "unknown option '%s'", argv[i]);
        }
    }
    if (i >= argc)
        return cli_usage_error(usage, "no command given");
    for (size_t c = 0; c < sizeof commands / sizeof commands[0]; c++)
        if (strcmp(argv[i], commands[c].name) == 0)
            return commands[c].fn(&g, argc - i, argv + i);
    return cli_usage_error(usage, "unknown command '%s'", argv[i]);
}
