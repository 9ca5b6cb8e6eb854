/*
 * store.h - the coordinator's durable state in SQLite (WAL mode): jobs,
 * windows (the wavefront), task attempts, workers, events (DESIGN 4).
 *
 * The only module that includes sqlite3.h. The schema is the numbered
 * migrations of schema/ (embedded at build time) tracked by PRAGMA
 * user_version; a database newer than this binary is refused.
 *
 * Writes happen inside store_begin()/store_commit() batches: the coordinator
 * groups everything one turn of its event loop changed into one transaction
 * and sends acknowledgements only after the commit (write, then commit, then
 * ack). Not thread-safe: one thread at a time (the coordinator's loop, or
 * the committer while it holds a turn, coordinator/committer.h).
 */
#ifndef ENCORE_STORE_H
#define ENCORE_STORE_H

#include <stdint.h>

#include "common/wire.h"

struct store;

struct store_job {
    uint64_t id;
    char state[16]; /* queued|running|done|failed|cancelled */
    int priority;
    struct wire_job_params params;
    int64_t n_windows, latent_frames;
    double created_at, started_at, finished_at;
    char error[WIRE_ERR_MAX];
    int64_t stale_results, requeued, bytes_sent, bytes_full;
};

struct store_window {
    int64_t k, start, len;
    int received_step, final_step; /* -1: none yet */
    uint32_t attempt;
};

/*
 * store_open() opens or creates DIR/encore.db (creating DIR if missing),
 * sets WAL mode and applies pending migrations. durable != 0 makes every
 * commit reach the disk (synchronous=FULL). Fails with ENC_EIO naming DIR
 * when it cannot be created or written, ENC_EDB naming the file when the
 * database is from a newer encore or cannot be read.
 */
int store_open(const char *dir, int durable, struct store **out);
void store_close(struct store **s);
/* store_schema_version() is the number of migrations this binary knows. */
int store_schema_version(void);

int store_begin(struct store *s);
int store_commit(struct store *s);
/* store_rollback() abandons the open batch. */
int store_rollback(struct store *s);
/* store_in_batch() is whether a batch is open. */
int store_in_batch(const struct store *s);

/* store_job_insert() inserts job j (sets j->id) and its windows w[n_windows]. */
int store_job_insert(struct store *s, struct store_job *j, const struct store_window *w);
/* store_job_update() writes j's state, times, error and counters. */
int store_job_update(struct store *s, const struct store_job *j);
int store_window_update(struct store *s, uint64_t job_id, const struct store_window *w);
int store_task_running(struct store *s, uint64_t job_id, int64_t k, int step, uint32_t attempt,
                       const char *owner, double lease_expiry);
int store_task_finish(struct store *s, uint64_t job_id, int64_t k, int step, const char *state,
                      double at);
int store_worker_seen(struct store *s, const struct wire_hello *h, double now);
/* store_event_at(): an event of wall-clock time at (seconds), message msg
 * (journal_event() formats and timestamps the coordinator's). */
int store_event_at(struct store *s, uint64_t job_id, const char *kind, double at,
                   const char *msg);

/* store_blob_put() records blob hash (sha256 hex) stored at path (relative
 * to the state directory), bytes long; a known hash is left as it is. */
int store_blob_put(struct store *s, const char *hash, const char *path, int64_t bytes);

/*
 * store_recover() marks every task attempt left 'running' by a previous
 * coordinator as 'requeued' and returns how many (or a negative enc_err).
 */
int store_recover(struct store *s);

/* store_load() calls fn once per job, in id order, with its windows
 * (borrowed for the call). A non-zero return from fn stops and is returned. */
typedef int store_job_fn(void *ctx, const struct store_job *j, const struct store_window *w);
int store_load(struct store *s, store_job_fn *fn, void *ctx);

/* store_count() runs "SELECT count(*) FROM <table> WHERE <where>" (tests,
 * status); returns the count or a negative enc_err. Both strings are
 * trusted constants. */
int64_t store_count(struct store *s, const char *table, const char *where);

#endif
