/* joblog.c: see joblog.h. Rows are sanitised once, when they are created,
 * so every later encoder sees valid UTF-8 without NUL bytes. */
#include "joblog.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void joblog_init(struct joblog *jl)
{
        memset(jl, 0, sizeof(*jl));
}

void joblog_done(struct joblog *jl)
{
        if (!jl)
                return;
        for (size_t i = 0; i < jl->n; i++)
                rp_log_row_done(&jl->rows[i]);
        free(jl->rows);
        free(jl->partial);
        for (size_t i = 0; i < jl->n_masks; i++)
                free(jl->masks[i]);
        free(jl->masks);
        memset(jl, 0, sizeof(*jl));
}

int64_t joblog_total(const struct joblog *jl)
{
        return jl->base + (int64_t)jl->n;
}

int joblog_add_mask(struct joblog *jl, const char *value)
{
        char **m;

        if (!value || strlen(value) < 4)
                return 0;
        for (size_t i = 0; i < jl->n_masks; i++)
                if (strcmp(jl->masks[i], value) == 0)
                        return 0;
        m = realloc(jl->masks, (jl->n_masks + 1) * sizeof(*m));
        if (!m)
                return -ENOMEM;
        jl->masks = m;
        m[jl->n_masks] = strdup(value);
        if (!m[jl->n_masks])
                return -ENOMEM;
        jl->n_masks++;
        return 0;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
        unsigned char c = s[0];
        size_t len;
        unsigned cp;

        if (c >= 0x01 && c < 0x80)
                return 1;
        if (c >= 0xc2 && c <= 0xdf) {
                len = 2;
                cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
                len = 3;
                cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
                len = 4;
                cp = c & 0x07;
        } else {
                return 0; /* NUL, continuation byte, 0xc0/0xc1, > 0xf4 */
        }
        if (len > n)
                return 0;
        for (size_t i = 1; i < len; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                cp = (cp << 6) | (s[i] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        return len;
}

/* Replaces every mask occurrence in s (malloc'd) by "***". Takes s. */
static char *apply_masks(struct joblog *jl, char *s)
{
        for (size_t m = 0; m < jl->n_masks; m++) {
                const char *mask = jl->masks[m];
                size_t ml = strlen(mask);
                char *hit = strstr(s, mask);

                while (hit) {
                        size_t off = (size_t)(hit - s);
                        size_t sl = strlen(s);
                        /* "***" is never longer than a mask (>= 4 bytes). */
                        memcpy(s + off, "***", 3);
                        memmove(s + off + 3, s + off + ml, sl - off - ml + 1);
                        hit = strstr(s + off + 3, mask);
                }
        }
        return s;
}

static int push_row(struct joblog *jl, char *content)
{
        if (jl->n >= JOBLOG_PENDING_MAX) {
                jl->dropped++;
                free(content);
                return 0;
        }
        if (jl->n == jl->cap) {
                size_t ncap = jl->cap ? jl->cap * 2 : 64;
                struct rp_log_row *r = realloc(jl->rows, ncap * sizeof(*r));
                if (!r) {
                        free(content);
                        return -ENOMEM;
                }
                jl->rows = r;
                jl->cap = ncap;
        }
        jl->rows[jl->n].time = rp_ts_now();
        jl->rows[jl->n].content = content;
        jl->n++;
        return 0;
}

int joblog_add(struct joblog *jl, const char *text, size_t len)
{
        const unsigned char *s = (const unsigned char *)text;
        char *out;
        size_t o = 0;

        while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r'))
                len--;
        out = malloc(len + 1);
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < len;) {
                size_t l = utf8_seq(s + i, len - i);
                if (l == 0) {
                        out[o++] = '?';
                        i++;
                } else {
                        memcpy(out + o, s + i, l);
                        o += l;
                        i += l;
                }
        }
        out[o] = '\0';
        return push_row(jl, apply_masks(jl, out));
}

int joblog_feed(struct joblog *jl, const char *buf, size_t len)
{
        int r;

        while (len > 0) {
                const char *nl = memchr(buf, '\n', len);
                size_t take = nl ? (size_t)(nl - buf) + 1 : len;

                if (jl->partial_len + take > JOBLOG_LINE_MAX) {
                        /* An endless line: emit what we have as a row. */
                        take = JOBLOG_LINE_MAX - jl->partial_len;
                        nl = NULL;
                }
                if (!jl->partial) {
                        jl->partial = malloc(JOBLOG_LINE_MAX);
                        if (!jl->partial)
                                return -ENOMEM;
                }
                memcpy(jl->partial + jl->partial_len, buf, take);
                jl->partial_len += take;
                buf += take;
                len -= take;
                if (nl || jl->partial_len == JOBLOG_LINE_MAX) {
                        r = joblog_add(jl, jl->partial, jl->partial_len);
                        jl->partial_len = 0;
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

int joblog_flush(struct joblog *jl)
{
        int r = 0;

        if (jl->partial_len > 0)
                r = joblog_add(jl, jl->partial, jl->partial_len);
        jl->partial_len = 0;
        return r;
}

size_t joblog_ack(struct joblog *jl, int64_t ack)
{
        size_t k;

        if (ack <= jl->base)
                return 0;
        k = (size_t)(ack - jl->base);
        if (k > jl->n)
                k = jl->n;
        for (size_t i = 0; i < k; i++)
                rp_log_row_done(&jl->rows[i]);
        memmove(jl->rows, jl->rows + k, (jl->n - k) * sizeof(*jl->rows));
        jl->n -= k;
        jl->base += (int64_t)k;
        if (k > 0 && jl->dropped > 0) {
                char msg[96];
                int l = snprintf(msg, sizeof(msg),
                                 "\xe2\x9a\x99\xef\xb8\x8f [runner]: %llu log lines dropped",
                                 (unsigned long long)jl->dropped);
                jl->dropped = 0;
                (void)joblog_add(jl, msg, (size_t)l);
        }
        return k;
}
