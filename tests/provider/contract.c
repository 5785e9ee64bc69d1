/* contract.c: the provider contract (provider.h) as one suite, linked into
 * one test binary per provider type with that type's contract_factory
 * (contract_<type>.c, see contract.h). It drives a provider only through
 * its ops on a real loop and watches workers only through what the
 * contract gives: events, refs, the worker's log, what the worker itself
 * prints, and list(). Never uses a provider's internals, never assumes a
 * worker is a process of this machine. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "contract.h"
#include "loop/loop.h"
#include "provider/provider.h"
#include "util/fsutil.h"

static const struct contract_factory *const fac = &contract_factory;
static struct contract_env cenv;

/* ---- fixture ---------------------------------------------------------------- */

#define MAX_EV 64

struct rec {
        enum provider_event_type type;
        char instance[96];
        char ref[64];
        struct provider_exit exit;
        int error;
};

struct cfx {
        const struct contract_factory *fac;
        struct config_provider cfg;
        char dir[64];
        char prefix[32];                /* unique per run: other tests list too */
        struct loop *loop;
        struct provider prov;
        struct rec ev[MAX_EV];
        int nev, nexited, nstarted;
};

static int64_t now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_event(void *ud, const struct provider_event *ev)
{
        struct cfx *f = ud;

        assert_true(f->nev < MAX_EV);
        struct rec *r = &f->ev[f->nev++];
        r->type = ev->type;
        snprintf(r->instance, sizeof(r->instance), "%s", ev->instance);
        snprintf(r->ref, sizeof(r->ref), "%s", ev->ref ? ev->ref : "");
        r->exit = ev->exit;
        r->error = ev->error;
        if (ev->type == PROVIDER_EV_STARTED)
                f->nstarted++;
        else
                f->nexited++;
}

static void name_of(const struct cfx *f, const char *suffix, char *buf, size_t n)
{
        snprintf(buf, n, "%s%s", f->prefix, suffix);
}

static void workdir_of(const struct cfx *f, const char *name, char *buf, size_t n)
{
        snprintf(buf, n, "%s/%s", f->dir, name);
}

static void log_of(const struct cfx *f, const char *name, char *buf, size_t n)
{
        snprintf(buf, n, "%s/%s.log", f->dir, name);
}

/* The core's part of a launch: a 0700 folder, the token path from the
 * provider, the spec. */
static int launch(struct cfx *f, const char *name, const char *script,
                  const char *const *env, const char *token)
{
        char wd[PATH_MAX], lp[PATH_MAX], tok[PATH_MAX];
        const char *argv[] = { "sh", "-c", script, "worker", tok, NULL };

        workdir_of(f, name, wd, sizeof(wd));
        log_of(f, name, lp, sizeof(lp));
        if (mkdir(wd, 0700) < 0 && errno != EEXIST)
                return -errno;
        int r = f->prov.ops->token_path(&f->prov, name, wd, tok, sizeof(tok));
        if (r < 0)
                return r;
        struct provider_spec spec = {
                .instance = name, .pool = "contract", .workdir = wd,
                .argv = argv, .env = env,
                .token = token, .token_len = token ? strlen(token) : 0,
                .log_path = lp, .log_max = 1 << 20,
        };
        int before = f->nev;
        r = f->prov.ops->create(&f->prov, &spec, on_event, f);
        assert_int_equal(f->nev, before);       /* never from inside create() */
        return r;
}

/* Every wait of the suite allows for the engine's own latency. */
static int64_t slack(int n)
{
        return fac->slow_ms * (n > 0 ? n : 1);
}

static bool run_until_exited(struct cfx *f, int n, int64_t timeout_ms)
{
        int64_t end = now_ms() + timeout_ms + slack(n);

        while (f->nexited < n) {
                if (now_ms() >= end)
                        return false;
                assert_int_equal(loop_run_once(f->loop, 20), 0);
        }
        return true;
}

static bool run_until_started(struct cfx *f, int n, int64_t timeout_ms)
{
        int64_t end = now_ms() + timeout_ms + slack(n);

        while (f->nstarted < n) {
                if (now_ms() >= end)
                        return false;
                assert_int_equal(loop_run_once(f->loop, 20), 0);
        }
        return true;
}

static const struct rec *find_rec(const struct cfx *f, enum provider_event_type t, const char *name)
{
        for (int k = 0; k < f->nev; k++)
                if (f->ev[k].type == t && strcmp(f->ev[k].instance, name) == 0)
                        return &f->ev[k];
        fail_msg("no event %d for %s", (int)t, name);
        abort();
}

static char *read_log(const struct cfx *f, const char *name)
{
        char lp[PATH_MAX], *buf = NULL;
        size_t len;

        log_of(f, name, lp, sizeof(lp));
        if (fs_read_file(lp, 1 << 20, &buf, &len) < 0)
                return NULL;
        return buf;
}

static bool wait_log(struct cfx *f, const char *name, const char *needle, int64_t timeout_ms)
{
        int64_t end = now_ms() + timeout_ms + slack(1);

        for (;;) {
                char *log = read_log(f, name);
                bool ok = log && strstr(log, needle);
                free(log);
                if (ok)
                        return true;
                if (now_ms() >= end)
                        return false;
                assert_int_equal(loop_run_once(f->loop, 20), 0);
        }
}

struct listing {
        int calls, error;
        size_t n;
        char names[16][96];
        char refs[16][64];
        bool running[16];
};

static void on_list(void *ud, int error, const struct provider_listing *items, size_t n)
{
        struct listing *l = ud;

        l->calls++;
        l->error = error;
        l->n = n;
        assert_true(n <= 16);
        for (size_t k = 0; k < n; k++) {
                snprintf(l->names[k], sizeof(l->names[k]), "%s", items[k].instance);
                snprintf(l->refs[k], sizeof(l->refs[k]), "%s", items[k].ref ? items[k].ref : "");
                l->running[k] = items[k].running;
        }
}

static void list_now(struct cfx *f, const char *prefix, struct listing *l)
{
        int64_t end = now_ms() + 5000 + slack(1);

        memset(l, 0, sizeof(*l));
        assert_int_equal(f->prov.ops->list(&f->prov, prefix, on_list, l), 0);
        assert_int_equal(l->calls, 0);          /* from the loop, not from list() */
        while (l->calls == 0 && now_ms() < end)
                assert_int_equal(loop_run_once(f->loop, 20), 0);
        assert_int_equal(l->calls, 1);
        assert_int_equal(l->error, 0);
}

static int listed(const struct listing *l, const char *name)
{
        for (size_t k = 0; k < l->n; k++)
                if (strcmp(l->names[k], name) == 0)
                        return (int)k;
        return -1;
}

static int setup(void **state)
{
        struct cfx *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        f->fac = fac;
        f->cfg = cenv.cfg;
        f->cfg.name = (char *)"contract";
        f->cfg.type = f->fac->type;
        snprintf(f->prefix, sizeof(f->prefix), "ct%d-", (int)getpid());
        snprintf(f->dir, sizeof(f->dir), "/tmp/fs-contract-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        assert_int_equal(loop_new(&f->loop), 0);
        f->prov.ops = f->fac->ops;
        assert_int_equal(f->prov.ops->init(&f->prov, f->loop, &f->cfg), 0);
        *state = f;
        return 0;
}

/* Whatever a failed test left running is found through the contract
 * itself (list, adopt, stop) and ended, so no worker outlives the suite. */
static int teardown(void **state)
{
        struct cfx *f = *state;
        const struct provider_ops *o = f->prov.ops;
        sigset_t chld;

        /* A failed test leaves through cmocka's siglongjmp, which restores
         * the signal mask of before the test: the loop's SIGCHLD would be
         * unblocked and the exits below never seen. */
        sigemptyset(&chld);
        sigaddset(&chld, SIGCHLD);
        sigprocmask(SIG_BLOCK, &chld, NULL);
        if (f->prov.ctx && (o->caps & PROVIDER_CAP_LIST)) {
                struct listing l;
                list_now(f, f->prefix, &l);
                int want = f->nexited;
                f->prov.stop_grace_ms = 200;
                for (size_t k = 0; k < l.n; k++) {
                        int r = o->adopt ? o->adopt(&f->prov, l.names[k], l.refs[k], NULL, 0, on_event, f) : -ENOTSUP;
                        if ((r == 0 || r == -EEXIST) && o->stop(&f->prov, l.names[k]) == 0)
                                want++;
                }
                assert_true(run_until_exited(f, want, 5000));
        }
        o->done(&f->prov);
        assert_null(f->prov.ctx);
        loop_free(f->loop);
        assert_int_equal(fs_rm_rf(f->dir), 0);
        free(f);
        return 0;
}

/* ---- the contract -------------------------------------------------------- */

/* create → STARTED → EXITED with the code, under one ref, in that order. */
static void exit_code_is_data(void **state)
{
        struct cfx *f = *state;
        char name[96];

        name_of(f, "code", name, sizeof(name));
        assert_int_equal(launch(f, name, "exit 3", NULL, NULL), 0);
        assert_true(run_until_exited(f, 1, 5000));
        assert_int_equal(f->nev, 2);
        assert_int_equal(f->ev[0].type, PROVIDER_EV_STARTED);
        assert_int_equal(f->ev[1].type, PROVIDER_EV_EXITED);
        assert_string_equal(f->ev[1].instance, name);
        assert_true(f->ev[0].ref[0] != '\0');
        assert_string_equal(f->ev[0].ref, f->ev[1].ref);
        assert_int_equal(f->ev[1].exit.kind, PROVIDER_EXIT_CODE);
        assert_int_equal(f->ev[1].exit.code, 3);
        assert_int_equal(f->ev[1].exit.signal, 0);
}

static void exit_by_signal_is_data(void **state)
{
        struct cfx *f = *state;
        char name[96];

        name_of(f, "sig", name, sizeof(name));
        assert_int_equal(launch(f, name, "kill -USR1 $$; sleep 5", NULL, NULL), 0);
        assert_true(run_until_exited(f, 1, 5000));
        const struct rec *e = find_rec(f, PROVIDER_EV_EXITED, name);
        if (fac->foreign_signal_seen) {
                assert_int_equal(e->exit.kind, PROVIDER_EXIT_SIGNAL);
                assert_int_equal(e->exit.signal, SIGUSR1);
                assert_int_equal(e->exit.code, 0);
        } else {
                assert_int_equal(e->exit.kind, PROVIDER_EXIT_CODE);
                assert_int_equal(e->exit.code, 128 + SIGUSR1);
                assert_int_equal(e->exit.signal, 0);
        }
}

/* A worker killed behind the provider's back (OOM killer, an operator, a
 * node going away) ends with EXITED like any other, never silently. */
static void killed_from_outside_is_an_exit(void **state)
{
        struct cfx *f = *state;
        char name[96], ref[64];

        name_of(f, "outside", name, sizeof(name));
        assert_int_equal(launch(f, name, "echo ready; exec sleep 100", NULL, NULL), 0);
        assert_true(run_until_started(f, 1, 5000));
        assert_true(wait_log(f, name, "ready\n", 5000));
        snprintf(ref, sizeof(ref), "%s", find_rec(f, PROVIDER_EV_STARTED, name)->ref);
        assert_int_equal(fac->kill_worker(&cenv, name, ref, SIGKILL), 0);
        assert_true(run_until_exited(f, 1, 5000));
        const struct rec *e = find_rec(f, PROVIDER_EV_EXITED, name);
        assert_string_equal(e->ref, ref);
        if (fac->foreign_signal_seen) {
                assert_int_equal(e->exit.kind, PROVIDER_EXIT_SIGNAL);
                assert_int_equal(e->exit.signal, SIGKILL);
        } else {
                assert_int_equal(e->exit.kind, PROVIDER_EXIT_CODE);
                assert_int_equal(e->exit.code, 128 + SIGKILL);
        }
        assert_int_equal(f->prov.ops->stop(&f->prov, name), -ENOENT);
}

/* stop() of a name never created, or of a worker already reported
 * exited, is -ENOENT and sends nothing. */
static void stop_of_unknown_or_finished(void **state)
{
        struct cfx *f = *state;
        char name[96], never[96];

        name_of(f, "done", name, sizeof(name));
        name_of(f, "never", never, sizeof(never));
        assert_int_equal(f->prov.ops->stop(&f->prov, never), -ENOENT);
        assert_int_equal(launch(f, name, "exit 0", NULL, NULL), 0);
        assert_true(run_until_exited(f, 1, 5000));
        int before = f->nev;
        assert_int_equal(f->prov.ops->stop(&f->prov, name), -ENOENT);
        for (int k = 0; k < 10; k++)
                assert_int_equal(loop_run_once(f->loop, 10), 0);
        assert_int_equal(f->nev, before);
}

/* The worker's environment holds every entry of spec->env, unchanged
 * (spaces, '=' in values), and nothing of the daemon's own. */
static void env_is_the_spec(void **state)
{
        struct cfx *f = *state;
        char name[96];
        const char *wenv[] = { "FORGESCALE_POOL=contract", "FS_CT_SPACES=two words  here",
                               "FS_CT_EQ=a=b=c", "FS_CT_EMPTY=", NULL };

        name_of(f, "env", name, sizeof(name));
        assert_int_equal(setenv("FS_CONTRACT_DAEMON_ONLY", "daemon-only-93d1", 1), 0);
        int r = launch(f, name, "tr '\\0' '\\n' < /proc/$$/environ", wenv, NULL);
        unsetenv("FS_CONTRACT_DAEMON_ONLY");
        assert_int_equal(r, 0);
        assert_true(run_until_exited(f, 1, 5000));
        assert_int_equal(find_rec(f, PROVIDER_EV_EXITED, name)->exit.code, 0);
        char *log = read_log(f, name);
        assert_non_null(log);
        for (int k = 0; wenv[k]; k++) {
                char line[128];
                snprintf(line, sizeof(line), "%s\n", wenv[k]);
                if (!strstr(log, line))
                        fail_msg("%s missing from the worker's environment:\n%s", wenv[k], log);
        }
        assert_null(strstr(log, "daemon-only-93d1"));
        free(log);
}

/* `forgescale check` refuses each bad configuration of this type, at the
 * line and column of the offending value. */
static void bad_config_refused_with_position(void **state)
{
        (void)state;
        for (const struct contract_bad_config *b = fac->bad_configs; b && b->yaml; b++) {
                struct config *cfg = NULL;
                struct config_diag diag = { 0 };
                int r = config_parse("t.yaml", b->yaml, strlen(b->yaml), "/tmp", &cfg, &diag);
                if (r == 0)
                        r = config_check_files(cfg, &diag);
                char want[64];
                snprintf(want, sizeof(want), "t.yaml:%d:%d: ", b->line, b->col);
                bool found = false;
                for (size_t k = 0; k < diag.n; k++)
                        if (!diag.msgs[k].warning && strncmp(diag.msgs[k].text, want, strlen(want)) == 0 &&
                            strstr(diag.msgs[k].text, b->says))
                                found = true;
                if (r == 0 || !found) {
                        for (size_t k = 0; k < diag.n; k++)
                                print_message("  %s\n", diag.msgs[k].text);
                        fail_msg("not refused at %s with \"%s\":\n%s", want, b->says, b->yaml);
                }
                config_diag_done(&diag);
                config_free(cfg);
        }
}

/* A failed create() reports nothing, ever: not even later from the loop. */
static void failed_create_sends_no_event(void **state)
{
        struct cfx *f = *state;
        char name[96], wd[PATH_MAX], lp[PATH_MAX];
        const char *argv[] = { "/nonexistent/forgejo-runner", NULL };

        name_of(f, "nope", name, sizeof(name));
        workdir_of(f, name, wd, sizeof(wd));
        log_of(f, name, lp, sizeof(lp));
        assert_int_equal(mkdir(wd, 0700), 0);
        struct provider_spec spec = {
                .instance = name, .workdir = wd, .argv = argv,
                .token = "t", .token_len = 1, .log_path = lp,
        };
        int r = f->prov.ops->create(&f->prov, &spec, on_event, f);
        assert_int_equal(f->nev, 0);
        for (int k = 0; k < 10; k++)
                assert_int_equal(loop_run_once(f->loop, 10), 0);
        if (r < 0) {
                assert_int_equal(f->nev, 0);
                assert_int_equal(f->fac->leftovers(&cenv, wd, name), 0);
        } else {
                /* Providers that learn it later say FAILED (or EXITED). */
                assert_true(run_until_exited(f, 1, 5000));
        }
}

/* stop(): TERM first; a worker that ignores it is killed once
 * p->stop_grace_ms has passed, not before. */
static void stop_is_term_then_kill_after_grace(void **state)
{
        struct cfx *f = *state;
        char obeys[96], stubborn[96];

        name_of(f, "obeys", obeys, sizeof(obeys));
        name_of(f, "stubborn", stubborn, sizeof(stubborn));
        assert_int_equal(launch(f, obeys, "echo ready; exec sleep 100", NULL, NULL), 0);
        assert_int_equal(launch(f, stubborn,
                                "trap 'echo got-term' TERM; echo ready; while :; do sleep 0.05; done",
                                NULL, NULL), 0);
        assert_true(wait_log(f, obeys, "ready\n", 5000));
        assert_true(wait_log(f, stubborn, "ready\n", 5000));

        f->prov.stop_grace_ms = 10000;
        int64_t t0 = now_ms();
        assert_int_equal(f->prov.ops->stop(&f->prov, obeys), 0);
        assert_true(run_until_exited(f, 1, 5000));
        assert_true(now_ms() - t0 < 5000);      /* TERM, not the 10 s kill */
        const struct rec *e = find_rec(f, PROVIDER_EV_EXITED, obeys);
        assert_int_equal(e->exit.kind, PROVIDER_EXIT_SIGNAL);
        assert_int_equal(e->exit.signal, SIGTERM);

        f->prov.stop_grace_ms = 500;
        t0 = now_ms();
        assert_int_equal(f->prov.ops->stop(&f->prov, stubborn), 0);
        assert_true(run_until_exited(f, 2, 5000));
        int64_t took = now_ms() - t0;
        assert_true(took >= 490);
        assert_true(took < 4000 + slack(1));
        e = find_rec(f, PROVIDER_EV_EXITED, stubborn);
        assert_int_equal(e->exit.kind, PROVIDER_EXIT_SIGNAL);
        assert_int_equal(e->exit.signal, SIGKILL);
        char *log = read_log(f, stubborn);
        assert_non_null(log);
        assert_non_null(strstr(log, "got-term"));
        free(log);
        assert_int_equal(f->prov.ops->stop(&f->prov, stubborn), -ENOENT);
}

/* A daemon restart is done() then init(): workers keep running and are
 * adopted again by their ref, or by name when the ref was never saved. */
static void adopt_after_restart_by_ref_and_by_name(void **state)
{
        struct cfx *f = *state;
        const struct provider_ops *o = f->prov.ops;
        char by_ref[96], by_name[96], ghost[96], ref1[64], ref2[64];

        if (!(o->caps & PROVIDER_CAP_ADOPT)) {
                assert_null(o->adopt);
                return;
        }
        name_of(f, "ad-ref", by_ref, sizeof(by_ref));
        name_of(f, "ad-name", by_name, sizeof(by_name));
        name_of(f, "ad-ghost", ghost, sizeof(ghost));
        assert_int_equal(launch(f, by_ref, "exec sleep 100", NULL, NULL), 0);
        assert_int_equal(launch(f, by_name, "exec sleep 100", NULL, NULL), 0);
        assert_true(run_until_started(f, 2, 5000));
        snprintf(ref1, sizeof(ref1), "%s", find_rec(f, PROVIDER_EV_STARTED, by_ref)->ref);
        snprintf(ref2, sizeof(ref2), "%s", find_rec(f, PROVIDER_EV_STARTED, by_name)->ref);

        o->done(&f->prov);
        assert_int_equal(o->init(&f->prov, f->loop, &f->cfg), 0);
        assert_int_equal(o->stop(&f->prov, by_ref), -ENOENT);   /* forgotten */

        assert_int_equal(o->adopt(&f->prov, by_ref, ref1, NULL, 0, on_event, f), 0);
        assert_int_equal(o->adopt(&f->prov, by_ref, ref1, NULL, 0, on_event, f), -EEXIST);
        /* The marker is in the worker's environment once exec has set it up. */
        int r = -ESRCH;
        for (int k = 0; k < 200 && r == -ESRCH; k++) {
                r = o->adopt(&f->prov, by_name, "", NULL, 0, on_event, f);
                if (r == -ESRCH)
                        usleep(10000);
        }
        assert_int_equal(r, 0);
        if (o->ref)
                assert_string_equal(o->ref(&f->prov, by_name), ref2);
        assert_int_equal(o->adopt(&f->prov, ghost, "", NULL, 0, on_event, f), -ESRCH);

        int before = f->nev;
        f->prov.stop_grace_ms = 5000;
        assert_int_equal(o->stop(&f->prov, by_ref), 0);
        assert_int_equal(o->stop(&f->prov, by_name), 0);
        assert_true(run_until_exited(f, 2, 5000));
        assert_int_equal(f->nev, before + 2);   /* no STARTED for adopted workers */
        for (int k = before; k < f->nev; k++) {
                assert_int_equal(f->ev[k].type, PROVIDER_EV_EXITED);
                /* An adopted worker's status may be unknowable. */
                assert_true(f->ev[k].exit.kind == PROVIDER_EXIT_UNKNOWN ||
                            (f->ev[k].exit.kind == PROVIDER_EXIT_SIGNAL && f->ev[k].exit.signal == SIGTERM));
        }
        assert_string_equal(find_rec(f, PROVIDER_EV_EXITED, by_ref)->ref, ref1);
        /* Gone: its ref adopts no more. */
        assert_int_equal(o->adopt(&f->prov, by_ref, ref1, NULL, 0, on_event, f), -ESRCH);
}

/* list(prefix) shows this controller's live workers with that prefix and
 * no others, also those only a previous run knew (the orphan sweep). */
static void list_sees_prefix_only_across_restart(void **state)
{
        struct cfx *f = *state;
        const struct provider_ops *o = f->prov.ops;
        char a1[96], a2[96], b1[96], pa[96], pz[96];
        struct listing l;

        if (!(o->caps & PROVIDER_CAP_LIST)) {
                assert_null(o->list);
                return;
        }
        name_of(f, "ls-a-1", a1, sizeof(a1));
        name_of(f, "ls-a-2", a2, sizeof(a2));
        name_of(f, "ls-b-1", b1, sizeof(b1));
        name_of(f, "ls-a-", pa, sizeof(pa));
        name_of(f, "ls-zz", pz, sizeof(pz));
        assert_int_equal(launch(f, a1, "exec sleep 100", NULL, NULL), 0);
        assert_int_equal(launch(f, a2, "exec sleep 100", NULL, NULL), 0);
        assert_int_equal(launch(f, b1, "exec sleep 100", NULL, NULL), 0);
        assert_true(run_until_started(f, 3, 5000));

        list_now(f, pa, &l);
        assert_int_equal(l.n, 2);
        for (int k = 0; k < 2; k++) {
                const char *n = k ? a2 : a1;
                int i = listed(&l, n);
                assert_true(i >= 0);
                assert_true(l.running[i]);
                assert_string_equal(l.refs[i], find_rec(f, PROVIDER_EV_STARTED, n)->ref);
        }
        list_now(f, pz, &l);
        assert_int_equal(l.n, 0);

        o->done(&f->prov);
        assert_int_equal(o->init(&f->prov, f->loop, &f->cfg), 0);
        /* The marker shows once exec has set up each worker's environment. */
        int64_t end = now_ms() + 5000;
        do {
                list_now(f, pa, &l);
        } while (l.n < 2 && now_ms() < end);
        assert_int_equal(l.n, 2);
        assert_true(listed(&l, a1) >= 0 && listed(&l, a2) >= 0);
        assert_string_equal(l.refs[listed(&l, a1)], find_rec(f, PROVIDER_EV_STARTED, a1)->ref);
        list_now(f, f->prefix, &l);
        assert_int_equal(l.n, 3);
        assert_true(listed(&l, b1) >= 0);
        /* teardown adopts and stops them through the listing */
}

/* The token is where token_path() said, readable by the worker, and in
 * neither its argv nor its environment; nor is a secret of the daemon's
 * environment. */
static void token_placed_not_in_argv_or_env(void **state)
{
        struct cfx *f = *state;
        char name[96], tokenv[PATH_MAX + 40], wd[PATH_MAX], tok[PATH_MAX];
        const char *token = "ct-runner-token-7f3a9c";
        const char *env[] = { tokenv, "FORGESCALE_POOL=contract", NULL };

        name_of(f, "tok", name, sizeof(name));
        workdir_of(f, name, wd, sizeof(wd));
        assert_int_equal(f->prov.ops->token_path(&f->prov, name, wd, tok, sizeof(tok)), 0);
        assert_null(strstr(tok, token));
        snprintf(tokenv, sizeof(tokenv), "FORGESCALE_RUNNER_TOKEN_FILE=%s", tok);
        assert_int_equal(setenv("FS_CONTRACT_DAEMON_SECRET", "daemon-secret-41c2", 1), 0);
        int r = launch(f, name,
                       "tr '\\0' '\\n' < /proc/$$/environ; echo ---; "
                       "tr '\\0' ' ' < /proc/$$/cmdline; echo; echo ---; "
                       "echo mode=$(stat -c %a \"$1\"); cat \"$1\"; echo; "
                       "cat \"$FORGESCALE_RUNNER_TOKEN_FILE\"",
                       env, token);
        unsetenv("FS_CONTRACT_DAEMON_SECRET");
        assert_int_equal(r, 0);
        assert_true(run_until_exited(f, 1, 5000));
        const struct rec *e = find_rec(f, PROVIDER_EV_EXITED, name);
        assert_int_equal(e->exit.kind, PROVIDER_EXIT_CODE);
        assert_int_equal(e->exit.code, 0);

        char *log = read_log(f, name);
        assert_non_null(log);
        char *sep1 = strstr(log, "---\n");
        assert_non_null(sep1);
        char *sep2 = strstr(sep1 + 4, "---\n");
        assert_non_null(sep2);
        *sep2 = '\0';
        assert_null(strstr(log, token));                /* environ and cmdline */
        assert_null(strstr(log, "daemon-secret-41c2"));
        if (fac->worker_path) {
                char seen[PATH_MAX];
                assert_int_equal(fac->worker_path(&cenv, name, tok, seen, sizeof(seen)), 0);
                snprintf(tokenv, sizeof(tokenv), "FORGESCALE_RUNNER_TOKEN_FILE=%s", seen);
        }
        assert_non_null(strstr(log, tokenv));           /* the path is given */
        /* Readable by the worker, by nobody else: no bit for group or
         * others, as the worker sees the file. */
        const char *m = sep2 + 4;
        assert_true(strncmp(m, "mode=", 5) == 0);
        char *nl = strchr(m, '\n');
        assert_non_null(nl);
        unsigned long mode = strtoul(m + 5, NULL, 8);
        assert_true(mode != 0 && (mode & 077) == 0 && (mode & 0400));
        char want[128];
        snprintf(want, sizeof(want), "%s\n%s", token, token);
        assert_string_equal(nl + 1, want);
        free(log);
}

/* cleanup() of an engine's objects finishes on the loop (its API calls
 * are asynchronous); a file is gone when it returns. */
static bool no_leftovers_soon(struct cfx *f, const char *wd, const char *name)
{
        int64_t end = now_ms() + 2000 + slack(1);

        while (f->fac->leftovers(&cenv, wd, name) > 0) {
                if (now_ms() >= end)
                        return false;
                assert_int_equal(loop_run_once(f->loop, 20), 0);
        }
        return true;
}

/* cleanup() removes what the provider left (-EBUSY while the worker
 * runs), and is harmless twice. */
static void cleanup_removes_leftovers(void **state)
{
        struct cfx *f = *state;
        const struct provider_ops *o = f->prov.ops;
        char name[96], wd[PATH_MAX], ref[64];

        name_of(f, "clean", name, sizeof(name));
        workdir_of(f, name, wd, sizeof(wd));
        assert_int_equal(launch(f, name, "echo ready; exec sleep 100", NULL, "tok-clean"), 0);
        assert_true(run_until_started(f, 1, 5000));
        assert_true(wait_log(f, name, "ready\n", 5000));
        assert_int_equal(o->cleanup(&f->prov, name, find_rec(f, PROVIDER_EV_STARTED, name)->ref, wd),
                         -EBUSY);
        f->prov.stop_grace_ms = 5000;
        assert_int_equal(o->stop(&f->prov, name), 0);
        assert_true(run_until_exited(f, 1, 5000));
        snprintf(ref, sizeof(ref), "%s", find_rec(f, PROVIDER_EV_EXITED, name)->ref);
        assert_true(f->fac->stop_removes_leftovers || f->fac->leftovers(&cenv, wd, name) > 0);
        assert_int_equal(o->cleanup(&f->prov, name, ref, wd), 0);
        assert_true(no_leftovers_soon(f, wd, name));
        assert_int_equal(o->cleanup(&f->prov, name, ref, wd), 0);
        assert_true(no_leftovers_soon(f, wd, name));
}

/* init() reads the provider's keys: max_instances caps create(), the
 * grace is the config's; zero means the defaults. */
static void init_reads_its_keys(void **state)
{
        struct cfx *f = *state;
        const struct provider_ops *o = f->prov.ops;
        char one[96], two[96];

        assert_int_equal(f->prov.stop_grace_ms, PROVIDER_STOP_GRACE_DEFAULT_MS);
        assert_int_equal(f->prov.max_instances, 0);
        o->done(&f->prov);
        f->cfg.max_instances = 1;
        f->cfg.stop_grace_ms = 1500;
        assert_int_equal(o->init(&f->prov, f->loop, &f->cfg), 0);
        assert_int_equal(f->prov.max_instances, 1);
        assert_int_equal(f->prov.stop_grace_ms, 1500);

        name_of(f, "cap-1", one, sizeof(one));
        name_of(f, "cap-2", two, sizeof(two));
        assert_int_equal(launch(f, one, "exec sleep 100", NULL, NULL), 0);
        assert_int_equal(launch(f, two, "exec sleep 100", NULL, NULL), -EAGAIN);
        assert_int_equal(o->stop(&f->prov, one), 0);
        assert_true(run_until_exited(f, 1, 5000));
        assert_int_equal(launch(f, two, "exit 0", NULL, NULL), 0);
        assert_true(run_until_exited(f, 2, 5000));
}

int main(void)
{
        static const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
                T(exit_code_is_data),
                T(exit_by_signal_is_data),
                T(killed_from_outside_is_an_exit),
                T(failed_create_sends_no_event),
                T(stop_is_term_then_kill_after_grace),
                T(stop_of_unknown_or_finished),
                T(adopt_after_restart_by_ref_and_by_name),
                T(list_sees_prefix_only_across_restart),
                T(token_placed_not_in_argv_or_env),
                T(env_is_the_spec),
                T(cleanup_removes_leftovers),
                T(init_reads_its_keys),
#undef T
                cmocka_unit_test(bad_config_refused_with_position),
        };
        int failed;

        snprintf(cenv.dir, sizeof(cenv.dir), "/tmp/fs-contract-env-XXXXXX");
        if (!mkdtemp(cenv.dir)) {
                perror("mkdtemp");
                return 1;
        }
        cenv.cfg.type = fac->type;
        if (fac->up) {
                int r = fac->up(&cenv);
                if (r < 0) {
                        fprintf(stderr, "%s: cannot start the engine: %s\n", fac->name, strerror(-r));
                        if (fac->down)
                                fac->down(&cenv);
                        fs_rm_rf(cenv.dir);
                        return 1;
                }
        }
        failed = _cmocka_run_group_tests(fac->name, tests, sizeof(tests) / sizeof(tests[0]), NULL, NULL);
        if (fac->down)
                fac->down(&cenv);
        fs_rm_rf(cenv.dir);
        return failed ? 1 : 0;
}
