/* test_forgejo_client.c: the Forgejo client against canned answers from a
 * one-thread HTTP server on 127.0.0.1 (curl's data-driven style): what the
 * client makes of sizes and headers that forgejo-sim never sends -- job
 * listings near and over their cap, bad jobs inside a good listing, and
 * runner pages with and without X-Total-Count. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "forge/forgejo.h"
#include "http/hmulti.h"
#include "loop/loop.h"
#include "util/httpc.h"

/* ---- canned server ------------------------------------------------------ */

struct canned {
        int status;
        const char *headers;             /* extra "Name: value\r\n" lines */
        const char *body;
        size_t len;
        bool no_length;                  /* body delimited by closing */
};

static struct server {
        int fd;
        unsigned short port;
        pthread_t thread;
        pthread_mutex_t mu;
        struct canned answer;
        char last_request[512];          /* request line of the last request */
        unsigned accepted, closed;       /* connections */
        bool stop;
} srv;

static void send_all(int fd, const char *p, size_t n)
{
        while (n > 0) {
                ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
                if (w <= 0)
                        return; /* the client gave up (a cap): fine */
                p += w;
                n -= (size_t)w;
        }
}

static void *serve(void *arg)
{
        (void)arg;
        for (;;) {
                struct pollfd pfd = { .fd = srv.fd, .events = POLLIN };
                char req[4096];
                size_t got = 0;
                int c;

                if (poll(&pfd, 1, 50) <= 0) {
                        pthread_mutex_lock(&srv.mu);
                        bool stop = srv.stop;
                        pthread_mutex_unlock(&srv.mu);
                        if (stop)
                                return NULL;
                        continue;
                }
                c = accept4(srv.fd, NULL, NULL, SOCK_CLOEXEC);
                if (c < 0)
                        continue;
                pthread_mutex_lock(&srv.mu);
                srv.accepted++;
                pthread_mutex_unlock(&srv.mu);
                while (got < sizeof(req) - 1) {
                        ssize_t r = recv(c, req + got, sizeof(req) - 1 - got, 0);
                        if (r <= 0)
                                break;
                        got += (size_t)r;
                        req[got] = '\0';
                        if (strstr(req, "\r\n\r\n"))
                                break;
                }
                req[got] = '\0';
                pthread_mutex_lock(&srv.mu);
                struct canned a = srv.answer;
                snprintf(srv.last_request, sizeof(srv.last_request), "%.*s",
                         (int)strcspn(req, "\r\n"), req);
                pthread_mutex_unlock(&srv.mu);

                char head[1024];
                int hn;
                if (a.no_length)
                        hn = snprintf(head, sizeof(head),
                                      "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n%s"
                                      "Connection: close\r\n\r\n", a.status,
                                      a.headers ? a.headers : "");
                else
                        hn = snprintf(head, sizeof(head),
                                      "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n%s"
                                      "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                                      a.status, a.headers ? a.headers : "", a.len);
                send_all(c, head, (size_t)hn);
                send_all(c, a.body, a.len);
                shutdown(c, SHUT_WR);
                /* Drain until the client closes, so it sees the whole body. */
                while (recv(c, req, sizeof(req), 0) > 0)
                        ;
                close(c);
                pthread_mutex_lock(&srv.mu);
                srv.closed++;
                pthread_mutex_unlock(&srv.mu);
        }
}

static void last_request(char *buf, size_t n)
{
        pthread_mutex_lock(&srv.mu);
        snprintf(buf, n, "%s", srv.last_request);
        pthread_mutex_unlock(&srv.mu);
}

/* Waits until the server is done with every connection, so the body it
 * sends from can be freed (a client that gave up at a cap leaves the
 * server writing until it notices). */
static void quiesce(void)
{
        for (int i = 0; i < 3000; i++) {
                pthread_mutex_lock(&srv.mu);
                bool idle = srv.accepted == srv.closed;
                pthread_mutex_unlock(&srv.mu);
                if (idle)
                        return;
                usleep(10000);
        }
        fail_msg("the canned server did not finish its connections");
}

static void answer(int status, const char *headers, const char *body, size_t len, bool no_length)
{
        pthread_mutex_lock(&srv.mu);
        srv.answer = (struct canned){ status, headers, body, len, no_length };
        pthread_mutex_unlock(&srv.mu);
}

static int group_setup(void **state)
{
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t al = sizeof(a);

        httpc_global_init();
        srv.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (srv.fd < 0 || bind(srv.fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
            listen(srv.fd, 16) < 0 || getsockname(srv.fd, (struct sockaddr *)&a, &al) < 0)
                return -1;
        srv.port = ntohs(a.sin_port);
        pthread_mutex_init(&srv.mu, NULL);
        return pthread_create(&srv.thread, NULL, serve, NULL) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
        pthread_mutex_lock(&srv.mu);
        srv.stop = true;
        pthread_mutex_unlock(&srv.mu);
        pthread_join(srv.thread, NULL);
        close(srv.fd);
        return 0;
}

/* ---- client fixture ------------------------------------------------------ */

static struct fx {
        struct loop *loop;
        struct hmulti *hm;
        struct forgejo *f;
        int done;
        struct forgejo_result res;
        bool had_payload;
        size_t n, n_rejected, page_count;
        int64_t first_id;
        char first_reason[160];
        long long total_count;
        int page, limit;
        int hook_err;
        char hook_code[16];
} fx;

static void on_hook(void *ud, const struct forgejo_event *ev)
{
        fx.hook_err = ev->err;
        snprintf(fx.hook_code, sizeof(fx.hook_code), "%s", ev->code);
}

static void new_client(size_t max_listing)
{
        char url[64];
        struct forgejo_opts o = { .name = "canned", .base_url = url, .token = "t0ken",
                                  .timeout_ms = 20000, .max_listing = max_listing };

        snprintf(url, sizeof(url), "http://127.0.0.1:%u", srv.port);
        forgejo_free(fx.f);
        fx.f = NULL;
        assert_int_equal(forgejo_new(fx.hm, &o, &fx.f), 0);
        forgejo_set_hook(fx.f, on_hook, NULL);
}

static int setup(void **state)
{
        memset(&fx, 0, sizeof(fx));
        if (loop_new(&fx.loop) < 0 || hmulti_new(fx.loop, NULL, &fx.hm) < 0)
                return -1;
        new_client(0);
        return 0;
}

static int teardown(void **state)
{
        quiesce();
        forgejo_free(fx.f);
        hmulti_free(fx.hm);
        loop_free(fx.loop);
        return 0;
}

static void wait_done(void)
{
        struct timespec t0, t;

        clock_gettime(CLOCK_MONOTONIC, &t0);
        while (!fx.done) {
                assert_true(loop_run_once(fx.loop, 50) >= 0);
                clock_gettime(CLOCK_MONOTONIC, &t);
                if (t.tv_sec - t0.tv_sec > 30)
                        fail_msg("no callback after 30 s");
        }
}

static void on_jobs(void *ud, const struct forgejo_result *res, const struct forgejo_job_list *l)
{
        fx.done++;
        fx.res = *res;
        fx.had_payload = l != NULL;
        if (l) {
                fx.n = l->n;
                fx.n_rejected = l->n_rejected;
                fx.first_id = l->n ? l->jobs[0].id : 0;
                snprintf(fx.first_reason, sizeof(fx.first_reason), "%s",
                         l->n_rejected ? l->rejected[0].reason : "");
        }
}

static void list_jobs(void)
{
        struct forgejo_scope sc;

        fx.done = 0;
        assert_int_equal(forgejo_scope_parse("org/acme", &sc), 0);
        assert_int_equal(forgejo_list_jobs(fx.f, &sc, NULL, on_jobs, NULL, NULL), 0);
        wait_done();
}

#define JOB(id) "{\"id\":" #id ",\"attempt\":1,\"handle\":\"h" #id "\",\"repo_id\":1," \
                "\"owner_id\":1,\"name\":\"j\",\"needs\":null,\"runs_on\":[\"linux\"]," \
                "\"task_id\":0,\"status\":\"waiting\"}"

/* A body of about size bytes: a valid listing of identical-size jobs. */
static char *listing_of(size_t size, size_t *ret_len, size_t *ret_jobs)
{
        char *b = malloc(size + 512);
        size_t o = 0, n = 0;

        assert_non_null(b);
        b[o++] = '[';
        while (o < size) {
                o += (size_t)snprintf(b + o, size + 512 - o,
                                      "%s{\"id\":%zu,\"handle\":\"h%zu\",\"repo_id\":1,"
                                      "\"owner_id\":1,\"name\":\"j\",\"runs_on\":[\"linux\"],"
                                      "\"task_id\":0,\"status\":\"waiting\"}",
                                      n ? "," : "", n + 1, n + 1);
                n++;
        }
        b[o++] = ']';
        *ret_len = o;
        *ret_jobs = n;
        return b;
}

/* ---- tests -------------------------------------------------------------- */

/* A listing above the 8 MiB every other answer is capped at still parses:
 * the listing has its own, larger cap. */
static void listing_over_max_response_parses(void **state)
{
        size_t len, jobs;
        char *body = listing_of(HMULTI_DEFAULT_MAX_RESPONSE + (1u << 20), &len, &jobs);

        answer(200, NULL, body, len, false);
        list_jobs();
        assert_int_equal(fx.res.err, 0);
        assert_true(fx.had_payload);
        assert_int_equal(fx.n, jobs);
        assert_true(fx.n > 60000);
        char req[512];
        last_request(req, sizeof(req));
        assert_string_equal(req, "GET /api/v1/orgs/acme/actions/runners/jobs HTTP/1.1");
        quiesce();
        free(body);
}

/* Over the cap: -EFBIG with its own reason, with or without a
 * Content-Length, and the hook sees the same error for the metric. */
static void listing_over_cap_is_efbig(void **state)
{
        size_t len, jobs;
        char *body = listing_of(200000, &len, &jobs);

        new_client(65536);
        for (int no_length = 0; no_length < 2; no_length++) {
                answer(200, NULL, body, len, no_length);
                list_jobs();
                assert_int_equal(fx.res.err, -EFBIG);
                assert_false(fx.had_payload);
                assert_int_equal(fx.res.status, 0);
                assert_string_equal(fx.res.reason, "listing larger than 65536 bytes");
                assert_int_equal(fx.hook_err, -EFBIG);
                assert_string_equal(fx.hook_code, "error");
        }
        /* The same body under the cap is fine. */
        new_client(len);
        answer(200, NULL, body, len, false);
        list_jobs();
        assert_int_equal(fx.res.err, 0);
        assert_int_equal(fx.n, jobs);
        /* The default cap is FORGEJO_LISTING_MAX. */
        new_client(0);
        char *big = listing_of(FORGEJO_LISTING_MAX + 1, &len, &jobs);
        answer(200, NULL, big, len, false);
        list_jobs();
        assert_int_equal(fx.res.err, -EFBIG);
        assert_string_equal(fx.res.reason, "listing larger than 67108864 bytes");
        quiesce();
        free(big);
        free(body);
}

/* Bad jobs reach the callback next to the good ones. */
static void listing_with_bad_jobs(void **state)
{
        static const char body[] = "[" JOB(3) ",{\"id\":2,\"handle\":\"\",\"repo_id\":1}," JOB(1) "]";

        answer(200, NULL, body, sizeof(body) - 1, false);
        list_jobs();
        assert_int_equal(fx.res.err, 0);
        assert_int_equal(fx.n, 2);
        assert_int_equal(fx.first_id, 3);
        assert_int_equal(fx.n_rejected, 1);
        assert_string_equal(fx.first_reason, "handle: empty");
}

static void on_runner(void *ud, const struct forgejo_result *res, const struct forgejo_runner *rn)
{
        fx.done++;
        fx.res = *res;
        fx.had_payload = rn != NULL;
}

/* Other answers keep their own cap and error. */
static void runner_over_max_response_is_emsgsize(void **state)
{
        size_t len, jobs;
        char *body = listing_of(HMULTI_DEFAULT_MAX_RESPONSE + 1, &len, &jobs);
        struct forgejo_scope sc;

        answer(200, NULL, body, len, false);
        fx.done = 0;
        assert_int_equal(forgejo_scope_parse("org/acme", &sc), 0);
        assert_int_equal(forgejo_runner_get(fx.f, &sc, 5, on_runner, NULL, NULL), 0);
        wait_done();
        assert_int_equal(fx.res.err, -EMSGSIZE);
        assert_false(fx.had_payload);
        quiesce();
        free(body);
}

static void on_runners(void *ud, const struct forgejo_result *res,
                       const struct forgejo_runner_list *l)
{
        fx.done++;
        fx.res = *res;
        fx.had_payload = l != NULL;
        if (l) {
                fx.n = l->n;
                fx.n_rejected = l->n_rejected;
                fx.page_count = l->page_count;
                fx.total_count = l->total_count;
                fx.page = l->page;
                fx.limit = l->limit;
        }
}

#define RUNNER(id) "{\"id\":" #id ",\"uuid\":\"0f3c1b2a-8d4e-4f6a-9b7c-1d2e3f4a5b6c\"," \
                   "\"name\":\"fs-" #id "\",\"status\":\"idle\"}"

/* What paging needs: the page as asked, its element count (rejected
 * runners included) and X-Total-Count when the server sends it. */
static void runner_page_carries_paging(void **state)
{
        static const char page[] = "[" RUNNER(7) ",{\"id\":8}," RUNNER(9) "]";
        struct forgejo_scope sc;
        char req[512];

        assert_int_equal(forgejo_scope_parse("repo/acme/app", &sc), 0);
        answer(200, "X-Total-Count: 1234\r\nLink: <x>; rel=\"next\"\r\n", page,
               sizeof(page) - 1, false);
        fx.done = 0;
        assert_int_equal(forgejo_runner_list(fx.f, &sc, 4, 3, on_runners, NULL, NULL), 0);
        wait_done();
        last_request(req, sizeof(req));
        assert_string_equal(req,
                            "GET /api/v1/repos/acme/app/actions/runners?page=4&limit=3 HTTP/1.1");
        assert_int_equal(fx.res.err, 0);
        assert_int_equal(fx.n, 2);
        assert_int_equal(fx.n_rejected, 1);
        assert_int_equal(fx.page_count, 3);
        assert_int_equal(fx.page, 4);
        assert_int_equal(fx.limit, 3);
        assert_int_equal(fx.total_count, 1234);

        /* Without the header: -1. A malformed one counts as absent. */
        static const char *const hdrs[] = { NULL, "X-Total-Count: 12x\r\n",
                                            "X-Total-Count: -5\r\n" };
        for (size_t i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++) {
                answer(200, hdrs[i], page, sizeof(page) - 1, false);
                fx.done = 0;
                assert_int_equal(forgejo_runner_list(fx.f, &sc, 1, 50, on_runners, NULL, NULL), 0);
                wait_done();
                assert_int_equal(fx.res.err, 0);
                assert_int_equal(fx.total_count, -1);
                assert_int_equal(fx.page, 1);
                assert_int_equal(fx.limit, 50);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(listing_over_max_response_parses, setup, teardown),
                cmocka_unit_test_setup_teardown(listing_over_cap_is_efbig, setup, teardown),
                cmocka_unit_test_setup_teardown(runner_over_max_response_is_emsgsize, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(listing_with_bad_jobs, setup, teardown),
                cmocka_unit_test_setup_teardown(runner_page_carries_paging, setup, teardown),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
