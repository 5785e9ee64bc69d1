/* test_dockerapi.c: the Docker Engine API as data (dockerapi.h), without
 * an engine: create bodies, the answers forgescale reads (including the
 * ones it must refuse), the error text and the framed log stream cut at
 * every byte. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "provider/dockerapi.h"
#include "provider/provider.h"

#include <signal.h>

#define ID64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void create_body_has_everything(void **state)
{
        const char *argv[] = { "/usr/bin/forgejo-runner", "one-job", "--url", "http://x", NULL };
        const char *env[] = { "FORGESCALE_POOL=p", "FORGESCALE_RUNNER_TOKEN_FILE=/run/forgescale/token", NULL };
        const char *extra[] = { "HTTP_PROXY=http://proxy:3128", NULL };
        const char *binds[] = { "/w/token:/run/forgescale/token:ro", "/usr:/usr:ro", NULL };
        struct dockerapi_ulimit ul[] = { { "nofile", 1024, 4096 } };
        struct dockerapi_create c = {
                .image = "img:1", .instance = "fs-c1-p-1", .pool = "p", .argv = argv, .env = env,
                .env_extra = extra, .binds = binds, .network = "host", .nano_cpus = 1500000000,
                .memory = 64 << 20, .pids_limit = 50, .ulimits = ul, .n_ulimits = 1,
                .runtime = "runc", .user = "1000:1000", .init = true, .log_path = "/s/worker.log",
                .log_max = "1048576",
        };
        char *body = NULL;

        assert_int_equal(dockerapi_create_body(&c, &body), 0);
        json_t *j = json_loads(body, 0, NULL);
        assert_non_null(j);
        assert_string_equal(json_string_value(json_object_get(j, "Image")), "img:1");
        json_t *ep = json_object_get(j, "Entrypoint"), *cmd = json_object_get(j, "Cmd");
        assert_int_equal(json_array_size(ep), 1);
        assert_string_equal(json_string_value(json_array_get(ep, 0)), "/usr/bin/forgejo-runner");
        assert_int_equal(json_array_size(cmd), 3);
        assert_string_equal(json_string_value(json_array_get(cmd, 2)), "http://x");
        json_t *e = json_object_get(j, "Env");
        assert_int_equal(json_array_size(e), 3);
        assert_string_equal(json_string_value(json_array_get(e, 2)), "HTTP_PROXY=http://proxy:3128");
        json_t *l = json_object_get(j, "Labels");
        assert_string_equal(json_string_value(json_object_get(l, "forgescale.instance")), "fs-c1-p-1");
        assert_string_equal(json_string_value(json_object_get(l, "forgescale.pool")), "p");
        assert_string_equal(json_string_value(json_object_get(l, "forgescale.managed")), "1");
        assert_string_equal(json_string_value(json_object_get(l, "forgescale.log")), "/s/worker.log");
        assert_string_equal(json_string_value(json_object_get(j, "User")), "1000:1000");
        assert_true(json_is_false(json_object_get(j, "Tty")));
        json_t *h = json_object_get(j, "HostConfig");
        assert_int_equal(json_array_size(json_object_get(h, "Binds")), 2);
        assert_string_equal(json_string_value(json_object_get(h, "NetworkMode")), "host");
        assert_int_equal(json_integer_value(json_object_get(h, "NanoCpus")), 1500000000);
        assert_int_equal(json_integer_value(json_object_get(h, "Memory")), 64 << 20);
        assert_int_equal(json_integer_value(json_object_get(h, "PidsLimit")), 50);
        json_t *u = json_array_get(json_object_get(h, "Ulimits"), 0);
        assert_string_equal(json_string_value(json_object_get(u, "Name")), "nofile");
        assert_int_equal(json_integer_value(json_object_get(u, "Soft")), 1024);
        assert_int_equal(json_integer_value(json_object_get(u, "Hard")), 4096);
        assert_string_equal(json_string_value(json_object_get(h, "Runtime")), "runc");
        assert_true(json_is_true(json_object_get(h, "Init")));
        assert_true(json_is_false(json_object_get(h, "AutoRemove")));
        json_decref(j);
        free(body);

        /* Unset limits are left to the engine: no key at all. */
        struct dockerapi_create m = { .image = "i", .instance = "n", .argv = argv };
        assert_int_equal(dockerapi_create_body(&m, &body), 0);
        j = json_loads(body, 0, NULL);
        h = json_object_get(j, "HostConfig");
        assert_null(json_object_get(j, "User"));
        assert_null(json_object_get(h, "NetworkMode"));
        assert_null(json_object_get(h, "Memory"));
        assert_null(json_object_get(h, "Ulimits"));
        assert_null(json_object_get(h, "Runtime"));
        assert_int_equal(json_array_size(json_object_get(j, "Env")), 0);
        json_decref(j);
        free(body);

        const char *noargv[] = { NULL };
        m.argv = noargv;
        assert_int_equal(dockerapi_create_body(&m, &body), -EINVAL);
        m.argv = argv;
        m.image = "";
        assert_int_equal(dockerapi_create_body(&m, &body), -EINVAL);
}

#define B(s) (s), strlen(s)

static void created_and_wait(void **state)
{
        char id[DOCKERAPI_ID_MAX];
        int code = -7;

        assert_int_equal(dockerapi_parse_created(B("{\"Id\":\"" ID64 "\",\"Warnings\":[]}"), id), 0);
        assert_string_equal(id, ID64);
        assert_int_equal(dockerapi_parse_created(B("{\"Id\":\"../etc\"}"), id), -EBADMSG);
        assert_int_equal(dockerapi_parse_created(B("{\"Id\":\"\"}"), id), -EBADMSG);
        assert_int_equal(dockerapi_parse_created(B("{\"Id\":42}"), id), -EBADMSG);
        assert_int_equal(dockerapi_parse_created(B("not json"), id), -EBADMSG);
        assert_int_equal(dockerapi_parse_wait(B("{\"StatusCode\":137,\"Error\":null}"), &code), 0);
        assert_int_equal(code, 137);
        assert_int_equal(dockerapi_parse_wait(B("{\"StatusCode\":\"1\"}"), &code), -EBADMSG);
        assert_int_equal(dockerapi_parse_wait(B("{\"StatusCode\":99999999}"), &code), -EBADMSG);
        assert_int_equal(code, 137);
}

static void inspect(void **state)
{
        struct dockerapi_inspect in;
        const char *ok = "{\"Id\":\"" ID64 "\",\"Name\":\"/fs-a-1\",\"State\":{\"Status\":\"exited\","
                         "\"Running\":false,\"OOMKilled\":true,\"ExitCode\":137,\"Error\":\"\"},"
                         "\"Config\":{\"Labels\":{\"forgescale.instance\":\"fs-a-1\",\"forgescale.managed\":\"1\","
                         "\"forgescale.log\":\"/s/w.log\"}}}";
        char buf[64];

        assert_int_equal(dockerapi_parse_inspect(B(ok), &in), 0);
        assert_string_equal(in.name, "fs-a-1");
        assert_string_equal(in.instance, "fs-a-1");
        assert_true(in.managed);
        assert_false(in.running);
        assert_true(in.oom_killed);
        assert_int_equal(in.exit_code, 137);
        assert_string_equal(dockerapi_inspect_label(B(ok), "forgescale.log", buf, sizeof(buf)), "/s/w.log");
        assert_string_equal(dockerapi_inspect_label(B(ok), "nope", buf, sizeof(buf)), "");

        /* Labels null (an image without any), not managed. */
        const char *bare = "{\"Id\":\"" ID64 "\",\"State\":{\"Running\":true,\"ExitCode\":0},"
                           "\"Config\":{\"Labels\":null}}";
        assert_int_equal(dockerapi_parse_inspect(B(bare), &in), 0);
        assert_false(in.managed);
        assert_true(in.running);
        assert_string_equal(in.instance, "");
        /* managed must be exactly "1". */
        const char *two = "{\"Id\":\"" ID64 "\",\"State\":{\"ExitCode\":0},"
                          "\"Config\":{\"Labels\":{\"forgescale.managed\":\"yes\"}}}";
        assert_int_equal(dockerapi_parse_inspect(B(two), &in), 0);
        assert_false(in.managed);

        assert_int_equal(dockerapi_parse_inspect(B("{\"Id\":\"" ID64 "\"}"), &in), -EBADMSG);
        assert_int_equal(dockerapi_parse_inspect(B("{\"Id\":\"" ID64 "\",\"State\":{\"ExitCode\":\"0\"}}"), &in), -EBADMSG);
        assert_int_equal(dockerapi_parse_inspect(B("[]"), &in), -EBADMSG);
        assert_int_equal(dockerapi_parse_inspect(B("{\"Id\":\"zz\",\"State\":{\"ExitCode\":0}}"), &in), -EBADMSG);
}

/* Only managed containers whose instance label has the prefix. */
static void list_filters_foreign(void **state)
{
        const char *body =
                "[{\"Id\":\"" ID64 "\",\"State\":\"running\",\"Labels\":{\"forgescale.instance\":\"fs-a-1\",\"forgescale.managed\":\"1\"}},"
                " {\"Id\":\"aa\",\"State\":\"exited\",\"Labels\":{\"forgescale.instance\":\"fs-a-2\",\"forgescale.managed\":\"1\"}},"
                " {\"Id\":\"bb\",\"State\":\"running\",\"Labels\":{\"forgescale.instance\":\"fs-b-1\",\"forgescale.managed\":\"1\"}},"
                " {\"Id\":\"cc\",\"State\":\"running\",\"Labels\":{\"forgescale.instance\":\"fs-a-3\"}},"
                " {\"Id\":\"dd\",\"State\":\"running\",\"Labels\":null},"
                " {\"Id\":5}, 7, {\"Id\":\"ee\",\"Labels\":{\"forgescale.managed\":\"1\"}}]";
        struct dockerapi_listed *v = NULL;
        size_t n = 99;

        assert_int_equal(dockerapi_parse_list(B(body), "fs-a-", &v, &n), 0);
        assert_int_equal(n, 2);
        assert_string_equal(v[0].instance, "fs-a-1");
        assert_true(v[0].running);
        assert_string_equal(v[1].id, "aa");
        assert_false(v[1].running);
        free(v);
        assert_int_equal(dockerapi_parse_list(B(body), NULL, &v, &n), 0);
        assert_int_equal(n, 3);
        free(v);
        assert_int_equal(dockerapi_parse_list(B("[]"), "x", &v, &n), 0);
        assert_int_equal(n, 0);
        assert_null(v);
        assert_int_equal(dockerapi_parse_list(B("{}"), "x", &v, &n), -EBADMSG);
}

static void messages(void **state)
{
        char buf[64];

        assert_string_equal(dockerapi_error_message(B("{\"cause\":\"x\",\"message\":\"no such image: a\",\"response\":404}"),
                                                    buf, sizeof(buf)), "no such image: a");
        assert_string_equal(dockerapi_error_message(B("page not found\n"), buf, sizeof(buf)), "page not found");
        assert_string_equal(dockerapi_error_message(B("{\"message\":\"two\\nlines\\u0007\"}"), buf, sizeof(buf)),
                            "two lines");
        assert_string_equal(dockerapi_error_message(NULL, 0, buf, sizeof(buf)), "");
        char small[8];
        assert_string_equal(dockerapi_error_message(B("0123456789abc"), small, sizeof(small)), "0123456");

        const char *pull = "{\"status\":\"Trying to pull\"}\n"
                           "{\"error\":\"initializing source: no such host\",\"errorDetail\":{\"message\":\"m\"}}\n";
        assert_true(dockerapi_pull_error(B(pull), buf, sizeof(buf)));
        assert_string_equal(buf, "initializing source: no such host");
        assert_true(dockerapi_pull_error(B("{\"errorDetail\":{\"message\":\"denied\"}}"), buf, sizeof(buf)));
        assert_string_equal(buf, "denied");
        assert_false(dockerapi_pull_error(B("{\"status\":\"ok\"}\n{\"id\":\"x\"}\n"), buf, sizeof(buf)));
}

struct out {
        char so[256], se[256];
        size_t nso, nse;
        int calls;
        int abort_at;
};

static int on_frame(void *ud, int stream, const void *buf, size_t n)
{
        struct out *o = ud;

        o->calls++;
        if (o->abort_at && o->calls == o->abort_at)
                return -ECANCELED;
        char *dst = stream == 2 ? o->se : o->so;
        size_t *len = stream == 2 ? &o->nse : &o->nso;
        assert_true(*len + n < sizeof(o->so));
        memcpy(dst + *len, buf, n);
        *len += n;
        return 0;
}

/* Frames cut at every byte boundary come out whole and in order. */
static void demux_any_cut(void **state)
{
        static const unsigned char s[] = {
                1, 0, 0, 0, 0, 0, 0, 6, 'h', 'e', 'l', 'l', 'o', '\n',
                2, 0, 0, 0, 0, 0, 0, 4, 'e', 'r', 'r', '\n',
                1, 0, 0, 0, 0, 0, 0, 0,
                1, 0, 0, 0, 0, 0, 0, 3, 'b', 'y', 'e',
        };

        for (size_t cut1 = 0; cut1 <= sizeof(s); cut1++) {
                for (size_t cut2 = cut1; cut2 <= sizeof(s); cut2++) {
                        struct dockerapi_demux d = { 0 };
                        struct out o = { 0 };
                        assert_int_equal(dockerapi_demux_feed(&d, s, cut1, on_frame, &o), 0);
                        assert_int_equal(dockerapi_demux_feed(&d, s + cut1, cut2 - cut1, on_frame, &o), 0);
                        assert_int_equal(dockerapi_demux_feed(&d, s + cut2, sizeof(s) - cut2, on_frame, &o), 0);
                        o.so[o.nso] = o.se[o.nse] = '\0';
                        assert_string_equal(o.so, "hello\nbye");
                        assert_string_equal(o.se, "err\n");
                        assert_int_equal(d.left, 0);
                        assert_int_equal(d.hlen, 0);
                }
        }
}

static void demux_refuses_garbage(void **state)
{
        struct dockerapi_demux d = { 0 };
        struct out o = { 0 };

        /* A TTY stream is plain text. */
        assert_int_equal(dockerapi_demux_feed(&d, "hello world\n", 12, on_frame, &o), -EPROTO);
        memset(&d, 0, sizeof(d));
        static const unsigned char bad_pad[] = { 1, 0, 1, 0, 0, 0, 0, 1, 'x' };
        assert_int_equal(dockerapi_demux_feed(&d, bad_pad, sizeof(bad_pad), on_frame, &o), -EPROTO);
        memset(&d, 0, sizeof(d));
        static const unsigned char two[] = { 1, 0, 0, 0, 0, 0, 0, 1, 'a', 2, 0, 0, 0, 0, 0, 0, 1, 'b' };
        o.abort_at = 2;
        assert_int_equal(dockerapi_demux_feed(&d, two, sizeof(two), on_frame, &o), -ECANCELED);
        assert_int_equal(o.nso, 1);
}

static void escape(void **state)
{
        char buf[32];

        assert_int_equal(dockerapi_escape("localhost/img:1", buf, sizeof(buf)), 0);
        assert_string_equal(buf, "localhost%2Fimg%3A1");
        assert_int_equal(dockerapi_escape("{\"a\"}", buf, sizeof(buf)), 0);
        assert_string_equal(buf, "%7B%22a%22%7D");
        assert_int_equal(dockerapi_escape("abcdefghij", buf, 10), -ENAMETOOLONG);
        assert_int_equal(dockerapi_escape("abcdefghi", buf, 10), 0);
        assert_int_equal(dockerapi_escape("abcdefgh/", buf, 10), -ENAMETOOLONG);
}

/* 128+N is a signal only when the provider sent N or the engine says
 * OOMKilled; a worker's own `exit 137` stays a code. */
static void exit_rule(void **state)
{
        struct dockerapi_inspect in = { .exit_code = 143 };
        struct provider_exit e;
        bool oom = true;

        dockerapi_exit(&in, 1u << SIGTERM, &e, &oom);
        assert_int_equal(e.kind, PROVIDER_EXIT_SIGNAL);
        assert_int_equal(e.signal, SIGTERM);
        assert_false(oom);
        in.exit_code = 137;
        dockerapi_exit(&in, 1u << SIGTERM, &e, &oom);
        assert_int_equal(e.kind, PROVIDER_EXIT_CODE);
        assert_int_equal(e.code, 137);
        dockerapi_exit(&in, 1u << SIGTERM | 1u << SIGKILL, &e, &oom);
        assert_int_equal(e.kind, PROVIDER_EXIT_SIGNAL);
        assert_int_equal(e.signal, SIGKILL);
        in.oom_killed = true;
        dockerapi_exit(&in, 0, &e, &oom);
        assert_int_equal(e.kind, PROVIDER_EXIT_SIGNAL);
        assert_int_equal(e.signal, SIGKILL);
        assert_true(oom);
        in = (struct dockerapi_inspect){ .exit_code = 3 };
        dockerapi_exit(&in, 1u << SIGTERM, &e, &oom);
        assert_int_equal(e.kind, PROVIDER_EXIT_CODE);
        assert_int_equal(e.code, 3);
        in.exit_code = -1;
        dockerapi_exit(&in, 0, &e, &oom);
        assert_int_equal(e.kind, PROVIDER_EXIT_UNKNOWN);
}

static void classify(void **state)
{
        assert_int_equal(dockerapi_classify(-ECONNREFUSED, 0, NULL), PROVIDER_FAIL_UNREACHABLE);
        assert_int_equal(dockerapi_classify(0, 404, "localhost/x:1: image not known"), PROVIDER_FAIL_IMAGE);
        assert_int_equal(dockerapi_classify(0, 404, "no such container"), PROVIDER_FAIL_REJECTED);
        assert_int_equal(dockerapi_classify(0, 409, "name is already in use"), PROVIDER_FAIL_REJECTED);
        assert_int_equal(dockerapi_classify(0, 403, "disk quota exceeded"), PROVIDER_FAIL_QUOTA);
        assert_int_equal(dockerapi_classify(0, 500, "insufficient memory"), PROVIDER_FAIL_QUOTA);
        assert_int_equal(dockerapi_classify(0, 500, "OCI runtime error"), PROVIDER_FAIL_ENGINE);
}

int main(void)
{
        static const struct CMUnitTest tests[] = {
                cmocka_unit_test(create_body_has_everything),
                cmocka_unit_test(created_and_wait),
                cmocka_unit_test(inspect),
                cmocka_unit_test(list_filters_foreign),
                cmocka_unit_test(messages),
                cmocka_unit_test(demux_any_cut),
                cmocka_unit_test(demux_refuses_garbage),
                cmocka_unit_test(escape),
                cmocka_unit_test(exit_rule),
                cmocka_unit_test(classify),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
