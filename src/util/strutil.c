/* strutil.c: see strutil.h. Owns nothing but the helpers; never logs. */
#include "util/strutil.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

char *strutil_dup_or_null(const char *s, int *err)
{
        char *d;

        if (!s)
                return NULL;
        d = strdup(s);
        if (!d)
                *err = -ENOMEM;
        return d;
}
