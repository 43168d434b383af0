-- engines (sql/engines.sql): the pieces of a cut-over between engines with a
-- way back, without a MySQL server (test/integration/78c_mysql_cutover.sh
-- runs them against MariaDB): a PostgreSQL changelog filled by statement
-- triggers as an application role writes; a capture that carries those
-- changes into a foreign table (postgres_fdw, back into this database);
-- write fences that refuse every role but the one that set them; the
-- MySQL fence script; forgetting gaps; compare through a capture's select.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_shift;
CREATE EXTENSION IF NOT EXISTS postgres_fdw;
\set SHOW_CONTEXT never
\set VERBOSITY default
DO $$ BEGIN
  EXECUTE format('CREATE SERVER back FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host %L, port %L, dbname %L)',
                 split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'),
                 current_database());
END $$;
CREATE USER MAPPING FOR CURRENT_USER SERVER back;
DROP ROLE IF EXISTS regress_eng_app;
CREATE ROLE regress_eng_app;
-- the "MySQL" table: smallint flags, timestamps without a zone
CREATE TABLE my_orders (id bigint PRIMARY KEY, paid smallint NOT NULL, note text, at timestamp NOT NULL);
CREATE FOREIGN TABLE f_orders (id bigint NOT NULL, paid smallint NOT NULL, note text, at timestamp NOT NULL)
  SERVER back OPTIONS (table_name 'my_orders');
-- the PostgreSQL table the application writes after the cut-over
CREATE TABLE orders (id bigint PRIMARY KEY, paid boolean NOT NULL, note text, at timestamptz NOT NULL);
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON orders TO regress_eng_app;
GRANT shift_operator TO regress_eng_app;
INSERT INTO my_orders SELECT g, g % 2, 'n' || g, '2026-01-01'::timestamp + g * interval '1 hour' FROM generate_series(1, 6) g;
INSERT INTO orders SELECT id, paid <> 0, note, at AT TIME ZONE 'UTC' FROM my_orders;

-- ---- the changelog: refusals
SELECT shift.capture_log_create('f_orders', '{id}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shift.capture_log_create('orders', '{nope}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shift.capture_log_create('orders', '{}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
CREATE TABLE not_mine (x int);
ALTER TABLE not_mine OWNER TO regress_eng_app;
SELECT shift.capture_log_create('orders', '{id}', changelog => 'not_mine');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- statement triggers see only the statements that name their table: a
-- partitioned table, a partition, an inheritance parent or child is refused
CREATE TABLE eng_parted (id bigint PRIMARY KEY) PARTITION BY RANGE (id);
CREATE TABLE eng_parted_1 PARTITION OF eng_parted FOR VALUES FROM (0) TO (100);
CREATE TABLE eng_inh_parent (id bigint PRIMARY KEY);
CREATE TABLE eng_inh_child () INHERITS (eng_inh_parent);
SELECT shift.capture_log_create('eng_parted', '{id}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shift.capture_log_create('eng_parted_1', '{id}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shift.capture_log_create('eng_inh_parent', '{id}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shift.capture_log_create('eng_inh_child', '{id}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shift.fence_writes('eng_parted_1');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
DROP TABLE eng_parted, eng_inh_parent CASCADE;
-- made, and made again (kept)
SELECT shift.capture_log_create('orders', '{id}');
SELECT shift.capture_log_create('orders', '{id}');
SELECT tgname FROM pg_trigger WHERE tgrelid = 'orders'::regclass ORDER BY 1;
SELECT has_column_privilege('regress_eng_app', 'orders_pgshift_log', 'id', 'INSERT') AS app_may_log_keys,
       has_column_privilege('regress_eng_app', 'orders_pgshift_log', 'seq', 'INSERT') AS app_may_set_seq;

-- the application's writes, as its role: one row per key a statement touched
SET ROLE regress_eng_app;
INSERT INTO orders VALUES (7, true, 'new', '2026-02-01 00:00+00'), (8, false, 'new', '2026-02-01 00:00+00');
UPDATE orders SET note = 'paid' WHERE id IN (1, 2);
UPDATE orders SET id = 70 WHERE id = 7;       -- a key change: both keys
DELETE FROM orders WHERE id = 3;
BEGIN; UPDATE orders SET note = 'rolled back' WHERE id = 4; ROLLBACK;
UPDATE orders SET note = 'after the rollback' WHERE id = 4;   -- past the rolled-back seq: a gap
TRUNCATE orders;   -- names no key: the changelog could not carry it
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT count(*) AS rows_kept FROM orders;
SELECT seq, id, kind FROM orders_pgshift_log ORDER BY seq, id;

-- ---- the way back: a capture from the changelog into the foreign table
SELECT shift.capture_create('back', changelog => 'orders_pgshift_log', source => 'orders', "into" => 'f_orders',
  key_columns => '{id}', "select" => E'id, paid::int, note, at AT TIME ZONE ''UTC''');
-- before: the other side differs
SELECT kind, key FROM shift.capture_compare('back') ORDER BY key;
SELECT changes, keys, upserted, deleted, caught_up FROM shift.capture_apply('back', 10);
SELECT * FROM my_orders ORDER BY id;
SELECT count(*) AS differences FROM shift.capture_compare('back');
-- the seq the rolled-back UPDATE took is a gap (identity values are taken
-- before commit); forgetting it is the cut-over's call, once the table is fenced
SELECT last_seq, open_gaps FROM shift.capture_progress WHERE name = 'back';
SELECT shift.capture_forget_gaps('back') AS forgotten;
SET ROLE regress_eng_app;
SELECT shift.capture_forget_gaps('back');   -- not the app's capture
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT open_gaps, gaps_forgotten FROM shift.capture_progress WHERE name = 'back';
-- applied again from the start: the same rows (idempotent)
UPDATE shift.capture SET last_seq = 0 WHERE name = 'back';
SELECT changes, upserted FROM shift.capture_apply('back', 10);
SELECT count(*) AS differences FROM shift.capture_compare('back');
-- a difference made on the far side is seen, keyed
UPDATE my_orders SET note = 'drift' WHERE id = 5;
DELETE FROM my_orders WHERE id = 6;
SELECT kind, key, columns FROM shift.capture_compare('back') ORDER BY key;

-- ---- fences
SELECT shift.fence_writes('orders', message => 'orders moved back to MySQL');
SELECT shift.fence_writes('orders');   -- kept
SET ROLE regress_eng_app;
INSERT INTO orders VALUES (9, true, 'x', now());
\echo SQLSTATE :LAST_ERROR_SQLSTATE
UPDATE orders SET note = 'x' WHERE id = 1;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
DELETE FROM orders WHERE id = 1;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
TRUNCATE orders;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shift.unfence_writes('orders');   -- only the table's owner drops its trigger
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;
TRUNCATE orders_pgshift_log;   -- not fenced
-- the role that fenced the table writes it
UPDATE orders SET note = 'by the fencer' WHERE id = 1;
SELECT shift.unfence_writes('orders');
SET ROLE regress_eng_app;
UPDATE orders SET note = 'after' WHERE id = 1;
RESET ROLE;
SELECT note FROM orders WHERE id = 1;
-- a foreign key's cascade runs as the fenced table's owner, the fencer: it
-- is refused all the same (the application's DELETE of a parent row would
-- otherwise empty rows of the fenced table)
CREATE TABLE fence_parent (id int PRIMARY KEY);
CREATE TABLE fence_child (id int PRIMARY KEY, parent int REFERENCES fence_parent ON DELETE CASCADE);
INSERT INTO fence_parent VALUES (1), (2);
INSERT INTO fence_child VALUES (10, 1), (20, 2);
GRANT SELECT, DELETE ON fence_parent TO regress_eng_app;
SELECT shift.fence_writes('fence_child');
SET ROLE regress_eng_app;
DELETE FROM fence_parent WHERE id = 1;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT count(*) AS child_rows_kept FROM fence_child;
DELETE FROM fence_child WHERE id = 20;   -- the fencer's own statement
SELECT count(*) AS child_rows FROM fence_child;
DROP TABLE fence_child, fence_parent;

-- ---- the MySQL side's fence script
SELECT shift.mysql_fence_sql('orders', exempt_user => 'pg''shift', database => 'app');
SELECT shift.mysql_fence_sql('orders', 'unfence');
SELECT shift.mysql_fence_sql('orders');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shift.mysql_fence_sql('orders', 'lock', exempt_user => 'u');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- the next AUTO_INCREMENT's script: the table asked itself, table options on
SELECT shift.mysql_next_id_sql('or`ders', database => 'app');
SELECT shift.mysql_next_id_sql('orders');
-- a long table name: every trigger name within MySQL's 64 characters, all apart
WITH scripts(s) AS (
  SELECT shift.mysql_fence_sql(repeat('t', 60), exempt_user => 'u')
  UNION ALL SELECT shift.mysql_fence_sql(repeat('t', 60), 'unfence')
  UNION ALL SELECT shift.capture_mysql_sql(repeat('t', 60), '{id}', '{BIGINT}', repeat('l', 60))
  UNION ALL SELECT shift.capture_mysql_sql(repeat('t', 60), '{id}', '{BIGINT}', repeat('l', 60), 'remove')),
names AS (SELECT m[1] AS name FROM scripts, regexp_matches(s, 'TRIGGER (?:IF (?:NOT )?EXISTS )?`([^`]+)`', 'g') m)
SELECT count(*) AS trigger_names, count(DISTINCT name) AS distinct_names, max(char_length(name)) AS longest
  FROM names;

-- ---- dropping the changelog removes its triggers and table
SELECT shift.capture_drop('back');
SELECT shift.capture_log_drop('orders');
SELECT tgname FROM pg_trigger WHERE tgrelid = 'orders'::regclass AND NOT tgisinternal;
SELECT to_regclass('orders_pgshift_log') AS log_left;

-- ---- a foreign table's key must be its first column, alone; writers
-- cannot choose a changelog's seq; only the owner compares through a select
CREATE TABLE r_orders (id bigint PRIMARY KEY, note text);
CREATE TABLE r_log (seq bigint PRIMARY KEY, id bigint NOT NULL, at timestamp NOT NULL);
CREATE FOREIGN TABLE f_note_first (note text, id bigint NOT NULL) SERVER back OPTIONS (table_name 'r_orders');
SELECT shift.capture_create('bad_back', 'r_log', 'r_orders', 'f_note_first', '{id}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
CREATE TABLE r_log2 (seq bigint PRIMARY KEY, id bigint NOT NULL, note text NOT NULL, at timestamp NOT NULL);
CREATE FOREIGN TABLE f_pair (id bigint NOT NULL, note text) SERVER back OPTIONS (table_name 'r_orders');
SELECT shift.capture_create('bad_back', 'r_log2', 'r_orders', 'f_pair', '{id,note}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
GRANT SELECT, INSERT, UPDATE, DELETE ON r_orders TO regress_eng_app;
GRANT SELECT ON r_log TO regress_eng_app;
SELECT shift.capture_log_create('r_orders', '{id}');
SET ROLE regress_eng_app;
INSERT INTO r_orders VALUES (1, 'x');                     -- logged through the trigger
INSERT INTO r_orders_pgshift_log (seq, id, kind) OVERRIDING SYSTEM VALUE VALUES (9000000000, 1, 'U');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT seq, id, kind FROM r_orders_pgshift_log;
-- a capture of this role's, compared by another role: refused, even for a superuser
SET ROLE regress_eng_app;
SELECT shift.capture_create('app_cap', 'r_log', 'r_orders', 'r_orders', '{id}', "select" => 'id, note || current_user');
RESET ROLE;
SELECT * FROM shift.capture_compare('app_cap');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SET ROLE regress_eng_app;
SELECT count(*) AS differences_for_the_owner FROM shift.capture_compare('app_cap');
-- a paused capture is not applied
SELECT shift.capture_pause('app_cap');
SELECT * FROM shift.capture_apply('app_cap');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shift.capture_pause('app_cap', false);
SELECT changes FROM shift.capture_apply('app_cap');
SELECT shift.capture_drop('app_cap');
RESET ROLE;
SELECT shift.capture_log_drop('r_orders');
DROP FOREIGN TABLE f_note_first, f_pair;
DROP TABLE r_orders, r_log, r_log2;

DROP TABLE orders, my_orders, not_mine;
DROP FOREIGN TABLE f_orders;
-- ---- compare with a foreign table reads it once: its rows are spooled
-- while they are summed, and the differing buckets' rows come from the spool.
-- Every row MariaDB (here postgres_fdw) sends is counted by the view's nextval.
CREATE SEQUENCE remote_reads;
CREATE TABLE remote_rows (id bigint PRIMARY KEY, note text, n numeric);
INSERT INTO remote_rows SELECT g, repeat(md5(g::text), 1 + g % 5), g / 7.0 FROM generate_series(1, 5000) g;
CREATE VIEW remote_counted AS SELECT * FROM remote_rows WHERE nextval('remote_reads') > 0;
CREATE FOREIGN TABLE f_counted (id bigint, note text, n numeric) SERVER back OPTIONS (table_name 'remote_counted');
CREATE TABLE local_rows AS SELECT * FROM remote_rows;
UPDATE local_rows SET note = 'changed' WHERE id = 4321;
DELETE FROM local_rows WHERE id = 17;
INSERT INTO local_rows VALUES (9999, 'only here', 1);
SELECT kind, key, columns FROM shift.compare('f_counted', 'local_rows', key => '{id}') ORDER BY key;
SELECT last_value AS rows_read_from_the_source FROM remote_reads;
SELECT setval('remote_reads', 1, false);
SELECT kind, key, columns FROM shift.compare('local_rows', 'f_counted', key => '{id}', buckets => 4) ORDER BY key;
SELECT last_value AS rows_read_from_the_target FROM remote_reads;
SELECT setval('remote_reads', 1, false);
SELECT count(*) AS differences_when_equal FROM shift.compare('f_counted', 'remote_rows', key => '{id}');
SELECT last_value AS rows_read_when_equal FROM remote_reads;
DROP FOREIGN TABLE f_counted;
DROP VIEW remote_counted;
DROP TABLE remote_rows, local_rows;
DROP SEQUENCE remote_reads;

DROP USER MAPPING FOR CURRENT_USER SERVER back;
DROP SERVER back;
DROP ROLE regress_eng_app;

-- ---- sequences: past the table's largest value and past the floor, never back
CREATE TABLE seq_src (id bigint PRIMARY KEY);
CREATE TABLE seq_log (seq bigint PRIMARY KEY, id bigint NOT NULL, at timestamp NOT NULL);
CREATE TABLE seq_dst (id bigserial PRIMARY KEY, n int GENERATED ALWAYS AS IDENTITY);
INSERT INTO seq_dst (id) VALUES (41), (42);
SELECT shift.capture_create('seqs', 'seq_log', 'seq_src', 'seq_dst', '{id}', columns => '{id}');
SELECT sequence, value FROM shift.capture_sequences('seqs', floor => 100) ORDER BY 1;
SELECT sequence, value FROM shift.capture_sequences('seqs') ORDER BY 1;   -- never back
SELECT sequence, value FROM shift.capture_sequences('seqs', floor => 7) ORDER BY 1;
INSERT INTO seq_dst DEFAULT VALUES RETURNING id, n;
SELECT shift.capture_drop('seqs');
DROP TABLE seq_src, seq_log, seq_dst;

-- ---- a capture that does not exist, named
SELECT * FROM shift.capture_compare('nope');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM shift.capture_sequences('nope');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shift.capture_forget_gaps('nope');
\echo SQLSTATE :LAST_ERROR_SQLSTATE


