/*
 * http.h - a small read-only HTTP/1.1 server run inside the coordinator's
 * event loop (`encore-coordinator --http ADDR`, docs/user-guide.md).
 *
 * It owns a listening TCP socket and at most HTTP_MAX_CONNS connections,
 * all nonblocking; the loop adds them to its zmq_poll() set as fd items
 * (http_poll_items()) and hands the result back (http_serve()), so no
 * client can stall the loop. Each connection carries one request: the
 * request head is read into a fixed HTTP_REQUEST_MAX-byte buffer (a head
 * that does not fit, or a malformed one, is answered 400), the handler
 * gives the body, the response is written as the socket takes it, and the
 * connection is closed (Connection: close). A client that has not sent a
 * whole request within HTTP_IDLE_MS, or does not read its response within
 * HTTP_WRITE_MS, is closed. A connection over the limit is answered 503 at
 * once. Only GET and HEAD are served (others: 405); request bodies are
 * ignored. There is no authentication: bind to loopback or a private
 * network.
 */
#ifndef ENCORE_HTTP_H
#define ENCORE_HTTP_H

#include <stddef.h>
#include <zmq.h>

#define HTTP_MAX_CONNS 32
#define HTTP_REQUEST_MAX 8192
#define HTTP_IDLE_MS 5000
#define HTTP_WRITE_MS 10000
/* Poll items http_poll_items() may fill: the listener and each connection. */
#define HTTP_POLL_ITEMS (1 + HTTP_MAX_CONNS)

struct http;

/* What the handler answers: status (200, 404...), content type (a static
 * string) and body (malloc'd, taken by the server; NULL for none). */
struct http_response {
    int status;
    const char *content_type;
    char *body;
    size_t body_len;
};

/* http_handler: answer a GET of path (the request target up to any '?',
 * NUL-terminated, starts with '/'). r arrives as 404, no body. */
typedef void (*http_handler)(void *ctx, const char *path, struct http_response *r);

/* http_parse_addr() checks ADDR = HOST:PORT ([V6ADDR]:PORT for IPv6; PORT
 * 1..65535) and splits it: host (brackets removed) into host[host_cap],
 * port into *port. Returns 0 or ENC_EINVAL, logged naming addr. */
int http_parse_addr(const char *addr, char *host, size_t host_cap, int *port);

/* http_new() listens on addr (see http_parse_addr()) and serves requests
 * through fn(ctx, ...). Returns 0 or a negative enc_err, logged naming
 * addr: ENC_EINVAL for a bad address, ENC_EIO when it cannot listen (port
 * in use, no permission). */
int http_new(const char *addr, http_handler fn, void *ctx, struct http **out);

/* http_poll_items() fills items[0..n) (n returned, at most
 * HTTP_POLL_ITEMS) with the fds to poll and the events to poll for. */
int http_poll_items(struct http *h, zmq_pollitem_t *items);

/* http_serve() reads, answers, writes and accepts after a poll of the n
 * items http_poll_items() filled (revents set; the connections must not
 * have changed between the two calls), and closes connections past their
 * deadline. Never blocks. */
void http_serve(struct http *h, const zmq_pollitem_t *items, int n);

/* http_destroy() closes the listener and every connection; NULLs *h. */
void http_destroy(struct http **h);

#endif
