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
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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
 * blocks with non-aliasing pointers; same bits as the scalar functions. On
 * x86-64 (SSE2) the blocks are written with intrinsics: GCC vectorizes the
 * plain loops but packs 32-bit lanes to 16 bits with five shuffles where
 * one signed pack does (the rounded value shifted right arithmetically
 * fits int16 exactly, so the pack never saturates); checked against the
 * scalar rounding on all 2^32 f32 patterns. Elsewhere, plain loops in fixed
 * blocks of 16 that -O2 vectorizes. */
#if defined(__SSE2__)
static inline __m128i bf16_round4_(__m128i u)
{
    const __m128i one = _mm_set1_epi32(1), half = _mm_set1_epi32(0x7fff);
    const __m128i absm = _mm_set1_epi32(0x7fffffff), inf = _mm_set1_epi32(0x7f800000);
    __m128i r = _mm_add_epi32(_mm_add_epi32(u, half), _mm_and_si128(_mm_srli_epi32(u, 16), one));
    __m128i nan = _mm_cmpgt_epi32(_mm_and_si128(u, absm), inf); /* NaN: keep it, quiet */
    __m128i q = _mm_or_si128(u, _mm_set1_epi32(0x400000));
    __m128i v = _mm_or_si128(_mm_and_si128(nan, q), _mm_andnot_si128(nan, r));
    return _mm_srai_epi32(v, 16);
}
#endif

static inline void bf16_to_f32_n(float *__restrict dst, const uint16_t *__restrict src, int64_t n)
{
    int64_t nb = n > 0 ? n - n % 16 : 0;
#if defined(__SSE2__)
    const __m128i zero = _mm_setzero_si128();
    for (int64_t i = 0; i < nb; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(const void *)(src + i));
        _mm_storeu_si128((__m128i *)(void *)(dst + i), _mm_unpacklo_epi16(zero, h));
        _mm_storeu_si128((__m128i *)(void *)(dst + i + 4), _mm_unpackhi_epi16(zero, h));
    }
#else
    for (int64_t i = 0; i < nb; i += 16)
        for (int q = 0; q < 16; q++) {
            uint32_t u = (uint32_t)src[i + q] << 16;
            memcpy(&dst[i + q], &u, 4);
        }
#endif
    for (int64_t i = nb; i < n; i++)
        dst[i] = bf16_to_f32(src[i]);
}

static inline void f32_to_bf16_n(uint16_t *__restrict dst, const float *__restrict src, int64_t n)
{
    int64_t nb = n > 0 ? n - n % 16 : 0;
#if defined(__SSE2__)
    for (int64_t i = 0; i < nb; i += 8) {
        __m128i a = bf16_round4_(_mm_loadu_si128((const __m128i *)(const void *)(src + i)));
        __m128i b = bf16_round4_(_mm_loadu_si128((const __m128i *)(const void *)(src + i + 4)));
        _mm_storeu_si128((__m128i *)(void *)(dst + i), _mm_packs_epi32(a, b));
    }
#else
    for (int64_t i = 0; i < nb; i += 16)
        for (int q = 0; q < 16; q++) {
            uint32_t u;
            memcpy(&u, &src[i + q], 4);
            uint32_t r = (u + 0x7fffu + ((u >> 16) & 1)) >> 16;
            uint32_t nan = (u >> 16) | 0x40;
            dst[i + q] = (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? nan : r);
        }
#endif
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
