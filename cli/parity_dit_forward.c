/*
 * parity_dit_forward.c - `encore parity` for fixtures of kind "dit_forward": not
 * supported by this build yet (the module is being built).
 */
#include "common/err.h"
#include "common/log.h"
#include "parity.h"

int parity_dit_forward(struct parity_run *r)
{
    return log_error_rc(ENC_ENOTSUP, "'%s': fixture kind 'dit_forward' is not supported by this build yet",
                        r->path);
}
