/* jobs.c: the pending-job listings of forgejo-api.md §1 (paths and
 * permissions §1.1, selection and labels §1.2, the ActionRunJob shape
 * §1.3) checked against forgejo-sim. Expected values come from the
 * reference text only; never from the simulator's code or src/forge. */
#include "world.h"

#include <string.h>

#define ADMIN  "/api/v1/admin/actions/runners/jobs"
#define LEGACY "/api/v1/admin/runners/jobs"
#define ORG    "/api/v1/orgs/acme/actions/runners/jobs"
#define USER   "/api/v1/user/actions/runners/jobs"
#define REPO   "/api/v1/repos/acme/web/actions/runners/jobs"

/* GETs path and checks the listed ids against lit ("null": the literal
 * JSON null body of an empty result, §1.2). */
#define EXPECT_IDS(w, path, token, lit) expect_ids((w), (path), (token), (lit), __FILE__, __LINE__)

static void expect_ids(struct world *w, const char *path, const char *token, const char *lit,
                       const char *file, int line)
{
        struct sim_resp r;

        CK_OK(sim_get(w->sim, path, token, &r));
        ck_status_(&r, 200, file, line);
        if (strcmp(lit, "null") == 0) {
                /* The body is the JSON literal null (Go nil slice), not []. */
                const char *b = r.body;
                size_t n = r.len;
                while (n && (b[n - 1] == '\n' || b[n - 1] == ' ' || b[n - 1] == '\r'))
                        n--;
                if (n != 4 || memcmp(b, "null", 4) != 0)
                        ck_json_eq_(r.json, "null", file, line);
        } else {
                ck_ids_(r.json, lit, file, line);
        }
        sim_resp_done(&r);
}

/* §1.2 step 1 and 3: no labels key → every waiting/running job in scope. */
static void labels_absent_returns_every_job(void **state)
{
        struct world *w = *state;
        struct sim_job j1, j2, j3;

        mk_job(w, "acme", "web", "j1", "[\"a\"]", &j1);
        mk_job(w, "alice", "app", "j2", "[]", &j2);
        mk_job(w, "bob", "tool", "j3", "[\"x\",\"y\"]", &j3);
        EXPECT_IDS(w, ADMIN, w->root.token, P("[%lld,%lld,%lld]", j3.id, j2.id, j1.id));
}

/* §1.2 step 3: "labels=" sent empty → only jobs whose runs_on is empty. */
static void labels_empty_returns_only_empty_runs_on(void **state)
{
        struct world *w = *state;
        struct sim_job j1, j2, j3;

        mk_job(w, "acme", "web", "j1", "[\"a\"]", &j1);
        mk_job(w, "alice", "app", "j2", "[]", &j2);
        mk_job(w, "bob", "tool", "j3", "[\"x\",\"y\"]", &j3);
        EXPECT_IDS(w, ADMIN "?labels=", w->root.token, P("[%lld]", j2.id));
        /* Blanks only: the whole value is trimmed (step 1), so it is empty. */
        EXPECT_IDS(w, ADMIN "?labels=%20%20", w->root.token, P("[%lld]", j2.id));
}

/* §1.2 ItRunsOn: kept iff runs_on is non-empty and a subset of the set. */
static void labels_runs_on_subset_of_given_set(void **state)
{
        struct world *w = *state;
        struct sim_job j1, j2, j3, j4;

        mk_job(w, "acme", "web", "j1", "[\"a\"]", &j1);
        mk_job(w, "acme", "web", "j2", "[\"a\",\"b\"]", &j2);
        mk_job(w, "acme", "web", "j3", "[\"a\",\"d\"]", &j3);
        mk_job(w, "acme", "web", "j4", "[]", &j4);
        EXPECT_IDS(w, ADMIN "?labels=a,b,c", w->root.token, P("[%lld,%lld]", j2.id, j1.id));
}

/* §1.2: "A job with runs-on: [a, b] matches labels=a,b,c but not labels=a". */
static void labels_ab_matches_abc_not_a(void **state)
{
        struct world *w = *state;
        struct sim_job j;

        mk_job(w, "acme", "web", "j", "[\"a\",\"b\"]", &j);
        EXPECT_IDS(w, ADMIN "?labels=a,b,c", w->root.token, P("[%lld]", j.id));
        EXPECT_IDS(w, ADMIN "?labels=a", w->root.token, "null");
}

/* §1.2 step 1: the whole value is trimmed, single labels are not:
 * "a, b" gives "a" and " b". */
static void labels_split_without_per_label_trim(void **state)
{
        struct world *w = *state;
        struct sim_job ja, jb, jsb;

        mk_job(w, "acme", "web", "ja", "[\"a\"]", &ja);
        mk_job(w, "acme", "web", "jb", "[\"b\"]", &jb);
        mk_job(w, "acme", "web", "jsb", "[\" b\"]", &jsb);
        EXPECT_IDS(w, ADMIN "?labels=a,%20b", w->root.token, P("[%lld,%lld]", jsb.id, ja.id));
        EXPECT_IDS(w, ADMIN "?labels=%20a,b%20", w->root.token, P("[%lld,%lld]", jb.id, ja.id));
        /* The value is URL-decoded before the split. */
        EXPECT_IDS(w, ADMIN "?labels=a%2Cb", w->root.token, P("[%lld,%lld]", jb.id, ja.id));
}

/* §1.2 step 1: only the first labels= value is used. */
static void labels_only_first_value_counts(void **state)
{
        struct world *w = *state;
        struct sim_job jx, ja, je;

        mk_job(w, "acme", "web", "jx", "[\"x\"]", &jx);
        mk_job(w, "acme", "web", "ja", "[\"a\"]", &ja);
        mk_job(w, "acme", "web", "je", "[]", &je);
        EXPECT_IDS(w, ADMIN "?labels=x&labels=a", w->root.token, P("[%lld]", jx.id));
        EXPECT_IDS(w, ADMIN "?labels=a&labels=x", w->root.token, P("[%lld]", ja.id));
        EXPECT_IDS(w, ADMIN "?labels=&labels=a", w->root.token, P("[%lld]", je.id));
}

/* §1.2: exact, case-sensitive string comparison (no prefix matching). */
static void labels_exact_and_case_sensitive(void **state)
{
        struct world *w = *state;
        struct sim_job jl, ju;

        mk_job(w, "acme", "web", "jl", "[\"Linux\"]", &jl);
        mk_job(w, "acme", "web", "ju", "[\"ubuntu-latest\"]", &ju);
        EXPECT_IDS(w, ADMIN "?labels=linux", w->root.token, "null");
        EXPECT_IDS(w, ADMIN "?labels=Linux", w->root.token, P("[%lld]", jl.id));
        EXPECT_IDS(w, ADMIN "?labels=ubuntu", w->root.token, "null");
        EXPECT_IDS(w, ADMIN "?labels=ubuntu-latest,LINUX", w->root.token, P("[%lld]", ju.id));
}

/* §1.2 step 2: waiting and running jobs only; finished and cancelled
 * jobs disappear. */
static void results_only_waiting_and_running(void **state)
{
        struct world *w = *state;
        struct sim_job run, ok, bad, cancelled, waiting;
        struct sim_runner r1, r2, r3;

        mk_job(w, "acme", "web", "run", "[\"l1\"]", &run);
        mk_job(w, "acme", "web", "ok", "[\"l2\"]", &ok);
        mk_job(w, "acme", "web", "bad", "[\"l3\"]", &bad);
        mk_job(w, "acme", "web", "cancelled", "[\"l4\"]", &cancelled);
        mk_job(w, "acme", "web", "waiting", "[\"l5\"]", &waiting);
        mk_runner(w, "/api/v1/admin", w->root.token, "r1", false, "[\"l1\"]", &r1);
        mk_runner(w, "/api/v1/admin", w->root.token, "r2", false, "[\"l2\"]", &r2);
        mk_runner(w, "/api/v1/admin", w->root.token, "r3", false, "[\"l3\"]", &r3);
        claim(w, &r1);
        update_task(w, &r2, claim(w, &r2), "RESULT_SUCCESS");
        update_task(w, &r3, claim(w, &r3), "RESULT_FAILURE");
        CK_OK(sim_cancel_job(w->sim, cancelled.id));
        EXPECT_IDS(w, ADMIN, w->root.token, P("[%lld,%lld]", waiting.id, run.id));
}

/* §1.2 step 2: ordered by id descending, no pagination. */
static void results_id_descending(void **state)
{
        struct world *w = *state;
        struct sim_job j[6];
        const char *repos[6][2] = { { "bob", "tool" }, { "acme", "web" }, { "alice", "app" },
                                    { "acme", "api" }, { "acme", "web" }, { "bob", "tool" } };

        for (int i = 0; i < 6; i++)
                mk_job(w, repos[i][0], repos[i][1], P("j%d", i), "[\"a\"]", &j[i]);
        EXPECT_IDS(w, ADMIN "?page=1&limit=2", w->root.token,
                   P("[%lld,%lld,%lld,%lld,%lld,%lld]", j[5].id, j[4].id, j[3].id, j[2].id, j[1].id, j[0].id));
}

/* §1.2: an empty result is the JSON literal null, not []. */
static void results_empty_is_literal_null(void **state)
{
        struct world *w = *state;
        struct sim_job j;

        EXPECT_IDS(w, ADMIN, w->root.token, "null");
        mk_job(w, "bob", "tool", "j", "[\"a\"]", &j);
        EXPECT_IDS(w, ORG, w->alice.token, "null");
        EXPECT_IDS(w, ADMIN "?labels=zzz", w->root.token, "null");
}

/* §1.3: ActionRunJob fields and JSON types. */
static void job_fields_and_types(void **state)
{
        struct world *w = *state;
        struct sim_job j;
        struct sim_resp r;

        mk_job(w, "acme", "web", "build", "[\"a\",\"b\"]", &j);
        CK_OK(sim_get(w->sim, ADMIN, w->root.token, &r));
        CK_STATUS(&r, 200);
        assert_true(json_is_array(r.json));
        assert_int_equal(json_array_size(r.json), 1);
        json_t *o = json_array_get(r.json, 0);
        assert_int_equal(CK_INT(o, "id"), j.id);
        assert_int_equal(CK_INT(o, "attempt"), 1);
        const char *handle = CK_STR(o, "handle");
        assert_string_equal(handle, j.handle);
        assert_true(is_uuid(handle));
        assert_int_equal(CK_INT(o, "repo_id"), w->acme_web);
        assert_int_equal(CK_INT(o, "owner_id"), w->acme);
        assert_string_equal(CK_STR(o, "name"), "build");
        json_t *needs = json_object_get(o, "needs");
        assert_true(needs && (json_is_null(needs) || json_is_array(needs)));
        CK_JSON_EQ(json_object_get(o, "runs_on"), "[\"a\",\"b\"]");
        assert_int_equal(CK_INT(o, "task_id"), 0);
        assert_string_equal(CK_STR(o, "status"), "waiting");
        sim_resp_done(&r);
}

/* §1.3: owner_id is the repository owner (a user here, not an org). */
static void job_owner_id_is_repo_owner(void **state)
{
        struct world *w = *state;
        struct sim_job j;
        struct sim_resp r;

        mk_job(w, "alice", "app", "build", "[\"a\"]", &j);
        CK_OK(sim_get(w->sim, ADMIN, w->root.token, &r));
        CK_STATUS(&r, 200);
        json_t *o = json_array_get(r.json, 0);
        assert_non_null(o);
        assert_int_equal(CK_INT(o, "owner_id"), w->alice.id);
        assert_int_equal(CK_INT(o, "repo_id"), w->alice_app);
        sim_resp_done(&r);
}

/* §1.2/§1.3: a claimed job is listed as "running" with its task_id set. */
static void job_running_with_task_id_once_claimed(void **state)
{
        struct world *w = *state;
        struct sim_job j;
        struct sim_runner rn;
        struct sim_resp r;

        mk_job(w, "acme", "web", "build", "[\"a\"]", &j);
        mk_runner(w, "/api/v1/admin", w->root.token, "r", false, "[\"a\"]", &rn);
        long long task = claim(w, &rn);
        CK_OK(sim_get(w->sim, ADMIN, w->root.token, &r));
        CK_STATUS(&r, 200);
        json_t *o = json_array_get(r.json, 0);
        assert_non_null(o);
        assert_int_equal(CK_INT(o, "id"), j.id);
        assert_string_equal(CK_STR(o, "status"), "running");
        assert_int_equal(CK_INT(o, "task_id"), task);
        sim_resp_done(&r);
}

static const char *const all_paths[] = { ADMIN, LEGACY, ORG, USER, REPO };

/* §1.1: every route requires a token (reqToken) → 401 without one. */
static void perm_no_token_401(void **state)
{
        struct world *w = *state;
        struct sim_resp r;

        for (size_t i = 0; i < 5; i++) {
                CK_OK(sim_get(w->sim, all_paths[i], NULL, &r));
                if (r.status != 401)
                        print_error("GET %s without a token\n", all_paths[i]);
                CK_STATUS(&r, 401);
                sim_resp_done(&r);
        }
}

/* §1.1: an unknown token is not authenticated → 401. */
static void perm_bad_token_401(void **state)
{
        struct world *w = *state;
        struct sim_resp r;

        for (size_t i = 0; i < 5; i++) {
                CK_OK(sim_get(w->sim, all_paths[i], "0123456789abcdef0123456789abcdef01234567", &r));
                if (r.status != 401)
                        print_error("GET %s with an unknown token\n", all_paths[i]);
                CK_STATUS(&r, 401);
                sim_resp_done(&r);
        }
}

/* §1.1: the instance scope needs a site admin (reqSiteAdmin) → 403. */
static void perm_instance_requires_site_admin(void **state)
{
        struct world *w = *state;
        struct sim_resp r;

        CK_OK(sim_get(w->sim, ADMIN, w->alice.token, &r));
        CK_STATUS(&r, 403);
        sim_resp_done(&r);
        CK_OK(sim_get(w->sim, LEGACY, w->alice.token, &r));
        CK_STATUS(&r, 403);
        sim_resp_done(&r);
        CK_OK(sim_get(w->sim, ADMIN, w->root.token, &r));
        CK_STATUS(&r, 200);
        sim_resp_done(&r);
}

/* §1.1: /api/v1/admin/runners/jobs (11.0, deprecated in 15.0) is still
 * routed and answers like the 15.0 path. */
static void perm_legacy_admin_path_works(void **state)
{
        struct world *w = *state;
        struct sim_job j1, j2;

        EXPECT_IDS(w, LEGACY, w->root.token, "null");
        mk_job(w, "acme", "web", "j1", "[\"a\"]", &j1);
        mk_job(w, "bob", "tool", "j2", "[\"b\"]", &j2);
        EXPECT_IDS(w, LEGACY, w->root.token, P("[%lld,%lld]", j2.id, j1.id));
        EXPECT_IDS(w, LEGACY "?labels=a", w->root.token, P("[%lld]", j1.id));
}

/* §1.1: the organization scope needs an organization owner. */
static void perm_org_requires_owner(void **state)
{
        struct world *w = *state;
        struct sim_resp r;

        CK_OK(sim_get(w->sim, ORG, w->bob.token, &r));
        CK_STATUS(&r, 403);
        sim_resp_done(&r);
        CK_OK(sim_get(w->sim, ORG, w->alice.token, &r));
        CK_STATUS(&r, 200);
        sim_resp_done(&r);
}

/* §1.1: the repository scope needs owner-level access (the repo owner or,
 * for an org's repo, an owner of that org) or a site admin; anyone else
 * gets 403. */
static void perm_repo_owner_or_org_owner(void **state)
{
        struct world *w = *state;
        struct {
                const char *path;
                const char *token;
                long status;
        } cases[] = {
                { REPO, w->alice.token, 200 },
                { REPO, w->bob.token, 403 },
                { REPO, w->root.token, 200 },
                { "/api/v1/repos/bob/tool/actions/runners/jobs", w->bob.token, 200 },
                { "/api/v1/repos/bob/tool/actions/runners/jobs", w->alice.token, 403 },
                { "/api/v1/repos/alice/app/actions/runners/jobs", w->alice.token, 200 },
                { "/api/v1/repos/alice/app/actions/runners/jobs", w->carol.token, 403 },
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

/* §1.1/§1.2: the org endpoint filters by owner_id = the org. */
static void scope_org_lists_only_its_jobs(void **state)
{
        struct world *w = *state;
        struct sim_job web, api, app, tool;

        mk_job(w, "acme", "web", "web", "[\"a\"]", &web);
        mk_job(w, "alice", "app", "app", "[\"a\"]", &app);
        mk_job(w, "acme", "api", "api", "[\"b\"]", &api);
        mk_job(w, "bob", "tool", "tool", "[\"a\"]", &tool);
        EXPECT_IDS(w, ORG, w->alice.token, P("[%lld,%lld]", api.id, web.id));
        EXPECT_IDS(w, ORG "?labels=a", w->alice.token, P("[%lld]", web.id));
}

/* §1.1/§1.2: the repo endpoint filters by repo_id. */
static void scope_repo_lists_only_its_repo(void **state)
{
        struct world *w = *state;
        struct sim_job web1, api, web2;

        mk_job(w, "acme", "web", "web1", "[\"a\"]", &web1);
        mk_job(w, "acme", "api", "api", "[\"a\"]", &api);
        mk_job(w, "acme", "web", "web2", "[]", &web2);
        EXPECT_IDS(w, REPO, w->alice.token, P("[%lld,%lld]", web2.id, web1.id));
        EXPECT_IDS(w, REPO "?labels=", w->alice.token, P("[%lld]", web2.id));
}

/* §1.1: the user endpoint passes ownerID = the caller: jobs of repos the
 * caller owns, not those of orgs the caller owns. */
static void scope_user_lists_own_repos_jobs(void **state)
{
        struct world *w = *state;
        struct sim_job web, app, tool;

        mk_job(w, "acme", "web", "web", "[\"a\"]", &web);
        mk_job(w, "alice", "app", "app", "[\"a\"]", &app);
        mk_job(w, "bob", "tool", "tool", "[\"a\"]", &tool);
        EXPECT_IDS(w, USER, w->alice.token, P("[%lld]", app.id));
        EXPECT_IDS(w, USER, w->bob.token, P("[%lld]", tool.id));
        EXPECT_IDS(w, USER, w->carol.token, "null");
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                T(labels_absent_returns_every_job),
                T(labels_empty_returns_only_empty_runs_on),
                T(labels_runs_on_subset_of_given_set),
                T(labels_ab_matches_abc_not_a),
                T(labels_split_without_per_label_trim),
                T(labels_only_first_value_counts),
                T(labels_exact_and_case_sensitive),
                T(results_only_waiting_and_running),
                T(results_id_descending),
                T(results_empty_is_literal_null),
                T(job_fields_and_types),
                T(job_owner_id_is_repo_owner),
                T(job_running_with_task_id_once_claimed),
                T(perm_no_token_401),
                T(perm_bad_token_401),
                T(perm_instance_requires_site_admin),
                T(perm_legacy_admin_path_works),
                T(perm_org_requires_owner),
                T(perm_repo_owner_or_org_owner),
                T(scope_org_lists_only_its_jobs),
                T(scope_repo_lists_only_its_repo),
                T(scope_user_lists_own_repos_jobs),
        };

        return WORLD_RUN(tests, argc, argv);
}
