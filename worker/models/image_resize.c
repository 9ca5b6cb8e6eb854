/*
 * image_resize.c - PyTorch's bicubic resize (align_corners=False, no
 * antialias), separable: per output pixel
 *   out = sum_j wy[j] * (sum_i wx[i] * src[y_j][x_i])
 * with both sums accumulated left to right in f32, the order of ATen's
 * generic CPU upsampling kernel (height is the outer interpolated dim).
 * Weights: t = src - floor(src) and the Keys kernel with A = -0.75, where
 * scale = in/out is f32 and src, t and the weights are taken in double and
 * the weights rounded to f32 (of the f32/double splits tried, the one
 * closest to the clip_vision fixture: max 6.6e-7 off, not bit-exact; ATen's
 * exact rounding sequence was not reproduced):
 *   w0 = k2(t + 1), w1 = k1(t), w2 = k1(1 - t), w3 = k2(2 - t),
 *   k1(x) = ((A + 2) x - (A + 3)) x x + 1,
 *   k2(x) = ((A x - 5A) x + 8A) x - 4A.
 */
#include "image_resize.h"

#include <math.h>
#include <stdlib.h>

#include "common/xmalloc.h"

struct taps {
    int64_t idx[4];
    float w[4];
};

static double cubic1(double x, double a)
{
    return ((a + 2) * x - (a + 3)) * x * x + 1;
}

static double cubic2(double x, double a)
{
    return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
}

static void make_taps(int64_t in, int64_t out, struct taps *tp)
{
    const double a = -0.75;
    float scale = out > 0 ? (float)in / (float)out : 0.0f;
    for (int64_t d = 0; d < out; d++) {
        double s = (double)scale * ((double)d + 0.5) - 0.5;
        int64_t i0 = (int64_t)floor(s);
        if (i0 > in - 1)
            i0 = in - 1;
        double t = s - (double)i0;
        if (t < 0)
            t = 0;
        if (t > 1)
            t = 1;
        tp[d].w[0] = (float)cubic2(t + 1.0, a);
        tp[d].w[1] = (float)cubic1(t, a);
        tp[d].w[2] = (float)cubic1(1.0 - t, a);
        tp[d].w[3] = (float)cubic2(2.0 - t, a);
        for (int j = 0; j < 4; j++) {
            int64_t k = i0 - 1 + j;
            tp[d].idx[j] = k < 0 ? 0 : k > in - 1 ? in - 1 : k;
        }
    }
}

void image_resize_bicubic(const float *src, int64_t C, int64_t H, int64_t W, float *dst, int64_t OH,
                          int64_t OW)
{
    struct taps *ty = xmalloc((size_t)OH * sizeof(*ty));
    struct taps *tx = xmalloc((size_t)OW * sizeof(*tx));
    make_taps(H, OH, ty);
    make_taps(W, OW, tx);
    for (int64_t c = 0; c < C; c++) {
        const float *p = src + c * H * W;
        float *q = dst + c * OH * OW;
        for (int64_t oy = 0; oy < OH; oy++) {
            for (int64_t ox = 0; ox < OW; ox++) {
                float acc = 0;
                for (int j = 0; j < 4; j++) {
                    const float *row = p + ty[oy].idx[j] * W;
                    float r = row[tx[ox].idx[0]] * tx[ox].w[0];
                    for (int i = 1; i < 4; i++)
                        r += row[tx[ox].idx[i]] * tx[ox].w[i];
                    if (j == 0)
                        acc = r * ty[oy].w[0];
                    else
                        acc += r * ty[oy].w[j];
                }
                q[oy * OW + ox] = acc;
            }
        }
    }
    free(ty);
    free(tx);
}
