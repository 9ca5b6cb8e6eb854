/*
 * scheduler.c - wavefront readiness, dispatch, results and blending (see
 * scheduler.h for the state machine and its invariants).
 *
 * Ready tasks sit in one binary heap per model, ordered by (priority desc,
 * ready sequence asc). Entries are invalidated lazily: an entry is live only
 * while its window is READY with the same ready_seq, so requeues and
 * cancels never search the heap.
 */
#include "scheduler.h"

#include <assert.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/bf16.h"
#include "common/blend.h"
#include "common/err.h"
#include "common/log.h"
#include "common/xmalloc.h"

struct heap_entry {
    int priority;
    uint64_t seq;
    struct sched_job *job;
    int64_t k;
};

struct queue {
    char model[WIRE_NAME_MAX];
    struct heap_entry *e;
    size_t n, cap;
};

struct sched {
    struct sched_hooks hooks;
    void *ctx;
    struct sched_job **jobs;
    size_t n_jobs, cap_jobs;
    struct sched_worker **workers;
    size_t n_workers, cap_workers;
    struct queue *queues;
    int n_queues;
    uint64_t seq;
    uint64_t next_worker_id;
};

/* ---- heap ---------------------------------------------------------------- */

static int before(const struct heap_entry *a, const struct heap_entry *b)
{
    return a->priority != b->priority ? a->priority > b->priority : a->seq < b->seq;
}

static void heap_push(struct queue *q, struct heap_entry e)
{
    if (q->n == q->cap) {
        q->cap = q->cap ? q->cap * 2 : 256;
        q->e = xrealloc(q->e, sizeof *q->e * q->cap);
    }
    size_t i = q->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(&e, &q->e[p]))
            break;
        q->e[i] = q->e[p];
        i = p;
    }
    q->e[i] = e;
}

static void heap_pop(struct queue *q)
{
    struct heap_entry last = q->e[--q->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= q->n)
            break;
        if (c + 1 < q->n && before(&q->e[c + 1], &q->e[c]))
            c++;
        if (!before(&q->e[c], &last))
            break;
        q->e[i] = q->e[c];
        i = c;
    }
    if (q->n)
        q->e[i] = last;
}

static int entry_live(const struct heap_entry *e)
{
    const struct sched_job *j = e->job;
    return (j->state == SCHED_JOB_QUEUED || j->state == SCHED_JOB_RUNNING) &&
           j->win[e->k].state == SCHED_WIN_READY && j->win[e->k].ready_seq == e->seq;
}

/* queue_top() drops dead entries and returns the live top, or NULL. */
static struct heap_entry *queue_top(struct queue *q)
{
    while (q->n && !entry_live(&q->e[0]))
        heap_pop(q);
    return q->n ? &q->e[0] : NULL;
}

static int queue_of(struct sched *s, const char *model)
{
    for (int i = 0; i < s->n_queues; i++)
        if (strcmp(s->queues[i].model, model) == 0)
            return i;
    s->queues = xrealloc(s->queues, sizeof *s->queues * (size_t)(s->n_queues + 1));
    memset(&s->queues[s->n_queues], 0, sizeof s->queues[0]);
    snprintf(s->queues[s->n_queues].model, WIRE_NAME_MAX, "%s", model);
    return s->n_queues++;
}

/* ---- lifecycle ------------------------------------------------------------ */

struct sched *sched_new(const struct sched_hooks *hooks, void *ctx)
{
    struct sched *s = xcalloc(1, sizeof *s);
    if (hooks)
        s->hooks = *hooks;
    s->ctx = ctx;
    s->next_worker_id = 1;
    return s;
}

static void job_free(struct sched_job *j)
{
    latent_file_close(&j->lf);
    free(j->win);
    free(j);
}

void sched_destroy(struct sched **ps)
{
    struct sched *s = *ps;
    if (!s)
        return;
    for (size_t i = 0; i < s->n_jobs; i++)
        job_free(s->jobs[i]);
    for (size_t i = 0; i < s->n_workers; i++)
        free(s->workers[i]);
    for (int i = 0; i < s->n_queues; i++)
        free(s->queues[i].e);
    free(s->queues);
    free(s->jobs);
    free(s->workers);
    free(s);
    *ps = NULL;
}

const char *sched_job_state_name(enum sched_job_state st)
{
    static const char *names[] = {"queued", "running", "done", "failed", "cancelled"};
    return names[st];
}

static enum sched_job_state state_from_name(const char *n)
{
    for (int i = 0; i <= SCHED_JOB_CANCELLED; i++)
        if (strcmp(n, sched_job_state_name((enum sched_job_state)i)) == 0)
            return (enum sched_job_state)i;
    return SCHED_JOB_FAILED;
}

uint64_t sched_task_id(const struct sched_job *j, int64_t k, int step)
{
    return 1 + (uint64_t)k * (uint64_t)j->row.params.steps + (uint64_t)step;
}

static void set_job_state(struct sched *s, struct sched_job *j, enum sched_job_state st)
{
    j->state = st;
    snprintf(j->row.state, sizeof j->row.state, "%s", sched_job_state_name(st));
    if (s->hooks.job_changed)
        s->hooks.job_changed(s->ctx, j);
}

static void window_changed(struct sched *s, struct sched_job *j, int64_t k)
{
    if (s->hooks.window_changed)
        s->hooks.window_changed(s->ctx, j, k);
}

/* ---- readiness and blending ---------------------------------------------- */

static struct sched_worker *worker_by_id(struct sched *s, uint64_t id)
{
    for (size_t i = 0; i < s->n_workers; i++)
        if (s->workers[i]->id == id)
            return s->workers[i];
    return NULL;
}

static void make_ready(struct sched *s, struct sched_job *j, int64_t k)
{
    struct sched_window *w = &j->win[k];
    w->state = SCHED_WIN_READY;
    w->ready_seq = ++s->seq;
    heap_push(&s->queues[j->queue],
              (struct heap_entry){.priority = j->row.priority, .seq = w->ready_seq, .job = j, .k = k});
    if (w->last_worker) {
        struct sched_worker *lw = worker_by_id(s, w->last_worker);
        if (lw) {
            if (lw->n_pref == (int)(sizeof lw->pref / sizeof lw->pref[0])) {
                memmove(&lw->pref[0], &lw->pref[1], sizeof lw->pref[0] * (size_t)(lw->n_pref - 1));
                lw->n_pref--;
            }
            lw->pref[lw->n_pref].job = j;
            lw->pref[lw->n_pref].k = k;
            lw->pref[lw->n_pref].seq = w->ready_seq;
            lw->n_pref++;
        }
    }
}

/* check_ready(): window k waits for step final+1; ready when every
 * overlapping window has finished step final (the wavefront rule). */
static void check_ready(struct sched *s, struct sched_job *j, int64_t k)
{
    struct sched_window *w = &j->win[k];
    if (w->state != SCHED_WIN_WAITING || w->received_step != w->final_step ||
        w->final_step >= j->row.params.steps - 1)
        return;
    for (int64_t i = w->lo; i <= w->hi; i++)
        if (j->win[i].final_step < w->final_step)
            return;
    make_ready(s, j, k);
}

/* finalize(): v_k at step s becomes final: blend the head kept in f32 with
 * v_{k-1} (bf16, same parity) per DESIGN 2. */
static void finalize(struct sched *s, struct sched_job *j, int64_t k, int step)
{
    struct sched_window *w = &j->win[k];
    int O = j->row.params.overlap;
    int par = step & 1;
    if (k > 0 && step > 0 && O > 0) {
        uint16_t *slot = latent_file_slot(j->lf, par, k);
        const uint16_t *prev = latent_file_slot(j->lf, par, k - 1);
        const float *head = latent_file_head(j->lf, k);
        int64_t off = w->start - j->win[k - 1].start;
        for (int f = 0; f < O; f++)
            blend_frame(slot + f * j->fs, head + f * j->fs, prev + (off + f) * j->fs,
                        j->weights[f], j->fs);
        latent_file_note_write(j->lf, O * j->fs * 2);
    }
    w->final_step = step;
    if (step == j->row.params.steps - 1) {
        w->state = SCHED_WIN_DONE;
        j->windows_done++;
    }
    window_changed(s, j, k);
}

static int can_finalize(const struct sched_job *j, int64_t k)
{
    const struct sched_window *w = &j->win[k];
    int step = w->received_step;
    if (step != w->final_step + 1)
        return 0;
    return k == 0 || step == 0 || j->win[k - 1].final_step >= step;
}

/* advance(): finalize window k and every successor the chain unblocks, then
 * wake the windows around them; finish the job when all are done. */
static void advance(struct sched *s, struct sched_job *j, int64_t k)
{
    int64_t first = k, last = k - 1;
    while (k < j->n_windows && can_finalize(j, k)) {
        int step = j->win[k].received_step;
        finalize(s, j, k, step);
        last = k;
        k++;
        if (step == 0)
            break; /* no blend at step 0: successors do not wait on us */
    }
    if (last < first)
        return;
    for (int64_t i = j->win[first].lo; i <= j->win[last].hi; i++)
        check_ready(s, j, i);
    if (j->windows_done == j->n_windows && j->state == SCHED_JOB_RUNNING) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        j->row.finished_at = (double)ts.tv_sec + ts.tv_nsec * 1e-9;
        set_job_state(s, j, SCHED_JOB_DONE);
    }
}

int sched_add_job(struct sched *s, const struct store_job *row, const struct store_window *w,
                  struct latent_file **lf, struct sched_job **out)
{
    struct sched_job *j = xcalloc(1, sizeof *j);
    int O = row->params.overlap;
    j->row = *row;
    j->lf = *lf;
    *lf = NULL;
    j->state = state_from_name(row->state);
    j->n_windows = row->n_windows;
    j->h = row->params.height / 8;
    j->w = row->params.width / 8;
    j->fs = LATENT_CHANNELS * j->h * j->w;
    j->tasks_total = j->n_windows * row->params.steps;
    j->blend_scheme = blend_parse_scheme(row->params.blend);
    if (j->blend_scheme < 0 || O < 0 || O > 64 || row->params.steps < 1 || j->fs < 1) {
        job_free(j);
        return log_error_rc(ENC_EINVAL, "job %llu: inconsistent parameters",
                            (unsigned long long)row->id);
    }
    blend_weights((enum blend_scheme)j->blend_scheme, O, j->weights);
    j->win = xcalloc((size_t)j->n_windows, sizeof *j->win);
    for (int64_t k = 0; k < j->n_windows; k++) {
        struct sched_window *x = &j->win[k];
        x->start = w[k].start;
        x->len = w[k].len;
        x->received_step = w[k].received_step;
        x->final_step = w[k].final_step;
        /* Any attempt handed out before a restart is void. */
        x->attempt = w[k].attempt + 1;
        x->state = x->final_step == row->params.steps - 1 ? SCHED_WIN_DONE : SCHED_WIN_WAITING;
        if (x->state == SCHED_WIN_DONE)
            j->windows_done++;
        j->tasks_done += x->received_step + 1;
    }
    for (int64_t k = 0; k < j->n_windows; k++) {
        struct sched_window *x = &j->win[k];
        x->lo = k;
        while (x->lo > 0 && j->win[x->lo - 1].start + j->win[x->lo - 1].len > x->start)
            x->lo--;
        x->hi = k;
        while (x->hi + 1 < j->n_windows && j->win[x->hi + 1].start < x->start + x->len)
            x->hi++;
    }
    j->queue = queue_of(s, row->params.model);
    if (s->n_jobs == s->cap_jobs) {
        s->cap_jobs = s->cap_jobs ? 2 * s->cap_jobs : 16;
        s->jobs = xrealloc(s->jobs, sizeof *s->jobs * s->cap_jobs);
    }
    s->jobs[s->n_jobs++] = j;
    if ((j->state == SCHED_JOB_QUEUED || j->state == SCHED_JOB_RUNNING) && j->lf) {
        /* Blends a crash left pending, then the ready set. */
        for (int64_t k = 0; k < j->n_windows; k++)
            if (can_finalize(j, k))
                advance(s, j, k);
        for (int64_t k = 0; k < j->n_windows; k++)
            check_ready(s, j, k);
    }
    *out = j;
    return 0;
}

struct sched_job *sched_job_find(struct sched *s, uint64_t id)
{
    size_t lo = 0, hi = s->n_jobs;
    while (lo < hi) { /* ids increase with insertion */
        size_t mid = (lo + hi) / 2;
        if (s->jobs[mid]->row.id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->n_jobs && s->jobs[lo]->row.id == id ? s->jobs[lo] : NULL;
}

struct sched_job *const *sched_jobs(struct sched *s, size_t *n)
{
    *n = s->n_jobs;
    return s->jobs;
}

int sched_cancel(struct sched *s, struct sched_job *j)
{
    if (j->state != SCHED_JOB_QUEUED && j->state != SCHED_JOB_RUNNING)
        return log_error_rc(ENC_EINVAL, "job %llu is already %s", (unsigned long long)j->row.id,
                            sched_job_state_name(j->state));
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    j->row.finished_at = (double)ts.tv_sec + ts.tv_nsec * 1e-9;
    set_job_state(s, j, SCHED_JOB_CANCELLED);
    return 0;
}

/* ---- workers --------------------------------------------------------------- */

struct sched_worker *sched_worker_add(struct sched *s, const struct wire_hello *h,
                                      const uint8_t *rid, size_t rid_len, int64_t now_ms,
                                      double now)
{
    struct sched_worker *w = xcalloc(1, sizeof *w);
    w->id = s->next_worker_id++;
    memcpy(w->name, h->name, sizeof w->name);
    memcpy(w->backend, h->backend, sizeof w->backend);
    memcpy(w->device, h->device, sizeof w->device);
    w->n_models = h->n_models;
    memcpy(w->models, h->models, sizeof w->models);
    memcpy(w->rid, rid, rid_len);
    w->rid_len = rid_len;
    w->last_seen_ms = now_ms;
    w->connected_at = now;
    if (s->n_workers == s->cap_workers) {
        s->cap_workers = s->cap_workers ? 2 * s->cap_workers : 16;
        s->workers = xrealloc(s->workers, sizeof *s->workers * s->cap_workers);
    }
    s->workers[s->n_workers++] = w;
    return w;
}

struct sched_worker *sched_worker_by_rid(struct sched *s, const uint8_t *rid, size_t rid_len)
{
    for (size_t i = 0; i < s->n_workers; i++)
        if (s->workers[i]->rid_len == rid_len && memcmp(s->workers[i]->rid, rid, rid_len) == 0)
            return s->workers[i];
    return NULL;
}

struct sched_worker *const *sched_workers(struct sched *s, size_t *n)
{
    *n = s->n_workers;
    return s->workers;
}

void sched_worker_credit(struct sched *s, struct sched_worker *w, int n)
{
    (void)s;
    w->credits += n;
    if (w->credits + w->n_running > SCHED_MAX_CREDITS)
        w->credits = SCHED_MAX_CREDITS - w->n_running;
    if (w->credits < 0)
        w->credits = 0;
}

/* task_of(): decode a reference into job/window/step; 0 if it names none. */
static int task_of(struct sched *s, const struct sched_ref *r, struct sched_task *t)
{
    struct sched_job *j = sched_job_find(s, r->job_id);
    if (!j || r->task_id < 1 || r->task_id > (uint64_t)j->tasks_total)
        return 0;
    t->job = j;
    t->k = (int64_t)((r->task_id - 1) / (uint64_t)j->row.params.steps);
    t->step = (int)((r->task_id - 1) % (uint64_t)j->row.params.steps);
    t->attempt = r->attempt;
    t->task_id = r->task_id;
    t->base_step = -1;
    return 1;
}

void sched_requeue(struct sched *s, const struct sched_task *t)
{
    struct sched_job *j = t->job;
    struct sched_window *w = &j->win[t->k];
    if (w->state != SCHED_WIN_RUNNING)
        return;
    w->attempt++;
    w->owner = 0;
    w->state = SCHED_WIN_WAITING;
    j->row.requeued++;
    if (s->hooks.task_requeued)
        s->hooks.task_requeued(s->ctx, j, t->k, t->step);
    window_changed(s, j, t->k);
    if (j->state == SCHED_JOB_QUEUED || j->state == SCHED_JOB_RUNNING)
        make_ready(s, j, t->k);
}

void sched_worker_remove(struct sched *s, struct sched_worker **pw)
{
    struct sched_worker *w = *pw;
    for (int i = 0; i < w->n_running; i++) {
        struct sched_task t;
        if (task_of(s, &w->running[i], &t) && t.job->win[t.k].owner == w->id &&
            t.job->win[t.k].attempt == t.attempt)
            sched_requeue(s, &t);
    }
    for (size_t i = 0; i < s->n_workers; i++) {
        if (s->workers[i] == w) {
            s->workers[i] = s->workers[--s->n_workers];
            break;
        }
    }
    free(w);
    *pw = NULL;
}

int sched_expire(struct sched *s, int64_t now_ms, int64_t lease_ms)
{
    int n = 0;
    for (size_t i = 0; i < s->n_workers;) {
        struct sched_worker *w = s->workers[i];
        if (now_ms - w->last_seen_ms > lease_ms) {
            log_warn("worker '%s' (id %llu) missed its lease; requeuing %d task(s)", w->name,
                     (unsigned long long)w->id, w->n_running);
            sched_worker_remove(s, &w);
            n++;
        } else {
            i++;
        }
    }
    return n;
}

static int holds_model(const struct sched_worker *w, const char *model)
{
    for (int i = 0; i < w->n_models; i++)
        if (strcmp(w->models[i], model) == 0)
            return 1;
    return 0;
}

int sched_next(struct sched *s, struct sched_worker *w, struct sched_task *t)
{
    struct heap_entry *best = NULL;
    int best_q = -1;
    struct sched_job *j = NULL;
    int64_t k = -1;
    if (w->credits <= 0 || w->n_running >= SCHED_MAX_CREDITS)
        return 0;
    for (int q = 0; q < s->n_queues; q++) {
        if (!holds_model(w, s->queues[q].model))
            continue;
        struct heap_entry *e = queue_top(&s->queues[q]);
        if (e && (!best || before(e, best))) {
            best = e;
            best_q = q;
        }
    }
    /* Affinity: a window this worker ran last, if it is as urgent. */
    while (w->n_pref > 0) {
        struct heap_entry pe = {.priority = w->pref[0].job->row.priority,
                                .seq = w->pref[0].seq, .job = w->pref[0].job, .k = w->pref[0].k};
        memmove(&w->pref[0], &w->pref[1], sizeof w->pref[0] * (size_t)(w->n_pref - 1));
        w->n_pref--;
        if (!entry_live(&pe) || (best && pe.priority < best->priority))
            continue;
        j = pe.job;
        k = pe.k;
        break;
    }
    if (!j) {
        if (!best)
            return 0;
        j = best->job;
        k = best->k;
        heap_pop(&s->queues[best_q]);
    }
    struct sched_window *win = &j->win[k];
    win->state = SCHED_WIN_RUNNING;
    win->owner = w->id;
    t->job = j;
    t->k = k;
    t->step = win->final_step + 1;
    t->attempt = win->attempt;
    t->task_id = sched_task_id(j, k, t->step);
    t->base_step = (win->last_worker == w->id && t->step > 0) ? t->step - 1 : -1;
    w->running[w->n_running++] =
        (struct sched_ref){.job_id = j->row.id, .task_id = t->task_id, .attempt = t->attempt};
    w->credits--;
    if (j->state == SCHED_JOB_QUEUED) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        j->row.started_at = (double)ts.tv_sec + ts.tv_nsec * 1e-9;
        set_job_state(s, j, SCHED_JOB_RUNNING);
    }
    return 1;
}

/* last_window_of(): the last window containing frame f (largest start <= f). */
static int64_t last_window_of(const struct sched_job *j, int64_t f)
{
    int64_t lo = 0, hi = j->n_windows - 1;
    while (lo < hi) {
        int64_t mid = (lo + hi + 1) / 2;
        if (j->win[mid].start <= f)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

int sched_task_input(struct sched_job *j, int64_t k, int step, int base_step, uint16_t *buf,
                     int32_t *sent)
{
    const struct sched_window *w = &j->win[k];
    int par = (step - 1) & 1;
    int O = j->row.params.overlap;
    int n = 0;
    for (int64_t i = 0; i < w->len; i++) {
        int64_t f = w->start + i;
        int64_t K = last_window_of(j, f);
        /* Frames still equal to the worker's own bf16 output of base_step:
         * its own, not overwritten by a later window, not blended. */
        if (base_step >= 0 && K == k && !(k > 0 && base_step > 0 && i < O))
            continue;
        const uint16_t *src = latent_file_slot(j->lf, par, K) + (f - j->win[K].start) * j->fs;
        memcpy(buf + (int64_t)n * j->fs, src, sizeof(uint16_t) * (size_t)j->fs);
        sent[n++] = (int32_t)i;
    }
    return n;
}

enum sched_verdict sched_check_result(struct sched *s, struct sched_worker *w,
                                      const struct sched_ref *r, struct sched_task *t)
{
    int held = -1;
    if (w) {
        for (int i = 0; i < w->n_running; i++)
            if (w->running[i].job_id == r->job_id && w->running[i].task_id == r->task_id &&
                w->running[i].attempt == r->attempt)
                held = i;
    }
    if (held >= 0) {
        w->running[held] = w->running[--w->n_running];
        w->credits++;
    }
    if (!sched_job_find(s, r->job_id))
        return SCHED_UNKNOWN_JOB;
    if (!task_of(s, r, t))
        return SCHED_UNKNOWN_TASK;
    struct sched_job *j = t->job;
    struct sched_window *win = &j->win[t->k];
    if (held >= 0 && (j->state == SCHED_JOB_QUEUED || j->state == SCHED_JOB_RUNNING)) {
        assert(win->state == SCHED_WIN_RUNNING && win->attempt == r->attempt &&
               win->final_step + 1 == t->step);
        return SCHED_OK;
    }
    if (held >= 0 || j->state > SCHED_JOB_RUNNING || t->step <= win->received_step ||
        r->attempt < win->attempt)
        return SCHED_STALE;
    return SCHED_NOT_HELD;
}

void sched_accept(struct sched *s, const struct sched_task *t, const float *out, uint64_t by)
{
    struct sched_job *j = t->job;
    struct sched_window *w = &j->win[t->k];
    int O = j->row.params.overlap;
    int n_head = (t->k > 0 && t->step > 0) ? O : 0;
    uint16_t *slot = latent_file_slot(j->lf, t->step & 1, t->k);
    if (n_head)
        memcpy(latent_file_head(j->lf, t->k), out, sizeof(float) * (size_t)(n_head * j->fs));
    for (int64_t i = (int64_t)n_head * j->fs; i < w->len * j->fs; i++)
        slot[i] = f32_to_bf16(out[i]);
    latent_file_note_write(j->lf, w->len * j->fs * 2 + n_head * j->fs * 4);
    w->received_step = t->step;
    w->state = SCHED_WIN_WAITING;
    w->owner = 0;
    w->last_worker = by;
    j->tasks_done++;
    struct sched_worker *bw = worker_by_id(s, by);
    if (bw)
        bw->tasks_done++;
    window_changed(s, j, t->k);
    advance(s, j, t->k);
    assert(sched_check(j));
}

const uint16_t *sched_final_frame(struct sched_job *j, int64_t f)
{
    int64_t K = last_window_of(j, f);
    int par = (j->row.params.steps - 1) & 1;
    return latent_file_slot(j->lf, par, K) + (f - j->win[K].start) * j->fs;
}

int sched_check(const struct sched_job *j)
{
    for (int64_t k = 0; k < j->n_windows; k++) {
        const struct sched_window *w = &j->win[k];
        if (w->received_step < w->final_step || w->received_step > w->final_step + 1)
            return 0;
        if (w->state == SCHED_WIN_READY || w->state == SCHED_WIN_RUNNING) {
            for (int64_t i = w->lo; i <= w->hi; i++)
                if (j->win[i].final_step < w->final_step)
                    return 0;
        }
        if (k > 0 && w->final_step > 0 && j->win[k - 1].final_step < w->final_step)
            return 0;
    }
    return 1;
}

int64_t sched_pending(struct sched *s)
{
    int64_t n = 0;
    for (size_t i = 0; i < s->n_jobs; i++) {
        const struct sched_job *j = s->jobs[i];
        if (j->state != SCHED_JOB_QUEUED && j->state != SCHED_JOB_RUNNING)
            continue;
        for (int64_t k = 0; k < j->n_windows; k++)
            n += j->win[k].state == SCHED_WIN_READY;
    }
    return n;
}
