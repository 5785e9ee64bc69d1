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

#include "sim.h"
#include "util/fsutil.h"
#include "util/httpc.h"

/* ---- fixture ------------------------------------------------------------ */

struct fx {
        struct sim *sim;
        struct sim_user admin;
        char dir[PATH_MAX - 64];        /* per-test work folder */
        char state[PATH_MAX];           /* state_dir (unique: identifies our workers) */
        pid_t fs;                       /* forgescale, 0 when not running */
        int starts;
        char api[64];                   /* http://127.0.0.1:PORT */
};

static struct fx *cur; /* for the abort path */

static double now_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void write_file(const char *path, const char *text)
{
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
}

/* Processes whose command line mentions our state folder: our workers. */
/* Reads /proc/PID/NAME into buf, NUL-terminated, NULs (cmdline's argument
 * separators) turned into spaces. Returns its length or -1. */
static ssize_t proc_read(pid_t pid, const char *name, char *buf, size_t n)
{
        char path[64];
        int fd;
        ssize_t len;

        snprintf(path, sizeof(path), "/proc/%d/%s", pid, name);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -1;
        len = read(fd, buf, n - 1);
        close(fd);
        if (len <= 0)
                return -1;
        for (ssize_t i = 0; i < len; i++)
                if (!buf[i])
                        buf[i] = ' ';
        buf[len] = '\0';
        return len;
}

/* Worker processes of this test (one-job with the test's state folder on
 * the command line), wherever they are; children_only: only those the
 * daemon started and has not reaped (a worker's own children, e.g. a step
 * between fork and exec, carry the same command line but another parent). */
static int scan_workers(const struct fx *fx, bool children_only, bool kill_them)
{
        DIR *d = opendir("/proc");
        struct dirent *de;
        int n = 0;

        if (!d)
                return -1;
        while ((de = readdir(d))) {
                char buf[8192];
                pid_t pid = (pid_t)strtol(de->d_name, NULL, 10);
                if (pid <= 0 || pid == getpid() || pid == fx->fs)
                        continue;
                if (children_only) {
                        /* "pid (comm) state ppid ...": comm may hold spaces. */
                        char st;
                        int ppid;
                        const char *rp = proc_read(pid, "stat", buf, sizeof(buf)) > 0 ? strrchr(buf, ')') : NULL;
                        if (!rp || sscanf(rp + 1, " %c %d", &st, &ppid) != 2 || ppid != fx->fs || st == 'Z')
                                continue;
                }
                if (proc_read(pid, "cmdline", buf, sizeof(buf)) < 0 || !strstr(buf, fx->state) ||
                    !strstr(buf, "one-job"))
                        continue;
                n++;
                if (kill_them)
                        kill(pid, SIGKILL);
        }
        closedir(d);
        return n;
}

static int count_workers(const struct fx *fx, bool kill_them)
{
        return scan_workers(fx, false, kill_them);
}

static int count_children(const struct fx *fx)
{
        return scan_workers(fx, true, false);
}

static void fs_kill(struct fx *fx, int sig)
{
        if (!fx->fs)
                return;
        kill(fx->fs, sig);
        int st;
        waitpid(fx->fs, &st, 0);
        fx->fs = 0;
}

static void on_abort(void)
{
        if (cur) {
                fs_kill(cur, SIGKILL);
                count_workers(cur, true);
        }
}

/* Starts `forgescale run` on fx->dir/fs.yaml and waits for its HTTP port. */
static void fs_start(struct fx *fx)
{
        char log[PATH_MAX], cfg[PATH_MAX], path_env[8192];
        const char *bin = getenv("FORGESCALE");

        assert_non_null(bin);
        fx->starts++;
        snprintf(log, sizeof(log), "%s/forgescale.%d.log", fx->dir, fx->starts);
        snprintf(cfg, sizeof(cfg), "%s/fs.yaml", fx->dir);
        snprintf(path_env, sizeof(path_env), "%s/bin:%s", fx->dir, getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                if (fd < 0 || dup2(fd, 2) < 0 || chdir(fx->dir) < 0)
                        _exit(127);
                setenv("PATH", path_env, 1);
                setenv("FS_TEST_TOKEN", fx->admin.token, 1);
                execl(bin, "forgescale", "run", "-c", cfg, "--log-level", "debug", (char *)NULL);
                _exit(127);
        }
        fx->fs = pid;
        for (int i = 0; i < 200; i++) {
                char *text = NULL;
                if (fs_read_file(log, 1 << 24, &text, NULL) == 0) {
                        const char *p = strstr(text, "msg=listening ");
                        const char *q = p ? strstr(p, " port=") : NULL;
                        if (q) {
                                snprintf(fx->api, sizeof(fx->api), "http://127.0.0.1:%ld", strtol(q + 6, NULL, 10));
                                free(text);
                                return;
                        }
                        free(text);
                }
                int st;
                if (waitpid(pid, &st, WNOHANG) == pid) {
                        fx->fs = 0;
                        fail_msg("forgescale exited during start-up; see %s", log);
                }
                usleep(50000);
        }
        fail_msg("forgescale did not report its HTTP port; see %s", log);
}

static int setup_sim(void **state, const struct sim_opts *opts)
{
        struct fx *fx = calloc(1, sizeof(*fx));
        char tmpl[] = "/tmp/fs-queue-XXXXXX", p[PATH_MAX];

        assert_non_null(fx);
        assert_non_null(mkdtemp(tmpl));
        snprintf(fx->dir, sizeof(fx->dir), "%s", tmpl);
        snprintf(fx->state, sizeof(fx->state), "%s/state", fx->dir);
        snprintf(p, sizeof(p), "%s/bin", fx->dir);
        assert_int_equal(mkdir(p, 0700), 0);
        snprintf(p, sizeof(p), "%s/bin/forgejo-runner", fx->dir);
        assert_non_null(getenv("FORGEJO_SIM_RUNNER"));
        assert_int_equal(symlink(getenv("FORGEJO_SIM_RUNNER"), p), 0);
        assert_int_equal(sim_start(opts, &fx->sim), 0);
        assert_int_equal(sim_create_user(fx->sim, "root", true, &fx->admin), 0);
        assert_int_equal(sim_create_org(fx->sim, "acme", (const char *const[]){ "root", NULL }, NULL), 0);
        assert_int_equal(sim_create_org(fx->sim, "other", (const char *const[]){ "root", NULL }, NULL), 0);
        assert_int_equal(sim_create_repo(fx->sim, "acme", "app", NULL), 0);
        assert_int_equal(sim_create_repo(fx->sim, "acme", "firmware", NULL), 0);
        assert_int_equal(sim_create_repo(fx->sim, "other", "x", NULL), 0);
        assert_int_equal(sim_create_repo(fx->sim, "root", "ml", NULL), 0);
        cur = fx;
        *state = fx;
        return 0;
}

static int setup(void **state)
{
        return setup_sim(state, NULL);
}

static int setup_forgejo14(void **state)
{
        static const struct sim_opts o = { .forgejo_version = "14.0.3+gitea-1.22.0" };
        return setup_sim(state, &o);
}

static int teardown(void **state)
{
        struct fx *fx = *state;

        fs_kill(fx, SIGKILL);
        count_workers(fx, true);
        sim_stop(fx->sim);
        if (!getenv("QUEUE_E2E_KEEP"))
                fs_rm_rf(fx->dir);
        else
                fprintf(stderr, "kept %s\n", fx->dir);
        cur = NULL;
        free(fx);
        return 0;
}

static void write_config_full(struct fx *fx, const char *timeout, const char *provider,
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
                 "    timeout: %s\n"
                 "providers:\n"
                 "  here: %s\n"
                 "pools:\n%s",
                 fx->state, fx->sim->base_url, timeout, provider, pools);
        snprintf(cfg, sizeof(cfg), "%s/fs.yaml", fx->dir);
        write_file(cfg, text);
}

static void write_config_t(struct fx *fx, const char *timeout, const char *pools)
{
        write_config_full(fx, timeout, "{type: local}", pools);
}

/* A generous forge timeout: under sanitizers and a parallel suite the
 * simulator can take over a second to answer. */
static void write_config(struct fx *fx, const char *pools)
{
        write_config_t(fx, "5s", pools);
}

/* ---- observations -------------------------------------------------------- */

struct tally {
        int total, waiting, running, success, failure, cancelled;
};

static struct tally jobs_tally(struct fx *fx)
{
        struct tally t = { 0 };
        json_t *jobs = NULL, *j;
        size_t i;

        assert_int_equal(sim_list_jobs(fx->sim, &jobs), 0);
        json_array_foreach(jobs, i, j) {
                const char *st = json_string_value(json_object_get(j, "status"));
                t.total++;
                if (!st)
                        continue;
                t.waiting += strcmp(st, "waiting") == 0;
                t.running += strcmp(st, "running") == 0;
                t.success += strcmp(st, "success") == 0;
                t.failure += strcmp(st, "failure") == 0;
                t.cancelled += strcmp(st, "cancelled") == 0;
        }
        json_decref(jobs);
        return t;
}

static json_t *api_get(struct fx *fx, const char *path)
{
        char url[256];
        struct httpc *h = httpc_new();
        struct httpc_resp r;
        struct httpc_req req = { .url = url, .timeout_ms = 5000 };
        json_t *j = NULL;

        snprintf(url, sizeof(url), "%s%s", fx->api, path);
        if (httpc_do(h, &req, &r) == 0 && r.status == 200)
                j = json_loadb(r.body, r.len, 0, NULL);
        httpc_resp_done(&r);
        httpc_free(h);
        return j;
}

/* Sum of a metric's samples whose line contains every given fragment. */
static double metric_sum(struct fx *fx, const char *name, const char *frag)
{
        char url[256];
        struct httpc *h = httpc_new();
        struct httpc_resp r;
        struct httpc_req req = { .url = url, .timeout_ms = 5000 };
        double sum = 0;

        snprintf(url, sizeof(url), "%s/metrics", fx->api);
        if (httpc_do(h, &req, &r) == 0 && r.status == 200) {
                char *save = NULL;
                for (char *line = strtok_r(r.body, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                        if (strncmp(line, name, strlen(name)) != 0 || (line[strlen(name)] != '{' && line[strlen(name)] != ' '))
                                continue;
                        if (frag && !strstr(line, frag))
                                continue;
                        const char *v = strrchr(line, ' ');
                        if (v)
                                sum += strtod(v + 1, NULL);
                }
        }
        httpc_resp_done(&r);
        httpc_free(h);
        return sum;
}

/* Live instances over every pool (registering … stopping). */
static int live_instances(struct fx *fx)
{
        json_t *pools = api_get(fx, "/v1/pools"), *p;
        size_t i;
        int n = 0;

        if (!pools)
                return -1;
        json_array_foreach(pools, i, p) {
                n += (int)json_integer_value(json_object_get(p, "starting")) +
                     (int)json_integer_value(json_object_get(p, "idle")) +
                     (int)json_integer_value(json_object_get(p, "busy")) +
                     (int)json_integer_value(json_object_get(p, "stopping"));
        }
        json_decref(pools);
        return n;
}

static int undeleted_runners_q(struct fx *fx, const char *name_prefix, bool quiet)
{
        json_t *rs = NULL, *r;
        size_t i;
        int n = 0;

        assert_int_equal(sim_list_runners(fx->sim, &rs), 0);
        json_array_foreach(rs, i, r) {
                const char *name = json_string_value(json_object_get(r, "name"));
                if (json_is_false(json_object_get(r, "deleted")) &&
                    (!name_prefix || (name && strncmp(name, name_prefix, strlen(name_prefix)) == 0))) {
                        if (!quiet) {
                                char *dump = json_dumps(r, JSON_COMPACT);
                                print_message("registration left: %s\n", dump ? dump : "?");
                                free(dump);
                        }
                        n++;
                }
        }
        json_decref(rs);
        return n;
}

/* Registrations the daemon deletes in the background (an orphan sweep
 * after a lost POST) get a few seconds before they count as leaked. */
static int undeleted_runners(struct fx *fx, const char *name_prefix)
{
        for (int i = 0; i < 100 && undeleted_runners_q(fx, name_prefix, true) > 0; i++)
                usleep(100000);
        return undeleted_runners_q(fx, name_prefix, false);
}

/* Waits until every matched job is finished and the daemon is back to zero
 * live instances, then checks that nothing leaked. */
static void wait_drained(struct fx *fx, int want_finished, double timeout_s)
{
        double t0 = now_s();
        struct tally t;

        for (;;) {
                t = jobs_tally(fx);
                int finished = t.success + t.failure + t.cancelled;
                if (finished >= want_finished && live_instances(fx) == 0)
                        break;
                if (now_s() - t0 > timeout_s) {
                        json_t *jobs = NULL, *j;
                        size_t i;
                        if (sim_list_jobs(fx->sim, &jobs) == 0)
                                json_array_foreach(jobs, i, j) {
                                        const char *st = json_string_value(json_object_get(j, "status"));
                                        if (st && strcmp(st, "running") == 0) {
                                                char *dump = json_dumps(j, JSON_COMPACT);
                                                print_message("still running: %s\n", dump ? dump : "?");
                                                free(dump);
                                        }
                                }
                        json_decref(jobs);
                        fail_msg("not drained after %.0f s: %d/%d finished, %d waiting, %d running, "
                                 "%d live instances", timeout_s, finished, want_finished, t.waiting,
                                 t.running, live_instances(fx));
                }
                usleep(200000);
        }
}

static void assert_nothing_leaked(struct fx *fx)
{
        /* Workers exit right after their final report; give them a moment. */
        for (int i = 0; i < 50 && count_workers(fx, false) > 0; i++)
                usleep(100000);
        assert_int_equal(count_workers(fx, false), 0);
        assert_int_equal(undeleted_runners(fx, NULL), 0);
}

static void make_jobs(struct fx *fx, int n, const char *owner, const char *repo, const char *runs_on,
                      const char *steps)
{
        for (int i = 0; i < n; i++) {
                char name[64];
                struct sim_job j;
                snprintf(name, sizeof(name), "%s-%d", repo, i);
                assert_int_equal(sim_create_job(fx->sim, owner, repo, name, runs_on, steps, &j), 0);
        }
}

/* Every job: did it run on a runner of ours whose labels cover runs_on? */
static void check_placement(struct fx *fx, int *ret_ours, int *ret_untouched)
{
        json_t *jobs = NULL, *runners = NULL, *j;
        size_t i;

        *ret_ours = *ret_untouched = 0;
        assert_int_equal(sim_list_jobs(fx->sim, &jobs), 0);
        assert_int_equal(sim_list_runners(fx->sim, &runners), 0);
        json_array_foreach(jobs, i, j) {
                json_t *rid = json_object_get(j, "runner_id");
                if (!json_is_integer(rid) || json_integer_value(rid) == 0) {
                        (*ret_untouched)++;
                        continue;
                }
                size_t k;
                json_t *r, *runner = NULL;
                json_array_foreach(runners, k, r)
                        if (json_integer_value(json_object_get(r, "id")) == json_integer_value(rid))
                                runner = r;
                assert_non_null(runner);
                (*ret_ours)++;
                /* The job's runs_on comes from the listing the daemon saw;
                 * compare against the runner's declared labels. */
                json_t *labels = json_object_get(runner, "labels");
                json_t *full_job = NULL;
                assert_int_equal(sim_get_job(fx->sim, json_integer_value(json_object_get(j, "id")), &full_job), 0);
                json_t *runs_on = json_object_get(full_job, "runs_on");
                size_t a;
                json_t *lab;
                if (json_is_array(runs_on)) {
                        json_array_foreach(runs_on, a, lab) {
                                bool found = false;
                                size_t b;
                                json_t *have;
                                json_array_foreach(labels, b, have)
                                        found = found || json_equal(have, lab);
                                if (!found)
                                        fail_msg("job %lld ran on runner %s lacking label %s",
                                                 (long long)json_integer_value(json_object_get(j, "id")),
                                                 json_string_value(json_object_get(runner, "name")),
                                                 json_string_value(lab));
                        }
                }
                json_decref(full_job);
        }
        json_decref(jobs);
        json_decref(runners);
}

static void assert_promtool_accepts(struct fx *fx)
{
        char url[256], cmd[PATH_MAX + 512], out[PATH_MAX];
        struct httpc *h = httpc_new();
        struct httpc_resp r;
        struct httpc_req req = { .url = url, .timeout_ms = 5000 };

        snprintf(url, sizeof(url), "%s/metrics", fx->api);
        assert_int_equal(httpc_do(h, &req, &r), 0);
        assert_int_equal(r.status, 200);
        snprintf(out, sizeof(out), "%s/metrics.txt", fx->dir);
        write_file(out, r.body);
        httpc_resp_done(&r);
        httpc_free(h);
        /* promtool is installed by scripts/setup.sh; its absence fails. */
        snprintf(cmd, sizeof(cmd), "promtool check metrics < '%s'", out);
        assert_int_equal(system(cmd), 0);
}

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
        assert_int_equal(sim_fault(fx->sim, "{\"path_prefix\":\"/api/v1/\",\"mode\":\"status\",\"status\":500}"), 0);
        make_jobs(fx, 10, "acme", "app", "[\"ubuntu-latest\"]", steps);
        usleep(3300000);
        assert_int_equal(sim_faults_clear(fx->sim), 0);
        assert_int_equal(sim_fault(fx->sim, "{\"path_prefix\":\"/api/v1/\",\"mode\":\"garbage\"}"), 0);
        make_jobs(fx, 10, "acme", "app", "[\"ubuntu-latest\"]", steps);
        usleep(3300000);
        assert_int_equal(sim_faults_clear(fx->sim), 0);
        assert_int_equal(sim_fault(fx->sim, "{\"path_prefix\":\"/api/v1/\",\"mode\":\"delay\",\"seconds\":1.5}"), 0);
        usleep(3300000);
        assert_int_equal(sim_faults_clear(fx->sim), 0);

        wait_drained(fx, 40, 120);
        struct tally t = jobs_tally(fx);
        assert_int_equal(t.success, 40);
        assert_int_equal(t.failure + t.cancelled, 0);
        /* The outage must not have stopped anything. */
        assert_true(metric_sum(fx, "forgescale_launches_total", "result=\"wasted\"") == 0);
        assert_true(metric_sum(fx, "forgescale_forge_requests_total", "code=\"500\"") > 0);
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
        char log[PATH_MAX], *text = NULL;

        write_config(fx,
                     "  linux:\n"
                     "    scope: org/acme\n"
                     "    labels: [ubuntu-latest]\n"
                     "    poll_interval: 200ms\n");
        fs_start(fx);
        make_jobs(fx, 3, "acme", "app", "[\"ubuntu-latest\"]", "[\"echo hi\"]");
        snprintf(log, sizeof(log), "%s/forgescale.1.log", fx->dir);
        double t0 = now_s();
        for (;;) {
                free(text);
                text = NULL;
                assert_int_equal(fs_read_file(log, 1 << 24, &text, NULL), 0);
                if (strstr(text, "use mode: broker"))
                        break;
                if (now_s() - t0 > 10)
                        fail_msg("no refusal in %s", log);
                usleep(50000);
        }
        assert_non_null(strstr(text, "queue mode needs Forgejo 15 or newer"));
        assert_non_null(strstr(text, "version=14.0.3"));
        free(text);
        usleep(1000000);
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
