/* rfc3339.c: see rfc3339.h. Owns the proleptic Gregorian day arithmetic
 * (H. Hinnant's days_from_civil/civil_from_days) and the exact grammar.
 * Never calls timegm/gmtime (they normalise "02-31" into March and depend
 * on time_t), never does I/O, never logs. */
#include "util/rfc3339.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>

/* 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z. */
#define MIN_SEC INT64_C(-62135596800)
#define MAX_SEC INT64_C(253402300799)

static int64_t days_from_civil(int64_t y, int m, int d)
{
        int64_t era;
        int64_t yoe, doy, doe;

        y -= m <= 2;
        era = (y >= 0 ? y : y - 399) / 400;
        yoe = y - era * 400;
        doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
        doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *ret_y, int *ret_m, int *ret_d)
{
        int64_t era, doe, yoe, doy, mp, y;
        int m;

        z += 719468;
        era = (z >= 0 ? z : z - 146096) / 146097;
        doe = z - era * 146097;
        yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        y = yoe + era * 400;
        doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        mp = (5 * doy + 2) / 153;
        *ret_d = (int)(doy - (153 * mp + 2) / 5 + 1);
        m = (int)(mp < 10 ? mp + 3 : mp - 9);
        *ret_m = m;
        *ret_y = y + (m <= 2);
}

static bool leap(int64_t y)
{
        return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(int64_t y, int m)
{
        static const int days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

        return m == 2 && leap(y) ? 29 : days[m - 1];
}

int rfc3339_format(int64_t sec, int32_t nsec, int frac, char *buf, size_t n)
{
        static const int32_t pow10[10] = { 1, 10, 100, 1000, 10000, 100000, 1000000,
                                           10000000, 100000000, 1000000000 };
        int64_t days, rem, y;
        int mo, d, digits, r;
        char fbuf[12] = "";

        if (n > 0)
                buf[0] = '\0';
        if (nsec < 0 || nsec >= 1000000000 || frac < RFC3339_FRAC_AUTO || frac > 9)
                return -EINVAL;
        if (sec < MIN_SEC || sec > MAX_SEC)
                return -ERANGE;
        digits = frac;
        if (frac == RFC3339_FRAC_AUTO)
                digits = nsec == 0 ? 0 : nsec % 1000000 == 0 ? 3 : nsec % 1000 == 0 ? 6 : 9;
        if (digits > 0)
                snprintf(fbuf, sizeof(fbuf), ".%0*d", digits, (int)(nsec / pow10[9 - digits]));
        /* Floor division: times before 1970 are negative. */
        days = sec / 86400;
        rem = sec % 86400;
        if (rem < 0) {
                rem += 86400;
                days--;
        }
        civil_from_days(days, &y, &mo, &d);
        r = snprintf(buf, n, "%04d-%02d-%02dT%02d:%02d:%02d%sZ", (int)y, mo, d,
                     (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60), fbuf);
        if (r < 0 || (size_t)r >= n) {
                if (n > 0)
                        buf[0] = '\0';
                return -ENOBUFS;
        }
        return r;
}

/* Exactly k digits at *p (within end); advances *p. */
static bool num(const char **p, const char *end, int k, int *ret)
{
        int v = 0;

        if (end - *p < k)
                return false;
        for (int i = 0; i < k; i++) {
                char c = (*p)[i];
                if (c < '0' || c > '9')
                        return false;
                v = v * 10 + (c - '0');
        }
        *p += k;
        *ret = v;
        return true;
}

static bool lit(const char **p, const char *end, char a, char b)
{
        if (*p >= end || (**p != a && **p != b))
                return false;
        (*p)++;
        return true;
}

int rfc3339_parse(const char *s, size_t len, int64_t *ret_sec, int32_t *ret_nsec)
{
        const char *p = s, *end = s + len;
        int Y, M, D, h, m, sec, oh = 0, om = 0, sign = 0;
        int32_t nsec = 0;
        int64_t t;

        if (!s)
                return -EINVAL;
        if (!num(&p, end, 4, &Y) || !lit(&p, end, '-', '-') || !num(&p, end, 2, &M) ||
            !lit(&p, end, '-', '-') || !num(&p, end, 2, &D) || !lit(&p, end, 'T', 't') ||
            !num(&p, end, 2, &h) || !lit(&p, end, ':', ':') || !num(&p, end, 2, &m) ||
            !lit(&p, end, ':', ':') || !num(&p, end, 2, &sec))
                return -EINVAL;
        if (Y < 1 || M < 1 || M > 12 || D < 1 || D > month_days(Y, M) || h > 23 || m > 59 ||
            sec > 59)
                return -EINVAL;
        if (lit(&p, end, '.', '.')) {
                int nd = 0;
                while (p < end && *p >= '0' && *p <= '9') {
                        if (++nd > 9)
                                return -EINVAL;
                        nsec = nsec * 10 + (*p++ - '0');
                }
                if (nd == 0)
                        return -EINVAL;
                while (nd++ < 9)
                        nsec *= 10;
        }
        if (lit(&p, end, 'Z', 'z')) {
                sign = 0;
        } else if (p < end && (*p == '+' || *p == '-')) {
                sign = *p++ == '-' ? -1 : 1;
                if (!num(&p, end, 2, &oh) || !lit(&p, end, ':', ':') || !num(&p, end, 2, &om) ||
                    oh > 23 || om > 59)
                        return -EINVAL;
        } else {
                return -EINVAL;
        }
        if (p != end)
                return -EINVAL;
        t = days_from_civil(Y, M, D) * 86400 + h * 3600 + m * 60 + sec;
        /* "+01:00" means local time is ahead of UTC: subtract it. */
        t -= (int64_t)sign * (oh * 3600 + om * 60);
        if (t < MIN_SEC || t > MAX_SEC)
                return -EINVAL;
        *ret_sec = t;
        *ret_nsec = nsec;
        return 0;
}
