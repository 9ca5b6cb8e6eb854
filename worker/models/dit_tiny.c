/*
 * dit_tiny.c - write a seeded tiny DiT + audio adapter with the real tensor
 * names (SPEC 7.2-7.3), for the demo and the tests: same architecture and
 * code path as the 1.3B model, small enough to render in seconds on a CPU.
 *
 * Initialisation follows the fixtures' rule: norm weights 1 + 0.1 N, biases
 * 0.05 N, modulations 0.1 N, other weights N(0, clamp(1/sqrt(fan_in), 0.05,
 * 0.2)). Matrices are stored as bf16 (as the published weights are), vectors
 * as f32. Every tensor draws from its own noise stream (its index), so
 * adding a tensor does not change the others.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/err.h"
#include "../../common/log.h"
#include "../../common/noise.h"
#include "../../common/xmalloc.h"
#include "../engine/st_writer.h"
#include "dit.h"

enum init_kind { INIT_WEIGHT, INIT_BIAS, INIT_NORM, INIT_MOD };

struct tiny_writer {
    struct st_writer *st;
    uint64_t seed;
    uint64_t stream;
    int rc;
};

static void put(struct tiny_writer *tw, const char *name, enum init_kind kind, int ndim,
                const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    float *v = xmalloc((size_t)n * sizeof(float));
    noise_fill_normal(tw->seed, tw->stream++, 0, v, (size_t)n);
    double scale = 0.05, offset = 0.0;
    switch (kind) {
    case INIT_WEIGHT: {
        int64_t fan_in = n / shape[0];
        scale = 1.0 / sqrt((double)fan_in);
        scale = scale < 0.05 ? 0.05 : scale > 0.2 ? 0.2 : scale;
        break;
    }
    case INIT_BIAS: scale = 0.05; break;
    case INIT_NORM: scale = 0.1, offset = 1.0; break;
    case INIT_MOD: scale = 0.1; break;
    }
    for (int64_t i = 0; i < n; i++)
        v[i] = (float)(offset + scale * v[i]);
    enum dtype dt = kind == INIT_WEIGHT && ndim >= 2 ? DTYPE_BF16 : DTYPE_F32;
    int rc = st_writer_add_f32_as(tw->st, name, dt, ndim, shape, v);
    if (rc < 0 && tw->rc == 0)
        tw->rc = rc;
    free(v);
}

#define PUT(tw, name, kind, ...)                                                               \
    put((tw), (name), (kind), (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)),      \
        (int64_t[]){__VA_ARGS__})

/* linear(): "<p><s>.weight" (out, in) and "<p><s>.bias" (out). */
static void linear(struct tiny_writer *tw, const char *p, const char *s, int64_t out, int64_t in,
                   int bias)
{
    char name[160];
    snprintf(name, sizeof name, "%s%s.weight", p, s);
    PUT(tw, name, INIT_WEIGHT, out, in);
    if (bias) {
        snprintf(name, sizeof name, "%s%s.bias", p, s);
        PUT(tw, name, INIT_BIAS, out);
    }
}

static void norm(struct tiny_writer *tw, const char *p, const char *s, int64_t n, int bias)
{
    char name[160];
    snprintf(name, sizeof name, "%s%s.weight", p, s);
    PUT(tw, name, INIT_NORM, n);
    if (bias) {
        snprintf(name, sizeof name, "%s%s.bias", p, s);
        PUT(tw, name, INIT_BIAS, n);
    }
}

int dit_write_tiny(const char *path, uint64_t seed, const struct dit_tiny_dims *t)
{
    struct tiny_writer tw = {.st = st_writer_new(), .seed = seed};
    int64_t D = t->dim;
    char p[64], name[160], cfg[512];

    PUT(&tw, "patch_embedding.weight", INIT_WEIGHT, D, 36, 1, 2, 2);
    PUT(&tw, "patch_embedding.bias", INIT_BIAS, D);
    linear(&tw, "", "text_embedding.0", D, t->text_dim, 1);
    linear(&tw, "", "text_embedding.2", D, D, 1);
    linear(&tw, "", "time_embedding.0", D, 256, 1);
    linear(&tw, "", "time_embedding.2", D, D, 1);
    linear(&tw, "", "time_projection.1", 6 * D, D, 1);
    for (int i = 0; i < t->num_layers; i++) {
        snprintf(p, sizeof p, "blocks.%d.", i);
        snprintf(name, sizeof name, "%smodulation", p);
        PUT(&tw, name, INIT_MOD, 1, 6, D);
        linear(&tw, p, "self_attn.q", D, D, 1);
        linear(&tw, p, "self_attn.k", D, D, 1);
        linear(&tw, p, "self_attn.v", D, D, 1);
        linear(&tw, p, "self_attn.o", D, D, 1);
        norm(&tw, p, "self_attn.norm_q", D, 0);
        norm(&tw, p, "self_attn.norm_k", D, 0);
        norm(&tw, p, "norm3", D, 1);
        linear(&tw, p, "cross_attn.q", D, D, 1);
        linear(&tw, p, "cross_attn.k", D, D, 1);
        linear(&tw, p, "cross_attn.v", D, D, 1);
        linear(&tw, p, "cross_attn.o", D, D, 1);
        norm(&tw, p, "cross_attn.norm_q", D, 0);
        norm(&tw, p, "cross_attn.norm_k", D, 0);
        linear(&tw, p, "cross_attn.k_img", D, D, 1);
        linear(&tw, p, "cross_attn.v_img", D, D, 1);
        norm(&tw, p, "cross_attn.norm_k_img", D, 0);
        linear(&tw, p, "cross_attn.k_vocal", D, D, 1);
        linear(&tw, p, "cross_attn.v_vocal", D, D, 1);
        linear(&tw, p, "ffn.0", t->ffn_dim, D, 1);
        linear(&tw, p, "ffn.2", D, t->ffn_dim, 1);
    }
    PUT(&tw, "head.modulation", INIT_MOD, 1, 2, D);
    linear(&tw, "", "head.head", 64, D, 1);
    norm(&tw, "", "img_emb.proj.0", t->clip_dim, 1);
    linear(&tw, "", "img_emb.proj.1", t->clip_dim, t->clip_dim, 1);
    linear(&tw, "", "img_emb.proj.3", D, t->clip_dim, 1);
    norm(&tw, "", "img_emb.proj.4", D, 1);
    linear(&tw, "", "vocal_projector.proj_model.proj", D, t->audio_dim, 0);
    norm(&tw, "", "vocal_projector.proj_model.norm", D, 1);
    for (int j = 0; j < 2; j++) {
        snprintf(p, sizeof p, "vocal_projector.blocks.%d.", j);
        snprintf(name, sizeof name, "%smodulation", p);
        PUT(&tw, name, INIT_MOD, 1, 6, D);
        norm(&tw, p, "norm3", D, 1);
        linear(&tw, p, "cross_attn.q", D, D, 1);
        linear(&tw, p, "cross_attn.k", D, D, 1);
        linear(&tw, p, "cross_attn.v", D, D, 1);
        linear(&tw, p, "cross_attn.o", D, D, 1);
        norm(&tw, p, "cross_attn.norm_q", D, 0);
        norm(&tw, p, "cross_attn.norm_k", D, 0);
        linear(&tw, p, "ffn.0", t->vocal_ffn_dim, D, 1);
        linear(&tw, p, "ffn.2", D, t->vocal_ffn_dim, 1);
    }
    PUT(&tw, "vocal_projector.final_head.modulation", INIT_MOD, 1, 2, D);
    linear(&tw, "", "vocal_projector.final_head.final_proj", D, D, 1);

    snprintf(cfg, sizeof cfg,
             "{\"model_type\": \"i2v\", \"dim\": %lld, \"num_heads\": %lld, \"num_layers\": "
             "%lld, \"ffn_dim\": %lld, \"text_dim\": %lld, \"text_len\": 512, \"in_dim\": 36, "
             "\"out_dim\": 16, \"freq_dim\": 256, \"eps\": 1e-06, \"vocal_projector\": "
             "{\"num_heads\": 8, \"num_layers\": 2, \"ffn_dim\": %lld}}",
             (long long)D, (long long)t->num_heads, (long long)t->num_layers,
             (long long)t->ffn_dim, (long long)t->text_dim, (long long)t->vocal_ffn_dim);
    st_writer_meta(tw.st, "config", cfg);
    st_writer_meta(tw.st, "encore_model", "tiny-dit");
    int rc = tw.rc ? tw.rc : st_writer_write(tw.st, path);
    st_writer_destroy(&tw.st);
    return rc;
}
