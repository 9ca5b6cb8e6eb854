/*
 * cuda_attention.cu - o = softmax(q k^T * scale) v without the score matrix.
 *
 * Flash-style, on CUDA cores. One block per (batch, head, tile of ATT_BQ
 * queries); each of its ATT_WARPS warps owns ATT_QPW of the queries. The
 * block walks the keys in tiles of ATT_KT = 32 (always in the same order),
 * staging the K and V tile in shared memory (K rows padded to D+1 floats so
 * the 32 lanes reading 32 different keys hit 32 different banks). For each
 * of its queries a warp then
 *   - scores: lane j computes s_j = scale * q . k_j for key j of the tile
 *     (a serial fused multiply-add chain over d, q read from shared memory);
 *   - keeps the online softmax: m' = max(m, max_j s_j), p_j = exp(s_j - m'),
 *     l' = l e^(m - m') + sum_j p_j, with the max and the sum taken by a
 *     shuffle butterfly (float addition commutes, so every lane gets the
 *     same bits);
 *   - accumulates acc = acc e^(m - m') + sum_j p_j v_j, lane L owning the
 *     dims L, L+32, ..., with p_j broadcast by shuffle and j in order.
 * Finally o = acc / l. Memory is O(D) per block: nothing of size Tq x Tk
 * exists. Every sum has a fixed order and there are no atomics, so the bytes
 * of o are the same on every run; the launch shape depends only on (B, Tq,
 * H, D). Head dims up to ATT_MAX_D (each lane keeps D/32 accumulators per
 * query in registers; the K/V tile needs about 8(D+1)*32 bytes of shared
 * memory, which sm_90 allows with the opt-in limit).
 */
#include <math.h>

#include "cuda_backend.h"

#define ATT_WARPS 8
#define ATT_QPW 2                    /* queries per warp */
#define ATT_BQ (ATT_WARPS * ATT_QPW) /* queries per block */
#define ATT_KT 32                    /* keys per tile: one per lane */
#define ATT_THREADS (ATT_WARPS * 32)
#define ATT_MAX_D 512
#define ATT_FULL 0xffffffffu
#define ATT_MAX_GRID 0x7fffffffLL

static size_t att_smem_bytes(int D)
{
    return (size_t)(ATT_BQ * D + ATT_KT * (D + 1) + ATT_KT * D) * sizeof(float);
}

__device__ static float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(ATT_FULL, v, o));
    return v;
}

__device__ static float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v = __fadd_rn(v, __shfl_xor_sync(ATT_FULL, v, o));
    return v;
}

/* DPL: dims per lane, D <= 32 * DPL */
template <int DPL>
__global__ void __launch_bounds__(ATT_THREADS)
    attention_kernel(float *o, const float *q, const float *k, const float *v, int64_t Tq,
                     int64_t Tk, int64_t H, int D, float scale, int64_t n_qblk, int64_t n_blk)
{
    extern __shared__ float smem[];
    float *Qs = smem;                  /* (ATT_BQ, D) */
    float *Ks = Qs + ATT_BQ * D;       /* (ATT_KT, D + 1) */
    float *Vs = Ks + ATT_KT * (D + 1); /* (ATT_KT, D) */
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int64_t HD = H * D;

    for (int64_t blk = blockIdx.x; blk < n_blk; blk += gridDim.x) {
        int64_t qi = blk % n_qblk, bh = blk / n_qblk;
        int64_t h = bh % H, b = bh / H;
        int64_t i0 = qi * ATT_BQ;
        __syncthreads(); /* the previous block's readers of Qs are done */
        for (int idx = tid; idx < ATT_BQ * D; idx += ATT_THREADS) {
            int r = idx / D, d = idx - r * D;
            Qs[idx] = i0 + r < Tq ? q[((b * Tq + i0 + r) * H + h) * D + d] : 0.0f;
        }
        float m[ATT_QPW], l[ATT_QPW], acc[ATT_QPW][DPL];
#pragma unroll
        for (int qq = 0; qq < ATT_QPW; qq++) {
            m[qq] = -INFINITY;
            l[qq] = 0.0f;
#pragma unroll
            for (int i = 0; i < DPL; i++)
                acc[qq][i] = 0.0f;
        }
        for (int64_t k0 = 0; k0 < Tk; k0 += ATT_KT) {
            int nk = Tk - k0 < ATT_KT ? (int)(Tk - k0) : ATT_KT;
            __syncthreads(); /* the previous tile is consumed (and Qs is loaded) */
            for (int idx = tid; idx < ATT_KT * D; idx += ATT_THREADS) {
                int j = idx / D, d = idx - j * D;
                float kv = 0.0f, vv = 0.0f;
                if (j < nk) {
                    int64_t g = (b * Tk + k0 + j) * HD + h * D + d;
                    kv = k[g];
                    vv = v[g];
                }
                Ks[j * (D + 1) + d] = kv;
                Vs[j * D + d] = vv;
            }
            __syncthreads();
#pragma unroll
            for (int qq = 0; qq < ATT_QPW; qq++) {
                int r = warp * ATT_QPW + qq;
                if (i0 + r >= Tq) /* warp-uniform */
                    continue;
                float s = -INFINITY;
                if (lane < nk) {
                    const float *qr = Qs + r * D, *kr = Ks + lane * (D + 1);
                    float dot = 0.0f;
                    for (int d = 0; d < D; d++)
                        dot = fmaf(qr[d], kr[d], dot);
                    s = __fmul_rn(dot, scale);
                }
                float m_new = fmaxf(m[qq], warp_max(s));
                float p = lane < nk ? expf(s - m_new) : 0.0f;
                float sum = warp_sum(p);
                float corr = expf(m[qq] - m_new); /* 0 on the first tile */
                l[qq] = __fadd_rn(__fmul_rn(l[qq], corr), sum);
#pragma unroll
                for (int i = 0; i < DPL; i++)
                    acc[qq][i] = __fmul_rn(acc[qq][i], corr);
                for (int j = 0; j < nk; j++) {
                    float pj = __shfl_sync(ATT_FULL, p, j);
                    const float *vr = Vs + j * D;
#pragma unroll
                    for (int i = 0; i < DPL; i++) {
                        int d = lane + 32 * i;
                        if (d < D)
                            acc[qq][i] = fmaf(pj, vr[d], acc[qq][i]);
                    }
                }
                m[qq] = m_new;
            }
        }
#pragma unroll
        for (int qq = 0; qq < ATT_QPW; qq++) {
            int r = warp * ATT_QPW + qq;
            if (i0 + r >= Tq)
                continue;
            float inv = 1.0f / l[qq];
            float *out = o + ((b * Tq + i0 + r) * H + h) * D;
#pragma unroll
            for (int i = 0; i < DPL; i++) {
                int d = lane + 32 * i;
                if (d < D)
                    out[d] = __fmul_rn(acc[qq][i], inv);
            }
        }
    }
}

template <int DPL>
static int launch(struct cuda_ctx *c, float *o, const float *q, const float *k, const float *v,
                  int64_t B, int64_t Tq, int64_t Tk, int64_t H, int D, float scale)
{
    size_t smem = att_smem_bytes(D);
    if (smem > (size_t)c->max_smem_optin)
        return log_error_rc(ENC_ENOTSUP,
                            "cuda attention: head dim %d needs %zu bytes of shared memory, "
                            "%s allows %d",
                            D, smem, c->name, c->max_smem_optin);
    int rc =
        cuda_check(cudaFuncSetAttribute(attention_kernel<DPL>,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem),
                   "attention shared memory");
    if (rc)
        return rc;
    int64_t n_qblk = (Tq + ATT_BQ - 1) / ATT_BQ;
    int64_t n_blk = B * H * n_qblk;
    unsigned grid = (unsigned)(n_blk < ATT_MAX_GRID ? n_blk : ATT_MAX_GRID);
    attention_kernel<DPL>
        <<<grid, ATT_THREADS, smem, c->stream>>>(o, q, k, v, Tq, Tk, H, D, scale, n_qblk, n_blk);
    return cuda_launch_check("attention");
}

int cuda_attention(struct backend *be, struct tensor *o, const struct tensor *q,
                   const struct tensor *k, const struct tensor *v, float scale)
{
    struct cuda_ctx *c = cuda_ctx_of(be);
    int64_t B = q->shape[0], Tq = q->shape[1], H = q->shape[2], D = q->shape[3];
    int64_t Tk = k->shape[1];
    if (B == 0 || Tq == 0 || H == 0 || D == 0)
        return 0;
    if (D > ATT_MAX_D)
        return log_error_rc(ENC_ENOTSUP, "cuda attention: head dim %lld > %d not supported",
                            (long long)D, ATT_MAX_D);
    float *od = (float *)o->data;
    const float *qd = (const float *)q->data, *kd = (const float *)k->data,
                *vd = (const float *)v->data;
    int d = (int)D;
    if (D <= 32)
        return launch<1>(c, od, qd, kd, vd, B, Tq, Tk, H, d, scale);
    if (D <= 64)
        return launch<2>(c, od, qd, kd, vd, B, Tq, Tk, H, d, scale);
    if (D <= 128)
        return launch<4>(c, od, qd, kd, vd, B, Tq, Tk, H, d, scale);
    if (D <= 256)
        return launch<8>(c, od, qd, kd, vd, B, Tq, Tk, H, d, scale);
    return launch<16>(c, od, qd, kd, vd, B, Tq, Tk, H, d, scale);
}
