/*
 * vae_encode.c - the encoder: pixel chunks [0], [1..4], [5..8], ... (the
 * chunk length is the encoder's temporal factor) through the encoder stack
 * with caches carried across chunks, the 1x1x1 conv1, then mu = channels
 * [0, z), log_var = [z, 2z); the latent is (mu - mean) * inv_std in f32 on
 * the host, as AutoencoderKLWan_.encode computes it.
 *
 * Chunks come from a provider, so the reference clip (one image and grey
 * frames) is never materialised; one latent frame is produced per chunk.
 */
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "vae_impl.h"

/* Fills buf [3, n, H, W] with frames t0 .. t0+n-1 of the clip. */
typedef void chunk_fn(void *ctx, int64_t t0, int64_t n, float *buf);

struct clip_src {
    const float *pixels; /* [3, T, H, W] */
    int64_t T, HW;
};

static void clip_chunk(void *ctx, int64_t t0, int64_t n, float *buf)
{
    const struct clip_src *s = ctx;
    for (int c = 0; c < 3; c++)
        memcpy(buf + c * n * s->HW, s->pixels + (c * s->T + t0) * s->HW,
               (size_t)(n * s->HW) * sizeof(float));
}

struct ref_src {
    const float *image; /* [3, H, W] */
    int64_t HW;
};

static void ref_chunk(void *ctx, int64_t t0, int64_t n, float *buf)
{
    const struct ref_src *s = ctx;
    memset(buf, 0, (size_t)(3 * n * s->HW) * sizeof(float));
    if (t0 == 0)
        for (int c = 0; c < 3; c++)
            memcpy(buf + c * n * s->HW, s->image + c * s->HW, (size_t)s->HW * sizeof(float));
}

void vae_latent_dims(const struct vae *vae, int64_t T, int64_t H, int64_t W, int64_t *F, int64_t *h,
                     int64_t *w)
{
    const struct vae_stack *s = &vae->enc;
    *F = T >= 1 ? 1 + (T - 1) / s->time_factor : 0;
    for (int i = 0; i < s->n_blocks; i++)
        if (s->blocks[i].kind == VAE_BLOCK_DOWN2D || s->blocks[i].kind == VAE_BLOCK_DOWN3D) {
            H = H >= 2 ? (H - 2) / 2 + 1 : 0;
            W = W >= 2 ? (W - 2) / 2 + 1 : 0;
        }
    *h = H;
    *w = W;
}

static int encode_chunks(struct vae *vae, chunk_fn *get, void *ctx, int64_t T, int64_t H, int64_t W,
                         float *lat, float *mu_raw, float *logvar)
{
    struct backend *be = vae->be;
    struct vae_stream st;
    struct tensor *x = NULL, *e = NULL, *q = NULL;
    int64_t F, h, w, ft = vae->enc.time_factor;
    int rc = 0;

    if (!vae->enc.present)
        return log_error_rc(ENC_EINVAL, "encoder not loaded");
    vae_latent_dims(vae, T, H, W, &F, &h, &w);
    if (F < 1 || h < 1 || w < 1)
        return log_error_rc(ENC_EINVAL, "clip of %lld frames %lldx%lld too small to encode",
                            (long long)T, (long long)H, (long long)W);
    if ((T - 1) % ft)
        log_warn("clip of %lld frames: the last %lld are not encoded (chunks of %lld)",
                 (long long)T, (long long)((T - 1) % ft), (long long)ft);

    int64_t z = vae->z, hw = h * w, HW = H * W;
    float *buf = xmalloc((size_t)(3 * ft * HW) * sizeof(float));
    float *qh = xmalloc((size_t)(2 * z * hw) * sizeof(float));
    vae_stream_init(&st, vae, &vae->enc);
    for (int64_t i = 0; i < F; i++) {
        int64_t t0 = i == 0 ? 0 : 1 + ft * (i - 1), n = i == 0 ? 1 : ft;
        get(ctx, t0, n, buf);
        x = backend_tensor_from_host(be, DTYPE_F32, 4, (int64_t[]){3, n, H, W}, buf, 0);
        if (!x) {
            rc = log_error_rc(ENC_ENOMEM, "out of backend memory for a pixel chunk");
            goto fail;
        }
        rc = vae_stack_forward(&st, x, &e);
        tensor_destroy(&x);
        if (rc)
            goto fail;
        if (e->shape[0] != 2 * z || e->shape[1] != 1 || e->shape[2] != h || e->shape[3] != w) {
            rc = log_error_rc(ENC_EINVAL, "encoder chunk %lld gave [%lld,%lld,%lld,%lld]",
                              (long long)i, (long long)e->shape[0], (long long)e->shape[1],
                              (long long)e->shape[2], (long long)e->shape[3]);
            goto fail;
        }
        rc = vae_pointwise(be, &vae->quant, e, &q);
        tensor_destroy(&e);
        if (rc)
            goto fail;
        rc = backend_download(be, qh, q, tensor_nbytes(q));
        tensor_destroy(&q);
        if (rc)
            goto fail;
        for (int64_t c = 0; c < z; c++) {
            const float *mu = qh + c * hw, *lv = qh + (z + c) * hw;
            int64_t off = (c * F + i) * hw;
            float mean = vae_latents_mean[c], inv = vae->inv_std[c];
            for (int64_t j = 0; j < hw; j++) {
                if (lat)
                    lat[off + j] = (mu[j] - mean) * inv;
                if (mu_raw)
                    mu_raw[off + j] = mu[j];
                if (logvar)
                    logvar[off + j] = lv[j];
            }
        }
    }
fail:
    tensor_destroy(&x);
    tensor_destroy(&e);
    tensor_destroy(&q);
    vae_stream_release(&st);
    free(buf);
    free(qh);
    return rc;
}

int vae_encode(struct vae *vae, const float *pixels, int64_t T, int64_t H, int64_t W, float *lat,
               float *mu_raw, float *logvar)
{
    struct clip_src s = {.pixels = pixels, .T = T, .HW = H * W};
    return encode_chunks(vae, clip_chunk, &s, T, H, W, lat, mu_raw, logvar);
}

int vae_encode_reference(struct vae *vae, const float *image, int64_t H, int64_t W,
                         int64_t n_frames, float *lat)
{
    struct ref_src s = {.image = image, .HW = H * W};
    return encode_chunks(vae, ref_chunk, &s, n_frames, H, W, lat, NULL, NULL);
}
