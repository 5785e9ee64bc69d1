/* test_kubeobj.c: the kubernetes provider's objects exactly as sent (Job,
 * Secret, names, the pod_template merge) and the parsing of real-shaped
 * pods, jobs and Status objects. Pure: no API server. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "provider/kubeobj.h"

static const struct kubeobj_params base = {
        .namespace = "ci",
        .image = "code.forgejo.org/forgejo/runner:11",
        .grace_s = 10,
};

static json_t *jp(json_t *root, const char *path)
{
        /* "a.b.0.c": objects by key, arrays by index. */
        char buf[256], *save = NULL;
        json_t *cur = root;

        snprintf(buf, sizeof(buf), "%s", path);
        /* Label keys hold a dot of their own. */
        for (char *d = strstr(buf, "forgescale.io"); d; d = strstr(d, "forgescale.io"))
                d[10] = '\x01';
        for (char *tok = strtok_r(buf, ".", &save); tok && cur; tok = strtok_r(NULL, ".", &save)) {
                for (char *d = strchr(tok, '\x01'); d; d = strchr(d, '\x01'))
                        *d = '.';
                if (json_is_array(cur))
                        cur = json_array_get(cur, strtoul(tok, NULL, 10));
                else
                        cur = json_object_get(cur, tok);
        }
        return cur;
}

static const char *js(json_t *root, const char *path)
{
        const char *s = json_string_value(jp(root, path));
        if (!s)
                fail_msg("no string at %s", path);
        return s;
}

static void job_is_built_exactly(void **state)
{
        const char *argv[] = { "/usr/bin/forgejo-runner", "one-job", "--token-file", "/var/run/forgescale/token", NULL };
        const char *env[] = { "FORGESCALE_POOL=linux", "A=b=c", "EMPTY=", NULL };
        json_t *job;

        assert_int_equal(kubeobj_job(&base, "fs-ab12cd34-linux-x1", "linux", argv, env, &job), 0);
        assert_string_equal(js(job, "apiVersion"), "batch/v1");
        assert_string_equal(js(job, "kind"), "Job");
        assert_string_equal(js(job, "metadata.name"), "fs-ab12cd34-linux-x1");
        assert_string_equal(js(job, "metadata.namespace"), "ci");
        assert_string_equal(js(job, "metadata.labels.forgescale.io/managed"), "true");
        assert_int_equal(json_integer_value(jp(job, "spec.backoffLimit")), 0);
        assert_null(jp(job, "spec.ttlSecondsAfterFinished"));
        assert_null(jp(job, "spec.activeDeadlineSeconds"));
        json_t *ps = jp(job, "spec.template.spec");
        assert_string_equal(js(ps, "restartPolicy"), "Never");
        assert_int_equal(json_integer_value(jp(ps, "terminationGracePeriodSeconds")), 10);
        assert_int_equal(json_array_size(jp(ps, "containers")), 1);
        assert_string_equal(js(ps, "containers.0.name"), "runner");
        assert_string_equal(js(ps, "containers.0.image"), base.image);
        assert_int_equal(json_array_size(jp(ps, "containers.0.command")), 4);
        assert_string_equal(js(ps, "containers.0.command.3"), "/var/run/forgescale/token");
        assert_null(jp(ps, "containers.0.args"));
        assert_string_equal(js(ps, "containers.0.env.1.name"), "A");
        assert_string_equal(js(ps, "containers.0.env.1.value"), "b=c");
        assert_string_equal(js(ps, "containers.0.env.2.value"), "");
        assert_string_equal(js(ps, "containers.0.volumeMounts.0.mountPath"), "/var/run/forgescale");
        assert_true(json_is_true(jp(ps, "containers.0.volumeMounts.0.readOnly")));
        assert_string_equal(js(ps, "volumes.0.secret.secretName"), "fs-ab12cd34-linux-x1");
        assert_int_equal(json_integer_value(jp(ps, "volumes.0.secret.defaultMode")), 0400);
        assert_string_equal(js(job, "spec.template.metadata.labels.forgescale.io/instance"), "fs-ab12cd34-linux-x1");
        assert_string_equal(js(job, "spec.template.metadata.annotations.forgescale.io/pool"), "linux");
        json_decref(job);

        /* '$' reaches the worker as written: a kubelet expands $(VAR) and
         * turns $$ into $, so every '$' is sent doubled. */
        const char *dargv[] = { "sh", "-c", "kill -USR1 $$; echo $(HOME) $", NULL };
        const char *denv[] = { "P=a$b$$", NULL };
        assert_int_equal(kubeobj_job(&base, "x", "p", dargv, denv, &job), 0);
        assert_string_equal(js(job, "spec.template.spec.containers.0.command.2"), "kill -USR1 $$$$; echo $$(HOME) $$");
        assert_string_equal(js(job, "spec.template.spec.containers.0.env.0.value"), "a$$b$$$$");
        json_decref(job);

        /* An env entry without '=' is refused, not sent. */
        const char *bad[] = { "NOEQUALS", NULL };
        assert_int_equal(kubeobj_job(&base, "x", "p", argv, bad, &job), -EINVAL);
}

static void keys_and_pod_template_merge(void **state)
{
        const char *argv[] = { "runner", NULL };
        const char *env[] = { "FORGESCALE_POOL=p", NULL };
        struct kubeobj_params kp = base;
        json_t *job;

        kp.service_account = "ci-runner";
        kp.resources = "{\"requests\":{\"cpu\":\"500m\"},\"limits\":{\"memory\":\"1Gi\"}}";
        kp.node_selector = "{\"disk\":\"ssd\"}";
        kp.tolerations = "[{\"key\":\"ci\",\"operator\":\"Exists\",\"effect\":\"NoSchedule\"}]";
        kp.ttl_after_finished_s = 600;
        kp.active_deadline_s = 3600;
        /* The template: a sidecar, an extra env and mount on runner, a
         * restartPolicy (forgescale's wins), a securityContext (kept),
         * tolerations (replaced by the key's), an extra volume. */
        kp.pod_template = "{\"securityContext\":{\"fsGroup\":1000},\"restartPolicy\":\"OnFailure\","
                          "\"tolerations\":[{\"key\":\"other\",\"operator\":\"Exists\"}],"
                          "\"containers\":[{\"name\":\"dind\",\"image\":\"docker:dind\"},"
                          "{\"name\":\"runner\",\"image\":\"ignored\",\"env\":[{\"name\":\"DOCKER_HOST\",\"value\":\"tcp://localhost:2375\"},"
                          "{\"name\":\"FORGESCALE_POOL\",\"value\":\"template\"}],"
                          "\"volumeMounts\":[{\"name\":\"cache\",\"mountPath\":\"/cache\"}]}],"
                          "\"volumes\":[{\"name\":\"cache\",\"emptyDir\":{}}]}";
        assert_int_equal(kubeobj_job(&kp, "i", "p", argv, env, &job), 0);
        json_t *ps = jp(job, "spec.template.spec");
        assert_int_equal(json_integer_value(jp(job, "spec.ttlSecondsAfterFinished")), 600);
        assert_int_equal(json_integer_value(jp(job, "spec.activeDeadlineSeconds")), 3600);
        assert_string_equal(js(ps, "restartPolicy"), "Never");
        assert_int_equal(json_integer_value(jp(ps, "securityContext.fsGroup")), 1000);
        assert_string_equal(js(ps, "serviceAccountName"), "ci-runner");
        assert_string_equal(js(ps, "nodeSelector.disk"), "ssd");
        assert_int_equal(json_array_size(jp(ps, "tolerations")), 1);
        assert_string_equal(js(ps, "tolerations.0.key"), "ci");
        assert_int_equal(json_array_size(jp(ps, "containers")), 2);
        assert_string_equal(js(ps, "containers.0.name"), "dind");
        json_t *r = jp(ps, "containers.1");
        assert_string_equal(js(r, "name"), "runner");
        assert_string_equal(js(r, "image"), kp.image);
        assert_string_equal(js(r, "resources.requests.cpu"), "500m");
        /* env merged by name: the template's own kept, forgescale's wins. */
        assert_int_equal(json_array_size(jp(r, "env")), 2);
        assert_string_equal(js(r, "env.0.name"), "DOCKER_HOST");
        assert_string_equal(js(r, "env.1.value"), "p");
        assert_int_equal(json_array_size(jp(r, "volumeMounts")), 2);
        assert_int_equal(json_array_size(jp(ps, "volumes")), 2);
        assert_string_equal(js(ps, "volumes.1.name"), "forgescale-token");
        json_decref(job);

        kp.pod_template = "[1]";
        assert_int_equal(kubeobj_job(&kp, "i", "p", argv, env, &job), -EINVAL);
        kp.pod_template = "{bad";
        assert_int_equal(kubeobj_job(&kp, "i", "p", argv, env, &job), -EINVAL);
}

static void secret_is_owned_and_holds_the_token(void **state)
{
        char *body;
        size_t len;

        assert_int_equal(kubeobj_secret_body("ci", "fs-1-linux-a", "linux", "uid-123", "s3cr3t", 6, &body, &len), 0);
        assert_int_equal(strlen(body), len);
        json_t *s = json_loads(body, 0, NULL);
        assert_non_null(s);
        assert_string_equal(js(s, "kind"), "Secret");
        assert_string_equal(js(s, "data.token"), "czNjcjN0");
        assert_string_equal(js(s, "metadata.name"), "fs-1-linux-a");
        assert_string_equal(js(s, "metadata.labels.forgescale.io/managed"), "true");
        assert_string_equal(js(s, "metadata.ownerReferences.0.kind"), "Job");
        assert_string_equal(js(s, "metadata.ownerReferences.0.uid"), "uid-123");
        assert_true(json_is_false(jp(s, "metadata.ownerReferences.0.blockOwnerDeletion")));
        assert_null(strstr(body, "s3cr3t"));
        json_decref(s);
        free(body);
}

static void names_are_kubernetes_names(void **state)
{
        char b[KUBEOBJ_NAME_MAX + 1], c[KUBEOBJ_NAME_MAX + 1];

        assert_int_equal(kubeobj_name("fs-ab12cd34-linux-x1", b, sizeof(b)), 0);
        assert_string_equal(b, "fs-ab12cd34-linux-x1");
        assert_int_equal(kubeobj_name("fs-1-Linux_Big-x", b, sizeof(b)), 0);
        assert_true(strncmp(b, "fs-1-linux-big-x-", 17) == 0 && strlen(b) == 25);
        assert_int_equal(kubeobj_name("fs-1-linux-big-x", c, sizeof(c)), 0);
        assert_string_not_equal(b, c);
        char longname[200];
        memset(longname, 'a', sizeof(longname) - 1);
        longname[sizeof(longname) - 1] = '\0';
        assert_int_equal(kubeobj_name(longname, b, sizeof(b)), 0);
        assert_true(strlen(b) <= KUBEOBJ_NAME_MAX);
        assert_int_equal(kubeobj_name("", b, sizeof(b)), -EINVAL);
        assert_int_equal(kubeobj_name("___", b, sizeof(b)), 0);
        assert_true(strlen(b) == 8);
}

static void pods_are_parsed(void **state)
{
        struct kubeobj_pod p;
        json_t *j;

        j = json_loads("{\"metadata\":{\"name\":\"w-abcde\",\"resourceVersion\":\"42\",\"labels\":{\"forgescale.io/instance\":\"w\"},"
                       "\"annotations\":{\"forgescale.io/instance\":\"W_real\"}},"
                       "\"status\":{\"phase\":\"Pending\",\"conditions\":[{\"type\":\"PodScheduled\",\"status\":\"False\","
                       "\"reason\":\"Unschedulable\",\"message\":\"0/3 nodes are available: 3 Insufficient cpu.\"}]}}", 0, NULL);
        assert_int_equal(kubeobj_parse_pod(j, &p), 0);
        assert_string_equal(p.name, "w-abcde");
        assert_string_equal(p.kname, "w");
        assert_string_equal(p.instance, "W_real");
        assert_string_equal(p.rv, "42");
        assert_int_equal(p.phase, KUBEOBJ_PENDING);
        assert_true(p.unschedulable);
        assert_string_equal(p.message, "0/3 nodes are available: 3 Insufficient cpu.");
        json_decref(j);

        j = json_loads("{\"metadata\":{\"name\":\"w-x\",\"labels\":{\"forgescale.io/instance\":\"w\"}},"
                       "\"status\":{\"phase\":\"Pending\",\"containerStatuses\":[{\"name\":\"runner\",\"state\":{\"waiting\":"
                       "{\"reason\":\"ImagePullBackOff\",\"message\":\"Back-off pulling image \\\"missing/x\\\"\"}}}]}}", 0, NULL);
        assert_int_equal(kubeobj_parse_pod(j, &p), 0);
        assert_true(p.image_problem);
        assert_false(p.unschedulable);
        assert_string_equal(p.waiting_reason, "ImagePullBackOff");
        assert_string_equal(p.message, "Back-off pulling image \"missing/x\"");
        json_decref(j);

        j = json_loads("{\"metadata\":{\"name\":\"w-x\",\"deletionTimestamp\":\"2026-01-01T00:00:00Z\","
                       "\"labels\":{\"forgescale.io/instance\":\"w\"}},"
                       "\"status\":{\"phase\":\"Failed\",\"containerStatuses\":[{\"name\":\"sidecar\",\"state\":{\"running\":{}}},"
                       "{\"name\":\"runner\",\"state\":{\"terminated\":{\"exitCode\":137,\"reason\":\"OOMKilled\"}}}]}}", 0, NULL);
        assert_int_equal(kubeobj_parse_pod(j, &p), 0);
        assert_true(p.deleting);
        assert_true(p.terminated);
        assert_false(p.running);
        assert_int_equal(p.exit_code, 137);
        assert_string_equal(p.reason, "OOMKilled");
        assert_int_equal(p.phase, KUBEOBJ_FAILED);
        json_decref(j);

        /* Not ours, or not a pod. */
        j = json_loads("{\"metadata\":{\"name\":\"x\"}}", 0, NULL);
        assert_int_equal(kubeobj_parse_pod(j, &p), -EINVAL);
        json_decref(j);
        j = json_loads("[]", 0, NULL);
        assert_int_equal(kubeobj_parse_pod(j, &p), -EINVAL);
        json_decref(j);
}

static void jobs_and_status_are_parsed(void **state)
{
        struct kubeobj_job jb;
        json_t *j = json_loads("{\"metadata\":{\"name\":\"a\",\"uid\":\"u-1\",\"labels\":{\"forgescale.io/managed\":\"true\"},"
                               "\"annotations\":{\"forgescale.io/instance\":\"A\",\"forgescale.io/pool\":\"P\"}},"
                               "\"status\":{\"failed\":1,\"conditions\":[{\"type\":\"Failed\",\"status\":\"True\","
                               "\"reason\":\"DeadlineExceeded\"}]}}", 0, NULL);
        assert_int_equal(kubeobj_parse_job(j, &jb), 0);
        assert_true(jb.managed && jb.finished);
        assert_string_equal(jb.uid, "u-1");
        assert_string_equal(jb.instance, "A");
        assert_string_equal(jb.pool, "P");
        assert_string_equal(jb.failed_reason, "DeadlineExceeded");
        json_decref(j);

        int code;
        char reason[64], msg[128];
        j = json_loads("{\"kind\":\"Status\",\"code\":403,\"reason\":\"Forbidden\",\"message\":\"jobs.batch is forbidden\"}", 0, NULL);
        assert_int_equal(kubeobj_parse_status(j, &code, reason, sizeof(reason), msg, sizeof(msg)), 0);
        assert_int_equal(code, 403);
        assert_string_equal(reason, "Forbidden");
        assert_string_equal(msg, "jobs.batch is forbidden");
        json_decref(j);
        j = json_loads("{\"kind\":\"Pod\"}", 0, NULL);
        assert_int_equal(kubeobj_parse_status(j, &code, reason, sizeof(reason), msg, sizeof(msg)), -EINVAL);
        json_decref(j);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(job_is_built_exactly),
                cmocka_unit_test(keys_and_pod_template_merge),
                cmocka_unit_test(secret_is_owned_and_holds_the_token),
                cmocka_unit_test(names_are_kubernetes_names),
                cmocka_unit_test(pods_are_parsed),
                cmocka_unit_test(jobs_and_status_are_parsed),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
