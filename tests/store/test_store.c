/* test_store.c: the SQLite store: persistence across close and kill -9,
 * field round trips, the one-live-instance-per-handle rule, state order,
 * listings, prune, meta, transactions, file modes, damaged files, bounds,
 * SQLite allocation failures, the broker's fetches and tasks, and the
 * upgrade of a schema-v1 database. Every test works in its own temp dir. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store/store.h"

struct env {
        char dir[256];
        char path[300];
};

/* $TMPDIR, else /dev/shm: the fault-injection tests create and delete
 * about a thousand databases, which costs seconds of inode churn on ext4
 * and nothing on tmpfs. */
static const char *tmp_root(void)
{
        const char *tmp = getenv("TMPDIR");

        if (tmp && *tmp)
                return tmp;
        if (access("/dev/shm", W_OK | X_OK) == 0)
                return "/dev/shm";
        return "/tmp";
}

static int setup(void **state)
{
        struct env *e = calloc(1, sizeof(*e));

        if (!e)
                return -1;
        snprintf(e->dir, sizeof(e->dir), "%s/fs-store-XXXXXX", tmp_root());
        if (!mkdtemp(e->dir)) {
                free(e);
                return -1;
        }
        snprintf(e->path, sizeof(e->path), "%s/state.db", e->dir);
        *state = e;
        return 0;
}

/* The temp dir holds only flat files written by the test and SQLite. */
static void empty_dir(const char *dir)
{
        DIR *d = opendir(dir);
        struct dirent *de;

        if (!d)
                return;
        while ((de = readdir(d))) {
                char p[600];
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
                unlink(p);
        }
        closedir(d);
}

static int teardown(void **state)
{
        struct env *e = *state;

        empty_dir(e->dir);
        int r = rmdir(e->dir);
        free(e);
        return r;
}

static struct store *open_ok(const struct env *e)
{
        struct store *s = NULL;
        assert_int_equal(store_open(e->path, &s), 0);
        assert_non_null(s);
        return s;
}

static void set_str(char *dst, size_t cap, const char *v)
{
        int n = snprintf(dst, cap, "%s", v);
        assert_true(n >= 0 && (size_t)n < cap);
}

static struct store_instance mk(const char *name, const char *pool, const char *handle,
                                enum store_state st)
{
        struct store_instance in;

        memset(&in, 0, sizeof(in));
        set_str(in.name, sizeof(in.name), name);
        set_str(in.pool, sizeof(in.pool), pool);
        set_str(in.forge, sizeof(in.forge), "main");
        set_str(in.scope, sizeof(in.scope), "org/acme");
        set_str(in.provider, sizeof(in.provider), "process");
        set_str(in.handle, sizeof(in.handle), handle);
        in.warm = handle[0] == '\0';
        in.state = st;
        in.created_ms = 1700000000000;
        in.state_ms = 1700000000000;
        in.exit_code = -1;
        return in;
}

static void assert_instance_equal(const struct store_instance *a, const struct store_instance *b)
{
        assert_int_equal(a->id, b->id);
        assert_string_equal(a->name, b->name);
        assert_string_equal(a->pool, b->pool);
        assert_string_equal(a->forge, b->forge);
        assert_string_equal(a->scope, b->scope);
        assert_string_equal(a->provider, b->provider);
        assert_int_equal(a->state, b->state);
        assert_int_equal(a->warm, b->warm);
        assert_int_equal(a->job_id, b->job_id);
        assert_string_equal(a->handle, b->handle);
        assert_int_equal(a->runner_id, b->runner_id);
        assert_string_equal(a->runner_uuid, b->runner_uuid);
        assert_string_equal(a->provider_ref, b->provider_ref);
        assert_int_equal(a->created_ms, b->created_ms);
        assert_int_equal(a->state_ms, b->state_ms);
        assert_int_equal(a->job_seen_ms, b->job_seen_ms);
        assert_int_equal(a->claimed_ms, b->claimed_ms);
        assert_int_equal(a->exit_code, b->exit_code);
        assert_int_equal(a->runner_deleted, b->runner_deleted);
        assert_string_equal(a->reason, b->reason);
}

/* Inserts a row in registering and moves it forward to st, as the daemon
 * does. */
static int64_t add(struct store *s, const char *name, const char *pool, const char *handle,
                   enum store_state st)
{
        struct store_instance in = mk(name, pool, handle, STORE_REGISTERING);
        assert_int_equal(store_instance_insert(s, &in), 0);
        assert_true(in.id > 0);
        if (st != STORE_REGISTERING) {
                in.state = st;
                assert_int_equal(store_instance_update(s, &in), 0);
        }
        return in.id;
}

static void state_names(void **state)
{
        static const char *const want[] = { "registering", "starting", "waiting", "running",
                                            "stopping", "done", "failed" };
        enum store_state st;

        assert_int_equal(STORE_STATE_MAX, 7);
        for (int i = 0; i < STORE_STATE_MAX; i++) {
                assert_string_equal(store_state_name((enum store_state)i), want[i]);
                st = STORE_STATE_MAX;
                assert_int_equal(store_state_parse(want[i], &st), 0);
                assert_int_equal(st, i);
                assert_int_equal(store_state_live((enum store_state)i), i < STORE_DONE);
        }
        st = STORE_RUNNING;
        assert_int_equal(store_state_parse("Running", &st), -EINVAL);
        assert_int_equal(store_state_parse("", &st), -EINVAL);
        assert_int_equal(store_state_parse("runningx", &st), -EINVAL);
        assert_int_equal(store_state_parse(NULL, &st), -EINVAL);
        assert_int_equal(st, STORE_RUNNING); /* untouched on failure */
        assert_string_equal(store_state_name(STORE_STATE_MAX), "unknown");
        assert_string_equal(store_state_name((enum store_state)-1), "unknown");
}

static void open_close_reopen(void **state)
{
        struct env *e = *state;
        struct store *s = open_ok(e);
        char buf[64];

        assert_int_equal(store_meta_get(s, "schema_version", buf, sizeof(buf)), 0);
        assert_string_equal(buf, "3");
        int64_t id = add(s, "fs-1", "small", "h-1", STORE_STARTING);
        assert_int_equal(store_meta_set(s, "controller_id", "c0ffee"), 0);
        store_close(s);
        store_close(NULL);

        s = open_ok(e);
        struct store_instance got;
        assert_int_equal(store_instance_get(s, id, &got), 0);
        assert_string_equal(got.name, "fs-1");
        assert_int_equal(got.state, STORE_STARTING);
        assert_int_equal(store_meta_get(s, "controller_id", buf, sizeof(buf)), 0);
        assert_string_equal(buf, "c0ffee");
        assert_int_equal(store_meta_get(s, "schema_version", buf, sizeof(buf)), 0);
        assert_string_equal(buf, "3");
        store_close(s);

        /* Bad arguments and a path in a missing directory. */
        struct store *none = (struct store *)0x1;
        char bad[400];
        snprintf(bad, sizeof(bad), "%s/missing/state.db", e->dir);
        assert_int_equal(store_open(bad, &none), -ENOENT);
        assert_int_equal(store_open("", &none), -EINVAL);
        assert_int_equal(store_open(e->dir, &none), -EINVAL);
        assert_ptr_equal(none, (struct store *)0x1);
}

static void fields_round_trip(void **state)
{
        struct env *e = *state;
        struct store *s = open_ok(e);
        struct store_instance in, got;

        memset(&in, 0, sizeof(in));
        /* Each string at its longest allowed length (field size - 1). */
        memset(in.name, 'n', sizeof(in.name) - 1);
        memset(in.pool, 'p', sizeof(in.pool) - 1);
        memset(in.forge, 'f', sizeof(in.forge) - 1);
        memset(in.scope, 's', sizeof(in.scope) - 1);
        memset(in.provider, 'v', sizeof(in.provider) - 1);
        memset(in.handle, 'h', sizeof(in.handle) - 1);
        memset(in.runner_uuid, 'u', sizeof(in.runner_uuid) - 1);
        memset(in.provider_ref, 'r', sizeof(in.provider_ref) - 1);
        memset(in.reason, 'x', sizeof(in.reason) - 1);
        in.state = STORE_RUNNING;
        in.warm = true;
        in.job_id = INT64_MAX;
        in.runner_id = 9007199254740993; /* not representable as a double */
        in.created_ms = 1;
        in.state_ms = INT64_MIN;
        in.job_seen_ms = 3;
        in.claimed_ms = 4;
        in.exit_code = -2147483647 - 1;
        in.runner_deleted = true;
        in.id = 12345; /* ignored: the store assigns the id */

        assert_int_equal(store_instance_insert(s, &in), 0);
        assert_int_not_equal(in.id, 12345);
        assert_true(in.id > 0);
        assert_int_equal(store_instance_get(s, in.id, &got), 0);
        assert_instance_equal(&in, &got);
        memset(&got, 0, sizeof(got));
        assert_int_equal(store_instance_get_by_name(s, in.name, &got), 0);
        assert_instance_equal(&in, &got);

        /* UTF-8 and quotes survive unchanged. */
        struct store_instance u = mk("fs-ü-'\"; DROP TABLE instances;--", "pööl", "", STORE_REGISTERING);
        set_str(u.reason, sizeof(u.reason), "exit \xe2\x9c\x93");
        assert_int_equal(store_instance_insert(s, &u), 0);
        assert_int_equal(store_instance_get(s, u.id, &got), 0);
        assert_instance_equal(&u, &got);

        /* Every mutable field changes on update. */
        u.state = STORE_STOPPING;
        u.job_id = 77;
        set_str(u.handle, sizeof(u.handle), "b1946ac9");
        u.runner_id = 42;
        set_str(u.runner_uuid, sizeof(u.runner_uuid), "1b4e28ba-2fa1-11d2-883f-0016d3cca427");
        set_str(u.provider_ref, sizeof(u.provider_ref), "4242:987654");
        u.state_ms = 1700000009999;
        u.job_seen_ms = 1700000000001;
        u.claimed_ms = 1700000000002;
        u.exit_code = 137;
        u.runner_deleted = true;
        set_str(u.reason, sizeof(u.reason), "killed");
        assert_int_equal(store_instance_update(s, &u), 0);
        memset(&got, 0, sizeof(got));
        assert_int_equal(store_instance_get(s, u.id, &got), 0);
        assert_instance_equal(&u, &got);

        /* Missing rows. */
        struct store_instance keep = got;
        assert_int_equal(store_instance_get(s, 999999, &got), -ENOENT);
        assert_int_equal(store_instance_get_by_name(s, "nope", &got), -ENOENT);
        assert_instance_equal(&keep, &got); /* untouched on failure */
        struct store_instance ghost = u;
        ghost.id = 999999;
        assert_int_equal(store_instance_update(s, &ghost), -ENOENT);
        ghost.id = 0;
        assert_int_equal(store_instance_update(s, &ghost), -ENOENT);
        store_close(s);
}

static void identity_is_fixed(void **state)
{
        struct env *e = *state;
        struct store *s = open_ok(e);
        struct store_instance in = mk("fs-id", "small", "h", STORE_REGISTERING), got;

        assert_int_equal(store_instance_insert(s, &in), 0);
        struct store_instance c = in;
        set_str(c.name, sizeof(c.name), "fs-other");
        assert_int_equal(store_instance_update(s, &c), -EINVAL);
        c = in;
        set_str(c.pool, sizeof(c.pool), "large");
        assert_int_equal(store_instance_update(s, &c), -EINVAL);
        c = in;
        c.created_ms++;
        assert_int_equal(store_instance_update(s, &c), -EINVAL);
        c = in;
        c.warm = !c.warm;
        assert_int_equal(store_instance_update(s, &c), -EINVAL);
        assert_int_equal(store_instance_get(s, in.id, &got), 0);
        assert_instance_equal(&in, &got);
        store_close(s);
}

static void state_moves_forward_only(void **state)
{
        struct env *e = *state;
        struct store *s = open_ok(e);
        struct store_instance in = mk("fs-fw", "small", "h", STORE_REGISTERING), got;

        assert_int_equal(store_instance_insert(s, &in), 0);
        in.state = STORE_RUNNING; /* skipping states is allowed */
        assert_int_equal(store_instance_update(s, &in), 0);
        in.state = STORE_WAITING;
        assert_int_equal(store_instance_update(s, &in), -EINVAL);
        in.state = STORE_RUNNING; /* same state, other fields */
        in.claimed_ms = 5;
        assert_int_equal(store_instance_update(s, &in), 0);
        in.state = STORE_FAILED;
        assert_int_equal(store_instance_update(s, &in), 0);
        in.state = STORE_DONE;
        assert_int_equal(store_instance_update(s, &in), -EINVAL);
        in.state = STORE_STOPPING;
        assert_int_equal(store_instance_update(s, &in), -EINVAL);
        in.state = STORE_FAILED;
        in.runner_deleted = true; /* a terminal row may still be updated */
        assert_int_equal(store_instance_update(s, &in), 0);
        assert_int_equal(store_instance_get(s, in.id, &got), 0);
        assert_int_equal(got.state, STORE_FAILED);
        assert_true(got.runner_deleted);
        assert_int_equal(got.claimed_ms, 5);

        in.state = STORE_STATE_MAX;
        assert_int_equal(store_instance_update(s, &in), -EINVAL);
        struct store_instance bad = mk("fs-bad", "small", "", (enum store_state)42);
        assert_int_equal(store_instance_insert(s, &bad), -EINVAL);
        bad = mk("", "small", "", STORE_REGISTERING);
        assert_int_equal(store_instance_insert(s, &bad), -EINVAL);
        store_close(s);
}

static void unique_live_handle(void **state)
{
        struct env *e = *state;
        struct store *s = open_ok(e);
        struct store_instance a = mk("fs-a", "small", "H1", STORE_REGISTERING);
        struct store_instance b = mk("fs-b", "small", "H1", STORE_REGISTERING);

        assert_int_equal(store_instance_insert(s, &a), 0);
        b.id = -7;
        assert_int_equal(store_instance_insert(s, &b), -EEXIST);
        assert_int_equal(b.id, -7); /* untouched on failure */

        /* Still refused in every live state of the holder. */
        for (enum store_state st = STORE_STARTING; st <= STORE_STOPPING; st++) {
                a.state = st;
                assert_int_equal(store_instance_update(s, &a), 0);
                assert_int_equal(store_instance_insert(s, &b), -EEXIST);
        }
        /* ...and across a restart. */
        store_close(s);
        s = open_ok(e);
        assert_int_equal(store_instance_insert(s, &b), -EEXIST);

        a.state = STORE_DONE;
        assert_int_equal(store_instance_update(s, &a), 0);
        assert_int_equal(store_instance_insert(s, &b), 0);

        /* The third instance for H1 waits for b, even though a is gone. */
        struct store_instance c = mk("fs-c", "small", "H1", STORE_REGISTERING);
        assert_int_equal(store_instance_insert(s, &c), -EEXIST);
        b.state = STORE_FAILED;
        assert_int_equal(store_instance_update(s, &b), 0);
        assert_int_equal(store_instance_insert(s, &c), 0);

        /* A terminal row cannot come back to life while c holds H1 (and
         * cannot come back at all). */
        a.state = STORE_RUNNING;
        assert_int_equal(store_instance_update(s, &a), -EINVAL);

        /* Taking a live handle by update is refused too. */
        struct store_instance d = mk("fs-d", "small", "H2", STORE_REGISTERING);
        assert_int_equal(store_instance_insert(s, &d), 0);
        set_str(d.handle, sizeof(d.handle), "H1");
        assert_int_equal(store_instance_update(s, &d), -EEXIST);
        struct store_instance got;
        assert_int_equal(store_instance_get(s, d.id, &got), 0);
        assert_string_equal(got.handle, "H2");

        /* Warm instances (empty handle) never collide. */
        for (int i = 0; i < 5; i++) {
                char name[32];
                snprintf(name, sizeof(name), "fs-warm-%d", i);
                struct store_instance w = mk(name, "small", "", STORE_WAITING);
                assert_int_equal(store_instance_insert(s, &w), 0);
        }
        store_close(s);
}

static void duplicate_name(void **state)
{
        struct env *e = *state;
        struct store *s = open_ok(e);
        struct store_instance a = mk("fs-same", "small", "h-a", STORE_REGISTERING);
        struct store_instance b = mk("fs-same", "large", "h-b", STORE_REGISTERING);

        assert_int_equal(store_instance_insert(s, &a), 0);
        assert_int_equal(store_instance_insert(s, &b), -EEXIST);
        /* A runner name is never reused, not even after the row is done. */
        a.state = STORE_DONE;
        assert_int_equal(store_instance_update(s, &a), 0);
        assert_int_equal(store_instance_insert(s, &b), -EEXIST);
        store_close(s);
}

static void list_live(void **state)
{
        struct env *e = *state;
        struct store *s = open_ok(e);
        struct store_instance *v = (struct store_instance *)0x1;
        size_t n = 99;

        assert_int_equal(store_instance_list_live(s, &v, &n), 0);
        assert_int_equal(n, 0);
        free(v);

        static const enum store_state states[] = {
                STORE_RUNNING, STORE_DONE, STORE_REGISTERING, STORE_FAILED,
                STORE_WAITING, STORE_STOPPING, STORE_STARTING, STORE_DONE,
        };
        int64_t ids[8];
        for (int i = 0; i < 8; i++) {
                char name[32], handle[32];
                snprintf(name, sizeof(name), "fs-%d", i);
                snprintf(handle, sizeof(handle), "h-%d", i);
                ids[i] = add(s, name, i % 2 ? "large" : "small", handle, states[i]);
        }
        assert_int_equal(store_instance_list_live(s, &v, &n), 0);
        assert_int_equal(n, 5);
        static const int want[] = { 0, 2, 4, 5, 6 };
        for (size_t i = 0; i < n; i++) {
                char name[32];
                snprintf(name, sizeof(name), "fs-%d", want[i]);
                assert_int_equal(v[i].id, ids[want[i]]);
                assert_string_equal(v[i].name, name);
                assert_int_equal(v[i].state, states[want[i]]);
                assert_true(store_state_live(v[i].state));
                struct store_instance got;
                assert_int_equal(store_instance_get(s, v[i].id, &got), 0);
                assert_instance_equal(&v[i], &got);
                if (i > 0)
                        assert_true(v[i - 1].id < v[i].id);
        }
        free(v);
        store_close(s);
}

static void list_undeleted(void **state)
{
        struct env *e = *state;
        struct store *s = open_ok(e);
        struct store_instance *v = NULL;
        size_t n = 0;

        int64_t done_kept = add(s, "fs-1", "small", "h1", STORE_DONE);
        add(s, "fs-2", "small", "h2", STORE_RUNNING);       /* live: not listed */
        int64_t failed_kept = add(s, "fs-3", "small", "h3", STORE_FAILED);
        int64_t cleaned = add(s, "fs-4", "small", "h4", STORE_DONE);

        struct store_instance in;
        assert_int_equal(store_instance_get(s, cleaned, &in), 0);
        in.runner_deleted = true;
        assert_int_equal(store_instance_update(s, &in), 0);

        assert_int_equal(store_instance_list_undeleted(s, &v, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(v[0].id, done_kept);
        assert_int_equal(v[0].state, STORE_DONE);
        assert_false(v[0].runner_deleted);
        assert_int_equal(v[1].id, failed_kept);
        assert_string_equal(v[1].name, "fs-3");
        free(v);

        assert_int_equal(store_instance_get(s, done_kept, &in), 0);
        in.runner_deleted = true;
        assert_int_equal(store_instance_update(s, &in), 0);
        assert_int_equal(store_instance_list_undeleted(s, &v, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(v[0].id, failed_kept);
        free(v);
        store_close(s);
}

struct counted {
        char pool[STORE_NAME_MAX];
        enum store_state st;
        int64_t n;
};

struct count_ud {
        struct counted row[32];
        int n;
};

static void count_cb(void *ud, const char *pool, enum store_state st, int64_t n)
{
        struct count_ud *c = ud;
        assert_true(c->n < 32);
        set_str(c->row[c->n].pool, sizeof(c->row[c->n].pool), pool);
        c->row[c->n].st = st;
        c->row[c->n].n = n;
        c->n++;
}

static int64_t counted(const struct count_ud *c, const char *pool, enum store_state st)
{
        int64_t found = -1;
        for (int i = 0; i < c->n; i++) {
                if (strcmp(c->row[i].pool, pool) == 0 && c->row[i].st == st) {
                        assert_int_equal(found, -1); /* one call per pair */
                        found = c->row[i].n;
                }
        }
        return found;
}

static void count(void **state)
{
        struct env *e = *state;
        struct store *s = open_ok(e);
        struct count_ud c = { .n = 0 };

        assert_int_equal(store_instance_count(s, count_cb, &c), 0);
        assert_int_equal(c.n, 0);
        assert_int_equal(store_instance_count(s, NULL, &c), -EINVAL);

        add(s, "fs-1", "small", "h1", STORE_RUNNING);
        add(s, "fs-2", "small", "h2", STORE_RUNNING);
        add(s, "fs-3", "small", "", STORE_WAITING);
        add(s, "fs-4", "large", "h4", STORE_RUNNING);
        add(s, "fs-5", "large", "h5", STORE_DONE);
        add(s, "fs-6", "large", "h6", STORE_DONE);
        add(s, "fs-7", "large", "h7", STORE_DONE);
        add(s, "fs-8", "small", "h8", STORE_FAILED);

        assert_int_equal(store_instance_count(s, count_cb, &c), 0);
        assert_int_equal(c.n, 5);
        assert_int_equal(counted(&c, "small", STORE_RUNNING), 2);
        assert_int_equal(counted(&c, "small", STORE_WAITING), 1);
        assert_int_equal(counted(&c, "small", STORE_FAILED), 1);
        assert_int_equal(counted(&c, "large", STORE_RUNNING), 1);
        assert_int_equal(counted(&c, "large", STORE_DONE), 3);
        assert_int_equal(counted(&c, "large", STORE_FAILED), -1);
        store_close(s);
}

/* The per-(pool, state) counts stay equal to the rows through inserts,
 * state changes, refused writes, rollbacks, prunes and a reopen. */
static void count_matches_rows(void **state)
{
        struct env *e = *state;
        struct store *s = open_ok(e);
        struct row { struct store_instance in; bool present; } rows[300];
        static const char *const pools[] = { "a", "b", "c" };
        uint32_t seed = 12345;
        int nrows = 0;

#define RAND() (seed = seed * 1103515245u + 12345u, (seed >> 16) & 0x7fff)
        for (int step = 0; step < 1500; step++) {
                int op = (int)(RAND() % 10);
                if ((op < 3 || nrows == 0) && nrows < 300) {
                        char name[32], handle[32];
                        snprintf(name, sizeof(name), "fs-%d", nrows);
                        snprintf(handle, sizeof(handle), "h-%u", RAND() % 40);
                        rows[nrows].in = mk(name, pools[RAND() % 3], handle, STORE_REGISTERING);
                        int r = store_instance_insert(s, &rows[nrows].in);
                        assert_true(r == 0 || r == -EEXIST);
                        rows[nrows].present = r == 0;
                        nrows++;
                } else if (op < 9) {
                        struct row *w = &rows[RAND() % (unsigned)nrows];
                        struct store_instance in = w->in;
                        in.state = (enum store_state)(RAND() % STORE_STATE_MAX);
                        in.state_ms = RAND() % 1000;
                        in.runner_deleted = RAND() % 2;
                        bool txn = RAND() % 4 == 0;
                        if (txn)
                                assert_int_equal(store_begin(s), 0);
                        int r = store_instance_update(s, &in);
                        if (!w->present)
                                assert_int_equal(r, -ENOENT);
                        else
                                assert_true(r == 0 || r == -EINVAL || r == -EEXIST);
                        if (txn && RAND() % 2) {
                                assert_int_equal(store_rollback(s), 0);
                        } else {
                                if (txn)
                                        assert_int_equal(store_commit(s), 0);
                                if (r == 0)
                                        w->in = in;
                        }
                } else {
                        int64_t before = RAND() % 1000;
                        int want = 0;
                        for (int i = 0; i < nrows; i++) {
                                struct store_instance *in = &rows[i].in;
                                if (rows[i].present && !store_state_live(in->state) &&
                                    in->runner_deleted && in->state_ms < before) {
                                        rows[i].present = false;
                                        want++;
                                }
                        }
                        assert_int_equal(store_prune(s, before), want);
                }
        }
#undef RAND
        for (int pass = 0; pass < 2; pass++) {
                struct count_ud c = { .n = 0 };
                int64_t total = 0;
                assert_int_equal(store_instance_count(s, count_cb, &c), 0);
                for (int p = 0; p < 3; p++) {
                        for (int st = 0; st < STORE_STATE_MAX; st++) {
                                int64_t want = 0;
                                for (int i = 0; i < nrows; i++)
                                        want += rows[i].present && (int)rows[i].in.state == st &&
                                                strcmp(rows[i].in.pool, pools[p]) == 0;
                                int64_t got = counted(&c, pools[p], (enum store_state)st);
                                assert_int_equal(got, want ? want : -1);
                                total += want;
                        }
                }
                assert_true(total > 20);
                store_close(s);
                s = open_ok(e);
        }
        store_close(s);
}

static void prune(void **state)
{
        struct env *e = *state;
        struct store *s = open_ok(e);
        struct store_instance in;

        struct { const char *name; enum store_state st; int64_t ms; bool deleted; bool gone; } rows[] = {
                { "old-done", STORE_DONE, 1000, true, true },
                { "old-failed", STORE_FAILED, 1999, true, true },
                { "edge-done", STORE_DONE, 2000, true, false },     /* not older */
                { "new-done", STORE_DONE, 5000, true, false },
                { "old-running", STORE_RUNNING, 1000, false, false }, /* live */
                { "old-stopping", STORE_STOPPING, 1000, false, false },
                { "old-undeleted", STORE_FAILED, 1000, false, false }, /* forge runner may exist */
        };
        int64_t ids[7];
        for (int i = 0; i < 7; i++) {
                ids[i] = add(s, rows[i].name, "small", "", rows[i].st);
                assert_int_equal(store_instance_get(s, ids[i], &in), 0);
                in.state_ms = rows[i].ms;
                in.runner_deleted = rows[i].deleted;
                assert_int_equal(store_instance_update(s, &in), 0);
        }
        assert_int_equal(store_prune(s, 2000), 2);
        for (int i = 0; i < 7; i++)
                assert_int_equal(store_instance_get(s, ids[i], &in), rows[i].gone ? -ENOENT : 0);
        assert_int_equal(store_prune(s, 2000), 0);
        assert_int_equal(store_prune(s, INT64_MAX), 2);
        assert_int_equal(store_instance_get_by_name(s, "old-undeleted", &in), 0);
        assert_int_equal(store_instance_get_by_name(s, "old-running", &in), 0);

        /* Ids are never reused after a prune. */
        int64_t next = add(s, "after-prune", "small", "", STORE_REGISTERING);
        assert_true(next > ids[6]);
        store_close(s);
}

static void meta(void **state)
{
        struct env *e = *state;
        struct store *s = open_ok(e);
        char buf[16] = "untouched";

        assert_int_equal(store_meta_get(s, "controller_id", buf, sizeof(buf)), -ENOENT);
        assert_string_equal(buf, "untouched");
        assert_int_equal(store_meta_set(s, "controller_id", "abc"), 0);
        assert_int_equal(store_meta_get(s, "controller_id", buf, sizeof(buf)), 0);
        assert_string_equal(buf, "abc");
        assert_int_equal(store_meta_set(s, "controller_id", "def"), 0);
        assert_int_equal(store_meta_get(s, "controller_id", buf, sizeof(buf)), 0);
        assert_string_equal(buf, "def");
        assert_int_equal(store_meta_set(s, "empty", ""), 0);
        assert_int_equal(store_meta_get(s, "empty", buf, sizeof(buf)), 0);
        assert_string_equal(buf, "");

        /* Exactly fitting, then one byte too long for the buffer. */
        assert_int_equal(store_meta_set(s, "k", "0123456789abcde"), 0);
        assert_int_equal(store_meta_get(s, "k", buf, sizeof(buf)), 0);
        assert_string_equal(buf, "0123456789abcde");
        assert_int_equal(store_meta_set(s, "k", "0123456789abcdef"), 0);
        assert_int_equal(store_meta_get(s, "k", buf, sizeof(buf)), -ERANGE);
        assert_string_equal(buf, "0123456789abcde");

        assert_int_equal(store_meta_set(s, "schema_version", "0"), -EPERM);
        assert_int_equal(store_meta_get(s, "schema_version", buf, sizeof(buf)), 0);
        assert_string_equal(buf, "3");
        assert_int_equal(store_meta_set(s, "", "x"), -EINVAL);
        assert_int_equal(store_meta_set(s, "x", NULL), -EINVAL);
        assert_int_equal(store_meta_get(s, "x", buf, 0), -EINVAL);
        store_close(s);
}

static void transactions(void **state)
{
        struct env *e = *state;
        struct store *s = open_ok(e);
        struct store_instance in;

        assert_int_equal(store_commit(s), -EINVAL);
        assert_int_equal(store_rollback(s), -EINVAL);

        /* Rollback discards inserts, updates and meta. */
        int64_t kept = add(s, "fs-kept", "small", "h-kept", STORE_REGISTERING);
        assert_int_equal(store_begin(s), 0);
        assert_int_equal(store_begin(s), -EBUSY);
        int64_t gone = add(s, "fs-gone", "small", "h-gone", STORE_STARTING);
        assert_int_equal(store_instance_get(s, kept, &in), 0);
        in.state = STORE_RUNNING;
        assert_int_equal(store_instance_update(s, &in), 0);
        assert_int_equal(store_meta_set(s, "tick", "1"), 0);
        assert_int_equal(store_rollback(s), 0);
        assert_int_equal(store_instance_get(s, gone, &in), -ENOENT);
        assert_int_equal(store_instance_get(s, kept, &in), 0);
        assert_int_equal(in.state, STORE_REGISTERING);
        char buf[8];
        assert_int_equal(store_meta_get(s, "tick", buf, sizeof(buf)), -ENOENT);

        /* The handle freed by the rollback can be taken again. */
        add(s, "fs-gone-2", "small", "h-gone", STORE_REGISTERING);

        /* A refused statement does not end the batch; the rest commits. */
        assert_int_equal(store_begin(s), 0);
        int64_t t1 = add(s, "fs-t1", "small", "h-t1", STORE_REGISTERING);
        struct store_instance dup = mk("fs-t2", "small", "h-t1", STORE_REGISTERING);
        assert_int_equal(store_instance_insert(s, &dup), -EEXIST);
        int64_t t3 = add(s, "fs-t3", "small", "h-t3", STORE_WAITING);
        assert_int_equal(store_commit(s), 0);
        assert_int_equal(store_commit(s), -EINVAL);
        store_close(s);

        s = open_ok(e);
        assert_int_equal(store_instance_get(s, t1, &in), 0);
        assert_int_equal(store_instance_get(s, t3, &in), 0);
        assert_int_equal(in.state, STORE_WAITING);
        assert_int_equal(store_instance_get_by_name(s, "fs-t2", &in), -ENOENT);

        /* Closing with an open transaction discards it. */
        assert_int_equal(store_begin(s), 0);
        add(s, "fs-uncommitted", "small", "", STORE_REGISTERING);
        store_close(s);
        s = open_ok(e);
        assert_int_equal(store_instance_get_by_name(s, "fs-uncommitted", &in), -ENOENT);
        store_close(s);
}

/* A reader (the CLI, a second process) sees committed rows only and is not
 * blocked by a writer's open transaction. */
static void concurrent_reader(void **state)
{
        struct env *e = *state;
        struct store *w = open_ok(e), *r = open_ok(e);
        struct store_instance *v = NULL;
        size_t n = 0;

        assert_int_equal(store_begin(w), 0);
        add(w, "fs-1", "small", "h1", STORE_RUNNING);
        assert_int_equal(store_instance_list_live(r, &v, &n), 0);
        assert_int_equal(n, 0);
        free(v);
        assert_int_equal(store_commit(w), 0);
        assert_int_equal(store_instance_list_live(r, &v, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(v[0].name, "fs-1");
        free(v);
        store_close(r);
        store_close(w);
}

static void assert_private(const char *path)
{
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_true(S_ISREG(st.st_mode));
        assert_int_equal(st.st_mode & 0777, 0600);
}

static void file_mode(void **state)
{
        struct env *e = *state;
        char wal[320], shm[320];
        mode_t old = umask(0); /* the mode must not depend on the umask */

        snprintf(wal, sizeof(wal), "%s-wal", e->path);
        snprintf(shm, sizeof(shm), "%s-shm", e->path);
        struct store *s = open_ok(e);
        umask(old);
        add(s, "fs-1", "small", "h1", STORE_RUNNING);
        assert_private(e->path);
        assert_private(wal);
        assert_private(shm);
        store_close(s);
        assert_private(e->path);

        /* A database left world-readable by someone else is tightened. */
        assert_int_equal(chmod(e->path, 0644), 0);
        s = open_ok(e);
        assert_private(e->path);
        add(s, "fs-2", "small", "h2", STORE_RUNNING);
        assert_private(wal);
        store_close(s);
}

/* A daemon killed with SIGKILL right after its writes: a second store (the
 * restarted daemon) sees every committed row, batched or not. */
static void restart_after_kill(void **state)
{
        struct env *e = *state;
        pid_t pid = fork();

        assert_true(pid >= 0);
        if (pid == 0) {
                struct store *s = NULL;
                if (store_open(e->path, &s) < 0)
                        _exit(2);
                for (int i = 0; i < 20; i++) {
                        struct store_instance in;
                        char name[32], handle[32];
                        snprintf(name, sizeof(name), "fs-%d", i);
                        snprintf(handle, sizeof(handle), "h-%d", i);
                        memset(&in, 0, sizeof(in));
                        memcpy(in.name, name, strlen(name) + 1);
                        memcpy(in.handle, handle, strlen(handle) + 1);
                        memcpy(in.pool, "small", 6);
                        in.state = STORE_REGISTERING;
                        in.exit_code = -1;
                        if (i >= 10 && store_begin(s) < 0)
                                _exit(3);
                        if (store_instance_insert(s, &in) < 0)
                                _exit(4);
                        in.runner_id = 1000 + i;
                        in.state = i % 3 == 0 ? STORE_DONE : STORE_STARTING;
                        if (store_instance_update(s, &in) < 0)
                                _exit(5);
                        if (i >= 10 && store_commit(s) < 0)
                                _exit(6);
                }
                /* The broker's request key, committed before its fetch. */
                struct store_fetch f;
                memset(&f, 0, sizeof(f));
                memcpy(f.pool, "small", 6);
                memcpy(f.request_key, "rk-kept", 8);
                if (store_fetch_insert(s, &f) < 0)
                        _exit(10);
                if (store_begin(s) < 0)
                        _exit(7);
                memcpy(f.request_key, "rk-lost", 8);
                if (store_fetch_insert(s, &f) < 0)
                        _exit(11);
                struct store_instance lost;
                memset(&lost, 0, sizeof(lost));
                memcpy(lost.name, "fs-uncommitted", 15);
                if (store_instance_insert(s, &lost) < 0)
                        _exit(8);
                raise(SIGKILL);
                _exit(9);
        }
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGKILL);

        struct store *s = open_ok(e);
        struct store_instance *v = NULL;
        size_t n = 0;
        assert_int_equal(store_instance_list_live(s, &v, &n), 0);
        assert_int_equal(n, 13); /* 20 rows, 7 of them (i % 3 == 0) done */
        for (size_t i = 0; i < n; i++) {
                assert_int_equal(v[i].state, STORE_STARTING);
                assert_true(v[i].runner_id >= 1000);
        }
        free(v);
        for (int i = 0; i < 20; i++) {
                char name[32];
                struct store_instance in;
                snprintf(name, sizeof(name), "fs-%d", i);
                assert_int_equal(store_instance_get_by_name(s, name, &in), 0);
                assert_int_equal(in.runner_id, 1000 + i);
        }
        struct store_instance in;
        assert_int_equal(store_instance_get_by_name(s, "fs-uncommitted", &in), -ENOENT);
        struct store_fetch *fv = NULL;
        assert_int_equal(store_fetch_list(s, &fv, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(fv[0].request_key, "rk-kept");
        free(fv);
        /* The restarted daemon still cannot double-launch a live handle. */
        struct store_instance again = mk("fs-again", "small", "h-1", STORE_REGISTERING);
        assert_int_equal(store_instance_insert(s, &again), -EEXIST);
        store_close(s);
}

static void write_file(const char *path, const void *data, size_t len)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, data, len), (ssize_t)len);
        close(fd);
}

static void damaged_files(void **state)
{
        struct env *e = *state;
        struct store *s = (struct store *)0x1;
        char junk[8192];

        /* Not a database at all. */
        for (size_t i = 0; i < sizeof(junk); i++)
                junk[i] = (char)(i * 131 + 7);
        write_file(e->path, junk, sizeof(junk));
        assert_int_equal(store_open(e->path, &s), -EUCLEAN);
        assert_ptr_equal(s, (struct store *)0x1);

        /* A valid header followed by garbage pages. */
        empty_dir(e->dir);
        s = open_ok(e);
        for (int i = 0; i < 200; i++) {
                char name[32];
                snprintf(name, sizeof(name), "fs-%d", i);
                add(s, name, "small", "", STORE_DONE);
        }
        store_close(s);
        int fd = open(e->path, O_RDWR | O_CLOEXEC);
        assert_true(fd >= 0);
        struct stat st;
        assert_int_equal(fstat(fd, &st), 0);
        assert_true(st.st_size > 8192);
        assert_int_equal(pwrite(fd, junk, sizeof(junk) - 100, 100), (ssize_t)sizeof(junk) - 100);
        close(fd);
        /* Found at open, or by the first call that reads a bad page. */
        s = (struct store *)0x1;
        int r = store_open(e->path, &s);
        if (r == 0) {
                struct store_instance *v = NULL;
                size_t n = 0;
                struct store_instance in = mk("fs-new", "small", "", STORE_REGISTERING);
                struct count_ud c = { .n = 0 };
                r = store_instance_list_live(s, &v, &n);
                int r2 = store_instance_insert(s, &in);
                int r3 = store_instance_count(s, count_cb, &c);
                assert_true(r < 0 || r2 < 0 || r3 < 0);
                assert_true(r == 0 || r == -EUCLEAN);
                assert_true(r2 == 0 || r2 == -EUCLEAN);
                assert_true(r3 == 0 || r3 == -EUCLEAN);
                assert_int_equal(c.n, 0); /* a failing count never calls back */
                free(v);
                store_close(s);
        } else {
                assert_int_equal(r, -EUCLEAN);
                assert_ptr_equal(s, (struct store *)0x1);
        }

        /* Truncated to half a page. */
        empty_dir(e->dir);
        s = open_ok(e);
        store_close(s);
        assert_int_equal(truncate(e->path, 2048), 0);
        s = (struct store *)0x1;
        r = store_open(e->path, &s);
        assert_true(r < 0);
        assert_ptr_equal(s, (struct store *)0x1);
}

static size_t read_all(const char *path, char *buf, size_t cap)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        ssize_t n = read(fd, buf, cap);
        close(fd);
        assert_true(n > 0 && (size_t)n < cap);
        return (size_t)n;
}

static void foreign_and_newer_files(void **state)
{
        struct env *e = *state;
        struct store *s = (struct store *)0x1;
        sqlite3 *db = NULL;

        /* Someone else's SQLite database is left alone. */
        assert_int_equal(sqlite3_open(e->path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES (1);",
                                      NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
        static char before[65536], after[65536];
        size_t nb = read_all(e->path, before, sizeof(before));
        assert_int_equal(store_open(e->path, &s), -EINVAL);
        assert_ptr_equal(s, (struct store *)0x1);
        size_t na = read_all(e->path, after, sizeof(after));
        assert_int_equal(na, nb);
        assert_memory_equal(before, after, nb); /* not even switched to WAL */
        assert_int_equal(sqlite3_open(e->path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, "PRAGMA application_id = 7", NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
        assert_int_equal(store_open(e->path, &s), -EINVAL);

        /* A schema from a newer forgescale is not touched. */
        empty_dir(e->dir);
        s = open_ok(e);
        store_close(s);
        assert_int_equal(sqlite3_open(e->path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
                                      NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
        s = (struct store *)0x1;
        assert_int_equal(store_open(e->path, &s), -ENOTSUP);
        assert_ptr_equal(s, (struct store *)0x1);

        /* A value too long for its field (edited by hand) reads as
         * damage, never as a truncated string. */
        empty_dir(e->dir);
        s = open_ok(e);
        int64_t id = add(s, "fs-1", "small", "", STORE_REGISTERING);
        store_close(s);
        assert_int_equal(sqlite3_open(e->path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, "PRAGMA ignore_check_constraints = ON;"
                                          "UPDATE instances SET handle = printf('%.100c', 'x')",
                                      NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
        s = open_ok(e);
        struct store_instance in;
        assert_int_equal(store_instance_get(s, id, &in), -EUCLEAN);
        struct store_instance *v = NULL;
        size_t n = 0;
        assert_int_equal(store_instance_list_live(s, &v, &n), -EUCLEAN);
        assert_null(v);
        store_close(s);
}

static void long_strings(void **state)
{
        struct env *e = *state;
        struct store *s = open_ok(e);
        struct store_instance base = mk("fs-long", "small", "h", STORE_REGISTERING), in;

#define TOO_LONG(field)                                                        \
        do {                                                                   \
                in = base;                                                     \
                memset(in.field, 'z', sizeof(in.field));   /* no NUL at all */ \
                assert_int_equal(store_instance_insert(s, &in), -ENAMETOOLONG); \
        } while (0)
        TOO_LONG(name);
        TOO_LONG(pool);
        TOO_LONG(forge);
        TOO_LONG(scope);
        TOO_LONG(provider);
        TOO_LONG(handle);
        TOO_LONG(runner_uuid);
        TOO_LONG(provider_ref);
        TOO_LONG(reason);
#undef TOO_LONG
        struct store_instance *v = NULL;
        size_t n = 0;
        assert_int_equal(store_instance_list_live(s, &v, &n), 0);
        assert_int_equal(n, 0);
        free(v);

        in = base;
        assert_int_equal(store_instance_insert(s, &in), 0);
        struct store_instance up = in;
        memset(up.reason, 'r', sizeof(up.reason));
        assert_int_equal(store_instance_update(s, &up), -ENAMETOOLONG);
        up = in;
        memset(up.provider_ref, 'r', sizeof(up.provider_ref));
        assert_int_equal(store_instance_update(s, &up), -ENAMETOOLONG);
        struct store_instance got;
        assert_int_equal(store_instance_get(s, in.id, &got), 0);
        assert_instance_equal(&in, &got);

        char big[STORE_NAME_MAX + 8];
        memset(big, 'n', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        assert_int_equal(store_instance_get_by_name(s, big, &got), -ENAMETOOLONG);

        char *huge = malloc(70000);
        assert_non_null(huge);
        memset(huge, 'v', 69999);
        huge[69999] = '\0';
        assert_int_equal(store_meta_set(s, "k", huge), -ENAMETOOLONG);
        assert_int_equal(store_meta_set(s, huge, "v"), -ENAMETOOLONG);
        char buf[8];
        assert_int_equal(store_meta_get(s, huge, buf, sizeof(buf)), -ENAMETOOLONG);
        free(huge);
        store_close(s);
}

/* ---- broker: fetches and tasks ------------------------------------------ */

static struct store_fetch mkfetch(const char *pool, const char *key, int64_t ms)
{
        struct store_fetch f;

        memset(&f, 0, sizeof(f));
        set_str(f.pool, sizeof(f.pool), pool);
        set_str(f.request_key, sizeof(f.request_key), key);
        f.created_ms = ms;
        return f;
}

static struct store_task mktask(const char *forge, int64_t task_id, const char *key,
                                enum store_task_state st)
{
        struct store_task t;

        memset(&t, 0, sizeof(t));
        set_str(t.pool, sizeof(t.pool), "linux");
        set_str(t.forge, sizeof(t.forge), forge);
        t.task_id = task_id;
        t.job_id = task_id * 10;
        set_str(t.request_key, sizeof(t.request_key), key);
        t.state = st;
        t.created_ms = 1700000000000 + task_id;
        t.state_ms = t.created_ms;
        return t;
}

static void assert_task_equal(const struct store_task *a, const struct store_task *b)
{
        assert_int_equal(a->id, b->id);
        assert_string_equal(a->pool, b->pool);
        assert_string_equal(a->forge, b->forge);
        assert_int_equal(a->task_id, b->task_id);
        assert_int_equal(a->job_id, b->job_id);
        assert_string_equal(a->request_key, b->request_key);
        assert_int_equal(a->state, b->state);
        assert_string_equal(a->instance, b->instance);
        assert_int_equal(a->attempts, b->attempts);
        assert_int_equal(a->prelude_rows, b->prelude_rows);
        assert_int_equal(a->log_acked, b->log_acked);
        assert_int_equal(a->result, b->result);
        assert_int_equal(a->created_ms, b->created_ms);
        assert_int_equal(a->state_ms, b->state_ms);
        assert_string_equal(a->reason, b->reason);
}

static size_t n_fetches(struct store *s)
{
        struct store_fetch *v = NULL;
        size_t n = 0;

        assert_int_equal(store_fetch_list(s, &v, &n), 0);
        free(v);
        return n;
}

static size_t n_live_tasks(struct store *s)
{
        struct store_task *v = NULL;
        size_t n = 0;

        assert_int_equal(store_task_list_live(s, &v, &n), 0);
        free(v);
        return n;
}

static void task_state_names(void **state)
{
        static const char *const want[] = { "held", "running", "finishing", "done" };
        enum store_task_state st;

        (void)state;
        assert_int_equal(STORE_TASK_HELD, 1);
        for (int i = STORE_TASK_HELD; i <= STORE_TASK_DONE; i++) {
                assert_string_equal(store_task_state_name((enum store_task_state)i), want[i - 1]);
                st = 0;
                assert_int_equal(store_task_state_parse(want[i - 1], &st), 0);
                assert_int_equal(st, i);
        }
        st = STORE_TASK_RUNNING;
        assert_int_equal(store_task_state_parse("Held", &st), -EINVAL);
        assert_int_equal(store_task_state_parse("", &st), -EINVAL);
        assert_int_equal(store_task_state_parse("registering", &st), -EINVAL);
        assert_int_equal(store_task_state_parse(NULL, &st), -EINVAL);
        assert_int_equal(st, STORE_TASK_RUNNING); /* untouched on failure */
        assert_string_equal(store_task_state_name(0), "unknown");
        assert_string_equal(store_task_state_name(STORE_TASK_DONE + 1), "unknown");
        assert_string_equal(store_task_state_name((enum store_task_state)-1), "unknown");
}

static void fetches(void **state)
{
        struct env *e = *state;
        struct store *s = open_ok(e);
        struct store_fetch f, *v = NULL;
        size_t n = 0;

        assert_int_equal(store_fetch_list(s, &v, &n), 0);
        assert_int_equal(n, 0);
        free(v);

        /* Listed oldest first by created_ms, whatever the insertion order;
         * equal times keep insertion order. */
        f = mkfetch("linux", "k-3", 3000);
        assert_int_equal(store_fetch_insert(s, &f), 0);
        f = mkfetch("linux", "k-1", 1000);
        assert_int_equal(store_fetch_insert(s, &f), 0);
        f = mkfetch("arm", "k-1", 3000); /* keys are per pool */
        assert_int_equal(store_fetch_insert(s, &f), 0);
        f = mkfetch("linux", "k-1", 5000);
        assert_int_equal(store_fetch_insert(s, &f), -EEXIST);
        f = mkfetch("linux", "Az09._-x", 2000);
        assert_int_equal(store_fetch_insert(s, &f), 0);

        store_close(s);
        s = open_ok(e);
        assert_int_equal(store_fetch_list(s, &v, &n), 0);
        assert_int_equal(n, 4);
        static const struct { const char *pool, *key; int64_t ms; } want[] = {
                { "linux", "k-1", 1000 }, { "linux", "Az09._-x", 2000 },
                { "linux", "k-3", 3000 }, { "arm", "k-1", 3000 },
        };
        for (size_t i = 0; i < 4; i++) {
                assert_string_equal(v[i].pool, want[i].pool);
                assert_string_equal(v[i].request_key, want[i].key);
                assert_int_equal(v[i].created_ms, want[i].ms);
        }
        free(v);

        assert_int_equal(store_fetch_delete(s, "linux", "k-1"), 0);
        assert_int_equal(store_fetch_delete(s, "linux", "k-1"), 0);  /* absent */
        assert_int_equal(store_fetch_delete(s, "nowhere", "k-9"), 0);
        assert_int_equal(n_fetches(s), 3);
        f = mkfetch("linux", "k-1", 6000);  /* a deleted key may come back */
        assert_int_equal(store_fetch_insert(s, &f), 0);

        assert_int_equal(store_fetch_insert(s, NULL), -EINVAL);
        assert_int_equal(store_fetch_insert(NULL, &f), -EINVAL);
        assert_int_equal(store_fetch_delete(s, NULL, "k"), -EINVAL);
        assert_int_equal(store_fetch_delete(s, "linux", NULL), -EINVAL);
        assert_int_equal(store_fetch_list(s, NULL, &n), -EINVAL);
        assert_int_equal(store_fetch_list(s, &v, NULL), -EINVAL);
        store_close(s);
}

/* What the schema refuses, for every writer: empty names, keys outside
 * [A-Za-z0-9._-]{1,63}; and what cannot fit a field. */
static void fetch_constraints(void **state)
{
        struct env *e = *state;
        struct store *s = open_ok(e);
        static const char *const bad[] = { "", "a b", "a/b", "a:b", "a\tb", "caf\xc3\xa9", "a]", "a[",
                                           "a^", "a*", "a?", "a\\b", "line\n", "k,2" };
        struct store_fetch f;

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                f = mkfetch("linux", bad[i], 1);
                if (store_fetch_insert(s, &f) != -EINVAL)
                        fail_msg("key %zu accepted", i);
        }
        f = mkfetch("", "k", 1);
        assert_int_equal(store_fetch_insert(s, &f), -EINVAL);

        /* 63 bytes fit; 64 without a NUL do not. */
        f = mkfetch("linux", "k", 1);
        memset(f.request_key, 'k', STORE_KEY_MAX - 1);
        f.request_key[STORE_KEY_MAX - 1] = '\0';
        assert_int_equal(store_fetch_insert(s, &f), 0);
        memset(f.request_key, 'j', STORE_KEY_MAX);
        assert_int_equal(store_fetch_insert(s, &f), -ENAMETOOLONG);
        f = mkfetch("linux", "k", 1);
        memset(f.pool, 'p', sizeof(f.pool));
        assert_int_equal(store_fetch_insert(s, &f), -ENAMETOOLONG);
        char big[STORE_KEY_MAX + 8];
        memset(big, 'b', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        assert_int_equal(store_fetch_delete(s, "linux", big), -ENAMETOOLONG);

        assert_int_equal(n_fetches(s), 1);
        store_close(s);
}

static void tasks_round_trip(void **state)
{
        struct env *e = *state;
        struct store *s = open_ok(e);
        struct store_task t = mktask("main", 42, "rk-1", STORE_TASK_HELD), got;

        assert_int_equal(store_task_get(s, "main", 42, &got), -ENOENT);
        assert_int_equal(store_task_insert(s, &t), 0);
        assert_true(t.id > 0);
        assert_int_equal(store_task_get(s, "main", 42, &got), 0);
        assert_task_equal(&t, &got);
        assert_int_equal(store_task_get(s, "other", 42, &got), -ENOENT);
        assert_int_equal(store_task_get(s, "main", 43, &got), -ENOENT);

        /* Every mutable field, with values at their limits. */
        t.state = STORE_TASK_RUNNING;
        t.job_id = INT64_MAX;
        set_str(t.instance, sizeof(t.instance), "fs-5eed0001-linux-0123");
        t.attempts = INT_MAX;
        t.prelude_rows = 3;
        t.log_acked = INT64_MAX;
        t.result = 2;
        t.state_ms = t.created_ms + 5;
        memset(t.reason, 'r', sizeof(t.reason) - 1);
        t.reason[sizeof(t.reason) - 1] = '\0';
        assert_int_equal(store_task_update(s, &t), 0);
        store_close(s);
        s = open_ok(e);
        assert_int_equal(store_task_get(s, "main", 42, &got), 0);
        assert_task_equal(&t, &got);

        /* Identity is fixed at insert. */
        struct store_task id = t;
        set_str(id.pool, sizeof(id.pool), "arm");
        assert_int_equal(store_task_update(s, &id), -EINVAL);
        id = t;
        set_str(id.forge, sizeof(id.forge), "other");
        assert_int_equal(store_task_update(s, &id), -EINVAL);
        id = t;
        id.task_id = 43;
        assert_int_equal(store_task_update(s, &id), -EINVAL);
        id = t;
        set_str(id.request_key, sizeof(id.request_key), "rk-2");
        assert_int_equal(store_task_update(s, &id), -EINVAL);
        id = t;
        id.created_ms++;
        assert_int_equal(store_task_update(s, &id), -EINVAL);
        id = t;
        id.id = t.id + 100;
        assert_int_equal(store_task_update(s, &id), -ENOENT);
        id.id = 0;
        assert_int_equal(store_task_update(s, &id), -ENOENT);
        assert_int_equal(store_task_get(s, "main", 42, &got), 0);
        assert_task_equal(&t, &got);

        /* One row per (forge, task_id), whatever its state; the same id on
         * another forge is another task. */
        struct store_task dup = mktask("main", 42, "rk-9", STORE_TASK_HELD);
        assert_int_equal(store_task_insert(s, &dup), -EEXIST);
        t.state = STORE_TASK_DONE;
        assert_int_equal(store_task_update(s, &t), 0);
        assert_int_equal(store_task_insert(s, &dup), -EEXIST);
        dup = mktask("other", 42, "rk-1", STORE_TASK_HELD);
        assert_int_equal(store_task_insert(s, &dup), 0);
        assert_true(dup.id > t.id);

        assert_int_equal(store_task_insert(s, NULL), -EINVAL);
        assert_int_equal(store_task_update(s, NULL), -EINVAL);
        assert_int_equal(store_task_get(s, NULL, 42, &got), -EINVAL);
        assert_int_equal(store_task_get(s, "main", 42, NULL), -EINVAL);
        assert_int_equal(store_task_list_live(s, NULL, &(size_t){ 0 }), -EINVAL);
        store_close(s);
}

static void task_constraints(void **state)
{
        struct env *e = *state;
        struct store *s = open_ok(e);
        struct store_task base = mktask("main", 7, "rk", STORE_TASK_HELD), t;

#define REFUSED(stmt, err)                                                     \
        do {                                                                   \
                t = base;                                                      \
                stmt;                                                          \
                assert_int_equal(store_task_insert(s, &t), err);               \
        } while (0)
        REFUSED(t.task_id = 0, -EINVAL);
        REFUSED(t.task_id = -1, -EINVAL);
        REFUSED(t.task_id = INT64_MIN, -EINVAL);
        REFUSED(t.job_id = -1, -EINVAL);
        REFUSED(t.request_key[0] = '\0', -EINVAL);
        REFUSED(set_str(t.request_key, sizeof(t.request_key), "a b"), -EINVAL);
        REFUSED(set_str(t.request_key, sizeof(t.request_key), "a%2F"), -EINVAL);
        REFUSED(t.pool[0] = '\0', -EINVAL);
        REFUSED(t.forge[0] = '\0', -EINVAL);
        REFUSED(t.state = 0, -EINVAL);
        REFUSED(t.state = STORE_TASK_DONE + 1, -EINVAL);
        REFUSED(t.attempts = -1, -EINVAL);
        REFUSED(t.prelude_rows = -1, -EINVAL);
        REFUSED(t.log_acked = -1, -EINVAL);
        REFUSED(t.result = -1, -EINVAL);
        REFUSED(memset(t.pool, 'p', sizeof(t.pool)), -ENAMETOOLONG);
        REFUSED(memset(t.forge, 'f', sizeof(t.forge)), -ENAMETOOLONG);
        REFUSED(memset(t.request_key, 'k', sizeof(t.request_key)), -ENAMETOOLONG);
        REFUSED(memset(t.instance, 'i', sizeof(t.instance)), -ENAMETOOLONG);
        REFUSED(memset(t.reason, 'r', sizeof(t.reason)), -ENAMETOOLONG);
#undef REFUSED
        assert_int_equal(n_live_tasks(s), 0);

        /* The same rules on update; the row is left as it was. */
        t = base;
        assert_int_equal(store_task_insert(s, &t), 0);
        struct store_task up = t, got;
        up.attempts = -1;
        assert_int_equal(store_task_update(s, &up), -EINVAL);
        up = t;
        up.state = 0;
        assert_int_equal(store_task_update(s, &up), -EINVAL);
        up = t;
        memset(up.instance, 'i', sizeof(up.instance));
        assert_int_equal(store_task_update(s, &up), -ENAMETOOLONG);
        assert_int_equal(store_task_get(s, "main", 7, &got), 0);
        assert_task_equal(&t, &got);

        /* A raw writer hits the same CHECKs: they live in the schema. */
        store_close(s);
        sqlite3 *db = NULL;
        assert_int_equal(sqlite3_open(e->path, &db), SQLITE_OK);
        sqlite3_extended_result_codes(db, 1);
        assert_int_equal(sqlite3_exec(db, "UPDATE tasks SET task_id = 0", NULL, NULL, NULL),
                         SQLITE_CONSTRAINT_CHECK);
        assert_int_equal(sqlite3_exec(db, "UPDATE tasks SET request_key = 'a/b'", NULL, NULL, NULL),
                         SQLITE_CONSTRAINT_CHECK);
        assert_int_equal(sqlite3_exec(db, "INSERT INTO fetches(pool, request_key, created_ms)"
                                          " VALUES ('linux', 'x y', 1)", NULL, NULL, NULL),
                         SQLITE_CONSTRAINT_CHECK);
        sqlite3_close(db);
}

static void task_state_forward_only(void **state)
{
        struct env *e = *state;
        struct store *s = open_ok(e);
        struct store_task t = mktask("main", 1, "rk", STORE_TASK_HELD);

        assert_int_equal(store_task_insert(s, &t), 0);
        t.state = STORE_TASK_RUNNING;
        assert_int_equal(store_task_update(s, &t), 0);
        t.state = STORE_TASK_HELD;
        assert_int_equal(store_task_update(s, &t), -EINVAL);
        t.state = STORE_TASK_FINISHING;
        assert_int_equal(store_task_update(s, &t), 0);
        t.state = STORE_TASK_RUNNING;
        assert_int_equal(store_task_update(s, &t), -EINVAL);
        t.state = STORE_TASK_FINISHING;   /* same state: other fields change */
        t.log_acked = 9;
        assert_int_equal(store_task_update(s, &t), 0);
        t.state = STORE_TASK_DONE;
        assert_int_equal(store_task_update(s, &t), 0);
        for (int st = STORE_TASK_HELD; st < STORE_TASK_DONE; st++) {
                t.state = (enum store_task_state)st;
                assert_int_equal(store_task_update(s, &t), -EINVAL);
        }
        struct store_task got;
        assert_int_equal(store_task_get(s, "main", 1, &got), 0);
        assert_int_equal(got.state, STORE_TASK_DONE);
        assert_int_equal(got.log_acked, 9);

        /* Skipping states is allowed: a task can end without a worker. */
        struct store_task u = mktask("main", 2, "rk", STORE_TASK_HELD);
        assert_int_equal(store_task_insert(s, &u), 0);
        u.state = STORE_TASK_DONE;
        assert_int_equal(store_task_update(s, &u), 0);
        store_close(s);
}

static void task_list_live(void **state)
{
        struct env *e = *state;
        struct store *s = open_ok(e);
        struct store_task *v = NULL;
        size_t n = 7;

        assert_int_equal(store_task_list_live(s, &v, &n), 0);
        assert_int_equal(n, 0);
        free(v);

        /* Inserted out of age order: listed by created_ms, then id. */
        static const struct { int64_t task_id, ms; enum store_task_state st; } rows[] = {
                { 10, 3000, STORE_TASK_HELD }, { 11, 1000, STORE_TASK_RUNNING },
                { 12, 2000, STORE_TASK_DONE }, { 13, 2000, STORE_TASK_FINISHING },
                { 14, 1000, STORE_TASK_HELD },
        };
        for (size_t i = 0; i < 5; i++) {
                struct store_task t = mktask("main", rows[i].task_id, "rk", STORE_TASK_HELD);
                t.created_ms = t.state_ms = rows[i].ms;
                assert_int_equal(store_task_insert(s, &t), 0);
                if (rows[i].st != STORE_TASK_HELD) {
                        t.state = rows[i].st;
                        assert_int_equal(store_task_update(s, &t), 0);
                }
        }
        assert_int_equal(store_task_list_live(s, &v, &n), 0);
        static const int64_t want[] = { 11, 14, 13, 10 };
        assert_int_equal(n, 4);
        for (size_t i = 0; i < n; i++) {
                struct store_task got;
                assert_int_equal(v[i].task_id, want[i]);
                assert_int_equal(store_task_get(s, "main", want[i], &got), 0);
                assert_task_equal(&v[i], &got);
        }
        free(v);
        store_close(s);
}

/* Fetches and tasks join the daemon's batches like instances do. */
static void broker_in_transactions(void **state)
{
        struct env *e = *state;
        struct store *s = open_ok(e);
        struct store_fetch f = mkfetch("linux", "rk-1", 1);
        struct store_task t = mktask("main", 1, "rk-1", STORE_TASK_HELD), got;

        assert_int_equal(store_begin(s), 0);
        assert_int_equal(store_fetch_insert(s, &f), 0);
        assert_int_equal(store_task_insert(s, &t), 0);
        t.state = STORE_TASK_RUNNING;
        assert_int_equal(store_task_update(s, &t), 0);
        add(s, "fs-1", "linux", "", STORE_REGISTERING);
        assert_int_equal(store_rollback(s), 0);
        assert_int_equal(n_fetches(s), 0);
        assert_int_equal(store_task_get(s, "main", 1, &got), -ENOENT);
        assert_int_equal(store_instance_get_by_name(s, "fs-1", &(struct store_instance){ 0 }), -ENOENT);

        /* A refused statement does not end the batch; the rest commits. */
        assert_int_equal(store_begin(s), 0);
        assert_int_equal(store_fetch_insert(s, &f), 0);
        assert_int_equal(store_fetch_insert(s, &f), -EEXIST);
        t = mktask("main", 1, "rk-1", STORE_TASK_HELD);
        assert_int_equal(store_task_insert(s, &t), 0);
        struct store_task dup = t;
        assert_int_equal(store_task_insert(s, &dup), -EEXIST);
        struct store_task bad = mktask("main", 0, "rk-1", STORE_TASK_HELD);
        assert_int_equal(store_task_insert(s, &bad), -EINVAL);
        struct store_fetch f2 = mkfetch("linux", "rk-2", 2);
        assert_int_equal(store_fetch_insert(s, &f2), 0);
        assert_int_equal(store_fetch_delete(s, "linux", "rk-1"), 0);
        assert_int_equal(store_commit(s), 0);
        store_close(s);

        s = open_ok(e);
        struct store_fetch *v = NULL;
        size_t n = 0;
        assert_int_equal(store_fetch_list(s, &v, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(v[0].request_key, "rk-2");
        free(v);
        assert_int_equal(store_task_get(s, "main", 1, &got), 0);
        assert_task_equal(&t, &got);

        /* Closing with an open batch discards its fetches and tasks. */
        assert_int_equal(store_begin(s), 0);
        f = mkfetch("linux", "rk-3", 3);
        assert_int_equal(store_fetch_insert(s, &f), 0);
        t = mktask("main", 2, "rk-3", STORE_TASK_HELD);
        assert_int_equal(store_task_insert(s, &t), 0);
        store_close(s);
        s = open_ok(e);
        assert_int_equal(n_fetches(s), 1);
        assert_int_equal(store_task_get(s, "main", 2, &got), -ENOENT);
        store_close(s);
}

static void broker_prune(void **state)
{
        struct env *e = *state;
        struct store *s = open_ok(e);
        struct store_task got;
        struct store_fetch *v = NULL;
        size_t n = 0;

        /* Tasks: (task_id, state, state_ms, whether prune(2000) removes it). */
        static const struct { int64_t id; enum store_task_state st; int64_t ms; bool gone; } tasks[] = {
                { 1, STORE_TASK_DONE, 1000, true },
                { 2, STORE_TASK_DONE, 1999, true },
                { 3, STORE_TASK_DONE, 2000, false },     /* not older */
                { 4, STORE_TASK_DONE, 5000, false },
                { 5, STORE_TASK_HELD, 1000, false },     /* live, however old */
                { 6, STORE_TASK_RUNNING, 1000, false },
                { 7, STORE_TASK_FINISHING, 1000, false },
        };
        static const char *const keys[] = { "k-done", "k-done", "k-done", "k-done",
                                            "k-held", "k-running", "k-finishing" };
        for (size_t i = 0; i < 7; i++) {
                struct store_task t = mktask("main", tasks[i].id, keys[i], STORE_TASK_HELD);
                assert_int_equal(store_task_insert(s, &t), 0);
                t.state = tasks[i].st;
                t.state_ms = tasks[i].ms;
                assert_int_equal(store_task_update(s, &t), 0);
        }
        /* Fetches: kept while new, or while a live task of the same pool
         * came from them. */
        static const struct { const char *pool, *key; int64_t ms; bool gone; } fetches[] = {
                { "linux", "k-lost", 1000, true },     /* no task at all */
                { "linux", "k-done", 1000, true },     /* its tasks are done */
                { "linux", "k-held", 1000, false },
                { "linux", "k-running", 1000, false },
                { "linux", "k-finishing", 1999, false },
                { "arm", "k-held", 1000, true },       /* same key, other pool */
                { "linux", "k-new", 2000, false },     /* not older */
                { "linux", "k-newer", 9000, false },
        };
        for (size_t i = 0; i < 8; i++) {
                struct store_fetch f = mkfetch(fetches[i].pool, fetches[i].key, fetches[i].ms);
                assert_int_equal(store_fetch_insert(s, &f), 0);
        }
        struct store_instance in;
        int64_t inst = add(s, "fs-old-done", "linux", "", STORE_DONE);
        assert_int_equal(store_instance_get(s, inst, &in), 0);
        in.state_ms = 1000;
        in.runner_deleted = true;
        assert_int_equal(store_instance_update(s, &in), 0);

        /* 1 instance, 2 tasks, 3 fetches. */
        assert_int_equal(store_prune(s, 2000), 6);
        for (size_t i = 0; i < 7; i++)
                assert_int_equal(store_task_get(s, "main", tasks[i].id, &got), tasks[i].gone ? -ENOENT : 0);
        assert_int_equal(store_fetch_list(s, &v, &n), 0);
        assert_int_equal(n, 5);
        size_t k = 0;
        for (size_t i = 0; i < 8; i++) {
                if (fetches[i].gone)
                        continue;
                assert_true(k < n);
                assert_string_equal(v[k].pool, fetches[i].pool);
                assert_string_equal(v[k].request_key, fetches[i].key);
                k++;
        }
        free(v);
        assert_int_equal(store_instance_get(s, inst, &in), -ENOENT);
        assert_int_equal(store_prune(s, 2000), 0);

        /* A task that ends frees its fetch for the next prune. */
        struct store_task t;
        assert_int_equal(store_task_get(s, "main", 5, &t), 0);
        t.state = STORE_TASK_DONE;
        t.state_ms = 3000;
        assert_int_equal(store_task_update(s, &t), 0);
        assert_int_equal(store_prune(s, 2000), 1);
        assert_int_equal(n_fetches(s), 4);

        /* Ids of pruned tasks are never handed out again. */
        int64_t max_id = 0;
        for (int64_t id = 3; id <= 7; id++) {
                assert_int_equal(store_task_get(s, "main", id, &got), 0);
                if (got.id > max_id)
                        max_id = got.id;
        }
        assert_int_equal(store_prune(s, INT64_MAX), 3 + 2); /* tasks 3, 4, 5; fetches k-new, k-newer */
        struct store_task again = mktask("main", 1, "k-again", STORE_TASK_HELD);
        assert_int_equal(store_task_insert(s, &again), 0);
        assert_true(again.id > max_id);
        assert_int_equal(n_live_tasks(s), 3);
        store_close(s);
}

/* Hand-edited rows that break the schema read as damage, never as a
 * truncated string or a wrapped number. */
static void broker_damaged_rows(void **state)
{
        struct env *e = *state;
        struct store *s = open_ok(e);
        struct store_task t = mktask("main", 1, "rk", STORE_TASK_HELD), got;
        struct store_task *v = NULL;
        struct store_fetch f = mkfetch("linux", "rk", 1), *fv = NULL;
        size_t n = 0;
        sqlite3 *db = NULL;
        static const char *const edits[] = {
                "UPDATE tasks SET state = 'lost'",
                "UPDATE tasks SET attempts = 4294967296",
                "UPDATE tasks SET result = -5",
                "UPDATE tasks SET instance = printf('%.200c', 'x')",
                "UPDATE tasks SET request_key = printf('%.64c', 'k')",
        };

        assert_int_equal(store_task_insert(s, &t), 0);
        assert_int_equal(store_fetch_insert(s, &f), 0);
        store_close(s);
        for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
                char sql[256];
                snprintf(sql, sizeof(sql), "PRAGMA ignore_check_constraints = ON;"
                                           "DROP TRIGGER tasks_state_forward; %s", edits[i]);
                assert_int_equal(sqlite3_open(e->path, &db), SQLITE_OK);
                assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
                sqlite3_close(db);
                s = open_ok(e);
                assert_int_equal(store_task_get(s, "main", 1, &got), -EUCLEAN);
                assert_int_equal(store_task_list_live(s, &v, &n), -EUCLEAN);
                assert_null(v);
                store_close(s);
                empty_dir(e->dir);
                s = open_ok(e);
                t = mktask("main", 1, "rk", STORE_TASK_HELD);
                assert_int_equal(store_task_insert(s, &t), 0);
                store_close(s);
        }
        assert_int_equal(sqlite3_open(e->path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, "PRAGMA ignore_check_constraints = ON;"
                                          "INSERT INTO fetches(pool, request_key, created_ms)"
                                          " VALUES ('linux', printf('%.70c', 'k'), 1)",
                                      NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
        s = open_ok(e);
        assert_int_equal(store_fetch_list(s, &fv, &n), -EUCLEAN);
        assert_null(fv);
        store_close(s);
}

static char *read_text(const char *path)
{
        FILE *f = fopen(path, "re");
        char *buf;
        size_t n;

        if (!f)
                fail_msg("cannot open %s", path);
        buf = malloc(1 << 20);
        assert_non_null(buf);
        n = fread(buf, 1, (1 << 20) - 1, f);
        assert_true(n > 0 && n < (1 << 20) - 1);
        buf[n] = '\0';
        fclose(f);
        return buf;
}

/* A database written by the first schema (tests/store/schema-v1.sql, from
 * the forgescale that had only instances) is upgraded at open: its
 * instances, counts, meta and id sequence are kept, its rules still hold,
 * and the broker tables work. */
static void migrate_from_v1(void **state)
{
        struct env *e = *state;
        char *sql = read_text(STORE_FIXTURES "/schema-v1.sql");
        sqlite3 *db = NULL;
        char buf[64];

        assert_int_equal(sqlite3_open(e->path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
        free(sql);

        for (int round = 0; round < 2; round++) {  /* the upgrade, then a plain open */
                struct store *s = open_ok(e);
                struct store_instance in, *v = NULL;
                size_t n = 0;

                assert_int_equal(store_meta_get(s, "schema_version", buf, sizeof(buf)), 0);
                assert_string_equal(buf, "3");
                assert_int_equal(store_meta_get(s, "controller_id", buf, sizeof(buf)), 0);
                assert_string_equal(buf, "5eed0001");

                assert_int_equal(store_instance_get_by_name(s, "fs-5eed0001-linux-bbbb", &in), 0);
                assert_int_equal(in.id, 2);
                assert_int_equal(in.state, STORE_RUNNING);
                assert_int_equal(in.job_id, 102);
                assert_string_equal(in.handle, "h-running");
                assert_int_equal(in.runner_id, 7);
                assert_string_equal(in.runner_uuid, "0b3c6e1e-2d0a-4b7e-9f10-3a5b8c2d1e4f");
                assert_string_equal(in.provider_ref, "4242:99887766");
                assert_int_equal(in.state_ms, 1700000005000);
                assert_int_equal(in.claimed_ms, 1700000004000);
                assert_int_equal(in.job_seen_ms, 1699999999000);
                assert_int_equal(store_instance_get_by_name(s, "fs-5eed0001-arm-dddd", &in), 0);
                assert_int_equal(in.state, STORE_FAILED);
                assert_int_equal(in.exit_code, 3);
                assert_string_equal(in.reason, "worker exited 3 before claiming");

                assert_int_equal(store_instance_list_live(s, &v, &n), 0);
                assert_int_equal(n, 3);
                assert_string_equal(v[0].name, "fs-5eed0001-linux-aaaa");
                assert_string_equal(v[1].name, "fs-5eed0001-linux-bbbb");
                assert_string_equal(v[2].name, "fs-5eed0001-arm-eeee");
                assert_true(v[2].warm);
                free(v);
                assert_int_equal(store_instance_list_undeleted(s, &v, &n), 0);
                assert_int_equal(n, 1);
                assert_int_equal(v[0].id, 4);
                free(v);
                struct count_ud c = { .n = 0 };
                assert_int_equal(store_instance_count(s, count_cb, &c), 0);
                assert_int_equal(counted(&c, "linux", STORE_RUNNING), 1);
                assert_int_equal(counted(&c, "linux", STORE_DONE), 1);
                assert_int_equal(counted(&c, "arm", STORE_WAITING), 1);
                store_close(s);
        }

        struct store *s = open_ok(e);
        struct store_instance in;
        /* The rules of the old schema still hold. */
        struct store_instance twin = mk("fs-twin", "linux", "h-live", STORE_REGISTERING);
        assert_int_equal(store_instance_insert(s, &twin), -EEXIST);
        twin = mk("fs-5eed0001-linux-cccc", "linux", "", STORE_REGISTERING);
        assert_int_equal(store_instance_insert(s, &twin), -EEXIST);
        assert_int_equal(store_instance_get(s, 2, &in), 0);
        in.state = STORE_WAITING;
        assert_int_equal(store_instance_update(s, &in), -EINVAL);
        /* The id sequence goes on past the pruned-or-not history. */
        int64_t id = add(s, "fs-new", "linux", "h-done", STORE_REGISTERING);
        assert_int_equal(id, 6);

        /* The new tables. */
        struct store_fetch f = mkfetch("linux", "rk-1", 1);
        assert_int_equal(store_fetch_insert(s, &f), 0);
        struct store_task t = mktask("main", 1, "rk-1", STORE_TASK_HELD), got;
        assert_int_equal(store_task_insert(s, &t), 0);
        assert_int_equal(store_task_get(s, "main", 1, &got), 0);
        assert_task_equal(&t, &got);
        assert_int_equal(store_prune(s, INT64_MAX), 1); /* fs-5eed0001-linux-cccc */
        store_close(s);
}

/* SQLite allocator that fails exactly one chosen call. */
static sqlite3_mem_methods real_mem;
static long fail_at = -1, mem_calls;
static bool failed_once;

static bool should_fail(void)
{
        if (fail_at >= 0 && ++mem_calls == fail_at) {
                failed_once = true;
                return true;
        }
        return false;
}

static void *fi_malloc(int n)
{
        return should_fail() ? NULL : real_mem.xMalloc(n);
}

static void *fi_realloc(void *p, int n)
{
        return should_fail() ? NULL : real_mem.xRealloc(p, n);
}

static int fi_init(void *app)
{
        (void)app;
        return real_mem.xInit(real_mem.pAppData);
}

static void fi_shutdown(void *app)
{
        (void)app;
        real_mem.xShutdown(real_mem.pAppData);
}

static void install_fault_allocator(void)
{
        sqlite3_mem_methods m;

        assert_int_equal(sqlite3_shutdown(), SQLITE_OK);
        assert_int_equal(sqlite3_config(SQLITE_CONFIG_GETMALLOC, &real_mem), SQLITE_OK);
        m = real_mem;
        m.xMalloc = fi_malloc;
        m.xRealloc = fi_realloc;
        m.xInit = fi_init;
        m.xShutdown = fi_shutdown;
        assert_int_equal(sqlite3_config(SQLITE_CONFIG_MALLOC, &m), SQLITE_OK);
        assert_int_equal(sqlite3_initialize(), SQLITE_OK);
}

static void restore_allocator(void)
{
        assert_int_equal(sqlite3_shutdown(), SQLITE_OK);
        assert_int_equal(sqlite3_config(SQLITE_CONFIG_MALLOC, &real_mem), SQLITE_OK);
        assert_int_equal(sqlite3_initialize(), SQLITE_OK);
}

/* One daemon-like sequence on a fresh file; returns the first error. The
 * injected failure is armed at open, or only after open when
 * fail_after_open is set (opening dominates the allocation count). */
static int scenario(const char *path, bool fail_after_open)
{
        struct store *s = NULL;
        struct store_instance *v = NULL;
        struct store_fetch *fv = NULL;
        struct store_task *tv = NULL;
        size_t n = 0, nf = 0, nt = 0;
        long armed = fail_at;
        if (fail_after_open)
                fail_at = -1;
        int r = store_open(path, &s);
        if (fail_after_open) {
                fail_at = armed;
                mem_calls = 0;
        }
        if (r < 0)
                return r;
        struct store_instance a = mk("fs-a", "small", "h-a", STORE_REGISTERING);
        struct store_instance b = mk("fs-b", "small", "h-b", STORE_REGISTERING);
        struct count_ud c = { .n = 0 };
        char buf[16];
        if ((r = store_begin(s)) < 0)
                goto out;
        if ((r = store_instance_insert(s, &a)) < 0 ||
            (r = store_instance_insert(s, &b)) < 0) {
                store_rollback(s);
                goto out;
        }
        a.state = STORE_RUNNING;
        if ((r = store_instance_update(s, &a)) < 0) {
                store_rollback(s);
                goto out;
        }
        struct store_fetch f = mkfetch("small", "rk-1", 1);
        struct store_task t = mktask("main", 1, "rk-1", STORE_TASK_HELD);
        if ((r = store_fetch_insert(s, &f)) < 0 || (r = store_task_insert(s, &t)) < 0) {
                store_rollback(s);
                goto out;
        }
        t.state = STORE_TASK_RUNNING;
        if ((r = store_task_update(s, &t)) < 0) {
                store_rollback(s);
                goto out;
        }
        if ((r = store_commit(s)) < 0) {
                store_rollback(s);
                goto out;
        }
        if ((r = store_meta_set(s, "controller_id", "c1")) < 0 ||
            (r = store_meta_get(s, "controller_id", buf, sizeof(buf))) < 0 ||
            (r = store_instance_list_live(s, &v, &n)) < 0 ||
            (r = store_instance_count(s, count_cb, &c)) < 0 ||
            (r = store_fetch_list(s, &fv, &nf)) < 0 ||
            (r = store_task_list_live(s, &tv, &nt)) < 0 ||
            (r = store_task_get(s, "main", 1, &t)) < 0 ||
            (r = store_fetch_delete(s, "small", "rk-1")) < 0 ||
            (r = store_prune(s, 0)) < 0)
                goto out;
        if (n != 2 || nf != 1 || nt != 1 || t.state != STORE_TASK_RUNNING)
                r = -EIO;
out:
        free(fv);
        free(tv);
        free(v);
        store_close(s);
        return r;
}

static void allocation_failures(void **state)
{
        struct env *e = *state;

        install_fault_allocator();

        /* Allocation N fails, for N in steps of 5 after open (about 1,500
         * allocations) and of 17 during open (about 3,900, mostly schema
         * parsing), to keep the test within seconds. FS_STORE_FAULT_STEP=1
         * tries every point. */
        long step[2] = { 5, 17 };
        const char *env = getenv("FS_STORE_FAULT_STEP");
        if (env && *env) {
                char *end;
                errno = 0;
                long long v = strtoll(env, &end, 10);
                assert_true(errno == 0 && end != env && *end == '\0' && v > 0 && v < 1000);
                step[0] = step[1] = v;
        }
        for (int phase = 0; phase < 2; phase++) {
                long n, points = 0;
                int failures = 0;
                for (n = 1; n < 100000; n += step[phase]) {
                        empty_dir(e->dir);
                        fail_at = n;
                        mem_calls = 0;
                        failed_once = false;
                        int r = scenario(e->path, phase == 0);
                        fail_at = -1;
                        if (!failed_once) {
                                assert_int_equal(r, 0);
                                break;
                        }
                        points++;
                        /* A failed allocation is -ENOMEM or absorbed by
                         * SQLite (it retries some), never a crash, a leak, a
                         * wrong answer or a misleading error. */
                        if (r != 0 && r != -ENOMEM)
                                fail_msg("allocation %ld: %d", n, r);
                        if (r < 0)
                                failures++;
                        /* The file is never left in a state that cannot be
                         * opened. */
                        struct store *s = NULL;
                        assert_int_equal(store_open(e->path, &s), 0);
                        store_close(s);
                }
                print_message("%s: %ld allocation failure points, %d returned an error\n",
                              phase == 0 ? "after open" : "open", points, failures);
                assert_true(points > 50 / step[phase]);
                assert_true(failures > 0);
        }

        restore_allocator();
}

/* A write that fails inside a batch either leaves the batch intact or, when
 * SQLite rolled the whole transaction back, makes every later write and the
 * commit fail: the batch is never half applied. */
static void batch_atomic_under_failures(void **state)
{
        struct env *e = *state;
        int lost = 0, kept = 0;

        install_fault_allocator();
        for (long n = 1; n < 100000; n++) {
                struct store *s = NULL;
                struct store_instance a = mk("fs-a", "small", "h-a", STORE_REGISTERING);
                struct store_instance b = mk("fs-b", "small", "h-b", STORE_REGISTERING);
                struct store_instance c = mk("fs-c", "small", "h-c", STORE_REGISTERING);
                struct store_instance got;

                empty_dir(e->dir);
                assert_int_equal(store_open(e->path, &s), 0);
                assert_int_equal(store_begin(s), 0);
                assert_int_equal(store_instance_insert(s, &a), 0);
                a.state = STORE_STARTING;
                fail_at = n;
                mem_calls = 0;
                failed_once = false;
                int rb = store_instance_update(s, &a);
                if (rb == 0)
                        rb = store_instance_insert(s, &b);
                fail_at = -1;
                int rc = store_instance_insert(s, &c);
                int rcommit = store_commit(s);
                if (rcommit < 0)
                        (void)store_rollback(s);
                store_close(s);

                assert_int_equal(store_open(e->path, &s), 0);
                bool has_a = store_instance_get_by_name(s, "fs-a", &got) == 0;
                bool a_started = has_a && got.state == STORE_STARTING;
                bool has_b = store_instance_get_by_name(s, "fs-b", &got) == 0;
                bool has_c = store_instance_get_by_name(s, "fs-c", &got) == 0;
                store_close(s);

                if (!failed_once) {
                        assert_int_equal(rb, 0);
                        assert_int_equal(rcommit, 0);
                        assert_true(a_started && has_b && has_c);
                        break;
                }
                if (rcommit == 0) {
                        /* The failed statement alone was undone. */
                        assert_int_equal(rc, 0);
                        assert_true(has_a && has_c);
                        assert_true(rb < 0 || (a_started && has_b));
                        kept++;
                } else {
                        /* The batch was lost as a whole, and said so. */
                        assert_int_equal(rcommit, -ENOMEM);
                        assert_int_equal(rc, -ENOMEM);
                        assert_false(has_a || has_b || has_c);
                        lost++;
                }
        }
        restore_allocator();
        print_message("batch kept after a failed write: %d, lost and reported: %d\n", kept, lost);
        assert_true(kept + lost > 10);
}

/* A database removed or replaced under an open store is noticed. */
static void file_removed_or_replaced(void **state)
{
        struct env *e = *state;
        struct store *s = open_ok(e);
        char moved[PATH_MAX + 8];

        assert_int_equal(store_check_file(s), 0);
        add(s, "fs-1", "small", "", STORE_REGISTERING);
        assert_int_equal(store_check_file(s), 0);
        snprintf(moved, sizeof(moved), "%s.old", e->path);
        assert_int_equal(rename(e->path, moved), 0);
        assert_int_equal(store_check_file(s), -ENOENT);
        write_file(e->path, "x", 1);
        assert_int_equal(store_check_file(s), -ESTALE);
        assert_int_equal(unlink(e->path), 0);
        assert_int_equal(rename(moved, e->path), 0);
        assert_int_equal(store_check_file(s), 0);
        store_close(s);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(state_names),
                cmocka_unit_test_setup_teardown(open_close_reopen, setup, teardown),
                cmocka_unit_test_setup_teardown(fields_round_trip, setup, teardown),
                cmocka_unit_test_setup_teardown(identity_is_fixed, setup, teardown),
                cmocka_unit_test_setup_teardown(state_moves_forward_only, setup, teardown),
                cmocka_unit_test_setup_teardown(unique_live_handle, setup, teardown),
                cmocka_unit_test_setup_teardown(duplicate_name, setup, teardown),
                cmocka_unit_test_setup_teardown(list_live, setup, teardown),
                cmocka_unit_test_setup_teardown(list_undeleted, setup, teardown),
                cmocka_unit_test_setup_teardown(count, setup, teardown),
                cmocka_unit_test_setup_teardown(count_matches_rows, setup, teardown),
                cmocka_unit_test_setup_teardown(prune, setup, teardown),
                cmocka_unit_test_setup_teardown(meta, setup, teardown),
                cmocka_unit_test_setup_teardown(transactions, setup, teardown),
                cmocka_unit_test_setup_teardown(concurrent_reader, setup, teardown),
                cmocka_unit_test_setup_teardown(file_mode, setup, teardown),
                cmocka_unit_test_setup_teardown(restart_after_kill, setup, teardown),
                cmocka_unit_test_setup_teardown(damaged_files, setup, teardown),
                cmocka_unit_test_setup_teardown(file_removed_or_replaced, setup, teardown),
                cmocka_unit_test_setup_teardown(foreign_and_newer_files, setup, teardown),
                cmocka_unit_test_setup_teardown(long_strings, setup, teardown),
                cmocka_unit_test_setup_teardown(allocation_failures, setup, teardown),
                cmocka_unit_test_setup_teardown(batch_atomic_under_failures, setup, teardown),
                cmocka_unit_test(task_state_names),
                cmocka_unit_test_setup_teardown(fetches, setup, teardown),
                cmocka_unit_test_setup_teardown(fetch_constraints, setup, teardown),
                cmocka_unit_test_setup_teardown(tasks_round_trip, setup, teardown),
                cmocka_unit_test_setup_teardown(task_constraints, setup, teardown),
                cmocka_unit_test_setup_teardown(task_state_forward_only, setup, teardown),
                cmocka_unit_test_setup_teardown(task_list_live, setup, teardown),
                cmocka_unit_test_setup_teardown(broker_in_transactions, setup, teardown),
                cmocka_unit_test_setup_teardown(broker_prune, setup, teardown),
                cmocka_unit_test_setup_teardown(broker_damaged_rows, setup, teardown),
                cmocka_unit_test_setup_teardown(migrate_from_v1, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
