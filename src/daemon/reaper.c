/* reaper.c: orphans both ways. On the forge: registrations named with this
 * controller's prefix whose id no row holds (a lost POST answer, a crash
 * between POST and save) are deleted. On each provider that can list its
 * instances: workers of this controller that no row owns are stopped and
 * their leftovers removed, and what such a worker left after it ended (an
 * exited container, a finished Job) is removed. Never touches an instance
 * that a row owns: those follow their own state machine. */
#include "daemon/daemon_int.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

/* ---- registrations on the forge ------------------------------------------ */

#define SWEEP_PAGE 50

struct sweep {
        struct daemon *d;
        int group;
        int deleted;
        struct forgejo_pager pager;
};

static void on_orphan_deleted(void *ud, const struct forgejo_result *res)
{
        (void)ud;
        (void)res;
}

static int cmp_i64(const void *a, const void *b)
{
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

        return x < y ? -1 : x > y;
}

/* Whether a registration named with our prefix belongs to a row we hold.
 * By id, not by name: a POST retried under the same name (curl resends a
 * request whose reused connection died) creates a second registration
 * with a live row's name, and only the id tells the two apart. A row whose
 * POST has not been answered yet knows no id: its name protects it until
 * the answer comes. */
static bool held(struct daemon *d, const int64_t *ids, size_t n_ids, const struct forgejo_runner *rn)
{
        struct inst *in;

        if (bsearch(&rn->id, ids, n_ids, sizeof(*ids), cmp_i64))
                return true;
        in = strmap_get(&d->by_name, rn->name);
        return in && in->row.runner_id == 0 && in->lc.op == LIFECYCLE_OP_ACQUIRE;
}

static void on_runner_page(void *ud, const struct forgejo_result *res, const struct forgejo_runner_list *list)
{
        struct sweep *sw = ud;
        struct daemon *d = sw->d;
        struct group *g = &d->groups[sw->group];
        size_t plen = strlen(d->prefix), n_ids = 0;
        int64_t *ids = NULL;

        if (res->err < 0) {
                log_warn("reaper", "cannot list runners for the orphan sweep; will retry",
                         KS("scope", g->scope_text), KS("reason", res->reason));
                g->reap_inflight = false;
                g->next_reap = loop_now_ms(d->loop) + (g->leak_suspected ? 5000 : 30000);
                g->sweep = NULL;
                free(sw);
                return;
        }
        if (list->n) {
                ids = malloc((d->n_insts ? d->n_insts : 1) * sizeof(*ids));
                if (!ids) {
                        g->reap_inflight = false;
                        g->next_reap = loop_now_ms(d->loop) + (g->leak_suspected ? 5000 : 30000);
                        g->sweep = NULL;
                        free(sw);
                        return;
                }
                for (size_t i = 0; i < d->n_insts; i++)
                        if (d->insts[i]->row.runner_id > 0)
                                ids[n_ids++] = d->insts[i]->row.runner_id;
                qsort(ids, n_ids, sizeof(*ids), cmp_i64);
        }
        for (size_t i = 0; i < list->n; i++) {
                const struct forgejo_runner *rn = &list->runners[i];
                if (strncmp(rn->name, d->prefix, plen) != 0 || held(d, ids, n_ids, rn))
                        continue;
                log_info("reaper", "deleting orphaned runner registration", KS("runner", rn->name),
                         KI("runner_id", rn->id), KS("scope", g->scope_text));
                forgejo_runner_delete(d->forges[g->forge].client, &g->scope, rn->id, on_orphan_deleted, NULL, NULL);
                sw->deleted++;
        }
        free(ids);
        if (forgejo_pager_next(&sw->pager, list)) {
                if (forgejo_runner_list(d->forges[g->forge].client, &g->scope, sw->pager.page, SWEEP_PAGE,
                                        on_runner_page, sw, NULL) == 0)
                        return;
        } else if (sw->pager.incomplete) {
                log_warn("reaper", "orphan sweep stopped early", KS("scope", g->scope_text),
                         KS("why", sw->pager.stop), KI("page", sw->pager.page));
        }
        g->reap_inflight = false;
        /* Deleting while paging shifts the pages behind: a sweep that found
         * orphans is followed by another soon, until one finds none. */
        g->next_reap = loop_now_ms(d->loop) + (g->reap_again || sw->deleted ? 2000 : 600000);
        g->leak_suspected = g->reap_again;
        g->reap_again = false;
        g->sweep = NULL;
        if (sw->deleted)
                log_info("reaper", "orphan sweep done", KS("scope", g->scope_text), KI("deleted", sw->deleted));
        free(sw);
}

/* Brings the group's next orphan sweep forward to a couple of seconds from
 * now (after a sweep in flight, if any): a registration may exist that no
 * row knows the id of. */
void reaper_suspect_leak(struct daemon *d, int group)
{
        struct group *g = &d->groups[group];
        int64_t soon = loop_now_ms(d->loop) + 2000;

        g->leak_suspected = true;
        if (g->reap_inflight)
                g->reap_again = true;
        else if (g->next_reap > soon)
                g->next_reap = soon;
}

void reaper_forge_sweep(struct daemon *d, int group)
{
        struct group *g = &d->groups[group];
        struct sweep *sw = calloc(1, sizeof(*sw));

        if (!sw)
                return;
        *sw = (struct sweep){ .d = d, .group = group };
        forgejo_pager_init(&sw->pager, SWEEP_PAGE);
        if (forgejo_runner_list(d->forges[g->forge].client, &g->scope, sw->pager.page, SWEEP_PAGE,
                                on_runner_page, sw, NULL) < 0) {
                free(sw);
                g->next_reap = loop_now_ms(d->loop) + (g->leak_suspected ? 5000 : 30000);
                return;
        }
        g->reap_inflight = true;
        g->sweep = sw;
}

/* ---- workers on the providers -------------------------------------------- */

#define PROVIDER_SWEEP_MS (10 * 60 * 1000)

struct orphan {
        struct orphan *next, *prev;  /* d->orphans: freed at exit if still there */
        struct daemon *d;
        size_t provider;
        char *name;
        char *ref;
};

static void orphan_free(struct orphan *o)
{
        if (o->prev)
                o->prev->next = o->next;
        else if (o->d && o->d->orphans == o)
                o->d->orphans = o->next;
        if (o->next)
                o->next->prev = o->prev;
        free(o->name);
        free(o->ref);
        free(o);
}

static void orphan_workdir(struct daemon *d, const char *name, char *buf, size_t n)
{
        snprintf(buf, n, "%s/instances/%s", d->state_dir, name);
}

static void on_orphan_event(void *ud, const struct provider_event *ev)
{
        struct orphan *o = ud;
        struct provider *p = &o->d->providers[o->provider];
        char dir[PATH_MAX];

        if (ev->type == PROVIDER_EV_STARTED)
                return;
        orphan_workdir(o->d, o->name, dir, sizeof(dir));
        if (p->ops->cleanup)
                p->ops->cleanup(p, o->name, o->ref, dir);
        log_info("reaper", "orphaned worker gone", KS("instance", o->name), KS("provider", p->name));
        orphan_free(o);
}

/* A worker of ours without a row: adopt it to stop it, so its exit is
 * seen and its leftovers removed like any other. */
static void reap_worker(struct daemon *d, size_t pi, const struct provider_listing *it)
{
        struct provider *p = &d->providers[pi];
        struct orphan *o = calloc(1, sizeof(*o));
        int r;

        if (!o || !(o->name = strdup(it->instance)) || !(o->ref = strdup(it->ref ? it->ref : ""))) {
                if (o)
                        orphan_free(o);
                return;
        }
        o->d = d;
        o->provider = pi;
        o->next = d->orphans;
        if (o->next)
                o->next->prev = o;
        d->orphans = o;
        log_info("reaper", "stopping a worker that no instance row owns", KS("instance", it->instance),
                 KS("provider", p->name), KS("ref", it->ref ? it->ref : ""));
        if (!(p->ops->caps & PROVIDER_CAP_ADOPT) || !p->ops->adopt) {
                log_warn("reaper", "provider cannot stop a worker it did not start in this run; leaving it",
                         KS("instance", it->instance), KS("provider", p->name));
                orphan_free(o);
                return;
        }
        r = p->ops->adopt(p, o->name, o->ref, NULL, 0, on_orphan_event, o);
        if (r < 0) {
                if (r != -ESRCH)  /* -ESRCH: gone meanwhile */
                        log_warn("reaper", "cannot take over an orphaned worker", KS("instance", it->instance),
                                 KS("provider", p->name), KS("reason", p->error), KERR(r));
                orphan_free(o);
                return;
        }
        /* Watched from here: on_orphan_event frees o at its exit, whether
         * this stop works or the worker ends by itself. */
        r = p->ops->stop(p, o->name);
        if (r < 0)
                log_warn("reaper", "cannot stop an orphaned worker", KS("instance", it->instance),
                         KS("provider", p->name), KERR(r));
}

struct psweep {
        struct daemon *d;
        size_t provider;
};

static void on_provider_list(void *ud, int error, const struct provider_listing *items, size_t n)
{
        struct psweep *ps = ud;
        struct daemon *d = ps->d;
        size_t pi = ps->provider;

        free(ps);
        d->psweep_inflight[pi] = false;
        if (error < 0) {
                log_warn("reaper", "cannot list a provider's workers for the orphan sweep; will retry",
                         KS("provider", d->providers[pi].name), KERR(error));
                d->next_psweep[pi] = loop_now_ms(d->loop) + 30000;
                return;
        }
        for (size_t i = 0; i < n; i++) {
                struct inst *in = strmap_get(&d->by_name, items[i].instance);
                /* Rows of this run own their workers; so do rows still
                 * between insert and create(), which the listing may not
                 * show yet but never lists without a row. */
                if (in)
                        continue;
                if (items[i].running) {
                        reap_worker(d, pi, &items[i]);
                        continue;
                }
                /* Ended, and no row will ever clean it up: a container or
                 * Job kept by its engine after the exit, whose row finished
                 * while its removal failed, or that a previous run made
                 * and lost track of. */
                struct provider *p = &d->providers[pi];
                char dir[PATH_MAX];
                orphan_workdir(d, items[i].instance, dir, sizeof(dir));
                int r = p->ops->cleanup ? p->ops->cleanup(p, items[i].instance, items[i].ref, dir) : 0;
                if (r < 0)
                        log_warn("reaper", "cannot remove what an ended worker left",
                                 KS("instance", items[i].instance), KS("provider", p->name), KERR(r));
                else
                        log_info("reaper", "removed what an ended worker no row owns left",
                                 KS("instance", items[i].instance), KS("provider", p->name));
        }
        d->next_psweep[pi] = loop_now_ms(d->loop) + PROVIDER_SWEEP_MS;
}

void reaper_provider_sweep(struct daemon *d, size_t pi)
{
        struct provider *p = &d->providers[pi];
        struct psweep *ps;

        if (!p->ops || !(p->ops->caps & PROVIDER_CAP_LIST) || !p->ops->list || d->psweep_inflight[pi])
                return;
        if (!(ps = calloc(1, sizeof(*ps))))
                return;
        *ps = (struct psweep){ .d = d, .provider = pi };
        if (p->ops->list(p, d->prefix, on_provider_list, ps) < 0) {
                free(ps);
                d->next_psweep[pi] = loop_now_ms(d->loop) + 30000;
                return;
        }
        d->psweep_inflight[pi] = true;
}

void reaper_free(struct daemon *d)
{
        while (d->orphans)
                orphan_free(d->orphans);
}
