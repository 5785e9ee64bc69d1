/* contract_kubernetes.c: the contract suite's factory for the kubernetes
 * provider: the engine is kube-fake (tests/support/kubefake.h), reached
 * through a kubeconfig with a bearer token; a worker is a Job whose pod the
 * fake runs as a local process. */
#include "contract.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider/kubeobj.h"
#include "kubefake.h"

#define NS "contract"

struct kpriv {
        struct kubefake *kf;
        char kubeconfig[PATH_MAX];
};

static struct kpriv kp;

static int k_up(struct contract_env *e)
{
        struct kubefake_opts o = { .ns = NS };
        int r = kubefake_start(&o, &kp.kf);

        if (r < 0)
                return r;
        snprintf(kp.kubeconfig, sizeof(kp.kubeconfig), "%s/kubeconfig", e->dir);
        r = kubefake_write_kubeconfig(kp.kf, kp.kubeconfig, false);
        if (r < 0)
                return r;
        e->priv = &kp;
        e->cfg.kubernetes.kubeconfig = kp.kubeconfig;
        e->cfg.kubernetes.kubeconfig_path = kp.kubeconfig;
        e->cfg.kubernetes.image = (char *)"registry.example/forgejo-runner:11";
        return 0;
}

static void k_down(struct contract_env *e)
{
        kubefake_stop(kp.kf);
        kp.kf = NULL;
}

static bool exists(const char *kind_path, const char *kname)
{
        struct kubefake_resp r;
        char path[512];
        bool there;

        snprintf(path, sizeof(path), "%s/%s", kind_path, kname);
        if (kubefake_request(kp.kf, KUBEFAKE_AUTH_TOKEN, "GET", path, NULL, &r) < 0) {
                kubefake_resp_done(&r);
                return true; /* unknown counts as left */
        }
        /* A Job being deleted (its pod still ending) is gone for good. */
        there = r.status == 200 &&
                !json_object_get(json_object_get(r.json, "metadata"), "deletionTimestamp");
        kubefake_resp_done(&r);
        return there;
}

/* The Job and the Secret of the instance. */
static int k_leftovers(const struct contract_env *e, const char *workdir, const char *instance)
{
        char kname[KUBEOBJ_NAME_MAX + 1];

        if (kubeobj_name(instance, kname, sizeof(kname)) < 0)
                return 0;
        return exists("/apis/batch/v1/namespaces/" NS "/jobs", kname) +
               exists("/api/v1/namespaces/" NS "/secrets", kname);
}

/* The fake runs a pod as a process: signal it as a kubelet's OOM killer
 * or a node's end would. */
static int k_kill(const struct contract_env *e, const char *instance, const char *ref, int sig)
{
        char kname[KUBEOBJ_NAME_MAX + 1];
        json_t *resp = NULL, *it;
        size_t i;
        int r = -ESRCH;

        if (kubeobj_name(instance, kname, sizeof(kname)) < 0)
                return -EINVAL;
        if (kubefake_ctl(kp.kf, "GET", "/_fake/pods", NULL, &resp) != 200)
                return -EIO;
        json_array_foreach(json_object_get(resp, "pods"), i, it) {
                const char *job = json_string_value(json_object_get(it, "job"));
                json_int_t pid = json_integer_value(json_object_get(it, "pid"));
                if (job && strcmp(job, kname) == 0 && pid > 1)
                        r = kill((pid_t)pid, sig) < 0 ? -errno : 0;
        }
        json_decref(resp);
        return r;
}

/* kube-fake materialises a secret volume under its root and rewrites the
 * mount path in the worker's argv and env (its README). */
static int k_worker_path(const struct contract_env *e, const char *instance, const char *path, char *buf,
                         size_t n)
{
        char kname[KUBEOBJ_NAME_MAX + 1];
        json_t *resp = NULL, *it;
        const char *pod = NULL;
        size_t i, dl = strlen(KUBEOBJ_TOKEN_DIR);
        int r = -ESRCH;

        if (strncmp(path, KUBEOBJ_TOKEN_DIR "/", dl + 1) != 0 || kubeobj_name(instance, kname, sizeof(kname)) < 0)
                return -EINVAL;
        if (kubefake_ctl(kp.kf, "GET", "/_fake/pods", NULL, &resp) != 200)
                return -EIO;
        json_array_foreach(json_object_get(resp, "pods"), i, it) {
                const char *job = json_string_value(json_object_get(it, "job"));
                if (job && strcmp(job, kname) == 0)
                        pod = json_string_value(json_object_get(it, "name"));
        }
        if (pod) {
                snprintf(buf, n, "%s/pods/" NS "/%s/volumes/" KUBEOBJ_TOKEN_VOLUME "%s", kubefake_root(kp.kf), pod,
                         path + dl);
                r = 0;
        }
        json_decref(resp);
        return r;
}

#define HEAD "forges: {f: {url: \"http://127.0.0.1:1\", token_env: T}}\n" \
             "pools: {x: {scope: org/a, labels: [l], provider: p}}\nproviders:\n"

static const struct contract_bad_config k_bad[] = {
        { HEAD "  p: {type: kubernetes}\n", 4, 3, "missing required key \"image\"" },
        { HEAD "  p: {type: kubernetes, image: x, namespace: Runners}\n", 4, 46, "not a Kubernetes namespace name" },
        { HEAD "  p: {type: kubernetes, image: x, resources: {limits: {memory: lots}}}\n", 4, 64,
          "must be a quantity" },
        { HEAD "  p: {type: kubernetes, image: x, pod_template: {restartPolicy: Always}}\n", 4, 65,
          "restartPolicy must be Never" },
        { HEAD "  p: {type: kubernetes, image: x, tolerations: [{effect: Sometimes}]}\n", 4, 58, "effect" },
        { HEAD "  p: {type: local, image: x}\n", 4, 20, "only for providers of type kubernetes" },
        { NULL, 0, 0, NULL },
};

const struct contract_factory contract_factory = {
        .name = "kubernetes",
        .ops = &provider_kubernetes_ops,
        .type = CONFIG_PROVIDER_KUBERNETES,
        .up = k_up,
        .down = k_down,
        .leftovers = k_leftovers,
        .kill_worker = k_kill,
        .slow_ms = 1000,
        .foreign_signal_seen = false,
        .stop_removes_leftovers = true,
        .worker_path = k_worker_path,
        .bad_configs = k_bad,
};
