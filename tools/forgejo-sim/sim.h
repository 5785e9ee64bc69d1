/* sim.h: internal interface of forgejo-sim, the in-memory Forgejo 15
 * stand-in; prototypes grouped by defining file. Never used outside
 * tools/forgejo-sim/. Locking: struct sim fields are guarded by sim.lock
 * (the state_* functions expect the caller to hold it), except the fault
 * and stats tables, which aux_lock guards. */
#pragma once

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "forge/rproto.h"

/* Hard limits on everything a client can make the simulator allocate. */
#define SIM_MAX_BODY            (1u << 20)      /* request body bytes (REST, control) */
/* Runner-protocol bodies carry step outputs of up to 1 MiB each (Forgejo's
 * own limit, which must be observable) and log rows. */
#define SIM_MAX_RPC_BODY        (8u << 20)
#define SIM_MAX_OBJECTS         (1u << 20)      /* per kind: users, jobs, ... */
#define SIM_MAX_LOG_ROWS        (1u << 20)      /* log rows kept per job */
#define SIM_MAX_NAME            255             /* bytes of a name */
#define SIM_MAX_PARAMS          4               /* {captures} in a route */
#define SIM_RUNNER_OFFLINE_MS   60000           /* Forgejo RunnerOfflineTime */
#define SIM_RUNNER_IDLE_MS      10000           /* Forgejo RunnerIdleTime */
#define SIM_VERSION_STRING      "15.0.0+gitea-1.22.0"

/* The version GET /api/v1/version reports (--forgejo-version), so clients'
 * behaviour towards older servers can be tested. */
extern const char *sim_forgejo_version;

/* ---- hmap.c: string-keyed chained hash map ------------------------------ */

struct hmap_entry {
        char *key;                      /* owned copy */
        uint64_t hash;
        void *value;                    /* borrowed */
        struct hmap_entry *next;
};

struct hmap {
        struct hmap_entry **buckets;
        size_t n_buckets;
        size_t n;
        uint64_t seed;
};

/* Returns 0 or -ENOMEM. */
int hmap_init(struct hmap *m);
/* Frees the entries (not the values); accepts a zeroed map. */
void hmap_done(struct hmap *m);
/* Adds key -> value; duplicate keys are allowed. Returns 0 or -ENOMEM. */
int hmap_add(struct hmap *m, const char *key, void *value);
/* First entry with this key, or NULL; continue with hmap_next_same(). */
struct hmap_entry *hmap_find(const struct hmap *m, const char *key);
struct hmap_entry *hmap_next_same(const struct hmap_entry *e);
void *hmap_get(const struct hmap *m, const char *key);
/* Removes the entry key -> value; no-op when absent. */
void hmap_remove(struct hmap *m, const char *key, const void *value);
/* Calls fn for every entry, in no particular order. */
void hmap_foreach(const struct hmap *m, void (*fn)(struct hmap_entry *e, void *arg), void *arg);

/* ---- simclock.c: the simulator's time ------------------------------------ */

/* How far a test clock may move in all: 100 years keeps timestamps within
 * four-digit years and every sum far from overflow. */
#define SIMCLOCK_MAX_ADVANCE_MS (100LL * 366 * 24 * 3600 * 1000)

/* Read without a lock; advanced (and read where the answer must agree
 * with the model) with sim.lock held. */
struct simclock {
        bool test;                      /* --test-clock: frozen between advances */
        int64_t mono0, wall0;           /* test clock: its time when started */
        _Atomic int64_t advanced_ms;    /* test clock: sum of all advances */
};

/* A real clock, or a test clock frozen at the current real time. */
void simclock_init(struct simclock *c, bool test);
/* Model time: monotonic ms (for durations) and wall-clock ms since the
 * epoch (for timestamps shown to clients). */
int64_t simclock_mono_ms(const struct simclock *c);
int64_t simclock_wall_ms(const struct simclock *c);
/* Total ms a test clock has been advanced; 0 for a real clock. */
int64_t simclock_advanced_ms(const struct simclock *c);
/* Moves a test clock forward by ms (0 is allowed). Returns 0, -EPERM for a
 * real clock, -ERANGE when ms < 0 or the total would pass
 * SIMCLOCK_MAX_ADVANCE_MS. The caller then evaluates the time-based rules
 * (state_tick). */
int simclock_advance(struct simclock *c, int64_t ms);

/* ---- state.c: the in-memory model --------------------------------------- */

enum job_status {
        JOB_WAITING = 0,
        JOB_RUNNING,
        JOB_SUCCESS,
        JOB_FAILURE,
        JOB_CANCELLED,
        JOB_SKIPPED,
};

/* The lists a job can be linked into: waiting+running jobs (REST listing)
 * and waiting jobs (task picking), each globally, per owner and per repo. */
enum job_list {
        JL_ACT_ALL = 0,
        JL_ACT_OWNER,
        JL_ACT_REPO,
        JL_WAIT_ALL,
        JL_WAIT_OWNER,
        JL_WAIT_REPO,
        JL_N,
};

struct job;

struct jlink {
        struct job *prev, *next;
};

/* Ascending by id: jobs are appended in creation order. */
struct jlist {
        struct job *head, *tail;
        size_t n;
};

struct reg_token {
        char token[41];
        int64_t owner_id, repo_id;      /* the scope */
        bool active;
};

/* A user or an organisation: one id space, as in Forgejo. */
struct owner {
        int64_t id;
        char *name;
        bool is_org;
        bool admin;                     /* users only */
        char *token;                    /* users only: API token (40 hex) */
        int64_t *org_owners;            /* orgs only: user ids */
        size_t n_org_owners;
        int64_t tasks_version;          /* scope (id, 0) */
        struct reg_token *reg_token;    /* scope (id, 0), NULL until asked */
        struct jlist act, wait;
};

struct repo {
        int64_t id;
        struct owner *owner;
        char *name;
        int64_t tasks_version;          /* scope (0, id) */
        struct reg_token *reg_token;
        struct jlist act, wait;
};

struct task;
struct runner;

/* Longest handle a test may give a job (/_sim/jobs "handle"): room to
 * model a forge that sends one longer than clients accept. */
#define SIM_HANDLE_MAX 255

struct job {
        int64_t id;
        struct repo *repo;
        char *name;
        char *key;                      /* workflow job id derived from name */
        struct rp_strlist runs_on;
        struct rp_strlist steps;        /* shell text of each run: step */
        enum job_status status;
        char handle[SIM_HANDLE_MAX + 1];    /* a UUID, or what a test asked for */
        int64_t attempt;
        struct task *task;              /* NULL until claimed */
        int64_t created_ms, claimed_ms, finished_ms;   /* simclock wall, 0 = not yet */
        char **log;
        size_t n_log, cap_log;
        /* The job's ActionRunJob JSON for REST listings, built on first
         * use and dropped whenever a listed field changes. */
        char *rest_json;
        size_t rest_json_len;
        struct jlink link[JL_N];
        bool in_list[JL_N];
};

struct runner {
        int64_t id;
        char uuid[37];
        char token[41];
        char *name;
        char *description;
        char *version;
        struct rp_strlist labels;
        bool ephemeral;
        bool deleted;
        int64_t owner_id, repo_id;
        int64_t n_tasks;                /* tasks ever given */
        int64_t last_online_mono, last_active_mono;     /* simclock mono, 0 = never */
};

struct task {
        int64_t id;
        struct job *job;
        struct runner *runner;
        char *request_key;              /* NULL when none was sent */
        char token[41];
        enum job_status status;         /* running or a final status */
        int64_t updated_mono;           /* simclock mono of the last UpdateTask/UpdateLog */
        int64_t log_length;             /* rows acknowledged */
        bool log_archived;              /* no_more was received */
        json_t *outputs;                /* object key -> value */
        struct task *run_prev, *run_next;       /* running-task list */
        bool running_linked;
};

/* A vector of pointers indexed by id - 1. */
struct vec {
        void **v;
        size_t n, cap;
};

struct sim {
        pthread_mutex_t lock;
        char server_url[96];            /* http://127.0.0.1:PORT */
        int64_t zombie_timeout_ms;
        struct simclock clock;          /* the model's time */

        struct vec owners, repos, jobs, runners, tasks;
        struct hmap owner_by_name;      /* lower-case name */
        struct hmap user_by_token_tail; /* last 8 chars of an API token */
        struct hmap repo_by_name;       /* "owner/name", lower case */
        struct hmap runner_by_uuid;     /* live runners only */
        struct hmap job_by_handle;
        struct hmap task_by_key;        /* "<runner id>/<request key>" */
        struct hmap reg_by_token;       /* whole token */

        int64_t global_tasks_version;
        struct reg_token *global_reg_token;
        struct jlist act, wait;
        struct task *running_head;      /* running tasks, any order */

        /* Faults and stats have their own lock so they never wait on a
         * long state operation. */
        pthread_mutex_t aux_lock;
        struct fault *faults;           /* singly linked, in creation order */
        int64_t next_fault_id;
        struct hmap stats;              /* "METHOD /pattern" -> int64_t * */
        struct rpc_stats {              /* runner-protocol bodies decoded */
                int64_t proto, json;    /* by codec */
                int64_t gzip_in, gzip_out; /* gzipped requests, responses */
        } rpc_stats;
};

/* Real clocks, for real waits only; the model reads s->clock. */
int64_t sim_now_ms(void);               /* wall clock, ms since the epoch */
int64_t sim_mono_ms(void);              /* monotonic ms */
/* RFC 3339 UTC with milliseconds; buf needs 32 bytes. */
void sim_format_ms(int64_t ms, char *buf, size_t n);

/* test_clock: see simclock_init. Returns NULL on OOM. */
struct sim *state_new(int64_t zombie_timeout_ms, bool test_clock);
void state_free(struct sim *s);

const char *state_job_status_name(enum job_status st);
bool state_job_done(const struct job *j);

struct owner *state_owner_by_name(struct sim *s, const char *name);
struct owner *state_owner_by_id(struct sim *s, int64_t id);
/* The user whose API token equals token (constant-time compare), or NULL. */
struct owner *state_user_by_token(struct sim *s, const char *token);
struct repo *state_repo_by_name(struct sim *s, const char *owner, const char *name);
struct repo *state_repo_by_id(struct sim *s, int64_t id);
struct job *state_job_by_id(struct sim *s, int64_t id);
struct runner *state_runner_by_id(struct sim *s, int64_t id);
struct task *state_task_by_id(struct sim *s, int64_t id);
/* Live runner with this uuid whose token matches, or NULL. */
struct runner *state_runner_auth(struct sim *s, const char *uuid, const char *token);

/* Creation. Return 0, -EEXIST (name taken), -ENOENT (a referenced owner
 * or repo is missing), -EINVAL (bad name), -ENOSPC (limit), -ENOMEM. */
int state_user_create(struct sim *s, const char *name, bool admin, struct owner **ret);
int state_org_create(struct sim *s, const char *name, const char *const *owners,
                     size_t n_owners, struct owner **ret);
int state_repo_create(struct sim *s, const char *owner, const char *name, struct repo **ret);
/* runs_on and steps are copied. handle: NULL for a fresh UUID (what
 * Forgejo does), else the handle to give the job as is, at most
 * SIM_HANDLE_MAX bytes, "" included — how a test models a forge that sends
 * bad data. */
int state_job_create(struct sim *s, struct repo *r, const char *name,
                     const struct rp_strlist *runs_on, const struct rp_strlist *steps,
                     const char *handle, struct job **ret);
int state_runner_create(struct sim *s, int64_t owner_id, int64_t repo_id, const char *name,
                        const char *description, bool ephemeral, struct runner **ret);

/* Soft-deletes a runner: its credentials stop working, it stays in the
 * runner vector so the control API can still report it. */
void state_runner_delete(struct sim *s, struct runner *r);

/* The registration token of a scope, created on first use. NULL on OOM. */
struct reg_token *state_reg_token(struct sim *s, int64_t owner_id, int64_t repo_id);
struct reg_token *state_reg_token_find(struct sim *s, const char *token);

/* tasks_version of a scope; a scope at 0 is bumped first so that the
 * answer is always >= 1 (Forgejo getLatestTasksVersion). */
int64_t state_tasks_version(struct sim *s, int64_t owner_id, int64_t repo_id);
/* Bumps the global scope, plus the owner and repo scopes when non-zero. */
void state_tasks_version_bump(struct sim *s, int64_t owner_id, int64_t repo_id);

/* Forgejo ItRunsOn: both non-empty and every runs_on label in labels. */
bool state_runs_on(const struct rp_strlist *runs_on, const struct rp_strlist *labels);

/* Assigns the first waiting job of the runner's scope that matches its
 * labels (and handle, when non-NULL) to a new task. Returns 1 and the task,
 * 0 when no job matches (or an ephemeral runner already had a task),
 * -ENOMEM, -ENOSPC. */
int state_pick_task(struct sim *s, struct runner *r, const char *request_key,
                    const char *handle, struct task **ret);
/* Tasks given to r under request_key, ascending by id; returns how many
 * were written to out (at most max). */
size_t state_tasks_by_request_key(struct sim *s, const struct runner *r, const char *request_key,
                                  struct task **out, size_t max);
/* Gives a task a fresh token (request-key recovery). */
int state_task_new_token(struct task *t);
/* Marks a task done with a final status and mirrors it on the job. */
void state_task_finish(struct sim *s, struct task *t, enum job_status st);
/* Forgejo StopTask: finish with st and delete the runner if ephemeral. */
void state_task_stop(struct sim *s, struct task *t, enum job_status st);
/* Marks the task alive (UpdateTask/UpdateLog heartbeat). */
void state_task_touch(struct sim *s, struct task *t);
/* Cancels a job: a waiting job becomes cancelled, a running one is stopped. */
void state_job_cancel(struct sim *s, struct job *j);
/* Appends log rows (copied). Returns 0, -ENOSPC past SIM_MAX_LOG_ROWS, -ENOMEM. */
int state_job_log_append(struct job *j, const struct rp_log_row *rows, size_t n);
/* Applies every time-based rule that changes the model at the clock's
 * current time: stops each running task idle for longer than the zombie
 * timeout with failure and archives its log (Forgejo's stop_zombie_tasks).
 * Runner status needs nothing here: it is computed when read. Returns how
 * many tasks were stopped. */
size_t state_tick(struct sim *s);

/* "offline" | "idle" | "active" (Forgejo status rules). */
const char *state_runner_status(const struct runner *r, int64_t now_mono);

/* ---- workflow.c: what a task carries ------------------------------------ */

/* Single-job workflow YAML for the job; malloc'd, NUL-terminated. */
char *workflow_payload(const struct job *j, size_t *ret_len);
/* The task's context (github.* values plus tokens); new reference. */
json_t *workflow_context(const struct sim *s, const struct task *t);
/* {"FORGEJO_TOKEN": t, "GITEA_TOKEN": t, "GITHUB_TOKEN": t}. */
json_t *workflow_secrets(const struct task *t);
/* Sanitized workflow job id for a job name ("build-1"). malloc'd. */
char *workflow_job_key(const char *name, int64_t id);

/* ---- httpd.c: HTTP server, routing, faults and stats -------------------- */

struct MHD_Connection;

struct sim_req {
        struct sim *sim;
        struct MHD_Connection *conn;
        const char *method;
        const char *path;
        const char *body;               /* NUL-terminated, may be "" */
        size_t body_len;
        const char *params[SIM_MAX_PARAMS];
        int arg;                        /* route-specific constant */
};

struct sim_resp {
        int status;
        char *body;                     /* malloc'd, may be NULL */
        size_t len;
        const char *content_type;
        const char *content_encoding;   /* Content-Encoding of body, NULL = none */
        long long total_count;          /* X-Total-Count, -1 = none */
        char *link;                     /* Link header, malloc'd or NULL */
};

const char *httpd_header(const struct sim_req *rq, const char *name);
/* True when the query has the key; *ret_value is "" for "?key". */
bool httpd_query(const struct sim_req *rq, const char *name, const char **ret_value);

/* Serialises j (taken) as the body. */
void resp_json(struct sim_resp *rs, int status, json_t *j);
/* {"message": "..."} */
void resp_message(struct sim_resp *rs, int status, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* A Connect error body with the code's HTTP status. */
void resp_connect_error(struct sim_resp *rs, enum rp_code code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

struct httpd;
/* Starts serving on a listening socket, which it takes (closed on
 * failure too). Returns NULL on failure. */
struct httpd *httpd_start(struct sim *s, int listen_fd);
void httpd_stop(struct httpd *h);

/* Faults (fault table in struct sim, guarded by aux_lock). */
enum fault_mode { FAULT_STATUS, FAULT_DELAY, FAULT_GARBAGE, FAULT_RESET };

struct fault {
        int64_t id;
        char *path_prefix;
        char method[16];                /* "" = any method */
        enum fault_mode mode;
        int status;
        double seconds;
        int64_t remaining;              /* 0 = until cleared */
        bool after;                     /* apply after the request took effect */
        struct fault *next;
};
void httpd_faults_clear(struct sim *s);

/* ---- rest.c, rpcsrv.c, ctl.c: route handlers ---------------------------- */

enum scope_kind { SCOPE_ADMIN = 0, SCOPE_ORG, SCOPE_USER, SCOPE_REPO };

void rest_version(const struct sim_req *rq, struct sim_resp *rs);
void rest_user(const struct sim_req *rq, struct sim_resp *rs);
void rest_jobs(const struct sim_req *rq, struct sim_resp *rs);
void rest_reg_token(const struct sim_req *rq, struct sim_resp *rs);
void rest_runners_list(const struct sim_req *rq, struct sim_resp *rs);
void rest_runners_create(const struct sim_req *rq, struct sim_resp *rs);
void rest_runner_get(const struct sim_req *rq, struct sim_resp *rs);
void rest_runner_delete(const struct sim_req *rq, struct sim_resp *rs);

void rpcsrv_ping(const struct sim_req *rq, struct sim_resp *rs);
void rpcsrv_register(const struct sim_req *rq, struct sim_resp *rs);
void rpcsrv_declare(const struct sim_req *rq, struct sim_resp *rs);
void rpcsrv_fetch_task(const struct sim_req *rq, struct sim_resp *rs);
void rpcsrv_fetch_single_task(const struct sim_req *rq, struct sim_resp *rs);
void rpcsrv_update_task(const struct sim_req *rq, struct sim_resp *rs);
void rpcsrv_update_log(const struct sim_req *rq, struct sim_resp *rs);

void ctl_users_create(const struct sim_req *rq, struct sim_resp *rs);
void ctl_orgs_create(const struct sim_req *rq, struct sim_resp *rs);
void ctl_repos_create(const struct sim_req *rq, struct sim_resp *rs);
void ctl_jobs_create(const struct sim_req *rq, struct sim_resp *rs);
void ctl_jobs_list(const struct sim_req *rq, struct sim_resp *rs);
void ctl_job_get(const struct sim_req *rq, struct sim_resp *rs);
void ctl_job_cancel(const struct sim_req *rq, struct sim_resp *rs);
void ctl_runners_list(const struct sim_req *rq, struct sim_resp *rs);
void ctl_stats_get(const struct sim_req *rq, struct sim_resp *rs);
void ctl_stats_reset(const struct sim_req *rq, struct sim_resp *rs);
void ctl_faults_add(const struct sim_req *rq, struct sim_resp *rs);
void ctl_faults_list(const struct sim_req *rq, struct sim_resp *rs);
void ctl_faults_clear(const struct sim_req *rq, struct sim_resp *rs);
void ctl_clock_get(const struct sim_req *rq, struct sim_resp *rs);
void ctl_clock_advance(const struct sim_req *rq, struct sim_resp *rs);

/* Parses a decimal id (> 0) from a path segment; -EINVAL otherwise. */
int sim_parse_id(const char *s, int64_t *ret);
