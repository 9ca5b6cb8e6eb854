/*
 * cpu_pool.c - the cpu backend's thread pool.
 *
 * Workers sleep on a condition variable until the generation number moves,
 * then take task numbers from an atomic counter until it passes n_tasks; the
 * last worker to finish a generation wakes the caller. The caller takes tasks
 * as tid 0 meanwhile. Invariant: between runs, busy == 0 and no worker reads
 * the job fields.
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
    pthread_t *threads;      /* (n_threads - 1) */
    pthread_mutex_t mu;
    pthread_cond_t wake;     /* a new generation or shutdown */
    pthread_cond_t done;     /* busy reached 0 */
    uint64_t generation;
    int busy;                /* workers still inside the current generation */
    int shutdown;
    /* the current job */
    cpu_task_fn *fn;
    void *arg;
    int64_t n_tasks;
    _Atomic int64_t next;
};

struct worker_start {
    struct cpu_pool *pool;
    int tid;
};

static void drain(struct cpu_pool *p, int tid)
{
    for (;;) {
        int64_t t = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
        if (t >= p->n_tasks)
            return;
        p->fn(p->arg, t, tid);
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
        pthread_mutex_unlock(&p->mu);
        drain(p, tid);
        pthread_mutex_lock(&p->mu);
        if (--p->busy == 0)
            pthread_cond_signal(&p->done);
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
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->next, 0);
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
    pthread_cond_destroy(&p->done);
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
    p->fn = fn;
    p->arg = arg;
    p->n_tasks = n_tasks;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    p->busy = p->n_threads - 1;
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    drain(p, 0);
    pthread_mutex_lock(&p->mu);
    while (p->busy > 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
