/* pools.c: the daemon's pools and demand groups as the configuration says
 * them, at start and on every reload (SIGHUP): which pools exist, which
 * listing (forge, scope) each reads, whether a pool may launch on its
 * forge's version, and pools retired by a reload until their last instance
 * ends. Never starts or stops an instance: a retired pool only stops
 * launching; the scaler decides what its instances do. */
#include "daemon/daemon_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

/* Group slots never move (listings in flight point at them), so the array
 * is allocated once at its most. */
#define GROUPS_MAX 64

static void own_cfg_free(struct config_pool *cp)
{
        if (!cp)
                return;
        free(cp->name);
        free(cp->scope_text);
        free(cp);
}

static bool same_str(const char *a, const char *b)
{
        return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool same_scope(const struct forgejo_scope *a, const struct forgejo_scope *b)
{
        return a->kind == b->kind && strcmp(a->owner, b->owner) == 0 && strcmp(a->repo, b->repo) == 0;
}

void pools_enable(struct daemon *d, struct dpool *dp)
{
        const struct dforge *f = &d->forges[dp->cfg->forge_idx];

        if (dp->retired || f->version_major == 0) {
                dp->enabled = false;
                return;
        }
        if (dp->cfg->mode == CONFIG_MODE_QUEUE && f->version_major < 15) {
                if (dp->enabled || !dp->refused)
                        log_error("pool", "queue mode needs Forgejo 15 or newer (ephemeral runners via REST); "
                                  "this pool is not started — use mode: broker for this Forgejo version",
                                  KS("pool", dp->cfg->name), KS("forge", f->cfg->name),
                                  KS("version", f->version));
                dp->enabled = false;
                dp->refused = true;
        } else {
                dp->enabled = true;
                dp->refused = false;
        }
}

static int add_labels(struct group *g, const struct config_strv *labels)
{
        /* The listing asks for the union of the pools' labels: the server
         * drops jobs no pool could run, and each pool then applies the same
         * subset rule to its own labels. */
        for (size_t k = 0; k < labels->n; k++) {
                bool dup = false;
                for (size_t e = 0; e < g->n_labels && !dup; e++)
                        dup = strcmp(g->labels[e], labels->v[k]) == 0;
                if (dup)
                        continue;
                char **nl = realloc(g->labels, (g->n_labels + 1) * sizeof(*nl));
                if (!nl)
                        return -ENOMEM;
                g->labels = nl;
                if (!(nl[g->n_labels] = strdup(labels->v[k])))
                        return -ENOMEM;
                g->n_labels++;
        }
        return 0;
}

static void clear_labels(struct group *g)
{
        for (size_t k = 0; k < g->n_labels; k++)
                free(g->labels[k]);
        free(g->labels);
        g->labels = NULL;
        g->n_labels = 0;
}

/* A slot for a new listing: never used, or unused with nothing in flight
 * that would come back to it. */
static struct group *free_slot(struct daemon *d)
{
        for (size_t g = 0; g < d->n_groups; g++) {
                struct group *gr = &d->groups[g];
                if (gr->n_pools == 0 && !gr->inflight && !gr->reap_inflight) {
                        demand_group_reset(d, gr);
                        return gr;
                }
        }
        if (d->n_groups == GROUPS_MAX)
                return NULL;
        return &d->groups[d->n_groups++];
}

/* Places every pool of d->pools in the group of its (forge, scope), making
 * groups as needed (marked fresh_slot: they need a first poll) and
 * recomputing each group's labels and interval; a group no pool reads is
 * left with n_pools 0 for the caller to stop. */
/* A listing group serves queue pools of its (forge, scope); a broker
 * group one broker pool, whose held tasks are its jobs. */
static bool same_kind(const struct group *g, const struct config_pool *c)
{
        if (c->mode != CONFIG_MODE_BROKER)
                return !g->broker;
        return g->broker && g->n_pools == 0 && strcmp(g->broker_pool, c->name) == 0;
}

static int assign_groups(struct daemon *d)
{
        struct forgejo_scope *sc = calloc(d->n_pools ? d->n_pools : 1, sizeof(*sc));
        int r = 0;

        if (!sc)
                return -ENOMEM;
        for (size_t g = 0; g < d->n_groups; g++) {
                d->groups[g].n_pools = 0;
                clear_labels(&d->groups[g]);
        }
        for (size_t p = 0; p < d->n_pools; p++) {
                if (forgejo_scope_parse(d->pools[p].cfg->scope_text, &sc[p]) < 0) {
                        r = -EINVAL;
                        goto out;
                }
                d->pools[p].group = -1;
                for (size_t g = 0; g < d->n_groups; g++) {
                        struct group *gr = &d->groups[g];
                        if (gr->d && gr->forge == (int)d->pools[p].cfg->forge_idx && same_scope(&gr->scope, &sc[p]) &&
                            same_kind(gr, d->pools[p].cfg)) {
                                d->pools[p].group = (int)g;
                                gr->n_pools++;
                                break;
                        }
                }
        }
        for (size_t p = 0; p < d->n_pools; p++) {
                struct config_pool *c = d->pools[p].cfg;
                struct group *gr;
                if (d->pools[p].group >= 0)
                        continue;
                /* Another new pool may have made the group already (a
                 * broker pool's group is its own). */
                for (size_t q = 0; q < p && c->mode != CONFIG_MODE_BROKER; q++)
                        if (d->pools[q].cfg->mode != CONFIG_MODE_BROKER &&
                            d->pools[q].cfg->forge_idx == c->forge_idx && same_scope(&sc[q], &sc[p])) {
                                d->pools[p].group = d->pools[q].group;
                                d->groups[d->pools[p].group].n_pools++;
                                break;
                        }
                if (d->pools[p].group >= 0)
                        continue;
                if (!(gr = free_slot(d))) {
                        r = -E2BIG;
                        goto out;
                }
                gr->d = d;
                gr->forge = (int)c->forge_idx;
                gr->scope = sc[p];
                gr->n_pools = 1;
                gr->fresh_slot = true;
                gr->broker = c->mode == CONFIG_MODE_BROKER;
                if (gr->broker)
                        snprintf(gr->broker_pool, sizeof(gr->broker_pool), "%s", c->name);
                forgejo_scope_format(&sc[p], gr->scope_text, sizeof(gr->scope_text));
                d->pools[p].group = (int)(gr - d->groups);
        }
        for (size_t g = 0; g < d->n_groups; g++)
                d->groups[g].interval_ms = 0;
        for (size_t p = 0; p < d->n_pools; p++) {
                struct group *gr = &d->groups[d->pools[p].group];
                const struct config_pool *c = d->pools[p].cfg;
                if (!gr->interval_ms || c->poll_interval_ms < gr->interval_ms)
                        gr->interval_ms = c->poll_interval_ms;
                if ((r = add_labels(gr, &c->labels)) < 0)
                        goto out;
        }
out:
        free(sc);
        return r;
}

static int pool_labels(struct dpool *dp)
{
        const char **l = calloc(dp->cfg->labels.n + 1, sizeof(*l));

        if (!l)
                return -ENOMEM;
        for (size_t k = 0; k < dp->cfg->labels.n; k++)
                l[k] = dp->cfg->labels.v[k];
        free(dp->labels);
        dp->labels = l;
        return 0;
}

int pools_init(struct daemon *d)
{
        int r;

        d->groups = calloc(GROUPS_MAX, sizeof(*d->groups));
        d->pools = calloc(d->cfg->n_pools ? d->cfg->n_pools : 1, sizeof(*d->pools));
        if (!d->groups || !d->pools)
                return -ENOMEM;
        d->n_pools = d->cfg->n_pools;
        for (size_t p = 0; p < d->n_pools; p++) {
                d->pools[p].cfg = &d->cfg->pools[p];
                if ((r = pool_labels(&d->pools[p])) < 0)
                        return r;
        }
        if ((r = assign_groups(d)) < 0)
                return r;
        for (size_t g = 0; g < d->n_groups; g++)
                d->groups[g].fresh_slot = false;
        return 0;
}

/* The first setting that only a restart can change, or NULL: forges and
 * providers have clients, tokens and workers bound to them, the listeners
 * (listen, broker) and state_dir are open. */
static const char *restart_needed(const struct config *a, const struct config *b, char *buf, size_t n)
{
        if (!same_str(a->listen, b->listen))
                return "listen";
        if (!same_str(a->state_path, b->state_path))
                return "state_dir";
        if (!config_broker_same(&a->broker, &b->broker))
                return "broker";
        if (a->n_forges != b->n_forges)
                return "forges";
        for (size_t f = 0; f < a->n_forges; f++) {
                const struct config_forge *x = &a->forges[f];
                if (!config_forge_same(x, &b->forges[f])) {
                        snprintf(buf, n, "forges.%s", x->name);
                        return buf;
                }
        }
        if (a->n_providers != b->n_providers)
                return "providers";
        for (size_t p = 0; p < a->n_providers; p++) {
                const struct config_provider *x = &a->providers[p];
                if (!config_provider_same(x, &b->providers[p])) {
                        snprintf(buf, n, "providers.%s", x->name);
                        return buf;
                }
        }
        /* A broker pool is a runner registered in its scope: moving it to
         * another scope, forge or mode is a new runner. */
        for (size_t p = 0; p < a->n_pools; p++) {
                const struct config_pool *x = &a->pools[p];
                for (size_t q = 0; q < b->n_pools; q++) {
                        const struct config_pool *y = &b->pools[q];
                        if (strcmp(x->name, y->name) != 0)
                                continue;
                        if ((x->mode == CONFIG_MODE_BROKER || y->mode == CONFIG_MODE_BROKER) &&
                            (x->mode != y->mode || x->forge_idx != y->forge_idx ||
                             !same_str(x->scope_text, y->scope_text))) {
                                snprintf(buf, n, "pools.%s (a broker pool's mode, forge or scope)", x->name);
                                return buf;
                        }
                }
        }
        return NULL;
}

static bool cfg_in_use(const struct daemon *d, const struct config *c)
{
        if (c == d->cfg)
                return true;
        for (size_t p = 0; p < d->n_pools; p++)
                if (d->pools[p].retired && d->pools[p].owner == c)
                        return true;
        return false;
}

/* Keeps only the configurations something still points into. */
static void drop_unused_configs(struct daemon *d)
{
        size_t k = 0;

        for (size_t i = 0; i < d->n_old_cfgs; i++) {
                if (cfg_in_use(d, d->old_cfgs[i]))
                        d->old_cfgs[k++] = d->old_cfgs[i];
                else
                        config_free(d->old_cfgs[i]);
        }
        d->n_old_cfgs = k;
}

int pools_reload(struct daemon *d, struct config *nc)
{
        char what[CONFIG_NAME_MAX + 32];
        const char *changed = restart_needed(d->cfg, nc, what, sizeof(what));
        struct dpool *np = NULL;
        int *remap = NULL;
        size_t n = 0, old_n = d->n_pools;
        int r;

        if (changed) {
                log_error("daemon", "configuration not reloaded: this setting only changes with a restart; "
                          "the running configuration stays", KS("changed", changed));
                return -EINVAL;
        }
        struct config **oc = realloc(d->old_cfgs, (d->n_old_cfgs + 1) * sizeof(*oc));
        if (!oc)
                return -ENOMEM;
        d->old_cfgs = oc;
        np = calloc(nc->n_pools + old_n + 1, sizeof(*np));
        remap = calloc(old_n + 1, sizeof(*remap));
        if (!np || !remap) {
                r = -ENOMEM;
                goto fail;
        }
        for (size_t p = 0; p < old_n; p++)
                remap[p] = -1;
        for (size_t p = 0; p < nc->n_pools; p++) {
                struct dpool *dp = &np[n++];
                dp->cfg = &nc->pools[p];
                for (size_t o = 0; o < old_n; o++) {
                        const struct dpool *od = &d->pools[o];
                        if (strcmp(od->cfg->name, dp->cfg->name) != 0)
                                continue;
                        /* Runtime state carries over; configuration does not. */
                        dp->failures = od->failures;
                        dp->hold_until = od->hold_until;
                        dp->stats = od->stats;
                        memcpy(dp->warm_done, od->warm_done, sizeof(dp->warm_done));
                        dp->n_warm_done = od->n_warm_done;
                        dp->enabled = od->enabled && !od->retired;
                        dp->refused = od->refused;
                        remap[o] = (int)p;
                }
                if ((r = pool_labels(dp)) < 0)
                        goto fail;
        }
        /* Removed pools with live instances stay, retired, until those end:
         * their instances keep their pool (limits, timeouts, listing). */
        for (size_t o = 0; o < old_n; o++) {
                bool live = false;
                if (remap[o] >= 0)
                        continue;
                for (size_t i = 0; i < d->n_insts && !live; i++)
                        live = d->insts[i]->pool == (int)o;
                if (!live)
                        continue;
                np[n] = d->pools[o];
                np[n].retired = true;
                np[n].enabled = false;
                np[n].owner = d->pools[o].retired ? d->pools[o].owner : d->cfg;
                np[n].labels = NULL;
                d->pools[o].own_cfg = NULL;   /* moved */
                if ((r = pool_labels(&np[n])) < 0)
                        goto fail;
                remap[o] = (int)n++;
        }

        /* Commit: from here on nothing fails but the group assignment,
         * which only fails when more than GROUPS_MAX listings would be
         * needed at once; then the old pools are put back. */
        struct dpool *old_pools = d->pools;
        struct config *old_cfg = d->cfg;
        d->pools = np;
        d->n_pools = n;
        d->cfg = nc;
        if ((r = assign_groups(d)) < 0) {
                d->pools = old_pools;
                d->n_pools = old_n;
                d->cfg = old_cfg;
                assign_groups(d);
                goto fail;
        }
        np = NULL;
        for (size_t i = 0; i < d->n_insts; i++)
                if (d->insts[i]->pool >= 0)
                        d->insts[i]->pool = remap[d->insts[i]->pool];
        for (size_t o = 0; o < old_n; o++) {
                free(old_pools[o].labels);
                own_cfg_free(old_pools[o].own_cfg);   /* NULL when moved */
        }
        free(old_pools);
        free(remap);
        /* The first configuration belongs to the caller of daemon_run(),
         * and the forge clients borrow its tokens. */
        if (old_cfg != d->cfg0)
                d->old_cfgs[d->n_old_cfgs++] = old_cfg;
        drop_unused_configs(d);

        size_t added = 0, retired = 0;
        for (size_t p = 0; p < d->n_pools; p++) {
                pools_enable(d, &d->pools[p]);
                retired += d->pools[p].retired;
        }
        for (size_t g = 0; g < d->n_groups; g++) {
                struct group *gr = &d->groups[g];
                if (gr->fresh_slot) {
                        gr->fresh_slot = false;
                        added++;
                        demand_group_start(d, gr);
                } else if (gr->n_pools == 0 && gr->d) {
                        demand_group_stop(d, gr);
                }
        }
        log_info("daemon", "configuration reloaded", KI("pools", (long long)(d->n_pools - retired)),
                 KI("retired_pools", (long long)retired), KI("new_listings", (long long)added));
        daemon_schedule_tick(d);
        return 0;
fail:
        if (np)
                for (size_t p = 0; p < n; p++)
                        free(np[p].labels);
        free(np);
        free(remap);
        return r;
}

/* Defaults a pool the configuration no longer has is run by until its last
 * instance ends (the key table's defaults for the same keys). */
#define GONE_POLL_MS 2000
#define GONE_IDLE_TIMEOUT_MS (5 * 60 * 1000)
#define GONE_BOOTSTRAP_TIMEOUT_MS (10 * 60 * 1000)


int pools_retired_for_row(struct daemon *d, const struct store_instance *row)
{
        size_t fi = SIZE_MAX, pi = SIZE_MAX;
        struct config_pool *cp;
        struct dpool *np;

        for (size_t p = 0; p < d->n_pools; p++)
                if (d->pools[p].retired && strcmp(d->pools[p].cfg->name, row->pool) == 0)
                        return (int)p;
        for (size_t f = 0; f < d->cfg->n_forges; f++)
                if (strcmp(d->cfg->forges[f].name, row->forge) == 0)
                        fi = f;
        for (size_t v = 0; v < d->cfg->n_providers; v++)
                if (strcmp(d->cfg->providers[v].name, row->provider) == 0)
                        pi = v;
        if (fi == SIZE_MAX || pi == SIZE_MAX)
                return -ENOENT;
        if (!(cp = calloc(1, sizeof(*cp))) || !(cp->name = strdup(row->pool)) ||
            !(cp->scope_text = strdup(row->scope)) ||
            !(np = realloc(d->pools, (d->n_pools + 1) * sizeof(*np)))) {
                own_cfg_free(cp);
                return -ENOMEM;
        }
        *cp = (struct config_pool){
                .name = cp->name, .scope_text = cp->scope_text, .mode = CONFIG_MODE_QUEUE,
                .poll_interval_ms = GONE_POLL_MS, .idle_timeout_ms = GONE_IDLE_TIMEOUT_MS,
                .bootstrap_timeout_ms = GONE_BOOTSTRAP_TIMEOUT_MS,
                .forge_idx = fi, .provider_idx = pi,
                .forge = &d->cfg->forges[fi], .provider = &d->cfg->providers[pi],
        };
        d->pools = np;
        np = &d->pools[d->n_pools];
        *np = (struct dpool){ .cfg = cp, .own_cfg = cp, .retired = true };
        if (pool_labels(np) < 0) {
                own_cfg_free(cp);
                return -ENOMEM;
        }
        d->n_pools++;
        int r = assign_groups(d);
        if (r < 0) {
                d->n_pools--;
                free(np->labels);
                own_cfg_free(cp);
                assign_groups(d);
                return r;
        }
        /* The daemon's start polls every group, new ones included. */
        for (size_t g = 0; g < d->n_groups; g++)
                d->groups[g].fresh_slot = false;
        log_info("pool", "pool no longer configured; its instances finish under it, it launches nothing",
                 KS("pool", row->pool));
        return (int)(d->n_pools - 1);
}

/* A retired pool whose last instance ended goes for good. */
void pools_forget_retired(struct daemon *d)
{
        size_t before = d->n_pools;

        /* Indexes are what instances hold; only the tail can go without
         * renumbering them. */
        while (d->n_pools && d->pools[d->n_pools - 1].retired) {
                size_t p = d->n_pools - 1;
                for (size_t i = 0; i < d->n_insts; i++)
                        if (d->insts[i]->pool == (int)p)
                                goto done;
                free(d->pools[p].labels);
                own_cfg_free(d->pools[p].own_cfg);
                d->n_pools--;
        }
done:
        if (d->n_pools == before)
                return;
        /* Fewer pools read fewer listings and labels; no group is new. */
        if (assign_groups(d) == 0)
                for (size_t g = 0; g < d->n_groups; g++)
                        if (d->groups[g].n_pools == 0 && d->groups[g].d)
                                demand_group_stop(d, &d->groups[g]);
        drop_unused_configs(d);
        log_info("daemon", "retired pools gone with their last instance",
                 KI("pools", (long long)(before - d->n_pools)));
}

void pools_free(struct daemon *d)
{
        for (size_t p = 0; p < d->n_pools; p++) {
                free(d->pools[p].labels);
                own_cfg_free(d->pools[p].own_cfg);
        }
        free(d->pools);
        d->pools = NULL;
        for (size_t g = 0; d->groups && g < d->n_groups; g++)
                clear_labels(&d->groups[g]);
        for (size_t i = 0; i < d->n_old_cfgs; i++)
                config_free(d->old_cfgs[i]);
        free(d->old_cfgs);
        if (d->cfg != d->cfg0)
                config_free(d->cfg);
}
