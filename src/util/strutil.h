/* strutil.h: small string helpers shared by modules that copy optional
 * configuration strings. Pure: never does I/O, never logs. */
#pragma once

/* Copies s, or returns NULL for s == NULL. On OOM returns NULL and sets
 * *err to -ENOMEM; *err is left alone otherwise, so several copies can be
 * made in a row and checked once. The copy is the caller's to free(). */
char *strutil_dup_or_null(const char *s, int *err);
