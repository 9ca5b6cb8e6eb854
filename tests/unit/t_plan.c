/* t_plan.c - the window plan against a transliteration of the original loop
 * (SPEC 2.2 step h), the loop fixture's window table, and bad inputs. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/plan.h"
#include "tests/tap.h"
#include "tests/unit/st_mini.h"

struct ref_win {
    int64_t s, e, a0, a1;
};

/* The original pipeline's index walk for one step (L > F only: it hangs at
 * L == F and runs nothing for L < F). Returns the number of windows. */
static int64_t ref_windows(int64_t n_samples, int clip, int ov, struct ref_win *out, int64_t cap)
{
    int64_t total = n_samples / 640;
    int64_t L = (total - 1) / 4 + 1;
    int64_t fpb = (clip - 1) / 4 + 1;
    int64_t s = 0, e = fpb, n = 0;
    int last = 0;
    while (e <= L) {
        if (n >= cap)
            return -1;
        out[n].s = s;
        out[n].e = e;
        out[n].a0 = s * 4 * 640;
        out[n].a1 = e == L ? n_samples : s * 4 * 640 + (e - s) * 4 * 640;
        n++;
        if (last)
            break;
        if (e != L) {
            s += fpb - ov;
            if (s + fpb < L) {
                e = s + fpb;
            } else {
                e = L;
                last = 1;
            }
        } else {
            return -2; /* the original would loop forever */
        }
    }
    return n;
}

static void quiet(void *ctx, enum log_level level, const char *line)
{
    (void)ctx;
    (void)level;
    (void)line;
}

/* the plan's invariants (plan.c's header) */
static int plan_ok(const struct plan *p)
{
    int64_t F = p->frames_per_window, O = p->overlap, L = p->latent_frames;
    if (p->n_windows < 1 || p->windows[0].start != 0)
        return 0;
    for (int64_t k = 0; k < p->n_windows; k++) {
        const struct plan_window *w = &p->windows[k];
        int last = k == p->n_windows - 1;
        if (w->len < 1 || w->len > F || (!last && w->len != F))
            return 0;
        if (last && w->start + w->len != L)
            return 0;
        if (w->audio_begin != w->start * 2560)
            return 0;
        if (w->audio_end != (last ? p->n_samples : (w->start + w->len) * 2560))
            return 0;
        if (w->audio_end > p->n_samples || w->audio_begin >= w->audio_end)
            return 0;
        if (k > 0) {
            const struct plan_window *v = &p->windows[k - 1];
            if (w->start != v->start + F - O || v->start + v->len - w->start != O)
                return 0;
            if (w->len <= O)
                return 0;
        }
    }
    /* first/last window of every frame, checked by a scan */
    for (int64_t f = 0; f < L; f++) {
        int64_t first = -1, lastw = -1;
        for (int64_t k = 0; k < p->n_windows; k++) {
            const struct plan_window *w = &p->windows[k];
            if (w->start <= f && f < w->start + w->len) {
                if (first < 0)
                    first = k;
                lastw = k;
            }
        }
        if (first < 0 || plan_first_window_of(p, f) != first || plan_last_window_of(p, f) != lastw)
            return 0;
    }
    return plan_first_window_of(p, -1) == -1 && plan_first_window_of(p, L) == -1 &&
           plan_last_window_of(p, L) == -1;
}

int main(void)
{
    struct plan p;
    struct plan_params pp = {81, 5};
    enum { CAP = 4096 };
    struct ref_win *ref = malloc(sizeof(*ref) * CAP);

    /* SPEC 2.2's worked numbers, C = 81, O = 5 */
    is_int(plan_make(&p, 80000, &pp), 0, "5 s of audio plans");
    ok(p.video_frames == 125 && p.latent_frames == 32 && p.n_windows == 2 &&
           p.windows[1].start == 16 && p.windows[1].len == 16 && p.out_frames == 125,
       "5 s: T 125, L 32, windows [0,21) [16,32)");
    plan_release(&p);
    is_int(plan_make(&p, 60 * 16000, &pp), 0, "60 s plans");
    ok(p.latent_frames == 375 && p.n_windows == 24, "60 s: L 375, 24 windows (got %lld, %lld)",
       (long long)p.latent_frames, (long long)p.n_windows);
    ok(p.windows[0].audio_end == 53760, "a full window's audio slice is 53760 samples");
    ok(plan_ok(&p), "60 s plan invariants");
    plan_release(&p);
    is_int(plan_make(&p, 300 * 16000, &pp), 0, "5 min plans");
    ok(p.latent_frames == 1875 && p.n_windows == 117, "5 min: L 1875, 117 windows");
    plan_release(&p);

    /* every length against the original for L > F; own rule for L <= F */
    int agree = 1, inv = 1, shortok = 1;
    int64_t cases = 0;
    const int clips[] = {5, 9, 17, 81};
    for (size_t ci = 0; ci < sizeof(clips) / sizeof(clips[0]); ci++) {
        int C = clips[ci], F = (C - 1) / 4 + 1;
        for (int O = 0; O < F; O++) {
            int64_t max_ns = (int64_t)2560 * (F * 6 + 3) + 2000;
            int64_t step = C == 81 ? 101 : 37;
            for (int64_t ns = 640; ns < max_ns; ns += step) {
                struct plan_params q = {C, O};
                if (plan_make(&p, ns, &q) != 0) {
                    agree = 0;
                    continue;
                }
                cases++;
                if (!plan_ok(&p)) {
                    if (inv)
                        diag("  invariants fail: C %d O %d samples %lld", C, O, (long long)ns);
                    inv = 0;
                }
                if (p.latent_frames > F) {
                    int64_t n = ref_windows(ns, C, O, ref, CAP);
                    int same = n == p.n_windows;
                    for (int64_t k = 0; same && k < n; k++) {
                        const struct plan_window *w = &p.windows[k];
                        same = ref[k].s == w->start && ref[k].e == w->start + w->len &&
                               ref[k].a0 == w->audio_begin && ref[k].a1 == w->audio_end;
                    }
                    if (!same && agree)
                        diag("  differs from the original: C %d O %d samples %lld", C, O,
                             (long long)ns);
                    agree &= same;
                } else {
                    /* original: nothing (L < F) or a hang (L == F); here one window */
                    int64_t n = ref_windows(ns, C, O, ref, CAP);
                    shortok &= (p.latent_frames < F ? n == 0 : n == -2) && p.n_windows == 1 &&
                               p.windows[0].start == 0 && p.windows[0].len == p.latent_frames &&
                               p.windows[0].audio_begin == 0 && p.windows[0].audio_end == ns;
                }
                plan_release(&p);
            }
        }
    }
    ok(agree, "windows and audio slices equal the original loop's for L > F");
    ok(inv, "plan invariants hold for every length and overlap");
    ok(shortok, "L < F and L == F give the single window [0, L) with all the audio");
    diag("%lld (clip, overlap, length) cases", (long long)cases);

    /* special lengths with C = 81: L = 21 exactly is T in [81, 84] */
    is_int(plan_make(&p, 51840, &pp), 0, "L == F (51840 samples) plans");
    ok(p.latent_frames == 21 && p.n_windows == 1 && p.windows[0].len == 21 &&
           p.windows[0].audio_end == 51840,
       "L == F: one full window");
    plan_release(&p);
    is_int(plan_make(&p, 54399, &pp), 0, "54399 samples plans");
    ok(p.latent_frames == 21 && p.n_windows == 1 && p.windows[0].audio_end == 54399,
       "54399 samples: still L 21, one window with all the audio");
    plan_release(&p);
    is_int(plan_make(&p, 54400, &pp), 0, "54400 samples plans");
    ok(p.latent_frames == 22 && p.n_windows == 2 && p.windows[1].start == 16 &&
           p.windows[1].len == 6,
       "54400 samples: L 22, windows [0,21) [16,22)");
    plan_release(&p);
    is_int(plan_make(&p, 640, &pp), 0, "one video frame plans");
    ok(p.latent_frames == 1 && p.out_frames == 1 && p.n_windows == 1 && p.windows[0].len == 1,
       "one video frame: one latent, one window");
    plan_release(&p);
    is_int(plan_make(&p, 3000, &pp), 0, "3000 samples plans");
    ok(p.video_frames == 4 && p.latent_frames == 1 && p.out_frames == 1,
       "3000 samples: 4 frames -> 1 latent -> 1 output frame");
    plan_release(&p);

    /* overlap 0 (disjoint) and F-1 (stride 1) */
    struct plan_params q0 = {81, 0}, q20 = {81, 20};
    is_int(plan_make(&p, 60 * 16000, &q0), 0, "overlap 0 plans");
    ok(p.n_windows == 18 && p.windows[1].start == 21 && !plan_windows_overlap(&p, 0, 1),
       "overlap 0: stride 21, 18 windows, no shared frame");
    plan_release(&p);
    is_int(plan_make(&p, 60 * 16000, &q20), 0, "overlap 20 plans");
    ok(p.n_windows == 355 && p.windows[1].start == 1 && plan_windows_overlap(&p, 0, 20) &&
           !plan_windows_overlap(&p, 0, 21) && plan_windows_overlap(&p, 354, 353),
       "overlap 20: stride 1, 355 windows, window 0 meets 1..20");
    ok(!plan_windows_overlap(&p, -1, 0) && !plan_windows_overlap(&p, 0, 355),
       "plan_windows_overlap of a missing window is 0");
    plan_release(&p);

    /* the loop fixture's window table (its sizes read from the file) */
    struct st_mini st;
    if (st_mini_open(&st, FIXTURE_DIR "/sliding_window_loop.safetensors") == 0) {
        struct st_mini_tensor ta, tl, tb, tw, ty;
        float *audio = st_mini_f32(&st, "audio", &ta);
        int64_t *lb = st_mini_i64(&st, "window.latent_bounds", &tl);
        int64_t *ab = st_mini_i64(&st, "window.audio_bounds", &tb);
        float *w = st_mini_f32(&st, "uniform.overlap_weights", &tw);
        float *y = st_mini_f32(&st, "y", &ty);
        ok(audio && lb && ab && w && y, "loop fixture tables present");
        if (audio && lb && ab && w && y) {
            int F = (int)ty.shape[2];
            struct plan_params qf = {4 * (F - 1) + 1, (int)tw.numel};
            is_int(plan_make(&p, ta.numel, &qf), 0, "fixture plan: %lld samples, C %d, O %d",
                   (long long)ta.numel, qf.clip_frames, qf.overlap);
            int same = p.n_windows == tl.shape[0];
            for (int64_t k = 0; same && k < p.n_windows; k++) {
                const struct plan_window *pw = &p.windows[k];
                same = lb[2 * k] == pw->start && lb[2 * k + 1] == pw->start + pw->len &&
                       ab[2 * k] == pw->audio_begin && ab[2 * k + 1] == pw->audio_end;
            }
            ok(same, "fixture windows (latent and audio bounds) equal the plan's %lld",
               (long long)p.n_windows);
            plan_release(&p);
        }
        free(audio);
        free(lb);
        free(ab);
        free(w);
        free(y);
        st_mini_close(&st);
    } else {
        skip(3, "loop fixture not found");
    }

    /* bad inputs: errors, never a crash */
    log_set_sink(quiet, NULL);
    struct plan_params bad;
    is_int(plan_make(&p, 0, &pp), ENC_EINVAL, "0 samples is an error");
    is_int(plan_make(&p, 639, &pp), ENC_EINVAL, "639 samples (< 1 frame) is an error");
    is_int(plan_make(&p, -5, &pp), ENC_EINVAL, "negative samples is an error");
    bad = (struct plan_params){80, 5};
    is_int(plan_make(&p, 80000, &bad), ENC_EINVAL, "clip_frames 80 is an error");
    bad = (struct plan_params){1, 0};
    is_int(plan_make(&p, 80000, &bad), ENC_EINVAL, "clip_frames 1 is an error");
    bad = (struct plan_params){0, 0};
    is_int(plan_make(&p, 80000, &bad), ENC_EINVAL, "clip_frames 0 is an error");
    bad = (struct plan_params){-3, 0};
    is_int(plan_make(&p, 80000, &bad), ENC_EINVAL, "clip_frames -3 is an error");
    bad = (struct plan_params){81, 21};
    is_int(plan_make(&p, 80000, &bad), ENC_EINVAL, "overlap == F is an error");
    bad = (struct plan_params){81, -1};
    is_int(plan_make(&p, 80000, &bad), ENC_EINVAL, "negative overlap is an error");
    ok(p.windows == NULL && p.n_windows == 0, "a failed plan holds nothing");
    plan_release(&p);
    plan_release(NULL);
    log_set_sink(NULL, NULL);
    free(ref);
    return done_testing();
}
