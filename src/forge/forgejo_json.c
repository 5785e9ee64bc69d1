/* forgejo_json.c: see forgejo_json.h. Strict parsing of Forgejo REST
 * bodies with jansson, and the one request body the client sends. Owns the
 * rules for every field the forge sends (types, ranges, string bounds and
 * characters) and the storage of parse results (one arena each). Pure:
 * never does I/O, never logs, never quotes a value or a token in a reason,
 * and wipes a created runner's token from its parse tree. */
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

/* ---- reasons ------------------------------------------------------------ */

#define WHY_MAX 160

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

/* jansson's error text without the " near '...'" it may append: that
 * quotes up to 20 bytes of the body -- part of a created runner's token,
 * say, or raw control bytes -- and the reason gives the position anyway. */
static const char *json_why(const json_error_t *e, char *buf, size_t n)
{
        const char *near = strstr(e->text, " near '");
        size_t len = near ? (size_t)(near - e->text) : strlen(e->text);

        snprintf(buf, n, "%.*s", (int)(len < n ? len : n - 1), e->text);
        return buf;
}

static int load(const char *body, size_t len, json_t **ret, char *reason, size_t n)
{
        json_error_t e;
        char why[JSON_ERROR_TEXT_LENGTH];
        json_t *j;

        if (!body)
                return bad(reason, n, "empty body");
        j = json_loadb(body, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &e);
        if (!j)
                return bad(reason, n, "invalid JSON at line %d column %d: %.60s", e.line,
                           e.column, json_why(&e, why, sizeof(why)));
        *ret = j;
        return 0;
}

/* ---- storage: every string of a result lives in one arena --------------- */

struct chunk {
        struct chunk *next;
        size_t used, cap;
        max_align_t data[];
};

struct arena {
        struct chunk *head;
};

#define CHUNK_MIN (64u << 10)

/* Holds strings and arrays of string pointers only: pointer alignment is
 * enough, and wastes less than max_align_t on 100,000 small strings. */
#define ARENA_ALIGN _Alignof(const char *)

static void *arena_alloc(struct arena *a, size_t n)
{
        struct chunk *c = a->head;
        size_t need = (n + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;

        if (need < n)
                return NULL;
        if (!c || c->cap - c->used < need) {
                size_t cap = need > CHUNK_MIN ? need : CHUNK_MIN;
                if (cap > SIZE_MAX - sizeof(*c))
                        return NULL;
                c = malloc(sizeof(*c) + cap);
                if (!c)
                        return NULL;
                c->next = a->head;
                c->used = 0;
                c->cap = cap;
                a->head = c;
        }
        void *p = (char *)c->data + c->used;
        c->used += need;
        return p;
}

static const char *arena_strdup(struct arena *a, const char *s, size_t len)
{
        char *d = arena_alloc(a, len + 1);

        if (!d)
                return NULL;
        memcpy(d, s, len);
        d[len] = '\0';
        return d;
}

static void arena_done(struct arena *a)
{
        while (a->head) {
                struct chunk *c = a->head;
                a->head = c->next;
                free(c);
        }
}

/* Grows the array that vp points to (a T **, elements of size sz) to hold
 * at least need elements. The pointer is moved with memcpy, not through a
 * void ** cast, which would break strict aliasing. */
static int grow(void *vp, size_t *cap, size_t need, size_t sz)
{
        size_t ncap = *cap ? *cap : 16;
        void *v, *p;

        if (need <= *cap)
                return 0;
        while (ncap < need) {
                if (ncap > SIZE_MAX / 2 / sz)
                        return -ENOMEM;
                ncap *= 2;
        }
        memcpy(&v, vp, sizeof(v));
        p = realloc(v, ncap * sz);
        if (!p)
                return -ENOMEM;
        memcpy(vp, &p, sizeof(p));
        *cap = ncap;
        return 0;
}

/* ---- field rules -------------------------------------------------------- */

/* A field's name in a reason: "$.uuid" for a top-level object, "uuid"
 * inside a listing element (whose position the caller reports apart). */
struct where {
        bool top;
        char *why;                       /* WHY_MAX bytes */
};

#define FIELD(w) ((w)->top ? "$." : "")

static int missing(const struct where *w, const char *key)
{
        return bad(w->why, WHY_MAX, "%smissing \"%s\"", w->top ? "$: " : "", key);
}

static int get_int(const json_t *o, const char *key, bool required, int64_t min, int64_t *out,
                   const struct where *w)
{
        const json_t *v = json_object_get(o, key);

        if (!v) {
                if (required)
                        return missing(w, key);
                *out = 0;
                return 0;
        }
        if (!json_is_integer(v))
                return bad(w->why, WHY_MAX, "%s%s: expected integer, got %s", FIELD(w), key,
                           type_name(v));
        json_int_t x = json_integer_value(v);
        if (x < min)
                return bad(w->why, WHY_MAX, "%s%s: %lld is out of range (at least %lld)", FIELD(w),
                           key, (long long)x, (long long)min);
        *out = (int64_t)x;
        return 0;
}

static int get_bool(const json_t *o, const char *key, bool *out, const struct where *w)
{
        const json_t *v = json_object_get(o, key);

        *out = false;
        if (!v)
                return 0;
        if (!json_is_boolean(v))
                return bad(w->why, WHY_MAX, "%s%s: expected boolean, got %s", FIELD(w), key,
                           type_name(v));
        *out = json_is_true(v);
        return 0;
}

enum text {
        T_HANDLE,
        T_LABEL,
        T_NAME,
        T_DESCRIPTION,
        T_VERSION,
        T_STATUS,
};

static const struct {
        size_t max;
        const char *allowed;             /* for the reason */
} rules[] = {
        [T_HANDLE] = { FORGEJO_HANDLE_MAX, "letters, digits, '-', '_' and '.'" },
        [T_LABEL] = { FORGEJO_LABEL_MAX, "no control characters" },
        [T_NAME] = { FORGEJO_NAME_TEXT_MAX, "no control characters" },
        [T_DESCRIPTION] = { FORGEJO_DESCRIPTION_MAX, "" },
        [T_VERSION] = { FORGEJO_VERSION_MAX, "printable ASCII without spaces" },
        [T_STATUS] = { FORGEJO_STATUS_MAX, "lower-case letters and '_'" },
};

static bool alnum(unsigned char c)
{
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool char_ok(enum text t, unsigned char c)
{
        switch (t) {
        case T_HANDLE:
                return alnum(c) || c == '-' || c == '_' || c == '.';
        case T_LABEL:
        case T_NAME:
                return c >= 0x20 && c != 0x7f;
        case T_DESCRIPTION:
                return true;
        case T_VERSION:
                return c > 0x20 && c < 0x7f;
        case T_STATUS:
                return (c >= 'a' && c <= 'z') || c == '_';
        }
        return false;
}

/* Checks s[0..len) against rule t; label names the value in the reason
 * ("handle", "runs_on[2]"). Never quotes the value. */
static int check_text(enum text t, const char *s, size_t len, bool empty_ok, const char *prefix,
                      const char *label, char *why)
{
        if (len == 0 && !empty_ok)
                return bad(why, WHY_MAX, "%s%s: empty", prefix, label);
        if (len > rules[t].max)
                return bad(why, WHY_MAX, "%s%s: %zu bytes, more than the %zu allowed", prefix,
                           label, len, rules[t].max);
        if (t == T_HANDLE && !alnum((unsigned char)s[0]))
                return bad(why, WHY_MAX, "%s%s: must start with a letter or digit", prefix,
                           label);
        for (size_t i = 0; i < len; i++)
                if (!char_ok(t, (unsigned char)s[i]))
                        return bad(why, WHY_MAX, "%s%s: byte 0x%02x at offset %zu is not allowed (%s)",
                                   prefix, label, (unsigned char)s[i], i, rules[t].allowed);
        return 0;
}

/* A string field checked against rule t and copied into the arena;
 * absent and optional gives "". */
static int get_text(struct arena *a, const json_t *o, const char *key, bool required,
                    enum text t, bool empty_ok, const char **out, const struct where *w)
{
        const json_t *v = json_object_get(o, key);
        int r;

        if (!v) {
                if (required)
                        return missing(w, key);
                *out = "";
                return 0;
        }
        if (!json_is_string(v))
                return bad(w->why, WHY_MAX, "%s%s: expected string, got %s", FIELD(w), key,
                           type_name(v));
        r = check_text(t, json_string_value(v), json_string_length(v), empty_ok, FIELD(w), key,
                       w->why);
        if (r < 0)
                return r;
        *out = arena_strdup(a, json_string_value(v), json_string_length(v));
        return *out ? 0 : -ENOMEM;
}

/* An array of labels; JSON null (a Go nil slice) is empty. With a NULL
 * arena the values are only checked (needs). */
static int get_labels(struct arena *a, const json_t *o, const char *key, bool required,
                      const char *const **out, size_t *out_n, const struct where *w)
{
        const json_t *v = json_object_get(o, key), *e;
        const char **list = NULL;
        size_t i, n;
        int r;

        if (out) {
                *out = NULL;
                *out_n = 0;
        }
        if (!v) {
                if (required)
                        return missing(w, key);
                return 0;
        }
        if (json_is_null(v))
                return 0;
        if (!json_is_array(v))
                return bad(w->why, WHY_MAX, "%s%s: expected array, got %s", FIELD(w), key,
                           type_name(v));
        n = json_array_size(v);
        if (a && n) {
                list = arena_alloc(a, n * sizeof(*list));
                if (!list)
                        return -ENOMEM;
        }
        json_array_foreach(v, i, e) {
                char label[48];
                if (!json_is_string(e))
                        return bad(w->why, WHY_MAX, "%s%s[%zu]: expected string, got %s",
                                   FIELD(w), key, i, type_name(e));
                r = check_text(T_LABEL, json_string_value(e), json_string_length(e), false,
                               "", "", w->why);
                if (r < 0) {
                        /* Named only on failure: formatting costs more than
                         * the check. */
                        snprintf(label, sizeof(label), "%s[%zu]", key, i);
                        return check_text(T_LABEL, json_string_value(e),
                                          json_string_length(e), false, FIELD(w), label, w->why);
                }
                if (list) {
                        list[i] = arena_strdup(a, json_string_value(e), json_string_length(e));
                        if (!list[i])
                                return -ENOMEM;
                }
        }
        if (out && list) {
                *out = list;
                *out_n = n;
        }
        return 0;
}

/* What an empty label array points to: never NULL, so callers may index
 * below n without a check. */
static const char *const no_labels[1] = { NULL };

/* A string field as it is (for values checked by shape, not copied). */
static int get_string(const json_t *o, const char *key, const json_t **out, const struct where *w)
{
        const json_t *v = json_object_get(o, key);

        if (!v)
                return missing(w, key);
        if (!json_is_string(v))
                return bad(w->why, WHY_MAX, "%s%s: expected string, got %s", FIELD(w), key,
                           type_name(v));
        *out = v;
        return 0;
}

/* The element's id when it is a valid one, for rejected[]. */
static int64_t peek_id(const json_t *o)
{
        const json_t *v = json_object_get(o, "id");

        if (json_is_integer(v) && json_integer_value(v) > 0)
                return (int64_t)json_integer_value(v);
        return 0;
}

/* ---- listings: what both kinds share ------------------------------------ */

struct rejects {
        struct forgejo_rejected *v;
        size_t n, cap;
};

static int reject(struct arena *a, struct rejects *rj, size_t index, int64_t id, const char *why)
{
        const char *reason;

        if (grow(&rj->v, &rj->cap, rj->n + 1, sizeof(*rj->v)) < 0)
                return -ENOMEM;
        reason = arena_strdup(a, why, strlen(why));
        if (!reason)
                return -ENOMEM;
        rj->v[rj->n++] = (struct forgejo_rejected){ .index = index, .id = id, .reason = reason };
        return 0;
}

/* ---- job listing ------------------------------------------------------- */

/* Open addressing over the accepted jobs, to find a second job with the
 * same id or the same handle. Slots keep the hash, so a probe touches a
 * job only when the hashes match. */
struct slot {
        uint64_t hash;
        size_t job;                      /* index + 1; 0 = empty */
};

struct seen {
        struct slot *slot;
        size_t cap;                      /* power of two */
        size_t n;
};

static uint64_t mix64(uint64_t x)
{
        x ^= x >> 30;
        x *= UINT64_C(0xbf58476d1ce4e5b9);
        x ^= x >> 27;
        x *= UINT64_C(0x94d049bb133111eb);
        return x ^ (x >> 31);
}

static uint64_t hash_str(const char *s)
{
        uint64_t h = UINT64_C(0xcbf29ce484222325);

        for (; *s; s++)
                h = (h ^ (unsigned char)*s) * UINT64_C(0x100000001b3);
        return h;
}

struct jobs_cx {
        struct arena arena;
        struct forgejo_job *jobs;
        size_t n, cap;
        struct rejects rj;
        struct seen by_id, by_handle;
};

/* Index of the accepted job equal to j by id (or by handle), or SIZE_MAX. */
static size_t seen_find(const struct jobs_cx *cx, const struct seen *s, uint64_t h,
                        bool handle, const struct forgejo_job *j)
{
        if (!s->cap)
                return SIZE_MAX;
        for (size_t i = h & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
                const struct slot *sl = &s->slot[i];
                if (!sl->job)
                        return SIZE_MAX;
                if (sl->hash != h)
                        continue;
                const struct forgejo_job *o = &cx->jobs[sl->job - 1];
                if (handle ? strcmp(o->handle, j->handle) == 0 : o->id == j->id)
                        return sl->job - 1;
        }
}

static void seen_put(struct seen *s, uint64_t h, size_t job)
{
        size_t i = h & (s->cap - 1);

        while (s->slot[i].job)
                i = (i + 1) & (s->cap - 1);
        s->slot[i] = (struct slot){ .hash = h, .job = job };
        s->n++;
}

/* Adds job index idx with hash h; keeps the load under 1/2. */
static int seen_add(struct seen *s, uint64_t h, size_t idx)
{
        if (2 * (s->n + 1) > s->cap) {
                struct seen ns = { .cap = s->cap ? 2 * s->cap : 64 };
                if (ns.cap > SIZE_MAX / sizeof(*ns.slot))
                        return -ENOMEM;
                ns.slot = calloc(ns.cap, sizeof(*ns.slot));
                if (!ns.slot)
                        return -ENOMEM;
                for (size_t i = 0; i < s->cap; i++)
                        if (s->slot[i].job)
                                seen_put(&ns, s->slot[i].hash, s->slot[i].job);
                free(s->slot);
                *s = ns;
        }
        seen_put(s, h, idx + 1);
        return 0;
}

static enum forgejo_job_state job_state(const char *s)
{
        if (strcmp(s, "waiting") == 0)
                return FORGEJO_JOB_WAITING;
        if (strcmp(s, "running") == 0)
                return FORGEJO_JOB_RUNNING;
        return FORGEJO_JOB_OTHER;
}

/* One element of a job listing: appended to jobs or to rejected. Returns 0
 * or -ENOMEM. */
static int job_elem(void *ud, const json_t *o, size_t idx)
{
        struct jobs_cx *cx = ud;
        struct forgejo_job j = { 0 };
        char why[WHY_MAX];
        struct where w = { .top = false, .why = why };
        struct arena *a = &cx->arena;
        uint64_t h_id, h_handle;
        size_t other;
        int r;

        if (!json_is_object(o)) {
                r = bad(why, sizeof(why), "expected object, got %s", type_name(o));
                goto rejected;
        }
        if ((r = get_int(o, "id", true, 1, &j.id, &w)) < 0 ||
            (r = get_int(o, "attempt", false, 0, &j.attempt, &w)) < 0 ||
            (r = get_text(a, o, "handle", true, T_HANDLE, false, &j.handle, &w)) < 0 ||
            (r = get_int(o, "repo_id", true, 1, &j.repo_id, &w)) < 0 ||
            (r = get_int(o, "owner_id", true, 1, &j.owner_id, &w)) < 0 ||
            (r = get_text(a, o, "name", true, T_NAME, true, &j.name, &w)) < 0 ||
            (r = get_labels(NULL, o, "needs", false, NULL, NULL, &w)) < 0 ||
            (r = get_labels(a, o, "runs_on", true, &j.runs_on, &j.n_runs_on, &w)) < 0 ||
            (r = get_int(o, "task_id", true, 0, &j.task_id, &w)) < 0 ||
            (r = get_text(a, o, "status", true, T_STATUS, false, &j.status, &w)) < 0)
                goto rejected;
        if (!j.runs_on)
                j.runs_on = no_labels;
        j.state = job_state(j.status);
        h_id = mix64((uint64_t)j.id);
        h_handle = hash_str(j.handle);
        other = seen_find(cx, &cx->by_id, h_id, false, &j);
        if (other != SIZE_MAX) {
                r = bad(why, sizeof(why), "id: the listing has it twice");
                goto rejected;
        }
        other = seen_find(cx, &cx->by_handle, h_handle, true, &j);
        if (other != SIZE_MAX) {
                r = bad(why, sizeof(why), "handle: also the handle of job %lld",
                        (long long)cx->jobs[other].id);
                goto rejected;
        }
        if (grow(&cx->jobs, &cx->cap, cx->n + 1, sizeof(*cx->jobs)) < 0)
                return -ENOMEM;
        cx->jobs[cx->n] = j;
        if (seen_add(&cx->by_id, h_id, cx->n) < 0 ||
            seen_add(&cx->by_handle, h_handle, cx->n) < 0)
                return -ENOMEM;
        cx->n++;
        return 0;
rejected:
        if (r == -ENOMEM)
                return r;
        return reject(a, &cx->rj, idx, json_is_object(o) ? peek_id(o) : 0, why);
}

static void jobs_cx_done(struct jobs_cx *cx)
{
        free(cx->jobs);
        free(cx->rj.v);
        free(cx->by_id.slot);
        free(cx->by_handle.slot);
        arena_done(&cx->arena);
}

struct list_priv {
        struct arena arena;
};

/* Hands the arena over to the result. */
static int take_arena(struct arena *a, void **ret)
{
        struct list_priv *p = calloc(1, sizeof(*p));

        if (!p)
                return -ENOMEM;
        p->arena = *a;
        a->head = NULL;
        *ret = p;
        return 0;
}

static void priv_free(void *priv)
{
        struct list_priv *p = priv;

        if (!p)
                return;
        arena_done(&p->arena);
        free(p);
}

/* ---- listings: one element at a time ------------------------------------ */

/* A listing's body is walked without building its tree: the top level is
 * checked here byte by byte, and each element's bytes go to jansson alone,
 * whose tree is freed before the next one. Memory is the body plus the
 * result (about 100 bytes and the strings per job) instead of jansson's
 * tree of every job, which measured about 2 KB per job (200 MB for
 * 100,000). Element boundaries only need to be right for valid JSON: a
 * span that is not one JSON value fails jansson, so every byte of the body
 * is still validated. */

typedef int (*elem_cb)(void *cx, const json_t *elem, size_t index);

static bool ws(char c)
{
        return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static const char *skip_ws(const char *p, const char *end)
{
        while (p < end && ws(*p))
                p++;
        return p;
}

/* "invalid JSON at line L column C: what", with L and C (1-based, bytes)
 * of offset off in body. */
static int invalid_at(const char *body, size_t off, const char *what, char *reason, size_t n)
{
        int line = 1, col = 1;

        for (size_t i = 0; i < off; i++) {
                if (body[i] == '\n') {
                        line++;
                        col = 1;
                } else {
                        col++;
                }
        }
        return bad(reason, n, "invalid JSON at line %d column %d: %.60s", line, col, what);
}

/* The end of the JSON value starting at p, or NULL when it cannot be one.
 * Objects and arrays end at their matching bracket (strings skipped), so
 * nesting costs a counter, not recursion; scalars end before whitespace,
 * ',' or ']'. */
static const char *value_end(const char *p, const char *end)
{
        size_t depth = 0;

        if (p >= end)
                return NULL;
        if (*p != '{' && *p != '[' && *p != '"') {
                const char *q = p;
                while (q < end && !ws(*q) && *q != ',' && *q != ']' && *q != '}')
                        q++;
                return q > p ? q : NULL;
        }
        do {
                char c = *p++;
                if (c == '"') {
                        while (p < end && *p != '"')
                                p += *p == '\\' ? 2 : 1;
                        if (p >= end)
                                return NULL;
                        p++;
                } else if (c == '{' || c == '[') {
                        depth++;
                } else if (c == '}' || c == ']') {
                        if (depth == 0)
                                return NULL;
                        depth--;
                }
        } while (depth > 0 && p < end);
        return depth == 0 ? p : NULL;
}

/* What a top-level value that is not an array is, from its first byte. */
static const char *scalar_kind(const char *p, const char *end)
{
        switch (*p) {
        case '{': return "object";
        case '"': return "string";
        case 't':
        case 'f': return "boolean";
        }
        if (*p == '-' || (*p >= '0' && *p <= '9')) {
                for (const char *q = p; q < end && !ws(*q); q++)
                        if (*q == '.' || *q == 'e' || *q == 'E')
                                return "number";
                return "integer";
        }
        return NULL;
}

/* Calls cb for each element of the top-level array of body; null is an
 * empty listing. Returns 0, -EBADMSG with a reason, or what cb returned. */
static int each_element(const char *body, size_t len, elem_cb cb, void *cx, char *reason,
                        size_t n)
{
        const char *end = body + len, *p;
        size_t index = 0;

        if (!body)
                return bad(reason, n, "empty body");
        p = skip_ws(body, end);
        if (p == end)
                return invalid_at(body, (size_t)(p - body), "empty body", reason, n);
        if (*p == 'n') {
                if (end - p < 4 || memcmp(p, "null", 4) != 0 || skip_ws(p + 4, end) != end)
                        return invalid_at(body, (size_t)(p - body), "expected null", reason, n);
                return 0;
        }
        if (*p != '[') {
                const char *kind = scalar_kind(p, end);
                if (!kind)
                        return invalid_at(body, (size_t)(p - body), "not a JSON value", reason,
                                          n);
                return bad(reason, n, "expected a JSON array or null, got %s", kind);
        }
        p = skip_ws(p + 1, end);
        if (p < end && *p == ']') {
                p++;
        } else {
                for (;;) {
                        const char *e = value_end(p, end);
                        json_error_t err;
                        json_t *elem;
                        int r;

                        if (!e)
                                return invalid_at(body, (size_t)(p - body), "expected a value",
                                                  reason, n);
                        elem = json_loadb(p, (size_t)(e - p),
                                          JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &err);
                        if (!elem) {
                                char why[JSON_ERROR_TEXT_LENGTH];
                                size_t at = (size_t)(p - body) + (size_t)(err.position > 0 ? err.position : 0);
                                return invalid_at(body, at < len ? at : len,
                                                  json_why(&err, why, sizeof(why)), reason, n);
                        }
                        r = cb(cx, elem, index++);
                        json_decref(elem);
                        if (r < 0)
                                return r;
                        p = skip_ws(e, end);
                        if (p < end && *p == ',') {
                                p = skip_ws(p + 1, end);
                                continue;
                        }
                        if (p < end && *p == ']') {
                                p++;
                                break;
                        }
                        return invalid_at(body, (size_t)(p - body), "expected ',' or ']'", reason,
                                          n);
                }
        }
        if (skip_ws(p, end) != end)
                return invalid_at(body, (size_t)(skip_ws(p, end) - body), "data after the array",
                                  reason, n);
        return 0;
}

int forgejo_parse_jobs(const char *body, size_t len, struct forgejo_job_list *ret,
                       char *reason, size_t reason_n)
{
        struct jobs_cx cx = { 0 };
        struct forgejo_job_list l = { 0 };
        int r;

        r = each_element(body, len, job_elem, &cx, reason, reason_n);
        if (r < 0)
                goto err;
        /* Never NULL, so callers may index without a check. */
        if (grow(&cx.jobs, &cx.cap, 1, sizeof(*cx.jobs)) < 0 ||
            grow(&cx.rj.v, &cx.rj.cap, 1, sizeof(*cx.rj.v)) < 0 ||
            take_arena(&cx.arena, &l.priv) < 0) {
                r = -ENOMEM;
                goto err;
        }
        l.jobs = cx.jobs;
        l.n = cx.n;
        l.rejected = cx.rj.v;
        l.n_rejected = cx.rj.n;
        cx.jobs = NULL;
        cx.rj.v = NULL;
        jobs_cx_done(&cx);
        *ret = l;
        return 0;
err:
        if (r == -ENOMEM)
                bad(reason, reason_n, "out of memory");
        jobs_cx_done(&cx);
        return r;
}

void forgejo_job_list_done(struct forgejo_job_list *l)
{
        if (!l)
                return;
        free(l->jobs);
        free(l->rejected);
        priv_free(l->priv);
        memset(l, 0, sizeof(*l));
}

/* ---- runners ------------------------------------------------------------ */

static bool is_hex(char c)
{
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool uuid_shape_ok(const char *s, size_t len)
{
        if (len != FORGEJO_UUID_LEN)
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

static int get_uuid(struct arena *a, const json_t *o, const char **out, const struct where *w)
{
        const json_t *v;
        int r = get_string(o, "uuid", &v, w);

        if (r < 0)
                return r;
        if (!uuid_shape_ok(json_string_value(v), json_string_length(v)))
                return bad(w->why, WHY_MAX, "%suuid: not a canonical UUID", FIELD(w));
        *out = arena_strdup(a, json_string_value(v), FORGEJO_UUID_LEN);
        return *out ? 0 : -ENOMEM;
}

/* Zeroes a string inside a parse tree before the tree is freed. */
static void wipe_json_string(json_t *v)
{
        if (json_is_string(v))
                explicit_bzero((char *)json_string_value(v), json_string_length(v));
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

static int runner_obj(struct arena *a, const json_t *o, struct forgejo_runner *rn,
                      const struct where *w)
{
        struct forgejo_runner x = { 0 };
        int r;

        if (!json_is_object(o))
                return bad(w->why, WHY_MAX, "%sexpected object, got %s", w->top ? "$: " : "",
                           type_name(o));
        if ((r = get_int(o, "id", true, 1, &x.id, w)) < 0 ||
            (r = get_uuid(a, o, &x.uuid, w)) < 0 ||
            (r = get_text(a, o, "name", true, T_NAME, false, &x.name, w)) < 0 ||
            (r = get_text(a, o, "status", true, T_STATUS, false, &x.status, w)) < 0 ||
            (r = get_labels(a, o, "labels", false, &x.labels, &x.n_labels, w)) < 0 ||
            (r = get_bool(o, "ephemeral", &x.ephemeral, w)) < 0 ||
            (r = get_int(o, "owner_id", false, 0, &x.owner_id, w)) < 0 ||
            (r = get_int(o, "repo_id", false, 0, &x.repo_id, w)) < 0 ||
            (r = get_text(a, o, "version", false, T_VERSION, true, &x.version, w)) < 0 ||
            (r = get_text(a, o, "description", false, T_DESCRIPTION, true, &x.description,
                          w)) < 0)
                return r;
        if (!x.labels)
                x.labels = no_labels;
        x.state = runner_state(x.status);
        *rn = x;
        return 0;
}

struct runners_cx {
        struct arena arena;
        struct forgejo_runner *runners;
        size_t n, cap;
        struct rejects rj;
};

static int runner_elem(void *ud, const json_t *o, size_t idx)
{
        struct runners_cx *cx = ud;
        struct forgejo_runner rn;
        char why[WHY_MAX];
        struct where w = { .top = false, .why = why };
        int r = runner_obj(&cx->arena, o, &rn, &w);

        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return reject(&cx->arena, &cx->rj, idx, json_is_object(o) ? peek_id(o) : 0, why);
        if (grow(&cx->runners, &cx->cap, cx->n + 1, sizeof(*cx->runners)) < 0)
                return -ENOMEM;
        cx->runners[cx->n++] = rn;
        return 0;
}

static int runners_finish(struct runners_cx *cx, struct forgejo_runner_list *ret)
{
        struct forgejo_runner_list l = { .total_count = -1 };

        if (grow(&cx->runners, &cx->cap, 1, sizeof(*cx->runners)) < 0 ||
            grow(&cx->rj.v, &cx->rj.cap, 1, sizeof(*cx->rj.v)) < 0 ||
            take_arena(&cx->arena, &l.priv) < 0)
                return -ENOMEM;
        l.runners = cx->runners;
        l.n = cx->n;
        l.rejected = cx->rj.v;
        l.n_rejected = cx->rj.n;
        l.page_count = cx->n + cx->rj.n;
        cx->runners = NULL;
        cx->rj.v = NULL;
        *ret = l;
        return 0;
}

static void runners_cx_done(struct runners_cx *cx)
{
        free(cx->runners);
        free(cx->rj.v);
        arena_done(&cx->arena);
}

int forgejo_parse_runner(const char *body, size_t len, struct forgejo_runner_list *ret,
                         char *reason, size_t reason_n)
{
        struct runners_cx cx = { 0 };
        struct forgejo_runner rn;
        char why[WHY_MAX];
        struct where w = { .top = true, .why = why };
        json_t *root = NULL;
        int r;

        r = load(body, len, &root, reason, reason_n);
        if (r < 0)
                return r;
        if (!json_is_object(root)) {
                r = bad(reason, reason_n, "expected a JSON object, got %s", type_name(root));
                goto out;
        }
        r = runner_obj(&cx.arena, root, &rn, &w);
        if (r == -EBADMSG) {
                bad(reason, reason_n, "%s", why);
                goto out;
        }
        if (r < 0 || grow(&cx.runners, &cx.cap, 1, sizeof(*cx.runners)) < 0) {
                r = -ENOMEM;
                goto out;
        }
        cx.runners[cx.n++] = rn;
        r = runners_finish(&cx, ret);
out:
        if (r == -ENOMEM)
                bad(reason, reason_n, "out of memory");
        runners_cx_done(&cx);
        json_decref(root);
        return r;
}

int forgejo_parse_runners(const char *body, size_t len, struct forgejo_runner_list *ret,
                          char *reason, size_t reason_n)
{
        struct runners_cx cx = { 0 };
        int r;

        r = each_element(body, len, runner_elem, &cx, reason, reason_n);
        if (r >= 0)
                r = runners_finish(&cx, ret);
        if (r == -ENOMEM)
                bad(reason, reason_n, "out of memory");
        runners_cx_done(&cx);
        return r;
}

void forgejo_runner_list_done(struct forgejo_runner_list *l)
{
        if (!l)
                return;
        free(l->runners);
        free(l->rejected);
        priv_free(l->priv);
        memset(l, 0, sizeof(*l));
        l->total_count = -1;
}

int forgejo_parse_created(const char *body, size_t len, struct forgejo_runner_created *ret,
                          char *reason, size_t reason_n)
{
        char why[WHY_MAX];
        struct where w = { .top = true, .why = why };
        json_t *root = NULL;
        const json_t *tok, *uuid;
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
        if ((r = get_int(root, "id", true, 1, &id, &w)) < 0 ||
            (r = get_string(root, "uuid", &uuid, &w)) < 0 ||
            (r = get_string(root, "token", &tok, &w)) < 0)
                goto out_why;
        if (!uuid_shape_ok(json_string_value(uuid), json_string_length(uuid))) {
                r = bad(why, sizeof(why), "$.uuid: not a canonical UUID");
                goto out_why;
        }
        if (!token_shape_ok(json_string_value(tok), json_string_length(tok))) {
                /* Never quote the value: it may be a real secret. */
                r = bad(why, sizeof(why), "$.token: expected %d hex characters",
                        FORGEJO_RUNNER_TOKEN_LEN);
                goto out_why;
        }
        ret->id = id;
        memcpy(ret->uuid, json_string_value(uuid), FORGEJO_UUID_LEN + 1);
        memcpy(ret->token, json_string_value(tok), FORGEJO_RUNNER_TOKEN_LEN + 1);
        r = 0;
        goto out;
out_why:
        bad(reason, reason_n, "%s", why);
out:
        wipe_json_string((json_t *)tok);
        json_decref(root);
        return r;
}

int forgejo_parse_reg_token(const char *body, size_t len, struct forgejo_reg_token *ret,
                            char *reason, size_t reason_n)
{
        char why[WHY_MAX];
        struct where w = { .top = true, .why = why };
        json_t *root = NULL;
        const json_t *tok = NULL;
        int r;

        r = load(body, len, &root, reason, reason_n);
        if (r < 0)
                return r;
        if (!json_is_object(root)) {
                r = bad(reason, reason_n, "expected a JSON object, got %s", type_name(root));
                goto out;
        }
        if ((r = get_string(root, "token", &tok, &w)) < 0)
                goto out_why;
        const char *t = json_string_value(tok);
        size_t n = json_string_length(tok);
        bool ok = n >= 1 && n <= FORGEJO_REG_TOKEN_MAX;
        for (size_t i = 0; ok && i < n; i++)
                ok = t[i] > 0x20 && t[i] < 0x7f;
        if (!ok) {
                /* Never quote the value: it is a secret. */
                r = bad(why, sizeof(why), "$.token: expected 1 to %d printable characters",
                        FORGEJO_REG_TOKEN_MAX);
                goto out_why;
        }
        memcpy(ret->token, t, n + 1);
        r = 0;
        goto out;
out_why:
        bad(reason, reason_n, "%s", why);
out:
        wipe_json_string((json_t *)tok);
        json_decref(root);
        return r;
}

int forgejo_parse_version(const char *body, size_t len, struct forgejo_version *ret,
                          char *reason, size_t reason_n)
{
        struct forgejo_version v = { 0 };
        char why[WHY_MAX];
        struct where w = { .top = true, .why = why };
        json_t *root = NULL;
        const json_t *s;
        int r = load(body, len, &root, reason, reason_n);

        if (r < 0)
                return r;
        if (!json_is_object(root)) {
                r = bad(reason, reason_n, "expected a JSON object, got %s", type_name(root));
                goto err;
        }
        if ((r = get_string(root, "version", &s, &w)) < 0 ||
            (r = check_text(T_VERSION, json_string_value(s), json_string_length(s), false, "$.",
                            "version", why)) < 0) {
                bad(reason, reason_n, "%s", why);
                goto err;
        }
        v.version = json_string_value(s);
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
