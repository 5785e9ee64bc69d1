/* test_rfc3339.c: util/rfc3339: known instants, both directions, the whole
 * protobuf Timestamp range, calendar rules (leap years, month lengths),
 * offsets, fraction digits and rejection of everything else. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "util/rfc3339.h"

static int parse(const char *s, int64_t *sec, int32_t *nsec)
{
        return rfc3339_parse(s, strlen(s), sec, nsec);
}

static void known_instants(void **state)
{
        static const struct {
                const char *text;
                int64_t sec;
                int32_t nsec;
        } cases[] = {
                { "1970-01-01T00:00:00Z", 0, 0 },
                { "1969-12-31T23:59:59Z", -1, 0 },
                { "2000-02-29T12:00:00Z", 951825600, 0 },
                { "2026-11-28T14:19:50Z", 1795875590, 0 },
                { "2038-01-19T03:14:08Z", INT64_C(2147483648), 0 },
                { "0001-01-01T00:00:00Z", INT64_C(-62135596800), 0 },
                { "9999-12-31T23:59:59.999999999Z", INT64_C(253402300799), 999999999 },
                { "1900-03-01T00:00:00Z", INT64_C(-2203891200), 0 },
                { "2026-11-28T14:19:50.100Z", 1795875590, 100000000 },
                { "2026-11-28T14:19:50.000123Z", 1795875590, 123000 },
                { "2026-11-28T14:19:50.000000007Z", 1795875590, 7 },
        };
        char buf[RFC3339_BUF];

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                int64_t sec = 0;
                int32_t nsec = -1;
                if (parse(cases[i].text, &sec, &nsec) != 0)
                        fail_msg("\"%s\" rejected", cases[i].text);
                if (sec != cases[i].sec || nsec != cases[i].nsec)
                        fail_msg("\"%s\": %lld.%09d", cases[i].text, (long long)sec, nsec);
                assert_int_equal(rfc3339_format(sec, nsec, RFC3339_FRAC_AUTO, buf, sizeof(buf)),
                                 (int)strlen(cases[i].text));
                assert_string_equal(buf, cases[i].text);
        }
}

static void parse_forms(void **state)
{
        int64_t sec;
        int32_t nsec;

        /* Offsets are subtracted: 16:19:50+02:00 is 14:19:50Z. */
        assert_int_equal(parse("2026-11-28T16:19:50+02:00", &sec, &nsec), 0);
        assert_true(sec == 1795875590);
        assert_int_equal(parse("2026-11-28T09:49:50-04:30", &sec, &nsec), 0);
        assert_true(sec == 1795875590);
        assert_int_equal(parse("2026-11-28t14:19:50z", &sec, &nsec), 0);
        assert_true(sec == 1795875590);
        assert_int_equal(parse("2026-11-28T14:19:50.1Z", &sec, &nsec), 0);
        assert_int_equal(nsec, 100000000);
        /* An offset may carry a day across a year boundary. */
        assert_int_equal(parse("2027-01-01T00:30:00+01:00", &sec, &nsec), 0);
        assert_true(sec == INT64_C(1798759800));
        /* Only len bytes count. */
        assert_int_equal(rfc3339_parse("1970-01-01T00:00:00Zjunk", 20, &sec, &nsec), 0);
        assert_true(sec == 0);
}

static void rejected(void **state)
{
        static const char *const bad[] = {
                "", "2026-11-28", "2026-11-28 14:19:50Z", "2026-11-28T14:19:50",
                "2026-11-28T14:19:50Zjunk", "2026-11-28T14:19:50+0200", "2026-11-28T14:19:50+2:00",
                "26-11-28T14:19:50Z", "2026-1-28T14:19:50Z", "+2026-11-28T14:19:50Z",
                "2026-13-28T14:19:50Z", "2026-00-28T14:19:50Z", "2026-11-00T14:19:50Z",
                "2026-02-29T00:00:00Z",   /* not a leap year */
                "1900-02-29T00:00:00Z",   /* divisible by 100, not by 400 */
                "2026-02-31T00:00:00Z", "2026-04-31T00:00:00Z", "2026-11-31T00:00:00Z",
                "2026-11-28T24:00:00Z", "2026-11-28T14:60:00Z",
                "2026-11-28T23:59:60Z",   /* leap seconds: not a protobuf Timestamp */
                "2026-11-28T14:19:50.Z", "2026-11-28T14:19:50.1234567890Z",
                "2026-11-28T14:19:50,1Z", "2026-11-28T14:19:50+24:00", "2026-11-28T14:19:50+01:60",
                "0000-12-31T23:59:59Z",
                "0001-01-01T00:30:00+01:00", /* before 0001-01-01 in UTC */
                "9999-12-31T23:30:00-01:00", /* after 9999-12-31 in UTC */
                "2026-11-28T14:19:5OZ", "２026-11-28T14:19:50Z",
        };
        int64_t sec = 42;
        int32_t nsec = 43;

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                if (parse(bad[i], &sec, &nsec) != -EINVAL)
                        fail_msg("\"%s\" was accepted", bad[i]);
        assert_true(sec == 42);
        assert_int_equal(nsec, 43);
        assert_int_equal(rfc3339_parse(NULL, 0, &sec, &nsec), -EINVAL);
        /* Embedded NUL. */
        assert_int_equal(rfc3339_parse("1970-01-01T00:00:00\0", 20, &sec, &nsec), -EINVAL);
}

static void format_rules(void **state)
{
        char buf[RFC3339_BUF];

        /* Fixed digits truncate. */
        assert_int_equal(rfc3339_format(0, 999999999, 3, buf, sizeof(buf)), 24);
        assert_string_equal(buf, "1970-01-01T00:00:00.999Z");
        assert_int_equal(rfc3339_format(0, 5, 0, buf, sizeof(buf)), 20);
        assert_string_equal(buf, "1970-01-01T00:00:00Z");
        assert_int_equal(rfc3339_format(-1, 500000000, 1, buf, sizeof(buf)), 22);
        assert_string_equal(buf, "1969-12-31T23:59:59.5Z");
        /* AUTO: the fewest of 0/3/6/9 digits that are exact. */
        rfc3339_format(0, 120000000, RFC3339_FRAC_AUTO, buf, sizeof(buf));
        assert_string_equal(buf, "1970-01-01T00:00:00.120Z");
        rfc3339_format(0, 120001000, RFC3339_FRAC_AUTO, buf, sizeof(buf));
        assert_string_equal(buf, "1970-01-01T00:00:00.120001Z");
        /* Range and arguments. */
        assert_int_equal(rfc3339_format(INT64_C(253402300800), 0, 0, buf, sizeof(buf)), -ERANGE);
        assert_string_equal(buf, "");
        assert_int_equal(rfc3339_format(INT64_C(-62135596801), 0, 0, buf, sizeof(buf)), -ERANGE);
        assert_int_equal(rfc3339_format(INT64_MAX, 0, 0, buf, sizeof(buf)), -ERANGE);
        assert_int_equal(rfc3339_format(INT64_MIN, 0, 0, buf, sizeof(buf)), -ERANGE);
        assert_int_equal(rfc3339_format(0, -1, 0, buf, sizeof(buf)), -EINVAL);
        assert_int_equal(rfc3339_format(0, 1000000000, 0, buf, sizeof(buf)), -EINVAL);
        assert_int_equal(rfc3339_format(0, 0, 10, buf, sizeof(buf)), -EINVAL);
        assert_int_equal(rfc3339_format(0, 0, -2, buf, sizeof(buf)), -EINVAL);
        /* Bounded: exactly fits, one byte short. */
        assert_int_equal(rfc3339_format(0, 0, 0, buf, 21), 20);
        assert_int_equal(rfc3339_format(0, 0, 0, buf, 20), -ENOBUFS);
        assert_string_equal(buf, "");
        assert_int_equal(rfc3339_format(INT64_C(253402300799), 999999999, 9, buf, RFC3339_BUF),
                         RFC3339_BUF - 1);
}

static void every_day_round_trips(void **state)
{
        /* Each day of 1600..2400 once, through format and parse. */
        int64_t start = INT64_C(-11676096000); /* 1600-01-01 */
        int64_t end = INT64_C(13569465600);    /* 2400-01-01 */
        char buf[RFC3339_BUF];

        for (int64_t t = start; t < end; t += 86400 + 3601) {
                int64_t sec;
                int32_t nsec;
                assert_true(rfc3339_format(t, 0, 0, buf, sizeof(buf)) > 0);
                assert_int_equal(parse(buf, &sec, &nsec), 0);
                if (sec != t)
                        fail_msg("%lld -> %s -> %lld", (long long)t, buf, (long long)sec);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(known_instants),
                cmocka_unit_test(parse_forms),
                cmocka_unit_test(rejected),
                cmocka_unit_test(format_rules),
                cmocka_unit_test(every_day_round_trips),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
