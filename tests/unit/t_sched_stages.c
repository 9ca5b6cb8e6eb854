/* t_sched_stages.c - prepare and decode tasks in the scheduler: windows
 * wait for prepare; a decode segment is handed out only once every window
 * covering its latents and warm-up is final, and before the job's last
 * window is (decode early); requeues and stale results of these tasks; the
 * job waits for its chunks (outputs_ready) and ends with sched_job_end(). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/latent_file.h"
#include "common/plan.h"
#include "common/xmalloc.h"
#include "coordinator/scheduler.h"
#include "tests/tap.h"

static int covered_done(const struct sched_job *j, int64_t lo, int64_t hi)
{
    for (int64_t k = 0; k < j->n_windows; k++)
        if (j->win[k].start < hi && j->win[k].start + j->win[k].len > lo &&
            j->win[k].state != SCHED_WIN_DONE)
            return 0;
    return 1;
}

int main(void)
{
    char dir[] = "/tmp/t_sched_stages.XXXXXX", path[256];
    struct wire_job_params p;
    struct plan pl;
    plan(12);
    if (!mkdtemp(dir))
        return 1;
    memset(&p, 0, sizeof p);
    snprintf(p.model, sizeof p.model, "tiny");
    snprintf(p.blend, sizeof p.blend, "log");
    p.clip_frames = 33;
    p.overlap = 3;
    p.steps = 2;
    p.width = p.height = 16;
    p.n_samples = 397 * 640; /* L = 100 */
    struct plan_params pp = {.clip_frames = 33, .overlap = 3};
    plan_make(&pl, p.n_samples, &pp);
    struct store_job row;
    memset(&row, 0, sizeof row);
    row.id = 1;
    snprintf(row.state, sizeof row.state, "queued");
    row.params = p;
    row.n_windows = pl.n_windows;
    row.latent_frames = pl.latent_frames;
    struct store_window *w = xcalloc((size_t)pl.n_windows, sizeof *w);
    int64_t *st = xcalloc((size_t)pl.n_windows, sizeof *st), *ln = xcalloc((size_t)pl.n_windows, 8);
    for (int64_t k = 0; k < pl.n_windows; k++) {
        w[k] = (struct store_window){.k = k,
                                     .start = pl.windows[k].start,
                                     .len = pl.windows[k].len,
                                     .received_step = -1,
                                     .final_step = -1};
        st[k] = w[k].start;
        ln[k] = w[k].len;
    }
    struct latent_geometry g = {.n_windows = pl.n_windows,
                                .start = st,
                                .len = ln,
                                .latent_frames = pl.latent_frames,
                                .overlap = 3,
                                .h = 2,
                                .w = 2};
    struct latent_file *lf;
    struct sched_job *j;
    struct sched *s = sched_new(NULL, NULL);
    snprintf(path, sizeof path, "%s/job.lat", dir);
    struct sched_stages stages = {.prepare = 1, .seg_len = 16, .warmup = 38};
    ok(latent_file_open(path, &g, 1, &lf) == 0 &&
           sched_add_job_staged(s, &row, w, &lf, &stages, &j) == 0,
       "a job of %lld windows with prepare and decode", (long long)pl.n_windows);
    is_int(j->n_segs, 7, "100 latents make 7 segments of 16");
    is_int(j->tasks_total, pl.n_windows * 2 + 1 + 7, "tasks: denoise + prepare + decode");

    struct wire_hello h;
    memset(&h, 0, sizeof h);
    snprintf(h.name, sizeof h.name, "w");
    h.n_models = 1;
    snprintf(h.models[0], sizeof h.models[0], "tiny");
    struct sched_worker *wk = sched_worker_add(s, &h, (const uint8_t *)"w", 1, 0, 0);
    sched_worker_credit(s, wk, 8);
    struct sched_task t, t2, chk;
    int got = sched_next(s, wk, &t);
    ok(got && t.kind == WIRE_TASK_PREPARE && !sched_next(s, wk, &t2),
       "prepare comes first, alone: windows wait for it");
    struct sched_ref r = {1, t.task_id, t.attempt, 0};
    sched_check_result(s, wk, &r, &chk);
    sched_requeue(s, &chk);
    ok(sched_next(s, wk, &t) && t.kind == WIRE_TASK_PREPARE && t.attempt == 1,
       "a requeued prepare comes back with attempt + 1");
    r = (struct sched_ref){1, t.task_id, 0, 0};
    ok(sched_check_result(s, wk, &r, &chk) == SCHED_NOT_HELD ||
           sched_check_result(s, wk, &r, &chk) == SCHED_STALE,
       "the old attempt's result is refused");
    r = (struct sched_ref){1, t.task_id, t.attempt, 0};
    ok(sched_check_result(s, wk, &r, &chk) == SCHED_OK, "the current attempt is accepted");
    sched_accept_unit(s, &chk, wk->id);

    float *out = xcalloc((size_t)(9 * 16 * 4), sizeof(float));
    uint16_t *rest = xcalloc((size_t)(9 * 16 * 4), sizeof(uint16_t));
    int early = 0, bad_order = 0, decodes = 0, loops = 0;
    while (!j->outputs_ready && loops++ < 100000) {
        struct sched_task batch[8];
        int n = 0;
        while (n < 8 && sched_next(s, wk, &batch[n]))
            n++;
        if (n == 0)
            break;
        for (int i = 0; i < n; i++) {
            struct sched_task *x = &batch[i];
            r = (struct sched_ref){1, x->task_id, x->attempt, 0};
            if (sched_check_result(s, wk, &r, &chk) != SCHED_OK)
                continue;
            if (x->kind == WIRE_TASK_DECODE) {
                const struct sched_unit *u = &j->seg[x->seg];
                int64_t lo = u->a - 38 > 0 ? u->a - 38 : 0;
                bad_order += !covered_done(j, lo, u->b);
                early += j->windows_done < j->n_windows;
                decodes++;
                sched_accept_unit(s, &chk, wk->id);
            } else {
                sched_accept(s, &chk, out, rest, wk->id);
            }
        }
    }
    is_int(decodes, 7, "every segment decoded once");
    is_int(bad_order, 0, "no segment before its latents (and warm-up) were final");
    ok(early > 0, "%d segment(s) decoded while windows were still denoising", early);
    ok(j->outputs_ready && j->state == SCHED_JOB_RUNNING,
       "the job waits for its stitch once all chunks are in");
    sched_job_end(s, j, 1, NULL);
    is_str(j->row.state, "done", "sched_job_end: done");
    free(out);
    free(rest);
    sched_destroy(&s);
    free(w);
    free(st);
    free(ln);
    plan_release(&pl);
    unlink(path);
    rmdir(dir);
    return done_testing();
}
