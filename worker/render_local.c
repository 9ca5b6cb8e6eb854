/*
 * render_local.c - a whole render in one process (see render_local.h).
 *
 * Memory: the audio is held once (16 kHz float), the latents twice
 * ([16, L, h, w] for the loop and a frame-major copy for the decoder: a few
 * hundred MB for an hour at 480x832); decoded frames stream into the chunk
 * encoder and are never all in memory.
 */
#include "render_local.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/err.h"
#include "../common/fsutil.h"
#include "../common/log.h"
#include "../common/media.h"
#include "../common/plan.h"
#include "../common/progress.h"
#include "../common/xmalloc.h"
#include "decode_stage.h"
#include "engine/backend.h"
#include "engine/st_writer.h"
#include "longloop.h"
#include "model_set.h"
#include "models/vae.h"
#include "prepare.h"

void render_params_default(struct render_params *rp)
{
    memset(rp, 0, sizeof *rp);
    rp->width = 512;
    rp->height = 512;
    rp->clip_frames = 81;
    rp->overlap = 5;
    rp->steps = 50;
    rp->blend = BLEND_SCHEME_LOG;
    rp->seed = 42;
    rp->text_scale = 3.0f;
    rp->audio_scale = 5.0f;
    rp->fps = 25;
    rp->segment_latents = DECODE_SEGMENT_LATENTS;
}

const char *render_stage_name(enum render_stage s)
{
    static const char *names[RENDER_STAGE_COUNT] = {"load", "prepare", "denoise", "decode",
                                                    "stitch"};
    return (unsigned)s < RENDER_STAGE_COUNT ? names[s] : "?";
}

static int check_params(const struct render_params *rp)
{
    if (rp->width < 16 || rp->height < 16 || rp->width % 16 || rp->height % 16 ||
        rp->width > 8192 || rp->height > 8192)
        return log_error_rc(ENC_EINVAL, "size %dx%d: width and height must be multiples of 16 "
                            "between 16 and 8192", rp->width, rp->height);
    if (rp->clip_frames < 5 || (rp->clip_frames - 1) % 4)
        return log_error_rc(ENC_EINVAL, "clip frames %d: must be 4k+1 with k >= 1 (81)",
                            rp->clip_frames);
    int F = (rp->clip_frames - 1) / 4 + 1;
    if (rp->overlap < 0 || rp->overlap >= F)
        return log_error_rc(ENC_EINVAL, "overlap %d: must be in [0, %d) for %d-frame windows",
                            rp->overlap, F, rp->clip_frames);
    if (rp->steps < 1 || rp->steps > 1000)
        return log_error_rc(ENC_EINVAL, "steps %d: must be between 1 and 1000", rp->steps);
    if (rp->fps != 25)
        return log_error_rc(ENC_EINVAL, "fps %d: the model works at 25 frames per second",
                            rp->fps);
    if (!isfinite(rp->text_scale) || !isfinite(rp->audio_scale))
        return log_error_rc(ENC_EINVAL, "guidance scales must be finite numbers");
    if (rp->segment_latents < 1)
        return log_error_rc(ENC_EINVAL, "segment length %d: must be >= 1", rp->segment_latents);
    return 0;
}

struct denoise_progress {
    struct progress pr;
    int64_t n_windows;
};

static void on_window(void *ctx, int step, int64_t window)
{
    struct denoise_progress *dp = ctx;
    progress_update(&dp->pr, (int64_t)step * dp->n_windows + window + 1);
}

static void on_frames(void *ctx, int64_t frames)
{
    progress_update(ctx, frames);
}

static int save_latents(const char *path, const float *lat, int64_t L, int64_t h, int64_t w)
{
    struct st_writer *st = st_writer_new();
    st_writer_meta(st, "layout", "[channels, latent frames, height/8, width/8]");
    int rc = st_writer_add_f32_as(st, "latents", DTYPE_BF16, 4, (int64_t[]){16, L, h, w}, lat);
    if (rc == 0)
        rc = st_writer_write(st, path);
    st_writer_destroy(&st);
    return rc;
}

int render_local(const struct render_params *rp, const char *audio_path, const char *image_path,
                 const char *out_path, struct render_report *rep)
{
    struct render_report local_rep;
    struct backend *be = NULL;
    struct model_set *ms = NULL;
    struct audio_pcm pcm = {0};
    struct image_rgb img = {0};
    struct plan plan = {0};
    struct prepared prep = {0};
    float *image = NULL, *init = NULL, *lat = NULL, *lat_fm = NULL;
    char *tiny_dir = NULL, *work = NULL, **chunks = NULL;
    int64_t n_seg = 0;
    int rc, own_work = 0;
    double t;

    if (!rep)
        rep = &local_rep;
    memset(rep, 0, sizeof *rep);
    if ((rc = check_params(rp)) < 0)
        return rc;

    /* load */
    t = progress_now();
    if ((rc = media_audio_decode(audio_path, &pcm)) < 0)
        goto out;
    if (pcm.n < PLAN_SAMPLES_PER_FRAME) {
        rc = log_error_rc(ENC_EINVAL, "audio '%s' is %.3f s long: at least one video frame "
                          "(0.04 s) of sound is needed", audio_path, (double)pcm.n / 16000.0);
        goto out;
    }
    struct plan_params pp = {.clip_frames = rp->clip_frames, .overlap = rp->overlap};
    if ((rc = plan_make(&plan, pcm.n, &pp)) < 0)
        goto out;
    if ((rc = media_image_load(image_path, rp->width, rp->height, &img)) < 0)
        goto out;
    image = xmalloc((size_t)(3 * rp->width * rp->height) * sizeof(float));
    media_image_to_chw(&img, image);
    be = backend_open(rp->device ? rp->device : "cpu", rp->threads);
    if (!be) {
        rc = ENC_EDEVICE;
        goto out;
    }
    const char *models = rp->models;
    if (!models) {
        tiny_dir = model_set_tiny_dir(1);
        if (!tiny_dir) {
            rc = ENC_EIO;
            goto out;
        }
        models = tiny_dir;
    }
    if ((rc = model_set_open(models, be, MODEL_PART_ALL, &ms)) < 0)
        goto out;
    rep->latent_frames = plan.latent_frames;
    rep->windows = plan.n_windows;
    rep->frames = plan.out_frames;
    rep->duration_s = (double)plan.out_frames / rp->fps;
    if (!rp->quiet)
        fprintf(stderr, "render: %.2f s of audio -> %lld frames (%lld latent frames, %lld "
                "windows of %d), %dx%d, %d steps\n", (double)pcm.n / 16000.0,
                (long long)plan.out_frames, (long long)plan.latent_frames,
                (long long)plan.n_windows, plan.frames_per_window, rp->width, rp->height,
                rp->steps);
    rep->stage_s[RENDER_STAGE_LOAD] = progress_now() - t;

    /* prepare */
    t = progress_now();
    struct prepare_params prp = {.prompt = rp->prompt, .negative = rp->negative,
                                 .clip_frames = rp->clip_frames, .text_len = 512,
                                 .quiet = rp->quiet};
    if ((rc = prepare_job(ms, &prp, image, rp->height, rp->width, &plan, pcm.samples, &prep)) < 0)
        goto out;
    audio_pcm_release(&pcm); /* the features are all the loop needs */
    rep->stage_s[RENDER_STAGE_PREPARE] = progress_now() - t;

    /* denoise */
    t = progress_now();
    if ((rc = model_set_load(ms, MODEL_PART_DIT)) < 0)
        goto out;
    int64_t L = plan.latent_frames, h = prep.h, w = prep.w, n_lat = 16 * L * h * w;
    init = xmalloc((size_t)n_lat * sizeof(float));
    lat = xmalloc((size_t)n_lat * sizeof(float));
    longloop_init_latents(rp->seed, L, h, w, init);
    struct dit_job_inputs in;
    prepared_job_inputs(&prep, &in);
    struct denoise_progress dp = {.n_windows = plan.n_windows};
    progress_begin(&dp.pr, "denoise", "window-steps", (int64_t)rp->steps * plan.n_windows,
                   rp->quiet);
    struct longloop_params lp = {.plan = &plan, .h = h, .w = w, .steps = rp->steps,
                                 .audio_scale = rp->audio_scale, .text_scale = rp->text_scale,
                                 .scheme = rp->blend, .progress = on_window, .cb_ctx = &dp};
    struct longloop_audio la = {.feat = (const float *const *)prep.audio,
                                .n_tokens = prep.n_tokens};
    if ((rc = longloop_run_dit(ms->dit, &in, &lp, &la, init, lat)) < 0)
        goto out;
    progress_end(&dp.pr);
    model_set_unload(ms, MODEL_PART_DIT);
    if (rp->save_latents && (rc = save_latents(rp->save_latents, lat, L, h, w)) < 0)
        goto out;
    rep->stage_s[RENDER_STAGE_DENOISE] = progress_now() - t;

    /* decode */
    t = progress_now();
    if ((rc = model_set_load(ms, MODEL_PART_VAE_DECODER)) < 0)
        goto out;
    if (rp->work_dir) {
        work = xstrdup(rp->work_dir);
    } else {
        const char *tmp = getenv("TMPDIR");
        work = xasprintf("%s/encore-render-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(work)) {
            rc = log_error_rc(ENC_EIO, "cannot create a temporary directory '%s'", work);
            goto out;
        }
        own_work = 1;
    }
    n_seg = decode_segment_count(L, rp->segment_latents);
    chunks = xcalloc((size_t)n_seg, sizeof(char *));
    for (int64_t i = 0; i < n_seg; i++)
        chunks[i] = xasprintf("%s/chunk-%06lld.mp4", work, (long long)i);
    lat_fm = xmalloc((size_t)n_lat * sizeof(float));
    decode_latents_frame_major(lat, 16, L, h, w, lat_fm);
    struct progress dpr;
    progress_begin(&dpr, "decode", "frames", plan.out_frames, rp->quiet);
    if ((rc = decode_stream(ms->vae, lat_fm, L, h, w, rp->segment_latents, rp->fps, chunks,
                            on_frames, &dpr, &rep->encode_s)) < 0)
        goto out;
    progress_end(&dpr);
    rep->stage_s[RENDER_STAGE_DECODE] = progress_now() - t;

    /* stitch */
    t = progress_now();
    rc = media_mux_stitch(out_path, (const char *const *)chunks, (int)n_seg, audio_path,
                          plan.out_frames, rp->fps);
    rep->stage_s[RENDER_STAGE_STITCH] = progress_now() - t;
out:
    for (int64_t i = 0; chunks && i < n_seg; i++) {
        if (own_work)
            unlink(chunks[i]);
        free(chunks[i]);
    }
    free(chunks);
    if (own_work)
        fs_remove_tree(work);
    free(work);
    prepared_release(&prep);
    plan_release(&plan);
    audio_pcm_release(&pcm);
    image_rgb_release(&img);
    model_set_destroy(&ms);
    backend_destroy(&be);
    free(tiny_dir);
    free(image);
    free(init);
    free(lat);
    free(lat_fm);
    return rc;
}
