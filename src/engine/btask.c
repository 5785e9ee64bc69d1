/* btask.c: a task a broker pool holds, from the fetch that got it to the
 * forge knowing its end: its row (written before what depends on it), the
 * rows forgescale writes into its log (in order, retried until acked, a
 * count the worker's rows are shifted by), heartbeats, the relay of its
 * worker's reports, and the failure report when its worker left it
 * unfinished. Never starts a worker or decides to (the core and the
 * scaler do) and never writes a payload to disk. */
#include "engine/broker.h"
#include "engine/broker_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/brelay.h"
#include "util/log.h"

/* The forge stops a task it has not heard of for its zombie timeout
 * (Forgejo: 10 minutes); one UpdateTask per task this often while nobody
 * else reports keeps it alive. */
#define HEARTBEAT_MS 30000
#define NOTES_MAX 64
#define NOTE_MAX 512
#define TASKS_MAX 100000

struct btask *btask_by_handle(struct broker *b, const char *handle)
{
        for (size_t i = 0; i < b->n_tasks; i++)
                if (strcmp(b->tasks[i]->handle, handle) == 0)
                        return b->tasks[i];
        return NULL;
}

struct btask *btask_by_id(struct broker *b, const struct bpool *bp, int64_t id)
{
        for (size_t i = 0; i < b->n_tasks; i++)
                if (b->tasks[i]->bp == bp && b->tasks[i]->row.task_id == id)
                        return b->tasks[i];
        return NULL;
}

int btask_save(struct broker *b, struct btask *t)
{
        t->row.state_ms = daemon_wall_ms();
        int r = store_task_update(b->d->store, &t->row);
        if (r < 0)
                log_error("broker", "cannot save task; what depends on it waits", KI("task", t->row.task_id),
                          KS("pool", t->row.pool), KERR(r));
        return r;
}

static void set_state(struct btask *t, enum store_task_state st)
{
        t->row.state = st;
}

/* ---- tasks -------------------------------------------------------------------- */


void btask_free(struct btask *t)
{
        if (!t)
                return;
        rclient_cancel(t->note_call);
        rclient_cancel(t->state_call);
        btask_drop_relays(t);
        for (size_t i = 0; i < t->n_notes; i++)
                free(t->notes[i]);
        free(t->notes);
        json_decref(t->task);
        if (t->task_pb)
                explicit_bzero(t->task_pb, t->task_pb_len);
        free(t->task_pb);
        free(t);
}

void btask_forget(struct broker *b, struct btask *t)
{
        if (t->w)
                t->w->task = NULL;
        for (size_t i = 0; i < b->n_tasks; i++)
                if (b->tasks[i] == t) {
                        b->tasks[i] = b->tasks[--b->n_tasks];
                        break;
                }
        btask_free(t);
}

struct btask *btask_add(struct broker *b, struct bpool *bp, const struct store_task *row)
{
        struct btask *t;

        if (b->n_tasks >= TASKS_MAX)
                return NULL;
        if (b->n_tasks == b->cap_tasks) {
                size_t nc = b->cap_tasks ? b->cap_tasks * 2 : 64;
                struct btask **nt = realloc(b->tasks, nc * sizeof(*nt));
                if (!nt)
                        return NULL;
                b->tasks = nt;
                b->cap_tasks = nc;
        }
        t = calloc(1, sizeof(*t));
        if (!t)
                return NULL;
        t->row = *row;
        t->bp = bp;
        t->exit_code = -1;
        t->last_up = broker_now(b);
        snprintf(t->handle, sizeof(t->handle), "task:%" PRId64, row->task_id);
        b->tasks[b->n_tasks++] = t;
        return t;
}

/* Queues a row for the task's log (sent in order, retried until acked). */
void btask_note(struct btask *t, const char *fmt, ...)
{
        char buf[NOTE_MAX];
        va_list ap;

        if (t->n_notes >= NOTES_MAX)
                return;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        char **nn = realloc(t->notes, (t->n_notes + 1) * sizeof(*nn));
        if (!nn)
                return;
        t->notes = nn;
        if ((nn[t->n_notes] = strdup(buf)))
                t->n_notes++;
}

/* The forge no longer runs the task (cancelled, or ended another way). */
static void upstream_ended(struct broker *b, struct btask *t, int result)
{
        if (t->upstream_final)
                return;
        t->upstream_final = true;
        if (!t->row.result)
                t->row.result = result;
        if (t->row.state == STORE_TASK_HELD) {
                /* Nobody of ours runs it yet: its booting worker is stopped
                 * by the scaler once the task leaves the demand. */
                btask_note(t, "forgescale: the job ended on the forge (%s) before a worker connected",
                     rp_result_name((enum rp_result)result));
                t->notes_no_more = true;
                set_state(t, STORE_TASK_FINISHING);
                snprintf(t->row.reason, sizeof(t->row.reason), "cancelled");
                btask_save(b, t);
        }
        log_info("broker", "task ended on the forge", KI("task", t->row.task_id), KS("pool", t->row.pool),
                 KS("result", rp_result_name((enum rp_result)result)));
        daemon_schedule_tick(b->d);
}

/* ---- the log rows and the final report we send --------------------------------- */

static void drop_notes(struct btask *t, size_t k)
{
        for (size_t i = 0; i < k; i++)
                free(t->notes[i]);
        memmove(t->notes, t->notes + k, (t->n_notes - k) * sizeof(*t->notes));
        t->n_notes -= k;
}

static void on_note(void *ud, const struct rclient_result *res, json_t *resp)
{
        struct btask *t = ud;
        struct broker *b = t->bp->d->broker;
        size_t sent = t->sending;

        t->note_call = NULL;
        t->sending = 0;
        if (res->err == -EPROTO && res->cerr.code == RP_CODE_ALREADY_EXISTS) {
                /* The log is archived: the task is over on the forge. */
                drop_notes(t, t->n_notes);
                t->notes_no_more = false;
                btask_kick(b, t);
                return;
        }
        if (res->err < 0) {
                t->failures++;
                t->retry_at = broker_now(b) + daemon_backoff_ms(1000, t->failures);
                return;
        }
        t->failures = 0;
        t->last_up = broker_now(b);
        int64_t ack = broker_j_i64(resp, "ackIndex");
        if (ack > t->row.log_acked)
                t->row.log_acked = ack;
        if (t->probing) {
                /* Rows queued before a crash may never have reached the
                 * forge. A worker's rows go at prelude_rows: the forge must
                 * have exactly that many first, or it would take none of
                 * them. Held tasks just continue at the forge's count. */
                t->probing = false;
                if (t->row.state != STORE_TASK_HELD && ack < t->row.prelude_rows) {
                        t->notes_from = ack;
                        for (int64_t i = ack; i < t->row.prelude_rows; i++)
                                btask_note(t, "forgescale: (a row lost when forgescale restarted)");
                } else if (t->row.state == STORE_TASK_HELD) {
                        t->notes_from = ack;
                }
                btask_kick(b, t);
                return;
        }
        /* The forge appends rows at its own count only (an index past it
         * writes nothing, rows it has are skipped): an ack of exactly what
         * we sent means ours are in; any other ack is where the next try
         * must start. */
        if (ack == t->notes_from + (int64_t)sent) {
                drop_notes(t, sent);
                if (!t->n_notes)
                        t->notes_no_more = false;
        }
        t->notes_from = ack;
        btask_kick(b, t);
}

static int send_notes(struct broker *b, struct btask *t)
{
        json_t *req = json_object(), *rows = json_array();
        int r = -ENOMEM;

        if (!req || !rows)
                goto out;
        struct rp_ts now = rp_ts_now();
        char ts[40];
        rp_ts_format(now, ts, sizeof(ts));
        for (size_t i = 0; i < t->n_notes && !t->probing; i++)
                json_array_append_new(rows, json_pack("{s:s,s:s}", "time", ts, "content", t->notes[i]));
        t->sending = t->probing ? 0 : t->n_notes;
        broker_j_set_i64(req, "taskId", t->row.task_id);
        /* A probe asks with no rows: the answer is the forge's count. */
        broker_j_set_i64(req, "index", t->probing && t->row.state != STORE_TASK_HELD ? t->row.prelude_rows : t->notes_from);
        json_object_set(req, "rows", rows);
        if (t->notes_no_more && !t->probing)
                json_object_set_new(req, "noMore", json_true());
        r = rclient_call(t->bp->rc, RP_SVC_RUNNER "UpdateLog", req, NULL, on_note, t, &t->note_call);
out:
        json_decref(rows);
        json_decref(req);
        return r;
}

static void on_state(void *ud, const struct rclient_result *res, json_t *resp)
{
        struct btask *t = ud;
        struct broker *b = t->bp->d->broker;

        t->state_call = NULL;
        if (res->err < 0) {
                t->failures++;
                t->retry_at = broker_now(b) + daemon_backoff_ms(1000, t->failures);
                if (res->err == -EPROTO && t->row.state == STORE_TASK_FINISHING &&
                    (res->cerr.code == RP_CODE_NOT_FOUND || res->cerr.code == RP_CODE_INTERNAL ||
                     res->cerr.code == RP_CODE_PERMISSION_DENIED || res->cerr.code == RP_CODE_UNAUTHENTICATED)) {
                        /* The forge no longer has the task as ours: nothing
                         * left to report. */
                        log_warn("broker", "the forge refused the task's final report; giving it up",
                                 KI("task", t->row.task_id), KS("reason", res->cerr.message));
                        t->final_sent = true;
                        btask_kick(b, t);
                }
                return;
        }
        t->failures = 0;
        t->last_up = broker_now(b);
        int result = 0;
        const json_t *st = json_object_get(resp, "state");
        const char *rs = json_string_value(json_object_get(st, "result"));
        enum rp_result rr;
        if (rs && rp_result_parse(rs, &rr) == 0)
                result = (int)rr;
        else if (json_is_integer(json_object_get(st, "result")))
                result = (int)json_integer_value(json_object_get(st, "result"));
        if (t->row.state == STORE_TASK_FINISHING) {
                t->final_sent = true;
        } else if (result != RP_RESULT_UNSPECIFIED) {
                upstream_ended(b, t, result);
        }
        btask_kick(b, t);
}

static int send_state(struct broker *b, struct btask *t, int result)
{
        json_t *req = json_object(), *st = json_object();
        int r = -ENOMEM;

        if (!req || !st)
                goto out;
        broker_j_set_i64(st, "id", t->row.task_id);
        if (result) {
                char ts[40];
                rp_ts_format(rp_ts_now(), ts, sizeof(ts));
                json_object_set_new(st, "result", json_string(rp_result_name((enum rp_result)result)));
                json_object_set_new(st, "stoppedAt", json_string(ts));
        }
        json_object_set(req, "state", st);
        r = rclient_call(t->bp->rc, RP_SVC_RUNNER "UpdateTask", req, NULL, on_state, t, &t->state_call);
out:
        json_decref(st);
        json_decref(req);
        return r;
}

/* What the task needs from the forge next: its notes, then (when
 * finishing) the failure report; a task that is over and has no worker
 * left is forgotten. */
void btask_kick(struct broker *b, struct btask *t)
{
        if (!t->bp->rc || t->bp->state != BP_READY || t->note_call || broker_now(b) < t->retry_at)
                return;
        if (t->probing || t->n_notes || t->notes_no_more) {
                if (send_notes(b, t) < 0)
                        t->retry_at = broker_now(b) + 1000;
                return;
        }
        if (t->row.state == STORE_TASK_FINISHING) {
                if (!t->final_sent && !t->upstream_final) {
                        if (!t->state_call && send_state(b, t, RP_RESULT_FAILURE) < 0)
                                t->retry_at = broker_now(b) + 1000;
                        return;
                }
                if (t->state_call)
                        return;
                set_state(t, STORE_TASK_DONE);
                if (btask_save(b, t) < 0) {
                        set_state(t, STORE_TASK_FINISHING);
                        t->retry_at = broker_now(b) + 1000;
                        return;
                }
                log_info("broker", "task finished", KI("task", t->row.task_id), KS("pool", t->row.pool),
                         KS("reason", t->row.reason));
        }
        if (t->row.state == STORE_TASK_DONE && !t->w && !t->relays && !t->state_call)
                btask_forget(b, t);
}

/* A task left unfinished by its last worker is reported failed, with a
 * note saying why. The row says FINISHING first. */
void btask_fail(struct broker *b, struct btask *t, const char *reason, const char *fmt, ...)
{
        char buf[NOTE_MAX];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        set_state(t, STORE_TASK_FINISHING);
        snprintf(t->row.reason, sizeof(t->row.reason), "%s", reason);
        t->row.result = RP_RESULT_FAILURE;
        if (btask_save(b, t) < 0) {
                /* Retried by the periodic pass: the row must say FINISHING
                 * before the forge hears of it. */
                t->retry_at = broker_now(b) + 1000;
        }
        /* The notes go after what the worker wrote and the forge acked. */
        if (!t->n_notes)
                t->notes_from = t->row.log_acked;
        btask_note(t, "%s", buf);
        t->notes_no_more = true;
        log_warn("broker", "task failed", KI("task", t->row.task_id), KS("pool", t->row.pool),
                 KS("reason", buf));
        btask_kick(b, t);
}


/* ---- fetched ------------------------------------------------------------------ */

/* The task's protobuf bytes, when the forge spoke proto: handed to a
 * worker that speaks proto as they came. */
static void keep_pb(struct btask *t, const struct brelay_task *pbs, size_t n_pbs)
{
        for (size_t i = 0; i < n_pbs; i++)
                if (pbs[i].id == t->row.task_id) {
                        void *copy = malloc(pbs[i].len ? pbs[i].len : 1);
                        if (!copy)
                                return;
                        memcpy(copy, pbs[i].pb, pbs[i].len);
                        if (t->task_pb)
                                explicit_bzero(t->task_pb, t->task_pb_len);
                        free(t->task_pb);
                        t->task_pb = copy;
                        t->task_pb_len = pbs[i].len;
                        return;
                }
}

void btask_take(struct broker *b, struct bpool *bp, const json_t *task, const char *key, size_t *ret_new,
                      const struct brelay_task *pbs, size_t n_pbs)
{
        int64_t id = broker_j_i64(task, "id");
        struct btask *t;

        if (id <= 0) {
                log_warn("broker", "the forge sent a task without an id; ignored", KS("pool", bp->name));
                return;
        }
        if ((t = btask_by_id(b, bp, id))) {
                json_decref(t->task);
                t->task = json_deep_copy(task);
                keep_pb(t, pbs, n_pbs);
                return;
        }
        struct dpool *dp = broker_pool_of(bp);
        struct store_task row = {
                .task_id = id, .job_id = id, .state = STORE_TASK_HELD,
                .created_ms = daemon_wall_ms(),
        };
        row.state_ms = row.created_ms;
        snprintf(row.pool, sizeof(row.pool), "%s", bp->name);
        snprintf(row.forge, sizeof(row.forge), "%s", dp ? dp->cfg->forge->name : "");
        snprintf(row.request_key, sizeof(row.request_key), "%s", key);
        int r = store_task_insert(b->d->store, &row);
        if (r < 0 && r != -EEXIST) {
                /* Unrecorded, it must not run: a restart would not know
                 * it. Its key stays stored, so it comes back. */
                log_error("broker", "cannot record a fetched task; it is fetched again later",
                          KI("task", id), KS("pool", bp->name), KERR(r));
                return;
        }
        if (r == -EEXIST && store_task_get(b->d->store, row.forge, id, &row) < 0)
                return;
        if (!(t = btask_add(b, bp, &row)))
                return;
        t->task = json_deep_copy(task);
        keep_pb(t, pbs, n_pbs);
        if (row.state == STORE_TASK_HELD && !row.prelude_rows) {
                struct dpool *p = broker_pool_of(bp);
                btask_note(t, "forgescale: pool %s holds this job for a worker (%s)", bp->name,
                     p ? p->cfg->provider->name : "?");
        }
        (*ret_new)++;
        log_info("broker", "task fetched", KI("task", id), KS("pool", bp->name));
}


/* ---- the worker endpoint's calls ------------------------------------------------- */

int btask_worker_fetch(struct broker *b, struct bworker *w, const char *request_key, json_t **ret_task,
                        const void **ret_pb, size_t *ret_pb_len)
{
        struct btask *t = w->task;

        *ret_task = NULL;
        *ret_pb = NULL;
        *ret_pb_len = 0;
        if (!t || !t->task || t->w != w || t->upstream_final)
                return 0;
        if (w->fetched) {
                /* Again only for a retry of the same request (its answer
                 * was lost): one task per worker. */
                if (!request_key || !w->fetch_key[0] || strcmp(request_key, w->fetch_key) != 0)
                        return 0;
                *ret_task = json_incref(t->task);
                *ret_pb = t->task_pb;
                *ret_pb_len = t->task_pb_len;
                return 0;
        }
        if (t->row.state == STORE_TASK_HELD && t->probing) {
                /* Where our rows end must be known before the worker's
                 * start (after a restart the forge is asked first): it
                 * asks again (one-job --wait). */
                return 0;
        }
        if (t->row.state == STORE_TASK_HELD) {
                /* The worker's rows follow ours: from here on every row
                 * index it sends is shifted by the rows we wrote. The row
                 * says RUNNING, and by how much, before it gets the task. */
                btask_note(t, "forgescale: worker %s connected", w->instance);
                t->row.prelude_rows = t->notes_from + (int64_t)t->n_notes;
                set_state(t, STORE_TASK_RUNNING);
                int r = btask_save(b, t);
                if (r < 0) {
                        set_state(t, STORE_TASK_HELD);
                        return r;
                }
                btask_kick(b, t);
        }
        w->fetched = true;
        snprintf(w->fetch_key, sizeof(w->fetch_key), "%s", request_key ? request_key : "");
        log_info("broker", "worker took its task", KS("instance", w->instance), KI("task", t->row.task_id));
        daemon_schedule_tick(b->d);
        *ret_task = json_incref(t->task);
        *ret_pb = t->task_pb;
        *ret_pb_len = t->task_pb_len;
        return 0;
}

void btask_drop_relays(struct btask *t)
{
        while (t->relays) {
                struct brelay *r = t->relays;
                struct rp_error e = { .code = RP_CODE_UNAVAILABLE };
                t->relays = r->next;
                rclient_cancel(r->call);
                snprintf(e.message, sizeof(e.message), "the task is no longer relayed");
                bendpoint_answer(r->req, r->codec, r->gzip, r->method, NULL, &e);
                free(r);
        }
}

static void relay_unlink(struct btask *t, struct brelay *r)
{
        for (struct brelay **p = &t->relays; *p; p = &(*p)->next)
                if (*p == r) {
                        *p = r->next;
                        return;
                }
}

/* What the forge's answer tells about the task (acks, a final result). */
static void note_answer(struct broker *b, struct btask *t, bool log, int64_t ack, int result)
{
        t->last_up = broker_now(b);
        if (log) {
                /* The end of dispatch: bench/broker-mode times it from
                 * "task fetched". */
                if (ack > t->row.prelude_rows && t->row.log_acked <= t->row.prelude_rows)
                        log_debug("broker", "first worker row acked", KI("task", t->row.task_id));
                if (ack > t->row.log_acked)
                        t->row.log_acked = ack;
                return;
        }
        if (result == RP_RESULT_UNSPECIFIED)
                return;
        /* Final, by the worker's report or by the forge (cancelled): the
         * worker learns it from this answer; the task is over for us. */
        t->upstream_final = true;
        if (!t->row.result)
                t->row.result = result;
        if (t->row.state != STORE_TASK_DONE && t->row.state != STORE_TASK_FINISHING) {
                set_state(t, STORE_TASK_DONE);
                if (btask_save(b, t) < 0)
                        set_state(t, STORE_TASK_RUNNING);
                daemon_schedule_tick(b->d);
        }
}

static void relay_failed(struct brelay *r, const struct rclient_result *res)
{
        /* The worker keeps the rows and sends them again: nothing is acked
         * that the forge did not ack. The pool runner's own trouble is not
         * the worker's: told unauthenticated, a runner gives up its job. */
        struct rp_error e = res->cerr;
        if (res->err != -EPROTO || e.code == RP_CODE_UNAUTHENTICATED)
                e.code = RP_CODE_UNAVAILABLE;
        api_count_relay_failure(r->t->bp->d, r->t->row.pool, r->method);
        bendpoint_answer(r->req, r->codec, r->gzip, r->method, NULL, &e);
}

static void on_relayed_raw(void *ud, const struct rclient_result *res, const void *body, size_t len)
{
        struct brelay *r = ud;
        struct btask *t = r->t;
        struct broker *b = t->bp->d->broker;
        bool log = strcmp(r->method, "UpdateLog") == 0;
        char full[64];
        void *out = NULL;
        size_t outlen = 0;
        int64_t ack;
        int result, rc;

        relay_unlink(t, r);
        snprintf(full, sizeof(full), RP_SVC_RUNNER "%s", r->method);
        if (res->err < 0) {
                relay_failed(r, res);
        } else if ((rc = brelay_shift_response(full, log, body, len, t->row.prelude_rows, &out, &outlen, &ack,
                                               &result)) < 0) {
                struct rclient_result bad = { .err = -EBADMSG };
                log_warn("broker", "the forge's answer to a relayed call does not decode", KS("method", full),
                         KERR(rc));
                snprintf(bad.cerr.message, sizeof(bad.cerr.message), "the forge's answer does not decode");
                relay_failed(r, &bad);
        } else {
                note_answer(b, t, log, ack, result);
                bendpoint_answer_raw(r->req, r->gzip, out, outlen);
        }
        free(out);
        free(r);
        btask_kick(b, t);
}

static void on_relayed(void *ud, const struct rclient_result *res, json_t *resp)
{
        struct brelay *r = ud;
        struct btask *t = r->t;
        struct broker *b = t->bp->d->broker;

        relay_unlink(t, r);
        if (res->err < 0) {
                relay_failed(r, res);
                free(r);
                return;
        }
        json_t *out = json_deep_copy(resp);
        if (out && strcmp(r->method, "UpdateLog") == 0) {
                int64_t ack = broker_j_i64(resp, "ackIndex");
                note_answer(b, t, true, ack, 0);
                int64_t wack = ack - t->row.prelude_rows;
                broker_j_set_i64(out, "ackIndex", wack > 0 ? wack : 0);
        } else if (out) {
                const json_t *st = json_object_get(resp, "state");
                const char *rs = json_string_value(json_object_get(st, "result"));
                enum rp_result rr = RP_RESULT_UNSPECIFIED;
                if (rs)
                        rp_result_parse(rs, &rr);
                note_answer(b, t, false, 0, (int)rr);
        }
        bendpoint_answer(r->req, r->codec, r->gzip, r->method, out, NULL);
        json_decref(out);
        free(r);
        btask_kick(b, t);
}

int btask_worker_relay(struct broker *b, struct bworker *w, const char *method, json_t *msg,
                        const void *body, size_t len, struct http_request *req, enum rpcodec codec,
                        bool gzip)
{
        struct btask *t = w->task;
        struct brelay *r;
        int64_t shift;
        int rc;

        if (!t)
                return -ESTALE;
        shift = t->row.prelude_rows;
        if (strcmp(method, "UpdateLog") == 0) {
                if (broker_j_i64(msg, "taskId") != t->row.task_id)
                        return -EACCES;
        } else if (strcmp(method, "UpdateTask") == 0) {
                if (broker_j_i64(json_object_get(msg, "state"), "id") != t->row.task_id)
                        return -EACCES;
        } else {
                return -ENOTSUP;
        }
        /* A worker that has not taken its task has no rows to shift yet
         * (prelude_rows is fixed when it fetches): its rows would land
         * among ours, and a result from it would end a job it never ran. */
        if (!w->fetched)
                return -EPERM;
        /* Indexes are shifted by prelude_rows on the way up: one below 0
         * or so large that the shift overflows is refused, not wrapped. */
        if (strcmp(method, "UpdateLog") == 0) {
                int64_t idx = broker_j_i64(msg, "index");
                if (idx < 0 || idx > INT64_MAX - shift)
                        return -ERANGE;
                broker_j_set_i64(msg, "index", idx + shift);
        } else {
                json_t *steps = json_object_get(json_object_get(msg, "state"), "steps");
                size_t i;
                json_t *s;
                json_array_foreach(steps, i, s) {
                        int64_t li = broker_j_i64(s, "logIndex");
                        if (li < 0 || li > INT64_MAX - shift)
                                return -ERANGE;
                }
                json_array_foreach(steps, i, s)
                        if (json_object_get(s, "logIndex") || json_object_get(s, "logLength"))
                                broker_j_set_i64(s, "logIndex", broker_j_i64(s, "logIndex") + shift);
        }
        /* Without the pool's runner (registering again) the forge would
         * answer unauthenticated, which ends a worker: it waits instead. */
        if (!t->bp->rc || !t->bp->token)
                return -ENOTCONN;
        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->t = t;
        r->req = req;
        r->codec = codec;
        r->gzip = gzip;
        snprintf(r->method, sizeof(r->method), "%s", method);
        char full[64];
        snprintf(full, sizeof(full), RP_SVC_RUNNER "%s", method);
        if (codec == RPCODEC_PROTO && b->upstream_codec == RPCODEC_PROTO) {
                void *out = NULL;
                size_t outlen = 0;
                r->raw = true;
                rc = brelay_shift_request(full, strcmp(method, "UpdateLog") == 0, body, len, shift, &out, &outlen);
                if (rc == 0)
                        rc = rclient_call_raw(t->bp->rc, full, RCLIENT_PROTO, out, outlen, NULL, on_relayed_raw, r,
                                              &r->call);
                free(out);
        } else {
                rc = rclient_call(t->bp->rc, full, msg, NULL, on_relayed, r, &r->call);
        }
        if (rc < 0) {
                free(r);
                return rc;
        }
        r->next = t->relays;
        t->relays = r;
        return 0;
}


/* How long a task may go without a word with the forge. A held task's
 * UpdateTask answer is the only way the broker hears that its job was
 * cancelled while the worker boots (a VM can take minutes, billed all the
 * while): it is asked at the pool's poll_interval, as a runner polls.
 * Once the worker reports, its own calls carry that news and the
 * heartbeat only keeps the zombie timeout away. */
static int64_t heartbeat_ms(struct btask *t)
{
        struct dpool *dp = t->row.state == STORE_TASK_HELD ? broker_pool_of(t->bp) : NULL;
        int64_t every = HEARTBEAT_MS;

        if (dp && dp->cfg->poll_interval_ms < every)
                every = dp->cfg->poll_interval_ms > BROKER_TICK_MS ? dp->cfg->poll_interval_ms : BROKER_TICK_MS;
        return every;
}

/* Every second: heartbeats for tasks the forge has not heard of lately,
 * and whatever notes or reports are due. */
void btask_tick(struct broker *b, int64_t now)
{
        for (size_t i = b->n_tasks; i-- > 0;) {
                struct btask *t = b->tasks[i];
                if (t->bp->state != BP_READY)
                        continue;
                if ((t->row.state == STORE_TASK_HELD || t->row.state == STORE_TASK_RUNNING) && !t->upstream_final &&
                    !t->state_call && !t->relays && now - t->last_up >= heartbeat_ms(t) && now >= t->retry_at) {
                        if (send_state(b, t, 0) < 0)
                                t->retry_at = now + 1000;
                        continue;
                }
                btask_kick(b, t);
        }
}
