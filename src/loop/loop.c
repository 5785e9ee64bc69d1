/* loop.c: epoll event loop with a timer min-heap, signalfd signals and
 * process-exit watchers. See loop.h for the iteration order.
 * Never allocates on the dispatch path except when callbacks add watchers;
 * never calls a callback for a watcher removed earlier in the same pass. */
#include "loop/loop.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

enum watch_kind { W_IO = 1, W_SIGNAL, W_PIDFD };

struct watch {
        enum watch_kind kind;
        int fd;
        unsigned events;
        loop_io_cb cb;
        void *ud;
        bool dead;
        struct watch *next_dead;
};

struct loop_timer {
        int64_t deadline;
        uint64_t seq;
        size_t idx;               /* position in the heap */
        loop_timer_cb cb;
        void *ud;
};

struct sigh {
        int signo;
        loop_signal_cb cb;
        void *ud;
};

struct exitw {
        pid_t pid;
        bool own_child;
        int pidfd;                /* -1 for own children */
        loop_exit_cb cb;
        void *ud;
        bool active;
};

struct loop {
        int epfd;
        int64_t now;
        bool stop;

        /* fd → watch, dense table indexed by fd. */
        struct watch **fds;
        size_t nfds;
        struct watch *dead;       /* freed after the dispatch pass */

        struct loop_timer **heap;
        size_t nheap, capheap;
        uint64_t seq;

        int sigfd;
        sigset_t sigmask;
        struct sigh sigs[16];
        size_t nsigs;

        struct late_exit *late;   /* exits reaped before their watcher */

        /* Exit watchers: open-addressing hash keyed by pid. */
        struct exitw *ex;
        size_t exn, excap;
        bool sigchld_owned;
};

static int64_t mono_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t loop_now_ms(struct loop *l)
{
        return l->now;
}

void loop_update_time(struct loop *l)
{
        l->now = mono_ms();
}

int loop_new(struct loop **ret)
{
        struct loop *l = calloc(1, sizeof(*l));

        if (!l)
                return -ENOMEM;
        l->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (l->epfd < 0) {
                int r = -errno;
                free(l);
                return r;
        }
        l->sigfd = -1;
        sigemptyset(&l->sigmask);
        l->now = mono_ms();
        *ret = l;
        return 0;
}

/* ---- fd watchers ------------------------------------------------------- */

static struct watch *watch_get(struct loop *l, int fd)
{
        if (fd < 0 || (size_t)fd >= l->nfds)
                return NULL;
        return l->fds[fd];
}

static uint32_t to_epoll(unsigned ev)
{
        return ((ev & LOOP_READ) ? EPOLLIN : 0u) | ((ev & LOOP_WRITE) ? EPOLLOUT : 0u);
}

static int watch_add(struct loop *l, int fd, enum watch_kind kind, unsigned events,
                     loop_io_cb cb, void *ud)
{
        struct epoll_event ee = { .events = to_epoll(events), .data.fd = fd };
        struct watch *w;

        if (fd < 0)
                return -EBADF;
        if ((size_t)fd >= l->nfds) {
                size_t n = l->nfds ? l->nfds : 64;
                while (n <= (size_t)fd)
                        n *= 2;
                struct watch **t = realloc(l->fds, n * sizeof(*t));
                if (!t)
                        return -ENOMEM;
                memset(t + l->nfds, 0, (n - l->nfds) * sizeof(*t));
                l->fds = t;
                l->nfds = n;
        }
        if (l->fds[fd])
                return -EEXIST;
        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        *w = (struct watch){ .kind = kind, .fd = fd, .events = events, .cb = cb, .ud = ud };
        if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ee) < 0) {
                int r = -errno;
                free(w);
                return r;
        }
        l->fds[fd] = w;
        return 0;
}

int loop_io_add(struct loop *l, int fd, unsigned events, loop_io_cb cb, void *ud)
{
        return watch_add(l, fd, W_IO, events, cb, ud);
}

int loop_io_mod(struct loop *l, int fd, unsigned events)
{
        struct watch *w = watch_get(l, fd);
        struct epoll_event ee = { .events = to_epoll(events), .data.fd = fd };

        if (!w)
                return -ENOENT;
        if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ee) < 0)
                return -errno;
        w->events = events;
        return 0;
}

int loop_io_del(struct loop *l, int fd)
{
        struct watch *w = watch_get(l, fd);

        if (!w)
                return -ENOENT;
        /* The fd may already be closed by the caller; EBADF is fine then. */
        epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
        l->fds[fd] = NULL;
        w->dead = true;
        w->next_dead = l->dead;
        l->dead = w;
        return 0;
}

/* ---- timers (binary min-heap on (deadline, seq)) ------------------------ */

static bool t_less(const struct loop_timer *a, const struct loop_timer *b)
{
        return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static void t_swap(struct loop *l, size_t i, size_t j)
{
        struct loop_timer *t = l->heap[i];

        l->heap[i] = l->heap[j];
        l->heap[j] = t;
        l->heap[i]->idx = i;
        l->heap[j]->idx = j;
}

static void t_up(struct loop *l, size_t i)
{
        while (i > 0) {
                size_t p = (i - 1) / 2;
                if (!t_less(l->heap[i], l->heap[p]))
                        break;
                t_swap(l, i, p);
                i = p;
        }
}

static void t_down(struct loop *l, size_t i)
{
        for (;;) {
                size_t a = 2 * i + 1, b = a + 1, m = i;
                if (a < l->nheap && t_less(l->heap[a], l->heap[m]))
                        m = a;
                if (b < l->nheap && t_less(l->heap[b], l->heap[m]))
                        m = b;
                if (m == i)
                        break;
                t_swap(l, i, m);
                i = m;
        }
}

static void t_remove(struct loop *l, size_t i)
{
        l->nheap--;
        if (i != l->nheap) {
                l->heap[i] = l->heap[l->nheap];
                l->heap[i]->idx = i;
                t_down(l, i);
                t_up(l, i);
        }
}

struct loop_timer *loop_timer_add(struct loop *l, int64_t delay_ms, loop_timer_cb cb, void *ud)
{
        struct loop_timer *t;

        if (l->nheap == l->capheap) {
                size_t n = l->capheap ? l->capheap * 2 : 64;
                struct loop_timer **h = realloc(l->heap, n * sizeof(*h));
                if (!h)
                        return NULL;
                l->heap = h;
                l->capheap = n;
        }
        t = malloc(sizeof(*t));
        if (!t)
                return NULL;
        *t = (struct loop_timer){
                .deadline = l->now + (delay_ms > 0 ? delay_ms : 0),
                .seq = l->seq++, .idx = l->nheap, .cb = cb, .ud = ud,
        };
        l->heap[l->nheap++] = t;
        t_up(l, t->idx);
        return t;
}

void loop_timer_cancel(struct loop *l, struct loop_timer *t)
{
        if (!t)
                return;
        t_remove(l, t->idx);
        free(t);
}

size_t loop_timer_count(struct loop *l)
{
        return l->nheap;
}

static void run_timers(struct loop *l)
{
        /* Timers added by callbacks during this pass get a later seq and a
         * deadline >= now; a zero-delay timer added now would run in this
         * same pass, starving I/O, so only run timers that existed before. */
        uint64_t limit = l->seq;

        while (l->nheap && l->heap[0]->deadline <= l->now && l->heap[0]->seq < limit) {
                struct loop_timer *t = l->heap[0];
                t_remove(l, 0);
                loop_timer_cb cb = t->cb;
                void *ud = t->ud;
                free(t);
                cb(l, ud);
        }
}

/* ---- signals ---------------------------------------------------------- */

static void on_chld(struct loop *l);

static void on_sigfd(struct loop *l, int fd, unsigned events, void *ud)
{
        struct signalfd_siginfo si[16];
        ssize_t n;
        bool chld = false;

        while ((n = read(fd, si, sizeof(si))) > 0) {
                for (size_t i = 0; i < (size_t)n / sizeof(si[0]); i++) {
                        int signo = (int)si[i].ssi_signo;
                        if (signo == SIGCHLD) {
                                chld = true;
                                continue;
                        }
                        for (size_t k = 0; k < l->nsigs; k++)
                                if (l->sigs[k].signo == signo && l->sigs[k].cb)
                                        l->sigs[k].cb(l, signo, l->sigs[k].ud);
                }
        }
        if (chld)
                on_chld(l);
}

static int sig_block(struct loop *l, int signo)
{
        sigset_t one;

        sigemptyset(&one);
        sigaddset(&one, signo);
        if (sigprocmask(SIG_BLOCK, &one, NULL) < 0)
                return -errno;
        sigaddset(&l->sigmask, signo);
        if (l->sigfd < 0) {
                l->sigfd = signalfd(-1, &l->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
                if (l->sigfd < 0)
                        return -errno;
                int r = watch_add(l, l->sigfd, W_SIGNAL, LOOP_READ, on_sigfd, NULL);
                if (r < 0) {
                        close(l->sigfd);
                        l->sigfd = -1;
                        return r;
                }
        } else if (signalfd(l->sigfd, &l->sigmask, SFD_NONBLOCK | SFD_CLOEXEC) < 0) {
                return -errno;
        }
        return 0;
}

int loop_signal_add(struct loop *l, int signo, loop_signal_cb cb, void *ud)
{
        if (signo == SIGCHLD)
                return -EINVAL; /* owned by the exit watchers */
        if (l->nsigs == sizeof(l->sigs) / sizeof(l->sigs[0]))
                return -ENOSPC;
        int r = sig_block(l, signo);
        if (r < 0)
                return r;
        l->sigs[l->nsigs++] = (struct sigh){ .signo = signo, .cb = cb, .ud = ud };
        return 0;
}

/* ---- exit watchers ------------------------------------------------------- */

static struct exitw *ex_find(struct loop *l, pid_t pid)
{
        if (!l->excap)
                return NULL;
        for (size_t i = (size_t)pid % l->excap, n = 0; n < l->excap; i = (i + 1) % l->excap, n++) {
                if (l->ex[i].pid == pid && l->ex[i].active)
                        return &l->ex[i];
                if (l->ex[i].pid == 0)
                        return NULL;
        }
        return NULL;
}

static int ex_grow(struct loop *l)
{
        size_t active = 0, ncap = 256;
        struct exitw *old = l->ex, *nw;
        size_t oldcap = l->excap;

        /* Size for the live watchers, not the tombstones, so churn (every
         * worker exit leaves one) does not double the table forever. */
        for (size_t i = 0; i < oldcap; i++)
                active += old[i].active;
        while (ncap < 4 * (active + 1))
                ncap *= 2;
        nw = calloc(ncap, sizeof(*nw));

        if (!nw)
                return -ENOMEM;
        l->ex = nw;
        l->excap = ncap;
        l->exn = 0;
        for (size_t i = 0; i < oldcap; i++) {
                if (!old[i].active)
                        continue;
                size_t j = (size_t)old[i].pid % ncap;
                while (l->ex[j].pid)
                        j = (j + 1) % ncap;
                l->ex[j] = old[i];
                l->exn++;
        }
        free(old);
        return 0;
}

static struct exitw *ex_insert(struct loop *l, pid_t pid)
{
        /* Tombstones (pid set, inactive) count as used; keep load < 1/2. */
        if ((l->exn + 1) * 2 > l->excap && ex_grow(l) < 0)
                return NULL;
        size_t i = (size_t)pid % l->excap;
        while (l->ex[i].pid && l->ex[i].active)
                i = (i + 1) % l->excap;
        if (!l->ex[i].pid)
                l->exn++;
        l->ex[i] = (struct exitw){ .pid = pid, .pidfd = -1, .active = true };
        return &l->ex[i];
}

static void ex_release(struct loop *l, struct exitw *e)
{
        if (e->pidfd >= 0) {
                loop_io_del(l, e->pidfd);
                close(e->pidfd);
                e->pidfd = -1;
        }
        e->active = false;  /* tombstone: keeps probe chains intact */
        e->cb = NULL;
}

static void on_chld(struct loop *l)
{
        int st;
        pid_t pid;

        /* Reap every exited child: the daemon forks only through providers,
         * so every child is either watched or about to be (the watcher is
         * added right after fork, before the loop runs again). */
        while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
                struct exitw *e = ex_find(l, pid);
                if (!e)
                        continue;
                loop_exit_cb cb = e->cb;
                void *ud = e->ud;
                ex_release(l, e);
                if (cb)
                        cb(l, pid, st, ud);
        }
}

static void on_pidfd(struct loop *l, int fd, unsigned events, void *ud)
{
        pid_t pid = (pid_t)(intptr_t)ud;
        struct exitw *e = ex_find(l, pid);

        if (!e || e->pidfd != fd) {
                loop_io_del(l, fd);
                return;
        }
        loop_exit_cb cb = e->cb;
        void *cud = e->ud;
        ex_release(l, e);
        if (cb)
                cb(l, pid, -1, cud);
}

struct late_exit {
        pid_t pid;
        int status;
        loop_exit_cb cb;
        void *ud;
        struct loop_timer *timer;
        struct late_exit *next;
};

static void late_unlink(struct loop *l, struct late_exit *le)
{
        for (struct late_exit **pp = &l->late; *pp; pp = &(*pp)->next)
                if (*pp == le) {
                        *pp = le->next;
                        return;
                }
}

static void deliver_late(struct loop *l, void *ud)
{
        struct late_exit *le = ud;

        late_unlink(l, le);
        le->cb(l, le->pid, le->status, le->ud);
        free(le);
}

int loop_exit_watch(struct loop *l, pid_t pid, bool own_child, loop_exit_cb cb, void *ud)
{
        struct exitw *e;
        int r;

        if (pid <= 0)
                return -EINVAL;
        if (own_child && !l->sigchld_owned) {
                r = sig_block(l, SIGCHLD);
                if (r < 0)
                        return r;
                l->sigchld_owned = true;
        }
        if (ex_find(l, pid))
                return -EEXIST;
        if (own_child) {
                /* The child may have exited before this watcher existed; its
                 * SIGCHLD was then consumed without a match. Reap it now and
                 * deliver on the next iteration, never re-entrantly. */
                int st;
                if (waitpid(pid, &st, WNOHANG) == pid) {
                        struct late_exit *le = malloc(sizeof(*le));
                        if (!le)
                                return -ENOMEM;
                        *le = (struct late_exit){ .pid = pid, .status = st, .cb = cb, .ud = ud };
                        le->timer = loop_timer_add(l, 0, deliver_late, le);
                        if (!le->timer) {
                                free(le);
                                return -ENOMEM;
                        }
                        le->next = l->late;
                        l->late = le;
                        return 0;
                }
                e = ex_insert(l, pid);
                if (!e)
                        return -ENOMEM;
                e->own_child = true;
                e->cb = cb;
                e->ud = ud;
                return 0;
        }
        /* pidfd_open always sets close-on-exec. */
        int fd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (fd < 0)
                return -errno;
        r = watch_add(l, fd, W_PIDFD, LOOP_READ, on_pidfd, (void *)(intptr_t)pid);
        if (r < 0) {
                close(fd);
                return r;
        }
        e = ex_insert(l, pid);
        if (!e) {
                loop_io_del(l, fd);
                close(fd);
                return -ENOMEM;
        }
        e->own_child = false;
        e->pidfd = fd;
        e->cb = cb;
        e->ud = ud;
        return 0;
}

void loop_exit_unwatch(struct loop *l, pid_t pid)
{
        struct exitw *e = ex_find(l, pid);

        if (e)
                ex_release(l, e);
        /* An exit reaped before the watcher existed waits in a timer. */
        for (struct late_exit *le = l->late; le; le = le->next)
                if (le->pid == pid) {
                        late_unlink(l, le);
                        loop_timer_cancel(l, le->timer);
                        free(le);
                        break;
                }
}

/* ---- running ----------------------------------------------------------- */

static void reap_dead(struct loop *l)
{
        while (l->dead) {
                struct watch *w = l->dead;
                l->dead = w->next_dead;
                free(w);
        }
}

int loop_run_once(struct loop *l, int64_t max_wait_ms)
{
        struct epoll_event evs[64];
        int64_t wait;
        int n;

        l->now = mono_ms();
        run_timers(l);
        if (l->stop)
                return 0;

        wait = max_wait_ms;
        if (l->nheap) {
                int64_t d = l->heap[0]->deadline - l->now;
                if (d < 0)
                        d = 0;
                if (wait < 0 || d < wait)
                        wait = d;
        }
        if (wait > 60000)
                wait = 60000;
        n = epoll_wait(l->epfd, evs, (int)(sizeof(evs) / sizeof(evs[0])), (int)wait);
        if (n < 0) {
                if (errno == EINTR)
                        return 0;
                return -errno;
        }
        l->now = mono_ms();
        for (int i = 0; i < n; i++) {
                /* Look the watcher up again: an earlier callback in this pass
                 * may have removed it (and the fd number may be reused). */
                struct watch *w = watch_get(l, evs[i].data.fd);
                if (!w || w->dead)
                        continue;
                unsigned ev = 0;
                if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                        ev |= LOOP_READ;
                if (evs[i].events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
                        ev |= LOOP_WRITE;
                w->cb(l, w->fd, ev, w->ud);
        }
        reap_dead(l);
        return 0;
}

int loop_run(struct loop *l)
{
        l->stop = false;
        while (!l->stop) {
                int r = loop_run_once(l, -1);
                if (r < 0)
                        return r;
        }
        return 0;
}

void loop_stop(struct loop *l)
{
        l->stop = true;
}

bool loop_stopped(struct loop *l)
{
        return l->stop;
}

void loop_free(struct loop *l)
{
        if (!l)
                return;
        for (size_t i = 0; i < l->excap; i++)
                if (l->ex[i].active && l->ex[i].pidfd >= 0)
                        close(l->ex[i].pidfd);
        free(l->ex);
        for (size_t i = 0; i < l->nheap; i++) {
                /* A pending late-exit record would leak otherwise. */
                if (l->heap[i]->cb == deliver_late)
                        free(l->heap[i]->ud);
                free(l->heap[i]);
        }
        free(l->heap);
        for (size_t i = 0; i < l->nfds; i++)
                free(l->fds[i]);
        free(l->fds);
        reap_dead(l);
        if (l->sigfd >= 0) {
                close(l->sigfd);
                sigprocmask(SIG_UNBLOCK, &l->sigmask, NULL);
        }
        close(l->epfd);
        free(l);
}
