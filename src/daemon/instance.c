/* instance.c: the life of one instance, whatever the pool's mode — runner
 * identity from the pool's engine (engine.h; queue mode: an ephemeral
 * registration), worker start, claim checks, stop, release — and recovery
 * after a restart. Every transition is saved to the store before the side
 * effect it leads to; a failed save holds the side effect back (inst_save,
 * inst_flush). Owns the instance folder and worker log; the runner token
 * is placed and removed by the provider. Never talks to the forge itself,
 * never decides *whether* to launch or stop (the scaler does); orphans are
 * reaper.c's. */
#include "daemon/daemon_int.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/engine.h"
#include "daemon/outcome.h"
#include "daemon/workerspec.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/secret.h"

#define WORKER_LOG_MAX (4u << 20)

/* The forge client rejects longer handles, so a row never cuts one. */
_Static_assert(sizeof(((struct store_instance *)0)->handle) > FORGEJO_HANDLE_MAX, "handle fits a row");

/* ---- helpers ------------------------------------------------------------ */

static struct provider *inst_provider(struct daemon *d, const struct inst *in)
{
        for (size_t p = 0; p < d->n_providers; p++)
                if (strcmp(d->providers[p].name, in->row.provider) == 0 && d->providers[p].ops)
                        return &d->providers[p];
        return NULL;
}

static const char *pool_name(const struct inst *in)
{
        return in->row.pool;
}

static void inst_dir(struct daemon *d, const struct inst *in, char *buf, size_t n)
{
        snprintf(buf, n, "%s/instances/%s", d->state_dir, in->row.name);
}

static void set_state(struct inst *in, enum store_state st)
{
        if (in->row.state != st) {
                in->row.state = st;
                in->row.state_ms = daemon_wall_ms();
        }
}

int inst_save(struct daemon *d, struct inst *in)
{
        int r = store_instance_update(d->store, &in->row);

        if (r < 0) {
                /* Once per instance and outage: a full disk fails every
                 * write, and inst_flush() retries them each second. */
                if (!in->dirty)
                        log_error("store", "cannot save instance; what depends on it waits",
                                  KS("instance", in->row.name),
                                  KS("state", store_state_name(in->row.state)), KERR(r));
                in->dirty = true;
                d->store_failures++;
                d->store_error = r;
                return r;
        }
        in->dirty = false;
        return 0;
}

size_t inst_flush(struct daemon *d)
{
        size_t left = 0;

        for (size_t i = 0; i < d->n_insts; i++)
                if (d->insts[i]->dirty && inst_save(d, d->insts[i]) < 0)
                        left++;
        return left;
}

/* Replaces the instance's pending retry, if any. */
static void arm_retry(struct daemon *d, struct inst *in, int64_t delay_ms, loop_timer_cb cb)
{
        if (in->retry)
                loop_timer_cancel(d->loop, in->retry);
        in->retry = loop_timer_add(d->loop, delay_ms, cb, in);
}

static void set_reason(struct inst *in, const char *reason)
{
        if (!in->row.reason[0] && reason)
                snprintf(in->row.reason, sizeof(in->row.reason), "%s", reason);
}

static void backoff_handle(struct daemon *d, const char *handle)
{
        struct handle_note *b = demand_handle_note(&d->backoff, handle);

        if (!b)
                return;
        /* 5 s, 10 s, 20 s … up to 5 min between launch attempts for a job
         * whose workers keep failing, so one broken job cannot burn the
         * pool. */
        b->attempts++;
        int64_t delay = 5000;
        for (int i = 1; i < b->attempts && delay < 300000; i++)
                delay *= 2;
        b->until = daemon_wall_ms() + (delay > 300000 ? 300000 : delay);
}

static void add_inst(struct daemon *d, struct inst *in)
{
        d->insts[d->n_insts++] = in;
        strmap_put(&d->by_name, in->row.name, in);
        if (!in->row.warm && in->row.handle[0])
                strmap_put(&d->by_handle, in->row.handle, in);
}

void inst_remove(struct daemon *d, struct inst *in)
{
        if (in->op != OP_NONE)
                engine_of(d, in)->cancel(in);
        in->op = OP_NONE;
        if (in->retry)
                loop_timer_cancel(d->loop, in->retry);
        if (strmap_get(&d->by_name, in->row.name) == in)
                strmap_del(&d->by_name, in->row.name);
        if (in->row.handle[0] && strmap_get(&d->by_handle, in->row.handle) == in)
                strmap_del(&d->by_handle, in->row.handle);
        for (size_t i = 0; i < d->n_insts; i++)
                if (d->insts[i] == in) {
                        d->insts[i] = d->insts[--d->n_insts];
                        break;
                }
        free(in);
}

void inst_free_all(struct daemon *d)
{
        while (d->n_insts)
                inst_remove(d, d->insts[d->n_insts - 1]);
        free(d->insts);
        d->insts = NULL;
        d->cap_insts = 0;
        strmap_done(&d->by_name);
        strmap_done(&d->by_handle);
}

const char *inst_launch_result(const struct inst *in)
{
        if (in->row.claimed_ms)
                return "claimed";
        if (in->row.state == STORE_FAILED)
                return "failed";
        return "wasted";
}

static struct outcome_facts facts(const struct inst *in)
{
        return (struct outcome_facts){
                .state = in->row.state, .stop_requested = in->stop_requested,
                .claimed = in->row.claimed_ms != 0, .exited = in->exited, .exit = in->exit,
        };
}

static void apply_outcome(struct daemon *d, struct inst *in, struct outcome o)
{
        if (o.reason)
                set_reason(in, o.reason);
        if (o.final)
                in->final = o.final;
        if (o.claimed && !in->row.claimed_ms)
                in->row.claimed_ms = daemon_wall_ms();
        if (o.backoff)
                backoff_handle(d, in->row.handle);
        if (o.exited_unclaimed)
                log_warn("instance", "worker exited before claiming its job",
                         KS("instance", in->row.name), KS("pool", pool_name(in)),
                         KI("exit_code", in->row.exit_code));
}

/* ---- finishing ---------------------------------------------------------- */

static void cleanup(struct daemon *d, struct inst *in);
static void retry_cleanup(struct loop *l, void *ud);

static void finish(struct daemon *d, struct inst *in)
{
        char dir[PATH_MAX - 32];

        set_state(in, in->final == STORE_FAILED ? STORE_FAILED : STORE_DONE);
        if (inst_save(d, in) < 0) {
                /* The row must say it ended before its files and memory go. */
                arm_retry(d, in, 1000, retry_cleanup);
                return;
        }
        inst_dir(d, in, dir, sizeof(dir));
        struct provider *p = inst_provider(d, in);
        int cr = p && p->ops->cleanup ? p->ops->cleanup(p, in->row.name, in->row.provider_ref, dir) : 0;
        if (cr < 0)
                log_warn("instance", "cannot remove the worker's leftovers", KS("instance", in->row.name),
                         KERR(cr));
        /* A failed worker's log is kept for diagnosis (pruned with its row);
         * everything else goes. */
        if (in->row.state == STORE_DONE)
                fs_rm_rf(dir);
        if (!in->counted) {
                const char *res = inst_launch_result(in);
                in->counted = true;
                api_count_launch(d, in, res);
                /* Only the workers' own failures pause the pool; a forge
                 * that refuses or times out registrations is already paced
                 * by the per-job backoff and the listing's backoff. */
                bool worker_failed = strcmp(res, "failed") == 0 &&
                                     (strcmp(in->row.reason, "start_failed") == 0 ||
                                      strcmp(in->row.reason, "exited_unclaimed") == 0);
                if (in->pool >= 0 && (worker_failed || strcmp(res, "claimed") == 0))
                        daemon_pool_outcome(d, in->pool, worker_failed);
        }
        if (!in->row.warm)
                demand_note_finished(d, in->row.handle);
        else if (in->pool >= 0 && strcmp(in->row.reason, "completed") == 0)
                daemon_note_warm_done(d, in->pool,
                                      in->claimed_mono ? in->claimed_mono : loop_now_ms(d->loop));
        log_debug("instance", "finished", KS("instance", in->row.name), KS("pool", pool_name(in)),
                  KS("state", store_state_name(in->row.state)), KS("reason", in->row.reason),
                  KI("exit_code", in->row.exit_code));
        inst_remove(d, in);
        daemon_schedule_tick(d);
}

static void retry_cleanup(struct loop *l, void *ud)
{
        struct inst *in = ud;

        in->retry = NULL;
        cleanup(in->d, in);
}

void inst_released(struct daemon *d, struct inst *in, const struct engine_result *res, bool was_gone)
{
        if (res->err == 0) {
                struct outcome_facts f = facts(in);
                in->row.runner_deleted = true;
                apply_outcome(d, in, outcome_runner_deleted(&f, was_gone));
                finish(d, in);
                return;
        }
        in->cleanup_failures++;
        int64_t delay = 1000;
        for (int i = 1; i < in->cleanup_failures && delay < 60000; i++)
                delay *= 2;
        if (in->cleanup_failures == 1 || in->cleanup_failures % 10 == 0)
                log_warn("instance", "cannot delete runner registration; will retry",
                         KS("instance", in->row.name), KI("runner_id", in->row.runner_id),
                         KS("reason", res->reason), KI("retry_ms", delay));
        arm_retry(d, in, delay > 60000 ? 60000 : delay, retry_cleanup);
}

/* Worker gone (or never started): make sure the registration is gone too,
 * then finish. The row is STOPPING from here until the forge confirms. */
static void cleanup(struct daemon *d, struct inst *in)
{
        int r;

        if (in->op == OP_VERIFY) {
                engine_of(d, in)->cancel(in);
                in->op = OP_NONE;
        }
        if (in->op != OP_NONE)
                return; /* the call in flight comes back here */
        if (store_state_live(in->row.state) && in->row.state != STORE_STOPPING) {
                set_state(in, STORE_STOPPING);
                in->dirty = true;
        }
        /* A registration is deleted only once the row says so: a restart
         * must find STOPPING, not a live instance whose runner is gone. */
        if (in->dirty && store_state_live(in->row.state) && inst_save(d, in) < 0) {
                arm_retry(d, in, 1000, retry_cleanup);
                return;
        }
        if (in->row.runner_id == 0 || in->row.runner_deleted) {
                /* No id: the registration, if the POST did create one, is
                 * found by name in the orphan sweep. */
                in->row.runner_deleted = true;
                finish(d, in);
                return;
        }
        r = engine_of(d, in)->release(d, in);
        if (r == -ENOENT) {
                log_error("instance", "forge or scope of instance no longer configured; cannot delete its registration",
                          KS("instance", in->row.name), KS("forge", in->row.forge), KS("scope", in->row.scope));
                in->row.runner_deleted = true;
                finish(d, in);
                return;
        }
        if (r < 0) {
                log_error("instance", "cannot start registration delete", KS("instance", in->row.name), KERR(r));
                arm_retry(d, in, 5000, retry_cleanup);
                return;
        }
        in->op = OP_DELETE;
}

/* ---- provider events ---------------------------------------------------- */

static void claim(struct daemon *d, struct inst *in, int64_t asked);
static void stop_effect(struct daemon *d, struct inst *in);

static void on_provider(void *ud, const struct provider_event *ev)
{
        struct inst *in = ud;
        struct daemon *d = in->d;

        switch (ev->type) {
        case PROVIDER_EV_STARTED:
                in->starting = false;
                in->provider_live = true;
                snprintf(in->row.provider_ref, sizeof(in->row.provider_ref), "%s", ev->ref ? ev->ref : "");
                if (in->row.state == STORE_STARTING) {
                        set_state(in, STORE_WAITING);
                        if (in->row.warm)
                                in->idle_since = daemon_wall_ms();
                }
                if (in->stop_requested)
                        stop_effect(d, in); /* saves first */
                else
                        inst_save(d, in);
                break;
        case PROVIDER_EV_FAILED:
                in->starting = false;
                in->provider_live = false;
                in->exited = true;
                log_warn("instance", "worker could not be started", KS("instance", in->row.name),
                         KS("pool", pool_name(in)), KERR(ev->error));
                set_reason(in, "start_failed");
                in->final = STORE_FAILED;
                backoff_handle(d, in->row.handle);
                cleanup(d, in);
                break;
        case PROVIDER_EV_EXITED:
                in->starting = false;
                in->provider_live = false;
                in->exited = true;
                in->exit = ev->exit;
                in->row.exit_code = outcome_exit_code(&ev->exit);
                if (!in->stop_requested) {
                        struct outcome_facts f = facts(in);
                        apply_outcome(d, in, outcome_worker_exited(&f));
                }
                cleanup(d, in);
                break;
        }
}

/* ---- launch ------------------------------------------------------------- */

static void start_worker(struct daemon *d, struct inst *in, const char *token)
{
        struct config_pool *pc = d->pools[in->pool].cfg;
        struct provider *prov = inst_provider(d, in);
        char dir[PATH_MAX - 32], tokpath[PATH_MAX], logpath[PATH_MAX];
        struct workerspec ws = { 0 };
        int r;

        inst_dir(d, in, dir, sizeof(dir));
        snprintf(logpath, sizeof(logpath), "%s/worker.log", dir);
        /* The instances folder exists: one mkdir. The provider places the
         * token and says where the worker reads it. */
        if (mkdir(dir, 0700) < 0 && errno != EEXIST && (r = fs_mkdir_p(dir, 0700)) < 0) {
                log_error("instance", "cannot create the instance folder", KS("instance", in->row.name),
                          KS("path", dir), KERR(r));
                goto fail;
        }
        if (!prov) {
                r = -ENOENT;
                log_error("instance", "provider not available", KS("instance", in->row.name),
                          KS("provider", in->row.provider));
                goto fail;
        }
        r = prov->ops->token_path(prov, in->row.name, dir, tokpath, sizeof(tokpath));
        if (r < 0) {
                log_error("instance", "no path for the runner token", KS("instance", in->row.name), KERR(r));
                goto fail;
        }
        struct workerspec_in wi = {
                .runner = &pc->runner, .labels = &pc->labels, .pool = pc->name,
                .instance = in->row.name, .forge_url = d->forges[pc->forge_idx].cfg->url,
                .runner_uuid = in->row.runner_uuid, .token_path = tokpath,
                .handle = in->row.warm ? NULL : in->row.handle,
        };
        if ((r = workerspec_build(&wi, &ws)) < 0) {
                log_error("instance", "cannot build the worker's command line", KS("instance", in->row.name),
                          KERR(r));
                goto fail;
        }
        struct provider_spec spec = {
                .instance = in->row.name, .pool = pc->name, .workdir = dir,
                .argv = (const char *const *)ws.argv, .env = (const char *const *)ws.env,
                .token = token, .token_len = strlen(token),
                .log_path = logpath, .log_max = WORKER_LOG_MAX,
        };
        in->starting = true;
        r = prov->ops->create(prov, &spec, on_provider, in);
        if (r < 0) {
                in->starting = false;
                log_warn("instance", "worker could not be started", KS("instance", in->row.name),
                         KS("pool", pc->name), KS("reason", prov->error), KERR(r));
                goto fail;
        }
        /* Persist the worker's reference before the loop runs again: a
         * crash from here on leaves a row a restart can adopt from. */
        const char *ref = prov->ops->ref ? prov->ops->ref(prov, in->row.name) : NULL;
        if (ref) {
                snprintf(in->row.provider_ref, sizeof(in->row.provider_ref), "%s", ref);
                inst_save(d, in);
        }
        goto out;
fail:
        set_reason(in, "start_failed");
        in->final = STORE_FAILED;
        in->exited = true;
        backoff_handle(d, in->row.handle);
        cleanup(d, in);
out:
        workerspec_done(&ws);
}

void inst_acquired(struct daemon *d, struct inst *in, const struct engine_result *res,
                   const struct engine_identity *id)
{
        if (!id) {
                log_warn("instance", "runner registration failed", KS("instance", in->row.name),
                         KS("pool", pool_name(in)), KS("reason", res->reason), KI("status", res->status));
                set_reason(in, "register_failed");
                in->final = STORE_FAILED;
                backoff_handle(d, in->row.handle);
                /* Nothing of ours to delete; a registration the forge made
                 * all the same is the orphan sweep's. */
                in->row.runner_deleted = true;
                cleanup(d, in);
                return;
        }
        in->row.runner_id = id->id;
        snprintf(in->row.runner_uuid, sizeof(in->row.runner_uuid), "%s", id->uuid);
        if (in->stop_requested) {
                cleanup(d, in);
                return;
        }
        set_state(in, STORE_STARTING);
        if (inst_save(d, in) < 0) {
                /* Not durable: undo on the forge rather than run a worker a
                 * restart could not account for. */
                set_reason(in, "store_failed");
                in->final = STORE_FAILED;
                cleanup(d, in);
                return;
        }
        start_worker(d, in, id->token);
}

void inst_start_registration(struct daemon *d, struct inst *in)
{
        int r = engine_of(d, in)->acquire(d, in);

        if (r < 0) {
                log_error("instance", "cannot start runner registration", KS("instance", in->row.name), KERR(r));
                set_reason(in, "register_failed");
                in->final = STORE_FAILED;
                cleanup(d, in);
                return;
        }
        in->op = OP_CREATE;
}

int inst_launch(struct daemon *d, int pool, const struct djob *job, int64_t job_seen_ms)
{
        struct dpool *dp = &d->pools[pool];
        struct inst *in;
        char rnd[13];
        int r;

        if (d->n_insts == d->cap_insts) {
                size_t nc = d->cap_insts ? d->cap_insts * 2 : 64;
                struct inst **ni = realloc(d->insts, nc * sizeof(*ni));
                if (!ni)
                        return -ENOMEM;
                d->insts = ni;
                d->cap_insts = nc;
        }
        in = calloc(1, sizeof(*in));
        if (!in)
                return -ENOMEM;
        in->d = d;
        in->pool = pool;
        in->final = STORE_DONE;
        secret_random_hex(rnd, 6);
        snprintf(in->row.name, sizeof(in->row.name), "%s%s-%s", d->prefix, dp->cfg->name, rnd);
        snprintf(in->row.pool, sizeof(in->row.pool), "%s", dp->cfg->name);
        snprintf(in->row.forge, sizeof(in->row.forge), "%s", dp->cfg->forge->name);
        snprintf(in->row.scope, sizeof(in->row.scope), "%s", d->groups[dp->group].scope_text);
        snprintf(in->row.provider, sizeof(in->row.provider), "%s", dp->cfg->provider->name);
        in->row.state = STORE_REGISTERING;
        in->row.warm = job == NULL;
        if (job) {
                in->row.job_id = job->id;
                snprintf(in->row.handle, sizeof(in->row.handle), "%s", job->handle);
                in->row.job_seen_ms = job_seen_ms;
        }
        in->row.created_ms = in->row.state_ms = daemon_wall_ms();
        in->row.exit_code = -1;
        r = store_instance_insert(d->store, &in->row);
        if (r < 0) {
                if (r != -EEXIST)
                        log_error("store", "cannot record new instance", KS("pool", dp->cfg->name), KERR(r));
                free(in);
                return r;
        }
        add_inst(d, in);
        return 0;
}

/* ---- claim checks -------------------------------------------------------- */

/* asked: when the claim check that saw it was asked (monotonic); the claim
 * came before that. */
static void claim(struct daemon *d, struct inst *in, int64_t asked)
{
        if (in->row.state != STORE_WAITING && in->row.state != STORE_STARTING)
                return;
        set_state(in, STORE_RUNNING);
        in->row.claimed_ms = daemon_wall_ms();
        in->claimed_mono = asked;
        in->idle_since = 0;
        inst_save(d, in);
        if (in->row.job_seen_ms && in->row.claimed_ms >= in->row.job_seen_ms)
                api_observe_wait(d, in, (double)(in->row.claimed_ms - in->row.job_seen_ms) / 1000.0);
        log_debug("instance", "claimed", KS("instance", in->row.name), KS("pool", pool_name(in)),
                  KI("job", in->row.job_id));
        daemon_schedule_tick(d);
}

void inst_checked(struct daemon *d, struct inst *in, const struct engine_result *res, enum engine_runner st)
{
        int64_t now = loop_now_ms(d->loop);
        int64_t interval = d->groups[d->pools[in->pool].group].interval_ms;

        if (res->err < 0) {
                in->verify_after = now + interval;
                return;
        }
        if (st == ENGINE_RUNNER_GONE) {
                /* Gone with its task: ours ran (or was cancelled mid-run).
                 * The worker exits by itself. */
                in->row.runner_deleted = true;
                if (!in->runner_gone_since)
                        in->runner_gone_since = now;
                claim(d, in, in->verify_asked);
                inst_save(d, in);
                return;
        }
        if (st == ENGINE_RUNNER_ACTIVE) {
                claim(d, in, in->verify_asked);
                return;
        }
        if (in->row.warm) {
                in->verify_after = now + interval;
                return;
        }
        /* Registered and idle: whether that means its job went elsewhere is
         * the scaler's call, with the listings it has. */
        in->idle_checked = in->verify_asked;
        in->verify_after = now + 2000;
        daemon_schedule_tick(d);
}

void inst_verify(struct daemon *d, struct inst *in)
{
        if (in->op != OP_NONE || in->row.runner_id == 0)
                return;
        if (engine_of(d, in)->check(d, in) == 0) {
                in->op = OP_VERIFY;
                in->verify_asked = loop_now_ms(d->loop);
        }
}

/* ---- stop --------------------------------------------------------------- */

static void retry_stop(struct loop *l, void *ud)
{
        struct inst *in = ud;

        in->retry = NULL;
        stop_effect(in->d, in);
}

void inst_stop(struct daemon *d, struct inst *in, const char *reason, enum store_state final)
{
        if (in->stop_requested)
                return;
        in->stop_requested = true;
        set_reason(in, reason);
        in->final = final;
        set_state(in, STORE_STOPPING);
        stop_effect(d, in);
}

/* Nothing is stopped before the row says STOPPING: a worker stopped under
 * a row that still says RUNNING would be taken, after a restart, for one
 * that finished its job. */
static void stop_effect(struct daemon *d, struct inst *in)
{
        struct provider *p;

        if (in->exited) {
                cleanup(d, in);
                return;
        }
        if (inst_save(d, in) < 0) {
                arm_retry(d, in, 1000, retry_stop);
                return;
        }
        log_info("instance", "stopping", KS("instance", in->row.name), KS("pool", pool_name(in)),
                 KS("reason", in->row.reason));
        if (in->op == OP_CREATE || in->starting)
                return; /* on_created / on_provider continue from here */
        if (in->provider_live && (p = inst_provider(d, in)) != NULL) {
                if (p->ops->stop(p, in->row.name) == 0)
                        return; /* EXITED continues */
                in->provider_live = false;
        }
        cleanup(d, in);
}

/* ---- restart ------------------------------------------------------------ */

void inst_resume(struct daemon *d, struct inst *in)
{
        struct provider *p = inst_provider(d, in);
        int r;

        if (!store_state_live(in->row.state)) {
                /* Terminal row whose registration was never confirmed gone. */
                in->final = in->row.state;
                in->exited = true;
                cleanup(d, in);
                return;
        }
        if (in->row.state == STORE_REGISTERING) {
                /* The POST may or may not have reached the forge; no id was
                 * saved. The orphan sweep deletes it by name. */
                set_reason(in, "lost_at_restart");
                in->final = STORE_FAILED;
                in->row.runner_deleted = true;
                finish(d, in);
                return;
        }
        /* Without a saved ref (the daemon died between spawning the worker
         * and saving it) the provider may still find the worker by name. */
        if (p && (p->ops->caps & PROVIDER_CAP_ADOPT) && (in->row.provider_ref[0] || in->row.state == STORE_STARTING)) {
                r = p->ops->adopt(p, in->row.name, in->row.provider_ref, on_provider, in);
                if (r == 0) {
                        const char *ref = p->ops->ref ? p->ops->ref(p, in->row.name) : NULL;
                        if (ref && strcmp(ref, in->row.provider_ref) != 0) {
                                snprintf(in->row.provider_ref, sizeof(in->row.provider_ref), "%s", ref);
                                inst_save(d, in);
                        }
                        in->provider_live = true;
                        if (in->row.state == STORE_STARTING) {
                                /* Its STARTED was not saved before the crash. */
                                set_state(in, STORE_WAITING);
                                inst_save(d, in);
                        }
                        if (in->row.warm && in->row.state == STORE_WAITING)
                                in->idle_since = daemon_wall_ms();
                        log_debug("instance", "adopted", KS("instance", in->row.name),
                                  KS("state", store_state_name(in->row.state)));
                        if (in->pool < 0 || in->row.state == STORE_STOPPING) {
                                in->stop_requested = false;
                                inst_stop(d, in, in->pool < 0 ? "pool_removed" : "resumed_stop", STORE_DONE);
                        }
                        return;
                }
        }
        /* Process gone (or never recorded): finish its cleanup. A worker
         * that ran its job left no registration behind (404 → completed). */
        in->exited = true;
        in->row.exit_code = -1;
        if (in->row.state == STORE_STOPPING) {
                in->stop_requested = true;
                in->final = STORE_DONE;
        } else if (in->row.state == STORE_RUNNING) {
                set_reason(in, "completed");
                in->final = STORE_DONE;
        } else {
                /* on_deleted() tells: registration gone → it completed. */
                if (!in->row.provider_ref[0])
                        set_reason(in, "lost_at_restart");
                in->final = STORE_FAILED;
        }
        cleanup(d, in);
}
