/*
 * committer.c - the commit thread (see committer.h).
 *
 * State, under mu: busy (started, not reaped) > working (the thread has
 * it) > done (finished, outcome in rc). The eventfd carries one wake-up
 * per finished turn for the loop's zmq_poll; reaping drains it.
 */
#include "committer.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/xmalloc.h"

struct committer {
    struct store *store;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int efd;
    int busy, working, done, quit, rc;
    const struct journal *jr;
    int *fds;
    int n_fds, cap_fds;
};

static int commit_turn(struct committer *c)
{
    int rc = 0;
    for (int i = 0; i < c->n_fds; i++) {
        if (!rc && fdatasync(c->fds[i]) != 0)
            rc = log_error_rc(ENC_EIO, "cannot sync a latent store: %s", strerror(errno));
        close(c->fds[i]);
    }
    c->n_fds = 0;
    if (!rc && !(rc = store_begin(c->store)) && (rc = journal_apply(c->jr, c->store)) != 0)
        store_rollback(c->store);
    if (!rc)
        rc = store_commit(c->store);
    else if (store_in_batch(c->store))
        store_rollback(c->store);
    return rc;
}

static void *committer_main(void *arg)
{
    struct committer *c = arg;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->working && !c->quit)
            pthread_cond_wait(&c->cv, &c->mu);
        if (!c->working)
            break;
        pthread_mutex_unlock(&c->mu);
        int rc = commit_turn(c);
        pthread_mutex_lock(&c->mu);
        c->rc = rc;
        c->working = 0;
        c->done = 1;
        pthread_cond_broadcast(&c->cv);
        uint64_t one = 1;
        if (write(c->efd, &one, sizeof one) < 0)
            log_warn("committer: cannot signal the loop: %s", strerror(errno));
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

int committer_new(struct store *s, struct committer **out)
{
    struct committer *c = xcalloc(1, sizeof *c);
    *out = NULL;
    c->store = s;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (c->efd < 0 || pthread_create(&c->thread, NULL, committer_main, c) != 0) {
        int rc = log_error_rc(ENC_EIO, "cannot start the commit thread: %s", strerror(errno));
        if (c->efd >= 0)
            close(c->efd);
        pthread_mutex_destroy(&c->mu);
        pthread_cond_destroy(&c->cv);
        free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void committer_destroy(struct committer **pc)
{
    struct committer *c = *pc;
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->quit = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    for (int i = 0; i < c->n_fds; i++)
        close(c->fds[i]);
    free(c->fds);
    close(c->efd);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
    *pc = NULL;
}

int committer_fd(const struct committer *c)
{
    return c->efd;
}

int committer_busy(const struct committer *c)
{
    return c->busy; /* written only by the loop's own thread */
}

void committer_start(struct committer *c, const struct journal *jr, const int *fds, int n_fds)
{
    pthread_mutex_lock(&c->mu);
    if (n_fds > c->cap_fds) {
        c->cap_fds = n_fds;
        c->fds = xrealloc(c->fds, sizeof *c->fds * (size_t)n_fds);
    }
    if (n_fds > 0)
        memcpy(c->fds, fds, sizeof *fds * (size_t)n_fds);
    c->n_fds = n_fds;
    c->jr = jr;
    c->busy = 1;
    c->working = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

int committer_reap(struct committer *c, int block, int *rc)
{
    pthread_mutex_lock(&c->mu);
    if (!c->busy) {
        pthread_mutex_unlock(&c->mu);
        return 0;
    }
    while (block && !c->done)
        pthread_cond_wait(&c->cv, &c->mu);
    if (!c->done) {
        pthread_mutex_unlock(&c->mu);
        return 0;
    }
    *rc = c->rc;
    c->done = 0;
    c->busy = 0;
    pthread_mutex_unlock(&c->mu);
    uint64_t n;
    while (read(c->efd, &n, sizeof n) > 0)
        ;
    return 1;
}
