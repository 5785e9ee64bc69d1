/* faults.c: kube-fake answers 409/410/429/500 on demand through
 * POST /_fake/faults: for the next N requests matching a method and path
 * prefix, after authentication, with a Status object (429 with
 * Retry-After: 1), then normally again. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kfx.h"

#define JOBS "/apis/batch/v1/namespaces/faults/jobs"
#define SECRETS "/api/v1/namespaces/faults/secrets"

static const char *const sh_true[] = { "/bin/true", NULL };

static void request(const char *method, const char *path, const char *body,
                    struct kubefake_resp *r)
{
        assert_int_equal(kubefake_request(kfx, KUBEFAKE_AUTH_TOKEN, method, path, body, r), 0);
}

static void too_many_requests_then_normal(void **state)
{
        struct kubefake_resp r;
        char *job = kfx_job("after-429", "busybox", sh_true, NULL, NULL, NULL);

        (void)state;
        assert_int_equal(kubefake_ctl(kfx, "POST", "faults", "{\"method\":\"POST\","
                                      "\"path_prefix\":\"/apis/batch/v1/\",\"status\":429,"
                                      "\"count\":2,\"message\":\"slow down\"}", NULL), 200);
        for (int i = 0; i < 2; i++) {
                request("POST", JOBS, job, &r);
                assert_int_equal(r.status, 429);
                assert_string_equal(r.retry_after, "1");
                assert_string_equal(json_string_value(json_object_get(r.json, "kind")), "Status");
                assert_string_equal(json_string_value(json_object_get(r.json, "reason")),
                                    "TooManyRequests");
                assert_string_equal(json_string_value(json_object_get(r.json, "message")),
                                    "slow down");
                kubefake_resp_done(&r);
        }
        /* The faulted requests did nothing. */
        assert_int_equal(kfx_get(JOBS "/after-429", NULL), 404);
        request("POST", JOBS, job, &r);
        assert_int_equal(r.status, 201);
        assert_string_equal(r.retry_after, "");
        kubefake_resp_done(&r);
        free(job);
}

static void each_status(void **state)
{
        static const struct { int status; const char *reason; } cases[] = {
                { 409, "Conflict" }, { 410, "Expired" }, { 500, "InternalError" },
        };
        struct kubefake_resp r;
        char body[256];

        (void)state;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                snprintf(body, sizeof(body), "{\"method\":\"GET\",\"path_prefix\":\"" SECRETS
                         "\",\"status\":%d,\"count\":1}", cases[i].status);
                assert_int_equal(kubefake_ctl(kfx, "POST", "/_fake/faults", body, NULL), 200);
                request("GET", SECRETS, NULL, &r);
                assert_int_equal(r.status, cases[i].status);
                assert_string_equal(json_string_value(json_object_get(r.json, "reason")),
                                    cases[i].reason);
                assert_int_equal(json_integer_value(json_object_get(r.json, "code")),
                                 cases[i].status);
                kubefake_resp_done(&r);
                request("GET", SECRETS, NULL, &r);
                assert_int_equal(r.status, 200);
                kubefake_resp_done(&r);
        }
}

static void method_and_prefix_select(void **state)
{
        struct kubefake_resp r;

        (void)state;
        assert_int_equal(kubefake_ctl(kfx, "POST", "faults", "{\"method\":\"POST\","
                                      "\"path_prefix\":\"" SECRETS "\",\"status\":500}", NULL),
                         200);
        /* Another method, another prefix: untouched, fault kept. */
        request("GET", SECRETS, NULL, &r);
        assert_int_equal(r.status, 200);
        kubefake_resp_done(&r);
        request("POST", "/apis/batch/v1/namespaces/faults/jobs", "{}", &r);
        assert_int_not_equal(r.status, 500);
        kubefake_resp_done(&r);
        /* An unauthenticated request is refused first and uses no count. */
        assert_int_equal(kubefake_request(kfx, KUBEFAKE_AUTH_NONE, "POST", SECRETS, "{}", &r), 0);
        assert_int_equal(r.status, 401);
        kubefake_resp_done(&r);
        request("POST", SECRETS, "{\"metadata\":{\"name\":\"f\"}}", &r);
        assert_int_equal(r.status, 500);
        kubefake_resp_done(&r);
        request("POST", SECRETS, "{\"metadata\":{\"name\":\"f\"}}", &r);
        assert_int_equal(r.status, 201);
        kubefake_resp_done(&r);
}

static void watch_faulted(void **state)
{
        struct kubefake_watch *w;
        json_t *ev = NULL;

        (void)state;
        assert_int_equal(kubefake_ctl(kfx, "POST", "faults", "{\"path_prefix\":"
                                      "\"/api/v1/namespaces/faults/pods\",\"status\":410}", NULL),
                         200);
        assert_int_equal(kubefake_watch_open(kfx, "/api/v1/namespaces/faults/pods?watch=1&"
                                             "resourceVersion=1", &w), 0);
        assert_int_equal(kubefake_watch_status(w), 410);
        assert_int_equal(kubefake_watch_next(w, 1000, &ev), 0);
        assert_string_equal(json_string_value(json_object_get(ev, "kind")), "Status");
        json_decref(ev);
        kubefake_watch_close(w);
}

static void bad_fault_refused(void **state)
{
        (void)state;
        assert_int_equal(kubefake_ctl(kfx, "POST", "faults", "{\"path_prefix\":\"/\","
                                      "\"status\":404}", NULL), 400);
        assert_int_equal(kubefake_ctl(kfx, "POST", "faults", "{\"status\":500}", NULL), 400);
        assert_int_equal(kubefake_ctl(kfx, "POST", "faults", "{\"path_prefix\":\"/\","
                                      "\"status\":500,\"count\":0}", NULL), 400);
        assert_int_equal(kubefake_ctl(kfx, "POST", "faults", "{\"path_prefix\":\"/\","
                                      "\"status\":500,\"extra\":1}", NULL), 400);
        assert_int_equal(kubefake_ctl(kfx, "POST", "faults", "not json", NULL), 400);
        assert_int_equal(kubefake_ctl(kfx, "GET", "nothing-here", NULL, NULL), 404);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(too_many_requests_then_normal),
                cmocka_unit_test(each_status),
                cmocka_unit_test(method_and_prefix_select),
                cmocka_unit_test(watch_faulted),
                cmocka_unit_test(bad_fault_refused),
        };
        return cmocka_run_group_tests(tests, kfx_setup, kfx_teardown);
}
