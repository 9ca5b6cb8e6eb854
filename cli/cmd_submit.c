/*
 * cmd_submit.c - `encore submit`: queue a job on a coordinator, print its id.
 */
#include <stdio.h>

#include "cli/client.h"
#include "commands.h"

static const char usage[] =
    "usage: encore [--coordinator EP] submit AUDIO IMAGE [render options] [--priority N]\n"
    "       encore [--coordinator EP] submit --backend sim --samples N [render options]\n"
    "Prints the job id. Higher priorities run first; FIFO within a priority.\n";

int cmd_submit(const struct global_opts *g, int argc, char **argv)
{
    struct render_opts r;
    struct wire_msg req, rep;
    if (argc > 1 && cli_is_help(argv[1])) {
        printf("%s%s", usage, render_opts_usage);
        return EXIT_STATUS_OK;
    }
    render_opts_default(&r);
    int rc = render_opts_parse(&r, argc, argv, usage, 0);
    if (rc)
        return rc;
    wire_msg_init(&req, WIRE_SUBMIT);
    req.u.submit.params = r.p;
    req.u.submit.priority = r.priority;
    if ((rc = client_call(NULL, g->coordinator, "submit", &req, &rep, 10000)))
        return rc;
    printf("%llu\n", (unsigned long long)rep.u.submit_reply.job_id);
    wire_msg_release(&rep);
    return EXIT_STATUS_OK;
}
