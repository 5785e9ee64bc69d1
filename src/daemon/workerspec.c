/* workerspec.c: see workerspec.h. The argv is runner.command (default
 * forgejo-runner) followed by `one-job --url U --uuid X --token-url file:P
 * --label L:SCHEME … [--handle H] --wait`; the environment is the
 * FORGESCALE_* contract and runner.env. */
#include "daemon/workerspec.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct strs {
        char **v;
        size_t n, cap;
};

static int push_owned(struct strs *s, char *str)
{
        if (!str)
                return -ENOMEM;
        if (s->n + 2 > s->cap) {
                size_t nc = s->cap ? s->cap * 2 : 32;
                char **nv = realloc(s->v, nc * sizeof(*nv));
                if (!nv) {
                        free(str);
                        return -ENOMEM;
                }
                s->v = nv;
                s->cap = nc;
        }
        s->v[s->n++] = str;
        s->v[s->n] = NULL;
        return 0;
}

static int push(struct strs *s, const char *str)
{
        return push_owned(s, strdup(str));
}

static int pushf(struct strs *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int pushf(struct strs *s, const char *fmt, ...)
{
        va_list ap;
        char *str = NULL;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&str, fmt, ap);
        va_end(ap);
        return push_owned(s, r < 0 ? NULL : str);
}

static void strs_free(struct strs *s)
{
        for (size_t i = 0; i < s->n; i++)
                free(s->v[i]);
        free(s->v);
}

/* "a,b,c" of the pool's labels. */
static char *join(const struct config_strv *v)
{
        size_t len = 1;
        char *out, *p;

        for (size_t i = 0; i < v->n; i++)
                len += strlen(v->v[i]) + 1;
        if (!(out = malloc(len)))
                return NULL;
        p = out;
        *p = '\0';
        for (size_t i = 0; i < v->n; i++) {
                size_t l = strlen(v->v[i]);
                if (i)
                        *p++ = ',';
                memcpy(p, v->v[i], l + 1);
                p += l;
        }
        return out;
}

int workerspec_build(const struct workerspec_in *in, struct workerspec *ret)
{
        struct strs a = { 0 }, e = { 0 };
        const char *scheme = in->runner->label_scheme ? in->runner->label_scheme : "host";
        bool warm = !in->handle || !in->handle[0];
        char *csv = NULL;
        int r = 0;

        if (in->runner->command.n) {
                for (size_t i = 0; i < in->runner->command.n && r == 0; i++)
                        r = push(&a, in->runner->command.v[i]);
        } else {
                r = push(&a, "forgejo-runner");
        }
        if (r < 0 || (r = push(&a, "one-job")) < 0 || (r = push(&a, "--url")) < 0 ||
            (r = push(&a, in->forge_url)) < 0 || (r = push(&a, "--uuid")) < 0 ||
            (r = push(&a, in->runner_uuid)) < 0 || (r = push(&a, "--token-url")) < 0 ||
            (r = pushf(&a, "file:%s", in->token_path)) < 0)
                goto err;
        for (size_t i = 0; i < in->labels->n; i++)
                if ((r = push(&a, "--label")) < 0 || (r = pushf(&a, "%s:%s", in->labels->v[i], scheme)) < 0)
                        goto err;
        if (!warm && ((r = push(&a, "--handle")) < 0 || (r = push(&a, in->handle)) < 0))
                goto err;
        if ((r = push(&a, "--wait")) < 0)
                goto err;

        if (!(csv = join(in->labels))) {
                r = -ENOMEM;
                goto err;
        }
        if ((r = pushf(&e, "FORGESCALE_FORGE_URL=%s", in->forge_url)) < 0 ||
            (r = pushf(&e, "FORGESCALE_RUNNER_UUID=%s", in->runner_uuid)) < 0 ||
            (r = pushf(&e, "FORGESCALE_RUNNER_TOKEN_FILE=%s", in->token_path)) < 0 ||
            (r = pushf(&e, "FORGESCALE_RUNNER_NAME=%s", in->instance)) < 0 ||
            (r = pushf(&e, "FORGESCALE_LABELS=%s", csv)) < 0 ||
            (r = pushf(&e, "FORGESCALE_JOB_HANDLE=%s", warm ? "" : in->handle)) < 0 ||
            (r = pushf(&e, "FORGESCALE_POOL=%s", in->pool)) < 0 ||
            (r = pushf(&e, "FORGESCALE_INSTANCE=%s", in->instance)) < 0)
                goto err;
        for (size_t i = 0; i < in->runner->env.n; i++)
                if ((r = pushf(&e, "%s=%s", in->runner->env.v[i].name, in->runner->env.v[i].value)) < 0)
                        goto err;
        free(csv);
        *ret = (struct workerspec){ .argv = a.v, .argc = a.n, .env = e.v, .envc = e.n };
        return 0;
err:
        free(csv);
        strs_free(&a);
        strs_free(&e);
        return r;
}

void workerspec_done(struct workerspec *ws)
{
        if (!ws)
                return;
        for (size_t i = 0; i < ws->argc; i++)
                free(ws->argv[i]);
        free(ws->argv);
        for (size_t i = 0; i < ws->envc; i++)
                free(ws->env[i]);
        free(ws->env);
        *ws = (struct workerspec){ 0 };
}
