/*
 * cmd_keys.c - `encore keys gen DIR [--name NAME]`: write a new CurveZMQ
 * key pair, DIR/NAME.key (secret, 0600) and DIR/NAME.pub (common/curve_keys.h;
 * setup in deploy/README.md). Existing key files are never overwritten.
 */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "common/curve_keys.h"
#include "common/err.h"

static const char usage[] =
    "usage: encore keys gen DIR [--name NAME]\n"
    "\n"
    "Writes a new CurveZMQ key pair: DIR/NAME.key (public and secret key, mode\n"
    "0600) and DIR/NAME.pub (the public key). DIR is created if missing; existing\n"
    "files are never overwritten. The names the farm reads:\n"
    "  coordinator   the coordinator's pair (encore-coordinator --keys DIR); give\n"
    "                coordinator.pub to every worker and client\n"
    "  worker        a worker's pair (encore-worker --keys DIR)\n"
    "  client        a client's pair (encore --keys DIR, or ENCORE_KEYS=DIR)\n"
    "A worker or client gets in when its NAME.pub is copied into the coordinator's\n"
    "DIR/authorized/ (under any name ending in .pub) and the coordinator restarted.\n"
    "  --name NAME   coordinator, worker, client or any other name (default client)\n";

static int keys_gen(int argc, char **argv)
{
    const char *dir = NULL, *name = "client";
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            fputs(usage, stdout);
            return EXIT_STATUS_OK;
        } else if (strcmp(argv[i], "--name") == 0 && i + 1 < argc) {
            name = argv[++i];
        } else if (argv[i][0] == '-') {
            return cli_usage_error(usage, "keys gen: unknown option '%s'", argv[i]);
        } else if (!dir) {
            dir = argv[i];
        } else {
            return cli_usage_error(usage, "keys gen: unexpected argument '%s'", argv[i]);
        }
    }
    if (!dir)
        return cli_usage_error(usage, "keys gen: no directory given");
    struct curve_pair p;
    int rc = curve_keys_generate(dir, name, &p);
    if (rc)
        return rc == ENC_EINVAL ? EXIT_STATUS_USAGE : EXIT_STATUS_FAILURE;
    printf("wrote %s/%s.key (secret: keep it on this machine) and %s/%s.pub (public key %s)\n", dir,
           name, dir, name, p.pub);
    memset(&p, 0, sizeof p);
    return EXIT_STATUS_OK;
}

int cmd_keys(const struct global_opts *g, int argc, char **argv)
{
    (void)g;
    if (argc < 2)
        return cli_usage_error(usage, "keys: which subcommand?");
    if (cli_is_help(argv[1])) {
        fputs(usage, stdout);
        return EXIT_STATUS_OK;
    }
    if (strcmp(argv[1], "gen") == 0)
        return keys_gen(argc - 1, argv + 1);
    return cli_usage_error(usage, "keys: unknown subcommand '%s'", argv[1]);
}
