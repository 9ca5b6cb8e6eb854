/*
 * parity.h - `encore parity`: run a module on a fixture's inputs and compare
 * with the reference outputs the original PyTorch code computed.
 *
 * A fixture is a .safetensors file whose __metadata__ "kind" names the
 * module; every dimension, case and tolerance is read from the file. Each
 * kind has a handler in cli/parity_<kind>.c that runs the module and calls
 * parity_check*() once per output tensor; each check prints one line:
 *   <name>  max_abs <e>  max_rel <e>  PASS|FAIL
 */
#ifndef ENCORE_PARITY_H
#define ENCORE_PARITY_H

#include <stdint.h>

#include "worker/engine/checkpoint.h"

struct backend;

struct parity_run {
    const char *path;         /* the fixture file */
    struct ckpt *fx;          /* the fixture, open */
    const char *weights_path; /* --weights FILE, or NULL: weights from the fixture */
    struct backend *be;       /* cpu backend, opened by the command */
    int n_checked, n_failed;
};

/* parity_tensor() finds a fixture tensor or logs that it is missing (NULL). */
const struct ckpt_tensor *parity_tensor(struct parity_run *r, const char *name);
/* parity_read_f32() reads a fixture tensor as a new f32 array (caller
 * frees); NULL and a logged error when missing. n gets numel when not NULL. */
float *parity_read_f32(struct parity_run *r, const char *name, int64_t *n);

/*
 * parity_check() compares got[n] with fixture tensor `name` (any float dtype):
 * pass when every |got - ref| <= atol + rtol*|ref|. label is what the line
 * shows (NULL: name). Prints the line, counts the result, returns 1 on pass.
 */
int parity_check(struct parity_run *r, const char *name, const char *label, const float *got,
                 int64_t n, double atol, double rtol);
/* parity_check_ulp(): pass when every element is within max_ulp float32 ulps. */
int parity_check_ulp(struct parity_run *r, const char *name, const char *label,
                     const float *got, int64_t n, int max_ulp);
/*
 * parity_check_bf16_stats() is for results stored in bf16 (the loop's
 * latents): pass when >= min_identical of the elements are bit-identical,
 * >= min_within1 are within one bf16 ulp, and max|d| <= max_rel_peak*max|ref|.
 */
int parity_check_bf16_stats(struct parity_run *r, const char *name, const char *label,
                            const float *got, int64_t n, double min_identical,
                            double min_within1, double max_rel_peak);
/* parity_check_ints() compares integer sequences exactly (token ids). */
int parity_check_ints(struct parity_run *r, const char *label, const int64_t *got,
                      const int64_t *want, int64_t n);

typedef int parity_kind_fn(struct parity_run *r);

/* One handler per fixture kind; 0 when it ran (checks counted), else an enc_err. */
parity_kind_fn parity_dit_forward, parity_scheduler, parity_sliding_window_loop,
    parity_vae_decode, parity_vae_encode, parity_clip_vision, parity_umt5_encoder,
    parity_tokenizer, parity_wav2vec2;

#endif
