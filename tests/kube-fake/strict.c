/* strict.c: kube-fake refuses what a real API server with
 * fieldValidation=Strict refuses, naming the field path: unknown fields at
 * every depth, wrong JSON types, missing required fields, the semantic
 * rules of Jobs and Secrets, and strict DeleteOptions; good objects are
 * stored with the fields an API server fills in. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kfx.h"

#define JOBS "/apis/batch/v1/namespaces/strict/jobs"
#define SECRETS "/api/v1/namespaces/strict/secrets"

static const char *const sh_true[] = { "/bin/true", NULL };

/* POSTs body and checks the status, reason and that the message holds want. */
static void expect(const char *path, const char *body, long status, const char *reason,
                   const char *want)
{
        json_t *j = NULL;
        long st = kfx_post(path, body, &j);
        const char *msg = json_string_value(json_object_get(j, "message"));

        if (st != status || !msg || !strstr(msg, want))
                fprintf(stderr, "want %ld \"%s\", got %ld %s\n", status, want, st,
                        msg ? msg : "(no message)");
        assert_int_equal(st, status);
        assert_string_equal(json_string_value(json_object_get(j, "kind")), "Status");
        assert_string_equal(json_string_value(json_object_get(j, "reason")), reason);
        assert_int_equal(json_integer_value(json_object_get(j, "code")), status);
        assert_non_null(msg);
        assert_non_null(strstr(msg, want));
        json_decref(j);
}

/* A job built by kfx_job with one edit: the JSON at path (dotted, [i] for
 * arrays) set to value (JSON text) or removed when value is NULL. */
static char *job_with(const char *name, const char *path, const char *value)
{
        char *text = kfx_job(name, "busybox", sh_true, NULL, NULL, NULL);
        json_t *job = json_loads(text, 0, NULL), *cur = job;
        char buf[256], *save = NULL, *seg, *next;

        free(text);
        snprintf(buf, sizeof(buf), "%s", path);
        seg = strtok_r(buf, ".", &save);
        while (seg) {
                next = strtok_r(NULL, ".", &save);
                char *br = strchr(seg, '[');
                long idx = -1;
                if (br) {
                        idx = strtol(br + 1, NULL, 10);
                        *br = '\0';
                }
                if (!next && idx < 0) {
                        if (value)
                                json_object_set_new(cur, seg, json_loads(value, JSON_DECODE_ANY,
                                                                         NULL));
                        else
                                json_object_del(cur, seg);
                        break;
                }
                cur = json_object_get(cur, seg);
                if (idx >= 0)
                        cur = json_array_get(cur, (size_t)idx);
                assert_non_null(cur);
                seg = next;
        }
        text = json_dumps(job, JSON_COMPACT);
        json_decref(job);
        return text;
}

static void check(const char *path, const char *value, long status, const char *reason,
                  const char *want)
{
        char *body = job_with("edited", path, value);

        expect(JOBS, body, status, reason, want);
        free(body);
}

static void good_job_is_stored_with_server_fields(void **state)
{
        char *body = kfx_job("good", "busybox", sh_true, NULL, NULL,
                             "{\"ttlSecondsAfterFinished\": 60}");
        json_t *j = NULL, *again = NULL;
        const char *uid;

        (void)state;
        assert_int_equal(kfx_post(JOBS, body, &j), 201);
        free(body);
        uid = json_string_value(json_object_get(json_object_get(j, "metadata"), "uid"));
        assert_non_null(uid);
        assert_true(json_is_string(json_object_get(json_object_get(j, "metadata"),
                                                   "resourceVersion")));
        assert_non_null(json_object_get(json_object_get(j, "metadata"), "creationTimestamp"));
        assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "metadata"),
                                                            "generation")), 1);
        assert_string_equal(json_string_value(json_object_get(json_object_get(j, "metadata"),
                                                              "namespace")), "strict");
        json_t *labels = json_object_get(json_object_get(json_object_get(
                json_object_get(j, "spec"), "template"), "metadata"), "labels");
        assert_string_equal(json_string_value(json_object_get(labels, "job-name")), "good");
        assert_string_equal(json_string_value(json_object_get(labels, "controller-uid")), uid);
        assert_string_equal(json_string_value(json_object_get(labels, "app")), "kfx");
        assert_int_equal(kfx_get(JOBS "/good", &again), 200);
        assert_true(json_equal(json_object_get(again, "spec"), json_object_get(j, "spec")));
        json_decref(j);
        json_decref(again);
}

static void good_secret_folds_string_data(void **state)
{
        json_t *j = NULL;

        (void)state;
        assert_int_equal(kfx_post(SECRETS, "{\"apiVersion\":\"v1\",\"kind\":\"Secret\","
                                  "\"metadata\":{\"name\":\"tok-1\",\"labels\":{\"a\":\"b\"}},"
                                  "\"stringData\":{\"token\":\"hello\"},"
                                  "\"data\":{\"other\":\"eA==\"}}", &j), 201);
        assert_string_equal(json_string_value(json_object_get(json_object_get(j, "data"),
                                                              "token")), "aGVsbG8=");
        assert_string_equal(json_string_value(json_object_get(json_object_get(j, "data"),
                                                              "other")), "eA==");
        assert_null(json_object_get(j, "stringData"));
        assert_string_equal(json_string_value(json_object_get(j, "type")), "Opaque");
        json_decref(j);
        /* A null value is Go's zero value, "". */
        assert_int_equal(kfx_post(SECRETS, "{\"metadata\":{\"name\":\"tok-null\"},"
                                  "\"stringData\":{\"token\":null}}", &j), 201);
        assert_string_equal(json_string_value(json_object_get(json_object_get(j, "data"),
                                                              "token")), "");
        json_decref(j);
}

static void unknown_fields_at_every_depth(void **state)
{
        (void)state;
        check("spex", "{}", 400, "BadRequest", ".spex: field not declared in schema");
        check("metadata.lables", "{}", 400, "BadRequest",
              ".metadata.lables: field not declared in schema");
        check("spec.template.spec.containers[0].imagePullPolicyy", "\"Always\"", 400,
              "BadRequest",
              ".spec.template.spec.containers[0].imagePullPolicyy: field not declared in schema");
        check("spec.template.spec.containers[0].resources", "{\"limits\":{\"cpu\":\"1\"},"
              "\"limitz\":{}}", 400, "BadRequest",
              ".spec.template.spec.containers[0].resources.limitz: field not declared");
        expect(SECRETS, "{\"metadata\":{\"name\":\"s\"},\"strngData\":{}}", 400, "BadRequest",
               ".strngData: field not declared in schema");
}

static void wrong_types(void **state)
{
        (void)state;
        check("spec.backoffLimit", "\"0\"", 400, "BadRequest",
              ".spec.backoffLimit: expected integer, got string");
        check("spec.template.spec.containers[0].command", "\"/bin/true\"", 400, "BadRequest",
              ".spec.template.spec.containers[0].command: expected array, got string");
        check("spec.template.spec.containers[0].env", "[{\"name\":\"A\",\"value\":1}]", 400,
              "BadRequest", ".spec.template.spec.containers[0].env[0].value: expected string, "
              "got integer");
        check("spec.suspend", "\"no\"", 400, "BadRequest", ".spec.suspend: expected boolean");
        check("metadata.labels", "{\"a\":1}", 400, "BadRequest",
              ".metadata.labels[a]: expected string, got integer");
        check("spec.template.spec.containers[0].resources",
              "{\"limits\":{\"cpu\":\"5 cores\"}}", 400, "BadRequest",
              ".spec.template.spec.containers[0].resources.limits[cpu]: quantities must match");
        check("spec.template.spec.containers[0].livenessProbe",
              "{\"httpGet\":{\"port\":true}}", 400, "BadRequest",
              "livenessProbe.httpGet.port: expected integer or string, got boolean");
        check("metadata.creationTimestamp", "\"yesterday\"", 400, "BadRequest",
              ".metadata.creationTimestamp: not an RFC 3339 time");
        expect(SECRETS, "{\"metadata\":{\"name\":\"s\"},\"data\":{\"k\":\"%%%\"}}", 400,
               "BadRequest", ".data.k: illegal base64 data");
}

static void typed_values_accepted(void **state)
{
        char *body = job_with("typed", "spec.template.spec.containers[0].resources",
                              "{\"limits\":{\"cpu\":\"500m\",\"memory\":\"1Gi\"},"
                              "\"requests\":{\"cpu\":0.5}}");
        json_t *j = NULL;

        (void)state;
        assert_int_equal(kfx_post(JOBS, body, &j), 201);
        free(body);
        json_decref(j);
        body = job_with("typed-2", "spec.template.spec.containers[0].livenessProbe",
                        "{\"httpGet\":{\"port\":\"http\"},\"periodSeconds\":5}");
        assert_int_equal(kfx_post(JOBS, body, &j), 201);
        free(body);
        json_decref(j);
}

static void missing_required_fields(void **state)
{
        (void)state;
        check("spec.template", NULL, 422, "Invalid", ".spec.template: Required value");
        check("spec.template.spec.containers[0].name", NULL, 422, "Invalid",
              ".spec.template.spec.containers[0].name: Required value");
        check("spec.template.spec.containers[0].env", "[{\"value\":\"x\"}]", 422, "Invalid",
              ".spec.template.spec.containers[0].env[0].name: Required value");
        check("spec.template.spec.containers[0].volumeMounts", "[{\"name\":\"x\"}]", 422,
              "Invalid", ".spec.template.spec.containers[0].volumeMounts[0].mountPath: "
              "Required value");
}

static void semantic_rules(void **state)
{
        (void)state;
        check("metadata.name", "\"Bad_Name\"", 422, "Invalid",
              "metadata.name: Invalid value: \"Bad_Name\"");
        check("metadata.name", NULL, 422, "Invalid", "metadata.name: Required value");
        check("metadata.name", "\"a-very-long-job-name-that-is-more-than-sixty-three-characters-"
              "long\"", 422, "Invalid", "must be no more than 63 characters");
        check("spec.template.spec.restartPolicy", "\"Always\"", 422, "Invalid",
              "spec.template.spec.restartPolicy: Unsupported value: \"Always\"");
        check("spec.template.spec.restartPolicy", NULL, 422, "Invalid",
              "spec.template.spec.restartPolicy: Unsupported value: \"Always\"");
        check("spec.template.spec.containers[0].image", NULL, 422, "Invalid",
              "spec.template.spec.containers[0].image: Required value");
        check("spec.template.spec.containers[0].name", "\"Worker\"", 422, "Invalid",
              "spec.template.spec.containers[0].name: Invalid value: \"Worker\"");
        check("metadata.labels", "{\"app\":\"-bad-\"}", 422, "Invalid",
              "metadata.labels: Invalid value: \"-bad-\"");
        check("spec.template.metadata.labels", "{\"bad key\":\"x\"}", 422, "Invalid",
              "spec.template.metadata.labels: Invalid value: \"bad key\"");
        check("spec.template.spec.containers[0].volumeMounts",
              "[{\"name\":\"nope\",\"mountPath\":\"/x\"}]", 422, "Invalid",
              "volumeMounts[0].name: Not found: \"nope\"");
        check("spec.backoffLimit", "-1", 422, "Invalid", "spec.backoffLimit");
        check("spec.selector", "{\"matchLabels\":{\"a\":\"b\"}}", 422, "Invalid",
              "spec.selector: Invalid value: `selector` not auto-generated");
        check("apiVersion", "\"batch/v2\"", 400, "BadRequest", "does not match the expected API "
              "version (batch/v1)");
        check("metadata.namespace", "\"other\"", 400, "BadRequest",
              "the namespace of the provided object does not match");
        expect(SECRETS, "{\"metadata\":{\"name\":\"s\"},\"data\":{\"bad/key\":\"eA==\"}}", 422,
               "Invalid", "data[bad/key]: Invalid value");
        expect(SECRETS, "{\"metadata\":{\"name\":\"s.\"}}", 422, "Invalid",
               "metadata.name: Invalid value: \"s.\"");
}

static void conflicts_and_server_fields(void **state)
{
        char *body = kfx_job("twice", "busybox", sh_true, NULL, NULL, NULL);
        json_t *j = NULL;

        (void)state;
        assert_int_equal(kfx_post(JOBS, body, NULL), 201);
        expect(JOBS, body, 409, "AlreadyExists", "jobs.batch \"twice\" already exists");
        free(body);
        check("metadata.resourceVersion", "\"12\"", 500, "InternalError",
              "resourceVersion should not be set on objects to be created");
        assert_int_equal(kfx_get(JOBS "/nope", &j), 404);
        assert_string_equal(json_string_value(json_object_get(j, "reason")), "NotFound");
        assert_string_equal(json_string_value(json_object_get(j, "message")),
                            "jobs.batch \"nope\" not found");
        json_decref(j);
        expect(JOBS, "[1,2]", 400, "BadRequest", "not a JSON object");
        expect(JOBS, "{\"a\":", 400, "BadRequest", "not a JSON object");
}

static void delete_options_are_strict(void **state)
{
        json_t *j = NULL;

        (void)state;
        assert_int_equal(kfx_post(SECRETS, "{\"metadata\":{\"name\":\"del-me\"}}", NULL), 201);
        assert_int_equal(kfx_delete(SECRETS "/del-me", "{\"propagationPolicyy\":\"Background\"}",
                                    &j), 400);
        assert_non_null(strstr(json_string_value(json_object_get(j, "message")),
                               ".propagationPolicyy: field not declared in schema"));
        json_decref(j);
        assert_int_equal(kfx_delete(SECRETS "/del-me", "{\"gracePeriodSeconds\":\"5\"}", &j),
                         400);
        assert_non_null(strstr(json_string_value(json_object_get(j, "message")),
                               ".gracePeriodSeconds: expected integer, got string"));
        json_decref(j);
        assert_int_equal(kfx_delete(SECRETS "/del-me", "{\"propagationPolicy\":\"Sometimes\"}",
                                    &j), 422);
        json_decref(j);
        assert_int_equal(kfx_delete(SECRETS "/del-me", "{\"kind\":\"DeleteOptions\","
                                    "\"apiVersion\":\"v1\",\"propagationPolicy\":\"Background\","
                                    "\"preconditions\":{\"uid\":\"wrong\"}}", &j), 409);
        json_decref(j);
        assert_int_equal(kfx_delete(SECRETS "/del-me", "{\"kind\":\"DeleteOptions\","
                                    "\"apiVersion\":\"v1\",\"propagationPolicy\":\"Background\","
                                    "\"gracePeriodSeconds\":0}", &j), 200);
        assert_string_equal(json_string_value(json_object_get(j, "status")), "Success");
        json_decref(j);
        assert_int_equal(kfx_get(SECRETS "/del-me", NULL), 404);
}

static void rejections_are_listed(void **state)
{
        json_t *st = NULL, *e;
        size_t i;
        bool found = false;

        (void)state;
        check("spec.templat", "{}", 400, "BadRequest", ".spec.templat: field not declared");
        assert_int_equal(kubefake_ctl(kfx, "GET", "stats", NULL, &st), 200);
        json_array_foreach(json_object_get(st, "rejected"), i, e)
                found = found || strstr(json_string_value(json_object_get(e, "reason")) ?: "",
                                        ".spec.templat") != NULL;
        assert_true(found);
        assert_true(json_integer_value(json_object_get(json_object_get(st, "requests"),
                                       "POST /apis/batch/v1/namespaces/{namespace}/jobs")) > 5);
        json_decref(st);
}

static void dry_run_stores_nothing(void **state)
{
        char *body = kfx_job("dry", "busybox", sh_true, NULL, NULL, NULL);

        (void)state;
        assert_int_equal(kfx_post(JOBS "?dryRun=All", body, NULL), 201);
        free(body);
        assert_int_equal(kfx_get(JOBS "/dry", NULL), 404);
}

/* Bad input is refused with a reason, and the fake keeps serving. */
static void bad_input_refused(void **state)
{
        static const char *const bodies[] = {
                "", "null", "\"job\"", "{\"metadata\": []}", "{\"spec\": {\"template\": 5}}",
                "{\"metadata\":{\"name\":\"x\"},\"spec\":{\"template\":{\"spec\":"
                "{\"containers\":{}}}}}",
                "{\"metadata\":{\"name\":\"\\u0000\"}}", "\xff\xfe{}",
        };
        struct kubefake_resp r;
        char *big;

        (void)state;
        for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
                assert_int_equal(kubefake_request(kfx, KUBEFAKE_AUTH_TOKEN, "POST", JOBS,
                                                  bodies[i], &r), 0);
                if (r.status != 400 && r.status != 422)
                        fail_msg("body %zu: status %ld", i, r.status);
                assert_non_null(json_object_get(r.json, "message"));
                kubefake_resp_done(&r);
        }
        big = malloc(4u << 20);
        assert_non_null(big);
        memset(big, ' ', 4u << 20);
        big[(4u << 20) - 1] = '\0';
        assert_int_equal(kubefake_request(kfx, KUBEFAKE_AUTH_TOKEN, "POST", SECRETS, big, &r), 0);
        assert_int_equal(r.status, 413);
        kubefake_resp_done(&r);
        free(big);
        assert_int_equal(kubefake_request(kfx, KUBEFAKE_AUTH_TOKEN, "PUT", JOBS "/x", "{}", &r),
                         0);
        assert_int_equal(r.status, 405);
        kubefake_resp_done(&r);
        assert_int_equal(kubefake_request(kfx, KUBEFAKE_AUTH_TOKEN, "GET", "/apis/apps/v1/x",
                                          NULL, &r), 0);
        assert_int_equal(r.status, 404);
        kubefake_resp_done(&r);
        assert_int_equal(kubefake_request(kfx, KUBEFAKE_AUTH_TOKEN, "GET",
                                          SECRETS "?resourceVersion=abc", NULL, &r), 0);
        assert_int_equal(r.status, 400);
        kubefake_resp_done(&r);
        assert_int_equal(kubefake_request(kfx, KUBEFAKE_AUTH_TOKEN, "GET",
                                          SECRETS "?fieldSelector=spec.x%3Dy", NULL, &r), 0);
        assert_int_equal(r.status, 400);
        kubefake_resp_done(&r);
        assert_int_equal(kubefake_request(kfx, KUBEFAKE_AUTH_TOKEN, "GET", "/version", NULL, &r),
                         0);
        assert_int_equal(r.status, 200);
        kubefake_resp_done(&r);
}

/* Every node of a good Job (with a Secret volume, env from a Secret, a
 * probe and resources) replaced by null, a number, a string, an array and
 * an object in turn: each answer is 201, 400 or 422, never a crash, and
 * the jobs accepted run their pods. */
static size_t mutations;

static void post_mutated(json_t *root)
{
        char *text = json_dumps(root, JSON_COMPACT);
        struct kubefake_resp r;

        assert_non_null(text);
        assert_int_equal(kubefake_request(kfx, KUBEFAKE_AUTH_TOKEN, "POST",
                                          "/apis/batch/v1/namespaces/mutant/jobs", text, &r), 0);
        if (r.status != 201 && r.status != 400 && r.status != 422)
                fail_msg("status %ld for %s", r.status, text);
        kubefake_resp_done(&r);
        free(text);
        mutations++;
}

static void mutate(json_t *root, json_t *node)
{
        json_t *repl[5];
        const char *k;
        json_t *v;
        size_t i;

        repl[0] = json_null();
        repl[1] = json_integer(-7);
        repl[2] = json_string("x");
        repl[3] = json_array();
        repl[4] = json_object();
        if (json_is_object(node)) {
                void *tmp;
                json_object_foreach_safe(node, tmp, k, v) {
                        json_incref(v);
                        for (int m = 0; m < 5; m++) {
                                json_object_set(node, k, repl[m]);
                                post_mutated(root);
                        }
                        json_object_set(node, k, v);
                        mutate(root, v);
                        json_decref(v);
                }
        } else if (json_is_array(node)) {
                json_array_foreach(node, i, v) {
                        json_incref(v);
                        for (int m = 0; m < 5; m++) {
                                json_array_set(node, i, repl[m]);
                                post_mutated(root);
                        }
                        json_array_set(node, i, v);
                        mutate(root, v);
                        json_decref(v);
                }
        }
        for (int m = 0; m < 5; m++)
                json_decref(repl[m]);
}

static void mutated_jobs_never_crash(void **state)
{
        const char *argv[] = { "/bin/sh", "-c", "true", NULL };
        const char *env[] = { "A", "/var/run/forgescale/token", NULL };
        char *text = kfx_job("mutant", "busybox", argv, env, "mutant-token",
                             "{\"ttlSecondsAfterFinished\": 5, \"activeDeadlineSeconds\": 9}");
        json_t *job = json_loads(text, 0, NULL), *c, *all = NULL, *p;
        size_t i, running = 0;

        (void)state;
        free(text);
        assert_int_equal(kfx_post("/api/v1/namespaces/mutant/secrets", "{\"metadata\":{\"name\":"
                                  "\"mutant-token\"},\"stringData\":{\"token\":\"t\"}}", NULL),
                         201);
        assert_int_equal(kfx_post("/api/v1/namespaces/mutant/secrets", "{\"metadata\":{\"name\":"
                                  "\"s\"},\"stringData\":{\"k\":\"v\"}}", NULL), 201);
        /* generateName: every accepted mutant is a new job. */
        json_object_del(json_object_get(job, "metadata"), "name");
        json_object_set_new(json_object_get(job, "metadata"), "generateName",
                            json_string("mutant-"));
        c = json_array_get(json_object_get(json_object_get(json_object_get(json_object_get(
                job, "spec"), "template"), "spec"), "containers"), 0);
        json_array_append_new(json_object_get(c, "env"),
                              json_pack("{s:s,s:{s:{s:s,s:s}}}", "name", "B", "valueFrom",
                                        "secretKeyRef", "name", "s", "key", "k"));
        json_object_set_new(c, "resources", json_pack("{s:{s:s}}", "limits", "cpu", "1"));
        json_object_set_new(c, "readinessProbe", json_pack("{s:{s:i}}", "tcpSocket", "port", 80));
        mutations = 0;
        mutate(job, job);
        json_decref(job);
        assert_true(mutations > 200);
        /* The accepted ones ran (or wait, for what a kubelet would wait). */
        for (int k = 0; k < 100; k++) {
                running = 0;
                json_decref(all);
                assert_int_equal(kubefake_ctl(kfx, "GET", "pods", NULL, &all), 200);
                json_array_foreach(json_object_get(all, "pods"), i, p)
                        running += strcmp(json_string_value(json_object_get(p, "phase")),
                                          "Running") == 0;
                if (!running)
                        break;
                kfx_sleep_ms(50);
        }
        assert_true(json_array_size(json_object_get(all, "pods")) > 10);
        json_decref(all);
        assert_int_equal(running, 0);
        assert_true(kubefake_alive(kfx));
}

/* A body must say it is JSON, as an apiserver wants. */
static void body_needs_json_content_type(void **state)
{
        char cmd[2048];
        char *body = kfx_job("ctype", "busybox", sh_true, NULL, NULL, NULL);
        FILE *f;
        char out[64] = "";

        (void)state;
        snprintf(cmd, sizeof(cmd), "curl -s -o /dev/null -w '%%{http_code}' --cacert %s "
                 "-H 'Authorization: Bearer %s' -H 'Content-Type: application/yaml' "
                 "--data-binary '%s' %s" JOBS, kubefake_ca_path(kfx), kubefake_token(kfx), body,
                 kubefake_url(kfx));
        f = popen(cmd, "re");
        assert_non_null(f);
        assert_non_null(fgets(out, sizeof(out), f));
        pclose(f);
        assert_string_equal(out, "415");
        free(body);
        assert_int_equal(kfx_get(JOBS "/ctype", NULL), 404);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(good_job_is_stored_with_server_fields),
                cmocka_unit_test(good_secret_folds_string_data),
                cmocka_unit_test(unknown_fields_at_every_depth),
                cmocka_unit_test(wrong_types),
                cmocka_unit_test(typed_values_accepted),
                cmocka_unit_test(missing_required_fields),
                cmocka_unit_test(semantic_rules),
                cmocka_unit_test(conflicts_and_server_fields),
                cmocka_unit_test(delete_options_are_strict),
                cmocka_unit_test(rejections_are_listed),
                cmocka_unit_test(dry_run_stores_nothing),
                cmocka_unit_test(bad_input_refused),
                cmocka_unit_test(body_needs_json_content_type),
                cmocka_unit_test(mutated_jobs_never_crash),
        };
        return cmocka_run_group_tests(tests, kfx_setup, kfx_teardown);
}
