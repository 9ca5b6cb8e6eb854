/* t_committer.c - a turn's journal and the commit thread: records replay
 * in order inside one transaction; a turn whose latent sync fails commits
 * nothing and says so; the store stays usable on the loop's thread between
 * turns (rows written there join the next turn's transaction). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "coordinator/committer.h"
#include "coordinator/journal.h"
#include "coordinator/store.h"
#include "tests/tap.h"

static int64_t loaded_final;
static char loaded_state[16];

static int on_job(void *ctx, const struct store_job *j, const struct store_window *w)
{
    (void)ctx;
    loaded_final = w[1].final_step;
    snprintf(loaded_state, sizeof loaded_state, "%s", j->state);
    return 0;
}

int main(void)
{
    char dir[64];
    struct store *s;
    struct committer *cm;
    int rc = -1;
    snprintf(dir, sizeof dir, "/tmp/t_committer.XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    log_set_level(LOG_LEVEL_ERROR);
    is_int(store_open(dir, 1, &s), 0, "open a store");
    is_int(committer_new(s, &cm), 0, "start the committer");

    /* The loop's thread writes a job directly, then records the turn. */
    struct store_job j;
    memset(&j, 0, sizeof j);
    snprintf(j.state, sizeof j.state, "queued");
    snprintf(j.params.model, sizeof j.params.model, "sim");
    snprintf(j.params.blend, sizeof j.params.blend, "log");
    j.params.steps = 2;
    j.n_windows = 2;
    struct store_window w[2] = {{0, 0, 21, -1, -1, 0}, {1, 16, 21, -1, -1, 0}};
    is_int(store_begin(s), 0, "the loop opens the turn's transaction");
    is_int(store_job_insert(s, &j, w), 0, "insert a job");
    struct journal jr = {0};
    journal_task_running(&jr, j.id, 1, 0, 1, "w1", 9.0);
    journal_task_finish(&jr, j.id, 1, 0, "done", 10.0);
    journal_task_running(&jr, j.id, 1, 1, 1, "w1", 11.0); /* replayed in order */
    w[1].received_step = w[1].final_step = 0;
    journal_window(&jr, j.id, &w[1]);
    snprintf(j.state, sizeof j.state, "running");
    journal_job(&jr, &j);
    snprintf(j.state, sizeof j.state, "changed"); /* a copy was recorded */
    journal_event(&jr, j.id, "note", "job %llu %s", (unsigned long long)j.id, "running");
    ok(jr.n == 6, "six records");

    ok(!committer_busy(cm), "idle before a turn");
    ok(committer_reap(cm, 1, &rc) == 0, "nothing to reap");
    int fd = open(dir, O_RDONLY | O_DIRECTORY); /* fdatasync works on a directory */
    committer_start(cm, &jr, &fd, 1);
    ok(committer_busy(cm), "busy with the turn");
    ok(committer_reap(cm, 1, &rc) == 1 && rc == 0, "the turn commits");
    ok(!committer_busy(cm), "idle after reaping");
    is_int(store_count(s, "tasks", "state='running'"), 1, "the later running row replaced");
    is_int(store_count(s, "tasks", "step=0 AND state='done'"), 1, "the finished row kept");
    is_int(store_count(s, "events", "kind='note'"), 1, "the event");
    journal_clear(&jr);

    /* A turn whose latent sync fails commits none of its rows. */
    journal_task_finish(&jr, j.id, 1, 1, "done", 12.0);
    int bad = open("/dev/null", O_WRONLY); /* fdatasync: EINVAL */
    committer_start(cm, &jr, &bad, 1);
    ok(committer_reap(cm, 1, &rc) == 1 && rc == ENC_EIO, "a failed sync fails the turn");
    is_int(store_count(s, "tasks", "step=1 AND state='done'"), 0, "and nothing of it committed");
    ok(!store_in_batch(s), "no transaction left open");

    /* The non-blocking reap sees the finished turn through the eventfd. */
    journal_clear(&jr);
    w[1].final_step = 1;
    journal_window(&jr, j.id, &w[1]);
    committer_start(cm, &jr, NULL, 0);
    uint64_t one;
    struct timespec ts = {0, 1000000};
    int spins = 0;
    while (read(committer_fd(cm), &one, sizeof one) < 0 && spins++ < 5000)
        nanosleep(&ts, NULL);
    ok(committer_reap(cm, 0, &rc) == 1 && rc == 0, "a finished turn reaps without blocking");
    committer_destroy(&cm);
    journal_free(&jr);
    store_close(&s);

    is_int(store_open(dir, 1, &s), 0, "reopen");
    is_int(store_load(s, on_job, NULL), 0, "load");
    is_int(loaded_final, 1, "the window row of the last turn survives");
    ok(strcmp(loaded_state, "running") == 0, "the job row as recorded, not as changed after");
    store_close(&s);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        diag("cannot remove %s", dir);
    return done_testing();
}
