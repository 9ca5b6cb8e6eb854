/*
 * bench_render.c - `encore bench render`: not available in this build yet.
 */
#include <stdio.h>

#include "bench.h"

int bench_render(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "encore bench render: not available in this build yet\n");
    return 1;
}
