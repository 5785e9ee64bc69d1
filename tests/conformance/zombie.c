/* zombie.c: the zombie-task rule of forgejo-runner.md §3.4 and
 * forgejo-api.md §6.1 (ZOMBIE_TASK_TIMEOUT): a running task without
 * UpdateTask/UpdateLog activity is stopped with failure; StopTask deletes
 * an ephemeral runner (forgejo-api.md §3.3). The simulator runs with
 * --zombie-timeout 2s; each rule is its own meson test (a cmocka filter)
 * so that the waits overlap. */
#include "world.h"

#include <string.h>

#define TIMEOUT_S 2.0
/* The reaper may run on a period; allow generous slack. */
#define DEADLINE_S 12.0

/* Polls the job until its status differs from "running"; returns the
 * seconds waited, or fails at the deadline. */
static double wait_not_running(struct world *w, long long job, double t0)
{
        for (;;) {
                if (strcmp(job_status(w, job), "running") != 0)
                        return ck_now() - t0;
                if (ck_now() - t0 > DEADLINE_S)
                        fail_msg("job %lld still running %.1f s after its last report", job, DEADLINE_S);
                ck_sleep_ms(100);
        }
}

/* §3.4: a running task with no activity is stopped with status failure;
 * not before the timeout; waiting jobs are not touched; the runner learns
 * it through UpdateTask (result FAILURE). */
static void zombie_task_stopped_with_failure(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_job j, idle;

        mk_job(w, "acme", "web", "j", "[\"a\"]", &j);
        mk_runner(w, "/api/v1/admin", w->root.token, "r", false, "[\"a\"]", &rn);
        long long task = claim(w, &rn);
        double t0 = ck_now();
        mk_job(w, "acme", "web", "idle", "[\"never-matches\"]", &idle);
        ck_sleep_ms(1000);
        assert_string_equal(job_status(w, j.id), "running");
        double waited = wait_not_running(w, j.id, t0);
        if (waited < TIMEOUT_S - 0.2)
                fail_msg("task stopped after %.2f s, before the %.0f s zombie timeout", waited, TIMEOUT_S);
        json_t *s = job_state(w, j.id);
        assert_string_equal(CK_STR(s, "status"), "failure");
        assert_string_equal(CK_STR(s, "result"), "failure");
        assert_true(is_rfc3339_ms_utc(CK_STR(s, "finished_at")));
        json_decref(s);
        assert_string_equal(job_status(w, idle.id), "waiting");
        assert_string_equal(update_task(w, &rn, task, "RESULT_UNSPECIFIED"), "RESULT_FAILURE");
        print_message("zombie task stopped after %.2f s (timeout %.0f s)\n", waited, TIMEOUT_S);
}

/* §3.3 step 4: every UpdateTask on a non-final task keeps it from being
 * judged a zombie. */
static void zombie_update_task_keeps_task_alive(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_job j;

        mk_job(w, "acme", "web", "j", "[\"a\"]", &j);
        mk_runner(w, "/api/v1/admin", w->root.token, "r", false, "[\"a\"]", &rn);
        long long task = claim(w, &rn);
        double t0 = ck_now();
        while (ck_now() - t0 < 3 * TIMEOUT_S) {
                assert_string_equal(update_task(w, &rn, task, "RESULT_UNSPECIFIED"), "RESULT_UNSPECIFIED");
                ck_sleep_ms(400);
        }
        assert_string_equal(job_status(w, j.id), "running");
}

/* forgejo-api.md §6.1: "a running task without UpdateTask/UpdateLog
 * activity is stopped": UpdateLog counts as activity. */
static void zombie_update_log_keeps_task_alive(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_job j;
        struct sim_resp r;

        mk_job(w, "acme", "web", "j", "[\"a\"]", &j);
        mk_runner(w, "/api/v1/admin", w->root.token, "r", false, "[\"a\"]", &rn);
        long long task = claim(w, &rn);
        double t0 = ck_now();
        for (long long i = 0; ck_now() - t0 < 3 * TIMEOUT_S; i++) {
                CK_OK(sim_rpc(w->sim, "runner.v1.RunnerService/UpdateLog", rn.uuid, rn.token, NULL,
                              P("{\"taskId\":\"%lld\",\"index\":\"%lld\",\"rows\":[{\"time\":\"2026-01-01T00:00:00Z\",\"content\":\"line %lld\"}]}",
                                task, i, i), &r));
                CK_STATUS(&r, 200);
                assert_int_equal(CK_I64S(r.json, "ackIndex"), i + 1);
                sim_resp_done(&r);
                ck_sleep_ms(400);
        }
        assert_string_equal(job_status(w, j.id), "running");
}

/* forgejo-api.md §3.3: StopTask (zombie timeout) deletes an ephemeral
 * runner; its credentials then fail with "unauthenticated". */
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
        wait_not_running(w, j.id, ck_now());
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
        CK_OK(sim_rpc(w->sim, "runner.v1.RunnerService/UpdateLog", rn.uuid, rn.token, NULL,
                      P("{\"taskId\":\"%lld\",\"index\":\"0\",\"rows\":[{\"time\":\"2026-01-01T00:00:00Z\",\"content\":\"early\"}]}", task),
                      &r));
        CK_STATUS(&r, 200);
        sim_resp_done(&r);
        wait_not_running(w, j.id, ck_now());
        CK_OK(sim_rpc(w->sim, "runner.v1.RunnerService/UpdateLog", rn.uuid, rn.token, NULL,
                      P("{\"taskId\":\"%lld\",\"index\":\"1\",\"rows\":[{\"time\":\"2026-01-01T00:00:09Z\",\"content\":\"late\"}]}", task),
                      &r));
        CK_CONNECT_ERR(&r, 409, "already_exists");
        sim_resp_done(&r);
        json_t *s = job_state(w, j.id);
        CK_JSON_EQ(CK_ARR(s, "log"), "[\"early\"]");
        json_decref(s);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                TZ(zombie_task_stopped_with_failure),
                TZ(zombie_update_task_keeps_task_alive),
                TZ(zombie_update_log_keeps_task_alive),
                TZ(zombie_stop_deletes_ephemeral_runner),
                TZ(zombie_stop_archives_log),
        };

        return WORLD_RUN(tests, argc, argv);
}
