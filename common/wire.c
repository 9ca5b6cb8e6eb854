/*
 * wire.c - Envelope encode/decode and multipart framing (see wire.h).
 *
 * The only file that includes the generated protobuf-c header. Conversion is
 * field by field between the generated structs and struct wire_msg, so the
 * rest of encore never depends on protobuf-c's types or allocation rules.
 * Decoding is defensive: every string is length-checked against its buffer,
 * every repeated field against its array, every tensor frame against its
 * descriptor; a bad message is consumed whole and reported, never applied.
 */
#include "wire.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "common/err.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "encore.pb-c.h"

void wire_limits_default(struct wire_limits *l)
{
    l->max_envelope = WIRE_MAX_ENVELOPE_DEFAULT;
    l->max_tensor = WIRE_MAX_TENSOR_DEFAULT;
}

const char *wire_kind_name(enum wire_kind k)
{
    switch (k) {
    case WIRE_HELLO: return "hello";
    case WIRE_HELLO_ACK: return "hello_ack";
    case WIRE_CREDIT: return "credit";
    case WIRE_HEARTBEAT: return "heartbeat";
    case WIRE_HEARTBEAT_ACK: return "heartbeat_ack";
    case WIRE_TASK: return "task";
    case WIRE_RESULT: return "result";
    case WIRE_TASK_FAILED: return "task_failed";
    case WIRE_RESULT_ACK: return "result_ack";
    case WIRE_BYE: return "bye";
    case WIRE_RESET: return "reset";
    case WIRE_ERROR: return "error";
    case WIRE_SUBMIT: return "submit";
    case WIRE_SUBMIT_REPLY: return "submit_reply";
    case WIRE_STATUS: return "status";
    case WIRE_STATUS_REPLY: return "status_reply";
    case WIRE_CANCEL: return "cancel";
    case WIRE_CANCEL_REPLY: return "cancel_reply";
    case WIRE_WORKERS: return "workers";
    case WIRE_WORKERS_REPLY: return "workers_reply";
    case WIRE_GET_LATENTS: return "get_latents";
    case WIRE_LATENTS: return "latents";
    case WIRE_GET_OUTPUT: return "get_output";
    case WIRE_OUTPUT: return "output";
    case WIRE_NONE: break;
    }
    return "none";
}

size_t wire_dtype_size(enum wire_dtype d)
{
    return d == WIRE_DTYPE_F32 ? 4 : d == WIRE_DTYPE_BF16 ? 2 : d == WIRE_DTYPE_U8 ? 1 : 0;
}

static void free_aligned(void *data, void *hint)
{
    (void)hint;
    free(data);
}

void wire_msg_init(struct wire_msg *m, enum wire_kind kind)
{
    memset(m, 0, sizeof *m);
    m->kind = kind;
}

void wire_msg_release(struct wire_msg *m)
{
    switch (m->kind) {
    case WIRE_TASK: free(m->u.task.sent); break;
    case WIRE_BYE: free(m->u.bye.tasks); break;
    case WIRE_STATUS_REPLY:
        for (int i = 0; i < m->u.status_reply.n_jobs; i++)
            free(m->u.status_reply.jobs[i].window_steps);
        free(m->u.status_reply.jobs);
        break;
    case WIRE_WORKERS_REPLY: free(m->u.workers_reply.workers); break;
    default: break;
    }
    for (int i = 0; i < WIRE_MAX_TENSORS; i++) {
        if (m->owned_[i]) {
            zmq_msg_close(m->owned_[i]);
            free(m->owned_[i]);
        }
    }
    wire_msg_init(m, WIRE_NONE);
}

void wire_msg_add_tensor(struct wire_msg *m, enum wire_dtype dt, int ndim, const int64_t *shape,
                         const void *data)
{
    if (m->n_tensors >= WIRE_MAX_TENSORS || ndim < 1 || ndim > 4)
        abort(); /* a programming error, not input */
    struct wire_tensor *t = &m->tensors[m->n_tensors++];
    size_t n = wire_dtype_size(dt);
    t->dtype = dt;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        n *= (size_t)shape[i];
    }
    t->data = (void *)data;
    t->nbytes = n;
}

/* ---- encode ------------------------------------------------------------ */

static void params_to_pb(const struct wire_job_params *p, Encore__JobParams *o)
{
    encore__job_params__init(o);
    o->model = (char *)p->model;
    o->n_samples = p->n_samples;
    o->clip_frames = p->clip_frames;
    o->overlap = p->overlap;
    o->blend = (char *)p->blend;
    o->steps = p->steps;
    o->seed = p->seed;
    o->width = p->width;
    o->height = p->height;
    o->text_scale = p->text_scale;
    o->audio_scale = p->audio_scale;
    o->fps = p->fps;
    o->prompt = (char *)p->prompt;
    o->negative = (char *)p->negative;
    o->audio_path = (char *)p->audio_path;
    o->image_path = (char *)p->image_path;
    o->audio_blob = (char *)p->audio_blob;
    o->image_blob = (char *)p->image_blob;
}

/* Scratch the encoder needs beyond the stack structs, freed after packing. */
struct enc_scratch {
    void *ptrs[16];
    int n;
};

static void *scratch(struct enc_scratch *s, size_t n)
{
    void *p = xcalloc(1, n ? n : 1);
    if (s->n < 16)
        s->ptrs[s->n++] = p;
    else
        abort();
    return p;
}

int wire_encode(const struct wire_msg *m, uint8_t **buf, size_t *len)
{
    Encore__Envelope env;
    Encore__TensorDesc td[WIRE_MAX_TENSORS], *tdp[WIRE_MAX_TENSORS];
    Encore__Hello hello;
    Encore__HelloAck hello_ack;
    Encore__Credit credit;
    Encore__Heartbeat heartbeat;
    Encore__TaskRef held[WIRE_HEARTBEAT_MAX], *heldp[WIRE_HEARTBEAT_MAX];
    Encore__HeartbeatAck heartbeat_ack;
    Encore__Task task;
    Encore__JobParams params;
    Encore__Result result;
    Encore__TaskFailed task_failed;
    Encore__ResultAck result_ack;
    Encore__Bye bye;
    Encore__Reset reset;
    Encore__Error error;
    Encore__Submit submit;
    Encore__SubmitReply submit_reply;
    Encore__StatusRequest status;
    Encore__StatusReply status_reply;
    Encore__Cancel cancel;
    Encore__CancelReply cancel_reply;
    Encore__WorkersRequest workers;
    Encore__WorkersReply workers_reply;
    Encore__GetLatents get_latents;
    Encore__LatentsReply latents;
    Encore__GetOutput get_output;
    Encore__OutputReply output;
    char *models[WIRE_MAX_MODELS];
    struct enc_scratch sc = {.n = 0};
    int rc = 0;

    encore__envelope__init(&env);
    env.version = WIRE_PROTOCOL_VERSION;
    env.request_id = m->request_id;
    for (int i = 0; i < m->n_tensors; i++) {
        encore__tensor_desc__init(&td[i]);
        td[i].dtype = m->tensors[i].dtype == WIRE_DTYPE_F32  ? ENCORE__DTYPE__DTYPE_F32
                      : m->tensors[i].dtype == WIRE_DTYPE_U8 ? ENCORE__DTYPE__DTYPE_U8
                                                             : ENCORE__DTYPE__DTYPE_BF16;
        td[i].n_shape = (size_t)m->tensors[i].ndim;
        td[i].shape = (int64_t *)m->tensors[i].shape;
        tdp[i] = &td[i];
    }
    env.n_tensors = (size_t)m->n_tensors;
    env.tensors = tdp;
    env.body_case = (Encore__Envelope__BodyCase)m->kind;

    switch (m->kind) {
    case WIRE_HELLO:
        encore__hello__init(&hello);
        hello.protocol = m->u.hello.protocol;
        hello.name = (char *)m->u.hello.name;
        hello.backend = (char *)m->u.hello.backend;
        hello.device = (char *)m->u.hello.device;
        hello.memory = m->u.hello.memory;
        hello.cache_windows = m->u.hello.cache_windows;
        for (int i = 0; i < m->u.hello.n_models && i < WIRE_MAX_MODELS; i++)
            models[i] = (char *)m->u.hello.models[i];
        hello.n_models = (size_t)m->u.hello.n_models;
        hello.models = models;
        env.hello = &hello;
        break;
    case WIRE_HELLO_ACK:
        encore__hello_ack__init(&hello_ack);
        hello_ack.worker_id = m->u.hello_ack.worker_id;
        hello_ack.heartbeat_ms = m->u.hello_ack.heartbeat_ms;
        hello_ack.lease_ms = m->u.hello_ack.lease_ms;
        env.hello_ack = &hello_ack;
        break;
    case WIRE_CREDIT:
        encore__credit__init(&credit);
        credit.n = m->u.credit.n;
        env.credit = &credit;
        break;
    case WIRE_HEARTBEAT:
        encore__heartbeat__init(&heartbeat);
        if (m->u.heartbeat.n < 0 || m->u.heartbeat.n > WIRE_HEARTBEAT_MAX) {
            rc = log_error_rc(ENC_EINVAL, "a heartbeat lists %d tasks, at most %d allowed",
                              m->u.heartbeat.n, WIRE_HEARTBEAT_MAX);
            goto out;
        }
        for (int i = 0; i < m->u.heartbeat.n; i++) {
            encore__task_ref__init(&held[i]);
            held[i].job_id = m->u.heartbeat.tasks[i].job_id;
            held[i].task_id = m->u.heartbeat.tasks[i].task_id;
            held[i].attempt = m->u.heartbeat.tasks[i].attempt;
            heldp[i] = &held[i];
        }
        heartbeat.n_tasks = (size_t)m->u.heartbeat.n;
        heartbeat.tasks = heldp;
        heartbeat.received = m->u.heartbeat.received;
        env.heartbeat = &heartbeat;
        break;
    case WIRE_HEARTBEAT_ACK:
        encore__heartbeat_ack__init(&heartbeat_ack);
        env.heartbeat_ack = &heartbeat_ack;
        break;
    case WIRE_TASK:
        encore__task__init(&task);
        task.job_id = m->u.task.job_id;
        task.task_id = m->u.task.task_id;
        task.attempt = m->u.task.attempt;
        task.window = m->u.task.window;
        task.step = m->u.task.step;
        task.start = m->u.task.start;
        task.len = m->u.task.len;
        params_to_pb(&m->u.task.params, &params);
        task.params = &params;
        task.base_step = m->u.task.base_step;
        task.n_sent = (size_t)m->u.task.n_sent;
        task.sent = m->u.task.sent;
        task.kind = m->u.task.kind;
        task.first = m->u.task.first;
        task.prepared = m->u.task.prepared != 0;
        env.task = &task;
        break;
    case WIRE_RESULT:
        encore__result__init(&result);
        result.job_id = m->u.result.job_id;
        result.task_id = m->u.result.task_id;
        result.attempt = m->u.result.attempt;
        env.result = &result;
        break;
    case WIRE_TASK_FAILED:
        encore__task_failed__init(&task_failed);
        task_failed.job_id = m->u.task_failed.ref.job_id;
        task_failed.task_id = m->u.task_failed.ref.task_id;
        task_failed.attempt = m->u.task_failed.ref.attempt;
        task_failed.reason = m->u.task_failed.reason;
        task_failed.message = (char *)m->u.task_failed.message;
        env.task_failed = &task_failed;
        break;
    case WIRE_RESULT_ACK:
        encore__result_ack__init(&result_ack);
        result_ack.job_id = m->u.result_ack.ref.job_id;
        result_ack.task_id = m->u.result_ack.ref.task_id;
        result_ack.accepted = m->u.result_ack.accepted != 0;
        result_ack.reason = (char *)m->u.result_ack.reason;
        env.result_ack = &result_ack;
        break;
    case WIRE_BYE: {
        int n = m->u.bye.n;
        encore__bye__init(&bye);
        bye.n_job_ids = bye.n_task_ids = bye.n_attempts = (size_t)n;
        bye.job_ids = scratch(&sc, sizeof(uint64_t) * (size_t)n);
        bye.task_ids = scratch(&sc, sizeof(uint64_t) * (size_t)n);
        bye.attempts = scratch(&sc, sizeof(uint32_t) * (size_t)n);
        for (int i = 0; i < n; i++) {
            bye.job_ids[i] = m->u.bye.tasks[i].job_id;
            bye.task_ids[i] = m->u.bye.tasks[i].task_id;
            bye.attempts[i] = m->u.bye.tasks[i].attempt;
        }
        env.bye = &bye;
        break;
    }
    case WIRE_RESET:
        encore__reset__init(&reset);
        env.reset = &reset;
        break;
    case WIRE_ERROR:
        encore__error__init(&error);
        error.code = m->u.error.code;
        error.message = (char *)m->u.error.message;
        env.error = &error;
        break;
    case WIRE_SUBMIT:
        encore__submit__init(&submit);
        params_to_pb(&m->u.submit.params, &params);
        submit.params = &params;
        submit.priority = m->u.submit.priority;
        env.submit = &submit;
        break;
    case WIRE_SUBMIT_REPLY:
        encore__submit_reply__init(&submit_reply);
        submit_reply.job_id = m->u.submit_reply.job_id;
        env.submit_reply = &submit_reply;
        break;
    case WIRE_STATUS:
        encore__status_request__init(&status);
        status.job_id = m->u.status.job_id;
        status.wavefront = m->u.status.wavefront != 0;
        env.status = &status;
        break;
    case WIRE_STATUS_REPLY: {
        int n = m->u.status_reply.n_jobs;
        Encore__JobInfo *ji = scratch(&sc, sizeof *ji * (size_t)n);
        Encore__JobInfo **jp = scratch(&sc, sizeof *jp * (size_t)n);
        encore__status_reply__init(&status_reply);
        for (int i = 0; i < n; i++) {
            const struct wire_job_info *j = &m->u.status_reply.jobs[i];
            encore__job_info__init(&ji[i]);
            ji[i].id = j->id;
            ji[i].state = (char *)j->state;
            ji[i].priority = j->priority;
            ji[i].model = (char *)j->model;
            ji[i].n_windows = j->n_windows;
            ji[i].steps = j->steps;
            ji[i].latent_frames = j->latent_frames;
            ji[i].windows_done = j->windows_done;
            ji[i].tasks_done = j->tasks_done;
            ji[i].tasks_total = j->tasks_total;
            ji[i].stale_results = j->stale_results;
            ji[i].requeued = j->requeued;
            ji[i].created_at = j->created_at;
            ji[i].started_at = j->started_at;
            ji[i].finished_at = j->finished_at;
            ji[i].error = (char *)j->error;
            ji[i].n_window_steps = (size_t)j->n_window_steps;
            ji[i].window_steps = j->window_steps;
            ji[i].bytes_sent = j->bytes_sent;
            ji[i].bytes_full = j->bytes_full;
            ji[i].segments = j->segments;
            ji[i].segments_done = j->segments_done;
            ji[i].prepared = j->prepared != 0;
            jp[i] = &ji[i];
        }
        status_reply.n_jobs = (size_t)n;
        status_reply.jobs = jp;
        status_reply.stale_results = m->u.status_reply.stale_results;
        status_reply.duplicate_results = m->u.status_reply.duplicate_results;
        status_reply.bad_messages = m->u.status_reply.bad_messages;
        env.status_reply = &status_reply;
        break;
    }
    case WIRE_CANCEL:
        encore__cancel__init(&cancel);
        cancel.job_id = m->u.cancel.job_id;
        env.cancel = &cancel;
        break;
    case WIRE_CANCEL_REPLY:
        encore__cancel_reply__init(&cancel_reply);
        cancel_reply.job_id = m->u.cancel_reply.job_id;
        cancel_reply.state = (char *)m->u.cancel_reply.state;
        env.cancel_reply = &cancel_reply;
        break;
    case WIRE_WORKERS:
        encore__workers_request__init(&workers);
        env.workers = &workers;
        break;
    case WIRE_WORKERS_REPLY: {
        int n = m->u.workers_reply.n_workers;
        Encore__WorkerInfo *wi = scratch(&sc, sizeof *wi * (size_t)n);
        Encore__WorkerInfo **wp = scratch(&sc, sizeof *wp * (size_t)n);
        char **mp = scratch(&sc, sizeof *mp * (size_t)n * WIRE_MAX_MODELS);
        encore__workers_reply__init(&workers_reply);
        for (int i = 0; i < n; i++) {
            const struct wire_worker_info *w = &m->u.workers_reply.workers[i];
            encore__worker_info__init(&wi[i]);
            wi[i].id = w->id;
            wi[i].name = (char *)w->name;
            wi[i].backend = (char *)w->backend;
            wi[i].device = (char *)w->device;
            wi[i].state = (char *)w->state;
            for (int k = 0; k < w->n_models && k < WIRE_MAX_MODELS; k++)
                mp[i * WIRE_MAX_MODELS + k] = (char *)w->models[k];
            wi[i].n_models = (size_t)w->n_models;
            wi[i].models = &mp[i * WIRE_MAX_MODELS];
            wi[i].running = w->running;
            wi[i].tasks_done = w->tasks_done;
            wi[i].last_seen = w->last_seen;
            wi[i].connected_at = w->connected_at;
            wp[i] = &wi[i];
        }
        workers_reply.n_workers = (size_t)n;
        workers_reply.workers = wp;
        env.workers_reply = &workers_reply;
        break;
    }
    case WIRE_GET_LATENTS:
        encore__get_latents__init(&get_latents);
        get_latents.job_id = m->u.get_latents.job_id;
        env.get_latents = &get_latents;
        break;
    case WIRE_LATENTS:
        encore__latents_reply__init(&latents);
        latents.job_id = m->u.latents.job_id;
        env.latents = &latents;
        break;
    case WIRE_GET_OUTPUT:
        encore__get_output__init(&get_output);
        get_output.job_id = m->u.get_output.job_id;
        env.get_output = &get_output;
        break;
    case WIRE_OUTPUT:
        encore__output_reply__init(&output);
        output.job_id = m->u.output.job_id;
        env.output = &output;
        break;
    case WIRE_NONE:
    default:
        rc = log_error_rc(ENC_EINVAL, "wire: cannot encode a message of kind %d", (int)m->kind);
        goto out;
    }

    *len = encore__envelope__get_packed_size(&env);
    *buf = xmalloc(*len ? *len : 1);
    encore__envelope__pack(&env, *buf);
out:
    for (int i = 0; i < sc.n; i++)
        free(sc.ptrs[i]);
    return rc;
}

/* ---- decode ------------------------------------------------------------ */

/* copy_str() copies a decoded string into a fixed buffer; 0 or -1 if too long. */
static int copy_str(char *dst, size_t cap, const char *src, const char *field, char *err,
                    size_t errlen)
{
    size_t n = src ? strlen(src) : 0;
    if (n >= cap) {
        snprintf(err, errlen, "field '%s' is %zu bytes, over the limit of %zu", field, n, cap - 1);
        return -1;
    }
    if (n)
        memcpy(dst, src, n);
    dst[n] = 0;
    return 0;
}

#define COPY(dst, src, name)                                                                   \
    do {                                                                                       \
        if (copy_str((dst), sizeof(dst), (src), (name), err, errlen))                          \
            goto bad;                                                                          \
    } while (0)

#define NEED(ptr, name)                                                                        \
    do {                                                                                       \
        if (!(ptr)) {                                                                          \
            snprintf(err, errlen, "message '%s' has no body", (name));                         \
            goto bad;                                                                          \
        }                                                                                      \
    } while (0)

static int params_from_pb(const Encore__JobParams *o, struct wire_job_params *p, char *err,
                          size_t errlen)
{
    if (!o) {
        snprintf(err, errlen, "job parameters missing");
        return -1;
    }
    COPY(p->model, o->model, "model");
    COPY(p->blend, o->blend, "blend");
    COPY(p->prompt, o->prompt, "prompt");
    COPY(p->negative, o->negative, "negative");
    COPY(p->audio_path, o->audio_path, "audio_path");
    COPY(p->image_path, o->image_path, "image_path");
    COPY(p->audio_blob, o->audio_blob, "audio_blob");
    COPY(p->image_blob, o->image_blob, "image_blob");
    p->n_samples = o->n_samples;
    p->clip_frames = o->clip_frames;
    p->overlap = o->overlap;
    p->steps = o->steps;
    p->seed = o->seed;
    p->width = o->width;
    p->height = o->height;
    p->text_scale = o->text_scale;
    p->audio_scale = o->audio_scale;
    p->fps = o->fps;
    return 0;
bad:
    return -1;
}

int wire_decode(const uint8_t *buf, size_t len, const struct wire_limits *limits,
                struct wire_msg *m, char *err, size_t errlen)
{
    Encore__Envelope *env = NULL;
    wire_msg_init(m, WIRE_NONE);
    if (len > limits->max_envelope) {
        snprintf(err, errlen, "message of %zu bytes exceeds the limit of %zu bytes", len,
                 limits->max_envelope);
        return ENC_EWIRE;
    }
    env = encore__envelope__unpack(NULL, len, buf);
    if (!env) {
        snprintf(err, errlen, "malformed message: %zu bytes that are not an encore envelope",
                 len);
        return ENC_EWIRE;
    }
    if (env->version != WIRE_PROTOCOL_VERSION) {
        snprintf(err, errlen, "protocol version %u not supported (this peer speaks version %u)",
                 env->version, WIRE_PROTOCOL_VERSION);
        goto bad;
    }
    if (env->n_tensors > WIRE_MAX_TENSORS) {
        snprintf(err, errlen, "message describes %zu tensors, at most %d allowed",
                 env->n_tensors, WIRE_MAX_TENSORS);
        goto bad;
    }
    m->request_id = env->request_id;
    m->n_tensors = (int)env->n_tensors;
    for (size_t i = 0; i < env->n_tensors; i++) {
        const Encore__TensorDesc *d = env->tensors[i];
        struct wire_tensor *t = &m->tensors[i];
        if (d->dtype != ENCORE__DTYPE__DTYPE_F32 && d->dtype != ENCORE__DTYPE__DTYPE_BF16 &&
            d->dtype != ENCORE__DTYPE__DTYPE_U8) {
            snprintf(err, errlen, "tensor %zu has unknown dtype %d", i, (int)d->dtype);
            goto bad;
        }
        if (d->n_shape < 1 || d->n_shape > 4) {
            snprintf(err, errlen, "tensor %zu has %zu dimensions (1 to 4 allowed)", i,
                     d->n_shape);
            goto bad;
        }
        t->dtype = d->dtype == ENCORE__DTYPE__DTYPE_F32  ? WIRE_DTYPE_F32
                   : d->dtype == ENCORE__DTYPE__DTYPE_U8 ? WIRE_DTYPE_U8
                                                         : WIRE_DTYPE_BF16;
        t->ndim = (int)d->n_shape;
        int64_t bytes = (int64_t)wire_dtype_size(t->dtype);
        for (size_t k = 0; k < d->n_shape; k++) {
            if (d->shape[k] < 0 || (d->shape[k] > 0 && bytes > limits->max_tensor / d->shape[k])) {
                snprintf(err, errlen, "tensor %zu has a bad or oversized shape", i);
                goto bad;
            }
            t->shape[k] = d->shape[k];
            bytes *= d->shape[k];
        }
        t->nbytes = (size_t)bytes;
    }

    m->kind = (enum wire_kind)env->body_case;
    switch (env->body_case) {
    case ENCORE__ENVELOPE__BODY_HELLO:
        NEED(env->hello, "hello");
        m->u.hello.protocol = env->hello->protocol;
        COPY(m->u.hello.name, env->hello->name, "name");
        COPY(m->u.hello.backend, env->hello->backend, "backend");
        COPY(m->u.hello.device, env->hello->device, "device");
        m->u.hello.memory = env->hello->memory;
        m->u.hello.cache_windows = env->hello->cache_windows;
        if (env->hello->n_models > WIRE_MAX_MODELS) {
            snprintf(err, errlen, "hello lists %zu models, at most %d allowed",
                     env->hello->n_models, WIRE_MAX_MODELS);
            goto bad;
        }
        m->u.hello.n_models = (int)env->hello->n_models;
        for (size_t i = 0; i < env->hello->n_models; i++)
            COPY(m->u.hello.models[i], env->hello->models[i], "models");
        break;
    case ENCORE__ENVELOPE__BODY_HELLO_ACK:
        NEED(env->hello_ack, "hello_ack");
        m->u.hello_ack.worker_id = env->hello_ack->worker_id;
        m->u.hello_ack.heartbeat_ms = env->hello_ack->heartbeat_ms;
        m->u.hello_ack.lease_ms = env->hello_ack->lease_ms;
        break;
    case ENCORE__ENVELOPE__BODY_CREDIT:
        NEED(env->credit, "credit");
        m->u.credit.n = env->credit->n;
        break;
    case ENCORE__ENVELOPE__BODY_HEARTBEAT: {
        const Encore__Heartbeat *h = env->heartbeat;
        NEED(h, "heartbeat");
        if (h->n_tasks > WIRE_HEARTBEAT_MAX) {
            snprintf(err, errlen, "heartbeat lists %zu tasks, at most %d allowed", h->n_tasks,
                     WIRE_HEARTBEAT_MAX);
            goto bad;
        }
        m->u.heartbeat.received = h->received;
        m->u.heartbeat.n = (int)h->n_tasks;
        for (size_t i = 0; i < h->n_tasks; i++) {
            m->u.heartbeat.tasks[i].job_id = h->tasks[i]->job_id;
            m->u.heartbeat.tasks[i].task_id = h->tasks[i]->task_id;
            m->u.heartbeat.tasks[i].attempt = h->tasks[i]->attempt;
        }
        break;
    }
    case ENCORE__ENVELOPE__BODY_HEARTBEAT_ACK:
    case ENCORE__ENVELOPE__BODY_RESET:
    case ENCORE__ENVELOPE__BODY_WORKERS:
        break;
    case ENCORE__ENVELOPE__BODY_TASK: {
        const Encore__Task *t = env->task;
        NEED(t, "task");
        m->u.task.job_id = t->job_id;
        m->u.task.task_id = t->task_id;
        m->u.task.attempt = t->attempt;
        m->u.task.window = t->window;
        m->u.task.step = t->step;
        m->u.task.start = t->start;
        m->u.task.len = t->len;
        m->u.task.base_step = t->base_step;
        m->u.task.kind = t->kind;
        m->u.task.first = t->first;
        m->u.task.prepared = t->prepared;
        if (params_from_pb(t->params, &m->u.task.params, err, errlen))
            goto bad;
        if (t->n_sent > 4096) {
            snprintf(err, errlen, "task lists %zu frames, at most 4096 allowed", t->n_sent);
            goto bad;
        }
        m->u.task.n_sent = (int)t->n_sent;
        m->u.task.sent = xmalloc(sizeof(int32_t) * (t->n_sent + 1));
        if (t->n_sent)
            memcpy(m->u.task.sent, t->sent, sizeof(int32_t) * t->n_sent);
        break;
    }
    case ENCORE__ENVELOPE__BODY_RESULT:
        NEED(env->result, "result");
        m->u.result.job_id = env->result->job_id;
        m->u.result.task_id = env->result->task_id;
        m->u.result.attempt = env->result->attempt;
        break;
    case ENCORE__ENVELOPE__BODY_TASK_FAILED:
        NEED(env->task_failed, "task_failed");
        m->u.task_failed.ref.job_id = env->task_failed->job_id;
        m->u.task_failed.ref.task_id = env->task_failed->task_id;
        m->u.task_failed.ref.attempt = env->task_failed->attempt;
        m->u.task_failed.reason = env->task_failed->reason;
        COPY(m->u.task_failed.message, env->task_failed->message, "message");
        break;
    case ENCORE__ENVELOPE__BODY_RESULT_ACK:
        NEED(env->result_ack, "result_ack");
        m->u.result_ack.ref.job_id = env->result_ack->job_id;
        m->u.result_ack.ref.task_id = env->result_ack->task_id;
        m->u.result_ack.accepted = env->result_ack->accepted;
        COPY(m->u.result_ack.reason, env->result_ack->reason, "reason");
        break;
    case ENCORE__ENVELOPE__BODY_BYE: {
        const Encore__Bye *b = env->bye;
        NEED(b, "bye");
        if (b->n_job_ids != b->n_task_ids || b->n_job_ids != b->n_attempts ||
            b->n_job_ids > 64) {
            snprintf(err, errlen, "bye lists inconsistent or too many tasks");
            goto bad;
        }
        m->u.bye.n = (int)b->n_job_ids;
        m->u.bye.tasks = xcalloc(b->n_job_ids + 1, sizeof *m->u.bye.tasks);
        for (size_t i = 0; i < b->n_job_ids; i++) {
            m->u.bye.tasks[i].job_id = b->job_ids[i];
            m->u.bye.tasks[i].task_id = b->task_ids[i];
            m->u.bye.tasks[i].attempt = b->attempts[i];
        }
        break;
    }
    case ENCORE__ENVELOPE__BODY_ERROR:
        NEED(env->error, "error");
        m->u.error.code = env->error->code;
        COPY(m->u.error.message, env->error->message, "message");
        break;
    case ENCORE__ENVELOPE__BODY_SUBMIT:
        NEED(env->submit, "submit");
        if (params_from_pb(env->submit->params, &m->u.submit.params, err, errlen))
            goto bad;
        m->u.submit.priority = env->submit->priority;
        break;
    case ENCORE__ENVELOPE__BODY_SUBMIT_REPLY:
        NEED(env->submit_reply, "submit_reply");
        m->u.submit_reply.job_id = env->submit_reply->job_id;
        break;
    case ENCORE__ENVELOPE__BODY_STATUS:
        NEED(env->status, "status");
        m->u.status.job_id = env->status->job_id;
        m->u.status.wavefront = env->status->wavefront;
        break;
    case ENCORE__ENVELOPE__BODY_STATUS_REPLY: {
        const Encore__StatusReply *r = env->status_reply;
        NEED(r, "status_reply");
        m->u.status_reply.stale_results = r->stale_results;
        m->u.status_reply.duplicate_results = r->duplicate_results;
        m->u.status_reply.bad_messages = r->bad_messages;
        m->u.status_reply.jobs = xcalloc(r->n_jobs + 1, sizeof(struct wire_job_info));
        m->u.status_reply.n_jobs = (int)r->n_jobs;
        for (size_t i = 0; i < r->n_jobs; i++) {
            const Encore__JobInfo *s = r->jobs[i];
            struct wire_job_info *j = &m->u.status_reply.jobs[i];
            j->id = s->id;
            COPY(j->state, s->state, "state");
            COPY(j->model, s->model, "model");
            COPY(j->error, s->error, "error");
            j->priority = s->priority;
            j->steps = s->steps;
            j->n_windows = s->n_windows;
            j->latent_frames = s->latent_frames;
            j->windows_done = s->windows_done;
            j->tasks_done = s->tasks_done;
            j->tasks_total = s->tasks_total;
            j->stale_results = s->stale_results;
            j->requeued = s->requeued;
            j->created_at = s->created_at;
            j->started_at = s->started_at;
            j->finished_at = s->finished_at;
            j->bytes_sent = s->bytes_sent;
            j->bytes_full = s->bytes_full;
            j->segments = s->segments;
            j->segments_done = s->segments_done;
            j->prepared = s->prepared;
            j->n_window_steps = (int)s->n_window_steps;
            j->window_steps = xmalloc(sizeof(int32_t) * (s->n_window_steps + 1));
            if (s->n_window_steps)
                memcpy(j->window_steps, s->window_steps, sizeof(int32_t) * s->n_window_steps);
        }
        break;
    }
    case ENCORE__ENVELOPE__BODY_CANCEL:
        NEED(env->cancel, "cancel");
        m->u.cancel.job_id = env->cancel->job_id;
        break;
    case ENCORE__ENVELOPE__BODY_CANCEL_REPLY:
        NEED(env->cancel_reply, "cancel_reply");
        m->u.cancel_reply.job_id = env->cancel_reply->job_id;
        COPY(m->u.cancel_reply.state, env->cancel_reply->state, "state");
        break;
    case ENCORE__ENVELOPE__BODY_WORKERS_REPLY: {
        const Encore__WorkersReply *r = env->workers_reply;
        NEED(r, "workers_reply");
        m->u.workers_reply.workers = xcalloc(r->n_workers + 1, sizeof(struct wire_worker_info));
        m->u.workers_reply.n_workers = (int)r->n_workers;
        for (size_t i = 0; i < r->n_workers; i++) {
            const Encore__WorkerInfo *s = r->workers[i];
            struct wire_worker_info *w = &m->u.workers_reply.workers[i];
            w->id = s->id;
            COPY(w->name, s->name, "name");
            COPY(w->backend, s->backend, "backend");
            COPY(w->device, s->device, "device");
            COPY(w->state, s->state, "state");
            if (s->n_models > WIRE_MAX_MODELS) {
                snprintf(err, errlen, "worker lists too many models");
                goto bad;
            }
            w->n_models = (int)s->n_models;
            for (size_t k = 0; k < s->n_models; k++)
                COPY(w->models[k], s->models[k], "models");
            w->running = s->running;
            w->tasks_done = s->tasks_done;
            w->last_seen = s->last_seen;
            w->connected_at = s->connected_at;
        }
        break;
    }
    case ENCORE__ENVELOPE__BODY_GET_LATENTS:
        NEED(env->get_latents, "get_latents");
        m->u.get_latents.job_id = env->get_latents->job_id;
        break;
    case ENCORE__ENVELOPE__BODY_LATENTS:
        NEED(env->latents, "latents");
        m->u.latents.job_id = env->latents->job_id;
        break;
    case ENCORE__ENVELOPE__BODY_GET_OUTPUT:
        NEED(env->get_output, "get_output");
        m->u.get_output.job_id = env->get_output->job_id;
        break;
    case ENCORE__ENVELOPE__BODY_OUTPUT:
        NEED(env->output, "output");
        m->u.output.job_id = env->output->job_id;
        break;
    case ENCORE__ENVELOPE__BODY__NOT_SET:
    default:
        snprintf(err, errlen, "message has no known body (case %d)", (int)env->body_case);
        goto bad;
    }
    encore__envelope__free_unpacked(env, NULL);
    return 0;
bad:
    encore__envelope__free_unpacked(env, NULL);
    m->n_tensors = 0;
    wire_msg_release(m);
    return ENC_EWIRE;
}

/* ---- framing ----------------------------------------------------------- */

/* send_frame(): one frame; with give, data is a malloc block ZeroMQ takes
 * over (freed by it, also on failure). */
static int send_frame(void *sock, void *data, size_t n, int flags, int give)
{
    if (!give)
        return zmq_send(sock, data, n, flags) < 0 ? -1 : 0;
    zmq_msg_t msg;
    if (zmq_msg_init_data(&msg, data, n, free_aligned, NULL) != 0) {
        free(data);
        return -1;
    }
    if (zmq_msg_send(&msg, sock, flags) < 0) {
        zmq_msg_close(&msg);
        return -1;
    }
    return 0;
}

static int send_msg(void *sock, const void *rid, size_t rid_len, const struct wire_msg *m,
                    void *take)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = wire_encode(m, &buf, &len);
    if (rc) {
        free(take);
        return rc;
    }
    int more = m->n_tensors > 0 ? ZMQ_SNDMORE : 0;
    if (rid && zmq_send(sock, rid, rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        free(buf);
        goto fail;
    }
    /* The envelope is ours to give: no copy. */
    if (send_frame(sock, buf, len, more | ZMQ_DONTWAIT, 1) != 0)
        goto fail;
    for (int i = 0; i < m->n_tensors; i++) {
        int last = i + 1 == m->n_tensors;
        int fl = (last ? 0 : ZMQ_SNDMORE) | ZMQ_DONTWAIT;
        int give = last && take && m->tensors[i].data == take;
        if (send_frame(sock, (void *)(uintptr_t)m->tensors[i].data, m->tensors[i].nbytes, fl,
                       give) != 0) {
            if (give)
                take = NULL; /* freed by send_frame */
            goto fail;
        }
        if (give)
            take = NULL;
    }
    free(take); /* not one of the tensors: nothing took it */
    return 0;
fail:
    free(take);
    log_debug("wire: cannot send %s: %s", wire_kind_name(m->kind), zmq_strerror(errno));
    return ENC_EIO;
}

int wire_send(void *sock, const void *rid, size_t rid_len, const struct wire_msg *m)
{
    return send_msg(sock, rid, rid_len, m, NULL);
}

int wire_send_take(void *sock, const void *rid, size_t rid_len, const struct wire_msg *m,
                   void *buf)
{
    return send_msg(sock, rid, rid_len, m, buf);
}

/* drain() reads and drops the remaining parts of a multipart message. */
static void drain(void *sock)
{
    int more = 0;
    size_t sz = sizeof more;
    zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz);
    while (more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, sock, 0) < 0) {
            zmq_msg_close(&part);
            return;
        }
        more = zmq_msg_more(&part);
        zmq_msg_close(&part);
    }
}

int wire_recv(void *sock, uint8_t *rid, size_t *rid_len, int flags,
              const struct wire_limits *limits, struct wire_msg *m, char *err, size_t errlen)
{
    zmq_msg_t part;
    int rc;
    wire_msg_init(m, WIRE_NONE);
    err[0] = 0;
    if (rid) {
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, sock, flags) < 0) {
            int e = errno;
            zmq_msg_close(&part);
            return e == EAGAIN ? ENC_ETIMEOUT : ENC_EIO;
        }
        size_t n = zmq_msg_size(&part);
        if (n > WIRE_RID_MAX)
            n = WIRE_RID_MAX;
        memcpy(rid, zmq_msg_data(&part), n);
        *rid_len = n;
        int more = zmq_msg_more(&part);
        zmq_msg_close(&part);
        if (!more) {
            snprintf(err, errlen, "empty message");
            return ENC_EWIRE;
        }
        flags = 0;
    }
    zmq_msg_init(&part);
    if (zmq_msg_recv(&part, sock, flags) < 0) {
        int e = errno;
        zmq_msg_close(&part);
        return e == EAGAIN ? ENC_ETIMEOUT : ENC_EIO;
    }
    int more = zmq_msg_more(&part);
    rc = wire_decode(zmq_msg_data(&part), zmq_msg_size(&part), limits, m, err, errlen);
    zmq_msg_close(&part);
    if (rc) {
        if (more)
            drain(sock);
        return rc;
    }
    int got = 0;
    while (more) {
        zmq_msg_t *t = xmalloc(sizeof *t);
        zmq_msg_init(t);
        if (zmq_msg_recv(t, sock, 0) < 0) {
            zmq_msg_close(t);
            free(t);
            wire_msg_release(m);
            return ENC_EIO;
        }
        more = zmq_msg_more(t);
        if (got >= m->n_tensors || zmq_msg_size(t) != m->tensors[got].nbytes) {
            if (got >= m->n_tensors)
                snprintf(err, errlen, "message has more tensor frames than the %d it describes",
                         m->n_tensors);
            else
                snprintf(err, errlen, "tensor %d is %zu bytes, its shape says %zu", got,
                         zmq_msg_size(t), m->tensors[got].nbytes);
            zmq_msg_close(t);
            free(t);
            if (more)
                drain(sock);
            wire_msg_release(m);
            return ENC_EWIRE;
        }
        if (((uintptr_t)zmq_msg_data(t) & 7) != 0) {
            /* Stream transports (ipc, tcp) may hand a frame at any offset of
             * their buffer; tensors are read as float/uint16_t arrays. */
            size_t n = zmq_msg_size(t);
            void *buf = xmalloc(n ? n : 1);
            memcpy(buf, zmq_msg_data(t), n);
            zmq_msg_close(t);
            zmq_msg_init_data(t, buf, n, free_aligned, NULL);
        }
        m->owned_[got] = t;
        m->tensors[got].data = zmq_msg_data(t);
        got++;
    }
    if (got != m->n_tensors) {
        snprintf(err, errlen, "message describes %d tensors but carries %d", m->n_tensors, got);
        wire_msg_release(m);
        return ENC_EWIRE;
    }
    return 0;
}

void wire_send_error(void *sock, const void *rid, size_t rid_len, uint64_t request_id, int code,
                     const char *fmt, ...)
{
    struct wire_msg m;
    va_list ap;
    wire_msg_init(&m, WIRE_ERROR);
    m.request_id = request_id;
    m.u.error.code = code;
    va_start(ap, fmt);
    vsnprintf(m.u.error.message, sizeof m.u.error.message, fmt, ap);
    va_end(ap);
    wire_send(sock, rid, rid_len, &m);
}
