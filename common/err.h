/*
 * err.h - the error codes every fallible encore function returns.
 *
 * A function that can fail returns int: 0 on success or a negative enc_err.
 * The error is logged once where its context is known (log_error_rc) and the
 * code is passed up unchanged.
 */
#ifndef ENCORE_ERR_H
#define ENCORE_ERR_H

enum enc_err {
    ENC_OK = 0,
    ENC_EINVAL = -1,   /* bad input: argument, file content, message */
    ENC_EIO = -2,      /* file or socket I/O failed */
    ENC_ENOMEM = -3,   /* an arena or device allocation failed */
    ENC_EDB = -4,      /* the database refused or failed */
    ENC_EWIRE = -5,    /* malformed or refused wire message */
    ENC_EDEVICE = -6,  /* accelerator error or no such device */
    ENC_ETIMEOUT = -7, /* a deadline passed */
    ENC_ENOTSUP = -8,  /* valid but not supported by this build or format */
};

/* enc_err_str() names an error code; never NULL. */
const char *enc_err_str(int rc);

#endif
