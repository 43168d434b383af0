-- sync: dual-write triggers.  Column level (set, reverse_set), table level
-- (into, columns, select, key and the reverse mapping), partitioned tables,
-- the cache of compiled triggers, privileges, shift_internal._select_list.  The
-- cut-over is in cutover.sql.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_shift;
\set SHOW_CONTEXT never
-- a schema of its own: other suites have tables of the same names
CREATE SCHEMA synct;
GRANT USAGE ON SCHEMA synct TO PUBLIC;
SET search_path = synct;

-- ======================================================================
-- column level
-- ======================================================================
CREATE TABLE users (id int PRIMARY KEY, email text, email_lower text, n int, n_big bigint);

-- ---- one way: the new columns are computed on every INSERT and UPDATE
SELECT shift.sync_create('u1', 'users', set => 'email_lower = lower(email), n_big = n');
INSERT INTO users VALUES (1, 'Ann@X.org', NULL, 1, NULL),
                         (2, NULL, NULL, NULL, NULL),
                         (3, 'Bob@Y', 'written by hand', 3, 99);   -- a one-way sync overrides it
SELECT * FROM users ORDER BY id;
UPDATE users SET email = 'ANN@z', n = 2147483647 WHERE id = 1;
UPDATE users SET n_big = 5 WHERE id = 2;   -- the new side alone: recomputed (still NULL)
SELECT * FROM users ORDER BY id;
-- NULLs are computed like any value
UPDATE users SET n = NULL, email = NULL WHERE id = 3 RETURNING *;
-- an expression that fails fails the write, and nothing is stored
SELECT shift.sync_drop('u1');
SELECT shift.sync_create('u1', 'users', set => 'email_lower = lower(email), n_big = 10 / n');
UPDATE users SET n = 0 WHERE id = 1;
SELECT id, n, n_big FROM users WHERE id = 1;
SELECT shift.sync_drop('u1');
-- dropped: nothing computes the new columns any more
INSERT INTO users VALUES (4, 'Dan@X', NULL, 4, NULL);
SELECT email_lower IS NULL AS not_computed FROM users WHERE id = 4;
TRUNCATE users;

-- ---- two way: old-version and new-version writers at once
SELECT shift.sync_create('u2', 'users', set => 'email_lower = lower(email)',
                         reverse_set => 'email = email_lower');
-- old-version inserts (new column NULL) get the new one; new-version inserts (old NULL) the old one
INSERT INTO users (id, email) VALUES (1, 'Old@Writer');
INSERT INTO users (id, email_lower) VALUES (2, 'new@writer');
INSERT INTO users (id) VALUES (3);
SELECT id, email, email_lower FROM users ORDER BY id;
-- an old-version update (old column only) recomputes the new one
UPDATE users SET email = 'Changed@Old' WHERE id = 1;
-- a new-version update (new column only, disagreeing with set) computes the old one
UPDATE users SET email_lower = 'changed@new' WHERE id = 2;
SELECT id, email, email_lower FROM users ORDER BY id;
-- a new-version update to NULL reaches the old side too
UPDATE users SET email_lower = NULL WHERE id = 2;
SELECT id, email, email_lower FROM users WHERE id = 2;
UPDATE users SET email_lower = 'changed@new' WHERE id = 2;
-- a backfill writing set's own values changes nothing (the old column keeps its case)
UPDATE users SET email_lower = lower(email);
SELECT id, email, email_lower FROM users ORDER BY id;
-- a writer of both sides at once: the old side wins, the new one is recomputed
UPDATE users SET email = 'Both@Sides', email_lower = 'disagrees' WHERE id = 1;
-- an update touching neither side keeps both, and a row that disagreed is repaired from the old side
ALTER TABLE users DISABLE TRIGGER shift_sync_u2;
UPDATE users SET email_lower = 'drifted' WHERE id = 3;
ALTER TABLE users ENABLE TRIGGER shift_sync_u2;
UPDATE users SET n = 7 WHERE id IN (2, 3);
SELECT id, email, email_lower, n FROM users ORDER BY id;
-- no ping-pong: one write is one row version, whichever side it came from (and the
-- row is right after it)
BEGIN;
SELECT n_tup_upd AS upd_before FROM pg_stat_xact_user_tables WHERE relid = 'users'::regclass \gset
UPDATE users SET email_lower = 'once@only' WHERE id = 2;
UPDATE users SET email = 'Twice@Old' WHERE id = 2;
SELECT n_tup_upd - :upd_before AS row_versions FROM pg_stat_xact_user_tables WHERE relid = 'users'::regclass;
SELECT id, email, email_lower FROM users WHERE id = 2;
ROLLBACK;
SELECT shift.sync_drop('u2');

-- ---- literals in set and reverse_set outlive the statement that compiled them
-- (the planner shares a literal's text with the analyzer's short-lived memory;
-- a copy kept in the cache must not: thousands of rows reuse that memory)
CREATE TABLE names (id int PRIMARY KEY, full_name text, first_name text, last_name text);
SELECT shift.sync_create('split', 'names',
  set => $$first_name = split_part(full_name, ' ', 1), last_name = substr(full_name, length(split_part(full_name, ' ', 1)) + 2)$$,
  reverse_set => $$full_name = concat_ws(' ', first_name, nullif(last_name, ''))$$);
INSERT INTO names (id, full_name) SELECT g, 'First' || g || ' Last ' || repeat('x', g % 50) FROM generate_series(1, 3000) g;
INSERT INTO names (id, first_name, last_name) SELECT g, 'F' || g, 'L' || repeat('y', g % 40) FROM generate_series(3001, 6000) g;
UPDATE names SET full_name = full_name || ' Jr' WHERE id % 3 = 0 AND id <= 3000;
SELECT count(*) AS disagreeing FROM names
 WHERE first_name IS DISTINCT FROM split_part(full_name, ' ', 1)
    OR last_name IS DISTINCT FROM substr(full_name, length(split_part(full_name, ' ', 1)) + 2);
SELECT shift.sync_drop('split');
DROP TABLE names;

-- ---- the creator's search_path is used, not the writer's
CREATE SCHEMA util;
CREATE FUNCTION util.norm(t text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT lower(trim(t)) $$;
CREATE FUNCTION synct.norm(t text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT 'wrong function' $$;
SET search_path = util, synct;
SELECT shift.sync_create('u3', 'users', set => 'email_lower = norm(email)');
SET search_path = synct;
SHOW search_path;
INSERT INTO users (id, email) VALUES (10, '  Trim@Me  ');
SELECT email_lower FROM users WHERE id = 10;
SELECT search_path FROM shift.sync WHERE name = 'u3';

-- ---- the compiled trigger follows changes, in the same session
-- CREATE OR REPLACE FUNCTION of a function used in set
CREATE OR REPLACE FUNCTION util.norm(t text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT upper(trim(t)) $$;
UPDATE users SET email = ' Again ' WHERE id = 10;
SELECT email_lower FROM users WHERE id = 10;
-- ALTER TABLE ADD COLUMN (the row has more columns than when compiled)
ALTER TABLE users ADD COLUMN extra text DEFAULT 'e';
INSERT INTO users (id, email) VALUES (11, 'Added');
SELECT id, email_lower, extra FROM users WHERE id = 11;
-- DROP COLUMN of a column the sync does not use (attribute numbers keep a hole)
ALTER TABLE users DROP COLUMN n;
INSERT INTO users (id, email, extra) VALUES (12, 'Dropped', 'x');
SELECT id, email_lower, extra FROM users WHERE id = 12;
-- DROP COLUMN of a column the sync uses: writes fail, naming the sync's statement
ALTER TABLE users ADD COLUMN gone text;
SELECT shift.sync_drop('u3');
SELECT shift.sync_create('u3', 'users', set => 'email_lower = lower(email), gone = email');
ALTER TABLE users DROP COLUMN gone;
INSERT INTO users (id, email) VALUES (13, 'Fails');
-- DROP + recreate the sync with another definition: the new one is used at once
SELECT shift.sync_drop('u3');
SELECT shift.sync_create('u3', 'users', set => 'email_lower = md5(email)');
INSERT INTO users (id, email) VALUES (13, 'Hashed');
SELECT email_lower = md5('Hashed') AS hashed FROM users WHERE id = 13;
SELECT shift.sync_drop('u3');

-- ---- refused definitions: a clear error each, and nothing left behind
SELECT shift.sync_create('c', 'users', set => 'no_such_column = lower(email)');
SELECT shift.sync_create('c', 'users', set => 'email_lower = lower(no_such_column)');
SELECT shift.sync_create('c', 'users', set => 'email_lower = email_lower || email');
SELECT shift.sync_create('c', 'users', set => 'email_lower = (SELECT max(email) FROM users)');
SELECT shift.sync_create('c', 'users', set => 'email_lower = DEFAULT');
SELECT shift.sync_create('c', 'users', set => '(email_lower, extra) = (email, email)');
SELECT shift.sync_create('c', 'users', set => 'email_lower = lower(email); DROP TABLE users');
SELECT shift.sync_create('c', 'users', set => 'email_lower = $1');
SELECT shift.sync_create('c', 'users', set => 'email_lower = lower(email) WHERE id = 1');
SELECT shift.sync_create('c', 'users', set => 'email_lower = lower(email), email_lower = email');
SELECT shift.sync_create('c', 'users', set => 'email_lower = lower(email) +');
ALTER TABLE users ADD COLUMN email_upper text GENERATED ALWAYS AS (upper(email)) STORED;
SELECT shift.sync_create('c', 'users', set => 'email_upper = email');
SELECT shift.sync_create('c', 'users', set => 'email_lower = lower(email)', reverse_set => 'email_lower = email');
SELECT shift.sync_create('c', 'users', set => 'email_lower = lower(email)', reverse_set => 'email = email || email');
SELECT shift.sync_create('bad name', 'users', set => 'email_lower = lower(email)');
SELECT shift.sync_create(repeat('x', 49), 'users', set => 'email_lower = lower(email)');
SELECT shift.sync_create('c', 'users');
SELECT shift.sync_create('c', 'users', set => 'email_lower = email', "into" => 'users');
SELECT shift.sync_create('c', 'users', set => 'email_lower = email', key => '{id}');
SELECT shift.sync_create('c', 'users', set => 'email_lower = email', if_exists => 'replace');
CREATE VIEW users_v AS SELECT * FROM users;
SELECT shift.sync_create('c', 'users_v', set => 'email_lower = email');
SELECT count(*) AS syncs_left_behind FROM shift.sync;
SELECT count(*) AS triggers_left_behind FROM pg_trigger WHERE tgrelid = 'users'::regclass;

-- ---- duplicate names; if_exists => 'reuse' returns the same definition only
SELECT shift.sync_create('d', 'users', set => 'email_lower = lower(email)', reverse_set => 'email = email_lower');
SELECT shift.sync_create('d', 'users', set => 'email_lower = lower(email)', reverse_set => 'email = email_lower');
SELECT shift.sync_create('d', 'users', set => 'email_lower = lower(email)', reverse_set => 'email = email_lower',
                         if_exists => 'reuse');
SELECT shift.sync_create('d', 'users', set => 'email_lower = upper(email)', if_exists => 'reuse');
SELECT tgname FROM pg_trigger WHERE tgrelid = 'users'::regclass ORDER BY tgname;
SELECT shift.sync_drop('d');
SELECT shift.sync_drop('d');
SELECT shift.sync_drop('d', if_exists => true);

-- ---- a role without the TRIGGER privilege may not create a sync
CREATE ROLE regress_sync_nobody;
GRANT USAGE ON SCHEMA shift TO regress_sync_nobody;
GRANT EXECUTE ON ALL ROUTINES IN SCHEMA shift TO regress_sync_nobody;
GRANT SELECT, INSERT, UPDATE ON users TO regress_sync_nobody;
SET ROLE regress_sync_nobody;
SELECT shift.sync_create('p', 'users', set => 'email_lower = lower(email)');
RESET ROLE;

-- ---- column level on a partitioned table: the trigger is cloned to every partition
CREATE TABLE events (id int, kind text, kind_lower text, PRIMARY KEY (id)) PARTITION BY RANGE (id);
CREATE TABLE events_1 PARTITION OF events FOR VALUES FROM (0) TO (100);
SELECT shift.sync_create('ev', 'events', set => 'kind_lower = lower(kind)');
-- a partition made later, with its columns in another order and a dropped one
CREATE TABLE events_2 (junk int, kind_lower text, kind text, id int NOT NULL);
ALTER TABLE events_2 DROP COLUMN junk;
ALTER TABLE events ATTACH PARTITION events_2 FOR VALUES FROM (100) TO (200);
INSERT INTO events VALUES (1, 'Click', NULL), (150, 'View', NULL);
INSERT INTO events_2 (id, kind) VALUES (151, 'Direct');
UPDATE events SET kind = 'MOVED', id = 2 WHERE id = 150;
SELECT * FROM events ORDER BY id;
SELECT shift.sync_drop('ev');

-- ======================================================================
-- table level
-- ======================================================================
-- renamed and retyped columns: int -> bigint key, full_name -> name, a computed column
CREATE TABLE acct (id int PRIMARY KEY, full_name text NOT NULL, email text, note text);
CREATE TABLE acct2 (id bigint PRIMARY KEY, name text NOT NULL, email_lower text, note text,
                    created timestamptz DEFAULT '2000-01-01');
SELECT shift.sync_create('a', 'acct', "into" => 'acct2',
                         columns => '{id,name,email_lower,note}',
                         "select" => 'id::bigint, full_name, lower(acct.email), note',
                         reverse_columns => '{id,full_name,email,note}',
                         reverse_select => 'id::int, name, email_lower, note');
SELECT name, kind, direction, source, destination, triggers, enabled, target_columns, expressions,
       target_key, reverse_columns, reverse_expressions, relation_key
  FROM shift.sync_status;
CREATE VIEW side_by_side AS
  SELECT coalesce(a.id, b.id) AS id, a.full_name, b.name, a.email, b.email_lower, a.note, b.note AS note2
    FROM acct a FULL JOIN acct2 b ON a.id = b.id;
-- INSERT, multi-row INSERT
INSERT INTO acct VALUES (1, 'One', 'One@X', NULL);
INSERT INTO acct VALUES (2, 'Two', 'Two@X', 'n2'), (3, 'Three', NULL, 'n3'), (4, 'Four', 'Four@X', NULL);
SELECT * FROM side_by_side ORDER BY id;
-- UPDATE of some rows, of a key, of all keys at once (every old key collides with a new one)
UPDATE acct SET note = 'upd' WHERE id IN (1, 3);
UPDATE acct SET id = 40 WHERE id = 4;
UPDATE acct SET id = id + 100;
SELECT * FROM side_by_side ORDER BY id;
-- DELETE, and statements that touch no row
DELETE FROM acct WHERE id = 140;
UPDATE acct SET note = 'never' WHERE false;
DELETE FROM acct WHERE false;
INSERT INTO acct SELECT * FROM acct WHERE false;
SELECT * FROM side_by_side ORDER BY id;
-- INSERT ... ON CONFLICT DO UPDATE: one row inserted, one updated, in one statement
INSERT INTO acct VALUES (102, 'Two again', 'T@X', 'conflict'), (50, 'Fifty', NULL, NULL)
  ON CONFLICT (id) DO UPDATE SET full_name = EXCLUDED.full_name, note = EXCLUDED.note;
INSERT INTO acct VALUES (103, 'ignored', NULL, NULL) ON CONFLICT DO NOTHING;
SELECT * FROM side_by_side ORDER BY id;
-- MERGE: insert, update and delete in one statement
CREATE TABLE changes (id int, full_name text, del bool);
INSERT INTO changes VALUES (102, 'Two merged', false), (103, NULL, true), (60, 'Sixty', false);
MERGE INTO acct a USING changes c ON a.id = c.id
  WHEN MATCHED AND c.del THEN DELETE
  WHEN MATCHED THEN UPDATE SET full_name = c.full_name
  WHEN NOT MATCHED THEN INSERT VALUES (c.id, c.full_name, NULL, 'merged');
SELECT * FROM side_by_side ORDER BY id;
-- a rolled-back write is rolled back on both sides
BEGIN;
DELETE FROM acct;
SELECT count(*) AS target_rows_in_transaction FROM acct2;
ROLLBACK;
SELECT count(*) AS target_rows_after_rollback FROM acct2;
-- a statement that fails in the mirror fails whole, on both sides
ALTER TABLE acct2 ADD CONSTRAINT short_name CHECK (length(name) <= 10);
INSERT INTO acct VALUES (70, 'Seventy', NULL, NULL), (72, 'Seventy-two', NULL, NULL);
SELECT count(*) AS stored FROM acct WHERE id IN (70, 72);
ALTER TABLE acct2 DROP CONSTRAINT short_name;
-- TRUNCATE
TRUNCATE acct;
SELECT count(*) AS target_rows_after_truncate FROM acct2;
-- the sync's search_path qualifies nothing by accident: a writer with another path mirrors the same
SET search_path = util;
INSERT INTO synct.acct VALUES (80, 'Eighty', 'EIGHTY@X', NULL);
SET search_path = synct;
SELECT * FROM side_by_side ORDER BY id;
-- the cache follows ALTER TABLE of the target (a column the sync does not write, before its columns)
ALTER TABLE acct2 DROP COLUMN created;
ALTER TABLE acct2 ADD COLUMN extra int DEFAULT 7;
UPDATE acct SET note = 'after alter';
SELECT id, name, note, extra FROM acct2 ORDER BY id;

-- ---- key swaps within one statement (the source key is DEFERRABLE so that they are allowed;
-- ON CONFLICT cannot use a deferrable key, so there is no reverse mapping)
CREATE TABLE sw (id int, v text, PRIMARY KEY (id) DEFERRABLE);
CREATE TABLE sw2 (id int PRIMARY KEY, v text);
-- the reverse mapping would need ON CONFLICT on sw's deferrable key: refused at once
SELECT shift.sync_create('sw', 'sw', "into" => 'sw2');
SELECT shift.sync_create('sw', 'sw', "into" => 'sw2', reverse => false);
SELECT name, reverse_columns, reverse_expressions, relation_key FROM shift.sync WHERE name = 'sw';
INSERT INTO sw VALUES (1, 'a'), (2, 'b'), (3, 'c');
UPDATE sw SET id = 3 - id WHERE id IN (1, 2);
SELECT * FROM sw2 ORDER BY id;
UPDATE sw SET id = CASE id WHEN 1 THEN 2 WHEN 2 THEN 3 ELSE 1 END, v = v || '!';
SELECT (SELECT array_agg(s::text ORDER BY id) FROM sw s) = (SELECT array_agg(s::text ORDER BY id) FROM sw2 s) AS same,
       (SELECT string_agg(id || v, ' ' ORDER BY id) FROM sw2) AS target;
SELECT shift.sync_drop('sw');
-- a new sync into a table that holds rows is refused: they were written
-- without it (here by the sync just dropped) and may be stale
DELETE FROM sw WHERE id = 1;
SELECT shift.sync_create('sw', 'sw', "into" => 'sw2', reverse => false);
SELECT count(*) AS rows_kept FROM sw2;
TRUNCATE sw2;
SELECT shift.sync_create('sw', 'sw', "into" => 'sw2', reverse => false);
SELECT shift.sync_drop('sw');

-- ---- partitioned target
CREATE TABLE m (id int PRIMARY KEY, v text);
CREATE TABLE m_new (id int PRIMARY KEY, v text) PARTITION BY HASH (id);
CREATE TABLE m_new_0 PARTITION OF m_new FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE m_new_1 PARTITION OF m_new FOR VALUES WITH (MODULUS 2, REMAINDER 1);
-- (a select list with a comment between its items)
SELECT shift.sync_create('m', 'm', "into" => 'm_new', "select" => E'id -- the key, as it is\n, v');
SELECT expressions FROM shift.sync WHERE name = 'm';
INSERT INTO m SELECT g, 'v' || g FROM generate_series(1, 10) g;
UPDATE m SET id = id + 100 WHERE id <= 3;
DELETE FROM m WHERE id = 10;
SELECT (SELECT array_agg(x::text ORDER BY id) FROM m x) = (SELECT array_agg(x::text ORDER BY id) FROM m_new x) AS same,
       (SELECT count(*) FROM m_new_0) > 0 AND (SELECT count(*) FROM m_new_1) > 0 AS both_partitions;
SELECT shift.sync_drop('m');

-- ---- partitioned source: row triggers, so that writes made to a partition directly are mirrored
CREATE TABLE ps (id int, v text, PRIMARY KEY (id) DEFERRABLE) PARTITION BY RANGE (id);
CREATE TABLE ps_1 PARTITION OF ps FOR VALUES FROM (0) TO (100);
CREATE TABLE ps_2 PARTITION OF ps FOR VALUES FROM (100) TO (200);
CREATE TABLE pt (id bigint PRIMARY KEY, v text);
SELECT shift.sync_create('ps', 'ps', "into" => 'pt', "select" => 'id::bigint, v', reverse => false);
SELECT triggers FROM shift.sync_status WHERE name = 'ps';
SELECT tgrelid::regclass, tgname FROM pg_trigger WHERE tgname LIKE 'shift_sync_ps%' ORDER BY 1, 2;
CREATE VIEW ps_diff AS
  SELECT coalesce(s.id, t.id) AS id, s.v AS source, t.v AS target
    FROM ps s FULL JOIN pt t ON s.id = t.id WHERE s.v IS DISTINCT FROM t.v OR s.id IS NULL OR t.id IS NULL;
INSERT INTO ps VALUES (1, 'a'), (2, 'b'), (150, 'c'), (151, 'd');
INSERT INTO ps_2 VALUES (160, 'direct');
UPDATE ps_1 SET v = 'direct update' WHERE id = 1;
DELETE FROM ps_2 WHERE id = 151;
SELECT * FROM pt ORDER BY id;
-- a key swap within a partition: the second row's event must not delete the first row's new version
UPDATE ps SET id = 3 - id WHERE id IN (1, 2);
SELECT * FROM ps_diff;
-- a swap across partitions (each row moves: a DELETE and an INSERT per row)
UPDATE ps SET id = CASE id WHEN 1 THEN 150 ELSE 1 END WHERE id IN (1, 150);
SELECT * FROM ps_diff;
-- a row moved to another partition alone, and a plain delete after it
UPDATE ps SET id = 199 WHERE id = 2;
DELETE FROM ps WHERE id = 160;
SELECT * FROM ps_diff;
SELECT * FROM pt ORDER BY id;
-- a partition made after the sync, written directly: the row trigger was cloned to it
CREATE TABLE ps_3 PARTITION OF ps FOR VALUES FROM (200) TO (300);
INSERT INTO ps_3 VALUES (250, 'new partition');
UPDATE ps_3 SET v = 'new partition, updated' WHERE id = 250;
INSERT INTO ps_3 VALUES (251, 'gone');
DELETE FROM ps_3 WHERE id = 251;
SELECT * FROM ps_diff;
SELECT * FROM pt WHERE id >= 200 ORDER BY id;
-- TRUNCATE of one partition: its rows go from the copy, the others stay; a
-- partition made after the sync has no such trigger (the README says so)
INSERT INTO ps VALUES (5, 'ps_1'), (6, 'ps_1'), (170, 'ps_2');
SELECT tgrelid::regclass, tgname, tgtype & 2 = 2 AS before FROM pg_trigger
 WHERE tgname = 'shift_sync_ps_trn' ORDER BY 1;
TRUNCATE ps_1;
SELECT * FROM ps_diff;
SELECT count(*) FILTER (WHERE id < 100) AS copy_rows_of_ps_1, count(*) AS copy_rows FROM pt;
BEGIN ISOLATION LEVEL REPEATABLE READ;  -- the mirror then runs in a subtransaction
TRUNCATE ps_2, ps_1;
SELECT * FROM ps_diff;
ROLLBACK;
SELECT * FROM ps_diff;
-- a partition the creating role does not own gets no TRUNCATE trigger (only its
-- owner could drop it again): warned, and sync_drop then works as that role
CREATE ROLE regress_sync_partowner IN ROLE shift_operator;
GRANT CREATE, USAGE ON SCHEMA synct TO regress_sync_partowner;
CREATE TABLE po (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
CREATE TABLE po_1 PARTITION OF po FOR VALUES FROM (0) TO (100);
CREATE TABLE po_2 PARTITION OF po FOR VALUES FROM (100) TO (200);
CREATE TABLE po_v2 (id bigint PRIMARY KEY, v text);
ALTER TABLE po OWNER TO regress_sync_partowner;
ALTER TABLE po_1 OWNER TO regress_sync_partowner;
ALTER TABLE po_v2 OWNER TO regress_sync_partowner;
GRANT TRIGGER ON po_2 TO regress_sync_partowner;
SET ROLE regress_sync_partowner;
SELECT shift.sync_create('po', 'po', "into" => 'po_v2');
SELECT tgrelid::regclass, tgname FROM pg_trigger WHERE tgname = 'shift_sync_po_trn' ORDER BY 1;
SELECT shift.sync_drop('po');
RESET ROLE;
DROP TABLE po, po_v2;
REVOKE ALL ON SCHEMA synct FROM regress_sync_partowner;
DROP ROLE regress_sync_partowner;
-- TRUNCATE of the partitioned table itself
TRUNCATE ps;
SELECT count(*) AS target_rows FROM pt;
-- a partition detached keeps its trigger, which leaves the copy alone now (the
-- table is no longer the source's), and sync_drop finds it all the same
INSERT INTO ps VALUES (110, 'detached'), (120, 'detached');
ALTER TABLE ps DETACH PARTITION ps_2;
CREATE TABLE ps_2b PARTITION OF ps FOR VALUES FROM (100) TO (115);
INSERT INTO ps VALUES (110, 'stays');  -- key 110 is in the source again, and in ps_2 too
TRUNCATE ps_2;
SELECT * FROM pt ORDER BY id;
SELECT shift.sync_drop('ps');
SELECT count(*) AS triggers_left FROM pg_trigger WHERE tgname LIKE 'shift_sync_ps%';

-- ---- an UPDATE that keeps every key skips the delete of vanished keys: it must still see
-- key changes when the key is an expression, or in a partition whose columns lie elsewhere
CREATE TABLE kx (id int PRIMARY KEY, v text);
CREATE TABLE kx2 (k bigint PRIMARY KEY, v text);
SELECT shift.sync_create('kx', 'kx', "into" => 'kx2', columns => '{k,v}', "select" => 'id + 1000, v', reverse => false);
INSERT INTO kx VALUES (1, 'a'), (2, 'b'), (3, 'c');
UPDATE kx SET v = v || '!';
UPDATE kx SET id = id + 10 WHERE id = 2;
UPDATE kx SET v = 'x', id = 4 WHERE id = 3;
SELECT * FROM kx2 ORDER BY k;
SELECT shift.sync_drop('kx');
CREATE TABLE pk (id int, v text, PRIMARY KEY (id)) PARTITION BY RANGE (id);
CREATE TABLE pk_1 (junk int, v text, id int NOT NULL);
ALTER TABLE pk_1 DROP COLUMN junk;
ALTER TABLE pk ATTACH PARTITION pk_1 FOR VALUES FROM (0) TO (100);
CREATE TABLE pk2 (id bigint PRIMARY KEY, v text);
SELECT shift.sync_create('pk', 'pk', "into" => 'pk2', "select" => 'id::bigint, v', reverse => false);
INSERT INTO pk VALUES (1, 'a'), (2, 'b');
UPDATE pk SET v = v || '!';
UPDATE pk_1 SET id = 5 WHERE id = 1;
UPDATE pk SET id = 7, v = 'moved' WHERE id = 2;
SELECT * FROM pk2 ORDER BY id;
SELECT shift.sync_drop('pk');

-- ---- an UPDATE that keeps its keys updates the rows the target holds and adds the ones it lacks
-- (rows written before the sync existed), also when every column is a key column
CREATE TABLE ku (id int PRIMARY KEY, v text);
CREATE TABLE ku2 (id bigint PRIMARY KEY, v text);
INSERT INTO ku VALUES (1, 'a'), (2, 'b'), (3, 'c');
SELECT shift.sync_create('ku', 'ku', "into" => 'ku2', reverse => false);
UPDATE ku SET v = v || '!' WHERE id <= 2;
INSERT INTO ku VALUES (4, 'd');
UPDATE ku SET v = v || '?';
SELECT * FROM ku2 ORDER BY id;
-- transition tables large enough to spill to disk (tuples read back belong to their slots)
SET work_mem = '64kB';
INSERT INTO ku SELECT g, 'v' || g FROM generate_series(10, 20000) g;
UPDATE ku SET v = v || '+' WHERE id >= 10;
RESET work_mem;
SELECT count(*) AS ku2_rows, count(*) FILTER (WHERE v LIKE '%+') AS updated FROM ku2;
SELECT shift.sync_drop('ku');
CREATE TABLE ko (id int PRIMARY KEY);
CREATE TABLE ko2 (id bigint PRIMARY KEY);
INSERT INTO ko VALUES (1), (2);
SELECT shift.sync_create('ko', 'ko', "into" => 'ko2', reverse => false);
UPDATE ko SET id = id;
SELECT * FROM ko2 ORDER BY id;
SELECT shift.sync_drop('ko');

-- ---- refused table-level definitions
CREATE TABLE nokey (id int, v text);
CREATE TABLE nokey2 (id int, v text);
SELECT shift.sync_create('t', 'acct', "into" => 'nokey2');                -- target without a key
SELECT shift.sync_create('t', 'nokey', "into" => 'm');                    -- source without a key (the reverse mapping's)
SELECT shift.sync_create('t', 'nokey', "into" => 'nokey2', key => '{id}', reverse => false); -- not unique
SELECT shift.sync_create('t', 'm', "into" => 'acct2', columns => '{name,note}', "select" => 'v, v');  -- key not written
SELECT shift.sync_create('t', 'm', "into" => 'acct2', columns => '{id,nope}', "select" => 'id, v');
SELECT shift.sync_create('t', 'm', "into" => 'acct2', columns => '{id,name}', "select" => 'id');
SELECT shift.sync_create('t', 'm', "into" => 'acct2', columns => '{id,name}', "select" => 'id, v AS name');
SELECT shift.sync_create('t', 'm', "into" => 'acct2', columns => '{id,name}', "select" => '*');
SELECT shift.sync_create('t', 'm', "into" => 'acct2', columns => '{id,name}', "select" => 'id, v FROM m');
SELECT shift.sync_create('t', 'm', "into" => 'acct2', columns => '{id,name}', "select" => 'id, v -- the name');
SELECT shift.sync_create('t', 'm', "into" => 'acct2', columns => '{id,name}', "select" => 'id, no_such', reverse => false);
SELECT shift.sync_create('t', 'm', "into" => 'acct2', columns => '{id,name}', "select" => 'id, v',
                         reverse_set => 'v = name');
SELECT shift.sync_create('t', 'm', "into" => 'acct2', columns => '{id,name}', "select" => 'id, v',
                         reverse => false, reverse_select => 'id, name');
SELECT shift.sync_create('t', 'm', "into" => 'm');
SELECT shift.sync_create('t', 'm', "into" => 'side_by_side');
SELECT shift.sync_create('t', 'changes', "into" => 'nokey2', key => '{id}');
SELECT count(*) AS syncs_left_behind FROM shift.sync;

-- ---- the reverse mapping: a WARNING names the old table's columns it would not write
CREATE TABLE wide (id int PRIMARY KEY, a text, b text DEFAULT 'b default', c int);
CREATE TABLE narrow (id int PRIMARY KEY, a text);
SELECT shift.sync_create('w', 'wide', "into" => 'narrow');
SELECT shift.sync_drop('w');
-- covered by reverse_columns: no warning
SELECT shift.sync_create('w', 'wide', "into" => 'narrow', reverse_columns => '{id,a,b,c}',
                         reverse_select => 'id, a, upper(a), length(a)');
SELECT shift.sync_drop('w');

-- ---- privileges: the sync runs as the writing role
CREATE ROLE regress_sync_writer;
GRANT SELECT, INSERT, UPDATE, DELETE ON acct TO regress_sync_writer;
-- sync_create warns about roles that write the old table but not the new one
SELECT shift.sync_drop('a');
TRUNCATE acct2;                 -- a new sync starts from an empty copy
SELECT shift.sync_create('a', 'acct', "into" => 'acct2',
                         columns => '{id,name,email_lower,note}',
                         "select" => 'id::bigint, full_name, lower(acct.email), note',
                         reverse_columns => '{id,full_name,email,note}',
                         reverse_select => 'id::int, name, email_lower, note');
SET ROLE regress_sync_writer;
INSERT INTO acct VALUES (90, 'Ninety', NULL, NULL);
SELECT count(*) FROM acct WHERE id = 90;
-- shift.sync is neither readable nor writable by application roles: the trigger
-- reads it as the owner of pg_shift, and writes go through sync_create alone
SELECT name, kind FROM shift.sync WHERE name = 'a';
UPDATE shift.sync SET search_path = 'evil' WHERE name = 'a';
DELETE FROM shift.sync;
RESET ROLE;
GRANT SELECT, INSERT, UPDATE, DELETE ON acct2 TO regress_sync_writer;
SET ROLE regress_sync_writer;
INSERT INTO acct VALUES (90, 'Ninety', NULL, NULL);
RESET ROLE;
SELECT id, name FROM acct2 WHERE id = 90;
SELECT has_table_privilege('public', 'shift.sync', 'SELECT') AS public_reads,
       has_table_privilege('public', 'shift.sync', 'INSERT') OR has_table_privilege('public', 'shift.sync', 'UPDATE')
       OR has_table_privilege('public', 'shift.sync', 'DELETE') AS public_writes;

-- ---- sync_status: a disabled trigger shows
ALTER TABLE acct DISABLE TRIGGER shift_sync_a_upd;
SELECT name, enabled FROM shift.sync_status WHERE name = 'a';
ALTER TABLE acct ENABLE TRIGGER shift_sync_a_upd;
SELECT name, enabled FROM shift.sync_status WHERE name = 'a';
SELECT shift.sync_drop('a');
SELECT count(*) AS triggers_left FROM pg_trigger WHERE tgrelid IN ('acct'::regclass, 'acct2'::regclass);
SELECT count(*) AS syncs FROM shift.sync_status;

-- ======================================================================
-- shift_internal._select_list: one expression per element, split where the parser splits
-- ======================================================================
SELECT shift_internal._select_list('id::bigint, lower(email)');
SELECT shift_internal._select_list($q$'a, b', 'it''s, here', "odd, name", $d$x, y$d$, E'\', ,'$q$);
SELECT shift_internal._select_list('coalesce(a, b, ''c''), f(1, (2, 3), ARRAY[4, 5]), x::numeric(10, 2), CAST(y AS varchar(3))');
SELECT shift_internal._select_list('CASE WHEN a IN (1, 2) THEN 3 ELSE 4 END, ROW(1, 2), a[1:2], (a, b) = (c, d)');
SELECT shift_internal._select_list('a /* one, two */, b');
SELECT shift_internal._select_list(E'a -- first, or second\n, b');
SELECT shift_internal._select_list(E'f(1, -- a comma, here\n 2), b');
SELECT shift_internal._select_list('a -- trailing');
SELECT shift_internal._select_list('a AS x, b');
SELECT shift_internal._select_list('a x');
SELECT shift_internal._select_list('*');
SELECT shift_internal._select_list('t.*, a');
SELECT shift_internal._select_list('a FROM t');
SELECT shift_internal._select_list('a, ');
SELECT shift_internal._select_list('a); DROP TABLE acct; SELECT (1');
SELECT shift_internal._select_list('a, $1');
SELECT shift_internal._select_list('a ORDER BY 1');

-- ======================================================================
-- found in review: each of these was wrong before its fix
-- ======================================================================
-- a definition edited behind sync_create's back (only a superuser can) is
-- never run: the trigger runs what sync_create checked, compiled again or not,
-- and sync_status shows the row no longer matches
CREATE TABLE tamper (id int PRIMARY KEY, a text, b text);
SELECT shift.sync_create('tamper', 'tamper', set => 'b = upper(a)');
INSERT INTO tamper VALUES (1, 'x');
UPDATE shift.sync SET set_clause = 'b = pg_catalog.current_user' WHERE name = 'tamper';
INSERT INTO tamper VALUES (2, 'y');
ALTER TABLE tamper ADD COLUMN z int;     -- compiled again (as in any new session)
INSERT INTO tamper VALUES (3, 'z');
SELECT name, definition_ok FROM shift.sync_status WHERE name = 'tamper';
-- an edit of the checked copy itself no longer hashes to the trigger's digest: refused, not run
UPDATE shift.sync SET set_clause = 'b = upper(a)',
                      checked = jsonb_set(checked, '{set}', '"b = pg_catalog.current_user"')
 WHERE name = 'tamper';
ALTER TABLE tamper ADD COLUMN y int;
INSERT INTO tamper VALUES (4, 'w');
SELECT * FROM tamper ORDER BY id;
SELECT shift.sync_drop('tamper');
-- tables whose writes a trigger would miss, or whose rows a policy hides
CREATE TABLE inh_parent (id int PRIMARY KEY, v text);
CREATE TABLE inh_child () INHERITS (inh_parent);
CREATE TABLE inh_copy (id int PRIMARY KEY, v text);
SELECT shift.sync_create('inh', 'inh_parent', "into" => 'inh_copy');
CREATE TABLE part_src (id int, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE part_src_1 PARTITION OF part_src FOR VALUES FROM ('2020-01-01') TO ('2030-01-01');
CREATE TABLE part_copy (id int, at date, PRIMARY KEY (id, at));
SELECT shift.sync_create('leaf', 'part_src_1', "into" => 'part_copy');
CREATE TABLE rls_t (id int PRIMARY KEY, tenant text);
CREATE TABLE rls_copy (id int PRIMARY KEY, tenant text);
ALTER TABLE rls_t ENABLE ROW LEVEL SECURITY;
SELECT shift.sync_create('rls', 'rls_t', "into" => 'rls_copy');
-- a BEFORE trigger cannot read generated columns: they are not computed yet
CREATE TABLE gen (id int PRIMARY KEY, n int, dbl int GENERATED ALWAYS AS (n * 2) STORED, copy int);
SELECT shift.sync_create('gen', 'gen', set => 'copy = dbl');
-- an expression that writes its own table would re-enter the trigger
CREATE TABLE rec (id int PRIMARY KEY, v int, w int);
CREATE FUNCTION rec_touch(v int) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO rec VALUES (v + 1000, v, NULL) ON CONFLICT DO NOTHING;
  RETURN v;
END $$;
SELECT shift.sync_create('rec', 'rec', set => 'w = rec_touch(v)');
INSERT INTO rec VALUES (1, 1, NULL);
SELECT count(*) AS rows_written FROM rec;
SELECT shift.sync_drop('rec');
-- reuse compares the whole definition, defaults resolved
CREATE TABLE ru (id int PRIMARY KEY, a text);
CREATE TABLE ru2 (id bigint PRIMARY KEY, a text);
SELECT shift.sync_create('ru', 'ru', "into" => 'ru2');
SELECT shift.sync_create('ru', 'ru', "into" => 'ru2', if_exists => 'reuse');
SELECT shift.sync_create('ru', 'ru', "into" => 'ru2', "select" => 'id, upper(a)', if_exists => 'reuse');
-- whether the new key is the old key decides how a copy backfill locks what it reads
CREATE TABLE kf (id int PRIMARY KEY, code text NOT NULL);
CREATE TABLE kf_by_id (id bigint PRIMARY KEY, code text);
CREATE TABLE kf_by_code (code text PRIMARY KEY, id int);
SELECT shift.sync_create('kf1', 'kf', "into" => 'kf_by_id', "select" => '"id"::bigint, code');
SELECT shift.sync_create('kf2', 'kf', "into" => 'kf_by_code', reverse => false);
SELECT name, key_follows_source FROM shift.sync WHERE name LIKE 'kf%' ORDER BY 1;
SELECT shift_internal._plain_column(e) FROM unnest(ARRAY['id', '"Id"::bigint', 'id::numeric(12,2)', 'id + 1',
                                                 'lower(id)', 'id::bigint + 1']) e;
-- and a copy into a synced table must leave the rows the sync wrote alone
SELECT shift.backfill_create('kf_copy', 'kf', "into" => 'kf_by_id');
SELECT shift.backfill_create('kf_copy', 'kf', "into" => 'kf_by_id', on_conflict => 'update');
SELECT shift.backfill_create('kf_copy', 'kf', "into" => 'kf_by_id', on_conflict => 'nothing');
SELECT shift.backfill_drop('kf_copy');

-- ---- a backfill batch commits between the two statements that mirror an UPDATE
-- The UPDATE of the copy finds nothing (the batch's insert of the key is not
-- committed yet); then the batch commits; the insert of missing rows must still
-- write the key (ON CONFLICT updates it), or the copy keeps the batch's values.
-- Three sessions: this one holds a gate that the mirror's UPDATE statement waits
-- at (a statement trigger on the copy, which fires after that statement's snapshot
-- is taken), a batch session holds the uncommitted copy, a writer updates.
CREATE EXTENSION dblink SCHEMA synct;
CREATE TABLE race (id int PRIMARY KEY, v text);
CREATE TABLE race_v2 (id bigint PRIMARY KEY, v text);
INSERT INTO race VALUES (1, 'old');
SELECT shift.sync_create('race', 'race', "into" => 'race_v2');
CREATE FUNCTION race_gate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_advisory_lock_shared(4711); PERFORM pg_advisory_unlock_shared(4711); RETURN NULL; END $$;
CREATE TRIGGER race_gate BEFORE UPDATE ON race_v2 FOR EACH STATEMENT EXECUTE FUNCTION race_gate();
SELECT format('host=%s port=%s dbname=%s', split_part(current_setting('unix_socket_directories'), ',', 1),
              current_setting('port'), current_database()) AS conn \gset
SELECT dblink_connect('batch', :'conn'), dblink_connect('writer', :'conn');
SELECT pg_advisory_lock(4711);
SELECT dblink_exec('batch', 'BEGIN');
SELECT dblink_exec('batch', 'INSERT INTO synct.race_v2 VALUES (1, ''old'') ON CONFLICT DO NOTHING');
SELECT dblink_send_query('writer', 'UPDATE synct.race SET v = ''new'' WHERE id = 1');
DO $$
BEGIN
  FOR i IN 1..600 LOOP
    PERFORM pg_stat_clear_snapshot();
    EXIT WHEN EXISTS (SELECT FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND wait_event = 'advisory'
                        AND query LIKE 'UPDATE synct.race %');
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;
SELECT count(*) AS writer_at_the_gate FROM pg_stat_activity
 WHERE wait_event_type = 'Lock' AND wait_event = 'advisory' AND query LIKE 'UPDATE synct.race %';
SELECT dblink_exec('batch', 'COMMIT');
SELECT pg_advisory_unlock(4711);
SELECT * FROM dblink_get_result('writer') AS r(status text);
SELECT dblink_disconnect('batch'), dblink_disconnect('writer');
SELECT s.v AS source, t.v AS copy FROM race s JOIN race_v2 t USING (id);

-- ---- REPEATABLE READ and SERIALIZABLE writers next to a backfill batch
-- A writer updates a row an open batch has copied: the mirror's upsert waits
-- for the batch's key, and when the batch commits the row is one its snapshot
-- does not see, which these levels refuse (40001); the mirror is run again
-- with a new snapshot, so the writer commits and the copy holds its values.
CREATE TABLE rr (id int PRIMARY KEY, v text);
CREATE TABLE rr_v2 (id bigint PRIMARY KEY, v text);
INSERT INTO rr VALUES (1, 'old'), (2, 'old'), (3, 'old');
SELECT shift.sync_create('rr', 'rr', "into" => 'rr_v2');
SELECT dblink_connect('batch', :'conn'), dblink_connect('writer', :'conn');
-- rr_update(level, id): the batch copies row id and holds it; a writer at
-- level updates it, and must be waiting for the batch when the batch commits
CREATE FUNCTION rr_update(level text, row_id int, OUT writer_waited bigint, OUT writer text) LANGUAGE plpgsql AS $$
DECLARE
  upd text := format('UPDATE synct.rr SET v = %L WHERE id = %s', lower(level), row_id);
BEGIN
  PERFORM dblink_exec('batch', 'BEGIN');
  PERFORM dblink_exec('batch', format('INSERT INTO synct.rr_v2 VALUES (%s, ''old'')', row_id));
  PERFORM dblink_exec('writer', 'BEGIN ISOLATION LEVEL ' || level);
  PERFORM * FROM dblink('writer', 'SELECT count(*) FROM synct.rr') AS r(n bigint);  -- its snapshot
  PERFORM dblink_send_query('writer', upd);
  FOR i IN 1..600 LOOP
    PERFORM pg_stat_clear_snapshot();  -- else the first look is kept for the whole transaction
    EXIT WHEN EXISTS (SELECT FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query = upd);
    PERFORM pg_sleep(0.05);
  END LOOP;
  PERFORM pg_stat_clear_snapshot();
  writer_waited := (SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query = upd);
  PERFORM dblink_exec('batch', 'COMMIT');
  SELECT status INTO writer FROM dblink_get_result('writer') AS r(status text);
  PERFORM * FROM dblink_get_result('writer') AS r(status text);  -- the end of its results
  writer := writer || ', ' || dblink_exec('writer', 'COMMIT');
END $$;
SELECT * FROM rr_update('REPEATABLE READ', 1);
SELECT * FROM rr_update('SERIALIZABLE', 2);
-- A cancel (here statement_timeout) while such a writer's mirror waits: the
-- writer's transaction rolls back and its session stays usable (the mirror's
-- subtransaction must not be left open for the session to trip over)
SELECT dblink_exec('batch', 'BEGIN');
SELECT dblink_exec('batch', 'UPDATE synct.rr_v2 SET v = ''held'' WHERE id = 1');
SELECT dblink_exec('writer', 'SET default_transaction_isolation = ''repeatable read''');
SELECT dblink_exec('writer', 'SET statement_timeout = ''300ms''');
SELECT dblink_exec('writer', 'UPDATE synct.rr SET v = ''cancelled'' WHERE id = 1', false) AS cancelled;
SELECT dblink_error_message('writer') LIKE '%canceling statement due to statement timeout%' AS by_the_timeout;
SELECT * FROM dblink('writer', 'SELECT 1') AS r(still_usable int);
SELECT dblink_exec('writer', 'BEGIN'), dblink_exec('writer', 'ROLLBACK');
SELECT dblink_exec('writer', 'RESET statement_timeout'), dblink_exec('writer', 'RESET default_transaction_isolation');
SELECT dblink_exec('batch', 'ROLLBACK');
-- A writer deletes a row a batch copied after the writer's snapshot was taken:
-- the mirror's DELETE must see the copy as committed, not as the writer saw it.
SELECT dblink_exec('writer', 'BEGIN ISOLATION LEVEL REPEATABLE READ');
SELECT * FROM dblink('writer', 'SELECT count(*) FROM synct.rr_v2') AS r(copies_seen bigint);
SELECT dblink_exec('batch', 'INSERT INTO synct.rr_v2 VALUES (3, ''old'')');
SELECT dblink_exec('writer', 'DELETE FROM synct.rr WHERE id = 3');
SELECT dblink_exec('writer', 'COMMIT');
SELECT dblink_disconnect('batch'), dblink_disconnect('writer');
SELECT id, s.v AS source, t.v AS copy FROM rr s FULL JOIN rr_v2 t USING (id) ORDER BY id;
DROP EXTENSION dblink;

-- ---- a key changed to a value its type calls equal but spells differently
-- (numeric 1.0 to 1.00): the copy takes the new spelling, with and without
-- columns outside the key, one row and many
CREATE TABLE spell (id numeric PRIMARY KEY, v text);
CREATE TABLE spell_v2 (id numeric PRIMARY KEY, v text);
CREATE TABLE spellk (id numeric PRIMARY KEY);
CREATE TABLE spellk_v2 (id numeric PRIMARY KEY);
SELECT shift.sync_create('spell', 'spell', "into" => 'spell_v2'),
       shift.sync_create('spellk', 'spellk', "into" => 'spellk_v2');
INSERT INTO spell VALUES (1.0, 'a'), (2.0, 'b');
INSERT INTO spellk VALUES (1.0), (2.0);
UPDATE spell SET id = 1.00 WHERE id = 1;
UPDATE spellk SET id = 1.00 WHERE id = 1;
SELECT s.id::text AS source, t.id::text AS copy, t.v FROM spell s JOIN spell_v2 t USING (id) ORDER BY id;
SELECT s.id::text AS source, t.id::text AS copy FROM spellk s JOIN spellk_v2 t USING (id) ORDER BY id;
UPDATE spell SET id = id * 1.000, v = v || '!';
UPDATE spellk SET id = id * 1.000;
SELECT s.id::text AS source, t.id::text AS copy, t.v FROM spell s JOIN spell_v2 t USING (id) ORDER BY id;
SELECT s.id::text AS source, t.id::text AS copy FROM spellk s JOIN spellk_v2 t USING (id) ORDER BY id;

-- ---- MERGE: each action is mirrored (PostgreSQL fires the statement triggers
-- of every action MERGE names, each with the rows of that action), also when
-- the same MERGE deletes, updates, re-keys and inserts
CREATE TABLE mg (id int PRIMARY KEY, v text);
CREATE TABLE mg_v2 (id bigint PRIMARY KEY, v text);
SELECT shift.sync_create('mg', 'mg', "into" => 'mg_v2');
INSERT INTO mg SELECT g, 'old' FROM generate_series(1, 8) g;
MERGE INTO mg USING (VALUES (1, 'update'), (2, 'delete'), (9, 'insert'), (10, 'insert')) AS s (id, act)
   ON mg.id = s.id
 WHEN MATCHED AND s.act = 'delete' THEN DELETE
 WHEN MATCHED THEN UPDATE SET v = 'merged'
 WHEN NOT MATCHED THEN INSERT VALUES (s.id, 'inserted');
MERGE INTO mg USING (VALUES (3, 'rekey'), (4, 'update'), (5, 'delete'), (11, 'insert')) AS s (id, act)
   ON mg.id = s.id
 WHEN MATCHED AND s.act = 'delete' THEN DELETE
 WHEN MATCHED AND s.act = 'rekey' THEN UPDATE SET id = mg.id + 100, v = 'rekeyed'
 WHEN MATCHED THEN UPDATE SET v = 'merged again'
 WHEN NOT MATCHED THEN INSERT VALUES (s.id, 'inserted');
SELECT id, s.v AS source, t.v AS copy FROM mg s FULL JOIN mg_v2 t USING (id) ORDER BY id;
SELECT count(*) AS differences FROM shift.compare('mg', 'mg_v2');

-- ---- clean up, so that later suites can drop the extension
SELECT shift.sync_drop(name) FROM shift.sync ORDER BY name;
RESET search_path;
DROP SCHEMA synct, util CASCADE;
DROP OWNED BY regress_sync_nobody, regress_sync_writer;
DROP ROLE regress_sync_nobody, regress_sync_writer;
