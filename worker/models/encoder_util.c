/*
 * encoder_util.c - parameter sources (checkpoint or seed) and config-metadata
 * integers for the wav2vec2 and CLIP encoders.
 *
 * Seeded values: element i of a tensor is drawn from the counter
 * (name_seed, i) by splitmix64 and Box-Muller in double, then rounded to
 * f32, so the values do not depend on the order of requests or on threads.
 */
#include "encoder_util.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/xmalloc.h"

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

uint64_t encoder_name_seed(uint64_t seed, const char *name)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ull;
    }
    return splitmix64(seed ^ splitmix64(h));
}

/* A standard normal for counter i of stream s: two uniforms in (0, 1]. */
static double normal_at(uint64_t s, uint64_t i)
{
    uint64_t a = splitmix64(s ^ splitmix64(2 * i));
    uint64_t b = splitmix64(s ^ splitmix64(2 * i + 1));
    double u1 = ((double)(a >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double u2 = (double)(b >> 11) * (1.0 / 9007199254740992.0);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void encoder_randn(uint64_t seed, enum encoder_init init, float gain, int64_t fan_in, float *out,
                   int64_t n)
{
    double mean = 0, std = 0.1;
    switch (init) {
    case ENCODER_INIT_MATRIX: std = (double)gain / sqrt((double)(fan_in > 0 ? fan_in : 1)); break;
    case ENCODER_INIT_BIAS: break;
    case ENCODER_INIT_GAIN: mean = 1.0; break;
    case ENCODER_INIT_EMBED: std = 0.5; break;
    default: break;
    }
    for (int64_t i = 0; i < n; i++)
        out[i] = (float)(mean + std * normal_at(seed, (uint64_t)i));
}

static int64_t shape_numel(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    return n;
}

static float *seeded_host(struct encoder_src *s, const char *name, int ndim, const int64_t *shape,
                          enum encoder_init init, float gain)
{
    int64_t n = shape_numel(ndim, shape);
    float *h = xmalloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    encoder_randn(encoder_name_seed(s->seed, name), init, gain, ndim > 0 ? n / shape[0] : 1, h, n);
    if (s->writer) {
        char full[256];
        snprintf(full, sizeof(full), "%s%s", s->write_prefix ? s->write_prefix : "", name);
        if (st_writer_add(s->writer, full, DTYPE_F32, ndim, shape, h) < 0) {
            s->failed++;
            free(h);
            return NULL;
        }
    }
    return h;
}

struct tensor *encoder_src_adopt(struct encoder_src *s, const float *host, int ndim,
                                 const int64_t *shape)
{
    struct tensor *t = backend_tensor_from_host(s->be, DTYPE_F32, ndim, shape, host, 0);
    if (!t) {
        s->failed++;
        log_error("out of memory for an encoder parameter of %lld floats",
                  (long long)shape_numel(ndim, shape));
        return NULL;
    }
    if (s->n_owned == s->cap_owned) {
        s->cap_owned = s->cap_owned ? 2 * s->cap_owned : 64;
        s->owned = xrealloc(s->owned, (size_t)s->cap_owned * sizeof(*s->owned));
    }
    s->owned[s->n_owned++] = t;
    return t;
}

struct tensor *encoder_src_get(struct encoder_src *s, const char *name, int ndim,
                               const int64_t *shape, enum encoder_init init, float gain, int f32)
{
    if (!s->seeded) {
        struct tensor *t =
            f32 ? weights_get_f32(s->w, name, ndim, shape) : weights_get(s->w, name, ndim, shape);
        if (!t)
            s->failed++;
        return t;
    }
    float *h = seeded_host(s, name, ndim, shape, init, gain);
    if (!h)
        return NULL;
    struct tensor *t = encoder_src_adopt(s, h, ndim, shape);
    free(h);
    return t;
}

float *encoder_src_get_host(struct encoder_src *s, const char *name, int ndim, const int64_t *shape,
                            enum encoder_init init, float gain)
{
    if (s->seeded)
        return seeded_host(s, name, ndim, shape, init, gain);
    struct tensor *t = weights_get_f32(s->w, name, ndim, shape);
    if (!t) {
        s->failed++;
        return NULL;
    }
    float *h = backend_tensor_to_f32(s->be, t);
    if (!h)
        s->failed++;
    return h;
}

void encoder_src_release(struct encoder_src *s)
{
    for (int i = 0; i < s->n_owned; i++)
        tensor_destroy(&s->owned[i]);
    free(s->owned);
    s->owned = NULL;
    s->n_owned = s->cap_owned = 0;
}

int encoder_meta_ints(const char *json, const char *key, int64_t *out, int max)
{
    if (!json || !key || max <= 0)
        return 0;
    size_t klen = strlen(key);
    for (const char *p = strchr(json, '"'); p; p = strchr(p + 1, '"')) {
        if (strncmp(p + 1, key, klen) != 0 || p[1 + klen] != '"')
            continue;
        const char *q = p + 2 + klen;
        while (isspace((unsigned char)*q))
            q++;
        if (*q != ':')
            continue;
        q++;
        while (isspace((unsigned char)*q))
            q++;
        int list = *q == '[';
        if (list)
            q++;
        int n = 0;
        for (;;) {
            while (isspace((unsigned char)*q))
                q++;
            char *end = NULL;
            errno = 0;
            long long v = strtoll(q, &end, 10);
            if (end == q || errno != 0 || *end == '.' || *end == 'e' || *end == 'E')
                return 0;
            if (n < max)
                out[n] = v;
            n++;
            q = end;
            while (isspace((unsigned char)*q))
                q++;
            if (!list || *q != ',')
                break;
            q++;
        }
        if (list && *q != ']')
            return 0;
        return n < max ? n : max;
    }
    return 0;
}
