/* buffer.h: a growable byte buffer with a hard maximum size, used for HTTP
 * bodies and metric rendering. Owns nothing but its own memory. It never
 * grows past its maximum: an append that would fails with -EMSGSIZE and
 * leaves the buffer unchanged. Never logs. */
#pragma once

#include <stddef.h>

struct buffer {
        char *data;     /* NULL until the first append, then NUL-terminated */
        size_t len;     /* bytes used, the terminating NUL not counted */
        size_t cap;     /* bytes allocated */
        size_t max;     /* hard limit on len */
};

#define BUFFER_INIT(m) { .data = NULL, .len = 0, .cap = 0, .max = (m) }

/* Sets up an empty buffer that may hold at most max bytes. */
void buffer_init(struct buffer *b, size_t max);

/* Appends n bytes. Returns 0, -EMSGSIZE when len would exceed max, or
 * -ENOMEM. On failure the buffer is unchanged (all or nothing). */
int buffer_append(struct buffer *b, const void *p, size_t n);
int buffer_puts(struct buffer *b, const char *s);
int buffer_putc(struct buffer *b, char c);
int buffer_printf(struct buffer *b, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/* The contents as a string: "" when nothing was appended yet. Borrowed;
 * valid until the next append, reset or done. */
const char *buffer_str(const struct buffer *b);

/* Forgets the contents but keeps the memory and the maximum. */
void buffer_reset(struct buffer *b);

/* Frees the memory; the maximum is kept, so the buffer can be reused.
 * Accepts NULL. */
void buffer_done(struct buffer *b);

/* Hands the malloc'd, NUL-terminated contents to the caller (who frees
 * them) and leaves the buffer empty. Returns NULL only on OOM (an empty
 * buffer yields a freshly allocated ""). */
char *buffer_steal(struct buffer *b, size_t *ret_len);
