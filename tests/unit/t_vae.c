/*
 * t_vae.c - the Wan VAE against the fixtures of the original PyTorch code:
 * decode (clamped and unclamped), encode (normalised latent, raw mu,
 * logvar; both cases), the reference-clip encoder, the .pth loader path,
 * the y builder and the pixel rule. Tolerance: README-encoders suggests
 * max |d| <= 1e-4 (the fp32-vs-fp64 spread is ~2e-6).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../tap.h"
#include "common/log.h"
#include "worker/engine/backend.h"
#include "worker/engine/checkpoint.h"
#include "worker/models/vae.h"

#define TOL 1e-4

static float *fx_read(struct ckpt *fx, const char *name, int64_t *n)
{
    const struct ckpt_tensor *t = ckpt_find(fx, name);
    if (!t) {
        diag("fixture tensor '%s' missing", name);
        return NULL;
    }
    if (n)
        *n = ckpt_numel(t);
    return ckpt_read_f32(t);
}

static double max_abs_diff(const float *a, const float *b, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m))
            m = d;
    }
    return m;
}

/* Collects decoded frames into a [3, T, H, W] video. */
struct collect {
    float *video;
    int64_t T, HW, got;
};

static int collect_frame(void *ctx, int64_t frame, const float *rgb)
{
    struct collect *c = ctx;
    if (frame < 0 || frame >= c->T)
        return -1;
    for (int ch = 0; ch < 3; ch++)
        memcpy(c->video + (ch * c->T + frame) * c->HW, rgb + ch * c->HW,
               (size_t)c->HW * sizeof(float));
    c->got++;
    return 0;
}

/* latents [16, L, h, w] -> frame-major [L, 16, h, w] */
static float *frame_major(const float *lat, int64_t z, int64_t L, int64_t hw)
{
    float *out = malloc((size_t)(z * L * hw) * sizeof(float));
    for (int64_t c = 0; c < z; c++)
        for (int64_t f = 0; f < L; f++)
            memcpy(out + (f * z + c) * hw, lat + (c * L + f) * hw, (size_t)hw * sizeof(float));
    return out;
}

static float *decode_all(struct vae *vae, const float *fm, int64_t L, int64_t h, int64_t w,
                         int clamp, int64_t *T_out)
{
    int n;
    int64_t T = vae_frames_of_latent(vae, L - 1, &n) + n;
    struct vae_info info;
    vae_get_info(vae, &info);
    int64_t H = h * info.spatial, W = w * info.spatial;
    struct collect c = {
        .video = calloc((size_t)(3 * T * H * W), sizeof(float)), .T = T, .HW = H * W};
    struct vae_decoder *dec = vae_decoder_new(vae, h, w, 0, 0);
    int rc = dec ? 0 : -1;
    if (dec)
        vae_decoder_set_clamp(dec, clamp);
    for (int64_t k = 0; k < L && !rc; k++)
        rc = vae_decoder_push(dec, fm + k * 16 * h * w, collect_frame, &c);
    vae_decoder_destroy(&dec);
    if (rc || c.got != T) {
        diag("decode failed: rc %d, %lld of %lld frames", rc, (long long)c.got, (long long)T);
        free(c.video);
        return NULL;
    }
    *T_out = T;
    return c.video;
}

static void test_decode(struct backend *be)
{
    struct ckpt *fx = NULL;
    struct vae *vae = NULL;
    if (ckpt_open(FIXTURE_DIR "/vae_decode.safetensors", &fx)) {
        skip(7, "vae_decode fixture not readable");
        return;
    }
    int rc = vae_load(be, &fx, 1, VAE_PART_DECODER, &vae);
    ok(rc == 0 && vae, "decoder loads from the fixture's weights.*");
    if (!vae) {
        skip(6, "no decoder");
        ckpt_close(&fx);
        return;
    }
    struct vae_info info;
    vae_get_info(vae, &info);
    ok(info.z_dim == 16 && info.dec_time_up == 2 && info.spatial == 8 && info.dec_width == 32 &&
           info.dec_blocks == 18,
       "config from shapes: z %d, time x%d, space x%d, width %d, %d blocks", info.z_dim,
       1 << info.dec_time_up, info.spatial, info.dec_width, info.dec_blocks);
    is_int(vae_receptive_field(vae), 38, "receptive field derived from the layers is 38 latents");

    const struct ckpt_tensor *lt = ckpt_find(fx, "input.latents");
    int64_t L = lt->shape[2], h = lt->shape[3], w = lt->shape[4], n = 0, T = 0;
    float *lat = fx_read(fx, "input.latents", NULL);
    float *fm = frame_major(lat, 16, L, h * w);
    float *want_u = fx_read(fx, "expected.decoded_unclamped", &n);
    float *want = fx_read(fx, "expected.decoded", &n);
    float *got_u = decode_all(vae, fm, L, h, w, 0, &T);
    float *got = decode_all(vae, fm, L, h, w, 1, &T);
    ok(got_u && T * 3 * h * 8 * w * 8 == n, "decoded %lld frames of %lldx%lld", (long long)T,
       (long long)h * 8, (long long)w * 8);
    double eu = got_u ? max_abs_diff(got_u, want_u, n) : 1e9;
    double ec = got ? max_abs_diff(got, want, n) : 1e9;
    diag("vae_decode: decoded_unclamped max_abs %.3g, decoded max_abs %.3g", eu, ec);
    ok(eu <= TOL, "decoded_unclamped within %g (max %.3g)", TOL, eu);
    ok(ec <= TOL, "decoded (clamped) within %g (max %.3g)", TOL, ec);
    int in_range = got != NULL;
    for (int64_t i = 0; got && i < n; i++)
        in_range &= got[i] >= -1.0f && got[i] <= 1.0f;
    ok(in_range, "clamped frames lie in [-1, 1]");

    free(lat);
    free(fm);
    free(want_u);
    free(want);
    free(got_u);
    free(got);
    vae_destroy(&vae);
    ckpt_close(&fx);
}

static void check_case(struct vae *vae, struct ckpt *fx, const char *pix, const char *suffix)
{
    char n_lat[64], n_mu[64], n_lv[64];
    snprintf(n_lat, sizeof n_lat, "expected.latent_mean%s", suffix);
    snprintf(n_mu, sizeof n_mu, "expected.mu_raw%s", suffix);
    snprintf(n_lv, sizeof n_lv, "expected.logvar%s", suffix);
    const struct ckpt_tensor *pt = ckpt_find(fx, pix);
    int64_t T = pt->shape[2], H = pt->shape[3], W = pt->shape[4], n = 0;
    float *pixels = fx_read(fx, pix, NULL);
    float *want_lat = fx_read(fx, n_lat, &n), *want_mu = fx_read(fx, n_mu, NULL),
          *want_lv = fx_read(fx, n_lv, NULL);
    int64_t F, h, w;
    vae_latent_dims(vae, T, H, W, &F, &h, &w);
    float *lat = calloc((size_t)n, sizeof(float)), *mu = calloc((size_t)n, sizeof(float)),
          *lv = calloc((size_t)n, sizeof(float));
    int rc = 16 * F * h * w == n ? vae_encode(vae, pixels, T, H, W, lat, mu, lv) : -1;
    ok(rc == 0, "encode %s: %lld frames %lldx%lld -> [16,%lld,%lld,%lld]", pix, (long long)T,
       (long long)H, (long long)W, (long long)F, (long long)h, (long long)w);
    double el = max_abs_diff(lat, want_lat, n), em = max_abs_diff(mu, want_mu, n),
           ev = max_abs_diff(lv, want_lv, n);
    diag("vae_encode %s: latent_mean max_abs %.3g, mu_raw %.3g, logvar %.3g", pix, el, em, ev);
    ok(el <= TOL && em <= TOL && ev <= TOL, "%s: latent, mu_raw, logvar within %g", pix, TOL);
    free(pixels);
    free(want_lat);
    free(want_mu);
    free(want_lv);
    free(lat);
    free(mu);
    free(lv);
}

static void test_encode(struct backend *be)
{
    struct ckpt *fx = NULL;
    struct vae *vae = NULL;
    if (ckpt_open(FIXTURE_DIR "/vae_encode.safetensors", &fx)) {
        skip(7, "vae_encode fixture not readable");
        return;
    }
    int rc = vae_load(be, &fx, 1, VAE_PART_ENCODER, &vae);
    ok(rc == 0 && vae, "encoder loads from the fixture's weights.*");
    if (!vae) {
        skip(6, "no encoder");
        ckpt_close(&fx);
        return;
    }
    check_case(vae, fx, "input.pixels", "");
    check_case(vae, fx, "input.pixels2", "2");

    /* The reference clip from the uint8 image, as the pipeline builds it. */
    const struct ckpt_tensor *it = ckpt_find(fx, "input.image_u8");
    int64_t H = it->shape[0], W = it->shape[1], n = 0;
    float *u8 = fx_read(fx, "input.image_u8", NULL);
    float *pixels = fx_read(fx, "input.pixels", NULL);
    float *want = fx_read(fx, "expected.latent_mean", &n);
    float *img = malloc((size_t)(3 * H * W) * sizeof(float));
    for (int c = 0; c < 3; c++)
        for (int64_t i = 0; i < H * W; i++) {
            float v = u8[i * 3 + c] / 255.0f;
            img[c * H * W + i] = (v - 0.5f) * 2.0f;
        }
    int64_t T = ckpt_find(fx, "input.pixels")->shape[2];
    int same = 1;
    for (int c = 0; c < 3; c++)
        same &= memcmp(img + c * H * W, pixels + c * T * H * W, (size_t)(H * W) * 4) == 0;
    ok(same, "image_u8 / 255, (x - 0.5) * 2 gives the fixture's frame 0 bit for bit");
    float *lat = calloc((size_t)n, sizeof(float));
    rc = vae_encode_reference(vae, img, H, W, T, lat);
    double e = max_abs_diff(lat, want, n);
    diag("vae_encode_reference: max_abs %.3g", e);
    ok(rc == 0 && e <= TOL, "reference clip (image + %lld grey frames) encodes within %g",
       (long long)T - 1, TOL);

    /* y = [mask (4), latents (16)] */
    int64_t F = ckpt_find(fx, "expected.latent_mean")->shape[2], hw = n / (16 * F);
    float *y = malloc((size_t)(20 * F * hw) * sizeof(float));
    vae_make_y(lat, 16, F, 1, hw, y);
    int mask_ok = 1;
    for (int c = 0; c < 4; c++)
        for (int64_t f = 0; f < F; f++)
            for (int64_t i = 0; i < hw; i++)
                mask_ok &= y[(c * F + f) * hw + i] == (f == 0 ? 1.0f : 0.0f);
    ok(mask_ok && memcmp(y + 4 * F * hw, lat, (size_t)(16 * F * hw) * 4) == 0,
       "y: mask channels 1 at latent 0 and 0 after, then the 16 latent channels");
    free(y);
    free(u8);
    free(pixels);
    free(want);
    free(img);
    free(lat);
    vae_destroy(&vae);
    ckpt_close(&fx);
}

/* The full .pth state dict: both parts, same numbers as the safetensors. */
static void test_pth(struct backend *be)
{
    struct vae *vae = NULL;
    int rc = vae_open(be, FIXTURE_DIR "/vae_weights.pth", VAE_PART_ALL, &vae);
    ok(rc == 0 && vae, "vae_weights.pth loads (encoder + decoder)");
    if (!vae) {
        skip(1, "no vae");
        return;
    }
    struct vae_info info;
    vae_get_info(vae, &info);
    ok(info.n_params == 924491, "parameter count %lld (README: 924491)", (long long)info.n_params);
    vae_destroy(&vae);
}

static void test_pixels(void)
{
    /* x / 2 + 0.5, clamp, * 255, truncate */
    float frame[3] = {-1.0f, 0.999f, 2.0f};
    uint8_t rgb[3];
    vae_frame_to_rgb24(frame, 1, 1, rgb);
    ok(rgb[0] == 0 && rgb[1] == 254 && rgb[2] == 255,
       "pixel rule: -1 -> 0, 0.999 -> 254, 2 -> 255");
}

int main(void)
{
    log_set_level(LOG_LEVEL_WARN);
    struct backend *be = backend_open("cpu", 2);
    if (!be) {
        skip(1, "no cpu backend");
        return done_testing();
    }
    test_decode(be);
    test_encode(be);
    test_pth(be);
    test_pixels();
    backend_destroy(&be);
    return done_testing();
}
