/* broker.h: the broker engine (docs/broker-mode.md). Each `mode: broker`
 * pool is one runner on the forge: the broker fetches its tasks (request
 * keys stored before each fetch), holds them, and each held task becomes
 * the job of a fresh worker, which fetches it from the broker's own
 * runner-protocol endpoint with credentials valid for that task only; its
 * logs and state are relayed upstream. To the core a held task is a job of
 * the pool's group and a worker an instance like any other (engine.h).
 * Never decides how many workers run (the scaler does), never writes a
 * task's payload to disk. */
#pragma once

#include <stdint.h>

#include "engine/engine.h"

struct daemon;
struct scaler_pool_stats;

extern const struct engine_ops engine_broker_ops;

/* Sets the broker up when the configuration has broker pools: the worker
 * endpoint listens, each pool's runner is loaded or registered, tasks held
 * before a restart are read back (their payloads fetched again with their
 * request keys). 0 or -errno (logged). */
int broker_init(struct daemon *d);
void broker_free(struct daemon *d);

/* After a reload: runners for added broker pools; removed ones fetch
 * nothing more and go with their last task. */
int broker_sync(struct daemon *d);

/* Before the tick's plan: every broker group's jobs are its held tasks. */
void broker_publish(struct daemon *d);

/* After the plan: how many tasks each broker pool has room to fetch. */
void broker_plan_done(struct daemon *d);

/* How workers reach the endpoint (their forge URL); NULL without a broker. */
const char *broker_worker_url(const struct daemon *d);

/* A broker pool as the API and the metrics show it. */
struct broker_pool_status {
        const char *runner;             /* "unregistered", "registering", "declaring",
                                         * "ready", "failing" (static) */
        int64_t runner_id;              /* 0 until registered */
        int room;                       /* tasks it may fetch now */
        int64_t tasks_version;
        int held, running, finishing;   /* tasks by state */
        int relays;                     /* worker calls waiting for the forge */
};
/* 0, or -ENOENT for a pool the broker does not run. */
int broker_pool_status(const struct daemon *d, const char *pool, struct broker_pool_status *ret);

/* The endpoint's port (tests); 0 without a broker. */
int broker_port(const struct daemon *d);
