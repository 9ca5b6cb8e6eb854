/*
 * parity_sliding_window_loop.c - `encore parity` for fixtures of kind "sliding_window_loop": not
 * supported by this build yet (the module is being built).
 */
#include "common/err.h"
#include "common/log.h"
#include "parity.h"

int parity_sliding_window_loop(struct parity_run *r)
{
    return log_error_rc(ENC_ENOTSUP, "'%s': fixture kind 'sliding_window_loop' is not supported by this build yet",
                        r->path);
}
