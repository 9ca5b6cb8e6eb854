/*
 * cmd_workers.c - `encore workers [--json]`: connected workers.
 */
#include <stdio.h>
#include <string.h>

#include "cli/client.h"
#include "commands.h"
#include "common/status_json.h"

static const char usage[] = "usage: encore [--coordinator EP] workers [--json]\n";

int cmd_workers(const struct global_opts *g, int argc, char **argv)
{
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            fputs(usage, stdout);
            return EXIT_STATUS_OK;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else {
            return cli_usage_error(usage, "unknown argument '%s'", argv[i]);
        }
    }
    struct wire_msg req, rep;
    wire_msg_init(&req, WIRE_WORKERS);
    int rc = client_call(NULL, g->coordinator, "workers", &req, &rep, 10000);
    if (rc)
        return rc;
    if (json) {
        struct textbuf b = {0};
        status_json_workers(&b, rep.u.workers_reply.workers, rep.u.workers_reply.n_workers);
        textbuf_append(&b, "\n", 1);
        fwrite(b.p, 1, b.n, stdout);
        textbuf_free(&b);
        wire_msg_release(&rep);
        return EXIT_STATUS_OK;
    }
    printf("%-4s %-20s %-8s %-8s %-6s %7s %10s\n", "ID", "NAME", "BACKEND", "DEVICE", "STATE",
           "RUNNING", "TASKS_DONE");
    for (int i = 0; i < rep.u.workers_reply.n_workers; i++) {
        const struct wire_worker_info *w = &rep.u.workers_reply.workers[i];
        printf("%-4llu %-20s %-8s %-8s %-6s %7d %10lld\n", (unsigned long long)w->id, w->name,
               w->backend, w->device, w->state, w->running, (long long)w->tasks_done);
    }
    wire_msg_release(&rep);
    return EXIT_STATUS_OK;
}
