-- sync_version: a column-level sync that knows which application version
-- wrote a row (new_version =>, pg_shift.version, the first schema of the
-- search_path, shift.writer_version()), and a backfill's writes, which are
-- never taken for a new version's, whatever its SET.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_shift;
\set SHOW_CONTEXT never
CREATE SCHEMA syncv;
GRANT USAGE ON SCHEMA syncv TO PUBLIC;
-- the schemas of two versions of the application
CREATE SCHEMA app_v1;
CREATE SCHEMA app_v2;
SET search_path = syncv;

-- ======================================================================
-- a backfill's writes are the old side's, whatever its SET
-- ======================================================================
-- A two-way sync whose set is volatile: every computed value differs from
-- the one before.  The backfill writes n only, to values set would not
-- compute again; the trigger must not take that for a new-version write
-- and overwrite o with reverse_set.
CREATE TABLE vol (id int PRIMARY KEY, o text, n text);
INSERT INTO vol SELECT g, 'old ' || g, NULL FROM generate_series(1, 1200) g;
CREATE TABLE vol_saved AS SELECT id, o FROM vol;
SELECT shift.sync_create('vol', 'vol', set => $$n = o || '#' || random()::text$$,
                         reverse_set => $$o = 'from n ' || n$$);
SELECT shift.backfill_create('vol', 'vol', set => $$n = o || '#' || random()::text$$,
                             batch_min => 100, batch_max => 500);
CALL shift.backfill_run('vol');
SELECT state, keys_done FROM shift.backfill_progress WHERE name = 'vol';
-- the old column is what it was, row for row; the new one was computed
SELECT count(*) AS old_changed FROM vol v JOIN vol_saved s USING (id) WHERE v.o IS DISTINCT FROM s.o;
SELECT count(*) AS new_not_computed FROM vol WHERE n IS NULL OR split_part(n, '#', 1) <> o;
SELECT shift.backfill_drop('vol');
-- an application writing only n is still a new-version writer (no new_version: the guess)
UPDATE vol SET n = 'typed' WHERE id = 1;
SELECT o, n FROM vol WHERE id = 1;
UPDATE vol v SET o = s.o FROM vol_saved s WHERE v.id = s.id AND v.id = 1;
SELECT shift.sync_drop('vol');

-- The same with versions, the backfill run from a session that says it is
-- the new version (by pg_shift.version and by its search_path): still the
-- old side.
UPDATE vol SET n = NULL;
SELECT shift.sync_create('vol', 'vol', set => $$n = o || '#' || random()::text$$,
                         reverse_set => $$o = 'from n ' || n$$, new_version => 'app_v2');
SELECT shift.backfill_create('vol2', 'vol', set => $$n = o || '#' || random()::text$$,
                             batch_min => 100, batch_max => 500);
SET pg_shift.version = 'app_v2';
SET search_path = app_v2, syncv;
SELECT shift.writer_version();
CALL shift.backfill_run('vol2');
RESET pg_shift.version;
SET search_path = syncv;
SELECT count(*) AS old_changed FROM vol v JOIN vol_saved s USING (id) WHERE v.o IS DISTINCT FROM s.o;
SELECT count(*) AS new_not_computed FROM vol WHERE n IS NULL OR split_part(n, '#', 1) <> o;
SELECT shift.backfill_drop('vol2');
SELECT shift.sync_drop('vol');

-- ======================================================================
-- the writer's version: shift.writer_version()
-- ======================================================================
SELECT shift.writer_version();                      -- the first schema of the search_path
SET search_path = app_v2, syncv;
SELECT shift.writer_version();
SET search_path = no_such_schema, app_v1, syncv;    -- the effective path: missing schemas skipped
SELECT shift.writer_version(), current_schemas(false);
SET search_path = no_such_schema;
SELECT shift.writer_version() IS NULL AS no_version;
SET pg_shift.version = 'app_v2';                    -- the setting wins over the path
SELECT shift.writer_version();
SET pg_shift.version = '';                          -- empty: the path again
SET search_path = app_v1, syncv;
SELECT shift.writer_version();
BEGIN;
SET LOCAL pg_shift.version = 'app_v2';
SELECT shift.writer_version();
ROLLBACK;
SELECT shift.writer_version();
RESET pg_shift.version;
-- the path names schemas: once app_v1 is renamed, the first one is syncv
-- (a cached answer would still say app_v1), and app_v1 again once it is back
SET search_path = app_v1, syncv;
ALTER SCHEMA app_v1 RENAME TO app_v1_renamed;
SELECT shift.writer_version();
ALTER SCHEMA app_v1_renamed RENAME TO app_v1;
SELECT shift.writer_version();
SHOW pg_shift.version;
SET search_path = syncv;

-- ======================================================================
-- add column with up: one way, with the new version named
-- ======================================================================
CREATE TABLE items (id int PRIMARY KEY, category text, category_new text);
SELECT shift.sync_create('items', 'items', set => $$category_new = 'win-' || category$$,
                         new_version => 'app_v2');
SELECT new_version, old_version, definition_ok FROM shift.sync_status WHERE name = 'items';
-- the old version (the default: the search_path starts with syncv) gets set
INSERT INTO items VALUES (1, 'games', NULL), (2, 'books', 'ignored');
-- the new version by pg_shift.version: what it writes into the new column is kept
SET pg_shift.version = 'app_v2';
INSERT INTO items VALUES (3, 'new-category', 'toys');
UPDATE items SET category_new = 'toys' WHERE id = 1;
RESET pg_shift.version;
SELECT * FROM items ORDER BY id;
-- the new version by its search_path
SET search_path = app_v2, syncv;
UPDATE items SET category_new = 'boardgames' WHERE id = 2;
SET search_path = syncv;
-- the old version writes again: set applies to its rows
UPDATE items SET category = 'games2' WHERE id = 1;
SELECT * FROM items ORDER BY id;
-- the version changes between statements of one transaction, and back
BEGIN;
SET LOCAL pg_shift.version = 'app_v2';
UPDATE items SET category_new = 'kept' WHERE id = 3;
SET LOCAL pg_shift.version = 'app_v1';
UPDATE items SET category_new = 'overwritten' WHERE id = 2;
COMMIT;
SELECT * FROM items ORDER BY id;
-- a simple view in the new version's schema: the writer is the new version
CREATE VIEW app_v2.items AS SELECT id, category_new AS category FROM syncv.items;
SET search_path = app_v2, syncv;
INSERT INTO items VALUES (4, 'puzzles');
SET search_path = syncv;
SELECT * FROM items WHERE id = 4;
DROP VIEW app_v2.items;
SELECT shift.sync_drop('items');

-- ======================================================================
-- two way, both versions named
-- ======================================================================
TRUNCATE items;
SELECT shift.sync_create('items2', 'items', set => 'category_new = upper(category)',
                         reverse_set => 'category = lower(category_new)',
                         new_version => 'app_v2', old_version => 'app_v1');
SELECT new_version, old_version FROM shift.sync_status WHERE name = 'items2';
SELECT checked ? 'new_version' AND checked ? 'old_version' AS versions_sealed
  FROM shift.sync WHERE name = 'items2';
SET search_path = app_v1, syncv;
INSERT INTO items VALUES (1, 'games', NULL);
-- an old writer that writes the new column too gets set: its value is not kept
UPDATE items SET category_new = 'X' WHERE id = 1;
SET search_path = app_v2, syncv;
-- the new version gets reverse_set and keeps what it wrote, even both sides
INSERT INTO items VALUES (2, 'ignored', 'TOYS');
UPDATE items SET category = 'ignored too', category_new = 'BOOKS' WHERE id = 1;
SET search_path = syncv;
SELECT * FROM items ORDER BY id;
-- any other version is an old one
SET pg_shift.version = 'app_v9';
UPDATE items SET category = 'misc' WHERE id = 2;
RESET pg_shift.version;
SELECT * FROM items ORDER BY id;
SELECT shift.sync_drop('items2');

-- ======================================================================
-- what sync_create refuses, and reuse
-- ======================================================================
CREATE TABLE items_v2 (LIKE items INCLUDING ALL);
SELECT shift.sync_create('bad', 'items', "into" => 'items_v2', new_version => 'app_v2');
SELECT shift.sync_create('bad', 'items', set => 'category_new = category', old_version => 'app_v1');
SELECT shift.sync_create('bad', 'items', set => 'category_new = category', new_version => '');
SELECT shift.sync_create('bad', 'items', set => 'category_new = category', new_version => repeat('v', 64));
SELECT shift.sync_create('bad', 'items', set => 'category_new = category', new_version => 'a', old_version => 'a');
SELECT count(*) AS none_made FROM shift.sync WHERE name = 'bad';
SELECT shift.sync_create('r', 'items', set => 'category_new = category', new_version => 'app_v2');
SELECT shift.sync_create('r', 'items', set => 'category_new = category', new_version => 'app_v2',
                         if_exists => 'reuse');
SELECT shift.sync_create('r', 'items', set => 'category_new = category', new_version => 'app_v3',
                         if_exists => 'reuse');
-- the digest covers the version: editing it by hand is refused by the trigger
UPDATE shift.sync SET checked = jsonb_set(checked, '{new_version}', '"app_v1"') WHERE name = 'r';
INSERT INTO items VALUES (9, 'x', NULL);
SELECT shift.sync_drop('r');
-- a sync without versions keeps the digest it had: no version keys
SELECT shift.sync_create('plain', 'items', set => 'category_new = category');
SELECT checked ? 'new_version' AS has_new_version FROM shift.sync WHERE name = 'plain';
SELECT shift.sync_drop('plain');

DROP TABLE items, items_v2, vol, vol_saved;
DROP SCHEMA app_v1, app_v2;
RESET search_path;
