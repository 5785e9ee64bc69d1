/* test_config.c: unit tests of the configuration module: pure helpers
 * (edit distance, suggestions, scopes, listen addresses, durations), the
 * typed result of parsing, error collection and caps, token loading, and a
 * deterministic mutation fuzz with a print/re-parse round trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "config/config.h"
#include "util/duration.h"
#include "util/fsutil.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef __SANITIZE_ADDRESS__
/* Freed memory sits in ASan's quarantine (256 MB by default) and would
 * count in the peak-memory bounds of test_nesting_memory; a small one keeps
 * use-after-free detection for recent frees. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
        return "quarantine_size_mb=8";
}
#endif

static const char full_cfg[] =
        "listen: 127.0.0.1:9464\n"
        "state_dir: ./forgescale-state\n"
        "log: {level: info, format: logfmt}\n"
        "forges:\n"
        "  main:\n"
        "    url: https://forgejo.example.org/\n"
        "    token_env: HOME\n"
        "    kind: forgejo\n"
        "    timeout: 10s\n"
        "  old:\n"
        "    url: http://127.0.0.1:3000\n"
        "    kind: gitea\n"
        "    token_env: HOME\n"
        "providers:\n"
        "  here: {type: local}\n"
        "  far: {type: ssh, max_instances: 3}\n"
        "pools:\n"
        "  linux:\n"
        "    forge: main\n"
        "    scope: org/acme\n"
        "    labels: [docker, ubuntu-latest]\n"
        "    mode: queue\n"
        "    provider: here\n"
        "    min_idle: 1\n"
        "    max_runners: 10\n"
        "    poll_interval: 2s\n"
        "    idle_timeout: 5m\n"
        "    bootstrap_timeout: 10m\n"
        "    runner:\n"
        "      command: [/usr/local/bin/forgejo-runner, -v]\n"
        "      env: {RUST_LOG: info}\n"
        "      label_scheme: host\n"
        "  legacy:\n"
        "    forge: old\n"
        "    provider: far\n"
        "    mode: broker\n"
        "    scope: repo/acme/web\n"
        "    labels: [gitea]\n";

static char *print_to_string(const struct config *cfg);

static struct config *parse_ok(const char *text)
{
        struct config *cfg = NULL;
        struct config_diag d = { 0 };
        int r = config_parse("t.yaml", text, strlen(text), NULL, &cfg, &d);

        for (size_t i = 0; i < d.n; i++)
                print_message("unexpected: %s\n", d.msgs[i].text);
        assert_int_equal(r, 0);
        assert_int_equal(d.n, 0);
        assert_non_null(cfg);
        config_diag_done(&d);
        return cfg;
}

static int parse_bad(const char *text, size_t len, struct config_diag *d)
{
        struct config *cfg = NULL;
        int r = config_parse("t.yaml", text, len, NULL, &cfg, d);

        assert_true(r < 0);
        assert_null(cfg);
        assert_true(d->n >= 1);
        return r;
}

static void test_levenshtein(void **state)
{
        assert_int_equal(config_levenshtein("kitten", "sitting"), 3);
        assert_int_equal(config_levenshtein("", "abc"), 3);
        assert_int_equal(config_levenshtein("abc", ""), 3);
        assert_int_equal(config_levenshtein("listen", "listen"), 0);
        assert_int_equal(config_levenshtein("listn", "listen"), 1);
        assert_int_equal(config_levenshtein("flaw", "lawn"), 2);
        assert_int_equal(config_levenshtein("lgo", "log"), 1);
        assert_int_equal(config_levenshtein("ab", "ba"), 1);
        assert_int_equal(config_levenshtein("ca", "abc"), 3);
        char big[80];
        memset(big, 'a', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        assert_true(config_levenshtein(big, "a") == SIZE_MAX);
}

static void test_suggest(void **state)
{
        static const char *const keys[] = { "listen", "state_dir", "log", "forges", "providers", "pools" };
        static const char *const modes[] = { "queue", "broker" };

        assert_string_equal(config_suggest("listn", keys, 6), "listen");
        assert_string_equal(config_suggest("forge", keys, 6), "forges");
        assert_string_equal(config_suggest("state-dir", keys, 6), "state_dir");
        assert_string_equal(config_suggest("lgo", keys, 6), "log");
        assert_null(config_suggest("color", keys, 6));
        assert_null(config_suggest("x", keys, 6));
        assert_string_equal(config_suggest("brokr", modes, 2), "broker");
        assert_null(config_suggest("push", modes, 2));
}

static void test_scope_parse(void **state)
{
        struct config_scope s;

        assert_int_equal(config_scope_parse("instance", &s), 0);
        assert_int_equal(s.kind, CONFIG_SCOPE_INSTANCE);
        assert_null(s.owner);
        config_scope_done(&s);

        assert_int_equal(config_scope_parse("user", &s), 0);
        assert_int_equal(s.kind, CONFIG_SCOPE_USER);
        config_scope_done(&s);

        assert_int_equal(config_scope_parse("org/acme-corp", &s), 0);
        assert_int_equal(s.kind, CONFIG_SCOPE_ORG);
        assert_string_equal(s.owner, "acme-corp");
        assert_null(s.repo);
        config_scope_done(&s);

        assert_int_equal(config_scope_parse("repo/acme/web.site_2", &s), 0);
        assert_int_equal(s.kind, CONFIG_SCOPE_REPO);
        assert_string_equal(s.owner, "acme");
        assert_string_equal(s.repo, "web.site_2");
        config_scope_done(&s);

        static const char *const bad[] = {
                "", "org", "org/", "orgs/acme", "org/a/b", "repo/acme", "repo/a/b/c",
                "repo//b", "user/bob", "instance/x", "Instance", "org/a b", "org/a%b", "/",
                "org/x/", "repo/a/",
                /* The daemon's forge client could not address these: one
                 * grammar for both (util/scope.h). */
                "org/.", "org/..", "repo/../x", "repo/a/..",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                s.kind = CONFIG_SCOPE_USER;
                s.owner = (char *)"untouched";
                assert_int_equal(config_scope_parse(bad[i], &s), -EINVAL);
                assert_string_equal(s.owner, "untouched");
        }
}

static void test_listen_parse(void **state)
{
        char *host = NULL;
        int port = -1;

        assert_int_equal(config_listen_parse("127.0.0.1:9464", &host, &port), 0);
        assert_string_equal(host, "127.0.0.1");
        assert_int_equal(port, 9464);
        free(host);
        assert_int_equal(config_listen_parse("[::1]:0", &host, &port), 0);
        assert_string_equal(host, "::1");
        assert_int_equal(port, 0);
        free(host);
        assert_int_equal(config_listen_parse("localhost:65535", &host, &port), 0);
        assert_int_equal(port, 65535);
        free(host);

        static const char *const bad[] = {
                "9464", ":9464", "127.0.0.1", "127.0.0.1:", "127.0.0.1:-1",
                "::1:9464", "[::1]9464", "[::1", "example.org:80", "1.2.3:80",
                "[127.0.0.1]:80", "127.0.0.1:+80", "127.0.0.1: 80",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                assert_int_equal(config_listen_parse(bad[i], &host, &port), -EINVAL);
        /* Out-of-range ports are told apart so the message can name them. */
        static const char *const range[] = {
                "127.0.0.1:65536", "127.0.0.1:99999", "127.0.0.1:123456", "[::1]:99999999999999999999",
        };
        for (size_t i = 0; i < sizeof(range) / sizeof(range[0]); i++)
                assert_int_equal(config_listen_parse(range[i], &host, &port), -ERANGE);
}

static void test_duration(void **state)
{
        int64_t ms = -1;
        char buf[32];

        assert_int_equal(duration_parse("2s", &ms), 0);
        assert_int_equal(ms, 2000);
        assert_int_equal(duration_parse("1h30m", &ms), 0);
        assert_int_equal(ms, 5400000);
        assert_int_equal(duration_parse("1500ms", &ms), 0);
        assert_int_equal(ms, 1500);
        assert_int_equal(duration_parse("0", &ms), 0);
        assert_int_equal(ms, 0);
        assert_int_equal(duration_parse("10", &ms), -EINVAL);
        assert_int_equal(duration_parse("-5m", &ms), -EINVAL);
        assert_int_equal(duration_parse("2 sec", &ms), -EINVAL);
        assert_int_equal(duration_parse("99999999999999999999d", &ms), -ERANGE);
        duration_format(5400000, buf, sizeof(buf));
        assert_string_equal(buf, "1h30m");
        duration_format(90000, buf, sizeof(buf));
        assert_string_equal(buf, "1m30s");
        duration_format(0, buf, sizeof(buf));
        assert_string_equal(buf, "0s");
}

static void test_defaults(void **state)
{
        struct config *cfg = parse_ok("forges: {main: {url: https://f.example.org, token_file: t}}\n"
                                      "pools: {linux: {scope: org/acme, labels: [docker]}}\n");

        assert_string_equal(cfg->listen, "127.0.0.1:9464");
        assert_string_equal(cfg->listen_host, "127.0.0.1");
        assert_int_equal(cfg->listen_port, 9464);
        assert_string_equal(cfg->state_dir, "./forgescale-state");
        assert_int_equal(cfg->log.level, LOG_INFO);
        assert_int_equal(cfg->log.format, LOG_FMT_LOGFMT);
        assert_int_equal(cfg->n_forges, 1);
        assert_int_equal(cfg->forges[0].kind, CONFIG_FORGE_FORGEJO);
        assert_int_equal(cfg->forges[0].timeout_ms, 10000);
        assert_false(cfg->forges[0].insecure_skip_verify);
        assert_null(cfg->forges[0].ca_file);
        assert_null(cfg->forges[0].token);
        assert_int_equal(cfg->n_providers, 1);
        assert_string_equal(cfg->providers[0].name, "local");
        assert_int_equal(cfg->providers[0].type, CONFIG_PROVIDER_LOCAL);
        assert_true(cfg->providers[0].implicit);
        assert_int_equal(cfg->providers[0].max_instances, 0);
        assert_int_equal(cfg->n_pools, 1);

        const struct config_pool *p = &cfg->pools[0];
        assert_string_equal(p->forge_name, "main");
        assert_string_equal(p->provider_name, "local");
        assert_ptr_equal(p->forge, &cfg->forges[0]);
        assert_ptr_equal(p->provider, &cfg->providers[0]);
        assert_int_equal(p->mode, CONFIG_MODE_QUEUE);
        assert_int_equal(p->min_idle, 0);
        assert_int_equal(p->max_runners, 10);
        assert_int_equal(p->poll_interval_ms, 2000);
        assert_int_equal(p->idle_timeout_ms, 300000);
        assert_int_equal(p->bootstrap_timeout_ms, 600000);
        assert_int_equal(p->scope.kind, CONFIG_SCOPE_ORG);
        assert_string_equal(p->scope.owner, "acme");
        assert_int_equal(p->runner.command.n, 1);
        assert_string_equal(p->runner.command.v[0], "forgejo-runner");
        assert_int_equal(p->runner.env.n, 0);
        assert_string_equal(p->runner.label_scheme, "host");
        assert_int_equal(p->pos.line, 2);
        assert_int_equal(p->pos.col, 9);
        config_free(cfg);
}

/* A listen address other people can reach is allowed, with a warning: the
 * call succeeds, the message is marked as a warning and is not an error. */
static void test_listen_warning(void **state)
{
        static const char *const public[] = { "0.0.0.0:9464", "[::]:9464", "192.0.2.7:80" };
        static const char *const loopback[] = { "127.0.0.1:0", "127.8.9.10:1", "[::1]:9", "localhost:9464",
                                                "[::ffff:127.0.0.1]:9" };
        char text[256];

        for (size_t i = 0; i < sizeof(public) / sizeof(public[0]); i++) {
                struct config *cfg = NULL;
                struct config_diag d = { 0 };
                snprintf(text, sizeof(text), "listen: \"%s\"\nforges: {m: {url: http://h, token_env: HOME}}\n"
                         "pools: {p: {scope: user, labels: [x]}}\n", public[i]);
                assert_int_equal(config_parse("t.yaml", text, strlen(text), NULL, &cfg, &d), 0);
                assert_non_null(cfg);
                assert_int_equal(d.n, 1);
                assert_true(d.msgs[0].warning);
                assert_int_equal(config_diag_errors(&d), 0);
                assert_non_null(strstr(d.msgs[0].text, "t.yaml:1:10: warning: listen \""));
                assert_non_null(strstr(d.msgs[0].text, "has no authentication"));
                config_diag_done(&d);
                config_free(cfg);
        }
        for (size_t i = 0; i < sizeof(loopback) / sizeof(loopback[0]); i++) {
                struct config *cfg = NULL;
                struct config_diag d = { 0 };
                snprintf(text, sizeof(text), "listen: \"%s\"\nforges: {m: {url: http://h, token_env: HOME}}\n"
                         "pools: {p: {scope: user, labels: [x]}}\n", loopback[i]);
                assert_int_equal(config_parse("t.yaml", text, strlen(text), NULL, &cfg, &d), 0);
                assert_int_equal(d.n, 0);
                config_free(cfg);
        }

        /* Warnings sort with errors by position, and only errors count. */
        static const char mixed[] = "listen: 0.0.0.0:1\nforges: {m: {url: ftp://h, token_env: HOME}}\n"
                                    "pools: {p: {scope: user, labels: [x]}}\n";
        struct config_diag d = { 0 };
        assert_int_equal(parse_bad(mixed, strlen(mixed), &d), -EINVAL);
        assert_int_equal(d.n, 2);
        assert_true(d.msgs[0].warning);
        assert_false(d.msgs[1].warning);
        assert_int_equal(config_diag_errors(&d), 1);
        config_diag_done(&d);
        assert_int_equal(config_diag_errors(NULL), 0);
}

/* Parses a configuration with one pool (mode broker when broker_pool), the
 * top-level listen and broker section given; returns the messages. */
static int parse_broker(const char *listen, const char *broker, bool broker_pool,
                        struct config **ret_cfg, struct config_diag *d)
{
        char text[1024];

        snprintf(text, sizeof(text),
                 "%s%s%s"
                 "forges: {m: {url: http://h, token_env: HOME}}\n"
                 "pools: {p: {scope: user, labels: [x]%s}}\n"
                 "%s%s",
                 listen ? "listen: \"" : "", listen ? listen : "", listen ? "\"\n" : "",
                 broker_pool ? ", mode: broker" : "",
                 broker ? "broker: " : "", broker ? broker : "");
        *ret_cfg = NULL;
        return config_parse("t.yaml", text, strlen(text), NULL, ret_cfg, d);
}

static void test_broker_defaults(void **state)
{
        struct config *cfg = parse_ok("forges: {main: {url: https://f.example.org, token_file: t}}\n"
                                      "pools: {linux: {scope: org/acme, labels: [docker]}}\n");
        const struct config_broker *b = &cfg->broker;

        assert_string_equal(b->listen, "127.0.0.1:9465");
        assert_string_equal(b->listen_host, "127.0.0.1");
        assert_int_equal(b->listen_port, 9465);
        assert_string_equal(b->url, "http://127.0.0.1:9465");
        assert_false(b->url_set);
        assert_int_equal(b->worker_retries, 2);
        assert_int_equal(b->codec, CONFIG_CODEC_PROTO);
        assert_false(b->used);
        assert_int_equal(b->pos.line, 0);
        assert_int_equal(b->listen_pos.line, 0);
        config_free(cfg);

        cfg = parse_ok(full_cfg);   /* its pool "legacy" has mode broker */
        assert_true(cfg->broker.used);
        config_free(cfg);
}

/* url is derived from listen when it is not written, except where workers
 * could not connect to that address (a wildcard) or its port is not known
 * before start (0). */
static void test_broker_url(void **state)
{
        static const struct { const char *broker, *url; bool set; } cases[] = {
                { "{listen: 127.0.0.1:9470}", "http://127.0.0.1:9470", false },
                { "{listen: \"[::1]:9470\"}", "http://[::1]:9470", false },
                { "{listen: localhost:9470}", "http://localhost:9470", false },
                { "{listen: \"[::ffff:127.0.0.1]:9470\"}", "http://[::ffff:127.0.0.1]:9470", false },
                { "{listen: 127.0.0.1:0}", NULL, false },
                { "{listen: 0.0.0.0:9470}", NULL, false },      /* no broker pool: no error */
                { "{listen: 127.0.0.1:0, url: HTTPS://w.example.org:8443/fs/}", "https://w.example.org:8443/fs", true },
                { "{url: http://10.1.2.3:9465}", "http://10.1.2.3:9465", true },
                { "{codec: json, worker_retries: 10}", "http://127.0.0.1:9465", false },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct config *cfg = NULL;
                struct config_diag d = { 0 };
                assert_int_equal(parse_broker(NULL, cases[i].broker, false, &cfg, &d), 0);
                if (d.n)
                        fail_msg("case %zu: %s", i, d.msgs[0].text);
                if (cases[i].url)
                        assert_string_equal(cfg->broker.url, cases[i].url);
                else
                        assert_null(cfg->broker.url);
                assert_int_equal(cfg->broker.url_set, cases[i].set);
                assert_int_equal(cfg->broker.pos.line, 3);
                assert_int_equal(cfg->broker.pos.col, 1);
                config_free(cfg);
        }
        struct config *cfg = NULL;
        struct config_diag d = { 0 };
        assert_int_equal(parse_broker(NULL, "{codec: json, worker_retries: 10, url: http://w:1}", true, &cfg, &d), 0);
        assert_int_equal(cfg->broker.codec, CONFIG_CODEC_JSON);
        assert_int_equal(cfg->broker.worker_retries, 10);
        assert_int_equal(cfg->broker.url_pos.line, 3);
        assert_int_equal(cfg->broker.url_pos.col, 48);
        config_free(cfg);
}

/* The rules of `check` for broker.listen, applied only when a pool has
 * mode broker: not listen's address, a wildcard needs url, and other than
 * loopback is a warning. */
static void test_broker_listen_rules(void **state)
{
        static const struct { const char *listen, *broker; int errors, warnings; const char *what; } cases[] = {
                /* The same address and port, however spelled. */
                { "127.0.0.1:9464", "{listen: 127.0.0.1:9464}", 1, 0, "would bind the same address and port" },
                { "localhost:9464", "{listen: 127.0.0.1:9464}", 1, 0, "would bind the same address and port" },
                { "[::ffff:127.0.0.1]:9464", "{listen: 127.0.0.1:9464}", 1, 0, "would bind the same address and port" },
                { "[0::1]:9464", "{listen: \"[::1]:9464\"}", 1, 0, "would bind the same address and port" },
                /* A wildcard covers every address of the port. */
                { "0.0.0.0:9464", "{listen: 127.0.0.1:9464}", 1, 1, "would bind the same address and port" },
                { NULL, "{listen: \"[::]:9464\", url: http://w:9464}", 1, 1, "would bind the same address and port" },
                /* The default broker.listen taken by listen: said at listen. */
                { "127.0.0.1:9465", NULL, 1, 0, "t.yaml:1:10: listen \"127.0.0.1:9465\" takes the address broker.listen defaults to" },
                /* Apart. */
                { "127.0.0.1:0", "{listen: 127.0.0.1:0}", 0, 0, NULL },
                { "127.0.0.2:9464", "{listen: 127.0.0.1:9464}", 0, 0, NULL },
                { "[::1]:9465", NULL, 0, 0, NULL },
                /* Wildcards need a url; anything not loopback warns. */
                { NULL, "{listen: 0.0.0.0:9465}", 1, 1, "t.yaml:3:18: broker.listen \"0.0.0.0:9465\" is every interface" },
                { NULL, "{listen: \"[::]:9465\"}", 1, 1, "is every interface" },
                { NULL, "{listen: \"[::ffff:0.0.0.0]:9465\"}", 1, 1, "is every interface" },
                { NULL, "{listen: 0.0.0.0:9465, url: http://192.0.2.1:9465}", 0, 1,
                  "t.yaml:3:18: warning: broker.listen \"0.0.0.0:9465\" is not a loopback address" },
                { NULL, "{listen: 192.0.2.1:9465}", 0, 1, "hands out tasks, with their secrets" },
                { NULL, "{listen: \"[::1]:9465\"}", 0, 0, NULL },
                { NULL, "{listen: localhost:9465}", 0, 0, NULL },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                for (int used = 0; used < 2; used++) {
                        struct config *cfg = NULL;
                        struct config_diag d = { 0 };
                        int r = parse_broker(cases[i].listen, cases[i].broker, used, &cfg, &d);
                        size_t errors = config_diag_errors(&d), warnings = d.n - errors;
                        bool found = !cases[i].what;
                        /* Without a broker pool only listen's own warning
                         * (a public listen) remains. */
                        size_t want_e = used ? (size_t)cases[i].errors : 0;
                        size_t want_w = used ? (size_t)cases[i].warnings : 0;
                        if (cases[i].listen && strncmp(cases[i].listen, "0.0.0.0", 7) == 0)
                                want_w += used ? 0 : 1;
                        for (size_t j = 0; j < d.n; j++)
                                if (cases[i].what && strstr(d.msgs[j].text, cases[i].what))
                                        found = true;
                        if (errors != want_e || warnings != want_w || (used && !found) ||
                            (r == 0) != (want_e == 0)) {
                                for (size_t j = 0; j < d.n; j++)
                                        print_message("  %s\n", d.msgs[j].text);
                                fail_msg("case %zu (used %d): %zu errors, %zu warnings, r %d", i, used,
                                         errors, warnings, r);
                        }
                        if (used && want_e)
                                for (size_t j = 0; j < d.n; j++)
                                        if (!d.msgs[j].warning)
                                                assert_non_null(strstr(d.msgs[j].text, "(pool \"p\" has mode broker)"));
                        config_diag_done(&d);
                        config_free(cfg);
                }
        }
}

static void test_broker_same(void **state)
{
        static const char *const variants[] = {
                "{listen: 127.0.0.1:9466}",
                "{url: http://127.0.0.1:9466}",
                "{worker_retries: 3}",
                "{codec: json}",
                "{listen: localhost:9465}",     /* the same socket, another text */
        };
        struct config *a = NULL, *b = NULL;
        struct config_diag d = { 0 };

        assert_int_equal(parse_broker(NULL, NULL, true, &a, &d), 0);
        /* Written out as the defaults are: the same. */
        assert_int_equal(parse_broker(NULL, "{listen: 127.0.0.1:9465, url: http://127.0.0.1:9465/,"
                                            " worker_retries: 2, codec: proto}", true, &b, &d), 0);
        assert_true(config_broker_same(&a->broker, &b->broker));
        assert_true(config_broker_same(&a->broker, &a->broker));
        config_free(b);
        for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
                assert_int_equal(parse_broker(NULL, variants[i], true, &b, &d), 0);
                if (config_broker_same(&a->broker, &b->broker))
                        fail_msg("variant %zu compares the same", i);
                config_free(b);
        }
        /* No pool of mode broker any more: the endpoint would go. */
        assert_int_equal(parse_broker(NULL, NULL, false, &b, &d), 0);
        assert_false(config_broker_same(&a->broker, &b->broker));
        config_free(b);
        config_free(a);
        config_diag_done(&d);
}

static void test_full(void **state)
{
        struct config *cfg = parse_ok(full_cfg);

        assert_int_equal(cfg->n_forges, 2);
        assert_string_equal(cfg->forges[0].url, "https://forgejo.example.org");
        assert_int_equal(cfg->forges[1].kind, CONFIG_FORGE_GITEA);
        assert_int_equal(cfg->n_providers, 2);
        assert_false(cfg->providers[0].implicit);
        assert_int_equal(cfg->providers[1].type, CONFIG_PROVIDER_SSH);
        assert_int_equal(cfg->providers[1].max_instances, 3);
        assert_int_equal(cfg->n_pools, 2);
        assert_ptr_equal(cfg->pools[1].forge, &cfg->forges[1]);
        assert_int_equal(cfg->pools[1].forge_idx, 1);
        assert_ptr_equal(cfg->pools[1].provider, &cfg->providers[1]);
        assert_int_equal(cfg->pools[1].provider_idx, 1);
        assert_int_equal(cfg->pools[1].mode, CONFIG_MODE_BROKER);
        assert_int_equal(cfg->pools[1].scope.kind, CONFIG_SCOPE_REPO);
        assert_string_equal(cfg->pools[1].scope.repo, "web");
        assert_int_equal(cfg->pools[0].labels.n, 2);
        assert_string_equal(cfg->pools[0].labels.v[1], "ubuntu-latest");
        assert_int_equal(cfg->pools[0].runner.command.n, 2);
        assert_string_equal(cfg->pools[0].runner.env.v[0].name, "RUST_LOG");
        assert_string_equal(cfg->pools[0].runner.env.v[0].value, "info");
        assert_int_equal(cfg->forges[0].token_pos.line, 7);
        assert_int_equal(cfg->forges[0].token_pos.col, 16);
        config_free(cfg);
}

static void test_names(void **state)
{
        assert_string_equal(config_provider_type_name(CONFIG_PROVIDER_LOCAL), "local");
        assert_string_equal(config_provider_type_name(CONFIG_PROVIDER_CONTAINER), "container");
        assert_string_equal(config_provider_type_name(CONFIG_PROVIDER_KUBERNETES), "kubernetes");
        assert_string_equal(config_provider_type_name(CONFIG_PROVIDER_SSH), "ssh");
        assert_string_equal(config_provider_type_name(CONFIG_PROVIDER_EXTERNAL), "external");
        assert_null(config_provider_type_name((enum config_provider_type)(CONFIG_PROVIDER_EXTERNAL + 1)));
        assert_null(config_provider_type_name((enum config_provider_type)-1));
        assert_string_equal(config_pool_mode_name(CONFIG_MODE_QUEUE), "queue");
        assert_string_equal(config_pool_mode_name(CONFIG_MODE_BROKER), "broker");
        assert_null(config_pool_mode_name((enum config_pool_mode)(CONFIG_MODE_BROKER + 1)));
}

/* stop_grace for every provider, user and group for local ones, with the
 * positions config_check_files and the daemon report at. */
static void test_provider_keys(void **state)
{
        static const char text[] =
                "forges: {m: {url: http://h, token_env: HOME}}\n"
                "providers:\n"
                "  here: {type: local, user: builder, group: \"100\", stop_grace: 1m}\n"
                "  far: {type: ssh}\n"
                "pools: {p: {provider: here, scope: user, labels: [x]}}\n";
        struct config *cfg = parse_ok(text);

        assert_int_equal(cfg->providers[0].stop_grace_ms, 60000);
        assert_string_equal(cfg->providers[0].local.user, "builder");
        assert_string_equal(cfg->providers[0].local.group, "100");
        assert_int_equal(cfg->providers[0].local.user_pos.line, 3);
        assert_int_equal(cfg->providers[0].local.user_pos.col, 29);
        assert_int_equal(cfg->providers[0].local.group_pos.col, 46);
        assert_int_equal(cfg->providers[0].type_pos.line, 3);
        assert_int_equal(cfg->providers[0].type_pos.col, 16);
        assert_int_equal(cfg->providers[1].stop_grace_ms, 10000);
        assert_null(cfg->providers[1].local.user);
        assert_int_equal(cfg->providers[1].local.user_pos.line, 0);
        assert_int_equal(cfg->pools[0].mode_pos.line, 0);
        char *printed = print_to_string(cfg);
        assert_non_null(strstr(printed, "  here:\n    type: local\n    stop_grace: 1m\n    user: builder\n    group: \"100\"\n"));
        assert_non_null(strstr(printed, "  far:\n    type: ssh\n    stop_grace: 10s\npools:"));
        free(printed);
        config_free(cfg);

        /* The implicit provider gets the default too. */
        cfg = parse_ok("forges: {m: {url: http://h, token_env: HOME}}\npools: {p: {scope: user, labels: [x], mode: queue}}\n");
        assert_int_equal(cfg->providers[0].stop_grace_ms, 10000);
        assert_int_equal(cfg->providers[0].type_pos.line, 0);
        assert_int_equal(cfg->pools[0].mode_pos.line, 2);
        assert_int_equal(cfg->pools[0].mode_pos.col, 45);
        assert_int_equal(cfg->providers[0].pos.line, 0);
        config_free(cfg);

        static const char ssh_user[] =
                "forges: {m: {url: http://h, token_env: HOME}}\n"
                "providers: {far: {type: ssh, group: g}}\n"
                "pools: {p: {scope: user, labels: [x]}}\n";
        struct config_diag d = { 0 };
        parse_bad(ssh_user, strlen(ssh_user), &d);
        assert_int_equal(d.n, 1);
        assert_string_equal(d.msgs[0].text, "t.yaml:2:30: provider \"far\": key \"group\" is only for providers of type local");
        config_diag_done(&d);
}

struct runnable_ud {
        int calls;
};

static bool only_local(enum config_provider_type t, void *ud)
{
        ((struct runnable_ud *)ud)->calls++;
        return t == CONFIG_PROVIDER_LOCAL;
}

static bool only_queue(enum config_pool_mode m, void *ud)
{
        ((struct runnable_ud *)ud)->calls++;
        return m == CONFIG_MODE_QUEUE;
}

static bool nothing_runs(enum config_pool_mode m, void *ud)
{
        return false;
}

static void test_check_runnable(void **state)
{
        struct config *cfg = parse_ok(full_cfg);
        struct config_diag d = { 0 };
        struct runnable_ud ud = { 0 };

        /* full_cfg: provider far is ssh, pool legacy is broker. */
        assert_int_equal(config_check_runnable(cfg, only_local, only_queue, &ud, &d), -EINVAL);
        assert_true(ud.calls > 0);
        assert_int_equal(d.n, 2);
        assert_string_equal(d.msgs[0].text, "t.yaml:16:15: provider \"far\": type ssh cannot run in this build of forgescale; types it can run: local");
        assert_string_equal(d.msgs[1].text, "t.yaml:36:11: pool \"legacy\": mode broker cannot run in this build of forgescale; modes it can run: queue");
        config_diag_done(&d);

        /* NULL callbacks: everything runs. */
        assert_int_equal(config_check_runnable(cfg, NULL, NULL, NULL, &d), 0);
        assert_int_equal(d.n, 0);
        config_free(cfg);

        /* A defaulted mode is reported at the pool, saying so. */
        cfg = parse_ok("forges: {m: {url: http://h, token_env: HOME}}\npools: {p: {scope: user, labels: [x]}}\n");
        assert_int_equal(config_check_runnable(cfg, only_local, nothing_runs, &ud, &d), -EINVAL);
        assert_int_equal(d.n, 1);
        assert_string_equal(d.msgs[0].text, "t.yaml:2:9: pool \"p\": mode queue (the default) cannot run in this build of forgescale; modes it can run: none");
        config_diag_done(&d);
        assert_int_equal(config_check_runnable(cfg, only_local, only_queue, &ud, &d), 0);
        config_free(cfg);
}

static void test_collects_every_error_sorted(void **state)
{
        static const char text[] =
                "pools:\n"
                "  p: {scope: nope, labels: [a], max_runners: -1}\n"
                "listn: x\n"
                "forges:\n"
                "  f: {url: ftp://x, token_file: t, kind: github}\n";
        struct config_diag d = { 0 };

        assert_int_equal(parse_bad(text, strlen(text), &d), -EINVAL);
        assert_int_equal(d.n, 5);
        assert_string_equal(d.msgs[0].text, "t.yaml:2:14: pool \"p\": scope \"nope\" is invalid; use instance, user, org/NAME or repo/OWNER/NAME");
        assert_string_equal(d.msgs[1].text, "t.yaml:2:46: pool \"p\": max_runners must be between 0 and 10000 (got -1)");
        assert_string_equal(d.msgs[2].text, "t.yaml:3:1: unknown key \"listn\" at top level; did you mean \"listen\"?");
        assert_string_equal(d.msgs[3].text, "t.yaml:5:12: forge \"f\": url \"ftp://x\" must start with http:// or https://");
        assert_string_equal(d.msgs[4].text, "t.yaml:5:42: forge \"f\": kind \"github\" is invalid; use forgejo or gitea");
        config_diag_done(&d);
        config_diag_done(&d); /* idempotent */
}

static bool diag_has(const struct config_diag *d, const char *needle)
{
        for (size_t i = 0; i < d->n; i++)
                if (strstr(d->msgs[i].text, needle))
                        return true;
        return false;
}

/* Long values in messages are cut with "..." and escaped; the worst case
 * (every byte escaped, cut at the boundary) must stay inside the buffer. */
static void test_message_value_cut(void **state)
{
        char text[400];
        struct config_diag d = { 0 };
        int o;

        for (int lead = 0; lead < 4; lead++) {
                o = snprintf(text, sizeof(text), "listen: '%.*s", lead, "aaaa");
                for (int i = 0; i < 120; i++)
                        text[o++] = '\\';
                o += snprintf(text + o, sizeof(text) - (size_t)o, "'\n");
                parse_bad(text, (size_t)o, &d);
                assert_true(diag_has(&d, "...\" is not a listen address"));
                config_diag_done(&d);
        }
        o = snprintf(text, sizeof(text), "listen: \"");
        for (int i = 0; i < 60; i++)
                o += snprintf(text + o, sizeof(text) - (size_t)o, "\\x01");
        o += snprintf(text + o, sizeof(text) - (size_t)o, "\"\n");
        parse_bad(text, (size_t)o, &d);
        assert_true(diag_has(&d, "listen \"\\x01\\x01"));
        config_diag_done(&d);
}

static void test_error_cap(void **state)
{
        size_t cap = 64 * 300 + 256, o = 0;
        char *text = malloc(cap);
        struct config_diag d = { 0 };

        assert_non_null(text);
        for (int i = 0; i < 300; i++)
                o += (size_t)snprintf(text + o, cap - o, "unknown_%d: 1\n", i);
        parse_bad(text, o, &d);
        /* CONFIG_MAX_ERRORS messages, then one summary line. */
        assert_int_equal(d.n, CONFIG_MAX_ERRORS + 1);
        assert_non_null(strstr(d.msgs[d.n - 1].text, "more errors not shown"));
        config_diag_done(&d);
        free(text);
}

static void test_size_cap(void **state)
{
        size_t n = CONFIG_MAX_FILE_SIZE + 1;
        char *text = malloc(n);
        struct config_diag d = { 0 };

        assert_non_null(text);
        memset(text, '#', n);
        assert_int_equal(parse_bad(text, n, &d), -EFBIG);
        assert_non_null(strstr(d.msgs[0].text, "larger than 1048576 bytes"));
        config_diag_done(&d);

        /* Just under the cap: a comment line padding a valid file parses. */
        static const char body[] = "\nforges: {m: {url: http://h, token_env: HOME}}\n"
                                   "pools: {p: {scope: user, labels: [x]}}\n";
        size_t pad = CONFIG_MAX_FILE_SIZE - sizeof(body) + 1;
        text[0] = '#';
        memset(text + 1, 'x', pad - 1);
        memcpy(text + pad, body, sizeof(body));
        struct config *cfg = NULL;
        assert_int_equal(strlen(text), CONFIG_MAX_FILE_SIZE);
        assert_int_equal(config_parse("t.yaml", text, strlen(text), NULL, &cfg, &d), 0);
        config_free(cfg);
        free(text);
}

static void test_deep_and_garbage(void **state)
{
        size_t n = 200000;
        char *text = malloc(n + 8);
        struct config_diag d = { 0 };

        assert_non_null(text);
        memcpy(text, "a: ", 3);
        memset(text + 3, '[', n);
        assert_int_equal(parse_bad(text, n + 3, &d), -EINVAL);
        assert_non_null(strstr(d.msgs[0].text, "deeper than 32 levels"));
        config_diag_done(&d);

        /* Block-style nesting: mappings of mappings. */
        size_t o = 0;
        for (int i = 0; i < 100 && o + 220 < n; i++) {
                memset(text + o, ' ', (size_t)i);
                o += (size_t)i;
                o += (size_t)snprintf(text + o, n - o, "k%d:\n", i);
        }
        parse_bad(text, o, &d);
        assert_non_null(strstr(d.msgs[0].text, "deeper than 32 levels"));
        config_diag_done(&d);

        static const char bin[] = "forges:\n  \x01\x02\x80\xff: x\n";
        parse_bad(bin, sizeof(bin) - 1, &d);
        assert_string_equal(d.msgs[0].text, "t.yaml:2:3: the file contains a control character; it is not a text file");
        config_diag_done(&d);

        static const char surrogate[] = "a: \xed\xa0\x80\n";
        parse_bad(surrogate, sizeof(surrogate) - 1, &d);
        assert_string_equal(d.msgs[0].text, "t.yaml:1:4: the file is not valid UTF-8 text");
        config_diag_done(&d);

        /* Hangs libfyaml 0.7.12 unless refused before parsing. */
        static const char directive[] = "%\x89\x86\xfa\xaf\n";
        parse_bad(directive, sizeof(directive) - 1, &d);
        config_diag_done(&d);

        /* Crashes libfyaml 0.7.12 (in fy_parser_destroy) unless refused
         * before parsing: a block explicit key whose value is a tab and a
         * block scalar. */
        static const char *const explicit_keys[] = {
                "? s:\t>", "- ? s:\t|", "a:\n  - b: c\n    ? s: \t>", "--- ? s:\t>",
                "\xef\xbb\xbf? -: \t|-\n#c\n>\n",
                ": ? \xc3\xa9" "forges:\t|-\n", "- : ? ? listen:\t>\n",
        };
        for (size_t i = 0; i < sizeof(explicit_keys) / sizeof(explicit_keys[0]); i++) {
                parse_bad(explicit_keys[i], strlen(explicit_keys[i]), &d);
                assert_true(diag_has(&d, "explicit mapping keys"));
                config_diag_done(&d);
        }

        parse_bad("", 0, &d);
        assert_string_equal(d.msgs[0].text, "t.yaml: the configuration is empty; it needs at least forges and pools");
        config_diag_done(&d);
        free(text);
}

/* Peak memory (KiB) that parsing text adds, measured in a child process so
 * that the peak is this parse's alone; *ret_ok says whether the parse
 * failed with -EINVAL and a message containing want. */
static long parse_peak_kib(const char *text, size_t len, const char *want, bool *ret_ok)
{
        int fds[2], status;
        long res[2] = { -1, 0 };
        pid_t pid;

        assert_int_equal(pipe(fds), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                struct rusage before, after;
                struct config *cfg = NULL;
                struct config_diag d = { 0 };
                int r;

                close(fds[0]);
                getrusage(RUSAGE_SELF, &before);
                r = config_parse("t.yaml", text, len, NULL, &cfg, &d);
                getrusage(RUSAGE_SELF, &after);
                res[0] = after.ru_maxrss - before.ru_maxrss;
                res[1] = r == -EINVAL && d.n > 0 && strstr(d.msgs[0].text, want) != NULL;
                if (!res[1] && d.n > 0)
                        fprintf(stderr, "first message: %s\n", d.msgs[0].text);
                if (write(fds[1], res, sizeof(res)) != (ssize_t)sizeof(res))
                        _exit(2);
                _exit(0);
        }
        close(fds[1]);
        assert_int_equal(read(fds[0], res, sizeof(res)), (ssize_t)sizeof(res));
        close(fds[0]);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        *ret_ok = res[1] != 0;
        return res[0];
}

/* A 1 MiB file of unclosed '[' (or '{') made libfyaml hold ~300 MB of
 * tokens before the first event, so before any nesting check could run.
 * The input is now fed in chunks and cut once the nesting is known to be
 * too deep; a whole-line flow collection is cut at a larger look-ahead.
 * Bounds leave room for sanitizer builds: every pattern cost 35-300 MB. */
static void test_nesting_memory(void **state)
{
        static const struct {
                const char *unit, *prefix, *want;
                long max_kib;
                const char *suffix;
        } cases[] = {
                { .unit = "[\n", .prefix = "", .want = "deeper than 32 levels", .max_kib = 32 << 10 },
                { .unit = "[ ", .prefix = "", .want = "deeper than 32 levels", .max_kib = 32 << 10 },
                { .unit = "[", .prefix = "a: ", .want = "deeper than 32 levels", .max_kib = 32 << 10 },
                { .unit = "{\n", .prefix = "", .want = "deeper than 32 levels", .max_kib = 32 << 10 },
                { .unit = "{a: ", .prefix = "", .want = "deeper than 32 levels", .max_kib = 32 << 10 },
                { .unit = "&x [\n", .prefix = "", .want = "deeper than 32 levels", .max_kib = 32 << 10 },
                { .unit = "- [", .prefix = "", .want = "deeper than 32 levels", .max_kib = 32 << 10 },
                { .unit = "{a: b},", .prefix = "[", .want = "is too long to parse", .max_kib = 64 << 10 },
                { .unit = "x,", .prefix = "[", .want = "is too long to parse", .max_kib = 64 << 10 },
                /* Not a look-ahead problem: items past MAX_ITEMS are not kept. */
                { .unit = " x,\n", .prefix = "a: [\n", .want = "unknown key \"a\" at top level", .max_kib = 24 << 10, .suffix = " ]\n" },
                { .unit = " - x\n", .prefix = "a:\n", .want = "unknown key \"a\" at top level", .max_kib = 24 << 10 },
        };
        size_t cap = CONFIG_MAX_FILE_SIZE;
        char *text = malloc(cap);

        assert_non_null(text);
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                const char *sfx = cases[i].suffix ? cases[i].suffix : "";
                size_t ul = strlen(cases[i].unit), o = strlen(cases[i].prefix), sl = strlen(sfx);
                bool ok = false;
                long kib;

                memcpy(text, cases[i].prefix, o);
                while (o + ul + sl <= cap) {
                        memcpy(text + o, cases[i].unit, ul);
                        o += ul;
                }
                memcpy(text + o, sfx, sl);
                o += sl;
                kib = parse_peak_kib(text, o, cases[i].want, &ok);
                print_message("case %zu (%zu bytes): peak +%ld KiB\n", i, o, kib);
                assert_true(ok);
                assert_true(kib < cases[i].max_kib);
        }

        /* Minified JSON is one long line that libfyaml reads whole before
         * its first event; ~110 KiB of it must still parse. */
        size_t o = (size_t)snprintf(text, cap, "{\"forges\": {\"m\": {\"url\": \"http://h\", \"token_env\": \"HOME\"}}, \"pools\": {");
        for (int i = 0; i < 1000; i++)
                o += (size_t)snprintf(text + o, cap - o,
                                      "%s\"p%d\": {\"scope\": \"user\", \"labels\": [\"x\"], \"runner\": {\"env\": {\"A\": \"%048d\"}}}",
                                      i ? ", " : "", i, i);
        o += (size_t)snprintf(text + o, cap - o, "}}");
        assert_true(o > 100 * 1024);
        struct config *cfg = parse_ok(text);
        assert_int_equal(cfg->n_pools, 1000);
        config_free(cfg);
        free(text);
}

static char *print_to_string(const struct config *cfg)
{
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);

        assert_non_null(f);
        assert_int_equal(config_print(cfg, f), 0);
        fclose(f);
        return buf;
}

static unsigned long long rng_state;

static unsigned rnd(void)
{
        rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
        return (unsigned)(rng_state >> 33);
}

/* Mutates the full configuration thousands of times. Whatever the input,
 * parsing returns 0 or -EINVAL with messages; whenever it succeeds, the
 * printed configuration parses again and prints identically. ASan/UBSan
 * builds turn any memory error or leak into a failure. */
static void test_fuzz_round_trip(void **state)
{
        static const char alphabet[] = "%-:[]{}#&*!|>'\"\n \t,?@`~\\0123abcz\xc3\xa9";
        size_t base = sizeof(full_cfg) - 1;
        char *buf = malloc(base * 2 + 64);
        int ok = 0, bad = 0;

        assert_non_null(buf);
        rng_state = 42;
        for (int it = 0; it < 4000; it++) {
                size_t n = base;
                struct config *cfg = NULL;
                struct config_diag d = { 0 };
                int muts = 1 + (int)(rnd() % 4), r;

                memcpy(buf, full_cfg, base);
                for (int m = 0; m < muts; m++) {
                        size_t pos = rnd() % n, l;
                        switch (rnd() % 5) {
                        case 0:
                                buf[pos] = alphabet[rnd() % (sizeof(alphabet) - 1)];
                                break;
                        case 1:
                                memmove(buf + pos + 1, buf + pos, n - pos);
                                buf[pos] = alphabet[rnd() % (sizeof(alphabet) - 1)];
                                n++;
                                break;
                        case 2:
                                l = rnd() % 16;
                                if (pos + l > n)
                                        l = n - pos;
                                memmove(buf + pos, buf + pos + l, n - pos - l);
                                n -= l;
                                break;
                        case 3:
                                l = rnd() % 16;
                                if (pos + l > n)
                                        l = n - pos;
                                if (n + l <= base * 2) {
                                        memmove(buf + pos + l, buf + pos, n - pos);
                                        n += l;
                                }
                                break;
                        default:
                                buf[pos] = (char)(rnd() & 0xff);
                                break;
                        }
                        if (n == 0)
                                break;
                }
                r = config_parse("f.yaml", buf, n, NULL, &cfg, &d);
                if (r == 0) {
                        char *p1 = print_to_string(cfg), *p2;
                        struct config *cfg2 = NULL;
                        struct config_diag d2 = { 0 };
                        int r2 = config_parse("p.yaml", p1, strlen(p1), NULL, &cfg2, &d2);
                        if (r2 != 0) {
                                print_message("input:\n%.*s\nprinted:\n%s\n", (int)n, buf, p1);
                                for (size_t i = 0; i < d2.n; i++)
                                        print_message("%s\n", d2.msgs[i].text);
                        }
                        assert_int_equal(r2, 0);
                        p2 = print_to_string(cfg2);
                        assert_string_equal(p1, p2);
                        free(p1);
                        free(p2);
                        config_free(cfg2);
                        config_free(cfg);
                        ok++;
                } else {
                        assert_int_equal(r, -EINVAL);
                        assert_true(d.n >= 1);
                        assert_null(cfg);
                        bad++;
                }
                config_diag_done(&d);
        }
        /* The mutations must exercise both outcomes. */
        assert_true(ok > 100);
        assert_true(bad > 1000);
        free(buf);
}

static void test_tokens(void **state)
{
        char dir[] = "cfgtest-XXXXXX", path[64], cfgpath[64], out[256];
        struct config *cfg = NULL;
        struct config_diag d = { 0 };
        const char *text;
        FILE *f;

        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/token", dir);
        assert_int_equal(fs_write_file_0600(path, "tok-0123456789abcdef\n", 21), 0);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);

        snprintf(cfgpath, sizeof(cfgpath), "%s/c.yaml", dir);
        text = "forges:\n"
               "  a: {url: http://127.0.0.1:1, token_file: token}\n"
               "  b: {url: http://127.0.0.1:2, token_env: FS_UNIT_TOKEN}\n"
               "pools: {p: {forge: a, scope: user, labels: [x]}}\n";
        f = fopen(cfgpath, "w");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);

        assert_int_equal(config_load(cfgpath, &cfg, &d), 0);
        /* Relative paths are resolved against the configuration's folder. */
        assert_string_equal(cfg->forges[0].token_file, "token");
        assert_string_equal(cfg->forges[0].token_path, path);
        assert_string_equal(cfg->dir, dir);

        unsetenv("FS_UNIT_TOKEN");
        assert_int_equal(config_check_files(cfg, &d), -EINVAL);
        assert_int_equal(d.n, 1);
        snprintf(out, sizeof(out), "%s:3:43: forge \"b\": token_env: environment variable \"FS_UNIT_TOKEN\" is not set",
                 cfgpath);
        assert_string_equal(d.msgs[0].text, out);
        config_diag_done(&d);
        assert_int_equal(config_load_tokens(cfg, &d), -EINVAL);
        assert_null(cfg->forges[0].token);   /* nothing kept on failure */
        config_diag_done(&d);

        setenv("FS_UNIT_TOKEN", "env-secret-value", 1);
        assert_int_equal(config_check_files(cfg, &d), 0);
        assert_null(cfg->forges[0].token);   /* check reads and discards */
        assert_int_equal(config_load_tokens(cfg, &d), 0);
        assert_int_equal(d.n, 0);
        assert_string_equal(cfg->forges[0].token, "tok-0123456789abcdef");
        assert_string_equal(cfg->forges[1].token, "env-secret-value");

        /* Loaded tokens are redacted from logs, and never printed. */
        log_redact("token=tok-0123456789abcdef", out, sizeof(out));
        assert_string_equal(out, "token=[REDACTED]");
        char *printed = print_to_string(cfg);
        assert_null(strstr(printed, "tok-0123456789abcdef"));
        assert_null(strstr(printed, "env-secret-value"));
        assert_non_null(strstr(printed, "token_file: token"));
        assert_non_null(strstr(printed, "token_env: FS_UNIT_TOKEN"));
        free(printed);
        config_free(cfg);
        config_free(NULL);
        unsetenv("FS_UNIT_TOKEN");
        log_redact_clear();

        /* A missing file is reported with its errno text. */
        unlink(path);
        cfg = NULL;
        assert_int_equal(config_load(cfgpath, &cfg, &d), 0);
        setenv("FS_UNIT_TOKEN", "env-secret-value", 1);
        assert_int_equal(config_check_files(cfg, &d), -EINVAL);
        snprintf(out, sizeof(out), "%s:2:44: forge \"a\": token_file \"token\": No such file or directory", cfgpath);
        assert_string_equal(d.msgs[0].text, out);
        config_diag_done(&d);
        config_free(cfg);
        unsetenv("FS_UNIT_TOKEN");
        log_redact_clear();

        unlink(cfgpath);
        rmdir(dir);

        assert_int_equal(config_load("does/not/exist.yaml", &cfg, &d), -ENOENT);
        assert_string_equal(d.msgs[0].text, "does/not/exist.yaml: cannot read the configuration: No such file or directory");
        config_diag_done(&d);
}

/* What run loads goes through the same rules as check: a token file other
 * users can read loads with a warning; one anyone can write, a FIFO (which
 * must not block) or one with a NUL byte is refused and no token is kept. */
static void test_token_file_rules(void **state)
{
        char dir[] = "cfgtest-XXXXXX", path[64], cfgpath[64];
        struct config *cfg = NULL;
        struct config_diag d = { 0 };
        FILE *f;

        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/token", dir);
        snprintf(cfgpath, sizeof(cfgpath), "%s/c.yaml", dir);
        f = fopen(cfgpath, "w");
        assert_non_null(f);
        fputs("forges: {a: {url: http://127.0.0.1:1, token_file: token}}\n"
              "pools: {p: {scope: user, labels: [x]}}\n", f);
        fclose(f);
        assert_int_equal(config_load(cfgpath, &cfg, &d), 0);

        assert_int_equal(fs_write_file_0600(path, "tok-shared-0123\n", 16), 0);
        assert_int_equal(chmod(path, 0640), 0);
        assert_int_equal(config_load_tokens(cfg, &d), 0);
        assert_string_equal(cfg->forges[0].token, "tok-shared-0123");
        assert_int_equal(d.n, 1);
        assert_true(d.msgs[0].warning);
        assert_non_null(strstr(d.msgs[0].text, "warning: forge \"a\": token_file \"token\" can be read by other users (mode 0640)"));
        config_diag_done(&d);

        assert_int_equal(chmod(path, 0602), 0);
        assert_int_equal(config_load_tokens(cfg, &d), -EINVAL);
        assert_null(cfg->forges[0].token);
        assert_int_equal(config_diag_errors(&d), 1);
        assert_non_null(strstr(d.msgs[0].text, "is writable by every user (mode 0602)"));
        config_diag_done(&d);

        assert_int_equal(fs_write_file_0600(path, "tok\0tail\n", 9), 0);
        assert_int_equal(config_load_tokens(cfg, &d), -EINVAL);
        assert_non_null(strstr(d.msgs[0].text, "contains a NUL byte"));
        config_diag_done(&d);

        /* A FIFO without a writer: refused at once instead of blocking. */
        assert_int_equal(unlink(path), 0);
        assert_int_equal(mkfifo(path, 0600), 0);
        alarm(10);
        assert_int_equal(config_check_files(cfg, &d), -EINVAL);
        assert_int_equal(config_load_tokens(cfg, &d), -EINVAL);
        alarm(0);
        assert_non_null(strstr(d.msgs[0].text, "token_file \"token\" is a FIFO, not a regular file"));
        config_diag_done(&d);

        config_free(cfg);
        log_redact_clear();
        unlink(path);
        unlink(cfgpath);
        rmdir(dir);
}

/* The check the daemon repeats once state_dir exists: a missing folder
 * passes (it will be created 0700), one every user can write does not,
 * sticky bit or not, and neither does a file. */
static void test_state_dir(void **state)
{
        char dir[] = "cfgtest-XXXXXX", sd[64], text[256];
        struct config *cfg = NULL;
        struct config_diag d = { 0 };

        assert_non_null(mkdtemp(dir));
        snprintf(sd, sizeof(sd), "%s/state", dir);
        snprintf(text, sizeof(text), "state_dir: %s\nforges: {m: {url: http://h, token_env: HOME}}\n"
                 "pools: {p: {scope: user, labels: [x]}}\n", sd);
        cfg = parse_ok(text);
        assert_int_equal(cfg->state_pos.line, 1);
        assert_int_equal(cfg->state_pos.col, 12);

        assert_int_equal(config_check_state_dir(cfg, &d), 0);
        assert_int_equal(mkdir(sd, 0700), 0);
        assert_int_equal(config_check_state_dir(cfg, &d), 0);
        assert_int_equal(d.n, 0);

        static const mode_t open_modes[] = { 0777, 01777, 0703 };
        for (size_t i = 0; i < sizeof(open_modes) / sizeof(open_modes[0]); i++) {
                assert_int_equal(chmod(sd, open_modes[i]), 0);
                assert_int_equal(config_check_state_dir(cfg, &d), -EINVAL);
                assert_int_equal(d.n, 1);
                assert_non_null(strstr(d.msgs[0].text, "t.yaml:1:12: state_dir \""));
                assert_non_null(strstr(d.msgs[0].text, "is writable by every user"));
                config_diag_done(&d);
                assert_int_equal(config_check_files(cfg, &d), -EINVAL);
                assert_true(diag_has(&d, "is writable by every user"));
                config_diag_done(&d);
        }
        assert_int_equal(rmdir(sd), 0);

        FILE *f = fopen(sd, "w");
        assert_non_null(f);
        fclose(f);
        assert_int_equal(config_check_state_dir(cfg, &d), -EINVAL);
        assert_non_null(strstr(d.msgs[0].text, "is not a folder"));
        config_diag_done(&d);

        config_free(cfg);
        log_redact_clear();
        unlink(sd);
        rmdir(dir);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_levenshtein),
                cmocka_unit_test(test_suggest),
                cmocka_unit_test(test_scope_parse),
                cmocka_unit_test(test_listen_parse),
                cmocka_unit_test(test_duration),
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_listen_warning),
                cmocka_unit_test(test_broker_defaults),
                cmocka_unit_test(test_broker_url),
                cmocka_unit_test(test_broker_listen_rules),
                cmocka_unit_test(test_broker_same),
                cmocka_unit_test(test_full),
                cmocka_unit_test(test_names),
                cmocka_unit_test(test_provider_keys),
                cmocka_unit_test(test_check_runnable),
                cmocka_unit_test(test_collects_every_error_sorted),
                cmocka_unit_test(test_message_value_cut),
                cmocka_unit_test(test_error_cap),
                cmocka_unit_test(test_size_cap),
                cmocka_unit_test(test_deep_and_garbage),
                cmocka_unit_test(test_nesting_memory),
                cmocka_unit_test(test_fuzz_round_trip),
                cmocka_unit_test(test_tokens),
                cmocka_unit_test(test_token_file_rules),
                cmocka_unit_test(test_state_dir),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
