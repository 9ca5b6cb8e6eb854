/*
 * worker_main.c - encore-worker: not available in this build yet.
 */
#include <stdio.h>

int main(void)
{
    fprintf(stderr, "encore-worker: not available in this build yet\n");
    return 1;
}
