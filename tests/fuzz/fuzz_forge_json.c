/* fuzz_forge_json.c: libFuzzer target for every Forgejo REST body parser in
 * forgejo_json.h. Each input goes through all of them, since a body shaped
 * for one is hostile input for the others, so one corpus serves all. Checks
 * what forgejo_json.h promises of every result (bounds, character sets,
 * uniqueness, printable reasons that never quote a token). Never does I/O. */
#include "forge/forgejo_json.h"
#include "fuzz_check.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define REASON_N 160
/* The runner token fuzz_error_message() must never echo. */
#define SECRET "0123456789abcdef0123456789abcdef01234567"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool printable(const char *s)
{
        for (; *s; s++)
                if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
                        return false;
        return true;
}

static bool alnum(char c)
{
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool hex(char c)
{
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* The hex characters of the "token" value in the raw body (a created
 * runner's secret), up to 40, into tok; "" when there is none. */
static void token_in_body(const char *body, size_t len, char *tok, size_t n)
{
        static const char key[] = "\"token\"";
        const char *end = body + len, *p = body;
        size_t o = 0;

        tok[0] = '\0';
        for (; (size_t)(end - p) >= sizeof(key) - 1; p++)
                if (memcmp(p, key, sizeof(key) - 1) == 0)
                        break;
        if ((size_t)(end - p) < sizeof(key) - 1)
                return;
        p += sizeof(key) - 1;
        while (p < end && (*p == ' ' || *p == ':' || *p == '\n' || *p == '\t' || *p == '\r'))
                p++;
        if (p >= end || *p != '"')
                return;
        for (p++; p < end && hex(*p) && o + 1 < n; p++)
                tok[o++] = *p;
        tok[o] = '\0';
}

/* A failed parse: the documented code and a printable sentence. */
static void check_failure(const char *what, int r, const char *reason)
{
        FUZZ_CHECK(r == -EBADMSG || r == -ENOMEM, "%s: returned %d", what, r);
        FUZZ_CHECK(reason[0], "%s: failed (%d) without a reason", what, r);
        FUZZ_CHECK(printable(reason), "%s: reason is not printable ASCII: %s", what, reason);
        fuzz_sink(reason, strlen(reason));
}

static void check_label(const char *what, const char *l)
{
        size_t n = strlen(l);

        FUZZ_CHECK(n > 0 && n <= FORGEJO_LABEL_MAX, "%s: label of %zu bytes", what, n);
        for (const char *p = l; *p; p++)
                FUZZ_CHECK((unsigned char)*p >= 0x20 && *p != 0x7f,
                           "%s: label has byte 0x%02x", what, (unsigned char)*p);
        fuzz_sink(l, n);
}

static void check_status(const char *what, const char *s)
{
        size_t n = strlen(s);

        FUZZ_CHECK(n > 0 && n <= FORGEJO_STATUS_MAX, "%s: status of %zu bytes", what, n);
        for (const char *p = s; *p; p++)
                FUZZ_CHECK((*p >= 'a' && *p <= 'z') || *p == '_', "%s: status byte 0x%02x", what,
                           (unsigned char)*p);
}

static void check_name(const char *what, const char *s, bool empty_ok)
{
        size_t n = strlen(s);

        FUZZ_CHECK(n <= FORGEJO_NAME_TEXT_MAX && (empty_ok || n > 0), "%s: name of %zu bytes",
                   what, n);
        for (const char *p = s; *p; p++)
                FUZZ_CHECK((unsigned char)*p >= 0x20 && *p != 0x7f, "%s: name byte 0x%02x", what,
                           (unsigned char)*p);
        fuzz_sink(s, n);
}

static void check_rejected(const char *what, const struct forgejo_rejected *rj, size_t n,
                           size_t elements)
{
        FUZZ_CHECK(rj, "%s: rejected is NULL", what);
        for (size_t i = 0; i < n; i++) {
                FUZZ_CHECK(rj[i].index < elements, "%s: rejected[%zu].index %zu of %zu elements",
                           what, i, rj[i].index, elements);
                FUZZ_CHECK(i == 0 || rj[i].index > rj[i - 1].index,
                           "%s: rejected[] not in listing order", what);
                FUZZ_CHECK(rj[i].id >= 0, "%s: rejected[%zu].id %lld", what, i,
                           (long long)rj[i].id);
                FUZZ_CHECK(rj[i].reason && rj[i].reason[0] && printable(rj[i].reason),
                           "%s: rejected[%zu] has no printable reason", what, i);
                fuzz_sink(rj[i].reason, strlen(rj[i].reason));
        }
}

static void fuzz_jobs(const char *body, size_t len)
{
        struct forgejo_job_list l = { 0 };
        char reason[REASON_N] = "";
        int r = forgejo_parse_jobs(body, len, &l, reason, sizeof(reason));

        if (r < 0) {
                check_failure("jobs", r, reason);
                FUZZ_CHECK(!l.jobs && !l.rejected, "jobs: failed but filled the result");
                return;
        }
        FUZZ_CHECK(r == 0 && l.jobs, "jobs: returned %d, jobs %p", r, (void *)l.jobs);
        check_rejected("jobs", l.rejected, l.n_rejected, l.n + l.n_rejected);
        for (size_t i = 0; i < l.n; i++) {
                const struct forgejo_job *j = &l.jobs[i];
                size_t hn = strlen(j->handle);

                FUZZ_CHECK(j->id > 0 && j->attempt >= 0 && j->repo_id > 0 && j->owner_id > 0 &&
                                   j->task_id >= 0,
                           "jobs[%zu]: id %lld attempt %lld repo %lld owner %lld task %lld", i,
                           (long long)j->id, (long long)j->attempt, (long long)j->repo_id,
                           (long long)j->owner_id, (long long)j->task_id);
                FUZZ_CHECK(hn > 0 && hn <= FORGEJO_HANDLE_MAX && alnum(j->handle[0]),
                           "jobs[%zu]: handle of %zu bytes", i, hn);
                for (const char *p = j->handle; *p; p++)
                        FUZZ_CHECK(alnum(*p) || *p == '-' || *p == '_' || *p == '.',
                                   "jobs[%zu]: handle byte 0x%02x", i, (unsigned char)*p);
                check_name("jobs name", j->name, true);
                FUZZ_CHECK(j->runs_on, "jobs[%zu]: runs_on is NULL", i);
                for (size_t k = 0; k < j->n_runs_on; k++)
                        check_label("jobs runs_on", j->runs_on[k]);
                check_status("jobs", j->status);
                FUZZ_CHECK(j->state == (strcmp(j->status, "waiting") == 0   ? FORGEJO_JOB_WAITING
                                        : strcmp(j->status, "running") == 0 ? FORGEJO_JOB_RUNNING
                                                                            : FORGEJO_JOB_OTHER),
                           "jobs[%zu]: state %d for status %s", i, (int)j->state, j->status);
                /* Listings from a fuzzer are short: quadratic is fine. */
                for (size_t k = 0; k < i; k++) {
                        FUZZ_CHECK(l.jobs[k].id != j->id, "jobs: id %lld twice", (long long)j->id);
                        FUZZ_CHECK(strcmp(l.jobs[k].handle, j->handle) != 0,
                                   "jobs: handle %s twice", j->handle);
                }
                fuzz_sink(j, sizeof(*j));
                fuzz_sink(j->handle, hn);
        }
        forgejo_job_list_done(&l);
        FUZZ_CHECK(!l.jobs && !l.n, "jobs: _done() left state behind");
}

static void check_runner(const char *what, const struct forgejo_runner *rn)
{
        size_t n;

        FUZZ_CHECK(rn->id > 0 && rn->owner_id >= 0 && rn->repo_id >= 0,
                   "%s: id %lld owner %lld repo %lld", what, (long long)rn->id,
                   (long long)rn->owner_id, (long long)rn->repo_id);
        FUZZ_CHECK(strlen(rn->uuid) == FORGEJO_UUID_LEN, "%s: uuid of %zu bytes", what,
                   strlen(rn->uuid));
        for (size_t i = 0; i < FORGEJO_UUID_LEN; i++)
                FUZZ_CHECK((i == 8 || i == 13 || i == 18 || i == 23) ? rn->uuid[i] == '-'
                                                                      : hex(rn->uuid[i]),
                           "%s: uuid byte %zu is 0x%02x", what, i, (unsigned char)rn->uuid[i]);
        check_name(what, rn->name, false);
        check_status(what, rn->status);
        FUZZ_CHECK(rn->labels, "%s: labels is NULL", what);
        for (size_t i = 0; i < rn->n_labels; i++)
                check_label(what, rn->labels[i]);
        n = strlen(rn->version);
        FUZZ_CHECK(n <= FORGEJO_VERSION_MAX, "%s: version of %zu bytes", what, n);
        for (const char *p = rn->version; *p; p++)
                FUZZ_CHECK(*p > 0x20 && *p < 0x7f, "%s: version byte 0x%02x", what,
                           (unsigned char)*p);
        FUZZ_CHECK(strlen(rn->description) <= FORGEJO_DESCRIPTION_MAX,
                   "%s: description of %zu bytes", what, strlen(rn->description));
        fuzz_sink(rn->uuid, FORGEJO_UUID_LEN);
        fuzz_sink(rn->description, strlen(rn->description));
        fuzz_sink(rn, sizeof(*rn));
}

static void fuzz_runners(const char *body, size_t len, bool one)
{
        const char *what = one ? "runner" : "runners";
        struct forgejo_runner_list l = { 0 };
        char reason[REASON_N] = "";
        int r = one ? forgejo_parse_runner(body, len, &l, reason, sizeof(reason))
                    : forgejo_parse_runners(body, len, &l, reason, sizeof(reason));

        if (r < 0) {
                check_failure(what, r, reason);
                FUZZ_CHECK(!l.runners, "%s: failed but filled the result", what);
                return;
        }
        FUZZ_CHECK(r == 0 && l.runners, "%s: returned %d, runners %p", what, r,
                   (void *)l.runners);
        FUZZ_CHECK(!one || (l.n == 1 && l.n_rejected == 0), "runner: %zu runners, %zu rejected",
                   l.n, l.n_rejected);
        FUZZ_CHECK(l.page_count == l.n + l.n_rejected, "%s: page_count %zu for %zu + %zu", what,
                   l.page_count, l.n, l.n_rejected);
        FUZZ_CHECK(l.total_count == -1, "%s: total_count %lld without a header", what,
                   l.total_count);
        check_rejected(what, l.rejected, l.n_rejected, l.page_count);
        for (size_t i = 0; i < l.n; i++)
                check_runner(what, &l.runners[i]);
        forgejo_runner_list_done(&l);
}

static void fuzz_created(const char *body, size_t len)
{
        struct forgejo_runner_created c;
        char reason[REASON_N] = "", tok[FORGEJO_RUNNER_TOKEN_LEN + 1];
        int r;

        memset(&c, 0x5a, sizeof(c));
        r = forgejo_parse_created(body, len, &c, reason, sizeof(reason));
        if (r < 0) {
                check_failure("created", r, reason);
                /* Not even a piece of the token: reasons reach the log. */
                token_in_body(body, len, tok, sizeof(tok));
                if (strlen(tok) >= 8) {
                        tok[8] = '\0';
                        FUZZ_CHECK(!strstr(reason, tok), "created: reason quotes the token: %s",
                                   reason);
                }
                return;
        }
        FUZZ_CHECK(r == 0 && c.id > 0, "created: returned %d, id %lld", r, (long long)c.id);
        FUZZ_CHECK(strlen(c.uuid) == FORGEJO_UUID_LEN, "created: uuid of %zu bytes",
                   strlen(c.uuid));
        FUZZ_CHECK(strlen(c.token) == FORGEJO_RUNNER_TOKEN_LEN, "created: token of %zu bytes",
                   strlen(c.token));
        for (const char *p = c.token; *p; p++)
                FUZZ_CHECK(hex(*p), "created: token byte 0x%02x", (unsigned char)*p);
        fuzz_sink(&c, sizeof(c));
}

static void fuzz_reg_token(const char *body, size_t len)
{
        struct forgejo_reg_token t;
        char reason[REASON_N] = "";
        int r;

        memset(&t, 0x5a, sizeof(t));
        r = forgejo_parse_reg_token(body, len, &t, reason, sizeof(reason));
        if (r < 0) {
                check_failure("reg_token", r, reason);
                return;
        }
        size_t n = strnlen(t.token, sizeof(t.token));
        FUZZ_CHECK(n >= 1 && n <= FORGEJO_REG_TOKEN_MAX, "reg_token: %zu bytes", n);
        for (const char *p = t.token; *p; p++)
                FUZZ_CHECK(*p > 0x20 && *p < 0x7f, "reg_token: byte 0x%02x", (unsigned char)*p);
        fuzz_sink(t.token, n);
}

static void fuzz_version(const char *body, size_t len)
{
        struct forgejo_version v = { 0 };
        char reason[REASON_N] = "";
        int r = forgejo_parse_version(body, len, &v, reason, sizeof(reason));
        size_t n;

        if (r < 0) {
                check_failure("version", r, reason);
                return;
        }
        n = strlen(v.version);
        FUZZ_CHECK(n > 0 && n <= FORGEJO_VERSION_MAX, "version: %zu bytes", n);
        for (const char *p = v.version; *p; p++)
                FUZZ_CHECK(*p > 0x20 && *p < 0x7f, "version: byte 0x%02x", (unsigned char)*p);
        FUZZ_CHECK(!v.parsed || (v.major >= 0 && v.minor >= 0 && v.patch >= 0),
                   "version: %d.%d.%d", v.major, v.minor, v.patch);
        fuzz_sink(v.version, n);
        fuzz_sink(&v, sizeof(v));
        forgejo_version_done(&v);
}

static void fuzz_error_message(const char *body, size_t len)
{
        char out[128];

        memset(out, 0x5a, sizeof(out));
        forgejo_parse_error_message(body, len, SECRET, out, sizeof(out));
        FUZZ_CHECK(memchr(out, '\0', sizeof(out)), "error message: not NUL-terminated");
        for (const char *p = out; *p; p++)
                FUZZ_CHECK(*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\',
                           "error message: byte 0x%02x", (unsigned char)*p);
        FUZZ_CHECK(!strstr(out, SECRET), "error message: echoes the secret");
        fuzz_sink(out, strlen(out));
}

/* The body's bytes as a C string (up to its first NUL). */
static void fuzz_strings(const char *body, size_t len)
{
        char *s = malloc(len + 1);
        const char *desc;
        char *created = NULL;
        int maj = -1, min = -1, pat = -1, r;

        FUZZ_CHECK(s, "out of memory");
        memcpy(s, body, len);
        s[len] = '\0';
        if (forgejo_version_parse(s, &maj, &min, &pat) == 0) {
                FUZZ_CHECK(maj >= 0 && min >= 0 && pat >= 0, "version_parse: %d.%d.%d", maj, min,
                           pat);
                fuzz_sink_i64(maj);
                fuzz_sink_i64(min);
                fuzz_sink_i64(pat);
        }
        /* Name up to the first NUL, the description after it. */
        desc = memchr(body, '\0', len) ? s + strlen(s) + 1 : "";
        r = forgejo_create_body(s, desc, len & 1, &created);
        if (r == 0) {
                json_error_t e;
                json_t *j = json_loads(created, 0, &e);
                FUZZ_CHECK(j, "create_body: not JSON (%s): %s", e.text, created);
                FUZZ_CHECK(json_is_string(json_object_get(j, "name")) &&
                                   strcmp(json_string_value(json_object_get(j, "name")), s) == 0,
                           "create_body: name does not round-trip: %s", created);
                FUZZ_CHECK(json_is_string(json_object_get(j, "description")) &&
                                   strcmp(json_string_value(json_object_get(j, "description")),
                                          desc) == 0,
                           "create_body: description does not round-trip: %s", created);
                FUZZ_CHECK(json_is_boolean(json_object_get(j, "ephemeral")) &&
                                   json_is_true(json_object_get(j, "ephemeral")) == (len & 1),
                           "create_body: ephemeral does not round-trip: %s", created);
                fuzz_sink(created, strlen(created));
                json_decref(j);
                free(created);
        } else {
                FUZZ_CHECK(r == -EINVAL || r == -ENOMEM, "create_body: returned %d", r);
        }
        free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        /* libFuzzer hands over exactly size bytes on the heap, not
         * NUL-terminated: ASan sees any read past len. */
        const char *body = (const char *)data;

        fuzz_jobs(body, size);
        fuzz_runners(body, size, true);
        fuzz_runners(body, size, false);
        fuzz_created(body, size);
        fuzz_reg_token(body, size);
        fuzz_version(body, size);
        fuzz_error_message(body, size);
        fuzz_strings(body, size);
        return 0;
}
