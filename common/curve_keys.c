/*
 * curve_keys.c - CurveZMQ key files and endpoint checks (see curve_keys.h).
 *
 * Every key that leaves this module was checked twice: each character is in
 * the Z85 alphabet (so an error can name it) and zmq_z85_decode() accepts
 * the whole. Files are read whole, at most KEY_FILE_MAX bytes.
 */
#include "curve_keys.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "err.h"
#include "fsutil.h"
#include "log.h"
#include "xmalloc.h"

#define KEY_FILE_MAX 4096

static const char z85_chars[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                ".-:+=^!/*?&<>()[]{}@%$#";

/* read_small(): the whole file at path into buf (NUL-terminated). */
static int read_small(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return log_error_rc(errno == ENOENT ? ENC_EINVAL : ENC_EIO, "cannot read key file '%s': %s",
                            path, strerror(errno));
    size_t n = fread(buf, 1, cap - 1, f);
    int err = ferror(f), more = !err && fgetc(f) != EOF;
    fclose(f);
    if (err)
        return log_error_rc(ENC_EIO, "cannot read key file '%s'", path);
    if (more)
        return log_error_rc(ENC_EINVAL, "key file '%s' is too long to be a key file", path);
    buf[n] = 0;
    if (strlen(buf) != n)
        return log_error_rc(ENC_EINVAL, "key file '%s' holds a NUL byte (not a text key file)",
                            path);
    return 0;
}

/* check_key(): s (trimmed) is a Z85 key; copies it to out. what names it. */
static int check_key(const char *path, const char *what, const char *s, char *out)
{
    size_t n = strlen(s);
    if (n != CURVE_KEYS_Z85)
        return log_error_rc(ENC_EINVAL,
                            "key file '%s': the %s key is %zu characters, not %d (truncated or "
                            "not a Z85 CurveZMQ key)",
                            path, what, n, CURVE_KEYS_Z85);
    for (size_t i = 0; i < n; i++)
        if (!strchr(z85_chars, s[i]))
            return log_error_rc(ENC_EINVAL,
                                "key file '%s': the %s key has a character that is not Z85 at "
                                "position %zu",
                                path, what, i + 1);
    uint8_t bin[CURVE_KEYS_BYTES];
    if (!zmq_z85_decode(bin, s))
        return log_error_rc(ENC_EINVAL, "key file '%s': the %s key is not valid Z85", path, what);
    memcpy(out, s, CURVE_KEYS_Z85 + 1);
    return 0;
}

/* trim(): s without leading and trailing white space, in place. */
static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = 0;
    return s;
}

int curve_keys_read_public(const char *path, char key[CURVE_KEYS_Z85 + 1])
{
    char buf[KEY_FILE_MAX];
    int rc = read_small(path, buf, sizeof buf);
    if (rc)
        return rc;
    char *s = trim(buf);
    if (!*s)
        return log_error_rc(ENC_EINVAL, "key file '%s' is empty", path);
    if (strchr(s, '\n'))
        return log_error_rc(
            ENC_EINVAL, "key file '%s' has more than one line (a .pub file holds one key)", path);
    return check_key(path, "public", s, key);
}

int curve_keys_read_pair(const char *path, struct curve_pair *p)
{
    char buf[KEY_FILE_MAX];
    int rc = read_small(path, buf, sizeof buf);
    if (rc)
        return rc;
    int have_pub = 0, have_sec = 0, line_no = 0;
    char *save = buf;
    while (save) {
        char *line = save, *nl = strchr(save, '\n');
        if (nl)
            *nl = 0;
        save = nl ? nl + 1 : NULL;
        line_no++;
        line = trim(line);
        if (!*line || line[0] == '#')
            continue;
        size_t w = strcspn(line, " \t");
        char *val = trim(line + w);
        line[w] = 0;
        int is_pub = strcmp(line, "public") == 0, is_sec = strcmp(line, "secret") == 0;
        if (!is_pub && !is_sec)
            return log_error_rc(ENC_EINVAL,
                                "key file '%s' line %d: unknown field '%s' (public or secret)",
                                path, line_no, line);
        if ((is_pub && have_pub) || (is_sec && have_sec))
            return log_error_rc(ENC_EINVAL, "key file '%s' line %d: a second %s key", path, line_no,
                                line);
        if ((rc = check_key(path, line, val, is_pub ? p->pub : p->sec)))
            return rc;
        have_pub |= is_pub;
        have_sec |= is_sec;
    }
    if (!have_pub || !have_sec)
        return log_error_rc(ENC_EINVAL,
                            "key file '%s' has no %s key (a .key file holds 'public KEY' and "
                            "'secret KEY' lines)",
                            path, have_pub ? "secret" : "public");
    char derived[CURVE_KEYS_Z85 + 1];
    if (zmq_curve_public(derived, p->sec) != 0)
        return log_error_rc(ENC_EINVAL, "key file '%s': cannot derive the public key: %s", path,
                            zmq_strerror(errno));
    if (strcmp(derived, p->pub) != 0)
        return log_error_rc(
            ENC_EINVAL, "key file '%s': the public key does not belong to the secret key", path);
    struct stat st;
    if (stat(path, &st) == 0 && (st.st_mode & 077))
        log_warn("key file '%s' can be read by others: chmod 600 it", path);
    return 0;
}

/* name_ok(): a plain file name stem. */
static int name_ok(const char *name)
{
    if (!*name || name[0] == '.' || strlen(name) > 200)
        return 0;
    for (const char *s = name; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '_' || *s == '-'))
            return 0;
    return 1;
}

/* write_new(): create path (must not exist) with mode and text. */
static int write_new(const char *path, int mode, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
    if (fd < 0)
        return log_error_rc(errno == EEXIST ? ENC_EINVAL : ENC_EIO, "cannot create '%s': %s%s",
                            path, strerror(errno),
                            errno == EEXIST ? " (key files are never overwritten)" : "");
    size_t n = strlen(text);
    ssize_t w = write(fd, text, n);
    int bad = w != (ssize_t)n;
    bad |= fsync(fd) != 0;
    bad |= close(fd) != 0;
    if (bad) {
        unlink(path);
        return log_error_rc(ENC_EIO, "cannot write '%s': %s", path, strerror(errno));
    }
    return 0;
}

int curve_keys_generate(const char *dir, const char *name, struct curve_pair *out)
{
    struct curve_pair p;
    int rc;
    if (!name_ok(name))
        return log_error_rc(ENC_EINVAL,
                            "bad key name '%s' (letters, digits, '.', '_', '-'; not starting "
                            "with '.')",
                            name);
    if (!zmq_has("curve"))
        return log_error_rc(ENC_ENOTSUP, "this libzmq has no CurveZMQ support");
    char *key = xasprintf("%s/%s.key", dir, name), *pub = xasprintf("%s/%s.pub", dir, name);
    struct stat st;
    if (stat(pub, &st) == 0 || stat(key, &st) == 0) {
        rc = log_error_rc(ENC_EINVAL, "'%s' already exists (key files are never overwritten)",
                          stat(key, &st) == 0 ? key : pub);
        goto out;
    }
    if ((rc = fs_mkdir_p(dir)))
        goto out;
    if (zmq_curve_keypair(p.pub, p.sec) != 0) {
        rc = log_error_rc(ENC_EIO, "cannot make a key pair: %s", zmq_strerror(errno));
        goto out;
    }
    char *text = xasprintf("# encore CurveZMQ key pair '%s': keep this file secret\n"
                           "public %s\nsecret %s\n",
                           name, p.pub, p.sec);
    rc = write_new(key, 0600, text);
    free(text);
    if (rc)
        goto out;
    text = xasprintf("%s\n", p.pub);
    rc = write_new(pub, 0644, text);
    free(text);
    if (rc) {
        unlink(key);
        goto out;
    }
    if (out)
        *out = p;
out:
    memset(&p, 0, sizeof p);
    free(key);
    free(pub);
    return rc;
}

int curve_keys_load_client(const char *dir, const char *name, struct curve_client *c)
{
    char *key = xasprintf("%s/%s.key", dir, name), *pub = xasprintf("%s/coordinator.pub", dir);
    int rc = curve_keys_read_pair(key, &c->pair);
    if (rc == 0)
        rc = curve_keys_read_public(pub, c->server);
    free(key);
    free(pub);
    return rc;
}

int curve_keys_set_client(void *sock, const struct curve_client *c)
{
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, c->server, CURVE_KEYS_Z85 + 1) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, c->pair.pub, CURVE_KEYS_Z85 + 1) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, c->pair.sec, CURVE_KEYS_Z85 + 1) != 0)
        return log_error_rc(ENC_EINVAL, "cannot set the CurveZMQ keys: %s", zmq_strerror(errno));
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int curve_keys_load_allow(const char *dir, struct curve_allow *a)
{
    memset(a, 0, sizeof *a);
    DIR *d = opendir(dir);
    if (!d)
        return log_error_rc(errno == ENOENT ? ENC_EINVAL : ENC_EIO,
                            "cannot read the authorized keys directory '%s': %s", dir,
                            strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len <= 4 || strcmp(e->d_name + len - 4, ".pub") != 0)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            names = xrealloc(names, cap * sizeof *names);
        }
        names[n++] = xstrdup(e->d_name);
    }
    closedir(d);
    if (n > 1)
        qsort(names, n, sizeof *names, cmp_names);
    int rc = 0;
    a->key = xcalloc(n ? n : 1, sizeof *a->key);
    a->name = xcalloc(n ? n : 1, sizeof *a->name);
    for (size_t i = 0; i < n; i++) {
        char z85[CURVE_KEYS_Z85 + 1];
        char *path = xasprintf("%s/%s", dir, names[i]);
        if (rc == 0 && (rc = curve_keys_read_public(path, z85)) == 0) {
            zmq_z85_decode(a->key[a->n], z85);
            names[i][strlen(names[i]) - 4] = 0;
            a->name[a->n++] = names[i];
            names[i] = NULL;
        }
        free(path);
        free(names[i]);
    }
    free(names);
    if (rc)
        curve_keys_allow_release(a);
    return rc;
}

int curve_keys_allow_find(const struct curve_allow *a, const uint8_t *key)
{
    for (size_t i = 0; i < a->n; i++)
        if (memcmp(a->key[i], key, CURVE_KEYS_BYTES) == 0)
            return (int)i;
    return -1;
}

void curve_keys_allow_release(struct curve_allow *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->name[i]);
    free(a->name);
    free(a->key);
    memset(a, 0, sizeof *a);
}

int curve_keys_endpoint_local(const char *ep)
{
    if (strncmp(ep, "inproc://", 9) == 0 || strncmp(ep, "ipc://", 6) == 0)
        return 1;
    if (strncmp(ep, "tcp://", 6) != 0)
        return 0;
    const char *host = ep + 6, *colon = strrchr(host, ':');
    if (!colon || colon == host)
        return 0;
    char h[INET6_ADDRSTRLEN + 2];
    size_t n = (size_t)(colon - host);
    if (n >= sizeof h)
        return 0;
    memcpy(h, host, n);
    h[n] = 0;
    if (strcmp(h, "localhost") == 0)
        return 1;
    if (h[0] == '[' && n >= 2 && h[n - 1] == ']') {
        h[n - 1] = 0;
        memmove(h, h + 1, n - 1);
    }
    struct in6_addr a6;
    struct in_addr a4;
    if (inet_pton(AF_INET6, h, &a6) == 1)
        return memcmp(&a6, &in6addr_loopback, sizeof a6) == 0;
    if (inet_pton(AF_INET, h, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    return 0;
}
