/* kubeobj.h: the Kubernetes objects of the kubernetes provider as JSON, pure
 * (no I/O): the Job and Secret built from a worker's spec and the provider's
 * configuration (with the pod_template merge), Kubernetes names derived from
 * instance names, and the parsing of Pods, Jobs and Status objects the API
 * server sends into the few facts the provider acts on. Never logs, never
 * holds a token longer than the call that builds the Secret's body. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KUBEOBJ_LABEL_MANAGED "forgescale.io/managed"
#define KUBEOBJ_LABEL_INSTANCE "forgescale.io/instance"
#define KUBEOBJ_LABEL_POOL "forgescale.io/pool"
#define KUBEOBJ_SELECTOR KUBEOBJ_LABEL_MANAGED "=true"
#define KUBEOBJ_CONTAINER "runner"
#define KUBEOBJ_TOKEN_VOLUME "forgescale-token"
#define KUBEOBJ_TOKEN_DIR "/var/run/forgescale"
#define KUBEOBJ_TOKEN_KEY "token"
#define KUBEOBJ_NAME_MAX 63             /* a Job's name (its pods carry it as a label) */

/* What the provider's configuration gives every Job; borrowed. JSON texts
 * are those config_provider_kubernetes holds (checked), or NULL. */
struct kubeobj_params {
        const char *namespace;
        const char *image;
        const char *service_account;
        const char *resources;
        const char *node_selector;
        const char *tolerations;
        const char *pod_template;
        int64_t ttl_after_finished_s;   /* 0: unset */
        int64_t active_deadline_s;      /* 0: unset */
        int64_t grace_s;                /* terminationGracePeriodSeconds */
};

/* The Kubernetes name of an instance (a Job's, its Secret's and the label
 * value): instance lower-cased with every character outside [a-z0-9-]
 * turned into '-', trimmed to alphanumerics at both ends; a name that
 * changed or is longer than KUBEOBJ_NAME_MAX ends in '-' and 8 hex digits
 * of a hash of the instance name. buf needs KUBEOBJ_NAME_MAX + 1 bytes.
 * 0 or -EINVAL (empty name). */
int kubeobj_name(const char *instance, char *buf, size_t n);

/* The Job of a worker: name, labels (managed, instance, pool) and the
 * annotations with the exact instance and pool names; backoffLimit 0; a pod
 * template whose spec is pod_template overlaid with what forgescale sets
 * (see kubeobj_merge): container "runner" with image, command = argv, env,
 * resources; restartPolicy Never; the token Secret (same name) mounted
 * read-only at KUBEOBJ_TOKEN_DIR with defaultMode 0400. Every '$' of argv
 * and of env values is sent as "$$" (a kubelet expands $(VAR)). argv and env
 * ("K=V") are NULL-terminated. Returns 0 with *ret (a new reference),
 * -EINVAL (a JSON text that does not parse, an env entry without '='), or
 * -ENOMEM. */
int kubeobj_job(const struct kubeobj_params *kp, const char *instance, const char *pool,
                const char *const *argv, const char *const *env, json_t **ret);

/* The Secret's body, serialised, holding the token base64-encoded under
 * KUBEOBJ_TOKEN_KEY, owned by the Job (job_name, job_uid; blockOwnerDeletion
 * false) so that the Job's deletion removes it. *ret is malloc'd; the caller
 * zeroes (explicit_bzero over *ret_len) and frees it. 0, -EINVAL, -ENOMEM. */
int kubeobj_secret_body(const char *ns, const char *instance, const char *pool, const char *job_uid,
                        const char *token, size_t token_len, char **ret, size_t *ret_len);

/* Overlays over onto base, in place: mappings merge recursively; lists named
 * containers, initContainers, volumes and env merge item by item on "name"
 * (volumeMounts on "mountPath"), other lists and scalars are replaced by
 * over's. 0 or -ENOMEM. */
int kubeobj_merge(json_t *base, const json_t *over);

enum kubeobj_phase {
        KUBEOBJ_PENDING,
        KUBEOBJ_RUNNING,
        KUBEOBJ_SUCCEEDED,
        KUBEOBJ_FAILED,
        KUBEOBJ_UNKNOWN,
};

#define KUBEOBJ_MSG_MAX 512

/* A pod as the provider sees it. */
struct kubeobj_pod {
        char name[254];
        char instance[128];             /* the annotation, else the label */
        char kname[KUBEOBJ_NAME_MAX + 1]; /* the instance label */
        char rv[64];                    /* metadata.resourceVersion */
        enum kubeobj_phase phase;
        bool deleting;                  /* deletionTimestamp set */
        bool running;                   /* container runner is running */
        bool terminated;                /* container runner terminated */
        int exit_code;                  /* terminated: exitCode */
        char reason[64];                /* terminated: reason ("Error", "OOMKilled", ...) */
        char waiting_reason[64];        /* e.g. ErrImagePull, ImagePullBackOff */
        bool image_problem;             /* waiting_reason is about the image */
        bool unschedulable;             /* PodScheduled False, reason Unschedulable */
        char message[KUBEOBJ_MSG_MAX];  /* of the waiting reason or the condition */
        char pod_reason[64];            /* status.reason (e.g. DeadlineExceeded) */
};

/* Parses a Pod object. Returns 0, or -EINVAL when it is not a pod of
 * forgescale's (no name, no instance label). */
int kubeobj_parse_pod(const json_t *pod, struct kubeobj_pod *ret);

/* A Job as list() and adopt() see it. */
struct kubeobj_job {
        char name[254];
        char uid[64];
        char instance[128];
        char pool[128];
        bool managed;                   /* carries the managed label */
        bool finished;                  /* condition Complete or Failed true */
        char failed_reason[64];         /* of a Failed condition (DeadlineExceeded...) */
        int active, succeeded, failed;
};

int kubeobj_parse_job(const json_t *job, struct kubeobj_job *ret);

/* From a Status object (an error's body or a watch ERROR's object): its
 * code (0 when absent), reason and message. Returns 0 or -EINVAL when obj
 * is no Status. */
int kubeobj_parse_status(const json_t *obj, int *ret_code, char *reason, size_t rn, char *msg, size_t mn);
