/*
 * parity_vae_encode.c - `encore parity` for fixtures of kind "vae_encode": not
 * supported by this build yet (the module is being built).
 */
#include "common/err.h"
#include "common/log.h"
#include "parity.h"

int parity_vae_encode(struct parity_run *r)
{
    return log_error_rc(ENC_ENOTSUP, "'%s': fixture kind 'vae_encode' is not supported by this build yet",
                        r->path);
}
