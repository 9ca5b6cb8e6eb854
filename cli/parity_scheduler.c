/*
 * parity_scheduler.c - `encore parity` for fixtures of kind "scheduler":
 * the flow-matching schedule (training sigmas/timesteps, every stepsN group
 * the file holds) and the Euler trajectories of the fixture's fake model,
 * all compared with 0 ulp tolerance. Every size comes from the file: the
 * training length from train.sigmas, N from the group names, the latent
 * size from traj.x0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/parse.h"
#include "common/xmalloc.h"
#include "parity.h"
#include "worker/models/sampler.h"

/* the fixture's fake model, all float32: v = x*0.5 + (x*x)*0.1 - (t/1000)*0.3 */
static void fake_model(const float *x, float *v, int64_t n, float t)
{
    float tt = (t / 1000.0f) * 0.3f;
    for (int64_t i = 0; i < n; i++) {
        float a = x[i] * 0.5f;
        float b = (x[i] * x[i]) * 0.1f;
        v[i] = (a + b) - tt;
    }
}

/* one stepsN group: schedule and trajectory */
static int check_steps(struct parity_run *r, int n, const float *x0, int64_t m)
{
    char name[64];
    float *sig = xcalloc((size_t)n + 1, sizeof(float));
    float *tim = xcalloc((size_t)n, sizeof(float));
    sampler_schedule(n, SAMPLER_TRAIN_STEPS, SAMPLER_SHIFT, sig, tim);
    snprintf(name, sizeof(name), "steps%d.sigmas", n);
    parity_check_ulp(r, name, NULL, sig, n + 1, 0);
    snprintf(name, sizeof(name), "steps%d.timesteps", n);
    parity_check_ulp(r, name, NULL, tim, n, 0);

    snprintf(name, sizeof(name), "steps%d.trajectory", n);
    const struct ckpt_tensor *tt = parity_tensor(r, name);
    int rc = 0;
    if (!tt) {
        rc = ENC_EINVAL;
    } else if (ckpt_numel(tt) != (int64_t)n * m) {
        rc = log_error_rc(ENC_EINVAL, "'%s': %s has %lld values, want %d x %lld", r->path, name,
                          (long long)ckpt_numel(tt), n, (long long)m);
    } else {
        float *traj = xmalloc(sizeof(float) * (size_t)(n * m));
        float *x = xmalloc(sizeof(float) * (size_t)m);
        float *v = xmalloc(sizeof(float) * (size_t)m);
        memcpy(x, x0, sizeof(float) * (size_t)m);
        for (int i = 0; i < n; i++) {
            fake_model(x, v, m, tim[i]);
            sampler_euler_step(x, v, m, sig[i], sig[i + 1]);
            memcpy(traj + (int64_t)i * m, x, sizeof(float) * (size_t)m);
        }
        parity_check_ulp(r, name, NULL, traj, n * m, 0);
        free(traj);
        free(x);
        free(v);
    }
    free(sig);
    free(tim);
    return rc;
}

int parity_scheduler(struct parity_run *r)
{
    int64_t n_train = 0, m = 0;
    float *want = parity_read_f32(r, "train.sigmas", &n_train);
    if (!want)
        return ENC_EINVAL;
    free(want);
    if (n_train < 2 || n_train > 1000000)
        return log_error_rc(ENC_EINVAL, "'%s': train.sigmas has %lld entries", r->path,
                            (long long)n_train);
    float *s = xcalloc((size_t)n_train, sizeof(float));
    float *t = xcalloc((size_t)n_train, sizeof(float));
    sampler_train_sigmas((int)n_train, SAMPLER_SHIFT, s);
    for (int64_t i = 0; i < n_train; i++)
        t[i] = s[i] * (float)n_train;
    parity_check_ulp(r, "train.sigmas", NULL, s, n_train, 0);
    parity_check_ulp(r, "train.timesteps", NULL, t, n_train, 0);
    free(s);
    free(t);

    float *x0 = parity_read_f32(r, "traj.x0", &m);
    if (!x0)
        return ENC_EINVAL;
    int rc = 0, groups = 0;
    for (size_t i = 0; i < ckpt_count(r->fx) && rc == 0; i++) {
        const char *name = ckpt_at(r->fx, i)->name;
        const char *dot = strchr(name, '.');
        if (strncmp(name, "steps", 5) != 0 || !dot || strcmp(dot, ".timesteps") != 0)
            continue;
        char num[32];
        size_t len = (size_t)(dot - name - 5);
        int n = 0;
        if (len == 0 || len >= sizeof(num))
            continue;
        memcpy(num, name + 5, len);
        num[len] = 0;
        if (parse_int(num, 1, 100000, &n) != 0)
            continue;
        rc = check_steps(r, n, x0, m);
        groups++;
    }
    free(x0);
    if (rc == 0 && groups == 0)
        rc = log_error_rc(ENC_EINVAL, "'%s': no stepsN groups", r->path);
    return rc;
}
