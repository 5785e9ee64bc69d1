/* rpc.h: a blocking Connect-unary client for the runner protocol over
 * httpc, in either codec (rpcodec.h): binary protobuf by default, as
 * forgejo-runner speaks it, or JSON. Asks for gzip answers and inflates
 * them with a bound; can gzip its requests. Used by forgejo-sim-runner and
 * tests; the daemon's broker will drive the same wire format from its
 * event loop.
 * Owns: URL building, auth headers, request keys, mapping of transport and
 * Connect errors. Never logs; the token is never copied into errors. */
#pragma once

#include "forge/rpcodec.h"
#include "forge/rproto.h"
#include "util/httpc.h"

struct rpc_client {
        struct httpc *http;
        char *base_url;          /* instance root, no trailing slash */
        char *uuid;              /* NULL for Ping/Register */
        char *token;             /* NULL for Ping/Register */
        long timeout_ms;
        const char *ca_file;
        bool insecure;
        enum rpcodec codec;      /* RPCODEC_PROTO after init */
        bool gzip_requests;      /* gzip bodies of RPCODEC_GZIP_MIN bytes or more */
};

/* Returns 0; -ENOMEM. Copies every string. The codec is proto and
 * requests go uncompressed, as connect-go's defaults; set the fields
 * after init to change that. */
int rpc_client_init(struct rpc_client *c, const char *base_url,
                    const char *uuid, const char *token, long timeout_ms);
void rpc_client_done(struct rpc_client *c);

/* POSTs req (protojson, as rproto's encoders make it; NULL for {}) to
 * <base>/api/actions/<method> (method like
 * "runner.v1.RunnerService/FetchTask") in the client's codec.
 * request_key, when non-NULL, is sent as x-runner-request-key.
 * Returns 0 with *ret_resp a new reference (a JSON object, whatever the
 * codec);
 * -EPROTO with *ret_err filled when the server answered a Connect error;
 * -EBADMSG when a 200 answer is not a message of the method in the
 * client's codec (other Content-Type, bad body, bad gzip);
 * -EINVAL when req cannot be encoded (an unknown method, a field the
 * schema lacks);
 * or a transport -errno from httpc_do (ret_err->message has the text). */
int rpc_call(struct rpc_client *c, const char *method, json_t *req,
             const char *request_key, json_t **ret_resp, struct rp_error *ret_err);
