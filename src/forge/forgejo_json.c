/* forgejo_json.c: see forgejo_json.h. Strict parsing of Forgejo REST
 * bodies with jansson, and the one request body the client sends. Pure:
 * never does I/O, never logs, never puts a runner token or the API token
 * into a reason, and wipes a created runner's token from its parse tree. */
#include "forge/forgejo_json.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int forgejo_parse_version(const char *body, size_t len, struct forgejo_version *ret,
                          char *reason, size_t reason_n)
{
        struct forgejo_version v = { 0 };
        json_t *root = NULL;
        int r = load(body, len, &root, reason, reason_n);

        if (r < 0)
                return r;
        if (!json_is_object(root)) {
                r = bad(reason, reason_n, "expected a JSON object, got %s", type_name(root));
                goto err;
        }
        r = get_str(root, "version", true, &v.version, "$", reason, reason_n);
        if (r < 0)
                goto err;
        v.parsed = forgejo_version_parse(v.version, &v.major, &v.minor, &v.patch) == 0;
        v.priv = root;
        *ret = v;
        return 0;
err:
        json_decref(root);
        return r;
}

void forgejo_version_done(struct forgejo_version *v)
{
        if (!v)
                return;
        json_decref(v->priv);
        memset(v, 0, sizeof(*v));
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

void forgejo_parse_error_message(const char *body, size_t len, const char *secret, char *out,
                                 size_t n)
{
        json_t *j;
        const char *m;

        if (n == 0)
                return;
        out[0] = '\0';
        if (!body || len == 0)
                return;
        j = json_loadb(body, len, 0, NULL);
        if (!j)
                return;
        m = json_string_value(json_object_get(j, "message"));
        if (m && !(secret && secret[0] && strstr(m, secret)))
                sanitize_into(out, n, m);
        json_decref(j);
}

int forgejo_create_body(const char *name, const char *description, bool ephemeral, char **ret)
{
        json_t *j, *jn, *jd;
        char *body = NULL;
        int r;

        if (!name || !name[0])
                return -EINVAL;
        j = json_object();
        if (!j)
                return -ENOMEM;
        jn = json_string(name);
        jd = json_string(description ? description : "");
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
        *ret = body;
        r = 0;
out:
        json_decref(j);
        return r;
}
