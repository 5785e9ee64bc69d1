/* test_strutil.c: util/strutil: optional copies and the sticky error. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/strutil.h"

static void dup_or_null(void **state)
{
        int err = 0;
        const char *src = "abc";
        char *d = strutil_dup_or_null(src, &err);

        assert_non_null(d);
        assert_ptr_not_equal(d, src);
        assert_string_equal(d, "abc");
        free(d);
        assert_null(strutil_dup_or_null(NULL, &err));
        assert_int_equal(err, 0);
        /* An earlier failure is kept by later successful copies. */
        err = -ENOMEM;
        d = strutil_dup_or_null("x", &err);
        assert_string_equal(d, "x");
        assert_int_equal(err, -ENOMEM);
        free(d);
}

/* Terminal escapes from a server never reach the terminal. */
/* Whole decimal int64s only: protojson's int64 strings. */
static void parse_i64(void **state)
{
        int64_t v = 7;

        assert_int_equal(strutil_parse_i64("-12", &v), 0);
        assert_int_equal(v, -12);
        assert_int_equal(strutil_parse_i64("9223372036854775807", &v), 0);
        assert_true(v == INT64_MAX);
        v = 7;
        const char *bad[] = { "", " 1", "1 ", "1x", "0x10", "9223372036854775808", "-", NULL };
        for (size_t i = 0; bad[i]; i++)
                assert_int_equal(strutil_parse_i64(bad[i], &v), -EINVAL);
        assert_int_equal(v, 7);
}

static void printable(void **state)
{
        char buf[32];

        assert_string_equal(strutil_printable("linux-amd64", buf, sizeof(buf)), "linux-amd64");
        assert_string_equal(strutil_printable("\x1b]0;owned\x07\x1b[2J", buf, sizeof(buf)), "?]0;owned??[2J");
        assert_string_equal(strutil_printable("a\xc2\x9b" "31mb\x7f", buf, sizeof(buf)), "a?31mb?");
        assert_string_equal(strutil_printable("caf\xc3\xa9", buf, sizeof(buf)), "caf\xc3\xa9");
        assert_string_equal(strutil_printable(NULL, buf, sizeof(buf)), "?");
        assert_string_equal(strutil_printable("0123456789", buf, 8), "0123...");
        assert_string_equal(strutil_printable("0123456", buf, 8), "0123456");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(dup_or_null),
                cmocka_unit_test(printable),
                cmocka_unit_test(parse_i64),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
