/*
 * sha256.h - SHA-256 (FIPS 180-4) for content-addressed blobs: the
 * coordinator names every stored input file by the hash of its bytes, and
 * workers cache what they fetched by that name.
 */
#ifndef ENCORE_SHA256_H
#define ENCORE_SHA256_H

#include <stddef.h>
#include <stdint.h>

struct sha256 {
    uint32_t h[8];
    uint64_t n; /* bytes hashed so far */
    uint8_t buf[64];
    size_t used; /* bytes waiting in buf */
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t n);
/* sha256_final() writes the digest (32 bytes). */
void sha256_final(struct sha256 *s, uint8_t out[32]);
/* sha256_hex() hashes n bytes of data into 64 lowercase hex digits + NUL. */
void sha256_hex(const void *data, size_t n, char hex[65]);

#endif
