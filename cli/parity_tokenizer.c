/*
 * parity_tokenizer.c - `encore parity` for fixtures of kind "tokenizer": not
 * supported by this build yet (the module is being built).
 */
#include "common/err.h"
#include "common/log.h"
#include "parity.h"

int parity_tokenizer(struct parity_run *r)
{
    return log_error_rc(ENC_ENOTSUP, "'%s': fixture kind 'tokenizer' is not supported by this build yet",
                        r->path);
}
