/*
 * bf16.h - bfloat16 and float16 conversions, exact and branch-light.
 *
 * bf16 is the top half of an IEEE float32. f32_to_bf16() rounds to nearest,
 * ties to even, as PyTorch's .to(torch.bfloat16) does; NaN stays NaN.
 */
#ifndef ENCORE_BF16_H
#define ENCORE_BF16_H

#include <stdint.h>
#include <string.h>

static inline float bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint16_t f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

/* bf16_to_f32_n() / f32_to_bf16_n(): the conversions over n values, in
 * fixed blocks of 16 with non-aliasing pointers so that -O2 vectorizes them;
 * same bits as the scalar functions. */
static inline void bf16_to_f32_n(float *__restrict dst, const uint16_t *__restrict src, int64_t n)
{
    int64_t nb = n > 0 ? n - n % 16 : 0;
    for (int64_t i = 0; i < nb; i += 16)
        for (int q = 0; q < 16; q++) {
            uint32_t u = (uint32_t)src[i + q] << 16;
            memcpy(&dst[i + q], &u, 4);
        }
    for (int64_t i = nb; i < n; i++)
        dst[i] = bf16_to_f32(src[i]);
}

static inline void f32_to_bf16_n(uint16_t *__restrict dst, const float *__restrict src, int64_t n)
{
    int64_t nb = n > 0 ? n - n % 16 : 0;
    for (int64_t i = 0; i < nb; i += 16)
        for (int q = 0; q < 16; q++) {
            uint32_t u;
            memcpy(&u, &src[i + q], 4);
            uint32_t r = (u + 0x7fffu + ((u >> 16) & 1)) >> 16;
            uint32_t nan = (u >> 16) | 0x40;
            dst[i + q] = (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? nan : r);
        }
    for (int64_t i = nb; i < n; i++)
        dst[i] = f32_to_bf16(src[i]);
}

/* bf16_round() is f32 -> bf16 -> f32. */
static inline float bf16_round(float f)
{
    return bf16_to_f32(f32_to_bf16(f));
}

static inline float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: renormalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) {
                man <<= 1;
                exp--;
            }
            u = sign | (exp << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

#endif
