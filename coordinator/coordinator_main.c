/*
 * coordinator_main.c - encore-coordinator: parse options, run the loop
 * until SIGINT/SIGTERM.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/parse.h"
#include "coordinator/coordinator.h"
#include "coordinator/http.h"

static const char usage[] =
    "usage: encore-coordinator [--listen EP] [--state DIR] [--keys DIR] [--http ADDR] [options]\n"
    "\n"
    "  --listen EP        endpoint to serve (default tcp://127.0.0.1:7707)\n"
    "  --state DIR        state directory: database and latent stores (default encore-state)\n"
    "  --lease-ms N       a worker silent this long loses its tasks (default 5000)\n"
    "  --heartbeat-ms N   heartbeat interval told to workers (default 1000)\n"
    "  --max-message N    largest envelope accepted, bytes (default 1048576)\n"
    "  --max-blob N       largest input file (audio, image) accepted, bytes (default 256 MiB)\n"
    "  --no-fsync         do not fsync at each commit (survives a crash of the\n"
    "                     process, not of the machine)\n"
    "  --keys DIR         CurveZMQ: encrypt and authenticate; DIR/coordinator.key is\n"
    "                     this coordinator's pair, DIR/authorized/*.pub the workers and\n"
    "                     clients let in (read at start: restart after a change).\n"
    "                     Needed to listen on anything but inproc://, ipc:// or a\n"
    "                     loopback address (see deploy/README.md)\n"
    "  --insecure         listen on such an endpoint without --keys (a trusted network)\n"
    "  --http ADDR        serve read-only status over HTTP on HOST:PORT, e.g.\n"
    "                     127.0.0.1:7708: /status, /status/ID, /workers, /metrics,\n"
    "                     /healthz. Unauthenticated: bind it to loopback or a\n"
    "                     private network\n"
    "  --log-level L      error|warn|info|debug\n"
    "  -h, --help         this text\n";

static struct coordinator *running;

static void on_signal(int sig)
{
    (void)sig;
    if (running)
        coordinator_stop(running);
}

int main(int argc, char **argv)
{
    struct coordinator_opts o;
    coordinator_opts_default(&o);
    o.listen = "tcp://127.0.0.1:7707";
    o.state_dir = "encore-state";
    log_init("coordinator");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t n;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        } else if (strcmp(a, "--no-fsync") == 0) {
            o.durable = 0;
        } else if (strcmp(a, "--insecure") == 0) {
            o.insecure = 1;
        } else if (!v) {
            fprintf(stderr, "encore-coordinator: unknown option or missing value '%s'\n%s", a,
                    usage);
            return 2;
        } else if (strcmp(a, "--listen") == 0) {
            o.listen = v;
            i++;
        } else if (strcmp(a, "--http") == 0) {
            char host[256];
            int port;
            if (http_parse_addr(v, host, sizeof host, &port))
                return 2;
            o.http = v;
            i++;
        } else if (strcmp(a, "--keys") == 0) {
            o.keys_dir = v;
            i++;
        } else if (strcmp(a, "--state") == 0) {
            o.state_dir = v;
            i++;
        } else if (strcmp(a, "--lease-ms") == 0 || strcmp(a, "--heartbeat-ms") == 0 ||
                   strcmp(a, "--max-message") == 0 || strcmp(a, "--max-blob") == 0) {
            if (parse_i64(v, 1, (int64_t)1 << 30, &n)) {
                fprintf(stderr, "encore-coordinator: bad value '%s' for %s\n", v, a);
                return 2;
            }
            if (a[2] == 'l')
                o.lease_ms = (int)n;
            else if (a[2] == 'h')
                o.heartbeat_ms = (int)n;
            else if (strcmp(a, "--max-blob") == 0)
                o.max_blob = n;
            else
                o.max_message = n;
            i++;
        } else if (strcmp(a, "--log-level") == 0) {
            int l = log_parse_level(v);
            if (l < 0) {
                fprintf(stderr, "encore-coordinator: unknown log level '%s'\n", v);
                return 2;
            }
            log_set_level((enum log_level)l);
            i++;
        } else {
            fprintf(stderr, "encore-coordinator: unknown option '%s'\n%s", a, usage);
            return 2;
        }
    }
    struct coordinator *c;
    if (coordinator_new(&o, &c))
        return 1;
    running = c;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int rc = coordinator_run(c);
    running = NULL;
    coordinator_destroy(&c);
    log_info("stopped");
    return rc ? 1 : 0;
}
