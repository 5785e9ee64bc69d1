/* discovery.c: the table of every resource kube-fake knows (name, kind,
 * group/version, scope, schema type, the verbs it really serves) and the
 * API discovery a client such as kubectl needs before anything else:
 * GET /api, /apis, /api/v1, /apis/{group}/{version}, in the legacy JSON
 * form only. Never lists a verb the fake does not serve, never stores. */
#include "kfake.h"

#include <stdio.h>
#include <string.h>

struct kres_info {
        const char *name, *singular, *kind, *group, *version, *schema;
        bool namespaced;
        const char *verbs[6];
};

/* Stored kinds take what api.c serves for them; the validated-only kinds
 * take create (dryRun=All) and get (always NotFound). */
static const struct kres_info kres_info[KR_ALL] = {
        [KR_SECRET] = { "secrets", "secret", "Secret", "", "v1", "io.k8s.api.core.v1.Secret",
                        true, { "create", "delete", "get", "list", "watch" } },
        [KR_JOB] = { "jobs", "job", "Job", "batch", "v1", "io.k8s.api.batch.v1.Job",
                     true, { "create", "delete", "get", "list", "watch" } },
        [KR_POD] = { "pods", "pod", "Pod", "", "v1", NULL,
                     true, { "delete", "get", "list", "watch" } },
        [KR_NAMESPACE] = { "namespaces", "namespace", "Namespace", "", "v1",
                           "io.k8s.api.core.v1.Namespace", false, { "create", "get" } },
        [KR_SERVICEACCOUNT] = { "serviceaccounts", "serviceaccount", "ServiceAccount", "", "v1",
                                "io.k8s.api.core.v1.ServiceAccount", true, { "create", "get" } },
        [KR_CONFIGMAP] = { "configmaps", "configmap", "ConfigMap", "", "v1",
                           "io.k8s.api.core.v1.ConfigMap", true, { "create", "get" } },
        [KR_SERVICE] = { "services", "service", "Service", "", "v1",
                         "io.k8s.api.core.v1.Service", true, { "create", "get" } },
        [KR_PVC] = { "persistentvolumeclaims", "persistentvolumeclaim", "PersistentVolumeClaim",
                     "", "v1", "io.k8s.api.core.v1.PersistentVolumeClaim", true,
                     { "create", "get" } },
        [KR_DEPLOYMENT] = { "deployments", "deployment", "Deployment", "apps", "v1",
                            "io.k8s.api.apps.v1.Deployment", true, { "create", "get" } },
        [KR_ROLE] = { "roles", "role", "Role", "rbac.authorization.k8s.io", "v1",
                      "io.k8s.api.rbac.v1.Role", true, { "create", "get" } },
        [KR_ROLEBINDING] = { "rolebindings", "rolebinding", "RoleBinding",
                             "rbac.authorization.k8s.io", "v1", "io.k8s.api.rbac.v1.RoleBinding",
                             true, { "create", "get" } },
        [KR_NETWORKPOLICY] = { "networkpolicies", "networkpolicy", "NetworkPolicy",
                               "networking.k8s.io", "v1", "io.k8s.api.networking.v1.NetworkPolicy",
                               true, { "create", "get" } },
};

/* The groups in the order /apis lists them (core is /api). */
static const char *const groups[] = { "apps", "batch", "networking.k8s.io",
                                      "rbac.authorization.k8s.io" };

const char *kres_name(enum kres r) { return kres_info[r].name; }
const char *kres_kind(enum kres r) { return kres_info[r].kind; }
const char *kres_group(enum kres r) { return kres_info[r].group; }
bool kres_namespaced(enum kres r) { return kres_info[r].namespaced; }
/* NULL for pods: kube-fake makes them, a client never creates one. */
const char *kres_schema(enum kres r) { return kres_info[r].schema; }

const char *kres_api_version(enum kres r)
{
        /* Built once per resource: "group/version", or "version" for core. */
        static char buf[KR_ALL][64];

        if (!buf[r][0]) {
                if (kres_info[r].group[0])
                        snprintf(buf[r], sizeof(buf[r]), "%s/%s", kres_info[r].group,
                                 kres_info[r].version);
                else
                        snprintf(buf[r], sizeof(buf[r]), "%s", kres_info[r].version);
        }
        return buf[r];
}

const char *kres_qualified(enum kres r)
{
        static char buf[KR_ALL][96];

        if (!buf[r][0]) {
                if (kres_info[r].group[0])
                        snprintf(buf[r], sizeof(buf[r]), "%s.%s", kres_info[r].name,
                                 kres_info[r].group);
                else
                        snprintf(buf[r], sizeof(buf[r]), "%s", kres_info[r].name);
        }
        return buf[r];
}

void api_core_versions(struct kreq *rq, struct kresp *rs, enum kres r)
{
        char addr[64];

        (void)r;
        snprintf(addr, sizeof(addr), "127.0.0.1:%d", rq->kf->port);
        rs->status = 200;
        rs->json = json_pack("{s:s,s:[s],s:[{s:s,s:s}]}", "kind", "APIVersions", "versions", "v1",
                             "serverAddressByClientCIDRs", "clientCIDR", "0.0.0.0/0",
                             "serverAddress", addr);
}

void api_groups(struct kreq *rq, struct kresp *rs, enum kres r)
{
        json_t *arr = json_array();

        (void)rq;
        (void)r;
        for (size_t i = 0; arr && i < sizeof(groups) / sizeof(groups[0]); i++) {
                char gv[96];
                snprintf(gv, sizeof(gv), "%s/v1", groups[i]);
                json_array_append_new(arr, json_pack("{s:s,s:[{s:s,s:s}],s:{s:s,s:s}}",
                                                     "name", groups[i], "versions",
                                                     "groupVersion", gv, "version", "v1",
                                                     "preferredVersion", "groupVersion", gv,
                                                     "version", "v1"));
        }
        rs->status = 200;
        rs->json = json_pack("{s:s,s:s,s:o}", "kind", "APIGroupList", "apiVersion", "v1",
                             "groups", arr);
}

static json_t *resource_entry(const struct kres_info *ri, const char *name, const char *singular,
                              const char *const *verbs)
{
        json_t *v = json_array();

        for (size_t i = 0; v && i < 6 && verbs[i]; i++)
                json_array_append_new(v, json_string(verbs[i]));
        return json_pack("{s:s,s:s,s:b,s:s,s:o}", "name", name, "singularName", singular,
                         "namespaced", ri->namespaced, "kind", ri->kind, "verbs", v);
}

/* GET /api/v1 (no captures) or /apis/{group}/{version}. */
void api_resources(struct kreq *rq, struct kresp *rs, enum kres r)
{
        const char *group = rq->params[0] ? rq->params[0] : "";
        const char *version = rq->params[1] ? rq->params[1] : "v1";
        char gv[128];
        json_t *arr = json_array();
        bool any = false;

        (void)r;
        for (int i = 0; arr && i < KR_ALL; i++) {
                const struct kres_info *ri = &kres_info[i];
                if (strcmp(ri->group, group) != 0 || strcmp(ri->version, version) != 0)
                        continue;
                any = true;
                json_array_append_new(arr, resource_entry(ri, ri->name, ri->singular, ri->verbs));
                if (i == KR_POD) {
                        static const char *const logverbs[6] = { "get" };
                        json_array_append_new(arr, resource_entry(ri, "pods/log", "", logverbs));
                }
        }
        if (!any) {
                json_decref(arr);
                api_status(rs, 404, "NotFound", "the server could not find the requested resource");
                return;
        }
        if (group[0])
                snprintf(gv, sizeof(gv), "%s/%s", group, version);
        else
                snprintf(gv, sizeof(gv), "%s", version);
        rs->status = 200;
        rs->json = json_pack("{s:s,s:s,s:s,s:o}", "kind", "APIResourceList", "apiVersion", "v1",
                             "groupVersion", gv, "resources", arr);
}

/* ---- OpenAPI v3 ---------------------------------------------------------- */

/* kubectl (--validate=strict, its default) asks /openapi/v3 whether the
 * server validates fields itself: it looks for a PATCH operation of the
 * kind carrying a fieldValidation query parameter. Answering yes makes it
 * send fieldValidation=Strict and leave validation to kube-fake (which is
 * strict always) instead of downloading full schemas. These documents say
 * only that: no schemas, and the PATCH they name is not served (405). */
void api_openapi_index(struct kreq *rq, struct kresp *rs, enum kres r)
{
        json_t *paths = json_object();

        (void)rq;
        (void)r;
        for (int i = 0; paths && i < KR_ALL; i++) {
                const struct kres_info *ri = &kres_info[i];
                char key[128], url[192];
                if (ri->group[0])
                        snprintf(key, sizeof(key), "apis/%s/%s", ri->group, ri->version);
                else
                        snprintf(key, sizeof(key), "api/%s", ri->version);
                snprintf(url, sizeof(url), "/openapi/v3/%s?hash=kube-fake", key);
                json_object_set_new(paths, key, json_pack("{s:s}", "serverRelativeURL", url));
        }
        rs->status = 200;
        rs->json = json_pack("{s:o}", "paths", paths);
}

/* GET /openapi/v3/api/v1 (no captures) or /openapi/v3/apis/{group}/{version}. */
void api_openapi_gv(struct kreq *rq, struct kresp *rs, enum kres r)
{
        const char *group = rq->params[0] ? rq->params[0] : "";
        const char *version = rq->params[1] ? rq->params[1] : "v1";
        json_t *paths = json_object();
        bool any = false;

        (void)r;
        for (int i = 0; paths && i < KR_ALL; i++) {
                const struct kres_info *ri = &kres_info[i];
                char path[256], prefix[128];
                if (strcmp(ri->group, group) != 0 || strcmp(ri->version, version) != 0)
                        continue;
                any = true;
                if (ri->group[0])
                        snprintf(prefix, sizeof(prefix), "/apis/%s/%s", ri->group, ri->version);
                else
                        snprintf(prefix, sizeof(prefix), "/api/%s", ri->version);
                snprintf(path, sizeof(path), "%s%s/%s/{name}", prefix,
                         ri->namespaced ? "/namespaces/{namespace}" : "", ri->name);
                json_object_set_new(paths, path, json_pack(
                        "{s:{s:{s:s,s:s,s:s},s:[{s:s,s:s,s:{s:s}}]}}", "patch",
                        "x-kubernetes-group-version-kind", "group", ri->group, "version",
                        ri->version, "kind", ri->kind, "parameters", "name", "fieldValidation",
                        "in", "query", "schema", "type", "string"));
        }
        if (!any) {
                json_decref(paths);
                api_status(rs, 404, "NotFound", "the server could not find the requested resource");
                return;
        }
        rs->status = 200;
        rs->json = json_pack("{s:s,s:{s:s,s:s},s:o}", "openapi", "3.0.0", "info", "title",
                             "Kubernetes (kube-fake)", "version", "v1.36.0", "paths", paths);
}
