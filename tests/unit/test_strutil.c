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

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(dup_or_null),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
