/*
 * vae_impl.h - internals shared by vae.c, vae_blocks.c, vae_decode.c and
 * vae_encode.c: the layer structs and the cached-stream building blocks.
 *
 * Activations are f32 [C, T, H, W] (channel-major, as conv3d wants them).
 * A stream is one pass of the encoder or decoder over a video, chunk by
 * chunk; struct vae_stream holds the per-conv caches (the original's
 * feat_cache), each in frame-major layout [n, C, H*W] so that appending
 * and trimming frames are contiguous copies. Cache slots are numbered at
 * load time in execution order, as the original's feat_idx.
 */
#ifndef ENCORE_VAE_IMPL_H
#define ENCORE_VAE_IMPL_H

#include "vae.h"
#include "worker/engine/weights.h"

/* A convolution: weight viewed as 5-D [cout, cin, kt, kh, kw]. */
struct vae_conv {
    struct tensor w;  /* view of the bound weight, (cout, cin, kt, kh, kw) */
    struct tensor *b; /* (cout) */
    int cin, cout, kt, kh, kw;
    int slot; /* cache slot for 3-tap causal convs, else -1 */
};

enum vae_block_kind {
    VAE_BLOCK_RES = 0, /* ResidualBlock(cin, cout) */
    VAE_BLOCK_ATTN,    /* AttentionBlock(c), per frame */
    VAE_BLOCK_UP2D,    /* nearest x2 + conv2d(c -> c/2) */
    VAE_BLOCK_UP3D,    /* time_conv (c -> 2c, x2 frames) + UP2D */
    VAE_BLOCK_DOWN2D,  /* pad right/bottom, conv2d stride 2 */
    VAE_BLOCK_DOWN3D,  /* DOWN2D + time_conv stride 2 over [last cached, new] */
};

struct vae_block {
    enum vae_block_kind kind;
    int cin, cout;
    /* RES */
    struct tensor g0;   /* residual.0.gamma viewed (cin) */
    struct vae_conv c1; /* residual.2 (cout, cin, 3, 3, 3) */
    struct tensor g1;   /* residual.3.gamma viewed (cout) */
    struct vae_conv c2; /* residual.6 (cout, cout, 3, 3, 3) */
    int has_shortcut;
    struct vae_conv sc; /* shortcut (cout, cin, 1, 1, 1) */
    /* ATTN: g0 = norm.gamma (c); qkv (3c, c, 1, 1, 1); proj (c, c, 1, 1, 1) */
    struct vae_conv qkv, proj;
    /* UP/DOWN: resample.1 (cout, cin, 1, 3, 3); time_conv (UP3D: (2c, c, 3, 1, 1),
     * DOWN3D: (c, c, 3, 1, 1)); slot = cache slot of the time conv */
    struct vae_conv rs, tc;
};

/* conv1 -> blocks -> head(RMS, SiLU, conv); encoder: downsamples then middle,
 * decoder: middle then upsamples. */
struct vae_stack {
    int present;
    struct vae_conv conv_in; /* conv1 (c0, cin, 3, 3, 3) */
    int n_blocks;
    struct vae_block *blocks;
    struct tensor head_g; /* head.0.gamma viewed (c) */
    struct vae_conv head; /* head.2 (cout, c, 3, 3, 3) */
    int n_slots;          /* cache slots used */
    int time_factor;      /* 2^(temporal resamples) */
    int space_factor;     /* 2^(spatial resamples) */
};

struct vae {
    struct backend *be;
    struct weights *wts;
    struct ckpt *own_ck; /* vae_open()'s checkpoint, else NULL */
    int z;               /* latent channels */
    struct vae_stack dec, enc;
    struct vae_conv post_quant; /* conv2 (z, z, 1, 1, 1): decoder input */
    struct vae_conv quant;      /* conv1 (2z, 2z, 1, 1, 1): encoder output */
    float inv_std[VAE_Z_DIM];   /* f32(1 / std) */
    int receptive;              /* decoder receptive field, latent frames */
    int64_t n_params;
};

/* One pass over a video: caches per slot (NULL until the first chunk). */
struct vae_stream {
    struct vae *vae;
    const struct vae_stack *stk;
    struct tensor **cache; /* per slot: frame-major (n, C, HW) */
    int64_t chunk;         /* chunks processed */
};

int vae_stream_init(struct vae_stream *st, struct vae *vae, const struct vae_stack *stk);
void vae_stream_release(struct vae_stream *st);
/* vae_stack_forward() runs one chunk x [cin, T, H, W] through conv1, the
 * blocks and the head; *out gets a new [cout, T', H', W']. */
int vae_stack_forward(struct vae_stream *st, const struct tensor *x, struct tensor **out);
/* vae_pointwise() is a 1x1x1 conv (conv1/conv2 of the top level). */
int vae_pointwise(struct backend *be, const struct vae_conv *cv, const struct tensor *x,
                  struct tensor **out);

/* vae_receptive_field_compute() (vae_decode.c) derives the warm-up from the
 * decoder's layer list; called once at load. */
int vae_receptive_field_compute(const struct vae *vae);

/* Binding (vae.c): a conv of the given shape at name (".weight"/".bias"
 * appended); kt == 0 means a 2-D conv stored [cout, cin, kh, kw]. */
int vae_bind_conv(struct weights *w, const char *name, int cout, int cin, int kt, int kh, int kw,
                  struct vae_conv *cv);

#endif
