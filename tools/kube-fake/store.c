/* store.c: kube-fake's objects (Secrets, Jobs, Pods as jansson trees), the
 * global resourceVersion counter, the ring of past events a watch resumes
 * from, and the fan-out of every change to open watches; plus label and
 * field selectors. Never validates a body and never touches a process: an
 * object reaching store_add() was checked by api.c. */
#include "kfake.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *path_get(json_t *obj, const char *path)
{
        char seg[128];
        const char *p = path;

        while (obj && *p) {
                const char *dot = strchr(p, '.');
                size_t n = dot ? (size_t)(dot - p) : strlen(p);
                if (n >= sizeof(seg))
                        return NULL;
                memcpy(seg, p, n);
                seg[n] = '\0';
                obj = json_object_get(obj, seg);
                p += n + (dot ? 1 : 0);
        }
        return obj;
}

const char *obj_str(json_t *obj, const char *path)
{
        return json_string_value(path_get(obj, path));
}

int64_t obj_int(json_t *obj, const char *path, int64_t dflt)
{
        json_t *v = path_get(obj, path);

        return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

static void key_of(json_t *obj, char *key, size_t n)
{
        snprintf(key, n, "%s/%s", obj_str(obj, "metadata.namespace") ?: "",
                 obj_str(obj, "metadata.name") ?: "");
}

json_t *store_get(struct kf *kf, enum kres r, const char *ns, const char *name)
{
        char key[600];

        snprintf(key, sizeof(key), "%s/%s", ns, name);
        return json_object_get(kf->objs[r], key);
}

json_t *store_by_uid(struct kf *kf, enum kres r, const char *uid)
{
        const char *k;
        json_t *v;

        json_object_foreach(kf->objs[r], k, v) {
                const char *u = obj_str(v, "metadata.uid");
                if (u && strcmp(u, uid) == 0)
                        return v;
        }
        return NULL;
}

static void set_rv(struct kf *kf, json_t *obj)
{
        char rv[32];
        json_t *md = json_object_get(obj, "metadata");

        snprintf(rv, sizeof(rv), "%llu", (unsigned long long)++kf->rv);
        json_object_set_new(md, "resourceVersion", json_string(rv));
}

static void history_push(struct kf *kf, enum kres r, const char *type, json_t *obj)
{
        size_t idx;

        if (kf->hist_len == KF_HISTORY) {
                struct kevent *old = &kf->history[kf->hist_start];
                json_decref(old->obj);
                kf->hist_start = (kf->hist_start + 1) % KF_HISTORY;
                kf->hist_len--;
        }
        idx = (kf->hist_start + kf->hist_len) % KF_HISTORY;
        kf->history[idx] = (struct kevent){ .rv = kf->rv, .res = r, .type = type,
                                            .obj = json_deep_copy(obj) };
        kf->hist_len++;
}

static bool watch_matches(const struct kwatch *w, enum kres r, json_t *obj)
{
        if (w->res != r || w->closing)
                return false;
        if (w->ns[0] && strcmp(w->ns, obj_str(obj, "metadata.namespace") ?: "") != 0)
                return false;
        return ksel_match(w->sel, obj) && kfsel_match(&w->fsel, obj);
}

static void watch_queue(struct kwatch *w, const char *type, json_t *obj)
{
        json_t *ev = json_pack("{s:s,s:O}", "type", type, "object", obj);
        char *line = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
        size_t n;

        json_decref(ev);
        if (!line) {
                w->closing = w->abort = true;
                return;
        }
        n = strlen(line);
        if (w->len + n + 1 > KF_MAX_WATCH_BUF) {
                /* A client that stopped reading: cut it off like an apiserver would. */
                free(line);
                w->closing = w->abort = true;
                return;
        }
        if (w->len + n + 1 > w->cap) {
                size_t cap = w->cap ? w->cap : 4096;
                while (cap < w->len + n + 1)
                        cap *= 2;
                char *nb = realloc(w->buf, cap);
                if (!nb) {
                        free(line);
                        w->closing = w->abort = true;
                        return;
                }
                w->buf = nb;
                w->cap = cap;
        }
        memcpy(w->buf + w->len, line, n);
        w->buf[w->len + n] = '\n';
        w->len += n + 1;
        free(line);
        w->last_send_ms = kf_now_ms();
}

static void emit(struct kf *kf, enum kres r, const char *type, json_t *obj)
{
        history_push(kf, r, type, obj);
        for (struct kwatch *w = kf->watches; w; w = w->next) {
                if (!watch_matches(w, r, obj))
                        continue;
                watch_queue(w, type, obj);
                w->last_rv = kf->rv;
                if (w->suspended) {
                        w->suspended = false;
                        httpd_wake(w->conn);
                }
        }
}

json_t *store_add(struct kf *kf, enum kres r, json_t *obj)
{
        char key[600];

        key_of(obj, key, sizeof(key));
        set_rv(kf, obj);
        if (json_object_set_new(kf->objs[r], key, obj) < 0)
                return NULL;
        emit(kf, r, "ADDED", obj);
        return obj;
}

void store_modified(struct kf *kf, enum kres r, json_t *obj)
{
        set_rv(kf, obj);
        emit(kf, r, "MODIFIED", obj);
}

void store_remove(struct kf *kf, enum kres r, json_t *obj)
{
        char key[600];

        key_of(obj, key, sizeof(key));
        json_incref(obj);
        json_object_del(kf->objs[r], key);
        set_rv(kf, obj);
        emit(kf, r, "DELETED", obj);
        json_decref(obj);
}

void store_compact(struct kf *kf)
{
        kf->compact_rv = kf->rv;
}

bool store_rv_expired(struct kf *kf, uint64_t rv)
{
        if (rv < kf->compact_rv)
                return true;
        /* Once the ring wrapped, versions before its oldest event are lost. */
        if (kf->hist_len == KF_HISTORY && rv + 1 < kf->history[kf->hist_start].rv)
                return true;
        return false;
}

static void queue_expired(struct kwatch *w, uint64_t rv)
{
        char msg[128];
        json_t *st;

        snprintf(msg, sizeof(msg), "too old resource version: %llu (%llu)",
                 (unsigned long long)rv, (unsigned long long)w->kf->compact_rv + 1);
        st = json_pack("{s:s,s:s,s:{},s:s,s:s,s:s,s:i}", "kind", "Status", "apiVersion", "v1",
                       "metadata", "status", "Failure", "message", msg, "reason", "Expired",
                       "code", 410);
        if (st)
                watch_queue(w, "ERROR", st);
        json_decref(st);
        w->closing = true;
}

struct kwatch *store_watch_new(struct kf *kf, enum kres r, const char *ns, struct ksel *sel,
                               const struct kfsel *fsel, uint64_t rv, bool have_rv)
{
        struct kwatch *w = calloc(1, sizeof(*w));

        if (!w) {
                ksel_free(sel);
                return NULL;
        }
        w->kf = kf;
        w->res = r;
        snprintf(w->ns, sizeof(w->ns), "%s", ns ? ns : "");
        w->sel = sel;
        if (fsel)
                w->fsel = *fsel;
        w->last_send_ms = kf_now_ms();
        w->last_rv = kf->rv;
        if (!have_rv || rv == 0) {
                const char *k;
                json_t *v;
                json_object_foreach(kf->objs[r], k, v)
                        if (watch_matches(w, r, v))
                                watch_queue(w, "ADDED", v);
        } else if (store_rv_expired(kf, rv)) {
                queue_expired(w, rv);
        } else {
                for (size_t i = 0; i < kf->hist_len; i++) {
                        struct kevent *e = &kf->history[(kf->hist_start + i) % KF_HISTORY];
                        if (e->rv > rv && watch_matches(w, e->res, e->obj))
                                watch_queue(w, e->type, e->obj);
                }
        }
        w->next = kf->watches;
        kf->watches = w;
        kf->watches_open++;
        return w;
}

void store_watch_free(struct kwatch *w)
{
        if (!w)
                return;
        for (struct kwatch **pp = &w->kf->watches; *pp; pp = &(*pp)->next) {
                if (*pp == w) {
                        *pp = w->next;
                        w->kf->watches_open--;
                        break;
                }
        }
        ksel_free(w->sel);
        free(w->buf);
        free(w);
}

void store_watches_tick(struct kf *kf)
{
        int64_t now = kf_now_ms();

        for (struct kwatch *w = kf->watches; w; w = w->next) {
                if (!w->closing && w->end_ms && now >= w->end_ms)
                        w->closing = true;
                if (!w->closing && w->bookmarks && now - w->last_send_ms >= 5000) {
                        char rv[32];
                        snprintf(rv, sizeof(rv), "%llu", (unsigned long long)kf->rv);
                        json_t *bm = json_pack("{s:s,s:s,s:{s:s}}", "kind", kres_kind(w->res),
                                               "apiVersion", kres_api_version(w->res),
                                               "metadata", "resourceVersion", rv);
                        if (bm)
                                watch_queue(w, "BOOKMARK", bm);
                        json_decref(bm);
                }
                if (w->suspended && !w->closing && httpd_peer_gone(w->conn))
                        w->closing = w->abort = true;
                if (w->suspended && (w->closing || w->len > w->off)) {
                        w->suspended = false;
                        httpd_wake(w->conn);
                }
        }
}

void store_watches_drop(struct kf *kf, bool abort)
{
        for (struct kwatch *w = kf->watches; w; w = w->next) {
                w->closing = true;
                w->abort = abort;
        }
        store_watches_tick(kf);
}

void store_free(struct kf *kf)
{
        for (size_t i = 0; i < kf->hist_len; i++)
                json_decref(kf->history[(kf->hist_start + i) % KF_HISTORY].obj);
        kf->hist_len = 0;
        for (int r = 0; r < KR_N; r++) {
                json_decref(kf->objs[r]);
                kf->objs[r] = NULL;
        }
}

/* ---- label selectors ---------------------------------------------------- */

enum sel_op { SEL_EQ, SEL_NE, SEL_EXISTS, SEL_NOT_EXISTS, SEL_IN, SEL_NOTIN };

#define SEL_MAX_REQS 16
#define SEL_MAX_VALUES 16

struct ksel {
        size_t n;
        struct selreq {
                enum sel_op op;
                char key[320];
                size_t nvals;
                char vals[SEL_MAX_VALUES][64];
        } req[SEL_MAX_REQS];
};

static const char *skip_ws(const char *p)
{
        while (*p == ' ')
                p++;
        return p;
}

static bool key_char(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '_' || c == '.' || c == '/';
}

static const char *read_word(const char *p, char *out, size_t n)
{
        size_t i = 0;

        while (key_char(*p)) {
                if (i + 1 >= n)
                        return NULL;
                out[i++] = *p++;
        }
        out[i] = '\0';
        return p;
}

int ksel_parse(const char *s, struct ksel **ret, char *why, size_t whylen)
{
        struct ksel *sel = calloc(1, sizeof(*sel));
        const char *p = s ? s : "";

        if (!sel)
                return -ENOMEM;
        p = skip_ws(p);
        while (*p) {
                struct selreq *rq;
                if (sel->n == SEL_MAX_REQS) {
                        snprintf(why, whylen, "more than %d requirements", SEL_MAX_REQS);
                        goto bad;
                }
                rq = &sel->req[sel->n++];
                if (*p == '!') {
                        rq->op = SEL_NOT_EXISTS;
                        p = skip_ws(p + 1);
                }
                p = read_word(p, rq->key, sizeof(rq->key));
                if (!p || !rq->key[0]) {
                        snprintf(why, whylen, "expected a label key");
                        goto bad;
                }
                p = skip_ws(p);
                if (rq->op == SEL_NOT_EXISTS) {
                        /* nothing follows */
                } else if (p[0] == '!' && p[1] == '=') {
                        rq->op = SEL_NE;
                        p += 2;
                } else if (p[0] == '=' && p[1] == '=') {
                        rq->op = SEL_EQ;
                        p += 2;
                } else if (p[0] == '=') {
                        rq->op = SEL_EQ;
                        p += 1;
                } else if (strncmp(p, "in ", 3) == 0 || strncmp(p, "in(", 3) == 0) {
                        rq->op = SEL_IN;
                        p += 2;
                } else if (strncmp(p, "notin ", 6) == 0 || strncmp(p, "notin(", 6) == 0) {
                        rq->op = SEL_NOTIN;
                        p += 5;
                } else {
                        rq->op = SEL_EXISTS;
                }
                p = skip_ws(p);
                if (rq->op == SEL_EQ || rq->op == SEL_NE) {
                        rq->nvals = 1;
                        p = read_word(p, rq->vals[0], sizeof(rq->vals[0]));
                        if (!p) {
                                snprintf(why, whylen, "label value too long");
                                goto bad;
                        }
                } else if (rq->op == SEL_IN || rq->op == SEL_NOTIN) {
                        if (*p != '(') {
                                snprintf(why, whylen, "expected '(' after in/notin");
                                goto bad;
                        }
                        p = skip_ws(p + 1);
                        for (;;) {
                                if (rq->nvals == SEL_MAX_VALUES) {
                                        snprintf(why, whylen, "too many values");
                                        goto bad;
                                }
                                p = read_word(p, rq->vals[rq->nvals++], sizeof(rq->vals[0]));
                                if (!p) {
                                        snprintf(why, whylen, "label value too long");
                                        goto bad;
                                }
                                p = skip_ws(p);
                                if (*p == ',') {
                                        p = skip_ws(p + 1);
                                        continue;
                                }
                                if (*p == ')') {
                                        p++;
                                        break;
                                }
                                snprintf(why, whylen, "expected ',' or ')' in a value set");
                                goto bad;
                        }
                }
                p = skip_ws(p);
                if (*p == ',') {
                        p = skip_ws(p + 1);
                        if (!*p) {
                                snprintf(why, whylen, "trailing ','");
                                goto bad;
                        }
                } else if (*p) {
                        snprintf(why, whylen, "unexpected character '%c'", *p);
                        goto bad;
                }
        }
        *ret = sel;
        return 0;
bad:
        free(sel);
        return -EINVAL;
}

bool ksel_match(const struct ksel *sel, json_t *obj)
{
        json_t *labels = json_object_get(json_object_get(obj, "metadata"), "labels");

        if (!sel)
                return true;
        for (size_t i = 0; i < sel->n; i++) {
                const struct selreq *rq = &sel->req[i];
                const char *v = json_string_value(json_object_get(labels, rq->key));
                bool in = false;
                for (size_t j = 0; v && j < rq->nvals; j++)
                        in = in || strcmp(v, rq->vals[j]) == 0;
                switch (rq->op) {
                case SEL_EQ:
                case SEL_IN:
                        if (!in)
                                return false;
                        break;
                case SEL_NE:
                case SEL_NOTIN:
                        if (in)
                                return false;
                        break;
                case SEL_EXISTS:
                        if (!v)
                                return false;
                        break;
                case SEL_NOT_EXISTS:
                        if (v)
                                return false;
                        break;
                }
        }
        return true;
}

void ksel_free(struct ksel *sel)
{
        free(sel);
}

/* ---- field selectors ---------------------------------------------------- */

int kfsel_parse(const char *s, struct kfsel *ret, char *why, size_t whylen)
{
        struct kfsel fs = { 0 };
        char buf[600];
        char *save = NULL;

        if (!s || !*s) {
                *ret = fs;
                return 0;
        }
        snprintf(buf, sizeof(buf), "%s", s);
        for (char *part = strtok_r(buf, ",", &save); part; part = strtok_r(NULL, ",", &save)) {
                bool ne = false;
                char *op = strstr(part, "!=");
                char *val;
                if (op) {
                        ne = true;
                        *op = '\0';
                        val = op + 2;
                } else if ((op = strstr(part, "=="))) {
                        *op = '\0';
                        val = op + 2;
                } else if ((op = strchr(part, '='))) {
                        *op = '\0';
                        val = op + 1;
                } else {
                        snprintf(why, whylen, "invalid field selector: '%s'", part);
                        return -EINVAL;
                }
                if (strcmp(part, "metadata.name") == 0) {
                        snprintf(fs.name, sizeof(fs.name), "%s", val);
                        fs.not_name = ne;
                } else if (strcmp(part, "metadata.namespace") == 0) {
                        snprintf(fs.ns, sizeof(fs.ns), "%s", val);
                        fs.not_ns = ne;
                } else if (strcmp(part, "status.phase") == 0) {
                        snprintf(fs.phase, sizeof(fs.phase), "%s", val);
                        fs.not_phase = ne;
                } else {
                        snprintf(why, whylen, "field label not supported: %s", part);
                        return -EINVAL;
                }
        }
        *ret = fs;
        return 0;
}

bool kfsel_match(const struct kfsel *fs, json_t *obj)
{
        if (fs->name[0]) {
                bool eq = strcmp(fs->name, obj_str(obj, "metadata.name") ?: "") == 0;
                if (eq == fs->not_name)
                        return false;
        }
        if (fs->ns[0] &&
            (strcmp(fs->ns, obj_str(obj, "metadata.namespace") ?: "") == 0) == fs->not_ns)
                return false;
        if (fs->phase[0] &&
            (strcmp(fs->phase, obj_str(obj, "status.phase") ?: "") == 0) == fs->not_phase)
                return false;
        return true;
}
