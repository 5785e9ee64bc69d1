/* kubefake.c: see kubefake.h. Owns kube-fake's temp folders and TLS
 * material and the libcurl handles of the helpers; the child process
 * itself is child.c's (killed with the test process, whatever ends it).
 * Never asserts. */
#include "kubefake.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "child.h"
#include "util/base64.h"
#include "util/fsutil.h"

#define LISTEN_PREFIX "listening on https://127.0.0.1:"
#define MAX_BODY (16u << 20)

struct kubefake {
        struct child proc;
        int port;
        char dir[256];
        char url[64];
        char root[300], ca[300], ca_key[300], cert[300], key[300], client_cert[300];
        char client_key[300], token_path[300];
        char token[256];
        char ns[64];
        CURL *curl;             /* kept alive for the helpers */
};

static bool hooks_installed;

static void install_hooks(void)
{
        if (hooks_installed)
                return;
        hooks_installed = true;
        curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Runs argv (openssl) quietly; 0 when it exited 0. */
static int run(const char *const *argv)
{
        pid_t pid = fork();
        int st;

        if (pid < 0)
                return -errno;
        if (pid == 0) {
                int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
                if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(devnull, 1) < 0 ||
                    dup2(devnull, 2) < 0)
                        _exit(127);
                execvp(argv[0], (char *const *)argv);
                _exit(127);
        }
        if (waitpid(pid, &st, 0) < 0)
                return -errno;
        return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
}

static int make_certs(struct kubefake *kf)
{
        char csr[300], ext[300], srl[300];
        int r;

        snprintf(csr, sizeof(csr), "%s/req.csr", kf->dir);
        snprintf(ext, sizeof(ext), "%s/san.ext", kf->dir);
        snprintf(srl, sizeof(srl), "%s/ca.srl", kf->dir);
        r = fs_write_file_0600(ext, "subjectAltName=IP:127.0.0.1\n", 28);
        if (r < 0)
                return r;
        const char *ca[] = { "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                             "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", kf->ca_key,
                             "-out", kf->ca, "-days", "2", "-subj", "/CN=kube-fake-ca", NULL };
        const char *sreq[] = { "openssl", "req", "-newkey", "ec", "-pkeyopt",
                               "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", kf->key,
                               "-out", csr, "-subj", "/CN=kube-fake", NULL };
        const char *ssign[] = { "openssl", "x509", "-req", "-in", csr, "-CA", kf->ca, "-CAkey",
                                kf->ca_key, "-CAcreateserial", "-CAserial", srl, "-out", kf->cert,
                                "-days", "2", "-extfile", ext, NULL };
        const char *creq[] = { "openssl", "req", "-newkey", "ec", "-pkeyopt",
                               "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", kf->client_key,
                               "-out", csr, "-subj", "/CN=forgescale/O=forgescale", NULL };
        const char *csign[] = { "openssl", "x509", "-req", "-in", csr, "-CA", kf->ca, "-CAkey",
                                kf->ca_key, "-CAserial", srl, "-out", kf->client_cert, "-days",
                                "2", NULL };
        if (run(ca) < 0 || run(sreq) < 0 || run(ssign) < 0 || run(creq) < 0 || run(csign) < 0)
                return -EIO;
        return 0;
}

static void random_token(char *buf, size_t n)
{
        unsigned char b[16];

        if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
                memset(b, 0x42, sizeof(b));
        snprintf(buf, n, "kft-");
        for (size_t i = 0; i < sizeof(b) && strlen(buf) + 3 < n; i++)
                snprintf(buf + strlen(buf), n - strlen(buf), "%02x", b[i]);
}

int kubefake_start(const struct kubefake_opts *opts, struct kubefake **ret)
{
        const char *exe = getenv("KUBE_FAKE");
        struct kubefake *kf;
        char out[300];
        int r;

        install_hooks();
        if (!exe || !*exe)
                return -ENOENT;
        kf = calloc(1, sizeof(*kf));
        if (!kf)
                return -ENOMEM;
        kf->proc.name = "kube-fake";
        kf->proc.out_fd = -1;
        snprintf(kf->dir, sizeof(kf->dir), "/tmp/kubefake.XXXXXX");
        if (!mkdtemp(kf->dir)) {
                r = -errno;
                kf->dir[0] = '\0';
                goto err;
        }
        snprintf(kf->root, sizeof(kf->root), "%s/root", kf->dir);
        snprintf(kf->ca, sizeof(kf->ca), "%s/ca.crt", kf->dir);
        snprintf(kf->ca_key, sizeof(kf->ca_key), "%s/ca.key", kf->dir);
        snprintf(kf->cert, sizeof(kf->cert), "%s/server.crt", kf->dir);
        snprintf(kf->key, sizeof(kf->key), "%s/server.key", kf->dir);
        snprintf(kf->client_cert, sizeof(kf->client_cert), "%s/client.crt", kf->dir);
        snprintf(kf->client_key, sizeof(kf->client_key), "%s/client.key", kf->dir);
        snprintf(kf->token_path, sizeof(kf->token_path), "%s/token", kf->dir);
        snprintf(kf->ns, sizeof(kf->ns), "%s", opts && opts->ns ? opts->ns : "default");
        if (opts && opts->token)
                snprintf(kf->token, sizeof(kf->token), "%s", opts->token);
        else
                random_token(kf->token, sizeof(kf->token));
        r = make_certs(kf);
        if (r < 0) {
                fprintf(stderr, "kubefake: openssl could not make the certificates\n");
                goto err;
        }
        r = fs_write_file_0600(kf->token_path, kf->token, strlen(kf->token));
        if (r < 0)
                goto err;
        kf->curl = curl_easy_init();
        if (!kf->curl) {
                r = -ENOMEM;
                goto err;
        }
        snprintf(out, sizeof(out), "%s/stdout", kf->dir);
        kf->proc.out_fd = open(out, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (kf->proc.out_fd < 0) {
                r = -errno;
                goto err;
        }
        const char *argv[20];
        size_t argc = 0;
        argv[argc++] = exe;
        argv[argc++] = "serve";
        argv[argc++] = "--listen";
        argv[argc++] = "127.0.0.1:0";
        argv[argc++] = "--root";
        argv[argc++] = kf->root;
        argv[argc++] = "--token-file";
        argv[argc++] = kf->token_path;
        argv[argc++] = "--tls-cert";
        argv[argc++] = kf->cert;
        argv[argc++] = "--tls-key";
        argv[argc++] = kf->key;
        if (!opts || !opts->no_client_ca) {
                argv[argc++] = "--client-ca";
                argv[argc++] = kf->ca;
        }
        argv[argc++] = "--log-level";
        argv[argc++] = opts && opts->log_level ? opts->log_level : "info";
        argv[argc] = NULL;

        r = child_start(&kf->proc, exe, argv);
        if (r < 0)
                goto err;
        long timeout = opts && opts->start_timeout_ms > 0 ? opts->start_timeout_ms : 10000;
        r = child_wait_port(&kf->proc, LISTEN_PREFIX, timeout);
        if (r < 0) {
                fprintf(stderr, "kubefake: %s\n",
                        r == -ECHILD ? "kube-fake exited before listening" : "no listening line in time");
                goto err;
        }
        kf->port = r;
        snprintf(kf->url, sizeof(kf->url), "https://127.0.0.1:%d", kf->port);
        *ret = kf;
        return 0;
err:
        kubefake_stop(kf);
        return r;
}

bool kubefake_alive(struct kubefake *kf)
{
        return kf && child_alive(&kf->proc);
}

int kubefake_stop(struct kubefake *kf)
{
        int r;

        if (!kf)
                return 0;
        if (kf->curl)
                curl_easy_cleanup(kf->curl);
        kf->curl = NULL;
        r = child_stop(&kf->proc, 5.0);
        if (kf->proc.out_fd >= 0)
                close(kf->proc.out_fd);
        if (kf->dir[0] && !getenv("KUBEFAKE_KEEP"))
                fs_rm_rf(kf->dir);
        free(kf);
        return r;
}

pid_t kubefake_pid(const struct kubefake *kf) { return kf->proc.pid; }
int kubefake_port(const struct kubefake *kf) { return kf->port; }
const char *kubefake_url(const struct kubefake *kf) { return kf->url; }
const char *kubefake_dir(const struct kubefake *kf) { return kf->dir; }
const char *kubefake_root(const struct kubefake *kf) { return kf->root; }
const char *kubefake_ca_path(const struct kubefake *kf) { return kf->ca; }
const char *kubefake_client_cert_path(const struct kubefake *kf) { return kf->client_cert; }
const char *kubefake_client_key_path(const struct kubefake *kf) { return kf->client_key; }
const char *kubefake_token_path(const struct kubefake *kf) { return kf->token_path; }
const char *kubefake_token(const struct kubefake *kf) { return kf->token; }

int kubefake_rotate_token(struct kubefake *kf, const char *new_token)
{
        char tmp[320];
        int r;

        if (!new_token || !*new_token || strlen(new_token) >= sizeof(kf->token))
                return -EINVAL;
        /* Rename over the old file so the fake never reads half a token. */
        snprintf(tmp, sizeof(tmp), "%s.new", kf->token_path);
        r = fs_write_file_0600(tmp, new_token, strlen(new_token));
        if (r < 0)
                return r;
        if (rename(tmp, kf->token_path) < 0)
                return -errno;
        snprintf(kf->token, sizeof(kf->token), "%s", new_token);
        return 0;
}

/* ---- HTTP --------------------------------------------------------------- */

struct buf {
        char *p;
        size_t len, cap;
        bool over;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
        struct buf *b = ud;
        size_t n = size * nmemb;

        if (b->len + n + 1 > MAX_BODY) {
                b->over = true;
                return 0;
        }
        if (b->len + n + 1 > b->cap) {
                size_t cap = b->cap ? b->cap : 4096;
                while (cap < b->len + n + 1)
                        cap *= 2;
                char *nb = realloc(b->p, cap);
                if (!nb)
                        return 0;
                b->p = nb;
                b->cap = cap;
        }
        memcpy(b->p + b->len, ptr, n);
        b->len += n;
        b->p[b->len] = '\0';
        return n;
}

struct hdrs {
        char warning[512];
        char retry_after[16];
};

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
        struct hdrs *h = ud;
        size_t n = size * nmemb;
        char line[600];
        size_t l = n < sizeof(line) - 1 ? n : sizeof(line) - 1;

        memcpy(line, ptr, l);
        line[l] = '\0';
        line[strcspn(line, "\r\n")] = '\0';
        if (strncasecmp(line, "Warning: ", 9) == 0)
                snprintf(h->warning, sizeof(h->warning), "%.*s", (int)sizeof(h->warning) - 1,
                         line + 9);
        else if (strncasecmp(line, "Retry-After: ", 13) == 0)
                snprintf(h->retry_after, sizeof(h->retry_after), "%.*s",
                         (int)sizeof(h->retry_after) - 1, line + 13);
        return n;
}

static struct curl_slist *setup(struct kubefake *kf, CURL *c, enum kubefake_auth auth,
                                const char *token, const char *method, const char *path,
                                const char *body, const char *cert, const char *key)
{
        char url[4096], hdr[400];
        struct curl_slist *h = NULL;

        snprintf(url, sizeof(url), "%s%s", kf->url, path);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_CAINFO, kf->ca);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        if (auth == KUBEFAKE_AUTH_CERT) {
                curl_easy_setopt(c, CURLOPT_SSLCERT, cert ? cert : kf->client_cert);
                curl_easy_setopt(c, CURLOPT_SSLKEY, key ? key : kf->client_key);
        }
        if (token || auth == KUBEFAKE_AUTH_TOKEN) {
                snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", token ? token : kf->token);
                h = curl_slist_append(h, hdr);
        }
        h = curl_slist_append(h, "Accept: application/json");
        if (body) {
                h = curl_slist_append(h, "Content-Type: application/json");
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
                curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
        }
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        return h;
}

void kubefake_resp_done(struct kubefake_resp *r)
{
        if (!r)
                return;
        free(r->body);
        json_decref(r->json);
        memset(r, 0, sizeof(*r));
}

static int do_request(struct kubefake *kf, enum kubefake_auth auth, const char *token,
                      const char *method, const char *path, const char *body,
                      const char *cert, const char *key, struct kubefake_resp *ret)
{
        /* A fresh handle per auth mode: curl would reuse a TLS session
         * made with (or without) the client certificate. */
        CURL *c = auth == KUBEFAKE_AUTH_TOKEN && !token ? kf->curl : curl_easy_init();
        struct buf b = { 0 };
        struct hdrs hs = { { 0 }, { 0 } };
        struct curl_slist *h;
        CURLcode cc;
        int r = 0;

        memset(ret, 0, sizeof(*ret));
        if (!c)
                return -ENOMEM;
        if (c == kf->curl)
                curl_easy_reset(c);
        h = setup(kf, c, auth, token, method, path, body, cert, key);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, &hs);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
        cc = curl_easy_perform(c);
        if (cc != CURLE_OK) {
                fprintf(stderr, "kubefake: %s %s: %s\n", method, path, curl_easy_strerror(cc));
                r = cc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -ECONNRESET;
        } else {
                curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &ret->status);
                ret->body = b.p ? b.p : strdup("");
                b.p = NULL;
                ret->len = b.len;
                ret->json = json_loadb(ret->body ? ret->body : "", ret->len, 0, NULL);
                memcpy(ret->warning, hs.warning, sizeof(ret->warning));
                memcpy(ret->retry_after, hs.retry_after, sizeof(ret->retry_after));
        }
        free(b.p);
        curl_slist_free_all(h);
        if (c != kf->curl)
                curl_easy_cleanup(c);
        return r;
}

int kubefake_request(struct kubefake *kf, enum kubefake_auth auth, const char *method,
                     const char *path, const char *body, struct kubefake_resp *ret)
{
        return do_request(kf, auth, NULL, method, path, body, NULL, NULL, ret);
}

int kubefake_request_cert(struct kubefake *kf, const char *cert, const char *key,
                          const char *method, const char *path, const char *body,
                          struct kubefake_resp *ret)
{
        return do_request(kf, KUBEFAKE_AUTH_CERT, NULL, method, path, body, cert, key, ret);
}

int kubefake_request_token(struct kubefake *kf, const char *token, const char *method,
                           const char *path, const char *body, struct kubefake_resp *ret)
{
        return do_request(kf, KUBEFAKE_AUTH_TOKEN, token, method, path, body, NULL, NULL, ret);
}

int kubefake_ctl(struct kubefake *kf, const char *method, const char *path,
                 const char *json_body, json_t **resp)
{
        char full[512];
        struct kubefake_resp r;
        int e;

        if (resp)
                *resp = NULL;
        snprintf(full, sizeof(full), "%s%s", strncmp(path, "/_fake", 6) == 0 ? "" : "/_fake/",
                 path);
        e = do_request(kf, KUBEFAKE_AUTH_NONE, NULL, method, full, json_body, NULL, NULL, &r);
        if (e < 0)
                return e;
        e = (int)r.status;
        if (resp) {
                *resp = r.json;
                r.json = NULL;
        }
        kubefake_resp_done(&r);
        return e;
}

/* ---- kubeconfig and service-account folder ------------------------------ */

static char *file_b64(const char *path)
{
        char *data = NULL, *enc;
        size_t len = 0;

        if (fs_read_file(path, 1u << 20, &data, &len) < 0)
                return NULL;
        enc = base64_encode(data, len);
        free(data);
        return enc;
}

int kubefake_write_kubeconfig(struct kubefake *kf, const char *path, bool client_cert)
{
        char *ca = file_b64(kf->ca), *cc = NULL, *ck = NULL, *out = NULL;
        char user[8192];
        int r, n;

        if (!ca)
                return -EIO;
        if (client_cert) {
                cc = file_b64(kf->client_cert);
                ck = file_b64(kf->client_key);
                if (!cc || !ck) {
                        r = -EIO;
                        goto out;
                }
                snprintf(user, sizeof(user),
                         "    client-certificate-data: %s\n    client-key-data: %s\n", cc, ck);
        } else {
                snprintf(user, sizeof(user), "    token: %s\n", kf->token);
        }
        n = asprintf(&out,
                     "apiVersion: v1\n"
                     "kind: Config\n"
                     "clusters:\n"
                     "- name: kube-fake\n"
                     "  cluster:\n"
                     "    server: %s\n"
                     "    certificate-authority-data: %s\n"
                     "users:\n"
                     "- name: forgescale\n"
                     "  user:\n"
                     "%s"
                     "contexts:\n"
                     "- name: kube-fake\n"
                     "  context:\n"
                     "    cluster: kube-fake\n"
                     "    user: forgescale\n"
                     "    namespace: %s\n"
                     "current-context: kube-fake\n",
                     kf->url, ca, user, kf->ns);
        if (n < 0) {
                out = NULL;
                r = -ENOMEM;
                goto out;
        }
        r = fs_write_file_0600(path, out, (size_t)n);
out:
        free(ca);
        free(cc);
        free(ck);
        free(out);
        return r;
}

int kubefake_write_sa_dir(struct kubefake *kf, const char *dir)
{
        char p[4096], *ca = NULL;
        size_t len = 0;
        int r;

        r = fs_mkdir_p(dir, 0700);
        if (r < 0)
                return r;
        snprintf(p, sizeof(p), "%s/token", dir);
        if ((r = fs_write_file_0600(p, kf->token, strlen(kf->token))) < 0)
                return r;
        snprintf(p, sizeof(p), "%s/namespace", dir);
        if ((r = fs_write_file_0600(p, kf->ns, strlen(kf->ns))) < 0)
                return r;
        if ((r = fs_read_file(kf->ca, 1u << 20, &ca, &len)) < 0)
                return r;
        snprintf(p, sizeof(p), "%s/ca.crt", dir);
        r = fs_write_file_0600(p, ca, len);
        free(ca);
        return r;
}

/* ---- watches ------------------------------------------------------------ */

struct kubefake_watch {
        CURLM *multi;
        CURL *easy;
        struct curl_slist *hdrs;
        struct buf b;
        size_t off;
        bool done;
        CURLcode result;
};

int kubefake_watch_open(struct kubefake *kf, const char *path, struct kubefake_watch **ret)
{
        struct kubefake_watch *w = calloc(1, sizeof(*w));

        if (!w)
                return -ENOMEM;
        w->multi = curl_multi_init();
        w->easy = curl_easy_init();
        if (!w->multi || !w->easy) {
                kubefake_watch_close(w);
                return -ENOMEM;
        }
        w->hdrs = setup(kf, w->easy, KUBEFAKE_AUTH_TOKEN, NULL, "GET", path, NULL, NULL, NULL);
        curl_easy_setopt(w->easy, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(w->easy, CURLOPT_WRITEDATA, &w->b);
        curl_multi_add_handle(w->multi, w->easy);
        /* Return once the answer's headers came: the watch is registered on
         * the server then, so a change made next is never missed. */
        double deadline = child_now_s() + 5.0;
        while (!w->done && kubefake_watch_status(w) == 0) {
                int running = 0, nfds = 0, q;
                CURLMsg *m;
                if (child_now_s() > deadline) {
                        kubefake_watch_close(w);
                        return -ETIMEDOUT;
                }
                curl_multi_perform(w->multi, &running);
                while ((m = curl_multi_info_read(w->multi, &q)))
                        if (m->msg == CURLMSG_DONE) {
                                w->done = true;
                                w->result = m->data.result;
                        }
                if (!running)
                        w->done = true;
                else
                        curl_multi_poll(w->multi, NULL, 0, 20, &nfds);
        }
        *ret = w;
        return 0;
}

long kubefake_watch_status(struct kubefake_watch *w)
{
        long st = 0;

        curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &st);
        return st;
}

int kubefake_watch_next(struct kubefake_watch *w, long timeout_ms, json_t **ret_event)
{
        double deadline = child_now_s() + (double)timeout_ms / 1000.0;

        for (;;) {
                char *nl = w->b.p ? memchr(w->b.p + w->off, '\n', w->b.len - w->off) : NULL;
                if (nl) {
                        size_t n = (size_t)(nl - (w->b.p + w->off));
                        json_t *ev = json_loadb(w->b.p + w->off, n, 0, NULL);
                        w->off += n + 1;
                        if (!ev)
                                return -EPROTO;
                        *ret_event = ev;
                        return 0;
                }
                if (w->done && w->b.p && w->off < w->b.len && w->result == CURLE_OK) {
                        /* A last object without a newline: a non-watch answer (an
                         * error Status) or the stream's end. */
                        json_t *ev = json_loadb(w->b.p + w->off, w->b.len - w->off, 0, NULL);
                        w->off = w->b.len;
                        if (!ev)
                                return -EPROTO;
                        *ret_event = ev;
                        return 0;
                }
                if (w->done)
                        return w->result == CURLE_OK ? -EPIPE : -ECONNRESET;
                double left = deadline - child_now_s();
                if (left <= 0)
                        return -ETIMEDOUT;
                int running = 0, nfds = 0;
                curl_multi_perform(w->multi, &running);
                CURLMsg *m;
                int q;
                while ((m = curl_multi_info_read(w->multi, &q)))
                        if (m->msg == CURLMSG_DONE) {
                                w->done = true;
                                w->result = m->data.result;
                        }
                if (!running)
                        w->done = true;
                if (!w->done)
                        curl_multi_poll(w->multi, NULL, 0, left > 0.05 ? 50 : 1, &nfds);
        }
}

void kubefake_watch_close(struct kubefake_watch *w)
{
        if (!w)
                return;
        if (w->multi && w->easy)
                curl_multi_remove_handle(w->multi, w->easy);
        if (w->easy)
                curl_easy_cleanup(w->easy);
        if (w->multi)
                curl_multi_cleanup(w->multi);
        curl_slist_free_all(w->hdrs);
        free(w->b.p);
        free(w);
}
