/* validate.c: what kube-fake refuses in a body, like an apiserver with
 * fieldValidation=Strict: fields the OpenAPI schema (schema_gen.c) does not
 * declare, values of the wrong JSON type, missing required fields; then the
 * semantic rules a real apiserver applies to Jobs and Secrets (names,
 * labels, containers, restartPolicy, volumes), and to every other kind's
 * metadata (a ConfigMap's keys, Namespace and Service names). Pure: never stores, never
 * logs; the answer names the field path. */
#include "kfake.h"
#include "schema.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util/rfc3339.h"

#define PATH_MAX_LEN 512

struct vctx {
        char path[PATH_MAX_LEN];
        char bad[1024];         /* first decoding error: 400 BadRequest */
        char invalid[1024];     /* first field error: 422 Invalid */
};

static void fail(char *dst, const char *path, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void fail(char *dst, const char *path, const char *fmt, ...)
{
        char msg[512];
        va_list ap;

        if (dst[0])
                return;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        snprintf(dst, 1024, "%s: %s", path, msg);
}

static const char *json_kind(json_t *v)
{
        switch (json_typeof(v)) {
        case JSON_OBJECT: return "object";
        case JSON_ARRAY: return "array";
        case JSON_STRING: return "string";
        case JSON_INTEGER: return "integer";
        case JSON_REAL: return "number";
        case JSON_TRUE:
        case JSON_FALSE: return "boolean";
        default: return "null";
        }
}

static bool digits(const char **p)
{
        const char *s = *p;

        while (isdigit((unsigned char)**p))
                (*p)++;
        return *p > s;
}

/* resource.Quantity's grammar: a decimal number and a suffix. */
static bool quantity_ok(const char *s)
{
        const char *p = s;
        bool num;

        if (*p == '+' || *p == '-')
                p++;
        num = digits(&p);
        if (*p == '.') {
                p++;
                num = digits(&p) || num;
        }
        if (!num)
                return false;
        if (!*p)
                return true;
        if (strchr("KMGTPE", *p) && p[1] == 'i' && !p[2])
                return true;
        if (strchr("numkMGTPE", *p) && !p[1])
                return true;
        if (*p == 'e' || *p == 'E') {
                p++;
                if (*p == '+' || *p == '-')
                        p++;
                return digits(&p) && !*p;
        }
        return false;
}

static void check_value(struct vctx *c, enum kschema_kind k, const char *ref, json_t *v);

static void check_object(struct vctx *c, const struct kschema_type *t, json_t *o)
{
        size_t plen = strlen(c->path);
        const char *key;
        json_t *v;

        if (!json_is_object(o)) {
                fail(c->bad, c->path, "expected object, got %s", json_kind(o));
                return;
        }
        json_object_foreach(o, key, v) {
                const struct kschema_field *f = kschema_field(t, key);
                snprintf(c->path + plen, sizeof(c->path) - plen, ".%s", key);
                if (!f) {
                        fail(c->bad, c->path, "field not declared in schema");
                        continue;
                }
                if (json_is_null(v))
                        continue;
                check_value(c, f->kind, f->ref, v);
                if (f->kind == KS_ARRAY || f->kind == KS_MAP) {
                        size_t l2 = strlen(c->path);
                        if (f->kind == KS_ARRAY && json_is_array(v)) {
                                size_t i;
                                json_t *e;
                                json_array_foreach(v, i, e) {
                                        snprintf(c->path + l2, sizeof(c->path) - l2, "[%zu]", i);
                                        check_value(c, f->elem, f->ref, e);
                                }
                        } else if (f->kind == KS_MAP && json_is_object(v)) {
                                const char *mk;
                                json_t *e;
                                json_object_foreach(v, mk, e) {
                                        snprintf(c->path + l2, sizeof(c->path) - l2, "[%s]", mk);
                                        check_value(c, f->elem, f->ref, e);
                                }
                        }
                }
        }
        for (size_t i = 0; i < t->nfields; i++) {
                json_t *fv = json_object_get(o, t->fields[i].name);
                if (t->fields[i].required && (!fv || json_is_null(fv))) {
                        snprintf(c->path + plen, sizeof(c->path) - plen, ".%s",
                                 t->fields[i].name);
                        fail(c->invalid, c->path, "Required value");
                }
        }
        c->path[plen] = '\0';
}

static void check_value(struct vctx *c, enum kschema_kind k, const char *ref, json_t *v)
{
        bool ok = true;
        const char *want = "";

        switch (k) {
        case KS_STRING: ok = json_is_string(v); want = "string"; break;
        case KS_INTEGER: ok = json_is_integer(v); want = "integer"; break;
        case KS_NUMBER: ok = json_is_number(v); want = "number"; break;
        case KS_BOOLEAN: ok = json_is_boolean(v); want = "boolean"; break;
        case KS_ARRAY: ok = json_is_array(v); want = "array"; break;
        case KS_MAP:
        case KS_ANY_OBJECT: ok = json_is_object(v); want = "object"; break;
        case KS_INT_OR_STRING:
                ok = json_is_integer(v) || json_is_string(v);
                want = "integer or string";
                break;
        case KS_QUANTITY:
                ok = json_is_number(v) || json_is_string(v);
                want = "quantity (string or number)";
                if (json_is_string(v) && !quantity_ok(json_string_value(v))) {
                        fail(c->bad, c->path, "quantities must match the regular expression "
                             "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'");
                        return;
                }
                break;
        case KS_TIME:
                ok = json_is_string(v);
                want = "RFC 3339 time string";
                if (ok && rfc3339_parse(json_string_value(v), strlen(json_string_value(v)),
                                        &(int64_t){ 0 }, &(int32_t){ 0 }) < 0) {
                        fail(c->bad, c->path, "not an RFC 3339 time: \"%s\"",
                             json_string_value(v));
                        return;
                }
                break;
        case KS_OBJECT: {
                const struct kschema_type *t = kschema_type(ref);
                if (!t) {
                        fail(c->bad, c->path, "schema has no type %s", ref);
                        return;
                }
                check_object(c, t, v);
                return;
        }
        case KS_NONE:
                return;
        }
        if (!ok && !json_is_null(v))
                fail(c->bad, c->path, "expected %s, got %s", want, json_kind(v));
}

/* ---- semantic rules ------------------------------------------------------ */

static bool alnum_lower(char ch)
{
        return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
}

bool validate_dns_label(const char *s)
{
        size_t n = s ? strlen(s) : 0;

        if (n == 0 || n > 63 || !alnum_lower(s[0]) || !alnum_lower(s[n - 1]))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!alnum_lower(s[i]) && s[i] != '-')
                        return false;
        return true;
}

bool validate_dns_subdomain(const char *s)
{
        size_t n = s ? strlen(s) : 0;

        if (n == 0 || n > 253 || !alnum_lower(s[0]) || !alnum_lower(s[n - 1]))
                return false;
        for (size_t i = 0; i < n; i++) {
                if (!alnum_lower(s[i]) && s[i] != '-' && s[i] != '.')
                        return false;
                if (s[i] == '.' && (!alnum_lower(s[i - 1]) || !alnum_lower(s[i + 1])))
                        return false;
        }
        return true;
}

static bool qualified_name_part(const char *s, size_t n)
{
        if (n == 0 || n > 63 || !isalnum((unsigned char)s[0]) ||
            !isalnum((unsigned char)s[n - 1]))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
                        return false;
        return true;
}

/* A label or annotation key: [prefix/]name. */
static bool label_key_ok(const char *k)
{
        const char *slash = strchr(k, '/');
        char prefix[254];

        if (!slash)
                return qualified_name_part(k, strlen(k));
        if ((size_t)(slash - k) >= sizeof(prefix))
                return false;
        memcpy(prefix, k, (size_t)(slash - k));
        prefix[slash - k] = '\0';
        return validate_dns_subdomain(prefix) && qualified_name_part(slash + 1, strlen(slash + 1));
}

static bool label_value_ok(const char *v)
{
        return !*v || qualified_name_part(v, strlen(v));
}

static void check_meta(struct vctx *c, json_t *md, const char *at, bool job)
{
        const char *name = json_string_value(json_object_get(md, "name"));
        const char *gen = json_string_value(json_object_get(md, "generateName"));
        json_t *labels = json_object_get(md, "labels"), *ann = json_object_get(md, "annotations");
        const char *k;
        json_t *v;
        char p[PATH_MAX_LEN];

        if (at[0] == '\0') {
                snprintf(p, sizeof(p), "metadata.name");
                if ((!name || !*name) && (!gen || !*gen))
                        fail(c->invalid, p, "Required value: name or generateName is required");
                else if (name && *name && !validate_dns_subdomain(name))
                        fail(c->invalid, p, "Invalid value: \"%s\": a lowercase RFC 1123 "
                             "subdomain must consist of lower case alphanumeric characters, "
                             "'-' or '.', and must start and end with an alphanumeric character",
                             name);
                else if (job && name && strlen(name) > 63)
                        fail(c->invalid, p, "Invalid value: \"%s\": must be no more than 63 "
                             "characters", name);
        }
        json_object_foreach(labels, k, v) {
                snprintf(p, sizeof(p), "%smetadata.labels", at);
                if (!label_key_ok(k))
                        fail(c->invalid, p, "Invalid value: \"%s\": name part must consist of "
                             "alphanumeric characters, '-', '_' or '.', and must start and end "
                             "with an alphanumeric character", k);
                else if (json_is_string(v) && !label_value_ok(json_string_value(v)))
                        fail(c->invalid, p, "Invalid value: \"%s\": a valid label must be an "
                             "empty string or consist of alphanumeric characters, '-', '_' or "
                             "'.', and must start and end with an alphanumeric character (at "
                             "most 63)", json_string_value(v));
        }
        json_object_foreach(ann, k, v) {
                snprintf(p, sizeof(p), "%smetadata.annotations", at);
                if (!label_key_ok(k))
                        fail(c->invalid, p, "Invalid value: \"%s\": not a qualified name", k);
        }
}

static bool env_name_ok(const char *s)
{
        if (!s || !*s || isdigit((unsigned char)s[0]))
                return false;
        for (; *s; s++)
                if (!isalnum((unsigned char)*s) && *s != '-' && *s != '.' && *s != '_')
                        return false;
        return true;
}

static void check_job(struct vctx *c, json_t *job)
{
        json_t *spec = json_object_get(job, "spec");
        json_t *tmpl = json_object_get(spec, "template");
        json_t *ps = json_object_get(tmpl, "spec");
        json_t *containers = json_object_get(ps, "containers");
        json_t *volumes = json_object_get(ps, "volumes");
        const char *rp = json_string_value(json_object_get(ps, "restartPolicy"));
        char p[PATH_MAX_LEN];
        size_t i, j;
        json_t *ct, *vol;

        check_meta(c, json_object_get(tmpl, "metadata"), "spec.template.", false);
        if (!rp || (strcmp(rp, "Never") != 0 && strcmp(rp, "OnFailure") != 0))
                fail(c->invalid, "spec.template.spec.restartPolicy",
                     "Unsupported value: \"%s\": supported values: \"OnFailure\", \"Never\"",
                     rp ? rp : "Always");
        if (json_integer_value(json_object_get(spec, "backoffLimit")) < 0)
                fail(c->invalid, "spec.backoffLimit", "Invalid value: must be greater than or "
                     "equal to 0");
        if (json_object_get(spec, "activeDeadlineSeconds") &&
            json_integer_value(json_object_get(spec, "activeDeadlineSeconds")) <= 0)
                fail(c->invalid, "spec.activeDeadlineSeconds", "Invalid value: must be greater "
                     "than 0");
        if (json_integer_value(json_object_get(spec, "ttlSecondsAfterFinished")) < 0)
                fail(c->invalid, "spec.ttlSecondsAfterFinished", "Invalid value: must be "
                     "greater than or equal to 0");
        if (json_object_get(spec, "selector") &&
            !json_is_true(json_object_get(spec, "manualSelector")))
                fail(c->invalid, "spec.selector", "Invalid value: `selector` not auto-generated");
        json_array_foreach(volumes, i, vol) {
                const char *vn = json_string_value(json_object_get(vol, "name"));
                json_t *sec = json_object_get(vol, "secret");
                snprintf(p, sizeof(p), "spec.template.spec.volumes[%zu].name", i);
                if (!validate_dns_label(vn))
                        fail(c->invalid, p, "Invalid value: \"%s\": must be a DNS label",
                             vn ? vn : "");
                for (j = 0; j < i; j++) {
                        const char *other = obj_str(json_array_get(volumes, j), "name");
                        if (vn && other && strcmp(vn, other) == 0)
                                fail(c->invalid, p, "Duplicate value: \"%s\"", vn);
                }
                if (sec) {
                        const char *sn = json_string_value(json_object_get(sec, "secretName"));
                        json_t *dm = json_object_get(sec, "defaultMode");
                        snprintf(p, sizeof(p), "spec.template.spec.volumes[%zu].secret.secretName",
                                 i);
                        if (!validate_dns_subdomain(sn))
                                fail(c->invalid, p, "Required value");
                        snprintf(p, sizeof(p), "spec.template.spec.volumes[%zu].secret.defaultMode",
                                 i);
                        if (dm && (json_integer_value(dm) < 0 || json_integer_value(dm) > 0777))
                                fail(c->invalid, p, "Invalid value: %lld: must be a number "
                                     "between 0 and 0777 (octal), both inclusive",
                                     (long long)json_integer_value(dm));
                }
        }
        if (json_array_size(containers) == 0)
                fail(c->invalid, "spec.template.spec.containers", "Required value");
        json_array_foreach(containers, i, ct) {
                const char *cn = json_string_value(json_object_get(ct, "name"));
                const char *img = json_string_value(json_object_get(ct, "image"));
                json_t *mounts = json_object_get(ct, "volumeMounts");
                json_t *env = json_object_get(ct, "env");
                json_t *m, *e;
                size_t k;
                snprintf(p, sizeof(p), "spec.template.spec.containers[%zu].name", i);
                if (!cn || !*cn)
                        fail(c->invalid, p, "Required value");
                else if (!validate_dns_label(cn))
                        fail(c->invalid, p, "Invalid value: \"%s\": a lowercase RFC 1123 label "
                             "must consist of lower case alphanumeric characters or '-'", cn);
                snprintf(p, sizeof(p), "spec.template.spec.containers[%zu].image", i);
                if (!img || !*img)
                        fail(c->invalid, p, "Required value");
                json_array_foreach(mounts, k, m) {
                        const char *mn = json_string_value(json_object_get(m, "name"));
                        const char *mp = json_string_value(json_object_get(m, "mountPath"));
                        bool found = false;
                        json_array_foreach(volumes, j, vol)
                                found = found ||
                                        (mn && strcmp(mn, obj_str(vol, "name") ?: "") == 0);
                        snprintf(p, sizeof(p),
                                 "spec.template.spec.containers[%zu].volumeMounts[%zu].name", i, k);
                        if (!found)
                                fail(c->invalid, p, "Not found: \"%s\"", mn ? mn : "");
                        snprintf(p, sizeof(p),
                                 "spec.template.spec.containers[%zu].volumeMounts[%zu].mountPath",
                                 i, k);
                        if (!mp || mp[0] != '/')
                                fail(c->invalid, p, "Invalid value: \"%s\": must be an absolute "
                                     "path", mp ? mp : "");
                }
                json_array_foreach(env, k, e) {
                        const char *en = json_string_value(json_object_get(e, "name"));
                        snprintf(p, sizeof(p), "spec.template.spec.containers[%zu].env[%zu].name",
                                 i, k);
                        if (en && !env_name_ok(en))
                                fail(c->invalid, p, "Invalid value: \"%s\": a valid environment "
                                     "variable name must consist of alphabetic characters, "
                                     "digits, '_', '-', or '.', and must not start with a digit",
                                     en);
                }
        }
        /* What kube-fake itself cannot run, said as plainly as a refusal. */
        if (json_array_size(containers) > 1)
                fail(c->invalid, "spec.template.spec.containers",
                     "Too many: kube-fake runs exactly one container per pod");
        if (json_array_size(json_object_get(ps, "initContainers")) > 0)
                fail(c->invalid, "spec.template.spec.initContainers",
                     "Forbidden: kube-fake runs no init containers");
}

/* The keys of a Secret's data and stringData, or a ConfigMap's data and
 * binaryData. */
static void check_keys(struct vctx *c, json_t *s, const char *const maps[2])
{
        const char *k;
        json_t *v;
        char p[PATH_MAX_LEN];

        for (int pass = 0; pass < 2; pass++) {
                json_t *m = json_object_get(s, maps[pass]);
                json_object_foreach(m, k, v) {
                        size_t n = strlen(k);
                        bool ok = n > 0 && n <= 253 && strcmp(k, ".") != 0 && strcmp(k, "..") != 0;
                        for (size_t i = 0; ok && i < n; i++)
                                ok = isalnum((unsigned char)k[i]) || k[i] == '-' || k[i] == '_' ||
                                     k[i] == '.';
                        snprintf(p, sizeof(p), "%s[%s]", maps[pass], k);
                        if (!ok)
                                fail(c->invalid, p, "Invalid value: \"%s\": a valid config key "
                                     "must consist of alphanumeric characters, '-', '_' or '.'",
                                     k);
                }
        }
}

/* Namespaces and Services are named by a DNS label, not a subdomain; a
 * Service's must also start with a letter (RFC 1035): it becomes a DNS
 * name and an environment variable prefix. */
static void check_label_name(struct vctx *c, json_t *obj, bool rfc1035)
{
        const char *name = json_string_value(json_object_get(json_object_get(obj, "metadata"),
                                                             "name"));

        if (!name || !*name)
                return;         /* check_meta said so */
        if (!validate_dns_label(name))
                fail(c->invalid, "metadata.name", "Invalid value: \"%s\": a lowercase RFC 1123 "
                     "label must consist of lower case alphanumeric characters or '-', and must "
                     "start and end with an alphanumeric character (at most 63)", name);
        else if (rfc1035 && !(name[0] >= 'a' && name[0] <= 'z'))
                fail(c->invalid, "metadata.name", "Invalid value: \"%s\": a DNS-1035 label must "
                     "start with an alphabetic character", name);
}

static int verdict(struct vctx *c, char *why, size_t n, const char **ret_reason)
{
        if (c->bad[0]) {
                snprintf(why, n, "%s", c->bad);
                *ret_reason = "BadRequest";
                return 400;
        }
        if (c->invalid[0]) {
                snprintf(why, n, "%s", c->invalid);
                *ret_reason = "Invalid";
                return 422;
        }
        return 0;
}

int validate_object(enum kres what, json_t *obj, char *why, size_t whylen,
                    const char **ret_reason)
{
        static const char *const secret_maps[2] = { "data", "stringData" };
        static const char *const configmap_maps[2] = { "data", "binaryData" };
        struct vctx c = { .path = "" };
        const char *type = kres_schema(what);
        const char *api = json_string_value(json_object_get(obj, "apiVersion"));
        const char *kind = json_string_value(json_object_get(obj, "kind"));

        if (what == KR_POD || !type) {
                snprintf(why, whylen, "pods are created by Jobs in kube-fake");
                *ret_reason = "MethodNotAllowed";
                return 405;
        }
        check_object(&c, kschema_type(type), obj);
        if (!c.bad[0] && api && strcmp(api, kres_api_version(what)) != 0)
                fail(c.bad, ".apiVersion", "the API version in the data (%s) does not match the "
                     "expected API version (%s)", api, kres_api_version(what));
        if (!c.bad[0] && kind && strcmp(kind, kres_kind(what)) != 0)
                fail(c.bad, ".kind", "the kind in the data (%s) does not match the expected kind "
                     "(%s)", kind, kres_kind(what));
        if (!c.bad[0] && !json_is_object(json_object_get(obj, "metadata")))
                fail(c.invalid, "metadata.name", "Required value: name or generateName is "
                     "required");
        if (!c.bad[0]) {
                check_meta(&c, json_object_get(obj, "metadata"), "", what == KR_JOB);
                if (what == KR_JOB)
                        check_job(&c, obj);
                else if (what == KR_SECRET)
                        check_keys(&c, obj, secret_maps);
                else if (what == KR_CONFIGMAP)
                        check_keys(&c, obj, configmap_maps);
                else if (what == KR_NAMESPACE || what == KR_SERVICE)
                        check_label_name(&c, obj, what == KR_SERVICE);
        }
        return verdict(&c, why, whylen, ret_reason);
}

int validate_delete_options(json_t *obj, char *why, size_t whylen, const char **ret_reason)
{
        struct vctx c = { .path = "" };
        const char *api = json_string_value(json_object_get(obj, "apiVersion"));
        const char *kind = json_string_value(json_object_get(obj, "kind"));
        json_t *gp = json_object_get(obj, "gracePeriodSeconds");
        json_t *dry = json_object_get(obj, "dryRun");
        size_t i;
        json_t *d;

        check_object(&c, kschema_type("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"), obj);
        if (!c.bad[0] && kind && strcmp(kind, "DeleteOptions") != 0)
                fail(c.bad, ".kind", "expected DeleteOptions, got \"%s\"", kind);
        if (!c.bad[0] && api && strcmp(api, "v1") != 0 && strcmp(api, "meta.k8s.io/v1") != 0 &&
            strcmp(api, "batch/v1") != 0)
                fail(c.bad, ".apiVersion", "DeleteOptions in version \"%s\" is not known", api);
        if (json_is_integer(gp) && json_integer_value(gp) < 0)
                fail(c.invalid, "gracePeriodSeconds", "Invalid value: must be >= 0");
        json_array_foreach(dry, i, d)
                if (!json_is_string(d) || strcmp(json_string_value(d), "All") != 0)
                        fail(c.invalid, "dryRun", "Unsupported value: supported values: \"All\"");
        return verdict(&c, why, whylen, ret_reason);
}
