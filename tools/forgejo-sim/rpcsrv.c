/* rpcsrv.c: the runner protocol server side (ping.v1 and runner.v1 over
 * Connect unary, in binary protobuf or JSON as the request's Content-Type
 * says, gzip in both directions): runner authentication, Register,
 * Declare, FetchTask/FetchSingleTask with tasks versions and request-key
 * recovery, UpdateTask and UpdateLog, following Forgejo's
 * routers/api/actions/runner/runner.go. Every message goes through
 * forge/rproto.h and forge/rpcodec.h; this file never builds protocol JSON
 * or protobuf by hand. */
#include "sim.h"

#include "forge/rpcodec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_TASK_CAPACITY 256           /* bound on tasks per FetchTask */
#define MAX_REQUEST_KEY 255
#define MAX_OUTPUT_KEY 255              /* Forgejo drops longer keys */
#define MAX_OUTPUT_VALUE (1024 * 1024)  /* ... and longer values */

/* "runner.v1.RunnerService/FetchTask" from the request path. */
static const char *rpc_method(const struct sim_req *rq)
{
        size_t n = strlen(RP_PATH_PREFIX);

        return strncmp(rq->path, RP_PATH_PREFIX, n) == 0 ? rq->path + n : rq->path;
}

/* The codec the request is in. No Content-Type is taken as JSON, as this
 * simulator always has (Connect servers answer 415). */
static int rpc_codec(const struct sim_req *rq, enum rpcodec *ret, char *err)
{
        const char *ct = httpd_header(rq, "Content-Type");

        if (!ct) {
                *ret = RPCODEC_JSON;
                return 0;
        }
        return rpcodec_from_content_type(ct, ret, err);
}

/* Decodes the body, in the codec of its Content-Type and inflated when
 * gzipped, into a JSON object for rproto; answers a Connect error and
 * returns NULL when the request cannot be a Connect unary call. */
static json_t *rpc_body(const struct sim_req *rq, struct sim_resp *rs)
{
        const char *method = rpc_method(rq);
        char err[RP_ERR_MAX];
        enum rpcodec codec;
        const void *body = rq->body;
        size_t len = rq->body_len;
        void *inflated = NULL;
        json_t *j = NULL;
        bool gz;
        int r;

        if (rpc_codec(rq, &codec, err) < 0) {
                resp_connect_error(rs, RP_CODE_UNIMPLEMENTED, "%s", err);
                rs->status = 415;
                return NULL;
        }
        if (rpcodec_parse_encoding(httpd_header(rq, "Content-Encoding"), &gz, err) < 0) {
                resp_connect_error(rs, RP_CODE_UNIMPLEMENTED, "%s", err);
                return NULL;
        }
        if (gz) {
                r = rpcodec_gunzip(body, len, SIM_MAX_RPC_BODY, &inflated, &len, err);
                if (r < 0) {
                        resp_connect_error(rs, r == -EMSGSIZE ? RP_CODE_RESOURCE_EXHAUSTED :
                                           r == -ENOMEM ? RP_CODE_INTERNAL : RP_CODE_INVALID_ARGUMENT,
                                           "decompress request: %s", err);
                        return NULL;
                }
                body = inflated;
        }
        pthread_mutex_lock(&rq->sim->aux_lock);
        if (codec == RPCODEC_PROTO)
                rq->sim->rpc_stats.proto++;
        else
                rq->sim->rpc_stats.json++;
        if (gz)
                rq->sim->rpc_stats.gzip_in++;
        pthread_mutex_unlock(&rq->sim->aux_lock);
        r = rpcodec_decode(method, RPCODEC_REQUEST, codec, body, len, &j, err);
        free(inflated);
        if (r < 0) {
                resp_connect_error(rs, r == -EMSGSIZE ? RP_CODE_RESOURCE_EXHAUSTED :
                                   r == -ENOMEM ? RP_CODE_INTERNAL : RP_CODE_INVALID_ARGUMENT,
                                   "unmarshal message: %s", err);
                return NULL;
        }
        return j;
}

/* Answers j (taken) in the request's codec, gzipped when the client
 * accepts it and the body is worth it (Forgejo: 1 KiB and more). */
static void rpc_reply(const struct sim_req *rq, struct sim_resp *rs, json_t *j)
{
        char err[RP_ERR_MAX];
        enum rpcodec codec = RPCODEC_JSON;
        void *body = NULL, *z;
        size_t len = 0, zlen;
        int r;

        if (!j) {
                resp_connect_error(rs, RP_CODE_INTERNAL, "out of memory");
                return;
        }
        /* rpc_body() accepted the Content-Type already. */
        (void)rpc_codec(rq, &codec, err);
        r = rpcodec_encode(rpc_method(rq), RPCODEC_RESPONSE, codec, j, &body, &len, err);
        json_decref(j);
        if (r < 0) {
                resp_connect_error(rs, RP_CODE_INTERNAL, "marshal message: %s", err);
                return;
        }
        if (len >= RPCODEC_GZIP_MIN && rpcodec_accepts_gzip(httpd_header(rq, "Accept-Encoding")) &&
            rpcodec_gzip(body, len, &z, &zlen) == 0) {
                free(body);
                body = z;
                len = zlen;
                rs->content_encoding = "gzip";
                pthread_mutex_lock(&rq->sim->aux_lock);
                rq->sim->rpc_stats.gzip_out++;
                pthread_mutex_unlock(&rq->sim->aux_lock);
        }
        free(rs->body);
        rs->body = body;
        rs->len = len;
        rs->status = 200;
        rs->content_type = rpcodec_content_type(codec);
}

/* The interceptor: x-runner-uuid/x-runner-token must name a live runner.
 * Marks it online (and active for UpdateTask/UpdateLog). Call with the
 * lock held; answers unauthenticated and returns NULL otherwise. */
static struct runner *rpc_auth(const struct sim_req *rq, struct sim_resp *rs, bool active)
{
        struct runner *r = state_runner_auth(rq->sim, httpd_header(rq, RP_HDR_UUID),
                                             httpd_header(rq, RP_HDR_TOKEN));
        int64_t now = simclock_mono_ms(&rq->sim->clock);

        if (!r) {
                resp_connect_error(rs, RP_CODE_UNAUTHENTICATED, "unregistered runner");
                return NULL;
        }
        r->last_online_mono = now;
        if (active)
                r->last_active_mono = now;
        return r;
}

/* A runner message borrowing the runner's strings (do not _done it). */
static struct rp_runner runner_msg(const struct runner *r, const char *token)
{
        struct rp_runner m = {
                .id = r->id,
                .uuid = (char *)r->uuid,
                .token = (char *)token,
                .name = r->name,
                .version = r->version,
                .labels = r->labels,
                .ephemeral = r->ephemeral,
        };
        return m;
}

static int build_task(struct sim *s, struct task *t, struct rp_task *out)
{
        size_t len = 0;
        char *payload = workflow_payload(t->job, &len);

        memset(out, 0, sizeof(*out));
        out->id = t->id;
        out->workflow_payload = (unsigned char *)payload;
        out->workflow_payload_len = len;
        out->context = workflow_context(s, t);
        out->secrets = workflow_secrets(t);
        if (!payload || !out->context || !out->secrets) {
                rp_task_done(out);
                return -ENOMEM;
        }
        return 0;
}

/* x-runner-request-key, or NULL when absent or empty. */
static const char *request_key(const struct sim_req *rq)
{
        const char *k = httpd_header(rq, RP_HDR_REQUEST_KEY);

        return k && *k ? k : NULL;
}

void rpcsrv_ping(const struct sim_req *rq, struct sim_resp *rs)
{
        struct rp_ping_req req = {0};
        struct rp_ping_resp resp = {0};
        char err[RP_ERR_MAX];
        json_t *j = rpc_body(rq, rs);
        size_t n;

        if (!j)
                return;
        if (rp_ping_req_from_json(j, &req, err, sizeof(err)) < 0) {
                json_decref(j);
                resp_connect_error(rs, RP_CODE_INVALID_ARGUMENT, "%s", err);
                return;
        }
        json_decref(j);
        n = strlen(req.data ? req.data : "") + sizeof("Hello, !");
        resp.data = malloc(n);
        if (resp.data)
                snprintf(resp.data, n, "Hello, %s!", req.data ? req.data : "");
        rpc_reply(rq, rs, resp.data ? rp_ping_resp_to_json(&resp) : NULL);
        rp_ping_req_done(&req);
        rp_ping_resp_done(&resp);
}

void rpcsrv_register(const struct sim_req *rq, struct sim_resp *rs)
{
        struct rp_register_req req = {0};
        struct rp_register_resp resp = {0};
        struct reg_token *t;
        struct runner *r = NULL;
        char err[RP_ERR_MAX];
        json_t *j = rpc_body(rq, rs), *out = NULL;
        int rc = 0;

        if (!j)
                return;
        rc = rp_register_req_from_json(j, &req, err, sizeof(err));
        json_decref(j);
        if (rc < 0) {
                resp_connect_error(rs, RP_CODE_INVALID_ARGUMENT, "%s", err);
                return;
        }
        if (!req.token || !*req.token || !req.name || !*req.name) {
                resp_connect_error(rs, RP_CODE_INVALID_ARGUMENT, "missing runner token, name");
                goto out;
        }
        pthread_mutex_lock(&rq->sim->lock);
        t = state_reg_token_find(rq->sim, req.token);
        if (!t) {
                resp_connect_error(rs, RP_CODE_INVALID_ARGUMENT, "runner registration token not found");
        } else if (!t->active) {
                resp_connect_error(rs, RP_CODE_INVALID_ARGUMENT,
                                   "runner registration token has been invalidated, please use the latest one");
        } else if (state_runner_create(rq->sim, t->owner_id, t->repo_id, req.name, "",
                                       req.ephemeral, &r) < 0) {
                resp_connect_error(rs, RP_CODE_INTERNAL, "can't create new runner");
        } else {
                char *v = strdup(req.version ? req.version : "");
                struct rp_strlist labels = {0};
                bool ok = v != NULL;
                for (size_t i = 0; ok && i < req.labels.n; i++)
                        ok = rp_strlist_push(&labels, req.labels.v[i]) >= 0;
                if (ok) {
                        free(r->version);
                        r->version = v;
                        rp_strlist_done(&r->labels);
                        r->labels = labels;
                        resp.runner = runner_msg(r, r->token);
                        out = rp_register_resp_to_json(&resp);
                } else {
                        free(v);
                        rp_strlist_done(&labels);
                }
                rpc_reply(rq, rs, out);
        }
        pthread_mutex_unlock(&rq->sim->lock);
out:
        rp_register_req_done(&req);
}

void rpcsrv_declare(const struct sim_req *rq, struct sim_resp *rs)
{
        struct rp_declare_req req = {0};
        struct rp_declare_resp resp = {0};
        struct runner *r;
        char err[RP_ERR_MAX];
        json_t *j = rpc_body(rq, rs), *out = NULL;
        int rc;

        if (!j)
                return;
        rc = rp_declare_req_from_json(j, &req, err, sizeof(err));
        json_decref(j);
        if (rc < 0) {
                resp_connect_error(rs, RP_CODE_INVALID_ARGUMENT, "%s", err);
                return;
        }
        pthread_mutex_lock(&rq->sim->lock);
        r = rpc_auth(rq, rs, false);
        if (r) {
                char *v = strdup(req.version ? req.version : "");
                if (v) {
                        free(r->version);
                        r->version = v;
                        rp_strlist_done(&r->labels);
                        r->labels = req.labels;         /* moved */
                        memset(&req.labels, 0, sizeof(req.labels));
                        resp.runner = runner_msg(r, NULL);
                        out = rp_declare_resp_to_json(&resp);
                }
                rpc_reply(rq, rs, out);
        }
        pthread_mutex_unlock(&rq->sim->lock);
        rp_declare_req_done(&req);
}

/* Forgejo recoverTasks: tasks already given to this runner under the
 * request key, each with a fresh token. Returns how many were built into
 * out, or -ENOMEM. Lock held. */
static int recover_tasks(struct sim *s, const struct runner *r, const char *key,
                         struct rp_task *out, size_t max)
{
        struct task *found[MAX_TASK_CAPACITY];
        size_t n = state_tasks_by_request_key(s, r, key, found, max < MAX_TASK_CAPACITY ?
                                              max : MAX_TASK_CAPACITY);

        for (size_t i = 0; i < n; i++) {
                if (state_task_new_token(found[i]) < 0 || build_task(s, found[i], &out[i]) < 0) {
                        while (i-- > 0)
                                rp_task_done(&out[i]);
                        return -ENOMEM;
                }
        }
        return (int)n;
}

void rpcsrv_fetch_task(const struct sim_req *rq, struct sim_resp *rs)
{
        struct rp_fetch_task_req req = {0};
        struct rp_fetch_task_resp resp = {0};
        struct runner *r;
        char err[RP_ERR_MAX];
        const char *key = request_key(rq);
        json_t *j = rpc_body(rq, rs);
        struct rp_task *tasks = NULL;
        size_t n = 0;
        int rc;

        if (!j)
                return;
        rc = rp_fetch_task_req_from_json(j, &req, err, sizeof(err));
        json_decref(j);
        if (rc < 0) {
                resp_connect_error(rs, RP_CODE_INVALID_ARGUMENT, "%s", err);
                return;
        }
        if (key && strlen(key) > MAX_REQUEST_KEY) {
                resp_connect_error(rs, RP_CODE_INVALID_ARGUMENT, "request key is too long");
                return;
        }
        tasks = calloc(MAX_TASK_CAPACITY, sizeof(*tasks));
        if (!tasks) {
                resp_connect_error(rs, RP_CODE_INTERNAL, "out of memory");
                return;
        }
        pthread_mutex_lock(&rq->sim->lock);
        r = rpc_auth(rq, rs, false);
        if (!r)
                goto unlock;
        if (key) {
                rc = recover_tasks(rq->sim, r, key, tasks, MAX_TASK_CAPACITY);
                if (rc < 0) {
                        resp_connect_error(rs, RP_CODE_INTERNAL, "recover tasks failed");
                        goto unlock;
                }
                n = (size_t)rc;
                if (n) {
                        resp.tasks_version = 0;
                        goto answer;
                }
        }
        resp.tasks_version = state_tasks_version(rq->sim, r->owner_id, r->repo_id);
        if (req.tasks_version != resp.tasks_version) {
                int64_t cap = req.task_capacity > MAX_TASK_CAPACITY ? MAX_TASK_CAPACITY :
                              req.task_capacity;
                do {
                        struct task *t;
                        rc = state_pick_task(rq->sim, r, key, NULL, &t);
                        if (rc < 0 && n == 0) {
                                resp_connect_error(rs, RP_CODE_INTERNAL, "pick task: %s",
                                                   strerror(-rc));
                                goto unlock;
                        }
                        if (rc <= 0)
                                break;
                        if (build_task(rq->sim, t, &tasks[n]) < 0) {
                                if (n == 0) {
                                        resp_connect_error(rs, RP_CODE_INTERNAL, "pick task: out of memory");
                                        goto unlock;
                                }
                                break;
                        }
                        n++;
                } while ((int64_t)n < cap);
        }
answer:
        pthread_mutex_unlock(&rq->sim->lock);
        if (n) {
                resp.task = malloc(sizeof(*resp.task));
                if (!resp.task) {
                        for (size_t i = 0; i < n; i++)
                                rp_task_done(&tasks[i]);
                        free(tasks);
                        resp_connect_error(rs, RP_CODE_INTERNAL, "out of memory");
                        return;
                }
                *resp.task = tasks[0];
                if (n > 1) {
                        memmove(tasks, tasks + 1, (n - 1) * sizeof(*tasks));
                        resp.additional_tasks = tasks;
                        resp.n_additional_tasks = n - 1;
                        tasks = NULL;
                }
        }
        free(tasks);
        rpc_reply(rq, rs, rp_fetch_task_resp_to_json(&resp));
        rp_fetch_task_resp_done(&resp);
        return;
unlock:
        pthread_mutex_unlock(&rq->sim->lock);
        for (size_t i = 0; i < n; i++)
                rp_task_done(&tasks[i]);
        free(tasks);
}

void rpcsrv_fetch_single_task(const struct sim_req *rq, struct sim_resp *rs)
{
        struct rp_fetch_single_task_req req = {0};
        struct rp_fetch_single_task_resp resp = {0};
        struct rp_task tasks[2];
        struct runner *r;
        char err[RP_ERR_MAX];
        const char *key = request_key(rq);
        json_t *j = rpc_body(rq, rs);
        bool have = false;
        int rc;

        if (!j)
                return;
        rc = rp_fetch_single_task_req_from_json(j, &req, err, sizeof(err));
        json_decref(j);
        if (rc < 0) {
                resp_connect_error(rs, RP_CODE_INVALID_ARGUMENT, "%s", err);
                return;
        }
        if (key && strlen(key) > MAX_REQUEST_KEY) {
                resp_connect_error(rs, RP_CODE_INVALID_ARGUMENT, "request key is too long");
                goto out;
        }
        pthread_mutex_lock(&rq->sim->lock);
        r = rpc_auth(rq, rs, false);
        if (!r)
                goto unlock;
        if (key) {
                /* Two slots: enough to tell "one" from "more than one". */
                rc = recover_tasks(rq->sim, r, key, tasks, 2);
                if (rc < 0) {
                        resp_connect_error(rs, RP_CODE_INTERNAL, "recover tasks failed");
                        goto unlock;
                }
                if (rc > 1) {
                        struct task *all[MAX_TASK_CAPACITY];
                        size_t total = state_tasks_by_request_key(rq->sim, r, key, all,
                                                                  MAX_TASK_CAPACITY);
                        rp_task_done(&tasks[0]);
                        rp_task_done(&tasks[1]);
                        resp_connect_error(rs, RP_CODE_INTERNAL,
                                           "cannot recover %zu tasks because runner requested only one",
                                           total);
                        goto unlock;
                }
                if (rc == 1) {
                        resp.tasks_version = 0;
                        have = true;
                        goto answer;
                }
        }
        resp.tasks_version = state_tasks_version(rq->sim, r->owner_id, r->repo_id);
        if (req.tasks_version != resp.tasks_version) {
                const char *handle = req.handle && *req.handle ? req.handle : NULL;
                struct task *t;
                rc = state_pick_task(rq->sim, r, key, handle, &t);
                if (rc < 0) {
                        resp_connect_error(rs, RP_CODE_INTERNAL, "pick task: %s", strerror(-rc));
                        goto unlock;
                }
                if (rc == 1) {
                        if (build_task(rq->sim, t, &tasks[0]) < 0) {
                                resp_connect_error(rs, RP_CODE_INTERNAL, "pick task: out of memory");
                                goto unlock;
                        }
                        have = true;
                }
        }
answer:
        pthread_mutex_unlock(&rq->sim->lock);
        if (have) {
                resp.task = malloc(sizeof(*resp.task));
                if (!resp.task) {
                        rp_task_done(&tasks[0]);
                        resp_connect_error(rs, RP_CODE_INTERNAL, "out of memory");
                        goto out;
                }
                *resp.task = tasks[0];
        }
        rpc_reply(rq, rs, rp_fetch_single_task_resp_to_json(&resp));
        rp_fetch_single_task_resp_done(&resp);
        goto out;
unlock:
        pthread_mutex_unlock(&rq->sim->lock);
out:
        rp_fetch_single_task_req_done(&req);
}

static enum job_status status_of_result(enum rp_result res)
{
        switch (res) {
        case RP_RESULT_SUCCESS: return JOB_SUCCESS;
        case RP_RESULT_CANCELLED: return JOB_CANCELLED;
        case RP_RESULT_SKIPPED: return JOB_SKIPPED;
        case RP_RESULT_FAILURE:
        case RP_RESULT_UNSPECIFIED:
        default: return JOB_FAILURE;
        }
}

static enum rp_result result_of_status(enum job_status st)
{
        switch (st) {
        case JOB_SUCCESS: return RP_RESULT_SUCCESS;
        case JOB_FAILURE: return RP_RESULT_FAILURE;
        case JOB_CANCELLED: return RP_RESULT_CANCELLED;
        case JOB_SKIPPED: return RP_RESULT_SKIPPED;
        case JOB_WAITING:
        case JOB_RUNNING: return RP_RESULT_UNSPECIFIED;
        }
        return RP_RESULT_UNSPECIFIED;
}

/* The task named by id if it belongs to r; otherwise answers internal like
 * Forgejo (prefix is "update task" or "get task"). Lock held. */
static struct task *owned_task(const struct sim_req *rq, struct sim_resp *rs,
                               const struct runner *r, int64_t id, const char *prefix)
{
        struct task *t = state_task_by_id(rq->sim, id);

        if (!t) {
                resp_connect_error(rs, RP_CODE_INTERNAL, "%s: task %lld does not exist", prefix,
                                   (long long)id);
                return NULL;
        }
        if (t->runner != r) {
                resp_connect_error(rs, RP_CODE_INTERNAL, "%s: invalid runner for task", prefix);
                return NULL;
        }
        return t;
}

void rpcsrv_update_task(const struct sim_req *rq, struct sim_resp *rs)
{
        struct rp_update_task_req req = {0};
        struct rp_update_task_resp resp = {0};
        struct runner *r;
        struct task *t;
        char err[RP_ERR_MAX];
        json_t *j = rpc_body(rq, rs), *out = NULL;
        const char *k;
        json_t *v;
        int rc;

        if (!j)
                return;
        rc = rp_update_task_req_from_json(j, &req, err, sizeof(err));
        json_decref(j);
        if (rc < 0) {
                resp_connect_error(rs, RP_CODE_INVALID_ARGUMENT, "%s", err);
                return;
        }
        pthread_mutex_lock(&rq->sim->lock);
        r = rpc_auth(rq, rs, true);
        if (!r || !(t = owned_task(rq, rs, r, req.state.id, "update task")))
                goto unlock;
        if (t->status == JOB_RUNNING) {
                if (req.state.result != RP_RESULT_UNSPECIFIED)
                        state_task_finish(rq->sim, t, status_of_result(req.state.result));
                else
                        state_task_touch(rq->sim, t);
        }
        if (req.outputs) {
                json_object_foreach(req.outputs, k, v) {
                        if (strlen(k) > MAX_OUTPUT_KEY || strlen(json_string_value(v)) > MAX_OUTPUT_VALUE)
                                continue;
                        if (!json_object_get(t->outputs, k))
                                json_object_set(t->outputs, k, v);
                }
        }
        json_object_foreach(t->outputs, k, v)
                if (rp_strlist_push(&resp.sent_outputs, k) < 0)
                        break;
        resp.state.id = req.state.id;
        resp.state.result = result_of_status(t->status);
        if (req.state.result != RP_RESULT_UNSPECIFIED) {
                /* A final result lets idle runners of this runner's scope
                 * query again (CONCURRENCY_GROUP_QUEUE_ENABLED, the
                 * default), and ends an ephemeral runner. */
                state_tasks_version_bump(rq->sim, r->owner_id, r->repo_id);
                if (r->ephemeral)
                        state_runner_delete(rq->sim, r);
        }
        pthread_mutex_unlock(&rq->sim->lock);
        out = rp_update_task_resp_to_json(&resp);
        rpc_reply(rq, rs, out);
        rp_update_task_resp_done(&resp);
        rp_update_task_req_done(&req);
        return;
unlock:
        pthread_mutex_unlock(&rq->sim->lock);
        rp_update_task_req_done(&req);
}

void rpcsrv_update_log(const struct sim_req *rq, struct sim_resp *rs)
{
        struct rp_update_log_req req = {0};
        struct rp_update_log_resp resp = {0};
        struct runner *r;
        struct task *t;
        char err[RP_ERR_MAX];
        json_t *j = rpc_body(rq, rs);
        int64_t ack, n;
        int rc;

        if (!j)
                return;
        rc = rp_update_log_req_from_json(j, &req, err, sizeof(err));
        json_decref(j);
        if (rc < 0) {
                resp_connect_error(rs, RP_CODE_INVALID_ARGUMENT, "%s", err);
                return;
        }
        pthread_mutex_lock(&rq->sim->lock);
        r = rpc_auth(rq, rs, true);
        if (!r || !(t = owned_task(rq, rs, r, req.task_id, "get task")))
                goto unlock;
        if (t->status == JOB_RUNNING)
                state_task_touch(rq->sim, t);
        ack = t->log_length;
        n = (int64_t)req.n_rows;
        if (n == 0 || req.index > ack || req.index + n <= ack || req.index < 0) {
                resp.ack_index = ack;
        } else if (t->log_archived) {
                resp_connect_error(rs, RP_CODE_ALREADY_EXISTS, "log file has been archived");
                goto unlock;
        } else {
                int64_t skip = ack - req.index;
                rc = state_job_log_append(t->job, req.rows + skip, (size_t)(n - skip));
                if (rc < 0) {
                        resp_connect_error(rs, rc == -ENOSPC ? RP_CODE_RESOURCE_EXHAUSTED :
                                           RP_CODE_INTERNAL, "write logs: %s",
                                           rc == -ENOSPC ? "log row limit reached" : "out of memory");
                        goto unlock;
                }
                t->log_length += n - skip;
                if (req.no_more)
                        t->log_archived = true;
                resp.ack_index = t->log_length;
        }
        pthread_mutex_unlock(&rq->sim->lock);
        rpc_reply(rq, rs, rp_update_log_resp_to_json(&resp));
        rp_update_log_req_done(&req);
        return;
unlock:
        pthread_mutex_unlock(&rq->sim->lock);
        rp_update_log_req_done(&req);
}
