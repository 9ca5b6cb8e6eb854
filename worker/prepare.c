/*
 * prepare.c - the prepare task: text, image and audio conditioning of a job
 * (see prepare.h).
 */
#include "prepare.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/err.h"
#include "../common/log.h"
#include "../common/progress.h"
#include "../common/xmalloc.h"
#include "engine/checkpoint.h"
#include "engine/st_writer.h"
#include "models/clip.h"
#include "models/tokenizer.h"
#include "models/umt5.h"
#include "models/vae.h"
#include "models/wav2vec2.h"

const char prepare_default_negative[] =
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，"
    "最差质量，低质量，JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，"
    "画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，静止不动的画面，"
    "杂乱的背景，三条腿，背景人很多，倒着走";
const char prepare_default_prompt[] = "The protagonist is talking.";

/* encode_text(): tokens -> umT5 -> (n_real, dim) host array. */
static int encode_text(struct model_set *ms, const char *text, int max_len, float **out,
                       int64_t *n, int64_t *dim)
{
    int64_t *ids = xcalloc((size_t)max_len, sizeof(int64_t));
    struct tensor *ctx = NULL;
    int rc = tokenizer_encode_padded(ms->tok, text, strlen(text), max_len, ids, NULL);
    if (rc < 0)
        goto out;
    int real = rc;
    if ((rc = umt5_encode(ms->t5, ids, real, &ctx)) < 0)
        goto out;
    *out = backend_tensor_to_f32(ms->be, ctx);
    *n = ctx->shape[0];
    *dim = ctx->shape[1];
    rc = *out ? 0 : ENC_EDEVICE;
out:
    tensor_destroy(&ctx);
    free(ids);
    return rc;
}

int prepare_job(struct model_set *ms, const struct prepare_params *pp, const float *image,
                int64_t H, int64_t W, const struct plan *plan, const float *samples,
                struct prepared *out)
{
    struct progress pr;
    float *lat = NULL;
    int rc;

    memset(out, 0, sizeof *out);
    out->clip_frames = pp->clip_frames;
    progress_begin(&pr, "prepare", "parts", 3 + plan->n_windows, pp->quiet);

    /* text: prompt and negative prompt, then free the (large) encoder */
    if ((rc = model_set_load(ms, MODEL_PART_TEXT)) < 0)
        goto fail;
    const char *pos = pp->prompt ? pp->prompt : prepare_default_prompt;
    const char *neg = pp->negative ? pp->negative : prepare_default_negative;
    int max_len = pp->text_len > 0 ? pp->text_len : 512;
    if ((rc = encode_text(ms, neg, max_len, &out->text_neg, &out->n_neg, &out->text_dim)) < 0 ||
        (rc = encode_text(ms, pos, max_len, &out->text_pos, &out->n_pos, &out->text_dim)) < 0)
        goto fail;
    model_set_unload(ms, MODEL_PART_TEXT);
    progress_update(&pr, 1);

    /* image tokens */
    if ((rc = model_set_load(ms, MODEL_PART_CLIP)) < 0)
        goto fail;
    const struct clip_config *cc = clip_get_config(ms->clip);
    out->clip_dim = cc->dim;
    out->n_clip = cc->n_tokens;
    out->clip = xmalloc((size_t)(cc->n_tokens * cc->dim) * sizeof(float));
    if ((rc = clip_forward(ms->clip, image, H, W, out->clip, NULL, NULL)) < 0)
        goto fail;
    model_set_unload(ms, MODEL_PART_CLIP);
    progress_update(&pr, 2);

    /* y: the reference clip (image + C-1 grey frames) through the VAE encoder */
    if ((rc = model_set_load(ms, MODEL_PART_VAE_ENCODER)) < 0)
        goto fail;
    struct vae_info vi;
    vae_get_info(ms->vae, &vi);
    vae_latent_dims(ms->vae, pp->clip_frames, H, W, &out->frames, &out->h, &out->w);
    lat = xmalloc((size_t)(vi.z_dim * out->frames * out->h * out->w) * sizeof(float));
    if ((rc = vae_encode_reference(ms->vae, image, H, W, pp->clip_frames, lat)) < 0)
        goto fail;
    out->y_ch = 4 + vi.z_dim;
    out->y = xmalloc((size_t)(out->y_ch * out->frames * out->h * out->w) * sizeof(float));
    vae_make_y(lat, vi.z_dim, out->frames, out->h, out->w, out->y);
    progress_update(&pr, 3);

    /* per-window audio features */
    if ((rc = model_set_load(ms, MODEL_PART_AUDIO)) < 0)
        goto fail;
    const struct wav2vec2_config *wc = wav2vec2_get_config(ms->w2v);
    out->audio_dim = wc->hidden;
    out->n_windows = plan->n_windows;
    out->n_tokens = xcalloc((size_t)plan->n_windows, sizeof(int64_t));
    out->audio = xcalloc((size_t)plan->n_windows, sizeof(float *));
    for (int64_t k = 0; k < plan->n_windows; k++) {
        const struct plan_window *win = &plan->windows[k];
        int64_t n = win->audio_end - win->audio_begin;
        int64_t nf = wav2vec2_frames_cfg(wc, n);
        if (nf < 1) {
            rc = log_error_rc(ENC_EINVAL, "window %lld: %lld audio samples are too few for "
                              "one audio feature", (long long)k, (long long)n);
            goto fail;
        }
        out->audio[k] = xmalloc((size_t)(nf * wc->hidden) * sizeof(float));
        if ((rc = wav2vec2_forward(ms->w2v, samples + win->audio_begin, n, out->audio[k],
                                   &out->n_tokens[k])) < 0)
            goto fail;
        progress_update(&pr, 4 + k);
    }
    progress_end(&pr);
    free(lat);
    return 0;
fail:
    if (!pp->quiet)
        fputc('\n', stderr);
    free(lat);
    prepared_release(out);
    return rc;
}

void prepared_job_inputs(const struct prepared *p, struct dit_job_inputs *in)
{
    memset(in, 0, sizeof *in);
    in->text_neg = p->text_neg;
    in->n_neg = p->n_neg;
    in->text_pos = p->text_pos;
    in->n_pos = p->n_pos;
    in->clip = p->clip;
    in->n_clip = p->n_clip;
    in->y = p->y;
    in->frames = p->frames;
    in->h = p->h;
    in->w = p->w;
    in->clip_frames = p->clip_frames;
}

void prepared_release(struct prepared *p)
{
    free(p->text_neg);
    free(p->text_pos);
    free(p->clip);
    free(p->y);
    for (int64_t k = 0; p->audio && k < p->n_windows; k++)
        free(p->audio[k]);
    free(p->audio);
    free(p->n_tokens);
    memset(p, 0, sizeof *p);
}

/* ---- the prepared blob --------------------------------------------------- */

#define PREPARED_KIND "encore-prepared-v1"

int prepared_save(const struct prepared *p, const char *path)
{
    struct st_writer *w = st_writer_new();
    char name[64], meta[64];
    int rc = 0;

    st_writer_meta(w, "kind", PREPARED_KIND);
    snprintf(meta, sizeof meta, "%d", p->clip_frames);
    st_writer_meta(w, "clip_frames", meta);
    rc = st_writer_add(w, "text_neg", DTYPE_F32, 2, (int64_t[]){p->n_neg, p->text_dim},
                       p->text_neg);
    if (rc == 0)
        rc = st_writer_add(w, "text_pos", DTYPE_F32, 2, (int64_t[]){p->n_pos, p->text_dim},
                           p->text_pos);
    if (rc == 0)
        rc = st_writer_add(w, "clip", DTYPE_F32, 2, (int64_t[]){p->n_clip, p->clip_dim},
                           p->clip);
    if (rc == 0)
        rc = st_writer_add(w, "y", DTYPE_F32, 4, (int64_t[]){p->y_ch, p->frames, p->h, p->w},
                           p->y);
    for (int64_t k = 0; rc == 0 && k < p->n_windows; k++) {
        snprintf(name, sizeof name, "audio.%lld", (long long)k);
        rc = st_writer_add(w, name, DTYPE_F32, 2, (int64_t[]){p->n_tokens[k], p->audio_dim},
                           p->audio[k]);
    }
    if (rc == 0)
        rc = st_writer_write(w, path);
    st_writer_destroy(&w);
    return rc;
}

static float *take(struct ckpt *ck, const char *name, int ndim, int64_t *shape, int *bad)
{
    const struct ckpt_tensor *t = ckpt_find(ck, name);
    if (!t || t->ndim != ndim) {
        *bad = 1;
        return NULL;
    }
    memcpy(shape, t->shape, (size_t)ndim * sizeof(int64_t));
    return ckpt_read_f32(t);
}

int prepared_load(const char *path, struct prepared *out)
{
    struct ckpt *ck = NULL;
    int64_t s[4] = {0};
    int bad = 0, rc = ckpt_open(path, &ck);

    memset(out, 0, sizeof *out);
    if (rc < 0)
        return rc;
    const char *kind = ckpt_meta(ck, "kind"), *cf = ckpt_meta(ck, "clip_frames");
    if (!kind || strcmp(kind, PREPARED_KIND) != 0 || !cf) {
        ckpt_close(&ck);
        return log_error_rc(ENC_EINVAL, "'%s' is not a prepared job", path);
    }
    out->clip_frames = (int)strtol(cf, NULL, 10);
    out->text_neg = take(ck, "text_neg", 2, s, &bad);
    out->n_neg = s[0];
    out->text_dim = s[1];
    out->text_pos = take(ck, "text_pos", 2, s, &bad);
    out->n_pos = s[0];
    out->clip = take(ck, "clip", 2, s, &bad);
    out->n_clip = s[0];
    out->clip_dim = s[1];
    out->y = take(ck, "y", 4, s, &bad);
    out->y_ch = s[0];
    out->frames = s[1];
    out->h = s[2];
    out->w = s[3];
    while (!bad) {
        char name[64];
        snprintf(name, sizeof name, "audio.%lld", (long long)out->n_windows);
        if (!ckpt_find(ck, name))
            break;
        out->audio = xrealloc(out->audio, (size_t)(out->n_windows + 1) * sizeof(float *));
        out->n_tokens = xrealloc(out->n_tokens, (size_t)(out->n_windows + 1) * sizeof(int64_t));
        out->audio[out->n_windows] = take(ck, name, 2, s, &bad);
        out->n_tokens[out->n_windows] = s[0];
        out->audio_dim = s[1];
        out->n_windows++;
    }
    ckpt_close(&ck);
    if (bad || out->n_windows == 0) {
        prepared_release(out);
        return log_error_rc(ENC_EINVAL, "'%s': a prepared job tensor is missing or misshapen",
                            path);
    }
    return 0;
}
