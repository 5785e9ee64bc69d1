/* broker_int.h: the broker engine's internal types, shared by broker.c
 * (each broker pool's runner upstream, its fetches, worker credentials,
 * the engine operations), btask.c (a held task's life), bendpoint.c (the
 * runner-protocol endpoint workers talk to) and bstatus.c. Not used
 * outside src/engine/. */
#pragma once

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "daemon/daemon_int.h"
#include "forge/rclient.h"
#include "forge/rpcodec.h"
#include "store/store.h"
#include "util/strutil.h"

struct http_request;
struct brelay_task;

#define BROKER_TICK_MS 1000

/* A worker's runner identity, minted by the broker: valid for its one
 * task, revoked when its instance ends. */
struct bworker {
        char uuid[37];
        char token[65];                 /* 256 random bits, hex */
        char instance[STORE_NAME_MAX];
        struct btask *task;             /* NULL once the task is forgotten */
        char fetch_key[STORE_KEY_MAX];  /* the request key it fetched its task with */
        bool fetched;
};

/* A worker's call waiting for the forge's answer. */
struct brelay {
        struct btask *t;
        struct http_request *req;       /* the worker's deferred request */
        struct rclient_call *call;
        char method[16];                /* "UpdateLog" / "UpdateTask" */
        enum rpcodec codec;             /* the worker's */
        bool gzip;                      /* the worker accepts a gzip answer */
        bool raw;                       /* relayed as protobuf bytes, unknown
                                         * fields and all */
        struct brelay *next;
};

/* A task the broker holds for its pool. */
struct btask {
        struct store_task row;
        struct bpool *bp;
        json_t *task;                   /* the Task message (protojson); NULL until
                                         * fetched (again, after a restart) */
        void *task_pb;                  /* the same as the forge sent it in proto,
                                         * unknown fields and all; NULL in JSON */
        size_t task_pb_len;
        char handle[32];                /* "task:<id>": its job's handle in the core (a forge handle never has a colon) */
        struct bworker *w;              /* the worker serving it now */
        /* Rows forgescale writes upstream: the prelude before the worker
         * connects, a closing note when it failed. Sent in order, one
         * UpdateLog at a time, retried until acked. */
        char **notes;
        size_t n_notes;
        int64_t notes_from;             /* upstream index of notes[0] */
        bool notes_no_more;             /* close the log after the notes */
        size_t sending;                 /* notes in the UpdateLog in flight */
        bool probing;                   /* after a restart: asking the forge how
                                         * many rows it has before writing any */
        struct rclient_call *note_call;
        struct rclient_call *state_call;/* heartbeat or final report */
        int failures;                   /* consecutive upstream failures */
        int64_t last_up;                /* monotonic: last upstream answer */
        int64_t retry_at;               /* monotonic: next note/report attempt */
        bool final_sent;                /* the final UpdateTask was acked */
        bool upstream_final;            /* the forge says the task is over */
        int exit_code;                  /* the last worker's, -1 unknown */
        struct brelay *relays;          /* worker calls in flight upstream */
};

struct bpool {
        struct daemon *d;
        int pool;                       /* index in d->pools */
        char name[STORE_NAME_MAX];
        struct rclient *rc;
        enum { BP_NEW = 0, BP_REGISTERING, BP_DECLARING, BP_READY } state;
        int64_t runner_id;
        char uuid[64];
        char *token;                    /* the pool's runner token (secret) */
        char runner_name[STORE_NAME_MAX];
        struct forgejo_call *reg_call;
        struct rclient_call *call;      /* Register / Declare / FetchTask */
        int64_t tasks_version;
        char fetch_key[STORE_KEY_MAX];  /* stored, unanswered; reused until answered */
        char (*recover_keys)[STORE_KEY_MAX]; /* keys to fetch again after a restart */
        size_t n_recover, cap_recover;
        int room;                       /* tasks the scaler has room for */
        int failures;
        bool store_failing;             /* the latest fetch key could not be stored */
        int64_t next_fetch;             /* monotonic */
        struct loop_timer *timer;
        bool removed;                   /* its pool is gone: nothing new; its
                                         * runner is deleted with its last task */
        size_t forge_idx;               /* forges never change without a restart */
        char scope_text[STORE_NAME_MAX * 2];
        struct forgejo_call *del_call;  /* deleting a removed pool's runner */
};

struct broker {
        struct daemon *d;
        struct bpool **pools;
        size_t n_pools;
        struct btask **tasks;
        size_t n_tasks, cap_tasks;
        struct bworker **workers;
        size_t n_workers, cap_workers;
        struct http_server *http;       /* the worker endpoint */
        char url[512];                  /* how workers reach it */
        enum rpcodec upstream_codec;
        int worker_retries;
        struct loop_timer *timer;       /* heartbeats and retries, every second */
        int acquiring;                  /* acquisitions whose answer is to come */
        char dir[PATH_MAX / 2];         /* state_dir/broker */
};

/* ---- small helpers ---- */

static inline int64_t broker_now(const struct broker *b)
{
        return loop_now_ms(b->d->loop);
}

/* protojson int64: a string, or a number from a lenient peer; 0 when
 * absent (protojson omits zeros). */
static inline int64_t broker_j_i64(const json_t *o, const char *k)
{
        const json_t *v = json_object_get(o, k);

        if (json_is_integer(v))
                return (int64_t)json_integer_value(v);
        int64_t x;
        if (json_is_string(v) && strutil_parse_i64(json_string_value(v), &x) == 0)
                return x;
        return 0;
}

static inline int broker_j_set_i64(json_t *o, const char *k, int64_t v)
{
        char buf[24];

        snprintf(buf, sizeof(buf), "%" PRId64, v);
        return json_object_set_new(o, k, json_string(buf));
}

/* ---- broker.c ---- */

/* The pool's configuration and index now (reloads move pools); NULL once
 * its pool is gone. */
struct dpool *broker_pool_of(struct bpool *bp);
struct bworker *broker_worker_auth(struct broker *b, const char *uuid, const char *token);

/* ---- btask.c ---- */

struct btask *btask_add(struct broker *b, struct bpool *bp, const struct store_task *row);
/* Frees a task (its calls cancelled); btask_forget also takes it off the
 * broker's list. */
void btask_free(struct btask *t);
void btask_forget(struct broker *b, struct btask *t);
struct btask *btask_by_handle(struct broker *b, const char *handle);
struct btask *btask_by_id(struct broker *b, const struct bpool *bp, int64_t id);
/* Writes the row (logs a failure); 0 or -errno. */
int btask_save(struct broker *b, struct btask *t);
/* Queues a row for the task's log (sent in order, retried until acked). */
void btask_note(struct btask *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* What the task needs from the forge next; a task over and without a
 * worker is forgotten. */
void btask_kick(struct broker *b, struct btask *t);
/* Reports the task failed upstream, with a note saying why (the row says
 * finishing first). */
void btask_fail(struct broker *b, struct btask *t, const char *reason, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
/* A task in a FetchTask answer (new, or fetched again after a restart);
 * *ret_new counts the new ones. pbs: the answer's tasks as protobuf bytes
 * (NULL in JSON). */
void btask_take(struct broker *b, struct bpool *bp, const json_t *task, const char *key, size_t *ret_new,
                const struct brelay_task *pbs, size_t n_pbs);
/* Answers every worker call in flight upstream with unavailable. */
void btask_drop_relays(struct btask *t);
/* Every second: heartbeats, notes and reports due. */
void btask_tick(struct broker *b, int64_t now);

/* The worker's FetchTask: its task (a new reference) or NULL for none, and
 * its protobuf bytes when the forge sent them (borrowed; NULL otherwise).
 * 0, or -errno when the task cannot be handed out now (a store failure). */
int btask_worker_fetch(struct broker *b, struct bworker *w, const char *request_key, json_t **ret_task,
                       const void **ret_pb, size_t *ret_pb_len);
/* Relays the worker's UpdateLog/UpdateTask upstream; answers req when the
 * forge does. msg is the request decoded (protojson), body its bytes as
 * the worker sent them (inflated): when both sides speak proto the bytes
 * go on with only the row indexes changed, so fields this build does not
 * know pass through. 0 (deferred), or -errno: -EACCES (another task's),
 * -EPERM (the worker has not taken its task), -ERANGE (an index that
 * cannot be shifted), -ESTALE (no task), -ENOTCONN (the pool has no
 * runner now). */
int btask_worker_relay(struct broker *b, struct bworker *w, const char *method, json_t *msg, const void *body,
                       size_t len, struct http_request *req, enum rpcodec codec, bool gzip);

/* bendpoint.c */
int bendpoint_start(struct broker *b, const char *listen);
void bendpoint_stop(struct broker *b);
/* Answers a deferred worker request with msg (protojson) in its codec, or
 * a Connect error when msg is NULL. */
void bendpoint_answer(struct http_request *req, enum rpcodec codec, bool gzip, const char *method,
                      json_t *msg, const struct rp_error *err);
/* The same with an answer already encoded in protobuf. */
void bendpoint_answer_raw(struct http_request *req, bool gzip, const void *body, size_t len);
