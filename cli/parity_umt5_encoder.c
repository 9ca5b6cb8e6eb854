/*
 * parity_umt5_encoder.c - `encore parity` for fixtures of kind "umt5_encoder": not
 * supported by this build yet (the module is being built).
 */
#include "common/err.h"
#include "common/log.h"
#include "parity.h"

int parity_umt5_encoder(struct parity_run *r)
{
    return log_error_rc(ENC_ENOTSUP, "'%s': fixture kind 'umt5_encoder' is not supported by this build yet",
                        r->path);
}
