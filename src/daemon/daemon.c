/* daemon.c: queue-mode daemon set-up, demand polling, reload and the
 * reconcile tick. Owns: the loop, the state_dir lock, forge clients and
 * their version checks, the polling of demand groups (their membership is
 * pools.c's), and the tick that turns demand + instances into the scaler's
 * plan and applies it. Instance side effects live in instance.c, orphans
 * in reaper.c, HTTP and metrics in api.c. Never blocks the loop. */
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

#include "http/hmulti.h"
#include "util/fsutil.h"
#include "util/httpc.h"
#include "util/log.h"
#include "util/secret.h"

#define BACKOFF_MAX_MS 60000
#define TICK_PERIOD_MS 1000
#define MAX_ACTIONS 4096
#define CREATES_INFLIGHT_MAX 32
#define PRUNE_PERIOD_MS (10 * 60 * 1000)
#define HISTORY_MS (24 * 3600 * 1000LL)
/* "forge index:handle" keys of merged jobs; handles are bounded by the
 * parser, so nothing is ever cut. */
#define MERGE_KEY_MAX (24 + FORGEJO_HANDLE_MAX + 1)

int64_t daemon_wall_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Exponential backoff with ±25 % jitter, so a fleet of daemons (or many
 * groups) that failed together does not retry together. */
static int64_t backoff_ms(int64_t base, int failures)
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
static bool forge_answered(const struct forgejo_result *res)
{
        if (res->status == 0 || res->status >= 500)
                return false;
        return !(res->status < 300 && res->err < 0);
}

/* ---- demand ----------------------------------------------------------- */

struct seen {
        char *handle;
        int64_t wall_ms;
        bool marked;
};

static void djobs_free(struct djob *jobs, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                free(jobs[i].handle);
                for (size_t k = 0; k < jobs[i].n_runs_on; k++)
                        free(jobs[i].runs_on[k]);
                free(jobs[i].runs_on);
        }
        free(jobs);
}

static void poll_group(struct loop *l, void *ud);

static void arm_poll(struct daemon *d, struct group *g, int64_t delay)
{
        if (g->timer)
                loop_timer_cancel(d->loop, g->timer);
        g->timer = loop_timer_add(d->loop, delay, poll_group, g);
}

static int copy_jobs(const struct forgejo_job_list *list, struct djob **ret, size_t *ret_n)
{
        struct djob *jobs = NULL;
        size_t n = 0;

        if (list->n) {
                jobs = calloc(list->n, sizeof(*jobs));
                if (!jobs)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < list->n; i++) {
                const struct forgejo_job *j = &list->jobs[i];
                if (j->state != FORGEJO_JOB_WAITING && j->state != FORGEJO_JOB_RUNNING)
                        continue;
                struct djob *o = &jobs[n];
                o->id = j->id;
                o->waiting = j->state == FORGEJO_JOB_WAITING;
                o->handle = strdup(j->handle);
                o->runs_on = j->n_runs_on ? calloc(j->n_runs_on, sizeof(char *)) : NULL;
                if (!o->handle || (j->n_runs_on && !o->runs_on))
                        goto oom;
                n++;
                for (size_t k = 0; k < j->n_runs_on; k++) {
                        o->runs_on[k] = strdup(j->runs_on[k]);
                        if (!o->runs_on[k])
                                goto oom;
                        o->n_runs_on++;
                }
        }
        *ret = jobs;
        *ret_n = n;
        return 0;
oom:
        djobs_free(jobs, n + 1 <= list->n ? n + 1 : n);
        return -ENOMEM;
}

/* A job the forge listed in a shape we cannot act on (no handle, a handle
 * too long to pass on…) is skipped; say so once per job, not per poll. */
struct rejected_note {
        int64_t seen;                /* monotonic: last listing that had it */
        char key[];
};

static void note_rejected(struct daemon *d, struct group *g, const struct forgejo_rejected *rj)
{
        char key[64 + 160];
        struct rejected_note *n;

        if (rj->id > 0)
                snprintf(key, sizeof(key), "%d:%lld", g->forge, (long long)rj->id);
        else
                snprintf(key, sizeof(key), "%d:?%.150s", g->forge, rj->reason);
        if ((n = strmap_get(&d->rejected, key))) {
                n->seen = loop_now_ms(d->loop);
                return;
        }
        n = malloc(sizeof(*n) + strlen(key) + 1);
        if (!n)
                return;
        memcpy(n->key, key, strlen(key) + 1);
        n->seen = loop_now_ms(d->loop);
        if (strmap_put(&d->rejected, n->key, n) < 0) {
                free(n);
                return;
        }
        api_count_rejected(d, d->forges[g->forge].cfg->name, "job");
        log_warn("demand", "skipping a job the forge listed in a shape forgescale cannot act on",
                 KS("forge", d->forges[g->forge].cfg->name), KS("scope", g->scope_text),
                 KI("job", rj->id), KS("reason", rj->reason));
}

/* Forgets skipped jobs no listing returned for an hour. */
static void expire_rejected(struct daemon *d)
{
        size_t pos = 0;
        const char *k;
        void *v;
        int64_t now = loop_now_ms(d->loop);

        while (strmap_next(&d->rejected, &pos, &k, &v))
                if (now - ((struct rejected_note *)v)->seen > 3600 * 1000) {
                        strmap_del(&d->rejected, k);
                        free(v);
                }
}

static void on_jobs(void *ud, const struct forgejo_result *res, const struct forgejo_job_list *list)
{
        struct group *g = ud;
        struct daemon *d = g->d;

        g->inflight = false;
        d->forges[g->forge].up = forge_answered(res);
        if (g->n_pools == 0)
                return; /* no pool reads it since a reload */
        if (res->err < 0) {
                g->failures++;
                g->last_failed = true;
                int64_t delay = backoff_ms(g->interval_ms, g->failures);
                /* Log the first failure and then every tenth, so an outage
                 * is visible without flooding the log. */
                if (res->err == -EFBIG)
                        api_count_rejected(d, d->forges[g->forge].cfg->name, "listing_too_large");
                if (g->failures == 1 || g->failures % 10 == 0)
                        log_warn("demand", "job listing failed; keeping instances as they are",
                                 KS("forge", d->forges[g->forge].cfg->name), KS("scope", g->scope_text),
                                 KS("reason", res->reason), KI("status", res->status),
                                 KI("failures", g->failures), KI("retry_ms", delay));
                arm_poll(d, g, delay);
                daemon_schedule_tick(d);
                return;
        }
        for (size_t i = 0; i < list->n_rejected; i++)
                note_rejected(d, g, &list->rejected[i]);
        struct djob *jobs;
        size_t n;
        if (copy_jobs(list, &jobs, &n) < 0) {
                g->failures++;
                arm_poll(d, g, backoff_ms(g->interval_ms, g->failures));
                return;
        }
        if (g->failures)
                log_info("demand", "job listing recovered", KS("forge", d->forges[g->forge].cfg->name),
                         KS("scope", g->scope_text), KI("after_failures", g->failures));
        djobs_free(g->jobs, g->n_jobs);
        g->jobs = jobs;
        g->n_jobs = n;
        g->failures = 0;
        g->last_failed = false;
        g->last_ok = loop_now_ms(d->loop);
        g->snap_asked = g->req_started;
        arm_poll(d, g, g->interval_ms);
        daemon_schedule_tick(d);
}

static void poll_group(struct loop *l, void *ud)
{
        struct group *g = ud;
        struct daemon *d = g->d;
        struct dforge *f = &d->forges[g->forge];
        const char *labels[65];
        int r;

        g->timer = NULL;
        if (g->inflight || d->stopping || g->n_pools == 0)
                return;
        if (f->version_major == 0) {
                /* Pools on this forge wait for the version check. */
                arm_poll(d, g, 500);
                return;
        }
        for (size_t i = 0; i < g->n_labels && i < 64; i++)
                labels[i] = g->labels[i];
        labels[g->n_labels < 64 ? g->n_labels : 64] = NULL;
        g->req_started = loop_now_ms(d->loop);
        r = forgejo_list_jobs(f->client, &g->scope, labels, on_jobs, g, NULL);
        if (r < 0) {
                log_error("demand", "cannot start job listing", KS("scope", g->scope_text), KERR(r));
                arm_poll(d, g, backoff_ms(g->interval_ms, ++g->failures));
                return;
        }
        g->inflight = true;
}

/* A group's listing is usable for decisions that remove or verify only when
 * the latest attempt succeeded and is recent. */
bool daemon_group_fresh(struct daemon *d, const struct group *g)
{
        return g->last_ok && !g->last_failed &&
               loop_now_ms(d->loop) - g->last_ok <= 3 * g->interval_ms + 2000;
}

double daemon_group_age_s(struct daemon *d, const struct group *g)
{
        if (!g->last_ok)
                return -1;
        return (double)(loop_now_ms(d->loop) - g->last_ok) / 1000.0;
}

void daemon_group_stop(struct daemon *d, struct group *g)
{
        if (g->timer)
                loop_timer_cancel(d->loop, g->timer);
        g->timer = NULL;
        djobs_free(g->jobs, g->n_jobs);
        g->jobs = NULL;
        g->n_jobs = 0;
}

void daemon_group_start(struct daemon *d, struct group *g)
{
        g->next_reap = 0;
        arm_poll(d, g, 0);
}

void daemon_group_reset(struct daemon *d, struct group *g)
{
        daemon_group_stop(d, g);
        free(g->sweep);
        for (size_t k = 0; k < g->n_labels; k++)
                free(g->labels[k]);
        free(g->labels);
        memset(g, 0, sizeof(*g));
}

/* ---- forge version ------------------------------------------------------ */

static void check_version(struct loop *l, void *ud);

static void on_version(void *ud, const struct forgejo_result *res, const struct forgejo_version *v)
{
        struct dforge *f = ud;
        struct daemon *d = f->d;

        f->version_inflight = false;
        f->up = forge_answered(res);
        if (res->err < 0 || !v->parsed) {
                f->version_failures++;
                int64_t delay = backoff_ms(1000, f->version_failures);
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

struct merged {
        struct scaler_job *jobs;
        const struct djob **src;
        size_t n;
        struct strmap by_key;      /* "forge:handle" → index+1 */
        char (*keys)[MERGE_KEY_MAX];
};

struct handle_note *daemon_handle_note(struct strmap *m, const char *handle)
{
        struct handle_note *n;

        if (!handle || !handle[0])
                return NULL;
        n = strmap_get(m, handle);
        if (n)
                return n;
        n = calloc(1, sizeof(*n));
        if (!n)
                return NULL;
        snprintf(n->handle, sizeof(n->handle), "%s", handle);
        if (strmap_put(m, n->handle, n) < 0) {
                free(n);
                return NULL;
        }
        return n;
}

/* A job whose instance just finished still shows as waiting or running in
 * listings asked before the finish: without this it would be launched
 * again (and that launch wasted) for every job shorter than a poll. */
void daemon_note_finished(struct daemon *d, const char *handle)
{
        struct handle_note *f = daemon_handle_note(&d->finished, handle);

        if (f)
                f->at = loop_now_ms(d->loop);
}

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

/* True while every fresh listing that could show the job was asked before
 * the instance finished. Entries older than a minute are dropped. */
static bool recently_finished(struct daemon *d, const char *handle, uint64_t groups)
{
        struct handle_note *f = strmap_get(&d->finished, handle);

        if (!f)
                return false;
        for (size_t g = 0; g < d->n_groups && g < 64; g++)
                if ((groups & (UINT64_C(1) << g)) && d->groups[g].snap_asked > f->at)
                        return false;
        return true;
}

static void expire_finished(struct daemon *d)
{
        size_t pos = 0;
        const char *k;
        void *v;
        int64_t now = loop_now_ms(d->loop);

        while (strmap_next(&d->finished, &pos, &k, &v))
                if (now - ((struct handle_note *)v)->at > 60000) {
                        strmap_del(&d->finished, k);
                        free(v);
                }
        /* A job's launch backoff is forgotten ten minutes after it ran out. */
        int64_t wall = daemon_wall_ms();
        pos = 0;
        while (strmap_next(&d->backoff, &pos, &k, &v))
                if (wall - ((struct handle_note *)v)->until > 600000) {
                        strmap_del(&d->backoff, k);
                        free(v);
                }
}

static bool backoff_allowed(void *ud, const char *handle)
{
        struct daemon *d = ud;
        struct handle_note *b = strmap_get(&d->backoff, handle);

        return !b || daemon_wall_ms() >= b->until;
}

static int merge_jobs(struct daemon *d, struct merged *m)
{
        size_t total = 0;

        memset(m, 0, sizeof(*m));
        for (size_t g = 0; g < d->n_groups; g++)
                total += d->groups[g].n_jobs;
        if (!total)
                return 0;
        m->jobs = calloc(total, sizeof(*m->jobs));
        m->src = calloc(total, sizeof(*m->src));
        m->keys = calloc(total, sizeof(*m->keys));
        if (!m->jobs || !m->src || !m->keys)
                return -ENOMEM;
        for (size_t gi = 0; gi < d->n_groups; gi++) {
                struct group *g = &d->groups[gi];
                bool stale = !daemon_group_fresh(d, g);
                for (size_t i = 0; i < g->n_jobs; i++) {
                        const struct djob *j = &g->jobs[i];
                        char key[MERGE_KEY_MAX];
                        snprintf(key, sizeof(key), "%d:%s", g->forge, j->handle);
                        uintptr_t idx = (uintptr_t)strmap_get(&m->by_key, key);
                        if (idx) {
                                struct scaler_job *sj = &m->jobs[idx - 1];
                                sj->groups |= UINT64_C(1) << gi;
                                /* Listings taken at different moments may
                                 * disagree; running is the later state. */
                                sj->waiting = sj->waiting && j->waiting;
                                sj->stale = sj->stale && stale;
                                continue;
                        }
                        memcpy(m->keys[m->n], key, sizeof(key));
                        m->jobs[m->n] = (struct scaler_job){
                                .id = j->id, .handle = j->handle,
                                .runs_on = (const char *const *)j->runs_on, .n_runs_on = j->n_runs_on,
                                .waiting = j->waiting, .groups = UINT64_C(1) << gi, .forge = g->forge,
                                .stale = stale,
                        };
                        m->src[m->n] = j;
                        if (strmap_put(&m->by_key, m->keys[m->n], (void *)(uintptr_t)(m->n + 1)) < 0)
                                return -ENOMEM;
                        m->n++;
                }
        }
        return 0;
}

static void merged_done(struct merged *m)
{
        strmap_done(&m->by_key);
        free(m->jobs);
        free(m->src);
        free(m->keys);
}

static int cmp_job_id(const void *a, const void *b)
{
        const struct scaler_job *x = a, *y = b;

        return x->id < y->id ? -1 : x->id > y->id;
}

/* Tracks when each handle was first seen waiting (for the wait histogram
 * and the instance row), forgetting handles no fresh listing returns. */
static void update_first_seen(struct daemon *d, const struct merged *m, int64_t now_wall)
{
        size_t pos = 0;
        const char *k;
        void *v;

        while (strmap_next(&d->first_seen, &pos, &k, &v))
                ((struct seen *)v)->marked = false;
        for (size_t i = 0; i < m->n; i++) {
                struct seen *s = strmap_get(&d->first_seen, m->jobs[i].handle);
                if (!s) {
                        s = calloc(1, sizeof(*s));
                        if (!s || !(s->handle = strdup(m->jobs[i].handle))) {
                                free(s);
                                continue;
                        }
                        s->wall_ms = now_wall;
                        if (strmap_put(&d->first_seen, s->handle, s) < 0) {
                                free(s->handle);
                                free(s);
                                continue;
                        }
                }
                s->marked = true;
        }
        /* Only forget when every group is fresh: a listing that failed must
         * not erase what it would have returned. */
        for (size_t g = 0; g < d->n_groups; g++)
                if (d->groups[g].n_pools && !daemon_group_fresh(d, &d->groups[g]))
                        return;
        pos = 0;
        while (strmap_next(&d->first_seen, &pos, &k, &v)) {
                struct seen *s = v;
                if (!s->marked) {
                        strmap_del(&d->first_seen, k);
                        free(s->handle);
                        free(s);
                }
        }
}

/* A past monotonic moment as wall-clock ms; 0 stays 0 (never). */
static int64_t mono_to_wall(int64_t t, int64_t now_mono, int64_t now_wall)
{
        return t ? now_wall - (now_mono - t) : 0;
}

/* The merged, sorted demand of every listing, its jobs marked served when
 * an instance of ours holds them or just finished them. */
static int gather_demand(struct daemon *d, struct merged *m, int64_t wall)
{
        int r = merge_jobs(d, m);

        if (r < 0)
                return r;
        if (m->n > 1)
                qsort(m->jobs, m->n, sizeof(*m->jobs), cmp_job_id);
        /* Sorting moved entries: rebuild the key index. */
        strmap_done(&m->by_key);
        for (size_t i = 0; i < m->n; i++) {
                snprintf(m->keys[i], sizeof(m->keys[i]), "%d:%s", m->jobs[i].forge, m->jobs[i].handle);
                if (strmap_put(&m->by_key, m->keys[i], (void *)(uintptr_t)(i + 1)) < 0)
                        return -ENOMEM;
        }
        update_first_seen(d, m, wall);
        expire_finished(d);
        for (size_t i = 0; i < m->n; i++)
                m->jobs[i].served = strmap_get(&d->by_handle, m->jobs[i].handle) != NULL ||
                                    recently_finished(d, m->jobs[i].handle, m->jobs[i].groups);
        return 0;
}

static void describe_pools(struct daemon *d, struct scaler_pool *sp, struct scaler_provider *sprov, int64_t wall)
{
        for (size_t p = 0; p < d->n_pools; p++) {
                struct dpool *dp = &d->pools[p];
                struct config_pool *c = dp->cfg;
                sp[p] = (struct scaler_pool){
                        .group = dp->group, .forge = (int)c->forge_idx, .provider = (int)c->provider_idx,
                        .labels = dp->labels, .n_labels = c->labels.n,
                        .min_idle = (int)c->min_idle, .max_runners = (int)c->max_runners,
                        .idle_timeout_ms = c->idle_timeout_ms, .bootstrap_timeout_ms = c->bootstrap_timeout_ms,
                        .demand_fresh = daemon_group_fresh(d, &d->groups[dp->group]), .enabled = dp->enabled,
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
                    in->claimed_mono > d->groups[d->pools[in->pool].group].snap_asked)
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
            !daemon_group_fresh(d, &d->groups[d->pools[in->pool].group]))
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
                        .idle_since_ms = in->idle_since, .stop_requested = in->stop_requested,
                        .verify_inflight = in->op != OP_NONE,
                        /* The scaler compares times with now in wall-clock
                         * milliseconds (rows survive restarts); these are
                         * monotonic, so translate them. */
                        .verify_after_ms = in->verify_after > now ? wall + (in->verify_after - now) : 0,
                        .job_running_since_ms = mono_to_wall(in->job_running_since, now, wall),
                        .job_gone_since_ms = mono_to_wall(in->job_gone_since, now, wall),
                        .idle_checked_ms = mono_to_wall(in->idle_checked, now, wall),
                        .runner_gone_since_ms = mono_to_wall(in->runner_gone_since, now, wall),
                        .worker_alive = in->provider_live,
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
        /* Registrations in flight per forge are bounded: a burst queued in
         * the HTTP client would time out waiting for a connection (the
         * timeout counts the wait). The rest launch as answers come. */
        int budget[64];

        for (size_t f = 0; f < d->n_forges && f < 64; f++)
                budget[f] = CREATES_INFLIGHT_MAX - d->forges[f].creates_inflight;
        for (size_t a = 0; a < out->n; a++) {
                const struct scaler_action *ac = &out->actions[a];
                if (ac->kind != SCALER_LAUNCH_JOB && ac->kind != SCALER_LAUNCH_WARM)
                        continue;
                size_t fi = d->pools[ac->pool].cfg->forge_idx;
                if (fi < 64 && budget[fi] <= 0)
                        continue;
                if (fi < 64)
                        budget[fi]--;
                if (ac->kind == SCALER_LAUNCH_JOB) {
                        const struct scaler_job *sj = &m->jobs[ac->job];
                        struct seen *s = strmap_get(&d->first_seen, sj->handle);
                        struct djob dj = { .id = sj->id, .handle = (char *)sj->handle, .waiting = true };
                        inst_launch(d, ac->pool, &dj, s ? s->wall_ms : wall);
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
        if (d->stopping || !sp || !sprov || !si || !snap || !fresh || !acts || !stats ||
            gather_demand(d, &m, wall) < 0)
                goto out;
        describe_pools(d, sp, sprov, wall);
        ni = describe_insts(d, &m, si, snap, now, wall);

        struct scaler_input sin = {
                .now_ms = wall, .pools = sp, .n_pools = d->n_pools,
                .providers = sprov, .n_providers = d->n_providers,
                .jobs = m.jobs, .n_jobs = m.n, .insts = si, .n_insts = ni,
                .handle_allowed = backoff_allowed, .ud = d,
        };
        struct scaler_output sout = { .actions = acts, .cap = MAX_ACTIONS, .stats = stats };
        scaler_plan(&sin, &sout);
        for (size_t p = 0; p < d->n_pools; p++)
                d->pools[p].stats = stats[p];
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
        merged_done(&m);
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
        expire_rejected(d);
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
                if (gr->n_pools && !gr->reap_inflight && d->forges[gr->forge].version_major &&
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
        if (pools_reload(d, nc) < 0)
                config_free(nc);
}

bool daemon_type_runnable(enum config_provider_type t, void *ud)
{
        return provider_ops_find(config_provider_type_name(t)) != NULL;
}

bool daemon_mode_runnable(enum config_pool_mode m, void *ud)
{
        return m == CONFIG_MODE_QUEUE;
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

        for (size_t p = 0; p < d->cfg->n_providers; p++)
                other_account = other_account || d->cfg->providers[p].local.user ||
                                d->cfg->providers[p].local.group;
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
                        struct inst *in = calloc(1, sizeof(*in));
                        if (!in) {
                                r = -ENOMEM;
                                goto out;
                        }
                        in->row = src[i];
                        in->pool = pool;
                        in->d = d;
                        in->final = STORE_DONE;
                        in->counted = true; /* counted by the run that launched it */
                        if (d->n_insts == d->cap_insts) {
                                size_t nc = d->cap_insts ? d->cap_insts * 2 : 64;
                                struct inst **ni = realloc(d->insts, nc * sizeof(*ni));
                                if (!ni) {
                                        free(in);
                                        r = -ENOMEM;
                                        goto out;
                                }
                                d->insts = ni;
                                d->cap_insts = nc;
                        }
                        d->insts[d->n_insts++] = in;
                        strmap_put(&d->by_name, in->row.name, in);
                        if (!in->row.warm && in->row.handle[0] && store_state_live(in->row.state))
                                strmap_put(&d->by_handle, in->row.handle, in);
                        inst_resume(d, in);
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
        for (size_t g = 0; d->groups && g < d->n_groups; g++) {
                free(d->groups[g].sweep);
                djobs_free(d->groups[g].jobs, d->groups[g].n_jobs);
        }
        pools_free(d);   /* and the groups' labels */
        free(d->groups);
        size_t pos = 0;
        const char *k;
        void *v;
        while (strmap_next(&d->first_seen, &pos, &k, &v)) {
                free(((struct seen *)v)->handle);
                free(v);
        }
        strmap_done(&d->first_seen);
        pos = 0;
        while (strmap_next(&d->backoff, &pos, &k, &v))
                free(v);
        strmap_done(&d->backoff);
        pos = 0;
        while (strmap_next(&d->finished, &pos, &k, &v))
                free(v);
        strmap_done(&d->finished);
        pos = 0;
        while (strmap_next(&d->rejected, &pos, &k, &v))
                free(v);
        strmap_done(&d->rejected);
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
        if ((r = open_state_dir_to_workers(d, path)) < 0)
                goto out;
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
        if ((r = pools_init(d)) < 0) {
                log_error("daemon", "cannot group pools by forge and scope", KERR(r));
                goto out;
        }
        if ((r = api_init(d)) < 0)
                goto out;   /* logged by api_init */

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
                arm_poll(d, &d->groups[g], 0);
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
