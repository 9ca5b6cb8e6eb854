/*
 * tensor.h - the engine's n-dimensional array.
 *
 * A tensor is a dtype, a shape (outermost dimension first, row-major and
 * contiguous) and a data pointer that lives on one backend (host memory for
 * the cpu backend, device memory for cuda). Views share another tensor's
 * memory and never free it. Activations are f32; weights may stay bf16/f16
 * as the checkpoint has them (only the linear and conv ops read those).
 */
#ifndef ENCORE_TENSOR_H
#define ENCORE_TENSOR_H

#include <stddef.h>
#include <stdint.h>

struct backend;

enum dtype {
    DTYPE_F32 = 0,
    DTYPE_BF16,
    DTYPE_F16,
    DTYPE_I64,
    DTYPE_F64,
    DTYPE_COUNT
};

#define TENSOR_MAX_DIMS 6

struct tensor {
    enum dtype dtype;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    void *data;          /* ndim-D array on be (host memory when be is cpu) */
    struct backend *be;  /* owner of the memory the data lives in */
    int owns_data;       /* 1: tensor_destroy frees data through be */
};

size_t dtype_size(enum dtype dt);
const char *dtype_name(enum dtype dt);

int64_t tensor_numel(const struct tensor *t);
size_t tensor_nbytes(const struct tensor *t);

/*
 * tensor_new() allocates an uninitialised tensor on be. Returns NULL when the
 * backend is out of memory (ENC_ENOMEM to the caller) or the shape is invalid.
 * Free with tensor_destroy().
 */
struct tensor *tensor_new(struct backend *be, enum dtype dt, int ndim, const int64_t *shape);
/* tensor_new_shape(be, DTYPE_F32, 3, 16, 48) */
#define tensor_new_shape(be, dt, ...)                                                          \
    tensor_new((be), (dt), (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)),         \
               (int64_t[]){__VA_ARGS__})
/* tensor_destroy() frees t and its data when owned; accepts NULL, NULLs *t. */
void tensor_destroy(struct tensor **t);

/*
 * tensor_view() describes numel(shape) elements of t starting offset
 * elements into it. The view borrows t's memory: it must not outlive t and is
 * never passed to tensor_destroy(). Aborts if the view does not fit in t.
 */
struct tensor tensor_view(const struct tensor *t, int64_t offset, int ndim, const int64_t *shape);
#define tensor_view_shape(t, off, ...)                                                         \
    tensor_view((t), (off), (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)),        \
                (int64_t[]){__VA_ARGS__})

/* tensor_shape_str() writes "[3,16,5,6,8]" into buf and returns buf. */
const char *tensor_shape_str(const struct tensor *t, char *buf, size_t n);
int tensor_same_shape(const struct tensor *a, const struct tensor *b);

#endif
