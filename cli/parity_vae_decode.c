/*
 * parity_vae_decode.c - `encore parity` for fixtures of kind "vae_decode":
 * decode input.latents [1, 16, L, h, w] with the streaming decoder (one
 * latent frame per push, as the original) and compare the video with
 * expected.decoded_unclamped and expected.decoded ([1, 3, T, H, W]).
 * Tolerance max |d| <= 1e-4 (README-encoders; fp32-vs-fp64 spread 2.3e-6).
 */
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "parity.h"
#include "worker/models/vae.h"

#define VAE_DECODE_ATOL 1e-4

struct video {
    float *v; /* (3, T, H, W) */
    int64_t T, HW, got;
};

static int put_frame(void *ctx, int64_t frame, const float *rgb)
{
    struct video *s = ctx;
    if (frame < 0 || frame >= s->T)
        return log_error_rc(ENC_EINVAL, "decoder frame %lld outside the fixture's %lld",
                            (long long)frame, (long long)s->T);
    for (int c = 0; c < 3; c++)
        memcpy(s->v + (c * s->T + frame) * s->HW, rgb + c * s->HW, (size_t)s->HW * sizeof(float));
    s->got++;
    return 0;
}

/* Decodes lat [16, L, h, w] into s (clamped or not). */
static int decode(struct vae *vae, const float *lat, int64_t L, int64_t h, int64_t w, int clamp,
                  struct video *s)
{
    int64_t hw = h * w;
    float *frame = xmalloc((size_t)(16 * hw) * sizeof(float));
    struct vae_decoder *dec = vae_decoder_new(vae, h, w, 0, 0);
    int rc = dec ? 0 : ENC_EINVAL;
    if (dec)
        vae_decoder_set_clamp(dec, clamp);
    s->got = 0;
    for (int64_t k = 0; k < L && !rc; k++) {
        for (int c = 0; c < 16; c++)
            memcpy(frame + c * hw, lat + (c * L + k) * hw, (size_t)hw * sizeof(float));
        rc = vae_decoder_push(dec, frame, put_frame, s);
    }
    vae_decoder_destroy(&dec);
    free(frame);
    if (!rc && s->got != s->T)
        rc = log_error_rc(ENC_EINVAL, "decoded %lld frames, the fixture has %lld",
                          (long long)s->got, (long long)s->T);
    return rc;
}

int parity_vae_decode(struct parity_run *r)
{
    struct vae *vae = NULL;
    float *lat = NULL;
    struct video s = {0};
    int rc;

    rc = r->weights_path ? vae_open(r->be, r->weights_path, VAE_PART_DECODER, &vae)
                         : vae_load(r->be, &r->fx, 1, VAE_PART_DECODER, &vae);
    if (rc)
        return rc;
    const struct ckpt_tensor *lt = parity_tensor(r, "input.latents");
    const struct ckpt_tensor *et = parity_tensor(r, "expected.decoded");
    if (!lt || !et || lt->ndim != 5 || et->ndim != 5 || lt->shape[1] != 16 || et->shape[1] != 3) {
        rc = log_error_rc(ENC_EINVAL, "'%s': input.latents / expected.decoded malformed", r->path);
        goto done;
    }
    int64_t L = lt->shape[2], h = lt->shape[3], w = lt->shape[4];
    s.T = et->shape[2];
    s.HW = et->shape[3] * et->shape[4];
    int n_per;
    int64_t T = vae_frames_of_latent(vae, L - 1, &n_per) + n_per;
    struct vae_info info;
    vae_get_info(vae, &info);
    if (T != s.T || et->shape[3] != h * info.spatial || et->shape[4] != w * info.spatial) {
        rc = log_error_rc(ENC_EINVAL,
                          "'%s': %lld latents of %lldx%lld do not decode to [3,%lld,%lld,%lld]",
                          r->path, (long long)L, (long long)h, (long long)w, (long long)s.T,
                          (long long)et->shape[3], (long long)et->shape[4]);
        goto done;
    }
    lat = parity_read_f32(r, "input.latents", NULL);
    if (!lat) {
        rc = ENC_EINVAL;
        goto done;
    }
    int64_t n = 3 * s.T * s.HW;
    s.v = xmalloc((size_t)n * sizeof(float));
    log_info("vae decode: %lld latents of %lldx%lld, receptive field %d latent frames",
             (long long)L, (long long)h, (long long)w, vae_receptive_field(vae));
    if ((rc = decode(vae, lat, L, h, w, 0, &s)))
        goto done;
    parity_check(r, "expected.decoded_unclamped", NULL, s.v, n, VAE_DECODE_ATOL, 0.0);
    if ((rc = decode(vae, lat, L, h, w, 1, &s)))
        goto done;
    parity_check(r, "expected.decoded", NULL, s.v, n, VAE_DECODE_ATOL, 0.0);
done:
    free(lat);
    free(s.v);
    vae_destroy(&vae);
    return rc;
}
