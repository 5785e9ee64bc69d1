/* scope.h: the one grammar of a pool's scope — "instance", "user",
 * "org/NAME", "repo/OWNER/NAME" — shared by the configuration and the forge
 * client, so what check accepts is exactly what the daemon can address.
 * Names follow Forgejo's: 1 to 100 of A-Z a-z 0-9 - _ . and neither "."
 * nor "..". Pure: no allocation, no I/O. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

enum scope_kind { SCOPE_INSTANCE = 0, SCOPE_ORG, SCOPE_USER, SCOPE_REPO };

#define SCOPE_NAME_MAX 100

/* Pieces of s: owner (org or repo owner) and repo point into s. */
struct scope_parts {
        enum scope_kind kind;
        const char *owner;
        size_t owner_len;                /* 0 for instance and user */
        const char *repo;
        size_t repo_len;                 /* 0 unless repo */
};

/* Whether s[0..n) is a valid owner or repository name. */
bool scope_name_ok(const char *s, size_t n);

/* 0 and *ret, or -EINVAL for anything else (*ret untouched). */
int scope_split(const char *s, struct scope_parts *ret);
