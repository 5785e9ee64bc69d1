/* broker_faults.c: broker mode's failure scenarios end to end — the real
 * daemon, forgejo-sim with injected faults and cancellations, workers that
 * boot slowly or never connect, and calls made straight to the worker
 * endpoint with bad credentials and bad bodies. Each scenario is one meson
 * test (the name is argv[1]) and ends with the job in its right final
 * state, a row in its log saying why, no worker left, and one runner per
 * broker pool on the forge. Never talks to anything but 127.0.0.1. */
#include "fixture.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "forge/rpcodec.h"
#include "util/fsutil.h"
#include "util/httpc.h"

/* ---- helpers -------------------------------------------------------------- */

static void write_broker_config(struct fx *fx, const char *forge_timeout, const char *broker_extra,
                                const char *pools)
{
        write_config_broker(fx, forge_timeout, broker_extra, pools, 0);
}

/* One broker pool "linux" (labels [lx]) with extra lines appended. */
static void write_pool(struct fx *fx, const char *broker_extra, const char *pool_extra)
{
        char pools[2048];

        snprintf(pools, sizeof(pools),
                 "  linux:\n"
                 "    mode: broker\n"
                 "    forge: sim\n"
                 "    scope: org/acme\n"
                 "    labels: [lx]\n"
                 "    provider: here\n"
                 "    poll_interval: 1s\n"
                 "%s",
                 pool_extra ? pool_extra : "    max_runners: 2\n");
        write_broker_config(fx, "5s", broker_extra, pools);
}

static json_t *job(struct fx *fx, long long id)
{
        return job_json(fx, id);
}

static const char *job_status(json_t *j)
{
        const char *s = json_string_value(json_object_get(j, "status"));
        return s ? s : "?";
}

static char *job_log_text(struct fx *fx, long long id)
{
        json_t *j = job(fx, id);
        char *dump = json_dumps(json_object_get(j, "log"), JSON_COMPACT);
        json_decref(j);
        assert_non_null(dump);
        return dump;
}

static long long make_job(struct fx *fx, const char *name, const char *steps)
{
        struct sim_job j;
        assert_int_equal(sim_create_job(fx->sim, "acme", "app", name, "[\"lx\"]", steps, &j), 0);
        return j.id;
}

/* Waits until the job's log holds needle; fails after timeout_s. */
static void wait_job_log(struct fx *fx, long long id, const char *needle, double timeout_s)
{
        double t0 = now_s();

        for (;;) {
                char *dump = job_log_text(fx, id);
                bool found = strstr(dump, needle) != NULL;
                if (!found && now_s() - t0 > timeout_s)
                        fail_msg("job %lld: \"%s\" not in its log within %.0f s: %s", id, needle, timeout_s, dump);
                free(dump);
                if (found)
                        return;
                usleep(50000);
        }
}

static int count_of(const char *hay, const char *needle)
{
        int n = 0;

        for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
                n++;
        return n;
}

/* The daemon's log of start number `start` (caller frees). */
static char *daemon_log(struct fx *fx, int start)
{
        char path[PATH_MAX], *text = NULL;

        snprintf(path, sizeof(path), "%s/forgescale.%d.log", fx->dir, start);
        assert_int_equal(fs_read_file(path, 1 << 26, &text, NULL), 0);
        return text;
}

/* Every scenario's end: no worker, a clean stop on SIGTERM (under ASan a
 * leak makes the exit status non-zero), no sanitizer report in any daemon
 * log (UBSan may print "runtime error:" and go on), one runner for the one
 * broker pool. */
static void check_end(struct fx *fx)
{
        for (int i = 0; i < 100 && count_workers(fx, false) > 0; i++)
                usleep(100000);
        assert_int_equal(count_workers(fx, false), 0);
        fs_kill(fx, SIGTERM);
        for (int s = 1; s <= fx->starts; s++) {
                char *text = daemon_log(fx, s);
                const char *p = strstr(text, "runtime error:");
                if (!p)
                        p = strstr(text, "ERROR: AddressSanitizer");
                if (p)
                        fail_msg("forgescale.%d.log: %.300s", s, p);
                free(text);
        }
        assert_int_equal(runners_named(fx, "fsb-", false), 1);
        assert_int_equal(runners_named(fx, "fs-", false), 0);
}

/* The worker endpoint's port, from "worker endpoint listening ... port=N". */
static int broker_port(struct fx *fx)
{
        char *text = wait_log(fx, fx->starts, "msg=\"worker endpoint listening\"", 10);
        const char *p = strstr(text, "msg=\"worker endpoint listening\"");
        const char *eol = strchr(p, '\n');
        const char *q = strstr(p, " port=");

        assert_non_null(q);
        assert_true(!eol || q < eol);
        int port = (int)strtol(q + 6, NULL, 10);
        free(text);
        assert_true(port > 0 && port < 65536);
        return port;
}

/* A worker's minted credentials, from state_dir/broker/workers/<instance>. */
struct wcred {
        char instance[256];
        char uuid[64];
        char token[96];
        long long task;
};

/* Up to max credentials files present now. */
static int read_workers(struct fx *fx, struct wcred *out, int max)
{
        char dir[PATH_MAX + 32];
        DIR *d;
        struct dirent *de;
        int n = 0;

        snprintf(dir, sizeof(dir), "%s/broker/workers", fx->state);
        if (!(d = opendir(dir)))
                return 0;
        while ((de = readdir(d)) && n < max) {
                char path[PATH_MAX + 320], *text = NULL;
                if (de->d_name[0] == '.')
                        continue;
                snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
                if (fs_read_file(path, 4096, &text, NULL) < 0)
                        continue;
                struct wcred *w = &out[n];
                if (sscanf(text, "%63s %95s %lld", w->uuid, w->token, &w->task) == 3) {
                        snprintf(w->instance, sizeof(w->instance), "%s", de->d_name);
                        n++;
                }
                free(text);
        }
        closedir(d);
        return n;
}

static long long job_task(struct fx *fx, long long id)
{
        json_t *j = job(fx, id);
        long long t = json_integer_value(json_object_get(j, "task_id"));
        json_decref(j);
        return t;
}

/* A worker's credentials for the task of job id (waits for them). */
static struct wcred worker_of(struct fx *fx, long long id)
{
        struct wcred ws[8];
        double t0 = now_s();

        while (now_s() - t0 < 20) {
                long long task = job_task(fx, id);
                int n = read_workers(fx, ws, 8);
                for (int i = 0; task && i < n; i++)
                        if (ws[i].task == task)
                                return ws[i];
                usleep(50000);
        }
        fail_msg("no worker credentials for job %lld", id);
        return ws[0];
}

/* One call to the worker endpoint. body/len as sent; ctype NULL: JSON. */
struct ecall {
        long status;
        char code[64];          /* the Connect error code, "" for a 200 */
        json_t *json;           /* the JSON answer (errors, JSON codec), or NULL */
        char *body;
        size_t len;
};

static void ecall_done(struct ecall *c)
{
        json_decref(c->json);
        free(c->body);
}

static struct ecall endpoint_call(int port, const char *method, const struct wcred *w, const char *token,
                                  const char *ctype, const char *encoding, const void *body, size_t len)
{
        char url[256], h_ct[128], h_uuid[128], h_tok[160], h_ce[64];
        const char *headers[8];
        int nh = 0;
        struct httpc *h = httpc_new();
        struct httpc_resp r;
        struct ecall out = { 0 };

        assert_non_null(h);
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/actions/%s", port, method);
        snprintf(h_ct, sizeof(h_ct), "Content-Type: %s", ctype ? ctype : "application/json");
        headers[nh++] = h_ct;
        headers[nh++] = "Connect-Protocol-Version: 1";
        if (w) {
                snprintf(h_uuid, sizeof(h_uuid), "x-runner-uuid: %s", w->uuid);
                snprintf(h_tok, sizeof(h_tok), "x-runner-token: %s", token ? token : w->token);
                headers[nh++] = h_uuid;
                headers[nh++] = h_tok;
        }
        if (encoding) {
                snprintf(h_ce, sizeof(h_ce), "Content-Encoding: %s", encoding);
                headers[nh++] = h_ce;
        }
        headers[nh] = NULL;
        struct httpc_req req = { .method = "POST", .url = url, .headers = headers, .body = body,
                                 .body_len = len, .timeout_ms = 20000 };
        int rc = httpc_do(h, &req, &r);
        if (rc < 0)
                fail_msg("%s: no answer from the worker endpoint (%d: %s)", method, rc, r.errbuf);
        out.status = r.status;
        out.json = json_loadb(r.body, r.len, 0, NULL);
        if (out.status != 200 && json_is_string(json_object_get(out.json, "code")))
                snprintf(out.code, sizeof(out.code), "%s", json_string_value(json_object_get(out.json, "code")));
        out.body = malloc(r.len + 1);
        assert_non_null(out.body);
        memcpy(out.body, r.body, r.len + 1);
        out.len = r.len;
        httpc_resp_done(&r);
        httpc_free(h);
        return out;
}

static struct ecall json_call(int port, const char *method, const struct wcred *w, const char *json)
{
        return endpoint_call(port, method, w, NULL, NULL, NULL, json, strlen(json));
}

/* The same message in binary protobuf (the relay's raw path); a 200
 * answer is decoded back to protojson in ->json. */
static struct ecall proto_call(int port, const char *method, const struct wcred *w, const char *json)
{
        char full[128], err[RP_ERR_MAX] = "";
        json_t *msg = json_loads(json, 0, NULL);
        void *body = NULL;
        size_t len = 0;

        snprintf(full, sizeof(full), "runner.v1.RunnerService/%s", method);
        assert_non_null(msg);
        if (rpcodec_encode(full, RPCODEC_REQUEST, RPCODEC_PROTO, msg, &body, &len, err) < 0)
                fail_msg("cannot encode %s: %s", json, err);
        json_decref(msg);
        char path[160];
        snprintf(path, sizeof(path), "runner.v1.RunnerService/%s", method);
        struct ecall c = endpoint_call(port, path, w, NULL, "application/proto", NULL, body, len);
        free(body);
        if (c.status == 200) {
                json_t *resp = NULL;
                if (rpcodec_decode(full, RPCODEC_RESPONSE, RPCODEC_PROTO, c.body, c.len, &resp, err) < 0)
                        fail_msg("%s: the answer does not decode: %s", method, err);
                json_decref(c.json);
                c.json = resp;
        }
        return c;
}

static void expect_code(struct ecall *c, const char *what, const char *code)
{
        if (strcmp(c->code, code) != 0)
                fail_msg("%s: want %s, got HTTP %ld %s", what, code, c->status, c->body ? c->body : "");
}

static long long j_i64(const json_t *o, const char *k)
{
        const json_t *v = json_object_get(o, k);

        if (json_is_integer(v))
                return json_integer_value(v);
        return json_is_string(v) ? strtoll(json_string_value(v), NULL, 10) : 0;
}

/* Rows of a job's log: how many forgescale rows lead it, and that none
 * follows a worker's row. */
static size_t prelude_rows(struct fx *fx, long long id)
{
        json_t *j = job(fx, id), *row;
        size_t i, prelude = 0;
        bool after = false;

        json_array_foreach(json_object_get(j, "log"), i, row) {
                const char *s = json_string_value(row);
                assert_non_null(s);
                if (strncmp(s, "forgescale: ", 12) == 0) {
                        if (after)
                                fail_msg("job %lld: a forgescale row after the worker's rows: %s", id, s);
                        prelude++;
                } else {
                        after = true;
                }
        }
        json_decref(j);
        return prelude;
}

static size_t log_rows(struct fx *fx, long long id)
{
        json_t *j = job(fx, id);
        size_t n = json_array_size(json_object_get(j, "log"));
        json_decref(j);
        return n;
}

/* ---- 1. cancelled while its worker boots ----------------------------------- */

/* The job is cancelled on the forge while its worker sleeps before it
 * even starts the runner. The broker hears it in the answer to the held
 * task's UpdateTask, the booting worker is stopped long before it would
 * connect, and the job's log says why. */
static void broker_cancel_while_booting(void **state)
{
        struct fx *fx = *state;

        write_pool(fx, NULL,
                   "    max_runners: 2\n"
                   "    runner: {command: [sh, -c, 'sleep 20; exec \"$0\" \"$@\"', forgejo-runner]}\n");
        fs_start(fx);
        long long id = make_job(fx, "slow-boot", "[\"echo never-runs\"]");
        wait_job_log(fx, id, "starting worker", 15);
        for (int i = 0; i < 100 && count_workers(fx, false) < 1; i++)
                usleep(50000);
        assert_int_equal(count_workers(fx, false), 1);
        double t0 = now_s();
        assert_int_equal(sim_cancel_job(fx->sim, id), 0);
        /* Well before the worker's 20 s sleep ends. */
        while (count_workers(fx, false) > 0 && now_s() - t0 < 10)
                usleep(100000);
        if (count_workers(fx, false) > 0)
                fail_msg("the booting worker of a cancelled job still runs %.1f s after the cancel", now_s() - t0);
        wait_drained(fx, 1, 20);
        json_t *j = job(fx, id);
        assert_string_equal(job_status(j), "cancelled");
        json_decref(j);
        wait_job_log(fx, id, "before a worker connected", 10);
        char *dump = job_log_text(fx, id);
        assert_null(strstr(dump, "never-runs"));
        free(dump);
        char *text = daemon_log(fx, 1);
        assert_non_null(strstr(text, "msg=\"task ended on the forge\""));
        assert_non_null(strstr(text, "result=RESULT_CANCELLED"));
        assert_non_null(strstr(text, "reason=job_gone"));
        assert_null(strstr(text, "worker took its task"));
        free(text);
        check_end(fx);
}

/* ---- 2. a worker that never connects within bootstrap_timeout -------------- */

/* The worker lives but never connects: stopped at bootstrap_timeout, a
 * fresh one is tried, then the task is reported failed. While it boots,
 * its credentials cannot report on the task it has not taken. */
static void broker_bootstrap_timeout(void **state)
{
        struct fx *fx = *state;

        write_pool(fx, "  worker_retries: 1\n",
                   "    max_runners: 2\n"
                   "    bootstrap_timeout: 2s\n"
                   "    runner: {command: [sh, -c, 'while :; do sleep 1; done', forgejo-runner]}\n");
        fs_start(fx);
        int port = broker_port(fx);
        long long id = make_job(fx, "no-connect", NULL);
        wait_job_log(fx, id, "starting worker", 10);
        for (int k = 0; k < 2; k++) {
                struct ecall c = { 0 };
                /* A booting worker's credentials live for bootstrap_timeout;
                 * under load they may be revoked between reading and use:
                 * then the next worker's are used. */
                for (int tries = 0; tries < 3; tries++) {
                        struct wcred w = worker_of(fx, id);
                        char body[512];
                        if (k == 0) {
                                snprintf(body, sizeof(body),
                                         "{\"taskId\":\"%lld\",\"index\":\"0\",\"rows\":[{\"content\":\"EARLY-ROW\"}]}",
                                         w.task);
                                c = json_call(port, "runner.v1.RunnerService/UpdateLog", &w, body);
                        } else {
                                snprintf(body, sizeof(body),
                                         "{\"state\":{\"id\":\"%lld\",\"result\":\"RESULT_SUCCESS\"}}", w.task);
                                c = proto_call(port, "UpdateTask", &w, body);
                        }
                        if (strcmp(c.code, "unauthenticated") != 0)
                                break;
                        ecall_done(&c);
                        c = (struct ecall){ 0 };
                        usleep(200000);
                }
                expect_code(&c, k == 0 ? "UpdateLog before FetchTask" : "UpdateTask before FetchTask",
                            "failed_precondition");
                ecall_done(&c);
        }
        json_t *j = job(fx, id);
        assert_string_not_equal(job_status(j), "success");
        json_decref(j);

        wait_drained(fx, 1, 30);
        j = job(fx, id);
        assert_string_equal(job_status(j), "failure");
        json_decref(j);
        char *dump = job_log_text(fx, id);
        if (!strstr(dump, "did not connect (bootstrap_timeout") || !strstr(dump, "no worker connected (2 started") ||
            strstr(dump, "EARLY-ROW"))
                fail_msg("log: %s", dump);
        free(dump);
        char *text = daemon_log(fx, 1);
        assert_int_equal(count_of(text, "msg=stopping"), 2);
        assert_int_equal(count_of(text, "reason=bootstrap_timeout\n"), 2);
        assert_int_equal(count_of(text, "code=failed_precondition"), 2);
        free(text);
        check_end(fx);
}

/* ---- 3. the forge unreachable mid-task -------------------------------------- */

/* While a worker writes many rows the forge answers 503, then resets
 * connections. The worker is never acked a row the forge did not take:
 * every row ends up in the log once, in order, after forgescale's rows.
 * Nothing is stopped and the pool's demand never drops. */
static void broker_forge_outage_mid_task(void **state)
{
        struct fx *fx = *state;
        static const char *const faults[] = {
                "{\"path_prefix\":\"/api/actions/\",\"mode\":\"status\",\"status\":503}",
                "{\"path_prefix\":\"/api/actions/\",\"mode\":\"reset\"}",
                /* The forge takes the rows, its answer is lost: the
                 * worker, not acked, sends them again. */
                "{\"path_prefix\":\"/api/actions/runner.v1.RunnerService/UpdateLog\",\"mode\":\"reset\","
                "\"after\":true}",
        };
        char line[32];

        write_pool(fx, NULL, NULL);
        fs_start(fx);
        long long id = make_job(fx, "chatty",
                                "[\"for i in $(seq 1 600); do echo row-$i; sleep 0.01; done\", \"echo tail\"]");
        wait_job_log(fx, id, "\"row-20\"", 20);
        bool stale_seen = false;
        for (size_t f = 0; f < sizeof(faults) / sizeof(faults[0]); f++) {
                assert_int_equal(sim_fault(fx->sim, faults[f]), 0);
                double t0 = now_s();
                while (now_s() - t0 < 2.0) {
                        json_t *d = api_get(fx, "/v1/pools/linux/demand");
                        assert_non_null(d);
                        if (json_integer_value(json_object_get(d, "desired")) < 1) {
                                char *dump = json_dumps(d, JSON_COMPACT);
                                fail_msg("the pool's demand dropped during the outage: %s", dump);
                        }
                        stale_seen |= json_is_true(json_object_get(d, "stale"));
                        json_decref(d);
                        assert_true(live_instances(fx) >= 1);
                        usleep(100000);
                }
                assert_int_equal(sim_faults_clear(fx->sim), 0);
        }
        /* The outage was seen (the pool's fetches failed), and ridden out. */
        assert_true(stale_seen);
        wait_drained(fx, 1, 40);
        json_t *j = job(fx, id), *row;
        assert_string_equal(job_status(j), "success");
        size_t i, prelude = prelude_rows(fx, id);
        int next = 1;
        json_array_foreach(json_object_get(j, "log"), i, row) {
                const char *s = json_string_value(row);
                if (strncmp(s, "row-", 4) != 0)
                        continue;
                snprintf(line, sizeof(line), "row-%d", next);
                if (strcmp(s, line) != 0) {
                        char *dump = json_dumps(json_object_get(j, "log"), JSON_COMPACT);
                        fail_msg("row %zu is '%s', want '%s': %s", i, s, line, dump);
                }
                next++;
        }
        assert_int_equal(next, 601);
        assert_true(prelude >= 3);
        json_decref(j);
        /* Counted, for whoever watches the broker. */
        assert_true(metric_sum(fx, "forgescale_broker_relay_failures_total", "method=\"UpdateLog\"") >= 2);
        char *text = daemon_log(fx, 1);
        assert_int_equal(count_of(text, "msg=stopping"), 0);
        assert_non_null(strstr(text, "runner protocol call failed"));
        /* The worker's reports during the outage were answered
         * unavailable (the access log, at debug), never acked. */
        assert_true(count_of(text, "UpdateLog remote=") > 0);
        int unavailable = 0;
        for (const char *p = text; (p = strstr(p, "msg=\"worker call\" path=/api/actions/runner.v1.RunnerService/UpdateLog"));
             p++) {
                const char *eol = strchr(p, '\n');
                const char *st = strstr(p, " status=503");
                unavailable += st && (!eol || st < eol);
        }
        assert_true(unavailable >= 2);
        free(text);
        check_end(fx);
}

/* ---- 4. bad input on the worker endpoint -------------------------------------- */

/* Calls a worker could make, or anyone reaching the endpoint: each is
 * refused (or harmless) with a reason in the daemon's log, and the two
 * jobs running meanwhile succeed untouched. */
static void broker_endpoint_bad_input(void **state)
{
        struct fx *fx = *state;
        char body[1024];
        struct ecall c;

        /* Built first: the calls below must all land while both workers
         * run. */
        size_t zlen = 64u << 20, gzlen = 0;
        char *zeros = calloc(1, zlen);
        void *bomb = NULL;
        assert_non_null(zeros);
        assert_int_equal(rpcodec_gzip(zeros, zlen, &bomb, &gzlen), 0);
        free(zeros);
        assert_true(gzlen < (1u << 20));

        write_pool(fx, NULL, "    max_runners: 3\n");
        fs_start(fx);
        int port = broker_port(fx);
        long long a = make_job(fx, "a", "[\"echo a-started\", \"sleep 8\", \"echo a-done\"]");
        long long b = make_job(fx, "b", "[\"echo b-started\", \"sleep 8\", \"echo b-done\"]");
        wait_job_log(fx, a, "a-started", 20);
        wait_job_log(fx, b, "b-started", 20);
        struct wcred wa = worker_of(fx, a), wb = worker_of(fx, b);
        assert_true(wa.task != wb.task);
        size_t rows_a = log_rows(fx, a), rows_b = log_rows(fx, b);

        /* Wrong token for a real uuid. */
        snprintf(body, sizeof(body), "{\"taskId\":\"%lld\",\"index\":\"0\",\"rows\":[]}", wa.task);
        c = endpoint_call(port, "runner.v1.RunnerService/UpdateLog", &wa,
                          "0000000000000000000000000000000000000000000000000000000000000000", NULL, NULL, body,
                          strlen(body));
        expect_code(&c, "wrong token", "unauthenticated");
        ecall_done(&c);
        c = json_call(port, "runner.v1.RunnerService/FetchTask", NULL, "{}");
        expect_code(&c, "no credentials", "unauthenticated");
        ecall_done(&c);

        /* Another task's id, in both codecs. */
        snprintf(body, sizeof(body), "{\"taskId\":\"%lld\",\"index\":\"0\",\"rows\":[{\"content\":\"INTRUDER\"}]}",
                 wb.task);
        c = json_call(port, "runner.v1.RunnerService/UpdateLog", &wa, body);
        expect_code(&c, "UpdateLog on another task (json)", "permission_denied");
        ecall_done(&c);
        c = proto_call(port, "UpdateLog", &wa, body);
        expect_code(&c, "UpdateLog on another task (proto)", "permission_denied");
        ecall_done(&c);
        snprintf(body, sizeof(body), "{\"state\":{\"id\":\"%lld\",\"result\":\"RESULT_FAILURE\"}}", wb.task);
        c = json_call(port, "runner.v1.RunnerService/UpdateTask", &wa, body);
        expect_code(&c, "UpdateTask on another task (json)", "permission_denied");
        ecall_done(&c);
        c = proto_call(port, "UpdateTask", &wa, body);
        expect_code(&c, "UpdateTask on another task (proto)", "permission_denied");
        ecall_done(&c);

        /* Malformed bodies. */
        c = json_call(port, "runner.v1.RunnerService/UpdateLog", &wa, "{\"taskId\": ");
        expect_code(&c, "malformed JSON", "invalid_argument");
        ecall_done(&c);
        c = endpoint_call(port, "runner.v1.RunnerService/UpdateLog", &wa, NULL, "application/proto", NULL,
                          "\xff\xff\xff\xff\xff\x0a\x02", 7);
        expect_code(&c, "garbage proto", "invalid_argument");
        ecall_done(&c);
        c = endpoint_call(port, "runner.v1.RunnerService/UpdateLog", &wa, NULL, NULL, "gzip", "not gzip", 8);
        expect_code(&c, "not gzip", "invalid_argument");
        ecall_done(&c);

        /* A body over 8 MiB, and a small gzip body inflating to 64 MiB. */
        size_t big = (8u << 20) + 1024;
        char *huge = malloc(big);
        assert_non_null(huge);
        memset(huge, ' ', big);
        huge[0] = '{';
        huge[big - 1] = '}';
        c = endpoint_call(port, "runner.v1.RunnerService/UpdateLog", &wa, NULL, NULL, NULL, huge, big);
        if (c.status != 413)
                fail_msg("a body over 8 MiB: HTTP %ld %s", c.status, c.body);
        ecall_done(&c);
        free(huge);
        c = endpoint_call(port, "runner.v1.RunnerService/UpdateLog", &wa, NULL, "application/proto", "gzip", bomb,
                          gzlen);
        expect_code(&c, "gzip bomb", "resource_exhausted");
        ecall_done(&c);
        free(bomb);

        /* Rows far beyond the ack: the forge writes nothing and the worker
         * hears the forge's ack (its own rows), nothing more. */
        snprintf(body, sizeof(body), "{\"taskId\":\"%lld\",\"index\":\"1000000\",\"rows\":[{\"content\":\"FAR-ROW\"}]}",
                 wa.task);
        c = json_call(port, "runner.v1.RunnerService/UpdateLog", &wa, body);
        assert_int_equal(c.status, 200);
        long long ack_json = j_i64(c.json, "ackIndex");
        ecall_done(&c);
        c = proto_call(port, "UpdateLog", &wa, body);
        assert_int_equal(c.status, 200);
        long long ack_proto = j_i64(c.json, "ackIndex");
        ecall_done(&c);
        size_t prelude = prelude_rows(fx, a);
        size_t have = log_rows(fx, a);
        assert_true(ack_json >= 0 && (size_t)ack_json <= have - prelude);
        assert_true(ack_proto >= ack_json && (size_t)ack_proto <= log_rows(fx, a) - prelude);
        /* Indexes past what any log holds, or before its start. */
        snprintf(body, sizeof(body), "{\"taskId\":\"%lld\",\"index\":\"%" PRId64 "\",\"rows\":[{\"content\":\"FAR-ROW\"}]}",
                 wa.task, INT64_MAX);
        c = json_call(port, "runner.v1.RunnerService/UpdateLog", &wa, body);
        expect_code(&c, "UpdateLog index INT64_MAX (json)", "invalid_argument");
        ecall_done(&c);
        c = proto_call(port, "UpdateLog", &wa, body);
        expect_code(&c, "UpdateLog index INT64_MAX (proto)", "invalid_argument");
        ecall_done(&c);
        snprintf(body, sizeof(body), "{\"taskId\":\"%lld\",\"index\":\"-3\",\"rows\":[{\"content\":\"FAR-ROW\"}]}",
                 wa.task);
        c = proto_call(port, "UpdateLog", &wa, body);
        expect_code(&c, "UpdateLog index -3", "invalid_argument");
        ecall_done(&c);
        snprintf(body, sizeof(body),
                 "{\"state\":{\"id\":\"%lld\",\"steps\":[{\"id\":\"0\",\"logIndex\":\"%" PRId64 "\",\"logLength\":\"1\"}]}}",
                 wa.task, INT64_MAX);
        c = proto_call(port, "UpdateTask", &wa, body);
        expect_code(&c, "UpdateTask logIndex INT64_MAX", "invalid_argument");
        ecall_done(&c);

        /* Register is not for workers; unknown methods are not served. */
        c = json_call(port, "runner.v1.RunnerService/Register", NULL,
                      "{\"name\":\"x\",\"token\":\"0123456789012345678901234567890123456789\"}");
        expect_code(&c, "Register", "permission_denied");
        ecall_done(&c);
        c = json_call(port, "runner.v1.RunnerService/NoSuchMethod", &wa, "{}");
        expect_code(&c, "unknown method", "unimplemented");
        ecall_done(&c);

        /* Nothing reached the forge's logs. */
        assert_true(log_rows(fx, b) >= rows_b);
        assert_true(log_rows(fx, a) >= rows_a);
        wait_drained(fx, 2, 30);
        long long ids[2] = { a, b };
        const char *done[2] = { "\"a-done\"", "\"b-done\"" };
        for (int k = 0; k < 2; k++) {
                json_t *j = job(fx, ids[k]);
                assert_string_equal(job_status(j), "success");
                json_decref(j);
                char *dump = job_log_text(fx, ids[k]);
                if (strstr(dump, "INTRUDER") || strstr(dump, "FAR-ROW") || count_of(dump, done[k]) != 1)
                        fail_msg("job %lld: %s", ids[k], dump);
                free(dump);
                (void)prelude_rows(fx, ids[k]);
        }
        /* Each refusal was logged with its reason. */
        char *text = daemon_log(fx, 1);
        static const char *const want[] = {
                "code=unauthenticated", "code=permission_denied", "code=invalid_argument",
                "code=resource_exhausted", "status=413", "code=unimplemented",
        };
        for (size_t k = 0; k < sizeof(want) / sizeof(want[0]); k++)
                if (!strstr(text, want[k]))
                        fail_msg("no refusal logged with %s", want[k]);
        /* 2 unauthenticated, 4 other task, 1 Register. */
        assert_int_equal(count_of(text, "code=unauthenticated"), 2);
        assert_int_equal(count_of(text, "code=permission_denied"), 5);
        assert_int_equal(count_of(text, "code=invalid_argument"), 7);
        free(text);
        check_end(fx);
}

/* ---- 5. a FetchTask answer lost, then kill -9 ---------------------------------- */

/* The forge assigns two tasks but its answer never arrives, and the daemon
 * is killed before it asks again. The restarted daemon fetches with the
 * stored request key, gets the same tasks back, and each runs once: well
 * within the forge's zombie timeout. */
static void broker_lost_fetch_answer_kill9(void **state)
{
        struct fx *fx = *state;
        long long ids[2];
        long long tasks[2];

        write_pool(fx, NULL, "    max_runners: 4\n");
        ids[0] = make_job(fx, "lost-0", "[\"echo once-0\"]");
        ids[1] = make_job(fx, "lost-1", "[\"echo once-1\"]");
        assert_int_equal(sim_fault(fx->sim, "{\"path_prefix\":\"/api/actions/runner.v1.RunnerService/FetchTask\","
                                            "\"mode\":\"delay\",\"seconds\":60,\"after\":true,\"count\":1}"), 0);
        fs_start(fx);
        /* Both assigned to our runner, the answer held back. */
        double t0 = now_s();
        while (now_s() - t0 < 15 && (!job_task(fx, ids[0]) || !job_task(fx, ids[1])))
                usleep(50000);
        tasks[0] = job_task(fx, ids[0]);
        tasks[1] = job_task(fx, ids[1]);
        assert_true(tasks[0] > 0 && tasks[1] > 0);
        fs_kill(fx, SIGKILL);
        assert_int_equal(count_workers(fx, false), 0);
        t0 = now_s();
        fs_start(fx);
        wait_drained(fx, 2, 30);
        /* Far below the zombie timeout (10 min). */
        assert_true(now_s() - t0 < 30);
        for (int k = 0; k < 2; k++) {
                char want[32];
                json_t *j = job(fx, ids[k]);
                assert_string_equal(job_status(j), "success");
                assert_int_equal(json_integer_value(json_object_get(j, "task_id")), tasks[k]);
                json_decref(j);
                snprintf(want, sizeof(want), "\"once-%d\"", k);
                char *dump = job_log_text(fx, ids[k]);
                if (count_of(dump, want) != 1 || !strstr(dump, " connected"))
                        fail_msg("job %lld: %s", ids[k], dump);
                free(dump);
                (void)prelude_rows(fx, ids[k]);
        }
        char *text = daemon_log(fx, 2);
        assert_non_null(strstr(text, "unanswered_fetches=1"));
        assert_int_equal(count_of(text, "msg=\"task fetched\""), 2);
        free(text);
        text = daemon_log(fx, 1);
        assert_int_equal(count_of(text, "msg=\"task fetched\""), 0);
        free(text);
        check_end(fx);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest all[] = {
                cmocka_unit_test_setup_teardown(broker_cancel_while_booting, setup, teardown),
                cmocka_unit_test_setup_teardown(broker_bootstrap_timeout, setup, teardown),
                cmocka_unit_test_setup_teardown(broker_forge_outage_mid_task, setup, teardown),
                cmocka_unit_test_setup_teardown(broker_endpoint_bad_input, setup, teardown),
                cmocka_unit_test_setup_teardown(broker_lost_fetch_answer_kill9, setup, teardown),
        };

        atexit(on_abort);
        httpc_global_init();
        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return cmocka_run_group_tests(all, NULL, NULL);
}
