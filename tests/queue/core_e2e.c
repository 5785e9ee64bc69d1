/* core_e2e.c: the daemon's own robustness end to end — one owner per
 * state_dir, demand kept through a forge outage, configuration reload on
 * SIGHUP, registrations reconciled by id after a lost answer. The real
 * daemon against forgejo-sim with real workers; run one with argv[1]. */
#include "fixture.h"

#include <errno.h>
#include <pwd.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/fsutil.h"
#include "util/httpc.h"

/* Runs `forgescale run` on fs.yaml with stderr to fx->dir/NAME and returns
 * its exit status; fails when it runs longer than timeout_s. */
static int run_to_exit(struct fx *fx, const char *name, double timeout_s)
{
        char cfg[PATH_MAX], log[PATH_MAX];
        int st = 0;

        snprintf(cfg, sizeof(cfg), "%s/fs.yaml", fx->dir);
        snprintf(log, sizeof(log), "%s/%s", fx->dir, name);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                if (fd < 0 || dup2(fd, 2) < 0)
                        _exit(127);
                setenv("FS_TEST_TOKEN", fx->admin.token, 1);
                execl(getenv("FORGESCALE"), "forgescale", "run", "-c", cfg, (char *)NULL);
                _exit(127);
        }
        double t0 = now_s();
        while (waitpid(pid, &st, WNOHANG) == 0) {
                if (now_s() - t0 > timeout_s) {
                        kill(pid, SIGKILL);
                        waitpid(pid, &st, 0);
                        fail_msg("forgescale still ran after %.0f s; see %s", timeout_s, log);
                }
                usleep(20000);
        }
        assert_true(WIFEXITED(st));
        return WEXITSTATUS(st);
}

static char *read_text(struct fx *fx, const char *name)
{
        char path[PATH_MAX], *text = NULL;

        snprintf(path, sizeof(path), "%s/%s", fx->dir, name);
        assert_int_equal(fs_read_file(path, 1 << 22, &text, NULL), 0);
        return text;
}

/* A second daemon on the same state_dir exits 1 at once, naming the first
 * one's pid, and touches nothing: the first keeps every registration and
 * runs every job. */
static void second_daemon_refused_on_state_dir(void **state)
{
        struct fx *fx = *state;
        char needle[64], *text = NULL;

        write_config(fx,
                     "  linux:\n"
                     "    scope: org/acme\n"
                     "    labels: [ubuntu-latest]\n"
                     "    max_runners: 30\n"
                     "    poll_interval: 200ms\n");
        fs_start(fx);
        make_jobs(fx, 10, "acme", "app", "[\"ubuntu-latest\"]", "[\"sleep 2\"]");
        assert_int_equal(run_to_exit(fx, "second.log", 10), 1);
        text = read_text(fx, "second.log");
        snprintf(needle, sizeof(needle), "holder_pid=%d", (int)fx->fs);
        if (!strstr(text, "state_dir is in use by another forgescale") || !strstr(text, needle))
                fail_msg("the refusal does not name the holder (%s): %s", needle, text);
        free(text);
        wait_drained(fx, 10, 60);
        assert_int_equal(jobs_tally(fx).success, 10);
        text = wait_log(fx, 1, "msg=started", 1);
        assert_null(strstr(text, "orphaned"));
        free(text);
        assert_nothing_leaked(fx);
        fs_kill(fx, SIGTERM);
}

static json_t *demand(struct fx *fx)
{
        json_t *j = api_get(fx, "/v1/pools/watch/demand");

        assert_non_null(j);
        return j;
}

/* While the job listing fails (HTTP 500), demand keeps its last known value
 * and says it is stale, and the forge counts as down; once the listing
 * works again the figures are fresh. */
static void demand_kept_during_forge_outage(void **state)
{
        struct fx *fx = *state;
        json_t *j;
        double t0;

        write_config(fx,
                     "  watch:\n"
                     "    scope: org/acme\n"
                     "    labels: [ubuntu-latest]\n"
                     "    max_runners: 0\n"
                     "    poll_interval: 200ms\n");
        fs_start(fx);
        make_jobs(fx, 5, "acme", "app", "[\"ubuntu-latest\"]", "[\"true\"]");
        for (t0 = now_s();; usleep(50000)) {
                j = demand(fx);
                bool ok = json_integer_value(json_object_get(j, "waiting")) == 5 &&
                          json_is_false(json_object_get(j, "stale"));
                json_decref(j);
                if (ok)
                        break;
                if (now_s() - t0 > 10)
                        fail_msg("demand never reached 5");
        }
        assert_int_equal(sim_fault(fx->sim, "{\"path_prefix\":\"/api/v1/orgs/acme/actions/runners/jobs\","
                                            "\"mode\":\"status\",\"status\":500}"), 0);
        /* Stale from the first failed listing on; the last known figures
         * stay while the outage lasts (here until they are 1.5 s old). */
        for (t0 = now_s();; usleep(50000)) {
                j = demand(fx);
                bool stale = json_is_true(json_object_get(j, "stale"));
                double age = json_real_value(json_object_get(j, "age_seconds"));
                if (stale) {
                        assert_int_equal(json_integer_value(json_object_get(j, "waiting")), 5);
                        assert_int_equal(json_integer_value(json_object_get(j, "desired")), 5);
                }
                json_decref(j);
                if (stale && age >= 1.5)
                        break;
                if (now_s() - t0 > 10)
                        fail_msg("demand never turned stale during the outage");
        }
        assert_true(metric_sum(fx, "forgescale_forge_up", NULL) == 0);
        assert_true(metric_sum(fx, "forgescale_pool_jobs_waiting", "pool=\"watch\"") == 5);
        assert_true(metric_sum(fx, "forgescale_pool_demand_stale", "pool=\"watch\"") == 1);
        assert_true(metric_sum(fx, "forgescale_pool_demand_age_seconds", "pool=\"watch\"") >= 1.5);
        assert_int_equal(sim_faults_clear(fx->sim), 0);
        for (t0 = now_s();; usleep(50000)) {
                j = demand(fx);
                bool fresh = json_is_false(json_object_get(j, "stale"));
                json_decref(j);
                if (fresh)
                        break;
                if (now_s() - t0 > 10)
                        fail_msg("demand did not turn fresh after the outage");
        }
        assert_true(metric_sum(fx, "forgescale_forge_up", NULL) == 1);
        fs_kill(fx, SIGTERM);
}

/* Registrations named name (undeleted). */
static int registrations_named(struct fx *fx, const char *name)
{
        json_t *rs = NULL, *r;
        size_t i;
        int n = 0;

        assert_int_equal(sim_list_runners(fx->sim, &rs), 0);
        json_array_foreach(rs, i, r)
                n += json_is_false(json_object_get(r, "deleted")) &&
                     strcmp(json_string_value(json_object_get(r, "name")), name) == 0;
        json_decref(rs);
        return n;
}

/* The name shared by two undeleted registrations of ours, or "". */
static void find_duplicate(struct fx *fx, char *buf, size_t n)
{
        json_t *rs = NULL, *r;
        size_t i;

        buf[0] = '\0';
        assert_int_equal(sim_list_runners(fx->sim, &rs), 0);
        json_array_foreach(rs, i, r) {
                const char *name = json_string_value(json_object_get(r, "name"));
                if (json_is_false(json_object_get(r, "deleted")) && strncmp(name, "fs-", 3) == 0 &&
                    registrations_named(fx, name) >= 2) {
                        snprintf(buf, n, "%s", name);
                        break;
                }
        }
        json_decref(rs);
}

/* The forge creates a registration but the answer to the POST is lost (the
 * connection is reset after the request took effect); the client resends
 * the POST under the same name and gets a second registration. The daemon
 * is killed before any sweep. After the restart the registration whose id
 * no row holds is deleted within seconds, although a live row has its
 * name; the job runs once and nothing is left. */
static void lost_registration_answer_reconciled_by_id(void **state)
{
        struct fx *fx = *state;
        char dup[128], *text;

        write_config(fx,
                     "  linux:\n"
                     "    scope: org/acme\n"
                     "    labels: [ubuntu-latest]\n"
                     "    poll_interval: 200ms\n");
        fs_start(fx);
        /* A listing first, so the POST goes out on a kept-alive connection. */
        text = wait_log(fx, 1, "msg=connected", 10);
        free(text);
        assert_int_equal(sim_fault(fx->sim, "{\"path_prefix\":\"/api/v1/orgs/acme/actions/runners\","
                                            "\"method\":\"POST\",\"mode\":\"reset\",\"after\":true,"
                                            "\"count\":1}"), 0);
        make_jobs(fx, 1, "acme", "app", "[\"ubuntu-latest\"]", "[\"sleep 3\"]");
        double t0 = now_s();
        for (find_duplicate(fx, dup, sizeof(dup)); !dup[0]; find_duplicate(fx, dup, sizeof(dup))) {
                if (now_s() - t0 > 10)
                        fail_msg("no second registration under the same name within 10 s");
                usleep(20000);
        }
        fs_kill(fx, SIGKILL);
        print_message("two registrations named %s\n", dup);
        fs_start(fx);
        t0 = now_s();
        while (registrations_named(fx, dup) > 1) {
                if (now_s() - t0 > 10)
                        fail_msg("the duplicate registration %s was not deleted within 10 s of the restart", dup);
                usleep(50000);
        }
        text = wait_log(fx, 2, "deleting orphaned runner registration", 1);
        free(text);
        wait_drained(fx, 1, 60);
        struct tally t = jobs_tally(fx);
        assert_int_equal(t.success, 1);
        assert_nothing_leaked(fx);
        fs_kill(fx, SIGTERM);
}

static bool pool_listed(struct fx *fx, const char *name)
{
        json_t *pools = api_get(fx, "/v1/pools"), *p;
        size_t i;
        bool found = false;

        assert_non_null(pools);
        json_array_foreach(pools, i, p)
                found = found || strcmp(json_string_value(json_object_get(p, "name")), name) == 0;
        json_decref(pools);
        return found;
}

static int count_in_log(struct fx *fx, int start, const char *needle)
{
        char log[PATH_MAX], *text = NULL;
        int n = 0;

        snprintf(log, sizeof(log), "%s/forgescale.%d.log", fx->dir, start);
        assert_int_equal(fs_read_file(log, 1 << 24, &text, NULL), 0);
        for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
                n++;
        free(text);
        return n;
}

/* Waits for the n-th occurrence of needle in the first start's log. */
static void wait_log_count(struct fx *fx, const char *needle, int n, double timeout_s)
{
        double t0 = now_s();

        while (count_in_log(fx, 1, needle) < n) {
                if (now_s() - t0 > timeout_s)
                        fail_msg("\"%s\" not logged %d times within %.0f s", needle, n, timeout_s);
                usleep(50000);
        }
}

static const char *const POOL_A =
        "  a:\n"
        "    scope: org/acme\n"
        "    labels: [la]\n"
        "    poll_interval: 200ms\n";

/* Pools a and b, and a 4 s job of pool b that is running on return. */
static void start_with_a_job_on_b(struct fx *fx)
{
        char pools[1024];

        snprintf(pools, sizeof(pools), "%s"
                 "  b:\n"
                 "    scope: repo/acme/app\n"
                 "    labels: [lb]\n"
                 "    poll_interval: 200ms\n", POOL_A);
        write_config(fx, pools);
        fs_start(fx);
        make_jobs(fx, 1, "acme", "app", "[\"lb\"]", "[\"sleep 4\"]");
        double t0 = now_s();
        while (jobs_tally(fx).running < 1) {
                if (now_s() - t0 > 20)
                        fail_msg("pool b's job did not start");
                usleep(50000);
        }
}

/* SIGHUP reloads the configuration: an added pool serves its jobs, a
 * removed pool launches nothing more while its running job finishes, a
 * configuration with errors or with a change that needs a restart is
 * refused with the reason logged and the running one kept. */
static void sighup_reloads_pools(void **state)
{
        struct fx *fx = *state;
        char pools[1024];
        double t0;

        start_with_a_job_on_b(fx);
        /* b removed, c added. */
        snprintf(pools, sizeof(pools), "%s"
                 "  c:\n"
                 "    scope: org/other\n"
                 "    labels: [lc]\n"
                 "    poll_interval: 200ms\n", POOL_A);
        write_config(fx, pools);
        kill(fx->fs, SIGHUP);
        wait_log_count(fx, "msg=\"configuration reloaded\"", 1, 10);
        assert_true(pool_listed(fx, "c"));
        assert_true(pool_listed(fx, "b"));   /* retired, its job still runs */
        make_jobs(fx, 2, "other", "x", "[\"lc\"]", "[\"true\"]");
        make_jobs(fx, 1, "acme", "app", "[\"lb\"]", "[\"true\"]");
        make_jobs(fx, 1, "acme", "app", "[\"la\"]", "[\"true\"]");
        t0 = now_s();
        while (jobs_tally(fx).success < 4) {
                if (now_s() - t0 > 30)
                        fail_msg("not 4 successes within 30 s: %d", jobs_tally(fx).success);
                usleep(50000);
        }
        /* b's running job finished; its new job was never taken, and b is
         * gone with its last instance. */
        t0 = now_s();
        while (pool_listed(fx, "b")) {
                if (now_s() - t0 > 10)
                        fail_msg("retired pool b still listed");
                usleep(50000);
        }
        struct tally t = jobs_tally(fx);
        assert_int_equal(t.success, 4);
        assert_int_equal(t.waiting, 1);

        /* A broken file is refused; the daemon keeps pools a and c. */
        char cfg[PATH_MAX];
        snprintf(cfg, sizeof(cfg), "%s/fs.yaml", fx->dir);
        write_file(cfg, "pools: [unclosed\n");
        kill(fx->fs, SIGHUP);
        wait_log_count(fx, "configuration not reloaded", 1, 10);
        assert_true(count_in_log(fx, 1, "fs.yaml:") >= 1);
        assert_true(pool_listed(fx, "a") && pool_listed(fx, "c"));

        /* A forge setting needs a restart: refused, named. */
        write_config_t(fx, "7s", pools);
        kill(fx->fs, SIGHUP);
        wait_log_count(fx, "configuration not reloaded", 2, 10);
        assert_int_equal(count_in_log(fx, 1, "changed=forges.sim"), 1);

        /* Still serving after both refusals. */
        make_jobs(fx, 1, "acme", "app", "[\"la\"]", "[\"true\"]");
        wait_drained(fx, 5, 30);
        assert_int_equal(jobs_tally(fx).success, 5);
        assert_true(kill(fx->fs, 0) == 0);
        assert_nothing_leaked(fx);
        fs_kill(fx, SIGTERM);
}

static int pool_figure(struct fx *fx, const char *pool, const char *key)
{
        json_t *pools = api_get(fx, "/v1/pools"), *p;
        size_t i;
        int v = -1;

        assert_non_null(pools);
        json_array_foreach(pools, i, p)
                if (strcmp(json_string_value(json_object_get(p, "name")), pool) == 0)
                        v = (int)json_integer_value(json_object_get(p, key));
        json_decref(pools);
        return v;
}

/* Pool a keeps min_idle warm runners (idle ones go after 1 s above it);
 * pool b has none. */
static void write_warm_config(struct fx *fx, int min_idle)
{
        char pools[512];

        snprintf(pools, sizeof(pools),
                 "  a:\n"
                 "    scope: org/acme\n"
                 "    labels: [la]\n"
                 "    poll_interval: 200ms\n"
                 "    idle_timeout: 1s\n"
                 "    min_idle: %d\n"
                 "  b:\n"
                 "    scope: org/acme\n"
                 "    labels: [lb]\n"
                 "    poll_interval: 200ms\n", min_idle);
        write_config(fx, pools);
}

/* The state database cannot be written (full disk, through the faultfs
 * shim): a stop the scaler decides waits — the worker keeps running and
 * keeps its registration — and no job is launched; the failure is logged
 * with its cause. Once writes work again the stop and the launches happen
 * and nothing is left behind. */
static void store_failures_hold_side_effects(void **state)
{
        struct fx *fx = *state;
        double t0;

        snprintf(fx->fault_ctl, sizeof(fx->fault_ctl), "%s/store-full", fx->dir);
        write_warm_config(fx, 1);
        fs_start(fx);
        for (t0 = now_s(); pool_figure(fx, "a", "idle") != 1; usleep(50000))
                if (now_s() - t0 > 20)
                        fail_msg("no idle warm runner within 20 s");
        assert_int_equal(count_workers(fx, false), 1);

        /* Writes fail from here; the reload asks for no warm runner. */
        write_file(fx->fault_ctl, "");
        write_warm_config(fx, 0);
        kill(fx->fs, SIGHUP);
        free(wait_log(fx, 1, "cannot save instance; what depends on it waits", 15));
        free(wait_log(fx, 1, "instance rows cannot be saved", 5));
        char *text = wait_log(fx, 1, "No space left on device", 1);
        assert_null(strstr(text, "msg=stopping"));
        free(text);
        assert_int_equal(count_workers(fx, false), 1);
        assert_int_equal(undeleted_runners_q(fx, "fs-", true), 1);

        /* No launch either while nothing can be recorded (pool b's jobs;
         * the warm runner of a could take a job of a by itself). */
        double posts = metric_sum(fx, "forgescale_forge_requests_total", "POST");
        make_jobs(fx, 2, "acme", "app", "[\"lb\"]", "[\"true\"]");
        double listed = metric_sum(fx, "forgescale_forge_requests_total", "runners/jobs");
        for (t0 = now_s(); metric_sum(fx, "forgescale_forge_requests_total", "runners/jobs") < listed + 3;
             usleep(50000))
                if (now_s() - t0 > 10)
                        fail_msg("three listings did not happen within 10 s");
        assert_true(metric_sum(fx, "forgescale_forge_requests_total", "POST") == posts);
        assert_int_equal(count_workers(fx, false), 1);
        text = wait_log(fx, 1, "msg=started", 1);
        assert_null(strstr(text, "msg=stopping"));
        free(text);

        /* Writes work again: the stop goes through, the jobs run. */
        assert_int_equal(unlink(fx->fault_ctl), 0);
        free(wait_log(fx, 1, "msg=stopping", 10));
        wait_drained(fx, 2, 60);
        assert_int_equal(jobs_tally(fx).success, 2);
        assert_nothing_leaked(fx);
        fs_kill(fx, SIGTERM);
}

static const char *const ONE_POOL =
        "  linux:\n"
        "    scope: org/acme\n"
        "    labels: [ubuntu-latest]\n"
        "    poll_interval: 200ms\n";

/* A state database that is not one is named as damaged, with what to do,
 * not as an I/O error; the daemon exits 1. */
static void damaged_state_db_named(void **state)
{
        struct fx *fx = *state;
        char path[PATH_MAX + 32], junk[8192];

        write_config(fx, ONE_POOL);
        assert_int_equal(fs_mkdir_p(fx->state, 0700), 0);
        for (size_t i = 0; i < sizeof(junk); i++)
                junk[i] = (char)(i * 131 + 7);
        snprintf(path, sizeof(path), "%s/forgescale.db", fx->state);
        assert_int_equal(fs_write_file_0600(path, junk, sizeof(junk)), 0);
        assert_int_equal(run_to_exit(fx, "damaged.log", 10), 1);
        char *text = read_text(fx, "damaged.log");
        if (!strstr(text, "the state database is damaged or is not a database; move it away"))
                fail_msg("not named as damaged: %s", text);
        assert_null(strstr(text, "Input/output error"));
        free(text);
}

/* The state database removed under a running daemon: it stops with exit
 * status 1 and says why, instead of recording into a file a restart would
 * never see. */
static void state_db_removed_stops_daemon(void **state)
{
        struct fx *fx = *state;
        char path[PATH_MAX + 32];
        int st;

        write_config(fx, ONE_POOL);
        fs_start(fx);
        snprintf(path, sizeof(path), "%s/forgescale.db", fx->state);
        assert_int_equal(unlink(path), 0);
        double t0 = now_s();
        while (waitpid(fx->fs, &st, WNOHANG) == 0) {
                if (now_s() - t0 > 10)
                        fail_msg("the daemon kept running without its state database");
                usleep(20000);
        }
        fx->fs = 0;
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 1);
        free(wait_log(fx, 1, "the state database was removed or replaced while the daemon ran", 1));
}

/* A process marked as a worker of this controller that no row owns (the
 * row was lost, or the daemon finished it while the worker lived on) is
 * stopped by the provider-side sweep at start; a worker of another
 * controller is left alone. */
static void orphaned_worker_stopped_by_sweep(void **state)
{
        struct fx *fx = *state;
        char *text, ctrl[16] = "", mine[96], theirs[96];
        const char *p;

        write_config(fx, ONE_POOL);
        fs_start(fx);
        text = wait_log(fx, 1, "controller=", 5);
        p = strstr(text, "controller=");
        sscanf(p + strlen("controller="), "%15[0-9a-f]", ctrl);
        free(text);
        assert_int_equal(strlen(ctrl), 8);
        fs_kill(fx, SIGTERM);

        snprintf(mine, sizeof(mine), "FORGESCALE_INSTANCE=fs-%s-linux-0123456789ab", ctrl);
        snprintf(theirs, sizeof(theirs), "FORGESCALE_INSTANCE=fs-%s-linux-0123456789ab",
                 strcmp(ctrl, "00000000") ? "00000000" : "11111111");
        pid_t orphan = fork(), other = orphan ? fork() : 0;
        assert_true(orphan >= 0 && other >= 0);
        if (orphan == 0 || other == 0) {
                char *const env[] = { orphan == 0 ? mine : theirs, NULL };
                setpgid(0, 0);   /* as every worker: its own process group */
                execle("/bin/sleep", "sleep", "300", (char *)NULL, env);
                _exit(127);
        }
        fs_start(fx);
        double t0 = now_s();
        int st;
        while (waitpid(orphan, &st, WNOHANG) == 0) {
                if (now_s() - t0 > 15) {
                        kill(orphan, SIGKILL);
                        kill(other, SIGKILL);
                        waitpid(orphan, &st, 0);
                        waitpid(other, &st, 0);
                        fail_msg("the orphaned worker was not stopped within 15 s");
                }
                usleep(50000);
        }
        assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
        free(wait_log(fx, 2, "stopping a worker that no instance row owns", 1));
        free(wait_log(fx, 2, "orphaned worker gone", 5));
        assert_int_equal(waitpid(other, &st, WNOHANG), 0);   /* still running */
        kill(other, SIGKILL);
        waitpid(other, &st, 0);
        fs_kill(fx, SIGTERM);
}

/* Workers run as another account (provider key `user`): the job runs as
 * that account, reads its own runner token through state_dir (opened to
 * search only), and cannot read the daemon's forge token file nor find a
 * single variable of the daemon's environment. */
static void worker_account_isolated(void **state)
{
        struct fx *fx = *state;
        char tok[PATH_MAX + 16], out[PATH_MAX + 16], cfg[PATH_MAX + 16], *cfg_text = NULL, *steps = NULL;
        struct passwd *pw = getpwnam("nobody");

        assert_non_null(pw);
        assert_int_equal(getuid(), 0);   /* CI and the developers' machines run tests as root */
        snprintf(tok, sizeof(tok), "%s/token", fx->dir);
        write_file(tok, fx->admin.token);
        assert_int_equal(chmod(tok, 0600), 0);
        /* A folder the job (nobody) may write its findings to. */
        snprintf(out, sizeof(out), "%s/out", fx->dir);
        assert_int_equal(mkdir(out, 0777), 0);
        assert_int_equal(chmod(out, 0777), 0);
        assert_int_equal(chmod(fx->dir, 0711), 0);
        assert_true(asprintf(&cfg_text,
                 "listen: 127.0.0.1:0\n"
                 "state_dir: %s\n"
                 "forges:\n"
                 "  sim: {url: %s, token_file: %s, timeout: 5s}\n"
                 "providers:\n"
                 "  here: {type: local, user: nobody}\n"
                 "pools:\n"
                 "  linux:\n"
                 "    scope: org/acme\n"
                 "    labels: [ubuntu-latest]\n"
                 "    poll_interval: 200ms\n"
                 "    runner: {command: [%s]}\n",
                 fx->state, fx->sim->base_url, tok, getenv("FORGEJO_SIM_RUNNER")) > 0);
        snprintf(cfg, sizeof(cfg), "%s/fs.yaml", fx->dir);
        write_file(cfg, cfg_text);
        free(cfg_text);
        assert_true(asprintf(&steps,
                 "[\"id -u > %s/uid\","
                 "\"cat $FORGESCALE_RUNNER_TOKEN_FILE | wc -c > %s/own-token\","
                 "\"cat %s > %s/forge-token 2>/dev/null || true\","
                 "\"env > %s/env\"]",
                 out, out, tok, out, out) > 0);
        fs_start(fx);
        make_jobs(fx, 1, "acme", "app", "[\"ubuntu-latest\"]", steps);
        free(steps);
        wait_drained(fx, 1, 60);
        assert_int_equal(jobs_tally(fx).success, 1);

        char *text = read_text(fx, "out/uid");
        assert_int_equal(strtol(text, NULL, 10), (long)pw->pw_uid);
        free(text);
        text = read_text(fx, "out/own-token");
        assert_true(strtol(text, NULL, 10) > 0);
        free(text);
        text = read_text(fx, "out/forge-token");
        assert_int_equal(strlen(text), 0);
        free(text);
        text = read_text(fx, "out/env");
        assert_null(strstr(text, "FS_TEST_TOKEN"));
        assert_null(strstr(text, fx->admin.token));
        free(text);
        assert_nothing_leaked(fx);
        fs_kill(fx, SIGTERM);
}

static void post_job_with_handle(struct fx *fx, const char *name, const char *handle)
{
        struct sim_resp r;
        json_t *body = json_pack("{s:s, s:s, s:s, s:[s], s:[s], s:s}", "owner", "acme", "repo", "app",
                                 "name", name, "runs_on", "ubuntu-latest", "steps", "true", "handle", handle);
        char *text = json_dumps(body, JSON_COMPACT);

        assert_non_null(text);
        assert_int_equal(sim_post(fx->sim, "/_sim/jobs", NULL, text, &r), 0);
        assert_int_equal(r.status, 201);
        sim_resp_done(&r);
        free(text);
        json_decref(body);
}

/* The forge lists jobs the daemon cannot act on: a handle longer than any
 * Forgejo makes (it used to be cut, and the job relaunched forever) and an
 * empty one (it used to launch max_runners workers with --handle ""). Each
 * is skipped, warned about once and counted; the good job runs; nothing is
 * registered for the bad ones however many listings show them. */
static void bad_forge_data_skipped(void **state)
{
        struct fx *fx = *state;
        char long_handle[71];

        memset(long_handle, 'h', 70);
        long_handle[70] = '\0';
        write_config(fx, ONE_POOL);
        fs_start(fx);
        post_job_with_handle(fx, "long", long_handle);
        post_job_with_handle(fx, "empty", "");
        make_jobs(fx, 1, "acme", "app", "[\"ubuntu-latest\"]", "[\"true\"]");
        double t0 = now_s();
        while (jobs_tally(fx).success < 1) {
                if (now_s() - t0 > 30)
                        fail_msg("the good job did not run within 30 s");
                usleep(50000);
        }
        double listed = metric_sum(fx, "forgescale_forge_requests_total", "runners/jobs");
        for (t0 = now_s(); metric_sum(fx, "forgescale_forge_requests_total", "runners/jobs") < listed + 5;
             usleep(50000))
                if (now_s() - t0 > 10)
                        fail_msg("five more listings did not happen within 10 s");
        struct tally t = jobs_tally(fx);
        assert_int_equal(t.success, 1);
        assert_int_equal(t.waiting, 2);
        assert_true(metric_sum(fx, "forgescale_forge_requests_total", "POST") == 1);
        assert_true(metric_sum(fx, "forgescale_forge_rejected_total", "what=\"job\"") == 2);
        assert_int_equal(count_in_log(fx, 1, "skipping a job the forge listed"), 2);
        assert_int_equal(count_in_log(fx, 1, "handle: "), 2);
        assert_nothing_leaked(fx);
        fs_kill(fx, SIGTERM);
}

/* The configuration lost a pool while the daemon was down: at the restart
 * the pool's running job is adopted and finishes (as after a reload), the
 * pool launches nothing more, and it goes with its last instance. */
static void restart_without_a_pool_lets_its_job_finish(void **state)
{
        struct fx *fx = *state;
        double t0;

        start_with_a_job_on_b(fx);
        fs_kill(fx, SIGTERM);
        write_config(fx, POOL_A);
        fs_start(fx);
        free(wait_log(fx, 2, "pool no longer configured", 5));
        assert_true(pool_listed(fx, "b"));
        make_jobs(fx, 1, "acme", "app", "[\"lb\"]", "[\"true\"]");
        t0 = now_s();
        while (jobs_tally(fx).success < 1) {
                if (now_s() - t0 > 30)
                        fail_msg("pool b's running job did not finish after the restart");
                usleep(50000);
        }
        for (t0 = now_s(); pool_listed(fx, "b"); usleep(50000))
                if (now_s() - t0 > 10)
                        fail_msg("pool b still listed after its last instance ended");
        struct tally t = jobs_tally(fx);
        assert_int_equal(t.success, 1);
        assert_int_equal(t.failure + t.cancelled, 0);
        assert_int_equal(t.waiting, 1);   /* the new lb job: no pool for it */
        char *text = wait_log(fx, 2, "msg=started", 1);
        assert_null(strstr(text, "reason=pool_removed"));
        free(text);
        assert_nothing_leaked(fx);
        fs_kill(fx, SIGTERM);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(second_daemon_refused_on_state_dir, setup, teardown),
                cmocka_unit_test_setup_teardown(demand_kept_during_forge_outage, setup, teardown),
                cmocka_unit_test_setup_teardown(lost_registration_answer_reconciled_by_id, setup, teardown),
                cmocka_unit_test_setup_teardown(sighup_reloads_pools, setup, teardown),
                cmocka_unit_test_setup_teardown(store_failures_hold_side_effects, setup, teardown),
                cmocka_unit_test_setup_teardown(damaged_state_db_named, setup, teardown),
                cmocka_unit_test_setup_teardown(state_db_removed_stops_daemon, setup, teardown),
                cmocka_unit_test_setup_teardown(orphaned_worker_stopped_by_sweep, setup, teardown),
                cmocka_unit_test_setup_teardown(worker_account_isolated, setup, teardown),
                cmocka_unit_test_setup_teardown(bad_forge_data_skipped, setup, teardown),
                cmocka_unit_test_setup_teardown(restart_without_a_pool_lets_its_job_finish, setup, teardown),
        };
        atexit(on_abort);
        httpc_global_init();
        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
