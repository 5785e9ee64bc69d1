/* broker_int.h: the broker engine's internal types, shared by broker.c
 * (the upstream runner of each broker pool, held tasks, the engine
 * operations) and bendpoint.c (the runner-protocol endpoint workers talk
 * to). Not used outside src/engine/. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "daemon/daemon_int.h"
#include "forge/rclient.h"
#include "forge/rpcodec.h"
#include "store/store.h"

struct http_request;

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
        char dir[PATH_MAX / 2];         /* state_dir/broker */
};

/* broker.c, for bendpoint.c */
struct bworker *broker_worker_auth(struct broker *b, const char *uuid, const char *token);
/* The worker's FetchTask: its task (a new reference) or NULL for none, and
 * its protobuf bytes when the forge sent them (borrowed; NULL otherwise).
 * 0, or -errno when the task cannot be handed out now (a store failure). */
int broker_worker_fetch(struct broker *b, struct bworker *w, const char *request_key, json_t **ret_task,
                        const void **ret_pb, size_t *ret_pb_len);
/* Relays the worker's UpdateLog/UpdateTask upstream; answers req when the
 * forge does. msg is the request decoded (protojson), body its bytes as
 * the worker sent them (inflated): when both sides speak proto the bytes
 * go on with only the row indexes changed, so fields this build does not
 * know pass through. 0 (deferred); -EACCES (another task's id), -ESTALE
 * (the worker has no task), -EPERM (it has not taken its task yet),
 * -ERANGE (a row index below 0 or too large to shift), or another -errno
 * (the forge cannot be reached now). */
int broker_worker_relay(struct broker *b, struct bworker *w, const char *method, json_t *msg,
                        const void *body, size_t len, struct http_request *req, enum rpcodec codec,
                        bool gzip);

/* bendpoint.c */
int bendpoint_start(struct broker *b, const char *listen);
void bendpoint_stop(struct broker *b);
/* Answers a deferred worker request with msg (protojson) in its codec, or
 * a Connect error when msg is NULL. */
void bendpoint_answer(struct http_request *req, enum rpcodec codec, bool gzip, const char *method,
                      json_t *msg, const struct rp_error *err);
/* The same with an answer already encoded in protobuf. */
void bendpoint_answer_raw(struct http_request *req, bool gzip, const void *body, size_t len);
