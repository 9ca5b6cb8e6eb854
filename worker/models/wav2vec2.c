/*
 * wav2vec2.c - wav2vec2-base (Hugging Face Wav2Vec2Model, post-LN encoder)
 * on the backend interface (SPEC 9).
 *
 * Data flow of one slice of n samples, activations f32 on the backend:
 *   processor normalisation (host)           x [1, 1, 1, n]
 *   conv 0 (k 10, s 5, no bias)              [C, 1, 1, T0]
 *     GroupNorm, one group per channel = LayerNorm over time without
 *     affine, then the per-channel affine in [T0, C] layout; GELU
 *   conv 1..6 (k 3/2, s 2) + GELU            [C, 1, 1, T]
 *   -> [T, C] conv features; LayerNorm; Linear C -> D     h [T, D]
 *   h += GELU(pos_conv(h)): grouped conv, kernel K, K/2 zero padding in
 *     front and K/2 - 1 behind for even K (= the original's K/2 on both
 *     sides followed by dropping the last output frame); LayerNorm
 *   n_layers x { h = LN(h + Attn(h)); h = LN(h + FFN(h)) }
 * The weight-normed positional conv weight w = g * v / |v| (norm over all
 * dims but the kernel axis) is computed once at load, on the host.
 *
 * Invariant: every tensor the model owns is in m->src (seeded or derived)
 * or in m->w (bound); the forward allocates its activations per call and
 * frees them before returning.
 */
#include "wav2vec2.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "encoder_util.h"

struct w2v_layer {
    struct tensor *q_w, *q_b, *k_w, *k_b, *v_w, *v_b; /* [D, D], [D] */
    struct tensor *o_w, *o_b;                         /* [D, D], [D] */
    struct tensor *ln1_w, *ln1_b;                     /* [D] attention LayerNorm */
    struct tensor *ff1_w, *ff1_b;                     /* [F, D], [F] */
    struct tensor *ff2_w, *ff2_b;                     /* [D, F], [D] */
    struct tensor *ln2_w, *ln2_b;                     /* [D] final LayerNorm */
};

struct wav2vec2 {
    struct backend *be;
    struct wav2vec2_config cfg;
    struct weights *w;                        /* bind mode, else NULL */
    struct encoder_src src;                   /* owns seeded and derived tensors */
    struct tensor *conv_w[WAV2VEC2_MAX_CONV]; /* [Cout, Cin, k] */
    struct tensor *conv_b[WAV2VEC2_MAX_CONV]; /* [Cout] or NULL (base has none) */
    struct tensor *gn_w, *gn_b;               /* [C0] GroupNorm affine after conv 0 */
    struct tensor *fp_ln_w, *fp_ln_b;         /* [C] */
    struct tensor *fp_w, *fp_b;               /* [D, C], [D] */
    struct tensor *pos_w;                     /* [D, D/G, 1, 1, K] effective, derived */
    struct tensor *pos_b;                     /* [D] */
    struct tensor *enc_ln_w, *enc_ln_b;       /* [D] */
    struct w2v_layer *layers;                 /* [n_layers] */
};

static const int64_t base_kernel[7] = {10, 3, 3, 3, 3, 2, 2};
static const int64_t base_stride[7] = {5, 2, 2, 2, 2, 2, 2};

void wav2vec2_config_base(struct wav2vec2_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->n_conv = 7;
    for (int i = 0; i < 7; i++) {
        cfg->conv_dim[i] = 512;
        cfg->conv_kernel[i] = base_kernel[i];
        cfg->conv_stride[i] = base_stride[i];
    }
    cfg->hidden = 768;
    cfg->ffn = 3072;
    cfg->n_layers = 12;
    cfg->n_heads = 12;
    cfg->pos_kernel = 128;
    cfg->pos_groups = 16;
    cfg->eps = 1e-5f;
}

/* The tiny model: base-shaped conv stack at 64 channels, hidden 768 (the
 * width the DiT's audio adapter is sized for), one layer, FFN 1536. */
void wav2vec2_config_tiny(struct wav2vec2_config *cfg)
{
    wav2vec2_config_base(cfg);
    for (int i = 0; i < 7; i++)
        cfg->conv_dim[i] = 64;
    cfg->ffn = 1536;
    cfg->n_layers = 1;
    cfg->pos_kernel = 16;
    cfg->pos_groups = 16;
}

const struct wav2vec2_config *wav2vec2_get_config(const struct wav2vec2 *m)
{
    return &m->cfg;
}

int64_t wav2vec2_frames_cfg(const struct wav2vec2_config *cfg, int64_t n)
{
    for (int i = 0; i < cfg->n_conv; i++) {
        if (n < cfg->conv_kernel[i])
            return 0;
        n = (n - cfg->conv_kernel[i]) / cfg->conv_stride[i] + 1;
    }
    return n;
}

int64_t wav2vec2_frames(int64_t n_samples)
{
    struct wav2vec2_config c;
    wav2vec2_config_base(&c);
    return wav2vec2_frames_cfg(&c, n_samples);
}

/*
 * numpy's float32 add.reduce, which the processor's mean and var use: the
 * reduction loop sees the array in buffers of 8192 elements, each summed
 * pairwise (8 accumulators up to 128 elements, halves above that) and added
 * in order to an accumulator starting at 0, all in f32.
 */
static float np_pairwise_sum(const float *a, int64_t n)
{
    if (n < 8) {
        float r = 0.0f;
        for (int64_t i = 0; i < n; i++)
            r += a[i];
        return r;
    }
    if (n <= 128) {
        float r[8];
        int64_t i;
        for (int j = 0; j < 8; j++)
            r[j] = a[j];
        for (i = 8; i < n - (n % 8); i += 8)
            for (int j = 0; j < 8; j++)
                r[j] += a[i + j];
        float res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++)
            res += a[i];
        return res;
    }
    int64_t n2 = n / 2;
    n2 -= n2 % 8;
    return np_pairwise_sum(a, n2) + np_pairwise_sum(a + n2, n - n2);
}

static float np_sum(const float *a, int64_t n)
{
    float r = 0.0f;
    for (int64_t i = 0; i < n; i += 8192)
        r += np_pairwise_sum(a + i, n - i < 8192 ? n - i : 8192);
    return r;
}

/*
 * The processor: (x - x.mean()) / np.sqrt(x.var() + 1e-7) in numpy 1.x
 * float32 (mean and var as np_sum()/n in f32; var + 1e-7 and the sqrt in
 * float64, rounded to f32 for the division). Bit-exact on the fixture.
 */
void wav2vec2_normalize(const float *x, int64_t n, float *out)
{
    if (n <= 0)
        return;
    float mean = np_sum(x, n) / (float)n;
    float *d = xmalloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) {
        d[i] = x[i] - mean;
        d[i] = d[i] * d[i];
    }
    float var = np_sum(d, n) / (float)n;
    free(d);
    float den = (float)sqrt((double)var + 1e-7);
    for (int64_t i = 0; i < n; i++)
        out[i] = (x[i] - mean) / den;
}

/* ---- configuration from the checkpoint ---- */

static const char *pos_g_names[] = {
    "encoder.pos_conv_embed.conv.weight_g",
    "encoder.pos_conv_embed.conv.parametrizations.weight.original0"};
static const char *pos_v_names[] = {
    "encoder.pos_conv_embed.conv.weight_v",
    "encoder.pos_conv_embed.conv.parametrizations.weight.original1"};

static const char *first_meta(struct ckpt *const *cks, int n, const char *key)
{
    for (int i = n - 1; i >= 0; i--) {
        const char *v = ckpt_meta(cks[i], key);
        if (v)
            return v;
    }
    return NULL;
}

static int config_from_shapes(struct weights *w, struct ckpt *const *cks, int n_cks,
                              struct wav2vec2_config *c)
{
    char name[160];
    const struct ckpt_tensor *t;
    memset(c, 0, sizeof(*c));
    c->eps = 1e-5f;
    for (int i = 0; i < WAV2VEC2_MAX_CONV; i++) {
        snprintf(name, sizeof(name), "feature_extractor.conv_layers.%d.conv.weight", i);
        t = weights_find(w, name);
        if (!t)
            break;
        if (t->ndim != 3)
            return log_error_rc(ENC_EINVAL, "'%s' has %d dims, expected 3", name, t->ndim);
        c->conv_dim[i] = t->shape[0];
        c->conv_kernel[i] = t->shape[2];
        c->n_conv = i + 1;
    }
    if (c->n_conv == 0)
        return log_error_rc(ENC_EINVAL,
                            "no 'feature_extractor.conv_layers.0.conv.weight' "
                            "in '%s'",
                            ckpt_path(cks[n_cks - 1]));
    if (weights_has(w, "feature_extractor.conv_layers.1.layer_norm.weight"))
        return log_error_rc(ENC_ENOTSUP, "per-layer LayerNorm feature extractor "
                                         "(feat_extract_norm 'layer') is not supported");
    t = weights_find(w, "feature_projection.projection.weight");
    if (!t || t->ndim != 2)
        return log_error_rc(ENC_EINVAL, "no 2-D 'feature_projection.projection.weight'");
    c->hidden = t->shape[0];
    t = weights_find(w, "encoder.layers.0.feed_forward.intermediate_dense.weight");
    if (!t || t->ndim != 2)
        return log_error_rc(ENC_EINVAL,
                            "no 2-D "
                            "'encoder.layers.0.feed_forward.intermediate_dense.weight'");
    c->ffn = t->shape[0];
    for (;;) {
        snprintf(name, sizeof(name), "encoder.layers.%lld.attention.q_proj.weight",
                 (long long)c->n_layers);
        if (!weights_has(w, name))
            break;
        c->n_layers++;
    }
    t = weights_find(w, pos_v_names[0]);
    if (!t)
        t = weights_find(w, pos_v_names[1]);
    if (!t || t->ndim != 3 || t->shape[1] <= 0 || c->hidden % t->shape[1] != 0)
        return log_error_rc(ENC_EINVAL, "no usable '%s' [D, D/groups, K]", pos_v_names[0]);
    c->pos_kernel = t->shape[2];
    c->pos_groups = c->hidden / t->shape[1];

    const char *meta = first_meta(cks, n_cks, "config");
    int64_t v[WAV2VEC2_MAX_CONV];
    if (encoder_meta_ints(meta, "num_attention_heads", v, 1) == 1)
        c->n_heads = v[0];
    else if (c->hidden % 64 == 0)
        c->n_heads = c->hidden / 64;
    if (c->n_heads <= 0 || c->hidden % c->n_heads != 0)
        return log_error_rc(ENC_EINVAL,
                            "cannot tell the heads of hidden size %lld "
                            "(no num_attention_heads in the config metadata)",
                            (long long)c->hidden);
    int ns = encoder_meta_ints(meta, "conv_stride", v, WAV2VEC2_MAX_CONV);
    for (int i = 0; i < c->n_conv; i++) {
        if (ns == c->n_conv)
            c->conv_stride[i] = v[i];
        else if (c->n_conv == 7)
            c->conv_stride[i] = base_stride[i];
        else
            return log_error_rc(ENC_EINVAL,
                                "%d conv layers and no conv_stride in the "
                                "config metadata",
                                c->n_conv);
        if (c->conv_stride[i] <= 0)
            return log_error_rc(ENC_EINVAL, "bad conv stride %lld", (long long)c->conv_stride[i]);
    }
    return 0;
}

static int config_check(const struct wav2vec2_config *c)
{
    if (c->n_conv < 1 || c->n_conv > WAV2VEC2_MAX_CONV || c->hidden <= 0 || c->ffn <= 0 ||
        c->n_layers < 0 || c->n_heads <= 0 || c->hidden % c->n_heads != 0 || c->pos_kernel <= 0 ||
        c->pos_groups <= 0 || c->hidden % c->pos_groups != 0)
        return log_error_rc(ENC_EINVAL, "inconsistent configuration");
    for (int i = 0; i < c->n_conv; i++)
        if (c->conv_dim[i] <= 0 || c->conv_kernel[i] <= 0 || c->conv_stride[i] <= 0)
            return log_error_rc(ENC_EINVAL, "bad conv layer %d", i);
    return 0;
}

/* ---- parameters ---- */

#define GET(name_, init_, gain_, f32_, ...)                                                        \
    encoder_src_get(s, (name_), (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)),         \
                    (int64_t[]){__VA_ARGS__}, (init_), (gain_), (f32_))

/* pos_conv_weight() builds w = g * (v / |v|) from g [1,1,K] and v [D, D/G, K]
 * as torch._weight_norm does (g / norm first, then times v, in f32). */
static int pos_conv_weight(struct wav2vec2 *m, struct encoder_src *s, const char *gname,
                           const char *vname)
{
    const struct wav2vec2_config *c = &m->cfg;
    int64_t D = c->hidden, Din = c->hidden / c->pos_groups, K = c->pos_kernel;
    float *g = encoder_src_get_host(s, gname, 3, (int64_t[]){1, 1, K}, ENCODER_INIT_GAIN, 1);
    float *v = encoder_src_get_host(s, vname, 3, (int64_t[]){D, Din, K}, ENCODER_INIT_MATRIX, 1);
    int rc = 0;
    if (!g || !v) {
        rc = ENC_EINVAL;
        goto out;
    }
    for (int64_t k = 0; k < K; k++) {
        double ss = 0;
        for (int64_t i = 0; i < D * Din; i++)
            ss += (double)v[i * K + k] * (double)v[i * K + k];
        float r = g[k] / (float)sqrt(ss);
        for (int64_t i = 0; i < D * Din; i++)
            v[i * K + k] *= r;
    }
    m->pos_w = encoder_src_adopt(s, v, 5, (int64_t[]){D, Din, 1, 1, K});
    if (!m->pos_w)
        rc = ENC_ENOMEM;
out:
    free(g);
    free(v);
    return rc;
}

/* bind_all() asks s for every parameter of m->cfg; 0 or ENC_EINVAL. */
static int bind_all(struct wav2vec2 *m, struct encoder_src *s, int conv_bias)
{
    const struct wav2vec2_config *c = &m->cfg;
    char name[160];
    int64_t cin = 1, D = c->hidden, F = c->ffn;
    for (int i = 0; i < c->n_conv; i++) {
        snprintf(name, sizeof(name), "feature_extractor.conv_layers.%d.conv.weight", i);
        m->conv_w[i] =
            GET(name, ENCODER_INIT_MATRIX, 2.0f, 0, c->conv_dim[i], cin, c->conv_kernel[i]);
        if (conv_bias) {
            snprintf(name, sizeof(name), "feature_extractor.conv_layers.%d.conv.bias", i);
            m->conv_b[i] = GET(name, ENCODER_INIT_BIAS, 1, 1, c->conv_dim[i]);
        }
        cin = c->conv_dim[i];
    }
    int64_t c0 = c->conv_dim[0], cl = c->conv_dim[c->n_conv - 1];
    m->gn_w = GET("feature_extractor.conv_layers.0.layer_norm.weight", ENCODER_INIT_GAIN, 1, 1, c0);
    m->gn_b = GET("feature_extractor.conv_layers.0.layer_norm.bias", ENCODER_INIT_BIAS, 1, 1, c0);
    m->fp_ln_w = GET("feature_projection.layer_norm.weight", ENCODER_INIT_GAIN, 1, 1, cl);
    m->fp_ln_b = GET("feature_projection.layer_norm.bias", ENCODER_INIT_BIAS, 1, 1, cl);
    m->fp_w = GET("feature_projection.projection.weight", ENCODER_INIT_MATRIX, 1, 0, D, cl);
    m->fp_b = GET("feature_projection.projection.bias", ENCODER_INIT_BIAS, 1, 1, D);
    int pn = (!s->seeded && !weights_has(s->w, pos_g_names[0])) ? 1 : 0;
    if (pos_conv_weight(m, s, pos_g_names[pn], pos_v_names[pn]) == ENC_ENOMEM)
        return ENC_ENOMEM;
    m->pos_b = GET("encoder.pos_conv_embed.conv.bias", ENCODER_INIT_BIAS, 1, 1, D);
    m->enc_ln_w = GET("encoder.layer_norm.weight", ENCODER_INIT_GAIN, 1, 1, D);
    m->enc_ln_b = GET("encoder.layer_norm.bias", ENCODER_INIT_BIAS, 1, 1, D);
    m->layers = xcalloc((size_t)(c->n_layers > 0 ? c->n_layers : 1), sizeof(*m->layers));
    for (int64_t l = 0; l < c->n_layers; l++) {
        struct w2v_layer *L = &m->layers[l];
        struct {
            const char *suffix;
            struct tensor **t;
            int mat;
            int64_t rows, cols;
            enum encoder_init init;
        } p[] = {
            {"attention.q_proj.weight", &L->q_w, 1, D, D, ENCODER_INIT_MATRIX},
            {"attention.q_proj.bias", &L->q_b, 0, D, 0, ENCODER_INIT_BIAS},
            {"attention.k_proj.weight", &L->k_w, 1, D, D, ENCODER_INIT_MATRIX},
            {"attention.k_proj.bias", &L->k_b, 0, D, 0, ENCODER_INIT_BIAS},
            {"attention.v_proj.weight", &L->v_w, 1, D, D, ENCODER_INIT_MATRIX},
            {"attention.v_proj.bias", &L->v_b, 0, D, 0, ENCODER_INIT_BIAS},
            {"attention.out_proj.weight", &L->o_w, 1, D, D, ENCODER_INIT_MATRIX},
            {"attention.out_proj.bias", &L->o_b, 0, D, 0, ENCODER_INIT_BIAS},
            {"layer_norm.weight", &L->ln1_w, 0, D, 0, ENCODER_INIT_GAIN},
            {"layer_norm.bias", &L->ln1_b, 0, D, 0, ENCODER_INIT_BIAS},
            {"feed_forward.intermediate_dense.weight", &L->ff1_w, 1, F, D, ENCODER_INIT_MATRIX},
            {"feed_forward.intermediate_dense.bias", &L->ff1_b, 0, F, 0, ENCODER_INIT_BIAS},
            {"feed_forward.output_dense.weight", &L->ff2_w, 1, D, F, ENCODER_INIT_MATRIX},
            {"feed_forward.output_dense.bias", &L->ff2_b, 0, D, 0, ENCODER_INIT_BIAS},
            {"final_layer_norm.weight", &L->ln2_w, 0, D, 0, ENCODER_INIT_GAIN},
            {"final_layer_norm.bias", &L->ln2_b, 0, D, 0, ENCODER_INIT_BIAS},
        };
        for (size_t i = 0; i < sizeof(p) / sizeof(p[0]); i++) {
            snprintf(name, sizeof(name), "encoder.layers.%lld.%s", (long long)l, p[i].suffix);
            if (p[i].mat)
                *p[i].t = GET(name, p[i].init, 1, 0, p[i].rows, p[i].cols);
            else
                *p[i].t = GET(name, p[i].init, 1, 1, p[i].rows);
        }
    }
    /* Present in the HF checkpoint, unused in eval: bind it so that it is
     * not reported as unexpected; write it into model files. */
    if (s->seeded ? s->writer != NULL : weights_has(s->w, "masked_spec_embed"))
        (void)GET("masked_spec_embed", ENCODER_INIT_GAIN, 1, 1, c->hidden);
    return s->failed ? ENC_EINVAL : 0;
}

static const char *const w2v_prefixes[] = {"", "wav2vec2.", "weights.", "weights.wav2vec2."};

int wav2vec2_load(struct backend *be, struct ckpt *const *cks, int n_cks, struct wav2vec2 **out)
{
    *out = NULL;
    if (n_cks < 1)
        return log_error_rc(ENC_EINVAL, "no checkpoint");
    struct wav2vec2 *m = xcalloc(1, sizeof(*m));
    m->be = be;
    m->w = weights_new(be, cks, n_cks);
    const char *prefix = NULL;
    for (size_t i = 0; i < sizeof(w2v_prefixes) / sizeof(w2v_prefixes[0]); i++) {
        weights_set_prefix(m->w, w2v_prefixes[i]);
        if (weights_has(m->w, "feature_projection.projection.weight")) {
            prefix = w2v_prefixes[i];
            break;
        }
    }
    int rc;
    if (!prefix) {
        rc = log_error_rc(ENC_EINVAL,
                          "'%s': no wav2vec2 weights "
                          "('feature_projection.projection.weight' not found)",
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
    rc = bind_all(m, &m->src, weights_has(m->w, "feature_extractor.conv_layers.0.conv.bias"));
    int frc = weights_finish(m->w, prefix);
    if (rc == 0)
        rc = frc;
    if (rc < 0)
        goto fail;
    log_debug("%d convs x %lld ch, hidden %lld, %lld layers x %lld heads, ffn %lld, "
              "pos conv k %lld g %lld",
              m->cfg.n_conv, (long long)m->cfg.conv_dim[0], (long long)m->cfg.hidden,
              (long long)m->cfg.n_layers, (long long)m->cfg.n_heads, (long long)m->cfg.ffn,
              (long long)m->cfg.pos_kernel, (long long)m->cfg.pos_groups);
    *out = m;
    return 0;
fail:
    wav2vec2_destroy(&m);
    return rc;
}

int wav2vec2_init_random(struct backend *be, const struct wav2vec2_config *cfg, uint64_t seed,
                         struct wav2vec2 **out)
{
    *out = NULL;
    int rc = config_check(cfg);
    if (rc < 0)
        return rc;
    struct wav2vec2 *m = xcalloc(1, sizeof(*m));
    m->be = be;
    m->cfg = *cfg;
    m->src.be = be;
    m->src.seeded = 1;
    m->src.seed = seed;
    rc = bind_all(m, &m->src, 0);
    if (rc < 0) {
        wav2vec2_destroy(&m);
        return rc == ENC_EINVAL ? ENC_ENOMEM : rc;
    }
    *out = m;
    return 0;
}

void wav2vec2_destroy(struct wav2vec2 **mp)
{
    struct wav2vec2 *m = mp ? *mp : NULL;
    if (!m)
        return;
    encoder_src_release(&m->src);
    weights_destroy(&m->w);
    free(m->layers);
    free(m);
    *mp = NULL;
}

/* ---- tiny model files ---- */

int wav2vec2_write_random(const char *path, const struct wav2vec2_config *cfg, uint64_t seed)
{
    int rc = config_check(cfg);
    if (rc < 0)
        return rc;
    struct backend *be = backend_cpu_new(1);
    if (!be)
        return log_error_rc(ENC_ENOMEM, "cannot open a cpu backend");
    struct st_writer *wr = st_writer_new();
    struct wav2vec2 *m = xcalloc(1, sizeof(*m));
    m->be = be;
    m->cfg = *cfg;
    m->src.be = be;
    m->src.seeded = 1;
    m->src.seed = seed;
    m->src.writer = wr;
    rc = bind_all(m, &m->src, 0);
    if (rc == 0) {
        char json[1024], dims[3][128];
        for (int a = 0; a < 3; a++) {
            const int64_t *v = a == 0   ? cfg->conv_dim
                               : a == 1 ? cfg->conv_kernel
                                        : cfg->conv_stride;
            size_t o = 0;
            for (int i = 0; i < cfg->n_conv && o < sizeof(dims[a]); i++)
                o += (size_t)snprintf(dims[a] + o, sizeof(dims[a]) - o, "%s%lld", i ? ", " : "",
                                      (long long)v[i]);
        }
        snprintf(json, sizeof(json),
                 "{\"model_type\": \"wav2vec2\", \"conv_bias\": false, \"conv_dim\": [%s], "
                 "\"conv_kernel\": [%s], \"conv_stride\": [%s], \"do_stable_layer_norm\": false, "
                 "\"feat_extract_norm\": \"group\", \"hidden_act\": \"gelu\", "
                 "\"hidden_size\": %lld, \"intermediate_size\": %lld, \"layer_norm_eps\": 1e-05, "
                 "\"num_attention_heads\": %lld, \"num_hidden_layers\": %lld, "
                 "\"num_conv_pos_embeddings\": %lld, \"num_conv_pos_embedding_groups\": %lld}",
                 dims[0], dims[1], dims[2], (long long)cfg->hidden, (long long)cfg->ffn,
                 (long long)cfg->n_heads, (long long)cfg->n_layers, (long long)cfg->pos_kernel,
                 (long long)cfg->pos_groups);
        st_writer_meta(wr, "config", json);
        st_writer_meta(wr, "format", "pt");
        rc = st_writer_write(wr, path);
    } else {
        rc = log_error_rc(ENC_EIO, "cannot build the model to write '%s'", path);
    }
    wav2vec2_destroy(&m);
    st_writer_destroy(&wr);
    backend_destroy(&be);
    return rc;
}

int wav2vec2_write_tiny(const char *path, uint64_t seed)
{
    struct wav2vec2_config c;
    wav2vec2_config_tiny(&c);
    return wav2vec2_write_random(path, &c, seed);
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

static int encoder_layer(struct wav2vec2 *m, const struct w2v_layer *L, struct tensor *h, int64_t T)
{
    struct backend *be = m->be;
    const struct wav2vec2_config *c = &m->cfg;
    int64_t D = c->hidden, H = c->n_heads, hd = D / H;
    struct tensor *q = NULL, *k = NULL, *v = NULL, *a = NULL, *o = NULL, *f = NULL;
    int rc = 0;
    NEW(q, T, D);
    NEW(k, T, D);
    NEW(v, T, D);
    NEW(a, T, D);
    NEW(o, T, D);
    NEW(f, T, c->ffn);
    CHECK(backend_linear(be, q, h, L->q_w, L->q_b));
    CHECK(backend_linear(be, k, h, L->k_w, L->k_b));
    CHECK(backend_linear(be, v, h, L->v_w, L->v_b));
    struct tensor q4 = tensor_view_shape(q, 0, 1, T, H, hd);
    struct tensor k4 = tensor_view_shape(k, 0, 1, T, H, hd);
    struct tensor v4 = tensor_view_shape(v, 0, 1, T, H, hd);
    struct tensor a4 = tensor_view_shape(a, 0, 1, T, H, hd);
    CHECK(backend_attention(be, &a4, &q4, &k4, &v4, (float)(1.0 / sqrt((double)hd))));
    CHECK(backend_linear(be, o, a, L->o_w, L->o_b));
    CHECK(backend_add(be, h, h, o));
    CHECK(backend_layer_norm(be, h, h, L->ln1_w, L->ln1_b, c->eps));
    CHECK(backend_linear(be, f, h, L->ff1_w, L->ff1_b));
    CHECK(backend_gelu_erf(be, f, f));
    CHECK(backend_linear(be, o, f, L->ff2_w, L->ff2_b));
    CHECK(backend_add(be, h, h, o));
    CHECK(backend_layer_norm(be, h, h, L->ln2_w, L->ln2_b, c->eps));
out:
    tensor_destroy(&q);
    tensor_destroy(&k);
    tensor_destroy(&v);
    tensor_destroy(&a);
    tensor_destroy(&o);
    tensor_destroy(&f);
    return rc;
}

int wav2vec2_forward_ex(struct wav2vec2 *m, const float *samples, int64_t n, int normalize,
                        float *input_values, float *conv_features, float *out, int64_t *n_frames)
{
    struct backend *be = m->be;
    const struct wav2vec2_config *c = &m->cfg;
    int64_t T = wav2vec2_frames_cfg(c, n), D = c->hidden;
    if (n_frames)
        *n_frames = T;
    if (T <= 0)
        return log_error_rc(ENC_EINVAL,
                            "audio slice of %lld samples is shorter than "
                            "one frame",
                            (long long)n);
    struct tensor *cur = NULL, *y = NULL, *t = NULL, *h = NULL, *pc = NULL;
    int rc = 0;
    float *xv = xmalloc((size_t)n * sizeof(float));
    if (normalize)
        wav2vec2_normalize(samples, n, xv);
    else
        memcpy(xv, samples, (size_t)n * sizeof(float));
    if (input_values)
        memcpy(input_values, xv, (size_t)n * sizeof(float));
    cur = backend_tensor_from_host(be, DTYPE_F32, 4, (int64_t[]){1, 1, 1, n}, xv, 0);
    if (!cur) {
        rc = log_error_rc(ENC_ENOMEM, "out of backend memory");
        goto out;
    }

    /* Feature extractor. */
    int64_t len = n, cin = 1;
    for (int i = 0; i < c->n_conv; i++) {
        int64_t cout = c->conv_dim[i], k = c->conv_kernel[i], s = c->conv_stride[i];
        int64_t lout = (len - k) / s + 1;
        NEW(y, cout, 1, 1, lout);
        struct tensor wv = tensor_view_shape(m->conv_w[i], 0, cout, cin, 1, 1, k);
        struct conv_params cp = {.stride = {1, 1, (int)s}, .groups = 1};
        CHECK(backend_conv3d(be, y, cur, &wv, m->conv_b[i], &cp));
        tensor_destroy(&cur);
        if (i == 0) {
            /* GroupNorm with one group per channel: normalise each row over
             * time, then the per-channel affine along rows of [T0, C]. */
            struct tensor y2 = tensor_view_shape(y, 0, cout, lout);
            CHECK(backend_layer_norm(be, &y2, &y2, NULL, NULL, c->eps));
            NEW(t, lout, cout);
            CHECK(backend_permute(be, t, &y2, (int[]){1, 0}));
            CHECK(backend_mul(be, t, t, m->gn_w));
            CHECK(backend_add(be, t, t, m->gn_b));
            CHECK(backend_gelu_erf(be, t, t));
            CHECK(backend_permute(be, &y2, t, (int[]){1, 0}));
            tensor_destroy(&t);
        } else {
            CHECK(backend_gelu_erf(be, y, y));
        }
        cur = y;
        y = NULL;
        len = lout;
        cin = cout;
    }

    /* [C, T] -> [T, C]: the conv features. */
    NEW(t, T, cin);
    struct tensor cur2 = tensor_view_shape(cur, 0, cin, T);
    CHECK(backend_permute(be, t, &cur2, (int[]){1, 0}));
    tensor_destroy(&cur);
    if (conv_features)
        CHECK(backend_download(be, conv_features, t, (size_t)(T * cin) * sizeof(float)));

    /* Feature projection. */
    CHECK(backend_layer_norm(be, t, t, m->fp_ln_w, m->fp_ln_b, c->eps));
    NEW(h, T, D);
    CHECK(backend_linear(be, h, t, m->fp_w, m->fp_b));
    tensor_destroy(&t);

    /* Positional conv embedding. */
    int64_t K = c->pos_kernel;
    NEW(t, D, 1, 1, T);
    NEW(pc, D, 1, 1, T);
    struct tensor t_dt = tensor_view_shape(t, 0, D, T);
    CHECK(backend_permute(be, &t_dt, h, (int[]){1, 0}));
    struct conv_params pp = {.stride = {1, 1, 1},
                             .pad_front = {0, 0, (int)(K / 2)},
                             .pad_back = {0, 0, (int)(K / 2 - (K % 2 == 0 ? 1 : 0))},
                             .groups = (int)c->pos_groups};
    CHECK(backend_conv3d(be, pc, t, m->pos_w, m->pos_b, &pp));
    struct tensor pc_dt = tensor_view_shape(pc, 0, D, T);
    struct tensor t_td = tensor_view_shape(t, 0, T, D);
    CHECK(backend_permute(be, &t_td, &pc_dt, (int[]){1, 0}));
    CHECK(backend_gelu_erf(be, &t_td, &t_td));
    CHECK(backend_add(be, h, h, &t_td));
    tensor_destroy(&t);
    tensor_destroy(&pc);
    CHECK(backend_layer_norm(be, h, h, m->enc_ln_w, m->enc_ln_b, c->eps));

    for (int64_t l = 0; l < c->n_layers; l++)
        CHECK(encoder_layer(m, &m->layers[l], h, T));
    CHECK(backend_download(be, out, h, (size_t)(T * D) * sizeof(float)));
out:
    free(xv);
    tensor_destroy(&cur);
    tensor_destroy(&y);
    tensor_destroy(&t);
    tensor_destroy(&h);
    tensor_destroy(&pc);
    return rc;
}

int wav2vec2_forward(struct wav2vec2 *m, const float *samples, int64_t n, float *out,
                     int64_t *n_frames)
{
    return wav2vec2_forward_ex(m, samples, n, 1, NULL, NULL, out, n_frames);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double wav2vec2_bench(struct wav2vec2 *m, double audio_seconds, int reps)
{
    int64_t n = (int64_t)(audio_seconds * 16000.0);
    int64_t T = wav2vec2_frames_cfg(&m->cfg, n);
    if (T <= 0 || reps < 1)
        return -1;
    float *x = xmalloc((size_t)n * sizeof(float));
    float *o = xmalloc((size_t)(T * m->cfg.hidden) * sizeof(float));
    encoder_randn(12345, ENCODER_INIT_EMBED, 1, 1, x, n);
    double r = -1;
    if (wav2vec2_forward(m, x, n, o, NULL) == 0) {
        double t0 = now_s();
        int i = 0;
        for (; i < reps; i++)
            if (wav2vec2_forward(m, x, n, o, NULL) < 0)
                break;
        double dt = now_s() - t0;
        if (i == reps && dt > 0)
            r = audio_seconds * reps / dt;
    }
    free(x);
    free(o);
    return r;
}
