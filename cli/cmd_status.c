/*
 * cmd_status.c - `encore status [JOB] [--json]`: job states (docs/json.md).
 */
#include <stdio.h>
#include <string.h>

#include "cli/client.h"
#include "common/parse.h"
#include "common/status_json.h"
#include "commands.h"

static const char usage[] = "usage: encore [--coordinator EP] status [JOB] [--json]\n";

int cmd_status(const struct global_opts *g, int argc, char **argv)
{
    int json = 0;
    int64_t id = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            fputs(usage, stdout);
            return EXIT_STATUS_OK;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (parse_i64(argv[i], 1, INT64_MAX, &id)) {
            return cli_usage_error(usage, "bad job id '%s'", argv[i]);
        }
    }
    struct wire_msg req, rep;
    wire_msg_init(&req, WIRE_STATUS);
    req.u.status.job_id = (uint64_t)id;
    int rc = client_call(NULL, g->coordinator, "status", &req, &rep, 10000);
    if (rc)
        return rc;
    if (json) {
        struct textbuf b = {0};
        if (id)
            status_json_job(&b, &rep.u.status_reply.jobs[0]);
        else
            status_json_jobs(&b, rep.u.status_reply.jobs, rep.u.status_reply.n_jobs,
                             rep.u.status_reply.stale_results, rep.u.status_reply.bad_messages);
        textbuf_append(&b, "\n", 1);
        fwrite(b.p, 1, b.n, stdout);
        textbuf_free(&b);
    } else {
        printf("%-6s %-10s %4s %-8s %9s %13s %6s\n", "JOB", "STATE", "PRIO", "MODEL", "WINDOWS",
               "TASKS", "STALE");
        for (int i = 0; i < rep.u.status_reply.n_jobs; i++) {
            const struct wire_job_info *j = &rep.u.status_reply.jobs[i];
            printf("%-6llu %-10s %4d %-8s %4lld/%-4lld %6lld/%-6lld %6lld%s%s\n",
                   (unsigned long long)j->id, j->state, j->priority, j->model,
                   (long long)j->windows_done, (long long)j->n_windows, (long long)j->tasks_done,
                   (long long)j->tasks_total, (long long)j->stale_results,
                   j->error[0] ? "  " : "", j->error);
        }
    }
    wire_msg_release(&rep);
    return EXIT_STATUS_OK;
}
