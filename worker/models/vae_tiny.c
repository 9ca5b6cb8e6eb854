/*
 * vae_tiny.c - a seeded tiny Wan VAE for `encore model init --tiny`, and the
 * decode bench.
 *
 * The tiny model has the real structure and key names of Wan2.1_VAE.pth
 * (dim_mult [1, 2, 4, 4], 2 residual blocks per encoder level, 3 per
 * decoder level, temporal downsample [no, yes, yes], attention only in the
 * middle, z 16) with a small base width. Values: conv weights N(0,
 * 1/fan_in), biases N(0, 0.1^2), RMS gains 1 + N(0, 0.1^2), drawn in key
 * order from a splitmix64 stream through Box-Muller, so the file is a pure
 * function of (seed, width).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "vae_impl.h"
#include "worker/engine/st_writer.h"

struct rng {
    uint64_t s;
};

static uint64_t splitmix64(struct rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* One N(0, 1) value (Box-Muller, one of the pair, in double). */
static double gauss(struct rng *r)
{
    double u1 = ((double)(splitmix64(r) >> 11) + 1.0) / 9007199254740993.0; /* (0, 1] */
    double u2 = (double)(splitmix64(r) >> 11) / 9007199254740992.0;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* dst = a b, truncated (tiny names are short). */
static void join(char *dst, size_t n, const char *a, const char *b)
{
    if (snprintf(dst, n, "%s%s", a, b) >= (int)n)
        dst[n - 1] = 0;
}

struct tiny {
    struct st_writer *w;
    struct rng r;
    int rc;
};

static void add_t(struct tiny *t, const char *name, int ndim, const int64_t *shape, double mean,
                  double sd)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    float *v = xmalloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        v[i] = (float)(mean + sd * gauss(&t->r));
    if (!t->rc)
        t->rc = st_writer_add(t->w, name, DTYPE_F32, ndim, shape, v);
    free(v);
}

static void add_conv(struct tiny *t, const char *base, int cout, int cin, int kt, int kh, int kw)
{
    char n[160];
    int64_t s5[5] = {cout, cin, kt, kh, kw}, s4[4] = {cout, cin, kh, kw}, b[1] = {cout};
    double sd = 1.0 / sqrt((double)cin * (kt ? kt : 1) * kh * kw);
    join(n, sizeof(n), base, ".weight");
    if (kt)
        add_t(t, n, 5, s5, 0.0, sd);
    else
        add_t(t, n, 4, s4, 0.0, sd);
    join(n, sizeof(n), base, ".bias");
    add_t(t, n, 1, b, 0.0, 0.1);
}

static void add_gamma(struct tiny *t, const char *name, int c, int images)
{
    int64_t s[4] = {c, 1, 1, 1};
    add_t(t, name, images ? 3 : 4, s, 1.0, 0.1);
}

static void add_res(struct tiny *t, const char *base, int cin, int cout)
{
    char n[160];
    join(n, sizeof(n), base, ".residual.0.gamma");
    add_gamma(t, n, cin, 0);
    join(n, sizeof(n), base, ".residual.2");
    add_conv(t, n, cout, cin, 3, 3, 3);
    join(n, sizeof(n), base, ".residual.3.gamma");
    add_gamma(t, n, cout, 0);
    join(n, sizeof(n), base, ".residual.6");
    add_conv(t, n, cout, cout, 3, 3, 3);
    if (cin != cout) {
        join(n, sizeof(n), base, ".shortcut");
        add_conv(t, n, cout, cin, 1, 1, 1);
    }
}

static void add_attn(struct tiny *t, const char *base, int c)
{
    char n[160];
    join(n, sizeof(n), base, ".norm.gamma");
    add_gamma(t, n, c, 1);
    join(n, sizeof(n), base, ".to_qkv");
    add_conv(t, n, 3 * c, c, 0, 1, 1);
    join(n, sizeof(n), base, ".proj");
    add_conv(t, n, c, c, 0, 1, 1);
}

static void add_middle(struct tiny *t, const char *side, int c)
{
    char n[160];
    snprintf(n, sizeof(n), "%s.middle.0", side);
    add_res(t, n, c, c);
    snprintf(n, sizeof(n), "%s.middle.1", side);
    add_attn(t, n, c);
    snprintf(n, sizeof(n), "%s.middle.2", side);
    add_res(t, n, c, c);
}

int vae_write_tiny_dim(const char *path, uint64_t seed, int dim)
{
    static const int mult[4] = {1, 2, 4, 4};
    static const int down_t[3] = {0, 1, 1}, up_t[3] = {1, 1, 0};
    const int z = VAE_Z_DIM;
    char n[160];
    struct tiny t = {.w = st_writer_new(), .r = {seed}};
    int idx;

    if (dim < 1 || dim > 4096)
        return log_error_rc(ENC_EINVAL, "tiny width %d out of range", dim);
    st_writer_meta(t.w, "format", "pt");
    st_writer_meta(t.w, "model", "wan2.1-vae-tiny");

    /* encoder: dims [dim * u for u in [1] + mult] */
    int ed[5] = {dim, dim * mult[0], dim * mult[1], dim * mult[2], dim * mult[3]};
    add_conv(&t, "encoder.conv1", ed[0], 3, 3, 3, 3);
    idx = 0;
    for (int i = 0; i < 4; i++) {
        int cin = ed[i], cout = ed[i + 1];
        for (int r = 0; r < 2; r++) {
            snprintf(n, sizeof(n), "encoder.downsamples.%d", idx++);
            add_res(&t, n, cin, cout);
            cin = cout;
        }
        if (i != 3) {
            char b[160];
            snprintf(b, sizeof(b), "encoder.downsamples.%d", idx++);
            join(n, sizeof(n), b, ".resample.1");
            add_conv(&t, n, cout, cout, 0, 3, 3);
            if (down_t[i]) {
                join(n, sizeof(n), b, ".time_conv");
                add_conv(&t, n, cout, cout, 3, 1, 1);
            }
        }
    }
    add_middle(&t, "encoder", ed[4]);
    add_gamma(&t, "encoder.head.0.gamma", ed[4], 0);
    add_conv(&t, "encoder.head.2", 2 * z, ed[4], 3, 3, 3);
    add_conv(&t, "conv1", 2 * z, 2 * z, 1, 1, 1);
    add_conv(&t, "conv2", z, z, 1, 1, 1);

    /* decoder: dims [dim * u for u in [mult[-1]] + mult reversed] */
    int dd[5] = {dim * mult[3], dim * mult[3], dim * mult[2], dim * mult[1], dim * mult[0]};
    add_conv(&t, "decoder.conv1", dd[0], z, 3, 3, 3);
    add_middle(&t, "decoder", dd[0]);
    idx = 0;
    for (int i = 0; i < 4; i++) {
        int cin = i >= 1 ? dd[i] / 2 : dd[i], cout = dd[i + 1];
        for (int r = 0; r < 3; r++) {
            snprintf(n, sizeof(n), "decoder.upsamples.%d", idx++);
            add_res(&t, n, cin, cout);
            cin = cout;
        }
        if (i != 3) {
            char b[160];
            snprintf(b, sizeof(b), "decoder.upsamples.%d", idx++);
            join(n, sizeof(n), b, ".resample.1");
            add_conv(&t, n, cout / 2, cout, 0, 3, 3);
            if (up_t[i]) {
                join(n, sizeof(n), b, ".time_conv");
                add_conv(&t, n, 2 * cout, cout, 3, 1, 1);
            }
        }
    }
    add_gamma(&t, "decoder.head.0.gamma", dd[4], 0);
    add_conv(&t, "decoder.head.2", 3, dd[4], 3, 3, 3);

    int rc = t.rc ? t.rc : st_writer_write(t.w, path);
    st_writer_destroy(&t.w);
    return rc;
}

int vae_write_tiny(const char *path, uint64_t seed)
{
    return vae_write_tiny_dim(path, seed, 4);
}

/* ---- bench ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double rss_mib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long long size = 0, res = 0;
    if (!f)
        return -1.0;
    if (fscanf(f, "%lld %lld", &size, &res) != 2)
        res = -1;
    fclose(f);
    return res < 0 ? -1.0 : (double)res * 4096.0 / (1024.0 * 1024.0);
}

static double peak_mib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = -1.0;
    if (!f)
        return -1.0;
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, "VmHWM:", 6)) {
            kb = strtod(line + 6, NULL);
            break;
        }
    fclose(f);
    return kb < 0 ? -1.0 : kb / 1024.0;
}

struct bench_sink {
    int64_t frames;
};

static int bench_frame(void *ctx, int64_t frame, const float *rgb)
{
    (void)frame;
    (void)rgb;
    ((struct bench_sink *)ctx)->frames++;
    return 0;
}

int vae_bench(struct vae *vae, int64_t h, int64_t w, int n_latents, struct vae_bench_result *res)
{
    struct bench_sink sink = {0};
    struct rng r = {12345};
    int64_t per = (int64_t)vae->z * h * w;
    float *lat = xmalloc((size_t)per * sizeof(float));
    int rc = 0;

    memset(res, 0, sizeof(*res));
    struct vae_decoder *dec = vae_decoder_new(vae, h, w, 0, 0);
    if (!dec) {
        free(lat);
        return ENC_EINVAL;
    }
    int mark = n_latents / 10 > 0 ? n_latents / 10 : 1;
    double t0 = now_s();
    for (int k = 0; k < n_latents && !rc; k++) {
        for (int64_t i = 0; i < per; i++)
            lat[i] = (float)gauss(&r);
        rc = vae_decoder_push(dec, lat, bench_frame, &sink);
        if (k + 1 == mark)
            res->rss_mib_first = rss_mib();
    }
    rc = rc ? rc : backend_sync(vae->be);
    res->seconds = now_s() - t0;
    res->rss_mib_last = rss_mib();
    res->rss_mib_peak = peak_mib();
    if (res->seconds > 0) {
        res->frames_per_s = (double)sink.frames / res->seconds;
        res->latents_per_s = (double)n_latents / res->seconds;
    }
    vae_decoder_destroy(&dec);
    free(lat);
    return rc;
}
