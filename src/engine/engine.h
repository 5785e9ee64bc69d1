/* engine.h: what a pool's mode does on the forge for one instance, so the
 * instance code stays mode-neutral. An engine obtains a runner identity for
 * the worker (queue mode: an ephemeral runner registered over REST; broker
 * mode, later: credentials the daemon mints itself), gives it up when the
 * instance ends, and checks whether the runner took its job. Each operation
 * is asynchronous and answers through the inst_* callbacks below, never from
 * inside the call; at most one is in flight per instance (inst->op). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct daemon;
struct inst;

/* A runner identity; token is the engine's and wiped after the callback. */
struct engine_identity {
        int64_t id;
        const char *uuid;
        const char *token;
};

enum engine_runner {
        ENGINE_RUNNER_IDLE = 0,       /* registered, no job */
        ENGINE_RUNNER_ACTIVE,         /* running a job */
        ENGINE_RUNNER_GONE,           /* no longer exists: its job ended */
};

/* How an operation went: err 0 or -errno, with the forge's HTTP status (0:
 * no answer) and a reason for the log. */
struct engine_result {
        int err;
        long status;
        const char *reason;
};

struct engine_ops {
        const char *mode;
        /* 0: under way, inst_acquired() follows; -errno: nothing started. */
        int (*acquire)(struct daemon *d, struct inst *in);
        /* 0: under way, inst_released() follows; -ENOENT: the forge or scope
         * of the instance is no longer configured (nothing can be done);
         * other -errno: not started, try again later. */
        int (*release)(struct daemon *d, struct inst *in);
        /* 0: under way, inst_checked() follows; -errno: not started. */
        int (*check)(struct daemon *d, struct inst *in);
        /* Drops the operation in flight; its callback never comes. */
        void (*cancel)(struct inst *in);
        /* How many more acquisitions may start now for the pool's forge
         * (the core launches no more instances than that in one tick). */
        int (*slots)(const struct daemon *d, int pool);
};

extern const struct engine_ops engine_queue_ops;

/* The engine of the instance's pool. */
const struct engine_ops *engine_of(const struct daemon *d, const struct inst *in);
/* The engine of a pool. */
const struct engine_ops *engine_of_pool(const struct daemon *d, int pool);

/* instance.c: the answers. id is NULL on failure. */
void inst_acquired(struct daemon *d, struct inst *in, const struct engine_result *res,
                   const struct engine_identity *id);
/* was_gone: the identity no longer existed (for queue mode: Forgejo deleted
 * the ephemeral runner when its task ended). */
void inst_released(struct daemon *d, struct inst *in, const struct engine_result *res, bool was_gone);
void inst_checked(struct daemon *d, struct inst *in, const struct engine_result *res, enum engine_runner st);
