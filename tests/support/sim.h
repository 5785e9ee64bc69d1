/* sim.h: test harness for forgejo-sim. Starts the simulator as a child on
 * 127.0.0.1 (ephemeral port, path from $FORGEJO_SIM), stops it (SIGTERM,
 * then SIGKILL) and never leaves it running: the child dies with the test
 * process (PR_SET_PDEATHSIG) and an atexit hook reaps whatever is left.
 * Also owns thin HTTP helpers for REST, Connect RPC and the /_sim control
 * API. Never asserts and never interprets a response beyond parsing JSON. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "child.h"
#include "forge/rpcodec.h"

struct httpc;

struct sim {
        struct child proc;       /* its stdout is an unlinked temp file */
        int port;
        char base_url[64];       /* "http://127.0.0.1:PORT" */
        struct httpc *http;      /* kept-alive connection for the helpers */
};

struct sim_opts {
        const char *zombie_timeout;  /* "--zombie-timeout" value; NULL: default */
        const char *forgejo_version; /* "--forgejo-version" value; NULL: default */
        bool test_clock;             /* "--test-clock": time moves only by sim_clock_advance */
        long start_timeout_ms;       /* 10 s when 0 */
};

/* Starts "forgejo-sim serve --listen 127.0.0.1:0" and waits for its
 * "listening on http://127.0.0.1:PORT" line. opts may be NULL.
 * Returns 0 with *ret owned by the caller (release with sim_stop);
 * -ENOENT when $FORGEJO_SIM is unset, -ETIMEDOUT when no line came in time,
 * -ECHILD when the child exited first (its output is printed to stderr),
 * other -errno from fork/exec. */
int sim_start(const struct sim_opts *opts, struct sim **ret);

/* Stops and frees the simulator (NULL is fine). Returns 0 when it was still
 * running and ended on SIGTERM (exit status 0 or killed by SIGTERM);
 * -ESRCH when it had already died before (crash or early exit);
 * -EPROTO when it exited with a non-zero status or another signal after
 * SIGTERM; -ETIMEDOUT when it needed SIGKILL. Details go to stderr. */
int sim_stop(struct sim *sim);

/* True while the child process has not exited. */
bool sim_alive(struct sim *sim);

/* A response. body is NUL-terminated and owned; json is the parsed body
 * (any JSON value, JSON null included) or NULL when the body is not JSON. */
struct sim_resp {
        long status;
        char *body;
        size_t len;
        long long total_count;   /* X-Total-Count, -1 when absent */
        char content_type[128];
        char content_encoding[32];       /* "" when absent; body is as sent */
        json_t *json;
        double elapsed_s;
};
void sim_resp_done(struct sim_resp *r);

struct sim_req {
        const char *method;              /* "GET" when NULL */
        const char *path;                /* appended to base_url */
        const char *const *headers;      /* NULL-terminated "Name: value" */
        const char *body;                /* may be NULL */
        size_t body_len;                 /* strlen(body) when 0 */
        long timeout_ms;                 /* 5 s when 0 */
        bool fresh_connection;           /* do not reuse the kept-alive one */
};

/* Performs one request. Returns 0 when a response arrived (any status),
 * else the -errno of httpc_do (-ECONNRESET, -ETIMEDOUT, ...). *ret is
 * always initialised; release it with sim_resp_done(). */
int sim_request(struct sim *sim, const struct sim_req *req, struct sim_resp *ret);

/* REST with "Authorization: token <token>" (no header when token is NULL). */
int sim_get(struct sim *sim, const char *path, const char *token, struct sim_resp *ret);
int sim_post(struct sim *sim, const char *path, const char *token,
             const char *json_body, struct sim_resp *ret);
int sim_delete(struct sim *sim, const char *path, const char *token, struct sim_resp *ret);

/* The codec sim_rpc() speaks: $SIM_RPC_CODEC, "json" (the default) or
 * "proto". The conformance groups run once in each. */
enum rpcodec sim_rpc_codec(void);

/* Connect unary call: POST /api/actions/<method> with
 * Connect-Protocol-Version 1 and, when non-NULL, x-runner-uuid,
 * x-runner-token and x-runner-request-key. json_body is protojson; in the
 * proto codec (sim_rpc_codec()) it goes as application/proto and a 200
 * application/proto answer comes back as its JSON in ret->json and
 * ret->body, so tests read every answer the same way. A body the proto
 * codec cannot carry (not JSON, a field or value the schema lacks: the
 * tests of JSON decoding) goes as JSON, with a note on stderr. Connect
 * errors are JSON in both codecs. */
int sim_rpc(struct sim *sim, const char *method, const char *uuid, const char *token,
            const char *request_key, const char *json_body, struct sim_resp *ret);

/* ---- control API (/_sim); each returns 0, -EPROTO on an unexpected
 * status or shape (printed to stderr), or a transport -errno ---- */

struct sim_user {
        long long id;
        char name[64];
        char token[128];
};
int sim_create_user(struct sim *sim, const char *name, bool admin, struct sim_user *ret);

/* owners: NULL-terminated list of user names. */
int sim_create_org(struct sim *sim, const char *name, const char *const *owners,
                   long long *ret_id);
int sim_create_repo(struct sim *sim, const char *owner, const char *name, long long *ret_id);

struct sim_job {
        long long id;
        char handle[128];
};
/* runs_on_json and steps_json are JSON array literals, e.g. "[\"a\",\"b\"]";
 * steps_json NULL means ["echo hello"]. */
int sim_create_job(struct sim *sim, const char *owner, const char *repo, const char *name,
                   const char *runs_on_json, const char *steps_json, struct sim_job *ret);
int sim_cancel_job(struct sim *sim, long long id);

/* *ret is a new reference. */
int sim_get_job(struct sim *sim, long long id, json_t **ret);
int sim_list_jobs(struct sim *sim, json_t **ret);
int sim_list_runners(struct sim *sim, json_t **ret);
/* The /_sim/runners entry with this uuid; -ENOENT when absent. */
int sim_find_runner(struct sim *sim, const char *uuid, json_t **ret);
int sim_stats(struct sim *sim, json_t **ret);

/* json_body is the literal fault object. */
int sim_fault(struct sim *sim, const char *json_body);
int sim_faults_clear(struct sim *sim);

/* POST /_sim/clock {"advance_ms": ms}: moves the clock of a simulator
 * started with opts.test_clock forward by ms and applies every time-based
 * rule (zombie timeout, runner status) before answering, so the next
 * request sees the effect. -EPROTO when the simulator refuses (no
 * --test-clock: 409; ms negative or too far: 422). */
int sim_clock_advance(struct sim *sim, long long ms);

/* ---- runners ---- */

struct sim_runner {
        long long id;
        char uuid[64];
        char token[128];
};
/* POST <scope>/actions/runners {"name", "description", "ephemeral"} with the
 * user token; scope is an API prefix like "/api/v1/admin",
 * "/api/v1/orgs/acme", "/api/v1/repos/acme/web" or "/api/v1/user". */
int sim_runner_create(struct sim *sim, const char *scope, const char *user_token,
                      const char *name, bool ephemeral, struct sim_runner *ret);
/* Declare {"version", "labels": <labels_json>} with the runner's credentials. */
int sim_runner_declare(struct sim *sim, const struct sim_runner *r, const char *labels_json);
/* FetchTask {"tasksVersion":"0"}; *ret_task_id is 0 when no task came. */
int sim_runner_fetch(struct sim *sim, const struct sim_runner *r, long long *ret_task_id);
