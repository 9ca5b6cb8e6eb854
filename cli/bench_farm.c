/*
 * bench_farm.c - `encore bench farm`: not available in this build yet.
 */
#include <stdio.h>

#include "bench.h"

int bench_farm(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "encore bench farm: not available in this build yet\n");
    return 1;
}
