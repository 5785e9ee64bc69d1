/* fixture.h: the queue-mode end-to-end fixture shared by the scenario files:
 * a forgejo-sim, a work folder, the real daemon started on a config written
 * there, and observations of jobs, registrations, workers and the HTTP API.
 * Every helper asserts (cmocka) instead of returning errors. */
#pragma once

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include <jansson.h>

#include "sim.h"

struct fx {
        struct sim *sim;
        struct sim_user admin;
        char dir[PATH_MAX - 64];        /* per-test work folder */
        char state[PATH_MAX];           /* state_dir (unique: identifies our workers) */
        pid_t fs;                       /* forgescale, 0 when not running */
        int starts;
        char api[64];                   /* http://127.0.0.1:PORT */
        char fault_ctl[PATH_MAX];       /* non-empty: the daemon runs under the
                                         * faultfs shim; the state database's
                                         * writes fail while this file exists */
};

struct tally {
        int total, waiting, running, success, failure, cancelled;
};

extern struct fx *cur;

double now_s(void);
void write_file(const char *path, const char *text);
ssize_t proc_read(pid_t pid, const char *name, char *buf, size_t n);
int scan_workers(const struct fx *fx, bool children_only, bool kill_them);
int count_workers(const struct fx *fx, bool kill_them);
int count_children(const struct fx *fx);
void fs_kill(struct fx *fx, int sig);
void on_abort(void);
void fs_start(struct fx *fx);
int setup_sim(void **state, const struct sim_opts *opts);
int setup(void **state);
int setup_forgejo14(void **state);
int teardown(void **state);
void write_config_full(struct fx *fx, const char *timeout, const char *provider,
                              const char *pools);
void write_config_t(struct fx *fx, const char *timeout, const char *pools);
void write_config(struct fx *fx, const char *pools);
/* With a broker section listening on broker_port (0: any) plus broker_extra
 * lines. */
void write_config_broker(struct fx *fx, const char *forge_timeout, const char *broker_extra, const char *pools,
                         int broker_port);
/* Runners on the forge whose name starts with prefix (deleted ones too,
 * unless live_only). */
int runners_named(struct fx *fx, const char *prefix, bool live_only);
/* GET /_sim/jobs/ID (a new reference). */
json_t *job_json(struct fx *fx, long long id);
struct tally jobs_tally(struct fx *fx);
json_t *api_get(struct fx *fx, const char *path);
double metric_sum(struct fx *fx, const char *name, const char *frag);
int live_instances(struct fx *fx);
int undeleted_runners_q(struct fx *fx, const char *name_prefix, bool quiet);
int undeleted_runners(struct fx *fx, const char *name_prefix);
void wait_drained(struct fx *fx, int want_finished, double timeout_s);
void assert_nothing_leaked(struct fx *fx);
void make_jobs(struct fx *fx, int n, const char *owner, const char *repo, const char *runs_on,
                      const char *steps);
void check_placement(struct fx *fx, int *ret_ours, int *ret_untouched);
void assert_promtool_accepts(struct fx *fx);
char *wait_log(struct fx *fx, int start, const char *needle, double timeout_s);
/* write_config_broker with another provider than the local one (provider
 * is the flow mapping after "here: "). */
void write_config_broker_provider(struct fx *fx, const char *forge_timeout, const char *provider,
                                  const char *broker_extra, const char *pools, int broker_port);
