/* server.c: see server.h. Owns the listening socket, the libmicrohttpd
 * daemon (external epoll mode: its epoll fd sits in our loop, a loop timer
 * follows MHD_get_timeout), the route table, per-request state and the
 * per-connection request deadlines. Runs only on the loop's thread; never
 * blocks, never logs above debug, never calls MHD_run from inside an MHD
 * callback. */
#include "http/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/router.h"
#include "loop/loop.h"
#include "util/hostport.h"
#include "util/log.h"

#define LISTEN_BACKLOG 128
/* A body that overflows max_body without a Content-Length (chunked) is
 * drained so the client gets a 413; past this multiple the connection is
 * simply closed. */
#define DRAIN_FACTOR 8

/* What a route leads to; the router's ud. */
struct handler {
        http_handler_fn fn;
        void *ud;
};

_Static_assert(HTTP_MAX_PARAMS == ROUTER_MAX_PARAMS, "http_request_param reads router params");

enum req_state {
        REQ_RECEIVING,  /* headers in, body arriving */
        REQ_HANDLER,    /* inside the handler */
        REQ_DEFERRED,   /* parked (connection suspended) */
        REQ_ABORTING,   /* inside the abort callback */
        REQ_READY,      /* response built, waiting for MHD to ask for it */
        REQ_QUEUED,     /* handed to MHD */
};

struct http_request {
        struct http_server *srv;
        struct MHD_Connection *conn;
        struct http_request *prev, *next;       /* deferred list */
        enum req_state state;
        const char *method;                     /* MHD's, lives as long as the request */
        char *path;
        char *segbuf;                           /* path split in place for params */
        const struct handler *h;
        struct router_match m;
        struct buffer body;
        size_t bytes_in;
        bool too_big;
        struct http_response resp;
        int status_sent;
        size_t bytes_out;
        int64_t start_ms;
        struct conn *k;                         /* NULL only if MHD gave none */
        char remote[INET6_ADDRSTRLEN + 16];
        http_abort_fn abort_fn;
        void *abort_ud;
};

/* One per open connection (MHD's socket context). A connection is on the
 * deadline list while a request is being received: from accept, and again
 * from each completed answer on a kept-alive connection, until the request
 * is whole. Deadlines are set to now + a constant, so the list is in
 * deadline order by construction. */
struct conn {
        struct MHD_Connection *c;
        struct conn *prev, *next;
        int64_t deadline_ms;
        bool listed;
};

struct http_server {
        struct loop *loop;
        struct MHD_Daemon *mhd;
        int epfd;
        bool watching;
        struct loop_timer *timer;
        bool kick;              /* run MHD on the next loop pass */
        bool closing;
        unsigned nconn;         /* open connections, from MHD's notifications */
        uint16_t port;
        size_t max_body;
        size_t max_response;
        http_access_log_fn access_log;
        void *access_log_ud;
        struct router *router;
        struct handler **handlers;              /* owned, the router's uds */
        size_t nhandlers, cap;
        struct http_request *deferred;
        int64_t request_timeout_ms;
        struct conn *dl_head, *dl_tail;         /* deadline list */
        struct loop_timer *dl_timer;
        int64_t dl_timer_at;
};

/* ---- response helpers ---- */

static bool header_text_ok(const char *s, bool name)
{
        if (!s || (name && !*s))
                return false;
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                if (*p == '\r' || *p == '\n')
                        return false;
                if (name && (*p <= ' ' || *p == ':' || *p >= 0x7f))
                        return false;
        }
        return true;
}

int http_response_header(struct http_response *r, const char *name, const char *value)
{
        char *n, *v;

        if (!header_text_ok(name, true) || !header_text_ok(value, false))
                return -EINVAL;
        if (r->nheaders >= HTTP_MAX_HEADERS)
                return -ENOSPC;
        n = strdup(name);
        v = strdup(value);
        if (!n || !v) {
                free(n);
                free(v);
                return -ENOMEM;
        }
        r->headers[r->nheaders].name = n;
        r->headers[r->nheaders].value = v;
        r->nheaders++;
        return 0;
}

int http_response_text(struct http_response *r, int status, const char *content_type,
                       const char *text)
{
        buffer_reset(&r->body);
        r->status = status;
        r->content_type = content_type;
        return buffer_puts(&r->body, text ? text : "");
}

int http_response_error(struct http_response *r, int status, const char *msg)
{
        int ret;

        buffer_reset(&r->body);
        r->status = status;
        r->content_type = "application/json";
        ret = buffer_puts(&r->body, "{\"error\":\"");
        for (const unsigned char *p = (const unsigned char *)(msg ? msg : ""); *p && ret == 0; p++) {
                if (*p == '"' || *p == '\\')
                        ret = buffer_printf(&r->body, "\\%c", *p);
                else if (*p < 0x20)
                        ret = buffer_printf(&r->body, "\\u%04x", *p);
                else
                        ret = buffer_putc(&r->body, (char)*p);
        }
        if (ret == 0)
                ret = buffer_puts(&r->body, "\"}");
        return ret;
}

static void response_clear_headers(struct http_response *r)
{
        for (size_t i = 0; i < r->nheaders; i++) {
                free(r->headers[i].name);
                free(r->headers[i].value);
        }
        r->nheaders = 0;
}

/* Replaces whatever a handler built with a JSON error. */
static void response_fail(struct http_response *r, int status, const char *msg)
{
        response_clear_headers(r);
        if (http_response_error(r, status, msg) < 0) {
                buffer_reset(&r->body); /* the status alone still goes out */
                r->status = status;
        }
}

/* ---- listen address ---- */

int http_server_parse_listen(const char *s, struct sockaddr_storage *ret_addr,
                             socklen_t *ret_len)
{
        struct hostport hp;

        if (hostport_parse(s, HOSTPORT_ANY_HOST, &hp, NULL) < 0)
                return -EINVAL;
        return hostport_sockaddr(&hp, ret_addr, ret_len);
}

static int bind_socket(struct sockaddr_storage *ss, socklen_t len, bool any, int backlog, int *ret_fd,
                       uint16_t *ret_port)
{
        int fd, one = 1, zero = 0, r;
        struct sockaddr_storage got;
        socklen_t gl = sizeof(got);

        fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
                goto err;
        /* ":port" means every interface: one IPv6 socket serving IPv4 too. */
        if (ss->ss_family == AF_INET6 &&
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, any ? &zero : &one, sizeof(int)) < 0)
                goto err;
        if (bind(fd, (struct sockaddr *)ss, len) < 0 || listen(fd, backlog) < 0 ||
            getsockname(fd, (struct sockaddr *)&got, &gl) < 0)
                goto err;
        *ret_port = ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port
                                                     : ((struct sockaddr_in *)&got)->sin_port);
        *ret_fd = fd;
        return 0;
err:
        r = -errno;
        close(fd);
        return r;
}

/* ---- driving MHD from the loop ---- */

static void on_timer(struct loop *l, void *ud);

static void rearm(struct http_server *s)
{
        MHD_UNSIGNED_LONG_LONG t;
        int64_t delay;

        if (s->timer) {
                loop_timer_cancel(s->loop, s->timer);
                s->timer = NULL;
        }
        if (s->kick) {
                delay = 0;
        } else if (MHD_get_timeout(s->mhd, &t) == MHD_YES) {
                delay = t > INT32_MAX ? INT32_MAX : (int64_t)t;
        } else {
                return;
        }
        /* On OOM the next socket event rearms. */
        s->timer = loop_timer_add(s->loop, delay, on_timer, s);
}

static void drive(struct http_server *s)
{
        unsigned before = s->nconn;

        s->kick = false;
        (void)MHD_run(s->mhd);
        /* At the connection limit MHD takes the listening socket out of its
         * epoll set and puts it back only at the start of a later MHD_run:
         * after connections closed, run again or queued clients would wait
         * for an unrelated event. */
        if (s->nconn < before)
                s->kick = true;
        rearm(s);
}

static void on_timer(struct loop *l, void *ud)
{
        struct http_server *s = ud;

        s->timer = NULL;
        drive(s);
}

static void on_epoll(struct loop *l, int fd, unsigned events, void *ud)
{
        drive(ud);
}

/* ---- request deadlines ---- */

/* MHD's connection timeout is an idle timeout: a client sending a byte now
 * and then keeps it from firing and holds its slot for ever. The deadline
 * list bounds the time to receive a request whatever the byte rate. */

static void dl_on_timer(struct loop *l, void *ud);

/* Called when the list gains a connection and after the timer fires. While
 * the timer is armed it is due no later than the head (the head only ever
 * moves later), so a removed head costs one early wake-up at most. */
static void dl_arm(struct http_server *s)
{
        int64_t delay;

        if (s->dl_timer || !s->dl_head || s->closing)
                return;
        delay = s->dl_head->deadline_ms - loop_now_ms(s->loop);
        /* On OOM the next connection or answer arms it. */
        s->dl_timer = loop_timer_add(s->loop, delay > 0 ? delay : 0, dl_on_timer, s);
}

static void dl_unlink(struct http_server *s, struct conn *k)
{
        if (!k->listed)
                return;
        if (k->prev)
                k->prev->next = k->next;
        else
                s->dl_head = k->next;
        if (k->next)
                k->next->prev = k->prev;
        else
                s->dl_tail = k->prev;
        k->prev = k->next = NULL;
        k->listed = false;
}

static void dl_push(struct http_server *s, struct conn *k)
{
        dl_unlink(s, k);
        k->deadline_ms = loop_now_ms(s->loop) + s->request_timeout_ms;
        k->prev = s->dl_tail;
        if (s->dl_tail)
                s->dl_tail->next = k;
        else
                s->dl_head = k;
        s->dl_tail = k;
        k->listed = true;
        dl_arm(s);
}

/* Ends a connection from outside MHD's callbacks without closing its fd
 * under MHD: after shutdown() its next read sees EOF and MHD closes it. */
static void conn_cut(struct MHD_Connection *c)
{
        const union MHD_ConnectionInfo *ci =
                MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);

        if (ci && ci->connect_fd >= 0)
                (void)shutdown(ci->connect_fd, SHUT_RDWR);
}

static void dl_on_timer(struct loop *l, void *ud)
{
        struct http_server *s = ud;
        int64_t now = loop_now_ms(l);
        bool cut = false;

        s->dl_timer = NULL;
        while (s->dl_head && s->dl_head->deadline_ms <= now) {
                struct conn *k = s->dl_head;
                dl_unlink(s, k);
                conn_cut(k->c);
                cut = true;
        }
        dl_arm(s);
        if (cut) {
                s->kick = true;
                rearm(s);
        }
}

/* ---- routing ---- */

int http_server_route(struct http_server *s, const char *method, const char *pattern,
                      http_handler_fn fn, void *ud)
{
        struct handler *h;
        int r;

        if (!fn)
                return -EINVAL;
        if (s->nhandlers == s->cap) {
                size_t ncap = s->cap ? s->cap * 2 : 16;
                struct handler **nh = realloc(s->handlers, ncap * sizeof(*nh));
                if (!nh)
                        return -ENOMEM;
                s->handlers = nh;
                s->cap = ncap;
        }
        h = malloc(sizeof(*h));
        if (!h)
                return -ENOMEM;
        h->fn = fn;
        h->ud = ud;
        r = router_add(s->router, method, pattern, h);
        if (r < 0) {
                free(h);
                return r;
        }
        s->handlers[s->nhandlers++] = h;
        return 0;
}

/* ---- requests ---- */

static void format_remote(struct MHD_Connection *c, char *out, size_t n)
{
        const union MHD_ConnectionInfo *ci =
                MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        char host[INET6_ADDRSTRLEN], serv[8];
        const struct sockaddr *sa;
        socklen_t len;

        snprintf(out, n, "-");
        if (!ci || !ci->client_addr)
                return;
        sa = ci->client_addr;
        len = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
        if (getnameinfo(sa, len, host, sizeof(host), serv, sizeof(serv),
                        NI_NUMERICHOST | NI_NUMERICSERV) != 0)
                return;
        snprintf(out, n, sa->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, serv);
}

static struct http_request *request_new(struct http_server *s, struct MHD_Connection *c,
                                        const char *url, const char *method)
{
        struct http_request *req = calloc(1, sizeof(*req));
        const union MHD_ConnectionInfo *ci;

        if (!req)
                return NULL;
        req->srv = s;
        req->conn = c;
        req->method = method;
        req->path = strdup(url);
        req->segbuf = strdup(url);
        if (!req->path || !req->segbuf) {
                free(req->path);
                free(req->segbuf);
                free(req);
                return NULL;
        }
        buffer_init(&req->body, s->max_body);
        buffer_init(&req->resp.body, s->max_response);
        req->start_ms = loop_now_ms(s->loop);
        ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        req->k = ci ? ci->socket_context : NULL;
        format_remote(c, req->remote, sizeof(req->remote));
        return req;
}

static void request_free(struct http_request *req)
{
        response_clear_headers(&req->resp);
        buffer_done(&req->resp.body);
        buffer_done(&req->body);
        free(req->path);
        free(req->segbuf);
        free(req);
}

static void deferred_unlink(struct http_request *req)
{
        struct http_server *s = req->srv;

        if (req->prev)
                req->prev->next = req->next;
        else if (s->deferred == req)
                s->deferred = req->next;
        if (req->next)
                req->next->prev = req->prev;
        req->prev = req->next = NULL;
}

static enum MHD_Result queue(struct http_request *req)
{
        struct http_response *r = &req->resp;
        struct MHD_Response *mr;
        enum MHD_Result ret;
        unsigned status;
        size_t len;
        char *body;

        body = buffer_steal(&r->body, &len);
        if (!body)
                return MHD_NO;
        mr = MHD_create_response_from_buffer_with_free_callback(len, body, free);
        if (!mr) {
                free(body);
                return MHD_NO;
        }
        (void)MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE,
                                      r->content_type ? r->content_type : "application/json");
        for (size_t i = 0; i < r->nheaders; i++)
                (void)MHD_add_response_header(mr, r->headers[i].name, r->headers[i].value);
        status = r->status >= 100 && r->status <= 599 ? (unsigned)r->status :
                 r->status == 0 ? 200u : 500u;
        ret = MHD_queue_response(req->conn, status, mr);
        MHD_destroy_response(mr);
        req->state = REQ_QUEUED;
        req->status_sent = ret == MHD_YES ? (int)status : 0;
        req->bytes_out = len;
        return ret;
}

static enum MHD_Result fail(struct http_request *req, int status, const char *msg)
{
        response_fail(&req->resp, status, msg);
        return queue(req);
}

static enum MHD_Result dispatch(struct http_request *req)
{
        struct http_server *s = req->srv;
        int r;

        if (req->too_big)
                return fail(req, 413, "request body too large");
        /* The request is whole: its deadline no longer applies. */
        if (req->k)
                dl_unlink(s, req->k);
        if (s->closing)
                return fail(req, 503, "server shutting down");
        req->state = REQ_HANDLER;
        r = req->h->fn(req, &req->resp, req->h->ud);
        if (r == HTTP_DEFER) {
                if (req->state == REQ_READY) /* answered from inside the handler */
                        return queue(req);
                req->state = REQ_DEFERRED;
                req->next = s->deferred;
                if (s->deferred)
                        s->deferred->prev = req;
                s->deferred = req;
                MHD_suspend_connection(req->conn);
                return MHD_YES;
        }
        if (r < 0)
                response_fail(&req->resp, 500, "internal error");
        return queue(req);
}

static bool content_length_too_big(struct http_request *req)
{
        const char *cl = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        char *end;
        long long v;

        if (!cl)
                return false;
        errno = 0;
        v = strtoll(cl, &end, 10);
        /* Malformed values are MHD's to reject; an overflow is too big. */
        if (errno == ERANGE)
                return true;
        return end != cl && v > 0 && (unsigned long long)v > req->srv->max_body;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version,
                                 const char *upload, size_t *upload_size, void **con_cls)
{
        struct http_server *s = cls;
        struct http_request *req = *con_cls;

        if (!req) {
                int r;

                req = request_new(s, c, url, method);
                if (!req)
                        return MHD_NO;
                *con_cls = req;
                r = router_match(s->router, method, req->segbuf, &req->m);
                if (r == ROUTER_WRONG_METHOD) {
                        response_fail(&req->resp, 405, "method not allowed");
                        (void)http_response_header(&req->resp, "Allow", req->m.allow);
                        return queue(req);
                }
                if (r != ROUTER_MATCH)
                        return fail(req, 404, "not found");
                req->h = req->m.ud;
                if (content_length_too_big(req))
                        return fail(req, 413, "request body too large");
                return MHD_YES;
        }

        switch (req->state) {
        case REQ_RECEIVING:
                if (*upload_size) {
                        size_t n = *upload_size;
                        req->bytes_in += n;
                        *upload_size = 0;
                        if (!req->too_big) {
                                int r = buffer_append(&req->body, upload, n);
                                if (r == -ENOMEM)
                                        return MHD_NO;
                                if (r < 0) {
                                        req->too_big = true;
                                        buffer_done(&req->body);
                                }
                        }
                        if (req->too_big && req->bytes_in / DRAIN_FACTOR > s->max_body)
                                return MHD_NO;
                        return MHD_YES;
                }
                return dispatch(req);
        case REQ_READY:
                return queue(req);
        case REQ_HANDLER:
        case REQ_DEFERRED:
        case REQ_ABORTING:
        case REQ_QUEUED:
                break;
        }
        return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
        struct http_server *s = cls;
        struct http_request *req = *con_cls;

        if (!req)
                return;
        *con_cls = NULL;
        /* A kept-alive connection gets a fresh deadline for its next
         * request; a closing one leaves the list in on_connection. */
        if (req->k)
                dl_push(s, req->k);
        if (req->state == REQ_DEFERRED) {
                /* Only reachable if MHD drops a parked connection itself. */
                deferred_unlink(req);
                req->state = REQ_ABORTING;
                if (req->abort_fn)
                        req->abort_fn(req, req->abort_ud);
        }
        if (s->access_log) {
                struct http_access a = {
                        .method = req->method,
                        .path = req->path,
                        .remote = req->remote,
                        .status = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? req->status_sent : 0,
                        .bytes_in = req->bytes_in,
                        .bytes_out = req->bytes_out,
                        .duration_ms = loop_now_ms(s->loop) - req->start_ms,
                };
                s->access_log(&a, s->access_log_ud);
        }
        request_free(req);
}

/* Counting here rather than asking MHD: its connection-count query also
 * reaps closed connections, which must not happen inside a handler. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_ctx,
                          enum MHD_ConnectionNotificationCode code)
{
        struct http_server *s = cls;
        struct conn *k;

        if (code == MHD_CONNECTION_NOTIFY_STARTED) {
                s->nconn++;
                k = calloc(1, sizeof(*k));
                if (!k) {
                        /* Its time could not be bounded: refuse it. */
                        conn_cut(c);
                        return;
                }
                k->c = c;
                *socket_ctx = k;
                dl_push(s, k);
        } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
                if (s->nconn > 0)
                        s->nconn--;
                k = *socket_ctx;
                if (k) {
                        dl_unlink(s, k);
                        free(k);
                        *socket_ctx = NULL;
                }
        }
}

/* MHD's own diagnostics (malformed requests, socket errors) only matter
 * when debugging; outcomes reach the access log. */
__attribute__((format(printf, 2, 0)))
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
        char msg[256];
        size_t n;

        vsnprintf(msg, sizeof(msg), fmt, ap);
        n = strlen(msg);
        while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
                msg[--n] = '\0';
        log_debug("http", "libmicrohttpd", KS("msg", msg));
}

/* ---- public request API ---- */

const char *http_request_method(const struct http_request *req)
{
        return req->method;
}

const char *http_request_path(const struct http_request *req)
{
        return req->path;
}

const char *http_request_param(const struct http_request *req, const char *name)
{
        return req->h ? router_match_param(&req->m, name) : NULL;
}

const char *http_request_query(const struct http_request *req, const char *key)
{
        return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, key);
}

const char *http_request_header(const struct http_request *req, const char *name)
{
        return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *http_request_body(const struct http_request *req, size_t *ret_len)
{
        if (ret_len)
                *ret_len = req->body.len;
        return buffer_str(&req->body);
}

const char *http_request_remote(const struct http_request *req)
{
        return req->remote;
}

struct http_response *http_request_response(struct http_request *req)
{
        return &req->resp;
}

void http_request_on_abort(struct http_request *req, http_abort_fn fn, void *ud)
{
        req->abort_fn = fn;
        req->abort_ud = ud;
}

void http_response_send(struct http_request *req)
{
        struct http_server *s = req->srv;

        switch (req->state) {
        case REQ_HANDLER:       /* answered before the handler returned */
        case REQ_ABORTING:      /* answered from the abort callback */
                req->state = REQ_READY;
                return;
        case REQ_DEFERRED:
                deferred_unlink(req);
                req->state = REQ_READY;
                MHD_resume_connection(req->conn);
                /* MHD picks resumed connections up in MHD_run. */
                s->kick = true;
                rearm(s);
                return;
        case REQ_RECEIVING:
        case REQ_READY:
        case REQ_QUEUED:
                return; /* not deferred, or already answered */
        }
}

/* ---- server ---- */

int http_server_new(struct loop *l, const struct http_server_config *cfg,
                    struct http_server **ret)
{
        struct sockaddr_storage ss;
        socklen_t len;
        const union MHD_DaemonInfo *info;
        struct http_server *s = NULL;
        int fd = -1, r;
        bool any;
        unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME;

        r = http_server_parse_listen(cfg->listen, &ss, &len);
        if (r < 0)
                return r;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->loop = l;
        s->epfd = -1;
        s->router = router_new(ROUTER_HEAD_AS_GET);
        if (!s->router) {
                r = -ENOMEM;
                goto err;
        }
        s->max_body = cfg->max_body ? cfg->max_body : HTTP_DEFAULT_MAX_BODY;
        s->max_response = cfg->max_response ? cfg->max_response : HTTP_DEFAULT_MAX_RESPONSE;
        s->access_log = cfg->access_log;
        s->access_log_ud = cfg->access_log_ud;
        s->request_timeout_ms = cfg->request_timeout_ms ? cfg->request_timeout_ms
                                                        : HTTP_DEFAULT_REQUEST_TIMEOUT_MS;

        any = ss.ss_family == AF_INET6 &&
              IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&ss)->sin6_addr);
        r = bind_socket(&ss, len, any, cfg->listen_backlog > 0 ? cfg->listen_backlog : LISTEN_BACKLOG, &fd, &s->port);
        if (r == -EAFNOSUPPORT && any) {
                /* No IPv6 on this host: "every interface" means IPv4 ones. */
                struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
                in_port_t port = ((struct sockaddr_in6 *)&ss)->sin6_port;
                memset(&ss, 0, sizeof(ss));
                a4->sin_family = AF_INET;
                a4->sin_port = port;
                a4->sin_addr.s_addr = htonl(INADDR_ANY);
                len = sizeof(*a4);
                r = bind_socket(&ss, len, false, cfg->listen_backlog > 0 ? cfg->listen_backlog : LISTEN_BACKLOG, &fd,
                                &s->port);
        }
        if (r < 0)
                goto err;
        if (ss.ss_family == AF_INET6)
                flags |= MHD_USE_IPv6;
        if (log_enabled(LOG_DEBUG))
                flags |= MHD_USE_ERROR_LOG;

        s->mhd = MHD_start_daemon(
                flags, 0, NULL, NULL, on_access, s,
                MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
                MHD_OPTION_LISTEN_SOCKET, fd,
                MHD_OPTION_CONNECTION_LIMIT,
                cfg->max_connections ? cfg->max_connections : HTTP_DEFAULT_MAX_CONNECTIONS,
                MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                cfg->max_per_client ? cfg->max_per_client : HTTP_DEFAULT_MAX_PER_CLIENT,
                MHD_OPTION_CONNECTION_TIMEOUT, cfg->timeout_s ? cfg->timeout_s : HTTP_DEFAULT_TIMEOUT_S,
                MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                (size_t)(cfg->max_header ? cfg->max_header : HTTP_DEFAULT_MAX_HEADER),
                MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
                MHD_OPTION_END);
        if (!s->mhd) {
                /* Whether MHD closed the socket on failure depends on where
                 * it failed: close it only if it is still open. */
                if (fcntl(fd, F_GETFD) >= 0)
                        close(fd);
                r = -EINVAL;
                goto err;
        }
        info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
        if (!info) {
                r = -EINVAL;
                goto err;
        }
        s->epfd = info->epoll_fd;
        r = loop_io_add(l, s->epfd, LOOP_READ, on_epoll, s);
        if (r < 0)
                goto err;
        s->watching = true;
        rearm(s);
        *ret = s;
        return 0;
err:
        http_server_free(s);
        return r;
}

void http_server_free(struct http_server *s)
{
        if (!s)
                return;
        s->closing = true;
        /* MHD must not be stopped with parked connections: tell each owner,
         * answer with 503 (unless the owner answers itself), resume, and let
         * one MHD_run hand the answers over. */
        while (s->deferred) {
                struct http_request *req = s->deferred;
                deferred_unlink(req);
                req->state = REQ_ABORTING;
                if (req->abort_fn)
                        req->abort_fn(req, req->abort_ud);
                if (req->state == REQ_ABORTING)
                        response_fail(&req->resp, 503, "server shutting down");
                req->state = REQ_READY;
                MHD_resume_connection(req->conn);
        }
        if (s->timer)
                loop_timer_cancel(s->loop, s->timer);
        if (s->watching)
                loop_io_del(s->loop, s->epfd);
        if (s->mhd) {
                (void)MHD_run(s->mhd);
                MHD_stop_daemon(s->mhd); /* closes the listening socket */
        }
        if (s->dl_timer)
                loop_timer_cancel(s->loop, s->dl_timer);
        router_free(s->router);
        for (size_t i = 0; i < s->nhandlers; i++)
                free(s->handlers[i]);
        free(s->handlers);
        free(s);
}

uint16_t http_server_port(const struct http_server *s)
{
        return s->port;
}

unsigned http_server_connections(const struct http_server *s)
{
        return s->nconn;
}
