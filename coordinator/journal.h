/*
 * journal.h - the frequent store writes of one coordinator turn (task
 * attempts, window rows, job rows, events), recorded in order in memory on
 * the event loop and applied later, in that order and in one transaction,
 * by the committer thread (committer.h). Recording never touches SQLite,
 * so the loop keeps serving while the previous turn's fsyncs run.
 *
 * Every record is a copy: the caller's state may change right after.
 */
#ifndef ENCORE_JOURNAL_H
#define ENCORE_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "coordinator/store.h"

enum journal_kind {
    JOURNAL_TASK_RUNNING,
    JOURNAL_TASK_FINISH,
    JOURNAL_WINDOW,
    JOURNAL_JOB,
    JOURNAL_EVENT,
};

struct journal_op {
    enum journal_kind kind;
    uint64_t job_id;
    int64_t k;
    int step;
    uint32_t attempt;
    double t;                 /* lease expiry, finish time or event time */
    char name[WIRE_NAME_MAX]; /* task owner, task state or event kind */
    struct store_window w;    /* JOURNAL_WINDOW */
    struct store_job *job;    /* JOURNAL_JOB: owned copy */
    char *text;               /* JOURNAL_EVENT: owned */
};

struct journal {
    struct journal_op *ops;
    size_t n, cap;
};

void journal_task_running(struct journal *jr, uint64_t job_id, int64_t k, int step,
                          uint32_t attempt, const char *owner, double lease_expiry);
void journal_task_finish(struct journal *jr, uint64_t job_id, int64_t k, int step,
                         const char *state, double at);
void journal_window(struct journal *jr, uint64_t job_id, const struct store_window *w);
void journal_job(struct journal *jr, const struct store_job *row);
void journal_event(struct journal *jr, uint64_t job_id, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* journal_apply() performs the records on s in order (inside the caller's
 * transaction); returns 0 or the first error. */
int journal_apply(const struct journal *jr, struct store *s);
/* journal_clear() empties jr (keeping its capacity); journal_free() also
 * releases it. */
void journal_clear(struct journal *jr);
void journal_free(struct journal *jr);

#endif
