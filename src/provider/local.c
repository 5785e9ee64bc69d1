/* local.c: the `local` provider: workers are processes on this machine.
 * Owns spawning (clone with a shared address space, like vfork), each
 * worker's environment (spec->env plus a short allow-list, nothing else of
 * the daemon's), its account (`user`/`group`), its token file, process
 * group and size-capped log, SIGTERM-then-SIGKILL stops, "pid:starttime"
 * references, the /proc scan behind list() and adoption by name. Never
 * reads worker output, never sets PR_SET_PDEATHSIG (workers outlive the
 * daemon so they can be adopted), never logs. */
#include "provider/provider.h"
#include "util/hash.h"
#include "config/config.h"
#include "loop/loop.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
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
 * are not affected).
 *
 * Why the worker's environment is built from scratch: the daemon's own
 * environment carries its secrets (a forge token through token_env, proxy
 * credentials) and every job step would inherit them. A worker gets
 * spec->env, FORGESCALE_INSTANCE (the marker list() and adoption by name
 * look for, placed first so a scan reads only the start of environ) and
 * PATH, HOME, LANG and TZ: the daemon's, or with `user` the account's own
 * home and a standard PATH.
 *
 * Why credentials are switched with raw system calls: glibc's setuid()
 * family, in a process that has threads (libcurl's resolver), signals every
 * thread so they all switch; in a child sharing the daemon's memory that
 * would reach into the daemon's threads. The raw calls change only the
 * calling task, which is the child. */

#define SPAWN_STACK_SIZE (256u * 1024u)
#define STAT_MAX 1024
#define REF_MAX 48
#define ENVIRON_SCAN_MAX (64u * 1024u)  /* of /proc/PID/environ, per process */
#define MARK_KEY "FORGESCALE_INSTANCE"
#define TOKEN_NAME "token"
/* The worker account's PATH: what login(1) gives a non-root account. */
#define ACCOUNT_PATH "/usr/local/bin:/usr/bin:/bin"

#ifdef SYS_setresuid32                  /* 32-bit ABIs: the 32-bit id calls */
#define NR_SETGROUPS SYS_setgroups32
#define NR_SETRESGID SYS_setresgid32
#define NR_SETRESUID SYS_setresuid32
#else
#define NR_SETGROUPS SYS_setgroups
#define NR_SETRESGID SYS_setresgid
#define NR_SETRESUID SYS_setresuid
#endif

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

/* The workers' account. Without `user` and `group` it is the daemon's and
 * nothing is switched; uid still tells which processes a scan may claim. */
struct account {
        bool switch_creds;              /* the child changes uid/gid/groups */
        uid_t uid;
        gid_t gid;
        gid_t *groups;                  /* supplementary groups, owned */
        size_t ngroups;
        char *user;                     /* name for messages, or NULL */
        char *home_env;                 /* "HOME=<home>", or NULL: the daemon's */
};

struct local {
        struct loop *loop;
        int devnull;
        void *stack;                    /* clone child stack, reused */
        struct local_inst **buckets;    /* chained hash on the name */
        size_t nbuckets;
        size_t n;
        struct list_req *lists;         /* pending list() calls */
        struct account acct;
};

/* ---- instance table ---------------------------------------------------- */

static uint64_t name_hash(const char *s)
{
        return hash_str(s, 0);
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

/* ---- the workers' account -------------------------------------------------- */

static bool parse_id(const char *s, unsigned long long *ret)
{
        char *end;
        unsigned long long v;

        if (*s < '0' || *s > '9')
                return false;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || *end || v >= (unsigned long long)(uid_t)-1)
                return false;
        *ret = v;
        return true;
}

/* getpwnam_r() reports "no such entry" as 0 with a NULL result and asks for
 * a larger buffer with ERANGE. A name of digits that is no account name is
 * taken as a uid. *buf is the caller's, reused and freed by it. */
static int lookup_user(const char *name, struct passwd *pw, char **buf)
{
        for (size_t n = 1024; n <= (1u << 20); n *= 2) {
                struct passwd *res = NULL;
                unsigned long long id;
                char *b = realloc(*buf, n);
                int e;

                if (!b)
                        return -ENOMEM;
                *buf = b;
                e = getpwnam_r(name, pw, b, n, &res);
                if (e == 0 && !res && parse_id(name, &id))
                        e = getpwuid_r((uid_t)id, pw, b, n, &res);
                if (e == ERANGE)
                        continue;
                if (e)
                        return -e;
                return res ? 0 : -ENOENT;
        }
        return -ERANGE;
}

static int lookup_group(const char *name, struct group *gr, char **buf)
{
        for (size_t n = 1024; n <= (1u << 20); n *= 2) {
                struct group *res = NULL;
                unsigned long long id;
                char *b = realloc(*buf, n);
                int e;

                if (!b)
                        return -ENOMEM;
                *buf = b;
                e = getgrnam_r(name, gr, b, n, &res);
                if (e == 0 && !res && parse_id(name, &id))
                        e = getgrgid_r((gid_t)id, gr, b, n, &res);
                if (e == ERANGE)
                        continue;
                if (e)
                        return -e;
                return res ? 0 : -ENOENT;
        }
        return -ERANGE;
}

static void account_done(struct account *a)
{
        free(a->groups);
        free(a->user);
        free(a->home_env);
        memset(a, 0, sizeof(*a));
}

/* Resolves `user` and `group` once, at init: the child cannot call NSS.
 * The groups are the user's (as login(1) would set them) or, with only a
 * group, that group alone. */
static int account_init(struct account *a, const char *user, const char *group,
                        char *err, size_t errn)
{
        struct passwd pw;
        struct group gr;
        char *buf = NULL;
        int r = 0;

        memset(a, 0, sizeof(*a));
        a->uid = geteuid();
        a->gid = getegid();
        if (user && !*user)
                user = NULL;
        if (group && !*group)
                group = NULL;
        if (!user && !group)
                return 0;
        if (user) {
                r = lookup_user(user, &pw, &buf);
                if (r < 0) {
                        snprintf(err, errn, r == -ENOENT ? "user '%s' does not exist"
                                                        : "cannot look up user '%s'", user);
                        goto out;
                }
                a->uid = pw.pw_uid;
                a->gid = pw.pw_gid;
                a->user = strdup(pw.pw_name);
                if (!a->user || asprintf(&a->home_env, "HOME=%s", pw.pw_dir) < 0) {
                        a->home_env = NULL;
                        r = -ENOMEM;
                        goto out;
                }
        }
        if (group) {
                r = lookup_group(group, &gr, &buf);
                if (r < 0) {
                        snprintf(err, errn, r == -ENOENT ? "group '%s' does not exist"
                                                        : "cannot look up group '%s'", group);
                        goto out;
                }
                a->gid = gr.gr_gid;
        }
        if (a->user) {
                int n = 16;
                for (;;) {
                        gid_t *g = realloc(a->groups, (size_t)n * sizeof(*g));
                        int want = n;
                        if (!g) {
                                r = -ENOMEM;
                                goto out;
                        }
                        a->groups = g;
                        if (getgrouplist(a->user, a->gid, a->groups, &want) >= 0) {
                                a->ngroups = (size_t)want;
                                break;
                        }
                        if (want <= n || want > 65536) {
                                snprintf(err, errn, "cannot list the groups of user '%s'", a->user);
                                r = -EINVAL;
                                goto out;
                        }
                        n = want;
                }
        } else {
                a->groups = malloc(sizeof(*a->groups));
                if (!a->groups) {
                        r = -ENOMEM;
                        goto out;
                }
                a->groups[0] = a->gid;
                a->ngroups = 1;
        }
        /* Naming the daemon's own account changes nothing, and must not
         * need privileges the daemon lacks. */
        a->switch_creds = a->uid != geteuid() || a->gid != getegid();
        r = 0;
out:
        free(buf);
        if (r < 0)
                account_done(a);
        return r;
}

/* ---- spawning ------------------------------------------------------------ */

enum spawn_step {
        STEP_SETUP = 1,                 /* process group, stdio, limits */
        STEP_CREDS,                     /* setgroups/setresgid/setresuid */
        STEP_CHDIR,
        STEP_EXEC,
};

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
        const struct account *acct;
        volatile int step;              /* written by the child */
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
 * back to default, so no daemon handler can run here. The folder is
 * entered after the switch to the worker's account, so a worker that could
 * not reach its folder (nor its token by path) fails here, at create(). */
__attribute__((no_sanitize("address")))
static int child_main(void *arg)
{
        struct spawn_args *a = arg;
        const struct account *acct = a->acct;
        struct sigaction sa;
        sigset_t none;

        a->step = STEP_SETUP;
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
        if (dup2(a->devnull, 0) < 0 || dup2(a->logfd, 1) < 0 || dup2(a->logfd, 2) < 0)
                goto fail;
        /* Every daemon fd is O_CLOEXEC already; this also covers fds that a
         * library opened without it. Marking is cheaper than closing. */
        if (close_range(3, ~0u, CLOSE_RANGE_CLOEXEC) < 0)
                (void)close_range(3, ~0u, 0);
        if (a->set_fsize && setrlimit(RLIMIT_FSIZE, &a->fsize) < 0)
                goto fail;
        if (acct->switch_creds) {
                a->step = STEP_CREDS;
                /* Groups first: after setresuid the right to change them is gone. */
                if (syscall(NR_SETGROUPS, acct->ngroups, acct->groups) < 0 ||
                    syscall(NR_SETRESGID, acct->gid, acct->gid, acct->gid) < 0 ||
                    syscall(NR_SETRESUID, acct->uid, acct->uid, acct->uid) < 0)
                        goto fail;
        }
        a->step = STEP_CHDIR;
        if (chdir(a->workdir) < 0)
                goto fail;
        a->step = STEP_SETUP;
        sigemptyset(&none);
        if (sigprocmask(SIG_SETMASK, &none, NULL) < 0)
                goto fail;
        a->step = STEP_EXEC;
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

static bool has_key(const char *entry, const char *key, size_t klen)
{
        return strncmp(entry, key, klen) == 0 && entry[klen] == '=';
}

static bool env_has_key(const char *const *env, const char *key, size_t klen)
{
        for (size_t k = 0; env && env[k]; k++)
                if (has_key(env[k], key, klen))
                        return true;
        return false;
}

/* The worker's whole environment (see the top of the file): the marker,
 * spec->env, then the allow-list entries spec->env does not set. Pointers
 * are borrowed except *ret_own, which the caller frees with the array. */
static int build_env(const struct local *lc, const struct provider_spec *spec,
                     char ***ret, char **ret_own)
{
        static const char *const allow[] = { "PATH", "HOME", "LANG", "TZ" };
        const size_t nallow = sizeof(allow) / sizeof(allow[0]);
        const size_t mklen = sizeof(MARK_KEY) - 1;
        const struct account *acct = &lc->acct;
        char **envp, *mark;
        size_t nx = 0, n = 0;

        for (size_t k = 0; spec->env && spec->env[k]; k++) {
                const char *eq = strchr(spec->env[k], '=');
                if (!eq || eq == spec->env[k])
                        return -EINVAL;
                nx++;
        }
        if (asprintf(&mark, MARK_KEY "=%s", spec->instance) < 0)
                return -ENOMEM;
        envp = malloc((1 + nx + nallow + 1) * sizeof(*envp));
        if (!envp) {
                free(mark);
                return -ENOMEM;
        }
        envp[n++] = mark;
        for (size_t k = 0; k < nx; k++)
                if (!has_key(spec->env[k], MARK_KEY, mklen))
                        envp[n++] = (char *)spec->env[k];
        for (size_t k = 0; k < nallow; k++) {
                size_t klen = strlen(allow[k]);
                const char *v = NULL;
                if (env_has_key(spec->env, allow[k], klen))
                        continue;
                if (acct->home_env && strcmp(allow[k], "HOME") == 0)
                        v = acct->home_env;
                else if (acct->user && strcmp(allow[k], "PATH") == 0)
                        v = "PATH=" ACCOUNT_PATH;
                else
                        for (size_t e = 0; environ && environ[e] && !v; e++)
                                if (has_key(environ[e], allow[k], klen))
                                        v = environ[e];
                if (v)
                        envp[n++] = (char *)v;
        }
        envp[n] = NULL;
        *ret = envp;
        *ret_own = mark;
        return 0;
}

static const char *env_path(char *const *envp)
{
        for (size_t k = 0; envp[k]; k++)
                if (strncmp(envp[k], "PATH=", 5) == 0)
                        return envp[k] + 5;
        return "/usr/local/bin:/usr/bin:/bin";
}

__attribute__((format(printf, 2, 3)))
static void set_error(struct provider *p, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(p->error, sizeof(p->error), fmt, ap);
        va_end(ap);
}

static const char *who(const struct account *a)
{
        return a->user ? a->user : "the daemon's user";
}

/* Explains a child failure in terms an operator can act on. */
static void explain_spawn(struct provider *p, const struct provider_spec *spec,
                          int step, int err)
{
        const struct account *a = &((struct local *)p->ctx)->acct;

        switch (step) {
        case STEP_CREDS:
                set_error(p, "cannot run workers as %s (uid %u, gid %u)%s", who(a),
                          (unsigned)a->uid, (unsigned)a->gid,
                          err == EPERM ? ": the daemon needs root, or CAP_SETUID and CAP_SETGID" : "");
                break;
        case STEP_CHDIR:
                if (err == EACCES && a->switch_creds)
                        set_error(p, "%s cannot reach the instance folder %s: every folder above it "
                                  "must be searchable (x) by that account", who(a), spec->workdir);
                else
                        set_error(p, "cannot enter the instance folder %s", spec->workdir);
                break;
        case STEP_EXEC:
                set_error(p, "cannot run '%s'%s", spec->argv[0],
                          err == ENOENT && !strchr(spec->argv[0], '/') ? " (not found in the worker's PATH)" : "");
                break;
        default:
                set_error(p, "cannot set up the worker process");
                break;
        }
}

/* Starts the child; returns its pid, or -errno when nothing runs (a child
 * that failed before or at execve has been reaped). */
static pid_t spawn(struct provider *p, const struct provider_spec *spec, char *const *envp)
{
        struct local *lc = p->ctx;
        struct spawn_args a = {
                .file = spec->argv[0],
                .argv = (char *const *)spec->argv,
                .envp = envp,
                .path = env_path(envp),
                .workdir = spec->workdir,
                .devnull = lc->devnull,
                .acct = &lc->acct,
                .step = 0,
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

        /* A new worker starts a new log, in a new file: whatever a previous
         * worker (maybe another account) left under that name is never
         * opened. O_APPEND keeps concurrent writes of stdout and stderr
         * (and of the worker's children) whole. */
        if (unlink(spec->log_path) < 0 && errno != ENOENT) {
                r = -errno;
                set_error(p, "cannot replace the worker log %s", spec->log_path);
                return r;
        }
        fd = open(spec->log_path,
                  O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) {
                r = -errno;
                set_error(p, "cannot create the worker log %s", spec->log_path);
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
                explain_spawn(p, spec, a.step, a.err);
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

/* ---- the instance folder and the token ---------------------------------- */

static int write_all(int fd, const char *p, size_t n)
{
        while (n) {
                ssize_t w = write(fd, p, n);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w < 0)
                        return -errno;
                p += w;
                n -= (size_t)w;
        }
        return 0;
}

/* Hands the folder to the worker's account and writes the token in it as a
 * new 0600 file of that account. The folder may hold whatever an earlier
 * worker of that account left, so nothing existing is opened or followed:
 * the old name is unlinked and the file created with O_EXCL. */
static int place_token(struct provider *p, const struct provider_spec *spec, int dirfd)
{
        const struct account *a = &((struct local *)p->ctx)->acct;
        int fd, r;

        if (a->uid != geteuid() && fchown(dirfd, a->uid, a->gid) < 0) {
                r = -errno;
                set_error(p, "cannot give the instance folder %s to %s%s", spec->workdir, who(a),
                          r == -EPERM ? ": the daemon needs root, or CAP_CHOWN" : "");
                return r;
        }
        if (!spec->token)
                return 0;
        if (unlinkat(dirfd, TOKEN_NAME, 0) < 0 && errno != ENOENT) {
                r = -errno;
                set_error(p, "cannot replace the token file in %s", spec->workdir);
                return r;
        }
        fd = openat(dirfd, TOKEN_NAME, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) {
                r = -errno;
                set_error(p, "cannot create the token file in %s", spec->workdir);
                return r;
        }
        r = 0;
        if (a->switch_creds && fchown(fd, a->uid, a->gid) < 0)
                r = -errno;
        if (r == 0)
                r = write_all(fd, spec->token, spec->token_len);
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r < 0) {
                set_error(p, "cannot write the token file in %s", spec->workdir);
                unlinkat(dirfd, TOKEN_NAME, 0);
        }
        return r;
}

/* ---- events ------------------------------------------------------------- */

static void emit_started(struct local_inst *i)
{
        struct provider_event ev = {
                .type = PROVIDER_EV_STARTED,
                .instance = i->name,
                .ref = i->ref,
        };

        i->cb(i->ud, &ev);
}

/* -1 is the loop's "not our child, status unknowable". */
static struct provider_exit exit_from_status(int wstatus)
{
        struct provider_exit e = { .kind = PROVIDER_EXIT_UNKNOWN };

        if (wstatus != -1 && WIFEXITED(wstatus)) {
                e.kind = PROVIDER_EXIT_CODE;
                e.code = WEXITSTATUS(wstatus);
        } else if (wstatus != -1 && WIFSIGNALED(wstatus)) {
                e.kind = PROVIDER_EXIT_SIGNAL;
                e.signal = WTERMSIG(wstatus);
        }
        return e;
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
                .exit = exit_from_status(wstatus),
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

/* ---- finding workers in /proc ---------------------------------------------- */

/* A worker found by its marker: the oldest process claiming a name wins,
 * since a job step that made itself a group leader inherits the marker
 * too, but only after the worker started. */
struct found {
        char *name;
        pid_t pid;
        unsigned long long start;
};

struct found_set {
        struct found *v;
        size_t n, cap;
};

static void found_set_done(struct found_set *s)
{
        for (size_t k = 0; k < s->n; k++)
                free(s->v[k].name);
        free(s->v);
        memset(s, 0, sizeof(*s));
}

static int found_add(struct found_set *s, const char *name, size_t len, pid_t pid,
                     unsigned long long start)
{
        for (size_t k = 0; k < s->n; k++) {
                if (strlen(s->v[k].name) == len && memcmp(s->v[k].name, name, len) == 0) {
                        if (start < s->v[k].start) {
                                s->v[k].pid = pid;
                                s->v[k].start = start;
                        }
                        return 0;
                }
        }
        if (s->n == s->cap) {
                size_t cap = s->cap ? s->cap * 2 : 16;
                struct found *v = realloc(s->v, cap * sizeof(*v));
                if (!v)
                        return -ENOMEM;
                s->v = v;
                s->cap = cap;
        }
        s->v[s->n].name = strndup(name, len);
        if (!s->v[s->n].name)
                return -ENOMEM;
        s->v[s->n].pid = pid;
        s->v[s->n].start = start;
        s->n++;
        return 0;
}

/* The real uid on the "Uid:" line of /proc/PID/status. */
static int proc_uid(pid_t pid, uid_t *ret)
{
        char path[64], buf[STAT_MAX * 2];
        ssize_t n;
        int fd;

        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
                return n < 0 ? -errno : -EINVAL;
        buf[n] = '\0';
        char *s = strstr(buf, "\nUid:");
        if (!s)
                return -EINVAL;
        s += 5;
        char *end;
        errno = 0;
        unsigned long long u = strtoull(s, &end, 10);
        if (errno || end == s)
                return -EINVAL;
        *ret = (uid_t)u;
        return 0;
}

/* Reads the start of /proc/PID/environ into buf[cap] (NUL-terminated). */
static ssize_t read_environ(pid_t pid, char *buf, size_t cap)
{
        char path[64];
        size_t len = 0;
        int fd;

        snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        while (len < cap - 1) {
                ssize_t n = read(fd, buf + len, cap - 1 - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                len += (size_t)n;
        }
        close(fd);
        buf[len] = '\0';
        return (ssize_t)len;
}

/* Collects the live workers of this provider's account whose marker is
 * exactly `exact` (when set) or starts with `prefix` (NULL or "": any):
 * processes leading their own group (as every worker does) whose
 * environment carries the marker. Only the account's processes count, so
 * a job of another account cannot pose as a worker. */
static int scan_workers(const struct local *lc, const char *prefix, const char *exact,
                        struct found_set *out)
{
        static const char mark[] = MARK_KEY "=";
        size_t plen = prefix ? strlen(prefix) : 0, elen = exact ? strlen(exact) : 0;
        char *buf = NULL;
        struct dirent *de;
        DIR *d;
        int r = 0;

        d = opendir("/proc");
        if (!d)
                return -errno;
        buf = malloc(ENVIRON_SCAN_MAX);
        if (!buf) {
                closedir(d);
                return -ENOMEM;
        }
        while (r == 0 && (de = readdir(d))) {
                char *end, state;
                pid_t pgrp;
                unsigned long long start;
                uid_t uid;
                long pid = strtol(de->d_name, &end, 10);

                if (*end || pid <= 0 || pid > INT_MAX || pid == getpid())
                        continue;
                if (read_stat((pid_t)pid, &state, &pgrp, &start) < 0 || pgrp != (pid_t)pid ||
                    state == 'Z' || state == 'X')
                        continue;
                ssize_t len = read_environ((pid_t)pid, buf, ENVIRON_SCAN_MAX);
                for (char *e = buf; len > 0 && e < buf + len; e += strlen(e) + 1) {
                        if (strncmp(e, mark, sizeof(mark) - 1) != 0)
                                continue;
                        const char *name = e + sizeof(mark) - 1;
                        size_t nlen = strlen(name);
                        bool match = exact ? nlen == elen && memcmp(name, exact, elen) == 0
                                           : nlen >= plen && strncmp(name, prefix ? prefix : "", plen) == 0;
                        if (match && nlen && proc_uid((pid_t)pid, &uid) == 0 && uid == lc->acct.uid)
                                r = found_add(out, name, nlen, (pid_t)pid, start);
                        break;
                }
        }
        free(buf);
        closedir(d);
        return r;
}

/* ---- operations ---------------------------------------------------------- */

static int local_init(struct provider *p, struct loop *loop, const struct config_provider *cfg)
{
        struct local *lc = calloc(1, sizeof(*lc));
        int r;

        provider_init_common(p, cfg);
        p->ctx = NULL;
        if (!lc)
                return -ENOMEM;
        lc->loop = loop;
        lc->devnull = -1;
        r = account_init(&lc->acct, cfg ? cfg->local.user : NULL, cfg ? cfg->local.group : NULL,
                         p->error, sizeof(p->error));
        if (r < 0)
                goto err;
        p->other_account = lc->acct.switch_creds;
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
        account_done(&lc->acct);
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
        account_done(&lc->acct);
        free(lc->buckets);
        free(lc);
        p->ctx = NULL;
}

/* The worker reads the token where it was placed: the instance folder is
 * on this machine and the worker sees the daemon's paths. */
static int local_token_path(struct provider *p, const char *instance, const char *workdir,
                            char *buf, size_t n)
{
        if (!workdir || !*workdir || !buf || n == 0)
                return -EINVAL;
        int len = snprintf(buf, n, "%s/" TOKEN_NAME, workdir);
        if (len < 0 || (size_t)len >= n)
                return -ENAMETOOLONG;
        return 0;
}

/* Exec failures (missing binary, no permission, bad workdir, an account
 * the daemon cannot switch to) are known before create() returns, so they
 * come back as its -errno, with nothing left behind, and no FAILED event
 * is ever sent. STARTED is delivered from the loop, never from inside
 * create(). */
static int local_create(struct provider *p, const struct provider_spec *spec,
                        provider_event_cb cb, void *ud)
{
        struct local *lc = p->ctx;
        struct local_inst *i = NULL;
        char **envp = NULL, *env_own = NULL;
        unsigned long long start;
        bool token_placed = false;
        pid_t pid, pgrp;
        char state;
        int r, st, dirfd = -1;

        p->error[0] = '\0';
        if (!spec || !cb || !spec->instance || !*spec->instance || !spec->argv ||
            !spec->argv[0] || !*spec->argv[0] || !spec->workdir || !spec->log_path)
                return -EINVAL;
        if (inst_find(lc, spec->instance))
                return -EEXIST;
        if (p->max_instances > 0 && lc->n >= (size_t)p->max_instances)
                return -EAGAIN;
        r = build_env(lc, spec, &envp, &env_own);
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
        dirfd = open(spec->workdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dirfd < 0) {
                r = -errno;
                set_error(p, "cannot open the instance folder %s", spec->workdir);
                goto out;
        }
        r = place_token(p, spec, dirfd);
        if (r < 0)
                goto out;
        token_placed = spec->token != NULL;

        pid = spawn(p, spec, envp);
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
        token_placed = false;
        r = 0;
out:
        if (token_placed)
                unlinkat(dirfd, TOKEN_NAME, 0);
        if (dirfd >= 0)
                close(dirfd);
        if (i) {
                loop_timer_cancel(lc->loop, i->start_timer);
                inst_free(i);
        }
        free(envp);
        free(env_own);
        return r;
}

static int local_stop(struct provider *p, const char *instance)
{
        struct local *lc = p->ctx;
        int64_t grace_ms = p->stop_grace_ms > 0 ? p->stop_grace_ms : PROVIDER_STOP_GRACE_DEFAULT_MS;
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
 * daemon died between spawning it and writing the row) by its marker. */
static int find_by_name(const struct local *lc, const char *instance, char *ref, size_t n)
{
        struct found_set s = { 0 };
        int r = scan_workers(lc, NULL, instance, &s);

        if (r == 0 && s.n == 0)
                r = -ESRCH;
        if (r == 0)
                snprintf(ref, n, "%d:%llu", (int)s.v[0].pid, s.v[0].start);
        found_set_done(&s);
        return r;
}

static int local_adopt(struct provider *p, const char *instance, const char *ref,
                       const char *log_path, size_t log_max, provider_event_cb cb, void *ud)
{
        struct local *lc = p->ctx;
        char found[REF_MAX];
        struct local_inst *i;
        unsigned long long want, start;
        pid_t pid, pgrp;
        char state;
        int r;

        p->error[0] = '\0';
        if (!instance || !*instance || !cb || !ref)
                return -EINVAL;
        if (inst_find(lc, instance))
                return -EEXIST;
        if (!*ref) {
                r = find_by_name(lc, instance, found, sizeof(found));
                if (r < 0)
                        return r;
                ref = found;
        }
        r = parse_ref(ref, &pid, &want);
        if (r < 0)
                return r;
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

/* Tracked instances first (an exited one whose EXITED is still queued is
 * not running), then workers only /proc knows: started by an earlier run
 * and not adopted by this one. */
static void on_list_timer(struct loop *l, void *ud)
{
        struct list_req *q = ud;
        struct local *lc = q->lc;
        struct provider_listing *items = NULL;
        struct found_set s = { 0 };
        char (*refs)[REF_MAX] = NULL;
        size_t n = 0, plen = q->prefix ? strlen(q->prefix) : 0;
        int err;

        if (q->prev)
                q->prev->next = q->next;
        else
                lc->lists = q->next;
        if (q->next)
                q->next->prev = q->prev;

        err = scan_workers(lc, q->prefix, NULL, &s);
        if (err == 0) {
                items = calloc(lc->n + s.n + 1, sizeof(*items));
                refs = calloc(s.n + 1, sizeof(*refs));
                if (!items || !refs)
                        err = -ENOMEM;
        }
        for (size_t k = 0; err == 0 && k < lc->nbuckets; k++) {
                for (struct local_inst *i = lc->buckets[k]; i; i = i->hnext) {
                        if (plen && strncmp(i->name, q->prefix, plen) != 0)
                                continue;
                        items[n++] = (struct provider_listing){
                                .instance = i->name, .ref = i->ref, .running = !i->exited_early,
                        };
                }
        }
        for (size_t k = 0; err == 0 && k < s.n; k++) {
                if (inst_find(lc, s.v[k].name))
                        continue;
                snprintf(refs[k], sizeof(refs[k]), "%d:%llu", (int)s.v[k].pid, s.v[k].start);
                items[n++] = (struct provider_listing){
                        .instance = s.v[k].name, .ref = refs[k], .running = true,
                };
        }
        provider_list_cb cb = q->cb;
        void *cud = q->ud;
        free(q->prefix);
        free(q);
        cb(cud, err, err ? NULL : items, err ? 0 : n);
        free(items);
        free(refs);
        found_set_done(&s);
}

/* Reports, from the loop, this provider's workers: those it tracks and
 * those of its account that carry the marker (see scan_workers()). */
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

/* The token file is the only thing a local worker leaves that the
 * provider placed; the folder and the log are the core's. */
static int local_cleanup(struct provider *p, const char *instance, const char *ref,
                         const char *workdir)
{
        char path[PATH_MAX];
        int r;

        if (!instance || !*instance)
                return -EINVAL;
        if (inst_find(p->ctx, instance))
                return -EBUSY;
        r = local_token_path(p, instance, workdir, path, sizeof(path));
        if (r < 0)
                return r;
        if (unlink(path) < 0 && errno != ENOENT && errno != ENOTDIR)
                return -errno;
        return 0;
}

const struct provider_ops provider_local_ops = {
        .type = "local",
        .caps = PROVIDER_CAP_ADOPT | PROVIDER_CAP_LIST,
        .init = local_init,
        .done = local_done,
        .token_path = local_token_path,
        .create = local_create,
        .stop = local_stop,
        .adopt = local_adopt,
        .list = local_list,
        .ref = local_ref,
        .cleanup = local_cleanup,
};
