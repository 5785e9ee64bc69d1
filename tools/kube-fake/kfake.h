/* kfake.h: the shared state of kube-fake, the strict fake Kubernetes API
 * server the tests run (tools/kube-fake/README.md), and the functions its
 * files offer each other, grouped by the file that defines them. Internal to
 * the tool: never included by forgescale's own code. Single-threaded: every
 * function runs on main.c's loop. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define KF_MAX_BODY (3u << 20)          /* a Secret is at most 1 MiB, plus JSON */
#define KF_HISTORY 4096                 /* events kept for watch resumption */
#define KF_MAX_WATCH_BUF (16u << 20)    /* a watch client that reads nothing is cut off */
#define KF_REJECTED_KEEP 50
#define KF_NODE_NAME "kube-fake-node"

/* Resources below KR_N are stored and simulated; the others (the rest of
 * what deploy/kubernetes/ applies) are only validated on create with
 * dryRun=All, never stored: a GET of one is always 404. */
enum kres {
        KR_SECRET = 0, KR_JOB, KR_POD, KR_N,
        KR_NAMESPACE = KR_N, KR_SERVICEACCOUNT, KR_CONFIGMAP, KR_SERVICE, KR_PVC,
        KR_DEPLOYMENT, KR_ROLE, KR_ROLEBINDING, KR_NETWORKPOLICY, KR_ALL
};

struct kwatch;
struct podrt;

struct kfault {
        char method[16];                /* "" matches every method */
        char *path_prefix;
        int status;
        long remaining;
        char *message;
        struct kfault *next;
};

struct kf {
        char *root;                     /* --root: pods' folders live under it */
        char *token_file;
        int port;
        bool client_ca;                 /* --client-ca given: certificates are checked */
        bool stopping;

        uint64_t rv;                    /* the last resourceVersion handed out */
        json_t *objs[KR_N];             /* "ns/name" -> object, insertion ordered */

        struct kevent {
                uint64_t rv;
                enum kres res;
                const char *type;       /* ADDED MODIFIED DELETED (static) */
                json_t *obj;
        } history[KF_HISTORY];
        size_t hist_start, hist_len;
        uint64_t compact_rv;            /* versions at or below it are gone */

        struct kwatch *watches;
        size_t watches_open;
        struct kstream *streams;        /* followed logs waiting for output */
        struct podrt *pods;             /* a running or finished pod's process */
        struct kfault *faults;

        bool schedulable;
        char unsched_msg[512];

        json_t *stats;                  /* "METHOD template" -> count */
        json_t *rejected;               /* last KF_REJECTED_KEEP {path, reason} */
};

/* ---- main.c ---- */
int64_t kf_now_ms(void);                /* monotonic */
/* The wall clock as RFC 3339 ("2026-01-02T03:04:05Z") into buf[32]. */
const char *kf_timestamp(char *buf, size_t n);

/* ---- discovery.c: the resource table and API discovery ---- */
const char *kres_name(enum kres r);     /* "secrets" "jobs" "pods" ... */
const char *kres_kind(enum kres r);     /* "Secret" "Job" "Pod" ... */
const char *kres_group(enum kres r);    /* "" for core, "batch" ... */
const char *kres_api_version(enum kres r);      /* "v1" "batch/v1" ... */
/* "jobs.batch", "secrets": how an apiserver names it in messages. */
const char *kres_qualified(enum kres r);
bool kres_namespaced(enum kres r);
const char *kres_schema(enum kres r);   /* its type in schema_gen.c */

/* ---- store.c: objects, resourceVersions, history, watches ---- */
json_t *store_get(struct kf *kf, enum kres r, const char *ns, const char *name); /* borrowed */
json_t *store_by_uid(struct kf *kf, enum kres r, const char *uid);               /* borrowed */
/* Takes obj; fills resourceVersion and emits ADDED. Returns the stored
 * object (borrowed). */
json_t *store_add(struct kf *kf, enum kres r, json_t *obj);
/* obj (stored, borrowed) changed: new resourceVersion, MODIFIED. */
void store_modified(struct kf *kf, enum kres r, json_t *obj);
/* Removes it: new resourceVersion, DELETED. obj is invalid afterwards. */
void store_remove(struct kf *kf, enum kres r, json_t *obj);
void store_compact(struct kf *kf);
const char *obj_str(json_t *obj, const char *path); /* "metadata.name" or NULL */
int64_t obj_int(json_t *obj, const char *path, int64_t dflt);
void store_free(struct kf *kf);

/* Label selectors ("a=b,c!=d,e,!f,g in (x,y),h notin (z)"). */
struct ksel;
int ksel_parse(const char *s, struct ksel **ret, char *why, size_t whylen);
bool ksel_match(const struct ksel *sel, json_t *obj);
void ksel_free(struct ksel *sel);

/* Field selectors: metadata.name, metadata.namespace, status.phase. */
struct kfsel {
        char name[254], ns[254], phase[32];
        bool not_name, not_ns, not_phase;   /* "!=" instead of "=" */
};
int kfsel_parse(const char *s, struct kfsel *ret, char *why, size_t whylen);
bool kfsel_match(const struct kfsel *fs, json_t *obj);

/* A watch: lines of JSON queued for one streaming response. */
struct kwatch {
        struct kf *kf;
        enum kres res;
        char ns[254];                   /* "" for every namespace */
        struct ksel *sel;
        struct kfsel fsel;
        bool bookmarks;
        int64_t end_ms;                 /* timeoutSeconds */
        int64_t last_send_ms;
        uint64_t last_rv;
        char *buf;
        size_t len, off, cap;
        bool closing, abort;
        bool suspended;
        void *conn;                     /* struct MHD_Connection */
        struct kwatch *next;
};
/* Starts a watch after rv (0: synthetic ADDED of every match first). A
 * version compacted away queues an ERROR event with a 410 Status and ends
 * the stream. Takes sel. Returns NULL on OOM. */
struct kwatch *store_watch_new(struct kf *kf, enum kres r, const char *ns, struct ksel *sel,
                               const struct kfsel *fsel, uint64_t rv, bool have_rv);
void store_watch_free(struct kwatch *w);
/* The watch has data or ended: wake its connection (httpd.c). */
void store_watches_tick(struct kf *kf);
void store_watches_drop(struct kf *kf, bool abort);
/* True when rv is older than what the history still holds. */
bool store_rv_expired(struct kf *kf, uint64_t rv);

/* ---- httpd.c ---- */
struct httpd;
struct httpd *httpd_start(struct kf *kf, int listen_fd, const char *cert_pem, const char *key_pem,
                          const char *ca_pem);
/* One loop pass: waits at most max_ms on the server's sockets and extra_fd,
 * then serves what is ready. Returns true when extra_fd is readable. */
bool httpd_run(struct httpd *h, int extra_fd, int max_ms);
void httpd_stop(struct httpd *h);
void httpd_wake(void *conn);            /* resume a suspended streaming connection */
bool httpd_peer_gone(void *conn);       /* a suspended stream's client closed */
void httpd_reject(struct kf *kf, const char *path, const char *reason);

/* ---- api.c: the Kubernetes resources and /_fake/ ---- */
struct kreq {
        struct kf *kf;
        void *conn;
        const char *method;
        const char *path;
        const char *params[4];          /* route captures in order */
        const char *body;
        size_t body_len;
        const char *(*query)(void *conn, const char *name); /* NULL when absent */
};
struct kresp {
        int status;
        json_t *json;                   /* owned */
        char *text;                     /* owned, text/plain when set */
        size_t text_len;
        struct kwatch *watch;           /* streaming watch, owned */
        struct kstream *stream;         /* streaming log, owned */
        const char *warning;
        bool retry_after;
};
void api_status(struct kresp *rs, int code, const char *reason, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
void api_version(struct kreq *rq, struct kresp *rs, enum kres r);
/* Discovery (discovery.c): GET /api, /apis, /api/v1, /apis/{group}/{version}
 * in the legacy JSON form (no aggregated discovery: a client falls back). */
void api_core_versions(struct kreq *rq, struct kresp *rs, enum kres r);
void api_groups(struct kreq *rq, struct kresp *rs, enum kres r);
void api_resources(struct kreq *rq, struct kresp *rs, enum kres r);
/* GET /openapi/v3 and /openapi/v3/{api/v1|apis/{group}/{version}}: only
 * what tells kubectl that the server validates fields (discovery.c). */
void api_openapi_index(struct kreq *rq, struct kresp *rs, enum kres r);
void api_openapi_gv(struct kreq *rq, struct kresp *rs, enum kres r);
/* GET of a validated-only kind: 404 NotFound, nothing is stored. */
void api_absent(struct kreq *rq, struct kresp *rs, enum kres r);
void api_list(struct kreq *rq, struct kresp *rs, enum kres r);
void api_create(struct kreq *rq, struct kresp *rs, enum kres r);
void api_get(struct kreq *rq, struct kresp *rs, enum kres r);
void api_delete(struct kreq *rq, struct kresp *rs, enum kres r);
void api_pod_log(struct kreq *rq, struct kresp *rs, enum kres r);
void ctl_faults(struct kreq *rq, struct kresp *rs, enum kres r);
void ctl_scheduling(struct kreq *rq, struct kresp *rs, enum kres r);
void ctl_compact(struct kreq *rq, struct kresp *rs, enum kres r);
void ctl_drop_watches(struct kreq *rq, struct kresp *rs, enum kres r);
void ctl_stats(struct kreq *rq, struct kresp *rs, enum kres r);
void ctl_pods(struct kreq *rq, struct kresp *rs, enum kres r);

/* A followed pod log: reads the log file from off while the pod runs. */
struct kstream {
        struct kf *kf;
        int fd;
        char pod_uid[64];
        int64_t left;                   /* limitBytes, -1 unlimited */
        bool follow;
        bool suspended;
        void *conn;
        struct kstream *next;
};
void kstream_free(struct kstream *s);
/* Fills buf from the log; 0 means "nothing yet" (suspend), -1 the end. */
ssize_t kstream_read(struct kstream *s, char *buf, size_t max);

/* ---- validate.c ---- */
/* Strict schema check of obj as type (a kschema name), then the semantic
 * rules of what. Returns 0, or 400/422 with *ret_reason ("BadRequest",
 * "Invalid") and why filled with the field path and what is wrong. */
int validate_object(enum kres what, json_t *obj, char *why, size_t whylen,
                    const char **ret_reason);
int validate_delete_options(json_t *obj, char *why, size_t whylen, const char **ret_reason);
bool validate_dns_subdomain(const char *s);
bool validate_dns_label(const char *s);

/* ---- pods.c: the job controller, kubelet, garbage collector ---- */
void pods_tick(struct kf *kf);
/* A child process ended (waitpid status). */
void pods_reaped(struct kf *kf, pid_t pid, int status);
/* Starts a pod's deletion: grace < 0 means the pod's own
 * terminationGracePeriodSeconds. The pod may be gone when this returns. */
void pods_delete(struct kf *kf, json_t *pod, int64_t grace);
/* A job's deletion with its propagation policy ("Background",
 * "Foreground", "Orphan"). */
void pods_delete_job(struct kf *kf, json_t *job, const char *policy);
/* Process id and exit code (or -1) of a pod; for /_fake/pods. */
void pods_info(struct kf *kf, const char *uid, pid_t *ret_pid, int *ret_exit);
const char *pods_log_path(struct kf *kf, json_t *pod, char *buf, size_t n);
bool pods_running(struct kf *kf, const char *uid);
void pods_kill_all(struct kf *kf);
