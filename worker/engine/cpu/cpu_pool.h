/*
 * cpu_pool.h - a fixed pthread pool that runs numbered tasks.
 *
 * cpu_pool_run() calls fn(arg, task, tid) once for every task in [0, n) and
 * returns when all have finished. The calling thread works too, as tid 0;
 * the pool's own threads are tids 1..n_threads-1. Which thread runs which
 * task is not fixed, so a task must compute the same bytes whoever runs it:
 * its result may depend on the task number only (tid only picks per-thread
 * scratch). One run at a time per pool.
 */
#ifndef ENCORE_CPU_POOL_H
#define ENCORE_CPU_POOL_H

#include <stdint.h>

struct cpu_pool;

typedef void cpu_task_fn(void *arg, int64_t task, int tid);

/* cpu_pool_new() starts n_threads - 1 threads (n_threads >= 1). NULL if a
 * thread cannot be started (logged). Free with cpu_pool_destroy(). */
struct cpu_pool *cpu_pool_new(int n_threads);
/* cpu_pool_destroy() joins the threads; accepts NULL, NULLs *p. */
void cpu_pool_destroy(struct cpu_pool **p);
int cpu_pool_threads(const struct cpu_pool *p);
/* cpu_pool_run() runs tasks 0..n_tasks-1 and waits for them all. */
void cpu_pool_run(struct cpu_pool *p, int64_t n_tasks, cpu_task_fn *fn, void *arg);

#endif
