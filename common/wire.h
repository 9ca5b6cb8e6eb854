/*
 * wire.h - the farm's messages as plain C structs, and their framing over
 * ZeroMQ (DESIGN 5, docs/protocol.md).
 *
 * One message = one Envelope frame (protobuf, proto/encore.proto) followed by
 * the raw tensor frames the envelope describes. wire.c is the only file that
 * sees the generated protobuf-c code; everyone else uses struct wire_msg.
 *
 * Invariants of a decoded message (wire_decode / wire_recv return 0 only if
 * all hold): the envelope's version is WIRE_PROTOCOL_VERSION; it has exactly
 * one body; every string fits its buffer; the number of tensor frames equals
 * the number of tensor descriptors and each frame's size equals the product
 * of its shape times the dtype size; no frame exceeds the configured limits.
 * On failure the message is released and `err` holds a one-line reason fit to
 * send back to the peer.
 */
#ifndef ENCORE_WIRE_H
#define ENCORE_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define WIRE_PROTOCOL_VERSION 1u
#define WIRE_MAX_ENVELOPE_DEFAULT (1u << 20)           /* bytes of the protobuf frame */
#define WIRE_MAX_TENSOR_DEFAULT ((int64_t)1 << 31)     /* bytes of one tensor frame */
#define WIRE_MAX_TENSORS 4
#define WIRE_NAME_MAX 64
#define WIRE_TEXT_MAX 1024
#define WIRE_MAX_MODELS 8
#define WIRE_ERR_MAX 256
#define WIRE_HASH_MAX 65 /* sha256 in hex + NUL */
#define WIRE_HEARTBEAT_MAX 64 /* tasks a heartbeat may list */

enum wire_kind {
    WIRE_NONE = 0,
    WIRE_HELLO = 10,
    WIRE_HELLO_ACK = 11,
    WIRE_CREDIT = 12,
    WIRE_HEARTBEAT = 13,
    WIRE_HEARTBEAT_ACK = 14,
    WIRE_TASK = 15,
    WIRE_RESULT = 16,
    WIRE_TASK_FAILED = 17,
    WIRE_RESULT_ACK = 18,
    WIRE_BYE = 19,
    WIRE_RESET = 20,
    WIRE_ERROR = 21,
    WIRE_SUBMIT = 30,
    WIRE_SUBMIT_REPLY = 31,
    WIRE_STATUS = 32,
    WIRE_STATUS_REPLY = 33,
    WIRE_CANCEL = 34,
    WIRE_CANCEL_REPLY = 35,
    WIRE_WORKERS = 36,
    WIRE_WORKERS_REPLY = 37,
    WIRE_GET_LATENTS = 38,
    WIRE_LATENTS = 39,
    WIRE_GET_OUTPUT = 40,
    WIRE_OUTPUT = 41,
};

/* Task kinds (DESIGN 3): one prepare per job, denoise(window, step), decode(segment). */
enum wire_task_kind {
    WIRE_TASK_DENOISE = 0,
    WIRE_TASK_PREPARE = 1,
    WIRE_TASK_DECODE = 2,
};

enum wire_dtype {
    WIRE_DTYPE_F32 = 1,
    WIRE_DTYPE_BF16 = 2,
    WIRE_DTYPE_U8 = 3, /* raw bytes: files */
};

enum wire_fail_reason {
    WIRE_FAIL_CACHE_MISS = 1, /* worker lacks the base step: resend the whole window */
    WIRE_FAIL_ERROR = 2,      /* the task failed on this worker */
    WIRE_FAIL_BUSY = 3,       /* the worker cannot take it now: requeue elsewhere */
    WIRE_FAIL_INPUT = 4,      /* the job's input is bad (audio, image): fail the job */
};

/* A tensor frame. Received frames point into memory owned by the message
 * (freed by wire_msg_release); frames to send are borrowed. */
struct wire_tensor {
    enum wire_dtype dtype;
    int ndim;
    int64_t shape[4];
    void *data;
    size_t nbytes;
};

struct wire_job_params {
    char model[WIRE_NAME_MAX];
    int64_t n_samples;
    int clip_frames, overlap, steps, width, height, fps;
    char blend[16];
    uint64_t seed;
    float text_scale, audio_scale;
    char prompt[WIRE_TEXT_MAX], negative[WIRE_TEXT_MAX];
    char audio_path[WIRE_TEXT_MAX], image_path[WIRE_TEXT_MAX];
    char audio_blob[WIRE_HASH_MAX], image_blob[WIRE_HASH_MAX]; /* blob hashes, or "" */
};

struct wire_hello {
    uint32_t protocol;
    char name[WIRE_NAME_MAX], backend[WIRE_NAME_MAX], device[WIRE_NAME_MAX];
    uint64_t memory;
    uint32_t cache_windows; /* window outputs kept for affinity (LRU over its last runs) */
    int n_models;
    char models[WIRE_MAX_MODELS][WIRE_NAME_MAX];
};

struct wire_task {
    uint64_t job_id, task_id;
    uint32_t attempt;
    int64_t window, start, len;
    int step;
    struct wire_job_params params;
    int base_step;   /* -1: the tensor holds the whole window */
    int n_sent;      /* frames in the tensor */
    int32_t *sent;   /* [n_sent] window-local frame indices; owned by the message */
    int kind;        /* enum wire_task_kind; decode: window = segment, [start, start+len) */
    int64_t first;   /* decode: first latent frame in tensor 0 (warm-up included) */
    int prepared;    /* denoise: the last tensor is the prepared blob (u8) */
};

struct wire_task_ref {
    uint64_t job_id, task_id;
    uint32_t attempt;
};

struct wire_job_info {
    uint64_t id;
    char state[16];
    int priority, steps;
    char model[WIRE_NAME_MAX];
    int64_t n_windows, latent_frames, windows_done, tasks_done, tasks_total;
    int64_t stale_results, requeued, bytes_sent, bytes_full;
    double created_at, started_at, finished_at;
    char error[WIRE_ERR_MAX];
    int64_t segments, segments_done;
    int prepared;
    int n_window_steps;
    int32_t *window_steps; /* [n_window_steps], owned by the message */
};

struct wire_worker_info {
    uint64_t id;
    char name[WIRE_NAME_MAX], backend[WIRE_NAME_MAX], device[WIRE_NAME_MAX], state[16];
    int n_models;
    char models[WIRE_MAX_MODELS][WIRE_NAME_MAX];
    int running;
    int64_t tasks_done;
    double last_seen, connected_at;
};

struct wire_msg {
    enum wire_kind kind;
    uint64_t request_id;
    union {
        struct wire_hello hello;
        struct { uint64_t worker_id; uint32_t heartbeat_ms, lease_ms; } hello_ack;
        struct { int n; } credit;
        /* The tasks the worker holds (queued, running, done but not yet
         * reported) and the Task messages it received since its HelloAck. */
        struct {
            uint64_t received;
            int n;
            struct wire_task_ref tasks[WIRE_HEARTBEAT_MAX];
        } heartbeat;
        struct wire_task task;
        struct wire_task_ref result;                 /* denoise: head f32, rest bf16 */
        struct { struct wire_task_ref ref; int reason; char message[WIRE_ERR_MAX]; } task_failed;
        struct { struct wire_task_ref ref; int accepted; char reason[WIRE_ERR_MAX]; } result_ack;
        struct { int n; struct wire_task_ref *tasks; } bye; /* tasks owned by the message */
        struct { int code; char message[WIRE_ERR_MAX]; } error;
        struct { struct wire_job_params params; int priority; } submit;
        struct { uint64_t job_id; } submit_reply;
        struct { uint64_t job_id; int wavefront; } status;
        struct {
            int n_jobs;
            struct wire_job_info *jobs; /* owned by the message */
            int64_t stale_results, duplicate_results, bad_messages;
        } status_reply;
        struct { uint64_t job_id; } cancel;
        struct { uint64_t job_id; char state[16]; } cancel_reply;
        struct { int n_workers; struct wire_worker_info *workers; } workers_reply;
        struct { uint64_t job_id; } get_latents;
        struct { uint64_t job_id; } latents;
        struct { uint64_t job_id; } get_output;
        struct { uint64_t job_id; } output;
    } u;
    int n_tensors;
    struct wire_tensor tensors[WIRE_MAX_TENSORS];
    void *owned_[WIRE_MAX_TENSORS]; /* receive buffers (zmq_msg_t), internal */
};

struct wire_limits {
    size_t max_envelope;   /* bytes */
    int64_t max_tensor;    /* bytes per tensor frame */
};

/* wire_limits_default() fills the defaults above. */
void wire_limits_default(struct wire_limits *l);

/* wire_kind_name() names a kind ("task", "result", ...); never NULL. */
const char *wire_kind_name(enum wire_kind k);

/* wire_dtype_size() is 4 for f32, 2 for bf16, 1 for u8, 0 otherwise. */
size_t wire_dtype_size(enum wire_dtype d);

/* wire_msg_init() zeroes m (kind NONE); wire_msg_release() frees what a
 * decode or the caller attached (sent, jobs, ...) and re-initialises m. */
void wire_msg_init(struct wire_msg *m, enum wire_kind kind);
void wire_msg_release(struct wire_msg *m);

/* wire_msg_add_tensor() appends a borrowed tensor to send. */
void wire_msg_add_tensor(struct wire_msg *m, enum wire_dtype dt, int ndim, const int64_t *shape,
                         const void *data);

/*
 * wire_encode() serialises the envelope (not the tensor data) into a new
 * buffer *buf of *len bytes; the caller frees it. Tensor descriptors are
 * taken from m->tensors. Returns 0 or ENC_EINVAL for a message with no body
 * or a heartbeat whose n is not in [0, WIRE_HEARTBEAT_MAX].
 */
int wire_encode(const struct wire_msg *m, uint8_t **buf, size_t *len);

/*
 * wire_decode() parses one envelope of len bytes into m (which it
 * initialises). Tensor frames are attached afterwards by the receiver.
 * Returns 0, or ENC_EWIRE with the reason in err (size errlen) for a frame
 * over limits->max_envelope, bytes that are not an Envelope, a version other
 * than WIRE_PROTOCOL_VERSION, a missing body, an oversized string or a
 * repeated field over its limit (e.g. a heartbeat listing more than
 * WIRE_HEARTBEAT_MAX tasks).
 */
int wire_decode(const uint8_t *buf, size_t len, const struct wire_limits *limits,
                struct wire_msg *m, char *err, size_t errlen);

/*
 * wire_send() sends m on a ZeroMQ socket: the routing id frame first when
 * rid is not NULL (ROUTER sockets), then the envelope, then each tensor.
 * Never blocks (ZMQ_DONTWAIT): returns 0, or ENC_EIO when the peer cannot
 * take it now (the message is dropped; protocol-level retries cover it).
 */
int wire_send(void *sock, const void *rid, size_t rid_len, const struct wire_msg *m);

/*
 * wire_send_take() is wire_send() for a message whose last tensor's data is
 * the start of buf, a block from malloc: ZeroMQ takes it as it is (no copy)
 * and frees it when sent. buf belongs to the callee, whatever the outcome.
 */
int wire_send_take(void *sock, const void *rid, size_t rid_len, const struct wire_msg *m,
                   void *buf);

/*
 * wire_recv() reads one whole multipart message. With a ROUTER socket pass
 * rid (WIRE_RID_MAX bytes) and rid_len to receive the sender's routing id.
 * flags: 0 or ZMQ_DONTWAIT. Returns 0 with m filled; ENC_ETIMEOUT when
 * nothing is waiting (DONTWAIT); ENC_EWIRE when the message is malformed
 * (err says why; all its frames were consumed, so the socket stays usable;
 * the routing id is still filled so the sender can be told); ENC_EIO on a
 * socket error.
 */
#define WIRE_RID_MAX 256
int wire_recv(void *sock, uint8_t *rid, size_t *rid_len, int flags,
              const struct wire_limits *limits, struct wire_msg *m, char *err, size_t errlen);

/* wire_send_error() sends an Error{code, message} reply (best effort). */
void wire_send_error(void *sock, const void *rid, size_t rid_len, uint64_t request_id, int code,
                     const char *fmt, ...) __attribute__((format(printf, 6, 7)));

#endif
