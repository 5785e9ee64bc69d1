/* kube_e2e.c: the real daemon against forgejo-sim with its workers as pods
 * of kube-fake (tests/support/kubefake.h; a pod is a local process running
 * forgejo-sim-runner, the image only a name): queue and broker mode, a
 * kubeconfig and the in-cluster service account, watches dropped mid-run,
 * unschedulable pods stopped at bootstrap_timeout (metric and log say why),
 * and a kill -9 of the daemon whose restart adopts the running pods. Each
 * scenario ends with no managed Job or Secret left in the namespace. */
#include "fixture.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kubefake.h"
#include "util/httpc.h"

#define NS "fs-e2e"

static struct kubefake *kf;

static void kf_up(struct fx *fx)
{
        struct kubefake_opts o = { .ns = NS };
        int r = kubefake_start(&o, &kf);

        if (r < 0)
                fail_msg("kubefake_start: %s", strerror(-r));
}

static void kf_ctl(const char *path, const char *body)
{
        int st = kubefake_ctl(kf, "POST", path, body, NULL);

        if (st < 200 || st > 299)
                fail_msg("POST %s: %d", path, st);
}

static size_t managed(const char *kind_path)
{
        struct kubefake_resp r;
        char path[256];
        size_t n;

        snprintf(path, sizeof(path), "%s?labelSelector=forgescale.io%%2Fmanaged%%3Dtrue", kind_path);
        assert_int_equal(kubefake_request(kf, KUBEFAKE_AUTH_TOKEN, "GET", path, NULL, &r), 0);
        assert_int_equal(r.status, 200);
        n = json_array_size(json_object_get(r.json, "items"));
        kubefake_resp_done(&r);
        return n;
}

/* Nothing of ours in the namespace: cleanup() deletes without waiting. */
static void assert_namespace_clean(void)
{
        double t0 = now_s();
        size_t jobs, secrets;

        do {
                jobs = managed("/apis/batch/v1/namespaces/" NS "/jobs");
                secrets = managed("/api/v1/namespaces/" NS "/secrets");
                if (jobs + secrets == 0)
                        return;
                usleep(100000);
        } while (now_s() - t0 < 15);
        fail_msg("left in the namespace: %zu Jobs, %zu Secrets", jobs, secrets);
}

static void kf_down(void)
{
        kubefake_stop(kf);
        kf = NULL;
}

/* provider: the YAML mapping of the provider; pools: under "pools:". */
static void write_kube_config(struct fx *fx, const char *auth, const char *extra_provider, bool broker,
                              const char *pools)
{
        char cfg[PATH_MAX], text[16384];

        snprintf(text, sizeof(text),
                 "listen: 127.0.0.1:0\n"
                 "state_dir: %s\n"
                 "forges:\n"
                 "  sim:\n"
                 "    url: %s\n"
                 "    token_env: FS_TEST_TOKEN\n"
                 "    timeout: 5s\n"
                 "providers:\n"
                 "  cluster:\n"
                 "    type: kubernetes\n"
                 "%s"
                 "    image: registry.example/forgejo-runner:11\n"
                 "    namespace: " NS "\n"
                 "    stop_grace: 2s\n"
                 "%s"
                 "%s"
                 "pools:\n%s",
                 fx->state, fx->sim->base_url, auth, extra_provider ? extra_provider : "",
                 broker ? "broker:\n  listen: 127.0.0.1:0\n" : "", pools);
        snprintf(cfg, sizeof(cfg), "%s/fs.yaml", fx->dir);
        write_file(cfg, text);
}

static void kubeconfig_auth(struct fx *fx, char *buf, size_t n, bool client_cert)
{
        char path[PATH_MAX];

        snprintf(path, sizeof(path), "%s/kubeconfig", fx->dir);
        assert_int_equal(kubefake_write_kubeconfig(kf, path, client_cert), 0);
        snprintf(buf, n, "    kubeconfig: %s\n", path);
}

static const char *runner(struct fx *fx)
{
        const char *r = getenv("FORGEJO_SIM_RUNNER");

        assert_non_null(r);
        return r;
}

static int scaled(int n)
{
        return getenv("FS_E2E_LIGHT") ? (n / 4 > 2 ? n / 4 : 2) : n;
}

/* ---- scenarios ------------------------------------------------------------------ */

/* Queue mode through a kubeconfig (client certificate); the watches are
 * dropped twice while jobs run. */
static void kube_queue_mode(void **state)
{
        struct fx *fx = *state;
        char auth[PATH_MAX + 32], pools[1024];
        int n = scaled(24);

        kf_up(fx);
        kubeconfig_auth(fx, auth, sizeof(auth), true);
        snprintf(pools, sizeof(pools),
                 "  linux:\n"
                 "    scope: org/acme\n"
                 "    labels: [ubuntu-latest]\n"
                 "    provider: cluster\n"
                 "    max_runners: 8\n"
                 "    poll_interval: 500ms\n"
                 "    runner: {command: [%s]}\n", runner(fx));
        write_kube_config(fx, auth, NULL, false, pools);
        fs_start(fx);
        make_jobs(fx, n, "acme", "app", "[\"ubuntu-latest\"]", "[\"echo start\",\"sleep 1\",\"echo done\"]");
        double t0 = now_s();
        for (int drops = 0; drops < 2;) {
                if (now_s() - t0 > 90)
                        fail_msg("no progress: %d jobs succeeded", jobs_tally(fx).success);
                if (jobs_tally(fx).success >= (drops + 1) * n / 3) {
                        kf_ctl("/_fake/drop-watches", NULL);
                        drops++;
                }
                usleep(50000);
        }
        wait_drained(fx, n, 120);
        assert_int_equal(jobs_tally(fx).success, n);
        assert_int_equal(undeleted_runners(fx, NULL), 0);
        assert_namespace_clean();
        fs_kill(fx, SIGTERM);
        kf_down();
}

/* Broker mode through the in-cluster service account. */
static void kube_broker_mode_in_cluster(void **state)
{
        struct fx *fx = *state;
        char sa[PATH_MAX], port[16], pools[1024];
        int n = scaled(16);

        kf_up(fx);
        snprintf(sa, sizeof(sa), "%s/sa", fx->dir);
        assert_int_equal(kubefake_write_sa_dir(kf, sa), 0);
        snprintf(port, sizeof(port), "%d", kubefake_port(kf));
        setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);
        setenv("KUBERNETES_SERVICE_PORT", port, 1);
        setenv("FORGESCALE_KUBE_SA_DIR", sa, 1);
        snprintf(pools, sizeof(pools),
                 "  linux:\n"
                 "    mode: broker\n"
                 "    scope: org/acme\n"
                 "    labels: [lx]\n"
                 "    provider: cluster\n"
                 "    max_runners: 6\n"
                 "    poll_interval: 1s\n"
                 "    runner: {command: [%s]}\n", runner(fx));
        write_kube_config(fx, "", NULL, true, pools);
        fs_start(fx);
        unsetenv("KUBERNETES_SERVICE_HOST");
        unsetenv("KUBERNETES_SERVICE_PORT");
        unsetenv("FORGESCALE_KUBE_SA_DIR");
        make_jobs(fx, n, "acme", "app", "[\"lx\"]", "[\"echo out\"]");
        wait_drained(fx, n, 120);
        assert_int_equal(jobs_tally(fx).success, n);
        assert_namespace_clean();
        fs_kill(fx, SIGTERM);
        kf_down();
}

/* Pods that cannot be placed are stopped at bootstrap_timeout; the metric
 * and the log say why; once the cluster has room the jobs run. */
static void kube_unschedulable_stopped(void **state)
{
        struct fx *fx = *state;
        char auth[PATH_MAX + 32], pools[1024];

        kf_up(fx);
        kubeconfig_auth(fx, auth, sizeof(auth), false);
        kf_ctl("/_fake/scheduling", "{\"schedulable\":false,\"message\":\"0/3 nodes are available: 3 Insufficient cpu.\"}");
        snprintf(pools, sizeof(pools),
                 "  linux:\n"
                 "    scope: org/acme\n"
                 "    labels: [ubuntu-latest]\n"
                 "    provider: cluster\n"
                 "    max_runners: 2\n"
                 "    poll_interval: 500ms\n"
                 "    bootstrap_timeout: 3s\n"
                 "    runner: {command: [%s]}\n", runner(fx));
        write_kube_config(fx, auth, NULL, false, pools);
        fs_start(fx);
        make_jobs(fx, 2, "acme", "app", "[\"ubuntu-latest\"]", "[\"echo ok\"]");
        double t0 = now_s();
        while (metric_sum(fx, "forgescale_launches_total", "result=\"unschedulable\"") < 1) {
                if (now_s() - t0 > 60)
                        fail_msg("no launch counted as unschedulable");
                usleep(200000);
        }
        char *log = wait_log(fx, 1, "0/3 nodes are available: 3 Insufficient cpu.", 10);
        assert_non_null(log);
        free(log);
        kf_ctl("/_fake/scheduling", "{\"schedulable\":true}");
        wait_drained(fx, 2, 120);
        assert_int_equal(jobs_tally(fx).success, 2);
        assert_namespace_clean();
        fs_kill(fx, SIGTERM);
        kf_down();
}

/* kill -9 mid-run: the restart adopts the running pods by their Job's uid,
 * every job ends once, nothing is left. */
static void kube_kill9_restart_adopts(void **state)
{
        struct fx *fx = *state;
        char auth[PATH_MAX + 32], pools[1024];
        int n = scaled(16);

        kf_up(fx);
        kubeconfig_auth(fx, auth, sizeof(auth), false);
        snprintf(pools, sizeof(pools),
                 "  linux:\n"
                 "    scope: org/acme\n"
                 "    labels: [ubuntu-latest]\n"
                 "    provider: cluster\n"
                 "    max_runners: 8\n"
                 "    poll_interval: 500ms\n"
                 "    runner: {command: [%s]}\n", runner(fx));
        write_kube_config(fx, auth, NULL, false, pools);
        fs_start(fx);
        make_jobs(fx, n, "acme", "app", "[\"ubuntu-latest\"]", "[\"sleep 2\",\"echo done\"]");
        double t0 = now_s();
        while (jobs_tally(fx).running < 2) {
                if (now_s() - t0 > 60)
                        fail_msg("no job running before the kill");
                usleep(50000);
        }
        fs_kill(fx, SIGKILL);
        assert_true(managed("/apis/batch/v1/namespaces/" NS "/jobs") > 0);
        fs_start(fx);
        wait_drained(fx, n, 150);
        assert_int_equal(jobs_tally(fx).success, n);
        assert_int_equal(undeleted_runners(fx, NULL), 0);
        assert_namespace_clean();
        fs_kill(fx, SIGTERM);
        kf_down();
}

static int kteardown(void **state)
{
        if (kf)
                kf_down();
        return teardown(state);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(kube_queue_mode, setup, kteardown),
                cmocka_unit_test_setup_teardown(kube_broker_mode_in_cluster, setup, kteardown),
                cmocka_unit_test_setup_teardown(kube_unschedulable_stopped, setup, kteardown),
                cmocka_unit_test_setup_teardown(kube_kill9_restart_adopts, setup, kteardown),
        };
        atexit(on_abort);
        httpc_global_init();
        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
