/*
 * encoder_util.h - what the wav2vec2 and CLIP encoders share: one way to
 * obtain a parameter tensor whether it is bound from a checkpoint or made up
 * from a seed (tiny model files, in-memory benchmark models), and a reader
 * for the few integers the checkpoints' "config" metadata supplies.
 *
 * Seeded parameters are a pure function of (seed, name): the same tensor gets
 * the same values whatever order the model asks for its parameters in.
 */
#ifndef ENCORE_ENCODER_UTIL_H
#define ENCORE_ENCODER_UTIL_H

#include <stdint.h>

#include "../engine/backend.h"
#include "../engine/st_writer.h"
#include "../engine/weights.h"

/* How a seeded parameter is drawn. */
enum encoder_init {
    ENCODER_INIT_MATRIX = 0, /* N(0, (gain^2)/fan_in), fan_in = numel / shape[0] */
    ENCODER_INIT_BIAS,       /* N(0, 0.1^2) */
    ENCODER_INIT_GAIN,       /* 1 + N(0, 0.1^2) */
    ENCODER_INIT_EMBED,      /* N(0, 0.5^2) */
    ENCODER_INIT_COUNT
};

/*
 * A parameter source. Exactly one of w (bind from checkpoints) or seeded
 * (make up values) is in use; in seeded mode each parameter is also added to
 * writer when it is not NULL. Tensors made in seeded mode are owned by the
 * source until encoder_src_release(). failed counts parameters that could not
 * be had (missing, misshapen, out of memory).
 */
struct encoder_src {
    struct backend *be;
    struct weights *w; /* bind mode, borrowed */
    int seeded;        /* 1: seeded mode */
    uint64_t seed;
    struct st_writer *writer; /* seeded mode: also write here (borrowed), or NULL */
    const char *write_prefix; /* prepended to names written to writer, or NULL */
    struct tensor **owned;    /* seeded mode: tensors made */
    int n_owned, cap_owned;
    int failed;
};

/*
 * encoder_src_get() returns the parameter called name with shape
 * (ndim, shape): bound (weights_get, or weights_get_f32 when f32 is set) or
 * made up as init and gain say. NULL (and failed++) when it cannot be had.
 */
struct tensor *encoder_src_get(struct encoder_src *s, const char *name, int ndim,
                               const int64_t *shape, enum encoder_init init, float gain, int f32);
/*
 * encoder_src_get_host() is encoder_src_get() for a parameter needed on the
 * host (derived weights): a new f32 array of numel(shape) (caller frees), or
 * NULL (failed++).
 */
float *encoder_src_get_host(struct encoder_src *s, const char *name, int ndim, const int64_t *shape,
                            enum encoder_init init, float gain);
/* encoder_src_adopt() makes a tensor on the backend from host f32 data [shape]
 * and keeps it in owned (freed by encoder_src_release); NULL on ENOMEM. */
struct tensor *encoder_src_adopt(struct encoder_src *s, const float *host, int ndim,
                                 const int64_t *shape);
/* encoder_src_release() frees the owned tensors. */
void encoder_src_release(struct encoder_src *s);

/* encoder_randn() writes n seeded values init/gain draws for a tensor of
 * fan_in inputs (a pure function of seed and the index). */
void encoder_randn(uint64_t seed, enum encoder_init init, float gain, int64_t fan_in, float *out,
                   int64_t n);
/* encoder_name_seed() mixes a name into a seed (FNV-1a, then splitmix64). */
uint64_t encoder_name_seed(uint64_t seed, const char *name);

/*
 * encoder_meta_ints() finds "key": N or "key": [N, ...] in a JSON text (the
 * checkpoint's "config" metadata; nested objects are searched too, the first
 * match wins) and stores up to max integers. Returns how many were stored, 0
 * when the key is absent or its value is not integers. json may be NULL.
 */
int encoder_meta_ints(const char *json, const char *key, int64_t *out, int max);

#endif
