/*
 * image_resize_pil.c - Pillow's separable 8-bit bicubic resampling.
 *
 * One pass resizes one axis. For output sample i of a resize in -> out:
 *   scale = in/out, filterscale = max(scale, 1), support = 2 * filterscale,
 *   center = (i + 0.5) * scale,
 *   taps x in [xmin, xmax) with xmin = max((int)(center - support + 0.5), 0)
 *   and xmax = min((int)(center + support + 0.5), in)   ((int) truncates),
 *   w(x) = bicubic((x - center + 0.5) / filterscale), normalised by their sum,
 * then each weight becomes round-half-away(w * 2^22) (an int), the dot product
 * starts at 2^21 and is shifted down by 22 and saturated to [0, 255].
 * Widening the kernel by filterscale is the antialiasing when downscaling.
 * Pillow runs the horizontal pass first (when the width changes) into an
 * 8-bit intermediate, then the vertical pass (when the height changes); an
 * unchanged size is a copy. Every double expression keeps Pillow's operand
 * order so the weights are the same IEEE values.
 *
 * The accumulator is int64 here (Pillow uses int); for 8-bit inputs and this
 * kernel Pillow's int never overflows, so the results are identical.
 */
#include "common/image_resize_pil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/xmalloc.h"

#define PRECISION_BITS (32 - 8 - 2)
#define BICUBIC_A (-0.5)
#define BICUBIC_SUPPORT 2.0

double image_resize_pil_bicubic(double x)
{
    if (x < 0.0)
        x = -x;
    if (x < 1.0)
        return ((BICUBIC_A + 2.0) * x - (BICUBIC_A + 3.0)) * x * x + 1;
    if (x < 2.0)
        return (((x - 5) * x + 8) * x - 4) * BICUBIC_A;
    return 0.0;
}

int image_resize_pil_coeffs(int in_size, int out_size, int *xmin_out, int *ntaps_out, double *k)
{
    if (in_size < 1 || out_size < 1)
        return log_error_rc(ENC_EINVAL, "resize: bad sizes %d -> %d", in_size, out_size);
    double scale = (double)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = BICUBIC_SUPPORT * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    if (!xmin_out && !ntaps_out && !k)
        return ksize;
    double ss = 1.0 / filterscale;
    for (int xx = 0; xx < out_size; xx++) {
        double center = (xx + 0.5) * scale;
        double ww = 0.0;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0)
            xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size)
            xmax = in_size;
        xmax -= xmin;
        double *kr = k ? k + (size_t)xx * ksize : NULL;
        for (int x = 0; x < xmax; x++) {
            double w = image_resize_pil_bicubic((x + xmin - center + 0.5) * ss);
            if (kr)
                kr[x] = w;
            ww += w;
        }
        if (kr) {
            for (int x = 0; x < xmax; x++)
                if (ww != 0.0)
                    kr[x] /= ww;
            for (int x = xmax; x < ksize; x++)
                kr[x] = 0;
        }
        if (xmin_out)
            xmin_out[xx] = xmin;
        if (ntaps_out)
            ntaps_out[xx] = xmax;
    }
    return ksize;
}

/* One axis's fixed-point weights: kk[out * ksize], bounds xmin/ntaps[out]. */
struct pass {
    int ksize;
    int *xmin, *ntaps;
    int32_t *kk;
};

static int pass_init(struct pass *p, int in_size, int out_size)
{
    int ksize = image_resize_pil_coeffs(in_size, out_size, NULL, NULL, NULL);
    if (ksize < 0)
        return ksize;
    double *k = xmalloc((size_t)out_size * ksize * sizeof *k);
    p->ksize = ksize;
    p->xmin = xmalloc((size_t)out_size * sizeof *p->xmin);
    p->ntaps = xmalloc((size_t)out_size * sizeof *p->ntaps);
    p->kk = xmalloc((size_t)out_size * ksize * sizeof *p->kk);
    image_resize_pil_coeffs(in_size, out_size, p->xmin, p->ntaps, k);
    for (size_t i = 0; i < (size_t)out_size * ksize; i++) {
        /* Round half away from zero through a truncating cast, as Pillow. */
        if (k[i] < 0)
            p->kk[i] = (int32_t)(-0.5 + k[i] * (1 << PRECISION_BITS));
        else
            p->kk[i] = (int32_t)(0.5 + k[i] * (1 << PRECISION_BITS));
    }
    free(k);
    return 0;
}

static void pass_release(struct pass *p)
{
    free(p->xmin);
    free(p->ntaps);
    free(p->kk);
}

static uint8_t clip8(int64_t in)
{
    if (in >= ((int64_t)1 << PRECISION_BITS << 8))
        return 255;
    if (in <= 0)
        return 0;
    return (uint8_t)(in >> PRECISION_BITS);
}

/* src (h, sw, c) -> dst (h, dw, c) */
static void resample_horizontal(const uint8_t *src, int sw, int h, int c, uint8_t *dst, int dw,
                                const struct pass *p)
{
    for (int y = 0; y < h; y++) {
        const uint8_t *row = src + (size_t)y * sw * c;
        uint8_t *out = dst + (size_t)y * dw * c;
        for (int xx = 0; xx < dw; xx++) {
            const int32_t *k = p->kk + (size_t)xx * p->ksize;
            int xmin = p->xmin[xx], n = p->ntaps[xx];
            for (int ch = 0; ch < c; ch++) {
                int64_t ss = (int64_t)1 << (PRECISION_BITS - 1);
                for (int x = 0; x < n; x++)
                    ss += (int64_t)row[(size_t)(x + xmin) * c + ch] * k[x];
                out[(size_t)xx * c + ch] = clip8(ss);
            }
        }
    }
}

/* src (sh, w, c) -> dst (dh, w, c) */
static void resample_vertical(const uint8_t *src, int w, int c, uint8_t *dst, int dh,
                              const struct pass *p)
{
    size_t stride = (size_t)w * c;
    for (int yy = 0; yy < dh; yy++) {
        const int32_t *k = p->kk + (size_t)yy * p->ksize;
        int ymin = p->xmin[yy], n = p->ntaps[yy];
        uint8_t *out = dst + (size_t)yy * stride;
        for (size_t i = 0; i < stride; i++) {
            int64_t ss = (int64_t)1 << (PRECISION_BITS - 1);
            for (int y = 0; y < n; y++)
                ss += (int64_t)src[(size_t)(y + ymin) * stride + i] * k[y];
            out[i] = clip8(ss);
        }
    }
}

int image_resize_pil(const uint8_t *src, int sw, int sh, int channels, uint8_t *dst, int dw, int dh)
{
    if (sw < 1 || sh < 1 || dw < 1 || dh < 1 || channels < 1 || channels > 4)
        return log_error_rc(ENC_EINVAL, "resize: bad geometry %dx%dx%d -> %dx%d", sw, sh, channels,
                            dw, dh);
    int need_h = dw != sw, need_v = dh != sh;
    if (!need_h && !need_v) {
        memcpy(dst, src, (size_t)sw * sh * channels);
        return 0;
    }
    struct pass ph = {0}, pv = {0};
    uint8_t *tmp = NULL;
    int rc = 0;
    if (need_h && (rc = pass_init(&ph, sw, dw)) < 0)
        goto done;
    if (need_v && (rc = pass_init(&pv, sh, dh)) < 0)
        goto done;
    if (need_h && need_v) {
        tmp = xmalloc((size_t)dw * sh * channels);
        resample_horizontal(src, sw, sh, channels, tmp, dw, &ph);
        resample_vertical(tmp, dw, channels, dst, dh, &pv);
    } else if (need_h) {
        resample_horizontal(src, sw, sh, channels, dst, dw, &ph);
    } else {
        resample_vertical(src, sw, channels, dst, dh, &pv);
    }
done:
    free(tmp);
    if (need_h)
        pass_release(&ph);
    if (need_v)
        pass_release(&pv);
    return rc;
}
