/*
 * bench_engine.c - `encore bench engine`: not available in this build yet.
 */
#include <stdio.h>

#include "bench.h"

int bench_engine(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "encore bench engine: not available in this build yet\n");
    return 1;
}
