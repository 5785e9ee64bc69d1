/* metrics.c: see metrics.h. Owns the metric families, their series hash
 * tables and the text exposition renderer (escaping, UTF-8 repair, number
 * formatting). Never does I/O and never logs; the only unbounded input is
 * the set of label values, and that is capped per metric. */
#include "http/metrics.h"
#include "util/hash.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct series {
        struct series *next;    /* hash chain */
        uint64_t hash;
        char *key;              /* label values, each followed by a NUL */
        size_t keylen;
        double value;           /* counter and gauge */
        double sum;             /* histogram */
        uint64_t count;
        uint64_t buckets[];     /* histogram: nbuckets + 1 (+Inf), not cumulative */
};

struct metric {
        struct metrics *reg;
        char *name;
        char *help;
        enum metric_type type;
        size_t nlabels;
        char **labels;
        size_t nbuckets;
        double *bounds;
        struct series **table;
        size_t tcap;            /* power of two, or 0 before the first series */
        size_t nseries;
};

struct metrics {
        struct metric **fams;
        size_t nfams;
        size_t cap;
        size_t max_series;
        struct metric *dropped;
};

static const char *const dropped_labels[] = { "metric" };

/* ---- names and validation ---- */

static bool valid_name(const char *s, bool colon)
{
        if (!s || !*s)
                return false;
        for (const char *p = s; *p; p++) {
                char c = *p;
                bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                             (colon && c == ':');
                bool digit = c >= '0' && c <= '9';
                if (!alpha && !(digit && p != s))
                        return false;
        }
        return true;
}

static bool valid_labels(enum metric_type type, size_t n, const char *const *labels)
{
        if (n > METRICS_MAX_LABELS || (n && !labels))
                return false;
        for (size_t i = 0; i < n; i++) {
                if (!valid_name(labels[i], false) || strncmp(labels[i], "__", 2) == 0)
                        return false;
                if (type == METRIC_HISTOGRAM && strcmp(labels[i], "le") == 0)
                        return false;
                for (size_t j = 0; j < i; j++)
                        if (strcmp(labels[i], labels[j]) == 0)
                                return false;
        }
        return true;
}

static bool valid_bounds(size_t n, const double *b)
{
        if (n == 0 || n > METRICS_MAX_BUCKETS || !b)
                return false;
        for (size_t i = 0; i < n; i++) {
                if (!isfinite(b[i]))
                        return false;
                if (i && !(b[i] > b[i - 1]))
                        return false;
        }
        return true;
}

/* ---- series table ---- */

static const char *val(const char *const *values, size_t i)
{
        return values && values[i] ? values[i] : "";
}

static uint64_t hash_values(size_t n, const char *const *values, size_t *ret_keylen)
{
        uint64_t h = hash_start(0);
        size_t len = 0;

        for (size_t i = 0; i < n; i++) {
                const unsigned char *p = (const unsigned char *)val(values, i);
                for (; *p; p++, len++)
                        h = hash_byte(h, *p);
                h = hash_byte(h, 0xff); /* separator, so ("ab","") and ("a","b") differ */
                len++;
        }
        *ret_keylen = len;
        return h;
}

static bool key_equal(const struct series *s, size_t n, const char *const *values, size_t keylen)
{
        const char *k = s->key;

        if (s->keylen != keylen)
                return false;
        for (size_t i = 0; i < n; i++) {
                const char *v = val(values, i);
                size_t l = strlen(v);
                if (memcmp(k, v, l + 1) != 0)
                        return false;
                k += l + 1;
        }
        return true;
}

static struct series *find(const struct metric *m, const char *const *values, uint64_t h,
                           size_t keylen)
{
        if (!m->tcap)
                return NULL;
        for (struct series *s = m->table[h & (m->tcap - 1)]; s; s = s->next)
                if (s->hash == h && key_equal(s, m->nlabels, values, keylen))
                        return s;
        return NULL;
}

static int grow(struct metric *m)
{
        size_t ncap = m->tcap ? m->tcap * 2 : 8;
        struct series **nt = calloc(ncap, sizeof(*nt));

        if (!nt)
                return -ENOMEM;
        for (size_t i = 0; i < m->tcap; i++) {
                struct series *s = m->table[i];
                while (s) {
                        struct series *next = s->next;
                        size_t b = s->hash & (ncap - 1);
                        s->next = nt[b];
                        nt[b] = s;
                        s = next;
                }
        }
        free(m->table);
        m->table = nt;
        m->tcap = ncap;
        return 0;
}

static void count_dropped(struct metric *m);

/* Finds or creates the series for values; sets *ret or returns -errno. */
static int get_series(struct metric *m, const char *const *values, struct series **ret)
{
        size_t keylen, nb;
        uint64_t h = hash_values(m->nlabels, values, &keylen);
        struct series *s = find(m, values, h, keylen);
        char *k;

        if (s) {
                *ret = s;
                return 0;
        }
        if (m->nseries >= m->reg->max_series) {
                count_dropped(m);
                return -ENOSPC;
        }
        if (m->nseries >= m->tcap && grow(m) < 0)
                return -ENOMEM;
        nb = m->type == METRIC_HISTOGRAM ? m->nbuckets + 1 : 0;
        s = calloc(1, sizeof(*s) + nb * sizeof(s->buckets[0]));
        if (!s)
                return -ENOMEM;
        s->key = malloc(keylen ? keylen : 1);
        if (!s->key) {
                free(s);
                return -ENOMEM;
        }
        k = s->key;
        for (size_t i = 0; i < m->nlabels; i++) {
                const char *v = val(values, i);
                size_t l = strlen(v);
                memcpy(k, v, l + 1);
                k += l + 1;
        }
        s->keylen = keylen;
        s->hash = h;
        s->next = m->table[h & (m->tcap - 1)];
        m->table[h & (m->tcap - 1)] = s;
        m->nseries++;
        *ret = s;
        return 0;
}

static void count_dropped(struct metric *m)
{
        struct metric *d = m->reg->dropped;
        const char *v[] = { m->name };
        struct series *s;

        /* The drop counter has one series per metric, so it only hits its
         * own bound when the registry holds that many metrics: then the
         * drop goes uncounted rather than recursing. */
        if (!d || d == m)
                return;
        if (get_series(d, v, &s) == 0)
                s->value += 1;
}

static void clear_series(struct metric *m)
{
        for (size_t i = 0; i < m->tcap; i++) {
                struct series *s = m->table[i];
                while (s) {
                        struct series *next = s->next;
                        free(s->key);
                        free(s);
                        s = next;
                }
        }
        free(m->table);
        m->table = NULL;
        m->tcap = 0;
        m->nseries = 0;
}

/* ---- registry ---- */

static void metric_free(struct metric *m)
{
        if (!m)
                return;
        clear_series(m);
        for (size_t i = 0; i < m->nlabels; i++)
                free(m->labels[i]);
        free(m->labels);
        free(m->bounds);
        free(m->name);
        free(m->help);
        free(m);
}

static bool same_shape(const struct metric *m, enum metric_type type, size_t nlabels,
                       const char *const *labels, size_t nbuckets, const double *bounds)
{
        if (m->type != type || m->nlabels != nlabels || m->nbuckets != nbuckets)
                return false;
        for (size_t i = 0; i < nlabels; i++)
                if (strcmp(m->labels[i], labels[i]) != 0)
                        return false;
        for (size_t i = 0; i < nbuckets; i++)
                if (m->bounds[i] != bounds[i])
                        return false;
        return true;
}

static struct metric *reg_metric(struct metrics *reg, enum metric_type type, const char *name,
                                 const char *help, size_t nlabels, const char *const *labels,
                                 size_t nbuckets, const double *bounds)
{
        struct metric *m;
        struct series *s;
        size_t pos;

        if (!reg || !valid_name(name, true) || !valid_labels(type, nlabels, labels))
                return NULL;
        if (type == METRIC_HISTOGRAM && !valid_bounds(nbuckets, bounds))
                return NULL;

        /* Families are kept sorted by name: binary search for the slot. */
        size_t lo = 0, hi = reg->nfams;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = strcmp(reg->fams[mid]->name, name);
                if (c == 0) {
                        m = reg->fams[mid];
                        return same_shape(m, type, nlabels, labels, nbuckets, bounds) ? m : NULL;
                }
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        pos = lo;

        if (reg->nfams == reg->cap) {
                size_t ncap = reg->cap ? reg->cap * 2 : 16;
                struct metric **nf = realloc(reg->fams, ncap * sizeof(*nf));
                if (!nf)
                        return NULL;
                reg->fams = nf;
                reg->cap = ncap;
        }

        m = calloc(1, sizeof(*m));
        if (!m)
                return NULL;
        m->reg = reg;
        m->type = type;
        m->name = strdup(name);
        m->help = strdup(help ? help : "");
        if (!m->name || !m->help)
                goto err;
        if (nlabels) {
                m->labels = calloc(nlabels, sizeof(*m->labels));
                if (!m->labels)
                        goto err;
                for (size_t i = 0; i < nlabels; i++) {
                        m->labels[i] = strdup(labels[i]);
                        if (!m->labels[i])
                                goto err;
                        m->nlabels = i + 1;
                }
        }
        if (type == METRIC_HISTOGRAM) {
                m->bounds = malloc(nbuckets * sizeof(*m->bounds));
                if (!m->bounds)
                        goto err;
                memcpy(m->bounds, bounds, nbuckets * sizeof(*m->bounds));
                m->nbuckets = nbuckets;
        }
        if (nlabels == 0 && get_series(m, NULL, &s) < 0)
                goto err;

        memmove(reg->fams + pos + 1, reg->fams + pos, (reg->nfams - pos) * sizeof(*reg->fams));
        reg->fams[pos] = m;
        reg->nfams++;
        return m;
err:
        metric_free(m);
        return NULL;
}

struct metrics *metrics_new(void)
{
        struct metrics *reg = calloc(1, sizeof(*reg));

        if (!reg)
                return NULL;
        reg->max_series = METRICS_DEFAULT_MAX_SERIES;
        reg->dropped = reg_metric(reg, METRIC_COUNTER, METRICS_DROPPED_NAME,
                                  "Label sets dropped because a metric reached its series limit.",
                                  1, dropped_labels, 0, NULL);
        if (!reg->dropped) {
                metrics_free(reg);
                return NULL;
        }
        return reg;
}

void metrics_free(struct metrics *reg)
{
        if (!reg)
                return;
        for (size_t i = 0; i < reg->nfams; i++)
                metric_free(reg->fams[i]);
        free(reg->fams);
        free(reg);
}

void metrics_set_max_series(struct metrics *reg, size_t max)
{
        reg->max_series = max;
}

struct metric *metrics_counter(struct metrics *reg, const char *name, const char *help,
                               size_t nlabels, const char *const *labels)
{
        return reg_metric(reg, METRIC_COUNTER, name, help, nlabels, labels, 0, NULL);
}

struct metric *metrics_gauge(struct metrics *reg, const char *name, const char *help,
                             size_t nlabels, const char *const *labels)
{
        return reg_metric(reg, METRIC_GAUGE, name, help, nlabels, labels, 0, NULL);
}

struct metric *metrics_histogram(struct metrics *reg, const char *name, const char *help,
                                 size_t nlabels, const char *const *labels,
                                 size_t nbuckets, const double *bounds)
{
        return reg_metric(reg, METRIC_HISTOGRAM, name, help, nlabels, labels, nbuckets, bounds);
}

/* ---- updates ---- */

int metrics_inc(struct metric *m, const char *const *values, double v)
{
        struct series *s;
        int r;

        if (!m || m->type == METRIC_HISTOGRAM || isnan(v) || (m->type == METRIC_COUNTER && v < 0))
                return -EINVAL;
        r = get_series(m, values, &s);
        if (r < 0)
                return r;
        s->value += v;
        return 0;
}

int metrics_set(struct metric *m, const char *const *values, double v)
{
        struct series *s;
        int r;

        if (!m || m->type != METRIC_GAUGE)
                return -EINVAL;
        r = get_series(m, values, &s);
        if (r < 0)
                return r;
        s->value = v;
        return 0;
}

int metrics_observe(struct metric *m, const char *const *values, double v)
{
        struct series *s;
        size_t i;
        int r;

        if (!m || m->type != METRIC_HISTOGRAM || isnan(v))
                return -EINVAL;
        r = get_series(m, values, &s);
        if (r < 0)
                return r;
        /* le is inclusive: v lands in the first bucket whose bound >= v. */
        for (i = 0; i < m->nbuckets && v > m->bounds[i]; i++)
                ;
        s->buckets[i]++;
        s->count++;
        s->sum += v;
        return 0;
}

void metrics_reset(struct metric *m)
{
        struct series *s;

        if (!m)
                return;
        clear_series(m);
        if (m->nlabels == 0)
                (void)get_series(m, NULL, &s); /* on OOM it reappears on the next update */
}

int metrics_get(struct metric *m, const char *const *values, double *ret)
{
        size_t keylen;
        uint64_t h;
        struct series *s;

        if (!m)
                return -EINVAL;
        h = hash_values(m->nlabels, values, &keylen);
        s = find(m, values, h, keylen);
        if (!s)
                return -ENOENT;
        *ret = m->type == METRIC_HISTOGRAM ? (double)s->count : s->value;
        return 0;
}

size_t metrics_series_count(const struct metric *m)
{
        return m ? m->nseries : 0;
}

/* ---- rendering ---- */

/* Length of the valid UTF-8 sequence at p (n bytes available), or 0. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
        uint32_t cp;
        size_t len;

        if (p[0] < 0x80)
                return 1;
        if (p[0] >= 0xc2 && p[0] <= 0xdf) {
                len = 2;
                cp = p[0] & 0x1f;
        } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
                len = 3;
                cp = p[0] & 0x0f;
        } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
                len = 4;
                cp = p[0] & 0x07;
        } else {
                return 0;
        }
        if (n < len)
                return 0;
        for (size_t i = 1; i < len; i++) {
                if ((p[i] & 0xc0) != 0x80)
                        return 0;
                cp = (cp << 6) | (p[i] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        return len;
}

/* Appends s escaped for a label value (quote true) or HELP text: backslash
 * and newline always, the double quote only inside label values. Invalid
 * UTF-8 bytes become U+FFFD so the output always parses. */
static int put_escaped(struct buffer *out, const char *s, bool quote)
{
        const unsigned char *p = (const unsigned char *)s;
        size_t n = strlen(s);
        int r = 0;

        while (n && r == 0) {
                size_t run = 0;
                /* Copy the longest run that needs no escaping in one go. */
                while (run < n && p[run] != '\\' && p[run] != '\n' && !(quote && p[run] == '"')) {
                        size_t l = utf8_len(p + run, n - run);
                        if (!l)
                                break;
                        run += l;
                }
                if (run) {
                        r = buffer_append(out, p, run);
                        p += run;
                        n -= run;
                        continue;
                }
                if (*p == '\\')
                        r = buffer_puts(out, "\\\\");
                else if (*p == '\n')
                        r = buffer_puts(out, "\\n");
                else if (*p == '"')
                        r = buffer_puts(out, "\\\"");
                else
                        r = buffer_puts(out, "\xef\xbf\xbd");
                p++;
                n--;
        }
        return r;
}

/* Shortest decimal form of v that reads back exactly, in the spelling
 * Prometheus expects for the special values. */
static void fmt_double(char *buf, size_t n, double v)
{
        if (isnan(v)) {
                snprintf(buf, n, "NaN");
                return;
        }
        if (isinf(v)) {
                snprintf(buf, n, v > 0 ? "+Inf" : "-Inf");
                return;
        }
        if (v == 0) {
                snprintf(buf, n, "0"); /* also for -0 */
                return;
        }
        /* Integers print in full ("10", not "1e+01") while exact. */
        if (fabs(v) < 9007199254740992.0 && v == (double)(int64_t)v) {
                snprintf(buf, n, "%" PRId64, (int64_t)v);
                return;
        }
        for (int prec = 1; prec <= 17; prec++) {
                snprintf(buf, n, "%.*g", prec, v);
                if (strtod(buf, NULL) == v)
                        return;
        }
}

static int put_labels(struct buffer *out, const struct metric *m, const struct series *s,
                      const char *le)
{
        const char *k = s->key;
        int r = 0;

        if (m->nlabels == 0 && !le)
                return 0;
        r = buffer_putc(out, '{');
        for (size_t i = 0; i < m->nlabels && r == 0; i++) {
                r = buffer_printf(out, "%s%s=\"", i ? "," : "", m->labels[i]);
                if (r == 0)
                        r = put_escaped(out, k, true);
                if (r == 0)
                        r = buffer_putc(out, '"');
                k += strlen(k) + 1;
        }
        if (r == 0 && le)
                r = buffer_printf(out, "%sle=\"%s\"", m->nlabels ? "," : "", le);
        if (r == 0)
                r = buffer_putc(out, '}');
        return r;
}

static int put_sample(struct buffer *out, const struct metric *m, const char *suffix,
                      const struct series *s, const char *le, double v)
{
        char num[40];
        int r;

        fmt_double(num, sizeof(num), v);
        r = buffer_printf(out, "%s%s", m->name, suffix);
        if (r == 0)
                r = put_labels(out, m, s, le);
        if (r == 0)
                r = buffer_printf(out, " %s\n", num);
        return r;
}

static int put_series(struct buffer *out, const struct metric *m, const struct series *s)
{
        char le[40];
        uint64_t cum = 0;
        int r = 0;

        if (m->type != METRIC_HISTOGRAM)
                return put_sample(out, m, "", s, NULL, s->value);
        for (size_t i = 0; i <= m->nbuckets && r == 0; i++) {
                cum += s->buckets[i];
                if (i < m->nbuckets)
                        fmt_double(le, sizeof(le), m->bounds[i]);
                else
                        snprintf(le, sizeof(le), "+Inf");
                r = put_sample(out, m, "_bucket", s, le, (double)cum);
        }
        if (r == 0)
                r = put_sample(out, m, "_sum", s, NULL, s->sum);
        if (r == 0)
                r = put_sample(out, m, "_count", s, NULL, (double)s->count);
        return r;
}

static int cmp_series(const void *a, const void *b)
{
        const struct series *x = *(const struct series *const *)a;
        const struct series *y = *(const struct series *const *)b;
        size_t n = x->keylen < y->keylen ? x->keylen : y->keylen;
        int c = memcmp(x->key, y->key, n);

        if (c)
                return c;
        return x->keylen < y->keylen ? -1 : x->keylen > y->keylen;
}

static int render_family(struct buffer *out, const struct metric *m)
{
        static const char *const type_names[] = {
                [METRIC_COUNTER] = "counter",
                [METRIC_GAUGE] = "gauge",
                [METRIC_HISTOGRAM] = "histogram",
        };
        struct series **v = NULL;
        size_t n = 0;
        int r;

        r = buffer_printf(out, "# HELP %s ", m->name);
        if (r == 0)
                r = put_escaped(out, m->help, false);
        if (r == 0)
                r = buffer_printf(out, "\n# TYPE %s %s\n", m->name, type_names[m->type]);
        if (r < 0 || m->nseries == 0)
                return r;

        v = malloc(m->nseries * sizeof(*v));
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < m->tcap; i++)
                for (struct series *s = m->table[i]; s; s = s->next)
                        v[n++] = s;
        qsort(v, n, sizeof(*v), cmp_series);
        for (size_t i = 0; i < n && r == 0; i++)
                r = put_series(out, m, v[i]);
        free(v);
        return r;
}

int metrics_render(struct metrics *reg, struct buffer *out)
{
        int r = 0;

        for (size_t i = 0; i < reg->nfams && r == 0; i++)
                r = render_family(out, reg->fams[i]);
        return r;
}
