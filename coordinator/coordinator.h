/*
 * coordinator.h - the coordinator daemon's event loop (DESIGN 3-4): one
 * ROUTER socket for workers and clients, the SQLite store, the latent
 * stores, the scheduler.
 *
 * One turn of the loop reads every waiting message (up to a batch size),
 * applies them in one store transaction, makes the latent stores durable,
 * commits, and only then sends what the turn produced (acks, tasks,
 * replies). So nothing acknowledged can be lost, and no task is handed out
 * on state that is not yet durable.
 */
#ifndef ENCORE_COORDINATOR_H
#define ENCORE_COORDINATOR_H

#include <stdint.h>

struct coordinator_opts {
    const char *listen;     /* endpoint to bind, e.g. tcp://127.0.0.1:7707 or inproc://x */
    const char *state_dir;  /* created if missing */
    void *zmq_ctx;          /* NULL: the coordinator makes its own */
    int durable;            /* fsync latent stores and the database at each commit */
    int heartbeat_ms;       /* what workers are told to use */
    int lease_ms;           /* a worker silent this long loses its tasks */
    int64_t max_message;    /* bytes of one envelope frame; 0: default */
};

struct coordinator_stats {
    int64_t results, stale, bad_messages, tasks_sent, bytes_sent, bytes_full, batches;
};

struct coordinator;

/* coordinator_opts_default() fills defaults (listen and state_dir NULL). */
void coordinator_opts_default(struct coordinator_opts *o);

/*
 * coordinator_new() opens the state directory (store, latent stores),
 * requeues what a previous run left running and binds the endpoint.
 * Returns 0 or a negative enc_err, logged with the offending path/endpoint.
 */
int coordinator_new(const struct coordinator_opts *o, struct coordinator **out);

/* coordinator_run() serves until coordinator_stop(); returns 0 or an error. */
int coordinator_run(struct coordinator *c);

/* coordinator_stop() asks the loop to return; safe from any thread or a
 * signal handler. */
void coordinator_stop(struct coordinator *c);

void coordinator_get_stats(const struct coordinator *c, struct coordinator_stats *st);
void coordinator_destroy(struct coordinator **c);

#endif
