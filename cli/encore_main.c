/*
 * encore_main.c - the `encore` command: dispatch to a subcommand.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/client.h"
#include "common/curve_keys.h"
#include "common/log.h"
#include "commands.h"

static const char usage[] =
    "usage: encore [--coordinator EP] [--keys DIR] [--log-level L] <command> [<options>] <args>\n"
    "\n"
    "  --coordinator EP   the coordinator (default " DEFAULT_COORDINATOR_EP ")\n"
    "  --keys DIR         CurveZMQ: DIR/client.key and DIR/coordinator.pub, for a\n"
    "                     coordinator started with --keys (default: $ENCORE_KEYS)\n"
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
    "  keys gen DIR [--name NAME]      write a CurveZMQ key pair (DIR/NAME.key, .pub)\n"
    "\n"
    "`encore <command> --help` describes each command.\n";

/* remote: the command talks to the coordinator of --coordinator (it uses
 * --keys); the others work locally or on an embedded farm. */
static const struct {
    const char *name;
    command_fn *fn;
    int remote;
} commands[] = {
    {"render", cmd_render, 0}, {"submit", cmd_submit, 1},     {"status", cmd_status, 1},
    {"watch", cmd_watch, 1},   {"cancel", cmd_cancel, 1},     {"workers", cmd_workers, 1},
    {"get", cmd_get, 1},       {"model", cmd_model, 0},       {"parity", cmd_parity, 0},
    {"bench", cmd_bench, 0},   {"examples", cmd_examples, 0}, {"keys", cmd_keys, 0},
};

static struct curve_client client_keys;

int main(int argc, char **argv)
{
    struct global_opts g = {.coordinator = DEFAULT_COORDINATOR_EP};
    int i = 1;
    const char *env_keys = getenv("ENCORE_KEYS");
    if (env_keys && env_keys[0])
        g.keys = env_keys;

    log_init("encore");
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (cli_is_help(argv[i])) {
            fputs(usage, stdout);
            return EXIT_STATUS_OK;
        } else if (strcmp(argv[i], "--coordinator") == 0 && i + 1 < argc) {
            g.coordinator = argv[++i];
        } else if (strcmp(argv[i], "--keys") == 0 && i + 1 < argc) {
            g.keys = argv[++i];
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
    for (size_t c = 0; c < sizeof commands / sizeof commands[0]; c++) {
        if (strcmp(argv[i], commands[c].name) != 0)
            continue;
        int help = i + 1 < argc && cli_is_help(argv[i + 1]);
        if (commands[c].remote && g.keys && !help) {
            if (curve_keys_load_client(g.keys, "client", &client_keys)) {
                fprintf(stderr,
                        "encore %s: cannot use the CurveZMQ keys in '%s' (--keys or "
                        "ENCORE_KEYS; see `encore keys gen --help`)\n",
                        argv[i], g.keys);
                return EXIT_STATUS_USAGE;
            }
            client_set_keys(&client_keys);
        }
        return commands[c].fn(&g, argc - i, argv + i);
    }
    return cli_usage_error(usage, "unknown command '%s'", argv[i]);
}
