/*
 * zap.c - the ZAP handler (see zap.h).
 *
 * A request is version "1.0", request id, domain, address, identity,
 * mechanism, then the mechanism's credentials (CURVE: the client's 32-byte
 * public key). The reply is version, request id, status code ("200" in,
 * "400" refused, "500" a request this handler cannot read), status text,
 * user id and an empty metadata frame. Every request gets exactly one reply
 * (the REP socket's turn), malformed ones included.
 */
#include "zap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "common/curve_keys.h"
#include "common/err.h"
#include "common/log.h"
#include "common/xmalloc.h"

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define ZAP_FRAMES_MAX 8 /* the request's frames kept; the rest are read and dropped */
#define ZAP_BATCH 64     /* requests answered per zap_serve() */

struct zap {
    void *sock;
    char *dir;
    struct curve_allow allow;
    struct zap_stats st;
    uint8_t last_key[CURVE_KEYS_BYTES]; /* the refused key logged last */
    int64_t last_log_ms;
    int64_t unlogged; /* refusals of last_key since then, not logged */
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int zap_new(void *zctx, const char *authorized_dir, struct zap **out)
{
    struct zap *z = xcalloc(1, sizeof *z);
    int rc, linger = 0;
    *out = NULL;
    z->dir = xstrdup(authorized_dir);
    z->last_log_ms = -ZAP_LOG_MS;
    if ((rc = curve_keys_load_allow(authorized_dir, &z->allow)))
        goto fail;
    z->sock = zmq_socket(zctx, ZMQ_REP);
    zmq_setsockopt(z->sock, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_bind(z->sock, ZAP_ENDPOINT) != 0) {
        rc = log_error_rc(ENC_EIO, "cannot bind the ZAP handler on '%s': %s", ZAP_ENDPOINT,
                          zmq_strerror(errno));
        goto fail;
    }
    *out = z;
    return 0;
fail:
    zap_destroy(&z);
    return rc;
}

void *zap_socket(const struct zap *z)
{
    return z->sock;
}

size_t zap_keys(const struct zap *z)
{
    return z->allow.n;
}

void zap_get_stats(const struct zap *z, struct zap_stats *st)
{
    *st = z->st;
}

/* frame_is(): frame m holds exactly the string s. */
static int frame_is(zmq_msg_t *m, const char *s)
{
    return zmq_msg_size(m) == strlen(s) && memcmp(zmq_msg_data(m), s, strlen(s)) == 0;
}

/* log_refusal(): warn about a refused key, once per ZAP_LOG_MS for a key
 * refused again and again. */
static void log_refusal(struct zap *z, zmq_msg_t *address, const uint8_t *key)
{
    int64_t now = mono_ms();
    if (memcmp(key, z->last_key, sizeof z->last_key) == 0 && now - z->last_log_ms < ZAP_LOG_MS) {
        z->unlogged++;
        return;
    }
    char z85[CURVE_KEYS_Z85 + 1], more[64] = "";
    zmq_z85_encode(z85, key, CURVE_KEYS_BYTES);
    if (memcmp(key, z->last_key, sizeof z->last_key) == 0 && z->unlogged > 0)
        snprintf(more, sizeof more, " (and %lld times since the last such line)",
                 (long long)z->unlogged);
    log_warn("refused a connection from '%.*s': key %s is not in '%s'%s",
             (int)(zmq_msg_size(address) < 64 ? zmq_msg_size(address) : 64),
             (const char *)zmq_msg_data(address), z85, z->dir, more);
    memcpy(z->last_key, key, sizeof z->last_key);
    z->last_log_ms = now;
    z->unlogged = 0;
}

/* answer(): the verdict on one request of n frames. */
static void answer(struct zap *z, zmq_msg_t *f, int n)
{
    const char *code = "500", *text = "malformed ZAP request", *user = "";
    if (n >= 7 && frame_is(&f[0], "1.0") && frame_is(&f[5], "CURVE") &&
        zmq_msg_size(&f[6]) == CURVE_KEYS_BYTES) {
        const uint8_t *key = zmq_msg_data(&f[6]);
        int i = curve_keys_allow_find(&z->allow, key);
        if (i >= 0) {
            code = "200";
            text = "OK";
            user = z->allow.name[i];
            z->st.allowed++;
            log_debug("let in '%.*s' with the key of '%s'",
                      (int)(zmq_msg_size(&f[3]) < 64 ? zmq_msg_size(&f[3]) : 64),
                      (const char *)zmq_msg_data(&f[3]), user);
        } else {
            code = "400";
            text = "key not authorized";
            z->st.refused++;
            log_refusal(z, &f[3], key);
        }
    } else {
        z->st.malformed++;
        log_warn("malformed ZAP request (%d frames): refused", n);
    }
    const void *rid = n >= 2 ? zmq_msg_data(&f[1]) : "";
    size_t rid_len = n >= 2 ? zmq_msg_size(&f[1]) : 0;
    zmq_send(z->sock, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(z->sock, rid, rid_len, ZMQ_SNDMORE);
    zmq_send(z->sock, code, strlen(code), ZMQ_SNDMORE);
    zmq_send(z->sock, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(z->sock, user, strlen(user), ZMQ_SNDMORE);
    zmq_send(z->sock, "", 0, 0);
}

int zap_serve(struct zap *z)
{
    int served = 0;
    while (served < ZAP_BATCH) {
        zmq_msg_t f[ZAP_FRAMES_MAX];
        int n = 0, more = 1;
        while (more) {
            zmq_msg_t extra, *m = n < ZAP_FRAMES_MAX ? &f[n] : &extra;
            zmq_msg_init(m);
            if (zmq_msg_recv(m, z->sock, n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
                zmq_msg_close(m);
                break;
            }
            more = zmq_msg_more(m);
            if (m == &extra)
                zmq_msg_close(m); /* past the frames a request has: dropped */
            else
                n++;
        }
        if (n == 0)
            break;
        answer(z, f, n);
        for (int i = 0; i < n; i++)
            zmq_msg_close(&f[i]);
        served++;
    }
    return served;
}

void zap_destroy(struct zap **pz)
{
    struct zap *z = *pz;
    if (!z)
        return;
    if (z->sock)
        zmq_close(z->sock);
    curve_keys_allow_release(&z->allow);
    free(z->dir);
    free(z);
    *pz = NULL;
}
