/* buffer.c: see buffer.h. Plain memory management; never touches fds and
 * never logs. Growth doubles the allocation but never beyond max + 1. */
#include "http/buffer.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buffer_init(struct buffer *b, size_t max)
{
        *b = (struct buffer)BUFFER_INIT(max);
}

/* Makes room for extra more bytes plus the terminating NUL. */
static int reserve(struct buffer *b, size_t extra)
{
        size_t need, cap;
        char *p;

        if (extra > b->max || b->len > b->max - extra)
                return -EMSGSIZE;
        need = b->len + extra + 1;
        if (need <= b->cap)
                return 0;
        cap = b->cap ? b->cap : 256;
        while (cap < need)
                cap = cap > SIZE_MAX / 2 ? need : cap * 2;
        if (cap > b->max + 1)
                cap = b->max + 1;
        if (cap < need)
                cap = need;
        p = realloc(b->data, cap);
        if (!p)
                return -ENOMEM;
        b->data = p;
        b->cap = cap;
        return 0;
}

int buffer_append(struct buffer *b, const void *p, size_t n)
{
        int r = reserve(b, n);

        if (r < 0)
                return r;
        if (n)
                memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = '\0';
        return 0;
}

int buffer_puts(struct buffer *b, const char *s)
{
        return buffer_append(b, s, strlen(s));
}

int buffer_putc(struct buffer *b, char c)
{
        return buffer_append(b, &c, 1);
}

int buffer_printf(struct buffer *b, const char *fmt, ...)
{
        va_list ap;
        char small[256];
        int n, r;

        va_start(ap, fmt);
        n = vsnprintf(small, sizeof(small), fmt, ap);
        va_end(ap);
        if (n < 0)
                return -EINVAL;
        if ((size_t)n < sizeof(small))
                return buffer_append(b, small, (size_t)n);
        r = reserve(b, (size_t)n);
        if (r < 0)
                return r;
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
        b->len += (size_t)n;
        return 0;
}

const char *buffer_str(const struct buffer *b)
{
        return b->data ? b->data : "";
}

void buffer_reset(struct buffer *b)
{
        b->len = 0;
        if (b->data)
                b->data[0] = '\0';
}

void buffer_done(struct buffer *b)
{
        if (!b)
                return;
        free(b->data);
        b->data = NULL;
        b->len = 0;
        b->cap = 0;
}

char *buffer_steal(struct buffer *b, size_t *ret_len)
{
        char *p = b->data;
        size_t len = b->len;

        if (!p) {
                p = calloc(1, 1);
                if (!p)
                        return NULL;
        }
        b->data = NULL;
        b->len = 0;
        b->cap = 0;
        if (ret_len)
                *ret_len = len;
        return p;
}
