/*
 * parity_umt5_encoder.c - `encore parity` for "umt5_encoder" fixtures: each
 * prompt of input.input_ids (its first expected.seq_lens[i] tokens, the real
 * ones) through the umT5 encoder, compared with expected.context_i, plus the
 * relative position buckets.
 *
 * Weights: the fixture's weights.* tensors, or --weights FILE (a real
 * umT5 checkpoint: keys without prefix). Tolerance (README-encoders):
 * max |got - ref| <= 1e-4; the outputs are RMS-normalised, O(1).
 *
 * When the fixture's config lists its prompts and the tokenizer model
 * (tokenizer_spm.model) lies beside it, the prompts are also tokenised and
 * the ids compared with input.input_ids: text to context end to end.
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
#include "worker/models/umt5.h"

#define ATOL 1e-4

/* check_prompts() tokenises config.prompts and compares with ids[n_prompts]
 * [width]; silent when the fixture has no prompts or no tokenizer model. */
static void check_prompts(struct parity_run *r, const float *ids, int64_t n_prompts, int64_t width)
{
    const char *cfg = ckpt_meta(r->fx, "config");
    struct json *j = NULL;
    struct tokenizer *tk = NULL;
    if (!cfg || json_parse(cfg, strlen(cfg), &j, NULL) < 0)
        return;
    const struct json *prompts = json_get(j, "prompts");
    const char *slash = strrchr(r->path, '/');
    int dir_len = slash ? (int)(slash - r->path + 1) : 0;
    char *model = xasprintf("%.*stokenizer_spm.model", dir_len, r->path);
    FILE *f = fopen(model, "rb");
    if (f)
        fclose(f);
    if (f && (int64_t)json_len(prompts) == n_prompts && tokenizer_open(model, &tk) == 0) {
        int64_t *got = xmalloc((size_t)width * sizeof(*got));
        int64_t *want = xmalloc((size_t)width * sizeof(*want));
        for (int64_t p = 0; p < n_prompts; p++) {
            const char *text = json_str(json_at(prompts, (size_t)p));
            char label[64];
            snprintf(label, sizeof(label), "prompt %lld token ids", (long long)p);
            for (int64_t i = 0; i < width; i++)
                want[i] = (int64_t)ids[p * width + i];
            if (text && tokenizer_encode_padded(tk, text, strlen(text), (int)width, got, NULL) > 0)
                parity_check_ints(r, label, got, want, width);
        }
        free(got);
        free(want);
    }
    tokenizer_destroy(&tk);
    free(model);
    json_free(&j);
}

int parity_umt5_encoder(struct parity_run *r)
{
    struct ckpt *wck = NULL;
    struct umt5 *m = NULL;
    struct tensor *out = NULL;
    float *ids_f = NULL, *lens_f = NULL, *bucket_f = NULL, *offset_f = NULL, *got = NULL;
    int64_t *ids = NULL;
    int64_t n_ids, n_lens, n_bucket, n_offset;
    int rc;

    if (r->weights_path) {
        if ((rc = ckpt_open(r->weights_path, &wck)) < 0)
            return rc;
        rc = umt5_load(r->be, &wck, 1, NULL, &m);
    } else {
        rc = umt5_load(r->be, &r->fx, 1, "weights.", &m);
    }
    if (rc < 0)
        goto out;
    const struct umt5_config *c = umt5_get_config(m);

    bucket_f = parity_read_f32(r, "expected.rel_bucket", &n_bucket);
    offset_f = parity_read_f32(r, "expected.rel_bucket_offset", &n_offset);
    if (bucket_f && offset_f && n_offset == 1) {
        int64_t *got_b = xmalloc((size_t)n_bucket * sizeof(*got_b));
        int64_t *want_b = xmalloc((size_t)n_bucket * sizeof(*want_b));
        for (int64_t i = 0; i < n_bucket; i++) {
            got_b[i] = umt5_relative_bucket((int)(i - (int64_t)offset_f[0]), c->n_buckets,
                                            c->max_distance);
            want_b[i] = (int64_t)bucket_f[i];
        }
        parity_check_ints(r, "rel_bucket", got_b, want_b, n_bucket);
        free(got_b);
        free(want_b);
    }

    const struct ckpt_tensor *tid = parity_tensor(r, "input.input_ids");
    ids_f = parity_read_f32(r, "input.input_ids", &n_ids);
    lens_f = parity_read_f32(r, "expected.seq_lens", &n_lens);
    if (!tid || !ids_f || !lens_f || tid->ndim != 2 || tid->shape[0] != n_lens) {
        rc = log_error_rc(ENC_EINVAL,
                          "'%s': input.input_ids / expected.seq_lens missing or "
                          "misshapen",
                          r->path);
        goto out;
    }
    int64_t width = tid->shape[1];
    check_prompts(r, ids_f, n_lens, width);
    ids = xmalloc((size_t)width * sizeof(*ids));
    for (int64_t p = 0; p < n_lens; p++) {
        int n = (int)lens_f[p];
        if (n < 1 || n > width) {
            rc = log_error_rc(ENC_EINVAL, "'%s': seq_len %d of prompt %lld out of range", r->path,
                              n, (long long)p);
            goto out;
        }
        for (int i = 0; i < n; i++)
            ids[i] = (int64_t)ids_f[p * width + i];
        if ((rc = umt5_encode(m, ids, n, &out)) < 0)
            goto out;
        got = backend_tensor_to_f32(r->be, out);
        tensor_destroy(&out);
        if (!got) {
            rc = log_error_rc(ENC_ENOMEM, "cannot download the umt5 output");
            goto out;
        }
        char name[64];
        snprintf(name, sizeof(name), "expected.context_%lld", (long long)p);
        parity_check(r, name, NULL, got, (int64_t)n * c->dim, ATOL, 0.0);
        free(got);
        got = NULL;
    }
    rc = 0;
out:
    free(ids_f);
    free(lens_f);
    free(bucket_f);
    free(offset_f);
    free(ids);
    free(got);
    tensor_destroy(&out);
    umt5_destroy(&m);
    ckpt_close(&wck);
    return rc;
}
