/* kubeobj.c: see kubeobj.h. Owns the exact shape of every object the
 * kubernetes provider sends (a strict API server rejects unknown fields and
 * wrong types) and the reading of what it gets back, all bounded: strings
 * from the server are cut to the buffers of struct kubeobj_pod/job. Never
 * does I/O, never logs, never keeps the token past kubeobj_secret_body(). */
#include "provider/kubeobj.h"

#include "util/base64.h"
#include "util/hash.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- names ------------------------------------------------------------------- */

int kubeobj_name(const char *instance, char *buf, size_t n)
{
        char tmp[KUBEOBJ_NAME_MAX + 1];
        size_t len = strlen(instance), o = 0, start = 0, end;
        bool changed = false;

        if (len == 0 || n < KUBEOBJ_NAME_MAX + 1)
                return -EINVAL;
        while (start < len && !isalnum((unsigned char)instance[start]))
                start++;
        end = len;
        while (end > start && !isalnum((unsigned char)instance[end - 1]))
                end--;
        changed = start != 0 || end != len;
        for (size_t i = start; i < end && o < KUBEOBJ_NAME_MAX; i++) {
                unsigned char c = (unsigned char)instance[i];
                char d = isupper(c) ? (char)tolower(c) : (islower(c) || isdigit(c) || c == '-') ? (char)c : '-';
                changed = changed || d != (char)c;
                tmp[o++] = d;
        }
        if (end - start > KUBEOBJ_NAME_MAX)
                changed = true;
        tmp[o] = '\0';
        if (!changed) {
                memcpy(buf, tmp, o + 1);
                return 0;
        }
        /* Two instance names that map alike stay apart by their hash. */
        if (o > KUBEOBJ_NAME_MAX - 9)
                o = KUBEOBJ_NAME_MAX - 9;
        while (o > 0 && !isalnum((unsigned char)tmp[o - 1]))
                o--;
        snprintf(buf, n, "%.*s%s%08x", (int)o, tmp, o ? "-" : "",
                 (unsigned)(hash_str(instance, 0) & 0xffffffffu));
        return 0;
}

/* ---- merge ------------------------------------------------------------------- */

static const char *merge_key_of(const char *list)
{
        if (strcmp(list, "containers") == 0 || strcmp(list, "initContainers") == 0 ||
            strcmp(list, "volumes") == 0 || strcmp(list, "env") == 0)
                return "name";
        if (strcmp(list, "volumeMounts") == 0)
                return "mountPath";
        return NULL;
}

static json_t *find_by(json_t *arr, const char *key, const char *val)
{
        size_t i;
        json_t *it;

        json_array_foreach(arr, i, it) {
                const char *v = json_string_value(json_object_get(it, key));
                if (v && strcmp(v, val) == 0)
                        return it;
        }
        return NULL;
}

static int merge_list(json_t *base, const json_t *over, const char *key)
{
        size_t i;
        json_t *it;

        json_array_foreach(over, i, it) {
                const char *v = json_string_value(json_object_get(it, key));
                json_t *b = v ? find_by(base, key, v) : NULL;
                if (b && json_is_object(b) && json_is_object(it)) {
                        if (kubeobj_merge(b, it) < 0)
                                return -ENOMEM;
                } else if (json_array_append_new(base, json_deep_copy(it)) < 0) {
                        return -ENOMEM;
                }
        }
        return 0;
}

int kubeobj_merge(json_t *base, const json_t *over)
{
        const char *k;
        json_t *v;

        json_object_foreach((json_t *)over, k, v) {
                json_t *b = json_object_get(base, k);
                const char *mk = merge_key_of(k);
                if (b && json_is_object(b) && json_is_object(v)) {
                        if (kubeobj_merge(b, v) < 0)
                                return -ENOMEM;
                } else if (b && mk && json_is_array(b) && json_is_array(v)) {
                        if (merge_list(b, v, mk) < 0)
                                return -ENOMEM;
                } else if (json_object_set_new(base, k, json_deep_copy(v)) < 0) {
                        return -ENOMEM;
                }
        }
        return 0;
}

/* ---- Job and Secret ------------------------------------------------------- */

static json_t *labels(const char *kname, const char *pool)
{
        char pl[KUBEOBJ_NAME_MAX + 1];

        if (kubeobj_name(pool, pl, sizeof(pl)) < 0)
                return NULL;
        return json_pack("{s:s, s:s, s:s}", KUBEOBJ_LABEL_MANAGED, "true", KUBEOBJ_LABEL_INSTANCE, kname,
                         KUBEOBJ_LABEL_POOL, pl);
}

/* Parses a checked configuration text; NULL text gives NULL, *bad on error. */
static json_t *load(const char *text, bool *bad)
{
        json_t *j;

        if (!text)
                return NULL;
        j = json_loads(text, JSON_DECODE_ANY, NULL);
        if (!j)
                *bad = true;
        return j;
}

/* A kubelet expands $(VAR) in a container's command and env values and
 * turns "$$" into "$": every '$' is doubled so the worker gets its argv and
 * environment byte for byte. NULL on OOM. */
static json_t *literal(const char *s, size_t n)
{
        size_t dollars = 0, o = 0;
        json_t *j;
        char *buf;

        for (size_t i = 0; i < n; i++)
                dollars += s[i] == '$';
        if (!dollars)
                return json_stringn(s, n);
        if (!(buf = malloc(n + dollars)))
                return NULL;
        for (size_t i = 0; i < n; i++) {
                buf[o++] = s[i];
                if (s[i] == '$')
                        buf[o++] = '$';
        }
        j = json_stringn(buf, o);
        free(buf);
        return j;
}

int kubeobj_job(const struct kubeobj_params *kp, const char *instance, const char *pool,
                const char *const *argv, const char *const *env, json_t **ret)
{
        char kname[KUBEOBJ_NAME_MAX + 1];
        json_t *job = NULL, *spec = NULL, *over = NULL, *ctr = NULL, *cmd = NULL, *envs = NULL;
        json_t *res = NULL, *sel = NULL, *tol = NULL, *lab = NULL, *ann = NULL;
        bool bad = false;
        int r = -ENOMEM;

        if (!instance || !pool || !argv || !argv[0] || !kp->image || !kp->namespace)
                return -EINVAL;
        if (kubeobj_name(instance, kname, sizeof(kname)) < 0)
                return -EINVAL;
        res = load(kp->resources, &bad);
        sel = load(kp->node_selector, &bad);
        tol = load(kp->tolerations, &bad);
        spec = kp->pod_template ? load(kp->pod_template, &bad) : json_object();
        if (bad || (spec && !json_is_object(spec))) {
                r = -EINVAL;
                goto out;
        }
        if (!spec || !(cmd = json_array()) || !(envs = json_array()))
                goto out;
        for (const char *const *a = argv; *a; a++)
                if (json_array_append_new(cmd, literal(*a, strlen(*a))) < 0)
                        goto out;
        for (const char *const *e = env; e && *e; e++) {
                const char *eq = strchr(*e, '=');
                if (!eq || eq == *e) {
                        r = -EINVAL;
                        goto out;
                }
                if (json_array_append_new(envs, json_pack("{s:s%, s:o}", "name", *e, (size_t)(eq - *e),
                                                          "value", literal(eq + 1, strlen(eq + 1)))) < 0)
                        goto out;
        }
        ctr = json_pack("{s:s, s:s, s:O, s:O, s:[{s:s, s:s, s:b}]}", "name", KUBEOBJ_CONTAINER, "image",
                        kp->image, "command", cmd, "env", envs, "volumeMounts", "name", KUBEOBJ_TOKEN_VOLUME,
                        "mountPath", KUBEOBJ_TOKEN_DIR, "readOnly", 1);
        if (!ctr || (res && json_object_set(ctr, "resources", res) < 0))
                goto out;
        over = json_pack("{s:s, s:I, s:[O], s:[{s:s, s:{s:s, s:i}}]}", "restartPolicy", "Never",
                         "terminationGracePeriodSeconds", (json_int_t)kp->grace_s, "containers", ctr,
                         "volumes", "name", KUBEOBJ_TOKEN_VOLUME, "secret", "secretName", kname,
                         "defaultMode", 0400);
        if (!over)
                goto out;
        if (kp->service_account &&
            json_object_set_new(over, "serviceAccountName", json_string(kp->service_account)) < 0)
                goto out;
        if ((sel && json_object_set(over, "nodeSelector", sel) < 0) ||
            (tol && json_object_set(over, "tolerations", tol) < 0))
                goto out;
        if (kubeobj_merge(spec, over) < 0)
                goto out;
        if (!(lab = labels(kname, pool)))
                goto out;
        ann = json_pack("{s:s, s:s}", KUBEOBJ_LABEL_INSTANCE, instance, KUBEOBJ_LABEL_POOL, pool);
        if (!ann)
                goto out;
        job = json_pack("{s:s, s:s, s:{s:s, s:s, s:O, s:O}, s:{s:i, s:{s:{s:O, s:O}, s:O}}}",
                        "apiVersion", "batch/v1", "kind", "Job",
                        "metadata", "name", kname, "namespace", kp->namespace, "labels", lab, "annotations", ann,
                        "spec", "backoffLimit", 0, "template", "metadata", "labels", lab, "annotations", ann,
                        "spec", spec);
        if (!job)
                goto out;
        {
                json_t *js = json_object_get(job, "spec");
                if (kp->ttl_after_finished_s > 0 &&
                    json_object_set_new(js, "ttlSecondsAfterFinished", json_integer(kp->ttl_after_finished_s)) < 0)
                        goto out;
                if (kp->active_deadline_s > 0 &&
                    json_object_set_new(js, "activeDeadlineSeconds", json_integer(kp->active_deadline_s)) < 0)
                        goto out;
        }
        *ret = job;
        job = NULL;
        r = 0;
out:
        json_decref(job);
        json_decref(spec);
        json_decref(over);
        json_decref(ctr);
        json_decref(cmd);
        json_decref(envs);
        json_decref(res);
        json_decref(sel);
        json_decref(tol);
        json_decref(lab);
        json_decref(ann);
        return r;
}

int kubeobj_secret_body(const char *ns, const char *instance, const char *pool, const char *job_uid,
                        const char *token, size_t token_len, char **ret, size_t *ret_len)
{
        char kname[KUBEOBJ_NAME_MAX + 1];
        json_t *obj = NULL, *lab = NULL;
        char *meta = NULL, *b64 = NULL, *out = NULL;
        size_t ml, bl, n;
        int r = -ENOMEM;

        if (!token || !job_uid || kubeobj_name(instance, kname, sizeof(kname)) < 0)
                return -EINVAL;
        if (!(lab = labels(kname, pool)))
                goto out;
        obj = json_pack("{s:s, s:s, s:{s:s, s:s, s:O, s:{s:s, s:s}, s:[{s:s, s:s, s:s, s:s, s:b, s:b}]}, s:s}",
                        "apiVersion", "v1", "kind", "Secret",
                        "metadata", "name", kname, "namespace", ns, "labels", lab,
                        "annotations", KUBEOBJ_LABEL_INSTANCE, instance, KUBEOBJ_LABEL_POOL, pool,
                        "ownerReferences", "apiVersion", "batch/v1", "kind", "Job", "name", kname, "uid", job_uid,
                        "blockOwnerDeletion", 0, "controller", 0,
                        "type", "Opaque");
        if (!obj || !(meta = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER)))
                goto out;
        /* The token never enters a jansson string, which could not be
         * zeroed: the body is spliced around it. base64 needs no escaping. */
        if (!(b64 = base64_encode(token, token_len)))
                goto out;
        ml = strlen(meta);
        bl = strlen(b64);
        n = sizeof("{\"data\":{\"" KUBEOBJ_TOKEN_KEY "\":\"\"},") - 1 + bl + ml - 1;
        if (!(out = malloc(n + 1)))
                goto out;
        snprintf(out, n + 1, "{\"data\":{\"" KUBEOBJ_TOKEN_KEY "\":\"%s\"},%s", b64, meta + 1);
        *ret = out;
        *ret_len = n;
        r = 0;
out:
        if (b64) {
                explicit_bzero(b64, strlen(b64));
                free(b64);
        }
        free(meta);
        json_decref(obj);
        json_decref(lab);
        return r;
}

/* ---- parsing ------------------------------------------------------------------ */

static void copy(char *dst, size_t n, const char *src)
{
        snprintf(dst, n, "%s", src ? src : "");
}

static const char *str_at(const json_t *o, const char *a, const char *b)
{
        const json_t *x = json_object_get(o, a);

        if (b)
                x = json_object_get(x, b);
        return json_string_value(x);
}

static bool image_reason(const char *r)
{
        return strcmp(r, "ErrImagePull") == 0 || strcmp(r, "ImagePullBackOff") == 0 ||
               strcmp(r, "InvalidImageName") == 0 || strcmp(r, "ErrImageNeverPull") == 0;
}

int kubeobj_parse_pod(const json_t *pod, struct kubeobj_pod *p)
{
        const json_t *meta = json_object_get(pod, "metadata"), *st = json_object_get(pod, "status");
        const char *name = json_string_value(json_object_get(meta, "name"));
        const char *lab = str_at(json_object_get(meta, "labels"), KUBEOBJ_LABEL_INSTANCE, NULL);
        const char *ann = str_at(json_object_get(meta, "annotations"), KUBEOBJ_LABEL_INSTANCE, NULL);
        const char *phase = json_string_value(json_object_get(st, "phase"));
        const json_t *arr, *it;
        size_t i;

        memset(p, 0, sizeof(*p));
        if (!json_is_object(pod) || !name || !lab)
                return -EINVAL;
        copy(p->name, sizeof(p->name), name);
        copy(p->kname, sizeof(p->kname), lab);
        copy(p->instance, sizeof(p->instance), ann ? ann : lab);
        copy(p->rv, sizeof(p->rv), json_string_value(json_object_get(meta, "resourceVersion")));
        p->deleting = json_object_get(meta, "deletionTimestamp") != NULL &&
                      !json_is_null(json_object_get(meta, "deletionTimestamp"));
        p->phase = !phase ? KUBEOBJ_PENDING
                   : strcmp(phase, "Pending") == 0   ? KUBEOBJ_PENDING
                   : strcmp(phase, "Running") == 0   ? KUBEOBJ_RUNNING
                   : strcmp(phase, "Succeeded") == 0 ? KUBEOBJ_SUCCEEDED
                   : strcmp(phase, "Failed") == 0    ? KUBEOBJ_FAILED
                                                     : KUBEOBJ_UNKNOWN;
        copy(p->pod_reason, sizeof(p->pod_reason), json_string_value(json_object_get(st, "reason")));
        arr = json_object_get(st, "conditions");
        json_array_foreach(arr, i, it) {
                const char *t = json_string_value(json_object_get(it, "type"));
                const char *s = json_string_value(json_object_get(it, "status"));
                const char *r = json_string_value(json_object_get(it, "reason"));
                if (t && s && r && strcmp(t, "PodScheduled") == 0 && strcmp(s, "False") == 0 &&
                    strcmp(r, "Unschedulable") == 0) {
                        p->unschedulable = true;
                        copy(p->message, sizeof(p->message), json_string_value(json_object_get(it, "message")));
                }
        }
        arr = json_object_get(st, "containerStatuses");
        json_array_foreach(arr, i, it) {
                const json_t *state = json_object_get(it, "state");
                const json_t *w = json_object_get(state, "waiting"), *t = json_object_get(state, "terminated");
                const char *cn = json_string_value(json_object_get(it, "name"));
                if (!cn || strcmp(cn, KUBEOBJ_CONTAINER) != 0)
                        continue;
                if (json_is_object(t)) {
                        json_int_t c = json_integer_value(json_object_get(t, "exitCode"));
                        p->terminated = true;
                        p->exit_code = c < 0 || c > 255 ? 255 : (int)c;
                        copy(p->reason, sizeof(p->reason), json_string_value(json_object_get(t, "reason")));
                } else if (json_is_object(json_object_get(state, "running"))) {
                        p->running = true;
                } else if (json_is_object(w)) {
                        const char *r = json_string_value(json_object_get(w, "reason"));
                        copy(p->waiting_reason, sizeof(p->waiting_reason), r);
                        if (r && image_reason(r)) {
                                p->image_problem = true;
                                copy(p->message, sizeof(p->message),
                                     json_string_value(json_object_get(w, "message")));
                        }
                }
        }
        return 0;
}

int kubeobj_parse_job(const json_t *job, struct kubeobj_job *j)
{
        const json_t *meta = json_object_get(job, "metadata"), *st = json_object_get(job, "status");
        const json_t *labs = json_object_get(meta, "labels"), *anns = json_object_get(meta, "annotations");
        const char *name = json_string_value(json_object_get(meta, "name"));
        const char *inst = str_at(anns, KUBEOBJ_LABEL_INSTANCE, NULL);
        const char *managed = str_at(labs, KUBEOBJ_LABEL_MANAGED, NULL);
        const json_t *it;
        size_t i;

        memset(j, 0, sizeof(*j));
        if (!json_is_object(job) || !name)
                return -EINVAL;
        copy(j->name, sizeof(j->name), name);
        copy(j->uid, sizeof(j->uid), json_string_value(json_object_get(meta, "uid")));
        copy(j->instance, sizeof(j->instance), inst ? inst : str_at(labs, KUBEOBJ_LABEL_INSTANCE, NULL));
        copy(j->pool, sizeof(j->pool), str_at(anns, KUBEOBJ_LABEL_POOL, NULL));
        j->managed = managed && strcmp(managed, "true") == 0;
        j->active = (int)json_integer_value(json_object_get(st, "active"));
        j->succeeded = (int)json_integer_value(json_object_get(st, "succeeded"));
        j->failed = (int)json_integer_value(json_object_get(st, "failed"));
        json_array_foreach(json_object_get(st, "conditions"), i, it) {
                const char *t = json_string_value(json_object_get(it, "type"));
                const char *s = json_string_value(json_object_get(it, "status"));
                if (!t || !s || strcmp(s, "True") != 0)
                        continue;
                if (strcmp(t, "Complete") == 0 || strcmp(t, "Failed") == 0)
                        j->finished = true;
                if (strcmp(t, "Failed") == 0)
                        copy(j->failed_reason, sizeof(j->failed_reason),
                             json_string_value(json_object_get(it, "reason")));
        }
        return 0;
}

int kubeobj_parse_status(const json_t *obj, int *ret_code, char *reason, size_t rn, char *msg, size_t mn)
{
        const char *kind = json_string_value(json_object_get(obj, "kind"));

        if (!kind || strcmp(kind, "Status") != 0)
                return -EINVAL;
        *ret_code = (int)json_integer_value(json_object_get(obj, "code"));
        copy(reason, rn, json_string_value(json_object_get(obj, "reason")));
        copy(msg, mn, json_string_value(json_object_get(obj, "message")));
        return 0;
}
