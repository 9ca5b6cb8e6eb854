/*
 * latent_file.c - mmap'd per-job latent store (see latent_file.h).
 *
 * Header fields (int64 each after the 8-byte magic): n_windows,
 * latent_frames, overlap, h, w, slot_values (sum of window lengths times the
 * frame size). Slot offsets are prefix sums of window lengths, computed once
 * at open. The file is created with ftruncate (sparse) and never grows.
 */
#include "latent_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/xmalloc.h"

#define HEADER_BYTES 4096
static const char magic[8] = {'E', 'N', 'C', 'L', 'A', 'T', '0', '1'};

struct latent_file {
    char *path;
    int fd;
    uint8_t *map;
    size_t map_bytes;
    int64_t n_windows, fs, overlap;
    int64_t slot_values;  /* bf16 values in one parity's slots */
    int64_t *slot_off;    /* [n_windows] value offset of window k in a parity */
    int64_t dirty;
    int io_error;       /* a pwrite/pread failed: sync refuses */
    int64_t since_drop; /* bytes written since pages were last dropped */
};

int latent_file_open(const char *path, const struct latent_geometry *g, int create,
                     struct latent_file **out)
{
    struct latent_file *lf;
    int64_t hdr[6];
    *out = NULL;
    if (g->n_windows < 1 || g->h < 1 || g->w < 1 || g->overlap < 0)
        return log_error_rc(ENC_EINVAL, "'%s': bad latent geometry", path);
    lf = xcalloc(1, sizeof *lf);
    lf->path = xstrdup(path);
    lf->fd = -1;
    lf->n_windows = g->n_windows;
    lf->fs = LATENT_CHANNELS * g->h * g->w;
    lf->overlap = g->overlap;
    lf->slot_off = xmalloc(sizeof(int64_t) * (size_t)g->n_windows);
    for (int64_t k = 0; k < g->n_windows; k++) {
        lf->slot_off[k] = lf->slot_values;
        lf->slot_values += g->len[k] * lf->fs;
    }
    hdr[0] = g->n_windows;
    hdr[1] = g->latent_frames;
    hdr[2] = g->overlap;
    hdr[3] = g->h;
    hdr[4] = g->w;
    hdr[5] = lf->slot_values;
    lf->map_bytes = HEADER_BYTES + (size_t)lf->slot_values * 2 * 2 +
                    (size_t)(g->n_windows * g->overlap * lf->fs) * 4;

    lf->fd = open(path, create ? O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC : O_RDWR | O_CLOEXEC,
                  0644);
    if (lf->fd < 0) {
        int e = errno;
        latent_file_close(&lf);
        return log_error_rc(ENC_EIO, "cannot open latent store '%s': %s", path, strerror(e));
    }
    if (create) {
        uint8_t head[HEADER_BYTES] = {0};
        memcpy(head, magic, 8);
        memcpy(head + 8, hdr, sizeof hdr);
        if (ftruncate(lf->fd, (off_t)lf->map_bytes) != 0 ||
            pwrite(lf->fd, head, sizeof head, 0) != (ssize_t)sizeof head) {
            int e = errno;
            latent_file_close(&lf);
            return log_error_rc(ENC_EIO, "cannot size latent store '%s': %s", path,
                                strerror(e));
        }
    } else {
        uint8_t head[8 + sizeof hdr];
        struct stat st;
        if (pread(lf->fd, head, sizeof head, 0) != (ssize_t)sizeof head ||
            memcmp(head, magic, 8) != 0 || memcmp(head + 8, hdr, sizeof hdr) != 0 ||
            fstat(lf->fd, &st) != 0 || (size_t)st.st_size != lf->map_bytes) {
            latent_file_close(&lf);
            return log_error_rc(ENC_EINVAL, "latent store '%s' does not match its job", path);
        }
    }
    lf->map = mmap(NULL, lf->map_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, lf->fd, 0);
    if (lf->map == MAP_FAILED) {
        int e = errno;
        lf->map = NULL;
        latent_file_close(&lf);
        return log_error_rc(ENC_EIO, "cannot map latent store '%s': %s", path, strerror(e));
    }
    *out = lf;
    return 0;
}

void latent_file_close(struct latent_file **plf)
{
    struct latent_file *lf = *plf;
    if (!lf)
        return;
    if (lf->map)
        munmap(lf->map, lf->map_bytes);
    if (lf->fd >= 0)
        close(lf->fd);
    free(lf->slot_off);
    free(lf->path);
    free(lf);
    *plf = NULL;
}

int64_t latent_file_frame_values(const struct latent_file *lf)
{
    return lf->fs;
}

uint16_t *latent_file_slot(struct latent_file *lf, int parity, int64_t k)
{
    uint16_t *base = (uint16_t *)(lf->map + HEADER_BYTES);
    return base + (int64_t)parity * lf->slot_values + lf->slot_off[k];
}

float *latent_file_head(struct latent_file *lf, int64_t k)
{
    float *base = (float *)(lf->map + HEADER_BYTES + (size_t)lf->slot_values * 4);
    return base + k * lf->overlap * lf->fs;
}

static void io(struct latent_file *lf, int write, void *buf, size_t n, size_t off)
{
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t r = write ? pwrite(lf->fd, p, n, (off_t)off) : pread(lf->fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (!lf->io_error)
                log_error("latent store '%s': cannot %s %zu bytes at %zu: %s", lf->path,
                          write ? "write" : "read", n, off, r < 0 ? strerror(errno) : "short file");
            lf->io_error = 1;
            if (!write)
                memset(p, 0, n);
            return;
        }
        p += r;
        n -= (size_t)r;
        off += (size_t)r;
    }
    if (write)
        lf->dirty += (int64_t)(p - (uint8_t *)buf);
}

static size_t slot_offset(const struct latent_file *lf, int parity, int64_t k, int64_t f)
{
    return HEADER_BYTES +
           2 * (size_t)((int64_t)parity * lf->slot_values + lf->slot_off[k] + f * lf->fs);
}

static size_t head_offset(const struct latent_file *lf, int64_t k)
{
    return HEADER_BYTES + (size_t)lf->slot_values * 4 + 4 * (size_t)(k * lf->overlap * lf->fs);
}

void latent_file_write_slot(struct latent_file *lf, int parity, int64_t k, int64_t f,
                            const uint16_t *src, int64_t n)
{
    io(lf, 1, (void *)(uintptr_t)src, 2 * (size_t)(n * lf->fs), slot_offset(lf, parity, k, f));
}

void latent_file_write_head(struct latent_file *lf, int64_t k, const float *src, int64_t n)
{
    io(lf, 1, (void *)(uintptr_t)src, 4 * (size_t)(n * lf->fs), head_offset(lf, k));
}

void latent_file_read_slot(struct latent_file *lf, int parity, int64_t k, int64_t f,
                           uint16_t *dst, int64_t n)
{
    io(lf, 0, dst, 2 * (size_t)(n * lf->fs), slot_offset(lf, parity, k, f));
}

void latent_file_read_head(struct latent_file *lf, int64_t k, float *dst, int64_t n)
{
    io(lf, 0, dst, 4 * (size_t)(n * lf->fs), head_offset(lf, k));
}

void latent_file_note_write(struct latent_file *lf, int64_t bytes)
{
    lf->dirty += bytes;
    lf->since_drop += bytes;
}

/* end_batch(): the checks and page release that close a batch of writes. */
static int end_batch(struct latent_file *lf)
{
    if (lf->io_error)
        return log_error_rc(ENC_EIO, "latent store '%s': an earlier write or read failed",
                            lf->path);
    /* Pages touched through the mapping already live in the page cache;
     * dropping them from this process keeps resident memory flat whatever
     * the video length. pwrite/pread never map anything. */
    if (lf->since_drop > ((int64_t)32 << 20)) {
        madvise(lf->map, lf->map_bytes, MADV_DONTNEED);
        lf->since_drop = 0;
    }
    return 0;
}

int latent_file_sync(struct latent_file *lf, int durable)
{
    int rc = end_batch(lf);
    if (rc)
        return rc;
    if (durable && lf->dirty > 0 && fdatasync(lf->fd) != 0)
        return log_error_rc(ENC_EIO, "cannot sync latent store '%s': %s", lf->path,
                            strerror(errno));
    lf->dirty = 0;
    return 0;
}

int latent_file_sync_handle(struct latent_file *lf, int durable, int *fd)
{
    *fd = -1;
    int rc = end_batch(lf);
    if (rc)
        return rc;
    if (durable && lf->dirty > 0 && (*fd = fcntl(lf->fd, F_DUPFD_CLOEXEC, 0)) < 0)
        return log_error_rc(ENC_EIO, "latent store '%s': %s", lf->path, strerror(errno));
    lf->dirty = 0;
    return 0;
}
