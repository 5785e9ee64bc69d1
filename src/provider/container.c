/* container.c: the `container` provider: workers are containers made through
 * the Docker Engine API on a unix socket (Docker, `podman system service`).
 * Owns the calls on the loop (hmulti), the read-only token bind, the worker
 * log (framed stream, demultiplexed, capped), TERM-then-KILL, the exit rule
 * and the failure categories. Never touches a container without this
 * provider's labels, never blocks except in adopt(), never logs. */
#include "provider/provider.h"
#include "provider/dockerapi.h"
#include "config/config.h"
#include "http/hmulti.h"
#include "loop/loop.h"
#include "util/httpc.h"
#include "util/strutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The worker reads its token here, whatever the instance: the file is
 * bind-mounted read-only from <workdir>/token. */
#define CTR_TOKEN_PATH "/run/forgescale/token"
#define TOKEN_NAME "token"
#define LABEL_LOG "forgescale.log"
#define LABEL_LOG_MAX "forgescale.log_max"

#define SHORT_TIMEOUT_MS 15000L         /* inspect, kill, delete, list */
#define CREATE_TIMEOUT_MS 60000L        /* create and start: seconds under load */
#define PULL_TIMEOUT_MS 60000L          /* until the pull's headers */
#define WATCH_TIMEOUT_MS (7L * 24 * 3600 * 1000) /* wait/logs: until their headers;
                                                  * some engines send none before the end */
#define ADOPT_TIMEOUT_MS 5000L
#define RETRY_MIN_MS 500
#define RETRY_MAX_MS 30000
#define KILL_RETRY_MS 1000              /* a kill the engine did not take, doubling */
#define LOG_GRACE_MS 3000               /* for the log stream's end after the exit */
#define PULL_MAX_RESPONSE (8u << 20)
#define LIST_MAX_RESPONSE (32u << 20)
#define DETAIL_MAX 384
/* The ref is the id's first 32 hex digits (128 bits): an unambiguous
 * prefix, which the engine takes wherever it takes an id, short enough
 * for every ref buffer. */
#define REF_LEN 32
#define URL_MAX 1024

enum phase {
        PH_IMAGE,               /* is the image there? */
        PH_PULL,
        PH_CREATE,
        PH_START,
        PH_RUN,                 /* started (or adopted): wait and logs follow */
        PH_INSPECT,             /* exited: reading its state */
        PH_DRAIN,               /* the rest of the log stream */
        PH_DELETE,              /* removing the container, then the event */
};

struct ctr;

struct cinst {
        struct cinst *next, *prev;
        struct ctr *c;
        char *name;
        char *pool;
        char id[DOCKERAPI_ID_MAX];
        enum phase phase;
        provider_event_cb cb;
        void *ud;
        bool adopted;
        bool stop_requested;    /* before the start: never start it */
        bool waited;
        bool logs_done;
        char *body;             /* the create body, until the create call copied it */
        unsigned sent;          /* bits (1u << signal) the provider sent */
        struct hmulti_xfer *xfer;       /* the short call in flight */
        struct hmulti_xfer *wait_xfer;
        struct hmulti_xfer *log_xfer;
        struct loop_timer *kill_timer;
        int64_t kill_deadline;
        struct loop_timer *wait_timer;  /* retry of a lost wait */
        struct loop_timer *log_timer;   /* retry of a lost log stream, or the drain's end */
        int wait_backoff, log_backoff, kill_backoff;
        /* The worker log. */
        int log_fd;
        size_t log_len, log_max;
        time_t log_last;                /* last write, for a resumed stream's since= */
        struct dockerapi_demux demux;
        /* The outcome, delivered once the container is deleted. */
        enum provider_event_type outcome;
        struct provider_exit exit;
        enum provider_failure failure;
        int error;
        char detail[DETAIL_MAX];
};

struct list_req {
        struct list_req *next, *prev;
        struct ctr *c;
        char *prefix;
        provider_list_cb cb;
        void *ud;
        struct hmulti_xfer *xfer;
};

/* A call nobody waits for (cleanup's delete): kept to cancel at done(). */
struct bg_req {
        struct bg_req *next, *prev;
        struct ctr *c;
        struct hmulti_xfer *xfer;
        char *instance;                 /* whose container may be deleted */
};

struct ctr {
        struct provider *p;
        struct loop *loop;
        struct hmulti *hm;
        char *socket;
        char origin[HMULTI_UNIX_PATH_MAX + 8];
        char *image;
        enum config_container_pull pull;
        char *network;
        int64_t nano_cpus, memory, pids_limit;
        struct dockerapi_ulimit *ulimits;
        size_t n_ulimits;
        char *runtime;
        char **mounts;                  /* NULL-terminated */
        char **env;                     /* NULL-terminated "K=V" */
        char *user;
        bool token_chown;               /* user is numeric: hand the token over */
        uid_t token_uid;
        gid_t token_gid;
        struct cinst *insts;
        size_t n;
        struct list_req *lists;
        struct bg_req *bgs;
};

/* ---- small helpers ---------------------------------------------------------- */

__attribute__((format(printf, 2, 3)))
static void set_error(struct provider *p, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(p->error, sizeof(p->error), fmt, ap);
        va_end(ap);
}

__attribute__((format(printf, 2, 3)))
static void set_detail(struct cinst *i, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(i->detail, sizeof(i->detail), fmt, ap);
        va_end(ap);
}

static struct cinst *inst_find(struct ctr *c, const char *name)
{
        for (struct cinst *i = c->insts; i; i = i->next)
                if (strcmp(i->name, name) == 0)
                        return i;
        return NULL;
}

static void strv_free(char **v)
{
        for (size_t k = 0; v && v[k]; k++)
                free(v[k]);
        free(v);
}

static const char *errtext(int err)
{
        switch (err) {
        case -ECONNREFUSED: return "connection refused or no socket";
        case -ETIMEDOUT: return "timed out";
        case -ECONNRESET: return "connection reset";
        case -EMSGSIZE: return "answer too large";
        default: return strerror(err < 0 ? -err : err);
        }
}

static int failure_errno(enum provider_failure f, int err)
{
        switch (f) {
        case PROVIDER_FAIL_UNREACHABLE: return err ? err : -ECONNREFUSED;
        case PROVIDER_FAIL_IMAGE: return -ENOENT;
        case PROVIDER_FAIL_QUOTA: return -EDQUOT;
        case PROVIDER_FAIL_REJECTED: return -EINVAL;
        default: return -EIO;
        }
}

/* ---- requests --------------------------------------------------------------- */

struct call {
        const char *method;
        const char *body;               /* JSON, or NULL */
        long timeout_ms;
        bool long_lived;
        size_t max_response;
        hmulti_data_cb on_data;
};

/* path starts with '/', after the API version. */
static int start_call(struct ctr *c, const struct call *k, const char *path, hmulti_cb cb,
                      void *ud, struct hmulti_xfer **ret)
{
        static const char *const json_hdr[] = { "Content-Type: application/json", NULL };
        char url[URL_MAX];
        int len = snprintf(url, sizeof(url), "http://forgescale/" DOCKERAPI_VERSION "%s", path);

        if (len < 0 || (size_t)len >= sizeof(url))
                return -ENAMETOOLONG;
        struct hmulti_req req = {
                .method = k->method,
                .url = url,
                .headers = k->body ? json_hdr : NULL,
                .body = k->body,
                .body_len = k->body ? strlen(k->body) : 0,
                .timeout_ms = k->timeout_ms,
                .max_response = k->max_response,
                .long_lived = k->long_lived,
                .unix_socket = c->socket,
                .on_data = k->on_data,
        };
        return hmulti_start(c->hm, &req, cb, ud, ret);
}

static int id_path(char *buf, size_t n, const char *id_or_name, const char *fmt_tail)
{
        char esc[DOCKERAPI_NAME_MAX * 3 + 1];
        int r = dockerapi_escape(id_or_name, esc, sizeof(esc));

        if (r < 0)
                return r;
        int len = snprintf(buf, n, "/containers/%s%s", esc, fmt_tail);
        return len < 0 || (size_t)len >= n ? -ENAMETOOLONG : 0;
}

/* ---- the end of an instance ----------------------------------------------------- */

static void inst_unlink(struct ctr *c, struct cinst *i)
{
        if (i->prev)
                i->prev->next = i->next;
        else
                c->insts = i->next;
        if (i->next)
                i->next->prev = i->prev;
        i->next = i->prev = NULL;
        c->n--;
}

/* Stops every call and timer of i and frees it (already unlinked). */
static void inst_free(struct cinst *i)
{
        struct ctr *c;

        if (!i)
                return;
        c = i->c;
        hmulti_cancel(i->xfer);
        hmulti_cancel(i->wait_xfer);
        hmulti_cancel(i->log_xfer);
        loop_timer_cancel(c->loop, i->kill_timer);
        loop_timer_cancel(c->loop, i->wait_timer);
        loop_timer_cancel(c->loop, i->log_timer);
        if (i->log_fd >= 0)
                close(i->log_fd);
        free(i->body);
        free(i->name);
        free(i->pool);
        free(i);
}

/* Delivers the outcome and forgets the instance; unlinked before the
 * callback so it may create a new instance of the same name. */
static void deliver(struct cinst *i)
{
        struct ctr *c = i->c;
        struct provider_event ev = {
                .type = i->outcome,
                .instance = i->name,
                .ref = i->id[0] ? i->id : NULL,
                .exit = i->exit,
                .error = i->error,
                .failure = i->failure,
                .detail = i->detail[0] ? i->detail : NULL,
        };

        hmulti_cancel(i->xfer);
        i->xfer = NULL;
        inst_unlink(c, i);
        i->cb(i->ud, &ev);
        inst_free(i);
}

static void on_deleted(void *ud, int err, long status, const char *body, size_t len,
                       long long total)
{
        struct cinst *i = ud;

        i->xfer = NULL;
        /* A container the delete did not remove is found by the orphan
         * sweep (list()) later; the outcome stands either way. */
        deliver(i);
}

/* The container is removed before the outcome is delivered: the log file
 * holds its output, and the engine keeps nothing forgescale must clean. */
static void remove_then_deliver(struct cinst *i)
{
        char path[256];

        i->phase = PH_DELETE;
        hmulti_cancel(i->wait_xfer);
        hmulti_cancel(i->log_xfer);
        i->wait_xfer = i->log_xfer = NULL;
        if (!i->id[0] || id_path(path, sizeof(path), i->id, "?force=true") < 0) {
                deliver(i);
                return;
        }
        struct call k = { .method = "DELETE", .timeout_ms = SHORT_TIMEOUT_MS };
        if (start_call(i->c, &k, path, on_deleted, i, &i->xfer) < 0)
                deliver(i);
}

/* A start that did not happen: FAILED with the category and the engine's
 * message, after removing whatever was created. */
static void fail(struct cinst *i, int err, long status, const char *body, size_t len,
                 const char *what)
{
        char msg[256];

        if (err)
                snprintf(msg, sizeof(msg), "%s", errtext(err));
        else
                dockerapi_error_message(body, len, msg, sizeof(msg));
        i->outcome = PROVIDER_EV_FAILED;
        i->failure = dockerapi_classify(err, status, msg);
        i->error = failure_errno(i->failure, err);
        if (err)
                set_detail(i, "the container engine at %s did not answer while %s (%s); is it running?",
                           i->c->socket, what, msg);
        else if (i->failure == PROVIDER_FAIL_IMAGE)
                set_detail(i, "image %s is not available while %s (HTTP %ld): %s", i->c->image, what,
                           status, msg);
        else
                set_detail(i, "the container engine refused %s (HTTP %ld): %s", what, status, msg);
        remove_then_deliver(i);
}

/* ---- exit --------------------------------------------------------------------- */

/* The exit rule is dockerapi_exit()'s (docs/providers.md). */
static void set_exit(struct cinst *i, const struct dockerapi_inspect *in)
{
        bool oom;

        i->outcome = PROVIDER_EV_EXITED;
        dockerapi_exit(in, i->sent, &i->exit, &oom);
        if (oom) {
                i->failure = PROVIDER_FAIL_QUOTA;
                set_detail(i, "OOMKilled: the container went over its memory limit (%lld bytes)",
                           (long long)i->c->memory);
        } else if (in->error[0]) {
                set_detail(i, "the container engine says: %s", in->error);
        }
}

static void on_drain_timer(struct loop *l, void *ud)
{
        struct cinst *i = ud;

        i->log_timer = NULL;
        remove_then_deliver(i);
}

/* Exited and inspected: the output still in the stream reaches the log
 * first (bounded by LOG_GRACE_MS), then the container goes. */
static void drain_then_finish(struct cinst *i)
{
        struct ctr *c = i->c;

        i->phase = PH_DRAIN;
        loop_timer_cancel(c->loop, i->kill_timer);
        i->kill_timer = NULL;
        loop_timer_cancel(c->loop, i->wait_timer);
        i->wait_timer = NULL;
        loop_timer_cancel(c->loop, i->log_timer);
        i->log_timer = NULL;
        if (i->logs_done || !i->log_xfer) {
                remove_then_deliver(i);
                return;
        }
        i->log_timer = loop_timer_add(c->loop, LOG_GRACE_MS, on_drain_timer, i);
        if (!i->log_timer)
                remove_then_deliver(i);
}

static void on_inspected(void *ud, int err, long status, const char *body, size_t len,
                         long long total)
{
        struct cinst *i = ud;
        struct dockerapi_inspect in;

        i->xfer = NULL;
        if (err == 0 && status == 200 && dockerapi_parse_inspect(body, len, &in) == 0) {
                set_exit(i, &in);
        } else {
                i->outcome = PROVIDER_EV_EXITED;
                i->exit = (struct provider_exit){ .kind = PROVIDER_EXIT_UNKNOWN };
        }
        drain_then_finish(i);
}

static void inspect_exited(struct cinst *i)
{
        char path[256];
        struct call k = { .method = "GET", .timeout_ms = SHORT_TIMEOUT_MS };

        i->phase = PH_INSPECT;
        hmulti_cancel(i->xfer);         /* a kill in flight answers nothing useful now */
        i->xfer = NULL;
        if (id_path(path, sizeof(path), i->id, "/json") < 0 ||
            start_call(i->c, &k, path, on_inspected, i, &i->xfer) < 0) {
                i->outcome = PROVIDER_EV_EXITED;
                i->exit = (struct provider_exit){ .kind = PROVIDER_EXIT_UNKNOWN };
                drain_then_finish(i);
        }
}

/* ---- wait and logs ---------------------------------------------------------------- */

static void start_wait(struct cinst *i);
static void start_logs(struct cinst *i);

static int next_backoff(int *b)
{
        int ms = *b ? *b : RETRY_MIN_MS;

        *b = ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : ms * 2;
        return ms;
}

static void on_wait_timer(struct loop *l, void *ud)
{
        struct cinst *i = ud;

        i->wait_timer = NULL;
        start_wait(i);
}

static void retry_wait(struct cinst *i)
{
        i->wait_timer = loop_timer_add(i->c->loop, next_backoff(&i->wait_backoff), on_wait_timer, i);
        if (!i->wait_timer) {
                i->outcome = PROVIDER_EV_EXITED;
                i->exit = (struct provider_exit){ .kind = PROVIDER_EXIT_UNKNOWN };
                drain_then_finish(i);
        }
}

static void on_waited(void *ud, int err, long status, const char *body, size_t len,
                      long long total)
{
        struct cinst *i = ud;

        i->wait_xfer = NULL;
        if (err) {
                /* The engine went away (restart, socket gone): the
                 * container may well still run. Ask again, slower and
                 * slower, until the engine answers. */
                retry_wait(i);
                return;
        }
        if (status == 404) {
                i->outcome = PROVIDER_EV_EXITED;
                i->exit = (struct provider_exit){ .kind = PROVIDER_EXIT_UNKNOWN };
                set_detail(i, "the container was removed behind forgescale's back");
                i->waited = true;
                drain_then_finish(i);
                return;
        }
        if (status != 200) {
                retry_wait(i);
                return;
        }
        i->wait_backoff = 0;
        i->waited = true;
        inspect_exited(i);
}

static void start_wait(struct cinst *i)
{
        char path[256];
        struct call k = { .method = "POST", .timeout_ms = WATCH_TIMEOUT_MS, .long_lived = true };

        if (id_path(path, sizeof(path), i->id, "/wait") < 0 ||
            start_call(i->c, &k, path, on_waited, i, &i->wait_xfer) < 0)
                retry_wait(i);
}

static int write_log(void *ud, int stream, const void *buf, size_t n)
{
        struct cinst *i = ud;

        if (i->log_fd < 0 || i->log_len >= i->log_max)
                return 0;
        if (n > i->log_max - i->log_len)
                n = i->log_max - i->log_len;
        while (n) {
                ssize_t w = write(i->log_fd, buf, n);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0)
                        return 0;       /* a full disk loses output, never the worker */
                i->log_len += (size_t)w;
                buf = (const char *)buf + w;
                n -= (size_t)w;
        }
        i->log_last = time(NULL);
        return 0;
}

static int on_log_data(void *ud, const void *buf, size_t n)
{
        struct cinst *i = ud;

        if (i->log_len >= i->log_max)
                return 0;               /* past the cap: read and drop */
        return dockerapi_demux_feed(&i->demux, buf, n, write_log, i);
}

static void on_log_timer(struct loop *l, void *ud)
{
        struct cinst *i = ud;

        i->log_timer = NULL;
        start_logs(i);
}

static void on_logs_end(void *ud, int err, long status, const char *body, size_t len,
                        long long total)
{
        struct cinst *i = ud;

        i->log_xfer = NULL;
        if (err && err != -EPROTO && i->phase == PH_RUN) {
                /* Lost with the engine: follow again from the last write. */
                i->log_timer = loop_timer_add(i->c->loop, next_backoff(&i->log_backoff),
                                              on_log_timer, i);
                if (i->log_timer)
                        return;
        }
        i->logs_done = true;
        if (i->phase == PH_DRAIN) {
                loop_timer_cancel(i->c->loop, i->log_timer);
                i->log_timer = NULL;
                remove_then_deliver(i);
        }
}

static void start_logs(struct cinst *i)
{
        char path[256], tail[96];
        struct call k = { .method = "GET", .timeout_ms = WATCH_TIMEOUT_MS, .long_lived = true,
                          .on_data = on_log_data };

        memset(&i->demux, 0, sizeof(i->demux));
        if (i->log_last > 0)
                snprintf(tail, sizeof(tail), "/logs?follow=1&stdout=1&stderr=1&since=%lld",
                         (long long)i->log_last);
        else
                snprintf(tail, sizeof(tail), "/logs?follow=1&stdout=1&stderr=1");
        if (id_path(path, sizeof(path), i->id, tail) < 0 ||
            start_call(i->c, &k, path, on_logs_end, i, &i->log_xfer) < 0)
                i->logs_done = true;
}

static void watch(struct cinst *i)
{
        i->phase = PH_RUN;
        start_wait(i);
        start_logs(i);
}

/* ---- creating ------------------------------------------------------------------------ */

static void stopped_before_start(struct cinst *i)
{
        i->outcome = PROVIDER_EV_EXITED;
        i->exit = (struct provider_exit){ .kind = PROVIDER_EXIT_SIGNAL, .signal = SIGTERM };
        set_detail(i, "stopped before its container started");
        remove_then_deliver(i);
}

static int begin_stop(struct cinst *i);

static void on_started(void *ud, int err, long status, const char *body, size_t len,
                       long long total)
{
        struct cinst *i = ud;

        i->xfer = NULL;
        if (err || (status != 204 && status != 304)) {
                fail(i, err, status, body, len, "starting the container");
                return;
        }
        struct provider_event ev = {
                .type = PROVIDER_EV_STARTED, .instance = i->name, .ref = i->id,
        };
        watch(i);
        i->cb(i->ud, &ev);
        /* A stop() that came while the start was on its way. */
        if (i->stop_requested && i->phase == PH_RUN)
                (void)begin_stop(i);
}

static void do_start(struct cinst *i)
{
        char path[256];
        struct call k = { .method = "POST", .timeout_ms = CREATE_TIMEOUT_MS };

        if (i->stop_requested) {
                stopped_before_start(i);
                return;
        }
        i->phase = PH_START;
        if (id_path(path, sizeof(path), i->id, "/start") < 0 ||
            start_call(i->c, &k, path, on_started, i, &i->xfer) < 0)
                fail(i, -ENOMEM, 0, NULL, 0, "starting the container");
}

static void on_created(void *ud, int err, long status, const char *body, size_t len,
                       long long total)
{
        struct cinst *i = ud;

        i->xfer = NULL;
        if (err || status != 201) {
                fail(i, err, status, body, len, "creating the container");
                return;
        }
        if (dockerapi_parse_created(body, len, i->id) < 0) {
                i->id[0] = '\0';
                fail(i, 0, 502, "{\"message\":\"the create answer has no container id\"}", 52,
                     "creating the container");
                return;
        }
        i->id[REF_LEN] = '\0';
        do_start(i);
}

/* The create body for spec; *ret is the caller's to free. */
static int build_body(struct ctr *c, const struct provider_spec *spec, char **ret)
{
        char tokbind[PATH_MAX + 64], logmax[32];
        const char **binds = NULL;
        size_t nm = 0, nb = 0;
        int r;

        for (; c->mounts && c->mounts[nm]; nm++)
                ;
        binds = calloc(nm + 2, sizeof(*binds));
        if (!binds)
                return -ENOMEM;
        if (spec->token) {
                int len = snprintf(tokbind, sizeof(tokbind), "%s/" TOKEN_NAME ":" CTR_TOKEN_PATH ":ro",
                                   spec->workdir);
                if (len < 0 || (size_t)len >= sizeof(tokbind)) {
                        free(binds);
                        return -ENAMETOOLONG;
                }
                binds[nb++] = tokbind;
        }
        for (size_t k = 0; k < nm; k++)
                binds[nb++] = c->mounts[k];
        binds[nb] = NULL;
        snprintf(logmax, sizeof(logmax), "%zu", spec->log_max);
        struct dockerapi_create d = {
                .image = c->image,
                .instance = spec->instance,
                .pool = spec->pool,
                .argv = spec->argv,
                .env = spec->env,
                .env_extra = (const char *const *)c->env,
                .binds = binds,
                .network = c->network,
                .nano_cpus = c->nano_cpus,
                .memory = c->memory,
                .pids_limit = c->pids_limit,
                .ulimits = c->ulimits,
                .n_ulimits = c->n_ulimits,
                .runtime = c->runtime,
                .user = c->user,
                .init = true,
                .log_path = spec->log_path,
                .log_max = logmax,
        };
        r = dockerapi_create_body(&d, ret);
        free(binds);
        return r;
}

static void on_pulled(void *ud, int err, long status, const char *body, size_t len,
                      long long total);

static void do_create(struct cinst *i)
{
        char path[256], esc[DOCKERAPI_NAME_MAX * 3 + 1];
        struct call k = { .method = "POST", .body = i->body, .timeout_ms = CREATE_TIMEOUT_MS };
        int r;

        if (i->stop_requested) {
                stopped_before_start(i);
                return;
        }
        i->phase = PH_CREATE;
        r = dockerapi_escape(i->name, esc, sizeof(esc));
        if (r == 0 && snprintf(path, sizeof(path), "/containers/create?name=%s", esc) >= (int)sizeof(path))
                r = -ENAMETOOLONG;
        if (r == 0)
                r = start_call(i->c, &k, path, on_created, i, &i->xfer);
        free(i->body);
        i->body = NULL;
        if (r < 0)
                fail(i, r, 0, NULL, 0, "creating the container");
}

static void start_pull(struct cinst *i)
{
        char path[URL_MAX / 2], esc[700];
        struct call k = { .method = "POST", .timeout_ms = PULL_TIMEOUT_MS, .long_lived = true,
                          .max_response = PULL_MAX_RESPONSE };

        if (i->stop_requested) {
                stopped_before_start(i);
                return;
        }
        i->phase = PH_PULL;
        if (dockerapi_escape(i->c->image, esc, sizeof(esc)) < 0 ||
            snprintf(path, sizeof(path), "/images/create?fromImage=%s", esc) >= (int)sizeof(path) ||
            start_call(i->c, &k, path, on_pulled, i, &i->xfer) < 0)
                fail(i, -ENOMEM, 0, NULL, 0, "pulling the image");
}

static void on_image(void *ud, int err, long status, const char *body, size_t len,
                     long long total)
{
        struct cinst *i = ud;

        i->xfer = NULL;
        if (!err && status == 200) {
                do_create(i);
                return;
        }
        if (!err && status == 404) {
                start_pull(i);
                return;
        }
        fail(i, err, status, body, len, "looking the image up");
}

static void on_pulled(void *ud, int err, long status, const char *body, size_t len,
                      long long total)
{
        struct cinst *i = ud;
        char msg[256];

        i->xfer = NULL;
        if (err) {
                fail(i, err, status, body, len, "pulling the image");
                return;
        }
        /* A pull answers 200 and tells its failure inside the stream. */
        if (status == 200 && dockerapi_pull_error(body, len, msg, sizeof(msg))) {
                i->outcome = PROVIDER_EV_FAILED;
                i->failure = PROVIDER_FAIL_IMAGE;
                i->error = -ENOENT;
                set_detail(i, "image %s cannot be pulled: %s", i->c->image, msg);
                remove_then_deliver(i);
                return;
        }
        if (status != 200) {
                dockerapi_error_message(body, len, msg, sizeof(msg));
                i->outcome = PROVIDER_EV_FAILED;
                i->failure = status >= 500 || status == 404 || status == 403 || status == 401
                                     ? PROVIDER_FAIL_IMAGE : dockerapi_classify(0, status, msg);
                i->error = failure_errno(i->failure, 0);
                set_detail(i, "image %s cannot be pulled (HTTP %ld): %s", i->c->image, status, msg);
                remove_then_deliver(i);
                return;
        }
        do_create(i);
}

/* ---- the token and the log ------------------------------------------------------- */

static int write_all(int fd, const char *p, size_t n)
{
        while (n) {
                ssize_t w = write(fd, p, n);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w < 0)
                        return -errno;
                p += w;
                n -= (size_t)w;
        }
        return 0;
}

/* A new 0600 file (never through an existing name), handed to the
 * container's numeric uid when `user` names one: the container's user
 * reads it, nobody else on the host (the folder is 0700). */
static int place_token(struct provider *p, const struct provider_spec *spec)
{
        struct ctr *c = p->ctx;
        char path[PATH_MAX];
        int fd, r;

        if (snprintf(path, sizeof(path), "%s/" TOKEN_NAME, spec->workdir) >= (int)sizeof(path))
                return -ENAMETOOLONG;
        if (unlink(path) < 0 && errno != ENOENT) {
                r = -errno;
                set_error(p, "cannot replace the token file in %s", spec->workdir);
                return r;
        }
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) {
                r = -errno;
                set_error(p, "cannot create the token file in %s", spec->workdir);
                return r;
        }
        r = 0;
        if (c->token_chown && fchown(fd, c->token_uid, c->token_gid) < 0) {
                r = -errno;
                set_error(p, "cannot hand the token file to uid %u%s", (unsigned)c->token_uid,
                          r == -EPERM ? ": the daemon needs root or CAP_CHOWN" : "");
        }
        if (r == 0 && (r = write_all(fd, spec->token, spec->token_len)) < 0)
                set_error(p, "cannot write the token file in %s", spec->workdir);
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r < 0)
                unlink(path);
        return r;
}

/* A new log for a new worker: what a previous worker left under that name
 * is never opened. */
static int open_new_log(struct provider *p, const char *path)
{
        int fd;

        if (unlink(path) < 0 && errno != ENOENT) {
                int r = -errno;
                set_error(p, "cannot replace the worker log %s", path);
                return r;
        }
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) {
                int r = -errno;
                set_error(p, "cannot create the worker log %s", path);
                return r;
        }
        return fd;
}

/* ---- operations ------------------------------------------------------------------- */

static struct cinst *inst_new(struct ctr *c, const char *name, const char *pool,
                              provider_event_cb cb, void *ud)
{
        struct cinst *i = calloc(1, sizeof(*i));

        if (!i)
                return NULL;
        i->c = c;
        i->log_fd = -1;
        i->name = strdup(name);
        i->pool = strdup(pool ? pool : "");
        if (!i->name || !i->pool) {
                free(i->name);
                free(i->pool);
                free(i);
                return NULL;
        }
        i->cb = cb;
        i->ud = ud;
        return i;
}

static void inst_insert(struct ctr *c, struct cinst *i)
{
        i->prev = NULL;
        i->next = c->insts;
        if (c->insts)
                c->insts->prev = i;
        c->insts = i;
        c->n++;
}

/* The engine must at least have its socket there: a create that cannot
 * even be sent fails at once, with nothing left behind. */
static int socket_present(struct provider *p)
{
        struct ctr *c = p->ctx;
        struct stat st;

        if (stat(c->socket, &st) == 0 && S_ISSOCK(st.st_mode))
                return 0;
        p->failure = PROVIDER_FAIL_UNREACHABLE;
        set_error(p, "the container engine's socket %s is not there; is the engine running?", c->socket);
        return -ECONNREFUSED;
}

static int ctr_create(struct provider *p, const struct provider_spec *spec,
                      provider_event_cb cb, void *ud)
{
        struct ctr *c = p->ctx;
        struct cinst *i = NULL;
        char path[256];
        bool token_placed = false;
        int r;

        p->error[0] = '\0';
        p->failure = PROVIDER_FAIL_NONE;
        if (!spec || !cb || !spec->instance || !*spec->instance || !spec->argv ||
            !spec->argv[0] || !*spec->argv[0] || !spec->workdir || !spec->log_path ||
            strlen(spec->instance) >= DOCKERAPI_NAME_MAX)
                return -EINVAL;
        if (inst_find(c, spec->instance))
                return -EEXIST;
        if (p->max_instances > 0 && c->n >= (size_t)p->max_instances)
                return -EAGAIN;
        r = socket_present(p);
        if (r < 0)
                return r;
        i = inst_new(c, spec->instance, spec->pool, cb, ud);
        if (!i)
                return -ENOMEM;
        i->log_max = spec->log_max ? spec->log_max : SIZE_MAX;
        r = build_body(c, spec, &i->body);
        if (r < 0)
                goto err;
        if (spec->token) {
                r = place_token(p, spec);
                if (r < 0)
                        goto err;
                token_placed = true;
        }
        r = open_new_log(p, spec->log_path);
        if (r < 0)
                goto err;
        i->log_fd = r;

        if (c->pull == CONFIG_PULL_IF_MISSING) {
                char esc[700];
                struct call k = { .method = "GET", .timeout_ms = SHORT_TIMEOUT_MS };
                i->phase = PH_IMAGE;
                r = dockerapi_escape(c->image, esc, sizeof(esc));
                if (r == 0 && snprintf(path, sizeof(path), "/images/%s/json", esc) >= (int)sizeof(path))
                        r = -ENAMETOOLONG;
                if (r == 0)
                        r = start_call(c, &k, path, on_image, i, &i->xfer);
        } else if (c->pull == CONFIG_PULL_ALWAYS) {
                char esc[700];
                struct call k = { .method = "POST", .timeout_ms = PULL_TIMEOUT_MS, .long_lived = true,
                                  .max_response = PULL_MAX_RESPONSE };
                i->phase = PH_PULL;
                r = dockerapi_escape(c->image, esc, sizeof(esc));
                if (r == 0 && snprintf(path, sizeof(path), "/images/create?fromImage=%s", esc) >= (int)sizeof(path))
                        r = -ENAMETOOLONG;
                if (r == 0)
                        r = start_call(c, &k, path, on_pulled, i, &i->xfer);
        } else {
                char esc[DOCKERAPI_NAME_MAX * 3 + 1];
                struct call k = { .method = "POST", .body = i->body, .timeout_ms = CREATE_TIMEOUT_MS };
                i->phase = PH_CREATE;
                r = dockerapi_escape(i->name, esc, sizeof(esc));
                if (r == 0 && snprintf(path, sizeof(path), "/containers/create?name=%s", esc) >= (int)sizeof(path))
                        r = -ENAMETOOLONG;
                if (r == 0)
                        r = start_call(c, &k, path, on_created, i, &i->xfer);
                if (r == 0) {
                        free(i->body);
                        i->body = NULL;
                }
        }
        if (r < 0) {
                set_error(p, "cannot send a request to the container engine at %s", c->socket);
                goto err;
        }
        inst_insert(c, i);
        return 0;
err:
        if (i && i->log_fd >= 0) {
                close(i->log_fd);
                i->log_fd = -1;
                unlink(spec->log_path);
        }
        if (token_placed) {
                char tp[PATH_MAX];
                if (snprintf(tp, sizeof(tp), "%s/" TOKEN_NAME, spec->workdir) < (int)sizeof(tp))
                        unlink(tp);
        }
        inst_free(i);
        return r;
}

static void on_kill_timer(struct loop *l, void *ud);

static void on_kill_sent(void *ud, int err, long status, const char *body, size_t len,
                         long long total)
{
        struct cinst *i = ud;

        /* 404/409: already gone or not running; the wait says the rest. */
        i->xfer = NULL;
        /* No answer, or the engine failed: a stop asked for must not be
         * lost with the call (the engine restarting, the socket gone).
         * The KILL pending at the grace's end, if any, stays the next
         * step; otherwise the KILL is asked again. */
        if ((err < 0 || status >= 500) && i->phase == PH_RUN && !i->kill_timer) {
                i->kill_backoff = i->kill_backoff ? i->kill_backoff * 2 : KILL_RETRY_MS;
                if (i->kill_backoff > RETRY_MAX_MS)
                        i->kill_backoff = RETRY_MAX_MS;
                i->kill_timer = loop_timer_add(i->c->loop, i->kill_backoff, on_kill_timer, i);
        }
}

static int send_signal(struct cinst *i, int sig)
{
        char path[256];
        struct call k = { .method = "POST", .timeout_ms = SHORT_TIMEOUT_MS };
        int r;

        r = id_path(path, sizeof(path), i->id, sig == SIGKILL ? "/kill?signal=KILL" : "/kill?signal=TERM");
        if (r < 0)
                return r;
        /* A kill before the first's answer replaces it: only the latest
         * matters, and only the wait tells the outcome. */
        hmulti_cancel(i->xfer);
        i->xfer = NULL;
        i->sent |= 1u << sig;
        return start_call(i->c, &k, path, on_kill_sent, i, &i->xfer);
}

static void on_kill_timer(struct loop *l, void *ud)
{
        struct cinst *i = ud;

        i->kill_timer = NULL;
        if (i->phase == PH_RUN)
                (void)send_signal(i, SIGKILL);
}

/* TERM now, KILL after the grace (read at every stop). */
static int begin_stop(struct cinst *i)
{
        struct ctr *c = i->c;
        struct provider *p = c->p;
        int64_t grace_ms = p->stop_grace_ms > 0 ? p->stop_grace_ms : PROVIDER_STOP_GRACE_DEFAULT_MS;
        int r;

        r = send_signal(i, SIGTERM);
        if (r < 0)
                return r;
        int64_t deadline = loop_now_ms(c->loop) + grace_ms;
        if (i->kill_timer && i->kill_deadline <= deadline)
                return 0;
        struct loop_timer *t = loop_timer_add(c->loop, grace_ms, on_kill_timer, i);
        if (!t)
                return -ENOMEM;
        loop_timer_cancel(c->loop, i->kill_timer);
        i->kill_timer = t;
        i->kill_deadline = deadline;
        return 0;
}

static int ctr_stop(struct provider *p, const char *instance)
{
        struct cinst *i;

        if (!instance)
                return -EINVAL;
        i = inst_find(p->ctx, instance);
        if (!i)
                return -ENOENT;
        if (i->phase < PH_RUN) {
                /* Not started: never started (before the start call), or
                 * stopped as soon as the start answers. */
                i->stop_requested = true;
                return 0;
        }
        if (i->phase > PH_RUN)
                return 0;                       /* exited; EXITED is on its way */
        return begin_stop(i);
}

/* One blocking inspect: adopt() must answer at once (-ESRCH or the ref),
 * and runs only at daemon start, once per live row. */
static int inspect_now(struct ctr *c, const char *id_or_name, struct dockerapi_inspect *ret,
                       long *ret_status, char *log_path, size_t lpn, size_t *ret_log_max)
{
        char path[256], url[URL_MAX];
        struct httpc *h = httpc_new();
        struct httpc_resp resp;
        int r;

        if (!h)
                return -ENOMEM;
        r = id_path(path, sizeof(path), id_or_name, "/json");
        if (r < 0)
                goto out;
        snprintf(url, sizeof(url), "http://forgescale/" DOCKERAPI_VERSION "%s", path);
        struct httpc_req req = { .url = url, .timeout_ms = ADOPT_TIMEOUT_MS,
                                 .max_response = 4u << 20, .unix_socket = c->socket };
        r = httpc_do(h, &req, &resp);
        if (r == 0) {
                *ret_status = resp.status;
                if (resp.status == 200) {
                        r = dockerapi_parse_inspect(resp.body, resp.len, ret);
                        if (r == 0)
                                dockerapi_inspect_label(resp.body, resp.len, LABEL_LOG, log_path, lpn);
                        char mx[32] = "";
                        int64_t v;
                        dockerapi_inspect_label(resp.body, resp.len, LABEL_LOG_MAX, mx, sizeof(mx));
                        *ret_log_max = strutil_parse_i64(mx, &v) == 0 && v > 0 ? (size_t)v : 0;
                }
        }
        httpc_resp_done(&resp);
out:
        httpc_free(h);
        return r;
}

/* The log of an adopted worker: appended to, only when it is the regular
 * file the label names (the daemon made it; a link is never followed),
 * from the time of its last write. */
static void reopen_log(struct cinst *i, const char *path, size_t log_max)
{
        struct stat st;
        int fd;

        if (!path[0] || path[0] != '/')
                return;
        fd = open(path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
                close(fd);
                return;
        }
        i->log_fd = fd;
        i->log_len = (size_t)st.st_size;
        i->log_max = log_max ? log_max : SIZE_MAX;
        i->log_last = st.st_mtime > 0 ? st.st_mtime : 1;
}

static int ctr_adopt(struct provider *p, const char *instance, const char *ref,
                     const char *log_path, size_t log_max, provider_event_cb cb, void *ud)
{
        struct ctr *c = p->ctx;
        struct dockerapi_inspect in;
        struct cinst *i;
        char label_log[PATH_MAX] = "";
        size_t label_max = 0;
        long status = 0;
        int r;

        p->error[0] = '\0';
        p->failure = PROVIDER_FAIL_NONE;
        if (!instance || !*instance || !cb || !ref || strlen(instance) >= DOCKERAPI_NAME_MAX)
                return -EINVAL;
        if (inst_find(c, instance))
                return -EEXIST;
        r = inspect_now(c, *ref ? ref : instance, &in, &status, label_log, sizeof(label_log), &label_max);
        if (r < 0 && r != -EBADMSG) {
                p->failure = PROVIDER_FAIL_UNREACHABLE;
                set_error(p, "the container engine at %s did not answer (%s)", c->socket, errtext(r));
                return r;
        }
        if (r == 0 && status == 404)
                return -ESRCH;
        if (r < 0 || status != 200) {
                p->failure = PROVIDER_FAIL_ENGINE;
                set_error(p, "the container engine at %s answered HTTP %ld to an inspect", c->socket, status);
                return -EIO;
        }
        /* Only a container this provider made for that very instance. */
        if (!in.managed || strcmp(in.instance, instance) != 0)
                return -ESRCH;
        i = inst_new(c, instance, NULL, cb, ud);
        if (!i)
                return -ENOMEM;
        snprintf(i->id, sizeof(i->id), "%.*s", REF_LEN, in.id);
        i->adopted = true;
        /* The core's word wins; the container's labels (the log it was
         * made with) serve a caller that gives none. */
        if (log_path && *log_path)
                reopen_log(i, log_path, log_max);
        else if (label_log[0])
                reopen_log(i, label_log, label_max);
        inst_insert(c, i);
        watch(i);
        return 0;
}

static void list_req_free(struct list_req *q)
{
        struct ctr *c = q->c;

        if (q->prev)
                q->prev->next = q->next;
        else
                c->lists = q->next;
        if (q->next)
                q->next->prev = q->prev;
        free(q->prefix);
        free(q);
}

static void on_listed(void *ud, int err, long status, const char *body, size_t len,
                      long long total)
{
        struct list_req *q = ud;
        struct dockerapi_listed *v = NULL;
        struct provider_listing *items = NULL;
        size_t n = 0;
        int r;

        q->xfer = NULL;
        if (err)
                r = err;
        else if (status != 200)
                r = status == 404 ? -ENOENT : -EIO;
        else
                r = dockerapi_parse_list(body, len, q->prefix, &v, &n);
        if (r == 0 && n) {
                items = calloc(n, sizeof(*items));
                if (!items)
                        r = -ENOMEM;
                for (size_t k = 0; items && k < n; k++) {
                        v[k].id[REF_LEN] = '\0';
                        items[k] = (struct provider_listing){
                                .instance = v[k].instance, .ref = v[k].id, .running = v[k].running,
                        };
                }
        }
        provider_list_cb cb = q->cb;
        void *cud = q->ud;
        list_req_free(q);
        cb(cud, r, r ? NULL : items, r ? 0 : n);
        free(items);
        free(v);
}

/* Only containers with forgescale.managed=1 are asked for; the instance
 * label must also start with prefix (dockerapi_parse_list). */
static int ctr_list(struct provider *p, const char *prefix, provider_list_cb cb, void *ud)
{
        struct ctr *c = p->ctx;
        static const char filt[] = "{\"label\":[\"" DOCKERAPI_LABEL_MANAGED "=1\"]}";
        char esc[128], path[256];
        struct list_req *q;
        int r;

        if (!cb)
                return -EINVAL;
        q = calloc(1, sizeof(*q));
        if (!q)
                return -ENOMEM;
        q->c = c;
        q->cb = cb;
        q->ud = ud;
        if (prefix && *prefix && !(q->prefix = strdup(prefix))) {
                free(q);
                return -ENOMEM;
        }
        r = dockerapi_escape(filt, esc, sizeof(esc));
        if (r == 0)
                snprintf(path, sizeof(path), "/containers/json?all=true&filters=%s", esc);
        struct call k = { .method = "GET", .timeout_ms = SHORT_TIMEOUT_MS,
                          .max_response = LIST_MAX_RESPONSE };
        if (r == 0)
                r = start_call(c, &k, path, on_listed, q, &q->xfer);
        if (r < 0) {
                free(q->prefix);
                free(q);
                return r;
        }
        q->next = c->lists;
        if (q->next)
                q->next->prev = q;
        c->lists = q;
        return 0;
}

static const char *ctr_ref(struct provider *p, const char *instance)
{
        struct cinst *i = inst_find(p->ctx, instance);

        return i && i->id[0] ? i->id : NULL;
}

static void bg_free(struct bg_req *b)
{
        struct ctr *c = b->c;

        if (b->prev)
                b->prev->next = b->next;
        else
                c->bgs = b->next;
        if (b->next)
                b->next->prev = b->prev;
        free(b->instance);
        free(b);
}

static void on_bg_done(void *ud, int err, long status, const char *body, size_t len,
                       long long total)
{
        bg_free(ud);
}

/* Deletes the container only when it carries this provider's labels for
 * exactly that instance: a name or ref never reaches another's container. */
static void on_bg_inspected(void *ud, int err, long status, const char *body, size_t len,
                            long long total)
{
        struct bg_req *b = ud;
        struct dockerapi_inspect in;
        char path[256];

        b->xfer = NULL;
        if (err || status != 200 || dockerapi_parse_inspect(body, len, &in) < 0 || !in.managed ||
            strcmp(in.instance, b->instance) != 0 ||
            id_path(path, sizeof(path), in.id, "?force=true") < 0) {
                bg_free(b);
                return;
        }
        struct call k = { .method = "DELETE", .timeout_ms = SHORT_TIMEOUT_MS };
        if (start_call(b->c, &k, path, on_bg_done, b, &b->xfer) < 0)
                bg_free(b);
}

/* The token file goes at once; the container normally went before EXITED
 * (remove_then_deliver), so the delete here is for what a lost answer or
 * an adoption that found it gone left: an inspect, then a delete of what
 * is verifiably this instance's, fired and not awaited (cleanup() is
 * synchronous; 404 is fine). Whatever it fails to remove, the orphan
 * sweep finds through list(). */
static int ctr_cleanup(struct provider *p, const char *instance, const char *ref,
                       const char *workdir)
{
        struct ctr *c = p->ctx;
        char path[PATH_MAX];
        int r;

        if (!instance || !*instance)
                return -EINVAL;
        if (inst_find(c, instance))
                return -EBUSY;
        if (workdir && *workdir) {
                if (snprintf(path, sizeof(path), "%s/" TOKEN_NAME, workdir) >= (int)sizeof(path))
                        return -ENAMETOOLONG;
                if (unlink(path) < 0 && errno != ENOENT && errno != ENOTDIR)
                        return -errno;
        }
        /* By name only when no ref was saved: a ref is this instance's
         * container for sure, and names are unique per instance. */
        const char *target = ref && *ref ? ref : instance;
        r = id_path(path, sizeof(path), target, "/json");
        if (r < 0 || strlen(instance) >= DOCKERAPI_NAME_MAX)
                return 0;
        struct bg_req *b = calloc(1, sizeof(*b));
        if (!b)
                return 0;
        b->c = c;
        b->instance = strdup(instance);
        struct call k = { .method = "GET", .timeout_ms = SHORT_TIMEOUT_MS };
        if (!b->instance || start_call(c, &k, path, on_bg_inspected, b, &b->xfer) < 0) {
                free(b->instance);
                free(b);
                return 0;
        }
        b->next = c->bgs;
        if (b->next)
                b->next->prev = b;
        c->bgs = b;
        return 0;
}

static int ctr_token_path(struct provider *p, const char *instance, const char *workdir,
                          char *buf, size_t n)
{
        if (!buf || n == 0)
                return -EINVAL;
        if (n <= strlen(CTR_TOKEN_PATH))
                return -ENAMETOOLONG;
        memcpy(buf, CTR_TOKEN_PATH, sizeof(CTR_TOKEN_PATH));
        return 0;
}

static void ctx_free(struct ctr *c)
{
        if (!c)
                return;
        free(c->socket);
        free(c->image);
        free(c->network);
        for (size_t k = 0; k < c->n_ulimits; k++)
                free((char *)c->ulimits[k].name);
        free(c->ulimits);
        free(c->runtime);
        strv_free(c->mounts);
        strv_free(c->env);
        free(c->user);
        free(c);
}

/* "N" or "SOFT:HARD" (checked by the configuration; checked again for
 * callers that build a config by hand). */
static int parse_ulimit(const char *s, int64_t *soft, int64_t *hard)
{
        const char *colon = strchr(s, ':');
        char a[24];

        if (!colon)
                return strutil_parse_i64(s, soft) == 0 && *soft >= 0 ? (*hard = *soft, 0) : -EINVAL;
        if ((size_t)(colon - s) >= sizeof(a))
                return -EINVAL;
        memcpy(a, s, (size_t)(colon - s));
        a[colon - s] = '\0';
        if (strutil_parse_i64(a, soft) < 0 || strutil_parse_i64(colon + 1, hard) < 0 ||
            *soft < 0 || *hard < *soft)
                return -EINVAL;
        return 0;
}

static int dup_opt(const char *s, char **ret)
{
        *ret = NULL;
        if (!s || !*s)
                return 0;
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

/* The numeric uid (and gid) of `user`, when it is numeric. */
static void token_owner(struct ctr *c)
{
        const char *u = c->user;
        char *end;
        unsigned long long uid, gid;

        if (!u || *u < '0' || *u > '9')
                return;
        errno = 0;
        uid = strtoull(u, &end, 10);
        if (errno || (*end && *end != ':') || uid >= (uid_t)-1)
                return;
        gid = uid;
        if (*end == ':') {
                const char *g = end + 1;
                if (*g < '0' || *g > '9')
                        return;         /* a group name: the uid's group is unknown */
                errno = 0;
                gid = strtoull(g, &end, 10);
                if (errno || *end || gid >= (gid_t)-1)
                        return;
        }
        c->token_chown = uid != geteuid();
        c->token_uid = (uid_t)uid;
        c->token_gid = (gid_t)gid;
}

static int ctr_init(struct provider *p, struct loop *loop, const struct config_provider *cfg)
{
        const struct config_provider_container *cc = cfg ? &cfg->container : NULL;
        struct ctr *c = calloc(1, sizeof(*c));
        int r = -ENOMEM;

        provider_init_common(p, cfg);
        p->ctx = NULL;
        if (!c)
                return -ENOMEM;
        c->p = p;
        c->loop = loop;
        if (!cc || !cc->image || !*cc->image) {
                set_error(p, "a container provider needs an image");
                r = -EINVAL;
                goto err;
        }
        const char *sock = cc->socket && *cc->socket ? cc->socket : "/var/run/docker.sock";
        if (sock[0] != '/' || strlen(sock) > HMULTI_UNIX_PATH_MAX) {
                set_error(p, "socket %s is not an absolute path of at most %d bytes", sock,
                          HMULTI_UNIX_PATH_MAX);
                r = -EINVAL;
                goto err;
        }
        if (!(c->socket = strdup(sock)) || !(c->image = strdup(cc->image)) ||
            dup_opt(cc->network, &c->network) < 0 || dup_opt(cc->runtime, &c->runtime) < 0 ||
            dup_opt(cc->user, &c->user) < 0)
                goto err;
        c->pull = cc->pull;
        c->nano_cpus = cc->nano_cpus;
        c->memory = cc->memory_bytes;
        c->pids_limit = cc->pids_limit;
        if (cc->ulimits.n) {
                c->ulimits = calloc(cc->ulimits.n, sizeof(*c->ulimits));
                if (!c->ulimits)
                        goto err;
                for (size_t k = 0; k < cc->ulimits.n; k++) {
                        struct dockerapi_ulimit *u = &c->ulimits[k];
                        if (parse_ulimit(cc->ulimits.v[k].value, &u->soft, &u->hard) < 0) {
                                set_error(p, "ulimits.%s: %s is not N or SOFT:HARD", cc->ulimits.v[k].name,
                                          cc->ulimits.v[k].value);
                                r = -EINVAL;
                                goto err;
                        }
                        if (!(u->name = strdup(cc->ulimits.v[k].name)))
                                goto err;
                        c->n_ulimits++;
                }
        }
        c->mounts = calloc(cc->extra_mounts.n + 1, sizeof(*c->mounts));
        c->env = calloc(cc->env.n + 1, sizeof(*c->env));
        if (!c->mounts || !c->env)
                goto err;
        for (size_t k = 0; k < cc->extra_mounts.n; k++)
                if (!(c->mounts[k] = strdup(cc->extra_mounts.v[k])))
                        goto err;
        for (size_t k = 0; k < cc->env.n; k++)
                if (asprintf(&c->env[k], "%s=%s", cc->env.v[k].name, cc->env.v[k].value) < 0) {
                        c->env[k] = NULL;
                        goto err;
                }
        token_owner(c);
        r = hmulti_new(loop, NULL, &c->hm);
        if (r < 0)
                goto err;
        /* Every running worker holds two long-lived calls (wait, logs):
         * the default budget of 8 would queue the watches of the fifth. */
        snprintf(c->origin, sizeof(c->origin), "unix:%s", c->socket);
        struct hmulti_origin_opts oo = { .max_transfers = 8, .max_long_lived = 1L << 20 };
        r = hmulti_origin_config(c->hm, c->origin, &oo);
        if (r < 0)
                goto err;
        p->ctx = c;
        return 0;
err:
        hmulti_free(c->hm);
        ctx_free(c);
        return r;
}

/* Forgets every instance; containers keep running and are adopted by the
 * next run. */
static void ctr_done(struct provider *p)
{
        struct ctr *c = p->ctx;

        if (!c)
                return;
        /* Freeing hmulti first cancels every call without a callback. */
        hmulti_free(c->hm);
        c->hm = NULL;
        while (c->insts) {
                struct cinst *i = c->insts;
                inst_unlink(c, i);
                i->xfer = i->wait_xfer = i->log_xfer = NULL;
                inst_free(i);
        }
        while (c->lists)
                list_req_free(c->lists);
        while (c->bgs)
                bg_free(c->bgs);
        ctx_free(c);
        p->ctx = NULL;
}

const struct provider_ops provider_container_ops = {
        .type = "container",
        .caps = PROVIDER_CAP_ADOPT | PROVIDER_CAP_LIST,
        .init = ctr_init,
        .done = ctr_done,
        .token_path = ctr_token_path,
        .create = ctr_create,
        .stop = ctr_stop,
        .adopt = ctr_adopt,
        .list = ctr_list,
        .ref = ctr_ref,
        .cleanup = ctr_cleanup,
};
