/* container_e2e.c: the real daemon against forgejo-sim with its workers
 * (forgejo-sim-runner) in containers of a private Podman service
 * (tests/support/podman.c): queue and broker mode, a container killed
 * mid-job, a missing image, the engine gone and back, and a kill -9 of the
 * daemon whose containers the next run adopts. Workers run the host's
 * binaries through read-only mounts of /usr and the build folder, on the
 * host network (they reach forgejo-sim and the broker on 127.0.0.1). Each
 * scenario is one meson test (the name is argv[1]); FS_E2E_LIGHT cuts the
 * job counts. */
#include "fixture.h"
#include "podman.h"

#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/fsutil.h"
#include "util/httpc.h"

static struct podman *pm;

static int ctr_setup(void **state)
{
        int r = setup(state);
        struct fx *fx = *state;

        if (r == 0 && podman_start(fx->dir, &pm) < 0)
                fail_msg("cannot start podman");
        return r;
}

/* The forge ends a task whose runner went silent after 3 s (Forgejo's
 * zombie tasks). */
static int ctr_setup_zombie(void **state)
{
        static const struct sim_opts o = { .zombie_timeout = "3s" };
        int r = setup_sim(state, &o);
        struct fx *fx = *state;

        if (r == 0 && podman_start(fx->dir, &pm) < 0)
                fail_msg("cannot start podman");
        return r;
}

static int ctr_teardown(void **state)
{
        struct fx *fx = *state;

        fs_kill(fx, SIGKILL);
        podman_free(pm);
        pm = NULL;
        return teardown(state);
}

static int light(int n)
{
        return getenv("FS_E2E_LIGHT") ? (n / 3 > 1 ? n / 3 : 1) : n;
}

/* The provider's flow mapping: the test image, the host's /usr and the
 * runner's build folder mounted read-only, the host network. */
static void provider_text(char *buf, size_t n, const char *image, const char *pull)
{
        char runner[PATH_MAX];

        snprintf(runner, sizeof(runner), "%s", getenv("FORGEJO_SIM_RUNNER"));
        char *dir = dirname(runner);
        snprintf(buf, n,
                 "{type: container, socket: %s, image: \"%s\", pull: %s, network: host, runtime: runc, "
                 "stop_grace: 2s, extra_mounts: [\"/usr:/usr:ro\", \"%s:%s:ro\"], env: {FS_IN_CONTAINER: \"1\"}}",
                 pm->sock, image, pull, dir, dir);
}

static void pools_text(char *buf, size_t n, const char *mode, int max)
{
        snprintf(buf, n,
                 "  linux:\n"
                 "    mode: %s\n"
                 "    scope: org/acme\n"
                 "    labels: [lx]\n"
                 "    provider: here\n"
                 "    max_runners: %d\n"
                 "    poll_interval: 500ms\n"
                 "    runner: {command: [\"%s\"]}\n",
                 mode, max, getenv("FORGEJO_SIM_RUNNER"));
}

static void write_ctr_config(struct fx *fx, const char *mode, int max, const char *image, const char *pull)
{
        char prov[4096], pools[2048];

        provider_text(prov, sizeof(prov), image, pull);
        pools_text(pools, sizeof(pools), mode, max);
        if (strcmp(mode, "broker") == 0)
                write_config_broker_provider(fx, "5s", prov, NULL, pools, 0);
        else
                write_config_full(fx, "5s", prov, pools);
}

static void assert_no_containers(void)
{
        int n = -1;

        for (int i = 0; i < 50 && (n = podman_count_managed(pm, NULL)) != 0; i++)
                usleep(100000);
        assert_int_equal(n, 0);
}

/* Each job's log has its step's line exactly once: it ran once, in a
 * container (the line holds the provider's env). */
static void check_ran_once(struct fx *fx)
{
        json_t *jobs = NULL, *j;
        size_t i;

        assert_int_equal(sim_list_jobs(fx->sim, &jobs), 0);
        json_array_foreach(jobs, i, j) {
                json_t *full = job_json(fx, json_integer_value(json_object_get(j, "id")));
                char *dump = json_dumps(json_object_get(full, "log"), JSON_COMPACT);
                assert_non_null(dump);
                char *first = strstr(dump, "in-container-1-c");
                if (!first || strstr(first + 1, "in-container-1-c"))
                        fail_msg("the step's line is not exactly once in %s", dump);
                free(dump);
                json_decref(full);
        }
        json_decref(jobs);
}

static void make_ctr_jobs(struct fx *fx, int n, const char *extra)
{
        for (int i = 0; i < n; i++) {
                char name[64], steps[256];
                struct sim_job j;
                snprintf(name, sizeof(name), "c%d", i);
                snprintf(steps, sizeof(steps), "[\"%secho in-container-$FS_IN_CONTAINER-c%d\"]",
                         extra ? extra : "", i);
                /* The step prints the provider's env: it ran in a container. */
                assert_int_equal(sim_create_job(fx->sim, "acme", "app", name, "[\"lx\"]", steps, &j), 0);
        }
}

/* ---- scenarios ------------------------------------------------------------------------------- */

static void run_jobs(struct fx *fx, const char *mode)
{
        int n = light(6);

        write_ctr_config(fx, mode, 3, PODMAN_TEST_IMAGE, "if-missing");
        fs_start(fx);
        make_ctr_jobs(fx, n, NULL);
        wait_drained(fx, n, 120);
        struct tally t = jobs_tally(fx);
        assert_int_equal(t.success, n);
        check_ran_once(fx);
        for (int i = 0; i < 50 && count_workers(fx, false) > 0; i++)
                usleep(100000);
        assert_int_equal(count_workers(fx, false), 0);
        assert_no_containers();
        assert_true(metric_sum(fx, "forgescale_launches_total", "result=\"claimed\"") >= n);
}

static void container_queue_jobs(void **state)
{
        run_jobs(*state, "queue");
        /* Every ephemeral registration deleted. */
        assert_int_equal(undeleted_runners(*state, NULL), 0);
}

static void container_broker_jobs(void **state)
{
        run_jobs(*state, "broker");
        /* The pool's one upstream runner, no per-job registrations. */
        assert_int_equal(runners_named(*state, "fsb-", false), 1);
        assert_int_equal(runners_named(*state, "fs-", false), 0);
}

/* Kills the running container of the one job through the engine's API,
 * as an operator would. Returns the number killed. */
static int kill_running(void)
{
        char *body = NULL, path[256];
        long st = 0;
        int n = 0;

        assert_int_equal(podman_api(pm, "GET", "/containers/json", NULL, &st, &body), 0);
        json_t *arr = json_loads(body ? body : "[]", 0, NULL), *c;
        size_t i;
        free(body);
        json_array_foreach(arr, i, c) {
                const char *id = json_string_value(json_object_get(c, "Id"));
                snprintf(path, sizeof(path), "/containers/%s/kill?signal=KILL", id);
                if (id && podman_api(pm, "POST", path, NULL, &st, NULL) == 0 && st == 204)
                        n++;
        }
        json_decref(arr);
        return n;
}

/* A container killed mid-job: the job ends (failed), the instance ends,
 * nothing is left. */
static void container_killed_mid_job(void **state)
{
        struct fx *fx = *state;

        write_ctr_config(fx, "queue", 2, PODMAN_TEST_IMAGE, "if-missing");
        fs_start(fx);
        make_ctr_jobs(fx, 1, "sleep 60; ");
        for (int i = 0; i < 300 && jobs_tally(fx).running == 0; i++)
                usleep(100000);
        assert_int_equal(jobs_tally(fx).running, 1);
        usleep(500000);
        assert_int_equal(kill_running(), 1);
        wait_drained(fx, 1, 120);
        struct tally t = jobs_tally(fx);
        assert_int_equal(t.success, 0);
        assert_int_equal(t.failure + t.cancelled, 1);
        assert_nothing_leaked(fx);
        assert_no_containers();
}

/* A missing image: failed launches counted as result "image", the pool
 * backing off (a bounded number of creates), the job left waiting. */
static void container_image_missing(void **state)
{
        struct fx *fx = *state;

        write_ctr_config(fx, "queue", 3, "localhost/forgescale-missing:1", "never");
        fs_start(fx);
        make_ctr_jobs(fx, 2, NULL);
        double t0 = now_s();
        while (metric_sum(fx, "forgescale_launches_total", "result=\"image\"") < 1 && now_s() - t0 < 30)
                usleep(200000);
        double first = metric_sum(fx, "forgescale_launches_total", "result=\"image\"");
        assert_true(first >= 1);
        sleep(5);
        double later = metric_sum(fx, "forgescale_launches_total", "result=\"image\"");
        /* Without backoff: 2 jobs relaunched every 500 ms poll, ~20 in 5 s;
         * with it, a pause of 5 s after the first failures. */
        if (later - first > 6)
                fail_msg("%.0f failed launches in 5 s: no backoff", later - first);
        assert_int_equal(jobs_tally(fx).waiting, 2);
        char *log = wait_log(fx, 1, "not available", 5);
        assert_non_null(log);
        assert_non_null(strstr(log, "localhost/forgescale-missing:1"));
        free(log);
        assert_no_containers();
}

/* The engine gone: launches fail as "unreachable" without a storm; once
 * it is back the jobs complete. */
static void container_engine_gone_and_back(void **state)
{
        struct fx *fx = *state;
        int n = light(3);

        write_ctr_config(fx, "queue", 3, PODMAN_TEST_IMAGE, "if-missing");
        podman_service_stop(pm);
        fs_start(fx);
        make_ctr_jobs(fx, n, NULL);
        double t0 = now_s();
        while (metric_sum(fx, "forgescale_launches_total", "result=\"unreachable\"") < 1 && now_s() - t0 < 30)
                usleep(200000);
        double first = metric_sum(fx, "forgescale_launches_total", "result=\"unreachable\"");
        assert_true(first >= 1);
        /* The first failures pause the pool (5 s, then doubling): without
         * that, 3 slots relaunched every 500 ms poll would make ~18 in 3 s. */
        sleep(3);
        double later = metric_sum(fx, "forgescale_launches_total", "result=\"unreachable\"");
        if (later - first > 3)
                fail_msg("%.0f failed launches in 3 s: no backoff", later - first);
        assert_int_equal(jobs_tally(fx).success, 0);
        assert_int_equal(podman_service_start(pm), 0);
        wait_drained(fx, n, 150);
        assert_int_equal(jobs_tally(fx).success, n);
        assert_nothing_leaked(fx);
        assert_no_containers();
}

/* kill -9 of the daemon while its containers run: the next run adopts
 * them, every job completes once, nothing is left. */
static void container_kill9_adopt(void **state)
{
        struct fx *fx = *state;
        int n = light(3);

        write_ctr_config(fx, "queue", n, PODMAN_TEST_IMAGE, "if-missing");
        fs_start(fx);
        make_ctr_jobs(fx, n, "sleep 4; ");
        for (int i = 0; i < 300 && jobs_tally(fx).running < n; i++)
                usleep(100000);
        assert_int_equal(jobs_tally(fx).running, n);
        fs_kill(fx, SIGKILL);
        assert_int_equal(podman_count_managed(pm, NULL), n);
        fs_start(fx);
        wait_drained(fx, n, 120);
        assert_int_equal(jobs_tally(fx).success, n);
        check_ran_once(fx);
        assert_nothing_leaked(fx);
        assert_no_containers();
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, ctr_setup, ctr_teardown)
                T(container_queue_jobs),
                T(container_broker_jobs),
                cmocka_unit_test_setup_teardown(container_killed_mid_job, ctr_setup_zombie, ctr_teardown),
                T(container_image_missing),
                T(container_engine_gone_and_back),
                T(container_kill9_adopt),
#undef T
        };
        atexit(on_abort);
        httpc_global_init();
        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
