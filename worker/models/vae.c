/*
 * vae.c - loading the Wan VAE: the configuration read off tensor shapes,
 * parameter binding, the latent normalisation constants, the y builder.
 *
 * The layer lists follow the checkpoint: `decoder.upsamples.<i>` and
 * `encoder.downsamples.<i>` are enumerated until an index has no tensor,
 * each classified by its keys (residual.* = residual block, time_conv =
 * temporal resample, resample.1 alone = spatial resample, to_qkv =
 * attention); widths come from the weight shapes and each block's input
 * width must equal the previous block's output width. Every parameter is
 * then requested with its full expected shape, so weights_finish() names
 * everything missing or misshapen. Cache slots are numbered in execution
 * order.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "vae_impl.h"

const float vae_latents_mean[VAE_Z_DIM] = {
    -0.7571f, -0.7089f, -0.9113f, 0.1075f,  -0.1745f, 0.9653f,  -0.1517f, 1.5508f,
    0.4134f,  -0.0715f, 0.5517f,  -0.3632f, -0.1922f, -0.9497f, 0.2503f,  -0.2921f,
};
const float vae_latents_std[VAE_Z_DIM] = {
    2.8184f, 1.4541f, 2.3275f, 2.6558f, 1.2196f, 1.7708f, 2.6052f, 2.0743f,
    3.2687f, 2.1526f, 2.8652f, 1.5579f, 1.6382f, 1.1253f, 2.8251f, 1.9160f,
};

#define NAME_MAX_LEN 192

/* dim `axis` of the tensor name resolves to, or fallback when absent. */
static int shape_of(const struct weights *w, const char *name, int axis, int fallback)
{
    const struct ckpt_tensor *t = weights_find(w, name);
    if (!t || axis >= t->ndim)
        return fallback;
    return (int)t->shape[axis];
}

/* dst = a b (truncated names simply find no tensor). */
static void join(char *dst, size_t n, const char *a, const char *b)
{
    if (snprintf(dst, n, "%s%s", a, b) >= (int)n)
        dst[n - 1] = 0;
}

static int has_key(const struct weights *w, const char *base, const char *suffix)
{
    char name[NAME_MAX_LEN];
    join(name, sizeof(name), base, suffix);
    return weights_has(w, name);
}

static int64_t numel_of(const struct tensor *t)
{
    return t ? tensor_numel(t) : 0;
}

int vae_bind_conv(struct weights *w, const char *name, int cout, int cin, int kt, int kh, int kw,
                  struct vae_conv *cv)
{
    char wn[NAME_MAX_LEN], bn[NAME_MAX_LEN];
    snprintf(wn, sizeof(wn), "%s.weight", name);
    snprintf(bn, sizeof(bn), "%s.bias", name);
    memset(cv, 0, sizeof(*cv));
    cv->slot = -1;
    cv->cout = cout;
    cv->cin = cin;
    cv->kt = kt ? kt : 1;
    cv->kh = kh;
    cv->kw = kw;
    struct tensor *t = kt ? weights_get_shape(w, wn, cout, cin, kt, kh, kw)
                          : weights_get_shape(w, wn, cout, cin, kh, kw);
    cv->b = weights_get_f32_shape(w, bn, cout);
    if (!t || !cv->b)
        return ENC_EINVAL;
    cv->w = tensor_view_shape(t, 0, cout, cin, cv->kt, kh, kw);
    return 0;
}

/* A gain [c, 1, 1, 1] (or [c, 1, 1] with images) viewed as (c). */
static int bind_gamma(struct weights *w, const char *name, int c, int images, struct tensor *g)
{
    struct tensor *t = images ? weights_get_f32_shape(w, name, c, 1, 1)
                              : weights_get_f32_shape(w, name, c, 1, 1, 1);
    memset(g, 0, sizeof(*g));
    if (!t)
        return ENC_EINVAL;
    *g = tensor_view_shape(t, 0, c);
    return 0;
}

static int64_t conv_params(const struct vae_conv *cv)
{
    return (int64_t)cv->cout * cv->cin * cv->kt * cv->kh * cv->kw + numel_of(cv->b);
}

/* Binds block `base` (e.g. "decoder.upsamples.3"), its kind read off its
 * keys; returns its parameter count, -1 when no such block exists, -2 when
 * something is missing, misshapen or does not chain with cin_expected. */
static int64_t bind_block(struct weights *w, const char *base, struct vae_block *b, int *slot,
                          int cin_expected, int is_decoder)
{
    char n[NAME_MAX_LEN];
    int64_t np = 0;
    int rc = 0;
    memset(b, 0, sizeof(*b));
    b->c1.slot = b->c2.slot = b->tc.slot = b->sc.slot = -1;
    if (has_key(w, base, ".residual.0.gamma") || has_key(w, base, ".residual.2.weight")) {
        b->kind = VAE_BLOCK_RES;
        join(n, sizeof(n), base, ".residual.0.gamma");
        b->cin = shape_of(w, n, 0, cin_expected);
        join(n, sizeof(n), base, ".residual.2.weight");
        b->cout = shape_of(w, n, 0, b->cin);
        join(n, sizeof(n), base, ".residual.0.gamma");
        rc |= bind_gamma(w, n, b->cin, 0, &b->g0);
        join(n, sizeof(n), base, ".residual.2");
        rc |= vae_bind_conv(w, n, b->cout, b->cin, 3, 3, 3, &b->c1);
        b->c1.slot = (*slot)++;
        join(n, sizeof(n), base, ".residual.3.gamma");
        rc |= bind_gamma(w, n, b->cout, 0, &b->g1);
        join(n, sizeof(n), base, ".residual.6");
        rc |= vae_bind_conv(w, n, b->cout, b->cout, 3, 3, 3, &b->c2);
        b->c2.slot = (*slot)++;
        b->has_shortcut = b->cin != b->cout;
        if (b->has_shortcut) {
            join(n, sizeof(n), base, ".shortcut");
            rc |= vae_bind_conv(w, n, b->cout, b->cin, 1, 1, 1, &b->sc);
            np += conv_params(&b->sc);
        }
        np += b->cin + b->cout + conv_params(&b->c1) + conv_params(&b->c2);
    } else if (has_key(w, base, ".to_qkv.weight") || has_key(w, base, ".norm.gamma")) {
        b->kind = VAE_BLOCK_ATTN;
        join(n, sizeof(n), base, ".norm.gamma");
        b->cin = b->cout = shape_of(w, n, 0, cin_expected);
        rc |= bind_gamma(w, n, b->cin, 1, &b->g0);
        join(n, sizeof(n), base, ".to_qkv");
        rc |= vae_bind_conv(w, n, 3 * b->cin, b->cin, 0, 1, 1, &b->qkv);
        join(n, sizeof(n), base, ".proj");
        rc |= vae_bind_conv(w, n, b->cin, b->cin, 0, 1, 1, &b->proj);
        np += b->cin + conv_params(&b->qkv) + conv_params(&b->proj);
    } else if (has_key(w, base, ".resample.1.weight") || has_key(w, base, ".time_conv.weight")) {
        int temporal = has_key(w, base, ".time_conv.weight");
        join(n, sizeof(n), base, ".resample.1.weight");
        b->cin = shape_of(w, n, 1, cin_expected);
        if (is_decoder) {
            b->kind = temporal ? VAE_BLOCK_UP3D : VAE_BLOCK_UP2D;
            b->cout = b->cin / 2;
        } else {
            b->kind = temporal ? VAE_BLOCK_DOWN3D : VAE_BLOCK_DOWN2D;
            b->cout = b->cin;
        }
        join(n, sizeof(n), base, ".resample.1");
        rc |= vae_bind_conv(w, n, b->cout, b->cin, 0, 3, 3, &b->rs);
        np += conv_params(&b->rs);
        if (temporal) {
            join(n, sizeof(n), base, ".time_conv");
            rc |= vae_bind_conv(w, n, is_decoder ? 2 * b->cin : b->cin, b->cin, 3, 1, 1, &b->tc);
            b->tc.slot = (*slot)++;
            np += conv_params(&b->tc);
        }
    } else {
        return -1; /* no such block */
    }
    if (b->cin != cin_expected)
        log_error("'%s' takes %d channels but the previous layer gives %d", base, b->cin,
                  cin_expected);
    if (rc || b->cin != cin_expected || b->cout <= 0)
        return -2;
    return np;
}

static void stack_free(struct vae_stack *s)
{
    free(s->blocks);
    s->blocks = NULL;
}

/*
 * Binds "<side>.conv1", the blocks and "<side>.head". Encoder order:
 * downsamples then middle; decoder: middle then upsamples.
 */
static int bind_stack(struct weights *w, struct vae *vae, int is_decoder, struct vae_stack *s)
{
    const char *side = is_decoder ? "decoder" : "encoder";
    const char *list = is_decoder ? "upsamples" : "downsamples";
    char n[NAME_MAX_LEN], base[NAME_MAX_LEN];
    int bad = 0, slot = 0, cap = 8;
    int64_t np = 0;

    memset(s, 0, sizeof(*s));
    s->present = 1;
    s->time_factor = 1;
    s->space_factor = 1;
    s->blocks = xcalloc((size_t)cap, sizeof(*s->blocks));

    int cin = is_decoder ? vae->z : 3;
    snprintf(n, sizeof(n), "%s.conv1.weight", side);
    int c0 = shape_of(w, n, 0, -1);
    if (c0 <= 0) {
        log_error("'%s' missing: cannot read the %s's widths", n, side);
        return ENC_EINVAL;
    }
    snprintf(n, sizeof(n), "%s.conv1", side);
    bad |= vae_bind_conv(w, n, c0, cin, 3, 3, 3, &s->conv_in) != 0;
    s->conv_in.slot = slot++;
    np += conv_params(&s->conv_in);

    int c = c0;
    for (int pass = 0; pass < 2; pass++) {
        int middle = (pass == 0) == is_decoder;
        for (int i = 0;; i++) {
            if (middle && i == 3)
                break;
            snprintf(base, sizeof(base), "%s.%s.%d", side, middle ? "middle" : list, i);
            if (s->n_blocks == cap) {
                cap *= 2;
                s->blocks = xrealloc(s->blocks, (size_t)cap * sizeof(*s->blocks));
            }
            struct vae_block *b = &s->blocks[s->n_blocks];
            int64_t r = bind_block(w, base, b, &slot, c, is_decoder);
            if (r == -1) {
                if (middle) {
                    log_error("block '%s' missing", base);
                    bad = 1;
                }
                break;
            }
            if (r < 0) {
                bad = 1;
                if (b->cout <= 0)
                    break;
            } else {
                np += r;
            }
            if (middle && (i == 1) != (b->kind == VAE_BLOCK_ATTN)) {
                log_error("block '%s' is not the expected middle block", base);
                bad = 1;
            }
            if (b->kind == VAE_BLOCK_UP3D)
                s->time_factor *= 2;
            if (b->kind == VAE_BLOCK_DOWN3D)
                s->time_factor *= 2;
            if (b->kind != VAE_BLOCK_RES && b->kind != VAE_BLOCK_ATTN)
                s->space_factor *= 2;
            c = b->cout;
            s->n_blocks++;
        }
    }
    snprintf(n, sizeof(n), "%s.head.0.gamma", side);
    bad |= bind_gamma(w, n, c, 0, &s->head_g) != 0;
    snprintf(n, sizeof(n), "%s.head.2", side);
    bad |= vae_bind_conv(w, n, is_decoder ? 3 : 2 * vae->z, c, 3, 3, 3, &s->head) != 0;
    s->head.slot = slot++;
    np += c + conv_params(&s->head);
    s->n_slots = slot;
    vae->n_params += np;
    return bad ? ENC_EINVAL : 0;
}

/* The key prefix of the checkpoints: "", "model." (loader) or "weights." (fixture). */
static const char *detect_prefix(struct ckpt *const *cks, int n)
{
    static const char *const prefixes[] = {"", "model.", "weights."};
    static const char *const probes[] = {"decoder.conv1.weight", "encoder.conv1.weight",
                                         "conv2.weight", "conv1.weight"};
    char name[NAME_MAX_LEN];
    for (size_t p = 0; p < sizeof(prefixes) / sizeof(prefixes[0]); p++)
        for (size_t q = 0; q < sizeof(probes) / sizeof(probes[0]); q++)
            for (int i = 0; i < n; i++) {
                snprintf(name, sizeof(name), "%s%s", prefixes[p], probes[q]);
                if (ckpt_find(cks[i], name))
                    return prefixes[p];
            }
    return "";
}

int vae_load(struct backend *be, struct ckpt *const *cks, int n, unsigned parts, struct vae **out)
{
    struct vae *vae = xcalloc(1, sizeof(*vae));
    const char *prefix = detect_prefix(cks, n);
    char scope[4 * NAME_MAX_LEN];
    int rc = 0;

    *out = NULL;
    if (!(parts & VAE_PART_ALL)) {
        free(vae);
        return log_error_rc(ENC_EINVAL, "no part asked for");
    }
    vae->be = be;
    vae->wts = weights_new(be, cks, n);
    if (!vae->wts) {
        free(vae);
        return log_error_rc(ENC_ENOMEM, "cannot start the weight binding");
    }
    if (*prefix)
        weights_set_prefix(vae->wts, prefix);

    /* z from the top-level 1x1x1 convs. */
    int z = -1;
    if (parts & VAE_PART_DECODER)
        z = shape_of(vae->wts, "conv2.weight", 0, -1);
    if (z <= 0 && (parts & VAE_PART_ENCODER)) {
        int z2 = shape_of(vae->wts, "conv1.weight", 0, -1);
        z = z2 > 0 ? z2 / 2 : -1;
    }
    if (z <= 0)
        z = shape_of(vae->wts, "decoder.conv1.weight", 1, VAE_Z_DIM);
    if (z != VAE_Z_DIM) {
        rc = log_error_rc(ENC_EINVAL, "latent channels %d, only %d supported", z, VAE_Z_DIM);
        goto fail;
    }
    vae->z = z;
    for (int c = 0; c < VAE_Z_DIM; c++)
        vae->inv_std[c] = 1.0f / vae_latents_std[c];

    int bad = 0;
    scope[0] = 0;
    if (parts & VAE_PART_DECODER) {
        bad |= vae_bind_conv(vae->wts, "conv2", z, z, 1, 1, 1, &vae->post_quant) != 0;
        vae->n_params += conv_params(&vae->post_quant);
        bad |= bind_stack(vae->wts, vae, 1, &vae->dec) != 0;
        snprintf(scope + strlen(scope), sizeof(scope) - strlen(scope), "%sdecoder.,%sconv2.",
                 prefix, prefix);
    }
    if (parts & VAE_PART_ENCODER) {
        bad |= vae_bind_conv(vae->wts, "conv1", 2 * z, 2 * z, 1, 1, 1, &vae->quant) != 0;
        vae->n_params += conv_params(&vae->quant);
        bad |= bind_stack(vae->wts, vae, 0, &vae->enc) != 0;
        snprintf(scope + strlen(scope), sizeof(scope) - strlen(scope), "%s%sencoder.,%sconv1.",
                 scope[0] ? "," : "", prefix, prefix);
    }
    rc = weights_finish(vae->wts, scope);
    if (bad || rc) {
        rc = log_error_rc(ENC_EINVAL, "'%s': VAE checkpoint refused (%d missing or misshapen)",
                          n > 0 ? ckpt_path(cks[n - 1]) : "?", weights_missing_count(vae->wts));
        goto fail;
    }
    if (vae->dec.present && vae->dec.time_factor < 2) {
        rc = log_error_rc(ENC_EINVAL, "decoder without a temporal upsample");
        goto fail;
    }
    if (vae->dec.present)
        vae->receptive = vae_receptive_field_compute(vae);
    log_debug("%lld parameters, decoder %d blocks, encoder %d blocks, receptive field %d",
              (long long)vae->n_params, vae->dec.n_blocks, vae->enc.n_blocks, vae->receptive);
    *out = vae;
    return 0;
fail:
    vae_destroy(&vae);
    return rc;
}

int vae_open(struct backend *be, const char *path, unsigned parts, struct vae **out)
{
    struct ckpt *ck = NULL;
    int rc = ckpt_open(path, &ck);
    if (rc)
        return rc;
    rc = vae_load(be, &ck, 1, parts, out);
    if (rc) {
        ckpt_close(&ck);
        return rc;
    }
    (*out)->own_ck = ck;
    return 0;
}

void vae_destroy(struct vae **pv)
{
    struct vae *vae = *pv;
    if (!vae)
        return;
    stack_free(&vae->dec);
    stack_free(&vae->enc);
    weights_destroy(&vae->wts);
    ckpt_close(&vae->own_ck);
    free(vae);
    *pv = NULL;
}

void vae_get_info(const struct vae *vae, struct vae_info *info)
{
    memset(info, 0, sizeof(*info));
    info->z_dim = vae->z;
    info->dec_blocks = vae->dec.n_blocks;
    info->enc_blocks = vae->enc.n_blocks;
    int u = 0, d = 0;
    for (int f = vae->dec.time_factor; f > 1; f /= 2)
        u++;
    for (int f = vae->enc.time_factor; f > 1; f /= 2)
        d++;
    info->dec_time_up = u;
    info->enc_time_down = d;
    info->spatial = vae->dec.present ? vae->dec.space_factor : vae->enc.space_factor;
    for (int i = 0; i < vae->dec.n_blocks; i++)
        if (vae->dec.blocks[i].cout > info->dec_width)
            info->dec_width = vae->dec.blocks[i].cout;
    info->n_params = vae->n_params;
}

int vae_receptive_field(const struct vae *vae)
{
    return vae->receptive;
}

int64_t vae_frames_of_latent(const struct vae *vae, int64_t k, int *n)
{
    int64_t f = vae->dec.present ? vae->dec.time_factor : vae->enc.time_factor;
    if (k <= 0) {
        *n = 1;
        return 0;
    }
    *n = (int)f;
    return (k - 1) * f + 1;
}

void vae_make_y(const float *lat, int z, int64_t F, int64_t h, int64_t w, float *y)
{
    int64_t plane = F * h * w, hw = h * w;
    /* The pixel mask m (1 for frame 0), frame 0 repeated 4 times in front,
     * folded as (F, 4): channel c of latent f is m84[4f + c], and m84[j] is
     * frame 0 (= 1) for j < 4, frame j - 3 (= 0) after. */
    for (int c = 0; c < 4; c++)
        for (int64_t f = 0; f < F; f++) {
            float v = 4 * f + c < 4 ? 1.0f : 0.0f;
            float *p = y + (int64_t)c * plane + f * hw;
            for (int64_t i = 0; i < hw; i++)
                p[i] = v;
        }
    memcpy(y + 4 * plane, lat, (size_t)z * (size_t)plane * sizeof(float));
}
