/* queue_e2e.c: queue mode end to end — the real forgescale daemon against
 * forgejo-sim with real worker processes (forgejo-sim-runner on PATH as
 * forgejo-runner). One scenario per test; run one with argv[1] = its name.
 *
 * Every test ends by checking that nothing leaked: no registration left on
 * the forge and no worker process left on the machine. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"
#include "util/fsutil.h"
#include "util/httpc.h"

/* ---- scenarios ----------------------------------------------------------- */

/* ≥ 200 jobs over 3 pools with different scopes and labels, plus jobs no
 * pool matches: matched jobs all succeed on runners that have their labels,
 * unmatched ones stay untouched, nothing is left behind. */
static void three_pools_many_jobs(void **state)
{
        struct fx *fx = *state;

        write_config(fx,
                     "  org-linux:\n"
                     "    scope: org/acme\n"
                     "    labels: [ubuntu-latest, docker]\n"
                     "    max_runners: 40\n"
                     "    poll_interval: 500ms\n"
                     "  repo-arm:\n"
                     "    scope: repo/acme/firmware\n"
                     "    labels: [arm64]\n"
                     "    max_runners: 15\n"
                     "    poll_interval: 500ms\n"
                     "  user-gpu:\n"
                     "    scope: user\n"
                     "    labels: [gpu, cuda]\n"
                     "    max_runners: 15\n"
                     "    poll_interval: 500ms\n"
                     "  observe:\n"
                     "    scope: org/other\n"
                     "    labels: [arm64]\n"
                     "    max_runners: 0\n"
                     "    poll_interval: 500ms\n");
        fs_start(fx);
        const char *steps = "[\"echo start\",\"echo done\"]";
        make_jobs(fx, 100, "acme", "app", "[\"ubuntu-latest\"]", steps);
        make_jobs(fx, 20, "acme", "app", "[\"ubuntu-latest\",\"docker\"]", steps);
        make_jobs(fx, 50, "acme", "firmware", "[\"arm64\"]", steps);
        make_jobs(fx, 50, "root", "ml", "[\"gpu\"]", steps);
        /* Unmatched: a label no pool has, a scope no pool watches, and a job
         * with empty runs-on (never matches any runner). */
        make_jobs(fx, 8, "acme", "app", "[\"windows\"]", steps);
        make_jobs(fx, 6, "other", "x", "[\"arm64\"]", steps);
        make_jobs(fx, 4, "acme", "app", "[]", steps);

        wait_drained(fx, 220, 150);

        /* The observe-only pool exports the demand it sees (for KEDA) and
         * launches nothing. */
        json_t *dem = api_get(fx, "/v1/pools/observe/demand");
        assert_non_null(dem);
        assert_string_equal(json_string_value(json_object_get(dem, "pool")), "observe");
        assert_int_equal(json_integer_value(json_object_get(dem, "waiting")), 6);
        assert_int_equal(json_integer_value(json_object_get(dem, "running")), 0);
        assert_int_equal(json_integer_value(json_object_get(dem, "desired")), 6);
        json_decref(dem);
        dem = api_get(fx, "/v1/pools/org-linux/demand");
        assert_non_null(dem);
        assert_int_equal(json_integer_value(json_object_get(dem, "waiting")), 0);
        json_decref(dem);
        assert_int_equal(metric_sum(fx, "forgescale_pool_jobs_waiting", "pool=\"observe\""), 6);

        /* `forgescale status` renders the pools as a table. */
        char cmd[PATH_MAX + 256], out[PATH_MAX];
        snprintf(out, sizeof(out), "%s/status.txt", fx->dir);
        snprintf(cmd, sizeof(cmd), "'%s' status --url %s > '%s'", getenv("FORGESCALE"), fx->api, out);
        assert_int_equal(system(cmd), 0);
        char *table = NULL;
        assert_int_equal(fs_read_file(out, 1 << 20, &table, NULL), 0);
        assert_non_null(strstr(table, "POOL"));
        assert_non_null(strstr(table, "org-linux"));
        assert_non_null(strstr(table, "observe"));
        assert_non_null(strstr(table, "repo/acme/firmware"));
        free(table);

        struct tally t = jobs_tally(fx);
        assert_int_equal(t.success, 220);
        assert_int_equal(t.failure + t.cancelled + t.running, 0);
        assert_int_equal(t.waiting, 18);

        int ours, untouched;
        check_placement(fx, &ours, &untouched);
        assert_int_equal(ours, 220);
        assert_int_equal(untouched, 18);
        assert_promtool_accepts(fx);
        assert_true(metric_sum(fx, "forgescale_launches_total", "result=\"claimed\"") >= 220);
        /* Jobs shorter than a poll interval are not launched twice. */
        assert_true(metric_sum(fx, "forgescale_launches_total", "result=\"wasted\"") == 0);
        assert_nothing_leaked(fx);
        fs_kill(fx, SIGTERM);
}

/* Stops the daemon with sig mid-burst of n jobs, then restarts it: no handle
 * ever gets two workers, every job finishes, nothing leaks. Returns how
 * many workers were alive while the daemon was down. */
static int stop_mid_burst_and_restart(struct fx *fx, int sig, int n)
{
        write_config(fx,
                     "  linux:\n"
                     "    scope: org/acme\n"
                     "    labels: [ubuntu-latest]\n"
                     "    max_runners: 30\n"
                     "    poll_interval: 500ms\n");
        fs_start(fx);
        make_jobs(fx, n, "acme", "app", "[\"ubuntu-latest\"]", "[\"sleep 1\",\"echo done\"]");
        double t0 = now_s();
        while (jobs_tally(fx).success < 20) {
                if (now_s() - t0 > 120)
                        fail_msg("no progress before the stop: %d jobs succeeded", jobs_tally(fx).success);
                usleep(50000);
        }
        fs_kill(fx, sig);
        int orphans = count_workers(fx, false);
        usleep(500000);
        fs_start(fx);
        wait_drained(fx, n, 150);
        struct tally t = jobs_tally(fx);
        assert_int_equal(t.success, n);

        /* A worker declares itself to the forge (its runner gets a version):
         * count declared runners per job from their description. */
        json_t *rs = NULL, *r;
        size_t i;
        int per_job[200] = { 0 };
        assert_int_equal(sim_list_runners(fx->sim, &rs), 0);
        json_array_foreach(rs, i, r) {
                const char *ver = json_string_value(json_object_get(r, "version"));
                const char *desc = json_string_value(json_object_get(r, "description"));
                const char *p = desc ? strstr(desc, " job ") : NULL;
                if (!ver || !*ver || !p)
                        continue;
                long id = strtol(p + 5, NULL, 10);
                if (id > 0 && id < 200)
                        per_job[id]++;
        }
        json_decref(rs);
        int declared = 0;
        for (int id = 0; id < 200; id++) {
                if (per_job[id] > 1)
                        fail_msg("job %d got %d workers", id, per_job[id]);
                declared += per_job[id];
        }
        assert_int_equal(declared, n); /* the check above saw every worker */
        print_message("workers alive across the stop: %d\n", orphans);
        assert_nothing_leaked(fx);
        fs_kill(fx, SIGTERM);
        return orphans;
}

/* kill -9 of the daemon mid-burst, then a restart. */
static void kill9_mid_burst_and_restart(void **state)
{
        stop_mid_burst_and_restart(*state, SIGKILL, 120);
}

/* SIGTERM (systemctl stop with KillMode=process) leaves the workers
 * running; the next start adopts them and their jobs finish. */
static void sigterm_keeps_workers_and_restart_adopts(void **state)
{
        assert_true(stop_mid_burst_and_restart(*state, SIGTERM, 60) > 0);
}

/* The forge answers 500, then garbage, then too slowly, for ~10 s while
 * jobs arrive: no job is lost, nothing is stopped for it, and the daemon
 * recovers as soon as the forge does. */
/* Listings the simulator received for org acme (faulted ones included). */
static long long org_listings(struct fx *fx)
{
        json_t *st = NULL;
        long long n;

        assert_int_equal(sim_stats(fx->sim, &st), 0);
        n = json_integer_value(json_object_get(json_object_get(st, "requests"),
                                               "GET /api/v1/orgs/{org}/actions/runners/jobs"));
        json_decref(st);
        return n;
}

/* Holds a fault until the daemon's listing has met it `times` times, checking
 * on the way that the forge counts as down and the demand says it is stale
 * (its figures held is demand_kept_during_forge_outage's subject). */
static void hold_fault(struct fx *fx, const char *fault, int times)
{
        assert_int_equal(sim_fault(fx->sim, fault), 0);
        long long from = org_listings(fx);
        double t0 = now_s();
        bool seen_down = false;

        while (org_listings(fx) < from + times) {
                if (now_s() - t0 > 60)
                        fail_msg("the listing did not meet the fault %d times within 60 s: %s", times, fault);
                usleep(50000);
        }
        /* The last faulted listing has been answered (or timed out). */
        for (t0 = now_s(); !seen_down && now_s() - t0 < 5; usleep(50000))
                seen_down = metric_sum(fx, "forgescale_forge_up", NULL) == 0;
        if (!seen_down)
                fail_msg("forgescale_forge_up stayed 1 under %s", fault);
        json_t *dm = api_get(fx, "/v1/pools/linux/demand");
        assert_non_null(dm);
        assert_true(json_is_true(json_object_get(dm, "stale")));
        json_decref(dm);
        assert_int_equal(sim_faults_clear(fx->sim), 0);
}

static void forge_faults_recovery(void **state)
{
        struct fx *fx = *state;

        /* 1 s, so the 1.5 s delays below are timeouts for the daemon. */
        write_config_t(fx, "1s",
                     "  linux:\n"
                     "    scope: org/acme\n"
                     "    labels: [ubuntu-latest]\n"
                     "    max_runners: 20\n"
                     "    poll_interval: 500ms\n");
        fs_start(fx);
        const char *steps = "[\"sleep 2\",\"echo done\"]";
        make_jobs(fx, 20, "acme", "app", "[\"ubuntu-latest\"]", steps);
        /* Let the first wave get going, then break the REST API (only the
         * daemon's side: workers use /api/actions). */
        double t0 = now_s();
        while (jobs_tally(fx).running < 5 && now_s() - t0 < 30)
                usleep(50000);
        /* Each phase lasts as many listings as it takes to be sure the
         * daemon met it; the listing backs off meanwhile (0.5, 1, 2, 4 s). */
        hold_fault(fx, "{\"path_prefix\":\"/api/v1/\",\"mode\":\"status\",\"status\":500}", 2);
        make_jobs(fx, 10, "acme", "app", "[\"ubuntu-latest\"]", steps);
        hold_fault(fx, "{\"path_prefix\":\"/api/v1/\",\"mode\":\"garbage\"}", 1);
        make_jobs(fx, 10, "acme", "app", "[\"ubuntu-latest\"]", steps);
        hold_fault(fx, "{\"path_prefix\":\"/api/v1/\",\"mode\":\"delay\",\"seconds\":1.5}", 1);

        wait_drained(fx, 40, 120);
        struct tally t = jobs_tally(fx);
        assert_int_equal(t.success, 40);
        assert_int_equal(t.failure + t.cancelled, 0);
        /* The outage must not have stopped anything. */
        assert_true(metric_sum(fx, "forgescale_launches_total", "result=\"wasted\"") == 0);
        assert_true(metric_sum(fx, "forgescale_forge_requests_total", "code=\"500\"") >= 2);
        assert_true(metric_sum(fx, "forgescale_forge_up", NULL) == 1);
        assert_nothing_leaked(fx);
        fs_kill(fx, SIGTERM);
}

/* A foreign static runner takes jobs our runners were launched for: the
 * losers are stopped and their registrations deleted. */
static void foreign_runner_steals_jobs(void **state)
{
        struct fx *fx = *state;
        struct sim_runner thief;

        write_config(fx,
                     "  linux:\n"
                     "    scope: org/acme\n"
                     "    labels: [ubuntu-latest]\n"
                     "    max_runners: 20\n"
                     "    poll_interval: 300ms\n");
        assert_int_equal(sim_runner_create(fx->sim, "/api/v1/orgs/acme", fx->admin.token, "static-thief",
                                           false, &thief), 0);
        assert_int_equal(sim_runner_declare(fx->sim, &thief, "[\"ubuntu-latest\"]"), 0);
        /* Our workers' claims are slowed down, so the thief wins the race. */
        assert_int_equal(sim_fault(fx->sim, "{\"path_prefix\":\"/api/actions/runner.v1.RunnerService/FetchSingleTask\","
                                            "\"mode\":\"delay\",\"seconds\":4,\"count\":10}"), 0);
        fs_start(fx);
        make_jobs(fx, 10, "acme", "app", "[\"ubuntu-latest\"]", "[\"echo hi\"]");
        /* Let the daemon launch its runners first. */
        double tl = now_s();
        while (undeleted_runners_q(fx, "fs-", true) < 10 && now_s() - tl < 20)
                usleep(50000);

        /* The thief: take every job it can, finish it at once. */
        int stolen = 0;
        double t0 = now_s();
        while (now_s() - t0 < 6) {
                long long task = 0;
                if (sim_runner_fetch(fx->sim, &thief, &task) == 0 && task) {
                        char body[128];
                        struct sim_resp resp;
                        snprintf(body, sizeof(body), "{\"state\":{\"id\":\"%lld\",\"result\":\"RESULT_SUCCESS\"}}", task);
                        assert_int_equal(sim_rpc(fx->sim, "runner.v1.RunnerService/UpdateTask", thief.uuid,
                                                 thief.token, NULL, body, &resp), 0);
                        assert_int_equal(resp.status, 200);
                        sim_resp_done(&resp);
                        stolen++;
                } else {
                        usleep(100000);
                }
        }
        assert_true(stolen >= 1);
        wait_drained(fx, 10, 60);
        struct tally t = jobs_tally(fx);
        assert_int_equal(t.success, 10);
        print_message("stolen by the static runner: %d\n", stolen);
        assert_true(metric_sum(fx, "forgescale_launches_total", "result=\"wasted\"") >= 1);
        /* The thief itself stays registered; ours are all gone. */
        for (int i = 0; i < 50 && count_workers(fx, false) > 0; i++)
                usleep(100000);
        assert_int_equal(count_workers(fx, false), 0);
        assert_int_equal(undeleted_runners(fx, "fs-"), 0);
        assert_int_equal(undeleted_runners(fx, NULL), 1);
        fs_kill(fx, SIGTERM);
}

/* The pool's counts from /v1/pools: idle, busy, starting, stopping. */
struct pool_counts {
        int idle, busy, starting, stopping;
};

static struct pool_counts pool_counts(struct fx *fx, const char *name)
{
        struct pool_counts c = { -1, -1, -1, -1 };
        json_t *pools = api_get(fx, "/v1/pools"), *p;
        size_t i;

        json_array_foreach(pools, i, p) {
                if (strcmp(json_string_value(json_object_get(p, "name")), name) != 0)
                        continue;
                c.idle = (int)json_integer_value(json_object_get(p, "idle"));
                c.busy = (int)json_integer_value(json_object_get(p, "busy"));
                c.starting = (int)json_integer_value(json_object_get(p, "starting"));
                c.stopping = (int)json_integer_value(json_object_get(p, "stopping"));
        }
        json_decref(pools);
        return c;
}

/* Waits until the pool has exactly `idle` idle instances and nothing else
 * live. */
static void wait_only_idle(struct fx *fx, const char *pool, int idle, double timeout_s)
{
        double t0 = now_s();
        struct pool_counts c;

        for (;;) {
                c = pool_counts(fx, pool);
                if (c.idle == idle && c.busy == 0 && c.starting == 0 && c.stopping == 0)
                        return;
                if (now_s() - t0 > timeout_s)
                        fail_msg("pool %s: idle %d busy %d starting %d stopping %d, want %d idle only",
                                 pool, c.idle, c.busy, c.starting, c.stopping, idle);
                usleep(100000);
        }
}

static double posts(struct fx *fx)
{
        return metric_sum(fx, "forgescale_forge_requests_total", "route=\"POST ");
}

/* min_idle: two warm runners wait for any job of their labels. A job goes
 * to a warm runner (none is registered for the job itself) and the pool
 * keeps two idle ones; a burst larger than the warm set is served, and the
 * pool settles back to exactly two idle runners. */
static void warm_pool_takes_jobs_and_refills(void **state)
{
        struct fx *fx = *state;

        write_config(fx,
                     "  warm:\n"
                     "    scope: org/acme\n"
                     "    labels: [ubuntu-latest]\n"
                     "    min_idle: 2\n"
                     "    max_runners: 6\n"
                     "    idle_timeout: 1h\n"
                     "    poll_interval: 300ms\n");
        fs_start(fx);
        wait_only_idle(fx, "warm", 2, 30);
        assert_int_equal(undeleted_runners_q(fx, "fs-", true), 2);
        assert_int_equal(count_workers(fx, false), 2);
        assert_true(posts(fx) == 2);

        make_jobs(fx, 1, "acme", "app", "[\"ubuntu-latest\"]", "[\"echo warm\"]");
        double t0 = now_s();
        while (jobs_tally(fx).success < 1) {
                if (now_s() - t0 > 30)
                        fail_msg("the job was not run by a warm runner within 30 s");
                usleep(100000);
        }
        json_t *jobs = NULL, *rs = NULL, *r;
        size_t i;
        int warm_ran = 0, for_a_job = 0;
        assert_int_equal(sim_list_jobs(fx->sim, &jobs), 0);
        long long rid = json_integer_value(json_object_get(json_array_get(jobs, 0), "runner_id"));
        json_decref(jobs);
        /* The description the daemon registers says "(warm)" or names the
         * job the runner was started for. */
        assert_int_equal(sim_list_runners(fx->sim, &rs), 0);
        json_array_foreach(rs, i, r) {
                const char *desc = json_string_value(json_object_get(r, "description"));
                assert_non_null(desc);
                for_a_job += strstr(desc, " job ") != NULL;
                if (json_integer_value(json_object_get(r, "id")) == rid)
                        warm_ran += strstr(desc, "(warm)") != NULL;
        }
        json_decref(rs);
        assert_int_equal(warm_ran, 1);
        assert_int_equal(for_a_job, 0);
        wait_only_idle(fx, "warm", 2, 30);
        /* Two warm runners plus the one replacing the runner that takes
         * the job; none for the job itself. */
        assert_true(posts(fx) == 3);
        assert_true(metric_sum(fx, "forgescale_launches_total", "result=\"wasted\"") == 0);

        make_jobs(fx, 5, "acme", "firmware", "[\"ubuntu-latest\"]", "[\"sleep 1\"]");
        t0 = now_s();
        while (jobs_tally(fx).success < 6) {
                if (now_s() - t0 > 60)
                        fail_msg("burst not done within 60 s: %d of 6", jobs_tally(fx).success);
                usleep(100000);
        }
        wait_only_idle(fx, "warm", 2, 30);
        assert_int_equal(undeleted_runners_q(fx, "fs-", true), 2);
        for (int k = 0; k < 50 && count_workers(fx, false) > 2; k++)
                usleep(100000);
        assert_int_equal(count_workers(fx, false), 2);
        assert_true(metric_sum(fx, "forgescale_pool_runners", "pool=\"warm\"") == 2);
        fs_kill(fx, SIGTERM);
}

/* Idle warm runners above min_idle are retired after idle_timeout. Three
 * are started with min_idle 3; the daemon stops (they keep running) and
 * comes back with min_idle 1: it adopts the three and, a second later,
 * stops two and deletes their registrations. */
static void warm_surplus_retired_after_idle_timeout(void **state)
{
        struct fx *fx = *state;

        write_config(fx,
                     "  warm:\n"
                     "    scope: org/acme\n"
                     "    labels: [ubuntu-latest]\n"
                     "    min_idle: 3\n"
                     "    max_runners: 6\n"
                     "    poll_interval: 300ms\n");
        fs_start(fx);
        wait_only_idle(fx, "warm", 3, 30);
        fs_kill(fx, SIGTERM);
        assert_int_equal(count_workers(fx, false), 3);

        write_config(fx,
                     "  warm:\n"
                     "    scope: org/acme\n"
                     "    labels: [ubuntu-latest]\n"
                     "    min_idle: 1\n"
                     "    max_runners: 6\n"
                     "    idle_timeout: 1s\n"
                     "    poll_interval: 300ms\n");
        double t0 = now_s();
        fs_start(fx);
        wait_only_idle(fx, "warm", 1, 30);
        print_message("surplus retired %.1f s after the restart\n", now_s() - t0);
        assert_true(now_s() - t0 >= 1.0); /* not before idle_timeout */
        for (int i = 0; i < 50 && count_workers(fx, false) > 1; i++)
                usleep(100000);
        assert_int_equal(count_workers(fx, false), 1);
        assert_int_equal(undeleted_runners_q(fx, "fs-", true), 1);
        /* Nothing new was registered: the survivor is one of the three. */
        assert_true(posts(fx) == 0);
        fs_kill(fx, SIGTERM);
}

/* A provider's max_instances caps the live instances of every pool using
 * it together; each pool alone would allow more. */
static void provider_max_instances_caps_pools(void **state)
{
        struct fx *fx = *state;

        write_config_full(fx, "5s", "{type: local, max_instances: 4}",
                          "  a:\n"
                          "    provider: here\n"
                          "    scope: org/acme\n"
                          "    labels: [la]\n"
                          "    max_runners: 10\n"
                          "    poll_interval: 300ms\n"
                          "  b:\n"
                          "    provider: here\n"
                          "    scope: repo/acme/app\n"
                          "    labels: [lb]\n"
                          "    max_runners: 10\n"
                          "    poll_interval: 300ms\n");
        fs_start(fx);
        make_jobs(fx, 8, "acme", "app", "[\"la\"]", "[\"sleep 1\"]");
        make_jobs(fx, 8, "acme", "firmware", "[\"lb\"]", "[\"sleep 1\"]");
        make_jobs(fx, 8, "acme", "app", "[\"lb\"]", "[\"sleep 1\"]");
        int most = 0, most_live = 0;
        double t0 = now_s();
        while (jobs_tally(fx).success < 16) {
                if (now_s() - t0 > 90)
                        fail_msg("not done within 90 s: %d of 16", jobs_tally(fx).success);
                int w = count_children(fx), l = live_instances(fx);
                most = w > most ? w : most;
                most_live = l > most_live ? l : most_live;
                usleep(50000);
        }
        print_message("most workers at once: %d, most live instances: %d\n", most, most_live);
        assert_true(most <= 4);
        assert_int_equal(most_live, 4); /* the cap was reached, not only kept */
        wait_drained(fx, 16, 60);
        struct tally t = jobs_tally(fx);
        assert_int_equal(t.success, 16);
        /* acme/firmware jobs with label lb are outside pool b's scope
         * (repo acme/app) and pool a's labels: untouched. */
        assert_int_equal(t.waiting, 8);
        assert_nothing_leaked(fx);
        fs_kill(fx, SIGTERM);
}

/* Forgejo 14 has no ephemeral runners over REST: the queue pool is
 * refused with a message naming broker mode, and nothing is registered. */
static void old_forgejo_refuses_queue_mode(void **state)
{
        struct fx *fx = *state;
        char *text;

        write_config(fx,
                     "  linux:\n"
                     "    scope: org/acme\n"
                     "    labels: [ubuntu-latest]\n"
                     "    poll_interval: 200ms\n");
        fs_start(fx);
        make_jobs(fx, 3, "acme", "app", "[\"ubuntu-latest\"]", "[\"echo hi\"]");
        text = wait_log(fx, 1, "use mode: broker", 10);
        assert_non_null(strstr(text, "queue mode needs Forgejo 15 or newer"));
        assert_non_null(strstr(text, "version=14.0.3"));
        free(text);
        /* Three listings that show the waiting jobs after the refusal: a
         * pool that was not refused would have registered runners by then. */
        double listed = metric_sum(fx, "forgescale_forge_requests_total", "runners/jobs");
        double t0 = now_s();
        while (metric_sum(fx, "forgescale_forge_requests_total", "runners/jobs") < listed + 3) {
                if (now_s() - t0 > 10)
                        fail_msg("the pool's jobs were not listed three more times within 10 s");
                usleep(50000);
        }
        json_t *pools = api_get(fx, "/v1/pools");
        assert_non_null(pools);
        assert_true(json_is_false(json_object_get(json_array_get(pools, 0), "enabled")));
        json_decref(pools);
        assert_int_equal(jobs_tally(fx).waiting, 3);
        assert_int_equal(undeleted_runners_q(fx, NULL, true), 0);
        assert_true(metric_sum(fx, "forgescale_forge_requests_total", "POST") == 0);
        fs_kill(fx, SIGTERM);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(three_pools_many_jobs, setup, teardown),
                cmocka_unit_test_setup_teardown(kill9_mid_burst_and_restart, setup, teardown),
                cmocka_unit_test_setup_teardown(sigterm_keeps_workers_and_restart_adopts, setup, teardown),
                cmocka_unit_test_setup_teardown(forge_faults_recovery, setup, teardown),
                cmocka_unit_test_setup_teardown(foreign_runner_steals_jobs, setup, teardown),
                cmocka_unit_test_setup_teardown(warm_pool_takes_jobs_and_refills, setup, teardown),
                cmocka_unit_test_setup_teardown(warm_surplus_retired_after_idle_timeout, setup, teardown),
                cmocka_unit_test_setup_teardown(provider_max_instances_caps_pools, setup, teardown),
                cmocka_unit_test_setup_teardown(old_forgejo_refuses_queue_mode, setup_forgejo14, teardown),
        };
        atexit(on_abort);
        httpc_global_init();
        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
