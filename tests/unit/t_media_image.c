/*
 * t_media_image.c - PIL bicubic resize (image_resize_pil) and image decoding
 * (media_image_decode) on real files made by the ffmpeg CLI.
 *
 * Resize expectations are derived independently of the code under test:
 * kernel values and one-axis weights computed by hand from Pillow's rules,
 * constant images staying constant, linear ramps staying linear inside,
 * antialiasing when shrinking, and two cases whose outputs Pillow 12 itself
 * produced (Image.fromarray(src, "RGB").resize(size, BICUBIC)).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/image_resize_pil.h"
#include "common/media.h"
#include "tests/tap.h"
#include "tests/unit/media_test_util.h"

static void test_kernel(void)
{
    is_near(image_resize_pil_bicubic(0.0), 1.0, 0, "bicubic(0) = 1");
    is_near(image_resize_pil_bicubic(1.0), 0.0, 0, "bicubic(1) = 0");
    is_near(image_resize_pil_bicubic(2.0), 0.0, 0, "bicubic(2) = 0");
    /* a = -0.5: (a+2)x^3 - (a+3)x^2 + 1 and a(x^3 - 5x^2 + 8x - 4) */
    is_near(image_resize_pil_bicubic(0.5), 0.5625, 1e-15, "bicubic(0.5) = 0.5625");
    is_near(image_resize_pil_bicubic(-1.5), -0.0625, 1e-15, "bicubic(-1.5) = -0.0625");
}

static void test_coeffs(void)
{
    int xmin[4], ntaps[4];
    double k[4 * 9];
    /* Downscale 4 -> 2: scale 2, support 2*2 = 4, ksize ceil(4)*2+1 = 9.
     * Output 0: center 1, taps 0..3 at (x - 1 + 0.5)/2 = -0.25, .25, .75, 1.25
     * -> 0.8671875, 0.8671875, 0.2265625, -0.0703125, sum 1.890625. */
    int ks = image_resize_pil_coeffs(4, 2, xmin, ntaps, k);
    is_int(ks, 9, "4->2: support scaled by the downscale factor (ksize 9)");
    is_int(xmin[0], 0, "4->2 out 0 starts at 0");
    is_int(ntaps[0], 4, "4->2 out 0 has 4 taps (clamped window)");
    const double w0[4] = {0.8671875, 0.8671875, 0.2265625, -0.0703125};
    int good = 1;
    for (int i = 0; i < 4; i++) {
        good &= fabs(k[i] - w0[i] / 1.890625) < 1e-12;
        good &= fabs(k[9 + i] - w0[3 - i] / 1.890625) < 1e-12; /* mirror for out 1 */
    }
    ok(good, "4->2 weights match the hand computation (and mirror)");
    /* Upscale 2 -> 4: support stays 2, ksize 5. Output 0: center 0.25, taps 0..1
     * at 0.25 and 1.25 -> 0.8671875, -0.0703125, normalised by 0.796875. */
    ks = image_resize_pil_coeffs(2, 4, xmin, ntaps, k);
    is_int(ks, 5, "2->4: upscale keeps support 2 (ksize 5)");
    is_int(ntaps[0], 2, "2->4 out 0 has 2 taps");
    ok(fabs(k[0] - 0.8671875 / 0.796875) < 1e-12 && fabs(k[1] + 0.0703125 / 0.796875) < 1e-12,
       "2->4 out 0 weights normalised over the clamped window");
    is_int(image_resize_pil_coeffs(0, 4, NULL, NULL, NULL), ENC_EINVAL, "size 0 rejected");
}

static void test_constant_and_ramp(void)
{
    static const int sizes[][4] = {
        {37, 23, 512, 300}, {13, 7, 5, 3}, {100, 80, 33, 80}, {64, 64, 64, 200}};
    int good = 1;
    for (int s = 0; s < 4; s++) {
        int sw = sizes[s][0], sh = sizes[s][1], dw = sizes[s][2], dh = sizes[s][3];
        uint8_t *src = malloc((size_t)sw * sh * 3), *dst = malloc((size_t)dw * dh * 3);
        for (int i = 0; i < sw * sh * 3; i++)
            src[i] = (uint8_t)(i % 3 == 0 ? 100 : (i % 3 == 1 ? 0 : 255));
        good &= image_resize_pil(src, sw, sh, 3, dst, dw, dh) == 0;
        for (int i = 0; i < dw * dh * 3; i++)
            good &= dst[i] == (i % 3 == 0 ? 100 : (i % 3 == 1 ? 0 : 255));
        free(src);
        free(dst);
    }
    ok(good, "a constant image stays constant (up, down, one axis)");

    /* Ramp v(x) = 2x + 10 over 100 px -> 50 px: output xx samples source
     * position 2xx + 0.5, so the interior must be 4xx + 11 (symmetric kernel). */
    uint8_t src[100], dst[50], up[100];
    for (int x = 0; x < 100; x++)
        src[x] = (uint8_t)(2 * x + 10);
    image_resize_pil(src, 100, 1, 1, dst, 50, 1);
    int maxerr = 0;
    for (int xx = 2; xx < 48; xx++)
        maxerr = abs(dst[xx] - (4 * xx + 11)) > maxerr ? abs(dst[xx] - (4 * xx + 11)) : maxerr;
    ok(maxerr == 0, "downscaled ramp is linear inside (max err %d)", maxerr);
    /* Ramp w(x) = 4x + 10 over 50 px -> 100 px: position xx/2 - 0.25, value 2xx + 9. */
    uint8_t r50[50];
    for (int x = 0; x < 50; x++)
        r50[x] = (uint8_t)(4 * x + 10);
    image_resize_pil(r50, 50, 1, 1, up, 100, 1);
    maxerr = 0;
    for (int xx = 4; xx < 96; xx++)
        maxerr = abs(up[xx] - (2 * xx + 9)) > maxerr ? abs(up[xx] - (2 * xx + 9)) : maxerr;
    ok(maxerr == 0, "upscaled ramp is linear inside (max err %d)", maxerr);

    /* Vertical axis alone: a ramp down the rows behaves the same. */
    uint8_t col[100], colo[50];
    for (int y = 0; y < 100; y++)
        col[y] = (uint8_t)(2 * y + 10);
    image_resize_pil(col, 1, 100, 1, colo, 1, 50);
    ok(memcmp(colo, dst, 50) == 0, "vertical pass equals horizontal pass on the transpose");

    /* Antialiasing: a 1-px checkerboard shrunk 4x averages to mid grey; a
     * fixed 4-tap kernel would alias to values near 0 or 255. */
    uint8_t cb[64 * 64], cbo[16 * 16];
    for (int y = 0; y < 64; y++)
        for (int x = 0; x < 64; x++)
            cb[y * 64 + x] = ((x + y) & 1) ? 255 : 0;
    image_resize_pil(cb, 64, 64, 1, cbo, 16, 16);
    int lo = 255, hi = 0;
    for (int y = 2; y < 14; y++)
        for (int x = 2; x < 14; x++) {
            lo = cbo[y * 16 + x] < lo ? cbo[y * 16 + x] : lo;
            hi = cbo[y * 16 + x] > hi ? cbo[y * 16 + x] : hi;
        }
    ok(lo >= 120 && hi <= 135, "checkerboard shrunk 4x is antialiased to grey (%d..%d)", lo, hi);
}

/* Outputs of Pillow 12.1.1 Image.resize(BICUBIC) on RGB images (seeded
 * random sources), as published with a Pillow-exact port; they check the
 * fixed-point rounding and clip8 saturation. */
static void test_pillow_goldens(void)
{
    static const uint8_t src4[48] = {31,  48,  152, 201, 113, 39,  41,  31,  63,  112, 250, 222,
                                     62,  244, 162, 134, 48,  248, 90,  11,  69,  195, 75,  134,
                                     192, 146, 79,  19,  253, 111, 48,  156, 234, 82,  21,  18,
                                     204, 231, 236, 36,  233, 82,  240, 64,  236, 221, 216, 35};
    static const uint8_t want2[12] = {99, 108, 135, 108, 88, 124, 113, 203, 152, 134, 116, 124};
    static const uint8_t src4b[48] = {165, 238, 191, 208, 37,  197, 187, 220, 18,  177, 201, 214,
                                      32,  237, 131, 229, 43,  161, 112, 35,  222, 33,  184, 169,
                                      179, 237, 184, 109, 167, 154, 148, 166, 80,  143, 137, 226,
                                      79,  55,  209, 238, 137, 73,  42,  52,  68,  8,   250, 246};
    static const uint8_t want6[108] = {
        171, 251, 195, 190, 132, 208, 207, 49,  174, 195, 208, 16,  188, 228, 105, 186, 200, 231,
        85,  251, 158, 160, 136, 173, 224, 31,  174, 163, 108, 126, 120, 168, 155, 100, 201, 194,
        32,  251, 132, 130, 155, 143, 213, 44,  168, 132, 33,  213, 68,  111, 198, 35,  185, 171,
        169, 254, 177, 141, 203, 171, 118, 149, 150, 145, 155, 100, 144, 145, 159, 135, 135, 226,
        133, 140, 206, 156, 152, 161, 163, 153, 98,  104, 114, 60,  81,  154, 155, 77,  195, 250,
        61,  37,  220, 166, 92,  143, 231, 127, 57,  64,  44,  55,  3,   152, 163, 0,   255, 255};
    uint8_t out2[12], out6[108];
    image_resize_pil(src4, 4, 4, 3, out2, 2, 2);
    ok(memcmp(out2, want2, sizeof want2) == 0, "4x4 -> 2x2 equals Pillow byte for byte");
    image_resize_pil(src4b, 4, 4, 3, out6, 6, 6);
    ok(memcmp(out6, want6, sizeof want6) == 0, "4x4 -> 6x6 equals Pillow (incl. 0/255 clips)");
}

/* A smooth 64x48 test pattern. */
static void pattern(struct image_rgb *img)
{
    img->w = 64;
    img->h = 48;
    img->px = malloc(64 * 48 * 3);
    for (int y = 0; y < 48; y++)
        for (int x = 0; x < 64; x++) {
            uint8_t *p = img->px + (y * 64 + x) * 3;
            p[0] = (uint8_t)(x * 4);
            p[1] = (uint8_t)(y * 5);
            p[2] = (uint8_t)(40 + x + y * 2);
        }
}

static double mean_abs_diff(const struct image_rgb *a, const struct image_rgb *b)
{
    if (a->w != b->w || a->h != b->h)
        return 1e9;
    double s = 0;
    for (int i = 0; i < a->w * a->h * 3; i++)
        s += abs(a->px[i] - b->px[i]);
    return s / (a->w * a->h * 3);
}

static void test_decode(void)
{
    struct image_rgb ref = {0}, img = {0};
    pattern(&ref);
    const char *png = mt_path("ref.png");
    is_int(media_image_write_png(png, &ref), 0, "write an RGB PNG");
    is_int(media_image_decode(png, &img), 0, "decode the RGB PNG");
    ok(img.w == 64 && img.h == 48 && memcmp(img.px, ref.px, 64 * 48 * 3) == 0,
       "8-bit RGB PNG round-trips exactly");
    image_rgb_release(&img);

    /* RGBA with alpha 128: PIL's convert('RGB') drops alpha, no compositing. */
    const char *rgba = mt_path("rgba.png");
    mt_ffmpeg("-f lavfi -i color=c=0xff2010@0.5:s=20x10,format=rgba -frames:v 1 %s", rgba);
    is_int(media_image_decode(rgba, &img), 0, "decode an RGBA PNG");
    ok(img.w == 20 && img.px[0] == 0xff && img.px[1] == 0x20 && img.px[2] == 0x10,
       "RGBA: alpha dropped, colour kept (%d,%d,%d)", img.px ? img.px[0] : -1,
       img.px ? img.px[1] : -1, img.px ? img.px[2] : -1);
    image_rgb_release(&img);

    const char *grey = mt_path("grey.png"), *ya = mt_path("ya.png");
    mt_ffmpeg("-i %s -pix_fmt gray %s", png, grey);
    mt_ffmpeg("-i %s -pix_fmt ya8 %s", png, ya);
    struct image_rgb g = {0};
    is_int(media_image_decode(grey, &g), 0, "decode a grey PNG");
    is_int(media_image_decode(ya, &img), 0, "decode a grey+alpha PNG");
    int same = g.px && img.px;
    for (int i = 0; same && i < 64 * 48; i++)
        same = g.px[3 * i] == g.px[3 * i + 1] && g.px[3 * i] == g.px[3 * i + 2] &&
               memcmp(g.px + 3 * i, img.px + 3 * i, 3) == 0;
    ok(same, "grey replicated to R=G=B; grey+alpha gives the same pixels");
    /* Luma of (4x, 5y, ...) is smooth; compare one pixel with BT.601 weights. */
    if (g.px) {
        const uint8_t *p = ref.px + (20 * 64 + 30) * 3;
        double y = 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
        is_near(g.px[(20 * 64 + 30) * 3], y, 2.5, "grey value is the luma of the source");
    }
    image_rgb_release(&g);
    image_rgb_release(&img);

    const char *p16 = mt_path("rgb48.png");
    mt_ffmpeg("-i %s -pix_fmt rgb48be %s", png, p16);
    is_int(media_image_decode(p16, &img), 0, "decode a 16-bit RGB PNG");
    /* The CLI's 8 -> 16 bit conversion is not exactly v * 257, so the high
     * byte may be one below the 8-bit source. */
    int maxd = img.px ? 0 : 999;
    for (int i = 0; img.px && i < 64 * 48 * 3; i++)
        maxd = abs(img.px[i] - ref.px[i]) > maxd ? abs(img.px[i] - ref.px[i]) : maxd;
    ok(maxd <= 1, "16-bit PNG reduced to its high byte (max |diff| %d)", maxd);
    image_rgb_release(&img);

    const char *pal = mt_path("pal.png");
    if (mt_ffmpeg("-i %s -vf palettegen=max_colors=256 -frames:v 1 %s", png,
                  mt_path("palette.png")) == 0 &&
        mt_ffmpeg("-i %s -i %s -lavfi paletteuse=dither=none -frames:v 1 %s", png,
                  mt_path("palette.png"), pal) == 0) {
        is_int(media_image_decode(pal, &img), 0, "decode a palette PNG");
        double d = img.px ? mean_abs_diff(&img, &ref) : 1e9;
        ok(d < 4.0, "palette expanded to RGB (mean |diff| %.2f)", d);
        image_rgb_release(&img);
    } else {
        skip(2, "ffmpeg could not make a palette PNG");
    }

    const char *jpg = mt_path("a.jpg");
    mt_ffmpeg("-i %s -q:v 2 %s", png, jpg);
    is_int(media_image_decode(jpg, &img), 0, "decode a JPEG");
    double dj = img.px ? mean_abs_diff(&img, &ref) : 1e9;
    ok(img.w == 64 && img.h == 48 && dj < 3.0, "JPEG close to the source (mean |diff| %.2f)", dj);
    image_rgb_release(&img);

    const char *wl = mt_path("lossless.webp"), *wy = mt_path("lossy.webp");
    mt_ffmpeg("-i %s -c:v libwebp -lossless 1 %s", png, wl);
    mt_ffmpeg("-i %s -c:v libwebp -quality 95 %s", png, wy);
    is_int(media_image_decode(wl, &img), 0, "decode a lossless WebP");
    ok(img.px && memcmp(img.px, ref.px, 64 * 48 * 3) == 0, "lossless WebP is exact");
    image_rgb_release(&img);
    is_int(media_image_decode(wy, &img), 0, "decode a lossy WebP");
    double dw = img.px ? mean_abs_diff(&img, &ref) : 1e9;
    ok(dw < 4.0, "lossy WebP close to the source (mean |diff| %.2f)", dw);
    image_rgb_release(&img);

    /* decode + resize = media_image_load, exactly. */
    struct image_rgb loaded = {0};
    uint8_t *want = malloc(40 * 30 * 3);
    image_resize_pil(ref.px, 64, 48, 3, want, 40, 30);
    is_int(media_image_load(png, 40, 30, &loaded), 0, "load + resize a PNG to 40x30");
    ok(loaded.px && loaded.w == 40 && loaded.h == 30 && memcmp(loaded.px, want, 40 * 30 * 3) == 0,
       "media_image_load = decode then PIL resize");
    free(want);
    image_rgb_release(&loaded);

    /* The model's input normalisation: x/255, (x - 0.5) * 2. */
    float *chw = malloc(sizeof(float) * 3 * 64 * 48);
    media_image_to_chw(&ref, chw);
    is_near(chw[0], -1.0, 0, "pixel 0 -> -1");
    is_near(chw[64 * 48 * 1 + 47 * 64], (235.0f / 255.0f - 0.5f) * 2.0f, 0,
            "green of row 47 -> (235/255 - 0.5) * 2");
    free(chw);
    image_rgb_release(&ref);
}

static void test_errors(void)
{
    struct image_rgb img = {0};
    const char *txt = mt_path("notes.png");
    mt_write_text(txt, "this is not an image, just text\n");
    is_int(media_image_decode(txt, &img), ENC_EINVAL, "text named .png -> ENC_EINVAL");
    ok(mt_error_names(txt), "error names the file: %s", mt_last_error);
    ok(img.px == NULL, "no pixels on failure");

    const char *missing = mt_path("missing.png");
    is_int(media_image_decode(missing, &img), ENC_EIO, "missing file -> ENC_EIO");
    ok(mt_error_names(missing), "error names the file: %s", mt_last_error);

    const char *wav = mt_path("tone.wav");
    mt_ffmpeg("-f lavfi -i sine=f=440:d=0.5 %s", wav);
    is_int(media_image_decode(wav, &img), ENC_EINVAL, "an audio file is not an image");
    ok(mt_error_names(wav), "error names the file: %s", mt_last_error);

    const char *empty = mt_path("empty.jpg");
    mt_write_text(empty, "");
    is_int(media_image_decode(empty, &img), ENC_EINVAL, "empty file -> ENC_EINVAL");

    struct image_rgb ref = {0};
    pattern(&ref);
    const char *cut = mt_path("cut.png");
    media_image_write_png(cut, &ref);
    mt_truncate(cut, 60);
    int rc = media_image_decode(cut, &img);
    is_int(rc, ENC_EINVAL, "truncated PNG -> ENC_EINVAL");
    ok(mt_error_names(cut), "error names the file: %s", mt_last_error);
    image_rgb_release(&img);
    image_rgb_release(&ref);
}

static uint32_t crc32_png(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return ~c;
}

static void put_chunk(FILE *f, const char *type, const uint8_t *data, uint32_t n)
{
    uint8_t buf[64];
    uint8_t len[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    memcpy(buf, type, 4);
    if (n)
        memcpy(buf + 4, data, n);
    uint32_t c = crc32_png(buf, 4 + n);
    uint8_t crc[4] = {(uint8_t)(c >> 24), (uint8_t)(c >> 16), (uint8_t)(c >> 8), (uint8_t)c};
    fwrite(len, 1, 4, f);
    fwrite(buf, 1, 4 + n, f);
    fwrite(crc, 1, 4, f);
}

/* A PNG header claiming 30000 x 30000 RGB (2.7 GB of pixels) with a few
 * bytes of data must be refused before anything that size is allocated. */
static void test_image_bomb(void)
{
    const char *path = mt_path("bomb.png");
    FILE *f = fopen(path, "wb");
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    uint8_t ihdr[13] = {0, 0, 0x75, 0x30, 0, 0, 0x75, 0x30, 8, 2, 0, 0, 0};
    static const uint8_t idat[11] = {0x78, 0x9c, 0x63, 0x60, 0x18, 0x05, 0xa3, 0x60, 0x14, 0, 0};
    fwrite(sig, 1, 8, f);
    put_chunk(f, "IHDR", ihdr, 13);
    put_chunk(f, "IDAT", idat, 11);
    put_chunk(f, "IEND", NULL, 0);
    fclose(f);
    struct image_rgb img;
    is_int(media_image_decode(path, &img), ENC_EINVAL, "30000x30000 PNG header -> ENC_EINVAL");
    ok(mt_error_names(path), "error names the file: %s", mt_last_error);
}

int main(void)
{
    mt_setup("image");
    test_kernel();
    test_coeffs();
    test_constant_and_ramp();
    test_pillow_goldens();
    test_decode();
    test_errors();
    test_image_bomb();
    mt_cleanup();
    return done_testing();
}
