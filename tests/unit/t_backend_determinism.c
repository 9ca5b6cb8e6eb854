/*
 * t_backend_determinism.c - the exactness invariant (DESIGN 2) for the cpu
 * backend: linear (f32 and bf16 weights), attention, conv3d and layer norm
 * give byte-identical outputs on 1, 2, 3 and 4 threads. Sizes span several
 * tiles with remainders, so a tiling that followed the thread count would
 * show here.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/bf16.h"
#include "tests/tap.h"
#include "worker/engine/backend.h"

static _Thread_local uint64_t rng_state; /* per thread: the shared-backend run */

static float urand(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)((double)(z >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static struct tensor *rand_tensor(struct backend *be, enum dtype dt, int ndim, const int64_t *shape)
{
    struct tensor *t = tensor_new(be, dt, ndim, shape);
    int64_t n = tensor_numel(t);
    for (int64_t i = 0; i < n; i++) {
        float f = urand();
        if (dt == DTYPE_F32)
            ((float *)t->data)[i] = f;
        else
            ((uint16_t *)t->data)[i] = f32_to_bf16(f);
    }
    return t;
}
#define R_(be, dt, ...)                                                                            \
    rand_tensor((be), (dt), (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)),             \
                (int64_t[]){__VA_ARGS__})

enum { OUT_LIN_F32, OUT_LIN_BF16, OUT_ATT, OUT_ATT_SHORT, OUT_CONV, OUT_LN, OUT_COUNT };
static const char *names[OUT_COUNT] = {"linear f32",      "linear bf16", "attention Tk=700",
                                       "attention Tk=17", "conv3d bf16", "layer_norm"};

/* run_all() computes every output on a backend of n threads; fills out[] (caller frees). */
static int run_all(int n_threads, float *out[OUT_COUNT], size_t bytes[OUT_COUNT])
{
    struct backend *be = backend_open("cpu", n_threads);
    if (!be)
        return -1;
    rng_state = 12345;
    int rc = 0;
    struct tensor *x = R_(be, DTYPE_F32, 600, 200);
    struct tensor *w = R_(be, DTYPE_F32, 300, 200), *wb = R_(be, DTYPE_BF16, 300, 200);
    struct tensor *b = R_(be, DTYPE_F32, 300);
    struct tensor *ys[2] = {tensor_new_shape(be, DTYPE_F32, 600, 300),
                            tensor_new_shape(be, DTYPE_F32, 600, 300)};
    rc |= backend_linear(be, ys[0], x, w, b);
    rc |= backend_linear(be, ys[1], x, wb, b);

    struct tensor *q = R_(be, DTYPE_F32, 1, 300, 2, 64), *k = R_(be, DTYPE_F32, 1, 700, 2, 64),
                  *v = R_(be, DTYPE_F32, 1, 700, 2, 64);
    struct tensor *o = tensor_new_shape(be, DTYPE_F32, 1, 300, 2, 64);
    rc |= backend_attention(be, o, q, k, v, 0.125f);
    struct tensor *q2 = R_(be, DTYPE_F32, 6, 45, 2, 32), *k2 = R_(be, DTYPE_F32, 6, 17, 2, 32),
                  *v2 = R_(be, DTYPE_F32, 6, 17, 2, 32);
    struct tensor *o2 = tensor_new_shape(be, DTYPE_F32, 6, 45, 2, 32);
    rc |= backend_attention(be, o2, q2, k2, v2, 0.17f);

    struct tensor *cx = R_(be, DTYPE_F32, 8, 3, 20, 21), *cw = R_(be, DTYPE_BF16, 16, 8, 3, 3, 3);
    struct tensor *cb = R_(be, DTYPE_F32, 16);
    struct tensor *cy = tensor_new_shape(be, DTYPE_F32, 16, 3, 20, 21);
    struct conv_params cp = {
        .stride = {1, 1, 1}, .pad_front = {2, 1, 1}, .pad_back = {0, 1, 1}, .groups = 1};
    rc |= backend_conv3d(be, cy, cx, cw, cb, &cp);

    struct tensor *ln = tensor_new_shape(be, DTYPE_F32, 600, 200);
    rc |= backend_layer_norm(be, ln, x, NULL, NULL, 1e-6f);

    struct tensor *res[OUT_COUNT] = {ys[0], ys[1], o, o2, cy, ln};
    for (int i = 0; i < OUT_COUNT; i++) {
        bytes[i] = tensor_nbytes(res[i]);
        out[i] = backend_tensor_to_f32(be, res[i]);
    }
    struct tensor *all[] = {x,  w,  wb, b,  ys[0], ys[1], q,  k,  v, o,
                            q2, k2, v2, o2, cx,    cw,    cb, cy, ln};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        tensor_destroy(&all[i]);
    backend_destroy(&be);
    return rc;
}

/* Two host threads sharing one backend: each runs linears and attentions;
 * ops queue on the backend's lock, so both must still get the exact bytes. */
struct shared_run {
    struct backend *be;
    const float *want_lin, *want_att;
    int good;
};

static void *shared_worker(void *arg)
{
    struct shared_run *r = arg;
    struct backend *be = r->be;
    r->good = 1;
    for (int it = 0; it < 5; it++) {
        rng_state = 12345;
        /* the inputs of run_all(), drawn in the same order */
        struct tensor *x = R_(be, DTYPE_F32, 600, 200);
        struct tensor *w = R_(be, DTYPE_F32, 300, 200);
        struct tensor *wb = R_(be, DTYPE_BF16, 300, 200);
        struct tensor *b = R_(be, DTYPE_F32, 300);
        struct tensor *y = tensor_new_shape(be, DTYPE_F32, 600, 300);
        struct tensor *q = R_(be, DTYPE_F32, 1, 300, 2, 64);
        struct tensor *k = R_(be, DTYPE_F32, 1, 700, 2, 64);
        struct tensor *v = R_(be, DTYPE_F32, 1, 700, 2, 64);
        struct tensor *o = tensor_new_shape(be, DTYPE_F32, 1, 300, 2, 64);
        (void)wb;
        if (backend_linear(be, y, x, w, b) != 0 ||
            memcmp(y->data, r->want_lin, tensor_nbytes(y)) != 0)
            r->good = 0;
        if (backend_attention(be, o, q, k, v, 0.125f) != 0 ||
            memcmp(o->data, r->want_att, tensor_nbytes(o)) != 0)
            r->good = 0;
        struct tensor *all[] = {x, w, wb, b, y, q, k, v, o};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            tensor_destroy(&all[i]);
    }
    return NULL;
}

int main(void)
{
    float *ref[OUT_COUNT], *got[OUT_COUNT];
    size_t bytes[OUT_COUNT];
    is_int(run_all(1, ref, bytes), 0, "all ops run on 1 thread");
    int threads[] = {2, 3, 4};
    for (int t = 0; t < 3; t++) {
        is_int(run_all(threads[t], got, bytes), 0, "all ops run on %d threads", threads[t]);
        for (int i = 0; i < OUT_COUNT; i++) {
            ok(memcmp(ref[i], got[i], bytes[i]) == 0, "%s: %d threads == 1 thread, byte for byte",
               names[i], threads[t]);
            free(got[i]);
        }
    }

    /* attention's 4-wide and AVX2 row kernels agree to the byte */
    setenv("ENCORE_NO_AVX2", "1", 1);
    is_int(run_all(2, got, bytes), 0, "all ops run with the 4-wide row kernels");
    unsetenv("ENCORE_NO_AVX2");
    ok(memcmp(ref[OUT_ATT], got[OUT_ATT], bytes[OUT_ATT]) == 0 &&
           memcmp(ref[OUT_ATT_SHORT], got[OUT_ATT_SHORT], bytes[OUT_ATT_SHORT]) == 0,
       "attention: 4-wide row kernels == the default path, byte for byte");
    for (int i = 0; i < OUT_COUNT; i++)
        free(got[i]);

    struct backend *be = backend_open("cpu", 2);
    struct shared_run runs[2] = {{be, ref[OUT_LIN_F32], ref[OUT_ATT], 0},
                                 {be, ref[OUT_LIN_F32], ref[OUT_ATT], 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, shared_worker, &runs[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    ok(runs[0].good && runs[1].good, "two host threads sharing a backend both get the exact bytes");
    backend_destroy(&be);

    for (int i = 0; i < OUT_COUNT; i++)
        free(ref[i]);
    return done_testing();
}
