/*
 * safetensors.h - index a safetensors image into a checkpoint.
 *
 * Layout: u64 little-endian header length N, N bytes of JSON, then the data
 * block. Every entry's dtype, shape and data_offsets are checked: offsets
 * inside the data block, end - begin == numel * element size, no two
 * tensors overlapping. Gaps between tensors are tolerated (the official
 * writer leaves none). __metadata__ must map strings to strings.
 */
#ifndef ENCORE_SAFETENSORS_H
#define ENCORE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

struct ckpt;

/* SAFETENSORS_MAX_HEADER is the largest header accepted (as the reference
 * implementation: 100 MB). */
#define SAFETENSORS_MAX_HEADER ((uint64_t)100 << 20)

/*
 * safetensors_load() indexes buf[0..size) (the mapped file `path`) into ck,
 * tensors in header order. Returns 0, or ENC_EINVAL/ENC_ENOTSUP after
 * logging what is wrong, naming path and the tensor.
 */
int safetensors_load(struct ckpt *ck, const char *path, const uint8_t *buf, size_t size);

#endif
