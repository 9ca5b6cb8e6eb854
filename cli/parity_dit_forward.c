/*
 * parity_dit_forward.c - `encore parity` for "dit_forward" fixtures: the
 * DiT + audio adapter forward of each case, its guided combination, and
 * every debug intermediate the fixture holds (caseN.dbg.*, common.dbg.*).
 *
 * Tolerance (fixtures README): |got - ref| <= 1e-4 + 1e-4 |ref|.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/json.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "parity.h"
#include "worker/models/dit.h"
#include "worker/models/sampler.h"

#define ATOL 1e-4
#define RTOL 1e-4
#define MAX_TAPS 256

struct taps {
    int n;
    char *name[MAX_TAPS];
    float *data[MAX_TAPS];
    int64_t numel[MAX_TAPS];
};

static void taps_clear(struct taps *t)
{
    for (int i = 0; i < t->n; i++) {
        free(t->name[i]);
        free(t->data[i]);
    }
    t->n = 0;
}

static void collect(void *ctx, const char *name, const float *data, int ndim,
                    const int64_t *shape)
{
    struct taps *t = ctx;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    if (t->n == MAX_TAPS)
        return;
    t->name[t->n] = xstrdup(name);
    t->data[t->n] = xmalloc((size_t)n * sizeof(float));
    memcpy(t->data[t->n], data, (size_t)n * sizeof(float));
    t->numel[t->n] = n;
    t->n++;
}

static int find_tap(const struct taps *t, const char *name)
{
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->name[i], name) == 0)
            return i;
    return -1;
}

/* check_dbg(): every fixture tensor "<prefix>X" is compared with tap X. */
static void check_dbg(struct parity_run *r, const struct taps *t, const char *prefix)
{
    size_t plen = strlen(prefix);
    for (size_t i = 0; i < ckpt_count(r->fx); i++) {
        const struct ckpt_tensor *ct = ckpt_at(r->fx, i);
        if (strncmp(ct->name, prefix, plen) != 0)
            continue;
        int k = find_tap(t, ct->name + plen);
        if (k < 0) {
            log_error("'%s': no module output matches '%s'", r->path, ct->name);
            parity_check(r, ct->name, NULL, NULL, -1, ATOL, RTOL);
            continue;
        }
        parity_check(r, ct->name, NULL, t->data[k], t->numel[k], ATOL, RTOL);
    }
}

/* guidance_scales(): from the fixture config when it says, else the
 * values its README documents (audio 5.0, text 3.0). */
static void guidance_scales(struct parity_run *r, float *audio, float *text)
{
    const char *cfg = ckpt_meta(r->fx, "config");
    struct json *j = NULL;
    double v;
    *audio = 5.0f;
    *text = 3.0f;
    if (cfg && json_parse(cfg, strlen(cfg), &j, NULL) == 0) {
        if (json_num(json_get(j, "audio_guide_scale"), &v) == 0)
            *audio = (float)v;
        if (json_num(json_get(j, "text_guide_scale"), &v) == 0)
            *text = (float)v;
    }
    json_free(&j);
}

int parity_dit_forward(struct parity_run *r)
{
    struct ckpt *wck = NULL;
    struct dit *d = NULL;
    struct dit_job *job = NULL;
    struct dit_hparams hp = {0};
    struct taps taps = {0};
    float *tneg = NULL, *tpos = NULL, *clip = NULL, *y = NULL;
    int rc;

    struct ckpt *fx = r->fx;
    dit_hparams_from_meta(&fx, 1, &hp);
    if (r->weights_path && (rc = ckpt_open(r->weights_path, &wck)) < 0)
        return rc;
    struct ckpt *src = wck ? wck : r->fx;
    if ((rc = dit_load(r->be, &src, 1, &hp, &d)) < 0)
        goto out;
    dit_set_tap(d, collect, &taps);

    const struct ckpt_tensor *tn = parity_tensor(r, "common.text_neg");
    const struct ckpt_tensor *tp = parity_tensor(r, "common.text_pos");
    const struct ckpt_tensor *cf = parity_tensor(r, "common.clip_fea");
    const struct ckpt_tensor *yt = parity_tensor(r, "common.y_full");
    const struct ckpt_tensor *vs = parity_tensor(r, "case0.video_sample_n_frames");
    rc = ENC_EINVAL;
    if (!tn || !tp || !cf || !yt || !vs || yt->ndim != 5 || cf->ndim != 3 || tn->ndim != 2 ||
        tp->ndim != 2)
        goto out;
    tneg = ckpt_read_f32(tn);
    tpos = ckpt_read_f32(tp);
    clip = ckpt_read_f32(cf);
    y = ckpt_read_f32(yt); /* rows are identical: row 0 is a full window's y */
    float *nframes = ckpt_read_f32(vs);
    struct dit_job_inputs in = {
        .text_neg = tneg, .n_neg = tn->shape[0], .text_pos = tpos, .n_pos = tp->shape[0],
        .clip = clip, .n_clip = cf->shape[1], .y = y, .frames = yt->shape[2],
        .h = yt->shape[3], .w = yt->shape[4], .clip_frames = (int)nframes[0],
    };
    free(nframes);
    if ((rc = dit_job_new(d, &in, &job)) < 0)
        goto out;

    /* common.dbg.*: text context as [neg, neg, pos], image context */
    int kn = find_tap(&taps, "text_context_neg"), kp = find_tap(&taps, "text_context_pos");
    if (kn >= 0 && kp >= 0) {
        int64_t n = taps.numel[kn];
        float *tc = xmalloc((size_t)(3 * n) * sizeof(float));
        memcpy(tc, taps.data[kn], (size_t)n * sizeof(float));
        memcpy(tc + n, taps.data[kn], (size_t)n * sizeof(float));
        memcpy(tc + 2 * n, taps.data[kp], (size_t)n * sizeof(float));
        collect(&taps, "text_context", tc, 1, (int64_t[]){3 * n});
        free(tc);
    }
    check_dbg(r, &taps, "common.dbg.");

    float audio_scale, text_scale;
    guidance_scales(r, &audio_scale, &text_scale);
    for (int c = 0;; c++) {
        char name[64], prefix[32];
        snprintf(name, sizeof name, "case%d.latents", c);
        const struct ckpt_tensor *lt = ckpt_find(r->fx, name);
        if (!lt)
            break;
        snprintf(name, sizeof name, "case%d.t", c);
        const struct ckpt_tensor *tt = parity_tensor(r, name);
        snprintf(name, sizeof name, "case%d.vocal", c);
        const struct ckpt_tensor *vt = parity_tensor(r, name);
        if (!tt || !vt || lt->ndim != 5 || vt->ndim != 3) {
            rc = ENC_EINVAL;
            goto out;
        }
        int64_t f = lt->shape[2], n = ckpt_numel(lt);
        float *x = ckpt_read_f32(lt), *t = ckpt_read_f32(tt), *voc = ckpt_read_f32(vt);
        float *o = xmalloc((size_t)(3 * n) * sizeof(float));
        float *g = xmalloc((size_t)n * sizeof(float));
        taps_clear(&taps);
        rc = dit_forward(d, job, x, f, t[0], voc, vt->shape[1], o);
        if (rc == 0) {
            snprintf(name, sizeof name, "case%d.out", c);
            parity_check(r, name, NULL, o, 3 * n, ATOL, RTOL);
            sampler_guide(g, o, n, audio_scale, text_scale);
            snprintf(name, sizeof name, "case%d.guided", c);
            parity_check(r, name, NULL, g, n, ATOL, RTOL);
            snprintf(prefix, sizeof prefix, "case%d.dbg.", c);
            check_dbg(r, &taps, prefix);
        }
        free(x);
        free(t);
        free(voc);
        free(o);
        free(g);
        if (rc < 0)
            goto out;
    }
    rc = 0;
out:
    taps_clear(&taps);
    dit_job_destroy(&job);
    dit_destroy(&d);
    ckpt_close(&wck);
    free(tneg);
    free(tpos);
    free(clip);
    free(y);
    return rc;
}
