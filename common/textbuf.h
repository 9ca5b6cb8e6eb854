/*
 * textbuf.h - a growable, always NUL-terminated text buffer for building
 * output (JSON documents, HTTP responses) before it is written anywhere.
 *
 * Invariant: p is NULL with n == cap == 0 (empty, nothing allocated), or p
 * holds n bytes of text followed by a NUL and cap > n. Appending never
 * fails (xmalloc aborts on exhaustion).
 */
#ifndef ENCORE_TEXTBUF_H
#define ENCORE_TEXTBUF_H

#include <stddef.h>

struct textbuf {
    char *p;
    size_t n, cap;
};

/* textbuf_printf() appends printf-formatted text. */
void textbuf_printf(struct textbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* textbuf_append() appends n bytes of s. */
void textbuf_append(struct textbuf *b, const char *s, size_t n);
/* textbuf_json_str() appends s as a JSON string literal: quotes, `"` and
 * `\` escaped, control characters as \u00XX; other bytes as they are. */
void textbuf_json_str(struct textbuf *b, const char *s);
/* textbuf_take() returns the text (caller frees; "" when empty, never
 * NULL), stores its length in *n when n is not NULL, and empties b. */
char *textbuf_take(struct textbuf *b, size_t *n);
/* textbuf_free() frees the text and empties b. */
void textbuf_free(struct textbuf *b);

#endif
