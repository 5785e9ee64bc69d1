/* child.h: the server children of a test binary (forgejo-sim, kube-fake):
 * started with stdin on /dev/null and stdout into a file the harness
 * reads, dying with the test process (PR_SET_PDEATHSIG) and recorded so an
 * atexit hook and SIGTERM/SIGINT/SIGHUP kill them; their "listening on"
 * line awaited; stopped with SIGTERM, then SIGKILL. Never asserts. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

struct child {
        const char *name;       /* for messages, e.g. "forgejo-sim" */
        pid_t pid;              /* 0 once reaped */
        bool died;              /* reaped before child_stop() asked it to end */
        int out_fd;             /* its stdout (a file; -1 when none) */
};

/* Forks and execs argv[0]'s exe with argv, stdout into c->out_fd. 0 or
 * -errno; c->pid is set on success. */
int child_start(struct child *c, const char *exe, const char *const *argv);

/* Waits for "<prefix><port>\n" in its stdout: the port, -ECHILD when it
 * exited first, -ETIMEDOUT. */
int child_wait_port(struct child *c, const char *prefix, long timeout_ms);

/* Reaps it when it has ended (saying how on stderr). */
bool child_alive(struct child *c);

/* SIGTERM, SIGKILL after grace_s. 0 when it ended on SIGTERM (or exit 0),
 * -ESRCH when it had died before, -ETIMEDOUT when it needed SIGKILL,
 * -EPROTO on another end. */
int child_stop(struct child *c, double grace_s);

double child_now_s(void);
void child_sleep_ms(long ms);
