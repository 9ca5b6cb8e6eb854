/*
 * coordinator.h - the coordinator daemon's event loop (DESIGN 3-4): one
 * ROUTER socket for workers and clients, the SQLite store, the latent
 * stores, the blob store (input files by sha256, DIR/blobs/HASH), the
 * scheduler, and the stitch of decoded chunks into the job's MP4.
 *
 * One turn of the loop applies the messages that arrive (results written to
 * the latent stores, new tasks sent at once) and records its database
 * writes in a journal; at its end the committer thread syncs the latent
 * stores, then commits the journal in one transaction, while the next turn
 * goes on (coordinator/committer.h). Acknowledgements and replies leave
 * only once their turn is durable, so nothing acknowledged can be lost; a
 * task promises nothing durable (a restart bumps every attempt).
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
    int64_t max_blob;       /* bytes of one input file (audio, image); 0: default */
    int commit_ms;          /* a busy turn's transaction gathers results this long (0: one
                             * commit per poll wake-up); tasks never wait for it */
    const char *keys_dir;   /* CurveZMQ: DIR/coordinator.key is the server's pair and
                             * DIR/authorized/NAME.pub the peers let in (read once); NULL:
                             * no security, only for a local listen endpoint */
    int insecure;           /* allow a non-local listen endpoint without keys_dir */
    const char *http;       /* HOST:PORT of the read-only HTTP status endpoint
                             * (coordinator/http.h); NULL: none */
};

#define COORDINATOR_MAX_BLOB_DEFAULT ((int64_t)256 << 20)

struct coordinator_stats {
    int64_t results, stale, bad_messages, tasks_sent, bytes_sent, bytes_full, batches;
    int64_t commit_waits; /* results deferred until their window's last move committed */
};

struct coordinator;

/* coordinator_opts_default() fills defaults (listen and state_dir NULL). */
void coordinator_opts_default(struct coordinator_opts *o);

/*
 * coordinator_new() opens the state directory (store, latent stores),
 * requeues what a previous run left running and binds the endpoint (a
 * CURVE server with a ZAP handler when keys_dir is set). Returns 0 or a
 * negative enc_err, logged with the offending path/endpoint/key file;
 * ENC_EINVAL for a listen endpoint reachable from other machines without
 * keys_dir or insecure. With o->http it also listens there (a bad
 * address or one in use is refused, naming it).
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
