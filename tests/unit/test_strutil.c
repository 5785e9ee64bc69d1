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
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
