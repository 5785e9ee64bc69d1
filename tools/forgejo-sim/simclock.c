/* simclock.c: the simulator's notion of time, read by every time-based
 * rule of the model (zombie timeout, runner status, job timestamps). Real
 * clocks by default; with --test-clock a frozen clock that only
 * simclock_advance() moves, so a test reaches a rule's exact boundary
 * without sleeping. Never moves backwards, never moves a real clock, never
 * sleeps; real waits (delay faults) use sim_mono_ms() instead. */
#include "sim.h"

#include <errno.h>
#include <time.h>

static int64_t read_ms(clockid_t id)
{
        struct timespec ts;

        clock_gettime(id, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void simclock_init(struct simclock *c, bool test)
{
        c->test = test;
        /* A test clock starts at the real time so that timestamps look
         * like today; the monotonic base stays > 0 because 0 means
         * "never" in the model. */
        c->mono0 = read_ms(CLOCK_MONOTONIC) + 1;
        c->wall0 = read_ms(CLOCK_REALTIME);
        atomic_store(&c->advanced_ms, 0);
}

int64_t simclock_advanced_ms(const struct simclock *c)
{
        return atomic_load(&c->advanced_ms);
}

int64_t simclock_mono_ms(const struct simclock *c)
{
        if (!c->test)
                return read_ms(CLOCK_MONOTONIC);
        return c->mono0 + simclock_advanced_ms(c);
}

int64_t simclock_wall_ms(const struct simclock *c)
{
        if (!c->test)
                return read_ms(CLOCK_REALTIME);
        return c->wall0 + simclock_advanced_ms(c);
}

int simclock_advance(struct simclock *c, int64_t ms)
{
        int64_t total;

        if (!c->test)
                return -EPERM;
        if (ms < 0 || ms > SIMCLOCK_MAX_ADVANCE_MS)
                return -ERANGE;
        total = simclock_advanced_ms(c);
        if (total > SIMCLOCK_MAX_ADVANCE_MS - ms)
                return -ERANGE;
        atomic_store(&c->advanced_ms, total + ms);
        return 0;
}
