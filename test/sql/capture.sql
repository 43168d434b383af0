-- Change capture (sql/capture.sql): what capture_create refuses, with its
-- SQLSTATE, and one apply over local tables standing in for foreign ones:
-- re-read, upsert, delete, a gap filled late, the checkpoint.
CREATE EXTENSION IF NOT EXISTS pg_shift;
SET client_min_messages = warning;
\set SHOW_CONTEXT never
\set VERBOSITY default
CREATE TABLE cap_src (id int PRIMARY KEY, v text NOT NULL);
CREATE TABLE cap_log (seq bigint PRIMARY KEY, id int NOT NULL, kind char(1) NOT NULL,
                      at timestamp NOT NULL DEFAULT '2026-01-01 00:00:00');
CREATE TABLE cap_dst (id int PRIMARY KEY, v text, len int);
CREATE TABLE cap_nokey (id int, v text);
CREATE TABLE cap_badlog (n bigint, id int, at timestamp);
CREATE TABLE cap_textseq (seq text, id int, at timestamp);

-- definition errors
SELECT shift.capture_create('bad name!', 'cap_log', 'cap_src', 'cap_dst', '{id}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shift.capture_create('c', 'cap_log', 'cap_src', 'cap_dst', '{}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shift.capture_create('c', 'cap_log', 'cap_src', 'cap_dst', '{id}', batch_size => 0);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shift.capture_create('c', 'cap_log', 'cap_src', 'cap_dst', '{id}', gap_timeout => '-1 s');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shift.capture_create('c', 'cap_badlog', 'cap_src', 'cap_dst', '{id}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shift.capture_create('c', 'cap_textseq', 'cap_src', 'cap_dst', '{id}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shift.capture_create('c', 'cap_log', 'cap_src', 'cap_nokey', '{id}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shift.capture_create('c', 'cap_log', 'cap_src', 'cap_dst', '{v}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shift.capture_create('c', 'cap_log', 'cap_src', 'cap_dst', '{id}', columns => '{v}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shift.capture_create('c', 'cap_log', 'cap_src', 'cap_dst', '{id}', columns => '{id,v,len}',
                            "select" => 'id, v, no_such_column');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shift.capture_create('c', 'cap_log', 'cap_src', 'cap_dst', '{id}', columns => '{id,v,len}',
                            "select" => 'id, v, 1' || repeat(' ', 131072));
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- the select is a list of expressions over the source, nothing more: a
-- second statement, or a FROM that closes the upsert and drops the key's
-- condition, is refused before anything runs
CREATE TABLE cap_victim (x int);
INSERT INTO cap_victim VALUES (1);
SELECT shift.capture_create('inj', 'cap_log', 'cap_src', 'cap_dst', '{id}', columns => '{id,v}',
                            "select" => $$id, v FROM cap_src AS s WHERE false RETURNING t.id) SELECT 1; DELETE FROM cap_victim; SELECT '0 0' --$$);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shift.capture_create('inj', 'cap_log', 'cap_src', 'cap_dst', '{id}', columns => '{id,v}',
                            "select" => $$id, v FROM cap_src AS s2 WHERE true$$);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) AS victims_left FROM cap_victim;
SELECT count(*) AS captures FROM shift.capture;
DROP TABLE cap_victim;
SELECT shift.capture_create('c', 'cap_log', 'cap_src', 'cap_dst', '{id}', if_exists => 'sometimes');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shift.capture_apply('nobody');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- a backfill that has fixed its bound is too late for a capture
INSERT INTO cap_src VALUES (1, 'a'), (2, 'b'), (3, 'c');
INSERT INTO cap_log (seq, id, kind) VALUES (1, 1, 'I'), (2, 2, 'I'), (3, 3, 'I');
SELECT shift.backfill_create('cap_copy', 'cap_src', "into" => 'cap_dst', columns => '{id,v}');
SELECT keys, done FROM shift.backfill_step('cap_copy');
SELECT shift.capture_create('c', 'cap_log', 'cap_src', 'cap_dst', '{id}', backfill => 'cap_copy');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shift.backfill_drop('cap_copy');
TRUNCATE cap_dst;

-- a capture made before its backfill: it waits for the job to be done
SELECT shift.capture_create('c', 'cap_log', 'cap_src', 'cap_dst', '{id}', columns => '{id,v,len}',
                            "select" => 'id, upper(v), length(v)', backfill => 'cap_copy', batch_size => 2);
SELECT shift.capture_create('c', 'cap_log', 'cap_src', 'cap_dst', '{id}', columns => '{id,v,len}',
                            "select" => 'id, upper(v), length(v)', backfill => 'cap_copy', batch_size => 2,
                            if_exists => 'reuse');
SELECT shift.capture_create('c', 'cap_log', 'cap_src', 'cap_dst', '{id}', if_exists => 'reuse');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shift.capture_apply('c');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shift.backfill_create('cap_copy', 'cap_src', "into" => 'cap_dst', columns => '{id,v,len}',
                             "select" => 'id, upper(v), length(v)');
SELECT rows FROM shift.backfill_step('cap_copy');
SELECT done FROM shift.backfill_step('cap_copy');

-- changes: 2 updated twice, 3 deleted, 4 inserted; seq 6 not (yet) committed
UPDATE cap_src SET v = 'bb' WHERE id = 2;
UPDATE cap_src SET v = 'bbb' WHERE id = 2;
DELETE FROM cap_src WHERE id = 3;
INSERT INTO cap_src VALUES (4, 'dddd');
INSERT INTO cap_log (seq, id, kind) VALUES (4, 2, 'U'), (5, 2, 'U'), (7, 3, 'D'), (8, 4, 'I');
SELECT * FROM shift.capture_apply('c', 10);
SELECT * FROM cap_dst ORDER BY id;
SELECT lo, hi FROM shift.capture_gap WHERE capture = 'c';
-- seq 6 commits late: read from its gap
UPDATE cap_src SET v = 'late' WHERE id = 1;
INSERT INTO cap_log (seq, id, kind) VALUES (6, 1, 'U');
SELECT * FROM shift.capture_apply('c');
SELECT * FROM cap_dst ORDER BY id;
SELECT name, last_seq, last_change_at, changes, keys, upserted, deleted, late, open_gaps, batches
  FROM shift.capture_progress;
SELECT * FROM shift.capture_lag('c');
-- a rolled-back apply leaves the checkpoint where it was
BEGIN;
INSERT INTO cap_log (seq, id, kind) VALUES (9, 4, 'U');
SELECT changes FROM shift.capture_apply('c');
ROLLBACK;
SELECT last_seq, changes FROM shift.capture WHERE name = 'c';

-- the MySQL script
SELECT shift.capture_mysql_sql('ord`ers', '{id,region}', '{INT UNSIGNED,VARCHAR(8)}', 'log_orders', database => 'app');
SELECT shift.capture_mysql_sql('orders', '{id}', '{INT UNSIGNED}', 'log_orders', 'remove');
SELECT shift.capture_mysql_sql('orders', '{id}', '{INT; DROP TABLE x}', 'log_orders');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shift.capture_mysql_sql('orders', '{id}', '{}', 'log_orders');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shift.capture_drop('c');
SELECT shift.capture_drop('c');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shift.backfill_drop('cap_copy');
DROP TABLE cap_src, cap_log, cap_dst, cap_nokey, cap_badlog, cap_textseq;

-- a capture's SQL runs as the role that made it, whoever applies it; a role
-- that may not act for that one may not apply it
CREATE ROLE regress_cap_owner;
CREATE ROLE regress_cap_other;
GRANT shift_operator TO regress_cap_owner, regress_cap_other;
GRANT CREATE ON SCHEMA public TO regress_cap_owner;
SET ROLE regress_cap_owner;
CREATE TABLE cap_src (id int PRIMARY KEY, v text NOT NULL);
CREATE TABLE cap_log (seq bigint PRIMARY KEY, id int NOT NULL, kind char(1) NOT NULL, at timestamp NOT NULL DEFAULT now());
CREATE TABLE cap_dst (id int PRIMARY KEY, v text);
INSERT INTO cap_src VALUES (1, 'a');
INSERT INTO cap_log (seq, id, kind) VALUES (1, 1, 'I');
SELECT shift.capture_create('mine', 'cap_log', 'cap_src', 'cap_dst', '{id}', "select" => 'id, current_user');
SET ROLE regress_cap_other;
SELECT shift.capture_apply('mine');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) AS captures_seen FROM shift.capture_progress;
RESET ROLE;
SELECT changes, upserted FROM shift.capture_apply('mine');
SELECT * FROM cap_dst;
SELECT shift.capture_drop('mine');
-- a pg_shift function called by the owner's SQL works for the owner, not
-- for whoever applies the capture: a capture or a backfill job that the
-- select makes is the owner's (with the applier's, its own select would
-- run as the applier, a superuser here)
SET ROLE regress_cap_owner;
CREATE TABLE cap_dst2 (id int PRIMARY KEY, v text);
CREATE FUNCTION cap_nested(v text) RETURNS text LANGUAGE plpgsql AS $f$
BEGIN
  PERFORM shift.capture_create('nested', 'cap_log', 'cap_src', 'cap_dst2', '{id}',
                               "select" => 'id, current_user', if_exists => 'reuse');
  PERFORM shift.backfill_create('nested_job', 'cap_src', set => 'v = v');
  RETURN v;
END $f$;
SELECT shift.capture_create('outer', 'cap_log', 'cap_src', 'cap_dst', '{id}', "select" => 'id, cap_nested(v)');
RESET ROLE;
SELECT changes, upserted FROM shift.capture_apply('outer');
SELECT * FROM cap_dst;
SELECT name, owner FROM shift.capture WHERE name IN ('outer', 'nested') ORDER BY name;
SELECT name, owner FROM shift.backfill WHERE name = 'nested_job';
SELECT changes, upserted FROM shift.capture_apply('nested');
SELECT * FROM cap_dst2;
SELECT shift.capture_drop('outer'), shift.capture_drop('nested'), shift.backfill_drop('nested_job');
DROP FUNCTION cap_nested(text);
-- backfill => names a job of the capture's owner: another role's job of
-- that name (names are global) neither shows its state at capture_create
-- nor, run to done, lets the capture apply before its own copy
GRANT CREATE ON SCHEMA public TO regress_cap_other;
SET ROLE regress_cap_other;
CREATE TABLE cap_other_src (id int PRIMARY KEY, v text);
CREATE TABLE cap_other_dst (id int PRIMARY KEY, v text);
SELECT shift.backfill_create('other_started', 'cap_other_src', "into" => 'cap_other_dst');
SELECT done FROM shift.backfill_step('other_started');
SET ROLE regress_cap_owner;
CREATE TABLE cap_dst3 (id int PRIMARY KEY, v text);
SELECT shift.capture_create('probe', 'cap_log', 'cap_src', 'cap_dst3', '{id}', backfill => 'other_started');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shift.capture_create('waits', 'cap_log', 'cap_src', 'cap_dst3', '{id}', backfill => 'snatched');
SET ROLE regress_cap_other;
SELECT shift.backfill_create('snatched', 'cap_other_src', "into" => 'cap_other_dst');
SELECT done FROM shift.backfill_step('snatched');
SET ROLE regress_cap_owner;
SELECT changes, upserted FROM shift.capture_apply('waits');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) AS applied FROM cap_dst3;
RESET ROLE;
SELECT changes, upserted FROM shift.capture_apply('waits');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shift.capture_drop('waits');
SELECT shift.backfill_drop('other_started'), shift.backfill_drop('snatched');
DROP TABLE cap_src, cap_log, cap_dst, cap_dst2, cap_dst3, cap_other_src, cap_other_dst;
REVOKE CREATE ON SCHEMA public FROM regress_cap_owner, regress_cap_other;
DROP ROLE regress_cap_owner, regress_cap_other;

-- a key is matched by its type's own equality, with its collation, as the
-- backfill matches it: a citext key the changelog logged as 'abc' finds the
-- row 'Abc' in the source and in the table
CREATE EXTENSION IF NOT EXISTS citext;
CREATE TABLE cap_ci_src (code citext PRIMARY KEY, v text NOT NULL);
CREATE TABLE cap_ci_log (seq bigint PRIMARY KEY, code citext NOT NULL, kind char(1) NOT NULL,
                         at timestamp NOT NULL DEFAULT '2026-01-01 00:00:00');
CREATE TABLE cap_ci_dst (code citext PRIMARY KEY, v text);
INSERT INTO cap_ci_src VALUES ('Abc', 'old'), ('Gone', 'x');
INSERT INTO cap_ci_dst VALUES ('Abc', 'old'), ('Gone', 'x');
SELECT shift.capture_create('ci', 'cap_ci_log', 'cap_ci_src', 'cap_ci_dst', '{code}');
UPDATE cap_ci_src SET v = 'new' WHERE code = 'abc';
DELETE FROM cap_ci_src WHERE code = 'gone';
INSERT INTO cap_ci_log (seq, code, kind) VALUES (1, 'abc', 'U'), (2, 'GONE', 'D');
SELECT changes, keys, upserted, deleted FROM shift.capture_apply('ci');
SELECT * FROM cap_ci_dst ORDER BY code;
SELECT shift.capture_drop('ci');
DROP TABLE cap_ci_src, cap_ci_log, cap_ci_dst;

-- the table's key, as the backfill's: a unique btree index on the key
-- columns in their order, NOT NULL; a generated column is not written
CREATE TABLE cap_src (a int NOT NULL, b int NOT NULL, v text NOT NULL, len int, PRIMARY KEY (a, b));
CREATE TABLE cap_log (seq bigint PRIMARY KEY, a int NOT NULL, b int NOT NULL, kind char(1) NOT NULL,
                      at timestamp NOT NULL DEFAULT '2026-01-01 00:00:00');
CREATE TABLE cap_dst (a int NOT NULL, b int NOT NULL, v text,
                      len int GENERATED ALWAYS AS (length(v)) STORED, PRIMARY KEY (a, b));
CREATE TABLE cap_nullkey (a int, b int, v text, UNIQUE (a, b));
CREATE TABLE cap_ab (a int NOT NULL, b int NOT NULL, v text, PRIMARY KEY (a, b));
SELECT shift.capture_create('k_order', 'cap_log', 'cap_src', 'cap_ab', '{b,a}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shift.capture_create('k_null', 'cap_log', 'cap_src', 'cap_nullkey', '{a,b}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shift.capture_create('k', 'cap_log', 'cap_src', 'cap_dst', '{a,b}');
SELECT into_columns, select_list FROM shift.capture WHERE name = 'k';
INSERT INTO cap_src VALUES (1, 2, 'abc', 42), (3, 4, 'x', 42);
INSERT INTO cap_log (seq, a, b, kind) VALUES (1, 1, 2, 'I'), (2, 3, 4, 'I');
SELECT changes, upserted FROM shift.capture_apply('k');
SELECT * FROM cap_dst ORDER BY a;
-- two keys of a batch that are both in the table: both updated, none deleted
UPDATE cap_src SET v = v || '!';
INSERT INTO cap_log (seq, a, b, kind) VALUES (3, 1, 2, 'U'), (4, 3, 4, 'U');
SELECT changes, upserted, deleted FROM shift.capture_apply('k');
SELECT * FROM cap_dst ORDER BY a;
SELECT shift.capture_drop('k');
DROP TABLE cap_src, cap_log, cap_dst, cap_nullkey, cap_ab;

-- keys of types that no digit spells (uuid, a composite of timestamptz and
-- inet): capture_create plans its statements for any key type
CREATE TABLE cap_u_src (id uuid PRIMARY KEY, v text NOT NULL);
CREATE TABLE cap_u_log (seq bigint PRIMARY KEY, id uuid NOT NULL, kind char(1) NOT NULL,
                        at timestamp NOT NULL DEFAULT '2026-01-01 00:00:00');
CREATE TABLE cap_u_dst (id uuid PRIMARY KEY, v text);
SELECT shift.capture_create('u', 'cap_u_log', 'cap_u_src', 'cap_u_dst', '{id}');
INSERT INTO cap_u_src VALUES ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'one');
INSERT INTO cap_u_log (seq, id, kind) VALUES (1, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'I');
SELECT changes, upserted FROM shift.capture_apply('u');
SELECT * FROM cap_u_dst;
SELECT shift.capture_drop('u');
CREATE TABLE cap_t_src (ts timestamptz NOT NULL, host inet NOT NULL, v text, PRIMARY KEY (ts, host));
CREATE TABLE cap_t_log (seq bigint PRIMARY KEY, ts timestamptz NOT NULL, host inet NOT NULL, kind char(1) NOT NULL,
                        at timestamp NOT NULL DEFAULT '2026-01-01 00:00:00');
CREATE TABLE cap_t_dst (ts timestamptz NOT NULL, host inet NOT NULL, v text, PRIMARY KEY (ts, host));
SELECT shift.capture_create('t', 'cap_t_log', 'cap_t_src', 'cap_t_dst', '{ts,host}');
INSERT INTO cap_t_src VALUES ('2026-01-01 00:00+00', '10.0.0.1', 'x');
INSERT INTO cap_t_dst VALUES ('2026-01-02 00:00+00', '10.0.0.2', 'gone');
INSERT INTO cap_t_log (seq, ts, host, kind) VALUES (1, '2026-01-01 00:00+00', '10.0.0.1', 'I'), (2, '2026-01-02 00:00+00', '10.0.0.2', 'D');
SELECT changes, upserted, deleted FROM shift.capture_apply('t');
SELECT host, v FROM cap_t_dst;
SELECT shift.capture_drop('t');
DROP TABLE cap_u_src, cap_u_log, cap_u_dst, cap_t_src, cap_t_log, cap_t_dst;
