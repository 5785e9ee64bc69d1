/* kubernetes.c: the `kubernetes` provider: a worker is a batch/v1 Job
 * (backoffLimit 0, one pod, restartPolicy Never) whose runner token is a
 * Secret owned by the Job, reached through the Kubernetes REST API with
 * libcurl on the loop (http/hmulti.h). Owns the instance table, the one pod
 * watch of the provider (list, watch from its resourceVersion, resume after
 * a dropped stream, relist on 410 Gone), each running worker's log stream
 * into spec->log_path, stops (Job deleted with background propagation, the
 * pod with the stop grace) and the mapping of API errors to provider
 * failures. Never runs kubectl, never polls an instance, never logs, never
 * keeps a runner token after its Secret was sent. */
#include "provider/provider.h"

#include "config/config.h"
#include "http/hmulti.h"
#include "loop/loop.h"
#include "provider/kubeauth.h"
#include "provider/kubeobj.h"
#include "util/secret.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Why a worker's identity (ref) is its Job's uid: a name is reused when a
 * pool's instance names repeat across controllers' lifetimes, a uid never;
 * adopt() checks that the Job of that name still has that uid.
 *
 * Why an exit code above 128 is a signal only after stop(): a pod reports
 * an exit code, and a kubelet reports 128+N for a container ended by
 * signal N exactly as for a process that ran `exit 128+N`. After our own
 * stop() the signal is ours (TERM, or KILL after the grace), so 143 and 137
 * are reported as SIGTERM and SIGKILL; otherwise the code is data.
 *
 * Why the log is streamed (follow) while the worker runs: the instance log
 * is how a person watches a worker, and a pod's log disappears with the
 * pod; the stream costs one long-lived connection per running worker
 * (hmulti's long-lived budget is raised to match). When the stream breaks,
 * the log is fetched once more (limitBytes = log_max) after the container
 * ended. */

#define API_TIMEOUT_MS 15000
#define LIST_MAX (64u << 20)
#define WATCH_LINE_MAX (4u << 20)
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 30000
#define DETAIL_MAX 2048

struct kube;
struct kcall;

typedef void (*kcall_cb)(struct kube *k, void *ud, int err, long status, const char *body, size_t len);

/* One API request, resent once with a re-read token after a 401. */
struct kcall {
        struct kcall *prev, *next;      /* k->calls */
        struct kube *k;
        char method[8];
        char *path;
        char *body;
        size_t body_len;
        bool sensitive;                 /* body holds a secret */
        bool long_lived;
        bool retried;
        size_t max_response;
        hmulti_data_cb on_data;
        void *data_ud;
        struct hmulti_xfer *x;
        long retry_after;               /* of the answer, -1 when absent */
        kcall_cb cb;
        void *ud;
        void (*ud_free)(void *ud);      /* when cancelled before its callback */
};

enum kst {
        K_CREATING,     /* Job POST in flight */
        K_SECRET,       /* Secret POST in flight */
        K_PENDING,      /* objects made, pod not running yet */
        K_RUNNING,      /* STARTED sent (or adopted) */
        K_EXITED,       /* EXITED or FAILED sent; kept for ref() and cleanup() */
};

struct kinst {
        struct kinst *prev, *next;
        struct kube *k;
        char *name;
        char *pool;
        char kname[KUBEOBJ_NAME_MAX + 1];
        char uid[64];
        char pod[254];
        enum kst st;
        provider_event_cb cb;
        void *ud;
        char *log_path;
        size_t log_max;
        char *token;                    /* until the Secret is sent; secret */
        size_t token_len;
        bool adopted;
        bool started;                   /* STARTED sent */
        bool stop_requested;
        bool pod_seen;
        bool terminated;                /* the container ended (or the pod is gone) */
        bool exit_known;
        int exit_code;
        char reason[64];
        bool job_checked;               /* the Job was asked why it ended */
        /* The log. */
        struct kcall *logc;
        int logfd;
        size_t logged;
        bool log_streaming;
        bool log_done;
        bool log_failed;
        /* Why the pod waits, remembered for a stop before it ran. */
        enum provider_failure why;
        char detail[DETAIL_MAX];
        struct kcall *reqc;             /* create/secret/adopt-check request */
        struct loop_timer *adopt_retry; /* the adopt check again, after it failed */
        int adopt_backoff_ms;
};

struct kname_rec {
        char name[KUBEOBJ_NAME_MAX + 1];
};

/* A Job this provider saw in a listing: adopt() answers from these. */
struct kjob {
        char name[KUBEOBJ_NAME_MAX + 1];
        char uid[64];
        char instance[128];
        bool finished;
};

enum wstate { W_IDLE, W_LISTING, W_WATCHING, W_WAITING };

struct kube {
        struct provider *p;
        struct loop *loop;
        struct hmulti *hm;
        struct kubeauth *auth;
        char *ns;
        struct kubeobj_params kp;       /* strings owned */
        struct kinst *insts;
        struct kcall *calls;
        /* Jobs known from the last listing. */
        struct kjob *jobs;
        size_t njobs;
        bool jobs_known;
        /* Secrets seen at start (names only). */
        struct kname_rec *secrets;
        size_t nsecrets;
        bool secrets_known;
        /* The pod watch. */
        enum wstate ws;
        struct kcall *wc;
        struct loop_timer *wtimer;
        char rv[64];
        char *line;
        size_t llen, lcap;
        int64_t backoff_ms;
        bool relist;                    /* the stream said 410 */
        long retry_after;               /* of the answer being handled, -1 when absent */
};

/* ---- helpers -------------------------------------------------------------------- */

static void perr(struct provider *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void perr(struct provider *p, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(p->error, sizeof(p->error), fmt, ap);
        va_end(ap);
}

static struct kinst *find(struct kube *k, const char *name)
{
        for (struct kinst *i = k->insts; i; i = i->next)
                if (strcmp(i->name, name) == 0)
                        return i;
        return NULL;
}

static struct kinst *find_kname(struct kube *k, const char *kname)
{
        for (struct kinst *i = k->insts; i; i = i->next)
                if (strcmp(i->kname, kname) == 0)
                        return i;
        return NULL;
}

static size_t live_count(const struct kube *k)
{
        size_t n = 0;

        for (const struct kinst *i = k->insts; i; i = i->next)
                if (i->st != K_EXITED)
                        n++;
        return n;
}

static void wipe(char *s, size_t n)
{
        if (s)
                explicit_bzero(s, n);
        free(s);
}

/* ---- API calls ---------------------------------------------------------------- */

static void kcall_free(struct kcall *c)
{
        struct kube *k = c->k;

        if (c->prev)
                c->prev->next = c->next;
        else
                k->calls = c->next;
        if (c->next)
                c->next->prev = c->prev;
        if (c->sensitive)
                wipe(c->body, c->body_len);
        else
                free(c->body);
        free(c->path);
        free(c);
}

static void kcall_cancel(struct kcall *c)
{
        if (!c)
                return;
        hmulti_cancel(c->x);
        if (c->ud_free)
                c->ud_free(c->ud);
        kcall_free(c);
}

static int kcall_send(struct kcall *c);

static void on_kcall(void *ud, int err, long status, const char *body, size_t len, long long tc)
{
        struct kcall *c = ud;
        struct kube *k = c->k;

        c->x = NULL;
        /* A rotated token: read it again and resend once. */
        if (err == 0 && status == 401 && !c->retried && kubeauth_refresh(k->auth, true) > 0) {
                c->retried = true;
                if (kcall_send(c) == 0)
                        return;
        }
        kcall_cb cb = c->cb;
        void *cud = c->ud;
        k->retry_after = c->retry_after;
        kcall_free(c);
        cb(k, cud, err, status, body, len);
}

static int kcall_send(struct kcall *c)
{
        struct kube *k = c->k;
        struct kubeauth *a = k->auth;
        char url[4096], authz[SECRET_MAX + 32];
        const char *hdrs[4];
        size_t nh = 0;
        int r;

        /* A projected service-account token is rotated by the kubelet. */
        kubeauth_refresh(a, false);
        if (snprintf(url, sizeof(url), "%s%s", a->server, c->path) >= (int)sizeof(url))
                return -ENAMETOOLONG;
        hdrs[nh++] = "Accept: application/json";
        if (c->body)
                hdrs[nh++] = "Content-Type: application/json";
        if (a->token) {
                if (snprintf(authz, sizeof(authz), "Authorization: Bearer %s", a->token) >= (int)sizeof(authz))
                        return -E2BIG;
                hdrs[nh++] = authz;
        }
        hdrs[nh] = NULL;
        struct hmulti_req req = {
                .method = c->method,
                .url = url,
                .headers = hdrs,
                .body = c->body,
                .body_len = c->body_len,
                .timeout_ms = API_TIMEOUT_MS,
                .max_response = c->max_response,
                .ca_pem = a->ca_pem,
                .ca_pem_len = a->ca_pem_len,
                .cert_pem = a->cert_pem,
                .cert_pem_len = a->cert_pem_len,
                .key_pem = a->key_pem,
                .key_pem_len = a->key_pem_len,
                .insecure = a->insecure,
                .sensitive = true,      /* the Authorization header */
                .long_lived = c->long_lived,
                .on_data = c->on_data,
                .retry_after_s = &c->retry_after,
        };
        r = hmulti_start(k->hm, &req, on_kcall, c, &c->x);
        explicit_bzero(authz, sizeof(authz));
        return r;
}

/* Starts method path; body (may be NULL) is copied. Returns the call (owned
 * by k until its callback, or kcall_cancel()), or NULL with *ret_err. */
static struct kcall *kcall_start(struct kube *k, const char *method, const char *path, const char *body,
                                 size_t body_len, bool sensitive, kcall_cb cb, void *ud, int *ret_err)
{
        struct kcall *c = calloc(1, sizeof(*c));
        int r = -ENOMEM;

        if (!c)
                goto fail;
        c->k = k;
        snprintf(c->method, sizeof(c->method), "%s", method);
        c->cb = cb;
        c->ud = ud;
        c->sensitive = sensitive;
        c->max_response = LIST_MAX;
        if (!(c->path = strdup(path)))
                goto fail;
        if (body) {
                if (!(c->body = malloc(body_len + 1)))
                        goto fail;
                memcpy(c->body, body, body_len);
                c->body[body_len] = '\0';
                c->body_len = body_len;
        }
        c->next = k->calls;
        if (k->calls)
                k->calls->prev = c;
        k->calls = c;
        r = kcall_send(c);
        if (r < 0) {
                kcall_free(c);
                c = NULL;
                goto fail_unlinked;
        }
        return c;
fail:
        if (c) {
                free(c->path);
                if (sensitive)
                        wipe(c->body, body_len);
                else
                        free(c->body);
                free(c);
        }
fail_unlinked:
        if (ret_err)
                *ret_err = r;
        return NULL;
}

static struct kcall *kcall_stream(struct kube *k, const char *path, hmulti_data_cb on_data, void *data_ud,
                                  size_t max, kcall_cb cb, void *ud, int *ret_err)
{
        struct kcall *c = calloc(1, sizeof(*c));
        int r;

        if (!c || !(c->path = strdup(path))) {
                free(c);
                *ret_err = -ENOMEM;
                return NULL;
        }
        c->k = k;
        snprintf(c->method, sizeof(c->method), "GET");
        c->cb = cb;
        c->ud = ud;
        c->long_lived = true;
        c->on_data = on_data;
        c->max_response = max;
        c->next = k->calls;
        if (k->calls)
                k->calls->prev = c;
        k->calls = c;
        /* hmulti calls on_data with the call's ud: the kcall; it forwards. */
        c->data_ud = data_ud;
        r = kcall_send(c);
        if (r < 0) {
                kcall_free(c);
                *ret_err = r;
                return NULL;
        }
        return c;
}

/* The failure category and a sentence for a failed API call. */
static enum provider_failure classify(const struct kube *k, const char *what, int err, long status,
                                      const char *body, char *detail, size_t n)
{
        char reason[64] = "", msg[KUBEOBJ_MSG_MAX] = "";
        int code = 0;

        if (err < 0) {
                snprintf(detail, n, "%s: the Kubernetes API server %s did not answer: %s", what, k->auth->server,
                         strerror(-err));
                return PROVIDER_FAIL_UNREACHABLE;
        }
        if (body) {
                json_t *j = json_loads(body, 0, NULL);
                if (j)
                        kubeobj_parse_status(j, &code, reason, sizeof(reason), msg, sizeof(msg));
                json_decref(j);
        }
        snprintf(detail, n, "%s: the Kubernetes API server answered %ld%s%s%s%s", what, status,
                 reason[0] ? " " : "", reason, msg[0] ? ": " : "", msg);
        if (status == 403 && strstr(msg, "exceeded quota"))
                return PROVIDER_FAIL_QUOTA;
        if (status == 429 || status >= 500)
                return PROVIDER_FAIL_ENGINE;
        return PROVIDER_FAIL_REJECTED;
}

/* ---- events ------------------------------------------------------------------ */

static void log_close(struct kinst *i)
{
        if (i->logfd >= 0)
                close(i->logfd);
        i->logfd = -1;
}

static void send_exited(struct kinst *i, struct provider_exit ex, enum provider_failure why, const char *detail)
{
        struct provider_event ev = {
                .type = PROVIDER_EV_EXITED,
                .instance = i->name,
                .ref = i->uid,
                .exit = ex,
                .failure = why,
                .detail = detail && *detail ? detail : NULL,
        };

        i->st = K_EXITED;
        kcall_cancel(i->logc);
        i->logc = NULL;
        log_close(i);
        i->cb(i->ud, &ev);
}

static void send_failed(struct kinst *i, int error, enum provider_failure why, const char *detail)
{
        struct provider_event ev = {
                .type = PROVIDER_EV_FAILED,
                .instance = i->name,
                .ref = i->uid,
                .error = error,
                .failure = why,
                .detail = detail,
        };

        i->st = K_EXITED;
        i->cb(i->ud, &ev);
}

static void job_delete(struct kube *k, const char *kname, int64_t grace_s);

static void job_check(struct kinst *i);

/* EXITED once the container ended and its log is complete. Returns true
 * when it was sent: i may be gone then (the callback may clean it up). */
static bool maybe_exit(struct kinst *i)
{
        struct provider_exit ex = { .kind = PROVIDER_EXIT_UNKNOWN };
        enum provider_failure why = PROVIDER_FAIL_NONE;
        char detail[DETAIL_MAX] = "";

        if (i->st == K_EXITED || !i->terminated || (!i->log_done && i->started) || i->reqc)
                return false;
        /* Ended by a signal we did not send, or its pod deleted: the Job
         * says whether Kubernetes did it (activeDeadlineSeconds). */
        if (!i->stop_requested && !i->job_checked && (i->started || i->adopted) &&
            (!i->exit_known || i->exit_code > 128) && (!i->reason[0] || strcmp(i->reason, "Error") == 0)) {
                job_check(i);
                if (i->reqc)
                        return false;
        }
        if (strcmp(i->reason, "DeadlineExceeded") == 0 && !i->exit_known) {
                why = PROVIDER_FAIL_ENGINE;
                snprintf(detail, sizeof(detail), "Job %s: Kubernetes ended the worker: DeadlineExceeded (active_deadline)",
                         i->kname);
        } else if (i->exit_known) {
                if (i->stop_requested && i->exit_code > 128 && i->exit_code < 128 + 65) {
                        ex.kind = PROVIDER_EXIT_SIGNAL;
                        ex.signal = i->exit_code - 128;
                } else {
                        ex.kind = PROVIDER_EXIT_CODE;
                        ex.code = i->exit_code;
                }
                if (strcmp(i->reason, "OOMKilled") == 0 || strcmp(i->reason, "DeadlineExceeded") == 0) {
                        why = PROVIDER_FAIL_ENGINE;
                        snprintf(detail, sizeof(detail), "pod %s: Kubernetes ended the worker: %s", i->pod,
                                 i->reason);
                }
        } else if (!i->started && !i->adopted) {
                why = i->why;
                snprintf(detail, sizeof(detail), "%s", i->detail);
        }
        send_exited(i, ex, why, detail);
        return true;
}

static void on_job_checked(struct kube *k, void *ud, int err, long status, const char *body, size_t len)
{
        struct kinst *i = ud;
        struct kubeobj_job jb;

        i->reqc = NULL;
        if (err == 0 && status == 200) {
                json_t *j = json_loadb(body, len, 0, NULL);
                if (kubeobj_parse_job(j, &jb) == 0 && strcmp(jb.failed_reason, "DeadlineExceeded") == 0)
                        snprintf(i->reason, sizeof(i->reason), "%s", jb.failed_reason);
                json_decref(j);
        }
        maybe_exit(i);
}

static void job_check(struct kinst *i)
{
        struct kube *k = i->k;
        char path[512];

        i->job_checked = true;
        snprintf(path, sizeof(path), "/apis/batch/v1/namespaces/%s/jobs/%s", k->ns, i->kname);
        i->reqc = kcall_start(k, "GET", path, NULL, 0, false, on_job_checked, i, NULL);
}

/* ---- the log stream ------------------------------------------------------------ */

static int log_open(struct kinst *i)
{
        log_close(i);
        i->logged = 0;
        i->logfd = open(i->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        return i->logfd < 0 ? -errno : 0;
}

static int on_log_data(void *ud, const void *buf, size_t n)
{
        struct kcall *c = ud;
        struct kinst *i = c->data_ud;

        size_t cap = i->log_max ? i->log_max : SIZE_MAX;

        if (i->logfd < 0 || i->logged >= cap)
                return 0;
        if (n > cap - i->logged)
                n = cap - i->logged;
        while (n > 0) {
                ssize_t w = write(i->logfd, buf, n);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return 0; /* a full disk loses log, not the worker */
                }
                i->logged += (size_t)w;
                buf = (const char *)buf + w;
                n -= (size_t)w;
        }
        return 0;
}

static void log_start(struct kinst *i, bool follow);

static void on_log_end(struct kube *k, void *ud, int err, long status, const char *body, size_t len)
{
        struct kinst *i = ud;
        bool was_follow = i->log_streaming;

        i->logc = NULL;
        i->log_streaming = false;
        if (err == 0 && status == 200) {
                /* A follow ends when the container does; a plain GET has it all. */
                i->log_done = true;
        } else if (was_follow) {
                i->log_failed = true;
                if (i->terminated)
                        log_start(i, false);
        } else {
                i->log_done = true; /* the pod is gone: keep what was written */
        }
        if (i->log_done) {
                log_close(i);
                maybe_exit(i);
        }
}

static void log_start(struct kinst *i, bool follow)
{
        struct kube *k = i->k;
        char path[1024];
        int r;

        if (i->logc || i->log_done || !i->pod[0] || !i->log_path)
                return;
        if (log_open(i) < 0) {
                i->log_done = true;
                return;
        }
        char lim[48] = "";
        if (i->log_max)
                snprintf(lim, sizeof(lim), "&limitBytes=%zu", i->log_max);
        snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s/log?container=" KUBEOBJ_CONTAINER "%s%s", k->ns,
                 i->pod, lim, follow ? "&follow=true" : "");
        i->log_streaming = follow;
        i->logc = kcall_stream(k, path, on_log_data, i, 0, on_log_end, i, &r);
        if (!i->logc) {
                i->log_streaming = false;
                i->log_done = true;
                log_close(i);
        }
}

/* ---- pods ------------------------------------------------------------------- */

static void send_started(struct kinst *i)
{
        struct provider_event ev = { .type = PROVIDER_EV_STARTED, .instance = i->name, .ref = i->uid };

        i->started = true;
        i->st = K_RUNNING;
        i->cb(i->ud, &ev);
}

static void pod_update(struct kube *k, const struct kubeobj_pod *pp, bool deleted)
{
        struct kinst *i = find_kname(k, pp->kname);

        if (!i || i->st == K_EXITED || i->st == K_CREATING)
                return;
        i->pod_seen = true;
        snprintf(i->pod, sizeof(i->pod), "%s", pp->name);
        if (pp->unschedulable) {
                i->why = PROVIDER_FAIL_UNSCHEDULABLE;
                snprintf(i->detail, sizeof(i->detail), "pod %s could not be scheduled: %s", pp->name, pp->message);
        } else if (pp->image_problem) {
                i->why = PROVIDER_FAIL_IMAGE;
                snprintf(i->detail, sizeof(i->detail), "pod %s: image %s cannot be pulled (%s): %s", pp->name,
                         k->kp.image, pp->waiting_reason, pp->message);
        }
        if (pp->terminated) {
                i->terminated = true;
                i->exit_known = true;
                i->exit_code = pp->exit_code;
                snprintf(i->reason, sizeof(i->reason), "%s", pp->reason);
        } else if (deleted || pp->phase == KUBEOBJ_SUCCEEDED || pp->phase == KUBEOBJ_FAILED) {
                /* Gone, or ended without a container status (evicted). */
                i->terminated = true;
        }
        bool ran = pp->running || pp->terminated;
        if (ran && !i->started && !i->adopted && !i->stop_requested)
                send_started(i);
        else if (ran && i->adopted)
                i->st = K_RUNNING;
        if (i->st == K_EXITED)
                return;
        if (ran && !i->logc && !i->log_done)
                log_start(i, !pp->terminated);
        if (!i->logc && i->terminated && !i->log_done && (!ran || deleted))
                i->log_done = true; /* nothing to fetch */
        maybe_exit(i);
}

/* After a full listing: a tracked worker whose pod is not in it is gone. */
static void reconcile(struct kube *k, const json_t *items)
{
again:
        /* An EXITED callback may clean other instances up: rescan. */
        for (struct kinst *i = k->insts; i; i = i->next) {
                bool found = false;
                size_t x;
                json_t *it;
                if (i->st == K_EXITED || i->st == K_CREATING || i->st == K_SECRET || !(i->pod_seen || i->adopted))
                        continue;
                json_array_foreach(items, x, it) {
                        const char *l = json_string_value(json_object_get(
                                json_object_get(json_object_get(it, "metadata"), "labels"), KUBEOBJ_LABEL_INSTANCE));
                        found = found || (l && strcmp(l, i->kname) == 0);
                }
                if (!found) {
                        i->terminated = true;
                        if (!i->logc)
                                i->log_done = true;
                        if (maybe_exit(i))
                                goto again;
                }
        }
}

/* ---- the watch ---------------------------------------------------------------- */

static void watch_schedule(struct kube *k, int64_t delay_ms);
static void watch_list(struct kube *k);
static void watch_start(struct kube *k);

/* After a failed list or watch: the server's Retry-After when it gave one
 * (429, 503), else doubling from BACKOFF_MIN_MS up to BACKOFF_MAX_MS. */
static void watch_backoff(struct kube *k, long status)
{
        k->backoff_ms = k->backoff_ms ? k->backoff_ms * 2 : BACKOFF_MIN_MS;
        if (k->backoff_ms > BACKOFF_MAX_MS)
                k->backoff_ms = BACKOFF_MAX_MS;
        if ((status == 429 || status == 503) && k->retry_after > 0) {
                watch_schedule(k, (int64_t)k->retry_after * 1000);
                return;
        }
        watch_schedule(k, k->backoff_ms);
}

static void on_wtimer(struct loop *l, void *ud)
{
        struct kube *k = ud;

        k->wtimer = NULL;
        if (k->relist || !k->rv[0])
                watch_list(k);
        else
                watch_start(k);
}

static void watch_schedule(struct kube *k, int64_t delay_ms)
{
        k->ws = W_WAITING;
        if (!k->wtimer)
                k->wtimer = loop_timer_add(k->loop, delay_ms, on_wtimer, k);
}

static void watch_event(struct kube *k, const char *line, size_t n)
{
        json_t *ev = json_loadb(line, n, 0, NULL);
        const char *type = json_string_value(json_object_get(ev, "type"));
        json_t *obj = json_object_get(ev, "object");
        const char *rv = json_string_value(json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
        struct kubeobj_pod pod;

        if (!type || !json_is_object(obj))
                goto out;
        k->backoff_ms = 0;
        if (strcmp(type, "ERROR") == 0) {
                int code = 0;
                char reason[64], msg[256];
                if (kubeobj_parse_status(obj, &code, reason, sizeof(reason), msg, sizeof(msg)) == 0 &&
                    code == 410)
                        k->relist = true;
                goto out;
        }
        if (rv && strlen(rv) < sizeof(k->rv))
                snprintf(k->rv, sizeof(k->rv), "%s", rv);
        if (strcmp(type, "BOOKMARK") == 0)
                goto out;
        if (kubeobj_parse_pod(obj, &pod) == 0)
                pod_update(k, &pod, strcmp(type, "DELETED") == 0);
out:
        json_decref(ev);
}

static int on_watch_data(void *ud, const void *buf, size_t n)
{
        struct kcall *c = ud;
        struct kube *k = c->data_ud;
        const char *p = buf;

        while (n > 0) {
                const char *nl = memchr(p, '\n', n);
                size_t take = nl ? (size_t)(nl - p) : n;
                if (k->llen + take > WATCH_LINE_MAX)
                        return -EMSGSIZE;
                if (k->llen + take + 1 > k->lcap) {
                        size_t cap = k->lcap ? k->lcap : 4096;
                        while (cap < k->llen + take + 1)
                                cap *= 2;
                        char *nb = realloc(k->line, cap);
                        if (!nb)
                                return -ENOMEM;
                        k->line = nb;
                        k->lcap = cap;
                }
                memcpy(k->line + k->llen, p, take);
                k->llen += take;
                p += take;
                n -= take;
                if (nl) {
                        p++;
                        n--;
                        if (k->llen)
                                watch_event(k, k->line, k->llen);
                        k->llen = 0;
                        if (k->relist)
                                return -ESTALE; /* ends the stream: relist */
                }
        }
        return 0;
}

static void on_watch_end(struct kube *k, void *ud, int err, long status, const char *body, size_t len)
{
        k->wc = NULL;
        k->llen = 0;
        if (k->relist || status == 410 || err == -ESTALE) {
                k->relist = true;
                watch_schedule(k, 0);
                return;
        }
        if (err == 0 && status == 200) {
                /* The server ended the stream (timeout, restart, a dropped
                 * connection): resume from the last resourceVersion. */
                int64_t delay = k->backoff_ms;
                /* A stream that keeps ending without an event must not
                 * turn into a loop of reconnects: each such end waits
                 * longer (an event resets it). */
                k->backoff_ms = delay ? delay * 2 : BACKOFF_MIN_MS / 5;
                if (k->backoff_ms > BACKOFF_MAX_MS)
                        k->backoff_ms = BACKOFF_MAX_MS;
                watch_schedule(k, delay);
                return;
        }
        watch_backoff(k, err < 0 ? 0 : status);
}

static void watch_start(struct kube *k)
{
        char path[1024];
        int r;

        snprintf(path, sizeof(path),
                 "/api/v1/namespaces/%s/pods?watch=1&allowWatchBookmarks=true&labelSelector=" KUBEOBJ_LABEL_MANAGED
                 "%%3Dtrue&resourceVersion=%s", k->ns, k->rv);
        k->ws = W_WATCHING;
        k->wc = kcall_stream(k, path, on_watch_data, k, 0, on_watch_end, k, &r);
        if (!k->wc)
                watch_backoff(k, 0);
}

static void on_pod_list(struct kube *k, void *ud, int err, long status, const char *body, size_t len)
{
        json_t *j, *items, *it;
        const char *rv;
        size_t x;

        k->wc = NULL;
        if (err < 0 || status != 200) {
                watch_backoff(k, err < 0 ? 0 : status);
                return;
        }
        j = json_loadb(body, len, 0, NULL);
        items = json_object_get(j, "items");
        rv = json_string_value(json_object_get(json_object_get(j, "metadata"), "resourceVersion"));
        if (!json_is_array(items) || !rv || strlen(rv) >= sizeof(k->rv)) {
                json_decref(j);
                watch_backoff(k, 0);
                return;
        }
        snprintf(k->rv, sizeof(k->rv), "%s", rv);
        k->relist = false;
        k->backoff_ms = 0;
        json_array_foreach(items, x, it) {
                struct kubeobj_pod pod;
                if (kubeobj_parse_pod(it, &pod) == 0)
                        pod_update(k, &pod, false);
        }
        reconcile(k, items);
        json_decref(j);
        watch_start(k);
}

static void watch_list(struct kube *k)
{
        char path[512];
        int r;

        snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods?labelSelector=" KUBEOBJ_LABEL_MANAGED "%%3Dtrue",
                 k->ns);
        k->ws = W_LISTING;
        k->wc = kcall_start(k, "GET", path, NULL, 0, false, on_pod_list, k, &r);
        if (!k->wc)
                watch_backoff(k, 0);
}

/* ---- create ------------------------------------------------------------------ */

static void job_deleted_cb(struct kube *k, void *ud, int err, long status, const char *body, size_t len)
{
}

static void jobs_forget(struct kube *k, const char *kname)
{
        for (size_t x = 0; x < k->njobs; x++) {
                if (strcmp(k->jobs[x].name, kname) == 0) {
                        k->jobs[x] = k->jobs[--k->njobs];
                        return;
                }
        }
}

static void job_delete(struct kube *k, const char *kname, int64_t grace_s)
{
        char path[512];

        /* adopt() must not find it again from the last listing. */
        jobs_forget(k, kname);

        snprintf(path, sizeof(path),
                 "/apis/batch/v1/namespaces/%s/jobs/%s?propagationPolicy=Background&gracePeriodSeconds=%lld", k->ns,
                 kname, (long long)grace_s);
        kcall_start(k, "DELETE", path, NULL, 0, false, job_deleted_cb, NULL, NULL);
}

static int64_t grace_s(const struct kube *k)
{
        return (k->p->stop_grace_ms + 999) / 1000;
}

static void drop_token(struct kinst *i)
{
        wipe(i->token, i->token_len);
        i->token = NULL;
        i->token_len = 0;
}

static void on_secret_posted(struct kube *k, void *ud, int err, long status, const char *body, size_t len)
{
        struct kinst *i = ud;
        char detail[DETAIL_MAX];

        i->reqc = NULL;
        if (err == 0 && status == 201) {
                i->st = K_PENDING;
                if (i->stop_requested) {
                        job_delete(k, i->kname, grace_s(k));
                        i->terminated = true;
                        maybe_exit(i);
                }
                return;
        }
        enum provider_failure why = classify(k, "creating the worker's token Secret", err, status, body, detail,
                                             sizeof(detail));
        /* Without its Secret the pod would wait forever: the Job goes. */
        job_delete(k, i->kname, 0);
        send_failed(i, err < 0 ? err : -EIO, why, detail);
}

static void on_job_posted(struct kube *k, void *ud, int err, long status, const char *body, size_t len)
{
        struct kinst *i = ud;
        char detail[DETAIL_MAX];
        char *sb = NULL;
        size_t sl = 0;
        int r;

        i->reqc = NULL;
        if (err < 0 || status != 201) {
                enum provider_failure why = classify(k, "creating the worker's Job", err, status, body, detail,
                                                     sizeof(detail));
                drop_token(i);
                send_failed(i, err < 0 ? err : status == 409 ? -EEXIST : -EIO, why, detail);
                return;
        }
        {
                json_t *j = json_loadb(body, len, 0, NULL);
                const char *uid = json_string_value(json_object_get(json_object_get(j, "metadata"), "uid"));
                if (uid && strlen(uid) < sizeof(i->uid))
                        snprintf(i->uid, sizeof(i->uid), "%s", uid);
                json_decref(j);
        }
        if (!i->uid[0]) {
                drop_token(i);
                job_delete(k, i->kname, 0);
                send_failed(i, -EPROTO, PROVIDER_FAIL_ENGINE, "the Kubernetes API server created the Job without a uid");
                return;
        }
        r = kubeobj_secret_body(k->ns, i->name, i->pool, i->uid, i->token ? i->token : "", i->token_len, &sb, &sl);
        drop_token(i);
        if (r < 0) {
                job_delete(k, i->kname, 0);
                send_failed(i, r, PROVIDER_FAIL_NONE, "cannot build the token Secret");
                return;
        }
        char path[512];
        snprintf(path, sizeof(path), "/api/v1/namespaces/%s/secrets", k->ns);
        i->st = K_SECRET;
        i->reqc = kcall_start(k, "POST", path, sb, sl, true, on_secret_posted, i, &r);
        wipe(sb, sl);
        if (!i->reqc) {
                job_delete(k, i->kname, 0);
                send_failed(i, r, PROVIDER_FAIL_NONE, "cannot send the token Secret");
        }
}

static struct kinst *inst_new(struct kube *k, const char *name, provider_event_cb cb, void *ud)
{
        struct kinst *i = calloc(1, sizeof(*i));

        if (!i)
                return NULL;
        i->k = k;
        i->cb = cb;
        i->ud = ud;
        i->logfd = -1;
        if (!(i->name = strdup(name)) || kubeobj_name(name, i->kname, sizeof(i->kname)) < 0) {
                free(i->name);
                free(i);
                return NULL;
        }
        i->next = k->insts;
        if (k->insts)
                k->insts->prev = i;
        k->insts = i;
        return i;
}

static void inst_free(struct kinst *i)
{
        struct kube *k = i->k;

        if (i->prev)
                i->prev->next = i->next;
        else
                k->insts = i->next;
        if (i->next)
                i->next->prev = i->prev;
        kcall_cancel(i->logc);
        kcall_cancel(i->reqc);
        if (i->adopt_retry)
                loop_timer_cancel(k->loop, i->adopt_retry);
        log_close(i);
        drop_token(i);
        free(i->name);
        free(i->pool);
        free(i->log_path);
        free(i);
}

static int kube_create(struct provider *p, const struct provider_spec *spec, provider_event_cb cb, void *ud)
{
        struct kube *k = p->ctx;
        struct kinst *i = NULL;
        json_t *job = NULL;
        char *body = NULL, path[512];
        int r;

        p->error[0] = '\0';
        p->failure = PROVIDER_FAIL_NONE;
        if (!spec->instance || !spec->pool || !spec->argv || !spec->argv[0])
                return -EINVAL;
        if (find(k, spec->instance))
                return -EEXIST;
        if (p->max_instances > 0 && live_count(k) >= (size_t)p->max_instances)
                return -EAGAIN;
        k->kp.grace_s = grace_s(k);
        r = kubeobj_job(&k->kp, spec->instance, spec->pool, spec->argv, spec->env, &job);
        if (r < 0) {
                if (r == -EINVAL)
                        perr(p, "cannot build the Job of %s (an env entry without '=', or a bad pod_template)",
                             spec->instance);
                return r;
        }
        body = json_dumps(job, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(job);
        if (!body)
                return -ENOMEM;
        if (!(i = inst_new(k, spec->instance, cb, ud))) {
                r = -ENOMEM;
                goto out;
        }
        i->log_max = spec->log_max;
        if (!(i->pool = strdup(spec->pool)) || (spec->log_path && !(i->log_path = strdup(spec->log_path)))) {
                r = -ENOMEM;
                goto out;
        }
        if (spec->token && spec->token_len) {
                if (!(i->token = malloc(spec->token_len + 1))) {
                        r = -ENOMEM;
                        goto out;
                }
                memcpy(i->token, spec->token, spec->token_len);
                i->token[spec->token_len] = '\0';
                i->token_len = spec->token_len;
        }
        snprintf(path, sizeof(path), "/apis/batch/v1/namespaces/%s/jobs", k->ns);
        i->st = K_CREATING;
        i->reqc = kcall_start(k, "POST", path, body, strlen(body), false, on_job_posted, i, &r);
        if (!i->reqc)
                goto out;
        r = 0;
        i = NULL;
out:
        if (i)
                inst_free(i);
        free(body);
        return r;
}

/* ---- stop, ref, cleanup -------------------------------------------------------- */

static void pod_delete(struct kube *k, const char *pod, int64_t grace)
{
        char path[512];

        snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s?gracePeriodSeconds=%lld", k->ns, pod,
                 (long long)grace);
        kcall_start(k, "DELETE", path, NULL, 0, false, job_deleted_cb, NULL, NULL);
}

static int kube_stop(struct provider *p, const char *instance)
{
        struct kube *k = p->ctx;
        struct kinst *i = find(k, instance);
        int64_t g = grace_s(k);

        if (!i || i->st == K_EXITED)
                return -ENOENT;
        if (i->stop_requested)
                return 0;
        i->stop_requested = true;
        if (i->st == K_CREATING || i->st == K_SECRET)
                return 0; /* on_job_posted / on_secret_posted finish it */
        job_delete(k, i->kname, g);
        /* A Job's deletion grace does not reach its pod on a real cluster. */
        if (i->pod[0])
                pod_delete(k, i->pod, g);
        if (!i->started && !i->adopted && !i->terminated) {
                /* Never ran: nothing to wait for. Says why it waited. */
                i->terminated = true;
                i->log_done = true;
                maybe_exit(i);
        }
        return 0;
}

static const char *kube_ref(struct provider *p, const char *instance)
{
        struct kube *k = p->ctx;
        struct kinst *i = find(k, instance);

        return i && i->uid[0] ? i->uid : NULL;
}

static void secret_delete(struct kube *k, const char *kname)
{
        char path[512];

        snprintf(path, sizeof(path), "/api/v1/namespaces/%s/secrets/%s", k->ns, kname);
        kcall_start(k, "DELETE", path, NULL, 0, false, job_deleted_cb, NULL, NULL);
}

/* Fire and forget: a delete lost here (API down, daemon stopped) leaves a
 * finished Job that list() shows to the orphan sweep, which stops and
 * cleans it again; its Secret goes with it (owner reference). */
static int kube_cleanup(struct provider *p, const char *instance, const char *ref, const char *workdir)
{
        struct kube *k = p->ctx;
        struct kinst *i = find(k, instance);
        char kname[KUBEOBJ_NAME_MAX + 1];

        if (i && i->st != K_EXITED)
                return -EBUSY;
        if (kubeobj_name(instance, kname, sizeof(kname)) < 0)
                return -EINVAL;
        if (i)
                inst_free(i);
        job_delete(k, kname, 0);
        secret_delete(k, kname);
        return 0;
}

static int kube_token_path(struct provider *p, const char *instance, const char *workdir, char *buf, size_t n)
{
        int w = snprintf(buf, n, "%s/%s", KUBEOBJ_TOKEN_DIR, KUBEOBJ_TOKEN_KEY);

        return w < 0 ? -EINVAL : (size_t)w >= n ? -ENAMETOOLONG : 0;
}

/* ---- list and adopt ------------------------------------------------------------ */

static int jobs_store(struct kube *k, const json_t *items)
{
        size_t n = json_array_size(items), x, o = 0;
        struct kjob *v = calloc(n ? n : 1, sizeof(*v));
        json_t *it;

        if (!v)
                return -ENOMEM;
        json_array_foreach(items, x, it) {
                struct kubeobj_job j;
                if (kubeobj_parse_job(it, &j) < 0 || !j.managed || strlen(j.name) > KUBEOBJ_NAME_MAX)
                        continue;
                memcpy(v[o].name, j.name, strlen(j.name) + 1); /* length checked above */
                snprintf(v[o].uid, sizeof(v[o].uid), "%s", j.uid);
                snprintf(v[o].instance, sizeof(v[o].instance), "%s", j.instance);
                v[o].finished = j.finished;
                o++;
        }
        free(k->jobs);
        k->jobs = v;
        k->njobs = o;
        k->jobs_known = true;
        return 0;
}

struct klist {
        provider_list_cb cb;
        void *ud;
        char *prefix;
};

static void klist_free(void *ud)
{
        struct klist *l = ud;

        free(l->prefix);
        free(l);
}

static void on_job_list(struct kube *k, void *ud, int err, long status, const char *body, size_t len)
{
        struct klist *l = ud;
        json_t *j = NULL, *items, *it;
        struct provider_listing *v = NULL;
        struct kubeobj_job *jobs = NULL;
        size_t n = 0, x;

        if (err < 0 || status != 200) {
                l->cb(l->ud, err < 0 ? err : -EIO, NULL, 0);
                goto out;
        }
        j = json_loadb(body, len, 0, NULL);
        items = json_object_get(j, "items");
        if (!json_is_array(items)) {
                l->cb(l->ud, -EPROTO, NULL, 0);
                goto out;
        }
        jobs_store(k, items);
        jobs = calloc(json_array_size(items) + 1, sizeof(*jobs));
        v = calloc(json_array_size(items) + 1, sizeof(*v));
        if (!jobs || !v) {
                l->cb(l->ud, -ENOMEM, NULL, 0);
                goto out;
        }
        json_array_foreach(items, x, it) {
                struct kubeobj_job *jb = &jobs[n];
                if (kubeobj_parse_job(it, jb) < 0 || !jb->managed || !jb->instance[0])
                        continue;
                if (l->prefix && strncmp(jb->instance, l->prefix, strlen(l->prefix)) != 0)
                        continue;
                v[n] = (struct provider_listing){ .instance = jb->instance, .ref = jb->uid, .running = !jb->finished };
                n++;
        }
        l->cb(l->ud, 0, v, n);
out:
        json_decref(j);
        free(jobs);
        free(v);
        free(l->prefix);
        free(l);
}

static int kube_list(struct provider *p, const char *prefix, provider_list_cb cb, void *ud)
{
        struct kube *k = p->ctx;
        struct klist *l = calloc(1, sizeof(*l));
        char path[512];
        int r = -ENOMEM;

        if (!l)
                return -ENOMEM;
        l->cb = cb;
        l->ud = ud;
        if (prefix && *prefix && !(l->prefix = strdup(prefix)))
                goto fail;
        snprintf(path, sizeof(path), "/apis/batch/v1/namespaces/%s/jobs?labelSelector=" KUBEOBJ_LABEL_MANAGED "%%3Dtrue",
                 k->ns);
        struct kcall *c = kcall_start(k, "GET", path, NULL, 0, false, on_job_list, l, &r);
        if (!c)
                goto fail;
        c->ud_free = klist_free;
        return 0;
fail:
        free(l->prefix);
        free(l);
        return r;
}

static int adopt_check_start(struct kinst *i);
static void adopt_check(struct kinst *i);

static void on_adopt_retry(struct loop *l, void *ud)
{
        struct kinst *i = ud;

        i->adopt_retry = NULL;
        if (i->st != K_EXITED && !i->reqc)
                adopt_check(i);
}

static void on_adopt_pods(struct kube *k, void *ud, int err, long status, const char *body, size_t len)
{
        struct kinst *i = ud;
        json_t *j, *items, *it;
        size_t x;

        i->reqc = NULL;
        if (err < 0 || status != 200) {
                /* Asked again, not left to the watch: a pod that ended
                 * while the daemon was down changes no more, so no watch
                 * event would ever report it, and the watch's listing may
                 * have come before this instance was tracked. */
                if (i->st != K_EXITED && !i->adopt_retry) {
                        i->adopt_backoff_ms = i->adopt_backoff_ms ? i->adopt_backoff_ms * 2 : BACKOFF_MIN_MS;
                        if (i->adopt_backoff_ms > BACKOFF_MAX_MS)
                                i->adopt_backoff_ms = BACKOFF_MAX_MS;
                        i->adopt_retry = loop_timer_add(k->loop, i->adopt_backoff_ms, on_adopt_retry, i);
                }
                return;
        }
        j = json_loadb(body, len, 0, NULL);
        items = json_object_get(j, "items");
        json_array_foreach(items, x, it) {
                struct kubeobj_pod pod;
                if (kubeobj_parse_pod(it, &pod) == 0)
                        pod_update(k, &pod, false);
        }
        if (json_is_array(items) && json_array_size(items) == 0 && i->st != K_EXITED) {
                /* A Job without its pod: it ended and the pod was removed. */
                i->terminated = true;
                i->log_done = true;
                maybe_exit(i);
        }
        json_decref(j);
}

static int kube_adopt(struct provider *p, const char *instance, const char *ref, const char *log_path,
                      size_t log_max, provider_event_cb cb, void *ud)
{
        struct kube *k = p->ctx;
        char kname[KUBEOBJ_NAME_MAX + 1];
        const struct kjob *jb = NULL;
        struct kinst *i;
        int r;

        i = find(k, instance);
        if (i && i->st != K_EXITED)
                return -EEXIST;
        if (kubeobj_name(instance, kname, sizeof(kname)) < 0)
                return -EINVAL;
        /* An instance that ended is known only to cleanup() now. */
        if (i)
                inst_free(i);
        for (size_t x = 0; x < k->njobs; x++)
                if (strcmp(k->jobs[x].name, kname) == 0 && strcmp(k->jobs[x].instance, instance) == 0 &&
                    (!ref || !*ref || strcmp(k->jobs[x].uid, ref) == 0))
                        jb = &k->jobs[x];
        if (k->jobs_known && !jb)
                return -ESRCH;
        if (jb && !jb->finished && k->secrets_known) {
                bool has = false;
                for (size_t x = 0; x < k->nsecrets; x++)
                        has = has || strcmp(k->secrets[x].name, kname) == 0;
                if (!has) {
                        /* Its token never reached the cluster: its pod can
                         * never start. Gone, and the core starts another. */
                        job_delete(k, kname, 0);
                        return -ESRCH;
                }
        }
        if (!(i = inst_new(k, instance, cb, ud)))
                return -ENOMEM;
        i->adopted = true;
        i->st = K_PENDING;
        /* The pod's log holds everything since its start: it is fetched
         * again whole into the instance log (rewritten, not appended). */
        i->log_max = log_path ? log_max : 0;
        if (log_path && *log_path && !(i->log_path = strdup(log_path))) {
                inst_free(i);
                return -ENOMEM;
        }
        snprintf(i->uid, sizeof(i->uid), "%s", jb ? jb->uid : ref ? ref : "");
        r = adopt_check_start(i);
        if (r < 0) {
                inst_free(i);
                return r;
        }
        return 0;
}

/* The pods of an adopted worker, asked once: what the watch cannot tell
 * about a pod that changes no more. */
static int adopt_check_start(struct kinst *i)
{
        struct kube *k = i->k;
        char path[512];
        int r = 0;

        snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods?labelSelector=" KUBEOBJ_LABEL_INSTANCE "%%3D%s",
                 k->ns, i->kname);
        i->reqc = kcall_start(k, "GET", path, NULL, 0, false, on_adopt_pods, i, &r);
        return i->reqc ? 0 : r < 0 ? r : -ENOMEM;
}

static void adopt_check(struct kinst *i)
{
        if (adopt_check_start(i) < 0 && !i->adopt_retry)
                i->adopt_retry = loop_timer_add(i->k->loop, BACKOFF_MAX_MS, on_adopt_retry, i);
}

/* ---- init and done ----------------------------------------------------------- */

struct sync_list {
        bool done;
        bool secrets;                   /* listing Secrets, not Jobs */
        int err;
};

/* Zeroes every string under each item's "data": a Secret listing holds
 * runner tokens, and jansson frees its strings without wiping them. */
static void wipe_secret_data(json_t *items)
{
        size_t x;
        json_t *it, *v;
        const char *key;

        json_array_foreach(items, x, it) {
                json_object_foreach(json_object_get(it, "data"), key, v) {
                        const char *sv = json_string_value(v);
                        if (sv)
                                explicit_bzero((char *)sv, json_string_length(v));
                }
        }
}

static void secrets_store(struct kube *k, const json_t *items)
{
        size_t n = json_array_size(items), x, o = 0;
        struct kname_rec *v = calloc(n ? n : 1, sizeof(*v));
        json_t *it;

        if (!v)
                return;
        json_array_foreach(items, x, it) {
                const char *nm = json_string_value(json_object_get(json_object_get(it, "metadata"), "name"));
                if (nm && strlen(nm) <= KUBEOBJ_NAME_MAX)
                        memcpy(v[o++].name, nm, strlen(nm) + 1);
        }
        free(k->secrets);
        k->secrets = v;
        k->nsecrets = o;
        k->secrets_known = true;
}

static void on_sync_list(struct kube *k, void *ud, int err, long status, const char *body, size_t len)
{
        struct sync_list *s = ud;
        json_t *j, *items;

        s->done = true;
        s->err = err < 0 ? err : status == 200 ? 0 : -EIO;
        if (s->err)
                return;
        j = json_loadb(body, len, 0, NULL);
        items = json_object_get(j, "items");
        if (json_is_array(items)) {
                if (s->secrets) {
                        secrets_store(k, items);
                        wipe_secret_data(items);
                } else {
                        jobs_store(k, items);
                }
        }
        json_decref(j);
}

/* The Jobs of the namespace, once, before init() returns: adopt() answers
 * at once, as the contract asks, from what exists. On a private loop, so
 * nothing of the daemon's runs meanwhile. Without an answer adopt() takes
 * every ref on trust and the watch reports the gone ones as exited. */
static void sync_list_jobs(struct kube *k)
{
        struct loop *main_loop = k->loop, *l = NULL;
        struct hmulti *main_hm = k->hm, *hm = NULL;
        struct sync_list s = { 0 };
        char path[512];
        int r;

        if (loop_new(&l) < 0)
                return;
        if (hmulti_new(l, NULL, &hm) < 0)
                goto out;
        k->loop = l;
        k->hm = hm;
        /* Jobs, then Secrets: a Job whose Secret was never made (the daemon
         * died between the two POSTs) can never start. */
        for (int pass = 0; pass < 2; pass++) {
                snprintf(path, sizeof(path), "/%s/namespaces/%s/%s?labelSelector=" KUBEOBJ_LABEL_MANAGED "%%3Dtrue",
                         pass ? "api/v1" : "apis/batch/v1", k->ns, pass ? "secrets" : "jobs");
                s = (struct sync_list){ .secrets = pass == 1 };
                struct kcall *c = kcall_start(k, "GET", path, NULL, 0, false, on_sync_list, &s, &r);
                while (c && !s.done && loop_run_once(l, 100) == 0)
                        ;
                if (c && !s.done)
                        kcall_cancel(c);
                if (!s.done || s.err)
                        break;
        }
out:
        k->loop = main_loop;
        k->hm = main_hm;
        hmulti_free(hm);
        loop_free(l);
}

static void kube_done(struct provider *p)
{
        struct kube *k = p->ctx;

        if (!k)
                return;
        while (k->insts)
                inst_free(k->insts);
        while (k->calls)
                kcall_cancel(k->calls);
        if (k->wtimer)
                loop_timer_cancel(k->loop, k->wtimer);
        hmulti_free(k->hm);
        kubeauth_free(k->auth);
        free(k->ns);
        free((char *)k->kp.namespace);
        free((char *)k->kp.image);
        free((char *)k->kp.service_account);
        free((char *)k->kp.resources);
        free((char *)k->kp.node_selector);
        free((char *)k->kp.tolerations);
        free((char *)k->kp.pod_template);
        free(k->jobs);
        free(k->secrets);
        free(k->line);
        free(k);
        p->ctx = NULL;
}

static char *dup_or_null(const char *s, bool *oom)
{
        char *d;

        if (!s)
                return NULL;
        if (!(d = strdup(s)))
                *oom = true;
        return d;
}

static int kube_init(struct provider *p, struct loop *loop, const struct config_provider *cfg)
{
        const struct config_provider_kubernetes *kc = cfg ? &cfg->kubernetes : NULL;
        struct kube *k = NULL;
        char err[PROVIDER_ERROR_MAX];
        bool oom = false;
        int r;

        provider_init_common(p, cfg);
        p->ctx = NULL;
        if (!kc || !kc->image) {
                perr(p, "a kubernetes provider needs an image");
                return -EINVAL;
        }
        if (!(k = calloc(1, sizeof(*k))))
                return -ENOMEM;
        k->p = p;
        k->loop = loop;
        if (kc->kubeconfig_path || kc->kubeconfig) {
                r = kubeauth_load_kubeconfig(kc->kubeconfig_path ? kc->kubeconfig_path : kc->kubeconfig, kc->context,
                                             &k->auth, err, sizeof(err));
        } else {
                /* For tests and unusual mounts of the service account. */
                const char *dir = getenv("FORGESCALE_KUBE_SA_DIR");
                r = kubeauth_load_incluster(dir && *dir ? dir : NULL, &k->auth, err, sizeof(err));
        }
        if (r < 0) {
                perr(p, "%s", err);
                goto fail;
        }
        k->ns = dup_or_null(kc->namespace ? kc->namespace : k->auth->namespace ? k->auth->namespace : "default",
                            &oom);
        k->kp.namespace = dup_or_null(k->ns, &oom);
        k->kp.image = dup_or_null(kc->image, &oom);
        k->kp.service_account = dup_or_null(kc->service_account, &oom);
        k->kp.resources = dup_or_null(kc->resources, &oom);
        k->kp.node_selector = dup_or_null(kc->node_selector, &oom);
        k->kp.tolerations = dup_or_null(kc->tolerations, &oom);
        k->kp.pod_template = dup_or_null(kc->pod_template, &oom);
        k->kp.ttl_after_finished_s = (kc->ttl_after_finished_ms + 999) / 1000;
        k->kp.active_deadline_s = (kc->active_deadline_ms + 999) / 1000;
        if (oom) {
                r = -ENOMEM;
                goto fail;
        }
        r = hmulti_new(loop, NULL, &k->hm);
        if (r < 0)
                goto fail;
        /* One long-lived slot per running worker's log, and the watch. */
        struct hmulti_origin_opts oo = { .max_transfers = 16, .max_long_lived = 100000 };
        hmulti_origin_config(k->hm, k->auth->server, &oo);
        p->ctx = k;
        sync_list_jobs(k);
        watch_list(k);
        return 0;
fail:
        p->ctx = k;
        kube_done(p);
        return r;
}

const struct provider_ops provider_kubernetes_ops = {
        .type = "kubernetes",
        .caps = PROVIDER_CAP_ADOPT | PROVIDER_CAP_LIST,
        .init = kube_init,
        .done = kube_done,
        .token_path = kube_token_path,
        .create = kube_create,
        .stop = kube_stop,
        .adopt = kube_adopt,
        .list = kube_list,
        .ref = kube_ref,
        .cleanup = kube_cleanup,
};
