/* runners.c: runner registration and management of forgejo-api.md §3:
 * registration tokens (§3.1), the REST runner API at the four scopes
 * (§3.2) and ephemeral runners (§3.3, forgejo-runner.md §3.3 step 7).
 * Expected values come from the reference text only; never from the
 * simulator's code or src/forge. */
#include "world.h"

#include <string.h>

struct scope {
        const char *prefix;      /* API prefix of the scope */
        const char *who;         /* "root", "alice" or "bob": the token used */
};

static const struct scope scopes[] = {
        { "/api/v1/admin", "root" },
        { "/api/v1/orgs/acme", "alice" },
        { "/api/v1/repos/acme/web", "alice" },
        { "/api/v1/user", "bob" },
};

static const char *tok(struct world *w, const char *who)
{
        if (strcmp(who, "root") == 0)
                return w->root.token;
        if (strcmp(who, "alice") == 0)
                return w->alice.token;
        return w->bob.token;
}

/* Expected (owner_id, repo_id) of a runner of scope i (forgejo-runner.md
 * §4: global 0/0, owner runner owner/0, repo runner 0/repo). */
static void scope_ids(struct world *w, size_t i, long long *owner, long long *repo)
{
        long long o[] = { 0, w->acme, 0, w->bob.id };
        long long r[] = { 0, 0, w->acme_web, 0 };

        *owner = o[i];
        *repo = r[i];
}

/* §3.2: POST …/actions/runners {name, description, ephemeral} → 201
 * {id, uuid (UUIDv4), token (40 hex)} at every scope. */
static void rest_create_runner_at_four_scopes(void **state)
{
        struct world *w = *state;
        struct sim_resp r;
        long long ids[4];
        char uuids[4][64];

        for (size_t i = 0; i < 4; i++) {
                CK_OK(sim_post(w->sim, P("%s/actions/runners", scopes[i].prefix), tok(w, scopes[i].who),
                               "{\"name\":\"builder\",\"description\":\"conformance\",\"ephemeral\":false}", &r));
                if (r.status != 201)
                        print_error("scope %s\n", scopes[i].prefix);
                CK_STATUS(&r, 201);
                ids[i] = CK_INT(r.json, "id");
                assert_true(ids[i] > 0);
                const char *uuid = CK_STR(r.json, "uuid");
                if (!is_uuid_v4(uuid))
                        fail_msg("uuid \"%s\" is not a UUIDv4", uuid);
                snprintf(uuids[i], sizeof(uuids[i]), "%s", uuid);
                const char *token = CK_STR(r.json, "token");
                if (!is_hex(token, 40))
                        fail_msg("token \"%s\" is not 40 hex characters", token);
                sim_resp_done(&r);
                for (size_t k = 0; k < i; k++) {
                        assert_true(ids[k] != ids[i]);
                        assert_string_not_equal(uuids[k], uuids[i]);
                }
        }
}

/* §3.2 ActionRunner owner_id/repo_id; forgejo-runner.md §4 scopes. */
static void rest_runner_scope_ids(void **state)
{
        struct world *w = *state;
        struct sim_resp r;

        for (size_t i = 0; i < 4; i++) {
                struct sim_runner rn;
                long long owner, repo;
                mk_runner(w, scopes[i].prefix, tok(w, scopes[i].who), "builder", false, NULL, &rn);
                scope_ids(w, i, &owner, &repo);
                CK_OK(sim_get(w->sim, P("%s/actions/runners/%lld", scopes[i].prefix, rn.id),
                              tok(w, scopes[i].who), &r));
                CK_STATUS(&r, 200);
                if (CK_INT(r.json, "owner_id") != owner || CK_INT(r.json, "repo_id") != repo)
                        fail_msg("scope %s: owner_id/repo_id %lld/%lld, expected %lld/%lld", scopes[i].prefix,
                                 CK_INT(r.json, "owner_id"), CK_INT(r.json, "repo_id"), owner, repo);
                sim_resp_done(&r);
        }
}

/* §3.2: name is required. */
static void rest_create_runner_requires_name(void **state)
{
        struct world *w = *state;
        struct sim_resp r;
        json_t *all = NULL;

        CK_OK(sim_post(w->sim, "/api/v1/orgs/acme/actions/runners", w->alice.token,
                       "{\"description\":\"no name\",\"ephemeral\":false}", &r));
        if (r.status < 400 || r.status > 499)
                fail_msg("POST without name: status %ld, expected 4xx; body %s", r.status, r.body);
        sim_resp_done(&r);
        CK_OK(sim_post(w->sim, "/api/v1/orgs/acme/actions/runners", w->alice.token,
                       "{\"name\":\"\",\"ephemeral\":false}", &r));
        if (r.status < 400 || r.status > 499)
                fail_msg("POST with empty name: status %ld, expected 4xx; body %s", r.status, r.body);
        sim_resp_done(&r);
        CK_OK(sim_list_runners(w->sim, &all));
        assert_int_equal(json_array_size(all), 0);
        json_decref(all);
}

/* §3.2 with §1.1's permission rules: runner management needs the scope's
 * owner (site admin, org owner, repo owner); no token → 401. */
static void rest_runner_api_requires_permission(void **state)
{
        struct world *w = *state;
        const char *body = "{\"name\":\"x\",\"description\":\"\",\"ephemeral\":false}";
        struct {
                const char *path;
                const char *token;
                long status;
        } cases[] = {
                { "/api/v1/admin/actions/runners", w->alice.token, 403 },
                { "/api/v1/orgs/acme/actions/runners", w->bob.token, 403 },
                { "/api/v1/repos/acme/web/actions/runners", w->bob.token, 403 },
                { "/api/v1/repos/bob/tool/actions/runners", w->carol.token, 403 },
                { "/api/v1/admin/actions/runners", NULL, 401 },
                { "/api/v1/user/actions/runners", NULL, 401 },
        };
        struct sim_resp r;
        json_t *all = NULL;

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                CK_OK(sim_post(w->sim, cases[i].path, cases[i].token, body, &r));
                if (r.status != cases[i].status)
                        print_error("case %zu: POST %s\n", i, cases[i].path);
                CK_STATUS(&r, cases[i].status);
                sim_resp_done(&r);
                CK_OK(sim_get(w->sim, cases[i].path, cases[i].token, &r));
                if (r.status != cases[i].status)
                        print_error("case %zu: GET %s\n", i, cases[i].path);
                CK_STATUS(&r, cases[i].status);
                sim_resp_done(&r);
        }
        CK_OK(sim_list_runners(w->sim, &all));
        assert_int_equal(json_array_size(all), 0);
        json_decref(all);
}

static void check_action_runner(json_t *o)
{
        CK_INT(o, "id");
        assert_true(is_uuid(CK_STR(o, "uuid")));
        CK_INT(o, "owner_id");
        CK_INT(o, "repo_id");
        CK_STR(o, "name");
        const char *st = CK_STR(o, "status");
        if (strcmp(st, "offline") && strcmp(st, "idle") && strcmp(st, "active"))
                fail_msg("runner status \"%s\" is not offline|idle|active", st);
        CK_STR(o, "version");
        json_t *labels = json_object_get(o, "labels");
        assert_true(labels && (json_is_array(labels) || json_is_null(labels)));
        CK_STR(o, "description");
        CK_BOOL(o, "ephemeral");
}

/* §3.2: GET list → bare JSON array of ActionRunner with X-Total-Count;
 * a scope lists its own runners. */
static void rest_list_runners_bare_array_with_total_count(void **state)
{
        struct world *w = *state;
        struct sim_runner a, b, c;
        struct sim_resp r;

        mk_runner(w, "/api/v1/orgs/acme", w->alice.token, "a", false, NULL, &a);
        mk_runner(w, "/api/v1/orgs/acme", w->alice.token, "b", true, NULL, &b);
        mk_runner(w, "/api/v1/repos/bob/tool", w->bob.token, "c", false, NULL, &c);
        CK_OK(sim_get(w->sim, "/api/v1/orgs/acme/actions/runners", w->alice.token, &r));
        CK_STATUS(&r, 200);
        if (!json_is_array(r.json))
                fail_msg("runner list is not a bare JSON array: %s", r.body);
        assert_int_equal(json_array_size(r.json), 2);
        assert_int_equal(r.total_count, 2);
        size_t i;
        json_t *o;
        bool seen_a = false, seen_b = false;
        json_array_foreach(r.json, i, o) {
                check_action_runner(o);
                seen_a = seen_a || CK_INT(o, "id") == a.id;
                seen_b = seen_b || CK_INT(o, "id") == b.id;
        }
        assert_true(seen_a && seen_b);
        sim_resp_done(&r);
        CK_OK(sim_get(w->sim, "/api/v1/repos/bob/tool/actions/runners", w->bob.token, &r));
        CK_STATUS(&r, 200);
        CK_IDS(r.json, P("[%lld]", c.id));
        assert_int_equal(r.total_count, 1);
        sim_resp_done(&r);
}

/* §3.2: GET …/{runner_id} → the ActionRunner. */
static void rest_get_runner_by_id(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_resp r;

        CK_OK(sim_post(w->sim, "/api/v1/orgs/acme/actions/runners", w->alice.token,
                       "{\"name\":\"getme\",\"description\":\"the description\",\"ephemeral\":true}", &r));
        CK_STATUS(&r, 201);
        rn.id = CK_INT(r.json, "id");
        snprintf(rn.uuid, sizeof(rn.uuid), "%s", CK_STR(r.json, "uuid"));
        sim_resp_done(&r);
        CK_OK(sim_get(w->sim, P("/api/v1/orgs/acme/actions/runners/%lld", rn.id), w->alice.token, &r));
        CK_STATUS(&r, 200);
        check_action_runner(r.json);
        assert_int_equal(CK_INT(r.json, "id"), rn.id);
        assert_string_equal(CK_STR(r.json, "uuid"), rn.uuid);
        assert_string_equal(CK_STR(r.json, "name"), "getme");
        assert_string_equal(CK_STR(r.json, "description"), "the description");
        assert_true(CK_BOOL(r.json, "ephemeral"));
        assert_int_equal(CK_INT(r.json, "owner_id"), w->acme);
        assert_int_equal(CK_INT(r.json, "repo_id"), 0);
        sim_resp_done(&r);
}

/* §3.2: GET/DELETE of a runner not visible from the scope → 404. */
static void rest_runner_of_other_scope_404(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_resp r;

        mk_runner(w, "/api/v1/orgs/acme", w->alice.token, "org", false, NULL, &rn);
        CK_OK(sim_get(w->sim, P("/api/v1/repos/bob/tool/actions/runners/%lld", rn.id), w->bob.token, &r));
        CK_STATUS(&r, 404);
        sim_resp_done(&r);
        CK_OK(sim_get(w->sim, P("/api/v1/user/actions/runners/%lld", rn.id), w->bob.token, &r));
        CK_STATUS(&r, 404);
        sim_resp_done(&r);
        CK_OK(sim_delete(w->sim, P("/api/v1/user/actions/runners/%lld", rn.id), w->bob.token, &r));
        CK_STATUS(&r, 404);
        sim_resp_done(&r);
        CK_OK(sim_get(w->sim, "/api/v1/orgs/acme/actions/runners/999999", w->alice.token, &r));
        CK_STATUS(&r, 404);
        sim_resp_done(&r);
}

/* §3.2: DELETE …/{id} → 204; then GET → 404 and the list shrinks. */
static void rest_delete_runner(void **state)
{
        struct world *w = *state;
        struct sim_runner a, b;
        struct sim_resp r;

        mk_runner(w, "/api/v1/repos/acme/web", w->alice.token, "a", false, NULL, &a);
        mk_runner(w, "/api/v1/repos/acme/web", w->alice.token, "b", false, NULL, &b);
        CK_OK(sim_delete(w->sim, P("/api/v1/repos/acme/web/actions/runners/%lld", a.id), w->alice.token, &r));
        CK_STATUS(&r, 204);
        sim_resp_done(&r);
        CK_OK(sim_get(w->sim, P("/api/v1/repos/acme/web/actions/runners/%lld", a.id), w->alice.token, &r));
        CK_STATUS(&r, 404);
        sim_resp_done(&r);
        CK_OK(sim_get(w->sim, "/api/v1/repos/acme/web/actions/runners", w->alice.token, &r));
        CK_STATUS(&r, 200);
        CK_IDS(r.json, P("[%lld]", b.id));
        assert_int_equal(r.total_count, 1);
        sim_resp_done(&r);
}

/* §3.2/§4.2: a deleted runner's uuid/token fail with "unauthenticated". */
static void rest_deleted_runner_credentials_fail(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_resp r;

        mk_runner(w, "/api/v1/admin", w->root.token, "gone", false, "[\"a\"]", &rn);
        CK_OK(sim_delete(w->sim, P("/api/v1/admin/actions/runners/%lld", rn.id), w->root.token, &r));
        CK_STATUS(&r, 204);
        sim_resp_done(&r);
        CK_OK(sim_rpc(w->sim, "runner.v1.RunnerService/FetchTask", rn.uuid, rn.token, NULL,
                      "{\"tasksVersion\":\"0\"}", &r));
        CK_CONNECT_ERR(&r, 401, "unauthenticated");
        sim_resp_done(&r);
        CK_OK(sim_rpc(w->sim, "runner.v1.RunnerService/Declare", rn.uuid, rn.token, NULL,
                      "{\"version\":\"v1\",\"labels\":[\"a\"]}", &r));
        CK_CONNECT_ERR(&r, 401, "unauthenticated");
        sim_resp_done(&r);
}

/* §3.2: names need not be unique. */
static void rest_runner_names_need_not_be_unique(void **state)
{
        struct world *w = *state;
        struct sim_runner a, b;
        struct sim_resp r;

        mk_runner(w, "/api/v1/user", w->bob.token, "same", false, NULL, &a);
        mk_runner(w, "/api/v1/user", w->bob.token, "same", false, NULL, &b);
        assert_true(a.id != b.id);
        assert_string_not_equal(a.uuid, b.uuid);
        CK_OK(sim_get(w->sim, "/api/v1/user/actions/runners", w->bob.token, &r));
        CK_STATUS(&r, 200);
        assert_int_equal(json_array_size(r.json), 2);
        sim_resp_done(&r);
}

/* §3.2: a runner created through POST has no labels and no version and
 * matches no job until it calls Declare. */
static void rest_runner_has_no_labels_until_declare(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_job j;
        struct sim_resp r;

        mk_job(w, "acme", "web", "j", "[\"a\"]", &j);
        mk_runner(w, "/api/v1/orgs/acme", w->alice.token, "fresh", false, NULL, &rn);
        CK_OK(sim_get(w->sim, P("/api/v1/orgs/acme/actions/runners/%lld", rn.id), w->alice.token, &r));
        CK_STATUS(&r, 200);
        json_t *labels = json_object_get(r.json, "labels");
        if (!(json_is_null(labels) || (json_is_array(labels) && json_array_size(labels) == 0)))
                fail_msg("a REST-created runner has labels: %s", r.body);
        assert_string_equal(CK_STR(r.json, "version"), "");
        sim_resp_done(&r);
        assert_int_equal(fetch(w, &rn), 0);
        assert_string_equal(job_status(w, j.id), "waiting");
        CK_OK(sim_runner_declare(w->sim, &rn, "[\"a\"]"));
        assert_true(fetch(w, &rn) > 0);
        assert_string_equal(job_status(w, j.id), "running");
}

/* §3.2: GET list with visible=true also lists runners usable from the
 * scope (here: a global runner from the org scope); without it only the
 * scope's own runners. */
static void rest_list_runners_visible_includes_global(void **state)
{
        struct world *w = *state;
        struct sim_runner global, org, other;
        struct sim_resp r;

        mk_runner(w, "/api/v1/admin", w->root.token, "global", false, NULL, &global);
        mk_runner(w, "/api/v1/orgs/acme", w->alice.token, "org", false, NULL, &org);
        mk_runner(w, "/api/v1/user", w->bob.token, "other", false, NULL, &other);
        CK_OK(sim_get(w->sim, "/api/v1/orgs/acme/actions/runners", w->alice.token, &r));
        CK_STATUS(&r, 200);
        CK_IDS(r.json, P("[%lld]", org.id));
        sim_resp_done(&r);
        CK_OK(sim_get(w->sim, "/api/v1/orgs/acme/actions/runners?visible=true", w->alice.token, &r));
        CK_STATUS(&r, 200);
        assert_int_equal(json_array_size(r.json), 2);
        assert_int_equal(r.total_count, 2);
        bool g = false, o = false;
        size_t i;
        json_t *v;
        json_array_foreach(r.json, i, v) {
                g = g || CK_INT(v, "id") == global.id;
                o = o || CK_INT(v, "id") == org.id;
        }
        assert_true(g && o);
        sim_resp_done(&r);
}

/* §3.2: the list reads page and limit; X-Total-Count is the total. */
static void rest_list_runners_paginated(void **state)
{
        struct world *w = *state;
        struct sim_runner rn[3];
        struct sim_resp r;
        long long seen[3] = { 0 };

        for (int i = 0; i < 3; i++)
                mk_runner(w, "/api/v1/user", w->bob.token, P("r%d", i), false, NULL, &rn[i]);
        for (int page = 1; page <= 3; page++) {
                CK_OK(sim_get(w->sim, P("/api/v1/user/actions/runners?page=%d&limit=1", page), w->bob.token, &r));
                CK_STATUS(&r, 200);
                assert_int_equal(json_array_size(r.json), 1);
                assert_int_equal(r.total_count, 3);
                seen[page - 1] = CK_INT(json_array_get(r.json, 0), "id");
                sim_resp_done(&r);
        }
        assert_true(seen[0] != seen[1] && seen[1] != seen[2] && seen[0] != seen[2]);
        CK_OK(sim_get(w->sim, "/api/v1/user/actions/runners?page=4&limit=1", w->bob.token, &r));
        CK_STATUS(&r, 200);
        assert_true(json_is_array(r.json) && json_array_size(r.json) == 0);
        assert_int_equal(r.total_count, 3);
        sim_resp_done(&r);
}

static const char *runner_status(struct world *w, long long id)
{
        static char buf[32];
        struct sim_resp r;

        CK_OK(sim_get(w->sim, P("/api/v1/admin/actions/runners/%lld", id), w->root.token, &r));
        CK_STATUS(&r, 200);
        snprintf(buf, sizeof(buf), "%s", CK_STR(r.json, "status"));
        sim_resp_done(&r);
        return buf;
}

/* §3.2 status rule with §4.2 side effects: never online → "offline"; any
 * authenticated call sets last_online → "idle"; UpdateTask/UpdateLog set
 * last_active → "active" (within 10 s). */
static void rest_runner_status_offline_idle_active(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_job j;

        mk_runner(w, "/api/v1/admin", w->root.token, "r", false, NULL, &rn);
        assert_string_equal(runner_status(w, rn.id), "offline");
        CK_OK(sim_runner_declare(w->sim, &rn, "[\"a\"]"));
        assert_string_equal(runner_status(w, rn.id), "idle");
        mk_job(w, "acme", "web", "j", "[\"a\"]", &j);
        long long task = claim(w, &rn);
        assert_string_equal(runner_status(w, rn.id), "idle");
        update_task(w, &rn, task, "RESULT_UNSPECIFIED");
        assert_string_equal(runner_status(w, rn.id), "active");
}

/* §3.2 status rule over time (test clock): "active" while the last
 * UpdateTask/UpdateLog is at most 10 s old, then "idle" while the last
 * authenticated call is at most 1 min old, then "offline" (Forgejo's
 * "time.Since(last) > RunnerIdleTime/RunnerOfflineTime"). */
static void rest_runner_status_ages_with_time(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_job j;

        mk_runner(w, "/api/v1/admin", w->root.token, "r", false, "[\"a\"]", &rn);
        mk_job(w, "acme", "web", "j", "[\"a\"]", &j);
        long long task = claim(w, &rn);
        update_task(w, &rn, task, "RESULT_UNSPECIFIED");
        advance(w, 10000);
        assert_string_equal(runner_status(w, rn.id), "active");
        advance(w, 1);
        assert_string_equal(runner_status(w, rn.id), "idle");
        advance(w, 60000 - 10001);
        assert_string_equal(runner_status(w, rn.id), "idle");
        advance(w, 1);
        assert_string_equal(runner_status(w, rn.id), "offline");
        /* The listing judges by the same clock. */
        struct sim_resp r;
        CK_OK(sim_get(w->sim, "/api/v1/admin/actions/runners", w->root.token, &r));
        CK_STATUS(&r, 200);
        assert_string_equal(CK_STR(json_array_get(r.json, 0), "status"), "offline");
        sim_resp_done(&r);
        /* Any authenticated call brings it back to idle, UpdateTask to active. */
        assert_int_equal(fetch(w, &rn), 0);
        assert_string_equal(runner_status(w, rn.id), "idle");
        update_task(w, &rn, task, "RESULT_UNSPECIFIED");
        assert_string_equal(runner_status(w, rn.id), "active");
}

/* §3.2 DELETE needs the scope's owner. */
static void rest_delete_runner_requires_permission(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_resp r;

        mk_runner(w, "/api/v1/orgs/acme", w->alice.token, "org", false, NULL, &rn);
        CK_OK(sim_delete(w->sim, P("/api/v1/orgs/acme/actions/runners/%lld", rn.id), w->bob.token, &r));
        CK_STATUS(&r, 403);
        sim_resp_done(&r);
        CK_OK(sim_delete(w->sim, P("/api/v1/orgs/acme/actions/runners/%lld", rn.id), NULL, &r));
        CK_STATUS(&r, 401);
        sim_resp_done(&r);
        CK_OK(sim_get(w->sim, P("/api/v1/orgs/acme/actions/runners/%lld", rn.id), w->alice.token, &r));
        CK_STATUS(&r, 200);
        sim_resp_done(&r);
}

static const char *const token_paths[] = {
        "/api/v1/admin/runners/registration-token",
        "/api/v1/admin/actions/runners/registration-token",
        "/api/v1/orgs/acme/actions/runners/registration-token",
        "/api/v1/repos/acme/web/actions/runners/registration-token",
        "/api/v1/user/actions/runners/registration-token",
};

static void reg_token(struct world *w, const char *path, const char *token, char *out, size_t n)
{
        struct sim_resp r;

        CK_OK(sim_get(w->sim, path, token, &r));
        if (r.status != 200)
                print_error("GET %s\n", path);
        CK_STATUS(&r, 200);
        const char *t = CK_STR(r.json, "token");
        assert_true(*t);
        snprintf(out, n, "%s", t);
        sim_resp_done(&r);
}

/* §3.1: GET registration-token at every scope (both admin paths) →
 * {"token": …}, stable until replaced, the same for both admin paths and
 * distinct per scope. */
static void registration_token_at_four_scopes(void **state)
{
        struct world *w = *state;
        const char *who[] = { w->root.token, w->root.token, w->alice.token, w->alice.token, w->bob.token };
        char t1[5][256], t2[5][256];

        for (size_t i = 0; i < 5; i++)
                reg_token(w, token_paths[i], who[i], t1[i], sizeof(t1[i]));
        for (size_t i = 0; i < 5; i++) {
                reg_token(w, token_paths[i], who[i], t2[i], sizeof(t2[i]));
                assert_string_equal(t1[i], t2[i]);
        }
        assert_string_equal(t1[0], t1[1]);
        for (size_t i = 1; i < 5; i++)
                for (size_t k = 1; k < i; k++)
                        assert_string_not_equal(t1[i], t1[k]);
}

/* §3.1 with §1.1's owner rules. */
static void registration_token_requires_permission(void **state)
{
        struct world *w = *state;
        struct {
                const char *path;
                const char *token;
                long status;
        } cases[] = {
                { token_paths[0], w->alice.token, 403 },
                { token_paths[1], w->alice.token, 403 },
                { token_paths[2], w->bob.token, 403 },
                { token_paths[3], w->bob.token, 403 },
                { token_paths[4], NULL, 401 },
                { token_paths[1], NULL, 401 },
        };
        struct sim_resp r;

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                CK_OK(sim_get(w->sim, cases[i].path, cases[i].token, &r));
                if (r.status != cases[i].status)
                        print_error("case %zu: GET %s\n", i, cases[i].path);
                CK_STATUS(&r, cases[i].status);
                sim_resp_done(&r);
        }
}

/* §3.1/§4.3: Register with a scope's token creates a runner of that scope,
 * and the token stays usable for any number of Register calls. */
static void registration_token_registers_runner_of_its_scope(void **state)
{
        struct world *w = *state;
        const char *who[] = { w->root.token, w->alice.token, w->alice.token, w->bob.token };
        const char *paths[] = { token_paths[1], token_paths[2], token_paths[3], token_paths[4] };
        struct sim_resp r;
        char t[256];

        for (size_t i = 0; i < 4; i++) {
                long long owner, repo;
                char uuid[2][64];
                scope_ids(w, i, &owner, &repo);
                reg_token(w, paths[i], who[i], t, sizeof(t));
                for (int k = 0; k < 2; k++) {
                        CK_OK(sim_rpc(w->sim, "runner.v1.RunnerService/Register", NULL, NULL, NULL,
                                      P("{\"token\":\"%s\",\"name\":\"reg%zu\",\"version\":\"v12.9.0\",\"labels\":[\"a\"]}", t, i),
                                      &r));
                        CK_STATUS(&r, 200);
                        json_t *runner = CK_OBJ(r.json, "runner");
                        snprintf(uuid[k], sizeof(uuid[k]), "%s", CK_STR(runner, "uuid"));
                        long long id = CK_I64S(runner, "id");
                        sim_resp_done(&r);
                        json_t *sr = NULL;
                        CK_OK(sim_find_runner(w->sim, uuid[k], &sr));
                        if (CK_INT(sr, "owner_id") != owner || CK_INT(sr, "repo_id") != repo)
                                fail_msg("runner registered with the %s token: owner_id/repo_id %lld/%lld, expected %lld/%lld",
                                         paths[i], CK_INT(sr, "owner_id"), CK_INT(sr, "repo_id"), owner, repo);
                        json_decref(sr);
                        /* Visible through the REST API of the same scope. */
                        CK_OK(sim_get(w->sim, P("%s/actions/runners/%lld", scopes[i].prefix, id), who[i], &r));
                        CK_STATUS(&r, 200);
                        assert_string_equal(CK_STR(r.json, "uuid"), uuid[k]);
                        sim_resp_done(&r);
                }
                assert_string_not_equal(uuid[0], uuid[1]);
        }
}

/* §3.3: an ephemeral runner gets at most one task. */
static void ephemeral_runner_gets_at_most_one_task(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_job j1, j2;
        json_t *sr = NULL;

        mk_job(w, "acme", "web", "j1", "[\"a\"]", &j1);
        mk_job(w, "acme", "web", "j2", "[\"a\"]", &j2);
        mk_runner(w, "/api/v1/orgs/acme", w->alice.token, "eph", true, "[\"a\"]", &rn);
        long long task = claim(w, &rn);
        assert_int_equal(fetch(w, &rn), 0);
        /* Heartbeats keep it running and still give no second task. */
        assert_string_equal(update_task(w, &rn, task, "RESULT_UNSPECIFIED"), "RESULT_UNSPECIFIED");
        assert_int_equal(fetch(w, &rn), 0);
        CK_OK(sim_find_runner(w->sim, rn.uuid, &sr));
        assert_true(CK_BOOL(sr, "ephemeral"));
        assert_int_equal(CK_INT(sr, "tasks"), 1);
        json_decref(sr);
        /* One of the two jobs is running, the other still waiting. */
        char s1[32], s2[32];
        snprintf(s1, sizeof(s1), "%s", job_status(w, j1.id));
        snprintf(s2, sizeof(s2), "%s", job_status(w, j2.id));
        if (!((strcmp(s1, "running") == 0 && strcmp(s2, "waiting") == 0) ||
              (strcmp(s1, "waiting") == 0 && strcmp(s2, "running") == 0)))
                fail_msg("job statuses %s/%s, expected one running and one waiting", s1, s2);
}

/* §3.3: UpdateTask with a final result deletes the ephemeral runner; its
 * uuid/token then fail with "unauthenticated". */
static void ephemeral_runner_deleted_on_final_result(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_job j;
        struct sim_resp r;
        json_t *sr = NULL;

        mk_job(w, "acme", "web", "j", "[\"a\"]", &j);
        mk_runner(w, "/api/v1/orgs/acme", w->alice.token, "eph", true, "[\"a\"]", &rn);
        long long task = claim(w, &rn);
        update_task(w, &rn, task, "RESULT_UNSPECIFIED");
        CK_OK(sim_find_runner(w->sim, rn.uuid, &sr));
        assert_false(CK_BOOL(sr, "deleted"));
        json_decref(sr);
        update_task(w, &rn, task, "RESULT_SUCCESS");
        assert_string_equal(job_status(w, j.id), "success");
        CK_OK(sim_find_runner(w->sim, rn.uuid, &sr));
        assert_true(CK_BOOL(sr, "deleted"));
        json_decref(sr);
        CK_OK(sim_get(w->sim, P("/api/v1/orgs/acme/actions/runners/%lld", rn.id), w->alice.token, &r));
        CK_STATUS(&r, 404);
        sim_resp_done(&r);
        CK_OK(sim_rpc(w->sim, "runner.v1.RunnerService/FetchTask", rn.uuid, rn.token, NULL,
                      "{\"tasksVersion\":\"0\"}", &r));
        CK_CONNECT_ERR(&r, 401, "unauthenticated");
        sim_resp_done(&r);
}

/* §3.3: StopTask (cancel) deletes the ephemeral runner too. */
static void ephemeral_runner_deleted_on_cancel(void **state)
{
        struct world *w = *state;
        struct sim_runner rn;
        struct sim_job j;
        struct sim_resp r;
        json_t *sr = NULL;

        mk_job(w, "acme", "web", "j", "[\"a\"]", &j);
        mk_runner(w, "/api/v1/admin", w->root.token, "eph", true, "[\"a\"]", &rn);
        long long task = claim(w, &rn);
        CK_OK(sim_cancel_job(w->sim, j.id));
        assert_string_equal(job_status(w, j.id), "cancelled");
        CK_OK(sim_find_runner(w->sim, rn.uuid, &sr));
        assert_true(CK_BOOL(sr, "deleted"));
        json_decref(sr);
        CK_OK(sim_rpc(w->sim, "runner.v1.RunnerService/UpdateTask", rn.uuid, rn.token, NULL,
                      P("{\"state\":{\"id\":\"%lld\",\"result\":\"RESULT_UNSPECIFIED\"}}", task), &r));
        CK_CONNECT_ERR(&r, 401, "unauthenticated");
        sim_resp_done(&r);
}

/* §3.3/§4.3: Register {ephemeral: true} makes an ephemeral runner
 * (Runner.ephemeral in the response) with the one-task rule; registration
 * tokens are not affected by its deletion. */
static void ephemeral_runner_via_register(void **state)
{
        struct world *w = *state;
        struct sim_runner rn = { 0 };
        struct sim_job j1, j2;
        struct sim_resp r;
        char t[256];

        mk_job(w, "bob", "tool", "j1", "[\"a\"]", &j1);
        mk_job(w, "bob", "tool", "j2", "[\"a\"]", &j2);
        reg_token(w, token_paths[4], w->bob.token, t, sizeof(t));
        CK_OK(sim_rpc(w->sim, "runner.v1.RunnerService/Register", NULL, NULL, NULL,
                      P("{\"token\":\"%s\",\"name\":\"eph\",\"version\":\"v12.9.0\",\"labels\":[\"a\"],\"ephemeral\":true}", t),
                      &r));
        CK_STATUS(&r, 200);
        json_t *runner = CK_OBJ(r.json, "runner");
        assert_true(CK_BOOL(runner, "ephemeral"));
        snprintf(rn.uuid, sizeof(rn.uuid), "%s", CK_STR(runner, "uuid"));
        snprintf(rn.token, sizeof(rn.token), "%s", CK_STR(runner, "token"));
        sim_resp_done(&r);
        long long task = claim(w, &rn);
        assert_int_equal(fetch(w, &rn), 0);
        update_task(w, &rn, task, "RESULT_FAILURE");
        CK_OK(sim_rpc(w->sim, "runner.v1.RunnerService/FetchTask", rn.uuid, rn.token, NULL,
                      "{\"tasksVersion\":\"0\"}", &r));
        CK_CONNECT_ERR(&r, 401, "unauthenticated");
        sim_resp_done(&r);
        /* The registration token still registers runners. */
        CK_OK(sim_rpc(w->sim, "runner.v1.RunnerService/Register", NULL, NULL, NULL,
                      P("{\"token\":\"%s\",\"name\":\"next\",\"labels\":[\"a\"],\"ephemeral\":true}", t), &r));
        CK_STATUS(&r, 200);
        sim_resp_done(&r);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                T(rest_create_runner_at_four_scopes),
                T(rest_runner_scope_ids),
                T(rest_create_runner_requires_name),
                T(rest_runner_api_requires_permission),
                T(rest_list_runners_bare_array_with_total_count),
                T(rest_get_runner_by_id),
                T(rest_runner_of_other_scope_404),
                T(rest_delete_runner),
                T(rest_deleted_runner_credentials_fail),
                T(rest_runner_names_need_not_be_unique),
                T(rest_runner_has_no_labels_until_declare),
                T(rest_list_runners_visible_includes_global),
                T(rest_list_runners_paginated),
                T(rest_runner_status_offline_idle_active),
                TC(rest_runner_status_ages_with_time),
                T(rest_delete_runner_requires_permission),
                T(registration_token_at_four_scopes),
                T(registration_token_requires_permission),
                T(registration_token_registers_runner_of_its_scope),
                T(ephemeral_runner_gets_at_most_one_task),
                T(ephemeral_runner_deleted_on_final_result),
                T(ephemeral_runner_deleted_on_cancel),
                T(ephemeral_runner_via_register),
        };

        return WORLD_RUN(tests, argc, argv);
}
