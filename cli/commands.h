/*
 * commands.h - the subcommands of `encore`, one file each (cli/cmd_*.c).
 *
 * Each takes the arguments after its name (argv[0] is the command name) and
 * returns the process exit status: 0 success, 2 bad usage or input, 1 other
 * failure. `-h`/`--help` prints the command's usage to stdout and returns 0.
 */
#ifndef ENCORE_COMMANDS_H
#define ENCORE_COMMANDS_H

enum exit_status {
    EXIT_STATUS_OK = 0,
    EXIT_STATUS_FAILURE = 1,
    EXIT_STATUS_USAGE = 2,
};

/* Options before the command name (`encore --coordinator EP status`). */
struct global_opts {
    const char *coordinator; /* endpoint, default DEFAULT_COORDINATOR_EP */
    const char *keys;        /* CurveZMQ key directory (--keys, ENCORE_KEYS); NULL: none */
    int json;                /* not global in the contract, kept per command */
};

#define DEFAULT_COORDINATOR_EP "tcp://127.0.0.1:7707"

typedef int command_fn(const struct global_opts *g, int argc, char **argv);

command_fn cmd_render, cmd_submit, cmd_status, cmd_watch, cmd_cancel, cmd_workers, cmd_get,
    cmd_model, cmd_parity, cmd_bench, cmd_examples, cmd_keys;

/* cli_is_help() is true for -h and --help. */
int cli_is_help(const char *arg);
/* cli_usage_error() prints "encore CMD: MSG" and the usage to stderr; returns 2. */
int cli_usage_error(const char *usage, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
