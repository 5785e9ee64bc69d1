/* bendpoint.c: the runner-protocol endpoint the broker's workers talk to
 * (Connect unary over HTTP/1.1, binary protobuf or JSON, gzip either
 * way), on its own listener and the daemon's loop. Owns decoding,
 * authentication by the worker's minted credentials, and the Connect
 * answers; what a call means is broker.c's. Never answers a caller with
 * another worker's task, never lets a bad body reach the broker. */
#include "engine/broker_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/broker.h"
#include "engine/brelay.h"
#include "http/server.h"
#include "util/log.h"

/* A task payload or a burst of log rows, and then some. */
#define BODY_MAX (8u << 20)

static void send_error(struct http_response *resp, enum rp_code code, const char *msg)
{
        struct rp_error e = { .code = code };
        json_t *j;
        char *text;

        snprintf(e.message, sizeof(e.message), "%s", msg);
        j = rp_error_to_json(&e);
        text = j ? json_dumps(j, JSON_COMPACT) : NULL;
        /* Connect errors are JSON whatever the request's codec. */
        http_response_text(resp, rp_code_http_status(code), "application/json", text ? text : "{}");
        free(text);
        json_decref(j);
}

/* A call turned away: answered with a Connect error and logged once with
 * its reason, so an operator sees what a worker (or whoever reaches the
 * endpoint) sent. w: the caller, when it authenticated. */
static int refuse(struct http_request *req, struct http_response *resp, const char *method,
                  const struct bworker *w, enum rp_code code, const char *reason)
{
        log_warn("broker", "worker call refused", KS("method", method), KS("instance", w ? w->instance : ""),
                 KS("remote", http_request_remote(req)), KS("code", rp_code_name(code)), KS("reason", reason));
        send_error(resp, code, reason);
        return HTTP_DONE;
}

/* A 200 answer of len bytes in codec, gzipped when the caller accepts it
 * and it is worth it. */
static void set_body(struct http_response *resp, enum rpcodec codec, bool gzip, const void *body, size_t len)
{
        void *gz = NULL;
        size_t gzlen = 0;

        resp->status = 200;
        resp->content_type = rpcodec_content_type(codec);
        buffer_reset(&resp->body);
        if (gzip && len >= RPCODEC_GZIP_MIN && rpcodec_gzip(body, len, &gz, &gzlen) == 0) {
                http_response_header(resp, "Content-Encoding", "gzip");
                buffer_append(&resp->body, gz, gzlen);
        } else {
                buffer_append(&resp->body, body, len);
        }
        if (gz)
                explicit_bzero(gz, gzlen);
        free(gz);
}

/* msg in the caller's codec, gzipped when it asked and it is worth it. */
static void send_message(struct http_response *resp, const char *method, enum rpcodec codec, bool gzip,
                         json_t *msg)
{
        void *body = NULL;
        size_t len = 0;
        char err[RP_ERR_MAX] = "";

        if (rpcodec_encode(method, RPCODEC_RESPONSE, codec, msg, &body, &len, err) < 0) {
                log_warn("broker", "cannot encode an answer to a worker", KS("method", method), KS("reason", err));
                send_error(resp, RP_CODE_INTERNAL, "cannot encode the answer");
                return;
        }
        set_body(resp, codec, gzip, body, len);
        /* Task payloads carry the job's secrets. */
        explicit_bzero(body, len);
        free(body);
}

void bendpoint_answer(struct http_request *req, enum rpcodec codec, bool gzip, const char *method,
                      json_t *msg, const struct rp_error *err)
{
        struct http_response *resp = http_request_response(req);
        char full[64];

        snprintf(full, sizeof(full), RP_SVC_RUNNER "%s", method);
        if (msg)
                send_message(resp, full, codec, gzip, msg);
        else
                send_error(resp, err ? err->code : RP_CODE_INTERNAL, err ? err->message : "failed");
        http_response_send(req);
}

void bendpoint_answer_raw(struct http_request *req, bool gzip, const void *body, size_t len)
{
        set_body(http_request_response(req), RPCODEC_PROTO, gzip, body, len);
        http_response_send(req);
}

static int fetch(struct broker *b, struct bworker *w, const char *method, struct http_request *req,
                 struct http_response *resp, enum rpcodec codec, bool gzip)
{
        json_t *task = NULL, *out;
        const void *pb = NULL;
        size_t pb_len = 0;
        int r = btask_worker_fetch(b, w, http_request_header(req, RP_HDR_REQUEST_KEY), &task, &pb, &pb_len);

        if (r < 0) {
                send_error(resp, RP_CODE_UNAVAILABLE, "the task cannot be handed out now; try again");
                return HTTP_DONE;
        }
        if (codec == RPCODEC_PROTO && pb) {
                /* The task as the forge sent it, fields this build does
                 * not know included. */
                void *body = NULL;
                size_t len = 0;
                if (brelay_fetch_answer(method, pb, pb_len, 1, &body, &len) == 0) {
                        set_body(resp, RPCODEC_PROTO, gzip, body, len);
                        explicit_bzero(body, len);
                        free(body);
                        json_decref(task);
                        return HTTP_DONE;
                }
        }
        /* The version only tells a polling runner whether to ask again; a
         * one-job worker asks once. */
        out = json_pack("{s:s}", "tasksVersion", "1");
        if (out && task)
                json_object_set(out, "task", task);
        if (!out)
                send_error(resp, RP_CODE_RESOURCE_EXHAUSTED, "out of memory");
        else
                send_message(resp, method, codec, gzip, out);
        json_decref(out);
        json_decref(task);
        return HTTP_DONE;
}

static int declare(struct bworker *w, const char *method, json_t *msg, struct http_response *resp,
                   enum rpcodec codec, bool gzip)
{
        json_t *rn = json_object(), *out = json_object();

        if (rn && out) {
                json_object_set_new(rn, "id", json_string("1"));
                json_object_set_new(rn, "uuid", json_string(w->uuid));
                json_object_set_new(rn, "name", json_string(w->instance));
                if (json_is_string(json_object_get(msg, "version")))
                        json_object_set(rn, "version", json_object_get(msg, "version"));
                if (json_is_array(json_object_get(msg, "labels")))
                        json_object_set(rn, "labels", json_object_get(msg, "labels"));
                json_object_set(out, "runner", rn);
                send_message(resp, method, codec, gzip, out);
        } else {
                send_error(resp, RP_CODE_RESOURCE_EXHAUSTED, "out of memory");
        }
        json_decref(rn);
        json_decref(out);
        return HTTP_DONE;
}

static int handle(struct http_request *req, struct http_response *resp, void *ud)
{
        struct broker *b = ud;
        const char *svc = http_request_param(req, "svc"), *name = http_request_param(req, "method");
        char method[128], err[RP_ERR_MAX] = "";
        enum rpcodec codec;
        bool gz_in = false, gz_out;
        void *inflated = NULL;
        const char *body;
        size_t len;
        json_t *msg = NULL;
        int r, ret = HTTP_DONE;

        snprintf(method, sizeof(method), "%s/%s", svc ? svc : "", name ? name : "");
        if (rpcodec_from_content_type(http_request_header(req, "Content-Type"), &codec, err) < 0) {
                log_warn("broker", "worker call refused", KS("method", method),
                         KS("remote", http_request_remote(req)), KI("status", 415), KS("reason", err));
                http_response_text(resp, 415, "text/plain", err);
                return HTTP_DONE;
        }
        if (rpcodec_parse_encoding(http_request_header(req, "Content-Encoding"), &gz_in, err) < 0)
                return refuse(req, resp, method, NULL, RP_CODE_UNIMPLEMENTED, err);
        gz_out = rpcodec_accepts_gzip(http_request_header(req, "Accept-Encoding"));
        body = http_request_body(req, &len);
        if (gz_in) {
                /* Bounded: a gzip bomb costs BODY_MAX, no more. */
                if ((r = rpcodec_gunzip(body, len, BODY_MAX, &inflated, &len, err)) < 0)
                        return refuse(req, resp, method, NULL,
                                      r == -EMSGSIZE ? RP_CODE_RESOURCE_EXHAUSTED : RP_CODE_INVALID_ARGUMENT, err);
                body = inflated;
        }
        r = rpcodec_decode(method, RPCODEC_REQUEST, codec, body, len, &msg, err);
        if (r == -ENOENT) {
                refuse(req, resp, method, NULL, RP_CODE_UNIMPLEMENTED, "no such method");
                goto out;
        }
        if (r < 0) {
                refuse(req, resp, method, NULL,
                       r == -EMSGSIZE ? RP_CODE_RESOURCE_EXHAUSTED : RP_CODE_INVALID_ARGUMENT, err);
                goto out;
        }
        if (strcmp(method, RP_SVC_PING "Ping") == 0) {
                const char *data = json_string_value(json_object_get(msg, "data"));
                char hello[600];
                snprintf(hello, sizeof(hello), "Hello, %s!", data ? data : "");
                json_t *out = json_pack("{s:s}", "data", hello);
                send_message(resp, method, codec, gz_out, out);
                json_decref(out);
                goto out;
        }
        if (strcmp(method, RP_SVC_RUNNER "Register") == 0) {
                refuse(req, resp, method, NULL, RP_CODE_PERMISSION_DENIED,
                       "workers of forgescale do not register: their credentials come with them");
                goto out;
        }
        struct bworker *w = broker_worker_auth(b, http_request_header(req, RP_HDR_UUID),
                                               http_request_header(req, RP_HDR_TOKEN));
        if (!w) {
                /* The Connect message is the forge's own; the log says
                 * more (a revoked worker, or no credentials at all). */
                log_warn("broker", "worker call refused", KS("method", method),
                         KS("remote", http_request_remote(req)), KS("code", rp_code_name(RP_CODE_UNAUTHENTICATED)),
                         KS("reason", http_request_header(req, RP_HDR_UUID) ?
                                      "unknown worker uuid or wrong token (or its instance ended)" :
                                      "no worker credentials"));
                send_error(resp, RP_CODE_UNAUTHENTICATED, "unregistered runner");
                goto out;
        }
        if (strcmp(method, RP_SVC_RUNNER "Declare") == 0) {
                ret = declare(w, method, msg, resp, codec, gz_out);
        } else if (strcmp(method, RP_SVC_RUNNER "FetchTask") == 0 ||
                   strcmp(method, RP_SVC_RUNNER "FetchSingleTask") == 0) {
                ret = fetch(b, w, method, req, resp, codec, gz_out);
        } else if (strcmp(method, RP_SVC_RUNNER "UpdateTask") == 0 ||
                   strcmp(method, RP_SVC_RUNNER "UpdateLog") == 0) {
                r = btask_worker_relay(b, w, name, msg, body, len, req, codec, gz_out);
                if (r == 0)
                        ret = HTTP_DEFER;
                else if (r == -EACCES)
                        refuse(req, resp, method, w, RP_CODE_PERMISSION_DENIED, "not this runner's task");
                else if (r == -ESTALE)
                        refuse(req, resp, method, w, RP_CODE_FAILED_PRECONDITION, "this runner has no task");
                else if (r == -EPERM)
                        refuse(req, resp, method, w, RP_CODE_FAILED_PRECONDITION,
                               "this runner has not fetched its task");
                else if (r == -ERANGE)
                        refuse(req, resp, method, w, RP_CODE_INVALID_ARGUMENT, "log index out of range");
                else
                        send_error(resp, RP_CODE_UNAVAILABLE, "the forge cannot be reached; try again");
        } else {
                refuse(req, resp, method, w, RP_CODE_UNIMPLEMENTED, "not served to workers");
        }
out:
        json_decref(msg);
        free(inflated);
        return ret;
}

/* What the server refuses before the handler sees it (a body over
 * BODY_MAX, headers too large) is logged here; the handler logs its own
 * refusals. */
static void access_log(const struct http_access *a, void *ud)
{
        const char *why = a->status == 413 ? "request body over 8 MiB" :
                          a->status == 431 ? "request headers too large" :
                          a->status == 0 && a->bytes_in > BODY_MAX ? "request body far over 8 MiB; connection closed" :
                          NULL;

        if (why)
                log_warn("broker", "worker call refused", KS("path", a->path), KS("remote", a->remote),
                         KI("status", a->status), KS("reason", why));
        else
                log_debug("broker", "worker call", KS("path", a->path), KS("remote", a->remote),
                          KI("status", a->status), KI("ms", a->duration_ms));
}

/* Connections the endpoint takes: a worker keeps one (two while a call
 * overlaps a report), and every local worker, or every worker of one
 * container host, comes from the same address, so there is no limit per
 * address below the total (every call but Ping is authenticated). Sized
 * for the broker pools' max_runners with room for pools a reload adds. */
static unsigned connections_for(const struct daemon *d)
{
        uint64_t workers = 0;

        for (size_t p = 0; p < d->cfg->n_pools; p++)
                if (d->cfg->pools[p].mode == CONFIG_MODE_BROKER && d->cfg->pools[p].max_runners > 0)
                        workers += (uint64_t)d->cfg->pools[p].max_runners;
        uint64_t n = 2 * workers + 64;
        return n < 4096 ? 4096 : n > 1000000 ? 1000000 : (unsigned)n;
}

int bendpoint_start(struct broker *b, const char *listen)
{
        unsigned conns = connections_for(b->d);
        struct http_server_config cfg = {
                .listen = listen, .max_body = BODY_MAX, .max_response = BODY_MAX * 2,
                .access_log = access_log,
                .max_per_client = conns, .max_connections = conns,
                /* A burst of workers starting at once connects at once. */
                .listen_backlog = (int)(conns < 65535 ? conns : 65535),
                /* A worker's headers are a few hundred bytes; the pool
                 * each connection holds for them is the endpoint's memory
                 * per worker. */
                .max_header = 8u << 10,
        };
        int r = http_server_new(b->d->loop, &cfg, &b->http);

        if (r < 0) {
                log_error("broker", "cannot listen for workers", KS("listen", listen), KERR(r));
                return r;
        }
        if ((r = http_server_route(b->http, "POST", "/api/actions/{svc}/{method}", handle, b)) < 0) {
                http_server_free(b->http);
                b->http = NULL;
                return r;
        }
        return 0;
}

void bendpoint_stop(struct broker *b)
{
        http_server_free(b->http);
        b->http = NULL;
}

int broker_port(const struct daemon *d)
{
        return d->broker && d->broker->http ? http_server_port(d->broker->http) : 0;
}
