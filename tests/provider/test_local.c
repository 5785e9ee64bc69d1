/* test_local.c: the local provider against real processes and a real loop:
 * exit status, logs and their cap, environment, working folder, signal
 * state of workers, stops (SIGTERM, SIGKILL after grace, whole process
 * group), adoption by "pid:starttime", listing, launch rate, fd hygiene. */
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

#include "loop/loop.h"
#include "provider/provider.h"
#include "util/fsutil.h"

#define MAX_EVENTS 32

struct rec_ev {
        enum provider_event_type type;
        char instance[64];
        char ref[64];
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
                if (ev->exit_code != 0 || ev->signal != 0)
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
                r->exit_code = ev->exit_code;
                r->signal = ev->signal;
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
        assert_int_equal(f->prov.ops->init(&f->prov, f->loop), 0);
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
        assert_int_equal(f->ev[1].exit_code, 3);
        assert_int_equal(f->ev[1].signal, 0);

        char *log = read_log(f, "w1", NULL);
        assert_string_equal(log, "hi\nerr\n");
        free(log);
        log_path(f, "w1", lp, sizeof(lp));
        assert_int_equal(stat(lp, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);

        /* Exited instances are forgotten: the name is free again. */
        assert_int_equal(f->prov.ops->stop(&f->prov, "w1", 100), -ENOENT);
        assert_int_equal(create(f, "w1", argv, NULL, 1 << 20), 0);
        assert_int_equal(create(f, "w1", argv, NULL, 1 << 20), -EEXIST);
        assert_true(wait_exited(f, 2, 5000));
        assert_int_equal(f->ev[3].exit_code, 3);
}

static void env_cwd_stdin_and_fds(void **state)
{
        struct fx *f = *state;
        char script[512], want[PATH_MAX + 128], cwd[PATH_MAX];
        int leak = fcntl(2, F_DUPFD, 10);  /* deliberately not CLOEXEC */

        assert_true(leak >= 10);
        assert_int_equal(setenv("FS_TEST_OVR", "old", 1), 0);
        snprintf(script, sizeof(script),
                 "printf 'pool=%%s\\n' \"$FORGESCALE_POOL\"; "
                 "printf 'ovr=%%s\\n' \"$FS_TEST_OVR\"; "
                 "tr '\\0' '\\n' < /proc/$$/environ | grep -c '^FS_TEST_OVR='; "
                 "printf 'keep=%%s\\n' \"$FS_TEST_KEEP\"; "
                 "pwd; cat; echo stdin-eof; "
                 "if [ -e /proc/$$/fd/%d ]; then echo leaked; else echo no-leak; fi", leak);
        assert_int_equal(setenv("FS_TEST_KEEP", "kept", 1), 0);
        const char *argv[] = { "sh", "-c", script, NULL };
        const char *env[] = { "FORGESCALE_POOL=p1", "FS_TEST_OVR=new", NULL };

        assert_int_equal(create(f, "w-env", argv, env, 1 << 20), 0);
        assert_true(wait_exited(f, 1, 5000));
        close(leak);
        unsetenv("FS_TEST_OVR");
        unsetenv("FS_TEST_KEEP");
        assert_int_equal(f->ev[1].exit_code, 0);

        assert_non_null(realpath(f->dir, cwd));
        snprintf(want, sizeof(want),
                 "pool=p1\novr=new\n1\nkeep=kept\n%s\nstdin-eof\nno-leak\n", cwd);
        char *log = read_log(f, "w-env", NULL);
        assert_string_equal(log, want);
        free(log);
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
        assert_int_equal(f->ev[1].exit_code, 0);

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
        assert_int_equal(f->ev[1].exit_code, 5);
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
        assert_int_equal(f->prov.ops->stop(&f->prov, "e1", 100), -ENOENT);
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
        assert_int_equal(f->prov.ops->stop(&f->prov, "w-sleep", 10000), 0);
        assert_true(wait_exited(f, 1, 5000));
        assert_true(now_ms() - t0 < 2000);
        assert_int_equal(f->ev[1].signal, SIGTERM);
        assert_int_equal(f->ev[1].exit_code, -1);
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
        assert_int_equal(f->prov.ops->stop(&f->prov, "w-trap", 300), 0);
        assert_true(wait_exited(f, 1, 5000));
        int64_t took = now_ms() - t0;
        assert_true(took >= 290);
        assert_true(took < 3000);
        assert_int_equal(f->ev[1].signal, SIGKILL);
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

        assert_int_equal(f->prov.ops->stop(&f->prov, "w-tree", 5000), 0);
        assert_true(wait_exited(f, 1, 3000));
        assert_int_equal(f->ev[1].signal, SIGTERM);
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
        assert_int_equal(f->ev[1].exit_code, 0);
        assert_int_equal(f->ev[1].signal, 0);
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
        assert_int_equal(e->signal, 0);        /* not SIGXFSZ */
        assert_int_equal(e->exit_code, 1);     /* head saw EFBIG and said so */
        log_path(f, "w-cap", lp, sizeof(lp));
        assert_int_equal(stat(lp, &st), 0);
        assert_int_equal(st.st_size, 64 * 1024);

        e = find_ev(f, PROVIDER_EV_EXITED, "w-cap2");
        assert_int_equal(e->signal, 0);
        assert_int_equal(e->exit_code, 4);
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
        assert_int_equal(o->adopt(&f->prov, "a1", bad, on_event, f), -ESRCH);

        FILE *fp = fopen("/proc/sys/kernel/pid_max", "re");
        long pid_max = 0;
        assert_non_null(fp);
        assert_int_equal(fscanf(fp, "%ld", &pid_max), 1);
        fclose(fp);
        snprintf(gone, sizeof(gone), "%ld:%llu", pid_max, start);
        assert_int_equal(o->adopt(&f->prov, "a1", gone, on_event, f), -ESRCH);

        /* An empty ref means "find it by name": nothing carries this one. */
        assert_int_equal(o->adopt(&f->prov, "a1", "", on_event, f), -ESRCH);
        const char *malformed[] = { "abc", "12", "12:", "12:x", "-1:5", "12:5x",
                                    " 12:5", "12: 5", "99999999999:1", NULL };
        for (int k = 0; malformed[k]; k++)
                assert_int_equal(o->adopt(&f->prov, "a1", malformed[k], on_event, f), -EINVAL);
        assert_int_equal(o->adopt(&f->prov, "a1", NULL, on_event, f), -EINVAL);

        assert_int_equal(o->adopt(&f->prov, "a1", ref, on_event, f), 0);
        assert_int_equal(o->adopt(&f->prov, "a1", ref, on_event, f), -EEXIST);
        int64_t t0 = now_ms();
        assert_true(wait_exited(f, 1, 5000));
        assert_true(now_ms() - t0 < 2000);
        assert_int_equal(f->nev, 1);            /* no STARTED for adopted */
        assert_int_equal(f->ev[0].type, PROVIDER_EV_EXITED);
        assert_string_equal(f->ev[0].instance, "a1");
        assert_string_equal(f->ev[0].ref, ref);
        assert_int_equal(f->ev[0].exit_code, -1);
        assert_int_equal(f->ev[0].signal, 0);
        /* Ended: its ref no longer adopts. */
        assert_true(run_until(f, gone_pred, &pid, 2000));
        assert_int_equal(o->adopt(&f->prov, "a1", ref, on_event, f), -ESRCH);
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
        assert_int_equal(o->adopt(&f->prov, "lost-ref-2", "", on_event, f), -ESRCH);
        assert_int_equal(o->adopt(&f->prov, "lost-ref-1", "", on_event, f), 0);
        assert_non_null(o->ref);
        assert_string_equal(o->ref(&f->prov, "lost-ref-1"), ref);
        assert_true(wait_exited(f, 1, 8000));
        assert_int_equal(f->ev[0].type, PROVIDER_EV_EXITED);
        assert_string_equal(f->ev[0].instance, "lost-ref-1");
        assert_int_equal(f->ev[0].exit_code, -1);
}

struct list_res {
        int calls;
        int error;
        size_t n;
        char names[8][32];
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
        for (size_t k = 0; k < n && k < 8; k++) {
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
        for (size_t k = 0; k < r->n && k < 8; k++)
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
        assert_int_equal(o->adopt(&f->prov, "a2", ref, on_event, f), 0);
        assert_int_equal(o->list(&f->prov, NULL, on_list, &r), 0);
        assert_int_equal(r.calls, 0);
        assert_true(run_until(f, list_done, &r, 2000));
        assert_int_equal(r.error, 0);
        assert_int_equal(r.n, 1);
        assert_string_equal(r.names[0], "a2");
        assert_true(r.refs_ok);

        assert_int_equal(o->stop(&f->prov, "a2", 5000), 0);
        assert_true(wait_exited(f, 1, 3000));
        assert_int_equal(f->ev[0].exit_code, -1);
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
        assert_int_equal(rall.n, 3);
        assert_true(has_name(&rall, "b-1"));
        assert_int_equal(rnone.n, 0);

        /* grace 0: SIGKILL at once. */
        assert_int_equal(o->stop(&f->prov, "a-1", 0), 0);
        assert_int_equal(o->stop(&f->prov, "a-2", 0), 0);
        assert_int_equal(o->stop(&f->prov, "b-1", 0), 0);
        assert_true(wait_exited(f, 3, 3000));
        for (int k = 3; k < 6; k++)
                assert_int_equal(f->ev[k].signal, SIGKILL);
        assert_int_equal(o->list(&f->prov, NULL, on_list, &rafter), 0);
        assert_true(run_until(f, list_done, &rafter, 2000));
        assert_int_equal(rafter.n, 0);

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
        assert_int_equal(o->stop(&f->prov, "w-keep", 200), 0); /* TERM ignored */
        assert_int_equal(o->list(&f->prov, NULL, on_list, &rdrop), 0);

        o->done(&f->prov);
        assert_null(f->prov.ctx);
        assert_int_equal(loop_timer_count(f->loop), 0);
        for (int k = 0; k < 20; k++)    /* past the cancelled grace */
                assert_int_equal(loop_run_once(f->loop, 20), 0);
        assert_int_equal(rdrop.calls, 0);
        assert_false(proc_gone(pid, start));

        assert_int_equal(o->init(&f->prov, f->loop), 0);
        assert_int_equal(o->adopt(&f->prov, "w-keep", ref, on_event, f), 0);
        assert_int_equal(o->stop(&f->prov, "w-keep", 100), 0);
        assert_true(wait_exited(f, 1, 3000));
        assert_int_equal(f->ev[1].type, PROVIDER_EV_EXITED);
        assert_string_equal(f->ev[1].instance, "w-keep");
        /* Still this process's child here: the loop may learn the real
         * status (SIGCHLD) or only the exit (pidfd), whichever comes first. */
        assert_int_equal(f->ev[1].exit_code, -1);
        assert_true(f->ev[1].signal == SIGKILL || f->ev[1].signal == 0);
        assert_true(proc_gone(pid, start));
}

static void launch_rate_200(void **state)
{
        struct fx *f = *state;
        const char *argv[] = { "true", NULL };
        char name[32];
        const int n = 200;

        int64_t t0 = now_ms();
        for (int k = 0; k < n; k++) {
                snprintf(name, sizeof(name), "t-%03d", k);
                assert_int_equal(create(f, name, argv, NULL, 4096), 0);
        }
        int64_t t1 = now_ms();
        assert_true(wait_exited(f, n, 20000));
        int64_t t2 = now_ms();
        assert_int_equal(f->nstarted, n);
        assert_int_equal(f->nexit_nonzero, 0);
        assert_int_equal(f->nfailed, 0);
        double spawn_s = (double)(t1 - t0) / 1000.0, all_s = (double)(t2 - t0) / 1000.0;
        print_message("local provider: %d creates of `true` in %.3f s (%.0f launches/s); "
                      "all exits reported after %.3f s (%.0f/s)\n",
                      n, spawn_s, spawn_s > 0 ? n / spawn_s : 0.0,
                      all_s, all_s > 0 ? n / all_s : 0.0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(registry_finds_local),
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
                T(exit_code_and_log),
                T(env_cwd_stdin_and_fds),
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
                T(launch_rate_200),
#undef T
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
