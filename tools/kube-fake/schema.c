/* schema.c: lookups in the generated schema table (schema_gen.c). Pure:
 * no I/O, no allocation; linked by kube-fake and by the test that checks
 * the table is closed (every type a field names is in it). */
#include "schema.h"

#include <string.h>

const struct kschema_type *kschema_type(const char *name)
{
        for (size_t i = 0; i < kschema_ntypes; i++)
                if (strcmp(kschema_types[i].name, name) == 0)
                        return &kschema_types[i];
        return NULL;
}

const struct kschema_field *kschema_field(const struct kschema_type *t, const char *name)
{
        for (size_t i = 0; i < t->nfields; i++)
                if (strcmp(t->fields[i].name, name) == 0)
                        return &t->fields[i];
        return NULL;
}
