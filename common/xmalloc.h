/*
 * xmalloc.h - host allocation that aborts with the size on out-of-memory.
 *
 * For ordinary host objects only. Big arenas and device memory use their own
 * allocators that return ENC_ENOMEM so a job can fail and the process survive.
 */
#ifndef ENCORE_XMALLOC_H
#define ENCORE_XMALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
/* xasprintf() formats into a new string; the caller frees it. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
