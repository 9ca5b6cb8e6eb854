/*
 * t_safetensors.c - the safetensors reader on every fixture and on broken files.
 *
 * Fixtures: each opens, its "kind" metadata reads, dtypes and values come
 * out right (bf16 widening checked bit for bit against the header, I32
 * widened to I64). Broken files: every prefix of a small generated file and
 * a sample of prefixes of a real fixture, bad magic, header length past the
 * end, header not JSON, offsets out of range, reversed or overlapping,
 * shape/size mismatch, unknown dtype, bad metadata; each a clear error.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/bf16.h"
#include "common/err.h"
#include "common/log.h"
#include "tests/tap.h"
#include "worker/engine/checkpoint.h"

static char last_err[512];
static void sink(void *ctx, enum log_level level, const char *line)
{
    (void)ctx;
    if (level == LOG_LEVEL_ERROR)
        snprintf(last_err, sizeof last_err, "%s", line);
}

static char tmpdir[128], tmpfile_[256];

static int open_bytes(const void *data, size_t n, struct ckpt **ck)
{
    FILE *f = fopen(tmpfile_, "wb");
    if (!f)
        return -100;
    size_t w = fwrite(data, 1, n, f);
    if (fclose(f) != 0 || w != n)
        return -100;
    last_err[0] = 0;
    return ckpt_open(tmpfile_, ck);
}

/* st_bytes() builds a safetensors image from a header and data bytes. */
static uint8_t *st_bytes(const char *header, const void *data, size_t dn, size_t *n)
{
    size_t hn = strlen(header);
    uint8_t *b = malloc(8 + hn + dn + 1);
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)((uint64_t)hn >> (8 * i));
    memcpy(b + 8, header, hn);
    if (dn)
        memcpy(b + 8 + hn, data, dn);
    *n = 8 + hn + dn;
    return b;
}

static void expect_fail(const char *header, const void *data, size_t dn, int want_rc,
                        const char *want_msg, const char *what)
{
    size_t n;
    uint8_t *b = st_bytes(header, data, dn, &n);
    struct ckpt *ck = NULL;
    int rc = open_bytes(b, n, &ck);
    ok(rc == want_rc && !ck && strstr(last_err, want_msg), "%s: %s", what, enc_err_str(rc));
    if (rc != want_rc || !strstr(last_err, want_msg))
        diag("  rc %d, want %d; message: %s (want '%s')", rc, want_rc, last_err, want_msg);
    else
        diag("  %s", strstr(last_err, ": '") ? strstr(last_err, ": '") + 2 : last_err);
    ckpt_close(&ck);
    free(b);
}

static const char *fixtures[] = {"clip_vision",         "dit_forward", "scheduler",
                                 "sliding_window_loop", "tokenizer",   "umt5_encoder",
                                 "vae_decode",          "vae_encode",  "wav2vec2"};

static void test_fixtures(void)
{
    for (size_t k = 0; k < sizeof fixtures / sizeof fixtures[0]; k++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s.safetensors", FIXTURE_DIR, fixtures[k]);
        struct ckpt *ck = NULL;
        int rc = ckpt_open(path, &ck);
        ok(rc == 0 && ck && ckpt_count(ck) > 0, "%s opens (%zu tensors)", fixtures[k],
           ck ? ckpt_count(ck) : 0);
        if (!ck)
            continue;
        is_str(ckpt_meta(ck, "kind"), fixtures[k], "  metadata kind");
        /* every tensor reads as f32 without trouble, sizes consistent */
        size_t bad = 0;
        for (size_t i = 0; i < ckpt_count(ck); i++) {
            const struct ckpt_tensor *t = ckpt_at(ck, i);
            if (t->nbytes != (size_t)ckpt_numel(t) *
                                 (t->dtype == DTYPE_F32                             ? 4
                                  : t->dtype == DTYPE_BF16 || t->dtype == DTYPE_F16 ? 2
                                                                                    : 8) ||
                ckpt_find(ck, t->name) != t)
                bad++;
        }
        is_int(bad, 0, "  sizes and name index consistent");
        ckpt_close(&ck);
    }

    /* dtypes of dit_forward: I64, F32 and BF16 tensors */
    struct ckpt *ck = NULL;
    ckpt_open(FIXTURE_DIR "/dit_forward.safetensors", &ck);
    if (!ck) {
        skip(4, "dit_forward did not open");
        return;
    }
    size_t nbf = 0, nbf_bad = 0, ni64 = 0;
    for (size_t i = 0; i < ckpt_count(ck); i++) {
        const struct ckpt_tensor *t = ckpt_at(ck, i);
        if (t->dtype == DTYPE_BF16) {
            nbf++;
            float *f = ckpt_read_f32(t);
            const uint16_t *h = t->data;
            for (int64_t e = 0; e < ckpt_numel(t); e++) {
                uint32_t u;
                memcpy(&u, &f[e], 4);
                if (u != (uint32_t)h[e] << 16)
                    nbf_bad++;
            }
            free(f);
        }
        if (t->dtype == DTYPE_I64)
            ni64++;
    }
    is_int(nbf, 6, "dit_forward has 6 BF16 tensors");
    is_int(nbf_bad, 0, "bf16 widening is exact (bits << 16)");
    is_int(ni64, 6, "dit_forward has 6 I64 tensors");
    const struct ckpt_tensor *t = ckpt_find(ck, "patch_embedding.weight");
    ok(t && t->dtype == DTYPE_F32 && t->ndim == 5, "patch_embedding.weight is a 5-D F32");
    ckpt_close(&ck);

    /* I32 widening (tokenizer has one I32 tensor) */
    ckpt_open(FIXTURE_DIR "/tokenizer.safetensors", &ck);
    size_t ni32 = 0;
    for (size_t i = 0; ck && i < ckpt_count(ck); i++)
        if (ckpt_at(ck, i)->dtype == DTYPE_I64)
            ni32++;
    is_int(ni32, 7, "tokenizer: I64 and widened I32 tensors all read as I64");
    ckpt_close(&ck);
}

static void test_broken(void)
{
    float d[6] = {1, 2, 3, 4, 5, 6};
    const char *hdr = "{\"__metadata__\":{\"kind\":\"t\"},"
                      "\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
                      "\"b\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[16,24]}}";
    size_t n;
    uint8_t *good = st_bytes(hdr, d, 24, &n);
    struct ckpt *ck = NULL;
    ok(open_bytes(good, n, &ck) == 0 && ck && ckpt_count(ck) == 2, "generated file opens");
    is_str(ck ? ckpt_meta(ck, "kind") : NULL, "t", "  its metadata");
    ckpt_close(&ck);

    size_t fails = 0;
    for (size_t k = 0; k < n; k++) {
        if (open_bytes(good, k, &ck) != 0 && !ck)
            fails++;
        ckpt_close(&ck);
    }
    is_int(fails, n, "every prefix of it (%zu lengths) is refused", n);
    free(good);

    /* a sample of prefixes of a real fixture */
    FILE *f = fopen(FIXTURE_DIR "/scheduler.safetensors", "rb");
    uint8_t *real = malloc(200000);
    size_t rn = f ? fread(real, 1, 200000, f) : 0;
    if (f)
        fclose(f);
    fails = 0;
    size_t tries = 0;
    for (size_t k = 0; k < rn; k = k < 3000 ? k + 7 : k + 4099) {
        tries++;
        if (open_bytes(real, k, &ck) != 0 && !ck)
            fails++;
        ckpt_close(&ck);
    }
    ok(rn > 0 && fails == tries, "%zu sampled prefixes of scheduler.safetensors refused", tries);
    ok(open_bytes(real, rn, &ck) == 0, "  the whole file still opens from a copy");
    ckpt_close(&ck);
    free(real);

    uint8_t magic[16] = "GGUF\x03\0\0\0\0\0\0\0\0\0\0";
    ok(open_bytes(magic, sizeof magic, &ck) != 0 && !ck, "wrong magic refused: %s", last_err);

    uint8_t longhdr[16] = {0xff, 0xff, 0, 0, 0, 0, 0, 0, '{', '}'};
    ok(open_bytes(longhdr, sizeof longhdr, &ck) == ENC_EINVAL && strstr(last_err, "truncated"),
       "header length larger than the file");
    uint8_t hugehdr[16] = {0, 0, 0, 0, 0, 0, 0, 0x7f, '{', '}'};
    ok(open_bytes(hugehdr, sizeof hugehdr, &ck) == ENC_EINVAL && strstr(last_err, "limit"),
       "absurd header length");

    expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", d, 8, ENC_EINVAL,
                "header JSON at byte", "header not JSON (unterminated)");
    expect_fail("[1,2,3]", d, 8, ENC_EINVAL, "does not start with '{'", "header not an object");
    expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},}", d, 8,
                ENC_EINVAL, "trailing comma", "header JSON with a trailing comma");
    expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,32]}}", d, 24,
                ENC_EINVAL, "outside the 24-byte data block", "offsets out of range");
    expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", d, 24,
                ENC_EINVAL, "reversed", "offsets reversed");
    expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                d, 24, ENC_EINVAL, "overlap", "overlapping tensors");
    expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,8]}}", d, 24,
                ENC_EINVAL, "need 16", "shape/size mismatch");
    expect_fail("{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", d, 24,
                ENC_ENOTSUP, "unsupported dtype 'F8_E4M3'", "unknown dtype");
    expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", d, 24,
                ENC_EINVAL, "shape[0]", "negative dimension");
    expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", d,
                24, ENC_ENOTSUP, "dimensions", "too many dimensions");
    expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
                "\"data_offsets\":[0,8]}}",
                d, 24, ENC_EINVAL, "overflows", "shape that overflows");
    expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", d, 24, ENC_EINVAL, "data_offsets",
                "missing data_offsets");
    expect_fail("{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", d, 24, ENC_EINVAL, "dtype",
                "missing dtype");
    expect_fail("{\"__metadata__\":{\"k\":1}}", d, 0, ENC_EINVAL, "not a string",
                "non-string metadata");
    expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
                d, 24, ENC_EINVAL, "duplicate key", "duplicate tensor name");

    /* empty tensors and a gap are fine */
    size_t en;
    uint8_t *e = st_bytes("{\"z\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[8,8]},"
                          "\"s\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[16,24]}}",
                          d, 24, &en);
    ok(open_bytes(e, en, &ck) == 0 && ck && ckpt_numel(ckpt_find(ck, "z")) == 0 &&
           ckpt_find(ck, "s")->ndim == 0,
       "empty tensor, scalar and a gap accepted");
    ckpt_close(&ck);
    free(e);

    /* mutations of the header never crash; each open loads or names a reason */
    uint8_t *g = st_bytes(hdr, d, 24, &n);
    uint8_t *m = malloc(n);
    uint32_t seed = 99;
    size_t loaded = 0, refused = 0, silent = 0;
    for (int round = 0; round < 1500; round++) {
        memcpy(m, g, n);
        int flips = 1 + round % 3;
        for (int k = 0; k < flips; k++) {
            seed = seed * 1664525u + 1013904223u;
            size_t at = 8 + (seed >> 8) % (n - 8 - 24);
            seed = seed * 1664525u + 1013904223u;
            m[at] = (uint8_t)(seed >> 16);
        }
        int rc = open_bytes(m, n, &ck);
        if (rc == 0)
            loaded++;
        else if (last_err[0])
            refused++;
        else
            silent++;
        ckpt_close(&ck);
    }
    ok(silent == 0 && refused > 0, "1500 mutated headers: %zu loaded, %zu refused with a reason",
       loaded, refused);
    free(m);
    free(g);

    /* a header of exactly 128 bytes: first byte 0x80, like a pickle PROTO */
    char h128[129];
    memset(h128, ' ', 128);
    h128[128] = 0;
    memcpy(h128, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 54);
    e = st_bytes(h128, d, 8, &en);
    ok(e[0] == 0x80 && open_bytes(e, en, &ck) == 0 && ck && ckpt_count(ck) == 1,
       "header length 128 (first byte 0x80) is not mistaken for a pickle");
    ckpt_close(&ck);
    free(e);

    ok(ckpt_open("/nonexistent/x.safetensors", &ck) == ENC_EIO && !ck, "missing file: ENC_EIO");
    ok(open_bytes("", 0, &ck) == ENC_EINVAL && strstr(last_err, "empty"), "empty file");
}

int main(void)
{
    /* many small files are written: prefer memory-backed /dev/shm */
    const char *base = getenv("TMPDIR");
    if (!base || !*base)
        base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(tmpdir, sizeof tmpdir, "%s/t_safetensors.XXXXXX", base);
    if (!mkdtemp(tmpdir))
        return 1;
    snprintf(tmpfile_, sizeof tmpfile_, "%s/t.safetensors", tmpdir);
    log_set_sink(sink, NULL);
    test_fixtures();
    test_broken();
    unlink(tmpfile_);
    rmdir(tmpdir);
    return done_testing();
}
