#!/usr/bin/env python3
# gen-schema.py: turns the Kubernetes OpenAPI component schemas reachable
# from the kinds kube-fake accepts (batch/v1 Job, core/v1 Secret and
# meta/v1 DeleteOptions; the validated-only kinds of deploy/kubernetes/:
# apps/v1 Deployment, core/v1 Namespace, ServiceAccount, ConfigMap, Service,
# PersistentVolumeClaim, rbac/v1 Role, RoleBinding, networking/v1
# NetworkPolicy) into the C table schema_gen.c that kube-fake validates
# every request body against.
# Reads either the OpenAPI v3 files of kubernetes/kubernetes
# (api/openapi-spec/v3/*.json, "components.schemas", refs wrapped in allOf)
# or the swagger 2.0 file (api/openapi-spec/swagger.json, "definitions").
# Stdlib only; never run by the build or CI (no network there): run it by
# hand and commit its output.
#
#   gen-schema.py --commit <kubernetes commit> --source "<where>" SPEC.json... > schema_gen.c
import argparse
import json
import sys

ROOTS = [
    "io.k8s.api.batch.v1.Job",
    "io.k8s.api.core.v1.Secret",
    "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
    "io.k8s.api.core.v1.Namespace",
    "io.k8s.api.core.v1.ServiceAccount",
    "io.k8s.api.core.v1.ConfigMap",
    "io.k8s.api.core.v1.Service",
    "io.k8s.api.core.v1.PersistentVolumeClaim",
    "io.k8s.api.apps.v1.Deployment",
    "io.k8s.api.rbac.v1.Role",
    "io.k8s.api.rbac.v1.RoleBinding",
    "io.k8s.api.networking.v1.NetworkPolicy",
]

# Types whose JSON form is not what their "type" says.
SPECIAL = {
    "io.k8s.apimachinery.pkg.api.resource.Quantity": "KS_QUANTITY",
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": "KS_INT_OR_STRING",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Time": "KS_TIME",
    "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime": "KS_TIME",
    # Free-form JSON (managedFields' fieldsV1): any object.
    "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1": "KS_ANY_OBJECT",
}

SCALARS = {"string": "KS_STRING", "integer": "KS_INTEGER", "number": "KS_NUMBER",
           "boolean": "KS_BOOLEAN"}


def load(paths):
    schemas = {}
    for p in paths:
        with open(p, encoding="utf-8") as f:
            d = json.load(f)
        s = d.get("components", {}).get("schemas") or d.get("definitions") or {}
        schemas.update(s)
    return schemas


def ref_of(prop):
    if "$ref" in prop:
        return prop["$ref"].rsplit("/", 1)[-1]
    for a in prop.get("allOf", []):
        if "$ref" in a:
            return a["$ref"].rsplit("/", 1)[-1]
    return None


class Gen:
    def __init__(self, schemas):
        self.s = schemas
        self.types = []          # ordered names of object types to emit
        self.seen = set()

    # A property's kind: (kind, element kind or None, ref type or None)
    def kind(self, prop, where):
        r = ref_of(prop)
        if r:
            if r in SPECIAL:
                return SPECIAL[r], None
            t = self.s.get(r)
            if t is None:
                sys.exit(f"{where}: unknown ref {r}")
            if t.get("type") == "object" or "properties" in t:
                self.want(r)
                return "KS_OBJECT", r
            if t.get("type") in SCALARS:
                return SCALARS[t["type"]], None
            sys.exit(f"{where}: cannot map ref {r}")
        t = prop.get("type")
        if t in SCALARS:
            if prop.get("format") == "int-or-string":
                return "KS_INT_OR_STRING", None
            return SCALARS[t], None
        if t == "array":
            k, r2 = self.kind(prop["items"], where + "[]")
            return ("KS_ARRAY", (k, r2))
        if t == "object":
            ap = prop.get("additionalProperties")
            if isinstance(ap, dict):
                k, r2 = self.kind(ap, where + "{}")
                return ("KS_MAP", (k, r2))
            return "KS_ANY_OBJECT", None
        sys.exit(f"{where}: cannot map property {prop}")

    def want(self, name):
        if name not in self.seen:
            self.seen.add(name)
            self.types.append(name)

    def run(self):
        for r in ROOTS:
            self.want(r)
        out = {}
        i = 0
        while i < len(self.types):
            name = self.types[i]
            i += 1
            t = self.s[name]
            req = set(t.get("required", []))
            fields = []
            for fname in sorted(t.get("properties", {})):
                k, extra = self.kind(t["properties"][fname], f"{name}.{fname}")
                fields.append((fname, k, extra, fname in req))
            out[name] = fields
        return out


def cname(t):
    return "t_" + t.replace(".", "_")


def field_c(f):
    fname, k, extra, req = f
    elem, ref = "KS_NONE", "NULL"
    if k in ("KS_ARRAY", "KS_MAP"):
        ek, eref = extra
        if isinstance(ek, tuple) or ek in ("KS_ARRAY", "KS_MAP"):
            sys.exit(f"{fname}: nested containers are not supported")
        elem = ek
        if eref:
            ref = '"' + eref + '"'
    elif k == "KS_OBJECT":
        ref = '"' + extra + '"'
    return (f'        {{ "{fname}", {k}, {elem}, {ref}, {"true" if req else "false"} }},')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--commit", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("spec", nargs="+")
    a = ap.parse_args()
    types = Gen(load(a.spec)).run()
    o = []
    o.append("/* schema_gen.c: GENERATED by tools/kube-fake/gen-schema.py, do not edit.")
    o.append(" * The field lists of the Kubernetes OpenAPI component schemas reachable")
    line = " * from"
    for i, r in enumerate(ROOTS):
        g, v, k = r.split(".")[-3:]
        word = f" {g}/{v} {k}" + ("." if i == len(ROOTS) - 1 else ",")
        if len(line) + len(word) > 78:
            o.append(line)
            line = " *"
        line += word
    o.append(line)
    o.append(f" * Kubernetes commit {a.commit}")
    o.append(f" * Source: {a.source}")
    o.append(" * Data only: never code, never I/O. */")
    o.append('#include "schema.h"')
    o.append("")
    o.append("#include <stddef.h>")
    o.append("")
    for name, fields in types.items():
        o.append(f"static const struct kschema_field {cname(name)}[] = {{")
        for f in fields:
            o.append(field_c(f))
        o.append("};")
        o.append("")
    o.append("const struct kschema_type kschema_types[] = {")
    for name, fields in types.items():
        o.append(f'        {{ "{name}", {cname(name)}, {len(fields)} }},')
    o.append("};")
    o.append("")
    o.append("const size_t kschema_ntypes = sizeof(kschema_types) / sizeof(kschema_types[0]);")
    o.append(f'const char kschema_k8s_commit[] = "{a.commit}";')
    print("\n".join(o))


if __name__ == "__main__":
    main()
