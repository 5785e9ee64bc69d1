/* robustness.c: bad input never crashes forgejo-sim and is answered with
 * a 4xx (Connect errors as {code, message}, forgejo-api.md §4.1): malformed
 * and mistyped JSON, huge and deeply nested bodies, invalid UTF-8, long
 * URLs, aborted and idle connections. Every test ends by checking the
 * simulator still answers (and the fixture teardown fails the test if the
 * process died). */
#include "world.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PING "ping.v1.PingService/Ping"

static void still_alive(struct world *w)
{
        struct sim_resp r;

        assert_true(sim_alive(w->sim));
        CK_OK(sim_rpc(w->sim, PING, NULL, NULL, NULL, "{\"data\":\"alive\"}", &r));
        CK_STATUS(&r, 200);
        CK_JSON_EQ(r.json, "{\"data\":\"Hello, alive!\"}");
        sim_resp_done(&r);
}

static void expect_4xx(const struct sim_resp *r, const char *what)
{
        if (r->status < 400 || r->status > 499)
                fail_msg("%s: status %ld, expected 4xx; body %.300s", what, r->status, r->body ? r->body : "");
}

/* A 4xx Connect error with {code, message}. */
static void expect_connect_4xx(const struct sim_resp *r, const char *what)
{
        expect_4xx(r, what);
        if (!json_is_object(r->json) || !json_is_string(json_object_get(r->json, "code")) ||
            !json_is_string(json_object_get(r->json, "message")))
                fail_msg("%s: not a Connect error body: %.300s", what, r->body ? r->body : "");
}

static void rpc_bad(struct world *w, const struct sim_runner *rn, const char *method, const char *body)
{
        struct sim_resp r;

        CK_OK(sim_rpc(w->sim, method, rn ? rn->uuid : NULL, rn ? rn->token : NULL, NULL, body, &r));
        expect_connect_4xx(&r, P("%s %.80s", method, body));
        sim_resp_done(&r);
}

static void post_bad(struct world *w, const char *path, const char *token, const char *body)
{
        struct sim_resp r;

        CK_OK(sim_post(w->sim, path, token, body, &r));
        expect_4xx(&r, P("POST %s %.80s", path, body));
        sim_resp_done(&r);
}

/* Malformed JSON to the REST API → 4xx. */
static void malformed_json_rest_4xx(void **state)
{
        struct world *w = *state;
        const char *bodies[] = { "{not json", "{\"name\":\"x\"", "", "\"just a string\"", "[1,2]", "null" };
        json_t *all = NULL;

        for (size_t i = 0; i < 6; i++)
                post_bad(w, "/api/v1/admin/actions/runners", w->root.token, bodies[i]);
        CK_OK(sim_list_runners(w->sim, &all));
        assert_int_equal(json_array_size(all), 0);
        json_decref(all);
        still_alive(w);
}

/* Malformed JSON to an RPC → 4xx Connect error. */
static void malformed_json_rpc_4xx(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;

        mk_runner(w, "/api/v1/admin", w->root.token, "r", false, "[\"a\"]", &rn);
        rpc_bad(w, &rn, "runner.v1.RunnerService/FetchTask", "{not json");
        rpc_bad(w, &rn, "runner.v1.RunnerService/FetchTask", "[]");
        rpc_bad(w, &rn, "runner.v1.RunnerService/UpdateLog", "{\"taskId\":");
        rpc_bad(w, NULL, "runner.v1.RunnerService/Register", "{");
        rpc_bad(w, NULL, PING, "{\"data\":");
        still_alive(w);
}

/* Values of the wrong JSON type → 4xx Connect error (protojson rejects
 * them), including int64 out of range and unknown enum names. */
static void wrong_types_rpc_4xx(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;

        mk_runner(w, "/api/v1/admin", w->root.token, "r", false, "[\"a\"]", &rn);
        rpc_bad(w, &rn, "runner.v1.RunnerService/FetchTask", "{\"tasksVersion\":{}}");
        rpc_bad(w, &rn, "runner.v1.RunnerService/FetchTask", "{\"tasksVersion\":\"abc\"}");
        rpc_bad(w, &rn, "runner.v1.RunnerService/FetchTask", "{\"tasksVersion\":true}");
        rpc_bad(w, &rn, "runner.v1.RunnerService/FetchTask", "{\"tasksVersion\":\"99999999999999999999\"}");
        rpc_bad(w, &rn, "runner.v1.RunnerService/Declare", "{\"version\":\"v\",\"labels\":\"a\"}");
        rpc_bad(w, &rn, "runner.v1.RunnerService/Declare", "{\"version\":1,\"labels\":[]}");
        rpc_bad(w, &rn, "runner.v1.RunnerService/UpdateTask", "{\"state\":[]}");
        rpc_bad(w, &rn, "runner.v1.RunnerService/UpdateTask", "{\"state\":{\"id\":\"1\",\"result\":\"RESULT_BOGUS\"}}");
        rpc_bad(w, &rn, "runner.v1.RunnerService/UpdateLog", "{\"taskId\":\"1\",\"rows\":{}}");
        rpc_bad(w, NULL, "runner.v1.RunnerService/Register", "{\"token\":5,\"name\":\"x\"}");
        still_alive(w);
}

/* Values of the wrong JSON type to REST → 4xx. */
static void wrong_types_rest_4xx(void **state)
{
        struct world *w = *state;
        json_t *all = NULL;

        post_bad(w, "/api/v1/admin/actions/runners", w->root.token, "{\"name\":5}");
        post_bad(w, "/api/v1/admin/actions/runners", w->root.token, "{\"name\":\"x\",\"ephemeral\":\"yes\"}");
        post_bad(w, "/api/v1/admin/actions/runners", w->root.token, "{\"name\":[\"x\"]}");
        CK_OK(sim_list_runners(w->sim, &all));
        assert_int_equal(json_array_size(all), 0);
        json_decref(all);
        still_alive(w);
}

/* Bad control requests → 4xx. */
static void malformed_control_4xx(void **state)
{
        struct world *w = *state;

        post_bad(w, "/_sim/users", NULL, "{");
        post_bad(w, "/_sim/users", NULL, "{\"admin\":true}");
        post_bad(w, "/_sim/orgs", NULL, "{\"name\":\"o\",\"owners\":[\"nobody\"]}");
        post_bad(w, "/_sim/repos", NULL, "{\"owner\":5,\"name\":\"x\"}");
        post_bad(w, "/_sim/jobs", NULL, "{\"owner\":\"acme\",\"repo\":\"web\",\"name\":\"j\",\"runs_on\":\"a\",\"steps\":[]}");
        post_bad(w, "/_sim/jobs", NULL, "{\"owner\":\"acme\",\"repo\":\"nope\",\"name\":\"j\",\"runs_on\":[],\"steps\":[]}");
        post_bad(w, "/_sim/faults", NULL, "{\"path_prefix\":\"/\",\"mode\":\"bogus\"}");
        post_bad(w, "/_sim/faults", NULL, "[]");
        still_alive(w);
}

/* Bodies of 16 MiB → 4xx, no crash, no unbounded buffering. */
static void huge_body_rejected(void **state)
{
        struct world *w = *state;
        size_t n = 16u << 20;
        char *big = malloc(n + 64);
        struct sim_resp r;
        const char *paths[] = { "/api/actions/runner.v1.RunnerService/FetchTask", "/api/v1/admin/actions/runners",
                                "/_sim/users", "/api/actions/ping.v1.PingService/Ping" };
        struct sim_runner rn;

        assert_non_null(big);
        mk_runner(w, "/api/v1/admin", w->root.token, "r", false, "[\"a\"]", &rn);
        const char *hdrs[] = { "Content-Type: application/json", P("Authorization: token %s", w->root.token),
                               P("x-runner-uuid: %s", rn.uuid), P("x-runner-token: %s", rn.token), NULL };
        /* Valid for every route apart from its size. */
        size_t off = (size_t)snprintf(big, 64, "{\"name\":\"x\",\"admin\":false,\"description\":\"");
        memset(big + off, 'a', n - off - 2);
        memcpy(big + n - 2, "\"}", 3);
        for (size_t i = 0; i < 4; i++) {
                struct sim_req req = { .method = "POST", .path = paths[i], .headers = hdrs, .body = big,
                                       .body_len = n, .timeout_ms = 20000, .fresh_connection = true };
                int rc = sim_request(w->sim, &req, &r);
                if (rc < 0)
                        fail_msg("%s with a 16 MiB body: no HTTP answer (%d)", paths[i], rc);
                expect_4xx(&r, P("%s with a 16 MiB body", paths[i]));
                sim_resp_done(&r);
        }
        free(big);
        still_alive(w);
}

/* A path of 6000 bytes → 4xx. */
static void huge_url_rejected(void **state)
{
        struct world *w = *state;
        static char name[6001];
        struct sim_resp r;

        memset(name, 'o', 6000);
        CK_OK(sim_get(w->sim, P("/api/v1/orgs/%s/actions/runners/jobs", name), w->root.token, &r));
        expect_4xx(&r, "6000-byte org name");
        sim_resp_done(&r);
        still_alive(w);
}

/* JSON nested 100000 levels deep → 4xx, no stack overflow. */
static void deeply_nested_json_rejected(void **state)
{
        struct world *w = *state;
        size_t depth = 100000;
        char *b = malloc(2 * depth + 1);
        struct sim_runner rn;

        assert_non_null(b);
        memset(b, '[', depth);
        memset(b + depth, ']', depth);
        b[2 * depth] = '\0';
        mk_runner(w, "/api/v1/admin", w->root.token, "r", false, "[\"a\"]", &rn);
        rpc_bad(w, &rn, "runner.v1.RunnerService/FetchTask", b);
        post_bad(w, "/_sim/users", NULL, b);
        post_bad(w, "/api/v1/admin/actions/runners", w->root.token, b);
        free(b);
        char *o = malloc(5 * 20000 + 64);
        assert_non_null(o);
        size_t off = 0;
        for (int i = 0; i < 20000; i++)
                off += (size_t)snprintf(o + off, 6, "{\"a\":");
        snprintf(o + off, 2, "1");
        rpc_bad(w, &rn, "runner.v1.RunnerService/UpdateTask", o);
        free(o);
        still_alive(w);
}

/* Invalid UTF-8 inside JSON strings → 4xx (JSON text must be UTF-8). */
static void invalid_utf8_rejected(void **state)
{
        struct world *w = *state;
        struct sim_resp r;
        char tok[256];

        CK_OK(sim_get(w->sim, "/api/v1/admin/actions/runners/registration-token", w->root.token, &r));
        CK_STATUS(&r, 200);
        snprintf(tok, sizeof(tok), "%s", CK_STR(r.json, "token"));
        sim_resp_done(&r);
        rpc_bad(w, NULL, "runner.v1.RunnerService/Register", P("{\"token\":\"%s\",\"name\":\"bad\xff\xfe\"}", tok));
        post_bad(w, "/api/v1/admin/actions/runners", w->root.token, "{\"name\":\"bad\xc3\x28\"}");
        post_bad(w, "/_sim/users", NULL, "{\"name\":\"\xed\xa0\x80\",\"admin\":false}");
        still_alive(w);
}

/* Wrong Content-Type on an RPC → 4xx (Connect answers 415). */
static void rpc_wrong_content_type_4xx(void **state)
{
        struct world *w = *state;
        struct sim_resp r;
        const char *hdrs[] = { "Content-Type: text/plain", NULL };
        struct sim_req req = { .method = "POST", .path = "/api/actions/ping.v1.PingService/Ping", .headers = hdrs,
                               .body = "{\"data\":\"x\"}" };

        CK_OK(sim_request(w->sim, &req, &r));
        expect_4xx(&r, "Ping with Content-Type text/plain");
        sim_resp_done(&r);
        still_alive(w);
}

/* Odd but harmless input: empty bodies, NUL escapes, negative indexes:
 * answered with 200 or 4xx, never 5xx or a crash. */
static void odd_input_never_5xx(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_job j;
        struct sim_resp r;

        mk_job(w, "acme", "web", "j", "[\"a\"]", &j);
        mk_runner(w, "/api/v1/admin", w->root.token, "r", false, "[\"a\"]", &rn);
        long long task = claim(w, &rn);
        const char *cases[][2] = {
                { "runner.v1.RunnerService/FetchTask", "" },
                { "runner.v1.RunnerService/Declare", "{\"version\":\"v\\u0000x\",\"labels\":[\"a\\u0000b\"]}" },
                { "runner.v1.RunnerService/UpdateLog", P("{\"taskId\":\"%lld\",\"index\":\"-1\",\"rows\":[{\"content\":\"x\"},{\"content\":\"y\"}]}", task) },
                { "runner.v1.RunnerService/UpdateLog", P("{\"taskId\":\"%lld\",\"index\":\"9223372036854775807\",\"rows\":[{\"content\":\"x\"}]}", task) },
                { "runner.v1.RunnerService/UpdateLog", P("{\"taskId\":\"%lld\",\"index\":\"-9223372036854775808\",\"rows\":[{\"content\":\"x\"}]}", task) },
                { "runner.v1.RunnerService/UpdateTask", P("{\"state\":{\"id\":\"%lld\",\"result\":7}}", task) },
                { "runner.v1.RunnerService/FetchTask", "{\"tasksVersion\":\"-1\",\"taskCapacity\":\"100000000\"}" },
                { "runner.v1.RunnerService/FetchSingleTask", "{\"handle\":\"\"}" },
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                CK_OK(sim_rpc(w->sim, cases[i][0], rn.uuid, rn.token, NULL, cases[i][1], &r));
                if (r.status != 200 && (r.status < 400 || r.status > 499))
                        fail_msg("%s %s: status %ld; body %.300s", cases[i][0], cases[i][1], r.status, r.body);
                sim_resp_done(&r);
        }
        still_alive(w);
}

static int raw_connect(struct world *w)
{
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)w->sim->port) };

        if (fd < 0)
                return -errno;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                int e = -errno;
                close(fd);
                return e;
        }
        return fd;
}

/* Clients that send half a request and vanish, or send garbage that is
 * not HTTP, do not take the server down. */
static void aborted_requests_survive(void **state)
{
        struct world *w = *state;
        const char *partial[] = {
                "POST /api/actions/runner.v1.RunnerService/FetchTask HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"tasks",
                "GET /api/v1/admin/actions/runners/jobs HTTP/1.1\r\nHost: x\r\nAuthoriz",
                "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all\r\n\r\n",
                "POST /_sim/users HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
                "POST /_sim/users HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        };

        for (size_t i = 0; i < sizeof(partial) / sizeof(partial[0]); i++) {
                int fd = raw_connect(w);
                CK_OK(fd);
                ssize_t n = write(fd, partial[i], strlen(partial[i]));
                assert_true(n > 0);
                close(fd);
        }
        still_alive(w);
}

/* Idle keep-alive connections do not block other clients. */
static void idle_connections_do_not_block(void **state)
{
        struct world *w = *state;
        int fds[32];

        for (size_t i = 0; i < 32; i++) {
                fds[i] = raw_connect(w);
                CK_OK(fds[i]);
        }
        /* One of them even starts a request and stalls mid-headers. */
        const char *stall = "GET /api/v1/version HTTP/1.1\r\nHost: x\r\n";
        assert_true(write(fds[0], stall, strlen(stall)) > 0);
        double t0 = ck_now();
        still_alive(w);
        assert_true(ck_now() - t0 < 2.0);
        for (size_t i = 0; i < 32; i++)
                close(fds[i]);
        still_alive(w);
}

/* Many requests on one kept-alive connection all succeed. */
static void keepalive_many_requests(void **state)
{
        struct world *w = *state;

        for (int i = 0; i < 300; i++)
                still_alive(w);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                T(malformed_json_rest_4xx),
                T(malformed_json_rpc_4xx),
                T(wrong_types_rpc_4xx),
                T(wrong_types_rest_4xx),
                T(malformed_control_4xx),
                T(huge_body_rejected),
                T(huge_url_rejected),
                T(deeply_nested_json_rejected),
                T(invalid_utf8_rejected),
                T(rpc_wrong_content_type_4xx),
                T(odd_input_never_5xx),
                T(aborted_requests_survive),
                T(idle_connections_do_not_block),
                T(keepalive_many_requests),
        };

        return WORLD_RUN(tests, argc, argv);
}
