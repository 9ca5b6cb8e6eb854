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
 *
 * Files under the state directory (docs/state-dir.md): blobs/HASH (input
 * files by sha256), jobs/ID.lat (latents), jobs/ID.prep (the prepared job,
 * the prepare task's output), jobs/ID-NNNNNN.mp4 (decoded segments),
 * jobs/ID.mp4 (the stitched output). Each is written to a temporary name,
 * synced and renamed before the result that produced it is acknowledged, so
 * its presence is the durable record that the task is done.
 */
#include "coordinator.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "common/curve_keys.h"
#include "common/err.h"
#include "common/latent_file.h"
#include "common/log.h"
#include "common/media.h"
#include "common/plan.h"
#include "common/parse.h"
#include "common/sha256.h"
#include "common/status_json.h"
#include "common/textbuf.h"
#include "common/wire.h"
#include "common/xmalloc.h"
#include "coordinator/committer.h"
#include "coordinator/http.h"
#include "coordinator/journal.h"
#include "coordinator/scheduler.h"
#include "coordinator/store.h"
#include "coordinator/zap.h"
#include "worker/decode_stage.h"
#include "worker/sim.h"

#define BATCH_MAX 512

struct outmsg {
    uint8_t rid[WIRE_RID_MAX];
    size_t rid_len;
    struct wire_msg m;
    void *buf; /* tensor data owned by the queue */
    void *buf2; /* a second owned buffer, freed once sent */
    int early; /* may leave before the commit (a task) */
};


/* A set of (job, window), open addressing; cap a power of two, job_id 0 = empty. */
struct window_set {
    struct set_entry { uint64_t job_id; int64_t k; } *e;
    size_t n, cap;
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
    struct window_set seen_open, seen_flight; /* the same, as sets; and the turn in flight's */
    /* The open turn records its writes in jr_open; at its end it becomes
     * the turn in flight (jr_flight, its replies in acks) that the
     * committer makes durable while the next turn opens. */
    struct committer *committer;
    struct journal jr_open, jr_flight;
    struct outmsg *acks;
    size_t n_acks, cap_acks;
    int direct_open;           /* this turn opened the transaction itself (store_direct) */
    struct deferred *deferred; /* results waiting for their window's last move to commit */
    size_t n_deferred, cap_deferred;
    /* Acks of results whose head the scheduler holds in memory until the
     * blend (sched_accept): sent once the window is final. A window's
     * cookie is its slot + 1; free slots are stacked in held_free. */
    struct held_ack *held;
    size_t n_held, cap_held, *held_free, n_free;
    struct zap *zap; /* the ZAP handler (--keys); NULL: no CurveZMQ */
    struct http *http; /* the status endpoint (--http); NULL: none */
};

struct held_ack {
    uint8_t rid[WIRE_RID_MAX];
    size_t rid_len;
    uint64_t request_id;
    struct wire_task_ref ref;
    struct sched_job *job; /* NULL: free */
    int64_t k;
    int step;
};

struct deferred {
    uint8_t rid[WIRE_RID_MAX];
    size_t rid_len;
    struct wire_msg m;
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
    o->max_blob = COORDINATOR_MAX_BLOB_DEFAULT;
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
    o->buf2 = NULL;
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
        free(o->buf2);
    }
    c->n_out = keep;
}

/* ---- hooks: persist what the scheduler changed ------------------------------ */

/* ---- windows changed in the open turn ---------------------------------------- */

static size_t set_slot(const struct window_set *ws, uint64_t job_id, int64_t k)
{
    uint64_t h = job_id * 0x9e3779b97f4a7c15ull ^ (uint64_t)k * 0xc2b2ae3d27d4eb4full;
    size_t i = (size_t)(h >> 17) & (ws->cap - 1);
    while (ws->e[i].job_id && (ws->e[i].job_id != job_id || ws->e[i].k != k))
        i = (i + 1) & (ws->cap - 1);
    return i;
}

static int set_has(const struct window_set *ws, uint64_t job_id, int64_t k)
{
    return ws->n > 0 && ws->e[set_slot(ws, job_id, k)].job_id != 0;
}

static void set_add(struct window_set *ws, uint64_t job_id, int64_t k)
{
    if (2 * (ws->n + 1) > ws->cap) {
        struct set_entry *old = ws->e;
        size_t old_cap = ws->cap;
        ws->cap = old_cap ? 2 * old_cap : 1024;
        ws->e = xcalloc(ws->cap, sizeof *ws->e);
        for (size_t i = 0; i < old_cap; i++)
            if (old[i].job_id)
                ws->e[set_slot(ws, old[i].job_id, old[i].k)] = old[i];
        free(old);
    }
    size_t i = set_slot(ws, job_id, k);
    if (!ws->e[i].job_id) {
        ws->e[i] = (struct set_entry){job_id, k};
        ws->n++;
    }
}

static void set_clear(struct window_set *ws)
{
    if (ws->n) {
        memset(ws->e, 0, sizeof *ws->e * ws->cap);
        ws->n = 0;
    }
}

/* ---- turns: the open one records, the one in flight commits ------------------ */

/* reap(): if the turn in flight is durable (block: wait for it), send its
 * replies. 0, or the error that must stop the coordinator (nothing of that
 * turn is acknowledged). */
static int reap(struct coordinator *c, int block)
{
    int rc;
    if (!committer_reap(c->committer, block, &rc))
        return 0;
    if (rc) {
        c->db_error = 1;
        return log_error_rc(rc, "cannot make state durable: stopping");
    }
    c->st.batches++;
    for (size_t i = 0; i < c->n_acks; i++) {
        struct outmsg *o = &c->acks[i];
        wire_send_take(c->sock, o->rid, o->rid_len, &o->m, o->buf);
        wire_msg_release(&o->m);
        free(o->buf2);
    }
    c->n_acks = 0;
    journal_clear(&c->jr_flight);
    set_clear(&c->seen_flight);
    return 0;
}

/* store_direct(): the store, for the writes that cannot wait in the
 * journal (a new job's id, worker and blob rows; all rare). It waits for
 * the turn in flight and opens the open turn's transaction on this thread;
 * the committer carries that transaction on when the turn ends. */
static struct store *store_direct(struct coordinator *c)
{
    if (reap(c, 1) || store_begin(c->store))
        c->db_error = 1;
    c->direct_open = 1;
    return c->store;
}

/* turn_pending(): the open turn holds something to commit or to send. */
static int turn_pending(const struct coordinator *c)
{
    return c->jr_open.n > 0 || c->n_out > 0 || c->n_dirty > 0 || c->direct_open;
}

static void write_windows(struct coordinator *c);

/* handoff(): end the open turn. Its window and job rows join its journal,
 * each latent store it wrote gives a descriptor to sync, jobs that ended
 * close theirs, and the committer takes it all; its replies wait in acks
 * until reap(). 0, or the error that must stop the coordinator. */
static int handoff(struct coordinator *c)
{
    int rc = reap(c, 1); /* one turn in flight at a time */
    if (rc)
        return rc;
    flush_tasks(c);
    size_t n;
    struct sched_job *const *jobs = sched_jobs(c->sched, &n);
    int *fds = xmalloc(sizeof(int) * (n + 1)), n_fds = 0;
    for (size_t i = 0; i < n; i++) {
        struct sched_job *j = jobs[i];
        int fd;
        if (!j->lf)
            continue;
        if (latent_file_sync_handle(j->lf, c->o.durable, &fd))
            rc = ENC_EIO;
        else if (fd >= 0)
            fds[n_fds++] = fd;
        if (j->state != SCHED_JOB_QUEUED && j->state != SCHED_JOB_RUNNING)
            latent_file_close(&j->lf);
    }
    write_windows(c);
    for (size_t i = 0; i < n; i++)
        if (jobs[i]->state == SCHED_JOB_RUNNING)
            journal_job(&c->jr_open, &jobs[i]->row);
    if (rc || c->db_error) {
        for (int i = 0; i < n_fds; i++)
            close(fds[i]);
        free(fds);
        return log_error_rc(rc ? rc : ENC_EDB, "cannot make state durable: stopping");
    }
    /* The in-flight slots are empty (reaped): swap, do not copy. */
    struct outmsg *ob = c->acks;
    size_t ocap = c->cap_acks;
    c->acks = c->out;
    c->n_acks = c->n_out;
    c->cap_acks = c->cap_out;
    c->out = ob;
    c->n_out = 0;
    c->cap_out = ocap;
    struct journal jt = c->jr_flight;
    c->jr_flight = c->jr_open;
    c->jr_open = jt;
    struct window_set st = c->seen_flight;
    c->seen_flight = c->seen_open;
    c->seen_open = st;
    c->direct_open = 0;
    committer_start(c->committer, &c->jr_flight, fds, n_fds);
    free(fds);
    return 0;
}

/* A result changes its window's row twice (received, then final): the
 * rows are written once per turn, in write_windows(). The store keeps one
 * step of history per window (two parity slots, one head), so a window may
 * not move again before its last move is durable: a result for a window
 * changed by the open turn or by the turn in flight waits, deferred, until
 * that turn commits (result_conflict()); the loop goes on meanwhile. Rare
 * once a job runs: affinity waits for a window to settle, and a window's
 * next step is ready only a whole wavefront later. */
enum conflict { CONFLICT_NONE, CONFLICT_OPEN, CONFLICT_FLIGHT };

static enum conflict result_conflict(struct coordinator *c, const struct wire_msg *m)
{
    if (m->kind != WIRE_RESULT || (c->seen_open.n == 0 && c->seen_flight.n == 0))
        return CONFLICT_NONE;
    struct sched_job *j = sched_job_find(c->sched, m->u.result.job_id);
    if (!j || m->u.result.task_id < 1 || j->row.params.steps < 1)
        return CONFLICT_NONE;
    int64_t k = (int64_t)((m->u.result.task_id - 1) / (uint64_t)j->row.params.steps);
    if (k >= j->n_windows)
        return CONFLICT_NONE;
    if (set_has(&c->seen_open, j->row.id, k))
        return CONFLICT_OPEN;
    return set_has(&c->seen_flight, j->row.id, k) ? CONFLICT_FLIGHT : CONFLICT_NONE;
}

/* ---- acks held until a result is durable --------------------------------------- */

static void hold_ack(struct coordinator *c, const uint8_t *rid, size_t rid_len,
                     const struct wire_msg *m, const struct sched_task *t)
{
    size_t i;
    if (c->n_free > 0) {
        i = c->held_free[--c->n_free];
    } else {
        if (c->n_held == c->cap_held) {
            c->cap_held = c->cap_held ? 2 * c->cap_held : 64;
            c->held = xrealloc(c->held, sizeof *c->held * c->cap_held);
            c->held_free = xrealloc(c->held_free, sizeof *c->held_free * c->cap_held);
        }
        i = c->n_held++;
    }
    struct held_ack *h = &c->held[i];
    memcpy(h->rid, rid, rid_len);
    h->rid_len = rid_len;
    h->request_id = m->request_id;
    h->ref = m->u.result;
    h->job = t->job;
    h->k = t->k;
    h->step = t->step;
    t->job->win[t->k].cookie = i + 1;
}

/* release_ack(): the held result is durable with the open turn: its task
 * row and its ack join it. */
static void release_ack(struct coordinator *c, size_t i)
{
    struct held_ack *h = &c->held[i];
    journal_task_finish(&c->jr_open, h->job->row.id, h->k, h->step, "done", now_wall());
    struct outmsg *o = reply(c, h->rid, h->rid_len, WIRE_RESULT_ACK, h->request_id);
    o->m.u.result_ack.ref = h->ref;
    o->m.u.result_ack.accepted = 1;
    h->job->win[h->k].cookie = 0;
    h->job = NULL;
    c->held_free[c->n_free++] = i;
}

static void hook_window(void *ctx, struct sched_job *j, int64_t k)
{
    struct coordinator *c = ctx;
    if (j->win[k].cookie && !j->win[k].head_mem)
        release_ack(c, j->win[k].cookie - 1); /* blended: durable with this turn */
    set_add(&c->seen_open, j->row.id, k);
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

/* write_windows(): journal the rows of the windows changed since the last call. */
static void write_windows(struct coordinator *c)
{
    if (c->n_dirty == 0)
        return; /* (a turn of prepare or decode results only: dirty may be NULL) */
    qsort(c->dirty, c->n_dirty, sizeof *c->dirty, dirty_cmp);
    for (size_t i = 0; i < c->n_dirty; i++) {
        struct sched_job *j = c->dirty[i].job;
        int64_t k = c->dirty[i].k;
        if (i > 0 && c->dirty[i - 1].job == j && c->dirty[i - 1].k == k)
            continue;
        struct store_window w = {.k = k, .start = j->win[k].start, .len = j->win[k].len,
                                 .received_step = sched_durable_received(&j->win[k]),
                                 .final_step = j->win[k].final_step,
                                 .attempt = j->win[k].attempt};
        journal_window(&c->jr_open, j->row.id, &w);
    }
    c->n_dirty = 0;
}

static int hook_settled(void *ctx, struct sched_job *j, int64_t k)
{
    struct coordinator *c = ctx;
    return !set_has(&c->seen_open, j->row.id, k) && !set_has(&c->seen_flight, j->row.id, k);
}

static void hook_job(void *ctx, struct sched_job *j)
{
    struct coordinator *c = ctx;
    /* A job that ended never blends what it held: answer those results. */
    if (j->state != SCHED_JOB_QUEUED && j->state != SCHED_JOB_RUNNING)
        for (size_t i = 0; i < c->n_held; i++)
            if (c->held[i].job == j)
                release_ack(c, i);
    journal_job(&c->jr_open, &j->row);
    journal_event(&c->jr_open, j->row.id, j->row.state, "job %llu %s",
                  (unsigned long long)j->row.id, j->row.state);
    log_info("job %llu %s", (unsigned long long)j->row.id, j->row.state);
}

static void hook_requeued(void *ctx, struct sched_job *j, int64_t k, int step)
{
    struct coordinator *c = ctx;
    journal_task_finish(&c->jr_open, j->row.id, k, step, "requeued", now_wall());
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

/* ---- files: blobs, prepared jobs, chunks, outputs ------------------------------------ */

/* write_file(): data to path through path.tmp, synced when durable, renamed. */
static int write_file(const char *path, const void *data, size_t n, int durable)
{
    char *tmp = xasprintf("%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644), rc = 0;
    const uint8_t *p = data;
    if (fd < 0) {
        rc = log_error_rc(ENC_EIO, "cannot write '%s': %s", tmp, strerror(errno));
        free(tmp);
        return rc;
    }
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = log_error_rc(ENC_EIO, "cannot write '%s': %s", tmp, strerror(errno));
            break;
        }
        p += w;
        n -= (size_t)w;
    }
    if (rc == 0 && durable && fdatasync(fd) != 0)
        rc = log_error_rc(ENC_EIO, "cannot sync '%s': %s", tmp, strerror(errno));
    close(fd);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = log_error_rc(ENC_EIO, "cannot rename '%s': %s", tmp, strerror(errno));
    if (rc)
        unlink(tmp);
    free(tmp);
    return rc;
}

/* read_file(): the whole file into *buf (caller frees); ENC_EIO if unreadable. */
static int read_file(const char *path, uint8_t **buf, size_t *n)
{
    FILE *f = fopen(path, "rb");
    *buf = NULL;
    *n = 0;
    if (!f)
        return ENC_EIO;
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || st.st_size < 0) {
        fclose(f);
        return ENC_EIO;
    }
    *buf = xmalloc((size_t)st.st_size + 1);
    *n = fread(*buf, 1, (size_t)st.st_size, f);
    int bad = *n != (size_t)st.st_size;
    fclose(f);
    if (bad) {
        free(*buf);
        *buf = NULL;
        return ENC_EIO;
    }
    return 0;
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static char *blob_path(struct coordinator *c, const char *hash)
{
    return xasprintf("%s/blobs/%s", c->state_dir, hash);
}

/* job_path(): jobs/ID.prep, jobs/ID.mp4; seg >= 0: jobs/ID-NNNNNN.mp4. */
static char *job_path(struct coordinator *c, uint64_t id, const char *ext, int64_t seg)
{
    if (seg >= 0)
        return xasprintf("%s/jobs/%llu-%06lld.mp4", c->state_dir, (unsigned long long)id,
                         (long long)seg);
    return xasprintf("%s/jobs/%llu.%s", c->state_dir, (unsigned long long)id, ext);
}

/* put_blob(): store bytes under their sha256 (once); hash gets the name. */
static int put_blob(struct coordinator *c, const struct wire_tensor *t, char hash[WIRE_HASH_MAX])
{
    sha256_hex(t->data, t->nbytes, hash);
    char *path = blob_path(c, hash);
    int rc = 0;
    if (!file_exists(path))
        rc = write_file(path, t->data, t->nbytes, c->o.durable);
    free(path);
    if (rc == 0) {
        char rel[96];
        snprintf(rel, sizeof rel, "blobs/%s", hash);
        if (store_blob_put(store_direct(c), hash, rel, (int64_t)t->nbytes))
            c->db_error = 1;
    }
    return rc;
}

/* job_stages(): what a job runs besides denoise; seg_done from the files. */
static void job_stages(struct coordinator *c, const struct store_job *row,
                       struct sched_stages *st, uint8_t **seg_done)
{
    memset(st, 0, sizeof *st);
    *seg_done = NULL;
    st->prepare = strcmp(row->params.model, "sim") != 0;
    if (st->prepare) {
        char *p = job_path(c, row->id, "prep", -1);
        st->prepared = file_exists(p);
        free(p);
    }
    if (row->params.audio_blob[0] && row->latent_frames > 0) {
        st->seg_len = DECODE_SEGMENT_LATENTS;
        st->warmup = DECODE_WARMUP_LATENTS;
        int64_t n = decode_segment_count(row->latent_frames, st->seg_len);
        *seg_done = xcalloc((size_t)n + 1, 1);
        for (int64_t i = 0; i < n; i++) {
            char *p = job_path(c, row->id, NULL, i);
            (*seg_done)[i] = (uint8_t)file_exists(p);
            free(p);
        }
        st->seg_done = *seg_done;
    }
}

/* stitch(): every chunk is in: mux them with the audio into jobs/ID.mp4 and
 * end the job. */
static void stitch(struct coordinator *c, struct sched_job *j)
{
    struct plan pl;
    struct plan_params pp = {.clip_frames = j->row.params.clip_frames,
                             .overlap = j->row.params.overlap};
    char **chunks = xcalloc((size_t)j->n_segs + 1, sizeof *chunks);
    char *audio = blob_path(c, j->row.params.audio_blob);
    char *out = job_path(c, j->row.id, "mp4", -1);
    char *tmp = xasprintf("%s/jobs/%llu.tmp.mp4", c->state_dir, (unsigned long long)j->row.id);
    for (int64_t i = 0; i < j->n_segs; i++)
        chunks[i] = job_path(c, j->row.id, NULL, i);
    int rc = plan_make(&pl, j->row.params.n_samples, &pp);
    if (rc == 0) {
        rc = media_mux_stitch(tmp, (const char *const *)chunks, (int)j->n_segs, audio,
                              pl.out_frames, j->row.params.fps);
        plan_release(&pl);
    }
    if (rc == 0 && rename(tmp, out) != 0)
        rc = log_error_rc(ENC_EIO, "cannot rename '%s': %s", tmp, strerror(errno));
    if (rc == 0) {
        log_info("job %llu: stitched %lld chunk(s) into %s", (unsigned long long)j->row.id,
                 (long long)j->n_segs, out);
        sched_job_end(c->sched, j, 1, NULL);
    } else {
        unlink(tmp);
        sched_job_end(c->sched, j, 0, "stitching the decoded chunks failed");
    }
    for (int64_t i = 0; i < j->n_segs; i++)
        free(chunks[i]);
    free(chunks);
    free(audio);
    free(out);
    free(tmp);
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
    if (store_worker_seen(store_direct(c), &m->u.hello, now_wall()))
        c->db_error = 1;
    log_info("worker '%s' (id %llu, %s) joined", w->name, (unsigned long long)w->id,
             w->backend);
    struct outmsg *o = reply(c, rid, rid_len, WIRE_HELLO_ACK, m->request_id);
    o->m.u.hello_ack.worker_id = w->id;
    o->m.u.hello_ack.heartbeat_ms = (uint32_t)c->o.heartbeat_ms;
    o->m.u.hello_ack.lease_ms = (uint32_t)c->o.lease_ms;
}

/* latent_tensor_is(): t is a dtype tensor of n latent frames of job j. */
static int latent_tensor_is(const struct wire_tensor *t, enum wire_dtype dtype, int64_t n,
                            const struct sched_job *j)
{
    return t->dtype == dtype && t->ndim == 4 && t->shape[0] == n &&
           t->shape[1] == LATENT_CHANNELS && t->shape[2] == j->h && t->shape[3] == j->w;
}

static enum sched_verdict on_result(struct coordinator *c, struct sched_worker *w,
                                    const uint8_t *rid, size_t rid_len, const struct wire_msg *m,
                                    int failed)
{
    struct sched_ref r;
    struct sched_task t;
    if (failed)
        r = (struct sched_ref){m->u.task_failed.ref.job_id, m->u.task_failed.ref.task_id,
                               m->u.task_failed.ref.attempt, 0};
    else
        r = (struct sched_ref){m->u.result.job_id, m->u.result.task_id, m->u.result.attempt, 0};
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
    char what[64];
    if (t.kind == WIRE_TASK_PREPARE)
        snprintf(what, sizeof what, "prepare");
    else if (t.kind == WIRE_TASK_DECODE)
        snprintf(what, sizeof what, "decode segment %lld", (long long)t.seg);
    else
        snprintf(what, sizeof what, "window %lld step %d", (long long)t.k, t.step);
    if (failed) {
        int reason = m->u.task_failed.reason;
        if (reason == WIRE_FAIL_CACHE_MISS || reason == WIRE_FAIL_BUSY) {
            if (t.kind == WIRE_TASK_DENOISE)
                j->win[t.k].last_worker = 0;
            /* It may have lost the prepared job too: send it again. */
            for (int i = 0; reason == WIRE_FAIL_CACHE_MISS && i < w->n_prepared; i++)
                if (w->prepared[i] == j->row.id)
                    w->prepared[i] = w->prepared[--w->n_prepared];
            if (reason == WIRE_FAIL_BUSY)
                sched_worker_credit(c->sched, w, -1); /* it had no room for it */
        } else {
            log_warn("job %llu %s failed on '%s': %s", (unsigned long long)j->row.id, what,
                     w->name, m->u.task_failed.message);
            if (reason == WIRE_FAIL_INPUT || t.attempt >= 5) {
                char msg[WIRE_ERR_MAX];
                snprintf(msg, sizeof msg, "%s: %.180s", what, m->u.task_failed.message);
                sched_requeue(c->sched, &t); /* back to WAITING; the job ends */
                sched_job_end(c->sched, j, 0, msg);
                return v;
            }
        }
        sched_requeue(c->sched, &t);
        return v;
    }
    if (t.kind != WIRE_TASK_DENOISE) {
        const struct wire_tensor *ut = &m->tensors[0];
        if (m->n_tensors != 1 || ut->dtype != WIRE_DTYPE_U8 || ut->ndim != 1 || ut->nbytes < 1) {
            reply_error(c, rid, rid_len, m->request_id, ENC_EINVAL,
                        "result for job %llu task %llu (%s) must carry one u8 tensor",
                        (unsigned long long)r.job_id, (unsigned long long)r.task_id, what);
            sched_requeue(c->sched, &t);
            return v;
        }
        char *path = job_path(c, j->row.id, "prep", t.kind == WIRE_TASK_DECODE ? t.seg : -1);
        int rc = write_file(path, ut->data, ut->nbytes, c->o.durable);
        free(path);
        if (rc) {
            c->db_error = 1; /* cannot make it durable: stop */
            return v;
        }
        if (t.kind == WIRE_TASK_PREPARE && w->n_prepared < (int)(sizeof w->prepared / 8))
            w->prepared[w->n_prepared++] = j->row.id; /* it keeps what it made */
        sched_accept_unit(c->sched, &t, w->id);
        c->st.results++;
        int64_t kk;
        int ss;
        sched_task_store_key(&t, &kk, &ss);
        journal_task_finish(&c->jr_open, j->row.id, kk, ss, "done", now_wall());
        struct outmsg *o = reply(c, rid, rid_len, WIRE_RESULT_ACK, m->request_id);
        o->m.u.result_ack.ref = m->u.result;
        o->m.u.result_ack.accepted = 1;
        return v;
    }
    /* Denoise: the head f32 [n_head, 16, h, w], n_head = min(O, len), then
     * the other frames bf16 (scheduler.h, sched_accept). */
    const struct sched_window *win = &j->win[t.k];
    int64_t nh = j->row.params.overlap < win->len ? j->row.params.overlap : win->len;
    if (m->n_tensors != 2 || !latent_tensor_is(&m->tensors[0], WIRE_DTYPE_F32, nh, j) ||
        !latent_tensor_is(&m->tensors[1], WIRE_DTYPE_BF16, win->len - nh, j)) {
        reply_error(c, rid, rid_len, m->request_id, ENC_EINVAL,
                    "result for job %llu task %llu must carry an f32 tensor [%lld, 16, %lld, "
                    "%lld] and a bf16 tensor [%lld, 16, %lld, %lld]",
                    (unsigned long long)r.job_id, (unsigned long long)r.task_id, (long long)nh,
                    (long long)j->h, (long long)j->w, (long long)(win->len - nh),
                    (long long)j->h, (long long)j->w);
        sched_requeue(c->sched, &t);
        return v;
    }
    c->st.results++;
    if (!sched_accept(c->sched, &t, m->tensors[0].data, m->tensors[1].data, w->id)) {
        hold_ack(c, rid, rid_len, m, &t); /* durable once blended */
        return v;
    }
    journal_task_finish(&c->jr_open, j->row.id, t.k, t.step, "done", now_wall());
    struct outmsg *o = reply(c, rid, rid_len, WIRE_RESULT_ACK, m->request_id);
    o->m.u.result_ack.ref = m->u.result;
    o->m.u.result_ack.accepted = 1;
    return v;
}

/* submit_inputs(): the audio and image files a submit carries (u8 tensors
 * 0 and 1) go to the blob store; an engine job needs both. The audio's
 * length is measured here when the client did not give it. 0, or 1 after
 * replying with an error; *bad_input names an input that does not decode
 * (the job is then recorded as failed). */
static int submit_inputs(struct coordinator *c, const uint8_t *rid, size_t rid_len,
                         const struct wire_msg *m, struct wire_job_params *p, char *bad_input,
                         size_t n_bad)
{
    static const char *const names[2] = {"audio", "image"};
    const char *paths[2] = {p->audio_path, p->image_path};
    char *hashes[2] = {p->audio_blob, p->image_blob};
    int engine = strcmp(p->model, "sim") != 0;
    if (m->n_tensors > 2 || (engine && m->n_tensors != 2)) {
        reply_error(c, rid, rid_len, m->request_id, ENC_EINVAL,
                    "bad job: a job of model '%s' needs the audio and image files (%d sent)",
                    p->model, m->n_tensors);
        return 1;
    }
    for (int i = 0; i < m->n_tensors; i++) {
        const struct wire_tensor *t = &m->tensors[i];
        if (t->dtype != WIRE_DTYPE_U8 || t->ndim != 1 || t->nbytes < 1) {
            reply_error(c, rid, rid_len, m->request_id, ENC_EINVAL,
                        "bad job: the %s file must be sent as non-empty bytes", names[i]);
            return 1;
        }
        if ((int64_t)t->nbytes > c->o.max_blob) {
            reply_error(c, rid, rid_len, m->request_id, ENC_EINVAL,
                        "%s '%.200s' is %zu bytes, over this coordinator's limit of %lld bytes",
                        names[i], paths[i], t->nbytes, (long long)c->o.max_blob);
            return 1;
        }
    }
    for (int i = 0; i < m->n_tensors; i++) {
        if (put_blob(c, &m->tensors[i], hashes[i])) {
            reply_error(c, rid, rid_len, m->request_id, ENC_EIO,
                        "cannot store the %s file in the state directory", names[i]);
            return 1;
        }
    }
    if (p->audio_blob[0] && p->n_samples == 0) {
        struct audio_pcm pcm = {0};
        char *path = blob_path(c, p->audio_blob);
        if (media_audio_decode(path, &pcm) < 0)
            snprintf(bad_input, n_bad, "audio '%.120s' does not decode (not a sound file, or "
                     "damaged)", p->audio_path);
        else if (pcm.n < PLAN_SAMPLES_PER_FRAME)
            snprintf(bad_input, n_bad, "audio '%.120s' holds less than one video frame (0.04 s) "
                     "of sound", p->audio_path);
        p->n_samples = pcm.n;
        audio_pcm_release(&pcm);
        free(path);
    }
    if (engine && (p->width % 16 || p->height % 16)) {
        reply_error(c, rid, rid_len, m->request_id, ENC_EINVAL,
                    "bad job: size %dx%d: the model needs multiples of 16", p->width, p->height);
        return 1;
    }
    return 0;
}

static void on_submit(struct coordinator *c, const uint8_t *rid, size_t rid_len,
                      const struct wire_msg *m)
{
    struct wire_job_params params = m->u.submit.params;
    const struct wire_job_params *p = &params;
    char msg[256], bad_input[WIRE_ERR_MAX] = "";
    struct plan pl = {0};
    struct plan_params pp = {.clip_frames = p->clip_frames, .overlap = p->overlap};
    params.audio_blob[0] = params.image_blob[0] = 0;
    if (submit_inputs(c, rid, rid_len, m, &params, bad_input, sizeof bad_input))
        return;
    if (bad_input[0]) {
        params.n_samples = PLAN_SAMPLES_PER_FRAME; /* checked, never planned */
    }
    if (sim_check_params(p, msg, sizeof msg)) {
        reply_error(c, rid, rid_len, m->request_id, ENC_EINVAL, "bad job: %s", msg);
        return;
    }
    /* A job whose audio does not decode is recorded failed, with the
     * smallest plan (one window) so that its rows stay well formed. */
    if (plan_make(&pl, p->n_samples, &pp)) {
        reply_error(c, rid, rid_len, m->request_id, ENC_EINVAL, "bad job: cannot plan windows");
        return;
    }
    struct store_job row;
    struct store_window *w = xcalloc((size_t)pl.n_windows + 1, sizeof *w);
    memset(&row, 0, sizeof row);
    snprintf(row.state, sizeof row.state, "%s", bad_input[0] ? "failed" : "queued");
    snprintf(row.error, sizeof row.error, "%s", bad_input);
    if (bad_input[0])
        row.finished_at = now_wall();
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
    if (bad_input[0])
        row.params.n_samples = 0;
    if (store_job_insert(store_direct(c), &row, w)) {
        c->db_error = 1;
        reply_error(c, rid, rid_len, m->request_id, ENC_EDB, "cannot store the job");
        free(w);
        return;
    }
    struct sched_job tmp = {.row = row, .n_windows = row.n_windows};
    struct latent_file *lf = NULL;
    if (!bad_input[0] && open_latents(c, &tmp, w, 1, &lf)) {
        snprintf(row.state, sizeof row.state, "failed");
        snprintf(row.error, sizeof row.error, "cannot create its latent store");
    }
    struct sched_job *j;
    struct sched_stages stages;
    uint8_t *seg_done;
    job_stages(c, &row, &stages, &seg_done);
    if (sched_add_job_staged(c->sched, &row, w, &lf, &stages, &j) == 0 && !j->lf)
        hook_job(c, j);
    free(seg_done);
    free(w);
    journal_event(&c->jr_open, row.id, "submit", "job %llu submitted: %lld windows x %d steps",
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
    ji->segments = j->n_segs;
    ji->segments_done = j->segs_done;
    ji->prepared = !j->has_prepare || j->prep.state == SCHED_WIN_DONE;
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

static void worker_info(const struct sched_worker *w, int64_t now, double wall,
                        struct wire_worker_info *wi)
{
    memset(wi, 0, sizeof *wi);
    wi->id = w->id;
    memcpy(wi->name, w->name, sizeof wi->name);
    memcpy(wi->backend, w->backend, sizeof wi->backend);
    memcpy(wi->device, w->device, sizeof wi->device);
    wi->n_models = w->n_models;
    memcpy(wi->models, w->models, sizeof wi->models);
    snprintf(wi->state, sizeof wi->state, "%s", w->n_running ? "busy" : "idle");
    wi->running = w->n_running;
    wi->tasks_done = w->tasks_done;
    wi->last_seen = wall - (double)(now - w->last_seen_ms) / 1000.0;
    wi->connected_at = w->connected_at;
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
    for (size_t i = 0; i < n; i++)
        worker_info(ws[i], now, wall, &o->m.u.workers_reply.workers[i]);
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

static void on_get_output(struct coordinator *c, const uint8_t *rid, size_t rid_len,
                          const struct wire_msg *m)
{
    struct sched_job *j = sched_job_find(c->sched, m->u.get_output.job_id);
    if (!j) {
        reply_error(c, rid, rid_len, m->request_id, ENC_EINVAL, "unknown job %llu",
                    (unsigned long long)m->u.get_output.job_id);
        return;
    }
    if (j->state != SCHED_JOB_DONE) {
        reply_error(c, rid, rid_len, m->request_id, ENC_EINVAL, "job %llu is %s: no video yet",
                    (unsigned long long)j->row.id, sched_job_state_name(j->state));
        return;
    }
    if (j->n_segs == 0) {
        reply_error(c, rid, rid_len, m->request_id, ENC_EINVAL,
                    "job %llu makes no video (it was submitted without an audio file); get "
                    "its latents", (unsigned long long)j->row.id);
        return;
    }
    char *path = job_path(c, j->row.id, "mp4", -1);
    uint8_t *buf;
    size_t n;
    int rc = read_file(path, &buf, &n);
    free(path);
    if (rc || (int64_t)n > c->limits.max_tensor) {
        free(buf);
        reply_error(c, rid, rid_len, m->request_id, ENC_EIO,
                    "job %llu: its video cannot be read from the state directory",
                    (unsigned long long)j->row.id);
        return;
    }
    struct outmsg *o = reply(c, rid, rid_len, WIRE_OUTPUT, m->request_id);
    int64_t shape[1] = {(int64_t)n};
    o->m.u.output.job_id = j->row.id;
    o->buf = buf;
    wire_msg_add_tensor(&o->m, WIRE_DTYPE_U8, 1, shape, buf);
}

/*
 * reconcile(): heartbeat m from w lists the tasks w holds and counts the
 * Task messages it received in its session. A running[] task sent as one of
 * those (seq <= received) that the list lacks is lost: its result was
 * refused (malformed, naming another task) or w dropped it. One connection
 * keeps order, so a result w sent before the heartbeat was handled before
 * it, except one deferred here (result_conflict()): that task is kept. A
 * lost task is requeued, like a lease expiry, and its credit comes back.
 */
static void reconcile(struct coordinator *c, struct sched_worker *w, const uint8_t *rid,
                      size_t rid_len, const struct wire_msg *m)
{
    for (int i = 0; i < w->n_running;) {
        struct sched_ref r = w->running[i];
        int keep = r.seq == 0 || r.seq > m->u.heartbeat.received;
        for (int k = 0; !keep && k < m->u.heartbeat.n; k++) {
            const struct wire_task_ref *h = &m->u.heartbeat.tasks[k];
            keep = h->job_id == r.job_id && h->task_id == r.task_id && h->attempt == r.attempt;
        }
        for (size_t k = 0; !keep && k < c->n_deferred; k++) {
            const struct deferred *d = &c->deferred[k];
            keep = d->m.kind == WIRE_RESULT && d->rid_len == rid_len &&
                   memcmp(d->rid, rid, rid_len) == 0 && d->m.u.result.job_id == r.job_id &&
                   d->m.u.result.task_id == r.task_id && d->m.u.result.attempt == r.attempt;
        }
        if (keep) {
            i++;
            continue;
        }
        log_warn("worker '%s' (id %llu) no longer holds job %llu task %llu (attempt %u, its "
                 "task %llu of the session): requeuing it",
                 w->name, (unsigned long long)w->id, (unsigned long long)r.job_id,
                 (unsigned long long)r.task_id, r.attempt, (unsigned long long)r.seq);
        struct sched_task t;
        /* Takes running[i] out and gives its credit back. */
        if (sched_check_result(c->sched, w, &r, &t) == SCHED_OK)
            sched_requeue(c->sched, &t);
    }
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
            reconcile(c, w, rid, rid_len, m);
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
    case WIRE_GET_OUTPUT: on_get_output(c, rid, rid_len, m); break;
    default:
        c->st.bad_messages++;
        reply_error(c, rid, rid_len, m->request_id, ENC_EWIRE,
                    "unexpected message '%s' for a coordinator", wire_kind_name(m->kind));
        break;
    }
}

/* ---- dispatch ------------------------------------------------------------------------ */

/* unit_task(): the tensors of a prepare (the audio and image files) or
 * decode task (the final latents of the segment and its warm-up, bf16
 * [n][16][h][w]). */
static void unit_task(struct coordinator *c, struct outmsg *o, const struct sched_task *t)
{
    struct sched_job *j = t->job;
    struct wire_task *wt = &o->m.u.task;
    wt->kind = t->kind;
    wt->window = t->seg;
    if (t->kind == WIRE_TASK_PREPARE) {
        uint8_t *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        char *pa = blob_path(c, j->row.params.audio_blob);
        char *pb = blob_path(c, j->row.params.image_blob);
        if (read_file(pa, &a, &na) || read_file(pb, &b, &nb) || !na || !nb) {
            log_error("job %llu: its input files are missing from '%s/blobs'",
                      (unsigned long long)j->row.id, c->state_dir);
            free(a);
            free(b);
        } else {
            o->buf = xmalloc(na + nb);
            memcpy(o->buf, a, na);
            memcpy((uint8_t *)o->buf + na, b, nb);
            free(a);
            free(b);
            int64_t sa[1] = {(int64_t)na}, sb[1] = {(int64_t)nb};
            wire_msg_add_tensor(&o->m, WIRE_DTYPE_U8, 1, sa, o->buf);
            wire_msg_add_tensor(&o->m, WIRE_DTYPE_U8, 1, sb, (uint8_t *)o->buf + na);
        }
        free(pa);
        free(pb);
        return;
    }
    const struct sched_unit *u = &j->seg[t->seg];
    int64_t first = u->a - j->warmup > 0 ? u->a - j->warmup : 0, n = u->b - first;
    wt->start = u->a;
    wt->len = u->b - u->a;
    wt->first = first;
    o->buf = xmalloc(sizeof(uint16_t) * (size_t)(n * j->fs));
    for (int64_t f = first; f < u->b; f++)
        memcpy((uint16_t *)o->buf + (f - first) * j->fs, sched_final_frame(j, f),
               sizeof(uint16_t) * (size_t)j->fs);
    int64_t shape[4] = {n, LATENT_CHANNELS, j->h, j->w};
    wire_msg_add_tensor(&o->m, WIRE_DTYPE_BF16, 4, shape, o->buf);
}

/* attach_prepared(): the first denoise task of a job a worker gets carries
 * the prepared job (u8, the last tensor); the worker keeps it. */
static void attach_prepared(struct coordinator *c, struct sched_worker *w, struct outmsg *o,
                            const struct sched_job *j, void **extra)
{
    for (int i = 0; i < w->n_prepared; i++)
        if (w->prepared[i] == j->row.id)
            return;
    char *path = job_path(c, j->row.id, "prep", -1);
    uint8_t *buf;
    size_t n;
    int rc = read_file(path, &buf, &n);
    free(path);
    if (rc || !n) {
        free(buf);
        log_error("job %llu: its prepared job is missing from the state directory",
                  (unsigned long long)j->row.id);
        return;
    }
    int64_t shape[1] = {(int64_t)n};
    wire_msg_add_tensor(&o->m, WIRE_DTYPE_U8, 1, shape, buf);
    o->m.u.task.prepared = 1;
    *extra = buf;
    if (w->n_prepared == (int)(sizeof w->prepared / sizeof w->prepared[0])) {
        memmove(&w->prepared[0], &w->prepared[1], sizeof w->prepared[0] * (size_t)(w->n_prepared - 1));
        w->n_prepared--;
    }
    w->prepared[w->n_prepared++] = j->row.id;
}

static void send_task(struct coordinator *c, struct sched_worker *w, const struct sched_task *t)
{
    struct sched_job *j = t->job;
    struct outmsg *o = reply(c, w->rid, w->rid_len, WIRE_TASK, 0);
    struct wire_task *wt = &o->m.u.task;
    int64_t sk;
    int ss;
    sched_task_store_key(t, &sk, &ss);
    o->early = 1;
    /* Tasks leave in this order (flush_tasks()): number them (reconcile()). */
    struct sched_ref *held =
        sched_worker_holds(w, &(struct sched_ref){j->row.id, t->task_id, t->attempt, 0});
    if (held)
        held->seq = ++w->tasks_sent;
    if (t->kind != WIRE_TASK_DENOISE) {
        wt->job_id = j->row.id;
        wt->task_id = t->task_id;
        wt->attempt = t->attempt;
        wt->params = j->row.params;
        wt->base_step = -1;
        unit_task(c, o, t);
        c->st.tasks_sent++;
        journal_task_running(&c->jr_open, j->row.id, sk, ss, t->attempt, w->name,
                             now_wall() + c->o.lease_ms / 1000.0);
        return;
    }
    const struct sched_window *win = &j->win[t->k];
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
    if (j->has_prepare) {
        /* The prepared job is the last tensor: its buffer goes to ZeroMQ as
         * it is; the latents' buffer is freed after sending. */
        void *extra = NULL;
        attach_prepared(c, w, o, j, &extra);
        if (extra) {
            o->buf2 = o->buf;
            o->buf = extra;
        }
    }
    c->st.tasks_sent++;
    journal_task_running(&c->jr_open, j->row.id, sk, ss, t->attempt, w->name,
                         now_wall() + c->o.lease_ms / 1000.0);
}

static void dispatch(struct coordinator *c)
{
    size_t nj;
    struct sched_job *const *jobs = sched_jobs(c->sched, &nj);
    for (size_t i = 0; i < nj; i++)
        if (jobs[i]->outputs_ready && jobs[i]->state == SCHED_JOB_RUNNING)
            stitch(c, jobs[i]);
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
    struct sched_stages stages;
    uint8_t *seg_done;
    job_stages(c, &r, &stages, &seg_done);
    int rc = sched_add_job_staged(c->sched, &r, w, &lf, &stages, &j);
    free(seg_done);
    if (rc)
        return rc;
    if (strcmp(r.state, row->state) != 0)
        hook_job(c, j);
    return 0;
}

/*
 * Security (DESIGN 5, docs/protocol.md). With keys_dir the ROUTER is a
 * CURVE server and the ZAP handler (coordinator/zap.h), bound first in the
 * same context, lets in the keys of keys_dir/authorized; coordinator_run()
 * answers it from its poll. Without, only an endpoint that other machines
 * cannot reach is served, unless insecure says otherwise: security_check()
 * says so before anything is opened, security_setup() sets up the socket.
 */
static int security_check(const struct coordinator_opts *o)
{
    if (o->keys_dir || curve_keys_endpoint_local(o->listen))
        return 0;
    if (!o->insecure)
        return log_error_rc(ENC_EINVAL,
                            "refusing to listen on '%s' without CurveZMQ: other machines could "
                            "submit jobs and take tasks; give --keys DIR (see deploy/README.md), "
                            "or --insecure on a network you trust",
                            o->listen);
    log_warn("listening on '%s' with no authentication or encryption (--insecure): anyone who "
             "reaches it can submit jobs and act as a worker",
             o->listen);
    return 0;
}

static int security_setup(struct coordinator *c)
{
    const struct coordinator_opts *o = &c->o;
    if (!o->keys_dir)
        return 0;
    struct curve_pair pair;
    char *key = xasprintf("%s/coordinator.key", o->keys_dir);
    char *auth = xasprintf("%s/authorized", o->keys_dir);
    int rc = curve_keys_read_pair(key, &pair), one = 1;
    if (rc == 0)
        rc = zap_new(c->ctx, auth, &c->zap);
    if (rc == 0 && (zmq_setsockopt(c->sock, ZMQ_ZAP_DOMAIN, "encore", 6) != 0 ||
                    zmq_setsockopt(c->sock, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
                    zmq_setsockopt(c->sock, ZMQ_CURVE_SECRETKEY, pair.sec,
                                   CURVE_KEYS_Z85 + 1) != 0))
        rc = log_error_rc(ENC_EINVAL, "cannot make '%s' a CurveZMQ server: %s", o->listen,
                          zmq_strerror(errno));
    if (rc == 0) {
        log_info("CurveZMQ: public key %s, %zu peer key(s) authorized in %s", pair.pub,
                 zap_keys(c->zap), auth);
        if (zap_keys(c->zap) == 0)
            log_warn("no key in '%s': every worker and client will be refused", auth);
    }
    memset(&pair, 0, sizeof pair);
    free(key);
    free(auth);
    return rc;
}

/*
 * The --http status endpoint (coordinator/http.h): read-only views of the
 * scheduler, built like the replies to Status and Workers so /status and
 * /workers are byte for byte what `encore status --json` and `encore
 * workers --json` print (common/status_json.h), newline included.
 */
static void http_json_error(struct http_response *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void http_json_error(struct http_response *r, int status, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct textbuf b = {0};
    textbuf_printf(&b, "{\"error\":");
    textbuf_json_str(&b, msg);
    textbuf_printf(&b, "}\n");
    r->status = status;
    r->content_type = "application/json";
    r->body = textbuf_take(&b, &r->body_len);
}

static void http_status(struct coordinator *c, const char *id_s, struct http_response *r)
{
    size_t n;
    struct sched_job *const *jobs = sched_jobs(c->sched, &n);
    struct textbuf b = {0};
    struct wire_job_info ji;
    if (id_s) {
        int64_t id;
        struct sched_job *j = NULL;
        if (parse_i64(id_s, 1, INT64_MAX, &id) == 0)
            j = sched_job_find(c->sched, (uint64_t)id);
        if (!j) {
            http_json_error(r, 404, "unknown job '%s'", id_s);
            return;
        }
        job_info(j, 0, &ji);
        status_json_job(&b, &ji);
    } else {
        struct wire_job_info *all = xcalloc(n + 1, sizeof *all);
        for (size_t i = 0; i < n; i++)
            job_info(jobs[i], 0, &all[i]);
        status_json_jobs(&b, all, (int)n, c->st.stale, c->st.bad_messages);
        free(all);
    }
    textbuf_append(&b, "\n", 1);
    r->status = 200;
    r->content_type = "application/json";
    r->body = textbuf_take(&b, &r->body_len);
}

static void http_workers(struct coordinator *c, struct http_response *r)
{
    size_t n;
    struct sched_worker *const *ws = sched_workers(c->sched, &n);
    struct wire_worker_info *all = xcalloc(n + 1, sizeof *all);
    int64_t now = now_ms();
    double wall = now_wall();
    for (size_t i = 0; i < n; i++)
        worker_info(ws[i], now, wall, &all[i]);
    struct textbuf b = {0};
    status_json_workers(&b, all, (int)n);
    free(all);
    textbuf_append(&b, "\n", 1);
    r->status = 200;
    r->content_type = "application/json";
    r->body = textbuf_take(&b, &r->body_len);
}

static void metric(struct textbuf *b, const char *name, const char *type, const char *help,
                   int64_t v)
{
    textbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %lld\n", name, help, name, type, name,
                   (long long)v);
}

static void http_metrics(struct coordinator *c, struct http_response *r)
{
    struct textbuf b = {0};
    const struct coordinator_stats *st = &c->st;
    metric(&b, "encore_coordinator_results_total", "counter", "Results applied.", st->results);
    metric(&b, "encore_coordinator_stale_results_total", "counter",
           "Results dropped as stale (an older attempt).", st->stale);
    metric(&b, "encore_coordinator_bad_messages_total", "counter", "Messages refused as malformed.",
           st->bad_messages);
    metric(&b, "encore_coordinator_tasks_sent_total", "counter", "Tasks sent to workers.",
           st->tasks_sent);
    metric(&b, "encore_coordinator_bytes_sent_total", "counter",
           "Input bytes sent to workers with tasks.", st->bytes_sent);
    metric(&b, "encore_coordinator_bytes_full_total", "counter",
           "Input bytes the tasks would have needed without window affinity.", st->bytes_full);
    metric(&b, "encore_coordinator_commits_total", "counter",
           "Transactions committed (turns made durable).", st->batches);
    metric(&b, "encore_coordinator_commit_waits_total", "counter",
           "Results deferred until their window's last move committed.", st->commit_waits);
    size_t n_workers, n_jobs;
    sched_workers(c->sched, &n_workers);
    metric(&b, "encore_workers_connected", "gauge", "Workers connected.", (int64_t)n_workers);
    struct sched_job *const *jobs = sched_jobs(c->sched, &n_jobs);
    int64_t by_state[SCHED_JOB_CANCELLED + 1] = {0};
    for (size_t i = 0; i < n_jobs; i++)
        if ((int)jobs[i]->state >= 0 && jobs[i]->state <= SCHED_JOB_CANCELLED)
            by_state[jobs[i]->state]++;
    textbuf_printf(&b, "# HELP encore_jobs Jobs by state.\n# TYPE encore_jobs gauge\n");
    for (int s = 0; s <= SCHED_JOB_CANCELLED; s++)
        textbuf_printf(&b, "encore_jobs{state=\"%s\"} %lld\n",
                       sched_job_state_name((enum sched_job_state)s), (long long)by_state[s]);
    static const char *const per_job[2][2] = {
        {"encore_job_tasks_done", "Tasks done, per running job."},
        {"encore_job_tasks_total", "Tasks of the job, per running job."}};
    for (int f = 0; f < 2; f++) {
        textbuf_printf(&b, "# HELP %s %s\n# TYPE %s gauge\n", per_job[f][0], per_job[f][1],
                       per_job[f][0]);
        for (size_t i = 0; i < n_jobs; i++)
            if (jobs[i]->state == SCHED_JOB_RUNNING)
                textbuf_printf(&b, "%s{job=\"%llu\"} %lld\n", per_job[f][0],
                               (unsigned long long)jobs[i]->row.id,
                               (long long)(f ? jobs[i]->tasks_total : jobs[i]->tasks_done));
    }
    r->status = 200;
    r->content_type = "text/plain; version=0.0.4; charset=utf-8";
    r->body = textbuf_take(&b, &r->body_len);
}

/* http_route(): the http_handler; every view is read-only. */
static void http_route(void *ctx, const char *path, struct http_response *r)
{
    struct coordinator *c = ctx;
    if (strcmp(path, "/healthz") == 0) {
        r->status = 200;
        r->content_type = "text/plain; charset=utf-8";
        r->body = xstrdup("ok\n");
        r->body_len = 3;
    } else if (strcmp(path, "/status") == 0) {
        http_status(c, NULL, r);
    } else if (strncmp(path, "/status/", 8) == 0) {
        http_status(c, path + 8, r);
    } else if (strcmp(path, "/workers") == 0) {
        http_workers(c, r);
    } else if (strcmp(path, "/metrics") == 0) {
        http_metrics(c, r);
    } else {
        http_json_error(r, 404,
                        "unknown path '%s': try /status, /status/ID, /workers, "
                        "/metrics or /healthz",
                        path);
    }
}

int coordinator_new(const struct coordinator_opts *o, struct coordinator **out)
{
    struct coordinator *c = xcalloc(1, sizeof *c);
    struct sched_hooks hooks = {.window_changed = hook_window, .job_changed = hook_job,
                                .task_requeued = hook_requeued, .settled = hook_settled};
    int rc;
    *out = NULL;
    if ((rc = security_check(o))) {
        free(c);
        return rc;
    }
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
    char *blobs = xasprintf("%s/blobs", o->state_dir);
    if (mkdir(blobs, 0755) != 0 && errno != EEXIST) {
        rc = log_error_rc(ENC_EIO, "cannot create '%s': %s", blobs, strerror(errno));
        free(blobs);
        goto fail;
    }
    free(blobs);
    c->sched = sched_new(&hooks, c);
    if ((rc = store_begin(c->store)))
        goto fail;
    int requeued = store_recover(c->store);
    if (requeued >= 0 && (rc = store_load(c->store, on_loaded, c)) == 0) {
        write_windows(c);
        rc = journal_apply(&c->jr_open, c->store); /* no committer yet: write here */
    }
    journal_clear(&c->jr_open);
    set_clear(&c->seen_open);
    if (requeued < 0 || rc || c->db_error || (rc = store_commit(c->store))) {
        rc = requeued < 0 ? requeued : rc ? rc : ENC_EDB;
        goto fail;
    }
    if ((rc = committer_new(c->store, &c->committer)))
        goto fail;
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
    if ((rc = security_setup(c)))
        goto fail;
    if (zmq_bind(c->sock, o->listen) != 0) {
        rc = log_error_rc(ENC_EIO, "cannot listen on '%s': %s", o->listen, zmq_strerror(errno));
        goto fail;
    }
    log_info("listening on %s, state in %s", o->listen, o->state_dir);
    if (o->http && (rc = http_new(o->http, http_route, c, &c->http)))
        goto fail;
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

/* defer(): keep result m (taken) until its window's last move commits. */
static void defer(struct coordinator *c, const uint8_t *rid, size_t rid_len, struct wire_msg *m)
{
    if (c->n_deferred == c->cap_deferred) {
        c->cap_deferred = c->cap_deferred ? 2 * c->cap_deferred : 16;
        c->deferred = xrealloc(c->deferred, sizeof *c->deferred * c->cap_deferred);
    }
    struct deferred *d = &c->deferred[c->n_deferred++];
    memcpy(d->rid, rid, rid_len);
    d->rid_len = rid_len;
    d->m = *m;
    wire_msg_init(m, WIRE_NONE);
    c->st.commit_waits++;
}

/* run_deferred(): handle, in arrival order, the deferred results whose
 * window has settled since; returns how many. */
static int run_deferred(struct coordinator *c)
{
    size_t keep = 0;
    int n = 0;
    for (size_t i = 0; i < c->n_deferred; i++) {
        struct deferred *d = &c->deferred[i];
        if (result_conflict(c, &d->m) != CONFLICT_NONE) {
            if (keep != i)
                c->deferred[keep] = *d;
            keep++;
            continue;
        }
        handle(c, d->rid, d->rid_len, &d->m);
        wire_msg_release(&d->m);
        n++;
    }
    c->n_deferred = keep;
    return n;
}

/*
 * One turn = one transaction. A turn opens with the first message after
 * the last handoff and gathers what arrives for at least commit_ms and for
 * as long as the turn before it is still committing; results are applied
 * and new tasks sent as they come. Then it is handed to the committer
 * (latent stores synced, then the database committed, on its thread) while
 * the next turn opens, and its replies leave when it is durable. So the
 * loop never waits on an fsync (a result whose window moved in a turn not
 * yet durable waits on its own, deferred), and under load thousands of
 * results per second share a few dozen commits.
 */
int coordinator_run(struct coordinator *c)
{
    struct wire_msg m;
    uint8_t rid[WIRE_RID_MAX];
    size_t rid_len;
    char err[WIRE_ERR_MAX];
    int64_t last_expire = now_ms();
    int64_t turn_start = -1; /* when the open turn got its first message */
    int rc = 0;
    while (!c->stop) {
        zmq_pollitem_t it[3 + HTTP_POLL_ITEMS] = {
            {.socket = c->sock, .events = ZMQ_POLLIN},
            {.fd = committer_fd(c->committer), .events = ZMQ_POLLIN},
            {.socket = c->zap ? zap_socket(c->zap) : NULL, .events = ZMQ_POLLIN}};
        int n_it = c->zap ? 3 : 2, http_at = n_it;
        if (c->http)
            n_it += http_poll_items(c->http, it + http_at);
        long timeout = 100;
        if (turn_start >= 0 && !committer_busy(c->committer)) {
            int64_t left = turn_start + c->o.commit_ms - now_ms();
            timeout = left > 0 ? (long)left : 0;
        }
        int pr = zmq_poll(it, n_it, timeout);
        if (pr < 0 && errno != EINTR)
            return log_error_rc(ENC_EIO, "poll failed: %s", zmq_strerror(errno));
        if (c->zap)
            zap_serve(c->zap); /* handshakes wait for it: answer first */
        if ((rc = reap(c, 0)))
            return rc;
        int got = run_deferred(c);
        for (int i = 0; i < BATCH_MAX; i++) {
            rc = wire_recv(c->sock, rid, &rid_len, ZMQ_DONTWAIT, &c->limits, &m, err, sizeof err);
            if (rc == ENC_ETIMEOUT || rc == ENC_EIO)
                break;
            if (rc == ENC_EWIRE) {
                c->st.bad_messages++;
                reply_error(c, rid, rid_len, 0, ENC_EWIRE, "%s", err);
                continue;
            }
            if (result_conflict(c, &m) != CONFLICT_NONE) {
                defer(c, rid, rid_len, &m); /* its window's last move must commit first */
                got++;
                continue;
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
        if (c->http)
            http_serve(c->http, it + http_at, n_it - http_at);
        if (turn_start < 0 && (got > 0 || turn_pending(c)))
            turn_start = now;
        if (turn_start < 0 || committer_busy(c->committer) ||
            (now - turn_start < c->o.commit_ms && !c->stop))
            continue; /* keep gathering: the acks wait, the tasks are out */
        turn_start = -1;
        if (turn_pending(c) && (rc = handoff(c)))
            return rc;
    }
    /* Stopped: what the open turn holds is committed before returning. */
    if ((rc = reap(c, 1)) || (turn_pending(c) && (rc = handoff(c))) || (rc = reap(c, 1)))
        return rc;
    return 0;
}

void coordinator_destroy(struct coordinator **pc)
{
    struct coordinator *c = *pc;
    if (!c)
        return;
    for (size_t i = 0; i < c->n_out; i++) {
        wire_msg_release(&c->out[i].m);
        free(c->out[i].buf);
        free(c->out[i].buf2);
    }
    free(c->out);
    committer_destroy(&c->committer);
    for (size_t i = 0; i < c->n_acks; i++) {
        wire_msg_release(&c->acks[i].m);
        free(c->acks[i].buf);
        free(c->acks[i].buf2);
    }
    free(c->acks);
    for (size_t i = 0; i < c->n_deferred; i++)
        wire_msg_release(&c->deferred[i].m); /* never acknowledged: requeued on restart */
    free(c->deferred);
    free(c->held);
    free(c->held_free);
    journal_free(&c->jr_open);
    journal_free(&c->jr_flight);
    free(c->dirty);
    free(c->seen_open.e);
    free(c->seen_flight.e);
    http_destroy(&c->http);
    if (c->sock)
        zmq_close(c->sock);
    zap_destroy(&c->zap);
    if (c->own_ctx)
        zmq_ctx_term(c->ctx);
    sched_destroy(&c->sched);
    store_close(&c->store);
    free(c->state_dir);
    free(c);
    *pc = NULL;
}
