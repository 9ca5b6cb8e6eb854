/*
 * client.h - what the client commands share: one request/reply exchange
 * with a coordinator, and the render options of DESIGN 7.
 */
#ifndef ENCORE_CLIENT_H
#define ENCORE_CLIENT_H

#include <stdint.h>

#include "common/wire.h"

/*
 * client_call() sends req to the coordinator at ep and waits up to
 * timeout_ms for the reply. Returns 0 with *rep filled (release it), or
 * prints "encore CMD: ..." on stderr and returns the exit status: 1 when
 * the coordinator does not answer, 2 when it refused the request (its
 * Error message is printed).
 */
int client_call(void *zctx, const char *ep, const char *cmd, struct wire_msg *req,
                struct wire_msg *rep, int timeout_ms);

struct curve_client;
/*
 * client_set_keys() makes every later client_call() to a coordinator not on
 * inproc:// a CurveZMQ client with keys k (borrowed: it must outlive the
 * calls; NULL: none again). Over tcp:// and ipc://, client_call() also
 * watches the handshake: when the coordinator refuses this client's key, or
 * one side uses CurveZMQ and the other not, it says so at once instead of
 * waiting for its timeout.
 */
void client_set_keys(const struct curve_client *k);

/* Options of `encore render` and `encore submit`. */
struct render_opts {
    struct wire_job_params p;
    int priority;
    int workers;            /* render: in-process workers */
    int local;              /* render --local */
    const char *state_dir;  /* render: state directory (default: a temporary one) */
    const char *output;     /* -o OUT.mp4 */
    const char *save_latents;
    const char *backend;    /* "engine" or "sim" */
    int sim_ms;
    const char *audio, *image;
    const char *models_dir; /* --models DIR as given (p.model holds its name) */
    int threads;            /* cpu threads; 0: one per core */
    const char *device;     /* render: "cpu" or "cuda:N" */
    int quiet;              /* no progress lines */
};

void render_opts_default(struct render_opts *r);

/*
 * render_opts_parse() parses argv[1..] into r (positional AUDIO IMAGE too).
 * Returns 0, or prints a usage error and returns 2.
 */
int render_opts_parse(struct render_opts *r, int argc, char **argv, const char *usage,
                      int for_render);

/* render_opts_usage: the option lines shared by both commands. */
extern const char render_opts_usage[];

/* client_write_latents() writes bf16 latents [16, L, h, w] as a
 * safetensors file with one tensor `latents`. 0 or 1 (error printed). */
int client_write_latents(const char *path, const uint16_t *data, int64_t L, int64_t h, int64_t w);

/*
 * client_submit() submits r: its parameters and the bytes of its AUDIO and
 * IMAGE files (when given; the coordinator stores them as blobs). 0 with
 * *job_id, or an exit status after printing why (a file named).
 */
int client_submit(void *zctx, const char *ep, const char *cmd, const struct render_opts *r,
                  uint64_t *job_id);
/* client_get_output() writes done job id's MP4 to path; client_get_latents()
 * its final latents (safetensors). 0 or an exit status (error printed). */
int client_get_output(void *zctx, const char *ep, const char *cmd, uint64_t id,
                      const char *path);
int client_get_latents(void *zctx, const char *ep, const char *cmd, uint64_t id,
                       const char *path);

/*
 * client_watch() polls job id until it is over, showing one live progress
 * line on stderr (unless quiet): steps and windows done, tasks/s, ETA and
 * a one-line picture of the wavefront. Returns 0 when the job is done, 1
 * when it failed or was cancelled or the coordinator went away.
 */
int client_watch(void *zctx, const char *ep, uint64_t id, int quiet);
#endif
