/*
 * dit_internal.h - the DiT's weights, per-render state and workspace,
 * shared by dit.c (embeddings, blocks, head) and dit_adapter.c (the
 * StableAvatar audio adapter). Not part of the public interface.
 */
#ifndef ENCORE_DIT_INTERNAL_H
#define ENCORE_DIT_INTERNAL_H

#include "../engine/weights.h"
#include "dit.h"

#define TRY(expr)                                                                              \
    do {                                                                                       \
        if ((rc = (expr)) < 0)                                                                 \
            goto fail;                                                                         \
    } while (0)

/* Rows of the token buffer processed per FFN chunk: bounds the hidden
 * activation to DIT_FFN_CHUNK x ffn_dim whatever the video size. The chunk
 * is fixed, so results do not depend on it. */
#define DIT_FFN_CHUNK 4096

struct dit_block_weights {
    struct tensor *modulation;                       /* (1, 6, dim) f32 */
    struct tensor *sa_q, *sa_k, *sa_v, *sa_o;        /* (dim, dim) */
    struct tensor *sa_qb, *sa_kb, *sa_vb, *sa_ob;    /* (dim) */
    struct tensor *sa_norm_q, *sa_norm_k;            /* (dim) */
    struct tensor *norm3_w, *norm3_b;                /* (dim) */
    struct tensor *ca_q, *ca_k, *ca_v, *ca_o;        /* (dim, dim) */
    struct tensor *ca_qb, *ca_kb, *ca_vb, *ca_ob;    /* (dim) */
    struct tensor *ca_norm_q, *ca_norm_k;            /* (dim) */
    struct tensor *ca_k_img, *ca_v_img;              /* (dim, dim) */
    struct tensor *ca_k_imgb, *ca_v_imgb;            /* (dim) */
    struct tensor *ca_norm_k_img;                    /* (dim) */
    struct tensor *ca_k_vocal, *ca_v_vocal;          /* (dim, dim) */
    struct tensor *ca_k_vocalb, *ca_v_vocalb;        /* (dim) */
    struct tensor *ffn1, *ffn1b;                     /* (ffn, dim), (ffn) */
    struct tensor *ffn2, *ffn2b;                     /* (dim, ffn), (dim) */
};

struct dit_vocal_block_weights {
    struct tensor *modulation;                       /* (1, 6, dim) f32 */
    struct tensor *norm3_w, *norm3_b;                /* (dim) */
    struct tensor *q, *k, *v, *o;                    /* (dim, dim) */
    struct tensor *qb, *kb, *vb, *ob;                /* (dim) */
    struct tensor *norm_q, *norm_k;                  /* (dim) */
    struct tensor *ffn1, *ffn1b;                     /* (vffn, dim), (vffn) */
    struct tensor *ffn2, *ffn2b;                     /* (dim, vffn), (dim) */
};

struct dit {
    struct backend *be;
    struct dit_config cfg;
    struct weights *w;

    struct tensor patch_w;                           /* view (dim, in_dim*pt*ph*pw) */
    struct tensor *patch_w5, *patch_b;               /* (dim, in_dim, pt, ph, pw), (dim) */
    struct tensor *text0, *text0b, *text2, *text2b;  /* (dim, text_dim), (dim, dim) */
    struct tensor *time0, *time0b, *time2, *time2b;  /* (dim, freq), (dim, dim) */
    struct tensor *tproj, *tprojb;                   /* (6 dim, dim), (6 dim) */
    struct tensor *img_ln0w, *img_ln0b;              /* (clip) */
    struct tensor *img1, *img1b;                     /* (clip, clip), (clip) */
    struct tensor *img3, *img3b;                     /* (dim, clip), (dim) */
    struct tensor *img_ln4w, *img_ln4b;              /* (dim) */
    struct tensor *head_mod;                         /* (1, 2, dim) f32 */
    struct tensor *head_w, *head_b;                  /* (out*pt*ph*pw, dim) */
    struct dit_block_weights *blocks;                /* num_layers */

    struct tensor *vp_proj;                          /* (dim, audio_dim), no bias */
    struct tensor *vp_norm_w, *vp_norm_b;            /* (dim) */
    struct dit_vocal_block_weights *vblocks;         /* vocal_layers */
    struct tensor *vp_head_mod;                      /* (1, 2, dim) */
    struct tensor *vp_final, *vp_finalb;             /* (dim, dim), (dim) */

    int64_t patch[3];                                /* pt, ph, pw */

    dit_tap_fn *tap;
    void *tap_ctx;
};

/* Per-render constants: contexts and their per-block keys and values. */
struct dit_job {
    struct dit_job_inputs in;      /* sizes; pointers not kept */
    float *y;                      /* (20, frames, h, w) host copy */
    int64_t seq_len;               /* frames * h' * w' */
    int64_t n_layers;              /* length of the per-block arrays */
    struct tensor *text_neg;       /* (text_len, dim) embedded, padded rows included */
    struct tensor *text_pos;       /* (text_len, dim) */
    struct tensor *img;            /* (n_clip, dim) */
    /* per block: keys (normed) and values of the contexts */
    struct tensor **k_neg, **v_neg, **k_pos, **v_pos, **k_img, **v_img;
};

/* dit_tap() hands a device tensor to the debug tap as host f32 (no-op
 * without a tap). rows > 1 replicates a [1, ...] tensor into [rows, ...]. */
void dit_tap(struct dit *d, const char *name, const struct tensor *t, int rows);

/*
 * dit_adapter_forward() runs the audio adapter (SPEC 6) on one window:
 * audio (n_audio, audio_dim) host f32, x0 (seq_len, dim) the patch-embedded
 * token buffer of the conditional branch, e0 (6, dim) and e (1, dim).
 * Writes ctx, a new tensor (frames * n_a, dim), and *n_a.
 */
int dit_adapter_forward(struct dit *d, const struct dit_job *job, const float *audio,
                        int64_t n_audio, const struct tensor *x0, const struct tensor *e0,
                        const struct tensor *e, struct tensor **ctx, int64_t *n_a);

/*
 * dit_audio_groups() computes SPEC 6.2's token ranges: for G groups of
 * n_frames video frames over n_tok tokens, writes first[g] and last[g]
 * (inclusive, before clipping to [0, n_tok)) and returns N_a (tokens per
 * group after padding).
 */
int64_t dit_audio_groups(int64_t n_tok, int n_frames, int64_t groups, int64_t *first,
                         int64_t *last);

#endif
