/* router.h: a route table ("METHOD /literal/{param}/...") and the matching
 * of a request's method and decoded path against it, shared by the
 * daemon's HTTP server and forgejo-sim. Pure: no I/O, no locks, no logging;
 * a built table is only read by router_match(), so threads may match
 * concurrently once every route is added.
 *
 * Matching: the path is split at '/'; a literal segment matches itself, a
 * {name} segment matches one non-empty segment. Routes are tried in the
 * order they were added and the first whose path and method match wins,
 * so list a literal before a {param} that would also match it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define ROUTER_MAX_PARAMS 8
#define ROUTER_MAX_SEGMENTS 32
#define ROUTER_METHOD_MAX 15
/* Room for the Allow list of one path ("GET, HEAD, POST, PUT, DELETE"). */
#define ROUTER_ALLOW_MAX 128

/* router_new() flags */
#define ROUTER_HEAD_AS_GET 0x1u  /* GET routes also match HEAD */

/* router_match() results besides -errno */
#define ROUTER_MATCH 0
#define ROUTER_WRONG_METHOD 1    /* the path is routed, not for this method */

struct router;

struct router_match {
        void *ud;                               /* the route's, as given to router_add */
        const char *method;                     /* the route's method and pattern, */
        const char *pattern;                    /* borrowed from the router */
        size_t nparams;
        const char *name[ROUTER_MAX_PARAMS];    /* borrowed from the router */
        const char *value[ROUTER_MAX_PARAMS];   /* point into the matched path buffer */
        char allow[ROUTER_ALLOW_MAX];           /* ROUTER_WRONG_METHOD: "POST, PUT" */
};

/* Returns NULL only on OOM. flags: ROUTER_HEAD_AS_GET or 0. */
struct router *router_new(unsigned flags);
/* Accepts NULL. */
void router_free(struct router *r);

/* Adds a route. method is [A-Z]+ (at most ROUTER_METHOD_MAX bytes);
 * pattern is "/" or "/seg/seg..." with non-empty segments (at most
 * ROUTER_MAX_SEGMENTS), each a literal without '{' '}' or "{name}" with
 * name [A-Za-z0-9_]+, unique, at most ROUTER_MAX_PARAMS of them. Both
 * strings are copied; ud is borrowed. Returns 0, -EINVAL (bad method or
 * pattern), -EEXIST (the same method with the same pattern, parameter
 * names aside, is already routed) or -ENOMEM. */
int router_add(struct router *r, const char *method, const char *pattern, void *ud);

/* Matches method and path (decoded, without the query string). path is a
 * buffer of the caller's that is split in place: the parameter values
 * point into it, so it must outlive their use. Returns ROUTER_MATCH (ret
 * filled), ROUTER_WRONG_METHOD (ret->ud, method and pattern are the first
 * route with this path, ret->allow lists the methods that would match,
 * params are not filled), -ENOENT (no route has this path) or -EINVAL (path
 * does not start with '/' or has more than ROUTER_MAX_SEGMENTS segments).
 * path is left split on every result. */
int router_match(const struct router *r, const char *method, char *path,
                 struct router_match *ret);

/* The value of {name} in a match, or NULL. */
const char *router_match_param(const struct router_match *m, const char *name);

/* Number of routes added. */
size_t router_count(const struct router *r);
