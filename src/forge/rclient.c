/* rclient.c: see rclient.h. Every call is one hmulti transfer; the client
 * keeps a list of its calls so that freeing it cancels them. Bodies in
 * the proto codec go through rpcodec; answers other than 200 are Connect
 * errors in JSON whatever the codec. */
#include "forge/rclient.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forge/rpcodec.h"
#include "http/hmulti.h"
#include "util/strutil.h"

#define HDR_MAX 512

struct rclient {
        struct hmulti *hm;
        char *base_url;
        char *uuid;
        char *token;
        enum rclient_codec codec;
        long timeout_ms;
        char *ca_file;
        bool insecure;
        struct rclient_call *calls;     /* in flight, doubly linked */
        size_t n_calls;
};

struct rclient_call {
        struct rclient *c;
        struct rclient_call *prev, *next;
        struct hmulti_xfer *xfer;
        enum rclient_codec codec;
        char method[96];
        rclient_cb cb;
        rclient_raw_cb raw_cb;
        void *ud;
};

static void wipe_free(char *s)
{
        if (!s)
                return;
        explicit_bzero(s, strlen(s));
        free(s);
}

int rclient_new(struct hmulti *hm, const struct rclient_opts *o, struct rclient **ret)
{
        struct rclient *c;
        int r = 0;

        if (!o->base_url || !o->base_url[0])
                return -EINVAL;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->hm = hm;
        c->codec = o->codec;
        c->timeout_ms = o->timeout_ms;
        c->insecure = o->insecure;
        c->base_url = strutil_dup_or_null(o->base_url, &r);
        c->ca_file = strutil_dup_or_null(o->ca_file, &r);
        if (r < 0) {
                rclient_free(c);
                return r;
        }
        size_t n = strlen(c->base_url);
        while (n > 0 && c->base_url[n - 1] == '/')
                c->base_url[--n] = '\0';
        *ret = c;
        return 0;
}

static void unlink_call(struct rclient_call *k)
{
        struct rclient *c = k->c;

        if (k->prev)
                k->prev->next = k->next;
        else
                c->calls = k->next;
        if (k->next)
                k->next->prev = k->prev;
        c->n_calls--;
}

void rclient_cancel(struct rclient_call *k)
{
        if (!k)
                return;
        hmulti_cancel(k->xfer);
        unlink_call(k);
        free(k);
}

void rclient_free(struct rclient *c)
{
        if (!c)
                return;
        while (c->calls)
                rclient_cancel(c->calls);
        free(c->base_url);
        free(c->uuid);
        wipe_free(c->token);
        free(c->ca_file);
        free(c);
}

int rclient_set_identity(struct rclient *c, const char *uuid, const char *token)
{
        int r = 0;
        char *u = strutil_dup_or_null(uuid, &r), *t = strutil_dup_or_null(token, &r);

        if (r < 0) {
                free(u);
                wipe_free(t);
                return r;
        }
        free(c->uuid);
        wipe_free(c->token);
        c->uuid = u;
        c->token = t;
        return 0;
}

size_t rclient_inflight(const struct rclient *c)
{
        return c->n_calls;
}

static void set_err(struct rp_error *e, enum rp_code code, const char *msg)
{
        e->code = code;
        snprintf(e->message, sizeof(e->message), "%s", msg ? msg : "");
}

/* ---- codecs ------------------------------------------------------------- */

static const char *content_type(enum rclient_codec codec)
{
        return codec == RCLIENT_PROTO ? "Content-Type: application/proto" : "Content-Type: application/json";
}

static enum rpcodec rpc_codec(enum rclient_codec codec)
{
        return codec == RCLIENT_PROTO ? RPCODEC_PROTO : RPCODEC_JSON;
}

/* req in protojson form → body bytes in codec (malloc'd). */
static int encode(enum rclient_codec codec, const char *method, json_t *req, char **ret, size_t *ret_len)
{
        char err[RP_ERR_MAX];
        json_t *empty = NULL;
        void *body;
        int r;

        if (!req && !(req = empty = json_object()))
                return -ENOMEM;
        r = rpcodec_encode(method, RPCODEC_REQUEST, rpc_codec(codec), req, &body, ret_len, err);
        json_decref(empty);
        if (r < 0)
                return r == -ENOMEM ? r : -EINVAL;
        *ret = body;
        return 0;
}

/* An answer's bytes in codec → protojson form. */
static int decode(enum rclient_codec codec, const char *method, const char *body, size_t len, json_t **ret)
{
        char err[RP_ERR_MAX];
        int r = rpcodec_decode(method, RPCODEC_RESPONSE, rpc_codec(codec), body, len, ret, err);

        return r == -ENOMEM ? r : r < 0 ? -EBADMSG : 0;
}

/* ---- calls ---------------------------------------------------------------- */

/* A non-200 answer: the Connect error body when usable, the HTTP status
 * otherwise. */
static void error_from_answer(long status, const char *body, size_t len, struct rp_error *e)
{
        json_t *j = len ? json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL) : NULL;
        struct rp_error tmp = { 0 };
        char msg[64];

        if (j && json_is_object(j) && rp_error_from_json(j, &tmp) >= 0 && tmp.code != RP_CODE_OK) {
                *e = tmp;
        } else {
                snprintf(msg, sizeof(msg), "HTTP status %ld", status);
                set_err(e, rp_code_from_http_status((int)status), msg);
        }
        json_decref(j);
}

static void on_done(void *ud, int err, long status, const char *body, size_t len, long long total)
{
        struct rclient_call *k = ud;
        struct rclient_result res = { .err = err, .status = status };
        json_t *j = NULL;

        /* The call is over: unlink first, so that the callback may free
         * the client. */
        k->xfer = NULL;
        unlink_call(k);
        if (err < 0) {
                set_err(&res.cerr, err == -ETIMEDOUT ? RP_CODE_DEADLINE_EXCEEDED : RP_CODE_UNAVAILABLE,
                        strerror(-err));
        } else if (status != 200) {
                res.err = -EPROTO;
                error_from_answer(status, body, len, &res.cerr);
        } else if (!k->raw_cb) {
                int r = decode(k->codec, k->method, body, len, &j);
                if (r < 0) {
                        res.err = -EBADMSG;
                        set_err(&res.cerr, RP_CODE_INTERNAL, "answer does not decode");
                }
        }
        if (k->raw_cb)
                k->raw_cb(k->ud, &res, res.err == 0 ? body : NULL, res.err == 0 ? len : 0);
        else
                k->cb(k->ud, &res, j);
        json_decref(j);
        free(k);
}

static int start(struct rclient *c, const char *method, enum rclient_codec codec, const char *body, size_t len,
                 const char *request_key, struct rclient_call *k)
{
        char url[1024], h_uuid[HDR_MAX], h_token[HDR_MAX], h_key[HDR_MAX];
        const char *headers[8];
        size_t nh = 0;
        int n, r;

        n = snprintf(url, sizeof(url), "%s%s%s", c->base_url, RP_PATH_PREFIX, method);
        if (n < 0 || (size_t)n >= sizeof(url))
                return -ENAMETOOLONG;
        headers[nh++] = content_type(codec);
        headers[nh++] = "Connect-Protocol-Version: 1";
        if (c->uuid) {
                n = snprintf(h_uuid, sizeof(h_uuid), "%s: %s", RP_HDR_UUID, c->uuid);
                if (n < 0 || (size_t)n >= sizeof(h_uuid))
                        return -ENAMETOOLONG;
                headers[nh++] = h_uuid;
        }
        if (c->token) {
                n = snprintf(h_token, sizeof(h_token), "%s: %s", RP_HDR_TOKEN, c->token);
                if (n < 0 || (size_t)n >= sizeof(h_token)) {
                        explicit_bzero(h_token, sizeof(h_token));
                        return -ENAMETOOLONG;
                }
                headers[nh++] = h_token;
        }
        if (request_key) {
                n = snprintf(h_key, sizeof(h_key), "%s: %s", RP_HDR_REQUEST_KEY, request_key);
                if (n < 0 || (size_t)n >= sizeof(h_key))
                        return -ENAMETOOLONG;
                headers[nh++] = h_key;
        }
        headers[nh] = NULL;
        struct hmulti_req hr = {
                .method = "POST", .url = url, .headers = headers, .body = body, .body_len = len,
                .timeout_ms = c->timeout_ms, .max_response = RCLIENT_MAX_RESPONSE,
                .ca_file = c->ca_file, .insecure = c->insecure,
                /* Task payloads carry the job's secrets. */
                .sensitive = true,
        };
        k->c = c;
        k->codec = codec;
        snprintf(k->method, sizeof(k->method), "%s", method);
        r = hmulti_start(c->hm, &hr, on_done, k, &k->xfer);
        if (c->token)
                explicit_bzero(h_token, sizeof(h_token));
        if (r < 0)
                return r;
        k->next = c->calls;
        if (c->calls)
                c->calls->prev = k;
        c->calls = k;
        c->n_calls++;
        return 0;
}

int rclient_call(struct rclient *c, const char *method, json_t *req, const char *request_key,
                 rclient_cb cb, void *ud, struct rclient_call **ret)
{
        struct rclient_call *k = calloc(1, sizeof(*k));
        char *body = NULL;
        size_t len = 0;
        int r;

        if (!k)
                return -ENOMEM;
        k->cb = cb;
        k->ud = ud;
        r = encode(c->codec, method, req, &body, &len);
        if (r < 0)
                goto err;
        r = start(c, method, c->codec, body, len, request_key, k);
        explicit_bzero(body, len);
        free(body);
        if (r < 0)
                goto err;
        if (ret)
                *ret = k;
        return 0;
err:
        free(k);
        return r;
}

int rclient_call_raw(struct rclient *c, const char *method, enum rclient_codec codec, const void *body,
                     size_t len, const char *request_key, rclient_raw_cb cb, void *ud,
                     struct rclient_call **ret)
{
        struct rclient_call *k = calloc(1, sizeof(*k));
        int r;

        if (!k)
                return -ENOMEM;
        k->raw_cb = cb;
        k->ud = ud;
        r = start(c, method, codec, body, len, request_key, k);
        if (r < 0) {
                free(k);
                return r;
        }
        if (ret)
                *ret = k;
        return 0;
}
