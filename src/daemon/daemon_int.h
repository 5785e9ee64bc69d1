/* daemon_int.h: the daemon's internal types, shared by daemon.c (set-up,
 * demand polling, reload, the tick), pools.c (pools and groups), instance.c
 * (instance lifecycle), reaper.c (orphans) and api.c (HTTP and metrics).
 * Not used outside src/daemon/. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "daemon/lifecycle.h"
#include "forge/forgejo.h"
#include "loop/loop.h"
#include "provider/provider.h"
#include "scaler/scaler.h"
#include "store/store.h"
#include "util/strmap.h"

struct hmulti;
struct http_server;
struct metrics;
struct metric;
struct orphan;
struct broker;

/* Waiting/running job as last listed for one group. */
struct djob {
        int64_t id;
        char *handle;
        char **runs_on;
        size_t n_runs_on;
        bool waiting;
};

/* One demand listing: pools sharing (forge, scope) share it. */
struct group {
        struct daemon *d;
        int forge;
        struct forgejo_scope scope;
        char scope_text[256];
        char **labels;               /* union of the pools' labels */
        size_t n_labels;
        int64_t interval_ms;         /* smallest poll_interval of its pools */
        size_t n_pools;              /* pools reading it; 0: unused slot */
        bool fresh_slot;             /* made by the latest (re)assignment */
        bool inflight;
        struct loop_timer *timer;
        int failures;                /* consecutive */
        int64_t last_ok;             /* monotonic ms of the last good listing */
        int64_t req_started;         /* monotonic: the listing in flight was asked */
        int64_t snap_asked;          /* monotonic: the snapshot's listing was asked */
        bool last_failed;
        struct djob *jobs;           /* last good snapshot */
        size_t n_jobs;
        bool reap_inflight;
        int64_t next_reap;           /* monotonic: next orphan sweep */
        bool reap_again;             /* a leak was suspected during a sweep */
        bool leak_suspected;         /* until a sweep after the suspicion ends:
                                      * a failed listing is retried in seconds */
        void *sweep;                 /* the sweep in flight (freed at exit) */
        char broker_pool[STORE_NAME_MAX]; /* broker: the pool's name */
        bool broker;                 /* one broker pool's: its jobs are the
                                      * tasks the pool holds, never listed,
                                      * never swept */
};

struct dforge {
        struct daemon *d;
        struct config_forge *cfg;
        struct forgejo *client;
        int creates_inflight;        /* registrations POSTed, not answered */
        int version_major;           /* 0 until known */
        char version[64];
        bool version_inflight;
        int version_failures;
        struct loop_timer *version_timer;
        bool up;                     /* last request got an HTTP answer */
};

#define WARM_DONE_MAX 64

struct dpool {
        struct config_pool *cfg;
        int group;
        bool enabled;                /* may launch: its mode runs on its forge */
        bool refused;                /* its refusal was logged */
        bool retired;                /* removed by a reload; live instances left */
        const struct config *owner;  /* retired: the configuration cfg is in */
        struct config_pool *own_cfg; /* made by the daemon for a pool the
                                      * configuration lost while it was down */
        const char **labels;         /* borrowed from cfg */
        struct scaler_pool_stats stats;
        int failures;                /* consecutive failed launches */
        int64_t hold_until;          /* wall ms: no launches before this */
        /* Warm instances that ran a job and ended, newest last: monotonic
         * ms of their claim as seen by us, or of their end when the claim
         * was never seen. Kept until a listing asked later replaces the
         * snapshot that may still show their jobs waiting. */
        int64_t warm_done[WARM_DONE_MAX];
        size_t n_warm_done;
};

struct inst {
        struct store_instance row;
        struct lifecycle lc;         /* its state machine, over row */
        int pool;                    /* -1: its pool is gone */
        struct daemon *d;
        /* Runtime only; rebuilt after a restart. */
        struct forgejo_call *call;   /* the queue engine's call in flight */
        struct loop_timer *engine_timer; /* the broker engine's answer to come */
        int engine_op;               /* which one */
        enum scaler_job_state job_state;
        int64_t job_running_since;   /* monotonic, 0 = not seen running */
        int64_t job_gone_since;      /* monotonic, 0 = listed (or unknown) */
        bool save_failing;           /* its latest save failed (logged once) */
        struct loop_timer *retry;    /* a RETRY the state machine asked for */
        int64_t create_mono;         /* when create() was called (loop ms), 0 */
        enum provider_failure failure; /* the engine's refusal, if any: the
                                        * launch's metric result */
        bool counted;                /* launches_total recorded */
};

struct daemon {
        struct config *cfg;          /* current */
        struct config *cfg0;         /* the caller's; forge clients borrow it */
        struct config **old_cfgs;    /* earlier reloads still pointed into */
        size_t n_old_cfgs;
        struct loop *loop;
        struct hmulti *hm;
        struct store *store;
        struct http_server *http;
        struct metrics *metrics;
        struct metric *m_waiting, *m_runners, *m_wait, *m_requests, *m_launches,
                      *m_forge_up, *m_desired, *m_demand_age, *m_demand_stale, *m_rejected,
                      *m_btasks, *m_brunner, *m_brelay_failed, *m_wstart;

        struct dforge *forges;
        size_t n_forges;
        struct group *groups;
        size_t n_groups;
        struct dpool *pools;
        size_t n_pools;
        struct provider *providers;
        size_t n_providers;
        bool *psweep_inflight;       /* per provider: a list() under way */
        int64_t *next_psweep;        /* per provider: monotonic */
        struct orphan *orphans;      /* workers being stopped by the reaper */
        struct broker *broker;       /* NULL without broker pools (engine/broker.h) */

        char *state_dir;             /* absolute: workers run in other folders */
        int lock_fd;                 /* flock on state_dir/lock, held for life */
        bool log_from_config;        /* reload applies the log settings */
        char ctrl[16];               /* controller id: names are "fs-<ctrl>-..." */
        char prefix[32];             /* "fs-<ctrl>-" */

        /* Instances: every live one, plus terminal ones still cleaning up. */
        struct inst **insts;
        size_t n_insts, cap_insts;
        struct strmap by_name;       /* name → inst */
        struct strmap by_handle;     /* handle → live non-warm inst */
        struct strmap first_seen;    /* handle → struct seen */
        struct strmap backoff;       /* handle → struct backoff */
        struct strmap finished;      /* handle → struct finished: served until a
                                      * listing asked after the finish drops it */
        struct strmap rejected;      /* "forge:job id" → struct rejected_note:
                                      * skipped jobs, warned once */

        struct loop_timer *tick_timer;
        bool tick_scheduled;
        struct loop_timer *periodic;
        int64_t next_prune;          /* monotonic */
        bool trimmed;                /* heap returned since the last instance */
        long long store_failures;    /* failed instance saves, ever */
        int store_error;             /* the latest one's -errno */
        int64_t store_warned;        /* monotonic: last "saves failing" warning */
        bool stopping;
        int fatal;                   /* -errno: stopped on an error */
};

/* A per-handle record: launch backoff (until, attempts) or the moment its
 * instance finished (at). Keyed by handle in d->backoff / d->finished. */
struct handle_note {
        int64_t at;                  /* monotonic */
        int64_t until;               /* wall ms */
        int attempts;
        char handle[FORGEJO_HANDLE_MAX + 1];
};

/* "forge index:handle" keys of merged jobs; handles are bounded by the
 * parser, so nothing is ever cut. */
#define MERGE_KEY_MAX (24 + FORGEJO_HANDLE_MAX + 1)

/* Every fresh or stale listing's jobs, merged by (forge, handle). */
struct merged {
        struct scaler_job *jobs;
        const struct djob **src;
        size_t n;
        struct strmap by_key;      /* "forge:handle" → index+1 */
        char (*keys)[MERGE_KEY_MAX];
};

/* daemon.c */
void daemon_schedule_tick(struct daemon *d);
/* A warm instance of pool ran a job and ended; since: its claim as seen
 * (monotonic), or its end when the claim was never seen. */
void daemon_note_warm_done(struct daemon *d, int pool, int64_t since);
void daemon_pool_outcome(struct daemon *d, int pool, bool failed);
int64_t daemon_wall_ms(void);
/* Exponential from base, doubled per failure, capped at a minute, ±25 %. */
int64_t daemon_backoff_ms(int64_t base, int failures);
/* Whether an answer came from a forge that works (see api.c: forge_up). */
bool daemon_forge_answered(const struct forgejo_result *res);

/* demand.c */
/* Polls the group's listing after delay ms (and on, every interval). */
void demand_poll(struct daemon *d, struct group *g, int64_t delay);
/* The group's latest listing succeeded and is recent enough to act on:
 * stop, verify. A stale one still counts as demand (last known). */
bool demand_group_fresh(struct daemon *d, const struct group *g);
/* Seconds since the group's last good listing; -1 when it never had one. */
double demand_group_age_s(struct daemon *d, const struct group *g);
/* Stops polling a group that no pool reads; a listing in flight is
 * ignored when it returns. */
void demand_group_stop(struct daemon *d, struct group *g);
/* First poll of a group made by a reload. */
void demand_group_start(struct daemon *d, struct group *g);
/* A broker group's snapshot: its pool's held tasks, as of now (jobs taken). */
void demand_group_replace(struct daemon *d, struct group *g, struct djob *jobs, size_t n);
void demand_djobs_free(struct djob *jobs, size_t n);
/* Empties an unused slot for reuse (nothing of it in flight). */
void demand_group_reset(struct daemon *d, struct group *g);
/* Every listing merged for a tick (release with demand_merged_done). */
int demand_gather(struct daemon *d, struct merged *m, int64_t wall);
void demand_merged_done(struct merged *m);
/* Gets or creates the note of handle in m; NULL for an empty handle or OOM. */
struct handle_note *demand_handle_note(struct strmap *m, const char *handle);
/* The job of handle ended on our side: served until a listing asked later. */
void demand_note_finished(struct daemon *d, const char *handle);
/* For the scaler: false while the handle's launches are held back. */
bool demand_handle_allowed(void *ud, const char *handle);
/* Wall ms the handle was first seen waiting; fallback when unknown. */
int64_t demand_first_seen(struct daemon *d, const char *handle, int64_t fallback);
/* Forgets what no listing has returned for long. */
void demand_expire(struct daemon *d);
void demand_free(struct daemon *d);

/* instance.c */
int inst_launch(struct daemon *d, int pool, const struct djob *job, int64_t job_seen_ms);
void inst_start_registration(struct daemon *d, struct inst *in);
void inst_stop(struct daemon *d, struct inst *in, const char *reason, enum store_state final);
void inst_verify(struct daemon *d, struct inst *in);
/* A row loaded at start (pool: its index, -1 when gone): adopts its
 * worker through the provider if it runs on, and carries on from the row.
 * Returns 0 or -ENOMEM. */
int inst_resume(struct daemon *d, int pool, const struct store_instance *row);
void inst_remove(struct daemon *d, struct inst *in);
/* Writes the row. On failure the row stays unsaved (retried by the state
 * machine and inst_flush) and the caller must not do what depends on it. */
int inst_save(struct daemon *d, struct inst *in);
/* Retries the saves that failed; returns how many rows are still unsaved. */
size_t inst_flush(struct daemon *d);
const char *inst_launch_result(const struct inst *in);
void inst_free_all(struct daemon *d);

/* reaper.c */
/* Deletes the group's registrations that no row holds (by id). */
void reaper_forge_sweep(struct daemon *d, int group);
/* Brings the group's next forge sweep forward: a registration may exist
 * that no row knows the id of. */
void reaper_suspect_leak(struct daemon *d, int group);
/* Stops the provider's workers of this controller that no row owns. */
void reaper_provider_sweep(struct daemon *d, size_t provider);
/* Frees orphans still being stopped (after the providers are done). */
void reaper_free(struct daemon *d);

/* pools.c */
/* Pools and groups of d->cfg at start. */
int pools_init(struct daemon *d);
/* Applies a new configuration (tokens loaded) to the pools: added ones
 * start, changed ones take their new settings, removed ones are retired
 * until their instances end. Settings only a restart can change refuse the
 * whole reload (logged). On success the daemon owns nc. */
int pools_reload(struct daemon *d, struct config *nc);
/* Whether the pool may launch, from its mode and its forge's version;
 * logs a refusal once. */
void pools_enable(struct daemon *d, struct dpool *dp);
void pools_forget_retired(struct daemon *d);
/* At start, for a live row whose pool the configuration no longer has: a
 * retired pool for it (made once per name, with default timeouts), so its
 * instance finishes like one of a pool removed by a reload. Its index, or
 * -ENOENT when the row's forge or provider is gone too. */
int pools_retired_for_row(struct daemon *d, const struct store_instance *row);
void pools_free(struct daemon *d);

/* api.c */
int api_init(struct daemon *d);
void api_done(struct daemon *d);
void api_count_launch(struct daemon *d, const struct inst *in, const char *result);
void api_observe_wait(struct daemon *d, const struct inst *in, double seconds);
/* create() to STARTED: the provider's own part of a launch. */
void api_observe_worker_start(struct daemon *d, const struct inst *in, double seconds);
/* what: "job" (a listed job skipped) or "listing_too_large". */
void api_count_rejected(struct daemon *d, const char *forge, const char *what);
void api_forge_hook(void *ud, const struct forgejo_event *ev);
/* A worker's call the broker could not relay (the worker sends it again). */
void api_count_relay_failure(struct daemon *d, const char *pool, const char *method);
