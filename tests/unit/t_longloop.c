/* t_longloop.c - the sliding-window loop driven by a cheap deterministic model,
 * against a straightforward transliteration of the loop fixture's
 * pseudo-code (README section 3), bit for bit, for many lengths, overlaps,
 * schemes and step counts; plus once-per-window audio, progress and errors. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/bf16.h"
#include "common/err.h"
#include "common/log.h"
#include "common/noise.h"
#include "common/plan.h"
#include "tests/tap.h"
#include "worker/engine/backend.h"
#include "worker/engine/checkpoint.h"
#include "worker/longloop.h"
#include "worker/models/dit.h"
#include "worker/models/sampler.h"

enum { CH = 16, DIM = 3 };

/* a cheap model that mixes neighbouring frames, the audio and the window */
static int fake_model(void *ctx, int64_t k, const float *x, int64_t f, float t, const float *audio,
                      int64_t n_audio, float *out3)
{
    const int64_t *hw = ctx;
    int64_t n = CH * f * *hw;
    for (int b = 0; b < 3; b++) {
        for (int c = 0; c < CH; c++) {
            for (int64_t j = 0; j < f; j++) {
                for (int64_t i = 0; i < *hw; i++) {
                    int64_t at = ((int64_t)c * f + j) * *hw + i;
                    float m = x[at];
                    float nb = x[((int64_t)c * f + (j > 0 ? j - 1 : j)) * *hw + i];
                    float a = audio[((j + i) % n_audio) * DIM + c % DIM];
                    out3[b * n + at] = 0.5f * m - 0.03f * (float)(b + 1) * nb * m +
                                       0.01f * (float)b * a +
                                       (t / 1000.0f) * 0.1f * (float)(c - 7) + 0.02f * (float)k;
                }
            }
        }
    }
    return 0;
}

/* features of window k: a pure function of (k, its audio slice) */
static float *make_feat(int64_t k, const struct plan_window *w, int64_t *n)
{
    *n = 2 + (w->audio_end - w->audio_begin) / 2560;
    float *f = malloc(sizeof(float) * (size_t)(*n * DIM));
    for (int64_t i = 0; i < *n * DIM; i++)
        f[i] = (float)sin((double)(i + 1) * 0.37 + (double)k * 1.3 + (double)w->audio_begin);
    return f;
}

struct audio_log {
    int calls;
    int64_t seen[64];
};

static int audio_cb(void *ctx, int64_t k, const struct plan_window *w, float **feat, int64_t *n)
{
    struct audio_log *a = ctx;
    if (a->calls < 64)
        a->seen[a->calls] = k;
    a->calls++;
    *feat = make_feat(k, w, n);
    return 0;
}

/* The fixture's pseudo-code, transliterated on f32 arrays [16, L, hw]. With
 * L <= F the original hangs or does nothing; encore runs the single window
 * [0, L), which this reference does by starting with e = min(F, L). */
static void reference(int64_t n_samples, int clip, int ov, int64_t hw, int steps,
                      enum blend_scheme scheme, const float *init, float *final_out,
                      float *after_step /* [steps, 16, L, hw] or NULL */)
{
    int64_t total = n_samples / 640, L = (total - 1) / 4 + 1, fpb = (clip - 1) / 4 + 1;
    int64_t n_state = CH * L * hw;
    float *lat_all = malloc(sizeof(float) * (size_t)n_state);
    float *pred = malloc(sizeof(float) * (size_t)n_state);
    float *lat = malloc(sizeof(float) * (size_t)(CH * fpb * hw));
    float *out = malloc(sizeof(float) * (size_t)(3 * CH * fpb * hw));
    float sig[64], tim[64], W[64];
    sampler_schedule(steps, SAMPLER_TRAIN_STEPS, SAMPLER_SHIFT, sig, tim);
    blend_weights(scheme, ov, W);
    memcpy(lat_all, init, sizeof(float) * (size_t)n_state);
    for (int i = 0; i < steps; i++) {
        memset(pred, 0, sizeof(float) * (size_t)n_state);
        int64_t s = 0, e = fpb < L ? fpb : L, prev_end = e, k = 0;
        int last = e == L;
        while (e <= L) {
            int64_t f = e - s, n = CH * f * hw;
            for (int c = 0; c < CH; c++)
                for (int64_t j = 0; j < f; j++)
                    for (int64_t p = 0; p < hw; p++)
                        lat[(c * f + j) * hw + p] = lat_all[(c * L + s + j) * hw + p];
            struct plan_window w = {s, f, s * 2560, e == L ? n_samples : (s + f) * 2560};
            int64_t na;
            float *v = make_feat(k, &w, &na);
            int64_t hw2 = hw;
            fake_model(&hw2, k, lat, f, tim[i], v, na, out);
            free(v);
            for (int64_t q = 0; q < n; q++) {
                float u = out[q], d = out[n + q], c = out[2 * n + q];
                float g = u + 5.0f * (d - u);
                g = g + 3.0f * (c - d);
                float dt = sig[i + 1] - sig[i];
                float step = dt * g;
                lat[q] = lat[q] + step;
            }
            if (s != 0 && i != 0) {
                for (int c = 0; c < CH; c++)
                    for (int64_t j = 0; j < ov; j++)
                        for (int64_t p = 0; p < hw; p++) {
                            float *nw = &lat[(c * f + j) * hw + p];
                            float pv = pred[(c * L + prev_end - ov + j) * hw + p];
                            float a = *nw * W[j];
                            float b = pv * (1.0f - W[j]);
                            *nw = a + b;
                        }
            }
            for (int64_t q = 0; q < n; q++)
                lat[q] = bf16_round(lat[q]);
            for (int c = 0; c < CH; c++)
                for (int64_t j = 0; j < f; j++)
                    for (int64_t p = 0; p < hw; p++)
                        pred[(c * L + s + j) * hw + p] = lat[(c * f + j) * hw + p];
            k++;
            if (last)
                break;
            if (e != L) {
                prev_end = e;
                s += fpb - ov;
                if (s + fpb < L) {
                    e = s + fpb;
                } else {
                    e = L;
                    last = 1;
                }
            }
        }
        memcpy(lat_all, pred, sizeof(float) * (size_t)n_state);
        if (after_step)
            memcpy(after_step + (int64_t)i * n_state, lat_all, sizeof(float) * (size_t)n_state);
    }
    memcpy(final_out, lat_all, sizeof(float) * (size_t)n_state);
    free(lat_all);
    free(pred);
    free(lat);
    free(out);
}

struct progress_log {
    int n, in_order;
    int last_step;
    int64_t last_win, n_windows;
    float *after_step; /* [steps, n_state] */
    int64_t n_state;
};

static void on_progress(void *ctx, int step, int64_t window)
{
    struct progress_log *pl = ctx;
    int64_t want_step = pl->n / pl->n_windows, want_win = pl->n % pl->n_windows;
    if (step != want_step || window != want_win)
        pl->in_order = 0;
    pl->n++;
}

static void on_step(void *ctx, int step, const uint16_t *state)
{
    struct progress_log *pl = ctx;
    for (int64_t i = 0; i < pl->n_state; i++)
        pl->after_step[(int64_t)step * pl->n_state + i] = bf16_to_f32(state[i]);
}

static int failing_model(void *ctx, int64_t k, const float *x, int64_t f, float t,
                         const float *audio, int64_t n_audio, float *out3)
{
    int *calls = ctx;
    (void)k, (void)x, (void)f, (void)t, (void)audio, (void)n_audio, (void)out3;
    if (++*calls == 3)
        return log_error_rc(ENC_EDEVICE, "fake device fault");
    return fake_model(&(int64_t){4}, k, x, f, t, audio, n_audio, out3);
}

static void quiet(void *ctx, enum log_level level, const char *line)
{
    (void)ctx, (void)level, (void)line;
}

/* one configuration: loop vs reference, final and every step */
static int run_case(int64_t n_samples, int clip, int ov, int64_t h, int64_t w, int steps,
                    enum blend_scheme scheme, int use_cb, float **final_out)
{
    struct plan p;
    struct plan_params pp = {clip, ov};
    if (plan_make(&p, n_samples, &pp) != 0)
        return 0;
    int64_t L = p.latent_frames, hw = h * w, n_state = CH * L * hw;
    float *init = malloc(sizeof(float) * (size_t)n_state);
    longloop_init_latents(7, L, h, w, init);
    float *got = malloc(sizeof(float) * (size_t)n_state);
    float *want = malloc(sizeof(float) * (size_t)n_state);
    float *want_steps = malloc(sizeof(float) * (size_t)(steps * n_state));
    struct progress_log pl = {0, 1, 0, 0, p.n_windows, NULL, n_state};
    pl.after_step = malloc(sizeof(float) * (size_t)(steps * n_state));

    struct audio_log al = {0};
    float **feat = calloc((size_t)p.n_windows, sizeof(float *));
    int64_t *ntok = calloc((size_t)p.n_windows, sizeof(int64_t));
    for (int64_t k = 0; k < p.n_windows; k++)
        feat[k] = make_feat(k, &p.windows[k], &ntok[k]);
    struct longloop_audio au = {(const float *const *)feat, ntok, NULL, NULL};
    if (use_cb)
        au = (struct longloop_audio){NULL, NULL, audio_cb, &al};

    struct longloop_params lp = {&p, h, w, steps, 5.0f, 3.0f, scheme, on_progress, on_step, &pl};
    int rc = longloop_run(&lp, &au, fake_model, &hw, init, got);
    reference(n_samples, clip, ov, hw, steps, scheme, init, want, want_steps);

    int good = rc == 0 && memcmp(got, want, sizeof(float) * (size_t)n_state) == 0 &&
               memcmp(pl.after_step, want_steps, sizeof(float) * (size_t)(steps * n_state)) == 0 &&
               pl.n == steps * p.n_windows && pl.in_order;
    if (use_cb) {
        good &= al.calls == p.n_windows;
        for (int64_t k = 0; k < p.n_windows && k < 64; k++)
            good &= al.seen[k] == k;
    }
    if (!good) {
        int64_t nd = 0;
        for (int64_t i = 0; i < n_state; i++)
            nd += got[i] != want[i];
        diag("  rc %d, %lld of %lld final values differ, %d progress calls, %d audio calls", rc,
             (long long)nd, (long long)n_state, pl.n, al.calls);
    }
    if (final_out)
        *final_out = got;
    else
        free(got);
    for (int64_t k = 0; k < p.n_windows; k++)
        free(feat[k]);
    free(feat);
    free(ntok);
    free(pl.after_step);
    free(want_steps);
    free(want);
    free(init);
    plan_release(&p);
    return good;
}

/* wav2vec2-like token count of a slice: (samples - 400)/320 + 1 */
struct dit_audio {
    int64_t dim;
    int calls;
};

static int dit_audio_cb(void *ctx, int64_t k, const struct plan_window *w, float **feat, int64_t *n)
{
    struct dit_audio *da = ctx;
    da->calls++;
    *n = (w->audio_end - w->audio_begin - 400) / 320 + 1;
    *feat = malloc(sizeof(float) * (size_t)(*n * da->dim));
    noise_fill_normal(5, 1000 + (uint64_t)k, 0, *feat, (size_t)(*n * da->dim));
    return 0;
}

/* the loop with a tiny DiT on n threads: final latents (caller frees) */
static float *run_dit(const char *path, int threads, const struct plan *p, int64_t h, int64_t w,
                      int *audio_calls)
{
    struct backend *be = backend_open("cpu", threads);
    struct ckpt *ck = NULL;
    struct dit *d = NULL;
    float *out = NULL;
    if (!be || ckpt_open(path, &ck) != 0 || dit_load(be, &ck, 1, NULL, &d) != 0)
        goto done;
    const struct dit_config *c = dit_get_config(d);
    int64_t F = p->frames_per_window, L = p->latent_frames, hw = h * w;
    float *tneg = malloc(sizeof(float) * (size_t)(5 * c->text_dim));
    float *tpos = malloc(sizeof(float) * (size_t)(7 * c->text_dim));
    float *clip = malloc(sizeof(float) * (size_t)(257 * c->clip_dim));
    float *y = malloc(sizeof(float) * (size_t)(20 * F * hw));
    float *init = malloc(sizeof(float) * (size_t)(CH * L * hw));
    noise_fill_normal(1, 1, 0, tneg, (size_t)(5 * c->text_dim));
    noise_fill_normal(1, 2, 0, tpos, (size_t)(7 * c->text_dim));
    noise_fill_normal(1, 3, 0, clip, (size_t)(257 * c->clip_dim));
    noise_fill_normal(1, 4, 0, y, (size_t)(20 * F * hw));
    longloop_init_latents(11, L, h, w, init);
    struct dit_job_inputs in = {tneg, 5, tpos, 7, clip, 257, y, F, h, w, (int)(4 * (F - 1) + 1)};
    struct dit_audio da = {c->audio_dim, 0};
    struct longloop_audio au = {NULL, NULL, dit_audio_cb, &da};
    struct longloop_params lp = {p, h, w, 3, 5.0f, 3.0f, BLEND_SCHEME_LOG, NULL, NULL, NULL};
    out = malloc(sizeof(float) * (size_t)(CH * L * hw));
    if (longloop_run_dit(d, &in, &lp, &au, init, out) != 0) {
        free(out);
        out = NULL;
    }
    *audio_calls = da.calls;
    free(tneg);
    free(tpos);
    free(clip);
    free(y);
    free(init);
done:
    dit_destroy(&d);
    ckpt_close(&ck);
    backend_destroy(&be);
    return out;
}

/* the exactness invariant for the local loop: 1, 2 and 3 threads agree */
static void test_dit_threads(void)
{
    char dir[] = "/tmp/t_longloop_XXXXXX", path[256];
    if (!mkdtemp(dir)) {
        skip(3, "no temp dir");
        return;
    }
    snprintf(path, sizeof(path), "%s/tiny.safetensors", dir);
    struct dit_tiny_dims dims = {.dim = 32,
                                 .num_heads = 2,
                                 .num_layers = 2,
                                 .ffn_dim = 48,
                                 .text_dim = 16,
                                 .clip_dim = 24,
                                 .audio_dim = 40,
                                 .vocal_ffn_dim = 48};
    struct plan p;
    struct plan_params pp = {17, 3};
    if (dit_write_tiny(path, 3, &dims) != 0 || plan_make(&p, 29563, &pp) != 0) {
        skip(3, "no tiny DiT");
        rmdir(dir);
        return;
    }
    int calls1 = 0, calls2 = 0, calls3 = 0;
    float *a = run_dit(path, 1, &p, 4, 6, &calls1);
    float *b = run_dit(path, 2, &p, 4, 6, &calls2);
    float *c = run_dit(path, 3, &p, 4, 6, &calls3);
    size_t bytes = sizeof(float) * (size_t)(CH * p.latent_frames * 24);
    ok(a && b && c, "the loop runs a tiny DiT on 1, 2 and 3 threads");
    ok(a && b && c && memcmp(a, b, bytes) == 0 && memcmp(a, c, bytes) == 0,
       "1, 2 and 3 threads give the same final bytes");
    ok(calls1 == p.n_windows && calls2 == p.n_windows,
       "audio features computed once per window (%d calls, %lld windows, 3 steps)", calls1,
       (long long)p.n_windows);
    free(a);
    free(b);
    free(c);
    plan_release(&p);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    log_set_level(LOG_LEVEL_ERROR);
    /* the fixture's shape: 29563 samples, C 17 (F 5), O 3, 4 steps, 6x8 */
    ok(run_case(29563, 17, 3, 6, 8, 4, BLEND_SCHEME_UNIFORM, 0, NULL),
       "fixture shape, uniform: equals the reference (final and every step)");
    ok(run_case(29563, 17, 3, 6, 8, 4, BLEND_SCHEME_LOG, 1, NULL),
       "fixture shape, log, audio by callback: equals the reference");

    /* many lengths, overlaps, schemes, step counts */
    int all = 1, cases = 0;
    const int64_t lengths[] = {640,   5000,  10240, 12800, 15000, 20000,
                               25600, 29563, 33000, 40000, 47000, 61440};
    for (size_t li = 0; li < sizeof(lengths) / sizeof(lengths[0]); li++) {
        for (int ov = 0; ov < 5; ov++) {
            for (int s = 0; s < 2; s++) {
                int steps = 1 + (int)((li + (size_t)ov + (size_t)s) % 3);
                int good = run_case(lengths[li], 17, ov, 2, 3, steps, (enum blend_scheme)s,
                                    (int)(li & 1), NULL);
                if (!good)
                    diag("  failed: %lld samples, O %d, %s, %d steps", (long long)lengths[li], ov,
                         blend_scheme_name((enum blend_scheme)s), steps);
                all &= good;
                cases++;
            }
        }
    }
    ok(all, "%d (length, overlap, scheme, steps) cases equal the reference", cases);
    ok(run_case(100000, 33, 8, 2, 2, 3, BLEND_SCHEME_LOG, 0, NULL),
       "C 33, O 8 (> F/2), log: equals the reference");

    /* the blend matters: uniform and log differ once O >= 3 and steps >= 2 */
    float *a = NULL, *b = NULL;
    run_case(29563, 17, 3, 6, 8, 4, BLEND_SCHEME_UNIFORM, 0, &a);
    run_case(29563, 17, 3, 6, 8, 4, BLEND_SCHEME_LOG, 0, &b);
    ok(memcmp(a, b, sizeof(float) * 16 * 12 * 48) != 0, "uniform and log results differ");
    int bf = 1;
    for (int64_t i = 0; i < 16 * 12 * 48; i++)
        bf &= a[i] == bf16_round(a[i]) && isfinite(a[i]);
    ok(bf, "final latents are finite bf16 values");
    free(a);
    free(b);

    /* initial latents: frame f of channel c is noise_latent_frame(seed, f)[c] */
    {
        int64_t L = 7, h = 3, w = 5, hw = 15;
        float *lat = malloc(sizeof(float) * (size_t)(CH * L * hw));
        float frame[CH * 15];
        longloop_init_latents(99, L, h, w, lat);
        int same = 1;
        for (int64_t f = 0; f < L; f++) {
            noise_latent_frame(99, f, h, w, frame);
            for (int c = 0; c < CH; c++)
                same &= memcmp(lat + (c * L + f) * hw, frame + c * hw, sizeof(float) * 15) == 0;
        }
        ok(same, "longloop_init_latents lays noise frames out as [16, L, h, w]");
        free(lat);
    }

    /* errors: the model's error stops the loop; bad parameters */
    log_set_sink(quiet, NULL);
    struct plan p;
    struct plan_params pp = {17, 3};
    plan_make(&p, 29563, &pp);
    int64_t n_state = 16 * p.latent_frames * 4;
    float *init = calloc((size_t)n_state, sizeof(float));
    float *out = calloc((size_t)n_state, sizeof(float));
    struct audio_log al = {0};
    struct longloop_audio au = {NULL, NULL, audio_cb, &al};
    struct longloop_params lp = {&p, 2, 2, 2, 5.0f, 3.0f, BLEND_SCHEME_LOG, NULL, NULL, NULL};
    int calls = 0;
    is_int(longloop_run(&lp, &au, failing_model, &calls, init, out), ENC_EDEVICE,
           "a model error stops the loop with its code");
    is_int(calls, 3, "no forward after the failing one");
    lp.steps = 0;
    is_int(longloop_run(&lp, &au, fake_model, &(int64_t){4}, init, out), ENC_EINVAL,
           "0 steps is an error");
    lp.steps = 1;
    struct longloop_audio none = {NULL, NULL, NULL, NULL};
    is_int(longloop_run(&lp, &none, fake_model, &(int64_t){4}, init, out), ENC_EINVAL,
           "no audio source is an error");
    int64_t zero_tok[8] = {0};
    const float *no_feat[8] = {NULL};
    struct longloop_audio empty = {no_feat, zero_tok, NULL, NULL};
    is_int(longloop_run(&lp, &empty, fake_model, &(int64_t){4}, init, out), ENC_EINVAL,
           "a window without audio features is an error");
    /* out may alias init */
    float *init2 = malloc(sizeof(float) * (size_t)n_state);
    for (int64_t i = 0; i < n_state; i++)
        init[i] = init2[i] = bf16_round((float)sin((double)i));
    is_int(longloop_run(&lp, &au, fake_model, &(int64_t){4}, init, out), 0, "runs");
    is_int(longloop_run(&lp, &au, fake_model, &(int64_t){4}, init2, init2), 0, "runs in place");
    ok(memcmp(out, init2, sizeof(float) * (size_t)n_state) == 0, "in place gives the same bytes");
    log_set_sink(NULL, NULL);
    test_dit_threads();
    free(init);
    free(init2);
    free(out);
    plan_release(&p);
    return done_testing();
}
