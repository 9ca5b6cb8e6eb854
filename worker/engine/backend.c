/*
 * backend.c - opening backends and the checked wrappers models call.
 *
 * Every op goes through a wrapper here: it checks dtypes and shapes (a
 * mismatch is logged with both shapes and returns ENC_EINVAL, nothing is
 * computed), counts the call in be->op_calls, then dispatches to the
 * backend's table. Backends may therefore assume well-formed arguments. This
 * is also the one place for tracing and fault injection (STYLE 11).
 */
#include "backend.h"

#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/parse.h"
#include "common/xmalloc.h"

struct backend *backend_open(const char *spec, int n_threads)
{
    if (!spec || strcmp(spec, "cpu") == 0)
        return backend_cpu_new(n_threads);
    if (strncmp(spec, "cuda", 4) == 0 && (spec[4] == 0 || spec[4] == ':')) {
        int dev = 0;
        if (spec[4] == ':' && parse_int(spec + 5, 0, 1023, &dev) != 0) {
            log_error("backend '%s': bad device number", spec);
            return NULL;
        }
#ifdef ENCORE_CUDA
        return backend_cuda_new(dev);
#else
        (void)dev;
        log_error("backend '%s': cuda backend not built (make CUDA=1)", spec);
        return NULL;
#endif
    }
    log_error("backend '%s': unknown (this build has: %s)", spec, backend_list());
    return NULL;
}

void backend_destroy(struct backend **bep)
{
    struct backend *be = bep ? *bep : NULL;
    if (!be)
        return;
    if (be->ops->destroy)
        be->ops->destroy(be);
    free(be);
    *bep = NULL;
}

const char *backend_name(const struct backend *be)
{
    return be ? be->ops->name : "none";
}

const char *backend_list(void)
{
#ifdef ENCORE_CUDA
    return "cpu,cuda";
#else
    return "cpu";
#endif
}

void *backend_alloc(struct backend *be, size_t bytes)
{
    return be->ops->alloc(be, bytes);
}

void backend_free(struct backend *be, void *p)
{
    if (p)
        be->ops->free(be, p);
}

int backend_upload(struct backend *be, struct tensor *dst, const void *host, size_t bytes)
{
    if (bytes > tensor_nbytes(dst))
        return log_error_rc(ENC_EINVAL, "upload: %zu bytes into a tensor of %zu", bytes,
                            tensor_nbytes(dst));
    return be->ops->upload(be, dst->data, host, bytes);
}

int backend_download(struct backend *be, void *host, const struct tensor *src, size_t bytes)
{
    if (bytes > tensor_nbytes(src))
        return log_error_rc(ENC_EINVAL, "download: %zu bytes from a tensor of %zu", bytes,
                            tensor_nbytes(src));
    return be->ops->download(be, host, src->data, bytes);
}

int backend_sync(struct backend *be)
{
    return be->ops->sync(be);
}

struct tensor *backend_tensor_from_host(struct backend *be, enum dtype dt, int ndim,
                                        const int64_t *shape, const void *host, int adopt)
{
    if (ndim < 0 || ndim > TENSOR_MAX_DIMS || (unsigned)dt >= DTYPE_COUNT)
        return NULL;
    if (!adopt) {
        struct tensor *t = tensor_new(be, dt, ndim, shape);
        if (!t)
            return NULL;
        if (backend_upload(be, t, host, tensor_nbytes(t)) != 0) {
            tensor_destroy(&t);
            return NULL;
        }
        return t;
    }
    struct tensor *t = xcalloc(1, sizeof *t);
    t->dtype = dt;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) {
            free(t);
            return NULL;
        }
        t->shape[i] = shape[i];
    }
    t->be = be;
    t->data = be->ops->adopt_host(be, host, tensor_nbytes(t));
    if (!t->data) {
        free(t);
        return NULL;
    }
    /* the cpu uses the host memory in place (not ours to free); a device
     * backend's adopted copy is freed with the tensor */
    t->owns_data = t->data != host;
    return t;
}

float *backend_tensor_to_f32(struct backend *be, const struct tensor *t)
{
    if (t->dtype != DTYPE_F32) {
        log_error("tensor_to_f32: tensor is %s, not F32", dtype_name(t->dtype));
        return NULL;
    }
    size_t n = (size_t)tensor_numel(t);
    float *h = xmalloc(n ? n * sizeof(float) : 1);
    if (backend_download(be, h, t, n * sizeof(float)) != 0) {
        free(h);
        return NULL;
    }
    return h;
}

/* ---- argument checks ---- */

#define SHAPE_BUF 96

static int check_present(const char *op, const char *name, const struct tensor *t)
{
    if (!t || (!t->data && tensor_numel(t) > 0))
        return log_error_rc(ENC_EINVAL, "%s: missing tensor '%s'", op, name);
    return 0;
}

static int check_f32(const char *op, const char *name, const struct tensor *t)
{
    int rc = check_present(op, name, t);
    if (rc)
        return rc;
    if (t->dtype != DTYPE_F32) {
        char s[SHAPE_BUF];
        return log_error_rc(ENC_EINVAL, "%s: '%s' %s is %s, want F32", op, name,
                            tensor_shape_str(t, s, sizeof s), dtype_name(t->dtype));
    }
    return 0;
}

static int check_weight(const char *op, const char *name, const struct tensor *t)
{
    int rc = check_present(op, name, t);
    if (rc)
        return rc;
    if (t->dtype != DTYPE_F32 && t->dtype != DTYPE_BF16 && t->dtype != DTYPE_F16) {
        char s[SHAPE_BUF];
        return log_error_rc(ENC_EINVAL, "%s: weight '%s' %s is %s, want F32, BF16 or F16", op,
                            name, tensor_shape_str(t, s, sizeof s), dtype_name(t->dtype));
    }
    return 0;
}

/* mismatch() logs two tensors' shapes with a reason and returns ENC_EINVAL. */
static int mismatch(const char *op, const char *na, const struct tensor *a, const char *nb,
                    const struct tensor *b, const char *why)
{
    char sa[SHAPE_BUF], sb[SHAPE_BUF];
    return log_error_rc(ENC_EINVAL, "%s: '%s' %s and '%s' %s: %s", op, na,
                        tensor_shape_str(a, sa, sizeof sa), nb, tensor_shape_str(b, sb, sizeof sb),
                        why);
}

static int64_t last_dim(const struct tensor *t)
{
    return t->ndim > 0 ? t->shape[t->ndim - 1] : 1;
}

static int same_data(const struct tensor *a, const struct tensor *b)
{
    return a->data == b->data && tensor_numel(a) > 0;
}

static int overlaps(const struct tensor *a, const struct tensor *b)
{
    const char *pa = a->data, *pb = b->data;
    size_t na = tensor_nbytes(a), nb = tensor_nbytes(b);
    return na && nb && pa < pb + nb && pb < pa + na;
}

#define COUNT(be, op) ((be)->op_calls[op]++)

/* ---- the op wrappers ---- */

int backend_linear(struct backend *be, struct tensor *y, const struct tensor *x,
                   const struct tensor *w, const struct tensor *b)
{
    int rc;
    if ((rc = check_f32("linear", "y", y)) || (rc = check_f32("linear", "x", x)) ||
        (rc = check_weight("linear", "w", w)) || (b && (rc = check_f32("linear", "b", b))))
        return rc;
    if (w->ndim != 2)
        return mismatch("linear", "x", x, "w", w, "w must be [N,K]");
    int64_t N = w->shape[0], K = w->shape[1];
    if (x->ndim < 1 || last_dim(x) != K)
        return mismatch("linear", "x", x, "w", w, "x's last dim is not K");
    int64_t M = K ? tensor_numel(x) / K : 0;
    if (y->ndim < 1 || last_dim(y) != N || (K && tensor_numel(y) != M * N))
        return mismatch("linear", "y", y, "x", x, "y is not [M,N]");
    if (b && tensor_numel(b) != N)
        return mismatch("linear", "b", b, "w", w, "b is not [N]");
    if (overlaps(y, x))
        return mismatch("linear", "y", y, "x", x, "y aliases x");
    COUNT(be, BACKEND_OP_LINEAR);
    return be->ops->linear(be, y, x, w, b);
}

static int check_norm(const char *op, const struct tensor *y, const struct tensor *x,
                      const struct tensor *w, const struct tensor *b)
{
    int rc;
    if ((rc = check_f32(op, "y", y)) || (rc = check_f32(op, "x", x)) ||
        (w && (rc = check_f32(op, "w", w))) || (b && (rc = check_f32(op, "b", b))))
        return rc;
    if (x->ndim < 1)
        return mismatch(op, "y", y, "x", x, "x has no dims");
    if (!tensor_same_shape(y, x))
        return mismatch(op, "y", y, "x", x, "shapes differ");
    if (w && tensor_numel(w) != last_dim(x))
        return mismatch(op, "w", w, "x", x, "w is not [D]");
    if (b && tensor_numel(b) != last_dim(x))
        return mismatch(op, "b", b, "x", x, "b is not [D]");
    if (overlaps(y, x) && !same_data(y, x))
        return mismatch(op, "y", y, "x", x, "y partly overlaps x");
    return 0;
}

int backend_layer_norm(struct backend *be, struct tensor *y, const struct tensor *x,
                       const struct tensor *w, const struct tensor *b, float eps)
{
    int rc = check_norm("layer_norm", y, x, w, b);
    if (rc)
        return rc;
    COUNT(be, BACKEND_OP_LAYER_NORM);
    return be->ops->layer_norm(be, y, x, w, b, eps);
}

int backend_rms_norm(struct backend *be, struct tensor *y, const struct tensor *x,
                     const struct tensor *w, float eps)
{
    int rc = check_norm("rms_norm", y, x, w, NULL);
    if (rc)
        return rc;
    COUNT(be, BACKEND_OP_RMS_NORM);
    return be->ops->rms_norm(be, y, x, w, eps);
}

/* check_rowvec() accepts v as [B,D] or [1,D] (any shape with last dim D
 * and B*D or D elements) against x [B,T,D]. */
static int check_rowvec(const char *op, const char *name, const struct tensor *v,
                        const struct tensor *x)
{
    int rc = check_f32(op, name, v);
    if (rc)
        return rc;
    int64_t D = x->shape[2], n = tensor_numel(v);
    if (last_dim(v) != D || (n != D && n != x->shape[0] * D))
        return mismatch(op, name, v, "x", x, "want [B,D] or [1,D]");
    return 0;
}

int backend_modulate(struct backend *be, struct tensor *y, const struct tensor *x,
                     const struct tensor *shift, const struct tensor *scale)
{
    int rc;
    if ((rc = check_f32("modulate", "y", y)) || (rc = check_f32("modulate", "x", x)))
        return rc;
    if (x->ndim != 3)
        return mismatch("modulate", "y", y, "x", x, "x must be [B,T,D]");
    if (!tensor_same_shape(y, x))
        return mismatch("modulate", "y", y, "x", x, "shapes differ");
    if ((rc = check_rowvec("modulate", "shift", shift, x)) ||
        (rc = check_rowvec("modulate", "scale", scale, x)))
        return rc;
    if (overlaps(y, x) && !same_data(y, x))
        return mismatch("modulate", "y", y, "x", x, "y partly overlaps x");
    COUNT(be, BACKEND_OP_MODULATE);
    return be->ops->modulate(be, y, x, shift, scale);
}

int backend_gated_add(struct backend *be, struct tensor *x, const struct tensor *y,
                      const struct tensor *gate)
{
    int rc;
    if ((rc = check_f32("gated_add", "x", x)) || (rc = check_f32("gated_add", "y", y)))
        return rc;
    if (x->ndim != 3)
        return mismatch("gated_add", "x", x, "y", y, "x must be [B,T,D]");
    if (!tensor_same_shape(y, x))
        return mismatch("gated_add", "x", x, "y", y, "shapes differ");
    if ((rc = check_rowvec("gated_add", "gate", gate, x)))
        return rc;
    if (overlaps(y, x) && !same_data(y, x))
        return mismatch("gated_add", "x", x, "y", y, "y partly overlaps x");
    COUNT(be, BACKEND_OP_GATED_ADD);
    return be->ops->gated_add(be, x, y, gate);
}

static int check_binary(const char *op, const struct tensor *y, const struct tensor *a,
                        const struct tensor *b)
{
    int rc;
    if ((rc = check_f32(op, "y", y)) || (rc = check_f32(op, "a", a)) ||
        (rc = check_f32(op, "b", b)))
        return rc;
    if (tensor_numel(y) != tensor_numel(a))
        return mismatch(op, "y", y, "a", a, "element counts differ");
    int64_t na = tensor_numel(a), nb = tensor_numel(b);
    if (na > 0 && (nb == 0 || na % nb != 0))
        return mismatch(op, "a", a, "b", b, "numel(a) is not a multiple of numel(b)");
    if (overlaps(y, a) && !same_data(y, a))
        return mismatch(op, "y", y, "a", a, "y partly overlaps a");
    if (overlaps(y, b) && !(same_data(y, b) && na == nb))
        return mismatch(op, "y", y, "b", b, "y overlaps b");
    return 0;
}

int backend_add(struct backend *be, struct tensor *y, const struct tensor *a,
                const struct tensor *b)
{
    int rc = check_binary("add", y, a, b);
    if (rc)
        return rc;
    COUNT(be, BACKEND_OP_ADD);
    return be->ops->add(be, y, a, b);
}

int backend_mul(struct backend *be, struct tensor *y, const struct tensor *a,
                const struct tensor *b)
{
    int rc = check_binary("mul", y, a, b);
    if (rc)
        return rc;
    COUNT(be, BACKEND_OP_MUL);
    return be->ops->mul(be, y, a, b);
}

static int check_unary(const char *op, const struct tensor *y, const struct tensor *x)
{
    int rc;
    if ((rc = check_f32(op, "y", y)) || (rc = check_f32(op, "x", x)))
        return rc;
    if (tensor_numel(y) != tensor_numel(x))
        return mismatch(op, "y", y, "x", x, "element counts differ");
    if (overlaps(y, x) && !same_data(y, x))
        return mismatch(op, "y", y, "x", x, "y partly overlaps x");
    return 0;
}

int backend_scale(struct backend *be, struct tensor *y, const struct tensor *x, float alpha)
{
    int rc = check_unary("scale", y, x);
    if (rc)
        return rc;
    COUNT(be, BACKEND_OP_SCALE);
    return be->ops->scale(be, y, x, alpha);
}

int backend_gelu_tanh(struct backend *be, struct tensor *y, const struct tensor *x)
{
    int rc = check_unary("gelu_tanh", y, x);
    if (rc)
        return rc;
    COUNT(be, BACKEND_OP_GELU_TANH);
    return be->ops->gelu_tanh(be, y, x);
}

int backend_gelu_erf(struct backend *be, struct tensor *y, const struct tensor *x)
{
    int rc = check_unary("gelu_erf", y, x);
    if (rc)
        return rc;
    COUNT(be, BACKEND_OP_GELU_ERF);
    return be->ops->gelu_erf(be, y, x);
}

int backend_silu(struct backend *be, struct tensor *y, const struct tensor *x)
{
    int rc = check_unary("silu", y, x);
    if (rc)
        return rc;
    COUNT(be, BACKEND_OP_SILU);
    return be->ops->silu(be, y, x);
}

int backend_rope3d(struct backend *be, struct tensor *x, const struct rope3d_params *p)
{
    int rc = check_f32("rope3d", "x", x);
    if (rc)
        return rc;
    char s[SHAPE_BUF];
    if (!p)
        return log_error_rc(ENC_EINVAL, "rope3d: missing parameters");
    if (x->ndim != 4)
        return log_error_rc(ENC_EINVAL, "rope3d: x %s is not [B,T,H,Dh]",
                            tensor_shape_str(x, s, sizeof s));
    int64_t pairs = 0;
    for (int a = 0; a < 3; a++) {
        if (p->split[a] < 0 || p->grid[a] < 0)
            return log_error_rc(ENC_EINVAL, "rope3d: negative split or grid on axis %d", a);
        pairs += p->split[a];
    }
    if (2 * pairs != x->shape[3])
        return log_error_rc(ENC_EINVAL,
                            "rope3d: x %s: splits %d+%d+%d pairs do not fill head dim %lld",
                            tensor_shape_str(x, s, sizeof s), p->split[0], p->split[1],
                            p->split[2], (long long)x->shape[3]);
    int64_t n = p->grid[0] * p->grid[1] * p->grid[2];
    if (n > x->shape[1])
        return log_error_rc(ENC_EINVAL, "rope3d: x %s has fewer tokens than grid %lldx%lldx%lld",
                            tensor_shape_str(x, s, sizeof s), (long long)p->grid[0],
                            (long long)p->grid[1], (long long)p->grid[2]);
    if (!(p->theta > 0))
        return log_error_rc(ENC_EINVAL, "rope3d: theta %g is not positive", p->theta);
    COUNT(be, BACKEND_OP_ROPE3D);
    return be->ops->rope3d(be, x, p);
}

int backend_attention(struct backend *be, struct tensor *o, const struct tensor *q,
                      const struct tensor *k, const struct tensor *v, float scale)
{
    int rc;
    if ((rc = check_f32("attention", "o", o)) || (rc = check_f32("attention", "q", q)) ||
        (rc = check_f32("attention", "k", k)) || (rc = check_f32("attention", "v", v)))
        return rc;
    if (q->ndim != 4)
        return mismatch("attention", "q", q, "k", k, "q must be [B,Tq,H,D]");
    if (k->ndim != 4 || k->shape[0] != q->shape[0] || k->shape[2] != q->shape[2] ||
        k->shape[3] != q->shape[3])
        return mismatch("attention", "q", q, "k", k, "k must be [B,Tk,H,D]");
    if (!tensor_same_shape(k, v))
        return mismatch("attention", "k", k, "v", v, "shapes differ");
    if (k->shape[1] < 1 && tensor_numel(q) > 0)
        return mismatch("attention", "q", q, "k", k, "no keys");
    if (!tensor_same_shape(o, q))
        return mismatch("attention", "o", o, "q", q, "shapes differ");
    if (overlaps(o, q) || overlaps(o, k) || overlaps(o, v))
        return log_error_rc(ENC_EINVAL, "attention: o aliases q, k or v");
    COUNT(be, BACKEND_OP_ATTENTION);
    return be->ops->attention(be, o, q, k, v, scale);
}

int backend_permute(struct backend *be, struct tensor *y, const struct tensor *x,
                    const int *perm)
{
    int rc;
    if ((rc = check_present("permute", "y", y)) || (rc = check_present("permute", "x", x)))
        return rc;
    if (!perm)
        return log_error_rc(ENC_EINVAL, "permute: missing perm");
    if (y->dtype != x->dtype || y->ndim != x->ndim)
        return mismatch("permute", "y", y, "x", x, "dtype or rank differ");
    int seen[TENSOR_MAX_DIMS] = {0};
    for (int i = 0; i < x->ndim; i++) {
        if (perm[i] < 0 || perm[i] >= x->ndim || seen[perm[i]]++)
            return mismatch("permute", "y", y, "x", x, "perm is not a permutation");
        if (y->shape[i] != x->shape[perm[i]])
            return mismatch("permute", "y", y, "x", x, "y.shape[i] != x.shape[perm[i]]");
    }
    if (overlaps(y, x))
        return mismatch("permute", "y", y, "x", x, "y aliases x");
    COUNT(be, BACKEND_OP_PERMUTE);
    return be->ops->permute(be, y, x, perm);
}

int backend_copy(struct backend *be, struct tensor *y, const struct tensor *x)
{
    int rc;
    if ((rc = check_present("copy", "y", y)) || (rc = check_present("copy", "x", x)))
        return rc;
    if (y->dtype != x->dtype || tensor_numel(y) != tensor_numel(x))
        return mismatch("copy", "y", y, "x", x, "dtype or element count differ");
    COUNT(be, BACKEND_OP_COPY);
    return be->ops->copy(be, y, x);
}

int backend_fill(struct backend *be, struct tensor *y, float value)
{
    int rc = check_f32("fill", "y", y);
    if (rc)
        return rc;
    COUNT(be, BACKEND_OP_FILL);
    return be->ops->fill(be, y, value);
}

int backend_conv3d(struct backend *be, struct tensor *y, const struct tensor *x,
                   const struct tensor *w, const struct tensor *b, const struct conv_params *p)
{
    int rc;
    if ((rc = check_f32("conv3d", "y", y)) || (rc = check_f32("conv3d", "x", x)) ||
        (rc = check_weight("conv3d", "w", w)) || (b && (rc = check_f32("conv3d", "b", b))))
        return rc;
    if (!p)
        return log_error_rc(ENC_EINVAL, "conv3d: missing parameters");
    if (x->ndim != 4)
        return mismatch("conv3d", "x", x, "w", w, "x must be [Cin,T,H,W]");
    if (w->ndim != 5)
        return mismatch("conv3d", "x", x, "w", w, "w must be [Cout,Cin/groups,kt,kh,kw]");
    int64_t cin = x->shape[0], cout = w->shape[0];
    if (p->groups < 1 || cin % p->groups != 0 || cout % p->groups != 0 ||
        w->shape[1] * p->groups != cin)
        return mismatch("conv3d", "x", x, "w", w, "channels do not match the groups");
    int64_t out[3];
    for (int a = 0; a < 3; a++) {
        if (p->stride[a] < 1 || p->pad_front[a] < 0 || p->pad_back[a] < 0)
            return log_error_rc(ENC_EINVAL, "conv3d: bad stride or padding on axis %d", a);
        int64_t span = x->shape[1 + a] + p->pad_front[a] + p->pad_back[a] - w->shape[2 + a];
        if (span < 0)
            return mismatch("conv3d", "x", x, "w", w, "kernel larger than the padded input");
        out[a] = span / p->stride[a] + 1;
    }
    if (y->ndim != 4 || y->shape[0] != cout || y->shape[1] != out[0] || y->shape[2] != out[1] ||
        y->shape[3] != out[2]) {
        char sy[SHAPE_BUF];
        return log_error_rc(ENC_EINVAL, "conv3d: 'y' %s, want [%lld,%lld,%lld,%lld]",
                            tensor_shape_str(y, sy, sizeof sy), (long long)cout,
                            (long long)out[0], (long long)out[1], (long long)out[2]);
    }
    if (b && tensor_numel(b) != cout)
        return mismatch("conv3d", "b", b, "w", w, "b is not [Cout]");
    if (overlaps(y, x))
        return mismatch("conv3d", "y", y, "x", x, "y aliases x");
    COUNT(be, BACKEND_OP_CONV3D);
    return be->ops->conv3d(be, y, x, w, b, p);
}
