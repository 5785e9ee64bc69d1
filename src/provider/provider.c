/* provider.c: the registry of provider types, looked up by the `type` key
 * of a provider's configuration, and the keys every type shares. Owns
 * nothing else: it never starts, tracks or logs anything. */
#include "provider/provider.h"
#include "config/config.h"

#include <limits.h>
#include <stddef.h>
#include <string.h>

static const struct provider_ops *const provider_types[] = {
        &provider_local_ops,
        &provider_kubernetes_ops,
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

const char *provider_failure_name(enum provider_failure f)
{
        static const char *const names[] = {
                [PROVIDER_FAIL_UNREACHABLE] = "unreachable", [PROVIDER_FAIL_IMAGE] = "image",
                [PROVIDER_FAIL_QUOTA] = "quota", [PROVIDER_FAIL_REJECTED] = "rejected",
                [PROVIDER_FAIL_UNSCHEDULABLE] = "unschedulable", [PROVIDER_FAIL_ENGINE] = "engine",
        };

        return (unsigned)f < sizeof(names) / sizeof(names[0]) ? names[f] : NULL;
}

/* A config without the key (or a parser that does not fill it yet) gives
 * 0, which means the default, as a negative value would. */
void provider_init_common(struct provider *p, const struct config_provider *cfg)
{
        int64_t grace = cfg ? cfg->stop_grace_ms : 0;
        int64_t max = cfg ? cfg->max_instances : 0;

        p->stop_grace_ms = grace > 0 ? grace : PROVIDER_STOP_GRACE_DEFAULT_MS;
        p->max_instances = max <= 0 ? 0 : max > INT_MAX ? INT_MAX : (int)max;
        p->error[0] = '\0';
        p->failure = PROVIDER_FAIL_NONE;
}
