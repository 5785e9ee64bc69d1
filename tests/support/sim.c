/* sim.c: see sim.h. Owns the simulator's start options and the HTTP
 * helpers; the child process itself is child.c's (killed with the test
 * process, whatever ends it). Never asserts; the checks live in check.c. */
#include "sim.h"

#include "util/httpc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LISTEN_PREFIX "listening on http://127.0.0.1:"

static bool hooks_installed;

static void install_hooks(void)
{
        if (hooks_installed)
                return;
        hooks_installed = true;
        httpc_global_init();
}

static void dump_output(const struct sim *sim, const char *why)
{
        char buf[4096];
        ssize_t n = pread(sim->proc.out_fd, buf, sizeof(buf) - 1, 0);

        if (n < 0)
                n = 0;
        buf[n] = '\0';
        fprintf(stderr, "forgejo-sim: %s; its stdout was:\n%s\n", why, buf);
}

int sim_start(const struct sim_opts *opts, struct sim **ret)
{
        const char *exe = getenv("FORGEJO_SIM");
        char tmpl[] = "/tmp/forgejo-sim-out.XXXXXX";
        struct sim *sim = NULL;
        int r;

        install_hooks();
        if (!exe || !*exe)
                return -ENOENT;
        sim = calloc(1, sizeof(*sim));
        if (!sim)
                return -ENOMEM;
        sim->proc.name = "forgejo-sim";
        sim->proc.out_fd = -1;
        sim->http = httpc_new();
        if (!sim->http) {
                r = -ENOMEM;
                goto err;
        }
        /* A file, not a pipe: the simulator may write more than a pipe holds
         * and must never block on a reader that stopped reading. */
        sim->proc.out_fd = mkostemp(tmpl, O_CLOEXEC);
        if (sim->proc.out_fd < 0) {
                r = -errno;
                goto err;
        }
        unlink(tmpl);

        const char *argv[12];
        size_t argc = 0;
        argv[argc++] = exe;
        argv[argc++] = "serve";
        argv[argc++] = "--listen";
        argv[argc++] = "127.0.0.1:0";
        if (opts && opts->zombie_timeout) {
                argv[argc++] = "--zombie-timeout";
                argv[argc++] = opts->zombie_timeout;
        }
        if (opts && opts->forgejo_version) {
                argv[argc++] = "--forgejo-version";
                argv[argc++] = opts->forgejo_version;
        }
        if (opts && opts->test_clock)
                argv[argc++] = "--test-clock";
        argv[argc] = NULL;

        r = child_start(&sim->proc, exe, argv);
        if (r < 0)
                goto err;
        long timeout = opts && opts->start_timeout_ms > 0 ? opts->start_timeout_ms : 10000;
        r = child_wait_port(&sim->proc, LISTEN_PREFIX, timeout);
        if (r < 0) {
                dump_output(sim, r == -ECHILD ? "exited before listening" : "no listening line in time");
                goto err;
        }
        sim->port = r;
        snprintf(sim->base_url, sizeof(sim->base_url), "http://127.0.0.1:%d", sim->port);
        *ret = sim;
        return 0;
err:
        sim_stop(sim);
        return r;
}

bool sim_alive(struct sim *sim)
{
        return sim && child_alive(&sim->proc);
}

int sim_stop(struct sim *sim)
{
        int r;

        if (!sim)
                return 0;
        /* Close the kept-alive connection first, so the simulator does not
         * wait for it to drain when it stops. */
        httpc_free(sim->http);
        sim->http = NULL;
        r = child_stop(&sim->proc, 3.0);
        if (sim->proc.out_fd >= 0)
                close(sim->proc.out_fd);
        free(sim);
        return r;
}

/* ---- HTTP ---- */

void sim_resp_done(struct sim_resp *r)
{
        if (!r)
                return;
        free(r->body);
        r->body = NULL;
        r->len = 0;
        json_decref(r->json);
        r->json = NULL;
}

int sim_request(struct sim *sim, const struct sim_req *req, struct sim_resp *ret)
{
        char url[8192 + 64];
        struct httpc_resp hr;
        struct httpc *h = sim->http, *fresh = NULL;
        int r;

        memset(ret, 0, sizeof(*ret));
        ret->total_count = -1;
        if (snprintf(url, sizeof(url), "%s%s", sim->base_url, req->path) >= (int)sizeof(url))
                return -ENAMETOOLONG;
        if (req->fresh_connection) {
                fresh = httpc_new();
                if (!fresh)
                        return -ENOMEM;
                h = fresh;
        }
        struct httpc_req hq = {
                .method = req->method,
                .url = url,
                .headers = req->headers,
                .body = req->body,
                .body_len = req->body && !req->body_len ? strlen(req->body) : req->body_len,
                .timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : 5000,
        };
        double t0 = child_now_s();
        r = httpc_do(h, &hq, &hr);
        ret->elapsed_s = child_now_s() - t0;
        httpc_free(fresh);
        if (r < 0) {
                fprintf(stderr, "%s %s: transport error %d (%s)\n",
                        req->method ? req->method : "GET", req->path, r, hr.errbuf);
                httpc_resp_done(&hr);
                return r;
        }
        ret->status = hr.status;
        ret->body = hr.body;
        ret->len = hr.len;
        ret->total_count = hr.total_count;
        memcpy(ret->content_type, hr.content_type, sizeof(ret->content_type));
        memcpy(ret->content_encoding, hr.content_encoding, sizeof(ret->content_encoding));
        ret->json = json_loadb(ret->body, ret->len, JSON_DECODE_ANY, NULL);
        return 0;
}

static int rest(struct sim *sim, const char *method, const char *path, const char *token,
                const char *body, struct sim_resp *ret)
{
        char auth[256];
        const char *hdrs[4];
        size_t n = 0;

        if (token) {
                snprintf(auth, sizeof(auth), "Authorization: token %s", token);
                hdrs[n++] = auth;
        }
        if (body)
                hdrs[n++] = "Content-Type: application/json";
        hdrs[n++] = "Accept: application/json";
        hdrs[n] = NULL;
        struct sim_req req = { .method = method, .path = path, .headers = hdrs, .body = body };
        return sim_request(sim, &req, ret);
}

int sim_get(struct sim *sim, const char *path, const char *token, struct sim_resp *ret)
{
        return rest(sim, "GET", path, token, NULL, ret);
}

int sim_post(struct sim *sim, const char *path, const char *token,
             const char *json_body, struct sim_resp *ret)
{
        return rest(sim, "POST", path, token, json_body ? json_body : "", ret);
}

int sim_delete(struct sim *sim, const char *path, const char *token, struct sim_resp *ret)
{
        return rest(sim, "DELETE", path, token, NULL, ret);
}

enum rpcodec sim_rpc_codec(void)
{
        static enum rpcodec codec;
        static bool known;
        const char *v;

        if (!known) {
                v = getenv("SIM_RPC_CODEC");
                codec = RPCODEC_JSON;
                if (v && *v && rpcodec_parse_name(v, &codec) < 0) {
                        fprintf(stderr, "SIM_RPC_CODEC=%s: neither proto nor json; using json\n", v);
                        codec = RPCODEC_JSON;
                }
                known = true;
        }
        return codec;
}

/* json_body as application/proto: *ret_body (malloc'd) and its length.
 * Returns 0; -ENOENT for a method outside the schema (an empty message
 * goes, so routing is still tested); -EINVAL when the body is not JSON the
 * proto codec can carry (the caller sends it as JSON). */
static int proto_body(const char *method, const char *json_body, void **ret_body, size_t *ret_len,
                      char *err)
{
        json_error_t jerr;
        json_t *j;
        int r;

        if (!rpcodec_message(method, RPCODEC_REQUEST)) {
                *ret_body = calloc(1, 1);
                *ret_len = 0;
                return *ret_body ? -ENOENT : -ENOMEM;
        }
        j = json_loads(json_body, JSON_REJECT_DUPLICATES, &jerr);
        if (!j) {
                snprintf(err, RP_ERR_MAX, "not JSON: %.100s", jerr.text);
                return -EINVAL;
        }
        r = rpcodec_encode(method, RPCODEC_REQUEST, RPCODEC_PROTO, j, ret_body, ret_len, err);
        json_decref(j);
        return r == -ENOENT ? -EINVAL : r;
}

/* A 200 answer in application/proto, as the JSON the tests look at. */
static void proto_answer(const char *method, struct sim_resp *ret)
{
        char err[RP_ERR_MAX];
        json_t *j = NULL;
        char *text;

        if (ret->status != 200 || strncmp(ret->content_type, "application/proto", 17) != 0)
                return;
        json_decref(ret->json);
        ret->json = NULL;
        if (rpcodec_decode(method, RPCODEC_RESPONSE, RPCODEC_PROTO, ret->body, ret->len, &j, err) < 0) {
                fprintf(stderr, "sim_rpc %s: the application/proto answer does not decode: %s\n", method, err);
                return;
        }
        text = json_dumps(j, JSON_COMPACT);
        if (!text) {
                json_decref(j);
                return;
        }
        free(ret->body);
        ret->body = text;
        ret->len = strlen(text);
        ret->json = j;
}

int sim_rpc(struct sim *sim, const char *method, const char *uuid, const char *token,
            const char *request_key, const char *json_body, struct sim_resp *ret)
{
        char path[256], h_uuid[256], h_token[256], h_key[256], err[RP_ERR_MAX];
        const char *hdrs[8];
        size_t n = 0, len = 0;
        void *body = NULL;
        bool proto = false;
        int r;

        if (!json_body)
                json_body = "";
        if (sim_rpc_codec() == RPCODEC_PROTO) {
                r = proto_body(method, json_body, &body, &len, err);
                if (r == -ENOMEM)
                        return r;
                proto = r == 0 || r == -ENOENT;
                if (!proto)
                        fprintf(stderr, "sim_rpc %s: sent as JSON, the proto codec cannot carry %.80s (%s)\n",
                                method, json_body, err);
        }
        snprintf(path, sizeof(path), "/api/actions/%s", method);
        hdrs[n++] = proto ? "Content-Type: application/proto" : "Content-Type: application/json";
        hdrs[n++] = "Connect-Protocol-Version: 1";
        if (uuid) {
                snprintf(h_uuid, sizeof(h_uuid), "x-runner-uuid: %s", uuid);
                hdrs[n++] = h_uuid;
        }
        if (token) {
                snprintf(h_token, sizeof(h_token), "x-runner-token: %s", token);
                hdrs[n++] = h_token;
        }
        if (request_key) {
                snprintf(h_key, sizeof(h_key), "x-runner-request-key: %s", request_key);
                hdrs[n++] = h_key;
        }
        hdrs[n] = NULL;
        /* body_len 0 means strlen(): an empty proto message is "" too. */
        struct sim_req req = { .method = "POST", .path = path, .headers = hdrs,
                               .body = proto ? body : json_body, .body_len = proto ? len : 0 };
        r = sim_request(sim, &req, ret);
        free(body);
        if (r == 0 && proto)
                proto_answer(method, ret);
        return r;
}

/* ---- control API ---- */

static int unexpected(const char *what, const struct sim_resp *r)
{
        fprintf(stderr, "%s: unexpected answer %ld: %.*s\n", what, r->status,
                (int)(r->len > 2000 ? 2000 : r->len), r->body ? r->body : "");
        return -EPROTO;
}

static int copy_str(json_t *o, const char *key, char *buf, size_t n)
{
        const char *s = json_string_value(json_object_get(o, key));

        if (!s || strlen(s) >= n)
                return -EPROTO;
        memcpy(buf, s, strlen(s) + 1);
        return 0;
}

static int get_id(json_t *o, const char *key, long long *ret)
{
        json_t *v = json_object_get(o, key);

        if (!json_is_integer(v))
                return -EPROTO;
        *ret = json_integer_value(v);
        return 0;
}

/* POSTs a packed object to a control route and hands back the 2xx body. */
static int control_post(struct sim *sim, const char *path, json_t *body, json_t **ret)
{
        struct sim_resp r;
        char *s = NULL;
        int rc;

        if (!body)
                return -ENOMEM;
        s = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        if (!s)
                return -ENOMEM;
        rc = sim_post(sim, path, NULL, s, &r);
        free(s);
        if (rc < 0)
                return rc;
        if (r.status < 200 || r.status > 299 || (ret && !json_is_object(r.json))) {
                rc = unexpected(path, &r);
                sim_resp_done(&r);
                return rc;
        }
        if (ret)
                *ret = json_incref(r.json);
        sim_resp_done(&r);
        return 0;
}

static int control_get(struct sim *sim, const char *path, json_t **ret)
{
        struct sim_resp r;
        int rc = sim_get(sim, path, NULL, &r);

        if (rc < 0)
                return rc;
        if (r.status != 200 || !r.json) {
                rc = unexpected(path, &r);
                sim_resp_done(&r);
                return rc;
        }
        *ret = json_incref(r.json);
        sim_resp_done(&r);
        return 0;
}

int sim_create_user(struct sim *sim, const char *name, bool admin, struct sim_user *ret)
{
        json_t *o = NULL;
        struct sim_user u = { 0 };
        int r = control_post(sim, "/_sim/users", json_pack("{s:s, s:b}", "name", name, "admin", admin), &o);

        if (r < 0)
                return r;
        if (get_id(o, "id", &u.id) < 0 || copy_str(o, "token", u.token, sizeof(u.token)) < 0 ||
            copy_str(o, "name", u.name, sizeof(u.name)) < 0) {
                fprintf(stderr, "/_sim/users: bad shape\n");
                r = -EPROTO;
        } else {
                *ret = u;
        }
        json_decref(o);
        return r;
}

int sim_create_org(struct sim *sim, const char *name, const char *const *owners, long long *ret_id)
{
        json_t *list = json_array(), *o = NULL;
        long long id;
        int r;

        if (!list)
                return -ENOMEM;
        for (const char *const *p = owners; p && *p; p++)
                json_array_append_new(list, json_string(*p));
        r = control_post(sim, "/_sim/orgs", json_pack("{s:s, s:o}", "name", name, "owners", list), &o);
        if (r < 0)
                return r;
        if (get_id(o, "id", &id) < 0) {
                fprintf(stderr, "/_sim/orgs: no integer id\n");
                r = -EPROTO;
        } else if (ret_id) {
                *ret_id = id;
        }
        json_decref(o);
        return r;
}

int sim_create_repo(struct sim *sim, const char *owner, const char *name, long long *ret_id)
{
        json_t *o = NULL;
        long long id;
        int r = control_post(sim, "/_sim/repos", json_pack("{s:s, s:s}", "owner", owner, "name", name), &o);

        if (r < 0)
                return r;
        if (get_id(o, "id", &id) < 0) {
                fprintf(stderr, "/_sim/repos: no integer id\n");
                r = -EPROTO;
        } else if (ret_id) {
                *ret_id = id;
        }
        json_decref(o);
        return r;
}

int sim_create_job(struct sim *sim, const char *owner, const char *repo, const char *name,
                   const char *runs_on_json, const char *steps_json, struct sim_job *ret)
{
        json_t *runs_on = json_loads(runs_on_json, 0, NULL);
        json_t *steps = json_loads(steps_json ? steps_json : "[\"echo hello\"]", 0, NULL);
        json_t *o = NULL;
        struct sim_job j = { 0 };
        int r;

        if (!json_is_array(runs_on) || !json_is_array(steps)) {
                json_decref(runs_on);
                json_decref(steps);
                return -EINVAL;
        }
        r = control_post(sim, "/_sim/jobs",
                         json_pack("{s:s, s:s, s:s, s:o, s:o}", "owner", owner, "repo", repo,
                                   "name", name, "runs_on", runs_on, "steps", steps), &o);
        if (r < 0)
                return r;
        if (get_id(o, "id", &j.id) < 0 || copy_str(o, "handle", j.handle, sizeof(j.handle)) < 0) {
                fprintf(stderr, "/_sim/jobs: bad shape\n");
                r = -EPROTO;
        } else if (ret) {
                *ret = j;
        }
        json_decref(o);
        return r;
}

int sim_cancel_job(struct sim *sim, long long id)
{
        char path[96];
        struct sim_resp r;
        int rc;

        snprintf(path, sizeof(path), "/_sim/jobs/%lld/cancel", id);
        rc = sim_post(sim, path, NULL, "{}", &r);
        if (rc < 0)
                return rc;
        if (r.status < 200 || r.status > 299)
                rc = unexpected(path, &r);
        sim_resp_done(&r);
        return rc;
}

int sim_get_job(struct sim *sim, long long id, json_t **ret)
{
        char path[96];

        snprintf(path, sizeof(path), "/_sim/jobs/%lld", id);
        return control_get(sim, path, ret);
}

int sim_list_jobs(struct sim *sim, json_t **ret)
{
        return control_get(sim, "/_sim/jobs", ret);
}

int sim_list_runners(struct sim *sim, json_t **ret)
{
        return control_get(sim, "/_sim/runners", ret);
}

int sim_find_runner(struct sim *sim, const char *uuid, json_t **ret)
{
        json_t *all = NULL, *v;
        size_t i;
        int r = sim_list_runners(sim, &all);

        if (r < 0)
                return r;
        r = -ENOENT;
        json_array_foreach(all, i, v) {
                const char *u = json_string_value(json_object_get(v, "uuid"));
                if (u && strcmp(u, uuid) == 0) {
                        *ret = json_incref(v);
                        r = 0;
                        break;
                }
        }
        json_decref(all);
        return r;
}

int sim_stats(struct sim *sim, json_t **ret)
{
        return control_get(sim, "/_sim/stats", ret);
}

int sim_fault(struct sim *sim, const char *json_body)
{
        struct sim_resp r;
        int rc = sim_post(sim, "/_sim/faults", NULL, json_body, &r);

        if (rc < 0)
                return rc;
        if (r.status < 200 || r.status > 299)
                rc = unexpected("/_sim/faults", &r);
        sim_resp_done(&r);
        return rc;
}

int sim_faults_clear(struct sim *sim)
{
        struct sim_resp r;
        int rc = sim_delete(sim, "/_sim/faults", NULL, &r);

        if (rc < 0)
                return rc;
        if (r.status < 200 || r.status > 299)
                rc = unexpected("DELETE /_sim/faults", &r);
        sim_resp_done(&r);
        return rc;
}

int sim_clock_advance(struct sim *sim, long long ms)
{
        json_t *o = NULL;
        int r = control_post(sim, "/_sim/clock", json_pack("{s:I}", "advance_ms", (json_int_t)ms), &o);

        json_decref(o);
        return r;
}

/* ---- runners ---- */

int sim_runner_create(struct sim *sim, const char *scope, const char *user_token,
                      const char *name, bool ephemeral, struct sim_runner *ret)
{
        char path[512];
        char *body = NULL;
        struct sim_resp r;
        struct sim_runner out = { 0 };
        json_t *b = json_pack("{s:s, s:s, s:b}", "name", name, "description", "", "ephemeral", ephemeral);
        int rc;

        if (!b)
                return -ENOMEM;
        body = json_dumps(b, JSON_COMPACT);
        json_decref(b);
        if (!body)
                return -ENOMEM;
        snprintf(path, sizeof(path), "%s/actions/runners", scope);
        rc = sim_post(sim, path, user_token, body, &r);
        free(body);
        if (rc < 0)
                return rc;
        if (r.status != 201 || get_id(r.json, "id", &out.id) < 0 ||
            copy_str(r.json, "uuid", out.uuid, sizeof(out.uuid)) < 0 ||
            copy_str(r.json, "token", out.token, sizeof(out.token)) < 0) {
                rc = unexpected(path, &r);
        } else {
                *ret = out;
        }
        sim_resp_done(&r);
        return rc;
}

int sim_runner_declare(struct sim *sim, const struct sim_runner *rn, const char *labels_json)
{
        char body[2048];
        struct sim_resp r;
        int rc;

        if (snprintf(body, sizeof(body), "{\"version\":\"v12.9.0\",\"labels\":%s}", labels_json) >= (int)sizeof(body))
                return -E2BIG;
        rc = sim_rpc(sim, "runner.v1.RunnerService/Declare", rn->uuid, rn->token, NULL, body, &r);
        if (rc < 0)
                return rc;
        if (r.status != 200)
                rc = unexpected("Declare", &r);
        sim_resp_done(&r);
        return rc;
}

int sim_runner_fetch(struct sim *sim, const struct sim_runner *rn, long long *ret_task_id)
{
        struct sim_resp r;
        long long id = 0;
        int rc = sim_rpc(sim, "runner.v1.RunnerService/FetchTask", rn->uuid, rn->token, NULL,
                         "{\"tasksVersion\":\"0\"}", &r);

        if (rc < 0)
                return rc;
        if (r.status != 200 || !json_is_object(r.json)) {
                rc = unexpected("FetchTask", &r);
                goto out;
        }
        json_t *task = json_object_get(r.json, "task");
        if (task) {
                /* protojson int64: a string; also take a number. */
                json_t *v = json_object_get(task, "id");
                const char *s = json_string_value(v);
                if (s) {
                        char *end;
                        errno = 0;
                        id = strtoll(s, &end, 10);
                        if (errno || end == s || *end)
                                id = -1;
                } else if (json_is_integer(v)) {
                        id = json_integer_value(v);
                } else {
                        id = -1;
                }
                if (id <= 0) {
                        rc = unexpected("FetchTask task.id", &r);
                        goto out;
                }
        }
        *ret_task_id = id;
out:
        sim_resp_done(&r);
        return rc;
}
