/* config_print.c: output driven by the key table: the effective
 * configuration as YAML (check --print) and the Markdown key reference
 * (docs/configuration.md). Never prints a token value: the table has no key
 * for it, only for where it comes from. */
#include "config/config.h"
#include "config/config_internal.h"

#include "util/duration.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool looks_typed(const char *s)
{
        static const char *const words[] = {
                "true", "false", "yes", "no", "on", "off", "null", "y", "n",
        };
        char *end;

        for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
                if (strcasecmp(s, words[i]) == 0)
                        return true;
        (void)strtod(s, &end);
        return *end == '\0';
}

static bool plain_ok(const char *s)
{
        size_t n = strlen(s);

        if (n == 0 || looks_typed(s))
                return false;
        if (!(isalnum((unsigned char)s[0]) || s[0] == '/' || s[0] == '.' || s[0] == '_'))
                return false;
        if (s[n - 1] == ':')
                return false;
        for (const char *p = s; *p; p++)
                if (!(isalnum((unsigned char)*p) || strchr("_./-:@+=%", *p)))
                        return false;
        return true;
}

void config__yaml_scalar(FILE *f, const char *s)
{
        if (plain_ok(s)) {
                fputs(s, f);
                return;
        }
        fputc('"', f);
        for (; *s; s++) {
                unsigned char c = (unsigned char)*s;
                if (c == '"' || c == '\\')
                        fprintf(f, "\\%c", c);
                else if (c < 0x20 || c == 0x7f)
                        fprintf(f, "\\x%02x", c);
                else
                        fputc(c, f);
        }
        fputc('"', f);
}

static const void *cfield(const void *obj, const struct key *k)
{
        return (const char *)obj + k->off;
}

static void print_section(FILE *f, const struct section *sec, const void *obj, int indent)
{
        for (size_t i = 0; i < sec->n_keys; i++) {
                const struct key *k = &sec->keys[i];
                const void *v = cfield(obj, k);
                char buf[64];

                if (!config__key_applies(sec, k, obj))
                        continue;
                switch (k->type) {
                case KT_STR: {
                        const char *s = *(char *const *)v;
                        if (!s)
                                break;
                        fprintf(f, "%*s%s: ", indent, "", k->name);
                        config__yaml_scalar(f, s);
                        fputc('\n', f);
                        break;
                }
                case KT_INT: {
                        int64_t n = *(const int64_t *)v;
                        if ((k->flags & KF_ZERO_UNSET) && n == 0)
                                break;
                        fprintf(f, "%*s%s: %lld\n", indent, "", k->name, (long long)n);
                        break;
                }
                case KT_DURATION:
                        if ((k->flags & KF_ZERO_UNSET) && *(const int64_t *)v == 0)
                                break;
                        duration_format(*(const int64_t *)v, buf, sizeof(buf));
                        fprintf(f, "%*s%s: %s\n", indent, "", k->name, buf);
                        break;
                case KT_BOOL:
                        fprintf(f, "%*s%s: %s\n", indent, "", k->name,
                                *(const bool *)v ? "true" : "false");
                        break;
                case KT_ENUM:
                        fprintf(f, "%*s%s: %s\n", indent, "", k->name, k->enums[*(const int *)v]);
                        break;
                case KT_LIST: {
                        const struct config_strv *l = v;
                        fprintf(f, "%*s%s: [", indent, "", k->name);
                        for (size_t j = 0; j < l->n; j++) {
                                if (j)
                                        fputs(", ", f);
                                config__yaml_scalar(f, l->v[j]);
                        }
                        fputs("]\n", f);
                        break;
                }
                case KT_ENV: {
                        const struct config_envv *e = v;
                        if (e->n == 0) {
                                fprintf(f, "%*s%s: {}\n", indent, "", k->name);
                                break;
                        }
                        fprintf(f, "%*s%s:\n", indent, "", k->name);
                        for (size_t j = 0; j < e->n; j++) {
                                fprintf(f, "%*s%s: ", indent + 2, "", e->v[j].name);
                                config__yaml_scalar(f, e->v[j].value);
                                fputc('\n', f);
                        }
                        break;
                }
                case KT_SECTION:
                        fprintf(f, "%*s%s:\n", indent, "", k->name);
                        print_section(f, k->sub, v, indent + 2);
                        break;
                case KT_NAMED: {
                        const char *arr = *(const char *const *)v;
                        size_t cnt = *(const size_t *)((const char *)obj + k->count_off);
                        fprintf(f, "%*s%s:\n", indent, "", k->name);
                        for (size_t j = 0; j < cnt; j++) {
                                const void *entry = arr + j * k->sub->size;
                                fprintf(f, "%*s", indent + 2, "");
                                config__yaml_scalar(f, *(char *const *)entry);
                                fputs(":\n", f);
                                print_section(f, k->sub, entry, indent + 4);
                        }
                        break;
                }
                case KT_JSON: {
                        /* JSON is YAML flow style: it parses back as is. */
                        const char *s = *(char *const *)v;
                        if (s)
                                fprintf(f, "%*s%s: %s\n", indent, "", k->name, s);
                        break;
                }
                case KT_REFUSED:
                        break;
                }
        }
}

int config_print(const struct config *cfg, FILE *f)
{
        fputs("# forgescale effective configuration: defaults filled in, durations normalised\n", f);
        print_section(f, &config__top, cfg, 0);
        fflush(f);
        return ferror(f) ? -EIO : 0;
}

/* ---- reference ---------------------------------------------------------------- */

static void md_text(FILE *f, const char *s)
{
        for (; *s; s++) {
                if (*s == '|')
                        fputc('\\', f);
                fputc(*s, f);
        }
}

static void md_type(FILE *f, const struct key *k)
{
        if (k->type == KT_ENUM) {
                for (size_t i = 0; k->enums[i]; i++)
                        fprintf(f, "%s`%s`", i ? ", " : "one of ", k->enums[i]);
                return;
        }
        if (k->type_doc) {
                md_text(f, k->type_doc);
                return;
        }
        switch (k->type) {
        case KT_STR:
                fputs("string", f);
                break;
        case KT_INT:
                fprintf(f, "integer, %lld to %lld", (long long)k->min, (long long)k->max);
                break;
        case KT_DURATION: {
                char a[32], b[32];
                duration_format(k->min, a, sizeof(a));
                duration_format(k->max, b, sizeof(b));
                fprintf(f, "duration, %s to %s", a, b);
                break;
        }
        case KT_BOOL:
                fputs("boolean", f);
                break;
        case KT_LIST:
                fputs("list of strings", f);
                break;
        case KT_ENV:
                fputs("mapping of NAME: string", f);
                break;
        case KT_SECTION:
                fputs("mapping", f);
                break;
        case KT_NAMED:
                fprintf(f, "mapping of NAME: %s", k->sub->name);
                break;
        case KT_JSON:
                fputs("YAML value", f);
                break;
        default:
                break;
        }
}

static void reference_section(FILE *f, const struct section *sec)
{
        if (sec != &config__top)
                fprintf(f, "### `%s`\n\n", sec->title);
        else
                fprintf(f, "### %s\n\n", sec->title);
        md_text(f, sec->doc);
        fputs("\n\n| Key | Type | Default | Description |\n|---|---|---|---|\n", f);
        for (size_t i = 0; i < sec->n_keys; i++) {
                const struct key *k = &sec->keys[i];
                if (k->type == KT_REFUSED)
                        continue;
                fprintf(f, "| `%s` | ", k->name);
                md_type(f, k);
                fputs(" | ", f);
                if (k->flags & KF_REQUIRED)
                        fputs("**required**", f);
                else if (k->def) {
                        fputc('`', f);
                        md_text(f, k->def);
                        fputc('`', f);
                } else if (k->type == KT_SECTION) {
                        fputs("see below", f);
                } else {
                        fputs("unset", f);
                }
                fputs(" | ", f);
                if (k->variants && sec->variant) {
                        const char *sep = "";
                        fprintf(f, "Only for %s ", sec->variant->name);
                        for (size_t j = 0; sec->variant->enums[j]; j++)
                                if (k->variants & KV(j)) {
                                        fprintf(f, "%s`%s`", sep, sec->variant->enums[j]);
                                        sep = ", ";
                                }
                        fputs(". ", f);
                }
                md_text(f, k->doc);
                fputs(" |\n", f);
        }
        for (size_t i = 0; i < sec->n_keys; i++) {
                const struct key *k = &sec->keys[i];
                if (k->type == KT_REFUSED)
                        fprintf(f, "\n`%s`: %s.\n", k->name, k->doc);
        }
        fputc('\n', f);
        for (size_t i = 0; i < sec->n_keys; i++)
                if (sec->keys[i].type == KT_SECTION || sec->keys[i].type == KT_NAMED)
                        reference_section(f, sec->keys[i].sub);
}

void config_print_reference(FILE *f)
{
        reference_section(f, &config__top);
}
