/* discovery.c: what kubectl needs of kube-fake before and besides the
 * provider's resources: API discovery in the legacy form (/api, /apis,
 * /api/v1, /apis/{group}/{version}) listing every known resource with its
 * scope, kind and the verbs really served; the OpenAPI v3 documents that
 * tell kubectl the server validates fields; and the validated-only kinds
 * of deploy/kubernetes/: created with dryRun=All only (strictly validated,
 * echoed, never stored), refused without it, never found by GET. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kfx.h"

#define DEPLOYMENTS "/apis/apps/v1/namespaces/disc/deployments"
#define DEPLOYMENT \
        "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\"," \
        "\"metadata\":{\"name\":\"web\",\"labels\":{\"app\":\"web\"}}," \
        "\"spec\":{\"replicas\":1,\"selector\":{\"matchLabels\":{\"app\":\"web\"}}," \
        "\"template\":{\"metadata\":{\"labels\":{\"app\":\"web\"}}," \
        "\"spec\":{\"containers\":[{\"name\":\"web\",\"image\":\"nginx\"," \
        "\"ports\":[{\"name\":\"http\",\"containerPort\":80}]}]}}}}"

/* The string at a dotted path, or NULL. */
static const char *str_at(json_t *j, const char *path)
{
        char buf[128], *save = NULL;

        snprintf(buf, sizeof(buf), "%s", path);
        for (char *seg = strtok_r(buf, ".", &save); seg && j; seg = strtok_r(NULL, ".", &save))
                j = json_object_get(j, seg);
        return json_string_value(j);
}

/* The entry named name in an APIResourceList, or fails. */
static json_t *resource(json_t *list, const char *name)
{
        size_t i;
        json_t *e;

        json_array_foreach(json_object_get(list, "resources"), i, e)
                if (strcmp(json_string_value(json_object_get(e, "name")), name) == 0)
                        return e;
        fail_msg("resource %s not listed", name);
        return NULL;
}

static void verbs_are(json_t *e, const char *want)
{
        char got[256] = "";
        size_t i, n = 0;
        json_t *v;

        json_array_foreach(json_object_get(e, "verbs"), i, v)
                n += (size_t)snprintf(got + n, sizeof(got) - n, "%s%s", i ? "," : "",
                                      json_string_value(v));
        assert_string_equal(got, want);
}

static void check_resource(json_t *list, const char *name, const char *singular,
                           const char *kind, bool namespaced, const char *verbs)
{
        json_t *e = resource(list, name);

        assert_string_equal(json_string_value(json_object_get(e, "singularName")), singular);
        assert_string_equal(json_string_value(json_object_get(e, "kind")), kind);
        assert_int_equal(json_is_true(json_object_get(e, "namespaced")), namespaced);
        verbs_are(e, verbs);
}

static void discovery_lists_every_known_resource(void **state)
{
        json_t *j = NULL, *g;
        size_t i;
        char names[256] = "";
        size_t n = 0;

        (void)state;
        assert_int_equal(kfx_get("/api", &j), 200);
        assert_string_equal(json_string_value(json_object_get(j, "kind")), "APIVersions");
        assert_string_equal(json_string_value(json_array_get(json_object_get(j, "versions"), 0)),
                            "v1");
        json_decref(j);

        assert_int_equal(kfx_get("/apis", &j), 200);
        assert_string_equal(json_string_value(json_object_get(j, "kind")), "APIGroupList");
        json_array_foreach(json_object_get(j, "groups"), i, g) {
                n += (size_t)snprintf(names + n, sizeof(names) - n, "%s ",
                                      json_string_value(json_object_get(g, "name")));
                assert_string_equal(str_at(g, "preferredVersion.version"), "v1");
        }
        assert_string_equal(names, "apps batch networking.k8s.io rbac.authorization.k8s.io ");
        json_decref(j);

        assert_int_equal(kfx_get("/api/v1", &j), 200);
        assert_string_equal(json_string_value(json_object_get(j, "kind")), "APIResourceList");
        assert_string_equal(json_string_value(json_object_get(j, "groupVersion")), "v1");
        check_resource(j, "secrets", "secret", "Secret", true, "create,delete,get,list,watch");
        check_resource(j, "pods", "pod", "Pod", true, "delete,get,list,watch");
        check_resource(j, "pods/log", "", "Pod", true, "get");
        check_resource(j, "namespaces", "namespace", "Namespace", false, "create,get");
        check_resource(j, "serviceaccounts", "serviceaccount", "ServiceAccount", true,
                       "create,get");
        check_resource(j, "configmaps", "configmap", "ConfigMap", true, "create,get");
        check_resource(j, "services", "service", "Service", true, "create,get");
        check_resource(j, "persistentvolumeclaims", "persistentvolumeclaim",
                       "PersistentVolumeClaim", true, "create,get");
        json_decref(j);

        assert_int_equal(kfx_get("/apis/batch/v1", &j), 200);
        assert_string_equal(json_string_value(json_object_get(j, "groupVersion")), "batch/v1");
        check_resource(j, "jobs", "job", "Job", true, "create,delete,get,list,watch");
        json_decref(j);
        assert_int_equal(kfx_get("/apis/apps/v1", &j), 200);
        check_resource(j, "deployments", "deployment", "Deployment", true, "create,get");
        json_decref(j);
        assert_int_equal(kfx_get("/apis/rbac.authorization.k8s.io/v1", &j), 200);
        check_resource(j, "roles", "role", "Role", true, "create,get");
        check_resource(j, "rolebindings", "rolebinding", "RoleBinding", true, "create,get");
        json_decref(j);
        assert_int_equal(kfx_get("/apis/networking.k8s.io/v1", &j), 200);
        check_resource(j, "networkpolicies", "networkpolicy", "NetworkPolicy", true,
                       "create,get");
        json_decref(j);

        assert_int_equal(kfx_get("/apis/apps/v2", &j), 404);
        assert_string_equal(json_string_value(json_object_get(j, "reason")), "NotFound");
        json_decref(j);
        assert_int_equal(kfx_get("/apis/example.org/v1", NULL), 404);
}

static void discovery_needs_credentials(void **state)
{
        struct kubefake_resp r;

        (void)state;
        assert_int_equal(kubefake_request(kfx, KUBEFAKE_AUTH_NONE, "GET", "/apis", NULL, &r), 0);
        assert_int_equal(r.status, 401);
        kubefake_resp_done(&r);
}

static void openapi_says_fields_are_validated(void **state)
{
        json_t *j = NULL, *p;
        const char *url;

        (void)state;
        assert_int_equal(kfx_get("/openapi/v3", &j), 200);
        url = json_string_value(json_object_get(json_object_get(json_object_get(j, "paths"),
                                                                "apis/apps/v1"),
                                                "serverRelativeURL"));
        assert_non_null(url);
        assert_int_equal(strncmp(url, "/openapi/v3/apis/apps/v1?", 25), 0);
        json_decref(j);

        assert_int_equal(kfx_get("/openapi/v3/apis/apps/v1", &j), 200);
        p = json_object_get(json_object_get(json_object_get(j, "paths"),
                            "/apis/apps/v1/namespaces/{namespace}/deployments/{name}"), "patch");
        assert_string_equal(json_string_value(json_object_get(
                json_object_get(p, "x-kubernetes-group-version-kind"), "kind")), "Deployment");
        assert_string_equal(json_string_value(json_object_get(
                json_array_get(json_object_get(p, "parameters"), 0), "name")), "fieldValidation");
        json_decref(j);
        assert_int_equal(kfx_get("/openapi/v3/api/v1", &j), 200);
        assert_non_null(json_object_get(json_object_get(j, "paths"),
                                        "/api/v1/namespaces/{name}"));
        json_decref(j);
        assert_int_equal(kfx_get("/openapi/v3/apis/example.org/v1", NULL), 404);
}

static void validated_kinds_are_created_by_dry_run_only(void **state)
{
        json_t *j = NULL;
        const char *msg;

        (void)state;
        assert_int_equal(kfx_post(DEPLOYMENTS "?dryRun=All&fieldValidation=Strict", DEPLOYMENT,
                                  &j), 201);
        assert_string_equal(json_string_value(json_object_get(j, "kind")), "Deployment");
        assert_string_equal(str_at(j, "metadata.namespace"), "disc");
        assert_non_null(str_at(j, "metadata.uid"));
        assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "spec"),
                                                            "replicas")), 1);
        json_decref(j);

        /* Nothing stored: the same name again is no conflict, and GET finds
         * nothing. */
        assert_int_equal(kfx_post(DEPLOYMENTS "?dryRun=All", DEPLOYMENT, NULL), 201);
        assert_int_equal(kfx_get(DEPLOYMENTS "/web", &j), 404);
        assert_string_equal(json_string_value(json_object_get(j, "kind")), "Status");
        assert_string_equal(json_string_value(json_object_get(j, "reason")), "NotFound");
        assert_string_equal(json_string_value(json_object_get(j, "message")),
                            "deployments.apps \"web\" not found");
        json_decref(j);

        /* Without dryRun: refused, saying why. */
        assert_int_equal(kfx_post(DEPLOYMENTS, DEPLOYMENT, &j), 405);
        assert_string_equal(json_string_value(json_object_get(j, "reason")), "MethodNotAllowed");
        msg = json_string_value(json_object_get(j, "message"));
        assert_non_null(strstr(msg, "kube-fake does not run deployments.apps"));
        assert_non_null(strstr(msg, "dryRun=All"));
        json_decref(j);
        assert_int_equal(kfx_post("/api/v1/namespaces/disc/configmaps",
                                  "{\"metadata\":{\"name\":\"c\"}}", NULL), 405);

        /* Namespaces are cluster-scoped; none exists. */
        assert_int_equal(kfx_post("/api/v1/namespaces?dryRun=All",
                                  "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\","
                                  "\"metadata\":{\"name\":\"team-a\",\"namespace\":\"x\"}}", &j),
                         201);
        assert_string_equal(str_at(j, "metadata.name"), "team-a");
        assert_null(str_at(j, "metadata.namespace"));
        json_decref(j);
        assert_int_equal(kfx_get("/api/v1/namespaces/team-a", &j), 404);
        assert_string_equal(json_string_value(json_object_get(j, "message")),
                            "namespaces \"team-a\" not found");
        json_decref(j);
        assert_int_equal(kfx_get("/api/v1/namespaces/disc/serviceaccounts/sa", NULL), 404);
        assert_int_equal(kfx_get("/apis/rbac.authorization.k8s.io/v1/namespaces/disc/roles/r",
                                 NULL), 404);
}

/* POSTs body with dryRun=All and checks status, reason and the message. */
static void refused(const char *path, const char *body, long status, const char *want)
{
        char url[512];
        json_t *j = NULL;
        const char *msg;

        snprintf(url, sizeof(url), "%s?dryRun=All&fieldValidation=Strict", path);
        assert_int_equal(kfx_post(url, body, &j), status);
        msg = json_string_value(json_object_get(j, "message"));
        if (!msg || !strstr(msg, want))
                fail_msg("want \"%s\", got %s", want, msg ? msg : "(no message)");
        assert_string_equal(json_string_value(json_object_get(j, "reason")),
                            status == 400 ? "BadRequest" : "Invalid");
        json_decref(j);
}

static void validated_kinds_are_strict(void **state)
{
        json_t *j = NULL, *cause;

        (void)state;
        refused(DEPLOYMENTS, "{\"metadata\":{\"name\":\"w\"},\"spec\":{\"replicass\":1}}", 400,
                ".spec.replicass: field not declared in schema");
        refused(DEPLOYMENTS, "{\"metadata\":{\"name\":\"w\"},\"spec\":{\"replicas\":\"1\","
                "\"selector\":{},\"template\":{}}}", 400, ".spec.replicas: expected integer");
        refused(DEPLOYMENTS, "{\"metadata\":{\"name\":\"w\"},\"spec\":{\"template\":{}}}", 422,
                ".spec.selector: Required value");
        refused(DEPLOYMENTS, "{\"apiVersion\":\"apps/v1\",\"kind\":\"Job\","
                "\"metadata\":{\"name\":\"w\"}}", 400, "the kind in the data (Job)");
        refused(DEPLOYMENTS, "{\"metadata\":{\"name\":\"W_1\"}}", 422, "metadata.name");
        refused("/api/v1/namespaces/disc/services", "{\"metadata\":{\"name\":\"s\"},"
                "\"spec\":{\"ports\":[{\"port\":\"80\"}]}}", 400,
                ".spec.ports[0].port: expected integer");
        refused("/api/v1/namespaces", "{\"metadata\":{\"name\":\"team.a\"}}", 422,
                "metadata.name: Invalid value: \"team.a\": a lowercase RFC 1123 label");
        refused("/api/v1/namespaces/disc/services", "{\"metadata\":{\"name\":\"9web\"}}", 422,
                "a DNS-1035 label must start with an alphabetic character");
        refused("/api/v1/namespaces/disc/configmaps", "{\"metadata\":{\"name\":\"c\"},"
                "\"data\":{\"a/b\":\"x\"}}", 422, "data[a/b]");
        refused("/api/v1/namespaces/disc/persistentvolumeclaims", "{\"metadata\":"
                "{\"name\":\"p\"},\"spec\":{\"resources\":{\"requests\":{\"storage\":\"1 Gi\"}}}}",
                400, "quantities must match");
        refused("/apis/rbac.authorization.k8s.io/v1/namespaces/disc/roles",
                "{\"metadata\":{\"name\":\"r\"},\"rules\":[{\"resources\":[\"pods\"]}]}", 422,
                ".rules[0].verbs: Required value");
        refused("/apis/networking.k8s.io/v1/namespaces/disc/networkpolicies",
                "{\"metadata\":{\"name\":\"n\"},\"spec\":{\"ingress\":[{\"form\":[]}]}}", 400,
                ".spec.ingress[0].form: field not declared");
        refused("/api/v1/namespaces/disc/serviceaccounts", "{\"metadata\":{\"name\":\"s\","
                "\"namespace\":\"other\"}}", 400, "does not match the namespace");

        /* An Invalid answer names the field in details.causes, which is
         * what kubectl prints. */
        assert_int_equal(kfx_post("/apis/rbac.authorization.k8s.io/v1/namespaces/disc/"
                                  "rolebindings?dryRun=All",
                                  "{\"metadata\":{\"name\":\"rb\"}}", &j), 422);
        assert_string_equal(str_at(j, "details.kind"), "RoleBinding");
        cause = json_array_get(json_object_get(json_object_get(j, "details"), "causes"), 0);
        assert_string_equal(str_at(cause, "field"), "roleRef");
        assert_string_equal(str_at(cause, "reason"), "FieldValueRequired");
        assert_string_equal(str_at(cause, "message"), "Required value");
        json_decref(j);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(discovery_lists_every_known_resource),
                cmocka_unit_test(discovery_needs_credentials),
                cmocka_unit_test(openapi_says_fields_are_validated),
                cmocka_unit_test(validated_kinds_are_created_by_dry_run_only),
                cmocka_unit_test(validated_kinds_are_strict),
        };
        return cmocka_run_group_tests(tests, kfx_setup, kfx_teardown);
}
