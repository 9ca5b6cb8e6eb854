/* t_wire.c - envelope round trips, version and size checks, malformed
 * bytes, and tensor framing over a real ZeroMQ inproc pair. */
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "common/err.h"
#include "common/log.h"
#include "common/wire.h"
#include "tests/tap.h"

int main(void)
{
    struct wire_limits lim;
    struct wire_msg m, d;
    uint8_t *buf;
    size_t len;
    char err[256];
    wire_limits_default(&lim);
    log_set_level(LOG_LEVEL_ERROR);

    wire_msg_init(&m, WIRE_SUBMIT);
    m.request_id = 77;
    snprintf(m.u.submit.params.model, WIRE_NAME_MAX, "sim");
    snprintf(m.u.submit.params.prompt, WIRE_TEXT_MAX, "a singer");
    m.u.submit.params.steps = 50;
    m.u.submit.params.seed = 0xfedcba9876543210ull;
    m.u.submit.priority = -3;
    is_int(wire_encode(&m, &buf, &len), 0, "encode submit");
    is_int(wire_decode(buf, len, &lim, &d, err, sizeof err), 0, "decode submit");
    is_int(d.kind, WIRE_SUBMIT, "kind survives");
    is_int(d.request_id, 77, "request id survives");
    is_str(d.u.submit.params.prompt, "a singer", "prompt survives");
    ok(d.u.submit.params.seed == 0xfedcba9876543210ull, "64-bit seed survives");
    is_int(d.u.submit.priority, -3, "negative priority survives");
    wire_msg_release(&d);

    /* Truncated and garbage bytes. */
    is_int(wire_decode(buf, len - 3, &lim, &d, err, sizeof err), ENC_EWIRE, "truncated refused");
    ok(strstr(err, "malformed") != NULL, "says malformed: %s", err);
    uint8_t junk[32];
    memset(junk, 0xff, sizeof junk);
    is_int(wire_decode(junk, sizeof junk, &lim, &d, err, sizeof err), ENC_EWIRE, "garbage refused");
    free(buf);

    /* A heartbeat: the tasks the worker holds and the tasks it received. */
    wire_msg_init(&m, WIRE_HEARTBEAT);
    m.u.heartbeat.received = 0x1234567890ull;
    m.u.heartbeat.n = WIRE_HEARTBEAT_MAX;
    for (int i = 0; i < WIRE_HEARTBEAT_MAX; i++)
        m.u.heartbeat.tasks[i] = (struct wire_task_ref){
            (uint64_t)i + 1, 0xffffffffffull + (uint64_t)i, (uint32_t)(3 * i)};
    is_int(wire_encode(&m, &buf, &len), 0, "encode a heartbeat listing %d tasks",
           WIRE_HEARTBEAT_MAX);
    is_int(wire_decode(buf, len, &lim, &d, err, sizeof err), 0, "decode it: %s", err);
    ok(d.kind == WIRE_HEARTBEAT && d.u.heartbeat.received == 0x1234567890ull &&
           d.u.heartbeat.n == WIRE_HEARTBEAT_MAX,
       "kind, received count and task count survive");
    int same = 1;
    for (int i = 0; i < WIRE_HEARTBEAT_MAX; i++)
        same &= d.u.heartbeat.tasks[i].job_id == (uint64_t)i + 1 &&
                d.u.heartbeat.tasks[i].task_id == 0xffffffffffull + (uint64_t)i &&
                d.u.heartbeat.tasks[i].attempt == (uint32_t)(3 * i);
    ok(same, "every task reference survives, in order");
    wire_msg_release(&d);
    free(buf);
    wire_msg_init(&m, WIRE_HEARTBEAT);
    is_int(wire_encode(&m, &buf, &len), 0, "encode an empty heartbeat");
    is_int(wire_decode(buf, len, &lim, &d, err, sizeof err), 0, "decode it");
    ok(d.u.heartbeat.n == 0 && d.u.heartbeat.received == 0, "no tasks, none received");
    wire_msg_release(&d);
    free(buf);
    m.u.heartbeat.n = WIRE_HEARTBEAT_MAX + 1;
    is_int(wire_encode(&m, &buf, &len), ENC_EINVAL, "a heartbeat over the limit is not encoded");
    /* Over the limit on the wire (hand-built): envelope field 13 holding
     * WIRE_HEARTBEAT_MAX + 1 empty TaskRef entries (field 2, length 0). */
    uint8_t hb[5 + 2 * (WIRE_HEARTBEAT_MAX + 1)];
    size_t nb = 0;
    int hb_len = 2 * (WIRE_HEARTBEAT_MAX + 1); /* 128 .. 16383: a two-byte varint */
    hb[nb++] = 0x08;
    hb[nb++] = 0x01; /* version 1 */
    hb[nb++] = 0x6a; /* field 13, length-delimited */
    hb[nb++] = (uint8_t)(0x80 | (hb_len & 0x7f));
    hb[nb++] = (uint8_t)(hb_len >> 7);
    for (int i = 0; i <= WIRE_HEARTBEAT_MAX; i++) {
        hb[nb++] = 0x12; /* tasks (field 2), length 0 */
        hb[nb++] = 0x00;
    }
    is_int(wire_decode(hb, nb, &lim, &d, err, sizeof err), ENC_EWIRE,
           "a heartbeat listing %d tasks is refused", WIRE_HEARTBEAT_MAX + 1);
    ok(strstr(err, "heartbeat lists 65 tasks, at most 64 allowed") != NULL, "says so: %s", err);
    /* The old field 1 (repeated uint64 running, never used) is skipped. */
    uint8_t old[] = {0x08, 0x01, 0x6a, 0x04, 0x08, 0x05, 0x18, 0x02};
    is_int(wire_decode(old, sizeof old, &lim, &d, err, sizeof err), 0,
           "a heartbeat with field 1 decodes");
    ok(d.u.heartbeat.n == 0 && d.u.heartbeat.received == 2, "field 1 ignored, received read");
    wire_msg_release(&d);

    /* Size limit. */
    struct wire_limits small = {.max_envelope = 8, .max_tensor = 16};
    wire_msg_init(&m, WIRE_STATUS);
    wire_encode(&m, &buf, &len);
    is_int(wire_decode(buf, len, &small, &d, err, sizeof err), 0, "small message under the limit");
    wire_msg_release(&d);
    free(buf);
    wire_msg_init(&m, WIRE_HELLO);
    snprintf(m.u.hello.name, WIRE_NAME_MAX, "a-rather-long-worker-name");
    wire_encode(&m, &buf, &len);
    is_int(wire_decode(buf, len, &small, &d, err, sizeof err), ENC_EWIRE, "over the limit refused");
    ok(strstr(err, "exceeds the limit") != NULL, "says so: %s", err);
    free(buf);

    /* Empty envelope (no body) and wrong version: hand-built bytes.
     * field 1 (version) varint 2 -> 08 02. */
    uint8_t v2[] = {0x08, 0x02, 0xa2, 0x02, 0x00}; /* version 2, status {} */
    is_int(wire_decode(v2, sizeof v2, &lim, &d, err, sizeof err), ENC_EWIRE, "version 2 refused");
    ok(strstr(err, "version 2") && strstr(err, "version 1"), "names both versions: %s", err);
    uint8_t nobody[] = {0x08, 0x01};
    is_int(wire_decode(nobody, sizeof nobody, &lim, &d, err, sizeof err), ENC_EWIRE, "no body refused");

    /* Tensor frames over inproc. */
    void *ctx = zmq_ctx_new();
    void *a = zmq_socket(ctx, ZMQ_PAIR), *b = zmq_socket(ctx, ZMQ_PAIR);
    zmq_bind(a, "inproc://t");
    zmq_connect(b, "inproc://t");
    float data[6] = {1, 2, 3, 4, 5, 6};
    int64_t shape[2] = {2, 3};
    wire_msg_init(&m, WIRE_RESULT);
    m.u.result.job_id = 5;
    m.u.result.task_id = 9;
    m.u.result.attempt = 2;
    wire_msg_add_tensor(&m, WIRE_DTYPE_F32, 2, shape, data);
    is_int(wire_send(a, NULL, 0, &m), 0, "send with a tensor");
    is_int(wire_recv(b, NULL, NULL, 0, &lim, &d, err, sizeof err), 0, "receive it");
    is_int(d.n_tensors, 1, "one tensor");
    ok(d.tensors[0].nbytes == sizeof data && memcmp(d.tensors[0].data, data, sizeof data) == 0,
       "tensor bytes survive");
    wire_msg_release(&d);
    /* A tensor frame whose size disagrees with its shape. */
    m.tensors[0].nbytes = 8;
    wire_send(a, NULL, 0, &m);
    is_int(wire_recv(b, NULL, NULL, 0, &lim, &d, err, sizeof err), ENC_EWIRE, "bad tensor size refused");
    ok(strstr(err, "tensor 0") != NULL, "names the tensor: %s", err);
    /* The socket is still usable afterwards. */
    m.tensors[0].nbytes = sizeof data;
    wire_send(a, NULL, 0, &m);
    is_int(wire_recv(b, NULL, NULL, 0, &lim, &d, err, sizeof err), 0, "next message fine");
    wire_msg_release(&d);
    /* A denoise result: head f32 [2, 16, 1, 1] and an empty bf16 [0, 16, 1, 1],
     * one buffer given to ZeroMQ with the last tensor (at its start). */
    uint8_t *res = malloc(64 + 2 * 16 * 4);
    for (int i = 0; i < 2 * 16; i++)
        ((float *)(res + 64))[i] = (float)i;
    int64_t hs[4] = {2, 16, 1, 1}, rs[4] = {0, 16, 1, 1};
    wire_msg_init(&m, WIRE_RESULT);
    wire_msg_add_tensor(&m, WIRE_DTYPE_F32, 4, hs, res + 64);
    wire_msg_add_tensor(&m, WIRE_DTYPE_BF16, 4, rs, res);
    is_int(wire_send_take(a, NULL, 0, &m, res), 0, "send a result with an empty last tensor");
    is_int(wire_recv(b, NULL, NULL, 0, &lim, &d, err, sizeof err), 0, "receive it: %s", err);
    ok(d.n_tensors == 2 && d.tensors[0].nbytes == 128 &&
           ((const float *)d.tensors[0].data)[31] == 31.f && d.tensors[1].nbytes == 0 &&
           d.tensors[1].shape[0] == 0 && d.tensors[1].shape[1] == 16,
       "a zero-frame tensor survives with its shape");
    wire_msg_release(&d);
    zmq_close(a);
    zmq_close(b);
    zmq_ctx_term(ctx);
    return done_testing();
}
