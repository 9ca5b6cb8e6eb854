/*
 * plan.c - the window plan (DESIGN 2, SPEC 1.2, 2.2-2.4).
 *
 * Windows start at 0, stride, 2*stride, ... with stride = F - O. A window
 * whose start + F >= L ends at L and is the last; every other window has F
 * frames. For L > F this is exactly the original loop's sequence (SPEC 2.2
 * step h); for L <= F, where the original hangs (L == F) or produces nothing
 * (L < F), it gives the single window [0, L).
 *
 * Invariants of a made plan: windows[0].start == 0; starts strictly
 * increase by stride; only the last window may be shorter than F and it ends
 * at L; consecutive windows share exactly O frames, except that the last one
 * shares O frames with its predecessor too (the predecessor ended before L,
 * so the last window is longer than O); audio slices start at start*2560 and
 * the last runs to n_samples.
 */
#include "common/plan.h"

#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/xmalloc.h"

#define SAMPLES_PER_LATENT (4 * PLAN_SAMPLES_PER_FRAME)

int plan_make(struct plan *p, int64_t n_samples, const struct plan_params *pp)
{
    memset(p, 0, sizeof(*p));
    if (pp->clip_frames < 5 || (pp->clip_frames - 1) % 4 != 0)
        return log_error_rc(ENC_EINVAL, "'clip_frames' %d is not 4k+1 with k >= 1",
                            pp->clip_frames);
    int F = (pp->clip_frames - 1) / 4 + 1;
    if (pp->overlap < 0 || pp->overlap >= F)
        return log_error_rc(ENC_EINVAL, "'overlap' %d is not in [0, %d) latent frames", pp->overlap,
                            F);
    if (n_samples < PLAN_SAMPLES_PER_FRAME)
        return log_error_rc(ENC_EINVAL,
                            "'audio' of %lld samples holds no whole video frame (needs %d)",
                            (long long)n_samples, PLAN_SAMPLES_PER_FRAME);

    int64_t T = n_samples / PLAN_SAMPLES_PER_FRAME;
    int64_t L = (T - 1) / 4 + 1;
    int64_t stride = F - pp->overlap;
    /* windows: 1 if L <= F, else 1 + ceil((L - F)/stride) */
    int64_t n = L <= F ? 1 : 1 + (L - F + stride - 1) / stride;

    p->n_samples = n_samples;
    p->video_frames = T;
    p->latent_frames = L;
    p->out_frames = 4 * (L - 1) + 1;
    p->frames_per_window = F;
    p->overlap = pp->overlap;
    p->n_windows = n;
    p->windows = xcalloc((size_t)n, sizeof(*p->windows));

    int64_t k = 0;
    for (int64_t s = 0;; s += stride, k++) {
        struct plan_window *w = &p->windows[k];
        int last = s + F >= L;
        w->start = s;
        w->len = last ? L - s : F;
        w->audio_begin = s * SAMPLES_PER_LATENT;
        w->audio_end = last ? n_samples : (s + F) * SAMPLES_PER_LATENT;
        if (last)
            break;
    }
    if (k + 1 != n) { /* the closed form and the walk must agree */
        plan_release(p);
        return log_error_rc(ENC_EINVAL, "plan: window count %lld != %lld (bug)", (long long)(k + 1),
                            (long long)n);
    }
    return 0;
}

void plan_release(struct plan *p)
{
    if (!p)
        return;
    free(p->windows);
    memset(p, 0, sizeof(*p));
}

int64_t plan_first_window_of(const struct plan *p, int64_t f)
{
    if (f < 0 || f >= p->latent_frames)
        return -1;
    /* smallest k with start_k + len_k > f (window ends increase with k) */
    int64_t lo = 0, hi = p->n_windows - 1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        const struct plan_window *w = &p->windows[mid];
        if (w->start + w->len > f)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

int64_t plan_last_window_of(const struct plan *p, int64_t f)
{
    if (f < 0 || f >= p->latent_frames)
        return -1;
    /* largest k with start_k <= f */
    int64_t lo = 0, hi = p->n_windows - 1;
    while (lo < hi) {
        int64_t mid = hi - (hi - lo) / 2;
        if (p->windows[mid].start <= f)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

int plan_windows_overlap(const struct plan *p, int64_t a, int64_t b)
{
    if (a < 0 || b < 0 || a >= p->n_windows || b >= p->n_windows)
        return 0;
    const struct plan_window *x = &p->windows[a], *y = &p->windows[b];
    return x->start < y->start + y->len && y->start < x->start + x->len;
}
