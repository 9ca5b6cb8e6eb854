/*
 * cmd_cancel.c - `encore cancel JOB`.
 */
#include <stdio.h>

#include "cli/client.h"
#include "common/parse.h"
#include "commands.h"

static const char usage[] = "usage: encore [--coordinator EP] cancel JOB\n";

int cmd_cancel(const struct global_opts *g, int argc, char **argv)
{
    int64_t id;
    if (argc > 1 && cli_is_help(argv[1])) {
        fputs(usage, stdout);
        return EXIT_STATUS_OK;
    }
    if (argc != 2 || parse_i64(argv[1], 1, INT64_MAX, &id))
        return cli_usage_error(usage, "give one job id");
    struct wire_msg req, rep;
    wire_msg_init(&req, WIRE_CANCEL);
    req.u.cancel.job_id = (uint64_t)id;
    int rc = client_call(NULL, g->coordinator, "cancel", &req, &rep, 10000);
    if (rc)
        return rc;
    printf("job %llu %s\n", (unsigned long long)rep.u.cancel_reply.job_id,
           rep.u.cancel_reply.state);
    wire_msg_release(&rep);
    return EXIT_STATUS_OK;
}
