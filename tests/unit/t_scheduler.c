/* t_scheduler.c - the wavefront scheduler driven by simulated workers in
 * random order, with requeues, stale results and affinity, against the
 * sequential reference loop (byte-identical final latents). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/bf16.h"
#include "common/err.h"
#include "common/latent_file.h"
#include "common/log.h"
#include "common/plan.h"
#include "common/xmalloc.h"
#include "coordinator/scheduler.h"
#include "tests/tap.h"
#include "worker/sim.h"

static char tmpdir[256];
static int job_seq;

static struct sched_job *add_job(struct sched *s, const struct wire_job_params *p, int prio)
{
    struct plan pl;
    struct plan_params pp = {.clip_frames = p->clip_frames, .overlap = p->overlap};
    struct store_job row;
    struct store_window *w;
    struct latent_file *lf;
    struct sched_job *j;
    int64_t *st, *ln;
    char path[512];
    if (plan_make(&pl, p->n_samples, &pp))
        return NULL;
    memset(&row, 0, sizeof row);
    row.id = (uint64_t)++job_seq;
    snprintf(row.state, sizeof row.state, "queued");
    row.priority = prio;
    row.params = *p;
    row.n_windows = pl.n_windows;
    row.latent_frames = pl.latent_frames;
    w = xcalloc((size_t)pl.n_windows, sizeof *w);
    st = xcalloc((size_t)pl.n_windows, sizeof *st);
    ln = xcalloc((size_t)pl.n_windows, sizeof *ln);
    for (int64_t k = 0; k < pl.n_windows; k++) {
        w[k] = (struct store_window){.k = k, .start = pl.windows[k].start,
                                     .len = pl.windows[k].len, .received_step = -1,
                                     .final_step = -1};
        st[k] = w[k].start;
        ln[k] = w[k].len;
    }
    struct latent_geometry g = {.n_windows = pl.n_windows, .start = st, .len = ln,
                                .latent_frames = pl.latent_frames, .overlap = p->overlap,
                                .h = p->height / 8, .w = p->width / 8};
    snprintf(path, sizeof path, "%s/job-%d.lat", tmpdir, job_seq);
    if (latent_file_open(path, &g, 1, &lf) || sched_add_job(s, &row, w, &lf, &j))
        j = NULL;
    free(w);
    free(st);
    free(ln);
    plan_release(&pl);
    return j;
}

/* A simulated worker's cache: its bf16 output per window (affinity), an
 * LRU of fake_cache_cap windows like the agent's. */
struct fake {
    struct sched_worker *w;
    uint16_t *cache;   /* [K][F*fs] */
    int *cache_step;   /* [K] */
    int64_t *used, clock; /* [K] when each window was last written */
};

static int fake_cache_cap = 4096;
static size_t head_memory = SCHED_HEAD_MEMORY;
static int64_t held_heads; /* results whose head the scheduler kept in memory */

/* fake_cached(): window k is still in the LRU (fewer than cap windows
 * written since). */
static int fake_cached(const struct fake *f, int64_t n_windows, int64_t k)
{
    int newer = 0;
    for (int64_t i = 0; i < n_windows; i++)
        newer += f->cache_step[i] >= 0 && f->used[i] > f->used[k];
    return f->cache_step[k] >= 0 && newer < fake_cache_cap;
}

struct pending {
    int wi;
    int64_t seq; /* dispatch order */
    struct sched_task t;
    uint64_t worker_id;
};

/* run() returns 1 if the farm's final latents equal the reference. */
static int run(const struct wire_job_params *p, int n_workers, unsigned seed, int faults,
               int64_t *stale_out, int64_t *bytes_sent, int64_t *bytes_full)
{
    struct sched *s = sched_new(NULL, NULL);
    sched_set_head_memory(s, head_memory);
    held_heads = 0;
    struct sched_job *j = add_job(s, p, 0);
    struct fake fk[8];
    struct pending pend[64];
    int n_pend = 0, same = 0;
    int64_t dispatched = 0;
    int64_t fs = LATENT_CHANNELS * (p->height / 8) * (p->width / 8);
    int64_t F = (p->clip_frames - 1) / 4 + 1;
    uint16_t *buf = xmalloc(sizeof(uint16_t) * (size_t)(F * fs));
    int32_t sent[64];
    float *x = xmalloc(sizeof(float) * (size_t)(F * fs)), *y = xmalloc(sizeof(float) * (size_t)(F * fs));
    struct wire_hello h;
    int64_t stale = 0;
    srand(seed);
    memset(&h, 0, sizeof h);
    snprintf(h.models[0], sizeof h.models[0], "sim");
    h.n_models = 1;
    h.cache_windows = (uint32_t)fake_cache_cap;
    for (int i = 0; i < n_workers; i++) {
        uint8_t rid[4] = {(uint8_t)i, 1, 2, 3};
        snprintf(h.name, sizeof h.name, "w%d", i);
        fk[i].w = sched_worker_add(s, &h, rid, 4, 0, 0);
        sched_worker_credit(s, fk[i].w, 2);
        fk[i].cache = xcalloc((size_t)(j->n_windows * F * fs), 2);
        fk[i].cache_step = xcalloc((size_t)j->n_windows, sizeof(int));
        fk[i].used = xcalloc((size_t)j->n_windows, sizeof(int64_t));
        for (int64_t k = 0; k < j->n_windows; k++)
            fk[i].cache_step[k] = -1;
    }
    for (int iter = 0; iter < 1000000 && j->state != SCHED_JOB_DONE; iter++) {
        for (int i = 0; i < n_workers; i++) {
            struct sched_task t;
            while (n_pend < 64 && sched_next(s, fk[i].w, &t))
                pend[n_pend++] = (struct pending){.wi = i, .seq = ++dispatched, .t = t,
                                                  .worker_id = fk[i].w->id};
        }
        if (!n_pend)
            break;
        /* A random worker finishes its oldest task (workers run in order). */
        int pi = rand() % n_pend;
        for (int q = 0; q < n_pend; q++)
            if (pend[q].wi == pend[pi].wi && pend[q].seq < pend[pi].seq)
                pi = q;
        struct pending pd = pend[pi];
        pend[pi] = pend[--n_pend];
        struct fake *f = &fk[pd.wi];
        struct sched_window *win = &j->win[pd.t.k];
        if (faults && rand() % 10 == 0) {
            /* The worker dies: its tasks are requeued, then it comes back. */
            uint8_t rid[4] = {(uint8_t)pd.wi, 1, 2, 3};
            struct sched_ref old = {j->row.id, pd.t.task_id, pd.t.attempt, 0};
            snprintf(h.name, sizeof h.name, "w%d", pd.wi);
            sched_worker_remove(s, &f->w);
            for (int q = 0; q < n_pend;)
                if (pend[q].wi == pd.wi)
                    pend[q] = pend[--n_pend];
                else
                    q++;
            f->w = sched_worker_add(s, &h, rid, 4, 0, 0);
            sched_worker_credit(s, f->w, 2);
            for (int64_t k = 0; k < j->n_windows; k++)
                f->cache_step[k] = -1;
            /* Its late result is stale. */
            struct sched_task t2;
            if (sched_check_result(s, f->w, &old, &t2) == SCHED_STALE)
                stale++;
            continue;
        }
        int n = pd.t.step == 0 ? 0 : sched_task_input(j, pd.t.k, pd.t.step, pd.t.base_step, buf, sent);
        if (pd.t.step == 0) {
            sim_initial(p->seed, win->start, win->len, p->height / 8, p->width / 8, x);
        } else {
            if (pd.t.base_step >= 0 && (f->cache_step[pd.t.k] != pd.t.base_step ||
                                        !fake_cached(f, j->n_windows, pd.t.k)))
                return 0; /* coordinator assumed a cache the worker lacks */
            for (int64_t i = 0; i < win->len * fs; i++)
                x[i] = pd.t.base_step >= 0 ? bf16_to_f32(f->cache[pd.t.k * F * fs + i]) : 0.f;
            for (int q = 0; q < n; q++)
                for (int64_t i = 0; i < fs; i++)
                    x[sent[q] * fs + i] = bf16_to_f32(buf[q * fs + i]);
            if (pd.t.base_step < 0 && n != win->len)
                return 0;
            *bytes_sent += n * fs * 2;
            *bytes_full += win->len * fs * 2;
        }
        sim_denoise(p->seed, pd.t.step, p->steps, win->start, win->len, p->height / 8, p->width / 8, x, y);
        struct sched_ref ref = {j->row.id, pd.t.task_id, pd.t.attempt, 0};
        struct sched_task t;
        if (sched_check_result(s, f->w, &ref, &t) != SCHED_OK)
            return 0;
        for (int64_t i = 0; i < win->len * fs; i++)
            f->cache[pd.t.k * F * fs + i] = f32_to_bf16(y[i]);
        f->cache_step[pd.t.k] = pd.t.step;
        f->used[pd.t.k] = ++f->clock;
        /* The Result's tensors: the first min(O, len) frames f32, the rest bf16. */
        int64_t nh = p->overlap < win->len ? p->overlap : win->len;
        if (!sched_accept(s, &t, y, f->cache + pd.t.k * F * fs + nh * fs, f->w->id)) {
            held_heads++;
            if (!win->head_mem || sched_durable_received(win) != win->final_step)
                return 0; /* a held head must not count as received */
        }
        /* A duplicate of the same result is stale. */
        if (sched_check_result(s, f->w, &ref, &t) == SCHED_STALE)
            stale++;
        if (!sched_check(j))
            return 0;
    }
    if (j->state == SCHED_JOB_DONE) {
        uint16_t *ref;
        int64_t L;
        if (sim_render_local(p, &ref, &L) == 0) {
            same = 1;
            for (int64_t f = 0; f < L; f++)
                if (memcmp(sched_final_frame(j, f), ref + f * fs, (size_t)fs * 2) != 0)
                    same = 0;
            free(ref);
        }
    }
    for (int i = 0; i < n_workers; i++) {
        free(fk[i].cache);
        free(fk[i].cache_step);
        free(fk[i].used);
    }
    free(buf);
    free(x);
    free(y);
    sched_destroy(&s);
    *stale_out = stale;
    return same;
}

static struct wire_job_params params(int64_t samples, int clip, int overlap, int steps,
                                     const char *blend)
{
    struct wire_job_params p;
    memset(&p, 0, sizeof p);
    snprintf(p.model, sizeof p.model, "sim");
    snprintf(p.blend, sizeof p.blend, "%s", blend);
    p.n_samples = samples;
    p.clip_frames = clip;
    p.overlap = overlap;
    p.steps = steps;
    p.seed = 42;
    p.width = p.height = 16;
    return p;
}

int main(void)
{
    int64_t stale, bs = 0, bf = 0;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/t_scheduler.XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    log_set_level(LOG_LEVEL_ERROR);

    struct wire_job_params p = params(640 * 4 * 60 + 640, 33, 3, 4, "log");
    for (int nw = 1; nw <= 3; nw++) {
        ok(run(&p, nw, (unsigned)nw, 0, &stale, &bs, &bf),
           "%d worker(s), random order: byte-identical to the reference", nw);
        is_int(stale, 40, "every duplicate result is stale (10 windows x 4 steps)");
    }
    ok(bs < bf, "affinity sends fewer bytes (%lld of %lld)", (long long)bs, (long long)bf);
    /* Workers keeping only 2 windows: the coordinator never counts on a
     * window they dropped, and still saves bytes. */
    fake_cache_cap = 2;
    for (int nw = 1; nw <= 3; nw += 2)
        ok(run(&p, nw, 5u + (unsigned)nw, 0, &stale, &bs, &bf),
           "%d worker(s) with a 2-window cache: identical, no missing cache assumed", nw);
    ok(bs < bf, "a small cache still saves bytes (%lld of %lld)", (long long)bs, (long long)bf);
    fake_cache_cap = 4096;
    ok(held_heads > 0, "heads waiting for their blend were held in memory (%lld)",
       (long long)held_heads);
    head_memory = 0;
    ok(run(&p, 3, 9, 0, &stale, &bs, &bf) && held_heads == 0,
       "no head memory: every waiting head goes to the store, identical");
    head_memory = SCHED_HEAD_MEMORY;
    ok(run(&p, 3, 7, 1, &stale, &bs, &bf), "3 workers with deaths and requeues: identical");
    ok(stale > 0, "late results of dead workers are stale (%lld)", (long long)stale);

    struct wire_job_params p2 = params(640 * 4 * 40 + 640, 21, 4, 3, "uniform");
    ok(run(&p2, 2, 11, 1, &stale, &bs, &bf), "large overlap (O=4 of F=6), uniform: identical");
    struct wire_job_params p3 = params(640 * 3, 81, 5, 2, "log");
    ok(run(&p3, 2, 3, 0, &stale, &bs, &bf), "audio shorter than one window: identical");
    struct wire_job_params p4 = params(640 * 4 * 30 + 640, 9, 0, 3, "log");
    ok(run(&p4, 3, 5, 1, &stale, &bs, &bf), "no overlap: identical");

    /* Priorities: higher first, FIFO within. */
    {
        struct sched *s = sched_new(NULL, NULL);
        struct wire_job_params q = params(640 * 4 * 20 + 640, 21, 2, 2, "log");
        struct sched_job *lo = add_job(s, &q, 0);
        struct sched_job *hi = add_job(s, &q, 5);
        struct wire_hello h;
        struct sched_task t;
        memset(&h, 0, sizeof h);
        snprintf(h.models[0], sizeof h.models[0], "sim");
        h.n_models = 1;
        uint8_t rid[1] = {9};
        struct sched_worker *w = sched_worker_add(s, &h, rid, 1, 0, 0);
        sched_worker_credit(s, w, 2);
        ok(sched_next(s, w, &t) && t.job == hi && t.k == 0, "the higher priority job goes first");
        ok(sched_next(s, w, &t) && t.job == hi && t.k == 1, "FIFO within a priority");
        ok(!sched_next(s, w, &t), "no task without a credit");
        (void)lo;

        /* A worker without the model gets nothing. */
        struct wire_hello h2 = h;
        snprintf(h2.models[0], sizeof h2.models[0], "tiny");
        uint8_t rid2[1] = {10};
        struct sched_worker *w2 = sched_worker_add(s, &h2, rid2, 1, 0, 0);
        sched_worker_credit(s, w2, 2);
        ok(!sched_next(s, w2, &t), "a worker without the job's model gets no task");

        struct sched_ref r = {hi->row.id, 999999, 0, 0};
        is_int(sched_check_result(s, w, &r, &t), SCHED_UNKNOWN_TASK, "unknown task id");
        r.job_id = 12345;
        is_int(sched_check_result(s, w, &r, &t), SCHED_UNKNOWN_JOB, "unknown job id");
        r = (struct sched_ref){hi->row.id, sched_task_id(hi, 0, 0), hi->win[0].attempt, 0};
        is_int(sched_check_result(s, w2, &r, &t), SCHED_NOT_HELD, "a task the worker does not hold");
        is_int(sched_expire(s, 10000, 5000), 2, "silent workers expire");
        is_int(hi->win[0].state, SCHED_WIN_READY, "their tasks are requeued");
        is_int(hi->win[0].attempt, 2, "with attempt + 1");
        is_int(sched_cancel(s, lo), 0, "cancel a queued job");
        is_int(sched_cancel(s, lo), ENC_EINVAL, "cancel of a cancelled job is refused");
        sched_destroy(&s);
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        diag("cannot remove %s", tmpdir);
    return done_testing();
}
