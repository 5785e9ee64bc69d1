/* forgejo_json.h: the Forgejo REST payloads (version, job listing, runner
 * get/list/create) and their strict parsers. Pure code: no I/O, no curl, no
 * logging, so every rule about what the forge may send is testable alone.
 * Bad input is an error with a reason, never a crash; a parser never
 * quotes a runner token in a reason. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What the forge may send. Every string is checked against a bound and a
 * character set and rejected with a reason when it does not fit; nothing
 * is ever cut to fit a buffer. Bounds are in bytes, NUL not included. */

/* A job's handle. Forgejo's are UUIDs (36 bytes, forgejo-api.md section
 * 1.3); 63 leaves room for another format and lets a char[64] (what
 * FORGEJO_HANDLE_MAX + 1 is) hold every accepted handle. Letters, digits,
 * '-', '_' and '.', starting with a letter or digit: handles travel as
 * argv words, file names and map keys. */
#define FORGEJO_HANDLE_MAX 63
/* A runs_on or runner label: no control characters. Forgejo sets no
 * limit; 255 is far above any label a person types and bounds hostile
 * input. */
#define FORGEJO_LABEL_MAX 255
/* Job and runner names: Forgejo stores them as VARCHAR(255) characters
 * (and cuts runner names to 255 bytes at registration); 255 UTF-8
 * characters take at most 1020 bytes. No control characters. */
#define FORGEJO_NAME_TEXT_MAX 1020
/* A runner's free-text description (newlines allowed). */
#define FORGEJO_DESCRIPTION_MAX 4096
/* Version strings ("15.0.1+gitea-1.22.0", "v12.9.0"): printable ASCII
 * without spaces. */
#define FORGEJO_VERSION_MAX 128
/* Status words ("waiting", "idle"): lower-case letters and '_'. */
#define FORGEJO_STATUS_MAX 32

/* Payload structs are owned by the client (or by the parse result, until
 * its _done()) and valid only during the callback; strings are
 * NUL-terminated UTF-8 and never NULL. */

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
        int64_t id;                      /* > 0, unique in the listing */
        int64_t attempt;                 /* >= 0; 0 when absent */
        const char *handle;              /* valid (see FORGEJO_HANDLE_MAX),
                                          * unique in the listing */
        int64_t repo_id;                 /* > 0 */
        int64_t owner_id;                /* > 0 */
        const char *name;                /* may be "" */
        const char *const *runs_on;      /* n_runs_on non-empty labels */
        size_t n_runs_on;
        int64_t task_id;                 /* >= 0; 0 when never assigned */
        const char *status;              /* "waiting", "running", ... */
        enum forgejo_job_state state;
};

/* An element of a listing that was skipped because it does not have the
 * documented shape. */
struct forgejo_rejected {
        size_t index;                    /* position in the listing (0-based) */
        int64_t id;                      /* the element's "id" when that is a
                                          * valid id, else 0 */
        const char *reason;              /* "handle: 70 bytes, more than the
                                          * 63 allowed"; printable ASCII, no
                                          * position, never a value */
};

struct forgejo_job_list {
        struct forgejo_job *jobs;        /* n entries, server order */
        size_t n;
        struct forgejo_rejected *rejected; /* n_rejected entries, listing order */
        size_t n_rejected;
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
        const char *uuid;                /* canonical 8-4-4-4-12 hex */
        const char *name;                /* non-empty */
        const char *status;              /* "offline", "idle", "active" */
        enum forgejo_runner_state state;
        const char *const *labels;
        size_t n_labels;
        bool ephemeral;
        int64_t owner_id;                /* >= 0 */
        int64_t repo_id;                 /* >= 0 */
        const char *version;             /* "" when absent */
        const char *description;         /* "" when absent */
};

struct forgejo_runner_list {
        struct forgejo_runner *runners;  /* n entries, server order */
        size_t n;
        struct forgejo_rejected *rejected; /* n_rejected entries, listing order */
        size_t n_rejected;
        /* Paging (forgejo_runner_list() fills page, limit, total_count):
         * compare page_count, not n, with limit -- a page with a rejected
         * runner is not short. */
        size_t page_count;               /* elements in the page: n + n_rejected */
        int page, limit;                 /* as asked; 0 when not a page */
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
 * -ENOMEM; *ret is set only on success, then released with the matching
 * _done() (which accepts NULL and zeroed structs). body need not be
 * NUL-terminated; reason (may be NULL) gets a printable sentence.
 *
 * Listings (jobs, runners): a body that is not valid JSON, or whose top
 * level is neither an array nor null, fails. Inside a valid array, an
 * element of the wrong shape -- wrong type, id out of range, a string over
 * its bound or with unexpected characters, a missing field, a duplicate
 * job id or handle -- is skipped and described in rejected[], and the
 * rest is returned: one bad job must not hide the demand of the others. */
int forgejo_parse_jobs(const char *body, size_t len, struct forgejo_job_list *ret,
                       char *reason, size_t reason_n);
void forgejo_job_list_done(struct forgejo_job_list *l);

/* One runner object (GET .../runners/{id}); any rule broken fails the
 * parse ("$.uuid: not a canonical UUID"). The result has n == 1. */
int forgejo_parse_runner(const char *body, size_t len, struct forgejo_runner_list *ret,
                         char *reason, size_t reason_n);
/* A page of GET .../runners. */
int forgejo_parse_runners(const char *body, size_t len, struct forgejo_runner_list *ret,
                          char *reason, size_t reason_n);
void forgejo_runner_list_done(struct forgejo_runner_list *l);

/* The created runner (the caller wipes *ret when done with the token). */
int forgejo_parse_created(const char *body, size_t len, struct forgejo_runner_created *ret,
                          char *reason, size_t reason_n);

/* A scope's runner registration token: {"token": "..."}, 1 to
 * FORGEJO_REG_TOKEN_MAX printable ASCII bytes without spaces (never quoted
 * in a reason). The caller wipes *ret. */
#define FORGEJO_REG_TOKEN_MAX 255
struct forgejo_reg_token {
        char token[FORGEJO_REG_TOKEN_MAX + 1];
};
int forgejo_parse_reg_token(const char *body, size_t len, struct forgejo_reg_token *ret,
                            char *reason, size_t reason_n);

/* GET /api/v1/version: {"version": "..."}; the version is non-empty
 * printable ASCII of at most FORGEJO_VERSION_MAX bytes. parsed tells
 * whether forgejo_version_parse() understood it. */
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
