/* provider.c: the registry of provider types, looked up by the `type` key
 * of a provider's configuration. Owns nothing else: it never starts,
 * configures or logs anything. */
#include "provider/provider.h"

#include <stddef.h>
#include <string.h>

static const struct provider_ops *const provider_types[] = {
        &provider_local_ops,
};

const struct provider_ops *provider_ops_find(const char *type)
{
        if (!type)
                return NULL;
        for (size_t k = 0; k < sizeof(provider_types) / sizeof(provider_types[0]); k++)
                if (strcmp(provider_types[k]->type, type) == 0)
                        return provider_types[k];
        return NULL;
}
