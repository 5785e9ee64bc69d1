/* dockerapi.c: the Docker Engine API as data (see dockerapi.h): request
 * bodies built with jansson, strict readers of the few answers forgescale
 * uses, the engine's error text and the log stream's frame decoder. Never
 * does I/O, never logs, never trusts a length or a type it did not check. */
#include "provider/dockerapi.h"
#include "provider/provider.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the create body ------------------------------------------------------- */

static int add_strv(json_t *arr, const char *const *v)
{
        for (size_t k = 0; v && v[k]; k++)
                if (json_array_append_new(arr, json_string(v[k])) < 0)
                        return -ENOMEM;
        return 0;
}

static int set_new(json_t *obj, const char *key, json_t *v)
{
        return v && json_object_set_new(obj, key, v) == 0 ? 0 : -ENOMEM;
}

int dockerapi_create_body(const struct dockerapi_create *c, char **ret)
{
        json_t *root = NULL, *host = NULL, *arr;
        char *out;
        int r = -ENOMEM;

        if (!c || !c->image || !*c->image || !c->instance || !*c->instance || !c->argv ||
            !c->argv[0] || !*c->argv[0])
                return -EINVAL;
        root = json_object();
        host = json_object();
        if (!root || !host)
                goto out;
        if (set_new(root, "Image", json_string(c->image)) < 0)
                goto out;
        arr = json_array();
        if (set_new(root, "Entrypoint", arr) < 0 ||
            json_array_append_new(arr, json_string(c->argv[0])) < 0)
                goto out;
        arr = json_array();
        if (set_new(root, "Cmd", arr) < 0 || add_strv(arr, c->argv + 1) < 0)
                goto out;
        arr = json_array();
        if (set_new(root, "Env", arr) < 0 || add_strv(arr, c->env) < 0 ||
            add_strv(arr, c->env_extra) < 0)
                goto out;
        json_t *labels = json_object();
        if (set_new(root, "Labels", labels) < 0 ||
            set_new(labels, DOCKERAPI_LABEL_INSTANCE, json_string(c->instance)) < 0 ||
            set_new(labels, DOCKERAPI_LABEL_POOL, json_string(c->pool ? c->pool : "")) < 0 ||
            set_new(labels, DOCKERAPI_LABEL_MANAGED, json_string("1")) < 0)
                goto out;
        if (c->log_path && set_new(labels, "forgescale.log", json_string(c->log_path)) < 0)
                goto out;
        if (c->log_max && set_new(labels, "forgescale.log_max", json_string(c->log_max)) < 0)
                goto out;
        if (c->user && *c->user && set_new(root, "User", json_string(c->user)) < 0)
                goto out;
        /* No TTY: the log stream is then framed, stdout and stderr apart. */
        if (set_new(root, "Tty", json_false()) < 0 ||
            set_new(root, "AttachStdin", json_false()) < 0 ||
            set_new(root, "OpenStdin", json_false()) < 0)
                goto out;

        arr = json_array();
        if (set_new(host, "Binds", arr) < 0 || add_strv(arr, c->binds) < 0)
                goto out;
        if (c->network && *c->network && set_new(host, "NetworkMode", json_string(c->network)) < 0)
                goto out;
        if (c->nano_cpus > 0 && set_new(host, "NanoCpus", json_integer(c->nano_cpus)) < 0)
                goto out;
        if (c->memory > 0 && set_new(host, "Memory", json_integer(c->memory)) < 0)
                goto out;
        if (c->pids_limit > 0 && set_new(host, "PidsLimit", json_integer(c->pids_limit)) < 0)
                goto out;
        if (c->n_ulimits) {
                arr = json_array();
                if (set_new(host, "Ulimits", arr) < 0)
                        goto out;
                for (size_t k = 0; k < c->n_ulimits; k++) {
                        json_t *u = json_pack("{s:s, s:I, s:I}", "Name", c->ulimits[k].name,
                                              "Soft", (json_int_t)c->ulimits[k].soft,
                                              "Hard", (json_int_t)c->ulimits[k].hard);
                        if (!u || json_array_append_new(arr, u) < 0)
                                goto out;
                }
        }
        if (c->runtime && *c->runtime && set_new(host, "Runtime", json_string(c->runtime)) < 0)
                goto out;
        if (set_new(host, "AutoRemove", json_false()) < 0 ||
            set_new(host, "Init", json_boolean(c->init)) < 0)
                goto out;
        if (json_object_set(root, "HostConfig", host) < 0)
                goto out;
        out = json_dumps(root, JSON_COMPACT);
        if (!out)
                goto out;
        *ret = out;
        r = 0;
out:
        json_decref(host);
        json_decref(root);
        return r;
}

/* ---- answers ------------------------------------------------------------------ */

static json_t *load(const char *body, size_t len)
{
        return body ? json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL) : NULL;
}

/* Copies a string member into buf[n]; false when absent, not a string or
 * too long. */
static bool get_str(json_t *obj, const char *key, char *buf, size_t n)
{
        json_t *v = json_object_get(obj, key);
        const char *s;
        size_t l;

        if (!json_is_string(v))
                return false;
        s = json_string_value(v);
        l = json_string_length(v);
        if (l >= n || strlen(s) != l)
                return false;
        memcpy(buf, s, l + 1);
        return true;
}

static bool id_ok(const char *id)
{
        if (!*id)
                return false;
        for (const char *c = id; *c; c++)
                if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f') ||
                      (*c >= 'A' && *c <= 'F')))
                        return false;
        return true;
}

int dockerapi_parse_created(const char *body, size_t len, char *id)
{
        char buf[DOCKERAPI_ID_MAX];
        json_t *root = load(body, len);
        bool ok = json_is_object(root) && get_str(root, "Id", buf, sizeof(buf)) && id_ok(buf);

        json_decref(root);
        if (!ok)
                return -EBADMSG;
        memcpy(id, buf, strlen(buf) + 1);
        return 0;
}

/* The forgescale labels of a Labels object (null or absent: none). */
static void read_labels(json_t *labels, char *instance, size_t n, bool *managed)
{
        json_t *m;

        instance[0] = '\0';
        *managed = false;
        if (!json_is_object(labels))
                return;
        if (!get_str(labels, DOCKERAPI_LABEL_INSTANCE, instance, n))
                instance[0] = '\0';
        m = json_object_get(labels, DOCKERAPI_LABEL_MANAGED);
        *managed = json_is_string(m) && strcmp(json_string_value(m), "1") == 0;
}

int dockerapi_parse_inspect(const char *body, size_t len, struct dockerapi_inspect *ret)
{
        struct dockerapi_inspect in;
        json_t *root = load(body, len), *state, *cfg, *v;
        char name[DOCKERAPI_NAME_MAX + 1];
        int r = -EBADMSG;

        memset(&in, 0, sizeof(in));
        if (!json_is_object(root) || !get_str(root, "Id", in.id, sizeof(in.id)) || !id_ok(in.id))
                goto out;
        state = json_object_get(root, "State");
        if (!json_is_object(state))
                goto out;
        if (get_str(root, "Name", name, sizeof(name))) {
                const char *nm = name[0] == '/' ? name + 1 : name;
                size_t l = strlen(nm);
                if (l < sizeof(in.name))
                        memcpy(in.name, nm, l + 1);
        }
        cfg = json_object_get(root, "Config");
        if (json_is_object(cfg))
                read_labels(json_object_get(cfg, "Labels"), in.instance, sizeof(in.instance),
                            &in.managed);
        v = json_object_get(state, "ExitCode");
        if (!json_is_integer(v) || json_integer_value(v) < -1 || json_integer_value(v) > 0xffff)
                goto out;
        in.exit_code = (int)json_integer_value(v);
        if (!get_str(state, "Status", in.status, sizeof(in.status)))
                in.status[0] = '\0';
        in.running = json_is_true(json_object_get(state, "Running")) ||
                     json_is_true(json_object_get(state, "Paused")) ||
                     json_is_true(json_object_get(state, "Restarting"));
        in.oom_killed = json_is_true(json_object_get(state, "OOMKilled"));
        if (!get_str(state, "Error", in.error, sizeof(in.error)))
                in.error[0] = '\0';
        *ret = in;
        r = 0;
out:
        json_decref(root);
        return r;
}

const char *dockerapi_inspect_label(const char *body, size_t len, const char *name,
                                    char *buf, size_t n)
{
        json_t *root = load(body, len);
        json_t *labels = json_object_get(json_object_get(root, "Config"), "Labels");

        if (n == 0)
                return buf;
        if (!json_is_object(labels) || !get_str(labels, name, buf, n))
                buf[0] = '\0';
        json_decref(root);
        return buf;
}

void dockerapi_exit(const struct dockerapi_inspect *in, unsigned sent,
                    struct provider_exit *ret, bool *ret_oom)
{
        int code = in->exit_code;

        *ret_oom = in->oom_killed;
        if (in->oom_killed)
                *ret = (struct provider_exit){ .kind = PROVIDER_EXIT_SIGNAL, .signal = SIGKILL };
        else if (code > 128 && code < 128 + 32 && (sent & (1u << (code - 128))))
                *ret = (struct provider_exit){ .kind = PROVIDER_EXIT_SIGNAL, .signal = code - 128 };
        else if (code >= 0 && code <= 255)
                *ret = (struct provider_exit){ .kind = PROVIDER_EXIT_CODE, .code = code };
        else
                *ret = (struct provider_exit){ .kind = PROVIDER_EXIT_UNKNOWN };
}

int dockerapi_classify(int err, long status, const char *msg)
{
        if (!msg)
                msg = "";
        if (err)
                return PROVIDER_FAIL_UNREACHABLE;
        if (status == 404 && strcasestr(msg, "image"))
                return PROVIDER_FAIL_IMAGE;
        if (strcasestr(msg, "quota") || strcasestr(msg, "limit exceeded") ||
            strcasestr(msg, "insufficient"))
                return PROVIDER_FAIL_QUOTA;
        if (status >= 400 && status < 500)
                return PROVIDER_FAIL_REJECTED;
        return PROVIDER_FAIL_ENGINE;
}

int dockerapi_parse_list(const char *body, size_t len, const char *prefix,
                         struct dockerapi_listed **ret, size_t *ret_n)
{
        json_t *root = load(body, len);
        struct dockerapi_listed *v = NULL;
        size_t n = 0, plen = prefix ? strlen(prefix) : 0;
        int r = -EBADMSG;

        if (!json_is_array(root))
                goto out;
        if (json_array_size(root)) {
                v = calloc(json_array_size(root), sizeof(*v));
                if (!v) {
                        r = -ENOMEM;
                        goto out;
                }
        }
        for (size_t k = 0; k < json_array_size(root); k++) {
                json_t *c = json_array_get(root, k);
                struct dockerapi_listed *e = &v[n];
                char state[32];
                bool managed;

                if (!json_is_object(c) || !get_str(c, "Id", e->id, sizeof(e->id)) || !id_ok(e->id))
                        continue;
                read_labels(json_object_get(c, "Labels"), e->instance, sizeof(e->instance), &managed);
                if (!managed || !e->instance[0] || strncmp(e->instance, prefix ? prefix : "", plen) != 0)
                        continue;
                e->running = get_str(c, "State", state, sizeof(state)) &&
                             (strcmp(state, "running") == 0 || strcmp(state, "paused") == 0 ||
                              strcmp(state, "restarting") == 0);
                n++;
        }
        if (n == 0) {
                free(v);
                v = NULL;
        }
        *ret = v;
        *ret_n = n;
        v = NULL;
        r = 0;
out:
        free(v);
        json_decref(root);
        return r;
}

int dockerapi_parse_wait(const char *body, size_t len, int *ret_code)
{
        json_t *root = load(body, len), *v = json_object_get(root, "StatusCode");
        int r = -EBADMSG;

        if (json_is_integer(v) && json_integer_value(v) >= -1 && json_integer_value(v) <= 0xffff) {
                *ret_code = (int)json_integer_value(v);
                r = 0;
        }
        json_decref(root);
        return r;
}

/* Printable, one line: control bytes become spaces. */
static void one_line(char *s)
{
        for (; *s; s++)
                if ((unsigned char)*s < ' ' || *s == 0x7f)
                        *s = ' ';
}

bool dockerapi_pull_error(const char *body, size_t len, char *buf, size_t n)
{
        size_t off = 0;

        buf[0] = '\0';
        while (off < len) {
                const char *nl = memchr(body + off, '\n', len - off);
                size_t l = nl ? (size_t)(nl - (body + off)) : len - off;
                json_t *o = json_loadb(body + off, l, 0, NULL);
                json_t *d = json_object_get(o, "errorDetail");
                bool found = get_str(o, "error", buf, n) ||
                             (json_is_object(d) && get_str(d, "message", buf, n));
                json_decref(o);
                if (found) {
                        one_line(buf);
                        return true;
                }
                off += l + 1;
        }
        return false;
}

const char *dockerapi_error_message(const char *body, size_t len, char *buf, size_t n)
{
        json_t *root = load(body, len);

        if (n == 0)
                return buf;
        buf[0] = '\0';
        if (!json_is_object(root) || !get_str(root, "message", buf, n)) {
                size_t l = body ? strnlen(body, len) : 0;
                if (l >= n)
                        l = n - 1;
                if (l)
                        memcpy(buf, body, l);
                buf[l] = '\0';
        }
        json_decref(root);
        one_line(buf);
        /* Trailing blanks (a body's newline) say nothing. */
        for (size_t l = strlen(buf); l && buf[l - 1] == ' '; l--)
                buf[l - 1] = '\0';
        return buf;
}

/* ---- the log stream --------------------------------------------------------------- */

int dockerapi_demux_feed(struct dockerapi_demux *d, const void *buf, size_t n,
                         dockerapi_demux_cb cb, void *ud)
{
        const unsigned char *p = buf;

        while (n) {
                if (d->left == 0) {
                        size_t take = sizeof(d->hdr) - d->hlen;
                        if (take > n)
                                take = n;
                        memcpy(d->hdr + d->hlen, p, take);
                        d->hlen += take;
                        p += take;
                        n -= take;
                        if (d->hlen < sizeof(d->hdr))
                                break;
                        d->hlen = 0;
                        if (d->hdr[0] > 2 || d->hdr[1] || d->hdr[2] || d->hdr[3])
                                return -EPROTO;
                        d->stream = d->hdr[0];
                        d->left = (uint32_t)d->hdr[4] << 24 | (uint32_t)d->hdr[5] << 16 |
                                  (uint32_t)d->hdr[6] << 8 | (uint32_t)d->hdr[7];
                        continue;
                }
                size_t take = n < d->left ? n : d->left;
                int r = cb(ud, d->stream, p, take);
                if (r < 0)
                        return r;
                d->left -= (uint32_t)take;
                p += take;
                n -= take;
        }
        return 0;
}

int dockerapi_escape(const char *s, char *buf, size_t n)
{
        static const char hex[] = "0123456789ABCDEF";
        size_t o = 0;

        for (; *s; s++) {
                unsigned char c = (unsigned char)*s;
                bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                            (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
                if (o + (keep ? 1 : 3) >= n)
                        return -ENAMETOOLONG;
                if (keep) {
                        buf[o++] = (char)c;
                } else {
                        buf[o++] = '%';
                        buf[o++] = hex[c >> 4];
                        buf[o++] = hex[c & 15];
                }
        }
        if (o >= n)
                return -ENAMETOOLONG;
        buf[o] = '\0';
        return 0;
}
