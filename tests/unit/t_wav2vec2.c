/*
 * t_wav2vec2.c - wav2vec2 against the original's outputs (fixture
 * wav2vec2.safetensors: torchaudio's HF-compatible model, tiny config),
 * thread-count determinism, the weight-norm key variants, the tiny model
 * writer and bad input.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "tests/tap.h"
#include "worker/engine/backend.h"
#include "worker/engine/checkpoint.h"
#include "worker/engine/st_writer.h"
#include "worker/models/wav2vec2.h"

#define FX FIXTURE_DIR "/wav2vec2.safetensors"

static float *fx_read(struct ckpt *fx, const char *name, int64_t *n)
{
    const struct ckpt_tensor *t = ckpt_find(fx, name);
    if (!t)
        return NULL;
    if (n)
        *n = ckpt_numel(t);
    return ckpt_read_f32(t);
}

static double max_abs_diff(const float *a, const float *b, int64_t n, double *peak)
{
    double m = 0, p = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m))
            m = d;
        if (fabs(b[i]) > p)
            p = fabs(b[i]);
    }
    if (peak)
        *peak = p;
    return m;
}

static int all_finite(const float *a, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(a[i]))
            return 0;
    return 1;
}

/* Copy the fixture's weights into a new file, renaming the weight-norm pair
 * to the newer parametrizations names and dropping the "weights." prefix. */
static int write_renamed(struct ckpt *fx, const char *path, int misshape)
{
    struct st_writer *w = st_writer_new();
    int rc = 0;
    for (size_t i = 0; i < ckpt_count(fx) && rc == 0; i++) {
        const struct ckpt_tensor *t = ckpt_at(fx, i);
        if (strncmp(t->name, "weights.", 8) != 0)
            continue;
        const char *name = t->name + 8;
        char buf[200];
        if (strcmp(name, "encoder.pos_conv_embed.conv.weight_g") == 0)
            name = "encoder.pos_conv_embed.conv.parametrizations.weight.original0";
        else if (strcmp(name, "encoder.pos_conv_embed.conv.weight_v") == 0)
            name = "encoder.pos_conv_embed.conv.parametrizations.weight.original1";
        snprintf(buf, sizeof(buf), "wav2vec2.%s", name);
        int64_t shape[TENSOR_MAX_DIMS];
        memcpy(shape, t->shape, sizeof(shape));
        if (misshape && strcmp(name, "encoder.layers.1.attention.k_proj.weight") == 0)
            shape[1] /= 2; /* [32, 16]: the first half of the data */
        rc = st_writer_add(w, buf, t->dtype, t->ndim, shape, t->data);
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
    struct wav2vec2 *m = NULL, *m1 = NULL;

    is_int(wav2vec2_frames(53760), 167, "53760 samples -> 167 frames");
    is_int(wav2vec2_frames(51840), 161, "51840 samples -> 161 frames");
    is_int(wav2vec2_frames(16637), 51, "16637 samples -> 51 frames");
    is_int(wav2vec2_frames(400), 1, "400 samples (receptive field) -> 1 frame");
    is_int(wav2vec2_frames(399), 0, "399 samples -> 0 frames");

    if (ckpt_open(FX, &fx) < 0) {
        ok(0, "open %s", FX);
        return done_testing();
    }
    is_int(wav2vec2_load(be, &fx, 1, &m), 0, "load the fixture weights ('weights.' prefix)");
    if (!m)
        return done_testing();
    const struct wav2vec2_config *c = wav2vec2_get_config(m);
    ok(c->n_conv == 7 && c->conv_dim[0] == 32 && c->conv_kernel[0] == 10 &&
           c->conv_stride[0] == 5 && c->conv_kernel[6] == 2 && c->conv_stride[6] == 2,
       "conv stack from shapes and metadata");
    ok(c->hidden == 32 && c->ffn == 64 && c->n_layers == 2 && c->n_heads == 4 &&
           c->pos_kernel == 16 && c->pos_groups == 4,
       "encoder config from shapes (hidden 32, ffn 64, 2 layers, 4 heads, pos 16/4)");
    is_int(wav2vec2_load(be1, &fx, 1, &m1), 0, "load again on a 1-thread backend");

    for (int k = 0; k < 2; k++) {
        char name[64];
        int64_t n = 0, ne = 0;
        snprintf(name, sizeof(name), "input.waveform_%d", k);
        float *wave = fx_read(fx, name, &n);
        snprintf(name, sizeof(name), "input.input_values_%d", k);
        float *iv_ref = fx_read(fx, name, NULL);
        snprintf(name, sizeof(name), "expected.conv_features_%d", k);
        float *cf_ref = fx_read(fx, name, &ne);
        snprintf(name, sizeof(name), "expected.last_hidden_state_%d", k);
        float *hs_ref = fx_read(fx, name, NULL);
        if (!wave || !iv_ref || !cf_ref || !hs_ref) {
            ok(0, "case %d tensors in the fixture", k);
            continue;
        }
        int64_t T = wav2vec2_frames_cfg(c, n);
        float *iv = xmalloc((size_t)n * sizeof(float));
        float *cf = xmalloc((size_t)(T * 32) * sizeof(float));
        float *hs = xmalloc((size_t)(T * 32) * sizeof(float));
        float *hs1 = xmalloc((size_t)(T * 32) * sizeof(float));
        int64_t nf = 0;
        is_int(wav2vec2_forward_ex(m, wave, n, 1, iv, cf, hs, &nf), 0, "case %d: forward", k);
        is_int(nf * 32, ne, "case %d: %lld frames as expected", k, (long long)nf);
        double peak;
        double d = max_abs_diff(iv, iv_ref, n, &peak);
        diag("case %d input_values max_abs %.3g", k, d);
        ok(d == 0, "case %d: processor normalisation bit-exact (numpy float32)", k);
        d = max_abs_diff(cf, cf_ref, ne, &peak);
        diag("case %d conv_features max_abs %.3g (peak %.3g)", k, d, peak);
        ok(d <= 1e-5 * peak, "case %d: conv features within 1e-5 of the peak", k);
        d = max_abs_diff(hs, hs_ref, ne, NULL);
        diag("case %d last_hidden_state max_abs %.3g", k, d);
        ok(d <= 1e-4, "case %d: last_hidden_state within 1e-4", k);
        if (m1) {
            is_int(wav2vec2_forward(m1, wave, n, hs1, NULL), 0, "case %d: 1-thread forward", k);
            ok(memcmp(hs, hs1, (size_t)ne * sizeof(float)) == 0,
               "case %d: same bytes with 1 and 2 threads", k);
        }
        free(wave);
        free(iv_ref);
        free(cf_ref);
        free(hs_ref);
        free(iv);
        free(cf);
        free(hs);
        free(hs1);
    }

    /* The parametrizations.weight.original0/1 names and the "wav2vec2."
     * prefix give the same model. */
    char dir[] = "/tmp/t_wav2vec2.XXXXXX";
    ok(mkdtemp(dir) != NULL, "temp dir");
    char path[256], path2[256];
    snprintf(path, sizeof(path), "%s/renamed.safetensors", dir);
    is_int(write_renamed(fx, path, 0), 0, "write the renamed copy");
    struct ckpt *ck2 = NULL;
    struct wav2vec2 *m2 = NULL;
    if (ckpt_open(path, &ck2) == 0 && wav2vec2_load(be, &ck2, 1, &m2) == 0) {
        int64_t n = 0;
        float *wave = fx_read(fx, "input.waveform_1", &n);
        int64_t T = wav2vec2_frames(n);
        float *a = xmalloc((size_t)(T * 32) * sizeof(float));
        float *b = xmalloc((size_t)(T * 32) * sizeof(float));
        ok(wave && wav2vec2_forward(m, wave, n, a, NULL) == 0 &&
               wav2vec2_forward(m2, wave, n, b, NULL) == 0 &&
               memcmp(a, b, (size_t)(T * 32) * sizeof(float)) == 0,
           "parametrizations names + 'wav2vec2.' prefix: same output");
        free(wave);
        free(a);
        free(b);
    } else {
        ok(0, "load the renamed copy");
    }
    wav2vec2_destroy(&m2);
    ckpt_close(&ck2);
    unlink(path);

    /* A misshapen matrix is refused at load. */
    ok(write_renamed(fx, path, 1) == 0 && ckpt_open(path, &ck2) == 0, "write a misshapen copy");
    if (ck2) {
        is_int(wav2vec2_load(be, &ck2, 1, &m2), ENC_EINVAL, "a misshapen k_proj is refused");
        ok(m2 == NULL, "no model on failure");
    }
    ckpt_close(&ck2);
    unlink(path);

    /* Not a wav2vec2 checkpoint. */
    struct ckpt *cclip = NULL;
    if (ckpt_open(FIXTURE_DIR "/clip_vision.safetensors", &cclip) == 0) {
        is_int(wav2vec2_load(be, &cclip, 1, &m2), ENC_EINVAL, "the CLIP fixture is refused");
        ckpt_close(&cclip);
    } else {
        ok(0, "open the CLIP fixture");
    }

    /* Bad input: a slice shorter than the receptive field. */
    float shortbuf[100] = {0};
    float outbuf[32];
    is_int(wav2vec2_forward(m, shortbuf, 100, outbuf, NULL), ENC_EINVAL,
           "a 100-sample slice is refused");

    /* The tiny model: written twice with the same seed gives the same bytes;
     * loads back with the tiny configuration; encodes one second. */
    snprintf(path, sizeof(path), "%s/tiny.safetensors", dir);
    snprintf(path2, sizeof(path2), "%s/tiny2.safetensors", dir);
    is_int(wav2vec2_write_tiny(path, 7), 0, "write the tiny model");
    is_int(wav2vec2_write_tiny(path2, 7), 0, "write it again");
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
    struct wav2vec2 *mt = NULL;
    if (ckpt_open(path, &ckt) == 0 && wav2vec2_load(be, &ckt, 1, &mt) == 0) {
        const struct wav2vec2_config *ct = wav2vec2_get_config(mt);
        struct wav2vec2_config want;
        wav2vec2_config_tiny(&want);
        ok(ct->hidden == want.hidden && ct->n_layers == want.n_layers &&
               ct->n_heads == want.n_heads && ct->ffn == want.ffn &&
               ct->conv_dim[3] == want.conv_dim[3] && ct->pos_kernel == want.pos_kernel &&
               ct->pos_groups == want.pos_groups,
           "tiny model loads with its configuration (hidden %lld)", (long long)ct->hidden);
        int64_t n = 16000, T = wav2vec2_frames(n);
        float *x = xmalloc((size_t)n * sizeof(float));
        float *o = xmalloc((size_t)(T * ct->hidden) * sizeof(float));
        for (int64_t i = 0; i < n; i++)
            x[i] = (float)(0.3 * sin(0.05 * (double)i) + 0.1 * sin(0.31 * (double)i));
        int64_t nf = 0;
        ok(wav2vec2_forward(mt, x, n, o, &nf) == 0 && nf == 49 && all_finite(o, T * ct->hidden),
           "tiny model encodes 1 s into 49 finite frames");
        free(x);
        free(o);
    } else {
        ok(0, "load the tiny model");
    }
    wav2vec2_destroy(&mt);
    ckpt_close(&ckt);
    unlink(path);
    unlink(path2);
    rmdir(dir);

    /* In-memory seeded model (benchmarks), a small configuration. */
    {
        struct wav2vec2_config rc;
        wav2vec2_config_tiny(&rc);
        rc.hidden = 64;
        rc.n_heads = 4;
        rc.ffn = 128;
        rc.pos_groups = 4;
        struct wav2vec2 *mr = NULL;
        int64_t n = 8000, nf = 0;
        float *x = xmalloc((size_t)n * sizeof(float));
        float *o = xmalloc((size_t)(wav2vec2_frames(n) * rc.hidden) * sizeof(float));
        for (int64_t i = 0; i < n; i++)
            x[i] = (float)sin(0.02 * (double)i);
        ok(wav2vec2_init_random(be, &rc, 9, &mr) == 0 && wav2vec2_forward(mr, x, n, o, &nf) == 0 &&
               nf == 24 && all_finite(o, nf * rc.hidden),
           "seeded in-memory model encodes 0.5 s into 24 frames");
        ok(wav2vec2_bench(mr, 0.1, 1) > 0, "bench reports a positive rate");
        wav2vec2_destroy(&mr);
        rc.pos_groups = 5;
        is_int(wav2vec2_init_random(be, &rc, 9, &mr), ENC_EINVAL, "inconsistent config refused");
        free(x);
        free(o);
    }

    wav2vec2_destroy(&m);
    wav2vec2_destroy(&m1);
    ckpt_close(&fx);
    backend_destroy(&be);
    backend_destroy(&be1);
    return done_testing();
}
