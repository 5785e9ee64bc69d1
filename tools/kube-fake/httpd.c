/* httpd.c: kube-fake's HTTPS front end on libmicrohttpd, driven from
 * main.c's single-threaded loop (external select): the route table (matched
 * with the daemon's http/router.h), authentication (bearer token re-read
 * from its file on every request, or a client certificate checked with
 * GnuTLS), injected faults, request statistics, bounded bodies, and the
 * streaming of watches and followed logs (suspended while they have nothing
 * to send). The only file that includes microhttpd.h and gnutls. Never
 * interprets a Kubernetes object: api.c does. */
#include "kfake.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <poll.h>
#include <sys/select.h>

#include "http/router.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/secret.h"

#define CONNECTION_TIMEOUT_S 600
#define MAX_CONNECTIONS 512
#define MAX_TOKEN 16384

enum route_kind { RK_API, RK_CTL };

struct route {
        const char *method;
        const char *pattern;
        void (*fn)(struct kreq *rq, struct kresp *rs, enum kres r);
        enum kres res;
        enum route_kind kind;
};

#define NS "/namespaces/{namespace}"
#define CORE "/api/v1" NS
#define BATCH "/apis/batch/v1" NS
#define APPS "/apis/apps/v1" NS
#define RBAC "/apis/rbac.authorization.k8s.io/v1" NS
#define NETWORKING "/apis/networking.k8s.io/v1" NS

static const struct route routes[] = {
        { "GET", "/version", api_version, 0, RK_API },
        { "GET", "/api", api_core_versions, 0, RK_API },
        { "GET", "/apis", api_groups, 0, RK_API },
        { "GET", "/api/v1", api_resources, 0, RK_API },
        { "GET", "/apis/{group}/{version}", api_resources, 0, RK_API },
        { "GET", "/openapi/v3", api_openapi_index, 0, RK_API },
        { "GET", "/openapi/v3/api/v1", api_openapi_gv, 0, RK_API },
        { "GET", "/openapi/v3/apis/{group}/{version}", api_openapi_gv, 0, RK_API },
        /* Validated-only kinds: create with dryRun=All, get is NotFound. */
        { "POST", "/api/v1/namespaces", api_create, KR_NAMESPACE, RK_API },
        { "GET", "/api/v1/namespaces/{name}", api_absent, KR_NAMESPACE, RK_API },
        { "POST", CORE "/serviceaccounts", api_create, KR_SERVICEACCOUNT, RK_API },
        { "GET", CORE "/serviceaccounts/{name}", api_absent, KR_SERVICEACCOUNT, RK_API },
        { "POST", CORE "/configmaps", api_create, KR_CONFIGMAP, RK_API },
        { "GET", CORE "/configmaps/{name}", api_absent, KR_CONFIGMAP, RK_API },
        { "POST", CORE "/services", api_create, KR_SERVICE, RK_API },
        { "GET", CORE "/services/{name}", api_absent, KR_SERVICE, RK_API },
        { "POST", CORE "/persistentvolumeclaims", api_create, KR_PVC, RK_API },
        { "GET", CORE "/persistentvolumeclaims/{name}", api_absent, KR_PVC, RK_API },
        { "POST", APPS "/deployments", api_create, KR_DEPLOYMENT, RK_API },
        { "GET", APPS "/deployments/{name}", api_absent, KR_DEPLOYMENT, RK_API },
        { "POST", RBAC "/roles", api_create, KR_ROLE, RK_API },
        { "GET", RBAC "/roles/{name}", api_absent, KR_ROLE, RK_API },
        { "POST", RBAC "/rolebindings", api_create, KR_ROLEBINDING, RK_API },
        { "GET", RBAC "/rolebindings/{name}", api_absent, KR_ROLEBINDING, RK_API },
        { "POST", NETWORKING "/networkpolicies", api_create, KR_NETWORKPOLICY, RK_API },
        { "GET", NETWORKING "/networkpolicies/{name}", api_absent, KR_NETWORKPOLICY, RK_API },
        { "GET", CORE "/secrets", api_list, KR_SECRET, RK_API },
        { "POST", CORE "/secrets", api_create, KR_SECRET, RK_API },
        { "GET", CORE "/secrets/{name}", api_get, KR_SECRET, RK_API },
        { "DELETE", CORE "/secrets/{name}", api_delete, KR_SECRET, RK_API },
        { "GET", "/api/v1/secrets", api_list, KR_SECRET, RK_API },
        { "GET", BATCH "/jobs", api_list, KR_JOB, RK_API },
        { "POST", BATCH "/jobs", api_create, KR_JOB, RK_API },
        { "GET", BATCH "/jobs/{name}", api_get, KR_JOB, RK_API },
        { "DELETE", BATCH "/jobs/{name}", api_delete, KR_JOB, RK_API },
        { "GET", "/apis/batch/v1/jobs", api_list, KR_JOB, RK_API },
        { "GET", CORE "/pods", api_list, KR_POD, RK_API },
        { "GET", CORE "/pods/{name}", api_get, KR_POD, RK_API },
        { "DELETE", CORE "/pods/{name}", api_delete, KR_POD, RK_API },
        { "GET", CORE "/pods/{name}/log", api_pod_log, KR_POD, RK_API },
        { "GET", "/api/v1/pods", api_list, KR_POD, RK_API },
        { "POST", "/_fake/faults", ctl_faults, 0, RK_CTL },
        { "POST", "/_fake/scheduling", ctl_scheduling, 0, RK_CTL },
        { "POST", "/_fake/compact", ctl_compact, 0, RK_CTL },
        { "POST", "/_fake/drop-watches", ctl_drop_watches, 0, RK_CTL },
        { "GET", "/_fake/stats", ctl_stats, 0, RK_CTL },
        { "GET", "/_fake/pods", ctl_pods, 0, RK_CTL },
};

#define N_ROUTES (sizeof(routes) / sizeof(routes[0]))

struct httpd {
        struct kf *kf;
        struct MHD_Daemon *d;
        struct router *router;
};

struct conn_req {
        struct httpd *h;
        const struct route *route;      /* NULL: no such path */
        bool wrong_method;
        char *path;
        char *segbuf;
        const char *params[4];
        char *body;
        size_t len, cap;
        bool too_large;
};

/* ---- helpers ------------------------------------------------------------ */

static const char *query_get(void *conn, const char *name)
{
        return MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, name);
}

void httpd_wake(void *conn)
{
        MHD_resume_connection(conn);
}

/* A suspended stream's client may have gone: MHD does not watch suspended
 * sockets, so look for EOF (or anything: an HTTP/1.1 client sends nothing
 * while a response streams, a TLS close_notify included). */
bool httpd_peer_gone(void *conn)
{
        const union MHD_ConnectionInfo *ci =
                MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct pollfd p;

        if (!ci)
                return false;
        p = (struct pollfd){ .fd = ci->connect_fd, .events = POLLIN | POLLRDHUP };
        return poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR));
}

void httpd_reject(struct kf *kf, const char *path, const char *reason)
{
        json_t *e = json_pack("{s:s,s:s}", "path", path, "reason", reason);

        if (!e)
                return;
        json_array_append_new(kf->rejected, e);
        while (json_array_size(kf->rejected) > KF_REJECTED_KEEP)
                json_array_remove(kf->rejected, 0);
        log_info("kube-fake", "rejected", KS("path", path), KS("reason", reason));
}

static void stats_count(struct kf *kf, const char *method, const char *pattern)
{
        char key[300];
        json_t *c;

        snprintf(key, sizeof(key), "%s %s", method, pattern);
        c = json_object_get(kf->stats, key);
        json_object_set_new(kf->stats, key, json_integer(c ? json_integer_value(c) + 1 : 1));
}

static bool fault_take(struct kf *kf, const char *method, const char *path, int *ret_status,
                       char *msg, size_t n)
{
        for (struct kfault **pp = &kf->faults; *pp; pp = &(*pp)->next) {
                struct kfault *f = *pp;
                if (strncmp(path, f->path_prefix, strlen(f->path_prefix)) != 0 ||
                    (f->method[0] && strcmp(method, f->method) != 0))
                        continue;
                *ret_status = f->status;
                snprintf(msg, n, "%s", f->message ? f->message : "injected fault");
                if (--f->remaining <= 0) {
                        *pp = f->next;
                        free(f->path_prefix);
                        free(f->message);
                        free(f);
                }
                return true;
        }
        return false;
}

/* The user a client certificate names, when one was sent and the CA
 * signed it. */
static bool cert_user(struct httpd *h, struct MHD_Connection *c, char *user, size_t n)
{
        const union MHD_ConnectionInfo *ci;
        gnutls_session_t s;
        const gnutls_datum_t *certs;
        unsigned int status = 0, ncerts = 0;
        gnutls_x509_crt_t crt;
        size_t len = n;
        bool ok = false;

        if (!h->kf->client_ca)
                return false;
        ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
        if (!ci || !ci->tls_session)
                return false;
        s = (gnutls_session_t)ci->tls_session;
        if (gnutls_certificate_verify_peers2(s, &status) != GNUTLS_E_SUCCESS || status != 0)
                return false;
        certs = gnutls_certificate_get_peers(s, &ncerts);
        if (!certs || ncerts == 0 || gnutls_x509_crt_init(&crt) != GNUTLS_E_SUCCESS)
                return false;
        if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) == GNUTLS_E_SUCCESS &&
            gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, user, &len) ==
                    GNUTLS_E_SUCCESS)
                ok = true;
        gnutls_x509_crt_deinit(crt);
        return ok;
}

/* Bearer token against --token-file, read again for every request so a
 * test can rotate it; or a client certificate. */
static bool authenticate(struct httpd *h, struct MHD_Connection *c, char *user, size_t n,
                         const char **why)
{
        const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                       MHD_HTTP_HEADER_AUTHORIZATION);
        char *tok = NULL;
        size_t len = 0;
        bool ok = false;

        if (cert_user(h, c, user, n))
                return true;
        if (!auth) {
                *why = "no credentials";
                return false;
        }
        if (strncmp(auth, "Bearer ", 7) != 0) {
                *why = "Authorization is not a Bearer token";
                return false;
        }
        if (fs_read_file(h->kf->token_file, MAX_TOKEN, &tok, &len) < 0) {
                *why = "cannot read --token-file";
                return false;
        }
        while (len > 0 && (tok[len - 1] == '\n' || tok[len - 1] == '\r' || tok[len - 1] == ' '))
                tok[--len] = '\0';
        ok = len > 0 && secret_equal(auth + 7, tok);
        free(tok);
        if (ok)
                snprintf(user, n, "token-user");
        else
                *why = "bad bearer token";
        return ok;
}

/* ---- streaming ---------------------------------------------------------- */

static ssize_t watch_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
        struct kwatch *w = cls;

        (void)pos;
        if (w->off < w->len) {
                size_t n = w->len - w->off;
                if (n > max)
                        n = max;
                memcpy(buf, w->buf + w->off, n);
                w->off += n;
                if (w->off == w->len)
                        w->off = w->len = 0;
                return (ssize_t)n;
        }
        if (w->closing || w->kf->stopping)
                return w->abort ? MHD_CONTENT_READER_END_WITH_ERROR
                                : MHD_CONTENT_READER_END_OF_STREAM;
        w->suspended = true;
        MHD_suspend_connection(w->conn);
        return 0;
}

static void watch_free_cb(void *cls)
{
        store_watch_free(cls);
}

static ssize_t log_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
        struct kstream *s = cls;
        ssize_t n;

        (void)pos;
        if (s->kf->stopping)
                return MHD_CONTENT_READER_END_OF_STREAM;
        n = kstream_read(s, buf, max);
        if (n > 0)
                return n;
        if (n < 0)
                return MHD_CONTENT_READER_END_OF_STREAM;
        s->suspended = true;
        MHD_suspend_connection(s->conn);
        return 0;
}

static void log_free_cb(void *cls)
{
        struct kstream *s = cls;

        for (struct kstream **pp = &s->kf->streams; *pp; pp = &(*pp)->next) {
                if (*pp == s) {
                        *pp = s->next;
                        break;
                }
        }
        kstream_free(s);
}

/* ---- MHD glue ----------------------------------------------------------- */

static void conn_req_free(struct conn_req *cr)
{
        if (!cr)
                return;
        free(cr->path);
        free(cr->segbuf);
        free(cr->body);
        free(cr);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
        (void)cls;
        (void)c;
        (void)toe;
        conn_req_free(*con_cls);
        *con_cls = NULL;
}

static enum MHD_Result send_resp(struct MHD_Connection *c, struct kresp *rs)
{
        struct MHD_Response *r = NULL;
        enum MHD_Result ret;
        const char *ctype = "application/json";

        if (rs->watch) {
                rs->watch->conn = c;
                r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, watch_reader,
                                                      rs->watch, watch_free_cb);
                if (!r) {
                        store_watch_free(rs->watch);
                        rs->watch = NULL;
                        return MHD_NO;
                }
                rs->watch = NULL;
        } else if (rs->stream) {
                rs->stream->conn = c;
                r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, log_reader,
                                                      rs->stream, log_free_cb);
                if (!r) {
                        kstream_free(rs->stream);
                        rs->stream = NULL;
                        return MHD_NO;
                }
                rs->stream->next = rs->stream->kf->streams;
                rs->stream->kf->streams = rs->stream;
                rs->stream = NULL;
                ctype = "text/plain";
        } else if (rs->text) {
                r = MHD_create_response_from_buffer(rs->text_len, rs->text, MHD_RESPMEM_MUST_FREE);
                if (!r)
                        return MHD_NO;
                rs->text = NULL;
                ctype = "text/plain";
        } else {
                char *body = rs->json ? json_dumps(rs->json, JSON_COMPACT) : NULL;
                if (!body)
                        return MHD_NO;
                r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
                if (!r) {
                        free(body);
                        return MHD_NO;
                }
        }
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
        if (rs->warning) {
                char w[512];
                snprintf(w, sizeof(w), "299 - \"%s\"", rs->warning);
                MHD_add_response_header(r, "Warning", w);
        }
        if (rs->retry_after)
                MHD_add_response_header(r, "Retry-After", "1");
        ret = MHD_queue_response(c, (unsigned int)rs->status, r);
        MHD_destroy_response(r);
        return ret;
}

static void resp_done(struct kresp *rs)
{
        json_decref(rs->json);
        free(rs->text);
        store_watch_free(rs->watch);
        kstream_free(rs->stream);
        memset(rs, 0, sizeof(*rs));
}

static const char *reason_for(int status)
{
        switch (status) {
        case 409: return "Conflict";
        case 410: return "Expired";
        case 429: return "TooManyRequests";
        case 500: return "InternalError";
        case 503: return "ServiceUnavailable";
        case 404: return "NotFound";
        case 403: return "Forbidden";
        default: return "BadRequest";
        }
}

static enum MHD_Result handle(struct httpd *h, struct MHD_Connection *c, const char *method,
                              struct conn_req *cr)
{
        struct kf *kf = h->kf;
        struct kresp rs = { .status = 500 };
        struct kreq rq = {
                .kf = kf, .conn = c, .method = method, .path = cr->path,
                .body = cr->body ? cr->body : "", .body_len = cr->len, .query = query_get,
        };
        int fstatus = 0;
        char fmsg[512];
        enum MHD_Result ret;
        bool is_watch = false;
        char user[256];
        const char *why = NULL;

        memcpy(rq.params, cr->params, sizeof(rq.params));
        if (!cr->route) {
                api_status(&rs, 404, "NotFound",
                           "the server could not find the requested resource");
                goto send;
        }
        if (cr->route->kind == RK_API) {
                const char *wq = query_get(c, "watch");
                is_watch = wq && (strcmp(wq, "1") == 0 || strcmp(wq, "true") == 0);
                stats_count(kf, is_watch ? "WATCH" : method, cr->route->pattern);
                if (!authenticate(h, c, user, sizeof(user), &why)) {
                        httpd_reject(kf, cr->path, why);
                        api_status(&rs, 401, "Unauthorized", "Unauthorized");
                        goto send;
                }
                if (fault_take(kf, method, cr->path, &fstatus, fmsg, sizeof(fmsg))) {
                        api_status(&rs, fstatus, reason_for(fstatus), "%s", fmsg);
                        rs.retry_after = fstatus == 429;
                        goto send;
                }
        }
        if (cr->route->kind == RK_API && cr->len > 0 && !cr->wrong_method) {
                /* Like an apiserver: a body says what it is, and kube-fake
                 * speaks JSON only. */
                const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                             MHD_HTTP_HEADER_CONTENT_TYPE);
                size_t n = strlen("application/json");
                if (!ct || strncasecmp(ct, "application/json", n) != 0 ||
                    (ct[n] != '\0' && ct[n] != ';')) {
                        api_status(&rs, 415, "UnsupportedMediaType", "the body of the request "
                                   "was in an unknown format - accepted media types include: "
                                   "application/json");
                        httpd_reject(kf, cr->path, "Content-Type is not application/json");
                        goto send;
                }
        }
        if (cr->wrong_method) {
                api_status(&rs, 405, "MethodNotAllowed", "the server does not allow this method "
                           "on the requested resource");
        } else if (cr->too_large) {
                api_status(&rs, 413, "RequestEntityTooLarge", "request body larger than %u bytes",
                           KF_MAX_BODY);
        } else {
                cr->route->fn(&rq, &rs, cr->route->res);
        }
send:
        log_debug("kube-fake", "request", KS("method", method), KS("path", cr->path),
                  KI("status", rs.status));
        ret = send_resp(c, &rs);
        resp_done(&rs);
        return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
        struct httpd *h = cls;
        struct conn_req *cr = *con_cls;

        (void)version;
        if (!cr) {
                struct router_match m;
                int r;
                cr = calloc(1, sizeof(*cr));
                if (!cr)
                        return MHD_NO;
                cr->h = h;
                cr->path = strdup(url);
                cr->segbuf = strdup(url);
                if (!cr->path || !cr->segbuf) {
                        conn_req_free(cr);
                        return MHD_NO;
                }
                *con_cls = cr;
                r = router_match(h->router, method, cr->segbuf, &m);
                if (r == ROUTER_MATCH || r == ROUTER_WRONG_METHOD) {
                        cr->route = m.ud;
                        cr->wrong_method = r == ROUTER_WRONG_METHOD;
                        for (size_t i = 0; r == ROUTER_MATCH && i < m.nparams && i < 4; i++)
                                cr->params[i] = m.value[i];
                }
                return MHD_YES;
        }
        if (*upload_data_size) {
                size_t n = *upload_data_size;
                *upload_data_size = 0;
                if (cr->too_large || n > KF_MAX_BODY - cr->len) {
                        cr->too_large = true;
                        return MHD_YES;
                }
                if (cr->len + n + 1 > cr->cap) {
                        size_t cap = cr->cap ? cr->cap : 4096;
                        while (cap < cr->len + n + 1)
                                cap *= 2;
                        char *nb = realloc(cr->body, cap);
                        if (!nb)
                                return MHD_NO;
                        cr->body = nb;
                        cr->cap = cap;
                }
                memcpy(cr->body + cr->len, upload_data, n);
                cr->len += n;
                cr->body[cr->len] = '\0';
                return MHD_YES;
        }
        return handle(h, c, method, cr);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
        char msg[512];

        (void)cls;
        vsnprintf(msg, sizeof(msg), fmt, ap);
        msg[strcspn(msg, "\n")] = '\0';
        log_debug("kube-fake", "libmicrohttpd", KS("msg", msg));
}

struct httpd *httpd_start(struct kf *kf, int listen_fd, const char *cert_pem, const char *key_pem,
                          const char *ca_pem)
{
        struct httpd *h = calloc(1, sizeof(*h));

        if (!h)
                goto err;
        h->kf = kf;
        h->router = router_new(0);
        if (!h->router)
                goto err;
        for (size_t i = 0; i < N_ROUTES; i++) {
                if (router_add(h->router, routes[i].method, routes[i].pattern,
                               (void *)&routes[i]) < 0) {
                        log_error("kube-fake", "bad route", KS("pattern", routes[i].pattern));
                        goto err;
                }
        }
        if (ca_pem)
                h->d = MHD_start_daemon(MHD_USE_TLS | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG,
                                        0, NULL, NULL, on_request, h,
                                        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)listen_fd,
                                        MHD_OPTION_HTTPS_MEM_KEY, key_pem,
                                        MHD_OPTION_HTTPS_MEM_CERT, cert_pem,
                                        MHD_OPTION_HTTPS_MEM_TRUST, ca_pem,
                                        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                                        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                                        MHD_OPTION_CONNECTION_TIMEOUT,
                                        (unsigned int)CONNECTION_TIMEOUT_S,
                                        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)MAX_CONNECTIONS,
                                        MHD_OPTION_END);
        else
                h->d = MHD_start_daemon(MHD_USE_TLS | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG,
                                        0, NULL, NULL, on_request, h,
                                        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)listen_fd,
                                        MHD_OPTION_HTTPS_MEM_KEY, key_pem,
                                        MHD_OPTION_HTTPS_MEM_CERT, cert_pem,
                                        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                                        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                                        MHD_OPTION_CONNECTION_TIMEOUT,
                                        (unsigned int)CONNECTION_TIMEOUT_S,
                                        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)MAX_CONNECTIONS,
                                        MHD_OPTION_END);
        if (!h->d)
                goto err;
        return h;
err:
        if (h)
                router_free(h->router);
        free(h);
        return NULL;
}

bool httpd_run(struct httpd *h, int extra_fd, int max_ms)
{
        fd_set rs, ws, es;
        MHD_socket maxfd = 0;
        MHD_UNSIGNED_LONG_LONG to = 0;
        struct timeval tv;
        int n;

        FD_ZERO(&rs);
        FD_ZERO(&ws);
        FD_ZERO(&es);
        if (MHD_get_fdset2(h->d, &rs, &ws, &es, &maxfd, FD_SETSIZE) != MHD_YES)
                maxfd = 0;
        if (extra_fd >= 0) {
                FD_SET(extra_fd, &rs);
                if (extra_fd > maxfd)
                        maxfd = extra_fd;
        }
        if (MHD_get_timeout(h->d, &to) == MHD_YES && to < (MHD_UNSIGNED_LONG_LONG)max_ms)
                max_ms = (int)to;
        tv.tv_sec = max_ms / 1000;
        tv.tv_usec = (max_ms % 1000) * 1000;
        n = select(maxfd + 1, &rs, &ws, &es, &tv);
        if (n < 0) {
                FD_ZERO(&rs);
                FD_ZERO(&ws);
                FD_ZERO(&es);
        }
        MHD_run_from_select(h->d, &rs, &ws, &es);
        return n > 0 && extra_fd >= 0 && FD_ISSET(extra_fd, &rs);
}

void httpd_stop(struct httpd *h)
{
        if (!h)
                return;
        /* MHD refuses to stop with suspended connections: end every stream
         * and let the loop flush them first. */
        h->kf->stopping = true;
        store_watches_drop(h->kf, false);
        for (struct kstream *s = h->kf->streams; s; s = s->next)
                if (s->suspended) {
                        s->suspended = false;
                        MHD_resume_connection(s->conn);
                }
        for (int i = 0; i < 20; i++)
                httpd_run(h, -1, 10);
        MHD_stop_daemon(h->d);
        router_free(h->router);
        free(h);
}
