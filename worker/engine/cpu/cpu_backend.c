/*
 * cpu_backend.c - the cpu backend: host memory, the op table, thread count.
 *
 * Memory is plain 64-byte aligned host memory; upload and download are
 * memcpy; adopted host memory is used in place. OpenBLAS is told to use one
 * thread when a backend opens: the backend parallelises itself over tiles of
 * fixed shape (DESIGN 2), each tile one single-threaded sgemm call.
 */
#include "cpu_backend.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/bf16.h"
#include "common/err.h"
#include "common/log.h"
#include "common/parse.h"
#include "common/xmalloc.h"

#define CPU_ALIGN 64
#define CPU_MAX_THREADS 1024

int cpu_scratch_reserve(struct cpu_ctx *c, size_t bytes, const char *what)
{
    for (int i = 0; i < c->n_threads; i++) {
        if (c->scratch_cap[i] >= bytes)
            continue;
        void *p = NULL;
        if (posix_memalign(&p, CPU_ALIGN, bytes) != 0)
            return log_error_rc(ENC_ENOMEM, "cpu %s: cannot allocate %zu bytes of scratch", what,
                                bytes);
        free(c->scratch[i]);
        c->scratch[i] = p;
        c->scratch_cap[i] = bytes;
    }
    return 0;
}

void cpu_weight_rows_to_f32(float *dst, const struct tensor *w, int64_t r0, int64_t nr, int64_t k)
{
    size_t n = (size_t)(nr * k);
    size_t off = (size_t)(r0 * k);
    switch (w->dtype) {
    case DTYPE_F32:
        memcpy(dst, (const float *)w->data + off, n * sizeof(float));
        break;
    case DTYPE_BF16: {
        const uint16_t *s = (const uint16_t *)w->data + off;
        for (size_t i = 0; i < n; i++)
            dst[i] = bf16_to_f32(s[i]);
        break;
    }
    case DTYPE_F16: {
        const uint16_t *s = (const uint16_t *)w->data + off;
        for (size_t i = 0; i < n; i++)
            dst[i] = f16_to_f32(s[i]);
        break;
    }
    default:
        memset(dst, 0, n * sizeof(float)); /* backend.c rejects other dtypes */
        break;
    }
}

static void *cpu_alloc(struct backend *be, size_t bytes)
{
    (void)be;
    void *p = NULL;
    if (bytes < CPU_ALIGN)
        bytes = CPU_ALIGN; /* empty tensors still get a pointer */
    if (posix_memalign(&p, CPU_ALIGN, bytes) != 0)
        return NULL;
    return p;
}

static void cpu_free(struct backend *be, void *p)
{
    (void)be;
    free(p);
}

static int cpu_upload(struct backend *be, void *dst, const void *host_src, size_t bytes)
{
    (void)be;
    if (bytes)
        memmove(dst, host_src, bytes);
    return 0;
}

static int cpu_download(struct backend *be, void *host_dst, const void *src, size_t bytes)
{
    (void)be;
    if (bytes)
        memmove(host_dst, src, bytes);
    return 0;
}

static void *cpu_adopt_host(struct backend *be, const void *host, size_t bytes)
{
    (void)be;
    (void)bytes;
    return (void *)(uintptr_t)host;
}

static void cpu_release_adopted(struct backend *be, void *p)
{
    (void)be;
    (void)p;
}

static int cpu_sync(struct backend *be)
{
    (void)be;
    return 0;
}

static void cpu_destroy(struct backend *be)
{
    struct cpu_ctx *c = be->ctx;
    if (!c)
        return;
    cpu_pool_destroy(&c->pool);
    for (int i = 0; i < c->n_threads; i++)
        free(c->scratch[i]);
    free(c->scratch);
    free(c->scratch_cap);
    free(c);
    be->ctx = NULL;
}

static const struct backend_ops cpu_ops = {
    .name = "cpu",
    .destroy = cpu_destroy,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_upload,
    .download = cpu_download,
    .adopt_host = cpu_adopt_host,
    .release_adopted = cpu_release_adopted,
    .sync = cpu_sync,
    .linear = cpu_linear,
    .layer_norm = cpu_layer_norm,
    .rms_norm = cpu_rms_norm,
    .modulate = cpu_modulate,
    .gated_add = cpu_gated_add,
    .add = cpu_add,
    .mul = cpu_mul,
    .scale = cpu_scale,
    .gelu_tanh = cpu_gelu_tanh,
    .gelu_erf = cpu_gelu_erf,
    .silu = cpu_silu,
    .rope3d = cpu_rope3d,
    .attention = cpu_attention,
    .permute = cpu_permute,
    .copy = cpu_copy,
    .fill = cpu_fill,
    .conv3d = cpu_conv3d,
};

/* default_threads(): ENCORE_THREADS when set and valid, else online cpus. */
static int default_threads(void)
{
    const char *env = getenv("ENCORE_THREADS");
    int n = 0;
    if (env && *env) {
        if (parse_int(env, 1, CPU_MAX_THREADS, &n) == 0)
            return n;
        log_warn("ignoring ENCORE_THREADS='%s': not a count in 1..%d", env, CPU_MAX_THREADS);
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu < 1)
        ncpu = 1;
    if (ncpu > CPU_MAX_THREADS)
        ncpu = CPU_MAX_THREADS;
    return (int)ncpu;
}

struct backend *backend_cpu_new(int n_threads)
{
    if (n_threads <= 0)
        n_threads = default_threads();
    if (n_threads > CPU_MAX_THREADS)
        n_threads = CPU_MAX_THREADS;
    openblas_set_num_threads(1);
    struct cpu_ctx *c = xcalloc(1, sizeof *c);
    c->n_threads = n_threads;
    c->scratch = xcalloc((size_t)n_threads, sizeof *c->scratch);
    c->scratch_cap = xcalloc((size_t)n_threads, sizeof *c->scratch_cap);
    c->pool = cpu_pool_new(n_threads);
    struct backend *be = xcalloc(1, sizeof *be);
    be->ops = &cpu_ops;
    be->ctx = c;
    be->n_threads = n_threads;
    if (!c->pool) {
        cpu_destroy(be);
        free(be);
        return NULL;
    }
    return be;
}
