-- backfill_foreign: a foreign table's key named as columns (key_columns =>),
-- and the errors a job definition gets before anything runs.  The foreign
-- server is never reached: a definition only parses and prepares.  (Runs
-- against MariaDB and postgres_fdw: test/integration/78_foreign_backfill.sh.)
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_shift;
CREATE EXTENSION IF NOT EXISTS postgres_fdw;
\set SHOW_CONTEXT never
\set VERBOSITY default
CREATE SERVER nowhere FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '/nonexistent', dbname 'none');
CREATE FOREIGN TABLE f_orders (id bigint, region text, paid smallint, at timestamp, spot point)
  SERVER nowhere OPTIONS (table_name 'orders');
CREATE TABLE orders (id bigint PRIMARY KEY, region text, paid boolean, at timestamptz);

-- ---- errors, each with its SQLSTATE
SELECT shift.backfill_create('f', 'f_orders', "into" => 'orders');                          -- no key
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shift.backfill_create('f', 'f_orders', "into" => 'orders', key_columns => '{nope}');  -- no such column
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shift.backfill_create('f', 'f_orders', "into" => 'orders', key_columns => '{ctid}');  -- a system column
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shift.backfill_create('f', 'f_orders', "into" => 'orders', key_columns => '{id,id}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shift.backfill_create('f', 'f_orders', "into" => 'orders', key_columns => '{}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shift.backfill_create('f', 'f_orders', "into" => 'orders', key_columns => '{id,NULL}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shift.backfill_create('f', 'f_orders', "into" => 'orders', key_columns => '{{id},{region}}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shift.backfill_create('f', 'f_orders', "into" => 'orders', key_columns => '{spot}');  -- no btree ordering
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shift.backfill_create('f', 'f_orders', "into" => 'orders', key => 'orders_pkey', key_columns => '{id}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shift.backfill_create('f', 'f_orders', set => 'paid = 1', key_columns => '{id}');     -- read only
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shift.backfill_create('f', 'orders', "into" => 'f_orders', key_columns => '{id}');    -- into a foreign table
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shift.backfill_create('f', 'f_orders', "into" => 'orders', key_columns => '{id}',
                             "select" => 'id, region, paid <> 0, no_such_column');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) AS jobs_left_behind FROM shift.backfill;

-- ---- a good definition: the key is its columns, no index
SELECT shift.backfill_create('f', 'f_orders', "into" => 'orders', key_columns => '{region,id}',
                             "select" => $$id, region, paid <> 0, at AT TIME ZONE 'UTC'$$);
SELECT name, relation, key_index, key_columns, into_columns, select_list FROM shift.backfill WHERE name = 'f';
-- the same definition again is reused; another key is another definition
SELECT shift.backfill_create('f', 'f_orders', "into" => 'orders', key_columns => '{region,id}',
                             "select" => $$id, region, paid <> 0, at AT TIME ZONE 'UTC'$$, if_exists => 'reuse');
SELECT shift.backfill_create('f', 'f_orders', "into" => 'orders', key_columns => '{id}',
                             "select" => $$id, region, paid <> 0, at AT TIME ZONE 'UTC'$$, if_exists => 'reuse');
SELECT shift.backfill_drop('f');

-- ---- key_columns on a local table: the unique index on those columns
CREATE TABLE local_src (a int NOT NULL, b text NOT NULL, c int, UNIQUE (b, a));
CREATE UNIQUE INDEX local_src_c ON local_src (c);
CREATE TABLE local_dst (a int, b text, c int);
SELECT shift.backfill_create('l', 'local_src', "into" => 'local_dst', key_columns => '{b,a}');
SELECT key_index, key_columns FROM shift.backfill WHERE name = 'l';
SELECT shift.backfill_create('l2', 'local_src', "into" => 'local_dst', key_columns => '{a,b}');  -- no index in that order
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT shift.backfill_create('l2', 'local_src', "into" => 'local_dst', key_columns => '{c}');    -- c may be NULL
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO local_src SELECT g, 'k' || (g % 7), g FROM generate_series(1, 50) g;
CALL shift.backfill_run('l');
SELECT state, keys_done, last_key FROM shift.backfill_progress WHERE name = 'l';
SELECT count(*) FROM (TABLE local_src EXCEPT ALL TABLE local_dst) x;
SELECT shift.backfill_drop('l');
DROP TABLE local_src, local_dst, orders;
DROP FOREIGN TABLE f_orders;
DROP SERVER nowhere;
