/* bench_providers.c: launch-to-claimed latency and daemon CPU per launch of
 * the real daemon for one provider type (local, container on a private
 * Podman, kubernetes on kube-fake), N jobs through forgejo-sim with
 * forgejo-sim-runner workers. Also reports the provider's own part as the
 * daemon sees it (create() to STARTED, forgescale_worker_start_seconds);
 * the worker's start-up overlaps it (a worker runs as soon as its engine
 * starts it, before the engine says so), so the provider's overhead is
 * best read against the local provider's launch-to-claimed, which holds
 * the same registration and worker start-up. A benchmark, not a test: it
 * asserts only that every job ran, never anything about time. */
#include "fixture.h"
#include "podman.h"
#include "kubefake.h"

#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *type;
static int jobs = 200, max_runners = 20;
static struct podman *pm;
static struct kubefake *kf;

static int cmp_d(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;

        return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double p)
{
        if (!n)
                return NAN;
        size_t i = (size_t)ceil(p / 100.0 * (double)n);
        return v[i ? i - 1 : 0];
}

/* Per launch, from the state database: row written -> job claimed, and
 * row written -> the last state change (for claimed rows, their end). */
static size_t launch_waits(struct fx *fx, double **ret)
{
        char path[PATH_MAX + 32];
        sqlite3 *db = NULL;
        sqlite3_stmt *st = NULL;
        size_t n = 0, cap = 0;
        double *v = NULL;

        snprintf(path, sizeof(path), "%s/forgescale.db", fx->state);
        assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db, "SELECT claimed_ms - created_ms FROM instances "
                                                "WHERE claimed_ms > 0", -1, &st, NULL), SQLITE_OK);
        while (sqlite3_step(st) == SQLITE_ROW) {
                if (n == cap) {
                        cap = cap ? cap * 2 : 256;
                        assert_non_null(v = realloc(v, cap * sizeof(*v)));
                }
                v[n++] = (double)sqlite3_column_int64(st, 0) / 1000.0;
        }
        sqlite3_finalize(st);
        sqlite3_close(db);
        qsort(v, n, sizeof(*v), cmp_d);
        *ret = v;
        return n;
}

/* A histogram quantile from its cumulative buckets, linear inside a
 * bucket as Prometheus' histogram_quantile() does. The bounds are those of
 * forgescale_worker_start_seconds (src/daemon/api.c). */
static const double start_le[] = { 0.005, 0.025, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, INFINITY };
#define N_LE (sizeof(start_le) / sizeof(start_le[0]))

struct hist {
        double le[N_LE], cum[N_LE];
        int n;
        double sum, count;
};

static void read_hist(struct fx *fx, struct hist *h)
{
        memset(h, 0, sizeof(*h));
        for (size_t i = 0; i < N_LE; i++) {
                char frag[48];
                if (isinf(start_le[i]))
                        snprintf(frag, sizeof(frag), "le=\"+Inf\"");
                else
                        snprintf(frag, sizeof(frag), "le=\"%g\"", start_le[i]);
                h->le[h->n] = start_le[i];
                h->cum[h->n++] = metric_sum(fx, "forgescale_worker_start_seconds_bucket", frag);
        }
        h->sum = metric_sum(fx, "forgescale_worker_start_seconds_sum", NULL);
        h->count = metric_sum(fx, "forgescale_worker_start_seconds_count", NULL);
}

static double hist_q(const struct hist *h, double q)
{
        if (h->count <= 0 || h->n == 0)
                return NAN;
        double rank = q * h->count, lo = 0, prev = 0;
        for (int i = 0; i < h->n; i++) {
                if (h->cum[i] >= rank) {
                        if (isinf(h->le[i]))
                                return lo;
                        double in = h->cum[i] - prev;
                        return lo + (h->le[i] - lo) * (in > 0 ? (rank - prev) / in : 0);
                }
                lo = h->le[i];
                prev = h->cum[i];
        }
        return lo;
}

static double cpu_s(pid_t pid)
{
        char buf[1024];
        unsigned long ut = 0, stime = 0;

        if (proc_read(pid, "stat", buf, sizeof(buf)) <= 0)
                return NAN;
        char *p = strrchr(buf, ')');
        if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &stime) != 2)
                return NAN;
        return (double)(ut + stime) / (double)sysconf(_SC_CLK_TCK);
}

static void provider_text(struct fx *fx, char *buf, size_t n)
{
        if (strcmp(type, "local") == 0) {
                snprintf(buf, n, "{type: local}");
        } else if (strcmp(type, "container") == 0) {
                char runner[PATH_MAX];
                snprintf(runner, sizeof(runner), "%s", getenv("FORGEJO_SIM_RUNNER"));
                char *dir = dirname(runner);
                snprintf(buf, n,
                         "{type: container, socket: %s, image: \"%s\", pull: never, network: host, "
                         "runtime: runc, stop_grace: 2s, extra_mounts: [\"/usr:/usr:ro\", \"%s:%s:ro\"]}",
                         pm->sock, PODMAN_TEST_IMAGE, dir, dir);
        } else {
                char kc[PATH_MAX];
                snprintf(kc, sizeof(kc), "%.*s/kubeconfig", PATH_MAX - 16, fx->dir);
                assert_int_equal(kubefake_write_kubeconfig(kf, kc, false), 0);
                snprintf(buf, n, "{type: kubernetes, kubeconfig: %s, namespace: default, image: bench/runner, "
                         "stop_grace: 2s}", kc);
        }
}

static void bench(void **state)
{
        struct fx *fx = *state;
        char prov[PATH_MAX * 3], pools[2048];

        if (strcmp(type, "container") == 0)
                assert_int_equal(podman_start(fx->dir, &pm), 0);
        else if (strcmp(type, "kubernetes") == 0)
                assert_int_equal(kubefake_start(NULL, &kf), 0);
        provider_text(fx, prov, sizeof(prov));
        snprintf(pools, sizeof(pools),
                 "  linux:\n    scope: org/acme\n    labels: [lx]\n    provider: here\n"
                 "    max_runners: %d\n    poll_interval: 500ms\n    runner: {command: [\"%s\"]}\n",
                 max_runners, getenv("FORGEJO_SIM_RUNNER"));
        write_config_full(fx, "5s", prov, pools);
        fs_start(fx);
        double cpu0 = cpu_s(fx->fs), t0 = now_s();
        make_jobs(fx, jobs, "acme", "app", "[\"lx\"]", "[\"true\"]");
        wait_drained(fx, jobs, 1800);
        double wall = now_s() - t0, cpu = cpu_s(fx->fs) - cpu0;
        struct tally t = jobs_tally(fx);
        assert_int_equal(t.success, jobs);

        double *w = NULL;
        size_t nw = launch_waits(fx, &w);
        struct hist h;
        read_hist(fx, &h);
        double launches = metric_sum(fx, "forgescale_launches_total", NULL);

        printf("provider %s: %d jobs, max_runners %d\n", type, jobs, max_runners);
        printf("  first job created -> last finished, s      %.2f\n", wall);
        printf("  launch (row written) -> claimed, s  p50 %.3f  p90 %.3f  p99 %.3f  max %.3f  (n=%zu)\n",
               pct(w, nw, 50), pct(w, nw, 90), pct(w, nw, 99), pct(w, nw, 100), nw);
        printf("  provider's part (create -> started), s   mean %.3f  p50 ~%.3f  p99 ~%.3f  (n=%.0f, histogram)\n",
               h.count > 0 ? h.sum / h.count : NAN, hist_q(&h, 0.5), hist_q(&h, 0.99), h.count);
        printf("  daemon CPU, s %.2f  per launch, ms %.2f  (launches %.0f)\n", cpu,
               launches > 0 ? cpu * 1000.0 / launches : NAN, launches);
        free(w);
}

static int bench_teardown(void **state)
{
        struct fx *fx = *state;

        fs_kill(fx, SIGKILL);
        podman_free(pm);
        pm = NULL;
        kubefake_stop(kf);
        kf = NULL;
        return teardown(state);
}

int main(int argc, char **argv)
{
        if (argc < 2 || (strcmp(argv[1], "local") && strcmp(argv[1], "container") &&
                         strcmp(argv[1], "kubernetes"))) {
                fprintf(stderr, "usage: %s local|container|kubernetes [JOBS] [MAX_RUNNERS]\n", argv[0]);
                return 2;
        }
        type = argv[1];
        if (argc > 2)
                jobs = (int)strtol(argv[2], NULL, 10);
        if (argc > 3)
                max_runners = (int)strtol(argv[3], NULL, 10);
        if (jobs < 1 || max_runners < 1) {
                fprintf(stderr, "JOBS and MAX_RUNNERS are positive integers\n");
                return 2;
        }
        const struct CMUnitTest tests[] = { cmocka_unit_test_setup_teardown(bench, setup, bench_teardown) };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
