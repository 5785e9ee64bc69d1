/* settings.c: see settings.h. The only file of the runner that reads the
 * command line, the configuration file and `.runner`. The token is read
 * from a file (never argv or env) and registered for log redaction before
 * anything else can see it. */
#include "settings.h"

#include "util/duration.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/secret.h"

#include <errno.h>
#include <jansson.h>
#include <libfyaml.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CONFIG_MAX (1u << 20)
#define RUNNER_FILE_MAX (1u << 20)
#define IDENT_MAX 256

const char settings_usage[] =
        "Usage: forgejo-sim-runner [-c CONFIG] COMMAND [FLAGS]\n"
        "\n"
        "A host-mode stand-in for `forgejo-runner` that runs `run:` steps with sh.\n"
        "\n"
        "Commands:\n"
        "  one-job     fetch one task, run it, report it, exit\n"
        "  version     print the version\n"
        "  help        print this text\n"
        "\n"
        "one-job flags:\n"
        "  --url URL               instance root URL\n"
        "  --uuid UUID             runner UUID\n"
        "  --token-url file:PATH   file holding the runner token ($CREDENTIALS_DIRECTORY expanded)\n"
        "  --label NAME[:SCHEME]   a label (repeatable); only the name is sent to the server\n"
        "  --handle HANDLE         ask for this job only (FetchSingleTask)\n"
        "  --codec proto|json      runner-protocol codec (default proto, as forgejo-runner)\n"
        "  -w, --wait              poll every runner.fetch_interval until a task arrives\n"
        "  -c, --config FILE       YAML configuration (runner.fetch_interval, fetch_timeout,\n"
        "                          report_interval, timeout, labels, report_retry, file,\n"
        "                          codec; host.workdir_parent; server.connections; log.level)\n"
        "  --log-level LEVEL       error, warn, info or debug\n"
        "\n"
        "Without --url/--uuid/--token-url the connection comes from server.connections\n"
        "in the configuration or from the .runner file (runner.file). Exactly one source.\n"
        "Exit status: 0 after a task whatever its result, or when interrupted while\n"
        "waiting; 1 on errors and when no task was received without --wait.\n";

static int fail(char *err, size_t errlen, int r, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int r, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
        return r;
}

static int set_str(char **dst, const char *v)
{
        char *d = strdup(v);

        if (!d)
                return -ENOMEM;
        free(*dst);
        *dst = d;
        return 0;
}

/* Identifiers that end up in HTTP headers: printable ASCII, no spaces. */
static bool ident_ok(const char *s)
{
        size_t n = strlen(s);

        if (n == 0 || n > IDENT_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
                        return false;
        return true;
}

char *settings_label_name(const char *label)
{
        const char *colon = strchr(label, ':');

        return colon ? strndup(label, (size_t)(colon - label)) : strdup(label);
}

static int check_label(const char *label, const char *where, char *err, size_t errlen)
{
        char *name = settings_label_name(label);
        size_t n;
        int r = 0;

        if (!name)
                return -ENOMEM;
        n = strlen(name);
        if (n == 0 || name[0] == ' ' || name[n - 1] == ' ' || n > 255)
                r = fail(err, errlen, -EINVAL, "%s: invalid label '%s'", where, label);
        free(name);
        return r;
}

/* ---- command line ------------------------------------------------------ */

struct flag {
        const char *long_name;
        char short_name;
        bool takes_value;
};

static const struct flag flags[] = {
        { "url", 0, true },
        { "uuid", 0, true },
        { "token-url", 0, true },
        { "label", 0, true },
        { "handle", 0, true },
        { "codec", 0, true },
        { "config", 'c', true },
        { "log-level", 0, true },
        { "wait", 'w', false },
        { "help", 'h', false },
};

static int parse_bool(const char *v, bool *ret)
{
        if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0)
                *ret = true;
        else if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
                *ret = false;
        else
                return -EINVAL;
        return 0;
}

static int apply_flag(struct settings *s, const struct flag *f, const char *v,
                      char *err, size_t errlen)
{
        const char *n = f->long_name;
        bool b = true;

        if (!f->takes_value) {
                if (v && parse_bool(v, &b) < 0)
                        return fail(err, errlen, -EINVAL, "--%s: invalid boolean '%s'", n, v);
                if (strcmp(n, "wait") == 0)
                        s->wait = b;
                else if (b)
                        s->cmd = SETTINGS_CMD_HELP;
                return 0;
        }
        if (strcmp(n, "url") == 0)
                return set_str(&s->flag_url, v);
        if (strcmp(n, "uuid") == 0)
                return set_str(&s->flag_uuid, v);
        if (strcmp(n, "token-url") == 0)
                return set_str(&s->flag_token_url, v);
        if (strcmp(n, "handle") == 0)
                return set_str(&s->handle, v);
        if (strcmp(n, "codec") == 0)
                return set_str(&s->flag_codec, v);
        if (strcmp(n, "config") == 0)
                return set_str(&s->config_file, v);
        if (strcmp(n, "log-level") == 0)
                return set_str(&s->log_level, v);
        /* label */
        int r = check_label(v, "--label", err, errlen);
        if (r < 0)
                return r;
        return rp_strlist_push(&s->flag_labels, v);
}

static void defaults(struct settings *s)
{
        s->fetch_interval_ms = 2000;
        s->fetch_timeout_ms = 5000;
        s->report_interval_ms = 1000;
        s->timeout_ms = 3 * 3600 * 1000;
        s->retry_max = 10;
        s->retry_initial_ms = 100;
        s->retry_max_delay_ms = 0;
}

int settings_parse_args(struct settings *s, int argc, char **argv, char *err, size_t errlen)
{
        bool help = false;
        int r;

        memset(s, 0, sizeof(*s));
        defaults(s);
        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];
                const struct flag *f = NULL;
                const char *v = NULL;

                if (a[0] != '-' || strcmp(a, "-") == 0) {
                        enum settings_cmd c;
                        if (strcmp(a, "one-job") == 0)
                                c = SETTINGS_CMD_ONE_JOB;
                        else if (strcmp(a, "version") == 0)
                                c = SETTINGS_CMD_VERSION;
                        else if (strcmp(a, "help") == 0)
                                c = SETTINGS_CMD_HELP;
                        else
                                return fail(err, errlen, -EINVAL, "unknown command \"%s\"", a);
                        if (s->cmd != SETTINGS_CMD_NONE && s->cmd != SETTINGS_CMD_HELP)
                                return fail(err, errlen, -EINVAL, "unexpected argument \"%s\"", a);
                        if (s->cmd == SETTINGS_CMD_HELP)
                                help = true;
                        s->cmd = c;
                        continue;
                }
                if (a[1] == '-') {
                        const char *name = a + 2;
                        const char *eq = strchr(name, '=');
                        size_t nl = eq ? (size_t)(eq - name) : strlen(name);
                        for (size_t k = 0; k < sizeof(flags) / sizeof(flags[0]); k++)
                                if (strlen(flags[k].long_name) == nl &&
                                    strncmp(flags[k].long_name, name, nl) == 0)
                                        f = &flags[k];
                        if (eq)
                                v = eq + 1;
                } else {
                        for (size_t k = 0; k < sizeof(flags) / sizeof(flags[0]); k++)
                                if (flags[k].short_name && flags[k].short_name == a[1])
                                        f = &flags[k];
                        if (f && a[2] != '\0') {
                                if (a[2] == '=')
                                        v = a + 3;
                                else if (f->takes_value)
                                        v = a + 2;
                                else
                                        f = NULL;
                        }
                }
                if (!f)
                        return fail(err, errlen, -EINVAL, "unknown flag: %s", a);
                if (f->takes_value && !v) {
                        if (i + 1 >= argc)
                                return fail(err, errlen, -EINVAL, "flag needs an argument: %s", a);
                        v = argv[++i];
                }
                if (strcmp(f->long_name, "help") == 0) {
                        help = true;
                        continue;
                }
                r = apply_flag(s, f, v, err, errlen);
                if (r < 0)
                        return r == -ENOMEM ? fail(err, errlen, r, "out of memory") : r;
        }
        if (help || s->cmd == SETTINGS_CMD_NONE)
                s->cmd = SETTINGS_CMD_HELP;
        return 0;
}

/* ---- configuration file ------------------------------------------------ */

/* YAML null: a missing node, or a plain scalar "", "~" or null/Null/NULL
 * (libfyaml keeps these as scalars). Quoted "null" is a string. */
static bool yaml_null(struct fy_node *n)
{
        const char *s;
        size_t len;

        if (!n)
                return true;
        if (!fy_node_is_scalar(n) || fy_node_get_style(n) != FYNS_PLAIN)
                return false;
        s = fy_node_get_scalar(n, &len);
        if (!s || len == 0)
                return true;
        return (len == 1 && s[0] == '~') ||
               (len == 4 && (!memcmp(s, "null", 4) || !memcmp(s, "Null", 4) || !memcmp(s, "NULL", 4)));
}

static struct fy_node *lookup(struct fy_node *root, const char *path)
{
        struct fy_node *n = fy_node_by_path(root, path, FY_NT, FYNWF_DONT_FOLLOW);

        return (n && !yaml_null(n)) ? n : NULL;
}

/* "/runner/fetch_interval" as "runner.fetch_interval" for messages. */
static const char *dotted(const char *path, char *buf, size_t n)
{
        size_t o = 0;

        for (const char *p = path + (path[0] == '/'); *p && o + 1 < n; p++)
                buf[o++] = *p == '/' ? '.' : *p;
        buf[o] = '\0';
        return buf;
}

static int cfg_scalar(struct fy_node *root, const char *path, const char **ret,
                      char *err, size_t errlen)
{
        struct fy_node *n = lookup(root, path);
        char dn[96];

        *ret = NULL;
        if (!n)
                return 0;
        if (!fy_node_is_scalar(n))
                return fail(err, errlen, -EINVAL, "config: %s: must be a scalar", dotted(path, dn, sizeof(dn)));
        *ret = fy_node_get_scalar0(n);
        if (!*ret)
                return -ENOMEM;
        return 0;
}

static int cfg_string(struct fy_node *root, const char *path, char **dst,
                      char *err, size_t errlen)
{
        const char *v;
        int r = cfg_scalar(root, path, &v, err, errlen);

        if (r < 0 || !v)
                return r;
        return set_str(dst, v);
}

static int cfg_duration(struct fy_node *root, const char *path, int64_t *dst,
                        char *err, size_t errlen)
{
        const char *v;
        char dn[96];
        int r = cfg_scalar(root, path, &v, err, errlen);

        if (r < 0 || !v)
                return r;
        if (duration_parse(v, dst) < 0)
                return fail(err, errlen, -EINVAL, "config: %s: invalid duration \"%s\"", dotted(path, dn, sizeof(dn)), v);
        return 0;
}

static int cfg_int(struct fy_node *root, const char *path, int64_t *dst,
                   char *err, size_t errlen)
{
        const char *v;
        char *end;
        long long x;
        char dn[96];
        int r = cfg_scalar(root, path, &v, err, errlen);

        if (r < 0 || !v)
                return r;
        errno = 0;
        x = strtoll(v, &end, 10);
        if (errno || end == v || *end || x < 0 || x > 1000)
                return fail(err, errlen, -EINVAL, "config: %s: invalid number \"%s\"", dotted(path, dn, sizeof(dn)), v);
        *dst = x;
        return 0;
}

static int cfg_labels(struct fy_node *n, struct rp_strlist *dst, const char *where,
                      char *err, size_t errlen)
{
        void *it = NULL;
        int r;

        if (!n)
                return 0;
        if (!fy_node_is_sequence(n))
                return fail(err, errlen, -EINVAL, "config: %s: must be a list", where);
        for (struct fy_node *e; (e = fy_node_sequence_iterate(n, &it));) {
                const char *v = fy_node_is_scalar(e) ? fy_node_get_scalar0(e) : NULL;
                if (!v)
                        return fail(err, errlen, -EINVAL, "config: %s: labels must be strings", where);
                if ((r = check_label(v, where, err, errlen)) < 0)
                        return r;
                if (rp_strlist_push(dst, v) < 0)
                        return -ENOMEM;
        }
        return 0;
}

struct connection {
        char *url;
        char *uuid;
        char *token;
        struct rp_strlist labels;
        int count;
};

static void connection_done(struct connection *c)
{
        free(c->url);
        free(c->uuid);
        secret_free(c->token);
        rp_strlist_done(&c->labels);
}

static int cfg_connections(struct fy_node *root, struct connection *c, int64_t *fetch_interval,
                           char *err, size_t errlen)
{
        struct fy_node *conns = lookup(root, "/server/connections");
        struct fy_node_pair *p;
        void *it = NULL;
        int r;

        if (!conns)
                return 0;
        if (!fy_node_is_mapping(conns))
                return fail(err, errlen, -EINVAL, "config: server.connections: must be a mapping");
        c->count = fy_node_mapping_item_count(conns);
        if (c->count != 1)
                return 0; /* the caller reports the conflict */
        p = fy_node_mapping_iterate(conns, &it);
        struct fy_node *v = fy_node_pair_value(p);
        if (!v || !fy_node_is_mapping(v))
                return fail(err, errlen, -EINVAL, "config: server.connections: entry must be a mapping");
        if ((r = cfg_string(v, "/url", &c->url, err, errlen)) < 0 ||
            (r = cfg_string(v, "/uuid", &c->uuid, err, errlen)) < 0 ||
            (r = cfg_string(v, "/token", &c->token, err, errlen)) < 0 ||
            (r = cfg_labels(lookup(v, "/labels"), &c->labels, "server.connections.labels", err, errlen)) < 0 ||
            (r = cfg_duration(v, "/fetch_interval", fetch_interval, err, errlen)) < 0)
                return r;
        if (c->token)
                log_redact_add(c->token);
        if (!c->url || !c->uuid || !c->token)
                return fail(err, errlen, -EINVAL,
                            "config: server.connections: url, uuid and token are required");
        return 0;
}

static int load_config(struct settings *s, struct connection *conn, char *err, size_t errlen)
{
        struct fy_parse_cfg cfg = { .flags = FYPCF_QUIET | FYPCF_RESOLVE_DOCUMENT };
        struct fy_document *doc = NULL;
        struct fy_node *root;
        char *buf = NULL;
        size_t len;
        int r;

        r = fs_read_file(s->config_file, CONFIG_MAX, &buf, &len);
        if (r < 0)
                return fail(err, errlen, r, "config %s: %s", s->config_file, strerror(-r));
        if (len == 0)
                goto out;
        doc = fy_document_build_from_string(&cfg, buf, len);
        if (!doc) {
                r = fail(err, errlen, -EINVAL, "config %s: not valid YAML", s->config_file);
                goto out;
        }
        root = fy_document_root(doc);
        if (!root || yaml_null(root))
                goto out;
        if (!fy_node_is_mapping(root)) {
                r = fail(err, errlen, -EINVAL, "config %s: not a mapping", s->config_file);
                goto out;
        }
        if ((r = cfg_string(root, "/log/level", &s->config_log_level, err, errlen)) < 0 ||
            (r = cfg_string(root, "/runner/file", &s->runner_file, err, errlen)) < 0 ||
            (r = cfg_duration(root, "/runner/fetch_interval", &s->fetch_interval_ms, err, errlen)) < 0 ||
            (r = cfg_duration(root, "/runner/fetch_timeout", &s->fetch_timeout_ms, err, errlen)) < 0 ||
            (r = cfg_duration(root, "/runner/report_interval", &s->report_interval_ms, err, errlen)) < 0 ||
            (r = cfg_duration(root, "/runner/timeout", &s->timeout_ms, err, errlen)) < 0 ||
            (r = cfg_int(root, "/runner/report_retry/max_retries", &s->retry_max, err, errlen)) < 0 ||
            (r = cfg_duration(root, "/runner/report_retry/initial_delay", &s->retry_initial_ms, err, errlen)) < 0 ||
            (r = cfg_duration(root, "/runner/report_retry/max_delay", &s->retry_max_delay_ms, err, errlen)) < 0 ||
            (r = cfg_string(root, "/runner/codec", &s->config_codec, err, errlen)) < 0 ||
            (r = cfg_string(root, "/host/workdir_parent", &s->workdir_parent, err, errlen)) < 0 ||
            (r = cfg_labels(lookup(root, "/runner/labels"), &s->config_labels, "runner.labels", err, errlen)) < 0 ||
            (r = cfg_connections(root, conn, &s->fetch_interval_ms, err, errlen)) < 0)
                goto out;
out:
        if (r < 0 && !err[0])
                fail(err, errlen, r, "config %s: %s", s->config_file, strerror(-r));
        fy_document_destroy(doc);
        free(buf);
        return r;
}

/* ---- connection -------------------------------------------------------- */

/* "file:PATH" with $CREDENTIALS_DIRECTORY expanded into a new string. */
static int token_path(const char *url, char **ret, char *err, size_t errlen)
{
        static const char var[] = "CREDENTIALS_DIRECTORY";
        const char *p, *cred = getenv(var);
        char out[4096];
        size_t o = 0;

        if (strncmp(url, "file:", 5) != 0)
                return fail(err, errlen, -EINVAL,
                            "--token-url: only the file: scheme is supported");
        p = url + 5;
        if (strncmp(p, "//", 2) == 0)
                p += 2; /* file:///abs/path */
        while (*p) {
                const char *name = NULL;
                size_t skip = 0;
                if (p[0] == '$' && strncmp(p + 1, var, sizeof(var) - 1) == 0) {
                        name = var;
                        skip = 1 + sizeof(var) - 1;
                } else if (strncmp(p, "${", 2) == 0 && strncmp(p + 2, var, sizeof(var) - 1) == 0 &&
                           p[2 + sizeof(var) - 1] == '}') {
                        name = var;
                        skip = 3 + sizeof(var) - 1;
                }
                if (name) {
                        if (!cred)
                                return fail(err, errlen, -EINVAL,
                                            "--token-url: $CREDENTIALS_DIRECTORY is not set");
                        size_t l = strlen(cred);
                        if (o + l >= sizeof(out))
                                return fail(err, errlen, -EINVAL, "--token-url: path too long");
                        memcpy(out + o, cred, l);
                        o += l;
                        p += skip;
                        continue;
                }
                if (o + 1 >= sizeof(out))
                        return fail(err, errlen, -EINVAL, "--token-url: path too long");
                out[o++] = *p++;
        }
        out[o] = '\0';
        if (o == 0)
                return fail(err, errlen, -EINVAL, "--token-url: empty path");
        *ret = strdup(out);
        return *ret ? 0 : -ENOMEM;
}

static int load_runner_file(struct settings *s, struct rp_strlist *labels, char *err, size_t errlen)
{
        const char *path = s->runner_file ? s->runner_file : ".runner";
        json_t *j, *v, *e;
        char *buf = NULL;
        size_t len, i;
        int r;

        r = fs_read_file(path, RUNNER_FILE_MAX, &buf, &len);
        if (r < 0)
                return fail(err, errlen, r, "%s: %s", path, strerror(-r));
        j = json_loadb(buf, len, 0, NULL);
        explicit_bzero(buf, len);
        free(buf);
        if (!j || !json_is_object(j)) {
                r = fail(err, errlen, -EINVAL, "%s: not a JSON object", path);
                goto out;
        }
        v = json_object_get(j, "token");
        if (json_is_string(v) && json_string_length(v) > 0) {
                s->token = strdup(json_string_value(v));
                if (!s->token) {
                        r = -ENOMEM;
                        goto out;
                }
                log_redact_add(s->token);
        }
        v = json_object_get(j, "uuid");
        if (json_is_string(v) && (r = set_str(&s->uuid, json_string_value(v))) < 0)
                goto out;
        v = json_object_get(j, "address");
        if (json_is_string(v) && (r = set_str(&s->url, json_string_value(v))) < 0)
                goto out;
        if (!s->token || !s->uuid || !s->url) {
                r = fail(err, errlen, -EINVAL, "%s: uuid, token and address are required", path);
                goto out;
        }
        v = json_object_get(j, "labels");
        if (v && !json_is_null(v) && !json_is_array(v)) {
                r = fail(err, errlen, -EINVAL, "%s: labels must be a list", path);
                goto out;
        }
        r = 0;
        json_array_foreach(v, i, e) {
                if (!json_is_string(e)) {
                        r = fail(err, errlen, -EINVAL, "%s: labels must be strings", path);
                        break;
                }
                if ((r = check_label(json_string_value(e), path, err, errlen)) < 0 ||
                    (r = rp_strlist_push(labels, json_string_value(e))) < 0)
                        break;
        }
out:
        json_decref(j);
        return r;
}

static bool file_exists(const char *path)
{
        struct stat st;

        return stat(path, &st) == 0;
}

int settings_resolve(struct settings *s, char *err, size_t errlen)
{
        struct connection conn = { 0 };
        struct rp_strlist file_labels = { 0 };
        const struct rp_strlist *labels;
        const char *runner_file;
        char *tpath = NULL;
        bool have_flags, have_file;
        int r, sources;

        err[0] = '\0';
        if (s->config_file && (r = load_config(s, &conn, err, errlen)) < 0)
                goto out;
        runner_file = s->runner_file ? s->runner_file : ".runner";
        have_flags = s->flag_url || s->flag_uuid || s->flag_token_url || s->flag_labels.n;
        have_file = file_exists(runner_file);
        sources = (have_flags ? 1 : 0) + (conn.count > 0 ? 1 : 0) + (have_file ? 1 : 0);
        if (conn.count > 1) {
                r = fail(err, errlen, -EINVAL,
                         "config: server.connections has %d entries; one-job needs exactly one", conn.count);
                goto out;
        }
        if (sources > 1) {
                r = fail(err, errlen, -EINVAL,
                         "conflicting connections: use only one of the --url/--uuid/--token-url/--label flags, "
                         "server.connections in the configuration, or the %s file", runner_file);
                goto out;
        }
        if (sources == 0) {
                r = fail(err, errlen, -ENOENT,
                         "registration file not found, please register the runner first "
                         "(or give --url, --uuid and --token-url)");
                goto out;
        }
        if (have_flags) {
                if (!s->flag_url || !s->flag_uuid || !s->flag_token_url) {
                        r = fail(err, errlen, -EINVAL, "--url, --uuid and --token-url must be given together");
                        goto out;
                }
                if ((r = token_path(s->flag_token_url, &tpath, err, errlen)) < 0)
                        goto out;
                r = secret_load_file(tpath, &s->token);
                if (r < 0) {
                        r = fail(err, errlen, r, "token file %s: %s", tpath,
                                 r == -ENODATA ? "empty" : r == -EINVAL ? "more than one line" : strerror(-r));
                        goto out;
                }
                if ((r = set_str(&s->url, s->flag_url)) < 0 || (r = set_str(&s->uuid, s->flag_uuid)) < 0)
                        goto out;
                labels = s->flag_labels.n ? &s->flag_labels : &s->config_labels;
        } else if (conn.count == 1) {
                s->url = conn.url;
                s->uuid = conn.uuid;
                s->token = conn.token;
                conn.url = conn.uuid = conn.token = NULL;
                labels = conn.labels.n ? &conn.labels : &s->config_labels;
        } else {
                if ((r = load_runner_file(s, &file_labels, err, errlen)) < 0)
                        goto out;
                labels = s->config_labels.n ? &s->config_labels : &file_labels;
        }

        if (strncmp(s->url, "http://", 7) != 0 && strncmp(s->url, "https://", 8) != 0) {
                r = fail(err, errlen, -EINVAL, "url \"%s\": must start with http:// or https://", s->url);
                goto out;
        }
        for (size_t n = strlen(s->url); n > 0 && s->url[n - 1] == '/';)
                s->url[--n] = '\0';
        if (!ident_ok(s->uuid)) {
                r = fail(err, errlen, -EINVAL, "uuid: must be printable ASCII without spaces");
                goto out;
        }
        if (!ident_ok(s->token)) {
                r = fail(err, errlen, -EINVAL, "token: must be printable ASCII without spaces");
                goto out;
        }
        if (s->handle && !ident_ok(s->handle)) {
                r = fail(err, errlen, -EINVAL, "--handle: must be printable ASCII without spaces");
                goto out;
        }
        s->codec = RPCODEC_PROTO;
        if (s->flag_codec && rpcodec_parse_name(s->flag_codec, &s->codec) < 0) {
                r = fail(err, errlen, -EINVAL, "--codec: \"%s\" is neither proto nor json", s->flag_codec);
                goto out;
        }
        if (!s->flag_codec && s->config_codec && rpcodec_parse_name(s->config_codec, &s->codec) < 0) {
                r = fail(err, errlen, -EINVAL, "config: runner.codec: \"%s\" is neither proto nor json",
                         s->config_codec);
                goto out;
        }
        if (s->fetch_interval_ms <= 0 || s->fetch_timeout_ms <= 0 || s->report_interval_ms <= 0 ||
            s->timeout_ms <= 0) {
                r = fail(err, errlen, -EINVAL,
                         "config: fetch_interval, fetch_timeout, report_interval and timeout must be positive");
                goto out;
        }
        for (size_t i = 0; i < labels->n; i++) {
                char *name = settings_label_name(labels->v[i]);
                if (!name || rp_strlist_push(&s->labels, labels->v[i]) < 0) {
                        free(name);
                        r = -ENOMEM;
                        goto out;
                }
                if (!rp_strlist_contains(&s->label_names, name))
                        r = rp_strlist_push(&s->label_names, name);
                free(name);
                if (r < 0)
                        goto out;
        }
        r = 0;
out:
        if (r == -ENOMEM && !err[0])
                fail(err, errlen, r, "out of memory");
        free(tpath);
        connection_done(&conn);
        rp_strlist_done(&file_labels);
        return r;
}

void settings_done(struct settings *s)
{
        if (!s)
                return;
        free(s->config_file);
        free(s->flag_url);
        free(s->flag_uuid);
        free(s->flag_token_url);
        rp_strlist_done(&s->flag_labels);
        free(s->handle);
        free(s->flag_codec);
        free(s->config_codec);
        free(s->log_level);
        free(s->runner_file);
        free(s->workdir_parent);
        free(s->config_log_level);
        rp_strlist_done(&s->config_labels);
        free(s->url);
        free(s->uuid);
        secret_free(s->token);
        rp_strlist_done(&s->labels);
        rp_strlist_done(&s->label_names);
        memset(s, 0, sizeof(*s));
}
