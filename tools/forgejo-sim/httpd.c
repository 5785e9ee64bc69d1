/* httpd.c: the simulator's HTTP front end on libmicrohttpd: the route
 * table (matched with the daemon's http/router.h), request body limits,
 * per-route request statistics and injected faults. The only file that
 * includes microhttpd.h. Handlers never see a fault: faults are
 * applied before or after the handler runs, never inside it; control
 * routes under /_sim/ are never faulted and never counted. */
#include "sim.h"

#include <errno.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "http/router.h"
#include "util/log.h"

#define CONNECTION_TIMEOUT_S 120
/* Every live worker keeps a connection open; a 1,000-worker benchmark plus
 * the daemon's own connections must fit. */
#define MAX_CONNECTIONS 4096

enum route_kind { RK_REST, RK_RPC, RK_CTL };

typedef void (*route_fn)(const struct sim_req *rq, struct sim_resp *rs);

struct route {
        const char *method;
        const char *pattern;
        route_fn fn;
        int arg;
        enum route_kind kind;
};

#define REST(m, p, f, a) { m, "/api/v1" p, f, a, RK_REST }
#define RPC(p, f)        { "POST", "/api/actions/" p, f, 0, RK_RPC }
#define CTL(m, p, f)     { m, "/_sim" p, f, 0, RK_CTL }

/* Literal segments are listed before {captures} that would also match. */
static const struct route routes[] = {
        REST("GET", "/version", rest_version, 0),
        REST("GET", "/user", rest_user, 0),

        REST("GET", "/admin/actions/runners/jobs", rest_jobs, SCOPE_ADMIN),
        REST("GET", "/admin/runners/jobs", rest_jobs, SCOPE_ADMIN),
        REST("GET", "/orgs/{org}/actions/runners/jobs", rest_jobs, SCOPE_ORG),
        REST("GET", "/user/actions/runners/jobs", rest_jobs, SCOPE_USER),
        REST("GET", "/repos/{owner}/{repo}/actions/runners/jobs", rest_jobs, SCOPE_REPO),

        REST("GET", "/admin/runners/registration-token", rest_reg_token, SCOPE_ADMIN),
        REST("GET", "/admin/actions/runners/registration-token", rest_reg_token, SCOPE_ADMIN),
        REST("GET", "/orgs/{org}/actions/runners/registration-token", rest_reg_token, SCOPE_ORG),
        REST("GET", "/user/actions/runners/registration-token", rest_reg_token, SCOPE_USER),
        REST("GET", "/repos/{owner}/{repo}/actions/runners/registration-token", rest_reg_token,
             SCOPE_REPO),

        REST("GET", "/admin/actions/runners", rest_runners_list, SCOPE_ADMIN),
        REST("POST", "/admin/actions/runners", rest_runners_create, SCOPE_ADMIN),
        REST("GET", "/admin/actions/runners/{id}", rest_runner_get, SCOPE_ADMIN),
        REST("DELETE", "/admin/actions/runners/{id}", rest_runner_delete, SCOPE_ADMIN),
        REST("GET", "/orgs/{org}/actions/runners", rest_runners_list, SCOPE_ORG),
        REST("POST", "/orgs/{org}/actions/runners", rest_runners_create, SCOPE_ORG),
        REST("GET", "/orgs/{org}/actions/runners/{id}", rest_runner_get, SCOPE_ORG),
        REST("DELETE", "/orgs/{org}/actions/runners/{id}", rest_runner_delete, SCOPE_ORG),
        REST("GET", "/user/actions/runners", rest_runners_list, SCOPE_USER),
        REST("POST", "/user/actions/runners", rest_runners_create, SCOPE_USER),
        REST("GET", "/user/actions/runners/{id}", rest_runner_get, SCOPE_USER),
        REST("DELETE", "/user/actions/runners/{id}", rest_runner_delete, SCOPE_USER),
        REST("GET", "/repos/{owner}/{repo}/actions/runners", rest_runners_list, SCOPE_REPO),
        REST("POST", "/repos/{owner}/{repo}/actions/runners", rest_runners_create, SCOPE_REPO),
        REST("GET", "/repos/{owner}/{repo}/actions/runners/{id}", rest_runner_get, SCOPE_REPO),
        REST("DELETE", "/repos/{owner}/{repo}/actions/runners/{id}", rest_runner_delete,
             SCOPE_REPO),

        RPC("ping.v1.PingService/Ping", rpcsrv_ping),
        RPC("runner.v1.RunnerService/Register", rpcsrv_register),
        RPC("runner.v1.RunnerService/Declare", rpcsrv_declare),
        RPC("runner.v1.RunnerService/FetchTask", rpcsrv_fetch_task),
        RPC("runner.v1.RunnerService/FetchSingleTask", rpcsrv_fetch_single_task),
        RPC("runner.v1.RunnerService/UpdateTask", rpcsrv_update_task),
        RPC("runner.v1.RunnerService/UpdateLog", rpcsrv_update_log),

        CTL("POST", "/users", ctl_users_create),
        CTL("POST", "/orgs", ctl_orgs_create),
        CTL("POST", "/repos", ctl_repos_create),
        CTL("POST", "/jobs", ctl_jobs_create),
        CTL("GET", "/jobs", ctl_jobs_list),
        CTL("GET", "/jobs/{id}", ctl_job_get),
        CTL("POST", "/jobs/{id}/cancel", ctl_job_cancel),
        CTL("GET", "/runners", ctl_runners_list),
        CTL("GET", "/stats", ctl_stats_get),
        CTL("DELETE", "/stats", ctl_stats_reset),
        CTL("POST", "/faults", ctl_faults_add),
        CTL("GET", "/faults", ctl_faults_list),
        CTL("DELETE", "/faults", ctl_faults_clear),
        CTL("GET", "/clock", ctl_clock_get),
        CTL("POST", "/clock", ctl_clock_advance),
};

#define N_ROUTES (sizeof(routes) / sizeof(routes[0]))

struct httpd {
        struct sim *sim;
        struct MHD_Daemon *daemon;
        struct router *router;          /* built before serving, then only read */
        atomic_bool stopping;
};

/* Per-request state, from the first callback to request completion. */
struct conn_req {
        struct httpd *h;
        const struct route *route;      /* NULL: no route for method+path */
        bool path_known;                /* some route has this path */
        bool control;
        char *path;
        char *segbuf;                   /* path split by the router */
        const char *params[SIM_MAX_PARAMS]; /* point into segbuf */
        char *body;
        size_t len, cap;
        size_t max_body;
        bool too_large;
        bool has_fault;
        struct fault fault;             /* copy; path_prefix and next unused */
};

/* ---- helpers used by handlers ------------------------------------------- */

const char *httpd_header(const struct sim_req *rq, const char *name)
{
        return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

bool httpd_query(const struct sim_req *rq, const char *name, const char **ret_value)
{
        const char *v = NULL;
        size_t vlen = 0;

        if (MHD_lookup_connection_value_n(rq->conn, MHD_GET_ARGUMENT_KIND, name, strlen(name),
                                          &v, &vlen) != MHD_YES)
                return false;
        *ret_value = v ? v : "";
        return true;
}

void resp_json(struct sim_resp *rs, int status, json_t *j)
{
        char *body = NULL;

        if (j)
                body = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(9));
        json_decref(j);
        free(rs->body);
        if (!body) {
                rs->status = 500;
                rs->body = strdup("{\"message\":\"out of memory\"}");
        } else {
                rs->status = status;
                rs->body = body;
        }
        rs->len = rs->body ? strlen(rs->body) : 0;
        rs->content_type = "application/json;charset=utf-8";
        rs->content_encoding = NULL;
}

void resp_message(struct sim_resp *rs, int status, const char *fmt, ...)
{
        char msg[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        resp_json(rs, status, json_pack("{s:s}", "message", msg));
}

void resp_connect_error(struct sim_resp *rs, enum rp_code code, const char *fmt, ...)
{
        struct rp_error e = { .code = code };
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(e.message, sizeof(e.message), fmt, ap);
        va_end(ap);
        resp_json(rs, rp_code_http_status(code), rp_error_to_json(&e));
        rs->content_type = "application/json";
}

/* ---- routing ------------------------------------------------------------ */

/* Finds the route for method and path. A path routed for other methods
 * still gets a route (the first with that path): requests are counted by
 * pattern and answered 405. */
static void route_lookup(struct conn_req *cr, const char *method)
{
        struct router_match m;
        int r = router_match(cr->h->router, method, cr->segbuf, &m);

        if (r < 0)
                return;
        cr->path_known = true;
        cr->route = m.ud;
        if (r != ROUTER_MATCH)
                return;
        /* httpd_start() refused patterns with more. */
        for (size_t i = 0; i < m.nparams && i < SIM_MAX_PARAMS; i++)
                cr->params[i] = m.value[i];
}

/* ---- stats -------------------------------------------------------------- */

static void stats_count(struct sim *s, const char *method, const char *pattern)
{
        char key[256];
        int64_t *c;

        snprintf(key, sizeof(key), "%s %s", method, pattern);
        pthread_mutex_lock(&s->aux_lock);
        c = hmap_get(&s->stats, key);
        if (!c && (c = calloc(1, sizeof(*c))) && hmap_add(&s->stats, key, c) < 0) {
                free(c);
                c = NULL;
        }
        if (c)
                (*c)++;
        pthread_mutex_unlock(&s->aux_lock);
}

/* ---- faults ------------------------------------------------------------- */

static void fault_free(struct fault *f)
{
        if (f) {
                free(f->path_prefix);
                free(f);
        }
}

void httpd_faults_clear(struct sim *s)
{
        pthread_mutex_lock(&s->aux_lock);
        while (s->faults) {
                struct fault *f = s->faults;
                s->faults = f->next;
                fault_free(f);
        }
        pthread_mutex_unlock(&s->aux_lock);
}

/* Takes the first matching fault for this request and uses up one count. */
static bool fault_take(struct sim *s, const char *method, const char *path, struct fault *ret)
{
        bool found = false;

        pthread_mutex_lock(&s->aux_lock);
        for (struct fault **pp = &s->faults; *pp; pp = &(*pp)->next) {
                struct fault *f = *pp;
                if (strncmp(path, f->path_prefix, strlen(f->path_prefix)) != 0 ||
                    (f->method[0] && strcmp(method, f->method) != 0))
                        continue;
                *ret = *f;
                ret->path_prefix = NULL;
                ret->next = NULL;
                found = true;
                if (f->remaining > 0 && --f->remaining == 0) {
                        *pp = f->next;
                        fault_free(f);
                }
                break;
        }
        pthread_mutex_unlock(&s->aux_lock);
        return found;
}

static void sleep_interruptible(struct httpd *h, double seconds)
{
        int64_t end = sim_mono_ms() + (int64_t)(seconds * 1000.0);

        for (;;) {
                int64_t left = end - sim_mono_ms();
                if (left <= 0 || atomic_load(&h->stopping))
                        return;
                if (left > 50)
                        left = 50;
                struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)left * 1000000L };
                nanosleep(&ts, NULL);
        }
}

static void fault_response(const struct conn_req *cr, const struct fault *f, struct sim_resp *rs)
{
        free(rs->body);
        free(rs->link);
        memset(rs, 0, sizeof(*rs));
        rs->total_count = -1;
        if (f->mode == FAULT_GARBAGE) {
                rs->status = 200;
                rs->body = strdup("<<injected garbage: this is not JSON>>");
                rs->len = rs->body ? strlen(rs->body) : 0;
                rs->content_type = "application/json";
                return;
        }
        if (strncmp(cr->path, RP_PATH_PREFIX, strlen(RP_PATH_PREFIX)) == 0) {
                struct rp_error e = { .code = rp_code_from_http_status(f->status) };
                snprintf(e.message, sizeof(e.message), "injected fault");
                resp_json(rs, f->status, rp_error_to_json(&e));
                rs->content_type = "application/json";
        } else {
                resp_message(rs, f->status, "injected fault");
        }
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

static enum MHD_Result send_resp(struct MHD_Connection *c, struct sim_resp *rs)
{
        struct MHD_Response *r;
        enum MHD_Result ret;
        char num[32];

        if (rs->body) {
                r = MHD_create_response_from_buffer(rs->len, rs->body, MHD_RESPMEM_MUST_FREE);
                if (!r)
                        return MHD_NO;
                rs->body = NULL;
        } else {
                r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
                if (!r)
                        return MHD_NO;
        }
        if (rs->content_type && rs->status != 204)
                MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, rs->content_type);
        if (rs->content_encoding && rs->status != 204)
                MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_ENCODING, rs->content_encoding);
        if (rs->total_count >= 0) {
                snprintf(num, sizeof(num), "%lld", rs->total_count);
                MHD_add_response_header(r, "X-Total-Count", num);
        }
        if (rs->link)
                MHD_add_response_header(r, "Link", rs->link);
        ret = MHD_queue_response(c, (unsigned int)rs->status, r);
        MHD_destroy_response(r);
        return ret;
}

static void resp_done(struct sim_resp *rs)
{
        free(rs->body);
        free(rs->link);
        rs->body = NULL;
        rs->link = NULL;
}

static bool is_control_path(const char *path)
{
        return strcmp(path, "/_sim") == 0 || strncmp(path, "/_sim/", 6) == 0;
}

static enum MHD_Result first_call(struct httpd *h, struct MHD_Connection *c, const char *url,
                                  const char *method, void **con_cls)
{
        struct conn_req *cr = calloc(1, sizeof(*cr));
        const char *cl;

        if (!cr)
                return MHD_NO;
        cr->h = h;
        cr->path = strdup(url);
        cr->segbuf = strdup(url);
        if (!cr->path || !cr->segbuf) {
                free(cr->path);
                free(cr->segbuf);
                free(cr);
                return MHD_NO;
        }
        *con_cls = cr;
        cr->control = is_control_path(cr->path);
        cr->max_body = strncmp(cr->path, RP_PATH_PREFIX, strlen(RP_PATH_PREFIX)) == 0 ?
                       SIM_MAX_RPC_BODY : SIM_MAX_BODY;
        route_lookup(cr, method);
        if (!cr->control) {
                stats_count(h->sim, method, cr->path_known ? cr->route->pattern : "*");
                cr->has_fault = fault_take(h->sim, method, cr->path, &cr->fault);
        }
        cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
                char *end;
                errno = 0;
                unsigned long long n = strtoull(cl, &end, 10);
                if (errno || end == cl || n > cr->max_body)
                        cr->too_large = true;
        }
        return MHD_YES;
}

static enum MHD_Result handle(struct httpd *h, struct MHD_Connection *c, const char *method,
                              struct conn_req *cr)
{
        struct sim_resp rs = { .status = 500, .total_count = -1 };
        struct sim_req rq = {
                .sim = h->sim,
                .conn = c,
                .method = method,
                .path = cr->path,
                .body = cr->body ? cr->body : "",
                .body_len = cr->len,
        };
        enum MHD_Result ret;

        if (cr->has_fault && !cr->fault.after) {
                switch (cr->fault.mode) {
                case FAULT_RESET:
                        return MHD_NO;
                case FAULT_DELAY:
                        sleep_interruptible(h, cr->fault.seconds);
                        break;
                case FAULT_STATUS:
                case FAULT_GARBAGE:
                        fault_response(cr, &cr->fault, &rs);
                        goto send;
                }
        }
        if (cr->too_large) {
                if (cr->route && cr->route->kind == RK_RPC)
                        resp_connect_error(&rs, RP_CODE_RESOURCE_EXHAUSTED,
                                           "request body larger than %zu bytes", cr->max_body);
                else
                        resp_message(&rs, 413, "request body larger than %zu bytes", cr->max_body);
                rs.status = 413;
        } else if (!cr->path_known) {
                if (strncmp(cr->path, RP_PATH_PREFIX, strlen(RP_PATH_PREFIX)) == 0)
                        resp_connect_error(&rs, RP_CODE_UNIMPLEMENTED, "%s is not implemented",
                                           cr->path);
                else
                        resp_message(&rs, 404, "not found");
                rs.status = 404;
        } else if (strcmp(cr->route->method, method) != 0) {
                resp_message(&rs, 405, "method not allowed");
        } else {
                for (size_t i = 0; i < SIM_MAX_PARAMS; i++)
                        rq.params[i] = cr->params[i];
                rq.arg = cr->route->arg;
                cr->route->fn(&rq, &rs);
        }
        if (cr->has_fault && cr->fault.after) {
                switch (cr->fault.mode) {
                case FAULT_RESET:
                        resp_done(&rs);
                        return MHD_NO;
                case FAULT_DELAY:
                        sleep_interruptible(h, cr->fault.seconds);
                        break;
                case FAULT_STATUS:
                case FAULT_GARBAGE:
                        fault_response(cr, &cr->fault, &rs);
                        break;
                }
        }
send:
        if (log_enabled(LOG_DEBUG))
                log_debug("http", "request", KS("method", method), KS("path", cr->path),
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
        if (!cr)
                return first_call(h, c, url, method, con_cls);
        if (*upload_data_size) {
                size_t n = *upload_data_size;
                *upload_data_size = 0;
                if (cr->too_large || n > cr->max_body - cr->len) {
                        cr->too_large = true;
                        return MHD_YES;
                }
                if (cr->len + n + 1 > cr->cap) {
                        size_t cap = cr->cap ? cr->cap : 1024;
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

/* The route table; a pattern with more captures than a handler can see is
 * a programming error caught at start. */
static struct router *routes_build(void)
{
        struct router *r = router_new(0);

        for (size_t i = 0; r && i < N_ROUTES; i++) {
                size_t ncap = 0;
                for (const char *p = routes[i].pattern; *p; p++)
                        ncap += *p == '{';
                if (ncap > SIM_MAX_PARAMS ||
                    router_add(r, routes[i].method, routes[i].pattern, (void *)&routes[i]) < 0) {
                        log_error("http", "bad route", KS("method", routes[i].method),
                                  KS("pattern", routes[i].pattern));
                        router_free(r);
                        r = NULL;
                }
        }
        return r;
}

struct httpd *httpd_start(struct sim *s, int listen_fd)
{
        struct httpd *h = calloc(1, sizeof(*h));

        if (!h) {
                close(listen_fd);
                return NULL;
        }
        h->sim = s;
        atomic_init(&h->stopping, false);
        h->router = routes_build();
        if (!h->router) {
                close(listen_fd);
                free(h);
                return NULL;
        }
        h->daemon = MHD_start_daemon(
                MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL |
                        MHD_USE_ITC,
                0, NULL, NULL, on_request, h,
                MHD_OPTION_LISTEN_SOCKET, (MHD_socket)listen_fd,
                MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)CONNECTION_TIMEOUT_S,
                MHD_OPTION_CONNECTION_LIMIT, (unsigned int)MAX_CONNECTIONS,
                MHD_OPTION_END);
        if (!h->daemon) {
                close(listen_fd);
                router_free(h->router);
                free(h);
                return NULL;
        }
        return h;
}

void httpd_stop(struct httpd *h)
{
        if (!h)
                return;
        atomic_store(&h->stopping, true);
        /* Stop accepting, then give connection threads a moment to finish
         * before tearing them down: MHD 0.9.75 can crash in a connection
         * thread that is closing while MHD_stop_daemon() runs. */
        MHD_socket ls = MHD_quiesce_daemon(h->daemon);
        for (int i = 0; i < 30; i++) {
                const union MHD_DaemonInfo *info =
                        MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
                if (!info || info->num_connections == 0)
                        break;
                usleep(10000);
        }
        MHD_stop_daemon(h->daemon);
        if (ls != MHD_INVALID_SOCKET)
                close(ls);
        router_free(h->router);
        free(h);
}
