/*
 * parity_scheduler.c - `encore parity` for fixtures of kind "scheduler": not
 * supported by this build yet (the module is being built).
 */
#include "common/err.h"
#include "common/log.h"
#include "parity.h"

int parity_scheduler(struct parity_run *r)
{
    return log_error_rc(ENC_ENOTSUP, "'%s': fixture kind 'scheduler' is not supported by this build yet",
                        r->path);
}
