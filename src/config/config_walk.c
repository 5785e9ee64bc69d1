/* config_walk.c: the walk over the key table: converts each value to its
 * key's type, applies defaults, reports unknown (with suggestions), duplicate
 * and missing keys and keys of another variant, then runs each section's
 * cross-key checks; frees what the table describes. Knows no key by name:
 * everything specific to a key lives in config_schema.c. */
#include "config/config.h"
#include "config/config_internal.h"

#include "util/duration.h"

#include <jansson.h>

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the walk -------------------------------------------------------------- */

void config__werr(struct walk *w, const struct ynode *at, const char *fmt, ...)
{
        char msg[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        config__errlist_add(w->errs, at ? at->line : 0, at ? at->col : 0, "%s%s", w->who, msg);
}

void config__wwarn(struct walk *w, const struct ynode *at, const char *fmt, ...)
{
        char msg[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        config__errlist_warn(w->errs, at ? at->line : 0, at ? at->col : 0, "%s%s", w->who, msg);
}

/* Appends "name." to the key path of nested sections; the caller saves and
 * restores the previous path. Section names are short table constants. */
static void path_push(struct walk *w, const char *name)
{
        size_t l = strlen(w->path);
        int r = snprintf(w->path + l, sizeof(w->path) - l, "%s.", name);

        if (r < 0 || (size_t)r >= sizeof(w->path) - l)
                w->path[l] = '\0';
}

const char *config__kp(struct walk *w, const struct key *k)
{
        snprintf(w->kbuf, sizeof(w->kbuf), "%s%s", w->path, k->name);
        return w->kbuf;
}

/* YAML's idea of an integer ("+3" included), for describing values. */
static bool is_int_text(const char *s)
{
        if (*s == '-' || *s == '+')
                s++;
        if (!*s)
                return false;
        for (; *s; s++)
                if (!isdigit((unsigned char)*s))
                        return false;
        return true;
}

static bool is_bool_text(const char *s, bool *ret)
{
        static const char *const t[] = { "true", "True", "TRUE" };
        static const char *const f[] = { "false", "False", "FALSE" };

        for (size_t i = 0; i < 3; i++) {
                if (strcmp(s, t[i]) == 0) {
                        *ret = true;
                        return true;
                }
                if (strcmp(s, f[i]) == 0) {
                        *ret = false;
                        return true;
                }
        }
        return false;
}

/* "a list", "a string ("x")", ... for "got ..." in messages. */
const char *config__describe(const struct ynode *y, char *buf, size_t n)
{
        bool bv;

        switch (y->kind) {
        case YN_MAP:
                return "a mapping";
        case YN_SEQ:
                return "a list";
        case YN_NULL:
                return "nothing";
        case YN_BAD:
                return "an unsupported value";
        case YN_SCALAR:
                break;
        }
        if (!y->quoted && is_int_text(y->s))
                snprintf(buf, n, "an integer (%s)", Q(y->s));
        else if (!y->quoted && is_bool_text(y->s, &bv))
                snprintf(buf, n, "a boolean (%s)", Q(y->s));
        else
                snprintf(buf, n, "a string (%s)", Q(y->s));
        return buf;
}

static void strv_done(struct config_strv *v)
{
        for (size_t i = 0; i < v->n; i++)
                free(v->v[i]);
        free(v->v);
        v->v = NULL;
        v->n = 0;
}

static void envv_done(struct config_envv *v)
{
        for (size_t i = 0; i < v->n; i++) {
                free(v->v[i].name);
                free(v->v[i].value);
        }
        free(v->v);
        v->v = NULL;
        v->n = 0;
}

static bool string_ok(struct walk *w, const struct key *k, const struct ynode *v)
{
        if (v->len != strlen(v->s)) {
                config__werr(w, v, "%s contains a NUL character", config__kp(w, k));
                return false;
        }
        return true;
}

static bool wrong_type(struct walk *w, const struct key *k, const struct ynode *v,
                       const char *want)
{
        config__werr(w, v, "%s must be %s, got %s", config__kp(w, k), want, DESC(v));
        return false;
}

static bool convert_list(struct walk *w, const struct key *k, const struct ynode *v,
                         struct config_strv *out)
{
        struct config_strv nv = { 0 };
        bool ok = true;

        if (v->kind != YN_SEQ)
                return wrong_type(w, k, v, "a list of strings");
        if (v->n > MAX_ITEMS) {
                config__werr(w, v, "%s has more than %d items", config__kp(w, k), MAX_ITEMS);
                return false;
        }
        nv.v = calloc(v->n ? v->n : 1, sizeof(char *));
        if (!nv.v) {
                w->errs->oom = true;
                return false;
        }
        for (size_t i = 0; i < v->n; i++) {
                const struct ynode *it = v->kids[i];
                if (it->kind == YN_BAD) {
                        ok = false;     /* already reported */
                        continue;
                }
                if (it->kind != YN_SCALAR) {
                        config__werr(w, it, "%s item %zu must be a string, got %s",
                                     config__kp(w, k), i + 1, DESC(it));
                        ok = false;
                        continue;
                }
                if (!string_ok(w, k, it)) {
                        ok = false;
                        continue;
                }
                nv.v[nv.n] = strdup(it->s);
                if (!nv.v[nv.n]) {
                        w->errs->oom = true;
                        ok = false;
                        break;
                }
                nv.n++;
        }
        if (!ok) {
                strv_done(&nv);
                return false;
        }
        strv_done(out);
        *out = nv;
        return true;
}

bool config__env_name_ok(const char *s)
{
        if (!*s || !(isalpha((unsigned char)*s) || *s == '_'))
                return false;
        for (; *s; s++)
                if (!(isalnum((unsigned char)*s) || *s == '_'))
                        return false;
        return true;
}

static bool convert_env(struct walk *w, const struct key *k, const struct ynode *v,
                        struct config_envv *out)
{
        struct config_envv nv = { 0 };
        size_t np;
        bool ok = true;

        if (v->kind != YN_MAP)
                return wrong_type(w, k, v, "a mapping of NAME: value");
        np = config__map_pairs(v);
        if (np > MAX_ITEMS) {
                config__werr(w, v, "%s has more than %d entries", config__kp(w, k), MAX_ITEMS);
                return false;
        }
        nv.v = calloc(np ? np : 1, sizeof(*nv.v));
        if (!nv.v) {
                w->errs->oom = true;
                return false;
        }
        for (size_t i = 0; i < np; i++) {
                const struct ynode *ky = v->kids[2 * i], *vy = v->kids[2 * i + 1];
                bool dup = false;

                if (ky->kind != YN_SCALAR || !config__env_name_ok(ky->s) || ky->len != strlen(ky->s)) {
                        config__werr(w, ky, "%s: %s is not a valid environment variable name; use letters, digits and '_', not starting with a digit",
                                     config__kp(w, k), ky->kind == YN_SCALAR ? Q(ky->s) : DESC(ky));
                        ok = false;
                        continue;
                }
                for (size_t j = 0; j < i; j++) {
                        const struct ynode *pk = v->kids[2 * j];
                        if (pk->kind == YN_SCALAR && strcmp(pk->s, ky->s) == 0) {
                                config__werr(w, ky, "%s: duplicate variable %s (first at %d:%d)",
                                             config__kp(w, k), Q(ky->s), pk->line, pk->col);
                                dup = true;
                                break;
                        }
                }
                if (dup) {
                        ok = false;
                        continue;
                }
                if (vy->kind != YN_SCALAR && vy->kind != YN_NULL) {
                        config__werr(w, vy, "%s.%s must be a string, got %s", config__kp(w, k), ky->s, DESC(vy));
                        ok = false;
                        continue;
                }
                if (vy->kind == YN_SCALAR && vy->len != strlen(vy->s)) {
                        config__werr(w, vy, "%s.%s contains a NUL character", config__kp(w, k), ky->s);
                        ok = false;
                        continue;
                }
                nv.v[nv.n].name = strdup(ky->s);
                nv.v[nv.n].value = strdup(vy->kind == YN_SCALAR ? vy->s : "");
                nv.n++;
                if (!nv.v[nv.n - 1].name || !nv.v[nv.n - 1].value) {
                        w->errs->oom = true;
                        ok = false;
                        break;
                }
        }
        if (!ok) {
                envv_done(&nv);
                return false;
        }
        envv_done(out);
        *out = nv;
        return true;
}

static bool name_ok(const char *s, size_t len)
{
        if (len == 0 || len > CONFIG_NAME_MAX || len != strlen(s))
                return false;
        /* Names become path components (instance folders, metrics). */
        if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
                return false;
        for (; *s; s++)
                if (!(isalnum((unsigned char)*s) || *s == '-' || *s == '_' || *s == '.'))
                        return false;
        return true;
}

bool config__walk_broken(const struct walk *w, const struct section *sec)
{
        for (size_t i = 0; i < w->n_broken; i++)
                if (w->broken[i] == sec)
                        return true;
        return false;
}

static void convert_named(struct walk *w, const struct key *k, const struct ynode *v, void *obj)
{
        const struct section *sub = k->sub;
        void **arr = config__field(obj, k);
        size_t *cnt = (size_t *)((char *)obj + k->count_off);
        char saved_who[sizeof(w->who)];
        size_t np;
        char *base;

        if (v->kind != YN_MAP) {
                wrong_type(w, k, v, "a mapping of NAME: settings");
                goto bad;
        }
        np = config__map_pairs(v);
        if (np == 0) {
                config__werr(w, v, "%s is empty; define at least one %s", config__kp(w, k), sub->name);
                goto bad;
        }
        if (np > MAX_ITEMS) {
                config__werr(w, v, "%s has more than %d entries", config__kp(w, k), MAX_ITEMS);
                goto bad;
        }
        base = calloc(np, sub->size);
        if (!base) {
                w->errs->oom = true;
                return;
        }
        *arr = base;
        *cnt = 0;
        memcpy(saved_who, w->who, sizeof(saved_who));
        for (size_t i = 0; i < np; i++) {
                const struct ynode *ky = v->kids[2 * i], *vy = v->kids[2 * i + 1];
                char *entry = base + *cnt * sub->size;
                struct config_pos *pos = (struct config_pos *)(entry + sub->pos_off);
                bool dup = false;

                if (ky->kind != YN_SCALAR) {
                        config__werr(w, ky, "%s names must be strings, got %s", sub->name, DESC(ky));
                        continue;
                }
                for (size_t j = 0; j < i; j++) {
                        const struct ynode *pk = v->kids[2 * j];
                        if (pk->kind == YN_SCALAR && strcmp(pk->s, ky->s) == 0) {
                                config__werr(w, ky, "duplicate %s %s (first at %d:%d)",
                                             sub->name, Q(ky->s), pk->line, pk->col);
                                dup = true;
                                break;
                        }
                }
                if (dup)
                        continue;
                if (!name_ok(ky->s, ky->len))
                        config__werr(w, ky, "%s name %s is invalid; use 1 to %d letters, digits, '-', '_' or '.', other than \".\" and \"..\"",
                                     sub->name, Q(ky->s), CONFIG_NAME_MAX);
                /* The name is the first member of every named entry. */
                *(char **)entry = strdup(ky->s);
                if (!*(char **)entry) {
                        w->errs->oom = true;
                        break;
                }
                pos->line = ky->line;
                pos->col = ky->col;
                (*cnt)++;
                snprintf(w->who, sizeof(w->who), "%s %s: ", sub->name, Q(ky->s));
                if (vy->kind == YN_MAP || vy->kind == YN_NULL) {
                        config__walk_map(w, sub, entry, vy->kind == YN_MAP ? vy : NULL, ky);
                } else if (vy->kind != YN_BAD) {
                        memcpy(w->who, saved_who, sizeof(saved_who));
                        config__werr(w, vy, "%s %s must be a mapping of settings, got %s",
                                     sub->name, Q(ky->s), DESC(vy));
                }
                memcpy(w->who, saved_who, sizeof(saved_who));
        }
        return;
bad:
        if (w->n_broken < sizeof(w->broken) / sizeof(w->broken[0]))
                w->broken[w->n_broken++] = sub;
}

/* A YAML value as JSON: quoted scalars are strings; plain ones are null
 * (null, ~, empty), true/false, a decimal integer, or else a string (a
 * Kubernetes quantity such as 0.5 stays the string "0.5", which the API
 * accepts). With strings, every scalar is a string. NULL on OOM. */
static json_t *ynode_json(const struct ynode *y, bool strings)
{
        json_t *o;
        bool b;

        switch (y->kind) {
        case YN_SCALAR:
                if (strings || y->quoted)
                        return json_stringn(y->s, y->len);
                if (y->len == 0 || strcmp(y->s, "~") == 0 || strcmp(y->s, "null") == 0 ||
                    strcmp(y->s, "Null") == 0 || strcmp(y->s, "NULL") == 0)
                        return json_null();
                if (is_bool_text(y->s, &b))
                        return json_boolean(b);
                if (is_int_text(y->s) && y->s[0] != '+') {
                        char *end;
                        long long n;
                        errno = 0;
                        n = strtoll(y->s, &end, 10);
                        if (errno == 0 && !*end)
                                return json_integer(n);
                }
                return json_stringn(y->s, y->len);
        case YN_SEQ:
                if (!(o = json_array()))
                        return NULL;
                for (size_t i = 0; i < y->n; i++)
                        if (json_array_append_new(o, ynode_json(y->kids[i], strings)) < 0)
                                goto oom;
                return o;
        case YN_MAP:
                if (!(o = json_object()))
                        return NULL;
                for (size_t i = 0; i + 1 < y->n; i += 2) {
                        const struct ynode *ky = y->kids[i];
                        if (ky->kind != YN_SCALAR)
                                continue; /* the key's check reports it */
                        if (json_object_set_new(o, ky->s, ynode_json(y->kids[i + 1], strings)) < 0)
                                goto oom;
                }
                return o;
        default:
                return json_null();
        }
oom:
        json_decref(o);
        return NULL;
}

static bool convert_json(struct walk *w, const struct key *k, const struct ynode *v, void *f)
{
        json_t *j = ynode_json(v, k->flags & KF_STRINGS);
        char *s = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY) : NULL;

        json_decref(j);
        if (!s) {
                w->errs->oom = true;
                return false;
        }
        free(*(char **)f);
        *(char **)f = s;
        return true;
}

static bool convert(struct walk *w, const struct key *k, const struct ynode *v, void *obj)
{
        void *f = config__field(obj, k);
        int64_t n;
        bool b;
        int r;

        if (v->kind == YN_BAD)
                return false;   /* already reported */

        switch (k->type) {
        case KT_STR:
                if (v->kind != YN_SCALAR)
                        return wrong_type(w, k, v, "a string");
                if (!string_ok(w, k, v))
                        return false;
                if (v->len == 0) {
                        config__werr(w, v, "%s must not be empty", config__kp(w, k));
                        return false;
                }
                {
                        char *s = strdup(v->s);
                        if (!s) {
                                w->errs->oom = true;
                                return false;
                        }
                        free(*(char **)f);
                        *(char **)f = s;
                }
                break;
        case KT_INT: {
                char *end;
                if (v->kind != YN_SCALAR || v->quoted || !is_int_text(v->s))
                        return wrong_type(w, k, v, "an integer");
                /* Integers are plain decimal: strtoll would take "+3"
                 * (and leading blanks), YAML 1.1 would not agree on "+3". */
                if (v->s[0] == '+') {
                        config__werr(w, v, "%s must be a plain decimal integer, without '+' (got %s)",
                                     config__kp(w, k), Q(v->s));
                        return false;
                }
                errno = 0;
                n = strtoll(v->s, &end, 10);
                if (errno == ERANGE || *end || n < k->min || n > k->max) {
                        if (k->max < INT64_MAX)
                                config__werr(w, v, "%s must be between %lld and %lld (got %s)", config__kp(w, k),
                                             (long long)k->min, (long long)k->max, v->s);
                        else
                                config__werr(w, v, "%s must be ≥ %lld (got %s)", config__kp(w, k),
                                             (long long)k->min, v->s);
                        return false;
                }
                *(int64_t *)f = n;
                break;
        }
        case KT_DURATION: {
                char a[32], b2[32];
                if (v->kind != YN_SCALAR)
                        return wrong_type(w, k, v, "a duration such as 30s");
                r = duration_parse(v->s, &n);
                if (r == -ERANGE || (r == 0 && n > k->max)) {
                        duration_format(k->max, a, sizeof(a));
                        config__werr(w, v, "%s %s is too long; the maximum is %s", config__kp(w, k), Q(v->s), a);
                        return false;
                }
                if (r < 0) {
                        config__werr(w, v, "%s %s is not a duration; write numbers with units (d, h, m, s, ms), each unit once and largest first, e.g. 30s or 1h30m",
                                     config__kp(w, k), Q(v->s));
                        return false;
                }
                if (n < k->min) {
                        duration_format(k->min, a, sizeof(a));
                        duration_format(n, b2, sizeof(b2));
                        if (k->min == 1)
                                config__werr(w, v, "%s must be greater than 0 (got %s)", config__kp(w, k), b2);
                        else
                                config__werr(w, v, "%s must be at least %s (got %s)", config__kp(w, k), a, b2);
                        return false;
                }
                *(int64_t *)f = n;
                break;
        }
        case KT_BOOL:
                if (v->kind != YN_SCALAR || v->quoted || !is_bool_text(v->s, &b))
                        return wrong_type(w, k, v, "true or false");
                *(bool *)f = b;
                break;
        case KT_ENUM: {
                size_t i, cnt = 0;
                char list[256];
                size_t o = 0;
                const char *sug;
                if (v->kind != YN_SCALAR)
                        return wrong_type(w, k, v, "a string");
                for (i = 0; k->enums[i]; i++)
                        if (strcmp(k->enums[i], v->s) == 0) {
                                *(int *)f = (int)i;
                                return k->check ? k->check(w, k, v, obj) : true;
                        }
                cnt = i;
                list[0] = '\0';
                for (i = 0; i < cnt; i++) {
                        int wr = snprintf(list + o, sizeof(list) - o, "%s%s",
                                          i == 0 ? "" : (i + 1 == cnt ? " or " : ", "),
                                          k->enums[i]);
                        if (wr < 0 || (size_t)wr >= sizeof(list) - o)
                                break;
                        o += (size_t)wr;
                }
                sug = config_suggest(v->s, k->enums, cnt);
                if (sug)
                        config__werr(w, v, "%s %s is invalid; did you mean \"%s\"? (use %s)",
                                     config__kp(w, k), Q(v->s), sug, list);
                else
                        config__werr(w, v, "%s %s is invalid; use %s", config__kp(w, k), Q(v->s), list);
                return false;
        }
        case KT_LIST:
                if (!convert_list(w, k, v, f))
                        return false;
                break;
        case KT_ENV:
                if (!convert_env(w, k, v, f))
                        return false;
                break;
        case KT_SECTION: {
                char saved[sizeof(w->path)];
                if (v->kind != YN_MAP)
                        return wrong_type(w, k, v, "a mapping");
                memcpy(saved, w->path, sizeof(saved));
                path_push(w, k->name);
                config__walk_map(w, k->sub, f, v, v);
                memcpy(w->path, saved, sizeof(saved));
                return true;
        }
        case KT_NAMED:
                convert_named(w, k, v, obj);
                return true;
        case KT_REFUSED:
                return false;
        case KT_JSON:
                if (!convert_json(w, k, v, f))
                        return false;
                break;
        }
        return k->check ? k->check(w, k, v, obj) : true;
}

static void ynode_unposition(struct ynode *y)
{
        y->line = y->col = 0;
        for (size_t i = 0; i < y->n; i++)
                ynode_unposition(y->kids[i]);
}

static bool apply_default(struct walk *w, const struct key *k, void *obj)
{
        struct errlist derr = { 0 };
        struct ynode *t = NULL;
        bool ok = false;
        int r;

        r = config__build_tree(k->def, strlen(k->def), &derr, &t);
        if (r < 0 || !t) {
                if (r == -ENOMEM)
                        w->errs->oom = true;
                else
                        config__werr(w, NULL, "internal error: the default of %s does not parse", config__kp(w, k));
        } else {
                /* Defaults have no position in the file, nor has anything
                 * inside one (the implicit provider's name and type). */
                ynode_unposition(t);
                ok = convert(w, k, t, obj);
        }
        config__ynode_free(t);
        config__errlist_done(&derr);
        return ok;
}

static const char *key_names(const struct section *sec, char *buf, size_t n)
{
        size_t o = 0;

        buf[0] = '\0';
        for (size_t i = 0; i < sec->n_keys; i++) {
                int wr;
                if (sec->keys[i].type == KT_REFUSED)
                        continue;
                wr = snprintf(buf + o, n - o, "%s%s", o ? ", " : "", sec->keys[i].name);
                if (wr < 0 || (size_t)wr >= n - o)
                        break;
                o += (size_t)wr;
        }
        return buf;
}

static void unknown_key(struct walk *w, const struct section *sec, const struct ynode *ky)
{
        const char *cands[MAX_KEYS];
        size_t nc = 0;
        const char *sug;
        char names[512];
        const char *where = sec == &config__top ? " at top level" : "";

        for (size_t i = 0; i < sec->n_keys && nc < MAX_KEYS; i++)
                if (sec->keys[i].type != KT_REFUSED)
                        cands[nc++] = sec->keys[i].name;
        sug = config_suggest(ky->s, cands, nc);
        if (sug)
                config__werr(w, ky, "unknown key \"%s%s\"%s; did you mean \"%s%s\"?",
                             B(w->path), B(ky->s), where, B(w->path), sug);
        else
                config__werr(w, ky, "unknown key \"%s%s\"%s; valid keys are: %s",
                             B(w->path), B(ky->s), where, key_names(sec, names, sizeof(names)));
}

bool config__key_applies(const struct section *sec, const struct key *k, const void *obj)
{
        int v;

        if (!k->variants || !sec->variant)
                return true;
        v = *(const int *)((const char *)obj + sec->variant->off);
        return v >= 0 && v < 32 && (k->variants & KV(v));
}

/* "local", "local or ssh": the variant values a key is for. */
static const char *variant_names(const struct key *var, unsigned bits, char *buf, size_t n)
{
        size_t o = 0, left = 0;

        for (size_t i = 0; var->enums[i]; i++)
                if (bits & KV(i))
                        left++;
        buf[0] = '\0';
        for (size_t i = 0; var->enums[i] && i < 32; i++) {
                int wr;
                if (!(bits & KV(i)))
                        continue;
                wr = snprintf(buf + o, n - o, "%s%s", o == 0 ? "" : left == 1 ? " or " : ", ",
                              var->enums[i]);
                if (wr < 0 || (size_t)wr >= n - o)
                        break;
                o += (size_t)wr;
                left--;
        }
        return buf;
}

/* Keys given for a variant they do not apply to ("user" on an ssh
 * provider). Skipped when the variant key itself is broken (reported). */
static void check_variants(struct walk *w, const struct section *sec, void *obj,
                           const struct ynode *const *seen_k, const struct ynode *const *seen_v,
                           bool variant_known)
{
        char names[128];

        if (!variant_known)
                return;
        for (size_t i = 0; i < sec->n_keys; i++) {
                const struct key *k = &sec->keys[i];
                if (!seen_k[i] || !seen_v[i] || seen_v[i]->kind == YN_NULL ||
                    config__key_applies(sec, k, obj))
                        continue;
                config__werr(w, seen_k[i], "key \"%s%s\" is only for %ss of %s %s",
                             w->path, k->name, sec->name, sec->variant->name,
                             variant_names(sec->variant, k->variants, names, sizeof(names)));
        }
}

void config__walk_map(struct walk *w, const struct section *sec, void *obj,
                             const struct ynode *map, const struct ynode *where)
{
        const struct ynode *seen_k[MAX_KEYS] = { 0 }, *seen_v[MAX_KEYS] = { 0 };
        bool converted[MAX_KEYS] = { 0 };
        size_t np = map ? config__map_pairs(map) : 0;

        if (np > MAX_ITEMS) {
                config__werr(w, map, "%s mapping has more than %d keys", sec->name, MAX_ITEMS);
                np = 0;
        }
        for (size_t i = 0; i < np; i++) {
                const struct ynode *ky = map->kids[2 * i], *vy = map->kids[2 * i + 1];
                bool dup = false;
                size_t idx;

                if (ky->kind != YN_SCALAR || ky->len != strlen(ky->s)) {
                        if (ky->kind != YN_BAD)
                                config__werr(w, ky, "keys must be plain strings, got %s", DESC(ky));
                        continue;
                }
                for (size_t j = 0; j < i; j++) {
                        const struct ynode *pk = map->kids[2 * j];
                        if (pk->kind == YN_SCALAR && strcmp(pk->s, ky->s) == 0) {
                                config__werr(w, ky, "duplicate key \"%s%s\"%s (first at %d:%d)",
                                             B(w->path), B(ky->s),
                                             sec == &config__top ? " at top level" : "",
                                             pk->line, pk->col);
                                dup = true;
                                break;
                        }
                }
                if (dup)
                        continue;
                for (idx = 0; idx < sec->n_keys; idx++)
                        if (strcmp(sec->keys[idx].name, ky->s) == 0)
                                break;
                if (idx == sec->n_keys) {
                        unknown_key(w, sec, ky);
                        continue;
                }
                seen_k[idx] = ky;
                seen_v[idx] = vy;
        }

        for (size_t idx = 0; idx < sec->n_keys; idx++) {
                const struct key *k = &sec->keys[idx];
                const struct ynode *vy = seen_v[idx];

                if (k->type == KT_REFUSED) {
                        if (seen_k[idx])
                                config__werr(w, seen_v[idx]->kind == YN_NULL ? seen_k[idx] : seen_v[idx],
                                             "%s: %s", config__kp(w, k), k->doc);
                        continue;
                }
                if (vy && vy->kind != YN_NULL) {
                        converted[idx] = convert(w, k, vy, obj);
                } else if (k->type == KT_SECTION) {
                        char saved[sizeof(w->path)];
                        memcpy(saved, w->path, sizeof(saved));
                        path_push(w, k->name);
                        config__walk_map(w, k->sub, config__field(obj, k), NULL, seen_k[idx] ? seen_k[idx] : where);
                        memcpy(w->path, saved, sizeof(saved));
                } else if (k->def) {
                        converted[idx] = apply_default(w, k, obj);
                } else if (k->flags & KF_REQUIRED) {
                        if (seen_k[idx])
                                config__werr(w, seen_k[idx], "%s has no value; e.g. %s", config__kp(w, k), k->example);
                        else
                                config__werr(w, where, "missing required key \"%s\"; e.g. %s",
                                             config__kp(w, k), k->example);
                }
        }
        if (sec->variant)
                check_variants(w, sec, obj, seen_k, seen_v,
                               converted[sec->variant - sec->keys]);
        if (sec->finish)
                sec->finish(w, obj, seen_k, seen_v, where);
}

/* ---- generic free ------------------------------------------------------------------ */

void config__section_done(const struct section *sec, void *obj)
{
        for (size_t i = 0; i < sec->n_keys; i++) {
                const struct key *k = &sec->keys[i];
                void *f = config__field(obj, k);

                switch (k->type) {
                case KT_STR:
                case KT_JSON:
                        free(*(char **)f);
                        *(char **)f = NULL;
                        break;
                case KT_LIST:
                        strv_done(f);
                        break;
                case KT_ENV:
                        envv_done(f);
                        break;
                case KT_SECTION:
                        config__section_done(k->sub, f);
                        break;
                case KT_NAMED: {
                        char *arr = *(char **)f;
                        size_t *cnt = (size_t *)((char *)obj + k->count_off);
                        for (size_t j = 0; arr && j < *cnt; j++)
                                config__section_done(k->sub, arr + j * k->sub->size);
                        free(arr);
                        *(char **)f = NULL;
                        *cnt = 0;
                        break;
                }
                default:
                        break;
                }
        }
        /* Named entries carry their name first, outside the key table. */
        if (sec->size) {
                free(*(char **)obj);
                *(char **)obj = NULL;
        }
        if (sec->done)
                sec->done(obj);
}

void config_free(struct config *cfg)
{
        if (!cfg)
                return;
        config__section_done(&config__top, cfg);
        free(cfg);
}

/* ---- small pure helpers ----------------------------------------------------------------- */

size_t config_levenshtein(const char *a, const char *b)
{
        size_t la = strlen(a), lb = strlen(b);
        size_t rows[3][65];
        size_t *prev2 = rows[0], *prev = rows[1], *cur = rows[2];

        if (la > 64 || lb > 64)
                return SIZE_MAX;
        for (size_t j = 0; j <= lb; j++)
                prev[j] = j;
        for (size_t i = 1; i <= la; i++) {
                size_t *t;
                cur[0] = i;
                for (size_t j = 1; j <= lb; j++) {
                        size_t best = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
                        if (prev[j] + 1 < best)
                                best = prev[j] + 1;
                        if (cur[j - 1] + 1 < best)
                                best = cur[j - 1] + 1;
                        /* An adjacent transposition ("lgo" for "log") is one edit. */
                        if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                            prev2[j - 2] + 1 < best)
                                best = prev2[j - 2] + 1;
                        cur[j] = best;
                }
                t = prev2;
                prev2 = prev;
                prev = cur;
                cur = t;
        }
        return prev[lb];
}

const char *config_suggest(const char *word, const char *const *cands, size_t n)
{
        size_t len = strlen(word), best = SIZE_MAX, limit;
        const char *pick = NULL;

        limit = len <= 3 ? 1 : len <= 8 ? 2 : 3;
        for (size_t i = 0; i < n; i++) {
                size_t d;
                if (!cands[i])
                        continue;
                d = config_levenshtein(word, cands[i]);
                if (d < best && d <= limit && d < strlen(cands[i])) {
                        best = d;
                        pick = cands[i];
                }
        }
        return pick;
}
