/* err.c - names of the enc_err codes. */
#include "err.h"

const char *enc_err_str(int rc)
{
    switch (rc) {
    case ENC_OK: return "ok";
    case ENC_EINVAL: return "invalid input";
    case ENC_EIO: return "i/o error";
    case ENC_ENOMEM: return "out of memory";
    case ENC_EDB: return "database error";
    case ENC_EWIRE: return "wire protocol error";
    case ENC_EDEVICE: return "device error";
    case ENC_ETIMEOUT: return "timed out";
    case ENC_ENOTSUP: return "not supported";
    }
    return "unknown error";
}
