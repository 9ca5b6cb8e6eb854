/*
 * clip.c - the CLIP ViT-H/14 vision tower with use_31_block (SPEC 1.5) on
 * the backend interface.
 *
 * Host preprocessing (small): bf16 rounding of the [-1, 1] image, PyTorch
 * bicubic resize to S x S (image_resize.c), x*0.5 + 0.5, (x - mean) / std
 * per channel in f32. Then on the backend, activations f32:
 *   patch conv p x p stride p, no bias     [dim, 1, g, g] -> [g*g, dim]
 *   x = [cls ; patches] + pos_embedding     [n_tokens, dim]; pre_norm
 *   blocks 0 .. n_blocks-2: x += proj(MHSA(LN1 x)); x += fc2(GELU(fc1(LN2 x)))
 * with the fused to_qkv output viewed (tokens, 3, heads, head_dim) and
 * split by one permute to [3, tokens, heads, head_dim].
 *
 * Invariant: parameters are owned by m->w (bound) or m->src (seeded); the
 * forward frees every activation before it returns.
 */
#include "clip.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bf16.h"
#include "common/err.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "encoder_util.h"
#include "image_resize.h"

struct clip_block {
    struct tensor *ln1_w, *ln1_b;   /* [dim] */
    struct tensor *qkv_w, *qkv_b;   /* [3 dim, dim], [3 dim] */
    struct tensor *proj_w, *proj_b; /* [dim, dim], [dim] */
    struct tensor *ln2_w, *ln2_b;   /* [dim] */
    struct tensor *fc1_w, *fc1_b;   /* [mlp, dim], [mlp] */
    struct tensor *fc2_w, *fc2_b;   /* [dim, mlp], [dim] */
};

struct clip {
    struct backend *be;
    struct clip_config cfg;
    struct weights *w;            /* bind mode, else NULL */
    struct encoder_src src;       /* seeded tensors */
    struct tensor *patch_w;       /* [dim, 3, p, p] */
    struct tensor *cls;           /* [1, 1, dim] */
    struct tensor *pos;           /* [1, n_tokens, dim] */
    struct tensor *pre_w, *pre_b; /* [dim] */
    struct clip_block *blocks;    /* [n_blocks] (the last is bound, not run) */
};

static const float clip_mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
static const float clip_std[3] = {0.26862954f, 0.26130258f, 0.27577711f};

void clip_config_tiny(struct clip_config *c)
{
    memset(c, 0, sizeof(*c));
    c->dim = 64;
    c->patch = 14;
    c->grid = 4;
    c->image_size = 56;
    c->n_tokens = 17;
    c->n_blocks = 3;
    c->n_heads = 4;
    c->mlp = 256;
    c->eps = 1e-5f;
}

void clip_config_vit_h(struct clip_config *c)
{
    memset(c, 0, sizeof(*c));
    c->dim = 1280;
    c->patch = 14;
    c->grid = 16;
    c->image_size = 224;
    c->n_tokens = 257;
    c->n_blocks = 32;
    c->n_heads = 16;
    c->mlp = 5120;
    c->eps = 1e-5f;
}

const struct clip_config *clip_get_config(const struct clip *m)
{
    return &m->cfg;
}

static int config_check(const struct clip_config *c)
{
    if (c->dim <= 0 || c->patch <= 0 || c->grid <= 0 || c->image_size != c->grid * c->patch ||
        c->n_tokens != c->grid * c->grid + 1 || c->n_blocks < 1 || c->n_heads <= 0 ||
        c->dim % c->n_heads != 0 || c->mlp <= 0)
        return log_error_rc(ENC_EINVAL, "inconsistent configuration");
    return 0;
}

static int config_from_shapes(struct weights *w, struct ckpt *const *cks, int n_cks,
                              struct clip_config *c)
{
    memset(c, 0, sizeof(*c));
    c->eps = 1e-5f;
    const struct ckpt_tensor *t = weights_find(w, "patch_embedding.weight");
    if (!t || t->ndim != 4 || t->shape[1] != 3 || t->shape[2] != t->shape[3])
        return log_error_rc(ENC_EINVAL, "no 'patch_embedding.weight' [dim, 3, p, p]");
    c->dim = t->shape[0];
    c->patch = t->shape[2];
    t = weights_find(w, "pos_embedding");
    if (!t || t->ndim != 3 || t->shape[2] != c->dim)
        return log_error_rc(ENC_EINVAL, "no 'pos_embedding' [1, tokens, %lld]", (long long)c->dim);
    c->n_tokens = t->shape[1];
    int64_t g = (int64_t)llround(sqrt((double)(c->n_tokens - 1)));
    if (c->n_tokens < 2 || g * g + 1 != c->n_tokens)
        return log_error_rc(ENC_EINVAL,
                            "%lld position embeddings is not a square grid "
                            "plus the class token",
                            (long long)c->n_tokens);
    c->grid = g;
    c->image_size = g * c->patch;
    char name[96];
    for (;;) {
        snprintf(name, sizeof(name), "transformer.%lld.attn.to_qkv.weight", (long long)c->n_blocks);
        if (!weights_has(w, name))
            break;
        c->n_blocks++;
    }
    if (c->n_blocks < 1)
        return log_error_rc(ENC_EINVAL, "no 'transformer.0.attn.to_qkv.weight'");
    t = weights_find(w, "transformer.0.mlp.0.weight");
    if (!t || t->ndim != 2)
        return log_error_rc(ENC_EINVAL, "no 2-D 'transformer.0.mlp.0.weight'");
    c->mlp = t->shape[0];
    const char *meta = NULL;
    for (int i = n_cks - 1; i >= 0 && !meta; i--)
        meta = ckpt_meta(cks[i], "config");
    int64_t h;
    if (encoder_meta_ints(meta, "heads", &h, 1) == 1)
        c->n_heads = h;
    else if (c->dim % 80 == 0)
        c->n_heads = c->dim / 80;
    else
        return log_error_rc(ENC_EINVAL,
                            "cannot tell the heads of width %lld (no \"heads\" "
                            "in the config metadata)",
                            (long long)c->dim);
    return 0;
}

#define GET(name_, init_, f32_, ...)                                                               \
    encoder_src_get(s, (name_), (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)),         \
                    (int64_t[]){__VA_ARGS__}, (init_), 1.0f, (f32_))

static int bind_all(struct clip *m, struct encoder_src *s)
{
    const struct clip_config *c = &m->cfg;
    int64_t D = c->dim, M = c->mlp;
    char name[128];
    m->patch_w = GET("patch_embedding.weight", ENCODER_INIT_MATRIX, 0, D, 3, c->patch, c->patch);
    m->cls = GET("cls_embedding", ENCODER_INIT_EMBED, 1, 1, 1, D);
    m->pos = GET("pos_embedding", ENCODER_INIT_EMBED, 1, 1, c->n_tokens, D);
    m->pre_w = GET("pre_norm.weight", ENCODER_INIT_GAIN, 1, D);
    m->pre_b = GET("pre_norm.bias", ENCODER_INIT_BIAS, 1, D);
    m->blocks = xcalloc((size_t)c->n_blocks, sizeof(*m->blocks));
    for (int64_t b = 0; b < c->n_blocks; b++) {
        struct clip_block *B = &m->blocks[b];
        struct {
            const char *suffix;
            struct tensor **t;
            int64_t rows, cols;
            enum encoder_init init;
        } p[] = {
            {"norm1.weight", &B->ln1_w, D, 0, ENCODER_INIT_GAIN},
            {"norm1.bias", &B->ln1_b, D, 0, ENCODER_INIT_BIAS},
            {"attn.to_qkv.weight", &B->qkv_w, 3 * D, D, ENCODER_INIT_MATRIX},
            {"attn.to_qkv.bias", &B->qkv_b, 3 * D, 0, ENCODER_INIT_BIAS},
            {"attn.proj.weight", &B->proj_w, D, D, ENCODER_INIT_MATRIX},
            {"attn.proj.bias", &B->proj_b, D, 0, ENCODER_INIT_BIAS},
            {"norm2.weight", &B->ln2_w, D, 0, ENCODER_INIT_GAIN},
            {"norm2.bias", &B->ln2_b, D, 0, ENCODER_INIT_BIAS},
            {"mlp.0.weight", &B->fc1_w, M, D, ENCODER_INIT_MATRIX},
            {"mlp.0.bias", &B->fc1_b, M, 0, ENCODER_INIT_BIAS},
            {"mlp.2.weight", &B->fc2_w, D, M, ENCODER_INIT_MATRIX},
            {"mlp.2.bias", &B->fc2_b, D, 0, ENCODER_INIT_BIAS},
        };
        for (size_t i = 0; i < sizeof(p) / sizeof(p[0]); i++) {
            snprintf(name, sizeof(name), "transformer.%lld.%s", (long long)b, p[i].suffix);
            if (p[i].cols)
                *p[i].t = GET(name, p[i].init, 0, p[i].rows, p[i].cols);
            else
                *p[i].t = GET(name, p[i].init, 1, p[i].rows);
        }
    }
    /* Unused by StableAvatar but part of the tower: written into model
     * files, bound (and ignored) when present so they are not reported. */
    const char *unused[] = {"post_norm.weight", "post_norm.bias", "head"};
    for (int i = 0; i < 3; i++) {
        if (s->seeded) {
            if (!s->writer)
                continue;
            if (i < 2)
                (void)GET(unused[i], i == 0 ? ENCODER_INIT_GAIN : ENCODER_INIT_BIAS, 1, D);
            else
                (void)GET(unused[i], ENCODER_INIT_MATRIX, 0, D, D / 2);
        } else {
            const struct ckpt_tensor *t = weights_find(s->w, unused[i]);
            if (t)
                (void)weights_get(s->w, unused[i], t->ndim,
                                  (int64_t[TENSOR_MAX_DIMS]){-1, -1, -1, -1, -1, -1});
        }
    }
    return s->failed ? ENC_EINVAL : 0;
}

static const char *const clip_prefixes[] = {"visual.", "weights.visual.", "model.visual.", "",
                                            "weights."};

int clip_load(struct backend *be, struct ckpt *const *cks, int n_cks, struct clip **out)
{
    *out = NULL;
    if (n_cks < 1)
        return log_error_rc(ENC_EINVAL, "no checkpoint");
    struct clip *m = xcalloc(1, sizeof(*m));
    m->be = be;
    m->w = weights_new(be, cks, n_cks);
    const char *prefix = NULL;
    for (size_t i = 0; i < sizeof(clip_prefixes) / sizeof(clip_prefixes[0]); i++) {
        weights_set_prefix(m->w, clip_prefixes[i]);
        if (weights_has(m->w, "cls_embedding") && weights_has(m->w, "patch_embedding.weight")) {
            prefix = clip_prefixes[i];
            break;
        }
    }
    int rc;
    if (!prefix) {
        rc = log_error_rc(ENC_EINVAL,
                          "'%s': no CLIP vision weights ('visual.cls_embedding' "
                          "not found)",
                          ckpt_path(cks[n_cks - 1]));
        goto fail;
    }
    rc = config_from_shapes(m->w, cks, n_cks, &m->cfg);
    if (rc == 0)
        rc = config_check(&m->cfg);
    if (rc < 0)
        goto fail;
    m->src.be = be;
    m->src.w = m->w;
    rc = bind_all(m, &m->src);
    int frc = weights_finish(m->w, prefix);
    if (rc == 0)
        rc = frc;
    if (rc < 0)
        goto fail;
    log_debug("width %lld, %lld heads, patch %lld, image %lld, %lld tokens, %lld of %lld "
              "blocks, mlp %lld",
              (long long)m->cfg.dim, (long long)m->cfg.n_heads, (long long)m->cfg.patch,
              (long long)m->cfg.image_size, (long long)m->cfg.n_tokens,
              (long long)m->cfg.n_blocks - 1, (long long)m->cfg.n_blocks, (long long)m->cfg.mlp);
    *out = m;
    return 0;
fail:
    clip_destroy(&m);
    return rc;
}

int clip_init_random(struct backend *be, const struct clip_config *cfg, uint64_t seed,
                     struct clip **out)
{
    *out = NULL;
    int rc = config_check(cfg);
    if (rc < 0)
        return rc;
    struct clip *m = xcalloc(1, sizeof(*m));
    m->be = be;
    m->cfg = *cfg;
    m->src.be = be;
    m->src.seeded = 1;
    m->src.seed = seed;
    if (bind_all(m, &m->src) < 0) {
        clip_destroy(&m);
        return ENC_ENOMEM;
    }
    *out = m;
    return 0;
}

void clip_destroy(struct clip **mp)
{
    struct clip *m = mp ? *mp : NULL;
    if (!m)
        return;
    encoder_src_release(&m->src);
    weights_destroy(&m->w);
    free(m->blocks);
    free(m);
    *mp = NULL;
}

int clip_write_tiny(const char *path, uint64_t seed)
{
    struct clip_config c;
    clip_config_tiny(&c);
    struct backend *be = backend_cpu_new(1);
    if (!be)
        return log_error_rc(ENC_ENOMEM, "cannot open a cpu backend");
    struct st_writer *wr = st_writer_new();
    struct clip *m = xcalloc(1, sizeof(*m));
    m->be = be;
    m->cfg = c;
    m->src.be = be;
    m->src.seeded = 1;
    m->src.seed = seed;
    m->src.writer = wr;
    m->src.write_prefix = "visual."; /* the real checkpoint's names */
    int rc = bind_all(m, &m->src);
    if (rc == 0) {
        char json[512];
        snprintf(json, sizeof(json),
                 "{\"model\": \"clip_xlm_roberta_vit_h_14 (vision tower)\", \"image_size\": %lld, "
                 "\"patch_size\": %lld, \"dim\": %lld, \"heads\": %lld, \"layers\": %lld, "
                 "\"mlp_ratio\": %lld, \"norm_eps\": 1e-05, \"use_31_block\": true}",
                 (long long)c.image_size, (long long)c.patch, (long long)c.dim,
                 (long long)c.n_heads, (long long)c.n_blocks, (long long)(c.mlp / c.dim));
        st_writer_meta(wr, "config", json);
        st_writer_meta(wr, "format", "pt");
        rc = st_writer_write(wr, path);
    } else {
        rc = log_error_rc(ENC_EIO, "cannot build the model to write '%s'", path);
    }
    clip_destroy(&m);
    st_writer_destroy(&wr);
    backend_destroy(&be);
    return rc;
}

/* ---- forward ---- */

#define CHECK(call)                                                                                \
    do {                                                                                           \
        rc = (call);                                                                               \
        if (rc < 0)                                                                                \
            goto out;                                                                              \
    } while (0)
#define NEW(var, ...)                                                                              \
    do {                                                                                           \
        var = tensor_new_shape(be, DTYPE_F32, __VA_ARGS__);                                        \
        if (!var) {                                                                                \
            rc = log_error_rc(ENC_ENOMEM, "out of backend memory");                                \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

static int tap_tensor(struct clip *m, clip_tap_fn *tap, void *ctx, const char *name,
                      const struct tensor *t)
{
    if (!tap)
        return 0;
    float *h = backend_tensor_to_f32(m->be, t);
    if (!h)
        return log_error_rc(ENC_ENOMEM, "cannot copy '%s' to the host", name);
    tap(ctx, name, h, tensor_numel(t));
    free(h);
    return 0;
}

static int run_block(struct clip *m, const struct clip_block *B, struct tensor *x)
{
    struct backend *be = m->be;
    const struct clip_config *c = &m->cfg;
    int64_t S = c->n_tokens, D = c->dim, H = c->n_heads, hd = D / H;
    struct tensor *n = NULL, *qkv = NULL, *p3 = NULL, *a = NULL, *o = NULL, *f = NULL;
    int rc = 0;
    NEW(n, S, D);
    NEW(qkv, S, 3 * D);
    NEW(p3, 3, S, H, hd);
    NEW(a, S, D);
    NEW(o, S, D);
    NEW(f, S, c->mlp);
    CHECK(backend_layer_norm(be, n, x, B->ln1_w, B->ln1_b, c->eps));
    CHECK(backend_linear(be, qkv, n, B->qkv_w, B->qkv_b));
    struct tensor qkv4 = tensor_view_shape(qkv, 0, S, 3, H, hd);
    CHECK(backend_permute(be, p3, &qkv4, (int[]){1, 0, 2, 3}));
    struct tensor q = tensor_view_shape(p3, 0, 1, S, H, hd);
    struct tensor k = tensor_view_shape(p3, S * D, 1, S, H, hd);
    struct tensor v = tensor_view_shape(p3, 2 * S * D, 1, S, H, hd);
    struct tensor a4 = tensor_view_shape(a, 0, 1, S, H, hd);
    CHECK(backend_attention(be, &a4, &q, &k, &v, (float)(1.0 / sqrt((double)hd))));
    CHECK(backend_linear(be, o, a, B->proj_w, B->proj_b));
    CHECK(backend_add(be, x, x, o));
    CHECK(backend_layer_norm(be, n, x, B->ln2_w, B->ln2_b, c->eps));
    CHECK(backend_linear(be, f, n, B->fc1_w, B->fc1_b));
    CHECK(backend_gelu_erf(be, f, f));
    CHECK(backend_linear(be, o, f, B->fc2_w, B->fc2_b));
    CHECK(backend_add(be, x, x, o));
out:
    tensor_destroy(&n);
    tensor_destroy(&qkv);
    tensor_destroy(&p3);
    tensor_destroy(&a);
    tensor_destroy(&o);
    tensor_destroy(&f);
    return rc;
}

int clip_forward(struct clip *m, const float *image, int64_t H, int64_t W, float *out,
                 clip_tap_fn *tap, void *tap_ctx)
{
    struct backend *be = m->be;
    const struct clip_config *c = &m->cfg;
    int64_t S = c->image_size, D = c->dim, g = c->grid, T = c->n_tokens;
    if (H <= 0 || W <= 0)
        return log_error_rc(ENC_EINVAL, "bad image size %lldx%lld", (long long)W, (long long)H);
    int rc = 0;
    struct tensor *px = NULL, *pe = NULL, *x = NULL;
    float *in = xmalloc((size_t)(3 * H * W) * sizeof(float));
    float *pix = xmalloc((size_t)(3 * S * S) * sizeof(float));
    for (int64_t i = 0; i < 3 * H * W; i++)
        in[i] = bf16_round(image[i]);
    image_resize_bicubic(in, 3, H, W, pix, S, S);
    if (tap)
        tap(tap_ctx, "resized", pix, 3 * S * S);
    for (int ch = 0; ch < 3; ch++)
        for (int64_t i = 0; i < S * S; i++) {
            float v = pix[ch * S * S + i] * 0.5f + 0.5f;
            pix[ch * S * S + i] = (v - clip_mean[ch]) / clip_std[ch];
        }
    if (tap)
        tap(tap_ctx, "pixel_values", pix, 3 * S * S);
    px = backend_tensor_from_host(be, DTYPE_F32, 4, (int64_t[]){3, 1, S, S}, pix, 0);
    if (!px) {
        rc = log_error_rc(ENC_ENOMEM, "out of backend memory");
        goto out;
    }
    NEW(pe, D, 1, g, g);
    NEW(x, T, D);
    struct tensor wv = tensor_view_shape(m->patch_w, 0, D, 3, 1, c->patch, c->patch);
    struct conv_params cp = {.stride = {1, (int)c->patch, (int)c->patch}, .groups = 1};
    CHECK(backend_conv3d(be, pe, px, &wv, NULL, &cp));
    struct tensor pe2 = tensor_view_shape(pe, 0, D, g * g);
    struct tensor patches = tensor_view_shape(x, D, g * g, D);
    CHECK(backend_permute(be, &patches, &pe2, (int[]){1, 0}));
    struct tensor cls_dst = tensor_view_shape(x, 0, 1, D);
    CHECK(backend_copy(be, &cls_dst, m->cls));
    CHECK(backend_add(be, x, x, m->pos));
    CHECK(backend_layer_norm(be, x, x, m->pre_w, m->pre_b, c->eps));
    CHECK(tap_tensor(m, tap, tap_ctx, "embeddings", x));
    for (int64_t b = 0; b + 1 < c->n_blocks; b++) {
        CHECK(run_block(m, &m->blocks[b], x));
        if (tap) {
            char name[32];
            snprintf(name, sizeof(name), "block%lld", (long long)b);
            CHECK(tap_tensor(m, tap, tap_ctx, name, x));
        }
    }
    CHECK(backend_download(be, out, x, (size_t)(T * D) * sizeof(float)));
out:
    free(in);
    free(pix);
    tensor_destroy(&px);
    tensor_destroy(&pe);
    tensor_destroy(&x);
    return rc;
}
