/* t_store.c - the SQLite store: migrations, WAL, batches, reload, restart
 * recovery, a newer schema refused, an unwritable directory refused. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "coordinator/store.h"
#include "tests/tap.h"

static int loaded;
static int64_t loaded_recv;
static int on_job(void *ctx, const struct store_job *j, const struct store_window *w)
{
    (void)ctx;
    loaded++;
    loaded_recv = w[1].received_step;
    return strcmp(j->params.prompt, "hi") != 0;
}

int main(void)
{
    char dir[128], sub[300], cmd[600];
    struct store *s;
    snprintf(dir, sizeof dir, "/tmp/t_store.XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    log_set_level(LOG_LEVEL_ERROR);
    snprintf(sub, sizeof sub, "%s/state", dir);
    is_int(store_open(sub, 1, &s), 0, "create a state directory and database");
    struct store_job j;
    memset(&j, 0, sizeof j);
    snprintf(j.state, sizeof j.state, "queued");
    snprintf(j.params.model, sizeof j.params.model, "sim");
    snprintf(j.params.blend, sizeof j.params.blend, "log");
    snprintf(j.params.prompt, sizeof j.params.prompt, "hi");
    j.params.steps = 3;
    j.n_windows = 2;
    struct store_window w[2] = {{0, 0, 21, -1, -1, 0}, {1, 16, 16, -1, -1, 0}};
    is_int(store_begin(s), 0, "begin");
    is_int(store_job_insert(s, &j, w), 0, "insert a job");
    ok(j.id == 1, "job id 1");
    w[1].received_step = 2;
    is_int(store_window_update(s, j.id, &w[1]), 0, "update a window");
    is_int(store_task_running(s, j.id, 1, 0, 1, "w1", 5.0), 0, "task running");
    is_int(store_event_at(s, j.id, "submit", 1.5, "job 1"), 0, "event");
    is_int(store_commit(s), 0, "commit");
    is_int(store_count(s, "tasks", "state='running'"), 1, "one running task");
    store_close(&s);

    is_int(store_open(sub, 1, &s), 0, "reopen");
    is_int(store_recover(s), 1, "recovery requeues the running task");
    is_int(store_load(s, on_job, NULL), 0, "load");
    is_int(loaded, 1, "one job loaded");
    is_int(loaded_recv, 2, "window state survives");
    store_close(&s);

    /* A database from a newer encore. */
    char dbp[400];
    sqlite3 *db;
    snprintf(dbp, sizeof dbp, "%s/encore.db", sub);
    sqlite3_open(dbp, &db);
    char pragma[64];
    snprintf(pragma, sizeof pragma, "PRAGMA user_version=%d", store_schema_version() + 1);
    sqlite3_exec(db, pragma, NULL, NULL, NULL);
    sqlite3_close(db);
    is_int(store_open(sub, 1, &s), ENC_EDB, "a newer schema is refused");
    ok(s == NULL, "and nothing is opened");

    /* Unwritable directory (skipped as root, who can write anywhere). */
    char ro[320];
    snprintf(ro, sizeof ro, "%s/ro", dir);
    mkdir(ro, 0555);
    if (geteuid() == 0)
        skip(1, "running as root");
    else
        is_int(store_open(ro, 1, &s), ENC_EIO, "an unwritable state directory is refused");
    snprintf(cmd, sizeof cmd, "chmod -R u+w %s; rm -rf %s", dir, dir);
    if (system(cmd) != 0)
        diag("cannot clean %s", dir);
    return done_testing();
}
