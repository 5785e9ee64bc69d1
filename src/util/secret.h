/* secret.h: loading secrets (tokens) from files or the environment and
 * comparing them in constant time. Every loaded value is registered with the
 * log redaction table so it can never appear in a log line. Never logs. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define SECRET_MAX 4096

/* Reads a token file: a regular file (a FIFO is refused, not waited on) of
 * at most SECRET_MAX bytes, trailing whitespace trimmed, non-empty and a
 * single line. Returns 0 and a malloc'd string, -ENODATA when empty,
 * -EINVAL when it has inner newlines, a NUL byte or leading blanks,
 * -EBADFD when it is no regular file, or -errno. */
int secret_load_file(const char *path, char **ret);

/* Same rules for an environment variable; -ENOENT when unset. */
int secret_load_env(const char *name, char **ret);

/* Constant-time equality: the time taken depends only on the lengths. */
bool secret_equal(const char *a, const char *b);

/* Overwrites and frees a secret string; accepts NULL. */
void secret_free(char *s);

/* Fills buf with n random bytes rendered as 2n lowercase hex characters
 * (getrandom). buf must hold 2n+1 bytes. */
int secret_random_hex(char *buf, size_t n);

/* A random RFC 4122 version-4 UUID in canonical form (37 bytes with NUL). */
int secret_uuid4(char buf[37]);
