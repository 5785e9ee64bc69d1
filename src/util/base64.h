/* base64.h: RFC 4648 base64 for protojson `bytes` fields: encoding with the
 * standard alphabet and padding, decoding of what Go's protojson accepts
 * (standard or URL-safe alphabet, padded or not). Pure code: never does
 * I/O, never logs, never accepts input it cannot decode exactly. */
#pragma once

#include <stddef.h>

/* Returns a NUL-terminated string (caller frees) holding the standard,
 * padded encoding of in[0..n); NULL on OOM or when the result would not fit
 * in a size_t. in may be NULL when n is 0. */
char *base64_encode(const void *in, size_t n);

/* Decodes s[0..len) the way protojson does: the URL-safe alphabet when s
 * holds '-' or '_', else the standard one (mixing them is an error);
 * '=' padding only when len is a multiple of 4, and then exactly as
 * RFC 4648 places it; other lengths are unpadded (len % 4 == 1 is never
 * valid). Bits after the last full byte are ignored, as Go does.
 * Whitespace and line breaks are errors.
 * Returns 0 with *ret (caller frees; NUL-terminated for convenience, the
 * NUL not counted) and *ret_len; -EINVAL for anything else (the outputs are
 * then untouched); -ENOMEM. */
int base64_decode(const char *s, size_t len, unsigned char **ret, size_t *ret_len);
