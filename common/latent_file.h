/*
 * latent_file.h - the coordinator's latent store for one job: window outputs
 * in a file mapped with mmap under the state directory (DESIGN 4).
 *
 * Layout (all little-endian, frame-major: one latent frame = 16 channels x
 * h x w values):
 *   header   4096 bytes: magic "ENCLAT01", geometry (see latent_file.c)
 *   slots[2] one bf16 slot per window and step parity, window k's holding
 *            len_k frames: v_k after step s lives in slots[s % 2]
 *   heads    per window, O frames of f32: a received output's first O frames
 *            kept unrounded until its predecessor's blend is final
 * The file is sparse and sized once. The hot path (every result, blend
 * and task input) uses latent_file_write_*() / latent_file_read_*(), plain
 * pwrite/pread through the page cache: no page faults, no write-protect
 * faults after each sync, nothing resident in the process. The mapping
 * (latent_file_slot, latent_file_head) serves cold paths (final latents, tests); it is
 * coherent with the pwrites, and latent_file_sync() drops its pages, so
 * resident memory does not grow with video length.
 */
#ifndef ENCORE_LATENT_FILE_H
#define ENCORE_LATENT_FILE_H

#include <stdint.h>

#define LATENT_CHANNELS 16

struct latent_file;

struct latent_geometry {
    int64_t n_windows;
    const int64_t *start; /* [n_windows] first latent frame of each window */
    const int64_t *len;   /* [n_windows] frames of each window */
    int64_t latent_frames;
    int overlap;
    int64_t h, w;         /* latent rows and columns (H/8, W/8) */
};

/*
 * latent_file_open() opens (create != 0: creates or truncates) the store at
 * path for geometry g. Opening an existing file checks its header against g
 * and fails with ENC_EINVAL naming the path when they differ. Returns 0 or a
 * negative enc_err (ENC_EIO naming the path). Close with latent_file_close().
 */
int latent_file_open(const char *path, const struct latent_geometry *g, int create,
                     struct latent_file **out);
void latent_file_close(struct latent_file **lf);

/* latent_file_frame_values() is 16*h*w, the values in one latent frame. */
int64_t latent_file_frame_values(const struct latent_file *lf);

/* latent_file_slot() is window k's bf16 slot for parity (0 or 1):
 * [len_k][16][h][w], writable. */
uint16_t *latent_file_slot(struct latent_file *lf, int parity, int64_t k);

/* latent_file_head() is window k's f32 head buffer: [O][16][h][w]. */
float *latent_file_head(struct latent_file *lf, int64_t k);

/*
 * latent_file_write_slot() writes n frames (bf16 [n][16][h][w]) into window
 * k's slot of parity at window-local frame f; latent_file_write_head() the
 * first n <= O frames (f32) of window k's head. latent_file_read_slot() /
 * latent_file_read_head() read them back. An I/O error is logged once and
 * kept: the next latent_file_sync() fails, so nothing of that turn is
 * acknowledged (reads then leave zeros in dst).
 */
void latent_file_write_slot(struct latent_file *lf, int parity, int64_t k, int64_t f,
                            const uint16_t *src, int64_t n);
void latent_file_write_head(struct latent_file *lf, int64_t k, const float *src, int64_t n);
void latent_file_read_slot(struct latent_file *lf, int parity, int64_t k, int64_t f,
                           uint16_t *dst, int64_t n);
void latent_file_read_head(struct latent_file *lf, int64_t k, float *dst, int64_t n);

/*
 * latent_file_sync() makes everything written so far durable (durable != 0:
 * fdatasync) and releases the mapped pages from the process. Returns 0 or
 * ENC_EIO (also when an earlier write or read failed).
 */
int latent_file_sync(struct latent_file *lf, int durable);

/*
 * latent_file_sync_handle() is latent_file_sync() in two halves, for a
 * caller that syncs on another thread: it ends the current batch of writes
 * here (the same checks and page release) and, when durable and something
 * was written, sets *fd to a new descriptor of the file whose fdatasync()
 * makes that batch durable (the caller syncs and closes it; it stays valid
 * after latent_file_close()). *fd is -1 when there is nothing to sync.
 * Returns 0 or ENC_EIO as latent_file_sync() does.
 */
int latent_file_sync_handle(struct latent_file *lf, int durable, int *fd);

/* latent_file_bytes_written() counts bytes marked dirty since the last sync. */
void latent_file_note_write(struct latent_file *lf, int64_t bytes);

#endif
