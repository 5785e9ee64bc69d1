/* broker_e2e.c: broker mode end to end — the real daemon, forgejo-sim
 * (Forgejo 15 and 14), and forgejo-sim-runner workers that reach only the
 * broker's endpoint. Each scenario is one meson test (the name is argv[1]);
 * every one ends with the jobs in their right final state, the forge
 * seeing one runner per broker pool, and no worker left. */
#include "fixture.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fsutil.h"
#include "util/httpc.h"

/* A port nothing listens on now (a restarted broker must keep its port:
 * adopted workers know only that one). */
static int free_port(void)
{
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(a);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        assert_true(fd >= 0);
        assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
        close(fd);
        return ntohs(a.sin_port);
}

static int broker_port_fixed;

/* A configuration with a broker section (port 0 unless a test fixed one:
 * the daemon says which). */
static void write_broker_config(struct fx *fx, const char *broker_extra, const char *pools)
{
        write_config_broker(fx, "5s", broker_extra, pools, broker_port_fixed);
}

static json_t *job(struct fx *fx, long long id)
{
        return job_json(fx, id);
}

/* The job's log: forgescale's rows first (the last says the worker
 * connected), then the worker's, each once and in order. */
static void check_log(struct fx *fx, long long id, const char *want_line)
{
        json_t *j = job(fx, id), *log = json_object_get(j, "log"), *row;
        size_t i, prelude = 0, seen = 0;
        bool connected = false, after = false;

        json_array_foreach(log, i, row) {
                const char *s = json_string_value(row);
                assert_non_null(s);
                if (strncmp(s, "forgescale: ", 12) == 0) {
                        if (after)
                                fail_msg("job %lld: a forgescale row after the worker's rows: %s", id, s);
                        prelude++;
                        connected = strstr(s, " connected") != NULL;
                        continue;
                }
                after = true;
                if (strcmp(s, want_line) == 0)
                        seen++;
        }
        if (prelude < 3 || !connected || seen != 1) {
                char *dump = json_dumps(log, JSON_COMPACT);
                fail_msg("job %lld: log has %zu forgescale rows (connected: %d) and '%s' %zu times: %s", id,
                         prelude, connected, want_line, seen, dump ? dump : "?");
        }
        json_decref(j);
}

static long long make_job(struct fx *fx, const char *repo, const char *name, const char *runs_on,
                          const char *steps)
{
        struct sim_job j;
        assert_int_equal(sim_create_job(fx->sim, "acme", repo, name, runs_on, steps, &j), 0);
        return j.id;
}

/* Jobs whose log has a row a worker wrote. */
static int jobs_with_worker_rows(struct fx *fx, const long long *ids, int n)
{
        int k = 0;

        for (int i = 0; i < n; i++) {
                json_t *j = job(fx, ids[i]), *row;
                size_t x;
                bool w = false;
                json_array_foreach(json_object_get(j, "log"), x, row)
                        w |= json_is_string(row) && strncmp(json_string_value(row), "forgescale: ", 12) != 0;
                k += w;
                json_decref(j);
        }
        return k;
}

/* ---- scenarios ---------------------------------------------------------- */

static void many_tasks(struct fx *fx, int per_pool)
{
        /* Under the sanitizers (make asan) a fifth: they look for memory
         * errors, which the first tasks find as well as the 200th. */
        if (getenv("FS_E2E_LIGHT"))
                per_pool = per_pool / 5 > 2 ? per_pool / 5 : 2;
        long long *ids = calloc((size_t)per_pool * 2, sizeof(*ids));
        char name[64], steps[128], line[64];

        assert_non_null(ids);
        write_broker_config(fx, NULL,
                            "  linux:\n"
                            "    mode: broker\n"
                            "    forge: sim\n"
                            "    scope: org/acme\n"
                            "    labels: [lx]\n"
                            "    provider: here\n"
                            "    max_runners: 8\n"
                            "    poll_interval: 1s\n"
                            "  arm:\n"
                            "    mode: broker\n"
                            "    forge: sim\n"
                            "    scope: org/acme\n"
                            "    labels: [arm]\n"
                            "    provider: here\n"
                            "    max_runners: 6\n"
                            "    poll_interval: 1s\n");
        fs_start(fx);
        for (int i = 0; i < per_pool * 2; i++) {
                snprintf(name, sizeof(name), "t%d", i);
                snprintf(steps, sizeof(steps), "[\"echo out-%d\"]", i);
                ids[i] = make_job(fx, i % 2 ? "app" : "firmware", name, i % 2 ? "[\"lx\"]" : "[\"arm\"]", steps);
        }
        /* While they run, the forge sees one runner per pool. */
        for (int i = 0; i < 100 && jobs_tally(fx).running == 0; i++)
                usleep(20000);
        assert_int_equal(runners_named(fx, "fsb-", false), 2);
        assert_int_equal(runners_named(fx, "fs-", false), 0);
        wait_drained(fx, per_pool * 2, 180);
        struct tally t = jobs_tally(fx);
        assert_int_equal(t.success, per_pool * 2);
        for (int i = 0; i < per_pool * 2; i++) {
                snprintf(line, sizeof(line), "out-%d", i);
                check_log(fx, ids[i], line);
        }
        /* One runner per broker pool, before and after: no churn. */
        assert_int_equal(runners_named(fx, "fsb-", false), 2);
        assert_int_equal(runners_named(fx, "fsb-", true), 2);
        assert_int_equal(runners_named(fx, "fs-", false), 0);
        for (int i = 0; i < 50 && count_workers(fx, false) > 0; i++)
                usleep(100000);
        assert_int_equal(count_workers(fx, false), 0);
        /* Every launch was a claimed worker. */
        assert_true(metric_sum(fx, "forgescale_launches_total", "result=\"claimed\"") >= per_pool * 2);
        free(ids);
}

static void broker_runs_jobs(void **state)
{
        many_tasks(*state, 100);
}

static void broker_on_forgejo14(void **state)
{
        many_tasks(*state, 100);
}

/* A worker that never connects is replaced, up to worker_retries; then the
 * task is reported failed, with rows saying why. */
static void broker_worker_never_connects(void **state)
{
        struct fx *fx = *state;
        char pools[1024];

        snprintf(pools, sizeof(pools),
                 "  linux:\n"
                 "    mode: broker\n"
                 "    forge: sim\n"
                 "    scope: org/acme\n"
                 "    labels: [lx]\n"
                 "    provider: here\n"
                 "    max_runners: 2\n"
                 "    poll_interval: 1s\n"
                 "    runner: {command: [/bin/false]}\n");
        write_broker_config(fx, "  worker_retries: 1\n", pools);
        fs_start(fx);
        long long id = make_job(fx, "app", "never", "[\"lx\"]", NULL);
        wait_drained(fx, 1, 90);
        json_t *j = job(fx, id);
        assert_string_equal(json_string_value(json_object_get(j, "status")), "failure");
        char *dump = json_dumps(json_object_get(j, "log"), JSON_COMPACT);
        assert_non_null(strstr(dump, "did not connect"));
        assert_non_null(strstr(dump, "no worker connected (2 started"));
        free(dump);
        json_decref(j);
        assert_int_equal(runners_named(fx, "fsb-", false), 1);
}

/* A worker killed mid-task: the task fails upstream, naming the worker;
 * nothing runs it again. */
static void broker_worker_dies_mid_task(void **state)
{
        struct fx *fx = *state;

        write_broker_config(fx, NULL,
                            "  linux:\n"
                            "    mode: broker\n"
                            "    forge: sim\n"
                            "    scope: org/acme\n"
                            "    labels: [lx]\n"
                            "    provider: here\n"
                            "    max_runners: 2\n"
                            "    poll_interval: 1s\n");
        fs_start(fx);
        long long id = make_job(fx, "app", "long", "[\"lx\"]", "[\"echo started\", \"sleep 60\"]");
        /* Wait for the job to run on a worker, then kill the worker. */
        for (int i = 0; i < 200; i++) {
                json_t *j = job(fx, id);
                char *dump = json_dumps(json_object_get(j, "log"), JSON_COMPACT);
                bool running = strcmp(json_string_value(json_object_get(j, "status")), "running") == 0 &&
                               dump && strstr(dump, "started");
                free(dump);
                json_decref(j);
                if (running)
                        break;
                usleep(100000);
        }
        assert_true(count_workers(fx, true) >= 1);
        wait_drained(fx, 1, 60);
        json_t *j = job(fx, id);
        assert_string_equal(json_string_value(json_object_get(j, "status")), "failure");
        char *dump = json_dumps(json_object_get(j, "log"), JSON_COMPACT);
        if (!strstr(dump, "before reporting a result"))
                fail_msg("no failure note in %s", dump);
        free(dump);
        json_decref(j);
        /* Not run again. */
        usleep(1500000);
        assert_int_equal(jobs_tally(fx).running, 0);
        assert_int_equal(count_workers(fx, false), 0);
}

/* Cancelled on the forge while running: the worker hears it in its
 * UpdateTask answers, stops, and the job ends cancelled. */
static void broker_cancel_running(void **state)
{
        struct fx *fx = *state;

        write_broker_config(fx, NULL,
                            "  linux:\n"
                            "    mode: broker\n"
                            "    forge: sim\n"
                            "    scope: org/acme\n"
                            "    labels: [lx]\n"
                            "    provider: here\n"
                            "    max_runners: 2\n"
                            "    poll_interval: 1s\n");
        fs_start(fx);
        long long id = make_job(fx, "app", "long", "[\"lx\"]", "[\"echo started\", \"sleep 60\"]");
        for (int i = 0; i < 200; i++) {
                json_t *j = job(fx, id);
                char *dump = json_dumps(json_object_get(j, "log"), JSON_COMPACT);
                bool started = dump && strstr(dump, "started");
                free(dump);
                json_decref(j);
                if (started)
                        break;
                usleep(100000);
        }
        assert_int_equal(sim_cancel_job(fx->sim, id), 0);
        wait_drained(fx, 1, 60);
        json_t *j = job(fx, id);
        assert_string_equal(json_string_value(json_object_get(j, "status")), "cancelled");
        json_decref(j);
        for (int i = 0; i < 100 && count_workers(fx, false) > 0; i++)
                usleep(100000);
        assert_int_equal(count_workers(fx, false), 0);
}

/* kill -9 mid-burst: held tasks come back through their request keys,
 * running workers are adopted and keep relaying, nothing runs twice. */
static void broker_kill9_and_restart(void **state)
{
        struct fx *fx = *state;
        long long ids[12];
        char steps[96], line[32], name[32];

        broker_port_fixed = free_port();
        write_broker_config(fx, NULL,
                            "  linux:\n"
                            "    mode: broker\n"
                            "    forge: sim\n"
                            "    scope: org/acme\n"
                            "    labels: [lx]\n"
                            "    provider: here\n"
                            "    max_runners: 4\n"
                            "    poll_interval: 1s\n");
        fs_start(fx);
        for (int i = 0; i < 12; i++) {
                snprintf(name, sizeof(name), "k%d", i);
                snprintf(steps, sizeof(steps), "[\"sleep 1\", \"echo done-%d\"]", i);
                ids[i] = make_job(fx, "app", name, "[\"lx\"]", steps);
        }
        /* Killed while workers are mid-task (their rows are in): they
         * must keep relaying to the restarted broker. */
        for (int i = 0; i < 200 && jobs_with_worker_rows(fx, ids, 12) < 2; i++)
                usleep(50000);
        assert_true(jobs_with_worker_rows(fx, ids, 12) >= 2);
        fs_kill(fx, SIGKILL);
        usleep(300000);
        fs_start(fx);
        wait_drained(fx, 12, 120);
        assert_int_equal(jobs_tally(fx).success, 12);
        for (int i = 0; i < 12; i++) {
                snprintf(line, sizeof(line), "done-%d", i);
                json_t *j = job(fx, ids[i]);
                char *dump = json_dumps(json_object_get(j, "log"), JSON_COMPACT);
                const char *p = strstr(dump, line);
                if (!p || strstr(p + 1, line))
                        fail_msg("job %d: '%s' not exactly once in %s", i, line, dump);
                free(dump);
                json_decref(j);
        }
        assert_int_equal(runners_named(fx, "fsb-", false), 1);
        for (int i = 0; i < 50 && count_workers(fx, false) > 0; i++)
                usleep(100000);
        assert_int_equal(count_workers(fx, false), 0);
}

static const char *const POOL_B1 =
        "  b1:\n"
        "    mode: broker\n"
        "    forge: sim\n"
        "    scope: org/acme\n"
        "    provider: here\n"
        "    max_runners: 2\n"
        "    poll_interval: 1s\n";

static void wait_success(struct fx *fx, int n, double timeout_s)
{
        double t0 = now_s();

        while (jobs_tally(fx).success < n) {
                if (now_s() - t0 > timeout_s)
                        fail_msg("not %d successes within %.0f s: %d", n, timeout_s, jobs_tally(fx).success);
                usleep(100000);
        }
}

/* SIGHUP: a broker pool's new labels are declared (the forge then hands
 * it jobs it did not before); an added broker pool registers its runner; a
 * removed one's runner is deleted once its tasks are over. */
static void broker_reload(void **state)
{
        struct fx *fx = *state;
        char pools[2048];

        snprintf(pools, sizeof(pools), "%s    labels: [a]\n", POOL_B1);
        write_broker_config(fx, NULL, pools);
        fs_start(fx);
        make_job(fx, "app", "on-b", "[\"b\"]", NULL);
        make_job(fx, "app", "on-a", "[\"a\"]", NULL);
        wait_success(fx, 1, 30);
        usleep(1500000);
        assert_int_equal(jobs_tally(fx).waiting, 1);   /* [b]: not this runner's labels */

        snprintf(pools, sizeof(pools), "%s    labels: [a, b]\n"
                 "  b2:\n"
                 "    mode: broker\n"
                 "    forge: sim\n"
                 "    scope: org/acme\n"
                 "    labels: [c]\n"
                 "    provider: here\n"
                 "    poll_interval: 1s\n", POOL_B1);
        write_broker_config(fx, NULL, pools);
        kill(fx->fs, SIGHUP);
        make_job(fx, "app", "on-c", "[\"c\"]", NULL);
        wait_success(fx, 3, 30);
        assert_int_equal(runners_named(fx, "fsb-", true), 2);

        snprintf(pools, sizeof(pools), "%s    labels: [a, b]\n", POOL_B1);
        write_broker_config(fx, NULL, pools);
        kill(fx->fs, SIGHUP);
        double t0 = now_s();
        while (runners_named(fx, "fsb-", true) != 1) {
                if (now_s() - t0 > 15)
                        fail_msg("the removed pool's runner is still registered");
                usleep(100000);
        }
        assert_int_equal(runners_named(fx, "fsb-", false), 2);   /* one of them deleted */
        char path[PATH_MAX + 32];
        snprintf(path, sizeof(path), "%s/broker/b2.runner", fx->state);
        assert_int_equal(access(path, F_OK), -1);
        assert_int_equal(count_workers(fx, false), 0);
}

/* Queue and broker pools side by side on one forge. */
static void broker_and_queue_side_by_side(void **state)
{
        struct fx *fx = *state;

        write_broker_config(fx, NULL,
                            "  q:\n"
                            "    forge: sim\n"
                            "    scope: org/acme\n"
                            "    labels: [q]\n"
                            "    provider: here\n"
                            "    max_runners: 4\n"
                            "    poll_interval: 1s\n"
                            "  b:\n"
                            "    mode: broker\n"
                            "    forge: sim\n"
                            "    scope: org/acme\n"
                            "    labels: [b]\n"
                            "    provider: here\n"
                            "    max_runners: 4\n"
                            "    poll_interval: 1s\n");
        fs_start(fx);
        make_jobs(fx, 8, "acme", "app", "[\"q\"]", NULL);
        make_jobs(fx, 8, "acme", "firmware", "[\"b\"]", NULL);
        wait_drained(fx, 16, 120);
        assert_int_equal(jobs_tally(fx).success, 16);
        assert_int_equal(runners_named(fx, "fsb-", false), 1);
        /* What the API and the metrics say of each pool. */
        json_t *pools = api_get(fx, "/v1/pools"), *p;
        size_t i;
        int brokers = 0;
        json_array_foreach(pools, i, p) {
                const char *mode = json_string_value(json_object_get(p, "mode"));
                json_t *b = json_object_get(p, "broker");
                if (strcmp(mode, "broker") == 0) {
                        brokers++;
                        assert_string_equal(json_string_value(json_object_get(b, "runner")), "ready");
                        assert_true(json_integer_value(json_object_get(b, "runner_id")) > 0);
                        assert_int_equal(json_integer_value(json_object_get(b, "tasks_held")), 0);
                } else {
                        assert_null(b);
                }
        }
        json_decref(pools);
        assert_int_equal(brokers, 1);
        assert_true(metric_sum(fx, "forgescale_broker_runner_ready", "pool=\"b\"") == 1);
        assert_true(metric_sum(fx, "forgescale_launches_total", "pool=\"b\",result=\"claimed\"") == 8);
        assert_promtool_accepts(fx);
        assert_int_equal(undeleted_runners(fx, "fs-"), 0);
        assert_int_equal(count_workers(fx, false), 0);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest all[] = {
                cmocka_unit_test_setup_teardown(broker_runs_jobs, setup, teardown),
                cmocka_unit_test_setup_teardown(broker_on_forgejo14, setup_forgejo14, teardown),
                cmocka_unit_test_setup_teardown(broker_worker_never_connects, setup, teardown),
                cmocka_unit_test_setup_teardown(broker_worker_dies_mid_task, setup, teardown),
                cmocka_unit_test_setup_teardown(broker_cancel_running, setup, teardown),
                cmocka_unit_test_setup_teardown(broker_kill9_and_restart, setup, teardown),
                cmocka_unit_test_setup_teardown(broker_and_queue_side_by_side, setup, teardown),
                cmocka_unit_test_setup_teardown(broker_reload, setup, teardown),
        };

        atexit(on_abort);
        httpc_global_init();
        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return cmocka_run_group_tests(all, NULL, NULL);
}
