/*
 * embed.c - coordinator and workers as threads (see embed.h).
 */
#include "embed.h"

#include <pthread.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "common/xmalloc.h"
#include "coordinator/coordinator.h"
#include "worker/agent.h"

struct embed {
    void *ctx;
    struct coordinator *c;
    pthread_t ct;
    clockid_t ccpu;
    int n;
    struct agent **a;
    pthread_t *wt;
};

static void *coord_main(void *arg)
{
    struct embed *e = arg;
    pthread_getcpuclockid(pthread_self(), &e->ccpu);
    prctl(PR_SET_NAME, "encore-coord", 0, 0, 0); /* perf/top tell the threads apart */
    coordinator_run(e->c);
    return NULL;
}

static void *worker_main(void *arg)
{
    prctl(PR_SET_NAME, "encore-agent", 0, 0, 0);
    agent_run(arg);
    return NULL;
}

int embed_start(struct embed **out, const char *state_dir, const char *ep, int workers,
                int sim_ms, int durable)
{
    struct embed_opts o = {.state_dir = state_dir, .ep = ep, .workers = workers,
                           .backend = "sim", .model = "sim", .sim_ms = sim_ms,
                           .durable = durable};
    return embed_start_opts(out, &o);
}

int embed_start_opts(struct embed **out, const struct embed_opts *o)
{
    struct embed *e = xcalloc(1, sizeof *e);
    struct coordinator_opts co;
    const char *ep = o->ep;
    int workers = o->workers;
    *out = NULL;
    e->ctx = zmq_ctx_new();
    coordinator_opts_default(&co);
    co.listen = ep;
    co.state_dir = o->state_dir;
    co.zmq_ctx = e->ctx;
    co.durable = o->durable;
    if (coordinator_new(&co, &e->c)) {
        zmq_ctx_term(e->ctx);
        free(e);
        return 1;
    }
    pthread_create(&e->ct, NULL, coord_main, e);
    e->n = workers;
    e->a = xcalloc((size_t)workers, sizeof *e->a);
    e->wt = xcalloc((size_t)workers, sizeof *e->wt);
    for (int i = 0; i < workers; i++) {
        struct agent_opts ao;
        char name[32];
        agent_opts_default(&ao);
        snprintf(name, sizeof name, "embedded-%d", i);
        ao.name = name;
        ao.coordinator = ep;
        ao.backend = o->backend;
        ao.model = o->model;
        ao.models_dir = o->models_dir;
        ao.threads = o->threads;
        if (o->device)
            ao.device = o->device;
        if (ao.threads <= 0 && strcmp(o->backend, "sim") != 0) {
            long cores = sysconf(_SC_NPROCESSORS_ONLN);
            ao.threads = cores / workers > 1 ? (int)(cores / workers) : 1;
        }
        ao.sim_ms = o->sim_ms;
        ao.zmq_ctx = e->ctx;
        if (agent_new(&ao, &e->a[i]) != 0) {
            e->n = i;
            embed_stop(&e);
            return 1;
        }
        pthread_create(&e->wt[i], NULL, worker_main, e->a[i]);
    }
    *out = e;
    return 0;
}

void *embed_ctx(struct embed *e)
{
    return e->ctx;
}

struct coordinator *embed_coordinator(struct embed *e)
{
    return e->c;
}

double embed_coordinator_cpu(struct embed *e)
{
    struct timespec ts;
    if (clock_gettime(e->ccpu, &ts) != 0)
        return 0;
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void embed_agent_stats(struct embed *e, struct agent_stats *sum)
{
    agent_sum_stats(e->a, e->n, sum);
}

void embed_stop(struct embed **pe)
{
    struct embed *e = *pe;
    if (!e)
        return;
    for (int i = 0; i < e->n; i++)
        agent_stop(e->a[i]);
    for (int i = 0; i < e->n; i++) {
        pthread_join(e->wt[i], NULL);
        agent_destroy(&e->a[i]);
    }
    coordinator_stop(e->c);
    pthread_join(e->ct, NULL);
    coordinator_destroy(&e->c);
    zmq_ctx_term(e->ctx);
    free(e->a);
    free(e->wt);
    free(e);
    *pe = NULL;
}
