/* schema.h: the shape of the generated Kubernetes schema table
 * (schema_gen.c, written by gen-schema.py) and its lookups. Data and pure
 * lookups only: no I/O, no allocation. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

enum kschema_kind {
        KS_NONE = 0,
        KS_STRING,
        KS_INTEGER,
        KS_NUMBER,
        KS_BOOLEAN,
        KS_OBJECT,          /* ref names the object type */
        KS_ARRAY,           /* elem (and ref for objects) says what it holds */
        KS_MAP,             /* string keys; elem (and ref) for values */
        KS_INT_OR_STRING,
        KS_QUANTITY,        /* "500m", "1Gi" or a number */
        KS_TIME,            /* RFC 3339 string */
        KS_ANY_OBJECT,      /* free-form JSON object */
};

struct kschema_field {
        const char *name;
        enum kschema_kind kind;
        enum kschema_kind elem;
        const char *ref;
        bool required;
};

struct kschema_type {
        const char *name;
        const struct kschema_field *fields;   /* sorted by name */
        size_t nfields;
};

extern const struct kschema_type kschema_types[];
extern const size_t kschema_ntypes;
extern const char kschema_k8s_commit[];

/* NULL when the table has no such type. */
const struct kschema_type *kschema_type(const char *name);
/* NULL when the type declares no such field. */
const struct kschema_field *kschema_field(const struct kschema_type *t, const char *name);
