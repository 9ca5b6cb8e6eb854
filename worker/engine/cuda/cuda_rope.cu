/*
 * cuda_rope.cu - 3-D rotary position embedding, in place on x [B, T, H, Dh].
 *
 * Token n = (f*h' + i)*w' + j of the grid rotates its pair m (elements 2m,
 * 2m+1 of every head, read as a + ib) by the angle pos*omega: pos is f for
 * the first split[0] pairs, i for the next split[1], j for the last split[2];
 * omega = theta^(-2k/(2*split)) with k the pair's index within its axis.
 * The cos/sin tables are computed on the host in double with the very
 * expressions of the cpu backend (so they are the same bits) and kept on the
 * device for the next call with the same parameters; one thread per rotated
 * pair does the complex product
 * in double and rounds once to f32: the result is the cpu's, bit for bit.
 * Tokens past f*h'*w' are left alone.
 */
#include <math.h>
#include <stdlib.h>

#include "cuda_backend.h"

extern "C" {
#include "common/xmalloc.h"
}

#define ROPE_THREADS 256

struct rope_shape {
    int64_t T, H, P; /* tokens, heads, pairs per head (Dh / 2) */
    int64_t n_rot, grid[3];
    int split[3];
    int64_t off[3]; /* table of axis a at tab + off[a]: (grid[a], split[a], 2) */
};

__global__ void rope_kernel(float *x, const double *tab, int64_t n, struct rope_shape s)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t m = i % s.P, r = i / s.P;
        int64_t h = r % s.H;
        r /= s.H;
        int64_t tok = r % s.n_rot, b = r / s.n_rot;
        int64_t hw = s.grid[1] * s.grid[2];
        int64_t pos;
        int a, k;
        if (m < s.split[0]) {
            a = 0;
            k = (int)m;
            pos = tok / hw;
        } else if (m < s.split[0] + s.split[1]) {
            a = 1;
            k = (int)m - s.split[0];
            pos = (tok % hw) / s.grid[2];
        } else {
            a = 2;
            k = (int)m - s.split[0] - s.split[1];
            pos = tok % s.grid[2];
        }
        const double *t = tab + s.off[a] + (pos * s.split[a] + k) * 2;
        double c = t[0], sn = t[1];
        float *xp = x + ((b * s.T + tok) * s.H + h) * (2 * s.P) + 2 * m;
        double re = xp[0], im = xp[1];
        xp[0] = (float)(re * c - im * sn);
        xp[1] = (float)(re * sn + im * c);
    }
}

/* same_key() tells whether the cached tables were made for p. */
static bool same_key(const struct rope3d_params *a, const struct rope3d_params *b)
{
    for (int i = 0; i < 3; i++)
        if (a->grid[i] != b->grid[i] || a->split[i] != b->split[i])
            return false;
    return a->theta == b->theta;
}

/* rope_tables() sets *tab to the device tables for p, (re)building the
 * cache when p differs from the last call. 0, ENC_ENOMEM or ENC_EDEVICE. */
static int rope_tables(struct cuda_ctx *c, const struct rope3d_params *p, const int64_t *off,
                       int64_t total, const double **tab)
{
    size_t bytes = (size_t)total * sizeof(double);
    *tab = c->rope_tab;
    if (c->rope_tab && same_key(&c->rope_key, p))
        return 0;
    if (bytes > c->rope_cap) {
        cuda_dev_free(c, c->rope_tab);
        c->rope_tab = NULL;
        c->rope_cap = 0;
        double *t = (double *)cuda_dev_alloc(c, bytes);
        if (!t)
            return ENC_ENOMEM;
        c->rope_tab = t;
        c->rope_cap = bytes;
    }
    double *host = (double *)xmalloc(bytes);
    for (int a = 0; a < 3; a++) {
        int sa = p->split[a];
        double *t = host + off[a];
        for (int k = 0; k < sa; k++) {
            /* as Wan's rope_params and cpu_rope.c: 1 / theta^(2k / 2s) */
            double omega = 1.0 / pow(p->theta, (double)(2 * k) / (double)(2 * sa));
            for (int64_t pos = 0; pos < p->grid[a]; pos++) {
                double ang = (double)pos * omega;
                t[(pos * sa + k) * 2] = cos(ang);
                t[(pos * sa + k) * 2 + 1] = sin(ang);
            }
        }
    }
    /* wait for the copy so host can go (a cache miss is rare: the DiT
     * rotates with the same grid in every block of every step) */
    int rc =
        cuda_check(cudaMemcpyAsync(c->rope_tab, host, bytes, cudaMemcpyHostToDevice, c->stream),
                   "rope3d table upload");
    if (!rc)
        rc = cuda_check(cudaStreamSynchronize(c->stream), "rope3d table upload");
    free(host);
    if (rc) {
        c->rope_key.theta = -1.0; /* never matches a valid call */
        return rc;
    }
    c->rope_key = *p;
    *tab = c->rope_tab;
    return 0;
}

int cuda_rope3d(struct backend *be, struct tensor *x, const struct rope3d_params *p)
{
    struct cuda_ctx *c = cuda_ctx_of(be);
    struct rope_shape s;
    int64_t B = x->shape[0];
    s.T = x->shape[1];
    s.H = x->shape[2];
    s.P = x->shape[3] / 2;
    s.n_rot = p->grid[0] * p->grid[1] * p->grid[2];
    int64_t total = 0;
    for (int a = 0; a < 3; a++) {
        s.grid[a] = p->grid[a];
        s.split[a] = p->split[a];
        s.off[a] = total;
        total += p->grid[a] * p->split[a] * 2;
    }
    int64_t n = B * s.n_rot * s.H * s.P;
    if (n <= 0)
        return 0;
    const double *tab = NULL;
    int rc = rope_tables(c, p, s.off, total, &tab);
    if (rc)
        return rc;
    rope_kernel<<<cuda_blocks(n, ROPE_THREADS), ROPE_THREADS, 0, c->stream>>>((float *)x->data, tab,
                                                                              n, s);
    return cuda_launch_check("rope3d");
}
