/* fixture.c: see fixture.h. Starts and stops the daemon and the simulator
 * for one scenario and cleans up whatever a failed scenario left running. */
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

/* ---- fixture ------------------------------------------------------------ */



struct fx *cur; /* for the abort path */

double now_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void write_file(const char *path, const char *text)
{
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
}

/* Processes whose command line mentions our state folder: our workers. */
/* Reads /proc/PID/NAME into buf, NUL-terminated, NULs (cmdline's argument
 * separators) turned into spaces. Returns its length or -1. */
ssize_t proc_read(pid_t pid, const char *name, char *buf, size_t n)
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
int scan_workers(const struct fx *fx, bool children_only, bool kill_them)
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

int count_workers(const struct fx *fx, bool kill_them)
{
        return scan_workers(fx, false, kill_them);
}

int count_children(const struct fx *fx)
{
        return scan_workers(fx, true, false);
}

void fs_kill(struct fx *fx, int sig)
{
        if (!fx->fs)
                return;
        kill(fx->fs, sig);
        int st;
        waitpid(fx->fs, &st, 0);
        fx->fs = 0;
        /* A stop on SIGTERM is clean: exit status 0, no crash on the way. */
        if (sig == SIGTERM && (!WIFEXITED(st) || WEXITSTATUS(st) != 0))
                fail_msg("forgescale did not exit cleanly on SIGTERM (status 0x%x)", (unsigned)st);
}

void on_abort(void)
{
        if (cur) {
                fs_kill(cur, SIGKILL);
                count_workers(cur, true);
        }
}

/* Starts `forgescale run` on fx->dir/fs.yaml and waits for its HTTP port. */
void fs_start(struct fx *fx)
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
                if (fx->fault_ctl[0]) {
                        char asan[1024];
                        const char *so = getenv("FAULTFS_SO"), *old = getenv("ASAN_OPTIONS");
                        if (!so)
                                _exit(126);
                        setenv("LD_PRELOAD", so, 1);
                        setenv("FAULTFS_CONTROL", fx->fault_ctl, 1);
                        setenv("FAULTFS_MATCH", "/forgescale.db", 1);
                        /* The shim comes before the sanitizer runtime. */
                        snprintf(asan, sizeof(asan), "%s%sverify_asan_link_order=0", old ? old : "",
                                 old && *old ? ":" : "");
                        setenv("ASAN_OPTIONS", asan, 1);
                }
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

int setup_sim(void **state, const struct sim_opts *opts)
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

int setup(void **state)
{
        return setup_sim(state, NULL);
}

int setup_forgejo14(void **state)
{
        static const struct sim_opts o = { .forgejo_version = "14.0.3+gitea-1.22.0" };
        return setup_sim(state, &o);
}

int teardown(void **state)
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

void write_config_full(struct fx *fx, const char *timeout, const char *provider,
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

void write_config_broker(struct fx *fx, const char *forge_timeout, const char *broker_extra, const char *pools,
                         int broker_port)
{
        write_config_broker_provider(fx, forge_timeout, "{type: local}", broker_extra, pools, broker_port);
}

void write_config_t(struct fx *fx, const char *timeout, const char *pools)
{
        write_config_full(fx, timeout, "{type: local}", pools);
}

/* A generous forge timeout: under sanitizers and a parallel suite the
 * simulator can take over a second to answer. */
void write_config(struct fx *fx, const char *pools)
{
        write_config_t(fx, "5s", pools);
}

/* ---- observations -------------------------------------------------------- */



struct tally jobs_tally(struct fx *fx)
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

int runners_named(struct fx *fx, const char *prefix, bool live_only)
{
        json_t *rs = NULL, *r;
        size_t i;
        int n = 0;

        assert_int_equal(sim_list_runners(fx->sim, &rs), 0);
        json_array_foreach(rs, i, r) {
                const char *name = json_string_value(json_object_get(r, "name"));
                if (name && strncmp(name, prefix, strlen(prefix)) == 0 &&
                    (!live_only || json_is_false(json_object_get(r, "deleted"))))
                        n++;
        }
        json_decref(rs);
        return n;
}

json_t *job_json(struct fx *fx, long long id)
{
        json_t *j = NULL;

        assert_int_equal(sim_get_job(fx->sim, id, &j), 0);
        return j;
}

json_t *api_get(struct fx *fx, const char *path)
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
double metric_sum(struct fx *fx, const char *name, const char *frag)
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
int live_instances(struct fx *fx)
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

int undeleted_runners_q(struct fx *fx, const char *name_prefix, bool quiet)
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
int undeleted_runners(struct fx *fx, const char *name_prefix)
{
        for (int i = 0; i < 100 && undeleted_runners_q(fx, name_prefix, true) > 0; i++)
                usleep(100000);
        return undeleted_runners_q(fx, name_prefix, false);
}

/* Waits until every matched job is finished and the daemon is back to zero
 * live instances, then checks that nothing leaked. */
void wait_drained(struct fx *fx, int want_finished, double timeout_s)
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

void assert_nothing_leaked(struct fx *fx)
{
        /* Workers exit right after their final report; give them a moment. */
        for (int i = 0; i < 50 && count_workers(fx, false) > 0; i++)
                usleep(100000);
        assert_int_equal(count_workers(fx, false), 0);
        assert_int_equal(undeleted_runners(fx, NULL), 0);
}

void make_jobs(struct fx *fx, int n, const char *owner, const char *repo, const char *runs_on,
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
void check_placement(struct fx *fx, int *ret_ours, int *ret_untouched)
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

void assert_promtool_accepts(struct fx *fx)
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


/* Waits until the log of the daemon's start number `start` contains needle;
 * returns the log text (caller frees). Fails after timeout_s. */
char *wait_log(struct fx *fx, int start, const char *needle, double timeout_s)
{
        char log[PATH_MAX];
        char *text = NULL;
        double t0 = now_s();

        snprintf(log, sizeof(log), "%s/forgescale.%d.log", fx->dir, start);
        for (;;) {
                free(text);
                text = NULL;
                if (fs_read_file(log, 1 << 24, &text, NULL) == 0 && strstr(text, needle))
                        return text;
                if (now_s() - t0 > timeout_s)
                        fail_msg("\"%s\" not in %s within %.0f s", needle, log, timeout_s);
                usleep(50000);
        }
}

void write_config_broker_provider(struct fx *fx, const char *forge_timeout, const char *provider,
                                  const char *broker_extra, const char *pools, int broker_port)
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
                 "broker:\n"
                 "  listen: 127.0.0.1:%d\n"
                 "%s"
                 "pools:\n%s",
                 fx->state, fx->sim->base_url, forge_timeout, provider, broker_port,
                 broker_extra ? broker_extra : "", pools);
        snprintf(cfg, sizeof(cfg), "%s/fs.yaml", fx->dir);
        write_file(cfg, text);
}
