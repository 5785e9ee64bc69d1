/* task.c: see task.h. The only file of the runner that starts processes.
 * One loop per step waits with ppoll() on the step's output pipe, the
 * report timer and the kill timers, so reporting never stops while a step
 * runs. Steps never inherit a runner fd other than stdin/stdout/stderr. */
#include "task.h"

#include "fs_version.h"
#include "report.h"
#include "sig.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "workflow.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define COMP "runner"
#define RUNNER_TAG "\xe2\x9a\x99\xef\xb8\x8f [runner]: "
#define KILL_GRACE_MS 2000
#define ORPHAN_GRACE_MS 200

extern char **environ;

struct envlist {
        char **v;                       /* "KEY=value", NULL-terminated */
        size_t n;
};

struct job {
        const struct settings *s;
        const struct rp_task *task;
        struct workflow wf;
        struct joblog log;
        struct rp_task_state state;
        struct report rep;
        struct envlist env;             /* shared by every step */
        char dir[PATH_MAX];
        char act[PATH_MAX];
        char workspace[PATH_MAX];
        char tmp[PATH_MAX];
        struct rp_step_state *cur_step; /* the running step, or NULL */
        int64_t next_report;
        int64_t deadline;
        unsigned terms_seen;
        bool cancel;
        bool timed_out;
};

/* ---- environment ------------------------------------------------------- */

static void envlist_done(struct envlist *e)
{
        for (size_t i = 0; i < e->n; i++)
                free(e->v[i]);
        free(e->v);
        e->v = NULL;
        e->n = 0;
}

/* Sets key=value, replacing an existing entry. */
static int envlist_set(struct envlist *e, const char *key, const char *value)
{
        size_t kl = strlen(key);
        char *kv = malloc(kl + strlen(value) + 2);

        if (!kv)
                return -ENOMEM;
        memcpy(kv, key, kl);
        kv[kl] = '=';
        memcpy(kv + kl + 1, value, strlen(value) + 1);
        for (size_t i = 0; i < e->n; i++)
                if (strncmp(e->v[i], key, kl) == 0 && e->v[i][kl] == '=') {
                        free(e->v[i]);
                        e->v[i] = kv;
                        return 0;
                }
        char **nv = realloc(e->v, (e->n + 2) * sizeof(*nv));
        if (!nv) {
                free(kv);
                return -ENOMEM;
        }
        e->v = nv;
        e->v[e->n++] = kv;
        e->v[e->n] = NULL;
        return 0;
}

static int envlist_copy(struct envlist *dst, const struct envlist *src)
{
        memset(dst, 0, sizeof(*dst));
        dst->v = calloc(src->n + 1, sizeof(*dst->v));
        if (!dst->v)
                return -ENOMEM;
        for (size_t i = 0; i < src->n; i++) {
                dst->v[i] = strdup(src->v[i]);
                if (!dst->v[i]) {
                        envlist_done(dst);
                        return -ENOMEM;
                }
                dst->n++;
        }
        return 0;
}

/* Both GITHUB_x and FORGEJO_x. */
static int set_both(struct envlist *e, const char *suffix, const char *value)
{
        char k[96];
        int r;

        snprintf(k, sizeof(k), "GITHUB_%s", suffix);
        if ((r = envlist_set(e, k, value)) < 0)
                return r;
        snprintf(k, sizeof(k), "FORGEJO_%s", suffix);
        return envlist_set(e, k, value);
}

/* A context value as text; false when absent or not a scalar. */
static bool ctx_text(const json_t *ctx, const char *key, char *buf, size_t n)
{
        const json_t *v = ctx ? json_object_get(ctx, key) : NULL;

        if (json_is_string(v))
                snprintf(buf, n, "%s", json_string_value(v));
        else if (json_is_integer(v))
                snprintf(buf, n, "%lld", (long long)json_integer_value(v));
        else if (json_is_real(v))
                snprintf(buf, n, "%.17g", json_real_value(v));
        else if (json_is_boolean(v))
                snprintf(buf, n, "%s", json_is_true(v) ? "true" : "false");
        else
                return false;
        return true;
}

static const struct {
        const char *ctx;
        const char *env;
} ctx_env[] = {
        { "run_id", "RUN_ID" },
        { "run_number", "RUN_NUMBER" },
        { "run_attempt", "RUN_ATTEMPT" },
        { "repository", "REPOSITORY" },
        { "repository_owner", "REPOSITORY_OWNER" },
        { "actor", "ACTOR" },
        { "sha", "SHA" },
        { "ref", "REF" },
        { "ref_name", "REF_NAME" },
        { "ref_type", "REF_TYPE" },
        { "base_ref", "BASE_REF" },
        { "head_ref", "HEAD_REF" },
        { "event_name", "EVENT_NAME" },
        { "workflow", "WORKFLOW" },
        { "server_url", "SERVER_URL" },
        { "api_url", "API_URL" },
};

static int build_env(struct job *j)
{
        const json_t *ctx = j->task->context;
        char buf[4096];
        int r;

        for (char **e = environ; e && *e; e++) {
                const char *eq = strchr(*e, '=');
                if (!eq || eq == *e)
                        continue;
                char key[256];
                size_t kl = (size_t)(eq - *e);
                if (kl >= sizeof(key))
                        continue;
                memcpy(key, *e, kl);
                key[kl] = '\0';
                if ((r = envlist_set(&j->env, key, eq + 1)) < 0)
                        return r;
        }
        if ((r = envlist_set(&j->env, "CI", "true")) < 0 ||
            (r = envlist_set(&j->env, "GITHUB_ACTIONS", "true")) < 0 ||
            (r = envlist_set(&j->env, "FORGEJO_ACTIONS", "true")) < 0 ||
            (r = envlist_set(&j->env, "GITEA_ACTIONS", "true")) < 0 ||
            (r = envlist_set(&j->env, "FORGEJO_ACTIONS_RUNNER_VERSION", SETTINGS_RUNNER_VERSION)) < 0 ||
            (r = envlist_set(&j->env, "GITEA_ACTIONS_RUNNER_VERSION", SETTINGS_RUNNER_VERSION)) < 0 ||
            (r = envlist_set(&j->env, "RUNNER_OS", "Linux")) < 0 ||
            (r = envlist_set(&j->env, "RUNNER_TEMP", j->tmp)) < 0 ||
            (r = set_both(&j->env, "WORKSPACE", j->workspace)) < 0)
                return r;
        if (!ctx_text(ctx, "job", buf, sizeof(buf)) || !buf[0])
                snprintf(buf, sizeof(buf), "%s", j->wf.job_id);
        if ((r = set_both(&j->env, "JOB", buf)) < 0)
                return r;
        for (size_t i = 0; i < sizeof(ctx_env) / sizeof(ctx_env[0]); i++)
                if (ctx_text(ctx, ctx_env[i].ctx, buf, sizeof(buf)) &&
                    (r = set_both(&j->env, ctx_env[i].env, buf)) < 0)
                        return r;
        for (size_t i = 0; i < j->wf.n_env; i++)
                if ((r = envlist_set(&j->env, j->wf.env[i].key, j->wf.env[i].value)) < 0)
                        return r;
        return 0;
}

/* Secrets and tokens never reach a log row nor a log line. */
static int register_masks(struct job *j)
{
        static const char *const ctx_secret[] = {
                "token", "gitea_runtime_token", "forgejo_runtime_token",
                "forgejo_actions_id_token_request_token",
        };
        const char *k;
        json_t *v;
        int r;

        json_object_foreach((json_t *)j->task->secrets, k, v) {
                if (!json_is_string(v))
                        continue;
                log_redact_add(json_string_value(v));
                if ((r = joblog_add_mask(&j->log, json_string_value(v))) < 0)
                        return r;
        }
        for (size_t i = 0; i < sizeof(ctx_secret) / sizeof(ctx_secret[0]); i++) {
                v = j->task->context ? json_object_get(j->task->context, ctx_secret[i]) : NULL;
                if (!json_is_string(v))
                        continue;
                log_redact_add(json_string_value(v));
                if ((r = joblog_add_mask(&j->log, json_string_value(v))) < 0)
                        return r;
        }
        return 0;
}

/* ---- log rows ---------------------------------------------------------- */

static void row(struct job *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void row(struct job *j, const char *fmt, ...)
{
        char buf[2048];
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        if (n < 0)
                return;
        if ((size_t)n >= sizeof(buf))
                n = (int)sizeof(buf) - 1;
        if (joblog_add(&j->log, buf, (size_t)n) < 0)
                log_warn(COMP, "out of memory adding a log row", KI("task_id", j->state.id));
}

/* ---- cancellation and reporting ---------------------------------------- */

static void check_cancel(struct job *j, int64_t now)
{
        const char *why = NULL;

        if (j->cancel)
                return;
        if (sig_term_count() != j->terms_seen) {
                j->terms_seen = sig_term_count();
                why = "interrupted by a signal";
                row(j, RUNNER_TAG "the runner was interrupted; cancelling the job");
        } else if (j->rep.server_stop) {
                why = "cancelled by the server";
        } else if (j->rep.unauthenticated) {
                why = "runner no longer registered";
        } else if (now >= j->deadline) {
                why = "runner.timeout exceeded";
                j->timed_out = true;
                row(j, "The runner cancelled the job because it exceeds the maximum run time");
        }
        if (why) {
                j->cancel = true;
                log_info(COMP, "cancelling task", KI("task_id", j->state.id), KS("reason", why));
        }
}

static void maybe_report(struct job *j, int64_t now)
{
        if (now < j->next_report)
                return;
        if (j->cur_step)
                j->cur_step->log_length = joblog_total(&j->log) - j->cur_step->log_index;
        report_tick(&j->rep);
        j->next_report = sig_now_ms() + j->s->report_interval_ms;
        check_cancel(j, sig_now_ms());
}

/* ---- one step ---------------------------------------------------------- */

static int fmt_path(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fmt_path(char *buf, size_t n, const char *fmt, ...)
{
        va_list ap;
        int l;

        va_start(ap, fmt);
        l = vsnprintf(buf, n, fmt, ap);
        va_end(ap);
        return (l < 0 || (size_t)l >= n) ? -ENAMETOOLONG : 0;
}

/* argv for the step's shell; returns the number of words or -errno. */
static int shell_argv(const char *shell, const char *script, char *store, size_t storelen,
                      char **argv, size_t max)
{
        const char *tmpl;
        size_t o = 0, argc = 0;

        if (!shell || !shell[0] || strcmp(shell, "sh") == 0)
                tmpl = "sh -e {0}";
        else if (strcmp(shell, "bash") == 0)
                tmpl = "bash --noprofile --norc -e -o pipefail {0}";
        else if (strcmp(shell, "python") == 0)
                tmpl = "python {0}";
        else if (strstr(shell, "{0}"))
                tmpl = shell;
        else
                return -EINVAL;
        /* Split on blanks; a word equal to {0} becomes the script path. */
        for (const char *p = tmpl; *p;) {
                while (*p == ' ' || *p == '\t')
                        p++;
                if (!*p)
                        break;
                const char *w = p;
                while (*p && *p != ' ' && *p != '\t')
                        p++;
                size_t wl = (size_t)(p - w);
                const char *src = w;
                if (wl == 3 && strncmp(w, "{0}", 3) == 0) {
                        src = script;
                        wl = strlen(script);
                }
                if (argc + 1 >= max || o + wl + 1 > storelen)
                        return -E2BIG;
                memcpy(store + o, src, wl);
                store[o + wl] = '\0';
                argv[argc++] = store + o;
                o += wl + 1;
        }
        if (argc == 0)
                return -EINVAL;
        argv[argc] = NULL;
        return (int)argc;
}

static int write_script(const char *path, const char *text)
{
        size_t len = strlen(text);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0700);
        int r = 0;

        if (fd < 0)
                return -errno;
        while (len > 0) {
                ssize_t w = write(fd, text, len);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        break;
                }
                text += w;
                len -= (size_t)w;
        }
        if (r == 0 && write(fd, "\n", 1) != 1)
                r = -EIO;
        if (close(fd) < 0 && r == 0)
                r = -errno;
        return r;
}

static void child_exec(char **argv, char **envp, const char *cwd, int out_fd)
{
        int devnull;

        setpgid(0, 0);
        sig_child_reset();
        devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(out_fd, 2) < 0)
                _exit(127);
        if (chdir(cwd) < 0) {
                dprintf(2, RUNNER_TAG "cannot enter %s: %s\n", cwd, strerror(errno));
                _exit(1);
        }
        execvpe(argv[0], argv, envp);
        dprintf(2, RUNNER_TAG "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
}

/* Reads whatever the pipe holds. Returns false at end of file. */
static bool drain(struct job *j, int fd)
{
        char buf[16384];

        for (;;) {
                ssize_t n = read(fd, buf, sizeof(buf));
                if (n > 0) {
                        if (log_enabled(LOG_DEBUG))
                                log_debug(COMP, "step output", KI("bytes", n));
                        if (joblog_feed(&j->log, buf, (size_t)n) < 0)
                                log_warn(COMP, "out of memory in the task log", KI("task_id", j->state.id));
                        continue;
                }
                if (n == 0)
                        return false;
                if (errno == EINTR)
                        continue;
                return errno == EAGAIN || errno == EWOULDBLOCK;
        }
}

static int64_t min64(int64_t a, int64_t b)
{
        return a < b ? a : b;
}

/* Runs the step's process in its own group and waits for it and for the
 * end of its output while reporting. Returns the step result. */
static enum rp_result run_process(struct job *j, char **argv, char **envp, const char *cwd)
{
        int p[2], status = 0;
        pid_t pid;
        bool exited = false, eof = false, killed = false;
        int64_t term_at = -1, orphan_at = -1;

        if (pipe2(p, O_CLOEXEC) < 0) {
                row(j, RUNNER_TAG "pipe: %s", strerror(errno));
                return RP_RESULT_FAILURE;
        }
        pid = fork();
        if (pid < 0) {
                row(j, RUNNER_TAG "fork: %s", strerror(errno));
                close(p[0]);
                close(p[1]);
                return RP_RESULT_FAILURE;
        }
        if (pid == 0)
                child_exec(argv, envp, cwd, p[1]);
        (void)setpgid(pid, pid); /* also done in the child; whichever runs first */
        close(p[1]);
        fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) | O_NONBLOCK);
        log_debug(COMP, "step started", KI("pid", pid));

        while (!(exited && eof)) {
                int64_t now = sig_now_ms();

                if (!exited) {
                        pid_t w = waitpid(pid, &status, WNOHANG);
                        if (w == pid || (w < 0 && errno == ECHILD))
                                exited = true;
                }
                if (exited && !eof) {
                        /* A background process still holds the pipe. */
                        if (orphan_at < 0)
                                orphan_at = now + ORPHAN_GRACE_MS;
                        else if (now >= orphan_at) {
                                kill(-pid, SIGKILL);
                                (void)drain(j, p[0]);
                                break;
                        }
                }
                check_cancel(j, now);
                if (j->cancel && term_at < 0) {
                        kill(-pid, SIGTERM);
                        term_at = now;
                }
                if (term_at >= 0 && !killed && now >= term_at + KILL_GRACE_MS) {
                        kill(-pid, SIGKILL);
                        killed = true;
                }
                maybe_report(j, now);
                if (j->cancel && term_at < 0)
                        continue; /* cancelled by this report: signal at once */

                now = sig_now_ms();
                int64_t wake = j->next_report;
                if (!j->cancel)
                        wake = min64(wake, j->deadline);
                if (term_at >= 0 && !killed)
                        wake = min64(wake, term_at + KILL_GRACE_MS);
                if (orphan_at >= 0)
                        wake = min64(wake, orphan_at);
                if (exited && eof)
                        break;
                struct pollfd pfd = { .fd = p[0], .events = POLLIN };
                int r = sig_poll(eof ? NULL : &pfd, eof ? 0 : 1, wake > now ? wake - now : 0);
                if (r < 0) {
                        log_warn(COMP, "ppoll failed", KERR(r));
                        sig_sleep(10);
                }
                if (!eof && (r > 0 || exited))
                        eof = !drain(j, p[0]);
        }
        close(p[0]);
        /* Anything the step left behind in its group goes too. */
        kill(-pid, SIGKILL);
        (void)sig_child_take();
        if (j->cancel)
                return RP_RESULT_CANCELLED;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                return RP_RESULT_SUCCESS;
        if (WIFEXITED(status))
                row(j, RUNNER_TAG "exitcode '%d': failure", WEXITSTATUS(status));
        else if (WIFSIGNALED(status))
                row(j, RUNNER_TAG "killed by signal %d: failure", WTERMSIG(status));
        return RP_RESULT_FAILURE;
}

static enum rp_result run_step(struct job *j, size_t i)
{
        const struct wf_step *st = &j->wf.steps[i];
        char script[PATH_MAX], cwd[PATH_MAX], store[PATH_MAX * 2];
        char *argv[32];
        struct envlist env = { 0 };
        enum rp_result res = RP_RESULT_FAILURE;
        int r;

        if (st->uses) {
                row(j, RUNNER_TAG "`uses: %s` is not supported by forgejo-sim-runner", st->uses);
                return RP_RESULT_FAILURE;
        }
        if (fmt_path(script, sizeof(script), "%s/step-%zu.sh", j->act, i) < 0) {
                row(j, RUNNER_TAG "work directory path too long");
                return RP_RESULT_FAILURE;
        }
        if ((r = write_script(script, st->run)) < 0) {
                row(j, RUNNER_TAG "cannot write the script: %s", strerror(-r));
                return RP_RESULT_FAILURE;
        }
        if (shell_argv(st->shell, script, store, sizeof(store), argv, sizeof(argv) / sizeof(argv[0])) < 0) {
                row(j, RUNNER_TAG "unsupported shell '%s'", st->shell);
                return RP_RESULT_FAILURE;
        }
        if (!st->working_directory)
                r = fmt_path(cwd, sizeof(cwd), "%s", j->workspace);
        else if (st->working_directory[0] == '/')
                r = fmt_path(cwd, sizeof(cwd), "%s", st->working_directory);
        else
                r = fmt_path(cwd, sizeof(cwd), "%s/%s", j->workspace, st->working_directory);
        if (r < 0) {
                row(j, RUNNER_TAG "working-directory too long");
                return RP_RESULT_FAILURE;
        }
        if (envlist_copy(&env, &j->env) < 0)
                goto oom;
        for (size_t k = 0; k < st->n_env; k++)
                if (envlist_set(&env, st->env[k].key, st->env[k].value) < 0)
                        goto oom;
        res = run_process(j, argv, env.v, cwd);
        envlist_done(&env);
        return res;
oom:
        envlist_done(&env);
        row(j, RUNNER_TAG "out of memory");
        return RP_RESULT_FAILURE;
}

/* ---- the job ----------------------------------------------------------- */

static int make_dirs(struct job *j)
{
        const char *parent = j->s->workdir_parent;
        int r;

        if (!parent || !parent[0])
                parent = getenv("TMPDIR");
        if (!parent || !parent[0])
                parent = "/tmp";
        if ((r = fs_mkdir_p(parent, 0700)) < 0)
                return r;
        if (snprintf(j->dir, sizeof(j->dir), "%s/forgejo-sim-runner-XXXXXX", parent) >= (int)sizeof(j->dir))
                return -ENAMETOOLONG;
        if (!mkdtemp(j->dir)) {
                j->dir[0] = '\0';
                return -errno;
        }
        if (fmt_path(j->act, sizeof(j->act), "%s/act", j->dir) < 0 ||
            fmt_path(j->workspace, sizeof(j->workspace), "%s/hostexecutor", j->dir) < 0 ||
            fmt_path(j->tmp, sizeof(j->tmp), "%s/tmp", j->dir) < 0)
                return -ENAMETOOLONG;
        if (mkdir(j->act, 0700) < 0 || mkdir(j->workspace, 0700) < 0 || mkdir(j->tmp, 0700) < 0)
                return -errno;
        return 0;
}

static const char *result_word(enum rp_result r)
{
        switch (r) {
        case RP_RESULT_SUCCESS:
                return "succeeded";
        case RP_RESULT_CANCELLED:
                return "cancelled";
        default:
                return "failed";
        }
}

static bool abort_final(void)
{
        /* The first signal cancels the task; a second one gives up reporting. */
        return sig_term_count() >= 2;
}

int task_run(struct rpc_client *rpc, const struct settings *s, const struct rp_task *t)
{
        struct job *j = calloc(1, sizeof(*j));
        enum rp_result result = RP_RESULT_SUCCESS;
        char err[256];
        int r;

        if (!j)
                return -ENOMEM;
        j->s = s;
        j->task = t;
        joblog_init(&j->log);
        j->state.id = t->id;
        j->state.started_at = rp_ts_now();
        j->rep = (struct report){
                .rpc = rpc,
                .log = &j->log,
                .state = &j->state,
                .timeout_ms = s->fetch_timeout_ms > 10000 ? s->fetch_timeout_ms : 10000,
        };
        j->terms_seen = sig_term_count();
        j->deadline = sig_now_ms() + s->timeout_ms;
        j->next_report = sig_now_ms(); /* the first report marks the task as started */

        if (register_masks(j) < 0) {
                r = -ENOMEM;
                goto out;
        }
        row(j, "forgejo-sim-runner %s (forgescale %s), host mode", SETTINGS_RUNNER_VERSION, FORGESCALE_VERSION);
        err[0] = '\0';
        r = workflow_parse((const char *)t->workflow_payload, t->workflow_payload_len, &j->wf,
                           err, sizeof(err));
        if (r < 0) {
                row(j, RUNNER_TAG "invalid workflow payload: %s", r == -ENOMEM ? "out of memory" : err);
                log_error(COMP, "invalid workflow payload", KI("task_id", t->id), KS("reason", err));
                result = RP_RESULT_FAILURE;
        } else {
                j->state.steps = calloc(j->wf.n_steps + 1, sizeof(*j->state.steps));
                if (!j->state.steps) {
                        r = -ENOMEM;
                        goto out;
                }
                j->state.n_steps = j->wf.n_steps;
                for (size_t i = 0; i < j->wf.n_steps; i++)
                        j->state.steps[i].id = (int64_t)i;
                row(j, "Job %s%s%s: %zu step%s", j->wf.job_id, j->wf.job_name ? " - " : "",
                    j->wf.job_name ? j->wf.job_name : "", j->wf.n_steps, j->wf.n_steps == 1 ? "" : "s");
                if ((r = make_dirs(j)) < 0) {
                        row(j, RUNNER_TAG "cannot create the work directory: %s", strerror(-r));
                        log_error(COMP, "cannot create the work directory", KERR(r));
                        result = RP_RESULT_FAILURE;
                } else if ((r = build_env(j)) < 0) {
                        row(j, RUNNER_TAG "out of memory");
                        result = RP_RESULT_FAILURE;
                } else {
                        row(j, "Workspace %s", j->workspace);
                }
        }
        log_info(COMP, "task started", KI("task_id", t->id), KS("job", j->wf.job_id),
                 KI("steps", j->wf.n_steps));

        for (size_t i = 0; i < j->wf.n_steps; i++) {
                struct rp_step_state *st = &j->state.steps[i];

                check_cancel(j, sig_now_ms());
                if (j->cancel || result != RP_RESULT_SUCCESS) {
                        st->result = j->cancel ? RP_RESULT_CANCELLED : RP_RESULT_SKIPPED;
                        st->log_index = joblog_total(&j->log);
                        continue;
                }
                st->started_at = rp_ts_now();
                st->log_index = joblog_total(&j->log);
                j->cur_step = st;
                maybe_report(j, sig_now_ms());
                st->result = run_step(j, i);
                joblog_flush(&j->log);
                j->cur_step = NULL;
                st->stopped_at = rp_ts_now();
                st->log_length = joblog_total(&j->log) - st->log_index;
                log_info(COMP, "step finished", KI("task_id", t->id), KI("step", i),
                         KS("result", rp_result_name(st->result)));
                if (st->result != RP_RESULT_SUCCESS)
                        result = j->cancel ? RP_RESULT_CANCELLED : RP_RESULT_FAILURE;
        }
        check_cancel(j, sig_now_ms());
        if (j->cancel)
                result = RP_RESULT_CANCELLED;
        row(j, "Job %s", result_word(result));

        j->state.result = result;
        j->state.stopped_at = rp_ts_now();
        r = report_close(&j->rep, s->retry_max, s->retry_initial_ms, s->retry_max_delay_ms, abort_final);
        if (r < 0 && !j->rep.unauthenticated)
                log_warn(COMP, "final state not accepted", KI("task_id", t->id), KERR(r));
        log_info(COMP, "task finished", KI("task_id", t->id), KS("result", rp_result_name(result)));
        r = (int)result;
out:
        if (j->dir[0]) {
                int rr = fs_rm_rf(j->dir);
                if (rr < 0)
                        log_warn(COMP, "cannot remove the work directory", KS("path", j->dir), KERR(rr));
        }
        envlist_done(&j->env);
        workflow_done(&j->wf);
        joblog_done(&j->log);
        free(j->state.steps);
        free(j);
        return r;
}
