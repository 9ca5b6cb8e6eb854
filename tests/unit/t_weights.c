/*
 * t_weights.c - binding parameters to stacked checkpoints on the cpu backend.
 *
 * Two small checkpoints written with st_writer (a base and an override)
 * check: later overrides earlier, -1 wildcards, dtype kept by weights_get
 * and converted by weights_get_f32, prefix fallback, the cpu backend
 * borrowing the mapping, and missing / misshapen / unexpected keys counted
 * and named in the log. Then the real fixtures: the DiT .pt stacked on
 * dit_forward.safetensors binds all 135 weights from the .pt and reports
 * exactly the 48 non-weight tensors as unexpected.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/bf16.h"
#include "common/err.h"
#include "common/log.h"
#include "tests/tap.h"
#include "worker/engine/backend.h"
#include "worker/engine/checkpoint.h"
#include "worker/engine/st_writer.h"
#include "worker/engine/weights.h"

static char logbuf[16384];
static size_t loglen;
static void sink(void *ctx, enum log_level level, const char *line)
{
    (void)ctx;
    (void)level;
    int k = snprintf(logbuf + loglen, sizeof logbuf - loglen, "%s\n", line);
    if (k > 0 && loglen + (size_t)k < sizeof logbuf)
        loglen += (size_t)k;
}

static int count_lines(const char *needle)
{
    int n = 0;
    for (const char *p = logbuf; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

int main(void)
{
    char dir[64], pa[128], pb[128];
    snprintf(dir, sizeof dir, "/tmp/t_weights.XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    snprintf(pa, sizeof pa, "%s/a.safetensors", dir);
    snprintf(pb, sizeof pb, "%s/b.safetensors", dir);
    log_set_sink(sink, NULL);

    float wa[6] = {1, 2, 3, 4, 5, 6}, wb[6] = {10, 20, 30, 40, 50, 60};
    float bias[3] = {0.5f, -1.25f, 3.0f}, x1[1] = {9}, enc[2] = {7, 8}, head[4] = {1, 1, 2, 2};
    struct st_writer *sw = st_writer_new();
    st_writer_add(sw, "blocks.0.w", DTYPE_F32, 2, (int64_t[]){2, 3}, wa);
    st_writer_add_f32_as(sw, "blocks.0.b", DTYPE_BF16, 1, (int64_t[]){3}, bias);
    st_writer_add(sw, "extra.x", DTYPE_F32, 1, (int64_t[]){1}, x1);
    st_writer_add(sw, "wav2vec2.enc.w", DTYPE_F32, 1, (int64_t[]){2}, enc);
    int rc1 = st_writer_write(sw, pa);
    st_writer_destroy(&sw);
    sw = st_writer_new();
    st_writer_add(sw, "blocks.0.w", DTYPE_F32, 2, (int64_t[]){2, 3}, wb);
    st_writer_add(sw, "head.w", DTYPE_F32, 1, (int64_t[]){4}, head);
    int rc2 = st_writer_write(sw, pb);
    st_writer_destroy(&sw);
    struct ckpt *cks[2] = {NULL, NULL};
    ok(rc1 == 0 && rc2 == 0 && ckpt_open(pa, &cks[0]) == 0 && ckpt_open(pb, &cks[1]) == 0,
       "two checkpoints written and opened");
    if (!cks[0] || !cks[1])
        diag("%s", logbuf);
    struct backend *be = backend_cpu_new(1);
    ok(be != NULL, "cpu backend");
    if (!be || !cks[0] || !cks[1])
        return done_testing();

    struct weights *w = weights_new(be, cks, 2);
    struct tensor *t = weights_get_shape(w, "blocks.0.w", 2, 3);
    float *f = t ? backend_tensor_to_f32(be, t) : NULL;
    ok(f && f[0] == 10 && f[5] == 60, "the later checkpoint overrides the earlier");
    ok(t && t->data == ckpt_find(cks[1], "blocks.0.w")->data,
       "cpu tensor borrows the mapping (no copy)");
    free(f);
    t = weights_get_shape(w, "blocks.0.b", 3);
    ok(t && t->dtype == DTYPE_BF16, "weights_get keeps bf16");
    t = weights_get_f32_shape(w, "blocks.0.b", -1);
    f = t ? backend_tensor_to_f32(be, t) : NULL;
    ok(f && t->dtype == DTYPE_F32 && t->shape[0] == 3 && f[0] == bf16_round(0.5f) &&
           f[1] == bf16_round(-1.25f) && f[2] == bf16_round(3.0f),
       "weights_get_f32 widens bf16, -1 keeps the size");
    free(f);
    t = weights_get_shape(w, "head.w", -1);
    ok(t && t->shape[0] == 4, "wildcard dimension");
    ok(weights_get_shape(w, "nope.w", 1) == NULL, "missing key gives NULL");
    ok(weights_get_shape(w, "nope.w", 1) == NULL, "  asked twice");
    ok(weights_get_shape(w, "head.w", 5) == NULL, "misshapen key gives NULL");
    ok(weights_get_shape(w, "head.w", 2, 2) == NULL, "  wrong rank too (same name)");
    ok(!weights_has(w, "enc.w"), "no prefix: 'enc.w' absent");
    weights_set_prefix(w, "wav2vec2.");
    ok(weights_has(w, "enc.w") && weights_find(w, "enc.w") == ckpt_find(cks[0], "wav2vec2.enc.w"),
       "prefix fallback finds 'wav2vec2.enc.w'");
    t = weights_get_f32_shape(w, "enc.w", 2);
    f = t ? backend_tensor_to_f32(be, t) : NULL;
    ok(f && f[0] == 7 && f[1] == 8, "prefixed tensor bound");
    free(f);
    ok(weights_find(w, "head.w") != NULL, "unprefixed names still resolve first");
    weights_set_prefix(w, "");

    loglen = 0;
    logbuf[0] = 0;
    is_int(weights_finish(w, ""), ENC_EINVAL, "finish fails with missing/misshapen keys");
    is_int(weights_missing_count(w), 2, "missing + misshapen counted once per name");
    is_int(weights_unexpected_count(w), 1, "one unexpected key (overridden ones are used)");
    ok(strstr(logbuf, "missing key 'nope.w'") != NULL, "missing key named");
    ok(strstr(logbuf, "misshapen key 'head.w': has shape [4], the model expects [5]") != NULL,
       "misshapen key named with both shapes");
    ok(strstr(logbuf, "unexpected key 'extra.x'") != NULL, "unexpected key named");
    is_int(count_lines("unexpected key '"), 1, "nothing else reported unexpected");
    weights_finish(w, "head.,blocks.");
    is_int(weights_unexpected_count(w), 0, "scope limits the unexpected report");
    weights_destroy(&w);
    ok(w == NULL, "destroy NULLs");

    /* a clean binding */
    w = weights_new(be, cks, 2);
    weights_get_shape(w, "blocks.0.w", 2, 3);
    weights_get_shape(w, "blocks.0.b", 3);
    weights_get_shape(w, "head.w", 4);
    weights_get_shape(w, "extra.x", 1);
    weights_get_shape(w, "wav2vec2.enc.w", 2);
    is_int(weights_finish(w, ""), 0, "every key bound: finish succeeds");
    is_int(weights_unexpected_count(w) + weights_missing_count(w), 0, "  nothing reported");
    weights_destroy(&w);

    /* the fixtures: .pt stacked over the safetensors twin */
    struct ckpt *fx[2] = {NULL, NULL};
    ok(ckpt_open(FIXTURE_DIR "/dit_forward.safetensors", &fx[0]) == 0 &&
           ckpt_open(FIXTURE_DIR "/dit_weights.pt", &fx[1]) == 0,
       "dit fixtures open");
    if (fx[0] && fx[1]) {
        w = weights_new(be, fx, 2);
        size_t from_pt = 0;
        for (size_t i = 0; i < ckpt_count(fx[1]); i++) {
            const struct ckpt_tensor *c = ckpt_at(fx[1], i);
            struct tensor *b = weights_get(w, c->name, c->ndim, c->shape);
            if (b && b->data == c->data)
                from_pt++;
        }
        is_int(from_pt, 135, "all 135 DiT weights bound from the .pt, borrowed in place");
        loglen = 0;
        is_int(weights_finish(w, ""), 0, "finish succeeds");
        is_int(weights_unexpected_count(w), 48, "the 48 case/common tensors are unexpected");
        weights_finish(w, "blocks.,head.,vocal_projector.");
        is_int(weights_unexpected_count(w), 0, "none within the weight scopes");
        weights_destroy(&w);
    }
    ckpt_close(&fx[0]);
    ckpt_close(&fx[1]);

    weights_destroy(&w); /* accepts NULL */
    ckpt_close(&cks[0]);
    ckpt_close(&cks[1]);
    backend_destroy(&be);
    unlink(pa);
    unlink(pb);
    rmdir(dir);
    return done_testing();
}
