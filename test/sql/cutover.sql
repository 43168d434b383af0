-- cutover: shift.cutover and shift.cutover_revert in one session (lock
-- waits, retries and long transactions need two sessions: integration
-- tests).  Renames, the reverse sync, views, foreign keys, sequences,
-- grants and owner, the check, and the refusals.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_shift;
\set SHOW_CONTEXT never
-- a schema of its own: other suites have tables of the same names
CREATE SCHEMA cut;
GRANT USAGE ON SCHEMA cut TO PUBLIC;
SET search_path = cut;
CREATE ROLE regress_cut_owner;
CREATE ROLE regress_cut_app;
CREATE ROLE regress_cut_reader;
CREATE TEMP VIEW rels AS
  SELECT c.oid::regclass AS rel, pg_get_userbyid(c.relowner) AS owner, c.relacl
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname IN ('cut', 'v2') AND c.relkind IN ('r', 'v', 'S');

-- ---- the old table: serial int key, grants, an owner of its own, views, a foreign key into it
CREATE TABLE orders (id serial PRIMARY KEY, customer text NOT NULL, amount int);
CREATE TABLE lines (id int PRIMARY KEY, order_id int REFERENCES orders (id), qty int);
ALTER TABLE orders OWNER TO regress_cut_owner;
GRANT SELECT, INSERT, UPDATE, DELETE ON orders TO regress_cut_app;
GRANT SELECT ON orders TO regress_cut_reader;
GRANT USAGE ON SEQUENCE orders_id_seq TO regress_cut_app;
GRANT SELECT, INSERT ON TABLE lines TO regress_cut_app;
-- a view whose columns keep their types (CREATE OR REPLACE suffices)
CREATE VIEW order_customers AS SELECT id::int AS id, customer FROM orders;
-- a view whose column types change (dropped and made again: owner, grants and comment kept)
CREATE VIEW big_orders AS SELECT id, customer, amount FROM orders WHERE amount > 100;
ALTER VIEW big_orders OWNER TO regress_cut_owner;
GRANT SELECT ON big_orders TO regress_cut_reader;
COMMENT ON VIEW big_orders IS 'orders over 100';
INSERT INTO orders (customer, amount) VALUES ('a', 10), ('b', 200), ('c', 300);
INSERT INTO lines VALUES (1, 1, 5), (2, 2, 6);

-- ---- the new table, in another schema: bigint, the same sequence as its default
CREATE SCHEMA v2;
CREATE TABLE v2.orders (id bigint PRIMARY KEY DEFAULT nextval('orders_id_seq'), customer text NOT NULL,
                        amount bigint);
SELECT shift.sync_create('ord', 'orders', "into" => 'v2.orders');
INSERT INTO v2.orders SELECT * FROM orders;   -- the backfill
INSERT INTO orders (customer, amount) VALUES ('d', 400);
SELECT * FROM v2.orders ORDER BY id;

-- ---- refusals before anything changes
SELECT * FROM shift.cutover('no_such_sync');
SELECT * FROM shift.cutover_revert('ord');                  -- not cut over
SELECT * FROM shift.cutover('ord', "check" => 'everything');
SELECT * FROM shift.cutover('ord', check_rows => 0);
SELECT * FROM shift.cutover('ord', retries => -1);
CREATE TABLE taken (x int);
SELECT * FROM shift.cutover('ord', archive => 'taken');      -- the archive name is taken
CREATE TABLE orders_archive (x int);
SELECT * FROM shift.cutover('ord');                         -- the default one too
DROP TABLE orders_archive;
-- a backfill job not finished on either table would follow it to the archive: refused, naming it
SELECT shift.backfill_create('ord_fill', 'orders', "into" => 'v2.orders', on_conflict => 'nothing');
SELECT * FROM shift.cutover('ord');
SELECT shift.backfill_pause('ord_fill');
SELECT * FROM shift.cutover('ord');                         -- paused is not finished
SELECT shift.backfill_drop('ord_fill');
-- one run by pg_cron (backfill_run's schedule => recorded it; pg_cron lives in
-- another database): the refusal names the schedule and how to remove it
SELECT shift.backfill_create('ord_cron', 'orders', "into" => 'v2.orders', on_conflict => 'nothing');
CALL shift.backfill_run('ord_cron', max_batches => 0, schedule => 'ord-copy');
SELECT state, schedule FROM shift.backfill WHERE name = 'ord_cron';
SELECT * FROM shift.cutover('ord');
-- and dropping the job says how to remove that schedule there
SET client_min_messages = notice;
SELECT shift.backfill_drop('ord_cron');
SET client_min_messages = warning;
SELECT shift.backfill_create('ord_fix', 'v2.orders', set => 'amount = amount');
SELECT * FROM shift.cutover('ord');                         -- on the new table too
SELECT shift.backfill_cancel('ord_fix');                    -- cancelled: no longer in the way
SELECT shift.backfill_drop('ord_fix');
SELECT rel, owner FROM rels WHERE rel::text IN ('orders', 'v2.orders') ORDER BY 1;

-- ---- the check: a difference the sync did not make fails the cut-over ('recent', the default,
-- and 'count'); 'none' skips it.  A cut-over that passes is rolled back here.
ALTER TABLE orders DISABLE TRIGGER shift_sync_ord_upd;
UPDATE orders SET amount = amount + 1 WHERE id = 4;
ALTER TABLE orders ENABLE TRIGGER shift_sync_ord_upd;
SELECT * FROM shift.cutover('ord');
BEGIN;
SELECT live, archived FROM shift.cutover('ord', "check" => 'count');   -- same counts: passes
ROLLBACK;
UPDATE orders SET amount = amount - 1 WHERE id = 4;
ALTER TABLE orders DISABLE TRIGGER shift_sync_ord_del;
DELETE FROM orders WHERE id = 3;
ALTER TABLE orders ENABLE TRIGGER shift_sync_ord_del;
SELECT * FROM shift.cutover('ord', "check" => 'count');
SELECT * FROM shift.cutover('ord', "check" => 'recent');
BEGIN;
SELECT live, archived FROM shift.cutover('ord', check_rows => 1);      -- only the last row: passes
ROLLBACK;
BEGIN;
SELECT live, archived FROM shift.cutover('ord', "check" => 'none');
ROLLBACK;
DELETE FROM v2.orders WHERE id = 3;                                    -- repaired
SELECT rel FROM rels WHERE rel::text LIKE '%orders%' ORDER BY 1;
SELECT direction, cutover_at IS NULL AS not_cut_over, archive_name FROM shift.sync_status WHERE name = 'ord';

-- ---- the cut-over
SELECT attempts, live, archived, views, foreign_keys, to_validate, sequences
  FROM shift.cutover('ord', "check" => 'recent');
SELECT name, direction, source, destination, triggers, enabled, archive_name, cutover_at IS NOT NULL AS cut_over
  FROM shift.sync_status;
-- the names: the new table has the old one's, the old one is the archive
SELECT rel, owner, relacl FROM rels WHERE rel::text IN ('orders', 'orders_archive', 'v2.orders') ORDER BY 1;
SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'id';
-- views follow: CREATE OR REPLACE kept the first, the second was made again as it was
SELECT rel, owner, relacl, obj_description(rel, 'pg_class') AS comment
  FROM rels WHERE rel::text IN ('big_orders', 'order_customers') ORDER BY 1;
SELECT pg_get_viewdef('big_orders') LIKE '%FROM orders%' AS reads_orders,
       (SELECT format_type(atttypid, atttypmod) FROM pg_attribute
         WHERE attrelid = 'big_orders'::regclass AND attname = 'id') AS id_type;
SELECT refobjid::regclass AS reads FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
 WHERE r.ev_class IN ('big_orders'::regclass, 'order_customers'::regclass) AND d.refobjid <> r.ev_class
   AND d.refclassid = 'pg_class'::regclass GROUP BY 1 ORDER BY 1;
-- the foreign key points at the live table, NOT VALID until validated
SELECT conname, confrelid::regclass, convalidated FROM pg_constraint WHERE conrelid = 'lines'::regclass AND contype = 'f';
ALTER TABLE lines VALIDATE CONSTRAINT lines_order_id_fkey;
-- the sequence: bigint now, owned by the live table, past every value either table holds
SELECT seqtypid::regtype FROM pg_sequence WHERE seqrelid = 'orders_id_seq'::regclass;
SELECT pg_get_serial_sequence('orders', 'id') AS live_seq, pg_get_serial_sequence('orders_archive', 'id') AS archive_seq;

-- ---- after the cut-over: writes to the live table reach the archive
SET ROLE regress_cut_app;
INSERT INTO orders (customer, amount) VALUES ('e', 500) RETURNING id;
UPDATE orders SET amount = 201 WHERE id = 2;
UPDATE orders SET id = 40 WHERE id = 4;                       -- a key change
INSERT INTO lines VALUES (3, 40, 1);
RESET ROLE;
DELETE FROM orders WHERE id = 5;
SELECT 'live' AS side, * FROM orders UNION ALL SELECT 'archive', * FROM orders_archive ORDER BY 2, 1;
-- the check now runs the other way
ALTER TABLE orders DISABLE TRIGGER shift_sync_ord_ins;
INSERT INTO orders (customer, amount) VALUES ('lost', 0);
ALTER TABLE orders ENABLE TRIGGER shift_sync_ord_ins;
SELECT * FROM shift.cutover_revert('ord');
DELETE FROM orders WHERE customer = 'lost';
-- cutting over twice is refused (the message names when: masked here)
DO $$
BEGIN
  PERFORM shift.cutover('ord');
EXCEPTION WHEN object_not_in_prerequisite_state THEN
  RAISE WARNING '%', regexp_replace(SQLERRM, '\(at [^)]*\)', '(at ...)');
END
$$;

-- ---- cutover_revert: refused while a backfill is not finished on either table
SELECT shift.backfill_create('live_fix', 'orders', set => 'amount = amount');
SELECT * FROM shift.cutover_revert('ord');
SELECT shift.backfill_drop('live_fix');
-- ---- cutover_revert: the names and the forward direction come back
SELECT attempts, live, archived, views, foreign_keys, to_validate, sequences FROM shift.cutover_revert('ord');
SELECT name, direction, source, destination, triggers, archive_name, cutover_at FROM shift.sync_status;
SELECT rel, owner FROM rels WHERE rel::text IN ('orders', 'orders_archive', 'v2.orders') ORDER BY 1;
SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'id';
SELECT conname, confrelid::regclass, convalidated FROM pg_constraint WHERE conrelid = 'lines'::regclass AND contype = 'f';
SELECT pg_get_serial_sequence('orders', 'id') AS live_seq;
SELECT * FROM orders ORDER BY id;
-- forward again: writes to orders reach v2.orders
INSERT INTO orders (customer, amount) VALUES ('f', 600);
SELECT (SELECT array_agg(o::text ORDER BY id) FROM orders o) = (SELECT array_agg(o::text ORDER BY id) FROM v2.orders o)
       AS same;

-- ---- cut over again, then the contract step: drop the sync, then the archive
SELECT live, archived FROM shift.cutover('ord');
SELECT shift.sync_drop('ord');
DROP TABLE orders_archive;                                  -- the sequence stays: the live table owns it
INSERT INTO orders (customer, amount) VALUES ('g', 700) RETURNING id > 6 AS fresh_id;
SELECT count(*) AS syncs FROM shift.sync;

-- ---- a view that another view depends on cannot be made again: a clear error, nothing changed
CREATE TABLE items (id int PRIMARY KEY, price int);
CREATE TABLE items2 (id bigint PRIMARY KEY, price bigint);
CREATE VIEW item_prices AS SELECT id, price FROM items;
CREATE VIEW cheap_items AS SELECT id FROM item_prices WHERE price < 10;
SELECT shift.sync_create('it', 'items', "into" => 'items2');
SELECT * FROM shift.cutover('it');
SELECT rel FROM rels WHERE rel::text LIKE 'item%' ORDER BY 1;
SELECT direction FROM shift.sync WHERE name = 'it';
SELECT shift.sync_drop('it');

-- ---- identity columns, and a table whose new version lives in the same schema
CREATE TABLE tags (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, tag text);
INSERT INTO tags (tag) VALUES ('x'), ('y');
CREATE TABLE tags_new (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, tag text);
SELECT shift.sync_create('tags', 'tags', "into" => 'tags_new');
INSERT INTO tags_new SELECT * FROM tags;
SELECT live, archived, sequences FROM shift.cutover('tags', archive => 'tags_old');
INSERT INTO tags (tag) VALUES ('z') RETURNING id;
SELECT * FROM tags_old ORDER BY id;                          -- the reverse sync writes the identity column
SELECT live, archived FROM shift.cutover_revert('tags');
SELECT rel FROM rels WHERE rel::text LIKE 'tags%' AND rel::text NOT LIKE '%seq' ORDER BY 1;
SELECT shift.sync_drop('tags');

-- ---- refused: column-level syncs, syncs without a reverse mapping
CREATE TABLE c (id int PRIMARY KEY, a text, b text);
SELECT shift.sync_create('col', 'c', set => 'b = a');
SELECT * FROM shift.cutover('col');
CREATE TABLE c2 (id int PRIMARY KEY, a text, b text);
SELECT shift.sync_create('oneway', 'c', "into" => 'c2', reverse => false);
SELECT * FROM shift.cutover('oneway');
SELECT rel FROM rels WHERE rel::text LIKE 'c%' ORDER BY 1;

-- ---- found in review: each of these was wrong before its fix
-- a reverse mapping that qualifies columns with the new table's name still
-- works once that table has taken the old one's name
CREATE TABLE q (id int PRIMARY KEY, v text);
CREATE TABLE q_new (id bigint PRIMARY KEY, v text);
INSERT INTO q VALUES (1, 'a');
SELECT shift.sync_create('q', 'q', "into" => 'q_new', reverse_select => 'q_new.id::int, q_new.v');
INSERT INTO q_new VALUES (1, 'a');       -- the backfill
SELECT live, archived FROM shift.cutover('q');
INSERT INTO q VALUES (2, 'b');
SELECT * FROM q_archive ORDER BY id;
SELECT live FROM shift.cutover_revert('q');
-- a partitioned table referencing it cannot be re-pointed: refused before any lock
CREATE TABLE pr (id int PRIMARY KEY);
CREATE TABLE pr_new (id bigint PRIMARY KEY);
CREATE TABLE pr_kid (id int, pr_id int REFERENCES pr (id)) PARTITION BY RANGE (id);
SELECT shift.sync_create('pr', 'pr', "into" => 'pr_new');
SELECT * FROM shift.cutover('pr');
-- what stays with the old table is named
CREATE TABLE lb (id int PRIMARY KEY, v text);
CREATE TABLE lb_new (id int PRIMARY KEY, v text);
CREATE FUNCTION lb_touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER lb_audit BEFORE UPDATE ON lb FOR EACH ROW EXECUTE FUNCTION lb_touch();
SELECT shift.sync_create('lb', 'lb', "into" => 'lb_new');
SET client_min_messages = warning;
SELECT live FROM shift.cutover('lb');
SELECT * FROM shift.cutover_pending('lb');

-- ---- into a partitioned table: after the cut-over the reverse sync fires from
-- it, and a TRUNCATE of one of its partitions reaches the archive too; the
-- revert takes those triggers off again
CREATE TABLE pt_old (id int PRIMARY KEY, v text);
CREATE TABLE pt_new (id bigint PRIMARY KEY, v text) PARTITION BY RANGE (id);
CREATE TABLE pt_new_1 PARTITION OF pt_new FOR VALUES FROM (0) TO (100);
CREATE TABLE pt_new_2 PARTITION OF pt_new FOR VALUES FROM (100) TO (200);
SELECT shift.sync_create('pt', 'pt_old', "into" => 'pt_new');
INSERT INTO pt_old VALUES (1, 'a'), (2, 'b'), (150, 'c');
SELECT live, archived FROM shift.cutover('pt');
SELECT tgrelid::regclass, tgname FROM pg_trigger
 WHERE tgname LIKE 'shift_sync_pt%' AND tgparentid = 0 ORDER BY 1, 2;
TRUNCATE pt_new_1;
SELECT * FROM pt_old_archive ORDER BY id;
SELECT triggers, enabled FROM shift.sync_status WHERE name = 'pt';
SELECT live FROM shift.cutover_revert('pt');
SELECT tgrelid::regclass, tgname FROM pg_trigger
 WHERE tgname LIKE 'shift_sync_pt%' AND tgparentid = 0 ORDER BY 1, 2;

-- ---- clean up, so that later suites can drop the extension
SELECT shift.sync_drop(name) FROM shift.sync ORDER BY name;
RESET search_path;
DROP SCHEMA cut, v2 CASCADE;
DROP OWNED BY regress_cut_owner, regress_cut_app, regress_cut_reader;
DROP ROLE regress_cut_owner, regress_cut_app, regress_cut_reader;
