/*
 * parity_wav2vec2.c - `encore parity` for fixtures of kind "wav2vec2": not
 * supported by this build yet (the module is being built).
 */
#include "common/err.h"
#include "common/log.h"
#include "parity.h"

int parity_wav2vec2(struct parity_run *r)
{
    return log_error_rc(ENC_ENOTSUP, "'%s': fixture kind 'wav2vec2' is not supported by this build yet",
                        r->path);
}
