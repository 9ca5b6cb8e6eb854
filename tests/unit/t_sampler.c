/* t_sampler.c - the flow-matching schedule, Euler step and guidance, bit-exact
 * against scheduler.safetensors (diffusers v0.30.1 as the original runs it). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tests/tap.h"
#include "tests/unit/st_mini.h"
#include "worker/models/sampler.h"

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* count of elements whose bits differ; prints the first */
static int64_t n_diff(const float *got, const float *want, int64_t n, const char *what)
{
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        if (bits(got[i]) != bits(want[i])) {
            if (!bad)
                diag("  %s[%lld]: got %.9g (%08x), want %.9g (%08x)", what, (long long)i, got[i],
                     bits(got[i]), want[i], bits(want[i]));
            bad++;
        }
    }
    return bad;
}

/* the fixture's fake model, all float32 */
static void fake_model(const float *x, float *v, int64_t n, float t)
{
    float tt = (t / 1000.0f) * 0.3f;
    for (int64_t i = 0; i < n; i++) {
        float a = x[i] * 0.5f;
        float b = (x[i] * x[i]) * 0.1f;
        v[i] = (a + b) - tt;
    }
}

int main(void)
{
    struct st_mini st;
    if (st_mini_open(&st, FIXTURE_DIR "/scheduler.safetensors") != 0) {
        plan(1);
        skip(1, "scheduler fixture not found");
        return done_testing();
    }
    struct st_mini_tensor t;

    /* training sigmas and timesteps */
    float *want_s = st_mini_f32(&st, "train.sigmas", &t);
    int n_train = (int)t.numel;
    ok(want_s && n_train == SAMPLER_TRAIN_STEPS, "train.sigmas has %d entries", n_train);
    float *want_t = st_mini_f32(&st, "train.timesteps", &t);
    float *s = calloc((size_t)n_train, sizeof(float));
    float *ts = calloc((size_t)n_train, sizeof(float));
    sampler_train_sigmas(n_train, SAMPLER_SHIFT, s);
    for (int i = 0; i < n_train; i++)
        ts[i] = s[i] * (float)n_train;
    is_int(n_diff(s, want_s, n_train, "train.sigmas"), 0, "train sigmas bit-exact");
    is_int(n_diff(ts, want_t, n_train, "train.timesteps"), 0, "train timesteps bit-exact");
    is_int(bits(s[n_train - 1]), 0x3BA32FF1, "sigma_min = 0x3BA32FF1 (SPEC 4)");
    free(want_s);
    free(want_t);
    free(s);
    free(ts);

    /* every stepsN group the fixture holds */
    struct st_mini_tensor tx;
    float *x0 = st_mini_f32(&st, "traj.x0", &tx);
    ok(x0 != NULL, "traj.x0 present (%lld values)", (long long)tx.numel);
    int groups = 0;
    for (int n = 1; n <= 1000; n++) {
        char name[64];
        snprintf(name, sizeof(name), "steps%d.timesteps", n);
        if (st_mini_find(&st, name, &t) != 0)
            continue;
        groups++;
        float *wt = st_mini_f32(&st, name, &t);
        is_int(t.numel, n, "%s has %d entries", name, n);
        snprintf(name, sizeof(name), "steps%d.sigmas", n);
        float *ws = st_mini_f32(&st, name, &t);
        is_int(t.numel, n + 1, "%s has %d entries", name, n + 1);
        float *sig = calloc((size_t)n + 1, sizeof(float));
        float *tim = calloc((size_t)n, sizeof(float));
        sampler_schedule(n, SAMPLER_TRAIN_STEPS, SAMPLER_SHIFT, sig, tim);
        is_int(n_diff(sig, ws, n + 1, "sigmas"), 0, "steps%d sigmas bit-exact", n);
        is_int(n_diff(tim, wt, n, "timesteps"), 0, "steps%d timesteps bit-exact", n);

        snprintf(name, sizeof(name), "steps%d.trajectory", n);
        float *traj = st_mini_f32(&st, name, &t);
        int64_t m = tx.numel;
        ok(traj && t.numel == (int64_t)n * m, "%s is [%d, %lld]", name, n, (long long)m);
        float *x = malloc(sizeof(float) * (size_t)m);
        float *v = malloc(sizeof(float) * (size_t)m);
        memcpy(x, x0, sizeof(float) * (size_t)m);
        int64_t bad = 0;
        for (int i = 0; i < n && traj; i++) {
            fake_model(x, v, m, tim[i]);
            sampler_euler_step(x, v, m, sig[i], sig[i + 1]);
            bad += n_diff(x, traj + (int64_t)i * m, m, name);
        }
        is_int(bad, 0, "steps%d Euler trajectory bit-exact (%d steps)", n, n);
        free(x);
        free(v);
        free(traj);
        free(sig);
        free(tim);
        free(wt);
        free(ws);
    }
    ok(groups >= 3, "fixture holds %d step groups", groups);
    free(x0);
    st_mini_close(&st);

    /* SPEC 4's printed values for 50 steps */
    float sig[51], tim[50];
    sampler_schedule(50, SAMPLER_TRAIN_STEPS, SAMPLER_SHIFT, sig, tim);
    is_near(sig[1], 0.995872, 1e-6, "sigma_1 of 50 = 0.995872");
    is_near(sig[49], 0.024414, 1e-6, "sigma_49 of 50 = 0.024414");
    ok(sig[0] == 1.0f && sig[50] == 0.0f && tim[0] == 1000.0f, "sigma_0 1, sigma_50 0, t_0 1000");
    /* one step: the schedule is [1, 0] */
    sampler_schedule(1, SAMPLER_TRAIN_STEPS, SAMPLER_SHIFT, sig, tim);
    ok(sig[0] == 1.0f && sig[1] == 0.0f && tim[0] == 1000.0f, "1 step: sigmas [1, 0]");

    /* guidance: u + a*(d - u) + t*(c - d), in that order */
    float out3[9] = {1.0f, -2.0f, 0.5f, 3.0f, 1.0f, 0.25f, 2.0f, 4.0f, -1.0f};
    float g[3];
    sampler_guide(g, out3, 3, 5.0f, 3.0f);
    int gok = 1;
    for (int i = 0; i < 3; i++) {
        float u = out3[i], d = out3[3 + i], c = out3[6 + i];
        float a = 5.0f * (d - u);
        float b = 3.0f * (c - d);
        float want = (u + a) + b;
        gok &= bits(g[i]) == bits(want);
    }
    ok(gok, "guide combines uncond, audio-only, cond");
    is_near(g[0], 1 + 5 * 2 + 3 * (-1), 0, "guide value 0 = 8");
    /* audio 1, text 1 reduces to the cond branch */
    sampler_guide(g, out3, 3, 1.0f, 1.0f);
    ok(g[0] == 2.0f && g[1] == 4.0f && g[2] == -1.0f, "scales 1,1 give the cond branch");
    return done_testing();
}
