/* world.c: see world.h. Owns the per-test simulator and its cast; the
 * request bodies here are literal protojson, never produced by src/forge. */
#include "world.h"

#include "util/rfc3339.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct world *current;

const char *P(const char *fmt, ...)
{
        static char bufs[16][8192];
        static unsigned next;
        char *b = bufs[next++ % 16];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(b, sizeof(bufs[0]), fmt, ap);
        va_end(ap);
        return b;
}

static int setup_with(void **state, const struct sim_opts *opts)
{
        struct world *w = calloc(1, sizeof(*w));
        const char *owners[] = { "alice", NULL };
        int r;

        if (!w)
                return -1;
        r = sim_start(opts, &w->sim);
        if (r < 0) {
                fprintf(stderr, "cannot start forgejo-sim: %s\n", strerror(-r));
                free(w);
                return -1;
        }
        current = w;
        if (sim_create_user(w->sim, "root", true, &w->root) < 0 ||
            sim_create_user(w->sim, "alice", false, &w->alice) < 0 ||
            sim_create_user(w->sim, "bob", false, &w->bob) < 0 ||
            sim_create_user(w->sim, "carol", false, &w->carol) < 0 ||
            sim_create_org(w->sim, "acme", owners, &w->acme) < 0 ||
            sim_create_repo(w->sim, "alice", "app", &w->alice_app) < 0 ||
            sim_create_repo(w->sim, "acme", "web", &w->acme_web) < 0 ||
            sim_create_repo(w->sim, "acme", "api", &w->acme_api) < 0 ||
            sim_create_repo(w->sim, "bob", "tool", &w->bob_tool) < 0) {
                fprintf(stderr, "cannot create the fixture users, org and repos\n");
                sim_stop(w->sim);
                current = NULL;
                free(w);
                return -1;
        }
        *state = w;
        return 0;
}

int world_setup(void **state)
{
        return setup_with(state, NULL);
}

int world_setup_forgejo14(void **state)
{
        struct sim_opts o = { .forgejo_version = "14.0.3+gitea-1.22.0" };

        return setup_with(state, &o);
}

int world_setup_clock(void **state)
{
        struct sim_opts o = { .test_clock = true };

        return setup_with(state, &o);
}

int world_setup_zombie(void **state)
{
        struct sim_opts o = { .zombie_timeout = "2s", .test_clock = true };

        return setup_with(state, &o);
}

int world_teardown(void **state)
{
        struct world *w = *state;
        int r;

        if (!w)
                return 0;
        /* A simulator that died during the test is a failure of that test
         * (a crash), whatever the assertions said. */
        r = sim_stop(w->sim);
        current = NULL;
        free(w);
        *state = NULL;
        if (r == -ESRCH) {
                fprintf(stderr, "forgejo-sim was not running any more at the end of the test\n");
                return -1;
        }
        if (r == -EPROTO) {
                fprintf(stderr, "forgejo-sim did not exit cleanly on SIGTERM\n");
                return -1;
        }
        return 0;
}

int world_group_teardown(void **state)
{
        if (current) {
                sim_stop(current->sim);
                free(current);
                current = NULL;
        }
        return 0;
}

void mk_runner(struct world *w, const char *scope, const char *token, const char *name,
               bool ephemeral, const char *labels_json, struct sim_runner *ret)
{
        CK_OK(sim_runner_create(w->sim, scope, token, name, ephemeral, ret));
        if (labels_json)
                CK_OK(sim_runner_declare(w->sim, ret, labels_json));
}

void mk_job(struct world *w, const char *owner, const char *repo, const char *name,
            const char *runs_on_json, struct sim_job *ret)
{
        CK_OK(sim_create_job(w->sim, owner, repo, name, runs_on_json, NULL, ret));
}

long long fetch(struct world *w, const struct sim_runner *r)
{
        long long id = 0;

        CK_OK(sim_runner_fetch(w->sim, r, &id));
        return id;
}

long long claim(struct world *w, const struct sim_runner *r)
{
        long long id = fetch(w, r);

        if (id <= 0)
                fail_msg("FetchTask returned no task where one was expected");
        return id;
}

json_t *job_state(struct world *w, long long id)
{
        json_t *j = NULL;

        CK_OK(sim_get_job(w->sim, id, &j));
        return j;
}

const char *job_status(struct world *w, long long id)
{
        static char buf[64];
        json_t *j = job_state(w, id);
        const char *s = json_string_value(json_object_get(j, "status"));

        snprintf(buf, sizeof(buf), "%s", s ? s : "(no status)");
        json_decref(j);
        return buf;
}

const char *update_task(struct world *w, const struct sim_runner *r, long long task_id,
                        const char *result)
{
        static char buf[64];
        struct sim_resp resp;
        const char *body;

        if (strcmp(result, "RESULT_UNSPECIFIED") == 0)
                body = P("{\"state\":{\"id\":\"%lld\",\"result\":\"RESULT_UNSPECIFIED\"}}", task_id);
        else
                body = P("{\"state\":{\"id\":\"%lld\",\"result\":\"%s\","
                         "\"startedAt\":\"2026-01-01T00:00:00Z\",\"stoppedAt\":\"2026-01-01T00:00:05Z\"}}",
                         task_id, result);
        CK_OK(sim_rpc(w->sim, "runner.v1.RunnerService/UpdateTask", r->uuid, r->token, NULL, body, &resp));
        CK_STATUS(&resp, 200);
        json_t *state = CK_OBJ(resp.json, "state");
        snprintf(buf, sizeof(buf), "%s", CK_ENUM(state, "result", "RESULT_UNSPECIFIED"));
        sim_resp_done(&resp);
        return buf;
}

void advance(struct world *w, long long ms)
{
        CK_OK(sim_clock_advance(w->sim, ms));
}

json_t *clock_state(struct world *w)
{
        struct sim_resp r;
        json_t *j;

        CK_OK(sim_get(w->sim, "/_sim/clock", NULL, &r));
        CK_STATUS(&r, 200);
        j = json_incref(r.json);
        sim_resp_done(&r);
        return j;
}

long long ts_ms(const char *s)
{
        int64_t sec;
        int32_t nsec;

        if (!s || rfc3339_parse(s, strlen(s), &sec, &nsec) < 0)
                fail_msg("'%s' is not an RFC 3339 timestamp", s ? s : "(null)");
        return (long long)sec * 1000 + nsec / 1000000;
}
