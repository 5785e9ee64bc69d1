/* kubeauth.c: see kubeauth.h. Owns the reading of kubeconfig files (with
 * libfyaml's document API: the file is the operator's, small and trusted
 * to be YAML, yet every field is checked before use), of service-account
 * folders and of the certificates and keys they name. Never does network
 * I/O, never logs, never keeps a secret outside struct kubeauth. */
#include "provider/kubeauth.h"

#include "util/base64.h"
#include "util/fsutil.h"
#include "util/secret.h"

#include <errno.h>
#include <libfyaml.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int fail(char *err, size_t n, int r, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t n, int r, const char *fmt, ...)
{
        va_list ap;

        if (n) {
                va_start(ap, fmt);
                vsnprintf(err, n, fmt, ap);
                va_end(ap);
        }
        return r;
}

static void wipe_free(char *p, size_t n)
{
        if (p)
                explicit_bzero(p, n);
        free(p);
}

void kubeauth_free(struct kubeauth *a)
{
        if (!a)
                return;
        free(a->server);
        wipe_free(a->ca_pem, a->ca_pem_len);
        wipe_free(a->cert_pem, a->cert_pem_len);
        wipe_free(a->key_pem, a->key_pem_len);
        secret_free(a->token);
        free(a->token_file);
        free(a->namespace);
        free(a);
}

/* name resolved against dir (the kubeconfig's folder) unless absolute. */
static char *resolve(const char *dir, const char *name)
{
        char *out;

        if (name[0] == '/' || !dir)
                return strdup(name);
        if (asprintf(&out, "%s/%s", dir, name) < 0)
                return NULL;
        return out;
}

static int read_pem_file(const char *path, char **ret, size_t *ret_len)
{
        return fs_read_regular(path, KUBEAUTH_FILE_MAX, ret, ret_len);
}

static int stat_token(struct kubeauth *a, struct stat *st)
{
        if (stat(a->token_file, st) < 0)
                return -errno;
        return 0;
}

int kubeauth_refresh(struct kubeauth *a, bool force)
{
        struct stat st;
        char *tok = NULL;
        int r;

        if (!a->token_file)
                return 0;
        r = stat_token(a, &st);
        if (r < 0)
                return r;
        if (!force && a->token && st.st_ino == a->token_ino && st.st_size == a->token_size &&
            st.st_mtim.tv_sec == a->token_mtime.tv_sec && st.st_mtim.tv_nsec == a->token_mtime.tv_nsec)
                return 0;
        r = secret_load_file(a->token_file, &tok);
        if (r < 0)
                return r;
        a->token_ino = st.st_ino;
        a->token_size = st.st_size;
        a->token_mtime = st.st_mtim;
        if (a->token && strcmp(a->token, tok) == 0) {
                secret_free(tok);
                return 0;
        }
        secret_free(a->token);
        a->token = tok;
        return 1;
}

/* ---- kubeconfig ------------------------------------------------------------ */

static void noop_diag(struct fy_diag *d, void *u, const char *buf, size_t len)
{
}

/* A scalar child of map as a NUL-terminated copy in buf, or NULL when absent
 * or not a scalar (*bad then says whether it was present but wrong). */
static const char *scalar(struct fy_node *map, const char *key, char *buf, size_t n, bool *bad)
{
        struct fy_node *v = map ? fy_node_mapping_lookup_by_string(map, key, FY_NT) : NULL;
        const char *s;
        size_t len;

        *bad = false;
        if (!v)
                return NULL;
        if (!fy_node_is_scalar(v) || !(s = fy_node_get_scalar(v, &len)) || len >= n ||
            memchr(s, '\0', len)) {
                *bad = true;
                return NULL;
        }
        memcpy(buf, s, len);
        buf[len] = '\0';
        return buf;
}

/* The entry of list `kind` ("clusters", "users", "contexts") named name: its
 * inner mapping (under `inner`, e.g. "cluster"). */
static struct fy_node *named_entry(struct fy_node *root, const char *kind, const char *inner,
                                   const char *name)
{
        struct fy_node *seq = fy_node_mapping_lookup_by_string(root, kind, FY_NT);
        struct fy_node *it;
        void *iter = NULL;
        char buf[256];
        bool bad;

        if (!seq || !fy_node_is_sequence(seq))
                return NULL;
        while ((it = fy_node_sequence_iterate(seq, &iter))) {
                const char *nm;
                if (!fy_node_is_mapping(it))
                        continue;
                nm = scalar(it, "name", buf, sizeof(buf), &bad);
                if (nm && strcmp(nm, name) == 0) {
                        struct fy_node *m = fy_node_mapping_lookup_by_string(it, inner, FY_NT);
                        return m && fy_node_is_mapping(m) ? m : NULL;
                }
        }
        return NULL;
}

/* Data fields hold base64 PEM; file fields a path. One of the two, or none. */
static int load_material(struct fy_node *m, const char *file_key, const char *data_key,
                         const char *dir, const char *what, const char *path,
                         char **ret, size_t *ret_len, char *err, size_t n)
{
        char fbuf[4096];
        bool bad_f, bad_d;
        const char *f = scalar(m, file_key, fbuf, sizeof(fbuf), &bad_f);
        struct fy_node *dn = m ? fy_node_mapping_lookup_by_string(m, data_key, FY_NT) : NULL;
        int r;

        if (bad_f)
                return fail(err, n, -EINVAL, "kubeconfig %s: %s.%s is not a string", path, what, file_key);
        if (dn) {
                const char *s;
                size_t len;
                unsigned char *bin;
                size_t blen;
                bad_d = !fy_node_is_scalar(dn) || !(s = fy_node_get_scalar(dn, &len));
                if (bad_d)
                        return fail(err, n, -EINVAL, "kubeconfig %s: %s.%s is not a string", path, what, data_key);
                r = base64_decode(s, len, &bin, &blen);
                if (r == -ENOMEM)
                        return r;
                if (r < 0 || blen == 0)
                        return fail(err, n, -EINVAL, "kubeconfig %s: %s.%s is not base64 PEM data", path, what,
                                    data_key);
                *ret = (char *)bin;
                *ret_len = blen;
                return 1;
        }
        if (f) {
                char *p = resolve(dir, f);
                if (!p)
                        return -ENOMEM;
                r = read_pem_file(p, ret, ret_len);
                if (r < 0) {
                        fail(err, n, r, "kubeconfig %s: %s.%s: cannot read %s: %s", path, what, file_key, p,
                             strerror(-r));
                        free(p);
                        return r;
                }
                free(p);
                return 1;
        }
        return 0;
}

static int build_kubeconfig(struct fy_node *root, const char *path, const char *dir,
                            const char *context, struct kubeauth *a, char *err, size_t n)
{
        char cbuf[256], clbuf[256], ubuf[256], nsbuf[256], sbuf[2048], tbuf[4096], ibuf[16];
        struct fy_node *ctx, *cl, *user;
        const char *ctx_name = context, *cl_name, *u_name, *ns, *server, *s;
        bool bad;
        int r;

        if (!ctx_name) {
                ctx_name = scalar(root, "current-context", cbuf, sizeof(cbuf), &bad);
                if (!ctx_name || !*ctx_name)
                        return fail(err, n, -EINVAL,
                                    "kubeconfig %s: current-context is not set; set it or give the provider's context key",
                                    path);
        }
        ctx = named_entry(root, "contexts", "context", ctx_name);
        if (!ctx)
                return fail(err, n, -ENOENT, "kubeconfig %s: contexts has no entry named \"%s\"", path, ctx_name);
        cl_name = scalar(ctx, "cluster", clbuf, sizeof(clbuf), &bad);
        u_name = scalar(ctx, "user", ubuf, sizeof(ubuf), &bad);
        ns = scalar(ctx, "namespace", nsbuf, sizeof(nsbuf), &bad);
        if (!cl_name)
                return fail(err, n, -EINVAL, "kubeconfig %s: context \"%s\" has no cluster", path, ctx_name);
        cl = named_entry(root, "clusters", "cluster", cl_name);
        if (!cl)
                return fail(err, n, -ENOENT, "kubeconfig %s: clusters has no entry named \"%s\" (context \"%s\")",
                            path, cl_name, ctx_name);
        server = scalar(cl, "server", sbuf, sizeof(sbuf), &bad);
        if (!server || strncmp(server, "https://", 8) != 0 || !server[8])
                return fail(err, n, -EINVAL,
                            "kubeconfig %s: clusters[%s].cluster.server must be an https:// URL", path, cl_name);
        {
                size_t l = strlen(server);
                while (l > 8 && server[l - 1] == '/')
                        sbuf[--l] = '\0';
        }
        if (!(a->server = strdup(server)))
                return -ENOMEM;
        s = scalar(cl, "insecure-skip-tls-verify", ibuf, sizeof(ibuf), &bad);
        if (bad || (s && strcmp(s, "true") != 0 && strcmp(s, "false") != 0))
                return fail(err, n, -EINVAL,
                            "kubeconfig %s: clusters[%s].cluster.insecure-skip-tls-verify must be true or false",
                            path, cl_name);
        a->insecure = s && strcmp(s, "true") == 0;
        r = load_material(cl, "certificate-authority", "certificate-authority-data", dir, "cluster", path,
                          &a->ca_pem, &a->ca_pem_len, err, n);
        if (r < 0)
                return r;
        if (ns && *ns && !(a->namespace = strdup(ns)))
                return -ENOMEM;

        if (!u_name)
                return 0; /* anonymous: the server decides */
        user = named_entry(root, "users", "user", u_name);
        if (!user)
                return fail(err, n, -ENOENT, "kubeconfig %s: users has no entry named \"%s\" (context \"%s\")",
                            path, u_name, ctx_name);
        if (fy_node_mapping_lookup_by_string(user, "exec", FY_NT) ||
            fy_node_mapping_lookup_by_string(user, "auth-provider", FY_NT))
                return fail(err, n, -ENOTSUP,
                            "kubeconfig %s: users[%s].user uses exec or auth-provider, which forgescale does not run; use a token, a tokenFile or a client certificate (e.g. a service account's token)",
                            path, u_name);
        s = scalar(user, "token", tbuf, sizeof(tbuf), &bad);
        if (bad)
                return fail(err, n, -EINVAL, "kubeconfig %s: users[%s].user.token is not a string", path, u_name);
        if (s && *s && !(a->token = strdup(s))) {
                explicit_bzero(tbuf, sizeof(tbuf));
                return -ENOMEM;
        }
        explicit_bzero(tbuf, sizeof(tbuf));
        s = scalar(user, "tokenFile", sbuf, sizeof(sbuf), &bad);
        if (bad)
                return fail(err, n, -EINVAL, "kubeconfig %s: users[%s].user.tokenFile is not a string", path, u_name);
        if (s && !a->token) {
                if (!(a->token_file = resolve(dir, s)))
                        return -ENOMEM;
                r = kubeauth_refresh(a, true);
                if (r < 0)
                        return fail(err, n, r, "kubeconfig %s: users[%s].user.tokenFile: cannot read %s: %s", path,
                                    u_name, a->token_file, strerror(-r));
        }
        r = load_material(user, "client-certificate", "client-certificate-data", dir, "user", path,
                          &a->cert_pem, &a->cert_pem_len, err, n);
        if (r < 0)
                return r;
        r = load_material(user, "client-key", "client-key-data", dir, "user", path, &a->key_pem,
                          &a->key_pem_len, err, n);
        if (r < 0)
                return r;
        if (!a->cert_pem != !a->key_pem)
                return fail(err, n, -EINVAL,
                            "kubeconfig %s: users[%s].user has a client certificate without its key or a key without its certificate",
                            path, u_name);
        return 0;
}

/* libfyaml can loop on invalid UTF-8; a kubeconfig is text. */
static bool text_ok(const unsigned char *s, size_t n)
{
        for (size_t i = 0; i < n;) {
                unsigned char c = s[i];
                size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
                if (len == 0 || i + len > n)
                        return false;
                if (c < 0x20 && c != '\n' && c != '\r' && c != '\t')
                        return false;
                for (size_t k = 1; k < len; k++)
                        if ((s[i + k] & 0xC0) != 0x80)
                                return false;
                i += len;
        }
        return true;
}

int kubeauth_load_kubeconfig(const char *path, const char *context, struct kubeauth **ret,
                             char *err, size_t n)
{
        struct kubeauth *a = NULL;
        struct fy_diag_cfg dcfg;
        struct fy_diag *diag = NULL;
        struct fy_document *doc = NULL;
        struct fy_node *root;
        char *text = NULL, *dir = NULL, *slash;
        size_t len = 0;
        int r;

        if (n)
                err[0] = '\0';
        r = fs_read_regular(path, KUBEAUTH_FILE_MAX, &text, &len);
        if (r < 0)
                return fail(err, n, r, "kubeconfig %s: cannot read it: %s", path, strerror(-r));
        if (len == 0 || !text_ok((const unsigned char *)text, len)) {
                r = fail(err, n, -EINVAL, "kubeconfig %s: not a YAML text file", path);
                goto out;
        }
        if (!(dir = strdup(path)) || !(a = calloc(1, sizeof(*a)))) {
                r = -ENOMEM;
                goto out;
        }
        /* Without a folder, relative names stay relative to ours. */
        slash = strrchr(dir, '/');
        if (slash) {
                *slash = '\0';
        } else {
                free(dir);
                dir = NULL;
        }
        fy_diag_cfg_default(&dcfg);
        dcfg.fp = NULL;
        dcfg.output_fn = noop_diag;
        dcfg.colorize = false;
        if (!(diag = fy_diag_create(&dcfg))) {
                r = -ENOMEM;
                goto out;
        }
        struct fy_parse_cfg pcfg = {
                .flags = FYPCF_QUIET | FYPCF_DISABLE_MMAP_OPT, .diag = diag,
        };
        doc = fy_document_build_from_string(&pcfg, text, len);
        if (!doc || !(root = fy_document_root(doc)) || !fy_node_is_mapping(root)) {
                r = fail(err, n, -EINVAL, "kubeconfig %s: not a YAML mapping (a kubeconfig has clusters, users and contexts)",
                         path);
                goto out;
        }
        r = build_kubeconfig(root, path, dir, context, a, err, n);
        if (r < 0)
                goto out;
        *ret = a;
        a = NULL;
out:
        fy_document_destroy(doc);
        fy_diag_destroy(diag);
        if (text)
                explicit_bzero(text, len);
        free(text);
        free(dir);
        kubeauth_free(a);
        return r;
}

/* ---- in cluster -------------------------------------------------------------- */

int kubeauth_load_incluster(const char *sa_dir, struct kubeauth **ret, char *err, size_t n)
{
        const char *host = getenv("KUBERNETES_SERVICE_HOST");
        const char *port = getenv("KUBERNETES_SERVICE_PORT");
        struct kubeauth *a = NULL;
        char path[4096];
        char *ns = NULL;
        size_t nslen;
        int r;

        if (n)
                err[0] = '\0';
        if (!sa_dir)
                sa_dir = KUBEAUTH_SA_DIR;
        if (!host || !*host || !port || !*port || strspn(port, "0123456789") != strlen(port) ||
            strlen(host) > 253 || strlen(port) > 5)
                return fail(err, n, -ENOENT,
                            "in-cluster access needs KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT (set in every pod); outside a cluster give the provider a kubeconfig");
        if (!(a = calloc(1, sizeof(*a))))
                return -ENOMEM;
        if (asprintf(&a->server, strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s", host, port) < 0) {
                a->server = NULL;
                r = -ENOMEM;
                goto out;
        }
        if (snprintf(path, sizeof(path), "%s/token", sa_dir) >= (int)sizeof(path) ||
            !(a->token_file = strdup(path))) {
                r = -ENAMETOOLONG;
                goto out;
        }
        r = kubeauth_refresh(a, true);
        if (r < 0) {
                fail(err, n, r, "in-cluster service account: cannot read %s: %s", path, strerror(-r));
                goto out;
        }
        snprintf(path, sizeof(path), "%s/ca.crt", sa_dir);
        r = read_pem_file(path, &a->ca_pem, &a->ca_pem_len);
        if (r < 0) {
                fail(err, n, r, "in-cluster service account: cannot read %s: %s", path, strerror(-r));
                goto out;
        }
        snprintf(path, sizeof(path), "%s/namespace", sa_dir);
        r = fs_read_regular(path, 256, &ns, &nslen);
        if (r == 0) {
                while (nslen && (ns[nslen - 1] == '\n' || ns[nslen - 1] == ' '))
                        ns[--nslen] = '\0';
                if (nslen)
                        a->namespace = ns;
                else
                        free(ns);
        } else if (r != -ENOENT) {
                fail(err, n, r, "in-cluster service account: cannot read %s: %s", path, strerror(-r));
                goto out;
        }
        r = 0;
        *ret = a;
        a = NULL;
out:
        kubeauth_free(a);
        return r;
}
