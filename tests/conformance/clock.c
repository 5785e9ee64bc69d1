/* clock.c: the /_sim/clock control route of forgejo-sim (README "Test
 * clock"): GET reports the simulator's time; POST {"advance_ms"} moves a
 * clock started with --test-clock and applies the time-based rules before
 * answering; without the flag every advance is refused. Shapes are checked
 * key by key. Never depends on the simulator's code. */
#include "world.h"

#include <errno.h>
#include <string.h>
#include <time.h>

/* 100 years of 366 days: how far a test clock may move in all. */
#define MAX_ADVANCE_MS 3162240000000LL

static long long wall_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long long now_ms(json_t *clock)
{
        const char *now = CK_STR(clock, "now");

        assert_true(is_rfc3339_ms_utc(now));
        return ts_ms(now);
}

static void post_clock(struct world *w, const char *body, long want_status, const char *want_in_message)
{
        struct sim_resp r;

        CK_OK(sim_post(w->sim, "/_sim/clock", NULL, body, &r));
        CK_STATUS(&r, want_status);
        if (want_in_message) {
                const char *m = CK_STR(r.json, "message");
                if (!strstr(m, want_in_message))
                        fail_msg("message \"%s\" does not mention \"%s\"", m, want_in_message);
        }
        sim_resp_done(&r);
}

/* Without --test-clock: GET answers {test_clock: false, now, advanced_ms:
 * 0} with the real time. */
static void clock_get_real_clock(void **state)
{
        struct world *w = *state;
        long long before = wall_ms();
        json_t *c = clock_state(w);
        long long after = wall_ms();

        CK_KEYS(c, "test_clock", "now", "advanced_ms");
        assert_false(CK_BOOL(c, "test_clock"));
        assert_int_equal(CK_INT(c, "advanced_ms"), 0);
        long long now = now_ms(c);
        if (now < before || now > after)
                fail_msg("now %lld ms is outside [%lld, %lld] around the request", now, before, after);
        json_decref(c);
}

/* Without --test-clock every POST is refused with 409 and a message
 * naming the flag, whatever the body; the clock is untouched. */
static void clock_advance_refused_without_flag(void **state)
{
        struct world *w = *state;

        post_clock(w, "{\"advance_ms\":1000}", 409, "--test-clock");
        post_clock(w, "{\"advance_ms\":0}", 409, "--test-clock");
        post_clock(w, "{\"advance_ms\":-5}", 409, "--test-clock");
        post_clock(w, "not json", 409, "--test-clock");
        assert_int_equal(sim_clock_advance(w->sim, 1), -EPROTO);
        json_t *c = clock_state(w);
        assert_int_equal(CK_INT(c, "advanced_ms"), 0);
        json_decref(c);
}

/* With --test-clock the clock stands still between advances. */
static void clock_test_clock_is_frozen(void **state)
{
        struct world *w = *state;
        json_t *a = clock_state(w);

        assert_true(CK_BOOL(a, "test_clock"));
        assert_int_equal(CK_INT(a, "advanced_ms"), 0);
        /* Real time must pass for "frozen" to mean anything; this is the
         * one wait, and nothing depends on its length. */
        ck_sleep_ms(30);
        json_t *b = clock_state(w);
        assert_int_equal(now_ms(b), now_ms(a));
        json_decref(a);
        json_decref(b);
}

/* POST {"advance_ms": N} → 200 {test_clock, now, advanced_ms,
 * zombies_stopped}: now moves by exactly N, advanced_ms is the sum; 0 is
 * allowed and moves nothing. */
static void clock_advance_moves_now(void **state)
{
        struct world *w = *state;
        struct sim_resp r;
        json_t *c = clock_state(w);
        long long t0 = now_ms(c);

        json_decref(c);
        CK_OK(sim_post(w->sim, "/_sim/clock", NULL, "{\"advance_ms\":1500}", &r));
        CK_STATUS(&r, 200);
        CK_KEYS(r.json, "test_clock", "now", "advanced_ms", "zombies_stopped");
        assert_true(CK_BOOL(r.json, "test_clock"));
        assert_int_equal(now_ms(r.json), t0 + 1500);
        assert_int_equal(CK_INT(r.json, "advanced_ms"), 1500);
        assert_int_equal(CK_INT(r.json, "zombies_stopped"), 0);
        sim_resp_done(&r);

        CK_OK(sim_post(w->sim, "/_sim/clock", NULL, "{\"advance_ms\":0}", &r));
        CK_STATUS(&r, 200);
        assert_int_equal(now_ms(r.json), t0 + 1500);
        sim_resp_done(&r);

        advance(w, 86400000);
        c = clock_state(w);
        assert_int_equal(now_ms(c), t0 + 1500 + 86400000);
        assert_int_equal(CK_INT(c, "advanced_ms"), 1500 + 86400000);
        json_decref(c);
}

/* Bad bodies: malformed JSON, not an object or a non-integer advance_ms
 * → 400; advance_ms missing or negative → 422; the clock is untouched. */
static void clock_advance_rejects_bad_bodies(void **state)
{
        struct world *w = *state;

        post_clock(w, "not json", 400, NULL);
        post_clock(w, "[1000]", 400, NULL);
        post_clock(w, "{\"advance_ms\":\"1000\"}", 400, "advance_ms");
        post_clock(w, "{\"advance_ms\":1.5}", 400, "advance_ms");
        post_clock(w, "{\"advance_ms\":true}", 400, "advance_ms");
        post_clock(w, "{}", 422, "advance_ms");
        post_clock(w, "{\"advance_ms\":null}", 422, "advance_ms");
        post_clock(w, "{\"advance_ms\":-1}", 422, "advance_ms");
        json_t *c = clock_state(w);
        assert_int_equal(CK_INT(c, "advanced_ms"), 0);
        json_decref(c);
}

/* The clock moves at most MAX_ADVANCE_MS in all; one ms more is refused
 * with 422 and the clock stays where it was. */
static void clock_advance_limit(void **state)
{
        struct world *w = *state;

        post_clock(w, P("{\"advance_ms\":%lld}", MAX_ADVANCE_MS + 1), 422, "too far");
        advance(w, MAX_ADVANCE_MS - 1000);
        post_clock(w, "{\"advance_ms\":1001}", 422, "1000 ms more");
        advance(w, 1000);
        post_clock(w, "{\"advance_ms\":1}", 422, "too far");
        json_t *c = clock_state(w);
        assert_int_equal(CK_INT(c, "advanced_ms"), MAX_ADVANCE_MS);
        assert_true(is_rfc3339_ms_utc(CK_STR(c, "now")));
        json_decref(c);
}

/* The advance applies the zombie rule before it answers and reports how
 * many tasks it stopped. */
static void clock_advance_reports_stopped_zombies(void **state)
{
        struct world *w = *state;
        struct sim_runner r1, r2;
        struct sim_job a, b;
        struct sim_resp r;

        mk_job(w, "acme", "web", "a", "[\"x\"]", &a);
        mk_job(w, "acme", "web", "b", "[\"y\"]", &b);
        mk_runner(w, "/api/v1/admin", w->root.token, "r1", false, "[\"x\"]", &r1);
        mk_runner(w, "/api/v1/admin", w->root.token, "r2", false, "[\"y\"]", &r2);
        claim(w, &r1);
        claim(w, &r2);
        CK_OK(sim_post(w->sim, "/_sim/clock", NULL, "{\"advance_ms\":600001}", &r));
        CK_STATUS(&r, 200);
        assert_int_equal(CK_INT(r.json, "zombies_stopped"), 2);
        sim_resp_done(&r);
        assert_string_equal(job_status(w, a.id), "failure");
        assert_string_equal(job_status(w, b.id), "failure");
        CK_OK(sim_post(w->sim, "/_sim/clock", NULL, "{\"advance_ms\":600001}", &r));
        CK_STATUS(&r, 200);
        assert_int_equal(CK_INT(r.json, "zombies_stopped"), 0);
        sim_resp_done(&r);
}

/* Job timestamps come from the test clock: created_at, claimed_at and
 * finished_at are the clock's time when each happened. */
static void clock_job_timestamps(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_job j;
        json_t *c = clock_state(w);
        long long t0 = now_ms(c);

        json_decref(c);
        mk_job(w, "acme", "web", "j", "[\"a\"]", &j);
        mk_runner(w, "/api/v1/admin", w->root.token, "r", false, "[\"a\"]", &rn);
        advance(w, 1234);
        long long task = claim(w, &rn);
        advance(w, 5000);
        update_task(w, &rn, task, "RESULT_SUCCESS");
        json_t *s = job_state(w, j.id);
        assert_int_equal(ts_ms(CK_STR(s, "created_at")), t0);
        assert_int_equal(ts_ms(CK_STR(s, "claimed_at")), t0 + 1234);
        assert_int_equal(ts_ms(CK_STR(s, "finished_at")), t0 + 6234);
        json_decref(s);
}

/* The route is a control route: never faulted. */
static void clock_route_never_faulted(void **state)
{
        struct world *w = *state;

        CK_OK(sim_fault(w->sim, "{\"path_prefix\":\"/\",\"mode\":\"status\",\"status\":503}"));
        advance(w, 10);
        json_t *c = clock_state(w);
        assert_int_equal(CK_INT(c, "advanced_ms"), 10);
        json_decref(c);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                T(clock_get_real_clock),
                T(clock_advance_refused_without_flag),
                TC(clock_test_clock_is_frozen),
                TC(clock_advance_moves_now),
                TC(clock_advance_rejects_bad_bodies),
                TC(clock_advance_limit),
                TC(clock_advance_reports_stopped_zombies),
                TC(clock_job_timestamps),
                TC(clock_route_never_faulted),
        };

        return WORLD_RUN(tests, argc, argv);
}
