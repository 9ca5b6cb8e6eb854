/*
 * dit_forward.c - one 3-branch DiT forward on a window (SPEC 5.2-5.4).
 *
 * Layout: the residual stream x is (3, S, dim) with S = F*h'*w' tokens in
 * (frame, row, col) order; a shorter last window fills only its first
 * f*h'*w' tokens and the rest start as zeros and take part in attention,
 * as in the original (SPEC 2.7). Each op writes a fresh buffer or works in
 * place where the op allows it; nothing here touches host memory except
 * the inputs (patchify) and the output (unpatchify).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/err.h"
#include "../../common/log.h"
#include "../../common/xmalloc.h"
#include "dit_internal.h"

/* Work buffers of one forward. */
struct fwd {
    struct tensor *x;       /* (3, S, dim) residual stream */
    struct tensor *a;       /* (3, S, dim) normalised / modulated input */
    struct tensor *q, *k, *v, *o, *t; /* (3, S, dim) */
    struct tensor *hid;     /* (DIT_FFN_CHUNK, ffn) */
    struct tensor *mod;     /* (6, dim) block modulation + e0 */
    struct tensor *kv_a, *kv_b;       /* (G*N_a, dim) audio keys / values */
};

static void fwd_release(struct fwd *f)
{
    tensor_destroy(&f->x);
    tensor_destroy(&f->a);
    tensor_destroy(&f->q);
    tensor_destroy(&f->k);
    tensor_destroy(&f->v);
    tensor_destroy(&f->o);
    tensor_destroy(&f->t);
    tensor_destroy(&f->hid);
    tensor_destroy(&f->mod);
    tensor_destroy(&f->kv_a);
    tensor_destroy(&f->kv_b);
}

/* row(): chunk i of a (n, dim) tensor as a (1, dim) view. */
static struct tensor row(const struct tensor *t, int64_t i, int64_t dim)
{
    return tensor_view_shape(t, i * dim, 1, dim);
}

/* heads(): a (rows, dim) buffer region as (B, T, H, hd). */
static struct tensor heads(const struct tensor *t, int64_t off, int64_t B, int64_t T, int64_t H,
                           int64_t hd)
{
    return tensor_view_shape(t, off, B, T, H, hd);
}

/* sinusoid(): the 1-D time embedding, cos half first, in double (SPEC 5.2.3). */
static void sinusoid(float t, int64_t n, float *out)
{
    int64_t half = n / 2;
    for (int64_t k = 0; k < half; k++) {
        double omega = pow(10000.0, -(double)k / (double)half);
        double arg = (double)t * omega;
        out[k] = (float)cos(arg);
        out[half + k] = (float)sin(arg);
    }
}

/* time_embed(): e = L2(SiLU(L0(sin(t)))), e0 = P(SiLU(e)) as (6, dim). */
static int time_embed(struct dit *d, float t, struct tensor **e, struct tensor **e0)
{
    const struct dit_config *c = &d->cfg;
    struct backend *be = d->be;
    int rc = ENC_ENOMEM;
    float *freq = xmalloc((size_t)c->freq_dim * sizeof(float));
    struct tensor *tin = NULL, *h = NULL, *se = NULL;

    sinusoid(t, c->freq_dim, freq);
    tin = backend_tensor_from_host(be, DTYPE_F32, 2, (int64_t[]){1, c->freq_dim}, freq, 0);
    h = tensor_new_shape(be, DTYPE_F32, 1, c->dim);
    se = tensor_new_shape(be, DTYPE_F32, 1, c->dim);
    *e = tensor_new_shape(be, DTYPE_F32, 1, c->dim);
    *e0 = tensor_new_shape(be, DTYPE_F32, 6, c->dim);
    if (!tin || !h || !se || !*e || !*e0)
        goto fail;
    TRY(backend_linear(be, h, tin, d->time0, d->time0b));
    TRY(backend_silu(be, h, h));
    TRY(backend_linear(be, *e, h, d->time2, d->time2b));
    TRY(backend_silu(be, se, *e));
    struct tensor e0flat = tensor_view_shape(*e0, 0, 1, 6 * c->dim);
    TRY(backend_linear(be, &e0flat, se, d->tproj, d->tprojb));
    rc = 0;
fail:
    if (rc < 0) {
        tensor_destroy(e);
        tensor_destroy(e0);
    }
    tensor_destroy(&tin);
    tensor_destroy(&h);
    tensor_destroy(&se);
    free(freq);
    return rc;
}

/*
 * patch_embed(): u = [x (16 ch); y (20 ch)] over f frames, cut into 1x2x2
 * patches (column order c, ph, pw as the conv weight flattens), Linear,
 * then zero rows up to S. xe is (S, dim).
 */
static int patch_embed(struct dit *d, const struct dit_job *job, const float *x, int64_t f,
                       struct tensor *xe)
{
    const struct dit_config *c = &d->cfg;
    struct backend *be = d->be;
    int64_t h = job->in.h, w = job->in.w, hp = h / 2, wp = w / 2, F = job->in.frames;
    int64_t cin = c->in_dim, cols = cin * 4, ntok = f * hp * wp;
    int rc = ENC_ENOMEM;
    float *tok = xmalloc((size_t)(ntok * cols) * sizeof(float));
    struct tensor *tin = NULL;

    for (int64_t fi = 0; fi < f; fi++)
        for (int64_t i = 0; i < hp; i++)
            for (int64_t j = 0; j < wp; j++) {
                float *dst = tok + ((fi * hp + i) * wp + j) * cols;
                for (int64_t ch = 0; ch < cin; ch++) {
                    const float *plane = ch < c->out_dim
                                             ? x + (ch * f + fi) * h * w
                                             : job->y + ((ch - c->out_dim) * F + fi) * h * w;
                    for (int ph = 0; ph < 2; ph++)
                        for (int pw = 0; pw < 2; pw++)
                            dst[ch * 4 + ph * 2 + pw] = plane[(2 * i + ph) * w + 2 * j + pw];
                }
            }
    tin = backend_tensor_from_host(be, DTYPE_F32, 2, (int64_t[]){ntok, cols}, tok, 0);
    if (!tin)
        goto fail;
    struct tensor real = tensor_view_shape(xe, 0, ntok, c->dim);
    TRY(backend_linear(be, &real, tin, &d->patch_w, d->patch_b));
    if (ntok < job->seq_len) {
        struct tensor pad = tensor_view_shape(xe, ntok * c->dim, job->seq_len - ntok, c->dim);
        TRY(backend_fill(be, &pad, 0.0f));
    }
    rc = 0;
fail:
    tensor_destroy(&tin);
    free(tok);
    return rc;
}

/* ffn(): x += W2(GELU_tanh(W1(LN(x)(1+scale)+shift)))*gate over row chunks. */
static int ffn(struct backend *be, struct tensor *x, struct tensor *a, struct tensor *t,
               struct tensor *hid, const struct tensor *w1, const struct tensor *b1,
               const struct tensor *w2, const struct tensor *b2, const struct tensor *shift,
               const struct tensor *scale, const struct tensor *gate, float eps)
{
    int rc;
    int64_t rows = tensor_numel(x) / x->shape[x->ndim - 1], D = x->shape[x->ndim - 1];
    int64_t Fh = w1->shape[0];
    struct tensor x1 = tensor_view_shape(x, 0, 1, rows, D);
    struct tensor a1 = tensor_view_shape(a, 0, 1, rows, D);

    TRY(backend_layer_norm(be, &a1, &x1, NULL, NULL, eps));
    TRY(backend_modulate(be, &a1, &a1, shift, scale));
    for (int64_t r0 = 0; r0 < rows; r0 += DIT_FFN_CHUNK) {
        int64_t n = rows - r0 < DIT_FFN_CHUNK ? rows - r0 : DIT_FFN_CHUNK;
        struct tensor ac = tensor_view_shape(a, r0 * D, n, D);
        struct tensor tc = tensor_view_shape(t, r0 * D, n, D);
        struct tensor hc = tensor_view_shape(hid, 0, n, Fh);
        TRY(backend_linear(be, &hc, &ac, w1, b1));
        TRY(backend_gelu_tanh(be, &hc, &hc));
        TRY(backend_linear(be, &tc, &hc, w2, b2));
    }
    struct tensor t1 = tensor_view_shape(t, 0, 1, rows, D);
    TRY(backend_gated_add(be, &x1, &t1, gate));
    return 0;
fail:
    return rc;
}

static int self_attention(struct dit *d, struct fwd *f, const struct dit_block_weights *b,
                          const struct rope3d_params *rp, int64_t S)
{
    const struct dit_config *c = &d->cfg;
    struct backend *be = d->be;
    int64_t D = c->dim, H = c->num_heads, hd = c->head_dim;
    struct tensor shift = row(f->mod, 0, D), scale = row(f->mod, 1, D), gate = row(f->mod, 2, D);
    struct tensor x1 = tensor_view_shape(f->x, 0, 1, 3 * S, D);
    struct tensor a1 = tensor_view_shape(f->a, 0, 1, 3 * S, D);
    int rc;

    TRY(backend_layer_norm(be, &a1, &x1, NULL, NULL, c->eps));
    TRY(backend_modulate(be, &a1, &a1, &shift, &scale));
    TRY(backend_linear(be, f->q, f->a, b->sa_q, b->sa_qb));
    TRY(backend_rms_norm(be, f->q, f->q, b->sa_norm_q, c->eps));
    TRY(backend_linear(be, f->k, f->a, b->sa_k, b->sa_kb));
    TRY(backend_rms_norm(be, f->k, f->k, b->sa_norm_k, c->eps));
    TRY(backend_linear(be, f->v, f->a, b->sa_v, b->sa_vb));
    struct tensor q4 = heads(f->q, 0, 3, S, H, hd), k4 = heads(f->k, 0, 3, S, H, hd);
    struct tensor v4 = heads(f->v, 0, 3, S, H, hd), o4 = heads(f->o, 0, 3, S, H, hd);
    TRY(backend_rope3d(be, &q4, rp));
    TRY(backend_rope3d(be, &k4, rp));
    TRY(backend_attention(be, &o4, &q4, &k4, &v4, 1.0f / sqrtf((float)hd)));
    TRY(backend_linear(be, f->t, f->o, b->sa_o, b->sa_ob));
    struct tensor t1 = tensor_view_shape(f->t, 0, 1, 3 * S, D);
    TRY(backend_gated_add(be, &x1, &t1, &gate));
    return 0;
fail:
    return rc;
}

/*
 * cross_attention(): x += O(text + image + audio attention of
 * q = RMSNorm(Q(norm3(x)))). Branches 0 and 1 attend the negative text,
 * branch 2 the prompt; all three the image; branch 0's audio context is
 * zeros after the adapter, so its audio term is exactly the v_vocal bias
 * (uniform softmax over equal keys, SPEC 3.1); branches 1, 2 attend, per
 * latent frame, that frame's n_a adapter tokens.
 */
static int cross_attention(struct dit *d, struct fwd *f, const struct dit_job *job, int layer,
                           const struct tensor *actx, int64_t n_a, int64_t S)
{
    const struct dit_config *c = &d->cfg;
    const struct dit_block_weights *b = &d->blocks[layer];
    struct backend *be = d->be;
    int64_t D = c->dim, H = c->num_heads, hd = c->head_dim, G = job->in.frames;
    int64_t hw = S / G, TL = c->text_len, NI = job->in.n_clip;
    float sc = 1.0f / sqrtf((float)hd);
    int rc;

    TRY(backend_layer_norm(be, f->a, f->x, b->norm3_w, b->norm3_b, c->eps));
    TRY(backend_linear(be, f->q, f->a, b->ca_q, b->ca_qb));
    TRY(backend_rms_norm(be, f->q, f->q, b->ca_norm_q, c->eps));

    /* text: branches 0-1 (one query set of 2S tokens) vs neg, branch 2 vs pos */
    struct tensor q01 = heads(f->q, 0, 1, 2 * S, H, hd), o01 = heads(f->o, 0, 1, 2 * S, H, hd);
    struct tensor q2 = heads(f->q, 2 * S * D, 1, S, H, hd), o2 = heads(f->o, 2 * S * D, 1, S, H, hd);
    struct tensor kn = heads(job->k_neg[layer], 0, 1, TL, H, hd);
    struct tensor vn = heads(job->v_neg[layer], 0, 1, TL, H, hd);
    struct tensor kp = heads(job->k_pos[layer], 0, 1, TL, H, hd);
    struct tensor vp = heads(job->v_pos[layer], 0, 1, TL, H, hd);
    TRY(backend_attention(be, &o01, &q01, &kn, &vn, sc));
    TRY(backend_attention(be, &o2, &q2, &kp, &vp, sc));

    /* image: all 3 branches share the keys */
    struct tensor qa = heads(f->q, 0, 1, 3 * S, H, hd), ta = heads(f->t, 0, 1, 3 * S, H, hd);
    struct tensor ki = heads(job->k_img[layer], 0, 1, NI, H, hd);
    struct tensor vi = heads(job->v_img[layer], 0, 1, NI, H, hd);
    TRY(backend_attention(be, &ta, &qa, &ki, &vi, sc));
    TRY(backend_add(be, f->o, f->o, f->t));

    /* audio */
    struct tensor t0 = tensor_view_shape(f->t, 0, S, D);
    TRY(backend_fill(be, &t0, 0.0f));
    TRY(backend_add(be, &t0, &t0, b->ca_v_vocalb));
    TRY(backend_linear(be, f->kv_a, actx, b->ca_k_vocal, b->ca_k_vocalb));
    TRY(backend_linear(be, f->kv_b, actx, b->ca_v_vocal, b->ca_v_vocalb));
    struct tensor kv4 = heads(f->kv_a, 0, G, n_a, H, hd), vv4 = heads(f->kv_b, 0, G, n_a, H, hd);
    for (int br = 1; br < 3; br++) {
        struct tensor qf = heads(f->q, br * S * D, G, hw, H, hd);
        struct tensor tf = heads(f->t, br * S * D, G, hw, H, hd);
        TRY(backend_attention(be, &tf, &qf, &kv4, &vv4, sc));
    }
    TRY(backend_add(be, f->o, f->o, f->t));

    TRY(backend_linear(be, f->t, f->o, b->ca_o, b->ca_ob));
    TRY(backend_add(be, f->x, f->x, f->t));
    return 0;
fail:
    return rc;
}

static int head(struct dit *d, struct fwd *f, const struct tensor *e, int64_t S,
                struct tensor **hout)
{
    const struct dit_config *c = &d->cfg;
    struct backend *be = d->be;
    int64_t D = c->dim;
    int rc = ENC_ENOMEM;
    struct tensor *hm = tensor_new_shape(be, DTYPE_F32, 2, D);

    *hout = tensor_new_shape(be, DTYPE_F32, 3, S, d->head_w->shape[0]);
    if (!hm || !*hout)
        goto fail;
    struct tensor hm_flat = tensor_view_shape(d->head_mod, 0, 2, D);
    TRY(backend_add(be, hm, &hm_flat, e));
    struct tensor shift = row(hm, 0, D), scale = row(hm, 1, D);
    struct tensor x1 = tensor_view_shape(f->x, 0, 1, 3 * S, D);
    struct tensor a1 = tensor_view_shape(f->a, 0, 1, 3 * S, D);
    TRY(backend_layer_norm(be, &a1, &x1, NULL, NULL, c->eps));
    TRY(backend_modulate(be, &a1, &a1, &shift, &scale));
    TRY(backend_linear(be, *hout, f->a, d->head_w, d->head_b));
    rc = 0;
fail:
    if (rc < 0)
        tensor_destroy(hout);
    tensor_destroy(&hm);
    return rc;
}

/* unpatchify(): token n's feature q = (ph*2 + pw)*out + c goes to
 * out[b][c][fi][2i+ph][2j+pw] (SPEC 5.2.10); only real tokens are kept. */
static void unpatchify(const float *hout, int64_t S, int64_t outc, int64_t f, int64_t h,
                       int64_t w, float *out)
{
    int64_t hp = h / 2, wp = w / 2, feat = 4 * outc;
    for (int64_t b = 0; b < 3; b++)
        for (int64_t fi = 0; fi < f; fi++)
            for (int64_t i = 0; i < hp; i++)
                for (int64_t j = 0; j < wp; j++) {
                    const float *tok = hout + (b * S + (fi * hp + i) * wp + j) * feat;
                    for (int ph = 0; ph < 2; ph++)
                        for (int pw = 0; pw < 2; pw++)
                            for (int64_t ch = 0; ch < outc; ch++)
                                out[(((b * outc + ch) * f + fi) * h + 2 * i + ph) * w + 2 * j +
                                    pw] = tok[(ph * 2 + pw) * outc + ch];
                }
}

int dit_forward(struct dit *d, struct dit_job *job, const float *x, int64_t f, float t,
                const float *audio, int64_t n_audio, float *out)
{
    const struct dit_config *c = &d->cfg;
    struct backend *be = d->be;
    int64_t S = job->seq_len, D = c->dim, G = job->in.frames;
    int rc = ENC_ENOMEM;
    struct fwd fw = {0};
    struct tensor *xe = NULL, *e = NULL, *e0 = NULL, *actx = NULL, *hout = NULL;
    float *hhost = NULL;
    int64_t n_a = 0;
    char name[32];

    if (f < 1 || f > G || n_audio < 1) {
        return log_error_rc(ENC_EINVAL, "window of %lld frames (1..%lld allowed) with "
                            "%lld audio tokens", (long long)f, (long long)G,
                            (long long)n_audio);
    }
    xe = tensor_new_shape(be, DTYPE_F32, S, D);
    fw.x = tensor_new_shape(be, DTYPE_F32, 3, S, D);
    fw.a = tensor_new_shape(be, DTYPE_F32, 3, S, D);
    fw.q = tensor_new_shape(be, DTYPE_F32, 3, S, D);
    fw.k = tensor_new_shape(be, DTYPE_F32, 3, S, D);
    fw.v = tensor_new_shape(be, DTYPE_F32, 3, S, D);
    fw.o = tensor_new_shape(be, DTYPE_F32, 3, S, D);
    fw.t = tensor_new_shape(be, DTYPE_F32, 3, S, D);
    fw.hid = tensor_new_shape(be, DTYPE_F32, DIT_FFN_CHUNK, c->ffn_dim);
    fw.mod = tensor_new_shape(be, DTYPE_F32, 6, D);
    if (!xe || !fw.x || !fw.a || !fw.q || !fw.k || !fw.v || !fw.o || !fw.t || !fw.hid ||
        !fw.mod)
        goto fail;

    TRY(time_embed(d, t, &e, &e0));
    dit_tap(d, "e", e, 3);
    dit_tap(d, "e0", e0, 3);
    TRY(patch_embed(d, job, x, f, xe));
    for (int b = 0; b < 3; b++) {
        struct tensor xb = tensor_view_shape(fw.x, b * S * D, S, D);
        TRY(backend_copy(be, &xb, xe));
    }
    dit_tap(d, "x_embed", fw.x, 1);

    TRY(dit_adapter_forward(d, job, audio, n_audio, xe, e0, e, &actx, &n_a));
    fw.kv_a = tensor_new_shape(be, DTYPE_F32, G * n_a, D);
    fw.kv_b = tensor_new_shape(be, DTYPE_F32, G * n_a, D);
    if (!fw.kv_a || !fw.kv_b) {
        rc = ENC_ENOMEM;
        goto fail;
    }

    struct rope3d_params rp = {
        .grid = {f, job->in.h / 2, job->in.w / 2},
        .split = {c->rope_split[0], c->rope_split[1], c->rope_split[2]},
        .theta = 10000.0,
    };
    for (int i = 0; i < c->num_layers; i++) {
        const struct dit_block_weights *b = &d->blocks[i];
        struct tensor m6 = tensor_view_shape(b->modulation, 0, 6, D);
        TRY(backend_add(be, fw.mod, &m6, e0));
        TRY(self_attention(d, &fw, b, &rp, S));
        TRY(cross_attention(d, &fw, job, i, actx, n_a, S));
        struct tensor shift = row(fw.mod, 3, D), scale = row(fw.mod, 4, D);
        struct tensor gate = row(fw.mod, 5, D);
        TRY(ffn(be, fw.x, fw.a, fw.t, fw.hid, b->ffn1, b->ffn1b, b->ffn2, b->ffn2b, &shift,
                &scale, &gate, c->eps));
        snprintf(name, sizeof name, "block%d", i);
        dit_tap(d, name, fw.x, 1);
    }

    TRY(head(d, &fw, e, S, &hout));
    dit_tap(d, "head", hout, 1);
    hhost = backend_tensor_to_f32(be, hout);
    if (!hhost) {
        rc = ENC_EDEVICE;
        goto fail;
    }
    unpatchify(hhost, S, c->out_dim, f, job->in.h, job->in.w, out);
    rc = 0;
fail:
    if (rc < 0)
        log_error("forward failed: %s", enc_err_str(rc));
    fwd_release(&fw);
    tensor_destroy(&xe);
    tensor_destroy(&e);
    tensor_destroy(&e0);
    tensor_destroy(&actx);
    tensor_destroy(&hout);
    free(hhost);
    return rc;
}

double dit_flops(const struct dit_config *c, int64_t frames, int64_t h, int64_t w,
                 int64_t n_text, int64_t n_clip, int64_t n_audio)
{
    double S = (double)(frames * (h / 2) * (w / 2)), D = (double)c->dim;
    double hw = (double)((h / 2) * (w / 2)), G = (double)frames;
    int64_t first[1024], last[1024];
    double na = frames <= 1024 ? (double)dit_audio_groups(n_audio, (int)(4 * (frames - 1) + 1),
                                                          frames, first, last)
                               : 17.0;
    double Z = G * na, B = 3, flops = 0;

    (void)n_text;
    flops += 2 * S * (double)(c->in_dim * 4) * D;                           /* patch */
    flops += 2 * ((double)c->freq_dim * D + D * D + D * 6 * D);             /* time */
    flops += 2 * (double)n_audio * (double)c->audio_dim * D;                /* adapter in */
    for (int64_t j = 0; j < c->vocal_layers; j++)
        flops += 2 * Z * D * D * 2 + 2 * S * D * D * 2 + 4 * Z * hw * D +
                 4 * Z * D * (double)c->vocal_ffn_dim;
    flops += 2 * Z * D * D;                                                 /* adapter out */
    double per_block = 0;
    per_block += 2 * B * S * D * D * 4;                         /* self q, k, v, o */
    per_block += 4 * B * S * S * D;                             /* self attention */
    per_block += 2 * B * S * D * D * 2;                         /* cross q, o */
    per_block += 4 * B * S * (double)c->text_len * D;           /* text attention */
    per_block += 4 * B * S * (double)n_clip * D;                /* image attention */
    per_block += 2 * Z * D * D * 2 + 4 * 2 * S * na * D;        /* audio k, v, attention */
    per_block += 4 * B * S * D * (double)c->ffn_dim;            /* FFN */
    flops += per_block * (double)c->num_layers;
    flops += 2 * B * S * D * (double)(c->out_dim * 4);          /* head */
    return flops;
}
