/*
 * zap.h - the coordinator's ZAP handler (ZeroMQ RFC 27) for CurveZMQ: it
 * lets in the peers whose public key is in the authorized directory.
 *
 * libzmq asks the REP socket bound on inproc://zeromq.zap.01 of a context
 * about every CURVE handshake of that context's server sockets, and holds
 * the handshake until it answers. zap_new() binds that socket; its owner
 * polls zap_socket() with its other sockets and calls zap_serve() when it
 * is readable. A peer let in has the key file's name as its ZeroMQ user id;
 * a refusal is logged at warn level, naming the address and the key (a peer
 * that keeps retrying with the same key is logged once per ZAP_LOG_MS).
 * The key list is read once: changes to the directory need a restart.
 */
#ifndef ENCORE_ZAP_H
#define ENCORE_ZAP_H

#include <stddef.h>
#include <stdint.h>

#define ZAP_LOG_MS 10000

struct zap;

struct zap_stats {
    int64_t allowed, refused, malformed;
};

/*
 * zap_new() reads authorized_dir (every NAME.pub, curve_keys_load_allow)
 * and binds the ZAP endpoint in zctx; bind it before any CURVE server
 * socket of zctx. 0, or the key file's error, or ENC_EIO when the endpoint
 * is taken (another ZAP handler in zctx). Release with zap_destroy().
 */
int zap_new(void *zctx, const char *authorized_dir, struct zap **out);

/* zap_socket(): the REP socket to poll for ZMQ_POLLIN. */
void *zap_socket(const struct zap *z);

/* zap_keys(): how many public keys are authorized. */
size_t zap_keys(const struct zap *z);

/* zap_serve() answers the requests waiting, without blocking; returns how
 * many it answered. */
int zap_serve(struct zap *z);

void zap_get_stats(const struct zap *z, struct zap_stats *st);
void zap_destroy(struct zap **z);

#endif
