/*
 * t_dit.c - the DiT beyond what `encore parity` checks: the audio token
 * grouping against the original's ranges, thread-count independence of a
 * forward, the tiny model writer, and refusal of broken checkpoints.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/json.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "tests/tap.h"
#include "worker/engine/backend.h"
#include "worker/engine/checkpoint.h"
#include "worker/engine/st_writer.h"
#include "worker/models/dit.h"
#include "worker/models/dit_internal.h"

#define FX FIXTURE_DIR "/dit_forward.safetensors"

static void test_audio_groups(struct ckpt *fx)
{
    const char *cases = ckpt_meta(fx, "cases");
    struct json *j = NULL;
    ok(cases && json_parse(cases, strlen(cases), &j, NULL) == 0, "fixture lists its cases");
    for (size_t c = 0; j && c < json_len(j); c++) {
        const struct json *cs = json_at(j, c);
        int64_t ntok = 0, nframes = 0, na = 0;
        json_int(json_get(cs, "wav2vec_tokens"), &ntok);
        json_int(json_get(cs, "video_sample_n_frames"), &nframes);
        json_int(json_get(cs, "vocal_tokens_per_latent_frame"), &na);
        const struct json *ranges = json_get(cs, "audio_pos_idx_ranges");
        int64_t G = (int64_t)json_len(ranges);
        int64_t first[64], last[64];
        int64_t got = dit_audio_groups(ntok, (int)nframes, G, first, last);
        is_int(got, na, "case %zu: %lld tokens per latent frame", c, (long long)na);
        int same = G > 0 && G <= 64;
        for (int64_t g = 0; same && g < G; g++) {
            int64_t a = 0, b = 0;
            json_int(json_at(json_at(ranges, (size_t)g), 0), &a);
            json_int(json_at(json_at(ranges, (size_t)g), 1), &b);
            same = first[g] + 4 == a && last[g] - 4 == b;
        }
        ok(same, "case %zu: group ranges equal the original's", c);
    }
    json_free(&j);
    /* SPEC 6.2 worked numbers: a full real window (167 tokens, 81 frames) */
    int64_t first[21], last[21];
    is_int(dit_audio_groups(167, 81, 21, first, last), 17, "real window: 17 tokens per frame");
    ok(first[0] == -11 && last[0] == 5 && first[1] == -3 && last[1] == 13 &&
           first[20] == 153 && last[20] == 169,
       "real window: expanded ranges [-11,5] [-3,13] ... [153,169]");
    /* the long-form rounding of SPEC 6.2: N=96, C=81, i=7 gives centre 30 */
    int64_t f96[21], l96[21];
    dit_audio_groups(96, 81, 21, f96, l96);
    int64_t half = (l96[7] - f96[7] - 8) / 2;
    is_int(f96[7] + 4 + half, 30, "centre of group 7 for 96 tokens is 30, not 31");
}

struct forward_case {
    float *x, *voc, *tneg, *tpos, *clip, *y;
    int64_t f, nvoc, nneg, npos, nclip, frames, h, w, nx;
    int clip_frames;
    float t;
};

static float *fx_read(struct ckpt *fx, const char *name, int64_t *n)
{
    const struct ckpt_tensor *t = ckpt_find(fx, name);
    if (!t)
        return NULL;
    if (n)
        *n = ckpt_numel(t);
    return ckpt_read_f32(t);
}

static int load_case(struct ckpt *fx, struct forward_case *fc)
{
    const struct ckpt_tensor *lt = ckpt_find(fx, "case1.latents");
    const struct ckpt_tensor *yt = ckpt_find(fx, "common.y_full");
    const struct ckpt_tensor *vt = ckpt_find(fx, "case1.vocal");
    if (!lt || !yt || !vt)
        return -1;
    fc->x = fx_read(fx, "case1.latents", &fc->nx);
    fc->voc = fx_read(fx, "case1.vocal", NULL);
    fc->tneg = fx_read(fx, "common.text_neg", &fc->nneg);
    fc->tpos = fx_read(fx, "common.text_pos", &fc->npos);
    fc->clip = fx_read(fx, "common.clip_fea", &fc->nclip);
    fc->y = fx_read(fx, "common.y_full", NULL);
    float *t = fx_read(fx, "case1.t", NULL), *vs = fx_read(fx, "case1.video_sample_n_frames", NULL);
    fc->t = t[0];
    fc->clip_frames = (int)vs[0];
    free(t);
    free(vs);
    fc->f = lt->shape[2];
    fc->nvoc = vt->shape[1];
    fc->frames = yt->shape[2];
    fc->h = yt->shape[3];
    fc->w = yt->shape[4];
    return 0;
}

static void free_case(struct forward_case *fc)
{
    free(fc->x);
    free(fc->voc);
    free(fc->tneg);
    free(fc->tpos);
    free(fc->clip);
    free(fc->y);
}

/* run(): one forward of the fixture's (short, padded) case 1 on n threads. */
static float *run(struct ckpt *fx, const struct forward_case *fc, int threads, int64_t text_dim)
{
    struct backend *be = backend_open("cpu", threads);
    struct dit *d = NULL;
    struct dit_job *job = NULL;
    float *out = NULL;
    if (be && dit_load(be, &fx, 1, NULL, &d) == 0) {
        struct dit_job_inputs in = {
            .text_neg = fc->tneg, .n_neg = fc->nneg / text_dim, .text_pos = fc->tpos,
            .n_pos = fc->npos / text_dim, .clip = fc->clip,
            .n_clip = fc->nclip / dit_get_config(d)->clip_dim, .y = fc->y,
            .frames = fc->frames, .h = fc->h, .w = fc->w, .clip_frames = fc->clip_frames,
        };
        out = xmalloc((size_t)(3 * fc->nx) * sizeof(float));
        if (dit_job_new(d, &in, &job) < 0 ||
            dit_forward(d, job, fc->x, fc->f, fc->t, fc->voc, fc->nvoc, out) < 0) {
            free(out);
            out = NULL;
        }
    }
    dit_job_destroy(&job);
    dit_destroy(&d);
    backend_destroy(&be);
    return out;
}

static void test_thread_independence(struct ckpt *fx)
{
    struct forward_case fc = {0};
    if (load_case(fx, &fc) < 0) {
        skip(3, "fixture lacks case1");
        return;
    }
    const struct ckpt_tensor *tw = ckpt_find(fx, "text_embedding.0.weight");
    int64_t text_dim = tw ? tw->shape[1] : 1;
    float *a = run(fx, &fc, 1, text_dim), *b = run(fx, &fc, 2, text_dim);
    float *c = run(fx, &fc, 4, text_dim);
    size_t bytes = (size_t)(3 * fc.nx) * sizeof(float);
    ok(a && b && c, "forward runs on 1, 2 and 4 threads");
    ok(a && b && memcmp(a, b, bytes) == 0, "1 and 2 threads give the same bytes");
    ok(a && c && memcmp(a, c, bytes) == 0, "1 and 4 threads give the same bytes");
    free(a);
    free(b);
    free(c);
    free_case(&fc);
}

/* copy_without(): the fixture's DiT weights minus one tensor, or with one
 * tensor given a wrong shape, into a new file. */
static int copy_without(struct ckpt *fx, const char *path, const char *drop, const char *bend)
{
    struct st_writer *w = st_writer_new();
    for (size_t i = 0; i < ckpt_count(fx); i++) {
        const struct ckpt_tensor *t = ckpt_at(fx, i);
        if (strchr(t->name, '.') && (!strncmp(t->name, "case", 4) ||
                                     !strncmp(t->name, "common.", 7)))
            continue;
        if (drop && strcmp(t->name, drop) == 0)
            continue;
        int64_t shape[TENSOR_MAX_DIMS];
        memcpy(shape, t->shape, sizeof shape);
        int64_t n = ckpt_numel(t);
        if (bend && strcmp(t->name, bend) == 0) {
            /* same elements, half the rows: a shape no layer expects */
            shape[0] = t->shape[0] / 2;
            shape[1] = n / shape[0];
        }
        st_writer_add(w, t->name, t->dtype, bend && !strcmp(t->name, bend) ? 2 : t->ndim,
                      shape, t->data);
    }
    st_writer_meta(w, "config", ckpt_meta(fx, "config"));
    int rc = st_writer_write(w, path);
    st_writer_destroy(&w);
    return rc;
}

static void test_broken_checkpoints(struct ckpt *fx)
{
    char dir[] = "/tmp/t_dit_XXXXXX", path[256];
    struct backend *be = backend_open("cpu", 1);
    struct dit *d = NULL;
    struct ckpt *ck = NULL;

    ok(mkdtemp(dir) != NULL, "temp dir");
    snprintf(path, sizeof path, "%s/missing.safetensors", dir);
    ok(copy_without(fx, path, "blocks.1.cross_attn.k_vocal.weight", NULL) == 0 &&
           ckpt_open(path, &ck) == 0,
       "wrote a checkpoint missing blocks.1.cross_attn.k_vocal.weight");
    is_int(dit_load(be, &ck, 1, NULL, &d), ENC_EINVAL, "a missing tensor refuses the load");
    ok(d == NULL, "and leaves no model");
    ckpt_close(&ck);
    unlink(path);

    snprintf(path, sizeof path, "%s/bent.safetensors", dir);
    ok(copy_without(fx, path, NULL, "blocks.0.ffn.0.weight") == 0 && ckpt_open(path, &ck) == 0,
       "wrote a checkpoint with blocks.0.ffn.0.weight misshapen");
    ok(dit_load(be, &ck, 1, NULL, &d) < 0 && d == NULL, "a misshapen tensor refuses the load");
    ckpt_close(&ck);
    unlink(path);

    snprintf(path, sizeof path, "%s/tiny.safetensors", dir);
    struct dit_tiny_dims dims = {.dim = 64, .num_heads = 2, .num_layers = 2, .ffn_dim = 96,
                                 .text_dim = 24, .clip_dim = 40, .audio_dim = 56,
                                 .vocal_ffn_dim = 80};
    ok(dit_write_tiny(path, 7, &dims) == 0 && ckpt_open(path, &ck) == 0, "tiny DiT written");
    ok(dit_load(be, &ck, 1, NULL, &d) == 0, "tiny DiT loads");
    if (d) {
        const struct dit_config *c = dit_get_config(d);
        ok(c->dim == 64 && c->num_heads == 2 && c->num_layers == 2 && c->ffn_dim == 96 &&
               c->text_dim == 24 && c->clip_dim == 40 && c->audio_dim == 56 &&
               c->vocal_ffn_dim == 80 && c->text_len == 512 && c->out_dim == 16,
           "its configuration is read back from shapes and metadata");
    } else {
        skip(1, "no tiny model");
    }
    dit_destroy(&d);
    ckpt_close(&ck);
    unlink(path);
    rmdir(dir);
    backend_destroy(&be);
}

int main(void)
{
    struct ckpt *fx = NULL;
    log_set_level(LOG_LEVEL_ERROR);
    if (ckpt_open(FX, &fx) < 0) {
        ok(0, "open %s", FX);
        return done_testing();
    }
    test_audio_groups(fx);
    test_thread_independence(fx);
    test_broken_checkpoints(fx);
    ckpt_close(&fx);
    return done_testing();
}
