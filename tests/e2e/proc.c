/* proc.c: see proc.h. The registry is a fixed array: the tests start a
 * handful of processes, never more than PROC_MAX at once. */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROC_MAX 32

static struct proc *registry[PROC_MAX];
static bool atexit_done;

long long proc_now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void reg_add(struct proc *p)
{
        for (size_t i = 0; i < PROC_MAX; i++)
                if (!registry[i]) {
                        registry[i] = p;
                        return;
                }
}

static void reg_del(struct proc *p)
{
        for (size_t i = 0; i < PROC_MAX; i++)
                if (registry[i] == p)
                        registry[i] = NULL;
}

void proc_kill_all(void)
{
        for (size_t i = 0; i < PROC_MAX; i++)
                if (registry[i])
                        proc_stop(registry[i], 3000);
}

int proc_spawn(struct proc *p, char *const argv[], const char *cwd,
               const char *stderr_path, bool capture_stdout)
{
        int out[2] = { -1, -1 }, errfd = -1;
        pid_t parent = getpid(), pid;

        memset(p, 0, sizeof(*p));
        p->out_fd = -1;
        if (!atexit_done) {
                atexit(proc_kill_all);
                atexit_done = true;
        }
        if (stderr_path) {
                errfd = open(stderr_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
                if (errfd < 0)
                        return -errno;
        }
        if (capture_stdout && pipe2(out, O_CLOEXEC) < 0) {
                int r = -errno;
                if (errfd >= 0)
                        close(errfd);
                return r;
        }
        fflush(NULL);
        pid = fork();
        if (pid < 0) {
                int r = -errno;
                if (errfd >= 0)
                        close(errfd);
                if (out[0] >= 0) {
                        close(out[0]);
                        close(out[1]);
                }
                return r;
        }
        if (pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() != parent)
                        _exit(127);
                if (out[1] >= 0)
                        dup2(out[1], 1);
                else if (errfd >= 0)
                        dup2(errfd, 1);
                if (errfd >= 0)
                        dup2(errfd, 2);
                int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (devnull >= 0)
                        dup2(devnull, 0);
                if (cwd && chdir(cwd) < 0)
                        _exit(126);
                execv(argv[0], argv);
                dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
                _exit(127);
        }
        if (errfd >= 0)
                close(errfd);
        if (out[1] >= 0)
                close(out[1]);
        p->pid = pid;
        p->out_fd = out[0];
        reg_add(p);
        return 0;
}

int proc_read_line(struct proc *p, char *buf, size_t n, long timeout_ms)
{
        long long end = proc_now_ms() + timeout_ms;
        size_t o = 0;

        if (p->out_fd < 0 || n == 0)
                return -EBADF;
        for (;;) {
                long long left = end - proc_now_ms();
                struct pollfd pfd = { .fd = p->out_fd, .events = POLLIN };
                char c;

                if (left <= 0)
                        return -ETIMEDOUT;
                int r = poll(&pfd, 1, (int)left);
                if (r < 0 && errno != EINTR)
                        return -errno;
                if (r <= 0)
                        continue;
                ssize_t k = read(p->out_fd, &c, 1);
                if (k == 0)
                        return -EPIPE;
                if (k < 0) {
                        if (errno == EINTR || errno == EAGAIN)
                                continue;
                        return -errno;
                }
                if (c == '\n') {
                        buf[o] = '\0';
                        return 0;
                }
                if (o + 1 < n)
                        buf[o++] = c;
        }
}

int proc_wait(struct proc *p, long timeout_ms)
{
        long long end = proc_now_ms() + timeout_ms;

        if (p->exited)
                return 0;
        for (;;) {
                pid_t w = waitpid(p->pid, &p->status, WNOHANG);
                if (w == p->pid || (w < 0 && errno == ECHILD)) {
                        p->exited = true;
                        p->pid = 0;
                        if (p->out_fd >= 0) {
                                close(p->out_fd);
                                p->out_fd = -1;
                        }
                        reg_del(p);
                        return 0;
                }
                if (proc_now_ms() >= end)
                        return -ETIMEDOUT;
                struct timespec ts = { 0, 20 * 1000000L };
                nanosleep(&ts, NULL);
        }
}

void proc_signal(struct proc *p, int sig)
{
        if (!p->exited && p->pid > 0)
                kill(p->pid, sig);
}

void proc_stop(struct proc *p, long grace_ms)
{
        if (p->exited || p->pid <= 0) {
                reg_del(p);
                return;
        }
        kill(p->pid, SIGTERM);
        if (proc_wait(p, grace_ms) == 0)
                return;
        kill(p->pid, SIGKILL);
        (void)proc_wait(p, 5000);
}
