/*
 * agent.h - the worker daemon's protocol side (DESIGN 3): a DEALER socket
 * to the coordinator, hello, credits (one task in flight plus one
 * prefetched), heartbeats, reconnect with backoff, clean shutdown.
 *
 * Two threads: the agent's I/O thread (agent_run) owns the socket and
 * keeps heartbeating while the runner thread executes a task on the
 * backend, so a long task never looks like a dead worker. On stop (SIGTERM)
 * the agent hands back the task it has not started and finishes the
 * running one, then says bye.
 *
 * Backends: "sim" (worker/sim.h, for load tests: with --sim-ms N a denoise
 * task takes N ms from the runner taking it to its result being ready, the
 * sim's own compute included, or longer if that compute does) and
 * "engine": prepare (encoders, worker/prepare.h), denoise (the DiT step of
 * worker/longloop.h, the very function the local loop runs) and decode
 * (worker/decode_stage.h). The sim backend decodes too, with the tiny VAE.
 * The engine keeps the prepared jobs it made or was sent (by job id) and
 * answers TaskFailed{cache miss} when a denoise task needs one it lost.
 */
#ifndef ENCORE_AGENT_H
#define ENCORE_AGENT_H

#include <stdint.h>

struct curve_client;

struct agent_opts {
    const char *coordinator; /* endpoint */
    const char *name;        /* NULL: host-pid */
    const char *backend;     /* "sim" or "engine" */
    const char *device;      /* "cpu", "cuda:N" */
    const char *model;       /* model name advertised ("sim", "tiny", dir name) */
    const char *models_dir;  /* engine: the model directory; NULL: the tiny model */
    int threads;             /* engine: cpu threads; 0: one per core */
    int sim_ms;              /* sim backend: a denoise task takes at least this many ms,
                                compute included (its result is ready then) */
    int cache_windows;       /* windows kept for affinity */
    void *zmq_ctx;           /* NULL: own context */
    const struct curve_client *curve; /* CurveZMQ keys (borrowed, outlive the agent);
                                         NULL: none */
};

struct agent;

void agent_opts_default(struct agent_opts *o);
/* agent_new(): ENC_EINVAL (logged) for an unknown or unavailable backend. */
int agent_new(const struct agent_opts *o, struct agent **out);
/* agent_run() serves until agent_stop() and the running task is done. */
int agent_run(struct agent *a);
/* agent_stop(): async-signal-safe. */
void agent_stop(struct agent *a);
void agent_destroy(struct agent **a);

/* What the runner did: tasks run, seconds spent on them, and seconds it
 * waited with no task queued after its first one (time the coordinator
 * left this worker starved). */
struct agent_stats {
    uint64_t tasks;
    double busy_s, starved_s;
};
void agent_get_stats(struct agent *a, struct agent_stats *st);
/* agent_sum_stats(): the figures of n agents (NULL entries skipped), summed. */
void agent_sum_stats(struct agent *const *a, int n, struct agent_stats *sum);

#endif
