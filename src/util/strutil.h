/* strutil.h: small string helpers: optional copies, strict integers, and
 * text from the network made safe for a terminal. Pure: never does I/O, never logs. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Copies s, or returns NULL for s == NULL. On OOM returns NULL and sets
 * *err to -ENOMEM; *err is left alone otherwise, so several copies can be
 * made in a row and checked once. The copy is the caller's to free(). */
char *strutil_dup_or_null(const char *s, int *err);

/* Copies s (NULL: "?") into buf[n] for a terminal: C0 controls, DEL and
 * the C1 controls in their UTF-8 form (U+0080..U+009F, which terminals
 * take as CSI and the like) become '?', so a string from a server cannot
 * move the cursor, retitle the window or hide text. A copy that does not
 * fit ends in "..." Returns buf. n >= 4. */
const char *strutil_printable(const char *s, char *buf, size_t n);

/* A whole decimal int64 ("-12"; protojson's int64 strings): no leading
 * blank, nothing after it, in range. 0 with *ret set, or -EINVAL. */
int strutil_parse_i64(const char *s, int64_t *ret);
