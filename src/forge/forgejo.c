/* forgejo.c: see forgejo.h. Builds Forgejo REST requests (paths, URL
 * encoding, label queries, Authorization header) and hands response
 * bodies to forgejo_json.c. The only holder of the API token is the caller;
 * this file copies it only into the request header, which hmulti wipes.
 * Never logs, never puts a token into a reason, never keeps a runner token
 * after the create callback returns. */
#include "forge/forgejo.h"

#include "http/hmulti.h"
#include "util/strutil.h"
#include "util/scope.h"
#include "fs_version.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define URL_MAX 8192
#define AUTH_PREFIX "Authorization: token "

enum op { OP_VERSION, OP_JOBS, OP_CREATE, OP_GET, OP_DELETE, OP_LIST, OP_REG_TOKEN };

struct forgejo {
        struct hmulti *hm;
        char *name;
        char *base;                      /* no trailing '/' */
        const char *token;               /* borrowed */
        long timeout_ms;
        size_t max_response;
        size_t max_listing;
        char *ca_file;
        bool insecure;
        forgejo_hook_cb hook;
        void *hook_ud;
        struct forgejo_call *calls;
        size_t inflight;
};

struct forgejo_call {
        struct forgejo *f;
        struct forgejo_call *prev, *next;
        struct hmulti_xfer *xfer;
        enum op op;
        int page, limit;                 /* OP_LIST */
        const char *route;
        int64_t t0_ms;
        union {
                forgejo_version_cb version;
                forgejo_jobs_cb jobs;
                forgejo_created_cb created;
                forgejo_runner_cb runner;
                forgejo_runners_cb runners;
                forgejo_done_cb done;
                forgejo_reg_token_cb reg_token;
        } cb;
        void *ud;
};

/* ---- route patterns (metric labels; static storage) -------------------- */

#define R_INST "/api/v1/admin/actions/runners"
#define R_ORG  "/api/v1/orgs/{org}/actions/runners"
#define R_USER "/api/v1/user/actions/runners"
#define R_REPO "/api/v1/repos/{owner}/{repo}/actions/runners"
#define ROUTES(m, suffix) { m " " R_INST suffix, m " " R_ORG suffix, m " " R_USER suffix, \
                            m " " R_REPO suffix }

static const char *const route_jobs[4] = ROUTES("GET", "/jobs");
static const char *const route_create[4] = ROUTES("POST", "");
static const char *const route_list[4] = ROUTES("GET", "");
static const char *const route_get[4] = ROUTES("GET", "/{runner_id}");
static const char *const route_delete[4] = ROUTES("DELETE", "/{runner_id}");
static const char *const route_reg_token[4] = ROUTES("GET", "/registration-token");
static const char route_version[] = "GET /api/v1/version";

static const char *route_for(enum op op, enum forgejo_scope_kind k)
{
        switch (op) {
        case OP_VERSION: return route_version;
        case OP_JOBS: return route_jobs[k];
        case OP_CREATE: return route_create[k];
        case OP_GET: return route_get[k];
        case OP_DELETE: return route_delete[k];
        case OP_LIST: return route_list[k];
        case OP_REG_TOKEN: return route_reg_token[k];
        }
        return "";
}

/* ---- scopes, encoding, queries ----------------------------------------- */

int forgejo_scope_parse(const char *s, struct forgejo_scope *ret)
{
        struct forgejo_scope sc = { 0 };
        struct scope_parts p;

        _Static_assert(FORGEJO_NAME_MAX > SCOPE_NAME_MAX, "names fit");
        _Static_assert((int)FORGEJO_SCOPE_REPO == (int)SCOPE_REPO && (int)FORGEJO_SCOPE_ORG == (int)SCOPE_ORG &&
                       (int)FORGEJO_SCOPE_USER == (int)SCOPE_USER, "scope kinds agree");
        if (scope_split(s, &p) < 0)
                return -EINVAL;
        sc.kind = (enum forgejo_scope_kind)p.kind;
        memcpy(sc.owner, p.owner ? p.owner : "", p.owner_len);
        memcpy(sc.repo, p.repo ? p.repo : "", p.repo_len);
        *ret = sc;
        return 0;
}

void forgejo_scope_format(const struct forgejo_scope *sc, char *buf, size_t n)
{
        switch (sc->kind) {
        case FORGEJO_SCOPE_INSTANCE:
                snprintf(buf, n, "instance");
                break;
        case FORGEJO_SCOPE_USER:
                snprintf(buf, n, "user");
                break;
        case FORGEJO_SCOPE_ORG:
                snprintf(buf, n, "org/%s", sc->owner);
                break;
        case FORGEJO_SCOPE_REPO:
                snprintf(buf, n, "repo/%s/%s", sc->owner, sc->repo);
                break;
        default:
                snprintf(buf, n, "?");
                break;
        }
}

int forgejo_urlencode(const char *s, char *buf, size_t n)
{
        static const char hex[] = "0123456789ABCDEF";
        size_t o = 0;

        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                unsigned char c = *p;
                bool plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                             (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
                             c == '~';
                size_t need = plain ? 1 : 3;
                if (o + need >= n)
                        return -ENAMETOOLONG;
                if (plain) {
                        buf[o++] = (char)c;
                } else {
                        buf[o++] = '%';
                        buf[o++] = hex[c >> 4];
                        buf[o++] = hex[c & 15];
                }
        }
        if (o >= n)
                return -ENAMETOOLONG;
        buf[o] = '\0';
        return (int)o;
}

static bool scope_valid(const struct forgejo_scope *sc)
{
        switch (sc->kind) {
        case FORGEJO_SCOPE_INSTANCE:
        case FORGEJO_SCOPE_USER:
                return true;
        case FORGEJO_SCOPE_ORG:
                return scope_name_ok(sc->owner, strnlen(sc->owner, FORGEJO_NAME_MAX));
        case FORGEJO_SCOPE_REPO:
                return scope_name_ok(sc->owner, strnlen(sc->owner, FORGEJO_NAME_MAX)) &&
                       scope_name_ok(sc->repo, strnlen(sc->repo, FORGEJO_NAME_MAX));
        }
        return false;
}

int forgejo_scope_runners_path(const struct forgejo_scope *sc, char *buf, size_t n)
{
        char a[3 * FORGEJO_NAME_MAX], b[3 * FORGEJO_NAME_MAX];
        int r;

        if (!scope_valid(sc))
                return -EINVAL;
        switch (sc->kind) {
        case FORGEJO_SCOPE_INSTANCE:
                r = snprintf(buf, n, "/api/v1/admin/actions/runners");
                break;
        case FORGEJO_SCOPE_USER:
                r = snprintf(buf, n, "/api/v1/user/actions/runners");
                break;
        case FORGEJO_SCOPE_ORG:
                if (forgejo_urlencode(sc->owner, a, sizeof(a)) < 0)
                        return -ENAMETOOLONG;
                r = snprintf(buf, n, "/api/v1/orgs/%s/actions/runners", a);
                break;
        case FORGEJO_SCOPE_REPO:
                if (forgejo_urlencode(sc->owner, a, sizeof(a)) < 0 ||
                    forgejo_urlencode(sc->repo, b, sizeof(b)) < 0)
                        return -ENAMETOOLONG;
                r = snprintf(buf, n, "/api/v1/repos/%s/%s/actions/runners", a, b);
                break;
        default:
                return -EINVAL;
        }
        if (r < 0 || (size_t)r >= n)
                return -ENAMETOOLONG;
        return r;
}

int forgejo_scope_jobs_path(const struct forgejo_scope *sc, char *buf, size_t n)
{
        int r = forgejo_scope_runners_path(sc, buf, n);

        if (r < 0)
                return r;
        if ((size_t)r + sizeof("/jobs") > n)
                return -ENAMETOOLONG;
        memcpy(buf + r, "/jobs", sizeof("/jobs"));
        return r + (int)sizeof("/jobs") - 1;
}

int forgejo_labels_query(const char *const *labels, char *buf, size_t n)
{
        size_t o;

        if (n == 0)
                return -ENAMETOOLONG;
        buf[0] = '\0';
        if (!labels)
                return 0;
        if (n <= sizeof("labels=") - 1)
                return -ENAMETOOLONG;
        memcpy(buf, "labels=", sizeof("labels="));
        o = sizeof("labels=") - 1;
        for (size_t i = 0; labels[i]; i++) {
                if (labels[i][0] == '\0' || strchr(labels[i], ','))
                        return -EINVAL;
                if (i > 0) {
                        if (o + 2 > n)
                                return -ENAMETOOLONG;
                        buf[o++] = ',';
                        buf[o] = '\0';
                }
                int r = forgejo_urlencode(labels[i], buf + o, n - o);
                if (r < 0)
                        return r;
                o += (size_t)r;
        }
        return (int)o;
}

/* ---- paging ------------------------------------------------------------- */

void forgejo_pager_init(struct forgejo_pager *p, int limit)
{
        *p = (struct forgejo_pager){ .page = 1, .limit = limit };
}

/* The ids of the first and last element of a page (0 for one without a
 * valid id), whichever of runners[] and rejected[] they are in. */
static int64_t page_id(const struct forgejo_runner_list *l, size_t index)
{
        for (size_t i = 0; i < l->n_rejected; i++)
                if (l->rejected[i].index == index)
                        return l->rejected[i].id;
        /* Not rejected: runners[] holds the others in order. */
        size_t before = 0;
        for (size_t i = 0; i < l->n_rejected; i++)
                if (l->rejected[i].index < index)
                        before++;
        return index - before < l->n ? l->runners[index - before].id : 0;
}

bool forgejo_pager_next(struct forgejo_pager *p, const struct forgejo_runner_list *l)
{
        int64_t first, last;

        if (l->page_count == 0) {
                p->stop = "empty page";
                return false;
        }
        first = page_id(l, 0);
        last = page_id(l, l->page_count - 1);
        if (p->page > 1 && l->page_count == p->prev_count && first == p->prev_first &&
            last == p->prev_last) {
                p->stop = "page repeated (the server ignores page)";
                p->incomplete = true;
                return false;
        }
        p->seen += l->page_count;
        p->prev_count = l->page_count;
        p->prev_first = first;
        p->prev_last = last;
        if (l->total_count >= 0) {
                /* A page shorter than asked is no end when the server caps
                 * limit (MAX_RESPONSE_ITEMS): the total says. */
                if (p->seen >= (unsigned long long)l->total_count) {
                        p->stop = "all runners seen (X-Total-Count)";
                        return false;
                }
        } else if (l->page_count < (size_t)p->limit) {
                p->stop = "short page";
                return false;
        }
        if (p->page >= FORGEJO_PAGER_MAX_PAGES) {
                p->stop = "too many pages";
                p->incomplete = true;
                return false;
        }
        p->page++;
        return true;
}

/* ---- client ------------------------------------------------------------ */

static bool text_ok(const char *s)
{
        for (const unsigned char *p = (const unsigned char *)s; *p; p++)
                if (*p < 0x20 || *p == 0x7f)
                        return false;
        return true;
}

static int base_url_check(const char *u)
{
        const char *host;

        if (strncasecmp(u, "http://", 7) == 0)
                host = u + 7;
        else if (strncasecmp(u, "https://", 8) == 0)
                host = u + 8;
        else
                return -EINVAL;
        if (*host == '\0' || *host == '/' || !text_ok(u) || strpbrk(u, " ?#"))
                return -EINVAL;
        if (strlen(u) > 1024)
                return -EINVAL;
        return 0;
}

int forgejo_new(struct hmulti *hm, const struct forgejo_opts *opts, struct forgejo **ret)
{
        struct forgejo *f;
        int r = 0;

        if (!hm || !opts || !opts->base_url || base_url_check(opts->base_url) < 0)
                return -EINVAL;
        if (opts->token && (!opts->token[0] || !text_ok(opts->token)))
                return -EINVAL;
        f = calloc(1, sizeof(*f));
        if (!f)
                return -ENOMEM;
        f->hm = hm;
        f->token = opts->token;
        f->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : HMULTI_DEFAULT_TIMEOUT_MS;
        f->max_response = opts->max_response ? opts->max_response : HMULTI_DEFAULT_MAX_RESPONSE;
        f->max_listing = opts->max_listing ? opts->max_listing : FORGEJO_LISTING_MAX;
        f->insecure = opts->insecure;
        f->name = strutil_dup_or_null(opts->name ? opts->name : "", &r);
        f->base = strutil_dup_or_null(opts->base_url, &r);
        f->ca_file = strutil_dup_or_null(opts->ca_file, &r);
        if (r < 0) {
                forgejo_free(f);
                return -ENOMEM;
        }
        size_t n = strlen(f->base);
        while (n > 0 && f->base[n - 1] == '/')
                f->base[--n] = '\0';
        *ret = f;
        return 0;
}

static void call_unlink(struct forgejo_call *c)
{
        struct forgejo *f = c->f;

        if (c->prev)
                c->prev->next = c->next;
        else
                f->calls = c->next;
        if (c->next)
                c->next->prev = c->prev;
        c->prev = c->next = NULL;
        f->inflight--;
}

void forgejo_free(struct forgejo *f)
{
        if (!f)
                return;
        while (f->calls)
                forgejo_cancel(f->calls);
        free(f->name);
        free(f->base);
        free(f->ca_file);
        free(f);
}

void forgejo_set_hook(struct forgejo *f, forgejo_hook_cb cb, void *ud)
{
        f->hook = cb;
        f->hook_ud = ud;
}

size_t forgejo_inflight(const struct forgejo *f)
{
        return f->inflight;
}

void forgejo_cancel(struct forgejo_call *c)
{
        if (!c)
                return;
        hmulti_cancel(c->xfer);
        call_unlink(c);
        free(c);
}

static int64_t mono_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int status_errno(long status)
{
        if (status == 401)
                return -EACCES;
        if (status == 403)
                return -EPERM;
        if (status == 404)
                return -ENOENT;
        if (status == 400 || status == 422)
                return -EINVAL;
        if (status == 409)
                return -EEXIST;
        if (status == 429)
                return -EAGAIN;
        if (status >= 500 && status <= 599)
                return -EREMOTEIO;
        return -EPROTO;
}

static const char *transport_text(int err)
{
        switch (err) {
        case -ETIMEDOUT: return "request timed out";
        case -ECONNREFUSED: return "connection refused";
        case -ECONNRESET: return "connection reset or closed without a response";
        case -EHOSTUNREACH: return "host name could not be resolved";
        case -EMSGSIZE: return "response larger than the configured maximum";
        case -EPROTO: return "TLS handshake or certificate verification failed";
        case -ENOMEM: return "out of memory";
        default: return "transport error";
        }
}

static bool status_expected(enum op op, long status)
{
        switch (op) {
        case OP_CREATE:
                return status == 201;
        case OP_DELETE:
                return status == 204 || status == 200;
        default:
                return status == 200;
        }
}

static void on_http_done(void *ud, int err, long status, const char *body, size_t len,
                         long long total_count)
{
        struct forgejo_call *c = ud;
        struct forgejo *f = c->f;
        struct forgejo_result res = { .err = err, .status = status, .route = c->route };
        struct forgejo_version ver = { 0 };
        struct forgejo_job_list jobs = { 0 };
        struct forgejo_runner_list runners = { .total_count = -1 };
        struct forgejo_runner_created created = { 0 };
        struct forgejo_reg_token reg = { { 0 } };
        bool have = false;

        c->xfer = NULL;
        call_unlink(c);
        if (err < 0) {
                snprintf(res.reason, sizeof(res.reason), "%s", transport_text(err));
                if (err == -ETIMEDOUT)
                        snprintf(res.reason, sizeof(res.reason), "request timed out after %ld ms",
                                 f->timeout_ms);
                if (err == -EMSGSIZE && c->op == OP_JOBS) {
                        /* Distinct from other oversized answers: the
                         * queue outgrew the cap, and demand is unknown. */
                        res.err = -EFBIG;
                        snprintf(res.reason, sizeof(res.reason), "listing larger than %zu bytes",
                                 f->max_listing);
                }
        } else if (!status_expected(c->op, status)) {
                char msg[100];
                res.err = status >= 200 && status < 300 ? -EPROTO : status_errno(status);
                forgejo_parse_error_message(body, len, f->token, msg, sizeof(msg));
                if (status >= 300 && status < 400)
                        snprintf(msg, sizeof(msg),
                                 "redirects are not followed (check the forge URL)");
                snprintf(res.reason, sizeof(res.reason), "HTTP %ld%s%s", status,
                         msg[0] ? ": " : "", msg);
        } else {
                int r = 0;
                switch (c->op) {
                case OP_VERSION:
                        r = forgejo_parse_version(body, len, &ver, res.reason,
                                                  sizeof(res.reason));
                        break;
                case OP_JOBS:
                        r = forgejo_parse_jobs(body, len, &jobs, res.reason, sizeof(res.reason));
                        break;
                case OP_CREATE:
                        r = forgejo_parse_created(body, len, &created, res.reason,
                                                  sizeof(res.reason));
                        break;
                case OP_GET:
                        r = forgejo_parse_runner(body, len, &runners, res.reason,
                                                 sizeof(res.reason));
                        break;
                case OP_LIST:
                        r = forgejo_parse_runners(body, len, &runners, res.reason,
                                                  sizeof(res.reason));
                        runners.total_count = total_count;
                        runners.page = c->page;
                        runners.limit = c->limit;
                        break;
                case OP_REG_TOKEN:
                        r = forgejo_parse_reg_token(body, len, &reg, res.reason, sizeof(res.reason));
                        break;
                case OP_DELETE:
                        break;
                }
                res.err = r;
                if (r == -ENOMEM)
                        snprintf(res.reason, sizeof(res.reason), "out of memory");
                have = r == 0;
        }

        if (f->hook) {
                char code[24];
                struct forgejo_event ev = {
                        .forge = f->name, .route = c->route, .status = status, .code = code,
                        .err = res.err, .duration_ms = mono_ms() - c->t0_ms,
                };
                if (status > 0)
                        snprintf(code, sizeof(code), "%ld", status);
                else
                        snprintf(code, sizeof(code), "error");
                f->hook(f->hook_ud, &ev);
        }
        /* f may be freed by the callback: nothing below touches it. */
        switch (c->op) {
        case OP_VERSION:
                c->cb.version(c->ud, &res, have ? &ver : NULL);
                break;
        case OP_JOBS:
                c->cb.jobs(c->ud, &res, have ? &jobs : NULL);
                break;
        case OP_CREATE:
                c->cb.created(c->ud, &res, have ? &created : NULL);
                break;
        case OP_GET:
                c->cb.runner(c->ud, &res, have ? &runners.runners[0] : NULL);
                break;
        case OP_LIST:
                c->cb.runners(c->ud, &res, have ? &runners : NULL);
                break;
        case OP_DELETE:
                c->cb.done(c->ud, &res);
                break;
        case OP_REG_TOKEN:
                c->cb.reg_token(c->ud, &res, have ? reg.token : NULL);
                break;
        }
        explicit_bzero(&created, sizeof(created));
        explicit_bzero(&reg, sizeof(reg));
        forgejo_version_done(&ver);
        forgejo_job_list_done(&jobs);
        forgejo_runner_list_done(&runners);
        free(c);
}

static struct forgejo_call *call_new(struct forgejo *f, enum op op, enum forgejo_scope_kind k,
                                     void *ud)
{
        struct forgejo_call *c = calloc(1, sizeof(*c));

        if (!c)
                return NULL;
        c->f = f;
        c->op = op;
        c->route = route_for(op, k);
        c->ud = ud;
        return c;
}

/* Starts the request of c (taken: freed on failure); path_query is
 * "/api/v1/...[?...]". */
static int start(struct forgejo_call *c, const char *method, const char *path_query,
                 const char *body, bool sensitive, struct forgejo_call **ret)
{
        struct forgejo *f = c->f;
        char url[URL_MAX];
        char *auth = NULL;
        const char *headers[5];
        size_t nh = 0;
        int r;

        r = snprintf(url, sizeof(url), "%s%s", f->base, path_query);
        if (r < 0 || (size_t)r >= sizeof(url)) {
                r = -ENAMETOOLONG;
                goto err;
        }
        if (f->token) {
                size_t n = sizeof(AUTH_PREFIX) + strlen(f->token);
                auth = malloc(n);
                if (!auth) {
                        r = -ENOMEM;
                        goto err;
                }
                snprintf(auth, n, AUTH_PREFIX "%s", f->token);
                headers[nh++] = auth;
        }
        headers[nh++] = "Accept: application/json";
        headers[nh++] = "User-Agent: forgescale/" FORGESCALE_VERSION;
        if (body)
                headers[nh++] = "Content-Type: application/json";
        headers[nh] = NULL;

        struct hmulti_req req = {
                .method = method,
                .url = url,
                .headers = headers,
                .body = body,
                .body_len = body ? strlen(body) : 0,
                .timeout_ms = f->timeout_ms,
                .max_response = c->op == OP_JOBS ? f->max_listing : f->max_response,
                .ca_file = f->ca_file,
                .insecure = f->insecure,
                /* The Authorization header is always a secret; so is a
                 * created runner's token in the response. */
                .sensitive = f->token != NULL || sensitive,
                /* Demand listings drive every decision and their interval
                 * is the reaction time: never behind a registration burst. */
                .urgent = c->op == OP_JOBS,
        };
        c->t0_ms = mono_ms();
        r = hmulti_start(f->hm, &req, on_http_done, c, &c->xfer);
        if (r < 0)
                goto err;
        if (auth) {
                explicit_bzero(auth, strlen(auth));
                free(auth);
        }
        c->next = f->calls;
        if (f->calls)
                f->calls->prev = c;
        f->calls = c;
        f->inflight++;
        if (ret)
                *ret = c;
        return 0;
err:
        if (auth) {
                explicit_bzero(auth, strlen(auth));
                free(auth);
        }
        free(c);
        return r;
}

int forgejo_version(struct forgejo *f, forgejo_version_cb cb, void *ud, struct forgejo_call **ret)
{
        struct forgejo_call *c;

        if (!cb)
                return -EINVAL;
        c = call_new(f, OP_VERSION, FORGEJO_SCOPE_INSTANCE, ud);
        if (!c)
                return -ENOMEM;
        c->cb.version = cb;
        return start(c, "GET", "/api/v1/version", NULL, false, ret);
}

int forgejo_list_jobs(struct forgejo *f, const struct forgejo_scope *sc,
                      const char *const *labels, forgejo_jobs_cb cb, void *ud,
                      struct forgejo_call **ret)
{
        char path[URL_MAX];
        int r, o;

        if (!cb)
                return -EINVAL;
        o = forgejo_scope_jobs_path(sc, path, sizeof(path));
        if (o < 0)
                return o;
        if (labels) {
                path[o++] = '?';
                r = forgejo_labels_query(labels, path + o, sizeof(path) - (size_t)o);
                if (r < 0)
                        return r;
        }
        struct forgejo_call *c = call_new(f, OP_JOBS, sc->kind, ud);
        if (!c)
                return -ENOMEM;
        c->cb.jobs = cb;
        return start(c, "GET", path, NULL, false, ret);
}

int forgejo_runner_create(struct forgejo *f, const struct forgejo_scope *sc, const char *name,
                          const char *description, bool ephemeral, forgejo_created_cb cb,
                          void *ud, struct forgejo_call **ret)
{
        char path[512];
        char *body = NULL;
        struct forgejo_call *c;
        int r;

        if (!cb || !name || !name[0])
                return -EINVAL;
        r = forgejo_scope_runners_path(sc, path, sizeof(path));
        if (r < 0)
                return r;
        r = forgejo_create_body(name, description, ephemeral, &body);
        if (r < 0)
                return r;
        c = call_new(f, OP_CREATE, sc->kind, ud);
        if (!c) {
                r = -ENOMEM;
                goto out;
        }
        c->cb.created = cb;
        r = start(c, "POST", path, body, true, ret);
out:
        free(body);
        return r;
}

static int runner_path(const struct forgejo_scope *sc, int64_t id, char *path, size_t n)
{
        int r;

        if (id <= 0)
                return -EINVAL;
        r = forgejo_scope_runners_path(sc, path, n);
        if (r < 0)
                return r;
        int m = snprintf(path + r, n - (size_t)r, "/%" PRId64, id);
        if (m < 0 || (size_t)m >= n - (size_t)r)
                return -ENAMETOOLONG;
        return 0;
}

int forgejo_runner_get(struct forgejo *f, const struct forgejo_scope *sc, int64_t id,
                       forgejo_runner_cb cb, void *ud, struct forgejo_call **ret)
{
        char path[512];
        int r;

        if (!cb)
                return -EINVAL;
        r = runner_path(sc, id, path, sizeof(path));
        if (r < 0)
                return r;
        struct forgejo_call *c = call_new(f, OP_GET, sc->kind, ud);
        if (!c)
                return -ENOMEM;
        c->cb.runner = cb;
        return start(c, "GET", path, NULL, false, ret);
}

int forgejo_runner_delete(struct forgejo *f, const struct forgejo_scope *sc, int64_t id,
                          forgejo_done_cb cb, void *ud, struct forgejo_call **ret)
{
        char path[512];
        int r;

        if (!cb)
                return -EINVAL;
        r = runner_path(sc, id, path, sizeof(path));
        if (r < 0)
                return r;
        struct forgejo_call *c = call_new(f, OP_DELETE, sc->kind, ud);
        if (!c)
                return -ENOMEM;
        c->cb.done = cb;
        return start(c, "DELETE", path, NULL, false, ret);
}

int forgejo_runner_list(struct forgejo *f, const struct forgejo_scope *sc, int page, int limit,
                        forgejo_runners_cb cb, void *ud, struct forgejo_call **ret)
{
        char path[512];
        int r;

        if (!cb || page < 1 || limit < 1 || limit > 1000)
                return -EINVAL;
        r = forgejo_scope_runners_path(sc, path, sizeof(path));
        if (r < 0)
                return r;
        int m = snprintf(path + r, sizeof(path) - (size_t)r, "?page=%d&limit=%d", page, limit);
        if (m < 0 || (size_t)m >= sizeof(path) - (size_t)r)
                return -ENAMETOOLONG;
        struct forgejo_call *c = call_new(f, OP_LIST, sc->kind, ud);
        if (!c)
                return -ENOMEM;
        c->cb.runners = cb;
        c->page = page;
        c->limit = limit;
        return start(c, "GET", path, NULL, false, ret);
}

int forgejo_registration_token(struct forgejo *f, const struct forgejo_scope *sc,
                               forgejo_reg_token_cb cb, void *ud, struct forgejo_call **ret)
{
        char path[512];
        int r;

        if (!cb)
                return -EINVAL;
        r = forgejo_scope_runners_path(sc, path, sizeof(path));
        if (r < 0)
                return r;
        int m = snprintf(path + r, sizeof(path) - (size_t)r, "/registration-token");
        if (m < 0 || (size_t)m >= sizeof(path) - (size_t)r)
                return -ENAMETOOLONG;
        struct forgejo_call *c = call_new(f, OP_REG_TOKEN, sc->kind, ud);
        if (!c)
                return -ENOMEM;
        c->cb.reg_token = cb;
        /* The answer is a secret: wiped with the response. */
        return start(c, "GET", path, NULL, true, ret);
}
