/* rproto.c: protojson encoding and decoding of the runner protocol messages
 * (see rproto.h for the rules). Pure code: no I/O, no logging, no globals.
 * Every decoder validates types and reports the first bad field by name,
 * because these bodies come from the network. */
#include "forge/rproto.h"

#include "util/base64.h"
#include "util/rfc3339.h"
#include "util/strutil.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- small helpers ----------------------------------------------------- */

static const char *const result_names[] = {
        "RESULT_UNSPECIFIED", "RESULT_SUCCESS", "RESULT_FAILURE",
        "RESULT_CANCELLED", "RESULT_SKIPPED",
};

static const char *const runner_status_names[] = {
        "RUNNER_STATUS_UNSPECIFIED", "RUNNER_STATUS_IDLE",
        "RUNNER_STATUS_ACTIVE", "RUNNER_STATUS_OFFLINE",
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

const char *rp_result_name(enum rp_result r)
{
        if ((unsigned)r < NELEM(result_names))
                return result_names[r];
        return "RESULT_UNSPECIFIED";
}

int rp_result_parse(const char *name, enum rp_result *ret)
{
        for (size_t i = 0; i < NELEM(result_names); i++)
                if (strcmp(name, result_names[i]) == 0) {
                        *ret = (enum rp_result)i;
                        return 0;
                }
        return -EINVAL;
}

static void seterr(char *err, size_t errlen, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
        va_list ap;

        if (!err || !errlen)
                return;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
}

/* Looks a field up by its protojson (lowerCamelCase) name, then by the
 * proto (snake_case) name. JSON null counts as absent, as protojson says. */
static json_t *field(const json_t *obj, const char *camel, const char *snake)
{
        json_t *v = json_object_get(obj, camel);

        if (!v && snake)
                v = json_object_get(obj, snake);
        if (v && json_is_null(v))
                return NULL;
        return v;
}

static int get_str(const json_t *o, const char *camel, const char *snake,
                   char **ret, char *err, size_t errlen)
{
        json_t *v = field(o, camel, snake);

        if (!v)
                return 0;
        if (!json_is_string(v)) {
                seterr(err, errlen, "field \"%s\": expected a string", camel);
                return -EINVAL;
        }
        *ret = strdup(json_string_value(v));
        return *ret ? 0 : -ENOMEM;
}

static int get_i64(const json_t *o, const char *camel, const char *snake,
                   int64_t *ret, char *err, size_t errlen)
{
        json_t *v = field(o, camel, snake);

        if (!v)
                return 0;
        if (json_is_integer(v)) {
                *ret = json_integer_value(v);
                return 0;
        }
        if (json_is_string(v) && strutil_parse_i64(json_string_value(v), ret) == 0)
                return 0;
        seterr(err, errlen, "field \"%s\": expected an int64 (decimal string or integer)", camel);
        return -EINVAL;
}

static int get_bool(const json_t *o, const char *camel, const char *snake,
                    bool *ret, char *err, size_t errlen)
{
        json_t *v = field(o, camel, snake);

        if (!v)
                return 0;
        if (!json_is_boolean(v)) {
                seterr(err, errlen, "field \"%s\": expected a boolean", camel);
                return -EINVAL;
        }
        *ret = json_is_true(v);
        return 0;
}

static int get_enum(const json_t *o, const char *camel, const char *snake,
                    const char *const *names, size_t nnames, int *ret,
                    char *err, size_t errlen)
{
        json_t *v = field(o, camel, snake);

        if (!v)
                return 0;
        if (json_is_string(v)) {
                for (size_t i = 0; i < nnames; i++)
                        if (strcmp(json_string_value(v), names[i]) == 0) {
                                *ret = (int)i;
                                return 0;
                        }
        } else if (json_is_integer(v)) {
                json_int_t n = json_integer_value(v);
                if (n >= 0 && (size_t)n < nnames) {
                        *ret = (int)n;
                        return 0;
                }
        }
        seterr(err, errlen, "field \"%s\": unknown enum value", camel);
        return -EINVAL;
}

static int get_ts(const json_t *o, const char *camel, const char *snake,
                  struct rp_ts *ret, char *err, size_t errlen)
{
        json_t *v = field(o, camel, snake);

        if (!v)
                return 0;
        if (!json_is_string(v) || rp_ts_parse(json_string_value(v), ret) < 0) {
                seterr(err, errlen, "field \"%s\": expected an RFC 3339 timestamp", camel);
                return -EINVAL;
        }
        return 0;
}

static int get_strlist(const json_t *o, const char *camel, const char *snake,
                       struct rp_strlist *ret, char *err, size_t errlen)
{
        json_t *v = field(o, camel, snake), *e;
        size_t i;

        if (!v)
                return 0;
        if (!json_is_array(v)) {
                seterr(err, errlen, "field \"%s\": expected an array of strings", camel);
                return -EINVAL;
        }
        json_array_foreach(v, i, e) {
                if (!json_is_string(e)) {
                        seterr(err, errlen, "field \"%s\": expected an array of strings", camel);
                        return -EINVAL;
                }
                if (rp_strlist_push(ret, json_string_value(e)) < 0)
                        return -ENOMEM;
        }
        return 0;
}

/* A JSON object kept as is (Struct). */
static int get_object(const json_t *o, const char *camel, const char *snake,
                      json_t **ret, char *err, size_t errlen)
{
        json_t *v = field(o, camel, snake);

        if (!v)
                return 0;
        if (!json_is_object(v)) {
                seterr(err, errlen, "field \"%s\": expected an object", camel);
                return -EINVAL;
        }
        *ret = json_incref(v);
        return 0;
}

/* map<string,string>: an object whose values are all strings. */
static int get_str_map(const json_t *o, const char *camel, const char *snake,
                       json_t **ret, char *err, size_t errlen)
{
        json_t *v = field(o, camel, snake), *e;
        const char *k;

        if (!v)
                return 0;
        if (!json_is_object(v))
                goto bad;
        json_object_foreach(v, k, e)
                if (!json_is_string(e))
                        goto bad;
        *ret = json_incref(v);
        return 0;
bad:
        seterr(err, errlen, "field \"%s\": expected an object of strings", camel);
        return -EINVAL;
}

static int set_new(json_t *o, const char *k, json_t *v)
{
        if (!v)
                return -ENOMEM;
        return json_object_set_new(o, k, v) == 0 ? 0 : -ENOMEM;
}

static int put_str(json_t *o, const char *k, const char *s)
{
        if (!s || !*s)
                return 0;
        return set_new(o, k, json_string(s));
}

static int put_i64(json_t *o, const char *k, int64_t v)
{
        char buf[32];

        if (v == 0)
                return 0;
        snprintf(buf, sizeof(buf), "%" PRId64, v);
        return set_new(o, k, json_string(buf));
}

static int put_bool(json_t *o, const char *k, bool v)
{
        if (!v)
                return 0;
        return set_new(o, k, json_true());
}

static int put_ts(json_t *o, const char *k, struct rp_ts ts)
{
        char buf[RFC3339_BUF];
        int r;

        if (!ts.set)
                return 0;
        r = rp_ts_format(ts, buf, sizeof(buf));
        if (r < 0)
                return r;
        return set_new(o, k, json_string(buf));
}

static int put_strlist(json_t *o, const char *k, const struct rp_strlist *l)
{
        json_t *a;

        if (!l->n)
                return 0;
        a = json_array();
        if (!a)
                return -ENOMEM;
        for (size_t i = 0; i < l->n; i++)
                if (json_array_append_new(a, json_string(l->v[i])) < 0) {
                        json_decref(a);
                        return -ENOMEM;
                }
        return set_new(o, k, a);
}

static int put_json(json_t *o, const char *k, json_t *v)
{
        if (!v)
                return 0;
        return set_new(o, k, json_incref(v));
}

static bool check_object(const json_t *j, char *err, size_t errlen)
{
        if (json_is_object(j))
                return true;
        seterr(err, errlen, "%s", "message: expected a JSON object");
        return false;
}

/* ---- string lists ------------------------------------------------------ */

int rp_strlist_push(struct rp_strlist *l, const char *s)
{
        char **v = realloc(l->v, (l->n + 1) * sizeof(*v));
        if (!v)
                return -ENOMEM;
        l->v = v;
        v[l->n] = strdup(s);
        if (!v[l->n])
                return -ENOMEM;
        l->n++;
        return 0;
}

void rp_strlist_done(struct rp_strlist *l)
{
        for (size_t i = 0; i < l->n; i++)
                free(l->v[i]);
        free(l->v);
        l->v = NULL;
        l->n = 0;
}

bool rp_strlist_contains(const struct rp_strlist *l, const char *s)
{
        for (size_t i = 0; i < l->n; i++)
                if (strcmp(l->v[i], s) == 0)
                        return true;
        return false;
}

/* ---- timestamps -------------------------------------------------------- */

struct rp_ts rp_ts_now(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (struct rp_ts){ .sec = ts.tv_sec, .nsec = (int32_t)ts.tv_nsec, .set = true };
}

int rp_ts_format(struct rp_ts ts, char *buf, size_t n)
{
        return rfc3339_format(ts.sec, ts.nsec, RFC3339_FRAC_AUTO, buf, n);
}

int rp_ts_parse(const char *s, struct rp_ts *ret)
{
        int64_t sec;
        int32_t nsec;

        if (!s || rfc3339_parse(s, strlen(s), &sec, &nsec) < 0)
                return -EINVAL;
        *ret = (struct rp_ts){ .sec = sec, .nsec = nsec, .set = true };
        return 0;
}

/* ---- codec macros ------------------------------------------------------ */

/* Each decoder: zero *ret, fill it, on failure release the partial result so
 * the caller never owns half a message. */
#define DECODE_BEGIN(type)                                                      \
        int rp_##type##_from_json(const json_t *j, struct rp_##type *ret,      \
                                  char *err, size_t errlen)                     \
        {                                                                       \
                int r = 0;                                                      \
                memset(ret, 0, sizeof(*ret));                                   \
                if (!check_object(j, err, errlen))                              \
                        return -EINVAL;
#define DECODE_END(type)                                                        \
                return 0;                                                       \
        fail:                                                                   \
                rp_##type##_done(ret);                                          \
                memset(ret, 0, sizeof(*ret));                                   \
                return r;                                                       \
        }
#define TRY(expr) do { if ((r = (expr)) < 0) goto fail; } while (0)

#define ENCODE_BEGIN(type)                                                      \
        json_t *rp_##type##_to_json(const struct rp_##type *m)                  \
        {                                                                       \
                json_t *o = json_object();                                      \
                if (!o)                                                         \
                        return NULL;
#define ENCODE_END                                                              \
                return o;                                                       \
        fail:                                                                   \
                json_decref(o);                                                 \
                return NULL;                                                    \
        }
#define PUT(expr) do { if ((expr) < 0) goto fail; } while (0)

/* ---- Ping ---------------------------------------------------------------- */

DECODE_BEGIN(ping_req)
        TRY(get_str(j, "data", NULL, &ret->data, err, errlen));
DECODE_END(ping_req)
ENCODE_BEGIN(ping_req)
        PUT(put_str(o, "data", m->data));
ENCODE_END
void rp_ping_req_done(struct rp_ping_req *m) { free(m->data); m->data = NULL; }

DECODE_BEGIN(ping_resp)
        TRY(get_str(j, "data", NULL, &ret->data, err, errlen));
DECODE_END(ping_resp)
ENCODE_BEGIN(ping_resp)
        PUT(put_str(o, "data", m->data));
ENCODE_END
void rp_ping_resp_done(struct rp_ping_resp *m) { free(m->data); m->data = NULL; }

/* ---- Runner -------------------------------------------------------------- */

DECODE_BEGIN(runner)
        int st = 0;
        TRY(get_i64(j, "id", NULL, &ret->id, err, errlen));
        TRY(get_str(j, "uuid", NULL, &ret->uuid, err, errlen));
        TRY(get_str(j, "token", NULL, &ret->token, err, errlen));
        TRY(get_str(j, "name", NULL, &ret->name, err, errlen));
        TRY(get_enum(j, "status", NULL, runner_status_names, NELEM(runner_status_names), &st, err, errlen));
        ret->status = (enum rp_runner_status)st;
        TRY(get_str(j, "version", NULL, &ret->version, err, errlen));
        TRY(get_strlist(j, "labels", NULL, &ret->labels, err, errlen));
        TRY(get_bool(j, "ephemeral", NULL, &ret->ephemeral, err, errlen));
DECODE_END(runner)
ENCODE_BEGIN(runner)
        PUT(put_i64(o, "id", m->id));
        PUT(put_str(o, "uuid", m->uuid));
        PUT(put_str(o, "token", m->token));
        PUT(put_str(o, "name", m->name));
        if (m->status != RP_RUNNER_STATUS_UNSPECIFIED && (unsigned)m->status < NELEM(runner_status_names))
                PUT(set_new(o, "status", json_string(runner_status_names[m->status])));
        PUT(put_str(o, "version", m->version));
        PUT(put_strlist(o, "labels", &m->labels));
        PUT(put_bool(o, "ephemeral", m->ephemeral));
ENCODE_END
void rp_runner_done(struct rp_runner *m)
{
        free(m->uuid);
        if (m->token) {
                explicit_bzero(m->token, strlen(m->token));
                free(m->token);
        }
        free(m->name);
        free(m->version);
        rp_strlist_done(&m->labels);
        memset(m, 0, sizeof(*m));
}

static int get_runner(const json_t *j, struct rp_runner *ret, char *err, size_t errlen)
{
        json_t *v = field(j, "runner", NULL);

        if (!v)
                return 0;
        return rp_runner_from_json(v, ret, err, errlen);
}

static int put_runner(json_t *o, const struct rp_runner *r)
{
        return set_new(o, "runner", rp_runner_to_json(r));
}

/* ---- Register / Declare ---------------------------------------------------- */

DECODE_BEGIN(register_req)
        TRY(get_str(j, "name", NULL, &ret->name, err, errlen));
        TRY(get_str(j, "token", NULL, &ret->token, err, errlen));
        TRY(get_str(j, "version", NULL, &ret->version, err, errlen));
        TRY(get_strlist(j, "labels", NULL, &ret->labels, err, errlen));
        TRY(get_bool(j, "ephemeral", NULL, &ret->ephemeral, err, errlen));
DECODE_END(register_req)
ENCODE_BEGIN(register_req)
        PUT(put_str(o, "name", m->name));
        PUT(put_str(o, "token", m->token));
        PUT(put_str(o, "version", m->version));
        PUT(put_strlist(o, "labels", &m->labels));
        PUT(put_bool(o, "ephemeral", m->ephemeral));
ENCODE_END
void rp_register_req_done(struct rp_register_req *m)
{
        free(m->name);
        if (m->token) {
                explicit_bzero(m->token, strlen(m->token));
                free(m->token);
        }
        free(m->version);
        rp_strlist_done(&m->labels);
        memset(m, 0, sizeof(*m));
}

DECODE_BEGIN(register_resp)
        TRY(get_runner(j, &ret->runner, err, errlen));
DECODE_END(register_resp)
ENCODE_BEGIN(register_resp)
        PUT(put_runner(o, &m->runner));
ENCODE_END
void rp_register_resp_done(struct rp_register_resp *m) { rp_runner_done(&m->runner); }

DECODE_BEGIN(declare_req)
        TRY(get_str(j, "version", NULL, &ret->version, err, errlen));
        TRY(get_strlist(j, "labels", NULL, &ret->labels, err, errlen));
DECODE_END(declare_req)
ENCODE_BEGIN(declare_req)
        PUT(put_str(o, "version", m->version));
        PUT(put_strlist(o, "labels", &m->labels));
ENCODE_END
void rp_declare_req_done(struct rp_declare_req *m)
{
        free(m->version);
        rp_strlist_done(&m->labels);
        memset(m, 0, sizeof(*m));
}

DECODE_BEGIN(declare_resp)
        TRY(get_runner(j, &ret->runner, err, errlen));
DECODE_END(declare_resp)
ENCODE_BEGIN(declare_resp)
        PUT(put_runner(o, &m->runner));
ENCODE_END
void rp_declare_resp_done(struct rp_declare_resp *m) { rp_runner_done(&m->runner); }

/* ---- Fetch requests ---------------------------------------------------------- */

DECODE_BEGIN(fetch_task_req)
        TRY(get_i64(j, "tasksVersion", "tasks_version", &ret->tasks_version, err, errlen));
        TRY(get_i64(j, "taskCapacity", "task_capacity", &ret->task_capacity, err, errlen));
DECODE_END(fetch_task_req)
ENCODE_BEGIN(fetch_task_req)
        PUT(put_i64(o, "tasksVersion", m->tasks_version));
        PUT(put_i64(o, "taskCapacity", m->task_capacity));
ENCODE_END
void rp_fetch_task_req_done(struct rp_fetch_task_req *m) { (void)m; }

DECODE_BEGIN(fetch_single_task_req)
        TRY(get_i64(j, "tasksVersion", "tasks_version", &ret->tasks_version, err, errlen));
        TRY(get_str(j, "handle", NULL, &ret->handle, err, errlen));
DECODE_END(fetch_single_task_req)
ENCODE_BEGIN(fetch_single_task_req)
        PUT(put_i64(o, "tasksVersion", m->tasks_version));
        PUT(put_str(o, "handle", m->handle));
ENCODE_END
void rp_fetch_single_task_req_done(struct rp_fetch_single_task_req *m)
{
        free(m->handle);
        m->handle = NULL;
}

/* ---- Task ------------------------------------------------------------------- */

static int get_needs(const json_t *o, json_t **ret, char *err, size_t errlen)
{
        json_t *v = field(o, "needs", NULL), *e, *x;
        const char *k;

        if (!v)
                return 0;
        if (!json_is_object(v))
                goto bad;
        json_object_foreach(v, k, e) {
                if (!json_is_object(e))
                        goto bad;
                x = json_object_get(e, "outputs");
                if (x && !json_is_null(x)) {
                        const char *k2;
                        json_t *e2;
                        if (!json_is_object(x))
                                goto bad;
                        json_object_foreach(x, k2, e2)
                                if (!json_is_string(e2))
                                        goto bad;
                }
                x = json_object_get(e, "result");
                if (x && !json_is_null(x) && !json_is_string(x) && !json_is_integer(x))
                        goto bad;
        }
        *ret = json_incref(v);
        return 0;
bad:
        seterr(err, errlen, "field \"%s\": expected an object of {outputs, result}", "needs");
        return -EINVAL;
}

DECODE_BEGIN(task)
        char *payload = NULL;
        TRY(get_i64(j, "id", NULL, &ret->id, err, errlen));
        TRY(get_str(j, "workflowPayload", "workflow_payload", &payload, err, errlen));
        if (payload) {
                r = base64_decode(payload, strlen(payload), &ret->workflow_payload,
                                  &ret->workflow_payload_len);
                free(payload);
                if (r == -EINVAL)
                        seterr(err, errlen, "field \"%s\": invalid base64", "workflowPayload");
                if (r < 0)
                        goto fail;
        }
        TRY(get_object(j, "context", NULL, &ret->context, err, errlen));
        TRY(get_str_map(j, "secrets", NULL, &ret->secrets, err, errlen));
        TRY(get_needs(j, &ret->needs, err, errlen));
        TRY(get_str_map(j, "vars", NULL, &ret->vars, err, errlen));
DECODE_END(task)
ENCODE_BEGIN(task)
        PUT(put_i64(o, "id", m->id));
        if (m->workflow_payload && m->workflow_payload_len) {
                char *b = base64_encode(m->workflow_payload, m->workflow_payload_len);
                if (!b)
                        goto fail;
                int rr = set_new(o, "workflowPayload", json_string(b));
                free(b);
                PUT(rr);
        }
        PUT(put_json(o, "context", m->context));
        PUT(put_json(o, "secrets", m->secrets));
        PUT(put_json(o, "needs", m->needs));
        PUT(put_json(o, "vars", m->vars));
ENCODE_END
void rp_task_done(struct rp_task *m)
{
        free(m->workflow_payload);
        json_decref(m->context);
        json_decref(m->secrets);
        json_decref(m->needs);
        json_decref(m->vars);
        memset(m, 0, sizeof(*m));
}

void rp_task_free(struct rp_task *t)
{
        if (!t)
                return;
        rp_task_done(t);
        free(t);
}

static int get_task_ptr(const json_t *j, const char *camel, struct rp_task **ret,
                        char *err, size_t errlen)
{
        json_t *v = field(j, camel, NULL);
        struct rp_task *t;
        int r;

        if (!v)
                return 0;
        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        r = rp_task_from_json(v, t, err, errlen);
        if (r < 0) {
                free(t);
                return r;
        }
        *ret = t;
        return 0;
}

/* ---- Fetch responses ---------------------------------------------------------- */

DECODE_BEGIN(fetch_task_resp)
        json_t *a, *e;
        size_t i;
        TRY(get_task_ptr(j, "task", &ret->task, err, errlen));
        TRY(get_i64(j, "tasksVersion", "tasks_version", &ret->tasks_version, err, errlen));
        a = field(j, "additionalTasks", "additional_tasks");
        if (a) {
                if (!json_is_array(a)) {
                        seterr(err, errlen, "field \"%s\": expected an array", "additionalTasks");
                        r = -EINVAL;
                        goto fail;
                }
                if (json_array_size(a)) {
                        ret->additional_tasks = calloc(json_array_size(a), sizeof(struct rp_task));
                        if (!ret->additional_tasks) {
                                r = -ENOMEM;
                                goto fail;
                        }
                }
                json_array_foreach(a, i, e) {
                        TRY(rp_task_from_json(e, &ret->additional_tasks[i], err, errlen));
                        ret->n_additional_tasks++;
                }
        }
DECODE_END(fetch_task_resp)
ENCODE_BEGIN(fetch_task_resp)
        if (m->task)
                PUT(set_new(o, "task", rp_task_to_json(m->task)));
        PUT(put_i64(o, "tasksVersion", m->tasks_version));
        if (m->n_additional_tasks) {
                json_t *a = json_array();
                PUT(set_new(o, "additionalTasks", a));
                for (size_t i = 0; i < m->n_additional_tasks; i++) {
                        json_t *t = rp_task_to_json(&m->additional_tasks[i]);
                        if (!t || json_array_append_new(a, t) < 0)
                                goto fail;
                }
        }
ENCODE_END
void rp_fetch_task_resp_done(struct rp_fetch_task_resp *m)
{
        rp_task_free(m->task);
        for (size_t i = 0; i < m->n_additional_tasks; i++)
                rp_task_done(&m->additional_tasks[i]);
        free(m->additional_tasks);
        memset(m, 0, sizeof(*m));
}

DECODE_BEGIN(fetch_single_task_resp)
        TRY(get_task_ptr(j, "task", &ret->task, err, errlen));
        TRY(get_i64(j, "tasksVersion", "tasks_version", &ret->tasks_version, err, errlen));
DECODE_END(fetch_single_task_resp)
ENCODE_BEGIN(fetch_single_task_resp)
        if (m->task)
                PUT(set_new(o, "task", rp_task_to_json(m->task)));
        PUT(put_i64(o, "tasksVersion", m->tasks_version));
ENCODE_END
void rp_fetch_single_task_resp_done(struct rp_fetch_single_task_resp *m)
{
        rp_task_free(m->task);
        memset(m, 0, sizeof(*m));
}

/* ---- TaskState ------------------------------------------------------------- */

static int step_from_json(const json_t *j, struct rp_step_state *s, char *err, size_t errlen)
{
        int r, res = 0;

        if (!check_object(j, err, errlen))
                return -EINVAL;
        if ((r = get_i64(j, "id", NULL, &s->id, err, errlen)) < 0 ||
            (r = get_enum(j, "result", NULL, result_names, NELEM(result_names), &res, err, errlen)) < 0 ||
            (r = get_ts(j, "startedAt", "started_at", &s->started_at, err, errlen)) < 0 ||
            (r = get_ts(j, "stoppedAt", "stopped_at", &s->stopped_at, err, errlen)) < 0 ||
            (r = get_i64(j, "logIndex", "log_index", &s->log_index, err, errlen)) < 0 ||
            (r = get_i64(j, "logLength", "log_length", &s->log_length, err, errlen)) < 0)
                return r;
        s->result = (enum rp_result)res;
        return 0;
}

static json_t *step_to_json(const struct rp_step_state *m)
{
        json_t *o = json_object();

        if (!o)
                return NULL;
        PUT(put_i64(o, "id", m->id));
        if (m->result)
                PUT(set_new(o, "result", json_string(rp_result_name(m->result))));
        PUT(put_ts(o, "startedAt", m->started_at));
        PUT(put_ts(o, "stoppedAt", m->stopped_at));
        PUT(put_i64(o, "logIndex", m->log_index));
        PUT(put_i64(o, "logLength", m->log_length));
        return o;
fail:
        json_decref(o);
        return NULL;
}

DECODE_BEGIN(task_state)
        int res = 0;
        json_t *a, *e;
        size_t i;
        TRY(get_i64(j, "id", NULL, &ret->id, err, errlen));
        TRY(get_enum(j, "result", NULL, result_names, NELEM(result_names), &res, err, errlen));
        ret->result = (enum rp_result)res;
        TRY(get_ts(j, "startedAt", "started_at", &ret->started_at, err, errlen));
        TRY(get_ts(j, "stoppedAt", "stopped_at", &ret->stopped_at, err, errlen));
        a = field(j, "steps", NULL);
        if (a) {
                if (!json_is_array(a)) {
                        seterr(err, errlen, "field \"%s\": expected an array", "steps");
                        r = -EINVAL;
                        goto fail;
                }
                if (json_array_size(a)) {
                        ret->steps = calloc(json_array_size(a), sizeof(*ret->steps));
                        if (!ret->steps) {
                                r = -ENOMEM;
                                goto fail;
                        }
                }
                json_array_foreach(a, i, e) {
                        TRY(step_from_json(e, &ret->steps[i], err, errlen));
                        ret->n_steps++;
                }
        }
DECODE_END(task_state)
ENCODE_BEGIN(task_state)
        PUT(put_i64(o, "id", m->id));
        if (m->result)
                PUT(set_new(o, "result", json_string(rp_result_name(m->result))));
        PUT(put_ts(o, "startedAt", m->started_at));
        PUT(put_ts(o, "stoppedAt", m->stopped_at));
        if (m->n_steps) {
                json_t *a = json_array();
                PUT(set_new(o, "steps", a));
                for (size_t i = 0; i < m->n_steps; i++) {
                        json_t *s = step_to_json(&m->steps[i]);
                        if (!s || json_array_append_new(a, s) < 0)
                                goto fail;
                }
        }
ENCODE_END
void rp_task_state_done(struct rp_task_state *m)
{
        free(m->steps);
        memset(m, 0, sizeof(*m));
}

static int get_state(const json_t *j, struct rp_task_state *ret, char *err, size_t errlen)
{
        json_t *v = field(j, "state", NULL);

        if (!v)
                return 0;
        return rp_task_state_from_json(v, ret, err, errlen);
}

/* ---- UpdateTask ------------------------------------------------------------ */

DECODE_BEGIN(update_task_req)
        TRY(get_state(j, &ret->state, err, errlen));
        TRY(get_str_map(j, "outputs", NULL, &ret->outputs, err, errlen));
DECODE_END(update_task_req)
ENCODE_BEGIN(update_task_req)
        PUT(set_new(o, "state", rp_task_state_to_json(&m->state)));
        if (m->outputs && json_object_size(m->outputs))
                PUT(put_json(o, "outputs", m->outputs));
ENCODE_END
void rp_update_task_req_done(struct rp_update_task_req *m)
{
        rp_task_state_done(&m->state);
        json_decref(m->outputs);
        m->outputs = NULL;
}

DECODE_BEGIN(update_task_resp)
        TRY(get_state(j, &ret->state, err, errlen));
        TRY(get_strlist(j, "sentOutputs", "sent_outputs", &ret->sent_outputs, err, errlen));
DECODE_END(update_task_resp)
ENCODE_BEGIN(update_task_resp)
        PUT(set_new(o, "state", rp_task_state_to_json(&m->state)));
        PUT(put_strlist(o, "sentOutputs", &m->sent_outputs));
ENCODE_END
void rp_update_task_resp_done(struct rp_update_task_resp *m)
{
        rp_task_state_done(&m->state);
        rp_strlist_done(&m->sent_outputs);
}

/* ---- UpdateLog ------------------------------------------------------------- */

DECODE_BEGIN(log_row)
        TRY(get_ts(j, "time", NULL, &ret->time, err, errlen));
        TRY(get_str(j, "content", NULL, &ret->content, err, errlen));
DECODE_END(log_row)
ENCODE_BEGIN(log_row)
        PUT(put_ts(o, "time", m->time));
        PUT(put_str(o, "content", m->content));
ENCODE_END
void rp_log_row_done(struct rp_log_row *m)
{
        free(m->content);
        memset(m, 0, sizeof(*m));
}

DECODE_BEGIN(update_log_req)
        json_t *a, *e;
        size_t i;
        TRY(get_i64(j, "taskId", "task_id", &ret->task_id, err, errlen));
        TRY(get_i64(j, "index", NULL, &ret->index, err, errlen));
        TRY(get_bool(j, "noMore", "no_more", &ret->no_more, err, errlen));
        a = field(j, "rows", NULL);
        if (a) {
                if (!json_is_array(a)) {
                        seterr(err, errlen, "field \"%s\": expected an array", "rows");
                        r = -EINVAL;
                        goto fail;
                }
                if (json_array_size(a)) {
                        ret->rows = calloc(json_array_size(a), sizeof(*ret->rows));
                        if (!ret->rows) {
                                r = -ENOMEM;
                                goto fail;
                        }
                }
                json_array_foreach(a, i, e) {
                        TRY(rp_log_row_from_json(e, &ret->rows[i], err, errlen));
                        ret->n_rows++;
                }
        }
DECODE_END(update_log_req)
ENCODE_BEGIN(update_log_req)
        PUT(put_i64(o, "taskId", m->task_id));
        PUT(put_i64(o, "index", m->index));
        if (m->n_rows) {
                json_t *a = json_array();
                PUT(set_new(o, "rows", a));
                for (size_t i = 0; i < m->n_rows; i++) {
                        json_t *row = rp_log_row_to_json(&m->rows[i]);
                        if (!row || json_array_append_new(a, row) < 0)
                                goto fail;
                }
        }
        PUT(put_bool(o, "noMore", m->no_more));
ENCODE_END
void rp_update_log_req_done(struct rp_update_log_req *m)
{
        for (size_t i = 0; i < m->n_rows; i++)
                rp_log_row_done(&m->rows[i]);
        free(m->rows);
        memset(m, 0, sizeof(*m));
}

DECODE_BEGIN(update_log_resp)
        TRY(get_i64(j, "ackIndex", "ack_index", &ret->ack_index, err, errlen));
DECODE_END(update_log_resp)
ENCODE_BEGIN(update_log_resp)
        PUT(put_i64(o, "ackIndex", m->ack_index));
ENCODE_END
void rp_update_log_resp_done(struct rp_update_log_resp *m) { (void)m; }

/* ---- Connect errors ---------------------------------------------------------- */

static const struct {
        const char *name;
        int http;
} codes[] = {
        [RP_CODE_OK]                  = { "ok", 200 },
        [RP_CODE_CANCELED]            = { "canceled", 499 },
        [RP_CODE_UNKNOWN]             = { "unknown", 500 },
        [RP_CODE_INVALID_ARGUMENT]    = { "invalid_argument", 400 },
        [RP_CODE_DEADLINE_EXCEEDED]   = { "deadline_exceeded", 504 },
        [RP_CODE_NOT_FOUND]           = { "not_found", 404 },
        [RP_CODE_ALREADY_EXISTS]      = { "already_exists", 409 },
        [RP_CODE_PERMISSION_DENIED]   = { "permission_denied", 403 },
        [RP_CODE_RESOURCE_EXHAUSTED]  = { "resource_exhausted", 429 },
        [RP_CODE_FAILED_PRECONDITION] = { "failed_precondition", 400 },
        [RP_CODE_ABORTED]             = { "aborted", 409 },
        [RP_CODE_OUT_OF_RANGE]        = { "out_of_range", 400 },
        [RP_CODE_UNIMPLEMENTED]       = { "unimplemented", 501 },
        [RP_CODE_INTERNAL]            = { "internal", 500 },
        [RP_CODE_UNAVAILABLE]         = { "unavailable", 503 },
        [RP_CODE_DATA_LOSS]           = { "data_loss", 500 },
        [RP_CODE_UNAUTHENTICATED]     = { "unauthenticated", 401 },
};

const char *rp_code_name(enum rp_code c)
{
        if ((unsigned)c < NELEM(codes))
                return codes[c].name;
        return "unknown";
}

int rp_code_parse(const char *name, enum rp_code *ret)
{
        for (size_t i = 0; i < NELEM(codes); i++)
                if (strcmp(name, codes[i].name) == 0) {
                        *ret = (enum rp_code)i;
                        return 0;
                }
        return -EINVAL;
}

int rp_code_http_status(enum rp_code c)
{
        if ((unsigned)c < NELEM(codes))
                return codes[c].http;
        return 500;
}

/* The Connect protocol's mapping for responses that carry no Connect error
 * body (a proxy's 502, say). */
enum rp_code rp_code_from_http_status(int status)
{
        switch (status) {
        case 400: return RP_CODE_INTERNAL;
        case 401: return RP_CODE_UNAUTHENTICATED;
        case 403: return RP_CODE_PERMISSION_DENIED;
        case 404: return RP_CODE_UNIMPLEMENTED;
        case 429: return RP_CODE_UNAVAILABLE;
        case 502: return RP_CODE_UNAVAILABLE;
        case 503: return RP_CODE_UNAVAILABLE;
        case 504: return RP_CODE_UNAVAILABLE;
        default:  return RP_CODE_UNKNOWN;
        }
}

json_t *rp_error_to_json(const struct rp_error *e)
{
        json_t *o = json_object();

        if (!o)
                return NULL;
        PUT(set_new(o, "code", json_string(rp_code_name(e->code))));
        if (e->message[0])
                PUT(set_new(o, "message", json_string(e->message)));
        return o;
fail:
        json_decref(o);
        return NULL;
}

int rp_error_from_json(const json_t *j, struct rp_error *ret)
{
        json_t *c, *m;
        enum rp_code code;

        memset(ret, 0, sizeof(*ret));
        if (!json_is_object(j))
                return -EINVAL;
        c = json_object_get(j, "code");
        if (!json_is_string(c) || rp_code_parse(json_string_value(c), &code) < 0)
                return -EINVAL;
        ret->code = code;
        m = json_object_get(j, "message");
        if (json_is_string(m)) {
                size_t n = json_string_length(m);
                if (n < sizeof(ret->message)) {
                        memcpy(ret->message, json_string_value(m), n + 1);
                } else {
                        /* A diagnostic for a log line: kept bounded, and
                         * visibly cut rather than silently. */
                        static const char more[] = " [cut]";
                        const char *s = json_string_value(m);
                        size_t keep = sizeof(ret->message) - sizeof(more);
                        /* Cut between characters, never inside one: the
                         * message must stay UTF-8 to be encoded again. */
                        while (keep > 0 && ((unsigned char)s[keep] & 0xc0) == 0x80)
                                keep--;
                        memcpy(ret->message, s, keep);
                        memcpy(ret->message + keep, more, sizeof(more));
                }
        }
        return 0;
}
