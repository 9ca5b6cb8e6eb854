/*
 * http.c - the coordinator's status HTTP server (see http.h).
 *
 * A connection moves READ -> WRITE -> DRAIN -> closed. READ gathers the
 * request head in req[] until a blank line; WRITE sends out[out_off..out_n)
 * as the socket takes it; DRAIN has shut down its sending side and reads
 * and drops what the client still sends until it closes (or a short
 * deadline), so closing never resets a response the client has not read
 * yet. Every phase has a deadline; free slots have fd -1. Nothing here
 * waits: every socket is nonblocking and each call does what is ready.
 */
#include "coordinator/http.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/parse.h"
#include "common/textbuf.h"
#include "common/xmalloc.h"

#define HTTP_DRAIN_MS 1000
#define HTTP_ACCEPT_BATCH 64

enum http_phase { HTTP_READ, HTTP_WRITE, HTTP_DRAIN };

struct http_conn {
    int fd; /* -1: free slot */
    enum http_phase phase;
    int64_t deadline; /* monotonic ms */
    size_t n;         /* bytes of req */
    char req[HTTP_REQUEST_MAX];
    char *out; /* the whole response */
    size_t out_n, out_off;
};

struct http {
    int fd;
    http_handler fn;
    void *ctx;
    struct http_conn conns[HTTP_MAX_CONNS];
    int polled[HTTP_MAX_CONNS]; /* slot of poll item 1 + i */
    int n_polled;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int set_nonblocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

int http_parse_addr(const char *addr, char *host, size_t host_cap, int *port)
{
    const char *colon = strrchr(addr, ':');
    const char *h = addr;
    size_t hn = colon ? (size_t)(colon - addr) : 0;
    if (hn >= 2 && h[0] == '[' && h[hn - 1] == ']') {
        h++;
        hn -= 2;
    } else if (colon && memchr(addr, ':', hn)) {
        colon = NULL; /* an IPv6 address needs brackets */
    }
    if (!colon || hn == 0 || hn >= host_cap)
        return log_error_rc(ENC_EINVAL,
                            "bad http address '%s': want HOST:PORT, e.g. 127.0.0.1:7708", addr);
    if (parse_int(colon + 1, 1, 65535, port))
        return log_error_rc(ENC_EINVAL, "bad http address '%s': port must be 1..65535", addr);
    memcpy(host, h, hn);
    host[hn] = '\0';
    return 0;
}

int http_new(const char *addr, http_handler fn, void *ctx, struct http **out)
{
    char host[256], port_s[16];
    int port, rc;
    *out = NULL;
    if ((rc = http_parse_addr(addr, host, sizeof host, &port)))
        return rc;
    snprintf(port_s, sizeof port_s, "%d", port);
    struct addrinfo hints, *res;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(host, port_s, &hints, &res);
    if (gai)
        return log_error_rc(ENC_EINVAL, "bad http address '%s': %s", addr, gai_strerror(gai));
    int fd = -1, err = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 64) != 0 ||
            set_nonblocking(fd) != 0) {
            err = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        return log_error_rc(ENC_EIO, "cannot listen for http on '%s': %s", addr, strerror(err));
    struct http *h = xcalloc(1, sizeof *h);
    h->fd = fd;
    h->fn = fn;
    h->ctx = ctx;
    for (int i = 0; i < HTTP_MAX_CONNS; i++)
        h->conns[i].fd = -1;
    log_info("http status on %s (unauthenticated, read-only)", addr);
    *out = h;
    return 0;
}

static void conn_close(struct http_conn *c)
{
    close(c->fd);
    free(c->out);
    c->fd = -1;
    c->out = NULL;
    c->n = c->out_n = c->out_off = 0;
}

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

/* render(): the response text; a NULL body becomes {"error":"<reason>"}. */
static char *render(const struct http_response *r, int head_only, size_t *n)
{
    struct textbuf b = {0};
    const char *type = r->content_type;
    char *dflt = NULL;
    size_t body_len = r->body_len;
    const char *body = r->body;
    if (!body) {
        struct textbuf e = {0};
        textbuf_printf(&e, "{\"error\":");
        textbuf_json_str(&e, reason(r->status));
        textbuf_printf(&e, "}\n");
        dflt = textbuf_take(&e, &body_len);
        body = dflt;
        type = "application/json";
    }
    textbuf_printf(&b,
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                   "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
                   r->status, reason(r->status), type ? type : "text/plain", body_len,
                   r->status == 405 ? "Allow: GET, HEAD\r\n" : "");
    if (!head_only)
        textbuf_append(&b, body, body_len);
    free(dflt);
    return textbuf_take(&b, n);
}

/* head_end(): the length of the request head in req[0..n) through its
 * blank line, or 0 when it has not all arrived. */
static size_t head_end(const char *req, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (req[i] == '\n' &&
            (req[i - 1] == '\n' || (i >= 2 && req[i - 1] == '\r' && req[i - 2] == '\n')))
            return i + 1;
    return 0;
}

/* parse(): checks the head (request line METHOD SP /TARGET SP HTTP/1.x,
 * then NAME: VALUE lines) and puts the method and path (target without
 * query) into method[] and path[]. Returns 0, or -1 for a malformed head. */
static int parse(char *req, size_t n, char *method, size_t method_cap, char *path, size_t path_cap)
{
    char *line = req, *end = req + n;
    char *nl = memchr(line, '\n', (size_t)(end - line));
    size_t len = (size_t)(nl - line);
    if (len && line[len - 1] == '\r')
        len--;
    line[len] = '\0';
    char *sp1 = strchr(line, ' ');
    if (!sp1 || sp1 == line || (size_t)(sp1 - line) >= method_cap)
        return -1;
    for (char *p = line; p < sp1; p++)
        if (*p < 'A' || *p > 'Z')
            return -1;
    memcpy(method, line, (size_t)(sp1 - line));
    method[sp1 - line] = '\0';
    char *target = sp1 + 1, *sp2 = strchr(target, ' ');
    if (!sp2 || target[0] != '/' ||
        (strcmp(sp2 + 1, "HTTP/1.1") != 0 && strcmp(sp2 + 1, "HTTP/1.0") != 0))
        return -1;
    size_t tn = (size_t)(sp2 - target);
    for (size_t i = 0; i < tn; i++)
        if ((unsigned char)target[i] <= 0x20 || (unsigned char)target[i] >= 0x7f)
            return -1;
    size_t pn = strcspn(target, "?#");
    if (pn > tn)
        pn = tn;
    if (pn >= path_cap)
        return -1;
    memcpy(path, target, pn);
    path[pn] = '\0';
    for (line = nl + 1; line < end; line = nl + 1) {
        nl = memchr(line, '\n', (size_t)(end - line));
        len = (size_t)(nl - line);
        if (len && line[len - 1] == '\r')
            len--;
        if (len == 0)
            break; /* the blank line */
        char *colon = memchr(line, ':', len);
        if (!colon || colon == line || line[0] == ' ' || line[0] == '\t')
            return -1;
    }
    return 0;
}

/* try_write(): sends what the socket takes; once all is out, shuts down the
 * sending side and drains. */
static void try_write(struct http_conn *c, int64_t now)
{
    while (c->out_off < c->out_n) {
        ssize_t k = send(c->fd, c->out + c->out_off, c->out_n - c->out_off, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                conn_close(c);
            return;
        }
        c->out_off += (size_t)k;
    }
    shutdown(c->fd, SHUT_WR);
    free(c->out);
    c->out = NULL;
    c->phase = HTTP_DRAIN;
    c->deadline = now + HTTP_DRAIN_MS;
}

static void respond(struct http_conn *c, const struct http_response *r, int head_only, int64_t now)
{
    c->out = render(r, head_only, &c->out_n);
    c->out_off = 0;
    c->phase = HTTP_WRITE;
    c->deadline = now + HTTP_WRITE_MS;
    try_write(c, now);
}

static void answer(struct http *h, struct http_conn *c, size_t head_n, int64_t now)
{
    char method[16] = "", path[HTTP_REQUEST_MAX];
    struct http_response r = {.status = 404, .content_type = "application/json"};
    if (parse(c->req, head_n, method, sizeof method, path, sizeof path)) {
        r.status = 400;
    } else if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        r.status = 405;
    } else {
        h->fn(h->ctx, path, &r);
    }
    respond(c, &r, strcmp(method, "HEAD") == 0 && r.status != 400, now);
    free(r.body);
}

static void on_readable(struct http *h, struct http_conn *c, int64_t now)
{
    for (;;) {
        char drop[4096];
        char *dst = c->phase == HTTP_READ ? c->req + c->n : drop;
        size_t room = c->phase == HTTP_READ ? sizeof c->req - c->n : sizeof drop;
        ssize_t k = recv(c->fd, dst, room, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (k <= 0) { /* closed or failed: nothing more to read or to say */
            conn_close(c);
            return;
        }
        if (c->phase != HTTP_READ)
            continue;
        size_t from = c->n >= 3 ? c->n - 3 : 0;
        c->n += (size_t)k;
        size_t end = head_end(c->req + from, c->n - from);
        if (end) {
            answer(h, c, from + end, now);
            return;
        }
        if (c->n == sizeof c->req) {
            struct http_response r = {.status = 400};
            respond(c, &r, 0, now);
            return;
        }
    }
}

/* reject(): the connection limit is reached: a best-effort 503, closed. */
static void reject(int fd)
{
    struct http_response r = {.status = 503};
    size_t n;
    char *out = render(&r, 0, &n);
    char drop[4096];
    while (recv(fd, drop, sizeof drop, MSG_DONTWAIT) > 0) {
    }
    if (send(fd, out, n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        log_debug("http: 503 not sent: %s", strerror(errno));
    shutdown(fd, SHUT_WR);
    free(out);
    close(fd);
}

static void accept_all(struct http *h, int64_t now)
{
    for (int i = 0; i < HTTP_ACCEPT_BATCH; i++) {
        int fd = accept(h->fd, NULL, NULL);
        if (fd < 0) {
            int e = errno;
            if (e == EINTR || e == ECONNABORTED)
                continue;
            if (e != EAGAIN && e != EWOULDBLOCK)
                log_warn("http: accept failed: %s", strerror(e)); /* EMFILE...: next turn */
            return;
        }
        fcntl(fd, F_SETFD, FD_CLOEXEC);
        if (set_nonblocking(fd) != 0) {
            close(fd);
            continue;
        }
        struct http_conn *c = NULL;
        for (int k = 0; k < HTTP_MAX_CONNS && !c; k++)
            if (h->conns[k].fd < 0)
                c = &h->conns[k];
        if (!c) {
            reject(fd);
            continue;
        }
        c->fd = fd;
        c->phase = HTTP_READ;
        c->n = 0;
        c->deadline = now + HTTP_IDLE_MS;
    }
}

int http_poll_items(struct http *h, zmq_pollitem_t *items)
{
    int n = 0;
    items[n++] = (zmq_pollitem_t){.fd = h->fd, .events = ZMQ_POLLIN};
    h->n_polled = 0;
    for (int k = 0; k < HTTP_MAX_CONNS; k++) {
        struct http_conn *c = &h->conns[k];
        if (c->fd < 0)
            continue;
        h->polled[h->n_polled++] = k;
        items[n++] = (zmq_pollitem_t){.fd = c->fd,
                                      .events = c->phase == HTTP_WRITE ? ZMQ_POLLOUT : ZMQ_POLLIN};
    }
    return n;
}

void http_serve(struct http *h, const zmq_pollitem_t *items, int n)
{
    int64_t now = now_ms();
    for (int i = 1; i < n && i - 1 < h->n_polled; i++) {
        struct http_conn *c = &h->conns[h->polled[i - 1]];
        if (c->fd != items[i].fd || !items[i].revents)
            continue;
        if (c->phase == HTTP_WRITE)
            try_write(c, now);
        else
            on_readable(h, c, now);
    }
    h->n_polled = 0;
    for (int k = 0; k < HTTP_MAX_CONNS; k++)
        if (h->conns[k].fd >= 0 && now >= h->conns[k].deadline)
            conn_close(&h->conns[k]);
    if (n > 0 && (items[0].revents & ZMQ_POLLIN))
        accept_all(h, now);
}

void http_destroy(struct http **ph)
{
    struct http *h = *ph;
    if (!h)
        return;
    for (int k = 0; k < HTTP_MAX_CONNS; k++)
        if (h->conns[k].fd >= 0)
            conn_close(&h->conns[k]);
    close(h->fd);
    free(h);
    *ph = NULL;
}
