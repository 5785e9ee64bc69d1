/* child.c: see child.h. Owns the table of live children of the test
 * binary and the hooks that kill them when it ends. */
#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CHILDREN 32

static pid_t children[MAX_CHILDREN];
static bool hooks_installed;

static void kill_children(void)
{
        for (size_t i = 0; i < MAX_CHILDREN; i++) {
                if (children[i] > 0) {
                        kill(children[i], SIGKILL);
                        waitpid(children[i], NULL, 0);
                        children[i] = 0;
                }
        }
}

static void on_fatal_signal(int sig)
{
        /* Only async-signal-safe calls: kill() and then re-raise. */
        for (size_t i = 0; i < MAX_CHILDREN; i++)
                if (children[i] > 0)
                        kill(children[i], SIGKILL);
        signal(sig, SIG_DFL);
        raise(sig);
}

static void install_hooks(void)
{
        if (hooks_installed)
                return;
        hooks_installed = true;
        atexit(kill_children);
        /* SIGTERM/SIGINT come from the test runner's timeout or a user;
         * the crash signals are handled by cmocka while a test runs. */
        signal(SIGTERM, on_fatal_signal);
        signal(SIGINT, on_fatal_signal);
        signal(SIGHUP, on_fatal_signal);
}

static void track(pid_t pid)
{
        for (size_t i = 0; i < MAX_CHILDREN; i++) {
                if (children[i] == 0) {
                        children[i] = pid;
                        return;
                }
        }
}

static void untrack(pid_t pid)
{
        for (size_t i = 0; i < MAX_CHILDREN; i++)
                if (children[i] == pid)
                        children[i] = 0;
}

double child_now_s(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void child_sleep_ms(long ms)
{
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

int child_start(struct child *c, const char *exe, const char *const *argv)
{
        install_hooks();
        pid_t parent = getpid();
        pid_t pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                /* Die with the test process, whatever kills it. */
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                        _exit(127);
                int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(c->out_fd, 1) < 0)
                        _exit(127);
                signal(SIGTERM, SIG_DFL);
                signal(SIGINT, SIG_DFL);
                signal(SIGHUP, SIG_DFL);
                execv(exe, (char *const *)argv);
                _exit(127);
        }
        c->pid = pid;
        c->died = false;
        track(pid);
        return 0;
}

/* The port of the listening line in the captured stdout; 0 while the line
 * is not complete yet. */
static int scan_port(int fd, const char *prefix)
{
        char buf[4096];
        ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

        if (n <= 0)
                return 0;
        buf[n] = '\0';
        const char *p = strstr(buf, prefix);
        if (!p)
                return 0;
        p += strlen(prefix);
        char *end;
        errno = 0;
        long port = strtol(p, &end, 10);
        if (errno || end == p || (*end != '\n' && *end != '\r') || port <= 0 || port > 65535)
                return 0;
        return (int)port;
}

int child_wait_port(struct child *c, const char *prefix, long timeout_ms)
{
        double deadline = child_now_s() + (double)timeout_ms / 1000.0;

        for (;;) {
                int port = scan_port(c->out_fd, prefix);
                if (port > 0)
                        return port;
                if (!child_alive(c))
                        return -ECHILD;
                if (child_now_s() > deadline)
                        return -ETIMEDOUT;
                child_sleep_ms(5);
        }
}

bool child_alive(struct child *c)
{
        int st;

        if (!c || c->pid <= 0)
                return false;
        pid_t w = waitpid(c->pid, &st, WNOHANG);
        if (w == 0)
                return true;
        if (w == c->pid) {
                if (WIFSIGNALED(st))
                        fprintf(stderr, "%s (pid %d) died with signal %d\n", c->name, (int)c->pid,
                                WTERMSIG(st));
                else
                        fprintf(stderr, "%s (pid %d) exited with status %d\n", c->name, (int)c->pid,
                                WEXITSTATUS(st));
        }
        untrack(c->pid);
        c->pid = 0;
        c->died = true;
        return false;
}

int child_stop(struct child *c, double grace_s)
{
        int r = 0, st = 0;

        if (c->died || (c->pid > 0 && !child_alive(c)))
                return -ESRCH;
        if (c->pid <= 0)
                return 0;
        kill(c->pid, SIGTERM);
        double deadline = child_now_s() + grace_s;
        pid_t w;
        while ((w = waitpid(c->pid, &st, WNOHANG)) == 0 && child_now_s() < deadline)
                child_sleep_ms(5);
        if (w == 0) {
                fprintf(stderr, "%s (pid %d) ignored SIGTERM for %.0f s; killing\n", c->name, (int)c->pid,
                        grace_s);
                kill(c->pid, SIGKILL);
                waitpid(c->pid, &st, 0);
                r = -ETIMEDOUT;
        } else if (w == c->pid && !(WIFEXITED(st) && WEXITSTATUS(st) == 0) &&
                   !(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM)) {
                fprintf(stderr, "%s ended badly after SIGTERM (status 0x%x)\n", c->name, st);
                r = -EPROTO;
        }
        untrack(c->pid);
        c->pid = 0;
        return r;
}
