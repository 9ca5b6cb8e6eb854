/*
 * cmd_render.c - `encore render`: a whole job in this process.
 *
 * With the engine (the default): the whole pipeline in this process (load,
 * prepare, denoise, decode, stitch: worker/render_local.c), with progress
 * and ETA, ending with the path, duration and frame count. The embedded farm
 * (a coordinator and --workers N threads over inproc://) runs the sim
 * backend for now (`--backend sim`); engine tasks on the farm come with the
 * prepare and decode task kinds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/client.h"
#include "cli/embed.h"
#include "common/blend.h"
#include "common/err.h"
#include "common/latent_file.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "commands.h"
#include "worker/render_local.h"
#include "worker/sim.h"

static const char usage[] =
    "usage: encore render AUDIO IMAGE -o OUT.mp4 [render options] [--workers N] [--local]\n"
    "                     [--state DIR] [--sim-ms N]\n";

static int render_sim_local(const struct render_opts *r)
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

/* render_engine() maps the shared render options onto the in-process
 * pipeline. The tiny model renders at 64x64 unless --size says otherwise. */
static int render_engine(const struct render_opts *r, int size_given)
{
    struct render_params rp;
    render_params_default(&rp);
    rp.models = r->models_dir; /* NULL: the tiny model */
    rp.prompt = r->p.prompt[0] ? r->p.prompt : NULL;
    rp.negative = r->p.negative[0] ? r->p.negative : NULL;
    rp.width = r->p.width;
    rp.height = r->p.height;
    if (!rp.models && !size_given)
        rp.width = rp.height = 64;
    rp.clip_frames = r->p.clip_frames;
    rp.overlap = r->p.overlap;
    rp.steps = r->p.steps;
    rp.blend = (enum blend_scheme)blend_parse_scheme(r->p.blend);
    rp.seed = r->p.seed;
    rp.text_scale = r->p.text_scale;
    rp.audio_scale = r->p.audio_scale;
    rp.fps = r->p.fps;
    rp.save_latents = r->save_latents;
    rp.threads = r->threads;
    rp.quiet = r->quiet;
    if (!r->output)
        return cli_usage_error(usage, "render: no output file (-o OUT.mp4)");

    struct render_report rep;
    int rc = render_local(&rp, r->audio, r->image, r->output, &rep);
    if (rc == 0)
        printf("%s: %.2f s, %lld frames at %d fps, %dx%d\n", r->output, rep.duration_s,
               (long long)rep.frames, rp.fps, rp.width, rp.height);
    if (rc == ENC_EINVAL)
        return EXIT_STATUS_USAGE;
    return rc < 0 ? EXIT_STATUS_FAILURE : EXIT_STATUS_OK;
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
    int size_given = 0;
    for (int i = 1; i < argc; i++)
        size_given |= strcmp(argv[i], "--size") == 0;
    if (strcmp(r.backend, "sim") != 0)
        return render_engine(&r, size_given);
    if (r.output) {
        fprintf(stderr, "encore render: '%s': the sim backend makes no video (its latents are "
                        "not a model's); use --save-latents FILE\n", r.output);
        return EXIT_STATUS_USAGE;
    }
    if (!r.save_latents)
        return cli_usage_error(usage, "no output: give --save-latents FILE with --backend sim");
    if (r.local)
        return render_sim_local(&r);
    if (log_threshold == LOG_LEVEL_INFO)
        log_set_level(LOG_LEVEL_WARN); /* the progress line says what matters */
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
