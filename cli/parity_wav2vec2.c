/*
 * parity_wav2vec2.c - `encore parity` for fixtures of kind "wav2vec2":
 * every case k (input.waveform_k) is encoded from the raw waveform and its
 * processor normalisation (bit-exact), conv features and last_hidden_state
 * are compared with the original's (README-encoders: last_hidden_state
 * within 1e-4; conv features, larger in magnitude, within 1e-5 of their
 * peak).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/err.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "parity.h"
#include "worker/models/wav2vec2.h"

static double peak_abs(const float *x, int64_t n)
{
    double p = 0;
    for (int64_t i = 0; i < n; i++)
        if (fabs(x[i]) > p)
            p = fabs(x[i]);
    return p;
}

int parity_wav2vec2(struct parity_run *r)
{
    struct ckpt *wck = NULL;
    struct wav2vec2 *m = NULL;
    int rc;
    if (r->weights_path) {
        rc = ckpt_open(r->weights_path, &wck);
        if (rc < 0)
            return rc;
    }
    rc = wav2vec2_load(r->be, wck ? &wck : &r->fx, 1, &m);
    if (rc < 0)
        goto out;
    const struct wav2vec2_config *c = wav2vec2_get_config(m);
    int n_cases = 0;
    for (int k = 0;; k++) {
        char name[64], label[64];
        snprintf(name, sizeof(name), "input.waveform_%d", k);
        if (!ckpt_find(r->fx, name))
            break;
        int64_t n = 0, ncf = 0;
        float *wave = parity_read_f32(r, name, &n);
        snprintf(name, sizeof(name), "expected.conv_features_%d", k);
        float *cf_ref = parity_read_f32(r, name, &ncf);
        int64_t T = wav2vec2_frames_cfg(c, n);
        if (!wave || !cf_ref || T <= 0 || ncf != T * c->conv_dim[c->n_conv - 1]) {
            free(wave);
            free(cf_ref);
            rc = log_error_rc(ENC_EINVAL,
                              "'%s': case %d: waveform or conv features missing or "
                              "of the wrong size",
                              r->path, k);
            goto out;
        }
        float *iv = xmalloc((size_t)n * sizeof(float));
        float *cf = xmalloc((size_t)ncf * sizeof(float));
        float *hs = xmalloc((size_t)(T * c->hidden) * sizeof(float));
        rc = wav2vec2_forward_ex(m, wave, n, 1, iv, cf, hs, NULL);
        if (rc == 0) {
            snprintf(name, sizeof(name), "input.input_values_%d", k);
            snprintf(label, sizeof(label), "input_values_%d", k);
            if (ckpt_find(r->fx, name))
                parity_check(r, name, label, iv, n, 0, 0); /* numpy-exact */
            snprintf(name, sizeof(name), "expected.conv_features_%d", k);
            snprintf(label, sizeof(label), "conv_features_%d", k);
            parity_check(r, name, label, cf, ncf, 1e-5 * peak_abs(cf_ref, ncf), 0);
            snprintf(name, sizeof(name), "expected.last_hidden_state_%d", k);
            snprintf(label, sizeof(label), "last_hidden_state_%d", k);
            parity_check(r, name, label, hs, T * c->hidden, 1e-4, 0);
        }
        free(wave);
        free(cf_ref);
        free(iv);
        free(cf);
        free(hs);
        if (rc < 0)
            goto out;
        n_cases++;
    }
    if (n_cases == 0)
        rc = log_error_rc(ENC_EINVAL, "'%s': no input.waveform_0", r->path);
out:
    wav2vec2_destroy(&m);
    ckpt_close(&wck);
    return rc;
}
