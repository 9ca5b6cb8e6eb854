/*
 * parity_tokenizer.c - `encore parity` for "tokenizer" fixtures: every test
 * string through the SentencePiece tokenizer, raw ids (sentencepiece's
 * answer) and the pipeline's padded/truncated ids, mask and length.
 *
 * The model is the fixture's config "model_file" beside the fixture, or
 * --weights FILE. Ids must be equal, no tolerance. Strings listed in
 * hf_fast_may_differ are checked like the others (encore follows
 * sentencepiece; see worker/models/tokenizer.h) and marked in the label.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/json.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "parity.h"
#include "worker/models/tokenizer.h"

/* read_ints() reads an integer fixture tensor as int64 (caller frees). */
static int64_t *read_ints(struct parity_run *r, const char *name, int64_t *n)
{
    float *f = parity_read_f32(r, name, n);
    if (!f)
        return NULL;
    const struct ckpt_tensor *t = ckpt_find(r->fx, name);
    int64_t *v = xmalloc((size_t)*n * sizeof(*v) + 1);
    for (int64_t i = 0; i < *n; i++)
        v[i] = t->dtype == DTYPE_I64 ? ((const int64_t *)t->data)[i] : (int64_t)f[i];
    free(f);
    return v;
}

/* model_path() is --weights, or config.model_file in the fixture's folder. */
static char *model_path(struct parity_run *r)
{
    if (r->weights_path)
        return xstrdup(r->weights_path);
    const char *cfg = ckpt_meta(r->fx, "config");
    struct json *j = NULL;
    const char *file = "tokenizer_spm.model";
    if (cfg && json_parse(cfg, strlen(cfg), &j, NULL) == 0 && json_str(json_get(j, "model_file")))
        file = json_str(json_get(j, "model_file"));
    const char *slash = strrchr(r->path, '/');
    int dir_len = slash ? (int)(slash - r->path + 1) : 0;
    char *p = xasprintf("%.*s%s", dir_len, r->path, file);
    json_free(&j);
    return p;
}

static int may_differ(const struct json *list, int s)
{
    for (size_t i = 0; i < json_len(list); i++) {
        int64_t v;
        if (json_int(json_at(list, i), &v) == 0 && v == s)
            return 1;
    }
    return 0;
}

int parity_tokenizer(struct parity_run *r)
{
    struct tokenizer *tk = NULL;
    struct json *hf = NULL;
    int64_t n_off, n_bytes, n_raw, n_roff, n_ids, n_mask, n_len;
    int64_t *off = NULL, *bytes = NULL, *raw = NULL, *roff = NULL, *want_ids = NULL,
            *want_mask = NULL, *want_len = NULL, *ids = NULL, *mask = NULL;
    char *path = model_path(r);
    int rc = tokenizer_open(path, &tk);
    if (rc < 0)
        goto out;
    off = read_ints(r, "input.text_offsets", &n_off);
    bytes = read_ints(r, "input.text_bytes", &n_bytes);
    raw = read_ints(r, "expected.raw_ids", &n_raw);
    roff = read_ints(r, "expected.raw_offsets", &n_roff);
    want_ids = read_ints(r, "expected.input_ids", &n_ids);
    want_mask = read_ints(r, "expected.attention_mask", &n_mask);
    want_len = read_ints(r, "expected.lengths", &n_len);
    if (!off || !bytes || !raw || !roff || !want_ids || !want_mask || !want_len) {
        rc = ENC_EINVAL;
        goto out;
    }
    int64_t n_str = n_off - 1;
    if (n_str < 1 || n_roff != n_off || n_len != n_str || n_ids % n_str != 0 || n_mask != n_ids ||
        off[n_str] > n_bytes || roff[n_str] > n_raw) {
        rc = log_error_rc(ENC_EINVAL, "'%s': tokenizer fixture tensors do not agree in size",
                          r->path);
        goto out;
    }
    int max_length = (int)(n_ids / n_str);
    const char *hf_meta = ckpt_meta(r->fx, "hf_fast_may_differ");
    if (hf_meta)
        json_parse(hf_meta, strlen(hf_meta), &hf, NULL);
    printf("  model '%s': %d pieces, max_length %d, %lld strings\n", path, tokenizer_vocab_size(tk),
           max_length, (long long)n_str);

    ids = xmalloc((size_t)max_length * sizeof(*ids));
    mask = xmalloc((size_t)max_length * sizeof(*mask));
    for (int64_t s = 0; s < n_str; s++) {
        if (off[s] < 0 || off[s] > off[s + 1] || roff[s] < 0 || roff[s] > roff[s + 1]) {
            rc = log_error_rc(ENC_EINVAL, "'%s': bad offsets for string %lld", r->path,
                              (long long)s);
            goto out;
        }
        size_t len = (size_t)(off[s + 1] - off[s]);
        char *text = xmalloc(len + 1);
        for (size_t i = 0; i < len; i++)
            text[i] = (char)bytes[off[s] + (int64_t)i];
        text[len] = '\0';
        const char *mark = may_differ(hf, (int)s) ? " (hf fast may differ)" : "";
        char label[96];

        int32_t *got32 = NULL;
        size_t n = 0;
        tokenizer_encode(tk, text, len, &got32, &n);
        int64_t want_n = roff[s + 1] - roff[s];
        int64_t *got = xmalloc((n + 1) * sizeof(*got));
        for (size_t i = 0; i < n; i++)
            got[i] = got32[i];
        snprintf(label, sizeof(label), "string %lld raw ids%s", (long long)s, mark);
        if ((int64_t)n != want_n) {
            int64_t gn = (int64_t)n, wn = want_n;
            snprintf(label, sizeof(label), "string %lld raw id count%s", (long long)s, mark);
            parity_check_ints(r, label, &gn, &wn, 1);
        } else {
            parity_check_ints(r, label, got, raw + roff[s], want_n);
        }
        free(got32);
        free(got);

        int real = tokenizer_encode_padded(tk, text, len, max_length, ids, mask);
        free(text);
        if (real < 0) {
            rc = real;
            goto out;
        }
        int64_t real64 = real;
        snprintf(label, sizeof(label), "string %lld input_ids%s", (long long)s, mark);
        parity_check_ints(r, label, ids, want_ids + s * max_length, max_length);
        snprintf(label, sizeof(label), "string %lld attention_mask", (long long)s);
        parity_check_ints(r, label, mask, want_mask + s * max_length, max_length);
        snprintf(label, sizeof(label), "string %lld length", (long long)s);
        parity_check_ints(r, label, &real64, want_len + s, 1);
    }
    rc = 0;
out:
    free(off);
    free(bytes);
    free(raw);
    free(roff);
    free(want_ids);
    free(want_mask);
    free(want_len);
    free(ids);
    free(mask);
    json_free(&hf);
    tokenizer_destroy(&tk);
    free(path);
    return rc;
}
