/*
 * weights.h - bind a model's parameters to checkpoint tensors by name.
 *
 * A model asks for each parameter by name and expected shape; the loader
 * records what is missing or misshapen and which checkpoint tensors were
 * never asked for, and weights_finish() reports them all by name, like the
 * original's load_state_dict: missing or misshapen keys are an error,
 * unexpected keys a warning. Several checkpoints may be stacked (the base
 * DiT, then StableAvatar's .pt on top): a later one overrides an earlier one.
 *
 * Matrices used by linear/conv keep their checkpoint dtype (bf16/f16/f32);
 * weights_get_f32() converts small vectors (norm weights, biases,
 * modulation) to f32. On the cpu backend tensors borrow the mapping (no
 * copy); the checkpoints must stay open while the model lives.
 */
#ifndef ENCORE_WEIGHTS_H
#define ENCORE_WEIGHTS_H

#include "backend.h"
#include "checkpoint.h"

struct weights;

/* weights_new() starts a binding on be over n checkpoints (borrowed). */
struct weights *weights_new(struct backend *be, struct ckpt *const *cks, int n);
/* weights_set_prefix() prepends prefix (e.g. "wav2vec2.") to later lookups
 * when the unprefixed name is absent; "" resets. */
void weights_set_prefix(struct weights *w, const char *prefix);

/*
 * weights_get() returns a tensor on the backend for name with the expected
 * shape (ndim, shape), in its checkpoint dtype, or NULL after recording the
 * problem (missing / wrong shape). weights_get_f32() returns f32 always.
 * A shape entry of -1 accepts any size and the tensor's own is kept.
 * Returned tensors are owned by w (freed by weights_destroy()).
 */
struct tensor *weights_get(struct weights *w, const char *name, int ndim, const int64_t *shape);
struct tensor *weights_get_f32(struct weights *w, const char *name, int ndim,
                               const int64_t *shape);
#define weights_get_shape(w, name, ...)                                                        \
    weights_get((w), (name), (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)),       \
                (int64_t[]){__VA_ARGS__})
#define weights_get_f32_shape(w, name, ...)                                                    \
    weights_get_f32((w), (name), (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)),   \
                    (int64_t[]){__VA_ARGS__})
/* weights_has() tells whether any checkpoint holds name (prefix rules apply). */
int weights_has(const struct weights *w, const char *name);
/* weights_find() returns the checkpoint entry that name resolves to, or NULL
 * (for reading a configuration off tensor shapes). */
const struct ckpt_tensor *weights_find(const struct weights *w, const char *name);

/*
 * weights_finish() logs every missing or misshapen name (error) and every
 * checkpoint tensor not asked for whose name starts with one of the
 * comma-separated `scope` prefixes ("" = all) as unexpected (warning).
 * Returns 0, or ENC_EINVAL when anything was missing or misshapen.
 */
int weights_finish(struct weights *w, const char *scope);
/* Counts for tests and reports. */
int weights_missing_count(const struct weights *w);
int weights_unexpected_count(const struct weights *w);
/* weights_destroy() frees every tensor handed out; accepts NULL. */
void weights_destroy(struct weights **w);

#endif
