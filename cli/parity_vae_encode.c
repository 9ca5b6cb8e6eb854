/*
 * parity_vae_encode.c - `encore parity` for fixtures of kind "vae_encode":
 * encode input.pixels (the pipeline's reference clip: image then grey
 * frames) and input.pixels2 (a noise clip exercising the temporal
 * downsample caches), compare the normalised posterior mean, the raw mu and
 * the logvar; then build the same clip from input.image_u8 as the pipeline
 * does (/255, (x - 0.5) * 2) and encode it without materialising it.
 * Tolerance max |d| <= 1e-4 (README-encoders; fp32-vs-fp64 spread ~1e-6).
 */
#include <stdio.h>
#include <stdlib.h>

#include "common/err.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "parity.h"
#include "worker/models/vae.h"

#define VAE_ENCODE_ATOL 1e-4

/* One case: pixels -> latent_mean<sfx>, mu_raw<sfx>, logvar<sfx>. */
static int encode_case(struct parity_run *r, struct vae *vae, const char *pix, const char *sfx)
{
    char n_lat[64], n_mu[64], n_lv[64];
    snprintf(n_lat, sizeof n_lat, "expected.latent_mean%s", sfx);
    snprintf(n_mu, sizeof n_mu, "expected.mu_raw%s", sfx);
    snprintf(n_lv, sizeof n_lv, "expected.logvar%s", sfx);
    const struct ckpt_tensor *pt = parity_tensor(r, pix), *et = parity_tensor(r, n_lat);
    if (!pt || !et || pt->ndim != 5 || pt->shape[1] != 3 || et->ndim != 5)
        return log_error_rc(ENC_EINVAL, "'%s': '%s' / '%s' malformed", r->path, pix, n_lat);
    int64_t T = pt->shape[2], H = pt->shape[3], W = pt->shape[4], F, h, w;
    vae_latent_dims(vae, T, H, W, &F, &h, &w);
    if (et->shape[1] != 16 || et->shape[2] != F || et->shape[3] != h || et->shape[4] != w)
        return log_error_rc(ENC_EINVAL, "'%s': '%s' is not [1,16,%lld,%lld,%lld]", r->path, n_lat,
                            (long long)F, (long long)h, (long long)w);
    int64_t n = 16 * F * h * w;
    float *pixels = parity_read_f32(r, pix, NULL);
    float *lat = xmalloc((size_t)n * sizeof(float)), *mu = xmalloc((size_t)n * sizeof(float)),
          *lv = xmalloc((size_t)n * sizeof(float));
    int rc = pixels ? vae_encode(vae, pixels, T, H, W, lat, mu, lv) : ENC_EINVAL;
    if (!rc) {
        parity_check(r, n_lat, NULL, lat, n, VAE_ENCODE_ATOL, 0.0);
        parity_check(r, n_mu, NULL, mu, n, VAE_ENCODE_ATOL, 0.0);
        parity_check(r, n_lv, NULL, lv, n, VAE_ENCODE_ATOL, 0.0);
    }
    free(pixels);
    free(lat);
    free(mu);
    free(lv);
    return rc;
}

/* The clip rebuilt from the uint8 image [H, W, 3] and encoded as the reference. */
static int encode_reference(struct parity_run *r, struct vae *vae)
{
    const struct ckpt_tensor *it = parity_tensor(r, "input.image_u8");
    const struct ckpt_tensor *pt = parity_tensor(r, "input.pixels");
    if (!it || !pt || it->ndim != 3 || it->shape[2] != 3)
        return log_error_rc(ENC_EINVAL, "'%s': input.image_u8 malformed", r->path);
    int64_t H = it->shape[0], W = it->shape[1], T = pt->shape[2], HW = H * W, F, h, w;
    vae_latent_dims(vae, T, H, W, &F, &h, &w);
    int64_t n = 16 * F * h * w;
    float *u8 = parity_read_f32(r, "input.image_u8", NULL);
    if (!u8)
        return ENC_EINVAL;
    float *img = xmalloc((size_t)(3 * HW) * sizeof(float));
    float *lat = xmalloc((size_t)n * sizeof(float));
    for (int c = 0; c < 3; c++)
        for (int64_t i = 0; i < HW; i++) {
            float v = u8[i * 3 + c] / 255.0f;
            img[c * HW + i] = (v - 0.5f) * 2.0f;
        }
    int rc = vae_encode_reference(vae, img, H, W, T, lat);
    if (!rc)
        parity_check(r, "expected.latent_mean", "reference clip from image_u8", lat, n,
                     VAE_ENCODE_ATOL, 0.0);
    free(u8);
    free(img);
    free(lat);
    return rc;
}

int parity_vae_encode(struct parity_run *r)
{
    struct vae *vae = NULL;
    int rc = r->weights_path ? vae_open(r->be, r->weights_path, VAE_PART_ENCODER, &vae)
                             : vae_load(r->be, &r->fx, 1, VAE_PART_ENCODER, &vae);
    if (rc)
        return rc;
    rc = encode_case(r, vae, "input.pixels", "");
    if (!rc)
        rc = encode_case(r, vae, "input.pixels2", "2");
    if (!rc)
        rc = encode_reference(r, vae);
    vae_destroy(&vae);
    return rc;
}
