/*
 * scheduler.h - the wavefront scheduler: which denoise task is ready, who
 * runs it, and how window outputs become the blended state (DESIGN 2-4).
 *
 * In memory only; the coordinator persists what the hooks report and owns
 * all I/O. Per window the state machine is
 *
 *     WAITING --ready--> READY --sched_next--> RUNNING --accept--> WAITING
 *        ^                 ^                      |  (received_step = s)
 *        |                 +------requeue---------+  (attempt + 1)
 *        +-- finalize (blend, final_step = s) ----+--> DONE (s = S-1)
 *
 * Invariants (sched_check):
 *  - final_step <= received_step <= final_step + 1;
 *  - finalize(k, s) needs received_step(k) == s and, when k > 0 and s > 0,
 *    final_step(k-1) >= s: v_{k-1} at step s is then in slot s % 2;
 *  - denoise(k, s+1) is READY only when every window overlapping k has
 *    final_step >= s (the wavefront rule); so no slot is overwritten while
 *    a task or blend may still need it;
 *  - a result is applied at most once: it must match a (job, task, attempt)
 *    the sending worker holds; anything else is stale, duplicate or refused.
 * Jobs of the engine also have a prepare task (windows wait for it) and
 * decode tasks, one per segment of latent frames [a, b): a segment is
 * READY once every window covering [a - warmup, b) is DONE, so video is
 * decoded while later windows still denoise. When every segment is in,
 * outputs_ready tells the coordinator to stitch and end the job.
 * Ready tasks are served highest priority first, FIFO within a priority,
 * and a worker is offered the window it ran last when it is as urgent.
 */
#ifndef ENCORE_SCHEDULER_H
#define ENCORE_SCHEDULER_H

#include <stddef.h>
#include <stdint.h>

#include "common/latent_file.h"
#include "common/wire.h"
#include "coordinator/store.h"

enum sched_win_state {
    SCHED_WIN_WAITING = 0,
    SCHED_WIN_READY,
    SCHED_WIN_RUNNING,
    SCHED_WIN_DONE,
};

enum sched_job_state {
    SCHED_JOB_QUEUED = 0,
    SCHED_JOB_RUNNING,
    SCHED_JOB_DONE,
    SCHED_JOB_FAILED,
    SCHED_JOB_CANCELLED,
};

struct sched_window {
    int64_t start, len;
    int64_t lo, hi;             /* windows overlapping this one: [lo, hi] */
    int received_step, final_step;
    uint32_t attempt;
    enum sched_win_state state;
    uint64_t owner;             /* worker id while RUNNING */
    uint64_t ready_seq;         /* FIFO order among equal priorities */
    uint64_t last_worker;       /* who produced received_step (affinity) */
    int64_t last_worker_done;   /* ... and its tasks_done just after */
    float *head_mem;            /* a received head waiting for its blend, kept in
                                 * memory instead of the store (sched_accept) */
    uint64_t cookie;            /* the caller's, untouched by the scheduler */
};

/* A prepare or decode task: one attempt at a time, like a window. */
struct sched_unit {
    enum sched_win_state state;  /* WAITING, READY, RUNNING, DONE */
    uint32_t attempt;
    uint64_t owner;
    uint64_t ready_seq;
    int64_t a, b;                /* decode: latent frames [a, b) */
};

/* What a job runs besides denoise (sched_add_job_staged). */
struct sched_stages {
    int prepare;                 /* a prepare task gates the windows */
    int prepared;                /* ... and it is already done */
    int64_t seg_len;             /* decode segments of this many latents; 0: no decode */
    int warmup;                  /* latents decoded before a segment */
    const uint8_t *seg_done;     /* [segments] already decoded, or NULL */
};

struct sched_job {
    struct store_job row;       /* params, counters, state string */
    enum sched_job_state state;
    int blend_scheme;
    float weights[64];          /* blend weights, overlap entries */
    int64_t h, w, fs;           /* latent rows, columns; values per frame */
    int64_t n_windows, windows_done, tasks_done, tasks_total;
    struct sched_window *win;   /* [n_windows] */
    struct latent_file *lf;     /* owned; NULL once the job is over */
    int queue;                  /* index of its model's ready queue */
    int has_prepare;
    struct sched_unit prep;
    int64_t n_segs, segs_done;
    int warmup;
    struct sched_unit *seg;     /* [n_segs] */
    int outputs_ready;          /* every segment decoded: stitch, then sched_job_end() */
};

struct sched_task {
    struct sched_job *job;
    int kind;                   /* enum wire_task_kind */
    int64_t seg;                /* decode: the segment */
    int64_t k;                  /* denoise: the window; -1 prepare, -2 - seg decode */
    int step;
    uint32_t attempt;
    uint64_t task_id;
    int base_step;              /* affinity: the worker holds its output of this step; -1 none */
};

struct sched_ref {
    uint64_t job_id, task_id;
    uint32_t attempt;
    uint64_t seq;               /* running[]: sent as the worker's seq-th task of its
                                 * session (1, 2, ...; set by the coordinator); 0 unknown */
};

#define SCHED_MAX_CREDITS 8

struct sched_worker {
    uint64_t id;
    char name[WIRE_NAME_MAX], backend[WIRE_NAME_MAX], device[WIRE_NAME_MAX];
    int n_models;
    char models[WIRE_MAX_MODELS][WIRE_NAME_MAX];
    uint8_t rid[WIRE_RID_MAX];  /* ZeroMQ routing id */
    size_t rid_len;
    int credits;
    int n_running;
    struct sched_ref running[SCHED_MAX_CREDITS];
    uint64_t tasks_sent;        /* Task messages sent in this session (the coordinator's) */
    int64_t last_seen_ms;
    double connected_at;
    int64_t tasks_done;
    int cache_windows;          /* outputs it keeps (hello): an LRU over its last runs */
    int n_pref;                 /* ready windows this worker ran last */
    struct { struct sched_job *job; int64_t k; uint64_t seq; } pref[16];
    int n_prepared;             /* jobs whose prepared blob this worker was sent */
    uint64_t prepared[8];
};

/* Hooks: the coordinator persists what changed (any may be NULL). */
struct sched_hooks {
    void (*window_changed)(void *ctx, struct sched_job *j, int64_t k);
    void (*job_changed)(void *ctx, struct sched_job *j);
    void (*task_requeued)(void *ctx, struct sched_job *j, int64_t k, int step);
    /* settled(): window k's last move is durable (NULL: always). Affinity
     * waits for it: the window's next result would otherwise arrive while
     * its last move is still being committed, and have to wait. */
    int (*settled)(void *ctx, struct sched_job *j, int64_t k);
};

enum sched_verdict {
    SCHED_OK = 0,
    SCHED_STALE,        /* an older attempt, a duplicate or a job no longer running */
    SCHED_NOT_HELD,     /* a task the sender does not hold */
    SCHED_UNKNOWN_JOB,
    SCHED_UNKNOWN_TASK,
};

struct sched;

struct sched *sched_new(const struct sched_hooks *hooks, void *ctx);
void sched_destroy(struct sched **s);

/*
 * sched_add_job() takes a job row and its windows (fresh or loaded from the
 * store) and the job's latent store (ownership passes, even on failure).
 * It finishes any blend a crash left pending and marks ready windows.
 * Returns 0 or ENC_EINVAL when the row is inconsistent.
 */
int sched_add_job(struct sched *s, const struct store_job *row, const struct store_window *w,
                  struct latent_file **lf, struct sched_job **out);
/* sched_add_job_staged() is sched_add_job() for a job with prepare and/or
 * decode tasks (st may be NULL: denoise only). */
int sched_add_job_staged(struct sched *s, const struct store_job *row,
                         const struct store_window *w, struct latent_file **lf,
                         const struct sched_stages *st, struct sched_job **out);
/* sched_job_end() ends a running job: done, or failed with msg. */
void sched_job_end(struct sched *s, struct sched_job *j, int ok, const char *msg);
struct sched_job *sched_job_find(struct sched *s, uint64_t id);
/* sched_jobs() lists all jobs (borrowed), in id order. */
struct sched_job *const *sched_jobs(struct sched *s, size_t *n);
const char *sched_job_state_name(enum sched_job_state st);
/* sched_cancel(): ENC_EINVAL when the job is already done/failed/cancelled. */
int sched_cancel(struct sched *s, struct sched_job *j);

/* sched_worker_add() registers a worker; the returned pointer lives until
 * sched_worker_remove(). */
struct sched_worker *sched_worker_add(struct sched *s, const struct wire_hello *h,
                                      const uint8_t *rid, size_t rid_len, int64_t now_ms,
                                      double now);
struct sched_worker *sched_worker_by_rid(struct sched *s, const uint8_t *rid, size_t rid_len);
struct sched_worker *const *sched_workers(struct sched *s, size_t *n);
/* sched_worker_remove() requeues every task the worker held and frees it. */
void sched_worker_remove(struct sched *s, struct sched_worker **w);
void sched_worker_credit(struct sched *s, struct sched_worker *w, int n);
/* sched_worker_holds() is w's running[] entry for task r (job, task and
 * attempt compared; r's seq is not), or NULL when w does not hold it. */
struct sched_ref *sched_worker_holds(struct sched_worker *w, const struct sched_ref *r);

/*
 * sched_next() picks the next task for worker w (one credit): the most
 * urgent ready task of a model w holds, or, as urgent, one w ran last.
 * Marks it RUNNING. Returns 1 with *t filled, 0 when nothing fits.
 */
int sched_next(struct sched *s, struct sched_worker *w, struct sched_task *t);

/*
 * sched_task_input() gathers the input of denoise(k, step) (step >= 1):
 * state[step-1] over the window's frames, as bf16 frames into buf
 * [len][16][h][w]. With base_step >= 0 only the frames that differ from
 * the worker's own bf16 output of that step are gathered. Writes the
 * window-local indices to sent[] and returns their count.
 */
int sched_task_input(struct sched_job *j, int64_t k, int step, int base_step, uint16_t *buf,
                     int32_t *sent);

/*
 * sched_check_result() decides what a result or failure report from w for
 * (job, task, attempt) is. With SCHED_OK (and for a stale result of a task
 * w held) it also releases w's credit; *t then names the task.
 */
enum sched_verdict sched_check_result(struct sched *s, struct sched_worker *w,
                                      const struct sched_ref *r, struct sched_task *t);

/*
 * sched_accept() stores the output of task t (checked SCHED_OK) into the
 * latent store, blends what became final and marks what became ready. The
 * output comes as the Result's two tensors: head, its first n_head =
 * min(O, len) frames in f32 [n_head][16][h][w] (for k > 0 and step > 0
 * they are blended with v_{k-1} before rounding; otherwise rounded to bf16
 * here), and rest, the other len - n_head frames already rounded to bf16
 * [len - n_head][16][h][w] (f32_to_bf16, stored as they are). by is the
 * worker that produced it (affinity).
 *
 * A head that must wait for its predecessor's blend is kept in memory
 * (win->head_mem, up to SCHED_HEAD_MEMORY bytes in all; beyond that in the
 * store's head area): it is then not durable, and the caller must neither
 * record the window as received (sched_durable_received()) nor acknowledge
 * the result until the window is final (a crash before that requeues the
 * task). Returns 1 when the result is durable once written, 0 when its
 * head is held in memory.
 */
#define SCHED_HEAD_MEMORY ((size_t)16 << 20)
/* sched_set_head_memory() changes that budget (0: every head to the store). */
void sched_set_head_memory(struct sched *s, size_t bytes);
int sched_accept(struct sched *s, const struct sched_task *t, const float *head,
                 const uint16_t *rest, uint64_t by);

/* sched_durable_received(): the received step the store can vouch for: a
 * head held in memory is not (its window counts as not received). */
int sched_durable_received(const struct sched_window *w);

/* sched_accept_unit() marks prepare or decode task t (checked SCHED_OK)
 * done, its output stored by the caller; wakes what waited on it. */
void sched_accept_unit(struct sched *s, const struct sched_task *t, uint64_t by);

/* sched_requeue() puts a RUNNING task back as READY with attempt + 1. */
void sched_requeue(struct sched *s, const struct sched_task *t);

/* sched_expire() removes workers silent for more than lease_ms, requeuing
 * their tasks; returns how many it removed. */
int sched_expire(struct sched *s, int64_t now_ms, int64_t lease_ms);

/* sched_final_frame() is frame f of the final state (bf16 [16][h][w]) of a
 * done job whose latent store is open. */
const uint16_t *sched_final_frame(struct sched_job *j, int64_t f);

/* sched_check() verifies the invariants above for job j; 1 if they hold. */
int sched_check(const struct sched_job *j);

/* sched_pending() counts READY tasks (all jobs). */
int64_t sched_pending(struct sched *s);

/* sched_task_id(): denoise task ids are 1 + k*steps + step; then the
 * prepare task (K*S + 1) and decode segment i (K*S + 2 + i). */
uint64_t sched_task_id(const struct sched_job *j, int64_t k, int step);
/* sched_task_store_key() is the (window, step) a task is recorded under in
 * the store: the window and step; -1, 0 for prepare; -2, seg for decode. */
void sched_task_store_key(const struct sched_task *t, int64_t *k, int *step);

#endif
