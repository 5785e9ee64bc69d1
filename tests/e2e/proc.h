/* proc.h: child processes for the end-to-end tests. Every child is
 * registered so that proc_kill_all() (also run at exit) ends it: SIGTERM,
 * then SIGKILL after a grace period. Children die with the test process
 * (PR_SET_PDEATHSIG) even when it is killed. Never asserts. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct proc {
        pid_t pid;              /* 0 once reaped */
        int out_fd;             /* read end of the child's stdout, or -1 */
        int status;             /* waitpid status once reaped */
        bool exited;
};

/* Starts argv[0] (a path) with cwd (NULL = ours); stderr goes to
 * stderr_path (appended; NULL = ours); stdout is captured in out_fd when
 * capture_stdout, else it goes to stderr_path too. Returns 0 or -errno. */
int proc_spawn(struct proc *p, char *const argv[], const char *cwd,
               const char *stderr_path, bool capture_stdout);

/* Reads one line of the child's stdout (without '\n') within timeout_ms.
 * Returns 0, -ETIMEDOUT, -EPIPE (end of file) or -errno. */
int proc_read_line(struct proc *p, char *buf, size_t n, long timeout_ms);

/* Waits up to timeout_ms for the child to exit. Returns 0 (status in
 * p->status) or -ETIMEDOUT. */
int proc_wait(struct proc *p, long timeout_ms);

/* Sends sig to the child (no-op once reaped). */
void proc_signal(struct proc *p, int sig);

/* SIGTERM, up to grace_ms, then SIGKILL; reaps. */
void proc_stop(struct proc *p, long grace_ms);

/* Stops every child still running. Safe to call repeatedly. */
void proc_kill_all(void);

/* Monotonic milliseconds. */
long long proc_now_ms(void);
