/* pods.c: kube-fake's simulation of Jobs and Pods with real processes: a
 * pod stays Pending until its Secret exists, then runs the container's
 * command with exactly its env and the Secret's files under remapped paths;
 * phases, exit codes, job conditions, logs (limitBytes, tailLines, follow),
 * unschedulable pods, missing images and commands, graceful deletion (TERM
 * then KILL), activeDeadlineSeconds, ttlSecondsAfterFinished, backoffLimit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <cmocka.h>

#include "kfx.h"

#define NS "pods"
#define JOBS "/apis/batch/v1/namespaces/" NS "/jobs"
#define PODS "/api/v1/namespaces/" NS "/pods"
#define SECRETS "/api/v1/namespaces/" NS "/secrets"

static const char *str(json_t *o, const char *a, const char *b, const char *c)
{
        json_t *v = json_object_get(o, a);

        if (b)
                v = json_object_get(v, b);
        if (c)
                v = json_object_get(v, c);
        return json_string_value(v);
}

static json_t *cstate(json_t *pod)
{
        return json_object_get(json_array_get(json_object_get(json_object_get(pod, "status"),
                                                              "containerStatuses"), 0), "state");
}

static char *pod_log(const char *pod, const char *query)
{
        char path[512];
        struct kubefake_resp r;
        char *out;

        snprintf(path, sizeof(path), PODS "/%s/log%s", pod, query ? query : "");
        assert_int_equal(kubefake_request(kfx, KUBEFAKE_AUTH_TOKEN, "GET", path, NULL, &r), 0);
        if (r.status != 200)
                fprintf(stderr, "log: %ld %s\n", r.status, r.body);
        assert_int_equal(r.status, 200);
        out = strdup(r.body);
        kubefake_resp_done(&r);
        return out;
}

static json_t *fake_pod(const char *name)
{
        json_t *all = NULL, *p;
        size_t i;

        assert_int_equal(kubefake_ctl(kfx, "GET", "pods", NULL, &all), 200);
        json_array_foreach(json_object_get(all, "pods"), i, p) {
                if (strcmp(json_string_value(json_object_get(p, "name")), name) == 0) {
                        json_incref(p);
                        json_decref(all);
                        return p;
                }
        }
        json_decref(all);
        return NULL;
}

static double now_s(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The example of the issue: Pending until the Secret exists, then the
 * command reads the token through the remapped path and exits 3. */
static void job_runs_command_with_secret(void **state)
{
        const char *argv[] = { "/bin/sh", "-c", "echo hi; cat $TOKEN_FILE; exit 3", NULL };
        const char *env[] = { "TOKEN_FILE", "/var/run/forgescale/token", NULL };
        char *job = kfx_job("issue", "forgejo/runner:11", argv, env, "issue-token", NULL);
        json_t *pod, *j;
        char podname[128], path[512], *log;
        struct stat st;

        (void)state;
        assert_int_equal(kfx_post(JOBS, job, NULL), 201);
        free(job);
        pod = kfx_wait_pod(NS, "issue", "Pending", 5000);
        assert_non_null(pod);
        snprintf(podname, sizeof(podname), "%s", str(pod, "metadata", "name", NULL));
        assert_int_equal(strncmp(podname, "issue-", 6), 0);
        assert_int_equal(strlen(podname), strlen("issue-") + 5);
        json_decref(pod);
        /* No Secret yet: the kubelet keeps retrying the mount. */
        kfx_sleep_ms(300);
        pod = kfx_wait_pod(NS, "issue", NULL, 1000);
        assert_string_equal(str(pod, "status", "phase", NULL), "Pending");
        assert_string_equal(str(cstate(pod), "waiting", "reason", NULL), "ContainerCreating");
        assert_non_null(strstr(str(cstate(pod), "waiting", "message", NULL),
                               "secret \"issue-token\" not found"));
        assert_string_equal(json_string_value(json_object_get(json_object_get(
                json_object_get(pod, "metadata"), "labels"), "batch.kubernetes.io/job-name")),
                "issue");
        assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(
                json_object_get(pod, "metadata"), "ownerReferences"), 0), "kind")), "Job");
        json_decref(pod);
        json_t *fp = fake_pod(podname);
        assert_int_equal(json_integer_value(json_object_get(fp, "pid")), 0);
        json_decref(fp);

        assert_int_equal(kfx_post(SECRETS, "{\"metadata\":{\"name\":\"issue-token\"},"
                                  "\"stringData\":{\"token\":\"s3cret-token\"}}", NULL), 201);
        pod = kfx_wait_pod(NS, "issue", "Failed", 5000);
        assert_non_null(pod);
        json_t *term = json_object_get(cstate(pod), "terminated");
        assert_int_equal(json_integer_value(json_object_get(term, "exitCode")), 3);
        assert_string_equal(json_string_value(json_object_get(term, "reason")), "Error");
        json_decref(pod);
        log = pod_log(podname, NULL);
        assert_string_equal(log, "hi\ns3cret-token");
        free(log);
        /* The Secret's file, materialised with the volume's defaultMode. */
        snprintf(path, sizeof(path), "%s/pods/" NS "/%s/volumes/token/token",
                 kubefake_root(kfx), podname);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0400);
        fp = fake_pod(podname);
        assert_int_equal(json_integer_value(json_object_get(fp, "exit_code")), 3);
        json_decref(fp);
        j = kfx_wait_job_condition(NS, "issue", "Failed", 3000);
        assert_non_null(j);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "status"),
                                                            "failed")), 1);
        json_t *c = json_array_get(json_object_get(json_object_get(j, "status"), "conditions"),
                                   1);
        assert_string_equal(json_string_value(json_object_get(c, "reason")),
                            "BackoffLimitExceeded");
        json_decref(j);
}

/* Exactly the container's env, plus what a kubelet adds; $(VAR) expanded
 * and mount paths remapped in env and args. */
static void env_is_exact_and_remapped(void **state)
{
        const char *argv[] = { "/usr/bin/env", NULL };
        const char *env[] = { "A", "1", "TOKEN_FILE", "/var/run/forgescale/token", "B",
                              "$(A)-two", "URL", "file:/var/run/forgescale/token",
                              "OPT", "--t=/var/run/forgescale", "NOT", "x/var/run/forgescale/t",
                              "NOR", "/var/run/forgescaled", NULL };
        char *job = kfx_job("envjob", "busybox", argv, env, "env-token", NULL);
        json_t *pod;
        char *log, want[2048], podname[128];

        (void)state;
        assert_int_equal(kfx_post(SECRETS, "{\"metadata\":{\"name\":\"env-token\"},"
                                  "\"stringData\":{\"token\":\"t\"}}", NULL), 201);
        assert_int_equal(kfx_post(JOBS, job, NULL), 201);
        free(job);
        pod = kfx_wait_pod(NS, "envjob", "Succeeded", 5000);
        assert_non_null(pod);
        snprintf(podname, sizeof(podname), "%s", str(pod, "metadata", "name", NULL));
        json_decref(pod);
        log = pod_log(podname, NULL);
        snprintf(want, sizeof(want),
                 "A=1\nTOKEN_FILE=%s/pods/" NS "/%s/volumes/token/token\nB=1-two\n"
                 "URL=file:%s/pods/" NS "/%s/volumes/token/token\n"
                 "OPT=--t=%s/pods/" NS "/%s/volumes/token\n"
                 "NOT=x/var/run/forgescale/t\nNOR=/var/run/forgescaled\n"
                 "HOSTNAME=%s\nKUBERNETES_SERVICE_HOST=127.0.0.1\nKUBERNETES_SERVICE_PORT=%d\n"
                 "KUBERNETES_SERVICE_PORT_HTTPS=%d\n",
                 kubefake_root(kfx), podname, kubefake_root(kfx), podname, kubefake_root(kfx),
                 podname, podname, kubefake_port(kfx), kubefake_port(kfx));
        assert_string_equal(log, want);
        free(log);
        json_t *j = kfx_wait_job_condition(NS, "envjob", "Complete", 3000);
        assert_non_null(j);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "status"),
                                                            "succeeded")), 1);
        assert_non_null(str(j, "status", "completionTime", NULL));
        json_decref(j);
}

static void logs_limit_tail_follow(void **state)
{
        const char *argv[] = { "/bin/sh", "-c",
                               "echo one; echo two; sleep 0.4; echo three; echo four >&2", NULL };
        char *job = kfx_job("logs", "busybox", argv, NULL, NULL, NULL);
        json_t *pod;
        char podname[128], *log;

        (void)state;
        assert_int_equal(kfx_post(JOBS, job, NULL), 201);
        free(job);
        pod = kfx_wait_pod(NS, "logs", "Running", 5000);
        assert_non_null(pod);
        snprintf(podname, sizeof(podname), "%s", str(pod, "metadata", "name", NULL));
        json_decref(pod);
        json_t *j = NULL;
        assert_int_equal(kfx_get(JOBS "/logs", &j), 200);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "status"),
                                                            "active")), 1);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "status"),
                                                            "ready")), 1);
        assert_non_null(str(j, "status", "startTime", NULL));
        json_decref(j);
        /* follow=true streams until the process ends. */
        double t0 = now_s();
        log = pod_log(podname, "?follow=true&container=worker");
        assert_string_equal(log, "one\ntwo\nthree\nfour\n");
        assert_true(now_s() - t0 >= 0.2);
        free(log);
        log = pod_log(podname, "?limitBytes=6");
        assert_string_equal(log, "one\ntw");
        free(log);
        log = pod_log(podname, "?tailLines=2");
        assert_string_equal(log, "three\nfour\n");
        free(log);

        struct kubefake_resp r;
        char path[256];
        snprintf(path, sizeof(path), PODS "/%s/log?container=other", podname);
        assert_int_equal(kubefake_request(kfx, KUBEFAKE_AUTH_TOKEN, "GET", path, NULL, &r), 0);
        assert_int_equal(r.status, 400);
        kubefake_resp_done(&r);
}

static void unschedulable_until_allowed(void **state)
{
        const char *argv[] = { "/bin/true", NULL };
        char *job = kfx_job("unsched", "busybox", argv, NULL, NULL, NULL);
        json_t *pod, *c;
        char podname[128], path[256];
        struct kubefake_resp r;

        (void)state;
        assert_int_equal(kubefake_ctl(kfx, "POST", "scheduling", "{\"schedulable\": false, "
                                      "\"message\": \"0/3 nodes are available: 3 Insufficient "
                                      "cpu.\"}", NULL), 200);
        assert_int_equal(kfx_post(JOBS, job, NULL), 201);
        free(job);
        kfx_sleep_ms(300);
        pod = kfx_wait_pod(NS, "unsched", "Pending", 2000);
        assert_non_null(pod);
        snprintf(podname, sizeof(podname), "%s", str(pod, "metadata", "name", NULL));
        c = json_array_get(json_object_get(json_object_get(pod, "status"), "conditions"), 0);
        assert_string_equal(json_string_value(json_object_get(c, "type")), "PodScheduled");
        assert_string_equal(json_string_value(json_object_get(c, "status")), "False");
        assert_string_equal(json_string_value(json_object_get(c, "reason")), "Unschedulable");
        assert_string_equal(json_string_value(json_object_get(c, "message")),
                            "0/3 nodes are available: 3 Insufficient cpu.");
        assert_null(str(pod, "spec", "nodeName", NULL));
        json_decref(pod);
        /* Its log is not there yet: the container is waiting. */
        snprintf(path, sizeof(path), PODS "/%s/log", podname);
        assert_int_equal(kubefake_request(kfx, KUBEFAKE_AUTH_TOKEN, "GET", path, NULL, &r), 0);
        assert_int_equal(r.status, 400);
        assert_non_null(strstr(json_string_value(json_object_get(r.json, "message")),
                               "is waiting to start"));
        kubefake_resp_done(&r);
        assert_int_equal(kubefake_ctl(kfx, "POST", "scheduling", "{\"schedulable\": true}", NULL),
                         200);
        pod = kfx_wait_pod(NS, "unsched", "Succeeded", 5000);
        assert_non_null(pod);
        assert_string_equal(str(pod, "spec", "nodeName", NULL), "kube-fake-node");
        json_decref(pod);
}

static void missing_image_never_starts(void **state)
{
        const char *argv[] = { "/bin/true", NULL };
        char *job = kfx_job("noimage", "missing/runner:1", argv, NULL, NULL, NULL);
        json_t *pod = NULL;

        (void)state;
        assert_int_equal(kfx_post(JOBS, job, NULL), 201);
        free(job);
        for (int i = 0; i < 100; i++) {
                json_decref(pod);
                pod = kfx_wait_pod(NS, "noimage", "Pending", 2000);
                assert_non_null(pod);
                const char *wr = str(cstate(pod), "waiting", "reason", NULL);
                if (wr && strcmp(wr, "ErrImagePull") == 0)
                        break;
                kfx_sleep_ms(20);
        }
        assert_string_equal(str(cstate(pod), "waiting", "reason", NULL), "ErrImagePull");
        json_decref(pod);
        kfx_sleep_ms(1300);
        pod = kfx_wait_pod(NS, "noimage", "Pending", 2000);
        assert_string_equal(str(cstate(pod), "waiting", "reason", NULL), "ImagePullBackOff");
        assert_string_equal(str(cstate(pod), "waiting", "message", NULL),
                            "Back-off pulling image \"missing/runner:1\"");
        json_decref(pod);
}

static void command_not_found_fails(void **state)
{
        const char *argv[] = { "no-such-command-kfx", NULL };
        char *job = kfx_job("nocmd", "busybox", argv, NULL, NULL, NULL);
        json_t *pod, *t;

        (void)state;
        assert_int_equal(kfx_post(JOBS, job, NULL), 201);
        free(job);
        pod = kfx_wait_pod(NS, "nocmd", "Failed", 5000);
        assert_non_null(pod);
        t = json_object_get(cstate(pod), "terminated");
        assert_int_equal(json_integer_value(json_object_get(t, "exitCode")), 128);
        assert_string_equal(json_string_value(json_object_get(t, "reason")), "StartError");
        assert_non_null(strstr(json_string_value(json_object_get(t, "message")),
                               "executable file not found in $PATH"));
        json_decref(pod);
}

static void signal_gives_128_plus_n(void **state)
{
        /* "$$$$": Kubernetes' expansion turns "$$" into "$". */
        const char *argv[] = { "/bin/sh", "-c", "kill -9 $$$$", NULL };
        char *job = kfx_job("killed", "busybox", argv, NULL, NULL, NULL);
        json_t *pod;

        (void)state;
        assert_int_equal(kfx_post(JOBS, job, NULL), 201);
        free(job);
        pod = kfx_wait_pod(NS, "killed", "Failed", 5000);
        assert_non_null(pod);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(cstate(pod),
                                                                            "terminated"),
                                                            "exitCode")), 137);
        json_decref(pod);
}

/* TERM first; a process that ignores it is killed after the grace period. */
static void delete_pod_term_then_kill(void **state)
{
        const char *argv[] = { "/bin/sh", "-c", "trap '' TERM; while :; do sleep 0.05; done",
                               NULL };
        char *job = kfx_job("stubborn", "busybox", argv, NULL, NULL, NULL);
        json_t *pod, *fp, *j = NULL;
        char podname[128], path[256];
        int pid;

        (void)state;
        assert_int_equal(kfx_post(JOBS, job, NULL), 201);
        free(job);
        pod = kfx_wait_pod(NS, "stubborn", "Running", 5000);
        assert_non_null(pod);
        snprintf(podname, sizeof(podname), "%s", str(pod, "metadata", "name", NULL));
        json_decref(pod);
        fp = fake_pod(podname);
        pid = (int)json_integer_value(json_object_get(fp, "pid"));
        json_decref(fp);
        assert_true(pid > 0 && kfx_pid_alive(pid));
        snprintf(path, sizeof(path), PODS "/%s?gracePeriodSeconds=1", podname);
        double t0 = now_s();
        assert_int_equal(kfx_delete(path, NULL, &j), 202);
        assert_non_null(str(j, "metadata", "deletionTimestamp", NULL));
        json_decref(j);
        kfx_sleep_ms(400);
        assert_true(kfx_pid_alive(pid));
        snprintf(path, sizeof(path), PODS "/%s", podname);
        assert_true(kfx_wait_status(path, 404, 5000));
        double took = now_s() - t0;
        assert_true(took >= 0.9);
        assert_true(took < 4.0);
        assert_false(kfx_pid_alive(pid));
}

static void delete_pod_term_ends_it(void **state)
{
        const char *argv[] = { "/bin/sh", "-c", "trap 'echo bye; exit 0' TERM; "
                               "while :; do sleep 0.05; done", NULL };
        char *job = kfx_job("polite", "busybox", argv, NULL, NULL, NULL);
        json_t *pod;
        char podname[128], path[256];

        (void)state;
        assert_int_equal(kfx_post(JOBS, job, NULL), 201);
        free(job);
        pod = kfx_wait_pod(NS, "polite", "Running", 5000);
        assert_non_null(pod);
        snprintf(podname, sizeof(podname), "%s", str(pod, "metadata", "name", NULL));
        json_decref(pod);
        snprintf(path, sizeof(path), PODS "/%s", podname);
        double t0 = now_s();
        assert_int_equal(kfx_delete(path, "{\"gracePeriodSeconds\": 30}", NULL), 202);
        assert_true(kfx_wait_status(path, 404, 5000));
        assert_true(now_s() - t0 < 3.0);
}

static void active_deadline(void **state)
{
        const char *argv[] = { "/bin/sleep", "30", NULL };
        char *job = kfx_job("deadline", "busybox", argv, NULL, NULL,
                            "{\"activeDeadlineSeconds\": 1}");
        json_t *pod, *j, *c;
        size_t i;
        bool seen = false;

        (void)state;
        assert_int_equal(kfx_post(JOBS, job, NULL), 201);
        free(job);
        pod = kfx_wait_pod(NS, "deadline", "Running", 5000);
        assert_non_null(pod);
        json_decref(pod);
        j = kfx_wait_job_condition(NS, "deadline", "Failed", 5000);
        assert_non_null(j);
        json_array_foreach(json_object_get(json_object_get(j, "status"), "conditions"), i, c)
                seen = seen || strcmp(json_string_value(json_object_get(c, "reason")) ?: "",
                                      "DeadlineExceeded") == 0;
        assert_true(seen);
        json_decref(j);
        /* Its running pod is deleted (sleep takes TERM). */
        for (int k = 0; k < 100 && (pod = kfx_wait_pod(NS, "deadline", NULL, 10)); k++) {
                json_decref(pod);
                kfx_sleep_ms(50);
        }
        assert_null(kfx_wait_pod(NS, "deadline", NULL, 10));
}

static void ttl_after_finished(void **state)
{
        const char *argv[] = { "/bin/true", NULL };
        char *job = kfx_job("ttl", "busybox", argv, NULL, NULL,
                            "{\"ttlSecondsAfterFinished\": 0}");
        json_t *pod;

        (void)state;
        assert_int_equal(kfx_post(JOBS, job, NULL), 201);
        free(job);
        assert_true(kfx_wait_status(JOBS "/ttl", 404, 5000));
        for (int k = 0; k < 100 && (pod = kfx_wait_pod(NS, "ttl", NULL, 10)); k++) {
                json_decref(pod);
                kfx_sleep_ms(50);
        }
        assert_null(kfx_wait_pod(NS, "ttl", NULL, 10));
}

static void backoff_limit_retries(void **state)
{
        const char *argv[] = { "/bin/false", NULL };
        char *job = kfx_job("retry", "busybox", argv, NULL, NULL, "{\"backoffLimit\": 1}");
        json_t *j, *list = NULL;

        (void)state;
        assert_int_equal(kfx_post(JOBS, job, NULL), 201);
        free(job);
        j = kfx_wait_job_condition(NS, "retry", "Failed", 5000);
        assert_non_null(j);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "status"),
                                                            "failed")), 2);
        json_decref(j);
        assert_int_equal(kfx_get(PODS "?labelSelector=job-name%3Dretry", &list), 200);
        assert_int_equal(json_array_size(json_object_get(list, "items")), 2);
        json_decref(list);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(job_runs_command_with_secret),
                cmocka_unit_test(env_is_exact_and_remapped),
                cmocka_unit_test(logs_limit_tail_follow),
                cmocka_unit_test(unschedulable_until_allowed),
                cmocka_unit_test(missing_image_never_starts),
                cmocka_unit_test(command_not_found_fails),
                cmocka_unit_test(signal_gives_128_plus_n),
                cmocka_unit_test(delete_pod_term_then_kill),
                cmocka_unit_test(delete_pod_term_ends_it),
                cmocka_unit_test(active_deadline),
                cmocka_unit_test(ttl_after_finished),
                cmocka_unit_test(backoff_limit_retries),
        };
        return cmocka_run_group_tests(tests, kfx_setup, kfx_teardown);
}
