/*
 * journal.c - a turn's store writes, recorded and replayed (see journal.h).
 */
#include "journal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/xmalloc.h"

static struct journal_op *add(struct journal *jr, enum journal_kind kind, uint64_t job_id)
{
    if (jr->n == jr->cap) {
        jr->cap = jr->cap ? 2 * jr->cap : 256;
        jr->ops = xrealloc(jr->ops, sizeof *jr->ops * jr->cap);
    }
    struct journal_op *op = &jr->ops[jr->n++];
    memset(op, 0, sizeof *op);
    op->kind = kind;
    op->job_id = job_id;
    return op;
}

void journal_task_running(struct journal *jr, uint64_t job_id, int64_t k, int step,
                          uint32_t attempt, const char *owner, double lease_expiry)
{
    struct journal_op *op = add(jr, JOURNAL_TASK_RUNNING, job_id);
    op->k = k;
    op->step = step;
    op->attempt = attempt;
    op->t = lease_expiry;
    snprintf(op->name, sizeof op->name, "%s", owner);
}

void journal_task_finish(struct journal *jr, uint64_t job_id, int64_t k, int step,
                         const char *state, double at)
{
    struct journal_op *op = add(jr, JOURNAL_TASK_FINISH, job_id);
    op->k = k;
    op->step = step;
    op->t = at;
    snprintf(op->name, sizeof op->name, "%s", state);
}

void journal_window(struct journal *jr, uint64_t job_id, const struct store_window *w)
{
    add(jr, JOURNAL_WINDOW, job_id)->w = *w;
}

void journal_job(struct journal *jr, const struct store_job *row)
{
    struct journal_op *op = add(jr, JOURNAL_JOB, row->id);
    op->job = xmalloc(sizeof *op->job);
    *op->job = *row;
}

void journal_event(struct journal *jr, uint64_t job_id, const char *kind, const char *fmt, ...)
{
    char msg[512];
    struct timespec ts;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    clock_gettime(CLOCK_REALTIME, &ts);
    struct journal_op *op = add(jr, JOURNAL_EVENT, job_id);
    op->t = (double)ts.tv_sec + ts.tv_nsec * 1e-9;
    snprintf(op->name, sizeof op->name, "%s", kind);
    op->text = xstrdup(msg);
}

int journal_apply(const struct journal *jr, struct store *s)
{
    for (size_t i = 0; i < jr->n; i++) {
        const struct journal_op *op = &jr->ops[i];
        int rc = 0;
        switch (op->kind) {
        case JOURNAL_TASK_RUNNING:
            rc = store_task_running(s, op->job_id, op->k, op->step, op->attempt, op->name, op->t);
            break;
        case JOURNAL_TASK_FINISH:
            rc = store_task_finish(s, op->job_id, op->k, op->step, op->name, op->t);
            break;
        case JOURNAL_WINDOW:
            rc = store_window_update(s, op->job_id, &op->w);
            break;
        case JOURNAL_JOB:
            rc = store_job_update(s, op->job);
            break;
        case JOURNAL_EVENT:
            rc = store_event_at(s, op->job_id, op->name, op->t, op->text);
            break;
        }
        if (rc)
            return rc;
    }
    return 0;
}

void journal_clear(struct journal *jr)
{
    for (size_t i = 0; i < jr->n; i++) {
        free(jr->ops[i].job);
        free(jr->ops[i].text);
    }
    jr->n = 0;
}

void journal_free(struct journal *jr)
{
    journal_clear(jr);
    free(jr->ops);
    memset(jr, 0, sizeof *jr);
}
