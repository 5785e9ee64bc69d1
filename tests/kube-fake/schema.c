/* schema.c: the generated schema table (tools/kube-fake/schema_gen.c) is
 * closed and covers what the issue names: every type a field refers to is
 * in it, the roots and the types of Job, JobSpec, PodTemplateSpec, PodSpec,
 * Container, Volume, Secret and ObjectMeta, and of the validated-only
 * kinds (Deployment, Service, ConfigMap, PVC, ServiceAccount, Namespace,
 * Role, RoleBinding, NetworkPolicy) are present with their well-known
 * fields, and required flags came through. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "schema.h"

static void every_ref_resolves(void **state)
{
        (void)state;
        assert_true(kschema_ntypes > 50);
        for (size_t i = 0; i < kschema_ntypes; i++) {
                const struct kschema_type *t = &kschema_types[i];
                for (size_t f = 0; f < t->nfields; f++) {
                        const struct kschema_field *fd = &t->fields[f];
                        bool needs = fd->kind == KS_OBJECT || fd->elem == KS_OBJECT;
                        if (needs && (!fd->ref || !kschema_type(fd->ref)))
                                fail_msg("%s.%s names %s, not in the table", t->name, fd->name,
                                         fd->ref ? fd->ref : "(null)");
                        if ((fd->kind == KS_ARRAY || fd->kind == KS_MAP) && fd->elem == KS_NONE)
                                fail_msg("%s.%s: container without an element kind", t->name,
                                         fd->name);
                        if (f > 0 && strcmp(t->fields[f - 1].name, fd->name) >= 0)
                                fail_msg("%s: fields not sorted at %s", t->name, fd->name);
                }
        }
        assert_int_equal(strlen(kschema_k8s_commit), 40);
}

static void field(const char *type, const char *name, enum kschema_kind kind, bool required)
{
        const struct kschema_type *t = kschema_type(type);
        const struct kschema_field *f;

        if (!t)
                fail_msg("type %s missing", type);
        f = kschema_field(t, name);
        if (!f)
                fail_msg("%s.%s missing", type, name);
        assert_int_equal(f->kind, kind);
        assert_int_equal(f->required, required);
}

static void named_types_have_their_fields(void **state)
{
        (void)state;
        field("io.k8s.api.batch.v1.Job", "spec", KS_OBJECT, false);
        field("io.k8s.api.batch.v1.JobSpec", "template", KS_OBJECT, true);
        field("io.k8s.api.batch.v1.JobSpec", "backoffLimit", KS_INTEGER, false);
        field("io.k8s.api.batch.v1.JobSpec", "ttlSecondsAfterFinished", KS_INTEGER, false);
        field("io.k8s.api.batch.v1.JobSpec", "activeDeadlineSeconds", KS_INTEGER, false);
        field("io.k8s.api.core.v1.PodTemplateSpec", "spec", KS_OBJECT, false);
        field("io.k8s.api.core.v1.PodSpec", "containers", KS_ARRAY, true);
        field("io.k8s.api.core.v1.PodSpec", "restartPolicy", KS_STRING, false);
        field("io.k8s.api.core.v1.Container", "name", KS_STRING, true);
        field("io.k8s.api.core.v1.Container", "imagePullPolicy", KS_STRING, false);
        field("io.k8s.api.core.v1.Container", "command", KS_ARRAY, false);
        field("io.k8s.api.core.v1.Volume", "name", KS_STRING, true);
        field("io.k8s.api.core.v1.Volume", "secret", KS_OBJECT, false);
        field("io.k8s.api.core.v1.SecretVolumeSource", "defaultMode", KS_INTEGER, false);
        field("io.k8s.api.core.v1.Secret", "data", KS_MAP, false);
        field("io.k8s.api.core.v1.Secret", "stringData", KS_MAP, false);
        field("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "labels", KS_MAP, false);
        field("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "ownerReferences", KS_ARRAY,
              false);
        field("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "creationTimestamp", KS_TIME,
              false);
        field("io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference", "uid", KS_STRING, true);
        field("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions", "propagationPolicy",
              KS_STRING, false);
        field("io.k8s.api.core.v1.HTTPGetAction", "port", KS_INT_OR_STRING, true);
        /* The validated-only kinds of deploy/kubernetes/. */
        field("io.k8s.api.apps.v1.DeploymentSpec", "selector", KS_OBJECT, true);
        field("io.k8s.api.apps.v1.DeploymentSpec", "replicas", KS_INTEGER, false);
        field("io.k8s.api.core.v1.ServicePort", "targetPort", KS_INT_OR_STRING, false);
        field("io.k8s.api.core.v1.ConfigMap", "data", KS_MAP, false);
        field("io.k8s.api.core.v1.PersistentVolumeClaimSpec", "accessModes", KS_ARRAY, false);
        field("io.k8s.api.core.v1.ServiceAccount", "automountServiceAccountToken", KS_BOOLEAN,
              false);
        field("io.k8s.api.core.v1.Namespace", "spec", KS_OBJECT, false);
        field("io.k8s.api.rbac.v1.PolicyRule", "verbs", KS_ARRAY, true);
        field("io.k8s.api.rbac.v1.RoleBinding", "roleRef", KS_OBJECT, true);
        field("io.k8s.api.networking.v1.NetworkPolicySpec", "policyTypes", KS_ARRAY, false);
        const struct kschema_field *lim = kschema_field(
                kschema_type("io.k8s.api.core.v1.ResourceRequirements"), "limits");
        assert_non_null(lim);
        assert_int_equal(lim->kind, KS_MAP);
        assert_int_equal(lim->elem, KS_QUANTITY);
        assert_null(kschema_field(kschema_type("io.k8s.api.core.v1.Container"),
                                  "imagePullPolicyy"));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(every_ref_resolves),
                cmocka_unit_test(named_types_have_their_fields),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
