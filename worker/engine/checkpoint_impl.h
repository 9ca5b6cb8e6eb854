/*
 * checkpoint_impl.h - what the format readers (safetensors.c, the torch
 * reader in checkpoint.c) use to fill a struct ckpt. Not for models.
 *
 * A reader adds tensors in file order with ckpt_add(); data either points
 * into the checkpoint's mapping or into a buffer the checkpoint owns
 * (ckpt_own()). Element types the engine has no dtype for (I32, I16, I8,
 * U8, BOOL) are widened to I64 into an owned buffer as they are added.
 */
#ifndef ENCORE_CHECKPOINT_IMPL_H
#define ENCORE_CHECKPOINT_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "checkpoint.h"

/* Element types as stored in files. */
enum ckpt_elem {
    CKPT_ELEM_F32 = 0,
    CKPT_ELEM_BF16,
    CKPT_ELEM_F16,
    CKPT_ELEM_F64,
    CKPT_ELEM_I64,
    CKPT_ELEM_I32,
    CKPT_ELEM_I16,
    CKPT_ELEM_I8,
    CKPT_ELEM_U8,
    CKPT_ELEM_BOOL,
    CKPT_ELEM_COUNT
};

/* ckpt_elem_size() is the byte size of one element. */
size_t ckpt_elem_size(enum ckpt_elem e);
/* ckpt_elem_name() is the safetensors spelling ("F32", "BOOL"). */
const char *ckpt_elem_name(enum ckpt_elem e);

/* ckpt_shape_numel() multiplies shape[0..ndim) into *numel and the byte
 * size with elem into *nbytes; ENC_EINVAL on a negative size or overflow. */
int ckpt_shape_numel(int ndim, const int64_t *shape, size_t elem, int64_t *numel, size_t *nbytes);

/*
 * ckpt_add() appends a tensor (name is copied; data must stay valid while ck
 * lives: in the mapping or from ckpt_own()). nbytes must equal numel *
 * ckpt_elem_size(elem). ENC_EINVAL (logged, naming the file) on a duplicate
 * name or more than TENSOR_MAX_DIMS dims.
 */
int ckpt_add(struct ckpt *ck, const char *name, enum ckpt_elem elem, int ndim, const int64_t *shape,
             const void *data, size_t nbytes);
/* ckpt_own() returns a heap buffer of n bytes freed by ckpt_close(). */
void *ckpt_own(struct ckpt *ck, size_t n);
/* ckpt_add_meta() records a __metadata__ entry (both copied). */
void ckpt_add_meta(struct ckpt *ck, const char *key, const char *value);

#endif
