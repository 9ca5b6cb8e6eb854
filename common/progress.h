/*
 * progress.h - one live progress line per stage on stderr, with rate and ETA.
 *
 *   render: denoise [########----------]  45%  18/40 steps  1.3/s  ETA 0:17
 *
 * On a terminal the line is redrawn in place (at most 10 times a second);
 * otherwise one line is printed at every 10% so logs stay short. Quiet mode
 * prints nothing. The ETA is the remaining units at the mean rate so far.
 */
#ifndef ENCORE_PROGRESS_H
#define ENCORE_PROGRESS_H

#include <stdint.h>

struct progress {
    const char *stage; /* borrowed */
    const char *unit;  /* "steps", "frames", ... (borrowed) */
    int64_t total, done;
    double t_start, t_last_draw;
    int last_decile;
    int tty, quiet;
};

/* progress_begin() starts a stage of total units. */
void progress_begin(struct progress *p, const char *stage, const char *unit, int64_t total,
                    int quiet);
/* progress_update() records done units and redraws when due. */
void progress_update(struct progress *p, int64_t done);
/* progress_end() draws the final line with the elapsed time. */
void progress_end(struct progress *p);
/* progress_now() is a monotonic clock in seconds. */
double progress_now(void);
/* progress_format_eta() writes "1:02:03" / "2:03" for s seconds ("?" if < 0). */
void progress_format_eta(double s, char *buf, int n);

#endif
