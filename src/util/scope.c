/* scope.c: see scope.h. */
#include "util/scope.h"

#include <errno.h>
#include <string.h>

bool scope_name_ok(const char *s, size_t n)
{
        if (n == 0 || n > SCOPE_NAME_MAX || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_' || c == '.'))
                        return false;
        }
        return true;
}

int scope_split(const char *s, struct scope_parts *ret)
{
        struct scope_parts p = { 0 };
        const char *slash;

        if (!s)
                return -EINVAL;
        if (strcmp(s, "instance") == 0) {
                p.kind = SCOPE_INSTANCE;
        } else if (strcmp(s, "user") == 0) {
                p.kind = SCOPE_USER;
        } else if (strncmp(s, "org/", 4) == 0) {
                p.kind = SCOPE_ORG;
                p.owner = s + 4;
                p.owner_len = strlen(p.owner);
                if (!scope_name_ok(p.owner, p.owner_len))
                        return -EINVAL;
        } else if (strncmp(s, "repo/", 5) == 0 && (slash = strchr(s + 5, '/'))) {
                p.kind = SCOPE_REPO;
                p.owner = s + 5;
                p.owner_len = (size_t)(slash - p.owner);
                p.repo = slash + 1;
                p.repo_len = strlen(p.repo);
                if (!scope_name_ok(p.owner, p.owner_len) || !scope_name_ok(p.repo, p.repo_len))
                        return -EINVAL;
        } else {
                return -EINVAL;
        }
        *ret = p;
        return 0;
}
