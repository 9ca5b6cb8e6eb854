/*
 * vae_decode.c - the streaming decoder, segment decoding and the decoder's
 * temporal receptive field.
 *
 * Per latent frame k (as AutoencoderKLWan_.decode, one frame per call):
 * host x = z / inv_std + mean (f32, per channel), the 1x1x1 conv2, then the
 * decoder stack with its caches; the [3, T, H, W] result is permuted to
 * frame-major, downloaded, clamped to [-1, 1] and handed out frame by
 * frame. Only the caches survive between pushes.
 *
 * Receptive field: a symbolic run of the decoder's temporal structure on
 * frame flags ("this frame equals its full-stream value") over a segment
 * started at latent m > 0 as if it were latent 0: zero padding and the
 * first-chunk special case of the temporal upsample make frames inexact, a
 * 3-tap causal conv output is exact when its three input frames are, all
 * other layers act per frame. The warm-up needed is the smallest w for
 * which every frame of chunk w comes out exact.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "vae_impl.h"

struct vae_decoder {
    struct vae *vae;
    struct vae_stream st;
    int64_t h, w, H, W;
    int64_t next;      /* latent index of the next push */
    int64_t first;     /* latent index of the first push */
    int64_t emit_from; /* frames of latents < emit_from are dropped */
    int clamp;
    float *zbuf;   /* (z, h, w) */
    float *frames; /* (time_factor, 3, H, W) */
};

struct vae_decoder *vae_decoder_new(struct vae *vae, int64_t h, int64_t w, int64_t first_latent,
                                    int64_t emit_from)
{
    if (!vae->dec.present) {
        log_error("decoder not loaded");
        return NULL;
    }
    if (h <= 0 || w <= 0 || h > 4096 || w > 4096 || first_latent < 0 ||
        (first_latent > 0 && emit_from <= first_latent)) {
        log_error("bad decode stream (latent %lldx%lld, first %lld, emit from %lld)", (long long)h,
                  (long long)w, (long long)first_latent, (long long)emit_from);
        return NULL;
    }
    struct vae_decoder *dec = xcalloc(1, sizeof(*dec));
    dec->vae = vae;
    dec->h = h;
    dec->w = w;
    dec->H = h * vae->dec.space_factor;
    dec->W = w * vae->dec.space_factor;
    dec->first = dec->next = first_latent;
    dec->emit_from = emit_from;
    dec->clamp = 1;
    dec->zbuf = xmalloc((size_t)(vae->z * h * w) * sizeof(float));
    dec->frames = xmalloc((size_t)(vae->dec.time_factor * 3 * dec->H * dec->W) * sizeof(float));
    vae_stream_init(&dec->st, vae, &vae->dec);
    return dec;
}

void vae_decoder_set_clamp(struct vae_decoder *dec, int clamp)
{
    dec->clamp = clamp;
}

int64_t vae_decoder_next_latent(const struct vae_decoder *dec)
{
    return dec->next;
}

void vae_decoder_destroy(struct vae_decoder **pd)
{
    struct vae_decoder *dec = *pd;
    if (!dec)
        return;
    vae_stream_release(&dec->st);
    free(dec->zbuf);
    free(dec->frames);
    free(dec);
    *pd = NULL;
}

int vae_decoder_push(struct vae_decoder *dec, const float *latent, vae_frame_fn *cb, void *ctx)
{
    struct vae *vae = dec->vae;
    struct backend *be = vae->be;
    struct tensor *x = NULL, *y = NULL, *out = NULL, *ft = NULL;
    int64_t hw = dec->h * dec->w, HW = dec->H * dec->W;
    int rc = 0;

    for (int c = 0; c < vae->z; c++) {
        const float *src = latent + c * hw;
        float *dst = dec->zbuf + c * hw;
        float inv = vae->inv_std[c], mean = vae_latents_mean[c];
        for (int64_t i = 0; i < hw; i++)
            dst[i] = src[i] / inv + mean;
    }
    x = backend_tensor_from_host(be, DTYPE_F32, 4, (int64_t[]){vae->z, 1, dec->h, dec->w},
                                 dec->zbuf, 0);
    if (!x)
        return log_error_rc(ENC_ENOMEM, "out of backend memory for a latent frame");
    rc = vae_pointwise(be, &vae->post_quant, x, &y);
    tensor_destroy(&x);
    if (rc)
        goto fail;
    rc = vae_stack_forward(&dec->st, y, &out);
    tensor_destroy(&y);
    if (rc)
        goto fail;

    int64_t T = out->shape[1];
    int expect = dec->next == dec->first ? 1 : vae->dec.time_factor;
    if (T != expect || out->shape[0] != 3 || out->shape[2] != dec->H || out->shape[3] != dec->W) {
        rc = log_error_rc(ENC_EINVAL, "decoder gave %lld frames of %lldx%lld, want %d of %lldx%lld",
                          (long long)T, (long long)out->shape[2], (long long)out->shape[3], expect,
                          (long long)dec->H, (long long)dec->W);
        goto fail;
    }
    ft = tensor_new_shape(be, DTYPE_F32, T, 3, HW);
    if (!ft) {
        rc = log_error_rc(ENC_ENOMEM, "out of backend memory for output frames");
        goto fail;
    }
    {
        static const int p[3] = {1, 0, 2};
        struct tensor ov = tensor_view_shape(out, 0, 3, T, HW);
        rc = backend_permute(be, ft, &ov, p);
        if (rc)
            goto fail;
    }
    tensor_destroy(&out);
    rc = backend_download(be, dec->frames, ft, tensor_nbytes(ft));
    tensor_destroy(&ft);
    if (rc)
        goto fail;

    int64_t k = dec->next++;
    if (k < dec->emit_from)
        return 0;
    if (dec->clamp) {
        int64_t n = T * 3 * HW;
        for (int64_t i = 0; i < n; i++) {
            float v = dec->frames[i];
            dec->frames[i] = v < -1.0f ? -1.0f : v > 1.0f ? 1.0f : v;
        }
    }
    int nf;
    int64_t f0 = vae_frames_of_latent(vae, k, &nf);
    for (int64_t t = 0; t < T; t++) {
        rc = cb(ctx, f0 + t, dec->frames + t * 3 * HW);
        if (rc)
            return rc;
    }
    return 0;
fail:
    tensor_destroy(&x);
    tensor_destroy(&y);
    tensor_destroy(&out);
    tensor_destroy(&ft);
    return rc;
}

int vae_decode_range(struct vae *vae, int64_t h, int64_t w, const float *latents, int64_t a,
                     int64_t b, int warmup, vae_frame_fn *cb, void *ctx)
{
    if (warmup < 0)
        warmup = vae->receptive;
    if (a < 0 || b < a)
        return log_error_rc(ENC_EINVAL, "bad latent range [%lld, %lld)", (long long)a,
                            (long long)b);
    int64_t start = a - warmup > 0 ? a - warmup : 0;
    if (a > 0 && start == a)
        start = a - 1 >= 0 ? a - 1 : 0; /* a stream needs a first chunk to throw away */
    struct vae_decoder *dec = vae_decoder_new(vae, h, w, start, a);
    if (!dec)
        return ENC_EINVAL;
    int rc = 0;
    int64_t per = (int64_t)vae->z * h * w;
    for (int64_t k = start; k < b && !rc; k++)
        rc = vae_decoder_push(dec, latents + k * per, cb, ctx);
    vae_decoder_destroy(&dec);
    return rc;
}

void vae_frame_to_rgb24(const float *frame, int64_t H, int64_t W, uint8_t *rgb)
{
    int64_t hw = H * W;
    for (int64_t i = 0; i < hw; i++)
        for (int c = 0; c < 3; c++) {
            float v = frame[c * hw + i] / 2.0f + 0.5f;
            v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
            if (v != v)
                v = 0.0f;
            rgb[i * 3 + c] = (uint8_t)(v * 255.0f);
        }
}

/* ---- receptive field ---- */

#define RF_MAX_FRAMES 256

struct rf_sim {
    unsigned char (*cache)[2]; /* per slot: exactness of the cached frames */
    unsigned char *started;    /* per slot: a chunk has been through */
};

/* A 3-tap causal conv on flags: out[t] = in[t-2] & in[t-1] & in[t]. */
static int rf_conv(struct rf_sim *s, int slot, const unsigned char *in, int n, unsigned char *out)
{
    unsigned char stream[RF_MAX_FRAMES + 2];
    if (!s->started[slot]) {
        s->started[slot] = 1;
        s->cache[slot][0] = s->cache[slot][1] = 0; /* zero padding for real history */
    }
    stream[0] = s->cache[slot][0];
    stream[1] = s->cache[slot][1];
    memcpy(stream + 2, in, (size_t)n);
    for (int t = 0; t < n; t++)
        out[t] = stream[t] & stream[t + 1] & stream[t + 2];
    s->cache[slot][0] = stream[n];
    s->cache[slot][1] = stream[n + 1];
    return n;
}

/* One chunk through the decoder's temporal structure; returns frames out. */
static int rf_chunk(const struct vae_stack *stk, struct rf_sim *s, unsigned char *f, int n)
{
    unsigned char a[RF_MAX_FRAMES], b[RF_MAX_FRAMES];
    n = rf_conv(s, stk->conv_in.slot, f, n, f);
    for (int i = 0; i < stk->n_blocks; i++) {
        const struct vae_block *blk = &stk->blocks[i];
        switch (blk->kind) {
        case VAE_BLOCK_RES:
            rf_conv(s, blk->c1.slot, f, n, a);
            rf_conv(s, blk->c2.slot, a, n, b);
            for (int t = 0; t < n; t++)
                f[t] &= b[t];
            break;
        case VAE_BLOCK_UP3D:
            if (!s->started[blk->tc.slot]) {
                s->started[blk->tc.slot] = 1;
                s->cache[blk->tc.slot][0] = s->cache[blk->tc.slot][1] = 0;
                for (int t = 0; t < n; t++)
                    f[t] = 0; /* skipped time conv: not the full stream's frame */
                break;
            }
            if (2 * n > RF_MAX_FRAMES)
                return -1;
            rf_conv(s, blk->tc.slot, f, n, a);
            for (int t = 0; t < n; t++)
                f[2 * t] = f[2 * t + 1] = a[t];
            n *= 2;
            break;
        default: break; /* per frame */
        }
    }
    rf_conv(s, stk->head.slot, f, n, f);
    return n;
}

/* 1 when a segment started w latents early reproduces the latent exactly. */
static int rf_exact_after(const struct vae_stack *stk, int w)
{
    struct rf_sim s;
    unsigned char f[RF_MAX_FRAMES];
    int n = 0, ok = 1;
    s.cache = xcalloc((size_t)stk->n_slots, sizeof(*s.cache));
    s.started = xcalloc((size_t)stk->n_slots, 1);
    for (int k = 0; k <= w; k++) {
        f[0] = 1;
        n = rf_chunk(stk, &s, f, 1);
        if (n < 0) {
            ok = 0;
            break;
        }
    }
    for (int t = 0; ok && t < n; t++)
        ok = f[t];
    free(s.cache);
    free(s.started);
    return ok;
}

int vae_receptive_field_compute(const struct vae *vae)
{
    for (int w = 1; w < 4096; w++)
        if (rf_exact_after(&vae->dec, w))
            return w;
    return 4096;
}
