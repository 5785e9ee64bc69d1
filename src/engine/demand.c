/* demand.c: the demand the queue engine reads — one listing of waiting
 * and running jobs per forge and scope, polled on the loop with backoff,
 * validated jobs kept as the group's snapshot (the last good one stays,
 * marked stale, while the forge fails) — and what the tick makes of it:
 * every listing merged, sorted oldest first, each job marked served when an
 * instance of ours holds it or just finished it, the moment it was first
 * seen, launches held back for a handle whose workers keep failing.
 * Never launches or stops anything: the scaler decides, the tick applies. */
#include "daemon/daemon_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

/* ---- polling the listings ---------------------------------------------- */

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

void demand_poll(struct daemon *d, struct group *g, int64_t delay)
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
        d->forges[g->forge].up = daemon_forge_answered(res);
        if (g->n_pools == 0)
                return; /* no pool reads it since a reload */
        if (res->err < 0) {
                g->failures++;
                g->last_failed = true;
                int64_t delay = daemon_backoff_ms(g->interval_ms, g->failures);
                /* Log the first failure and then every tenth, so an outage
                 * is visible without flooding the log. */
                if (res->err == -EFBIG)
                        api_count_rejected(d, d->forges[g->forge].cfg->name, "listing_too_large");
                if (g->failures == 1 || g->failures % 10 == 0)
                        log_warn("demand", "job listing failed; keeping instances as they are",
                                 KS("forge", d->forges[g->forge].cfg->name), KS("scope", g->scope_text),
                                 KS("reason", res->reason), KI("status", res->status),
                                 KI("failures", g->failures), KI("retry_ms", delay));
                demand_poll(d, g, delay);
                daemon_schedule_tick(d);
                return;
        }
        for (size_t i = 0; i < list->n_rejected; i++)
                note_rejected(d, g, &list->rejected[i]);
        struct djob *jobs;
        size_t n;
        if (copy_jobs(list, &jobs, &n) < 0) {
                g->failures++;
                demand_poll(d, g, daemon_backoff_ms(g->interval_ms, g->failures));
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
        demand_poll(d, g, g->interval_ms);
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
        /* A broker group's jobs are its pool's held tasks: the broker
         * engine replaces them, nothing is listed. */
        if (g->inflight || d->stopping || g->n_pools == 0 || g->broker)
                return;
        if (f->version_major == 0) {
                /* Pools on this forge wait for the version check. */
                demand_poll(d, g, 500);
                return;
        }
        for (size_t i = 0; i < g->n_labels && i < 64; i++)
                labels[i] = g->labels[i];
        labels[g->n_labels < 64 ? g->n_labels : 64] = NULL;
        g->req_started = loop_now_ms(d->loop);
        r = forgejo_list_jobs(f->client, &g->scope, labels, on_jobs, g, NULL);
        if (r < 0) {
                log_error("demand", "cannot start job listing", KS("scope", g->scope_text), KERR(r));
                demand_poll(d, g, daemon_backoff_ms(g->interval_ms, ++g->failures));
                return;
        }
        g->inflight = true;
}

/* A group's listing is usable for decisions that remove or verify only when
 * the latest attempt succeeded and is recent. */
bool demand_group_fresh(struct daemon *d, const struct group *g)
{
        return g->last_ok && !g->last_failed &&
               loop_now_ms(d->loop) - g->last_ok <= 3 * g->interval_ms + 2000;
}

double demand_group_age_s(struct daemon *d, const struct group *g)
{
        if (!g->last_ok)
                return -1;
        return (double)(loop_now_ms(d->loop) - g->last_ok) / 1000.0;
}

void demand_group_stop(struct daemon *d, struct group *g)
{
        if (g->timer)
                loop_timer_cancel(d->loop, g->timer);
        g->timer = NULL;
        djobs_free(g->jobs, g->n_jobs);
        g->jobs = NULL;
        g->n_jobs = 0;
}

void demand_group_replace(struct daemon *d, struct group *g, struct djob *jobs, size_t n)
{
        djobs_free(g->jobs, g->n_jobs);
        g->jobs = jobs;
        g->n_jobs = n;
        g->snap_asked = g->last_ok = loop_now_ms(d->loop);
        g->last_failed = false;
}

void demand_djobs_free(struct djob *jobs, size_t n)
{
        djobs_free(jobs, n);
}

void demand_group_start(struct daemon *d, struct group *g)
{
        g->next_reap = 0;
        demand_poll(d, g, 0);
}

void demand_group_reset(struct daemon *d, struct group *g)
{
        demand_group_stop(d, g);
        free(g->sweep);
        for (size_t k = 0; k < g->n_labels; k++)
                free(g->labels[k]);
        free(g->labels);
        memset(g, 0, sizeof(*g));
}


/* ---- the tick's view: merged listings, per-handle notes ----------------- */

struct handle_note *demand_handle_note(struct strmap *m, const char *handle)
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
void demand_note_finished(struct daemon *d, const char *handle)
{
        struct handle_note *f = demand_handle_note(&d->finished, handle);

        if (f)
                f->at = loop_now_ms(d->loop);
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

bool demand_handle_allowed(void *ud, const char *handle)
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
                bool stale = !demand_group_fresh(d, g);
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

void demand_merged_done(struct merged *m)
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
                if (d->groups[g].n_pools && !demand_group_fresh(d, &d->groups[g]))
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

/* The merged, sorted demand of every listing, its jobs marked served when
 * an instance of ours holds them or just finished them. */
int demand_gather(struct daemon *d, struct merged *m, int64_t wall)
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

void demand_expire(struct daemon *d)
{
        expire_rejected(d);
}

int64_t demand_first_seen(struct daemon *d, const char *handle, int64_t fallback)
{
        struct seen *s = strmap_get(&d->first_seen, handle);

        return s ? s->wall_ms : fallback;
}

void demand_free(struct daemon *d)
{
        size_t pos = 0;
        const char *k;
        void *v;

        for (size_t g = 0; d->groups && g < d->n_groups; g++) {
                free(d->groups[g].sweep);
                djobs_free(d->groups[g].jobs, d->groups[g].n_jobs);
        }
        while (strmap_next(&d->first_seen, &pos, &k, &v)) {
                free(((struct seen *)v)->handle);
                free(v);
        }
        strmap_done(&d->first_seen);
        struct strmap *notes[] = { &d->backoff, &d->finished, &d->rejected };
        for (size_t i = 0; i < 3; i++) {
                pos = 0;
                while (strmap_next(notes[i], &pos, &k, &v))
                        free(v);
                strmap_done(notes[i]);
        }
}
