/* rpc.c: Connect unary calls in either codec over httpc (see rpc.h).
 * Owns the request headers (the token header is wiped after each call),
 * the codec and gzip of both directions, and the mapping of HTTP answers
 * to Connect errors. Never logs and never puts the token into an error
 * message. */
#include "forge/rpc.h"

#include "util/strutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A Task carries the workflow YAML and contexts; 4 MiB is far above any
 * real payload while still bounding a hostile server. */
#define RPC_MAX_RESPONSE (4u << 20)
#define RPC_HDR_MAX 512

static void wipe_free(char *s)
{
        if (!s)
                return;
        explicit_bzero(s, strlen(s));
        free(s);
}

int rpc_client_init(struct rpc_client *c, const char *base_url,
                    const char *uuid, const char *token, long timeout_ms)
{
        int r = 0;
        size_t n;

        memset(c, 0, sizeof(*c));
        c->timeout_ms = timeout_ms;
        c->codec = RPCODEC_PROTO;
        c->http = httpc_new();
        if (!c->http)
                return -ENOMEM;
        c->base_url = strutil_dup_or_null(base_url ? base_url : "", &r);
        c->uuid = strutil_dup_or_null(uuid, &r);
        c->token = strutil_dup_or_null(token, &r);
        if (r < 0) {
                rpc_client_done(c);
                return r;
        }
        n = strlen(c->base_url);
        while (n > 0 && c->base_url[n - 1] == '/')
                c->base_url[--n] = '\0';
        return 0;
}

void rpc_client_done(struct rpc_client *c)
{
        if (!c)
                return;
        httpc_free(c->http);
        free(c->base_url);
        free(c->uuid);
        wipe_free(c->token);
        memset(c, 0, sizeof(*c));
}

static void set_err(struct rp_error *e, enum rp_code code, const char *msg)
{
        if (!e)
                return;
        e->code = code;
        snprintf(e->message, sizeof(e->message), "%s", msg ? msg : "");
}

/* Fills e from a non-200 answer (body already inflated): the Connect
 * error body, JSON whatever the codec, when usable; the HTTP status
 * otherwise. */
static void error_from_answer(long status, const char *body, size_t len, struct rp_error *e)
{
        struct rp_error tmp;
        json_t *j = NULL;
        char msg[64];

        if (body && len > 0)
                j = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
        memset(&tmp, 0, sizeof(tmp));
        if (j && json_is_object(j) && rp_error_from_json(j, &tmp) >= 0 &&
            tmp.code != RP_CODE_OK) {
                if (e)
                        *e = tmp;
        } else {
                snprintf(msg, sizeof(msg), "HTTP status %ld", status);
                set_err(e, rp_code_from_http_status((int)status), msg);
        }
        json_decref(j);
}

static int add_header(char *buf, size_t n, const char *name, const char *value)
{
        int w = snprintf(buf, n, "%s: %s", name, value);

        return w < 0 || (size_t)w >= n ? -ENAMETOOLONG : 0;
}

/* The request body in the client's codec, gzipped when asked and worth it. */
static int request_body(struct rpc_client *c, const char *method, json_t *req, void **ret,
                        size_t *ret_len, bool *ret_gzip, struct rp_error *e)
{
        char err[RP_ERR_MAX];
        json_t *empty = NULL;
        void *body = NULL, *z;
        size_t len = 0, zlen;
        int r;

        if (!req && !(req = empty = json_object()))
                return -ENOMEM;
        r = rpcodec_encode(method, RPCODEC_REQUEST, c->codec, req, &body, &len, err);
        json_decref(empty);
        if (r < 0) {
                set_err(e, r == -ENOMEM ? RP_CODE_RESOURCE_EXHAUSTED : RP_CODE_INVALID_ARGUMENT, err);
                return r == -ENOMEM ? r : -EINVAL;
        }
        *ret_gzip = false;
        if (c->gzip_requests && len >= RPCODEC_GZIP_MIN) {
                if ((r = rpcodec_gzip(body, len, &z, &zlen)) < 0) {
                        free(body);
                        set_err(e, RP_CODE_RESOURCE_EXHAUSTED, "out of memory");
                        return r;
                }
                free(body);
                body = z;
                len = zlen;
                *ret_gzip = true;
        }
        *ret = body;
        *ret_len = len;
        return 0;
}

/* The answer's body as sent before Content-Encoding: resp's own buffer,
 * or *ret_owned (to free) when it was gzipped. */
static int answer_body(const struct httpc_resp *resp, const char **ret, size_t *ret_len,
                       void **ret_owned, struct rp_error *e)
{
        char err[RP_ERR_MAX], msg[sizeof(e->message)];
        bool gz;
        int r;

        *ret_owned = NULL;
        if (rpcodec_parse_encoding(resp->content_encoding, &gz, err) < 0) {
                snprintf(msg, sizeof(msg), "response: %s", err);
                set_err(e, RP_CODE_INTERNAL, msg);
                return -EBADMSG;
        }
        if (!gz) {
                *ret = resp->body;
                *ret_len = resp->len;
                return 0;
        }
        r = rpcodec_gunzip(resp->body, resp->len, RPC_MAX_RESPONSE, ret_owned, ret_len, err);
        if (r < 0) {
                snprintf(msg, sizeof(msg), "response: %s", err);
                set_err(e, r == -ENOMEM ? RP_CODE_RESOURCE_EXHAUSTED : RP_CODE_INTERNAL, msg);
                return r == -ENOMEM ? r : -EBADMSG;
        }
        *ret = *ret_owned;
        return 0;
}

int rpc_call(struct rpc_client *c, const char *method, json_t *req,
             const char *request_key, json_t **ret_resp, struct rp_error *ret_err)
{
        char url[1024], h_ct[64], h_uuid[RPC_HDR_MAX], h_token[RPC_HDR_MAX], h_key[RPC_HDR_MAX];
        char err[RP_ERR_MAX], msg[sizeof(ret_err->message)];
        const char *headers[9], *abody;
        size_t nh = 0, alen, len = 0;
        struct httpc_resp resp;
        struct httpc_req hreq;
        void *body = NULL, *inflated = NULL;
        enum rpcodec got;
        bool gz = false;
        json_t *j = NULL;
        int r, n;

        if (ret_err)
                memset(ret_err, 0, sizeof(*ret_err));
        n = snprintf(url, sizeof(url), "%s%s%s", c->base_url, RP_PATH_PREFIX, method);
        if (n < 0 || (size_t)n >= sizeof(url)) {
                set_err(ret_err, RP_CODE_INVALID_ARGUMENT, "URL too long");
                return -ENAMETOOLONG;
        }
        if (add_header(h_ct, sizeof(h_ct), "Content-Type", rpcodec_content_type(c->codec)) < 0 ||
            (c->uuid && add_header(h_uuid, sizeof(h_uuid), RP_HDR_UUID, c->uuid) < 0) ||
            (c->token && add_header(h_token, sizeof(h_token), RP_HDR_TOKEN, c->token) < 0) ||
            (request_key && add_header(h_key, sizeof(h_key), RP_HDR_REQUEST_KEY, request_key) < 0)) {
                set_err(ret_err, RP_CODE_INVALID_ARGUMENT, "header value too long");
                r = -ENAMETOOLONG;
                goto out_hdr;
        }
        r = request_body(c, method, req, &body, &len, &gz, ret_err);
        if (r < 0)
                goto out_hdr;
        headers[nh++] = h_ct;
        headers[nh++] = "Connect-Protocol-Version: 1";
        /* Connect servers gzip answers of 1 KiB or more only when asked. */
        headers[nh++] = "Accept-Encoding: gzip";
        if (gz)
                headers[nh++] = "Content-Encoding: gzip";
        if (c->uuid)
                headers[nh++] = h_uuid;
        if (c->token)
                headers[nh++] = h_token;
        if (request_key)
                headers[nh++] = h_key;
        headers[nh] = NULL;

        hreq = (struct httpc_req){
                .method = "POST",
                .url = url,
                .headers = headers,
                .body = body,
                .body_len = len,
                .timeout_ms = c->timeout_ms,
                .max_response = RPC_MAX_RESPONSE,
                .ca_file = c->ca_file,
                .insecure = c->insecure,
        };
        r = httpc_do(c->http, &hreq, &resp);
        if (r < 0) {
                set_err(ret_err, r == -ETIMEDOUT ? RP_CODE_DEADLINE_EXCEEDED : RP_CODE_UNAVAILABLE,
                        resp.errbuf[0] ? resp.errbuf : strerror(-r));
                goto out_resp;
        }
        if ((r = answer_body(&resp, &abody, &alen, &inflated, ret_err)) < 0) {
                if (resp.status != 200 && r == -EBADMSG) {
                        /* The status still says what went wrong. */
                        error_from_answer(resp.status, NULL, 0, ret_err);
                        r = -EPROTO;
                }
                goto out_resp;
        }
        if (resp.status != 200) {
                error_from_answer(resp.status, abody, alen, ret_err);
                r = -EPROTO;
                goto out_resp;
        }
        /* A Connect client checks the answer is in the codec it asked in. */
        if (rpcodec_from_content_type(resp.content_type, &got, err) < 0 || got != c->codec) {
                snprintf(msg, sizeof(msg), "response Content-Type \"%.60s\", expected %s",
                         resp.content_type, rpcodec_content_type(c->codec));
                set_err(ret_err, RP_CODE_INTERNAL, msg);
                r = -EBADMSG;
                goto out_resp;
        }
        r = rpcodec_decode(method, RPCODEC_RESPONSE, c->codec, abody, alen, &j, err);
        if (r < 0) {
                snprintf(msg, sizeof(msg), "response: %s", err);
                set_err(ret_err, r == -ENOMEM ? RP_CODE_RESOURCE_EXHAUSTED : RP_CODE_INTERNAL, msg);
                r = r == -ENOMEM ? r : -EBADMSG;
                goto out_resp;
        }
        *ret_resp = j;
        r = 0;
out_resp:
        free(inflated);
        httpc_resp_done(&resp);
out_hdr:
        free(body);
        explicit_bzero(h_token, sizeof(h_token));
        return r;
}
