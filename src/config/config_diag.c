/* config_diag.c: collecting errors and warnings with their positions,
 * sorting them and handing them out as a config_diag (the public message
 * list), and escaping user text quoted in messages. Never prints or logs;
 * past CONFIG_MAX_ERRORS messages are counted, not kept. */
#include "config/config.h"
#include "config/config_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void config__errlist_done(struct errlist *l)
{
        for (size_t i = 0; i < l->n; i++)
                free(l->v[i].msg);
        free(l->v);
        memset(l, 0, sizeof(*l));
}

static void errlist_addv(struct errlist *l, bool warning, int line, int col,
                         const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));
static void errlist_addv(struct errlist *l, bool warning, int line, int col,
                         const char *fmt, va_list ap)
{
        char *msg;

        if (l->n >= CONFIG_MAX_ERRORS) {
                l->dropped++;
                if (!warning)
                        l->dropped_errors++;
                return;
        }
        if (vasprintf(&msg, fmt, ap) < 0) {
                l->oom = true;
                return;
        }
        if (l->n == l->cap) {
                size_t ncap = l->cap ? l->cap * 2 : 16;
                struct err *nv = realloc(l->v, ncap * sizeof(*nv));
                if (!nv) {
                        free(msg);
                        l->oom = true;
                        return;
                }
                l->v = nv;
                l->cap = ncap;
        }
        l->v[l->n] = (struct err){ .line = line, .col = col, .seq = l->n,
                                   .warning = warning, .msg = msg };
        l->n++;
        if (!warning)
                l->n_errors++;
}

/* True when the list holds an error (kept or dropped), not only warnings. */
bool config__errlist_failed(const struct errlist *l)
{
        return l->n_errors > 0 || l->dropped_errors > 0;
}

void config__errlist_add(struct errlist *l, int line, int col, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        errlist_addv(l, false, line, col, fmt, ap);
        va_end(ap);
}

void config__errlist_warn(struct errlist *l, int line, int col, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        errlist_addv(l, true, line, col, fmt, ap);
        va_end(ap);
}

static int err_cmp(const void *a, const void *b)
{
        const struct err *x = a, *y = b;

        if (x->line != y->line)
                return x->line < y->line ? -1 : 1;
        if (x->col != y->col)
                return x->col < y->col ? -1 : 1;
        return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int diag_push(struct config_diag *d, char *msg, bool warning)
{
        struct config_msg *nv = realloc(d->msgs, (d->n + 1) * sizeof(*nv));

        if (!nv) {
                free(msg);
                return -ENOMEM;
        }
        d->msgs = nv;
        d->msgs[d->n++] = (struct config_msg){ .text = msg, .warning = warning };
        return 0;
}

static int diag_vaddf(struct config_diag *d, bool warning, const char *fmt, va_list ap)
        __attribute__((format(printf, 3, 0)));
static int diag_vaddf(struct config_diag *d, bool warning, const char *fmt, va_list ap)
{
        char *msg;

        if (!d)
                return 0;
        if (vasprintf(&msg, fmt, ap) < 0)
                return -ENOMEM;
        return diag_push(d, msg, warning);
}

int config__diag_addf(struct config_diag *d, bool warning, const char *fmt, ...)
{
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = diag_vaddf(d, warning, fmt, ap);
        va_end(ap);
        return r;
}

/* Moves the sorted messages of l into d, formatted with the file name. */
int config__errlist_flush(struct errlist *l, const char *file, struct config_diag *d)
{
        int r = 0;

        if (l->n)
                qsort(l->v, l->n, sizeof(l->v[0]), err_cmp);
        for (size_t i = 0; d && i < l->n && r >= 0; i++) {
                const struct err *e = &l->v[i];
                const char *sev = e->warning ? "warning: " : "";

                if (e->line > 0)
                        r = config__diag_addf(d, e->warning, "%s:%d:%d: %s%s", file, e->line,
                                              e->col, sev, e->msg);
                else
                        r = config__diag_addf(d, e->warning, "%s: %s%s", file, sev, e->msg);
        }
        if (d && r >= 0 && l->dropped)
                r = config__diag_addf(d, l->dropped_errors == 0, "%s: %zu more %s not shown", file,
                                      l->dropped, l->dropped_errors ? "errors" : "warnings");
        if (l->oom)
                r = -ENOMEM;
        return r;
}

int config__errlist_finish(struct errlist *l, const char *file, struct config_diag *d, int r)
{
        int fr;

        if (r == 0 && config__errlist_failed(l))
                r = -EINVAL;
        fr = config__errlist_flush(l, file, d);
        if (r == 0 && fr < 0)
                r = fr;
        config__errlist_done(l);
        return r;
}

void config_diag_done(struct config_diag *d)
{
        if (!d)
                return;
        for (size_t i = 0; i < d->n; i++)
                free(d->msgs[i].text);
        free(d->msgs);
        d->msgs = NULL;
        d->n = 0;
}

size_t config_diag_errors(const struct config_diag *d)
{
        size_t n = 0;

        for (size_t i = 0; d && i < d->n; i++)
                if (!d->msgs[i].warning)
                        n++;
        return n;
}

/* Escapes user text for a message: quotes, backslashes and control bytes
 * are escaped, and long values are cut with "...". */
/* s for a message: control bytes as \xNN so nothing from the file can act
 * on a terminal, cut with "..." past n; with quotes: inside "…", with '"'
 * and '\\' escaped too. */
static const char *escape(char *buf, size_t n, const char *s, bool quotes)
{
        /* Room after the loop: one 2-byte escape past max, "...", '"', NUL. */
        size_t o = 0, max = n - 7;

        if (quotes)
                buf[o++] = '"';
        for (; s && *s && o < max; s++) {
                unsigned char c = (unsigned char)*s;
                if (quotes && (c == '"' || c == '\\')) {
                        buf[o++] = '\\';
                        buf[o++] = (char)c;
                } else if (c < 0x20 || c == 0x7f) {
                        if (o + 4 >= max)
                                break;
                        snprintf(buf + o, n - o, "\\x%02x", c);
                        o += 4;
                } else {
                        buf[o++] = (char)c;
                }
        }
        if (s && *s) {
                memcpy(buf + o, "...", 3);
                o += 3;
        }
        if (quotes)
                buf[o++] = '"';
        buf[o] = '\0';
        return buf;
}

const char *config__quote(char *buf, size_t n, const char *s)
{
        return escape(buf, n, s, true);
}

const char *config__bare(char *buf, size_t n, const char *s)
{
        return escape(buf, n, s, false);
}
