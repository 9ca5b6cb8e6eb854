/*
 * t_decode_stage.c - segments decoded separately (with the receptive-field
 * warm-up) give the same chunk bytes as one full-stream decode cut at the
 * same boundaries: the seams between decode tasks are invisible.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/media.h"
#include "common/noise.h"
#include "common/xmalloc.h"
#include "tests/tap.h"
#include "worker/decode_stage.h"
#include "worker/engine/backend.h"
#include "worker/models/vae.h"

static unsigned char *slurp(const char *path, long *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    *n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = xmalloc((size_t)*n + 1);
    if (fread(b, 1, (size_t)*n, f) != (size_t)*n)
        *n = -1;
    fclose(f);
    return b;
}

int main(void)
{
    char dir[] = "/tmp/t_decode_stage_XXXXXX", path[256];
    const int64_t L = 11, h = 4, w = 4, seg = 4;
    struct backend *be = NULL;
    struct vae *vae = NULL;

    log_set_level(LOG_LEVEL_WARN);
    ok(mkdtemp(dir) != NULL, "temp dir");
    snprintf(path, sizeof path, "%s/vae.safetensors", dir);
    be = backend_open("cpu", 2);
    ok(vae_write_tiny(path, 5) == 0 && vae_open(be, path, VAE_PART_DECODER, &vae) == 0,
       "tiny VAE written and loaded");
    if (!vae)
        return done_testing();

    float *lat = xmalloc((size_t)(L * 16 * h * w) * sizeof(float));
    noise_fill_normal(9, 0, 0, lat, (size_t)(L * 16 * h * w));
    int64_t n_seg = decode_segment_count(L, seg);
    is_int(n_seg, 3, "11 latents in segments of 4: 3 segments");
    char **full = xcalloc((size_t)n_seg, sizeof(char *));
    for (int64_t i = 0; i < n_seg; i++)
        full[i] = xasprintf("%s/full-%lld.mp4", dir, (long long)i);
    double enc = -1;
    ok(decode_stream(vae, lat, L, h, w, seg, 25, full, NULL, NULL, &enc) == 0 && enc >= 0,
       "full-stream decode cut into chunks");

    int64_t frames = 0;
    for (int64_t i = 0; i < n_seg; i++) {
        int64_t a = i * seg, b = a + seg < L ? a + seg : L;
        char *part = xasprintf("%s/seg-%lld.mp4", dir, (long long)i);
        ok(decode_segment(vae, lat, h, w, a, b, -1, 25, part) == 0,
           "segment [%lld, %lld) decoded alone with the default warm-up", (long long)a,
           (long long)b);
        long na = 0, nb = 0;
        unsigned char *x = slurp(full[i], &na), *y = slurp(part, &nb);
        ok(x && y && na > 0 && na == nb && memcmp(x, y, (size_t)na) == 0,
           "segment %lld: chunk bytes equal the full stream's", (long long)i);
        struct media_info mi;
        if (media_probe(part, &mi) == 0)
            frames += mi.n_frames;
        free(x);
        free(y);
        unlink(part);
        free(part);
    }
    is_int(frames, 4 * (L - 1) + 1, "the chunks hold 4(L-1)+1 frames");

    ok(decode_segment(vae, lat, h, w, 0, 2, -1, 25, "/nonexistent-dir/x.mp4") < 0,
       "an unwritable chunk path fails cleanly");
    for (int64_t i = 0; i < n_seg; i++) {
        unlink(full[i]);
        free(full[i]);
    }
    free(full);
    free(lat);
    unlink(path);
    rmdir(dir);
    vae_destroy(&vae);
    backend_destroy(&be);
    return done_testing();
}
