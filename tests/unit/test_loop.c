/* test_loop.c: timer order and cancellation, fd readiness, signals, child
 * and adopted-process exits. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loop/loop.h"

static int order[16];
static int norder;

static void rec(struct loop *l, void *ud)
{
        order[norder++] = (int)(intptr_t)ud;
}

static void stop_cb(struct loop *l, void *ud)
{
        loop_stop(l);
}

static void timers_fire_in_deadline_then_creation_order(void **state)
{
        struct loop *l;
        assert_int_equal(loop_new(&l), 0);
        norder = 0;
        loop_timer_add(l, 30, rec, (void *)3);
        loop_timer_add(l, 10, rec, (void *)1);
        loop_timer_add(l, 20, rec, (void *)2);
        loop_timer_add(l, 20, rec, (void *)22); /* same deadline: after 2 */
        struct loop_timer *c = loop_timer_add(l, 15, rec, (void *)99);
        loop_timer_add(l, 0, rec, (void *)0);
        loop_timer_cancel(l, c);
        loop_timer_add(l, 40, stop_cb, NULL);
        int64_t t0 = loop_now_ms(l);
        assert_int_equal(loop_run(l), 0);
        assert_true(loop_now_ms(l) - t0 >= 40);
        assert_int_equal(norder, 5);
        int want[] = { 0, 1, 2, 22, 3 };
        for (int i = 0; i < 5; i++)
                assert_int_equal(order[i], want[i]);
        assert_int_equal(loop_timer_count(l), 0);
        loop_free(l);
}

static void many_timers_random_cancel(void **state)
{
        struct loop *l;
        struct loop_timer *t[1000];
        assert_int_equal(loop_new(&l), 0);
        norder = 0;
        for (int i = 0; i < 1000; i++)
                t[i] = loop_timer_add(l, 1000 + (i * 7919) % 1000, rec, (void *)1);
        for (int i = 0; i < 1000; i += 2)
                loop_timer_cancel(l, t[i]);
        assert_int_equal(loop_timer_count(l), 500);
        loop_free(l); /* frees pending timers: ASan checks */
}

static int got_read;

static void on_read(struct loop *l, int fd, unsigned ev, void *ud)
{
        char b[16];
        assert_true(ev & LOOP_READ);
        assert_int_equal(read(fd, b, sizeof(b)), 5);
        got_read++;
        loop_io_del(l, fd);
        loop_stop(l);
}

static void writer(struct loop *l, void *ud)
{
        assert_int_equal(write((int)(intptr_t)ud, "hello", 5), 5);
}

static void io_readiness(void **state)
{
        struct loop *l;
        int p[2];
        assert_int_equal(loop_new(&l), 0);
        assert_int_equal(pipe(p), 0);
        got_read = 0;
        assert_int_equal(loop_io_add(l, p[0], LOOP_READ, on_read, NULL), 0);
        assert_int_equal(loop_io_add(l, p[0], LOOP_READ, on_read, NULL), -EEXIST);
        loop_timer_add(l, 5, writer, (void *)(intptr_t)p[1]);
        assert_int_equal(loop_run(l), 0);
        assert_int_equal(got_read, 1);
        close(p[0]);
        close(p[1]);
        loop_free(l);
}

static int got_sig;

static void on_sig(struct loop *l, int signo, void *ud)
{
        got_sig = signo;
        loop_stop(l);
}

static void raise_usr1(struct loop *l, void *ud)
{
        kill(getpid(), SIGUSR1);
}

static void signals_arrive_through_the_loop(void **state)
{
        struct loop *l;
        assert_int_equal(loop_new(&l), 0);
        got_sig = 0;
        assert_int_equal(loop_signal_add(l, SIGUSR1, on_sig, NULL), 0);
        assert_int_equal(loop_signal_add(l, SIGCHLD, on_sig, NULL), -EINVAL);
        loop_timer_add(l, 5, raise_usr1, NULL);
        assert_int_equal(loop_run(l), 0);
        assert_int_equal(got_sig, SIGUSR1);
        loop_free(l);
}

static int exits, last_status;
static pid_t last_pid;

static void on_exit_cb(struct loop *l, pid_t pid, int st, void *ud)
{
        exits++;
        last_pid = pid;
        last_status = st;
        if (exits == (int)(intptr_t)ud)
                loop_stop(l);
}

static void children_are_reaped_with_status(void **state)
{
        struct loop *l;
        pid_t pids[20];
        assert_int_equal(loop_new(&l), 0);
        exits = 0;
        /* Register SIGCHLD handling before forking so no exit is missed. */
        for (int i = 0; i < 20; i++) {
                pids[i] = fork();
                if (pids[i] == 0)
                        _exit(i);
                assert_int_equal(loop_exit_watch(l, pids[i], true, on_exit_cb, (void *)20), 0);
        }
        loop_timer_add(l, 5000, stop_cb, NULL);
        assert_int_equal(loop_run(l), 0);
        assert_int_equal(exits, 20);
        assert_true(WIFEXITED(last_status));
        for (int i = 0; i < 20; i++)
                assert_int_equal(waitpid(pids[i], NULL, WNOHANG), -1); /* all reaped */
        loop_free(l);
}

static void child_exited_before_watch(void **state)
{
        struct loop *l;
        assert_int_equal(loop_new(&l), 0);
        exits = 0;
        pid_t p = fork();
        if (p == 0)
                _exit(7);
        /* Wait until it has exited, without reaping it: the watch must
         * find a zombie, whatever the machine's load. */
        siginfo_t si = { 0 };
        assert_int_equal(waitid(P_PID, (id_t)p, &si, WEXITED | WNOWAIT), 0);
        assert_int_equal(si.si_pid, p);
        assert_int_equal(si.si_code, CLD_EXITED);
        assert_int_equal(loop_exit_watch(l, p, true, on_exit_cb, (void *)1), 0);
        assert_int_equal(exits, 0); /* not delivered re-entrantly */
        loop_timer_add(l, 5000, stop_cb, NULL);
        assert_int_equal(loop_run(l), 0);
        assert_int_equal(exits, 1);
        assert_int_equal(last_pid, p);
        assert_true(WIFEXITED(last_status) && WEXITSTATUS(last_status) == 7);
        loop_free(l);
}

static void adopted_process_exit_via_pidfd(void **state)
{
        struct loop *l;
        int p[2];
        assert_int_equal(loop_new(&l), 0);
        assert_int_equal(pipe(p), 0);
        /* A grandchild that is not our child: fork, fork again, exit. */
        pid_t c = fork();
        if (c == 0) {
                pid_t g = fork();
                if (g == 0) {
                        usleep(100000);
                        _exit(0);
                }
                (void)!write(p[1], &g, sizeof(g));
                _exit(0);
        }
        pid_t g;
        assert_int_equal(read(p[0], &g, sizeof(g)), (ssize_t)sizeof(g));
        waitpid(c, NULL, 0);
        exits = 0;
        assert_int_equal(loop_exit_watch(l, g, false, on_exit_cb, (void *)1), 0);
        loop_timer_add(l, 5000, stop_cb, NULL);
        assert_int_equal(loop_run(l), 0);
        assert_int_equal(exits, 1);
        assert_int_equal(last_pid, g);
        assert_int_equal(last_status, -1);
        assert_int_equal(loop_exit_watch(l, 999999, false, on_exit_cb, NULL), -ESRCH);
        close(p[0]);
        close(p[1]);
        loop_free(l);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(timers_fire_in_deadline_then_creation_order),
                cmocka_unit_test(many_timers_random_cancel),
                cmocka_unit_test(io_readiness),
                cmocka_unit_test(signals_arrive_through_the_loop),
                cmocka_unit_test(children_are_reaped_with_status),
                cmocka_unit_test(child_exited_before_watch),
                cmocka_unit_test(adopted_process_exit_via_pidfd),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
