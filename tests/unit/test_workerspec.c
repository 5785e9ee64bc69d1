/* test_workerspec.c: the worker's argv and environment, from the pool's
 * runner settings, of any size (a fixed array once overflowed with a long
 * runner.command and many labels). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/workerspec.h"

static void job_worker_argv_and_env(void **state)
{
        char *cmd[] = { "/usr/bin/env", "forgejo-runner" }, *labels[] = { "docker", "ubuntu" };
        struct config_env env[] = { { "HTTP_PROXY", "http://proxy:3128" } };
        struct config_runner r = { .command = { cmd, 2 }, .env = { env, 1 }, .label_scheme = "docker://node:20" };
        struct config_strv lv = { labels, 2 };
        struct workerspec_in in = { .runner = &r, .labels = &lv, .pool = "linux", .instance = "fs-1-linux-a",
                                    .forge_url = "http://127.0.0.1:3000", .runner_uuid = "u-1",
                                    .token_path = "/w/token", .handle = "h-42" };
        struct workerspec ws;
        static const char *const want[] = {
                "/usr/bin/env", "forgejo-runner", "one-job", "--url", "http://127.0.0.1:3000",
                "--uuid", "u-1", "--token-url", "file:/w/token", "--label", "docker:docker://node:20",
                "--label", "ubuntu:docker://node:20", "--handle", "h-42", "--wait",
        };

        assert_int_equal(workerspec_build(&in, &ws), 0);
        assert_int_equal(ws.argc, sizeof(want) / sizeof(want[0]));
        for (size_t i = 0; i < ws.argc; i++)
                assert_string_equal(ws.argv[i], want[i]);
        assert_null(ws.argv[ws.argc]);
        assert_int_equal(ws.envc, 9);
        assert_string_equal(ws.env[2], "FORGESCALE_RUNNER_TOKEN_FILE=/w/token");
        assert_string_equal(ws.env[4], "FORGESCALE_LABELS=docker,ubuntu");
        assert_string_equal(ws.env[5], "FORGESCALE_JOB_HANDLE=h-42");
        assert_string_equal(ws.env[8], "HTTP_PROXY=http://proxy:3128");
        assert_null(ws.env[ws.envc]);
        for (size_t i = 0; i < ws.envc; i++)
                assert_null(strstr(ws.env[i], "secret"));
        workerspec_done(&ws);
}

static void warm_worker_has_no_handle(void **state)
{
        char *labels[] = { "x" };
        struct config_runner r = { 0 };
        struct config_strv lv = { labels, 1 };
        struct workerspec_in in = { .runner = &r, .labels = &lv, .pool = "p", .instance = "i",
                                    .forge_url = "u", .runner_uuid = "id", .token_path = "/t" };
        struct workerspec ws;

        assert_int_equal(workerspec_build(&in, &ws), 0);
        assert_string_equal(ws.argv[0], "forgejo-runner");
        for (size_t i = 0; i < ws.argc; i++)
                assert_string_not_equal(ws.argv[i], "--handle");
        assert_string_equal(ws.argv[ws.argc - 1], "--wait");
        assert_string_equal(ws.argv[ws.argc - 2], "x:host");
        assert_string_equal(ws.env[5], "FORGESCALE_JOB_HANDLE=");
        workerspec_done(&ws);
}

/* 200 command words, 64 labels and 100 variables: all of them, in order. */
static void large_specs_are_whole(void **state)
{
        char *cmd[200], *labels[64];
        struct config_env env[100];
        char names[100][16], cmds[200][8], labs[64][8];

        for (int i = 0; i < 200; i++) {
                snprintf(cmds[i], sizeof(cmds[i]), "c%d", i);
                cmd[i] = cmds[i];
        }
        for (int i = 0; i < 64; i++) {
                snprintf(labs[i], sizeof(labs[i]), "l%d", i);
                labels[i] = labs[i];
        }
        for (int i = 0; i < 100; i++) {
                snprintf(names[i], sizeof(names[i]), "V%d", i);
                env[i] = (struct config_env){ names[i], "v" };
        }
        struct config_runner r = { .command = { cmd, 200 }, .env = { env, 100 } };
        struct config_strv lv = { labels, 64 };
        struct workerspec_in in = { .runner = &r, .labels = &lv, .pool = "p", .instance = "i",
                                    .forge_url = "u", .runner_uuid = "id", .token_path = "/t", .handle = "h" };
        struct workerspec ws;

        assert_int_equal(workerspec_build(&in, &ws), 0);
        assert_int_equal(ws.argc, 200 + 7 + 2 * 64 + 2 + 1);
        assert_string_equal(ws.argv[199], "c199");
        assert_string_equal(ws.argv[207 + 2 * 63 + 1], "l63:host");
        assert_int_equal(ws.envc, 8 + 100);
        assert_string_equal(ws.env[107], "V99=v");
        workerspec_done(&ws);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(job_worker_argv_and_env),
                cmocka_unit_test(warm_worker_has_no_handle),
                cmocka_unit_test(large_specs_are_whole),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
