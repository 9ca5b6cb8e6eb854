/*
 * dit.c - the Wan2.1 i2v DiT forward pass with StableAvatar's per-frame
 * audio cross-attention (SPEC 5), written against the backend ops.
 *
 * Shapes (B = 3 branches: uncond, audio-only, cond; S = seq_len = F*h'*w'
 * tokens of a full window, of which the first f*h'*w' are real):
 *   x_embed (S, dim)      patch embedding, identical for all branches
 *   x       (3, S, dim)   residual stream
 *   e (1, dim), e0 (6, dim)   time embeddings, identical for all branches
 * All three branches share x, t, y and the CLIP context, so those are
 * computed once; only the text context (neg, neg, pos) and the audio
 * context (zeros, A, A) differ. Text and image keys/values are constant
 * over a render and are cached per block in the job.
 *
 * Invariant: every intermediate is a pure function of the inputs (the ops
 * guarantee thread-count independence), so a window step gives the same
 * bytes in any process.
 */
#include "dit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/err.h"
#include "../../common/log.h"
#include "../../common/xmalloc.h"
#include "dit_internal.h"

const struct dit_config *dit_get_config(const struct dit *d)
{
    return &d->cfg;
}

void dit_set_tap(struct dit *d, dit_tap_fn *fn, void *ctx)
{
    d->tap = fn;
    d->tap_ctx = ctx;
}

void dit_tap(struct dit *d, const char *name, const struct tensor *t, int rows)
{
    if (!d->tap)
        return;
    float *host = backend_tensor_to_f32(d->be, t);
    if (!host)
        return;
    int64_t n = tensor_numel(t);
    int64_t shape[TENSOR_MAX_DIMS + 1];
    int ndim = t->ndim;
    memcpy(shape, t->shape, sizeof t->shape);
    float *out = host;
    if (rows > 1) {
        out = xmalloc((size_t)(n * rows) * sizeof(float));
        for (int r = 0; r < rows; r++)
            memcpy(out + r * n, host, (size_t)n * sizeof(float));
        shape[0] *= rows;
    }
    d->tap(d->tap_ctx, name, out, ndim, shape);
    if (out != host)
        free(out);
    free(host);
}

/* ---- loading ---------------------------------------------------------- */

static struct tensor *mat(struct weights *w, const char *name, int64_t rows, int64_t cols)
{
    return weights_get_shape(w, name, rows, cols);
}

static struct tensor *vec(struct weights *w, const char *name, int64_t n)
{
    return weights_get_f32_shape(w, name, n);
}

/* Names inside an indexed module: prefix "blocks.3." + suffix. */
static struct tensor *matp(struct weights *w, const char *prefix, const char *suffix,
                           int64_t rows, int64_t cols)
{
    char name[160];
    snprintf(name, sizeof name, "%s%s", prefix, suffix);
    return mat(w, name, rows, cols);
}

static struct tensor *vecp(struct weights *w, const char *prefix, const char *suffix, int64_t n)
{
    char name[160];
    snprintf(name, sizeof name, "%s%s", prefix, suffix);
    return vec(w, name, n);
}

static struct tensor *modp(struct weights *w, const char *prefix, int64_t k, int64_t dim)
{
    char name[160];
    snprintf(name, sizeof name, "%smodulation", prefix);
    return weights_get_f32_shape(w, name, 1, k, dim);
}

/* count_indexed(): how many of "<stem>0.modulation", "<stem>1.modulation"... exist. */
static int64_t count_indexed(const struct weights *w, const char *stem)
{
    char name[160];
    int64_t n = 0;
    for (;; n++) {
        snprintf(name, sizeof name, "%s%d.modulation", stem, (int)n);
        if (!weights_has(w, name))
            return n;
    }
}

static int64_t dim_of(const struct weights *w, const char *name, int axis)
{
    const struct ckpt_tensor *t = weights_find(w, name);
    if (!t || axis >= t->ndim)
        return -1;
    return t->shape[axis];
}

static int derive_config(struct dit *d, struct ckpt *const *cks, int n,
                         const struct dit_hparams *hp)
{
    struct dit_config *c = &d->cfg;
    struct weights *w = d->w;
    struct dit_hparams meta = {0};

    dit_hparams_from_meta(cks, n, &meta);
    c->dim = dim_of(w, "patch_embedding.weight", 0);
    c->in_dim = dim_of(w, "patch_embedding.weight", 1);
    for (int i = 0; i < 3; i++)
        d->patch[i] = dim_of(w, "patch_embedding.weight", 2 + i);
    c->ffn_dim = dim_of(w, "blocks.0.ffn.0.weight", 0);
    c->freq_dim = dim_of(w, "time_embedding.0.weight", 1);
    c->text_dim = dim_of(w, "text_embedding.0.weight", 1);
    c->clip_dim = dim_of(w, "img_emb.proj.0.weight", 0);
    c->audio_dim = dim_of(w, "vocal_projector.proj_model.proj.weight", 1);
    c->vocal_ffn_dim = dim_of(w, "vocal_projector.blocks.0.ffn.0.weight", 0);
    c->num_layers = count_indexed(w, "blocks.");
    c->vocal_layers = count_indexed(w, "vocal_projector.blocks.");
    int64_t head_rows = dim_of(w, "head.head.weight", 0);
    int64_t patch_n = d->patch[0] * d->patch[1] * d->patch[2];
    if (c->dim <= 0 || c->in_dim <= 0 || c->ffn_dim <= 0 || c->freq_dim <= 0 ||
        c->text_dim <= 0 || c->clip_dim <= 0 || c->audio_dim <= 0 || c->vocal_ffn_dim <= 0 ||
        c->num_layers <= 0 || c->vocal_layers <= 0 || head_rows <= 0 || patch_n <= 0)
        return log_error_rc(ENC_EINVAL, "'%s': not a StableAvatar DiT checkpoint (a defining "
                            "tensor is missing: patch_embedding, blocks.0, time_embedding, "
                            "text_embedding, img_emb, head or vocal_projector)",
                            ckpt_path(cks[0]));
    if (d->patch[0] != 1 || d->patch[1] != 2 || d->patch[2] != 2)
        return log_error_rc(ENC_ENOTSUP, "'%s': patch size %lldx%lldx%lld, only 1x2x2 is "
                            "supported", ckpt_path(cks[0]), (long long)d->patch[0],
                            (long long)d->patch[1], (long long)d->patch[2]);
    c->out_dim = head_rows / patch_n;
    c->num_heads = hp && hp->num_heads ? hp->num_heads : meta.num_heads;
    if (!c->num_heads)
        c->num_heads = c->dim % 128 == 0 ? c->dim / 128 : 1;
    c->text_len = hp && hp->text_len ? hp->text_len : meta.text_len ? meta.text_len : 512;
    c->vocal_heads = hp && hp->vocal_heads ? hp->vocal_heads
                     : meta.vocal_heads       ? meta.vocal_heads
                                              : 8;
    if (c->dim % c->num_heads || (c->dim / c->num_heads) % 2 || c->dim % c->vocal_heads)
        return log_error_rc(ENC_EINVAL, "'%s': width %lld does not split into %lld heads of "
                            "even size (or %lld adapter heads)", ckpt_path(cks[0]),
                            (long long)c->dim, (long long)c->num_heads,
                            (long long)c->vocal_heads);
    c->head_dim = c->dim / c->num_heads;
    int pairs = (int)(c->head_dim / 2);
    c->rope_split[1] = pairs / 3;
    c->rope_split[2] = pairs / 3;
    c->rope_split[0] = pairs - 2 * (pairs / 3);
    c->eps = 1e-6f;
    return 0;
}

static void bind_block(struct dit *d, int i)
{
    struct weights *w = d->w;
    struct dit_block_weights *b = &d->blocks[i];
    int64_t D = d->cfg.dim, Fh = d->cfg.ffn_dim;
    char p[48];

    snprintf(p, sizeof p, "blocks.%d.", i);
    b->modulation = modp(w, p, 6, D);
    b->sa_q = matp(w, p, "self_attn.q.weight", D, D);
    b->sa_k = matp(w, p, "self_attn.k.weight", D, D);
    b->sa_v = matp(w, p, "self_attn.v.weight", D, D);
    b->sa_o = matp(w, p, "self_attn.o.weight", D, D);
    b->sa_qb = vecp(w, p, "self_attn.q.bias", D);
    b->sa_kb = vecp(w, p, "self_attn.k.bias", D);
    b->sa_vb = vecp(w, p, "self_attn.v.bias", D);
    b->sa_ob = vecp(w, p, "self_attn.o.bias", D);
    b->sa_norm_q = vecp(w, p, "self_attn.norm_q.weight", D);
    b->sa_norm_k = vecp(w, p, "self_attn.norm_k.weight", D);
    b->norm3_w = vecp(w, p, "norm3.weight", D);
    b->norm3_b = vecp(w, p, "norm3.bias", D);
    b->ca_q = matp(w, p, "cross_attn.q.weight", D, D);
    b->ca_k = matp(w, p, "cross_attn.k.weight", D, D);
    b->ca_v = matp(w, p, "cross_attn.v.weight", D, D);
    b->ca_o = matp(w, p, "cross_attn.o.weight", D, D);
    b->ca_qb = vecp(w, p, "cross_attn.q.bias", D);
    b->ca_kb = vecp(w, p, "cross_attn.k.bias", D);
    b->ca_vb = vecp(w, p, "cross_attn.v.bias", D);
    b->ca_ob = vecp(w, p, "cross_attn.o.bias", D);
    b->ca_norm_q = vecp(w, p, "cross_attn.norm_q.weight", D);
    b->ca_norm_k = vecp(w, p, "cross_attn.norm_k.weight", D);
    b->ca_k_img = matp(w, p, "cross_attn.k_img.weight", D, D);
    b->ca_v_img = matp(w, p, "cross_attn.v_img.weight", D, D);
    b->ca_k_imgb = vecp(w, p, "cross_attn.k_img.bias", D);
    b->ca_v_imgb = vecp(w, p, "cross_attn.v_img.bias", D);
    b->ca_norm_k_img = vecp(w, p, "cross_attn.norm_k_img.weight", D);
    b->ca_k_vocal = matp(w, p, "cross_attn.k_vocal.weight", D, D);
    b->ca_v_vocal = matp(w, p, "cross_attn.v_vocal.weight", D, D);
    b->ca_k_vocalb = vecp(w, p, "cross_attn.k_vocal.bias", D);
    b->ca_v_vocalb = vecp(w, p, "cross_attn.v_vocal.bias", D);
    b->ffn1 = matp(w, p, "ffn.0.weight", Fh, D);
    b->ffn1b = vecp(w, p, "ffn.0.bias", Fh);
    b->ffn2 = matp(w, p, "ffn.2.weight", D, Fh);
    b->ffn2b = vecp(w, p, "ffn.2.bias", D);
}

static void bind_vocal_block(struct dit *d, int j)
{
    struct weights *w = d->w;
    struct dit_vocal_block_weights *b = &d->vblocks[j];
    int64_t D = d->cfg.dim, Fv = d->cfg.vocal_ffn_dim;
    char p[48];

    snprintf(p, sizeof p, "vocal_projector.blocks.%d.", j);
    b->modulation = modp(w, p, 6, D);
    b->norm3_w = vecp(w, p, "norm3.weight", D);
    b->norm3_b = vecp(w, p, "norm3.bias", D);
    b->q = matp(w, p, "cross_attn.q.weight", D, D);
    b->k = matp(w, p, "cross_attn.k.weight", D, D);
    b->v = matp(w, p, "cross_attn.v.weight", D, D);
    b->o = matp(w, p, "cross_attn.o.weight", D, D);
    b->qb = vecp(w, p, "cross_attn.q.bias", D);
    b->kb = vecp(w, p, "cross_attn.k.bias", D);
    b->vb = vecp(w, p, "cross_attn.v.bias", D);
    b->ob = vecp(w, p, "cross_attn.o.bias", D);
    b->norm_q = vecp(w, p, "cross_attn.norm_q.weight", D);
    b->norm_k = vecp(w, p, "cross_attn.norm_k.weight", D);
    b->ffn1 = matp(w, p, "ffn.0.weight", Fv, D);
    b->ffn1b = vecp(w, p, "ffn.0.bias", Fv);
    b->ffn2 = matp(w, p, "ffn.2.weight", D, Fv);
    b->ffn2b = vecp(w, p, "ffn.2.bias", D);
}

int dit_load(struct backend *be, struct ckpt *const *cks, int n_cks,
             const struct dit_hparams *hp, struct dit **out)
{
    int rc;
    struct dit *d = xcalloc(1, sizeof *d);

    *out = NULL;
    d->be = be;
    d->w = weights_new(be, cks, n_cks);
    TRY(derive_config(d, cks, n_cks, hp));

    const struct dit_config *c = &d->cfg;
    struct weights *w = d->w;
    int64_t D = c->dim, P = d->patch[0] * d->patch[1] * d->patch[2];

    d->patch_w5 = weights_get_shape(w, "patch_embedding.weight", D, c->in_dim, d->patch[0],
                                    d->patch[1], d->patch[2]);
    d->patch_b = vec(w, "patch_embedding.bias", D);
    d->text0 = mat(w, "text_embedding.0.weight", D, c->text_dim);
    d->text0b = vec(w, "text_embedding.0.bias", D);
    d->text2 = mat(w, "text_embedding.2.weight", D, D);
    d->text2b = vec(w, "text_embedding.2.bias", D);
    d->time0 = mat(w, "time_embedding.0.weight", D, c->freq_dim);
    d->time0b = vec(w, "time_embedding.0.bias", D);
    d->time2 = mat(w, "time_embedding.2.weight", D, D);
    d->time2b = vec(w, "time_embedding.2.bias", D);
    d->tproj = mat(w, "time_projection.1.weight", 6 * D, D);
    d->tprojb = vec(w, "time_projection.1.bias", 6 * D);
    d->img_ln0w = vec(w, "img_emb.proj.0.weight", c->clip_dim);
    d->img_ln0b = vec(w, "img_emb.proj.0.bias", c->clip_dim);
    d->img1 = mat(w, "img_emb.proj.1.weight", c->clip_dim, c->clip_dim);
    d->img1b = vec(w, "img_emb.proj.1.bias", c->clip_dim);
    d->img3 = mat(w, "img_emb.proj.3.weight", D, c->clip_dim);
    d->img3b = vec(w, "img_emb.proj.3.bias", D);
    d->img_ln4w = vec(w, "img_emb.proj.4.weight", D);
    d->img_ln4b = vec(w, "img_emb.proj.4.bias", D);
    d->head_mod = weights_get_f32_shape(w, "head.modulation", 1, 2, D);
    d->head_w = mat(w, "head.head.weight", c->out_dim * P, D);
    d->head_b = vec(w, "head.head.bias", c->out_dim * P);

    d->blocks = xcalloc((size_t)c->num_layers, sizeof *d->blocks);
    for (int i = 0; i < c->num_layers; i++)
        bind_block(d, i);

    d->vp_proj = mat(w, "vocal_projector.proj_model.proj.weight", D, c->audio_dim);
    d->vp_norm_w = vec(w, "vocal_projector.proj_model.norm.weight", D);
    d->vp_norm_b = vec(w, "vocal_projector.proj_model.norm.bias", D);
    d->vblocks = xcalloc((size_t)c->vocal_layers, sizeof *d->vblocks);
    for (int j = 0; j < c->vocal_layers; j++)
        bind_vocal_block(d, j);
    d->vp_head_mod = weights_get_f32_shape(w, "vocal_projector.final_head.modulation", 1, 2, D);
    d->vp_final = mat(w, "vocal_projector.final_head.final_proj.weight", D, D);
    d->vp_finalb = vec(w, "vocal_projector.final_head.final_proj.bias", D);

    TRY(weights_finish(w, "patch_embedding,text_embedding,time_embedding,time_projection,"
                          "img_emb,blocks,head,vocal_projector"));
    d->patch_w = tensor_view_shape(d->patch_w5, 0, D, c->in_dim * P);
    log_info("dim %lld, %lld layers, %lld heads, ffn %lld, text %lldx%lld, clip %lld, "
             "audio %lld, adapter %lld blocks", (long long)D, (long long)c->num_layers,
             (long long)c->num_heads, (long long)c->ffn_dim, (long long)c->text_len,
             (long long)c->text_dim, (long long)c->clip_dim, (long long)c->audio_dim,
             (long long)c->vocal_layers);
    *out = d;
    return 0;
fail:
    dit_destroy(&d);
    return rc;
}

void dit_destroy(struct dit **dp)
{
    struct dit *d = dp ? *dp : NULL;
    if (!d)
        return;
    weights_destroy(&d->w);
    free(d->blocks);
    free(d->vblocks);
    free(d);
    *dp = NULL;
}

/* ---- per-render constants ---------------------------------------------- */

static struct tensor *new2(struct backend *be, int64_t a, int64_t b)
{
    return tensor_new_shape(be, DTYPE_F32, a, b);
}

/* embed_text(): pad ctx (n, text_dim) to text_len rows of zeros, then
 * Linear -> GELU(tanh) -> Linear (SPEC 5.2 step 4). */
static int embed_text(struct dit *d, const float *ctx, int64_t n, struct tensor **out)
{
    const struct dit_config *c = &d->cfg;
    struct backend *be = d->be;
    int rc = ENC_ENOMEM;
    float *pad = xcalloc((size_t)(c->text_len * c->text_dim), sizeof(float));
    struct tensor *in = NULL, *h = NULL, *o = NULL;

    if (n > c->text_len) {
        log_warn("text context of %lld rows truncated to %lld", (long long)n,
                 (long long)c->text_len);
        n = c->text_len;
    }
    memcpy(pad, ctx, (size_t)(n * c->text_dim) * sizeof(float));
    in = backend_tensor_from_host(be, DTYPE_F32, 2, (int64_t[]){c->text_len, c->text_dim}, pad,
                                  0);
    h = new2(be, c->text_len, c->dim);
    o = new2(be, c->text_len, c->dim);
    if (!in || !h || !o)
        goto fail;
    TRY(backend_linear(be, h, in, d->text0, d->text0b));
    TRY(backend_gelu_tanh(be, h, h));
    TRY(backend_linear(be, o, h, d->text2, d->text2b));
    *out = o;
    o = NULL;
    rc = 0;
fail:
    tensor_destroy(&in);
    tensor_destroy(&h);
    tensor_destroy(&o);
    free(pad);
    return rc;
}

/* embed_image(): img_emb = LN -> Linear -> GELU(erf) -> Linear -> LN (eps 1e-5). */
static int embed_image(struct dit *d, const float *clip, int64_t n, struct tensor **out)
{
    const struct dit_config *c = &d->cfg;
    struct backend *be = d->be;
    int rc = ENC_ENOMEM;
    struct tensor *in = backend_tensor_from_host(be, DTYPE_F32, 2, (int64_t[]){n, c->clip_dim},
                                                 clip, 0);
    struct tensor *h = new2(be, n, c->clip_dim), *o = new2(be, n, c->dim);

    if (!in || !h || !o)
        goto fail;
    TRY(backend_layer_norm(be, in, in, d->img_ln0w, d->img_ln0b, 1e-5f));
    TRY(backend_linear(be, h, in, d->img1, d->img1b));
    TRY(backend_gelu_erf(be, h, h));
    TRY(backend_linear(be, o, h, d->img3, d->img3b));
    TRY(backend_layer_norm(be, o, o, d->img_ln4w, d->img_ln4b, 1e-5f));
    *out = o;
    o = NULL;
    rc = 0;
fail:
    tensor_destroy(&in);
    tensor_destroy(&h);
    tensor_destroy(&o);
    return rc;
}

/* project_kv(): k = RMSNorm(W_k ctx + b) * norm_k, v = W_v ctx + b. */
static int project_kv(struct dit *d, const struct tensor *ctx, const struct tensor *wk,
                      const struct tensor *bk, const struct tensor *nk, const struct tensor *wv,
                      const struct tensor *bv, struct tensor **k, struct tensor **v)
{
    int rc = ENC_ENOMEM;
    *k = new2(d->be, ctx->shape[0], d->cfg.dim);
    *v = new2(d->be, ctx->shape[0], d->cfg.dim);
    if (!*k || !*v)
        goto fail;
    TRY(backend_linear(d->be, *k, ctx, wk, bk));
    TRY(backend_rms_norm(d->be, *k, *k, nk, d->cfg.eps));
    TRY(backend_linear(d->be, *v, ctx, wv, bv));
    return 0;
fail:
    tensor_destroy(k);
    tensor_destroy(v);
    return rc;
}

int dit_job_new(struct dit *d, const struct dit_job_inputs *in, struct dit_job **out)
{
    const struct dit_config *c = &d->cfg;
    int rc = ENC_EINVAL;
    struct dit_job *job = xcalloc(1, sizeof *job);
    int64_t L = c->num_layers;

    *out = NULL;
    job->in = *in;
    job->n_layers = L;
    if (in->frames <= 0 || in->h <= 0 || in->w <= 0 || in->h % 2 || in->w % 2 ||
        in->n_clip <= 0 || in->n_neg <= 0 || in->n_pos <= 0 ||
        (in->clip_frames - 1) / 4 + 1 != in->frames) {
        log_error("bad job geometry: %lld frames of %lldx%lld latents (both even needed), "
                  "clip of %d video frames, %lld/%lld text rows, %lld image tokens",
                  (long long)in->frames, (long long)in->h, (long long)in->w, in->clip_frames,
                  (long long)in->n_neg, (long long)in->n_pos, (long long)in->n_clip);
        goto fail;
    }
    job->seq_len = in->frames * (in->h / 2) * (in->w / 2);
    size_t ny = (size_t)(4 + c->out_dim) * (size_t)(in->frames * in->h * in->w);
    if ((int64_t)(4 + c->out_dim) + c->out_dim != c->in_dim) {
        rc = log_error_rc(ENC_EINVAL, "input width %lld is not latents %lld + mask 4 + "
                          "reference %lld", (long long)c->in_dim, (long long)c->out_dim,
                          (long long)c->out_dim);
        goto fail;
    }
    job->y = xmalloc(ny * sizeof(float));
    memcpy(job->y, in->y, ny * sizeof(float));
    job->in.y = NULL;
    job->in.text_neg = job->in.text_pos = job->in.clip = NULL;

    TRY(embed_text(d, in->text_neg, in->n_neg, &job->text_neg));
    TRY(embed_text(d, in->text_pos, in->n_pos, &job->text_pos));
    TRY(embed_image(d, in->clip, in->n_clip, &job->img));
    dit_tap(d, "text_context_neg", job->text_neg, 1);
    dit_tap(d, "text_context_pos", job->text_pos, 1);
    dit_tap(d, "img_context", job->img, 1);

    job->k_neg = xcalloc((size_t)L, sizeof(struct tensor *));
    job->v_neg = xcalloc((size_t)L, sizeof(struct tensor *));
    job->k_pos = xcalloc((size_t)L, sizeof(struct tensor *));
    job->v_pos = xcalloc((size_t)L, sizeof(struct tensor *));
    job->k_img = xcalloc((size_t)L, sizeof(struct tensor *));
    job->v_img = xcalloc((size_t)L, sizeof(struct tensor *));
    for (int64_t i = 0; i < L; i++) {
        const struct dit_block_weights *b = &d->blocks[i];
        TRY(project_kv(d, job->text_neg, b->ca_k, b->ca_kb, b->ca_norm_k, b->ca_v, b->ca_vb,
                       &job->k_neg[i], &job->v_neg[i]));
        TRY(project_kv(d, job->text_pos, b->ca_k, b->ca_kb, b->ca_norm_k, b->ca_v, b->ca_vb,
                       &job->k_pos[i], &job->v_pos[i]));
        TRY(project_kv(d, job->img, b->ca_k_img, b->ca_k_imgb, b->ca_norm_k_img, b->ca_v_img,
                       b->ca_v_imgb, &job->k_img[i], &job->v_img[i]));
    }
    *out = job;
    return 0;
fail:
    dit_job_destroy(&job);
    return rc;
}

static void destroy_array(struct tensor ***arr, int64_t n)
{
    if (!*arr)
        return;
    for (int64_t i = 0; i < n; i++)
        tensor_destroy(&(*arr)[i]);
    free(*arr);
    *arr = NULL;
}

void dit_job_destroy(struct dit_job **jp)
{
    struct dit_job *job = jp ? *jp : NULL;
    if (!job)
        return;
    destroy_array(&job->k_neg, job->n_layers);
    destroy_array(&job->v_neg, job->n_layers);
    destroy_array(&job->k_pos, job->n_layers);
    destroy_array(&job->v_pos, job->n_layers);
    destroy_array(&job->k_img, job->n_layers);
    destroy_array(&job->v_img, job->n_layers);
    free(job->y);
    tensor_destroy(&job->text_neg);
    tensor_destroy(&job->text_pos);
    tensor_destroy(&job->img);
    free(job);
    *jp = NULL;
}
