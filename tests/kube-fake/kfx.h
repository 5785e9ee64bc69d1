/* kfx.h: shared fixture of the kube-fake conformance tests: one fake per
 * test binary, object builders and waits on the fake's state. Test code
 * only; every wait has a deadline and fails the test when it passes. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "kubefake.h"

extern struct kubefake *kfx;

/* cmocka group setup/teardown: start and stop the shared fake. */
int kfx_setup(void **state);
int kfx_teardown(void **state);

/* A Job (JSON text, caller frees) running argv (NULL-terminated) in one
 * container "worker" with image, env pairs (NULL-terminated name, value,
 * ...) and, when secret is non-NULL, that Secret mounted read-only (0400)
 * at /var/run/forgescale. extra_spec is merged into .spec (may be NULL). */
char *kfx_job(const char *name, const char *image, const char *const *argv,
              const char *const *env, const char *secret, const char *extra_spec);
/* POSTs body to path with the token; returns the status, *ret (may be
 * NULL) the parsed answer. */
long kfx_post(const char *path, const char *body, json_t **ret);
long kfx_get(const char *path, json_t **ret);
long kfx_delete(const char *path, const char *body, json_t **ret);

/* The first pod of job (by its job-name label) in ns, waiting up to
 * timeout_ms for one whose status.phase is phase (NULL: any). New
 * reference or NULL on timeout. */
json_t *kfx_wait_pod(const char *ns, const char *job, const char *phase, long timeout_ms);
/* Waits until GET path answers status (404 for "gone"). */
bool kfx_wait_status(const char *path, long status, long timeout_ms);
/* Waits for a condition type with status True on the job. */
json_t *kfx_wait_job_condition(const char *ns, const char *job, const char *type,
                               long timeout_ms);
/* Whether process pid still exists (and is not a zombie). */
bool kfx_pid_alive(int pid);
void kfx_sleep_ms(long ms);
