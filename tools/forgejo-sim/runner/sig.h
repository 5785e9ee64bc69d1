/* sig.h: signal handling of forgejo-sim-runner. SIGINT, SIGTERM and SIGCHLD
 * stay blocked except while the process waits in sig_poll(), so a signal can
 * never be lost between a flag check and a wait. Handlers only set flags. */
#pragma once

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>

/* Blocks the signals and installs the flag handlers; SIGPIPE is ignored. */
int sig_setup(void);

/* ppoll() with the signals unblocked. timeout_ms < 0 waits forever.
 * Returns the number of ready fds, 0 on timeout or signal, or -errno. */
int sig_poll(struct pollfd *fds, nfds_t n, int64_t timeout_ms);

/* Sleeps up to ms; returns early (false) when a new SIGINT/SIGTERM arrives. */
bool sig_sleep(int64_t ms);

/* How many SIGINT/SIGTERM arrived so far. */
unsigned sig_term_count(void);

/* Consumes the SIGCHLD flag: true if a child changed state since last call. */
bool sig_child_take(void);

/* In a forked child before exec: default dispositions, and the original
 * mask minus the three signals, so a step can always be terminated. */
void sig_child_reset(void);

/* Monotonic clock in milliseconds. */
int64_t sig_now_ms(void);
