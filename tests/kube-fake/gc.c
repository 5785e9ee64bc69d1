/* gc.c: deleting Jobs with each propagation policy and the garbage
 * collector: Background removes the job at once and its pods (their
 * processes get SIGTERM) and the Secret it owns; no policy (batch/v1's
 * default) and Orphan keep the dependents and strip their ownerReferences,
 * with a real server's Warning; Foreground keeps the job, marked, until its
 * pods are gone; a Secret whose owners are all gone is collected. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kfx.h"

#define NS "gc"
#define JOBS "/apis/batch/v1/namespaces/" NS "/jobs"
#define PODS "/api/v1/namespaces/" NS "/pods"
#define SECRETS "/api/v1/namespaces/" NS "/secrets"

/* A job sleeping until SIGTERM, its Secret owned by it. Returns the pod's
 * name (static) and pid. */
static const char *start(const char *job, const char *secret, int *ret_pid)
{
        const char *argv[] = { "/bin/sleep", "60", NULL };
        char *body = kfx_job(job, "busybox", argv, NULL, secret, NULL);
        static char podname[128];
        json_t *j = NULL, *pod, *all = NULL, *p;
        char sbody[512];
        size_t i;

        assert_int_equal(kfx_post(JOBS, body, &j), 201);
        free(body);
        snprintf(sbody, sizeof(sbody), "{\"metadata\":{\"name\":\"%s\",\"ownerReferences\":"
                 "[{\"apiVersion\":\"batch/v1\",\"kind\":\"Job\",\"name\":\"%s\",\"uid\":\"%s\","
                 "\"controller\":true,\"blockOwnerDeletion\":true}]},"
                 "\"stringData\":{\"token\":\"t\"}}", secret, job,
                 json_string_value(json_object_get(json_object_get(j, "metadata"), "uid")));
        json_decref(j);
        assert_int_equal(kfx_post(SECRETS, sbody, NULL), 201);
        pod = kfx_wait_pod(NS, job, "Running", 5000);
        assert_non_null(pod);
        snprintf(podname, sizeof(podname), "%s", json_string_value(json_object_get(
                json_object_get(pod, "metadata"), "name")));
        json_decref(pod);
        assert_int_equal(kubefake_ctl(kfx, "GET", "pods", NULL, &all), 200);
        *ret_pid = 0;
        json_array_foreach(json_object_get(all, "pods"), i, p)
                if (strcmp(json_string_value(json_object_get(p, "name")), podname) == 0)
                        *ret_pid = (int)json_integer_value(json_object_get(p, "pid"));
        json_decref(all);
        assert_true(*ret_pid > 0);
        return podname;
}

static bool wait_dead(int pid)
{
        for (int i = 0; i < 250 && kfx_pid_alive(pid); i++)
                kfx_sleep_ms(20);
        return !kfx_pid_alive(pid);
}

static void background_takes_everything(void **state)
{
        int pid;
        const char *pod = start("bg", "bg-token", &pid);
        char path[256];
        struct kubefake_resp r;

        (void)state;
        assert_int_equal(kubefake_request(kfx, KUBEFAKE_AUTH_TOKEN, "DELETE",
                                          JOBS "/bg?propagationPolicy=Background", NULL, &r), 0);
        assert_int_equal(r.status, 200);
        assert_string_equal(json_string_value(json_object_get(r.json, "status")), "Success");
        assert_string_equal(r.warning, "");
        kubefake_resp_done(&r);
        assert_int_equal(kfx_get(JOBS "/bg", NULL), 404);
        snprintf(path, sizeof(path), PODS "/%s", pod);
        assert_true(kfx_wait_status(path, 404, 5000));
        assert_true(wait_dead(pid));
        assert_true(kfx_wait_status(SECRETS "/bg-token", 404, 3000));
}

static void no_policy_orphans_with_warning(void **state)
{
        int pid;
        const char *pod = start("orph", "orph-token", &pid);
        char path[256];
        struct kubefake_resp r;
        json_t *p = NULL, *s = NULL;

        (void)state;
        assert_int_equal(kubefake_request(kfx, KUBEFAKE_AUTH_TOKEN, "DELETE", JOBS "/orph", NULL,
                                          &r), 0);
        assert_int_equal(r.status, 200);
        assert_non_null(strstr(r.warning, "child pods are preserved by default"));
        kubefake_resp_done(&r);
        assert_int_equal(kfx_get(JOBS "/orph", NULL), 404);
        kfx_sleep_ms(300);
        snprintf(path, sizeof(path), PODS "/%s", pod);
        assert_int_equal(kfx_get(path, &p), 200);
        assert_string_equal(json_string_value(json_object_get(json_object_get(p, "status"),
                                                              "phase")), "Running");
        assert_int_equal(json_array_size(json_object_get(json_object_get(p, "metadata"),
                                                         "ownerReferences")), 0);
        json_decref(p);
        assert_true(kfx_pid_alive(pid));
        assert_int_equal(kfx_get(SECRETS "/orph-token", &s), 200);
        assert_int_equal(json_array_size(json_object_get(json_object_get(s, "metadata"),
                                                         "ownerReferences")), 0);
        json_decref(s);
        snprintf(path, sizeof(path), PODS "/%s?gracePeriodSeconds=0", pod);
        assert_int_equal(kfx_delete(path, NULL, NULL), 200);
        assert_true(wait_dead(pid));
}

static void foreground_waits_for_pods(void **state)
{
        int pid;
        const char *pod = start("fg", "fg-token", &pid);
        char path[256];
        json_t *j = NULL;

        (void)state;
        (void)pod;
        assert_int_equal(kfx_delete(JOBS "/fg", "{\"propagationPolicy\":\"Foreground\"}", &j),
                         202);
        assert_non_null(json_object_get(json_object_get(j, "metadata"), "deletionTimestamp"));
        assert_string_equal(json_string_value(json_array_get(json_object_get(
                json_object_get(j, "metadata"), "finalizers"), 0)), "foregroundDeletion");
        json_decref(j);
        assert_true(kfx_wait_status(JOBS "/fg", 404, 5000));
        assert_true(wait_dead(pid));
        snprintf(path, sizeof(path), PODS "/%s", pod);
        assert_int_equal(kfx_get(path, NULL), 404);
        assert_int_equal(kfx_get(SECRETS "/fg-token", NULL), 404);
}

static void secret_of_unknown_owner_collected(void **state)
{
        (void)state;
        assert_int_equal(kfx_post(SECRETS, "{\"metadata\":{\"name\":\"lost\",\"ownerReferences\":"
                                  "[{\"apiVersion\":\"batch/v1\",\"kind\":\"Job\",\"name\":\"x\","
                                  "\"uid\":\"00000000-0000-4000-8000-000000000000\"}]}}", NULL),
                         201);
        assert_true(kfx_wait_status(SECRETS "/lost", 404, 3000));
        /* Owned by something kube-fake does not know: kept. */
        assert_int_equal(kfx_post(SECRETS, "{\"metadata\":{\"name\":\"kept\",\"ownerReferences\":"
                                  "[{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"name\":\"x\","
                                  "\"uid\":\"00000000-0000-4000-8000-000000000001\"}]}}", NULL),
                         201);
        kfx_sleep_ms(300);
        assert_int_equal(kfx_get(SECRETS "/kept", NULL), 200);
}

/* The fake's pods end with it: killed on SIGTERM, and by the kernel
 * (PR_SET_PDEATHSIG) when the fake itself is killed. */
static void pods_end_with_the_fake(void **state)
{
        struct kubefake *mine = kfx;

        (void)state;
        for (int hard = 0; hard < 2; hard++) {
                struct kubefake *other = NULL;
                int pid;
                assert_int_equal(kubefake_start(NULL, &other), 0);
                kfx = other;
                start(hard ? "end-hard" : "end-soft", "end-token", &pid);
                kfx = mine;
                assert_true(kfx_pid_alive(pid));
                if (hard) {
                        kill(kubefake_pid(other), SIGKILL);
                        for (int i = 0; i < 250 && kubefake_alive(other); i++)
                                kfx_sleep_ms(10);
                        assert_int_equal(kubefake_stop(other), -ESRCH);
                } else {
                        assert_int_equal(kubefake_stop(other), 0);
                }
                assert_true(wait_dead(pid));
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(background_takes_everything),
                cmocka_unit_test(no_policy_orphans_with_warning),
                cmocka_unit_test(foreground_waits_for_pods),
                cmocka_unit_test(secret_of_unknown_owner_collected),
                cmocka_unit_test(pods_end_with_the_fake),
        };
        return cmocka_run_group_tests(tests, kfx_setup, kfx_teardown);
}
