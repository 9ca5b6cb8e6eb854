/*
 * scheduler.c - wavefront readiness, dispatch, results and blending (see
 * scheduler.h for the state machine and its invariants).
 *
 * Ready tasks sit in one binary heap per model, ordered by (priority desc,
 * ready sequence asc). Entries are invalidated lazily: an entry is live only
 * while its window is READY with the same ready_seq, so requeues and
 * cancels never search the heap.
 *
 * Latent I/O goes through latent_file_write_X and _read_X (pwrite/pread, no page
 * faults). A result carries its first min(O, len) frames in f32 and the
 * others already rounded to bf16 (stored as received). A result whose
 * predecessor is already final at that step is blended straight from the
 * received f32 head and written once. A result that must wait keeps its
 * first O frames in f32 in memory (win->head_mem, within SCHED_HEAD_MEMORY,
 * not durable: its window's row says not received) or else in the store's
 * head area (so after a crash, a row with received_step == final_step + 1,
 * k > 0 and step > 0 means exactly "the head is in the store"). Per result
 * the work is O(window length + overlapping windows), never O(windows).
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
    uint16_t *buf16, *prev16; /* scratch: a window of bf16 frames; O frames */
    size_t head_mem_bytes;    /* all windows' head_mem */
    size_t head_mem_cap;      /* SCHED_HEAD_MEMORY unless set */
    float *head32;            /* scratch: O frames of f32 */
    size_t cap16, cap_prev, cap_head;
};

/* ---- heap ---------------------------------------------------------------- */

/* Within a priority, prepare and decode tasks (k < 0) go before denoise:
 * they unblock a whole job, and chunks decoded early are video early. */
static int before(const struct heap_entry *a, const struct heap_entry *b)
{
    if (a->priority != b->priority)
        return a->priority > b->priority;
    if ((a->k < 0) != (b->k < 0))
        return a->k < 0;
    return a->seq < b->seq;
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

/* unit_of(): heap key k < 0 names the prepare task (-1) or decode segment -2 - k. */
static struct sched_unit *unit_of(const struct sched_job *j, int64_t k)
{
    return k == -1 ? (struct sched_unit *)&j->prep : &j->seg[-2 - k];
}

static int entry_live(const struct heap_entry *e)
{
    const struct sched_job *j = e->job;
    if (j->state != SCHED_JOB_QUEUED && j->state != SCHED_JOB_RUNNING)
        return 0;
    if (e->k < 0) {
        const struct sched_unit *u = unit_of(j, e->k);
        return u->state == SCHED_WIN_READY && u->ready_seq == e->seq;
    }
    return j->win[e->k].state == SCHED_WIN_READY && j->win[e->k].ready_seq == e->seq;
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
    s->head_mem_cap = SCHED_HEAD_MEMORY;
    return s;
}

static void job_free(struct sched_job *j)
{
    for (int64_t k = 0; k < j->n_windows; k++)
        free(j->win[k].head_mem);
    latent_file_close(&j->lf);
    free(j->seg);
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
    free(s->buf16);
    free(s->prev16);
    free(s->head32);
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
    if (k < 0) /* prepare, decode */
        return (uint64_t)(j->n_windows * j->row.params.steps) + (uint64_t)(-k);
    return 1 + (uint64_t)k * (uint64_t)j->row.params.steps + (uint64_t)step;
}

void sched_task_store_key(const struct sched_task *t, int64_t *k, int *step)
{
    *k = t->kind == WIRE_TASK_PREPARE ? -1 : t->kind == WIRE_TASK_DECODE ? -2 : t->k;
    *step = t->kind == WIRE_TASK_DECODE ? (int)t->seg : t->kind == WIRE_TASK_PREPARE ? 0 : t->step;
}

static void drop_head(struct sched *s, struct sched_job *j, struct sched_window *w)
{
    if (!w->head_mem)
        return;
    free(w->head_mem);
    w->head_mem = NULL;
    s->head_mem_bytes -= sizeof(float) * (size_t)(j->row.params.overlap * j->fs);
}

static void set_job_state(struct sched *s, struct sched_job *j, enum sched_job_state st)
{
    j->state = st;
    if (st != SCHED_JOB_QUEUED && st != SCHED_JOB_RUNNING)
        for (int64_t k = 0; k < j->n_windows; k++)
            drop_head(s, j, &j->win[k]); /* never to be blended */
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

static void make_unit_ready(struct sched *s, struct sched_job *j, int64_t k)
{
    struct sched_unit *u = unit_of(j, k);
    u->state = SCHED_WIN_READY;
    u->ready_seq = ++s->seq;
    heap_push(&s->queues[j->queue],
              (struct heap_entry){.priority = j->row.priority, .seq = u->ready_seq, .job = j, .k = k});
}

static int64_t last_window_of(const struct sched_job *j, int64_t f);

/* check_segs(): decode segments whose latents, warm-up included, are final. */
static void check_segs(struct sched *s, struct sched_job *j)
{
    for (int64_t i = 0; i < j->n_segs; i++) {
        struct sched_unit *u = &j->seg[i];
        if (u->state != SCHED_WIN_WAITING)
            continue;
        int64_t lo = u->a - j->warmup > 0 ? u->a - j->warmup : 0, ready = 1;
        for (int64_t k = last_window_of(j, u->b - 1);
             k >= 0 && j->win[k].start + j->win[k].len > lo; k--)
            if (j->win[k].state != SCHED_WIN_DONE) {
                ready = 0;
                break;
            }
        if (ready)
            make_unit_ready(s, j, -2 - i);
    }
}

/* check_ready(): window k waits for step final+1; ready when every
 * overlapping window has finished step final (the wavefront rule). */
static void check_ready(struct sched *s, struct sched_job *j, int64_t k)
{
    struct sched_window *w = &j->win[k];
    if (w->state != SCHED_WIN_WAITING || w->received_step != w->final_step ||
        w->final_step >= j->row.params.steps - 1 ||
        (j->has_prepare && j->prep.state != SCHED_WIN_DONE))
        return;
    for (int64_t i = w->lo; i <= w->hi; i++)
        if (j->win[i].final_step < w->final_step)
            return;
    make_ready(s, j, k);
}

static void *scratch(void *p, size_t *cap, size_t bytes)
{
    if (*cap < bytes) {
        p = xrealloc(p, bytes);
        *cap = bytes;
    }
    return p;
}

/* blend_head(): the first O frames of v_k at step (head: f32 [O][fs]) blended
 * with v_{k-1} of the same parity (read from the store) into dst bf16 [O][fs]
 * (DESIGN 2). */
static void blend_head(struct sched *s, struct sched_job *j, int64_t k, int step,
                       const float *head, uint16_t *dst)
{
    int O = j->row.params.overlap;
    int64_t off = j->win[k].start - j->win[k - 1].start;
    s->prev16 = scratch(s->prev16, &s->cap_prev, sizeof(uint16_t) * (size_t)(O * j->fs));
    latent_file_read_slot(j->lf, step & 1, k - 1, off, s->prev16, O);
    for (int f = 0; f < O; f++)
        blend_frame(dst + f * j->fs, head + f * j->fs, s->prev16 + f * j->fs, j->weights[f],
                    j->fs);
}

/* finalize(): v_k at step s becomes final. Unless the blend was already
 * applied (blended), blend the head kept in f32 in the store with v_{k-1}. */
static void finalize(struct sched *s, struct sched_job *j, int64_t k, int step, int blended)
{
    struct sched_window *w = &j->win[k];
    int O = j->row.params.overlap;
    if (k > 0 && step > 0 && O > 0 && !blended) {
        size_t n = (size_t)(O * j->fs);
        s->buf16 = scratch(s->buf16, &s->cap16, sizeof(uint16_t) * n);
        if (w->head_mem) {
            blend_head(s, j, k, step, w->head_mem, s->buf16);
            drop_head(s, j, w);
        } else {
            s->head32 = scratch(s->head32, &s->cap_head, sizeof(float) * n);
            latent_file_read_head(j->lf, k, s->head32, O);
            blend_head(s, j, k, step, s->head32, s->buf16);
        }
        latent_file_write_slot(j->lf, step & 1, k, 0, s->buf16, O);
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

/* advance(): finalize window k (already blended: blended) and every
 * successor the chain unblocks, then wake the windows around them; finish
 * the job when all are done. */
static void advance(struct sched *s, struct sched_job *j, int64_t k, int blended)
{
    int64_t first = k, last = k - 1, was_done = j->windows_done;
    while (k < j->n_windows && can_finalize(j, k)) {
        int step = j->win[k].received_step;
        finalize(s, j, k, step, k == first && blended);
        last = k;
        k++;
        if (step == 0)
            break; /* no blend at step 0: successors do not wait on us */
    }
    if (last < first)
        return;
    for (int64_t i = j->win[first].lo; i <= j->win[last].hi; i++)
        check_ready(s, j, i);
    if (j->windows_done > was_done && j->n_segs > 0)
        check_segs(s, j);
    if (j->windows_done == j->n_windows && j->state == SCHED_JOB_RUNNING && j->n_segs == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        j->row.finished_at = (double)ts.tv_sec + ts.tv_nsec * 1e-9;
        set_job_state(s, j, SCHED_JOB_DONE);
    }
}

int sched_add_job(struct sched *s, const struct store_job *row, const struct store_window *w,
                  struct latent_file **lf, struct sched_job **out)
{
    return sched_add_job_staged(s, row, w, lf, NULL, out);
}

int sched_add_job_staged(struct sched *s, const struct store_job *row,
                         const struct store_window *w, struct latent_file **lf,
                         const struct sched_stages *st, struct sched_job **out)
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
    if (st && st->prepare) {
        j->has_prepare = 1;
        j->prep.state = st->prepared ? SCHED_WIN_DONE : SCHED_WIN_WAITING;
        j->tasks_total++;
        j->tasks_done += st->prepared != 0;
    }
    if (st && st->seg_len > 0 && row->latent_frames > 0) {
        j->n_segs = (row->latent_frames + st->seg_len - 1) / st->seg_len;
        j->warmup = st->warmup;
        j->seg = xcalloc((size_t)j->n_segs, sizeof *j->seg);
        for (int64_t i = 0; i < j->n_segs; i++) {
            j->seg[i].a = i * st->seg_len;
            j->seg[i].b = (i + 1) * st->seg_len < row->latent_frames ? (i + 1) * st->seg_len
                                                                      : row->latent_frames;
            if (st->seg_done && st->seg_done[i]) {
                j->seg[i].state = SCHED_WIN_DONE;
                j->segs_done++;
            }
        }
        j->tasks_total += j->n_segs;
        j->tasks_done += j->segs_done;
    }
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
                advance(s, j, k, 0);
        for (int64_t k = 0; k < j->n_windows; k++)
            check_ready(s, j, k);
        if (j->has_prepare && j->prep.state == SCHED_WIN_WAITING)
            make_unit_ready(s, j, -1);
        if (j->n_segs > 0)
            check_segs(s, j);
        if (j->n_segs > 0 && j->segs_done == j->n_segs)
            j->outputs_ready = 1;
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

void sched_job_end(struct sched *s, struct sched_job *j, int ok, const char *msg)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    j->row.finished_at = (double)ts.tv_sec + ts.tv_nsec * 1e-9;
    j->outputs_ready = 0;
    if (!ok)
        snprintf(j->row.error, sizeof j->row.error, "%s", msg ? msg : "failed");
    set_job_state(s, j, ok ? SCHED_JOB_DONE : SCHED_JOB_FAILED);
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
    w->cache_windows = h->cache_windows > 4096 ? 4096 : (int)h->cache_windows;
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

struct sched_ref *sched_worker_holds(struct sched_worker *w, const struct sched_ref *r)
{
    for (int i = 0; i < w->n_running; i++)
        if (w->running[i].job_id == r->job_id && w->running[i].task_id == r->task_id &&
            w->running[i].attempt == r->attempt)
            return &w->running[i];
    return NULL;
}

/* task_of(): decode a reference into job/window/step; 0 if it names none. */
static int task_of(struct sched *s, const struct sched_ref *r, struct sched_task *t)
{
    struct sched_job *j = sched_job_find(s, r->job_id);
    if (!j || r->task_id < 1)
        return 0;
    uint64_t n_den = (uint64_t)(j->n_windows * j->row.params.steps);
    t->job = j;
    t->attempt = r->attempt;
    t->task_id = r->task_id;
    t->base_step = -1;
    t->seg = 0;
    t->step = 0;
    if (r->task_id <= n_den) {
        t->kind = WIRE_TASK_DENOISE;
        t->k = (int64_t)((r->task_id - 1) / (uint64_t)j->row.params.steps);
        t->step = (int)((r->task_id - 1) % (uint64_t)j->row.params.steps);
    } else if (r->task_id == n_den + 1 && j->has_prepare) {
        t->kind = WIRE_TASK_PREPARE;
        t->k = -1;
    } else if (r->task_id >= n_den + 2 && r->task_id < n_den + 2 + (uint64_t)j->n_segs) {
        t->kind = WIRE_TASK_DECODE;
        t->seg = (int64_t)(r->task_id - n_den - 2);
        t->k = -2 - t->seg;
    } else {
        return 0;
    }
    return 1;
}

/* task_holder(): owner and attempt of the task's window or unit, and
 * whether it is RUNNING. */
static int task_running_as(const struct sched_task *t, uint64_t owner, uint32_t attempt)
{
    if (t->k < 0) {
        const struct sched_unit *u = unit_of(t->job, t->k);
        return u->state == SCHED_WIN_RUNNING && u->owner == owner && u->attempt == attempt;
    }
    const struct sched_window *w = &t->job->win[t->k];
    return w->owner == owner && w->attempt == attempt;
}

void sched_requeue(struct sched *s, const struct sched_task *t)
{
    struct sched_job *j = t->job;
    if (t->k < 0) {
        struct sched_unit *u = unit_of(j, t->k);
        if (u->state != SCHED_WIN_RUNNING)
            return;
        u->attempt++;
        u->owner = 0;
        u->state = SCHED_WIN_WAITING;
        j->row.requeued++;
        if (s->hooks.task_requeued) {
            int64_t kk;
            int st;
            sched_task_store_key(t, &kk, &st);
            s->hooks.task_requeued(s->ctx, j, kk, st);
        }
        if (j->state == SCHED_JOB_QUEUED || j->state == SCHED_JOB_RUNNING)
            make_unit_ready(s, j, t->k);
        return;
    }
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
        if (task_of(s, &w->running[i], &t) && task_running_as(&t, w->id, t.attempt))
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
    /* Affinity: a window this worker ran last, if it is as urgent and its
     * last move is settled (hooks.settled: durable); an unsettled one
     * stays preferred for a later credit. */
    for (int i = 0; i < w->n_pref;) {
        struct heap_entry pe = {.priority = w->pref[i].job->row.priority,
                                .seq = w->pref[i].seq, .job = w->pref[i].job, .k = w->pref[i].k};
        int live = entry_live(&pe) && !(best && pe.priority < best->priority) &&
                   !(best && best->k < 0 && pe.priority == best->priority);
        if (live && s->hooks.settled && !s->hooks.settled(s->ctx, pe.job, pe.k)) {
            i++;
            continue;
        }
        memmove(&w->pref[i], &w->pref[i + 1], sizeof w->pref[0] * (size_t)(w->n_pref - i - 1));
        w->n_pref--;
        if (live) {
            j = pe.job;
            k = pe.k;
            break;
        }
    }
    if (!j) {
        if (!best)
            return 0;
        j = best->job;
        k = best->k;
        heap_pop(&s->queues[best_q]);
    }
    t->job = j;
    t->k = k;
    t->seg = 0;
    if (k < 0) {
        struct sched_unit *u = unit_of(j, k);
        u->state = SCHED_WIN_RUNNING;
        u->owner = w->id;
        t->kind = k == -1 ? WIRE_TASK_PREPARE : WIRE_TASK_DECODE;
        t->seg = k == -1 ? 0 : -2 - k;
        t->step = 0;
        t->attempt = u->attempt;
        t->task_id = sched_task_id(j, k, 0);
        t->base_step = -1;
    } else {
        struct sched_window *win = &j->win[k];
        win->state = SCHED_WIN_RUNNING;
        win->owner = w->id;
        t->kind = WIRE_TASK_DENOISE;
        t->step = win->final_step + 1;
        t->attempt = win->attempt;
        t->task_id = sched_task_id(j, k, t->step);
        /* The worker still holds its output of the last step if fewer
         * than cache_windows tasks end between that one and this one: it
         * runs its tasks in order and its cache is an LRU over the windows
         * it ran (counting tasks errs on the safe side). */
        t->base_step = (win->last_worker == w->id && t->step > 0 &&
                        w->tasks_done + w->n_running - win->last_worker_done <
                            w->cache_windows)
                           ? t->step - 1
                           : -1;
    }
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
    /* Consecutive frames of one source window are read with one pread. */
    int64_t run_K = -1, run_f = 0, run_n = 0, run_dst = 0;
    for (int64_t i = 0; i < w->len; i++) {
        int64_t f = w->start + i;
        int64_t K = last_window_of(j, f);
        /* Frames still equal to the worker's own bf16 output of base_step:
         * its own, not overwritten by a later window, not blended. */
        if (base_step >= 0 && K == k && !(k > 0 && base_step > 0 && i < O))
            continue;
        int64_t local = f - j->win[K].start;
        if (run_n > 0 && (K != run_K || local != run_f + run_n)) {
            latent_file_read_slot(j->lf, par, run_K, run_f, buf + run_dst * j->fs, run_n);
            run_n = 0;
        }
        if (run_n == 0) {
            run_K = K;
            run_f = local;
            run_dst = n;
        }
        run_n++;
        sent[n++] = (int32_t)i;
    }
    if (run_n > 0)
        latent_file_read_slot(j->lf, par, run_K, run_f, buf + run_dst * j->fs, run_n);
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
    if (t->k < 0) {
        const struct sched_unit *u = unit_of(j, t->k);
        if (held >= 0 && (j->state == SCHED_JOB_QUEUED || j->state == SCHED_JOB_RUNNING)) {
            assert(u->state == SCHED_WIN_RUNNING && u->attempt == r->attempt);
            return SCHED_OK;
        }
        if (held >= 0 || j->state > SCHED_JOB_RUNNING || u->state == SCHED_WIN_DONE ||
            r->attempt < u->attempt)
            return SCHED_STALE;
        return SCHED_NOT_HELD;
    }
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

void sched_accept_unit(struct sched *s, const struct sched_task *t, uint64_t by)
{
    struct sched_job *j = t->job;
    struct sched_unit *u = unit_of(j, t->k);
    u->state = SCHED_WIN_DONE;
    u->owner = 0;
    j->tasks_done++;
    struct sched_worker *bw = worker_by_id(s, by);
    if (bw)
        bw->tasks_done++;
    if (t->kind == WIRE_TASK_PREPARE) {
        for (int64_t k = 0; k < j->n_windows; k++)
            check_ready(s, j, k);
    } else if (++j->segs_done == j->n_segs) {
        j->outputs_ready = 1;
    }
}

/* check_range(): the invariants of scheduler.h for windows a..b. */
static int check_range(const struct sched_job *j, int64_t a, int64_t b)
{
    for (int64_t k = a; k <= b; k++) {
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

void sched_set_head_memory(struct sched *s, size_t bytes)
{
    s->head_mem_cap = bytes;
}

int sched_durable_received(const struct sched_window *w)
{
    return w->head_mem ? w->final_step : w->received_step;
}

int sched_accept(struct sched *s, const struct sched_task *t, const float *head,
                 const uint16_t *rest, uint64_t by)
{
    struct sched_job *j = t->job;
    struct sched_window *w = &j->win[t->k];
    int O = j->row.params.overlap;
    int64_t nh = O < w->len ? O : w->len;
    /* Frames [0, nb) are blended (kept in f32 until then); frames [nb, nh)
     * of the head are rounded here; the rest arrive rounded. */
    int64_t nb = (t->k > 0 && t->step > 0) ? nh : 0;
    /* The predecessor's value at this step is final: blend now, write once. */
    int blended = nb > 0 && j->win[t->k - 1].final_step >= t->step;
    s->buf16 = scratch(s->buf16, &s->cap16, sizeof(uint16_t) * (size_t)(nh * j->fs + 1));
    f32_to_bf16_n(s->buf16 + nb * j->fs, head + nb * j->fs, (nh - nb) * j->fs);
    if (blended) {
        blend_head(s, j, t->k, t->step, head, s->buf16);
        latent_file_write_slot(j->lf, t->step & 1, t->k, 0, s->buf16, nh);
    } else {
        size_t bytes = sizeof(float) * (size_t)(nb * j->fs);
        if (nb && nb == O && s->head_mem_bytes + bytes <= s->head_mem_cap) {
            /* Held until the blend: written once, as bf16, then. */
            w->head_mem = xmalloc(bytes);
            memcpy(w->head_mem, head, bytes);
            s->head_mem_bytes += bytes;
        } else if (nb) {
            latent_file_write_head(j->lf, t->k, head, nb);
        }
        if (nh > nb)
            latent_file_write_slot(j->lf, t->step & 1, t->k, nb, s->buf16 + nb * j->fs,
                                   nh - nb);
    }
    if (w->len > nh)
        latent_file_write_slot(j->lf, t->step & 1, t->k, nh, rest, w->len - nh);
    w->received_step = t->step;
    w->state = SCHED_WIN_WAITING;
    w->owner = 0;
    w->last_worker = by;
    j->tasks_done++;
    struct sched_worker *bw = worker_by_id(s, by);
    if (bw)
        w->last_worker_done = ++bw->tasks_done;
    window_changed(s, j, t->k);
    advance(s, j, t->k, blended);
    assert(check_range(j, w->lo > 0 ? w->lo - 1 : 0,
                       w->hi + 1 < j->n_windows ? w->hi + 1 : j->n_windows - 1));
    return w->head_mem == NULL;
}

const uint16_t *sched_final_frame(struct sched_job *j, int64_t f)
{
    int64_t K = last_window_of(j, f);
    int par = (j->row.params.steps - 1) & 1;
    return latent_file_slot(j->lf, par, K) + (f - j->win[K].start) * j->fs;
}

int sched_check(const struct sched_job *j)
{
    return check_range(j, 0, j->n_windows - 1);
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
        n += j->has_prepare && j->prep.state == SCHED_WIN_READY;
        for (int64_t q = 0; q < j->n_segs; q++)
            n += j->seg[q].state == SCHED_WIN_READY;
    }
    return n;
}
