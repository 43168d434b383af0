-- backfill: job definition and its checks, one batch at a time
-- (backfill_step), runs (CALL backfill_run), copies, odd keys and names,
-- live control, ownership and privileges.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_shift;
\set SHOW_CONTEXT never
CREATE TEMP VIEW prog AS
  SELECT name, state, rows_done, keys_done, estimated_total, percent, batch_size, batches,
         last_key, upper_key, retries, last_error
    FROM shift.backfill_progress ORDER BY name;

CREATE TABLE items (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0, label text);
INSERT INTO items SELECT g, 0, 'item ' || g FROM generate_series(1, 5000) g;
ANALYZE items;

-- ---- definition errors: clear, with errcodes, before anything runs
SELECT shift.backfill_create('j', 'items');
SELECT shift.backfill_create('j', 'items', set => 'n = 1', "into" => 'items');
SELECT shift.backfill_create('bad name', 'items', set => 'n = 1');
SELECT shift.backfill_create('j', 'no_such_table', set => 'n = 1');
SELECT shift.backfill_create('j', 'items', set => 'no_such_column = 1');
SELECT shift.backfill_create('j', 'items', set => 'n = 1 WHERE id < 10');
SELECT shift.backfill_create('j', 'items', set => 'n = 1; DROP TABLE items');
SELECT shift.backfill_create('j', 'items', set => 'n = 1', "where" => 'true) OR (true');
SELECT shift.backfill_create('j', 'items', set => 'n = 1', "where" => 'id > 0 ORDER BY 1');
SELECT shift.backfill_create('j', 'items', set => 'n = $1');
SELECT shift.backfill_create('j', 'items', set => 'n = n +');
SELECT shift.backfill_create('j', 'items', set => 'n = 1', throttle_query => 'DELETE FROM items');
CREATE TABLE nokey (x int);
SELECT shift.backfill_create('j', 'nokey', set => 'x = 1');
CREATE UNIQUE INDEX nokey_x ON nokey (x);
SELECT shift.backfill_create('j', 'nokey', set => 'x = 1', key => 'nokey_x');
CREATE VIEW items_v AS SELECT * FROM items;
SELECT shift.backfill_create('j', 'items_v', set => 'n = 1');
SELECT count(*) AS jobs_left_behind FROM shift.backfill;

-- ---- in place, one batch at a time: a non-idempotent SET shows exactly-once
SELECT shift.backfill_create('inc', 'items', set => 'n = n + 1', batch_min => 1000, batch_max => 1000);
SELECT * FROM prog;
SELECT * FROM shift.backfill_step('inc');
SELECT * FROM prog;
BEGIN;
SELECT * FROM shift.backfill_step('inc');
ROLLBACK;   -- the batch and its checkpoint go together
SELECT keys_done, last_key FROM prog WHERE name = 'inc';
SELECT n, count(*) FROM items GROUP BY n ORDER BY n;
CALL shift.backfill_run('inc');
SELECT * FROM prog;
SELECT n, count(*) FROM items GROUP BY n ORDER BY n;
SELECT * FROM shift.backfill_step('inc');          -- done: nothing more
CALL shift.backfill_run('inc');
SELECT count(*) AS batches_logged, sum(keys) AS keys, sum(rows) AS rows FROM shift.backfill_batch WHERE job = 'inc';

-- the bound is fixed at the start: rows inserted later are not walked
INSERT INTO items VALUES (5001, 0, 'late');
SELECT shift.backfill_create('inc2', 'items', set => 'n = n + 1', "where" => 'id % 2 = 0',
                             batch_min => 700, batch_max => 700);
SELECT * FROM shift.backfill_step('inc2');
INSERT INTO items VALUES (5002, 0, 'later');
CALL shift.backfill_run('inc2');
SELECT name, state, rows_done, keys_done, upper_key FROM prog WHERE name = 'inc2';
SELECT n, count(*) FROM items GROUP BY n ORDER BY n;

-- ---- backfill_run must own its transactions
BEGIN;
CALL shift.backfill_run('inc');
ROLLBACK;
DO $$ BEGIN CALL shift.backfill_run('inc'); END $$;
CALL shift.backfill_run('no_such_job');

-- ---- live control
SELECT shift.backfill_create('ctl', 'items', set => 'label = upper(label)', batch_min => 100, batch_max => 100);
CALL shift.backfill_run('ctl', max_batches => 3);
SELECT name, state, keys_done, batches FROM prog WHERE name = 'ctl';
SELECT shift.backfill_pause('ctl');
CALL shift.backfill_run('ctl');                 -- paused: an error (pg_cron shows it failed), not a silent no-op
SELECT name, state, keys_done FROM prog WHERE name = 'ctl';
SELECT * FROM shift.backfill_step('ctl');
SELECT shift.backfill_resume('ctl');
SELECT shift.backfill_resume('ctl');
SELECT shift.backfill_set('ctl', batch_min => 2000, batch_max => 2000, sleep_ratio => 0);
SELECT * FROM shift.backfill_step('ctl');
SELECT shift.backfill_set('ctl', batch_min => 10, batch_max => 5);
SELECT shift.backfill_set('ctl', target_ms => 1);
SELECT shift.backfill_create('j', 'items', set => 'n = 1', batch_min => 0);
SELECT shift.backfill_set('ctl', throttle_query => 'SELECT 1 FROM');
SELECT shift.backfill_cancel('ctl');
CALL shift.backfill_run('ctl');
SELECT shift.backfill_resume('ctl');
SELECT name, state FROM prog WHERE name = 'ctl';
SELECT shift.backfill_pause('inc');
SELECT shift.backfill_drop('ctl');
SELECT shift.backfill_drop('ctl');

-- a throttle query that says wait, with a run limit: no batch runs
SELECT shift.backfill_create('thr', 'items', set => 'n = n', throttle_query => 'SELECT true', max_lag => NULL);
CALL shift.backfill_run('thr', max_runtime => '1.5 seconds');
SELECT name, state, keys_done, throttled FROM shift.backfill_progress WHERE name = 'thr';
SELECT shift.backfill_set('thr', clear_throttle_query => true);
CALL shift.backfill_run('thr');
SELECT name, state, keys_done, throttled FROM shift.backfill_progress WHERE name = 'thr';

-- a failing expression marks the job failed, with the error; fixed data, it goes on
CREATE TABLE fragile (id int PRIMARY KEY, d int NOT NULL, q int);
INSERT INTO fragile SELECT g, CASE WHEN g = 150 THEN 0 ELSE 1 END FROM generate_series(1, 300) g;
SELECT shift.backfill_create('div', 'fragile', set => 'q = 100 / d', batch_min => 100, batch_max => 100);
CALL shift.backfill_run('div');
SELECT name, state, keys_done, last_error, last_sqlstate FROM shift.backfill_progress WHERE name = 'div';
UPDATE fragile SET d = 5 WHERE id = 150;
CALL shift.backfill_run('div');
SELECT name, state, keys_done, last_error FROM shift.backfill_progress WHERE name = 'div';
SELECT count(*) FILTER (WHERE q IS NULL) AS missed, sum(q) FROM fragile;

-- ---- copy into another table: int -> bigint key, renamed and computed columns
CREATE TABLE old_users (id int PRIMARY KEY, email text NOT NULL, name text);
INSERT INTO old_users SELECT g, 'User' || g || '@X.COM', CASE WHEN g % 3 = 0 THEN NULL ELSE 'n' || g END
  FROM generate_series(1, 2500) g;
CREATE TABLE new_users (id bigint PRIMARY KEY, email text NOT NULL, full_name text, email_lower text);
SELECT shift.backfill_create('cp', 'old_users', "into" => 'new_users',
                             columns => '{id,email,full_name,email_lower}',
                             "select" => 'id, email, name, lower(email)', batch_min => 1000, batch_max => 1000);
CALL shift.backfill_run('cp');
SELECT name, state, rows_done FROM prog WHERE name = 'cp';
SELECT count(*), sum(id), count(full_name), count(*) FILTER (WHERE email_lower = lower(email)) FROM new_users;
-- default mapping by column name, and conflicts
CREATE TABLE copy2 (id bigint PRIMARY KEY, email text, extra text DEFAULT 'x');
INSERT INTO copy2 VALUES (7, 'already here', 'kept');
SELECT shift.backfill_create('cp2', 'old_users', "into" => 'copy2');
SELECT into_columns, select_list FROM shift.backfill WHERE name = 'cp2';
CALL shift.backfill_run('cp2');
SELECT name, state, last_sqlstate FROM shift.backfill_progress WHERE name = 'cp2';
SELECT shift.backfill_drop('cp2');
SELECT shift.backfill_create('cp2', 'old_users', "into" => 'copy2', on_conflict => 'nothing');
CALL shift.backfill_run('cp2');
SELECT count(*), (SELECT email FROM copy2 WHERE id = 7) FROM copy2;
SELECT shift.backfill_create('cp3', 'old_users', "into" => 'copy2', on_conflict => 'update');
CALL shift.backfill_run('cp3');
SELECT count(*), (SELECT email || ' / ' || extra FROM copy2 WHERE id = 7) FROM copy2;
-- only key columns copied: nothing to update on a conflict, so it does nothing
CREATE TABLE ids_only (id bigint PRIMARY KEY);
INSERT INTO ids_only VALUES (3);
SELECT shift.backfill_create('ids', 'old_users', "into" => 'ids_only', on_conflict => 'update');
CALL shift.backfill_run('ids');
SELECT count(*), sum(id) FROM ids_only;
SELECT shift.backfill_create('cp4', 'old_users', "into" => 'old_users');
SELECT shift.backfill_create('cp4', 'old_users', "into" => 'new_users', columns => '{nope}');
SELECT shift.backfill_create('cp4', 'old_users', "into" => 'new_users', "select" => 'id FROM old_users');

-- reuse: an identical definition is kept, a different one refused
SELECT shift.backfill_create('cp', 'old_users', "into" => 'new_users',
                             columns => '{id,email,full_name,email_lower}',
                             "select" => 'id, email, name, lower(email)', if_exists => 'reuse');
SELECT shift.backfill_create('cp', 'old_users', "into" => 'new_users', "select" => 'id', if_exists => 'reuse');
SELECT shift.backfill_create('cp', 'old_users', "into" => 'new_users');

-- ---- composite, text and quoted keys; hostile identifiers
CREATE TABLE "Odd ""Table"" ü" ("Part" text NOT NULL, "Seq No" int NOT NULL, "Välue" int NOT NULL DEFAULT 0,
                                PRIMARY KEY ("Part", "Seq No"));
INSERT INTO "Odd ""Table"" ü" SELECT chr(65 + g % 5), g, 0 FROM generate_series(1, 1200) g;
SELECT shift.backfill_create('odd', '"Odd ""Table"" ü"', set => '"Välue" = "Välue" + 1',
                             batch_min => 250, batch_max => 250);
SELECT key_columns FROM shift.backfill WHERE name = 'odd';
SELECT * FROM shift.backfill_step('odd');
SELECT last_key, upper_key FROM prog WHERE name = 'odd';
CALL shift.backfill_run('odd');
SELECT "Välue", count(*) FROM "Odd ""Table"" ü" GROUP BY 1;
-- walking a unique index instead of the primary key
CREATE TABLE by_code (id int PRIMARY KEY, code text NOT NULL UNIQUE, v int NOT NULL DEFAULT 0);
INSERT INTO by_code SELECT g, md5(g::text), 0 FROM generate_series(1, 900) g;
SELECT shift.backfill_create('code', 'by_code', set => 'v = v + 1', key => 'by_code_code_key',
                             batch_min => 200, batch_max => 200);
SELECT key_columns FROM shift.backfill WHERE name = 'code';
CALL shift.backfill_run('code');
SELECT v, count(*) FROM by_code GROUP BY v;
-- an empty table is done at once
CREATE TABLE empty_t (id int PRIMARY KEY, v int);
SELECT shift.backfill_create('empty', 'empty_t', set => 'v = 1');
CALL shift.backfill_run('empty');
SELECT name, state, keys_done, percent FROM prog WHERE name = 'empty';
-- a partitioned table
CREATE TABLE parts (id int PRIMARY KEY, v int NOT NULL DEFAULT 0) PARTITION BY RANGE (id);
CREATE TABLE parts_1 PARTITION OF parts FOR VALUES FROM (1) TO (500);
CREATE TABLE parts_2 PARTITION OF parts FOR VALUES FROM (500) TO (1001);
INSERT INTO parts SELECT g, 0 FROM generate_series(1, 1000) g;
ANALYZE parts;
SELECT shift.backfill_create('parts', 'parts', set => 'v = v + 1', batch_min => 300, batch_max => 300);
CALL shift.backfill_run('parts');
SELECT name, state, keys_done, estimated_total FROM prog WHERE name = 'parts';
SELECT v, count(*) FROM parts GROUP BY v;

-- ---- ownership and privileges: everything runs as the caller
CREATE ROLE regress_pgshift_bf IN ROLE shift_operator;
CREATE ROLE regress_pgshift_bf2 IN ROLE shift_operator;
CREATE TABLE guarded (id int PRIMARY KEY, v int);
INSERT INTO guarded SELECT g, 0 FROM generate_series(1, 10) g;
GRANT SELECT ON guarded TO regress_pgshift_bf;
SET ROLE regress_pgshift_bf;
SELECT shift.backfill_create('guarded', 'guarded', set => 'v = 1');
RESET ROLE;
GRANT UPDATE ON guarded TO regress_pgshift_bf;
SET ROLE regress_pgshift_bf;
SELECT shift.backfill_create('guarded', 'guarded', set => 'v = 1');
RESET ROLE;
-- privileges taken away after the job was made: PostgreSQL itself refuses
REVOKE UPDATE ON guarded FROM regress_pgshift_bf;
SET ROLE regress_pgshift_bf;
CALL shift.backfill_run('guarded');
RESET ROLE;
SELECT name, state, owner FROM shift.backfill_progress WHERE name = 'guarded';
SET ROLE regress_pgshift_bf2;
CALL shift.backfill_run('guarded');
RESET ROLE;
CREATE ROLE regress_pgshift_nobody;
SET ROLE regress_pgshift_nobody;
SELECT * FROM shift.backfill_progress;
CALL shift.backfill_run('guarded');
SELECT shift.backfill_pause('guarded');
RESET ROLE;

-- a batch's lock_timeout is the job's, but at most half of deadlock_timeout
-- (so that in a deadlock with the application the batch is the one to give up)
CREATE TABLE lt (id int PRIMARY KEY, seen text);
INSERT INTO lt SELECT g, NULL FROM generate_series(1, 3) g;
SELECT shift.backfill_create('lt_long', 'lt', set => $$seen = current_setting('lock_timeout')$$,
                             lock_timeout_ms => 5000, max_lag => NULL);
CALL shift.backfill_run('lt_long');
SELECT DISTINCT seen FROM lt;
SELECT shift.backfill_create('lt_short', 'lt', set => $$seen = current_setting('lock_timeout')$$,
                             lock_timeout_ms => 120, max_lag => NULL);
CALL shift.backfill_run('lt_short');
SELECT DISTINCT seen FROM lt;
SHOW lock_timeout;
SELECT shift.backfill_drop('lt_long'), shift.backfill_drop('lt_short');

DROP VIEW prog;
DROP OWNED BY regress_pgshift_bf, regress_pgshift_bf2, regress_pgshift_nobody;
DROP ROLE regress_pgshift_bf, regress_pgshift_bf2, regress_pgshift_nobody;
DROP EXTENSION pg_shift;
