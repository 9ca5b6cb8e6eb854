/*
 * image_resize_pil.h - Pillow's 8-bit resampling, bicubic filter (a = -0.5).
 *
 * The original preprocesses the reference portrait with
 * PIL.Image.resize((W, H)) on an RGB image (SPEC 1.4): bicubic, support
 * scaled by the downscale factor (antialiased when shrinking), coefficients
 * normalised per output pixel and rounded to 22-bit fixed point, horizontal
 * pass first, the intermediate image clipped back to uint8, then the vertical
 * pass. This module reproduces that arithmetic so the pixels match Pillow's
 * byte for byte. No FFmpeg here: it works on plain interleaved uint8 pixels.
 */
#ifndef ENCORE_IMAGE_RESIZE_PIL_H
#define ENCORE_IMAGE_RESIZE_PIL_H

#include <stdint.h>

/* PIL's bicubic kernel, a = -0.5, support 2 (exposed for tests). */
double image_resize_pil_bicubic(double x);

/*
 * image_resize_pil_coeffs() computes one pass's floating-point weights as
 * Pillow's precompute_coeffs does for a resize of in_size to out_size samples.
 * Returns ksize (taps per output, >= 1) and fills xmin[out_size], ntaps[out_size]
 * and k[out_size * ksize] (the weights of output i are k[i*ksize .. +ntaps[i]),
 * the rest zero) when those pointers are non-NULL. Call with NULL first to
 * learn ksize. Returns ENC_EINVAL for sizes < 1.
 */
int image_resize_pil_coeffs(int in_size, int out_size, int *xmin, int *ntaps, double *k);

/*
 * image_resize_pil() resizes src (sh, sw, channels) interleaved uint8 to dst
 * (dh, dw, channels), exactly as Pillow's Image.resize(..., BICUBIC) does for
 * modes with `channels` 8-bit bands. dst must not alias src. Returns 0, or
 * ENC_EINVAL for a size < 1 or channels outside 1..4.
 */
int image_resize_pil(const uint8_t *src, int sw, int sh, int channels, uint8_t *dst, int dw,
                     int dh);

#endif
