/* daemon.c: queue-mode daemon set-up, reload and the reconcile tick.
 * Owns: the loop, the state_dir lock, forge clients and their version
 * checks, and the tick that hands demand (demand.c) and instances to the
 * scaler and applies its plan. Pools and listing groups are pools.c's,
 * instance side effects instance.c's through the pool's engine, orphans
 * reaper.c's, HTTP and metrics api.c's. Never blocks the loop. */
#include "daemon/daemon.h"
#include "daemon/daemon_int.h"

#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>        /* malloc_trim */
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/broker.h"
#include "engine/engine.h"
#include "http/hmulti.h"
#include "util/fsutil.h"
#include "util/httpc.h"
#include "util/log.h"
#include "util/secret.h"

#define BACKOFF_MAX_MS 60000
#define TICK_PERIOD_MS 1000
#define MAX_ACTIONS 4096
#define PRUNE_PERIOD_MS (10 * 60 * 1000)
#define HISTORY_MS (24 * 3600 * 1000LL)

int64_t daemon_wall_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Exponential backoff with ±25 % jitter, so a fleet of daemons (or many
 * groups) that failed together does not retry together. */
int64_t daemon_backoff_ms(int64_t base, int failures)
{
        int64_t d = base;

        for (int i = 1; i < failures && d < BACKOFF_MAX_MS; i++)
                d *= 2;
        if (d > BACKOFF_MAX_MS)
                d = BACKOFF_MAX_MS;
        unsigned r = (unsigned)rand();
        return d * 3 / 4 + (int64_t)(r % (unsigned)(d / 2 + 1));
}

/* Whether the forge works, as far as this answer tells: a 5xx, or a 2xx
 * whose body cannot be read, comes from a forge that does not; a 4xx is
 * the forge telling us something (a missing org, a revoked token). */
bool daemon_forge_answered(const struct forgejo_result *res)
{
        if (res->status == 0 || res->status >= 500)
                return false;
        return !(res->status < 300 && res->err < 0);
}

/* ---- forge version ------------------------------------------------------ */

static void check_version(struct loop *l, void *ud);

static void on_version(void *ud, const struct forgejo_result *res, const struct forgejo_version *v)
{
        struct dforge *f = ud;
        struct daemon *d = f->d;

        f->version_inflight = false;
        f->up = daemon_forge_answered(res);
        if (res->err < 0 || !v->parsed) {
                f->version_failures++;
                int64_t delay = daemon_backoff_ms(1000, f->version_failures);
                if (f->version_failures == 1 || f->version_failures % 10 == 0)
                        log_warn("forge", "version check failed; pools on this forge wait",
                                 KS("forge", f->cfg->name), KS("reason", res->err < 0 ? res->reason : "unparsable version"),
                                 KS("version", v ? v->version : ""), KI("retry_ms", delay));
                f->version_timer = loop_timer_add(d->loop, delay, check_version, f);
                return;
        }
        f->version_major = v->major;
        snprintf(f->version, sizeof(f->version), "%s", v->version);
        log_info("forge", "connected", KS("forge", f->cfg->name), KS("version", v->version));
        for (size_t p = 0; p < d->n_pools; p++)
                if (d->pools[p].cfg->forge_idx == (size_t)(f - d->forges))
                        pools_enable(d, &d->pools[p]);
        daemon_schedule_tick(d);
}

static void check_version(struct loop *l, void *ud)
{
        struct dforge *f = ud;
        int r;

        f->version_timer = NULL;
        if (f->version_inflight)
                return;
        r = forgejo_version(f->client, on_version, f, NULL);
        if (r < 0) {
                log_error("forge", "cannot start version check", KS("forge", f->cfg->name), KERR(r));
                f->version_timer = loop_timer_add(f->d->loop, 5000, check_version, f);
                return;
        }
        f->version_inflight = true;
}

/* ---- reconcile tick ------------------------------------------------------ */

void daemon_note_warm_done(struct daemon *d, int pool, int64_t since)
{
        struct dpool *dp = &d->pools[pool];

        if (dp->n_warm_done == WARM_DONE_MAX) {
                memmove(dp->warm_done, dp->warm_done + 1, (WARM_DONE_MAX - 1) * sizeof(dp->warm_done[0]));
                dp->n_warm_done--;
        }
        dp->warm_done[dp->n_warm_done++] = since;
}

/* Warm instances of dp whose job the snapshot asked at `asked` may still
 * show as waiting: those whose claim we saw (or, unseen, whose end came)
 * after it. Older entries are settled by that snapshot and dropped. */
static int warm_done_after(struct dpool *dp, int64_t asked)
{
        size_t k = 0;

        for (size_t i = 0; i < dp->n_warm_done; i++)
                if (dp->warm_done[i] > asked)
                        dp->warm_done[k++] = dp->warm_done[i];
        dp->n_warm_done = k;
        return (int)k;
}

/* A past monotonic moment as wall-clock ms; 0 stays 0 (never). */
static int64_t mono_to_wall(int64_t t, int64_t now_mono, int64_t now_wall)
{
        return t ? now_wall - (now_mono - t) : 0;
}

static void describe_pools(struct daemon *d, struct scaler_pool *sp, struct scaler_provider *sprov, int64_t wall)
{
        for (size_t p = 0; p < d->n_pools; p++) {
                struct dpool *dp = &d->pools[p];
                struct config_pool *c = dp->cfg;
                sp[p] = (struct scaler_pool){
                        .group = dp->group, .forge = (int)c->forge_idx, .provider = (int)c->provider_idx,
                        .labels = dp->labels, .n_labels = c->labels.n,
                        /* A broker pool's workers are started for a task. */
                        .min_idle = c->mode == CONFIG_MODE_BROKER ? 0 : (int)c->min_idle,
                        .max_runners = (int)c->max_runners,
                        .idle_timeout_ms = c->idle_timeout_ms, .bootstrap_timeout_ms = c->bootstrap_timeout_ms,
                        .demand_fresh = demand_group_fresh(d, &d->groups[dp->group]), .enabled = dp->enabled,
                        .retired = dp->retired,
                        .hold = wall < dp->hold_until,
                        .warm_claims = warm_done_after(dp, d->groups[dp->group].snap_asked),
                };
        }
        /* Warm instances running a job whose claim we saw after their
         * pool's listing was asked: that listing may show the job waiting.
         * When it shows it running instead, one waiting job is written off
         * wrongly and waits for the next listing; that costs less than an
         * extra warm runner idling until idle_timeout. */
        for (size_t i = 0; i < d->n_insts; i++) {
                struct inst *in = d->insts[i];
                if (in->row.warm && in->pool >= 0 && in->row.state == STORE_RUNNING &&
                    in->lc.claimed_mono > d->groups[d->pools[in->pool].group].snap_asked)
                        sp[in->pool].warm_claims++;
        }
        for (size_t p = 0; p < d->n_providers; p++)
                sprov[p].max_instances = d->providers[p].max_instances;
}

/* What the latest fresh listing says of an instance's job, and since when
 * it says so: the scaler trusts a claim check only if asked after that. */
static enum scaler_job_state job_state_of(struct daemon *d, struct inst *in, const struct merged *m,
                                          int64_t now)
{
        if (in->row.warm || in->pool < 0 || d->pools[in->pool].group < 0 ||
            !demand_group_fresh(d, &d->groups[d->pools[in->pool].group]))
                return SCALER_JOB_UNKNOWN;
        char key[MERGE_KEY_MAX];
        enum scaler_job_state js;
        snprintf(key, sizeof(key), "%d:%s", (int)d->pools[in->pool].cfg->forge_idx, in->row.handle);
        uintptr_t idx = (uintptr_t)strmap_get(&m->by_key, key);
        if (!idx || !(m->jobs[idx - 1].groups & (UINT64_C(1) << d->pools[in->pool].group)))
                js = SCALER_JOB_GONE;
        else
                js = m->jobs[idx - 1].waiting ? SCALER_JOB_WAITING : SCALER_JOB_RUNNING;
        if (js != SCALER_JOB_RUNNING)
                in->job_running_since = 0;
        else if (!in->job_running_since)
                in->job_running_since = now;
        if (js != SCALER_JOB_GONE)
                in->job_gone_since = 0;
        else if (!in->job_gone_since)
                in->job_gone_since = now;
        return js;
}

/* The live instances as the scaler sees them; snap[i] is si[i]'s instance. */
static size_t describe_insts(struct daemon *d, const struct merged *m, struct scaler_inst *si,
                             struct inst **snap, int64_t now, int64_t wall)
{
        size_t ni = 0;

        for (size_t i = 0; i < d->n_insts; i++) {
                struct inst *in = d->insts[i];
                if (!store_state_live(in->row.state))
                        continue;
                enum scaler_job_state js = job_state_of(d, in, m, now);
                in->job_state = js;
                si[ni] = (struct scaler_inst){
                        .pool = in->pool, .state = in->row.state, .warm = in->row.warm,
                        .handle = in->row.handle, .job_state = js,
                        .created_ms = in->row.created_ms, .state_ms = in->row.state_ms,
                        .idle_since_ms = in->lc.idle_since, .stop_requested = in->lc.stop_requested,
                        .verify_inflight = in->lc.op != LIFECYCLE_OP_NONE,
                        /* The scaler compares times with now in wall-clock
                         * milliseconds (rows survive restarts); these are
                         * monotonic, so translate them. */
                        .verify_after_ms = in->lc.verify_after > now ? wall + (in->lc.verify_after - now) : 0,
                        .job_running_since_ms = mono_to_wall(in->job_running_since, now, wall),
                        .job_gone_since_ms = mono_to_wall(in->job_gone_since, now, wall),
                        .idle_checked_ms = mono_to_wall(in->lc.idle_checked, now, wall),
                        .runner_gone_since_ms = mono_to_wall(in->lc.runner_gone_since, now, wall),
                        .worker_alive = in->lc.worker == LIFECYCLE_WORKER_LIVE ||
                                        in->lc.worker == LIFECYCLE_WORKER_STOPPING,
                };
                snap[ni++] = in;
        }
        return ni;
}

/* Launches: every row in one transaction, then the registrations — rows
 * are durable before any POST goes out. fresh has room for one instance
 * per action. */
static void launch(struct daemon *d, const struct merged *m, const struct scaler_output *out,
                   struct inst **fresh, int64_t wall)
{
        size_t first_new = d->n_insts;
        bool txn = store_begin(d->store) == 0;
        /* The engines bound how many identities may be acquired at once
         * (queue mode: registrations in flight per forge); a budget per
         * engine and forge, taken once per tick. */
        int budget[2][64];
        bool known[2][64] = { { false } };

        for (size_t a = 0; a < out->n; a++) {
                const struct scaler_action *ac = &out->actions[a];
                if (ac->kind != SCALER_LAUNCH_JOB && ac->kind != SCALER_LAUNCH_WARM)
                        continue;
                const struct engine_ops *eng = engine_of_pool(d, ac->pool);
                size_t e = eng == &engine_broker_ops, fi = d->pools[ac->pool].cfg->forge_idx;
                if (fi < 64 && !known[e][fi]) {
                        budget[e][fi] = eng->slots(d, ac->pool);
                        known[e][fi] = true;
                }
                if (fi < 64 && budget[e][fi] <= 0)
                        continue;
                if (fi < 64)
                        budget[e][fi]--;
                if (ac->kind == SCALER_LAUNCH_JOB) {
                        const struct scaler_job *sj = &m->jobs[ac->job];
                        struct djob dj = { .id = sj->id, .handle = (char *)sj->handle, .waiting = true };
                        inst_launch(d, ac->pool, &dj, demand_first_seen(d, sj->handle, wall));
                } else {
                        inst_launch(d, ac->pool, NULL, 0);
                }
        }
        if (txn && store_commit(d->store) < 0) {
                /* Nothing durable: forget the new instances, retry next tick. */
                log_error("store", "cannot commit launch rows; retrying");
                store_rollback(d->store);
                while (d->n_insts > first_new)
                        inst_remove(d, d->insts[d->n_insts - 1]);
        }
        /* Starting a registration can fail at once and remove its instance
         * (reordering d->insts), so work from a copy. */
        size_t nnew = d->n_insts > first_new ? d->n_insts - first_new : 0;
        if (nnew)
                memcpy(fresh, d->insts + first_new, nnew * sizeof(*fresh));
        for (size_t i = 0; i < nnew; i++)
                inst_start_registration(d, fresh[i]);
}

/* One reconcile: demand and instances in, the scaler's plan out, applied
 * — stops and claim checks first (they free room or settle claims), then
 * launches. */
static void tick(struct loop *l, void *ud)
{
        struct daemon *d = ud;
        struct merged m;
        size_t ni = d->n_insts ? d->n_insts : 1, np = d->n_pools ? d->n_pools : 1;
        struct scaler_pool *sp = calloc(np, sizeof(*sp));
        struct scaler_provider *sprov = calloc(d->n_providers ? d->n_providers : 1, sizeof(*sprov));
        struct scaler_inst *si = calloc(ni, sizeof(*si));
        struct inst **snap = calloc(ni, sizeof(*snap)), **fresh = calloc(MAX_ACTIONS, sizeof(*fresh));
        struct scaler_action *acts = calloc(MAX_ACTIONS, sizeof(*acts));
        struct scaler_pool_stats *stats = calloc(np, sizeof(*stats));
        int64_t now = loop_now_ms(d->loop), wall = daemon_wall_ms();

        d->tick_timer = NULL;
        d->tick_scheduled = false;
        memset(&m, 0, sizeof(m));
        if (d->stopping || !sp || !sprov || !si || !snap || !fresh || !acts || !stats)
                goto out;
        broker_publish(d);
        if (demand_gather(d, &m, wall) < 0)
                goto out;
        describe_pools(d, sp, sprov, wall);
        ni = describe_insts(d, &m, si, snap, now, wall);

        struct scaler_input sin = {
                .now_ms = wall, .pools = sp, .n_pools = d->n_pools,
                .providers = sprov, .n_providers = d->n_providers,
                .jobs = m.jobs, .n_jobs = m.n, .insts = si, .n_insts = ni,
                .handle_allowed = demand_handle_allowed, .ud = d,
        };
        struct scaler_output sout = { .actions = acts, .cap = MAX_ACTIONS, .stats = stats };
        scaler_plan(&sin, &sout);
        for (size_t p = 0; p < d->n_pools; p++)
                d->pools[p].stats = stats[p];
        broker_plan_done(d);
        for (size_t a = 0; a < sout.n; a++) {
                if (acts[a].kind == SCALER_STOP)
                        inst_stop(d, snap[acts[a].inst], scaler_reason_name(acts[a].reason), STORE_DONE);
                else if (acts[a].kind == SCALER_VERIFY)
                        inst_verify(d, snap[acts[a].inst]);
        }
        launch(d, &m, &sout, fresh, wall);
        if (sout.truncated)
                daemon_schedule_tick(d);
out:
        demand_merged_done(&m);
        free(sp);
        free(sprov);
        free(si);
        free(snap);
        free(acts);
        free(stats);
        free(fresh);
}

static void prune_history(struct daemon *d);

static void tick_cb(struct loop *l, void *ud)
{
        tick(l, ud);
}

/* A pool whose workers keep failing (missing binary, bad credentials…)
 * pauses its launches with exponential backoff instead of spinning; its jobs
 * overflow to the next matching pool meanwhile. One claimed launch resets. */
void daemon_pool_outcome(struct daemon *d, int pool, bool failed)
{
        struct dpool *dp = &d->pools[pool];

        if (!failed) {
                if (dp->failures >= 3)
                        log_info("pool", "launches succeed again", KS("pool", dp->cfg->name));
                dp->failures = 0;
                dp->hold_until = 0;
                return;
        }
        if (++dp->failures < 3)
                return;
        int64_t delay = 5000;
        for (int i = 3; i < dp->failures && delay < 300000; i++)
                delay *= 2;
        if (delay > 300000)
                delay = 300000;
        int64_t until = daemon_wall_ms() + delay;
        if (until > dp->hold_until) {
                if (dp->hold_until < daemon_wall_ms())
                        log_warn("pool", "launches keep failing; pausing this pool's launches",
                                 KS("pool", dp->cfg->name), KI("consecutive_failures", dp->failures),
                                 KI("pause_ms", delay));
                dp->hold_until = until;
        }
}

void daemon_schedule_tick(struct daemon *d)
{
        if (d->tick_scheduled || d->stopping)
                return;
        d->tick_timer = loop_timer_add(d->loop, 0, tick_cb, d);
        d->tick_scheduled = d->tick_timer != NULL;
}

static void periodic(struct loop *l, void *ud)
{
        struct daemon *d = ud;

        int r = store_check_file(d->store);
        if (r < 0) {
                log_error("store", "the state database was removed or replaced while the daemon ran; "
                          "stopping, so that nothing more happens that a restart could not account for "
                          "(workers keep running)", KS("state_dir", d->state_dir), KERR(r));
                d->fatal = r;
                d->stopping = true;
                loop_stop(l);
                return;
        }
        d->periodic = loop_timer_add(l, TICK_PERIOD_MS, periodic, d);
        daemon_schedule_tick(d);
        pools_forget_retired(d);
        demand_expire(d);
        size_t unsaved = inst_flush(d);
        if (unsaved && loop_now_ms(l) - d->store_warned >= 30000) {
                d->store_warned = loop_now_ms(l);
                log_warn("store", "instance rows cannot be saved; their stops and cleanups wait",
                         KI("unsaved", (long long)unsaved), KERR(d->store_error));
        }
        /* Orphan sweep: once at start (retried until it succeeds), then
         * every ten minutes to catch registrations leaked by anything. */
        for (size_t g = 0; g < d->n_groups; g++) {
                struct group *gr = &d->groups[g];
                if (gr->n_pools && !gr->broker && !gr->reap_inflight && d->forges[gr->forge].version_major &&
                    loop_now_ms(l) >= gr->next_reap)
                        reaper_forge_sweep(d, (int)g);
        }
        for (size_t p = 0; p < d->n_providers; p++)
                if (loop_now_ms(l) >= d->next_psweep[p])
                        reaper_provider_sweep(d, p);
        if (loop_now_ms(l) >= d->next_prune) {
                d->next_prune = loop_now_ms(l) + PRUNE_PERIOD_MS;
                prune_history(d);
        }
#ifdef __GLIBC__
        /* A burst leaves the heap fragmented by short-lived listing and
         * request buffers; glibc only returns its top on its own. Once
         * nothing is live, give every free page back (a few ms at most). */
        if (d->n_insts > 0) {
                d->trimmed = false;
        } else if (!d->trimmed) {
                malloc_trim(0);
                d->trimmed = true;
        }
#endif
}

/* History: terminal rows and the folders of failed instances (kept for
 * their worker.log) live for HISTORY_MS, then go. */
static void prune_history(struct daemon *d)
{
        char path[4096];
        int64_t cutoff = daemon_wall_ms() - HISTORY_MS;
        int n = store_prune(d->store, cutoff);
        DIR *dir;
        struct dirent *de;

        if (n < 0)
                log_warn("store", "cannot prune history", KERR(n));
        else if (n > 0)
                log_debug("store", "pruned history", KI("rows", n));
        snprintf(path, sizeof(path), "%s/instances", d->state_dir);
        dir = opendir(path);
        if (!dir)
                return;
        while ((de = readdir(dir))) {
                struct stat st;
                char sub[4096 + 256];
                if (de->d_name[0] == '.' || strmap_get(&d->by_name, de->d_name))
                        continue;
                snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
                if (lstat(sub, &st) == 0 && (int64_t)st.st_mtime * 1000 < cutoff)
                        fs_rm_rf(sub);
        }
        closedir(dir);
}

static void on_signal(struct loop *l, int signo, void *ud)
{
        struct daemon *d = ud;

        log_info("daemon", "stopping; workers keep running and are adopted at the next start",
                 KS("signal", signo == SIGTERM ? "SIGTERM" : "SIGINT"));
        d->stopping = true;
        loop_stop(l);
}

/* A configuration that fails the checks `forgescale check` makes is
 * refused with its errors logged, and the running one stays. */
static void on_hup(struct loop *l, int signo, void *ud)
{
        struct daemon *d = ud;
        struct config *nc = NULL;
        int r;

        log_info("daemon", "reloading the configuration", KS("config", d->cfg0->path));
        r = daemon_load_config(d->cfg0->path, &nc);
        if (r < 0) {
                log_error("daemon", "configuration not reloaded; the running configuration stays",
                          KS("config", d->cfg0->path));
                return;
        }
        if (d->log_from_config)
                log_init(nc->log.level, nc->log.format);
        if (pools_reload(d, nc) < 0) {
                config_free(nc);
                return;
        }
        /* The first broker pool brings the worker endpoint up. */
        r = d->broker ? broker_sync(d) : broker_init(d);
        if (r < 0)
                log_error("broker", "broker pools of the new configuration cannot start", KERR(r));
}

bool daemon_type_runnable(enum config_provider_type t, void *ud)
{
        return provider_ops_find(config_provider_type_name(t)) != NULL;
}

bool daemon_mode_runnable(enum config_pool_mode m, void *ud)
{
        return m == CONFIG_MODE_QUEUE || m == CONFIG_MODE_BROKER;
}

/* Logs the messages gathered so far, once each, and forgets them. */
static void log_diag(struct config_diag *diag)
{
        for (size_t i = 0; i < diag->n; i++) {
                if (diag->msgs[i].warning)
                        log_warn("config", "configuration warning", KS("warning", diag->msgs[i].text));
                else
                        log_error("config", "invalid configuration", KS("error", diag->msgs[i].text));
        }
        config_diag_done(diag);
}

int daemon_load_config(const char *path, struct config **ret_cfg)
{
        struct config_diag diag = { 0 };
        struct config *cfg = NULL;
        int r = config_load(path, &cfg, &diag);

        if (r >= 0)
                r = config_check_runnable(cfg, daemon_type_runnable, daemon_mode_runnable, NULL, &diag);
        if (r >= 0)
                r = config_check_files(cfg, &diag);
        log_diag(&diag);
        /* Its warnings repeat those of config_check_files. */
        if (r >= 0)
                r = config_load_tokens(cfg, &diag);
        if (r < 0)
                log_diag(&diag);
        config_diag_done(&diag);
        if (r < 0) {
                config_free(cfg);
                return r;
        }
        *ret_cfg = cfg;
        return 0;
}

/* Workers running as another account read their token at an absolute path
 * under state_dir: they need to pass through state_dir and instances/
 * (search, not read: 0711); each instance's own folder is theirs alone.
 * Without such a provider both stay 0700. */
static int open_state_dir_to_workers(struct daemon *d, const char *instances)
{
        bool other_account = false;

        for (size_t p = 0; p < d->n_providers; p++)
                other_account = other_account || d->providers[p].other_account;
        mode_t mode = other_account ? 0711 : 0700;
        if (chmod(d->state_dir, mode) < 0 || chmod(instances, mode) < 0) {
                int r = -errno;
                log_error("daemon", "cannot set the mode of state_dir", KS("state_dir", d->state_dir), KERR(r));
                return r;
        }
        return 0;
}

/* ---- set-up ------------------------------------------------------------- */

static int load_controller_id(struct daemon *d)
{
        int r = store_meta_get(d->store, "controller_id", d->ctrl, sizeof(d->ctrl));

        if (r == -ENOENT) {
                r = secret_random_hex(d->ctrl, 4);
                if (r < 0)
                        return r;
                r = store_meta_set(d->store, "controller_id", d->ctrl);
        }
        if (r < 0)
                return r;
        snprintf(d->prefix, sizeof(d->prefix), "fs-%s-", d->ctrl);
        return 0;
}

static int resume_rows(struct daemon *d)
{
        struct store_instance *rows = NULL;
        size_t n = 0;
        int r = store_instance_list_live(d->store, &rows, &n);

        if (r < 0)
                return r;
        struct store_instance *undel = NULL;
        size_t nu = 0;
        r = store_instance_list_undeleted(d->store, &undel, &nu);
        if (r < 0) {
                free(rows);
                return r;
        }
        size_t adopted = 0;
        for (size_t pass = 0; pass < 2; pass++) {
                struct store_instance *src = pass ? undel : rows;
                size_t cnt = pass ? nu : n;
                for (size_t i = 0; i < cnt; i++) {
                        int pool = -1;
                        for (size_t p = 0; p < d->n_pools; p++)
                                if (strcmp(d->pools[p].cfg->name, src[i].pool) == 0)
                                        pool = (int)p;
                        if (pool < 0 && store_state_live(src[i].state)) {
                                pool = pools_retired_for_row(d, &src[i]);
                                if (pool == -ENOMEM) {
                                        r = pool;
                                        goto out;
                                }
                                if (pool < 0)
                                        pool = -1;
                        }
                        if ((r = inst_resume(d, pool, &src[i])) < 0)
                                goto out;
                        adopted++;
                }
        }
        if (adopted)
                log_info("daemon", "resumed instances from the state database", KI("instances", (long long)adopted));
        r = 0;
out:
        free(rows);
        free(undel);
        return r;
}

static void daemon_free(struct daemon *d)
{
        if (!d)
                return;
        api_done(d);
        inst_free_all(d);
        broker_free(d);
        for (size_t f = 0; f < d->n_forges; f++)
                forgejo_free(d->forges[f].client);
        hmulti_free(d->hm);
        for (size_t p = 0; p < d->n_providers; p++) {
                if (d->providers[p].ops && d->providers[p].ops->done)
                        d->providers[p].ops->done(&d->providers[p]);
                free(d->providers[p].name);
        }
        reaper_free(d);
        free(d->providers);
        free(d->psweep_inflight);
        free(d->next_psweep);
        demand_free(d);
        pools_free(d);   /* and the groups' labels */
        free(d->groups);
        free(d->forges);
        store_close(d->store);
        loop_free(d->loop);
        free(d->state_dir);
        if (d->lock_fd >= 0)
                close(d->lock_fd);
        free(d);
}

int daemon_run(struct config *cfg, bool log_from_config)
{
        struct daemon *d = calloc(1, sizeof(*d));
        char path[4096];
        int r;

        if (!d)
                return -ENOMEM;
        d->lock_fd = -1;
        d->cfg = d->cfg0 = cfg;
        d->log_from_config = log_from_config;
        srand((unsigned)daemon_wall_ms() ^ (unsigned)getpid());
        httpc_global_init();

        r = fs_mkdir_p(cfg->state_path, 0700);
        if (r < 0) {
                log_error("daemon", "cannot create state_dir", KS("path", cfg->state_path), KERR(r));
                goto out;
        }
        d->state_dir = realpath(cfg->state_path, NULL);
        if (!d->state_dir) {
                r = -errno;
                log_error("daemon", "cannot resolve state_dir", KS("path", cfg->state_path), KERR(r));
                goto out;
        }
        /* Two daemons on one state_dir would each take the other's
         * registrations and workers for orphans. */
        snprintf(path, sizeof(path), "%s/lock", d->state_dir);
        long holder = 0;
        r = fs_lock_pidfile(path, &d->lock_fd, &holder);
        if (r == -EWOULDBLOCK) {
                log_error("daemon", "state_dir is in use by another forgescale; one daemon per state_dir",
                          KS("state_dir", d->state_dir), KI("holder_pid", holder));
                r = -EBUSY;
                goto out;
        }
        if (r < 0) {
                log_error("daemon", "cannot lock state_dir", KS("path", path), KERR(r));
                goto out;
        }
        snprintf(path, sizeof(path), "%s/instances", d->state_dir);
        if ((r = fs_mkdir_p(path, 0700)) < 0) {
                log_error("daemon", "cannot create the instances folder", KS("path", path), KERR(r));
                goto out;
        }
        snprintf(path, sizeof(path), "%s/forgescale.db", d->state_dir);
        r = store_open(path, &d->store);
        if (r == -EUCLEAN) {
                log_error("store", "the state database is damaged or is not a database; move it away to "
                          "start with an empty one (the instances it recorded are then unknown to forgescale)",
                          KS("path", path), KERR(r));
                goto out;
        } else if (r == -EINVAL) {
                log_error("store", "the state database belongs to another program; choose another state_dir",
                          KS("path", path));
                goto out;
        } else if (r < 0) {
                log_error("store", "cannot open the state database", KS("path", path), KERR(r));
                goto out;
        }
        if ((r = load_controller_id(d)) < 0) {
                log_error("store", "cannot read or write the controller id", KERR(r));
                goto out;
        }
        if ((r = loop_new(&d->loop)) < 0) {
                log_error("daemon", "cannot create the event loop", KERR(r));
                goto out;
        }
        if ((r = hmulti_new(d->loop, NULL, &d->hm)) < 0) {
                log_error("daemon", "cannot set up the HTTP client", KERR(r));
                goto out;
        }

        d->n_forges = cfg->n_forges;
        d->forges = calloc(cfg->n_forges ? cfg->n_forges : 1, sizeof(*d->forges));
        d->n_providers = cfg->n_providers;
        d->providers = calloc(cfg->n_providers ? cfg->n_providers : 1, sizeof(*d->providers));
        d->psweep_inflight = calloc(cfg->n_providers ? cfg->n_providers : 1, sizeof(*d->psweep_inflight));
        d->next_psweep = calloc(cfg->n_providers ? cfg->n_providers : 1, sizeof(*d->next_psweep));
        if (!d->forges || !d->providers || !d->psweep_inflight || !d->next_psweep) {
                r = -ENOMEM;
                goto out;
        }
        for (size_t f = 0; f < cfg->n_forges; f++) {
                struct config_forge *cf = &cfg->forges[f];
                struct forgejo_opts o = {
                        .name = cf->name, .base_url = cf->url, .token = cf->token,
                        .timeout_ms = cf->timeout_ms, .ca_file = cf->ca_path,
                        .insecure = cf->insecure_skip_verify,
                };
                d->forges[f].cfg = cf;
                d->forges[f].d = d;
                r = forgejo_new(d->hm, &o, &d->forges[f].client);
                if (r < 0) {
                        log_error("forge", "cannot set up the forge client", KS("forge", cf->name), KERR(r));
                        goto out;
                }
                forgejo_set_hook(d->forges[f].client, api_forge_hook, d);
        }
        for (size_t p = 0; p < cfg->n_providers; p++) {
                struct config_provider *cp = &cfg->providers[p];
                struct provider *pv = &d->providers[p];
                pv->ops = provider_ops_find(config_provider_type_name(cp->type));
                pv->name = strdup(cp->name);
                if (!pv->name) {
                        r = -ENOMEM;
                        goto out;
                }
                if (!pv->ops) {
                        log_error("provider", "provider type is not available in this build",
                                  KS("provider", cp->name), KS("type", config_provider_type_name(cp->type)));
                        r = -EOPNOTSUPP;
                        goto out;
                }
                if ((r = pv->ops->init(pv, d->loop, cp)) < 0) {
                        log_error("provider", "cannot start provider", KS("provider", cp->name),
                                  KS("reason", pv->error), KERR(r));
                        pv->ops = NULL;
                        goto out;
                }
        }
        snprintf(path, sizeof(path), "%s/instances", d->state_dir);
        if ((r = open_state_dir_to_workers(d, path)) < 0)
                goto out;
        if ((r = pools_init(d)) < 0) {
                log_error("daemon", "cannot group pools by forge and scope", KERR(r));
                goto out;
        }
        if ((r = api_init(d)) < 0)
                goto out;   /* logged by api_init */
        /* Before the instances: an adopted worker's credentials and its
         * task must be known when it calls. */
        if ((r = broker_init(d)) < 0)
                goto out;   /* logged by broker_init */

        loop_signal_add(d->loop, SIGINT, on_signal, d);
        loop_signal_add(d->loop, SIGTERM, on_signal, d);
        loop_signal_add(d->loop, SIGHUP, on_hup, d);
        signal(SIGPIPE, SIG_IGN);

        if ((r = resume_rows(d)) < 0) {
                log_error("store", "cannot read instances from the state database", KERR(r));
                goto out;
        }
        for (size_t f = 0; f < d->n_forges; f++)
                check_version(d->loop, &d->forges[f]);
        for (size_t g = 0; g < d->n_groups; g++)
                demand_poll(d, &d->groups[g], 0);
        d->periodic = loop_timer_add(d->loop, TICK_PERIOD_MS, periodic, d);

        char pool_names[512] = "";
        for (size_t p = 0, o = 0; p < d->n_pools && o < sizeof(pool_names); p++) {
                int w = snprintf(pool_names + o, sizeof(pool_names) - o, "%s%s", p ? "," : "",
                                 d->pools[p].cfg->name);
                if (w < 0)
                        break;
                o += (size_t)w;
        }
        log_info("daemon", "started", KS("state_dir", d->state_dir), KS("controller", d->ctrl),
                 KS("pools", pool_names), KI("listings", (long long)d->n_groups));
        r = loop_run(d->loop);
        if (r < 0)
                log_error("daemon", "event loop failed", KERR(r));
        log_info("daemon", "stopped", KI("live_instances", (long long)d->n_insts));
        if (d->fatal)
                r = d->fatal;
out:
        daemon_free(d);
        return r;
}
