/* store.h: forgescale's durable state in SQLite (WAL). The only module that
 * includes sqlite3.h; owns the schema, its migrations and all SQL.
 * Every instance transition, and every broker fetch and task step, is
 * written here *before* its side effect, so a restart resumes from the rows. Never logs above debug, never does network
 * or process work, never called from a provider. Single-threaded use. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Instance state machine (see docs/state-machine.md):
 *   registering → starting → waiting → running → stopping → done
 *   any live state → stopping → failed (with a reason)
 * registering: row exists, POST runner not yet confirmed (runner_id 0) or
 *              confirmed but token file not yet written.
 * starting:    registration + token file exist, provider create() issued.
 * waiting:     worker runs and has not claimed a job (warm = idle).
 * running:     the job is claimed by this instance's runner.
 * stopping:    worker being stopped and/or registration being deleted.
 * done/failed: terminal; the row stays for history. */
enum store_state {
        STORE_REGISTERING = 0,
        STORE_STARTING,
        STORE_WAITING,
        STORE_RUNNING,
        STORE_STOPPING,
        STORE_DONE,
        STORE_FAILED,
        STORE_STATE_MAX,
};

const char *store_state_name(enum store_state s);   /* "registering", ... */
int store_state_parse(const char *s, enum store_state *ret);
static inline bool store_state_live(enum store_state s) { return s < STORE_DONE; }

#define STORE_NAME_MAX 128
#define STORE_REF_MAX 256
#define STORE_REASON_MAX 160

struct store_instance {
        int64_t id;                          /* rowid, set by insert */
        char name[STORE_NAME_MAX];           /* unique; also the runner name */
        char pool[STORE_NAME_MAX];
        char forge[STORE_NAME_MAX];
        char scope[STORE_NAME_MAX * 2];      /* "org/acme", "instance", ... */
        char provider[STORE_NAME_MAX];
        enum store_state state;
        bool warm;                           /* launched without a handle */
        int64_t job_id;                      /* 0 when unknown (warm) */
        char handle[64];                     /* "" when warm */
        int64_t runner_id;                   /* 0 until registered */
        char runner_uuid[40];
        char provider_ref[STORE_REF_MAX];    /* provider's handle (pid:start) */
        int64_t created_ms;                  /* wall clock, ms since epoch */
        int64_t state_ms;                    /* when state last changed */
        int64_t job_seen_ms;                 /* job first seen waiting, 0 = n/a */
        int64_t claimed_ms;                  /* job claimed, 0 = not yet */
        int exit_code;                       /* -1 unknown */
        bool runner_deleted;                 /* registration confirmed gone */
        char reason[STORE_REASON_MAX];       /* why stopping/failed, "" */
};

/* Broker mode (see docs/state-machine.md, "Broker tasks"). Only
 * bookkeeping is stored: task payloads carry secrets and never reach the
 * database. */
#define STORE_KEY_MAX 64        /* request keys: 1..63 bytes of [A-Za-z0-9._-] */

/* A FetchTask whose x-runner-request-key is written (and committed) before
 * the request goes out: when the answer is lost, repeating the fetch with
 * the same key after a restart makes the forge hand out the tasks it
 * assigned under that key again. */
struct store_fetch {
        char pool[STORE_NAME_MAX];           /* non-empty */
        char request_key[STORE_KEY_MAX];
        int64_t created_ms;                  /* wall clock, ms since epoch */
};

/* A task's states only move forward (skipping is allowed) and done is
 * final; the database refuses anything else with -EINVAL. 0 is no state,
 * so a zeroed struct is refused. */
enum store_task_state {
        STORE_TASK_HELD = 1,     /* fetched; no worker has fetched it from us yet */
        STORE_TASK_RUNNING,      /* a worker fetched it from us */
        STORE_TASK_FINISHING,    /* a final result is being reported upstream */
        STORE_TASK_DONE,         /* the forge has its final result (or no longer knows it): terminal */
};

const char *store_task_state_name(enum store_task_state st);   /* "held", ...; "unknown" */
int store_task_state_parse(const char *s, enum store_task_state *ret); /* -EINVAL */

struct store_task {
        int64_t id;                          /* rowid, set by insert */
        char pool[STORE_NAME_MAX];           /* non-empty */
        char forge[STORE_NAME_MAX];          /* non-empty */
        int64_t task_id;                     /* the forge's task id, > 0; unique per (forge, task_id) */
        int64_t job_id;                      /* >= 0 */
        char request_key[STORE_KEY_MAX];     /* the fetch that got it */
        enum store_task_state state;
        char instance[STORE_NAME_MAX];       /* the worker instance serving it now, "" none */
        int attempts;                        /* workers started for it, >= 0 */
        int64_t prelude_rows;                /* log rows forgescale wrote upstream ahead of the worker's, >= 0 */
        int64_t log_acked;                   /* rows the forge acked (upstream index), >= 0 */
        int result;                          /* runner.v1 Result number, >= 0; 0 until final */
        int64_t created_ms, state_ms;        /* wall clock, ms since epoch */
        char reason[STORE_REASON_MAX];
};

struct store;

/* Opens (creating if needed) the database at path, mode 0600, WAL,
 * synchronous=NORMAL (durable across a daemon crash; kill -9 loses nothing
 * committed), busy timeout, foreign keys on; migrates the schema.
 * -EINVAL for another program's database (left untouched), -ENOTSUP when
 * the schema is newer than this binary, -EUCLEAN for a damaged file or one
 * that is not a database (any later call may also find damage and say so
 * with -EUCLEAN), -ENOSPC on a full disk. */
int store_open(const char *path, struct store **ret);
void store_close(struct store *s);   /* accepts NULL */

/* Whether the file opened is still at its path: -ENOENT when it was
 * removed, -ESTALE when another file took its place. SQLite keeps writing
 * to the open file either way, and a restart would find none of it. */
int store_check_file(struct store *s);

/* Small key/value table for daemon metadata (controller id, schema).
 * get: -ENOENT, -ERANGE when buf is too small. set: -EPERM for
 * "schema_version". Keys up to 127 bytes, values up to 65,535. */
int store_meta_get(struct store *s, const char *key, char *buf, size_t n); /* -ENOENT */
int store_meta_set(struct store *s, const char *key, const char *value);

/* Inserts a new instance; sets inst->id. -EEXIST when another live instance
 * already has the same non-empty handle (enforced by a unique partial index,
 * so it holds across restarts) or the same name. */
int store_instance_insert(struct store *s, struct store_instance *inst);

/* Writes every mutable field of inst (by id). -ENOENT if no such row;
 * -EINVAL when an identity field changed (name, pool, forge, scope,
 * provider, warm, created_ms) or the state would move backward or leave a
 * terminal state (a trigger refuses it; skipping states is allowed);
 * -EEXIST when the handle is held by another live instance;
 * -ENAMETOOLONG for a string field without a terminating NUL. */
int store_instance_update(struct store *s, const struct store_instance *inst);

int store_instance_get(struct store *s, int64_t id, struct store_instance *ret);
int store_instance_get_by_name(struct store *s, const char *name, struct store_instance *ret);

/* All instances in a live state, ordered by id. *ret is malloc'd (caller
 * frees), *n may be 0 (then *ret may be NULL). */
int store_instance_list_live(struct store *s, struct store_instance **ret, size_t *n);

/* Terminal instances that still have runner_deleted == false (a
 * registration we could not confirm deleted yet). */
int store_instance_list_undeleted(struct store *s, struct store_instance **ret, size_t *n);

/* Counts by (pool, state) over all rows; cb is called once per pair. */
int store_instance_count(struct store *s,
                         void (*cb)(void *ud, const char *pool, enum store_state st, int64_t n),
                         void *ud);

/* Records a fetch before it is sent. -EEXIST for a (pool, request_key)
 * already recorded; -EINVAL for an empty pool or a key that is empty or has
 * a byte outside [A-Za-z0-9._-] (the schema's CHECK); -ENAMETOOLONG for a
 * field without a terminating NUL. */
int store_fetch_insert(struct store *s, const struct store_fetch *f);
/* Forgets a fetch; 0 also when there was none. */
int store_fetch_delete(struct store *s, const char *pool, const char *key);
/* Every recorded fetch, oldest first (created_ms, then insertion order).
 * *ret is malloc'd (caller frees), *ret_n may be 0 (then *ret may be NULL). */
int store_fetch_list(struct store *s, struct store_fetch **ret, size_t *ret_n);

/* Inserts a task; sets t->id. -EEXIST when (forge, task_id) is already
 * recorded, in any state; -EINVAL for task_id <= 0, a bad request key, an
 * empty pool or forge, a negative count (schema CHECKs) or a state outside
 * the enum; -ENAMETOOLONG for a string field without a terminating NUL. */
int store_task_insert(struct store *s, struct store_task *t);
/* Writes every mutable field of t (job_id, state, instance, attempts,
 * prelude_rows, log_acked, result, state_ms, reason) by id. -ENOENT when no
 * such row; -EINVAL when an identity field changed (pool, forge, task_id,
 * request_key, created_ms), the state would move backward or leave done,
 * or a CHECK fails. */
int store_task_update(struct store *s, const struct store_task *t);
/* -ENOENT when the forge's task is not recorded. */
int store_task_get(struct store *s, const char *forge, int64_t task_id, struct store_task *ret);
/* Tasks not done, oldest first (created_ms, then id). *ret as above. */
int store_task_list_live(struct store *s, struct store_task **ret, size_t *ret_n);

/* Deletes history older than before_ms (the daemon passes now minus a day):
 *  - terminal instances whose state_ms is older and whose runner_deleted is
 *    true (the others are the only record that a forge registration may
 *    still exist);
 *  - done tasks whose state_ms is older;
 *  - fetches created before it that no live task came from (a live task's
 *    fetch is how its payload is fetched again after a restart).
 * Returns the number of rows deleted or -errno. */
int store_prune(struct store *s, int64_t before_ms);

/* Batching: the daemon wraps each loop tick's writes in one transaction to
 * keep commit cost low under load; side effects start only after the
 * commit. Nested begin is -EBUSY; commit/rollback outside a transaction
 * -EINVAL. If SQLite abandons a batch by itself (OOM, disk full, I/O
 * error) every later write in it and the commit return that error and
 * rollback returns 0. Row ids are never reused (AUTOINCREMENT). */
int store_begin(struct store *s);
int store_commit(struct store *s);
int store_rollback(struct store *s);
