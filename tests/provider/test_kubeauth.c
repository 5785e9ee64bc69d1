/* test_kubeauth.c: kubeconfig variants (token, tokenFile, client
 * certificate as data or files, CA, insecure, contexts), the errors a
 * person gets for a bad one (file and field named), the in-cluster service
 * account and token rotation. Files only: no API server. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "provider/kubeauth.h"
#include "util/fsutil.h"

static char dir[64];

static void put(const char *name, const char *text)
{
        char p[256];

        snprintf(p, sizeof(p), "%s/%s", dir, name);
        assert_int_equal(fs_write_file_0600(p, text, strlen(text)), 0);
}

static int load(const char *text, const char *context, struct kubeauth **a, char *err, size_t n)
{
        char p[256];

        put("kubeconfig", text);
        snprintf(p, sizeof(p), "%s/kubeconfig", dir);
        return kubeauth_load_kubeconfig(p, context, a, err, n);
}

#define HEAD \
        "apiVersion: v1\nkind: Config\ncurrent-context: main\n" \
        "contexts:\n- name: main\n  context: {cluster: c1, user: u1, namespace: ci}\n" \
        "- name: other\n  context: {cluster: c2, user: u2}\n"

/* "-----BEGIN CERTIFICATE-----\nX\n" and a key, base64. */
#define CA_B64 "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tClgK"

static void token_and_ca_data(void **state)
{
        struct kubeauth *a = NULL;
        char err[256];

        assert_int_equal(load(HEAD "clusters:\n- name: c1\n  cluster:\n    server: https://127.0.0.1:6443/\n"
                              "    certificate-authority-data: " CA_B64 "\n"
                              "users:\n- name: u1\n  user: {token: abc.def}\n", NULL, &a, err, sizeof(err)), 0);
        assert_string_equal(a->server, "https://127.0.0.1:6443");
        assert_string_equal(a->token, "abc.def");
        assert_null(a->token_file);
        assert_string_equal(a->namespace, "ci");
        assert_int_equal(a->ca_pem_len, strlen("-----BEGIN CERTIFICATE-----\nX\n"));
        assert_memory_equal(a->ca_pem, "-----BEGIN CERTIFICATE-----\nX\n", a->ca_pem_len);
        assert_null(a->cert_pem);
        assert_false(a->insecure);
        kubeauth_free(a);
}

static void client_certificate_files_relative_and_context(void **state)
{
        struct kubeauth *a = NULL;
        char err[256];

        put("ca.pem", "CA\n");
        put("client.pem", "CERT\n");
        put("client.key", "KEY\n");
        assert_int_equal(load(HEAD "clusters:\n- name: c2\n  cluster:\n    server: https://[::1]:8443\n"
                              "    certificate-authority: ca.pem\n    insecure-skip-tls-verify: true\n"
                              "users:\n- name: u2\n  user:\n    client-certificate: client.pem\n"
                              "    client-key: client.key\n", "other", &a, err, sizeof(err)), 0);
        assert_string_equal(a->server, "https://[::1]:8443");
        assert_memory_equal(a->ca_pem, "CA\n", 3);
        assert_memory_equal(a->cert_pem, "CERT\n", 5);
        assert_memory_equal(a->key_pem, "KEY\n", 4);
        assert_true(a->insecure);
        assert_null(a->token);
        assert_null(a->namespace);
        kubeauth_free(a);
}

static void token_file_is_reread_when_it_changes(void **state)
{
        struct kubeauth *a = NULL;
        char err[256], p[256];

        put("tok", "first\n");
        assert_int_equal(load(HEAD "clusters:\n- name: c1\n  cluster: {server: \"https://h:1\"}\n"
                              "users:\n- name: u1\n  user: {tokenFile: tok}\n", NULL, &a, err, sizeof(err)), 0);
        assert_string_equal(a->token, "first");
        assert_int_equal(kubeauth_refresh(a, false), 0);
        /* A rotation: a new file (new inode) as the kubelet writes it. */
        snprintf(p, sizeof(p), "%s/tok", dir);
        put("tok.new", "second-longer\n");
        char np[256];
        snprintf(np, sizeof(np), "%s/tok.new", dir);
        assert_int_equal(rename(np, p), 0);
        assert_int_equal(kubeauth_refresh(a, false), 1);
        assert_string_equal(a->token, "second-longer");
        assert_int_equal(kubeauth_refresh(a, true), 0);         /* unchanged */
        unlink(p);
        assert_int_equal(kubeauth_refresh(a, false), -ENOENT);
        assert_string_equal(a->token, "second-longer");         /* kept */
        kubeauth_free(a);
}

static void bad_kubeconfigs_name_file_and_field(void **state)
{
        static const struct {
                const char *text, *context, *says;
        } cases[] = {
                { "[1, 2]\n", NULL, "not a YAML mapping" },
                { "clusters: []\n", NULL, "current-context is not set" },
                { HEAD, "nope", "contexts has no entry named \"nope\"" },
                { HEAD "clusters: []\n", NULL, "clusters has no entry named \"c1\"" },
                { HEAD "clusters:\n- name: c1\n  cluster: {server: \"http://h:1\"}\n", NULL,
                  "clusters[c1].cluster.server must be an https:// URL" },
                { HEAD "clusters:\n- name: c1\n  cluster: {server: \"https://h\", certificate-authority-data: \"!!!\"}\n", NULL,
                  "cluster.certificate-authority-data is not base64 PEM data" },
                { HEAD "clusters:\n- name: c1\n  cluster: {server: \"https://h\", certificate-authority: nofile.pem}\n", NULL,
                  "cluster.certificate-authority: cannot read" },
                { HEAD "clusters:\n- name: c1\n  cluster: {server: \"https://h\", insecure-skip-tls-verify: maybe}\n", NULL,
                  "insecure-skip-tls-verify must be true or false" },
                { HEAD "clusters:\n- name: c1\n  cluster: {server: \"https://h\"}\nusers: []\n", NULL,
                  "users has no entry named \"u1\"" },
                { HEAD "clusters:\n- name: c1\n  cluster: {server: \"https://h\"}\n"
                       "users:\n- name: u1\n  user: {exec: {command: aws}}\n", NULL, "exec or auth-provider" },
                { HEAD "clusters:\n- name: c1\n  cluster: {server: \"https://h\"}\n"
                       "users:\n- name: u1\n  user: {client-certificate-data: " CA_B64 "}\n", NULL,
                  "client certificate without its key" },
                { HEAD "clusters:\n- name: c1\n  cluster: {server: \"https://h\"}\n"
                       "users:\n- name: u1\n  user: {token: [a]}\n", NULL, "users[u1].user.token is not a string" },
                { "a: \"\xff\"\n", NULL, "not a YAML text file" },
        };

        for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
                struct kubeauth *a = NULL;
                char err[512] = "";
                int r = load(cases[k].text, cases[k].context, &a, err, sizeof(err));
                if (r >= 0 || !strstr(err, cases[k].says) || !strstr(err, dir))
                        fail_msg("case %zu: r=%d err=\"%s\", want \"%s\"", k, r, err, cases[k].says);
                assert_null(a);
        }
        struct kubeauth *a = NULL;
        char err[256];
        assert_int_equal(kubeauth_load_kubeconfig("/nonexistent/kc", NULL, &a, err, sizeof(err)), -ENOENT);
        assert_non_null(strstr(err, "/nonexistent/kc"));
}

static void in_cluster_service_account(void **state)
{
        char sa[128], err[256];
        struct kubeauth *a = NULL;

        snprintf(sa, sizeof(sa), "%s/sa", dir);
        assert_int_equal(mkdir(sa, 0700), 0);
        put("sa/token", "jwt.1\n");
        put("sa/ca.crt", "CA\n");
        put("sa/namespace", "runners");
        unsetenv("KUBERNETES_SERVICE_HOST");
        assert_int_equal(kubeauth_load_incluster(sa, &a, err, sizeof(err)), -ENOENT);
        assert_non_null(strstr(err, "KUBERNETES_SERVICE_HOST"));
        setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
        setenv("KUBERNETES_SERVICE_PORT", "443", 1);
        assert_int_equal(kubeauth_load_incluster(sa, &a, err, sizeof(err)), 0);
        assert_string_equal(a->server, "https://[fd00::1]:443");
        assert_string_equal(a->token, "jwt.1");
        assert_string_equal(a->namespace, "runners");
        assert_memory_equal(a->ca_pem, "CA\n", 3);
        put("sa/token", "jwt.2-rotated\n");
        assert_int_equal(kubeauth_refresh(a, false), 1);
        assert_string_equal(a->token, "jwt.2-rotated");
        kubeauth_free(a);

        setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1", 1);
        put("sa/token", "");
        a = NULL;
        assert_int_equal(kubeauth_load_incluster(sa, &a, err, sizeof(err)), -ENODATA);
        assert_non_null(strstr(err, "sa/token"));
        unsetenv("KUBERNETES_SERVICE_HOST");
        unsetenv("KUBERNETES_SERVICE_PORT");
}

static int setup(void **state)
{
        snprintf(dir, sizeof(dir), "/tmp/fs-kubeauth-XXXXXX");
        assert_non_null(mkdtemp(dir));
        return 0;
}

static int teardown(void **state)
{
        fs_rm_rf(dir);
        return 0;
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(token_and_ca_data, setup, teardown),
                cmocka_unit_test_setup_teardown(client_certificate_files_relative_and_context, setup, teardown),
                cmocka_unit_test_setup_teardown(token_file_is_reread_when_it_changes, setup, teardown),
                cmocka_unit_test_setup_teardown(bad_kubeconfigs_name_file_and_field, setup, teardown),
                cmocka_unit_test_setup_teardown(in_cluster_service_account, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
