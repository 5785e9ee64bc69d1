/* strutil.c: see strutil.h. Owns nothing but the helpers; never logs. */
#include "util/strutil.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

char *strutil_dup_or_null(const char *s, int *err)
{
        char *d;

        if (!s)
                return NULL;
        d = strdup(s);
        if (!d)
                *err = -ENOMEM;
        return d;
}

const char *strutil_printable(const char *s, char *buf, size_t n)
{
        size_t o = 0;

        if (!s)
                s = "?";
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                unsigned char c = *p;
                if (o + 1 >= n) {
                        memcpy(buf + n - 4, "...", 4);
                        return buf;
                }
                if (c == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
                        p++;
                        c = '?';
                } else if (c < 0x20 || c == 0x7f) {
                        c = '?';
                }
                buf[o++] = (char)c;
        }
        buf[o] = '\0';
        return buf;
}

int strutil_parse_i64(const char *s, int64_t *ret)
{
        char *end;
        long long v;

        if (!*s || isspace((unsigned char)*s))
                return -EINVAL;
        errno = 0;
        v = strtoll(s, &end, 10);
        if (errno || *end)
                return -EINVAL;
        *ret = v;
        return 0;
}
