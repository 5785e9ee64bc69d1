/* store.c: forgescale's durable state in SQLite (WAL). The only file that
 * includes sqlite3.h; owns the schema (instances; the broker's fetches and
 * tasks), its migrations, every SQL statement and the mapping of SQLite
 * result codes to -errno. Never logs, never does network or process work,
 * never silently truncates a string, and never lets a second live instance
 * take a handle that a live instance holds. */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

/* "FSCL": marks the file as ours, so a foreign SQLite file is refused
 * instead of having our tables added to it. */
#define APPLICATION_ID 0x4653434c

#define META_KEY_MAX 128        /* bytes, NUL included */
#define META_VALUE_MAX 65536    /* bytes, NUL included */
#define BUSY_TIMEOUT_MS 5000
#define LIST_MAX ((size_t)1 << 24) /* far above any sane instance count */

static const char *const state_names[STORE_STATE_MAX] = {
        [STORE_REGISTERING] = "registering",
        [STORE_STARTING] = "starting",
        [STORE_WAITING] = "waiting",
        [STORE_RUNNING] = "running",
        [STORE_STOPPING] = "stopping",
        [STORE_DONE] = "done",
        [STORE_FAILED] = "failed",
};

/* Indexed by enum store_task_state; [0] is no state. */
static const char *const task_state_names[] = {
        [STORE_TASK_HELD] = "held",
        [STORE_TASK_RUNNING] = "running",
        [STORE_TASK_FINISHING] = "finishing",
        [STORE_TASK_DONE] = "done",
};
#define TASK_STATE_END ((int)(sizeof(task_state_names) / sizeof(task_state_names[0])))

/* "Live" is written as "not terminal": with the CHECK on state it equals
 * state IN ('registering','starting','waiting','running','stopping'), but
 * SQLite evaluates a constant IN list of more than two values through a
 * temporary b-tree on every statement run, which tripled the cost of a
 * write (bench/store). A state added by a later migration counts as live,
 * the safe side for the one-live-instance-per-handle rule. The state CHECK
 * is an OR chain for the same reason. */
#define IS_LIVE "state NOT IN ('done','failed')"
#define TERMINAL_STATES "('done','failed')"
#define TASK_LIVE "state != 'done'"

/* A request key: 1 to 63 bytes, none outside [A-Za-z0-9._-] (it travels in
 * an HTTP header and in log lines). In a GLOB class a '-' before the ']'
 * is literal. */
#define KEY_OK(col)                                                            \
        "length(CAST(" col " AS BLOB)) BETWEEN 1 AND 63 AND "                  \
        col " NOT GLOB '*[^A-Za-z0-9._-]*'"

/* Schema migrations, applied in order inside one transaction; the number of
 * steps applied is meta.schema_version. Never edit a shipped step: append.
 *
 * Step 1: meta, instances, and the indexes that carry the invariants:
 *  - instances_name: the name is the runner name on the forge, so it is
 *    never reused, not even by a terminal row kept for history;
 *  - instances_live_handle: at most one live instance per handle, enforced
 *    by the database so it also holds across restarts;
 *  - instances_state_forward: states only move forward and terminal states
 *    are final (done and failed share the last rank);
 *  - instance_counts: per (pool, state) row counts kept by triggers in the
 *    same transaction, so store_instance_count() reads a few rows instead
 *    of scanning the history (40 ms for 41,000 rows in bench/store).
 * Ids are AUTOINCREMENT so a pruned id is never handed out again and an id
 * in a log line names one instance forever. Length checks mirror the
 * fixed-size fields of struct store_instance, so every stored string fits
 * its field when read back. */
static const char *const migrations[] = {
        "CREATE TABLE meta ("
        "  key TEXT PRIMARY KEY NOT NULL,"
        "  value TEXT NOT NULL"
        ");"
        "CREATE TABLE instances ("
        "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
        "  name TEXT NOT NULL"
        "    CHECK (length(CAST(name AS BLOB)) BETWEEN 1 AND 127),"
        "  pool TEXT NOT NULL CHECK (length(CAST(pool AS BLOB)) < 128),"
        "  forge TEXT NOT NULL CHECK (length(CAST(forge AS BLOB)) < 128),"
        "  scope TEXT NOT NULL CHECK (length(CAST(scope AS BLOB)) < 256),"
        "  provider TEXT NOT NULL CHECK (length(CAST(provider AS BLOB)) < 128),"
        "  state TEXT NOT NULL CHECK (state = 'registering' OR"
        "    state = 'starting' OR state = 'waiting' OR state = 'running' OR"
        "    state = 'stopping' OR state = 'done' OR state = 'failed'),"
        "  warm INTEGER NOT NULL CHECK (warm IN (0, 1)),"
        "  job_id INTEGER NOT NULL DEFAULT 0,"
        "  handle TEXT NOT NULL DEFAULT ''"
        "    CHECK (length(CAST(handle AS BLOB)) < 64),"
        "  runner_id INTEGER NOT NULL DEFAULT 0,"
        "  runner_uuid TEXT NOT NULL DEFAULT ''"
        "    CHECK (length(CAST(runner_uuid AS BLOB)) < 40),"
        "  provider_ref TEXT NOT NULL DEFAULT ''"
        "    CHECK (length(CAST(provider_ref AS BLOB)) < 256),"
        "  created_ms INTEGER NOT NULL,"
        "  state_ms INTEGER NOT NULL,"
        "  job_seen_ms INTEGER NOT NULL DEFAULT 0,"
        "  claimed_ms INTEGER NOT NULL DEFAULT 0,"
        "  exit_code INTEGER NOT NULL DEFAULT -1,"
        "  runner_deleted INTEGER NOT NULL DEFAULT 0"
        "    CHECK (runner_deleted IN (0, 1)),"
        "  reason TEXT NOT NULL DEFAULT ''"
        "    CHECK (length(CAST(reason AS BLOB)) < 160)"
        ");"
        "CREATE UNIQUE INDEX instances_name ON instances(name);"
        "CREATE UNIQUE INDEX instances_live_handle ON instances(handle)"
        "  WHERE handle != '' AND " IS_LIVE ";"
        "CREATE INDEX instances_live ON instances(id)"
        "  WHERE " IS_LIVE ";"
        "CREATE INDEX instances_undeleted ON instances(id)"
        "  WHERE runner_deleted = 0 AND state IN " TERMINAL_STATES ";"
        "CREATE INDEX instances_terminal_age ON instances(state_ms)"
        "  WHERE runner_deleted = 1 AND state IN " TERMINAL_STATES ";"
        "CREATE TRIGGER instances_state_forward"
        "  BEFORE UPDATE OF state ON instances"
        "  WHEN NEW.state != OLD.state AND ("
        "    OLD.state IN " TERMINAL_STATES " OR"
        "    (CASE NEW.state WHEN 'registering' THEN 0 WHEN 'starting' THEN 1"
        "      WHEN 'waiting' THEN 2 WHEN 'running' THEN 3"
        "      WHEN 'stopping' THEN 4 ELSE 5 END) <"
        "    (CASE OLD.state WHEN 'registering' THEN 0 WHEN 'starting' THEN 1"
        "      WHEN 'waiting' THEN 2 WHEN 'running' THEN 3"
        "      WHEN 'stopping' THEN 4 ELSE 5 END)) "
        "BEGIN SELECT RAISE(ABORT, 'instance state may only move forward'); END;"
        "CREATE TABLE instance_counts ("
        "  pool TEXT NOT NULL,"
        "  state TEXT NOT NULL,"
        "  n INTEGER NOT NULL,"
        "  PRIMARY KEY (pool, state)"
        ") WITHOUT ROWID;"
        "CREATE TRIGGER instance_counts_insert AFTER INSERT ON instances "
        "BEGIN"
        "  INSERT INTO instance_counts(pool, state, n) VALUES (NEW.pool, NEW.state, 1)"
        "    ON CONFLICT(pool, state) DO UPDATE SET n = n + 1;"
        "END;"
        "CREATE TRIGGER instance_counts_update AFTER UPDATE OF pool, state ON instances"
        "  WHEN NEW.state != OLD.state OR NEW.pool != OLD.pool "
        "BEGIN"
        "  UPDATE instance_counts SET n = n - 1"
        "    WHERE pool = OLD.pool AND state = OLD.state;"
        "  INSERT INTO instance_counts(pool, state, n) VALUES (NEW.pool, NEW.state, 1)"
        "    ON CONFLICT(pool, state) DO UPDATE SET n = n + 1;"
        "END;"
        "CREATE TRIGGER instance_counts_delete AFTER DELETE ON instances "
        "BEGIN"
        "  UPDATE instance_counts SET n = n - 1"
        "    WHERE pool = OLD.pool AND state = OLD.state;"
        "END;",

        /* Step 2: fetches, the broker's FetchTask calls, each recorded
         * under its request key before it is sent. */
        "CREATE TABLE fetches ("
        "  id INTEGER PRIMARY KEY,"
        "  pool TEXT NOT NULL"
        "    CHECK (length(CAST(pool AS BLOB)) BETWEEN 1 AND 127),"
        "  request_key TEXT NOT NULL CHECK (" KEY_OK("request_key") "),"
        "  created_ms INTEGER NOT NULL"
        ");"
        "CREATE UNIQUE INDEX fetches_key ON fetches(pool, request_key);",

        /* Step 3: tasks, the broker's bookkeeping of each task it holds
         * (never the payload: it carries secrets).
         *  - tasks_forge_task: a forge hands a task out once, so a second
         *    row for it, in any state, is a bug upstream of the store;
         *  - tasks_live_key: what store_prune asks of each fetch;
         *  - tasks_state_forward: states only move forward; done, the last
 *    rank, is final.
         * AUTOINCREMENT for the reason given for instances. */
        "CREATE TABLE tasks ("
        "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
        "  pool TEXT NOT NULL"
        "    CHECK (length(CAST(pool AS BLOB)) BETWEEN 1 AND 127),"
        "  forge TEXT NOT NULL"
        "    CHECK (length(CAST(forge AS BLOB)) BETWEEN 1 AND 127),"
        "  task_id INTEGER NOT NULL CHECK (task_id > 0),"
        "  job_id INTEGER NOT NULL DEFAULT 0 CHECK (job_id >= 0),"
        "  request_key TEXT NOT NULL CHECK (" KEY_OK("request_key") "),"
        "  state TEXT NOT NULL CHECK (state = 'held' OR state = 'running' OR"
        "    state = 'finishing' OR state = 'done'),"
        "  instance TEXT NOT NULL DEFAULT ''"
        "    CHECK (length(CAST(instance AS BLOB)) < 128),"
        "  attempts INTEGER NOT NULL DEFAULT 0"
        "    CHECK (attempts BETWEEN 0 AND 2147483647),"
        "  prelude_rows INTEGER NOT NULL DEFAULT 0 CHECK (prelude_rows >= 0),"
        "  log_acked INTEGER NOT NULL DEFAULT 0 CHECK (log_acked >= 0),"
        "  result INTEGER NOT NULL DEFAULT 0"
        "    CHECK (result BETWEEN 0 AND 2147483647),"
        "  created_ms INTEGER NOT NULL,"
        "  state_ms INTEGER NOT NULL,"
        "  reason TEXT NOT NULL DEFAULT ''"
        "    CHECK (length(CAST(reason AS BLOB)) < 160)"
        ");"
        "CREATE UNIQUE INDEX tasks_forge_task ON tasks(forge, task_id);"
        "CREATE INDEX tasks_live ON tasks(created_ms, id) WHERE " TASK_LIVE ";"
        "CREATE INDEX tasks_live_key ON tasks(pool, request_key)"
        "  WHERE " TASK_LIVE ";"
        "CREATE INDEX tasks_done_age ON tasks(state_ms) WHERE state = 'done';"
        "CREATE TRIGGER tasks_state_forward"
        "  BEFORE UPDATE OF state ON tasks"
        "  WHEN NEW.state != OLD.state AND"
        "    (CASE NEW.state WHEN 'held' THEN 0 WHEN 'running' THEN 1"
        "      WHEN 'finishing' THEN 2 ELSE 3 END) <"
        "    (CASE OLD.state WHEN 'held' THEN 0 WHEN 'running' THEN 1"
        "      WHEN 'finishing' THEN 2 ELSE 3 END) "
        "BEGIN SELECT RAISE(ABORT, 'task state may only move forward'); END;",
};
#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

#define INSTANCE_COLS                                                          \
        "id, name, pool, forge, scope, provider, state, warm, job_id, handle, " \
        "runner_id, runner_uuid, provider_ref, created_ms, state_ms, "         \
        "job_seen_ms, claimed_ms, exit_code, runner_deleted, reason"

#define TASK_COLS                                                              \
        "id, pool, forge, task_id, job_id, request_key, state, instance, "      \
        "attempts, prelude_rows, log_acked, result, created_ms, state_ms, reason"

enum stmt_id {
        ST_META_GET,
        ST_META_SET,
        ST_INSERT,
        ST_UPDATE,
        ST_EXISTS,
        ST_GET,
        ST_GET_BY_NAME,
        ST_LIST_LIVE,
        ST_LIST_UNDELETED,
        ST_COUNT,
        ST_PRUNE,
        ST_FETCH_INSERT,
        ST_FETCH_DELETE,
        ST_FETCH_LIST,
        ST_TASK_INSERT,
        ST_TASK_UPDATE,
        ST_TASK_EXISTS,
        ST_TASK_GET,
        ST_TASK_LIST_LIVE,
        ST_PRUNE_TASKS,
        ST_PRUNE_FETCHES,
        ST_BEGIN,
        ST_COMMIT,
        ST_ROLLBACK,
        ST__MAX,
};

/* Parameters ?1..?19 are the fields of struct store_instance in the order of
 * bind_instance(); ?20 is the id on update. */
static const char *const stmt_sql[ST__MAX] = {
        [ST_META_GET] = "SELECT value FROM meta WHERE key = ?1",
        [ST_META_SET] = "INSERT INTO meta(key, value) VALUES (?1, ?2)"
                        " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [ST_INSERT] = "INSERT INTO instances(name, pool, forge, scope, provider,"
                      " state, warm, job_id, handle, runner_id, runner_uuid,"
                      " provider_ref, created_ms, state_ms, job_seen_ms,"
                      " claimed_ms, exit_code, runner_deleted, reason)"
                      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11,"
                      " ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
        /* Identity fields (name, pool, forge, scope, provider, warm,
         * created_ms) are fixed at insert: they are part of the WHERE, so a
         * changed identity is refused rather than silently ignored. */
        [ST_UPDATE] = "UPDATE instances SET state = ?6, job_id = ?8,"
                      " handle = ?9, runner_id = ?10, runner_uuid = ?11,"
                      " provider_ref = ?12, state_ms = ?14, job_seen_ms = ?15,"
                      " claimed_ms = ?16, exit_code = ?17, runner_deleted = ?18,"
                      " reason = ?19"
                      " WHERE id = ?20 AND name = ?1 AND pool = ?2 AND forge = ?3"
                      " AND scope = ?4 AND provider = ?5 AND warm = ?7"
                      " AND created_ms = ?13",
        [ST_EXISTS] = "SELECT 1 FROM instances WHERE id = ?1",
        [ST_GET] = "SELECT " INSTANCE_COLS " FROM instances WHERE id = ?1",
        [ST_GET_BY_NAME] = "SELECT " INSTANCE_COLS " FROM instances WHERE name = ?1",
        [ST_LIST_LIVE] = "SELECT " INSTANCE_COLS " FROM instances"
                         " WHERE " IS_LIVE " ORDER BY id",
        [ST_LIST_UNDELETED] = "SELECT " INSTANCE_COLS " FROM instances"
                              " WHERE runner_deleted = 0 AND state IN "
                              TERMINAL_STATES " ORDER BY id",
        [ST_COUNT] = "SELECT pool, state, n FROM instance_counts"
                     " WHERE n > 0 ORDER BY pool, state",
        /* Rows whose registration is not confirmed deleted are kept: they
         * are the only record that a forge runner may still exist. */
        [ST_PRUNE] = "DELETE FROM instances WHERE runner_deleted = 1"
                     " AND state IN " TERMINAL_STATES " AND state_ms < ?1",
        [ST_FETCH_INSERT] = "INSERT INTO fetches(pool, request_key, created_ms)"
                            " VALUES (?1, ?2, ?3)",
        [ST_FETCH_DELETE] = "DELETE FROM fetches WHERE pool = ?1 AND request_key = ?2",
        [ST_FETCH_LIST] = "SELECT pool, request_key, created_ms FROM fetches"
                          " ORDER BY created_ms, id",
        /* Task parameters ?1..?14 are the fields of struct store_task in
         * the order of bind_task(); ?15 is the id on update. Identity
         * fields are in the WHERE, as for instances. */
        [ST_TASK_INSERT] = "INSERT INTO tasks(pool, forge, task_id, job_id,"
                           " request_key, state, instance, attempts, prelude_rows,"
                           " log_acked, result, created_ms, state_ms, reason)"
                           " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10,"
                           " ?11, ?12, ?13, ?14)",
        [ST_TASK_UPDATE] = "UPDATE tasks SET job_id = ?4, state = ?6,"
                           " instance = ?7, attempts = ?8, prelude_rows = ?9,"
                           " log_acked = ?10, result = ?11, state_ms = ?13,"
                           " reason = ?14"
                           " WHERE id = ?15 AND pool = ?1 AND forge = ?2"
                           " AND task_id = ?3 AND request_key = ?5"
                           " AND created_ms = ?12",
        [ST_TASK_EXISTS] = "SELECT 1 FROM tasks WHERE id = ?1",
        [ST_TASK_GET] = "SELECT " TASK_COLS " FROM tasks"
                        " WHERE forge = ?1 AND task_id = ?2",
        [ST_TASK_LIST_LIVE] = "SELECT " TASK_COLS " FROM tasks"
                              " WHERE " TASK_LIVE " ORDER BY created_ms, id",
        [ST_PRUNE_TASKS] = "DELETE FROM tasks WHERE state = 'done' AND state_ms < ?1",
        /* A live task's fetch is kept whatever its age: repeating it is
         * how a restarted daemon gets the task's payload back. */
        [ST_PRUNE_FETCHES] = "DELETE FROM fetches WHERE created_ms < ?1"
                             " AND NOT EXISTS (SELECT 1 FROM tasks"
                             "  WHERE tasks.pool = fetches.pool"
                             "  AND tasks.request_key = fetches.request_key"
                             "  AND tasks." TASK_LIVE ")",
        [ST_BEGIN] = "BEGIN IMMEDIATE",
        [ST_COMMIT] = "COMMIT",
        [ST_ROLLBACK] = "ROLLBACK",
};

struct store {
        sqlite3 *db;
        sqlite3_stmt *stmt[ST__MAX];    /* prepared on first use */
        bool ready;                     /* opened and migrated */
        bool in_tx;                     /* inside store_begin() */
        int tx_err;                     /* < 0: SQLite rolled the open
                                           transaction back on this error */
        char *path;
        dev_t dev;                      /* of the file opened, to notice */
        ino_t ino;                      /* it being removed or replaced */
};

const char *store_state_name(enum store_state s)
{
        if ((unsigned)s >= STORE_STATE_MAX)
                return "unknown";
        return state_names[s];
}

int store_state_parse(const char *s, enum store_state *ret)
{
        if (!s)
                return -EINVAL;
        for (int i = 0; i < STORE_STATE_MAX; i++) {
                if (strcmp(s, state_names[i]) == 0) {
                        *ret = (enum store_state)i;
                        return 0;
                }
        }
        return -EINVAL;
}

const char *store_task_state_name(enum store_task_state st)
{
        if ((int)st < STORE_TASK_HELD || (int)st >= TASK_STATE_END)
                return "unknown";
        return task_state_names[st];
}

int store_task_state_parse(const char *s, enum store_task_state *ret)
{
        if (!s)
                return -EINVAL;
        for (int i = STORE_TASK_HELD; i < TASK_STATE_END; i++) {
                if (strcmp(s, task_state_names[i]) == 0) {
                        *ret = (enum store_task_state)i;
                        return 0;
                }
        }
        return -EINVAL;
}

static int errno_from_sqlite(int rc)
{
        switch (rc) {
        case SQLITE_CONSTRAINT_UNIQUE:
        case SQLITE_CONSTRAINT_PRIMARYKEY:
                return -EEXIST;
        case SQLITE_CONSTRAINT_CHECK:
        case SQLITE_CONSTRAINT_TRIGGER:
        case SQLITE_CONSTRAINT_NOTNULL:
        case SQLITE_MISMATCH:
        case SQLITE_RANGE:
                return -EINVAL;
        case SQLITE_IOERR_NOMEM:
                return -ENOMEM;
        default:
                break;
        }
        switch (rc & 0xff) {
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                return -EBUSY;
        case SQLITE_NOTFOUND:
                return -ENOENT;
        case SQLITE_FULL:
                return -ENOSPC;
        case SQLITE_NOMEM:
                return -ENOMEM;
        case SQLITE_READONLY:
                return -EROFS;
        case SQLITE_PERM:
        case SQLITE_AUTH:
                return -EACCES;
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
                return -EUCLEAN;
        default:
                return -EIO;
        }
}

/* Maps rc and notices when SQLite rolled back the whole explicit
 * transaction (it does so on SQLITE_FULL, IOERR, NOMEM, BUSY): later writes
 * would otherwise autocommit one by one and break the batch's atomicity. */
static int fail(struct store *s, int rc)
{
        int r = errno_from_sqlite(rc);

        /* An I/O error says more with its cause (EACCES, EROFS, ENOSPC…). */
        if ((rc & 0xff) == SQLITE_IOERR && r == -EIO && sqlite3_system_errno(s->db) > 0)
                r = -sqlite3_system_errno(s->db);

        if (s->in_tx && s->tx_err == 0 && sqlite3_get_autocommit(s->db))
                s->tx_err = r;
        return r;
}

static int stmt_get(struct store *s, enum stmt_id id, sqlite3_stmt **ret)
{
        if (!s->stmt[id]) {
                int rc = sqlite3_prepare_v3(s->db, stmt_sql[id], -1,
                                            SQLITE_PREPARE_PERSISTENT,
                                            &s->stmt[id], NULL);
                if (rc != SQLITE_OK) {
                        s->stmt[id] = NULL;
                        return fail(s, rc);
                }
        }
        *ret = s->stmt[id];
        return 0;
}

static void stmt_done(sqlite3_stmt *st)
{
        /* reset() repeats the last step's error, which the caller has
         * already mapped. */
        (void)sqlite3_reset(st);
        (void)sqlite3_clear_bindings(st);
}

static int bind_str(struct store *s, sqlite3_stmt *st, int idx, const char *v, size_t cap)
{
        size_t len = strnlen(v, cap);

        if (len >= cap)
                return -ENAMETOOLONG;
        int rc = sqlite3_bind_text(st, idx, v, (int)len, SQLITE_STATIC);
        return rc == SQLITE_OK ? 0 : fail(s, rc);
}

static int bind_i64(struct store *s, sqlite3_stmt *st, int idx, int64_t v)
{
        int rc = sqlite3_bind_int64(st, idx, v);
        return rc == SQLITE_OK ? 0 : fail(s, rc);
}

/* Rejects what the schema would reject, with a precise error, before any
 * SQL runs: unterminated (too long) strings, unknown states, empty names. */
static int check_instance(const struct store_instance *inst)
{
        if ((unsigned)inst->state >= STORE_STATE_MAX)
                return -EINVAL;
        if (strnlen(inst->name, sizeof(inst->name)) >= sizeof(inst->name) ||
            strnlen(inst->pool, sizeof(inst->pool)) >= sizeof(inst->pool) ||
            strnlen(inst->forge, sizeof(inst->forge)) >= sizeof(inst->forge) ||
            strnlen(inst->scope, sizeof(inst->scope)) >= sizeof(inst->scope) ||
            strnlen(inst->provider, sizeof(inst->provider)) >= sizeof(inst->provider) ||
            strnlen(inst->handle, sizeof(inst->handle)) >= sizeof(inst->handle) ||
            strnlen(inst->runner_uuid, sizeof(inst->runner_uuid)) >= sizeof(inst->runner_uuid) ||
            strnlen(inst->provider_ref, sizeof(inst->provider_ref)) >= sizeof(inst->provider_ref) ||
            strnlen(inst->reason, sizeof(inst->reason)) >= sizeof(inst->reason))
                return -ENAMETOOLONG;
        if (inst->name[0] == '\0')
                return -EINVAL;
        return 0;
}

static int bind_instance(struct store *s, sqlite3_stmt *st, const struct store_instance *inst)
{
        int r;

#define BS(i, f) do { r = bind_str(s, st, i, inst->f, sizeof(inst->f)); if (r < 0) return r; } while (0)
#define BI(i, v) do { r = bind_i64(s, st, i, v); if (r < 0) return r; } while (0)
        BS(1, name);
        BS(2, pool);
        BS(3, forge);
        BS(4, scope);
        BS(5, provider);
        r = sqlite3_bind_text(st, 6, state_names[inst->state], -1, SQLITE_STATIC);
        if (r != SQLITE_OK)
                return fail(s, r);
        BI(7, inst->warm ? 1 : 0);
        BI(8, inst->job_id);
        BS(9, handle);
        BI(10, inst->runner_id);
        BS(11, runner_uuid);
        BS(12, provider_ref);
        BI(13, inst->created_ms);
        BI(14, inst->state_ms);
        BI(15, inst->job_seen_ms);
        BI(16, inst->claimed_ms);
        BI(17, inst->exit_code);
        BI(18, inst->runner_deleted ? 1 : 0);
        BS(19, reason);
#undef BS
#undef BI
        return 0;
}

/* Copies a TEXT column into a fixed-size field. The schema bounds every
 * length, so a value that does not fit means the file was altered:
 * -EUCLEAN, like any damage. */
static int col_str(struct store *s, sqlite3_stmt *st, int col, char *dst, size_t cap)
{
        const unsigned char *t = sqlite3_column_text(st, col);
        int len = sqlite3_column_bytes(st, col);

        if (!t) {
                if (sqlite3_errcode(s->db) == SQLITE_NOMEM)
                        return -ENOMEM;
                t = (const unsigned char *)"";
                len = 0;
        }
        if (len < 0 || (size_t)len >= cap)
                return -EUCLEAN;
        memcpy(dst, t, (size_t)len);
        dst[len] = '\0';
        return 0;
}

/* Reads one row selected with INSTANCE_COLS. */
static int read_instance(struct store *s, sqlite3_stmt *st, struct store_instance *ret)
{
        struct store_instance in = { 0 };
        char state[16];
        int r;

#define CS(c, f) do { r = col_str(s, st, c, in.f, sizeof(in.f)); if (r < 0) return r; } while (0)
        in.id = sqlite3_column_int64(st, 0);
        CS(1, name);
        CS(2, pool);
        CS(3, forge);
        CS(4, scope);
        CS(5, provider);
        r = col_str(s, st, 6, state, sizeof(state));
        if (r < 0)
                return r;
        if (store_state_parse(state, &in.state) < 0)
                return -EUCLEAN;
        in.warm = sqlite3_column_int64(st, 7) != 0;
        in.job_id = sqlite3_column_int64(st, 8);
        CS(9, handle);
        in.runner_id = sqlite3_column_int64(st, 10);
        CS(11, runner_uuid);
        CS(12, provider_ref);
        in.created_ms = sqlite3_column_int64(st, 13);
        in.state_ms = sqlite3_column_int64(st, 14);
        in.job_seen_ms = sqlite3_column_int64(st, 15);
        in.claimed_ms = sqlite3_column_int64(st, 16);
        int64_t ec = sqlite3_column_int64(st, 17);
        if (ec < INT_MIN || ec > INT_MAX)
                return -EUCLEAN;
        in.exit_code = (int)ec;
        in.runner_deleted = sqlite3_column_int64(st, 18) != 0;
        CS(19, reason);
#undef CS
        *ret = in;
        return 0;
}

static int row_exists(struct store *s, enum stmt_id id, int64_t rowid, bool *ret);

/* Runs a statement that returns no rows (or whose rows are ignored). */
static int exec_stmt(struct store *s, enum stmt_id id)
{
        sqlite3_stmt *st = NULL;
        int r = stmt_get(s, id, &st);
        if (r < 0)
                return r;
        int rc = sqlite3_step(st);
        r = (rc == SQLITE_DONE || rc == SQLITE_ROW) ? 0 : fail(s, rc);
        stmt_done(st);
        return r;
}

/* Runs SQL text that is not worth caching (open, migrations, close). */
static int exec_sql(struct store *s, const char *sql)
{
        int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
        return rc == SQLITE_OK ? 0 : fail(s, rc);
}

/* Runs a one-row, one-column query and returns its integer value. */
static int query_int(struct store *s, const char *sql, int64_t *ret)
{
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
        int r;

        if (rc != SQLITE_OK) {
                r = fail(s, rc);
                goto out;
        }
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW) {
                r = rc == SQLITE_DONE ? -EIO : fail(s, rc);
                goto out;
        }
        *ret = sqlite3_column_int64(st, 0);
        r = 0;
out:
        sqlite3_finalize(st);
        return r;
}

/* Runs a one-row, one-column query and compares its text to want. */
static int query_text_is(struct store *s, const char *sql, const char *want, bool *ret)
{
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
        int r;

        if (rc != SQLITE_OK) {
                r = fail(s, rc);
                goto out;
        }
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW) {
                r = rc == SQLITE_DONE ? -EIO : fail(s, rc);
                goto out;
        }
        const unsigned char *t = sqlite3_column_text(st, 0);
        if (!t && sqlite3_errcode(s->db) == SQLITE_NOMEM) {
                r = -ENOMEM;
                goto out;
        }
        *ret = t && sqlite3_stricmp((const char *)t, want) == 0;
        r = 0;
out:
        sqlite3_finalize(st);
        return r;
}

static int parse_version(const char *v, int *ret)
{
        char *end;
        errno = 0;
        long long n = strtoll(v, &end, 10);
        if (errno != 0 || end == v || *end != '\0' || n < 0 || n > INT_MAX)
                return -EIO;
        *ret = (int)n;
        return 0;
}

static int meta_put(struct store *s, const char *key, const char *value);

/* Refuses another program's database (its application id, or tables in a
 * file without ours) before anything is written to it. */
static int check_ours(struct store *s)
{
        int64_t app_id = 0, tables = 0;
        int r;

        r = query_int(s, "PRAGMA application_id", &app_id);
        if (r < 0)
                return r;
        r = query_int(s, "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                         " AND name NOT LIKE 'sqlite_%'", &tables);
        if (r < 0)
                return r;
        if (app_id != 0 && app_id != APPLICATION_ID)
                return -EINVAL;
        if (app_id == 0 && tables > 0)
                return -EINVAL;
        return 0;
}

static int migrate(struct store *s)
{
        int64_t has_meta = 0;
        int version = 0, r;

        r = exec_sql(s, "BEGIN IMMEDIATE");
        if (r < 0)
                return r;

        /* Again under the write lock: another process may have created the
         * schema since the first look. */
        r = check_ours(s);
        if (r < 0)
                goto err;
        r = query_int(s, "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                         " AND name = 'meta'", &has_meta);
        if (r < 0)
                goto err;
        if (has_meta) {
                char buf[32];
                r = store_meta_get(s, "schema_version", buf, sizeof(buf));
                if (r < 0) {
                        if (r == -ENOENT || r == -ERANGE)
                                r = -EIO;
                        goto err;
                }
                r = parse_version(buf, &version);
                if (r < 0)
                        goto err;
        }
        if (version > SCHEMA_VERSION) {
                r = -ENOTSUP;   /* written by a newer forgescale */
                goto err;
        }
        if (version == SCHEMA_VERSION) {
                r = exec_sql(s, "COMMIT");
                if (r < 0)
                        goto err;
                return 0;
        }

        for (int i = version; i < SCHEMA_VERSION; i++) {
                r = exec_sql(s, migrations[i]);
                if (r < 0)
                        goto err;
        }
        char sql[64];
        snprintf(sql, sizeof(sql), "PRAGMA application_id = %d", APPLICATION_ID);
        r = exec_sql(s, sql);
        if (r < 0)
                goto err;
        char v[16];
        snprintf(v, sizeof(v), "%d", SCHEMA_VERSION);
        r = meta_put(s, "schema_version", v);
        if (r < 0)
                goto err;
        r = exec_sql(s, "COMMIT");
        if (r < 0)
                goto err;
        return 0;
err:
        (void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return r;
}

/* Creates the file 0600 when missing, so neither the database nor the WAL
 * and SHM files (SQLite gives them the database's mode) are ever readable
 * by others; tightens a pre-existing file. Works by path, never by an fd
 * that would be closed later: closing any fd of a file drops every POSIX
 * lock this process holds on it, including SQLite's. */
static int prepare_file(const char *path, const char *suffix, bool create)
{
        char p[PATH_MAX];
        struct stat st;
        int n = snprintf(p, sizeof(p), "%s%s", path, suffix);

        if (n < 0 || (size_t)n >= sizeof(p))
                return -ENAMETOOLONG;
        if (lstat(p, &st) < 0) {
                if (errno != ENOENT)
                        return -errno;
                if (!create)
                        return 0;
                int fd = open(p, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
                if (fd < 0)
                        return errno == EEXIST ? prepare_file(path, suffix, false) : -errno;
                /* umask may have narrowed 0600 further; SQLite needs rw. */
                int r = fchmod(fd, 0600) < 0 ? -errno : 0;
                close(fd);
                return r;
        }
        if (S_ISLNK(st.st_mode) && create) {
                if (stat(p, &st) < 0)
                        return -errno;
        }
        if (!S_ISREG(st.st_mode))
                return create ? -EINVAL : 0;
        if ((st.st_mode & 0777) != 0600 && chmod(p, 0600) < 0)
                return -errno;
        return 0;
}

int store_open(const char *path, struct store **ret)
{
        struct store *s = NULL;
        int r, rc;

        if (!path || !*path || !ret)
                return -EINVAL;
        r = prepare_file(path, "", true);
        if (r < 0)
                return r;
        r = prepare_file(path, "-wal", false);
        if (r < 0)
                return r;
        r = prepare_file(path, "-shm", false);
        if (r < 0)
                return r;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;

        int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
#ifdef SQLITE_OPEN_EXRESCODE
        flags |= SQLITE_OPEN_EXRESCODE;
#endif
        rc = sqlite3_open_v2(path, &s->db, flags, NULL);
        if (rc != SQLITE_OK) {
                int e = s->db ? sqlite3_system_errno(s->db) : 0;
                r = (rc & 0xff) == SQLITE_CANTOPEN && e > 0 ? -e : errno_from_sqlite(rc);
                goto err;
        }
        sqlite3_extended_result_codes(s->db, 1);
        rc = sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
        if (rc != SQLITE_OK) {
                r = errno_from_sqlite(rc);
                goto err;
        }
        /* A damaged or hostile file must not be able to make SQLite write
         * outside the database or run functions from the schema. */
        (void)sqlite3_db_config(s->db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
#ifdef SQLITE_DBCONFIG_TRUSTED_SCHEMA
        (void)sqlite3_db_config(s->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, (int *)NULL);
#endif

        r = check_ours(s);
        if (r < 0)
                goto err;
        bool wal = false;
        r = query_text_is(s, "PRAGMA journal_mode = WAL", "wal", &wal);
        if (r < 0)
                goto err;
        if (!wal) {
                r = -EIO;       /* e.g. a file system without shared memory */
                goto err;
        }
        /* NORMAL in WAL mode: a commit is durable against a process crash
         * (kill -9); only an OS crash or power loss can lose the last
         * commits before a checkpoint, never corrupt the file. */
        /* cache_size: live rows and their indexes fit in a few hundred
         * KiB; history is appended and rarely read back, so the default
         * 2 MiB page cache would mostly hold pages nobody reads again. */
        r = exec_sql(s, "PRAGMA synchronous = NORMAL;"
                        "PRAGMA foreign_keys = ON;"
                        "PRAGMA cache_size = -1024;"
                        "PRAGMA journal_size_limit = 67108864;");
        if (r < 0)
                goto err;
        /* No integrity check here: it reads the whole file, and history
         * makes that seconds at our write rate. A damaged page is reported
         * as -EIO by the call that reads it. */
        r = migrate(s);
        if (r < 0)
                goto err;
        struct stat st;
        if (stat(path, &st) < 0) {
                r = -errno;
                goto err;
        }
        if (!(s->path = strdup(path))) {
                r = -ENOMEM;
                goto err;
        }
        s->dev = st.st_dev;
        s->ino = st.st_ino;
        s->ready = true;
        *ret = s;
        return 0;
err:
        store_close(s);
        return r;
}

int store_check_file(struct store *s)
{
        struct stat st;

        if (stat(s->path, &st) < 0)
                return -errno;
        if (st.st_dev != s->dev || st.st_ino != s->ino)
                return -ESTALE;
        return 0;
}

void store_close(struct store *s)
{
        if (!s)
                return;
        free(s->path);
        for (int i = 0; i < ST__MAX; i++)
                sqlite3_finalize(s->stmt[i]);
        if (s->db) {
                /* An open transaction is rolled back by close. Only a
                 * database we opened and own gets its statistics refreshed. */
                if (s->ready && !s->in_tx)
                        (void)sqlite3_exec(s->db, "PRAGMA optimize", NULL, NULL, NULL);
                (void)sqlite3_close_v2(s->db);
        }
        free(s);
}

int store_meta_get(struct store *s, const char *key, char *buf, size_t n)
{
        sqlite3_stmt *st = NULL;
        int r;

        if (!s || !key || !*key || !buf || n == 0)
                return -EINVAL;
        if (strnlen(key, META_KEY_MAX) >= META_KEY_MAX)
                return -ENAMETOOLONG;
        r = stmt_get(s, ST_META_GET, &st);
        if (r < 0)
                return r;
        r = bind_str(s, st, 1, key, META_KEY_MAX);
        if (r < 0)
                goto out;
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE) {
                r = -ENOENT;
                goto out;
        }
        if (rc != SQLITE_ROW) {
                r = fail(s, rc);
                goto out;
        }
        const unsigned char *t = sqlite3_column_text(st, 0);
        int len = sqlite3_column_bytes(st, 0);
        if (!t) {
                r = sqlite3_errcode(s->db) == SQLITE_NOMEM ? -ENOMEM : -EIO;
                goto out;
        }
        if (len < 0 || (size_t)len >= n) {
                r = -ERANGE;
                goto out;
        }
        memcpy(buf, t, (size_t)len);
        buf[len] = '\0';
        r = 0;
out:
        stmt_done(st);
        return r;
}

static int meta_put(struct store *s, const char *key, const char *value)
{
        sqlite3_stmt *st = NULL;
        int r = stmt_get(s, ST_META_SET, &st);

        if (r < 0)
                return r;
        r = bind_str(s, st, 1, key, META_KEY_MAX);
        if (r < 0)
                goto out;
        r = bind_str(s, st, 2, value, META_VALUE_MAX);
        if (r < 0)
                goto out;
        int rc = sqlite3_step(st);
        r = rc == SQLITE_DONE ? 0 : fail(s, rc);
out:
        stmt_done(st);
        return r;
}

int store_meta_set(struct store *s, const char *key, const char *value)
{
        if (!s || !key || !*key || !value)
                return -EINVAL;
        if (strnlen(key, META_KEY_MAX) >= META_KEY_MAX ||
            strnlen(value, META_VALUE_MAX) >= META_VALUE_MAX)
                return -ENAMETOOLONG;
        /* Owned by the migrations: rewriting it would make the next open
         * skip or repeat schema steps. */
        if (strcmp(key, "schema_version") == 0)
                return -EPERM;
        if (s->tx_err)
                return s->tx_err;
        return meta_put(s, key, value);
}

int store_instance_insert(struct store *s, struct store_instance *inst)
{
        sqlite3_stmt *st = NULL;
        int r;

        if (!s || !inst)
                return -EINVAL;
        r = check_instance(inst);
        if (r < 0)
                return r;
        if (s->tx_err)
                return s->tx_err;
        r = stmt_get(s, ST_INSERT, &st);
        if (r < 0)
                return r;
        r = bind_instance(s, st, inst);
        if (r < 0)
                goto out;
        int rc = sqlite3_step(st);
        if (rc != SQLITE_DONE) {
                r = fail(s, rc);
                goto out;
        }
        inst->id = sqlite3_last_insert_rowid(s->db);
        r = 0;
out:
        stmt_done(st);
        return r;
}

int store_instance_update(struct store *s, const struct store_instance *inst)
{
        sqlite3_stmt *st = NULL;
        int r;

        if (!s || !inst)
                return -EINVAL;
        r = check_instance(inst);
        if (r < 0)
                return r;
        if (s->tx_err)
                return s->tx_err;
        if (inst->id <= 0)
                return -ENOENT;
        r = stmt_get(s, ST_UPDATE, &st);
        if (r < 0)
                return r;
        r = bind_instance(s, st, inst);
        if (r < 0)
                goto out;
        r = bind_i64(s, st, 20, inst->id);
        if (r < 0)
                goto out;
        int rc = sqlite3_step(st);
        if (rc != SQLITE_DONE) {
                r = fail(s, rc);
                goto out;
        }
        r = 0;
        if (sqlite3_changes(s->db) == 0) {
                bool exists = false;
                stmt_done(st);
                r = row_exists(s, ST_EXISTS, inst->id, &exists);
                if (r < 0)
                        return r;
                /* The row is there, so an identity field differs. */
                return exists ? -EINVAL : -ENOENT;
        }
out:
        stmt_done(st);
        return r;
}

static int get_one(struct store *s, sqlite3_stmt *st, struct store_instance *ret)
{
        int rc = sqlite3_step(st);

        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return fail(s, rc);
        return read_instance(s, st, ret);
}

int store_instance_get(struct store *s, int64_t id, struct store_instance *ret)
{
        sqlite3_stmt *st = NULL;
        int r;

        if (!s || !ret)
                return -EINVAL;
        r = stmt_get(s, ST_GET, &st);
        if (r < 0)
                return r;
        r = bind_i64(s, st, 1, id);
        if (r >= 0)
                r = get_one(s, st, ret);
        stmt_done(st);
        return r;
}

int store_instance_get_by_name(struct store *s, const char *name, struct store_instance *ret)
{
        sqlite3_stmt *st = NULL;
        int r;

        if (!s || !name || !*name || !ret)
                return -EINVAL;
        r = stmt_get(s, ST_GET_BY_NAME, &st);
        if (r < 0)
                return r;
        r = bind_str(s, st, 1, name, STORE_NAME_MAX);
        if (r >= 0)
                r = get_one(s, st, ret);
        stmt_done(st);
        return r;
}

/* Reads one row of a listing into the element at dst. */
typedef int (*row_reader)(struct store *s, sqlite3_stmt *st, void *dst);

/* Runs a listing: every row read into a malloc'd array of elements of
 * size bytes. */
static int list_rows(struct store *s, enum stmt_id id, size_t size, row_reader read,
                     void **ret, size_t *ret_n)
{
        char *v = NULL;
        size_t n = 0, cap = 0;
        sqlite3_stmt *st = NULL;
        int r;

        if (!s || !ret || !ret_n)
                return -EINVAL;
        r = stmt_get(s, id, &st);
        if (r < 0)
                return r;
        for (;;) {
                int rc = sqlite3_step(st);
                if (rc == SQLITE_DONE)
                        break;
                if (rc != SQLITE_ROW) {
                        r = fail(s, rc);
                        goto err;
                }
                if (n == cap) {
                        size_t ncap = cap ? cap * 2 : 16;
                        if (ncap > LIST_MAX) {
                                r = -E2BIG;
                                goto err;
                        }
                        char *nv = realloc(v, ncap * size);
                        if (!nv) {
                                r = -ENOMEM;
                                goto err;
                        }
                        v = nv;
                        cap = ncap;
                }
                r = read(s, st, v + n * size);
                if (r < 0)
                        goto err;
                n++;
        }
        stmt_done(st);
        *ret = v;
        *ret_n = n;
        return 0;
err:
        stmt_done(st);
        free(v);
        return r;
}

static int read_instance_row(struct store *s, sqlite3_stmt *st, void *dst)
{
        return read_instance(s, st, dst);
}

static int list_query(struct store *s, enum stmt_id id, struct store_instance **ret, size_t *ret_n)
{
        void *v = NULL;
        int r;

        if (!ret)
                return -EINVAL;
        r = list_rows(s, id, sizeof(struct store_instance), read_instance_row, &v, ret_n);

        if (r >= 0)
                *ret = v;
        return r;
}

int store_instance_list_live(struct store *s, struct store_instance **ret, size_t *n)
{
        return list_query(s, ST_LIST_LIVE, ret, n);
}

int store_instance_list_undeleted(struct store *s, struct store_instance **ret, size_t *n)
{
        return list_query(s, ST_LIST_UNDELETED, ret, n);
}

struct count_row {
        char pool[STORE_NAME_MAX];
        enum store_state state;
        int64_t n;
};

int store_instance_count(struct store *s,
                         void (*cb)(void *ud, const char *pool, enum store_state st, int64_t n),
                         void *ud)
{
        struct count_row *v = NULL;
        size_t n = 0, cap = 0;
        sqlite3_stmt *st = NULL;
        int r;

        if (!s || !cb)
                return -EINVAL;
        r = stmt_get(s, ST_COUNT, &st);
        if (r < 0)
                return r;
        /* Collect first and call back after the statement is finished: a
         * failing call never invokes cb, and cb may use the store. */
        for (;;) {
                int rc = sqlite3_step(st);
                if (rc == SQLITE_DONE)
                        break;
                if (rc != SQLITE_ROW) {
                        r = fail(s, rc);
                        goto out;
                }
                if (n == cap) {
                        size_t ncap = cap ? cap * 2 : 16;
                        if (ncap > LIST_MAX) {
                                r = -E2BIG;
                                goto out;
                        }
                        struct count_row *nv = realloc(v, ncap * sizeof(*v));
                        if (!nv) {
                                r = -ENOMEM;
                                goto out;
                        }
                        v = nv;
                        cap = ncap;
                }
                char state[16];
                r = col_str(s, st, 0, v[n].pool, sizeof(v[n].pool));
                if (r < 0)
                        goto out;
                r = col_str(s, st, 1, state, sizeof(state));
                if (r < 0)
                        goto out;
                if (store_state_parse(state, &v[n].state) < 0) {
                        r = -EIO;
                        goto out;
                }
                v[n].n = sqlite3_column_int64(st, 2);
                n++;
        }
        stmt_done(st);
        st = NULL;
        for (size_t i = 0; i < n; i++)
                cb(ud, v[i].pool, v[i].state, v[i].n);
        r = 0;
out:
        if (st)
                stmt_done(st);
        free(v);
        return r;
}

/* Runs a DELETE whose ?1 is before_ms; returns the rows deleted. */
static int prune_one(struct store *s, enum stmt_id id, int64_t before_ms)
{
        sqlite3_stmt *st = NULL;
        int r = stmt_get(s, id, &st);

        if (r < 0)
                return r;
        r = bind_i64(s, st, 1, before_ms);
        if (r < 0)
                goto out;
        int rc = sqlite3_step(st);
        if (rc != SQLITE_DONE) {
                r = fail(s, rc);
                goto out;
        }
        r = sqlite3_changes(s->db);
out:
        stmt_done(st);
        return r;
}

int store_prune(struct store *s, int64_t before_ms)
{
        /* Tasks before fetches: a fetch is kept only for live tasks, so
         * the order changes nothing today, but it is the safe one should a
         * done task ever count. */
        static const enum stmt_id steps[] = { ST_PRUNE, ST_PRUNE_TASKS, ST_PRUNE_FETCHES };
        int total = 0;

        if (!s)
                return -EINVAL;
        if (s->tx_err)
                return s->tx_err;
        for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
                int r = prune_one(s, steps[i], before_ms);
                if (r < 0)
                        return r;
                total = r > INT_MAX - total ? INT_MAX : total + r;
        }
        return total;
}

/* ---- broker: fetches and tasks ------------------------------------------ */

static int check_fetch(const struct store_fetch *f)
{
        if (strnlen(f->pool, sizeof(f->pool)) >= sizeof(f->pool) ||
            strnlen(f->request_key, sizeof(f->request_key)) >= sizeof(f->request_key))
                return -ENAMETOOLONG;
        return 0;
}

/* Runs a write statement already bound; maps its result. */
static int step_write(struct store *s, sqlite3_stmt *st)
{
        int rc = sqlite3_step(st);
        return rc == SQLITE_DONE ? 0 : fail(s, rc);
}

int store_fetch_insert(struct store *s, const struct store_fetch *f)
{
        sqlite3_stmt *st = NULL;
        int r;

        if (!s || !f)
                return -EINVAL;
        r = check_fetch(f);
        if (r < 0)
                return r;
        if (s->tx_err)
                return s->tx_err;
        r = stmt_get(s, ST_FETCH_INSERT, &st);
        if (r < 0)
                return r;
        if ((r = bind_str(s, st, 1, f->pool, sizeof(f->pool))) < 0 ||
            (r = bind_str(s, st, 2, f->request_key, sizeof(f->request_key))) < 0 ||
            (r = bind_i64(s, st, 3, f->created_ms)) < 0)
                goto out;
        r = step_write(s, st);
out:
        stmt_done(st);
        return r;
}

int store_fetch_delete(struct store *s, const char *pool, const char *key)
{
        sqlite3_stmt *st = NULL;
        int r;

        if (!s || !pool || !key)
                return -EINVAL;
        if (s->tx_err)
                return s->tx_err;
        r = stmt_get(s, ST_FETCH_DELETE, &st);
        if (r < 0)
                return r;
        if ((r = bind_str(s, st, 1, pool, STORE_NAME_MAX)) < 0 ||
            (r = bind_str(s, st, 2, key, STORE_KEY_MAX)) < 0)
                goto out;
        r = step_write(s, st);
out:
        stmt_done(st);
        return r;
}

static int read_fetch_row(struct store *s, sqlite3_stmt *st, void *dst)
{
        struct store_fetch f = { 0 };
        int r;

        if ((r = col_str(s, st, 0, f.pool, sizeof(f.pool))) < 0 ||
            (r = col_str(s, st, 1, f.request_key, sizeof(f.request_key))) < 0)
                return r;
        f.created_ms = sqlite3_column_int64(st, 2);
        memcpy(dst, &f, sizeof(f));
        return 0;
}

int store_fetch_list(struct store *s, struct store_fetch **ret, size_t *ret_n)
{
        void *v = NULL;
        int r;

        if (!ret)
                return -EINVAL;
        r = list_rows(s, ST_FETCH_LIST, sizeof(struct store_fetch), read_fetch_row, &v, ret_n);
        if (r >= 0)
                *ret = v;
        return r;
}

/* What the C side can see before SQL runs: unterminated strings and states
 * outside the enum. The rest (empty names, bad keys, task_id <= 0,
 * negative counts) is the schema's CHECKs, so it holds for every writer. */
static int check_task(const struct store_task *t)
{
        if ((int)t->state < STORE_TASK_HELD || (int)t->state >= TASK_STATE_END)
                return -EINVAL;
        if (strnlen(t->pool, sizeof(t->pool)) >= sizeof(t->pool) ||
            strnlen(t->forge, sizeof(t->forge)) >= sizeof(t->forge) ||
            strnlen(t->request_key, sizeof(t->request_key)) >= sizeof(t->request_key) ||
            strnlen(t->instance, sizeof(t->instance)) >= sizeof(t->instance) ||
            strnlen(t->reason, sizeof(t->reason)) >= sizeof(t->reason))
                return -ENAMETOOLONG;
        return 0;
}

static int bind_task(struct store *s, sqlite3_stmt *st, const struct store_task *t)
{
        int r;

#define BS(i, f) do { r = bind_str(s, st, i, t->f, sizeof(t->f)); if (r < 0) return r; } while (0)
#define BI(i, v) do { r = bind_i64(s, st, i, v); if (r < 0) return r; } while (0)
        BS(1, pool);
        BS(2, forge);
        BI(3, t->task_id);
        BI(4, t->job_id);
        BS(5, request_key);
        r = sqlite3_bind_text(st, 6, task_state_names[t->state], -1, SQLITE_STATIC);
        if (r != SQLITE_OK)
                return fail(s, r);
        BS(7, instance);
        BI(8, t->attempts);
        BI(9, t->prelude_rows);
        BI(10, t->log_acked);
        BI(11, t->result);
        BI(12, t->created_ms);
        BI(13, t->state_ms);
        BS(14, reason);
#undef BS
#undef BI
        return 0;
}

/* Reads one row selected with TASK_COLS. */
static int read_task(struct store *s, sqlite3_stmt *st, struct store_task *ret)
{
        struct store_task t = { 0 };
        char state[16];
        int r;

#define CS(c, f) do { r = col_str(s, st, c, t.f, sizeof(t.f)); if (r < 0) return r; } while (0)
        t.id = sqlite3_column_int64(st, 0);
        CS(1, pool);
        CS(2, forge);
        t.task_id = sqlite3_column_int64(st, 3);
        t.job_id = sqlite3_column_int64(st, 4);
        CS(5, request_key);
        r = col_str(s, st, 6, state, sizeof(state));
        if (r < 0)
                return r;
        if (store_task_state_parse(state, &t.state) < 0)
                return -EUCLEAN;
        CS(7, instance);
        int64_t attempts = sqlite3_column_int64(st, 8);
        t.prelude_rows = sqlite3_column_int64(st, 9);
        t.log_acked = sqlite3_column_int64(st, 10);
        int64_t result = sqlite3_column_int64(st, 11);
        if (attempts < 0 || attempts > INT_MAX || result < 0 || result > INT_MAX)
                return -EUCLEAN;
        t.attempts = (int)attempts;
        t.result = (int)result;
        t.created_ms = sqlite3_column_int64(st, 12);
        t.state_ms = sqlite3_column_int64(st, 13);
        CS(14, reason);
#undef CS
        *ret = t;
        return 0;
}

static int read_task_row(struct store *s, sqlite3_stmt *st, void *dst)
{
        return read_task(s, st, dst);
}

int store_task_insert(struct store *s, struct store_task *t)
{
        sqlite3_stmt *st = NULL;
        int r;

        if (!s || !t)
                return -EINVAL;
        r = check_task(t);
        if (r < 0)
                return r;
        if (s->tx_err)
                return s->tx_err;
        r = stmt_get(s, ST_TASK_INSERT, &st);
        if (r < 0)
                return r;
        r = bind_task(s, st, t);
        if (r < 0)
                goto out;
        r = step_write(s, st);
        if (r < 0)
                goto out;
        t->id = sqlite3_last_insert_rowid(s->db);
out:
        stmt_done(st);
        return r;
}

static int row_exists(struct store *s, enum stmt_id id, int64_t rowid, bool *ret)
{
        sqlite3_stmt *st = NULL;
        int r = stmt_get(s, id, &st);

        if (r < 0)
                return r;
        r = bind_i64(s, st, 1, rowid);
        if (r < 0)
                goto out;
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
                *ret = rc == SQLITE_ROW;
                r = 0;
        } else {
                r = fail(s, rc);
        }
out:
        stmt_done(st);
        return r;
}

int store_task_update(struct store *s, const struct store_task *t)
{
        sqlite3_stmt *st = NULL;
        bool exists = false;
        int r;

        if (!s || !t)
                return -EINVAL;
        r = check_task(t);
        if (r < 0)
                return r;
        if (s->tx_err)
                return s->tx_err;
        if (t->id <= 0)
                return -ENOENT;
        r = stmt_get(s, ST_TASK_UPDATE, &st);
        if (r < 0)
                return r;
        r = bind_task(s, st, t);
        if (r < 0)
                goto out;
        r = bind_i64(s, st, 15, t->id);
        if (r < 0)
                goto out;
        r = step_write(s, st);
        if (r < 0 || sqlite3_changes(s->db) > 0)
                goto out;
        stmt_done(st);
        r = row_exists(s, ST_TASK_EXISTS, t->id, &exists);
        if (r < 0)
                return r;
        /* The row is there, so an identity field differs. */
        return exists ? -EINVAL : -ENOENT;
out:
        stmt_done(st);
        return r;
}

int store_task_get(struct store *s, const char *forge, int64_t task_id, struct store_task *ret)
{
        sqlite3_stmt *st = NULL;
        int r;

        if (!s || !forge || !ret)
                return -EINVAL;
        r = stmt_get(s, ST_TASK_GET, &st);
        if (r < 0)
                return r;
        if ((r = bind_str(s, st, 1, forge, STORE_NAME_MAX)) < 0 ||
            (r = bind_i64(s, st, 2, task_id)) < 0)
                goto out;
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                r = -ENOENT;
        else if (rc != SQLITE_ROW)
                r = fail(s, rc);
        else
                r = read_task(s, st, ret);
out:
        stmt_done(st);
        return r;
}

int store_task_list_live(struct store *s, struct store_task **ret, size_t *ret_n)
{
        void *v = NULL;
        int r;

        if (!ret)
                return -EINVAL;
        r = list_rows(s, ST_TASK_LIST_LIVE, sizeof(struct store_task), read_task_row, &v, ret_n);
        if (r >= 0)
                *ret = v;
        return r;
}

int store_begin(struct store *s)
{
        if (!s)
                return -EINVAL;
        if (s->in_tx)
                return -EBUSY;
        int r = exec_stmt(s, ST_BEGIN);
        if (r < 0)
                return r;
        s->in_tx = true;
        s->tx_err = 0;
        return 0;
}

int store_commit(struct store *s)
{
        if (!s || !s->in_tx)
                return -EINVAL;
        if (s->tx_err) {
                int e = s->tx_err;
                s->in_tx = false;
                s->tx_err = 0;
                return e;
        }
        int r = exec_stmt(s, ST_COMMIT);
        /* A failed COMMIT may leave the transaction open (SQLITE_BUSY):
         * the caller can retry store_commit() or call store_rollback(). */
        if (sqlite3_get_autocommit(s->db)) {
                s->in_tx = false;
                s->tx_err = 0;
        }
        return r;
}

int store_rollback(struct store *s)
{
        if (!s || !s->in_tx)
                return -EINVAL;
        int r = 0;
        if (!s->tx_err && !sqlite3_get_autocommit(s->db))
                r = exec_stmt(s, ST_ROLLBACK);
        if (sqlite3_get_autocommit(s->db)) {
                s->in_tx = false;
                s->tx_err = 0;
                r = 0;
        }
        return r;
}
