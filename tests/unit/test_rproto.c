/* test_rproto.c: the runner-protocol codec against literal protojson written
 * from the reference (forgejo-api.md §4.1, §4.3–4.7), never against the
 * codec's own output alone. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "forge/rproto.h"

static json_t *lit(const char *s)
{
        json_error_t e;
        json_t *j = json_loads(s, 0, &e);
        if (!j)
                fail_msg("bad literal %s: %s", s, e.text);
        return j;
}

/* Encoded JSON must equal the literal exactly (same keys, same types). */
static void assert_json_eq(json_t *got, const char *want)
{
        json_t *w = lit(want);
        if (!json_equal(got, w)) {
                char *g = json_dumps(got, JSON_SORT_KEYS | JSON_COMPACT);
                print_error("got  %s\nwant %s\n", g, want);
                free(g);
                json_decref(w);
                fail();
        }
        json_decref(w);
}

static void fetch_task_req_int64_as_string(void **state)
{
        struct rp_fetch_task_req m = { .tasks_version = 5 };
        json_t *j = rp_fetch_task_req_to_json(&m);
        assert_json_eq(j, "{\"tasksVersion\":\"5\"}");
        json_decref(j);

        /* Zero is the default and is omitted, as protojson does. */
        m.tasks_version = 0;
        j = rp_fetch_task_req_to_json(&m);
        assert_json_eq(j, "{}");
        json_decref(j);
}

static void fetch_task_req_accepts_snake_number_and_null(void **state)
{
        char err[RP_ERR_MAX];
        struct rp_fetch_task_req m;
        json_t *j;

        j = lit("{\"tasks_version\": 7}");
        assert_int_equal(rp_fetch_task_req_from_json(j, &m, err, sizeof(err)), 0);
        assert_int_equal(m.tasks_version, 7);
        json_decref(j);

        j = lit("{\"tasksVersion\": \"9223372036854775807\", \"unknownField\": 1}");
        assert_int_equal(rp_fetch_task_req_from_json(j, &m, err, sizeof(err)), 0);
        assert_true(m.tasks_version == INT64_MAX);
        json_decref(j);

        j = lit("{\"tasksVersion\": null}");
        assert_int_equal(rp_fetch_task_req_from_json(j, &m, err, sizeof(err)), 0);
        assert_int_equal(m.tasks_version, 0);
        json_decref(j);
}

static void wrong_types_are_rejected_with_field_name(void **state)
{
        static const char *const bad[] = {
                "{\"tasksVersion\": true}",
                "{\"tasksVersion\": \"12abc\"}",
                "{\"tasksVersion\": \"\"}",
                "{\"tasksVersion\": \"99999999999999999999\"}",
                "{\"tasksVersion\": 1.5}",
                "[]",
                "\"x\"",
        };
        char err[RP_ERR_MAX];
        struct rp_fetch_task_req m;

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                json_t *j = json_loads(bad[i], JSON_DECODE_ANY, NULL);
                assert_non_null(j);
                err[0] = '\0';
                assert_int_equal(rp_fetch_task_req_from_json(j, &m, err, sizeof(err)), -EINVAL);
                assert_true(err[0] != '\0');
                if (json_is_object(j))
                        assert_non_null(strstr(err, "tasksVersion"));
                json_decref(j);
        }
}

static void register_request_and_response(void **state)
{
        char err[RP_ERR_MAX];
        struct rp_register_req req = { .name = "w1", .token = "regtoken", .version = "v12.8", .ephemeral = true };
        rp_strlist_push(&req.labels, "ubuntu-latest");
        rp_strlist_push(&req.labels, "docker");
        json_t *j = rp_register_req_to_json(&req);
        assert_json_eq(j, "{\"name\":\"w1\",\"token\":\"regtoken\",\"version\":\"v12.8\","
                          "\"labels\":[\"ubuntu-latest\",\"docker\"],\"ephemeral\":true}");
        json_decref(j);
        rp_strlist_done(&req.labels);

        struct rp_register_resp resp;
        j = lit("{\"runner\":{\"id\":\"42\",\"uuid\":\"0b7b3a8e-1111-4a4a-8b8b-123456789abc\","
                "\"token\":\"0123456789abcdef0123456789abcdef01234567\",\"name\":\"w1\","
                "\"status\":\"RUNNER_STATUS_IDLE\",\"version\":\"v12.8\",\"labels\":[\"a\"],\"ephemeral\":true}}");
        assert_int_equal(rp_register_resp_from_json(j, &resp, err, sizeof(err)), 0);
        assert_int_equal(resp.runner.id, 42);
        assert_string_equal(resp.runner.uuid, "0b7b3a8e-1111-4a4a-8b8b-123456789abc");
        assert_string_equal(resp.runner.token, "0123456789abcdef0123456789abcdef01234567");
        assert_int_equal(resp.runner.status, RP_RUNNER_STATUS_IDLE);
        assert_int_equal(resp.runner.labels.n, 1);
        assert_true(resp.runner.ephemeral);
        rp_register_resp_done(&resp);
        json_decref(j);
}

static void task_with_payload_context_secrets(void **state)
{
        char err[RP_ERR_MAX];
        struct rp_fetch_task_resp resp;
        json_t *j = lit("{\"task\":{\"id\":\"17\",\"workflowPayload\":\"bmFtZTogdGVzdAo=\","
                        "\"context\":{\"repository\":\"acme/app\",\"run_id\":\"3\",\"event\":{\"ref\":\"main\"}},"
                        "\"secrets\":{\"FORGEJO_TOKEN\":\"tok\"},"
                        "\"needs\":{\"build\":{\"outputs\":{\"x\":\"1\"},\"result\":\"RESULT_SUCCESS\"}},"
                        "\"vars\":{}},\"tasksVersion\":\"12\"}");

        assert_int_equal(rp_fetch_task_resp_from_json(j, &resp, err, sizeof(err)), 0);
        assert_non_null(resp.task);
        assert_int_equal(resp.task->id, 17);
        assert_int_equal(resp.task->workflow_payload_len, 11);
        assert_memory_equal(resp.task->workflow_payload, "name: test\n", 11);
        assert_string_equal(json_string_value(json_object_get(resp.task->context, "repository")), "acme/app");
        assert_string_equal(json_string_value(json_object_get(resp.task->secrets, "FORGEJO_TOKEN")), "tok");
        assert_int_equal(resp.tasks_version, 12);
        assert_int_equal(resp.n_additional_tasks, 0);

        /* Re-encoding yields the same protojson. */
        json_t *back = rp_fetch_task_resp_to_json(&resp);
        assert_true(json_equal(back, j));
        json_decref(back);
        rp_fetch_task_resp_done(&resp);
        json_decref(j);

        /* No task: {"tasksVersion":"3"} */
        j = lit("{\"tasksVersion\":\"3\"}");
        assert_int_equal(rp_fetch_task_resp_from_json(j, &resp, err, sizeof(err)), 0);
        assert_null(resp.task);
        assert_int_equal(resp.tasks_version, 3);
        rp_fetch_task_resp_done(&resp);
        json_decref(j);
}

static void binary_payload_base64(void **state)
{
        static const unsigned char raw[] = { 0, 1, 2, 250, 251, 252, 253 };
        struct rp_task t = { .id = 1, .workflow_payload = (unsigned char *)raw,
                             .workflow_payload_len = sizeof(raw) };
        json_t *j = rp_task_to_json(&t);
        assert_json_eq(j, "{\"id\":\"1\",\"workflowPayload\":\"AAEC+vv8/Q==\"}");
        json_decref(j);

        char err[RP_ERR_MAX];
        struct rp_task back;
        j = lit("{\"workflowPayload\":\"AAEC-vv8_Q\"}"); /* URL-safe, unpadded */
        assert_int_equal(rp_task_from_json(j, &back, err, sizeof(err)), 0);
        assert_int_equal(back.workflow_payload_len, sizeof(raw));
        assert_memory_equal(back.workflow_payload, raw, sizeof(raw));
        rp_task_done(&back);
        json_decref(j);

        /* Padding only where RFC 4648 puts it, one alphabet at a time, as
         * Go's protojson decodes bytes. */
        static const char *const bad_b64[] = { "AAEC+vv8/Q=", "AAEC+vv8/Q===", "AAEC-vv8/Q==",
                                               "AA=C", "A" };
        for (size_t i = 0; i < sizeof(bad_b64) / sizeof(bad_b64[0]); i++) {
                char body[64];
                snprintf(body, sizeof(body), "{\"workflowPayload\":\"%s\"}", bad_b64[i]);
                j = lit(body);
                if (rp_task_from_json(j, &back, err, sizeof(err)) != -EINVAL)
                        fail_msg("payload \"%s\" was accepted", bad_b64[i]);
                assert_non_null(strstr(err, "workflowPayload"));
                json_decref(j);
        }

        j = lit("{\"workflowPayload\":\"***\"}");
        assert_int_equal(rp_task_from_json(j, &back, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "workflowPayload"));
        json_decref(j);

        j = lit("{\"secrets\":{\"A\":1}}");
        assert_int_equal(rp_task_from_json(j, &back, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "secrets"));
        json_decref(j);
}

static void update_task_state_enums_and_timestamps(void **state)
{
        struct rp_step_state steps[2] = {
                { .id = 0, .result = RP_RESULT_SUCCESS, .log_index = 0, .log_length = 3,
                  .started_at = { 1795875590, 0, true }, .stopped_at = { 1795875591, 500000000, true } },
                { .id = 1, .result = RP_RESULT_FAILURE, .log_index = 3, .log_length = 2 },
        };
        struct rp_update_task_req req = {
                .state = { .id = 99, .result = RP_RESULT_FAILURE, .steps = steps, .n_steps = 2,
                           .started_at = { 1795875590, 0, true },
                           .stopped_at = { 1795875592, 123456789, true } },
        };
        json_t *j = rp_update_task_req_to_json(&req);
        assert_json_eq(j, "{\"state\":{\"id\":\"99\",\"result\":\"RESULT_FAILURE\","
                          "\"startedAt\":\"2026-11-28T14:19:50Z\","
                          "\"stoppedAt\":\"2026-11-28T14:19:52.123456789Z\","
                          "\"steps\":[{\"result\":\"RESULT_SUCCESS\",\"startedAt\":\"2026-11-28T14:19:50Z\","
                          "\"stoppedAt\":\"2026-11-28T14:19:51.500Z\",\"logLength\":\"3\"},"
                          "{\"id\":\"1\",\"result\":\"RESULT_FAILURE\",\"logIndex\":\"3\",\"logLength\":\"2\"}]}}");
        json_decref(j);

        char err[RP_ERR_MAX];
        struct rp_update_task_resp resp;
        j = lit("{\"state\":{\"id\":\"99\",\"result\":\"RESULT_CANCELLED\"},\"sentOutputs\":[\"a\"]}");
        assert_int_equal(rp_update_task_resp_from_json(j, &resp, err, sizeof(err)), 0);
        assert_int_equal(resp.state.id, 99);
        assert_int_equal(resp.state.result, RP_RESULT_CANCELLED);
        assert_int_equal(resp.sent_outputs.n, 1);
        rp_update_task_resp_done(&resp);
        json_decref(j);

        /* Enums by number are accepted too; unknown names are not. */
        j = lit("{\"state\":{\"result\":3}}");
        assert_int_equal(rp_update_task_resp_from_json(j, &resp, err, sizeof(err)), 0);
        assert_int_equal(resp.state.result, RP_RESULT_CANCELLED);
        rp_update_task_resp_done(&resp);
        json_decref(j);
        j = lit("{\"state\":{\"result\":\"RESULT_MAYBE\"}}");
        assert_int_equal(rp_update_task_resp_from_json(j, &resp, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "result"));
        json_decref(j);
}

static void update_log_round_trip(void **state)
{
        char err[RP_ERR_MAX];
        struct rp_update_log_req req;
        json_t *j = lit("{\"taskId\":\"5\",\"index\":\"2\",\"rows\":["
                        "{\"time\":\"2026-11-28T14:19:50.250Z\",\"content\":\"hello\"},"
                        "{\"time\":\"2026-11-28T15:19:50+01:00\",\"content\":\"\"}],\"noMore\":true}");
        assert_int_equal(rp_update_log_req_from_json(j, &req, err, sizeof(err)), 0);
        assert_int_equal(req.task_id, 5);
        assert_int_equal(req.index, 2);
        assert_int_equal(req.n_rows, 2);
        assert_string_equal(req.rows[0].content, "hello");
        assert_int_equal(req.rows[0].time.sec, 1795875590);
        assert_int_equal(req.rows[0].time.nsec, 250000000);
        assert_int_equal(req.rows[1].time.sec, 1795875590); /* +01:00 offset applied */
        assert_string_equal(req.rows[1].content, ""); /* an empty line stays a line */
        assert_true(req.no_more);
        rp_update_log_req_done(&req);
        json_decref(j);

        struct rp_update_log_resp resp = { .ack_index = 7 };
        j = rp_update_log_resp_to_json(&resp);
        assert_json_eq(j, "{\"ackIndex\":\"7\"}");
        json_decref(j);

        j = lit("{\"rows\":[{\"time\":\"yesterday\"}]}");
        assert_int_equal(rp_update_log_req_from_json(j, &req, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "time"));
        json_decref(j);
}

static void timestamps(void **state)
{
        struct rp_ts ts;
        char buf[48];

        assert_int_equal(rp_ts_parse("2026-11-28T14:19:50Z", &ts), 0);
        assert_int_equal(ts.sec, 1795875590);
        assert_int_equal(rp_ts_parse("2026-11-28T14:19:50.1Z", &ts), 0);
        assert_int_equal(ts.nsec, 100000000);
        rp_ts_format(ts, buf, sizeof(buf));
        assert_string_equal(buf, "2026-11-28T14:19:50.100Z");
        assert_int_equal(rp_ts_parse("2026-11-28 14:19:50Z", &ts), -EINVAL);
        assert_int_equal(rp_ts_parse("2026-13-28T14:19:50Z", &ts), -EINVAL);
        assert_int_equal(rp_ts_parse("2026-11-28T14:19:50", &ts), -EINVAL);
        assert_int_equal(rp_ts_parse("2026-11-28T14:19:50Zjunk", &ts), -EINVAL);
        /* Impossible dates are errors, not another day (timegm() would
         * make "02-31" the 3rd of March), and so are leap seconds, which a
         * protobuf Timestamp cannot hold. */
        ts = (struct rp_ts){ .sec = 7 };
        assert_int_equal(rp_ts_parse("2026-02-31T00:00:00Z", &ts), -EINVAL);
        assert_int_equal(rp_ts_parse("2026-02-29T00:00:00Z", &ts), -EINVAL);
        assert_int_equal(rp_ts_parse("2026-11-28T23:59:60Z", &ts), -EINVAL);
        assert_int_equal(rp_ts_parse("2026-11-28T14:19:50.1234567891Z", &ts), -EINVAL);
        assert_int_equal(rp_ts_parse("0000-01-01T00:00:00Z", &ts), -EINVAL);
        assert_true(ts.sec == 7);
        assert_int_equal(rp_ts_parse("2028-02-29T00:00:00+01:00", &ts), 0);
        assert_true(ts.sec == 1835391600);
        /* A Timestamp outside years 0001..9999 cannot be encoded. */
        struct rp_log_row row = { .time = { .sec = INT64_MAX, .set = true } };
        assert_int_equal(rp_ts_format(row.time, buf, sizeof(buf)), -ERANGE);
        assert_null(rp_log_row_to_json(&row));
}

static void connect_errors(void **state)
{
        struct rp_error e = { .code = RP_CODE_UNAUTHENTICATED };
        snprintf(e.message, sizeof(e.message), "unregistered runner");
        json_t *j = rp_error_to_json(&e);
        assert_json_eq(j, "{\"code\":\"unauthenticated\",\"message\":\"unregistered runner\"}");
        json_decref(j);

        /* Connect protocol HTTP mapping. */
        assert_int_equal(rp_code_http_status(RP_CODE_UNAUTHENTICATED), 401);
        assert_int_equal(rp_code_http_status(RP_CODE_INVALID_ARGUMENT), 400);
        assert_int_equal(rp_code_http_status(RP_CODE_ALREADY_EXISTS), 409);
        assert_int_equal(rp_code_http_status(RP_CODE_UNIMPLEMENTED), 501);
        assert_int_equal(rp_code_http_status(RP_CODE_INTERNAL), 500);
        assert_int_equal(rp_code_from_http_status(404), RP_CODE_UNIMPLEMENTED);
        assert_int_equal(rp_code_from_http_status(503), RP_CODE_UNAVAILABLE);

        struct rp_error back;
        j = lit("{\"code\":\"already_exists\",\"message\":\"log file has been archived\"}");
        assert_int_equal(rp_error_from_json(j, &back), 0);
        assert_int_equal(back.code, RP_CODE_ALREADY_EXISTS);
        assert_string_equal(back.message, "log file has been archived");
        json_decref(j);
        j = lit("{\"code\":\"teapot\"}");
        assert_int_equal(rp_error_from_json(j, &back), -EINVAL);
        json_decref(j);

        /* A message that does not fit is marked as cut, not cut silently;
         * one that fits exactly is whole. */
        char body[600], text[400];
        for (size_t len = sizeof(back.message) - 1; len <= sizeof(back.message); len++) {
                memset(text, 'm', len);
                text[len] = '\0';
                snprintf(body, sizeof(body), "{\"code\":\"internal\",\"message\":\"%s\"}", text);
                j = lit(body);
                assert_int_equal(rp_error_from_json(j, &back), 0);
                assert_int_equal(strlen(back.message), sizeof(back.message) - 1);
                if (len < sizeof(back.message))
                        assert_string_equal(back.message, text);
                else
                        assert_string_equal(back.message + sizeof(back.message) - 7, " [cut]");
                json_decref(j);
        }
}

static void decoders_survive_hostile_input(void **state)
{
        /* Every decoder on a set of wrong-shaped objects: must fail or succeed
         * cleanly, never crash or leak (ASan run). */
        static const char *const inputs[] = {
                "{}", "{\"task\":[]}", "{\"task\":{\"id\":{}}}", "{\"runner\":\"x\"}",
                "{\"state\":{\"steps\":{}}}", "{\"state\":{\"steps\":[1]}}",
                "{\"rows\":[null]}", "{\"rows\":\"x\"}", "{\"labels\":[1,2]}",
                "{\"additionalTasks\":[{\"id\":\"1\"},{\"id\":[]}]}",
                "{\"needs\":{\"a\":{\"outputs\":{\"k\":2}}}}", "{\"handle\":5}",
        };
        char err[RP_ERR_MAX];
        for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
                json_t *j = lit(inputs[i]);
#define TRYDEC(t) do { struct rp_##t m; if (rp_##t##_from_json(j, &m, err, sizeof(err)) == 0) rp_##t##_done(&m); } while (0)
                TRYDEC(fetch_task_resp);
                TRYDEC(fetch_single_task_resp);
                TRYDEC(register_resp);
                TRYDEC(declare_req);
                TRYDEC(update_task_req);
                TRYDEC(update_log_req);
                TRYDEC(task);
                TRYDEC(fetch_single_task_req);
#undef TRYDEC
                json_decref(j);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(fetch_task_req_int64_as_string),
                cmocka_unit_test(fetch_task_req_accepts_snake_number_and_null),
                cmocka_unit_test(wrong_types_are_rejected_with_field_name),
                cmocka_unit_test(register_request_and_response),
                cmocka_unit_test(task_with_payload_context_secrets),
                cmocka_unit_test(binary_payload_base64),
                cmocka_unit_test(update_task_state_enums_and_timestamps),
                cmocka_unit_test(update_log_round_trip),
                cmocka_unit_test(timestamps),
                cmocka_unit_test(connect_errors),
                cmocka_unit_test(decoders_survive_hostile_input),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
