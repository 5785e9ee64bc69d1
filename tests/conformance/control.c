/* control.c: the /_sim control API of the forgejo-sim contract (users,
 * orgs, repos, jobs, runners, stats, faults) and GET /api/v1/version.
 * Shapes are checked key by key against the contract ("keep these shapes
 * exactly"); faults must never touch /_sim routes. Never depends on the
 * simulator's code. */
#include "world.h"

#include <errno.h>
#include <string.h>

static bool id_or_null(json_t *o, const char *k, long long want)
{
        json_t *v = json_object_get(o, k);

        if (want == 0 && (json_is_null(v) || (json_is_integer(v) && json_integer_value(v) == 0)))
                return true;
        return json_is_integer(v) && json_integer_value(v) == want;
}

/* POST /_sim/users {name, admin} → {id, name, token}. */
static void control_user_shape(void **state)
{
        struct world *w = *state;
        struct sim_resp r;

        CK_OK(sim_post(w->sim, "/_sim/users", NULL, "{\"name\":\"dave\",\"admin\":false}", &r));
        assert_true(r.status == 200 || r.status == 201);
        CK_KEYS(r.json, "id", "name", "token");
        assert_true(CK_INT(r.json, "id") > 0);
        assert_string_equal(CK_STR(r.json, "name"), "dave");
        const char *token = CK_STR(r.json, "token");
        assert_true(strlen(token) > 0);
        /* The token authenticates as dave: his own (empty) user listing. */
        struct sim_resp r2;
        CK_OK(sim_get(w->sim, "/api/v1/user/actions/runners/jobs", token, &r2));
        CK_STATUS(&r2, 200);
        sim_resp_done(&r2);
        sim_resp_done(&r);
        /* Distinct users get distinct ids and tokens. */
        assert_true(w->alice.id != w->bob.id);
        assert_string_not_equal(w->alice.token, w->bob.token);
}

/* POST /_sim/orgs {name, owners} → {id, name}; users and orgs share one
 * id space. */
static void control_org_shape_shared_id_space(void **state)
{
        struct world *w = *state;
        struct sim_resp r;

        CK_OK(sim_post(w->sim, "/_sim/orgs", NULL, "{\"name\":\"beta\",\"owners\":[\"bob\",\"carol\"]}", &r));
        assert_true(r.status == 200 || r.status == 201);
        CK_KEYS(r.json, "id", "name");
        long long beta = CK_INT(r.json, "id");
        assert_string_equal(CK_STR(r.json, "name"), "beta");
        sim_resp_done(&r);
        long long ids[] = { w->root.id, w->alice.id, w->bob.id, w->carol.id, w->acme, beta };
        for (size_t i = 0; i < 6; i++)
                for (size_t k = 0; k < i; k++)
                        if (ids[i] == ids[k])
                                fail_msg("users and orgs share an id: %lld", ids[i]);
        /* Both owners own it. */
        CK_OK(sim_get(w->sim, "/api/v1/orgs/beta/actions/runners/jobs", w->carol.token, &r));
        CK_STATUS(&r, 200);
        sim_resp_done(&r);
}

/* POST /_sim/repos {owner, name} → {id, owner, name}. */
static void control_repo_shape(void **state)
{
        struct world *w = *state;
        struct sim_resp r;

        CK_OK(sim_post(w->sim, "/_sim/repos", NULL, "{\"owner\":\"acme\",\"name\":\"docs\"}", &r));
        assert_true(r.status == 200 || r.status == 201);
        CK_KEYS(r.json, "id", "owner", "name");
        long long id = CK_INT(r.json, "id");
        assert_true(id > 0);
        assert_string_equal(CK_STR(r.json, "owner"), "acme");
        assert_string_equal(CK_STR(r.json, "name"), "docs");
        sim_resp_done(&r);
        long long ids[] = { w->alice_app, w->acme_web, w->acme_api, w->bob_tool, id };
        for (size_t i = 0; i < 5; i++)
                for (size_t k = 0; k < i; k++)
                        assert_true(ids[i] != ids[k]);
        CK_OK(sim_post(w->sim, "/_sim/repos", NULL, "{\"owner\":\"nobody\",\"name\":\"x\"}", &r));
        if (r.status < 400 || r.status > 499)
                fail_msg("repo of an unknown owner: status %ld", r.status);
        sim_resp_done(&r);
}

/* POST /_sim/jobs → {id, handle}; GET /_sim/jobs/{id} → {id, status,
 * result, task_id, runner_id, runner_name, log, created_at, claimed_at,
 * finished_at} through waiting → running → success. */
static void control_job_shape_lifecycle(void **state)
{
        struct world *w = *state;
        struct sim_resp r;
        struct sim_runner rn;

        CK_OK(sim_post(w->sim, "/_sim/jobs", NULL,
                       "{\"owner\":\"acme\",\"repo\":\"web\",\"name\":\"build\",\"runs_on\":[\"a\"],\"steps\":[\"echo hi\"]}", &r));
        assert_true(r.status == 200 || r.status == 201);
        CK_KEYS(r.json, "id", "handle");
        long long id = CK_INT(r.json, "id");
        assert_true(is_uuid(CK_STR(r.json, "handle")));
        sim_resp_done(&r);

        json_t *s = job_state(w, id);
        CK_KEYS(s, "id", "status", "result", "task_id", "runner_id", "runner_name", "log", "created_at",
                "claimed_at", "finished_at");
        assert_int_equal(CK_INT(s, "id"), id);
        assert_string_equal(CK_STR(s, "status"), "waiting");
        assert_string_equal(CK_STR(s, "result"), "");
        assert_true(id_or_null(s, "task_id", 0));
        assert_true(id_or_null(s, "runner_id", 0));
        CK_JSON_EQ(CK_ARR(s, "log"), "[]");
        assert_true(is_rfc3339_ms_utc(CK_STR(s, "created_at")));
        assert_true(json_is_null(json_object_get(s, "claimed_at")));
        assert_true(json_is_null(json_object_get(s, "finished_at")));
        json_decref(s);

        mk_runner(w, "/api/v1/orgs/acme", w->alice.token, "ctl", false, "[\"a\"]", &rn);
        long long task = claim(w, &rn);
        s = job_state(w, id);
        assert_string_equal(CK_STR(s, "status"), "running");
        assert_string_equal(CK_STR(s, "result"), "");
        assert_int_equal(CK_INT(s, "task_id"), task);
        assert_int_equal(CK_INT(s, "runner_id"), rn.id);
        assert_string_equal(CK_STR(s, "runner_name"), "ctl");
        assert_true(is_rfc3339_ms_utc(CK_STR(s, "claimed_at")));
        assert_true(json_is_null(json_object_get(s, "finished_at")));
        json_decref(s);

        update_task(w, &rn, task, "RESULT_SUCCESS");
        s = job_state(w, id);
        assert_string_equal(CK_STR(s, "status"), "success");
        assert_string_equal(CK_STR(s, "result"), "success");
        const char *created = CK_STR(s, "created_at"), *claimed = CK_STR(s, "claimed_at");
        const char *finished = CK_STR(s, "finished_at");
        assert_true(is_rfc3339_ms_utc(finished));
        /* Same format and zone: lexical order is time order. */
        assert_true(strcmp(created, claimed) <= 0 && strcmp(claimed, finished) <= 0);
        json_decref(s);
}

/* GET /_sim/jobs → array of job objects without "log". */
static void control_jobs_list_without_log(void **state)
{
        struct world *w = *state;
        struct sim_job a, b;
        json_t *all = NULL, *v;
        size_t i;

        mk_job(w, "acme", "web", "a", "[\"a\"]", &a);
        mk_job(w, "bob", "tool", "b", "[\"b\"]", &b);
        CK_OK(sim_list_jobs(w->sim, &all));
        assert_true(json_is_array(all));
        assert_int_equal(json_array_size(all), 2);
        json_array_foreach(all, i, v) {
                CK_KEYS(v, "id", "status", "result", "task_id", "runner_id", "runner_name", "created_at",
                        "claimed_at", "finished_at");
                long long id = CK_INT(v, "id");
                assert_true(id == a.id || id == b.id);
        }
        json_decref(all);
}

/* Unknown job id → 404 for GET and cancel. */
static void control_unknown_job_404(void **state)
{
        struct world *w = *state;
        struct sim_resp r;

        CK_OK(sim_get(w->sim, "/_sim/jobs/987654", NULL, &r));
        CK_STATUS(&r, 404);
        sim_resp_done(&r);
        CK_OK(sim_post(w->sim, "/_sim/jobs/987654/cancel", NULL, "{}", &r));
        CK_STATUS(&r, 404);
        sim_resp_done(&r);
}

/* GET /_sim/runners → every runner ever created, deleted ones included:
 * {id, uuid, name, description, ephemeral, deleted, labels, owner_id,
 * repo_id, tasks, version}. */
static void control_runners_include_deleted(void **state)
{
        struct world *w = *state;
        struct sim_runner keep, gone;
        struct sim_job j;
        struct sim_resp r;
        json_t *all = NULL, *v;
        size_t i;

        mk_runner(w, "/api/v1/repos/acme/web", w->alice.token, "keep", false, "[\"a\",\"b\"]", &keep);
        mk_runner(w, "/api/v1/orgs/acme", w->alice.token, "gone", true, NULL, &gone);
        mk_job(w, "acme", "web", "j", "[\"a\"]", &j);
        claim(w, &keep);
        CK_OK(sim_delete(w->sim, P("/api/v1/orgs/acme/actions/runners/%lld", gone.id), w->alice.token, &r));
        CK_STATUS(&r, 204);
        sim_resp_done(&r);
        CK_OK(sim_list_runners(w->sim, &all));
        assert_int_equal(json_array_size(all), 2);
        json_array_foreach(all, i, v) {
                CK_KEYS(v, "id", "uuid", "name", "description", "ephemeral", "deleted", "labels", "owner_id",
                        "repo_id", "tasks", "version");
                assert_string_equal(CK_STR(v, "description"), "");
                long long id = CK_INT(v, "id");
                if (id == keep.id) {
                        assert_string_equal(CK_STR(v, "uuid"), keep.uuid);
                        assert_string_equal(CK_STR(v, "name"), "keep");
                        assert_false(CK_BOOL(v, "ephemeral"));
                        assert_false(CK_BOOL(v, "deleted"));
                        CK_JSON_EQ(CK_ARR(v, "labels"), "[\"a\",\"b\"]");
                        assert_int_equal(CK_INT(v, "owner_id"), 0);
                        assert_int_equal(CK_INT(v, "repo_id"), w->acme_web);
                        assert_int_equal(CK_INT(v, "tasks"), 1);
                        assert_string_equal(CK_STR(v, "version"), "v12.9.0");
                } else {
                        assert_int_equal(id, gone.id);
                        assert_true(CK_BOOL(v, "ephemeral"));
                        assert_true(CK_BOOL(v, "deleted"));
                        assert_int_equal(CK_INT(v, "owner_id"), w->acme);
                        assert_int_equal(CK_INT(v, "repo_id"), 0);
                        assert_int_equal(CK_INT(v, "tasks"), 0);
                        assert_string_equal(CK_STR(v, "version"), "");
                }
        }
        json_decref(all);
}

/* GET /_sim/stats → {"requests": {"<METHOD> <route pattern>": N}};
 * control routes are not counted. */
static void control_stats_count_routes(void **state)
{
        struct world *w = *state;
        const char *owners[] = { "bob", NULL };
        struct sim_runner rn;
        struct sim_resp r;
        json_t *st = NULL;

        CK_OK(sim_create_org(w->sim, "beta", owners, NULL));
        mk_runner(w, "/api/v1/admin", w->root.token, "r", false, "[\"a\"]", &rn);
        for (int i = 0; i < 2; i++) {
                CK_OK(sim_get(w->sim, "/api/v1/orgs/acme/actions/runners/jobs", w->alice.token, &r));
                sim_resp_done(&r);
        }
        CK_OK(sim_get(w->sim, "/api/v1/orgs/beta/actions/runners/jobs?labels=a", w->bob.token, &r));
        sim_resp_done(&r);
        CK_OK(sim_get(w->sim, "/api/v1/admin/actions/runners/jobs", w->root.token, &r));
        sim_resp_done(&r);
        fetch(w, &rn);
        fetch(w, &rn);
        fetch(w, &rn);
        CK_OK(sim_get(w->sim, "/_sim/jobs", NULL, &r));
        sim_resp_done(&r);

        CK_OK(sim_stats(w->sim, &st));
        json_t *req = CK_OBJ(st, "requests");
        assert_int_equal(CK_INT(req, "GET /api/v1/orgs/{org}/actions/runners/jobs"), 3);
        assert_int_equal(CK_INT(req, "GET /api/v1/admin/actions/runners/jobs"), 1);
        const char *key;
        json_t *v;
        bool fetch_seen = false;
        json_object_foreach(req, key, v) {
                if (strstr(key, "/_sim"))
                        fail_msg("control route counted in stats: %s", key);
                if (strstr(key, "FetchTask")) {
                        assert_int_equal(CK_INT(req, key), 3);
                        fetch_seen = true;
                }
        }
        assert_true(fetch_seen);
        json_decref(st);
}

#define JOBS_ADMIN "/api/v1/admin/actions/runners/jobs"

static long status_of(struct world *w, const char *path, const char *token)
{
        struct sim_resp r;

        CK_OK(sim_get(w->sim, path, token, &r));
        long s = r.status;
        sim_resp_done(&r);
        return s;
}

/* Fault mode status: that HTTP status with a JSON error body, for the next
 * count matching requests. */
static void control_fault_status(void **state)
{
        struct world *w = *state;
        struct sim_resp r;

        CK_OK(sim_fault(w->sim, "{\"path_prefix\":\"/api/v1/admin\",\"mode\":\"status\",\"status\":503,\"count\":1}"));
        CK_OK(sim_get(w->sim, JOBS_ADMIN, w->root.token, &r));
        CK_STATUS(&r, 503);
        if (!json_is_object(r.json))
                fail_msg("fault body is not a JSON object: %s", r.body);
        sim_resp_done(&r);
        assert_int_equal(status_of(w, JOBS_ADMIN, w->root.token), 200);
}

/* Fault count: exactly count requests are affected. */
static void control_fault_count(void **state)
{
        struct world *w = *state;

        CK_OK(sim_fault(w->sim, "{\"path_prefix\":\"/api/v1/\",\"mode\":\"status\",\"status\":500,\"count\":2}"));
        assert_int_equal(status_of(w, JOBS_ADMIN, w->root.token), 500);
        assert_int_equal(status_of(w, "/api/v1/orgs/acme/actions/runners/jobs", w->alice.token), 500);
        assert_int_equal(status_of(w, JOBS_ADMIN, w->root.token), 200);
}

/* A fault with a method applies to that method only: a GET under the same
 * prefix goes through and does not use up the count. */
static void control_fault_method(void **state)
{
        struct world *w = *state;
        struct sim_resp r;

        CK_OK(sim_fault(w->sim, "{\"path_prefix\":\"/api/v1/admin/actions/runners\",\"method\":\"POST\","
                                "\"mode\":\"status\",\"status\":503,\"count\":1}"));
        assert_int_equal(status_of(w, JOBS_ADMIN, w->root.token), 200);
        CK_OK(sim_post(w->sim, "/api/v1/admin/actions/runners", w->root.token, "{\"name\":\"m1\"}", &r));
        assert_int_equal(r.status, 503);
        sim_resp_done(&r);
        CK_OK(sim_post(w->sim, "/api/v1/admin/actions/runners", w->root.token, "{\"name\":\"m2\"}", &r));
        assert_int_equal(r.status, 201);
        sim_resp_done(&r);
        CK_OK(sim_request(w->sim, &(struct sim_req){ .method = "POST", .path = "/_sim/faults",
                                                     .body = "{\"path_prefix\":\"/\",\"mode\":\"reset\",\"method\":\"post\"}" }, &r));
        assert_int_equal(r.status, 422);
        sim_resp_done(&r);
}

/* A test may give a job its handle (a forge sending bad data): kept as is,
 * listed as is, and bounded. */
static void control_job_handle_override(void **state)
{
        struct world *w = *state;
        struct sim_resp r;
        char body[600], big[300];

        CK_OK(sim_post(w->sim, "/_sim/jobs", NULL,
                       "{\"owner\":\"acme\",\"repo\":\"web\",\"name\":\"h\",\"runs_on\":[\"x\"],"
                       "\"handle\":\"\"}", &r));
        assert_int_equal(r.status, 201);
        assert_string_equal(json_string_value(json_object_get(r.json, "handle")), "");
        sim_resp_done(&r);
        memset(big, 'h', sizeof(big));
        big[255] = '\0';
        snprintf(body, sizeof(body), "{\"owner\":\"acme\",\"repo\":\"web\",\"name\":\"h2\",\"handle\":\"%s\"}", big);
        CK_OK(sim_post(w->sim, "/_sim/jobs", NULL, body, &r));
        assert_int_equal(r.status, 201);
        assert_int_equal(strlen(json_string_value(json_object_get(r.json, "handle"))), 255);
        sim_resp_done(&r);
        big[255] = 'h';
        big[256] = '\0';
        snprintf(body, sizeof(body), "{\"owner\":\"acme\",\"repo\":\"web\",\"name\":\"h3\",\"handle\":\"%s\"}", big);
        CK_OK(sim_post(w->sim, "/_sim/jobs", NULL, body, &r));
        assert_int_equal(r.status, 422);
        sim_resp_done(&r);
}

/* count 0 or absent: until cleared by DELETE /_sim/faults. */
static void control_fault_until_cleared(void **state)
{
        struct world *w = *state;

        CK_OK(sim_fault(w->sim, "{\"path_prefix\":\"/api/v1/admin\",\"mode\":\"status\",\"status\":429}"));
        for (int i = 0; i < 4; i++)
                assert_int_equal(status_of(w, JOBS_ADMIN, w->root.token), 429);
        CK_OK(sim_faults_clear(w->sim));
        assert_int_equal(status_of(w, JOBS_ADMIN, w->root.token), 200);
        CK_OK(sim_fault(w->sim, "{\"path_prefix\":\"/api/v1/admin\",\"mode\":\"status\",\"status\":502,\"count\":0}"));
        assert_int_equal(status_of(w, JOBS_ADMIN, w->root.token), 502);
        assert_int_equal(status_of(w, JOBS_ADMIN, w->root.token), 502);
        CK_OK(sim_faults_clear(w->sim));
        assert_int_equal(status_of(w, JOBS_ADMIN, w->root.token), 200);
}

/* Fault mode delay: sleep seconds, then answer normally. */
static void control_fault_delay(void **state)
{
        struct world *w = *state;
        struct sim_resp r;

        CK_OK(sim_fault(w->sim, "{\"path_prefix\":\"/api/v1/admin\",\"mode\":\"delay\",\"seconds\":0.6,\"count\":1}"));
        CK_OK(sim_get(w->sim, JOBS_ADMIN, w->root.token, &r));
        CK_STATUS(&r, 200);
        CK_JSON_EQ(r.json, "null");
        if (r.elapsed_s < 0.55)
                fail_msg("delayed answer came after %.3f s, expected >= 0.6 s", r.elapsed_s);
        sim_resp_done(&r);
        CK_OK(sim_get(w->sim, JOBS_ADMIN, w->root.token, &r));
        CK_STATUS(&r, 200);
        assert_true(r.elapsed_s < 0.5);
        sim_resp_done(&r);
}

/* Fault mode garbage: 200 with a body that is not JSON. */
static void control_fault_garbage(void **state)
{
        struct world *w = *state;
        struct sim_resp r;

        CK_OK(sim_fault(w->sim, "{\"path_prefix\":\"/api/v1/admin\",\"mode\":\"garbage\",\"count\":1}"));
        CK_OK(sim_get(w->sim, JOBS_ADMIN, w->root.token, &r));
        CK_STATUS(&r, 200);
        if (r.json)
                fail_msg("garbage fault answered valid JSON: %s", r.body);
        sim_resp_done(&r);
        assert_int_equal(status_of(w, JOBS_ADMIN, w->root.token), 200);
}

/* Fault mode reset: the connection closes without a response. */
static void control_fault_reset(void **state)
{
        struct world *w = *state;
        struct sim_resp r;
        const char *hdrs[] = { P("Authorization: token %s", w->root.token), NULL };
        struct sim_req req = { .method = "GET", .path = JOBS_ADMIN, .headers = hdrs, .fresh_connection = true };

        CK_OK(sim_fault(w->sim, "{\"path_prefix\":\"/api/v1/admin\",\"mode\":\"reset\",\"count\":1}"));
        int rc = sim_request(w->sim, &req, &r);
        if (rc >= 0)
                fail_msg("reset fault answered HTTP %ld: %s", r.status, r.body);
        assert_true(rc == -ECONNRESET || rc == -EIO);
        sim_resp_done(&r);
        assert_int_equal(status_of(w, JOBS_ADMIN, w->root.token), 200);
}

/* Faults apply only to paths starting with path_prefix. */
static void control_fault_prefix_only(void **state)
{
        struct world *w = *state;

        CK_OK(sim_fault(w->sim, "{\"path_prefix\":\"/api/v1/orgs/\",\"mode\":\"status\",\"status\":500}"));
        assert_int_equal(status_of(w, JOBS_ADMIN, w->root.token), 200);
        assert_int_equal(status_of(w, "/api/v1/repos/acme/web/actions/runners/jobs", w->alice.token), 200);
        assert_int_equal(status_of(w, "/api/v1/orgs/acme/actions/runners/jobs", w->alice.token), 500);
}

/* Control routes are never affected by faults. */
static void control_routes_never_faulted(void **state)
{
        struct world *w = *state;
        struct sim_resp r;
        json_t *v = NULL;

        CK_OK(sim_fault(w->sim, "{\"path_prefix\":\"/\",\"mode\":\"status\",\"status\":500}"));
        CK_OK(sim_list_jobs(w->sim, &v));
        json_decref(v);
        CK_OK(sim_list_runners(w->sim, &v));
        json_decref(v);
        CK_OK(sim_get(w->sim, "/_sim/stats", NULL, &r));
        CK_STATUS(&r, 200);
        sim_resp_done(&r);
        assert_int_equal(status_of(w, JOBS_ADMIN, w->root.token), 500);
        CK_OK(sim_faults_clear(w->sim));
        assert_int_equal(status_of(w, JOBS_ADMIN, w->root.token), 200);
}

/* Faults apply to the runner protocol as well. */
static void control_fault_rpc(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_resp r;

        mk_runner(w, "/api/v1/admin", w->root.token, "r", false, "[\"a\"]", &rn);
        CK_OK(sim_fault(w->sim, "{\"path_prefix\":\"/api/actions/runner.v1.RunnerService/FetchTask\",\"mode\":\"status\",\"status\":503,\"count\":1}"));
        CK_OK(sim_rpc(w->sim, "runner.v1.RunnerService/FetchTask", rn.uuid, rn.token, NULL, "{\"tasksVersion\":\"0\"}", &r));
        CK_STATUS(&r, 503);
        sim_resp_done(&r);
        CK_OK(sim_rpc(w->sim, "runner.v1.RunnerService/Declare", rn.uuid, rn.token, NULL, "{\"version\":\"v\",\"labels\":[\"a\"]}", &r));
        CK_STATUS(&r, 200);
        sim_resp_done(&r);
        CK_OK(sim_rpc(w->sim, "runner.v1.RunnerService/FetchTask", rn.uuid, rn.token, NULL, "{\"tasksVersion\":\"0\"}", &r));
        CK_STATUS(&r, 200);
        sim_resp_done(&r);
}

/* GET /api/v1/version (contract; Forgejo 15.0, reference §0). */
static void version_endpoint(void **state)
{
        struct world *w = *state;
        struct sim_resp r;

        CK_OK(sim_get(w->sim, "/api/v1/version", NULL, &r));
        CK_STATUS(&r, 200);
        const char *v = CK_STR(r.json, "version");
        if (strncmp(v, "15.", 3) != 0)
                fail_msg("version \"%s\" is not a Forgejo 15 version", v);
        sim_resp_done(&r);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                T(control_user_shape),
                T(control_org_shape_shared_id_space),
                T(control_repo_shape),
                T(control_job_shape_lifecycle),
                T(control_jobs_list_without_log),
                T(control_unknown_job_404),
                T(control_runners_include_deleted),
                T(control_stats_count_routes),
                T(control_fault_status),
                T(control_fault_count),
                T(control_fault_method),
                T(control_job_handle_override),
                T(control_fault_until_cleared),
                T(control_fault_delay),
                T(control_fault_garbage),
                T(control_fault_reset),
                T(control_fault_prefix_only),
                T(control_routes_never_faulted),
                T(control_fault_rpc),
                T(version_endpoint),
        };

        return WORLD_RUN(tests, argc, argv);
}
