/* sig.c: see sig.h. The only file that installs signal handlers; the
 * handlers touch nothing but sig_atomic_t flags. */
#include "sig.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t term_count;
static volatile sig_atomic_t child_flag;
static sigset_t orig_mask;
static sigset_t wait_mask;

static void on_term(int signo)
{
        (void)signo;
        if (term_count < 1000)
                term_count++;
}

static void on_child(int signo)
{
        (void)signo;
        child_flag = 1;
}

int sig_setup(void)
{
        struct sigaction sa;
        sigset_t block;

        sigemptyset(&block);
        sigaddset(&block, SIGINT);
        sigaddset(&block, SIGTERM);
        sigaddset(&block, SIGCHLD);
        if (sigprocmask(SIG_BLOCK, &block, &orig_mask) < 0)
                return -errno;
        /* Unblock them while waiting even if our parent left them blocked. */
        wait_mask = orig_mask;
        sigdelset(&wait_mask, SIGINT);
        sigdelset(&wait_mask, SIGTERM);
        sigdelset(&wait_mask, SIGCHLD);

        memset(&sa, 0, sizeof(sa));
        sigemptyset(&sa.sa_mask);
        sa.sa_handler = on_term;
        if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0)
                return -errno;
        sa.sa_handler = on_child;
        sa.sa_flags = SA_NOCLDSTOP;
        if (sigaction(SIGCHLD, &sa, NULL) < 0)
                return -errno;
        sa.sa_handler = SIG_IGN;
        sa.sa_flags = 0;
        if (sigaction(SIGPIPE, &sa, NULL) < 0)
                return -errno;
        return 0;
}

int sig_poll(struct pollfd *fds, nfds_t n, int64_t timeout_ms)
{
        struct timespec ts, *tsp = NULL;
        int r;

        if (timeout_ms >= 0) {
                ts.tv_sec = (time_t)(timeout_ms / 1000);
                ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
                tsp = &ts;
        }
        r = ppoll(fds, n, tsp, &wait_mask);
        if (r < 0)
                return errno == EINTR ? 0 : -errno;
        return r;
}

bool sig_sleep(int64_t ms)
{
        int64_t end = sig_now_ms() + ms;
        sig_atomic_t seen = term_count;

        for (;;) {
                if (term_count != seen)
                        return false;
                int64_t left = end - sig_now_ms();
                if (left <= 0)
                        return true;
                (void)sig_poll(NULL, 0, left);
        }
}

unsigned sig_term_count(void)
{
        return (unsigned)term_count;
}

bool sig_child_take(void)
{
        bool v = child_flag != 0;

        child_flag = 0;
        return v;
}

void sig_child_reset(void)
{
        struct sigaction sa;

        memset(&sa, 0, sizeof(sa));
        sigemptyset(&sa.sa_mask);
        sa.sa_handler = SIG_DFL;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGCHLD, &sa, NULL);
        sigaction(SIGPIPE, &sa, NULL);
        sigprocmask(SIG_SETMASK, &wait_mask, NULL);
}

int64_t sig_now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
