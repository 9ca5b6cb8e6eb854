/*
 * dit_adapter.c - StableAvatar's timestep-aware audio adapter (SPEC 6):
 * wav2vec2 features -> projection -> per-latent-frame token groups -> two
 * vocal blocks (modulated residual, per-frame cross-attention to the
 * patch-embedded video tokens, FFN) -> final modulated projection.
 *
 * Runs once per forward, on the conditional branch's inputs; the DiT gives
 * zeros to branch 0 and this output to branches 1 and 2.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "../../common/err.h"
#include "../../common/log.h"
#include "../../common/xmalloc.h"
#include "dit_internal.h"

int64_t dit_audio_groups(int64_t n_tok, int n_frames, int64_t groups, int64_t *first,
                         int64_t *last)
{
    /* Evaluated in double in the original's order: the algebraically equal
     * int(tau*(4i-1)) - 1 differs in floating point (SPEC 6.2). */
    double tau = (double)n_tok / (double)n_frames;
    int64_t half = (int64_t)(tau * 4.0 / 2.0);
    for (int64_t i = 1; i < groups; i++) {
        double start = tau * (double)((i - 1) * 4 + 1);
        double end = tau * (double)(i * 4 + 1);
        int64_t centre = (int64_t)((start + end) / 2.0) - 1;
        first[i] = centre - half - 4;
        last[i] = centre + half + 4;
    }
    if (groups > 1) {
        int64_t r1_start = first[1] + 4;
        first[0] = r1_start - 2 * half - 4;
        last[0] = r1_start + 4;
    } else {
        first[0] = -half - 4;
        last[0] = half + 4;
    }
    return 2 * half + 9;
}

/* group_tokens(): Z (G*n_a, dim) = for each group its valid rows of P, then
 * zero rows (front and back padding both go to the end, SPEC 6.2). */
static int group_tokens(struct backend *be, const struct tensor *P, int64_t n_tok,
                        const int64_t *first, const int64_t *last, int64_t G, int64_t n_a,
                        struct tensor *Z)
{
    int64_t D = P->shape[1];
    int rc;

    TRY(backend_fill(be, Z, 0.0f));
    for (int64_t g = 0; g < G; g++) {
        int64_t a = first[g] < 0 ? 0 : first[g];
        int64_t b = last[g] > n_tok - 1 ? n_tok - 1 : last[g];
        if (b < a)
            continue;
        struct tensor src = tensor_view_shape(P, a * D, b - a + 1, D);
        struct tensor dst = tensor_view_shape(Z, g * n_a * D, b - a + 1, D);
        TRY(backend_copy(be, &dst, &src));
    }
    return 0;
fail:
    return rc;
}

static struct tensor row(const struct tensor *t, int64_t i, int64_t dim)
{
    return tensor_view_shape(t, i * dim, 1, dim);
}

/* vocal_block(): SPEC 6.1 step 3 on z (Z, dim), x0 (S, dim). */
static int vocal_block(struct dit *d, const struct dit_vocal_block_weights *b, struct tensor *z,
                       const struct tensor *x0, const struct tensor *e0, int64_t G,
                       int64_t n_a)
{
    const struct dit_config *c = &d->cfg;
    struct backend *be = d->be;
    int64_t D = c->dim, Z = z->shape[0], S = x0->shape[0], hw = S / G;
    int64_t H = c->vocal_heads, hd = D / H;
    int rc = ENC_ENOMEM;
    struct tensor *mod = tensor_new_shape(be, DTYPE_F32, 6, D);
    struct tensor *a = tensor_new_shape(be, DTYPE_F32, Z, D);
    struct tensor *q = tensor_new_shape(be, DTYPE_F32, Z, D);
    struct tensor *o = tensor_new_shape(be, DTYPE_F32, Z, D);
    struct tensor *k = tensor_new_shape(be, DTYPE_F32, S, D);
    struct tensor *v = tensor_new_shape(be, DTYPE_F32, S, D);
    struct tensor *hid = tensor_new_shape(be, DTYPE_F32, Z, c->vocal_ffn_dim);

    if (!mod || !a || !q || !o || !k || !v || !hid)
        goto fail;
    struct tensor m6 = tensor_view_shape(b->modulation, 0, 6, D);
    TRY(backend_add(be, mod, &m6, e0));
    struct tensor s0 = row(mod, 0, D), s1 = row(mod, 1, D), s2 = row(mod, 2, D);
    struct tensor s3 = row(mod, 3, D), s4 = row(mod, 4, D), s5 = row(mod, 5, D);
    struct tensor z3 = tensor_view_shape(z, 0, 1, Z, D), a3 = tensor_view_shape(a, 0, 1, Z, D);
    struct tensor o3 = tensor_view_shape(o, 0, 1, Z, D);

    /* modulated residual, no attention */
    TRY(backend_layer_norm(be, a, z, NULL, NULL, c->eps));
    TRY(backend_modulate(be, &a3, &a3, &s0, &s1));
    TRY(backend_gated_add(be, &z3, &a3, &s2));

    /* per-frame cross-attention: frame g's n_a tokens attend its hw video tokens */
    TRY(backend_layer_norm(be, a, z, b->norm3_w, b->norm3_b, c->eps));
    TRY(backend_linear(be, q, a, b->q, b->qb));
    TRY(backend_rms_norm(be, q, q, b->norm_q, c->eps));
    TRY(backend_linear(be, k, x0, b->k, b->kb));
    TRY(backend_rms_norm(be, k, k, b->norm_k, c->eps));
    TRY(backend_linear(be, v, x0, b->v, b->vb));
    struct tensor q4 = tensor_view_shape(q, 0, G, n_a, H, hd);
    struct tensor o4 = tensor_view_shape(o, 0, G, n_a, H, hd);
    struct tensor k4 = tensor_view_shape(k, 0, G, hw, H, hd);
    struct tensor v4 = tensor_view_shape(v, 0, G, hw, H, hd);
    TRY(backend_attention(be, &o4, &q4, &k4, &v4, 1.0f / sqrtf((float)hd)));
    TRY(backend_linear(be, a, o, b->o, b->ob));
    TRY(backend_add(be, z, z, a));

    /* FFN */
    TRY(backend_layer_norm(be, a, z, NULL, NULL, c->eps));
    TRY(backend_modulate(be, &a3, &a3, &s3, &s4));
    TRY(backend_linear(be, hid, a, b->ffn1, b->ffn1b));
    TRY(backend_gelu_tanh(be, hid, hid));
    TRY(backend_linear(be, o, hid, b->ffn2, b->ffn2b));
    TRY(backend_gated_add(be, &z3, &o3, &s5));
    rc = 0;
fail:
    tensor_destroy(&mod);
    tensor_destroy(&a);
    tensor_destroy(&q);
    tensor_destroy(&o);
    tensor_destroy(&k);
    tensor_destroy(&v);
    tensor_destroy(&hid);
    return rc;
}

int dit_adapter_forward(struct dit *d, const struct dit_job *job, const float *audio,
                        int64_t n_audio, const struct tensor *x0, const struct tensor *e0,
                        const struct tensor *e, struct tensor **ctx, int64_t *n_a_out)
{
    const struct dit_config *c = &d->cfg;
    struct backend *be = d->be;
    int64_t D = c->dim, G = job->in.frames;
    int rc = ENC_ENOMEM;
    int64_t *first = xcalloc((size_t)G, sizeof(int64_t));
    int64_t *last = xcalloc((size_t)G, sizeof(int64_t));
    struct tensor *in = NULL, *P = NULL, *z = NULL, *hm = NULL, *a = NULL;
    char name[32];

    *ctx = NULL;
    int64_t n_a = dit_audio_groups(n_audio, job->in.clip_frames, G, first, last);
    in = backend_tensor_from_host(be, DTYPE_F32, 2, (int64_t[]){n_audio, c->audio_dim}, audio,
                                  0);
    P = tensor_new_shape(be, DTYPE_F32, n_audio, D);
    z = tensor_new_shape(be, DTYPE_F32, G * n_a, D);
    a = tensor_new_shape(be, DTYPE_F32, G * n_a, D);
    hm = tensor_new_shape(be, DTYPE_F32, 2, D);
    *ctx = tensor_new_shape(be, DTYPE_F32, G * n_a, D);
    if (!in || !P || !z || !a || !hm || !*ctx)
        goto fail;

    TRY(backend_linear(be, P, in, d->vp_proj, NULL));
    TRY(backend_layer_norm(be, P, P, d->vp_norm_w, d->vp_norm_b, 1e-5f));
    dit_tap(d, "vocal_proj_feature", P, 1);
    TRY(group_tokens(be, P, n_audio, first, last, G, n_a, z));
    for (int j = 0; j < c->vocal_layers; j++) {
        TRY(vocal_block(d, &d->vblocks[j], z, x0, e0, G, n_a));
        snprintf(name, sizeof name, "vocal_block%d", j);
        dit_tap(d, name, z, 1);
    }

    struct tensor hm_flat = tensor_view_shape(d->vp_head_mod, 0, 2, D);
    TRY(backend_add(be, hm, &hm_flat, e));
    struct tensor shift = row(hm, 0, D), scale = row(hm, 1, D);
    struct tensor a3 = tensor_view_shape(a, 0, 1, G * n_a, D);
    TRY(backend_layer_norm(be, a, z, NULL, NULL, c->eps));
    TRY(backend_modulate(be, &a3, &a3, &shift, &scale));
    TRY(backend_linear(be, *ctx, a, d->vp_final, d->vp_finalb));
    dit_tap(d, "vocal_context", *ctx, 1);
    *n_a_out = n_a;
    rc = 0;
fail:
    if (rc < 0)
        tensor_destroy(ctx);
    tensor_destroy(&in);
    tensor_destroy(&P);
    tensor_destroy(&z);
    tensor_destroy(&a);
    tensor_destroy(&hm);
    free(first);
    free(last);
    return rc;
}
