/* tasks.c: reporting on a running task, forgejo-api.md §4.3 (UpdateLog
 * ack rules and archiving, UpdateTask heartbeats, final results, outputs,
 * ownership) and cancellation as the runner sees it (forgejo-runner.md
 * §3.3 step 5). Logs are read back through /_sim/jobs/{id}; bodies are
 * literal protojson, never built by src/forge. */
#include "world.h"

#include <stdlib.h>
#include <string.h>

#define UPDATE_LOG "runner.v1.RunnerService/UpdateLog"
#define UPDATE_TASK "runner.v1.RunnerService/UpdateTask"

struct claimed {
        struct sim_runner rn;
        struct sim_job job;
        long long task;
};

/* One repo job [a] taken by a fresh org runner [a]. */
static void setup_task(struct world *w, bool ephemeral, struct claimed *c)
{
        mk_job(w, "acme", "web", "build", "[\"a\"]", &c->job);
        mk_runner(w, "/api/v1/orgs/acme", w->alice.token, "worker", ephemeral, "[\"a\"]", &c->rn);
        c->task = claim(w, &c->rn);
}

static void rpc(struct world *w, const char *method, const struct sim_runner *rn, const char *body,
                struct sim_resp *r)
{
        CK_OK(sim_rpc(w->sim, method, rn->uuid, rn->token, NULL, body, r));
}

/* UpdateLog that must succeed; returns ackIndex. */
static long long log_ok(struct world *w, const struct claimed *c, const char *body)
{
        struct sim_resp r;

        rpc(w, UPDATE_LOG, &c->rn, body, &r);
        CK_STATUS(&r, 200);
        long long ack = CK_I64S(r.json, "ackIndex");
        CK_ABSENT(r.json, "ack_index");
        sim_resp_done(&r);
        return ack;
}

static void expect_log(struct world *w, long long job, const char *lit)
{
        json_t *s = job_state(w, job);

        CK_JSON_EQ(CK_ARR(s, "log"), lit);
        json_decref(s);
}

#define ROW(t, c) "{\"time\":\"2026-01-01T00:00:0" #t "Z\",\"content\":\"" c "\"}"

/* §4.3 UpdateLog: rows from index are appended; ack_index = new length. */
static void update_log_appends_and_acks(void **state)
{
        struct world *w = *state;
        struct claimed c;

        setup_task(w, false, &c);
        assert_int_equal(log_ok(w, &c, P("{\"taskId\":\"%lld\",\"index\":\"0\",\"rows\":[" ROW(1, "l0") "," ROW(2, "l1") "]}", c.task)), 2);
        expect_log(w, c.job.id, "[\"l0\",\"l1\"]");
        assert_int_equal(log_ok(w, &c, P("{\"taskId\":\"%lld\",\"index\":\"2\",\"rows\":[" ROW(3, "l2") "]}", c.task)), 3);
        expect_log(w, c.job.id, "[\"l0\",\"l1\",\"l2\"]");
}

/* §4.3 UpdateLog: empty rows → nothing written, ack_index = current ack. */
static void update_log_empty_rows_returns_ack(void **state)
{
        struct world *w = *state;
        struct claimed c;

        setup_task(w, false, &c);
        assert_int_equal(log_ok(w, &c, P("{\"taskId\":\"%lld\",\"index\":\"0\",\"rows\":[]}", c.task)), 0);
        log_ok(w, &c, P("{\"taskId\":\"%lld\",\"index\":\"0\",\"rows\":[" ROW(1, "l0") "," ROW(2, "l1") "]}", c.task));
        assert_int_equal(log_ok(w, &c, P("{\"taskId\":\"%lld\",\"index\":\"2\"}", c.task)), 2);
        assert_int_equal(log_ok(w, &c, P("{\"taskId\":\"%lld\",\"index\":\"7\",\"rows\":[]}", c.task)), 2);
        expect_log(w, c.job.id, "[\"l0\",\"l1\"]");
}

/* §4.3 UpdateLog: index > ack → nothing written, ack returned (the client
 * must resend from ack). */
static void update_log_index_beyond_ack_writes_nothing(void **state)
{
        struct world *w = *state;
        struct claimed c;

        setup_task(w, false, &c);
        log_ok(w, &c, P("{\"taskId\":\"%lld\",\"index\":\"0\",\"rows\":[" ROW(1, "l0") "," ROW(2, "l1") "]}", c.task));
        assert_int_equal(log_ok(w, &c, P("{\"taskId\":\"%lld\",\"index\":\"5\",\"rows\":[" ROW(3, "gap") "]}", c.task)), 2);
        assert_int_equal(log_ok(w, &c, P("{\"taskId\":\"%lld\",\"index\":\"3\",\"rows\":[" ROW(3, "gap") "]}", c.task)), 2);
        expect_log(w, c.job.id, "[\"l0\",\"l1\"]");
}

/* §4.3 UpdateLog: index + len(rows) <= ack (all rows already stored) →
 * nothing written, ack returned. */
static void update_log_stored_rows_write_nothing(void **state)
{
        struct world *w = *state;
        struct claimed c;

        setup_task(w, false, &c);
        log_ok(w, &c, P("{\"taskId\":\"%lld\",\"index\":\"0\",\"rows\":[" ROW(1, "l0") "," ROW(2, "l1") "]}", c.task));
        assert_int_equal(log_ok(w, &c, P("{\"taskId\":\"%lld\",\"index\":\"0\",\"rows\":[" ROW(1, "X0") "]}", c.task)), 2);
        assert_int_equal(log_ok(w, &c, P("{\"taskId\":\"%lld\",\"index\":\"0\",\"rows\":[" ROW(1, "X0") "," ROW(2, "X1") "]}", c.task)), 2);
        expect_log(w, c.job.id, "[\"l0\",\"l1\"]");
}

/* §4.3 UpdateLog: an overlapping batch appends only rows from ack - index. */
static void update_log_overlap_writes_only_new_part(void **state)
{
        struct world *w = *state;
        struct claimed c;

        setup_task(w, false, &c);
        log_ok(w, &c, P("{\"taskId\":\"%lld\",\"index\":\"0\",\"rows\":[" ROW(1, "l0") "," ROW(2, "l1") "]}", c.task));
        assert_int_equal(log_ok(w, &c, P("{\"taskId\":\"%lld\",\"index\":\"1\",\"rows\":[" ROW(2, "X1") "," ROW(3, "l2") "," ROW(4, "l3") "]}", c.task)), 4);
        expect_log(w, c.job.id, "[\"l0\",\"l1\",\"l2\",\"l3\"]");
}

/* §4.3 UpdateLog: no_more archives the log; later appends fail with
 * "already_exists" (HTTP 409); calls that write nothing still get the ack. */
static void update_log_no_more_archives(void **state)
{
        struct world *w = *state;
        struct claimed c;
        struct sim_resp r;

        setup_task(w, false, &c);
        log_ok(w, &c, P("{\"taskId\":\"%lld\",\"index\":\"0\",\"rows\":[" ROW(1, "l0") "]}", c.task));
        assert_int_equal(log_ok(w, &c, P("{\"taskId\":\"%lld\",\"index\":\"1\",\"rows\":[" ROW(2, "l1") "],\"noMore\":true}", c.task)), 2);
        rpc(w, UPDATE_LOG, &c.rn, P("{\"taskId\":\"%lld\",\"index\":\"2\",\"rows\":[" ROW(3, "late") "]}", c.task), &r);
        CK_CONNECT_ERR(&r, 409, "already_exists");
        sim_resp_done(&r);
        assert_int_equal(log_ok(w, &c, P("{\"taskId\":\"%lld\",\"index\":\"2\",\"rows\":[]}", c.task)), 2);
        expect_log(w, c.job.id, "[\"l0\",\"l1\"]");
}

/* §4.3 UpdateLog: the task must belong to the calling runner. */
static void update_log_task_must_belong_to_runner(void **state)
{
        struct world *w = *state;
        struct claimed c;
        struct sim_runner other;
        struct sim_resp r;

        setup_task(w, false, &c);
        mk_runner(w, "/api/v1/orgs/acme", w->alice.token, "other", false, "[\"a\"]", &other);
        rpc(w, UPDATE_LOG, &other, P("{\"taskId\":\"%lld\",\"index\":\"0\",\"rows\":[" ROW(1, "intruder") "]}", c.task), &r);
        if (r.status < 400 || !json_is_string(json_object_get(r.json, "code")))
                fail_msg("UpdateLog on another runner's task: status %ld body %s", r.status, r.body);
        sim_resp_done(&r);
        rpc(w, UPDATE_LOG, &c.rn, "{\"taskId\":\"987654\",\"index\":\"0\",\"rows\":[" ROW(1, "nowhere") "]}", &r);
        if (r.status < 400 || !json_is_string(json_object_get(r.json, "code")))
                fail_msg("UpdateLog on an unknown task: status %ld body %s", r.status, r.body);
        sim_resp_done(&r);
        expect_log(w, c.job.id, "[]");
}

/* §4.3 UpdateTask: result UNSPECIFIED is a heartbeat; the task keeps
 * running and the response carries {id, result}. */
static void update_task_heartbeat_keeps_running(void **state)
{
        struct world *w = *state;
        struct claimed c;
        struct sim_resp r;

        setup_task(w, false, &c);
        const char *bodies[] = {
                P("{\"state\":{\"id\":\"%lld\",\"result\":\"RESULT_UNSPECIFIED\"}}", c.task),
                P("{\"state\":{\"id\":\"%lld\"}}", c.task),
                P("{\"state\":{\"id\":\"%lld\",\"startedAt\":\"2026-01-01T00:00:00Z\",\"steps\":[{\"id\":\"0\",\"logIndex\":\"0\",\"logLength\":\"1\"}]}}", c.task),
        };
        for (size_t i = 0; i < 3; i++) {
                rpc(w, UPDATE_TASK, &c.rn, bodies[i], &r);
                CK_STATUS(&r, 200);
                json_t *st = CK_OBJ(r.json, "state");
                assert_int_equal(CK_I64S(st, "id"), c.task);
                assert_string_equal(CK_ENUM(st, "result", "RESULT_UNSPECIFIED"), "RESULT_UNSPECIFIED");
                sim_resp_done(&r);
                assert_string_equal(job_status(w, c.job.id), "running");
        }
}

/* §4.3 UpdateTask: a final result sets the job's status and result and
 * stopped time; the response reports it; the job leaves the listing. */
static void update_task_final_result_sets_job(void **state)
{
        struct world *w = *state;
        struct claimed c;
        struct sim_resp r;

        setup_task(w, false, &c);
        assert_string_equal(update_task(w, &c.rn, c.task, "RESULT_SUCCESS"), "RESULT_SUCCESS");
        json_t *s = job_state(w, c.job.id);
        assert_string_equal(CK_STR(s, "status"), "success");
        assert_string_equal(CK_STR(s, "result"), "success");
        assert_true(is_rfc3339_ms_utc(CK_STR(s, "finished_at")));
        json_decref(s);
        CK_OK(sim_get(w->sim, "/api/v1/orgs/acme/actions/runners/jobs", w->alice.token, &r));
        CK_STATUS(&r, 200);
        CK_JSON_EQ(r.json, "null");
        sim_resp_done(&r);
}

/* §4.3/§4.6: RESULT_FAILURE is final too. */
static void update_task_failure_result(void **state)
{
        struct world *w = *state;
        struct claimed c;

        setup_task(w, false, &c);
        assert_string_equal(update_task(w, &c.rn, c.task, "RESULT_FAILURE"), "RESULT_FAILURE");
        json_t *s = job_state(w, c.job.id);
        assert_string_equal(CK_STR(s, "status"), "failure");
        assert_string_equal(CK_STR(s, "result"), "failure");
        json_decref(s);
}

/* §4.3 UpdateTask: once the task is final nothing changes. */
static void update_task_after_final_changes_nothing(void **state)
{
        struct world *w = *state;
        struct claimed c;

        setup_task(w, false, &c);
        update_task(w, &c.rn, c.task, "RESULT_SUCCESS");
        assert_string_equal(update_task(w, &c.rn, c.task, "RESULT_FAILURE"), "RESULT_SUCCESS");
        assert_string_equal(update_task(w, &c.rn, c.task, "RESULT_UNSPECIFIED"), "RESULT_SUCCESS");
        assert_string_equal(job_status(w, c.job.id), "success");
}

/* §4.3 / forgejo-runner.md §3.3 step 5: after a cancel the UpdateTask
 * response carries RESULT_CANCELLED; the runner's later final result does
 * not change the cancelled job. */
static void update_task_cancel_visible_in_response(void **state)
{
        struct world *w = *state;
        struct claimed c;

        setup_task(w, false, &c);
        assert_string_equal(update_task(w, &c.rn, c.task, "RESULT_UNSPECIFIED"), "RESULT_UNSPECIFIED");
        CK_OK(sim_cancel_job(w->sim, c.job.id));
        assert_string_equal(update_task(w, &c.rn, c.task, "RESULT_UNSPECIFIED"), "RESULT_CANCELLED");
        json_t *s = job_state(w, c.job.id);
        assert_string_equal(CK_STR(s, "status"), "cancelled");
        assert_string_equal(CK_STR(s, "result"), "cancelled");
        json_decref(s);
        assert_string_equal(update_task(w, &c.rn, c.task, "RESULT_FAILURE"), "RESULT_CANCELLED");
        assert_string_equal(job_status(w, c.job.id), "cancelled");
}

/* §4.3 UpdateTask: the task must belong to the calling runner. */
static void update_task_must_belong_to_runner(void **state)
{
        struct world *w = *state;
        struct claimed c;
        struct sim_runner other;
        struct sim_resp r;

        setup_task(w, false, &c);
        mk_runner(w, "/api/v1/orgs/acme", w->alice.token, "other", false, "[\"a\"]", &other);
        rpc(w, UPDATE_TASK, &other, P("{\"state\":{\"id\":\"%lld\",\"result\":\"RESULT_FAILURE\"}}", c.task), &r);
        if (r.status < 400 || !json_is_string(json_object_get(r.json, "code")))
                fail_msg("UpdateTask on another runner's task: status %ld body %s", r.status, r.body);
        sim_resp_done(&r);
        assert_string_equal(job_status(w, c.job.id), "running");
        rpc(w, UPDATE_TASK, &c.rn, "{\"state\":{\"id\":\"987654\",\"result\":\"RESULT_FAILURE\"}}", &r);
        if (r.status < 400 || !json_is_string(json_object_get(r.json, "code")))
                fail_msg("UpdateTask on an unknown task: status %ld body %s", r.status, r.body);
        sim_resp_done(&r);
}

/* §4.3 UpdateTask outputs: stored once; sent_outputs lists every key
 * stored so far; a key over 255 bytes or a value over 1 MiB is silently
 * dropped. */
static void update_task_outputs_sent_outputs(void **state)
{
        struct world *w = *state;
        struct claimed c;
        struct sim_resp r;
        char longkey[257];

        setup_task(w, false, &c);
        rpc(w, UPDATE_TASK, &c.rn, P("{\"state\":{\"id\":\"%lld\"},\"outputs\":{\"k1\":\"v1\"}}", c.task), &r);
        CK_STATUS(&r, 200);
        CK_JSON_EQ(CK_ARR(r.json, "sentOutputs"), "[\"k1\"]");
        sim_resp_done(&r);
        memset(longkey, 'k', 256);
        longkey[256] = '\0';
        rpc(w, UPDATE_TASK, &c.rn, P("{\"state\":{\"id\":\"%lld\"},\"outputs\":{\"k2\":\"v2\",\"%s\":\"x\"}}", c.task, longkey), &r);
        CK_STATUS(&r, 200);
        json_t *sent = CK_ARR(r.json, "sentOutputs");
        assert_int_equal(json_array_size(sent), 2);
        bool k1 = false, k2 = false;
        for (size_t i = 0; i < 2; i++) {
                const char *k = json_string_value(json_array_get(sent, i));
                k1 = k1 || (k && strcmp(k, "k1") == 0);
                k2 = k2 || (k && strcmp(k, "k2") == 0);
        }
        assert_true(k1 && k2);
        sim_resp_done(&r);
        /* A value over 1 MiB is dropped as well. */
        size_t n = (1u << 20) + 1;
        char *body = malloc(n + 256);
        assert_non_null(body);
        int off = snprintf(body, 256, "{\"state\":{\"id\":\"%lld\"},\"outputs\":{\"big\":\"", c.task);
        memset(body + off, 'v', n);
        memcpy(body + off + n, "\"}}", 4);
        rpc(w, UPDATE_TASK, &c.rn, body, &r);
        free(body);
        CK_STATUS(&r, 200);
        assert_int_equal(json_array_size(CK_ARR(r.json, "sentOutputs")), 2);
        sim_resp_done(&r);
}

/* Control API cancel of a waiting job: it ends cancelled, leaves the
 * listing (§1.2: waiting and running only) and is never picked (§6.1:
 * only waiting jobs are candidates). */
static void cancel_waiting_job(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_job j;
        struct sim_resp r;

        mk_job(w, "acme", "web", "j", "[\"a\"]", &j);
        CK_OK(sim_cancel_job(w->sim, j.id));
        json_t *s = job_state(w, j.id);
        assert_string_equal(CK_STR(s, "status"), "cancelled");
        assert_string_equal(CK_STR(s, "result"), "cancelled");
        json_decref(s);
        mk_runner(w, "/api/v1/admin", w->root.token, "r", false, "[\"a\"]", &rn);
        assert_int_equal(fetch(w, &rn), 0);
        CK_OK(sim_get(w->sim, "/api/v1/admin/actions/runners/jobs", w->root.token, &r));
        CK_STATUS(&r, 200);
        CK_JSON_EQ(r.json, "null");
        sim_resp_done(&r);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                T(update_log_appends_and_acks),
                T(update_log_empty_rows_returns_ack),
                T(update_log_index_beyond_ack_writes_nothing),
                T(update_log_stored_rows_write_nothing),
                T(update_log_overlap_writes_only_new_part),
                T(update_log_no_more_archives),
                T(update_log_task_must_belong_to_runner),
                T(update_task_heartbeat_keeps_running),
                T(update_task_final_result_sets_job),
                T(update_task_failure_result),
                T(update_task_after_final_changes_nothing),
                T(update_task_cancel_visible_in_response),
                T(update_task_must_belong_to_runner),
                T(update_task_outputs_sent_outputs),
                T(cancel_waiting_job),
        };

        return WORLD_RUN(tests, argc, argv);
}
