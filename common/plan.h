/*
 * plan.h - the window plan: which latent frames and audio samples each
 * sliding window covers (DESIGN 2, SPEC 1.2, 2.2-2.4).
 *
 * A pure function of the audio length and the parameters, shared by the
 * coordinator, the workers and `encore render --local`, so every process
 * agrees on it. Unlike the original it never hangs or produces nothing:
 * audio shorter than one window gives one short window; L == F gives one
 * full window.
 */
#ifndef ENCORE_PLAN_H
#define ENCORE_PLAN_H

#include <stdint.h>

#define PLAN_SAMPLE_RATE 16000
#define PLAN_FPS 25
#define PLAN_SAMPLES_PER_FRAME 640 /* 16000 / 25 */

struct plan_params {
    int clip_frames; /* C, video frames per window (81); F = (C-1)/4 + 1 */
    int overlap;     /* O, latent frames shared by consecutive windows, 0 <= O < F */
};

struct plan_window {
    int64_t start;       /* first latent frame */
    int64_t len;         /* latent frames, <= F; only the last may be shorter */
    int64_t audio_begin; /* first audio sample, start*4*640 */
    int64_t audio_end;   /* one past the last; the last window runs to the end */
};

struct plan {
    int64_t n_samples;     /* audio samples at 16 kHz */
    int64_t video_frames;  /* floor(n_samples / 640) */
    int64_t latent_frames; /* L = (video_frames - 1)/4 + 1 */
    int64_t out_frames;    /* 4(L-1)+1 frames in the output video */
    int frames_per_window; /* F */
    int overlap;           /* O */
    int64_t n_windows;
    struct plan_window *windows; /* n_windows entries, in start order */
};

/*
 * plan_make() fills p for n_samples of audio. Returns 0, or ENC_EINVAL (with
 * a logged reason) when the audio holds no whole video frame, clip_frames is
 * not 4k+1 with k >= 1, or the overlap is not in [0, F). Free with
 * plan_release().
 */
int plan_make(struct plan *p, int64_t n_samples, const struct plan_params *pp);
void plan_release(struct plan *p);

/* plan_first_window_of(): the index of the first window containing latent
 * frame f; -1 when f is outside [0, L). */
int64_t plan_first_window_of(const struct plan *p, int64_t f);
/* plan_last_window_of(): the index of the last window containing frame f;
 * state[s][f] is that window's blended value; -1 outside [0, L). */
int64_t plan_last_window_of(const struct plan *p, int64_t f);
/* plan_windows_overlap(): whether windows a and b share any latent frame. */
int plan_windows_overlap(const struct plan *p, int64_t a, int64_t b);

#endif
