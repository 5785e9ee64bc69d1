/* broker.c: the broker engine (broker.h). Owns each broker pool's runner
 * on the forge (credentials in state_dir/broker, 0600; registered once,
 * declared at every start; deleted when its pool is removed), its fetches
 * (request key stored before the request, reused until answered), the
 * credentials minted for workers, the engine operations the core calls,
 * and what the scaler sees of held tasks. A held task's own life is
 * btask.c's. Never starts or stops a worker (the core does, as the scaler
 * decides) and never keeps a payload on disk. */
#include "engine/broker.h"
#include "engine/broker_int.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/brelay.h"
#include "util/fsutil.h"
#include "util/hostport.h"
#include "util/log.h"
#include "util/secret.h"

#define RUNNER_FILE_MAX 4096

static const char *version_text = "forgescale";

/* ---- small helpers ---------------------------------------------------------- */

static struct dpool *pool_by_name(struct daemon *d, const char *name, int *ret_idx)
{
        for (size_t p = 0; p < d->n_pools; p++)
                if (strcmp(d->pools[p].cfg->name, name) == 0) {
                        if (ret_idx)
                                *ret_idx = (int)p;
                        return &d->pools[p];
                }
        return NULL;
}

struct dpool *broker_pool_of(struct bpool *bp)
{
        return pool_by_name(bp->d, bp->name, &bp->pool);
}

static struct bpool *bpool_named(struct broker *b, const char *name)
{
        for (size_t i = 0; i < b->n_pools; i++)
                if (strcmp(b->pools[i]->name, name) == 0)
                        return b->pools[i];
        return NULL;
}

/* ---- worker credentials -------------------------------------------------- */

static void worker_path(const struct broker *b, const char *instance, char *buf, size_t n)
{
        snprintf(buf, n, "%s/workers/%s", b->dir, instance);
}

static struct bworker *worker_by_instance(struct broker *b, const char *instance)
{
        for (size_t i = 0; i < b->n_workers; i++)
                if (strcmp(b->workers[i]->instance, instance) == 0)
                        return b->workers[i];
        return NULL;
}

static int worker_add(struct broker *b, struct bworker *w)
{
        if (b->n_workers == b->cap_workers) {
                size_t nc = b->cap_workers ? b->cap_workers * 2 : 16;
                struct bworker **nw = realloc(b->workers, nc * sizeof(*nw));
                if (!nw)
                        return -ENOMEM;
                b->workers = nw;
                b->cap_workers = nc;
        }
        b->workers[b->n_workers++] = w;
        return 0;
}

/* The credentials stop working at once; the file that lets a restarted
 * broker know an adopted worker goes too. */
static void worker_revoke(struct broker *b, struct bworker *w)
{
        char path[PATH_MAX];

        for (size_t i = 0; i < b->n_workers; i++)
                if (b->workers[i] == w) {
                        b->workers[i] = b->workers[--b->n_workers];
                        break;
                }
        if (w->task && w->task->w == w)
                w->task->w = NULL;
        worker_path(b, w->instance, path, sizeof(path));
        unlink(path);
        explicit_bzero(w->token, sizeof(w->token));
        free(w);
}

static struct bworker *worker_mint(struct broker *b, struct btask *t, const char *instance)
{
        struct bworker *w = calloc(1, sizeof(*w));
        char path[PATH_MAX], line[160];

        if (!w)
                return NULL;
        if (secret_uuid4(w->uuid) < 0 || secret_random_hex(w->token, 32) < 0)
                goto err;
        snprintf(w->instance, sizeof(w->instance), "%s", instance);
        w->task = t;
        /* Kept so that a restarted broker still knows the worker it adopts;
         * 0600 in state_dir, like the pool's own runner token. */
        worker_path(b, instance, path, sizeof(path));
        int n = snprintf(line, sizeof(line), "%s %s %" PRId64 "\n", w->uuid, w->token, t->row.task_id);
        int r = fs_write_file_0600(path, line, (size_t)n);
        explicit_bzero(line, sizeof(line));
        if (r < 0) {
                log_error("broker", "cannot write worker credentials", KS("path", path), KERR(r));
                goto err;
        }
        if (worker_add(b, w) < 0) {
                unlink(path);
                goto err;
        }
        return w;
err:
        explicit_bzero(w, sizeof(*w));
        free(w);
        return NULL;
}

/* At start: the credentials of a worker that may still run. */
static void worker_load(struct broker *b, struct btask *t)
{
        char path[PATH_MAX], *text = NULL, uuid[64], token[96];
        size_t len;
        long long tid = 0;

        worker_path(b, t->row.instance, path, sizeof(path));
        if (fs_read_regular(path, 512, &text, &len) < 0)
                return;
        if (sscanf(text, "%63s %95s %lld", uuid, token, &tid) == 3 && tid == t->row.task_id &&
            strlen(uuid) == 36 && strlen(token) == 64) {
                struct bworker *w = calloc(1, sizeof(*w));
                if (w) {
                        memcpy(w->uuid, uuid, 37);
                        memcpy(w->token, token, 65);
                        snprintf(w->instance, sizeof(w->instance), "%s", t->row.instance);
                        w->task = t;
                        w->fetched = t->row.state != STORE_TASK_HELD;
                        if (worker_add(b, w) == 0)
                                t->w = w;
                        else
                                free(w);
                }
        }
        explicit_bzero(token, sizeof(token));
        explicit_bzero(text, len);
        free(text);
}

struct bworker *broker_worker_auth(struct broker *b, const char *uuid, const char *token)
{
        if (!uuid || !token)
                return NULL;
        for (size_t i = 0; i < b->n_workers; i++) {
                struct bworker *w = b->workers[i];
                /* The uuid is no secret; the token is compared in
                 * constant time. */
                if (strcmp(w->uuid, uuid) == 0)
                        return secret_equal(w->token, token) ? w : NULL;
        }
        return NULL;
}

/* ---- the pool's runner on the forge ---------------------------------------------- */

static void bp_schedule(struct bpool *bp, int64_t delay);

static void runner_file(const struct broker *b, const struct bpool *bp, char *buf, size_t n)
{
        snprintf(buf, n, "%s/%s.runner", b->dir, bp->name);
}

static void bp_forget_runner(struct bpool *bp)
{
        secret_free(bp->token);
        bp->token = NULL;
        bp->runner_id = 0;
        bp->uuid[0] = '\0';
        rclient_set_identity(bp->rc, NULL, NULL);
}

/* Loads the pool's runner: 0, -ENOENT (none yet), or another -errno. */
static int runner_load(struct broker *b, struct bpool *bp)
{
        char path[PATH_MAX], *text = NULL;
        size_t len;
        json_t *j = NULL;
        struct dpool *dp = broker_pool_of(bp);
        int r;

        runner_file(b, bp, path, sizeof(path));
        if ((r = fs_read_regular(path, RUNNER_FILE_MAX, &text, &len)) < 0)
                return r;
        j = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
        explicit_bzero(text, len);
        free(text);
        const char *uuid = json_string_value(json_object_get(j, "uuid"));
        const char *token = json_string_value(json_object_get(j, "token"));
        const char *forge = json_string_value(json_object_get(j, "forge"));
        const char *scope = json_string_value(json_object_get(j, "scope"));
        int64_t id = broker_j_i64(j, "id");
        r = -EINVAL;
        if (!uuid || !token || !forge || !scope || id <= 0 || strlen(uuid) >= sizeof(bp->uuid))
                goto out;
        /* Registered for another forge or scope (the file outlived a
         * configuration change): that runner is not this pool's. */
        r = -ENOENT;
        if (!dp || strcmp(forge, dp->cfg->forge->name) != 0 || strcmp(scope, dp->cfg->scope_text) != 0)
                goto out;
        r = -ENOMEM;
        if (!(bp->token = strdup(token)))
                goto out;
        log_redact_add(bp->token);
        bp->runner_id = id;
        snprintf(bp->uuid, sizeof(bp->uuid), "%s", uuid);
        r = rclient_set_identity(bp->rc, bp->uuid, bp->token);
out:
        if (j) {
                json_t *tv = json_object_get(j, "token");
                if (json_is_string(tv))
                        explicit_bzero((char *)json_string_value(tv), json_string_length(tv));
        }
        json_decref(j);
        return r;
}

static int runner_save(struct broker *b, struct bpool *bp)
{
        char path[PATH_MAX];
        struct dpool *dp = broker_pool_of(bp);
        json_t *j;
        char *text;
        int r;

        if (!dp)
                return -ENOENT;
        j = json_pack("{s:I,s:s,s:s,s:s,s:s,s:s}", "id", (json_int_t)bp->runner_id, "uuid", bp->uuid,
                      "token", bp->token, "name", bp->runner_name, "forge", dp->cfg->forge->name,
                      "scope", dp->cfg->scope_text);
        if (!j)
                return -ENOMEM;
        text = json_dumps(j, JSON_INDENT(2));
        json_decref(j);
        if (!text)
                return -ENOMEM;
        runner_file(b, bp, path, sizeof(path));
        r = fs_write_file_0600(path, text, strlen(text));
        explicit_bzero(text, strlen(text));
        free(text);
        return r;
}

static json_t *labels_json(const struct dpool *dp)
{
        json_t *a = json_array();

        for (size_t k = 0; a && k < dp->cfg->labels.n; k++)
                json_array_append_new(a, json_string(dp->cfg->labels.v[k]));
        return a;
}

static void bp_failed(struct bpool *bp, const char *what, const struct rclient_result *res)
{
        struct dpool *dp = broker_pool_of(bp);

        bp->failures++;
        int64_t delay = daemon_backoff_ms(dp ? dp->cfg->poll_interval_ms : 2000, bp->failures);
        if (bp->failures == 1 || bp->failures % 10 == 0)
                log_warn("broker", "runner protocol call failed; will retry", KS("pool", bp->name), KS("call", what),
                         KS("reason", res->cerr.message), KI("status", res->status), KI("retry_ms", delay));
        if (dp) {
                struct group *g = &bp->d->groups[dp->group];
                g->last_failed = true;
        }
        bp_schedule(bp, delay);
}

static void on_declared(void *ud, const struct rclient_result *res, json_t *resp)
{
        struct bpool *bp = ud;

        bp->call = NULL;
        if (res->err == -EPROTO && res->cerr.code == RP_CODE_UNAUTHENTICATED) {
                /* An administrator deleted the runner: register a new one. */
                log_warn("broker", "the forge no longer knows this pool's runner; registering a new one",
                         KS("pool", bp->name), KI("runner_id", bp->runner_id));
                char path[PATH_MAX];
                runner_file(bp->d->broker, bp, path, sizeof(path));
                unlink(path);
                bp_forget_runner(bp);
                bp->state = BP_NEW;
                bp_schedule(bp, 0);
                return;
        }
        if (res->err < 0) {
                bp_failed(bp, "Declare", res);
                return;
        }
        bp->failures = 0;
        bp->state = BP_READY;
        log_info("broker", "runner ready", KS("pool", bp->name), KI("runner_id", bp->runner_id),
                 KS("name", bp->runner_name));
        bp_schedule(bp, 0);
        daemon_schedule_tick(bp->d);
}

static void declare(struct bpool *bp)
{
        struct dpool *dp = broker_pool_of(bp);
        json_t *req = dp ? json_pack("{s:s,s:o}", "version", version_text, "labels", labels_json(dp)) : NULL;
        int r = req ? rclient_call(bp->rc, RP_SVC_RUNNER "Declare", req, NULL, on_declared, bp, &bp->call) : -ENOMEM;

        json_decref(req);
        if (r < 0) {
                log_error("broker", "cannot start Declare", KS("pool", bp->name), KERR(r));
                bp_schedule(bp, 5000);
        }
}

static void on_registered(void *ud, const struct rclient_result *res, json_t *resp)
{
        struct bpool *bp = ud;
        struct broker *b = bp->d->broker;
        const json_t *rn = json_object_get(resp, "runner");
        const char *uuid = json_string_value(json_object_get(rn, "uuid"));
        const char *token = json_string_value(json_object_get(rn, "token"));
        int r = -ENOMEM;

        bp->call = NULL;
        if (res->err < 0) {
                bp->state = BP_NEW;
                bp_failed(bp, "Register", res);
                return;
        }
        if (!uuid || !token || broker_j_i64(rn, "id") <= 0 || strlen(uuid) >= sizeof(bp->uuid)) {
                struct rclient_result bad = { .err = -EBADMSG, .status = 200 };
                snprintf(bad.cerr.message, sizeof(bad.cerr.message), "Register answered without id, uuid or token");
                bp->state = BP_NEW;
                bp_failed(bp, "Register", &bad);
                return;
        }
        bp->runner_id = broker_j_i64(rn, "id");
        snprintf(bp->uuid, sizeof(bp->uuid), "%s", uuid);
        secret_free(bp->token);
        bp->token = strdup(token);
        if (!bp->token || (r = runner_save(b, bp)) < 0) {
                /* A runner we cannot remember would be registered again at
                 * every start: wait for the disk instead. */
                log_error("broker", "cannot save the pool's runner credentials; registering again later",
                          KS("pool", bp->name), KERR(bp->token ? r : -ENOMEM));
                bp_forget_runner(bp);
                bp->state = BP_NEW;
                bp_schedule(bp, 10000);
                return;
        }
        log_redact_add(bp->token);
        rclient_set_identity(bp->rc, bp->uuid, bp->token);
        log_info("broker", "runner registered", KS("pool", bp->name), KI("runner_id", bp->runner_id),
                 KS("name", bp->runner_name));
        bp->state = BP_DECLARING;
        declare(bp);
}

static void on_reg_token(void *ud, const struct forgejo_result *res, const char *token)
{
        struct bpool *bp = ud;
        struct dpool *dp = broker_pool_of(bp);

        bp->reg_call = NULL;
        if (!token || !dp) {
                struct rclient_result r = { .err = res->err, .status = res->status };
                snprintf(r.cerr.message, sizeof(r.cerr.message), "registration token: %s", res->reason);
                bp->state = BP_NEW;
                bp_failed(bp, "registration-token", &r);
                return;
        }
        json_t *req = json_pack("{s:s,s:s,s:s,s:o,s:b}", "name", bp->runner_name, "token", token,
                                "version", version_text, "labels", labels_json(dp), "ephemeral", 0);
        int r = req ? rclient_call(bp->rc, RP_SVC_RUNNER "Register", req, NULL, on_registered, bp, &bp->call)
                    : -ENOMEM;
        if (req) {
                json_t *tv = json_object_get(req, "token");
                explicit_bzero((char *)json_string_value(tv), json_string_length(tv));
        }
        json_decref(req);
        if (r < 0) {
                log_error("broker", "cannot start Register", KS("pool", bp->name), KERR(r));
                bp->state = BP_NEW;
                bp_schedule(bp, 5000);
        }
}

static void register_runner(struct bpool *bp)
{
        struct dpool *dp = broker_pool_of(bp);
        struct forgejo_scope sc;
        int r;

        if (!dp || forgejo_scope_parse(dp->cfg->scope_text, &sc) < 0)
                return;
        bp->state = BP_REGISTERING;
        r = forgejo_registration_token(bp->d->forges[dp->cfg->forge_idx].client, &sc, on_reg_token, bp,
                                       &bp->reg_call);
        if (r < 0) {
                log_error("broker", "cannot ask for a registration token", KS("pool", bp->name), KERR(r));
                bp->state = BP_NEW;
                bp_schedule(bp, 5000);
        }
}

/* ---- fetching tasks ------------------------------------------------------------ */

static void fetch(struct bpool *bp);

static void bp_timer(struct loop *l, void *ud)
{
        struct bpool *bp = ud;

        bp->timer = NULL;
        fetch(bp);
}

static void bp_schedule(struct bpool *bp, int64_t delay)
{
        struct loop *l = bp->d->loop;

        if (bp->timer)
                loop_timer_cancel(l, bp->timer);
        bp->timer = loop_timer_add(l, delay, bp_timer, bp);
        bp->next_fetch = loop_now_ms(l) + delay;
}

/* A task the forge handed us, new or fetched again after a restart. */
static void fetched(struct bpool *bp, const struct rclient_result *res, json_t *resp, const struct brelay_task *pbs,
                    size_t n_pbs)
{
        struct broker *b = bp->d->broker;
        struct dpool *dp = broker_pool_of(bp);
        char key[STORE_KEY_MAX];
        bool recovering = bp->n_recover > 0;
        size_t got = 0;

        bp->call = NULL;
        snprintf(key, sizeof(key), "%s", recovering ? bp->recover_keys[bp->n_recover - 1] : bp->fetch_key);
        if (res->err == -EPROTO && res->cerr.code == RP_CODE_UNAUTHENTICATED) {
                struct rclient_result r = *res;
                bp->state = BP_DECLARING; /* Declare tells whether the runner is gone */
                bp_failed(bp, "FetchTask", &r);
                return;
        }
        if (res->err < 0) {
                /* The answer is lost, not the fetch: the same key is sent
                 * again, and gets what the forge assigned. */
                bp_failed(bp, "FetchTask", res);
                return;
        }
        bp->failures = 0;
        if (dp)
                bp->d->groups[dp->group].last_ok = loop_now_ms(bp->d->loop);
        const json_t *task = json_object_get(resp, "task");
        bool txn = store_begin(b->d->store) == 0;
        if (json_is_object(task))
                btask_take(b, bp, task, key, &got, pbs, n_pbs);
        const json_t *more = json_object_get(resp, "additionalTasks");
        size_t i;
        const json_t *mt;
        json_array_foreach(more, i, mt)
                if (json_is_object(mt))
                        btask_take(b, bp, mt, key, &got, pbs, n_pbs);
        if (txn && store_commit(b->d->store) < 0) {
                store_rollback(b->d->store);
                log_error("broker", "cannot commit fetched tasks; they are fetched again later", KS("pool", bp->name));
                for (size_t k = b->n_tasks; k-- > 0;)
                        if (b->tasks[k]->bp == bp && strcmp(b->tasks[k]->row.request_key, key) == 0 &&
                            b->tasks[k]->row.state == STORE_TASK_HELD && !b->tasks[k]->w)
                                btask_forget(b, b->tasks[k]);
                bp_schedule(bp, 1000);
                return;
        }
        if (recovering) {
                bp->n_recover--;
                /* Held tasks the forge did not hand back are no longer ours. */
                for (size_t k = b->n_tasks; k-- > 0;) {
                        struct btask *t = b->tasks[k];
                        if (t->bp == bp && !t->task && t->row.state == STORE_TASK_HELD &&
                            strcmp(t->row.request_key, key) == 0)
                                btask_fail(b, t, "lost_at_restart",
                                          "forgescale: the forge did not hand this job back after a restart");
                }
        } else {
                store_fetch_delete(b->d->store, bp->name, key);
                bp->fetch_key[0] = '\0';
        }
        /* The forge's rule: after a task, ask the database again (0);
         * otherwise send the version it gave, so an idle poll costs it no
         * query. */
        int64_t tv = broker_j_i64(resp, "tasksVersion");
        if (got)
                bp->tasks_version = 0;
        else if (tv > bp->tasks_version)
                bp->tasks_version = tv;
        /* The room is the scaler's figure of the last plan: what was just
         * fetched takes from it until the next plan says again, or a
         * fetch at once would ask for the same room twice. */
        bp->room = bp->room > (int)got ? bp->room - (int)got : 0;
        if (got)
                daemon_schedule_tick(bp->d);
        bp_schedule(bp, bp->n_recover ? 0 : got ? 0 : dp ? dp->cfg->poll_interval_ms : 2000);
}

static void on_fetched(void *ud, const struct rclient_result *res, json_t *resp)
{
        fetched(ud, res, resp, NULL, 0);
}

/* In proto, the answer is kept as bytes too: a Task's fields this build
 * does not know reach a worker that speaks proto. */
static void on_fetched_raw(void *ud, const struct rclient_result *res, const void *body, size_t len)
{
        struct bpool *bp = ud;
        struct brelay_task *pbs = NULL;
        json_t *resp = NULL;
        size_t n = 0;
        int r;

        if (res->err < 0) {
                fetched(bp, res, NULL, NULL, 0);
                return;
        }
        if ((r = brelay_split_fetch(body, len, &resp, &pbs, &n)) < 0) {
                struct rclient_result bad = { .err = -EBADMSG, .status = res->status };
                snprintf(bad.cerr.message, sizeof(bad.cerr.message), "FetchTask answer does not decode");
                fetched(bp, &bad, NULL, NULL, 0);
                return;
        }
        fetched(bp, res, resp, pbs, n);
        brelay_tasks_free(pbs, n);
        json_decref(resp);
}

static void new_key(struct bpool *bp)
{
        char rnd[25];

        secret_random_hex(rnd, 12);
        snprintf(bp->fetch_key, sizeof(bp->fetch_key), "fs-%s", rnd);
}

static void fetch(struct bpool *bp)
{
        struct daemon *d = bp->d;
        struct broker *b = d->broker;
        struct dpool *dp = broker_pool_of(bp);
        int r;

        if (bp->call || bp->reg_call || d->stopping || !dp)
                return;
        if (d->forges[dp->cfg->forge_idx].version_major == 0) {
                bp_schedule(bp, 500);
                return;
        }
        switch (bp->state) {
        case BP_NEW:
                if (runner_load(b, bp) == 0) {
                        bp->state = BP_DECLARING;
                        declare(bp);
                } else {
                        register_runner(bp);
                }
                return;
        case BP_REGISTERING:
                return;
        case BP_DECLARING:
                declare(bp);
                return;
        case BP_READY:
                break;
        }
        const char *key;
        int capacity;
        int64_t version = bp->tasks_version;
        if (bp->n_recover) {
                key = bp->recover_keys[bp->n_recover - 1];
                capacity = 256;
                version = 0;
        } else {
                if (bp->removed || dp->retired || !dp->enabled || bp->room <= 0)
                        return; /* the next tick with room calls again */
                if (!bp->fetch_key[0]) {
                        new_key(bp);
                        struct store_fetch f = { .created_ms = daemon_wall_ms() };
                        snprintf(f.pool, sizeof(f.pool), "%s", bp->name);
                        snprintf(f.request_key, sizeof(f.request_key), "%s", bp->fetch_key);
                        /* Stored before the request: an answer lost to a
                         * crash is fetched again with this key. */
                        if ((r = store_fetch_insert(d->store, &f)) < 0) {
                                /* Once per outage: a full disk fails every
                                 * second, like the instances' saves. */
                                if (!bp->store_failing)
                                        log_error("broker", "cannot store the fetch's request key; not fetching",
                                                  KS("pool", bp->name), KERR(r));
                                bp->store_failing = true;
                                bp->fetch_key[0] = '\0';
                                bp_schedule(bp, 1000);
                                return;
                        }
                        bp->store_failing = false;
                }
                key = bp->fetch_key;
                capacity = bp->room;
        }
        json_t *req = json_object();
        if (!req || broker_j_set_i64(req, "tasksVersion", version) < 0 ||
            json_object_set_new(req, "taskCapacity", json_integer(capacity)) < 0) {
                json_decref(req);
                bp_schedule(bp, 1000);
                return;
        }
        if (b->upstream_codec == RPCODEC_PROTO) {
                char err[RP_ERR_MAX];
                void *body = NULL;
                size_t len = 0;
                r = rpcodec_encode(RP_SVC_RUNNER "FetchTask", RPCODEC_REQUEST, RPCODEC_PROTO, req, &body, &len, err);
                if (r == 0)
                        r = rclient_call_raw(bp->rc, RP_SVC_RUNNER "FetchTask", RCLIENT_PROTO, body, len, key,
                                             on_fetched_raw, bp, &bp->call);
                free(body);
        } else {
                r = rclient_call(bp->rc, RP_SVC_RUNNER "FetchTask", req, key, on_fetched, bp, &bp->call);
        }
        json_decref(req);
        if (r < 0) {
                log_error("broker", "cannot start FetchTask", KS("pool", bp->name), KERR(r));
                bp_schedule(bp, 1000);
        }
}

/* ---- what the core sees -------------------------------------------------------- */

void broker_publish(struct daemon *d)
{
        struct broker *b = d->broker;

        if (!b)
                return;
        for (size_t i = 0; i < b->n_pools; i++) {
                struct bpool *bp = b->pools[i];
                struct dpool *dp = broker_pool_of(bp);
                size_t n = 0, cap = 0;
                struct djob *jobs;

                if (!dp || dp->group < 0)
                        continue;
                for (size_t k = 0; k < b->n_tasks; k++)
                        cap += b->tasks[k]->bp == bp;
                jobs = calloc(cap ? cap : 1, sizeof(*jobs));
                if (!jobs)
                        continue;
                for (size_t k = 0; k < b->n_tasks; k++) {
                        struct btask *t = b->tasks[k];
                        /* A held task whose payload is not back yet
                         * (after a restart) cannot be served. */
                        bool held = t->row.state == STORE_TASK_HELD && t->task;
                        bool running = t->row.state == STORE_TASK_RUNNING && !t->upstream_final;
                        if (t->bp != bp || (!held && !running))
                                continue;
                        struct djob *j = &jobs[n];
                        j->id = t->row.job_id;
                        j->waiting = held;
                        j->handle = strdup(t->handle);
                        j->runs_on = calloc(dp->cfg->labels.n ? dp->cfg->labels.n : 1, sizeof(char *));
                        if (!j->handle || !j->runs_on) {
                                free(j->handle);
                                free(j->runs_on);
                                continue;
                        }
                        /* A task is its pool's: the pool's labels make the
                         * scaler's label rule hold. */
                        for (size_t l = 0; l < dp->cfg->labels.n; l++)
                                if ((j->runs_on[j->n_runs_on] = strdup(dp->cfg->labels.v[l])))
                                        j->n_runs_on++;
                        n++;
                }
                struct group *g = &d->groups[dp->group];
                demand_group_replace(d, g, jobs, n);
                /* Fresh while the runner works: the tasks are ours, known
                 * without asking; an unreachable forge makes them stale. */
                g->last_failed = bp->state != BP_READY || bp->failures > 0;
        }
}

void broker_plan_done(struct daemon *d)
{
        struct broker *b = d->broker;

        if (!b)
                return;
        for (size_t i = 0; i < b->n_pools; i++) {
                struct bpool *bp = b->pools[i];
                struct dpool *dp = broker_pool_of(bp);
                int room = dp && dp->enabled && !dp->retired ? dp->stats.room : 0;
                bool more = room > bp->room;
                bp->room = room;
                /* Room opened: fetch now rather than at the next poll. */
                if (more && bp->state == BP_READY && !bp->call && !bp->tasks_version)
                        bp_schedule(bp, 0);
                else if (more && bp->state == BP_READY && !bp->call && !bp->timer)
                        bp_schedule(bp, 0);
        }
}

/* ---- engine operations ----------------------------------------------------------- */

/* Answers come from the loop, never from inside the call (engine.h). */
struct bop {
        struct inst *in;
        enum { BOP_ACQUIRE, BOP_CHECK, BOP_RELEASE } kind;
};

static void bop_fire(struct loop *l, void *ud);

static int bop_start(struct daemon *d, struct inst *in, int kind)
{
        in->engine_op = kind;
        in->engine_timer = loop_timer_add(d->loop, 0, bop_fire, in);
        if (in->engine_timer && kind == BOP_ACQUIRE)
                d->broker->acquiring++;
        return in->engine_timer ? 0 : -ENOMEM;
}

static void acquired(struct daemon *d, struct inst *in)
{
        struct broker *b = d->broker;
        struct btask *t = b ? btask_by_handle(b, in->row.handle) : NULL;
        struct engine_result res = { .err = -ENOENT, .reason = "its task is no longer held" };

        if (!t || t->row.state != STORE_TASK_HELD || !t->task || t->upstream_final) {
                inst_acquired(d, in, &res, NULL);
                return;
        }
        if (t->w)
                worker_revoke(b, t->w);
        struct bworker *w = worker_mint(b, t, in->row.name);
        if (!w) {
                res.err = -EIO;
                res.reason = "cannot mint worker credentials";
                inst_acquired(d, in, &res, NULL);
                return;
        }
        t->w = w;
        snprintf(t->row.instance, sizeof(t->row.instance), "%s", in->row.name);
        t->row.attempts++;
        if (btask_save(b, t) < 0) {
                worker_revoke(b, w);
                res.err = -EIO;
                res.reason = "cannot save the task";
                inst_acquired(d, in, &res, NULL);
                return;
        }
        struct provider *p = NULL;
        for (size_t k = 0; k < d->n_providers; k++)
                if (strcmp(d->providers[k].name, in->row.provider) == 0)
                        p = &d->providers[k];
        btask_note(t, "forgescale: pool %s, starting worker %s on provider %s (attempt %d of %d)", t->row.pool,
             in->row.name, p ? p->name : in->row.provider, t->row.attempts, b->worker_retries + 1);
        btask_kick(b, t);
        struct engine_identity id = { .id = t->row.task_id, .uuid = w->uuid, .token = w->token };
        res = (struct engine_result){ 0 };
        inst_acquired(d, in, &res, &id);
}

/* A worker that took its task is busy with it until it exits, even once
 * the task is over: its credentials are revoked by the release that
 * follows its exit, which a "runner gone" answer would skip. */
static void checked(struct daemon *d, struct inst *in)
{
        struct broker *b = d->broker;
        struct bworker *w = b ? worker_by_instance(b, in->row.name) : NULL;
        struct engine_result res = { 0 };

        inst_checked(d, in, &res, w && w->fetched ? ENGINE_RUNNER_ACTIVE : ENGINE_RUNNER_IDLE);
}

/* The worker is gone: its credentials go, and its task either waits for
 * another worker or is reported failed. */
static void released(struct daemon *d, struct inst *in)
{
        struct broker *b = d->broker;
        struct btask *t = b ? btask_by_handle(b, in->row.handle) : NULL;
        struct bworker *w = b ? worker_by_instance(b, in->row.name) : NULL;
        struct engine_result res = { 0 };
        bool fetched = w && w->fetched;
        bool was_gone = false;

        if (w)
                worker_revoke(b, w);
        if (t && strcmp(t->row.instance, in->row.name) == 0) {
                t->exit_code = in->row.exit_code;
                was_gone = fetched && (t->upstream_final || t->row.state == STORE_TASK_DONE);
                if (t->row.state == STORE_TASK_RUNNING && !t->upstream_final) {
                        btask_fail(b, t, "worker_exited",
                                  "forgescale: worker %s ended (exit status %d) before reporting a result; "
                                  "the job failed", in->row.name, in->row.exit_code);
                } else if (t->row.state == STORE_TASK_RUNNING) {
                        /* The forge ended it (a heartbeat heard so) and its
                         * worker is gone: nothing is left to report. */
                        t->row.state = STORE_TASK_DONE;
                        if (btask_save(b, t) < 0)
                                t->row.state = STORE_TASK_RUNNING;
                } else if (t->row.state == STORE_TASK_HELD) {
                        t->row.instance[0] = '\0';
                        if (t->row.attempts > b->worker_retries) {
                                btask_fail(b, t, "no_worker",
                                          "forgescale: no worker connected (%d started, the last ended with "
                                          "status %d, %s); the job failed", t->row.attempts, in->row.exit_code,
                                          in->row.reason[0] ? in->row.reason : "?");
                        } else {
                                btask_note(t, "forgescale: worker %s did not connect (%s, exit status %d); "
                                     "starting another", in->row.name, in->row.reason[0] ? in->row.reason : "?",
                                     in->row.exit_code);
                                btask_save(b, t);
                        }
                }
                btask_kick(b, t);
        }
        inst_released(d, in, &res, was_gone);
}

static void bop_fire(struct loop *l, void *ud)
{
        struct inst *in = ud;
        struct daemon *d = in->d;

        in->engine_timer = NULL;
        switch (in->engine_op) {
        case BOP_ACQUIRE:
                d->broker->acquiring--;
                acquired(d, in);
                break;
        case BOP_CHECK:
                checked(d, in);
                break;
        case BOP_RELEASE:
                released(d, in);
                break;
        }
}

static int broker_acquire(struct daemon *d, struct inst *in)
{
        return d->broker ? bop_start(d, in, BOP_ACQUIRE) : -ENOENT;
}

static int broker_check(struct daemon *d, struct inst *in)
{
        return d->broker ? bop_start(d, in, BOP_CHECK) : -ENOENT;
}

static int broker_release(struct daemon *d, struct inst *in)
{
        return d->broker ? bop_start(d, in, BOP_RELEASE) : -ENOENT;
}

static void broker_cancel(struct inst *in)
{
        if (in->engine_timer) {
                loop_timer_cancel(in->d->loop, in->engine_timer);
                if (in->engine_op == BOP_ACQUIRE && in->d->broker)
                        in->d->broker->acquiring--;
        }
        in->engine_timer = NULL;
}

/* Each acquisition starts its worker at once, and starting a process
 * holds the loop until the child has exec'd (long on a loaded machine):
 * a few per loop pass, so that the workers already started are answered
 * in between (a burst of 500 left workers' first calls unanswered for
 * 10 s). The forge was already paced by the fetch. */
#define ACQUIRE_BATCH 16

static int broker_slots(const struct daemon *d, int pool)
{
        return d->broker ? ACQUIRE_BATCH - d->broker->acquiring : 0;
}

const struct engine_ops engine_broker_ops = {
        .mode = "broker",
        .slots = broker_slots,
        .acquire = broker_acquire,
        .release = broker_release,
        .check = broker_check,
        .cancel = broker_cancel,
};

/* ---- removed pools: their runners go with their last task ------------------------ */

static void bpool_drop(struct broker *b, struct bpool *bp)
{
        char path[PATH_MAX];

        runner_file(b, bp, path, sizeof(path));
        unlink(path);
        for (size_t i = 0; i < b->n_pools; i++)
                if (b->pools[i] == bp) {
                        b->pools[i] = b->pools[--b->n_pools];
                        break;
                }
        if (bp->timer)
                loop_timer_cancel(b->d->loop, bp->timer);
        forgejo_cancel(bp->reg_call);
        forgejo_cancel(bp->del_call);
        rclient_free(bp->rc);
        secret_free(bp->token);
        free(bp->recover_keys);
        free(bp);
}

static void on_runner_deleted(void *ud, const struct forgejo_result *res)
{
        struct bpool *bp = ud;
        struct broker *b = bp->d->broker;

        bp->del_call = NULL;
        if (res->err < 0 && res->err != -ENOENT) {
                bp->failures++;
                bp->next_fetch = loop_now_ms(b->d->loop) + daemon_backoff_ms(5000, bp->failures);
                if (bp->failures == 1 || bp->failures % 10 == 0)
                        log_warn("broker", "cannot delete a removed pool's runner; will retry", KS("pool", bp->name),
                                 KI("runner_id", bp->runner_id), KS("reason", res->reason));
                return;
        }
        log_info("broker", "removed pool's runner deleted", KS("pool", bp->name), KI("runner_id", bp->runner_id));
        bpool_drop(b, bp);
}

/* A pool gone from the configuration leaves no runner behind once its
 * tasks are over: deleted over REST where the forge has it (Forgejo 15),
 * otherwise named in the log for an administrator. */
static void retire_removed(struct broker *b)
{
        struct daemon *d = b->d;
        int64_t now = loop_now_ms(d->loop);

        for (size_t i = b->n_pools; i-- > 0;) {
                struct bpool *bp = b->pools[i];
                bool busy = bp->call || bp->reg_call || bp->del_call || now < bp->next_fetch;
                for (size_t k = 0; k < b->n_tasks && !busy; k++)
                        busy = b->tasks[k]->bp == bp;
                if (!bp->removed || busy || d->forges[bp->forge_idx].version_major == 0)
                        continue;
                struct forgejo_scope sc;
                if (bp->runner_id <= 0 || forgejo_scope_parse(bp->scope_text, &sc) < 0) {
                        bpool_drop(b, bp);
                        continue;
                }
                if (d->forges[bp->forge_idx].version_major < 15) {
                        log_warn("broker", "a removed pool's runner stays registered (this forge has no REST "
                                 "runner management); delete it in the forge's settings", KS("pool", bp->name),
                                 KS("runner", bp->runner_name), KI("runner_id", bp->runner_id));
                        bpool_drop(b, bp);
                        continue;
                }
                if (forgejo_runner_delete(d->forges[bp->forge_idx].client, &sc, bp->runner_id, on_runner_deleted, bp,
                                          &bp->del_call) < 0)
                        bp->next_fetch = now + 5000;
        }
}

/* At start: runners of pools the configuration no longer has. */
static void adopt_removed(struct broker *b)
{
        struct daemon *d = b->d;
        DIR *dir = opendir(b->dir);
        struct dirent *de;

        if (!dir)
                return;
        while ((de = readdir(dir))) {
                size_t n = strlen(de->d_name);
                if (n <= 7 || strcmp(de->d_name + n - 7, ".runner") != 0 || n - 7 >= STORE_NAME_MAX)
                        continue;
                char name[STORE_NAME_MAX], path[PATH_MAX], *text = NULL;
                size_t len;
                snprintf(name, sizeof(name), "%.*s", (int)(n - 7), de->d_name);
                if (bpool_named(b, name))
                        continue;
                snprintf(path, sizeof(path), "%s/%s", b->dir, de->d_name);
                if (fs_read_regular(path, RUNNER_FILE_MAX, &text, &len) < 0)
                        continue;
                json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
                explicit_bzero(text, len);
                free(text);
                const char *forge = json_string_value(json_object_get(j, "forge"));
                const char *scope = json_string_value(json_object_get(j, "scope"));
                const char *rname = json_string_value(json_object_get(j, "name"));
                size_t fi = SIZE_MAX;
                for (size_t f = 0; forge && f < d->n_forges; f++)
                        if (strcmp(d->forges[f].cfg->name, forge) == 0)
                                fi = f;
                struct bpool *bp = fi != SIZE_MAX && scope ? calloc(1, sizeof(*bp)) : NULL;
                struct bpool **np = bp ? realloc(b->pools, (b->n_pools + 1) * sizeof(*np)) : NULL;
                if (bp && np) {
                        bp->d = d;
                        bp->removed = true;
                        bp->forge_idx = fi;
                        bp->runner_id = broker_j_i64(j, "id");
                        snprintf(bp->name, sizeof(bp->name), "%s", name);
                        snprintf(bp->scope_text, sizeof(bp->scope_text), "%s", scope);
                        snprintf(bp->runner_name, sizeof(bp->runner_name), "%s", rname ? rname : "");
                        b->pools = np;
                        b->pools[b->n_pools++] = bp;
                        log_info("broker", "a pool no longer configured left a runner; deleting it",
                                 KS("pool", name), KI("runner_id", bp->runner_id));
                } else {
                        if (np)
                                b->pools = np;
                        free(bp);
                }
                json_t *tv = json_object_get(j, "token");
                if (json_is_string(tv))
                        explicit_bzero((char *)json_string_value(tv), json_string_length(tv));
                json_decref(j);
        }
        closedir(dir);
}

/* ---- every second: the tasks' heartbeats and reports, removed runners -------------- */

static void periodic(struct loop *l, void *ud)
{
        struct broker *b = ud;
        int64_t now = loop_now_ms(l);

        b->timer = loop_timer_add(l, BROKER_TICK_MS, periodic, b);
        btask_tick(b, now);
        retire_removed(b);
}

/* ---- set-up ---------------------------------------------------------------------- */

static struct bpool *bpool_new(struct broker *b, const struct dpool *dp)
{
        struct daemon *d = b->d;
        struct bpool *bp = calloc(1, sizeof(*bp));
        const struct config_forge *fc = dp->cfg->forge;

        if (!bp)
                return NULL;
        bp->d = d;
        snprintf(bp->name, sizeof(bp->name), "%s", dp->cfg->name);
        snprintf(bp->runner_name, sizeof(bp->runner_name), "fsb-%s-%s", d->ctrl, dp->cfg->name);
        bp->forge_idx = dp->cfg->forge_idx;
        snprintf(bp->scope_text, sizeof(bp->scope_text), "%s", dp->cfg->scope_text);
        struct rclient_opts o = {
                .base_url = fc->url, .codec = b->upstream_codec == RPCODEC_PROTO ? RCLIENT_PROTO : RCLIENT_JSON,
                .timeout_ms = fc->timeout_ms > 0 ? fc->timeout_ms : 30000,
                .ca_file = fc->ca_path, .insecure = fc->insecure_skip_verify,
        };
        if (rclient_new(d->hm, &o, &bp->rc) < 0) {
                free(bp);
                return NULL;
        }
        struct bpool **np = realloc(b->pools, (b->n_pools + 1) * sizeof(*np));
        if (!np) {
                rclient_free(bp->rc);
                free(bp);
                return NULL;
        }
        b->pools = np;
        b->pools[b->n_pools++] = bp;
        return bp;
}

int broker_sync(struct daemon *d)
{
        struct broker *b = d->broker;

        if (!b)
                return 0;
        for (size_t p = 0; p < d->n_pools; p++) {
                struct dpool *dp = &d->pools[p];
                if (dp->cfg->mode != CONFIG_MODE_BROKER || dp->retired)
                        continue;
                struct bpool *bp = bpool_named(b, dp->cfg->name);
                if (!bp) {
                        if (!(bp = bpool_new(b, dp)))
                                return -ENOMEM;
                        /* Known at once, not after the forge's version: a
                         * worker adopted after a restart relays with it. */
                        if (runner_load(b, bp) == 0)
                                bp->state = BP_DECLARING;
                        bp_schedule(bp, 0);
                } else if (bp->state == BP_READY && !bp->call) {
                        /* A reload may have changed the pool's labels: the
                         * forge matches jobs on what was declared. */
                        bp->state = BP_DECLARING;
                        bp_schedule(bp, 0);
                }
                bp->removed = false;
        }
        for (size_t i = 0; i < b->n_pools; i++) {
                struct dpool *dp = broker_pool_of(b->pools[i]);
                b->pools[i]->removed = !dp || dp->retired;
        }
        return 0;
}

static int resume_tasks(struct broker *b)
{
        struct store_task *rows = NULL;
        struct store_fetch *fetches = NULL;
        size_t n = 0, nf = 0;
        int r;

        if ((r = store_task_list_live(b->d->store, &rows, &n)) < 0 ||
            (r = store_fetch_list(b->d->store, &fetches, &nf)) < 0)
                goto out;
        for (size_t i = 0; i < n; i++) {
                struct bpool *bp = bpool_named(b, rows[i].pool);
                if (!bp) {
                        /* Its pool is gone from the configuration, and
                         * with it the runner that could report: the forge
                         * ends the task at its zombie timeout. */
                        log_warn("broker", "a held task's pool is no longer configured; the forge ends it",
                                 KI("task", rows[i].task_id), KS("pool", rows[i].pool));
                        rows[i].state = STORE_TASK_DONE;
                        snprintf(rows[i].reason, sizeof(rows[i].reason), "pool_removed");
                        store_task_update(b->d->store, &rows[i]);
                        continue;
                }
                struct btask *t = btask_add(b, bp, &rows[i]);
                if (!t) {
                        r = -ENOMEM;
                        goto out;
                }
                if (t->row.instance[0])
                        worker_load(b, t);
                t->probing = true;
                if (t->row.state == STORE_TASK_FINISHING) {
                        /* Say again why it failed; the forge ignores what
                         * comes after the end. */
                        t->notes_from = t->row.log_acked;
                        btask_note(t, "forgescale: the job failed (%s); reported again after a restart", t->row.reason);
                        t->notes_no_more = true;
                }
                /* Held tasks need their payload back: fetched again with
                 * their key. A running one is left alone (fetching again
                 * would renew its token under its worker's feet). */
                if (t->row.state == STORE_TASK_HELD) {
                        bool have = false;
                        for (size_t k = 0; k < bp->n_recover && !have; k++)
                                have = strcmp(bp->recover_keys[k], t->row.request_key) == 0;
                        if (!have && bp->n_recover == bp->cap_recover) {
                                size_t nc = bp->cap_recover ? bp->cap_recover * 2 : 8;
                                char (*nk)[STORE_KEY_MAX] = realloc(bp->recover_keys, nc * sizeof(*nk));
                                if (!nk) {
                                        r = -ENOMEM;
                                        goto out;
                                }
                                bp->recover_keys = nk;
                                bp->cap_recover = nc;
                        }
                        if (!have)
                                snprintf(bp->recover_keys[bp->n_recover++], STORE_KEY_MAX, "%s", t->row.request_key);
                }
        }
        /* A fetch whose answer never came: the forge may have assigned
         * tasks under its key. */
        for (size_t i = 0; i < nf; i++) {
                struct bpool *bp = bpool_named(b, fetches[i].pool);
                if (!bp) {
                        store_fetch_delete(b->d->store, fetches[i].pool, fetches[i].request_key);
                        continue;
                }
                if (!bp->fetch_key[0])
                        snprintf(bp->fetch_key, sizeof(bp->fetch_key), "%s", fetches[i].request_key);
                else
                        store_fetch_delete(b->d->store, fetches[i].pool, fetches[i].request_key);
        }
        if (n || nf)
                log_info("broker", "resumed held tasks", KI("tasks", (long long)b->n_tasks),
                         KI("unanswered_fetches", (long long)nf));
        r = 0;
out:
        free(rows);
        free(fetches);
        return r;
}

int broker_init(struct daemon *d)
{
        struct broker *b;
        bool any = false;
        char wdir[PATH_MAX];
        int r;

        for (size_t p = 0; p < d->n_pools; p++)
                any |= d->pools[p].cfg->mode == CONFIG_MODE_BROKER;
        if (!any)
                return 0;
        b = calloc(1, sizeof(*b));
        if (!b)
                return -ENOMEM;
        d->broker = b;
        b->d = d;
        const struct config_broker *bc = &d->cfg->broker;
        b->worker_retries = (int)bc->worker_retries;
        b->upstream_codec = bc->codec == CONFIG_CODEC_JSON ? RPCODEC_JSON : RPCODEC_PROTO;
        snprintf(b->dir, sizeof(b->dir), "%s/broker", d->state_dir);
        snprintf(wdir, sizeof(wdir), "%s/workers", b->dir);
        if ((r = fs_mkdir_p(wdir, 0700)) < 0) {
                log_error("broker", "cannot create the broker's folder", KS("path", wdir), KERR(r));
                goto err;
        }
        if ((r = bendpoint_start(b, bc->listen)) < 0)
                goto err;   /* logged */
        if (bc->url && bc->url[0]) {
                snprintf(b->url, sizeof(b->url), "%s", bc->url);
        } else {
                /* The address it listens on, with the port it got (port 0
                 * picks one). check refuses a wildcard without a url. */
                struct hostport hp;
                char hostport[HOSTPORT_HOST_MAX + 16];
                if (hostport_parse(bc->listen, 0, &hp, NULL) < 0) {
                        r = -EINVAL;
                        goto err;
                }
                hp.port = (uint16_t)broker_port(d);
                hostport_format(&hp, hostport, sizeof(hostport));
                snprintf(b->url, sizeof(b->url), "http://%s", hostport);
        }
        if ((r = broker_sync(d)) < 0) {
                log_error("broker", "cannot set up the broker pools", KERR(r));
                goto err;
        }
        if ((r = resume_tasks(b)) < 0) {
                log_error("broker", "cannot read held tasks from the state database", KERR(r));
                goto err;
        }
        adopt_removed(b);
        b->timer = loop_timer_add(d->loop, BROKER_TICK_MS, periodic, b);
        log_info("broker", "worker endpoint listening", KS("listen", bc->listen), KS("url", b->url),
                 KI("port", broker_port(d)));
        return 0;
err:
        broker_free(d);
        return r;
}

void broker_free(struct daemon *d)
{
        struct broker *b = d->broker;

        if (!b)
                return;
        for (size_t i = 0; i < b->n_tasks; i++)
                btask_drop_relays(b->tasks[i]);
        bendpoint_stop(b);
        if (b->timer)
                loop_timer_cancel(d->loop, b->timer);
        for (size_t i = 0; i < b->n_tasks; i++) {
                b->tasks[i]->w = NULL;
                btask_free(b->tasks[i]);
        }
        free(b->tasks);
        for (size_t i = 0; i < b->n_workers; i++) {
                explicit_bzero(b->workers[i]->token, sizeof(b->workers[i]->token));
                free(b->workers[i]);
        }
        free(b->workers);
        for (size_t i = 0; i < b->n_pools; i++) {
                struct bpool *bp = b->pools[i];
                if (bp->timer)
                        loop_timer_cancel(d->loop, bp->timer);
                forgejo_cancel(bp->reg_call);
                forgejo_cancel(bp->del_call);
                rclient_free(bp->rc);
                secret_free(bp->token);
                free(bp->recover_keys);
                free(bp);
        }
        free(b->pools);
        free(b);
        d->broker = NULL;
}

const char *broker_worker_url(const struct daemon *d)
{
        return d->broker ? d->broker->url : NULL;
}
