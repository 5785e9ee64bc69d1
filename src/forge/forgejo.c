/* forgejo.c: see forgejo.h. Builds Forgejo REST requests (paths, URL
 * encoding, label queries, Authorization header) and parses responses
 * strictly with jansson. The only holder of the API token is the caller;
 * this file copies it only into the request header, which hmulti wipes.
 * Never logs, never puts a token into a reason, never keeps a runner token
 * after the create callback returns. */
#include "forge/forgejo.h"

#include "http/hmulti.h"
#include "fs_version.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define URL_MAX 8192
#define AUTH_PREFIX "Authorization: token "

enum op { OP_VERSION, OP_JOBS, OP_CREATE, OP_GET, OP_DELETE, OP_LIST };

struct forgejo {
        struct hmulti *hm;
        char *name;
        char *base;                      /* no trailing '/' */
        const char *token;               /* borrowed */
        long timeout_ms;
        size_t max_response;
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
        const char *route;
        int64_t t0_ms;
        union {
                forgejo_version_cb version;
                forgejo_jobs_cb jobs;
                forgejo_created_cb created;
                forgejo_runner_cb runner;
                forgejo_runners_cb runners;
                forgejo_done_cb done;
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
        }
        return "";
}

/* ---- scopes, encoding, queries ----------------------------------------- */

static bool name_ok(const char *s, size_t n)
{
        if (n == 0 || n >= FORGEJO_NAME_MAX)
                return false;
        if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
                return false;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)s[i];
                if (c <= 0x20 || c == 0x7f || c == '/')
                        return false;
        }
        return true;
}

static void copy_name(char *dst, const char *s, size_t n)
{
        memcpy(dst, s, n);
        dst[n] = '\0';
}

int forgejo_scope_parse(const char *s, struct forgejo_scope *ret)
{
        struct forgejo_scope sc = { 0 };

        if (!s)
                return -EINVAL;
        if (strcmp(s, "instance") == 0) {
                sc.kind = FORGEJO_SCOPE_INSTANCE;
        } else if (strcmp(s, "user") == 0) {
                sc.kind = FORGEJO_SCOPE_USER;
        } else if (strncmp(s, "org/", 4) == 0) {
                const char *n = s + 4;
                if (!name_ok(n, strlen(n)))
                        return -EINVAL;
                sc.kind = FORGEJO_SCOPE_ORG;
                copy_name(sc.owner, n, strlen(n));
        } else if (strncmp(s, "repo/", 5) == 0) {
                const char *o = s + 5;
                const char *slash = strchr(o, '/');
                if (!slash)
                        return -EINVAL;
                size_t on = (size_t)(slash - o);
                const char *r = slash + 1;
                if (!name_ok(o, on) || !name_ok(r, strlen(r)))
                        return -EINVAL;
                sc.kind = FORGEJO_SCOPE_REPO;
                copy_name(sc.owner, o, on);
                copy_name(sc.repo, r, strlen(r));
        } else {
                return -EINVAL;
        }
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
                return name_ok(sc->owner, strnlen(sc->owner, FORGEJO_NAME_MAX));
        case FORGEJO_SCOPE_REPO:
                return name_ok(sc->owner, strnlen(sc->owner, FORGEJO_NAME_MAX)) &&
                       name_ok(sc->repo, strnlen(sc->repo, FORGEJO_NAME_MAX));
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

int forgejo_version_parse(const char *s, int *ret_major, int *ret_minor, int *ret_patch)
{
        int v[3] = { 0, 0, 0 };
        int parts = 0;
        const char *p = s;

        if (!s)
                return -EINVAL;
        if (*p == 'v' || *p == 'V')
                p++;
        for (;;) {
                int digits = 0;
                long x = 0;
                while (*p >= '0' && *p <= '9') {
                        if (++digits > 9)
                                return -EINVAL;
                        x = x * 10 + (*p - '0');
                        p++;
                }
                if (digits == 0)
                        return -EINVAL;
                v[parts++] = (int)x;
                if (*p == '.' && parts < 3) {
                        p++;
                        continue;
                }
                break;
        }
        if (parts < 2)
                return -EINVAL;
        if (*p != '\0' && *p != '-' && *p != '+')
                return -EINVAL;
        *ret_major = v[0];
        *ret_minor = v[1];
        *ret_patch = v[2];
        return 0;
}

/* ---- strict JSON parsing ----------------------------------------------- */

struct store {
        json_t *root;
        const char **pool;               /* string arrays of all elements */
        size_t npool, cappool;
};

static const char *type_name(const json_t *j)
{
        switch (json_typeof(j)) {
        case JSON_OBJECT: return "object";
        case JSON_ARRAY: return "array";
        case JSON_STRING: return "string";
        case JSON_INTEGER: return "integer";
        case JSON_REAL: return "number";
        case JSON_TRUE:
        case JSON_FALSE: return "boolean";
        case JSON_NULL: return "null";
        }
        return "?";
}

__attribute__((format(printf, 3, 4)))
static int bad(char *reason, size_t n, const char *fmt, ...)
{
        va_list ap;

        if (reason && n) {
                va_start(ap, fmt);
                vsnprintf(reason, n, fmt, ap);
                va_end(ap);
        }
        return -EBADMSG;
}

static int load(const char *body, size_t len, json_t **ret, char *reason, size_t n)
{
        json_error_t e;
        json_t *j;

        if (!body)
                return bad(reason, n, "empty body");
        j = json_loadb(body, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &e);
        if (!j)
                return bad(reason, n, "invalid JSON at line %d column %d: %.60s", e.line,
                           e.column, e.text);
        *ret = j;
        return 0;
}

/* Field getters: "where" names the element ("$[3]") for the reason. */
static int get_int(const json_t *o, const char *key, bool required, int64_t min, int64_t *out,
                   const char *where, char *reason, size_t n)
{
        const json_t *v = json_object_get(o, key);

        if (!v) {
                if (required)
                        return bad(reason, n, "%s: missing \"%s\"", where, key);
                *out = 0;
                return 0;
        }
        if (!json_is_integer(v))
                return bad(reason, n, "%s.%s: expected integer, got %s", where, key, type_name(v));
        json_int_t x = json_integer_value(v);
        if (x < min)
                return bad(reason, n, "%s.%s: %lld is out of range", where, key, (long long)x);
        *out = (int64_t)x;
        return 0;
}

static int get_str(const json_t *o, const char *key, bool required, const char **out,
                   const char *where, char *reason, size_t n)
{
        const json_t *v = json_object_get(o, key);

        if (!v) {
                if (required)
                        return bad(reason, n, "%s: missing \"%s\"", where, key);
                *out = "";
                return 0;
        }
        if (!json_is_string(v))
                return bad(reason, n, "%s.%s: expected string, got %s", where, key, type_name(v));
        *out = json_string_value(v);
        return 0;
}

static int get_bool(const json_t *o, const char *key, bool required, bool *out,
                    const char *where, char *reason, size_t n)
{
        const json_t *v = json_object_get(o, key);

        if (!v) {
                if (required)
                        return bad(reason, n, "%s: missing \"%s\"", where, key);
                *out = false;
                return 0;
        }
        if (!json_is_boolean(v))
                return bad(reason, n, "%s.%s: expected boolean, got %s", where, key, type_name(v));
        *out = json_is_true(v);
        return 0;
}

/* A string array; JSON null counts as empty (Go nil slices). Pointers go to
 * the store's pool, which was sized beforehand. */
static int get_strarr(struct store *st, const json_t *o, const char *key, bool required,
                      const char *const **out, size_t *out_n, const char *where, char *reason,
                      size_t n)
{
        const json_t *v = json_object_get(o, key);
        size_t i;
        const json_t *e;

        *out = st->pool + st->npool;
        *out_n = 0;
        if (!v) {
                if (required)
                        return bad(reason, n, "%s: missing \"%s\"", where, key);
                return 0;
        }
        if (json_is_null(v))
                return 0;
        if (!json_is_array(v))
                return bad(reason, n, "%s.%s: expected array, got %s", where, key, type_name(v));
        json_array_foreach(v, i, e) {
                if (!json_is_string(e))
                        return bad(reason, n, "%s.%s[%zu]: expected string, got %s", where, key,
                                   i, type_name(e));
                if (st->npool >= st->cappool)
                        return bad(reason, n, "%s.%s: internal size mismatch", where, key);
                st->pool[st->npool++] = json_string_value(e);
        }
        *out_n = json_array_size(v);
        return 0;
}

/* Sizes the pool for the arrays named key in every element of arr. */
static int store_reserve(struct store *st, const json_t *arr, const char *key)
{
        size_t total = 0, i;
        const json_t *e;

        json_array_foreach(arr, i, e) {
                const json_t *a = json_is_object(e) ? json_object_get(e, key) : NULL;
                if (json_is_array(a))
                        total += json_array_size(a);
        }
        st->pool = calloc(total ? total : 1, sizeof(*st->pool));
        if (!st->pool)
                return -ENOMEM;
        st->cappool = total;
        return 0;
}

static void store_free(struct store *st)
{
        if (!st)
                return;
        json_decref(st->root);
        free(st->pool);
        free(st);
}

static enum forgejo_job_state job_state(const char *s)
{
        if (strcmp(s, "waiting") == 0)
                return FORGEJO_JOB_WAITING;
        if (strcmp(s, "running") == 0)
                return FORGEJO_JOB_RUNNING;
        return FORGEJO_JOB_OTHER;
}

static int parse_job(struct store *st, const json_t *o, size_t idx, struct forgejo_job *j,
                     char *reason, size_t n)
{
        char where[32];
        int r;

        snprintf(where, sizeof(where), "$[%zu]", idx);
        if (!json_is_object(o))
                return bad(reason, n, "%s: expected object, got %s", where, type_name(o));
        if ((r = get_int(o, "id", true, 1, &j->id, where, reason, n)) < 0 ||
            (r = get_int(o, "attempt", false, 0, &j->attempt, where, reason, n)) < 0 ||
            (r = get_str(o, "handle", false, &j->handle, where, reason, n)) < 0 ||
            (r = get_int(o, "repo_id", true, 0, &j->repo_id, where, reason, n)) < 0 ||
            (r = get_int(o, "owner_id", true, 0, &j->owner_id, where, reason, n)) < 0 ||
            (r = get_str(o, "name", true, &j->name, where, reason, n)) < 0 ||
            (r = get_strarr(st, o, "runs_on", true, &j->runs_on, &j->n_runs_on, where, reason,
                            n)) < 0 ||
            (r = get_int(o, "task_id", true, 0, &j->task_id, where, reason, n)) < 0 ||
            (r = get_str(o, "status", true, &j->status, where, reason, n)) < 0)
                return r;
        const json_t *needs = json_object_get(o, "needs");
        if (needs && !json_is_null(needs) && !json_is_array(needs))
                return bad(reason, n, "%s.needs: expected array, got %s", where,
                           type_name(needs));
        j->state = job_state(j->status);
        return 0;
}

int forgejo_parse_jobs(const char *body, size_t len, struct forgejo_job_list *ret,
                       char *reason, size_t reason_n)
{
        struct forgejo_job_list l = { 0 };
        struct store *st = calloc(1, sizeof(*st));
        size_t i;
        json_t *e;
        int r;

        if (!st)
                return -ENOMEM;
        r = load(body, len, &st->root, reason, reason_n);
        if (r < 0)
                goto err;
        if (json_is_null(st->root)) {
                /* Forgejo serialises an empty result as null. */
        } else if (!json_is_array(st->root)) {
                r = bad(reason, reason_n, "expected a JSON array or null, got %s",
                        type_name(st->root));
                goto err;
        } else {
                r = store_reserve(st, st->root, "runs_on");
                if (r < 0)
                        goto err;
                l.n = json_array_size(st->root);
                l.jobs = calloc(l.n ? l.n : 1, sizeof(*l.jobs));
                if (!l.jobs) {
                        r = -ENOMEM;
                        goto err;
                }
                json_array_foreach(st->root, i, e) {
                        r = parse_job(st, e, i, &l.jobs[i], reason, reason_n);
                        if (r < 0)
                                goto err;
                }
        }
        if (!l.jobs) {
                l.jobs = calloc(1, sizeof(*l.jobs));
                if (!l.jobs) {
                        r = -ENOMEM;
                        goto err;
                }
        }
        l.priv = st;
        *ret = l;
        return 0;
err:
        free(l.jobs);
        store_free(st);
        return r;
}

void forgejo_job_list_done(struct forgejo_job_list *l)
{
        if (!l)
                return;
        free(l->jobs);
        store_free(l->priv);
        memset(l, 0, sizeof(*l));
}

static enum forgejo_runner_state runner_state(const char *s)
{
        if (strcmp(s, "offline") == 0)
                return FORGEJO_RUNNER_OFFLINE;
        if (strcmp(s, "idle") == 0)
                return FORGEJO_RUNNER_IDLE;
        if (strcmp(s, "active") == 0)
                return FORGEJO_RUNNER_ACTIVE;
        return FORGEJO_RUNNER_UNKNOWN;
}

static int parse_runner_obj(struct store *st, const json_t *o, const char *where,
                            struct forgejo_runner *rn, char *reason, size_t n)
{
        int r;

        if (!json_is_object(o))
                return bad(reason, n, "%s: expected object, got %s", where, type_name(o));
        if ((r = get_int(o, "id", true, 1, &rn->id, where, reason, n)) < 0 ||
            (r = get_str(o, "uuid", true, &rn->uuid, where, reason, n)) < 0 ||
            (r = get_str(o, "name", true, &rn->name, where, reason, n)) < 0 ||
            (r = get_str(o, "status", true, &rn->status, where, reason, n)) < 0 ||
            (r = get_strarr(st, o, "labels", false, &rn->labels, &rn->n_labels, where, reason,
                            n)) < 0 ||
            (r = get_bool(o, "ephemeral", false, &rn->ephemeral, where, reason, n)) < 0 ||
            (r = get_int(o, "owner_id", false, 0, &rn->owner_id, where, reason, n)) < 0 ||
            (r = get_int(o, "repo_id", false, 0, &rn->repo_id, where, reason, n)) < 0 ||
            (r = get_str(o, "version", false, &rn->version, where, reason, n)) < 0 ||
            (r = get_str(o, "description", false, &rn->description, where, reason, n)) < 0)
                return r;
        rn->state = runner_state(rn->status);
        return 0;
}

/* One object (single) or an array/null of objects (!single). */
static int parse_runners_common(const char *body, size_t len, bool single,
                                struct forgejo_runner_list *ret, char *reason, size_t n)
{
        struct forgejo_runner_list l = { .total_count = -1 };
        struct store *st = calloc(1, sizeof(*st));
        json_t *arr = NULL;
        int r;

        if (!st)
                return -ENOMEM;
        r = load(body, len, &st->root, reason, n);
        if (r < 0)
                goto err;
        if (single) {
                if (!json_is_object(st->root)) {
                        r = bad(reason, n, "expected a JSON object, got %s", type_name(st->root));
                        goto err;
                }
                arr = json_pack("[O]", st->root);
                if (!arr) {
                        r = -ENOMEM;
                        goto err;
                }
        } else if (json_is_array(st->root)) {
                arr = json_incref(st->root);
        } else if (!json_is_null(st->root)) {
                r = bad(reason, n, "expected a JSON array or null, got %s", type_name(st->root));
                goto err;
        }
        if (arr) {
                size_t i;
                json_t *e;
                r = store_reserve(st, arr, "labels");
                if (r < 0)
                        goto err;
                l.n = json_array_size(arr);
                l.runners = calloc(l.n ? l.n : 1, sizeof(*l.runners));
                if (!l.runners) {
                        r = -ENOMEM;
                        goto err;
                }
                json_array_foreach(arr, i, e) {
                        char where[32];
                        if (single)
                                snprintf(where, sizeof(where), "$");
                        else
                                snprintf(where, sizeof(where), "$[%zu]", i);
                        r = parse_runner_obj(st, e, where, &l.runners[i], reason, n);
                        if (r < 0)
                                goto err;
                }
        } else {
                l.runners = calloc(1, sizeof(*l.runners));
                if (!l.runners) {
                        r = -ENOMEM;
                        goto err;
                }
        }
        json_decref(arr);
        l.priv = st;
        *ret = l;
        return 0;
err:
        json_decref(arr);
        free(l.runners);
        store_free(st);
        return r;
}

int forgejo_parse_runner(const char *body, size_t len, struct forgejo_runner_list *ret,
                         char *reason, size_t reason_n)
{
        return parse_runners_common(body, len, true, ret, reason, reason_n);
}

int forgejo_parse_runners(const char *body, size_t len, struct forgejo_runner_list *ret,
                          char *reason, size_t reason_n)
{
        return parse_runners_common(body, len, false, ret, reason, reason_n);
}

void forgejo_runner_list_done(struct forgejo_runner_list *l)
{
        if (!l)
                return;
        free(l->runners);
        store_free(l->priv);
        memset(l, 0, sizeof(*l));
        l->total_count = -1;
}

static bool is_hex(char c)
{
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool uuid_shape_ok(const char *s)
{
        if (strlen(s) != FORGEJO_UUID_LEN)
                return false;
        for (size_t i = 0; i < FORGEJO_UUID_LEN; i++) {
                if (i == 8 || i == 13 || i == 18 || i == 23) {
                        if (s[i] != '-')
                                return false;
                } else if (!is_hex(s[i])) {
                        return false;
                }
        }
        return true;
}

static bool token_shape_ok(const char *s, size_t len)
{
        if (len != FORGEJO_RUNNER_TOKEN_LEN)
                return false;
        for (size_t i = 0; i < len; i++)
                if (!is_hex(s[i]))
                        return false;
        return true;
}

/* Zeroes a string inside a parse tree before the tree is freed. */
static void wipe_json_string(json_t *v)
{
        if (json_is_string(v))
                explicit_bzero((char *)json_string_value(v), json_string_length(v));
}

int forgejo_parse_created(const char *body, size_t len, struct forgejo_runner_created *ret,
                          char *reason, size_t reason_n)
{
        json_t *root = NULL;
        const json_t *tok;
        const char *uuid, *token;
        int64_t id;
        int r;

        r = load(body, len, &root, reason, reason_n);
        if (r < 0)
                return r;
        tok = json_object_get(root, "token");
        if (!json_is_object(root)) {
                r = bad(reason, reason_n, "expected a JSON object, got %s", type_name(root));
                goto out;
        }
        if ((r = get_int(root, "id", true, 1, &id, "$", reason, reason_n)) < 0 ||
            (r = get_str(root, "uuid", true, &uuid, "$", reason, reason_n)) < 0 ||
            (r = get_str(root, "token", true, &token, "$", reason, reason_n)) < 0)
                goto out;
        if (!uuid_shape_ok(uuid)) {
                r = bad(reason, reason_n, "$.uuid: not a canonical UUID");
                goto out;
        }
        if (!token_shape_ok(token, json_string_length(tok))) {
                /* Never quote the value: it may be a real secret. */
                r = bad(reason, reason_n, "$.token: expected %d hex characters",
                        FORGEJO_RUNNER_TOKEN_LEN);
                goto out;
        }
        ret->id = id;
        memcpy(ret->uuid, uuid, FORGEJO_UUID_LEN + 1);
        memcpy(ret->token, token, FORGEJO_RUNNER_TOKEN_LEN + 1);
        r = 0;
out:
        wipe_json_string((json_t *)tok);
        json_decref(root);
        return r;
}

static int parse_version(const char *body, size_t len, json_t **ret_root,
                         struct forgejo_version *v, char *reason, size_t n)
{
        json_t *root = NULL;
        int r = load(body, len, &root, reason, n);

        if (r < 0)
                return r;
        if (!json_is_object(root)) {
                r = bad(reason, n, "expected a JSON object, got %s", type_name(root));
                goto err;
        }
        r = get_str(root, "version", true, &v->version, "$", reason, n);
        if (r < 0)
                goto err;
        v->parsed = forgejo_version_parse(v->version, &v->major, &v->minor, &v->patch) == 0;
        *ret_root = root;
        return 0;
err:
        json_decref(root);
        return r;
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

static char *dup_or_null(const char *s, bool *oom)
{
        char *d;

        if (!s)
                return NULL;
        d = strdup(s);
        if (!d)
                *oom = true;
        return d;
}

int forgejo_new(struct hmulti *hm, const struct forgejo_opts *opts, struct forgejo **ret)
{
        struct forgejo *f;
        bool oom = false;

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
        f->insecure = opts->insecure;
        f->name = dup_or_null(opts->name ? opts->name : "", &oom);
        f->base = dup_or_null(opts->base_url, &oom);
        f->ca_file = dup_or_null(opts->ca_file, &oom);
        if (oom) {
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

/* Printable ASCII only, so a hostile server cannot inject log syntax. */
static void sanitize_into(char *dst, size_t n, const char *s)
{
        size_t o = 0;

        if (n == 0)
                return;
        for (; *s && o + 1 < n; s++) {
                unsigned char c = (unsigned char)*s;
                dst[o++] = (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? (char)c : '?';
        }
        dst[o] = '\0';
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

/* The "message" of a Forgejo error body, sanitised, unless it could echo
 * the token back. */
static void error_message(const struct forgejo *f, const char *body, size_t len, char *out,
                          size_t n)
{
        json_t *j;
        const char *m;

        out[0] = '\0';
        if (!body || len == 0)
                return;
        j = json_loadb(body, len, 0, NULL);
        if (!j)
                return;
        m = json_string_value(json_object_get(j, "message"));
        if (m && !(f->token && strstr(m, f->token)))
                sanitize_into(out, n, m);
        json_decref(j);
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
        json_t *ver_root = NULL;
        struct forgejo_job_list jobs = { 0 };
        struct forgejo_runner_list runners = { .total_count = -1 };
        struct forgejo_runner_created created = { 0 };
        bool have = false;

        c->xfer = NULL;
        call_unlink(c);
        if (err < 0) {
                snprintf(res.reason, sizeof(res.reason), "%s", transport_text(err));
                if (err == -ETIMEDOUT)
                        snprintf(res.reason, sizeof(res.reason), "request timed out after %ld ms",
                                 f->timeout_ms);
        } else if (!status_expected(c->op, status)) {
                char msg[100];
                res.err = status >= 200 && status < 300 ? -EPROTO : status_errno(status);
                error_message(f, body, len, msg, sizeof(msg));
                if (status >= 300 && status < 400)
                        snprintf(msg, sizeof(msg),
                                 "redirects are not followed (check the forge URL)");
                snprintf(res.reason, sizeof(res.reason), "HTTP %ld%s%s", status,
                         msg[0] ? ": " : "", msg);
        } else {
                int r = 0;
                switch (c->op) {
                case OP_VERSION:
                        r = parse_version(body, len, &ver_root, &ver, res.reason,
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
        }
        explicit_bzero(&created, sizeof(created));
        json_decref(ver_root);
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
                .max_response = f->max_response,
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
        json_t *j = NULL;
        char *body = NULL;
        int r;

        if (!cb || !name || !name[0])
                return -EINVAL;
        r = forgejo_scope_runners_path(sc, path, sizeof(path));
        if (r < 0)
                return r;
        j = json_object();
        if (!j)
                return -ENOMEM;
        json_t *jn = json_string(name);
        json_t *jd = json_string(description ? description : "");
        if (!jn || !jd) {
                /* json_string() fails on invalid UTF-8 as well as OOM. */
                json_decref(jn);
                json_decref(jd);
                r = -EINVAL;
                goto out;
        }
        if (json_object_set_new(j, "name", jn) < 0 ||
            json_object_set_new(j, "description", jd) < 0 ||
            json_object_set_new(j, "ephemeral", json_boolean(ephemeral)) < 0) {
                r = -ENOMEM;
                goto out;
        }
        body = json_dumps(j, JSON_COMPACT);
        if (!body) {
                r = -ENOMEM;
                goto out;
        }
        struct forgejo_call *c = call_new(f, OP_CREATE, sc->kind, ud);
        if (!c) {
                r = -ENOMEM;
                goto out;
        }
        c->cb.created = cb;
        r = start(c, "POST", path, body, true, ret);
out:
        free(body);
        json_decref(j);
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
        return start(c, "GET", path, NULL, false, ret);
}
