/* test_server.c: the HTTP server inside a real event loop on 127.0.0.1.
 * The loop runs on the test's main thread (as in the daemon); each client
 * exchange runs on a short-lived thread (libcurl or a raw socket) that
 * wakes the loop through a pipe when it is done. Covers routing, params,
 * query strings, bodies and their limits, deferred answers, fd hygiene,
 * garbage input, idle timeouts and /metrics. */
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <cmocka.h>

#include "http/metrics.h"
#include "http/server.h"
#include "loop/loop.h"
#include "util/log.h"

/* ---- client side (runs on its own thread) ---- */

enum job_kind { JOB_CURL, JOB_RAW, JOB_IDLE, JOB_TRICKLE };

struct job {
        enum job_kind kind;
        const char *method;
        char url[512];
        const char *body;
        size_t body_len;
        bool chunked;
        bool expect;            /* send Expect: 100-continue */
        size_t sent;            /* chunked upload progress */
        int repeat;             /* JOB_CURL: number of sequential requests */
        const char *raw;        /* JOB_RAW: bytes to send */
        size_t raw_len;
        bool raw_shutdown;      /* JOB_RAW: half-close after sending */
        int retry_ms;           /* JOB_CURL: retry a failed request for this long */
        int trickle_every_ms;   /* JOB_TRICKLE: one header byte per interval ... */
        int trickle_for_ms;     /* ... for this long, or until the server closes */

        /* results */
        long status;
        int failures;           /* JOB_CURL: requests that failed or were not 2xx */
        CURLcode rc;
        char body_out[8192];
        size_t body_out_len;
        char allow[256];
        char ctype[256];
        char xecho[64];
        int64_t elapsed_ms;
        int64_t end_ms;         /* monotonic time of completion */
        bool got_eof;

        /* plumbing */
        int pipe[2];
        pthread_t th;
        bool done;
};

static int64_t mono_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t on_body(char *p, size_t sz, size_t nm, void *ud)
{
        struct job *j = ud;
        size_t n = sz * nm;
        size_t room = sizeof(j->body_out) - 1 - j->body_out_len;
        size_t c = n < room ? n : room;

        memcpy(j->body_out + j->body_out_len, p, c);
        j->body_out_len += c;
        j->body_out[j->body_out_len] = '\0';
        return n;
}

static void copy_header_value(char *dst, size_t n, const char *p, size_t len)
{
        while (len && (p[len - 1] == '\r' || p[len - 1] == '\n'))
                len--;
        while (len && *p == ' ') {
                p++;
                len--;
        }
        snprintf(dst, n, "%.*s", (int)len, p);
}

static size_t on_header(char *p, size_t sz, size_t nm, void *ud)
{
        struct job *j = ud;
        size_t n = sz * nm;

        if (n > 6 && strncasecmp(p, "Allow:", 6) == 0)
                copy_header_value(j->allow, sizeof(j->allow), p + 6, n - 6);
        if (n > 13 && strncasecmp(p, "Content-Type:", 13) == 0)
                copy_header_value(j->ctype, sizeof(j->ctype), p + 13, n - 13);
        if (n > 7 && strncasecmp(p, "X-Echo:", 7) == 0)
                copy_header_value(j->xecho, sizeof(j->xecho), p + 7, n - 7);
        return n;
}

/* Hands out the body in 1000-byte pieces, so a chunked upload really has
 * several chunks. */
static size_t on_read(char *p, size_t sz, size_t nm, void *ud)
{
        struct job *j = ud;
        size_t n = sz * nm, left = j->body_len - j->sent;

        if (n > 1000)
                n = 1000;
        if (n > left)
                n = left;
        memcpy(p, j->body + j->sent, n);
        j->sent += n;
        return n;
}

static void curl_once(struct job *j)
{
        CURL *c = curl_easy_init();
        struct curl_slist *h = NULL;

        j->body_out_len = 0;
        j->body_out[0] = '\0';
        j->allow[0] = j->ctype[0] = j->xecho[0] = '\0';
        j->status = 0;
        curl_easy_setopt(c, CURLOPT_URL, j->url);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, j);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, j);
        if (j->method)
                curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, j->method);
        if (j->method && strcmp(j->method, "HEAD") == 0)
                curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
        if (!j->expect)
                h = curl_slist_append(h, "Expect:");
        else
                h = curl_slist_append(h, "Expect: 100-continue");
        if (j->chunked)
                h = curl_slist_append(h, "Transfer-Encoding: chunked");
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        if (j->body && j->chunked) {
                /* No size known up front: curl streams it chunked. */
                j->sent = 0;
                curl_easy_setopt(c, CURLOPT_POST, 1L);
                curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
                curl_easy_setopt(c, CURLOPT_READDATA, j);
        } else if (j->body) {
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, j->body);
                curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->body_len);
        }
        j->rc = curl_easy_perform(c);
        if (j->rc == CURLE_OK)
                curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &j->status);
        curl_slist_free_all(h);
        curl_easy_cleanup(c);
}

static int connect_server(const struct job *j)
{
        struct sockaddr_in a = { .sin_family = AF_INET };
        unsigned port;
        struct timeval tv = { .tv_sec = 5 };
        int fd;

        if (sscanf(j->url, "http://127.0.0.1:%u", &port) != 1)
                return -1;
        a.sin_port = htons((uint16_t)port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -1;
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
                close(fd);
                return -1;
        }
        return fd;
}

/* Reads until EOF (or the 5 s receive timeout) into body_out. */
static void read_all(struct job *j, int fd)
{
        j->body_out_len = 0;
        for (;;) {
                size_t room = sizeof(j->body_out) - 1 - j->body_out_len;
                char sink[4096];
                ssize_t n = room ? read(fd, j->body_out + j->body_out_len, room) :
                                   read(fd, sink, sizeof(sink));
                if (n == 0) {
                        j->got_eof = true;
                        break;
                }
                if (n < 0) {
                        if (errno == ECONNRESET)
                                j->got_eof = true;
                        break;
                }
                if (room)
                        j->body_out_len += (size_t)n;
        }
        j->body_out[j->body_out_len] = '\0';
}

/* Sends a request line, then one header byte per interval: a client that
 * never finishes its request yet is never idle. Stops when the server
 * closes (got_eof) or after trickle_for_ms. */
static void trickle(struct job *j, int fd, int64_t t0)
{
        static const char line[] = "GET /pools/a/runners/b HTTP/1.1\r\nX-Slow: ";
        const char *start = j->raw ? j->raw : line;
        size_t len = j->raw ? j->raw_len : sizeof(line) - 1;

        if (send(fd, start, len, MSG_NOSIGNAL) < 0) {
                j->got_eof = true;
                return;
        }
        while (mono_ms() - t0 < j->trickle_for_ms) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                char c;

                if (poll(&p, 1, j->trickle_every_ms) > 0) {
                        ssize_t n = read(fd, &c, 1);
                        if (n == 0 || (n < 0 && errno == ECONNRESET)) {
                                j->got_eof = true;
                                return;
                        }
                        /* an early answer: keep reading until the close */
                        continue;
                }
                if (send(fd, "x", 1, MSG_NOSIGNAL) < 0) {
                        j->got_eof = true;
                        return;
                }
        }
}

static void *client_main(void *ud)
{
        struct job *j = ud;
        int64_t t0 = mono_ms();
        int fd;

        switch (j->kind) {
        case JOB_CURL:
                for (int i = 0; i < (j->repeat ? j->repeat : 1); i++) {
                        curl_once(j);
                        while (j->rc != CURLE_OK && mono_ms() - t0 < j->retry_ms) {
                                usleep(50 * 1000);
                                curl_once(j);
                        }
                        if (j->rc != CURLE_OK || j->status < 200 || j->status > 299)
                                j->failures++;
                }
                break;
        case JOB_TRICKLE:
                fd = connect_server(j);
                if (fd < 0)
                        break;
                trickle(j, fd, t0);
                close(fd);
                break;
        case JOB_RAW:
                fd = connect_server(j);
                if (fd < 0)
                        break;
                for (size_t off = 0; off < j->raw_len;) {
                        ssize_t n = send(fd, j->raw + off, j->raw_len - off, MSG_NOSIGNAL);
                        if (n <= 0)
                                break;
                        off += (size_t)n;
                }
                if (j->raw_shutdown)
                        shutdown(fd, SHUT_WR);
                read_all(j, fd);
                close(fd);
                break;
        case JOB_IDLE:
                fd = connect_server(j);
                if (fd < 0)
                        break;
                read_all(j, fd);
                close(fd);
                break;
        }
        j->end_ms = mono_ms();
        j->elapsed_ms = j->end_ms - t0;
        (void)!write(j->pipe[1], "x", 1);
        return NULL;
}

/* ---- server side (the loop's thread) ---- */

struct ctx {
        struct loop *loop;
        struct http_server *srv;
        struct metrics *reg;
        struct metric *requests;
        char base[64];
        int naccess;
        struct http_access last_access;
        char last_path[256];
        struct http_request *parked;
        struct http_server *other;
        unsigned want_conns;
        bool aborted;
        int deferred_answered;
};

static void on_job_done(struct loop *l, int fd, unsigned events, void *ud)
{
        struct job *j = ud;
        char c;

        (void)!read(fd, &c, 1);
        j->done = true;
        loop_io_del(l, fd);
}

static void job_start(struct ctx *t, struct job *j)
{
        assert_int_equal(pipe2(j->pipe, O_CLOEXEC), 0);
        assert_int_equal(loop_io_add(t->loop, j->pipe[0], LOOP_READ, on_job_done, j), 0);
        assert_int_equal(pthread_create(&j->th, NULL, client_main, j), 0);
}

static void job_wait(struct ctx *t, struct job *j)
{
        int64_t deadline = mono_ms() + 15000;

        while (!j->done && mono_ms() < deadline)
                assert_int_equal(loop_run_once(t->loop, 100), 0);
        assert_true(j->done);
        pthread_join(j->th, NULL);
        close(j->pipe[0]);
        close(j->pipe[1]);
}

static void job_run(struct ctx *t, struct job *j)
{
        job_start(t, j);
        job_wait(t, j);
}

/* Runs the loop until cond(t) holds or ms pass. */
static bool run_until(struct ctx *t, bool (*cond)(struct ctx *t), int64_t ms)
{
        int64_t deadline = mono_ms() + ms;

        while (!cond(t) && mono_ms() < deadline)
                assert_int_equal(loop_run_once(t->loop, 20), 0);
        return cond(t);
}

static void set_url(struct ctx *t, struct job *j, const char *path)
{
        snprintf(j->url, sizeof(j->url), "%s%s", t->base, path);
}

static int count_fds(void)
{
        DIR *d = opendir("/proc/self/fd");
        struct dirent *e;
        int n = 0;

        if (!d)
                return -1;
        while ((e = readdir(d)))
                if (e->d_name[0] != '.')
                        n++;
        closedir(d);
        return n - 1; /* the directory's own fd */
}

/* GET /pools/{pool}/runners/{id}: echoes params and the "state" query. */
static int h_runner(struct http_request *req, struct http_response *resp, void *ud)
{
        struct ctx *t = ud;
        const char *state = http_request_query(req, "state");

        metrics_inc(t->requests, (const char *[]){ "runner" }, 1);
        resp->status = 200;
        resp->content_type = "application/json";
        return buffer_printf(&resp->body, "{\"pool\":\"%s\",\"id\":\"%s\",\"state\":\"%s\",\"path\":\"%s\"}",
                             http_request_param(req, "pool"), http_request_param(req, "id"),
                             state ? state : "(none)", http_request_path(req));
}

/* POST /echo: returns the body, its length and a request header. */
static int h_echo(struct http_request *req, struct http_response *resp, void *ud)
{
        size_t len;
        const char *body = http_request_body(req, &len);
        const char *hdr = http_request_header(req, "x-test");
        int r;

        r = buffer_printf(&resp->body, "%zu:%s:", len, hdr ? hdr : "-");
        if (r == 0)
                r = buffer_append(&resp->body, body, len);
        if (r == 0)
                r = http_response_header(resp, "X-Echo", "yes");
        resp->status = 201;
        resp->content_type = "text/plain";
        return r;
}

static int h_fail(struct http_request *req, struct http_response *resp, void *ud)
{
        return -EIO;
}

static int h_metrics(struct http_request *req, struct http_response *resp, void *ud)
{
        struct ctx *t = ud;

        metrics_inc(t->requests, (const char *[]){ "metrics" }, 1);
        resp->content_type = METRICS_CONTENT_TYPE;
        return metrics_render(t->reg, &resp->body);
}

static void answer_later(struct loop *l, void *ud)
{
        struct ctx *t = ud;
        struct http_request *req = t->parked;

        t->parked = NULL;
        t->deferred_answered++;
        assert_int_equal(http_response_text(http_request_response(req), 202, "text/plain",
                                            "answered later"), 0);
        http_response_send(req);
}

static void on_abort(struct http_request *req, void *ud)
{
        struct ctx *t = ud;

        assert_ptr_equal(req, t->parked);
        t->parked = NULL;
        t->aborted = true;
}

/* GET /later: answered 100 ms later from a loop timer. */
static int h_later(struct http_request *req, struct http_response *resp, void *ud)
{
        struct ctx *t = ud;

        t->parked = req;
        http_request_on_abort(req, on_abort, t);
        assert_non_null(loop_timer_add(t->loop, 100, answer_later, t));
        return HTTP_DEFER;
}

/* GET /park: parked until POST /release (or shutdown). */
static int h_park(struct http_request *req, struct http_response *resp, void *ud)
{
        struct ctx *t = ud;

        t->parked = req;
        http_request_on_abort(req, on_abort, t);
        return HTTP_DEFER;
}

/* POST /release: answers the parked request from inside another handler. */
static int h_release(struct http_request *req, struct http_response *resp, void *ud)
{
        struct ctx *t = ud;
        struct http_request *p = t->parked;

        if (!p)
                return http_response_error(resp, 409, "nothing parked");
        t->parked = NULL;
        http_response_text(http_request_response(p), 200, "text/plain", "released");
        http_response_send(p);
        return http_response_text(resp, 200, "text/plain", "ok");
}

/* GET /instant: defers but answers before returning. */
static int h_instant(struct http_request *req, struct http_response *resp, void *ud)
{
        http_response_text(resp, 200, "text/plain", "instant");
        http_response_send(req);
        return HTTP_DEFER;
}

static void access_log(const struct http_access *a, void *ud)
{
        struct ctx *t = ud;

        t->naccess++;
        t->last_access = *a;
        snprintf(t->last_path, sizeof(t->last_path), "%s", a->path);
        t->last_access.path = t->last_path;
        t->last_access.method = NULL;
        t->last_access.remote = NULL;
}

static int start_server(struct ctx *t, unsigned timeout_s)
{
        struct http_server_config cfg = {
                .listen = "127.0.0.1:0",
                .max_body = 4096,
                .timeout_s = timeout_s,
                .max_connections = 16,
                /* Every test client is 127.0.0.1; the garbage test opens 11
                 * connections at once. The cap has its own tests. */
                .max_per_client = 16,
                .access_log = access_log,
                .access_log_ud = t,
        };
        static const struct {
                const char *method, *pattern;
                http_handler_fn fn;
        } routes[] = {
                { "GET", "/pools/{pool}/runners/{id}", h_runner },
                { "POST", "/echo", h_echo },
                { "PUT", "/echo", h_echo },
                { "GET", "/fail", h_fail },
                { "GET", "/metrics", h_metrics },
                { "GET", "/later", h_later },
                { "GET", "/park", h_park },
                { "POST", "/release", h_release },
                { "GET", "/instant", h_instant },
        };

        assert_int_equal(http_server_new(t->loop, &cfg, &t->srv), 0);
        for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
                assert_int_equal(http_server_route(t->srv, routes[i].method, routes[i].pattern,
                                                   routes[i].fn, t), 0);
        assert_true(http_server_port(t->srv) > 0);
        snprintf(t->base, sizeof(t->base), "http://127.0.0.1:%u", http_server_port(t->srv));
        return 0;
}

static int setup(void **state)
{
        struct ctx *t = calloc(1, sizeof(*t));

        assert_non_null(t);
        assert_int_equal(loop_new(&t->loop), 0);
        t->reg = metrics_new();
        t->requests = metrics_counter(t->reg, "test_requests_total", "Handled requests.", 1,
                                      (const char *[]){ "route" });
        assert_non_null(t->requests);
        start_server(t, 0);
        *state = t;
        return 0;
}

static int teardown(void **state)
{
        struct ctx *t = *state;

        http_server_free(t->srv);
        assert_int_equal(loop_timer_count(t->loop), 0);
        loop_free(t->loop);
        metrics_free(t->reg);
        free(t);
        return 0;
}

/* ---- tests ---- */

static bool four_logged(struct ctx *t)
{
        return t->naccess >= 4;
}

static bool never(struct ctx *t)
{
        return false;
}

static void test_params_and_query(void **state)
{
        struct ctx *t = *state;
        struct job j = { .kind = JOB_CURL };

        set_url(t, &j, "/pools/linux/runners/42?state=idle&other=1");
        job_run(t, &j);
        assert_int_equal(j.rc, CURLE_OK);
        assert_int_equal(j.status, 200);
        assert_string_equal(j.ctype, "application/json");
        assert_string_equal(j.body_out,
                "{\"pool\":\"linux\",\"id\":\"42\",\"state\":\"idle\",\"path\":\"/pools/linux/runners/42\"}");

        /* Percent-decoding of path and query, no query at all. */
        struct job k = { .kind = JOB_CURL };
        set_url(t, &k, "/pools/a%20b/runners/7?state=x%26y");
        job_run(t, &k);
        assert_int_equal(k.status, 200);
        assert_string_equal(k.body_out,
                "{\"pool\":\"a b\",\"id\":\"7\",\"state\":\"x&y\",\"path\":\"/pools/a b/runners/7\"}");
        struct job m = { .kind = JOB_CURL };
        set_url(t, &m, "/pools/p/runners/1");
        job_run(t, &m);
        assert_int_equal(m.status, 200);
        assert_non_null(strstr(m.body_out, "\"state\":\"(none)\""));

        /* An empty segment does not match a {param}. */
        struct job e = { .kind = JOB_CURL };
        set_url(t, &e, "/pools//runners/1");
        job_run(t, &e);
        assert_int_equal(e.status, 404);

        /* The access log saw every request. */
        assert_true(run_until(t, four_logged, 2000));
        assert_int_equal(t->naccess, 4);
        assert_int_equal(t->last_access.status, 404);
        assert_string_equal(t->last_path, "/pools//runners/1");
}

static void test_post_body(void **state)
{
        struct ctx *t = *state;
        struct job j = { .kind = JOB_CURL, .method = "POST", .body = "hello\0world", .body_len = 11 };

        set_url(t, &j, "/echo");
        job_run(t, &j);
        assert_int_equal(j.status, 201);
        assert_string_equal(j.ctype, "text/plain");
        assert_string_equal(j.xecho, "yes");
        assert_int_equal(j.body_out_len, 3 + 2 + 11);
        assert_memory_equal(j.body_out, "11:-:hello\0world", 16);
        assert_int_equal(t->last_access.bytes_in, 11);
        assert_int_equal(t->last_access.bytes_out, 16);
        assert_int_equal(t->last_access.status, 201);

        /* Exactly max_body (4096) is accepted, chunked too. */
        static char big[4096];
        memset(big, 'b', sizeof(big));
        struct job k = { .kind = JOB_CURL, .method = "PUT", .body = big, .body_len = sizeof(big),
                         .chunked = true };
        set_url(t, &k, "/echo");
        job_run(t, &k);
        assert_int_equal(k.status, 201);
        assert_true(strncmp(k.body_out, "4096:-:bbbb", 11) == 0);
}

static void test_not_found_and_method(void **state)
{
        struct ctx *t = *state;
        struct job j = { .kind = JOB_CURL };

        set_url(t, &j, "/nope");
        job_run(t, &j);
        assert_int_equal(j.status, 404);
        assert_string_equal(j.ctype, "application/json");
        assert_string_equal(j.body_out, "{\"error\":\"not found\"}");

        struct job k = { .kind = JOB_CURL, .method = "DELETE" };
        set_url(t, &k, "/echo");
        job_run(t, &k);
        assert_int_equal(k.status, 405);
        assert_string_equal(k.allow, "POST, PUT");
        assert_string_equal(k.body_out, "{\"error\":\"method not allowed\"}");

        struct job m = { .kind = JOB_CURL, .method = "POST", .body = "x", .body_len = 1 };
        set_url(t, &m, "/metrics");
        job_run(t, &m);
        assert_int_equal(m.status, 405);
        assert_string_equal(m.allow, "GET, HEAD");

        /* GET routes answer HEAD. */
        struct job h = { .kind = JOB_CURL, .method = "HEAD" };
        set_url(t, &h, "/metrics");
        job_run(t, &h);
        assert_int_equal(h.status, 200);
        assert_int_equal(h.body_out_len, 0);

        /* A failing handler becomes a 500 JSON error. */
        struct job f = { .kind = JOB_CURL };
        set_url(t, &f, "/fail");
        job_run(t, &f);
        assert_int_equal(f.status, 500);
        assert_string_equal(f.body_out, "{\"error\":\"internal error\"}");
}

static void test_body_too_big(void **state)
{
        struct ctx *t = *state;
        static char big[4097];
        struct job j = { .kind = JOB_CURL, .method = "POST", .body = big, .body_len = sizeof(big) };

        memset(big, 'x', sizeof(big));
        set_url(t, &j, "/echo");
        job_run(t, &j);
        assert_int_equal(j.rc, CURLE_OK);
        assert_int_equal(j.status, 413);
        assert_string_equal(j.body_out, "{\"error\":\"request body too large\"}");

        /* Without a Content-Length the overflow shows up mid-stream. */
        struct job k = { .kind = JOB_CURL, .method = "POST", .body = big, .body_len = sizeof(big),
                         .chunked = true };
        set_url(t, &k, "/echo");
        job_run(t, &k);
        assert_int_equal(k.rc, CURLE_OK);
        assert_int_equal(k.status, 413);

        /* With Expect: 100-continue the 413 comes before the body. */
        struct job x = { .kind = JOB_CURL, .method = "POST", .body = big, .body_len = sizeof(big),
                         .expect = true };
        set_url(t, &x, "/echo");
        job_run(t, &x);
        assert_int_equal(x.rc, CURLE_OK);
        assert_int_equal(x.status, 413);
        assert_int_equal(t->last_access.status, 413);
        assert_int_equal(t->last_access.bytes_in, 0); /* no 100 Continue, no body read */

        /* A huge declared length is refused before any byte is read. */
        struct job r = { .kind = JOB_RAW };
        const char req[] = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n";
        r.raw = req;
        r.raw_len = sizeof(req) - 1;
        set_url(t, &r, "");
        job_run(t, &r);
        assert_true(strncmp(r.body_out, "HTTP/1.1 4", 10) == 0);

        /* The server still serves. */
        struct job ok = { .kind = JOB_CURL };
        set_url(t, &ok, "/pools/a/runners/b");
        job_run(t, &ok);
        assert_int_equal(ok.status, 200);
}

static void test_deferred_timer(void **state)
{
        struct ctx *t = *state;
        struct job j = { .kind = JOB_CURL };

        set_url(t, &j, "/later");
        job_run(t, &j);
        assert_int_equal(j.rc, CURLE_OK);
        assert_int_equal(j.status, 202);
        assert_string_equal(j.body_out, "answered later");
        assert_true(j.elapsed_ms >= 100);
        assert_true(j.elapsed_ms < 2000);
        assert_int_equal(t->deferred_answered, 1);
        assert_false(t->aborted);

        /* Answering from inside the handler works too. */
        struct job k = { .kind = JOB_CURL };
        set_url(t, &k, "/instant");
        job_run(t, &k);
        assert_int_equal(k.status, 200);
        assert_string_equal(k.body_out, "instant");
}

static bool is_parked(struct ctx *t)
{
        return t->parked != NULL;
}

static void test_deferred_from_other_request(void **state)
{
        struct ctx *t = *state;
        struct job park = { .kind = JOB_CURL };
        struct job rel = { .kind = JOB_CURL, .method = "POST", .body = "", .body_len = 0 };

        set_url(t, &park, "/park");
        job_start(t, &park);
        assert_true(run_until(t, is_parked, 5000));
        set_url(t, &rel, "/release");
        job_run(t, &rel);
        assert_int_equal(rel.status, 200);
        job_wait(t, &park);
        assert_int_equal(park.status, 200);
        assert_string_equal(park.body_out, "released");
        assert_false(t->aborted);
}

static void test_deferred_abort_on_shutdown(void **state)
{
        struct ctx *t = *state;
        struct job park = { .kind = JOB_CURL };

        set_url(t, &park, "/park");
        job_start(t, &park);
        assert_true(run_until(t, is_parked, 5000));
        http_server_free(t->srv);
        t->srv = NULL;
        assert_true(t->aborted);
        assert_null(t->parked);
        job_wait(t, &park);
        /* The client gets the 503 or, if the socket closed first, an error;
         * never a hang. */
        assert_true(park.status == 503 || park.rc != CURLE_OK);
}

static int fd_baseline;

static bool fds_back(struct ctx *t)
{
        return count_fds() == fd_baseline;
}

static void test_sequential_no_fd_leak(void **state)
{
        struct ctx *t = *state;
        struct job warm = { .kind = JOB_CURL };
        struct job j = { .kind = JOB_CURL, .repeat = 100 };
        int before = t->naccess;

        set_url(t, &warm, "/pools/a/runners/1");
        job_run(t, &warm);
        run_until(t, never, 200); /* let the server close the warm-up connection */
        fd_baseline = count_fds();
        set_url(t, &j, "/pools/a/runners/1?state=s");
        job_run(t, &j);
        assert_int_equal(j.failures, 0);
        assert_int_equal(j.status, 200);
        /* The server closes its side once it sees each client's EOF. */
        assert_true(run_until(t, fds_back, 3000));
        assert_int_equal(count_fds(), fd_baseline);
        assert_int_equal(http_server_connections(t->srv), 0);
        assert_int_equal(t->naccess - before, 101);
}

static void test_garbage_input(void **state)
{
        struct ctx *t = *state;
#define G(x) { x, sizeof(x) - 1 }
        static const struct {
                const char *s;
                size_t n;
        } garbage[] = {
                G("\x00\x01\x02\xff\xfe garbage \r\n\r\n"),
                G("GET\r\n\r\n"),
                G("GET / HTTP/9.9\r\n\r\n"),
                G("GET /pools/a/runners/b HTTP/1.1\r\nHost: x\r\nBroken header line\r\n\r\n"),
                G("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n"),
                G("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"),
                G("GET /pools/%zz/runners/%00 HTTP/1.1\r\nHost: x\r\n\r\n"),
                G("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nshort"),
                G("GET /pools/a/runners/b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"),
        };
#undef G
        enum { NG = sizeof(garbage) / sizeof(garbage[0]) };
        struct job g[NG + 2];
        static char huge[64 * 1024];
        static char rnd[1 << 20];
        int n;

        /* A 1 s idle timeout: libmicrohttpd 0.9.75 in epoll mode misses a
         * client's FIN that arrives together with an incomplete request, so
         * such connections end on the idle timeout, not at once. */
        /* MHD's diagnostics go to the debug log: capture them. */
        int logfd = memfd_create("log", MFD_CLOEXEC);
        assert_true(logfd >= 0);
        log_set_fd(logfd);
        log_init(LOG_DEBUG, LOG_FMT_LOGFMT);
        http_server_free(t->srv);
        start_server(t, 1);
        run_until(t, never, 100);
        fd_baseline = count_fds();

        memset(g, 0, sizeof(g));
        for (size_t i = 0; i < NG; i++) {
                g[i].kind = JOB_RAW;
                g[i].raw = garbage[i].s;
                g[i].raw_len = garbage[i].n;
                g[i].raw_shutdown = true;
        }
        /* Headers larger than the per-connection memory. */
        n = snprintf(huge, sizeof(huge), "GET / HTTP/1.1\r\nHost: x\r\nX-Big: ");
        memset(huge + n, 'a', sizeof(huge) - (size_t)n - 5);
        memcpy(huge + sizeof(huge) - 5, "\r\n\r\n", 5);
        g[NG] = (struct job){ .kind = JOB_RAW, .raw = huge, .raw_len = sizeof(huge) - 1 };
        /* 1 MiB of random bytes, then close. */
        srand(7);
        for (size_t i = 0; i < sizeof(rnd); i++)
                rnd[i] = (char)(rand() & 0xff);
        g[NG + 1] = (struct job){ .kind = JOB_RAW, .raw = rnd, .raw_len = sizeof(rnd),
                                  .raw_shutdown = true };

        /* All at once, so the idle timeouts overlap. */
        for (size_t i = 0; i < NG + 2; i++) {
                set_url(t, &g[i], "");
                job_start(t, &g[i]);
        }
        for (size_t i = 0; i < NG + 2; i++) {
                job_wait(t, &g[i]);
                if (!g[i].got_eof)
                        print_error("garbage case %zu: no EOF after %lld ms, got \"%s\"\n", i,
                                    (long long)g[i].elapsed_ms, g[i].body_out);
                assert_true(g[i].got_eof);
                assert_true(g[i].elapsed_ms < 4000);
        }
        /* Requests complete enough to judge get an answer. */
        assert_true(strncmp(g[2].body_out, "HTTP/1.1 505", 12) == 0);
        for (size_t i = 3; i <= 5; i++)
                assert_true(strncmp(g[i].body_out, "HTTP/1.1 400", 12) == 0);
        /* %00 truncates the decoded path: no route matches. */
        assert_true(strncmp(g[6].body_out, "HTTP/1.1 404", 12) == 0);
        /* The over-long header block gets 431 (or a reset when the close
         * overtakes the answer). */
        assert_true(strncmp(g[NG].body_out, "HTTP/1.1 431", 12) == 0 || g[NG].body_out_len == 0);

        /* Every connection is gone and the server still serves. */
        assert_true(run_until(t, fds_back, 3000));
        assert_int_equal(http_server_connections(t->srv), 0);
        log_init(LOG_INFO, LOG_FMT_LOGFMT);
        log_set_fd(2);
        char logbuf[512] = "";
        assert_true(pread(logfd, logbuf, sizeof(logbuf) - 1, 0) > 0);
        assert_non_null(strstr(logbuf, "level=debug comp=http msg=libmicrohttpd"));
        close(logfd);
        struct job ok = { .kind = JOB_CURL };
        set_url(t, &ok, "/pools/still/runners/alive");
        job_run(t, &ok);
        assert_int_equal(ok.status, 200);
        assert_non_null(strstr(ok.body_out, "\"pool\":\"still\""));
}

static void test_idle_timeout(void **state)
{
        struct ctx *t = *state;
        struct job idle = { .kind = JOB_IDLE };

        /* Restart with a 1 s idle timeout: MHD's timeout only fires if the
         * loop timer follows MHD_get_timeout(). */
        http_server_free(t->srv);
        start_server(t, 1);
        set_url(t, &idle, "");
        job_run(t, &idle);
        assert_true(idle.got_eof);
        assert_true(idle.elapsed_ms >= 900);
        assert_true(idle.elapsed_ms < 4000);
}

static bool other_full(struct ctx *t)
{
        return http_server_connections(t->other) == 2;
}

static void test_connection_limit(void **state)
{
        struct ctx *t = *state;
        struct http_server *s2 = NULL;
        struct http_server_config cfg = { .listen = "127.0.0.1:0", .max_connections = 2,
                                          .timeout_s = 1 };
        struct job idle[2], j = { .kind = JOB_CURL };

        assert_int_equal(http_server_new(t->loop, &cfg, &s2), 0);
        assert_int_equal(http_server_route(s2, "GET", "/pools/{pool}/runners/{id}", h_runner, t), 0);
        memset(idle, 0, sizeof(idle));
        for (int i = 0; i < 2; i++) {
                idle[i].kind = JOB_IDLE;
                snprintf(idle[i].url, sizeof(idle[i].url), "http://127.0.0.1:%u", http_server_port(s2));
                job_start(t, &idle[i]);
        }
        t->other = s2;
        assert_true(run_until(t, other_full, 5000));
        /* Both slots are taken: the third client waits in the backlog. */
        snprintf(j.url, sizeof(j.url), "http://127.0.0.1:%u/pools/p/runners/1", http_server_port(s2));
        job_run(t, &j);
        for (int i = 0; i < 2; i++) {
                job_wait(t, &idle[i]);
                assert_true(idle[i].got_eof);
        }
        /* Served, and not before the server closed an idle connection
         * (the slot frees at the idle timeout, about 1 s). */
        assert_int_equal(j.rc, CURLE_OK);
        assert_int_equal(j.status, 200);
        assert_true(j.end_ms + 50 >= (idle[0].end_ms < idle[1].end_ms ? idle[0].end_ms : idle[1].end_ms));
        assert_true(j.elapsed_ms >= 300);
        http_server_free(s2);
}

static bool other_has_want(struct ctx *t)
{
        return http_server_connections(t->other) >= t->want_conns;
}

/* A second server on 127.0.0.1 with a short request deadline. */
static struct http_server *slow_server(struct ctx *t, unsigned max_per_client,
                                       unsigned request_timeout_ms, char *base, size_t n)
{
        struct http_server_config cfg = {
                .listen = "127.0.0.1:0",
                .max_connections = 16,
                .max_per_client = max_per_client,
                .request_timeout_ms = request_timeout_ms,
        };
        struct http_server *s = NULL;

        assert_int_equal(http_server_new(t->loop, &cfg, &s), 0);
        assert_int_equal(http_server_route(s, "GET", "/pools/{pool}/runners/{id}", h_runner, t), 0);
        assert_int_equal(http_server_route(s, "POST", "/echo", h_echo, t), 0);
        assert_int_equal(http_server_route(s, "GET", "/park", h_park, t), 0);
        assert_int_equal(http_server_route(s, "POST", "/release", h_release, t), 0);
        snprintf(base, n, "http://127.0.0.1:%u", http_server_port(s));
        t->other = s;
        return s;
}

/* Slowloris: more trickling clients than the server has connections,
 * each sending a byte every 100 ms so no idle timeout ever fires. The
 * per-client cap keeps them to a few slots and the request deadline (1 s)
 * cuts those off, so a health check gets through within a bound. */
static void test_slowloris_many(void **state)
{
        struct ctx *t = *state;
        enum { NSLOW = 40 };
        struct job *slow = calloc(NSLOW, sizeof(*slow));
        struct job probe = { .kind = JOB_CURL, .retry_ms = 8000 };
        char base[64];
        struct http_server *s2 = slow_server(t, 0, 1000, base, sizeof(base));

        assert_non_null(slow);
        for (int i = 0; i < NSLOW; i++) {
                slow[i] = (struct job){ .kind = JOB_TRICKLE, .trickle_every_ms = 100,
                                        .trickle_for_ms = 8000 };
                snprintf(slow[i].url, sizeof(slow[i].url), "%s", base);
                job_start(t, &slow[i]);
        }
        t->want_conns = HTTP_DEFAULT_MAX_PER_CLIENT;
        assert_true(run_until(t, other_has_want, 5000));
        snprintf(probe.url, sizeof(probe.url), "%s/pools/health/runners/1", base);
        job_run(t, &probe);
        if (probe.status != 200 || probe.elapsed_ms >= 3000)
                print_error("probe: rc %d status %ld after %lld ms\n", (int)probe.rc, probe.status,
                            (long long)probe.elapsed_ms);
        assert_int_equal(probe.status, 200);
        assert_true(probe.elapsed_ms < 3000);
        /* Every trickler was cut off long before it gave up. */
        for (int i = 0; i < NSLOW; i++) {
                job_wait(t, &slow[i]);
                assert_true(slow[i].got_eof);
                assert_true(slow[i].elapsed_ms < 4000);
        }
        free(slow);
        http_server_free(s2);
}

/* One client that trickles its headers, one that trickles its body: both
 * are closed at the request deadline, not at the idle timeout they keep
 * resetting. A parked request is past receiving and is not cut off. */
static void test_slow_request_cut_off(void **state)
{
        struct ctx *t = *state;
        static const char post[] = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n";
        struct job hdr = { .kind = JOB_TRICKLE, .trickle_every_ms = 100, .trickle_for_ms = 6000 };
        struct job body = { .kind = JOB_TRICKLE, .trickle_every_ms = 100, .trickle_for_ms = 6000,
                            .raw = post, .raw_len = sizeof(post) - 1 };
        struct job park = { .kind = JOB_CURL };
        struct job rel = { .kind = JOB_CURL, .method = "POST", .body = "", .body_len = 0 };
        char base[64];
        struct http_server *s2 = slow_server(t, 0, 1000, base, sizeof(base));

        snprintf(hdr.url, sizeof(hdr.url), "%s", base);
        snprintf(body.url, sizeof(body.url), "%s", base);
        job_start(t, &hdr);
        job_start(t, &body);
        job_wait(t, &hdr);
        job_wait(t, &body);
        assert_true(hdr.got_eof);
        assert_true(hdr.elapsed_ms >= 900);
        assert_true(hdr.elapsed_ms < 2500);
        assert_true(body.got_eof);
        assert_true(body.elapsed_ms >= 900);
        assert_true(body.elapsed_ms < 2500);

        snprintf(park.url, sizeof(park.url), "%s/park", base);
        job_start(t, &park);
        assert_true(run_until(t, is_parked, 5000));
        run_until(t, never, 1500);
        snprintf(rel.url, sizeof(rel.url), "%s/release", base);
        job_run(t, &rel);
        assert_int_equal(rel.status, 200);
        job_wait(t, &park);
        assert_int_equal(park.status, 200);
        assert_string_equal(park.body_out, "released");
        http_server_free(s2);
}

/* The connection past a client's cap is closed at once; the others stay. */
static void test_per_client_cap(void **state)
{
        struct ctx *t = *state;
        struct job idle[4];
        char base[64];
        struct http_server *s2 = slow_server(t, 3, 5000, base, sizeof(base));

        memset(idle, 0, sizeof(idle));
        for (int i = 0; i < 4; i++) {
                idle[i].kind = JOB_IDLE;
                snprintf(idle[i].url, sizeof(idle[i].url), "%s", base);
        }
        for (int i = 0; i < 3; i++)
                job_start(t, &idle[i]);
        t->want_conns = 3;
        assert_true(run_until(t, other_has_want, 5000));
        job_run(t, &idle[3]);
        assert_true(idle[3].got_eof);
        assert_true(idle[3].elapsed_ms < 1000);
        assert_int_equal(http_server_connections(s2), 3);
        for (int i = 0; i < 3; i++)
                assert_false(idle[i].done);
        http_server_free(s2);
        for (int i = 0; i < 3; i++) {
                job_wait(t, &idle[i]);
                assert_true(idle[i].got_eof);
                assert_true(idle[i].elapsed_ms < 4000);
        }
}

static void test_metrics_endpoint(void **state)
{
        struct ctx *t = *state;
        struct job j = { .kind = JOB_CURL };

        metrics_inc(t->requests, (const char *[]){ "runner" }, 5);
        set_url(t, &j, "/metrics");
        job_run(t, &j);
        assert_int_equal(j.status, 200);
        assert_string_equal(j.ctype, METRICS_CONTENT_TYPE);
        assert_non_null(strstr(j.body_out, "# TYPE test_requests_total counter\n"
                                           "test_requests_total{route=\"metrics\"} 1\n"
                                           "test_requests_total{route=\"runner\"} 5\n"));
        assert_non_null(strstr(j.body_out, "# TYPE forgescale_metrics_dropped_series_total counter\n"));
}

static void test_bad_config(void **state)
{
        struct ctx *t = *state;
        struct http_server *s = NULL;
        struct sockaddr_storage ss;
        socklen_t len;
        static const char *const bad[] = {
                "", ":", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1",
                "127.0.0.1:80x", "::1:80", "[::1]", "[::1]80", "example.com:80", "1.2.3:80",
                "[nope]:1", "127.0.0.1: 80",
        };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                assert_int_equal(http_server_parse_listen(bad[i], &ss, &len), -EINVAL);
        assert_int_equal(http_server_parse_listen("127.0.0.1:9464", &ss, &len), 0);
        assert_int_equal(ss.ss_family, AF_INET);
        assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 9464);
        assert_int_equal(http_server_parse_listen("[::1]:0", &ss, &len), 0);
        assert_int_equal(ss.ss_family, AF_INET6);
        assert_int_equal(http_server_parse_listen(":9464", &ss, &len), 0);
        assert_int_equal(ss.ss_family, AF_INET6);
        assert_int_equal(http_server_parse_listen("localhost:9464", &ss, &len), 0);
        assert_int_equal(ss.ss_family, AF_INET);
        assert_int_equal(ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr), INADDR_LOOPBACK);

        /* The port in use is reported as such. */
        char addr[64];
        snprintf(addr, sizeof(addr), "127.0.0.1:%u", http_server_port(t->srv));
        struct http_server_config cfg = { .listen = addr };
        assert_int_equal(http_server_new(t->loop, &cfg, &s), -EADDRINUSE);
        assert_null(s);

        /* Bad route patterns. */
        assert_int_equal(http_server_route(t->srv, "GET", "nope", h_fail, NULL), -EINVAL);
        assert_int_equal(http_server_route(t->srv, "GET", "/a/{b", h_fail, NULL), -EINVAL);
        assert_int_equal(http_server_route(t->srv, "GET", "/a/{}", h_fail, NULL), -EINVAL);
        assert_int_equal(http_server_route(t->srv, "GET", "/a/{b-c}", h_fail, NULL), -EINVAL);
        assert_int_equal(http_server_route(t->srv, "get", "/a", h_fail, NULL), -EINVAL);
        assert_int_equal(http_server_route(t->srv, "POST", "/echo", h_fail, NULL), -EEXIST);
        assert_int_equal(http_server_route(t->srv, "GET", "/pools/{p}/runners/{i}", h_fail, NULL),
                         -EEXIST);
        assert_int_equal(http_server_route(t->srv, "GET", "/a", NULL, NULL), -EINVAL);

        /* Header injection is refused. */
        struct http_response r = { .body = BUFFER_INIT(16) };
        assert_int_equal(http_response_header(&r, "X-A", "b\r\nX-Evil: 1"), -EINVAL);
        assert_int_equal(http_response_header(&r, "X A", "b"), -EINVAL);
        assert_int_equal(r.nheaders, 0);
        assert_int_equal(http_response_error(&r, 400, "way too long for sixteen"), -EMSGSIZE);
        buffer_done(&r.body);
}

static void test_ipv6_loopback(void **state)
{
        struct ctx *t = *state;
        struct http_server *s6 = NULL;
        struct http_server_config cfg = { .listen = "[::1]:0" };
        int r = http_server_new(t->loop, &cfg, &s6);

        if (r == -EADDRNOTAVAIL || r == -EAFNOSUPPORT) {
                skip(); /* no IPv6 loopback in this sandbox */
        }
        assert_int_equal(r, 0);
        assert_true(http_server_port(s6) > 0);
        assert_int_equal(http_server_route(s6, "GET", "/pools/{pool}/runners/{id}", h_runner, t), 0);
        struct job j = { .kind = JOB_CURL };
        snprintf(j.url, sizeof(j.url), "http://[::1]:%u/pools/v6/runners/1", http_server_port(s6));
        job_run(t, &j);
        assert_int_equal(j.status, 200);
        assert_non_null(strstr(j.body_out, "\"pool\":\"v6\""));
        http_server_free(s6);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_params_and_query, setup, teardown),
                cmocka_unit_test_setup_teardown(test_post_body, setup, teardown),
                cmocka_unit_test_setup_teardown(test_not_found_and_method, setup, teardown),
                cmocka_unit_test_setup_teardown(test_body_too_big, setup, teardown),
                cmocka_unit_test_setup_teardown(test_deferred_timer, setup, teardown),
                cmocka_unit_test_setup_teardown(test_deferred_from_other_request, setup, teardown),
                cmocka_unit_test_setup_teardown(test_deferred_abort_on_shutdown, setup, teardown),
                cmocka_unit_test_setup_teardown(test_sequential_no_fd_leak, setup, teardown),
                cmocka_unit_test_setup_teardown(test_garbage_input, setup, teardown),
                cmocka_unit_test_setup_teardown(test_idle_timeout, setup, teardown),
                cmocka_unit_test_setup_teardown(test_connection_limit, setup, teardown),
                cmocka_unit_test_setup_teardown(test_slowloris_many, setup, teardown),
                cmocka_unit_test_setup_teardown(test_slow_request_cut_off, setup, teardown),
                cmocka_unit_test_setup_teardown(test_per_client_cap, setup, teardown),
                cmocka_unit_test_setup_teardown(test_metrics_endpoint, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bad_config, setup, teardown),
                cmocka_unit_test_setup_teardown(test_ipv6_loopback, setup, teardown),
        };
        int rc;

        curl_global_init(CURL_GLOBAL_DEFAULT);
        rc = cmocka_run_group_tests(tests, NULL, NULL);
        curl_global_cleanup();
        return rc;
}
