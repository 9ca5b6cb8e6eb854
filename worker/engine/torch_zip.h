/*
 * torch_zip.h - the zip container of PyTorch checkpoints, read in place.
 *
 * torch.save writes an uncompressed zip (entries STORED, data 64-byte
 * aligned) holding <archive>/data.pkl, <archive>/data/<key> storages and
 * <archive>/version. This reader walks the end-of-central-directory record
 * (zip64 too), the central directory and each local header, checks every
 * offset against the file size, and hands out STORED entries as pointers
 * into the caller's buffer. Compressed or encrypted entries are listed but
 * their data is refused (ENC_ENOTSUP). CRCs are not checked.
 */
#ifndef ENCORE_TORCH_ZIP_H
#define ENCORE_TORCH_ZIP_H

#include <stddef.h>
#include <stdint.h>

struct zip_entry {
    const char *name; /* in the buffer, not NUL-terminated */
    size_t name_len;
    unsigned method;   /* 0 = stored, 8 = deflate, ... */
    unsigned flags;    /* general purpose bit flags */
    uint64_t size;     /* uncompressed bytes */
    uint64_t csize;    /* bytes in the file */
    uint64_t data_off; /* offset of the entry's data in the buffer */
};

struct torch_zip {
    const char *path; /* for messages (borrowed) */
    const uint8_t *buf;
    size_t size;
    struct zip_entry *entries; /* central directory order */
    size_t count;
};

/*
 * torch_zip_open() indexes the zip image buf[0..size) of file path into z.
 * Returns 0, or ENC_EINVAL/ENC_ENOTSUP after logging what is wrong and
 * where. Release with torch_zip_release() (also after a failure).
 */
int torch_zip_open(struct torch_zip *z, const char *path, const uint8_t *buf, size_t size);
void torch_zip_release(struct torch_zip *z);
/* torch_zip_find() returns the entry named name (NUL-terminated), or NULL. */
const struct zip_entry *torch_zip_find(const struct torch_zip *z, const char *name);
/*
 * torch_zip_data() points *data at the bytes of a STORED entry. Returns 0, or
 * ENC_ENOTSUP (logged) when the entry is compressed or encrypted.
 */
int torch_zip_data(const struct torch_zip *z, const struct zip_entry *e, const uint8_t **data);

#endif
