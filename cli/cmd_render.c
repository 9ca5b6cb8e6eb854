/*
 * cmd_render.c - `encore render`: a whole job in this process.
 *
 * By default (DESIGN 7) an embedded farm: a coordinator and --workers N
 * workers as threads over inproc://, the same code paths as a cluster
 * (prepare, denoise, decode, stitch as tasks), with live progress and ETA,
 * ending with the path, duration and frame count. --local runs the
 * single-process pipeline instead (worker/render_local.c), whose latents
 * the farm's equal byte for byte. The sim backend denoises with its
 * stand-in; with an AUDIO file its latents are decoded by the tiny VAE.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/client.h"
#include "cli/embed.h"
#include "common/blend.h"
#include "common/err.h"
#include "common/fsutil.h"
#include "common/latent_file.h"
#include "common/log.h"
#include "common/media.h"
#include "common/xmalloc.h"
#include "commands.h"
#include "worker/model_set.h"
#include "worker/render_local.h"
#include "worker/sim.h"

static const char usage[] =
    "usage: encore render AUDIO IMAGE -o OUT.mp4 [render options] [--workers N] [--local]\n"
    "                     [--state DIR] [--sim-ms N]\n"
    "Runs a coordinator and N workers (--workers, default 2) in this process; --local runs\n"
    "the single-process pipeline instead (same latents, byte for byte).\n";

static int render_sim_local(struct render_opts *r)
{
    uint16_t *lat;
    int64_t L;
    if (r->p.n_samples == 0) {
        struct audio_pcm pcm = {0};
        if (media_audio_decode(r->audio, &pcm) < 0)
            return EXIT_STATUS_USAGE; /* the media module named the file */
        r->p.n_samples = pcm.n;
        audio_pcm_release(&pcm);
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
    (void)size_given; /* the caller applied the tiny model's default size */
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
    rp.device = r->device;
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

/* render_farm(): the job on an embedded coordinator with --workers N
 * workers over inproc:// (the default): the same code paths as a cluster.
 * Progress is the coordinator's view (client_watch). */
static int render_farm(struct render_opts *r)
{
    int sim = strcmp(r->backend, "sim") == 0, rc;
    if (!r->output && !r->save_latents)
        return cli_usage_error(usage, "render: no output file (-o OUT.mp4)");
    if (sim && r->output && !r->audio) {
        fprintf(stderr, "encore render: '%s': a video needs an AUDIO file (--samples makes "
                        "latents only)\n", r->output);
        return EXIT_STATUS_USAGE;
    }
    /* The tiny model is written once, before worker threads race for it. */
    if (!r->models_dir && (!sim || r->output)) {
        char *tiny = model_set_tiny_dir(1);
        if (!tiny)
            return EXIT_STATUS_FAILURE;
        free(tiny);
    }
    if (log_threshold == LOG_LEVEL_INFO)
        log_set_level(LOG_LEVEL_WARN); /* the progress line says what matters */
    char tmp[] = "/tmp/encore-render.XXXXXX";
    const char *state = r->state_dir;
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
    struct embed_opts eo = {.state_dir = state, .ep = ep, .workers = r->workers,
                            .backend = r->backend, .model = r->p.model,
                            .models_dir = r->models_dir, .threads = r->threads,
                            .device = r->device,
                            .sim_ms = r->sim_ms, .durable = 1};
    if (embed_start_opts(&e, &eo))
        return EXIT_STATUS_FAILURE;
    uint64_t id = 0;
    rc = client_submit(embed_ctx(e), ep, "render", r, &id);
    if (!rc && (rc = client_watch(embed_ctx(e), ep, id, r->quiet)) != 0) {
        /* A job that failed on its input (it names it) is bad input: exit 2. */
        struct wire_msg req, rep;
        wire_msg_init(&req, WIRE_STATUS);
        req.u.status.job_id = id;
        if (client_call(embed_ctx(e), ep, "render", &req, &rep, 10000) == 0) {
            const char *err = rep.u.status_reply.jobs[0].error;
            if (strncmp(err, "prepare: ", 9) == 0 || strncmp(err, "audio '", 7) == 0)
                rc = EXIT_STATUS_USAGE;
            wire_msg_release(&rep);
        }
    }
    if (!rc && r->output)
        rc = client_get_output(embed_ctx(e), ep, "render", id, r->output);
    if (!rc && r->save_latents)
        rc = client_get_latents(embed_ctx(e), ep, "render", id, r->save_latents);
    if (!rc && r->output) {
        struct wire_msg req, rep;
        wire_msg_init(&req, WIRE_STATUS);
        req.u.status.job_id = id;
        if (client_call(embed_ctx(e), ep, "render", &req, &rep, 10000) == 0) {
            int64_t L = rep.u.status_reply.jobs[0].latent_frames, frames = 4 * (L - 1) + 1;
            printf("%s: %.2f s, %lld frames at %d fps, %dx%d\n", r->output,
                   (double)frames / r->p.fps, (long long)frames, r->p.fps, r->p.width,
                   r->p.height);
            wire_msg_release(&rep);
        }
    }
    embed_stop(&e);
    if (!r->state_dir) {
        fs_remove_tree(tmp);
    }
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
    int size_given = 0;
    for (int i = 1; i < argc; i++)
        size_given |= strcmp(argv[i], "--size") == 0;
    /* The tiny model renders at 64x64 unless --size says otherwise. */
    if (!size_given && (!r.models_dir || strcmp(r.backend, "sim") == 0))
        r.p.width = r.p.height = 64;
    if (strcmp(r.backend, "sim") != 0 && r.local)
        return render_engine(&r, 1);
    if (strcmp(r.backend, "sim") == 0 && r.local) {
        if (r.output) {
            fprintf(stderr, "encore render: '%s': --local with the sim backend makes latents "
                            "only; use --save-latents FILE\n", r.output);
            return EXIT_STATUS_USAGE;
        }
        if (!r.save_latents)
            return cli_usage_error(usage, "no output: give --save-latents FILE");
        return render_sim_local(&r);
    }
    return render_farm(&r);
}
