/*
 * cmd_watch.c - `encore watch JOB`: live progress until the job is over.
 *
 * The wavefront picture maps windows onto at most 60 columns; each column
 * shows how far its windows are, from ' ' (not started) through 1-9 to '#'
 * (all steps done).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/client.h"
#include "common/parse.h"
#include "commands.h"

static const char usage[] = "usage: encore [--coordinator EP] watch JOB\n";

static double wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void picture(const struct wire_job_info *j, char *out, int cols)
{
    int n = j->n_window_steps;
    if (n < cols)
        cols = n;
    for (int c = 0; c < cols; c++) {
        int a = (int)((int64_t)c * n / cols), b = (int)((int64_t)(c + 1) * n / cols);
        int64_t sum = 0;
        for (int k = a; k < b; k++)
            sum += j->window_steps[k];
        double frac = (double)sum / ((double)(b - a) * (j->steps > 0 ? j->steps : 1));
        out[c] = frac >= 1.0 ? '#' : frac <= 0.0 ? '.' : (char)('0' + (int)(frac * 10));
    }
    out[cols] = 0;
}

int client_watch(void *zctx, const char *ep, uint64_t id, int quiet)
{
    double t0 = wall();
    int64_t done0 = -1;
    int tty = isatty(2);
    double last_print = -1e9;
    for (;;) {
        struct wire_msg req, rep;
        wire_msg_init(&req, WIRE_STATUS);
        req.u.status.job_id = id;
        req.u.status.wavefront = 1;
        if (client_call(zctx, ep, "watch", &req, &rep, 10000))
            return EXIT_STATUS_FAILURE;
        const struct wire_job_info *j = &rep.u.status_reply.jobs[0];
        double now = wall();
        if (done0 < 0)
            done0 = j->tasks_done;
        double rate = now > t0 + 0.2 ? (double)(j->tasks_done - done0) / (now - t0) : 0;
        double eta = rate > 0 ? (double)(j->tasks_total - j->tasks_done) / rate : -1;
        char pic[64];
        picture(j, pic, 60);
        int over = strcmp(j->state, "queued") != 0 && strcmp(j->state, "running") != 0;
        if (!quiet && (tty || over || now - last_print >= 2.0)) {
            last_print = now;
            int64_t steps_done = 0;
            for (int k = 0; k < j->n_window_steps; k++)
                steps_done += j->window_steps[k];
            fprintf(stderr,
                    "%sjob %llu %-9s steps %5.1f/%d windows %lld/%lld tasks %lld/%lld %.0f/s "
                    "ETA %s%.0fs [%s]%s",
                    tty ? "\r" : "", (unsigned long long)j->id, j->state,
                    j->n_window_steps ? (double)steps_done / j->n_window_steps : 0.0, j->steps,
                    (long long)j->windows_done, (long long)j->n_windows,
                    (long long)j->tasks_done, (long long)j->tasks_total, rate,
                    eta < 0 ? "?" : "", eta < 0 ? 0.0 : eta, pic, tty && !over ? "" : "\n");
        }
        int rc = strcmp(j->state, "done") == 0 ? 0 : EXIT_STATUS_FAILURE;
        if (over && rc && j->error[0])
            fprintf(stderr, "encore: job %llu %s: %s\n", (unsigned long long)j->id, j->state,
                    j->error);
        wire_msg_release(&rep);
        if (over)
            return rc;
        usleep(200000);
    }
}

int cmd_watch(const struct global_opts *g, int argc, char **argv)
{
    int64_t id;
    if (argc > 1 && cli_is_help(argv[1])) {
        fputs(usage, stdout);
        return EXIT_STATUS_OK;
    }
    if (argc != 2 || parse_i64(argv[1], 1, INT64_MAX, &id))
        return cli_usage_error(usage, "give one job id");
    return client_watch(NULL, g->coordinator, (uint64_t)id, 0);
}
