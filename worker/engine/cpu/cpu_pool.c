/*
 * cpu_pool.c - the cpu backend's thread pool.
 *
 * A run posts a job (fn, arg, n_tasks) and bumps the generation; workers
 * sleeping on `wake` enter the generation, take task numbers from the atomic
 * counter `next` until it passes n_tasks, and leave. The caller takes tasks
 * too (tid 0) and returns once `done` reaches n_tasks: it never waits for a
 * worker that has not woken yet, so a small op costs no scheduler round trip
 * when the pool is slow to wake. Invariants:
 * - the job fields change only under mu while active == 0, so a worker that
 *   entered a generation reads a stable job until it leaves;
 * - a worker that enters late (its job already done) finds next >= n_tasks
 *   and leaves without calling fn;
 * - task results are published by the seq_cst increment of done, which the
 *   caller reads before returning.
 */
#include "cpu_pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/xmalloc.h"

struct cpu_pool {
    int n_threads;
    pthread_t *threads; /* (n_threads - 1) */
    pthread_mutex_t mu;
    pthread_cond_t wake;     /* a new generation or shutdown */
    pthread_cond_t all_done; /* done reached n_tasks */
    pthread_cond_t idle;     /* active reached 0 */
    uint64_t generation;
    int active; /* workers inside the current generation */
    int shutdown;
    /* the current job */
    cpu_task_fn *fn;
    void *arg;
    int64_t n_tasks;
    _Atomic int64_t next;
    _Atomic int64_t done;
};

struct worker_start {
    struct cpu_pool *pool;
    int tid;
};

static void drain(struct cpu_pool *p, int tid)
{
    for (;;) {
        int64_t t = atomic_fetch_add(&p->next, 1);
        if (t >= p->n_tasks)
            return;
        p->fn(p->arg, t, tid);
        if (atomic_fetch_add(&p->done, 1) + 1 == p->n_tasks) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->all_done);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

static void *worker_main(void *argp)
{
    struct worker_start *ws = argp;
    struct cpu_pool *p = ws->pool;
    int tid = ws->tid;
    free(ws);
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->shutdown && p->generation == seen)
            pthread_cond_wait(&p->wake, &p->mu);
        if (p->shutdown)
            break;
        seen = p->generation;
        p->active++;
        pthread_mutex_unlock(&p->mu);
        drain(p, tid);
        pthread_mutex_lock(&p->mu);
        if (--p->active == 0)
            pthread_cond_signal(&p->idle);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

struct cpu_pool *cpu_pool_new(int n_threads)
{
    if (n_threads < 1)
        n_threads = 1;
    struct cpu_pool *p = xcalloc(1, sizeof *p);
    p->n_threads = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->all_done, NULL);
    pthread_cond_init(&p->idle, NULL);
    atomic_init(&p->next, 0);
    atomic_init(&p->done, 0);
    p->threads = xcalloc((size_t)n_threads, sizeof *p->threads);
    for (int i = 1; i < n_threads; i++) {
        struct worker_start *ws = xmalloc(sizeof *ws);
        ws->pool = p;
        ws->tid = i;
        int rc = pthread_create(&p->threads[i - 1], NULL, worker_main, ws);
        if (rc != 0) {
            free(ws);
            log_error("cpu pool: cannot start thread %d of %d: %s", i, n_threads, strerror(rc));
            p->n_threads = i; /* join only those started */
            cpu_pool_destroy(&p);
            return NULL;
        }
    }
    return p;
}

void cpu_pool_destroy(struct cpu_pool **pp)
{
    struct cpu_pool *p = pp ? *pp : NULL;
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->shutdown = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n_threads; i++)
        pthread_join(p->threads[i - 1], NULL);
    pthread_cond_destroy(&p->idle);
    pthread_cond_destroy(&p->all_done);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p);
    *pp = NULL;
}

int cpu_pool_threads(const struct cpu_pool *p)
{
    return p->n_threads;
}

void cpu_pool_run(struct cpu_pool *p, int64_t n_tasks, cpu_task_fn *fn, void *arg)
{
    if (n_tasks <= 0)
        return;
    if (p->n_threads == 1 || n_tasks == 1) {
        for (int64_t t = 0; t < n_tasks; t++)
            fn(arg, t, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    while (p->active > 0) /* late workers of the last run still leaving */
        pthread_cond_wait(&p->idle, &p->mu);
    p->fn = fn;
    p->arg = arg;
    p->n_tasks = n_tasks;
    atomic_store(&p->next, 0);
    atomic_store(&p->done, 0);
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    drain(p, 0);
    if (atomic_load(&p->done) < n_tasks) {
        pthread_mutex_lock(&p->mu);
        while (atomic_load(&p->done) < n_tasks)
            pthread_cond_wait(&p->all_done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
}
