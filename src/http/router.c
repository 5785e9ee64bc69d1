/* router.c: see router.h. Owns the route table: each pattern split once
 * into literal and {param} segments at router_add(), matched segment by
 * segment against a request path split in the caller's buffer. Never
 * allocates while matching, never touches a socket, never logs. */
#include "http/router.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct route {
        char method[ROUTER_METHOD_MAX + 1];
        char *pattern;
        char *segbuf;                           /* pattern split in place */
        size_t nseg;
        const char *seg[ROUTER_MAX_SEGMENTS];   /* literal text or parameter name */
        bool param[ROUTER_MAX_SEGMENTS];
        void *ud;
};

struct router {
        unsigned flags;
        struct route *routes;
        size_t n, cap;
};

struct router *router_new(unsigned flags)
{
        struct router *r = calloc(1, sizeof(*r));

        if (r)
                r->flags = flags;
        return r;
}

void router_free(struct router *r)
{
        if (!r)
                return;
        for (size_t i = 0; i < r->n; i++) {
                free(r->routes[i].pattern);
                free(r->routes[i].segbuf);
        }
        free(r->routes);
        free(r);
}

size_t router_count(const struct router *r)
{
        return r->n;
}

/* Splits "/a/b" into {"a","b"} in place; "/" gives no segment. Empty
 * segments ("/a//b", "/a/") are kept, as "": they match no route. */
static int split_path(char *p, const char **seg, size_t *ret_n)
{
        size_t n = 0;

        if (p[0] != '/')
                return -EINVAL;
        if (p[1] == '\0') {
                *ret_n = 0;
                return 0;
        }
        p++;
        for (;;) {
                char *slash = strchr(p, '/');
                if (n == ROUTER_MAX_SEGMENTS)
                        return -EINVAL;
                seg[n++] = p;
                if (!slash)
                        break;
                *slash = '\0';
                p = slash + 1;
        }
        *ret_n = n;
        return 0;
}

static bool method_ok(const char *m)
{
        size_t n = strlen(m);

        if (n == 0 || n > ROUTER_METHOD_MAX)
                return false;
        for (; *m; m++)
                if (*m < 'A' || *m > 'Z')
                        return false;
        return true;
}

static bool name_ok(const char *s)
{
        if (!*s)
                return false;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                      (*s >= '0' && *s <= '9') || *s == '_'))
                        return false;
        return true;
}

/* Turns the split segments of a pattern into literals and parameter names
 * (the braces cut off in place). */
static int parse_segments(struct route *rt)
{
        size_t nparams = 0;

        for (size_t i = 0; i < rt->nseg; i++) {
                char *sg = (char *)rt->seg[i];
                size_t l = strlen(sg);

                if (l == 0)
                        return -EINVAL;
                if (!strchr(sg, '{') && !strchr(sg, '}'))
                        continue;
                if (l < 3 || sg[0] != '{' || sg[l - 1] != '}' || nparams == ROUTER_MAX_PARAMS)
                        return -EINVAL;
                sg[l - 1] = '\0';
                sg++;
                if (!name_ok(sg))
                        return -EINVAL;
                for (size_t j = 0; j < i; j++)
                        if (rt->param[j] && strcmp(rt->seg[j], sg) == 0)
                                return -EINVAL;
                rt->seg[i] = sg;
                rt->param[i] = true;
                nparams++;
        }
        return 0;
}

/* Same method and the same shape: one of them could never match. */
static bool same_route(const struct route *a, const struct route *b)
{
        if (strcmp(a->method, b->method) != 0 || a->nseg != b->nseg)
                return false;
        for (size_t i = 0; i < a->nseg; i++) {
                if (a->param[i] != b->param[i])
                        return false;
                if (!a->param[i] && strcmp(a->seg[i], b->seg[i]) != 0)
                        return false;
        }
        return true;
}

int router_add(struct router *r, const char *method, const char *pattern, void *ud)
{
        struct route rt = { .ud = ud };
        int ret;

        if (!method || !pattern || !method_ok(method))
                return -EINVAL;
        snprintf(rt.method, sizeof(rt.method), "%s", method);
        rt.pattern = strdup(pattern);
        rt.segbuf = strdup(pattern);
        if (!rt.pattern || !rt.segbuf) {
                ret = -ENOMEM;
                goto err;
        }
        ret = split_path(rt.segbuf, rt.seg, &rt.nseg);
        if (ret == 0)
                ret = parse_segments(&rt);
        if (ret < 0)
                goto err;
        for (size_t i = 0; i < r->n; i++) {
                if (same_route(&r->routes[i], &rt)) {
                        ret = -EEXIST;
                        goto err;
                }
        }
        if (r->n == r->cap) {
                size_t ncap = r->cap ? r->cap * 2 : 16;
                struct route *nr = realloc(r->routes, ncap * sizeof(*nr));
                if (!nr) {
                        ret = -ENOMEM;
                        goto err;
                }
                r->routes = nr;
                r->cap = ncap;
        }
        r->routes[r->n++] = rt;
        return 0;
err:
        free(rt.pattern);
        free(rt.segbuf);
        return ret;
}

static bool path_matches(const struct route *rt, const char *const *seg, size_t n)
{
        if (rt->nseg != n)
                return false;
        for (size_t i = 0; i < n; i++) {
                if (rt->param[i] ? seg[i][0] == '\0' : strcmp(rt->seg[i], seg[i]) != 0)
                        return false;
        }
        return true;
}

static bool method_matches(const struct router *r, const struct route *rt, const char *method)
{
        return strcmp(rt->method, method) == 0 ||
               ((r->flags & ROUTER_HEAD_AS_GET) && strcmp(method, "HEAD") == 0 &&
                strcmp(rt->method, "GET") == 0);
}

static bool allow_has(const char *allow, const char *m)
{
        size_t n = strlen(m);

        for (const char *p = allow; *p;) {
                size_t l = strcspn(p, ",");
                if (l == n && memcmp(p, m, n) == 0)
                        return true;
                p += l;
                while (*p == ',' || *p == ' ')
                        p++;
        }
        return false;
}

/* Appends m unless listed; a list that would overflow stays as it is. */
static void allow_add(char *allow, const char *m)
{
        size_t len = strlen(allow);
        int n;

        if (allow_has(allow, m))
                return;
        n = snprintf(allow + len, ROUTER_ALLOW_MAX - len, "%s%s", len ? ", " : "", m);
        if (n < 0 || (size_t)n >= ROUTER_ALLOW_MAX - len)
                allow[len] = '\0';
}

int router_match(const struct router *r, const char *method, char *path,
                 struct router_match *ret)
{
        const char *seg[ROUTER_MAX_SEGMENTS];
        const struct route *first = NULL;
        char allow[ROUTER_ALLOW_MAX] = "";
        size_t n;

        if (!path || split_path(path, seg, &n) < 0)
                return -EINVAL;
        for (size_t i = 0; i < r->n; i++) {
                const struct route *rt = &r->routes[i];

                if (!path_matches(rt, seg, n))
                        continue;
                if (method && method_matches(r, rt, method)) {
                        ret->ud = rt->ud;
                        ret->method = rt->method;
                        ret->pattern = rt->pattern;
                        ret->nparams = 0;
                        ret->allow[0] = '\0';
                        for (size_t j = 0; j < n; j++) {
                                if (!rt->param[j])
                                        continue;
                                ret->name[ret->nparams] = rt->seg[j];
                                ret->value[ret->nparams] = seg[j];
                                ret->nparams++;
                        }
                        return ROUTER_MATCH;
                }
                if (!first)
                        first = rt;
                allow_add(allow, rt->method);
                if ((r->flags & ROUTER_HEAD_AS_GET) && strcmp(rt->method, "GET") == 0)
                        allow_add(allow, "HEAD");
        }
        if (!first)
                return -ENOENT;
        ret->ud = first->ud;
        ret->method = first->method;
        ret->pattern = first->pattern;
        ret->nparams = 0;
        memcpy(ret->allow, allow, sizeof(allow));
        return ROUTER_WRONG_METHOD;
}

const char *router_match_param(const struct router_match *m, const char *name)
{
        for (size_t i = 0; i < m->nparams; i++)
                if (strcmp(m->name[i], name) == 0)
                        return m->value[i];
        return NULL;
}
