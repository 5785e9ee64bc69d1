/* local.c: the `local` provider: workers are processes on this machine.
 * Owns spawning (clone with a shared address space, like vfork), each
 * worker's process group, its size-capped log file, SIGTERM-then-SIGKILL
 * stops, "pid:starttime" references and re-adoption after a restart.
 * Never reads or writes worker output itself, never sets PR_SET_PDEATHSIG
 * (workers outlive the daemon so they can be adopted), never logs. */
#include "provider/provider.h"
#include "loop/loop.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

extern char **environ;

/* Why clone(CLONE_VM | CLONE_VFORK) and not fork() or posix_spawn():
 * - fork() copies the daemon's page tables; its cost grows with the
 *   daemon's memory and 1,000 workers' worth of state. A shared address
 *   space costs the same at any daemon size (this is what glibc's
 *   posix_spawn does internally).
 * - posix_spawn() cannot set RLIMIT_FSIZE or leave SIGXFSZ ignored in the
 *   child without changing both for the whole daemon, and the log cap
 *   needs both (see below). Setting the limit with prlimit() after the
 *   spawn would race with the worker's first writes.
 * The child runs on its own small stack, only makes system calls (no
 * malloc, no stdio, no locks) and writes its errno into the shared
 * arguments when a step or execve fails; CLONE_VFORK suspends the parent
 * until execve succeeded or the child exited, so create() knows the
 * outcome synchronously and needs no error pipe.
 *
 * Why the log cap is RLIMIT_FSIZE on a file the worker writes directly and
 * not a pipe through the daemon:
 * - the daemon never touches a byte of output: no fd, no epoll watch and
 *   no wakeup per worker, so 1,000 chatty workers cost the daemon nothing;
 * - a worker must survive a daemon restart to be adopted; with a pipe its
 *   next write after the daemon died would raise SIGPIPE and kill it.
 * SIGXFSZ is ignored in the worker, so a write past the cap fails with
 * EFBIG instead of killing it; the log keeps the first log_max bytes.
 * The limit (and the ignored SIGXFSZ) is inherited by everything the
 * worker starts, so log_max must exceed the largest file a job running
 * directly on the host writes (docker jobs are children of dockerd and
 * are not affected). */

#define SPAWN_STACK_SIZE (256u * 1024u)
#define STAT_MAX 1024
#define REF_MAX 48

struct local_inst {
        struct local_inst *hnext;
        char *name;
        char ref[REF_MAX];
        pid_t pid;
        pid_t pgid;                     /* killed as a group when == pid */
        bool exited_early;              /* reaped before the watch existed */
        int early_status;
        struct loop_timer *start_timer;
        struct loop_timer *kill_timer;
        int64_t kill_deadline;
        provider_event_cb cb;
        void *ud;
        struct local *lc;
};

struct list_req {
        struct list_req *next, *prev;
        struct local *lc;
        char *prefix;                   /* NULL: everything */
        provider_list_cb cb;
        void *ud;
        struct loop_timer *timer;
};

struct local {
        struct loop *loop;
        int devnull;
        void *stack;                    /* clone child stack, reused */
        struct local_inst **buckets;    /* chained hash on the name */
        size_t nbuckets;
        size_t n;
        struct list_req *lists;         /* pending list() calls */
};

/* ---- instance table ---------------------------------------------------- */

static uint64_t name_hash(const char *s)
{
        uint64_t h = 1469598103934665603ull;

        for (; *s; s++) {
                h ^= (unsigned char)*s;
                h *= 1099511628211ull;
        }
        return h;
}

static struct local_inst *inst_find(struct local *lc, const char *name)
{
        struct local_inst *i = lc->buckets[name_hash(name) & (lc->nbuckets - 1)];

        for (; i; i = i->hnext)
                if (strcmp(i->name, name) == 0)
                        return i;
        return NULL;
}

static int table_grow(struct local *lc)
{
        size_t n = lc->nbuckets * 2;
        struct local_inst **b = calloc(n, sizeof(*b));

        if (!b)
                return -ENOMEM;
        for (size_t k = 0; k < lc->nbuckets; k++) {
                struct local_inst *i = lc->buckets[k], *next;
                for (; i; i = next) {
                        next = i->hnext;
                        size_t h = name_hash(i->name) & (n - 1);
                        i->hnext = b[h];
                        b[h] = i;
                }
        }
        free(lc->buckets);
        lc->buckets = b;
        lc->nbuckets = n;
        return 0;
}

/* Growth is best effort: a failed resize only makes chains longer. */
static void inst_insert(struct local *lc, struct local_inst *i)
{
        if (lc->n >= lc->nbuckets)
                (void)table_grow(lc);
        size_t h = name_hash(i->name) & (lc->nbuckets - 1);
        i->hnext = lc->buckets[h];
        lc->buckets[h] = i;
        lc->n++;
}

static void inst_unlink(struct local *lc, struct local_inst *i)
{
        struct local_inst **pp = &lc->buckets[name_hash(i->name) & (lc->nbuckets - 1)];

        for (; *pp; pp = &(*pp)->hnext) {
                if (*pp == i) {
                        *pp = i->hnext;
                        i->hnext = NULL;
                        lc->n--;
                        return;
                }
        }
}

static struct local_inst *inst_new(struct local *lc, const char *name,
                                   provider_event_cb cb, void *ud)
{
        struct local_inst *i = calloc(1, sizeof(*i));

        if (!i)
                return NULL;
        i->name = strdup(name);
        if (!i->name) {
                free(i);
                return NULL;
        }
        i->lc = lc;
        i->cb = cb;
        i->ud = ud;
        return i;
}

static void inst_free(struct local_inst *i)
{
        if (!i)
                return;
        free(i->name);
        free(i);
}

/* ---- /proc/PID/stat ------------------------------------------------------ */

/* Reads state (field 3), pgrp (5) and starttime (22, clock ticks since
 * boot). The comm field may hold spaces and ')' so parsing starts after
 * the last ')'. -ESRCH when the process does not exist. */
static int read_stat(pid_t pid, char *ret_state, pid_t *ret_pgrp,
                     unsigned long long *ret_start)
{
        char path[64], buf[STAT_MAX];
        ssize_t n;
        int fd;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? -ESRCH : -errno;
        do {
                n = read(fd, buf, sizeof(buf) - 1);
        } while (n < 0 && errno == EINTR);
        if (n < 0) {
                int r = errno == ESRCH ? -ESRCH : -errno;
                close(fd);
                return r;
        }
        close(fd);
        buf[n] = '\0';

        char *s = strrchr(buf, ')');
        if (!s || s[1] != ' ' || !s[2])
                return -EINVAL;
        s += 2;                         /* field 3 */
        char state = *s;
        long long pgrp = -1;
        for (int field = 3; field < 22; field++) {
                s = strchr(s, ' ');
                if (!s)
                        return -EINVAL;
                s++;
                if (field + 1 == 5) {
                        char *end;
                        errno = 0;
                        pgrp = strtoll(s, &end, 10);
                        if (errno || end == s || *end != ' ')
                                return -EINVAL;
                }
        }
        char *end;
        errno = 0;
        unsigned long long start = strtoull(s, &end, 10);
        if (errno || end == s || (*end != ' ' && *end != '\n' && *end != '\0'))
                return -EINVAL;
        *ret_state = state;
        *ret_pgrp = (pid_t)pgrp;
        *ret_start = start;
        return 0;
}

/* "pid:starttime", both decimal, nothing else. */
static int parse_ref(const char *ref, pid_t *ret_pid, unsigned long long *ret_start)
{
        char *end;
        long long pid;
        unsigned long long start;

        if (!ref || *ref < '0' || *ref > '9')
                return -EINVAL;
        errno = 0;
        pid = strtoll(ref, &end, 10);
        if (errno || end == ref || *end != ':' || pid <= 0 || pid > INT_MAX)
                return -EINVAL;
        ref = end + 1;
        if (*ref < '0' || *ref > '9')
                return -EINVAL;
        errno = 0;
        start = strtoull(ref, &end, 10);
        if (errno || end == ref || *end != '\0')
                return -EINVAL;
        *ret_pid = (pid_t)pid;
        *ret_start = start;
        return 0;
}

/* ---- spawning ------------------------------------------------------------ */

struct spawn_args {
        const char *file;               /* argv[0]; searched in path if no '/' */
        char *const *argv;
        char *const *envp;
        const char *path;               /* PATH for the search */
        const char *workdir;
        int devnull;                    /* >= 3 */
        int logfd;                      /* >= 3 */
        bool set_fsize;
        struct rlimit fsize;
        volatile int err;               /* written by the child on failure */
};

/* PATH search the way execvp does it, without the /bin/sh fallback for
 * files lacking a #! line: workers are binaries or scripts with one. */
__attribute__((no_sanitize("address")))
static int child_exec(const struct spawn_args *a)
{
        char buf[PATH_MAX];
        bool eacces = false;
        int err = ENOENT;

        if (strchr(a->file, '/')) {
                execve(a->file, a->argv, a->envp);
                return errno;
        }
        size_t flen = strlen(a->file);
        const char *p = a->path;
        for (;;) {
                const char *colon = strchr(p, ':');
                size_t dlen = colon ? (size_t)(colon - p) : strlen(p);
                size_t off = 0;
                if (dlen + 1 + flen + 1 <= sizeof(buf)) {
                        if (dlen == 0) {
                                buf[off++] = '.';
                        } else {
                                memcpy(buf, p, dlen);
                                off = dlen;
                        }
                        buf[off++] = '/';
                        memcpy(buf + off, a->file, flen + 1);
                        execve(buf, a->argv, a->envp);
                        err = errno;
                        switch (err) {
                        case EACCES:
                                eacces = true;
                                break;
                        case ENOENT:
                        case ENOTDIR:
                        case ESTALE:
                        case ENODEV:
                        case ETIMEDOUT:
                                break;
                        default:
                                return err;
                        }
                }
                if (!colon)
                        break;
                p = colon + 1;
        }
        return eacces ? EACCES : err;
}

/* Runs in the child on the spawn stack, sharing the daemon's memory: only
 * system calls, and every signal is blocked until the dispositions are
 * back to default, so no daemon handler can run here. */
__attribute__((no_sanitize("address")))
static int child_main(void *arg)
{
        struct spawn_args *a = arg;
        struct sigaction sa;
        sigset_t none;

        memset(&sa, 0, sizeof(sa));
        for (int sig = 1; sig < NSIG; sig++) {
                if (sig == SIGKILL || sig == SIGSTOP)
                        continue;
                sa.sa_handler = sig == SIGXFSZ ? SIG_IGN : SIG_DFL;
                if (sigaction(sig, &sa, NULL) == 0)
                        continue;
                /* glibc refuses its reserved signals (32, 33), yet an
                 * ignored disposition inherited from whoever started the
                 * daemon would survive exec: reset them with the raw call
                 * (generic kernel layout: handler, flags, restorer, mask). */
                struct { void (*h)(int); unsigned long flags; void (*restorer)(void); unsigned long mask; }
                        ks = { SIG_DFL, 0, NULL, 0 };
                (void)syscall(SYS_rt_sigaction, sig, &ks, NULL, sizeof(ks.mask));
        }
        if (setpgid(0, 0) < 0)
                goto fail;
        if (chdir(a->workdir) < 0)
                goto fail;
        if (dup2(a->devnull, 0) < 0 || dup2(a->logfd, 1) < 0 || dup2(a->logfd, 2) < 0)
                goto fail;
        /* Every daemon fd is O_CLOEXEC already; this also covers fds that a
         * library opened without it. Marking is cheaper than closing. */
        if (close_range(3, ~0u, CLOSE_RANGE_CLOEXEC) < 0)
                (void)close_range(3, ~0u, 0);
        if (a->set_fsize && setrlimit(RLIMIT_FSIZE, &a->fsize) < 0)
                goto fail;
        sigemptyset(&none);
        if (sigprocmask(SIG_SETMASK, &none, NULL) < 0)
                goto fail;
        a->err = child_exec(a);
        _exit(127);
fail:
        a->err = errno;
        _exit(127);
}

static int fd_above_stdio(int fd)
{
        if (fd < 0 || fd > 2)
                return fd;
        int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        int r = nfd < 0 ? -errno : nfd;
        close(fd);
        return r;
}

static bool env_overridden(const char *entry, const char *const *extra)
{
        const char *eq = strchr(entry, '=');
        size_t klen = eq ? (size_t)(eq - entry) : strlen(entry);

        for (size_t k = 0; extra && extra[k]; k++)
                if (strncmp(extra[k], entry, klen) == 0 && extra[k][klen] == '=')
                        return true;
        return false;
}

/* The daemon's environment with spec->env on top (same key: spec wins).
 * Pointers are borrowed; the caller frees only the array. */
static int build_env(const char *const *extra, char ***ret)
{
        size_t ne = 0, nx = 0, n = 0;
        char **envp;

        for (size_t k = 0; extra && extra[k]; k++) {
                const char *eq = strchr(extra[k], '=');
                if (!eq || eq == extra[k])
                        return -EINVAL;
                nx++;
        }
        while (environ && environ[ne])
                ne++;
        envp = malloc((ne + nx + 1) * sizeof(*envp));
        if (!envp)
                return -ENOMEM;
        for (size_t k = 0; k < ne; k++)
                if (!env_overridden(environ[k], extra))
                        envp[n++] = environ[k];
        for (size_t k = 0; k < nx; k++)
                envp[n++] = (char *)extra[k];
        envp[n] = NULL;
        *ret = envp;
        return 0;
}

static const char *env_path(char *const *envp)
{
        for (size_t k = 0; envp[k]; k++)
                if (strncmp(envp[k], "PATH=", 5) == 0)
                        return envp[k] + 5;
        return "/usr/local/bin:/usr/bin:/bin";
}

/* Starts the child; returns its pid, or -errno when nothing runs (a child
 * that failed before or at execve has been reaped). */
static pid_t spawn(struct local *lc, const struct provider_spec *spec, char *const *envp)
{
        struct spawn_args a = {
                .file = spec->argv[0],
                .argv = (char *const *)spec->argv,
                .envp = envp,
                .path = env_path(envp),
                .workdir = spec->workdir,
                .devnull = lc->devnull,
                .err = 0,
        };
        sigset_t all, old;
        pid_t pid;
        int fd, r;

        if (spec->log_max > 0) {
                struct rlimit cur;
                if (getrlimit(RLIMIT_FSIZE, &cur) < 0)
                        return -errno;
                a.set_fsize = true;
                a.fsize.rlim_max = cur.rlim_max;
                a.fsize.rlim_cur = (rlim_t)spec->log_max;
                if (cur.rlim_max != RLIM_INFINITY && a.fsize.rlim_cur > cur.rlim_max)
                        a.fsize.rlim_cur = cur.rlim_max;
        }

        /* A new worker starts a new log; O_APPEND keeps concurrent writes
         * of stdout and stderr (and of the worker's children) whole. */
        fd = open(spec->log_path,
                  O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        if (fchmod(fd, 0600) < 0) {
                r = -errno;
                close(fd);
                return r;
        }
        fd = fd_above_stdio(fd);
        if (fd < 0)
                return fd;
        a.logfd = fd;

        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        pid = clone(child_main, (char *)lc->stack + SPAWN_STACK_SIZE,
                    CLONE_VM | CLONE_VFORK | SIGCHLD, &a);
        r = pid < 0 ? -errno : 0;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        close(fd);
        if (r < 0)
                return r;
        if (a.err) {
                while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                        ;
                return -a.err;
        }
        return pid;
}

/* Kills a child that never became an instance and reaps it. */
static void discard_child(pid_t pid)
{
        kill(-pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
}

/* ---- events ------------------------------------------------------------- */

static void emit_started(struct local_inst *i)
{
        struct provider_event ev = {
                .type = PROVIDER_EV_STARTED,
                .instance = i->name,
                .ref = i->ref,
                .exit_code = -1,
        };

        i->cb(i->ud, &ev);
}

/* The worker is gone: kill what it left in its group, forget it, report.
 * The instance is unlinked before the callback so the callback may create
 * a new instance under the same name. */
static void finish(struct local_inst *i, int wstatus)
{
        struct local *lc = i->lc;
        struct provider_event ev = {
                .type = PROVIDER_EV_EXITED,
                .instance = i->name,
                .ref = i->ref,
                .exit_code = -1,
                .signal = 0,
        };

        if (i->kill_timer) {
                loop_timer_cancel(lc->loop, i->kill_timer);
                i->kill_timer = NULL;
        }
        /* Stragglers: anything still in the worker's group. The group id
         * cannot be recycled while a member lives. */
        if (i->pgid == i->pid && i->pid > 1)
                kill(-i->pgid, SIGKILL);
        inst_unlink(lc, i);

        if (wstatus != -1) {
                if (WIFEXITED(wstatus)) {
                        ev.exit_code = WEXITSTATUS(wstatus);
                } else if (WIFSIGNALED(wstatus)) {
                        ev.signal = WTERMSIG(wstatus);
                }
        }
        i->cb(i->ud, &ev);
        inst_free(i);
}

static void on_exit_cb(struct loop *l, pid_t pid, int wstatus, void *ud)
{
        struct local_inst *i = ud;

        if (i->start_timer) {
                loop_timer_cancel(l, i->start_timer);
                i->start_timer = NULL;
                emit_started(i);
        }
        finish(i, wstatus);
}

static void on_start_timer(struct loop *l, void *ud)
{
        struct local_inst *i = ud;

        i->start_timer = NULL;
        emit_started(i);
        if (i->exited_early)
                finish(i, i->early_status);
}

static void on_kill_timer(struct loop *l, void *ud)
{
        struct local_inst *i = ud;

        i->kill_timer = NULL;
        kill(i->pgid == i->pid ? -i->pid : i->pid, SIGKILL);
}

/* ---- operations ---------------------------------------------------------- */

static int local_init(struct provider *p, struct loop *loop)
{
        struct local *lc = calloc(1, sizeof(*lc));
        int r;

        if (!lc)
                return -ENOMEM;
        lc->loop = loop;
        lc->devnull = -1;
        lc->nbuckets = 64;
        lc->buckets = calloc(lc->nbuckets, sizeof(*lc->buckets));
        if (!lc->buckets) {
                r = -ENOMEM;
                goto err;
        }
        lc->devnull = fd_above_stdio(open("/dev/null", O_RDONLY | O_CLOEXEC));
        if (lc->devnull < 0) {
                r = lc->devnull == -1 ? -errno : lc->devnull;
                goto err;
        }
        lc->stack = mmap(NULL, SPAWN_STACK_SIZE, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        if (lc->stack == MAP_FAILED) {
                lc->stack = NULL;
                r = -errno;
                goto err;
        }
        /* Guard page: an overflow faults instead of scribbling on the heap. */
        if (mprotect(lc->stack, (size_t)sysconf(_SC_PAGESIZE), PROT_NONE) < 0) {
                r = -errno;
                goto err;
        }
        p->ctx = lc;
        return 0;
err:
        if (lc->stack)
                munmap(lc->stack, SPAWN_STACK_SIZE);
        if (lc->devnull >= 0)
                close(lc->devnull);
        free(lc->buckets);
        free(lc);
        return r;
}

/* Forgets every instance without touching the workers: they keep running
 * and a later run adopts them. Pending list() calls are dropped. */
static void local_done(struct provider *p)
{
        struct local *lc = p->ctx;

        if (!lc)
                return;
        for (size_t k = 0; k < lc->nbuckets; k++) {
                struct local_inst *i = lc->buckets[k], *next;
                for (; i; i = next) {
                        next = i->hnext;
                        loop_timer_cancel(lc->loop, i->start_timer);
                        loop_timer_cancel(lc->loop, i->kill_timer);
                        if (!i->exited_early)
                                loop_exit_unwatch(lc->loop, i->pid);
                        inst_free(i);
                }
        }
        while (lc->lists) {
                struct list_req *q = lc->lists;
                lc->lists = q->next;
                loop_timer_cancel(lc->loop, q->timer);
                free(q->prefix);
                free(q);
        }
        munmap(lc->stack, SPAWN_STACK_SIZE);
        close(lc->devnull);
        free(lc->buckets);
        free(lc);
        p->ctx = NULL;
}

/* Exec failures (missing binary, no permission, bad workdir) are known
 * before create() returns, so they come back as its -errno and no FAILED
 * event is ever sent. STARTED is delivered from the loop, never from
 * inside create(). */
static int local_create(struct provider *p, const struct provider_spec *spec,
                        provider_event_cb cb, void *ud)
{
        struct local *lc = p->ctx;
        struct local_inst *i = NULL;
        char **envp = NULL;
        unsigned long long start;
        pid_t pid, pgrp;
        char state;
        int r, st;

        if (!spec || !cb || !spec->instance || !*spec->instance || !spec->argv ||
            !spec->argv[0] || !*spec->argv[0] || !spec->workdir || !spec->log_path)
                return -EINVAL;
        if (inst_find(lc, spec->instance))
                return -EEXIST;
        if (p->max_instances > 0 && lc->n >= (size_t)p->max_instances)
                return -EAGAIN;
        r = build_env(spec->env, &envp);
        if (r < 0)
                return r;
        i = inst_new(lc, spec->instance, cb, ud);
        if (!i) {
                r = -ENOMEM;
                goto out;
        }
        /* Allocated before the spawn so nothing can fail once it runs
         * except the exit watch itself. */
        i->start_timer = loop_timer_add(lc->loop, 0, on_start_timer, i);
        if (!i->start_timer) {
                r = -ENOMEM;
                goto out;
        }

        pid = spawn(lc, spec, envp);
        if (pid < 0) {
                r = pid;
                goto out;
        }
        loop_update_time(lc->loop);
        /* The child exists at least as a zombie until someone reaps it, and
         * only the loop below or this function reap, so this cannot fail
         * for a vanished pid. */
        r = read_stat(pid, &state, &pgrp, &start);
        if (r < 0) {
                discard_child(pid);
                goto out;
        }
        snprintf(i->ref, sizeof(i->ref), "%d:%llu", (int)pid, start);
        i->pid = pid;
        i->pgid = pid;

        /* A quick worker may be gone already; reaping it here keeps its
         * status inside this instance instead of a loop-owned record. */
        if (waitpid(pid, &st, WNOHANG) == pid) {
                i->exited_early = true;
                i->early_status = st;
        } else {
                r = loop_exit_watch(lc->loop, pid, true, on_exit_cb, i);
                if (r < 0) {
                        discard_child(pid);
                        goto out;
                }
        }
        inst_insert(lc, i);
        i = NULL;
        r = 0;
out:
        if (i) {
                loop_timer_cancel(lc->loop, i->start_timer);
                inst_free(i);
        }
        free(envp);
        return r;
}

static int local_stop(struct provider *p, const char *instance, int64_t grace_ms)
{
        struct local *lc = p->ctx;
        struct local_inst *i;
        pid_t target;

        if (!instance)
                return -EINVAL;
        i = inst_find(lc, instance);
        if (!i)
                return -ENOENT;
        if (i->exited_early)
                return 0;               /* EXITED is already queued */
        target = i->pgid == i->pid ? -i->pid : i->pid;
        /* ESRCH: already dead and not yet reported; EXITED still follows. */
        if (grace_ms <= 0) {
                loop_timer_cancel(lc->loop, i->kill_timer);
                i->kill_timer = NULL;
                if (kill(target, SIGKILL) < 0 && errno != ESRCH)
                        return -errno;
                return 0;
        }
        if (kill(target, SIGTERM) < 0 && errno != ESRCH)
                return -errno;
        int64_t deadline = loop_now_ms(lc->loop) + grace_ms;
        if (i->kill_timer && i->kill_deadline <= deadline)
                return 0;
        struct loop_timer *t = loop_timer_add(lc->loop, grace_ms, on_kill_timer, i);
        if (!t)
                return -ENOMEM;
        loop_timer_cancel(lc->loop, i->kill_timer);
        i->kill_timer = t;
        i->kill_deadline = deadline;
        return 0;
}

/* Finds the worker of an instance whose reference was never saved (the
 * daemon died between spawning it and writing the row) by the
 * FORGESCALE_INSTANCE=<name> entry every worker gets in its environment.
 * Only processes of our own user are readable, which is all we need. */
static int find_by_env(const char *instance, char *ref, size_t n)
{
        char want[300], path[64];
        DIR *d;
        struct dirent *de;
        int r = -ESRCH;

        if (snprintf(want, sizeof(want), "FORGESCALE_INSTANCE=%s", instance) >= (int)sizeof(want))
                return -ENAMETOOLONG;
        d = opendir("/proc");
        if (!d)
                return -errno;
        while ((de = readdir(d)) && r == -ESRCH) {
                char *end, buf[65536];
                long pid = strtol(de->d_name, &end, 10);
                if (*end || pid <= 0 || pid == getpid())
                        continue;
                snprintf(path, sizeof(path), "/proc/%ld/environ", pid);
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        continue;
                ssize_t len = read(fd, buf, sizeof(buf) - 1);
                close(fd);
                if (len <= 0)
                        continue;
                buf[len] = '\0';
                for (char *e = buf; e < buf + len; e += strlen(e) + 1) {
                        if (strcmp(e, want) != 0)
                                continue;
                        char state;
                        pid_t pgrp;
                        unsigned long long start;
                        /* The worker leads its own process group; a child
                         * of it (a job step) inherits the variable too. */
                        if (read_stat((pid_t)pid, &state, &pgrp, &start) == 0 && pgrp == (pid_t)pid &&
                            state != 'Z' && state != 'X') {
                                snprintf(ref, n, "%ld:%llu", pid, start);
                                r = 0;
                        }
                        break;
                }
        }
        closedir(d);
        return r;
}

static int local_adopt(struct provider *p, const char *instance, const char *ref,
                       provider_event_cb cb, void *ud)
{
        struct local *lc = p->ctx;
        char found[REF_MAX];
        struct local_inst *i;
        unsigned long long want, start;
        pid_t pid, pgrp;
        char state;
        int r;

        if (!instance || !*instance || !cb || !ref)
                return -EINVAL;
        if (!*ref) {
                r = find_by_env(instance, found, sizeof(found));
                if (r < 0)
                        return r;
                ref = found;
        }
        r = parse_ref(ref, &pid, &want);
        if (r < 0)
                return r;
        if (inst_find(lc, instance))
                return -EEXIST;
        r = read_stat(pid, &state, &pgrp, &start);
        if (r < 0)
                return r;
        if (start != want || state == 'Z' || state == 'X')
                return -ESRCH;

        i = inst_new(lc, instance, cb, ud);
        if (!i)
                return -ENOMEM;
        snprintf(i->ref, sizeof(i->ref), "%d:%llu", (int)pid, start);
        i->pid = pid;
        i->pgid = pgrp;
        r = loop_exit_watch(lc->loop, pid, false, on_exit_cb, i);
        if (r < 0)
                goto err;
        /* The pid might have been recycled between the check and the
         * pidfd: the watched process is ours only if it still matches. */
        r = read_stat(pid, &state, &pgrp, &start);
        if (r < 0 || start != want) {
                loop_exit_unwatch(lc->loop, pid);
                r = -ESRCH;
                goto err;
        }
        inst_insert(lc, i);
        return 0;
err:
        inst_free(i);
        return r;
}

static void on_list_timer(struct loop *l, void *ud)
{
        struct list_req *q = ud;
        struct local *lc = q->lc;
        struct provider_listing *items = NULL;
        size_t n = 0, plen = q->prefix ? strlen(q->prefix) : 0;
        int err = 0;

        if (q->prev)
                q->prev->next = q->next;
        else
                lc->lists = q->next;
        if (q->next)
                q->next->prev = q->prev;

        if (lc->n) {
                items = calloc(lc->n, sizeof(*items));
                if (!items)
                        err = -ENOMEM;
        }
        for (size_t k = 0; items && k < lc->nbuckets; k++) {
                for (struct local_inst *i = lc->buckets[k]; i; i = i->hnext) {
                        if (plen && strncmp(i->name, q->prefix, plen) != 0)
                                continue;
                        items[n++] = (struct provider_listing){
                                .instance = i->name, .ref = i->ref, .running = true,
                        };
                }
        }
        provider_list_cb cb = q->cb;
        void *cud = q->ud;
        free(q->prefix);
        free(q);
        cb(cud, err, err ? NULL : items, err ? 0 : n);
        free(items);
}

/* Reports, from the loop, the instances this provider tracks now (every
 * one of them is running: exited ones are forgotten when reported). The
 * listing's strings are valid during the callback only. */
static int local_list(struct provider *p, const char *prefix, provider_list_cb cb, void *ud)
{
        struct local *lc = p->ctx;
        struct list_req *q;

        if (!cb)
                return -EINVAL;
        q = calloc(1, sizeof(*q));
        if (!q)
                return -ENOMEM;
        if (prefix && *prefix) {
                q->prefix = strdup(prefix);
                if (!q->prefix) {
                        free(q);
                        return -ENOMEM;
                }
        }
        q->lc = lc;
        q->cb = cb;
        q->ud = ud;
        q->timer = loop_timer_add(lc->loop, 0, on_list_timer, q);
        if (!q->timer) {
                free(q->prefix);
                free(q);
                return -ENOMEM;
        }
        q->next = lc->lists;
        if (q->next)
                q->next->prev = q;
        lc->lists = q;
        return 0;
}

static const char *local_ref(struct provider *p, const char *instance)
{
        struct local_inst *i = inst_find(p->ctx, instance);

        return i && i->ref[0] ? i->ref : NULL;
}

const struct provider_ops provider_local_ops = {
        .type = "local",
        .caps = PROVIDER_CAP_ADOPT | PROVIDER_CAP_LIST,
        .init = local_init,
        .done = local_done,
        .create = local_create,
        .stop = local_stop,
        .adopt = local_adopt,
        .list = local_list,
        .ref = local_ref,
        .cleanup = NULL,
};
