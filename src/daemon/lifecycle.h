/* lifecycle.h: one instance's state machine as a pure transition function.
 * An event — what the engine, the provider, the scaler, a restart or a
 * timer reported — updates the instance's facts (its row and what is known
 * only in memory) and yields the side effects to carry out next, in order.
 * Every effect that acts outside the process comes after a SAVE of the row
 * that announces it: the executor (instance.c) runs the list in order,
 * stops at a save that fails and feeds SAVE_FAILED, and a later RETRY
 * yields what is still to do. The effects follow from the facts (level,
 * not edge), so a retry or a restart never needs to know what came before.
 * Never does I/O, never reads the clock: times come with the event. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "provider/provider.h"
#include "store/store.h"

/* The one engine operation in flight (engine.h). */
enum lifecycle_op {
        LIFECYCLE_OP_NONE = 0,
        LIFECYCLE_OP_ACQUIRE,          /* getting a runner identity */
        LIFECYCLE_OP_CHECK,            /* asking whether the runner took a job */
        LIFECYCLE_OP_RELEASE,          /* giving the identity up */
};

/* The worker as far as the provider has told. */
enum lifecycle_worker {
        LIFECYCLE_WORKER_NONE = 0,     /* not started (yet) */
        LIFECYCLE_WORKER_STARTING,     /* create() issued, no event yet */
        LIFECYCLE_WORKER_LIVE,         /* running */
        LIFECYCLE_WORKER_STOPPING,     /* stop() issued, EXITED to come */
        LIFECYCLE_WORKER_GONE,         /* exited, failed to start, or will never start */
};

/* What a claim check found. */
enum lifecycle_runner {
        LIFECYCLE_RUNNER_IDLE = 0,     /* registered, no job */
        LIFECYCLE_RUNNER_ACTIVE,       /* running a job */
        LIFECYCLE_RUNNER_GONE,         /* no longer exists: its job ended */
        LIFECYCLE_RUNNER_UNKNOWN,      /* the check failed */
};

struct lifecycle {
        struct store_instance *row;    /* borrowed: the persisted facts */
        bool unsaved;                  /* row differs from the store */
        bool stop_requested;
        bool finished;                 /* FINISH was yielded: nothing more */
        enum lifecycle_op op;
        enum lifecycle_worker worker;
        bool ran;                      /* a worker ran (or may have, before a restart) */
        bool created;                  /* create() returned 0: stop() may come before
                                        * STARTED (a pod that is never placed) */
        enum store_state final;        /* DONE or FAILED, once stopping completes */
        struct provider_exit exit;     /* how the worker ended (UNKNOWN until then) */
        int release_failures;          /* consecutive */
        int64_t release_after;         /* monotonic: no release before this */
        /* What claim checks saw, for the scaler. Monotonic ms, 0 = never. */
        int64_t verify_after;          /* no check before this */
        int64_t verify_asked;          /* the check in flight was asked */
        int64_t idle_checked;          /* a check asked then found the runner idle */
        int64_t claimed_mono;          /* the check that saw the claim was asked */
        int64_t runner_gone_since;
        int64_t idle_since;            /* wall ms: a warm instance idles since */
        /* What the effects after the latest SAVE assumed would happen: a
         * failed save puts it back (SAVE_FAILED). */
        struct {
                enum lifecycle_op op;
                enum lifecycle_worker worker;
                bool finished;
        } held;
};

enum lifecycle_event_type {
        LIFECYCLE_EV_LAUNCH,           /* its REGISTERING row is committed */
        LIFECYCLE_EV_RESUME,           /* its row was loaded at start */
        LIFECYCLE_EV_ACQUIRED,         /* the engine got an identity */
        LIFECYCLE_EV_ACQUIRE_FAILED,
        LIFECYCLE_EV_CREATED,          /* create() returned: ref to persist (may be NULL) */
        LIFECYCLE_EV_STARTED,          /* the worker runs */
        LIFECYCLE_EV_START_FAILED,     /* create() failed, at once or later */
        LIFECYCLE_EV_EXITED,
        LIFECYCLE_EV_STOP_FAILED,      /* stop() refused: the worker is taken for gone */
        LIFECYCLE_EV_CHECK,            /* the scaler asks for a claim check */
        LIFECYCLE_EV_CHECK_FAILED,     /* the check could not be started */
        LIFECYCLE_EV_CHECKED,
        LIFECYCLE_EV_STOP,             /* the scaler (or a restart) stops it */
        LIFECYCLE_EV_RELEASED,
        LIFECYCLE_EV_RELEASE_FAILED,   /* try again later */
        LIFECYCLE_EV_RELEASE_IMPOSSIBLE, /* its forge or scope is no longer configured */
        LIFECYCLE_EV_SAVE_FAILED,      /* the SAVE just yielded failed */
        LIFECYCLE_EV_RETRY,            /* a timer asked for: do what is still to do */
};

struct lifecycle_event {
        enum lifecycle_event_type type;
        int64_t wall;                  /* wall ms */
        int64_t mono;                  /* monotonic ms */
        /* ACQUIRED */
        int64_t runner_id;
        const char *runner_uuid;
        /* CREATED, STARTED, RESUME (adopted): the provider's reference */
        const char *ref;
        /* RESUME */
        bool adopted;                  /* the provider found its worker */
        bool pool_gone;                /* the row's pool is retired or lost */
        /* EXITED */
        struct provider_exit exit;
        /* CHECKED */
        enum lifecycle_runner runner;
        int64_t check_interval;        /* ms between checks of this pool */
        /* RELEASED: the identity no longer existed (Forgejo deletes an
         * ephemeral runner when its task ends). */
        bool was_gone;
        /* STOP */
        const char *reason;
        enum store_state final;
};

enum lifecycle_effect {
        LIFECYCLE_DO_SAVE,             /* write the row; on failure nothing after it runs */
        LIFECYCLE_DO_ACQUIRE,          /* engine acquire() */
        LIFECYCLE_DO_START_WORKER,     /* provider create() with the identity of this event */
        LIFECYCLE_DO_STOP_WORKER,      /* provider stop() */
        LIFECYCLE_DO_CHECK,            /* engine check() */
        LIFECYCLE_DO_CANCEL_CHECK,     /* engine cancel() of the check in flight */
        LIFECYCLE_DO_RELEASE,          /* engine release() */
        LIFECYCLE_DO_FINISH,           /* the row says how it ended: leftovers, counters, forget */
        LIFECYCLE_DO_BACKOFF,          /* hold the next launch for its job back */
        LIFECYCLE_DO_CLAIMED,          /* its job was claimed: wait time, plan again */
        LIFECYCLE_DO_PLAN,             /* the scaler has something new to consider */
        LIFECYCLE_DO_WARN_UNCLAIMED,   /* the worker quit without its job */
};

#define LIFECYCLE_EFFECTS_MAX 12

struct lifecycle_effects {
        enum lifecycle_effect v[LIFECYCLE_EFFECTS_MAX];
        size_t n;
        int64_t retry_ms;              /* > 0: send RETRY after this, unless
                                        * another event comes first */
};

/* A new instance's facts over its row (REGISTERING, inserted). */
void lifecycle_init(struct lifecycle *lc, struct store_instance *row);

/* Applies ev and fills out with what to do next. */
void lifecycle_step(struct lifecycle *lc, const struct lifecycle_event *ev, struct lifecycle_effects *out);

/* At a restart, before RESUME: whether to ask the provider for the row's
 * worker (a worker started before the crash may run on). */
bool lifecycle_wants_adopt(const struct store_instance *row);

/* For counters: "claimed", "failed" or "wasted". */
const char *lifecycle_result(const struct store_instance *row);

const char *lifecycle_effect_name(enum lifecycle_effect e);
