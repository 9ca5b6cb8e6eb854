/*
 * t_vae_segment.c - segment decoding and the receptive field on the
 * fixture's tiny VAE (same layer structure as Wan 2.1), the seeded tiny
 * model writer, and load refusal on missing or misshapen tensors.
 *
 * Segment identity: decoding latents [a, b) from a fresh stream started at
 * a - w (as if it were latent 0, warm-up frames discarded) must give the
 * very bytes of the full-stream decode when w is the receptive field, and
 * must not when w is one less (the first frames of latent a then miss a
 * contribution of latent a - w).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../tap.h"
#include "common/log.h"
#include "worker/engine/backend.h"
#include "worker/engine/checkpoint.h"
#include "worker/engine/st_writer.h"
#include "worker/models/vae.h"

/* Keeps the frames [f0, f0 + n) of a decode, [n][3][H][W]. */
struct keep {
    float *frames;
    int64_t f0, n, fsize, got;
};

static int keep_frame(void *ctx, int64_t frame, const float *rgb)
{
    struct keep *k = ctx;
    if (frame >= k->f0 && frame < k->f0 + k->n) {
        memcpy(k->frames + (frame - k->f0) * k->fsize, rgb, (size_t)k->fsize * sizeof(float));
        k->got++;
    }
    return 0;
}

static uint64_t rng_state = 0x1234567;
static float rnd_normal(void)
{
    /* xorshift64* + Box-Muller; test data only */
    double u[2];
    for (int i = 0; i < 2; i++) {
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        u[i] = ((double)((rng_state * 0x2545F4914F6CDD1DULL) >> 11) + 1.0) / 9007199254740993.0;
    }
    return (float)(sqrt(-2.0 * log(u[0])) * cos(6.283185307179586 * u[1]));
}

static void test_segments(struct backend *be)
{
    struct vae *vae = NULL;
    if (vae_open(be, FIXTURE_DIR "/vae_decode.safetensors", VAE_PART_DECODER, &vae)) {
        skip(6, "fixture decoder not loadable");
        return;
    }
    int R = vae_receptive_field(vae);
    is_int(R, 38, "receptive field %d", R);
    const int64_t h = 1, w = 2, L = R + 4, a = R + 2, b = R + 4;
    int64_t per = 16 * h * w, fsize = 3 * 8 * h * 8 * w;
    float *lat = malloc((size_t)(L * per) * sizeof(float));
    for (int64_t i = 0; i < L * per; i++)
        lat[i] = rnd_normal();
    int n0, n1;
    int64_t f0 = vae_frames_of_latent(vae, a, &n0);
    int64_t f1 = vae_frames_of_latent(vae, b - 1, &n1) + n1;
    int64_t nf = f1 - f0;

    struct keep full = {
        .frames = calloc((size_t)(nf * fsize), 4), .f0 = f0, .n = nf, .fsize = fsize};
    int rc = vae_decode_range(vae, h, w, lat, 0, L, 0, keep_frame, &full);
    ok(rc == 0 && full.got == nf, "full stream of %lld latents decoded", (long long)L);

    struct keep seg = {
        .frames = calloc((size_t)(nf * fsize), 4), .f0 = f0, .n = nf, .fsize = fsize};
    rc = vae_decode_range(vae, h, w, lat, a, b, R, keep_frame, &seg);
    ok(rc == 0 && seg.got == nf, "segment [%lld, %lld) with warm-up %d gives %lld frames",
       (long long)a, (long long)b, R, (long long)nf);
    ok(memcmp(full.frames, seg.frames, (size_t)(nf * fsize) * 4) == 0,
       "segment frames are byte-identical to the full stream's (warm-up %d)", R);

    struct keep shortw = {
        .frames = calloc((size_t)(nf * fsize), 4), .f0 = f0, .n = nf, .fsize = fsize};
    rc = vae_decode_range(vae, h, w, lat, a, b, R - 1, keep_frame, &shortw);
    int64_t first_diff = -1, n_diff_frames = 0;
    for (int64_t f = 0; f < nf; f++)
        if (memcmp(full.frames + f * fsize, shortw.frames + f * fsize, (size_t)fsize * 4)) {
            n_diff_frames++;
            if (first_diff < 0)
                first_diff = f;
        }
    diag("warm-up %d: %lld of %lld frames differ, first at video frame %lld", R - 1,
         (long long)n_diff_frames, (long long)nf, (long long)(first_diff + f0));
    ok(rc == 0 && first_diff == 0,
       "warm-up %d is not enough: the first frame of latent %lld differs", R - 1, (long long)a);

    /* a = 0 is the plain stream */
    struct keep head = {.frames = calloc((size_t)(fsize), 4), .f0 = 0, .n = 1, .fsize = fsize};
    struct keep head2 = {.frames = calloc((size_t)(fsize), 4), .f0 = 0, .n = 1, .fsize = fsize};
    rc = vae_decode_range(vae, h, w, lat, 0, 1, R, keep_frame, &head);
    rc |= vae_decode_range(vae, h, w, lat, 0, 3, 0, keep_frame, &head2);
    ok(rc == 0 && memcmp(head.frames, head2.frames, (size_t)fsize * 4) == 0,
       "a segment starting at latent 0 needs no warm-up");
    ok(vae_decoder_new(vae, h, w, 5, 5) == NULL, "a warm-up stream must not emit its first latent");

    free(head.frames);
    free(head2.frames);
    free(full.frames);
    free(seg.frames);
    free(shortw.frames);
    free(lat);
    vae_destroy(&vae);
}

static int count_frame(void *ctx, int64_t frame, const float *rgb)
{
    (void)frame;
    (void)rgb;
    (*(int *)ctx)++;
    return 0;
}

static int file_same(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa && fb;
    while (same) {
        int ca = fgetc(fa), cb = fgetc(fb);
        same = ca == cb;
        if (ca == EOF || cb == EOF)
            break;
    }
    if (fa)
        fclose(fa);
    if (fb)
        fclose(fb);
    return same;
}

static void test_tiny(struct backend *be, const char *dir)
{
    char p1[512], p2[512], p3[512];
    snprintf(p1, sizeof p1, "%s/tiny1.safetensors", dir);
    snprintf(p2, sizeof p2, "%s/tiny2.safetensors", dir);
    snprintf(p3, sizeof p3, "%s/tiny3.safetensors", dir);
    ok(vae_write_tiny(p1, 7) == 0 && vae_write_tiny(p2, 7) == 0 && vae_write_tiny(p3, 8) == 0,
       "tiny VAE written");
    ok(file_same(p1, p2) && !file_same(p1, p3), "same seed, same bytes; other seed, other bytes");
    struct vae *vae = NULL;
    int rc = vae_open(be, p1, VAE_PART_ALL, &vae);
    ok(rc == 0 && vae, "tiny VAE loads with every tensor bound");
    if (!vae) {
        skip(2, "no tiny vae");
        return;
    }
    is_int(vae_receptive_field(vae), 38, "tiny VAE has the Wan structure (receptive field 38)");
    /* 64x64 video: latent 8x8 */
    float *lat = malloc(16 * 64 * sizeof(float));
    for (int i = 0; i < 16 * 64; i++)
        lat[i] = rnd_normal();
    struct vae_decoder *dec = vae_decoder_new(vae, 8, 8, 0, 0);
    int frames = 0;
    rc = 0;
    for (int k = 0; k < 3 && !rc; k++)
        rc = vae_decoder_push(dec, lat, count_frame, &frames);
    vae_decoder_destroy(&dec);
    ok(rc == 0 && frames == 9, "3 latents of 8x8 decode to 9 frames of 64x64");
    float *img = calloc(3 * 64 * 64, sizeof(float)), *ref = calloc(16 * 3 * 64, sizeof(float));
    rc = vae_encode_reference(vae, img, 64, 64, 9, ref);
    ok(rc == 0, "tiny VAE encodes a 9-frame 64x64 reference clip");
    free(img);
    free(ref);
    free(lat);
    vae_destroy(&vae);
    unlink(p1);
    unlink(p2);
    unlink(p3);
}

/* The fixture's decoder renamed "model.<key>", as the original's loader names it. */
static void test_model_prefix(struct backend *be, const char *dir)
{
    struct ckpt *fx = NULL;
    char path[512], name[256];
    snprintf(path, sizeof path, "%s/prefixed.safetensors", dir);
    if (ckpt_open(FIXTURE_DIR "/vae_decode.safetensors", &fx)) {
        skip(1, "fixture not readable");
        return;
    }
    struct st_writer *sw = st_writer_new();
    for (size_t i = 0; i < ckpt_count(fx); i++) {
        const struct ckpt_tensor *t = ckpt_at(fx, i);
        if (strncmp(t->name, "weights.", 8))
            continue;
        snprintf(name, sizeof name, "model.%s", t->name + 8);
        st_writer_add(sw, name, t->dtype, t->ndim, t->shape, t->data);
    }
    int rc = st_writer_write(sw, path);
    st_writer_destroy(&sw);
    ckpt_close(&fx);
    struct vae *vae = NULL;
    rc = rc ? rc : vae_open(be, path, VAE_PART_DECODER, &vae);
    ok(rc == 0 && vae && vae_receptive_field(vae) == 38, "keys with the 'model.' prefix load");
    vae_destroy(&vae);
    unlink(path);
}

/* The same frames whatever the number of threads. */
static void test_threads(void)
{
    struct backend *b1 = backend_open("cpu", 1), *b3 = backend_open("cpu", 3);
    struct vae *v1 = NULL, *v3 = NULL;
    int rc = !b1 || !b3;
    rc = rc ? rc : vae_open(b1, FIXTURE_DIR "/vae_decode.safetensors", VAE_PART_DECODER, &v1);
    rc = rc ? rc : vae_open(b3, FIXTURE_DIR "/vae_decode.safetensors", VAE_PART_DECODER, &v3);
    const int64_t h = 2, w = 2, L = 3, fsize = 3 * 16 * 16, nf = 9;
    float lat[3 * 16 * 4];
    for (int i = 0; i < 3 * 16 * 4; i++)
        lat[i] = rnd_normal();
    struct keep k1 = {.frames = calloc((size_t)(nf * fsize), 4), .f0 = 0, .n = nf, .fsize = fsize};
    struct keep k3 = {.frames = calloc((size_t)(nf * fsize), 4), .f0 = 0, .n = nf, .fsize = fsize};
    rc = rc ? rc : vae_decode_range(v1, h, w, lat, 0, L, 0, keep_frame, &k1);
    rc = rc ? rc : vae_decode_range(v3, h, w, lat, 0, L, 0, keep_frame, &k3);
    ok(rc == 0 && k1.got == nf && memcmp(k1.frames, k3.frames, (size_t)(nf * fsize) * 4) == 0,
       "1 and 3 threads decode the same bytes");
    free(k1.frames);
    free(k3.frames);
    vae_destroy(&v1);
    vae_destroy(&v3);
    backend_destroy(&b1);
    backend_destroy(&b3);
}

/* Copies the fixture's decoder minus one tensor and with one misshapen. */
static void test_refusal(struct backend *be, const char *dir)
{
    struct ckpt *fx = NULL;
    char path[512];
    snprintf(path, sizeof path, "%s/broken.safetensors", dir);
    if (ckpt_open(FIXTURE_DIR "/vae_decode.safetensors", &fx)) {
        skip(2, "fixture not readable");
        return;
    }
    struct st_writer *sw = st_writer_new();
    for (size_t i = 0; i < ckpt_count(fx); i++) {
        const struct ckpt_tensor *t = ckpt_at(fx, i);
        if (strncmp(t->name, "weights.", 8))
            continue;
        const char *name = t->name + 8;
        if (!strcmp(name, "decoder.upsamples.4.shortcut.bias"))
            continue;
        if (!strcmp(name, "decoder.middle.1.proj.weight")) {
            int64_t shape[4] = {t->shape[0], t->shape[1], 1, 1};
            float *v = calloc((size_t)(shape[0] * shape[1]), 4);
            shape[0] -= 1;
            st_writer_add(sw, name, DTYPE_F32, 4, shape, v);
            free(v);
            continue;
        }
        st_writer_add(sw, name, t->dtype, t->ndim, t->shape, t->data);
    }
    int rc = st_writer_write(sw, path);
    st_writer_destroy(&sw);
    ckpt_close(&fx);
    struct vae *vae = NULL;
    if (rc) {
        skip(2, "cannot write the broken checkpoint");
        return;
    }
    rc = vae_open(be, path, VAE_PART_DECODER, &vae);
    ok(rc != 0 && vae == NULL, "a missing and a misshapen tensor refuse the load");
    rc = vae_open(be, path, VAE_PART_ENCODER, &vae);
    ok(rc != 0 && vae == NULL, "a checkpoint without the encoder refuses an encoder load");
    unlink(path);
}

int main(void)
{
    log_set_level(LOG_LEVEL_ERROR);
    struct backend *be = backend_open("cpu", 2);
    if (!be) {
        skip(1, "no cpu backend");
        return done_testing();
    }
    char dir[] = "/tmp/t_vae_XXXXXX";
    if (!mkdtemp(dir)) {
        skip(1, "no temp dir");
        return done_testing();
    }
    test_segments(be);
    test_tiny(be, dir);
    test_refusal(be, dir);
    test_model_prefix(be, dir);
    test_threads();
    rmdir(dir);
    backend_destroy(&be);
    return done_testing();
}
