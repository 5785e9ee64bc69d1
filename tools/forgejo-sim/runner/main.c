/* main.c: forgejo-sim-runner, a stand-in for `forgejo-runner one-job`
 * (Runner 12.8): Declare, fetch one task (FetchTask, or FetchSingleTask
 * with --handle; --wait polls), run it on the host, report it, exit 0.
 * Never prints the runner token: it is registered for redaction when it
 * is loaded and only ever travels in the x-runner-token header. */
#include "fs_version.h"
#include "forge/rpc.h"
#include "settings.h"
#include "sig.h"
#include "task.h"
#include "util/httpc.h"
#include "util/log.h"
#include "util/secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COMP "runner"

static int declare(struct rpc_client *rpc, const struct settings *s)
{
        struct rp_declare_req req = { .version = (char *)SETTINGS_RUNNER_VERSION, .labels = s->label_names };
        struct rp_declare_resp resp = { 0 };
        struct rp_error e;
        char err[RP_ERR_MAX];
        json_t *jreq, *jresp = NULL;
        int r;

        jreq = rp_declare_req_to_json(&req);
        if (!jreq)
                return -ENOMEM;
        rpc->timeout_ms = s->fetch_timeout_ms > 10000 ? s->fetch_timeout_ms : 10000;
        r = rpc_call(rpc, RP_SVC_RUNNER "Declare", jreq, NULL, &jresp, &e);
        json_decref(jreq);
        if (r == -EPROTO && e.code == RP_CODE_UNAUTHENTICATED) {
                log_error(COMP, "the server rejected the runner credentials (unauthenticated): "
                          "check --uuid and the token, or the runner was deleted",
                          KS("url", s->url), KS("uuid", s->uuid), KS("detail", e.message));
                return r;
        }
        if (r == -EPROTO && e.code == RP_CODE_UNIMPLEMENTED) {
                log_warn(COMP, "the server does not implement Declare; continuing", KS("url", s->url));
                return 0;
        }
        if (r < 0) {
                log_error(COMP, "declare failed", KS("url", s->url), KERR(r),
                          KS("code", r == -EPROTO ? rp_code_name(e.code) : ""), KS("detail", e.message));
                return r;
        }
        r = rp_declare_resp_from_json(jresp, &resp, err, sizeof(err));
        json_decref(jresp);
        if (r < 0) {
                log_error(COMP, "bad Declare response", KS("reason", err));
                return r;
        }
        log_info(COMP, "declared", KS("url", s->url), KS("uuid", s->uuid), KS("name", resp.runner.name),
                 KI("id", resp.runner.id), KI("labels", s->label_names.n));
        rp_declare_resp_done(&resp);
        return 0;
}

/* One fetch. Returns 0 with *ret_task (NULL when none) or a negative
 * errno, logged by the caller with e. */
static int fetch_once(struct rpc_client *rpc, const struct settings *s, int64_t *tasks_version,
                      const char *key, struct rp_task **ret_task, struct rp_error *e, char *err, size_t errlen)
{
        json_t *jreq, *jresp = NULL;
        struct rp_task *task = NULL;
        int64_t version = 0;
        const char *method;
        int r;

        if (s->handle) {
                struct rp_fetch_single_task_req req = { .tasks_version = *tasks_version, .handle = s->handle };
                jreq = rp_fetch_single_task_req_to_json(&req);
                method = RP_SVC_RUNNER "FetchSingleTask";
        } else {
                struct rp_fetch_task_req req = { .tasks_version = *tasks_version };
                jreq = rp_fetch_task_req_to_json(&req);
                method = RP_SVC_RUNNER "FetchTask";
        }
        if (!jreq)
                return -ENOMEM;
        rpc->timeout_ms = s->fetch_timeout_ms;
        r = rpc_call(rpc, method, jreq, key, &jresp, e);
        json_decref(jreq);
        if (r < 0)
                return r;
        if (s->handle) {
                struct rp_fetch_single_task_resp resp = { 0 };
                r = rp_fetch_single_task_resp_from_json(jresp, &resp, err, errlen);
                if (r >= 0) {
                        task = resp.task;
                        resp.task = NULL;
                        version = resp.tasks_version;
                        rp_fetch_single_task_resp_done(&resp);
                }
        } else {
                struct rp_fetch_task_resp resp = { 0 };
                r = rp_fetch_task_resp_from_json(jresp, &resp, err, errlen);
                if (r >= 0) {
                        task = resp.task;
                        resp.task = NULL;
                        version = resp.tasks_version;
                        if (resp.n_additional_tasks > 0)
                                log_warn(COMP, "ignoring additional tasks the runner did not ask for",
                                         KI("count", resp.n_additional_tasks));
                        rp_fetch_task_resp_done(&resp);
                }
        }
        json_decref(jresp);
        if (r < 0) {
                e->code = RP_CODE_INTERNAL;
                snprintf(e->message, sizeof(e->message), "bad response: %s", err);
                return -EBADMSG;
        }
        /* Client rule of forgejo-runner: keep the newest version; after a
         * task, start from 0 so the next fetch queries the jobs again. */
        if (version > *tasks_version)
                *tasks_version = version;
        if (task)
                *tasks_version = 0;
        *ret_task = task;
        return 0;
}

/* Returns 0 with a task, 1 when interrupted while waiting, -errno on error
 * or when no task came without --wait. */
static int fetch(struct rpc_client *rpc, const struct settings *s, struct rp_task **ret_task)
{
        int64_t tasks_version = 0;
        char key[37];
        bool have_key = false;
        int r;

        for (;;) {
                struct rp_task *task = NULL;
                struct rp_error e = { 0 };
                char err[RP_ERR_MAX] = "";

                if (sig_term_count() > 0) {
                        log_info(COMP, "interrupted while waiting for a task");
                        return 1;
                }
                /* The same key until a fetch succeeds, so the server can hand
                 * back a task it assigned during a call whose answer was lost. */
                if (!have_key) {
                        if ((r = secret_uuid4(key)) < 0)
                                return r;
                        have_key = true;
                }
                r = fetch_once(rpc, s, &tasks_version, key, &task, &e, err, sizeof(err));
                if (r == 0) {
                        have_key = false;
                        if (task) {
                                *ret_task = task;
                                return 0;
                        }
                        if (!s->wait) {
                                log_error(COMP, "could not fetch task: no task received",
                                          KS("handle", s->handle));
                                return -ENODATA;
                        }
                        log_debug(COMP, "no task yet", KI("tasks_version", tasks_version));
                } else if (!s->wait) {
                        log_error(COMP, "could not fetch task", KERR(r),
                                  KS("code", r == -EPROTO || r == -EBADMSG ? rp_code_name(e.code) : ""),
                                  KS("detail", e.message));
                        return r;
                } else {
                        log_warn(COMP, "fetch failed; retrying", KERR(r),
                                 KS("code", r == -EPROTO || r == -EBADMSG ? rp_code_name(e.code) : ""),
                                 KS("detail", e.message), KI("retry_in_ms", s->fetch_interval_ms));
                }
                (void)sig_sleep(s->fetch_interval_ms);
        }
}

static int run_one_job(struct settings *s)
{
        struct rpc_client rpc;
        struct rp_task *task = NULL;
        char err[SETTINGS_ERR_MAX];
        const char *level;
        enum log_level lvl;
        int r;

        r = settings_resolve(s, err, sizeof(err));
        if (r < 0) {
                log_error(COMP, err);
                return 1;
        }
        level = s->log_level ? s->log_level : s->config_log_level;
        if (level) {
                if (log_level_parse(level, &lvl) < 0) {
                        log_error(COMP, "invalid log level", KS("level", level));
                        return 1;
                }
                log_init(lvl, LOG_FMT_LOGFMT);
        }
        if (s->label_names.n == 0)
                log_warn(COMP, "no labels: the server will not assign any job to this runner");
        for (size_t i = 0; i < s->labels.n; i++) {
                const char *scheme = strchr(s->labels.v[i], ':');
                if (scheme && strncmp(scheme + 1, "host", 4) != 0)
                        log_warn(COMP, "only host mode is supported; jobs for this label run on the host",
                                 KS("label", s->labels.v[i]));
        }
        if ((r = sig_setup()) < 0) {
                log_error(COMP, "cannot set up signals", KERR(r));
                return 1;
        }
        httpc_global_init();
        if (rpc_client_init(&rpc, s->url, s->uuid, s->token, s->fetch_timeout_ms) < 0) {
                log_error(COMP, "out of memory");
                return 1;
        }
        rpc.codec = s->codec;
        log_info(COMP, "starting", KS("version", SETTINGS_RUNNER_VERSION), KS("url", s->url), KS("uuid", s->uuid),
                 KS("handle", s->handle), KB("wait", s->wait), KS("codec", rpcodec_name(s->codec)));
        r = declare(&rpc, s);
        if (r < 0) {
                r = 1;
                goto out;
        }
        r = fetch(&rpc, s, &task);
        if (r != 0) {
                r = r > 0 ? 0 : 1;
                goto out;
        }
        log_info(COMP, "task received", KI("task_id", task->id));
        r = task_run(&rpc, s, task);
        if (r < 0) {
                log_error(COMP, "cannot run the task", KI("task_id", task->id), KERR(r));
                r = 1;
        } else {
                r = 0; /* like forgejo-runner: the job result goes to the server */
        }
out:
        rp_task_free(task);
        rpc_client_done(&rpc);
        return r;
}

/* Steps get the step pipe as fds 1 and 2 via dup2(); that only works if
 * the pipe itself is not one of them, so 0-2 must be taken first. */
static void ensure_std_fds(void)
{
        for (int fd = 0; fd <= 2; fd++)
                if (fcntl(fd, F_GETFD) < 0 && errno == EBADF)
                        (void)open("/dev/null", O_RDWR); /* lowest free fd: this one; checksrc: allow (a std fd must survive exec) */
}

int main(int argc, char **argv)
{
        struct settings s;
        char err[SETTINGS_ERR_MAX];
        int r;

        ensure_std_fds();
        log_init(LOG_INFO, LOG_FMT_LOGFMT);
        r = settings_parse_args(&s, argc, argv, err, sizeof(err));
        if (r < 0) {
                fprintf(stderr, "forgejo-sim-runner: %s\nRun 'forgejo-sim-runner --help' for usage.\n", err);
                settings_done(&s);
                return 1;
        }
        switch (s.cmd) {
        case SETTINGS_CMD_VERSION:
                printf("forgejo-sim-runner version %s (forgescale %s)\n", SETTINGS_RUNNER_VERSION, FORGESCALE_VERSION);
                r = 0;
                break;
        case SETTINGS_CMD_ONE_JOB:
                r = run_one_job(&s);
                break;
        default:
                fputs(settings_usage, stdout);
                r = 0;
                break;
        }
        settings_done(&s);
        return r;
}
