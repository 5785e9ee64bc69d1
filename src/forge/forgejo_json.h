/* forgejo_json.h: the Forgejo REST payloads (version, job listing, runner
 * get/list/create) and their strict parsers. Pure code: no I/O, no curl, no
 * logging, so every rule about what the forge may send is testable alone.
 * Bad input is an error with a reason, never a crash; a parser never
 * quotes a runner token in a reason. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Payload structs are owned by the client and valid only during the
 * callback; strings are NUL-terminated UTF-8 and never NULL. */

struct forgejo_version {
        const char *version;             /* "15.0.1+gitea-1.22.0" */
        bool parsed;                     /* major/minor/patch are valid */
        int major, minor, patch;
        void *priv;                      /* parse storage */
};

enum forgejo_job_state {
        FORGEJO_JOB_OTHER = 0,           /* any other status string */
        FORGEJO_JOB_WAITING,
        FORGEJO_JOB_RUNNING,
};

struct forgejo_job {
        int64_t id;                      /* > 0 */
        int64_t attempt;                 /* 0 when absent (before 15.0) */
        const char *handle;              /* "" when absent */
        int64_t repo_id;
        int64_t owner_id;
        const char *name;
        const char *const *runs_on;      /* n_runs_on labels */
        size_t n_runs_on;
        int64_t task_id;                 /* 0 when never assigned */
        const char *status;              /* "waiting", "running", ... */
        enum forgejo_job_state state;
};

struct forgejo_job_list {
        struct forgejo_job *jobs;        /* n entries, server order */
        size_t n;
        void *priv;                      /* parse storage */
};

enum forgejo_runner_state {
        FORGEJO_RUNNER_UNKNOWN = 0,      /* any other status string */
        FORGEJO_RUNNER_OFFLINE,
        FORGEJO_RUNNER_IDLE,
        FORGEJO_RUNNER_ACTIVE,
};

struct forgejo_runner {
        int64_t id;                      /* > 0 */
        const char *uuid;
        const char *name;
        const char *status;              /* "offline", "idle", "active" */
        enum forgejo_runner_state state;
        const char *const *labels;
        size_t n_labels;
        bool ephemeral;
        int64_t owner_id;
        int64_t repo_id;
        const char *version;             /* "" when absent */
        const char *description;         /* "" when absent */
};

struct forgejo_runner_list {
        struct forgejo_runner *runners;
        size_t n;
        long long total_count;           /* X-Total-Count; -1 when absent */
        void *priv;
};

#define FORGEJO_UUID_LEN 36
#define FORGEJO_RUNNER_TOKEN_LEN 40

/* Not const: the caller may wipe token after copying it. The client wipes
 * the struct, the response body and its parse tree once the callback
 * returns. */
struct forgejo_runner_created {
        int64_t id;
        char uuid[FORGEJO_UUID_LEN + 1];
        char token[FORGEJO_RUNNER_TOKEN_LEN + 1];
};

/* "15.0.1+gitea-1.22.0", "v15.0.0-dev-123-abc", "15.1" → 15/1/0.
 * Returns 0 or -EINVAL; outputs set only on success. */
int forgejo_version_parse(const char *s, int *ret_major, int *ret_minor, int *ret_patch);

/* Strict parsers of response bodies. Return 0, -EBADMSG with a reason, or
 * -ENOMEM. On success release with the matching _done(). body need not be
 * NUL-terminated. */
int forgejo_parse_jobs(const char *body, size_t len, struct forgejo_job_list *ret,
                       char *reason, size_t reason_n);
void forgejo_job_list_done(struct forgejo_job_list *l);

int forgejo_parse_runner(const char *body, size_t len, struct forgejo_runner_list *ret,
                         char *reason, size_t reason_n);
int forgejo_parse_runners(const char *body, size_t len, struct forgejo_runner_list *ret,
                          char *reason, size_t reason_n);
void forgejo_runner_list_done(struct forgejo_runner_list *l);

/* The created runner (the caller wipes *ret when done with the token). */
int forgejo_parse_created(const char *body, size_t len, struct forgejo_runner_created *ret,
                          char *reason, size_t reason_n);

/* GET /api/v1/version: {"version": "..."}. */
int forgejo_parse_version(const char *body, size_t len, struct forgejo_version *ret,
                          char *reason, size_t reason_n);
void forgejo_version_done(struct forgejo_version *v);

/* The "message" of a Forgejo error body as printable ASCII in out ("" when
 * there is none), unless it contains secret (a server echoing the token). */
void forgejo_parse_error_message(const char *body, size_t len, const char *secret, char *out,
                                 size_t n);

/* The body of POST .../actions/runners. Returns 0 with *ret to free(),
 * -EINVAL (empty name, invalid UTF-8) or -ENOMEM. */
int forgejo_create_body(const char *name, const char *description, bool ephemeral, char **ret);
