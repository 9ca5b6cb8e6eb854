/*
 * parity_clip_vision.c - `encore parity` for fixtures of kind "clip_vision": not
 * supported by this build yet (the module is being built).
 */
#include "common/err.h"
#include "common/log.h"
#include "parity.h"

int parity_clip_vision(struct parity_run *r)
{
    return log_error_rc(ENC_ENOTSUP, "'%s': fixture kind 'clip_vision' is not supported by this build yet",
                        r->path);
}
