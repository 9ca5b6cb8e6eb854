/*
 * st_writer.h - write a .safetensors file (tiny models, saved latents).
 *
 * Tensors are copied in as they are added and written in insertion order
 * with 8-byte-aligned offsets; the file appears atomically (written to a
 * temporary name beside it, fsync'd, renamed).
 */
#ifndef ENCORE_ST_WRITER_H
#define ENCORE_ST_WRITER_H

#include <stdint.h>

#include "tensor.h"

struct st_writer;

struct st_writer *st_writer_new(void);
/* st_writer_meta() sets a __metadata__ string entry (copied). */
void st_writer_meta(struct st_writer *w, const char *key, const char *value);
/* st_writer_add() copies numel(shape) elements of dtype dt from data.
 * ENC_EINVAL on a duplicate name or bad shape. */
int st_writer_add(struct st_writer *w, const char *name, enum dtype dt, int ndim,
                  const int64_t *shape, const void *data);
/* st_writer_add_f32_as() converts f32 data to dt (F32, BF16 or F16) and adds it. */
int st_writer_add_f32_as(struct st_writer *w, const char *name, enum dtype dt, int ndim,
                         const int64_t *shape, const float *data);
/* st_writer_write() writes the file; ENC_EIO naming the path on failure. */
int st_writer_write(struct st_writer *w, const char *path);
void st_writer_destroy(struct st_writer **w);

#endif
