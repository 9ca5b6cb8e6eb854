/*
 * t_tokenizer.c - the SentencePiece unigram tokenizer against the fixture
 * (22 strings, ids from sentencepiece 0.1.97 and the pipeline's
 * padding/truncation), against the real sentencepiece on random strings
 * (spm_encode, when installed), the tiny model writer, and bad models.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "tests/tap.h"
#include "worker/engine/checkpoint.h"
#include "worker/models/tokenizer.h"

static int n_truncation_warnings, n_errors;

/* Swallow log lines, counting truncation warnings and errors. */
static void count_lines(void *ctx, enum log_level level, const char *line)
{
    (void)ctx;
    if (level == LOG_LEVEL_WARN && strstr(line, "truncated"))
        n_truncation_warnings++;
    if (level == LOG_LEVEL_ERROR)
        n_errors++;
}

static char *fixture_path(const char *name)
{
    static char buf[4][512];
    static int k;
    char *p = buf[k++ & 3];
    snprintf(p, 512, "%s/%s", FIXTURE_DIR, name);
    return p;
}

static int64_t *read_i64(struct ckpt *ck, const char *name, int64_t *n)
{
    const struct ckpt_tensor *t = ckpt_find(ck, name);
    if (!t)
        return NULL;
    float *f = ckpt_read_f32(t);
    int64_t m = ckpt_numel(t);
    int64_t *out = malloc((size_t)m * sizeof(*out));
    if (t->dtype == DTYPE_I64) {
        memcpy(out, t->data, (size_t)m * sizeof(*out));
    } else {
        for (int64_t i = 0; i < m; i++)
            out[i] = (int64_t)f[i];
    }
    free(f);
    *n = m;
    return out;
}

/* The fixture: raw ids and padded ids for each string. */
static void test_fixture(const struct tokenizer *tk)
{
    struct ckpt *ck = NULL;
    int rc = ckpt_open(fixture_path("tokenizer.safetensors"), &ck);
    is_int(rc, 0, "open tokenizer fixture");
    if (rc < 0)
        return;
    int64_t n_off, n_bytes, n_raw, n_roff, n_ids, n_mask, n_len;
    int64_t *off = read_i64(ck, "input.text_offsets", &n_off);
    int64_t *bytes = read_i64(ck, "input.text_bytes", &n_bytes);
    int64_t *raw = read_i64(ck, "expected.raw_ids", &n_raw);
    int64_t *roff = read_i64(ck, "expected.raw_offsets", &n_roff);
    int64_t *want_ids = read_i64(ck, "expected.input_ids", &n_ids);
    int64_t *want_mask = read_i64(ck, "expected.attention_mask", &n_mask);
    int64_t *want_len = read_i64(ck, "expected.lengths", &n_len);
    ok(off && bytes && raw && roff && want_ids && want_mask && want_len, "fixture tensors read");
    int n_str = (int)n_off - 1;
    int max_length = (int)(n_ids / n_str);
    is_int(n_str, 22, "22 strings");
    is_int(max_length, 48, "max_length 48");

    int raw_bad = 0, pad_bad = 0, n_long = 0;
    int64_t ids[512], mask[512];
    for (int s = 0; s < n_str; s++) {
        size_t len = (size_t)(off[s + 1] - off[s]);
        char *text = malloc(len + 1);
        for (size_t i = 0; i < len; i++)
            text[i] = (char)bytes[off[s] + (int64_t)i];
        text[len] = '\0';

        int32_t *got = NULL;
        size_t n = 0;
        tokenizer_encode(tk, text, len, &got, &n);
        int64_t want_n = roff[s + 1] - roff[s];
        n_long += want_n > max_length - 1;
        int same = (int64_t)n == want_n;
        for (size_t i = 0; same && i < n; i++)
            same = got[i] == raw[roff[s] + (int64_t)i];
        if (!same) {
            raw_bad++;
            diag("string %d: %zu ids, want %lld", s, n, (long long)want_n);
        }
        free(got);

        int real = tokenizer_encode_padded(tk, text, len, max_length, ids, mask);
        same = real == want_len[s];
        for (int i = 0; same && i < max_length; i++)
            same =
                ids[i] == want_ids[s * max_length + i] && mask[i] == want_mask[s * max_length + i];
        if (!same) {
            pad_bad++;
            diag("string %d: padded ids differ (real %d, want %lld)", s, real,
                 (long long)want_len[s]);
        }
        free(text);
    }
    is_int(raw_bad, 0, "sentencepiece ids of all 22 strings equal the fixture");
    is_int(pad_bad, 0, "padded/truncated ids, masks and lengths equal the fixture");
    ok(n_long >= 1, "the fixture has over-long strings (%d)", n_long);
    is_int(n_truncation_warnings, n_long, "each over-long string logged its truncation");
    free(off);
    free(bytes);
    free(raw);
    free(roff);
    free(want_ids);
    free(want_mask);
    free(want_len);
    ckpt_close(&ck);
}

/* A small deterministic generator of awkward strings. */
static uint64_t rng_state = 12345;
static uint32_t rnd(uint32_t n)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33) % n;
}

static const char *const fragments[] = {
    " ",
    "  ",
    "\t",
    "a",
    "b",
    "the",
    "ing",
    "\xe2\x96\x81",
    "\xe3\x80\x80",
    "\xef\xbc\x8c",
    "\xe3\x80\x82",
    "\xef\xbc\xa6",
    "\xef\xbd\x94",
    "\xef\xbc\x91",
    "\xc3\xa9",
    "e\xcc\x81",
    "\xef\xac\x81",
    "\xe2\x91\xa0",
    "\xe3\x8e\x8f",
    "\xf0\x9f\x98\x80",
    "\xf0\xa0\x80\x80",
    "\xe8\x89\xb2",
    "\xe7\xbb\x86\xe8\x8a\x82",
    "\xe2\x80\x8b",
    "\xef\xbe\x8a",
    "\xef\xbe\x9e",
    "\xe3\x81\x93",
    "\xec\x84\xb8",
    "A",
    "Z",
    ".",
    "!",
    "?",
    "-",
    "0",
    "9",
    "\xe2\x80\x9c",
    "\xe2\x80\x94",
    "\xe2\x80\xa6",
    "\xc2\xa0",
    "<unk>",
    "</s>",
    "<0x41>",
    "\xef\xbb\xbf",
    "\xe2\x85\xab",
    "\xc2\xbd",
    "\xcc\x81",
    "\xef\xbf\xbf",
    "\x80",
    "\xff",
    "\xc3",
    "\xe2\x96",
    "\xed\xa0\x80",
    "quality",
    "a man is talking",
    "Hello",
    "World",
};

/* Compare with the real sentencepiece (spm_encode) on random strings. */
static void test_against_spm(const char *model, const char *what, const char *dir)
{
    struct tokenizer *tk = NULL;
    if (tokenizer_open(model, &tk) < 0) {
        ok(0, "load %s", what);
        return;
    }
    char in_path[600], out_path[600], cmd[2048];
    snprintf(in_path, sizeof(in_path), "%s/in.txt", dir);
    snprintf(out_path, sizeof(out_path), "%s/out.txt", dir);
    enum { N = 600 };
    static char lines[N][400];
    FILE *f = fopen(in_path, "w");
    for (int i = 0; i < N; i++) {
        lines[i][0] = '\0';
        size_t len = 0;
        int parts = (int)rnd(24);
        for (int p = 0; p < parts; p++) {
            const char *frag = fragments[rnd(sizeof(fragments) / sizeof(fragments[0]))];
            size_t fl = strlen(frag);
            if (len + fl >= sizeof(lines[i]))
                break;
            memcpy(lines[i] + len, frag, fl + 1);
            len += fl;
        }
        fprintf(f, "%s\n", lines[i]);
    }
    fclose(f);
    snprintf(cmd, sizeof(cmd), "spm_encode --model='%s' --output_format=id < '%s' > '%s'", model,
             in_path, out_path);
    if (system(cmd) != 0) {
        ok(0, "spm_encode ran on %s", what);
        tokenizer_destroy(&tk);
        return;
    }
    f = fopen(out_path, "r");
    int bad = 0, lines_read = 0;
    char want[8192];
    for (int i = 0; i < N && f && fgets(want, sizeof(want), f); i++, lines_read++) {
        want[strcspn(want, "\n")] = '\0';
        int32_t *ids = NULL;
        size_t n = 0;
        tokenizer_encode(tk, lines[i], strlen(lines[i]), &ids, &n);
        char got[8192];
        size_t gl = 0;
        got[0] = '\0';
        for (size_t k = 0; k < n && gl < sizeof(got) - 16; k++)
            gl += (size_t)snprintf(got + gl, sizeof(got) - gl, "%s%d", k ? " " : "", ids[k]);
        if (strcmp(got, want) != 0) {
            if (bad < 3)
                diag("%s line %d: got '%s', spm '%s'", what, i, got, want);
            bad++;
        }
        free(ids);
    }
    if (f)
        fclose(f);
    is_int(lines_read, N, "spm_encode answered every line (%s)", what);
    is_int(bad, 0, "%d random strings tokenised as sentencepiece does (%s)", N, what);
    tokenizer_destroy(&tk);
}

static void test_tiny(const char *dir)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/tiny.model", dir);
    is_int(tokenizer_write_tiny(path), 0, "write the tiny model");
    struct tokenizer *tk = NULL;
    is_int(tokenizer_open(path, &tk), 0, "tiny model loads");
    if (!tk)
        return;
    is_int(tokenizer_vocab_size(tk), tokenizer_tiny_vocab_size(), "tiny vocab size");
    ok(tokenizer_vocab_size(tk) > 256 + 3 && tokenizer_vocab_size(tk) < 1000,
       "a few hundred pieces (%d)", tokenizer_vocab_size(tk));
    is_int(tokenizer_pad_id(tk), 0, "<pad> = 0");
    is_int(tokenizer_eos_id(tk), 1, "</s> = 1");
    is_int(tokenizer_unk_id(tk), 2, "<unk> = 2");
    is_str(tokenizer_piece(tk, 3), "<0x00>", "byte pieces start at 3");
    is_str(tokenizer_piece(tk, 258), "<0xFF>", "byte pieces end at 258");

    const char *text = "The man is singing with high quality";
    const char *want[] = {"\xe2\x96\x81",
                          "T",
                          "he",
                          "\xe2\x96\x81man",
                          "\xe2\x96\x81is",
                          "\xe2\x96\x81singing",
                          "\xe2\x96\x81with",
                          "\xe2\x96\x81high",
                          "\xe2\x96\x81quality"};
    int32_t *ids = NULL;
    size_t n = 0;
    tokenizer_encode(tk, text, strlen(text), &ids, &n);
    int same = n == sizeof(want) / sizeof(want[0]);
    for (size_t i = 0; same && i < n; i++)
        same = strcmp(tokenizer_piece(tk, ids[i]), want[i]) == 0;
    ok(same, "tiny model splits a prompt into its words");
    free(ids);
    tokenizer_encode(tk, "\xe2\x82\xac", 3, &ids, &n);
    ok(n == 4 && ids[1] == 3 + 0xE2 && ids[2] == 3 + 0x82 && ids[3] == 3 + 0xAC,
       "tiny model falls back to bytes for the euro sign");
    free(ids);
    tokenizer_destroy(&tk);
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(data, 1, n, f);
        fclose(f);
    }
}

static void test_bad_models(const char *dir)
{
    char path[600];
    struct tokenizer *tk = NULL;
    snprintf(path, sizeof(path), "%s/bad.model", dir);

    int errors0 = n_errors;
    is_int(tokenizer_open(path, &tk), ENC_EIO, "a missing file is an i/o error");
    write_file(path, "", 0);
    is_int(tokenizer_open(path, &tk), ENC_EINVAL, "an empty file is refused");
    const char *text = "this is not a sentencepiece model at all\n";
    write_file(path, text, strlen(text));
    is_int(tokenizer_open(path, &tk), ENC_EINVAL, "a text file is refused");
    ok(tk == NULL, "no tokenizer on failure");

    /* The fixture model cut in the middle of its charsmap. */
    FILE *f = fopen(fixture_path("tokenizer_spm.model"), "rb");
    static unsigned char buf[300000];
    size_t n = f ? fread(buf, 1, sizeof(buf), f) : 0;
    if (f)
        fclose(f);
    ok(n > 1000, "read the fixture model (%zu bytes)", n);
    write_file(path, buf, n / 2);
    is_int(tokenizer_open(path, &tk), ENC_EINVAL, "a truncated model is refused");
    write_file(path, buf, n - 3);
    is_int(tokenizer_open(path, &tk), ENC_EINVAL, "a model missing its last bytes is refused");

    /* Hand-encoded ModelProto: pieces { piece "<unk>" type UNKNOWN },
     * trainer_spec { model_type T }. */
    unsigned char m[] = {0x0a, 0x09, 0x0a, 0x05, '<',  'u',  'n', 'k',
                         '>',  0x18, 0x02, 0x12, 0x02, 0x18, 0x02};
    const char *names[] = {"unigram", "bpe", "word", "char"};
    for (int type = 2; type <= 4; type++) {
        m[14] = (unsigned char)type;
        write_file(path, m, sizeof(m));
        is_int(tokenizer_open(path, &tk), ENC_ENOTSUP, "a %s model is refused", names[type - 1]);
    }
    m[14] = 1;
    write_file(path, m, sizeof(m));
    is_int(tokenizer_open(path, &tk), 0, "the same model as unigram loads");
    if (tk) {
        int32_t *ids = NULL;
        size_t k = 0;
        tokenizer_encode(tk, "ab c", 4, &ids, &k);
        ok(k == 1 && ids[0] == 0, "without byte fallback a run of unknowns is one <unk>");
        free(ids);
        int64_t pids[4];
        is_int(tokenizer_encode_padded(tk, "ab", 2, 4, pids, NULL), ENC_EINVAL,
               "padding needs eos and pad ids");
        tokenizer_destroy(&tk);
    }
    /* No unknown piece. */
    unsigned char nounk[] = {0x0a, 0x05, 0x0a, 0x01, 'a', 0x18, 0x01};
    write_file(path, nounk, sizeof(nounk));
    is_int(tokenizer_open(path, &tk), ENC_EINVAL, "a model without <unk> is refused");
    /* A byte piece although byte_fallback is off. */
    unsigned char byte[] = {0x0a, 0x09, 0x0a, 0x05, '<', 'u', 'n', 'k', '>', 0x18, 0x02, 0x0a,
                            0x0a, 0x0a, 0x06, '<',  '0', 'x', '4', '1', '>', 0x18, 0x06};
    write_file(path, byte, sizeof(byte));
    is_int(tokenizer_open(path, &tk), ENC_EINVAL, "a byte piece without byte_fallback is refused");
    is_int(n_errors - errors0, 11, "each refusal logged one error");
    unlink(path);
}

static void test_edges(const struct tokenizer *tk)
{
    int32_t *ids = NULL;
    size_t n = 99;
    int64_t pids[8], mask[8];
    tokenizer_encode(tk, "", 0, &ids, &n);
    ok(n == 0 && ids == NULL, "empty text has no ids");
    tokenizer_encode(tk, "  \t ", 4, &ids, &n);
    ok(n == 0, "blank text has no ids");
    free(ids);
    is_int(tokenizer_encode_padded(tk, "", 0, 8, pids, mask), 1, "empty text: just </s>");
    ok(pids[0] == 1 && pids[1] == 0 && pids[7] == 0 && mask[0] == 1 && mask[1] == 0,
       "</s> then <pad>");
    is_int(tokenizer_encode_padded(tk, "a", 1, 0, pids, mask), ENC_EINVAL, "max_length 0");
    size_t nl = 0;
    char *norm = tokenizer_normalize(tk, "  a  b ", 7, &nl);
    is_str(norm,
           "\xe2\x96\x81"
           "a"
           "\xe2\x96\x81"
           "b",
           "normalised spaces");
    free(norm);
    ok(tokenizer_piece(tk, -1) == NULL && tokenizer_piece(tk, 640) == NULL,
       "piece of a bad id is NULL");
}

static void bench(const struct tokenizer *tk)
{
    const char *neg = "\xe8\x89\xb2\xe8\xb0\x83\xe8\x89\xb3\xe4\xb8\xbd\xef\xbc\x8c"
                      "A young woman with long black hair is talking to the camera. ";
    char text[8192];
    size_t len = 0, one = strlen(neg);
    while (len + one < sizeof(text)) {
        memcpy(text + len, neg, one);
        len += one;
    }
    struct timespec t0, t1;
    size_t tokens = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int r = 0; r < 50; r++) {
        int32_t *ids = NULL;
        size_t n = 0;
        tokenizer_encode(tk, text, len, &ids, &n);
        tokens += n;
        free(ids);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    diag("bench: %zu tokens in %.3f s = %.0f tokens/s (%.1f MB/s of text)", tokens, s,
         (double)tokens / s, 50.0 * (double)len / s / 1e6);
}

int main(void)
{
    struct tokenizer *tk = NULL;
    char dir[] = "/tmp/t_tokenizer.XXXXXX";
    log_set_level(LOG_LEVEL_WARN);
    log_set_sink(count_lines, NULL);
    if (!mkdtemp(dir))
        return 1;

    int rc = tokenizer_open(fixture_path("tokenizer_spm.model"), &tk);
    is_int(rc, 0, "load the fixture model");
    if (rc < 0)
        return done_testing();
    is_int(tokenizer_vocab_size(tk), 640, "640 pieces");
    is_int(tokenizer_eos_id(tk), 1, "eos id 1");
    is_int(tokenizer_pad_id(tk), 0, "pad id 0");
    is_int(tokenizer_unk_id(tk), 2, "unk id 2");

    test_fixture(tk);
    test_edges(tk);
    test_tiny(dir);
    test_bad_models(dir);
    if (system("command -v spm_encode >/dev/null 2>&1") == 0) {
        char tiny[600];
        snprintf(tiny, sizeof(tiny), "%s/tiny.model", dir);
        test_against_spm(fixture_path("tokenizer_spm.model"), "fixture model", dir);
        test_against_spm(tiny, "tiny model", dir);
    } else {
        skip(4, "spm_encode (Debian package sentencepiece) is not installed");
    }
    bench(tk);
    tokenizer_destroy(&tk);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        diag("could not remove %s", dir);
    return done_testing();
}
