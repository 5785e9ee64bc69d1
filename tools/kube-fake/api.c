/* api.c: kube-fake's Kubernetes resources (Secrets, Jobs, Pods: create,
 * get, list, watch, delete, pod logs; the validated-only kinds: create with
 * dryRun=All, get always NotFound) and the /_fake/ control API, as
 * handlers from a parsed request to a response object. Owns the answers'
 * shapes (Status objects, lists, defaults a real apiserver fills in) and
 * the query parameters' meaning. Never runs a process (pods.c does) and
 * never accepts a body validate.c refused. */
#include "kfake.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "util/base64.h"
#include "util/strutil.h"

#define MAX_SECRET_BYTES (1u << 20)

void api_status(struct kresp *rs, int code, const char *reason, const char *fmt, ...)
{
        char msg[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        json_decref(rs->json);
        rs->status = code;
        rs->json = json_pack("{s:s,s:s,s:{},s:s,s:s,s:s,s:i}", "kind", "Status", "apiVersion", "v1",
                             "metadata", "status", code < 300 ? "Success" : "Failure", "message",
                             msg, "reason", reason, "code", code);
}

static void status_details(struct kresp *rs, enum kres r, const char *name)
{
        json_t *d = json_pack("{s:s,s:s}", "name", name ? name : "", "kind", kres_name(r));

        if (d && kres_group(r)[0])
                json_object_set_new(d, "group", json_string(kres_group(r)));
        if (d)
                json_object_set_new(rs->json, "details", d);
}

static void not_found(struct kresp *rs, enum kres r, const char *name)
{
        api_status(rs, 404, "NotFound", "%s \"%s\" not found", kres_qualified(r), name);
        status_details(rs, r, name);
}

static void new_uid(char *buf, size_t n)
{
        unsigned char b[16];

        if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
                memset(b, 0x5a, sizeof(b));
        b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
        b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
        snprintf(buf, n, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
                 b[13], b[14], b[15]);
}

static bool parse_u64(const char *s, uint64_t *ret)
{
        int64_t v;

        if (!s || strutil_parse_i64(s, &v) < 0 || v < 0)
                return false;
        *ret = (uint64_t)v;
        return true;
}

void api_version(struct kreq *rq, struct kresp *rs, enum kres r)
{
        (void)rq;
        rs->status = 200;
        rs->json = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "major", "1", "minor", "36",
                             "gitVersion", "v1.36.0-kube-fake", "platform", "linux/amd64",
                             "goVersion", "none", "compiler", "kube-fake");
}

void api_absent(struct kreq *rq, struct kresp *rs, enum kres r)
{
        /* Validated-only kinds are never stored, so none exists: kubectl
         * apply then creates (with dryRun=All) instead of patching. */
        not_found(rs, r, kres_namespaced(r) ? rq->params[1] : rq->params[0]);
}

/* ---- list and watch ----------------------------------------------------- */

static const char *q(struct kreq *rq, const char *name)
{
        return rq->query(rq->conn, name);
}

static bool truthy(const char *v)
{
        return v && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0);
}

void api_list(struct kreq *rq, struct kresp *rs, enum kres r)
{
        struct kf *kf = rq->kf;
        const char *ns = rq->params[0] ? rq->params[0] : "";
        const char *rvs = q(rq, "resourceVersion"), *cont = q(rq, "continue");
        const char *match = q(rq, "resourceVersionMatch"), *lim = q(rq, "limit");
        struct ksel *sel = NULL;
        struct kfsel fsel;
        char why[256], rvbuf[32];
        uint64_t rv = 0, limit = 0, skip = 0, ts = 0;
        bool have_rv = rvs && *rvs;
        json_t *items, *meta;
        const char *k;
        json_t *v;

        if (have_rv && !parse_u64(rvs, &rv)) {
                api_status(rs, 400, "BadRequest", "invalid resource version \"%s\"", rvs);
                return;
        }
        if (ksel_parse(q(rq, "labelSelector"), &sel, why, sizeof(why)) < 0) {
                api_status(rs, 400, "BadRequest", "unable to parse requirement: %s", why);
                return;
        }
        if (kfsel_parse(q(rq, "fieldSelector"), &fsel, why, sizeof(why)) < 0) {
                ksel_free(sel);
                api_status(rs, 400, "BadRequest", "%s", why);
                return;
        }
        if (truthy(q(rq, "watch"))) {
                struct kwatch *w;
                if (q(rq, "timeoutSeconds") && !parse_u64(q(rq, "timeoutSeconds"), &ts)) {
                        ksel_free(sel);
                        api_status(rs, 400, "BadRequest", "invalid timeoutSeconds");
                        return;
                }
                w = store_watch_new(kf, r, ns, sel, &fsel, rv, have_rv);
                if (!w) {
                        api_status(rs, 500, "InternalError", "out of memory");
                        return;
                }
                w->bookmarks = truthy(q(rq, "allowWatchBookmarks"));
                /* A real apiserver ends a watch after 30 to 60 minutes. */
                w->end_ms = kf_now_ms() + (int64_t)(ts ? ts : 1800) * 1000;
                rs->status = 200;
                rs->watch = w;
                return;
        }
        if (match && strcmp(match, "Exact") != 0 && strcmp(match, "NotOlderThan") != 0) {
                ksel_free(sel);
                api_status(rs, 422, "Invalid", "resourceVersionMatch: Unsupported value: \"%s\"",
                           match);
                return;
        }
        if (match && strcmp(match, "Exact") == 0 && have_rv && rv && store_rv_expired(kf, rv)) {
                ksel_free(sel);
                api_status(rs, 410, "Expired", "The resourceVersion for the provided list is too "
                           "old.");
                return;
        }
        if (cont && *cont) {
                /* "<rv>-<offset>": a list resumed after a compaction is gone. */
                uint64_t crv;
                char tmp[64];
                char *dash;
                snprintf(tmp, sizeof(tmp), "%s", cont);
                dash = strchr(tmp, '-');
                if (dash)
                        *dash = '\0';
                if (!dash || !parse_u64(tmp, &crv) || !parse_u64(dash + 1, &skip)) {
                        ksel_free(sel);
                        api_status(rs, 400, "BadRequest", "continue key is not valid");
                        return;
                }
                if (store_rv_expired(kf, crv)) {
                        ksel_free(sel);
                        api_status(rs, 410, "Expired", "The provided continue parameter is too "
                                   "old to display a consistent list result. You can start a new "
                                   "list without the continue parameter.");
                        return;
                }
        }
        if (lim && !parse_u64(lim, &limit)) {
                ksel_free(sel);
                api_status(rs, 400, "BadRequest", "invalid limit");
                return;
        }
        items = json_array();
        uint64_t idx = 0, next = 0;
        json_object_foreach(kf->objs[r], k, v) {
                if (ns[0] && strcmp(ns, obj_str(v, "metadata.namespace") ?: "") != 0)
                        continue;
                if (!ksel_match(sel, v) || !kfsel_match(&fsel, v))
                        continue;
                if (idx++ < skip)
                        continue;
                if (limit && json_array_size(items) >= limit) {
                        next = idx - 1;
                        break;
                }
                json_array_append(items, v);
        }
        ksel_free(sel);
        snprintf(rvbuf, sizeof(rvbuf), "%llu", (unsigned long long)kf->rv);
        meta = json_pack("{s:s}", "resourceVersion", rvbuf);
        if (next) {
                char c[64];
                snprintf(c, sizeof(c), "%llu-%llu", (unsigned long long)kf->rv,
                         (unsigned long long)next);
                json_object_set_new(meta, "continue", json_string(c));
        }
        char kind[32];
        snprintf(kind, sizeof(kind), "%sList", kres_kind(r));
        rs->status = 200;
        rs->json = json_pack("{s:s,s:s,s:o,s:o}", "kind", kind, "apiVersion", kres_api_version(r),
                             "metadata", meta, "items", items);
}

void api_get(struct kreq *rq, struct kresp *rs, enum kres r)
{
        json_t *o = store_get(rq->kf, r, rq->params[0], rq->params[1]);

        if (!o) {
                not_found(rs, r, rq->params[1]);
                return;
        }
        rs->status = 200;
        rs->json = json_incref(o);
}

/* ---- create ------------------------------------------------------------- */

static void random_suffix(char *buf, size_t len)
{
        static const char alphabet[] = "bcdfghjklmnpqrstvwxz2456789";
        unsigned char b[16];

        if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
                memset(b, 7, sizeof(b));
        for (size_t i = 0; i < len && i < sizeof(b); i++)
                buf[i] = alphabet[b[i] % (sizeof(alphabet) - 1)];
        buf[len] = '\0';
}

static void set_default(json_t *o, const char *key, json_t *v)
{
        if (!json_object_get(o, key) || json_is_null(json_object_get(o, key)))
                json_object_set_new(o, key, v);
        else
                json_decref(v);
}

/* Folds stringData into data (base64) as the apiserver does, and checks
 * every value decodes. */
static int secret_normalise(json_t *o, char *why, size_t n)
{
        json_t *data = json_object_get(o, "data"), *sd = json_object_get(o, "stringData");
        const char *k;
        json_t *v;
        size_t total = 0;

        if (!json_is_object(data)) {
                data = json_object();
                json_object_set_new(o, "data", data);
        }
        json_object_foreach(data, k, v) {
                unsigned char *dec = NULL;
                size_t dlen = 0;
                const char *s = json_string_value(v);
                if (!s) {
                        snprintf(why, n, ".data.%s: expected string (base64)", k);
                        return -EINVAL;
                }
                if (*s && base64_decode(s, strlen(s), &dec, &dlen) < 0) {
                        snprintf(why, n, ".data.%s: illegal base64 data", k);
                        return -EINVAL;
                }
                free(dec);
                total += dlen;
        }
        json_object_foreach(sd, k, v) {
                /* null decodes as "" (Go's zero value); the schema let only
                 * strings and nulls through. */
                const char *s = json_string_value(v) ? json_string_value(v) : "";
                char *enc = base64_encode(s, strlen(s));
                if (!enc)
                        return -ENOMEM;
                json_object_set_new(data, k, json_string(enc));
                total += strlen(s);
                free(enc);
        }
        json_object_del(o, "stringData");
        if (total > MAX_SECRET_BYTES) {
                snprintf(why, n, "data: Too long: must have at most %u bytes", MAX_SECRET_BYTES);
                return -E2BIG;
        }
        set_default(o, "type", json_string("Opaque"));
        return 0;
}

static void job_defaults(json_t *o, const char *uid, const char *name)
{
        json_t *spec = json_object_get(o, "spec");
        json_t *tmpl = json_object_get(spec, "template");
        json_t *tmd, *labels, *ps;

        set_default(spec, "backoffLimit", json_integer(6));
        set_default(spec, "completions", json_integer(1));
        set_default(spec, "parallelism", json_integer(1));
        set_default(spec, "completionMode", json_string("NonIndexed"));
        set_default(spec, "suspend", json_false());
        set_default(spec, "podReplacementPolicy", json_string("TerminatingOrFailed"));
        set_default(spec, "manualSelector", json_false());
        if (!json_object_get(spec, "selector"))
                json_object_set_new(spec, "selector",
                                    json_pack("{s:{s:s}}", "matchLabels",
                                              "batch.kubernetes.io/controller-uid", uid));
        set_default(tmpl, "metadata", json_object());
        tmd = json_object_get(tmpl, "metadata");
        set_default(tmd, "labels", json_object());
        labels = json_object_get(tmd, "labels");
        json_object_set_new(labels, "controller-uid", json_string(uid));
        json_object_set_new(labels, "batch.kubernetes.io/controller-uid", json_string(uid));
        json_object_set_new(labels, "job-name", json_string(name));
        json_object_set_new(labels, "batch.kubernetes.io/job-name", json_string(name));
        ps = json_object_get(tmpl, "spec");
        set_default(ps, "terminationGracePeriodSeconds", json_integer(30));
        set_default(ps, "dnsPolicy", json_string("ClusterFirst"));
        set_default(ps, "schedulerName", json_string("default-scheduler"));
        set_default(ps, "securityContext", json_object());
        json_object_set_new(o, "status", json_object());
}

/* An Invalid answer names its field in details.causes, as an apiserver's
 * does: kubectl prints those ("The RoleBinding "x" is invalid: roleRef:
 * Required value"), not the message. why is "path: message". */
static void invalid_causes(struct kresp *rs, const char *kind, const char *why)
{
        static const struct { const char *prefix, *reason; } reasons[] = {
                { "Required value", "FieldValueRequired" },
                { "Unsupported value", "FieldValueNotSupported" },
                { "Not found", "FieldValueNotFound" },
                { "Duplicate value", "FieldValueDuplicate" },
                { "Forbidden", "FieldValueForbidden" },
                { "Too many", "FieldValueTooMany" },
                { "Too long", "FieldValueTooLong" },
        };
        json_t *d = json_object_get(rs->json, "details");
        const char *sep = strstr(why, ": ");
        const char *msg = sep ? sep + 2 : why, *reason = "FieldValueInvalid";
        char field[512];

        if (!d)
                return;
        snprintf(field, sizeof(field), "%.*s", sep ? (int)(sep - why) : 0, why);
        for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
                if (strncmp(msg, reasons[i].prefix, strlen(reasons[i].prefix)) == 0)
                        reason = reasons[i].reason;
        json_object_set_new(d, "kind", json_string(kind));
        json_object_set_new(d, "causes", json_pack("[{s:s,s:s,s:s}]", "reason", reason,
                                                   "message", msg, "field",
                                                   field[0] == '.' ? field + 1 : field));
}

static void reject(struct kreq *rq, struct kresp *rs, int code, const char *reason,
                   enum kres r, const char *name, const char *why)
{
        char kind[32];

        snprintf(kind, sizeof(kind), "%s", kres_kind(r));
        if (code == 422)
                api_status(rs, 422, reason, "%s \"%s\" is invalid: %s", kind, name ? name : "",
                           why);
        else
                api_status(rs, code, reason, "%s in version \"%s\" cannot be handled as a %s: %s",
                           kind, kres_api_version(r), kind, why);
        status_details(rs, r, name);
        if (code == 422)
                invalid_causes(rs, kind, why);
        httpd_reject(rq->kf, rq->path, why);
}

void api_create(struct kreq *rq, struct kresp *rs, enum kres r)
{
        struct kf *kf = rq->kf;
        const char *ns = kres_namespaced(r) ? rq->params[0] : NULL;
        json_error_t jerr;
        json_t *o, *md;
        char why[1024], uid[40], ts[40], namebuf[300];
        const char *reason = "BadRequest", *name, *dry = q(rq, "dryRun");
        bool dry_run = dry && strcmp(dry, "All") == 0;
        int code;

        if (r >= KR_N && !dry_run) {
                /* Said before the body is read: no body makes it work. */
                api_status(rs, 405, "MethodNotAllowed", "kube-fake does not run %s: it creates "
                           "%s only with dryRun=All (validates the object strictly, stores "
                           "nothing)", kres_qualified(r), kres_qualified(r));
                httpd_reject(kf, rq->path, "create without dryRun=All of a validated-only kind");
                return;
        }
        o = json_loadb(rq->body, rq->body_len, JSON_REJECT_DUPLICATES, &jerr);
        if (!o || !json_is_object(o)) {
                snprintf(why, sizeof(why), "the body is not a JSON object: %s",
                         o ? "not an object" : jerr.text);
                json_decref(o);
                reject(rq, rs, 400, "BadRequest", r, NULL, why);
                return;
        }
        code = validate_object(r, o, why, sizeof(why), &reason);
        md = json_object_get(o, "metadata");
        name = json_string_value(json_object_get(md, "name"));
        if (code) {
                reject(rq, rs, code, reason, r, name, why);
                json_decref(o);
                return;
        }
        if (!md) {
                md = json_object();
                json_object_set_new(o, "metadata", md);
        }
        const char *bns = json_string_value(json_object_get(md, "namespace"));
        if (ns && bns && *bns && strcmp(bns, ns) != 0) {
                snprintf(why, sizeof(why), "the namespace of the provided object does not match "
                         "the namespace sent on the request");
                reject(rq, rs, 400, "BadRequest", r, name, why);
                json_decref(o);
                return;
        }
        if (json_string_value(json_object_get(md, "resourceVersion")) &&
            *json_string_value(json_object_get(md, "resourceVersion"))) {
                api_status(rs, 500, "InternalError", "Internal error occurred: resourceVersion "
                           "should not be set on objects to be created");
                httpd_reject(kf, rq->path, "resourceVersion set on create");
                json_decref(o);
                return;
        }
        if (!name || !*name) {
                const char *gn = json_string_value(json_object_get(md, "generateName"));
                char sfx[8];
                random_suffix(sfx, 5);
                snprintf(namebuf, sizeof(namebuf), "%s%s", gn, sfx);
                json_object_set_new(md, "name", json_string(namebuf));
                name = json_string_value(json_object_get(md, "name"));
        }
        if (r < KR_N && store_get(kf, r, ns, name)) {
                api_status(rs, 409, "AlreadyExists", "%s \"%s\" already exists", kres_qualified(r),
                           name);
                status_details(rs, r, name);
                json_decref(o);
                return;
        }
        json_object_set_new(o, "kind", json_string(kres_kind(r)));
        json_object_set_new(o, "apiVersion", json_string(kres_api_version(r)));
        new_uid(uid, sizeof(uid));
        if (ns)
                json_object_set_new(md, "namespace", json_string(ns));
        else
                json_object_del(md, "namespace");       /* cluster-scoped: cleared */
        json_object_set_new(md, "uid", json_string(uid));
        json_object_set_new(md, "creationTimestamp", json_string(kf_timestamp(ts, sizeof(ts))));
        if (r == KR_SECRET) {
                int e = secret_normalise(o, why, sizeof(why));
                if (e < 0) {
                        reject(rq, rs, e == -EINVAL ? 400 : 422, e == -EINVAL ? "BadRequest"
                               : "Invalid", r, name, why);
                        json_decref(o);
                        return;
                }
        } else if (r == KR_JOB) {
                json_object_set_new(md, "generation", json_integer(1));
                job_defaults(o, uid, name);
        }
        if (dry_run) {
                rs->status = 201;
                rs->json = o;
                return;
        }
        o = store_add(kf, r, o);
        if (!o) {
                api_status(rs, 500, "InternalError", "out of memory");
                return;
        }
        rs->status = 201;
        rs->json = json_incref(o);
}

/* ---- delete ------------------------------------------------------------- */

void api_delete(struct kreq *rq, struct kresp *rs, enum kres r)
{
        struct kf *kf = rq->kf;
        json_t *o = store_get(kf, r, rq->params[0], rq->params[1]);
        json_t *opts = NULL;
        const char *policy = q(rq, "propagationPolicy"), *gps = q(rq, "gracePeriodSeconds");
        int64_t grace = -1;
        char why[512], polbuf[32];
        const char *reason = "BadRequest";

        if (rq->body_len > 0) {
                json_error_t jerr;
                int code;
                opts = json_loadb(rq->body, rq->body_len, JSON_REJECT_DUPLICATES, &jerr);
                if (!opts || !json_is_object(opts)) {
                        snprintf(why, sizeof(why), "the body is not a JSON object: %s",
                                 opts ? "not an object" : jerr.text);
                        json_decref(opts);
                        api_status(rs, 400, "BadRequest", "%s", why);
                        httpd_reject(kf, rq->path, why);
                        return;
                }
                code = validate_delete_options(opts, why, sizeof(why), &reason);
                if (code) {
                        json_decref(opts);
                        api_status(rs, code, reason, "%s", why);
                        httpd_reject(kf, rq->path, why);
                        return;
                }
                if (json_string_value(json_object_get(opts, "propagationPolicy"))) {
                        /* Copied: opts is released before the policy is used. */
                        snprintf(polbuf, sizeof(polbuf), "%s",
                                 json_string_value(json_object_get(opts, "propagationPolicy")));
                        policy = polbuf;
                }
                if (json_is_integer(json_object_get(opts, "gracePeriodSeconds")))
                        grace = json_integer_value(json_object_get(opts, "gracePeriodSeconds"));
        }
        if (gps) {
                if (strutil_parse_i64(gps, &grace) < 0 || grace < 0) {
                        json_decref(opts);
                        api_status(rs, 400, "BadRequest", "invalid gracePeriodSeconds \"%s\"", gps);
                        return;
                }
        }
        if (policy && strcmp(policy, "Background") != 0 && strcmp(policy, "Foreground") != 0 &&
            strcmp(policy, "Orphan") != 0) {
                json_decref(opts);
                api_status(rs, 422, "Invalid", "DeleteOptions.meta.k8s.io \"\" is invalid: "
                           "propagationPolicy: Unsupported value: \"%s\": supported values: "
                           "\"Foreground\", \"Background\", \"Orphan\", \"nil\"", policy);
                httpd_reject(kf, rq->path, "bad propagationPolicy");
                return;
        }
        if (!o) {
                json_decref(opts);
                not_found(rs, r, rq->params[1]);
                return;
        }
        json_t *pre = json_object_get(opts, "preconditions");
        const char *puid = json_string_value(json_object_get(pre, "uid"));
        const char *prv = json_string_value(json_object_get(pre, "resourceVersion"));
        if ((puid && strcmp(puid, obj_str(o, "metadata.uid")) != 0) ||
            (prv && strcmp(prv, obj_str(o, "metadata.resourceVersion")) != 0)) {
                api_status(rs, 409, "Conflict", "Operation cannot be fulfilled on %s \"%s\": "
                           "Precondition failed: UID in precondition: %s, UID in object meta: %s",
                           kres_qualified(r), rq->params[1], puid ? puid : "",
                           obj_str(o, "metadata.uid"));
                json_decref(opts);
                return;
        }
        json_decref(opts);
        if (r == KR_SECRET) {
                char uid[64];
                snprintf(uid, sizeof(uid), "%s", obj_str(o, "metadata.uid"));
                store_remove(kf, r, o);
                api_status(rs, 200, "", "deleted");
                json_object_del(rs->json, "message");
                json_object_del(rs->json, "reason");
                status_details(rs, r, rq->params[1]);
                json_object_set_new(json_object_get(rs->json, "details"), "uid", json_string(uid));
                return;
        }
        if (r == KR_JOB) {
                char uid[64];
                bool fg = policy && strcmp(policy, "Foreground") == 0;
                if (!policy)
                        rs->warning = "child pods are preserved by default when jobs are deleted; "
                                      "set propagationPolicy=Background to remove them or set "
                                      "propagationPolicy=Orphan to suppress this warning";
                snprintf(uid, sizeof(uid), "%s", obj_str(o, "metadata.uid"));
                if (fg) {
                        rs->status = 202;
                        rs->json = json_incref(o);
                        pods_delete_job(kf, o, "Foreground");
                        return;
                }
                pods_delete_job(kf, o, policy ? policy : "Orphan");
                api_status(rs, 200, "", "deleted");
                json_object_del(rs->json, "message");
                json_object_del(rs->json, "reason");
                status_details(rs, r, rq->params[1]);
                json_object_set_new(json_object_get(rs->json, "details"), "uid", json_string(uid));
                return;
        }
        /* Pods: the answer is the pod, 202 while its grace period runs. */
        json_incref(o);
        pods_delete(kf, o, grace);
        rs->status = store_get(kf, KR_POD, rq->params[0], rq->params[1]) ? 202 : 200;
        rs->json = o;
}

/* ---- pod logs ----------------------------------------------------------- */

void kstream_free(struct kstream *s)
{
        if (!s)
                return;
        if (s->fd >= 0)
                close(s->fd);
        free(s);
}

ssize_t kstream_read(struct kstream *s, char *buf, size_t max)
{
        ssize_t n;

        if (s->left == 0)
                return -1;
        if (s->left > 0 && (int64_t)max > s->left)
                max = (size_t)s->left;
        n = read(s->fd, buf, max);
        if (n > 0) {
                if (s->left > 0)
                        s->left -= n;
                return n;
        }
        if (s->follow && pods_running(s->kf, s->pod_uid))
                return 0;
        /* The process ended: one more read catches its last words. */
        n = read(s->fd, buf, max);
        return n > 0 ? n : -1;
}

void api_pod_log(struct kreq *rq, struct kresp *rs, enum kres r)
{
        struct kf *kf = rq->kf;
        json_t *pod = store_get(kf, KR_POD, rq->params[0], rq->params[1]);
        const char *container = q(rq, "container"), *lb = q(rq, "limitBytes");
        const char *tail = q(rq, "tailLines");
        json_t *c0;
        const char *cname, *wait;
        char path[4096];
        int64_t limit = -1, tl = -1;
        int fd;

        if (!pod) {
                not_found(rs, KR_POD, rq->params[1]);
                return;
        }
        c0 = json_array_get(json_object_get(json_object_get(pod, "spec"), "containers"), 0);
        cname = json_string_value(json_object_get(c0, "name"));
        if (container && strcmp(container, cname ? cname : "") != 0) {
                api_status(rs, 400, "BadRequest", "container %s is not valid for pod %s",
                           container, rq->params[1]);
                return;
        }
        if ((lb && (strutil_parse_i64(lb, &limit) < 0 || limit <= 0)) ||
            (tail && (strutil_parse_i64(tail, &tl) < 0 || tl < 0))) {
                api_status(rs, 400, "BadRequest", "invalid limitBytes or tailLines");
                return;
        }
        if (truthy(q(rq, "previous"))) {
                api_status(rs, 400, "BadRequest", "previous terminated container \"%s\" in pod "
                           "\"%s\" not found", cname, rq->params[1]);
                return;
        }
        wait = obj_str(json_array_get(json_object_get(json_object_get(pod, "status"),
                                                      "containerStatuses"), 0),
                       "state.waiting.reason");
        if (!pods_log_path(kf, pod, path, sizeof(path)) ||
            (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
                api_status(rs, 400, "BadRequest", "container \"%s\" in pod \"%s\" is waiting to "
                           "start: %s", cname, rq->params[1], wait ? wait : "ContainerCreating");
                return;
        }
        if (tl >= 0) {
                /* Start after the last tl newlines (a trailing one ends the last line). */
                off_t size = lseek(fd, 0, SEEK_END), pos = size;
                int64_t seen = 0;
                char ch;
                while (pos > 0 && pread(fd, &ch, 1, pos - 1) == 1) {
                        if (ch == '\n' && pos != size && ++seen == tl)
                                break;
                        pos--;
                }
                if (tl == 0)
                        pos = size;
                lseek(fd, pos, SEEK_SET);
        }
        struct kstream *s = calloc(1, sizeof(*s));
        if (!s) {
                close(fd);
                api_status(rs, 500, "InternalError", "out of memory");
                return;
        }
        s->kf = kf;
        s->fd = fd;
        s->left = limit;
        s->follow = truthy(q(rq, "follow"));
        snprintf(s->pod_uid, sizeof(s->pod_uid), "%s", obj_str(pod, "metadata.uid"));
        rs->status = 200;
        rs->stream = s;
}

/* ---- /_fake/ ------------------------------------------------------------ */

static json_t *ctl_body(struct kreq *rq, struct kresp *rs)
{
        json_error_t jerr;
        json_t *b = json_loadb(rq->body, rq->body_len, 0, &jerr);

        if (!json_is_object(b)) {
                json_decref(b);
                api_status(rs, 400, "BadRequest", "body must be a JSON object");
                return NULL;
        }
        return b;
}

void ctl_faults(struct kreq *rq, struct kresp *rs, enum kres r)
{
        json_t *b = ctl_body(rq, rs);
        const char *method = NULL, *prefix = NULL, *msg = NULL;
        json_int_t status = 0, count = 1;
        struct kfault *f, **pp;

        if (!b)
                return;
        if (json_unpack(b, "{s?s,s:s,s:I,s?I,s?s!}", "method", &method, "path_prefix", &prefix,
                        "status", &status, "count", &count, "message", &msg) < 0 ||
            (status != 409 && status != 410 && status != 429 && status != 500 && status != 503) ||
            count < 1) {
                json_decref(b);
                api_status(rs, 400, "BadRequest", "want {\"method\", \"path_prefix\", \"status\": "
                           "409|410|429|500|503, \"count\" >= 1, \"message\"}");
                return;
        }
        f = calloc(1, sizeof(*f));
        if (!f || !(f->path_prefix = strdup(prefix)) || (msg && !(f->message = strdup(msg)))) {
                if (f)
                        free(f->path_prefix);
                free(f);
                json_decref(b);
                api_status(rs, 500, "InternalError", "out of memory");
                return;
        }
        snprintf(f->method, sizeof(f->method), "%s", method ? method : "");
        f->status = (int)status;
        f->remaining = (long)count;
        for (pp = &rq->kf->faults; *pp; pp = &(*pp)->next)
                ;
        *pp = f;
        json_decref(b);
        rs->status = 200;
        rs->json = json_pack("{s:b}", "ok", 1);
}

void ctl_scheduling(struct kreq *rq, struct kresp *rs, enum kres r)
{
        json_t *b = ctl_body(rq, rs);
        int sched = 1;
        const char *msg = NULL;

        if (!b)
                return;
        if (json_unpack(b, "{s:b,s?s!}", "schedulable", &sched, "message", &msg) < 0) {
                json_decref(b);
                api_status(rs, 400, "BadRequest", "want {\"schedulable\": bool, \"message\": s}");
                return;
        }
        rq->kf->schedulable = sched;
        snprintf(rq->kf->unsched_msg, sizeof(rq->kf->unsched_msg), "%s",
                 msg ? msg : "0/1 nodes are available: 1 Insufficient cpu.");
        json_decref(b);
        rs->status = 200;
        rs->json = json_pack("{s:b}", "schedulable", sched);
}

void ctl_compact(struct kreq *rq, struct kresp *rs, enum kres r)
{
        char rv[32];

        store_compact(rq->kf);
        snprintf(rv, sizeof(rv), "%llu", (unsigned long long)rq->kf->rv);
        rs->status = 200;
        rs->json = json_pack("{s:s}", "compacted", rv);
}

void ctl_drop_watches(struct kreq *rq, struct kresp *rs, enum kres r)
{
        json_error_t jerr;
        json_t *b = rq->body_len ? json_loadb(rq->body, rq->body_len, 0, &jerr) : NULL;
        const char *mode = json_string_value(json_object_get(b, "mode"));
        size_t n = rq->kf->watches_open;

        store_watches_drop(rq->kf, mode && strcmp(mode, "reset") == 0);
        json_decref(b);
        rs->status = 200;
        rs->json = json_pack("{s:I}", "dropped", (json_int_t)n);
}

void ctl_stats(struct kreq *rq, struct kresp *rs, enum kres r)
{
        rs->status = 200;
        rs->json = json_pack("{s:O,s:I,s:O}", "requests", rq->kf->stats, "watches_open",
                             (json_int_t)rq->kf->watches_open, "rejected", rq->kf->rejected);
}

void ctl_pods(struct kreq *rq, struct kresp *rs, enum kres r)
{
        json_t *arr = json_array();
        const char *k;
        json_t *v;

        json_object_foreach(rq->kf->objs[KR_POD], k, v) {
                pid_t pid = 0;
                int ex = -1;
                pods_info(rq->kf, obj_str(v, "metadata.uid"), &pid, &ex);
                json_array_append_new(arr, json_pack(
                        "{s:s,s:s,s:s,s:s,s:I,s:I,s:s?,s:b}",
                        "namespace", obj_str(v, "metadata.namespace"),
                        "name", obj_str(v, "metadata.name"),
                        "uid", obj_str(v, "metadata.uid"),
                        "phase", obj_str(v, "status.phase") ?: "",
                        "pid", (json_int_t)pid, "exit_code", (json_int_t)ex,
                        "job", obj_str(v, "metadata.labels.job-name"),
                        "deleting", obj_str(v, "metadata.deletionTimestamp") != NULL));
        }
        rs->status = 200;
        rs->json = json_pack("{s:o}", "pods", arr);
}
