/* pods.c: what kube-fake simulates behind the API: the job controller (one
 * pod per attempt, backoffLimit, activeDeadlineSeconds,
 * ttlSecondsAfterFinished, status and conditions), the scheduler (on/off),
 * the kubelet (Secret volumes materialised under --root, the container's
 * command run as a local process group with the container's env, paths
 * under a mountPath remapped, graceful deletion: SIGTERM then SIGKILL) and
 * the garbage collector (ownerReferences). Never parses HTTP; never
 * validates (a stored object is already valid). */
#include "kfake.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/base64.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/rfc3339.h"

#define MAX_ENV 256
#define MAX_ARGV 256
#define MAX_MOUNTS 32
#define PULL_BACKOFF_MS 1000

struct podrt {
        char uid[64], ns[64], name[254];
        char dir[2048];
        pid_t pid;                      /* > 0 while the process runs */
        bool started, exited;
        int exit_code;
        bool terminating;
        int64_t kill_at;
        int64_t pull_ms;
        struct podrt *next;
};

static struct podrt *rt_find(struct kf *kf, const char *uid)
{
        for (struct podrt *p = kf->pods; p; p = p->next)
                if (strcmp(p->uid, uid) == 0)
                        return p;
        return NULL;
}

static struct podrt *rt_get(struct kf *kf, json_t *pod)
{
        struct podrt *p = rt_find(kf, obj_str(pod, "metadata.uid"));

        if (p)
                return p;
        p = calloc(1, sizeof(*p));
        if (!p)
                return NULL;
        snprintf(p->uid, sizeof(p->uid), "%s", obj_str(pod, "metadata.uid"));
        snprintf(p->ns, sizeof(p->ns), "%s", obj_str(pod, "metadata.namespace"));
        snprintf(p->name, sizeof(p->name), "%s", obj_str(pod, "metadata.name"));
        snprintf(p->dir, sizeof(p->dir), "%s/pods/%s/%s", kf->root, p->ns, p->name);
        p->exit_code = -1;
        p->next = kf->pods;
        kf->pods = p;
        return p;
}

static void rt_drop(struct kf *kf, struct podrt *rt)
{
        for (struct podrt **pp = &kf->pods; *pp; pp = &(*pp)->next) {
                if (*pp == rt) {
                        *pp = rt->next;
                        free(rt);
                        return;
                }
        }
}

static int64_t wall_s(void)
{
        return (int64_t)time(NULL);
}

static int64_t parse_ts(const char *s)
{
        int64_t sec;
        int32_t ns;

        if (!s || rfc3339_parse(s, strlen(s), &sec, &ns) < 0)
                return -1;
        return sec;
}

static const char *ts_at(int64_t sec, char *buf, size_t n)
{
        if (rfc3339_format(sec, 0, 0, buf, n) < 0)
                snprintf(buf, n, "1970-01-01T00:00:00Z");
        return buf;
}

static void set_condition(json_t *status, const char *type, const char *st, const char *reason,
                          const char *message)
{
        json_t *conds = json_object_get(status, "conditions"), *c = NULL;
        char ts[40];
        size_t i;

        if (!json_is_array(conds)) {
                conds = json_array();
                json_object_set_new(status, "conditions", conds);
        }
        json_array_foreach(conds, i, c) {
                if (strcmp(obj_str(c, "type") ?: "", type) == 0)
                        break;
        }
        if (i == json_array_size(conds)) {
                c = json_object();
                json_array_append_new(conds, c);
        } else if (strcmp(obj_str(c, "status") ?: "", st) == 0 &&
                   strcmp(obj_str(c, "reason") ?: "", reason ? reason : "") == 0) {
                return;
        }
        json_object_set_new(c, "type", json_string(type));
        json_object_set_new(c, "status", json_string(st));
        json_object_set_new(c, "lastProbeTime", json_null());
        json_object_set_new(c, "lastTransitionTime", json_string(kf_timestamp(ts, sizeof(ts))));
        if (reason)
                json_object_set_new(c, "reason", json_string(reason));
        else
                json_object_del(c, "reason");
        if (message)
                json_object_set_new(c, "message", json_string(message));
        else
                json_object_del(c, "message");
}

static bool has_condition(json_t *obj, const char *type)
{
        json_t *conds = json_object_get(json_object_get(obj, "status"), "conditions"), *c;
        size_t i;

        json_array_foreach(conds, i, c)
                if (strcmp(obj_str(c, "type") ?: "", type) == 0 &&
                    strcmp(obj_str(c, "status") ?: "", "True") == 0)
                        return true;
        return false;
}

static bool job_finished(json_t *job)
{
        return has_condition(job, "Complete") || has_condition(job, "Failed");
}

static json_t *container0(json_t *pod)
{
        return json_array_get(json_object_get(json_object_get(pod, "spec"), "containers"), 0);
}

/* The single container status, replaced by state (taken). */
static void set_cstatus(json_t *pod, json_t *state, bool ready, const char *cid)
{
        json_t *c = container0(pod);
        json_t *status = json_object_get(pod, "status");
        json_t *cs = json_pack("{s:s,s:s,s:s,s:b,s:i,s:b,s:o,s:{}}",
                               "name", obj_str(c, "name") ?: "", "image",
                               obj_str(c, "image") ?: "", "imageID", "",
                               "ready", ready, "restartCount", 0, "started",
                               json_object_get(state, "running") != NULL, "state", state,
                               "lastState");

        if (!cs)
                return;
        if (cid)
                json_object_set_new(cs, "containerID", json_string(cid));
        json_object_set_new(status, "containerStatuses", json_pack("[o]", cs));
}

static void set_waiting(json_t *pod, const char *reason, const char *message)
{
        json_t *w = json_pack("{s:s}", "reason", reason);

        if (message)
                json_object_set_new(w, "message", json_string(message));
        set_cstatus(pod, json_pack("{s:o}", "waiting", w), false, NULL);
}

static const char *waiting_reason(json_t *pod)
{
        json_t *cs = json_array_get(json_object_get(json_object_get(pod, "status"),
                                                    "containerStatuses"), 0);
        return obj_str(cs, "state.waiting.reason");
}

/* ---- the job controller --------------------------------------------------- */

static void random5(char *buf)
{
        static const char alphabet[] = "bcdfghjklmnpqrstvwxz2456789";
        unsigned char b[5];

        if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
                memset(b, 3, sizeof(b));
        for (int i = 0; i < 5; i++)
                buf[i] = alphabet[b[i] % (sizeof(alphabet) - 1)];
        buf[5] = '\0';
}

static void new_uid(char *buf, size_t n)
{
        unsigned char b[16];

        if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
                memset(b, 0x3c, sizeof(b));
        snprintf(buf, n, "%02x%02x%02x%02x-%02x%02x-4%x%02x-a%x%02x-%02x%02x%02x%02x%02x%02x",
                 b[0], b[1], b[2], b[3], b[4], b[5], b[6] & 0xf, b[7], b[8] & 0xf, b[9], b[10],
                 b[11], b[12], b[13], b[14], b[15]);
}

static void job_create_pod(struct kf *kf, json_t *job)
{
        json_t *tmpl = json_object_get(json_object_get(job, "spec"), "template");
        json_t *tmd = json_object_get(tmpl, "metadata");
        const char *jname = obj_str(job, "metadata.name"), *ns = obj_str(job, "metadata.namespace");
        char name[300], sfx[8], uid[40], ts[40], gen[300];
        json_t *pod, *md, *status;

        random5(sfx);
        snprintf(name, sizeof(name), "%s-%s", jname, sfx);
        snprintf(gen, sizeof(gen), "%s-", jname);
        new_uid(uid, sizeof(uid));
        md = json_pack("{s:s,s:s,s:s,s:s,s:s,s:O,s:[{s:s,s:s,s:s,s:s,s:b,s:b}]}",
                       "name", name, "generateName", gen, "namespace", ns, "uid", uid,
                       "creationTimestamp", kf_timestamp(ts, sizeof(ts)),
                       "labels", json_object_get(tmd, "labels") ?: json_object(),
                       "ownerReferences", "apiVersion", "batch/v1", "kind", "Job", "name", jname,
                       "uid", obj_str(job, "metadata.uid"), "controller", 1,
                       "blockOwnerDeletion", 1);
        if (!md)
                return;
        if (json_object_get(tmd, "annotations"))
                json_object_set(md, "annotations", json_object_get(tmd, "annotations"));
        status = json_pack("{s:s,s:s}", "phase", "Pending", "qosClass", "BestEffort");
        pod = json_pack("{s:s,s:s,s:o,s:O,s:o}", "kind", "Pod", "apiVersion", "v1", "metadata", md,
                        "spec", json_object_get(tmpl, "spec"), "status", status);
        if (!pod)
                return;
        /* The pod's spec is its own copy, not the template's. */
        json_object_set_new(pod, "spec", json_deep_copy(json_object_get(tmpl, "spec")));
        set_waiting(pod, "ContainerCreating", NULL);
        store_add(kf, KR_POD, pod);

        json_t *js = json_object_get(job, "status");
        if (!obj_str(js, "startTime"))
                json_object_set_new(js, "startTime", json_string(kf_timestamp(ts, sizeof(ts))));
        json_object_set_new(js, "active", json_integer(1));
        json_object_set_new(js, "ready", json_integer(0));
        json_object_set_new(js, "terminating", json_integer(0));
        store_modified(kf, KR_JOB, job);
}

/* Pods of a job, by the controller-uid label the job gave them. */
static size_t job_pods(struct kf *kf, json_t *job, bool active_only, json_t **ret_pods,
                       size_t max)
{
        const char *uid = obj_str(job, "metadata.uid");
        const char *k;
        json_t *p;
        size_t n = 0;

        json_object_foreach(kf->objs[KR_POD], k, p) {
                json_t *refs = json_object_get(json_object_get(p, "metadata"), "ownerReferences");
                json_t *r;
                size_t i;
                bool mine = false;
                json_array_foreach(refs, i, r)
                        mine = mine || strcmp(obj_str(r, "uid") ?: "", uid) == 0;
                if (!mine)
                        continue;
                const char *ph = obj_str(p, "status.phase") ?: "";
                if (active_only && (strcmp(ph, "Succeeded") == 0 || strcmp(ph, "Failed") == 0 ||
                                    obj_str(p, "metadata.deletionTimestamp")))
                        continue;
                if (n < max)
                        ret_pods[n] = p;
                n++;
        }
        return n;
}

static void job_fail(struct kf *kf, json_t *job, const char *reason, const char *msg)
{
        json_t *st = json_object_get(job, "status");
        json_t *pods[64];
        size_t n = job_pods(kf, job, true, pods, 64);

        set_condition(st, "FailureTarget", "True", reason, msg);
        set_condition(st, "Failed", "True", reason, msg);
        json_object_set_new(st, "active", json_integer(0));
        store_modified(kf, KR_JOB, job);
        /* A failed job's running pods are deleted, like the controller does. */
        for (size_t i = 0; i < n && i < 64; i++)
                pods_delete(kf, pods[i], -1);
}

static json_t *job_of(struct kf *kf, json_t *pod)
{
        json_t *refs = json_object_get(json_object_get(pod, "metadata"), "ownerReferences"), *r;
        const char *uid = NULL;
        size_t i;

        json_array_foreach(refs, i, r)
                if (strcmp(obj_str(r, "kind") ?: "", "Job") == 0)
                        uid = obj_str(r, "uid");
        return uid ? store_by_uid(kf, KR_JOB, uid) : NULL;
}

/* A pod of this job ended. */
static void job_pod_done(struct kf *kf, json_t *pod, bool ok)
{
        json_t *job = job_of(kf, pod), *st;
        char ts[40];

        if (!job || job_finished(job))
                return;
        st = json_object_get(job, "status");
        json_object_set_new(st, "ready", json_integer(0));
        json_object_set_new(st, ok ? "succeeded" : "failed",
                            json_integer(obj_int(st, ok ? "succeeded" : "failed", 0) + 1));
        json_object_set_new(st, "active", json_integer(0));
        if (ok) {
                set_condition(st, "SuccessCriteriaMet", "True", "CompletionsReached",
                              "Reached expected number of succeeded pods");
                set_condition(st, "Complete", "True", "CompletionsReached",
                              "Reached expected number of succeeded pods");
                json_object_set_new(st, "completionTime",
                                    json_string(kf_timestamp(ts, sizeof(ts))));
                store_modified(kf, KR_JOB, job);
                return;
        }
        if (obj_int(st, "failed", 0) > obj_int(job, "spec.backoffLimit", 6)) {
                job_fail(kf, job, "BackoffLimitExceeded", "Job has reached the specified backoff "
                         "limit");
                return;
        }
        store_modified(kf, KR_JOB, job);
}

static void jobs_tick(struct kf *kf)
{
        const char *k;
        json_t *job, *tmp;
        int64_t now = wall_s();

        json_object_foreach_safe(kf->objs[KR_JOB], tmp, k, job) {
                json_t *st = json_object_get(job, "status");
                json_t *pods[1];
                if (obj_str(job, "metadata.deletionTimestamp")) {
                        /* Foreground deletion: gone once its pods are. */
                        if (job_pods(kf, job, false, pods, 1) == 0)
                                store_remove(kf, KR_JOB, job);
                        continue;
                }
                if (job_finished(job)) {
                        json_t *ttl = json_object_get(json_object_get(job, "spec"),
                                                      "ttlSecondsAfterFinished");
                        const char *done = obj_str(st, "completionTime");
                        json_t *conds = json_object_get(st, "conditions"), *c;
                        size_t i;
                        json_array_foreach(conds, i, c)
                                if (!done && strcmp(obj_str(c, "type") ?: "", "Failed") == 0)
                                        done = obj_str(c, "lastTransitionTime");
                        if (json_is_integer(ttl) && parse_ts(done) >= 0 &&
                            now >= parse_ts(done) + json_integer_value(ttl))
                                pods_delete_job(kf, job, "Background");
                        continue;
                }
                int64_t ads = obj_int(job, "spec.activeDeadlineSeconds", 0);
                int64_t start = parse_ts(obj_str(st, "startTime"));
                if (ads > 0 && start >= 0 && now >= start + ads) {
                        job_fail(kf, job, "DeadlineExceeded", "Job was active longer than "
                                 "specified deadline");
                        continue;
                }
                if (json_is_true(json_object_get(json_object_get(job, "spec"), "suspend")))
                        continue;
                if (job_pods(kf, job, true, pods, 1) > 0)
                        continue;
                job_create_pod(kf, job);
        }
}

/* ---- the garbage collector ------------------------------------------------ */

/* True when obj has owners of kind Job and none of them exists. */
static bool orphaned(struct kf *kf, json_t *obj)
{
        json_t *refs = json_object_get(json_object_get(obj, "metadata"), "ownerReferences"), *r;
        size_t i;
        bool any = false;

        json_array_foreach(refs, i, r) {
                if (strcmp(obj_str(r, "kind") ?: "", "Job") != 0)
                        return false;
                any = true;
                if (store_by_uid(kf, KR_JOB, obj_str(r, "uid") ?: ""))
                        return false;
        }
        return any;
}

static void gc_tick(struct kf *kf)
{
        const char *k;
        json_t *o, *tmp;

        json_object_foreach_safe(kf->objs[KR_SECRET], tmp, k, o)
                if (orphaned(kf, o))
                        store_remove(kf, KR_SECRET, o);
        json_object_foreach_safe(kf->objs[KR_POD], tmp, k, o)
                if (!obj_str(o, "metadata.deletionTimestamp") && orphaned(kf, o))
                        pods_delete(kf, o, -1);
}

static void drop_owner_refs(struct kf *kf, enum kres r, const char *uid)
{
        const char *k;
        json_t *o;

        json_object_foreach(kf->objs[r], k, o) {
                json_t *refs = json_object_get(json_object_get(o, "metadata"), "ownerReferences");
                bool changed = false;
                for (size_t i = json_array_size(refs); i-- > 0;) {
                        if (strcmp(obj_str(json_array_get(refs, i), "uid") ?: "", uid) == 0) {
                                json_array_remove(refs, i);
                                changed = true;
                        }
                }
                if (changed)
                        store_modified(kf, r, o);
        }
}

void pods_delete_job(struct kf *kf, json_t *job, const char *policy)
{
        char uid[64], ts[40];

        snprintf(uid, sizeof(uid), "%s", obj_str(job, "metadata.uid"));
        if (strcmp(policy, "Orphan") == 0) {
                store_remove(kf, KR_JOB, job);
                drop_owner_refs(kf, KR_POD, uid);
                drop_owner_refs(kf, KR_SECRET, uid);
                return;
        }
        if (strcmp(policy, "Foreground") == 0) {
                json_t *md = json_object_get(job, "metadata");
                json_t *pods[256];
                size_t n;
                if (!obj_str(job, "metadata.deletionTimestamp")) {
                        json_object_set_new(md, "deletionTimestamp",
                                            json_string(kf_timestamp(ts, sizeof(ts))));
                        json_object_set_new(md, "deletionGracePeriodSeconds", json_integer(0));
                        json_object_set_new(md, "finalizers", json_pack("[s]", "foregroundDeletion"));
                        store_modified(kf, KR_JOB, job);
                }
                n = job_pods(kf, job, false, pods, 256);
                for (size_t i = 0; i < n && i < 256; i++)
                        if (!obj_str(pods[i], "metadata.deletionTimestamp"))
                                pods_delete(kf, pods[i], -1);
                /* Secrets it owns go at once; the job waits for its pods. */
                json_t *tmp, *o;
                const char *k;
                json_object_foreach_safe(kf->objs[KR_SECRET], tmp, k, o) {
                        json_t *refs = json_object_get(json_object_get(o, "metadata"),
                                                       "ownerReferences"), *r;
                        size_t i;
                        json_array_foreach(refs, i, r)
                                if (strcmp(obj_str(r, "uid") ?: "", uid) == 0) {
                                        store_remove(kf, KR_SECRET, o);
                                        break;
                                }
                }
                if (job_pods(kf, job, false, pods, 1) == 0)
                        store_remove(kf, KR_JOB, job);
                return;
        }
        store_remove(kf, KR_JOB, job);
        gc_tick(kf);
}

/* ---- the kubelet ---------------------------------------------------------- */

struct mount {
        const char *path;       /* container's mountPath */
        char host[2304];        /* the materialised folder */
};

/* The longest mountPath at v that ends there or at a '/': its length. */
static const struct mount *mount_at(const struct mount *m, size_t n, const char *v, size_t *ret_len)
{
        const struct mount *best = NULL;
        size_t bl = 0;

        for (size_t i = 0; i < n; i++) {
                size_t l = strlen(m[i].path);
                while (l > 1 && m[i].path[l - 1] == '/')
                        l--;
                if (strncmp(v, m[i].path, l) == 0 && (v[l] == '\0' || v[l] == '/') && l > bl) {
                        best = &m[i];
                        bl = l;
                }
        }
        *ret_len = bl;
        return best;
}

/* Replaces a mountPath by its materialised folder where it starts the
 * value or follows ':' or '=' ("file:/var/run/x", "--token=/var/run/x"):
 * the forms a path takes in argv and env. Returns v itself when nothing
 * matched, else buf; a result that does not fit keeps v. */
static const char *remap(const struct mount *m, size_t n, const char *v, char *buf, size_t len)
{
        size_t o = 0, ml;
        bool any = false;

        for (const char *p = v; *p;) {
                const struct mount *mt = NULL;
                if (p == v || p[-1] == ':' || p[-1] == '=')
                        mt = mount_at(m, n, p, &ml);
                if (mt) {
                        int w = snprintf(buf + o, len - o, "%s", mt->host);
                        if (w < 0 || (size_t)w >= len - o)
                                return v;
                        o += (size_t)w;
                        p += ml;
                        any = true;
                        continue;
                }
                if (o + 1 >= len)
                        return v;
                buf[o++] = *p++;
        }
        if (!any)
                return v;
        buf[o] = '\0';
        return buf;
}

/* Kubernetes' $(VAR) expansion in command, args and env values; $$ is $. */
static char *expand(const char *s, char **env, size_t nenv)
{
        size_t cap = strlen(s) + 1, len = 0;
        char *out = malloc(cap);

        if (!out)
                return NULL;
        for (const char *p = s; *p;) {
                const char *val = NULL;
                size_t adv = 1, vlen = 1;
                if (p[0] == '$' && p[1] == '$') {
                        val = "$";
                        adv = 2;
                } else if (p[0] == '$' && p[1] == '(' && strchr(p, ')')) {
                        const char *end = strchr(p, ')');
                        size_t nl = (size_t)(end - p - 2);
                        for (size_t i = nenv; i-- > 0;) {
                                if (strncmp(env[i], p + 2, nl) == 0 && env[i][nl] == '=') {
                                        val = env[i] + nl + 1;
                                        break;
                                }
                        }
                        adv = (size_t)(end - p + 1);
                        if (!val) {
                                val = p;
                                vlen = adv;
                        }
                }
                if (!val) {
                        val = p;
                        vlen = 1;
                } else if (val != p) {
                        vlen = strlen(val);
                }
                if (len + vlen + 1 > cap) {
                        while (len + vlen + 1 > cap)
                                cap *= 2;
                        char *nb = realloc(out, cap);
                        if (!nb) {
                                free(out);
                                return NULL;
                        }
                        out = nb;
                }
                memcpy(out + len, val, vlen);
                len += vlen;
                p += adv;
        }
        out[len] = '\0';
        return out;
}

static int write_secret_file(const char *dir, const char *rel, const char *b64, int mode)
{
        char path[4096];
        unsigned char *data = NULL;
        size_t len = 0;
        int fd, r = 0;

        if (strstr(rel, "..") || rel[0] == '/')
                return -EINVAL;
        snprintf(path, sizeof(path), "%s/%s", dir, rel);
        if (*b64 && base64_decode(b64, strlen(b64), &data, &len) < 0)
                return -EINVAL;
        char *slash = strrchr(path, '/');
        *slash = '\0';
        fs_mkdir_p(path, 0755);
        *slash = '/';
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) {
                free(data);
                return -errno;
        }
        if (len && write(fd, data, len) != (ssize_t)len)
                r = -EIO;
        if (fchmod(fd, (mode_t)mode) < 0)
                r = -errno;
        close(fd);
        free(data);
        return r;
}

/* Writes the Secret's keys into dir, like a kubelet's secret volume. */
static int materialise_secret(json_t *vsec, json_t *secret, const char *dir)
{
        json_t *data = json_object_get(secret, "data");
        json_t *items = json_object_get(vsec, "items"), *it;
        int mode = (int)obj_int(vsec, "defaultMode", 0644);
        const char *k;
        json_t *v;
        size_t i;
        int r;

        if (json_array_size(items) > 0) {
                json_array_foreach(items, i, it) {
                        const char *key = obj_str(it, "key") ?: "";
                        const char *val = json_string_value(json_object_get(data, key));
                        if (!val)
                                return -ENOENT;
                        r = write_secret_file(dir, obj_str(it, "path") ?: key, val,
                                              (int)obj_int(it, "mode", mode));
                        if (r < 0)
                                return r;
                }
                return 0;
        }
        json_object_foreach(data, k, v) {
                r = write_secret_file(dir, k, json_string_value(v) ?: "", mode);
                if (r < 0)
                        return r;
        }
        return 0;
}

static const char *env_lookup(char **env, size_t n, const char *name)
{
        size_t nl = strlen(name);

        for (size_t i = 0; i < n; i++)
                if (strncmp(env[i], name, nl) == 0 && env[i][nl] == '=')
                        return env[i] + nl + 1;
        return NULL;
}

static bool find_exe(const char *cmd, char *out, size_t n)
{
        const char *path = getenv("PATH");
        char buf[4096];
        char *save = NULL;

        if (strchr(cmd, '/')) {
                snprintf(out, n, "%s", cmd);
                return access(out, X_OK) == 0;
        }
        snprintf(buf, sizeof(buf), "%s", path ? path : "/usr/bin:/bin");
        for (char *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
                snprintf(out, n, "%s/%s", d, cmd);
                if (access(out, X_OK) == 0)
                        return true;
        }
        return false;
}

static void free_strv(char **v, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(v[i]);
}

static void pod_terminated(struct kf *kf, json_t *pod, int code, const char *reason,
                           const char *message)
{
        char ts[40];
        json_t *t = json_pack("{s:i,s:s,s:s,s:s}", "exitCode", code, "reason", reason,
                              "startedAt", kf_timestamp(ts, sizeof(ts)), "finishedAt", ts);
        json_t *st = json_object_get(pod, "status");
        const char *started = obj_str(json_array_get(json_object_get(st, "containerStatuses"), 0),
                                      "state.running.startedAt");

        if (started)
                json_object_set_new(t, "startedAt", json_string(started));
        if (message)
                json_object_set_new(t, "message", json_string(message));
        set_cstatus(pod, json_pack("{s:o}", "terminated", t), false, NULL);
        json_object_set_new(st, "phase", json_string(code == 0 ? "Succeeded" : "Failed"));
        set_condition(st, "Ready", "False", "PodCompleted", NULL);
        set_condition(st, "ContainersReady", "False", "PodCompleted", NULL);
        (void)kf;
}

/* Starts the pod's container. Returns 0 when it runs, 1 when the pod must
 * keep waiting (reason set), -1 when it failed to start (pod Failed). */
static int pod_start(struct kf *kf, json_t *pod, struct podrt *rt)
{
        json_t *spec = json_object_get(pod, "spec"), *c = container0(pod);
        json_t *vols = json_object_get(spec, "volumes"), *mounts = json_object_get(c, "volumeMounts");
        struct mount mt[MAX_MOUNTS];
        size_t nmt = 0, nenv = 0, nargv = 0, i;
        char *env[MAX_ENV + 8], *argv[MAX_ARGV + 1], exe[4096], buf[4096], msg[600];
        const char *ns = rt->ns;
        json_t *v, *m, *e;
        int ret = -1;

        /* Every Secret must exist first, like a kubelet's mount retries. */
        json_array_foreach(vols, i, v) {
                json_t *sv = json_object_get(v, "secret");
                const char *sn = obj_str(sv, "secretName");
                if (sv && !json_is_true(json_object_get(sv, "optional")) &&
                    !store_get(kf, KR_SECRET, ns, sn ?: "")) {
                        snprintf(msg, sizeof(msg), "MountVolume.SetUp failed for volume \"%s\" : "
                                 "secret \"%s\" not found", obj_str(v, "name") ?: "", sn ?: "");
                        set_waiting(pod, "ContainerCreating", msg);
                        return 1;
                }
        }
        json_array_foreach(json_object_get(c, "env"), i, e) {
                const char *sn = obj_str(e, "valueFrom.secretKeyRef.name");
                const char *key = obj_str(e, "valueFrom.secretKeyRef.key");
                json_t *s = sn ? store_get(kf, KR_SECRET, ns, sn) : NULL;
                if (sn && (!s || !json_object_get(json_object_get(s, "data"), key ?: ""))) {
                        snprintf(msg, sizeof(msg), s ? "couldn't find key %s in Secret %s/%s"
                                 : "secret \"%s\" not found", s ? key : sn, ns, sn);
                        if (!s)
                                snprintf(msg, sizeof(msg), "secret \"%s\" not found", sn);
                        set_waiting(pod, "CreateContainerConfigError", msg);
                        return 1;
                }
        }
        if (fs_mkdir_p(rt->dir, 0755) < 0)
                return -1;
        json_array_foreach(vols, i, v) {
                char vdir[2200];
                json_t *sv = json_object_get(v, "secret");
                snprintf(vdir, sizeof(vdir), "%s/volumes/%s", rt->dir, obj_str(v, "name") ?: "x");
                fs_mkdir_p(vdir, 0755);
                if (sv) {
                        json_t *s = store_get(kf, KR_SECRET, ns, obj_str(sv, "secretName") ?: "");
                        if (s && materialise_secret(sv, s, vdir) < 0) {
                                set_waiting(pod, "ContainerCreating", "cannot write the secret "
                                            "volume");
                                return 1;
                        }
                }
        }
        json_array_foreach(mounts, i, m) {
                if (nmt == MAX_MOUNTS)
                        break;
                const char *sub = obj_str(m, "subPath");
                mt[nmt].path = obj_str(m, "mountPath") ?: "/";
                snprintf(mt[nmt].host, sizeof(mt[nmt].host), "%s/volumes/%s%s%s", rt->dir,
                         obj_str(m, "name") ?: "", sub && *sub ? "/" : "", sub ? sub : "");
                nmt++;
        }
        json_array_foreach(json_object_get(c, "env"), i, e) {
                const char *name = obj_str(e, "name") ?: "";
                const char *val = obj_str(e, "value");
                char *x = NULL;
                if (nenv == MAX_ENV)
                        break;
                if (!val && obj_str(e, "valueFrom.secretKeyRef.name")) {
                        json_t *s = store_get(kf, KR_SECRET, ns,
                                              obj_str(e, "valueFrom.secretKeyRef.name"));
                        const char *b64 = json_string_value(json_object_get(
                                json_object_get(s, "data"),
                                obj_str(e, "valueFrom.secretKeyRef.key") ?: ""));
                        unsigned char *d = NULL;
                        size_t dl = 0;
                        if (b64 && *b64 && base64_decode(b64, strlen(b64), &d, &dl) == 0) {
                                snprintf(buf, sizeof(buf), "%s", (char *)d);
                                free(d);
                                val = buf;
                        }
                } else if (!val) {
                        const char *fp = obj_str(e, "valueFrom.fieldRef.fieldPath") ?: "";
                        val = strcmp(fp, "metadata.name") == 0 ? rt->name
                              : strcmp(fp, "metadata.namespace") == 0 ? rt->ns
                              : strcmp(fp, "metadata.uid") == 0 ? rt->uid
                              : strcmp(fp, "spec.nodeName") == 0 ? KF_NODE_NAME
                              : strcmp(fp, "status.podIP") == 0 ? "127.0.0.1" : "";
                }
                x = expand(val ? val : "", env, nenv);
                if (!x)
                        goto out;
                char rb[4096];
                const char *rv = remap(mt, nmt, x, rb, sizeof(rb));
                size_t len = strlen(name) + strlen(rv) + 2;
                env[nenv] = malloc(len);
                if (!env[nenv]) {
                        free(x);
                        goto out;
                }
                snprintf(env[nenv++], len, "%s=%s", name, rv);
                free(x);
        }
        const char *extra[][2] = {
                { "HOSTNAME", rt->name },
                { "KUBERNETES_SERVICE_HOST", "127.0.0.1" },
                { "KUBERNETES_SERVICE_PORT", NULL },
                { "KUBERNETES_SERVICE_PORT_HTTPS", NULL },
        };
        char port[16];
        snprintf(port, sizeof(port), "%d", kf->port);
        for (i = 0; i < sizeof(extra) / sizeof(extra[0]); i++) {
                const char *val = extra[i][1] ? extra[i][1] : port;
                if (env_lookup(env, nenv, extra[i][0]))
                        continue;
                size_t len = strlen(extra[i][0]) + strlen(val) + 2;
                if (!(env[nenv] = malloc(len)))
                        goto out;
                snprintf(env[nenv++], len, "%s=%s", extra[i][0], val);
        }
        env[nenv] = NULL;
        for (int pass = 0; pass < 2; pass++) {
                json_array_foreach(json_object_get(c, pass ? "args" : "command"), i, v) {
                        char rb[4096];
                        char *x;
                        if (nargv == MAX_ARGV)
                                break;
                        x = expand(json_string_value(v) ?: "", env, nenv);
                        if (!x)
                                goto out;
                        argv[nargv] = strdup(remap(mt, nmt, x, rb, sizeof(rb)));
                        free(x);
                        if (!argv[nargv])
                                goto out;
                        nargv++;
                }
        }
        argv[nargv] = NULL;
        if (nargv == 0) {
                pod_terminated(kf, pod, 128, "StartError", "kube-fake runs no images: the "
                               "container needs a command");
                ret = -1;
                goto out;
        }
        if (!find_exe(argv[0], exe, sizeof(exe))) {
                snprintf(msg, sizeof(msg), "failed to create containerd task: exec: \"%s\": "
                         "executable file not found in $PATH", argv[0]);
                pod_terminated(kf, pod, 128, "StartError", msg);
                ret = -1;
                goto out;
        }
        char cwd[4096], logp[2200];
        const char *wd = obj_str(c, "workingDir");
        if (wd && *wd) {
                const char *r = remap(mt, nmt, wd, buf, sizeof(buf));
                if (r == wd)
                        snprintf(cwd, sizeof(cwd), "%s/rootfs%s", rt->dir, wd);
                else
                        snprintf(cwd, sizeof(cwd), "%s", r);
                fs_mkdir_p(cwd, 0755);
        } else {
                snprintf(cwd, sizeof(cwd), "%s", rt->dir);
        }
        snprintf(logp, sizeof(logp), "%s/log", rt->dir);
        int logfd = open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (logfd < 0)
                goto out;
        pid_t parent = getpid();
        pid_t pid = fork();
        if (pid < 0) {
                close(logfd);
                goto out;
        }
        if (pid == 0) {
                int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
                setsid();
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                        _exit(127);
                sigset_t all;
                sigemptyset(&all);
                sigprocmask(SIG_SETMASK, &all, NULL);
                signal(SIGPIPE, SIG_DFL);
                if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(logfd, 1) < 0 ||
                    dup2(logfd, 2) < 0 || chdir(cwd) < 0)
                        _exit(127);
                execve(exe, argv, env);
                dprintf(2, "kube-fake: exec %s: %s\n", exe, strerror(errno));
                _exit(127);
        }
        close(logfd);
        rt->pid = pid;
        rt->started = true;
        log_info("kube-fake", "pod started", KS("pod", rt->name), KI("pid", pid),
                 KS("command", exe));
        char ts[40], cid[64];
        snprintf(cid, sizeof(cid), "kube-fake://%d", (int)pid);
        json_t *st = json_object_get(pod, "status");
        json_object_set_new(st, "phase", json_string("Running"));
        json_object_set_new(st, "hostIP", json_string("127.0.0.1"));
        json_object_set_new(st, "podIP", json_string("127.0.0.1"));
        json_object_set_new(st, "podIPs", json_pack("[{s:s}]", "ip", "127.0.0.1"));
        json_object_set_new(st, "startTime", json_string(kf_timestamp(ts, sizeof(ts))));
        set_condition(st, "Initialized", "True", NULL, NULL);
        set_condition(st, "ContainersReady", "True", NULL, NULL);
        set_condition(st, "Ready", "True", NULL, NULL);
        set_cstatus(pod, json_pack("{s:{s:s}}", "running", "startedAt", ts), true, cid);
        ret = 0;
out:
        free_strv(env, nenv);
        free_strv(argv, nargv);
        return ret;
}

static void pod_tick(struct kf *kf, json_t *pod)
{
        struct podrt *rt;
        json_t *st = json_object_get(pod, "status"), *spec = json_object_get(pod, "spec");
        const char *image = obj_str(container0(pod), "image") ?: "";
        bool changed = false;
        char msg[600];

        if (strcmp(obj_str(pod, "status.phase") ?: "", "Pending") != 0 ||
            obj_str(pod, "metadata.deletionTimestamp"))
                return;
        rt = rt_get(kf, pod);
        if (!rt)
                return;
        if (!obj_str(pod, "spec.nodeName")) {
                if (!kf->schedulable) {
                        json_t *before = json_deep_copy(st);
                        set_condition(st, "PodScheduled", "False", "Unschedulable",
                                      kf->unsched_msg);
                        if (!json_equal(before, st))
                                store_modified(kf, KR_POD, pod);
                        json_decref(before);
                        return;
                }
                json_object_set_new(spec, "nodeName", json_string(KF_NODE_NAME));
                set_condition(st, "PodScheduled", "True", NULL, NULL);
                changed = true;
        }
        if (strncmp(image, "missing/", 8) == 0) {
                const char *wr = waiting_reason(pod);
                if (!wr || strcmp(wr, "ContainerCreating") == 0) {
                        snprintf(msg, sizeof(msg), "failed to pull and unpack image \"%s\": "
                                 "not found", image);
                        set_waiting(pod, "ErrImagePull", msg);
                        rt->pull_ms = kf_now_ms();
                        changed = true;
                } else if (strcmp(wr, "ErrImagePull") == 0 &&
                           kf_now_ms() - rt->pull_ms >= PULL_BACKOFF_MS) {
                        snprintf(msg, sizeof(msg), "Back-off pulling image \"%s\"", image);
                        set_waiting(pod, "ImagePullBackOff", msg);
                        changed = true;
                }
                if (changed)
                        store_modified(kf, KR_POD, pod);
                return;
        }
        json_t *before = json_deep_copy(st);
        int r = pod_start(kf, pod, rt);
        if (r == 1 && !changed && json_equal(before, st)) {
                json_decref(before);
                return;
        }
        json_decref(before);
        store_modified(kf, KR_POD, pod);
        if (r < 0 && strcmp(obj_str(pod, "status.phase") ?: "", "Failed") == 0)
                job_pod_done(kf, pod, false);
        json_t *job = r == 0 ? job_of(kf, pod) : NULL;
        if (job && !job_finished(job)) {
                json_object_set_new(json_object_get(job, "status"), "ready", json_integer(1));
                store_modified(kf, KR_JOB, job);
        }
}

void pods_reaped(struct kf *kf, pid_t pid, int status)
{
        struct podrt *rt = NULL;
        json_t *pod;
        int code;

        for (struct podrt *p = kf->pods; p; p = p->next)
                if (p->pid == pid)
                        rt = p;
        if (!rt)
                return;
        code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        rt->pid = 0;
        rt->exited = true;
        rt->exit_code = code;
        log_info("kube-fake", "pod exited", KS("pod", rt->name), KI("pid", pid),
                 KI("exit_code", code));
        pod = store_get(kf, KR_POD, rt->ns, rt->name);
        if (!pod || strcmp(obj_str(pod, "metadata.uid") ?: "", rt->uid) != 0) {
                rt_drop(kf, rt);
                return;
        }
        pod_terminated(kf, pod, code, code == 0 ? "Completed" : "Error", NULL);
        store_modified(kf, KR_POD, pod);
        job_pod_done(kf, pod, code == 0);
        if (rt->terminating)
                store_remove(kf, KR_POD, pod);
}

void pods_delete(struct kf *kf, json_t *pod, int64_t grace)
{
        struct podrt *rt = rt_find(kf, obj_str(pod, "metadata.uid") ?: "");
        json_t *md = json_object_get(pod, "metadata");
        char ts[40];

        if (grace < 0)
                grace = obj_int(pod, "spec.terminationGracePeriodSeconds", 30);
        if (rt && rt->terminating) {
                /* A second delete may only shorten the grace period. */
                if (rt->pid > 0 && kf_now_ms() + grace * 1000 < rt->kill_at) {
                        rt->kill_at = kf_now_ms() + grace * 1000;
                        if (grace == 0)
                                kill(-rt->pid, SIGKILL);
                }
                return;
        }
        json_object_set_new(md, "deletionTimestamp",
                            json_string(ts_at(wall_s() + grace, ts, sizeof(ts))));
        json_object_set_new(md, "deletionGracePeriodSeconds", json_integer(grace));
        if (!rt || rt->pid <= 0) {
                store_modified(kf, KR_POD, pod);
                if (rt)
                        rt_drop(kf, rt);
                store_remove(kf, KR_POD, pod);
                return;
        }
        rt->terminating = true;
        rt->kill_at = kf_now_ms() + grace * 1000;
        store_modified(kf, KR_POD, pod);
        kill(-rt->pid, grace == 0 ? SIGKILL : SIGTERM);
        if (grace == 0) {
                /* A forced deletion does not wait for the process. */
                store_remove(kf, KR_POD, pod);
        }
}

void pods_tick(struct kf *kf)
{
        const char *k;
        json_t *o, *tmp;
        int64_t now = kf_now_ms();

        jobs_tick(kf);
        json_object_foreach_safe(kf->objs[KR_POD], tmp, k, o)
                pod_tick(kf, o);
        gc_tick(kf);
        for (struct podrt *p = kf->pods; p; p = p->next)
                if (p->terminating && p->pid > 0 && now >= p->kill_at) {
                        kill(-p->pid, SIGKILL);
                        p->kill_at = now + 1000;
                }
}

void pods_info(struct kf *kf, const char *uid, pid_t *ret_pid, int *ret_exit)
{
        struct podrt *rt = rt_find(kf, uid ? uid : "");

        *ret_pid = rt ? rt->pid : 0;
        *ret_exit = rt ? rt->exit_code : -1;
}

const char *pods_log_path(struct kf *kf, json_t *pod, char *buf, size_t n)
{
        struct podrt *rt = rt_find(kf, obj_str(pod, "metadata.uid") ?: "");

        if (!rt || !rt->started)
                return NULL;
        snprintf(buf, n, "%s/log", rt->dir);
        return buf;
}

bool pods_running(struct kf *kf, const char *uid)
{
        struct podrt *rt = rt_find(kf, uid);

        return rt && rt->pid > 0;
}

void pods_kill_all(struct kf *kf)
{
        while (kf->pods) {
                struct podrt *p = kf->pods;
                if (p->pid > 0)
                        kill(-p->pid, SIGKILL);
                kf->pods = p->next;
                free(p);
        }
}
