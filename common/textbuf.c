/*
 * textbuf.c - growable text buffer (see textbuf.h). Capacity doubles, so
 * appending n bytes in pieces costs O(n).
 */
#include "common/textbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"

/* reserve(): room for extra more bytes plus the NUL. */
static void reserve(struct textbuf *b, size_t extra)
{
    if (b->n + extra < b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap <= b->n + extra)
        cap *= 2;
    b->p = xrealloc(b->p, cap);
    b->cap = cap;
}

void textbuf_printf(struct textbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int len = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (len < 0)
        return;
    reserve(b, (size_t)len);
    if ((size_t)len < sizeof small) {
        memcpy(b->p + b->n, small, (size_t)len + 1);
    } else {
        va_start(ap, fmt);
        vsnprintf(b->p + b->n, (size_t)len + 1, fmt, ap);
        va_end(ap);
    }
    b->n += (size_t)len;
}

void textbuf_append(struct textbuf *b, const char *s, size_t n)
{
    reserve(b, n);
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

void textbuf_json_str(struct textbuf *b, const char *s)
{
    textbuf_append(b, "\"", 1);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            textbuf_printf(b, "\\%c", ch);
        else if (ch < 0x20)
            textbuf_printf(b, "\\u%04x", ch);
        else
            textbuf_append(b, s, 1);
    }
    textbuf_append(b, "\"", 1);
}

char *textbuf_take(struct textbuf *b, size_t *n)
{
    char *p = b->p ? b->p : xstrdup("");
    if (n)
        *n = b->n;
    b->p = NULL;
    b->n = b->cap = 0;
    return p;
}

void textbuf_free(struct textbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}
