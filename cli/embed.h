/*
 * embed.h - a coordinator and N workers (sim or engine) as threads of this process
 * (encore render without --local, encore bench farm): the same code paths
 * as the cluster over inproc:// or any endpoint.
 */
#ifndef ENCORE_EMBED_H
#define ENCORE_EMBED_H

struct embed;

/* embed_start(): state_dir is created if missing; ep e.g. "inproc://encore".
 * durable: fsync at each commit. Returns 0 or 1 (error printed). */
int embed_start(struct embed **out, const char *state_dir, const char *ep, int workers,
                int sim_ms, int durable);
/* The general form: engine or sim workers. */
struct embed_opts {
    const char *state_dir, *ep;
    int workers;
    const char *backend;    /* "sim" or "engine" */
    const char *model;      /* the model name workers advertise ("sim", "tiny", dir name) */
    const char *models_dir; /* engine: NULL for the tiny model */
    int threads;            /* engine: cpu threads per worker; 0: cores / workers */
    const char *device;     /* engine: "cpu" (NULL) or "cuda:N" */
    int sim_ms;
    int durable;
};
int embed_start_opts(struct embed **out, const struct embed_opts *o);

/* embed_ctx() is the ZeroMQ context clients must use for inproc. */
void *embed_ctx(struct embed *e);
/* embed_coordinator_cpu() is the coordinator thread's CPU seconds so far. */
double embed_coordinator_cpu(struct embed *e);
struct coordinator *embed_coordinator(struct embed *e);
struct agent_stats;
/* embed_agent_stats(): the workers' agent_stats, summed. */
void embed_agent_stats(struct embed *e, struct agent_stats *sum);
void embed_stop(struct embed **e);

#endif
