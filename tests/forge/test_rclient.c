/* test_rclient.c: the asynchronous runner-protocol client on the real
 * event loop against a forgejo-sim child: Register with a registration
 * token, Declare, FetchTask (a lost answer recovered with its request key),
 * UpdateLog and UpdateTask, Connect errors, a forge that is not there, a
 * raw relayed body, and cancel/free with calls in flight. */
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
#include "forge/rclient.h"
#include "http/hmulti.h"
#include "loop/loop.h"
#include "util/httpc.h"

static struct sim *S;
static struct sim_user admin;

static int group_setup(void **state)
{
        long long id;

        httpc_global_init();
        if (sim_start(NULL, &S) < 0)
                return -1;
        if (sim_create_user(S, "admin", true, &admin) < 0 || sim_create_org(S, "acme", NULL, &id) < 0 ||
            sim_create_repo(S, "acme", "app", &id) < 0) {
                sim_stop(S);
                return -1;
        }
        return 0;
}

static int group_teardown(void **state)
{
        return sim_stop(S) < 0 ? -1 : 0;
}

struct fx {
        struct loop *loop;
        struct hmulti *hm;
        struct rclient *c;
};

struct answer {
        bool done;
        struct rclient_result res;
        json_t *resp;
        char raw[4096];
        size_t raw_len;
};

static void on_answer(void *ud, const struct rclient_result *res, json_t *resp)
{
        struct answer *a = ud;

        a->done = true;
        a->res = *res;
        a->resp = json_incref(resp);
}

static void on_raw(void *ud, const struct rclient_result *res, const void *body, size_t len)
{
        struct answer *a = ud;

        a->done = true;
        a->res = *res;
        if (len < sizeof(a->raw)) {
                memcpy(a->raw, body, len);
                a->raw_len = len;
        }
}

static void wait_for(struct fx *f, struct answer *a)
{
        for (int i = 0; i < 500 && !a->done; i++)
                assert_true(loop_run_once(f->loop, 20) >= 0);
        assert_true(a->done);
}

static int fx_setup(void **state)
{
        static struct fx f;
        struct rclient_opts o = { .base_url = S->base_url, .codec = RCLIENT_JSON, .timeout_ms = 5000 };

        memset(&f, 0, sizeof(f));
        if (loop_new(&f.loop) < 0 || hmulti_new(f.loop, NULL, &f.hm) < 0 || rclient_new(f.hm, &o, &f.c) < 0)
                return -1;
        *state = &f;
        return 0;
}

static int fx_teardown(void **state)
{
        struct fx *f = *state;

        rclient_free(f->c);
        hmulti_free(f->hm);
        loop_free(f->loop);
        return 0;
}

/* Calls method with a JSON literal and waits; the answer is the caller's. */
static struct answer call(struct fx *f, const char *method, const char *req_json, const char *key)
{
        struct answer a = { 0 };
        json_t *req = json_loads(req_json, 0, NULL);

        assert_non_null(req);
        assert_int_equal(rclient_call(f->c, method, req, key, on_answer, &a, NULL), 0);
        json_decref(req);
        assert_false(a.done); /* never from inside the call */
        wait_for(f, &a);
        return a;
}

static char uuid_of_last[64], token_of_last[128];

static void registered(struct fx *f, const char *name)
{
        struct sim_resp r;
        char body[512];

        assert_int_equal(sim_get(S, "/api/v1/orgs/acme/actions/runners/registration-token", admin.token, &r), 0);
        assert_int_equal(r.status, 200);
        json_t *t = json_loadb(r.body, r.len, 0, NULL);
        snprintf(body, sizeof(body), "{\"name\":\"%s\",\"token\":\"%s\",\"labels\":[\"lx\"],\"version\":\"t\"}", name,
                 json_string_value(json_object_get(t, "token")));
        json_decref(t);
        sim_resp_done(&r);
        struct answer a = call(f, RP_SVC_RUNNER "Register", body, NULL);
        assert_int_equal(a.res.err, 0);
        json_t *rn = json_object_get(a.resp, "runner");
        snprintf(uuid_of_last, sizeof(uuid_of_last), "%s", json_string_value(json_object_get(rn, "uuid")));
        snprintf(token_of_last, sizeof(token_of_last), "%s", json_string_value(json_object_get(rn, "token")));
        assert_int_equal(rclient_set_identity(f->c, uuid_of_last, token_of_last), 0);
        json_decref(a.resp);
}

static void register_declare_fetch_update(void **state)
{
        struct fx *f = *state;
        struct sim_job job;
        struct answer a;

        registered(f, "broker-1");
        a = call(f, RP_SVC_RUNNER "Declare", "{\"version\":\"t\",\"labels\":[\"lx\"]}", NULL);
        assert_int_equal(a.res.err, 0);
        json_decref(a.resp);

        /* Nothing waiting: an answer without a task. */
        a = call(f, RP_SVC_RUNNER "FetchTask", "{\"tasksVersion\":\"0\"}", "k-empty");
        assert_int_equal(a.res.err, 0);
        assert_null(json_object_get(a.resp, "task"));
        json_decref(a.resp);

        assert_int_equal(sim_create_job(S, "acme", "app", "build", "[\"lx\"]", NULL, &job), 0);
        /* The answer that assigns the task comes too late ... */
        assert_int_equal(sim_fault(S, "{\"path_prefix\":\"/api/actions/runner.v1.RunnerService/FetchTask\","
                                      "\"mode\":\"delay\",\"seconds\":1.5,\"count\":1,\"after\":true}"), 0);
        struct rclient *impatient;
        struct rclient_opts o = { .base_url = S->base_url, .timeout_ms = 300 };
        assert_int_equal(rclient_new(f->hm, &o, &impatient), 0);
        a = (struct answer){ 0 };
        json_t *req = json_pack("{s:s}", "tasksVersion", "0");
        /* the same runner identity as f->c */
        assert_int_equal(rclient_set_identity(impatient, uuid_of_last, token_of_last), 0);
        assert_int_equal(rclient_call(impatient, RP_SVC_RUNNER "FetchTask", req, "k-1", on_answer, &a, NULL), 0);
        json_decref(req);
        wait_for(f, &a);
        rclient_free(impatient);
        assert_int_equal(a.res.err, -ETIMEDOUT);
        assert_int_equal(a.res.status, 0);
        assert_int_equal(a.res.cerr.code, RP_CODE_DEADLINE_EXCEEDED);
        assert_null(a.resp);
        /* ... and the same key gets the task again. */
        a = call(f, RP_SVC_RUNNER "FetchTask", "{\"tasksVersion\":\"0\"}", "k-1");
        assert_int_equal(a.res.err, 0);
        json_t *task = json_object_get(a.resp, "task");
        assert_non_null(task);
        json_int_t tid = 0;
        const char *ids = json_string_value(json_object_get(task, "id"));
        assert_non_null(ids);
        tid = strtoll(ids, NULL, 10);
        assert_true(tid > 0);
        json_decref(a.resp);

        char body[256];
        snprintf(body, sizeof(body), "{\"taskId\":\"%lld\",\"index\":\"0\",\"rows\":[{\"content\":\"hello\"}]}",
                 (long long)tid);
        a = call(f, RP_SVC_RUNNER "UpdateLog", body, NULL);
        assert_int_equal(a.res.err, 0);
        assert_string_equal(json_string_value(json_object_get(a.resp, "ackIndex")), "1");
        json_decref(a.resp);

        /* The raw form: the body goes as it is. */
        struct answer b = { 0 };
        snprintf(body, sizeof(body), "{\"state\":{\"id\":\"%lld\",\"result\":\"RESULT_SUCCESS\"}}", (long long)tid);
        assert_int_equal(rclient_call_raw(f->c, RP_SVC_RUNNER "UpdateTask", RCLIENT_JSON, body, strlen(body), NULL,
                                          on_raw, &b, NULL), 0);
        wait_for(f, &b);
        assert_int_equal(b.res.err, 0);
        assert_non_null(strstr(b.raw, "RESULT_SUCCESS"));

        json_t *j = NULL;
        assert_int_equal(sim_get_job(S, job.id, &j), 0);
        assert_string_equal(json_string_value(json_object_get(j, "status")), "success");
        json_decref(j);
}

static void connect_errors(void **state)
{
        struct fx *f = *state;
        struct answer a;

        /* No identity: the forge says who is calling is unknown. */
        a = call(f, RP_SVC_RUNNER "Declare", "{}", NULL);
        assert_int_equal(a.res.err, -EPROTO);
        assert_int_equal(a.res.cerr.code, RP_CODE_UNAUTHENTICATED);
        assert_null(a.resp);
        assert_int_equal(rclient_set_identity(f->c, "nope", "nope"), 0);
        a = call(f, RP_SVC_RUNNER "FetchTask", "{}", NULL);
        assert_int_equal(a.res.cerr.code, RP_CODE_UNAUTHENTICATED);
        a = call(f, RP_SVC_RUNNER "Register", "{\"name\":\"x\",\"token\":\"bad\"}", NULL);
        assert_int_equal(a.res.cerr.code, RP_CODE_INVALID_ARGUMENT);
        assert_non_null(strstr(a.res.cerr.message, "registration token"));
        /* A 5xx without a Connect body maps by status. */
        assert_int_equal(sim_fault(S, "{\"path_prefix\":\"/api/actions/\",\"mode\":\"status\",\"status\":503,"
                                      "\"count\":1}"), 0);
        a = call(f, RP_SVC_RUNNER "Declare", "{}", NULL);
        assert_int_equal(a.res.err, -EPROTO);
        assert_int_equal(a.res.status, 503);
        assert_int_equal(a.res.cerr.code, RP_CODE_UNAVAILABLE);
        /* A 200 that is not a message. */
        assert_int_equal(sim_fault(S, "{\"path_prefix\":\"/api/actions/\",\"mode\":\"garbage\",\"count\":1}"), 0);
        a = call(f, "ping.v1.PingService/Ping", "{\"data\":\"x\"}", NULL);
        assert_int_equal(a.res.err, -EBADMSG);
        a = call(f, "ping.v1.PingService/Ping", "{\"data\":\"x\"}", NULL);
        assert_int_equal(a.res.err, 0);
        assert_string_equal(json_string_value(json_object_get(a.resp, "data")), "Hello, x!");
        json_decref(a.resp);
}

static void forge_not_there(void **state)
{
        struct fx *f = *state;
        struct rclient *c;
        struct rclient_opts o = { .base_url = "http://127.0.0.1:1", .timeout_ms = 2000 };
        struct answer a = { 0 };

        assert_int_equal(rclient_new(f->hm, &o, &c), 0);
        assert_int_equal(rclient_call(c, "ping.v1.PingService/Ping", NULL, NULL, on_answer, &a, NULL), 0);
        wait_for(f, &a);
        assert_int_equal(a.res.err, -ECONNREFUSED);
        assert_int_equal(a.res.cerr.code, RP_CODE_UNAVAILABLE);
        rclient_free(c);
        o.base_url = "";
        assert_int_equal(rclient_new(f->hm, &o, &c), -EINVAL);
}

/* Cancelled and freed calls never answer, and free everything. */
static void cancel_and_free(void **state)
{
        struct fx *f = *state;
        struct answer a = { 0 }, b = { 0 };
        struct rclient_call *k;

        assert_int_equal(sim_fault(S, "{\"path_prefix\":\"/api/actions/\",\"mode\":\"delay\",\"seconds\":1,"
                                      "\"count\":2}"), 0);
        assert_int_equal(rclient_call(f->c, "ping.v1.PingService/Ping", NULL, NULL, on_answer, &a, &k), 0);
        assert_int_equal(rclient_call(f->c, "ping.v1.PingService/Ping", NULL, NULL, on_answer, &b, NULL), 0);
        assert_int_equal(rclient_inflight(f->c), 2);
        rclient_cancel(k);
        assert_int_equal(rclient_inflight(f->c), 1);
        for (int i = 0; i < 10; i++)
                assert_true(loop_run_once(f->loop, 10) >= 0);
        rclient_free(f->c);
        f->c = NULL;
        for (int i = 0; i < 150; i++)
                assert_true(loop_run_once(f->loop, 10) >= 0);
        assert_false(a.done);
        assert_false(b.done);
        assert_int_equal(hmulti_inflight(f->hm), 0);
        assert_int_equal(sim_faults_clear(S), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(register_declare_fetch_update, fx_setup, fx_teardown),
                cmocka_unit_test_setup_teardown(connect_errors, fx_setup, fx_teardown),
                cmocka_unit_test_setup_teardown(forge_not_there, fx_setup, fx_teardown),
                cmocka_unit_test_setup_teardown(cancel_and_free, fx_setup, fx_teardown),
        };

        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
