/* workflow.h: the part of a task's workflow_payload that a host-mode runner
 * needs: the single job, its env and its steps. Parses YAML with libfyaml;
 * rejects anything but exactly one job. Never does I/O, never logs. */
#pragma once

#include <stddef.h>

struct wf_env {
        char *key;
        char *value;
};

struct wf_step {
        char *id;                       /* `id:` or the index as text */
        char *name;                     /* `name:` or NULL */
        char *run;                      /* `run:` script or NULL (a `uses:` step) */
        char *uses;                     /* `uses:` or NULL */
        char *shell;                    /* `shell:` or NULL */
        char *working_directory;        /* `working-directory:` or NULL */
        struct wf_env *env;
        size_t n_env;
};

struct workflow {
        char *name;                     /* workflow `name:` or NULL */
        char *job_id;                   /* key under `jobs:` */
        char *job_name;                 /* job `name:` or NULL */
        struct wf_env *env;             /* workflow env, then job env */
        size_t n_env;
        struct wf_step *steps;
        size_t n_steps;
};

#define WF_PAYLOAD_MAX (1u << 20)
#define WF_STEPS_MAX 1000u

/* Parses len bytes of YAML (borrowed). Returns 0, -EINVAL with a reason in
 * err, or -ENOMEM; *ret untouched on failure. Release with workflow_done. */
int workflow_parse(const char *yaml, size_t len, struct workflow *ret,
                   char *err, size_t errlen);
void workflow_done(struct workflow *wf);
