/*
 * t_umt5.c - the umT5 encoder against the fixture computed by the original
 * WanT5EncoderModel (2 prompts, 233 and 15 real tokens: relative distances
 * beyond 128 reach the last bucket), relative buckets, thread-count
 * independence, bad ids and checkpoints, and the tiny model writer.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/json.h"
#include "common/log.h"
#include "tests/tap.h"
#include "worker/engine/backend.h"
#include "worker/engine/checkpoint.h"
#include "worker/models/tokenizer.h"
#include "worker/models/umt5.h"

static int n_errors;

static void count_lines(void *ctx, enum log_level level, const char *line)
{
    (void)ctx;
    (void)line;
    if (level == LOG_LEVEL_ERROR)
        n_errors++;
}

/* encode() runs m on ids[n] and returns the host f32 output (caller frees). */
static float *encode(struct backend *be, struct umt5 *m, const int64_t *ids, int n, int *rc)
{
    struct tensor *out = NULL;
    *rc = umt5_encode(m, ids, n, &out);
    if (*rc < 0)
        return NULL;
    float *host = backend_tensor_to_f32(be, out);
    tensor_destroy(&out);
    return host;
}

static void test_fixture(struct backend *be, struct backend *be1)
{
    struct ckpt *ck = NULL;
    struct umt5 *m = NULL, *m1 = NULL;
    int rc = ckpt_open(FIXTURE_DIR "/umt5_encoder.safetensors", &ck);
    is_int(rc, 0, "open the umt5 fixture");
    if (rc < 0)
        return;
    rc = umt5_load(be, &ck, 1, "weights.", &m);
    is_int(rc, 0, "load the fixture weights");
    if (rc < 0) {
        ckpt_close(&ck);
        return;
    }
    const struct umt5_config *c = umt5_get_config(m);
    ok(c->vocab == 656 && c->dim == 64 && c->dim_attn == 64 && c->dim_ffn == 128 &&
           c->n_heads == 4 && c->n_layers == 2 && c->n_buckets == 32,
       "config from shapes: vocab %d dim %d attn %d ffn %d heads %d layers %d buckets %d", c->vocab,
       c->dim, c->dim_attn, c->dim_ffn, c->n_heads, c->n_layers, c->n_buckets);

    /* Relative position buckets. */
    const struct ckpt_tensor *tb = ckpt_find(ck, "expected.rel_bucket");
    const struct ckpt_tensor *to = ckpt_find(ck, "expected.rel_bucket_offset");
    ok(tb && to, "bucket tensors present");
    if (tb && to) {
        float *b = ckpt_read_f32(tb), *o = ckpt_read_f32(to);
        int bad = 0, offset = (int)o[0];
        for (int64_t i = 0; i < ckpt_numel(tb); i++) {
            int want = (int)b[i], got = umt5_relative_bucket((int)i - offset, 32, 128);
            if (got != want && bad++ < 3)
                diag("r = %d: bucket %d, want %d", (int)i - offset, got, want);
        }
        is_int(bad, 0, "all %lld relative buckets equal the original's", (long long)ckpt_numel(tb));
        free(b);
        free(o);
    }

    const struct ckpt_tensor *tid = ckpt_find(ck, "input.input_ids");
    const struct ckpt_tensor *tlen = ckpt_find(ck, "expected.seq_lens");
    ok(tid && tlen && tid->ndim == 2, "input ids present");
    if (!tid || !tlen) {
        umt5_destroy(&m);
        ckpt_close(&ck);
        return;
    }
    float *idf = ckpt_read_f32(tid), *lenf = ckpt_read_f32(tlen);
    int64_t width = tid->shape[1];

    /* Text to ids: the fixture's prompts through the tokenizer. */
    struct json *cfg = NULL;
    struct tokenizer *tk = NULL;
    const char *meta = ckpt_meta(ck, "config");
    int ids_ok = meta && json_parse(meta, strlen(meta), &cfg, NULL) == 0 &&
                 json_len(json_get(cfg, "prompts")) == 2 &&
                 tokenizer_open(FIXTURE_DIR "/tokenizer_spm.model", &tk) == 0;
    for (int p = 0; ids_ok && p < 2; p++) {
        const char *text = json_str(json_at(json_get(cfg, "prompts"), (size_t)p));
        int64_t tok[512];
        int real =
            text ? tokenizer_encode_padded(tk, text, strlen(text), (int)width, tok, NULL) : -1;
        ids_ok = real == (int)lenf[p];
        for (int64_t i = 0; ids_ok && i < width; i++)
            ids_ok = tok[i] == (int64_t)idf[p * width + i];
    }
    ok(ids_ok, "the fixture's prompts tokenise to its input ids");
    tokenizer_destroy(&tk);
    json_free(&cfg);

    int64_t ids[512];
    rc = umt5_load(be1, &ck, 1, "weights.", &m1);
    for (int p = 0; p < 2; p++) {
        int n = (int)lenf[p];
        char name[64];
        for (int i = 0; i < n; i++)
            ids[i] = (int64_t)idf[p * width + i];
        snprintf(name, sizeof(name), "expected.context_%d", p);
        const struct ckpt_tensor *te = ckpt_find(ck, name);
        float *got = encode(be, m, ids, n, &rc);
        ok(got && te && ckpt_numel(te) == (int64_t)n * 64, "prompt %d encoded (%d tokens)", p, n);
        if (got && te) {
            float *want = ckpt_read_f32(te);
            double max_abs = 0, peak = 0;
            for (int64_t i = 0; i < ckpt_numel(te); i++) {
                double d = fabs((double)got[i] - (double)want[i]);
                if (!(d <= max_abs))
                    max_abs = d;
                if (fabs(want[i]) > peak)
                    peak = fabs(want[i]);
            }
            diag("context_%d: max |diff| %.3g (peak |ref| %.3g)", p, max_abs, peak);
            ok(max_abs <= 1e-4, "context_%d within 1e-4 of the original (max %.3g)", p, max_abs);
            free(want);
        }
        if (m1 && got) {
            int rc1;
            float *got1 = encode(be1, m1, ids, n, &rc1);
            ok(got1 && memcmp(got, got1, (size_t)n * 64 * sizeof(float)) == 0,
               "prompt %d: same bytes with 1 and 3 threads", p);
            free(got1);
        }
        free(got);
    }

    /* Bad ids. */
    int e0 = n_errors;
    struct tensor *out = NULL;
    int64_t bad_ids[2] = {5, 656};
    is_int(umt5_encode(m, bad_ids, 2, &out), ENC_EINVAL, "an id past the table is refused");
    bad_ids[1] = -1;
    is_int(umt5_encode(m, bad_ids, 2, &out), ENC_EINVAL, "a negative id is refused");
    is_int(umt5_encode(m, bad_ids, 0, &out), ENC_EINVAL, "no tokens is refused");
    ok(out == NULL, "no output on failure");
    is_int(n_errors - e0, 3, "each refusal logged");

    free(idf);
    free(lenf);
    umt5_destroy(&m1);
    umt5_destroy(&m);
    ckpt_close(&ck);
}

static void test_wrong_checkpoint(struct backend *be)
{
    struct ckpt *ck = NULL;
    struct umt5 *m = NULL;
    if (ckpt_open(FIXTURE_DIR "/tokenizer.safetensors", &ck) < 0) {
        ok(0, "open tokenizer fixture");
        return;
    }
    is_int(umt5_load(be, &ck, 1, NULL, &m), ENC_EINVAL,
           "a checkpoint without the encoder is refused");
    ok(m == NULL, "no model on failure");
    ckpt_close(&ck);
}

static int files_equal(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa && fb;
    while (same) {
        int ca = fgetc(fa), cb = fgetc(fb);
        if (ca != cb)
            same = 0;
        if (ca == EOF || cb == EOF)
            break;
    }
    if (fa)
        fclose(fa);
    if (fb)
        fclose(fb);
    return same;
}

static void test_tiny(struct backend *be)
{
    char dir[] = "/tmp/t_umt5.XXXXXX";
    if (!mkdtemp(dir)) {
        ok(0, "temp dir");
        return;
    }
    char p1[600], p2[600], p3[600], tok[600];
    snprintf(p1, sizeof(p1), "%s/a.safetensors", dir);
    snprintf(p2, sizeof(p2), "%s/b.safetensors", dir);
    snprintf(p3, sizeof(p3), "%s/c.safetensors", dir);
    snprintf(tok, sizeof(tok), "%s/tiny.model", dir);
    is_int(umt5_write_tiny(p1, 42), 0, "write the tiny umt5");
    is_int(umt5_write_tiny(p2, 42), 0, "write it again");
    is_int(umt5_write_tiny(p3, 43), 0, "write another seed");
    ok(files_equal(p1, p2), "same seed, same bytes");
    ok(!files_equal(p1, p3), "another seed, other weights");

    struct ckpt *ck = NULL;
    struct umt5 *m = NULL;
    struct tokenizer *tk = NULL;
    int rc = ckpt_open(p1, &ck);
    if (rc == 0)
        rc = umt5_load(be, &ck, 1, NULL, &m);
    is_int(rc, 0, "tiny umt5 loads");
    if (tokenizer_write_tiny(tok) == 0)
        tokenizer_open(tok, &tk);
    ok(tk != NULL, "tiny tokenizer loads");
    if (m && tk) {
        const struct umt5_config *c = umt5_get_config(m);
        ok(c->dim == UMT5_TINY_DIM && c->vocab >= tokenizer_vocab_size(tk) && c->vocab % 16 == 0,
           "tiny table covers the tiny vocabulary (%d rows for %d pieces)", c->vocab,
           tokenizer_vocab_size(tk));
        int64_t ids[64];
        const char *text = "A young woman is singing \xf0\x9f\x8e\xa4 in front of the camera.";
        int n = tokenizer_encode_padded(tk, text, strlen(text), 64, ids, NULL);
        float *x = encode(be, m, ids, n, &rc);
        ok(x != NULL, "tiny encode of %d tokens", n);
        if (x) {
            int finite = 1;
            double ss = 0;
            for (int i = 0; i < n * c->dim; i++) {
                finite &= isfinite(x[i]) != 0;
                ss += (double)x[i] * x[i];
            }
            double rms = sqrt(ss / (n * c->dim));
            ok(finite && rms > 0.5 && rms < 2.0, "output finite and RMS-normalised (rms %.3f)",
               rms);
        }
        free(x);
    }
    tokenizer_destroy(&tk);
    umt5_destroy(&m);
    ckpt_close(&ck);
    unlink(p1);
    unlink(p2);
    unlink(p3);
    unlink(tok);
    rmdir(dir);
}

int main(void)
{
    log_set_sink(count_lines, NULL);
    struct backend *be = backend_cpu_new(3), *be1 = backend_cpu_new(1);
    ok(be && be1, "cpu backends");
    if (!be || !be1)
        return done_testing();
    test_fixture(be, be1);
    test_wrong_checkpoint(be);
    test_tiny(be);
    backend_destroy(&be);
    backend_destroy(&be1);
    return done_testing();
}
