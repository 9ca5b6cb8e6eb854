/* t_coordinator.c - a real coordinator (thread, inproc) fed raw bad
 * messages: each gets a clear Error and changes nothing else. Hand-made
 * workers: a malformed result is refused and its task requeued; a task whose
 * result was refused without naming it is requeued by the worker's next
 * heartbeat, which no longer lists it, and the job finishes. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "common/err.h"
#include "common/log.h"
#include "common/wire.h"
#include "coordinator/coordinator.h"
#include "tests/tap.h"

static void *run(void *c)
{
    coordinator_run(c);
    return NULL;
}

static void *sock;
static struct wire_limits lim;

/* raw(): send bytes, return the reply's error text ("" if not an error). */
static const char *raw(const void *buf, size_t len)
{
    static char text[WIRE_ERR_MAX];
    struct wire_msg m;
    char err[WIRE_ERR_MAX];
    zmq_send(sock, buf, len, 0);
    zmq_pollitem_t it = {.socket = sock, .events = ZMQ_POLLIN};
    text[0] = 0;
    if (zmq_poll(&it, 1, 3000) <= 0)
        return "(no reply)";
    if (wire_recv(sock, NULL, NULL, 0, &lim, &m, err, sizeof err))
        return "(bad reply)";
    if (m.kind == WIRE_ERROR)
        snprintf(text, sizeof text, "%s", m.u.error.message);
    wire_msg_release(&m);
    return text;
}

static const char *msg(struct wire_msg *m)
{
    uint8_t *buf;
    size_t len;
    wire_encode(m, &buf, &len);
    const char *r = raw(buf, len);
    free(buf);
    return r;
}

static int jobs_count(void)
{
    struct wire_msg m, rep;
    char err[WIRE_ERR_MAX];
    wire_msg_init(&m, WIRE_STATUS);
    wire_send(sock, NULL, 0, &m);
    if (wire_recv(sock, NULL, NULL, 0, &lim, &rep, err, sizeof err))
        return -1;
    int n = rep.u.status_reply.n_jobs;
    wire_msg_release(&rep);
    return n;
}

/* recv_kind(): the next message of kind k on s (others skipped), within 3 s;
 * 0 or -1. */
static int recv_kind(void *s, enum wire_kind k, struct wire_msg *m)
{
    char err[WIRE_ERR_MAX];
    for (int i = 0; i < 50; i++) {
        zmq_pollitem_t it = {.socket = s, .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, 3000) <= 0)
            return -1;
        if (wire_recv(s, NULL, NULL, 0, &lim, m, err, sizeof err))
            return -1;
        if (m->kind == k)
            return 0;
        wire_msg_release(m);
    }
    return -1;
}

/* worker_results(): a worker takes a denoise task of job 1 and answers it
 * first with a tensor of the wrong shape (refused, the task comes back),
 * then with the head f32 + rest bf16 pair (accepted). */
static void worker_results(void *ctx)
{
    void *ws = zmq_socket(ctx, ZMQ_DEALER);
    zmq_connect(ws, "inproc://t");
    struct wire_msg m, r;
    wire_msg_init(&m, WIRE_HELLO);
    m.u.hello.protocol = WIRE_PROTOCOL_VERSION;
    snprintf(m.u.hello.name, WIRE_NAME_MAX, "w");
    snprintf(m.u.hello.backend, WIRE_NAME_MAX, "sim");
    snprintf(m.u.hello.device, WIRE_NAME_MAX, "cpu");
    m.u.hello.n_models = 1;
    snprintf(m.u.hello.models[0], WIRE_NAME_MAX, "sim");
    wire_send(ws, NULL, 0, &m);
    ok(recv_kind(ws, WIRE_HELLO_ACK, &r) == 0, "a worker joins");
    wire_msg_release(&r);
    wire_msg_init(&m, WIRE_CREDIT);
    m.u.credit.n = 1;
    wire_send(ws, NULL, 0, &m);
    int got = recv_kind(ws, WIRE_TASK, &r) == 0;
    ok(got && r.u.task.kind == WIRE_TASK_DENOISE && r.u.task.len == 9,
       "it gets a denoise task of 9 frames");
    if (!got) {
        zmq_close(ws);
        return;
    }
    struct wire_task_ref ref = {r.u.task.job_id, r.u.task.task_id, r.u.task.attempt};
    wire_msg_release(&r);
    static float out[9 * 16 * 2 * 2];
    static uint16_t rest[6 * 16 * 2 * 2];
    int64_t whole[4] = {9, 16, 2, 2}, head[4] = {3, 16, 2, 2}, tail[4] = {6, 16, 2, 2};
    wire_msg_init(&m, WIRE_RESULT);
    m.u.result = ref;
    wire_msg_add_tensor(&m, WIRE_DTYPE_F32, 4, whole, out);
    wire_send(ws, NULL, 0, &m);
    /* The refusal and the task sent again, in either order. */
    char error[WIRE_ERR_MAX] = "";
    int again = 0;
    char err[WIRE_ERR_MAX];
    for (int i = 0; i < 4 && (!error[0] || !again); i++) {
        zmq_pollitem_t it = {.socket = ws, .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, 3000) <= 0 || wire_recv(ws, NULL, NULL, 0, &lim, &r, err, sizeof err))
            break;
        if (r.kind == WIRE_ERROR)
            snprintf(error, sizeof error, "%s", r.u.error.message);
        if (r.kind == WIRE_TASK && r.u.task.kind == WIRE_TASK_DENOISE && r.u.task.len == 9) {
            again = 1; /* the credit came back (the refused task waits its turn) */
            ref = (struct wire_task_ref){r.u.task.job_id, r.u.task.task_id, r.u.task.attempt};
        }
        wire_msg_release(&r);
    }
    ok(strstr(error, "must carry an f32 tensor [3, 16, 2, 2] and a bf16 tensor [6, 16, 2, 2]") !=
           NULL,
       "a result of one f32 tensor [9, 16, 2, 2] is refused: %s", error);
    ok(again, "the worker gets its next task");
    wire_msg_init(&m, WIRE_RESULT);
    m.u.result = ref;
    wire_msg_add_tensor(&m, WIRE_DTYPE_F32, 4, head, out);
    wire_msg_add_tensor(&m, WIRE_DTYPE_BF16, 4, tail, rest);
    wire_send(ws, NULL, 0, &m);
    got = recv_kind(ws, WIRE_RESULT_ACK, &r) == 0;
    ok(got && r.u.result_ack.accepted, "the head f32 + rest bf16 result is accepted");
    if (got)
        wire_msg_release(&r);
    /* Leave: the task sent meanwhile is handed back. */
    wire_msg_init(&m, WIRE_BYE);
    wire_send(ws, NULL, 0, &m);
    zmq_close(ws);
}

/* job_status(): job 1's requeued count, its state into state (size 16). */
static int64_t job_status(char *state)
{
    struct wire_msg m, rep;
    wire_msg_init(&m, WIRE_STATUS);
    m.u.status.job_id = 1;
    wire_send(sock, NULL, 0, &m);
    snprintf(state, 16, "?");
    if (recv_kind(sock, WIRE_STATUS_REPLY, &rep))
        return -1;
    int64_t n = -1;
    if (rep.u.status_reply.n_jobs == 1) {
        n = rep.u.status_reply.jobs[0].requeued;
        snprintf(state, 16, "%s", rep.u.status_reply.jobs[0].state);
    }
    wire_msg_release(&rep);
    return n;
}

/* heartbeat(): send one listing n tasks, received Task messages; return the
 * kind of the next message that arrives within ms (WIRE_NONE: none). */
static enum wire_kind heartbeat(void *ws, uint64_t received, const struct wire_task_ref *held,
                                int n, int ms, struct wire_msg *next)
{
    struct wire_msg m;
    char err[WIRE_ERR_MAX];
    wire_msg_init(&m, WIRE_HEARTBEAT);
    m.u.heartbeat.received = received;
    m.u.heartbeat.n = n;
    for (int i = 0; i < n; i++)
        m.u.heartbeat.tasks[i] = held[i];
    wire_send(ws, NULL, 0, &m);
    zmq_pollitem_t it = {.socket = ws, .events = ZMQ_POLLIN};
    if (zmq_poll(&it, 1, ms) <= 0 || wire_recv(ws, NULL, NULL, 0, &lim, next, err, sizeof err))
        return WIRE_NONE;
    return next->kind;
}

/* answer(): a well-formed result for denoise task t (zero latents). */
static void answer(void *ws, const struct wire_task *t)
{
    static float head[3 * 16 * 2 * 2];
    static uint16_t rest[9 * 16 * 2 * 2];
    int64_t nh = t->len < 3 ? t->len : 3;
    int64_t hs[4] = {nh, 16, 2, 2}, rs[4] = {t->len - nh, 16, 2, 2};
    struct wire_msg m;
    wire_msg_init(&m, WIRE_RESULT);
    m.u.result = (struct wire_task_ref){t->job_id, t->task_id, t->attempt};
    wire_msg_add_tensor(&m, WIRE_DTYPE_F32, 4, hs, head);
    wire_msg_add_tensor(&m, WIRE_DTYPE_BF16, 4, rs, rest);
    wire_send(ws, NULL, 0, &m);
}

/* worker_lost(): a worker takes task X, then answers it naming another task
 * (refused: "unknown task") and keeps heartbeating. Without reconciliation
 * X stays running on it forever; its heartbeat, which does not list X,
 * requeues X, and the worker finishes the job. */
static void worker_lost(void *ctx)
{
    void *ws = zmq_socket(ctx, ZMQ_DEALER);
    zmq_connect(ws, "inproc://t");
    struct wire_msg m, r;
    char state[16];
    wire_msg_init(&m, WIRE_HELLO);
    m.u.hello.protocol = WIRE_PROTOCOL_VERSION;
    snprintf(m.u.hello.name, WIRE_NAME_MAX, "lost");
    snprintf(m.u.hello.backend, WIRE_NAME_MAX, "sim");
    m.u.hello.n_models = 1;
    snprintf(m.u.hello.models[0], WIRE_NAME_MAX, "sim");
    wire_send(ws, NULL, 0, &m);
    ok(recv_kind(ws, WIRE_HELLO_ACK, &r) == 0, "a second worker joins");
    wire_msg_release(&r);
    wire_msg_init(&m, WIRE_CREDIT);
    m.u.credit.n = 1;
    wire_send(ws, NULL, 0, &m);
    int got = recv_kind(ws, WIRE_TASK, &r) == 0 && r.u.task.kind == WIRE_TASK_DENOISE;
    ok(got, "it gets a denoise task X");
    if (!got) {
        zmq_close(ws);
        return;
    }
    struct wire_task_ref x = {r.u.task.job_id, r.u.task.task_id, r.u.task.attempt};
    wire_msg_release(&r);
    int64_t requeued = job_status(state);

    /* A heartbeat that lists X keeps it; so does one sent before X arrived
     * (received 0), even though it does not list X. */
    enum wire_kind k = heartbeat(ws, 1, &x, 1, 3000, &r);
    is_int(k, WIRE_HEARTBEAT_ACK, "a heartbeat listing X is acknowledged, no task comes back");
    if (k != WIRE_NONE)
        wire_msg_release(&r);
    k = heartbeat(ws, 0, NULL, 0, 3000, &r);
    is_int(k, WIRE_HEARTBEAT_ACK, "a heartbeat that received no task yet leaves X alone");
    if (k != WIRE_NONE)
        wire_msg_release(&r);
    is_int(job_status(state), requeued, "X was not requeued");

    /* The result names another task: refused, X stays on this worker. */
    wire_msg_init(&m, WIRE_RESULT);
    m.u.result = x;
    m.u.result.task_id = 99999;
    wire_send(ws, NULL, 0, &m);
    got = recv_kind(ws, WIRE_ERROR, &r) == 0;
    ok(got && strstr(r.u.error.message, "unknown task 99999"),
       "a result for task 99999 is refused");
    if (got)
        wire_msg_release(&r);
    zmq_pollitem_t it = {.socket = ws, .events = ZMQ_POLLIN};
    is_int(zmq_poll(&it, 1, 300), 0, "nothing comes: X still counts as running on the worker");
    is_int(job_status(state), requeued, "X is not requeued by the refusal");

    /* The next heartbeat (1 task received, none held) gives X up. */
    k = heartbeat(ws, 1, NULL, 0, 3000, &r);
    is_int(k, WIRE_TASK, "a heartbeat without X: the worker's credit is back, a task comes");
    is_int(job_status(state), requeued + 1, "X was requeued");

    /* Finish the job: every task gets a good result. */
    int again = 0, tasks = 0;
    while (k == WIRE_TASK && tasks < 1000) {
        again |= r.u.task.job_id == x.job_id && r.u.task.task_id == x.task_id &&
                 r.u.task.attempt == x.attempt + 1;
        answer(ws, &r.u.task);
        wire_msg_release(&r);
        tasks++;
        k = WIRE_NONE;
        for (int i = 0; i < 64 && k != WIRE_TASK; i++) { /* skip the result acks */
            char err[WIRE_ERR_MAX];
            if (zmq_poll(&it, 1, 500) <= 0 ||
                wire_recv(ws, NULL, NULL, 0, &lim, &r, err, sizeof err))
                break;
            k = r.kind;
            if (k != WIRE_TASK)
                wire_msg_release(&r);
        }
    }
    ok(again, "X comes back with attempt %u", x.attempt + 1);
    job_status(state);
    is_str(state, "done", "the job finishes (%d more tasks)", tasks);
    zmq_close(ws);
}

int main(void)
{
    char dir[] = "/tmp/t_coordinator.XXXXXX";
    struct coordinator_opts o;
    struct coordinator *c;
    pthread_t th;
    if (!mkdtemp(dir))
        return 1;
    log_set_level(LOG_LEVEL_ERROR);
    wire_limits_default(&lim);
    void *ctx = zmq_ctx_new();
    coordinator_opts_default(&o);
    o.listen = "inproc://t";
    o.state_dir = dir;
    o.zmq_ctx = ctx;
    o.durable = 0;
    o.max_message = 4096;
    is_int(coordinator_new(&o, &c), 0, "coordinator starts");
    pthread_create(&th, NULL, run, c);
    sock = zmq_socket(ctx, ZMQ_DEALER);
    zmq_connect(sock, "inproc://t");

    uint8_t junk[] = {0xde, 0xad, 0xbe, 0xef, 0xff, 0xff};
    ok(strstr(raw(junk, sizeof junk), "malformed") != NULL, "malformed protobuf refused");
    uint8_t v9[] = {0x08, 0x09, 0xa2, 0x02, 0x00};
    ok(strstr(raw(v9, sizeof v9), "protocol version 9 not supported") != NULL,
       "wrong protocol version refused, naming both versions");
    static uint8_t big[8192];
    big[0] = 0x08;
    big[1] = 0x01;
    ok(strstr(raw(big, sizeof big), "exceeds the limit of 4096") != NULL,
       "message over the size limit refused");

    struct wire_msg m;
    wire_msg_init(&m, WIRE_HELLO);
    m.u.hello.protocol = 7;
    ok(strstr(msg(&m), "protocol version 7") != NULL, "hello with another protocol refused");

    wire_msg_init(&m, WIRE_SUBMIT);
    snprintf(m.u.submit.params.model, WIRE_NAME_MAX, "sim");
    snprintf(m.u.submit.params.blend, 16, "log");
    m.u.submit.params.n_samples = 100000;
    m.u.submit.params.clip_frames = 33;
    m.u.submit.params.overlap = 3;
    m.u.submit.params.width = m.u.submit.params.height = 16;
    m.u.submit.params.steps = 0;
    ok(strstr(msg(&m), "steps must be") != NULL, "submit with steps 0 refused");
    m.u.submit.params.steps = 2;
    m.u.submit.params.overlap = 9;
    ok(strstr(msg(&m), "overlap 9") != NULL, "submit with overlap >= window refused");
    m.u.submit.params.overlap = 3;
    snprintf(m.u.submit.params.blend, 16, "cubic");
    ok(strstr(msg(&m), "unknown blend scheme 'cubic'") != NULL, "unknown blend refused");
    is_int(jobs_count(), 0, "no job was created by bad submits");

    snprintf(m.u.submit.params.blend, 16, "log");
    is_str(msg(&m), "", "a good submit is accepted");

    wire_msg_init(&m, WIRE_RESULT);
    m.u.result.job_id = 1;
    m.u.result.task_id = 1;
    m.u.result.attempt = 1;
    ok(strstr(msg(&m), "not held by this worker") != NULL, "a result for a task not held refused");
    m.u.result.task_id = 99999;
    { const char *r = msg(&m); ok(strstr(r, "unknown task 99999") != NULL, "unknown task id refused: %s", r); }
    m.u.result.job_id = 42;
    ok(strstr(msg(&m), "unknown job 42") != NULL, "unknown job id refused");
    wire_msg_init(&m, WIRE_TASK);
    ok(strstr(msg(&m), "unexpected message 'task'") != NULL, "a coordinator-bound task refused");
    is_int(jobs_count(), 1, "still exactly one job");
    worker_results(ctx);
    worker_lost(ctx);

    zmq_close(sock);
    coordinator_stop(c);
    pthread_join(th, NULL);
    coordinator_destroy(&c);
    zmq_ctx_term(ctx);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        diag("cannot remove %s", dir);
    return done_testing();
}
