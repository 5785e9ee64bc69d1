/* scaler.h: pure scaling policy. From the demand (waiting/running jobs seen
 * per forge scope) and the current instances, decide what to launch, what to
 * stop and which instances need their claim checked on the forge.
 *
 * Owns: job → pool assignment (first matching pool in config order that has
 * room), warm-pool sizing, timeouts, per-pool demand figures, and every
 * decision to stop an instance (the engines report what they observed:
 * claim checks, job states, a runner gone; the scaler concludes).
 * Never does I/O, never allocates, never reads the clock (now is an input),
 * so the same code drives the daemon and the simulator. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* A job as listed by Forgejo, merged across listings by (forge, id). */
struct scaler_job {
        int64_t id;
        const char *handle;
        const char *const *runs_on;
        size_t n_runs_on;
        bool waiting;                 /* false: running (claimed by someone) */
        bool served;                  /* a live non-warm instance holds the handle */
        bool stale;                   /* from a listing that is no longer fresh (forge
                                       * unreachable): counted as demand, never
                                       * launched for */
        uint64_t groups;              /* bit g set: listing g returned it */
        int forge;                    /* forge index */
};

/* What the latest fresh listing says about an instance's job. */
enum scaler_job_state {
        SCALER_JOB_UNKNOWN = 0,       /* no fresh listing (forge down): do nothing */
        SCALER_JOB_WAITING,
        SCALER_JOB_RUNNING,           /* claimed, by us or by someone else */
        SCALER_JOB_GONE,              /* no longer listed: finished or cancelled */
};

struct scaler_pool {
        int group;                    /* listing this pool reads (bit index) */
        int forge;
        int provider;                 /* index into providers */
        const char *const *labels;
        size_t n_labels;
        int min_idle;
        int max_runners;
        int64_t idle_timeout_ms;
        int64_t bootstrap_timeout_ms;
        bool demand_fresh;            /* last poll succeeded within 3 intervals */
        bool enabled;                 /* false: refused (e.g. old Forgejo) */
        bool retired;                 /* removed from the configuration: its
                                       * jobs' instances finish, its warm ones go */
        bool hold;                    /* launches paused after repeated failures:
                                       * the pool counts as full, so jobs go to
                                       * the next matching pool */
        int warm_claims;              /* warm instances seen taking a job (or
                                       * ending) after this pool's listing was
                                       * asked: as many of its waiting jobs are
                                       * theirs and need nothing */
};

struct scaler_provider {
        int max_instances;            /* 0 = unlimited */
};

/* What the engine knows about one of its live instances. */
struct scaler_inst {
        int pool;
        enum store_state state;
        bool warm;
        const char *handle;           /* "" for warm */
        enum scaler_job_state job_state;
        int64_t created_ms;
        int64_t state_ms;             /* entered current state */
        int64_t idle_since_ms;        /* warm: waiting since (0 = n/a) */
        bool stop_requested;          /* already being stopped */
        bool verify_inflight;         /* a claim check is under way */
        int64_t verify_after_ms;      /* no new check before this */
        /* What the engine observed, as wall-clock ms (0 = never): */
        int64_t job_running_since_ms; /* the job first listed as running */
        int64_t job_gone_since_ms;    /* the job first missing from a listing */
        int64_t idle_checked_ms;      /* asked: a claim check that found the
                                       * instance's runner registered and idle */
        int64_t runner_gone_since_ms; /* its runner seen deleted on the forge */
        bool worker_alive;            /* the provider still runs its worker */
};

/* A runner seen idle this long after its job was listed as running lost
 * the job to another runner (a claimed runner reports within seconds). */
#define SCALER_CLAIM_GRACE_MS 15000
/* A worker whose runner is gone (its task ended) exits by itself; one that
 * has not after this long is stopped. */
#define SCALER_RUNNER_GONE_EXIT_MS 60000

enum scaler_action_kind {
        SCALER_LAUNCH_JOB = 1,        /* job index, pool */
        SCALER_LAUNCH_WARM,           /* pool */
        SCALER_STOP,                  /* inst index, reason */
        SCALER_VERIFY,                /* inst index: check its runner's claim */
};

enum scaler_reason {
        SCALER_R_NONE = 0,
        SCALER_R_BOOTSTRAP_TIMEOUT,   /* never claimed its job in time */
        SCALER_R_IDLE_TIMEOUT,        /* warm instance above min_idle */
        SCALER_R_POOL_DISABLED,
        SCALER_R_POOL_REMOVED,        /* warm instance of a retired pool */
        SCALER_R_JOB_GONE,            /* its job was cancelled or run elsewhere,
                                       * and its runner is idle */
        SCALER_R_JOB_TAKEN,           /* another runner took its job */
        SCALER_R_RUNNER_GONE,         /* runner deleted, worker still there */
};

const char *scaler_reason_name(enum scaler_reason r);

struct scaler_action {
        enum scaler_action_kind kind;
        int pool;
        size_t job;
        size_t inst;
        enum scaler_reason reason;
};

/* Per-pool figures for metrics and the KEDA endpoint. */
struct scaler_pool_stats {
        int waiting;                  /* waiting jobs this pool should serve */
        int running;                  /* jobs running on this pool's instances */
        int starting;                 /* registering + starting */
        int idle;                     /* waiting instances (warm or not yet claimed) */
        int busy;                     /* running instances */
        int stopping;
        int desired;                  /* min(max_runners, instances holding a job
                                       * + waiting + min_idle);
                                       * uncapped for observe-only (max_runners 0) */
        int unserved;                 /* waiting jobs left without room */
        int room;                     /* more jobs the pool could take now:
                                       * max_runners − live − unserved, within
                                       * its provider's max_instances; what a
                                       * broker pool may fetch */
};

struct scaler_input {
        int64_t now_ms;
        const struct scaler_pool *pools;
        size_t n_pools;
        const struct scaler_provider *providers;
        size_t n_providers;
        const struct scaler_job *jobs;    /* sorted by id ascending (oldest first) */
        size_t n_jobs;
        const struct scaler_inst *insts;
        size_t n_insts;
        int64_t verify_interval_ms;       /* re-check cadence for unclaimed jobs */
        /* Optional: returns false to hold launches for a handle (backoff after
         * failed launches). NULL = always allowed. */
        bool (*handle_allowed)(void *ud, const char *handle);
        void *ud;
};

struct scaler_output {
        struct scaler_action *actions;    /* caller-provided */
        size_t cap;
        size_t n;
        bool truncated;                   /* more actions than cap */
        struct scaler_pool_stats *stats;  /* n_pools entries, caller-provided */
};

/* Fills out->actions and out->stats. Launches are ordered oldest job first.
 * Returns 0. Stops and verifies come before launches in the list. */
int scaler_plan(const struct scaler_input *in, struct scaler_output *out);

/* Forgejo's ItRunsOn: true iff runs_on is non-empty and every label of it is
 * in labels (exact, case-sensitive); labels must be non-empty too. */
bool scaler_runs_on(const char *const *runs_on, size_t n_runs_on,
                    const char *const *labels, size_t n_labels);
