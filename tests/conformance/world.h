/* world.h: the fixture every conformance test starts from: a fresh
 * forgejo-sim per test (so instance-wide listings see only the test's own
 * jobs) populated with a fixed cast of users, one organization and repos.
 * Never asserts on the simulator's behaviour beyond setting the cast up. */
#pragma once

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "check.h"
#include "sim.h"

/* root: site admin. alice: owner of org "acme". bob, carol: plain users.
 * Repos: alice/app, acme/web, acme/api, bob/tool. */
struct world {
        struct sim *sim;
        struct sim_user root, alice, bob, carol;
        long long acme;
        long long alice_app, acme_web, acme_api, bob_tool;
};

/* cmocka fixtures; *state becomes a struct world *. */
int world_setup(void **state);
int world_setup_forgejo14(void **state); /* answers as Forgejo 14 (broker mode's oldest) */
int world_setup_clock(void **state);     /* --test-clock (zombie timeout 600 s) */
int world_setup_zombie(void **state);    /* --test-clock --zombie-timeout 2s */
int world_teardown(void **state);
/* Group teardown: stops a simulator a failed test left behind. */
int world_group_teardown(void **state);

/* Runs the group; argv[1], when given, is a cmocka test-name filter. */
#define WORLD_RUN(tests, argc, argv)                                           \
        (((argc) > 1 ? cmocka_set_test_filter((argv)[1]) : (void)0),           \
         cmocka_run_group_tests((tests), NULL, world_group_teardown))

#define T(f) cmocka_unit_test_setup_teardown(f, world_setup, world_teardown)
#define TC(f) cmocka_unit_test_setup_teardown(f, world_setup_clock, world_teardown)
#define TZ(f) cmocka_unit_test_setup_teardown(f, world_setup_zombie, world_teardown)

/* printf into one of 16 rotating static buffers (single-threaded tests). */
const char *P(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A runner created over REST at scope with token, then declared with
 * labels_json (skipped when NULL). Fails the test on error. */
void mk_runner(struct world *w, const char *scope, const char *token, const char *name,
               bool ephemeral, const char *labels_json, struct sim_runner *ret);
/* A job; fails the test on error. */
void mk_job(struct world *w, const char *owner, const char *repo, const char *name,
            const char *runs_on_json, struct sim_job *ret);
/* FetchTask {"tasksVersion":"0"}; returns the task id (0: none). */
long long fetch(struct world *w, const struct sim_runner *r);
/* FetchTask that must return a task; returns its id. */
long long claim(struct world *w, const struct sim_runner *r);
/* /_sim/jobs/{id}; a new reference the caller releases. */
json_t *job_state(struct world *w, long long id);
/* Status string of /_sim/jobs/{id}, copied into a static buffer. */
const char *job_status(struct world *w, long long id);
/* UpdateTask with the given result name; returns the response state.result. */
const char *update_task(struct world *w, const struct sim_runner *r, long long task_id,
                        const char *result);
/* Moves the test clock forward by ms; fails the test when refused. */
void advance(struct world *w, long long ms);
/* GET /_sim/clock; a new reference the caller releases. */
json_t *clock_state(struct world *w);
/* An RFC 3339 timestamp as ms since the epoch; fails the test when s is
 * not one. */
long long ts_ms(const char *s);
