/*
 * cmd_render.c - `encore render`: a whole job in this process.
 *
 * Without --local: a coordinator and --workers N workers as threads over
 * inproc:// with a state directory of their own (the cluster's code paths),
 * the same progress display as `encore watch`. With --local: the
 * single-process reference loop. Only the sim backend can run in this build;
 * the engine and the MP4 output fail with a clear error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/client.h"
#include "cli/embed.h"
#include "common/latent_file.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "commands.h"
#include "worker/sim.h"

static const char usage[] =
    "usage: encore render AUDIO IMAGE -o OUT.mp4 [render options] [--workers N] [--local]\n"
    "                     [--state DIR] [--sim-ms N]\n";

static int render_local(const struct render_opts *r)
{
    uint16_t *lat;
    int64_t L;
    if (strcmp(r->backend, "sim") != 0) {
        fprintf(stderr, "encore render: --local with the engine needs worker/longloop, which "
                        "is not in this build yet; use --backend sim\n");
        return EXIT_STATUS_FAILURE;
    }
    if (sim_render_local(&r->p, &lat, &L)) {
        fprintf(stderr, "encore render: bad parameters\n");
        return EXIT_STATUS_USAGE;
    }
    int64_t h = r->p.height / 8, w = r->p.width / 8, hw = h * w;
    uint16_t *t = xmalloc(sizeof(uint16_t) * (size_t)(16 * L * hw));
    for (int64_t f = 0; f < L; f++)
        for (int64_t c = 0; c < 16; c++)
            memcpy(t + (c * L + f) * hw, lat + (f * 16 + c) * hw, sizeof(uint16_t) * (size_t)hw);
    int rc = client_write_latents(r->save_latents, t, L, h, w);
    free(t);
    free(lat);
    return rc;
}

int cmd_render(const struct global_opts *g, int argc, char **argv)
{
    struct render_opts r;
    (void)g;
    if (argc > 1 && cli_is_help(argv[1])) {
        printf("%s%s", usage, render_opts_usage);
        return EXIT_STATUS_OK;
    }
    render_opts_default(&r);
    int rc = render_opts_parse(&r, argc, argv, usage, 1);
    if (rc)
        return rc;
    if (r.output) {
        fprintf(stderr, "encore render: '%s': MP4 output (VAE decode and stitch) is not in this "
                        "build yet; use --save-latents FILE\n", r.output);
        return EXIT_STATUS_FAILURE;
    }
    if (!r.save_latents)
        return cli_usage_error(usage, "no output: give -o OUT.mp4 or --save-latents FILE");
    if (r.local)
        return render_local(&r);
    if (log_threshold == LOG_LEVEL_INFO)
        log_set_level(LOG_LEVEL_WARN); /* the progress line says what matters */
    if (strcmp(r.backend, "sim") != 0) {
        fprintf(stderr, "encore render: the engine backend is not in this build yet; use "
                        "--backend sim\n");
        return EXIT_STATUS_FAILURE;
    }
    char tmp[] = "/tmp/encore-render.XXXXXX";
    const char *state = r.state_dir;
    if (!state) {
        if (!mkdtemp(tmp)) {
            perror("encore render: cannot make a state directory");
            return EXIT_STATUS_FAILURE;
        }
        state = tmp;
    }
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://encore-render-%d", (int)getpid());
    struct embed *e;
    if (embed_start(&e, state, ep, r.workers, r.sim_ms, 1))
        return EXIT_STATUS_FAILURE;
    struct wire_msg req, rep;
    wire_msg_init(&req, WIRE_SUBMIT);
    req.u.submit.params = r.p;
    rc = client_call(embed_ctx(e), ep, "render", &req, &rep, 10000);
    if (!rc) {
        uint64_t id = rep.u.submit_reply.job_id;
        wire_msg_release(&rep);
        rc = client_watch(embed_ctx(e), ep, id, 0);
        if (!rc) {
            wire_msg_init(&req, WIRE_GET_LATENTS);
            req.u.get_latents.job_id = id;
            rc = client_call(embed_ctx(e), ep, "render", &req, &rep, 60000);
            if (!rc) {
                const struct wire_tensor *t = &rep.tensors[0];
                rc = client_write_latents(r.save_latents, t->data, t->shape[1], t->shape[2],
                                          t->shape[3]);
                wire_msg_release(&rep);
            }
        }
    }
    embed_stop(&e);
    if (!r.state_dir) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
        if (system(cmd) != 0)
            fprintf(stderr, "encore render: cannot remove '%s'\n", tmp);
    }
    return rc;
}
