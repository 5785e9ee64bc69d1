/* test_local.c: the local provider against real processes and a real loop,
 * for what only it does (contract.c covers the shared contract): exit
 * status, logs and their cap, the worker's exact environment, argv/env of
 * any length, working folder, signal state, stops (SIGTERM, SIGKILL after
 * grace, whole process group), the workers' account (`user`/`group`, as
 * root), adoption by "pid:starttime" and by marker, listing, fd hygiene. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "loop/loop.h"
#include "provider/provider.h"
#include "util/fsutil.h"

#define MAX_EVENTS 32

struct rec_ev {
        enum provider_event_type type;
        char instance[64];
        char ref[64];
        enum provider_exit_kind kind;
        int exit_code;
        int signal;
        int error;
};

struct fx {
        char dir[64];
        struct loop *loop;
        struct provider prov;
        int fds_before;
        struct rec_ev ev[MAX_EVENTS];
        int nev;
        int nstarted, nexited, nfailed;
        int nexit_nonzero;
        struct { pid_t pid; unsigned long long start; } detached[4];
        int ndetached;          /* started outside the provider */
};

static bool proc_stat(pid_t pid, char *state, long *pgrp, unsigned long long *start);
static bool proc_gone(pid_t pid, unsigned long long start);
static void parse_ref(const char *ref, pid_t *pid, unsigned long long *start);

static int count_fds(void)
{
        DIR *d = opendir("/proc/self/fd");
        struct dirent *e;
        int n = 0;

        assert_non_null(d);
        while ((e = readdir(d)))
                if (e->d_name[0] != '.')
                        n++;
        closedir(d);
        return n;
}

static int64_t now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_event(void *ud, const struct provider_event *ev)
{
        struct fx *f = ud;

        switch (ev->type) {
        case PROVIDER_EV_STARTED:
                f->nstarted++;
                break;
        case PROVIDER_EV_EXITED:
                f->nexited++;
                if (ev->exit.kind != PROVIDER_EXIT_CODE || ev->exit.code != 0)
                        f->nexit_nonzero++;
                break;
        case PROVIDER_EV_FAILED:
                f->nfailed++;
                break;
        }
        if (f->nev < MAX_EVENTS) {
                struct rec_ev *r = &f->ev[f->nev++];
                r->type = ev->type;
                snprintf(r->instance, sizeof(r->instance), "%s", ev->instance);
                snprintf(r->ref, sizeof(r->ref), "%s", ev->ref ? ev->ref : "");
                r->kind = ev->exit.kind;
                r->exit_code = ev->exit.code;
                r->signal = ev->exit.signal;
                r->error = ev->error;
        }
}

static int setup(void **state)
{
        struct fx *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        f->fds_before = count_fds();
        snprintf(f->dir, sizeof(f->dir), "/tmp/fs-provider-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        assert_int_equal(loop_new(&f->loop), 0);
        f->prov.ops = &provider_local_ops;
        assert_int_equal(f->prov.ops->init(&f->prov, f->loop, NULL), 0);
        *state = f;
        return 0;
}

static void kill_leftover(pid_t pid)
{
        char st;
        long pg = 0;
        unsigned long long s;

        if (!proc_stat(pid, &st, &pg, &s))
                return;
        kill(pg == pid ? -pid : pid, SIGKILL);
}

/* done() leaves workers running on purpose (adoption); a failed test must
 * not leave them behind either. */
static int teardown(void **state)
{
        struct fx *f = *state;

        for (int k = 0; k < f->nev; k++) {
                pid_t pid;
                unsigned long long start;
                if (f->ev[k].type != PROVIDER_EV_STARTED)
                        continue;
                parse_ref(f->ev[k].ref, &pid, &start);
                if (!proc_gone(pid, start))
                        kill_leftover(pid);
        }
        for (int k = 0; k < f->ndetached; k++)
                if (!proc_gone(f->detached[k].pid, f->detached[k].start))
                        kill_leftover(f->detached[k].pid);
        f->prov.ops->done(&f->prov);
        assert_null(f->prov.ctx);
        loop_free(f->loop);
        assert_int_equal(fs_rm_rf(f->dir), 0);
        assert_int_equal(count_fds(), f->fds_before);
        free(f);
        return 0;
}

static void log_path(struct fx *f, const char *name, char *buf, size_t n)
{
        snprintf(buf, n, "%s/%s.log", f->dir, name);
}

static int create(struct fx *f, const char *name, const char *const *argv,
                  const char *const *env, size_t log_max)
{
        char lp[256];

        log_path(f, name, lp, sizeof(lp));
        struct provider_spec spec = {
                .instance = name,
                .pool = "p1",
                .workdir = f->dir,
                .argv = argv,
                .env = env,
                .log_path = lp,
                .log_max = log_max,
        };
        return f->prov.ops->create(&f->prov, &spec, on_event, f);
}

/* Runs the loop until pred holds or timeout_ms passes. */
static bool run_until(struct fx *f, bool (*pred)(struct fx *f, const void *arg),
                      const void *arg, int64_t timeout_ms)
{
        int64_t end = now_ms() + timeout_ms;

        while (!pred(f, arg)) {
                if (now_ms() >= end)
                        return false;
                assert_int_equal(loop_run_once(f->loop, 20), 0);
        }
        return true;
}

static bool exited_n(struct fx *f, const void *arg)
{
        return f->nexited >= *(const int *)arg;
}

static bool wait_exited(struct fx *f, int n, int64_t timeout_ms)
{
        return run_until(f, exited_n, &n, timeout_ms);
}

static bool started_n(struct fx *f, const void *arg)
{
        return f->nstarted >= *(const int *)arg;
}

/* Fails the test when the event is missing. */
static const struct rec_ev *find_ev(struct fx *f, enum provider_event_type t, const char *name)
{
        for (int k = 0; k < f->nev; k++)
                if (f->ev[k].type == t && strcmp(f->ev[k].instance, name) == 0)
                        return &f->ev[k];
        fail_msg("no event %d for %s", (int)t, name);
        abort();
}

/* The exit as data: kind first, so a wrong kind names itself. */
#define assert_exit_code(e, n) do {                                     \
                assert_int_equal((e)->kind, PROVIDER_EXIT_CODE);        \
                assert_int_equal((e)->exit_code, (n));                  \
                assert_int_equal((e)->signal, 0);                       \
        } while (0)
#define assert_exit_signal(e, sig) do {                                 \
                assert_int_equal((e)->kind, PROVIDER_EXIT_SIGNAL);      \
                assert_int_equal((e)->signal, (sig));                   \
                assert_int_equal((e)->exit_code, 0);                    \
        } while (0)
#define assert_exit_unknown(e) do {                                     \
                assert_int_equal((e)->kind, PROVIDER_EXIT_UNKNOWN);     \
                assert_int_equal((e)->exit_code, 0);                    \
                assert_int_equal((e)->signal, 0);                       \
        } while (0)

static char *read_log(struct fx *f, const char *name, size_t *ret_len)
{
        char lp[256], *buf = NULL;
        size_t len = 0;

        log_path(f, name, lp, sizeof(lp));
        assert_int_equal(fs_read_file(lp, 1 << 20, &buf, &len), 0);
        if (ret_len)
                *ret_len = len;
        return buf;
}

struct log_wait {
        const char *name;
        const char *needle;
};

static bool log_has(struct fx *f, const void *arg)
{
        const struct log_wait *w = arg;
        char lp[256], *buf = NULL;
        size_t len;
        bool ok;

        log_path(f, w->name, lp, sizeof(lp));
        if (fs_read_file(lp, 1 << 20, &buf, &len) < 0)
                return false;
        ok = strstr(buf, w->needle) != NULL;
        free(buf);
        return ok;
}

/* Fields 3 (state), 5 (pgrp) and 22 (starttime) of /proc/PID/stat. */
static bool proc_stat(pid_t pid, char *state, long *pgrp, unsigned long long *start)
{
        char path[64], buf[1024];
        FILE *fp;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        fp = fopen(path, "re");
        if (!fp)
                return false;
        size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
        fclose(fp);
        buf[n] = '\0';
        char *s = strrchr(buf, ')');
        assert_non_null(s);
        s += 2;
        *state = *s;
        for (int field = 3; field < 22; field++) {
                s = strchr(s, ' ');
                assert_non_null(s);
                s++;
                if (field + 1 == 5)
                        *pgrp = strtol(s, NULL, 10);
        }
        *start = strtoull(s, NULL, 10);
        return true;
}

/* Gone means no such pid, a zombie, or a different process under that pid. */
static bool proc_gone(pid_t pid, unsigned long long start)
{
        char st;
        long pg;
        unsigned long long s;

        if (!proc_stat(pid, &st, &pg, &s))
                return true;
        return st == 'Z' || st == 'X' || s != start;
}

static void parse_ref(const char *ref, pid_t *pid, unsigned long long *start)
{
        char *end;
        long p = strtol(ref, &end, 10);

        assert_true(p > 0);
        assert_int_equal(*end, ':');
        *pid = (pid_t)p;
        *start = strtoull(end + 1, &end, 10);
        assert_int_equal(*end, '\0');
}

/* ---- tests --------------------------------------------------------------- */

static void registry_finds_local(void **state)
{
        assert_ptr_equal(provider_ops_find("local"), &provider_local_ops);
        assert_null(provider_ops_find("nope"));
        assert_null(provider_ops_find(NULL));
        assert_string_equal(provider_local_ops.type, "local");
        assert_int_equal(provider_local_ops.caps, PROVIDER_CAP_ADOPT | PROVIDER_CAP_LIST);
}

static void exit_code_and_log(void **state)
{
        struct fx *f = *state;
        const char *argv[] = { "sh", "-c", "echo hi; echo err >&2; exit 3", NULL };
        char lp[256];
        struct stat st;

        assert_int_equal(create(f, "w1", argv, NULL, 1 << 20), 0);
        assert_true(wait_exited(f, 1, 5000));
        assert_int_equal(f->nev, 2);
        assert_int_equal(f->ev[0].type, PROVIDER_EV_STARTED);
        assert_string_equal(f->ev[0].instance, "w1");
        assert_int_equal(f->ev[1].type, PROVIDER_EV_EXITED);
        assert_string_equal(f->ev[1].instance, "w1");
        assert_exit_code(&f->ev[1], 3);

        char *log = read_log(f, "w1", NULL);
        assert_string_equal(log, "hi\nerr\n");
        free(log);
        log_path(f, "w1", lp, sizeof(lp));
        assert_int_equal(stat(lp, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);

        /* Exited instances are forgotten: the name is free again. */
        assert_int_equal(f->prov.ops->stop(&f->prov, "w1"), -ENOENT);
        assert_int_equal(create(f, "w1", argv, NULL, 1 << 20), 0);
        assert_int_equal(create(f, "w1", argv, NULL, 1 << 20), -EEXIST);
        assert_true(wait_exited(f, 2, 5000));
        assert_exit_code(&f->ev[3], 3);
}

static void env_cwd_stdin_and_fds(void **state)
{
        struct fx *f = *state;
        char script[512], want[PATH_MAX + 128], cwd[PATH_MAX];
        int leak = fcntl(2, F_DUPFD, 10);  /* deliberately not CLOEXEC */

        assert_true(leak >= 10);
        snprintf(script, sizeof(script),
                 "printf 'pool=%%s\\n' \"$FORGESCALE_POOL\"; "
                 "pwd; cat; echo stdin-eof; "
                 "if [ -e /proc/$$/fd/%d ]; then echo leaked; else echo no-leak; fi", leak);
        const char *argv[] = { "sh", "-c", script, NULL };
        const char *env[] = { "FORGESCALE_POOL=p1", NULL };

        assert_int_equal(create(f, "w-env", argv, env, 1 << 20), 0);
        assert_true(wait_exited(f, 1, 5000));
        close(leak);
        assert_exit_code(&f->ev[1], 0);

        assert_non_null(realpath(f->dir, cwd));
        snprintf(want, sizeof(want), "pool=p1\n%s\nstdin-eof\nno-leak\n", cwd);
        char *log = read_log(f, "w-env", NULL);
        assert_string_equal(log, want);
        free(log);
}

struct saved_env {
        const char *key;
        char *old;              /* NULL: was unset */
};

static void env_save_set(struct saved_env *e, const char *key, const char *val)
{
        const char *o = getenv(key);

        e->key = key;
        e->old = o ? strdup(o) : NULL;
        if (val)
                assert_int_equal(setenv(key, val, 1), 0);
        else
                assert_int_equal(unsetenv(key), 0);
}

static void env_restore(struct saved_env *e)
{
        if (e->old)
                setenv(e->key, e->old, 1);
        else
                unsetenv(e->key);
        free(e->old);
}

/* The reproduction of a job printing the daemon's forge token: the
 * worker's environment is exactly the marker, spec->env and the allow-list
 * (PATH, HOME, LANG, TZ from the daemon), in that order; a secret in the
 * daemon's environment never reaches it, and spec->env overrides an
 * allow-listed key. /proc/PID/environ is what exec gave the worker, before
 * the shell adds anything. */
static void worker_env_is_spec_plus_allow_list(void **state)
{
        struct fx *f = *state;
        struct saved_env saved[6];
        const char *argv[] = { "sh", "-c", "tr '\\0' '\\n' < /proc/$$/environ", NULL };
        const char *env[] = { "FORGESCALE_POOL=p1", "FS_TEST_OVR=new", "TZ=Europe/Berlin",
                              "FORGESCALE_INSTANCE=spec-cannot-rename", NULL };
        char want[1024];

        env_save_set(&saved[0], "FS_TEST_SECRET", "s3cr3t-forge-token");
        env_save_set(&saved[1], "FS_TEST_OVR", "old");
        env_save_set(&saved[2], "LANG", "C.UTF-8");
        env_save_set(&saved[3], "TZ", "UTC");
        env_save_set(&saved[4], "HOME", "/home/daemon-test");
        env_save_set(&saved[5], "PATH", "/usr/bin:/bin");
        int r = create(f, "w-env2", argv, env, 1 << 20);
        for (int k = 5; k >= 0; k--)
                env_restore(&saved[k]);
        assert_int_equal(r, 0);
        assert_true(wait_exited(f, 1, 5000));
        assert_exit_code(&f->ev[1], 0);

        snprintf(want, sizeof(want),
                 "FORGESCALE_INSTANCE=w-env2\nFORGESCALE_POOL=p1\nFS_TEST_OVR=new\nTZ=Europe/Berlin\n"
                 "PATH=/usr/bin:/bin\nHOME=/home/daemon-test\nLANG=C.UTF-8\n");
        char *log = read_log(f, "w-env2", NULL);
        assert_null(strstr(log, "s3cr3t"));
        assert_string_equal(log, want);
        free(log);
}

/* No fixed arrays on the way to execve: 5,000 arguments and 3,000
 * variables arrive whole, in order. */
static void argv_and_env_of_any_length(void **state)
{
        struct fx *f = *state;
        enum { NARG = 5000, NENV = 3000 };
        const char **argv = calloc(NARG + 5, sizeof(*argv));
        const char **env = calloc(NENV + 1, sizeof(*env));
        char (*args)[16] = calloc(NARG, sizeof(*args));
        char (*vars)[32] = calloc(NENV, sizeof(*vars));
        char want[128];

        assert_true(argv && env && args && vars);
        argv[0] = "sh";
        argv[1] = "-c";
        argv[2] = "echo \"$# $1 ${5000}\"; tr '\\0' '\\n' < /proc/$$/environ | grep -c '^FS_LONG_'; "
                  "echo \"$FS_LONG_0 $FS_LONG_2999\"";
        argv[3] = "sh";
        for (int k = 0; k < NARG; k++) {
                snprintf(args[k], sizeof(args[k]), "a%d", k);
                argv[4 + k] = args[k];
        }
        for (int k = 0; k < NENV; k++) {
                snprintf(vars[k], sizeof(vars[k]), "FS_LONG_%d=v%d", k, k);
                env[k] = vars[k];
        }
        assert_int_equal(create(f, "w-long", argv, env, 1 << 20), 0);
        assert_true(wait_exited(f, 1, 10000));
        assert_exit_code(&f->ev[1], 0);
        snprintf(want, sizeof(want), "%d a0 a%d\n%d\nv0 v%d\n", NARG, NARG - 1, NENV, NENV - 1);
        char *log = read_log(f, "w-long", NULL);
        assert_string_equal(log, want);
        free(log);
        free(argv);
        free(env);
        free(args);
        free(vars);
}

static void on_usr2(int sig)
{
}

/* The daemon blocks signals for signalfd and may ignore or handle others;
 * none of that may reach a worker. Only SIGXFSZ is ignored (log cap). */
static void worker_signal_state_is_clean(void **state)
{
        struct fx *f = *state;
        struct sigaction sa = { .sa_handler = on_usr2 }, old_pipe, old_usr2;
        const char *argv[] = { "grep", "^Sig", "/proc/self/status", NULL };

        sigemptyset(&sa.sa_mask);
        assert_int_equal(loop_signal_add(f->loop, SIGUSR1, NULL, NULL), 0);
        assert_int_equal(sigaction(SIGUSR2, &sa, &old_usr2), 0);
        sa.sa_handler = SIG_IGN;
        assert_int_equal(sigaction(SIGPIPE, &sa, &old_pipe), 0);

        assert_int_equal(create(f, "w-sig", argv, NULL, 1 << 20), 0);
        assert_true(wait_exited(f, 1, 5000));
        sigaction(SIGUSR2, &old_usr2, NULL);
        sigaction(SIGPIPE, &old_pipe, NULL);
        assert_exit_code(&f->ev[1], 0);

        char *log = read_log(f, "w-sig", NULL);
        if (!strstr(log, "SigBlk:\t0000000000000000\n") || !strstr(log, "SigIgn:\t0000000001000000\n"))
                print_message("worker signal state:\n%s", log);
        assert_non_null(strstr(log, "SigBlk:\t0000000000000000\n"));
        /* bit 24 = signal 25 = SIGXFSZ */
        assert_non_null(strstr(log, "SigIgn:\t0000000001000000\n"));
        free(log);
}

static void path_lookup_uses_spec_env(void **state)
{
        struct fx *f = *state;
        char bin[256], exe[300], path[400];

        snprintf(bin, sizeof(bin), "%s/bin", f->dir);
        assert_int_equal(mkdir(bin, 0700), 0);
        snprintf(exe, sizeof(exe), "%s/fake-worker", bin);
        const char body[] = "#!/bin/sh\necho fake \"$@\"\nexit 5\n";
        int fd = open(exe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0700);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, body, sizeof(body) - 1), (ssize_t)(sizeof(body) - 1));
        close(fd);

        snprintf(path, sizeof(path), "PATH=/nonexistent:%s:/usr/bin:/bin", bin);
        const char *argv[] = { "fake-worker", "a", "b", NULL };
        const char *env[] = { path, NULL };
        assert_int_equal(create(f, "w-path", argv, env, 1 << 20), 0);
        assert_true(wait_exited(f, 1, 5000));
        assert_exit_code(&f->ev[1], 5);
        char *log = read_log(f, "w-path", NULL);
        assert_string_equal(log, "fake a b\n");
        free(log);
}

/* Exec failures are reported by create() itself; no event follows. */
static void exec_failures_return_errno(void **state)
{
        struct fx *f = *state;
        char plain[300], badwd[300];
        const char *missing_abs[] = { "/nonexistent/forgejo-runner", NULL };
        const char *missing_path[] = { "forgescale-no-such-binary", NULL };
        const char *not_exec[] = { plain, NULL };
        const char *ok[] = { "true", NULL };

        snprintf(plain, sizeof(plain), "%s/plain", f->dir);
        int fd = open(plain, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        close(fd);

        assert_int_equal(create(f, "e1", missing_abs, NULL, 4096), -ENOENT);
        assert_int_equal(create(f, "e2", missing_path, NULL, 4096), -ENOENT);
        assert_int_equal(create(f, "e3", not_exec, NULL, 4096), -EACCES);

        snprintf(badwd, sizeof(badwd), "%s/missing", f->dir);
        char lp[256];
        log_path(f, "e4", lp, sizeof(lp));
        struct provider_spec spec = {
                .instance = "e4", .workdir = badwd, .argv = ok,
                .log_path = lp, .log_max = 4096,
        };
        assert_int_equal(f->prov.ops->create(&f->prov, &spec, on_event, f), -ENOENT);
        const char *bad_env[] = { "NOEQUALS", NULL };
        assert_int_equal(create(f, "e5", ok, bad_env, 4096), -EINVAL);
        spec.workdir = f->dir;
        spec.log_path = badwd; /* parent folder missing → log cannot open */
        snprintf(badwd, sizeof(badwd), "%s/missing/log", f->dir);
        assert_int_equal(f->prov.ops->create(&f->prov, &spec, on_event, f), -ENOENT);

        for (int k = 0; k < 5; k++)
                assert_int_equal(loop_run_once(f->loop, 10), 0);
        assert_int_equal(f->nev, 0);
        assert_int_equal(f->prov.ops->stop(&f->prov, "e1"), -ENOENT);
        /* The failed children were reaped. */
        assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
        assert_int_equal(errno, ECHILD);
}

static void started_is_deferred_ref_is_valid_sigterm_stops(void **state)
{
        struct fx *f = *state;
        const char *argv[] = { "sleep", "100", NULL };
        int one = 1;
        pid_t pid;
        unsigned long long start, s2;
        char st;
        long pgrp;

        assert_int_equal(create(f, "w-sleep", argv, NULL, 4096), 0);
        assert_int_equal(f->nev, 0);   /* never from inside create() */
        assert_true(run_until(f, started_n, &one, 5000));
        assert_string_equal(f->ev[0].instance, "w-sleep");
        parse_ref(f->ev[0].ref, &pid, &start);
        assert_true(proc_stat(pid, &st, &pgrp, &s2));
        assert_true(s2 == start);
        assert_int_equal(pgrp, pid);   /* own process group */
        assert_true(getpgrp() != pid);

        int64_t t0 = now_ms();
        f->prov.stop_grace_ms = 10000;
        assert_int_equal(f->prov.ops->stop(&f->prov, "w-sleep"), 0);
        assert_true(wait_exited(f, 1, 5000));
        assert_true(now_ms() - t0 < 2000);
        assert_exit_signal(&f->ev[1], SIGTERM);
        assert_true(proc_gone(pid, start));
        assert_int_equal(loop_timer_count(f->loop), 0); /* kill timer gone */
}

static void stop_escalates_to_sigkill_after_grace(void **state)
{
        struct fx *f = *state;
        const char *argv[] = { "sh", "-c",
                "trap '' TERM; echo ready; while :; do sleep 0.05; done", NULL };
        struct log_wait w = { "w-trap", "ready\n" };

        assert_int_equal(create(f, "w-trap", argv, NULL, 4096), 0);
        assert_true(run_until(f, log_has, &w, 5000));
        int64_t t0 = now_ms();
        f->prov.stop_grace_ms = 300;
        assert_int_equal(f->prov.ops->stop(&f->prov, "w-trap"), 0);
        assert_true(wait_exited(f, 1, 5000));
        int64_t took = now_ms() - t0;
        assert_true(took >= 290);
        assert_true(took < 3000);
        assert_exit_signal(&f->ev[1], SIGKILL);
}

static pid_t log_pid(struct fx *f, const char *name)
{
        char *log = read_log(f, name, NULL);
        long p = strtol(log, NULL, 10);
        free(log);
        assert_true(p > 1);
        return (pid_t)p;
}

static bool gone_pred(struct fx *f, const void *arg)
{
        const pid_t *pid = arg;
        char st;
        long pg;
        unsigned long long s;

        return !proc_stat(*pid, &st, &pg, &s) || st == 'Z';
}

static void stop_reaches_grandchildren(void **state)
{
        struct fx *f = *state;
        const char *argv[] = { "sh", "-c", "sleep 100 & echo $!; wait", NULL };
        struct log_wait w = { "w-tree", "\n" };

        assert_int_equal(create(f, "w-tree", argv, NULL, 4096), 0);
        assert_true(run_until(f, log_has, &w, 5000));
        pid_t gc = log_pid(f, "w-tree");
        char st;
        long pg;
        unsigned long long s;
        assert_true(proc_stat(gc, &st, &pg, &s));
        assert_true(st != 'Z');

        f->prov.stop_grace_ms = 5000;
        assert_int_equal(f->prov.ops->stop(&f->prov, "w-tree"), 0);
        assert_true(wait_exited(f, 1, 3000));
        assert_exit_signal(&f->ev[1], SIGTERM);
        assert_true(run_until(f, gone_pred, &gc, 2000));
}

/* A worker that exits on its own must not leave its group behind, even a
 * member that ignores SIGTERM. */
static void stragglers_killed_after_exit(void **state)
{
        struct fx *f = *state;
        const char *argv[] = { "sh", "-c", "trap '' TERM; sleep 100 & echo $!; exit 0", NULL };

        assert_int_equal(create(f, "w-strag", argv, NULL, 4096), 0);
        assert_true(wait_exited(f, 1, 5000));
        assert_exit_code(&f->ev[1], 0);
        pid_t gc = log_pid(f, "w-strag");
        assert_true(run_until(f, gone_pred, &gc, 2000));
}

static void log_is_capped_and_worker_survives(void **state)
{
        struct fx *f = *state;
        const char *argv[] = { "head", "-c", "10485760", "/dev/zero", NULL };
        const char *argv2[] = { "sh", "-c",
                "head -c 10485760 /dev/zero; echo \"head=$?\" >&2; exit 4", NULL };
        char lp[256];
        struct stat st;

        assert_int_equal(create(f, "w-cap", argv, NULL, 64 * 1024), 0);
        assert_int_equal(create(f, "w-cap2", argv2, NULL, 64 * 1024), 0);
        assert_true(wait_exited(f, 2, 10000));

        const struct rec_ev *e = find_ev(f, PROVIDER_EV_EXITED, "w-cap");
        assert_exit_code(e, 1);                /* not SIGXFSZ: head saw EFBIG and said so */
        log_path(f, "w-cap", lp, sizeof(lp));
        assert_int_equal(stat(lp, &st), 0);
        assert_int_equal(st.st_size, 64 * 1024);

        e = find_ev(f, PROVIDER_EV_EXITED, "w-cap2");
        assert_exit_code(e, 4);
        log_path(f, "w-cap2", lp, sizeof(lp));
        assert_int_equal(stat(lp, &st), 0);
        assert_int_equal(st.st_size, 64 * 1024);
}

/* Starts `sleep secs` detached from this process (double fork, new
 * session, own process group) the way a worker outlives a daemon. */
static pid_t spawn_detached_env(const char *secs, const char *instance)
{
        int p[2];
        pid_t c, g = 0;

        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        c = fork();
        assert_true(c >= 0);
        if (c == 0) {
                sigset_t none;
                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                setsid();
                pid_t gc = fork();
                if (gc == 0) {
                        int dn = open("/dev/null", O_RDWR);
                        dup2(dn, 0);
                        dup2(dn, 1);
                        setpgid(0, 0);
                        if (instance)
                                setenv("FORGESCALE_INSTANCE", instance, 1);
                        execlp("sleep", "sleep", secs, (char *)NULL);
                        _exit(127);
                }
                (void)!write(p[1], &gc, sizeof(gc));
                _exit(0);
        }
        close(p[1]);
        assert_int_equal(read(p[0], &g, sizeof(g)), (ssize_t)sizeof(g));
        close(p[0]);
        assert_int_equal(waitpid(c, NULL, 0), c);
        assert_true(g > 0);
        return g;
}

static pid_t spawn_detached(const char *secs)
{
        return spawn_detached_env(secs, NULL);
}

static void detached_ref(pid_t pid, char *ref, size_t n, unsigned long long *start)
{
        char st;
        long pg;

        assert_true(proc_stat(pid, &st, &pg, start));
        snprintf(ref, n, "%d:%llu", (int)pid, *start);
}

static void adopt_reports_exit_and_checks_start_time(void **state)
{
        struct fx *f = *state;
        const struct provider_ops *o = f->prov.ops;
        char ref[64], bad[64], gone[64];
        unsigned long long start;
        pid_t pid = spawn_detached("0.4");

        detached_ref(pid, ref, sizeof(ref), &start);
        f->detached[f->ndetached].pid = pid;
        f->detached[f->ndetached++].start = start;
        snprintf(bad, sizeof(bad), "%d:%llu", (int)pid, start + 1);
        assert_int_equal(o->adopt(&f->prov, "a1", bad, NULL, 0, on_event, f), -ESRCH);

        FILE *fp = fopen("/proc/sys/kernel/pid_max", "re");
        long pid_max = 0;
        assert_non_null(fp);
        assert_int_equal(fscanf(fp, "%ld", &pid_max), 1);
        fclose(fp);
        snprintf(gone, sizeof(gone), "%ld:%llu", pid_max, start);
        assert_int_equal(o->adopt(&f->prov, "a1", gone, NULL, 0, on_event, f), -ESRCH);

        /* An empty ref means "find it by name": nothing carries this one. */
        assert_int_equal(o->adopt(&f->prov, "a1", "", NULL, 0, on_event, f), -ESRCH);
        const char *malformed[] = { "abc", "12", "12:", "12:x", "-1:5", "12:5x",
                                    " 12:5", "12: 5", "99999999999:1", NULL };
        for (int k = 0; malformed[k]; k++)
                assert_int_equal(o->adopt(&f->prov, "a1", malformed[k], NULL, 0, on_event, f), -EINVAL);
        assert_int_equal(o->adopt(&f->prov, "a1", NULL, NULL, 0, on_event, f), -EINVAL);

        assert_int_equal(o->adopt(&f->prov, "a1", ref, NULL, 0, on_event, f), 0);
        assert_int_equal(o->adopt(&f->prov, "a1", ref, NULL, 0, on_event, f), -EEXIST);
        int64_t t0 = now_ms();
        assert_true(wait_exited(f, 1, 5000));
        assert_true(now_ms() - t0 < 2000);
        assert_int_equal(f->nev, 1);            /* no STARTED for adopted */
        assert_int_equal(f->ev[0].type, PROVIDER_EV_EXITED);
        assert_string_equal(f->ev[0].instance, "a1");
        assert_string_equal(f->ev[0].ref, ref);
        assert_exit_unknown(&f->ev[0]);
        /* Ended: its ref no longer adopts. */
        assert_true(run_until(f, gone_pred, &pid, 2000));
        assert_int_equal(o->adopt(&f->prov, "a1", ref, NULL, 0, on_event, f), -ESRCH);
}

/* The daemon died between spawning a worker and saving its ref: the
 * provider finds the worker by the FORGESCALE_INSTANCE it was given. */
static void adopt_without_ref_finds_worker_by_name(void **state)
{
        struct fx *f = *state;
        const struct provider_ops *o = f->prov.ops;
        char ref[64];
        unsigned long long start;
        /* 3 s: two scans of /proc must fit in its life even when a loaded
         * machine (the sanitizer suite in parallel) makes them slow. */
        pid_t pid = spawn_detached_env("3", "lost-ref-1");
        bool visible = false;

        /* The variable shows in /proc/PID/environ only once exec has set
         * up sleep's stack, a moment after /proc/PID/exe already names
         * sleep; wait for the environment itself. */
        for (int k = 0; k < 1000 && !visible; k++) {
                char path[64], env[8192];
                snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                ssize_t n = fd >= 0 ? read(fd, env, sizeof(env) - 1) : -1;
                if (fd >= 0)
                        close(fd);
                if (n > 0)
                        env[n] = '\0';
                for (ssize_t off = 0; n > 0 && off < n && !visible; off += (ssize_t)strlen(env + off) + 1)
                        visible = strcmp(env + off, "FORGESCALE_INSTANCE=lost-ref-1") == 0;
                if (!visible)
                        usleep(5000);
        }
        assert_true(visible);
        detached_ref(pid, ref, sizeof(ref), &start);
        f->detached[f->ndetached].pid = pid;
        f->detached[f->ndetached++].start = start;
        assert_int_equal(o->adopt(&f->prov, "lost-ref-2", "", NULL, 0, on_event, f), -ESRCH);
        assert_int_equal(o->adopt(&f->prov, "lost-ref-1", "", NULL, 0, on_event, f), 0);
        assert_non_null(o->ref);
        assert_string_equal(o->ref(&f->prov, "lost-ref-1"), ref);
        assert_true(wait_exited(f, 1, 8000));
        assert_int_equal(f->ev[0].type, PROVIDER_EV_EXITED);
        assert_string_equal(f->ev[0].instance, "lost-ref-1");
        assert_exit_unknown(&f->ev[0]);
}

struct list_res {
        int calls;
        int error;
        size_t n;
        char names[512][32];           /* "" lists may see other tests' workers */
        bool refs_ok;
        bool all_running;
};

static void on_list(void *ud, int error, const struct provider_listing *items, size_t n)
{
        struct list_res *r = ud;

        r->calls++;
        r->error = error;
        r->n = n;
        r->refs_ok = true;
        r->all_running = true;
        assert_true(n <= 512);
        for (size_t k = 0; k < n; k++) {
                snprintf(r->names[k], sizeof(r->names[k]), "%s", items[k].instance);
                pid_t pid;
                unsigned long long start;
                parse_ref(items[k].ref, &pid, &start);
                r->refs_ok = r->refs_ok && !proc_gone(pid, start);
                r->all_running = r->all_running && items[k].running;
        }
}

static bool list_done(struct fx *f, const void *arg)
{
        return ((const struct list_res *)arg)->calls > 0;
}

static bool has_name(const struct list_res *r, const char *name)
{
        for (size_t k = 0; k < r->n; k++)
                if (strcmp(r->names[k], name) == 0)
                        return true;
        return false;
}

static void adopted_worker_stops_and_lists(void **state)
{
        struct fx *f = *state;
        const struct provider_ops *o = f->prov.ops;
        char ref[64];
        unsigned long long start;
        pid_t pid = spawn_detached("100");
        struct list_res r = { 0 };

        detached_ref(pid, ref, sizeof(ref), &start);
        f->detached[f->ndetached].pid = pid;
        f->detached[f->ndetached++].start = start;
        assert_int_equal(o->adopt(&f->prov, "a2", ref, NULL, 0, on_event, f), 0);
        assert_int_equal(o->list(&f->prov, "a2", on_list, &r), 0);
        assert_int_equal(r.calls, 0);
        assert_true(run_until(f, list_done, &r, 2000));
        assert_int_equal(r.error, 0);
        assert_int_equal(r.n, 1);
        assert_string_equal(r.names[0], "a2");
        assert_true(r.refs_ok);

        f->prov.stop_grace_ms = 5000;
        assert_int_equal(o->stop(&f->prov, "a2"), 0);
        assert_true(wait_exited(f, 1, 3000));
        assert_exit_unknown(&f->ev[0]);
        assert_true(run_until(f, gone_pred, &pid, 2000));
}

static void list_filters_by_prefix(void **state)
{
        struct fx *f = *state;
        const struct provider_ops *o = f->prov.ops;
        const char *argv[] = { "sleep", "100", NULL };
        struct list_res ra = { 0 }, rall = { 0 }, rnone = { 0 }, rafter = { 0 };
        int three = 3;

        assert_int_equal(create(f, "a-1", argv, NULL, 4096), 0);
        assert_int_equal(create(f, "a-2", argv, NULL, 4096), 0);
        assert_int_equal(create(f, "b-1", argv, NULL, 4096), 0);
        assert_true(run_until(f, started_n, &three, 5000));

        assert_int_equal(o->list(&f->prov, "a-", on_list, &ra), 0);
        assert_int_equal(o->list(&f->prov, "", on_list, &rall), 0);
        assert_int_equal(o->list(&f->prov, "zz", on_list, &rnone), 0);
        assert_true(run_until(f, list_done, &rnone, 2000));
        assert_int_equal(ra.calls, 1);
        assert_int_equal(ra.n, 2);
        assert_true(has_name(&ra, "a-1") && has_name(&ra, "a-2"));
        assert_true(ra.refs_ok && ra.all_running);
        /* Everything: ours and any other marked worker of this account. */
        assert_true(rall.n >= 3);
        assert_true(has_name(&rall, "a-1") && has_name(&rall, "a-2") && has_name(&rall, "b-1"));
        assert_int_equal(rnone.n, 0);

        /* No stop_grace_ms in the config: init() gave the default; sleep obeys TERM. */
        assert_int_equal(f->prov.stop_grace_ms, PROVIDER_STOP_GRACE_DEFAULT_MS);
        assert_int_equal(o->stop(&f->prov, "a-1"), 0);
        assert_int_equal(o->stop(&f->prov, "a-2"), 0);
        assert_int_equal(o->stop(&f->prov, "b-1"), 0);
        assert_true(wait_exited(f, 3, 3000));
        for (int k = 3; k < 6; k++)
                assert_exit_signal(&f->ev[k], SIGTERM);
        assert_int_equal(o->list(&f->prov, NULL, on_list, &rafter), 0);
        assert_true(run_until(f, list_done, &rafter, 2000));
        assert_false(has_name(&rafter, "a-1") || has_name(&rafter, "a-2") || has_name(&rafter, "b-1"));

        /* A pending list() is dropped by done() without a call. */
        struct list_res rdrop = { 0 };
        assert_int_equal(o->list(&f->prov, NULL, on_list, &rdrop), 0);
        assert_int_equal(rdrop.calls, 0);
}

/* A daemon restart: done() forgets instances (cancelling their timers and
 * pending lists) but leaves the workers running; a new provider adopts
 * them by the persisted ref. */
static void done_keeps_workers_for_adoption(void **state)
{
        struct fx *f = *state;
        const struct provider_ops *o = f->prov.ops;
        const char *argv[] = { "sh", "-c", "trap '' TERM; echo ready; exec sleep 100", NULL };
        struct log_wait w = { "w-keep", "ready\n" };
        struct list_res rdrop = { 0 };
        char ref[64];
        pid_t pid;
        unsigned long long start;

        int one = 1;

        assert_int_equal(create(f, "w-keep", argv, NULL, 4096), 0);
        assert_true(run_until(f, started_n, &one, 5000));
        assert_true(run_until(f, log_has, &w, 5000));
        assert_int_equal(f->ev[0].type, PROVIDER_EV_STARTED);
        snprintf(ref, sizeof(ref), "%s", f->ev[0].ref);
        parse_ref(ref, &pid, &start);
        f->prov.stop_grace_ms = 200;
        assert_int_equal(o->stop(&f->prov, "w-keep"), 0); /* TERM ignored */
        assert_int_equal(o->list(&f->prov, NULL, on_list, &rdrop), 0);

        o->done(&f->prov);
        assert_null(f->prov.ctx);
        assert_int_equal(loop_timer_count(f->loop), 0);
        for (int k = 0; k < 20; k++)    /* past the cancelled grace */
                assert_int_equal(loop_run_once(f->loop, 20), 0);
        assert_int_equal(rdrop.calls, 0);
        assert_false(proc_gone(pid, start));

        assert_int_equal(o->init(&f->prov, f->loop, NULL), 0);
        assert_int_equal(o->adopt(&f->prov, "w-keep", ref, NULL, 0, on_event, f), 0);
        f->prov.stop_grace_ms = 100;
        assert_int_equal(o->stop(&f->prov, "w-keep"), 0);
        assert_true(wait_exited(f, 1, 3000));
        assert_int_equal(f->ev[1].type, PROVIDER_EV_EXITED);
        assert_string_equal(f->ev[1].instance, "w-keep");
        /* Still this process's child here: the loop may learn the real
         * status (SIGCHLD) or only the exit (pidfd), whichever comes first. */
        if (f->ev[1].kind == PROVIDER_EXIT_SIGNAL)
                assert_exit_signal(&f->ev[1], SIGKILL);
        else
                assert_exit_unknown(&f->ev[1]);
        assert_true(proc_gone(pid, start));
}

/* ---- the workers' account (`user`, `group`) ------------------------------ */

static int create_in(struct fx *f, const char *name, const char *workdir,
                     const char *const *argv, const char *const *env, const char *token)
{
        char lp[256];

        log_path(f, name, lp, sizeof(lp));
        struct provider_spec spec = {
                .instance = name, .pool = "p1", .workdir = workdir,
                .argv = argv, .env = env,
                .token = token, .token_len = token ? strlen(token) : 0,
                .log_path = lp, .log_max = 1 << 20,
        };
        return f->prov.ops->create(&f->prov, &spec, on_event, f);
}

static void reinit(struct fx *f, const struct config_provider *cfg)
{
        f->prov.ops->done(&f->prov);
        assert_int_equal(f->prov.ops->init(&f->prov, f->loop, cfg), 0);
}

/* "id -G" of an account as login(1) would set it up with primary gid. */
static void groups_text(const char *user, gid_t gid, char *buf, size_t n)
{
        gid_t g[64];
        int ng = 64;
        size_t o = 0;

        assert_true(getgrouplist(user, gid, g, &ng) >= 0);
        buf[0] = '\0';
        for (int k = 0; k < ng; k++)
                o += (size_t)snprintf(buf + o, n - o, "%s%u", k ? " " : "", (unsigned)g[k]);
}

static void make_dir(const char *path, mode_t mode)
{
        assert_int_equal(mkdir(path, 0700), 0);
        assert_int_equal(chmod(path, mode), 0);
}

static void write_text(const char *path, const char *text)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

        assert_true(fd >= 0);
        assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
        close(fd);
}

static const char account_script[] =
        "id -u; id -g; id -G; "
        "if cat ../daemon/secret >/dev/null 2>&1; then echo read-secret; else echo no-secret; fi; "
        "if ls ../daemon >/dev/null 2>&1; then echo listed; else echo no-list; fi; "
        "cat \"$TOKEN_FILE\"; echo; stat -c '%u %g %a' \"$TOKEN_FILE\" .; "
        "printf '%s|%s\\n' \"$HOME\" \"$PATH\"";

/* As root the worker runs as `nobody`: its uid, gid and groups are the
 * account's, it cannot read (nor list) a 0700 folder of the daemon next to
 * its own, its token is a 0600 file of its own, HOME and PATH are the
 * account's. Not root: the switch is refused with -EPERM (see
 * account_switch_needs_privilege for the reason given). */
static void worker_runs_as_account(void **state)
{
        struct fx *f = *state;
        struct config_provider cfg = { .name = "acct", .local = { .user = "nobody" } };
        struct passwd *pw = getpwnam("nobody");
        char wd[128], sdir[128], spath[160], tok[PATH_MAX], tokenv[PATH_MAX + 16];
        char grp[256], want[1024];
        const char *argv[] = { "sh", "-c", account_script, NULL };
        const char *env[] = { tokenv, NULL };

        assert_non_null(pw);
        snprintf(wd, sizeof(wd), "%s/w-acct", f->dir);
        snprintf(sdir, sizeof(sdir), "%s/daemon", f->dir);
        snprintf(spath, sizeof(spath), "%s/secret", sdir);
        make_dir(wd, 0700);
        make_dir(sdir, 0700);
        write_text(spath, "daemon-secret\n");
        reinit(f, &cfg);
        assert_int_equal(f->prov.ops->token_path(&f->prov, "w-acct", wd, tok, sizeof(tok)), 0);
        snprintf(tokenv, sizeof(tokenv), "TOKEN_FILE=%s", tok);
        if (geteuid() != 0) {
                assert_int_equal(create_in(f, "w-acct", wd, argv, env, "tok-abc"), -EPERM);
                return;
        }
        /* The daemon's state folder must be searchable by the account. */
        assert_int_equal(chmod(f->dir, 0711), 0);

        assert_int_equal(create_in(f, "w-acct", wd, argv, env, "tok-abc"), 0);
        assert_int_equal(f->nev, 0);
        assert_true(wait_exited(f, 1, 5000));
        assert_exit_code(&f->ev[1], 0);
        groups_text("nobody", pw->pw_gid, grp, sizeof(grp));
        snprintf(want, sizeof(want),
                 "%u\n%u\n%s\nno-secret\nno-list\ntok-abc\n%u %u 600\n%u %u 700\n%s|%s\n",
                 (unsigned)pw->pw_uid, (unsigned)pw->pw_gid, grp,
                 (unsigned)pw->pw_uid, (unsigned)pw->pw_gid,
                 (unsigned)pw->pw_uid, (unsigned)pw->pw_gid,
                 pw->pw_dir, "/usr/local/bin:/usr/bin:/bin");
        char *log = read_log(f, "w-acct", NULL);
        assert_string_equal(log, want);
        free(log);

        /* cleanup() takes the token away once the worker is gone. */
        struct stat st;
        assert_int_equal(stat(tok, &st), 0);
        assert_int_equal(f->prov.ops->cleanup(&f->prov, "w-acct", f->ev[1].ref, wd), 0);
        assert_int_equal(stat(tok, &st), -1);
        assert_int_equal(errno, ENOENT);
}

/* `group` replaces the account's primary group (and its groups are then
 * the ones login(1) would give with that primary group). */
static void account_group_overrides_primary(void **state)
{
        struct fx *f = *state;
        struct config_provider cfg = { .local = { .user = "nobody", .group = "daemon" } };
        struct passwd *pw = getpwnam("nobody");
        struct group *gr = getgrnam("daemon");
        const char *argv[] = { "sh", "-c", "id -u; id -g; id -G", NULL };
        char wd[128], grp[256], want[512];

        assert_non_null(pw);
        assert_non_null(gr);
        assert_true(gr->gr_gid != pw->pw_gid);
        snprintf(wd, sizeof(wd), "%s/w-grp", f->dir);
        make_dir(wd, 0700);
        reinit(f, &cfg);
        if (geteuid() != 0) {
                assert_int_equal(create_in(f, "w-grp", wd, argv, NULL, NULL), -EPERM);
                return;
        }
        assert_int_equal(chmod(f->dir, 0711), 0);
        assert_int_equal(create_in(f, "w-grp", wd, argv, NULL, NULL), 0);
        assert_true(wait_exited(f, 1, 5000));
        assert_exit_code(&f->ev[1], 0);
        groups_text("nobody", gr->gr_gid, grp, sizeof(grp));
        snprintf(want, sizeof(want), "%u\n%u\n%s\n", (unsigned)pw->pw_uid, (unsigned)gr->gr_gid, grp);
        char *log = read_log(f, "w-grp", NULL);
        assert_string_equal(log, want);
        free(log);
}

/* A folder the account cannot reach by path fails create() with the
 * reason, before anything runs and with no token left behind. */
static void account_cannot_reach_its_folder(void **state)
{
        struct fx *f = *state;
        struct config_provider cfg = { .local = { .user = "nobody" } };
        const char *argv[] = { "true", NULL };
        char wd[128], tok[PATH_MAX];
        struct stat st;

        snprintf(wd, sizeof(wd), "%s/w-far", f->dir);
        make_dir(wd, 0700);
        reinit(f, &cfg);
        if (geteuid() != 0) {
                assert_int_equal(create_in(f, "w-far", wd, argv, NULL, "tok"), -EPERM);
                return;
        }
        assert_int_equal(chmod(f->dir, 0700), 0);      /* not searchable by nobody */
        assert_int_equal(create_in(f, "w-far", wd, argv, NULL, "tok"), -EACCES);
        assert_non_null(strstr(f->prov.error, "cannot reach the instance folder"));
        assert_non_null(strstr(f->prov.error, "searchable"));
        assert_int_equal(f->prov.ops->token_path(&f->prov, "w-far", wd, tok, sizeof(tok)), 0);
        assert_int_equal(stat(tok, &st), -1);
        for (int k = 0; k < 5; k++)
                assert_int_equal(loop_run_once(f->loop, 10), 0);
        assert_int_equal(f->nev, 0);
        assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
        assert_int_equal(errno, ECHILD);
}

struct eperm_res {
        int r_user, r_group, nev;
        char err_user[PROVIDER_ERROR_MAX], err_group[PROVIDER_ERROR_MAX];
};

static void eperm_event(void *ud, const struct provider_event *ev)
{
        ((struct eperm_res *)ud)->nev++;
}

/* A daemon without root asks for another account: for a user the folder
 * cannot be handed over, for a group the switch itself is refused. */
static void eperm_body(const char *dir, struct eperm_res *res)
{
        struct config_provider cu = { .local = { .user = "root" } };
        struct config_provider cg = { .local = { .group = "root" } };
        struct provider p = { .ops = &provider_local_ops };
        const char *argv[] = { "true", NULL };
        char wd[160], lp[160];
        struct loop *l = NULL;

        snprintf(wd, sizeof(wd), "%s/w", dir);
        snprintf(lp, sizeof(lp), "%s/w.log", dir);
        struct provider_spec spec = {
                .instance = "w-eperm", .workdir = wd, .argv = argv,
                .token = "tok", .token_len = 3, .log_path = lp,
        };
        res->r_user = res->r_group = 1;
        if (loop_new(&l) < 0 || p.ops->init(&p, l, &cu) < 0)
                return;
        res->r_user = p.ops->create(&p, &spec, eperm_event, res);
        snprintf(res->err_user, sizeof(res->err_user), "%s", p.error);
        p.ops->done(&p);
        if (p.ops->init(&p, l, &cg) < 0)
                return;
        spec.token = NULL;
        res->r_group = p.ops->create(&p, &spec, eperm_event, res);
        snprintf(res->err_group, sizeof(res->err_group), "%s", p.error);
        for (int k = 0; k < 5; k++)
                loop_run_once(l, 10);
        p.ops->done(&p);
        loop_free(l);
}

static void account_switch_needs_privilege(void **state)
{
        struct fx *f = *state;
        struct eperm_res res = { 0 };
        char dir[128], wd[160];

        snprintf(dir, sizeof(dir), "%s/np", f->dir);
        snprintf(wd, sizeof(wd), "%s/w", dir);
        make_dir(dir, 0700);
        make_dir(wd, 0700);
        if (geteuid() != 0) {
                eperm_body(dir, &res);
        } else {
                /* Root here: an unprivileged copy of this process plays
                 * the daemon, as nobody, in a folder of nobody's. */
                struct passwd *pw = getpwnam("nobody");
                int pfd[2];
                assert_non_null(pw);
                assert_int_equal(chmod(f->dir, 0711), 0);
                assert_int_equal(chown(dir, pw->pw_uid, pw->pw_gid), 0);
                assert_int_equal(chown(wd, pw->pw_uid, pw->pw_gid), 0);
                assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
                pid_t c = fork();
                assert_true(c >= 0);
                if (c == 0) {
                        if (setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0)
                                _exit(2);
                        eperm_body(dir, &res);
                        _exit(write(pfd[1], &res, sizeof(res)) == (ssize_t)sizeof(res) ? 0 : 3);
                }
                close(pfd[1]);
                assert_int_equal(read(pfd[0], &res, sizeof(res)), (ssize_t)sizeof(res));
                close(pfd[0]);
                int st;
                assert_int_equal(waitpid(c, &st, 0), c);
                assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        }
        assert_int_equal(res.r_user, -EPERM);
        assert_non_null(strstr(res.err_user, "needs root, or CAP_CHOWN"));
        assert_int_equal(res.r_group, -EPERM);
        assert_non_null(strstr(res.err_group, "needs root, or CAP_SETUID and CAP_SETGID"));
        assert_int_equal(res.nev, 0);
        char tok[200];
        struct stat st;
        snprintf(tok, sizeof(tok), "%s/token", wd);
        assert_int_equal(stat(tok, &st), -1);
}

/* A name that is no account fails init() with the name in the reason. */
static void unknown_account_fails_init(void **state)
{
        struct fx *f = *state;
        struct config_provider cu = { .local = { .user = "fs-no-such-user-4711" } };
        struct config_provider cg = { .local = { .user = "nobody", .group = "fs-no-such-group-4711" } };

        f->prov.ops->done(&f->prov);
        assert_int_equal(f->prov.ops->init(&f->prov, f->loop, &cu), -ENOENT);
        assert_null(f->prov.ctx);
        assert_string_equal(f->prov.error, "user 'fs-no-such-user-4711' does not exist");
        f->prov.ops->done(&f->prov);    /* accepts a failed init() */
        assert_int_equal(f->prov.ops->init(&f->prov, f->loop, &cg), -ENOENT);
        assert_string_equal(f->prov.error, "group 'fs-no-such-group-4711' does not exist");
        /* Digits that name no account are looked up as a uid. */
        struct config_provider cn = { .local = { .user = "65534" } };
        assert_int_equal(f->prov.ops->init(&f->prov, f->loop, &cn), 0);
}

enum { LAUNCH_N = 200 };

struct launch_state {
        int started[LAUNCH_N], exited[LAUNCH_N];
        char refs[LAUNCH_N][64];
        int bad;                        /* unknown name, EXITED first, bad exit, FAILED */
        int nexited;
};

static void on_launch_event(void *ud, const struct provider_event *ev)
{
        struct launch_state *ls = ud;
        char *end;
        long k = strncmp(ev->instance, "t-", 2) == 0 ? strtol(ev->instance + 2, &end, 10) : -1;

        if (k < 0 || k >= LAUNCH_N || *end) {
                ls->bad++;
                return;
        }
        if (ev->type == PROVIDER_EV_STARTED) {
                ls->started[k]++;
                snprintf(ls->refs[k], sizeof(ls->refs[k]), "%s", ev->ref);
        } else if (ev->type == PROVIDER_EV_EXITED) {
                ls->exited[k]++;
                ls->nexited++;
                if (!ls->started[k] || strcmp(ls->refs[k], ev->ref) != 0 ||
                    ev->exit.kind != PROVIDER_EXIT_CODE || ev->exit.code != 0)
                        ls->bad++;
        } else {
                ls->bad++;
        }
}

/* 200 workers created back to back: each is reported exactly once as
 * STARTED and then EXITED with code 0 under the same ref, refs are
 * distinct, and none stays tracked. How fast is the benchmark's question
 * (bench/provider-local): a rate bound here would either fail on a loaded
 * machine or be loose enough never to fail. */
static void launch_200_each_reported_once(void **state)
{
        struct fx *f = *state;
        struct launch_state *ls = calloc(1, sizeof(*ls));
        const char *argv[] = { "true", NULL };
        char name[32], lp[256];

        assert_non_null(ls);
        for (int k = 0; k < LAUNCH_N; k++) {
                snprintf(name, sizeof(name), "t-%03d", k);
                log_path(f, name, lp, sizeof(lp));
                struct provider_spec spec = {
                        .instance = name, .workdir = f->dir, .argv = argv,
                        .log_path = lp, .log_max = 4096,
                };
                assert_int_equal(f->prov.ops->create(&f->prov, &spec, on_launch_event, ls), 0);
        }
        assert_int_equal(ls->nexited, 0);       /* nothing from inside create() */
        int64_t end = now_ms() + 30000;
        while (ls->nexited < LAUNCH_N && now_ms() < end)
                assert_int_equal(loop_run_once(f->loop, 20), 0);
        for (int k = 0; k < 5; k++)             /* late duplicates would show */
                assert_int_equal(loop_run_once(f->loop, 10), 0);
        assert_int_equal(ls->nexited, LAUNCH_N);
        assert_int_equal(ls->bad, 0);
        for (int k = 0; k < LAUNCH_N; k++) {
                assert_int_equal(ls->started[k], 1);
                assert_int_equal(ls->exited[k], 1);
                for (int j = 0; j < k; j++)
                        assert_true(strcmp(ls->refs[j], ls->refs[k]) != 0);
                snprintf(name, sizeof(name), "t-%03d", k);
                assert_null(f->prov.ops->ref(&f->prov, name));
        }
        assert_int_equal(loop_timer_count(f->loop), 0);
        free(ls);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(registry_finds_local),
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
                T(exit_code_and_log),
                T(env_cwd_stdin_and_fds),
                T(worker_env_is_spec_plus_allow_list),
                T(argv_and_env_of_any_length),
                T(worker_signal_state_is_clean),
                T(path_lookup_uses_spec_env),
                T(exec_failures_return_errno),
                T(started_is_deferred_ref_is_valid_sigterm_stops),
                T(stop_escalates_to_sigkill_after_grace),
                T(stop_reaches_grandchildren),
                T(stragglers_killed_after_exit),
                T(log_is_capped_and_worker_survives),
                T(adopt_reports_exit_and_checks_start_time),
                T(adopt_without_ref_finds_worker_by_name),
                T(adopted_worker_stops_and_lists),
                T(list_filters_by_prefix),
                T(done_keeps_workers_for_adoption),
                T(worker_runs_as_account),
                T(account_group_overrides_primary),
                T(account_cannot_reach_its_folder),
                T(account_switch_needs_privilege),
                T(unknown_account_fails_init),
                T(launch_200_each_reported_once),
#undef T
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
