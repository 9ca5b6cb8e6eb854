/*
 * committer.h - makes a coordinator turn durable off the event loop.
 *
 * A turn hands over its journal (the store writes it recorded) and a
 * descriptor per latent store it wrote. The committer thread fdatasyncs the
 * latent stores first, then applies the journal in one transaction and
 * commits (the WAL's fsync): the database never names latents that are not
 * on disk. Meanwhile the event loop goes on taking results and handing out
 * tasks into the next turn; it sends the finished turn's acknowledgements
 * once committer_reap() reports it durable. One turn is in flight at a
 * time, and the store belongs to the committer until it is reaped.
 */
#ifndef ENCORE_COMMITTER_H
#define ENCORE_COMMITTER_H

#include "coordinator/journal.h"
#include "coordinator/store.h"

struct committer;

/* committer_new() starts the thread; ENC_EIO if it cannot. */
int committer_new(struct store *s, struct committer **out);
/* committer_destroy() waits for the turn in flight (its result is lost:
 * reap first) and stops the thread. */
void committer_destroy(struct committer **c);

/* committer_fd() becomes readable when the turn in flight is finished. */
int committer_fd(const struct committer *c);
/* committer_busy(): a turn was started and not yet reaped. */
int committer_busy(const struct committer *c);

/*
 * committer_start() hands over a turn: jr (read by the thread until the
 * turn is reaped: leave it alone) and n_fds latent store descriptors (taken:
 * synced and closed by the thread). The committer must not be busy.
 */
void committer_start(struct committer *c, const struct journal *jr, const int *fds, int n_fds);

/*
 * committer_reap(): if the turn in flight is finished (block != 0: wait
 * for it), sets *rc to its outcome (0: durable; else the enc_err, already
 * logged, and nothing of it may be acknowledged) and returns 1; returns 0
 * when nothing was in flight or (block == 0) it is still running.
 */
int committer_reap(struct committer *c, int block, int *rc);

#endif
