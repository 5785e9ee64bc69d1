/* rclient.h: the runner protocol (Connect unary, runner.v1 / ping.v1) as an
 * asynchronous client on the daemon's loop (http/hmulti.h): what broker
 * mode uses to be a runner upstream. One client per runner identity.
 * Owns the request headers (token header marked sensitive), the mapping of
 * HTTP answers to Connect errors, and bounds on answers. Never logs, never
 * puts the token into an error, never blocks. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "forge/rproto.h"

struct hmulti;
struct rclient;
struct rclient_call;

/* Most bytes of an answer: a Task carries the workflow and its contexts. */
#define RCLIENT_MAX_RESPONSE (8u << 20)

enum rclient_codec {
        RCLIENT_JSON = 0,       /* application/json (protojson) */
        RCLIENT_PROTO,          /* application/proto */
};

struct rclient_opts {
        const char *base_url;   /* the forge's root URL (no /api/actions) */
        enum rclient_codec codec;
        long timeout_ms;        /* per call, queueing included */
        const char *ca_file;
        bool insecure;
};

/* How a call went. err: 0 (answer 200, resp set), -EPROTO (a Connect error
 * in cerr), -EBADMSG (a 200 answer that does not decode), or a transport
 * -errno (-ETIMEDOUT, -ECONNREFUSED, ...; cerr says it in words too). */
struct rclient_result {
        int err;
        long status;            /* HTTP status, 0 without an answer */
        struct rp_error cerr;
};

/* resp: the decoded answer (protojson form, whatever the codec), borrowed
 * for the call; NULL unless err is 0. */
typedef void (*rclient_cb)(void *ud, const struct rclient_result *res, json_t *resp);

/* Answer bytes as they came, in the call's codec (rclient_call_raw). */
typedef void (*rclient_raw_cb)(void *ud, const struct rclient_result *res, const void *body, size_t len);

/* Returns 0 or -ENOMEM / -EINVAL (no base_url). hm is borrowed. */
int rclient_new(struct hmulti *hm, const struct rclient_opts *o, struct rclient **ret);
/* Cancels every call in flight (no callbacks). Accepts NULL. */
void rclient_free(struct rclient *c);

/* The runner identity sent with every later call (NULL, NULL: none, for
 * Register and Ping). Copied; the old token is wiped. 0 or -ENOMEM. */
int rclient_set_identity(struct rclient *c, const char *uuid, const char *token);

/* Calls method ("runner.v1.RunnerService/FetchTask") with req (protojson
 * form; encoded in the client's codec). request_key, when non-NULL, goes
 * as x-runner-request-key. 0 with the call under way (cb follows, never
 * from inside this call) and *ret (may be NULL) valid until cb starts or
 * rclient_cancel(); -ENOMEM, -EINVAL (req does not encode). */
int rclient_call(struct rclient *c, const char *method, json_t *req, const char *request_key,
                 rclient_cb cb, void *ud, struct rclient_call **ret);

/* The same with a body already encoded in codec (a relay passes a
 * worker's message on with fields this build does not know intact). */
int rclient_call_raw(struct rclient *c, const char *method, enum rclient_codec codec, const void *body,
                     size_t len, const char *request_key, rclient_raw_cb cb, void *ud,
                     struct rclient_call **ret);

/* Drops a call: its callback never comes. Accepts NULL. */
void rclient_cancel(struct rclient_call *call);

/* Calls in flight. */
size_t rclient_inflight(const struct rclient *c);
