/* workflow.c: what a task carries to a runner: the single-job workflow
 * YAML built from a job's steps, the github context and the secrets.
 * Owns YAML quoting (any step text must round-trip byte for byte). Never
 * touches state beyond reading the job and task it is given. */
#include "sim.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Content lines of a block scalar start this many columns in: the step
 * mapping sits at column 8 and the indentation indicator is 2. */
#define STEP_MAP_INDENT 8
#define BLOCK_INDENT 2

struct sbuf {
        char *p;
        size_t len, cap;
        bool oom;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
        if (b->oom)
                return;
        if (b->len + n + 1 > b->cap) {
                size_t cap = b->cap ? b->cap : 256;
                while (cap < b->len + n + 1)
                        cap *= 2;
                char *np = realloc(b->p, cap);
                if (!np) {
                        b->oom = true;
                        return;
                }
                b->p = np;
                b->cap = cap;
        }
        memcpy(b->p + b->len, s, n);
        b->len += n;
        b->p[b->len] = '\0';
}

static void sb_str(struct sbuf *b, const char *s)
{
        sb_add(b, s, strlen(s));
}

static void sb_fmt(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_fmt(struct sbuf *b, const char *fmt, ...)
{
        char tmp[256];
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t)n >= sizeof(tmp)) {
                b->oom = true;
                return;
        }
        sb_add(b, tmp, (size_t)n);
}

/* A YAML double-quoted scalar: exact for any UTF-8 text. Every character
 * a YAML 1.1 or 1.2 parser could fold or treat as a line break is escaped
 * (C0 controls, DEL, NEL, LS, PS) and so is the byte order mark. */
static void sb_quoted(struct sbuf *b, const char *s)
{
        sb_str(b, "\"");
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                if (p[0] == 0xc2 && p[1] == 0x85) {
                        sb_str(b, "\\N");
                        p += 1;
                        continue;
                }
                if (p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9)) {
                        sb_str(b, p[2] == 0xa8 ? "\\L" : "\\P");
                        p += 2;
                        continue;
                }
                if (p[0] == 0xef && p[1] == 0xbb && p[2] == 0xbf) {
                        sb_str(b, "\\uFEFF");
                        p += 2;
                        continue;
                }
                switch (*p) {
                case '"': sb_str(b, "\\\""); break;
                case '\\': sb_str(b, "\\\\"); break;
                case '\n': sb_str(b, "\\n"); break;
                case '\t': sb_str(b, "\\t"); break;
                case '\r': sb_str(b, "\\r"); break;
                default:
                        if (*p < 0x20 || *p == 0x7f)
                                sb_fmt(b, "\\x%02x", *p);
                        else
                                sb_add(b, (const char *)p, 1);
                }
        }
        sb_str(b, "\"");
}

/* A literal block scalar keeps text exactly when it holds only printable
 * characters, tabs and '\n', none of the characters YAML 1.1 parsers
 * treat as line breaks (NEL, LS, PS) or a byte order mark, and no line made
 * of blanks only (parsers disagree on whether such a line is content or an
 * empty line). */
static bool block_safe(const char *s)
{
        const unsigned char *p = (const unsigned char *)s;
        bool blank_line = false, line_start = true;

        if (!*p)
                return false;
        for (; *p; p++) {
                if (*p == '\n') {
                        if (blank_line)
                                return false;
                        line_start = true;
                        continue;
                }
                if (line_start)
                        blank_line = true;
                line_start = false;
                if (*p != ' ' && *p != '\t')
                        blank_line = false;
                if (*p == '\t')
                        continue;
                if (*p < 0x20 || *p == 0x7f)
                        return false;
                if (p[0] == 0xc2 && p[1] == 0x85)
                        return false;
                if (p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9))
                        return false;
                if (p[0] == 0xef && p[1] == 0xbb && p[2] == 0xbf)
                        return false;
        }
        return !blank_line;
}

static void sb_run_value(struct sbuf *b, const char *text)
{
        size_t len = strlen(text);
        bool keep = len > 0 && text[len - 1] == '\n';
        const char *p = text, *end = text + (keep ? len - 1 : len);

        if (!block_safe(text)) {
                sb_quoted(b, text);
                sb_str(b, "\n");
                return;
        }
        /* Explicit indentation so leading spaces of the first line are
         * content; '+' keeps every trailing newline, '-' adds none. */
        sb_fmt(b, "|%d%c\n", BLOCK_INDENT, keep ? '+' : '-');
        for (;;) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                const char *stop = nl ? nl : end;
                if (stop > p) {
                        sb_fmt(b, "%*s", STEP_MAP_INDENT + BLOCK_INDENT, "");
                        sb_add(b, p, (size_t)(stop - p));
                }
                sb_str(b, "\n");
                if (!nl)
                        break;
                p = nl + 1;
        }
}

char *workflow_job_key(const char *name, int64_t id)
{
        char buf[SIM_MAX_NAME + 8];
        size_t n = 0;

        for (const char *p = name; *p && n < SIM_MAX_NAME; p++) {
                unsigned char c = (unsigned char)*p;
                if (isalnum(c) || c == '_' || c == '-')
                        buf[n++] = (char)c;
                else if (n && buf[n - 1] != '-')
                        buf[n++] = '-';
        }
        while (n && buf[n - 1] == '-')
                n--;
        buf[n] = '\0';
        if (!n)
                snprintf(buf, sizeof(buf), "job-%lld", (long long)id);
        else if (!isalpha((unsigned char)buf[0]) && buf[0] != '_') {
                /* buf has room: n <= SIM_MAX_NAME and 4 more bytes + NUL */
                memmove(buf + 4, buf, n + 1);
                memcpy(buf, "job-", 4);
        }
        return strdup(buf);
}

char *workflow_payload(const struct job *j, size_t *ret_len)
{
        struct sbuf b = {0};

        sb_str(&b, "name: ");
        sb_quoted(&b, j->name);
        sb_str(&b, "\non: push\njobs:\n  ");
        sb_str(&b, j->key);
        sb_str(&b, ":\n    name: ");
        sb_quoted(&b, j->name);
        sb_str(&b, "\n    runs-on: [");
        for (size_t i = 0; i < j->runs_on.n; i++) {
                if (i)
                        sb_str(&b, ", ");
                sb_quoted(&b, j->runs_on.v[i]);
        }
        sb_str(&b, "]\n    steps:");
        if (!j->steps.n)
                sb_str(&b, " []");
        sb_str(&b, "\n");
        for (size_t i = 0; i < j->steps.n; i++) {
                sb_str(&b, "      - run: ");
                sb_run_value(&b, j->steps.v[i]);
        }
        if (b.oom || !b.p) {
                free(b.p);
                return NULL;
        }
        *ret_len = b.len;
        return b.p;
}

static int set_str(json_t *o, const char *k, const char *v)
{
        return json_object_set_new(o, k, json_string(v));
}

json_t *workflow_context(const struct sim *s, const struct task *t)
{
        const struct job *j = t->job;
        const struct repo *rp = j->repo;
        json_t *c = json_object(), *event = json_object(), *erepo = json_object();
        char full[2 * SIM_MAX_NAME + 2], num[32], sha[41], url[1024];
        int rc = 0;

        if (!c || !event || !erepo)
                goto err;
        snprintf(full, sizeof(full), "%s/%s", rp->owner->name, rp->name);
        /* A stable fake commit per job, so reruns of a test see the same. */
        snprintf(sha, sizeof(sha), "%040llx", (unsigned long long)j->id);
        rc |= set_str(erepo, "full_name", full);
        rc |= set_str(erepo, "name", rp->name);
        rc |= json_object_set_new(event, "repository", erepo);
        erepo = NULL;
        rc |= set_str(event, "ref", "refs/heads/main");
        rc |= set_str(event, "after", sha);
        rc |= json_object_set_new(c, "event", event);
        event = NULL;
        rc |= set_str(c, "event_name", "push");
        rc |= set_str(c, "event_path", "");
        rc |= set_str(c, "ref", "refs/heads/main");
        rc |= set_str(c, "ref_name", "main");
        rc |= set_str(c, "ref_type", "branch");
        rc |= set_str(c, "ref_protected", "false");
        rc |= set_str(c, "sha", sha);
        rc |= set_str(c, "base_ref", "");
        rc |= set_str(c, "head_ref", "");
        rc |= set_str(c, "repository", full);
        snprintf(num, sizeof(num), "%lld", (long long)rp->id);
        rc |= set_str(c, "repository_id", num);
        rc |= set_str(c, "repository_owner", rp->owner->name);
        snprintf(num, sizeof(num), "%lld", (long long)rp->owner->id);
        rc |= set_str(c, "repository_owner_id", num);
        snprintf(url, sizeof(url), "%s/%s", s->server_url, full);
        rc |= set_str(c, "repositoryUrl", url);
        rc |= set_str(c, "actor", rp->owner->name);
        rc |= set_str(c, "actor_id", num);
        rc |= set_str(c, "triggering_actor", rp->owner->name);
        /* One run per job in the simulator: the run id is the job id. */
        snprintf(num, sizeof(num), "%lld", (long long)j->id);
        rc |= set_str(c, "run_id", num);
        rc |= set_str(c, "run_number", num);
        snprintf(num, sizeof(num), "%lld", (long long)j->attempt);
        rc |= set_str(c, "run_attempt", num);
        rc |= set_str(c, "job", j->key);
        rc |= set_str(c, "workflow", "sim.yaml");
        snprintf(url, sizeof(url), "%s/.forgejo/workflows/sim.yaml@refs/heads/main", full);
        rc |= set_str(c, "workflow_ref", url);
        rc |= set_str(c, "server_url", s->server_url);
        snprintf(url, sizeof(url), "%s/api/v1", s->server_url);
        rc |= set_str(c, "api_url", url);
        rc |= set_str(c, "graphql_url", "");
        rc |= set_str(c, "retention_days", "90");
        rc |= set_str(c, "secret_source", "Actions");
        rc |= set_str(c, "workspace", "");
        rc |= set_str(c, "action", "");
        rc |= set_str(c, "action_path", "");
        rc |= set_str(c, "action_ref", "");
        rc |= set_str(c, "action_repository", "");
        rc |= set_str(c, "token", t->token);
        rc |= set_str(c, "gitea_runtime_token", t->token);
        rc |= set_str(c, "forgejo_runtime_token", t->token);
        rc |= set_str(c, "gitea_default_actions_url", "https://code.forgejo.org");
        rc |= set_str(c, "forgejo_default_actions_url", "https://code.forgejo.org");
        rc |= set_str(c, "forgejo_server_version", SIM_VERSION_STRING);
        if (rc)
                goto err;
        return c;
err:
        json_decref(erepo);
        json_decref(event);
        json_decref(c);
        return NULL;
}

json_t *workflow_secrets(const struct task *t)
{
        return json_pack("{s:s, s:s, s:s}", "FORGEJO_TOKEN", t->token, "GITEA_TOKEN", t->token,
                         "GITHUB_TOKEN", t->token);
}
