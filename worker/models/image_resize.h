/*
 * image_resize.h - PyTorch's bicubic resize (F.interpolate mode='bicubic',
 * align_corners=False, no antialias) on planar f32 images, as CLIP's input
 * preprocessing uses it (SPEC 1.5).
 */
#ifndef ENCORE_IMAGE_RESIZE_H
#define ENCORE_IMAGE_RESIZE_H

#include <stdint.h>

/*
 * image_resize_bicubic() resizes src [C, H, W] to dst [C, OH, OW]: source
 * coordinate (d + 0.5) * in/out - 0.5 (f32, unclamped), taps floor - 1 ..
 * floor + 2 clamped to the border, Keys kernel A = -0.75, rows weighted
 * after columns, f32 arithmetic in PyTorch's order. dst must not alias src.
 */
void image_resize_bicubic(const float *src, int64_t C, int64_t H, int64_t W, float *dst, int64_t OH,
                          int64_t OW);

#endif
