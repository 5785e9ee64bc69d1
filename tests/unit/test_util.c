/* test_util.c: durations, log formatting and redaction, secrets, files. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/duration.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/secret.h"

static void durations(void **state)
{
        int64_t ms;

        assert_int_equal(duration_parse("250ms", &ms), 0); assert_int_equal(ms, 250);
        assert_int_equal(duration_parse("2s", &ms), 0);    assert_int_equal(ms, 2000);
        assert_int_equal(duration_parse("5m", &ms), 0);    assert_int_equal(ms, 300000);
        assert_int_equal(duration_parse("1h30m", &ms), 0); assert_int_equal(ms, 5400000);
        assert_int_equal(duration_parse("1d", &ms), 0);    assert_int_equal(ms, 86400000);
        assert_int_equal(duration_parse("0", &ms), 0);     assert_int_equal(ms, 0);
        ms = 77;
        assert_int_equal(duration_parse("", &ms), -EINVAL);
        assert_int_equal(duration_parse("10", &ms), -EINVAL);
        assert_int_equal(duration_parse("-1s", &ms), -EINVAL);
        assert_int_equal(duration_parse("1.5s", &ms), -EINVAL);
        assert_int_equal(duration_parse("5 m", &ms), -EINVAL);
        assert_int_equal(duration_parse("3w", &ms), -EINVAL);
        assert_int_equal(duration_parse("99999999999999999999s", &ms), -ERANGE);
        /* Each unit once, largest first: "1h1h" and "5m30h" are typos. */
        assert_int_equal(duration_parse("1h1h", &ms), -EINVAL);
        assert_int_equal(duration_parse("5m30h", &ms), -EINVAL);
        assert_int_equal(duration_parse("1s1m", &ms), -EINVAL);
        assert_int_equal(duration_parse("10ms5s", &ms), -EINVAL);
        assert_int_equal(duration_parse("1ms1ms", &ms), -EINVAL);
        assert_int_equal(duration_parse("2s2s", &ms), -EINVAL);
        assert_int_equal(ms, 77); /* untouched on failure */
        assert_int_equal(duration_parse("1d2h3m4s5ms", &ms), 0);
        assert_int_equal(ms, 86400000 + 7200000 + 180000 + 4000 + 5);
        assert_int_equal(duration_parse("1m500ms", &ms), 0);
        assert_int_equal(ms, 60500);
        assert_int_equal(duration_parse("90s", &ms), 0);
        assert_int_equal(ms, 90000);

        char buf[32];
        duration_format(5400000, buf, sizeof(buf)); assert_string_equal(buf, "1h30m");
        duration_format(250, buf, sizeof(buf));     assert_string_equal(buf, "250ms");
        duration_format(0, buf, sizeof(buf));       assert_string_equal(buf, "0s");
        duration_format(61001, buf, sizeof(buf));   assert_string_equal(buf, "1m1s1ms");
}

/* Runs fn with the log output going to a pipe; returns what was written. */
static char *capture(void (*fn)(void))
{
        static char out[8192];
        int p[2];
        assert_int_equal(pipe(p), 0);
        log_set_fd(p[1]);
        fn();
        log_set_fd(2);
        close(p[1]);
        ssize_t n = read(p[0], out, sizeof(out) - 1);
        close(p[0]);
        out[n > 0 ? n : 0] = '\0';
        return out;
}

static void emit_sample(void)
{
        log_info("forge", "poll failed", KS("forge", "main"), KI("status", 503),
                 KS("detail", "token=s3cr3t-value here"), KB("retry", 1));
}

static void emit_debug(void)
{
        log_debug("forge", "hidden");
}

static void log_logfmt_and_redaction(void **state)
{
        log_init(LOG_INFO, LOG_FMT_LOGFMT);
        log_redact_clear();
        assert_int_equal(log_redact_add("s3cr3t-value"), 0);
        char *o = capture(emit_sample);
        assert_non_null(strstr(o, " level=info comp=forge msg=\"poll failed\" forge=main status=503 "
                                  "detail=\"token=[REDACTED] here\" retry=true\n"));
        assert_null(strstr(o, "s3cr3t"));
        assert_true(strncmp(o, "ts=", 3) == 0);
        assert_string_equal(capture(emit_debug), "");
        log_redact_clear();
}

static void log_json(void **state)
{
        log_init(LOG_INFO, LOG_FMT_JSON);
        log_redact_clear();
        log_redact_add("s3cr3t-value");
        char *o = capture(emit_sample);
        assert_non_null(strstr(o, "\"level\":\"info\",\"comp\":\"forge\",\"msg\":\"poll failed\","
                                  "\"forge\":\"main\",\"status\":503,\"detail\":\"token=[REDACTED] here\","
                                  "\"retry\":true}\n"));
        assert_true(strncmp(o, "{\"ts\":\"", 7) == 0);
        log_init(LOG_INFO, LOG_FMT_LOGFMT);
        log_redact_clear();
}

static void secrets(void **state)
{
        assert_true(secret_equal("abc123", "abc123"));
        assert_false(secret_equal("abc123", "abc124"));
        assert_false(secret_equal("abc", "abc123"));
        assert_false(secret_equal("abc123", "abc"));
        assert_false(secret_equal("", "x"));
        assert_true(secret_equal("", ""));

        char dir[] = "/tmp/fs-util-XXXXXX";
        assert_non_null(mkdtemp(dir));
        char path[256];
        snprintf(path, sizeof(path), "%s/tok", dir);

        assert_int_equal(fs_write_file_0600(path, "tok-1234\n", 9), 0);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        char *s = NULL;
        assert_int_equal(secret_load_file(path, &s), 0);
        assert_string_equal(s, "tok-1234");
        secret_free(s);

        assert_int_equal(fs_write_file_0600(path, "\n  \n", 4), 0);
        assert_int_equal(secret_load_file(path, &s), -ENODATA);
        assert_int_equal(fs_write_file_0600(path, "a\nb\n", 4), 0);
        assert_int_equal(secret_load_file(path, &s), -EINVAL);
        assert_int_equal(secret_load_file("/nonexistent/forgescale/tok", &s), -ENOENT);
        assert_int_equal(fs_write_file_0600(path, "tok\0evil\n", 9), 0);
        assert_int_equal(secret_load_file(path, &s), -EINVAL);
        assert_int_equal(fs_write_file_0600(path, " tok\n", 5), 0);
        assert_int_equal(secret_load_file(path, &s), -EINVAL);
        /* A FIFO is refused at once, not waited on for a writer. */
        char fifo[300];
        snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
        assert_int_equal(mkfifo(fifo, 0600), 0);
        assert_int_equal(secret_load_file(fifo, &s), -EBADFD);
        unlink(fifo);
        assert_int_equal(secret_load_file(dir, &s), -EBADFD);

        setenv("FS_TEST_TOKEN", "envtok-99", 1);
        assert_int_equal(secret_load_env("FS_TEST_TOKEN", &s), 0);
        assert_string_equal(s, "envtok-99");
        secret_free(s);
        unsetenv("FS_TEST_TOKEN");
        assert_int_equal(secret_load_env("FS_TEST_TOKEN", &s), -ENOENT);

        char hex[41], u[37];
        assert_int_equal(secret_random_hex(hex, 20), 0);
        assert_int_equal(strlen(hex), 40);
        assert_int_equal(secret_uuid4(u), 0);
        assert_int_equal(strlen(u), 36);
        assert_true(u[14] == '4');
        assert_true(strchr("89ab", u[19]) != NULL);

        assert_int_equal(fs_rm_rf(dir), 0);
        assert_int_equal(access(dir, F_OK), -1);
        log_redact_clear();
}

static void files(void **state)
{
        char dir[] = "/tmp/fs-util-XXXXXX";
        char path[256], *buf = NULL;
        size_t len;

        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/a/b/c", dir);
        assert_int_equal(fs_mkdir_p(path, 0700), 0);
        assert_int_equal(fs_mkdir_p(path, 0700), 0);
        snprintf(path, sizeof(path), "%s/a/b/c/f", dir);
        assert_int_equal(fs_write_file_0600(path, "0123456789", 10), 0);
        assert_int_equal(fs_read_file(path, 10, &buf, &len), 0);
        assert_int_equal(len, 10);
        assert_string_equal(buf, "0123456789");
        free(buf);
        assert_int_equal(fs_read_file(path, 9, &buf, &len), -EFBIG);

        /* A secret replaces whatever was there and is 0600 from creation. */
        assert_int_equal(chmod(path, 0644), 0);
        assert_int_equal(fs_write_secret(path, "tok", 3), 0);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        assert_int_equal(fs_read_file(path, 10, &buf, &len), 0);
        assert_string_equal(buf, "tok");
        free(buf);
        snprintf(path, sizeof(path), "%s/a", dir);
        assert_int_equal(fs_rm_rf(path), 0);
        assert_int_equal(fs_rm_rf(path), 0);
        assert_int_equal(fs_rm_rf(dir), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(durations),
                cmocka_unit_test(log_logfmt_and_redaction),
                cmocka_unit_test(log_json),
                cmocka_unit_test(secrets),
                cmocka_unit_test(files),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
