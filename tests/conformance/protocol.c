/* protocol.c: the runner protocol of forgejo-api.md §4 against
 * forgejo-sim: transport and Connect errors (§4.1), authentication
 * (§4.2), Register/Declare/Ping (§4.3), FetchTask, tasks_version, request
 * keys and FetchSingleTask (§4.3, §4.4), the Task message (§4.5) and the
 * pick rules (§6.1, forgejo-runner.md §4). Request bodies are literal
 * protojson, never built by src/forge; responses are checked field by field. */
#include "world.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FETCH "runner.v1.RunnerService/FetchTask"
#define SINGLE "runner.v1.RunnerService/FetchSingleTask"

static void rpc(struct world *w, const char *method, const struct sim_runner *rn, const char *key,
                const char *body, struct sim_resp *r)
{
        CK_OK(sim_rpc(w->sim, method, rn ? rn->uuid : NULL, rn ? rn->token : NULL, key, body, r));
}

/* FetchTask with body; returns tasksVersion, *ret_task the task id (0). */
static long long fetch_v(struct world *w, const struct sim_runner *rn, const char *key,
                         const char *body, long long *ret_task)
{
        struct sim_resp r;

        rpc(w, FETCH, rn, key, body, &r);
        CK_STATUS(&r, 200);
        long long v = CK_I64S(r.json, "tasksVersion");
        json_t *task = json_object_get(r.json, "task");
        *ret_task = task ? CK_I64S(task, "id") : 0;
        sim_resp_done(&r);
        return v;
}

static long long job_task_id(struct world *w, long long job)
{
        json_t *j = job_state(w, job);
        json_t *t = json_object_get(j, "task_id");
        long long id = json_is_integer(t) ? json_integer_value(t) : 0;

        json_decref(j);
        return id;
}

/* §4.3 Ping: no auth interceptor; answers "Hello, <data>!". §4.1: plain
 * JSON POST, no Connect-Protocol-Version header needed. */
static void ping_without_auth(void **state)
{
        struct world *w = *state;
        struct sim_resp r;
        const char *hdrs[] = { "Content-Type: application/json", NULL };
        struct sim_req req = { .method = "POST", .path = "/api/actions/ping.v1.PingService/Ping",
                               .headers = hdrs, .body = "{\"data\":\"forgescale\"}" };

        CK_OK(sim_request(w->sim, &req, &r));
        CK_STATUS(&r, 200);
        assert_true(strncmp(r.content_type, "application/json", 16) == 0);
        CK_JSON_EQ(r.json, "{\"data\":\"Hello, forgescale!\"}");
        sim_resp_done(&r);
}

static const char *const auth_methods[] = {
        "runner.v1.RunnerService/Declare", "runner.v1.RunnerService/FetchTask",
        "runner.v1.RunnerService/FetchSingleTask", "runner.v1.RunnerService/UpdateTask",
        "runner.v1.RunnerService/UpdateLog",
};
static const char *const auth_bodies[] = {
        "{\"version\":\"v1\",\"labels\":[\"a\"]}", "{\"tasksVersion\":\"0\"}", "{\"tasksVersion\":\"0\"}",
        "{\"state\":{\"id\":\"1\"}}", "{\"taskId\":\"1\",\"index\":\"0\",\"rows\":[]}",
};

/* §4.2: x-runner-uuid and x-runner-token are required on every
 * RunnerService method except Register; failure → Connect
 * "unauthenticated" (HTTP 401) with a {code, message} JSON body. */
static void rpc_missing_auth_headers_unauthenticated(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_resp r;

        mk_runner(w, "/api/v1/admin", w->root.token, "r", false, "[\"a\"]", &rn);
        for (size_t i = 0; i < 5; i++) {
                for (int variant = 0; variant < 3; variant++) {
                        const char *uuid = variant == 1 ? rn.uuid : NULL;
                        const char *token = variant == 2 ? rn.token : NULL;
                        CK_OK(sim_rpc(w->sim, auth_methods[i], uuid, token, NULL, auth_bodies[i], &r));
                        if (r.status != 401)
                                print_error("%s, headers variant %d\n", auth_methods[i], variant);
                        CK_CONNECT_ERR(&r, 401, "unauthenticated");
                        assert_true(strncmp(r.content_type, "application/json", 16) == 0);
                        sim_resp_done(&r);
                }
        }
}

/* §4.2: unknown uuid or wrong token → "unauthenticated". */
static void rpc_bad_credentials_unauthenticated(void **state)
{
        struct world *w = *state;
        struct sim_runner a, b, mixed;
        struct sim_resp r;

        mk_runner(w, "/api/v1/admin", w->root.token, "a", false, "[\"a\"]", &a);
        mk_runner(w, "/api/v1/admin", w->root.token, "b", false, "[\"a\"]", &b);
        mixed = a;
        snprintf(mixed.token, sizeof(mixed.token), "%s", b.token);
        rpc(w, FETCH, &mixed, NULL, "{\"tasksVersion\":\"0\"}", &r);
        CK_CONNECT_ERR(&r, 401, "unauthenticated");
        sim_resp_done(&r);
        mixed = a;
        snprintf(mixed.uuid, sizeof(mixed.uuid), "%s", "7d0b4a36-31a2-4c2d-9a52-3f5c1c0b9e11");
        rpc(w, FETCH, &mixed, NULL, "{\"tasksVersion\":\"0\"}", &r);
        CK_CONNECT_ERR(&r, 401, "unauthenticated");
        sim_resp_done(&r);
        mixed = a;
        mixed.token[0] = mixed.token[0] == '0' ? '1' : '0';
        rpc(w, "runner.v1.RunnerService/Declare", &mixed, NULL, "{\"version\":\"v\",\"labels\":[]}", &r);
        CK_CONNECT_ERR(&r, 401, "unauthenticated");
        sim_resp_done(&r);
}

/* §4.1: services are mounted for their known methods; an unknown method
 * or service is not found (HTTP 404, which Connect clients read as
 * "unimplemented"). */
static void rpc_unknown_method_404(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_resp r;
        const char *paths[] = { "runner.v1.RunnerService/NoSuchMethod", "runner.v1.NoSuchService/FetchTask",
                                "ping.v1.PingService/Pong" };

        mk_runner(w, "/api/v1/admin", w->root.token, "r", false, "[\"a\"]", &rn);
        for (size_t i = 0; i < 3; i++) {
                rpc(w, paths[i], &rn, NULL, "{}", &r);
                if (r.status != 404)
                        print_error("POST /api/actions/%s\n", paths[i]);
                CK_STATUS(&r, 404);
                const char *code = json_is_object(r.json) ? json_string_value(json_object_get(r.json, "code")) : NULL;
                if (code && strcmp(code, "unimplemented") != 0)
                        fail_msg("unknown method answered Connect code \"%s\"", code);
                sim_resp_done(&r);
        }
}

/* §4.1: services are registered only for POST. */
static void rpc_post_only(void **state)
{
        struct world *w = *state;
        struct sim_resp r;

        CK_OK(sim_get(w->sim, "/api/actions/ping.v1.PingService/Ping", NULL, &r));
        if (r.status != 404 && r.status != 405)
                fail_msg("GET on an RPC: status %ld, expected 404 or 405", r.status);
        sim_resp_done(&r);
}

/* ---- §4.1 codecs and compression, in raw bytes (not through sim_rpc(),
 * so both runs of this group send exactly these) ---- */

static void raw_rpc(struct world *w, const char *method, const struct sim_runner *rn,
                    const char *content_type, const char *extra_header, const void *body,
                    size_t len, struct sim_resp *r)
{
        const char *hdrs[6];
        size_t n = 0;

        hdrs[n++] = P("Content-Type: %s", content_type);
        if (rn) {
                hdrs[n++] = P("x-runner-uuid: %s", rn->uuid);
                hdrs[n++] = P("x-runner-token: %s", rn->token);
        }
        if (extra_header)
                hdrs[n++] = extra_header;
        hdrs[n] = NULL;
        struct sim_req req = { .method = "POST", .path = P("/api/actions/%s", method), .headers = hdrs,
                               .body = len ? body : "", .body_len = len };
        CK_OK(sim_request(w->sim, &req, r));
}

/* §4.1: a binary protobuf request (forgejo-runner's default) is answered
 * in binary protobuf; bytes from the field numbers of §4.7 and §4.3. */
static void rpc_proto_answered_in_proto(void **state)
{
        struct world *w = *state;
        static const uint8_t ping[] = { 0x0a, 0x01, 'x' };
        static const uint8_t want[] = { 0x0a, 0x09, 'H', 'e', 'l', 'l', 'o', ',', ' ', 'x', '!' };
        struct sim_resp r;

        raw_rpc(w, "ping.v1.PingService/Ping", NULL, "application/proto", NULL, ping, sizeof(ping), &r);
        CK_STATUS(&r, 200);
        assert_string_equal(r.content_type, "application/proto");
        assert_int_equal(r.len, sizeof(want));
        assert_memory_equal(r.body, want, sizeof(want));
        sim_resp_done(&r);
        /* An empty body is the message with every field at its default. */
        raw_rpc(w, "ping.v1.PingService/Ping", NULL, "application/proto", NULL, NULL, 0, &r);
        CK_STATUS(&r, 200);
        assert_int_equal(r.len, 10);
        assert_memory_equal(r.body, "\x0a\x08Hello, !", 10);
        sim_resp_done(&r);
}

/* §4.1: errors are Connect JSON bodies whatever the request's codec. */
static void rpc_proto_errors_are_json(void **state)
{
        struct world *w = *state;
        static const uint8_t cut[] = { 0x0a, 0x05, 'x' };
        static const uint8_t fetch[] = { 0x08, 0x00 };
        struct sim_resp r;

        raw_rpc(w, "ping.v1.PingService/Ping", NULL, "application/proto", NULL, cut, sizeof(cut), &r);
        CK_CONNECT_ERR(&r, 400, "invalid_argument");
        assert_true(strncmp(r.content_type, "application/json", 16) == 0);
        assert_non_null(strstr(json_string_value(json_object_get(r.json, "message")), "cut short"));
        sim_resp_done(&r);
        raw_rpc(w, FETCH, NULL, "application/proto", NULL, fetch, sizeof(fetch), &r);
        CK_CONNECT_ERR(&r, 401, "unauthenticated");
        assert_true(strncmp(r.content_type, "application/json", 16) == 0);
        sim_resp_done(&r);
        raw_rpc(w, "ping.v1.PingService/Ping", NULL, "application/json; charset=latin1", NULL, "{}", 2, &r);
        CK_STATUS(&r, 415);
        CK_CONNECT_ERR(&r, 415, "unimplemented");
        sim_resp_done(&r);
}

/* Field numbers the schema lacks (a newer peer's) are skipped, as the
 * JSON codec skips unknown names. */
static void rpc_proto_unknown_fields_ignored(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_resp r;
        json_t *j = NULL;
        char err[RP_ERR_MAX];
        /* tasks_version 0, field 1000 "hi", field 1001 varint 5 */
        static const uint8_t body[] = { 0x08, 0x00, 0xc2, 0x3e, 0x02, 'h', 'i', 0xc8, 0x3e, 0x05 };

        mk_runner(w, "/api/v1/admin", w->root.token, "r", false, "[\"a\"]", &rn);
        raw_rpc(w, FETCH, &rn, "application/proto", NULL, body, sizeof(body), &r);
        CK_STATUS(&r, 200);
        CK_OK(rpcodec_decode(FETCH, RPCODEC_RESPONSE, RPCODEC_PROTO, r.body, r.len, &j, err));
        assert_true(CK_I64S(j, "tasksVersion") >= 1);
        json_decref(j);
        sim_resp_done(&r);
}

/* §4.1 compression: a gzipped request is inflated (with a bound); an
 * answer of 1 KiB or more is gzipped only for a client that accepts it. */
static void rpc_gzip_both_ways(void **state)
{
        struct world *w = *state;
        const char *ping = "{\"data\":\"zipped\"}";
        struct sim_runner rn;
        struct sim_job job;
        struct sim_resp r;
        char err[RP_ERR_MAX], steps[1400];
        void *z, *plain;
        size_t zn, n;

        CK_OK(rpcodec_gzip(ping, strlen(ping), &z, &zn));
        raw_rpc(w, "ping.v1.PingService/Ping", NULL, "application/json", "Content-Encoding: gzip", z, zn, &r);
        CK_STATUS(&r, 200);
        CK_JSON_EQ(r.json, "{\"data\":\"Hello, zipped!\"}");
        sim_resp_done(&r);
        raw_rpc(w, "ping.v1.PingService/Ping", NULL, "application/json", "Content-Encoding: br", z, zn, &r);
        CK_CONNECT_ERR(&r, 501, "unimplemented");
        sim_resp_done(&r);
        raw_rpc(w, "ping.v1.PingService/Ping", NULL, "application/json", "Content-Encoding: gzip", z, zn - 3, &r);
        CK_CONNECT_ERR(&r, 400, "invalid_argument");
        sim_resp_done(&r);
        free(z);

        /* 9 MiB of zeros: about 9 KiB on the wire, more than the body limit inflated. */
        size_t big = 9u << 20;
        char *zeros = calloc(1, big);
        assert_non_null(zeros);
        CK_OK(rpcodec_gzip(zeros, big, &z, &zn));
        free(zeros);
        raw_rpc(w, "ping.v1.PingService/Ping", NULL, "application/proto", "Content-Encoding: gzip", z, zn, &r);
        CK_CONNECT_ERR(&r, 429, "resource_exhausted");
        sim_resp_done(&r);
        free(z);

        snprintf(steps, sizeof(steps), "[\"echo %0*d\"]", 1200, 1);
        CK_OK(sim_create_job(w->sim, "acme", "web", "big", "[\"a\"]", steps, &job));
        CK_OK(sim_create_job(w->sim, "acme", "web", "big2", "[\"a\"]", steps, &job));
        mk_runner(w, "/api/v1/admin", w->root.token, "r", false, "[\"a\"]", &rn);
        raw_rpc(w, FETCH, &rn, "application/proto", "Accept-Encoding: gzip", "\x08\x00", 2, &r);
        CK_STATUS(&r, 200);
        assert_string_equal(r.content_encoding, "gzip");
        CK_OK(rpcodec_gunzip(r.body, r.len, 1 << 20, &plain, &n, err));
        json_t *j = NULL;
        CK_OK(rpcodec_decode(FETCH, RPCODEC_RESPONSE, RPCODEC_PROTO, plain, n, &j, err));
        assert_true(CK_I64S(CK_OBJ(j, "task"), "id") > 0);
        json_decref(j);
        free(plain);
        sim_resp_done(&r);
        /* Without Accept-Encoding the second big task comes plain; small
         * answers always do. */
        raw_rpc(w, FETCH, &rn, "application/json", NULL, "{}", 2, &r);
        CK_STATUS(&r, 200);
        assert_string_equal(r.content_encoding, "");
        assert_true(r.len > 1024);
        assert_true(CK_I64S(CK_OBJ(r.json, "task"), "id") > 0);
        sim_resp_done(&r);
        raw_rpc(w, "ping.v1.PingService/Ping", NULL, "application/json", "Accept-Encoding: gzip", "{}", 2, &r);
        CK_STATUS(&r, 200);
        assert_string_equal(r.content_encoding, "");
        sim_resp_done(&r);
}

/* §4.1 protojson input rules: snake_case names and int64 as JSON numbers
 * are accepted; unknown fields are ignored. */
static void rpc_protojson_input_variants(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_resp r;
        const char *bodies[] = { "{\"tasks_version\":\"0\"}", "{\"tasksVersion\":0}",
                                 "{\"tasksVersion\":\"0\",\"someFutureField\":{\"x\":1}}", "{}" };

        mk_runner(w, "/api/v1/admin", w->root.token, "r", false, "[\"a\"]", &rn);
        for (size_t i = 0; i < 4; i++) {
                rpc(w, FETCH, &rn, NULL, bodies[i], &r);
                if (r.status != 200)
                        print_error("FetchTask body %s\n", bodies[i]);
                CK_STATUS(&r, 200);
                assert_true(CK_I64S(r.json, "tasksVersion") >= 1);
                sim_resp_done(&r);
        }
        rpc(w, "runner.v1.RunnerService/Declare", &rn, NULL, "{\"version\":\"v2\",\"labels\":[\"x\"],\"capabilities\":[\"c\"]}", &r);
        CK_STATUS(&r, 200);
        sim_resp_done(&r);
}

/* §4.3 Register: token and name are required → "invalid_argument". */
static void register_requires_token_and_name(void **state)
{
        struct world *w = *state;
        struct sim_resp r;
        char tok[256];
        json_t *all = NULL;

        CK_OK(sim_get(w->sim, "/api/v1/admin/actions/runners/registration-token", w->root.token, &r));
        CK_STATUS(&r, 200);
        snprintf(tok, sizeof(tok), "%s", CK_STR(r.json, "token"));
        sim_resp_done(&r);
        const char *bodies[] = { "{\"name\":\"x\",\"labels\":[\"a\"]}", P("{\"token\":\"%s\"}", tok),
                                 P("{\"token\":\"%s\",\"name\":\"\"}", tok), "{}" };
        for (size_t i = 0; i < 4; i++) {
                rpc(w, "runner.v1.RunnerService/Register", NULL, NULL, bodies[i], &r);
                if (r.status != 400)
                        print_error("Register %s\n", bodies[i]);
                CK_CONNECT_ERR(&r, 400, "invalid_argument");
                sim_resp_done(&r);
        }
        CK_OK(sim_list_runners(w->sim, &all));
        assert_int_equal(json_array_size(all), 0);
        json_decref(all);
}

/* §4.3 Register: an unknown token → "invalid_argument". */
static void register_unknown_token(void **state)
{
        struct world *w = *state;
        struct sim_resp r;

        rpc(w, "runner.v1.RunnerService/Register", NULL, NULL,
            "{\"token\":\"0000000000000000000000000000000000000000\",\"name\":\"x\"}", &r);
        CK_CONNECT_ERR(&r, 400, "invalid_argument");
        sim_resp_done(&r);
}

/* §4.3 Register: returns Runner{id, uuid, token, name, version, labels},
 * needs no runner headers, and the token works for later calls. */
static void register_returns_runner_with_token(void **state)
{
        struct world *w = *state;
        struct sim_resp r;
        struct sim_runner rn = { 0 };
        char tok[256];

        CK_OK(sim_get(w->sim, "/api/v1/orgs/acme/actions/runners/registration-token", w->alice.token, &r));
        CK_STATUS(&r, 200);
        snprintf(tok, sizeof(tok), "%s", CK_STR(r.json, "token"));
        sim_resp_done(&r);
        rpc(w, "runner.v1.RunnerService/Register", NULL, NULL,
            P("{\"token\":\"%s\",\"name\":\"r1\",\"version\":\"v12.9.0\",\"labels\":[\"a\",\"b\"]}", tok), &r);
        CK_STATUS(&r, 200);
        json_t *runner = CK_OBJ(r.json, "runner");
        rn.id = CK_I64S(runner, "id");
        assert_true(rn.id > 0);
        snprintf(rn.uuid, sizeof(rn.uuid), "%s", CK_STR(runner, "uuid"));
        assert_true(is_uuid(rn.uuid));
        snprintf(rn.token, sizeof(rn.token), "%s", CK_STR(runner, "token"));
        assert_true(strlen(rn.token) > 0);
        assert_string_equal(CK_STR(runner, "name"), "r1");
        assert_string_equal(CK_STR(runner, "version"), "v12.9.0");
        CK_JSON_EQ(json_object_get(runner, "labels"), "[\"a\",\"b\"]");
        /* protojson: false is omitted or written as false. */
        json_t *eph = json_object_get(runner, "ephemeral");
        assert_true(!eph || json_is_false(eph));
        sim_resp_done(&r);
        rpc(w, FETCH, &rn, NULL, "{\"tasksVersion\":\"0\"}", &r);
        CK_STATUS(&r, 200);
        sim_resp_done(&r);
}

/* §4.3 Declare: sets labels and version (overwriting), returns the runner;
 * works with the uuid/token of a REST-created runner (§3.2). */
static void declare_sets_labels_and_version(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_resp r;
        json_t *sr = NULL;

        mk_runner(w, "/api/v1/repos/acme/web", w->alice.token, "decl", false, NULL, &rn);
        rpc(w, "runner.v1.RunnerService/Declare", &rn, NULL, "{\"version\":\"v9.1.0\",\"labels\":[\"x\",\"y\"]}", &r);
        CK_STATUS(&r, 200);
        json_t *runner = CK_OBJ(r.json, "runner");
        assert_int_equal(CK_I64S(runner, "id"), rn.id);
        assert_string_equal(CK_STR(runner, "uuid"), rn.uuid);
        assert_string_equal(CK_STR(runner, "name"), "decl");
        assert_string_equal(CK_STR(runner, "version"), "v9.1.0");
        CK_JSON_EQ(json_object_get(runner, "labels"), "[\"x\",\"y\"]");
        sim_resp_done(&r);
        CK_OK(sim_find_runner(w->sim, rn.uuid, &sr));
        CK_JSON_EQ(json_object_get(sr, "labels"), "[\"x\",\"y\"]");
        assert_string_equal(CK_STR(sr, "version"), "v9.1.0");
        json_decref(sr);
        rpc(w, "runner.v1.RunnerService/Declare", &rn, NULL, "{\"version\":\"v9.2.0\",\"labels\":[\"z\"]}", &r);
        CK_STATUS(&r, 200);
        sim_resp_done(&r);
        CK_OK(sim_get(w->sim, P("/api/v1/repos/acme/web/actions/runners/%lld", rn.id), w->alice.token, &r));
        CK_STATUS(&r, 200);
        CK_JSON_EQ(json_object_get(r.json, "labels"), "[\"z\"]");
        assert_string_equal(CK_STR(r.json, "version"), "v9.2.0");
        sim_resp_done(&r);
}

/* §4.3 Register: the name is truncated to 255 bytes. */
static void register_truncates_name_to_255_bytes(void **state)
{
        struct world *w = *state;
        struct sim_resp r;
        char tok[256], name[301];

        CK_OK(sim_get(w->sim, "/api/v1/admin/actions/runners/registration-token", w->root.token, &r));
        CK_STATUS(&r, 200);
        snprintf(tok, sizeof(tok), "%s", CK_STR(r.json, "token"));
        sim_resp_done(&r);
        memset(name, 'n', 300);
        name[300] = '\0';
        rpc(w, "runner.v1.RunnerService/Register", NULL, NULL, P("{\"token\":\"%s\",\"name\":\"%s\"}", tok, name), &r);
        CK_STATUS(&r, 200);
        json_t *runner = CK_OBJ(r.json, "runner");
        assert_int_equal(strlen(CK_STR(runner, "name")), 255);
        json_t *sr = NULL;
        CK_OK(sim_find_runner(w->sim, CK_STR(runner, "uuid"), &sr));
        assert_int_equal(strlen(CK_STR(sr, "name")), 255);
        json_decref(sr);
        sim_resp_done(&r);
}

/* §4.3 Register: Forgejo ignores the deprecated agent_labels (no fallback
 * when labels is empty). */
static void register_ignores_agent_labels(void **state)
{
        struct world *w = *state;
        struct sim_resp r;
        char tok[256];
        struct sim_job j;
        struct sim_runner rn = { 0 };

        mk_job(w, "acme", "web", "j", "[\"a\"]", &j);
        CK_OK(sim_get(w->sim, "/api/v1/admin/actions/runners/registration-token", w->root.token, &r));
        CK_STATUS(&r, 200);
        snprintf(tok, sizeof(tok), "%s", CK_STR(r.json, "token"));
        sim_resp_done(&r);
        rpc(w, "runner.v1.RunnerService/Register", NULL, NULL,
            P("{\"token\":\"%s\",\"name\":\"old\",\"agentLabels\":[\"a\"],\"customLabels\":[\"a\"]}", tok), &r);
        CK_STATUS(&r, 200);
        json_t *runner = CK_OBJ(r.json, "runner");
        json_t *labels = json_object_get(runner, "labels");
        assert_true(!labels || (json_is_array(labels) && json_array_size(labels) == 0));
        snprintf(rn.uuid, sizeof(rn.uuid), "%s", CK_STR(runner, "uuid"));
        snprintf(rn.token, sizeof(rn.token), "%s", CK_STR(runner, "token"));
        sim_resp_done(&r);
        assert_int_equal(fetch(w, &rn), 0);
}

/* §4.4 version bumps: "after final results when concurrency queuing is on"
 * (CONCURRENCY_GROUP_QUEUE_ENABLED, default true, forgejo-runner.md §3.4). */
static void fetch_final_result_bumps_version(void **state)
{
        struct world *w = *state;
        struct sim_runner idle, worker;
        struct sim_job j;
        long long task, v;

        mk_job(w, "acme", "web", "j", "[\"a\"]", &j);
        mk_runner(w, "/api/v1/admin", w->root.token, "worker", false, "[\"a\"]", &worker);
        mk_runner(w, "/api/v1/admin", w->root.token, "idle", false, "[\"zz\"]", &idle);
        long long t = claim(w, &worker);
        v = fetch_v(w, &idle, NULL, "{\"tasksVersion\":\"0\"}", &task);
        assert_int_equal(fetch_v(w, &idle, NULL, P("{\"tasksVersion\":\"%lld\"}", v), &task), v);
        update_task(w, &worker, t, "RESULT_SUCCESS");
        assert_true(fetch_v(w, &idle, NULL, P("{\"tasksVersion\":\"%lld\"}", v), &task) > v);
}

/* §4.4 step 2: tasks_version ≥ 1 is always returned (0 means "old
 * server"); response names are lowerCamelCase. */
static void fetch_version_at_least_one(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_resp r;

        mk_runner(w, "/api/v1/admin", w->root.token, "r", false, "[\"a\"]", &rn);
        rpc(w, FETCH, &rn, NULL, "{\"tasksVersion\":\"0\"}", &r);
        CK_STATUS(&r, 200);
        if (!json_object_get(r.json, "tasksVersion"))
                fail_msg("no \"tasksVersion\" in %s", r.body);
        assert_true(CK_I64S(r.json, "tasksVersion") >= 1);
        CK_ABSENT(r.json, "tasks_version");
        CK_ABSENT(r.json, "task");
        sim_resp_done(&r);
}

/* §4.4 step 3: request.tasks_version == latest → no task, without looking
 * at the jobs (a job the runner could now take is not handed out). */
static void fetch_equal_version_skips_scan(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_job j;
        long long task, v, v2;

        mk_runner(w, "/api/v1/admin", w->root.token, "r", false, "[\"other\"]", &rn);
        mk_job(w, "acme", "web", "j", "[\"a\"]", &j);
        v = fetch_v(w, &rn, NULL, "{\"tasksVersion\":\"0\"}", &task);
        assert_int_equal(task, 0);
        CK_OK(sim_runner_declare(w->sim, &rn, "[\"a\"]"));
        v2 = fetch_v(w, &rn, NULL, P("{\"tasksVersion\":\"%lld\"}", v), &task);
        assert_int_equal(task, 0);
        assert_int_equal(v2, v);
        assert_string_equal(job_status(w, j.id), "waiting");
        fetch_v(w, &rn, NULL, "{\"tasksVersion\":\"0\"}", &task);
        assert_true(task > 0);
}

/* §4.4 version bumps: a new waiting job bumps the global scope. */
static void fetch_new_job_bumps_version(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_job j;
        long long task, v1, v2, v3;

        mk_runner(w, "/api/v1/admin", w->root.token, "r", false, "[\"zz\"]", &rn);
        v1 = fetch_v(w, &rn, NULL, "{\"tasksVersion\":\"0\"}", &task);
        assert_int_equal(fetch_v(w, &rn, NULL, P("{\"tasksVersion\":\"%lld\"}", v1), &task), v1);
        mk_job(w, "bob", "tool", "j", "[\"a\"]", &j);
        v2 = fetch_v(w, &rn, NULL, P("{\"tasksVersion\":\"%lld\"}", v1), &task);
        assert_true(v2 > v1);
        assert_int_equal(task, 0);
        mk_job(w, "acme", "api", "j2", "[\"b\"]", &j);
        v3 = fetch_v(w, &rn, NULL, P("{\"tasksVersion\":\"%lld\"}", v2), &task);
        assert_true(v3 > v2);
}

/* §4.4: versions are per scope: a job bumps global, its owner's and its
 * repo's scope, and no other owner or repo scope. */
static void fetch_version_is_per_scope(void **state)
{
        struct world *w = *state;
        struct sim_runner org, api, bob;
        struct sim_job j;
        long long task, vo, va, vb, n;

        mk_runner(w, "/api/v1/orgs/acme", w->alice.token, "org", false, "[\"zz\"]", &org);
        mk_runner(w, "/api/v1/repos/acme/api", w->alice.token, "api", false, "[\"zz\"]", &api);
        mk_runner(w, "/api/v1/user", w->bob.token, "bob", false, "[\"zz\"]", &bob);
        vo = fetch_v(w, &org, NULL, "{\"tasksVersion\":\"0\"}", &task);
        va = fetch_v(w, &api, NULL, "{\"tasksVersion\":\"0\"}", &task);
        vb = fetch_v(w, &bob, NULL, "{\"tasksVersion\":\"0\"}", &task);

        mk_job(w, "acme", "web", "web", "[\"a\"]", &j);
        n = fetch_v(w, &org, NULL, P("{\"tasksVersion\":\"%lld\"}", vo), &task);
        assert_true(n > vo);
        vo = n;
        assert_int_equal(fetch_v(w, &api, NULL, P("{\"tasksVersion\":\"%lld\"}", va), &task), va);
        assert_int_equal(fetch_v(w, &bob, NULL, P("{\"tasksVersion\":\"%lld\"}", vb), &task), vb);

        mk_job(w, "bob", "tool", "tool", "[\"a\"]", &j);
        n = fetch_v(w, &bob, NULL, P("{\"tasksVersion\":\"%lld\"}", vb), &task);
        assert_true(n > vb);
        assert_int_equal(fetch_v(w, &org, NULL, P("{\"tasksVersion\":\"%lld\"}", vo), &task), vo);
        assert_int_equal(fetch_v(w, &api, NULL, P("{\"tasksVersion\":\"%lld\"}", va), &task), va);

        mk_job(w, "acme", "api", "api", "[\"a\"]", &j);
        assert_true(fetch_v(w, &api, NULL, P("{\"tasksVersion\":\"%lld\"}", va), &task) > va);
        assert_true(fetch_v(w, &org, NULL, P("{\"tasksVersion\":\"%lld\"}", vo), &task) > vo);
}

/* §6.1 / forgejo-runner.md §4: a task is picked only when the job's
 * runs_on is a non-empty subset of the runner's labels. */
static void fetch_picks_only_label_subset(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_job ad, empty, ab;

        mk_job(w, "acme", "web", "ad", "[\"a\",\"d\"]", &ad);
        mk_job(w, "acme", "web", "empty", "[]", &empty);
        mk_job(w, "acme", "web", "ab", "[\"a\",\"b\"]", &ab);
        mk_runner(w, "/api/v1/admin", w->root.token, "r", false, "[\"a\",\"b\",\"c\"]", &rn);
        long long task = claim(w, &rn);
        assert_int_equal(job_task_id(w, ab.id), task);
        assert_string_equal(job_status(w, ab.id), "running");
        assert_string_equal(job_status(w, ad.id), "waiting");
        assert_string_equal(job_status(w, empty.id), "waiting");
        assert_int_equal(fetch(w, &rn), 0);
}

/* forgejo-runner.md §4: an empty runs-on, or a runner with no labels,
 * never matches; comparison is exact and case-sensitive. */
static void fetch_empty_labels_never_match(void **state)
{
        struct world *w = *state;
        struct sim_runner a, none;
        struct sim_job empty, upper;

        mk_job(w, "acme", "web", "empty", "[]", &empty);
        mk_job(w, "acme", "web", "upper", "[\"A\"]", &upper);
        mk_runner(w, "/api/v1/admin", w->root.token, "a", false, "[\"a\"]", &a);
        mk_runner(w, "/api/v1/admin", w->root.token, "none", false, "[]", &none);
        assert_int_equal(fetch(w, &a), 0);
        assert_int_equal(fetch(w, &none), 0);
        assert_string_equal(job_status(w, empty.id), "waiting");
        assert_string_equal(job_status(w, upper.id), "waiting");
}

/* §6.1: a repo runner takes only jobs of its repo. */
static void fetch_scope_repo_runner(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_job api, tool, web;

        mk_job(w, "acme", "api", "api", "[\"a\"]", &api);
        mk_job(w, "bob", "tool", "tool", "[\"a\"]", &tool);
        mk_runner(w, "/api/v1/repos/acme/web", w->alice.token, "r", false, "[\"a\"]", &rn);
        assert_int_equal(fetch(w, &rn), 0);
        mk_job(w, "acme", "web", "web", "[\"a\"]", &web);
        long long task = claim(w, &rn);
        assert_int_equal(job_task_id(w, web.id), task);
        assert_string_equal(job_status(w, api.id), "waiting");
        assert_string_equal(job_status(w, tool.id), "waiting");
}

/* §6.1: an owner (org) runner takes only jobs of that org's repos. */
static void fetch_scope_org_runner(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_job tool, app, api;

        mk_job(w, "bob", "tool", "tool", "[\"a\"]", &tool);
        mk_job(w, "alice", "app", "app", "[\"a\"]", &app);
        mk_runner(w, "/api/v1/orgs/acme", w->alice.token, "r", false, "[\"a\"]", &rn);
        assert_int_equal(fetch(w, &rn), 0);
        mk_job(w, "acme", "api", "api", "[\"a\"]", &api);
        long long task = claim(w, &rn);
        assert_int_equal(job_task_id(w, api.id), task);
        assert_string_equal(job_status(w, tool.id), "waiting");
        assert_string_equal(job_status(w, app.id), "waiting");
}

/* §6.1: an owner (user) runner takes only jobs of that user's repos. */
static void fetch_scope_user_runner(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_job app, web, tool;

        mk_job(w, "alice", "app", "app", "[\"a\"]", &app);
        mk_job(w, "acme", "web", "web", "[\"a\"]", &web);
        mk_runner(w, "/api/v1/user", w->bob.token, "r", false, "[\"a\"]", &rn);
        assert_int_equal(fetch(w, &rn), 0);
        mk_job(w, "bob", "tool", "tool", "[\"a\"]", &tool);
        long long task = claim(w, &rn);
        assert_int_equal(job_task_id(w, tool.id), task);
        assert_string_equal(job_status(w, app.id), "waiting");
        assert_string_equal(job_status(w, web.id), "waiting");
}

/* §6.1: a global runner takes jobs of every repository. */
static void fetch_scope_global_runner(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_job j[3];

        mk_job(w, "alice", "app", "app", "[\"a\"]", &j[0]);
        mk_job(w, "acme", "web", "web", "[\"a\"]", &j[1]);
        mk_job(w, "bob", "tool", "tool", "[\"a\"]", &j[2]);
        mk_runner(w, "/api/v1/admin", w->root.token, "r", false, "[\"a\"]", &rn);
        for (int i = 0; i < 3; i++)
                claim(w, &rn);
        assert_int_equal(fetch(w, &rn), 0);
        for (int i = 0; i < 3; i++)
                assert_string_equal(job_status(w, j[i].id), "running");
}

/* §6.1: the pick query orders by updated, id: the oldest job first. */
static void fetch_oldest_job_first(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_job j1, j2;

        mk_job(w, "acme", "web", "j1", "[\"a\"]", &j1);
        mk_job(w, "acme", "web", "j2", "[\"a\"]", &j2);
        mk_runner(w, "/api/v1/admin", w->root.token, "r", false, "[\"a\"]", &rn);
        long long t1 = claim(w, &rn);
        assert_int_equal(job_task_id(w, j1.id), t1);
        long long t2 = claim(w, &rn);
        assert_int_equal(job_task_id(w, j2.id), t2);
        assert_true(t1 != t2);
}

/* §4.5/§4.1: Task{id (int64 string), workflowPayload (base64 YAML of a
 * single-job workflow built from the job's steps)}. */
static void fetch_task_shape(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_job j;
        struct sim_resp r;
        static char yaml[65536];

        CK_OK(sim_create_job(w->sim, "acme", "web", "build", "[\"a\"]",
                             "[\"echo conformance-step-1\",\"echo conformance-step-2\"]", &j));
        mk_runner(w, "/api/v1/admin", w->root.token, "r", false, "[\"a\"]", &rn);
        rpc(w, FETCH, &rn, NULL, "{\"tasksVersion\":\"0\"}", &r);
        CK_STATUS(&r, 200);
        assert_true(CK_I64S(r.json, "tasksVersion") >= 1);
        json_t *task = CK_OBJ(r.json, "task");
        assert_true(CK_I64S(task, "id") > 0);
        CK_ABSENT(task, "workflow_payload");
        const char *b64 = CK_STR(task, "workflowPayload");
        long n = b64_decode(b64, yaml, sizeof(yaml));
        if (n <= 0)
                fail_msg("workflowPayload is not standard base64: %.200s", b64);
        if (!strstr(yaml, "jobs:") || !strstr(yaml, "echo conformance-step-1") ||
            !strstr(yaml, "echo conformance-step-2"))
                fail_msg("workflowPayload is not a workflow with the job's steps:\n%s", yaml);
        sim_resp_done(&r);
}

/* §4.5: context is a JSON object (Struct) with the task token and the
 * github context; secrets always hold GITHUB_TOKEN, GITEA_TOKEN and
 * FORGEJO_TOKEN = the task token. */
static void fetch_task_context_and_secrets(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_job j;
        struct sim_resp r;

        mk_job(w, "acme", "web", "build", "[\"a\"]", &j);
        mk_runner(w, "/api/v1/admin", w->root.token, "r", false, "[\"a\"]", &rn);
        rpc(w, FETCH, &rn, NULL, "{\"tasksVersion\":\"0\"}", &r);
        CK_STATUS(&r, 200);
        json_t *task = CK_OBJ(r.json, "task");
        json_t *ctx = CK_OBJ(task, "context");
        const char *token = CK_STR(ctx, "token");
        assert_true(*token);
        assert_string_equal(CK_STR(ctx, "repository"), "acme/web");
        assert_string_equal(CK_STR(ctx, "repository_owner"), "acme");
        json_t *secrets = CK_OBJ(task, "secrets");
        assert_string_equal(CK_STR(secrets, "GITHUB_TOKEN"), token);
        assert_string_equal(CK_STR(secrets, "GITEA_TOKEN"), token);
        assert_string_equal(CK_STR(secrets, "FORGEJO_TOKEN"), token);
        sim_resp_done(&r);
}

/* §4.4/§4.3: picking a job makes it running with task_id set and the
 * runner recorded. */
static void fetch_job_becomes_running(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_job j;

        mk_job(w, "acme", "web", "build", "[\"a\"]", &j);
        mk_runner(w, "/api/v1/orgs/acme", w->alice.token, "picker", false, "[\"a\"]", &rn);
        long long task = claim(w, &rn);
        json_t *s = job_state(w, j.id);
        assert_string_equal(CK_STR(s, "status"), "running");
        assert_int_equal(CK_INT(s, "task_id"), task);
        assert_int_equal(CK_INT(s, "runner_id"), rn.id);
        assert_string_equal(CK_STR(s, "runner_name"), "picker");
        assert_true(is_rfc3339_ms_utc(CK_STR(s, "claimed_at")));
        json_decref(s);
}

/* §4.4 step 1: a second FetchTask with the same x-runner-request-key
 * returns the same task again with tasks_version 0 (absent in protojson)
 * and assigns nothing new. */
static void fetch_request_key_recovers_same_task(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_job j1, j2;
        long long t1, t_again, t2, v;
        json_t *sr = NULL;

        mk_job(w, "acme", "web", "j1", "[\"a\"]", &j1);
        mk_job(w, "acme", "web", "j2", "[\"a\"]", &j2);
        mk_runner(w, "/api/v1/admin", w->root.token, "r", false, "[\"a\"]", &rn);
        v = fetch_v(w, &rn, "key-1", "{\"tasksVersion\":\"0\"}", &t1);
        assert_true(t1 > 0);
        assert_true(v >= 1);
        v = fetch_v(w, &rn, "key-1", P("{\"tasksVersion\":\"%lld\"}", v), &t_again);
        assert_int_equal(t_again, t1);
        assert_int_equal(v, 0);
        v = fetch_v(w, &rn, "key-1", "{\"tasksVersion\":\"0\"}", &t_again);
        assert_int_equal(t_again, t1);
        assert_int_equal(v, 0);
        CK_OK(sim_find_runner(w->sim, rn.uuid, &sr));
        assert_int_equal(CK_INT(sr, "tasks"), 1);
        json_decref(sr);
        char s2[32];
        snprintf(s2, sizeof(s2), "%s", job_status(w, j2.id));
        assert_string_equal(s2, "waiting");
        /* A new key is a new poll: the next job. */
        fetch_v(w, &rn, "key-2", "{\"tasksVersion\":\"0\"}", &t2);
        assert_true(t2 > 0 && t2 != t1);
        fetch_v(w, &rn, "key-1", "{\"tasksVersion\":\"0\"}", &t_again);
        assert_int_equal(t_again, t1);
}

/* §4.4 step 1: a recovered task comes with a fresh task token (only
 * hashes are stored), in context.token and the token secrets. */
static void fetch_request_key_fresh_task_token(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_job j;
        struct sim_resp r;
        char first[256];

        mk_job(w, "acme", "web", "j", "[\"a\"]", &j);
        mk_runner(w, "/api/v1/admin", w->root.token, "r", false, "[\"a\"]", &rn);
        rpc(w, FETCH, &rn, "key", "{\"tasksVersion\":\"0\"}", &r);
        CK_STATUS(&r, 200);
        json_t *task = CK_OBJ(r.json, "task");
        long long id = CK_I64S(task, "id");
        snprintf(first, sizeof(first), "%s", CK_STR(CK_OBJ(task, "context"), "token"));
        sim_resp_done(&r);
        rpc(w, FETCH, &rn, "key", "{\"tasksVersion\":\"0\"}", &r);
        CK_STATUS(&r, 200);
        task = CK_OBJ(r.json, "task");
        assert_int_equal(CK_I64S(task, "id"), id);
        const char *again = CK_STR(CK_OBJ(task, "context"), "token");
        assert_true(*again);
        assert_string_not_equal(again, first);
        assert_string_equal(CK_STR(CK_OBJ(task, "secrets"), "GITHUB_TOKEN"), again);
        sim_resp_done(&r);
}

/* §4.4 step 1: keys are looked up among tasks of *this* runner. */
static void fetch_request_key_is_per_runner(void **state)
{
        struct world *w = *state;
        struct sim_runner a, b;
        struct sim_job j;
        long long ta, tb;

        mk_job(w, "acme", "web", "j", "[\"a\"]", &j);
        mk_runner(w, "/api/v1/admin", w->root.token, "a", false, "[\"a\"]", &a);
        mk_runner(w, "/api/v1/admin", w->root.token, "b", false, "[\"a\"]", &b);
        fetch_v(w, &a, "shared-key", "{\"tasksVersion\":\"0\"}", &ta);
        assert_true(ta > 0);
        fetch_v(w, &b, "shared-key", "{\"tasksVersion\":\"0\"}", &tb);
        assert_int_equal(tb, 0);
}

/* §4.3/§1.3 FetchSingleTask: with a handle only that job can be assigned
 * (here the newer of two matching jobs). */
static void fetch_single_task_by_handle(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_job j1, j2;
        struct sim_resp r;

        mk_job(w, "acme", "web", "j1", "[\"a\"]", &j1);
        mk_job(w, "acme", "web", "j2", "[\"a\"]", &j2);
        mk_runner(w, "/api/v1/admin", w->root.token, "r", false, "[\"a\"]", &rn);
        rpc(w, SINGLE, &rn, NULL, P("{\"tasksVersion\":\"0\",\"handle\":\"%s\"}", j2.handle), &r);
        CK_STATUS(&r, 200);
        assert_true(CK_I64S(r.json, "tasksVersion") >= 1);
        long long task = CK_I64S(CK_OBJ(r.json, "task"), "id");
        sim_resp_done(&r);
        assert_int_equal(job_task_id(w, j2.id), task);
        assert_string_equal(job_status(w, j1.id), "waiting");
}

/* §4.3 FetchSingleTask: a handle of a job the runner may not take (other
 * scope, labels not matching) or an unknown handle → no task, and no
 * other job is taken instead. */
static void fetch_single_task_foreign_handle_no_task(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_job web, tool, other_label;
        struct sim_resp r;
        const char *handles[] = { NULL, NULL, "5f0c6c52-1d7e-4c1f-8a9e-0b6d2b0f4c11" };

        mk_job(w, "acme", "web", "web", "[\"a\"]", &web);
        mk_job(w, "bob", "tool", "tool", "[\"a\"]", &tool);
        mk_job(w, "acme", "web", "other", "[\"b\"]", &other_label);
        handles[0] = tool.handle;
        handles[1] = other_label.handle;
        mk_runner(w, "/api/v1/repos/acme/web", w->alice.token, "r", false, "[\"a\"]", &rn);
        for (size_t i = 0; i < 3; i++) {
                rpc(w, SINGLE, &rn, NULL, P("{\"tasksVersion\":\"0\",\"handle\":\"%s\"}", handles[i]), &r);
                CK_STATUS(&r, 200);
                if (json_object_get(r.json, "task"))
                        fail_msg("FetchSingleTask with handle %zu gave a task: %s", i, r.body);
                sim_resp_done(&r);
        }
        assert_string_equal(job_status(w, web.id), "waiting");
        assert_string_equal(job_status(w, tool.id), "waiting");
        assert_string_equal(job_status(w, other_label.id), "waiting");
}

/* §4.3 FetchSingleTask without a handle behaves like FetchTask. */
static void fetch_single_task_without_handle(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_job j;
        struct sim_resp r;

        mk_job(w, "acme", "web", "j", "[\"a\"]", &j);
        mk_runner(w, "/api/v1/admin", w->root.token, "r", false, "[\"a\"]", &rn);
        rpc(w, SINGLE, &rn, NULL, "{\"tasksVersion\":\"0\"}", &r);
        CK_STATUS(&r, 200);
        long long task = CK_I64S(CK_OBJ(r.json, "task"), "id");
        sim_resp_done(&r);
        assert_int_equal(job_task_id(w, j.id), task);
}

/* §4.4 step 4: task_capacity > 1 returns further tasks in
 * additional_tasks. */
static void fetch_task_capacity_additional_tasks(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_job j[3];
        struct sim_resp r;

        for (int i = 0; i < 3; i++)
                mk_job(w, "acme", "web", P("j%d", i), "[\"a\"]", &j[i]);
        mk_runner(w, "/api/v1/admin", w->root.token, "r", false, "[\"a\"]", &rn);
        rpc(w, FETCH, &rn, NULL, "{\"tasksVersion\":\"0\",\"taskCapacity\":\"2\"}", &r);
        CK_STATUS(&r, 200);
        long long t1 = CK_I64S(CK_OBJ(r.json, "task"), "id");
        json_t *more = CK_ARR(r.json, "additionalTasks");
        assert_int_equal(json_array_size(more), 1);
        long long t2 = CK_I64S(json_array_get(more, 0), "id");
        assert_true(t1 > 0 && t2 > 0 && t1 != t2);
        sim_resp_done(&r);
        char s[32];
        snprintf(s, sizeof(s), "%s", job_status(w, j[2].id));
        assert_string_equal(s, "waiting");
}

/* §4.4 step 1: a request key that assigned several tasks (task_capacity)
 * recovers them all: the first in task, the rest in additional_tasks; and
 * §4.3: FetchSingleTask with such a key fails with "internal". */
static void fetch_request_key_recovers_several_tasks(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_job j[3];
        struct sim_resp r;
        long long t1, t2;

        for (int i = 0; i < 3; i++)
                mk_job(w, "acme", "web", P("j%d", i), "[\"a\"]", &j[i]);
        mk_runner(w, "/api/v1/admin", w->root.token, "r", false, "[\"a\"]", &rn);
        rpc(w, FETCH, &rn, "multi", "{\"tasksVersion\":\"0\",\"taskCapacity\":\"2\"}", &r);
        CK_STATUS(&r, 200);
        t1 = CK_I64S(CK_OBJ(r.json, "task"), "id");
        json_t *more = CK_ARR(r.json, "additionalTasks");
        assert_int_equal(json_array_size(more), 1);
        t2 = CK_I64S(json_array_get(more, 0), "id");
        sim_resp_done(&r);
        rpc(w, FETCH, &rn, "multi", "{\"tasksVersion\":\"0\",\"taskCapacity\":\"2\"}", &r);
        CK_STATUS(&r, 200);
        assert_int_equal(CK_I64S(r.json, "tasksVersion"), 0);
        long long r1 = CK_I64S(CK_OBJ(r.json, "task"), "id");
        more = CK_ARR(r.json, "additionalTasks");
        assert_int_equal(json_array_size(more), 1);
        long long r2 = CK_I64S(json_array_get(more, 0), "id");
        assert_true((r1 == t1 && r2 == t2) || (r1 == t2 && r2 == t1));
        sim_resp_done(&r);
        rpc(w, SINGLE, &rn, "multi", "{\"tasksVersion\":\"0\"}", &r);
        CK_CONNECT_ERR(&r, 500, "internal");
        sim_resp_done(&r);
        char s[32];
        snprintf(s, sizeof(s), "%s", job_status(w, j[2].id));
        assert_string_equal(s, "waiting");
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                T(ping_without_auth),
                T(rpc_missing_auth_headers_unauthenticated),
                T(rpc_bad_credentials_unauthenticated),
                T(rpc_unknown_method_404),
                T(rpc_post_only),
                T(rpc_protojson_input_variants),
                T(rpc_proto_answered_in_proto),
                T(rpc_proto_errors_are_json),
                T(rpc_proto_unknown_fields_ignored),
                T(rpc_gzip_both_ways),
                T(register_requires_token_and_name),
                T(register_unknown_token),
                T(register_returns_runner_with_token),
                /* The registration broker mode uses, on the oldest version it serves. */
                cmocka_unit_test_setup_teardown(register_returns_runner_with_token, world_setup_forgejo14,
                                                world_teardown),
                T(register_truncates_name_to_255_bytes),
                T(register_ignores_agent_labels),
                T(declare_sets_labels_and_version),
                T(fetch_version_at_least_one),
                T(fetch_equal_version_skips_scan),
                T(fetch_new_job_bumps_version),
                T(fetch_final_result_bumps_version),
                T(fetch_version_is_per_scope),
                T(fetch_picks_only_label_subset),
                T(fetch_empty_labels_never_match),
                T(fetch_scope_repo_runner),
                T(fetch_scope_org_runner),
                T(fetch_scope_user_runner),
                T(fetch_scope_global_runner),
                T(fetch_oldest_job_first),
                T(fetch_task_shape),
                T(fetch_task_context_and_secrets),
                T(fetch_job_becomes_running),
                T(fetch_request_key_recovers_same_task),
                T(fetch_request_key_fresh_task_token),
                T(fetch_request_key_is_per_runner),
                T(fetch_single_task_by_handle),
                T(fetch_single_task_foreign_handle_no_task),
                T(fetch_single_task_without_handle),
                T(fetch_task_capacity_additional_tasks),
                T(fetch_request_key_recovers_several_tasks),
        };

        return WORLD_RUN(tests, argc, argv);
}
