/* instance.c: carries out one instance's life, whatever the pool's mode.
 * What happens next is decided by the pure state machine (lifecycle.h):
 * every report — from the pool's engine (engine.h), the provider, the
 * scaler, a restart, a timer — becomes an event, and this file runs the
 * effects it yields in order: saves, the engine's acquire/check/release,
 * the provider's create/stop, the end of the instance. A save that fails
 * stops the list there, so nothing outside the process happens before the
 * row that announces it is in the store. Owns the instance folder and
 * worker log; the runner token is placed and removed by the provider.
 * Never decides anything itself, never talks to the forge; orphans are
 * reaper.c's. */
#include "daemon/daemon_int.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/broker.h"
#include "engine/engine.h"
#include "daemon/lifecycle.h"
#include "daemon/workerspec.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/secret.h"

#define WORKER_LOG_MAX (4u << 20)
#define WORKER_LOG "worker.log"

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

static void inst_dir(struct daemon *d, const struct inst *in, char *buf, size_t n)
{
        snprintf(buf, n, "%s/instances/%s", d->state_dir, in->row.name);
}

int inst_save(struct daemon *d, struct inst *in)
{
        int r = store_instance_update(d->store, &in->row);

        if (r < 0) {
                /* Once per instance and outage: a full disk fails every
                 * write, and each is retried every second. */
                if (!in->save_failing)
                        log_error("store", "cannot save instance; what depends on it waits",
                                  KS("instance", in->row.name),
                                  KS("state", store_state_name(in->row.state)), KERR(r));
                in->save_failing = true;
                d->store_failures++;
                d->store_error = r;
                return r;
        }
        in->save_failing = false;
        in->lc.unsaved = false;
        return 0;
}

size_t inst_flush(struct daemon *d)
{
        size_t left = 0;

        for (size_t i = 0; i < d->n_insts; i++)
                if (d->insts[i]->lc.unsaved && inst_save(d, d->insts[i]) < 0)
                        left++;
        return left;
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

static int add_inst(struct daemon *d, struct inst *in)
{
        if (d->n_insts == d->cap_insts) {
                size_t nc = d->cap_insts ? d->cap_insts * 2 : 64;
                struct inst **ni = realloc(d->insts, nc * sizeof(*ni));
                if (!ni)
                        return -ENOMEM;
                d->insts = ni;
                d->cap_insts = nc;
        }
        d->insts[d->n_insts++] = in;
        strmap_put(&d->by_name, in->row.name, in);
        if (!in->row.warm && in->row.handle[0] && store_state_live(in->row.state))
                strmap_put(&d->by_handle, in->row.handle, in);
        return 0;
}

static struct inst *inst_new(struct daemon *d, int pool)
{
        struct inst *in = calloc(1, sizeof(*in));

        if (!in)
                return NULL;
        in->d = d;
        in->pool = pool;
        lifecycle_init(&in->lc, &in->row);
        return in;
}

void inst_remove(struct daemon *d, struct inst *in)
{
        if (in->lc.op != LIFECYCLE_OP_NONE)
                engine_of(d, in)->cancel(in);
        in->lc.op = LIFECYCLE_OP_NONE;
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
        return lifecycle_result(&in->row);
}

/* ---- effects ------------------------------------------------------------- */

static void step(struct daemon *d, struct inst *in, struct lifecycle_event *ev, const char *token);

static void feed(struct daemon *d, struct inst *in, enum lifecycle_event_type type)
{
        struct lifecycle_event ev = { .type = type };

        step(d, in, &ev, NULL);
}

static void on_retry(struct loop *l, void *ud)
{
        struct inst *in = ud;

        in->retry = NULL;
        feed(in->d, in, LIFECYCLE_EV_RETRY);
}

static void on_provider(void *ud, const struct provider_event *pe);

/* 0: create() accepted; -errno: the worker will not start. */
static int start_worker(struct daemon *d, struct inst *in, const char *token)
{
        struct config_pool *pc = d->pools[in->pool].cfg;
        struct provider *prov = inst_provider(d, in);
        char dir[PATH_MAX - 32], tokpath[PATH_MAX], logpath[PATH_MAX];
        struct workerspec ws = { 0 };
        int r;

        inst_dir(d, in, dir, sizeof(dir));
        snprintf(logpath, sizeof(logpath), "%s/" WORKER_LOG, dir);
        /* The instances folder exists: one mkdir. The provider places the
         * token and says where the worker reads it. */
        if (mkdir(dir, 0700) < 0 && errno != EEXIST && (r = fs_mkdir_p(dir, 0700)) < 0) {
                log_error("instance", "cannot create the instance folder", KS("instance", in->row.name),
                          KS("path", dir), KERR(r));
                return r;
        }
        if (!prov || !token) {
                log_error("instance", "provider not available", KS("instance", in->row.name),
                          KS("provider", in->row.provider));
                return -ENOENT;
        }
        r = prov->ops->token_path(prov, in->row.name, dir, tokpath, sizeof(tokpath));
        if (r < 0) {
                log_error("instance", "no path for the runner token", KS("instance", in->row.name), KERR(r));
                return r;
        }
        /* A broker worker talks to the broker, for the task it was
         * started for: no forge URL, no handle to ask for. */
        bool broker = pc->mode == CONFIG_MODE_BROKER;
        struct workerspec_in wi = {
                .runner = &pc->runner, .labels = &pc->labels, .pool = pc->name,
                .instance = in->row.name,
                .forge_url = broker ? broker_worker_url(d) : d->forges[pc->forge_idx].cfg->url,
                .runner_uuid = in->row.runner_uuid, .token_path = tokpath,
                .handle = in->row.warm || broker ? NULL : in->row.handle,
        };
        if ((r = workerspec_build(&wi, &ws)) < 0) {
                log_error("instance", "cannot build the worker's command line", KS("instance", in->row.name),
                          KERR(r));
                return r;
        }
        struct provider_spec spec = {
                .instance = in->row.name, .pool = pc->name, .workdir = dir,
                .argv = (const char *const *)ws.argv, .env = (const char *const *)ws.env,
                .token = token, .token_len = strlen(token),
                .log_path = logpath, .log_max = WORKER_LOG_MAX,
        };
        in->create_mono = loop_now_ms(d->loop);
        r = prov->ops->create(prov, &spec, on_provider, in);
        if (r < 0) {
                in->failure = prov->failure;
                log_warn("instance", "worker could not be started", KS("instance", in->row.name),
                         KS("pool", pc->name), KS("reason", prov->error), KERR(r));
        }
        workerspec_done(&ws);
        return r;
}

/* The row is DONE or FAILED and saved: the provider's leftovers, the
 * counters, and the instance goes. */
static void finish(struct daemon *d, struct inst *in)
{
        char dir[PATH_MAX - 32];

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
                /* An engine's refusal names itself in the metric (bounded:
                 * a closed set of categories); a worker that claimed its
                 * job counts as claimed whatever came after. */
                bool engine_failed = in->failure != PROVIDER_FAIL_NONE && strcmp(res, "claimed") != 0;
                if (engine_failed)
                        res = provider_failure_name(in->failure);
                in->counted = true;
                api_count_launch(d, in, res);
                /* Only the workers' own failures and the engine's refusals
                 * pause the pool; a forge that refuses or times out
                 * registrations is already paced by the per-job backoff and
                 * the listing's backoff. */
                bool worker_failed = engine_failed ||
                                     (strcmp(res, "failed") == 0 &&
                                      (strcmp(in->row.reason, "start_failed") == 0 ||
                                       strcmp(in->row.reason, "exited_unclaimed") == 0));
                if (in->pool >= 0 && (worker_failed || strcmp(res, "claimed") == 0))
                        daemon_pool_outcome(d, in->pool, worker_failed);
        }
        if (!in->row.warm)
                demand_note_finished(d, in->row.handle);
        else if (in->pool >= 0 && strcmp(in->row.reason, "completed") == 0)
                daemon_note_warm_done(d, in->pool,
                                      in->lc.claimed_mono ? in->lc.claimed_mono : loop_now_ms(d->loop));
        log_debug("instance", "finished", KS("instance", in->row.name), KS("pool", in->row.pool),
                  KS("state", store_state_name(in->row.state)), KS("reason", in->row.reason),
                  KI("exit_code", in->row.exit_code));
        inst_remove(d, in);
        daemon_schedule_tick(d);
}

/* Runs one effect. Returns the event it failed with at once (the rest of
 * the list is dropped and that event fed instead), or -1 to go on. The
 * instance is gone after FINISH. */
static int run(struct daemon *d, struct inst *in, enum lifecycle_effect e, const char *token)
{
        const struct engine_ops *eng = engine_of(d, in);
        struct provider *p;
        int r;

        switch (e) {
        case LIFECYCLE_DO_SAVE:
                return inst_save(d, in) < 0 ? LIFECYCLE_EV_SAVE_FAILED : -1;
        case LIFECYCLE_DO_ACQUIRE:
                if ((r = eng->acquire(d, in)) < 0) {
                        log_error("instance", "cannot start runner registration", KS("instance", in->row.name),
                                  KERR(r));
                        return LIFECYCLE_EV_ACQUIRE_FAILED;
                }
                return -1;
        case LIFECYCLE_DO_START_WORKER:
                return start_worker(d, in, token) < 0 ? LIFECYCLE_EV_START_FAILED : LIFECYCLE_EV_CREATED;
        case LIFECYCLE_DO_STOP_WORKER:
                log_info("instance", "stopping", KS("instance", in->row.name), KS("pool", in->row.pool),
                         KS("reason", in->row.reason));
                p = inst_provider(d, in);
                return p && p->ops->stop(p, in->row.name) == 0 ? -1 : LIFECYCLE_EV_STOP_FAILED;
        case LIFECYCLE_DO_CHECK:
                return eng->check(d, in) < 0 ? LIFECYCLE_EV_CHECK_FAILED : -1;
        case LIFECYCLE_DO_CANCEL_CHECK:
                eng->cancel(in);
                return -1;
        case LIFECYCLE_DO_RELEASE:
                r = eng->release(d, in);
                if (r == -ENOENT) {
                        log_error("instance", "forge or scope of instance no longer configured; cannot delete its registration",
                                  KS("instance", in->row.name), KS("forge", in->row.forge),
                                  KS("scope", in->row.scope));
                        return LIFECYCLE_EV_RELEASE_IMPOSSIBLE;
                }
                if (r < 0) {
                        log_error("instance", "cannot start registration delete", KS("instance", in->row.name),
                                  KERR(r));
                        return LIFECYCLE_EV_RELEASE_FAILED;
                }
                return -1;
        case LIFECYCLE_DO_FINISH:
                finish(d, in);
                return -1;
        case LIFECYCLE_DO_BACKOFF:
                backoff_handle(d, in->row.handle);
                return -1;
        case LIFECYCLE_DO_CLAIMED:
                if (in->row.job_seen_ms && in->row.claimed_ms >= in->row.job_seen_ms)
                        api_observe_wait(d, in, (double)(in->row.claimed_ms - in->row.job_seen_ms) / 1000.0);
                log_debug("instance", "claimed", KS("instance", in->row.name), KS("pool", in->row.pool),
                          KI("job", in->row.job_id));
                daemon_schedule_tick(d);
                return -1;
        case LIFECYCLE_DO_PLAN:
                daemon_schedule_tick(d);
                return -1;
        case LIFECYCLE_DO_WARN_UNCLAIMED:
                log_warn("instance", "worker exited before claiming its job", KS("instance", in->row.name),
                         KS("pool", in->row.pool), KI("exit_code", in->row.exit_code));
                return -1;
        }
        return -1;
}

/* One event through the state machine, then its effects in order. An
 * effect that fails at once turns into the event that says so. token: the
 * runner token, for ACQUIRED only. */
static void step(struct daemon *d, struct inst *in, struct lifecycle_event *ev, const char *token)
{
        struct lifecycle_effects fx;

        for (int depth = 0; depth < 8; depth++) {
                int next = -1;

                ev->wall = daemon_wall_ms();
                ev->mono = loop_now_ms(d->loop);
                lifecycle_step(&in->lc, ev, &fx);
                if (in->retry) {
                        loop_timer_cancel(d->loop, in->retry);
                        in->retry = NULL;
                }
                if (fx.retry_ms > 0)
                        in->retry = loop_timer_add(d->loop, fx.retry_ms, on_retry, in);
                for (size_t i = 0; i < fx.n && next < 0; i++) {
                        bool last = fx.v[i] == LIFECYCLE_DO_FINISH;
                        next = run(d, in, fx.v[i], token);
                        if (last)
                                return; /* in is freed */
                }
                if (next < 0)
                        return;
                struct lifecycle_event nev = { .type = (enum lifecycle_event_type)next };
                if (next == LIFECYCLE_EV_CREATED) {
                        struct provider *p = inst_provider(d, in);
                        nev.ref = p && p->ops->ref ? p->ops->ref(p, in->row.name) : NULL;
                }
                *ev = nev;
                token = NULL;
        }
        /* Each failure-at-once moves the machine forward, so this is never
         * reached; if it were, the retry timer still comes. */
        log_error("instance", "too many immediate failures in one step", KS("instance", in->row.name));
}

/* ---- the reports, as events ------------------------------------------------ */

static void on_provider(void *ud, const struct provider_event *pe)
{
        struct inst *in = ud;
        struct lifecycle_event ev = { 0 };

        switch (pe->type) {
        case PROVIDER_EV_STARTED:
                if (in->create_mono)
                        api_observe_worker_start(in->d, in,
                                                 (double)(loop_now_ms(in->d->loop) - in->create_mono) / 1000.0);
                ev.type = LIFECYCLE_EV_STARTED;
                ev.ref = pe->ref;
                break;
        case PROVIDER_EV_FAILED:
                in->failure = pe->failure;
                log_warn("instance", "worker could not be started", KS("instance", in->row.name),
                         KS("pool", in->row.pool), KS("reason", pe->detail ? pe->detail : ""),
                         KERR(pe->error));
                ev.type = LIFECYCLE_EV_START_FAILED;
                break;
        case PROVIDER_EV_EXITED:
                if (pe->failure != PROVIDER_FAIL_NONE) {
                        in->failure = pe->failure;
                        log_warn("instance", "the engine ended the worker",
                                 KS("instance", in->row.name), KS("pool", in->row.pool),
                                 KS("failure", provider_failure_name(pe->failure)),
                                 KS("reason", pe->detail ? pe->detail : ""));
                } else if (pe->detail) {
                        log_info("instance", "worker exited", KS("instance", in->row.name),
                                 KS("pool", in->row.pool), KS("reason", pe->detail));
                }
                ev.type = LIFECYCLE_EV_EXITED;
                ev.exit = pe->exit;
                break;
        }
        step(in->d, in, &ev, NULL);
}

void inst_acquired(struct daemon *d, struct inst *in, const struct engine_result *res,
                   const struct engine_identity *id)
{
        struct lifecycle_event ev = { .type = LIFECYCLE_EV_ACQUIRE_FAILED };

        if (!id) {
                log_warn("instance", "runner registration failed", KS("instance", in->row.name),
                         KS("pool", in->row.pool), KS("reason", res->reason), KI("status", res->status));
                step(d, in, &ev, NULL);
                return;
        }
        ev.type = LIFECYCLE_EV_ACQUIRED;
        ev.runner_id = id->id;
        ev.runner_uuid = id->uuid;
        step(d, in, &ev, id->token);
}

void inst_released(struct daemon *d, struct inst *in, const struct engine_result *res, bool was_gone)
{
        struct lifecycle_event ev = { .type = LIFECYCLE_EV_RELEASED, .was_gone = was_gone };

        if (res->err < 0) {
                ev.type = LIFECYCLE_EV_RELEASE_FAILED;
                int n = in->lc.release_failures + 1;
                if (n == 1 || n % 10 == 0)
                        log_warn("instance", "cannot delete runner registration; will retry",
                                 KS("instance", in->row.name), KI("runner_id", in->row.runner_id),
                                 KS("reason", res->reason), KI("failures", n));
        }
        step(d, in, &ev, NULL);
}

void inst_checked(struct daemon *d, struct inst *in, const struct engine_result *res, enum engine_runner st)
{
        struct lifecycle_event ev = {
                .type = LIFECYCLE_EV_CHECKED,
                .check_interval = in->pool >= 0 ? d->groups[d->pools[in->pool].group].interval_ms : 5000,
        };

        if (res->err < 0)
                ev.runner = LIFECYCLE_RUNNER_UNKNOWN;
        else if (st == ENGINE_RUNNER_GONE)
                ev.runner = LIFECYCLE_RUNNER_GONE;
        else if (st == ENGINE_RUNNER_ACTIVE)
                ev.runner = LIFECYCLE_RUNNER_ACTIVE;
        else
                ev.runner = LIFECYCLE_RUNNER_IDLE;
        step(d, in, &ev, NULL);
}

void inst_start_registration(struct daemon *d, struct inst *in)
{
        feed(d, in, LIFECYCLE_EV_LAUNCH);
}

void inst_verify(struct daemon *d, struct inst *in)
{
        feed(d, in, LIFECYCLE_EV_CHECK);
}

void inst_stop(struct daemon *d, struct inst *in, const char *reason, enum store_state final)
{
        struct lifecycle_event ev = { .type = LIFECYCLE_EV_STOP, .reason = reason, .final = final };

        step(d, in, &ev, NULL);
}

/* ---- launch and restart ------------------------------------------------------ */

int inst_launch(struct daemon *d, int pool, const struct djob *job, int64_t job_seen_ms)
{
        struct dpool *dp = &d->pools[pool];
        struct inst *in = inst_new(d, pool);
        char rnd[13];
        int r;

        if (!in)
                return -ENOMEM;
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
        if ((r = add_inst(d, in)) < 0) {
                free(in);
                return r;
        }
        return 0;
}

int inst_resume(struct daemon *d, int pool, const struct store_instance *row)
{
        struct inst *in = inst_new(d, pool);
        struct lifecycle_event ev = { .type = LIFECYCLE_EV_RESUME, .pool_gone = pool < 0 };
        int r;

        if (!in)
                return -ENOMEM;
        in->row = *row;
        in->counted = true; /* counted by the run that launched it */
        if ((r = add_inst(d, in)) < 0) {
                free(in);
                return r;
        }
        struct provider *p = inst_provider(d, in);
        char dir[PATH_MAX - 32], logpath[PATH_MAX];
        inst_dir(d, in, dir, sizeof(dir));
        snprintf(logpath, sizeof(logpath), "%s/" WORKER_LOG, dir);
        if (p && (p->ops->caps & PROVIDER_CAP_ADOPT) && lifecycle_wants_adopt(&in->row) &&
            p->ops->adopt(p, in->row.name, in->row.provider_ref, logpath, WORKER_LOG_MAX, on_provider, in) == 0) {
                ev.adopted = true;
                ev.ref = p->ops->ref ? p->ops->ref(p, in->row.name) : NULL;
                log_debug("instance", "adopted", KS("instance", in->row.name),
                          KS("state", store_state_name(in->row.state)));
        }
        step(d, in, &ev, NULL);
        return 0;
}
