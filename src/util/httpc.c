/* httpc.c: see httpc.h. The only file besides the daemon's loop that
 * includes curl.h. */
#include "util/httpc.h"

#include <curl/curl.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct httpc {
        CURL *curl;
};

struct sink {
        struct httpc_resp *resp;
        size_t cap;
        size_t max;
        bool overflow;
};

void httpc_global_init(void)
{
        curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct httpc *httpc_new(void)
{
        struct httpc *h = calloc(1, sizeof(*h));

        if (!h)
                return NULL;
        h->curl = curl_easy_init();
        if (!h->curl) {
                free(h);
                return NULL;
        }
        return h;
}

void httpc_free(struct httpc *h)
{
        if (!h)
                return;
        curl_easy_cleanup(h->curl);
        free(h);
}

static size_t on_body(char *p, size_t sz, size_t nm, void *ud)
{
        struct sink *s = ud;
        size_t n = sz * nm;
        struct httpc_resp *r = s->resp;

        if (r->len + n > s->max) {
                s->overflow = true;
                return 0; /* aborts the transfer */
        }
        if (r->len + n + 1 > s->cap) {
                size_t ncap = s->cap ? s->cap : 1024;
                while (ncap < r->len + n + 1)
                        ncap *= 2;
                char *b = realloc(r->body, ncap);
                if (!b)
                        return 0;
                r->body = b;
                s->cap = ncap;
        }
        memcpy(r->body + r->len, p, n);
        r->len += n;
        r->body[r->len] = '\0';
        return n;
}

/* The value of a header line "name: value\r\n" into buf, blanks and the
 * line end trimmed, cut to fit. */
static void header_value(const char *p, size_t n, size_t skip, char *buf, size_t cap)
{
        const char *v = p + skip, *end = p + n;

        while (v < end && (*v == ' ' || *v == '\t'))
                v++;
        while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
                end--;
        n = (size_t)(end - v);
        if (n >= cap)
                n = cap - 1;
        memcpy(buf, v, n);
        buf[n] = '\0';
}

static size_t on_header(char *p, size_t sz, size_t nm, void *ud)
{
        struct sink *s = ud;
        size_t n = sz * nm;
        static const char tc[] = "x-total-count:";
        static const char ce[] = "content-encoding:";

        /* A header line of each response (redirects, 100 Continue) starts
         * again; only the last response's headers describe the body. */
        if (n > 5 && strncmp(p, "HTTP/", 5) == 0) {
                s->resp->content_encoding[0] = '\0';
                return n;
        }
        if (n > sizeof(ce) - 1 && strncasecmp(p, ce, sizeof(ce) - 1) == 0) {
                header_value(p, n, sizeof(ce) - 1, s->resp->content_encoding,
                             sizeof(s->resp->content_encoding));
                return n;
        }

        if (n > sizeof(tc) - 1 && strncasecmp(p, tc, sizeof(tc) - 1) == 0) {
                char tmp[32];
                size_t l = n - (sizeof(tc) - 1);
                if (l >= sizeof(tmp))
                        l = sizeof(tmp) - 1;
                memcpy(tmp, p + sizeof(tc) - 1, l);
                tmp[l] = '\0';
                char *end;
                long long v = strtoll(tmp, &end, 10);
                if (end != tmp)
                        s->resp->total_count = v;
        }
        return n;
}

int httpc_do(struct httpc *h, const struct httpc_req *req, struct httpc_resp *resp)
{
        struct curl_slist *hdrs = NULL;
        struct sink sink = { .resp = resp };
        CURLcode cc;
        CURL *c = h->curl;
        int r = 0;

        memset(resp, 0, sizeof(*resp));
        resp->total_count = -1;
        sink.max = req->max_response ? req->max_response : HTTPC_DEFAULT_MAX_RESPONSE;

        curl_easy_reset(c);
        curl_easy_setopt(c, CURLOPT_URL, req->url);
        if (req->unix_socket)
                curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, req->unix_socket);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, req->timeout_ms > 0 ? req->timeout_ms : 10000L);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, req->timeout_ms > 0 && req->timeout_ms < 5000 ? req->timeout_ms : 5000L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, &sink);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, resp->errbuf);
        /* Only http(s); never follow redirects: a forge that redirects an
         * API call is misconfigured and following could leak the token. */
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
        if (req->ca_file)
                curl_easy_setopt(c, CURLOPT_CAINFO, req->ca_file);
        if (req->insecure) {
                curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
                curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
        }
        for (const char *const *p = req->headers; p && *p; p++) {
                struct curl_slist *n = curl_slist_append(hdrs, *p);
                if (!n) {
                        r = -ENOMEM;
                        goto out;
                }
                hdrs = n;
        }
        /* Disable "Expect: 100-continue": it costs a round trip per POST. */
        struct curl_slist *n = curl_slist_append(hdrs, "Expect:");
        if (!n) {
                r = -ENOMEM;
                goto out;
        }
        hdrs = n;
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);

        const char *m = req->method ? req->method : "GET";
        if (strcmp(m, "GET") == 0) {
                curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        } else if (strcmp(m, "POST") == 0) {
                curl_easy_setopt(c, CURLOPT_POST, 1L);
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body ? req->body : "");
                curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(req->body ? req->body_len : 0));
        } else {
                curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, m);
                if (req->body) {
                        curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body);
                        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
                }
        }

        cc = curl_easy_perform(c);
        if (cc != CURLE_OK) {
                if (sink.overflow)
                        r = -EMSGSIZE;
                else if (cc == CURLE_OPERATION_TIMEDOUT)
                        r = -ETIMEDOUT;
                else if (cc == CURLE_COULDNT_CONNECT)
                        r = -ECONNREFUSED;
                else if (cc == CURLE_RECV_ERROR || cc == CURLE_SEND_ERROR || cc == CURLE_GOT_NOTHING)
                        r = -ECONNRESET;
                else if (cc == CURLE_OUT_OF_MEMORY || cc == CURLE_WRITE_ERROR)
                        r = -ENOMEM;
                else
                        r = -EIO;
                if (!resp->errbuf[0])
                        snprintf(resp->errbuf, sizeof(resp->errbuf), "%s", curl_easy_strerror(cc));
                goto out;
        }
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
        char *ct = NULL;
        if (curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct) {
                size_t l = strlen(ct);
                if (l >= sizeof(resp->content_type))
                        l = sizeof(resp->content_type) - 1;
                memcpy(resp->content_type, ct, l);
                resp->content_type[l] = '\0';
        }
        if (!resp->body) {
                resp->body = calloc(1, 1);
                if (!resp->body)
                        r = -ENOMEM;
        }
out:
        curl_slist_free_all(hdrs);
        if (r < 0) {
                free(resp->body);
                resp->body = NULL;
                resp->len = 0;
        }
        return r;
}

void httpc_resp_done(struct httpc_resp *resp)
{
        if (!resp)
                return;
        free(resp->body);
        resp->body = NULL;
        resp->len = 0;
}
