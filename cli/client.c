/*
 * client.c - request/reply with a coordinator, render options, latents
 * output (see client.h).
 */
#include "client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "cli/commands.h"
#include "common/blend.h"
#include "common/curve_keys.h"
#include "common/err.h"
#include "common/media.h"
#include "common/parse.h"
#include "common/plan.h"

static const struct curve_client *client_keys;

void client_set_keys(const struct curve_client *k)
{
    client_keys = k;
}

#define HANDSHAKE_FAILED                                                                           \
    (ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |                  \
     ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)

/* handshake_monitor(): a PAIR socket that receives s's failed handshakes;
 * NULL if it cannot be made (the call then only has its timeout). */
static void *handshake_monitor(void *ctx, void *s)
{
    static int seq;
    char mep[96];
    snprintf(mep, sizeof mep, "inproc://encore-client-handshake-%d-%d", (int)getpid(),
             __atomic_fetch_add(&seq, 1, __ATOMIC_RELAXED));
    if (zmq_socket_monitor(s, mep, HANDSHAKE_FAILED) != 0)
        return NULL;
    void *m = zmq_socket(ctx, ZMQ_PAIR);
    int linger = 0;
    zmq_setsockopt(m, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_connect(m, mep) != 0) {
        zmq_close(m);
        zmq_socket_monitor(s, NULL, 0);
        return NULL;
    }
    return m;
}

/* say_handshake_failed(): read the monitor's event and explain it. */
static void say_handshake_failed(void *mon, const char *cmd, const char *ep)
{
    uint8_t ev[6] = {0};
    zmq_recv(mon, ev, sizeof ev, 0);
    char addr[256];
    int more = 0;
    size_t sz = sizeof more;
    zmq_getsockopt(mon, ZMQ_RCVMORE, &more, &sz);
    if (more)
        zmq_recv(mon, addr, sizeof addr, 0);
    unsigned event = (unsigned)ev[0] | (unsigned)ev[1] << 8;
    uint32_t value =
        (uint32_t)ev[2] | (uint32_t)ev[3] << 8 | (uint32_t)ev[4] << 16 | (uint32_t)ev[5] << 24;
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
        fprintf(stderr,
                "encore %s: the coordinator at '%s' refused this client's key (ZAP status "
                "%u): its client.pub must be in the coordinator's authorized/ directory\n",
                cmd, ep, (unsigned)value);
    else if (!client_keys)
        fprintf(stderr,
                "encore %s: the coordinator at '%s' broke off the handshake: it requires "
                "CurveZMQ (give --keys DIR or ENCORE_KEYS=DIR, holding client.key and "
                "coordinator.pub)\n",
                cmd, ep);
    else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL &&
             value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
        fprintf(stderr,
                "encore %s: the coordinator at '%s' does not use CurveZMQ: drop --keys (and "
                "ENCORE_KEYS)\n",
                cmd, ep);
    else
        fprintf(stderr,
                "encore %s: the CurveZMQ handshake with the coordinator at '%s' failed: was "
                "it started with --keys, and is coordinator.pub its public key?\n",
                cmd, ep);
}

int client_call(void *zctx, const char *ep, const char *cmd, struct wire_msg *req,
                struct wire_msg *rep, int timeout_ms)
{
    void *ctx = zctx ? zctx : zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER), *mon = NULL;
    int linger = 0, rc = EXIT_STATUS_FAILURE;
    int remote = strncmp(ep, "inproc://", 9) != 0;
    struct wire_limits lim;
    char err[WIRE_ERR_MAX];
    wire_limits_default(&lim);
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    if (remote && client_keys && curve_keys_set_client(s, client_keys) != 0)
        goto out;
    if (remote)
        mon = handshake_monitor(ctx, s);
    if (zmq_connect(s, ep) != 0) {
        fprintf(stderr, "encore %s: bad coordinator endpoint '%s': %s\n", cmd, ep,
                zmq_strerror(errno));
        rc = EXIT_STATUS_USAGE;
        goto out;
    }
    req->request_id = 1;
    wire_send(s, NULL, 0, req);
    zmq_pollitem_t it[2] = {{.socket = s, .events = ZMQ_POLLIN},
                            {.socket = mon, .events = ZMQ_POLLIN}};
    if (zmq_poll(it, mon ? 2 : 1, timeout_ms) <= 0) {
        fprintf(stderr, "encore %s: no answer from the coordinator at '%s' within %d ms\n", cmd,
                ep, timeout_ms);
        goto out;
    }
    if (!(it[0].revents & ZMQ_POLLIN)) {
        say_handshake_failed(mon, cmd, ep);
        goto out;
    }
    if (wire_recv(s, NULL, NULL, 0, &lim, rep, err, sizeof err)) {
        fprintf(stderr, "encore %s: bad reply from '%s': %s\n", cmd, ep, err);
        goto out;
    }
    if (rep->kind == WIRE_ERROR) {
        fprintf(stderr, "encore %s: %s\n", cmd, rep->u.error.message);
        wire_msg_release(rep);
        rc = EXIT_STATUS_USAGE;
        goto out;
    }
    rc = 0;
out:
    if (mon) {
        zmq_socket_monitor(s, NULL, 0);
        zmq_close(mon);
    }
    zmq_close(s);
    if (!zctx)
        zmq_ctx_term(ctx);
    return rc;
}

const char render_opts_usage[] =
    "render options:\n"
    "  --models DIR | --tiny | --backend sim   the model (sim: load-test stand-in)\n"
    "  --prompt TEXT, --negative TEXT\n"
    "  --size WxH (512x512), --clip-frames N (81), --overlap N (5), --blend log|uniform\n"
    "  --steps N (50), --seed N (42), --text-scale X (3.0), --audio-scale X (5.0), --fps N (25)\n"
    "  --samples N        use N samples of silence instead of reading AUDIO (sim jobs)\n"
    "  --threads N        cpu threads (default: one per core); --quiet: no progress\n"
    "  --device cpu|cuda:N  where render runs the model (cuda needs a CUDA=1 build)\n"
    "  --save-latents FILE  write the final latents (safetensors, bf16 [16,L,H/8,W/8])\n";

void render_opts_default(struct render_opts *r)
{
    memset(r, 0, sizeof *r);
    snprintf(r->p.blend, sizeof r->p.blend, "log");
    r->p.clip_frames = 81;
    r->p.overlap = 5;
    r->p.steps = 50;
    r->p.seed = 42;
    r->p.width = r->p.height = 512;
    r->p.text_scale = 3.0f;
    r->p.audio_scale = 5.0f;
    r->p.fps = 25;
    r->workers = 2;
    r->backend = "engine";
}

int render_opts_parse(struct render_opts *r, int argc, char **argv, const char *usage,
                      int for_render)
{
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t n;
        double d;
        if (a[0] != '-') {
            if (npos == 0)
                r->audio = a;
            else if (npos == 1)
                r->image = a;
            else
                return cli_usage_error(usage, "unexpected argument '%s'", a);
            npos++;
            continue;
        }
        if (strcmp(a, "--tiny") == 0) {
            snprintf(r->p.model, sizeof r->p.model, "tiny");
            continue;
        }
        if (strcmp(a, "--local") == 0 && for_render) {
            r->local = 1;
            continue;
        }
        if (strcmp(a, "--quiet") == 0) {
            r->quiet = 1;
            continue;
        }
        if (!v)
            return cli_usage_error(usage, "option '%s' needs a value or is unknown", a);
        i++;
        if (strcmp(a, "--device") == 0 && for_render) {
            r->device = v;
        } else if (strcmp(a, "--threads") == 0) {
            if (parse_int(v, 1, 1024, &r->threads))
                return cli_usage_error(usage, "bad thread count '%s'", v);
        } else if (strcmp(a, "--models") == 0) {
            r->models_dir = v;
            const char *base = strrchr(v, '/');
            snprintf(r->p.model, sizeof r->p.model, "%s", base && base[1] ? base + 1 : v);
        } else if (strcmp(a, "--backend") == 0) {
            if (strcmp(v, "sim") != 0 && strcmp(v, "engine") != 0)
                return cli_usage_error(usage, "unknown backend '%s' (engine or sim)", v);
            r->backend = v;
            if (strcmp(v, "sim") == 0)
                snprintf(r->p.model, sizeof r->p.model, "sim");
        } else if (strcmp(a, "--prompt") == 0) {
            snprintf(r->p.prompt, sizeof r->p.prompt, "%s", v);
        } else if (strcmp(a, "--negative") == 0) {
            snprintf(r->p.negative, sizeof r->p.negative, "%s", v);
        } else if (strcmp(a, "--size") == 0) {
            int w, h;
            char *x = strchr(v, 'x');
            char wb[16];
            if (!x || x - v >= (long)sizeof wb)
                return cli_usage_error(usage, "bad size '%s' (WxH)", v);
            memcpy(wb, v, (size_t)(x - v));
            wb[x - v] = 0;
            if (parse_int(wb, 8, 4096, &w) || parse_int(x + 1, 8, 4096, &h) || w % 8 || h % 8)
                return cli_usage_error(usage, "bad size '%s' (WxH, multiples of 8)", v);
            r->p.width = w;
            r->p.height = h;
        } else if (strcmp(a, "--blend") == 0) {
            if (blend_parse_scheme(v) < 0)
                return cli_usage_error(usage, "unknown blend scheme '%s' (log or uniform)", v);
            snprintf(r->p.blend, sizeof r->p.blend, "%s", v);
        } else if (strcmp(a, "--text-scale") == 0 || strcmp(a, "--audio-scale") == 0) {
            if (parse_double(v, -100, 100, &d))
                return cli_usage_error(usage, "bad value '%s' for %s", v, a);
            if (a[2] == 't')
                r->p.text_scale = (float)d;
            else
                r->p.audio_scale = (float)d;
        } else if (strcmp(a, "--state") == 0 && for_render) {
            r->state_dir = v;
        } else if (strcmp(a, "-o") == 0 && for_render) {
            r->output = v;
        } else if (strcmp(a, "--save-latents") == 0) {
            r->save_latents = v;
        } else {
            static const struct {
                const char *name;
                int64_t min, max;
            } nums[] = {{"--clip-frames", 5, 1001}, {"--overlap", 0, 1000},
                        {"--steps", 0, 10000},     {"--seed", 0, INT64_MAX},
                        {"--fps", 1, 240},         {"--priority", -1000000, 1000000},
                        {"--workers", 1, 1024},    {"--sim-ms", 0, 3600000},
                        {"--samples", 1, INT64_MAX}};
            int found = -1;
            for (int k = 0; k < (int)(sizeof nums / sizeof nums[0]); k++)
                if (strcmp(a, nums[k].name) == 0)
                    found = k;
            if (found < 0 || (!for_render && (found == 6 || found == 7)) ||
                (for_render && found == 5))
                return cli_usage_error(usage, "unknown option '%s'", a);
            if (parse_i64(v, nums[found].min, nums[found].max, &n))
                return cli_usage_error(usage, "bad value '%s' for %s", v, a);
            switch (found) {
            case 0: r->p.clip_frames = (int)n; break;
            case 1: r->p.overlap = (int)n; break;
            case 2: r->p.steps = (int)n; break;
            case 3: r->p.seed = (uint64_t)n; break;
            case 4: r->p.fps = (int)n; break;
            case 5: r->priority = (int)n; break;
            case 6: r->workers = (int)n; break;
            case 7: r->sim_ms = (int)n; break;
            case 8: r->p.n_samples = n; break;
            }
        }
    }
    if (r->p.steps < 1)
        return cli_usage_error(usage, "steps must be at least 1, not %d", r->p.steps);
    if ((r->p.clip_frames - 1) % 4 != 0)
        return cli_usage_error(usage, "clip frames must be 4k+1, not %d", r->p.clip_frames);
    int F = (r->p.clip_frames - 1) / 4 + 1;
    if (r->p.overlap >= F)
        return cli_usage_error(usage,
                               "overlap %d must be smaller than the window of %d latent frames",
                               r->p.overlap, F);
    if (!r->p.model[0])
        snprintf(r->p.model, sizeof r->p.model, "tiny"); /* the default model */
    /* The audio's length is measured where it is decoded: by the
     * coordinator (the file is sent), or by the local render. */
    if (r->p.n_samples == 0 && !r->audio)
        return cli_usage_error(usage, "no AUDIO given (or --samples N for a sim job)");
    if (strcmp(r->backend, "sim") != 0 && !r->local && !r->image)
        return cli_usage_error(usage, "no IMAGE given (the portrait to animate)");
    if (r->audio)
        snprintf(r->p.audio_path, sizeof r->p.audio_path, "%s", r->audio);
    if (r->image)
        snprintf(r->p.image_path, sizeof r->p.image_path, "%s", r->image);
    return 0;
}

/* read_input(): a whole input file; 0, or 2 after naming it. */
static int read_input(const char *what, const char *path, uint8_t **buf, size_t *n)
{
    FILE *f = fopen(path, "rb");
    *buf = NULL;
    *n = 0;
    if (!f) {
        fprintf(stderr, "encore: cannot read %s '%s': %s\n", what, path, strerror(errno));
        return EXIT_STATUS_USAGE;
    }
    int bad = fseek(f, 0, SEEK_END) != 0;
    long len = bad ? -1 : ftell(f);
    if (len <= 0 || len > ((long)1 << 31) - 1 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        fprintf(stderr, "encore: %s '%s' is %s\n", what, path,
                len == 0 ? "empty" : "not a regular file of at most 2 GiB");
        return EXIT_STATUS_USAGE;
    }
    *buf = malloc((size_t)len);
    if (!*buf || fread(*buf, 1, (size_t)len, f) != (size_t)len) {
        fclose(f);
        free(*buf);
        *buf = NULL;
        fprintf(stderr, "encore: cannot read %s '%s'\n", what, path);
        return EXIT_STATUS_FAILURE;
    }
    fclose(f);
    *n = (size_t)len;
    return 0;
}

int client_submit(void *zctx, const char *ep, const char *cmd, const struct render_opts *r,
                  uint64_t *job_id)
{
    struct wire_msg req, rep;
    uint8_t *buf[2] = {NULL, NULL};
    size_t n[2] = {0, 0};
    int rc = 0;
    wire_msg_init(&req, WIRE_SUBMIT);
    req.u.submit.params = r->p;
    req.u.submit.priority = r->priority;
    if (r->audio && (rc = read_input("audio", r->audio, &buf[0], &n[0])) == 0 && r->image)
        rc = read_input("image", r->image, &buf[1], &n[1]);
    for (int i = 0; rc == 0 && i < 2; i++)
        if (buf[i]) {
            int64_t shape[1] = {(int64_t)n[i]};
            wire_msg_add_tensor(&req, WIRE_DTYPE_U8, 1, shape, buf[i]);
        }
    if (rc == 0)
        rc = client_call(zctx, ep, cmd, &req, &rep, 60000);
    if (rc == 0) {
        *job_id = rep.u.submit_reply.job_id;
        wire_msg_release(&rep);
    }
    free(buf[0]);
    free(buf[1]);
    return rc;
}

int client_get_output(void *zctx, const char *ep, const char *cmd, uint64_t id,
                      const char *path)
{
    struct wire_msg req, rep;
    wire_msg_init(&req, WIRE_GET_OUTPUT);
    req.u.get_output.job_id = id;
    int rc = client_call(zctx, ep, cmd, &req, &rep, 60000);
    if (rc)
        return rc;
    const struct wire_tensor *t = &rep.tensors[0];
    if (rep.kind != WIRE_OUTPUT || rep.n_tensors != 1 || t->dtype != WIRE_DTYPE_U8) {
        wire_msg_release(&rep);
        fprintf(stderr, "encore %s: unexpected reply from the coordinator\n", cmd);
        return EXIT_STATUS_FAILURE;
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    int bad = !f || fwrite(t->data, 1, t->nbytes, f) != t->nbytes;
    if (f)
        bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        fprintf(stderr, "encore %s: cannot write '%s': %s\n", cmd, path, strerror(errno));
        remove(tmp);
        rc = EXIT_STATUS_FAILURE;
    }
    wire_msg_release(&rep);
    return rc;
}

int client_get_latents(void *zctx, const char *ep, const char *cmd, uint64_t id,
                       const char *path)
{
    struct wire_msg req, rep;
    wire_msg_init(&req, WIRE_GET_LATENTS);
    req.u.get_latents.job_id = id;
    int rc = client_call(zctx, ep, cmd, &req, &rep, 60000);
    if (rc)
        return rc;
    const struct wire_tensor *t = &rep.tensors[0];
    if (rep.kind != WIRE_LATENTS || rep.n_tensors != 1 || t->ndim != 4 ||
        t->dtype != WIRE_DTYPE_BF16) {
        wire_msg_release(&rep);
        fprintf(stderr, "encore %s: unexpected reply from the coordinator\n", cmd);
        return EXIT_STATUS_FAILURE;
    }
    rc = client_write_latents(path, t->data, t->shape[1], t->shape[2], t->shape[3]);
    wire_msg_release(&rep);
    return rc;
}

int client_write_latents(const char *path, const uint16_t *data, int64_t L, int64_t h, int64_t w)
{
    char hdr[256], tmp[4096];
    int64_t bytes = 16 * L * h * w * 2;
    int n = snprintf(hdr, sizeof hdr,
                     "{\"__metadata__\":{\"layout\":\"[channels, latent frames, height/8, "
                     "width/8]\"},\"latents\":{\"dtype\":\"BF16\",\"shape\":[16,%lld,%lld,%lld],"
                     "\"data_offsets\":[0,%lld]}}",
                     (long long)L, (long long)h, (long long)w, (long long)bytes);
    while (n % 8)
        hdr[n++] = ' ';
    hdr[n] = 0;
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        fprintf(stderr, "encore: cannot write '%s': %s\n", path, strerror(errno));
        return EXIT_STATUS_FAILURE;
    }
    uint64_t hl = (uint64_t)n;
    uint8_t le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (uint8_t)(hl >> (8 * i));
    int bad = fwrite(le, 1, 8, f) != 8 || fwrite(hdr, 1, (size_t)n, f) != (size_t)n ||
              fwrite(data, 1, (size_t)bytes, f) != (size_t)bytes;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        fprintf(stderr, "encore: cannot write '%s': %s\n", path, strerror(errno));
        remove(tmp);
        return EXIT_STATUS_FAILURE;
    }
    return 0;
}
