/*
 * parity_sliding_window_loop.c - `encore parity` for fixtures of kind
 * "sliding_window_loop": the whole long-video loop (worker/longloop.c) with
 * the tiny DiT, for both blend schemes, against the original pipeline's
 * latents after every step and its final latents.
 *
 * Inputs, all from the files: the loop fixture's audio length, initial
 * latents, text embeddings, y, per-window vocal embeddings (the stand-in
 * wav2vec2 outputs the original used), schedule length and overlap; the
 * CLIP features (common.clip_fea) and, unless --weights names another
 * checkpoint, the DiT weights from dit_forward.safetensors next to the
 * fixture; the guidance scales and the padded text length from the
 * fixture's metadata. Checks: the window table and schedule exactly, the
 * overlap weights bit for bit, the latents with parity_check_bf16_stats
 * (>= 95% identical, >= 99% within one bf16 ulp, max|d| <= 1e-2 max|ref|).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bf16.h"
#include "common/blend.h"
#include "common/err.h"
#include "common/log.h"
#include "common/parse.h"
#include "common/plan.h"
#include "common/xmalloc.h"
#include "parity.h"
#include "worker/longloop.h"
#include "worker/models/dit.h"
#include "worker/models/sampler.h"

/* meta_number() finds "key": <number> in a JSON string (first occurrence). */
static int meta_number(const char *json, const char *key, double *out)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\"", key);
    const char *p = json ? strstr(json, pat) : NULL;
    if (!p)
        return ENC_EINVAL;
    p += strlen(pat);
    while (*p == ' ')
        p++;
    if (*p != ':')
        return ENC_EINVAL;
    p++;
    while (*p == ' ')
        p++;
    char num[40];
    size_t n = strspn(p, "0123456789+-.eE");
    if (n == 0 || n >= sizeof(num))
        return ENC_EINVAL;
    memcpy(num, p, n);
    num[n] = 0;
    return parse_double(num, -1e300, 1e300, out);
}

/* a fixture tensor's int64 values (I64 tensors only), or NULL */
static int64_t *read_i64(struct parity_run *r, const char *name, int64_t *n)
{
    const struct ckpt_tensor *t = parity_tensor(r, name);
    if (!t)
        return NULL;
    if (t->dtype != DTYPE_I64) {
        log_error("'%s': %s is not I64", r->path, name);
        return NULL;
    }
    *n = ckpt_numel(t);
    int64_t *v = xmalloc(sizeof(int64_t) * (size_t)(*n > 0 ? *n : 1));
    memcpy(v, t->data, sizeof(int64_t) * (size_t)*n);
    return v;
}

struct step_log {
    float *after; /* [steps, 16, L, h, w] */
    int64_t n_state;
};

static void on_step(void *ctx, int step, const uint16_t *state)
{
    struct step_log *sl = ctx;
    float *dst = sl->after + (int64_t)step * sl->n_state;
    for (int64_t i = 0; i < sl->n_state; i++)
        dst[i] = bf16_to_f32(state[i]);
    log_debug("loop step %d done", step);
}

/* the window table and schedule, exactly */
static void check_tables(struct parity_run *r, const struct plan *p, int steps,
                         const int64_t *n_tokens)
{
    int64_t n = 0, nw = p->n_windows;
    int64_t *lb = xmalloc(sizeof(int64_t) * (size_t)(2 * nw));
    int64_t *ab = xmalloc(sizeof(int64_t) * (size_t)(2 * nw));
    int64_t *pe = xmalloc(sizeof(int64_t) * (size_t)nw);
    for (int64_t k = 0; k < nw; k++) {
        const struct plan_window *w = &p->windows[k];
        lb[2 * k] = w->start;
        lb[2 * k + 1] = w->start + w->len;
        ab[2 * k] = w->audio_begin;
        ab[2 * k + 1] = w->audio_end;
        pe[k] = k == 0 ? w->start + w->len : p->windows[k - 1].start + p->windows[k - 1].len;
    }
    const char *names[4] = {"window.latent_bounds", "window.audio_bounds", "window.prev_end",
                            "window.num_tokens"};
    const int64_t *got[4] = {lb, ab, pe, n_tokens};
    const int64_t len[4] = {2 * nw, 2 * nw, nw, nw};
    for (int i = 0; i < 4; i++) {
        int64_t *want = read_i64(r, names[i], &n);
        if (!want) {
            r->n_checked++;
            r->n_failed++;
            continue;
        }
        if (n != len[i]) {
            log_error("'%s': %s has %lld entries, the plan %lld", r->path, names[i], (long long)n,
                      (long long)len[i]);
            r->n_checked++;
            r->n_failed++;
        } else {
            parity_check_ints(r, names[i], got[i], want, n);
        }
        free(want);
    }
    free(lb);
    free(ab);
    free(pe);

    float *sig = xcalloc((size_t)steps + 1, sizeof(float));
    float *tim = xcalloc((size_t)steps, sizeof(float));
    sampler_schedule(steps, SAMPLER_TRAIN_STEPS, SAMPLER_SHIFT, sig, tim);
    parity_check_ulp(r, "sigmas", NULL, sig, steps + 1, 0);
    parity_check_ulp(r, "timesteps", NULL, tim, steps, 0);
    free(sig);
    free(tim);
}

int parity_sliding_window_loop(struct parity_run *r)
{
    int rc = 0;
    struct ckpt *fwd = NULL, *wck = NULL;
    struct dit *d = NULL;
    struct plan p = {0};
    float *audio = NULL, *init = NULL, *tneg = NULL, *tpos = NULL, *yall = NULL;
    float *clip = NULL, *out = NULL, *wts = NULL;
    float **feat = NULL;
    int64_t *ntok = NULL;
    struct step_log sl = {NULL, 0};
    char *fwd_path = NULL;

    /* sizes, all from the fixture */
    const struct ckpt_tensor *tl = parity_tensor(r, "latents_init");
    const struct ckpt_tensor *ty = parity_tensor(r, "y");
    const struct ckpt_tensor *tt = parity_tensor(r, "timesteps");
    const struct ckpt_tensor *tw = parity_tensor(r, "uniform.overlap_weights");
    const struct ckpt_tensor *tn = parity_tensor(r, "text_neg");
    const struct ckpt_tensor *tp = parity_tensor(r, "text_pos");
    if (!tl || !ty || !tt || !tw || !tn || !tp)
        return ENC_EINVAL;
    if (tl->ndim != 5 || tl->shape[1] != 16 || ty->ndim != 5 || ty->shape[1] != 20 ||
        tn->ndim != 2 || tp->ndim != 2)
        return log_error_rc(ENC_EINVAL, "'%s': unexpected shapes of latents_init, y or text",
                            r->path);
    const int64_t L = tl->shape[2], h = tl->shape[3], w = tl->shape[4], F = ty->shape[2];
    const int steps = (int)ckpt_numel(tt), O = (int)ckpt_numel(tw);
    double audio_scale, text_scale, text_len;
    const char *loop_meta = ckpt_meta(r->fx, "loop"), *cfg_meta = ckpt_meta(r->fx, "config");
    if (meta_number(loop_meta, "audio_guide_scale", &audio_scale) != 0 ||
        meta_number(loop_meta, "text_guide_scale", &text_scale) != 0 ||
        meta_number(cfg_meta, "text_len", &text_len) != 0)
        return log_error_rc(ENC_EINVAL,
                            "'%s': metadata lacks loop.audio_guide_scale, "
                            "loop.text_guide_scale or config.dit_config.text_len",
                            r->path);

    int64_t n_audio = 0;
    audio = parity_read_f32(r, "audio", &n_audio);
    if (!audio) {
        rc = ENC_EINVAL;
        goto out;
    }
    struct plan_params pp = {(int)(4 * (F - 1) + 1), O};
    rc = plan_make(&p, n_audio, &pp);
    if (rc != 0)
        goto out;
    if (p.latent_frames != L) {
        rc = log_error_rc(ENC_EINVAL, "'%s': %lld samples give %lld latent frames, fixture %lld",
                          r->path, (long long)n_audio, (long long)p.latent_frames, (long long)L);
        goto out;
    }

    /* per-window vocal embeddings, computed once by the original's stand-in */
    feat = xcalloc((size_t)p.n_windows, sizeof(float *));
    ntok = xcalloc((size_t)p.n_windows, sizeof(int64_t));
    for (int64_t k = 0; k < p.n_windows; k++) {
        char name[64];
        snprintf(name, sizeof(name), "window.%lld.vocal_embeddings", (long long)k);
        const struct ckpt_tensor *tv = parity_tensor(r, name);
        if (!tv || tv->ndim != 3) {
            rc = log_error_rc(ENC_EINVAL, "'%s': %s missing or not [1, T, dim]", r->path, name);
            goto out;
        }
        ntok[k] = tv->shape[1];
        feat[k] = ckpt_read_f32(tv);
    }
    check_tables(r, &p, steps, ntok);

    /* the DiT and its per-render inputs */
    const char *slash = strrchr(r->path, '/');
    fwd_path = slash ? xasprintf("%.*s/dit_forward.safetensors", (int)(slash - r->path), r->path)
                     : xasprintf("dit_forward.safetensors");
    rc = ckpt_open(fwd_path, &fwd);
    if (rc != 0)
        goto out;
    const struct ckpt_tensor *tc = ckpt_find(fwd, "common.clip_fea");
    if (!tc || tc->ndim != 3) {
        rc = log_error_rc(ENC_EINVAL, "'%s': no common.clip_fea [1, n, dim]", fwd_path);
        goto out;
    }
    clip = ckpt_read_f32(tc);
    if (r->weights_path) {
        rc = ckpt_open(r->weights_path, &wck);
        if (rc != 0)
            goto out;
    }
    struct dit_hparams hp = {.text_len = (int64_t)text_len};
    struct ckpt *fx = r->fx;
    dit_hparams_from_meta(&fx, 1, &hp);
    rc = dit_load(r->be, wck ? &wck : &fwd, 1, &hp, &d);
    if (rc != 0)
        goto out;

    tneg = parity_read_f32(r, "text_neg", NULL);
    tpos = parity_read_f32(r, "text_pos", NULL);
    yall = parity_read_f32(r, "y", NULL);
    init = parity_read_f32(r, "latents_init", NULL);
    if (!tneg || !tpos || !yall || !init) {
        rc = ENC_EINVAL;
        goto out;
    }
    struct dit_job_inputs in = {
        .text_neg = tneg,
        .n_neg = tn->shape[0],
        .text_pos = tpos,
        .n_pos = tp->shape[0],
        .clip = clip,
        .n_clip = tc->shape[1],
        .y = yall, /* batch row 0 of [3, 20, F, h, w] */
        .frames = F,
        .h = h,
        .w = w,
        .clip_frames = pp.clip_frames,
    };

    sl.n_state = 16 * L * h * w;
    sl.after = xmalloc(sizeof(float) * (size_t)(steps * sl.n_state));
    out = xmalloc(sizeof(float) * (size_t)sl.n_state);
    wts = xcalloc((size_t)(O > 0 ? O : 1), sizeof(float));
    struct longloop_audio au = {(const float *const *)feat, ntok, NULL, NULL};
    const enum blend_scheme schemes[2] = {BLEND_SCHEME_UNIFORM, BLEND_SCHEME_LOG};
    for (int si = 0; si < 2; si++) {
        const char *sname = blend_scheme_name(schemes[si]);
        char name[64];
        blend_weights(schemes[si], O, wts);
        snprintf(name, sizeof(name), "%s.overlap_weights", sname);
        parity_check(r, name, NULL, wts, O, 0, 0);

        struct longloop_params lp = {
            .plan = &p,
            .h = h,
            .w = w,
            .steps = steps,
            .audio_scale = (float)audio_scale,
            .text_scale = (float)text_scale,
            .scheme = schemes[si],
            .on_step = on_step,
            .cb_ctx = &sl,
        };
        rc = longloop_run_dit(d, &in, &lp, &au, init, out);
        if (rc != 0)
            goto out;
        snprintf(name, sizeof(name), "%s.latents_after_step", sname);
        parity_check_bf16_stats(r, name, NULL, sl.after, steps * sl.n_state, 0.95, 0.99, 1e-2);
        snprintf(name, sizeof(name), "%s.final", sname);
        parity_check_bf16_stats(r, name, NULL, out, sl.n_state, 0.95, 0.99, 1e-2);
    }

out:
    if (feat)
        for (int64_t k = 0; k < p.n_windows; k++)
            free(feat[k]);
    free(feat);
    free(ntok);
    dit_destroy(&d);
    ckpt_close(&wck);
    ckpt_close(&fwd);
    free(fwd_path);
    free(sl.after);
    free(out);
    free(wts);
    free(audio);
    free(init);
    free(tneg);
    free(tpos);
    free(yall);
    free(clip);
    plan_release(&p);
    return rc;
}
