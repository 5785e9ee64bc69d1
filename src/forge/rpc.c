/* rpc.c: Connect unary calls with the JSON codec over httpc (see rpc.h).
 * Owns the request headers (the token header is wiped after each call) and
 * the mapping of HTTP answers to Connect errors. Never logs and never puts
 * the token into an error message. */
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

/* Fills e from a non-200 answer: the Connect error body when usable, the
 * HTTP status otherwise. */
static void error_from_answer(const struct httpc_resp *resp, struct rp_error *e)
{
        struct rp_error tmp;
        json_t *j = NULL;
        char msg[64];

        if (resp->body && resp->len > 0)
                j = json_loadb(resp->body, resp->len, JSON_REJECT_DUPLICATES, NULL);
        memset(&tmp, 0, sizeof(tmp));
        if (j && json_is_object(j) && rp_error_from_json(j, &tmp) >= 0 &&
            tmp.code != RP_CODE_OK) {
                if (e)
                        *e = tmp;
        } else {
                snprintf(msg, sizeof(msg), "HTTP status %ld", resp->status);
                set_err(e, rp_code_from_http_status((int)resp->status), msg);
        }
        json_decref(j);
}

int rpc_call(struct rpc_client *c, const char *method, json_t *req,
             const char *request_key, json_t **ret_resp, struct rp_error *ret_err)
{
        char url[1024], h_uuid[RPC_HDR_MAX], h_token[RPC_HDR_MAX], h_key[RPC_HDR_MAX];
        const char *headers[7];
        size_t nh = 0;
        struct httpc_resp resp;
        struct httpc_req hreq;
        char *body = NULL;
        json_t *j = NULL;
        int r, n;

        if (ret_err)
                memset(ret_err, 0, sizeof(*ret_err));
        n = snprintf(url, sizeof(url), "%s%s%s", c->base_url, RP_PATH_PREFIX, method);
        if (n < 0 || (size_t)n >= sizeof(url)) {
                set_err(ret_err, RP_CODE_INVALID_ARGUMENT, "URL too long");
                return -ENAMETOOLONG;
        }
        headers[nh++] = "Content-Type: application/json";
        headers[nh++] = "Connect-Protocol-Version: 1";
        if (c->uuid) {
                n = snprintf(h_uuid, sizeof(h_uuid), "%s: %s", RP_HDR_UUID, c->uuid);
                if (n < 0 || (size_t)n >= sizeof(h_uuid))
                        goto too_long;
                headers[nh++] = h_uuid;
        }
        if (c->token) {
                n = snprintf(h_token, sizeof(h_token), "%s: %s", RP_HDR_TOKEN, c->token);
                if (n < 0 || (size_t)n >= sizeof(h_token))
                        goto too_long;
                headers[nh++] = h_token;
        }
        if (request_key) {
                n = snprintf(h_key, sizeof(h_key), "%s: %s", RP_HDR_REQUEST_KEY, request_key);
                if (n < 0 || (size_t)n >= sizeof(h_key))
                        goto too_long;
                headers[nh++] = h_key;
        }
        headers[nh] = NULL;

        body = req ? json_dumps(req, JSON_COMPACT) : strdup("{}");
        if (!body) {
                r = -ENOMEM;
                set_err(ret_err, RP_CODE_RESOURCE_EXHAUSTED, "out of memory");
                goto out_hdr;
        }
        hreq = (struct httpc_req){
                .method = "POST",
                .url = url,
                .headers = headers,
                .body = body,
                .body_len = strlen(body),
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
        if (resp.status != 200) {
                error_from_answer(&resp, ret_err);
                r = -EPROTO;
                goto out_resp;
        }
        j = json_loadb(resp.body, resp.len, JSON_REJECT_DUPLICATES, NULL);
        if (!j || !json_is_object(j)) {
                json_decref(j);
                set_err(ret_err, RP_CODE_INTERNAL, "response body is not a JSON object");
                r = -EBADMSG;
                goto out_resp;
        }
        *ret_resp = j;
        r = 0;
out_resp:
        httpc_resp_done(&resp);
out_hdr:
        free(body);
        explicit_bzero(h_token, sizeof(h_token));
        return r;
too_long:
        set_err(ret_err, RP_CODE_INVALID_ARGUMENT, "header value too long");
        explicit_bzero(h_token, sizeof(h_token));
        return -ENAMETOOLONG;
}
