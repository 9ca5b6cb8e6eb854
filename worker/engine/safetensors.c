/*
 * safetensors.c - the safetensors reader (see safetensors.h).
 *
 * The header is parsed with the strict JSON parser; then every entry is
 * validated before any tensor is added, so on error the checkpoint holds
 * nothing half-checked. Tensor data is never copied except for the integer
 * types the engine widens (ckpt_add). Invariant after success: every
 * tensor's [data, data + nbytes) lies inside the data block and no two
 * non-empty tensors overlap.
 */
#include "safetensors.h"

#include <stdlib.h>
#include <string.h>

#include "../../common/err.h"
#include "../../common/json.h"
#include "../../common/log.h"
#include "../../common/xmalloc.h"
#include "checkpoint_impl.h"

struct span {
    uint64_t begin, end;
    size_t idx;
};

static int cmp_span(const void *a, const void *b)
{
    const struct span *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return 0;
}

static int parse_elem(const char *s, enum ckpt_elem *out)
{
    for (int e = 0; e < CKPT_ELEM_COUNT; e++) {
        if (strcmp(s, ckpt_elem_name((enum ckpt_elem)e)) == 0) {
            *out = (enum ckpt_elem)e;
            return 0;
        }
    }
    return ENC_ENOTSUP;
}

/* One validated header entry. */
struct entry {
    const char *name;
    enum ckpt_elem elem;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    uint64_t begin, end;
};

static int check_entry(const char *path, const char *name, const struct json *v, uint64_t data_size,
                       struct entry *e)
{
    if (!v || v->type != JSON_OBJECT)
        return log_error_rc(ENC_EINVAL, "'%s': tensor '%s': header entry is not an object", path,
                            name);
    const char *dt = json_str(json_get(v, "dtype"));
    const struct json *shape = json_get(v, "shape");
    const struct json *offs = json_get(v, "data_offsets");
    if (!dt)
        return log_error_rc(ENC_EINVAL, "'%s': tensor '%s': missing or non-string dtype", path,
                            name);
    if (!shape || shape->type != JSON_ARRAY)
        return log_error_rc(ENC_EINVAL, "'%s': tensor '%s': missing shape array", path, name);
    if (!offs || offs->type != JSON_ARRAY || json_len(offs) != 2)
        return log_error_rc(ENC_EINVAL, "'%s': tensor '%s': data_offsets is not [begin, end]", path,
                            name);
    e->name = name;
    if (parse_elem(dt, &e->elem))
        return log_error_rc(ENC_ENOTSUP, "'%s': tensor '%s': unsupported dtype '%s'", path, name,
                            dt);
    if (json_len(shape) > TENSOR_MAX_DIMS)
        return log_error_rc(ENC_ENOTSUP, "'%s': tensor '%s': %zu dimensions (at most %d)", path,
                            name, json_len(shape), TENSOR_MAX_DIMS);
    e->ndim = (int)json_len(shape);
    for (int i = 0; i < e->ndim; i++) {
        int64_t d;
        if (json_int(json_at(shape, (size_t)i), &d) || d < 0)
            return log_error_rc(ENC_EINVAL, "'%s': tensor '%s': shape[%d] is not a size", path,
                                name, i);
        e->shape[i] = d;
    }
    int64_t b, en, numel;
    size_t nbytes;
    if (json_int(json_at(offs, 0), &b) || json_int(json_at(offs, 1), &en) || b < 0 || en < 0)
        return log_error_rc(ENC_EINVAL, "'%s': tensor '%s': data_offsets are not sizes", path,
                            name);
    if (b > en)
        return log_error_rc(ENC_EINVAL, "'%s': tensor '%s': data_offsets [%lld, %lld) reversed",
                            path, name, (long long)b, (long long)en);
    if ((uint64_t)en > data_size)
        return log_error_rc(ENC_EINVAL,
                            "'%s': tensor '%s': data_offsets [%lld, %lld) outside the %llu-byte "
                            "data block",
                            path, name, (long long)b, (long long)en, (unsigned long long)data_size);
    if (ckpt_shape_numel(e->ndim, e->shape, ckpt_elem_size(e->elem), &numel, &nbytes))
        return log_error_rc(ENC_EINVAL, "'%s': tensor '%s': shape overflows", path, name);
    if ((uint64_t)(en - b) != (uint64_t)nbytes)
        return log_error_rc(ENC_EINVAL,
                            "'%s': tensor '%s': %lld bytes in data_offsets but %s x %lld "
                            "elements need %zu",
                            path, name, (long long)(en - b), dt, (long long)numel, nbytes);
    e->begin = (uint64_t)b;
    e->end = (uint64_t)en;
    return 0;
}

int safetensors_load(struct ckpt *ck, const char *path, const uint8_t *buf, size_t size)
{
    struct json *hdr = NULL;
    struct entry *ents = NULL;
    struct span *spans = NULL;
    struct json_error jerr;
    int rc = 0;

    if (size < 8)
        return log_error_rc(ENC_EINVAL, "'%s': %zu bytes is too short for a safetensors file", path,
                            size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | buf[i];
    if (n > SAFETENSORS_MAX_HEADER)
        return log_error_rc(ENC_EINVAL, "'%s': header length %llu exceeds the %llu-byte limit",
                            path, (unsigned long long)n,
                            (unsigned long long)SAFETENSORS_MAX_HEADER);
    if (n > size - 8)
        return log_error_rc(ENC_EINVAL,
                            "'%s': header length %llu but only %zu bytes follow (truncated?)", path,
                            (unsigned long long)n, size - 8);
    if (n < 2)
        return log_error_rc(ENC_EINVAL, "'%s': header length %llu is too short", path,
                            (unsigned long long)n);
    if (buf[8] != '{')
        return log_error_rc(ENC_EINVAL, "'%s': header does not start with '{' (not safetensors)",
                            path);
    if (json_parse((const char *)buf + 8, (size_t)n, &hdr, &jerr))
        return log_error_rc(ENC_EINVAL, "'%s': header JSON at byte %zu: %s", path,
                            (size_t)8 + jerr.offset, jerr.msg);
    if (hdr->type != JSON_OBJECT) {
        rc = log_error_rc(ENC_EINVAL, "'%s': header is a JSON %s, not an object", path,
                          json_type_name(hdr->type));
        goto out;
    }
    const uint8_t *data = buf + 8 + n;
    uint64_t data_size = (uint64_t)size - 8 - n;
    size_t count = json_len(hdr), nt = 0;
    ents = xcalloc(count ? count : 1, sizeof *ents);
    for (size_t i = 0; i < count; i++) {
        const char *key = json_key_at(hdr, i);
        const struct json *v = json_at(hdr, i);
        if (strcmp(key, "__metadata__") == 0) {
            if (v->type != JSON_OBJECT) {
                rc = log_error_rc(ENC_EINVAL, "'%s': __metadata__ is not an object", path);
                goto out;
            }
            for (size_t k = 0; k < json_len(v); k++) {
                const char *mv = json_str(json_at(v, k));
                if (!mv) {
                    rc =
                        log_error_rc(ENC_EINVAL, "'%s': __metadata__ value of '%s' is not a string",
                                     path, json_key_at(v, k));
                    goto out;
                }
            }
            continue;
        }
        if ((rc = check_entry(path, key, v, data_size, &ents[nt])))
            goto out;
        nt++;
    }
    /* no two non-empty tensors may share bytes */
    spans = xcalloc(nt ? nt : 1, sizeof *spans);
    size_t ns = 0;
    for (size_t i = 0; i < nt; i++)
        if (ents[i].end > ents[i].begin)
            spans[ns++] = (struct span){ents[i].begin, ents[i].end, i};
    qsort(spans, ns, sizeof *spans, cmp_span);
    for (size_t i = 1; i < ns; i++) {
        if (spans[i].begin < spans[i - 1].end) {
            rc = log_error_rc(ENC_EINVAL, "'%s': tensors '%s' and '%s' overlap in the data block",
                              path, ents[spans[i - 1].idx].name, ents[spans[i].idx].name);
            goto out;
        }
    }
    for (size_t i = 0; i < count; i++) {
        const char *key = json_key_at(hdr, i);
        const struct json *v = json_at(hdr, i);
        if (strcmp(key, "__metadata__") == 0)
            for (size_t k = 0; k < json_len(v); k++)
                ckpt_add_meta(ck, json_key_at(v, k), json_str(json_at(v, k)));
    }
    for (size_t i = 0; i < nt; i++) {
        const struct entry *e = &ents[i];
        if ((rc = ckpt_add(ck, e->name, e->elem, e->ndim, e->shape, data + e->begin,
                           (size_t)(e->end - e->begin))))
            goto out;
    }
out:
    free(spans);
    free(ents);
    json_free(&hdr);
    return rc;
}
