/* workflow.c: see workflow.h. The only file of the runner that reads the
 * workflow YAML; expressions (${{ }}) are passed through untouched. */
#include "workflow.h"

#include <errno.h>
#include <libfyaml.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t errlen, int r, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int r, const char *fmt, ...)
{
        va_list ap;

        if (err && errlen) {
                va_start(ap, fmt);
                vsnprintf(err, errlen, fmt, ap);
                va_end(ap);
        }
        return r;
}

/* YAML null: a missing node, or a plain scalar "", "~" or null/Null/NULL
 * (libfyaml keeps these as scalars). Quoted "null" is a string. */
static bool yaml_null(struct fy_node *n)
{
        const char *s;
        size_t len;

        if (!n)
                return true;
        if (!fy_node_is_scalar(n) || fy_node_get_style(n) != FYNS_PLAIN)
                return false;
        s = fy_node_get_scalar(n, &len);
        if (!s || len == 0)
                return true;
        return (len == 1 && s[0] == '~') ||
               (len == 4 && (!memcmp(s, "null", 4) || !memcmp(s, "Null", 4) || !memcmp(s, "NULL", 4)));
}

/* A scalar's text as a new string; NULL for a non-scalar (sets *r). */
static char *scalar_dup(struct fy_node *n, int *r)
{
        const char *s;
        size_t len;
        char *d;

        if (!n || !fy_node_is_scalar(n)) {
                *r = -EINVAL;
                return NULL;
        }
        s = fy_node_get_scalar(n, &len);
        if (!s) {
                s = "";
                len = 0;
        }
        if (memchr(s, '\0', len)) {
                *r = -EINVAL;
                return NULL;
        }
        d = strndup(s, len);
        if (!d)
                *r = -ENOMEM;
        return d;
}

/* Optional scalar member `key` of map: NULL when absent or null. */
static int opt_scalar(struct fy_node *map, const char *key, char **ret,
                      const char *where, char *err, size_t errlen)
{
        struct fy_node *n = fy_node_mapping_lookup_by_string(map, key, FY_NT);
        int r = 0;

        *ret = NULL;
        if (!n || yaml_null(n))
                return 0;
        *ret = scalar_dup(n, &r);
        if (r == -EINVAL)
                return fail(err, errlen, r, "%s: `%s` must be a string", where, key);
        return r;
}

static void env_free(struct wf_env *e, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                free(e[i].key);
                free(e[i].value);
        }
        free(e);
}

/* Appends the `env:` mapping of map (if any) to *env. */
static int parse_env(struct fy_node *map, struct wf_env **env, size_t *n_env,
                     const char *where, char *err, size_t errlen)
{
        struct fy_node *e = fy_node_mapping_lookup_by_string(map, "env", FY_NT);
        struct fy_node_pair *p;
        void *it = NULL;
        int r = 0;

        if (!e || yaml_null(e))
                return 0;
        if (!fy_node_is_mapping(e))
                return fail(err, errlen, -EINVAL, "%s: `env` must be a mapping", where);
        while ((p = fy_node_mapping_iterate(e, &it))) {
                struct wf_env *ne = realloc(*env, (*n_env + 1) * sizeof(*ne));
                if (!ne)
                        return -ENOMEM;
                *env = ne;
                ne[*n_env].key = scalar_dup(fy_node_pair_key(p), &r);
                ne[*n_env].value = yaml_null(fy_node_pair_value(p))
                        ? strdup("") : scalar_dup(fy_node_pair_value(p), &r);
                if (!ne[*n_env].value && r == 0)
                        r = -ENOMEM;
                (*n_env)++;
                if (r == -EINVAL)
                        return fail(err, errlen, r, "%s: env values must be strings", where);
                if (r < 0)
                        return r;
                if (!ne[*n_env - 1].key[0] || strchr(ne[*n_env - 1].key, '='))
                        return fail(err, errlen, -EINVAL, "%s: invalid env name", where);
        }
        return 0;
}

static void step_done(struct wf_step *s)
{
        free(s->id);
        free(s->name);
        free(s->run);
        free(s->uses);
        free(s->shell);
        free(s->working_directory);
        env_free(s->env, s->n_env);
}

static int parse_step(struct fy_node *n, size_t idx, struct wf_step *s,
                      char *err, size_t errlen)
{
        char where[32];
        int r;

        snprintf(where, sizeof(where), "step %zu", idx);
        if (!fy_node_is_mapping(n))
                return fail(err, errlen, -EINVAL, "%s: not a mapping", where);
        if ((r = opt_scalar(n, "id", &s->id, where, err, errlen)) < 0 ||
            (r = opt_scalar(n, "name", &s->name, where, err, errlen)) < 0 ||
            (r = opt_scalar(n, "run", &s->run, where, err, errlen)) < 0 ||
            (r = opt_scalar(n, "uses", &s->uses, where, err, errlen)) < 0 ||
            (r = opt_scalar(n, "shell", &s->shell, where, err, errlen)) < 0 ||
            (r = opt_scalar(n, "working-directory", &s->working_directory, where, err, errlen)) < 0)
                return r;
        if (!s->run && !s->uses)
                return fail(err, errlen, -EINVAL, "%s: needs `run` or `uses`", where);
        if (s->run && s->uses)
                return fail(err, errlen, -EINVAL, "%s: has both `run` and `uses`", where);
        if (!s->id) {
                char b[24];
                snprintf(b, sizeof(b), "%zu", idx);
                s->id = strdup(b);
                if (!s->id)
                        return -ENOMEM;
        }
        return parse_env(n, &s->env, &s->n_env, where, err, errlen);
}

static int parse_doc(struct fy_node *root, struct workflow *wf, char *err, size_t errlen)
{
        struct fy_node *jobs, *job, *steps;
        struct fy_node_pair *p;
        void *it = NULL;
        int r;

        if (!root || !fy_node_is_mapping(root))
                return fail(err, errlen, -EINVAL, "workflow is not a mapping");
        if ((r = opt_scalar(root, "name", &wf->name, "workflow", err, errlen)) < 0)
                return r;
        if ((r = parse_env(root, &wf->env, &wf->n_env, "workflow", err, errlen)) < 0)
                return r;
        jobs = fy_node_mapping_lookup_by_string(root, "jobs", FY_NT);
        if (!jobs || !fy_node_is_mapping(jobs) || fy_node_mapping_item_count(jobs) == 0)
                return fail(err, errlen, -EINVAL, "no jobs found");
        if (fy_node_mapping_item_count(jobs) != 1)
                return fail(err, errlen, -EINVAL, "multiple jobs found");
        p = fy_node_mapping_iterate(jobs, &it);
        r = 0;
        wf->job_id = scalar_dup(fy_node_pair_key(p), &r);
        if (r < 0)
                return r == -EINVAL ? fail(err, errlen, r, "job id is not a string") : r;
        job = fy_node_pair_value(p);
        if (!job || !fy_node_is_mapping(job))
                return fail(err, errlen, -EINVAL, "job %s is not a mapping", wf->job_id);
        if ((r = opt_scalar(job, "name", &wf->job_name, "job", err, errlen)) < 0)
                return r;
        if ((r = parse_env(job, &wf->env, &wf->n_env, "job", err, errlen)) < 0)
                return r;
        steps = fy_node_mapping_lookup_by_string(job, "steps", FY_NT);
        if (!steps || yaml_null(steps))
                return 0;
        if (!fy_node_is_sequence(steps))
                return fail(err, errlen, -EINVAL, "job %s: `steps` is not a list", wf->job_id);
        if ((size_t)fy_node_sequence_item_count(steps) > WF_STEPS_MAX)
                return fail(err, errlen, -EINVAL, "job %s: too many steps", wf->job_id);
        wf->steps = calloc((size_t)fy_node_sequence_item_count(steps) + 1, sizeof(*wf->steps));
        if (!wf->steps)
                return -ENOMEM;
        it = NULL;
        for (struct fy_node *s; (s = fy_node_sequence_iterate(steps, &it));) {
                r = parse_step(s, wf->n_steps, &wf->steps[wf->n_steps], err, errlen);
                wf->n_steps++;
                if (r < 0)
                        return r;
        }
        return 0;
}

int workflow_parse(const char *yaml, size_t len, struct workflow *ret,
                   char *err, size_t errlen)
{
        struct fy_parse_cfg cfg = { .flags = FYPCF_QUIET | FYPCF_RESOLVE_DOCUMENT };
        struct fy_document *doc;
        struct workflow wf;
        int r;

        if (len > WF_PAYLOAD_MAX)
                return fail(err, errlen, -EINVAL, "workflow payload too large");
        if (len == 0)
                return fail(err, errlen, -EINVAL, "empty workflow payload");
        memset(&wf, 0, sizeof(wf));
        doc = fy_document_build_from_string(&cfg, yaml, len);
        if (!doc)
                return fail(err, errlen, -EINVAL, "workflow payload is not valid YAML");
        r = parse_doc(fy_document_root(doc), &wf, err, errlen);
        fy_document_destroy(doc);
        if (r < 0) {
                workflow_done(&wf);
                return r;
        }
        *ret = wf;
        return 0;
}

void workflow_done(struct workflow *wf)
{
        if (!wf)
                return;
        free(wf->name);
        free(wf->job_id);
        free(wf->job_name);
        env_free(wf->env, wf->n_env);
        for (size_t i = 0; i < wf->n_steps; i++)
                step_done(&wf->steps[i]);
        free(wf->steps);
        memset(wf, 0, sizeof(*wf));
}
