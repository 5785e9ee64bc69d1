/* test_outcome.c: how an instance ends, from what was seen of its worker
 * and its registration. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <string.h>

#include "daemon/outcome.h"

static const struct provider_exit CODE0 = { .kind = PROVIDER_EXIT_CODE, .code = 0 };
static const struct provider_exit CODE1 = { .kind = PROVIDER_EXIT_CODE, .code = 1 };
static const struct provider_exit KILLED = { .kind = PROVIDER_EXIT_SIGNAL, .signal = SIGKILL };
static const struct provider_exit UNKNOWN = { .kind = PROVIDER_EXIT_UNKNOWN };

static struct outcome_facts exited(enum store_state st, struct provider_exit e)
{
        return (struct outcome_facts){ .state = st, .exited = true, .exit = e };
}

static void assert_reason(const struct outcome *o, const char *want)
{
        if (!want)
                assert_null(o->reason);
        else
                assert_string_equal(o->reason, want);
}

/* A worker seen running its job completed it, whatever its exit status. */
static void running_worker_completes(void **state)
{
        struct outcome_facts f = exited(STORE_RUNNING, CODE1);
        struct outcome o = outcome_worker_exited(&f);

        assert_int_equal(o.final, STORE_DONE);
        assert_reason(&o, "completed");
        assert_false(o.backoff);
}

/* one-job exits 0 only after a task: a clean exit before the claim was
 * seen is a completed job, claimed between two listings. */
static void clean_exit_before_claim_completes(void **state)
{
        struct outcome_facts f = exited(STORE_WAITING, CODE0);
        struct outcome o = outcome_worker_exited(&f);

        assert_int_equal(o.final, STORE_DONE);
        assert_reason(&o, "completed");
        assert_true(o.claimed);
}

/* Any other end before the claim: the worker quit without its job; the
 * job's next launch waits. */
static void failed_exit_before_claim_is_unclaimed(void **state)
{
        struct provider_exit ends[] = { CODE1, KILLED };

        for (size_t i = 0; i < 2; i++) {
                struct outcome_facts f = exited(STORE_WAITING, ends[i]);
                struct outcome o = outcome_worker_exited(&f);
                assert_int_equal(o.final, STORE_FAILED);
                assert_reason(&o, "exited_unclaimed");
                assert_true(o.backoff);
                assert_true(o.exited_unclaimed);
                assert_false(o.claimed);
        }
}

/* An adopted worker's status is unknowable: failed for now, and the
 * registration decides. Gone before our DELETE: Forgejo ended its task, so
 * it completed; still there: it never ran its job. */
static void unknown_exit_decided_by_the_registration(void **state)
{
        struct outcome_facts f = exited(STORE_WAITING, UNKNOWN);
        struct outcome o = outcome_worker_exited(&f);

        assert_int_equal(o.final, STORE_FAILED);
        assert_reason(&o, NULL);
        assert_false(o.backoff);

        o = outcome_runner_deleted(&f, true);
        assert_int_equal(o.final, STORE_DONE);
        assert_reason(&o, "completed");
        assert_true(o.claimed);

        o = outcome_runner_deleted(&f, false);
        assert_int_equal(o.final, 0);
        assert_reason(&o, "exited_unclaimed");
        assert_true(o.backoff);

        f.claimed = true;   /* seen claiming: no backoff, nothing to add */
        o = outcome_runner_deleted(&f, false);
        assert_reason(&o, NULL);
        assert_false(o.backoff);
}

/* What the DELETE finds changes nothing when forgescale stopped the
 * worker, when the worker still runs, or when it failed on its own. */
static void deletion_changes_nothing_else(void **state)
{
        struct outcome_facts stopped = exited(STORE_STOPPING, CODE0);
        stopped.stop_requested = true;
        struct outcome_facts alive = { .state = STORE_WAITING };
        struct outcome_facts failed = exited(STORE_WAITING, CODE1);
        const struct outcome_facts *cases[] = { &stopped, &alive, &failed };

        for (size_t i = 0; i < 3; i++)
                for (int gone = 0; gone < 2; gone++) {
                        struct outcome o = outcome_runner_deleted(cases[i], gone);
                        assert_int_equal(o.final, 0);
                        assert_reason(&o, NULL);
                        assert_false(o.claimed || o.backoff);
                }
}

static void exit_codes_for_the_row(void **state)
{
        assert_int_equal(outcome_exit_code(&CODE0), 0);
        assert_int_equal(outcome_exit_code(&CODE1), 1);
        assert_int_equal(outcome_exit_code(&KILLED), 128 + SIGKILL);
        assert_int_equal(outcome_exit_code(&UNKNOWN), -1);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(running_worker_completes),
                cmocka_unit_test(clean_exit_before_claim_completes),
                cmocka_unit_test(failed_exit_before_claim_is_unclaimed),
                cmocka_unit_test(unknown_exit_decided_by_the_registration),
                cmocka_unit_test(deletion_changes_nothing_else),
                cmocka_unit_test(exit_codes_for_the_row),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
