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
DROP TABLE cap_src, cap_log, cap_dst, cap_dst2;
REVOKE CREATE ON SCHEMA public FROM regress_cap_owner;
DROP ROLE regress_cap_owner, regress_cap_other;
