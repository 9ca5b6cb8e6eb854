/* t_curve_keys.c - CurveZMQ key files (generate, read, refuse bad ones with
 * an error naming the file), the authorized directory, which endpoints are
 * local, and the ZAP handler deciding real CURVE handshakes over tcp. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "common/curve_keys.h"
#include "common/err.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "coordinator/zap.h"
#include "tests/tap.h"

static char last_line[1024];

static void sink(void *ctx, enum log_level level, const char *line)
{
    (void)ctx;
    (void)level;
    snprintf(last_line, sizeof last_line, "%s", line);
}

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

/* bad_pub()/bad_pair(): the file holding text is refused, and the error
 * names the file and says want. */
static void bad_pub(const char *path, const char *text, const char *want, const char *what)
{
    char key[CURVE_KEYS_Z85 + 1];
    put(path, text);
    last_line[0] = 0;
    is_int(curve_keys_read_public(path, key), ENC_EINVAL, "%s: refused", what);
    ok(strstr(last_line, path) && strstr(last_line, want), "%s: the error says so", what);
    if (!strstr(last_line, want))
        diag("  %s", last_line);
}

static void bad_pair(const char *path, const char *text, const char *want, const char *what)
{
    struct curve_pair p;
    put(path, text);
    chmod(path, 0600);
    last_line[0] = 0;
    is_int(curve_keys_read_pair(path, &p), ENC_EINVAL, "%s: refused", what);
    ok(strstr(last_line, path) && strstr(last_line, want), "%s: the error says so", what);
    if (!strstr(last_line, want))
        diag("  %s", last_line);
}

/* exchange(): whether a DEALER with keys c (NULL: no CURVE) gets "hi"
 * through to the CURVE ROUTER at ep within ms, serving the ZAP handler. */
static int exchange(void *ctx, void *router, struct zap *z, const char *ep,
                    const struct curve_client *c, int ms)
{
    void *d = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0, got = 0;
    zmq_setsockopt(d, ZMQ_LINGER, &linger, sizeof linger);
    if (c)
        curve_keys_set_client(d, c);
    zmq_connect(d, ep);
    zmq_send(d, "hi", 2, ZMQ_DONTWAIT);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        zmq_pollitem_t it[2] = {{.socket = router, .events = ZMQ_POLLIN},
                                {.socket = zap_socket(z), .events = ZMQ_POLLIN}};
        zmq_poll(it, 2, 20);
        zap_serve(z);
        char buf[16];
        if (zmq_recv(router, buf, sizeof buf, ZMQ_DONTWAIT) >= 0) { /* identity */
            int more;
            size_t sz = sizeof more;
            zmq_getsockopt(router, ZMQ_RCVMORE, &more, &sz);
            got = more && zmq_recv(router, buf, sizeof buf, 0) == 2 && memcmp(buf, "hi", 2) == 0;
            break;
        }
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > ms)
            break;
    }
    zmq_close(d);
    return got;
}

int main(void)
{
    char dir[256], path[512], path2[1024];
    snprintf(dir, sizeof dir, "/tmp/t_curve_keys.XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    log_set_sink(sink, NULL);

    /* generate, read back */
    struct curve_pair cp, wp, xp, p;
    char key[CURVE_KEYS_Z85 + 1];
    snprintf(path, sizeof path, "%s/coord", dir);
    is_int(curve_keys_generate(path, "coordinator", &cp), 0, "generate into a new directory");
    snprintf(path, sizeof path, "%s/coord/coordinator.key", dir);
    struct stat st;
    ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "the pair is mode 0600");
    is_int(curve_keys_read_pair(path, &p), 0, "read the pair");
    ok(strcmp(p.pub, cp.pub) == 0 && strcmp(p.sec, cp.sec) == 0, "it is the generated pair");
    snprintf(path, sizeof path, "%s/coord/coordinator.pub", dir);
    ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0644, "the public key is mode 0644");
    is_int(curve_keys_read_public(path, key), 0, "read the public key");
    is_str(key, cp.pub, "it is the generated public key");
    last_line[0] = 0;
    snprintf(path2, sizeof path2, "%s/coord", dir);
    is_int(curve_keys_generate(path2, "coordinator", NULL), ENC_EINVAL, "never overwrites");
    ok(strstr(last_line, "already exists") != NULL, "and says why: %s", last_line);
    is_int(curve_keys_read_public(path, key), 0, "the old key is still there");
    is_str(key, cp.pub, "unchanged");
    is_int(curve_keys_generate(path2, "../x", NULL), ENC_EINVAL, "a name with a '/' is refused");
    is_int(curve_keys_generate(path2, ".hidden", NULL), ENC_EINVAL, "a name with a leading '.'");

    /* bad files */
    snprintf(path, sizeof path, "%s/nowhere.pub", dir);
    last_line[0] = 0;
    is_int(curve_keys_read_public(path, key), ENC_EINVAL, "a missing file is refused");
    ok(strstr(last_line, path) && strstr(last_line, "No such file"), "naming it: %s", last_line);
    char text[256];
    snprintf(path, sizeof path, "%s/bad.pub", dir);
    snprintf(text, sizeof text, "%.39s\n", cp.pub);
    bad_pub(path, text, "39 characters, not 40", "truncated public key");
    bad_pub(path, "", "empty", "empty file");
    snprintf(text, sizeof text, "%.39s~\n", cp.pub);
    bad_pub(path, text, "not Z85 at position 40", "a character outside Z85");
    snprintf(text, sizeof text, "%s\n%s\n", cp.pub, cp.pub);
    bad_pub(path, text, "more than one line", "two keys in a .pub");
    snprintf(text, sizeof text, "  %s \r\n", cp.pub);
    put(path, text);
    ok(curve_keys_read_public(path, key) == 0 && strcmp(key, cp.pub) == 0,
       "white space around the key is fine");

    snprintf(path, sizeof path, "%s/bad.key", dir);
    snprintf(text, sizeof text, "public %s\n", cp.pub);
    bad_pair(path, text, "no secret key", "a pair without its secret");
    snprintf(text, sizeof text, "public %s\nsecret %.20s\n", cp.pub, cp.sec);
    bad_pair(path, text, "secret key is 20 characters", "truncated secret key");
    snprintf(text, sizeof text, "public %s\nsecrets %s\n", cp.pub, cp.sec);
    bad_pair(path, text, "unknown field 'secrets'", "a misspelt field");
    is_int(curve_keys_generate(dir, "other", &xp), 0, "a second pair");
    snprintf(text, sizeof text, "# mixed\npublic %s\nsecret %s\n", xp.pub, cp.sec);
    bad_pair(path, text, "does not belong to the secret key", "mismatched public and secret");
    snprintf(text, sizeof text, "\n# ok\n  secret %s\npublic\t%s\n", cp.sec, cp.pub);
    put(path, text);
    ok(curve_keys_read_pair(path, &p) == 0 && strcmp(p.sec, cp.sec) == 0,
       "comments, blank lines, any order, tabs");

    /* a client's directory, the authorized directory */
    snprintf(path, sizeof path, "%s/w", dir);
    is_int(curve_keys_generate(path, "worker", &wp), 0, "a worker pair");
    snprintf(path2, sizeof path2, "%s/w/coordinator.pub", dir);
    put(path2, cp.pub);
    struct curve_client wc, xc;
    is_int(curve_keys_load_client(path, "worker", &wc), 0, "load a worker's keys");
    ok(strcmp(wc.server, cp.pub) == 0 && strcmp(wc.pair.pub, wp.pub) == 0, "its keys");
    last_line[0] = 0;
    is_int(curve_keys_load_client(path, "client", &xc), ENC_EINVAL, "no client.key there");
    ok(strstr(last_line, "client.key") != NULL, "the error names it: %s", last_line);
    xc = wc;
    xc.pair = xp; /* not authorized */

    snprintf(path, sizeof path, "%s/coord/authorized", dir);
    mkdir(path, 0755);
    struct curve_allow a;
    is_int(curve_keys_load_allow(path, &a), 0, "an empty authorized directory");
    is_int((int)a.n, 0, "holds no key");
    curve_keys_allow_release(&a);
    snprintf(path2, sizeof path2, "%s/worker-a.pub", path);
    put(path2, wp.pub);
    snprintf(path2, sizeof path2, "%s/README", path);
    put(path2, "not a key\n");
    snprintf(path2, sizeof path2, "%s/alice.pub", path);
    put(path2, cp.pub);
    is_int(curve_keys_load_allow(path, &a), 0, "two keys and a README");
    ok(a.n == 2 && strcmp(a.name[0], "alice") == 0 && strcmp(a.name[1], "worker-a") == 0,
       "both .pub files, by name");
    uint8_t bin[CURVE_KEYS_BYTES];
    zmq_z85_decode(bin, wp.pub);
    is_int(curve_keys_allow_find(&a, bin), 1, "the worker's key is found");
    zmq_z85_decode(bin, xp.pub);
    is_int(curve_keys_allow_find(&a, bin), -1, "another key is not");
    curve_keys_allow_release(&a);
    put(path2, "short\n");
    last_line[0] = 0;
    is_int(curve_keys_load_allow(path, &a), ENC_EINVAL, "a bad .pub in the directory");
    ok(strstr(last_line, "alice.pub") != NULL, "is named: %s", last_line);
    put(path2, cp.pub);
    snprintf(path2, sizeof path2, "%s/missing", dir);
    is_int(curve_keys_load_allow(path2, &a), ENC_EINVAL, "a missing directory is refused");

    /* local endpoints */
    static const struct {
        const char *ep;
        int local;
    } eps[] = {{"inproc://x", 1},          {"ipc:///tmp/s", 1},       {"tcp://127.0.0.1:7707", 1},
               {"tcp://127.1.2.3:*", 1},   {"tcp://localhost:1", 1},  {"tcp://[::1]:7707", 1},
               {"tcp://::1:7707", 1},      {"tcp://0.0.0.0:7707", 0}, {"tcp://*:7707", 0},
               {"tcp://10.0.0.5:7707", 0}, {"tcp://eth0:7707", 0},    {"tcp://[::]:7707", 0},
               {"tcp://128.0.0.1:1", 0},   {"ws://127.0.0.1:1", 0},   {"tcp://", 0},
               {"tcp://127.0.0.1", 0},     {"pgm://127.0.0.1:1", 0}};
    for (size_t i = 0; i < sizeof eps / sizeof eps[0]; i++)
        is_int(curve_keys_endpoint_local(eps[i].ep), eps[i].local, "%s is %slocal", eps[i].ep,
               eps[i].local ? "" : "not ");

    /* the ZAP handler deciding real handshakes */
    void *ctx = zmq_ctx_new();
    struct zap *z;
    is_int(zap_new(ctx, path, &z), 0, "ZAP handler bound");
    struct zap *z2;
    is_int(zap_new(ctx, path, &z2), ENC_EIO, "a second one in the same context is refused");
    is_int((int)zap_keys(z), 2, "two keys authorized");
    void *router = zmq_socket(ctx, ZMQ_ROUTER);
    int one = 1, linger = 0;
    zmq_setsockopt(router, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(router, ZMQ_CURVE_SERVER, &one, sizeof one);
    zmq_setsockopt(router, ZMQ_CURVE_SECRETKEY, cp.sec, CURVE_KEYS_Z85 + 1);
    is_int(zmq_bind(router, "tcp://127.0.0.1:*"), 0, "CURVE router bound");
    char ep[128];
    size_t eplen = sizeof ep;
    zmq_getsockopt(router, ZMQ_LAST_ENDPOINT, ep, &eplen);
    ok(exchange(ctx, router, z, ep, &wc, 5000), "an authorized key gets through");
    last_line[0] = 0;
    ok(!exchange(ctx, router, z, ep, &xc, 600), "another key does not");
    ok(strstr(last_line, "refused a connection from '127.0.0.1'") && strstr(last_line, xp.pub),
       "the refusal is logged with address and key: %s", last_line);
    ok(!exchange(ctx, router, z, ep, NULL, 400), "a peer without CURVE does not");
    struct zap_stats zs;
    zap_get_stats(z, &zs);
    ok(zs.allowed >= 1 && zs.refused >= 1 && zs.malformed == 0, "stats: %lld in, %lld refused",
       (long long)zs.allowed, (long long)zs.refused);
    zmq_close(router);
    zap_destroy(&z);
    zmq_ctx_term(ctx);

    log_set_sink(NULL, NULL);
    fs_remove_tree(dir);
    return done_testing();
}
