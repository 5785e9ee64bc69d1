/* test_base64.c: util/base64: RFC 4648 test vectors, both alphabets, the
 * padding rules protojson applies, and rejection of everything else. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/base64.h"

static void rfc4648_vectors(void **state)
{
        static const char *const plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
        static const char *const coded[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
                                             "Zm9vYmFy" };

        for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
                char *e = base64_encode(plain[i], strlen(plain[i]));
                unsigned char *d = NULL;
                size_t n = 99;

                assert_non_null(e);
                assert_string_equal(e, coded[i]);
                assert_int_equal(base64_decode(e, strlen(e), &d, &n), 0);
                assert_int_equal(n, strlen(plain[i]));
                assert_memory_equal(d, plain[i], n);
                assert_int_equal(d[n], '\0');
                free(d);
                free(e);
        }
        char *e = base64_encode(NULL, 0);
        assert_string_equal(e, "");
        free(e);
}

static void all_bytes_round_trip(void **state)
{
        unsigned char raw[256];
        unsigned char *d;
        size_t n;

        for (int i = 0; i < 256; i++)
                raw[i] = (unsigned char)i;
        for (size_t len = 0; len <= sizeof(raw); len += 37) {
                char *e = base64_encode(raw, len);
                assert_non_null(e);
                assert_int_equal(strlen(e) % 4, 0);
                assert_int_equal(base64_decode(e, strlen(e), &d, &n), 0);
                assert_int_equal(n, len);
                assert_memory_equal(d, raw, len);
                free(d);
                free(e);
        }
}

static void unpadded_and_url_safe(void **state)
{
        unsigned char *d;
        size_t n;

        /* Without padding when the length is not a multiple of 4. */
        assert_int_equal(base64_decode("Zg", 2, &d, &n), 0);
        assert_int_equal(n, 1);
        assert_memory_equal(d, "f", 1);
        free(d);
        assert_int_equal(base64_decode("Zm8", 3, &d, &n), 0);
        assert_memory_equal(d, "fo", 2);
        free(d);
        /* URL-safe alphabet: 0xfb 0xff 0xbf is "+/+/" or "-_-_". */
        assert_int_equal(base64_decode("-_-_", 4, &d, &n), 0);
        assert_int_equal(n, 3);
        assert_memory_equal(d, "\xfb\xff\xbf", 3);
        free(d);
        assert_int_equal(base64_decode("+/+/", 4, &d, &n), 0);
        assert_memory_equal(d, "\xfb\xff\xbf", 3);
        free(d);
        /* Only len bytes are read. */
        assert_int_equal(base64_decode("Zm9v!!!!", 4, &d, &n), 0);
        assert_int_equal(n, 3);
        free(d);
}

static void rejected(void **state)
{
        static const char *const bad[] = {
                "Z",            /* a lone sextet carries no byte */
                "Zm9vY",        /* 4k+1 */
                "Zg=",          /* padding on a length that is not 4k */
                "Zg=====",
                "Z===",         /* three '=' */
                "====",
                "Zg=A",         /* '=' inside */
                "Z=g=",
                "Zm9v\n",       /* line breaks are not skipped */
                "Zm 9v",
                "Zm9v Zm9v",
                "+_+_",         /* mixed alphabets */
                "-/==",
                "Zm9*",
                "Zm9v\x80",
        };
        unsigned char *d = (unsigned char *)"untouched";
        size_t n = 7;

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                if (base64_decode(bad[i], strlen(bad[i]), &d, &n) != -EINVAL)
                        fail_msg("\"%s\" was accepted", bad[i]);
        assert_string_equal((const char *)d, "untouched");
        assert_int_equal(n, 7);
        /* Embedded NUL within len. */
        assert_int_equal(base64_decode("Zm\0v", 4, &d, &n), -EINVAL);
        assert_int_equal(base64_decode(NULL, 4, &d, &n), -EINVAL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(rfc4648_vectors),
                cmocka_unit_test(all_bytes_round_trip),
                cmocka_unit_test(unpadded_and_url_safe),
                cmocka_unit_test(rejected),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
