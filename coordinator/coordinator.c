/*
 * coordinator.c - the event loop (see coordinator.h).
 *
 * Message handling is a switch over wire kinds; each handler changes the
 * scheduler and the store and queues its replies in `out`. Replies leave
 * only after the turn's commit (flush()), except new tasks: they promise
 * nothing durable (a restart bumps every attempt, so a result computed from
 * state that was lost is stale), so they leave as soon as the turn's
 * results are applied (flush_tasks()), and workers never wait on an fsync.
 * Bad input is answered with an Error naming what was wrong and changes
 * nothing else.
 */
#include "coordinator.h"

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <zmq.h>

#include "common/err.h"
#include "common/latent_file.h"
#include "common/log.h"
#include "common/plan.h"
#include "common/wire.h"
#include "common/xmalloc.h"
#include "coordinator/scheduler.h"
#include "coordinator/store.h"
#include "worker/sim.h"

#define BATCH_MAX 512

struct outmsg {
    uint8_t rid[WIRE_RID_MAX];
    size_t rid_len;
    struct wire_msg m;
    void *buf; /* tensor data owned by the queue */
    int early; /* may leave before the commit (a task) */
};

struct coordinator {
    struct coordinator_opts o;
    char *state_dir;
    void *ctx;
    int own_ctx;
    void *sock;
    struct store *store;
    struct sched *sched;
    struct wire_limits limits;
    volatile sig_atomic_t stop;
    struct outmsg *out;
    size_t n_out, cap_out;
    struct coordinator_stats st;
    int db_error;
    struct dirty_window { struct sched_job *job; int64_t k; } *dirty;
    size_t n_dirty, cap_dirty; /* windows changed this turn, written once at its end */
    struct seen_window { uint64_t job_id; int64_t k; } *seen; /* the same, as a hash set */
    size_t n_seen, cap_seen;   /* cap: a power of two; job_id 0 = empty */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double now_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void coordinator_opts_default(struct coordinator_opts *o)
{
    memset(o, 0, sizeof *o);
    o->durable = 1;
    o->heartbeat_ms = 1000;
    o->lease_ms = 5000;
    o->commit_ms = 4;
}

/* ---- outbound queue ------------------------------------------------------- */

static struct outmsg *reply(struct coordinator *c, const uint8_t *rid, size_t rid_len,
                            enum wire_kind kind, uint64_t request_id)
{
    if (c->n_out == c->cap_out) {
        c->cap_out = c->cap_out ? 2 * c->cap_out : 256;
        c->out = xrealloc(c->out, sizeof *c->out * c->cap_out);
    }
    struct outmsg *o = &c->out[c->n_out++];
    memcpy(o->rid, rid, rid_len);
    o->rid_len = rid_len;
    wire_msg_init(&o->m, kind);
    o->m.request_id = request_id;
    o->buf = NULL;
    o->early = 0;
    return o;
}

static void reply_error(struct coordinator *c, const uint8_t *rid, size_t rid_len,
                        uint64_t request_id, int code, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static void reply_error(struct coordinator *c, const uint8_t *rid, size_t rid_len,
                        uint64_t request_id, int code, const char *fmt, ...)
{
    struct outmsg *o = reply(c, rid, rid_len, WIRE_ERROR, request_id);
    va_list ap;
    o->m.u.error.code = code;
    va_start(ap, fmt);
    vsnprintf(o->m.u.error.message, sizeof o->m.u.error.message, fmt, ap);
    va_end(ap);
    log_info("refused: %s", o->m.u.error.message);
}

/* flush_tasks(): send the queued tasks now, keep the rest in order. */
static void flush_tasks(struct coordinator *c)
{
    size_t keep = 0;
    for (size_t i = 0; i < c->n_out; i++) {
        struct outmsg *o = &c->out[i];
        if (!o->early) {
            if (keep != i)
                c->out[keep] = *o;
            keep++;
            continue;
        }
        wire_send_take(c->sock, o->rid, o->rid_len, &o->m, o->buf); /* buf: no copy */
        wire_msg_release(&o->m);
    }
    c->n_out = keep;
}

static void flush(struct coordinator *c)
{
    for (size_t i = 0; i < c->n_out; i++) {
        struct outmsg *o = &c->out[i];
        wire_send_take(c->sock, o->rid, o->rid_len, &o->m, o->buf); /* buf: no copy */
        wire_msg_release(&o->m); /* frees attached arrays (sent, jobs, ...) */
    }
    c->n_out = 0;
}

/* ---- hooks: persist what the scheduler changed ------------------------------ */

/* ---- windows changed in the open turn ---------------------------------------- */

static size_t seen_slot(const struct coordinator *c, uint64_t job_id, int64_t k)
{
    uint64_t h = job_id * 0x9e3779b97f4a7c15ull ^ (uint64_t)k * 0xc2b2ae3d27d4eb4full;
    size_t i = (size_t)(h >> 17) & (c->cap_seen - 1);
    while (c->seen[i].job_id && (c->seen[i].job_id != job_id || c->seen[i].k != k))
        i = (i + 1) & (c->cap_seen - 1);
    return i;
}

static int seen_has(const struct coordinator *c, const struct sched_job *j, int64_t k)
{
    return c->n_seen > 0 && c->seen[seen_slot(c, j->row.id, k)].job_id != 0;
}

static void seen_add(struct coordinator *c, const struct sched_job *j, int64_t k)
{
    if (2 * (c->n_seen + 1) > c->cap_seen) {
        struct seen_window *old = c->seen;
        size_t old_cap = c->cap_seen;
        c->cap_seen = old_cap ? 2 * old_cap : 1024;
        c->seen = xcalloc(c->cap_seen, sizeof *c->seen);
        for (size_t i = 0; i < old_cap; i++)
            if (old[i].job_id)
                c->seen[seen_slot(c, old[i].job_id, old[i].k)] = old[i];
        free(old);
    }
    size_t i = seen_slot(c, j->row.id, k);
    if (!c->seen[i].job_id) {
        c->seen[i] = (struct seen_window){j->row.id, k};
        c->n_seen++;
    }
}

/* A result changes its window's row twice (received, then final): the
 * rows are written once per turn, in write_windows(). The store keeps one
 * step of history per window (two parity slots, one head), so a window may
 * move at most one step per commit: a result for a window the open turn
 * already changed first ends the turn (result_needs_commit()). */
static int result_needs_commit(struct coordinator *c, const struct wire_msg *m)
{
    if (m->kind != WIRE_RESULT || c->n_seen == 0)
        return 0;
    struct sched_job *j = sched_job_find(c->sched, m->u.result.job_id);
    if (!j || m->u.result.task_id < 1 || j->row.params.steps < 1)
        return 0;
    int64_t k = (int64_t)((m->u.result.task_id - 1) / (uint64_t)j->row.params.steps);
    return k < j->n_windows && seen_has(c, j, k);
}

static void hook_window(void *ctx, struct sched_job *j, int64_t k)
{
    struct coordinator *c = ctx;
    seen_add(c, j, k);
    if (c->n_dirty == c->cap_dirty) {
        c->cap_dirty = c->cap_dirty ? 2 * c->cap_dirty : 256;
        c->dirty = xrealloc(c->dirty, sizeof *c->dirty * c->cap_dirty);
    }
    c->dirty[c->n_dirty++] = (struct dirty_window){j, k};
}

static int dirty_cmp(const void *a, const void *b)
{
    const struct dirty_window *x = a, *y = b;
    if (x->job->row.id != y->job->row.id)
        return x->job->row.id < y->job->row.id ? -1 : 1;
    return (x->k > y->k) - (x->k < y->k);
}

/* write_windows(): the rows of the windows changed since the last call. */
static void write_windows(struct coordinator *c)
{
    if (c->n_dirty == 0)
        return;
    qsort(c->dirty, c->n_dirty, sizeof *c->dirty, dirty_cmp);
    for (size_t i = 0; i < c->n_dirty; i++) {
        struct sched_job *j = c->dirty[i].job;
        int64_t k = c->dirty[i].k;
        if (i > 0 && c->dirty[i - 1].job == j && c->dirty[i - 1].k == k)
            continue;
        struct store_window w = {.k = k, .start = j->win[k].start, .len = j->win[k].len,
                                 .received_step = j->win[k].received_step,
                                 .final_step = j->win[k].final_step,
                                 .attempt = j->win[k].attempt};
        if (store_window_update(c->store, j->row.id, &w))
            c->db_error = 1;
    }
    c->n_dirty = 0;
    if (c->n_seen) {
        memset(c->seen, 0, sizeof *c->seen * c->cap_seen);
        c->n_seen = 0;
    }
}

static void hook_job(void *ctx, struct sched_job *j)
{
    struct coordinator *c = ctx;
    if (store_job_update(c->store, &j->row) ||
        store_event(c->store, j->row.id, j->row.state, "job %llu %s",
                    (unsigned long long)j->row.id, j->row.state))
        c->db_error = 1;
    log_info("job %llu %s", (unsigned long long)j->row.id, j->row.state);
}

static void hook_requeued(void *ctx, struct sched_job *j, int64_t k, int step)
{
    struct coordinator *c = ctx;
    if (store_task_finish(c->store, j->row.id, k, step, "requeued", now_wall()))
        c->db_error = 1;
}

/* ---- latent stores ------------------------------------------------------------- */

static int open_latents(struct coordinator *c, struct sched_job *j, const struct store_window *w,
                        int create, struct latent_file **lf)
{
    int64_t *st = xmalloc(sizeof(int64_t) * (size_t)j->n_windows);
    int64_t *ln = xmalloc(sizeof(int64_t) * (size_t)j->n_windows);
    char *path = xasprintf("%s/jobs/%llu.lat", c->state_dir, (unsigned long long)j->row.id);
    for (int64_t k = 0; k < j->n_windows; k++) {
        st[k] = w ? w[k].start : j->win[k].start;
        ln[k] = w ? w[k].len : j->win[k].len;
    }
    struct latent_geometry g = {.n_windows = j->n_windows, .start = st, .len = ln,
                                .latent_frames = j->row.latent_frames,
                                .overlap = j->row.params.overlap,
                                .h = j->row.params.height / 8, .w = j->row.params.width / 8};
    int rc = latent_file_open(path, &g, create, lf);
    free(st);
    free(ln);
    free(path);
    return rc;
}

/* ---- handlers ------------------------------------------------------------------------ */

static void on_hello(struct coordinator *c, const uint8_t *rid, size_t rid_len,
                     const struct wire_msg *m)
{
    if (m->u.hello.protocol != WIRE_PROTOCOL_VERSION) {
        reply_error(c, rid, rid_len, m->request_id, ENC_EWIRE,
                    "protocol version %u not supported (this coordinator speaks version %u)",
                    m->u.hello.protocol, WIRE_PROTOCOL_VERSION);
        return;
    }
    struct sched_worker *w = sched_worker_by_rid(c->sched, rid, rid_len);
    if (w)
        sched_worker_remove(c->sched, &w);
    w = sched_worker_add(c->sched, &m->u.hello, rid, rid_len, now_ms(), now_wall());
    if (store_worker_seen(c->store, &m->u.hello, now_wall()))
        c->db_error = 1;
    log_info("worker '%s' (id %llu, %s) joined", w->name, (unsigned long long)w->id,
             w->backend);
    struct outmsg *o = reply(c, rid, rid_len, WIRE_HELLO_ACK, m->request_id);
    o->m.u.hello_ack.worker_id = w->id;
    o->m.u.hello_ack.heartbeat_ms = (uint32_t)c->o.heartbeat_ms;
    o->m.u.hello_ack.lease_ms = (uint32_t)c->o.lease_ms;
}

static enum sched_verdict on_result(struct coordinator *c, struct sched_worker *w,
                                    const uint8_t *rid, size_t rid_len, const struct wire_msg *m,
                                    int failed)
{
    struct sched_ref r;
    struct sched_task t;
    if (failed)
        r = (struct sched_ref){m->u.task_failed.ref.job_id, m->u.task_failed.ref.task_id,
                               m->u.task_failed.ref.attempt};
    else
        r = (struct sched_ref){m->u.result.job_id, m->u.result.task_id, m->u.result.attempt};
    enum sched_verdict v = sched_check_result(c->sched, w, &r, &t);
    switch (v) {
    case SCHED_UNKNOWN_JOB:
        reply_error(c, rid, rid_len, m->request_id, ENC_EINVAL, "unknown job %llu",
                    (unsigned long long)r.job_id);
        return v;
    case SCHED_UNKNOWN_TASK:
        reply_error(c, rid, rid_len, m->request_id, ENC_EINVAL, "unknown task %llu of job %llu",
                    (unsigned long long)r.task_id, (unsigned long long)r.job_id);
        return v;
    case SCHED_NOT_HELD:
        reply_error(c, rid, rid_len, m->request_id, ENC_EINVAL,
                    "task %llu of job %llu (attempt %u) is not held by this worker",
                    (unsigned long long)r.task_id, (unsigned long long)r.job_id, r.attempt);
        return v;
    case SCHED_STALE: {
        c->st.stale++;
        t.job->row.stale_results++;
        log_info("dropped a stale result: job %llu task %llu attempt %u",
                 (unsigned long long)r.job_id, (unsigned long long)r.task_id, r.attempt);
        if (w) {
            struct outmsg *o = reply(c, rid, rid_len, WIRE_RESULT_ACK, m->request_id);
            o->m.u.result_ack.ref = m->u.result;
            o->m.u.result_ack.accepted = 0;
            snprintf(o->m.u.result_ack.reason, sizeof o->m.u.result_ack.reason, "stale");
        }
        return v;
    }
    case SCHED_OK:
        break;
    }
    struct sched_job *j = t.job;
    if (failed) {
        if (m->u.task_failed.reason == WIRE_FAIL_CACHE_MISS ||
            m->u.task_failed.reason == WIRE_FAIL_BUSY) {
            j->win[t.k].last_worker = 0;
            if (m->u.task_failed.reason == WIRE_FAIL_BUSY)
                sched_worker_credit(c->sched, w, -1); /* it had no room for it */
        } else {
            log_warn("job %llu window %lld step %d failed on '%s': %s",
                     (unsigned long long)j->row.id, (long long)t.k, t.step, w->name,
                     m->u.task_failed.message);
            if (t.attempt >= 5) {
                snprintf(j->row.error, sizeof j->row.error, "window %lld step %d: %.200s",
                         (long long)t.k, t.step, m->u.task_failed.message);
                j->win[t.k].state = SCHED_WIN_WAITING;
                j->state = SCHED_JOB_FAILED;
                snprintf(j->row.state, sizeof j->row.state, "failed");
                j->row.finished_at = now_wall();
                hook_job(c, j);
                return v;
            }
        }
        sched_requeue(c->sched, &t);
        return v;
    }
    const struct sched_window *win = &j->win[t.k];
    const struct wire_tensor *tt = &m->tensors[0];
    if (m->n_tensors != 1 || tt->dtype != WIRE_DTYPE_F32 || tt->ndim != 4 ||
        tt->shape[0] != win->len || tt->shape[1] != LATENT_CHANNELS || tt->shape[2] != j->h ||
        tt->shape[3] != j->w) {
        reply_error(c, rid, rid_len, m->request_id, ENC_EINVAL,
                    "result for job %llu task %llu must carry one f32 tensor [%lld, 16, %lld, "
                    "%lld]",
                    (unsigned long long)r.job_id, (unsigned long long)r.task_id,
                    (long long)win->len, (long long)j->h, (long long)j->w);
        sched_requeue(c->sched, &t);
        return v;
    }
    sched_accept(c->sched, &t, tt->data, w->id);
    c->st.results++;
    if (store_task_finish(c->store, j->row.id, t.k, t.step, "done", now_wall()))
        c->db_error = 1;
    struct outmsg *o = reply(c, rid, rid_len, WIRE_RESULT_ACK, m->request_id);
    o->m.u.result_ack.ref = m->u.result;
    o->m.u.result_ack.accepted = 1;
    return v;
}

static void on_submit(struct coordinator *c, const uint8_t *rid, size_t rid_len,
                      const struct wire_msg *m)
{
    const struct wire_job_params *p = &m->u.submit.params;
    char msg[256];
    struct plan pl;
    struct plan_params pp = {.clip_frames = p->clip_frames, .overlap = p->overlap};
    if (sim_check_params(p, msg, sizeof msg)) {
        reply_error(c, rid, rid_len, m->request_id, ENC_EINVAL, "bad job: %s", msg);
        return;
    }
    if (plan_make(&pl, p->n_samples, &pp)) {
        reply_error(c, rid, rid_len, m->request_id, ENC_EINVAL, "bad job: cannot plan windows");
        return;
    }
    struct store_job row;
    struct store_window *w = xcalloc((size_t)pl.n_windows, sizeof *w);
    memset(&row, 0, sizeof row);
    snprintf(row.state, sizeof row.state, "queued");
    row.priority = m->u.submit.priority;
    row.params = *p;
    row.n_windows = pl.n_windows;
    row.latent_frames = pl.latent_frames;
    row.created_at = now_wall();
    for (int64_t k = 0; k < pl.n_windows; k++)
        w[k] = (struct store_window){.k = k, .start = pl.windows[k].start,
                                     .len = pl.windows[k].len, .received_step = -1,
                                     .final_step = -1};
    plan_release(&pl);
    if (store_job_insert(c->store, &row, w)) {
        c->db_error = 1;
        reply_error(c, rid, rid_len, m->request_id, ENC_EDB, "cannot store the job");
        free(w);
        return;
    }
    struct sched_job tmp = {.row = row, .n_windows = row.n_windows};
    struct latent_file *lf = NULL;
    if (open_latents(c, &tmp, w, 1, &lf)) {
        snprintf(row.state, sizeof row.state, "failed");
        snprintf(row.error, sizeof row.error, "cannot create its latent store");
    }
    struct sched_job *j;
    if (sched_add_job(c->sched, &row, w, &lf, &j) == 0 && !j->lf)
        hook_job(c, j);
    free(w);
    store_event(c->store, row.id, "submit", "job %llu submitted: %lld windows x %d steps",
                (unsigned long long)row.id, (long long)row.n_windows, p->steps);
    log_info("job %llu submitted: model %s, %lld windows x %d steps, priority %d",
             (unsigned long long)row.id, p->model, (long long)row.n_windows, p->steps,
             row.priority);
    struct outmsg *o = reply(c, rid, rid_len, WIRE_SUBMIT_REPLY, m->request_id);
    o->m.u.submit_reply.job_id = row.id;
}

static void job_info(struct sched_job *j, int wavefront, struct wire_job_info *ji)
{
    memset(ji, 0, sizeof *ji);
    ji->id = j->row.id;
    snprintf(ji->state, sizeof ji->state, "%s", sched_job_state_name(j->state));
    ji->priority = j->row.priority;
    memcpy(ji->model, j->row.params.model, sizeof ji->model);
    ji->n_windows = j->n_windows;
    ji->steps = j->row.params.steps;
    ji->latent_frames = j->row.latent_frames;
    ji->windows_done = j->windows_done;
    ji->tasks_done = j->tasks_done;
    ji->tasks_total = j->tasks_total;
    ji->stale_results = j->row.stale_results;
    ji->requeued = j->row.requeued;
    ji->created_at = j->row.created_at;
    ji->started_at = j->row.started_at;
    ji->finished_at = j->row.finished_at;
    ji->bytes_sent = j->row.bytes_sent;
    ji->bytes_full = j->row.bytes_full;
    memcpy(ji->error, j->row.error, sizeof ji->error);
    if (wavefront) {
        ji->n_window_steps = (int)j->n_windows;
        ji->window_steps = xmalloc(sizeof(int32_t) * (size_t)(j->n_windows + 1));
        for (int64_t k = 0; k < j->n_windows; k++)
            ji->window_steps[k] = j->win[k].final_step + 1;
    }
}

static void on_status(struct coordinator *c, const uint8_t *rid, size_t rid_len,
                      const struct wire_msg *m)
{
    size_t n;
    struct sched_job *const *jobs = sched_jobs(c->sched, &n);
    struct sched_job *one = NULL;
    if (m->u.status.job_id) {
        one = sched_job_find(c->sched, m->u.status.job_id);
        if (!one) {
            reply_error(c, rid, rid_len, m->request_id, ENC_EINVAL, "unknown job %llu",
                        (unsigned long long)m->u.status.job_id);
            return;
        }
    }
    struct outmsg *o = reply(c, rid, rid_len, WIRE_STATUS_REPLY, m->request_id);
    o->m.u.status_reply.jobs = xcalloc(n + 1, sizeof(struct wire_job_info));
    for (size_t i = 0; i < n; i++)
        if (!one || jobs[i] == one)
            job_info(jobs[i], m->u.status.wavefront,
                     &o->m.u.status_reply.jobs[o->m.u.status_reply.n_jobs++]);
    o->m.u.status_reply.stale_results = c->st.stale;
    o->m.u.status_reply.bad_messages = c->st.bad_messages;
}

static void on_cancel(struct coordinator *c, const uint8_t *rid, size_t rid_len,
                      const struct wire_msg *m)
{
    struct sched_job *j = sched_job_find(c->sched, m->u.cancel.job_id);
    if (!j) {
        reply_error(c, rid, rid_len, m->request_id, ENC_EINVAL, "unknown job %llu",
                    (unsigned long long)m->u.cancel.job_id);
        return;
    }
    if (j->state != SCHED_JOB_QUEUED && j->state != SCHED_JOB_RUNNING) {
        reply_error(c, rid, rid_len, m->request_id, ENC_EINVAL,
                    "job %llu is already %s: nothing to cancel", (unsigned long long)j->row.id,
                    sched_job_state_name(j->state));
        return;
    }
    sched_cancel(c->sched, j);
    struct outmsg *o = reply(c, rid, rid_len, WIRE_CANCEL_REPLY, m->request_id);
    o->m.u.cancel_reply.job_id = j->row.id;
    snprintf(o->m.u.cancel_reply.state, sizeof o->m.u.cancel_reply.state, "cancelled");
}

static void on_workers(struct coordinator *c, const uint8_t *rid, size_t rid_len,
                       const struct wire_msg *m)
{
    size_t n;
    struct sched_worker *const *ws = sched_workers(c->sched, &n);
    struct outmsg *o = reply(c, rid, rid_len, WIRE_WORKERS_REPLY, m->request_id);
    o->m.u.workers_reply.workers = xcalloc(n + 1, sizeof(struct wire_worker_info));
    o->m.u.workers_reply.n_workers = (int)n;
    int64_t now = now_ms();
    double wall = now_wall();
    for (size_t i = 0; i < n; i++) {
        struct wire_worker_info *wi = &o->m.u.workers_reply.workers[i];
        wi->id = ws[i]->id;
        memcpy(wi->name, ws[i]->name, sizeof wi->name);
        memcpy(wi->backend, ws[i]->backend, sizeof wi->backend);
        memcpy(wi->device, ws[i]->device, sizeof wi->device);
        wi->n_models = ws[i]->n_models;
        memcpy(wi->models, ws[i]->models, sizeof wi->models);
        snprintf(wi->state, sizeof wi->state, "%s", ws[i]->n_running ? "busy" : "idle");
        wi->running = ws[i]->n_running;
        wi->tasks_done = ws[i]->tasks_done;
        wi->last_seen = wall - (double)(now - ws[i]->last_seen_ms) / 1000.0;
        wi->connected_at = ws[i]->connected_at;
    }
}

static void on_get_latents(struct coordinator *c, const uint8_t *rid, size_t rid_len,
                           const struct wire_msg *m)
{
    struct sched_job *j = sched_job_find(c->sched, m->u.get_latents.job_id);
    if (!j) {
        reply_error(c, rid, rid_len, m->request_id, ENC_EINVAL, "unknown job %llu",
                    (unsigned long long)m->u.get_latents.job_id);
        return;
    }
    if (j->state != SCHED_JOB_DONE) {
        reply_error(c, rid, rid_len, m->request_id, ENC_EINVAL,
                    "job %llu is %s: its latents are not final", (unsigned long long)j->row.id,
                    sched_job_state_name(j->state));
        return;
    }
    if (!j->lf && open_latents(c, j, NULL, 0, &j->lf)) {
        reply_error(c, rid, rid_len, m->request_id, ENC_EIO,
                    "job %llu: its latent store cannot be read", (unsigned long long)j->row.id);
        return;
    }
    int64_t L = j->row.latent_frames, hw = j->h * j->w;
    if (L * j->fs * 2 > c->limits.max_tensor) {
        reply_error(c, rid, rid_len, m->request_id, ENC_EINVAL,
                    "job %llu: latents of %lld bytes exceed the message limit",
                    (unsigned long long)j->row.id, (long long)(L * j->fs * 2));
        return;
    }
    uint16_t *buf = xmalloc(sizeof(uint16_t) * (size_t)(L * j->fs));
    /* frame-major [L][16][h][w] -> [16][L][h][w] */
    for (int64_t f = 0; f < L; f++) {
        const uint16_t *src = sched_final_frame(j, f);
        for (int64_t ch = 0; ch < LATENT_CHANNELS; ch++)
            memcpy(buf + (ch * L + f) * hw, src + ch * hw, sizeof(uint16_t) * (size_t)hw);
    }
    struct outmsg *o = reply(c, rid, rid_len, WIRE_LATENTS, m->request_id);
    int64_t shape[4] = {LATENT_CHANNELS, L, j->h, j->w};
    o->m.u.latents.job_id = j->row.id;
    o->buf = buf;
    wire_msg_add_tensor(&o->m, WIRE_DTYPE_BF16, 4, shape, buf);
}

static void handle(struct coordinator *c, const uint8_t *rid, size_t rid_len,
                   const struct wire_msg *m)
{
    struct sched_worker *w = sched_worker_by_rid(c->sched, rid, rid_len);
    if (w)
        w->last_seen_ms = now_ms();
    switch (m->kind) {
    case WIRE_HELLO: on_hello(c, rid, rid_len, m); break;
    case WIRE_CREDIT:
    case WIRE_HEARTBEAT:
        if (!w) {
            reply(c, rid, rid_len, WIRE_RESET, m->request_id);
        } else if (m->kind == WIRE_CREDIT) {
            sched_worker_credit(c->sched, w, m->u.credit.n);
        } else {
            reply(c, rid, rid_len, WIRE_HEARTBEAT_ACK, m->request_id);
        }
        break;
    case WIRE_RESULT:
    case WIRE_TASK_FAILED:
        /* A late result from a worker we no longer know: tell it to say hello. */
        if (on_result(c, w, rid, rid_len, m, m->kind == WIRE_TASK_FAILED) == SCHED_STALE && !w)
            reply(c, rid, rid_len, WIRE_RESET, m->request_id);
        break;
    case WIRE_BYE:
        if (w) {
            log_info("worker '%s' left, handing back %d task(s)", w->name, w->n_running);
            sched_worker_remove(c->sched, &w);
        }
        break;
    case WIRE_SUBMIT: on_submit(c, rid, rid_len, m); break;
    case WIRE_STATUS: on_status(c, rid, rid_len, m); break;
    case WIRE_CANCEL: on_cancel(c, rid, rid_len, m); break;
    case WIRE_WORKERS: on_workers(c, rid, rid_len, m); break;
    case WIRE_GET_LATENTS: on_get_latents(c, rid, rid_len, m); break;
    default:
        c->st.bad_messages++;
        reply_error(c, rid, rid_len, m->request_id, ENC_EWIRE,
                    "unexpected message '%s' for a coordinator", wire_kind_name(m->kind));
        break;
    }
}

/* ---- dispatch ------------------------------------------------------------------------ */

static void send_task(struct coordinator *c, struct sched_worker *w, const struct sched_task *t)
{
    struct sched_job *j = t->job;
    const struct sched_window *win = &j->win[t->k];
    struct outmsg *o = reply(c, w->rid, w->rid_len, WIRE_TASK, 0);
    struct wire_task *wt = &o->m.u.task;
    o->early = 1;
    wt->job_id = j->row.id;
    wt->task_id = t->task_id;
    wt->attempt = t->attempt;
    wt->window = t->k;
    wt->step = t->step;
    wt->start = win->start;
    wt->len = win->len;
    wt->params = j->row.params;
    wt->base_step = t->base_step;
    wt->sent = xmalloc(sizeof(int32_t) * (size_t)(win->len + 1));
    if (t->step > 0) {
        o->buf = xmalloc(sizeof(uint16_t) * (size_t)(win->len * j->fs));
        wt->n_sent = sched_task_input(j, t->k, t->step, t->base_step, o->buf, wt->sent);
        int64_t shape[4] = {wt->n_sent, LATENT_CHANNELS, j->h, j->w};
        if (wt->n_sent > 0)
            wire_msg_add_tensor(&o->m, WIRE_DTYPE_BF16, 4, shape, o->buf);
        int64_t sent = (int64_t)wt->n_sent * j->fs * 2, full = win->len * j->fs * 2;
        j->row.bytes_sent += sent;
        j->row.bytes_full += full;
        c->st.bytes_sent += sent;
        c->st.bytes_full += full;
    }
    c->st.tasks_sent++;
    if (store_task_running(c->store, j->row.id, t->k, t->step, t->attempt, w->name,
                           now_wall() + c->o.lease_ms / 1000.0))
        c->db_error = 1;
}

static void dispatch(struct coordinator *c)
{
    size_t n;
    struct sched_worker *const *ws = sched_workers(c->sched, &n);
    struct sched_task t;
    /* Two passes: first each worker takes the windows it ran last. */
    for (size_t i = 0; i < n; i++)
        while (ws[i]->credits > 0 && ws[i]->n_pref > 0 && sched_next(c->sched, ws[i], &t))
            send_task(c, ws[i], &t);
    for (int more = 1; more;) {
        more = 0;
        for (size_t i = 0; i < n; i++)
            if (ws[i]->credits > 0 && sched_next(c->sched, ws[i], &t)) {
                send_task(c, ws[i], &t);
                more = 1;
            }
    }
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

static int on_loaded(void *ctx, const struct store_job *row, const struct store_window *w)
{
    struct coordinator *c = ctx;
    struct latent_file *lf = NULL;
    struct store_job r = *row;
    struct sched_job *j;
    int active = strcmp(row->state, "queued") == 0 || strcmp(row->state, "running") == 0;
    if (active) {
        struct sched_job tmp = {.row = *row, .n_windows = row->n_windows};
        if (open_latents(c, &tmp, w, 0, &lf)) {
            snprintf(r.state, sizeof r.state, "failed");
            snprintf(r.error, sizeof r.error, "its latent store was lost");
        }
    }
    int rc = sched_add_job(c->sched, &r, w, &lf, &j);
    if (rc)
        return rc;
    if (strcmp(r.state, row->state) != 0)
        hook_job(c, j);
    return 0;
}

int coordinator_new(const struct coordinator_opts *o, struct coordinator **out)
{
    struct coordinator *c = xcalloc(1, sizeof *c);
    struct sched_hooks hooks = {.window_changed = hook_window, .job_changed = hook_job,
                                .task_requeued = hook_requeued};
    int rc;
    *out = NULL;
    /* Every turn frees and reallocates the same tensor-sized buffers (ours
     * and ZeroMQ's): keep freed heap pages instead of trimming them and
     * faulting them in again each turn. Bounded by one turn's peak, not by
     * video length. */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 16 << 20);
    c->o = *o;
    c->state_dir = xstrdup(o->state_dir);
    wire_limits_default(&c->limits);
    if (o->max_message > 0)
        c->limits.max_envelope = (size_t)o->max_message;
    if ((rc = store_open(o->state_dir, o->durable, &c->store)))
        goto fail;
    char *jobs = xasprintf("%s/jobs", o->state_dir);
    if (mkdir(jobs, 0755) != 0 && errno != EEXIST) {
        rc = log_error_rc(ENC_EIO, "cannot create '%s': %s", jobs, strerror(errno));
        free(jobs);
        goto fail;
    }
    free(jobs);
    c->sched = sched_new(&hooks, c);
    if ((rc = store_begin(c->store)))
        goto fail;
    int requeued = store_recover(c->store);
    if (requeued >= 0 && (rc = store_load(c->store, on_loaded, c)) == 0)
        write_windows(c);
    if (requeued < 0 || rc || c->db_error || (rc = store_commit(c->store))) {
        rc = requeued < 0 ? requeued : rc ? rc : ENC_EDB;
        goto fail;
    }
    if (requeued > 0)
        log_info("recovered: %d task(s) left running by the last run are requeued", requeued);
    c->ctx = o->zmq_ctx;
    if (!c->ctx) {
        c->ctx = zmq_ctx_new();
        c->own_ctx = 1;
    }
    c->sock = zmq_socket(c->ctx, ZMQ_ROUTER);
    int64_t maxmsg = c->limits.max_tensor + 1;
    int linger = 0, hwm = 0, mandatory = 0;
    zmq_setsockopt(c->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    zmq_setsockopt(c->sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(c->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(c->sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(c->sock, ZMQ_ROUTER_MANDATORY, &mandatory, sizeof mandatory);
    if (zmq_bind(c->sock, o->listen) != 0) {
        rc = log_error_rc(ENC_EIO, "cannot listen on '%s': %s", o->listen, zmq_strerror(errno));
        goto fail;
    }
    log_info("listening on %s, state in %s", o->listen, o->state_dir);
    *out = c;
    return 0;
fail:
    coordinator_destroy(&c);
    return rc;
}

void coordinator_stop(struct coordinator *c)
{
    c->stop = 1;
}

void coordinator_get_stats(const struct coordinator *c, struct coordinator_stats *st)
{
    *st = c->st;
}

/* end_turn(): make the turn durable (latent stores, then the database), then
 * send what it produced. */
static int end_turn(struct coordinator *c)
{
    size_t n;
    struct sched_job *const *jobs = sched_jobs(c->sched, &n);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        struct sched_job *j = jobs[i];
        if (!j->lf)
            continue;
        if (latent_file_sync(j->lf, c->o.durable))
            rc = ENC_EIO;
        if (j->state != SCHED_JOB_QUEUED && j->state != SCHED_JOB_RUNNING)
            latent_file_close(&j->lf);
    }
    write_windows(c);
    if (rc || c->db_error) {
        /* Nothing of this turn is acknowledged; the process must stop. */
        return log_error_rc(rc ? rc : ENC_EDB, "cannot make state durable: stopping");
    }
    for (size_t i = 0; i < n; i++)
        if (jobs[i]->state == SCHED_JOB_RUNNING)
            store_job_update(c->store, &jobs[i]->row);
    if ((rc = store_commit(c->store)))
        return rc;
    c->st.batches++;
    flush(c);
    return 0;
}

/*
 * One turn = one transaction. A turn opens with the first message after a
 * commit and gathers what arrives for up to commit_ms (results are applied
 * and new tasks sent as they come); then the latent stores are synced, the
 * database commits and the acks leave. Under load this turns thousands of
 * results per second into a few hundred commits; an idle wake-up commits at
 * once.
 */
int coordinator_run(struct coordinator *c)
{
    struct wire_msg m;
    uint8_t rid[WIRE_RID_MAX];
    size_t rid_len;
    char err[WIRE_ERR_MAX];
    int64_t last_expire = now_ms();
    int64_t turn_start = -1; /* when the open turn got its first message */
    while (!c->stop) {
        zmq_pollitem_t it = {.socket = c->sock, .events = ZMQ_POLLIN};
        long timeout = 100;
        if (turn_start >= 0) {
            int64_t left = turn_start + c->o.commit_ms - now_ms();
            timeout = left > 0 ? (long)left : 0;
        }
        int pr = zmq_poll(&it, 1, timeout);
        if (pr < 0 && errno != EINTR)
            return log_error_rc(ENC_EIO, "poll failed: %s", zmq_strerror(errno));
        if (store_begin(c->store))
            return ENC_EDB;
        int got = 0;
        for (int i = 0; i < BATCH_MAX; i++) {
            int rc = wire_recv(c->sock, rid, &rid_len, ZMQ_DONTWAIT, &c->limits, &m, err,
                               sizeof err);
            if (rc == ENC_ETIMEOUT || rc == ENC_EIO)
                break;
            if (rc == ENC_EWIRE) {
                c->st.bad_messages++;
                reply_error(c, rid, rid_len, 0, ENC_EWIRE, "%s", err);
                continue;
            }
            if (result_needs_commit(c, &m)) {
                /* This window already moved in the open turn: commit that
                 * first, so the store never holds two uncommitted steps. */
                int erc = end_turn(c);
                if (erc || store_begin(c->store)) {
                    wire_msg_release(&m);
                    return erc ? erc : ENC_EDB;
                }
                turn_start = now_ms();
            }
            handle(c, rid, rid_len, &m);
            wire_msg_release(&m);
            got++;
        }
        int64_t now = now_ms();
        if (now - last_expire >= 100) {
            sched_expire(c->sched, now, c->o.lease_ms);
            last_expire = now;
        }
        dispatch(c);
        flush_tasks(c);
        if (got > 0 && turn_start < 0)
            turn_start = now;
        if (got > 0 && c->o.commit_ms > 0 && now - turn_start < c->o.commit_ms && !c->stop)
            continue; /* keep gathering: the acks wait, the tasks are out */
        turn_start = -1;
        int rc = end_turn(c);
        if (rc)
            return rc;
    }
    return turn_start >= 0 ? end_turn(c) : 0; /* stopped while gathering */
}

void coordinator_destroy(struct coordinator **pc)
{
    struct coordinator *c = *pc;
    if (!c)
        return;
    for (size_t i = 0; i < c->n_out; i++) {
        wire_msg_release(&c->out[i].m);
        free(c->out[i].buf);
    }
    free(c->out);
    free(c->dirty);
    free(c->seen);
    if (c->sock)
        zmq_close(c->sock);
    if (c->own_ctx)
        zmq_ctx_term(c->ctx);
    sched_destroy(&c->sched);
    store_close(&c->store);
    free(c->state_dir);
    free(c);
    *pc = NULL;
}
