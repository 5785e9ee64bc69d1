/* test_pools.c: pools and listing groups from the configuration, at start
 * and on reload, in-process: which listing each pool reads, the labels a
 * listing asks for, removed pools retired while they have instances, and
 * reloads refused. The daemon's loop exists but never runs. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon_int.h"


static struct config *cfg_of(const char *pools, const char *url)
{
        char text[4096];
        struct config *cfg = NULL;
        struct config_diag diag = { 0 };

        snprintf(text, sizeof(text), "forges: {sim: {url: \"%s\", token_env: T}}\npools:\n%s", url, pools);
        if (config_parse("t.yaml", text, strlen(text), NULL, &cfg, &diag) < 0) {
                for (size_t i = 0; i < diag.n; i++)
                        print_error("%s\n", diag.msgs[i].text);
                fail();
        }
        config_diag_done(&diag);
        cfg->forges[0].token = strdup("token");
        assert_non_null(cfg->forges[0].token);
        return cfg;
}

struct env {
        struct daemon d;
        struct dforge forge;
};

static int setup(void **state)
{
        struct env *e = calloc(1, sizeof(*e));

        assert_non_null(e);
        assert_int_equal(loop_new(&e->d.loop), 0);
        e->d.forges = &e->forge;
        e->d.n_forges = 1;
        e->forge.d = &e->d;
        e->forge.version_major = 15;
        *state = e;
        return 0;
}

static int teardown(void **state)
{
        struct env *e = *state;

        for (size_t g = 0; g < e->d.n_groups; g++)
                demand_group_stop(&e->d, &e->d.groups[g]);
        pools_free(&e->d);
        free(e->d.groups);
        config_free(e->d.cfg0);
        for (size_t i = 0; i < e->d.n_insts; i++)
                free(e->d.insts[i]);
        free(e->d.insts);
        loop_free(e->d.loop);
        free(e);
        return 0;
}

static void start(struct env *e, const char *pools)
{
        e->d.cfg = e->d.cfg0 = cfg_of(pools, "http://127.0.0.1:9");
        e->forge.cfg = &e->d.cfg->forges[0];
        assert_int_equal(pools_init(&e->d), 0);
        for (size_t p = 0; p < e->d.n_pools; p++)
                pools_enable(&e->d, &e->d.pools[p]);
}

static int pool_index(struct env *e, const char *name)
{
        for (size_t p = 0; p < e->d.n_pools; p++)
                if (strcmp(e->d.pools[p].cfg->name, name) == 0)
                        return (int)p;
        return -1;
}

static struct group *group_of(struct env *e, const char *pool)
{
        int p = pool_index(e, pool);

        assert_true(p >= 0);
        return &e->d.groups[e->d.pools[p].group];
}

static bool has_label(const struct group *g, const char *l)
{
        for (size_t k = 0; k < g->n_labels; k++)
                if (strcmp(g->labels[k], l) == 0)
                        return true;
        return false;
}

static void add_inst(struct env *e, int pool)
{
        struct inst *in = calloc(1, sizeof(*in));

        assert_non_null(in);
        in->pool = pool;
        e->d.insts = realloc(e->d.insts, (e->d.n_insts + 1) * sizeof(*e->d.insts));
        assert_non_null(e->d.insts);
        e->d.insts[e->d.n_insts++] = in;
}

static const char *const ABC =
        "  a: {scope: org/acme, labels: [x], poll_interval: 2s}\n"
        "  b: {scope: org/acme, labels: [y], poll_interval: 1s}\n"
        "  c: {scope: repo/acme/app, labels: [z]}\n";

/* Pools on one forge and scope share a listing that asks for the union of
 * their labels, as often as the most eager of them. */
static void pools_share_listings(void **state)
{
        struct env *e = *state;

        start(e, ABC);
        assert_int_equal(e->d.n_groups, 2);
        assert_ptr_equal(group_of(e, "a"), group_of(e, "b"));
        assert_ptr_not_equal(group_of(e, "a"), group_of(e, "c"));
        assert_int_equal(group_of(e, "a")->n_labels, 2);
        assert_true(has_label(group_of(e, "a"), "x") && has_label(group_of(e, "a"), "y"));
        assert_int_equal(group_of(e, "a")->interval_ms, 1000);
        assert_int_equal(group_of(e, "a")->n_pools, 2);
        assert_true(e->d.pools[0].enabled);
}

/* A reload that removes b and adds d on a new scope: a keeps its listing,
 * which asks for a's labels only, d gets a new one, c's is untouched. A
 * removed pool without instances goes at once. */
static void reload_adds_and_removes(void **state)
{
        struct env *e = *state;

        start(e, ABC);
        struct group *ga = group_of(e, "a"), *gc = group_of(e, "c");
        struct config *nc = cfg_of("  a: {scope: org/acme, labels: [x], poll_interval: 2s}\n"
                                   "  c: {scope: repo/acme/app, labels: [z]}\n"
                                   "  d: {scope: org/other, labels: [w]}\n", "http://127.0.0.1:9");
        assert_int_equal(pools_reload(&e->d, nc), 0);
        assert_int_equal(e->d.n_pools, 3);
        assert_int_equal(pool_index(e, "b"), -1);
        assert_ptr_equal(group_of(e, "a"), ga);
        assert_ptr_equal(group_of(e, "c"), gc);
        assert_int_equal(ga->n_labels, 1);
        assert_false(has_label(ga, "y"));
        assert_int_equal(ga->interval_ms, 2000);
        assert_int_equal(e->d.n_groups, 3);
        assert_true(has_label(group_of(e, "d"), "w"));
        assert_true(e->d.pools[pool_index(e, "d")].enabled);
}

/* A removed pool with a live instance is retired: kept (its instance
 * follows it to its new index), launching nothing, still read by its
 * listing; it goes with its last instance, and its labels with it. */
static void removed_pool_with_instance_is_retired(void **state)
{
        struct env *e = *state;

        start(e, ABC);
        add_inst(e, pool_index(e, "b"));
        add_inst(e, pool_index(e, "c"));
        struct config *nc = cfg_of("  c: {scope: repo/acme/app, labels: [z]}\n"
                                   "  a: {scope: org/acme, labels: [x]}\n", "http://127.0.0.1:9");
        assert_int_equal(pools_reload(&e->d, nc), 0);
        int b = pool_index(e, "b");
        assert_int_equal(b, 2);                      /* after the configured ones */
        assert_true(e->d.pools[b].retired);
        assert_false(e->d.pools[b].enabled);
        assert_int_equal(e->d.insts[0]->pool, b);
        assert_int_equal(e->d.insts[1]->pool, pool_index(e, "c"));
        assert_int_equal(pool_index(e, "c"), 0);
        assert_true(has_label(group_of(e, "a"), "y")); /* b's job is still looked for */

        free(e->d.insts[0]);
        e->d.insts[0] = e->d.insts[1];
        e->d.n_insts = 1;
        pools_forget_retired(&e->d);
        assert_int_equal(pool_index(e, "b"), -1);
        assert_int_equal(e->d.n_pools, 2);
        assert_false(has_label(group_of(e, "a"), "y"));
}

/* Settings that only a restart applies refuse the whole reload. */
static void reload_refused_for_forge_change(void **state)
{
        struct env *e = *state;

        start(e, ABC);
        struct config *nc = cfg_of("  a: {scope: org/acme, labels: [x]}\n", "http://127.0.0.1:10");
        assert_int_equal(pools_reload(&e->d, nc), -EINVAL);
        config_free(nc);
        assert_int_equal(e->d.n_pools, 3);
        assert_ptr_equal(e->d.cfg, e->d.cfg0);
        free(e->d.cfg->forges[0].token);
        e->d.cfg->forges[0].token = strdup("other");
        nc = cfg_of(ABC, "http://127.0.0.1:9");    /* token "token" now differs */
        assert_int_equal(pools_reload(&e->d, nc), -EINVAL);
        config_free(nc);

        /* A provider key (here the implicit local provider given a stop
         * grace) needs a restart too. */
        static const char text[] = "forges: {sim: {url: \"http://127.0.0.1:9\", token_env: T}}\n"
                                   "providers: {local: {type: local, stop_grace: 5s}}\n"
                                   "pools:\n  a: {scope: org/acme, labels: [x]}\n";
        struct config_diag diag = { 0 };
        assert_int_equal(config_parse("t.yaml", text, sizeof(text) - 1, NULL, &nc, &diag), 0);
        config_diag_done(&diag);
        assert_non_null(nc->forges[0].token = strdup("other"));
        assert_int_equal(pools_reload(&e->d, nc), -EINVAL);
        config_free(nc);
        assert_ptr_equal(e->d.cfg, e->d.cfg0);
}

/* The broker endpoint is bound at start: a reload that changes the broker
 * section, or whether a pool uses it, is refused; one that only writes the
 * defaults out is not. */
static void reload_refused_for_broker_change(void **state)
{
        struct env *e = *state;
        static const char *const refused[] = {
                "  a: {scope: org/acme, labels: [x]}\nbroker: {worker_retries: 3}\n",
                "  a: {scope: org/acme, labels: [x]}\nbroker: {listen: 127.0.0.1:9475}\n",
                "  a: {scope: org/acme, labels: [x]}\nbroker: {codec: json}\n",
                "  a: {scope: org/acme, labels: [x]}\n  b: {scope: org/acme, labels: [y], mode: broker}\n",
        };

        start(e, "  a: {scope: org/acme, labels: [x]}\n");
        for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
                struct config *nc = cfg_of(refused[i], "http://127.0.0.1:9");
                assert_int_equal(pools_reload(&e->d, nc), -EINVAL);
                config_free(nc);
                assert_ptr_equal(e->d.cfg, e->d.cfg0);
                assert_int_equal(e->d.n_pools, 1);
        }
        struct config *nc = cfg_of("  a: {scope: org/acme, labels: [x]}\n"
                                   "broker: {listen: 127.0.0.1:9465, worker_retries: 2}\n",
                                   "http://127.0.0.1:9");
        assert_int_equal(pools_reload(&e->d, nc), 0);
        assert_ptr_equal(e->d.cfg, nc);
}

/* A pool whose scope changes reads another listing. A listing slot no pool
 * reads is reused for a new scope, but never while a request of it is in
 * flight: its answer would land in the new listing. */
static void listing_slots_reused_only_when_idle(void **state)
{
        struct env *e = *state;

        start(e, "  a: {scope: org/acme, labels: [x]}\n");
        struct group *first = group_of(e, "a");
        assert_int_equal(pools_reload(&e->d, cfg_of("  a: {scope: org/other, labels: [x]}\n",
                                                    "http://127.0.0.1:9")), 0);
        assert_string_equal(group_of(e, "a")->scope.owner, "other");
        assert_ptr_equal(group_of(e, "a"), first);   /* idle: reused at once */
        assert_int_equal(e->d.n_groups, 1);

        first->inflight = true;                      /* org/other's listing asked */
        assert_int_equal(pools_reload(&e->d, cfg_of("  a: {scope: org/third, labels: [x]}\n",
                                                    "http://127.0.0.1:9")), 0);
        struct group *second = group_of(e, "a");
        assert_ptr_not_equal(second, first);
        assert_int_equal(first->n_pools, 0);
        assert_null(first->timer);                   /* stopped: polls no more */
        assert_string_equal(first->scope.owner, "other");

        first->inflight = false;                     /* its answer came (and was dropped) */
        assert_int_equal(pools_reload(&e->d, cfg_of("  a: {scope: org/third, labels: [x]}\n"
                                                    "  n: {scope: repo/acme/new, labels: [x]}\n",
                                                    "http://127.0.0.1:9")), 0);
        assert_ptr_equal(group_of(e, "n"), first);
        assert_ptr_equal(group_of(e, "a"), second);
        assert_int_equal(e->d.n_groups, 2);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(pools_share_listings, setup, teardown),
                cmocka_unit_test_setup_teardown(reload_adds_and_removes, setup, teardown),
                cmocka_unit_test_setup_teardown(removed_pool_with_instance_is_retired, setup, teardown),
                cmocka_unit_test_setup_teardown(reload_refused_for_forge_change, setup, teardown),
                cmocka_unit_test_setup_teardown(reload_refused_for_broker_change, setup, teardown),
                cmocka_unit_test_setup_teardown(listing_slots_reused_only_when_idle, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
