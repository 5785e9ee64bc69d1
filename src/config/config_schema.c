/* config_schema.c: the key table (every key, its type, default, limits and
 * documentation), the validators of single values, the cross-key checks
 * (references, listings and their label limits) and what this build can
 * run. Never reads files or the environment: that is config_files.c. */
#include "config/config.h"
#include "util/hostport.h"
#include "util/scope.h"
#include "config/config_internal.h"

#include "util/secret.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

_Static_assert(MAX_STRING <= CONFIG_MAX_ARG_BYTES, "a runner.command item is a scalar");

#define DURATION_MAX (30LL * 24 * 3600 * 1000)

/* ---- validators --------------------------------------------------------------- */

static const struct ynode *vpos(const struct ynode *const *k, const struct ynode *const *v,
                                size_t i, const struct ynode *fallback)
{
        if (v[i] && v[i]->kind != YN_NULL)
                return v[i];
        if (k[i])
                return k[i];
        return fallback;
}

static char *resolve(const char *dir, const char *p)
{
        char *out;

        if (p[0] == '/' || !dir || strcmp(dir, ".") == 0)
                return strdup(p);
        if (asprintf(&out, "%s/%s", dir, p) < 0)
                return NULL;
        return out;
}

int config_listen_parse(const char *s, char **ret_host, int *ret_port)
{
        struct hostport hp;
        char *h;
        int r = hostport_parse(s, 0, &hp, NULL);

        if (r < 0)
                return r;
        if (!(h = strdup(hp.host)))
                return -ENOMEM;
        *ret_host = h;
        *ret_port = hp.port;
        return 0;
}

/* host as returned by config_listen_parse: "localhost", an IPv4 or an IPv6
 * literal. 127.0.0.0/8 and ::1 are loopback; so is ::ffff:127.x.y.z. */
static bool is_loopback(const char *host)
{
        unsigned char a[16];

        if (strcmp(host, "localhost") == 0)
                return true;
        if (inet_pton(AF_INET, host, a) == 1)
                return a[0] == 127;
        if (inet_pton(AF_INET6, host, a) != 1)
                return false;
        if (memcmp(a, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\1", 16) == 0)
                return true;
        return memcmp(a, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0 && a[12] == 127;
}

/* Parses the listen address s of key k (value node v); the messages name
 * the key. Returns false after reporting. */
static bool listen_value(struct walk *w, const struct key *k, const struct ynode *v, const char *s,
                         char **ret_host, int *ret_port)
{
        int r = config_listen_parse(s, ret_host, ret_port);

        if (r == -ENOMEM) {
                w->errs->oom = true;
                return false;
        }
        if (r == -ERANGE) {
                config__werr(w, v, "%s %s: port %s is out of range; use 0 to 65535 (0 picks a free port)",
                             config__kp(w, k), Q(s), Q(strrchr(s, ':') + 1));
                return false;
        }
        if (r < 0) {
                config__werr(w, v, "%s %s is not a listen address; use HOST:PORT with an IP address or localhost, e.g. 127.0.0.1:%s or [::1]:%s",
                             config__kp(w, k), Q(s), w->path[0] ? "9465" : "9464", w->path[0] ? "9465" : "9464");
                return false;
        }
        return true;
}

static bool check_listen(struct walk *w, const struct key *k, const struct ynode *v, void *obj)
{
        struct config *cfg = obj;
        char *host;
        int port;

        if (!listen_value(w, k, v, cfg->listen, &host, &port))
                return false;
        free(cfg->listen_host);
        cfg->listen_host = host;
        cfg->listen_port = port;
        if (!is_loopback(host))
                config__wwarn(w, v, "%s %s is not a loopback address: the HTTP API (metrics, status, demand) has no authentication, so anyone who can reach it can read it; listen on 127.0.0.1 or [::1], or restrict access with a firewall",
                              config__kp(w, k), Q(cfg->listen));
        return true;
}

/* Every interface: 0.0.0.0, ::, or :: mapping 0.0.0.0. */
static bool is_wildcard(const char *host)
{
        unsigned char a[16];

        if (inet_pton(AF_INET, host, a) == 1)
                return memcmp(a, "\0\0\0\0", 4) == 0;
        if (inet_pton(AF_INET6, host, a) != 1)
                return false;
        return memcmp(a, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16) == 0 ||
               memcmp(a, "\0\0\0\0\0\0\0\0\0\0\xff\xff\0\0\0\0", 16) == 0;
}

static bool check_broker_listen(struct walk *w, const struct key *k, const struct ynode *v, void *obj)
{
        struct config_broker *b = obj;
        char *host;
        int port;

        if (!listen_value(w, k, v, b->listen, &host, &port))
                return false;
        free(b->listen_host);
        b->listen_host = host;
        b->listen_port = port;
        return true;
}

/* The optional ":PORT" of a URL's authority (host, "[v6]" or either with a
 * port): 1 to 65535, digits only. curl would otherwise fail at the first
 * request, far from the configuration. */
static bool url_port_ok(struct walk *w, const struct key *k, const struct ynode *v,
                        const char *url, const char *auth, size_t alen)
{
        const char *end = auth + alen, *colon = NULL, *rb;
        char port[16];
        size_t pl;
        long n = 0;

        if (auth[0] == '[') {
                rb = memchr(auth, ']', alen);
                if (!rb) {
                        config__werr(w, v, "%s %s has an unclosed '[' in its host", config__kp(w, k), Q(url));
                        return false;
                }
                if (rb + 1 < end && rb[1] != ':') {
                        config__werr(w, v, "%s %s has text after the ']' of its host", config__kp(w, k), Q(url));
                        return false;
                }
                if (rb + 1 < end)
                        colon = rb + 1;
        } else {
                colon = memchr(auth, ':', alen);
        }
        if (!colon)
                return true;
        pl = (size_t)(end - colon - 1);
        snprintf(port, sizeof(port), "%.*s%s", (int)(pl < 8 ? pl : 8), colon + 1, pl > 8 ? "..." : "");
        if (pl == 0) {
                config__werr(w, v, "%s %s has an empty port; remove the ':' or give a port", config__kp(w, k), Q(url));
                return false;
        }
        for (const char *p = colon + 1; p < end; p++) {
                if (!isdigit((unsigned char)*p)) {
                        config__werr(w, v, "%s %s: port %s is not a number", config__kp(w, k), Q(url), Q(port));
                        return false;
                }
                if (n <= 65535)
                        n = n * 10 + (*p - '0');
        }
        if (n < 1 || n > 65535) {
                config__werr(w, v, "%s %s: port %s is out of range; use 1 to 65535", config__kp(w, k), Q(url), Q(port));
                return false;
        }
        return true;
}

/* A URL (the char * field of k): http:// or https://, a host, an optional
 * port, no credentials, query or fragment; normalised in place. cred_fix
 * ends the message about credentials. */
static bool url_value(struct walk *w, const struct key *k, const struct ynode *v, void *obj,
                      const char *cred_fix)
{
        char *u = *(char **)config__field(obj, k);
        const char *sep = strstr(u, "://");
        const char *auth = sep ? sep + 3 : u;
        size_t skip, n, alen = strcspn(auth, "/?#");

        /* Checked first, and the value is not echoed: it holds a password. */
        if (memchr(auth, '@', alen)) {
                config__werr(w, v, "%s must not hold credentials (user:password@)%s",
                             config__kp(w, k), cred_fix);
                return false;
        }
        if (strncasecmp(u, "https://", 8) == 0) {
                skip = 8;
        } else if (strncasecmp(u, "http://", 7) == 0) {
                skip = 7;
        } else {
                config__werr(w, v, "%s %s must start with http:// or https://", config__kp(w, k), Q(u));
                return false;
        }
        for (const char *p = u; *p; p++)
                if ((unsigned char)*p <= ' ' || *p == 0x7f) {
                        config__werr(w, v, "%s %s contains whitespace or a control character", config__kp(w, k), Q(u));
                        return false;
                }
        if (alen == 0) {
                config__werr(w, v, "%s %s has no host name", config__kp(w, k), Q(u));
                return false;
        }
        if (strpbrk(u, "?#")) {
                config__werr(w, v, "%s %s must not have a query or fragment", config__kp(w, k), Q(u));
                return false;
        }
        if (!url_port_ok(w, k, v, u, auth, alen))
                return false;
        /* Normalise: lower-case scheme, no trailing slashes. */
        for (size_t i = 0; i < skip; i++)
                u[i] = (char)tolower((unsigned char)u[i]);
        n = strlen(u);
        while (n > skip && u[n - 1] == '/')
                u[--n] = '\0';
        return true;
}

static bool check_url(struct walk *w, const struct key *k, const struct ynode *v, void *obj)
{
        return url_value(w, k, v, obj, "; use token_file or token_env");
}

static bool check_broker_url(struct walk *w, const struct key *k, const struct ynode *v, void *obj)
{
        /* Workers authenticate with their own token, never with the URL. */
        return url_value(w, k, v, obj, "");
}

int config_scope_parse(const char *s, struct config_scope *ret_scope)
{
        struct config_scope sc = { 0 };
        struct scope_parts p;

        _Static_assert((int)CONFIG_SCOPE_REPO == (int)SCOPE_REPO && (int)CONFIG_SCOPE_ORG == (int)SCOPE_ORG &&
                       (int)CONFIG_SCOPE_USER == (int)SCOPE_USER, "scope kinds agree");
        if (scope_split(s, &p) < 0)
                return -EINVAL;
        sc.kind = (enum config_scope_kind)p.kind;
        if (p.owner_len && !(sc.owner = strndup(p.owner, p.owner_len)))
                return -ENOMEM;
        if (p.repo_len && !(sc.repo = strndup(p.repo, p.repo_len))) {
                free(sc.owner);
                return -ENOMEM;
        }
        *ret_scope = sc;
        return 0;
}

void config_scope_done(struct config_scope *s)
{
        if (!s)
                return;
        free(s->owner);
        free(s->repo);
        s->owner = s->repo = NULL;
}

static bool check_scope(struct walk *w, const struct key *k, const struct ynode *v, void *obj)
{
        struct config_pool *p = obj;
        struct config_scope sc;
        int r;

        r = config_scope_parse(p->scope_text, &sc);
        if (r == -ENOMEM) {
                w->errs->oom = true;
                return false;
        }
        if (r < 0) {
                config__werr(w, v, "%s %s is invalid; use instance, user, org/NAME or repo/OWNER/NAME",
                             config__kp(w, k), Q(p->scope_text));
                return false;
        }
        config_scope_done(&p->scope);
        p->scope = sc;
        return true;
}

static bool check_labels(struct walk *w, const struct key *k, const struct ynode *v, void *obj)
{
        struct config_pool *p = obj;
        bool ok = true;

        if (p->labels.n == 0) {
                config__werr(w, v, "%s is empty; a pool needs at least one label (jobs with an empty runs-on never match a runner)",
                             config__kp(w, k));
                return false;
        }
        if (p->labels.n > CONFIG_MAX_LABELS) {
                config__werr(w, v, "%s has %zu items; a pool has at most %d labels",
                             config__kp(w, k), p->labels.n, CONFIG_MAX_LABELS);
                return false;
        }
        /* The list converted without errors, so items map 1:1 to nodes. */
        for (size_t i = 0; i < p->labels.n; i++) {
                const char *l = p->labels.v[i];
                const struct ynode *at = i < v->n ? v->kids[i] : v;
                bool bad = false;

                if (!*l) {
                        config__werr(w, at, "%s item %zu is an empty string", config__kp(w, k), i + 1);
                        ok = false;
                        continue;
                }
                for (const char *c = l; *c; c++)
                        if (isspace((unsigned char)*c) || *c == ',' || *c == ':' ||
                            (unsigned char)*c < 0x20 || *c == 0x7f)
                                bad = true;
                if (bad || strlen(l) > 255) {
                        config__werr(w, at, "%s: %s is not a valid label name; use no whitespace, ',' or ':' and at most 255 bytes (the scheme goes in runner.label_scheme)",
                                     config__kp(w, k), Q(l));
                        ok = false;
                        continue;
                }
                for (size_t j = 0; j < i; j++)
                        if (strcmp(p->labels.v[j], l) == 0) {
                                const struct ynode *first = j < v->n ? v->kids[j] : v;
                                config__werr(w, at, "%s: %s is listed twice (first at %d:%d)",
                                             config__kp(w, k), Q(l), first->line, first->col);
                                ok = false;
                                break;
                        }
        }
        return ok;
}

static bool check_command(struct walk *w, const struct key *k, const struct ynode *v, void *obj)
{
        struct config_runner *rn = obj;

        if (rn->command.n == 0) {
                config__werr(w, v, "%s is empty; give the program and its arguments, e.g. [/usr/local/bin/forgejo-runner]",
                             config__kp(w, k));
                return false;
        }
        /* forgescale appends up to 2 * CONFIG_MAX_LABELS + 12 arguments. */
        if (rn->command.n > CONFIG_MAX_COMMAND_ARGS) {
                config__werr(w, v, "%s has %zu items; at most %d (the program and its arguments)",
                             config__kp(w, k), rn->command.n, CONFIG_MAX_COMMAND_ARGS);
                return false;
        }
        for (size_t i = 0; i < rn->command.n; i++) {
                const struct ynode *at = i < v->n ? v->kids[i] : v;
                if (!*rn->command.v[i]) {
                        config__werr(w, at, "%s item %zu is an empty string", config__kp(w, k), i + 1);
                        return false;
                }
                /* Also refused earlier as a scalar over MAX_STRING. */
                if (strlen(rn->command.v[i]) > CONFIG_MAX_ARG_BYTES) {
                        config__werr(w, at, "%s item %zu is longer than %d bytes",
                                     config__kp(w, k), i + 1, CONFIG_MAX_ARG_BYTES);
                        return false;
                }
        }
        return true;
}

static bool check_runner_env(struct walk *w, const struct key *k, const struct ynode *v, void *obj)
{
        struct config_runner *rn = obj;

        /* The daemon adds its own FORGESCALE_* variables next to these. */
        if (rn->env.n > CONFIG_MAX_RUNNER_ENV) {
                config__werr(w, v, "%s has %zu entries; at most %d", config__kp(w, k), rn->env.n, CONFIG_MAX_RUNNER_ENV);
                return false;
        }
        return true;
}

static bool check_label_scheme(struct walk *w, const struct key *k, const struct ynode *v, void *obj)
{
        struct config_runner *rn = obj;
        const char *s = rn->label_scheme;
        bool ok;

        ok = strcmp(s, "host") == 0 ||
             ((strncmp(s, "docker://", 9) == 0 && s[9]) ||
              (strncmp(s, "lxc://", 6) == 0 && s[6])) ||
             strcmp(s, "docker") == 0 || strcmp(s, "lxc") == 0;
        for (const char *c = s; ok && *c; c++)
                if ((unsigned char)*c <= ' ' || *c == ',' || *c == 0x7f)
                        ok = false;
        if (!ok) {
                config__werr(w, v, "%s %s is invalid; use host, docker://IMAGE or lxc://DISTRO:RELEASE",
                             config__kp(w, k), Q(s));
                return false;
        }
        return true;
}

static bool check_env_name(struct walk *w, const struct key *k, const struct ynode *v, void *obj)
{
        const char *s = *(char **)config__field(obj, k);

        if (!config__env_name_ok(s)) {
                config__werr(w, v, "%s %s is not a valid environment variable name; use letters, digits and '_', not starting with a digit",
                             config__kp(w, k), Q(s));
                return false;
        }
        return true;
}

/* A user or group name as useradd/groupadd accept it (portable set, not
 * starting with '-'), or a numeric id below (uid_t)-1. */
bool config__account_ok(const char *s, bool *ret_numeric)
{
        size_t n = strlen(s);
        bool digits = true;

        if (n == 0 || n > 32 || s[0] == '-')
                return false;
        for (const char *c = s; *c; c++) {
                if (!isdigit((unsigned char)*c))
                        digits = false;
                if (!(isalnum((unsigned char)*c) || *c == '_' || *c == '.' || *c == '-'))
                        return false;
        }
        if (digits) {
                char *end;
                unsigned long long v;
                errno = 0;
                v = strtoull(s, &end, 10);
                if (errno || *end || v >= 4294967295ULL)
                        return false;
        }
        *ret_numeric = digits;
        return true;
}

static bool check_account(struct walk *w, const struct key *k, const struct ynode *v, void *obj)
{
        const char *s = *(char **)config__field(obj, k);
        bool numeric;

        if (!config__account_ok(s, &numeric)) {
                config__werr(w, v, "%s %s is not a %s name or a numeric id; names are letters, digits, '_', '.' and '-' (at most 32, not starting with '-')",
                             config__kp(w, k), Q(s), strcmp(k->name, "group") == 0 ? "group" : "user");
                return false;
        }
        return true;
}


/* ---- kubernetes provider values ------------------------------------------ */

/* RFC 1123 label (namespaces): lower-case alphanumerics and '-', at most
 * 63, alphanumeric at both ends. */
static bool dns_label_ok(const char *s, size_t n)
{
        if (n == 0 || n > 63 || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1]))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-'))
                        return false;
        return true;
}

/* RFC 1123 subdomain (service accounts): dot-separated labels, at most 253. */
static bool dns_subdomain_ok(const char *s)
{
        size_t n = strlen(s);

        if (n == 0 || n > 253)
                return false;
        while (*s) {
                size_t l = strcspn(s, ".");
                if (!dns_label_ok(s, l))
                        return false;
                s += l;
                if (*s == '.' && !*++s)
                        return false;
        }
        return true;
}

static bool check_k8s_namespace(struct walk *w, const struct key *k, const struct ynode *v, void *obj)
{
        const char *s = *(char **)config__field(obj, k);

        if (!dns_label_ok(s, strlen(s))) {
                config__werr(w, v, "%s %s is not a Kubernetes namespace name; use lower-case letters, digits and '-' (at most 63, starting and ending with a letter or digit)",
                             config__kp(w, k), Q(s));
                return false;
        }
        return true;
}

static bool check_k8s_subdomain(struct walk *w, const struct key *k, const struct ynode *v, void *obj)
{
        const char *s = *(char **)config__field(obj, k);

        if (!dns_subdomain_ok(s)) {
                config__werr(w, v, "%s %s is not a Kubernetes object name; use lower-case letters, digits, '-' and '.' (at most 253)",
                             config__kp(w, k), Q(s));
                return false;
        }
        return true;
}

static bool check_k8s_image(struct walk *w, const struct key *k, const struct ynode *v, void *obj)
{
        const char *s = *(char **)config__field(obj, k);

        for (const char *c = s; *c; c++) {
                if (isspace((unsigned char)*c) || iscntrl((unsigned char)*c)) {
                        config__werr(w, v, "%s %s contains white space; give an image reference such as code.forgejo.org/forgejo/runner:11",
                                     config__kp(w, k), Q(s));
                        return false;
                }
        }
        return true;
}

/* A Kubernetes quantity: a decimal number, then an optional suffix (Ki..Ei,
 * n u m k M G T P E, or an exponent). */
static bool quantity_ok(const char *s)
{
        static const char *const suffixes[] = { "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m",
                                                "k", "M", "G", "T", "P", "E", NULL };
        bool digits = false;

        if (*s == '+' || *s == '-')
                s++;
        while (isdigit((unsigned char)*s)) {
                s++;
                digits = true;
        }
        if (*s == '.') {
                s++;
                while (isdigit((unsigned char)*s)) {
                        s++;
                        digits = true;
                }
        }
        if (!digits)
                return false;
        if (*s == 'e' || *s == 'E') {
                const char *e = s + 1;
                if (*e == '+' || *e == '-')
                        e++;
                if (isdigit((unsigned char)*e)) {
                        while (isdigit((unsigned char)*e))
                                e++;
                        return *e == '\0';
                }
        }
        for (size_t i = 0; suffixes[i]; i++)
                if (strcmp(s, suffixes[i]) == 0)
                        return true;
        return false;
}

static bool need_map(struct walk *w, const char *what, const struct ynode *v)
{
        if (v->kind == YN_MAP)
                return true;
        config__werr(w, v, "%s must be a mapping, got %s", what, DESC(v));
        return false;
}

static bool need_scalar(struct walk *w, const char *what, const struct ynode *v)
{
        if (v->kind == YN_SCALAR)
                return true;
        config__werr(w, v, "%s must be a string, got %s", what, DESC(v));
        return false;
}

/* Keys of a nested mapping: plain strings, one of names (NULL: any). */
static bool map_key_ok(struct walk *w, const char *what, const struct ynode *ky,
                       const char *const *names, const char *hint)
{
        if (ky->kind != YN_SCALAR || ky->len == 0 || ky->len != strlen(ky->s)) {
                config__werr(w, ky, "%s: keys must be plain strings, got %s", what, DESC(ky));
                return false;
        }
        if (!names)
                return true;
        for (size_t i = 0; names[i]; i++)
                if (strcmp(names[i], ky->s) == 0)
                        return true;
        config__werr(w, ky, "%s: unknown key %s; use %s", what, Q(ky->s), hint);
        return false;
}

static bool check_k8s_resources(struct walk *w, const struct key *k, const struct ynode *v, void *obj)
{
        static const char *const top[] = { "requests", "limits", NULL };
        bool ok = true;
        char what[160];

        if (!need_map(w, config__kp(w, k), v))
                return false;
        for (size_t i = 0; i + 1 < v->n; i += 2) {
                const struct ynode *ky = v->kids[i], *m = v->kids[i + 1];
                if (!map_key_ok(w, config__kp(w, k), ky, top, "requests or limits")) {
                        ok = false;
                        continue;
                }
                snprintf(what, sizeof(what), "%s.%s", config__kp(w, k), ky->s);
                if (!need_map(w, what, m)) {
                        ok = false;
                        continue;
                }
                for (size_t j = 0; j + 1 < m->n; j += 2) {
                        const struct ynode *rk = m->kids[j], *q = m->kids[j + 1];
                        if (!map_key_ok(w, what, rk, NULL, NULL)) {
                                ok = false;
                                continue;
                        }
                        /* Extended resources (vendor.example/gpu) carry a '/'. */
                        if (strcmp(rk->s, "cpu") != 0 && strcmp(rk->s, "memory") != 0 &&
                            strcmp(rk->s, "ephemeral-storage") != 0 && !strchr(rk->s, '/')) {
                                config__werr(w, rk, "%s: unknown resource %s; use cpu, memory, ephemeral-storage or an extended resource such as example.com/gpu",
                                             what, Q(rk->s));
                                ok = false;
                                continue;
                        }
                        if (q->kind != YN_SCALAR || !quantity_ok(q->s)) {
                                config__werr(w, q, "%s.%s must be a quantity such as 500m, 2 or 1Gi, got %s",
                                             what, B(rk->s), DESC(q));
                                ok = false;
                        }
                }
        }
        return ok;
}

/* Label values: at most 63 of [A-Za-z0-9._-], alphanumeric at both ends. */
static bool label_value_ok(const char *s, size_t n)
{
        if (n == 0)
                return true;
        if (n > 63 || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1]))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!(isalnum((unsigned char)s[i]) || s[i] == '-' || s[i] == '_' || s[i] == '.'))
                        return false;
        return true;
}

/* Label keys: [prefix/]name, the prefix a DNS subdomain, the name a label
 * value that is not empty. */
static bool label_key_ok(const char *s)
{
        const char *slash = strchr(s, '/');
        const char *name = slash ? slash + 1 : s;

        if (slash) {
                char pfx[254];
                size_t pn = (size_t)(slash - s);
                if (pn == 0 || pn >= sizeof(pfx))
                        return false;
                memcpy(pfx, s, pn);
                pfx[pn] = '\0';
                if (!dns_subdomain_ok(pfx))
                        return false;
        }
        return *name && label_value_ok(name, strlen(name));
}

static bool check_k8s_node_selector(struct walk *w, const struct key *k, const struct ynode *v, void *obj)
{
        bool ok = true;
        char what[160];

        if (!need_map(w, config__kp(w, k), v))
                return false;
        for (size_t i = 0; i + 1 < v->n; i += 2) {
                const struct ynode *ky = v->kids[i], *val = v->kids[i + 1];
                if (!map_key_ok(w, config__kp(w, k), ky, NULL, NULL)) {
                        ok = false;
                        continue;
                }
                if (!label_key_ok(ky->s)) {
                        config__werr(w, ky, "%s: %s is not a label key; use [prefix/]name, the name at most 63 of letters, digits, '-', '_' and '.'",
                                     config__kp(w, k), Q(ky->s));
                        ok = false;
                }
                snprintf(what, sizeof(what), "%s.%s", config__kp(w, k), B(ky->s));
                if (!need_scalar(w, what, val)) {
                        ok = false;
                } else if (!label_value_ok(val->s, val->len)) {
                        config__werr(w, val, "%s.%s: %s is not a label value; use at most 63 of letters, digits, '-', '_' and '.', starting and ending with a letter or digit",
                                     config__kp(w, k), B(ky->s), Q(val->s));
                        ok = false;
                }
        }
        return ok;
}

static bool check_k8s_tolerations(struct walk *w, const struct key *k, const struct ynode *v, void *obj)
{
        static const char *const keys[] = { "key", "operator", "value", "effect", "tolerationSeconds", NULL };
        static const char *const ops[] = { "Exists", "Equal", NULL };
        static const char *const effects[] = { "NoSchedule", "PreferNoSchedule", "NoExecute", NULL };
        bool ok = true;
        char what[160];

        if (v->kind != YN_SEQ) {
                config__werr(w, v, "%s must be a list of mappings, got %s", config__kp(w, k), DESC(v));
                return false;
        }
        for (size_t i = 0; i < v->n; i++) {
                const struct ynode *t = v->kids[i];
                snprintf(what, sizeof(what), "%s[%zu]", config__kp(w, k), i);
                if (!need_map(w, what, t)) {
                        ok = false;
                        continue;
                }
                for (size_t j = 0; j + 1 < t->n; j += 2) {
                        const struct ynode *ky = t->kids[j], *val = t->kids[j + 1];
                        const char *const *allowed = NULL;
                        if (!map_key_ok(w, what, ky, keys, "key, operator, value, effect or tolerationSeconds")) {
                                ok = false;
                                continue;
                        }
                        if (strcmp(ky->s, "tolerationSeconds") == 0) {
                                if (val->kind != YN_SCALAR || val->quoted || !*val->s ||
                                    strspn(val->s, "0123456789") != val->len || val->len > 9) {
                                        config__werr(w, val, "%s.tolerationSeconds must be a whole number of seconds, got %s",
                                                     what, DESC(val));
                                        ok = false;
                                }
                                continue;
                        }
                        if (!need_scalar(w, what, val)) {
                                ok = false;
                                continue;
                        }
                        if (strcmp(ky->s, "operator") == 0)
                                allowed = ops;
                        else if (strcmp(ky->s, "effect") == 0)
                                allowed = effects;
                        if (allowed) {
                                bool found = false;
                                for (size_t a = 0; allowed[a]; a++)
                                        found = found || strcmp(allowed[a], val->s) == 0;
                                if (!found) {
                                        config__werr(w, val, "%s.%s %s is invalid; use %s", what, ky->s, Q(val->s),
                                                     allowed == ops ? "Exists or Equal"
                                                                    : "NoSchedule, PreferNoSchedule or NoExecute");
                                        ok = false;
                                }
                        }
                }
        }
        return ok;
}

/* The fields of a core/v1 PodSpec: a typo is caught by `check`, not by the
 * API server at the first launch. */
static const char *const podspec_fields[] = {
        "activeDeadlineSeconds", "affinity", "automountServiceAccountToken", "containers",
        "dnsConfig", "dnsPolicy", "enableServiceLinks", "ephemeralContainers", "hostAliases",
        "hostIPC", "hostNetwork", "hostPID", "hostUsers", "hostname", "imagePullSecrets",
        "initContainers", "nodeName", "nodeSelector", "os", "overhead", "preemptionPolicy",
        "priority", "priorityClassName", "readinessGates", "resourceClaims", "resources",
        "restartPolicy", "runtimeClassName", "schedulerName", "schedulingGates", "securityContext",
        "serviceAccount", "serviceAccountName", "setHostnameAsFQDN", "shareProcessNamespace",
        "subdomain", "terminationGracePeriodSeconds", "tolerations", "topologySpreadConstraints",
        "volumes", NULL,
};

static bool check_k8s_pod_template(struct walk *w, const struct key *k, const struct ynode *v, void *obj)
{
        bool ok = true;

        if (!need_map(w, config__kp(w, k), v))
                return false;
        for (size_t i = 0; i + 1 < v->n; i += 2) {
                const struct ynode *ky = v->kids[i], *val = v->kids[i + 1];
                const char *sug;
                bool known = false;
                if (!map_key_ok(w, config__kp(w, k), ky, NULL, NULL)) {
                        ok = false;
                        continue;
                }
                for (size_t j = 0; podspec_fields[j]; j++)
                        known = known || strcmp(podspec_fields[j], ky->s) == 0;
                if (!known) {
                        sug = config_suggest(ky->s, podspec_fields,
                                             sizeof(podspec_fields) / sizeof(podspec_fields[0]) - 1);
                        if (sug)
                                config__werr(w, ky, "%s: %s is not a field of a pod spec; did you mean \"%s\"?",
                                             config__kp(w, k), Q(ky->s), sug);
                        else
                                config__werr(w, ky, "%s: %s is not a field of a pod spec (pod_template holds fields of spec.template.spec, e.g. securityContext or affinity)",
                                             config__kp(w, k), Q(ky->s));
                        ok = false;
                        continue;
                }
                if (strcmp(ky->s, "restartPolicy") == 0 &&
                    !(val->kind == YN_SCALAR && strcmp(val->s, "Never") == 0)) {
                        config__werr(w, val, "%s.restartPolicy must be Never (a worker runs one job; its Job has backoffLimit 0)",
                                     config__kp(w, k));
                        ok = false;
                }
                if ((strcmp(ky->s, "containers") == 0 || strcmp(ky->s, "volumes") == 0 ||
                     strcmp(ky->s, "initContainers") == 0 || strcmp(ky->s, "tolerations") == 0) &&
                    val->kind != YN_SEQ) {
                        config__werr(w, val, "%s.%s must be a list, got %s", config__kp(w, k), ky->s, DESC(val));
                        ok = false;
                }
                if (strcmp(ky->s, "containers") == 0 && val->kind == YN_SEQ) {
                        for (size_t c = 0; c < val->n; c++) {
                                const struct ynode *ct = val->kids[c];
                                bool named = false;
                                if (ct->kind != YN_MAP) {
                                        config__werr(w, ct, "%s.containers[%zu] must be a mapping, got %s",
                                                     config__kp(w, k), c, DESC(ct));
                                        ok = false;
                                        continue;
                                }
                                for (size_t j = 0; j + 1 < ct->n; j += 2)
                                        named = named || (ct->kids[j]->kind == YN_SCALAR &&
                                                          strcmp(ct->kids[j]->s, "name") == 0 &&
                                                          ct->kids[j + 1]->kind == YN_SCALAR);
                                if (!named) {
                                        config__werr(w, ct, "%s.containers[%zu] has no name; name it runner to add to the worker's container, or give a sidecar its own name",
                                                     config__kp(w, k), c);
                                        ok = false;
                                }
                        }
                }
        }
        return ok;
}

static void forge_finish(struct walk *w, void *obj, const struct ynode *const *sk,
                         const struct ynode *const *sv, const struct ynode *where);
static void forge_done(void *obj);
static void provider_finish(struct walk *w, void *obj, const struct ynode *const *sk,
                            const struct ynode *const *sv, const struct ynode *where);
static void provider_done(void *obj);
static void pool_finish(struct walk *w, void *obj, const struct ynode *const *sk,
                        const struct ynode *const *sv, const struct ynode *where);
static void pool_done(void *obj);
static void broker_finish(struct walk *w, void *obj, const struct ynode *const *sk,
                          const struct ynode *const *sv, const struct ynode *where);
static void broker_done(void *obj);
static void top_finish(struct walk *w, void *obj, const struct ynode *const *sk,
                       const struct ynode *const *sv, const struct ynode *where);
static void top_done(void *obj);

/* ---- the key table ---------------------------------------------------------- */

static const char *const log_levels[] = { "error", "warn", "info", "debug", NULL };
static const char *const log_formats[] = { "logfmt", "json", NULL };
static const char *const forge_kinds[] = { "forgejo", "gitea", NULL };
static const char *const provider_types[] = { "local", "container", "kubernetes", "ssh", "external", NULL };
static const char *const pool_modes[] = { "queue", "broker", NULL };
static const char *const broker_codecs[] = { "proto", "json", NULL };

_Static_assert(sizeof(enum log_level) == sizeof(int), "enums are stored as int");
_Static_assert(sizeof(enum config_forge_kind) == sizeof(int), "enums are stored as int");
_Static_assert(sizeof(enum config_provider_type) == sizeof(int), "enums are stored as int");
_Static_assert(sizeof(enum config_pool_mode) == sizeof(int), "enums are stored as int");
_Static_assert(sizeof(enum config_broker_codec) == sizeof(int), "enums are stored as int");
_Static_assert(offsetof(struct config_forge, name) == 0, "name first");
_Static_assert(offsetof(struct config_provider, name) == 0, "name first");
_Static_assert(offsetof(struct config_pool, name) == 0, "name first");

#define ENTRY(st, fld) .off = offsetof(st, fld)

#define N_NAMES(a) (sizeof(a) / sizeof((a)[0]) - 1)     /* without the NULL */

const char *config_provider_type_name(enum config_provider_type t)
{
        return (unsigned)t < N_NAMES(provider_types) ? provider_types[t] : NULL;
}

const char *config_pool_mode_name(enum config_pool_mode m)
{
        return (unsigned)m < N_NAMES(pool_modes) ? pool_modes[m] : NULL;
}

/* Appends ", name" (or "name" first) to buf; text past cap is dropped. */
static void list_add(char *buf, size_t cap, size_t *o, const char *name)
{
        int wr = snprintf(buf + *o, cap - *o, "%s%s", *o ? ", " : "", name);

        if (wr > 0 && (size_t)wr < cap - *o)
                *o += (size_t)wr;
}

static const char *runnable_types(bool (*type_ok)(enum config_provider_type, void *), void *ud,
                                  char *buf, size_t cap)
{
        size_t o = 0;

        buf[0] = '\0';
        for (size_t i = 0; i < N_NAMES(provider_types); i++)
                if (type_ok((enum config_provider_type)i, ud))
                        list_add(buf, cap, &o, provider_types[i]);
        return o ? buf : "none";
}

static const char *runnable_modes(bool (*mode_ok)(enum config_pool_mode, void *), void *ud,
                                  char *buf, size_t cap)
{
        size_t o = 0;

        buf[0] = '\0';
        for (size_t i = 0; i < N_NAMES(pool_modes); i++)
                if (mode_ok((enum config_pool_mode)i, ud))
                        list_add(buf, cap, &o, pool_modes[i]);
        return o ? buf : "none";
}

int config_check_runnable(const struct config *cfg,
                          bool (*type_ok)(enum config_provider_type t, void *ud),
                          bool (*mode_ok)(enum config_pool_mode m, void *ud),
                          void *ud, struct config_diag *reterr_diag)
{
        struct errlist errs = { 0 };
        char q[QBUF], list[128];
        int r = 0;

        for (size_t i = 0; i < cfg->n_providers; i++) {
                const struct config_provider *p = &cfg->providers[i];
                if (!type_ok || type_ok(p->type, ud))
                        continue;
                config__errlist_add(&errs, p->type_pos.line, p->type_pos.col,
                                    "provider %s: type %s cannot run in this build of forgescale; types it can run: %s",
                                    config__quote(q, sizeof(q), p->name), config_provider_type_name(p->type),
                                    runnable_types(type_ok, ud, list, sizeof(list)));
        }
        for (size_t i = 0; i < cfg->n_pools; i++) {
                const struct config_pool *p = &cfg->pools[i];
                const struct config_pos *at = p->mode_pos.line ? &p->mode_pos : &p->pos;
                if (!mode_ok || mode_ok(p->mode, ud))
                        continue;
                config__errlist_add(&errs, at->line, at->col,
                                    "pool %s: mode %s%s cannot run in this build of forgescale; modes it can run: %s",
                                    config__quote(q, sizeof(q), p->name), config_pool_mode_name(p->mode),
                                    p->mode_pos.line ? "" : " (the default)",
                                    runnable_modes(mode_ok, ud, list, sizeof(list)));
        }
        return config__errlist_finish(&errs, cfg->path, reterr_diag, r);
}

static const struct key log_keys[] = {
        { .name = "level", .type = KT_ENUM, .def = "info", ENTRY(struct config_log, level),
          .enums = log_levels,
          .doc = "Lowest level written: error, warn, info or debug. `forgescale run --log-level` overrides it." },
        { .name = "format", .type = KT_ENUM, .def = "logfmt", ENTRY(struct config_log, format),
          .enums = log_formats,
          .doc = "Line format on stderr: logfmt (key=value) or json (one object per line). `--log-format` overrides it." },
};

static const struct section log_section = {
        .name = "log", .title = "log",
        .doc = "Logging of `forgescale run`. Registered secrets (tokens) are replaced by `[REDACTED]` in every line.",
        .keys = log_keys, .n_keys = sizeof(log_keys) / sizeof(log_keys[0]),
};

enum { BK_LISTEN, BK_URL, BK_WORKER_RETRIES, BK_CODEC };

static const struct key broker_keys[] = {
        [BK_LISTEN] = { .name = "listen", .type = KT_STR, .def = "127.0.0.1:9465",
          ENTRY(struct config_broker, listen), .check = check_broker_listen, .type_doc = "address",
          .doc = "HOST:PORT where workers of broker-mode pools connect to fetch their task (the runner protocol); HOST is an IP address (IPv6 in brackets) or localhost. Port 0 picks a free port. It must differ from `listen`. The endpoint hands a task, with its secrets, to any holder of a valid worker token, so an address other than loopback draws a warning from `check`; a wildcard (0.0.0.0, [::]) needs `url`." },
        [BK_URL] = { .name = "url", .type = KT_STR, ENTRY(struct config_broker, url),
          .check = check_broker_url, .type_doc = "URL",
          .doc = "URL workers reach the endpoint at, http:// or https://, with an optional port (1 to 65535). Unset: `http://` followed by `listen` (with port 0, the port bound at start); required when `listen` is a wildcard." },
        [BK_WORKER_RETRIES] = { .name = "worker_retries", .type = KT_INT, .def = "2",
          ENTRY(struct config_broker, worker_retries), .min = 0, .max = 10,
          .doc = "Fresh workers started for a task, after the first, when a worker never connects within the pool's `bootstrap_timeout`." },
        [BK_CODEC] = { .name = "codec", .type = KT_ENUM, .def = "proto", ENTRY(struct config_broker, codec),
          .enums = broker_codecs,
          .doc = "Encoding of the runner protocol upstream, towards the forge: proto (binary protobuf) or json (protojson)." },
};

static const struct section broker_section = {
        .name = "broker", .title = "broker",
        .doc = "The endpoint through which pools of mode broker hand the tasks forgescale fetched to their workers. Optional: the defaults apply when a pool has `mode: broker`; the checks of `check` apply only then.",
        .keys = broker_keys, .n_keys = sizeof(broker_keys) / sizeof(broker_keys[0]),
        .finish = broker_finish, .done = broker_done,
};

enum { FK_URL, FK_TOKEN_FILE, FK_TOKEN_ENV, FK_TOKEN, FK_KIND, FK_TIMEOUT, FK_CA_FILE, FK_INSECURE };

static const struct key forge_keys[] = {
        [FK_URL] = { .name = "url", .type = KT_STR, .flags = KF_REQUIRED,
          ENTRY(struct config_forge, url), .check = check_url, .type_doc = "URL",
          .example = "url: https://forgejo.example.org",
          .doc = "Base URL of the Forgejo or Gitea instance, http:// or https://, with an optional port (1 to 65535). Trailing slashes are dropped." },
        [FK_TOKEN_FILE] = { .name = "token_file", .type = KT_STR, ENTRY(struct config_forge, token_file),
          .type_doc = "path",
          .doc = "Regular file holding the API token alone on one line (at most 4096 bytes); refused when every user can write it, a warning when group or others can read it. Relative paths are resolved against the configuration file's folder. Exactly one of `token_file` and `token_env` is required." },
        [FK_TOKEN_ENV] = { .name = "token_env", .type = KT_STR, ENTRY(struct config_forge, token_env),
          .check = check_env_name, .type_doc = "variable name",
          .doc = "Name of the environment variable holding the API token." },
        [FK_TOKEN] = { .name = "token", .type = KT_REFUSED,
          .doc = "an inline token is refused; put it in a file and use token_file, or use token_env" },
        [FK_KIND] = { .name = "kind", .type = KT_ENUM, .def = "forgejo", ENTRY(struct config_forge, kind),
          .enums = forge_kinds,
          .doc = "Server software. Queue mode needs Forgejo ≥ 15; a gitea forge can only serve broker-mode pools." },
        [FK_TIMEOUT] = { .name = "timeout", .type = KT_DURATION, .def = "10s",
          ENTRY(struct config_forge, timeout_ms), .min = 100, .max = 10 * 60 * 1000,
          .doc = "Time limit of one API request." },
        [FK_CA_FILE] = { .name = "ca_file", .type = KT_STR, ENTRY(struct config_forge, ca_file),
          .type_doc = "path",
          .doc = "PEM file of certificate authorities to trust instead of the system store. TLS verification is always on unless `insecure_skip_verify` is true." },
        [FK_INSECURE] = { .name = "insecure_skip_verify", .type = KT_BOOL, .def = "false",
          ENTRY(struct config_forge, insecure_skip_verify),
          .doc = "Skip TLS certificate verification. For tests only." },
};

static const struct section forge_section = {
        .name = "forge", .title = "forges.NAME",
        .doc = "A Forgejo or Gitea instance and the token forgescale uses on it. Pools refer to forges by NAME.",
        .keys = forge_keys, .n_keys = sizeof(forge_keys) / sizeof(forge_keys[0]),
        .size = sizeof(struct config_forge), .pos_off = offsetof(struct config_forge, pos),
        .finish = forge_finish, .done = forge_done,
};

enum { PRK_TYPE, PRK_MAX_INSTANCES, PRK_STOP_GRACE, PRK_USER, PRK_GROUP,
       PRK_KUBECONFIG, PRK_CONTEXT, PRK_NAMESPACE, PRK_IMAGE, PRK_SERVICE_ACCOUNT, PRK_RESOURCES,
       PRK_NODE_SELECTOR, PRK_TOLERATIONS, PRK_POD_TEMPLATE, PRK_TTL, PRK_DEADLINE };

#define K8S KV(CONFIG_PROVIDER_KUBERNETES)

static const struct key provider_keys[] = {
        [PRK_TYPE] = { .name = "type", .type = KT_ENUM, .flags = KF_REQUIRED, ENTRY(struct config_provider, type),
          .enums = provider_types, .example = "type: local",
          .doc = "How instances are made: local (processes on this machine), container, kubernetes, ssh or external. `check` refuses a type this build cannot run." },
        [PRK_MAX_INSTANCES] = { .name = "max_instances", .type = KT_INT, .flags = KF_ZERO_UNSET,
          ENTRY(struct config_provider, max_instances), .min = 1, .max = 100000,
          .doc = "Most instances alive at once across every pool using this provider. Unset means unlimited." },
        [PRK_STOP_GRACE] = { .name = "stop_grace", .type = KT_DURATION, .def = "10s",
          ENTRY(struct config_provider, stop_grace_ms), .min = 0, .max = 10 * 60 * 1000,
          .doc = "Time an instance gets to stop after being asked to (SIGTERM or the provider's equivalent) before it is killed." },
        [PRK_USER] = { .name = "user", .type = KT_STR, ENTRY(struct config_provider, local.user),
          .check = check_account, .variants = KV(CONFIG_PROVIDER_LOCAL), .type_doc = "account",
          .doc = "Run workers as this account, a user name or a numeric uid, instead of the daemon's own. `check` verifies that a named account exists on the machine." },
        [PRK_GROUP] = { .name = "group", .type = KT_STR, ENTRY(struct config_provider, local.group),
          .check = check_account, .variants = KV(CONFIG_PROVIDER_LOCAL), .type_doc = "group",
          .doc = "Run workers with this group, a group name or a numeric gid. Unset: the primary group of `user`. `check` verifies that a named group exists on the machine." },
        [PRK_KUBECONFIG] = { .name = "kubeconfig", .type = KT_STR, ENTRY(struct config_provider, kubernetes.kubeconfig),
          .variants = K8S, .type_doc = "path",
          .doc = "kubeconfig file to reach the cluster with (relative to the configuration's folder): its context's server, certificate authority and user (token, token file or client certificate). Unset: in-cluster, with the pod's service account (token re-read when it rotates)." },
        [PRK_CONTEXT] = { .name = "context", .type = KT_STR, ENTRY(struct config_provider, kubernetes.context),
          .variants = K8S, .doc = "Context of the kubeconfig to use. Unset: its current-context." },
        [PRK_NAMESPACE] = { .name = "namespace", .type = KT_STR, ENTRY(struct config_provider, kubernetes.namespace),
          .check = check_k8s_namespace, .variants = K8S,
          .doc = "Namespace of the workers' Jobs and Secrets. Unset: the context's namespace (kubeconfig) or the service account's (in-cluster), else default." },
        [PRK_IMAGE] = { .name = "image", .type = KT_STR, ENTRY(struct config_provider, kubernetes.image),
          .check = check_k8s_image, .variants = K8S, .type_doc = "image reference",
          .doc = "Container image of the workers (required for type kubernetes); the pool's runner.command runs in it." },
        [PRK_SERVICE_ACCOUNT] = { .name = "service_account", .type = KT_STR,
          ENTRY(struct config_provider, kubernetes.service_account), .check = check_k8s_subdomain, .variants = K8S,
          .doc = "Service account of the worker pods. Unset: the namespace's default." },
        [PRK_RESOURCES] = { .name = "resources", .type = KT_JSON, .flags = KF_STRINGS,
          ENTRY(struct config_provider, kubernetes.resources), .check = check_k8s_resources, .variants = K8S,
          .type_doc = "mapping of requests/limits: {cpu, memory, ephemeral-storage: quantity}",
          .doc = "Requests and limits of the worker container, e.g. {requests: {cpu: 500m, memory: 1Gi}, limits: {memory: 2Gi}}." },
        [PRK_NODE_SELECTOR] = { .name = "node_selector", .type = KT_JSON, .flags = KF_STRINGS,
          ENTRY(struct config_provider, kubernetes.node_selector), .check = check_k8s_node_selector, .variants = K8S,
          .type_doc = "mapping of label: value", .doc = "Node labels a worker pod must be placed on." },
        [PRK_TOLERATIONS] = { .name = "tolerations", .type = KT_JSON,
          ENTRY(struct config_provider, kubernetes.tolerations), .check = check_k8s_tolerations, .variants = K8S,
          .type_doc = "list of {key, operator, value, effect, tolerationSeconds}",
          .doc = "Taints the worker pods tolerate." },
        [PRK_POD_TEMPLATE] = { .name = "pod_template", .type = KT_JSON,
          ENTRY(struct config_provider, kubernetes.pod_template), .check = check_k8s_pod_template, .variants = K8S,
          .type_doc = "mapping (fields of a pod spec)",
          .doc = "Fields of the worker pods' spec (spec.template.spec of the Job), e.g. securityContext, affinity, sidecar containers. It is the base the provider builds on: mappings merge recursively, lists are replaced, except containers, volumes, env and volumeMounts, merged by name (mountPath for volumeMounts); what forgescale sets (the runner container's image, command, env and token mount, the token volume, restartPolicy Never, terminationGracePeriodSeconds, and the keys above) wins." },
        [PRK_TTL] = { .name = "ttl_after_finished", .type = KT_DURATION, .flags = KF_ZERO_UNSET,
          ENTRY(struct config_provider, kubernetes.ttl_after_finished_ms), .min = 1000, .max = DURATION_MAX,
          .variants = K8S,
          .doc = "ttlSecondsAfterFinished of the Jobs: Kubernetes deletes a finished Job (and its Secret) this long after it ended even if forgescale could not. Unset: forgescale deletes them itself." },
        [PRK_DEADLINE] = { .name = "active_deadline", .type = KT_DURATION, .flags = KF_ZERO_UNSET,
          ENTRY(struct config_provider, kubernetes.active_deadline_ms), .min = 1000, .max = DURATION_MAX,
          .variants = K8S,
          .doc = "activeDeadlineSeconds of the Jobs: Kubernetes ends a worker running longer (the instance ends with DeadlineExceeded). Unset: no limit." },
};

static const struct section provider_section = {
        .name = "provider", .title = "providers.NAME",
        .doc = "Where runner instances are created. When `providers` is absent, one provider named `local` of type local exists.",
        .keys = provider_keys, .n_keys = sizeof(provider_keys) / sizeof(provider_keys[0]),
        .size = sizeof(struct config_provider), .pos_off = offsetof(struct config_provider, pos),
        .finish = provider_finish, .done = provider_done, .variant = &provider_keys[PRK_TYPE],
};

static const struct key runner_keys[] = {
        { .name = "command", .type = KT_LIST, .def = "[forgejo-runner]",
          ENTRY(struct config_runner, command), .check = check_command, .type_doc = "list of strings",
          .doc = "Program and leading arguments (argv, no shell): at most 64 items of at most 4096 bytes. forgescale appends `one-job --url … --label NAME:SCHEME … --handle … --wait`." },
        { .name = "env", .type = KT_ENV, .def = "{}", ENTRY(struct config_runner, env),
          .check = check_runner_env,
          .doc = "Extra environment variables for the runner process, at most 48." },
        { .name = "label_scheme", .type = KT_STR, .def = "host", ENTRY(struct config_runner, label_scheme),
          .check = check_label_scheme, .type_doc = "string",
          .doc = "How the runner executes jobs: host, docker://IMAGE or lxc://DISTRO:RELEASE. Each pool label is passed as `--label LABEL:SCHEME`." },
};

static const struct section runner_section = {
        .name = "runner", .title = "pools.NAME.runner",
        .doc = "How a runner process is started for one job. Optional: the default runs `forgejo-runner one-job` from PATH with host labels.",
        .keys = runner_keys, .n_keys = sizeof(runner_keys) / sizeof(runner_keys[0]),
};

enum {
        PK_FORGE, PK_SCOPE, PK_LABELS, PK_MODE, PK_PROVIDER, PK_MIN_IDLE, PK_MAX_RUNNERS,
        PK_POLL, PK_IDLE, PK_BOOTSTRAP, PK_RUNNER,
};

static const struct key pool_keys[] = {
        [PK_FORGE] = { .name = "forge", .type = KT_STR, ENTRY(struct config_pool, forge_name),
          .type_doc = "forge name",
          .doc = "Forge whose jobs this pool serves. May be left out when exactly one forge is defined." },
        [PK_SCOPE] = { .name = "scope", .type = KT_STR, .flags = KF_REQUIRED,
          ENTRY(struct config_pool, scope_text), .check = check_scope, .type_doc = "scope",
          .example = "scope: org/acme",
          .doc = "Where runners are registered and jobs are looked for: `instance` (needs a site admin token), `org/NAME`, `user` (the token's user) or `repo/OWNER/NAME`." },
        [PK_LABELS] = { .name = "labels", .type = KT_LIST, .flags = KF_REQUIRED,
          ENTRY(struct config_pool, labels), .check = check_labels, .type_doc = "list of strings",
          .example = "labels: [docker, ubuntu-latest]",
          .doc = "Label names the pool's runners declare. A job is served when every value of its runs-on is among them. Names are non-empty, unique, without whitespace, ',' or ':'. At most 64 per pool, and at most 64 distinct labels over the pools that share a forge and scope (they are listed together)." },
        [PK_MODE] = { .name = "mode", .type = KT_ENUM, .def = "queue", ENTRY(struct config_pool, mode),
          .enums = pool_modes,
          .doc = "queue: poll the forge's waiting-jobs API and start one runner per job (needs Forgejo ≥ 15). broker: forgescale answers the runner protocol itself." },
        [PK_PROVIDER] = { .name = "provider", .type = KT_STR, ENTRY(struct config_pool, provider_name),
          .type_doc = "provider name",
          .doc = "Provider that creates this pool's instances. May be left out when exactly one provider exists (including the implicit `local`)." },
        [PK_MIN_IDLE] = { .name = "min_idle", .type = KT_INT, .def = "0", ENTRY(struct config_pool, min_idle),
          .min = 0, .max = 10000,
          .doc = "Idle runners kept waiting for jobs at all times; at most max_runners." },
        [PK_MAX_RUNNERS] = { .name = "max_runners", .type = KT_INT, .def = "10",
          ENTRY(struct config_pool, max_runners), .min = 0, .max = 10000,
          .doc = "Most runners of this pool alive at once, idle or busy. 0 makes the pool observe-only: its demand is watched and exported (metrics, `/v1/pools/NAME/demand` for KEDA) but nothing is launched." },
        [PK_POLL] = { .name = "poll_interval", .type = KT_DURATION, .def = "2s",
          ENTRY(struct config_pool, poll_interval_ms), .min = 100, .max = DURATION_MAX,
          .doc = "Queue mode: time between two polls of the waiting-jobs API. Broker mode: time between two idle FetchTask calls of the pool's runner, and between two UpdateTask calls for a task whose worker is still starting (how soon a cancel is noticed)." },
        [PK_IDLE] = { .name = "idle_timeout", .type = KT_DURATION, .def = "5m",
          ENTRY(struct config_pool, idle_timeout_ms), .min = 0, .max = DURATION_MAX,
          .doc = "An idle runner beyond min_idle is removed after this long without a job." },
        [PK_BOOTSTRAP] = { .name = "bootstrap_timeout", .type = KT_DURATION, .def = "10m",
          ENTRY(struct config_pool, bootstrap_timeout_ms), .min = 1000, .max = DURATION_MAX,
          .doc = "An instance that has not started its runner within this time is destroyed." },
        [PK_RUNNER] = { .name = "runner", .type = KT_SECTION, ENTRY(struct config_pool, runner),
          .sub = &runner_section, .type_doc = "mapping",
          .doc = "How the runner process is started; see below." },
};

static const struct section pool_section = {
        .name = "pool", .title = "pools.NAME",
        .doc = "A set of runners with the same labels, serving one scope of one forge.",
        .keys = pool_keys, .n_keys = sizeof(pool_keys) / sizeof(pool_keys[0]),
        .size = sizeof(struct config_pool), .pos_off = offsetof(struct config_pool, pos),
        .finish = pool_finish, .done = pool_done,
};

enum { TK_LISTEN, TK_STATE_DIR, TK_LOG, TK_BROKER, TK_FORGES, TK_PROVIDERS, TK_POOLS };

static const struct key top_keys[] = {
        [TK_LISTEN] = { .name = "listen", .type = KT_STR, .def = "127.0.0.1:9464",
          ENTRY(struct config, listen), .check = check_listen, .type_doc = "address",
          .doc = "HOST:PORT of the HTTP endpoint for /metrics, /healthz and /v1/…; HOST is an IP address (IPv6 in brackets) or localhost. Port 0 picks a free port. The API has no authentication: an address other than loopback (127.0.0.0/8, ::1, localhost) draws a warning from `check` and at start." },
        [TK_STATE_DIR] = { .name = "state_dir", .type = KT_STR, .def = "./forgescale-state",
          ENTRY(struct config, state_dir), .type_doc = "path",
          .doc = "Folder for the SQLite database and per-instance files, created with mode 0700. An existing folder that every user can write is refused. Relative paths are resolved against the configuration file's folder." },
        [TK_LOG] = { .name = "log", .type = KT_SECTION, ENTRY(struct config, log), .sub = &log_section,
          .type_doc = "mapping", .doc = "Logging; see below." },
        [TK_BROKER] = { .name = "broker", .type = KT_SECTION, ENTRY(struct config, broker), .sub = &broker_section,
          .type_doc = "mapping", .doc = "The broker endpoint of broker-mode pools; see below." },
        [TK_FORGES] = { .name = "forges", .type = KT_NAMED, .flags = KF_REQUIRED, ENTRY(struct config, forges),
          .count_off = offsetof(struct config, n_forges), .sub = &forge_section,
          .example = "forges: {main: {url: https://forgejo.example.org, token_file: /etc/forgescale/token}}",
          .doc = "The forges, by name." },
        [TK_PROVIDERS] = { .name = "providers", .type = KT_NAMED, .def = "{local: {type: local}}",
          ENTRY(struct config, providers), .count_off = offsetof(struct config, n_providers),
          .sub = &provider_section,
          .doc = "The providers, by name. When absent: one provider `local` of type local." },
        [TK_POOLS] = { .name = "pools", .type = KT_NAMED, .flags = KF_REQUIRED, ENTRY(struct config, pools),
          .count_off = offsetof(struct config, n_pools), .sub = &pool_section,
          .example = "pools: {linux: {scope: org/acme, labels: [docker]}}",
          .doc = "The pools, by name." },
};

const struct section config__top = {
        .name = "top level", .title = "Top level",
        .doc = "Keys at the top of the file.",
        .keys = top_keys, .n_keys = sizeof(top_keys) / sizeof(top_keys[0]),
        .finish = top_finish, .done = top_done,
};

/* ---- cross-key checks ---------------------------------------------------------- */

static void forge_finish(struct walk *w, void *obj, const struct ynode *const *sk,
                         const struct ynode *const *sv, const struct ynode *where)
{
        struct config_forge *f = obj;

        if (f->token_file && f->token_env) {
                const struct ynode *a = sk[FK_TOKEN_FILE], *b = sk[FK_TOKEN_ENV];
                const struct ynode *second = (a->line > b->line ||
                                              (a->line == b->line && a->col > b->col)) ? a : b;
                config__werr(w, second, "token_file and token_env are both set; keep only one");
        } else if (!f->token_file && !f->token_env && !sk[FK_TOKEN] &&
                   !(sv[FK_TOKEN_FILE] && sv[FK_TOKEN_FILE]->kind != YN_NULL) &&
                   !(sv[FK_TOKEN_ENV] && sv[FK_TOKEN_ENV]->kind != YN_NULL)) {
                config__werr(w, where, "missing token: set token_file (a file holding the token) or token_env (an environment variable holding it)");
        }
        if (f->token_file) {
                f->token_path = resolve(w->dir, f->token_file);
                if (!f->token_path)
                        w->errs->oom = true;
                f->token_pos = (struct config_pos){ sv[FK_TOKEN_FILE]->line, sv[FK_TOKEN_FILE]->col };
        } else if (f->token_env) {
                f->token_pos = (struct config_pos){ sv[FK_TOKEN_ENV]->line, sv[FK_TOKEN_ENV]->col };
        }
        if (f->ca_file) {
                f->ca_path = resolve(w->dir, f->ca_file);
                if (!f->ca_path)
                        w->errs->oom = true;
                f->ca_pos = (struct config_pos){ sv[FK_CA_FILE]->line, sv[FK_CA_FILE]->col };
        }
}

static void forge_done(void *obj)
{
        struct config_forge *f = obj;

        free(f->token_path);
        free(f->ca_path);
        secret_free(f->token);
        f->token_path = f->ca_path = f->token = NULL;
}

static struct config_pos pos_of_value(const struct ynode *const *sv, size_t i)
{
        if (sv[i] && sv[i]->kind != YN_NULL)
                return (struct config_pos){ sv[i]->line, sv[i]->col };
        return (struct config_pos){ 0, 0 };
}

static void provider_finish(struct walk *w, void *obj, const struct ynode *const *sk,
                            const struct ynode *const *sv, const struct ynode *where)
{
        struct config_provider *p = obj;

        p->type_pos = pos_of_value(sv, PRK_TYPE);
        p->local.user_pos = pos_of_value(sv, PRK_USER);
        p->local.group_pos = pos_of_value(sv, PRK_GROUP);
        if (p->type != CONFIG_PROVIDER_KUBERNETES || !sv[PRK_TYPE] || sv[PRK_TYPE]->kind != YN_SCALAR)
                return;
        if (!p->kubernetes.image && !(sv[PRK_IMAGE] && sv[PRK_IMAGE]->kind != YN_NULL))
                config__werr(w, sk[PRK_IMAGE] ? sk[PRK_IMAGE] : where,
                             "missing required key \"image\" for type kubernetes; e.g. image: code.forgejo.org/forgejo/runner:11");
        if (p->kubernetes.context && !p->kubernetes.kubeconfig)
                config__werr(w, sv[PRK_CONTEXT], "context needs kubeconfig (in-cluster access has no contexts)");
        if (p->kubernetes.kubeconfig) {
                p->kubernetes.kubeconfig_path = resolve(w->dir, p->kubernetes.kubeconfig);
                if (!p->kubernetes.kubeconfig_path)
                        w->errs->oom = true;
        }
}

static void provider_done(void *obj)
{
        struct config_provider *p = obj;

        free(p->kubernetes.kubeconfig_path);
        p->kubernetes.kubeconfig_path = NULL;
}

static char *names_list(const void *arr, size_t n, size_t size, char *buf, size_t cap)
{
        size_t o = 0;

        buf[0] = '\0';
        for (size_t i = 0; i < n; i++) {
                const char *name = *(char *const *)((const char *)arr + i * size);
                int wr = snprintf(buf + o, cap - o, "%s%s", i ? ", " : "", B(name ? name : ""));
                if (wr < 0 || (size_t)wr >= cap - o) {
                        if (cap > 4)
                                memcpy(buf + cap - 4, "...", 4);
                        break;
                }
                o += (size_t)wr;
        }
        return buf;
}

/* Resolves a pool's reference to a forge or provider. Returns the index or
 * SIZE_MAX (error reported). */
static size_t resolve_ref(struct walk *w, const char *what, char **name,
                          const void *arr, size_t n, size_t size, bool broken,
                          const struct ynode *at_value, const struct ynode *where)
{
        char list[256];
        const char *cands[MAX_ITEMS];
        const char *sug;

        if (broken || n == 0)
                return SIZE_MAX;
        if (!*name) {
                if (n == 1) {
                        *name = strdup(*(char *const *)arr);
                        if (!*name)
                                w->errs->oom = true;
                        return *name ? 0 : SIZE_MAX;
                }
                config__werr(w, where, "missing key \"%s\"; there is more than one %s (%s), name the one to use",
                             what, what, names_list(arr, n, size, list, sizeof(list)));
                return SIZE_MAX;
        }
        for (size_t i = 0; i < n; i++) {
                cands[i] = *(char *const *)((const char *)arr + i * size);
                if (cands[i] && strcmp(cands[i], *name) == 0)
                        return i;
        }
        sug = config_suggest(*name, cands, n);
        if (sug)
                config__werr(w, at_value, "%s %s is not defined; did you mean %s?", what, Q(*name), Q(sug));
        else
                config__werr(w, at_value, "%s %s is not defined; defined %ss: %s", what, Q(*name), what,
                             names_list(arr, n, size, list, sizeof(list)));
        return SIZE_MAX;
}

static void pool_finish(struct walk *w, void *obj, const struct ynode *const *sk,
                        const struct ynode *const *sv, const struct ynode *where)
{
        struct config_pool *p = obj;
        struct config *cfg = w->cfg;
        size_t i;

        i = resolve_ref(w, "forge", &p->forge_name, cfg->forges, cfg->n_forges,
                        sizeof(struct config_forge), config__walk_broken(w, &forge_section),
                        vpos(sk, sv, PK_FORGE, where), where);
        if (i != SIZE_MAX) {
                p->forge_idx = i;
                p->forge = &cfg->forges[i];
        }
        i = resolve_ref(w, "provider", &p->provider_name, cfg->providers, cfg->n_providers,
                        sizeof(struct config_provider), config__walk_broken(w, &provider_section),
                        vpos(sk, sv, PK_PROVIDER, where), where);
        if (i != SIZE_MAX) {
                p->provider_idx = i;
                p->provider = &cfg->providers[i];
        }
        p->mode_pos = pos_of_value(sv, PK_MODE);

        if (sv[PK_MIN_IDLE] && sv[PK_MAX_RUNNERS] && p->min_idle > p->max_runners)
                config__werr(w, vpos(sk, sv, PK_MAX_RUNNERS, where),
                             "max_runners must be ≥ min_idle (min_idle is %lld, max_runners is %lld)",
                             (long long)p->min_idle, (long long)p->max_runners);
        else if (p->min_idle > p->max_runners)
                config__werr(w, vpos(sk, sv, sv[PK_MIN_IDLE] ? PK_MIN_IDLE : PK_MAX_RUNNERS, where),
                             "max_runners must be ≥ min_idle (min_idle is %lld, max_runners is %lld%s)",
                             (long long)p->min_idle, (long long)p->max_runners,
                             sv[PK_MAX_RUNNERS] ? "" : " by default");

        if (p->mode == CONFIG_MODE_BROKER && p->min_idle > 0)
                config__werr(w, vpos(sk, sv, PK_MIN_IDLE, where),
                             "min_idle has no effect in broker mode (a worker is started for a task the pool "
                             "already holds); remove it, or use mode: queue for warm runners");

        if (p->forge && p->forge->kind == CONFIG_FORGE_GITEA && p->mode == CONFIG_MODE_QUEUE) {
                if (sv[PK_MODE] && sv[PK_MODE]->kind != YN_NULL)
                        config__werr(w, sv[PK_MODE],
                                     "mode queue needs Forgejo ≥ 15 (the waiting-jobs API), but forge %s has kind gitea; use mode: broker",
                                     Q(p->forge->name));
                else
                        config__werr(w, vpos(sk, sv, PK_FORGE, where),
                                     "mode defaults to queue, which needs Forgejo ≥ 15 (the waiting-jobs API), but forge %s has kind gitea; set mode: broker",
                                     Q(p->forge->name));
        }
}

static void pool_done(void *obj)
{
        struct config_pool *p = obj;

        config_scope_done(&p->scope);
        p->forge = NULL;
        p->provider = NULL;
}

/* One (forge, scope) pair: the daemon lists its waiting jobs in one request
 * that asks for the union of the labels of the pools sharing it. */
struct listing {
        size_t forge_idx;
        struct config_scope scope;
        const char *labels[CONFIG_MAX_LABELS];  /* distinct, borrowed from the pools */
        size_t n_labels;
        size_t first_pool;
        bool full;                              /* already reported */
};

static bool scope_equal(const struct config_scope *a, const struct config_scope *b)
{
        return a->kind == b->kind &&
               strcmp(a->owner ? a->owner : "", b->owner ? b->owner : "") == 0 &&
               strcmp(a->repo ? a->repo : "", b->repo ? b->repo : "") == 0;
}

/* Names of the pools of listing l, for a message. */
static const char *listing_pools(const struct config *cfg, const struct listing *l,
                                 size_t upto, char *buf, size_t cap)
{
        size_t o = 0;
        char q[QBUF];

        buf[0] = '\0';
        for (size_t i = l->first_pool; i <= upto; i++) {
                const struct config_pool *p = &cfg->pools[i];
                struct config_scope sc;
                int wr;

                if (!p->forge || p->forge_idx != l->forge_idx ||
                    config_scope_parse(p->scope_text, &sc) < 0)
                        continue;
                if (scope_equal(&sc, &l->scope)) {
                        wr = snprintf(buf + o, cap - o, "%s%s", o ? ", " : "",
                                      config__quote(q, sizeof(q), p->name));
                        if (wr < 0 || (size_t)wr >= cap - o) {
                                memcpy(buf + cap - 4, "...", 4);
                                config_scope_done(&sc);
                                break;
                        }
                        o += (size_t)wr;
                }
                config_scope_done(&sc);
        }
        return buf;
}

/* `check` must refuse what `run` cannot serve: at most CONFIG_MAX_LISTINGS
 * listings, each asking for at most CONFIG_MAX_LABELS labels. */
static void check_listings(struct walk *w, struct config *cfg)
{
        struct listing *ls = calloc(CONFIG_MAX_LISTINGS, sizeof(*ls));
        size_t n = 0;
        bool over = false;
        char q[QBUF], names[512];

        if (!ls) {
                w->errs->oom = true;
                return;
        }
        for (size_t i = 0; i < cfg->n_pools; i++) {
                const struct config_pool *p = &cfg->pools[i];
                struct config_scope sc;
                struct listing *l = NULL;
                size_t j;

                /* Pools with a broken forge or scope were reported already. */
                if (!p->forge || config_scope_parse(p->scope_text, &sc) < 0)
                        continue;
                for (j = 0; j < n; j++)
                        if (ls[j].forge_idx == p->forge_idx && scope_equal(&ls[j].scope, &sc))
                                break;
                if (j < n) {
                        l = &ls[j];
                        config_scope_done(&sc);
                } else if (n == CONFIG_MAX_LISTINGS) {
                        if (!over)
                                config__errlist_add(w->errs, p->pos.line, p->pos.col,
                                                    "pool %s: forge %s, scope %s would be listing number %d; forgescale polls at most %d (forge, scope) listings (pools on the same forge and scope share one)",
                                                    config__quote(q, sizeof(q), p->name), Q(p->forge->name),
                                                    Q(p->scope_text), CONFIG_MAX_LISTINGS + 1, CONFIG_MAX_LISTINGS);
                        over = true;
                        config_scope_done(&sc);
                        continue;
                } else {
                        l = &ls[n++];
                        l->forge_idx = p->forge_idx;
                        l->scope = sc;
                        l->first_pool = i;
                }
                /* A pool over the limit on its own was reported by check_labels. */
                if (l->full || p->labels.n > CONFIG_MAX_LABELS)
                        continue;
                for (size_t k = 0; k < p->labels.n && !l->full; k++) {
                        size_t e;
                        for (e = 0; e < l->n_labels; e++)
                                if (strcmp(l->labels[e], p->labels.v[k]) == 0)
                                        break;
                        if (e < l->n_labels)
                                continue;
                        if (l->n_labels == CONFIG_MAX_LABELS) {
                                config__errlist_add(w->errs, p->pos.line, p->pos.col,
                                                    "pool %s: the pools on forge %s, scope %s (%s) are listed together, asking for the union of their labels: more than %d distinct labels; use at most %d, or split them over scopes",
                                                    config__quote(q, sizeof(q), p->name), Q(p->forge->name),
                                                    Q(p->scope_text), listing_pools(cfg, l, i, names, sizeof(names)),
                                                    CONFIG_MAX_LABELS, CONFIG_MAX_LABELS);
                                l->full = true;
                                break;
                        }
                        l->labels[l->n_labels++] = p->labels.v[k];
                }
        }
        for (size_t j = 0; j < n; j++)
                config_scope_done(&ls[j].scope);
        free(ls);
}

static void broker_finish(struct walk *w, void *obj, const struct ynode *const *sk,
                          const struct ynode *const *sv, const struct ynode *where)
{
        struct config_broker *b = obj;
        int n;

        b->listen_pos = pos_of_value(sv, BK_LISTEN);
        b->url_pos = pos_of_value(sv, BK_URL);
        b->url_set = b->url != NULL;
        /* Without a url, workers are sent to the listen address itself;
         * neither a wildcard nor port 0 is one they can connect to. */
        if (b->url || !b->listen_host || is_wildcard(b->listen_host) || b->listen_port == 0)
                return;
        if (strchr(b->listen_host, ':'))
                n = asprintf(&b->url, "http://[%s]:%d", b->listen_host, b->listen_port);
        else
                n = asprintf(&b->url, "http://%s:%d", b->listen_host, b->listen_port);
        if (n < 0) {
                b->url = NULL;
                w->errs->oom = true;
        }
}

static void broker_done(void *obj)
{
        struct config_broker *b = obj;

        free(b->listen_host);
        b->listen_host = NULL;
}

/* host as config_listen_parse returns it, as 16 bytes: IPv4 (localhost
 * included) as IPv4-mapped IPv6, so that the two spellings compare equal. */
static bool addr_bytes(const char *host, unsigned char ret[16])
{
        unsigned char a[4];

        if (strcmp(host, "localhost") == 0)
                host = "127.0.0.1";
        if (inet_pton(AF_INET, host, a) == 1) {
                memcpy(ret, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12);
                memcpy(ret + 12, a, 4);
                return true;
        }
        return inet_pton(AF_INET6, host, ret) == 1;
}

/* Whether two listen addresses would fight over one port: the same port
 * (0 always gets a free one) on the same address, or with either on every
 * interface. */
static bool listen_clash(const char *ha, int pa, const char *hb, int pb)
{
        unsigned char a[16], b[16];

        if (pa != pb || pa == 0)
                return false;
        if (is_wildcard(ha) || is_wildcard(hb))
                return true;
        return addr_bytes(ha, a) && addr_bytes(hb, b) && memcmp(a, b, 16) == 0;
}

/* The broker section's rules, once the pools are known: they matter only
 * when some pool serves its tasks through the endpoint. */
static void check_broker(struct walk *w, struct config *cfg, const struct ynode *const *sk,
                         const struct ynode *const *sv)
{
        struct config_broker *b = &cfg->broker;
        const struct config_pool *user = NULL;
        struct config_pos at;
        char q[QBUF], why[QBUF + 48];

        if (sk[TK_BROKER])
                b->pos = (struct config_pos){ sk[TK_BROKER]->line, sk[TK_BROKER]->col };
        for (size_t i = 0; i < cfg->n_pools && !user; i++)
                if (cfg->pools[i].mode == CONFIG_MODE_BROKER)
                        user = &cfg->pools[i];
        b->used = user != NULL;
        if (!user || !b->listen_host)   /* an unparsable listen was reported */
                return;
        snprintf(why, sizeof(why), "pool %s has mode broker", config__quote(q, sizeof(q), user->name));
        at = b->listen_pos.line ? b->listen_pos : b->pos.line ? b->pos : user->pos;

        if (cfg->listen_host && listen_clash(cfg->listen_host, cfg->listen_port,
                                             b->listen_host, b->listen_port)) {
                if (b->listen_pos.line || !sv[TK_LISTEN])
                        config__errlist_add(w->errs, at.line, at.col,
                                            "broker.listen %s and listen %s (the HTTP API) would bind the same address and port; give each its own port (%s)",
                                            Q(b->listen), Q(cfg->listen), why);
                else
                        config__errlist_add(w->errs, sv[TK_LISTEN]->line, sv[TK_LISTEN]->col,
                                            "listen %s takes the address broker.listen defaults to, %s; set broker.listen to another port, or move listen (%s)",
                                            Q(cfg->listen), Q(b->listen), why);
        }
        if (is_wildcard(b->listen_host) && !b->url_set)
                config__errlist_add(w->errs, at.line, at.col,
                                    "broker.listen %s is every interface, so workers cannot be told where to connect; set broker.url to the URL they reach it at, e.g. http://192.0.2.10:%d (%s)",
                                    Q(b->listen), b->listen_port ? b->listen_port : 9465, why);
        if (!is_loopback(b->listen_host))
                config__errlist_warn(w->errs, at.line, at.col,
                                     "broker.listen %s is not a loopback address: the endpoint hands out tasks, with their secrets, to any holder of a valid worker token; listen on 127.0.0.1 or [::1] unless workers run on other machines, and then restrict access with a firewall (%s)",
                                     Q(b->listen), why);
}

static void top_finish(struct walk *w, void *obj, const struct ynode *const *sk,
                       const struct ynode *const *sv, const struct ynode *where)
{
        struct config *cfg = obj;

        check_listings(w, cfg);
        check_broker(w, cfg, sk, sv);

        if (!sv[TK_PROVIDERS] || sv[TK_PROVIDERS]->kind == YN_NULL)
                for (size_t i = 0; i < cfg->n_providers; i++)
                        cfg->providers[i].implicit = true;
        if (cfg->state_dir) {
                cfg->state_path = resolve(w->dir, cfg->state_dir);
                if (!cfg->state_path)
                        w->errs->oom = true;
                if (sv[TK_STATE_DIR] && sv[TK_STATE_DIR]->kind != YN_NULL)
                        cfg->state_pos = (struct config_pos){ sv[TK_STATE_DIR]->line,
                                                              sv[TK_STATE_DIR]->col };
        }
}

static void top_done(void *obj)
{
        struct config *cfg = obj;

        free(cfg->listen_host);
        free(cfg->state_path);
        free(cfg->path);
        free(cfg->dir);
        cfg->listen_host = cfg->state_path = cfg->path = cfg->dir = NULL;
}
