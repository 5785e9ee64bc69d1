/* loop.h: the daemon's single-threaded event loop (epoll).
 * Owns fd watchers, one-shot timers (min-heap, stable order), signals
 * (signalfd) and process-exit watchers (SIGCHLD for our children, pidfd for
 * processes adopted after a restart). Never blocks except in epoll_wait.
 *
 * Iteration order: (1) cache monotonic now, (2) run due timers in deadline
 * order (ties in creation order), (3) epoll_wait until the next deadline,
 * (4) dispatch ready fds (signals and child exits arrive as fds too).
 * Callbacks may add or cancel timers and watchers, including their own. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define LOOP_READ  0x1u
#define LOOP_WRITE 0x2u

struct loop;
struct loop_timer;

typedef void (*loop_io_cb)(struct loop *l, int fd, unsigned events, void *ud);
typedef void (*loop_timer_cb)(struct loop *l, void *ud);
typedef void (*loop_signal_cb)(struct loop *l, int signo, void *ud);
/* wstatus is a waitpid() status for our children; for adopted processes
 * (not our children) the status is unknowable and reported as -1. */
typedef void (*loop_exit_cb)(struct loop *l, pid_t pid, int wstatus, void *ud);

/* Returns 0 or -errno. */
int loop_new(struct loop **ret);
/* Closes every fd the loop owns (not the watched ones); accepts NULL. */
void loop_free(struct loop *l);

/* Monotonic milliseconds, cached once per iteration. */
int64_t loop_now_ms(struct loop *l);
/* Refreshes the cached time (for code that just blocked, e.g. fork). */
void loop_update_time(struct loop *l);

/* Watch fd for LOOP_READ/LOOP_WRITE; one watcher per fd. */
int loop_io_add(struct loop *l, int fd, unsigned events, loop_io_cb cb, void *ud);
int loop_io_mod(struct loop *l, int fd, unsigned events);
/* Safe to call from any callback, including this fd's. */
int loop_io_del(struct loop *l, int fd);

/* One-shot timer after delay_ms (>= 0). Returns NULL only on OOM. The timer
 * is freed after it fires or when cancelled; the handle is invalid then. */
struct loop_timer *loop_timer_add(struct loop *l, int64_t delay_ms, loop_timer_cb cb, void *ud);
/* Accepts NULL. Must not be called on a timer that already fired. */
void loop_timer_cancel(struct loop *l, struct loop_timer *t);
size_t loop_timer_count(struct loop *l);

/* Blocks signo for the process and delivers it through the loop. */
int loop_signal_add(struct loop *l, int signo, loop_signal_cb cb, void *ud);

/* Calls cb once when process pid exits. For our own children the loop reaps
 * them (waitpid) and passes the status. For other processes (adopted after a
 * restart) it uses a pidfd and passes -1. Returns -ESRCH when pid is gone. */
int loop_exit_watch(struct loop *l, pid_t pid, bool own_child, loop_exit_cb cb, void *ud);
/* Stops watching; the child is still reaped when it exits. */
void loop_exit_unwatch(struct loop *l, pid_t pid);

/* Runs until loop_stop(); returns 0 or -errno from epoll. */
int loop_run(struct loop *l);
/* Runs one iteration waiting at most max_wait_ms (-1 = until an event). */
int loop_run_once(struct loop *l, int64_t max_wait_ms);
void loop_stop(struct loop *l);
bool loop_stopped(struct loop *l);
