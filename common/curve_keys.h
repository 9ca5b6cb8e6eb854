/*
 * curve_keys.h - CurveZMQ key files (DESIGN 5, docs/protocol.md "Security"):
 * reading, writing and generating them, the client side of a CURVE socket,
 * and which endpoints may go without it.
 *
 * Key files are text; keys are Z85, 40 characters for 32 bytes:
 *
 *   DIR/NAME.pub   the public key alone on one line (mode 0644; may be shared)
 *   DIR/NAME.key   the pair (mode 0600; never leaves the machine):
 *                      # a comment
 *                      public <40 characters>
 *                      secret <40 characters>
 *
 * In a .key file blank lines and lines starting with '#' are ignored (a .pub
 * file has no comments: '#' is a Z85 character). A pair is checked on load:
 * its public key must be the one its secret key derives.
 * The coordinator's directory holds coordinator.key and authorized/NAME.pub (the
 * clients and workers it lets in); a worker's holds worker.key and
 * coordinator.pub, a client's client.key and coordinator.pub.
 */
#ifndef ENCORE_CURVE_KEYS_H
#define ENCORE_CURVE_KEYS_H

#include <stddef.h>
#include <stdint.h>

#define CURVE_KEYS_Z85 40   /* characters of a key in Z85 */
#define CURVE_KEYS_BYTES 32 /* bytes of a key */

/* A key pair, Z85, NUL-terminated. */
struct curve_pair {
    char pub[CURVE_KEYS_Z85 + 1];
    char sec[CURVE_KEYS_Z85 + 1];
};

/* What a client or worker needs: its own pair and the server's public key. */
struct curve_client {
    struct curve_pair pair;
    char server[CURVE_KEYS_Z85 + 1];
};

/* The public keys of one directory (the coordinator's authorized/). */
struct curve_allow {
    uint8_t (*key)[CURVE_KEYS_BYTES]; /* [n] */
    char **name;                      /* [n] file name without .pub, owned */
    size_t n;
};

/*
 * curve_keys_read_public() reads a .pub file into key (Z85). 0, or
 * ENC_EINVAL/ENC_EIO logged naming the file and what is wrong with it
 * (missing, empty, wrong length, a character outside Z85).
 */
int curve_keys_read_public(const char *path, char key[CURVE_KEYS_Z85 + 1]);

/* curve_keys_read_pair() reads a .key file; errors as above, and
 * ENC_EINVAL when the public key does not belong to the secret key. A file
 * others can read is loaded with a warning. */
int curve_keys_read_pair(const char *path, struct curve_pair *p);

/*
 * curve_keys_generate() makes a new pair with zmq_curve_keypair() and
 * writes DIR/NAME.key (0600) and DIR/NAME.pub (0644), creating DIR and
 * its parents if missing. NAME is letters, digits, '.', '_', '-' and does not start
 * with '.'. Refuses (ENC_EINVAL, logged) when either file exists; nothing
 * is left half written. 0 with the pair in *p (when p is not NULL).
 */
int curve_keys_generate(const char *dir, const char *name, struct curve_pair *p);

/* curve_keys_load_client() reads DIR/NAME.key and DIR/coordinator.pub. */
int curve_keys_load_client(const char *dir, const char *name, struct curve_client *c);

/* curve_keys_set_client() makes sock (not yet connected) a CURVE client of
 * the server c names. 0 or ENC_EINVAL (logged: libzmq without curve). */
int curve_keys_set_client(void *sock, const struct curve_client *c);

/*
 * curve_keys_load_allow() reads every DIR/NAME.pub (in name order; other
 * files are ignored). 0, or the error of the first bad file (its name
 * logged) or ENC_EIO when DIR cannot be read. An empty directory is valid
 * (nobody gets in). Release with curve_keys_allow_release().
 */
int curve_keys_load_allow(const char *dir, struct curve_allow *a);

/* curve_keys_allow_find(): the index of key (32 bytes) in a, or -1. */
int curve_keys_allow_find(const struct curve_allow *a, const uint8_t *key);
void curve_keys_allow_release(struct curve_allow *a);

/*
 * curve_keys_endpoint_local() is 1 when a bind endpoint can only be reached
 * from this machine: inproc://, ipc://, and tcp:// on a loopback address
 * (127.0.0.0/8, ::1, localhost); 0 otherwise (any other address, '*', an
 * interface name, other transports).
 */
int curve_keys_endpoint_local(const char *ep);

#endif
