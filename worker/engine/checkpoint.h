/*
 * checkpoint.h - read-only access to the tensors of a checkpoint file.
 *
 * Formats, picked by content (not by file name):
 * - .safetensors: mapped with mmap; F32, F16, BF16, I64 (and F64, I32, U8
 *   widened on request); the `__metadata__` map of strings;
 * - PyTorch zip checkpoints (.pt/.pth as torch.save writes them): the pickle
 *   subset state dicts use (OrderedDict/dict, _rebuild_tensor_v2, persistent
 *   storage ids, storage offsets and strides; float/bfloat16/half/long
 *   storages), including an outer dict holding "state_dict" as StableAvatar's
 *   loader accepts. Stored (uncompressed) entries are used in place from the
 *   mapping; tensors with non-contiguous strides are copied out.
 *
 * A checkpoint never copies the whole file into the heap: tensor data points
 * into the read-only mapping and stays valid until ckpt_close().
 */
#ifndef ENCORE_CHECKPOINT_H
#define ENCORE_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "tensor.h"

struct ckpt_tensor {
    const char *name;
    enum dtype dtype;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    const void *data;   /* little-endian, contiguous row-major; in the mapping */
    size_t nbytes;
};

struct ckpt;

/*
 * ckpt_open() opens path and indexes its tensors. Returns 0, or ENC_EIO when
 * the file cannot be read and ENC_EINVAL/ENC_ENOTSUP when it is malformed or
 * uses something this reader does not support (truncated, bad magic, an
 * unsupported pickle opcode or storage type), after logging what and where.
 * Free with ckpt_close().
 */
int ckpt_open(const char *path, struct ckpt **out);
void ckpt_close(struct ckpt **ck);

const char *ckpt_path(const struct ckpt *ck);
size_t ckpt_count(const struct ckpt *ck);
/* ckpt_at() returns the i-th tensor in file order (0 <= i < ckpt_count). */
const struct ckpt_tensor *ckpt_at(const struct ckpt *ck, size_t i);
/* ckpt_find() returns the tensor called name, or NULL. */
const struct ckpt_tensor *ckpt_find(const struct ckpt *ck, const char *name);
/* ckpt_meta() returns the __metadata__ value of key (safetensors), or NULL. */
const char *ckpt_meta(const struct ckpt *ck, const char *key);

/*
 * ckpt_read_f32() converts tensor t (any float or integer dtype) to a new
 * float32 host array of numel elements; the caller frees it.
 */
float *ckpt_read_f32(const struct ckpt_tensor *t);
int64_t ckpt_numel(const struct ckpt_tensor *t);

#endif
