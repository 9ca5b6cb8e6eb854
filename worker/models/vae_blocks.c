/*
 * vae_blocks.c - the Wan VAE's building blocks on a cached stream: causal
 * 3-tap convolutions, RMS norm over channels, residual and attention
 * blocks, the spatial/temporal resamples, and the conv1 -> blocks -> head
 * stack that the encoder and decoder share.
 *
 * Every op is a backend_*() call; the layout changes the backend lacks as
 * ops are composed from permute/copy/add:
 * - RMS norm over channels of [C, N]: permute to [N, C], backend_rms_norm
 *   over the last dim (x / max(|x|, 1e-12) * sqrt(C) = x * rsqrt(mean x^2),
 *   with a tiny eps standing in for the 1e-12 clamp), permute back.
 * - cached causal conv: the stream [cache (2 frames), new frames] is
 *   assembled frame-major [2+T, C, HW] (contiguous copies), permuted to
 *   [C, 2+T, HW] and convolved with no temporal padding. A zero cache is
 *   the first chunk's zero padding, so every 3-tap conv is exactly a
 *   causal conv over its whole input stream, as the original's feat_cache
 *   logic computes it.
 * - nearest x2 upsample: 0 + x broadcast into [2, 2, ...] copies, then a
 *   permute interleaves them (adding 0.0f is exact), in channel chunks so
 *   the scratch stays small.
 *
 * Invariant: a chunk's results depend only on the chunk and the caches, so
 * a stream is bit-reproducible chunk by chunk (segment decoding relies on
 * this).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "vae_impl.h"

#define CHECK(expr)                                                                                \
    do {                                                                                           \
        rc = (expr);                                                                               \
        if (rc)                                                                                    \
            goto fail;                                                                             \
    } while (0)

/* Sources of the new frames of a cached conv. */
enum src_layout {
    SRC_CHANNEL_MAJOR = 0, /* [C, T, HW] */
    SRC_CHANNEL_LAST,      /* [T, HW, C] */
};

static const int perm_10[2] = {1, 0};
static const int perm_102[3] = {1, 0, 2};
static const int perm_021[3] = {0, 2, 1};

static struct tensor *new_f32(struct backend *be, int ndim, const int64_t *shape, int *rc)
{
    struct tensor *t = tensor_new(be, DTYPE_F32, ndim, shape);
    if (!t)
        *rc = log_error_rc(ENC_ENOMEM, "out of backend memory for a %d-d activation", ndim);
    return t;
}
#define NEW_F32(be, rcp, ...)                                                                      \
    new_f32((be), (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)),                       \
            (int64_t[]){__VA_ARGS__}, (rcp))

/* eps for rsqrt(mean(x^2) + eps) equivalent to F.normalize's max(|x|, 1e-12). */
static float rms_eps(int64_t c)
{
    return (float)(1e-24 / (double)c);
}

int vae_stream_init(struct vae_stream *st, struct vae *vae, const struct vae_stack *stk)
{
    memset(st, 0, sizeof(*st));
    st->vae = vae;
    st->stk = stk;
    st->cache = xcalloc((size_t)(stk->n_slots > 0 ? stk->n_slots : 1), sizeof(*st->cache));
    return 0;
}

void vae_stream_release(struct vae_stream *st)
{
    if (!st->cache)
        return;
    for (int i = 0; i < st->stk->n_slots; i++)
        tensor_destroy(&st->cache[i]);
    free(st->cache);
    st->cache = NULL;
}

/* conv3d with zero spatial padding k/2 (t padding none) and stride s. */
static int conv_apply(struct backend *be, const struct vae_conv *cv, const struct tensor *x,
                      const int stride[3], const int pf[3], const int pb[3], struct tensor **out)
{
    int rc = 0;
    struct conv_params p = {.groups = 1};
    for (int i = 0; i < 3; i++) {
        p.stride[i] = stride[i];
        p.pad_front[i] = pf[i];
        p.pad_back[i] = pb[i];
    }
    int64_t k[3] = {cv->kt, cv->kh, cv->kw}, o[3];
    for (int i = 0; i < 3; i++) {
        int64_t n = x->shape[1 + i] + pf[i] + pb[i] - k[i];
        if (n < 0)
            return log_error_rc(ENC_EINVAL, "input %lldx%lldx%lld too small for a conv",
                                (long long)x->shape[1], (long long)x->shape[2],
                                (long long)x->shape[3]);
        o[i] = n / stride[i] + 1;
    }
    struct tensor *y = NEW_F32(be, &rc, cv->cout, o[0], o[1], o[2]);
    if (!y)
        return rc;
    rc = backend_conv3d(be, y, x, &cv->w, cv->b, &p);
    if (rc) {
        tensor_destroy(&y);
        return rc;
    }
    *out = y;
    return 0;
}

int vae_pointwise(struct backend *be, const struct vae_conv *cv, const struct tensor *x,
                  struct tensor **out)
{
    static const int one[3] = {1, 1, 1}, zero[3] = {0, 0, 0};
    return conv_apply(be, cv, x, one, zero, zero, out);
}

/* t [N, C] = rms_c(x) (then SiLU when silu) for x [C, ...]: channel-last. */
static int norm_channel_last(struct backend *be, const struct tensor *x, const struct tensor *g,
                             int silu, struct tensor **out)
{
    int rc = 0;
    int64_t c = x->shape[0], n = tensor_numel(x) / c;
    struct tensor xv = tensor_view_shape(x, 0, c, n);
    struct tensor *t = NEW_F32(be, &rc, n, c);
    if (!t)
        return rc;
    CHECK(backend_permute(be, t, &xv, perm_10));
    CHECK(backend_rms_norm(be, t, t, g, rms_eps(c)));
    if (silu)
        CHECK(backend_silu(be, t, t));
    *out = t;
    return 0;
fail:
    tensor_destroy(&t);
    return rc;
}

/*
 * causal_conv() runs the 3-tap (in time) causal conv cv over the stream
 * [cache, new frames] and keeps the last kt-1 stream frames as the cache of
 * slot cv->slot. src holds the T new frames of [cin, T, H, W] in layout lay.
 */
static int causal_conv(struct vae_stream *st, const struct vae_conv *cv, const struct tensor *src,
                       enum src_layout lay, int64_t T, int64_t H, int64_t W, struct tensor **out)
{
    struct backend *be = st->vae->be;
    int rc = 0;
    int64_t c = cv->cin, hw = H * W, n = cv->kt - 1;
    struct tensor *cat = NULL, *xin = NULL;
    struct tensor **cache = &st->cache[cv->slot];

    if (!*cache) {
        *cache = NEW_F32(be, &rc, n, c, hw);
        if (!*cache)
            return rc;
        CHECK(backend_fill(be, *cache, 0.0f));
    }
    cat = NEW_F32(be, &rc, n + T, c, hw);
    if (!cat)
        goto fail;
    struct tensor head = tensor_view_shape(cat, 0, n, c, hw);
    CHECK(backend_copy(be, &head, *cache));
    struct tensor fresh = tensor_view_shape(cat, n * c * hw, T, c, hw);
    if (lay == SRC_CHANNEL_MAJOR) {
        struct tensor sv = tensor_view_shape(src, 0, c, T, hw);
        CHECK(backend_permute(be, &fresh, &sv, perm_102));
    } else {
        struct tensor sv = tensor_view_shape(src, 0, T, hw, c);
        CHECK(backend_permute(be, &fresh, &sv, perm_021));
    }
    struct tensor tail = tensor_view_shape(cat, T * c * hw, n, c, hw);
    CHECK(backend_copy(be, *cache, &tail));
    xin = NEW_F32(be, &rc, c, n + T, H, W);
    if (!xin)
        goto fail;
    struct tensor xv = tensor_view_shape(xin, 0, c, n + T, hw);
    CHECK(backend_permute(be, &xv, cat, perm_102));
    tensor_destroy(&cat);
    {
        const int one[3] = {1, 1, 1}, pad[3] = {0, cv->kh / 2, cv->kw / 2};
        CHECK(conv_apply(be, cv, xin, one, pad, pad, out));
    }
    tensor_destroy(&xin);
    return 0;
fail:
    tensor_destroy(&cat);
    tensor_destroy(&xin);
    return rc;
}

/* silu(rms(x)) then the causal conv cv, x [cin, T, H, W]. */
static int norm_conv(struct vae_stream *st, const struct tensor *x, const struct tensor *g,
                     const struct vae_conv *cv, struct tensor **out)
{
    struct tensor *t = NULL;
    int rc = norm_channel_last(st->vae->be, x, g, 1, &t);
    if (rc)
        return rc;
    rc = causal_conv(st, cv, t, SRC_CHANNEL_LAST, x->shape[1], x->shape[2], x->shape[3], out);
    tensor_destroy(&t);
    return rc;
}

static int res_block(struct vae_stream *st, const struct vae_block *b, const struct tensor *x,
                     struct tensor **out)
{
    struct backend *be = st->vae->be;
    struct tensor *h = NULL, *r1 = NULL, *r2 = NULL;
    int rc = 0;
    if (b->has_shortcut)
        CHECK(vae_pointwise(be, &b->sc, x, &h));
    CHECK(norm_conv(st, x, &b->g0, &b->c1, &r1));
    CHECK(norm_conv(st, r1, &b->g1, &b->c2, &r2));
    tensor_destroy(&r1);
    CHECK(backend_add(be, r2, r2, h ? h : x));
    tensor_destroy(&h);
    *out = r2;
    return 0;
fail:
    tensor_destroy(&h);
    tensor_destroy(&r1);
    tensor_destroy(&r2);
    return rc;
}

/* Single-head self-attention over the H*W positions of each frame. */
static int attn_block(struct backend *be, const struct vae_block *b, const struct tensor *x,
                      struct tensor **out)
{
    struct tensor *t = NULL, *xn = NULL, *qkv = NULL, *qt = NULL, *o = NULL, *oc = NULL, *y = NULL;
    int rc = 0;
    int64_t c = x->shape[0], T = x->shape[1], H = x->shape[2], W = x->shape[3], hw = H * W;

    CHECK(norm_channel_last(be, x, &b->g0, 0, &t));
    xn = NEW_F32(be, &rc, c, T, H, W);
    if (!xn)
        goto fail;
    {
        struct tensor xv = tensor_view_shape(xn, 0, c, T * hw);
        CHECK(backend_permute(be, &xv, t, perm_10));
    }
    tensor_destroy(&t);
    CHECK(vae_pointwise(be, &b->qkv, xn, &qkv));
    tensor_destroy(&xn);
    qt = NEW_F32(be, &rc, 3, T, hw, c);
    if (!qt)
        goto fail;
    {
        static const int p[4] = {0, 2, 3, 1};
        struct tensor v4 = tensor_view_shape(qkv, 0, 3, c, T, hw);
        CHECK(backend_permute(be, qt, &v4, p));
    }
    tensor_destroy(&qkv);
    o = NEW_F32(be, &rc, T, hw, 1, c);
    if (!o)
        goto fail;
    {
        int64_t n = T * hw * c;
        struct tensor q = tensor_view_shape(qt, 0, T, hw, 1, c);
        struct tensor k = tensor_view_shape(qt, n, T, hw, 1, c);
        struct tensor v = tensor_view_shape(qt, 2 * n, T, hw, 1, c);
        CHECK(backend_attention(be, o, &q, &k, &v, (float)(1.0 / sqrt((double)c))));
    }
    tensor_destroy(&qt);
    oc = NEW_F32(be, &rc, c, T, H, W);
    if (!oc)
        goto fail;
    {
        struct tensor ov = tensor_view_shape(o, 0, T * hw, c);
        struct tensor cv = tensor_view_shape(oc, 0, c, T * hw);
        CHECK(backend_permute(be, &cv, &ov, perm_10));
    }
    tensor_destroy(&o);
    CHECK(vae_pointwise(be, &b->proj, oc, &y));
    tensor_destroy(&oc);
    CHECK(backend_add(be, y, y, x));
    *out = y;
    return 0;
fail:
    tensor_destroy(&t);
    tensor_destroy(&xn);
    tensor_destroy(&qkv);
    tensor_destroy(&qt);
    tensor_destroy(&o);
    tensor_destroy(&oc);
    tensor_destroy(&y);
    return rc;
}

/* u [C, T, 2H, 2W] = nearest x2 of x [C, T, H, W] (pixel duplication). */
static int upsample2x(struct backend *be, const struct tensor *x, struct tensor **out)
{
    struct tensor *u = NULL, *zeros = NULL, *tmp = NULL;
    int rc = 0;
    int64_t c = x->shape[0], T = x->shape[1], H = x->shape[2], W = x->shape[3];
    int64_t per_c = T * H * W, cc = (1 << 20) / per_c;
    if (cc < 1)
        cc = 1;
    if (cc > c)
        cc = c;
    u = NEW_F32(be, &rc, c, T, 2 * H, 2 * W);
    zeros = NEW_F32(be, &rc, 4 * cc * per_c);
    tmp = NEW_F32(be, &rc, 4 * cc * per_c);
    if (!u || !zeros || !tmp)
        goto fail;
    CHECK(backend_fill(be, zeros, 0.0f));
    for (int64_t c0 = 0; c0 < c; c0 += cc) {
        static const int p[4] = {2, 0, 3, 1};
        int64_t m = c - c0 < cc ? c - c0 : cc, n = m * per_c;
        struct tensor xv = tensor_view_shape(x, c0 * per_c, n);
        struct tensor zv = tensor_view_shape(zeros, 0, 4 * n);
        struct tensor tv = tensor_view_shape(tmp, 0, 4 * n);
        CHECK(backend_add(be, &tv, &zv, &xv));
        struct tensor t4 = tensor_view_shape(tmp, 0, 2, 2, m * T * H, W);
        struct tensor uv = tensor_view_shape(u, c0 * 4 * per_c, m * T * H, 2, W, 2);
        CHECK(backend_permute(be, &uv, &t4, p));
    }
    tensor_destroy(&zeros);
    tensor_destroy(&tmp);
    *out = u;
    return 0;
fail:
    tensor_destroy(&u);
    tensor_destroy(&zeros);
    tensor_destroy(&tmp);
    return rc;
}

/* Nearest x2 then the 3x3 conv (padding 1) of the resample. */
static int up2d(struct backend *be, const struct vae_block *b, const struct tensor *x,
                struct tensor **out)
{
    struct tensor *u = NULL;
    int rc = upsample2x(be, x, &u);
    if (rc)
        return rc;
    const int one[3] = {1, 1, 1}, pad[3] = {0, 1, 1};
    rc = conv_apply(be, &b->rs, u, one, pad, pad, out);
    tensor_destroy(&u);
    return rc;
}

/*
 * upsample3d: on the stream's first chunk the time conv is skipped and its
 * cache starts as zeros (the original's 'Rep' marker: latent 0 is never
 * temporal history); later chunks run the causal time conv, whose 2C
 * output channels are two frames per input frame (channel half i -> frame
 * 2t + i); then the 2-D upsample.
 */
static int up3d(struct vae_stream *st, const struct vae_block *b, const struct tensor *x,
                struct tensor **out)
{
    struct backend *be = st->vae->be;
    struct tensor *tc = NULL, *y = NULL;
    struct tensor **cache = &st->cache[b->tc.slot];
    int rc = 0;
    int64_t c = x->shape[0], T = x->shape[1], H = x->shape[2], W = x->shape[3];

    if (!*cache) {
        *cache = NEW_F32(be, &rc, b->tc.kt - 1, c, H * W);
        if (!*cache)
            return rc;
        CHECK(backend_fill(be, *cache, 0.0f));
        return up2d(be, b, x, out);
    }
    CHECK(causal_conv(st, &b->tc, x, SRC_CHANNEL_MAJOR, T, H, W, &tc));
    y = NEW_F32(be, &rc, c, 2 * T, H, W);
    if (!y)
        goto fail;
    {
        static const int p[4] = {1, 2, 0, 3};
        struct tensor tv = tensor_view_shape(tc, 0, 2, c, T, H * W);
        struct tensor yv = tensor_view_shape(y, 0, c, T, 2, H * W);
        CHECK(backend_permute(be, &yv, &tv, p));
    }
    tensor_destroy(&tc);
    rc = up2d(be, b, y, out);
    tensor_destroy(&y);
    return rc;
fail:
    tensor_destroy(&tc);
    tensor_destroy(&y);
    return rc;
}

/* Zero pad right and bottom by 1, 3x3 conv stride 2. */
static int down2d(struct backend *be, const struct vae_block *b, const struct tensor *x,
                  struct tensor **out)
{
    const int stride[3] = {1, 2, 2}, pf[3] = {0, 0, 0}, pb[3] = {0, 1, 1};
    return conv_apply(be, &b->rs, x, stride, pf, pb, out);
}

/*
 * downsample3d: the 2-D downsample, then (after the first chunk) the time
 * conv, kernel 3 stride 2 unpadded, over [last frame of the previous chunk,
 * this chunk]; the first chunk passes through and is remembered.
 */
static int down3d(struct vae_stream *st, const struct vae_block *b, const struct tensor *x,
                  struct tensor **out)
{
    struct backend *be = st->vae->be;
    struct tensor *d = NULL, *cat = NULL, *xin = NULL;
    struct tensor **cache = &st->cache[b->tc.slot];
    int rc = 0;

    CHECK(down2d(be, b, x, &d));
    int64_t c = d->shape[0], T = d->shape[1], H = d->shape[2], W = d->shape[3], hw = H * W;
    int first = *cache == NULL;
    if (first) {
        *cache = NEW_F32(be, &rc, 1, c, hw);
        if (!*cache)
            goto fail;
    } else if (T + 1 < b->tc.kt) {
        rc = log_error_rc(ENC_EINVAL, "encoder chunk of %lld frames too short", (long long)T);
        goto fail;
    }
    cat = NEW_F32(be, &rc, 1 + T, c, hw);
    if (!cat)
        goto fail;
    {
        struct tensor head = tensor_view_shape(cat, 0, 1, c, hw);
        struct tensor fresh = tensor_view_shape(cat, c * hw, T, c, hw);
        struct tensor dv = tensor_view_shape(d, 0, c, T, hw);
        struct tensor last = tensor_view_shape(cat, T * c * hw, 1, c, hw);
        if (!first)
            CHECK(backend_copy(be, &head, *cache));
        CHECK(backend_permute(be, &fresh, &dv, perm_102));
        CHECK(backend_copy(be, *cache, &last));
    }
    if (first) {
        tensor_destroy(&cat);
        *out = d;
        return 0;
    }
    tensor_destroy(&d);
    xin = NEW_F32(be, &rc, c, 1 + T, H, W);
    if (!xin)
        goto fail;
    {
        struct tensor xv = tensor_view_shape(xin, 0, c, 1 + T, hw);
        CHECK(backend_permute(be, &xv, cat, perm_102));
    }
    tensor_destroy(&cat);
    {
        const int stride[3] = {2, 1, 1}, zero[3] = {0, 0, 0};
        CHECK(conv_apply(be, &b->tc, xin, stride, zero, zero, out));
    }
    tensor_destroy(&xin);
    return 0;
fail:
    tensor_destroy(&d);
    tensor_destroy(&cat);
    tensor_destroy(&xin);
    return rc;
}

static int block_forward(struct vae_stream *st, const struct vae_block *b, const struct tensor *x,
                         struct tensor **out)
{
    switch (b->kind) {
    case VAE_BLOCK_RES: return res_block(st, b, x, out);
    case VAE_BLOCK_ATTN: return attn_block(st->vae->be, b, x, out);
    case VAE_BLOCK_UP2D: return up2d(st->vae->be, b, x, out);
    case VAE_BLOCK_UP3D: return up3d(st, b, x, out);
    case VAE_BLOCK_DOWN2D: return down2d(st->vae->be, b, x, out);
    case VAE_BLOCK_DOWN3D: return down3d(st, b, x, out);
    }
    return log_error_rc(ENC_EINVAL, "bad block kind %d", (int)b->kind);
}

int vae_stack_forward(struct vae_stream *st, const struct tensor *x, struct tensor **out)
{
    const struct vae_stack *stk = st->stk;
    struct tensor *cur = NULL, *next = NULL;
    int rc = 0;

    CHECK(causal_conv(st, &stk->conv_in, x, SRC_CHANNEL_MAJOR, x->shape[1], x->shape[2],
                      x->shape[3], &cur));
    for (int i = 0; i < stk->n_blocks; i++) {
        CHECK(block_forward(st, &stk->blocks[i], cur, &next));
        tensor_destroy(&cur);
        cur = next;
        next = NULL;
    }
    CHECK(norm_conv(st, cur, &stk->head_g, &stk->head, out));
    tensor_destroy(&cur);
    st->chunk++;
    return 0;
fail:
    tensor_destroy(&cur);
    return rc;
}
