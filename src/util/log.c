/* log.c: formatting and emission of log lines; owns the redaction table.
 * Never allocates on the logging path (a log call must work when malloc
 * fails) and never writes a line longer than LOG_LINE_MAX. */
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <pthread.h>

#define LOG_LINE_MAX 4096
#define REDACT_MAX 64
#define REDACT_MARK "[REDACTED]"

static enum log_level cur_level = LOG_INFO;
static enum log_format cur_format = LOG_FMT_LOGFMT;
static int out_fd = 2;

static pthread_mutex_t redact_lock = PTHREAD_MUTEX_INITIALIZER;
static char *redact_tab[REDACT_MAX];
static size_t redact_n;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void log_init(enum log_level level, enum log_format format)
{
        cur_level = level;
        cur_format = format;
}

void log_set_fd(int fd)
{
        out_fd = fd;
}

bool log_enabled(enum log_level level)
{
        return level <= cur_level;
}

int log_level_parse(const char *s, enum log_level *ret)
{
        for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
                if (strcmp(s, level_names[i]) == 0) {
                        *ret = (enum log_level)i;
                        return 0;
                }
        if (strcmp(s, "warning") == 0) {
                *ret = LOG_WARN;
                return 0;
        }
        return -EINVAL;
}

int log_format_parse(const char *s, enum log_format *ret)
{
        if (strcmp(s, "logfmt") == 0)
                *ret = LOG_FMT_LOGFMT;
        else if (strcmp(s, "json") == 0)
                *ret = LOG_FMT_JSON;
        else
                return -EINVAL;
        return 0;
}

int log_redact_add(const char *secret)
{
        int r = 0;

        if (!secret || strlen(secret) < 4)
                return 0;
        pthread_mutex_lock(&redact_lock);
        for (size_t i = 0; i < redact_n; i++)
                if (strcmp(redact_tab[i], secret) == 0)
                        goto out;
        if (redact_n == REDACT_MAX) {
                r = -ENOSPC;
                goto out;
        }
        redact_tab[redact_n] = strdup(secret);
        if (!redact_tab[redact_n])
                r = -ENOMEM;
        else
                redact_n++;
out:
        pthread_mutex_unlock(&redact_lock);
        return r;
}

void log_redact_clear(void)
{
        pthread_mutex_lock(&redact_lock);
        for (size_t i = 0; i < redact_n; i++)
                free(redact_tab[i]);
        redact_n = 0;
        pthread_mutex_unlock(&redact_lock);
}

void log_redact(const char *s, char *out, size_t n)
{
        size_t o = 0;

        if (n == 0)
                return;
        if (!s)
                s = "";
        pthread_mutex_lock(&redact_lock);
        while (*s && o + 1 < n) {
                size_t hit = 0;
                for (size_t i = 0; i < redact_n; i++) {
                        size_t l = strlen(redact_tab[i]);
                        if (strncmp(s, redact_tab[i], l) == 0) {
                                hit = l;
                                break;
                        }
                }
                if (hit) {
                        for (const char *m = REDACT_MARK; *m && o + 1 < n; m++)
                                out[o++] = *m;
                        s += hit;
                } else {
                        out[o++] = *s++;
                }
        }
        pthread_mutex_unlock(&redact_lock);
        out[o] = '\0';
}

const char *log_strerror(int negerrno)
{
        /* strerror() of glibc returns static strings for known codes. */
        return strerror(negerrno < 0 ? -negerrno : negerrno);
}

struct line {
        char buf[LOG_LINE_MAX];
        size_t len;
        bool truncated;
};

static void put(struct line *l, const char *s, size_t n)
{
        /* Leave room for the trailing newline. */
        if (l->len + n > sizeof(l->buf) - 2) {
                n = sizeof(l->buf) - 2 - l->len;
                l->truncated = true;
        }
        memcpy(l->buf + l->len, s, n);
        l->len += n;
}

static void puts_(struct line *l, const char *s)
{
        put(l, s, strlen(s));
}

static bool logfmt_needs_quotes(const char *s)
{
        if (!*s)
                return true;
        for (; *s; s++)
                if (*s <= ' ' || *s == '=' || *s == '"' || *s == '\\' || *s == 0x7f)
                        return true;
        return false;
}

static void put_escaped(struct line *l, const char *s, bool json)
{
        char tmp[8];

        for (; *s; s++) {
                unsigned char c = (unsigned char)*s;
                switch (c) {
                case '"':  puts_(l, "\\\""); break;
                case '\\': puts_(l, "\\\\"); break;
                case '\n': puts_(l, "\\n"); break;
                case '\r': puts_(l, "\\r"); break;
                case '\t': puts_(l, "\\t"); break;
                default:
                        if (c < 0x20 || c == 0x7f) {
                                snprintf(tmp, sizeof(tmp), json ? "\\u%04x" : "\\x%02x", c);
                                puts_(l, tmp);
                        } else {
                                put(l, (const char *)&c, 1);
                        }
                }
        }
}

static void put_value(struct line *l, const char *raw)
{
        char red[1024];

        log_redact(raw, red, sizeof(red));
        if (cur_format == LOG_FMT_JSON) {
                puts_(l, "\"");
                put_escaped(l, red, true);
                puts_(l, "\"");
        } else if (logfmt_needs_quotes(red)) {
                puts_(l, "\"");
                put_escaped(l, red, false);
                puts_(l, "\"");
        } else {
                puts_(l, red);
        }
}

static void put_key(struct line *l, const char *key, bool first)
{
        if (cur_format == LOG_FMT_JSON) {
                puts_(l, first ? "{\"" : ",\"");
                put_escaped(l, key, true);
                puts_(l, "\":");
        } else {
                if (!first)
                        puts_(l, " ");
                puts_(l, key);
                puts_(l, "=");
        }
}

void log_emit(enum log_level level, const char *comp, const char *msg,
              const struct log_kv *kv, size_t nkv)
{
        struct line l = { .len = 0 };
        struct timespec ts;
        struct tm tm;
        char tbuf[64], num[64];
        int saved_errno = errno;

        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        snprintf(tbuf, sizeof(tbuf), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);

        put_key(&l, "ts", true);
        put_value(&l, tbuf);
        put_key(&l, "level", false);
        put_value(&l, level_names[level]);
        put_key(&l, "comp", false);
        put_value(&l, comp ? comp : "main");
        put_key(&l, "msg", false);
        put_value(&l, msg ? msg : "");
        for (size_t i = 0; i < nkv; i++) {
                if (!kv[i].key)
                        continue;
                put_key(&l, kv[i].key, false);
                switch (kv[i].type) {
                case LOG_KV_STR:
                        put_value(&l, kv[i].s ? kv[i].s : "");
                        break;
                case LOG_KV_INT:
                        snprintf(num, sizeof(num), "%lld", kv[i].i);
                        if (cur_format == LOG_FMT_JSON)
                                puts_(&l, num);
                        else
                                put_value(&l, num);
                        break;
                case LOG_KV_DBL:
                        snprintf(num, sizeof(num), "%.6g", kv[i].d);
                        if (cur_format == LOG_FMT_JSON)
                                puts_(&l, num);
                        else
                                put_value(&l, num);
                        break;
                case LOG_KV_BOOL:
                        if (cur_format == LOG_FMT_JSON)
                                puts_(&l, kv[i].i ? "true" : "false");
                        else
                                put_value(&l, kv[i].i ? "true" : "false");
                        break;
                case LOG_KV_NONE:
                        put_value(&l, "");
                        break;
                }
        }
        if (l.truncated && cur_format == LOG_FMT_JSON) {
                /* Keep the line parseable: end the object even when cut. */
                l.len = sizeof(l.buf) - 32;
                memcpy(l.buf + l.len, "\",\"truncated\":true}", 19);
                l.len += 19;
        } else if (cur_format == LOG_FMT_JSON) {
                puts_(&l, "}");
        }
        l.buf[l.len++] = '\n';

        /* One write per line so lines from several threads never interleave. */
        for (size_t off = 0; off < l.len;) {
                ssize_t w = write(out_fd, l.buf + off, l.len - off);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                off += (size_t)w;
        }
        errno = saved_errno;
}
