/*
 * torch_pickle.h - a pickle machine for the data.pkl of torch.save.
 *
 * It runs the subset of the pickle protocol (0-5 opcodes, no code
 * execution) that a state dict pickles to, and knows these globals only:
 * collections.OrderedDict, torch._utils._rebuild_tensor_v2,
 * torch._utils._rebuild_parameter(_with_state), and the torch.<T>Storage
 * types. Persistent ids must be ('storage', <T>Storage, key, location,
 * numel). The result is the list of tensors of the state dict: the top-level
 * dict, or its "state_dict" member when it has one; values that are not
 * tensors (nested metadata dicts, numbers) are skipped. Anything else
 * (another opcode or global) is ENC_ENOTSUP naming it and its offset.
 */
#ifndef ENCORE_TORCH_PICKLE_H
#define ENCORE_TORCH_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "checkpoint_impl.h"
#include "tensor.h"

/* One tensor of the state dict as the pickle describes it. */
struct torch_pickle_tensor {
    char *name;            /* state dict key */
    char *storage_key;     /* names the zip entry <archive>/data/<key> */
    enum ckpt_elem elem;   /* from the storage type */
    int64_t storage_numel; /* elements in the storage */
    int64_t offset;        /* storage_offset, in elements */
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];  /* size */
    int64_t stride[TENSOR_MAX_DIMS]; /* in elements */
};

/*
 * torch_pickle_load() runs pkl[0..n) (the data.pkl of file path) and returns
 * its tensors in dict order in a new array *out of *count (free with
 * torch_pickle_free). Returns 0, or ENC_EINVAL (malformed) / ENC_ENOTSUP
 * (unsupported opcode or global), logged with the byte offset.
 */
int torch_pickle_load(const char *path, const uint8_t *pkl, size_t n,
                      struct torch_pickle_tensor **out, size_t *count);
void torch_pickle_free(struct torch_pickle_tensor **t, size_t count);

#endif
