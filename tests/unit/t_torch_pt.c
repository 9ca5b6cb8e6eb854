/*
 * t_torch_pt.c - the PyTorch zip checkpoint reader.
 *
 * Real files first: the fixtures written by torch.save (torch 1.13) must
 * load and match their safetensors twins tensor by tensor (names, order,
 * shapes, bytes). Then hand-built checkpoints (a tiny zip writer and pickle
 * bytes below) cover what the fixtures do not: bf16/f16/i32 storages, a
 * storage offset, a transposed (non-contiguous) tensor, an outer
 * {"state_dict": ...} dict, _rebuild_parameter, and every malformed case
 * the reader must refuse with a clear error.
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

/* ---- a growable byte buffer ---- */
struct buf {
    uint8_t *b;
    size_t n, cap;
};

static void put(struct buf *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->b = realloc(b->b, b->cap);
    }
    memcpy(b->b + b->n, p, n);
    b->n += n;
}

static void put8(struct buf *b, unsigned v)
{
    uint8_t c = (uint8_t)v;
    put(b, &c, 1);
}

static void put16(struct buf *b, unsigned v)
{
    put8(b, v & 0xff);
    put8(b, (v >> 8) & 0xff);
}

static void put32(struct buf *b, uint32_t v)
{
    put16(b, v & 0xffff);
    put16(b, v >> 16);
}

static void puts_(struct buf *b, const char *s)
{
    put(b, s, strlen(s));
}

/* ---- a minimal zip writer (STORED entries, or a fake method) ---- */
struct zfile {
    const char *name;
    const void *data;
    size_t size;
    unsigned method;
};

static void put64(struct buf *b, uint64_t v)
{
    put32(b, (uint32_t)v);
    put32(b, (uint32_t)(v >> 32));
}

/* zip_build_ex() writes a zip; with zip64 set, sizes and offsets go in zip64
 * extra fields and zip64 end records, as writers do for files over 4 GiB. */
static struct buf zip_build_ex(const struct zfile *f, int n, int zip64)
{
    struct buf z = {0}, cd = {0};
    for (int i = 0; i < n; i++) {
        uint32_t off = (uint32_t)z.n;
        size_t nl = strlen(f[i].name);
        /* local header, with an extra field padding data to 64 bytes as torch does */
        size_t pad = (64 - (z.n + 30 + nl + 4) % 64) % 64;
        put32(&z, 0x04034b50);
        put16(&z, 20);
        put16(&z, 0);
        put16(&z, f[i].method);
        put32(&z, 0);
        put32(&z, 0); /* crc (not checked) */
        put32(&z, (uint32_t)f[i].size);
        put32(&z, (uint32_t)f[i].size);
        put16(&z, (unsigned)nl);
        put16(&z, (unsigned)(4 + pad));
        puts_(&z, f[i].name);
        put16(&z, 0xcafe);
        put16(&z, (unsigned)pad);
        for (size_t k = 0; k < pad; k++)
            put8(&z, 'Z');
        put(&z, f[i].data, f[i].size);
        put32(&cd, 0x02014b50);
        put16(&cd, 20);
        put16(&cd, 20);
        put16(&cd, 0);
        put16(&cd, f[i].method);
        put32(&cd, 0);
        put32(&cd, 0);
        put32(&cd, zip64 ? 0xffffffffu : (uint32_t)f[i].size);
        put32(&cd, zip64 ? 0xffffffffu : (uint32_t)f[i].size);
        put16(&cd, (unsigned)nl);
        put16(&cd, zip64 ? 4 + 24 : 0);
        put16(&cd, 0);
        put16(&cd, 0);
        put16(&cd, 0);
        put32(&cd, 0);
        put32(&cd, zip64 ? 0xffffffffu : off);
        puts_(&cd, f[i].name);
        if (zip64) {
            put16(&cd, 0x0001);
            put16(&cd, 24);
            put64(&cd, f[i].size);
            put64(&cd, f[i].size);
            put64(&cd, off);
        }
    }
    uint64_t cd_off = z.n;
    put(&z, cd.b, cd.n);
    if (zip64) {
        uint64_t e64 = z.n;
        put32(&z, 0x06064b50);
        put64(&z, 44);
        put16(&z, 45);
        put16(&z, 45);
        put32(&z, 0);
        put32(&z, 0);
        put64(&z, (uint64_t)n);
        put64(&z, (uint64_t)n);
        put64(&z, cd.n);
        put64(&z, cd_off);
        put32(&z, 0x07064b50);
        put32(&z, 0);
        put64(&z, e64);
        put32(&z, 1);
    }
    put32(&z, 0x06054b50);
    put16(&z, 0);
    put16(&z, 0);
    put16(&z, zip64 ? 0xffff : (unsigned)n);
    put16(&z, zip64 ? 0xffff : (unsigned)n);
    put32(&z, zip64 ? 0xffffffffu : (uint32_t)cd.n);
    put32(&z, zip64 ? 0xffffffffu : (uint32_t)cd_off);
    put16(&z, 0);
    free(cd.b);
    return z;
}

static struct buf zip_build(const struct zfile *f, int n)
{
    return zip_build_ex(f, n, 0);
}

/* ---- pickle bytes ---- */
static void p_str(struct buf *p, const char *s)
{
    put8(p, 'X');
    put32(p, (uint32_t)strlen(s));
    puts_(p, s);
}

static void p_int(struct buf *p, int64_t v)
{
    if (v >= 0 && v < 256) {
        put8(p, 'K');
        put8(p, (unsigned)v);
    } else if (v >= 0 && v < 65536) {
        put8(p, 'M');
        put16(p, (unsigned)v);
    } else {
        put8(p, 0x8a);
        put8(p, 8);
        for (int i = 0; i < 8; i++)
            put8(p, (unsigned)((uint64_t)v >> (8 * i)) & 0xff);
    }
}

static void p_global(struct buf *p, const char *mod, const char *name)
{
    put8(p, 'c');
    puts_(p, mod);
    put8(p, '\n');
    puts_(p, name);
    put8(p, '\n');
}

static void p_ints(struct buf *p, int n, const int64_t *v)
{
    put8(p, '(');
    for (int i = 0; i < n; i++)
        p_int(p, v[i]);
    put8(p, 't');
}

/* one state-dict entry: name -> _rebuild_tensor_v2(storage, ...) */
struct ptensor {
    const char *name, *stype, *key;
    int64_t numel, offset;
    int ndim;
    int64_t size[4], stride[4];
    int as_param; /* wrap in _rebuild_parameter */
};

static void p_tensor(struct buf *p, const struct ptensor *t)
{
    p_str(p, t->name);
    if (t->as_param)
        p_global(p, "torch._utils", "_rebuild_parameter");
    p_global(p, "torch._utils", "_rebuild_tensor_v2");
    put8(p, '(');
    put8(p, '(');
    p_str(p, "storage");
    p_global(p, "torch", t->stype);
    p_str(p, t->key);
    p_str(p, "cpu");
    p_int(p, t->numel);
    put8(p, 't');
    put8(p, 'Q');
    p_int(p, t->offset);
    p_ints(p, t->ndim, t->size);
    p_ints(p, t->ndim, t->stride);
    put8(p, 0x89);
    p_global(p, "collections", "OrderedDict");
    put8(p, ')');
    put8(p, 'R');
    put8(p, 't');
    put8(p, 'R');
    if (t->as_param) {
        /* (tensor, requires_grad, hooks) */
        put8(p, 0x88);
        p_global(p, "collections", "OrderedDict");
        put8(p, ')');
        put8(p, 'R');
        put8(p, 0x87); /* TUPLE3 */
        put8(p, 'R');
    }
}

static struct buf pickle_state_dict(const struct ptensor *t, int n, int outer)
{
    struct buf p = {0};
    put8(&p, 0x80);
    put8(&p, 2);
    if (outer) {
        put8(&p, '}');
        put8(&p, '(');
        p_str(&p, "epoch");
        p_int(&p, 7);
        p_str(&p, "state_dict");
    }
    p_global(&p, "collections", "OrderedDict");
    put8(&p, ')');
    put8(&p, 'R');
    put8(&p, 'q');
    put8(&p, 1);
    put8(&p, '(');
    for (int i = 0; i < n; i++)
        p_tensor(&p, &t[i]);
    put8(&p, 'u');
    /* _metadata state on the OrderedDict, as torch writes it */
    put8(&p, '}');
    p_str(&p, "_metadata");
    put8(&p, '}');
    put8(&p, 's');
    put8(&p, 'b');
    if (outer) {
        p_str(&p, "config");
        put8(&p, '}');
        p_str(&p, "lr");
        put8(&p, 'G');
        for (int i = 0; i < 8; i++)
            put8(&p, i == 0 ? 0x3f : 0);
        put8(&p, 's');
        put8(&p, 'u');
    }
    put8(&p, '.');
    return p;
}

static int write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(data, 1, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

/* Captures the last error line so tests can check what was reported. */
static char last_err[512];
static void sink(void *ctx, enum log_level level, const char *line)
{
    (void)ctx;
    if (level == LOG_LEVEL_ERROR)
        snprintf(last_err, sizeof last_err, "%s", line);
}

static char tmpdir[128];

static int open_bytes(const void *data, size_t n, struct ckpt **ck)
{
    char path[256];
    snprintf(path, sizeof path, "%s/t.pt", tmpdir);
    if (write_file(path, data, n))
        return -100;
    last_err[0] = 0;
    return ckpt_open(path, ck);
}

/* expect_fail() opens bytes and checks the error code and message text. */
static void expect_fail(const void *data, size_t n, int want_rc, const char *want_msg,
                        const char *what)
{
    struct ckpt *ck = NULL;
    int rc = open_bytes(data, n, &ck);
    ok(rc == want_rc && !ck && strstr(last_err, want_msg), "%s: %s", what, enc_err_str(rc));
    if (rc != want_rc || !strstr(last_err, want_msg))
        diag("  rc %d, want %d; message: %s (want '%s')", rc, want_rc, last_err, want_msg);
    else
        diag("  %s", strstr(last_err, ": '") ? strstr(last_err, ": '") + 2 : last_err);
    ckpt_close(&ck);
}

static void compare_twins(const char *pt_path, const char *st_path, const char *st_prefix,
                          size_t want_count, const char *what)
{
    struct ckpt *pt = NULL, *st = NULL;
    int rc1 = ckpt_open(pt_path, &pt), rc2 = ckpt_open(st_path, &st);
    ok(rc1 == 0 && rc2 == 0, "%s: both open", what);
    if (rc1 || rc2) {
        ckpt_close(&pt);
        ckpt_close(&st);
        return;
    }
    is_int(ckpt_count(pt), want_count, "%s: tensor count", what);
    /* walk the safetensors twin in file order, keeping the weights */
    size_t j = 0, bad_name = 0, bad_shape = 0, bad_bytes = 0;
    size_t plen = strlen(st_prefix);
    for (size_t i = 0; i < ckpt_count(st); i++) {
        const struct ckpt_tensor *s = ckpt_at(st, i);
        const char *name = s->name;
        if (plen) {
            if (strncmp(name, st_prefix, plen) != 0)
                continue;
            name += plen;
        } else if (!strncmp(name, "case", 4) || !strncmp(name, "common.", 7)) {
            continue;
        }
        const struct ckpt_tensor *p = ckpt_find(pt, name);
        if (!p) {
            bad_name++;
            continue;
        }
        if (j < ckpt_count(pt) && strcmp(ckpt_at(pt, j)->name, name) != 0)
            bad_name++;
        j++;
        if (p->ndim != s->ndim ||
            memcmp(p->shape, s->shape, sizeof p->shape[0] * (size_t)p->ndim) ||
            p->dtype != s->dtype)
            bad_shape++;
        else if (p->nbytes != s->nbytes || memcmp(p->data, s->data, p->nbytes) != 0)
            bad_bytes++;
    }
    is_int(j, want_count, "%s: every weight of the twin is in the .pt", what);
    is_int(bad_name, 0, "%s: names in the same order", what);
    is_int(bad_shape, 0, "%s: same dtypes and shapes", what);
    is_int(bad_bytes, 0, "%s: same bytes", what);
    ckpt_close(&pt);
    ckpt_close(&st);
}

static void test_fixtures(void)
{
    compare_twins(FIXTURE_DIR "/dit_weights.pt", FIXTURE_DIR "/dit_forward.safetensors", "", 135,
                  "dit_weights.pt");

    /* vae_weights.pth: decoder weights are in vae_decode, encoder ones in vae_encode */
    struct ckpt *pth = NULL, *dec = NULL, *enc = NULL;
    ok(ckpt_open(FIXTURE_DIR "/vae_weights.pth", &pth) == 0, "vae_weights.pth opens");
    ok(ckpt_open(FIXTURE_DIR "/vae_decode.safetensors", &dec) == 0 &&
           ckpt_open(FIXTURE_DIR "/vae_encode.safetensors", &enc) == 0,
       "vae twins open");
    if (!pth || !dec || !enc) {
        ckpt_close(&pth);
        ckpt_close(&dec);
        ckpt_close(&enc);
        return;
    }
    is_int(ckpt_count(pth), 194, "vae_weights.pth holds 194 tensors");
    size_t matched = 0, bad = 0;
    struct ckpt *tw[2] = {dec, enc};
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; i < ckpt_count(tw[k]); i++) {
            const struct ckpt_tensor *s = ckpt_at(tw[k], i);
            if (strncmp(s->name, "weights.", 8) != 0)
                continue;
            const struct ckpt_tensor *p = ckpt_find(pth, s->name + 8);
            matched++;
            if (!p || p->nbytes != s->nbytes || p->ndim != s->ndim ||
                memcmp(p->shape, s->shape, sizeof p->shape[0] * (size_t)p->ndim) ||
                memcmp(p->data, s->data, s->nbytes) != 0)
                bad++;
        }
    }
    is_int(matched, 194, "vae twins hold 108 + 86 weights");
    is_int(bad, 0, "every vae weight matches the .pth in shape and bytes");
    ckpt_close(&pth);
    ckpt_close(&dec);
    ckpt_close(&enc);
}

static void test_built(void)
{
    /* storages */
    float w32[6] = {1, 2, 3, 4, 5, 6}; /* [2,3], transposed view [3,2] */
    uint16_t wbf[5], wf16[3] = {0x3c00, 0xc000, 0x0001};
    int32_t wi32[3] = {-1, 7, 1 << 30};
    for (int i = 0; i < 5; i++)
        wbf[i] = f32_to_bf16((float)i + 0.5f);
    struct ptensor pts[] = {
        {"t.w", "FloatStorage", "0", 6, 0, 2, {2, 3}, {3, 1}, 0},
        {"t.wT", "FloatStorage", "0", 6, 0, 2, {3, 2}, {1, 3}, 0},
        {"t.bf", "BFloat16Storage", "1", 5, 2, 1, {3}, {1}, 1},
        {"t.h", "HalfStorage", "2", 3, 0, 1, {3}, {1}, 0},
        {"t.i", "IntStorage", "3", 3, 0, 1, {3}, {1}, 0},
        {"t.scalar", "FloatStorage", "0", 6, 5, 0, {0}, {0}, 0},
    };
    int npts = (int)(sizeof pts / sizeof pts[0]);
    for (int outer = 0; outer < 2; outer++) {
        struct buf pk = pickle_state_dict(pts, npts, outer);
        struct zfile zf[] = {
            {"arch/data.pkl", pk.b, pk.n, 0},      {"arch/data/0", w32, sizeof w32, 0},
            {"arch/data/1", wbf, sizeof wbf, 0},   {"arch/data/2", wf16, sizeof wf16, 0},
            {"arch/data/3", wi32, sizeof wi32, 0}, {"arch/version", "3\n", 2, 0},
        };
        struct buf z = zip_build(zf, 6);
        struct ckpt *ck = NULL;
        int rc = open_bytes(z.b, z.n, &ck);
        ok(rc == 0, "built checkpoint (%s) opens", outer ? "outer state_dict" : "plain");
        if (rc == 0) {
            is_int(ckpt_count(ck), npts, "  all %d tensors, metadata skipped", npts);
            const struct ckpt_tensor *t = ckpt_find(ck, "t.wT");
            float *f = t ? ckpt_read_f32(t) : NULL;
            ok(f && t->ndim == 2 && t->shape[0] == 3 && t->shape[1] == 2 && f[0] == 1 &&
                   f[1] == 4 && f[2] == 2 && f[3] == 5 && f[4] == 3 && f[5] == 6,
               "  transposed tensor copied out row-major");
            free(f);
            t = ckpt_find(ck, "t.w");
            ok(t && t->data != NULL && t->nbytes == 24 && memcmp(t->data, w32, 24) == 0,
               "  contiguous tensor borrows the storage");
            t = ckpt_find(ck, "t.bf");
            f = t ? ckpt_read_f32(t) : NULL;
            ok(f && t->dtype == DTYPE_BF16 && f[0] == 2.5f && f[1] == 3.5f && f[2] == 4.5f,
               "  bf16 storage at offset 2 through _rebuild_parameter");
            free(f);
            t = ckpt_find(ck, "t.h");
            f = t ? ckpt_read_f32(t) : NULL;
            ok(f && t->dtype == DTYPE_F16 && f[0] == 1.0f && f[1] == -2.0f &&
                   f[2] == 5.960464477539063e-08f,
               "  f16 storage");
            free(f);
            t = ckpt_find(ck, "t.i");
            ok(t && t->dtype == DTYPE_I64 && ((const int64_t *)t->data)[0] == -1 &&
                   ((const int64_t *)t->data)[2] == (1 << 30),
               "  int32 storage widened to int64");
            t = ckpt_find(ck, "t.scalar");
            ok(t && t->ndim == 0 && ckpt_numel(t) == 1 && *(const float *)t->data == 6.0f,
               "  0-d tensor at offset 5");
        }
        ckpt_close(&ck);
        free(z.b);
        free(pk.b);
    }
}

static void test_malformed(void)
{
    float w[4] = {1, 2, 3, 4};
    struct ptensor one = {"a", "FloatStorage", "0", 4, 0, 1, {4}, {1}, 0};
    struct buf pk = pickle_state_dict(&one, 1, 0);
    struct zfile good[] = {{"m/data.pkl", pk.b, pk.n, 0}, {"m/data/0", w, sizeof w, 0}};
    struct buf z = zip_build(good, 2);
    struct ckpt *ck = NULL;
    ok(open_bytes(z.b, z.n, &ck) == 0, "the base of the malformed cases opens");
    ckpt_close(&ck);

    /* every truncation fails cleanly */
    size_t fails = 0;
    for (size_t n = 4; n < z.n; n++) {
        if (open_bytes(z.b, n, &ck) != 0)
            fails++;
        ckpt_close(&ck);
    }
    is_int(fails, z.n - 4, "every truncated prefix (%zu lengths) is refused", z.n - 4);

    /* central directory damaged */
    struct buf bad = {0};
    put(&bad, z.b, z.n);
    size_t cd = bad.n - 22 - (46 + strlen("m/data/0")) - (46 + strlen("m/data.pkl"));
    bad.b[cd] ^= 0xff;
    expect_fail(bad.b, bad.n, ENC_EINVAL, "central directory", "bad central directory signature");
    memcpy(bad.b, z.b, z.n);
    memset(bad.b + bad.n - 22 + 16, 0x7f, 4); /* cd offset */
    expect_fail(bad.b, bad.n, ENC_EINVAL, "outside the file",
                "central directory offset past the end");
    memcpy(bad.b, z.b, z.n);
    bad.b[bad.n - 22 + 10] = 200; /* entry count */
    expect_fail(bad.b, bad.n, ENC_EINVAL, "entries", "entry count larger than the directory");
    free(bad.b);

    struct zfile nopkl[] = {{"m/other.pkl", pk.b, pk.n, 0}, {"m/data/0", w, sizeof w, 0}};
    struct buf z2 = zip_build(nopkl, 2);
    expect_fail(z2.b, z2.n, ENC_EINVAL, "no data.pkl", "missing data.pkl");
    free(z2.b);

    struct zfile nodata[] = {{"m/data.pkl", pk.b, pk.n, 0}, {"m/data/9", w, sizeof w, 0}};
    z2 = zip_build(nodata, 2);
    expect_fail(z2.b, z2.n, ENC_EINVAL, "m/data/0", "storage key with no data entry");
    free(z2.b);

    struct zfile shortdata[] = {{"m/data.pkl", pk.b, pk.n, 0}, {"m/data/0", w, 12, 0}};
    z2 = zip_build(shortdata, 2);
    expect_fail(z2.b, z2.n, ENC_EINVAL, "holds 12 bytes", "storage shorter than its numel");
    free(z2.b);

    struct zfile deflated[] = {{"m/data.pkl", pk.b, pk.n, 0}, {"m/data/0", w, sizeof w, 8}};
    z2 = zip_build(deflated, 2);
    expect_fail(z2.b, z2.n, ENC_ENOTSUP, "compressed", "deflated storage entry");
    free(z2.b);

    /* pickle-level failures */
    struct buf p = {0};
    put(&p, pk.b, pk.n);
    p.b[2] = 0x81; /* NEWOBJ where GLOBAL was */
    struct zfile zp[] = {{"m/data.pkl", p.b, p.n, 0}, {"m/data/0", w, sizeof w, 0}};
    z2 = zip_build(zp, 2);
    expect_fail(z2.b, z2.n, ENC_ENOTSUP, "opcode 0x81", "unsupported pickle opcode");
    ok(strstr(last_err, "byte 2") != NULL, "  the message gives the offset");
    free(z2.b);
    free(p.b);

    struct ptensor evil = {"a", "FloatStorage", "0", 4, 0, 1, {4}, {1}, 0};
    struct buf pe = {0};
    put8(&pe, 0x80);
    put8(&pe, 2);
    p_global(&pe, "os", "system");
    (void)evil;
    put8(&pe, '.');
    struct zfile zg[] = {{"m/data.pkl", pe.b, pe.n, 0}, {"m/data/0", w, sizeof w, 0}};
    z2 = zip_build(zg, 2);
    expect_fail(z2.b, z2.n, ENC_ENOTSUP, "'os.system'", "unknown GLOBAL");
    free(z2.b);
    free(pe.b);

    struct ptensor wide = {"a", "FloatStorage", "0", 4, 1, 1, {4}, {1}, 0};
    struct buf pw = pickle_state_dict(&wide, 1, 0);
    struct zfile zw[] = {{"m/data.pkl", pw.b, pw.n, 0}, {"m/data/0", w, sizeof w, 0}};
    z2 = zip_build(zw, 2);
    expect_fail(z2.b, z2.n, ENC_EINVAL, "reaches element 4", "tensor past its storage");
    free(z2.b);
    free(pw.b);

    struct ptensor st = {"a", "ComplexFloatStorage", "0", 4, 0, 1, {4}, {1}, 0};
    struct buf ps = pickle_state_dict(&st, 1, 0);
    struct zfile zs[] = {{"m/data.pkl", ps.b, ps.n, 0}, {"m/data/0", w, sizeof w, 0}};
    z2 = zip_build(zs, 2);
    expect_fail(z2.b, z2.n, ENC_ENOTSUP, "torch.ComplexFloatStorage", "unsupported storage type");
    free(z2.b);
    free(ps.b);

    /* truncated pickles: every prefix of data.pkl */
    fails = 0;
    size_t tries = 0;
    for (size_t n = 0; n < pk.n; n++) {
        struct zfile zt[] = {{"m/data.pkl", pk.b, n, 0}, {"m/data/0", w, sizeof w, 0}};
        z2 = zip_build(zt, 2);
        tries++;
        if (open_bytes(z2.b, z2.n, &ck) != 0)
            fails++;
        ckpt_close(&ck);
        free(z2.b);
    }
    is_int(fails, tries, "every truncated data.pkl (%zu lengths) is refused", tries);

    /* a legacy (non-zip) torch file */
    const uint8_t legacy[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20};
    expect_fail(legacy, sizeof legacy, ENC_ENOTSUP, "legacy", "pre-1.6 torch file");

    free(z.b);
    free(pk.b);
}

/* copy_file() copies src to dst; returns its size or 0. */
static size_t copy_file(const char *src, const char *dst)
{
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    char b[65536];
    size_t n, total = 0;
    while (in && out && (n = fread(b, 1, sizeof b, in)) > 0)
        total += fwrite(b, 1, n, out);
    if (in)
        fclose(in);
    if (out && fclose(out) != 0)
        total = 0;
    return total;
}

/* A tiny deterministic generator for the mutation tests. */
static uint32_t rng_state = 12345;
static uint32_t rnd(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return rng_state >> 8;
}

static void test_hardening(void)
{
    /* zip64 records and extra fields */
    float w[4] = {1, 2, 3, 4};
    uint16_t hb[4] = {0x3f80, 0x4000, 0x4040, 0x4080};
    struct ptensor two[] = {{"a", "FloatStorage", "0", 4, 0, 2, {2, 2}, {2, 1}, 0},
                            {"b", "BFloat16Storage", "1", 4, 1, 1, {3}, {1}, 0}};
    struct buf pk = pickle_state_dict(two, 2, 0);
    struct zfile zf[] = {{"x/data.pkl", pk.b, pk.n, 0},
                         {"x/data/0", w, sizeof w, 0},
                         {"x/data/1", hb, sizeof hb, 0},
                         {"x/byteorder", "little", 6, 0}};
    struct buf z = zip_build_ex(zf, 4, 1);
    struct ckpt *ck = NULL;
    ok(open_bytes(z.b, z.n, &ck) == 0 && ck && ckpt_count(ck) == 2 &&
           memcmp(ckpt_find(ck, "a")->data, w, 16) == 0 &&
           *(const uint16_t *)ckpt_find(ck, "b")->data == 0x4000,
       "zip64 archive with a byteorder entry opens");
    ckpt_close(&ck);
    size_t fails = 0;
    for (size_t n = 4; n < z.n; n++) {
        if (open_bytes(z.b, n, &ck) != 0)
            fails++;
        ckpt_close(&ck);
    }
    is_int(fails, z.n - 4, "every truncated prefix of the zip64 archive is refused");
    free(z.b);
    zf[3].data = "big";
    zf[3].size = 3;
    z = zip_build(zf, 4);
    expect_fail(z.b, z.n, ENC_ENOTSUP, "big-endian", "big-endian byteorder refused");
    free(z.b);

    /* hand-written pickles that must be refused */
    static const struct {
        const char *bytes;
        size_t n;
        int rc;
        const char *msg, *what;
    } pk_bad[] = {
        {"\x80\x02h\x05.", 5, ENC_EINVAL, "never stored", "BINGET of an unset memo slot"},
        {"\x80\x02}}.", 5, ENC_EINVAL, "STOP with 2 values", "two values left at STOP"},
        {"\x80\x02].", 4, ENC_EINVAL, "not a state dict", "a list, not a dict"},
        {"\x80\x02s.", 4, ENC_EINVAL, "underflow", "SETITEM on an empty stack"},
        {"\x80\x02]K\x01K\x02s.", 9, ENC_EINVAL, "SETITEM(S) on a list", "SETITEM on a list"},
        {"\x80\x02}(K\x01u.", 8, ENC_EINVAL, "odd number", "SETITEMS with a key and no value"},
        {"\x80\x02}X\x01\x00\x00\x00"
         "aK\x01\x85Q.",
         15, ENC_ENOTSUP, "persistent id", "persistent id that is not a storage tuple"},
        {"\x80\x02t.", 4, ENC_EINVAL, "no MARK", "TUPLE without a MARK"},
        {"\x80\x02(}K\x01.", 7, ENC_EINVAL, "STOP", "STOP inside a MARK"},
        {"\x80\x02X\xff\xff\xff\x7f", 8, ENC_EINVAL, "past the end", "string longer than data.pkl"},
        {"\x80\x02\x8a\x09\x01\x02\x03\x04\x05\x06\x07\x08\x09.", 14, ENC_ENOTSUP,
         "integer of 9 bytes", "integer wider than int64"},
        {"\x80\x09}.", 4, ENC_ENOTSUP, "protocol 9", "unknown pickle protocol"},
        {"\x80\x02r\x00\x00\x00\x7f", 7, ENC_EINVAL, "underflow", "LONG_BINPUT on an empty stack"},
        {"\x80\x02}r\xff\xff\xff\x7f.", 8, ENC_EINVAL, "too large", "huge memo index"},
        {"\x80\x02"
         "ctorch._utils\n_rebuild_tensor_v2\n)R.",
         37, ENC_EINVAL, "0 arguments", "_rebuild_tensor_v2 without arguments"},
    };
    for (size_t i = 0; i < sizeof pk_bad / sizeof pk_bad[0]; i++) {
        struct zfile zb[] = {{"x/data.pkl", pk_bad[i].bytes, pk_bad[i].n, 0}};
        z = zip_build(zb, 1);
        expect_fail(z.b, z.n, pk_bad[i].rc, pk_bad[i].msg, pk_bad[i].what);
        free(z.b);
    }
    struct zfile zdef[] = {{"x/data.pkl", pk.b, pk.n, 8}, {"x/data/0", w, sizeof w, 0}};
    z = zip_build(zdef, 2);
    expect_fail(z.b, z.n, ENC_ENOTSUP, "data.pkl' is compressed", "deflated data.pkl");
    free(z.b);

    /* mutations: random byte changes in the pickle never crash, and each
     * result either loads or fails with a logged reason */
    struct zfile zm[] = {{"x/data.pkl", NULL, pk.n, 0},
                         {"x/data/0", w, sizeof w, 0},
                         {"x/data/1", hb, sizeof hb, 0}};
    uint8_t *mut = malloc(pk.n);
    size_t loaded = 0, refused = 0, silent = 0;
    for (int round = 0; round < 1500; round++) {
        memcpy(mut, pk.b, pk.n);
        int flips = 1 + (int)(rnd() % 3);
        for (int k = 0; k < flips; k++)
            mut[rnd() % pk.n] = (uint8_t)rnd();
        zm[0].data = mut;
        z = zip_build(zm, 3);
        int rc = open_bytes(z.b, z.n, &ck);
        if (rc == 0)
            loaded++;
        else if (last_err[0])
            refused++;
        else
            silent++;
        ckpt_close(&ck);
        free(z.b);
    }
    ok(silent == 0 && refused > 0, "1500 mutated pickles: %zu loaded, %zu refused with a reason",
       loaded, refused);
    free(mut);
    free(pk.b);

    /* a sample of truncations of the real fixture (a copy shortened in place) */
    char path[256];
    snprintf(path, sizeof path, "%s/t.pt", tmpdir);
    size_t full = copy_file(FIXTURE_DIR "/dit_weights.pt", path);
    fails = 0;
    size_t tries = 0;
    for (size_t len = full; len > 0;) {
        len = len > 300000 ? len - 250007 - (rnd() % 1000) : len > 100 ? len / 3 : len - 1;
        if (truncate(path, (off_t)len) != 0)
            break;
        tries++;
        last_err[0] = 0;
        if (ckpt_open(path, &ck) != 0 && last_err[0])
            fails++;
        ckpt_close(&ck);
    }
    ok(full > 0 && tries > 20 && fails == tries,
       "%zu truncations of dit_weights.pt refused with a reason", tries);
    /* the end of the file cut by a few bytes: the zip directory is gone */
    full = copy_file(FIXTURE_DIR "/dit_weights.pt", path);
    ok(truncate(path, (off_t)(full - 1)) == 0 && ckpt_open(path, &ck) == ENC_EINVAL &&
           strstr(last_err, "end-of-central-directory"),
       "dit_weights.pt minus one byte: %s", last_err);
    ckpt_close(&ck);
}

int main(void)
{
    /* many small files are written: prefer memory-backed /dev/shm */
    const char *base = getenv("TMPDIR");
    if (!base || !*base)
        base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(tmpdir, sizeof tmpdir, "%s/t_torch_pt.XXXXXX", base);
    if (!mkdtemp(tmpdir))
        return 1;
    log_set_sink(sink, NULL);
    test_fixtures();
    test_built();
    test_malformed();
    test_hardening();
    char path[256];
    snprintf(path, sizeof path, "%s/t.pt", tmpdir);
    unlink(path);
    rmdir(tmpdir);
    return done_testing();
}
