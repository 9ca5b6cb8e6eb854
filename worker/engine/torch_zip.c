/*
 * torch_zip.c - zip central directory and local headers (see torch_zip.h).
 *
 * Every multi-byte field is read little-endian with bounds already checked;
 * an entry is only recorded once its local header and its data range are
 * known to lie inside the buffer, so later users never re-check bounds.
 */
#include "torch_zip.h"

#include <stdlib.h>
#include <string.h>

#include "../../common/err.h"
#include "../../common/log.h"
#include "../../common/xmalloc.h"

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_LOC64 0x07064b50u

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t rd64(const uint8_t *p)
{
    return (uint64_t)rd32(p) | ((uint64_t)rd32(p + 4) << 32);
}

/* find_eocd() returns the offset of the end-of-central-directory record. */
static int find_eocd(const struct torch_zip *z, size_t *at)
{
    if (z->size < 22)
        return log_error_rc(ENC_EINVAL, "'%s': %zu bytes is too short for a zip file", z->path,
                            z->size);
    size_t lo = z->size > 22 + 65535 ? z->size - 22 - 65535 : 0;
    for (size_t i = z->size - 22 + 1; i-- > lo;) {
        if (rd32(z->buf + i) == SIG_EOCD && i + 22 + rd16(z->buf + i + 20) == z->size) {
            *at = i;
            return 0;
        }
    }
    return log_error_rc(ENC_EINVAL,
                        "'%s': no zip end-of-central-directory record (truncated file?)", z->path);
}

/* zip64_extra() replaces the 0xffffffff fields of a central entry from its
 * zip64 extended-information extra field. */
static int zip64_extra(const struct torch_zip *z, const uint8_t *extra, size_t n, uint64_t *usize,
                       uint64_t *csize, uint64_t *loff, size_t idx)
{
    size_t i = 0;
    while (i + 4 <= n) {
        unsigned id = rd16(extra + i), len = rd16(extra + i + 2);
        if (i + 4 + len > n)
            break;
        if (id == 0x0001) {
            const uint8_t *f = extra + i + 4;
            size_t k = 0;
            uint64_t *fields[3] = {usize, csize, loff};
            for (int j = 0; j < 3; j++) {
                if (*fields[j] != 0xffffffffu)
                    continue;
                if (k + 8 > len)
                    return log_error_rc(ENC_EINVAL, "'%s': zip entry %zu: short zip64 extra field",
                                        z->path, idx);
                *fields[j] = rd64(f + k);
                k += 8;
            }
            return 0;
        }
        i += 4 + len;
    }
    if (*usize == 0xffffffffu || *csize == 0xffffffffu || *loff == 0xffffffffu)
        return log_error_rc(ENC_EINVAL, "'%s': zip entry %zu: zip64 sizes without a zip64 field",
                            z->path, idx);
    return 0;
}

int torch_zip_open(struct torch_zip *z, const char *path, const uint8_t *buf, size_t size)
{
    memset(z, 0, sizeof *z);
    z->path = path;
    z->buf = buf;
    z->size = size;

    size_t eocd = 0;
    int rc = find_eocd(z, &eocd);
    if (rc)
        return rc;
    const uint8_t *e = buf + eocd;
    uint64_t count = rd16(e + 10);
    uint64_t cd_size = rd32(e + 12);
    uint64_t cd_off = rd32(e + 16);
    if (rd16(e + 4) != 0 || rd16(e + 6) != 0)
        return log_error_rc(ENC_ENOTSUP, "'%s': multi-disk zip archives are not supported", path);
    if (eocd >= 20 && rd32(buf + eocd - 20) == SIG_LOC64) {
        uint64_t off64 = rd64(buf + eocd - 20 + 8);
        if (off64 > eocd - 20 || eocd - 20 - off64 < 56 || rd32(buf + off64) != SIG_EOCD64)
            return log_error_rc(ENC_EINVAL, "'%s': bad zip64 end-of-central-directory record",
                                path);
        const uint8_t *e64 = buf + off64;
        count = rd64(e64 + 32);
        cd_size = rd64(e64 + 40);
        cd_off = rd64(e64 + 48);
        eocd = (size_t)off64;
    }
    if (cd_off > eocd || cd_size > eocd - cd_off)
        return log_error_rc(ENC_EINVAL,
                            "'%s': zip central directory [%llu, +%llu) outside the file", path,
                            (unsigned long long)cd_off, (unsigned long long)cd_size);
    if (count > cd_size / 46)
        return log_error_rc(ENC_EINVAL, "'%s': zip claims %llu entries in a %llu-byte directory",
                            path, (unsigned long long)count, (unsigned long long)cd_size);
    z->entries = xcalloc(count ? (size_t)count : 1, sizeof *z->entries);
    const uint8_t *p = buf + cd_off, *end = buf + cd_off + cd_size;
    for (size_t i = 0; i < count; i++) {
        if (end - p < 46 || rd32(p) != SIG_CENTRAL)
            return log_error_rc(ENC_EINVAL, "'%s': bad zip central directory entry %zu at %zu",
                                path, i, (size_t)(p - buf));
        struct zip_entry *ze = &z->entries[i];
        size_t nlen = rd16(p + 28), xlen = rd16(p + 30), clen = rd16(p + 32);
        if ((size_t)(end - p) < 46 + nlen + xlen + clen)
            return log_error_rc(ENC_EINVAL, "'%s': zip central directory entry %zu overruns it",
                                path, i);
        ze->flags = rd16(p + 8);
        ze->method = rd16(p + 10);
        ze->csize = rd32(p + 20);
        ze->size = rd32(p + 24);
        uint64_t loff = rd32(p + 42);
        ze->name = (const char *)p + 46;
        ze->name_len = nlen;
        if ((rc = zip64_extra(z, p + 46 + nlen, xlen, &ze->size, &ze->csize, &loff, i)))
            return rc;
        /* local header: fixed part, then its own name and extra lengths */
        if (loff > size || size - loff < 30 || rd32(buf + loff) != SIG_LOCAL)
            return log_error_rc(ENC_EINVAL, "'%s': zip entry '%.*s': bad local header at %llu",
                                path, (int)nlen, ze->name, (unsigned long long)loff);
        size_t lnlen = rd16(buf + loff + 26), lxlen = rd16(buf + loff + 28);
        if (size - loff - 30 < lnlen + lxlen)
            return log_error_rc(ENC_EINVAL, "'%s': zip entry '%.*s': local header truncated", path,
                                (int)nlen, ze->name);
        if (lnlen != nlen || memcmp(buf + loff + 30, ze->name, nlen) != 0)
            return log_error_rc(ENC_EINVAL,
                                "'%s': zip entry '%.*s': local and central names differ", path,
                                (int)nlen, ze->name);
        ze->data_off = loff + 30 + lnlen + lxlen;
        if (ze->csize > size - ze->data_off)
            return log_error_rc(ENC_EINVAL,
                                "'%s': zip entry '%.*s': %llu bytes of data past the end of the "
                                "file (truncated?)",
                                path, (int)nlen, ze->name, (unsigned long long)ze->csize);
        if (ze->method == 0 && ze->csize != ze->size)
            return log_error_rc(ENC_EINVAL,
                                "'%s': zip entry '%.*s': stored with %llu bytes but %llu "
                                "uncompressed",
                                path, (int)nlen, ze->name, (unsigned long long)ze->csize,
                                (unsigned long long)ze->size);
        z->count++;
        p += 46 + nlen + xlen + clen;
    }
    return 0;
}

void torch_zip_release(struct torch_zip *z)
{
    free(z->entries);
    z->entries = NULL;
    z->count = 0;
}

const struct zip_entry *torch_zip_find(const struct torch_zip *z, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < z->count; i++)
        if (z->entries[i].name_len == n && memcmp(z->entries[i].name, name, n) == 0)
            return &z->entries[i];
    return NULL;
}

int torch_zip_data(const struct torch_zip *z, const struct zip_entry *e, const uint8_t **data)
{
    if (e->flags & 1)
        return log_error_rc(ENC_ENOTSUP, "'%s': zip entry '%.*s' is encrypted", z->path,
                            (int)e->name_len, e->name);
    if (e->method != 0)
        return log_error_rc(ENC_ENOTSUP,
                            "'%s': zip entry '%.*s' is compressed (method %u); only stored "
                            "entries are supported (torch.save writes them uncompressed)",
                            z->path, (int)e->name_len, e->name, e->method);
    *data = z->buf + e->data_off;
    return 0;
}
