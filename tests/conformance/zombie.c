/* zombie.c: the zombie-task rule of forgejo-runner.md §3.4 and
 * forgejo-api.md §6.1 (ZOMBIE_TASK_TIMEOUT): a running task without
 * UpdateTask/UpdateLog activity is stopped with failure; StopTask deletes
 * an ephemeral runner (forgejo-api.md §3.3). The simulator runs on a test
 * clock, so every test pins the exact boundary without waiting: a task
 * idle for exactly the timeout still runs (Forgejo stops tasks whose
 * "updated < now - timeout"), one millisecond more stops it. */
#include "world.h"

#include <errno.h>
#include <string.h>

#define TIMEOUT_MS 600000LL     /* Forgejo's default, 10 min */

/* The job's "finished_at" as ms, or -1 while it is null. */
static long long finished_ms(struct world *w, long long job)
{
        json_t *s = job_state(w, job);
        json_t *f = json_object_get(s, "finished_at");
        long long ms = json_is_null(f) ? -1 : ts_ms(CK_STR(s, "finished_at"));

        json_decref(s);
        return ms;
}

static void update_log(struct world *w, const struct sim_runner *rn, long long task, long long index,
                       const char *line, long long want_ack)
{
        struct sim_resp r;

        CK_OK(sim_rpc(w->sim, "runner.v1.RunnerService/UpdateLog", rn->uuid, rn->token, NULL,
                      P("{\"taskId\":\"%lld\",\"index\":\"%lld\",\"rows\":[{\"time\":\"2026-01-01T00:00:00Z\",\"content\":\"%s\"}]}",
                        task, index, line), &r));
        CK_STATUS(&r, 200);
        assert_int_equal(CK_I64S(r.json, "ackIndex"), want_ack);
        sim_resp_done(&r);
}

/* §3.4: a running task with no activity is stopped with status failure
 * once more than the timeout has passed, not at the timeout; waiting jobs
 * are not touched; the runner learns it through UpdateTask (result
 * FAILURE). finished_at is the time of the stop. */
static void zombie_task_stopped_with_failure(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_job j, idle;

        mk_job(w, "acme", "web", "j", "[\"a\"]", &j);
        mk_runner(w, "/api/v1/admin", w->root.token, "r", false, "[\"a\"]", &rn);
        long long task = claim(w, &rn);
        mk_job(w, "acme", "web", "idle", "[\"never-matches\"]", &idle);

        advance(w, TIMEOUT_MS);
        assert_string_equal(job_status(w, j.id), "running");
        assert_int_equal(finished_ms(w, j.id), -1);

        advance(w, 1);
        json_t *s = job_state(w, j.id);
        assert_string_equal(CK_STR(s, "status"), "failure");
        assert_string_equal(CK_STR(s, "result"), "failure");
        assert_true(is_rfc3339_ms_utc(CK_STR(s, "finished_at")));
        assert_int_equal(ts_ms(CK_STR(s, "finished_at")) - ts_ms(CK_STR(s, "claimed_at")),
                         TIMEOUT_MS + 1);
        json_decref(s);
        assert_string_equal(job_status(w, idle.id), "waiting");
        assert_string_equal(update_task(w, &rn, task, "RESULT_UNSPECIFIED"), "RESULT_FAILURE");
}

/* --zombie-timeout sets the timeout (here 2 s) with the same boundary. */
static void zombie_timeout_flag(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_job j;

        mk_job(w, "acme", "web", "j", "[\"a\"]", &j);
        mk_runner(w, "/api/v1/admin", w->root.token, "r", false, "[\"a\"]", &rn);
        claim(w, &rn);
        advance(w, 2000);
        assert_string_equal(job_status(w, j.id), "running");
        advance(w, 1);
        assert_string_equal(job_status(w, j.id), "failure");
}

/* Each task is judged by its own last activity: one advance stops the
 * task past its deadline and leaves a younger one running until its own. */
static void zombie_each_task_has_its_own_deadline(void **state)
{
        struct world *w = *state;
        struct sim_runner r1, r2;
        struct sim_job old, young;

        mk_job(w, "acme", "web", "old", "[\"a\"]", &old);
        mk_job(w, "acme", "web", "young", "[\"b\"]", &young);
        mk_runner(w, "/api/v1/admin", w->root.token, "r1", false, "[\"a\"]", &r1);
        mk_runner(w, "/api/v1/admin", w->root.token, "r2", false, "[\"b\"]", &r2);
        claim(w, &r1);
        advance(w, 250000);
        claim(w, &r2);
        advance(w, TIMEOUT_MS - 250000 + 1);
        assert_string_equal(job_status(w, old.id), "failure");
        assert_string_equal(job_status(w, young.id), "running");
        advance(w, 250000 - 1);
        assert_string_equal(job_status(w, young.id), "running");
        advance(w, 1);
        assert_string_equal(job_status(w, young.id), "failure");
}

/* §3.3 step 4: every UpdateTask on a non-final task keeps it from being
 * judged a zombie: the timeout counts from the last one. */
static void zombie_update_task_keeps_task_alive(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_job j;

        mk_job(w, "acme", "web", "j", "[\"a\"]", &j);
        mk_runner(w, "/api/v1/admin", w->root.token, "r", false, "[\"a\"]", &rn);
        long long task = claim(w, &rn);
        for (int i = 0; i < 3; i++) {
                advance(w, TIMEOUT_MS);
                assert_string_equal(update_task(w, &rn, task, "RESULT_UNSPECIFIED"), "RESULT_UNSPECIFIED");
        }
        advance(w, TIMEOUT_MS);
        assert_string_equal(job_status(w, j.id), "running");
        advance(w, 1);
        assert_string_equal(job_status(w, j.id), "failure");
}

/* forgejo-api.md §6.1: "a running task without UpdateTask/UpdateLog
 * activity is stopped": UpdateLog counts as activity. */
static void zombie_update_log_keeps_task_alive(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_job j;

        mk_job(w, "acme", "web", "j", "[\"a\"]", &j);
        mk_runner(w, "/api/v1/admin", w->root.token, "r", false, "[\"a\"]", &rn);
        long long task = claim(w, &rn);
        for (long long i = 0; i < 3; i++) {
                advance(w, TIMEOUT_MS);
                update_log(w, &rn, task, i, P("line %lld", i), i + 1);
        }
        advance(w, TIMEOUT_MS);
        assert_string_equal(job_status(w, j.id), "running");
        advance(w, 1);
        assert_string_equal(job_status(w, j.id), "failure");
        json_t *s = job_state(w, j.id);
        CK_JSON_EQ(CK_ARR(s, "log"), "[\"line 0\",\"line 1\",\"line 2\"]");
        json_decref(s);
}

/* forgejo-api.md §3.3: StopTask (zombie timeout) deletes an ephemeral
 * runner; its credentials then fail with "unauthenticated". Before the
 * stop the runner is live. */
static void zombie_stop_deletes_ephemeral_runner(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_job j;
        struct sim_resp r;
        json_t *sr = NULL;

        mk_job(w, "acme", "web", "j", "[\"a\"]", &j);
        mk_runner(w, "/api/v1/orgs/acme", w->alice.token, "eph", true, "[\"a\"]", &rn);
        claim(w, &rn);
        advance(w, TIMEOUT_MS);
        CK_OK(sim_find_runner(w->sim, rn.uuid, &sr));
        assert_false(CK_BOOL(sr, "deleted"));
        json_decref(sr);

        advance(w, 1);
        assert_string_equal(job_status(w, j.id), "failure");
        CK_OK(sim_find_runner(w->sim, rn.uuid, &sr));
        assert_true(CK_BOOL(sr, "deleted"));
        json_decref(sr);
        CK_OK(sim_rpc(w->sim, "runner.v1.RunnerService/FetchTask", rn.uuid, rn.token, NULL,
                      "{\"tasksVersion\":\"0\"}", &r));
        CK_CONNECT_ERR(&r, 401, "unauthenticated");
        sim_resp_done(&r);
}

/* forgejo-runner.md §3.4: a zombie task's "logs are archived": rows sent
 * afterwards fail with already_exists (forgejo-api.md §4.3). */
static void zombie_stop_archives_log(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_job j;
        struct sim_resp r;

        mk_job(w, "acme", "web", "j", "[\"a\"]", &j);
        mk_runner(w, "/api/v1/admin", w->root.token, "r", false, "[\"a\"]", &rn);
        long long task = claim(w, &rn);
        update_log(w, &rn, task, 0, "early", 1);
        advance(w, TIMEOUT_MS + 1);
        assert_string_equal(job_status(w, j.id), "failure");
        CK_OK(sim_rpc(w->sim, "runner.v1.RunnerService/UpdateLog", rn.uuid, rn.token, NULL,
                      P("{\"taskId\":\"%lld\",\"index\":\"1\",\"rows\":[{\"time\":\"2026-01-01T00:00:09Z\",\"content\":\"late\"}]}", task),
                      &r));
        CK_CONNECT_ERR(&r, 409, "already_exists");
        sim_resp_done(&r);
        json_t *s = job_state(w, j.id);
        CK_JSON_EQ(CK_ARR(s, "log"), "[\"early\"]");
        json_decref(s);
}

/* Without --test-clock the clock cannot be moved, so nothing outside a
 * test can fast-forward a task into a zombie: the request is refused with
 * 409 and the task keeps running. */
static void zombie_clock_cannot_advance_without_flag(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_job j;
        struct sim_resp r;

        mk_job(w, "acme", "web", "j", "[\"a\"]", &j);
        mk_runner(w, "/api/v1/admin", w->root.token, "r", false, "[\"a\"]", &rn);
        claim(w, &rn);
        CK_OK(sim_post(w->sim, "/_sim/clock", NULL, P("{\"advance_ms\":%lld}", 10 * TIMEOUT_MS), &r));
        CK_STATUS(&r, 409);
        assert_non_null(strstr(CK_STR(r.json, "message"), "--test-clock"));
        sim_resp_done(&r);
        assert_int_equal(sim_clock_advance(w->sim, 10 * TIMEOUT_MS), -EPROTO);
        assert_string_equal(job_status(w, j.id), "running");
        json_t *c = clock_state(w);
        assert_false(CK_BOOL(c, "test_clock"));
        assert_int_equal(CK_INT(c, "advanced_ms"), 0);
        json_decref(c);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                TC(zombie_task_stopped_with_failure),
                TZ(zombie_timeout_flag),
                TC(zombie_each_task_has_its_own_deadline),
                TC(zombie_update_task_keeps_task_alive),
                TC(zombie_update_log_keeps_task_alive),
                TC(zombie_stop_deletes_ephemeral_runner),
                TC(zombie_stop_archives_log),
                T(zombie_clock_cannot_advance_without_flag),
        };

        return WORLD_RUN(tests, argc, argv);
}
