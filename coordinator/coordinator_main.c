/*
 * coordinator_main.c - encore-coordinator: not available in this build yet.
 */
#include <stdio.h>

int main(void)
{
    fprintf(stderr, "encore-coordinator: not available in this build yet\n");
    return 1;
}
