/*
 * weights.c - bind model parameters to checkpoint tensors by name (see
 * weights.h).
 *
 * Resolution of a name: the latest checkpoint holding it wins; when no
 * checkpoint holds it and a prefix is set, prefix + name is tried the same
 * way. A resolved name is marked used in every checkpoint holding it (so an
 * overridden entry is not reported as unexpected). Problems (missing,
 * misshapen) are recorded once per name and reported by weights_finish();
 * weights_missing_count() counts both kinds, since either fails the load.
 *
 * Tensors: weights_get() adopts the checkpoint memory (no copy on cpu)
 * when the data is aligned to its element size, and copies otherwise;
 * weights_get_f32() converts other dtypes to f32 on the host and uploads.
 * Every tensor handed out is owned by the binding.
 */
#include "weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/err.h"
#include "../../common/log.h"
#include "../../common/xmalloc.h"

struct problem {
    char *name;
    char *what; /* "missing" or a shape message */
};

struct weights {
    struct backend *be;
    struct ckpt **cks; /* n borrowed checkpoints, later overrides earlier */
    int n;
    uint8_t **used; /* used[k][i]: tensor i of checkpoint k was bound */
    char *prefix;
    struct tensor **out; /* tensors handed out (owned) */
    size_t nout, capout;
    struct problem *probs;
    size_t nprobs;
    int unexpected;
};

struct weights *weights_new(struct backend *be, struct ckpt *const *cks, int n)
{
    struct weights *w = xcalloc(1, sizeof *w);
    w->be = be;
    w->n = n > 0 ? n : 0;
    w->cks = xcalloc((size_t)w->n + 1, sizeof *w->cks);
    w->used = xcalloc((size_t)w->n + 1, sizeof *w->used);
    for (int k = 0; k < w->n; k++) {
        w->cks[k] = cks[k];
        w->used[k] = xcalloc(ckpt_count(cks[k]) + 1, 1);
    }
    w->prefix = xstrdup("");
    return w;
}

void weights_set_prefix(struct weights *w, const char *prefix)
{
    free(w->prefix);
    w->prefix = xstrdup(prefix ? prefix : "");
}

/* lookup() finds the latest checkpoint entry named exactly name. */
static const struct ckpt_tensor *lookup(const struct weights *w, const char *name)
{
    for (int k = w->n - 1; k >= 0; k--) {
        const struct ckpt_tensor *t = ckpt_find(w->cks[k], name);
        if (t)
            return t;
    }
    return NULL;
}

/* resolve() applies the prefix rule; *key gets the name found (caller frees). */
static const struct ckpt_tensor *resolve(const struct weights *w, const char *name, char **key)
{
    const struct ckpt_tensor *t = lookup(w, name);
    if (t) {
        if (key)
            *key = xstrdup(name);
        return t;
    }
    if (!w->prefix[0])
        return NULL;
    char *pname = xasprintf("%s%s", w->prefix, name);
    t = lookup(w, pname);
    if (t && key)
        *key = pname;
    else
        free(pname);
    return t;
}

static void mark_used(struct weights *w, const char *key)
{
    for (int k = 0; k < w->n; k++) {
        const struct ckpt_tensor *t = ckpt_find(w->cks[k], key);
        if (t)
            w->used[k][(size_t)(t - ckpt_at(w->cks[k], 0))] = 1;
    }
}

static void record(struct weights *w, const char *name, char *what)
{
    for (size_t i = 0; i < w->nprobs; i++) {
        if (strcmp(w->probs[i].name, name) == 0) {
            free(what);
            return;
        }
    }
    w->probs = xrealloc(w->probs, (w->nprobs + 1) * sizeof *w->probs);
    w->probs[w->nprobs].name = xstrdup(name);
    w->probs[w->nprobs].what = what;
    w->nprobs++;
}

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t used = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, i ? ",%lld" : "%lld", (long long)shape[i]);
    if (used < n)
        snprintf(buf + used, n - used, "]");
}

/* bind() resolves and shape-checks name; NULL after recording a problem. */
static const struct ckpt_tensor *bind(struct weights *w, const char *name, int ndim,
                                      const int64_t *shape)
{
    char *key = NULL;
    const struct ckpt_tensor *t = resolve(w, name, &key);
    if (!t) {
        record(w, name, xstrdup("missing"));
        return NULL;
    }
    mark_used(w, key);
    int match = t->ndim == ndim;
    for (int i = 0; match && i < ndim; i++)
        match = shape[i] == -1 || shape[i] == t->shape[i];
    if (!match) {
        char got[128], want[128];
        shape_str(got, sizeof got, t->ndim, t->shape);
        shape_str(want, sizeof want, ndim, shape);
        record(w, name, xasprintf("has shape %s, the model expects %s", got, want));
        free(key);
        return NULL;
    }
    free(key);
    return t;
}

static struct tensor *keep(struct weights *w, struct tensor *t, const char *name)
{
    if (!t) {
        log_error("weights: cannot place '%s' on the %s backend (out of memory)", name,
                  backend_name(w->be));
        return NULL;
    }
    if (w->nout == w->capout) {
        w->capout = w->capout ? w->capout * 2 : 64;
        w->out = xrealloc(w->out, w->capout * sizeof *w->out);
    }
    w->out[w->nout++] = t;
    return t;
}

struct tensor *weights_get(struct weights *w, const char *name, int ndim, const int64_t *shape)
{
    const struct ckpt_tensor *c = bind(w, name, ndim, shape);
    if (!c)
        return NULL;
    size_t es = dtype_size(c->dtype);
    int aligned = es && ((uintptr_t)c->data % es) == 0;
    /* misaligned data (possible in files we did not write) is copied, not adopted */
    return keep(w, backend_tensor_from_host(w->be, c->dtype, c->ndim, c->shape, c->data, aligned),
                name);
}

struct tensor *weights_get_f32(struct weights *w, const char *name, int ndim, const int64_t *shape)
{
    const struct ckpt_tensor *c = bind(w, name, ndim, shape);
    if (!c)
        return NULL;
    if (c->dtype == DTYPE_F32 && ((uintptr_t)c->data % 4) == 0)
        return keep(w, backend_tensor_from_host(w->be, DTYPE_F32, c->ndim, c->shape, c->data, 1),
                    name);
    float *f = ckpt_read_f32(c);
    struct tensor *t = backend_tensor_from_host(w->be, DTYPE_F32, c->ndim, c->shape, f, 0);
    free(f);
    return keep(w, t, name);
}

int weights_has(const struct weights *w, const char *name)
{
    return resolve(w, name, NULL) != NULL;
}

const struct ckpt_tensor *weights_find(const struct weights *w, const char *name)
{
    return resolve(w, name, NULL);
}

/* in_scope() tells whether name starts with one of the comma-separated
 * prefixes of scope ("" matches everything). */
static int in_scope(const char *name, const char *scope)
{
    if (!scope || !*scope)
        return 1;
    const char *p = scope;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len && strncmp(name, p, len) == 0)
            return 1;
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

/* count_unexpected() counts (and logs, when log_them) unused in-scope
 * names, each once even when several checkpoints hold it. */
static int count_unexpected(const struct weights *w, const char *scope, int log_them)
{
    int n = 0;
    for (int k = 0; k < w->n; k++) {
        for (size_t i = 0; i < ckpt_count(w->cks[k]); i++) {
            const struct ckpt_tensor *t = ckpt_at(w->cks[k], i);
            if (w->used[k][i] || !in_scope(t->name, scope))
                continue;
            int later = 0;
            for (int j = k + 1; j < w->n && !later; j++)
                later = ckpt_find(w->cks[j], t->name) != NULL;
            if (later)
                continue;
            n++;
            if (log_them)
                log_warn("unexpected key '%s' in '%s'", t->name, ckpt_path(w->cks[k]));
        }
    }
    return n;
}

int weights_finish(struct weights *w, const char *scope)
{
    for (size_t i = 0; i < w->nprobs; i++) {
        if (strcmp(w->probs[i].what, "missing") == 0)
            log_error("missing key '%s' (in none of %d checkpoint%s%s%s)", w->probs[i].name, w->n,
                      w->n == 1 ? "" : "s", w->prefix[0] ? ", also tried prefix " : "", w->prefix);
        else
            log_error("misshapen key '%s': %s", w->probs[i].name, w->probs[i].what);
    }
    w->unexpected = count_unexpected(w, scope, 1);
    if (w->nprobs)
        return log_error_rc(ENC_EINVAL, "weights: %zu missing or misshapen keys, %d unexpected",
                            w->nprobs, w->unexpected);
    if (w->unexpected)
        log_warn("weights: %d unexpected keys", w->unexpected);
    return 0;
}

int weights_missing_count(const struct weights *w)
{
    return (int)w->nprobs;
}

int weights_unexpected_count(const struct weights *w)
{
    return w->unexpected;
}

void weights_destroy(struct weights **wp)
{
    struct weights *w = wp ? *wp : NULL;
    if (!w)
        return;
    for (size_t i = 0; i < w->nout; i++)
        tensor_destroy(&w->out[i]);
    for (size_t i = 0; i < w->nprobs; i++) {
        free(w->probs[i].name);
        free(w->probs[i].what);
    }
    for (int k = 0; k < w->n; k++)
        free(w->used[k]);
    free(w->used);
    free(w->probs);
    free(w->out);
    free(w->cks);
    free(w->prefix);
    free(w);
    *wp = NULL;
}
