/* test_rpc.c: the blocking runner-protocol client (rpc.h) against a
 * forgejo-sim child, in both codecs: a runner's whole conversation
 * (Declare, FetchTask, UpdateLog, UpdateTask), gzip in both directions as
 * the simulator counts it, Connect errors, answers in the wrong codec and
 * requests the schema cannot express. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "sim.h"
#include "forge/rpc.h"
#include "util/httpc.h"

static struct sim *S;
static struct sim_user admin;

static int group_setup(void **state)
{
        long long id;

        httpc_global_init();
        if (sim_start(NULL, &S) < 0 || sim_create_user(S, "admin", true, &admin) < 0 ||
            sim_create_repo(S, "admin", "app", &id) < 0) {
                fprintf(stderr, "cannot start forgejo-sim (FORGEJO_SIM=%s)\n",
                        getenv("FORGEJO_SIM") ? getenv("FORGEJO_SIM") : "");
                sim_stop(S);
                S = NULL;
                return -1;
        }
        return 0;
}

static int group_teardown(void **state)
{
        int r = sim_stop(S);

        S = NULL;
        return r < 0 ? -1 : 0;
}

struct counts {
        long long proto, json, gzip_in, gzip_out;
};

static struct counts counts(void)
{
        json_t *st = NULL, *c, *g;
        struct counts n;

        assert_int_equal(sim_stats(S, &st), 0);
        c = json_object_get(st, "codecs");
        g = json_object_get(st, "gzip");
        n.proto = json_integer_value(json_object_get(c, "proto"));
        n.json = json_integer_value(json_object_get(c, "json"));
        n.gzip_in = json_integer_value(json_object_get(g, "requests"));
        n.gzip_out = json_integer_value(json_object_get(g, "responses"));
        json_decref(st);
        return n;
}

static void reset_counts(void)
{
        struct sim_resp r;

        assert_int_equal(sim_delete(S, "/_sim/stats", NULL, &r), 0);
        assert_int_equal(r.status, 204);
        sim_resp_done(&r);
}

static void client(struct rpc_client *c, const struct sim_runner *rn, enum rpcodec codec)
{
        assert_int_equal(rpc_client_init(c, S->base_url, rn ? rn->uuid : NULL, rn ? rn->token : NULL,
                                         5000), 0);
        assert_int_equal(c->codec, RPCODEC_PROTO);
        c->codec = codec;
}

static json_t *call_ok(struct rpc_client *c, const char *method, json_t *req)
{
        struct rp_error e;
        json_t *resp = NULL;
        int r = rpc_call(c, method, req, NULL, &resp, &e);

        if (r < 0)
                fail_msg("%s in %s: %d %s: %s", method, rpcodec_name(c->codec), r, rp_code_name(e.code),
                         e.message);
        json_decref(req);
        return resp;
}

/* A runner's conversation, the task bigger than the 1 KiB the server
 * gzips from, the log rows big enough to be gzipped on the way up. */
static void conversation(enum rpcodec codec)
{
        static int nth;
        char name[32], steps[2200];
        struct sim_runner rn;
        struct sim_job job;
        struct rpc_client c;
        struct rp_fetch_task_resp fr;
        struct rp_update_task_resp ur;
        char err[RP_ERR_MAX];
        struct counts n;
        json_t *j, *rows;

        snprintf(name, sizeof(name), "j%d", ++nth);
        snprintf(steps, sizeof(steps), "[\"echo %0*d\"]", 2000, 7);
        assert_int_equal(sim_create_job(S, "admin", "app", name, "[\"rpc\"]", steps, &job), 0);
        assert_int_equal(sim_runner_create(S, "/api/v1/admin", admin.token, name, true, &rn), 0);
        reset_counts();
        client(&c, &rn, codec);
        c.gzip_requests = true;

        json_decref(call_ok(&c, RP_SVC_RUNNER "Declare", json_pack("{s:s, s:[s]}", "version", "v", "labels", "rpc")));
        j = call_ok(&c, RP_SVC_RUNNER "FetchTask", json_object());
        assert_int_equal(rp_fetch_task_resp_from_json(j, &fr, err, sizeof(err)), 0);
        json_decref(j);
        assert_non_null(fr.task);
        assert_true(fr.task->workflow_payload_len > 2000);
        assert_non_null(strstr((const char *)fr.task->workflow_payload, "0000007"));

        rows = json_array();
        for (int i = 0; i < 40; i++)
                json_array_append_new(rows, json_pack("{s:s, s:s}", "time", "2026-01-01T00:00:00Z",
                                                      "content", "a log line long enough to add up"));
        j = call_ok(&c, RP_SVC_RUNNER "UpdateLog",
                    json_pack("{s:I, s:s, s:o, s:b}", "taskId", (json_int_t)fr.task->id, "index", "0",
                              "rows", rows, "noMore", 1));
        assert_string_equal(json_string_value(json_object_get(j, "ackIndex")), "40");
        json_decref(j);
        j = call_ok(&c, RP_SVC_RUNNER "UpdateTask",
                    json_pack("{s:{s:I, s:s}}", "state", "id", (json_int_t)fr.task->id,
                              "result", "RESULT_SUCCESS"));
        assert_int_equal(rp_update_task_resp_from_json(j, &ur, err, sizeof(err)), 0);
        assert_int_equal(ur.state.result, RP_RESULT_SUCCESS);
        json_decref(j);

        n = counts();
        assert_int_equal(codec == RPCODEC_PROTO ? n.proto : n.json, 4);
        assert_int_equal(codec == RPCODEC_PROTO ? n.json : n.proto, 0);
        assert_int_equal(n.gzip_in, 1);          /* the UpdateLog */
        assert_int_equal(n.gzip_out, 1);         /* the task */
        rp_update_task_resp_done(&ur);
        rp_fetch_task_resp_done(&fr);
        rpc_client_done(&c);
}

static void conversation_in_proto(void **state)
{
        conversation(RPCODEC_PROTO);
}

static void conversation_in_json(void **state)
{
        conversation(RPCODEC_JSON);
}

/* Without gzip_requests nothing goes up compressed; small answers are
 * never compressed. */
static void small_bodies_stay_plain(void **state)
{
        struct rpc_client c;
        json_t *j;
        struct counts n;

        reset_counts();
        client(&c, NULL, RPCODEC_PROTO);
        j = call_ok(&c, RP_SVC_PING "Ping", json_pack("{s:s}", "data", "x"));
        assert_string_equal(json_string_value(json_object_get(j, "data")), "Hello, x!");
        json_decref(j);
        n = counts();
        assert_int_equal(n.proto, 1);
        assert_int_equal(n.gzip_in + n.gzip_out, 0);
        rpc_client_done(&c);
}

/* A Connect error is JSON whatever the codec; the client reads its code. */
static void connect_errors_in_both_codecs(void **state)
{
        struct sim_runner bad = { .uuid = "7d0b4a36-31a2-4c2d-9a52-3f5c1c0b9e11", .token = "nope" };
        struct rpc_client c;
        struct rp_error e;
        json_t *resp = NULL;

        for (int codec = RPCODEC_PROTO; codec <= RPCODEC_JSON; codec++) {
                client(&c, &bad, codec);
                assert_int_equal(rpc_call(&c, RP_SVC_RUNNER "FetchTask", NULL, NULL, &resp, &e), -EPROTO);
                assert_int_equal(e.code, RP_CODE_UNAUTHENTICATED);
                assert_string_equal(e.message, "unregistered runner");
                assert_null(resp);
                rpc_client_done(&c);
        }
}

/* A 200 answer in the other codec, or not a message at all, is refused. */
static void wrong_answers_are_refused(void **state)
{
        struct rpc_client c;
        struct rp_error e;
        json_t *resp = NULL;

        for (int codec = RPCODEC_PROTO; codec <= RPCODEC_JSON; codec++) {
                assert_int_equal(sim_fault(S, "{\"path_prefix\":\"/api/actions/ping.v1\",\"mode\":\"garbage\","
                                              "\"count\":1}"), 0);
                client(&c, NULL, codec);
                assert_int_equal(rpc_call(&c, RP_SVC_PING "Ping", NULL, NULL, &resp, &e), -EBADMSG);
                assert_int_equal(e.code, RP_CODE_INTERNAL);
                if (codec == RPCODEC_PROTO)
                        assert_non_null(strstr(e.message, "expected application/proto"));
                else
                        assert_non_null(strstr(e.message, "response: "));
                assert_null(resp);
                rpc_client_done(&c);
        }
}

/* What the schema cannot carry never leaves the client. */
static void unencodable_requests_are_refused(void **state)
{
        struct rpc_client c;
        struct rp_error e;
        json_t *resp = NULL;
        struct counts n;

        reset_counts();
        client(&c, NULL, RPCODEC_PROTO);
        assert_int_equal(rpc_call(&c, RP_SVC_RUNNER "NoSuchMethod", NULL, NULL, &resp, &e), -EINVAL);
        assert_int_equal(e.code, RP_CODE_INVALID_ARGUMENT);
        json_t *bad = json_pack("{s:s}", "tasks_versio", "1");
        assert_int_equal(rpc_call(&c, RP_SVC_RUNNER "FetchTask", bad, NULL, &resp, &e), -EINVAL);
        assert_non_null(strstr(e.message, "unknown field \"tasks_versio\""));
        json_decref(bad);
        n = counts();
        assert_int_equal(n.proto + n.json, 0);
        rpc_client_done(&c);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(conversation_in_proto),
                cmocka_unit_test(conversation_in_json),
                cmocka_unit_test(small_bodies_stay_plain),
                cmocka_unit_test(connect_errors_in_both_codecs),
                cmocka_unit_test(wrong_answers_are_refused),
                cmocka_unit_test(unencodable_requests_are_refused),
        };

        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
