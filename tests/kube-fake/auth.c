/* auth.c: kube-fake's authentication: the bearer token (re-read on every
 * request, so rotation takes effect at once), a client certificate signed
 * by --client-ca, and 401 Status objects for everything else; the harness's
 * kubeconfig and service-account folder carry working credentials. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "kfx.h"
#include "util/fsutil.h"

static void assert_unauthorized(const struct kubefake_resp *r)
{
        assert_int_equal(r->status, 401);
        assert_non_null(r->json);
        assert_string_equal(json_string_value(json_object_get(r->json, "kind")), "Status");
        assert_string_equal(json_string_value(json_object_get(r->json, "reason")), "Unauthorized");
        assert_int_equal(json_integer_value(json_object_get(r->json, "code")), 401);
}

static void token_accepted(void **state)
{
        struct kubefake_resp r;

        (void)state;
        assert_int_equal(kubefake_request(kfx, KUBEFAKE_AUTH_TOKEN, "GET", "/version", NULL, &r), 0);
        assert_int_equal(r.status, 200);
        assert_string_equal(json_string_value(json_object_get(r.json, "major")), "1");
        kubefake_resp_done(&r);
}

static void no_credentials_401(void **state)
{
        struct kubefake_resp r;

        (void)state;
        assert_int_equal(kubefake_request(kfx, KUBEFAKE_AUTH_NONE, "GET",
                                          "/api/v1/namespaces/default/secrets", NULL, &r), 0);
        assert_unauthorized(&r);
        kubefake_resp_done(&r);
}

static void wrong_token_401(void **state)
{
        struct kubefake_resp r;

        (void)state;
        assert_int_equal(kubefake_request_token(kfx, "not-the-token", "GET",
                                                "/apis/batch/v1/namespaces/default/jobs", NULL,
                                                &r), 0);
        assert_unauthorized(&r);
        kubefake_resp_done(&r);
}

static void rotated_token(void **state)
{
        struct kubefake_resp r;
        char old[256];

        (void)state;
        snprintf(old, sizeof(old), "%s", kubefake_token(kfx));
        assert_int_equal(kubefake_rotate_token(kfx, "rotated-token-2"), 0);
        assert_int_equal(kubefake_request_token(kfx, old, "GET", "/version", NULL, &r), 0);
        assert_unauthorized(&r);
        kubefake_resp_done(&r);
        assert_int_equal(kubefake_request(kfx, KUBEFAKE_AUTH_TOKEN, "GET", "/version", NULL, &r), 0);
        assert_int_equal(r.status, 200);
        kubefake_resp_done(&r);
        assert_int_equal(kubefake_rotate_token(kfx, old), 0);
}

static void client_certificate(void **state)
{
        struct kubefake_resp r;

        (void)state;
        assert_int_equal(kubefake_request(kfx, KUBEFAKE_AUTH_CERT, "GET",
                                          "/api/v1/namespaces/default/secrets", NULL, &r), 0);
        assert_int_equal(r.status, 200);
        assert_string_equal(json_string_value(json_object_get(r.json, "kind")), "SecretList");
        kubefake_resp_done(&r);
}

/* A certificate the CA did not sign is no credential. */
static void foreign_certificate_401(void **state)
{
        struct kubefake_opts o = { .no_client_ca = true };
        struct kubefake *other = NULL;
        struct kubefake_resp r;

        (void)state;
        /* Without --client-ca the same certificate is refused. */
        assert_int_equal(kubefake_start(&o, &other), 0);
        assert_int_equal(kubefake_request(other, KUBEFAKE_AUTH_CERT, "GET", "/version", NULL, &r),
                         0);
        assert_unauthorized(&r);
        kubefake_resp_done(&r);
        assert_int_equal(kubefake_stop(other), 0);
}

static void control_api_needs_no_auth(void **state)
{
        json_t *j = NULL;

        (void)state;
        assert_int_equal(kubefake_ctl(kfx, "GET", "stats", NULL, &j), 200);
        assert_true(json_is_object(json_object_get(j, "requests")));
        assert_true(json_is_array(json_object_get(j, "rejected")));
        assert_true(json_array_size(json_object_get(j, "rejected")) >= 1);
        json_decref(j);
}

static void kubeconfig_and_sa_dir(void **state)
{
        char path[512], *text = NULL, *tok = NULL;
        size_t len;
        struct stat st;

        (void)state;
        snprintf(path, sizeof(path), "%s/kubeconfig", kubefake_dir(kfx));
        assert_int_equal(kubefake_write_kubeconfig(kfx, path, false), 0);
        assert_int_equal(fs_read_file(path, 1 << 20, &text, &len), 0);
        assert_non_null(strstr(text, kubefake_url(kfx)));
        assert_non_null(strstr(text, "certificate-authority-data: "));
        assert_non_null(strstr(text, kubefake_token(kfx)));
        free(text);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        assert_int_equal(kubefake_write_kubeconfig(kfx, path, true), 0);
        assert_int_equal(fs_read_file(path, 1 << 20, &text, &len), 0);
        assert_non_null(strstr(text, "client-certificate-data: "));
        assert_non_null(strstr(text, "client-key-data: "));
        assert_null(strstr(text, "token:"));
        free(text);
        snprintf(path, sizeof(path), "%s/sa", kubefake_dir(kfx));
        assert_int_equal(kubefake_write_sa_dir(kfx, path), 0);
        snprintf(path, sizeof(path), "%s/sa/token", kubefake_dir(kfx));
        assert_int_equal(fs_read_file(path, 4096, &tok, &len), 0);
        assert_string_equal(tok, kubefake_token(kfx));
        free(tok);
        snprintf(path, sizeof(path), "%s/sa/namespace", kubefake_dir(kfx));
        assert_int_equal(fs_read_file(path, 4096, &tok, &len), 0);
        assert_string_equal(tok, "default");
        free(tok);
        snprintf(path, sizeof(path), "%s/sa/ca.crt", kubefake_dir(kfx));
        assert_int_equal(stat(path, &st), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(token_accepted),
                cmocka_unit_test(no_credentials_401),
                cmocka_unit_test(wrong_token_401),
                cmocka_unit_test(rotated_token),
                cmocka_unit_test(client_certificate),
                cmocka_unit_test(foreign_certificate_401),
                cmocka_unit_test(control_api_needs_no_auth),
                cmocka_unit_test(kubeconfig_and_sa_dir),
        };
        return cmocka_run_group_tests(tests, kfx_setup, kfx_teardown);
}
