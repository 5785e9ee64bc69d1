/* test_lifecycle.c: the instance state machine as a pure function. Scripted
 * paths check the effects of each event and the row they leave; a
 * randomised run drives thousands of event sequences (with saves failing
 * at random) against a model of the store and checks the rule everything
 * rests on: no effect outside the process before the stored row announces
 * it, and every instance ends. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/lifecycle.h"

struct m {
        struct store_instance row;
        struct lifecycle lc;
        struct lifecycle_effects fx;
        int64_t mono;
};

static void m_init(struct m *m, bool warm)
{
        memset(m, 0, sizeof(*m));
        snprintf(m->row.name, sizeof(m->row.name), "fs-test-p-1");
        m->row.state = STORE_REGISTERING;
        m->row.warm = warm;
        m->row.exit_code = -1;
        if (!warm)
                snprintf(m->row.handle, sizeof(m->row.handle), "h1");
        lifecycle_init(&m->lc, &m->row);
        m->mono = 1000;
}

static struct lifecycle_event ev(enum lifecycle_event_type t)
{
        return (struct lifecycle_event){ .type = t, .wall = 1700000000000, .check_interval = 2000 };
}

static void step(struct m *m, struct lifecycle_event e)
{
        e.mono = m->mono;
        lifecycle_step(&m->lc, &e, &m->fx);
}

/* The effects as "a,b,c", for readable failures. */
static const char *fx_text(const struct m *m)
{
        static char buf[256];
        size_t o = 0;

        buf[0] = 0;
        for (size_t i = 0; i < m->fx.n && o < sizeof(buf); i++)
                o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%s", i ? "," : "",
                                      lifecycle_effect_name(m->fx.v[i]));
        return buf;
}

/* The executor's part when every effect succeeds: a SAVE stores the row. */
static void saved(struct m *m)
{
        for (size_t i = 0; i < m->fx.n; i++)
                if (m->fx.v[i] == LIFECYCLE_DO_SAVE)
                        m->lc.unsaved = false;
}

#define EXPECT(m, want) do { assert_string_equal(fx_text(m), (want)); saved(m); } while (0)

static void launched(struct m *m)
{
        step(m, ev(LIFECYCLE_EV_LAUNCH));
        EXPECT(m, "acquire");
        struct lifecycle_event e = ev(LIFECYCLE_EV_ACQUIRED);
        e.runner_id = 7;
        e.runner_uuid = "u-7";
        step(m, e);
        EXPECT(m, "save,start_worker");
        assert_int_equal(m->row.state, STORE_STARTING);
        assert_int_equal(m->row.runner_id, 7);
        struct lifecycle_event st = ev(LIFECYCLE_EV_STARTED);
        st.ref = "pid:1:2";
        step(m, st);
        EXPECT(m, "save");
        assert_int_equal(m->row.state, STORE_WAITING);
        assert_string_equal(m->row.provider_ref, "pid:1:2");
}

/* The whole happy path: claim seen, clean exit, registration already gone. */
static void job_runs_and_completes(void **state)
{
        struct m m;

        m_init(&m, false);
        launched(&m);
        step(&m, ev(LIFECYCLE_EV_CHECK));
        EXPECT(&m, "check");
        step(&m, ev(LIFECYCLE_EV_CHECK));
        EXPECT(&m, ""); /* one check at a time */
        struct lifecycle_event c = ev(LIFECYCLE_EV_CHECKED);
        c.runner = LIFECYCLE_RUNNER_ACTIVE;
        step(&m, c);
        EXPECT(&m, "claimed,save");
        assert_int_equal(m.row.state, STORE_RUNNING);
        assert_true(m.row.claimed_ms > 0);
        struct lifecycle_event x = ev(LIFECYCLE_EV_EXITED);
        x.exit = (struct provider_exit){ .kind = PROVIDER_EXIT_CODE, .code = 0 };
        step(&m, x);
        EXPECT(&m, "save,release");
        assert_int_equal(m.row.state, STORE_STOPPING);
        struct lifecycle_event r = ev(LIFECYCLE_EV_RELEASED);
        r.was_gone = true;
        step(&m, r);
        EXPECT(&m, "save,finish");
        assert_int_equal(m.row.state, STORE_DONE);
        assert_string_equal(m.row.reason, "completed");
        assert_true(m.row.runner_deleted);
        assert_string_equal(lifecycle_result(&m.row), "claimed");
        step(&m, ev(LIFECYCLE_EV_RETRY));
        EXPECT(&m, ""); /* finished: nothing more, ever */
}

/* The identity's token lives for the ACQUIRED event only: when the row
 * that says STARTING cannot be saved, no worker starts and the identity is
 * released once the row can say so. */
static void save_failure_before_start_undoes(void **state)
{
        struct m m;

        m_init(&m, false);
        step(&m, ev(LIFECYCLE_EV_LAUNCH));
        EXPECT(&m, "acquire");
        struct lifecycle_event e = ev(LIFECYCLE_EV_ACQUIRED);
        e.runner_id = 9;
        step(&m, e);
        assert_string_equal(fx_text(&m), "save,start_worker");
        step(&m, ev(LIFECYCLE_EV_SAVE_FAILED)); /* start_worker did not run */
        assert_string_equal(fx_text(&m), "");
        assert_int_equal(m.fx.retry_ms, 1000);
        assert_string_equal(m.row.reason, "store_failed");
        step(&m, ev(LIFECYCLE_EV_RETRY));
        assert_string_equal(fx_text(&m), "save,release");
        step(&m, ev(LIFECYCLE_EV_SAVE_FAILED)); /* still failing: nothing released */
        step(&m, ev(LIFECYCLE_EV_RETRY));
        EXPECT(&m, "save,release");
        assert_int_equal(m.row.state, STORE_STOPPING);
        step(&m, ev(LIFECYCLE_EV_RELEASED));
        EXPECT(&m, "save,finish");
        assert_int_equal(m.row.state, STORE_FAILED);
}

/* A stop while the identity is being acquired waits for it, then releases
 * it without starting a worker. */
static void stop_while_acquiring(void **state)
{
        struct m m;

        m_init(&m, false);
        step(&m, ev(LIFECYCLE_EV_LAUNCH));
        EXPECT(&m, "acquire");
        struct lifecycle_event s = ev(LIFECYCLE_EV_STOP);
        s.reason = "job_gone";
        step(&m, s);
        EXPECT(&m, "save");
        assert_int_equal(m.row.state, STORE_STOPPING);
        struct lifecycle_event e = ev(LIFECYCLE_EV_ACQUIRED);
        e.runner_id = 3;
        step(&m, e);
        EXPECT(&m, "save,release");
        step(&m, ev(LIFECYCLE_EV_RELEASED));
        EXPECT(&m, "save,finish");
        assert_int_equal(m.row.state, STORE_DONE);
        assert_string_equal(m.row.reason, "job_gone");
        assert_string_equal(lifecycle_result(&m.row), "wasted");
}

/* A stop while create() is under way waits for STARTED, then stops. */
static void stop_while_starting(void **state)
{
        struct m m;

        m_init(&m, false);
        step(&m, ev(LIFECYCLE_EV_LAUNCH));
        EXPECT(&m, "acquire");
        struct lifecycle_event e = ev(LIFECYCLE_EV_ACQUIRED);
        e.runner_id = 3;
        step(&m, e);
        EXPECT(&m, "save,start_worker");
        struct lifecycle_event s = ev(LIFECYCLE_EV_STOP);
        s.reason = "job_taken";
        step(&m, s);
        EXPECT(&m, "save");
        step(&m, ev(LIFECYCLE_EV_STARTED));
        EXPECT(&m, "stop_worker");
        assert_int_equal(m.row.state, STORE_STOPPING);
        struct lifecycle_event x = ev(LIFECYCLE_EV_EXITED);
        x.exit = (struct provider_exit){ .kind = PROVIDER_EXIT_SIGNAL, .signal = 15 };
        step(&m, x);
        EXPECT(&m, "save,release");
        assert_int_equal(m.row.exit_code, 128 + 15);
        step(&m, ev(LIFECYCLE_EV_RELEASED));
        EXPECT(&m, "save,finish");
        assert_int_equal(m.row.state, STORE_DONE);
        assert_string_equal(m.row.reason, "job_taken");
}

/* A worker created but never started (a pod pending for a node or an
 * image: STARTED never comes) is stopped when asked, and ends. */
static void stop_of_created_worker_that_never_starts(void **state)
{
        struct m m;

        m_init(&m, false);
        step(&m, ev(LIFECYCLE_EV_LAUNCH));
        EXPECT(&m, "acquire");
        struct lifecycle_event e = ev(LIFECYCLE_EV_ACQUIRED);
        e.runner_id = 4;
        step(&m, e);
        EXPECT(&m, "save,start_worker");
        step(&m, ev(LIFECYCLE_EV_CREATED));
        EXPECT(&m, "");
        struct lifecycle_event s = ev(LIFECYCLE_EV_STOP);
        s.reason = "bootstrap_timeout";
        step(&m, s);
        EXPECT(&m, "save,stop_worker");
        assert_int_equal(m.row.state, STORE_STOPPING);
        step(&m, ev(LIFECYCLE_EV_EXITED));
        EXPECT(&m, "save,release");
        step(&m, ev(LIFECYCLE_EV_RELEASED));
        EXPECT(&m, "save,finish");
        assert_string_equal(m.row.reason, "bootstrap_timeout");
}

/* A stop whose STOPPING row cannot be saved stops nothing until it is. */
static void stop_waits_for_its_row(void **state)
{
        struct m m;

        m_init(&m, false);
        launched(&m);
        struct lifecycle_event s = ev(LIFECYCLE_EV_STOP);
        s.reason = "job_gone";
        step(&m, s);
        assert_string_equal(fx_text(&m), "save,stop_worker");
        step(&m, ev(LIFECYCLE_EV_SAVE_FAILED));
        assert_int_equal(m.lc.worker, LIFECYCLE_WORKER_LIVE);
        step(&m, ev(LIFECYCLE_EV_STOP)); /* asked again: still one stop */
        assert_string_equal(fx_text(&m), "save,stop_worker");
        step(&m, ev(LIFECYCLE_EV_SAVE_FAILED));
        step(&m, ev(LIFECYCLE_EV_RETRY));
        EXPECT(&m, "save,stop_worker");
        step(&m, ev(LIFECYCLE_EV_STOP_FAILED)); /* the provider refused: taken for gone */
        EXPECT(&m, "release"); /* the row says STOPPING already */
}

/* A worker that quits without its job fails, holds its job back, and says
 * so; a check in flight is dropped first. */
static void exit_unclaimed_with_check_in_flight(void **state)
{
        struct m m;

        m_init(&m, false);
        launched(&m);
        step(&m, ev(LIFECYCLE_EV_CHECK));
        EXPECT(&m, "check");
        struct lifecycle_event x = ev(LIFECYCLE_EV_EXITED);
        x.exit = (struct provider_exit){ .kind = PROVIDER_EXIT_CODE, .code = 1 };
        step(&m, x);
        EXPECT(&m, "backoff,warn_unclaimed,cancel_check,save,release");
        step(&m, ev(LIFECYCLE_EV_RELEASED));
        EXPECT(&m, "save,finish");
        assert_int_equal(m.row.state, STORE_FAILED);
        assert_string_equal(m.row.reason, "exited_unclaimed");
        assert_int_equal(m.row.exit_code, 1);
}

static void acquire_failure(void **state)
{
        struct m m;

        m_init(&m, false);
        step(&m, ev(LIFECYCLE_EV_LAUNCH));
        EXPECT(&m, "acquire");
        step(&m, ev(LIFECYCLE_EV_ACQUIRE_FAILED));
        EXPECT(&m, "backoff,save,finish");
        assert_int_equal(m.row.state, STORE_FAILED);
        assert_string_equal(m.row.reason, "register_failed");
        assert_true(m.row.runner_deleted);
}

/* Failed releases back off 1 s, 2 s, 4 s…; nothing is released early. */
static void release_backs_off(void **state)
{
        struct m m;

        m_init(&m, false);
        launched(&m);
        struct lifecycle_event x = ev(LIFECYCLE_EV_EXITED);
        step(&m, x);
        EXPECT(&m, "save,release");
        step(&m, ev(LIFECYCLE_EV_RELEASE_FAILED));
        EXPECT(&m, "");
        assert_int_equal(m.fx.retry_ms, 1000);
        m.mono += 500;
        step(&m, ev(LIFECYCLE_EV_RETRY));
        EXPECT(&m, "");
        assert_int_equal(m.fx.retry_ms, 500);
        m.mono += 500;
        step(&m, ev(LIFECYCLE_EV_RETRY));
        EXPECT(&m, "release");
        step(&m, ev(LIFECYCLE_EV_RELEASE_FAILED));
        assert_int_equal(m.fx.retry_ms, 2000);
        m.mono += 2000;
        step(&m, ev(LIFECYCLE_EV_RETRY));
        EXPECT(&m, "release");
        step(&m, ev(LIFECYCLE_EV_RELEASE_IMPOSSIBLE));
        EXPECT(&m, "save,finish");
}

/* An idle runner of a job instance is the scaler's to judge; a warm one
 * is simply checked again later. */
static void idle_checks(void **state)
{
        struct m m;

        m_init(&m, false);
        launched(&m);
        m.mono = 5000;
        step(&m, ev(LIFECYCLE_EV_CHECK));
        EXPECT(&m, "check");
        struct lifecycle_event c = ev(LIFECYCLE_EV_CHECKED);
        c.runner = LIFECYCLE_RUNNER_IDLE;
        m.mono = 5100;
        step(&m, c);
        EXPECT(&m, "plan");
        assert_int_equal(m.lc.idle_checked, 5000);
        assert_int_equal(m.lc.verify_after, 7100);

        m_init(&m, true);
        launched(&m);
        assert_true(m.lc.idle_since > 0);
        step(&m, ev(LIFECYCLE_EV_CHECK));
        EXPECT(&m, "check");
        step(&m, c);
        EXPECT(&m, "");
        assert_int_equal(m.lc.idle_checked, 0);
        /* Gone: the job ran (the worker exits by itself). */
        step(&m, ev(LIFECYCLE_EV_CHECK));
        EXPECT(&m, "check");
        c.runner = LIFECYCLE_RUNNER_GONE;
        step(&m, c);
        EXPECT(&m, "claimed,save");
        assert_true(m.row.runner_deleted);
        assert_int_equal(m.row.state, STORE_RUNNING);
        step(&m, ev(LIFECYCLE_EV_EXITED));
        EXPECT(&m, "save,finish"); /* nothing left to release */
        assert_int_equal(m.row.state, STORE_DONE);
}

static void resume_row(struct m *m, enum store_state st, const char *ref, bool adopted, bool pool_gone)
{
        m_init(m, false);
        m->row.state = st;
        m->row.runner_id = 11;
        if (st == STORE_RUNNING)
                m->row.claimed_ms = 1600000000000;
        snprintf(m->row.provider_ref, sizeof(m->row.provider_ref), "%s", ref);
        struct lifecycle_event e = ev(LIFECYCLE_EV_RESUME);
        e.adopted = adopted;
        e.pool_gone = pool_gone;
        e.ref = adopted ? ref : NULL;
        step(m, e);
}

static void restart_paths(void **state)
{
        struct m m;

        /* POST maybe made, no id saved: ends, the sweep finds it by name. */
        resume_row(&m, STORE_REGISTERING, "", false, false);
        m.row.runner_id = 0;
        assert_false(lifecycle_wants_adopt(&m.row));
        EXPECT(&m, "save,finish");
        assert_int_equal(m.row.state, STORE_FAILED);
        assert_string_equal(m.row.reason, "lost_at_restart");

        /* Adopted while STARTING: its STARTED was lost. */
        resume_row(&m, STORE_STARTING, "pid:5:6", true, false);
        EXPECT(&m, "save");
        assert_int_equal(m.row.state, STORE_WAITING);

        /* Adopted, but its pool is gone: stopped (the row first). */
        resume_row(&m, STORE_RUNNING, "pid:5:6", true, true);
        EXPECT(&m, "save,stop_worker");
        assert_string_equal(m.row.reason, "pool_removed");

        /* Worker gone while RUNNING: it completed. */
        resume_row(&m, STORE_RUNNING, "pid:5:6", false, false);
        EXPECT(&m, "save,release");
        step(&m, ev(LIFECYCLE_EV_RELEASED));
        EXPECT(&m, "save,finish");
        assert_int_equal(m.row.state, STORE_DONE);
        assert_string_equal(m.row.reason, "completed");

        /* Worker gone while WAITING, and its registration with it: its task
         * ended, so it ran its job. */
        resume_row(&m, STORE_WAITING, "pid:5:6", false, false);
        EXPECT(&m, "save,release");
        struct lifecycle_event r = ev(LIFECYCLE_EV_RELEASED);
        r.was_gone = true;
        step(&m, r);
        EXPECT(&m, "save,finish");
        assert_int_equal(m.row.state, STORE_DONE);

        /* A terminal row whose registration was never confirmed gone keeps
         * its end; only the release is left. */
        resume_row(&m, STORE_FAILED, "", false, false);
        snprintf(m.row.reason, sizeof(m.row.reason), "start_failed");
        EXPECT(&m, "release");
        step(&m, r);
        EXPECT(&m, "save,finish");
        assert_int_equal(m.row.state, STORE_FAILED);
        assert_string_equal(m.row.reason, "start_failed");
}

/* ---- the property ---------------------------------------------------------- */

static uint64_t rng = 88172645463325252ull;

static unsigned rnd(unsigned n)
{
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return (unsigned)(rng % n);
}

/* What the world has outstanding for the machine. */
struct world {
        struct store_instance stored;  /* the model of the store */
        bool acquire, check, release;  /* engine answers due */
        bool starting, live, stopping; /* provider events due */
        int effects;
};

static void broke(const struct m *m, const char *what, enum lifecycle_effect e, const struct world *w)
{
        print_error("%s before %s: stored state %s, row state %s\n", what, lifecycle_effect_name(e),
                    store_state_name(w->stored.state), store_state_name(m->row.state));
        fail();
}

/* Runs the effects like the executor, with saves failing at random; checks
 * each external effect against the stored row. Returns the event an
 * effect turned into at once, or -1. */
static int run_effects(struct m *m, struct world *w, bool *done)
{
        for (size_t i = 0; i < m->fx.n; i++) {
                enum lifecycle_effect e = m->fx.v[i];
                const struct store_instance *s = &w->stored;
                w->effects++;
                switch (e) {
                case LIFECYCLE_DO_SAVE:
                        if (rnd(4) == 0)
                                return LIFECYCLE_EV_SAVE_FAILED;
                        w->stored = m->row;
                        m->lc.unsaved = false;
                        break;
                case LIFECYCLE_DO_ACQUIRE:
                        if (s->state != STORE_REGISTERING)
                                broke(m, "not REGISTERING", e, w);
                        if (rnd(8) == 0)
                                return LIFECYCLE_EV_ACQUIRE_FAILED;
                        w->acquire = true;
                        break;
                case LIFECYCLE_DO_START_WORKER:
                        if (s->state != STORE_STARTING || s->runner_id == 0)
                                broke(m, "identity not stored", e, w);
                        if (rnd(8) == 0)
                                return LIFECYCLE_EV_START_FAILED;
                        w->starting = true;
                        break;
                case LIFECYCLE_DO_STOP_WORKER:
                        if (s->state != STORE_STOPPING)
                                broke(m, "not STOPPING", e, w);
                        if (!w->live)
                                broke(m, "no live worker", e, w);
                        w->stopping = true;
                        break;
                case LIFECYCLE_DO_CHECK:
                        if (s->runner_id == 0)
                                broke(m, "no identity", e, w);
                        w->check = true;
                        break;
                case LIFECYCLE_DO_CANCEL_CHECK:
                        w->check = false;
                        break;
                case LIFECYCLE_DO_RELEASE:
                        if (s->state != STORE_STOPPING && store_state_live(s->state))
                                broke(m, "not STOPPING", e, w);
                        if (s->runner_id == 0)
                                broke(m, "no identity", e, w);
                        if (w->live || w->starting)
                                broke(m, "worker still running", e, w);
                        w->release = true;
                        break;
                case LIFECYCLE_DO_FINISH:
                        if (store_state_live(s->state) || !s->runner_deleted)
                                broke(m, "not ended", e, w);
                        if (w->live || w->starting || w->acquire || w->release)
                                broke(m, "something in flight", e, w);
                        *done = true;
                        return -1;
                default:
                        break;
                }
        }
        return -1;
}

static void random_lives(void **state)
{
        int finished = 0;

        for (int life = 0; life < 20000; life++) {
                struct m m;
                struct world w = { 0 };
                bool done = false;

                m_init(&m, rnd(3) == 0);
                w.stored = m.row;
                struct lifecycle_event e = ev(LIFECYCLE_EV_LAUNCH);
                for (int n = 0; n < 400 && !done; n++) {
                        step(&m, e);
                        int next = run_effects(&m, &w, &done);
                        m.mono += 100 + rnd(3000);
                        if (next >= 0) {
                                e = ev((enum lifecycle_event_type)next);
                                continue;
                        }
                        /* Something the world may report now. */
                        e = ev(LIFECYCLE_EV_RETRY);
                        switch (rnd(8)) {
                        case 0:
                                if (w.acquire) {
                                        w.acquire = false;
                                        e = ev(rnd(4) ? LIFECYCLE_EV_ACQUIRED : LIFECYCLE_EV_ACQUIRE_FAILED);
                                        e.runner_id = 42;
                                }
                                break;
                        case 1:
                                if (w.starting) {
                                        w.starting = false;
                                        w.live = rnd(6) != 0;
                                        e = ev(w.live ? LIFECYCLE_EV_STARTED : LIFECYCLE_EV_START_FAILED);
                                }
                                break;
                        case 2:
                                if (w.live && (w.stopping || rnd(3) == 0)) {
                                        w.live = w.stopping = false;
                                        e = ev(LIFECYCLE_EV_EXITED);
                                        e.exit.kind = PROVIDER_EXIT_CODE;
                                        e.exit.code = (int)rnd(2);
                                }
                                break;
                        case 3:
                                if (w.check) {
                                        w.check = false;
                                        e = ev(LIFECYCLE_EV_CHECKED);
                                        e.runner = (enum lifecycle_runner)rnd(4);
                                }
                                break;
                        case 4:
                                if (w.release) {
                                        w.release = false;
                                        e = ev(rnd(3) ? LIFECYCLE_EV_RELEASED : LIFECYCLE_EV_RELEASE_FAILED);
                                        e.was_gone = rnd(2);
                                }
                                break;
                        case 5:
                                e = ev(LIFECYCLE_EV_STOP);
                                e.reason = "job_gone";
                                break;
                        case 6:
                                e = ev(LIFECYCLE_EV_CHECK);
                                break;
                        default:
                                break;
                        }
                }
                if (done) {
                        finished++;
                        assert_false(store_state_live(w.stored.state));
                        assert_true(w.stored.state == STORE_DONE || w.stored.reason[0]);
                }
        }
        /* Every life that was allowed to end did: the machine never wedges
         * waiting for nothing. */
        assert_true(finished > 19000);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(job_runs_and_completes),
                cmocka_unit_test(save_failure_before_start_undoes),
                cmocka_unit_test(stop_while_acquiring),
                cmocka_unit_test(stop_while_starting),
                cmocka_unit_test(stop_of_created_worker_that_never_starts),
                cmocka_unit_test(stop_waits_for_its_row),
                cmocka_unit_test(exit_unclaimed_with_check_in_flight),
                cmocka_unit_test(acquire_failure),
                cmocka_unit_test(release_backs_off),
                cmocka_unit_test(idle_checks),
                cmocka_unit_test(restart_paths),
                cmocka_unit_test(random_lives),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
