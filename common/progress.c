/* progress.c - live progress lines (see progress.h). */
#include "progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

double progress_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void progress_format_eta(double s, char *buf, int n)
{
    if (s < 0 || s > 1e8) {
        snprintf(buf, (size_t)n, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, (size_t)n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, (size_t)n, "%ld:%02ld", t / 60, t % 60);
}

static void draw(struct progress *p, int final)
{
    char bar[21], eta[32];
    double now = progress_now(), el = now - p->t_start;
    double frac = p->total > 0 ? (double)p->done / (double)p->total : 1.0;
    int fill = (int)(frac * 20);
    for (int i = 0; i < 20; i++)
        bar[i] = i < fill ? '#' : '-';
    bar[20] = 0;
    double rate = el > 0 ? (double)p->done / el : 0;
    if (final)
        progress_format_eta(el, eta, sizeof eta);
    else
        progress_format_eta(rate > 0 ? (double)(p->total - p->done) / rate : -1, eta,
                            sizeof eta);
    fprintf(stderr, "%s%-8s [%s] %3d%%  %lld/%lld %s  %.2f/s  %s %s%s", p->tty ? "\r" : "",
            p->stage, bar, (int)(frac * 100), (long long)p->done, (long long)p->total,
            p->unit, rate, final ? "took" : "ETA", eta, p->tty && !final ? "\033[K" : "\n");
    fflush(stderr);
    p->t_last_draw = now;
}

void progress_begin(struct progress *p, const char *stage, const char *unit, int64_t total,
                    int quiet)
{
    p->stage = stage;
    p->unit = unit;
    p->total = total;
    p->done = 0;
    p->t_start = progress_now();
    p->t_last_draw = 0;
    p->last_decile = -1;
    p->quiet = quiet;
    p->tty = isatty(2);
    if (!quiet && p->tty)
        draw(p, 0);
}

void progress_update(struct progress *p, int64_t done)
{
    p->done = done;
    if (p->quiet)
        return;
    if (p->tty) {
        if (progress_now() - p->t_last_draw >= 0.1)
            draw(p, 0);
        return;
    }
    int decile = p->total > 0 ? (int)(10 * done / p->total) : 10;
    if (decile != p->last_decile && done < p->total) {
        p->last_decile = decile;
        draw(p, 0);
    }
}

void progress_end(struct progress *p)
{
    p->done = p->total;
    if (!p->quiet)
        draw(p, 1);
}
