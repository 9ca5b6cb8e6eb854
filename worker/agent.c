/*
 * agent.c - worker protocol loop and task runner (see agent.h).
 *
 * Session: each hello starts a session. Credits granted in a session are
 * returned by the coordinator's bookkeeping when a result of that session
 * arrives; a task finished after its session ended (the coordinator
 * restarted or expired us) is still reported (it will be dropped as stale)
 * and its slot is granted again with an explicit credit. Each heartbeat
 * lists the tasks held (queued, running, done but not yet reported) and
 * counts the Task messages received in the session, so the coordinator can
 * requeue a task it thinks we hold but we do not (docs/protocol.md).
 *
 *   DISCONNECTED --connect, hello--> HELLO_SENT --hello_ack--> READY
 *        ^                               |                      |
 *        +--- silence > 3 beats: close, back off (0.1 s .. 5 s) +
 *   READY --reset--> HELLO_SENT (queued tasks dropped)
 */
#include "agent.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "common/bf16.h"
#include "common/curve_keys.h"
#include "common/err.h"
#include "common/latent_file.h"
#include "common/log.h"
#include "common/media.h"
#include "common/noise.h"
#include "common/plan.h"
#include "common/wire.h"
#include "common/xmalloc.h"
#include "worker/decode_stage.h"
#include "worker/engine/backend.h"
#include "worker/longloop.h"
#include "worker/model_set.h"
#include "worker/models/dit.h"
#include "worker/models/sampler.h"
#include "worker/models/vae.h"
#include "worker/prepare.h"
#include "worker/sim.h"

#define QUEUE_MAX 4
#define CREDITS 2
#define JOB_CACHE 2 /* prepared jobs kept (each with its DiT job) */

enum agent_state { ST_DISCONNECTED, ST_HELLO_SENT, ST_READY };

struct job_task {
    struct wire_msg *m; /* the task message (owns its tensor) */
    int session;
};

struct done_task {
    struct wire_task_ref ref;
    int session;
    int failed, reason;
    char message[WIRE_ERR_MAX];
    void *out;               /* one buffer holding the result's tensors */
    int n_out;               /* tensors: 1 (u8 file) or 2 (denoise: head f32, rest bf16) */
    struct {
        enum wire_dtype dtype;
        int ndim;
        int64_t shape[4];
        size_t off;          /* byte offset in out; the last tensor's is 0 */
    } t[2];
};

/* A prepared job this worker holds (engine): the encoders' outputs, the
 * DiT's per-job state and the schedule. */
struct job_cache {
    uint64_t job_id;          /* 0: free */
    uint64_t used;
    struct prepared prep;
    struct longloop_dit_model dm;
    int steps;
    float *sigmas, *timesteps;
};

struct cache_entry {
    uint64_t job_id;
    int64_t window;
    int step;
    uint64_t used;
    uint16_t *data; /* [len][16][h][w] */
    size_t cap;
};

struct agent {
    struct agent_opts o;
    char name[WIRE_NAME_MAX];
    void *ctx;
    int own_ctx;
    void *sock, *wake_rx, *wake_tx;
    char wake_ep[64];
    volatile sig_atomic_t stop;
    enum agent_state state;
    int session;
    uint64_t received;              /* Task messages since the session's HelloAck */
    int hb_ms;
    int64_t last_heard, last_beat, last_hello;
    int backoff_ms;
    struct wire_limits limits;

    pthread_t runner;
    int runner_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job_task queue[QUEUE_MAX];
    int n_queue;
    int running;                    /* the runner holds a task ... */
    struct wire_task_ref current;   /* ... this one */
    struct done_task done[QUEUE_MAX + 1];
    int n_done;
    int quit;                       /* runner exits */
    struct agent_stats stats;       /* under mu */

    struct cache_entry *cache;      /* runner-only */
    int n_cache;
    uint64_t use_clock;
    /* runner-only scratch, grown as needed */
    const uint16_t **in;            /* [len] a denoise task's input frames */
    uint16_t *x16;                  /* step 0: the noise as bf16 [len][16][h][w] */
    float *x, *y;                   /* engine: input, output [len][16][h][w]; sim: y a frame */
    size_t cap_in, cap_x16, cap_x, cap_y;

    /* engine, runner-only: loaded lazily */
    char tmpdir[256];
    struct backend *be;
    struct model_set *ms;
    struct job_cache jobs[JOB_CACHE];
};

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void agent_get_stats(struct agent *a, struct agent_stats *st)
{
    pthread_mutex_lock(&a->mu);
    *st = a->stats;
    pthread_mutex_unlock(&a->mu);
}

void agent_sum_stats(struct agent *const *a, int n, struct agent_stats *sum)
{
    memset(sum, 0, sizeof *sum);
    for (int i = 0; i < n; i++)
        if (a[i]) {
            struct agent_stats st;
            agent_get_stats(a[i], &st);
            sum->tasks += st.tasks;
            sum->busy_s += st.busy_s;
            sum->starved_s += st.starved_s;
        }
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void agent_opts_default(struct agent_opts *o)
{
    memset(o, 0, sizeof *o);
    o->coordinator = "tcp://127.0.0.1:7707";
    o->backend = "sim";
    o->device = "cpu";
    o->model = "sim";
    o->cache_windows = 16;
}

/* ---- engine ------------------------------------------------------------------ */

#define FAIL(d, why, ...)                                                                      \
    do {                                                                                       \
        (d)->failed = 1;                                                                       \
        (d)->reason = (why);                                                                   \
        snprintf((d)->message, sizeof (d)->message, __VA_ARGS__);                              \
    } while (0)

static int save_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return log_error_rc(ENC_EIO, "cannot write '%s'", path);
    int bad = fwrite(data, 1, n, f) != n;
    bad |= fclose(f) != 0;
    return bad ? log_error_rc(ENC_EIO, "cannot write '%s'", path) : 0;
}

/* load_bytes(): a whole file as the result of task d (u8 [n]). */
static int load_bytes(const char *path, struct done_task *d)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return ENC_EIO;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (n <= 0) {
        fclose(f);
        return ENC_EIO;
    }
    d->out = xmalloc((size_t)n);
    int bad = fread(d->out, 1, (size_t)n, f) != (size_t)n;
    fclose(f);
    if (bad) {
        free(d->out);
        d->out = NULL;
        return ENC_EIO;
    }
    d->n_out = 1;
    d->t[0].dtype = WIRE_DTYPE_U8;
    d->t[0].ndim = 1;
    d->t[0].shape[0] = n;
    d->t[0].off = 0;
    return 0;
}

/* tmp_path(): a scratch file of this worker, named by job and purpose. */
static char *tmp_path(struct agent *a, uint64_t job, const char *what)
{
    if (!a->tmpdir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(a->tmpdir, sizeof a->tmpdir, "%s/encore-worker-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(a->tmpdir))
            snprintf(a->tmpdir, sizeof a->tmpdir, "%s", t && *t ? t : "/tmp");
    }
    return xasprintf("%s/%llu-%s", a->tmpdir, (unsigned long long)job, what);
}

/* ensure_models(): the backend and the model set (the worker's directory,
 * or the tiny model; the sim backend decodes with the tiny VAE). */
static int ensure_models(struct agent *a)
{
    if (a->ms)
        return 0;
    char *tiny = NULL;
    const char *dir = a->o.models_dir;
    if (!dir) {
        tiny = model_set_tiny_dir(1);
        if (!tiny)
            return ENC_EIO;
        dir = tiny;
    }
    if (!a->be)
        a->be = backend_open(a->o.device && strncmp(a->o.device, "cuda", 4) == 0 ? a->o.device
                                                                                 : "cpu",
                             a->o.threads);
    int rc = a->be ? model_set_open(dir, a->be, MODEL_PART_ALL, &a->ms) : ENC_EDEVICE;
    free(tiny);
    return rc;
}

static void job_cache_free(struct job_cache *jc)
{
    prepared_release(&jc->prep);
    dit_job_destroy(&jc->dm.job);
    free(jc->sigmas);
    free(jc->timesteps);
    memset(jc, 0, sizeof *jc);
}

static struct job_cache *job_cache_find(struct agent *a, uint64_t job)
{
    for (int i = 0; i < JOB_CACHE; i++)
        if (a->jobs[i].job_id == job)
            return &a->jobs[i];
    return NULL;
}

/* job_cache_load(): the prepared job saved at path becomes job's entry. */
static int job_cache_load(struct agent *a, uint64_t job, const char *path, int steps,
                          struct job_cache **out)
{
    struct job_cache *jc = &a->jobs[0];
    for (int i = 1; i < JOB_CACHE; i++)
        if (a->jobs[i].used < jc->used)
            jc = &a->jobs[i];
    job_cache_free(jc);
    int rc = prepared_load(path, &jc->prep);
    if (rc)
        return rc;
    jc->job_id = job;
    jc->used = ++a->use_clock;
    jc->steps = steps;
    jc->sigmas = xcalloc((size_t)steps + 1, sizeof(float));
    jc->timesteps = xcalloc((size_t)steps, sizeof(float));
    sampler_schedule(steps, SAMPLER_TRAIN_STEPS, SAMPLER_SHIFT, jc->sigmas, jc->timesteps);
    *out = jc;
    return 0;
}

/* run_prepare(): audio and image files in, the prepared job file out. */
static void run_prepare(struct agent *a, const struct wire_msg *m, struct done_task *d)
{
    const struct wire_task *t = &m->u.task;
    const struct wire_job_params *p = &t->params;
    struct audio_pcm pcm = {0};
    struct image_rgb img = {0};
    struct plan plan = {0};
    struct prepared prep = {0};
    float *image = NULL;
    char *pa = tmp_path(a, t->job_id, "audio"), *pi = tmp_path(a, t->job_id, "image");
    char *pp = tmp_path(a, t->job_id, "prepared.safetensors");
    if (m->n_tensors != 2 || m->tensors[0].dtype != WIRE_DTYPE_U8 ||
        m->tensors[1].dtype != WIRE_DTYPE_U8) {
        FAIL(d, WIRE_FAIL_ERROR, "prepare task of job %llu carries no audio and image files",
             (unsigned long long)t->job_id);
        goto out;
    }
    if (save_bytes(pa, m->tensors[0].data, m->tensors[0].nbytes) ||
        save_bytes(pi, m->tensors[1].data, m->tensors[1].nbytes)) {
        FAIL(d, WIRE_FAIL_ERROR, "cannot write scratch files under '%.150s'", a->tmpdir);
        goto out;
    }
    if (media_audio_decode(pa, &pcm) < 0 || pcm.n < PLAN_SAMPLES_PER_FRAME) {
        FAIL(d, WIRE_FAIL_INPUT, "audio '%.150s' does not decode to at least 0.04 s of sound",
             p->audio_path);
        goto out;
    }
    struct plan_params ppar = {.clip_frames = p->clip_frames, .overlap = p->overlap};
    if (plan_make(&plan, pcm.n, &ppar) < 0) {
        FAIL(d, WIRE_FAIL_INPUT, "cannot plan windows for audio '%.150s'", p->audio_path);
        goto out;
    }
    if (media_image_load(pi, p->width, p->height, &img) < 0) {
        FAIL(d, WIRE_FAIL_INPUT, "image '%.150s' cannot be read as an image", p->image_path);
        goto out;
    }
    image = xmalloc(sizeof(float) * (size_t)(3 * p->width * p->height));
    media_image_to_chw(&img, image);
    if (ensure_models(a) < 0) {
        FAIL(d, WIRE_FAIL_ERROR, "cannot open the model on this worker");
        goto out;
    }
    struct prepare_params prp = {.prompt = p->prompt[0] ? p->prompt : NULL,
                                 .negative = p->negative[0] ? p->negative : NULL,
                                 .clip_frames = p->clip_frames, .text_len = 512, .quiet = 1};
    if (prepare_job(a->ms, &prp, image, p->height, p->width, &plan, pcm.samples, &prep) < 0 ||
        prepared_save(&prep, pp) < 0 || load_bytes(pp, d) < 0) {
        FAIL(d, WIRE_FAIL_ERROR, "prepare failed on this worker (see its log)");
        goto out;
    }
    /* Keep it: denoise tasks of this job will not carry it to us. */
    struct job_cache *jc;
    if (job_cache_load(a, t->job_id, pp, p->steps, &jc) < 0) {
        free(d->out);
        d->out = NULL;
        FAIL(d, WIRE_FAIL_ERROR, "cannot read back the prepared job");
    }
out:
    unlink(pa);
    unlink(pi);
    unlink(pp);
    free(pa);
    free(pi);
    free(pp);
    free(image);
    prepared_release(&prep);
    plan_release(&plan);
    audio_pcm_release(&pcm);
    image_rgb_release(&img);
}

/* engine_step(): the DiT step of window t->window on x [len][16][h][w]
 * (frame-major f32) into out, exactly as longloop_run() computes it. */
static void engine_step(struct agent *a, const struct wire_msg *m, const float *x, float *out,
                        struct done_task *d)
{
    const struct wire_task *t = &m->u.task;
    const struct wire_job_params *p = &t->params;
    struct job_cache *jc = job_cache_find(a, t->job_id);
    if (!jc && t->prepared) {
        const struct wire_tensor *bt = &m->tensors[m->n_tensors - 1];
        char *path = tmp_path(a, t->job_id, "prepared-in.safetensors");
        int rc = bt->dtype == WIRE_DTYPE_U8 ? save_bytes(path, bt->data, bt->nbytes) : ENC_EINVAL;
        if (rc == 0)
            rc = job_cache_load(a, t->job_id, path, p->steps, &jc);
        unlink(path);
        free(path);
        if (rc < 0) {
            FAIL(d, WIRE_FAIL_ERROR, "the prepared job of job %llu does not load",
                 (unsigned long long)t->job_id);
            return;
        }
    }
    if (!jc) {
        FAIL(d, WIRE_FAIL_CACHE_MISS, "no prepared job %llu here", (unsigned long long)t->job_id);
        return;
    }
    jc->used = ++a->use_clock;
    const struct prepared *pr = &jc->prep;
    int64_t h = p->height / 8, w = p->width / 8, hw = h * w, len = t->len;
    if (t->window < 0 || t->window >= pr->n_windows || len > pr->frames || h != pr->h ||
        w != pr->w || t->step >= jc->steps) {
        FAIL(d, WIRE_FAIL_ERROR, "task %llu does not fit the prepared job",
             (unsigned long long)t->task_id);
        return;
    }
    if (ensure_models(a) < 0 || model_set_load(a->ms, MODEL_PART_DIT) < 0) {
        FAIL(d, WIRE_FAIL_ERROR, "cannot load the DiT on this worker");
        return;
    }
    if (!jc->dm.job) {
        struct dit_job_inputs in;
        prepared_job_inputs(pr, &in);
        jc->dm.d = a->ms->dit;
        if (dit_job_new(a->ms->dit, &in, &jc->dm.job) < 0) {
            FAIL(d, WIRE_FAIL_ERROR, "cannot set up the DiT for job %llu",
                 (unsigned long long)t->job_id);
            return;
        }
    }
    int64_t n = LATENT_CHANNELS * len * hw;
    float *xc = xmalloc(sizeof(float) * (size_t)n);
    float *v = xmalloc(sizeof(float) * (size_t)n);
    float *out3 = xmalloc(sizeof(float) * (size_t)(3 * n));
    for (int64_t f = 0; f < len; f++) /* [len][16][hw] -> [16][len][hw] */
        for (int64_t c = 0; c < LATENT_CHANNELS; c++)
            memcpy(xc + (c * len + f) * hw, x + (f * LATENT_CHANNELS + c) * hw,
                   sizeof(float) * (size_t)hw);
    const struct longloop_stepper st = {.model = longloop_dit_forward, .model_ctx = &jc->dm,
                                        .sigmas = jc->sigmas, .timesteps = jc->timesteps,
                                        .audio_scale = p->audio_scale,
                                        .text_scale = p->text_scale};
    int rc = longloop_window_step(&st, t->window, t->step, xc, len, hw, pr->audio[t->window],
                                  pr->n_tokens[t->window], out3, v);
    if (rc < 0)
        FAIL(d, WIRE_FAIL_ERROR, "the DiT failed on window %lld step %d", (long long)t->window,
             t->step);
    else
        for (int64_t f = 0; f < len; f++)
            for (int64_t c = 0; c < LATENT_CHANNELS; c++)
                memcpy(out + (f * LATENT_CHANNELS + c) * hw, xc + (c * len + f) * hw,
                       sizeof(float) * (size_t)hw);
    free(xc);
    free(v);
    free(out3);
}

/* run_decode(): final latents of a segment (with warm-up) to an H.264 chunk. */
static void run_decode(struct agent *a, const struct wire_msg *m, struct done_task *d)
{
    const struct wire_task *t = &m->u.task;
    const struct wire_job_params *p = &t->params;
    int64_t h = p->height / 8, w = p->width / 8, fs = LATENT_CHANNELS * h * w;
    int64_t first = t->first, b = t->start + t->len, n = b - first;
    const struct wire_tensor *lt = &m->tensors[0];
    if (m->n_tensors != 1 || lt->dtype != WIRE_DTYPE_BF16 || n < 1 || t->len < 1 ||
        first < 0 || first > t->start || lt->nbytes != (size_t)(n * fs * 2)) {
        FAIL(d, WIRE_FAIL_ERROR, "malformed decode task %llu of job %llu",
             (unsigned long long)t->task_id, (unsigned long long)t->job_id);
        return;
    }
    if (ensure_models(a) < 0 || model_set_load(a->ms, MODEL_PART_VAE_DECODER) < 0) {
        FAIL(d, WIRE_FAIL_ERROR, "cannot load the VAE decoder on this worker");
        return;
    }
    int rf = vae_receptive_field(a->ms->vae);
    if (first > 0 && t->start - first < rf) {
        FAIL(d, WIRE_FAIL_ERROR, "warm-up of %lld latents is below this VAE's receptive field "
             "(%d)", (long long)(t->start - first), rf);
        return;
    }
    float *lat = xmalloc(sizeof(float) * (size_t)(n * fs));
    const uint16_t *src = lt->data;
    for (int64_t i = 0; i < n * fs; i++)
        lat[i] = bf16_to_f32(src[i]);
    char what[64];
    snprintf(what, sizeof what, "chunk-%lld.mp4", (long long)t->window);
    char *path = tmp_path(a, t->job_id, what);
    if (decode_segment_from(a->ms->vae, lat, first, h, w, t->start, b, p->fps, path) < 0 ||
        load_bytes(path, d) < 0)
        FAIL(d, WIRE_FAIL_ERROR, "decoding segment %lld failed on this worker",
             (long long)t->window);
    unlink(path);
    free(path);
    free(lat);
}

/* ---- runner ----------------------------------------------------------------- */

static struct cache_entry *cache_find(struct agent *a, uint64_t job, int64_t k)
{
    for (int i = 0; i < a->n_cache; i++)
        if (a->cache[i].data && a->cache[i].job_id == job && a->cache[i].window == k)
            return &a->cache[i];
    return NULL;
}

static struct cache_entry *cache_slot(struct agent *a, uint64_t job, int64_t k)
{
    struct cache_entry *e = cache_find(a, job, k);
    if (e)
        return e;
    e = &a->cache[0];
    for (int i = 0; i < a->n_cache; i++) {
        if (!a->cache[i].data)
            return &a->cache[i];
        if (a->cache[i].used < e->used)
            e = &a->cache[i];
    }
    return e;
}

static void *grow(void *p, size_t *cap, size_t bytes)
{
    if (*cap < bytes) {
        p = xrealloc(p, bytes);
        *cap = bytes;
    }
    return p;
}

/*
 * A denoise result being built (protocol.md): tensor 0 the window output's
 * first nh = min(O, len) frames in f32 (the coordinator blends them), tensor
 * 1 the other frames rounded to bf16 (stored as they are). One buffer holds
 * both, tensor 1 first so that it leaves without a copy. Each output frame
 * goes straight to its place (emit_frame) and into the affinity cache entry
 * (bf16, the whole window), converted to bf16 once.
 */
struct result_out {
    float *head;     /* [nh][16][h][w] */
    uint16_t *rest;  /* [len - nh][16][h][w] */
    uint16_t *cache; /* [len][16][h][w], or NULL */
    int64_t nh, fs;
};

static void result_new(const struct wire_task *t, int64_t h, int64_t w, struct result_out *r,
                       struct done_task *d)
{
    int64_t fs = LATENT_CHANNELS * h * w;
    int64_t nh = t->params.overlap < t->len ? t->params.overlap : t->len, nr = t->len - nh;
    size_t off = (sizeof(uint16_t) * (size_t)(nr * fs) + 63) & ~(size_t)63;
    uint8_t *buf = xmalloc(off + sizeof(float) * (size_t)(nh * fs) + 1);
    r->head = (float *)(buf + off);
    r->rest = (uint16_t *)buf;
    r->cache = NULL;
    r->nh = nh;
    r->fs = fs;
    d->out = buf;
    d->n_out = 2;
    int64_t n[2] = {nh, nr};
    for (int q = 0; q < 2; q++) {
        d->t[q].dtype = q == 0 ? WIRE_DTYPE_F32 : WIRE_DTYPE_BF16;
        d->t[q].ndim = 4;
        d->t[q].shape[0] = n[q];
        d->t[q].shape[1] = LATENT_CHANNELS;
        d->t[q].shape[2] = h;
        d->t[q].shape[3] = w;
        d->t[q].off = q == 0 ? off : 0;
    }
}

/* emit_frame(): output frame f (f32 [16][h][w]) of the result r. */
static void emit_frame(void *ctx, int64_t f, const float *y)
{
    struct result_out *r = ctx;
    int64_t fs = r->fs;
    if (f < r->nh) {
        memcpy(r->head + f * fs, y, sizeof(float) * (size_t)fs);
        if (r->cache)
            f32_to_bf16_n(r->cache + f * fs, y, fs);
    } else {
        uint16_t *dst = r->rest + (f - r->nh) * fs;
        f32_to_bf16_n(dst, y, fs);
        if (r->cache)
            memcpy(r->cache + f * fs, dst, sizeof(uint16_t) * (size_t)fs);
    }
}

/* cache_out(): the cache entry that will hold the output of task t (its
 * window's entry, else a free or the least recently used one), sized for
 * len frames of fs values; NULL without a cache. */
static struct cache_entry *cache_out(struct agent *a, const struct wire_task *t, int64_t fs)
{
    if (a->n_cache <= 0)
        return NULL;
    struct cache_entry *ce = cache_slot(a, t->job_id, t->window);
    size_t need = (size_t)(t->len * fs);
    if (ce->cap < need) {
        ce->data = xrealloc(ce->data, need * sizeof(uint16_t));
        ce->cap = need;
    }
    return ce;
}

/* task_inputs(): in[f] = input frame f (bf16 [16][h][w]) of denoise task t
 * at step >= 1: from the message, else from the cached output ce of
 * base_step (NULL when the task names none). 0, or the task fails. */
static int task_inputs(const struct wire_msg *m, const struct cache_entry *ce, int64_t fs,
                       const uint16_t **in, struct done_task *d)
{
    const struct wire_task *t = &m->u.task;
    for (int64_t f = 0; f < t->len; f++)
        in[f] = ce ? ce->data + f * fs : NULL;
    const uint16_t *sent = t->n_sent > 0 ? m->tensors[0].data : NULL;
    for (int q = 0; q < t->n_sent; q++) {
        int32_t f = t->sent[q];
        if (f < 0 || f >= t->len) {
            FAIL(d, WIRE_FAIL_ERROR, "frame index %d out of range", f);
            return ENC_EINVAL;
        }
        in[f] = sent + q * fs;
    }
    for (int64_t f = 0; f < t->len; f++)
        if (!in[f]) {
            FAIL(d, WIRE_FAIL_ERROR, "task %llu of job %llu lacks frame %lld",
                 (unsigned long long)t->task_id, (unsigned long long)t->job_id, (long long)f);
            return ENC_EINVAL;
        }
    return 0;
}

/* sleep_until(): until ms milliseconds after *start (CLOCK_MONOTONIC). */
static void sleep_until(const struct timespec *start, int ms)
{
    struct timespec dl = {start->tv_sec + ms / 1000, start->tv_nsec + (long)(ms % 1000) * 1000000L};
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &dl, NULL) == EINTR)
        ;
}

static void run_task(struct agent *a, const struct wire_msg *m, struct done_task *d)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    const struct wire_task *t = &m->u.task;
    const struct wire_job_params *p = &t->params;
    int64_t h = p->height / 8, w = p->width / 8, fs = LATENT_CHANNELS * h * w;
    int engine = strcmp(a->o.backend, "sim") != 0;
    d->ref = (struct wire_task_ref){t->job_id, t->task_id, t->attempt};
    if (t->kind == WIRE_TASK_DECODE && h >= 1 && w >= 1) {
        run_decode(a, m, d);
        return;
    }
    if (t->kind == WIRE_TASK_PREPARE && engine) {
        run_prepare(a, m, d);
        return;
    }
    if (t->kind != WIRE_TASK_DENOISE) {
        FAIL(d, WIRE_FAIL_ERROR, "task kind %d is not for the '%s' backend", t->kind,
             a->o.backend);
        return;
    }
    int n_lat = t->n_sent > 0 ? 1 : 0;
    if (h < 1 || w < 1 || t->len < 1 || t->len > 1024 || p->steps < 1 || p->overlap < 0 ||
        m->n_tensors != n_lat + (t->prepared ? 1 : 0) ||
        (t->n_sent > 0 && (m->tensors[0].dtype != WIRE_DTYPE_BF16 ||
                           m->tensors[0].nbytes != (size_t)(t->n_sent * fs * 2)))) {
        d->failed = 1;
        d->reason = WIRE_FAIL_ERROR;
        snprintf(d->message, sizeof d->message, "malformed task %llu of job %llu",
                 (unsigned long long)t->task_id, (unsigned long long)t->job_id);
        return;
    }
    struct cache_entry *ce = cache_find(a, t->job_id, t->window);
    if (t->step > 0 && t->base_step >= 0 && (!ce || ce->step != t->base_step)) {
        FAIL(d, WIRE_FAIL_CACHE_MISS, "no cached output of step %d", t->base_step);
        return;
    }
    if (t->step == 0 || t->base_step < 0)
        ce = NULL; /* not an input */
    /* The output's cache entry is ce itself when ce exists: sized now,
     * before pointers into it are taken. */
    struct cache_entry *co = cache_out(a, t, fs);
    size_t n = (size_t)(t->len * fs);
    a->in = grow(a->in, &a->cap_in, sizeof *a->in * (size_t)t->len);
    if (t->step == 0) {
        a->x16 = grow(a->x16, &a->cap_x16, sizeof(uint16_t) * n);
        a->y = grow(a->y, &a->cap_y, sizeof(float) * (size_t)fs);
        for (int64_t f = 0; f < t->len; f++) { /* bf16-rounded: exact in bf16 */
            noise_latent_frame(p->seed, t->start + f, h, w, a->y);
            f32_to_bf16_n(a->x16 + f * fs, a->y, fs);
            a->in[f] = a->x16 + f * fs;
        }
    } else if (task_inputs(m, ce, fs, a->in, d) < 0) {
        return;
    }
    struct result_out r;
    if (engine) {
        /* The DiT's input in f32; the cache is written once the step succeeded. */
        a->x = grow(a->x, &a->cap_x, sizeof(float) * n);
        a->y = grow(a->y, &a->cap_y, sizeof(float) * n);
        for (int64_t f = 0; f < t->len; f++)
            bf16_to_f32_n(a->x + f * fs, a->in[f], fs);
        engine_step(a, m, a->x, a->y, d);
        if (d->failed)
            return;
        result_new(t, h, w, &r, d);
        r.cache = co ? co->data : NULL;
        for (int64_t f = 0; f < t->len; f++)
            emit_frame(&r, f, a->y + f * fs);
    } else {
        /* Frame by frame; output frame f may overwrite its own input in co. */
        a->y = grow(a->y, &a->cap_y, sizeof(float) * (size_t)fs);
        result_new(t, h, w, &r, d);
        r.cache = co ? co->data : NULL;
        sim_denoise_frames(p->seed, t->step, p->steps, t->start, t->len, h, w, a->in, a->y,
                           emit_frame, &r);
    }
    if (co) {
        co->job_id = t->job_id;
        co->window = t->window;
        co->step = t->step;
        co->used = ++a->use_clock;
    }
    if (a->o.sim_ms > 0) /* --sim-ms: the whole task, computing included */
        sleep_until(&t0, a->o.sim_ms);
}

static void *runner_main(void *arg)
{
    struct agent *a = arg;
    prctl(PR_SET_NAME, "encore-runner", 0, 0, 0);
    /* The sim backend's task ends at a deadline: wake at it, not up to
     * 50 us after (the default timer slack), which is 0.25 % of a 20 ms task. */
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    void *wake = zmq_socket(a->ctx, ZMQ_PAIR);
    zmq_connect(wake, a->wake_ep);
    double idle_from = 0;
    for (;;) {
        pthread_mutex_lock(&a->mu);
        while (!a->quit && a->n_queue == 0)
            pthread_cond_wait(&a->cv, &a->mu);
        double t0 = mono_s();
        if (idle_from > 0)
            a->stats.starved_s += t0 - idle_from;
        if (a->quit && a->n_queue == 0) {
            pthread_mutex_unlock(&a->mu);
            break;
        }
        struct job_task jt = a->queue[0];
        memmove(&a->queue[0], &a->queue[1], sizeof a->queue[0] * (size_t)(a->n_queue - 1));
        a->n_queue--;
        a->running = 1;
        a->current =
            (struct wire_task_ref){jt.m->u.task.job_id, jt.m->u.task.task_id, jt.m->u.task.attempt};
        pthread_mutex_unlock(&a->mu);

        struct done_task d;
        memset(&d, 0, sizeof d);
        d.session = jt.session;
        run_task(a, jt.m, &d);
        wire_msg_release(jt.m);
        free(jt.m);

        pthread_mutex_lock(&a->mu);
        a->done[a->n_done++] = d;
        a->running = 0;
        idle_from = mono_s();
        a->stats.tasks++;
        a->stats.busy_s += idle_from - t0;
        pthread_mutex_unlock(&a->mu);
        zmq_send(wake, "", 0, ZMQ_DONTWAIT);
    }
    zmq_close(wake);
    return NULL;
}

/* ---- I/O --------------------------------------------------------------------- */

static int send_simple(struct agent *a, enum wire_kind k, int n)
{
    struct wire_msg m;
    wire_msg_init(&m, k);
    if (k == WIRE_CREDIT)
        m.u.credit.n = n;
    return wire_send(a->sock, NULL, 0, &m);
}

/* send_heartbeat(): the tasks this worker holds, queued, running or done
 * with the result not sent yet (send_done() runs on this thread, so what it
 * sent before is not listed and what it did not send is), and the Task
 * messages received in this session: the coordinator requeues a task it
 * sent among those that the list lacks (docs/protocol.md). */
static void send_heartbeat(struct agent *a)
{
    struct wire_msg m;
    wire_msg_init(&m, WIRE_HEARTBEAT);
    m.u.heartbeat.received = a->received;
    struct wire_task_ref *l = m.u.heartbeat.tasks;
    int n = 0;
    pthread_mutex_lock(&a->mu);
    for (int i = 0; i < a->n_queue && n < WIRE_HEARTBEAT_MAX; i++)
        l[n++] = (struct wire_task_ref){a->queue[i].m->u.task.job_id, a->queue[i].m->u.task.task_id,
                                        a->queue[i].m->u.task.attempt};
    if (a->running && n < WIRE_HEARTBEAT_MAX)
        l[n++] = a->current;
    for (int i = 0; i < a->n_done && n < WIRE_HEARTBEAT_MAX; i++)
        l[n++] = a->done[i].ref;
    int all = n == a->n_queue + a->running + a->n_done;
    pthread_mutex_unlock(&a->mu);
    m.u.heartbeat.n = n;
    if (!all)
        m.u.heartbeat.received = 0; /* a partial list: claim nothing */
    wire_send(a->sock, NULL, 0, &m);
}

static void send_hello(struct agent *a)
{
    struct wire_msg m;
    wire_msg_init(&m, WIRE_HELLO);
    m.u.hello.protocol = WIRE_PROTOCOL_VERSION;
    snprintf(m.u.hello.name, WIRE_NAME_MAX, "%s", a->name);
    snprintf(m.u.hello.backend, WIRE_NAME_MAX, "%s", a->o.backend);
    snprintf(m.u.hello.device, WIRE_NAME_MAX, "%s", a->o.device);
    m.u.hello.cache_windows = (uint32_t)a->n_cache;
    m.u.hello.n_models = 1;
    snprintf(m.u.hello.models[0], WIRE_NAME_MAX, "%s", a->o.model);
    wire_send(a->sock, NULL, 0, &m);
    a->state = ST_HELLO_SENT;
    a->last_hello = now_ms();
}

static void open_socket(struct agent *a)
{
    int linger = 0, ivl = 100, ivl_max = 5000;
    a->sock = zmq_socket(a->ctx, ZMQ_DEALER);
    zmq_setsockopt(a->sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(a->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(a->sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max);
    if (a->o.curve)
        curve_keys_set_client(a->sock, a->o.curve); /* checked by the keys' loader */
    if (zmq_connect(a->sock, a->o.coordinator) != 0)
        log_error("cannot connect to '%s': %s", a->o.coordinator, zmq_strerror(errno));
    a->last_heard = now_ms();
    send_hello(a);
}

/* drop_queued(): forget tasks not started (their session is over). */
static void drop_queued(struct agent *a, struct wire_task_ref *handed, int *n_handed)
{
    pthread_mutex_lock(&a->mu);
    for (int i = 0; i < a->n_queue; i++) {
        if (handed && *n_handed < QUEUE_MAX)
            handed[(*n_handed)++] = (struct wire_task_ref){a->queue[i].m->u.task.job_id,
                                                           a->queue[i].m->u.task.task_id,
                                                           a->queue[i].m->u.task.attempt};
        wire_msg_release(a->queue[i].m);
        free(a->queue[i].m);
    }
    a->n_queue = 0;
    pthread_mutex_unlock(&a->mu);
}

static void send_done(struct agent *a)
{
    struct done_task d[QUEUE_MAX + 1];
    int n;
    pthread_mutex_lock(&a->mu);
    n = a->n_done;
    memcpy(d, a->done, sizeof d[0] * (size_t)n);
    a->n_done = 0;
    pthread_mutex_unlock(&a->mu);
    for (int i = 0; i < n; i++) {
        struct wire_msg m;
        if (d[i].failed) {
            wire_msg_init(&m, WIRE_TASK_FAILED);
            m.u.task_failed.ref = d[i].ref;
            m.u.task_failed.reason = d[i].reason;
            memcpy(m.u.task_failed.message, d[i].message, sizeof d[i].message);
            if (d[i].reason != WIRE_FAIL_CACHE_MISS)
                log_warn("task %llu of job %llu failed: %s", (unsigned long long)d[i].ref.task_id,
                         (unsigned long long)d[i].ref.job_id, d[i].message);
        } else {
            wire_msg_init(&m, WIRE_RESULT);
            m.u.result = d[i].ref;
            for (int q = 0; q < d[i].n_out; q++)
                wire_msg_add_tensor(&m, d[i].t[q].dtype, d[i].t[q].ndim, d[i].t[q].shape,
                                    (uint8_t *)d[i].out + d[i].t[q].off);
        }
        /* The last tensor (at offset 0) leaves without a copy; ZeroMQ frees
         * the buffer once it is sent. */
        wire_send_take(a->sock, NULL, 0, &m, d[i].out);
        /* A task of an ended session: grant its slot again explicitly. */
        if (d[i].session != a->session && a->state == ST_READY && !a->stop)
            send_simple(a, WIRE_CREDIT, 1);
    }
}

static void on_message(struct agent *a, struct wire_msg *m)
{
    a->last_heard = now_ms();
    switch (m->kind) {
    case WIRE_HELLO_ACK:
        if (a->state != ST_HELLO_SENT)
            break; /* a reply to a hello repeated while the coordinator was away */
        a->state = ST_READY;
        a->session++;
        a->received = 0;
        a->backoff_ms = 100;
        if (m->u.hello_ack.heartbeat_ms >= 10)
            a->hb_ms = (int)m->u.hello_ack.heartbeat_ms;
        log_info("joined %s as worker %llu", a->o.coordinator,
                 (unsigned long long)m->u.hello_ack.worker_id);
        pthread_mutex_lock(&a->mu);
        int busy = a->running + a->n_queue;
        pthread_mutex_unlock(&a->mu);
        if (!a->stop)
            send_simple(a, WIRE_CREDIT, busy >= CREDITS ? 0 : CREDITS - busy);
        break;
    case WIRE_RESET:
        log_info("coordinator does not know us: saying hello again");
        drop_queued(a, NULL, NULL);
        send_hello(a);
        break;
    case WIRE_TASK: {
        a->received++;
        struct wire_msg *copy = xmalloc(sizeof *copy);
        *copy = *m;
        wire_msg_init(m, WIRE_NONE); /* ownership moves to the queue */
        pthread_mutex_lock(&a->mu);
        if (a->n_queue < QUEUE_MAX) {
            a->queue[a->n_queue++] = (struct job_task){copy, a->session};
            copy = NULL;
            pthread_cond_signal(&a->cv);
        }
        pthread_mutex_unlock(&a->mu);
        if (copy) {
            /* More tasks than credits granted: hand it straight back. */
            struct wire_msg f;
            wire_msg_init(&f, WIRE_TASK_FAILED);
            f.u.task_failed.ref = (struct wire_task_ref){copy->u.task.job_id,
                                                         copy->u.task.task_id,
                                                         copy->u.task.attempt};
            f.u.task_failed.reason = WIRE_FAIL_BUSY;
            snprintf(f.u.task_failed.message, sizeof f.u.task_failed.message, "queue full");
            wire_send(a->sock, NULL, 0, &f);
            wire_msg_release(copy);
            free(copy);
        }
        break;
    }
    case WIRE_ERROR:
        log_warn("coordinator: %s", m->u.error.message);
        break;
    default:
        break;
    }
}

int agent_new(const struct agent_opts *o, struct agent **out)
{
    *out = NULL;
    if (strcmp(o->backend, "sim") != 0 && strcmp(o->backend, "engine") != 0)
        return log_error_rc(ENC_EINVAL, "unknown backend '%s' (sim or engine)", o->backend);
    /* Each task allocates and frees the same tensor-sized buffers: keep the
     * freed pages rather than trim and fault them in again (see coordinator.c). */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 16 << 20);
    struct agent *a = xcalloc(1, sizeof *a);
    a->o = *o;
    if (o->name)
        snprintf(a->name, sizeof a->name, "%s", o->name);
    else {
        char host[48] = "host";
        gethostname(host, sizeof host - 1);
        snprintf(a->name, sizeof a->name, "%s-%d", host, (int)getpid());
    }
    a->ctx = o->zmq_ctx;
    if (!a->ctx) {
        a->ctx = zmq_ctx_new();
        a->own_ctx = 1;
    }
    wire_limits_default(&a->limits);
    a->hb_ms = 1000;
    a->backoff_ms = 100;
    a->n_cache = o->cache_windows > 0 ? o->cache_windows : 0;
    a->cache = xcalloc((size_t)a->n_cache + 1, sizeof *a->cache);
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    static int seq;
    snprintf(a->wake_ep, sizeof a->wake_ep, "inproc://agent-wake-%p-%d", (void *)a,
             __atomic_fetch_add(&seq, 1, __ATOMIC_RELAXED));
    a->wake_rx = zmq_socket(a->ctx, ZMQ_PAIR);
    zmq_bind(a->wake_rx, a->wake_ep);
    if (pthread_create(&a->runner, NULL, runner_main, a) != 0) {
        agent_destroy(&a);
        return log_error_rc(ENC_EIO, "cannot start the task runner thread");
    }
    a->runner_started = 1;
    *out = a;
    return 0;
}

void agent_stop(struct agent *a)
{
    a->stop = 1;
}

int agent_run(struct agent *a)
{
    int said_bye = 0;
    open_socket(a);
    for (;;) {
        zmq_pollitem_t it[2] = {{.socket = a->sock, .events = ZMQ_POLLIN},
                                {.socket = a->wake_rx, .events = ZMQ_POLLIN}};
        int64_t now = now_ms();
        long timeout = a->hb_ms - (now - a->last_beat);
        if (timeout < 0)
            timeout = 0;
        if (a->stop && timeout > 50)
            timeout = 50;
        zmq_poll(it, 2, timeout);
        if (it[1].revents & ZMQ_POLLIN) {
            char b;
            while (zmq_recv(a->wake_rx, &b, 1, ZMQ_DONTWAIT) >= 0)
                ;
        }
        for (;;) {
            struct wire_msg m;
            char err[WIRE_ERR_MAX];
            int rc = wire_recv(a->sock, NULL, NULL, ZMQ_DONTWAIT, &a->limits, &m, err, sizeof err);
            if (rc == ENC_ETIMEOUT || rc == ENC_EIO)
                break;
            if (rc == ENC_EWIRE) {
                log_warn("bad message from the coordinator: %s", err);
                continue;
            }
            on_message(a, &m);
            wire_msg_release(&m);
        }
        send_done(a);
        now = now_ms();
        if (a->stop) {
            if (!said_bye) {
                /* Hand back what has not started; finish the running task. */
                struct wire_task_ref handed[QUEUE_MAX];
                int n = 0;
                drop_queued(a, handed, &n);
                pthread_mutex_lock(&a->mu);
                int busy = a->running;
                pthread_mutex_unlock(&a->mu);
                if (!busy) {
                    struct wire_msg m;
                    wire_msg_init(&m, WIRE_BYE);
                    m.u.bye.n = n;
                    m.u.bye.tasks = n ? handed : NULL;
                    wire_send(a->sock, NULL, 0, &m);
                    said_bye = 1;
                    log_info("stopping: handed back %d task(s)", n);
                    break;
                }
            }
        }
        if (now - a->last_beat >= a->hb_ms) {
            if (a->state == ST_READY)
                send_heartbeat(a);
            else if (now - a->last_hello >= a->backoff_ms) {
                send_hello(a);
                a->backoff_ms = a->backoff_ms * 2 > 5000 ? 5000 : a->backoff_ms * 2;
            }
            a->last_beat = now;
        }
        if (now - a->last_heard > 3 * (int64_t)a->hb_ms + a->backoff_ms) {
            log_warn("lost coordinator %s: reconnecting in %d ms", a->o.coordinator,
                     a->backoff_ms);
            zmq_close(a->sock);
            drop_queued(a, NULL, NULL);
            struct timespec ts = {a->backoff_ms / 1000, (long)(a->backoff_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
            a->backoff_ms = a->backoff_ms * 2 > 5000 ? 5000 : a->backoff_ms * 2;
            a->state = ST_DISCONNECTED;
            open_socket(a);
        }
    }
    return 0;
}

void agent_destroy(struct agent **pa)
{
    struct agent *a = *pa;
    if (!a)
        return;
    if (a->runner_started) {
        pthread_mutex_lock(&a->mu);
        a->quit = 1;
        pthread_cond_signal(&a->cv);
        pthread_mutex_unlock(&a->mu);
        pthread_join(a->runner, NULL);
    }
    drop_queued(a, NULL, NULL);
    for (int i = 0; i < a->n_done; i++)
        free(a->done[i].out);
    for (int i = 0; i < a->n_cache; i++)
        free(a->cache[i].data);
    free(a->cache);
    free(a->in);
    free(a->x16);
    free(a->x);
    free(a->y);
    for (int i = 0; i < JOB_CACHE; i++)
        job_cache_free(&a->jobs[i]);
    model_set_destroy(&a->ms);
    backend_destroy(&a->be);
    if (a->tmpdir[0] && strstr(a->tmpdir, "encore-worker-"))
        rmdir(a->tmpdir);
    if (a->sock)
        zmq_close(a->sock);
    if (a->wake_rx)
        zmq_close(a->wake_rx);
    if (a->own_ctx)
        zmq_ctx_term(a->ctx);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    free(a);
    *pa = NULL;
}
