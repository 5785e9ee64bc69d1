/* duration.c: see duration.h. */
#include "util/duration.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

int duration_parse(const char *s, int64_t *ret_ms)
{
        int64_t total = 0;
        int last = 0;   /* rank of the previous unit: ms 1 ... d 5 */

        if (!s || !*s)
                return -EINVAL;
        if (strcmp(s, "0") == 0) {
                *ret_ms = 0;
                return 0;
        }
        while (*s) {
                int64_t v = 0, mul;
                int rank;
                if (!isdigit((unsigned char)*s))
                        return -EINVAL;
                while (isdigit((unsigned char)*s)) {
                        if (v > (INT64_MAX - 9) / 10)
                                return -ERANGE;
                        v = v * 10 + (*s++ - '0');
                }
                if (strncmp(s, "ms", 2) == 0) {
                        mul = 1;
                        rank = 1;
                        s += 2;
                } else if (*s == 's') {
                        mul = 1000;
                        rank = 2;
                        s++;
                } else if (*s == 'm') {
                        mul = 60 * 1000;
                        rank = 3;
                        s++;
                } else if (*s == 'h') {
                        mul = 3600 * 1000;
                        rank = 4;
                        s++;
                } else if (*s == 'd') {
                        mul = 24 * 3600 * 1000LL;
                        rank = 5;
                        s++;
                } else {
                        return -EINVAL;
                }
                /* "1h1h" or "5m30h" is more likely a typo than a sum. */
                if (last && rank >= last)
                        return -EINVAL;
                last = rank;
                if (v > (INT64_MAX - total) / mul)
                        return -ERANGE;
                total += v * mul;
        }
        *ret_ms = total;
        return 0;
}

void duration_format(int64_t ms, char *buf, size_t n)
{
        static const struct { int64_t ms; const char *u; } units[] = {
                { 24 * 3600 * 1000LL, "d" }, { 3600 * 1000, "h" },
                { 60 * 1000, "m" }, { 1000, "s" }, { 1, "ms" },
        };
        size_t o = 0;

        if (n == 0)
                return;
        buf[0] = '\0';
        if (ms <= 0) {
                snprintf(buf, n, "0s");
                return;
        }
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]) && ms > 0; i++) {
                if (ms >= units[i].ms) {
                        int w = snprintf(buf + o, n - o, "%lld%s",
                                         (long long)(ms / units[i].ms), units[i].u);
                        if (w < 0 || (size_t)w >= n - o)
                                return;
                        o += (size_t)w;
                        ms %= units[i].ms;
                }
        }
}
