/*
 * cmd_parity.c - `encore parity`: not available in this build yet.
 *
 * The command is part of the contract (DESIGN 7) and is being built; until
 * it lands it fails with a clear message rather than pretending to work.
 */
#include <stdio.h>

#include "commands.h"

int cmd_parity(const struct global_opts *g, int argc, char **argv)
{
    (void)g;
    if (argc > 1 && cli_is_help(argv[1])) {
        printf("usage: encore parity ...\n(not available in this build yet)\n");
        return EXIT_STATUS_OK;
    }
    fprintf(stderr, "encore parity: not available in this build yet\n");
    return EXIT_STATUS_FAILURE;
}
