/* roundtrip.c: forgejo-sim and forgejo-sim-runner end to end. Starts the
 * simulator, creates an org, a repo, jobs and ephemeral runners through its
 * APIs, runs the runner the way an autoscaler would (`one-job --url --uuid
 * --token-url --label --handle --wait`) and checks what the server saw:
 * job status and log, runner deletion, exit codes, cancellation latency,
 * the codec it speaks (proto by default, JSON when told), and that the
 * runner token never reaches the runner's own log.
 * Binaries come from $FORGEJO_SIM and $FORGEJO_SIM_RUNNER; E2E_KEEP=1
 * keeps the temporary directory (logs) afterwards. */
#include "api.h"
#include "proc.h"

#include "util/fsutil.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

static const char *sim_path, *runner_path;
static char tmpdir[256];
static char sim_log[PATH_MAX];
static char cfg_path[PATH_MAX];
static char workdir_parent[PATH_MAX];
static char base[128];
static char admin_token[256];
static const char *current_runner_log;
static struct proc sim;
static int checks;

static void dump_file(const char *title, const char *path)
{
        char *buf = NULL;
        size_t len;

        if (!path || fs_read_file(path, 1 << 20, &buf, &len) < 0)
                return;
        fprintf(stderr, "---- %s (%s) ----\n%s---- end ----\n", title, path, buf);
        free(buf);
}

static void cleanup_tmp(void)
{
        proc_kill_all();
        /* E2E_KEEP=1 leaves the logs and token files for inspection. */
        if (tmpdir[0] && !getenv("E2E_KEEP"))
                fs_rm_rf(tmpdir);
}

static void fail_at(int line, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

static void fail_at(int line, const char *fmt, ...)
{
        va_list ap;

        fprintf(stderr, "FAIL roundtrip.c:%d: ", line);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        dump_file("runner log", current_runner_log);
        dump_file("simulator log", sim_log);
        exit(1);
}

#define CHECK(cond, ...)                                                       \
        do {                                                                   \
                checks++;                                                      \
                if (!(cond))                                                   \
                        fail_at(__LINE__, __VA_ARGS__);                        \
        } while (0)

/* ---- simulator API ----------------------------------------------------- */

static json_t *call_ok(int line, const char *method, const char *path, json_t *body,
                       const char *token, long want)
{
        long status;
        json_t *j = api_call(method, path, body, token, &status);

        json_decref(body);
        if (status != want) {
                char *t = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
                fail_at(line, "%s %s: status %ld, want %ld; body %s", method, path, status, want,
                        t ? t : "(not JSON)");
        }
        if (!j)
                fail_at(line, "%s %s: body is not JSON", method, path);
        return j;
}
#define CALL(m, p, b, t, want) call_ok(__LINE__, (m), (p), (b), (t), (want))

static const char *str_of(json_t *o, const char *k)
{
        json_t *v = json_object_get(o, k);

        return json_is_string(v) ? json_string_value(v) : NULL;
}

static long long int_of(json_t *o, const char *k)
{
        json_t *v = json_object_get(o, k);

        if (json_is_integer(v))
                return json_integer_value(v);
        if (json_is_string(v))
                return strtoll(json_string_value(v), NULL, 10);
        return -1;
}

struct job {
        long long id;
        char handle[128];
};

static struct job create_job(const char *name, json_t *runs_on, json_t *steps)
{
        json_t *j = CALL("POST", "/_sim/jobs",
                         json_pack("{s:s, s:s, s:s, s:o, s:o}", "owner", "acme", "repo", "app",
                                   "name", name, "runs_on", runs_on, "steps", steps),
                         NULL, 201);
        struct job job = { .id = int_of(j, "id") };

        CHECK(job.id > 0, "job id missing");
        CHECK(str_of(j, "handle") && strlen(str_of(j, "handle")) < sizeof(job.handle), "job handle missing");
        snprintf(job.handle, sizeof(job.handle), "%s", str_of(j, "handle"));
        json_decref(j);
        return job;
}

static json_t *get_job(long long id)
{
        char path[64];

        snprintf(path, sizeof(path), "/_sim/jobs/%lld", id);
        return CALL("GET", path, NULL, NULL, 200);
}

static bool log_has(json_t *job, const char *needle)
{
        json_t *log = json_object_get(job, "log"), *l;
        size_t i;

        json_array_foreach(log, i, l)
                if (json_is_string(l) && strstr(json_string_value(l), needle))
                        return true;
        return false;
}

struct runner {
        long long id;
        char uuid[128];
        char token_file[PATH_MAX];
        char token[256];
        char log[PATH_MAX];
};

static void create_runner(const char *name, struct runner *rn)
{
        json_t *j = CALL("POST", "/api/v1/orgs/acme/actions/runners",
                         json_pack("{s:s, s:s, s:b}", "name", name, "description", "e2e", "ephemeral", 1),
                         admin_token, 201);
        const char *uuid = str_of(j, "uuid"), *token = str_of(j, "token");

        memset(rn, 0, sizeof(*rn));
        CHECK(uuid && token, "runner uuid/token missing");
        CHECK(strlen(uuid) < sizeof(rn->uuid) && strlen(token) < sizeof(rn->token), "runner fields too long");
        rn->id = int_of(j, "id");
        snprintf(rn->uuid, sizeof(rn->uuid), "%s", uuid);
        snprintf(rn->token, sizeof(rn->token), "%s", token);
        snprintf(rn->token_file, sizeof(rn->token_file), "%s/%s.token", tmpdir, name);
        snprintf(rn->log, sizeof(rn->log), "%s/%s.log", tmpdir, name);
        CHECK(fs_write_file_0600(rn->token_file, token, strlen(token)) == 0, "cannot write token file");
        json_decref(j);
}

static json_t *find_runner(const char *uuid)
{
        json_t *all = CALL("GET", "/_sim/runners", NULL, NULL, 200), *r, *found = NULL;
        size_t i;

        json_array_foreach(all, i, r)
                if (str_of(r, "uuid") && strcmp(str_of(r, "uuid"), uuid) == 0)
                        found = json_incref(r);
        json_decref(all);
        return found;
}

/* --codec for the next start_runner() only; NULL: the runner's default. */
static const char *next_codec;

/* Starts the runner for rn; handle may be NULL; wait adds --wait. */
static void start_runner(struct proc *p, const struct runner *rn, const char *label,
                         const char *handle, bool wait)
{
        char token_url[PATH_MAX + 8];
        char *argv[22];
        int n = 0;

        snprintf(token_url, sizeof(token_url), "file:%s", rn->token_file);
        argv[n++] = (char *)runner_path;
        argv[n++] = "one-job";
        argv[n++] = "--url";
        argv[n++] = base;
        argv[n++] = "--uuid";
        argv[n++] = (char *)rn->uuid;
        argv[n++] = "--token-url";
        argv[n++] = token_url;
        argv[n++] = "--label";
        argv[n++] = (char *)label;
        if (handle) {
                argv[n++] = "--handle";
                argv[n++] = (char *)handle;
        }
        if (wait)
                argv[n++] = "--wait";
        if (next_codec) {
                argv[n++] = "--codec";
                argv[n++] = (char *)next_codec;
                next_codec = NULL;
        }
        argv[n++] = "-c";
        argv[n++] = cfg_path;
        argv[n] = NULL;
        current_runner_log = rn->log;
        CHECK(proc_spawn(p, argv, tmpdir, rn->log, false) == 0, "cannot start %s", runner_path);
}

static int exit_code(const struct proc *p)
{
        return WIFEXITED(p->status) ? WEXITSTATUS(p->status) : 128 + WTERMSIG(p->status);
}

static void check_token_not_logged(const struct runner *rn)
{
        char *buf = NULL;
        size_t len;

        CHECK(fs_read_file(rn->log, 1 << 22, &buf, &len) == 0, "runner log unreadable");
        CHECK(strstr(buf, rn->token) == NULL, "the runner token appears in the runner's log");
        free(buf);
}

static bool dir_empty(const char *path)
{
        DIR *d = opendir(path);
        struct dirent *de;
        bool empty = true;

        if (!d)
                return errno == ENOENT;
        while ((de = readdir(d)))
                if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
                        empty = false;
        closedir(d);
        return empty;
}

static void msleep(long ms)
{
        struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

        nanosleep(&ts, NULL);
}

/* What the simulator decoded since the last reset_rpc_stats(). */
struct rpc_counts {
        long long proto, json, gzip_responses;
};

static void reset_rpc_stats(void)
{
        json_decref(CALL("DELETE", "/_sim/stats", NULL, NULL, 204));
}

static struct rpc_counts rpc_counts(void)
{
        json_t *st = CALL("GET", "/_sim/stats", NULL, NULL, 200);
        json_t *c = json_object_get(st, "codecs"), *g = json_object_get(st, "gzip");
        struct rpc_counts n = { int_of(c, "proto"), int_of(c, "json"), int_of(g, "responses") };

        json_decref(st);
        return n;
}

/* ---- scenarios --------------------------------------------------------- */

static void test_success(void)
{
        struct runner rn;
        struct proc p;
        long long t0;

        struct job job = create_job("build", json_pack("[s]", "ubuntu"),
                json_pack("[s,s,s]",
                          "echo hello-from-step-1\necho 'second line'",
                          "test \"$CI\" = true\ntest \"$GITHUB_ACTIONS\" = true\n"
                          "test \"$FORGEJO_ACTIONS\" = true\ntest -d \"$GITHUB_WORKSPACE\"\n"
                          "test -d \"$RUNNER_TEMP\"\ntest \"$(pwd)\" = \"$GITHUB_WORKSPACE\"\n"
                          "echo \"env-ok job=$GITHUB_JOB repo=$GITHUB_REPOSITORY\"",
                          "printf 'no newline at end'"));
        create_runner("ok", &rn);
        reset_rpc_stats();
        t0 = proc_now_ms();
        start_runner(&p, &rn, "ubuntu:host", job.handle, true);
        CHECK(proc_wait(&p, 30000) == 0, "runner did not finish within 30 s");
        printf("  success job: runner finished in %lld ms\n", proc_now_ms() - t0);
        CHECK(exit_code(&p) == 0, "runner exit %d, want 0", exit_code(&p));

        json_t *j = get_job(job.id);
        CHECK(str_of(j, "status") && strcmp(str_of(j, "status"), "success") == 0,
              "job status %s, want success", str_of(j, "status"));
        CHECK(strcmp(str_of(j, "result"), "success") == 0, "job result %s", str_of(j, "result"));
        CHECK(log_has(j, "hello-from-step-1"), "log lacks the first echo");
        CHECK(log_has(j, "second line"), "log lacks the second echo");
        CHECK(log_has(j, "env-ok job="), "log lacks the env check line (env step failed?)");
        CHECK(log_has(j, "repo=acme/app"), "GITHUB_REPOSITORY is not acme/app");
        CHECK(log_has(j, "no newline at end"), "log lacks the unterminated line");
        CHECK(!log_has(j, rn.token), "runner token in the job log");
        CHECK(str_of(j, "runner_name") && strcmp(str_of(j, "runner_name"), "ok") == 0,
              "job ran on %s, want runner 'ok'", str_of(j, "runner_name"));
        json_decref(j);

        json_t *r = find_runner(rn.uuid);
        CHECK(r, "runner %s not listed in /_sim/runners", rn.uuid);
        CHECK(json_is_true(json_object_get(r, "deleted")), "ephemeral runner not deleted after its task");
        CHECK(int_of(r, "tasks") == 1, "runner got %lld tasks, want 1", int_of(r, "tasks"));
        json_t *labels = json_object_get(r, "labels");
        CHECK(json_is_array(labels) && json_array_size(labels) == 1 &&
              strcmp(json_string_value(json_array_get(labels, 0)), "ubuntu") == 0,
              "declared labels are not [\"ubuntu\"] (scheme must be stripped)");
        json_decref(r);
        check_token_not_logged(&rn);
        CHECK(dir_empty(workdir_parent), "the runner left its work directory behind");
        /* Like forgejo-runner: binary protobuf, and gzip answers accepted
         * (the task is over the 1 KiB the server compresses from). */
        struct rpc_counts c = rpc_counts();
        CHECK(c.proto >= 4 && c.json == 0, "runner calls: %lld proto, %lld JSON; want proto only",
              c.proto, c.json);
        CHECK(c.gzip_responses >= 1, "no gzipped answer reached the runner");
}

static void test_failure(void)
{
        struct runner rn;
        struct proc p;

        struct job job = create_job("fails", json_pack("[s]", "ubuntu"),
                json_pack("[s,s,s]", "echo before-fail", "echo failing-now; exit 3", "echo must-not-run"));
        create_runner("bad", &rn);
        reset_rpc_stats();
        next_codec = "json";
        start_runner(&p, &rn, "ubuntu:host", job.handle, true);
        CHECK(proc_wait(&p, 30000) == 0, "runner did not finish within 30 s");
        CHECK(exit_code(&p) == 0, "runner exit %d after a failed job, want 0", exit_code(&p));
        json_t *j = get_job(job.id);
        CHECK(strcmp(str_of(j, "status"), "failure") == 0, "job status %s, want failure", str_of(j, "status"));
        CHECK(log_has(j, "before-fail") && log_has(j, "failing-now"), "log lacks the output before the failure");
        CHECK(!log_has(j, "must-not-run"), "a step after the failing one ran");
        json_decref(j);
        json_t *r = find_runner(rn.uuid);
        CHECK(r && json_is_true(json_object_get(r, "deleted")), "ephemeral runner not deleted after failure");
        json_decref(r);
        check_token_not_logged(&rn);
        struct rpc_counts c = rpc_counts();
        CHECK(c.json >= 4 && c.proto == 0, "runner --codec json calls: %lld proto, %lld JSON",
              c.proto, c.json);
}

static void test_no_task(void)
{
        struct runner rn;
        struct proc p;
        long long t0;

        create_runner("idle", &rn);
        t0 = proc_now_ms();
        start_runner(&p, &rn, "no-such-label:host", NULL, false);
        CHECK(proc_wait(&p, 15000) == 0, "runner without --wait did not exit");
        CHECK(exit_code(&p) == 1, "runner exit %d with no task, want 1", exit_code(&p));
        printf("  no task: exit 1 after %lld ms\n", proc_now_ms() - t0);
        json_t *r = find_runner(rn.uuid);
        CHECK(r && int_of(r, "tasks") == 0, "the idle runner was given a task");
        CHECK(!json_is_true(json_object_get(r, "deleted")), "an ephemeral runner without a task was deleted");
        json_decref(r);

        /* The same runner, now waiting: a SIGTERM while waiting exits 0. */
        start_runner(&p, &rn, "no-such-label:host", NULL, true);
        msleep(700);
        CHECK(proc_wait(&p, 0) == -ETIMEDOUT, "a waiting runner exited on its own (exit %d)", exit_code(&p));
        t0 = proc_now_ms();
        proc_signal(&p, SIGTERM);
        CHECK(proc_wait(&p, 10000) == 0, "waiting runner ignored SIGTERM");
        CHECK(exit_code(&p) == 0, "runner exit %d after SIGTERM while waiting, want 0", exit_code(&p));
        printf("  SIGTERM while waiting: exit 0 after %lld ms\n", proc_now_ms() - t0);
        check_token_not_logged(&rn);
}

static void test_cancel(void)
{
        struct runner rn;
        struct proc p;
        long long t0, pid = -1;
        char path[64];
        json_t *j = NULL;

        struct job job = create_job("long", json_pack("[s]", "ubuntu"),
                json_pack("[s,s]", "echo \"sleeping pid=$$\"; exec sleep 30", "echo after-sleep"));
        create_runner("cancelme", &rn);
        start_runner(&p, &rn, "ubuntu:host", job.handle, true);
        /* Wait until the sleeping step's first line reached the server. */
        for (t0 = proc_now_ms(); proc_now_ms() - t0 < 15000; msleep(100)) {
                json_decref(j);
                j = get_job(job.id);
                if (log_has(j, "sleeping pid="))
                        break;
        }
        CHECK(log_has(j, "sleeping pid="), "the step's output never reached the server");
        CHECK(strcmp(str_of(j, "status"), "running") == 0, "job status %s, want running", str_of(j, "status"));
        json_t *l;
        size_t i;
        json_array_foreach(json_object_get(j, "log"), i, l) {
                const char *s = json_is_string(l) ? strstr(json_string_value(l), "sleeping pid=") : NULL;
                if (s)
                        pid = strtoll(s + strlen("sleeping pid="), NULL, 10);
        }
        json_decref(j);
        CHECK(pid > 1, "no pid in the log");
        CHECK(kill((pid_t)pid, 0) == 0, "the step process %lld is not running", pid);

        snprintf(path, sizeof(path), "/_sim/jobs/%lld/cancel", job.id);
        t0 = proc_now_ms();
        json_decref(CALL("POST", path, NULL, NULL, 200));
        CHECK(proc_wait(&p, 8000) == 0, "runner still running 8 s after the cancel");
        long long took = proc_now_ms() - t0;
        printf("  cancel: runner exited %lld ms after the cancel\n", took);
        CHECK(took < 5000, "runner took %lld ms to stop after the cancel, want < 5000", took);
        CHECK(exit_code(&p) == 0, "runner exit %d after a cancelled job, want 0", exit_code(&p));
        CHECK(kill((pid_t)pid, 0) < 0 && errno == ESRCH, "the step process %lld survived the cancel", pid);
        j = get_job(job.id);
        CHECK(strcmp(str_of(j, "status"), "cancelled") == 0, "job status %s, want cancelled", str_of(j, "status"));
        CHECK(!log_has(j, "after-sleep"), "the step after the cancelled one ran");
        json_decref(j);
        json_t *r = find_runner(rn.uuid);
        CHECK(r && json_is_true(json_object_get(r, "deleted")), "ephemeral runner not deleted after cancel");
        json_decref(r);
        check_token_not_logged(&rn);
        CHECK(dir_empty(workdir_parent), "the runner left its work directory behind after a cancel");
}

/* Fetches whose answers are lost after the server assigned the task, then
 * failing report calls: the request key recovers the task and the retries
 * deliver the whole log. */
static void test_faults(void)
{
        struct runner rn;
        struct proc p;

        struct job job = create_job("flaky", json_pack("[s]", "ubuntu"),
                json_pack("[s,s]", "for i in 1 2 3 4 5; do echo line-$i; done", "echo last-line"));
        create_runner("flaky", &rn);
        json_decref(CALL("POST", "/_sim/faults",
                         json_pack("{s:s, s:s, s:i, s:b}", "path_prefix",
                                   "/api/actions/runner.v1.RunnerService/FetchSingleTask",
                                   "mode", "reset", "count", 2, "after", 1), NULL, 201));
        json_decref(CALL("POST", "/_sim/faults",
                         json_pack("{s:s, s:s, s:i, s:i}", "path_prefix",
                                   "/api/actions/runner.v1.RunnerService/UpdateLog",
                                   "mode", "status", "status", 503, "count", 2), NULL, 201));
        json_decref(CALL("POST", "/_sim/faults",
                         json_pack("{s:s, s:s, s:i}", "path_prefix",
                                   "/api/actions/runner.v1.RunnerService/UpdateTask",
                                   "mode", "garbage", "count", 1), NULL, 201));
        start_runner(&p, &rn, "ubuntu:host", job.handle, true);
        CHECK(proc_wait(&p, 30000) == 0, "runner did not finish within 30 s");
        CHECK(exit_code(&p) == 0, "runner exit %d, want 0", exit_code(&p));
        json_decref(CALL("DELETE", "/_sim/faults", NULL, NULL, 204));

        json_t *j = get_job(job.id);
        CHECK(strcmp(str_of(j, "status"), "success") == 0, "job status %s, want success (task lost?)",
              str_of(j, "status"));
        for (int i = 1; i <= 5; i++) {
                char needle[16];
                snprintf(needle, sizeof(needle), "line-%d", i);
                CHECK(log_has(j, needle), "log lacks %s after failed UpdateLog calls", needle);
        }
        CHECK(log_has(j, "last-line"), "log lacks the last step's line");
        json_t *log = json_object_get(j, "log"), *l;
        size_t i, seen = 0;
        json_array_foreach(log, i, l)
                if (json_is_string(l) && strcmp(json_string_value(l), "line-3") == 0)
                        seen++;
        CHECK(seen == 1, "line-3 stored %zu times, want exactly once", seen);
        json_decref(j);
        json_t *r = find_runner(rn.uuid);
        CHECK(r && int_of(r, "tasks") == 1, "runner got %lld tasks, want 1", r ? int_of(r, "tasks") : -1);
        CHECK(json_is_true(json_object_get(r, "deleted")), "ephemeral runner not deleted");
        json_decref(r);
        check_token_not_logged(&rn);
        /* libcurl silently retries a reset on a reused connection once; the
         * second reset must reach the runner, which retries with its key. */
        char *buf = NULL;
        size_t len;
        CHECK(fs_read_file(rn.log, 1 << 22, &buf, &len) == 0, "runner log unreadable");
        CHECK(strstr(buf, "fetch failed; retrying"), "the runner never saw the lost fetch");
        free(buf);
}

/* ---- setup ------------------------------------------------------------- */

static void start_sim(void)
{
        char *argv[] = { (char *)sim_path, "serve", "--listen", "127.0.0.1:0", NULL };
        char line[256];
        const char *url;

        snprintf(sim_log, sizeof(sim_log), "%s/sim.log", tmpdir);
        CHECK(proc_spawn(&sim, argv, tmpdir, sim_log, true) == 0, "cannot start %s", sim_path);
        CHECK(proc_read_line(&sim, line, sizeof(line), 10000) == 0, "no listening line from the simulator");
        url = strstr(line, "http://127.0.0.1:");
        CHECK(strncmp(line, "listening on ", 13) == 0 && url, "unexpected first line: %s", line);
        snprintf(base, sizeof(base), "%s", url);
        CHECK(api_init(base) == 0, "out of memory");
}

static void setup_world(void)
{
        json_t *j = CALL("POST", "/_sim/users", json_pack("{s:s, s:b}", "name", "admin", "admin", 1), NULL, 201);
        const char *t = str_of(j, "token");

        CHECK(t && strlen(t) < sizeof(admin_token), "no admin token");
        snprintf(admin_token, sizeof(admin_token), "%s", t);
        json_decref(j);
        json_decref(CALL("POST", "/_sim/orgs", json_pack("{s:s, s:[s]}", "name", "acme", "owners", "admin"), NULL, 201));
        json_decref(CALL("POST", "/_sim/repos", json_pack("{s:s, s:s}", "owner", "acme", "name", "app"), NULL, 201));
}

static void write_config(void)
{
        char text[PATH_MAX + 256];
        int n;

        snprintf(workdir_parent, sizeof(workdir_parent), "%s/work", tmpdir);
        snprintf(cfg_path, sizeof(cfg_path), "%s/runner.yaml", tmpdir);
        n = snprintf(text, sizeof(text),
                     "runner:\n"
                     "  fetch_interval: 200ms\n"
                     "  fetch_timeout: 5s\n"
                     "  report_interval: 300ms\n"
                     "  report_retry:\n"
                     "    max_retries: 5\n"
                     "    initial_delay: 50ms\n"
                     "host:\n"
                     "  workdir_parent: %s\n", workdir_parent);
        CHECK(n > 0 && (size_t)n < sizeof(text), "config too long");
        CHECK(fs_write_file_0600(cfg_path, text, (size_t)n) == 0, "cannot write the runner config");
}

int main(void)
{
        const char *tmp = getenv("TMPDIR");
        long long t0 = proc_now_ms();
        int n;

        setvbuf(stdout, NULL, _IOLBF, 0);
        sim_path = getenv("FORGEJO_SIM");
        runner_path = getenv("FORGEJO_SIM_RUNNER");
        if (!sim_path || !runner_path) {
                fprintf(stderr, "FORGEJO_SIM and FORGEJO_SIM_RUNNER must name the binaries\n");
                return 1;
        }
        n = snprintf(tmpdir, sizeof(tmpdir), "%s/fs-e2e-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
        if (n < 0 || (size_t)n >= sizeof(tmpdir)) {
                fprintf(stderr, "TMPDIR is too long\n");
                return 1;
        }
        if (!mkdtemp(tmpdir)) {
                perror("mkdtemp");
                return 1;
        }
        atexit(cleanup_tmp);
        start_sim();
        setup_world();
        write_config();

        printf("roundtrip: simulator at %s\n", base);
        test_success();
        printf("ok - success job (proto codec, gzip answers)\n");
        test_failure();
        printf("ok - failing step (JSON codec)\n");
        test_no_task();
        printf("ok - no task without --wait, SIGTERM while waiting\n");
        test_cancel();
        printf("ok - cancel during a step\n");
        test_faults();
        printf("ok - lost fetch answer recovered, failed reports retried\n");

        CHECK(proc_wait(&sim, 0) == -ETIMEDOUT, "the simulator died during the test");
        proc_stop(&sim, 5000);
        api_done();
        printf("roundtrip: %d checks passed in %lld ms\n", checks, proc_now_ms() - t0);
        return 0;
}
