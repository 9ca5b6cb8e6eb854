/*
 * parity_clip_vision.c - `encore parity` for fixtures of kind "clip_vision":
 * the tower runs on input.clip_image and every stage the fixture stores is
 * compared: the bicubic resize and the normalised pixels (1e-5), the
 * embeddings, each block's output and the features (1e-4, README-encoders).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "parity.h"
#include "worker/models/clip.h"

struct clip_parity {
    struct parity_run *r;
};

static void check_stage(void *ctx, const char *name, const float *data, int64_t n)
{
    struct clip_parity *cp = ctx;
    char fx_name[64];
    double tol = 1e-4;
    if (strcmp(name, "resized") == 0 || strcmp(name, "pixel_values") == 0) {
        snprintf(fx_name, sizeof(fx_name), "expected.%s", name);
        tol = 1e-5;
    } else if (strncmp(name, "block", 5) == 0) {
        snprintf(fx_name, sizeof(fx_name), "expected.block_%s", name + 5);
    } else {
        snprintf(fx_name, sizeof(fx_name), "expected.%s", name);
    }
    if (ckpt_find(cp->r->fx, fx_name))
        parity_check(cp->r, fx_name, name, data, n, tol, 0);
}

int parity_clip_vision(struct parity_run *r)
{
    struct ckpt *wck = NULL;
    struct clip *m = NULL;
    float *image = NULL, *feat = NULL;
    int rc;
    if (r->weights_path) {
        rc = ckpt_open(r->weights_path, &wck);
        if (rc < 0)
            return rc;
    }
    rc = clip_load(r->be, wck ? &wck : &r->fx, 1, &m);
    if (rc < 0)
        goto out;
    const struct clip_config *c = clip_get_config(m);
    const struct ckpt_tensor *t = parity_tensor(r, "input.clip_image");
    if (!t || t->ndim != 3 || t->shape[0] != 3) {
        rc = log_error_rc(ENC_EINVAL, "'%s': no input.clip_image [3, H, W]", r->path);
        goto out;
    }
    image = parity_read_f32(r, "input.clip_image", NULL);
    feat = xmalloc((size_t)(c->n_tokens * c->dim) * sizeof(float));
    struct clip_parity cp = {.r = r};
    rc = clip_forward(m, image, t->shape[1], t->shape[2], feat, check_stage, &cp);
    if (rc == 0)
        parity_check(r, "expected.features", "features", feat, c->n_tokens * c->dim, 1e-4, 0);
out:
    free(image);
    free(feat);
    clip_destroy(&m);
    ckpt_close(&wck);
    return rc;
}
