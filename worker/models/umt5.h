/*
 * umt5.h - the umT5-XXL text encoder (Wan's T5Encoder) on the engine backend.
 *
 * Architecture (SPEC 1.6; Wan naming, no key prefix): token embedding; per
 * block x += O(Attn(RMSNorm1(x))) with per-layer relative position bias and
 * no attention scaling, then x += FC2(FC1(n) * GELU_tanh(Gate(n))) with
 * n = RMSNorm2(x); a final RMSNorm. T5 RMSNorm: x * rsqrt(mean(x^2) + 1e-6)
 * * w, no mean subtraction. All linears bias-free. Relative position bias:
 * bidirectional buckets (n_buckets 32, max distance 128) of r = key - query,
 * a [n_buckets, heads] table per layer added to the logits.
 *
 * The encoder runs on the real tokens only (EOS included, no padding): this
 * equals the original's padded run with a key padding mask on the rows it
 * keeps, and gives the output the pipeline truncates to (context_i is
 * [n_i, dim]).
 *
 * The configuration comes from the tensor shapes: vocab and dim from
 * token_embedding.weight [vocab, dim], dim_attn from attn.q [dim_attn, dim],
 * dim_ffn from ffn.fc1 [dim_ffn, dim], heads and buckets from
 * pos_embedding.embedding.weight [n_buckets, heads], layers by counting
 * blocks.i. The token table (256384 x 4096, 2 GB of the 11 GB bf16
 * checkpoint) is never copied: the rows a call needs are gathered from the
 * checkpoint mapping and converted to f32.
 */
#ifndef ENCORE_UMT5_H
#define ENCORE_UMT5_H

#include <stdint.h>

#include "worker/engine/backend.h"
#include "worker/engine/checkpoint.h"

struct umt5_config {
    int vocab;        /* rows of the token table (256384 for umT5-XXL) */
    int dim;          /* model width (4096) */
    int dim_attn;     /* heads * head_dim (4096) */
    int dim_ffn;      /* gated FFN width (10240) */
    int n_heads;      /* 64 */
    int n_layers;     /* 24 */
    int n_buckets;    /* relative position buckets (32) */
    int max_distance; /* 128 */
    float eps;        /* RMSNorm epsilon, 1e-6 */
};

struct umt5;

/*
 * umt5_load() binds the encoder to checkpoint cks[0..n-1] (borrowed; they
 * must stay open while the model lives) on backend be. prefix (NULL or ""
 * for none; "weights." for the parity fixture) is tried before each key.
 * Returns 0, or ENC_EINVAL after logging every missing or misshapen tensor
 * by name. Free with umt5_destroy().
 */
int umt5_load(struct backend *be, struct ckpt *const *cks, int n, const char *prefix,
              struct umt5 **out);
/* umt5_destroy() accepts NULL and NULLs *m. */
void umt5_destroy(struct umt5 **m);
const struct umt5_config *umt5_get_config(const struct umt5 *m);

/*
 * umt5_encode() runs the encoder on ids[n] (the real tokens, EOS included;
 * 1 <= n) and returns the context in *out: a new f32 tensor (n, dim) on the
 * model's backend, which the caller destroys. ENC_EINVAL for an id outside
 * the token table or n < 1; ENC_ENOMEM when backend memory runs out.
 */
int umt5_encode(struct umt5 *m, const int64_t *ids, int n, struct tensor **out);

/*
 * umt5_relative_bucket() is the bucket of relative distance rel = key_pos -
 * query_pos (bidirectional, as the original _relative_position_bucket
 * computes it in float32).
 */
int umt5_relative_bucket(int rel, int n_buckets, int max_distance);

/*
 * umt5_write_tiny() writes a tiny umT5 encoder with the real key names and
 * seeded random bf16 weights to path (.safetensors): dim UMT5_TINY_DIM,
 * 4 heads, FFN 128, 2 layers, 32 buckets, and a token table covering the
 * vocabulary of tokenizer_write_tiny() (rounded up to a multiple of 16, as
 * the real table has unused rows). Returns 0 or ENC_EIO naming the path.
 */
#define UMT5_TINY_DIM 64
int umt5_write_tiny(const char *path, uint64_t seed);

#endif
