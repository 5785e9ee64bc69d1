-- schema-v1.sql: a database written by forgescale at schema version 1 (the
-- instances table only), as `sqlite3 state.db .dump` prints it, plus its
-- application id. test_store.c loads it and checks that store_open()
-- upgrades it and keeps every instance. Never edit: it stands for files in
-- the field; a later schema gets a fixture of its own.
PRAGMA application_id = 1179861836;
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE meta (  key TEXT PRIMARY KEY NOT NULL,  value TEXT NOT NULL);
INSERT INTO meta VALUES('schema_version','1');
INSERT INTO meta VALUES('controller_id','5eed0001');
CREATE TABLE instances (  id INTEGER PRIMARY KEY AUTOINCREMENT,  name TEXT NOT NULL    CHECK (length(CAST(name AS BLOB)) BETWEEN 1 AND 127),  pool TEXT NOT NULL CHECK (length(CAST(pool AS BLOB)) < 128),  forge TEXT NOT NULL CHECK (length(CAST(forge AS BLOB)) < 128),  scope TEXT NOT NULL CHECK (length(CAST(scope AS BLOB)) < 256),  provider TEXT NOT NULL CHECK (length(CAST(provider AS BLOB)) < 128),  state TEXT NOT NULL CHECK (state = 'registering' OR    state = 'starting' OR state = 'waiting' OR state = 'running' OR    state = 'stopping' OR state = 'done' OR state = 'failed'),  warm INTEGER NOT NULL CHECK (warm IN (0, 1)),  job_id INTEGER NOT NULL DEFAULT 0,  handle TEXT NOT NULL DEFAULT ''    CHECK (length(CAST(handle AS BLOB)) < 64),  runner_id INTEGER NOT NULL DEFAULT 0,  runner_uuid TEXT NOT NULL DEFAULT ''    CHECK (length(CAST(runner_uuid AS BLOB)) < 40),  provider_ref TEXT NOT NULL DEFAULT ''    CHECK (length(CAST(provider_ref AS BLOB)) < 256),  created_ms INTEGER NOT NULL,  state_ms INTEGER NOT NULL,  job_seen_ms INTEGER NOT NULL DEFAULT 0,  claimed_ms INTEGER NOT NULL DEFAULT 0,  exit_code INTEGER NOT NULL DEFAULT -1,  runner_deleted INTEGER NOT NULL DEFAULT 0    CHECK (runner_deleted IN (0, 1)),  reason TEXT NOT NULL DEFAULT ''    CHECK (length(CAST(reason AS BLOB)) < 160));
INSERT INTO instances VALUES(1,'fs-5eed0001-linux-aaaa','linux','main','org/acme','local','registering',0,101,'h-live',0,'','',1700000000000,1700000000000,0,0,-1,0,'');
INSERT INTO instances VALUES(2,'fs-5eed0001-linux-bbbb','linux','main','org/acme','local','running',0,102,'h-running',7,'0b3c6e1e-2d0a-4b7e-9f10-3a5b8c2d1e4f','4242:99887766',1700000000000,1700000005000,1699999999000,1700000004000,-1,0,'');
INSERT INTO instances VALUES(3,'fs-5eed0001-linux-cccc','linux','main','org/acme','local','done',0,103,'h-done',8,'','',1700000000000,1700000009000,0,0,0,1,'');
INSERT INTO instances VALUES(4,'fs-5eed0001-arm-dddd','arm','main','org/acme','local','failed',0,104,'h-failed',9,'','',1700000000000,1700000000000,0,0,3,0,'worker exited 3 before claiming');
INSERT INTO instances VALUES(5,'fs-5eed0001-arm-eeee','arm','main','org/acme','local','waiting',1,0,'',10,'','',1700000000000,1700000000000,0,0,-1,0,'');
CREATE TABLE instance_counts (  pool TEXT NOT NULL,  state TEXT NOT NULL,  n INTEGER NOT NULL,  PRIMARY KEY (pool, state)) WITHOUT ROWID;
INSERT INTO instance_counts VALUES('arm','failed',1);
INSERT INTO instance_counts VALUES('arm','registering',0);
INSERT INTO instance_counts VALUES('arm','waiting',1);
INSERT INTO instance_counts VALUES('linux','done',1);
INSERT INTO instance_counts VALUES('linux','registering',1);
INSERT INTO instance_counts VALUES('linux','running',1);
DELETE FROM sqlite_sequence;
INSERT INTO sqlite_sequence VALUES('instances',5);
CREATE UNIQUE INDEX instances_name ON instances(name);
CREATE UNIQUE INDEX instances_live_handle ON instances(handle)  WHERE handle != '' AND state NOT IN ('done','failed');
CREATE INDEX instances_live ON instances(id)  WHERE state NOT IN ('done','failed');
CREATE INDEX instances_undeleted ON instances(id)  WHERE runner_deleted = 0 AND state IN ('done','failed');
CREATE INDEX instances_terminal_age ON instances(state_ms)  WHERE runner_deleted = 1 AND state IN ('done','failed');
CREATE TRIGGER instances_state_forward  BEFORE UPDATE OF state ON instances  WHEN NEW.state != OLD.state AND (    OLD.state IN ('done','failed') OR    (CASE NEW.state WHEN 'registering' THEN 0 WHEN 'starting' THEN 1      WHEN 'waiting' THEN 2 WHEN 'running' THEN 3      WHEN 'stopping' THEN 4 ELSE 5 END) <    (CASE OLD.state WHEN 'registering' THEN 0 WHEN 'starting' THEN 1      WHEN 'waiting' THEN 2 WHEN 'running' THEN 3      WHEN 'stopping' THEN 4 ELSE 5 END)) BEGIN SELECT RAISE(ABORT, 'instance state may only move forward'); END;
CREATE TRIGGER instance_counts_insert AFTER INSERT ON instances BEGIN  INSERT INTO instance_counts(pool, state, n) VALUES (NEW.pool, NEW.state, 1)    ON CONFLICT(pool, state) DO UPDATE SET n = n + 1;END;
CREATE TRIGGER instance_counts_update AFTER UPDATE OF pool, state ON instances  WHEN NEW.state != OLD.state OR NEW.pool != OLD.pool BEGIN  UPDATE instance_counts SET n = n - 1    WHERE pool = OLD.pool AND state = OLD.state;  INSERT INTO instance_counts(pool, state, n) VALUES (NEW.pool, NEW.state, 1)    ON CONFLICT(pool, state) DO UPDATE SET n = n + 1;END;
CREATE TRIGGER instance_counts_delete AFTER DELETE ON instances BEGIN  UPDATE instance_counts SET n = n - 1    WHERE pool = OLD.pool AND state = OLD.state;END;
COMMIT;
