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
 * The file is sparse and sized once; the mapping is virtual, and
 * latent_file_sync() writes dirty pages back and drops them from the
 * process, so resident memory does not grow with video length.
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
 * latent_file_sync() makes everything written so far durable (durable != 0:
 * fdatasync) and releases the mapped pages from the process. Returns 0 or
 * ENC_EIO.
 */
int latent_file_sync(struct latent_file *lf, int durable);

/* latent_file_bytes_written() counts bytes marked dirty since the last sync. */
void latent_file_note_write(struct latent_file *lf, int64_t bytes);

#endif
