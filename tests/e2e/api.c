/* api.c: see api.h. */
#include "api.h"

#include "util/httpc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct httpc *http;
static char *base_url;

int api_init(const char *base)
{
        httpc_global_init();
        http = httpc_new();
        base_url = strdup(base);
        if (!http || !base_url) {
                api_done();
                return -ENOMEM;
        }
        return 0;
}

void api_done(void)
{
        httpc_free(http);
        free(base_url);
        http = NULL;
        base_url = NULL;
}

json_t *api_call(const char *method, const char *path, const json_t *body,
                 const char *token, long *ret_status)
{
        char url[512], auth[512];
        const char *headers[3] = { "Content-Type: application/json", NULL, NULL };
        char *text = NULL;
        struct httpc_resp resp;
        json_t *j = NULL;
        int r;

        *ret_status = -1;
        snprintf(url, sizeof(url), "%s%s", base_url, path);
        if (token) {
                snprintf(auth, sizeof(auth), "Authorization: token %s", token);
                headers[1] = auth;
        }
        if (body) {
                text = json_dumps(body, JSON_COMPACT);
                if (!text)
                        return NULL;
        }
        struct httpc_req req = {
                .method = method,
                .url = url,
                .headers = headers,
                .body = text,
                .body_len = text ? strlen(text) : 0,
                .timeout_ms = 10000,
        };
        r = httpc_do(http, &req, &resp);
        free(text);
        if (r < 0) {
                fprintf(stderr, "  %s %s: %s\n", method, path, resp.errbuf);
                httpc_resp_done(&resp);
                return NULL;
        }
        *ret_status = resp.status;
        if (resp.len == 0)
                j = json_null();
        else
                j = json_loadb(resp.body, resp.len, JSON_DECODE_ANY, NULL);
        httpc_resp_done(&resp);
        return j;
}
