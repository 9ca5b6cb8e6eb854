/*
 * store.c - SQLite persistence for the coordinator (see store.h).
 *
 * Statements are prepared once and reused. Every mutating call expects an
 * open batch (store_begin) and asserts it; the coordinator commits once per
 * turn of its loop, so thousands of task completions share one fsync.
 */
#include "store.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/xmalloc.h"

extern const char *const schema_migrations[];
extern const int schema_n_migrations;

enum stmt_id {
    ST_JOB_INSERT,
    ST_WINDOW_INSERT,
    ST_JOB_UPDATE,
    ST_WINDOW_UPDATE,
    ST_TASK_RUNNING,
    ST_TASK_FINISH,
    ST_WORKER_SEEN,
    ST_EVENT,
    ST_BLOB_PUT,
    ST_COUNT_
};

static const char *const stmt_sql[ST_COUNT_] = {
    [ST_JOB_INSERT] =
        "INSERT INTO jobs (state, priority, model, n_samples, clip_frames, overlap, blend, "
        "steps, seed, width, height, text_scale, audio_scale, fps, prompt, negative, "
        "audio_path, image_path, n_windows, latent_frames, created_at, audio_blob, image_blob) "
        "VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,"
        "?22,?23)",
    [ST_WINDOW_INSERT] =
        "INSERT INTO windows (job_id, k, start, len, received_step, final_step, attempt) "
        "VALUES (?1,?2,?3,?4,?5,?6,?7)",
    [ST_JOB_UPDATE] = "UPDATE jobs SET state=?2, started_at=?3, finished_at=?4, error=?5, "
                      "stale_results=?6, requeued=?7, bytes_sent=?8, bytes_full=?9 WHERE id=?1",
    [ST_WINDOW_UPDATE] = "UPDATE windows SET received_step=?3, final_step=?4, attempt=?5 "
                         "WHERE job_id=?1 AND k=?2",
    [ST_TASK_RUNNING] = "INSERT OR REPLACE INTO tasks (job_id, window, step, state, attempt, "
                        "lease_owner, lease_expiry) VALUES (?1,?2,?3,'running',?4,?5,?6)",
    [ST_TASK_FINISH] =
        "UPDATE tasks SET state=?4, done_at=?5 WHERE job_id=?1 AND window=?2 AND step=?3",
    [ST_WORKER_SEEN] = "INSERT INTO workers (name, backend, device, models, first_seen, "
                       "last_seen) VALUES (?1,?2,?3,?4,?5,?5) ON CONFLICT(name) DO UPDATE SET "
                       "backend=?2, device=?3, models=?4, last_seen=?5",
    [ST_EVENT] = "INSERT INTO events (at, job_id, kind, message) VALUES (?1,?2,?3,?4)",
    [ST_BLOB_PUT] = "INSERT OR IGNORE INTO blobs (hash, path, bytes) VALUES (?1,?2,?3)",
};

struct store {
    sqlite3 *db;
    char *path;
    sqlite3_stmt *st[ST_COUNT_];
    int in_batch;
};

int store_schema_version(void)
{
    return schema_n_migrations;
}

static int db_error(struct store *s, const char *what)
{
    return log_error_rc(ENC_EDB, "database '%s': %s: %s", s->path, what, sqlite3_errmsg(s->db));
}

static int exec(struct store *s, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int rc = log_error_rc(ENC_EDB, "database '%s': %s", s->path, msg ? msg : "error");
        sqlite3_free(msg);
        return rc;
    }
    return 0;
}

static int user_version(struct store *s, int *v)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return db_error(s, "cannot read its schema version");
    int rc = sqlite3_step(st);
    *v = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : db_error(s, "cannot read its schema version");
}

static int migrate(struct store *s)
{
    int v, rc;
    if ((rc = user_version(s, &v)))
        return rc;
    if (v > schema_n_migrations)
        return log_error_rc(ENC_EDB,
                            "database '%s' has schema version %d, newer than the %d this "
                            "encore-coordinator knows: use a newer encore",
                            s->path, v, schema_n_migrations);
    for (int i = v; i < schema_n_migrations; i++) {
        char pragma[64];
        if ((rc = exec(s, "BEGIN IMMEDIATE")))
            return rc;
        if ((rc = exec(s, schema_migrations[i]))) {
            exec(s, "ROLLBACK");
            return log_error_rc(rc, "database '%s': migration %d failed", s->path, i + 1);
        }
        snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", i + 1);
        if ((rc = exec(s, pragma)) || (rc = exec(s, "COMMIT")))
            return rc;
        log_info("database '%s': applied schema migration %d", s->path, i + 1);
    }
    return 0;
}

int store_open(const char *dir, int durable, struct store **out)
{
    struct store *s;
    struct stat st;
    int rc;
    *out = NULL;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return log_error_rc(ENC_EIO, "cannot create state directory '%s': %s", dir,
                            strerror(errno));
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return log_error_rc(ENC_EIO, "state directory '%s' is not a directory", dir);
    if (access(dir, W_OK | X_OK) != 0)
        return log_error_rc(ENC_EIO, "state directory '%s' is not writable: %s", dir,
                            strerror(errno));
    /* One connection, used by one thread at a time but not always the same
     * one (the loop, the committer): SQLite's multi-thread mode (NOMUTEX),
     * which a library built single-threaded cannot give. */
    if (!sqlite3_threadsafe())
        return log_error_rc(ENC_EDB, "this SQLite library is built without thread support");
    s = xcalloc(1, sizeof *s);
    s->path = xasprintf("%s/encore.db", dir);
    if (sqlite3_open_v2(s->path, &s->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        rc = log_error_rc(ENC_EDB, "cannot open database '%s': %s", s->path,
                          s->db ? sqlite3_errmsg(s->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(s->db, 5000);
    if ((rc = exec(s, "PRAGMA journal_mode=WAL")))
        goto fail;
    if ((rc = exec(s, durable ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL")))
        goto fail;
    if ((rc = migrate(s)))
        goto fail;
    for (int i = 0; i < ST_COUNT_; i++) {
        if (sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i],
                               NULL) != SQLITE_OK) {
            rc = db_error(s, "cannot prepare a statement");
            goto fail;
        }
    }
    *out = s;
    return 0;
fail:
    store_close(&s);
    return rc;
}

void store_close(struct store **ps)
{
    struct store *s = *ps;
    if (!s)
        return;
    for (int i = 0; i < ST_COUNT_; i++)
        sqlite3_finalize(s->st[i]);
    if (s->db)
        sqlite3_close(s->db);
    free(s->path);
    free(s);
    *ps = NULL;
}

int store_begin(struct store *s)
{
    if (s->in_batch)
        return 0;
    int rc = exec(s, "BEGIN IMMEDIATE");
    if (!rc)
        s->in_batch = 1;
    return rc;
}

int store_commit(struct store *s)
{
    if (!s->in_batch)
        return 0;
    int rc = exec(s, "COMMIT");
    if (rc)
        exec(s, "ROLLBACK");
    s->in_batch = 0;
    return rc;
}

int store_rollback(struct store *s)
{
    if (!s->in_batch)
        return 0;
    s->in_batch = 0;
    return exec(s, "ROLLBACK");
}

int store_in_batch(const struct store *s)
{
    return s->in_batch;
}

/* run() steps a bound statement to completion and resets it. */
static int run(struct store *s, enum stmt_id id)
{
    int rc = sqlite3_step(s->st[id]);
    sqlite3_reset(s->st[id]);
    sqlite3_clear_bindings(s->st[id]);
    if (rc != SQLITE_DONE)
        return db_error(s, "write failed");
    return 0;
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
    sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
}

int store_job_insert(struct store *s, struct store_job *j, const struct store_window *w)
{
    sqlite3_stmt *st = s->st[ST_JOB_INSERT];
    const struct wire_job_params *p = &j->params;
    int rc;
    if (!s->in_batch && (rc = store_begin(s)))
        return rc;
    bind_text(st, 1, j->state);
    sqlite3_bind_int(st, 2, j->priority);
    bind_text(st, 3, p->model);
    sqlite3_bind_int64(st, 4, p->n_samples);
    sqlite3_bind_int(st, 5, p->clip_frames);
    sqlite3_bind_int(st, 6, p->overlap);
    bind_text(st, 7, p->blend);
    sqlite3_bind_int(st, 8, p->steps);
    sqlite3_bind_int64(st, 9, (sqlite3_int64)p->seed);
    sqlite3_bind_int(st, 10, p->width);
    sqlite3_bind_int(st, 11, p->height);
    sqlite3_bind_double(st, 12, p->text_scale);
    sqlite3_bind_double(st, 13, p->audio_scale);
    sqlite3_bind_int(st, 14, p->fps);
    bind_text(st, 15, p->prompt);
    bind_text(st, 16, p->negative);
    bind_text(st, 17, p->audio_path);
    bind_text(st, 18, p->image_path);
    sqlite3_bind_int64(st, 19, j->n_windows);
    sqlite3_bind_int64(st, 20, j->latent_frames);
    sqlite3_bind_double(st, 21, j->created_at);
    bind_text(st, 22, p->audio_blob);
    bind_text(st, 23, p->image_blob);
    if ((rc = run(s, ST_JOB_INSERT)))
        return rc;
    j->id = (uint64_t)sqlite3_last_insert_rowid(s->db);
    st = s->st[ST_WINDOW_INSERT];
    for (int64_t k = 0; k < j->n_windows; k++) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)j->id);
        sqlite3_bind_int64(st, 2, k);
        sqlite3_bind_int64(st, 3, w[k].start);
        sqlite3_bind_int64(st, 4, w[k].len);
        sqlite3_bind_int(st, 5, w[k].received_step);
        sqlite3_bind_int(st, 6, w[k].final_step);
        sqlite3_bind_int64(st, 7, w[k].attempt);
        if ((rc = run(s, ST_WINDOW_INSERT)))
            return rc;
    }
    return 0;
}

int store_job_update(struct store *s, const struct store_job *j)
{
    sqlite3_stmt *st = s->st[ST_JOB_UPDATE];
    sqlite3_bind_int64(st, 1, (sqlite3_int64)j->id);
    bind_text(st, 2, j->state);
    sqlite3_bind_double(st, 3, j->started_at);
    sqlite3_bind_double(st, 4, j->finished_at);
    bind_text(st, 5, j->error);
    sqlite3_bind_int64(st, 6, j->stale_results);
    sqlite3_bind_int64(st, 7, j->requeued);
    sqlite3_bind_int64(st, 8, j->bytes_sent);
    sqlite3_bind_int64(st, 9, j->bytes_full);
    return run(s, ST_JOB_UPDATE);
}

int store_window_update(struct store *s, uint64_t job_id, const struct store_window *w)
{
    sqlite3_stmt *st = s->st[ST_WINDOW_UPDATE];
    sqlite3_bind_int64(st, 1, (sqlite3_int64)job_id);
    sqlite3_bind_int64(st, 2, w->k);
    sqlite3_bind_int(st, 3, w->received_step);
    sqlite3_bind_int(st, 4, w->final_step);
    sqlite3_bind_int64(st, 5, w->attempt);
    return run(s, ST_WINDOW_UPDATE);
}

int store_task_running(struct store *s, uint64_t job_id, int64_t k, int step, uint32_t attempt,
                       const char *owner, double lease_expiry)
{
    sqlite3_stmt *st = s->st[ST_TASK_RUNNING];
    sqlite3_bind_int64(st, 1, (sqlite3_int64)job_id);
    sqlite3_bind_int64(st, 2, k);
    sqlite3_bind_int(st, 3, step);
    sqlite3_bind_int64(st, 4, attempt);
    bind_text(st, 5, owner);
    sqlite3_bind_double(st, 6, lease_expiry);
    return run(s, ST_TASK_RUNNING);
}

int store_task_finish(struct store *s, uint64_t job_id, int64_t k, int step, const char *state,
                      double at)
{
    sqlite3_stmt *st = s->st[ST_TASK_FINISH];
    sqlite3_bind_int64(st, 1, (sqlite3_int64)job_id);
    sqlite3_bind_int64(st, 2, k);
    sqlite3_bind_int(st, 3, step);
    bind_text(st, 4, state);
    sqlite3_bind_double(st, 5, at);
    return run(s, ST_TASK_FINISH);
}

int store_worker_seen(struct store *s, const struct wire_hello *h, double now)
{
    sqlite3_stmt *st = s->st[ST_WORKER_SEEN];
    char models[WIRE_MAX_MODELS * (WIRE_NAME_MAX + 1) + 1];
    size_t off = 0;
    models[0] = 0;
    for (int i = 0; i < h->n_models; i++)
        off += (size_t)snprintf(models + off, sizeof models - off, "%s%s", i ? "," : "",
                                h->models[i]);
    bind_text(st, 1, h->name);
    bind_text(st, 2, h->backend);
    bind_text(st, 3, h->device);
    bind_text(st, 4, models);
    sqlite3_bind_double(st, 5, now);
    return run(s, ST_WORKER_SEEN);
}

int store_event_at(struct store *s, uint64_t job_id, const char *kind, double at,
                   const char *msg)
{
    sqlite3_stmt *st = s->st[ST_EVENT];
    sqlite3_bind_double(st, 1, at);
    if (job_id)
        sqlite3_bind_int64(st, 2, (sqlite3_int64)job_id);
    else
        sqlite3_bind_null(st, 2);
    bind_text(st, 3, kind);
    bind_text(st, 4, msg);
    return run(s, ST_EVENT);
}

int store_blob_put(struct store *s, const char *hash, const char *path, int64_t bytes)
{
    sqlite3_stmt *st = s->st[ST_BLOB_PUT];
    bind_text(st, 1, hash);
    bind_text(st, 2, path);
    sqlite3_bind_int64(st, 3, bytes);
    return run(s, ST_BLOB_PUT);
}

int store_recover(struct store *s)
{
    int rc = exec(s, "UPDATE tasks SET state='requeued' WHERE state='running'");
    return rc ? rc : sqlite3_changes(s->db);
}

static void col_str(sqlite3_stmt *st, int i, char *dst, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

int store_load(struct store *s, store_job_fn *fn, void *ctx)
{
    sqlite3_stmt *js = NULL, *ws = NULL;
    struct store_window *w = NULL;
    int rc = 0;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT id, state, priority, model, n_samples, clip_frames, overlap, "
                           "blend, steps, seed, width, height, text_scale, audio_scale, fps, "
                           "prompt, negative, audio_path, image_path, n_windows, latent_frames, "
                           "created_at, started_at, finished_at, error, stale_results, requeued, "
                           "bytes_sent, bytes_full, audio_blob, image_blob FROM jobs ORDER BY id",
                           -1, &js, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db,
                           "SELECT k, start, len, received_step, final_step, attempt FROM "
                           "windows WHERE job_id=?1 ORDER BY k",
                           -1, &ws, NULL) != SQLITE_OK) {
        rc = db_error(s, "cannot read jobs");
        goto out;
    }
    while ((rc = sqlite3_step(js)) == SQLITE_ROW) {
        struct store_job j;
        struct wire_job_params *p = &j.params;
        memset(&j, 0, sizeof j);
        j.id = (uint64_t)sqlite3_column_int64(js, 0);
        col_str(js, 1, j.state, sizeof j.state);
        j.priority = sqlite3_column_int(js, 2);
        col_str(js, 3, p->model, sizeof p->model);
        p->n_samples = sqlite3_column_int64(js, 4);
        p->clip_frames = sqlite3_column_int(js, 5);
        p->overlap = sqlite3_column_int(js, 6);
        col_str(js, 7, p->blend, sizeof p->blend);
        p->steps = sqlite3_column_int(js, 8);
        p->seed = (uint64_t)sqlite3_column_int64(js, 9);
        p->width = sqlite3_column_int(js, 10);
        p->height = sqlite3_column_int(js, 11);
        p->text_scale = (float)sqlite3_column_double(js, 12);
        p->audio_scale = (float)sqlite3_column_double(js, 13);
        p->fps = sqlite3_column_int(js, 14);
        col_str(js, 15, p->prompt, sizeof p->prompt);
        col_str(js, 16, p->negative, sizeof p->negative);
        col_str(js, 17, p->audio_path, sizeof p->audio_path);
        col_str(js, 18, p->image_path, sizeof p->image_path);
        col_str(js, 29, p->audio_blob, sizeof p->audio_blob);
        col_str(js, 30, p->image_blob, sizeof p->image_blob);
        j.n_windows = sqlite3_column_int64(js, 19);
        j.latent_frames = sqlite3_column_int64(js, 20);
        j.created_at = sqlite3_column_double(js, 21);
        j.started_at = sqlite3_column_double(js, 22);
        j.finished_at = sqlite3_column_double(js, 23);
        col_str(js, 24, j.error, sizeof j.error);
        j.stale_results = sqlite3_column_int64(js, 25);
        j.requeued = sqlite3_column_int64(js, 26);
        j.bytes_sent = sqlite3_column_int64(js, 27);
        j.bytes_full = sqlite3_column_int64(js, 28);
        if (j.n_windows < 1 || j.n_windows > ((int64_t)1 << 30)) {
            rc = log_error_rc(ENC_EDB, "database '%s': job %llu has %lld windows", s->path,
                              (unsigned long long)j.id, (long long)j.n_windows);
            goto out;
        }
        w = xrealloc(w, sizeof *w * (size_t)j.n_windows);
        int64_t n = 0;
        sqlite3_bind_int64(ws, 1, (sqlite3_int64)j.id);
        while (sqlite3_step(ws) == SQLITE_ROW && n < j.n_windows) {
            w[n].k = sqlite3_column_int64(ws, 0);
            w[n].start = sqlite3_column_int64(ws, 1);
            w[n].len = sqlite3_column_int64(ws, 2);
            w[n].received_step = sqlite3_column_int(ws, 3);
            w[n].final_step = sqlite3_column_int(ws, 4);
            w[n].attempt = (uint32_t)sqlite3_column_int64(ws, 5);
            n++;
        }
        sqlite3_reset(ws);
        if (n != j.n_windows) {
            rc = log_error_rc(ENC_EDB, "database '%s': job %llu has %lld of %lld windows",
                              s->path, (unsigned long long)j.id, (long long)n,
                              (long long)j.n_windows);
            goto out;
        }
        if ((rc = fn(ctx, &j, w)))
            goto out;
    }
    rc = rc == SQLITE_DONE ? 0 : db_error(s, "cannot read jobs");
out:
    free(w);
    sqlite3_finalize(js);
    sqlite3_finalize(ws);
    return rc;
}

int64_t store_count(struct store *s, const char *table, const char *where)
{
    char sql[256];
    sqlite3_stmt *st;
    int64_t n = -1;
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s WHERE %s", table, where);
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return db_error(s, "cannot count");
    if (sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}
