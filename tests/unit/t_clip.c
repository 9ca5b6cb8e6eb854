/*
 * t_clip.c - the CLIP vision tower against the original's outputs (fixture
 * clip_vision.safetensors: every preprocessing stage, the embeddings, each
 * block and the features), unprefixed key names, the tiny model writer and
 * thread-count determinism.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/xmalloc.h"
#include "tests/tap.h"
#include "worker/engine/backend.h"
#include "worker/engine/checkpoint.h"
#include "worker/engine/st_writer.h"
#include "worker/models/clip.h"
#include "worker/models/image_resize.h"

#define FX FIXTURE_DIR "/clip_vision.safetensors"

struct stage {
    const char *tap;      /* tap name */
    const char *expected; /* fixture tensor */
    double tol;
    float *got;
    int64_t n;
};

static struct stage stages[] = {
    {"resized", "expected.resized", 1e-5, NULL, 0},
    {"pixel_values", "expected.pixel_values", 1e-5, NULL, 0},
    {"embeddings", "expected.embeddings", 1e-4, NULL, 0},
    {"block0", "expected.block_0", 1e-4, NULL, 0},
    {"block1", "expected.block_1", 1e-4, NULL, 0},
};
#define N_STAGES (int)(sizeof(stages) / sizeof(stages[0]))

static void tap(void *ctx, const char *name, const float *data, int64_t n)
{
    (void)ctx;
    for (int i = 0; i < N_STAGES; i++)
        if (strcmp(stages[i].tap, name) == 0) {
            free(stages[i].got);
            stages[i].got = xmalloc((size_t)n * sizeof(float));
            memcpy(stages[i].got, data, (size_t)n * sizeof(float));
            stages[i].n = n;
        }
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

/* Copy the fixture's weights without any prefix ("weights.visual." cut). */
static int write_bare(struct ckpt *fx, const char *path)
{
    struct st_writer *w = st_writer_new();
    int rc = 0;
    const char *pre = "weights.visual.";
    for (size_t i = 0; i < ckpt_count(fx) && rc == 0; i++) {
        const struct ckpt_tensor *t = ckpt_at(fx, i);
        if (strncmp(t->name, pre, strlen(pre)) == 0)
            rc = st_writer_add(w, t->name + strlen(pre), t->dtype, t->ndim, t->shape, t->data);
    }
    st_writer_meta(w, "config", ckpt_meta(fx, "config"));
    if (rc == 0)
        rc = st_writer_write(w, path);
    st_writer_destroy(&w);
    return rc;
}

int main(void)
{
    struct ckpt *fx = NULL;
    struct backend *be = backend_cpu_new(2), *be1 = backend_cpu_new(1);
    struct clip *m = NULL;

    if (ckpt_open(FX, &fx) < 0) {
        ok(0, "open %s", FX);
        return done_testing();
    }
    is_int(clip_load(be, &fx, 1, &m), 0, "load the fixture weights ('weights.visual.' prefix)");
    if (!m)
        return done_testing();
    const struct clip_config *c = clip_get_config(m);
    ok(c->dim == 64 && c->patch == 14 && c->grid == 4 && c->image_size == 56 && c->n_tokens == 17 &&
           c->n_blocks == 3 && c->n_heads == 4 && c->mlp == 256,
       "config from shapes and metadata (64 wide, 4 heads, 56 px, 17 tokens, 3 blocks)");

    const struct ckpt_tensor *img = ckpt_find(fx, "input.clip_image");
    float *image = img ? ckpt_read_f32(img) : NULL;
    float *feat_ref = ckpt_read_f32(ckpt_find(fx, "expected.features"));
    ok(image && img->ndim == 3 && feat_ref, "fixture image and features");
    int64_t H = img->shape[1], W = img->shape[2];
    int64_t nf = c->n_tokens * c->dim;
    float *feat = xmalloc((size_t)nf * sizeof(float));
    float *feat1 = xmalloc((size_t)nf * sizeof(float));
    is_int(clip_forward(m, image, H, W, feat, tap, NULL), 0, "forward %lldx%lld", (long long)W,
           (long long)H);
    for (int i = 0; i < N_STAGES; i++) {
        const struct ckpt_tensor *t = ckpt_find(fx, stages[i].expected);
        float *ref = t ? ckpt_read_f32(t) : NULL;
        if (!ref || !stages[i].got || stages[i].n != ckpt_numel(t)) {
            ok(0, "stage %s present with %lld values", stages[i].tap,
               t ? (long long)ckpt_numel(t) : -1LL);
            free(ref);
            continue;
        }
        double d = max_abs_diff(stages[i].got, ref, stages[i].n);
        diag("%s max_abs %.3g", stages[i].tap, d);
        ok(d <= stages[i].tol, "%s within %g", stages[i].tap, stages[i].tol);
        free(ref);
    }
    double d = max_abs_diff(feat, feat_ref, nf);
    diag("features max_abs %.3g", d);
    ok(d <= 1e-4, "features within 1e-4");

    /* Thread count does not change the bytes. */
    struct clip *m1 = NULL;
    ok(clip_load(be1, &fx, 1, &m1) == 0 && clip_forward(m1, image, H, W, feat1, NULL, NULL) == 0 &&
           memcmp(feat, feat1, (size_t)nf * sizeof(float)) == 0,
       "same bytes with 1 and 2 threads");
    clip_destroy(&m1);

    /* No prefix at all. */
    char dir[] = "/tmp/t_clip.XXXXXX";
    ok(mkdtemp(dir) != NULL, "temp dir");
    char path[256], path2[256];
    snprintf(path, sizeof(path), "%s/bare.safetensors", dir);
    struct ckpt *ck2 = NULL;
    struct clip *m2 = NULL;
    ok(write_bare(fx, path) == 0 && ckpt_open(path, &ck2) == 0 &&
           clip_load(be, &ck2, 1, &m2) == 0 &&
           clip_forward(m2, image, H, W, feat1, NULL, NULL) == 0 &&
           memcmp(feat, feat1, (size_t)nf * sizeof(float)) == 0,
       "unprefixed keys give the same features");
    clip_destroy(&m2);
    ckpt_close(&ck2);
    unlink(path);

    /* Not a CLIP checkpoint. */
    struct ckpt *cw = NULL;
    if (ckpt_open(FIXTURE_DIR "/wav2vec2.safetensors", &cw) == 0) {
        is_int(clip_load(be, &cw, 1, &m2), ENC_EINVAL, "the wav2vec2 fixture is refused");
        ok(m2 == NULL, "no model on failure");
        ckpt_close(&cw);
    } else {
        ok(0, "open the wav2vec2 fixture");
    }

    /* Bad input. */
    is_int(clip_forward(m, image, 0, W, feat1, NULL, NULL), ENC_EINVAL, "a 0-row image is refused");

    /* Upscaling path: a 2x3 constant image resizes to the same constant. */
    {
        float src[6] = {0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f}, dst[20];
        image_resize_bicubic(src, 1, 2, 3, dst, 4, 5);
        int same = 1;
        for (int i = 0; i < 20; i++)
            if (fabsf(dst[i] - 0.25f) > 1e-6f)
                same = 0;
        ok(same, "bicubic upscale keeps a constant image constant");
    }

    /* The tiny model. */
    snprintf(path, sizeof(path), "%s/tiny.safetensors", dir);
    snprintf(path2, sizeof(path2), "%s/tiny2.safetensors", dir);
    is_int(clip_write_tiny(path, 3), 0, "write the tiny model");
    is_int(clip_write_tiny(path2, 3), 0, "write it again");
    {
        FILE *f1 = fopen(path, "rb"), *f2 = fopen(path2, "rb");
        int same = f1 && f2;
        while (same) {
            int x = fgetc(f1), y = fgetc(f2);
            if (x != y)
                same = 0;
            if (x == EOF)
                break;
        }
        if (f1)
            fclose(f1);
        if (f2)
            fclose(f2);
        ok(same, "same seed, same file");
    }
    struct ckpt *ckt = NULL;
    struct clip *mt = NULL;
    if (ckpt_open(path, &ckt) == 0 && clip_load(be, &ckt, 1, &mt) == 0) {
        const struct clip_config *ct = clip_get_config(mt);
        struct clip_config want;
        clip_config_tiny(&want);
        ok(ct->dim == want.dim && ct->n_tokens == want.n_tokens && ct->n_heads == want.n_heads &&
               ct->n_blocks == want.n_blocks && ct->image_size == want.image_size,
           "tiny model loads with its configuration (%lld tokens x %lld)", (long long)ct->n_tokens,
           (long long)ct->dim);
        ok(ckpt_find(ckt, "visual.cls_embedding") != NULL, "tiny model uses 'visual.' names");
        int64_t th = 64, tw = 48;
        float *im = xmalloc((size_t)(3 * th * tw) * sizeof(float));
        for (int64_t i = 0; i < 3 * th * tw; i++)
            im[i] = (float)sin(0.01 * (double)i);
        float *o = xmalloc((size_t)(ct->n_tokens * ct->dim) * sizeof(float));
        int good = clip_forward(mt, im, th, tw, o, NULL, NULL) == 0;
        for (int64_t i = 0; good && i < ct->n_tokens * ct->dim; i++)
            good = isfinite(o[i]);
        ok(good, "tiny model encodes a 48x64 image to finite features");
        free(im);
        free(o);
    } else {
        ok(0, "load the tiny model");
    }
    clip_destroy(&mt);
    ckpt_close(&ckt);
    unlink(path);
    unlink(path2);
    rmdir(dir);

    /* In-memory seeded tower (benchmarks): runs, and a bad config is refused. */
    {
        struct clip_config rc;
        clip_config_tiny(&rc);
        struct clip *mr = NULL;
        float *o = xmalloc((size_t)(rc.n_tokens * rc.dim) * sizeof(float));
        ok(clip_init_random(be, &rc, 5, &mr) == 0 &&
               clip_forward(mr, image, H, W, o, NULL, NULL) == 0,
           "seeded in-memory tower runs");
        clip_destroy(&mr);
        rc.n_tokens = 5;
        is_int(clip_init_random(be, &rc, 5, &mr), ENC_EINVAL, "inconsistent config refused");
        free(o);
    }

    for (int i = 0; i < N_STAGES; i++)
        free(stages[i].got);
    free(image);
    free(feat_ref);
    free(feat);
    free(feat1);
    clip_destroy(&m);
    ckpt_close(&fx);
    backend_destroy(&be);
    backend_destroy(&be1);
    return done_testing();
}
