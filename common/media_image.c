/*
 * media_image.c - still images in (any FFmpeg image decoder) and PNG out.
 *
 * Decoding follows PIL's Image.open(p).convert('RGB') where the pixel format
 * allows an exact rule, done here by hand: RGB copied; RGBA / grey+alpha drop
 * alpha (PIL does not composite); grey replicated; palette expanded; 16-bit
 * channels keep their high byte. Other formats (the YCbCr of JPEG and lossy
 * WebP, CMYK, ...) go through libswscale at the same size with accurate
 * rounding and full chroma interpolation; those pixels can differ from
 * libjpeg/libwebp's by a level or two (see docs/media.md).
 *
 * Only the first frame of an animated file is used. The resize to the render
 * size is image_resize_pil() (Pillow's bicubic), not libswscale.
 */
#include "common/media.h"

#include <errno.h>
#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/image_resize_pil.h"
#include "common/log.h"
#include "common/media_av.h"
#include "common/xmalloc.h"

#define MAX_SIDE 16384

static int is_image_codec(enum AVCodecID id)
{
    switch (id) {
    case AV_CODEC_ID_PNG:
    case AV_CODEC_ID_APNG:
    case AV_CODEC_ID_MJPEG:
    case AV_CODEC_ID_WEBP:
    case AV_CODEC_ID_BMP:
    case AV_CODEC_ID_TIFF:
    case AV_CODEC_ID_GIF: return 1;
    default: return 0;
    }
}

/* Exact conversions of the packed formats a PNG/BMP/GIF decodes to;
 * returns 0 when the format is not one of them. */
static int convert_exact(const AVFrame *f, uint8_t *rgb)
{
    int w = f->width, h = f->height;
    for (int y = 0; y < h; y++) {
        const uint8_t *s = f->data[0] + (ptrdiff_t)y * f->linesize[0];
        uint8_t *d = rgb + (size_t)y * w * 3;
        switch (f->format) {
        case AV_PIX_FMT_RGB24: memcpy(d, s, (size_t)w * 3); break;
        case AV_PIX_FMT_RGBA:
            for (int x = 0; x < w; x++)
                memcpy(d + 3 * x, s + 4 * x, 3);
            break;
        case AV_PIX_FMT_GRAY8:
            for (int x = 0; x < w; x++)
                d[3 * x] = d[3 * x + 1] = d[3 * x + 2] = s[x];
            break;
        case AV_PIX_FMT_YA8:
            for (int x = 0; x < w; x++)
                d[3 * x] = d[3 * x + 1] = d[3 * x + 2] = s[2 * x];
            break;
        case AV_PIX_FMT_PAL8: {
            const uint32_t *pal = (const uint32_t *)f->data[1]; /* native-endian ARGB */
            for (int x = 0; x < w; x++) {
                uint32_t c = pal[s[x]];
                d[3 * x] = (uint8_t)(c >> 16);
                d[3 * x + 1] = (uint8_t)(c >> 8);
                d[3 * x + 2] = (uint8_t)c;
            }
            break;
        }
        case AV_PIX_FMT_RGB48BE:
            for (int x = 0; x < 3 * w; x++)
                d[x] = s[2 * x];
            break;
        case AV_PIX_FMT_RGBA64BE:
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++)
                    d[3 * x + c] = s[8 * x + 2 * c];
            break;
        case AV_PIX_FMT_GRAY16BE:
            for (int x = 0; x < w; x++)
                d[3 * x] = d[3 * x + 1] = d[3 * x + 2] = s[2 * x];
            break;
        case AV_PIX_FMT_YA16BE:
            for (int x = 0; x < w; x++)
                d[3 * x] = d[3 * x + 1] = d[3 * x + 2] = s[4 * x];
            break;
        default: return 0;
        }
    }
    return 1;
}

static int convert_sws(const AVFrame *f, uint8_t *rgb, const char *path)
{
    struct SwsContext *sws = sws_getContext(
        f->width, f->height, f->format, f->width, f->height, AV_PIX_FMT_RGB24,
        SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT | SWS_BITEXACT, NULL, NULL, NULL);
    if (!sws)
        return log_error_rc(ENC_EINVAL, "'%s': cannot convert pixel format %s to RGB", path,
                            av_get_pix_fmt_name(f->format));
    uint8_t *dst[4] = {rgb, NULL, NULL, NULL};
    int dst_ls[4] = {f->width * 3, 0, 0, 0};
    sws_scale(sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, dst, dst_ls);
    sws_freeContext(sws);
    return 0;
}

int media_image_decode(const char *path, struct image_rgb *out)
{
    struct media_av_input in;
    AVFrame *f = NULL;
    int rc, r;
    memset(out, 0, sizeof *out);
    rc = media_av_open(&in, path, AVMEDIA_TYPE_VIDEO, "image");
    if (rc < 0)
        return rc;
    if (!is_image_codec(in.st->codecpar->codec_id)) {
        rc = log_error_rc(ENC_EINVAL, "'%s': not a still image (%s)", path,
                          avcodec_get_name(in.st->codecpar->codec_id));
        goto done;
    }
    f = av_frame_alloc();
    if (!f) {
        rc = log_error_rc(ENC_ENOMEM, "'%s': cannot allocate a frame", path);
        goto done;
    }
    r = media_av_next_frame(&in, f);
    if (r < 0) {
        rc = r;
        goto done;
    }
    if (r == 0) {
        rc = log_error_rc(ENC_EINVAL, "'%s': image does not decode%s", path,
                          in.n_bad ? " (corrupt or truncated data)" : "");
        goto done;
    }
    if (f->width < 1 || f->height < 1 || f->width > MAX_SIDE || f->height > MAX_SIDE) {
        rc = log_error_rc(ENC_EINVAL, "'%s': unsupported image size %dx%d", path, f->width,
                          f->height);
        goto done;
    }
    out->w = f->width;
    out->h = f->height;
    out->px = xmalloc((size_t)out->w * out->h * 3);
    if (!convert_exact(f, out->px) && (rc = convert_sws(f, out->px, path)) < 0)
        image_rgb_release(out);
done:
    av_frame_free(&f);
    media_av_close(&in);
    return rc;
}

int media_image_load(const char *path, int w, int h, struct image_rgb *out)
{
    struct image_rgb src;
    memset(out, 0, sizeof *out);
    if (w < 1 || h < 1 || w > MAX_SIDE || h > MAX_SIDE)
        return log_error_rc(ENC_EINVAL, "'%s': bad target size %dx%d", path, w, h);
    int rc = media_image_decode(path, &src);
    if (rc < 0)
        return rc;
    out->px = xmalloc((size_t)w * h * 3);
    out->w = w;
    out->h = h;
    rc = image_resize_pil(src.px, src.w, src.h, 3, out->px, w, h);
    image_rgb_release(&src);
    if (rc < 0)
        image_rgb_release(out);
    return rc;
}

int media_image_write_png(const char *path, const struct image_rgb *img)
{
    const AVCodec *codec = avcodec_find_encoder(AV_CODEC_ID_PNG);
    AVCodecContext *enc = NULL;
    AVFrame *f = NULL;
    AVPacket *pkt = NULL;
    FILE *file = NULL;
    int rc = 0, ret;
    media_av_init();
    if (!img || !img->px || img->w < 1 || img->h < 1)
        return log_error_rc(ENC_EINVAL, "'%s': no image to write", path);
    if (!codec)
        return log_error_rc(ENC_ENOTSUP, "'%s': this FFmpeg has no PNG encoder", path);
    enc = avcodec_alloc_context3(codec);
    f = av_frame_alloc();
    pkt = av_packet_alloc();
    if (!enc || !f || !pkt) {
        rc = log_error_rc(ENC_ENOMEM, "'%s': cannot allocate the PNG encoder", path);
        goto done;
    }
    enc->width = img->w;
    enc->height = img->h;
    enc->pix_fmt = AV_PIX_FMT_RGB24;
    enc->time_base = (AVRational){1, 25};
    enc->thread_count = 1;
    enc->flags |= AV_CODEC_FLAG_BITEXACT;
    if ((ret = avcodec_open2(enc, codec, NULL)) < 0) {
        rc = log_error_rc(ENC_EINVAL, "'%s': cannot open the PNG encoder (%s)", path,
                          media_av_strerror(ret));
        goto done;
    }
    f->format = AV_PIX_FMT_RGB24;
    f->width = img->w;
    f->height = img->h;
    f->data[0] = img->px; /* borrowed: the encoder only reads */
    f->linesize[0] = img->w * 3;
    ret = avcodec_send_frame(enc, f);
    if (ret >= 0)
        ret = avcodec_send_frame(enc, NULL);
    if (ret >= 0)
        ret = avcodec_receive_packet(enc, pkt);
    if (ret < 0) {
        rc = log_error_rc(ENC_EINVAL, "'%s': PNG encoding failed (%s)", path,
                          media_av_strerror(ret));
        goto done;
    }
    file = fopen(path, "wb");
    if (!file) {
        rc = log_error_rc(ENC_EIO, "cannot create '%s': %s", path, strerror(errno));
        goto done;
    }
    int ok = fwrite(pkt->data, 1, (size_t)pkt->size, file) == (size_t)pkt->size;
    if (fclose(file) != 0 || !ok) {
        remove(path);
        rc = log_error_rc(ENC_EIO, "cannot write '%s'", path);
    }
done:
    av_packet_free(&pkt);
    if (f)
        f->data[0] = NULL;
    av_frame_free(&f);
    avcodec_free_context(&enc);
    return rc;
}

void media_image_to_chw(const struct image_rgb *img, float *out)
{
    size_t plane = (size_t)img->w * img->h;
    for (size_t i = 0; i < plane; i++)
        for (int c = 0; c < 3; c++) {
            float v = (float)img->px[3 * i + c] / 255.0f;
            out[c * plane + i] = (v - 0.5f) * 2.0f;
        }
}

void image_rgb_release(struct image_rgb *img)
{
    if (!img)
        return;
    free(img->px);
    memset(img, 0, sizeof *img);
}
