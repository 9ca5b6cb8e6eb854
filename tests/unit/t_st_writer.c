/*
 * t_st_writer.c - the safetensors writer, checked through the reader.
 *
 * Round trip of every dtype with metadata (escapes included), f32 -> bf16
 * and f32 -> f16 conversion (all 65536 half values, ties to even), the
 * layout (no gaps, natural alignment, header order = insertion order),
 * atomic replacement under an open mapping, and the refusals.
 */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/bf16.h"
#include "common/err.h"
#include "common/log.h"
#include "tests/tap.h"
#include "worker/engine/checkpoint.h"
#include "worker/engine/st_writer.h"

static void quiet(void *ctx, enum log_level level, const char *line)
{
    (void)ctx;
    (void)level;
    (void)line;
}

static char dir[64];

static int count_files(void)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    if (d)
        closedir(d);
    return n;
}

int main(void)
{
    char path[128];
    snprintf(dir, sizeof dir, "/tmp/t_st_writer.XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    snprintf(path, sizeof path, "%s/out.safetensors", dir);
    log_set_sink(quiet, NULL);

    /* all dtypes, odd sizes so a naive layout would misalign */
    float f3[3] = {1.5f, -2.25f, 1e-3f};
    uint16_t b1[1] = {0x3f80};
    int64_t i5[5] = {-1, 0, 1, INT64_MAX, INT64_MIN};
    double d2[2] = {0.1, -3e300};
    float conv[4] = {1.0f, 1.00390625f, 3.14159265f, -65504.0f};
    struct st_writer *w = st_writer_new();
    st_writer_meta(w, "kind", "latents");
    st_writer_meta(w, "note", "quote \" backslash \\ newline \n tab \t é");
    st_writer_meta(w, "kind", "latents2"); /* replaces */
    ok(st_writer_add(w, "a.f32", DTYPE_F32, 1, (int64_t[]){3}, f3) == 0, "add f32");
    ok(st_writer_add(w, "b.bf16", DTYPE_BF16, 1, (int64_t[]){1}, b1) == 0, "add bf16");
    ok(st_writer_add(w, "c.i64", DTYPE_I64, 2, (int64_t[]){5, 1}, i5) == 0, "add i64");
    ok(st_writer_add(w, "d.f64", DTYPE_F64, 0, NULL, d2) == 0, "add f64 scalar");
    ok(st_writer_add_f32_as(w, "e.as_bf16", DTYPE_BF16, 1, (int64_t[]){4}, conv) == 0,
       "add f32 as bf16");
    ok(st_writer_add_f32_as(w, "f.as_f16", DTYPE_F16, 2, (int64_t[]){2, 2}, conv) == 0,
       "add f32 as f16");
    ok(st_writer_add(w, "g.empty", DTYPE_F32, 2, (int64_t[]){0, 7}, NULL) == 0, "add empty");
    ok(st_writer_add(w, "a.f32", DTYPE_F32, 1, (int64_t[]){3}, f3) == ENC_EINVAL,
       "duplicate name refused");
    ok(st_writer_add(w, "x", DTYPE_F32, 1, (int64_t[]){-1}, f3) == ENC_EINVAL,
       "negative size refused");
    ok(st_writer_add(w, "__metadata__", DTYPE_F32, 1, (int64_t[]){1}, f3) == ENC_EINVAL,
       "reserved name refused");
    ok(st_writer_add_f32_as(w, "y", DTYPE_I64, 1, (int64_t[]){1}, f3) == ENC_EINVAL,
       "f32 to i64 refused");
    is_int(st_writer_write(w, path), 0, "write");
    st_writer_destroy(&w);
    ok(w == NULL, "destroy NULLs");

    struct ckpt *ck = NULL;
    ok(ckpt_open(path, &ck) == 0, "reader opens the written file");
    if (!ck)
        return done_testing();
    is_int(ckpt_count(ck), 7, "7 tensors");
    is_str(ckpt_meta(ck, "kind"), "latents2", "metadata replaced value");
    is_str(ckpt_meta(ck, "note"), "quote \" backslash \\ newline \n tab \t é",
           "metadata with escapes round-trips");
    const char *order[] = {"a.f32", "b.bf16", "c.i64", "d.f64", "e.as_bf16", "f.as_f16", "g.empty"};
    int in_order = 1, aligned = 1;
    size_t total = 0;
    for (size_t i = 0; i < 7; i++) {
        const struct ckpt_tensor *t = ckpt_at(ck, i);
        in_order &= strcmp(t->name, order[i]) == 0;
        size_t es = t->dtype == DTYPE_F32                            ? 4
                    : t->dtype == DTYPE_I64 || t->dtype == DTYPE_F64 ? 8
                                                                     : 2;
        aligned &= ((uintptr_t)t->data % es) == 0;
        total += t->nbytes;
    }
    ok(in_order, "file order is insertion order");
    ok(aligned, "every tensor naturally aligned in the mapping");
    struct stat st;
    stat(path, &st);
    FILE *fp = fopen(path, "rb");
    uint8_t l8[8] = {0};
    if (fp) {
        if (fread(l8, 1, 8, fp) != 8)
            memset(l8, 0, 8);
        fclose(fp);
    }
    uint64_t hn = 0;
    for (int i = 7; i >= 0; i--)
        hn = (hn << 8) | l8[i];
    ok(hn % 8 == 0 && (uint64_t)st.st_size == 8 + hn + total,
       "header padded to 8, data block has no gaps (%llu + %zu bytes)", (unsigned long long)hn,
       total);

    const struct ckpt_tensor *t = ckpt_find(ck, "a.f32");
    ok(t && t->ndim == 1 && t->shape[0] == 3 && memcmp(t->data, f3, 12) == 0, "f32 bytes");
    t = ckpt_find(ck, "c.i64");
    ok(t && t->shape[0] == 5 && t->shape[1] == 1 && memcmp(t->data, i5, 40) == 0, "i64 bytes");
    t = ckpt_find(ck, "d.f64");
    ok(t && t->ndim == 0 && memcmp(t->data, d2, 8) == 0, "f64 scalar");
    t = ckpt_find(ck, "b.bf16");
    ok(t && t->dtype == DTYPE_BF16 && memcmp(t->data, b1, 2) == 0, "bf16 bytes");
    t = ckpt_find(ck, "e.as_bf16");
    const uint16_t *h = t ? t->data : NULL;
    ok(h && h[0] == 0x3f80 && h[1] == 0x3f80 && h[2] == f32_to_bf16(3.14159265f) &&
           h[3] == f32_to_bf16(-65504.0f),
       "f32 -> bf16 rounds to nearest even");
    t = ckpt_find(ck, "f.as_f16");
    h = t ? t->data : NULL;
    ok(h && t->dtype == DTYPE_F16 && h[0] == 0x3c00 && h[1] == 0x3c04 && h[2] == 0x4248 &&
           h[3] == 0xfbff,
       "f32 -> f16 (1, 1.0039, pi, -65504)");
    t = ckpt_find(ck, "g.empty");
    ok(t && ckpt_numel(t) == 0 && t->nbytes == 0, "empty tensor");

    /* atomic replace: the open mapping keeps the old bytes, a new open sees the new */
    w = st_writer_new();
    float nf[2] = {7, 8};
    st_writer_add(w, "a.f32", DTYPE_F32, 1, (int64_t[]){2}, nf);
    is_int(st_writer_write(w, path), 0, "rewrite in place");
    st_writer_destroy(&w);
    t = ckpt_find(ck, "a.f32");
    ok(t && memcmp(t->data, f3, 12) == 0, "the old mapping is untouched by the rename");
    ckpt_close(&ck);
    ok(ckpt_open(path, &ck) == 0 && ckpt_count(ck) == 1 && ckpt_meta(ck, "kind") == NULL &&
           memcmp(ckpt_find(ck, "a.f32")->data, nf, 8) == 0,
       "reopening sees only the new file");
    ckpt_close(&ck);
    is_int(count_files(), 1, "no temporary file left beside it");

    /* exhaustive f16: every finite half value survives f32 -> f16; ties go to even */
    float *all = malloc(sizeof(float) * 65536 * 3);
    size_t n = 0;
    for (uint32_t v = 0; v < 65536; v++)
        all[n++] = f16_to_f32((uint16_t)v);
    size_t ties0 = n;
    for (uint32_t v = 0; v < 0x7bff; v++) { /* positive finite, mid to v+1 */
        float lo = f16_to_f32((uint16_t)v), hi = f16_to_f32((uint16_t)(v + 1));
        all[n++] = lo + (hi - lo) / 2;
    }
    size_t ties1 = n;
    all[n++] = 65519.99f;       /* rounds down to 65504 */
    all[n++] = 65520.0f;        /* rounds to inf */
    all[n++] = 2.98023224e-08f; /* 2^-25: tie, to 0 */
    all[n++] = 2.98023259e-08f; /* just above: smallest subnormal */
    w = st_writer_new();
    st_writer_add_f32_as(w, "h", DTYPE_F16, 1, (int64_t[]){(int64_t)n}, all);
    is_int(st_writer_write(w, path), 0, "write %zu f16 conversions", n);
    st_writer_destroy(&w);
    ckpt_open(path, &ck);
    h = ck ? ckpt_find(ck, "h")->data : NULL;
    size_t bad_id = 0, bad_tie = 0;
    for (uint32_t v = 0; h && v < 65536; v++) {
        int is_nan = (v & 0x7c00) == 0x7c00 && (v & 0x3ff);
        if (is_nan ? (h[v] & 0x7c00) != 0x7c00 || !(h[v] & 0x3ff) : h[v] != v)
            bad_id++;
    }
    for (size_t k = ties0; h && k < ties1; k++) {
        uint16_t v = (uint16_t)(k - ties0);
        uint16_t want = (v & 1) ? (uint16_t)(v + 1) : v;
        if (h[k] != want)
            bad_tie++;
    }
    is_int(bad_id, 0, "all 65536 half values map to themselves (NaN stays NaN)");
    is_int(bad_tie, 0, "all %zu midpoints round to the even neighbour", ties1 - ties0);
    ok(h && h[ties1] == 0x7bff && h[ties1 + 1] == 0x7c00 && h[ties1 + 2] == 0 && h[ties1 + 3] == 1,
       "overflow and underflow edges");
    ckpt_close(&ck);
    free(all);

    w = st_writer_new();
    char bad_path[160];
    snprintf(bad_path, sizeof bad_path, "%s/no/such/dir/x.safetensors", dir);
    is_int(st_writer_write(w, bad_path), ENC_EIO, "unwritable path: ENC_EIO");
    st_writer_destroy(&w);
    st_writer_destroy(&w); /* accepts NULL */

    unlink(path);
    rmdir(dir);
    return done_testing();
}
