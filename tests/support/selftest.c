/* selftest.c: checks of the harness itself: the format predicates, that
 * every CK_* assertion really fails on a wrong wire format (each run in a
 * forked child), and the simulator lifecycle: start, stop, early exit,
 * start timeout, crash detection, and that no simulator outlives a test
 * process killed with SIGKILL. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "check.h"
#include "sim.h"

static void predicates(void **state)
{
        char out[64];

        assert_true(is_uuid_v4("70edff70-3977-4584-8dd7-392151b47153"));
        assert_false(is_uuid_v4("70edff70-3977-1584-8dd7-392151b47153"));   /* version 1 */
        assert_false(is_uuid_v4("70edff70-3977-4584-cdd7-392151b47153"));   /* variant */
        assert_false(is_uuid_v4("70edff70397745848dd7392151b47153"));
        assert_false(is_uuid_v4("70edff70-3977-4584-8dd7-392151b4715"));
        assert_true(is_uuid("70edff70-3977-1584-cdd7-392151b47153"));
        assert_false(is_uuid("70edff70-3977-1584-cdd7-392151b4715g"));
        assert_true(is_hex("acfc6cf33d2434470d3193c151a2a7acc222120b", 40));
        assert_false(is_hex("acfc6cf33d2434470d3193c151a2a7acc222120", 40));
        assert_false(is_hex("zcfc6cf33d2434470d3193c151a2a7acc222120b", 40));
        assert_true(is_rfc3339("2026-01-01T00:00:00Z"));
        assert_true(is_rfc3339("2026-01-01T00:00:00.123456789+02:00"));
        assert_false(is_rfc3339("2026-01-01 00:00:00Z"));
        assert_false(is_rfc3339("2026-13-01T00:00:00Z"));
        assert_false(is_rfc3339("2026-01-01T00:00:00"));
        assert_true(is_rfc3339_ms_utc("2026-11-28T14:34:19.765Z"));
        assert_false(is_rfc3339_ms_utc("2026-11-28T14:34:19Z"));
        assert_false(is_rfc3339_ms_utc("2026-11-28T14:34:19.765+00:00"));
        assert_false(is_rfc3339_ms_utc("2026-11-28T14:34:19.7654Z"));
        assert_int_equal(b64_decode("aGVsbG8=", out, sizeof(out)), 5);
        assert_string_equal(out, "hello");
        assert_int_equal(b64_decode("aGk=", out, sizeof(out)), 2);
        assert_int_equal(b64_decode("", out, sizeof(out)), 0);
        assert_int_equal(b64_decode("aGVsbG8", out, sizeof(out)), -1);
        assert_int_equal(b64_decode("aG=sbG8=", out, sizeof(out)), -1);
        assert_int_equal(b64_decode("aGVs*G8=", out, sizeof(out)), -1);
}

/* ---- every CK_* macro must fail on a bad value ---- */

static json_t *parsed(const char *s)
{
        return json_loads(s, JSON_DECODE_ANY, NULL);
}

static void (*bad_case)(void);

static void run_bad_case(void **state)
{
        bad_case();
}

/* Runs fn as a cmocka test in a child; true when that test failed. */
static bool fails(void (*fn)(void))
{
        pid_t pid = fork();
        int st;

        if (pid == 0) {
                int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
                dup2(null, 1);
                dup2(null, 2);
                bad_case = fn;
                const struct CMUnitTest t[] = { cmocka_unit_test(run_bad_case) };
                _exit(cmocka_run_group_tests(t, NULL, NULL) ? 1 : 0);
        }
        assert_true(pid > 0);
        assert_int_equal(waitpid(pid, &st, 0), pid);
        return WIFEXITED(st) && WEXITSTATUS(st) == 1;
}

static void bad_i64_number(void) { json_t *o = parsed("{\"v\":5}"); CK_I64S(o, "v"); json_decref(o); }
static void bad_i64_text(void) { json_t *o = parsed("{\"v\":\"5x\"}"); CK_I64S(o, "v"); json_decref(o); }
static void bad_int_string(void) { json_t *o = parsed("{\"id\":\"5\"}"); CK_INT(o, "id"); json_decref(o); }
static void bad_int_absent(void) { json_t *o = parsed("{}"); CK_INT(o, "id"); json_decref(o); }
static void bad_enum_number(void) { json_t *o = parsed("{\"r\":3}"); CK_ENUM(o, "r", "X"); json_decref(o); }
static void bad_str(void) { json_t *o = parsed("{\"s\":null}"); CK_STR(o, "s"); json_decref(o); }
static void bad_bool(void) { json_t *o = parsed("{\"b\":\"true\"}"); CK_BOOL(o, "b"); json_decref(o); }
static void bad_absent(void) { json_t *o = parsed("{\"x\":1}"); CK_ABSENT(o, "x"); json_decref(o); }
static void bad_json_eq(void) { json_t *o = parsed("[]"); CK_JSON_EQ(o, "null"); json_decref(o); }
static void bad_ids(void) { json_t *o = parsed("[{\"id\":2},{\"id\":1}]"); CK_IDS(o, "[1,2]"); json_decref(o); }
static void bad_keys_extra(void) { json_t *o = parsed("{\"a\":1,\"b\":2}"); CK_KEYS(o, "a"); json_decref(o); }
static void bad_keys_missing(void) { json_t *o = parsed("{\"a\":1}"); CK_KEYS(o, "a", "b"); json_decref(o); }
static void bad_lookup_in_array(void) { json_t *o = parsed("[1]"); CK_STR(o, "s"); json_decref(o); }

static void bad_status(void)
{
        struct sim_resp r = { .status = 500, .body = (char *)"x" };
        CK_STATUS(&r, 200);
}

static void bad_connect_code(void)
{
        struct sim_resp r = { .status = 401, .body = (char *)"" };
        r.json = parsed("{\"code\":\"internal\",\"message\":\"m\"}");
        CK_CONNECT_ERR(&r, 401, "unauthenticated");
}

static void bad_connect_status(void)
{
        struct sim_resp r = { .status = 500, .body = (char *)"" };
        r.json = parsed("{\"code\":\"unauthenticated\",\"message\":\"m\"}");
        CK_CONNECT_ERR(&r, 401, "unauthenticated");
}

static void bad_connect_no_message(void)
{
        struct sim_resp r = { .status = 401, .body = (char *)"" };
        r.json = parsed("{\"code\":\"unauthenticated\"}");
        CK_CONNECT_ERR(&r, 401, "unauthenticated");
}

static void bad_ok(void) { CK_OK(-ENOENT); }

static void good_cases(void)
{
        json_t *o = parsed("{\"v\":\"-12\",\"id\":7,\"r\":\"RESULT_SUCCESS\",\"s\":\"x\",\"b\":false,"
                           "\"l\":[{\"id\":3},{\"id\":1}]}");
        struct sim_resp r = { .status = 409, .body = (char *)"" };

        assert_int_equal(CK_I64S(o, "v"), -12);
        assert_int_equal(CK_I64S(o, "absent"), 0);
        assert_int_equal(CK_INT(o, "id"), 7);
        assert_string_equal(CK_ENUM(o, "r", "RESULT_UNSPECIFIED"), "RESULT_SUCCESS");
        assert_string_equal(CK_ENUM(o, "q", "RESULT_UNSPECIFIED"), "RESULT_UNSPECIFIED");
        assert_string_equal(CK_STR(o, "s"), "x");
        assert_false(CK_BOOL(o, "b"));
        CK_ABSENT(o, "nope");
        CK_IDS(CK_ARR(o, "l"), "[3,1]");
        CK_KEYS(o, "v", "id", "r", "s", "b", "l");
        CK_JSON_EQ(json_object_get(o, "r"), "\"RESULT_SUCCESS\"");
        r.json = parsed("{\"code\":\"already_exists\",\"message\":\"log file has been archived\"}");
        CK_CONNECT_ERR(&r, 409, "already_exists");
        json_decref(r.json);
        json_decref(o);
}

static void checks_fail_on_bad_input(void **state)
{
        void (*cases[])(void) = { bad_i64_number, bad_i64_text, bad_int_string, bad_int_absent, bad_enum_number,
                                  bad_str, bad_bool, bad_absent, bad_json_eq, bad_ids, bad_keys_extra,
                                  bad_keys_missing, bad_lookup_in_array, bad_status, bad_connect_code,
                                  bad_connect_status, bad_connect_no_message, bad_ok };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
                if (!fails(cases[i]))
                        fail_msg("bad case %zu passed", i);
        assert_false(fails(good_cases));
        good_cases();
}

/* ---- simulator lifecycle ---- */

static bool dead(pid_t pid)
{
        char path[64], buf[512];

        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        FILE *f = fopen(path, "re");
        if (!f)
                return true;
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        const char *p = strrchr(buf, ')');
        return p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
}

static void need_sim(void)
{
        if (!getenv("FORGEJO_SIM"))
                skip();
}

static void start_and_stop(void **state)
{
        struct sim *sim = NULL;
        struct sim_resp r;

        need_sim();
        CK_OK(sim_start(NULL, &sim));
        assert_true(sim->port > 0);
        pid_t pid = sim->proc.pid;
        CK_OK(sim_rpc(sim, "ping.v1.PingService/Ping", NULL, NULL, NULL, "{\"data\":\"x\"}", &r));
        CK_STATUS(&r, 200);
        sim_resp_done(&r);
        assert_int_equal(sim_stop(sim), 0);
        assert_true(dead(pid));
        assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
}

static void early_exit_detected(void **state)
{
        struct sim *sim = NULL;
        char *saved = getenv("FORGEJO_SIM") ? strdup(getenv("FORGEJO_SIM")) : NULL;

        setenv("FORGEJO_SIM", "/bin/false", 1);
        assert_int_equal(sim_start(NULL, &sim), -ECHILD);
        unsetenv("FORGEJO_SIM");
        assert_int_equal(sim_start(NULL, &sim), -ENOENT);
        if (saved)
                setenv("FORGEJO_SIM", saved, 1);
        free(saved);
        assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
}

static void start_timeout_kills_child(void **state)
{
        char script[] = "/tmp/forgejo-sim-silent.XXXXXX";
        int fd = mkostemp(script, O_CLOEXEC);
        struct sim *sim = NULL;
        struct sim_opts o = { .start_timeout_ms = 300 };
        char *saved = getenv("FORGEJO_SIM") ? strdup(getenv("FORGEJO_SIM")) : NULL;
        const char text[] = "#!/bin/sh\nexec sleep 30\n";

        assert_true(fd >= 0);
        assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)(sizeof(text) - 1));
        fchmod(fd, 0700);
        close(fd);
        setenv("FORGEJO_SIM", script, 1);
        double t0 = ck_now();
        int r = sim_start(&o, &sim);
        unlink(script);
        if (saved)
                setenv("FORGEJO_SIM", saved, 1);
        else
                unsetenv("FORGEJO_SIM");
        free(saved);
        assert_int_equal(r, -ETIMEDOUT);
        assert_true(ck_now() - t0 < 5.0);
        assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
}

static void crash_detected(void **state)
{
        struct sim *sim = NULL;

        need_sim();
        CK_OK(sim_start(NULL, &sim));
        kill(sim->proc.pid, SIGKILL);
        ck_sleep_ms(50);
        assert_false(sim_alive(sim));
        assert_int_equal(sim_stop(sim), -ESRCH);
}

/* A test process killed outright (SIGKILL: no atexit, no teardown) takes
 * its simulator with it. */
static void sim_dies_with_test_process(void **state)
{
        int p[2];
        pid_t simpid = 0;

        need_sim();
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        pid_t child = fork();
        assert_true(child >= 0);
        if (child == 0) {
                struct sim *sim = NULL;
                close(p[0]);
                if (sim_start(NULL, &sim) < 0)
                        _exit(1);
                pid_t sp = sim->proc.pid;
                if (write(p[1], &sp, sizeof(sp)) != sizeof(sp))
                        _exit(1);
                for (;;)
                        pause();
        }
        close(p[1]);
        assert_int_equal(read(p[0], &simpid, sizeof(simpid)), (ssize_t)sizeof(simpid));
        close(p[0]);
        assert_true(simpid > 0);
        assert_false(dead(simpid));
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        double t0 = ck_now();
        while (!dead(simpid) && ck_now() - t0 < 3.0)
                ck_sleep_ms(10);
        if (!dead(simpid)) {
                kill(simpid, SIGKILL);
                fail_msg("forgejo-sim %d outlived its killed test process", (int)simpid);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(predicates),
                cmocka_unit_test(checks_fail_on_bad_input),
                cmocka_unit_test(start_and_stop),
                cmocka_unit_test(early_exit_detected),
                cmocka_unit_test(start_timeout_kills_child),
                cmocka_unit_test(crash_detected),
                cmocka_unit_test(sim_dies_with_test_process),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
