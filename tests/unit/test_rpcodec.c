/* test_rpcodec.c: the runner protocol's two codecs (rpcodec.h). Every
 * method's request and response round-trips through both codecs; proto
 * bodies are also checked against bytes written by hand from the field
 * numbers of forgejo-api.md §4.7, so the schema cannot drift unnoticed;
 * bad bodies, gzip bombs and content types are refused with a reason; and
 * a relay keeps unknown fields byte for byte. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forge/rpcodec.h"
#include "google/protobuf/struct.pb-c.h"
#include "runner/v1/messages.pb-c.h"
#include "util/fsutil.h"

static json_t *lit(const char *s)
{
        json_error_t e;
        json_t *j = json_loads(s, 0, &e);

        if (!j)
                fail_msg("bad literal %s: %s", s, e.text);
        return j;
}

static void assert_json_equal(const json_t *got, const json_t *want, const char *what)
{
        if (!json_equal(got, want)) {
                char *g = json_dumps(got, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
                char *w = json_dumps(want, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
                print_error("%s:\n got  %s\n want %s\n", what, g, w);
                free(g);
                free(w);
                fail();
        }
}

/* ---- the method table against services.proto ----------------------------- */

/* Every `rpc M(Req) returns (Resp);` of a services.proto must be in the
 * table with those messages, and the table must hold nothing else. */
static size_t check_services_file(const char *path)
{
        char *text = NULL, pkg[64] = "", svc[64] = "";
        size_t len, n = 0;
        char *line, *save = NULL;

        if (fs_read_file(path, 1 << 20, &text, &len) < 0)
                fail_msg("cannot read %s (PROTO_DIR)", path);
        for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char m[64], req[64], resp[64], full[64 * 3 + 4];
                const ProtobufCMessageDescriptor *dq, *dp;

                if (sscanf(line, "package %63[a-z0-9.];", pkg) == 1 ||
                    sscanf(line, "service %63[A-Za-z] {", svc) == 1)
                        continue;
                if (sscanf(line, " rpc %63[A-Za-z](%63[A-Za-z]) returns (%63[A-Za-z]);", m, req, resp) != 3)
                        continue;
                snprintf(full, sizeof(full), "%s.%s/%s", pkg, svc, m);
                dq = rpcodec_message(full, RPCODEC_REQUEST);
                dp = rpcodec_message(full, RPCODEC_RESPONSE);
                if (!dq || !dp)
                        fail_msg("%s: method %s is not in rpcodec's table", path, full);
                if (strcmp(dq->short_name, req) != 0 || strcmp(dp->short_name, resp) != 0)
                        fail_msg("%s: %s is %s -> %s in the table, %s -> %s in the file", path, full,
                                 dq->short_name, dp->short_name, req, resp);
                n++;
        }
        free(text);
        return n;
}

static void method_table_matches_services_proto(void **state)
{
        const char *dir = getenv("PROTO_DIR");
        char path[512];
        size_t n = 0, total = 0;

        assert_non_null(dir);
        snprintf(path, sizeof(path), "%s/ping/v1/services.proto", dir);
        n += check_services_file(path);
        snprintf(path, sizeof(path), "%s/runner/v1/services.proto", dir);
        n += check_services_file(path);
        while (rpcodec_method(total))
                total++;
        assert_int_equal(n, total);
        assert_int_equal(total, 8);
        assert_non_null(rpcodec_message("/runner.v1.RunnerService/FetchTask", RPCODEC_REQUEST));
        assert_null(rpcodec_message("runner.v1.RunnerService/Nope", RPCODEC_REQUEST));
        assert_null(rpcodec_message("runner.v1.RunnerService", RPCODEC_REQUEST));
        assert_null(rpcodec_message(NULL, RPCODEC_RESPONSE));
}

/* ---- round trips ------------------------------------------------------------ */

/* rproto's decode + encode: the literal must already be in the form rproto
 * writes, so what the tools send is what is tested here. */
#define CANON(T)                                                                \
        static json_t *canon_##T(const json_t *j)                               \
        {                                                                       \
                struct rp_##T m;                                                \
                char err[RP_ERR_MAX];                                           \
                json_t *o;                                                      \
                if (rp_##T##_from_json(j, &m, err, sizeof(err)) < 0)            \
                        fail_msg(#T ": rproto refuses the literal: %s", err);   \
                o = rp_##T##_to_json(&m);                                       \
                rp_##T##_done(&m);                                              \
                assert_non_null(o);                                             \
                return o;                                                       \
        }
CANON(ping_req)
CANON(ping_resp)
CANON(register_req)
CANON(register_resp)
CANON(declare_req)
CANON(declare_resp)
CANON(fetch_task_req)
CANON(fetch_task_resp)
CANON(fetch_single_task_req)
CANON(fetch_single_task_resp)
CANON(update_task_req)
CANON(update_task_resp)
CANON(update_log_req)
CANON(update_log_resp)

#define RUNNER_JSON "{\"id\":\"1\",\"uuid\":\"u-1\",\"token\":\"t\",\"name\":\"n\",\"status\":\"RUNNER_STATUS_IDLE\"," \
        "\"version\":\"v1\",\"labels\":[\"a\",\"b\"],\"ephemeral\":true}"
#define TASK_JSON "{\"id\":\"42\",\"workflowPayload\":\"bmFtZTogeAr/AA==\"," \
        "\"context\":{\"event\":{\"ref\":\"refs/heads/main\",\"n\":7,\"f\":1.5,\"big\":1e300,\"neg\":-2," \
        "\"ok\":true,\"no\":false,\"nil\":null,\"list\":[1,\"two\",[3],{\"four\":4},null],\"empty\":{}," \
        "\"none\":[],\"uni\":\"h\\u00e9 \\u2713 \\ud83d\\ude00\"},\"token\":\"t\"}," \
        "\"secrets\":{\"GITHUB_TOKEN\":\"s\",\"X\":\"\"},\"needs\":{\"build\":{\"outputs\":{\"x\":\"1\"}," \
        "\"result\":\"RESULT_SUCCESS\"},\"lint\":{}},\"vars\":{\"V\":\"1\"}}"

static const struct rt_case {
        const char *method;
        const char *req, *resp;
        json_t *(*canon_req)(const json_t *);
        json_t *(*canon_resp)(const json_t *);
} cases[] = {
        { "ping.v1.PingService/Ping", "{\"data\":\"x\"}", "{\"data\":\"Hello, x!\"}",
          canon_ping_req, canon_ping_resp },
        { "runner.v1.RunnerService/Register",
          "{\"name\":\"n\",\"token\":\"t\",\"version\":\"v\",\"labels\":[\"a\",\"b\"],\"ephemeral\":true}",
          "{\"runner\":" RUNNER_JSON "}", canon_register_req, canon_register_resp },
        { "runner.v1.RunnerService/Declare", "{\"version\":\"v1\",\"labels\":[\"a\"]}",
          "{\"runner\":" RUNNER_JSON "}", canon_declare_req, canon_declare_resp },
        { "runner.v1.RunnerService/FetchTask", "{\"tasksVersion\":\"-1\",\"taskCapacity\":\"2\"}",
          "{\"task\":" TASK_JSON ",\"tasksVersion\":\"3\",\"additionalTasks\":[{\"id\":\"43\"},{\"id\":\"44\"}]}",
          canon_fetch_task_req, canon_fetch_task_resp },
        { "runner.v1.RunnerService/FetchSingleTask", "{\"tasksVersion\":\"5\",\"handle\":\"h-1\"}",
          "{\"task\":" TASK_JSON ",\"tasksVersion\":\"9223372036854775807\"}",
          canon_fetch_single_task_req, canon_fetch_single_task_resp },
        { "runner.v1.RunnerService/UpdateTask",
          "{\"state\":{\"id\":\"42\",\"result\":\"RESULT_FAILURE\",\"startedAt\":\"2026-01-01T00:00:00Z\","
          "\"stoppedAt\":\"2026-01-01T00:00:01.500Z\",\"steps\":[{\"id\":\"1\",\"result\":\"RESULT_SUCCESS\","
          "\"startedAt\":\"1970-01-01T00:00:00.000000001Z\",\"stoppedAt\":\"9999-12-31T23:59:59.999999999Z\","
          "\"logIndex\":\"3\",\"logLength\":\"4\"},{\"id\":\"2\"}]},\"outputs\":{\"o\":\"v\",\"p\":\"\"}}",
          "{\"state\":{\"id\":\"42\",\"result\":\"RESULT_CANCELLED\"},\"sentOutputs\":[\"o\",\"p\"]}",
          canon_update_task_req, canon_update_task_resp },
        { "runner.v1.RunnerService/UpdateLog",
          "{\"taskId\":\"42\",\"index\":\"5\",\"rows\":[{\"time\":\"2026-01-01T00:00:00.123456789Z\","
          "\"content\":\"h\\u00e9llo \\u2713\"},{\"time\":\"0001-01-01T00:00:00Z\"},{}],\"noMore\":true}",
          "{\"ackIndex\":\"7\"}", canon_update_log_req, canon_update_log_resp },
        { "runner.v1.RunnerService/UpdateJobSummary", "{\"taskId\":\"4\",\"summary\":\"# ok\\n\"}", "{}",
          NULL, NULL },
};

static void round_trip(const char *method, enum rpcodec_dir dir, enum rpcodec codec,
                       const json_t *in)
{
        char err[RP_ERR_MAX], what[160];
        void *body = NULL;
        size_t len = 0;
        json_t *back = NULL;
        int r;

        snprintf(what, sizeof(what), "%s %s in %s", method, dir == RPCODEC_REQUEST ? "request" : "response",
                 rpcodec_name(codec));
        r = rpcodec_encode(method, dir, codec, in, &body, &len, err);
        if (r < 0)
                fail_msg("%s: encode: %s", what, err);
        assert_int_equal(((char *)body)[len], '\0');
        r = rpcodec_decode(method, dir, codec, body, len, &back, err);
        if (r < 0)
                fail_msg("%s: decode: %s", what, err);
        assert_json_equal(back, in, what);
        json_decref(back);
        free(body);
}

static void every_method_round_trips_in_both_codecs(void **state)
{
        size_t covered = 0;

        for (size_t i = 0; rpcodec_method(i); i++) {
                const struct rt_case *c = NULL;
                for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++)
                        if (strcmp(cases[k].method, rpcodec_method(i)) == 0)
                                c = &cases[k];
                if (!c)
                        fail_msg("no round-trip case for %s", rpcodec_method(i));
                json_t *req = lit(c->req), *resp = lit(c->resp);
                if (c->canon_req) {
                        json_t *a = c->canon_req(req), *b = c->canon_resp(resp);
                        assert_json_equal(a, req, "request literal in rproto's form");
                        assert_json_equal(b, resp, "response literal in rproto's form");
                        json_decref(a);
                        json_decref(b);
                }
                for (int codec = RPCODEC_PROTO; codec <= RPCODEC_JSON; codec++) {
                        round_trip(c->method, RPCODEC_REQUEST, codec, req);
                        round_trip(c->method, RPCODEC_RESPONSE, codec, resp);
                }
                json_decref(req);
                json_decref(resp);
                covered++;
        }
        assert_int_equal(covered, 8);
}

/* Fields rproto does not use still have their protojson form. */
static void schema_only_fields_round_trip(void **state)
{
        json_t *j = lit("{\"name\":\"n\",\"agentLabels\":[\"x\"],\"customLabels\":[\"y\"]}");
        json_t *t = lit("{\"id\":\"1\",\"machine\":\"m\",\"workflowPayload\":\"\"}");
        json_t *h = lit("{\"handle\":\"\"}");
        json_t *c = lit("{\"taskCapacity\":\"0\"}");

        round_trip("runner.v1.RunnerService/Register", RPCODEC_REQUEST, RPCODEC_PROTO, j);
        /* Explicit presence (upstream `optional`): a present empty value
         * stays present, which proto3's implicit fields cannot say. */
        round_trip("runner.v1.RunnerService/FetchSingleTask", RPCODEC_REQUEST, RPCODEC_PROTO, h);
        round_trip("runner.v1.RunnerService/FetchTask", RPCODEC_REQUEST, RPCODEC_PROTO, c);
        json_decref(j);
        json_decref(h);
        json_decref(c);
        j = lit("{\"task\":{\"id\":\"1\",\"machine\":\"m\",\"workflowPayload\":\"\"}}");
        round_trip("runner.v1.RunnerService/FetchSingleTask", RPCODEC_RESPONSE, RPCODEC_PROTO, j);
        json_decref(j);
        json_decref(t);
}

/* snake_case names and int64 as numbers are accepted, as protojson does;
 * the decoded form is the canonical one. */
static void proto_encode_accepts_protojson_input_forms(void **state)
{
        json_t *in = lit("{\"tasks_version\":5,\"task_capacity\":\"2\"}");
        json_t *want = lit("{\"tasksVersion\":\"5\",\"taskCapacity\":\"2\"}");
        char err[RP_ERR_MAX];
        void *body;
        size_t len;
        json_t *back;

        assert_int_equal(rpcodec_encode("runner.v1.RunnerService/FetchTask", RPCODEC_REQUEST, RPCODEC_PROTO,
                                        in, &body, &len, err), 0);
        assert_int_equal(rpcodec_decode("runner.v1.RunnerService/FetchTask", RPCODEC_REQUEST, RPCODEC_PROTO,
                                        body, len, &back, err), 0);
        assert_json_equal(back, want, "snake_case input");
        free(body);
        json_decref(back);
        json_decref(in);
        json_decref(want);

        /* Enums by number, and null as the default. */
        in = lit("{\"state\":{\"id\":\"1\",\"result\":2,\"startedAt\":null},\"outputs\":null}");
        want = lit("{\"state\":{\"id\":\"1\",\"result\":\"RESULT_FAILURE\"}}");
        assert_int_equal(rpcodec_encode("runner.v1.RunnerService/UpdateTask", RPCODEC_REQUEST, RPCODEC_PROTO,
                                        in, &body, &len, err), 0);
        assert_int_equal(rpcodec_decode("runner.v1.RunnerService/UpdateTask", RPCODEC_REQUEST, RPCODEC_PROTO,
                                        body, len, &back, err), 0);
        assert_json_equal(back, want, "enum number, nulls");
        free(body);
        json_decref(back);
        json_decref(in);
        json_decref(want);
}

/* ---- bytes written by hand from the field numbers ---------------------------- */

static void expect_bytes(const char *method, enum rpcodec_dir dir, const char *json,
                         const uint8_t *want, size_t want_len)
{
        json_t *j = lit(json), *back;
        char err[RP_ERR_MAX];
        void *body;
        size_t len;

        if (rpcodec_encode(method, dir, RPCODEC_PROTO, j, &body, &len, err) < 0)
                fail_msg("%s: %s", json, err);
        if (len != want_len || memcmp(body, want, len) != 0) {
                print_error("%s: %zu bytes:", json, len);
                for (size_t i = 0; i < len; i++)
                        print_error(" %02x", ((uint8_t *)body)[i]);
                print_error("\n");
                fail();
        }
        /* And the hand-written bytes decode to the same message. */
        assert_int_equal(rpcodec_decode(method, dir, RPCODEC_PROTO, want, want_len, &back, err), 0);
        assert_json_equal(back, j, json);
        json_decref(back);
        json_decref(j);
        free(body);
}

static void proto_bytes_follow_the_reference_field_numbers(void **state)
{
        static const uint8_t fetch[] = { 0x08, 0x05, 0x10, 0x02 };
        static const uint8_t ulog[] = {
                0x08, 0x07, 0x10, 0x02, 0x1a, 0x0c, 0x0a, 0x06, 0x08, 0x80, 0xf2, 0xd6, 0xca, 0x06,
                0x12, 0x02, 0x68, 0x69, 0x20, 0x01,
        };
        static const uint8_t reg[] = {
                0x0a, 0x18, 0x08, 0x01, 0x12, 0x01, 0x75, 0x1a, 0x01, 0x74, 0x22, 0x01, 0x6e, 0x28,
                0x01, 0x42, 0x01, 0x76, 0x4a, 0x01, 0x61, 0x4a, 0x01, 0x62, 0x50, 0x01,
        };
        static const uint8_t task[] = {
                0x0a, 0x0e, 0x08, 0x03, 0x1a, 0x0a, 0x0a, 0x08, 0x0a, 0x01, 0x6b, 0x12, 0x03, 0x1a,
                0x01, 0x76, 0x10, 0x09,
        };

        expect_bytes("runner.v1.RunnerService/FetchTask", RPCODEC_REQUEST,
                     "{\"tasksVersion\":\"5\",\"taskCapacity\":\"2\"}", fetch, sizeof(fetch));
        expect_bytes("runner.v1.RunnerService/UpdateLog", RPCODEC_REQUEST,
                     "{\"taskId\":\"7\",\"index\":\"2\",\"rows\":[{\"time\":\"2026-01-01T00:00:00Z\","
                     "\"content\":\"hi\"}],\"noMore\":true}", ulog, sizeof(ulog));
        expect_bytes("runner.v1.RunnerService/Register", RPCODEC_RESPONSE,
                     "{\"runner\":{\"id\":\"1\",\"uuid\":\"u\",\"token\":\"t\",\"name\":\"n\","
                     "\"status\":\"RUNNER_STATUS_IDLE\",\"version\":\"v\",\"labels\":[\"a\",\"b\"],"
                     "\"ephemeral\":true}}", reg, sizeof(reg));
        expect_bytes("runner.v1.RunnerService/FetchTask", RPCODEC_RESPONSE,
                     "{\"task\":{\"id\":\"3\",\"context\":{\"k\":\"v\"}},\"tasksVersion\":\"9\"}",
                     task, sizeof(task));
        /* All defaults: an empty body, which is a valid message. */
        expect_bytes("runner.v1.RunnerService/FetchTask", RPCODEC_REQUEST, "{}", (const uint8_t *)"", 0);
}

/* ---- refusals ----------------------------------------------------------------- */

static void expect_refused(const char *method, enum rpcodec_dir dir, const void *body, size_t len,
                           int want_r, const char *want_reason)
{
        char err[RP_ERR_MAX] = "";
        json_t *j = NULL;
        int r = rpcodec_decode(method, dir, RPCODEC_PROTO, body, len, &j, err);

        if (r != want_r || !strstr(err, want_reason))
                fail_msg("%s: got %d \"%s\", want %d with \"%s\"", method, r, err, want_r, want_reason);
        assert_null(j);
}

#define FETCH_REQ "runner.v1.RunnerService/FetchTask"

static void proto_bad_bytes_are_refused_with_a_reason(void **state)
{
        /* tasks_version (varint) sent length-delimited. */
        static const uint8_t wrong_wire[] = { 0x0a, 0x01, 0x00 };
        /* uuid (string) sent as a varint, inside the runner. */
        static const uint8_t wrong_nested[] = { 0x0a, 0x02, 0x10, 0x01 };
        static const uint8_t group[] = { 0x0b, 0x0c };
        static const uint8_t field_zero[] = { 0x00, 0x01 };
        static const uint8_t long_varint[] = { 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                               0xff, 0xff, 0x01 };
        static const uint8_t past_end[] = { 0x0a, 0x05, 0x08 };
        static const uint8_t bad_utf8[] = { 0x0a, 0x04, 0x12, 0x02, 0xc3, 0x28 };
        static const uint8_t nul[] = { 0x0a, 0x04, 0x12, 0x02, 'a', 0x00 };
        static const uint8_t surrogate[] = { 0x0a, 0x05, 0x12, 0x03, 0xed, 0xa0, 0x80 };
        static const uint8_t wire7[] = { 0x0f, 0x00 };
        static const uint8_t bad_ts[] = { 0x0a, 0x06, 0x1a, 0x04, 0x10, 0x80, 0x94, 0xeb }; /* nanos cut */
        /* A Timestamp of year 10000: protojson cannot write it. */
        static const uint8_t far_ts[] = { 0x0a, 0x09, 0x1a, 0x07, 0x08, 0x80, 0x83, 0xd1, 0xff, 0xaf, 0x07 };
        const char *reg = "runner.v1.RunnerService/Register";
        const char *ut = "runner.v1.RunnerService/UpdateTask";

        expect_refused(FETCH_REQ, RPCODEC_REQUEST, wrong_wire, sizeof(wrong_wire), -EINVAL,
                       "runner.v1.FetchTaskRequest.tasks_version: wire type 2 (length-delimited), expected 0 (varint)");
        expect_refused(reg, RPCODEC_RESPONSE, wrong_nested, sizeof(wrong_nested), -EINVAL,
                       "runner.v1.Runner.uuid: wire type 0");
        expect_refused(FETCH_REQ, RPCODEC_REQUEST, group, sizeof(group), -EINVAL, "group start");
        expect_refused(FETCH_REQ, RPCODEC_REQUEST, field_zero, sizeof(field_zero), -EINVAL, "field number 0");
        expect_refused(FETCH_REQ, RPCODEC_REQUEST, long_varint, sizeof(long_varint), -EINVAL, "varint too long");
        expect_refused(reg, RPCODEC_RESPONSE, past_end, sizeof(past_end), -EINVAL, "runner: cut short");
        expect_refused(reg, RPCODEC_RESPONSE, bad_utf8, sizeof(bad_utf8), -EINVAL, "uuid: is not UTF-8");
        expect_refused(reg, RPCODEC_RESPONSE, nul, sizeof(nul), -EINVAL, "uuid: contains a NUL byte");
        expect_refused(reg, RPCODEC_RESPONSE, surrogate, sizeof(surrogate), -EINVAL, "is not UTF-8");
        expect_refused(FETCH_REQ, RPCODEC_REQUEST, wire7, sizeof(wire7), -EINVAL, "wire type 7");
        expect_refused(ut, RPCODEC_RESPONSE, bad_ts, sizeof(bad_ts), -EINVAL, "Timestamp.nanos: cut short");
        expect_refused(ut, RPCODEC_RESPONSE, far_ts, sizeof(far_ts), -EINVAL,
                       "is not a time RFC 3339 can write");
        expect_refused("runner.v1.RunnerService/Nope", RPCODEC_REQUEST, "", 0, -ENOENT, "unknown method");
        /* A message field twice: protobuf-c 1.4 cannot merge a Task (its
         * oneof is unset in both), so it is refused with a reason rather
         * than reported as out of memory (found by fuzz_rpcodec). */
        expect_refused("runner.v1.RunnerService/FetchSingleTask", RPCODEC_RESPONSE, "\x0a\x00\x0a\x00", 4,
                       -EINVAL, "runner.v1.FetchSingleTaskResponse.task: given twice");
        expect_refused(reg, RPCODEC_RESPONSE, "\x0a\x02\x08\x01\x0a\x02\x08\x02", 8, -EINVAL,
                       "runner: given twice");
}

/* Every prefix of a valid body either is a valid body (cut between
 * fields) or is refused with a reason; none crashes. Garbage likewise. */
static void proto_truncated_and_garbage_input(void **state)
{
        json_t *in = lit("{\"task\":" TASK_JSON ",\"tasksVersion\":\"3\"}");
        char err[RP_ERR_MAX];
        void *body;
        size_t len, refused = 0;
        uint32_t seed = 12345;

        assert_int_equal(rpcodec_encode(FETCH_REQ, RPCODEC_RESPONSE, RPCODEC_PROTO, in, &body, &len, err), 0);
        for (size_t n = 0; n < len; n++) {
                json_t *j = NULL;
                err[0] = '\0';
                int r = rpcodec_decode(FETCH_REQ, RPCODEC_RESPONSE, RPCODEC_PROTO, body, n, &j, err);
                if (r < 0) {
                        assert_int_equal(r, -EINVAL);
                        assert_true(err[0]);
                        refused++;
                }
                json_decref(j);
        }
        /* The task is one field: every cut inside it is refused. */
        assert_true(refused > len / 2);
        for (int round = 0; round < 2000; round++) {
                uint8_t buf[64];
                size_t n = (size_t)(round % 64);
                json_t *j = NULL;
                for (size_t i = 0; i < n; i++) {
                        seed = seed * 1103515245u + 12345u;
                        buf[i] = (uint8_t)(seed >> 16);
                }
                int r = rpcodec_decode(FETCH_REQ, RPCODEC_RESPONSE, RPCODEC_PROTO, buf, n, &j, err);
                assert_true(r == 0 || (r == -EINVAL && err[0]));
                json_decref(j);
        }
        free(body);
        json_decref(in);
}

/* A Struct nested past RPCODEC_MAX_DEPTH is refused before protobuf-c
 * recurses into it, in both directions. */
static void nesting_is_bounded(void **state)
{
        enum { LEVELS = 200 };           /* JSON levels: 600 message levels */
        size_t cap = 64 + LEVELS * 16, o = 0;
        char *s = malloc(cap), err[RP_ERR_MAX];
        json_t *j;
        void *body;
        size_t len;

        assert_non_null(s);
        o += (size_t)snprintf(s + o, cap - o, "{\"task\":{\"id\":\"1\",\"context\":");
        for (int i = 0; i < LEVELS; i++)
                o += (size_t)snprintf(s + o, cap - o, "{\"a\":");
        o += (size_t)snprintf(s + o, cap - o, "1");
        for (int i = 0; i < LEVELS; i++)
                o += (size_t)snprintf(s + o, cap - o, "}");
        snprintf(s + o, cap - o, "}}");
        j = lit(s);
        assert_int_equal(rpcodec_encode(FETCH_REQ, RPCODEC_RESPONSE, RPCODEC_PROTO, j, &body, &len, err),
                         -EINVAL);
        assert_non_null(strstr(err, "nested deeper than"));
        json_decref(j);

        /* The same depth as bytes, built with protobuf-c (which packs
         * without limits): Value{struct_value: Struct{fields: {"a": ...}}}. */
        Google__Protobuf__Value leaf, *vals = calloc(LEVELS, sizeof(*vals));
        Google__Protobuf__Struct *structs = calloc(LEVELS, sizeof(*structs));
        Google__Protobuf__Struct__FieldsEntry *entries = calloc(LEVELS, sizeof(*entries));
        Google__Protobuf__Struct__FieldsEntry **eptr = calloc(LEVELS, sizeof(*eptr));
        Google__Protobuf__Value *cur = &leaf;
        Runner__V1__Task task;
        Runner__V1__FetchTaskResponse resp;
        uint8_t *bytes;

        assert_true(vals && structs && entries && eptr);
        google__protobuf__value__init(&leaf);
        leaf.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
        leaf.number_value = 1;
        for (int i = 0; i < LEVELS; i++) {
                google__protobuf__struct__fields_entry__init(&entries[i]);
                entries[i].key = (char *)"a";
                entries[i].value = cur;
                eptr[i] = &entries[i];
                google__protobuf__struct__init(&structs[i]);
                structs[i].n_fields = 1;
                structs[i].fields = &eptr[i];
                google__protobuf__value__init(&vals[i]);
                vals[i].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE;
                vals[i].struct_value = &structs[i];
                cur = &vals[i];
        }
        runner__v1__task__init(&task);
        task.id = 1;
        task.context = &structs[LEVELS - 1];
        runner__v1__fetch_task_response__init(&resp);
        resp.task = &task;
        len = protobuf_c_message_get_packed_size(&resp.base);
        bytes = malloc(len);
        assert_non_null(bytes);
        assert_int_equal(protobuf_c_message_pack(&resp.base, bytes), len);
        expect_refused(FETCH_REQ, RPCODEC_RESPONSE, bytes, len, -EINVAL, "nested deeper than");
        free(bytes);
        free(vals);
        free(structs);
        free(entries);
        free(eptr);
        free(s);
}

static void json_values_the_schema_lacks_are_refused(void **state)
{
        static const struct {
                const char *method, *json, *reason;
        } bad[] = {
                { FETCH_REQ, "{\"tasksVersion\":\"5\",\"bogus\":1}", "unknown field \"bogus\"" },
                { FETCH_REQ, "{\"tasksVersion\":true}", "tasks_version: expected an int64" },
                { FETCH_REQ, "{\"tasksVersion\":\"99999999999999999999\"}", "expected an int64" },
                { FETCH_REQ, "{\"tasksVersion\":\"1\",\"tasks_version\":\"2\"}", "given twice" },
                { "runner.v1.RunnerService/UpdateTask", "{\"state\":{\"result\":\"RESULT_BOGUS\"}}",
                  "unknown enum value \"RESULT_BOGUS\"" },
                { "runner.v1.RunnerService/UpdateTask", "{\"state\":{\"startedAt\":\"yesterday\"}}",
                  "expected an RFC 3339 timestamp" },
                { "runner.v1.RunnerService/UpdateTask", "{\"state\":[]}", "expected a JSON object" },
                { "runner.v1.RunnerService/UpdateTask", "{\"outputs\":{\"a\":1}}", "expected a string" },
                { "runner.v1.RunnerService/UpdateTask", "{\"outputs\":{\"a\":null}}", "null map value" },
                { "runner.v1.RunnerService/Declare", "{\"labels\":\"a\"}", "expected an array" },
                { "runner.v1.RunnerService/Declare", "{\"labels\":[null]}", "null element" },
                { "runner.v1.RunnerService/Declare", "{\"version\":\"a\\u0000b\"}", "contains a NUL" },
        };
        char err[RP_ERR_MAX];
        void *body = NULL;
        size_t len;

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                json_t *j = json_loads(bad[i].json, JSON_ALLOW_NUL, NULL);
                assert_non_null(j);
                int r = rpcodec_encode(bad[i].method, RPCODEC_REQUEST, RPCODEC_PROTO, j, &body, &len, err);
                if (r != -EINVAL || !strstr(err, bad[i].reason))
                        fail_msg("%s: got %d \"%s\", want \"%s\"", bad[i].json, r, err, bad[i].reason);
                json_decref(j);
        }
        /* The JSON codec only parses: rproto checks fields. */
        assert_int_equal(rpcodec_decode(FETCH_REQ, RPCODEC_REQUEST, RPCODEC_JSON, "", 0, &(json_t *){ NULL }, err),
                         -EINVAL);
        assert_non_null(strstr(err, "zero-length"));
        assert_int_equal(rpcodec_decode(FETCH_REQ, RPCODEC_REQUEST, RPCODEC_JSON, "[1]", 3, &(json_t *){ NULL }, err),
                         -EINVAL);
        assert_int_equal(rpcodec_decode(FETCH_REQ, RPCODEC_REQUEST, RPCODEC_JSON, "{\"a\":1,\"a\":2}", 13,
                                        &(json_t *){ NULL }, err), -EINVAL);
}

/* protojson's mapping of Struct numbers and of non-finite numbers. */
static void struct_numbers_follow_protojson(void **state)
{
        /* Value{number_value: NaN} inside a task context. */
        static const uint8_t nan_ctx[] = {
                0x0a, 0x12, 0x1a, 0x10, 0x0a, 0x0e, 0x0a, 0x01, 'k', 0x12, 0x09, 0x11,
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf8, 0x7f,
        };
        /* Value with no kind. */
        static const uint8_t no_kind[] = { 0x0a, 0x09, 0x1a, 0x07, 0x0a, 0x05, 0x0a, 0x01, 'k', 0x12, 0x00 };

        expect_refused(FETCH_REQ, RPCODEC_RESPONSE, nan_ctx, sizeof(nan_ctx), -EINVAL, "NaN");
        expect_refused(FETCH_REQ, RPCODEC_RESPONSE, no_kind, sizeof(no_kind), -EINVAL, "without a kind");
}

/* ---- relay: unknown fields survive unpack → change → pack ------------------ */

static void relay_keeps_unknown_fields_byte_for_byte(void **state)
{
        /* tasks_version 5, then field 99 (bytes "hello") and field 100
         * (varint 300): numbers the schema does not have. */
        static const uint8_t unknown[] = { 0x9a, 0x06, 0x05, 'h', 'e', 'l', 'l', 'o', 0xa0, 0x06, 0xac, 0x02 };
        uint8_t in[2 + sizeof(unknown)] = { 0x08, 0x05 };
        ProtobufCMessage *m = NULL;
        Runner__V1__FetchTaskRequest *req;
        char err[RP_ERR_MAX];
        void *out;
        size_t len;

        memcpy(in + 2, unknown, sizeof(unknown));
        assert_int_equal(rpcodec_unpack(FETCH_REQ, RPCODEC_REQUEST, in, sizeof(in), &m, err), 0);
        req = (Runner__V1__FetchTaskRequest *)m;
        assert_int_equal(req->tasks_version, 5);
        req->tasks_version = 7;
        assert_int_equal(rpcodec_pack(m, &out, &len), 0);
        assert_int_equal(len, 2 + sizeof(unknown));
        assert_int_equal(((uint8_t *)out)[0], 0x08);
        assert_int_equal(((uint8_t *)out)[1], 0x07);
        assert_memory_equal((uint8_t *)out + 2, unknown, sizeof(unknown));
        free(out);
        rpcodec_free(m);

        /* Nested: an unknown field inside the task of a FetchTaskResponse
         * survives a change of tasks_version around it. */
        static const uint8_t resp[] = {
                0x0a, 0x07, 0x08, 0x03, 0xfa, 0x3e, 0x02, 'x', 'y', /* task {id 3, field 1007 "xy"} */
                0x10, 0x09,                                         /* tasks_version 9 */
        };
        static const uint8_t want[] = {
                0x0a, 0x07, 0x08, 0x03, 0xfa, 0x3e, 0x02, 'x', 'y', 0x10, 0x0a,
        };
        assert_int_equal(rpcodec_unpack(FETCH_REQ, RPCODEC_RESPONSE, resp, sizeof(resp), &m, err), 0);
        ((Runner__V1__FetchTaskResponse *)m)->tasks_version = 10;
        assert_int_equal(rpcodec_pack(m, &out, &len), 0);
        assert_int_equal(len, sizeof(want));
        assert_memory_equal(out, want, sizeof(want));
        free(out);
        rpcodec_free(m);

        /* The same bytes through JSON drop the unknown field, as protojson. */
        json_t *j;
        assert_int_equal(rpcodec_decode(FETCH_REQ, RPCODEC_REQUEST, RPCODEC_PROTO, in, sizeof(in), &j, err), 0);
        json_t *w = lit("{\"tasksVersion\":\"5\"}");
        assert_json_equal(j, w, "unknown fields in JSON");
        json_decref(j);
        json_decref(w);

        /* Unpack checks what decode checks. */
        assert_int_equal(rpcodec_unpack(FETCH_REQ, RPCODEC_REQUEST, "\x0a\x01", 2, &m, err), -EINVAL);
        assert_true(err[0]);
}

/* ---- gzip ---------------------------------------------------------------- */

static void gzip_round_trip_and_bounds(void **state)
{
        char err[RP_ERR_MAX];
        const char *text = "hello hello hello hello";
        void *z, *z2, *out;
        size_t zn, zn2, n;

        assert_int_equal(rpcodec_gzip(text, strlen(text), &z, &zn), 0);
        assert_int_equal(rpcodec_gunzip(z, zn, 1000, &out, &n, err), 0);
        assert_int_equal(n, strlen(text));
        assert_memory_equal(out, text, n);
        assert_int_equal(((char *)out)[n], '\0');
        free(out);
        /* Exactly the limit fits; one byte less is refused. */
        assert_int_equal(rpcodec_gunzip(z, zn, strlen(text), &out, &n, err), 0);
        free(out);
        assert_int_equal(rpcodec_gunzip(z, zn, strlen(text) - 1, &out, &n, err), -EMSGSIZE);
        assert_non_null(strstr(err, "inflates to more than"));
        /* Cut short, and not gzip at all. */
        assert_int_equal(rpcodec_gunzip(z, zn - 4, 1000, &out, &n, err), -EINVAL);
        assert_non_null(strstr(err, "cut short"));
        assert_int_equal(rpcodec_gunzip(text, strlen(text), 1000, &out, &n, err), -EINVAL);
        assert_int_equal(rpcodec_gunzip("", 0, 1000, &out, &n, err), -EINVAL);
        /* Two members, as RFC 1952 allows; trailing garbage is refused. */
        assert_int_equal(rpcodec_gzip("abc", 3, &z2, &zn2), 0);
        uint8_t *two = malloc(zn + zn2 + 3);
        assert_non_null(two);
        memcpy(two, z, zn);
        memcpy(two + zn, z2, zn2);
        assert_int_equal(rpcodec_gunzip(two, zn + zn2, 1000, &out, &n, err), 0);
        assert_int_equal(n, strlen(text) + 3);
        assert_memory_equal((char *)out + strlen(text), "abc", 3);
        free(out);
        memcpy(two + zn, "xyz", 3);
        assert_int_equal(rpcodec_gunzip(two, zn + 3, 1000, &out, &n, err), -EINVAL);
        free(two);
        free(z);
        free(z2);
}

/* 64 MiB of zeros gzip to about 64 KiB: inflating stops at the limit. */
static void gzip_bomb_is_refused(void **state)
{
        size_t big = 64u << 20;
        char *zeros = calloc(1, big), err[RP_ERR_MAX];
        void *z, *out = NULL;
        size_t zn, n = 0;

        assert_non_null(zeros);
        assert_int_equal(rpcodec_gzip(zeros, big, &z, &zn), 0);
        free(zeros);
        assert_true(zn < big / 500);
        assert_int_equal(rpcodec_gunzip(z, zn, RPCODEC_MAX_MESSAGE, &out, &n, err), -EMSGSIZE);
        assert_null(out);
        assert_non_null(strstr(err, "inflates to more than 8388608 bytes"));
        free(z);
}

/* ---- negotiation ----------------------------------------------------------- */

static void content_types(void **state)
{
        static const struct {
                const char *ct;
                int r;
                enum rpcodec codec;
        } cases_ct[] = {
                { "application/proto", 0, RPCODEC_PROTO },
                { "Application/Proto", 0, RPCODEC_PROTO },
                { "application/proto; charset=binary", 0, RPCODEC_PROTO },
                { "application/json", 0, RPCODEC_JSON },
                { "application/json;charset=utf-8", 0, RPCODEC_JSON },
                { "application/json; charset=\"UTF-8\"", 0, RPCODEC_JSON },
                { " application/json ; foo=bar", 0, RPCODEC_JSON },
                { "application/json; charset=latin1", -EINVAL, 0 },
                { "application/grpc", -EINVAL, 0 },
                { "application/connect+proto", -EINVAL, 0 },
                { "application/protobuf", -EINVAL, 0 },
                { "text/plain", -EINVAL, 0 },
                { "application/jsonx", -EINVAL, 0 },
                { "", -EINVAL, 0 },
                { NULL, -EINVAL, 0 },
        };
        char err[RP_ERR_MAX];

        for (size_t i = 0; i < sizeof(cases_ct) / sizeof(cases_ct[0]); i++) {
                enum rpcodec c = 99;
                err[0] = '\0';
                int r = rpcodec_from_content_type(cases_ct[i].ct, &c, err);
                if (r != cases_ct[i].r)
                        fail_msg("\"%s\": %d, want %d (%s)", cases_ct[i].ct ? cases_ct[i].ct : "(null)", r,
                                 cases_ct[i].r, err);
                if (r == 0)
                        assert_int_equal(c, cases_ct[i].codec);
                else
                        assert_true(err[0]);
        }
        /* The reason quotes the value, made printable. */
        rpcodec_from_content_type("text/\x1b[31mred", &(enum rpcodec){ 0 }, err);
        assert_non_null(strstr(err, "text/?[31mred"));
        assert_non_null(strstr(err, "use application/proto or application/json"));
        assert_string_equal(rpcodec_content_type(RPCODEC_PROTO), "application/proto");
        assert_string_equal(rpcodec_content_type(RPCODEC_JSON), "application/json");
}

static void encodings(void **state)
{
        char err[RP_ERR_MAX];
        bool gz = true;
        enum rpcodec c;

        assert_int_equal(rpcodec_parse_encoding(NULL, &gz, err), 0);
        assert_false(gz);
        assert_int_equal(rpcodec_parse_encoding("identity", &gz, err), 0);
        assert_false(gz);
        assert_int_equal(rpcodec_parse_encoding(" GZIP ", &gz, err), 0);
        assert_true(gz);
        assert_int_equal(rpcodec_parse_encoding("br", &gz, err), -EINVAL);
        assert_non_null(strstr(err, "\"br\" is not supported"));
        assert_int_equal(rpcodec_parse_encoding("gzip, gzip", &gz, err), -EINVAL);

        assert_true(rpcodec_accepts_gzip("gzip"));
        assert_true(rpcodec_accepts_gzip("identity, gzip"));
        assert_true(rpcodec_accepts_gzip("br;q=1.0, GZip;q=0.5"));
        assert_true(rpcodec_accepts_gzip("*"));
        assert_false(rpcodec_accepts_gzip("gzip;q=0"));
        assert_false(rpcodec_accepts_gzip("gzip; q=0.000"));
        assert_false(rpcodec_accepts_gzip("identity"));
        assert_false(rpcodec_accepts_gzip("gzipx"));
        assert_false(rpcodec_accepts_gzip(""));
        assert_false(rpcodec_accepts_gzip(NULL));

        assert_int_equal(rpcodec_parse_name("proto", &c), 0);
        assert_int_equal(c, RPCODEC_PROTO);
        assert_int_equal(rpcodec_parse_name("json", &c), 0);
        assert_int_equal(c, RPCODEC_JSON);
        assert_int_equal(rpcodec_parse_name("xml", &c), -EINVAL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(method_table_matches_services_proto),
                cmocka_unit_test(every_method_round_trips_in_both_codecs),
                cmocka_unit_test(schema_only_fields_round_trip),
                cmocka_unit_test(proto_encode_accepts_protojson_input_forms),
                cmocka_unit_test(proto_bytes_follow_the_reference_field_numbers),
                cmocka_unit_test(proto_bad_bytes_are_refused_with_a_reason),
                cmocka_unit_test(proto_truncated_and_garbage_input),
                cmocka_unit_test(nesting_is_bounded),
                cmocka_unit_test(json_values_the_schema_lacks_are_refused),
                cmocka_unit_test(struct_numbers_follow_protojson),
                cmocka_unit_test(relay_keeps_unknown_fields_byte_for_byte),
                cmocka_unit_test(gzip_round_trip_and_bounds),
                cmocka_unit_test(gzip_bomb_is_refused),
                cmocka_unit_test(content_types),
                cmocka_unit_test(encodings),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
