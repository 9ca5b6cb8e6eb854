/*
 * cuda_backend.cu - the cuda backend: device, stream, cuBLAS handle, memory,
 * host transfers, scratch and the op table.
 *
 * Memory comes from the device's stream-ordered pool (cudaMallocAsync and
 * cudaFreeAsync on the backend's stream) where the device supports it, so a
 * free never waits for the device: the block returns to the pool after the
 * work already queued on the stream. Without pools it falls back to
 * cudaMalloc, and a free first waits for the stream. An allocation that
 * fails returns NULL (logged), so the op's caller fails with ENC_ENOMEM and
 * the worker lives on. upload and download wait for their copy, so the host
 * buffer may be reused as soon as they return; everything else is queued.
 * adopt_host copies host memory (an mmap'd checkpoint) to the device; the
 * copy belongs to the tensor and is freed with it.
 */
#include "cuda_backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "common/xmalloc.h"
}

#define CUDA_MIN_ALLOC 256
#define CUDA_SCRATCH_ROUND ((size_t)1 << 20)

int cuda_check(cudaError_t err, const char *what)
{
    if (err == cudaSuccess)
        return 0;
    int rc = err == cudaErrorMemoryAllocation ? ENC_ENOMEM : ENC_EDEVICE;
    return log_error_rc(rc, "cuda %s: %s (%s)", what, cudaGetErrorString(err),
                        cudaGetErrorName(err));
}

int cuda_blas_check(cublasStatus_t st, const char *what)
{
    if (st == CUBLAS_STATUS_SUCCESS)
        return 0;
    int rc = st == CUBLAS_STATUS_ALLOC_FAILED ? ENC_ENOMEM : ENC_EDEVICE;
    return log_error_rc(rc, "cublas %s: %s (%s)", what, cublasGetStatusString(st),
                        cublasGetStatusName(st));
}

int cuda_launch_check(const char *what)
{
    return cuda_check(cudaGetLastError(), what);
}

struct cuda_ctx *cuda_ctx_of(struct backend *be)
{
    struct cuda_ctx *c = (struct cuda_ctx *)be->ctx;
    int cur = -1;
    if (cudaGetDevice(&cur) != cudaSuccess || cur != c->device)
        (void)cudaSetDevice(c->device); /* a failure shows at the next call */
    return c;
}

/* ---- memory ---- */

/* alloc_raw() allocates without logging; *p is NULL on failure. */
static cudaError_t alloc_raw(struct cuda_ctx *c, void **p, size_t bytes)
{
    *p = NULL;
    cudaError_t err = c->use_pool ? cudaMallocAsync(p, bytes, c->stream) : cudaMalloc(p, bytes);
    if (err != cudaSuccess) {
        (void)cudaGetLastError(); /* an allocation failure is not sticky: clear it */
        *p = NULL;
    }
    return err;
}

void *cuda_dev_alloc(struct cuda_ctx *c, size_t bytes)
{
    void *p;
    cudaError_t err = alloc_raw(c, &p, bytes);
    if (err != cudaSuccess)
        log_error("%s: cannot allocate %zu bytes: %s", c->name, bytes, cudaGetErrorString(err));
    return p;
}

void cuda_dev_free(struct cuda_ctx *c, void *p)
{
    if (!p)
        return;
    cudaError_t err;
    if (c->use_pool) {
        err = cudaFreeAsync(p, c->stream);
    } else {
        err = cudaStreamSynchronize(c->stream);
        if (err == cudaSuccess)
            err = cudaFree(p);
    }
    if (err != cudaSuccess)
        log_error("%s: free: %s", c->name, cudaGetErrorString(err));
}

void *cuda_scratch(struct cuda_ctx *c, size_t bytes, const char *what)
{
    if (bytes <= c->scratch_cap && c->scratch)
        return c->scratch;
    size_t want = (bytes + CUDA_SCRATCH_ROUND - 1) / CUDA_SCRATCH_ROUND * CUDA_SCRATCH_ROUND;
    /* queued work may still read the old buffer: the pool frees it in stream
     * order, the fallback path waits for the stream inside cuda_dev_free */
    cuda_dev_free(c, c->scratch);
    c->scratch = NULL;
    c->scratch_cap = 0;
    void *p;
    cudaError_t err = alloc_raw(c, &p, want);
    if (err != cudaSuccess) {
        log_error("cuda %s: cannot allocate %zu bytes of scratch on %s: %s", what, want, c->name,
                  cudaGetErrorString(err));
        return NULL;
    }
    c->scratch = p;
    c->scratch_cap = want;
    return p;
}

static void *cu_alloc(struct backend *be, size_t bytes)
{
    struct cuda_ctx *c = cuda_ctx_of(be);
    return cuda_dev_alloc(c, bytes < CUDA_MIN_ALLOC ? CUDA_MIN_ALLOC : bytes);
}

static void cu_free(struct backend *be, void *p)
{
    cuda_dev_free(cuda_ctx_of(be), p);
}

static int cu_upload(struct backend *be, void *dst, const void *host_src, size_t bytes)
{
    struct cuda_ctx *c = cuda_ctx_of(be);
    if (!bytes)
        return 0;
    int rc = cuda_check(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, c->stream),
                        "upload");
    if (!rc)
        rc = cuda_check(cudaStreamSynchronize(c->stream), "upload (synchronize)");
    return rc;
}

static int cu_download(struct backend *be, void *host_dst, const void *src, size_t bytes)
{
    struct cuda_ctx *c = cuda_ctx_of(be);
    if (!bytes)
        return 0;
    int rc = cuda_check(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, c->stream),
                        "download");
    if (!rc)
        rc = cuda_check(cudaStreamSynchronize(c->stream), "download (synchronize)");
    return rc;
}

static void *cu_adopt_host(struct backend *be, const void *host, size_t bytes)
{
    void *p = cu_alloc(be, bytes);
    if (!p)
        return NULL;
    if (cu_upload(be, p, host, bytes) != 0) {
        cu_free(be, p);
        return NULL;
    }
    return p;
}

static void cu_release_adopted(struct backend *be, void *p)
{
    cu_free(be, p);
}

static int cu_sync(struct backend *be)
{
    struct cuda_ctx *c = cuda_ctx_of(be);
    return cuda_check(cudaStreamSynchronize(c->stream), "synchronize");
}

static void cu_destroy(struct backend *be)
{
    struct cuda_ctx *c = (struct cuda_ctx *)be->ctx;
    if (!c)
        return;
    if (c->stream) {
        /* the device is current: open_ctx set it before creating the stream */
        (void)cudaSetDevice(c->device);
        cuda_dev_free(c, c->scratch);
        cuda_dev_free(c, c->rope_tab);
        if (c->blas)
            cublasDestroy(c->blas);
        (void)cudaStreamSynchronize(c->stream);
        cudaStreamDestroy(c->stream);
    }
    if (c->use_pool) {
        cudaMemPool_t pool;
        if (cudaDeviceGetDefaultMemPool(&pool, c->device) == cudaSuccess)
            (void)cudaMemPoolTrimTo(pool, 0);
    }
    free(c);
    be->ctx = NULL;
}

static const struct backend_ops cuda_ops = {
    .name = "cuda",
    .destroy = cu_destroy,
    .alloc = cu_alloc,
    .free = cu_free,
    .upload = cu_upload,
    .download = cu_download,
    .adopt_host = cu_adopt_host,
    .release_adopted = cu_release_adopted,
    .sync = cu_sync,
    .linear = cuda_linear,
    .layer_norm = cuda_layer_norm,
    .rms_norm = cuda_rms_norm,
    .modulate = cuda_modulate,
    .gated_add = cuda_gated_add,
    .add = cuda_add,
    .mul = cuda_mul,
    .scale = cuda_scale,
    .gelu_tanh = cuda_gelu_tanh,
    .gelu_erf = cuda_gelu_erf,
    .silu = cuda_silu,
    .rope3d = cuda_rope3d,
    .attention = cuda_attention,
    .permute = cuda_permute,
    .copy = cuda_copy,
    .fill = cuda_fill,
    .conv3d = cuda_conv3d,
};

/* open_ctx() sets up device, stream and cuBLAS in c; 0 or a logged error. */
static int open_ctx(struct cuda_ctx *c, int device)
{
    int n = 0, rc;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        return log_error_rc(ENC_EDEVICE, "backend 'cuda:%d': no usable device: %s", device,
                            cudaGetErrorString(err));
    }
    if (device >= n)
        return log_error_rc(ENC_EDEVICE, "backend 'cuda:%d': no such device (%d found)", device, n);
    c->device = device;
    if ((rc = cuda_check(cudaSetDevice(device), "set device")))
        return rc;
    cudaDeviceProp prop;
    if ((rc = cuda_check(cudaGetDeviceProperties(&prop, device), "device properties")))
        return rc;
    snprintf(c->name, sizeof c->name, "cuda:%d (%.64s)", device, prop.name);
    int pools = 0, smem = 0;
    if ((rc = cuda_check(cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, device),
                         "device attribute")) ||
        (rc = cuda_check(
             cudaDeviceGetAttribute(&smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, device),
             "device attribute")))
        return rc;
    c->use_pool = pools != 0;
    c->max_smem_optin = smem;
    if (c->use_pool) {
        /* keep freed blocks in the pool rather than giving them back to
         * the driver at every synchronize: the engine frees and allocates
         * the same sizes every step */
        cudaMemPool_t pool;
        uint64_t keep = UINT64_MAX;
        if ((rc = cuda_check(cudaDeviceGetDefaultMemPool(&pool, device), "memory pool")) ||
            (rc = cuda_check(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep),
                             "memory pool threshold")))
            return rc;
    }
    if ((rc = cuda_check(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking),
                         "create stream")))
        return rc;
    if ((rc = cuda_blas_check(cublasCreate(&c->blas), "create handle")))
        return rc;
    if ((rc = cuda_blas_check(cublasSetStream(c->blas, c->stream), "set stream")) ||
        (rc = cuda_blas_check(cublasSetAtomicsMode(c->blas, CUBLAS_ATOMICS_NOT_ALLOWED),
                              "atomics mode")) ||
        (rc = cuda_blas_check(cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH), "math mode")) ||
        (rc = cuda_blas_check(cublasSetPointerMode(c->blas, CUBLAS_POINTER_MODE_HOST),
                              "pointer mode")))
        return rc;
    const char *gemm = getenv("ENCORE_CUDA_GEMM");
    if (gemm && strcmp(gemm, "bf16") == 0)
        c->gemm_bf16 = 1;
    else if (gemm && *gemm && strcmp(gemm, "f32") != 0)
        log_warn("ignoring ENCORE_CUDA_GEMM='%s': want f32 or bf16", gemm);
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess)
        free_b = total_b = 0;
    log_info("backend %s: sm_%d%d, %zu MiB free of %zu, %s allocator, %s gemm", c->name, prop.major,
             prop.minor, free_b >> 20, total_b >> 20, c->use_pool ? "stream-ordered" : "plain",
             c->gemm_bf16 ? "bf16" : "f32");
    return 0;
}

extern "C" struct backend *backend_cuda_new(int device)
{
    struct cuda_ctx *c = (struct cuda_ctx *)xcalloc(1, sizeof *c);
    struct backend *be = (struct backend *)xcalloc(1, sizeof *be);
    snprintf(c->name, sizeof c->name, "cuda:%d", device);
    be->ops = &cuda_ops;
    be->ctx = c;
    be->n_threads = 1;
    if (open_ctx(c, device) != 0) {
        cu_destroy(be);
        free(be);
        return NULL;
    }
    return be;
}
