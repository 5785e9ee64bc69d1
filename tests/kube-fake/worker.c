/* worker.c: a worker really claims and runs a job from forgejo-sim through
 * kube-fake: the runner's token is a Secret mounted into the pod, the
 * command is forgejo-sim-runner with the argv forgescale builds
 * ("--token-url file:/var/run/forgescale/token", remapped by the fake), and
 * the job ends "success" on the forge while the pod ends Succeeded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kfx.h"
#include "sim.h"

static void worker_claims_and_runs_a_job(void **state)
{
        const char *runner = getenv("FORGEJO_SIM_RUNNER");
        struct sim *sim = NULL;
        struct sim_user admin;
        struct sim_job job;
        struct sim_runner rn;
        long long repo_id;
        char body[2048];
        json_t *pod, *j = NULL;

        (void)state;
        assert_non_null(runner);
        assert_int_equal(sim_start(NULL, &sim), 0);
        assert_int_equal(sim_create_user(sim, "root", true, &admin), 0);
        assert_int_equal(sim_create_repo(sim, "root", "web", &repo_id), 0);
        assert_int_equal(sim_create_job(sim, "root", "web", "build", "[\"kube\"]",
                                        "[\"echo built-in-a-pod\"]", &job), 0);
        assert_int_equal(sim_runner_create(sim, "/api/v1/admin", admin.token, "kube-worker-1",
                                           true, &rn), 0);
        snprintf(body, sizeof(body), "{\"metadata\":{\"name\":\"worker-token\"},"
                 "\"stringData\":{\"token\":\"%s\"}}", rn.token);
        assert_int_equal(kfx_post("/api/v1/namespaces/ci/secrets", body, NULL), 201);
        const char *argv[] = { runner, "one-job", "--url", sim->base_url, "--uuid", rn.uuid,
                               "--token-url", "file:/var/run/forgescale/token", "--label",
                               "kube:host", "--handle", job.handle, "--wait", "--codec", "json",
                               NULL };
        const char *env[] = { "FORGESCALE_RUNNER_TOKEN_FILE", "/var/run/forgescale/token",
                              "PATH", "/usr/bin:/bin", "HOME", "/tmp", NULL };
        char *jb = kfx_job("worker", "forgejo/runner:11", argv, env, "worker-token", NULL);
        assert_int_equal(kfx_post("/apis/batch/v1/namespaces/ci/jobs", jb, NULL), 201);
        free(jb);
        pod = kfx_wait_pod("ci", "worker", "Succeeded", 30000);
        if (!pod) {
                pod = kfx_wait_pod("ci", "worker", NULL, 10);
                char *dump = json_dumps(json_object_get(pod, "status"), JSON_INDENT(2));
                fprintf(stderr, "pod status: %s\n", dump);
                free(dump);
                fail_msg("the worker pod did not succeed");
        }
        json_decref(pod);
        assert_int_equal(sim_get_job(sim, job.id, &j), 0);
        assert_string_equal(json_string_value(json_object_get(j, "status")), "success");
        json_decref(j);
        assert_int_equal(sim_stop(sim), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(worker_claims_and_runs_a_job),
        };
        return cmocka_run_group_tests(tests, kfx_setup, kfx_teardown);
}
