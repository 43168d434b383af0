-- lint: every rule with a case that reports and one that does not,
-- statement and line numbers, parse errors with their position, odd
-- identifiers, lock_timeout tracking, the new-table exemption,
-- shift.lint_script (parts, db:ddl timeouts, phases) and privileges.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_shift;
\set SHOW_CONTEXT never
CREATE SCHEMA lint_test;
SET search_path = lint_test;

CREATE TABLE users (id int PRIMARY KEY, email varchar(10), name text, n int,
                    born timestamp, ok int NOT NULL, score int);
ALTER TABLE users ADD CONSTRAINT score_nn CHECK (score IS NOT NULL AND score >= 0);
CREATE INDEX users_email ON users (email);
CREATE TABLE orders (id int PRIMARY KEY, user_id int, total numeric);
CREATE UNIQUE INDEX orders_total ON orders (total);
CREATE MATERIALIZED VIEW mv AS SELECT 1 AS x;
CREATE UNIQUE INDEX mv_x ON mv (x);
CREATE TYPE mood AS ENUM ('sad');
CREATE DOMAIN positive AS int CHECK (VALUE > 0);
CREATE DOMAIN plain_int AS int;
CREATE FUNCTION my_volatile() RETURNS int LANGUAGE sql VOLATILE AS 'SELECT 1';
CREATE FUNCTION my_immutable() RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT 1';
CREATE SEQUENCE some_seq;

-- rule checks with a lock_timeout in force, so that only the rule shows
CREATE FUNCTION l(sql text, lt text DEFAULT '1s')
RETURNS TABLE (st int, ln int, severity text, rule text, lock text, object text, message text)
LANGUAGE sql AS $$ SELECT statement, line, severity, rule, lock, object, message FROM shift.lint(sql, lt) $$;
CREATE FUNCTION rules(sql text, lt text DEFAULT '1s') RETURNS text
LANGUAGE sql AS $$
  SELECT coalesce(string_agg(statement || ':' || severity || ':' || rule, ' ' ORDER BY statement, rule), '-')
    FROM shift.lint(sql, lt) $$;

-- ---- index-not-concurrent, drop-index-not-concurrent
SELECT * FROM l('CREATE INDEX users_name ON users (name)');
SELECT rules('CREATE INDEX CONCURRENTLY users_name ON users (name)') AS concurrently;
SELECT * FROM l('DROP INDEX users_email');
SELECT rules('DROP INDEX CONCURRENTLY users_email') AS concurrently;

-- ---- set-not-null: a scan, unless a validated CHECK (col IS NOT NULL) proves it
SELECT * FROM l('ALTER TABLE users ALTER COLUMN n SET NOT NULL');
SELECT * FROM l($$ALTER TABLE users ADD CONSTRAINT n_nn CHECK (n IS NOT NULL) NOT VALID;
ALTER TABLE users ALTER COLUMN n SET NOT NULL$$);
SELECT rules($$ALTER TABLE users ADD CONSTRAINT n_nn CHECK (n IS NOT NULL) NOT VALID;
ALTER TABLE users VALIDATE CONSTRAINT n_nn;
ALTER TABLE users ALTER COLUMN n SET NOT NULL$$) AS validated_first;
SELECT rules($$ALTER TABLE users ADD CHECK (n IS NOT NULL AND n > 0) NOT VALID;
ALTER TABLE users VALIDATE CONSTRAINT users_n_check;
ALTER TABLE users ALTER n SET NOT NULL$$) AS unnamed_check_validated;
SELECT rules('ALTER TABLE users ALTER COLUMN score SET NOT NULL') AS catalog_check_proves_it;
SELECT rules('ALTER TABLE users ALTER COLUMN ok SET NOT NULL') AS already_not_null;

-- ---- column-type-rewrite, column-type-change (decided from the catalog)
SELECT * FROM l('ALTER TABLE users ALTER COLUMN n TYPE bigint');
SELECT * FROM l('ALTER TABLE users ALTER COLUMN email TYPE varchar(5)');
SELECT * FROM l('ALTER TABLE users ALTER COLUMN n TYPE text USING n::text');
SELECT * FROM l('ALTER TABLE users ALTER COLUMN email TYPE varchar(20)');
SELECT rules('ALTER TABLE users ALTER COLUMN name TYPE varchar') AS text_to_varchar,
       rules('ALTER TABLE users ALTER COLUMN email TYPE text') AS varchar_to_text,
       rules('ALTER TABLE users ALTER COLUMN n TYPE positive') AS to_checked_domain,
       rules('ALTER TABLE users ALTER COLUMN n TYPE plain_int') AS to_plain_domain;
SELECT * FROM l('ALTER TABLE no_such_table ALTER COLUMN x TYPE bigint');
SELECT * FROM l('ALTER TABLE users ALTER COLUMN n TYPE no_such_type');

-- ---- add-column-rewrite: volatility comes from pg_proc
SELECT * FROM l('ALTER TABLE users ADD COLUMN created timestamptz DEFAULT clock_timestamp()');
SELECT * FROM l('ALTER TABLE users ADD COLUMN u uuid DEFAULT gen_random_uuid(), ADD COLUMN r float8 DEFAULT random()');
SELECT * FROM l('ALTER TABLE users ADD COLUMN s serial, ADD COLUMN b bigserial');
SELECT * FROM l('ALTER TABLE users ADD COLUMN i int GENERATED ALWAYS AS IDENTITY');
SELECT * FROM l('ALTER TABLE users ADD COLUMN g int GENERATED ALWAYS AS (n * 2) STORED');
SELECT * FROM l($$ALTER TABLE users ADD COLUMN q int DEFAULT nextval('some_seq')$$);
SELECT * FROM l('ALTER TABLE users ADD COLUMN p positive');
SELECT * FROM l('ALTER TABLE users ADD COLUMN v int DEFAULT my_volatile()');
SELECT * FROM l('ALTER TABLE users ADD COLUMN w int DEFAULT no_such_function()');
SELECT rules('ALTER TABLE users ADD COLUMN c timestamptz DEFAULT now()') AS stable_default,
       rules('ALTER TABLE users ADD COLUMN c int DEFAULT my_immutable()') AS immutable_default,
       rules($$ALTER TABLE users ADD COLUMN c text DEFAULT 'x'$$) AS constant_default,
       rules('ALTER TABLE users ADD COLUMN c plain_int') AS plain_domain;

-- ---- add-column-not-null
SELECT * FROM l('ALTER TABLE users ADD COLUMN z int NOT NULL');
SELECT rules('ALTER TABLE users ADD COLUMN z int NOT NULL DEFAULT 0') AS with_default;

-- ---- constraint-not-valid
SELECT * FROM l('ALTER TABLE orders ADD CONSTRAINT orders_user FOREIGN KEY (user_id) REFERENCES users (id)');
SELECT * FROM l('ALTER TABLE orders ADD CONSTRAINT positive_total CHECK (total > 0)');
SELECT * FROM l('ALTER TABLE orders ADD COLUMN buyer int REFERENCES users (id)');
SELECT * FROM l('ALTER TABLE orders ADD COLUMN qty int CHECK (qty > 0)');
SELECT rules('ALTER TABLE orders ADD CONSTRAINT orders_user FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID') AS fk_not_valid,
       rules('ALTER TABLE orders ADD CONSTRAINT positive_total CHECK (total > 0) NOT VALID') AS check_not_valid,
       rules('ALTER TABLE orders VALIDATE CONSTRAINT positive_total') AS validate;

-- ---- unique-without-index
SELECT * FROM l('ALTER TABLE orders ADD UNIQUE (total)');
SELECT * FROM l('ALTER TABLE orders ADD CONSTRAINT orders_pk2 PRIMARY KEY (id)');
SELECT * FROM l('ALTER TABLE orders ADD COLUMN code text UNIQUE');
SELECT * FROM l('ALTER TABLE orders ADD CONSTRAINT no_overlap EXCLUDE USING btree (total WITH =)');
SELECT rules('ALTER TABLE orders ADD CONSTRAINT orders_total_key UNIQUE USING INDEX orders_total') AS using_index;

-- ---- rename-column, rename-table, drop-column, drop-table
SELECT * FROM l('ALTER TABLE users RENAME COLUMN name TO full_name');
SELECT * FROM l('ALTER TABLE users RENAME TO people');
SELECT * FROM l('ALTER TABLE users DROP COLUMN name');
SELECT * FROM l('DROP TABLE orders, lint_test.users');
SELECT rules('ALTER INDEX users_email RENAME TO users_email_idx') AS rename_index,
       rules('DROP VIEW IF EXISTS some_view') AS drop_view;

-- ---- vacuum-full, cluster, reindex-not-concurrent, lock-table, truncate
SELECT * FROM l('VACUUM FULL users');
SELECT * FROM l('VACUUM (FULL, ANALYZE) users, orders');
SELECT * FROM l('VACUUM FULL');
SELECT rules('VACUUM users') AS vacuum, rules('VACUUM (FULL false) users') AS full_false,
       rules('VACUUM (ANALYZE) users') AS vacuum_analyze;
SELECT * FROM l('CLUSTER users USING users_pkey');
SELECT * FROM l('CLUSTER');
SELECT * FROM l('REINDEX TABLE users');
SELECT * FROM l('REINDEX INDEX users_email');
SELECT rules('REINDEX TABLE CONCURRENTLY users') AS concurrently,
       rules('REINDEX (CONCURRENTLY) INDEX users_email') AS concurrently_option;
SELECT * FROM l('BEGIN; LOCK TABLE users IN SHARE MODE; LOCK TABLE orders; LOCK users IN ACCESS SHARE MODE; COMMIT');
SELECT * FROM l('TRUNCATE users, orders');
SELECT rules('BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE NOWAIT; COMMIT', '0') AS nowait_needs_no_timeout;

-- ---- refresh-not-concurrent, enum-value-in-transaction, not-in-transaction
SELECT * FROM l('REFRESH MATERIALIZED VIEW mv');
SELECT rules('REFRESH MATERIALIZED VIEW CONCURRENTLY mv') AS concurrently;
SELECT * FROM l($$BEGIN; ALTER TYPE mood ADD VALUE 'happy'; COMMIT$$);
SELECT rules($$ALTER TYPE mood ADD VALUE 'happy'$$) AS outside_transaction;
SELECT * FROM l($$BEGIN;
CREATE INDEX CONCURRENTLY users_name ON users (name);
DROP INDEX CONCURRENTLY users_email;
REINDEX TABLE CONCURRENTLY users;
VACUUM users;
COMMIT;
CREATE INDEX CONCURRENTLY users_name ON users (name)$$);

-- ---- set-logged, set-tablespace, set-access-method
SELECT * FROM l('ALTER TABLE users SET UNLOGGED');
SELECT * FROM l('ALTER TABLE users SET LOGGED');
SELECT * FROM l('ALTER TABLE users SET TABLESPACE pg_default');
SELECT * FROM l('ALTER TABLE ALL IN TABLESPACE pg_default SET TABLESPACE pg_global');
SELECT * FROM l('ALTER TABLE users SET ACCESS METHOD heap');

-- ---- missing-lock-timeout: SET, SET LOCAL, RESET, transactions, set_config
SELECT * FROM l('ALTER TABLE users ADD COLUMN a int', '0');
SELECT rules('CREATE INDEX CONCURRENTLY users_name ON users (name)', '0') AS weak_lock_needs_none,
       rules('ALTER TABLE users ADD COLUMN a int', '500ms') AS argument,
       rules('ALTER TABLE users ADD COLUMN a int', '5min') AS long_argument;
SELECT statement, rule FROM shift.lint($$
SET lock_timeout = '2s';
ALTER TABLE users ADD COLUMN a int;          -- 2: in force
RESET lock_timeout;
ALTER TABLE users ADD COLUMN b int;          -- 4: back to the start: none
SET lock_timeout TO 1000;
ALTER TABLE users ADD COLUMN c int;          -- 6: in force
SET SESSION lock_timeout = 0;
ALTER TABLE users ADD COLUMN d int;          -- 8: none
SET LOCAL lock_timeout = '1s';
ALTER TABLE users ADD COLUMN e int;          -- 10: SET LOCAL outside a transaction does nothing
BEGIN;
SET LOCAL lock_timeout = '1s';
ALTER TABLE users ADD COLUMN f int;          -- 13: in force
COMMIT;
ALTER TABLE users ADD COLUMN g int;          -- 15: SET LOCAL ended with the transaction
BEGIN;
SET lock_timeout = '1s';
ROLLBACK;
ALTER TABLE users ADD COLUMN h int;          -- 19: the rollback undid the SET
SELECT pg_catalog.set_config('lock_timeout', '3s', false);
ALTER TABLE users ADD COLUMN i int;          -- 21: in force
SET lock_timeout = DEFAULT;
ALTER TABLE users ADD COLUMN j int;          -- 23: none
$$, '0') ORDER BY 1;
SET lock_timeout = '4s';
SELECT rules('ALTER TABLE users ADD COLUMN a int', NULL) AS session_setting_in_force,
       rules('RESET lock_timeout; ALTER TABLE users ADD COLUMN a int', NULL) AS reset_to_it;
RESET lock_timeout;
SELECT rules('ALTER TABLE users ADD COLUMN a int', NULL) AS session_has_none;
SELECT * FROM shift.lint('SELECT 1', 'soon');

-- ---- statements on a table created earlier in the input are on a new, empty table
SELECT statement, line, severity, rule, lock, object FROM shift.lint($$
CREATE TABLE fresh (id int, v text, owner int);
CREATE INDEX fresh_v ON fresh (v);
ALTER TABLE fresh ADD COLUMN s serial, ALTER COLUMN v SET NOT NULL, ALTER COLUMN v TYPE int USING 1;
ALTER TABLE fresh ADD PRIMARY KEY (id), ADD CHECK (id > 0);
ALTER TABLE fresh ADD FOREIGN KEY (owner) REFERENCES users (id);
TRUNCATE fresh;
DROP INDEX fresh_v;
ALTER TABLE fresh RENAME TO fresh2;
ALTER TABLE fresh2 DROP COLUMN v;
CREATE TABLE IF NOT EXISTS users (id int);
CREATE INDEX users_n ON users (n);
CREATE TEMP TABLE scratch (x int);
CREATE INDEX ON scratch (x);
CREATE TABLE part_child PARTITION OF some_parent FOR VALUES IN (1);
$$, '0');

-- ---- statement and line numbers: blank lines, comments, several per line
SELECT statement, line, rule FROM shift.lint(E'  -- a comment first\n\nSELECT 1;\n/* a block\n   comment */ CREATE INDEX a ON users (n); CREATE INDEX b ON users (n);\n\n\n  TRUNCATE users', '1s');

-- ---- SQL that does not parse: the parser's error, pointing into the linted text
SELECT * FROM shift.lint(E'SELECT 1;\nALTER TABLE users\n  ADD COLUMN x int DEFALT 1;');
SELECT * FROM shift.lint($$SELECT 'unterminated$$);
SELECT * FROM shift.lint('CREATE INDEX ON users (');
SELECT count(*) AS empty_input FROM shift.lint('');
SELECT count(*) AS only_comments FROM shift.lint('-- nothing; /* here */');
SELECT count(*) AS null_input FROM shift.lint(NULL);

-- ---- odd identifiers are quoted in messages
CREATE TABLE "Order ""Items""" ("Qty" int, "ünïcødé" text, "semi;colon" int);
SELECT object, message FROM shift.lint($$
CREATE INDEX "Ix" ON "Order ""Items""" ("Qty");
ALTER TABLE "Order ""Items""" ALTER COLUMN "ünïcødé" SET NOT NULL;
ALTER TABLE "Order ""Items""" RENAME COLUMN "semi;colon" TO "new
line";
ALTER TABLE lint_test."Order ""Items""" ALTER "Qty" TYPE bigint;
$$, '1s');
SELECT rules($$ALTER TABLE "Order ""Items""" ADD CONSTRAINT "Qty NN" CHECK ("Qty" IS NOT NULL) NOT VALID;
ALTER TABLE "Order ""Items""" VALIDATE CONSTRAINT "Qty NN";
ALTER TABLE "Order ""Items""" ALTER "Qty" SET NOT NULL$$) AS quoted_names_tracked;

-- ---- shift.lint_script: what a runner sends, part by part
SELECT part, statement, line, severity, rule, lock FROM shift.lint_script(
  ARRAY['CREATE TABLE t (x int)',
        'CREATE INDEX ON t (x)',                                  -- new in this phase
        'ALTER TABLE users ADD COLUMN a int',                     -- db:ddl: has a timeout
        'ALTER TABLE users ADD COLUMN b int',                     -- db:exec: none
        E'SELECT 1;\nCREATE INDEX CONCURRENTLY users_name ON users (name)',  -- implicit transaction
        'SET LOCAL lock_timeout = 1; ALTER TABLE users ADD c int',   -- in force in its part
        'SET LOCAL lock_timeout = 1',
        'ALTER TABLE users ADD d int',                            -- but not in the next
        'CREATE INDEX ON t (x)',                                  -- phase 2: t may be full now
        E'SELECT 1;\nSELEC 2',                                    -- does not parse: a finding
        'DROP TABLE t'],
  ARRAY[NULL, NULL, '2s', NULL, NULL, NULL, NULL, NULL, NULL, NULL, '2s'],
  ARRAY[1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2], '0');
SELECT part, statement, rule FROM shift.lint_script(
  ARRAY['ALTER TABLE users ADD CONSTRAINT n_nn CHECK (n IS NOT NULL) NOT VALID',
        'ALTER TABLE users VALIDATE CONSTRAINT n_nn',
        'ALTER TABLE users ALTER n SET NOT NULL'],
  ARRAY['2s', '2s', '2s'], ARRAY[1, 2, 3]) ;
-- drop-column: a down dropping a column its own phase's up added (the
-- runner sends the ups of phases 1 .. N, then phase N's down) is the way
-- back, not a loss; only the same table as written and the same column,
-- compared as identifiers; with IF NOT EXISTS only a column the catalog
-- does not have yet
SELECT part, statement, message FROM shift.lint_script(
  ARRAY['ALTER TABLE users ADD COLUMN added int, ADD COLUMN "Flag" int, ADD COLUMN IF NOT EXISTS maybe int, ADD COLUMN IF NOT EXISTS email text',
        'ALTER TABLE users DROP COLUMN ADDED',          -- the same identifier: not flagged
        'ALTER TABLE users DROP COLUMN "Flag"',         -- not flagged
        'ALTER TABLE users DROP COLUMN flag',           -- another column
        'ALTER TABLE users DROP COLUMN maybe',          -- not there before: not flagged
        'ALTER TABLE users DROP COLUMN email',          -- there before the IF NOT EXISTS
        'ALTER TABLE users DROP COLUMN name',           -- there before
        'ALTER TABLE orders DROP COLUMN added',         -- another table
        'ALTER TABLE lint_test.users DROP COLUMN "Flag"',  -- written otherwise: flagged
        'ALTER TABLE users DROP COLUMN added'],         -- dropped once already
  phases => ARRAY[1, 1, 1, 1, 1, 1, 1, 1, 1, 1]) WHERE rule = 'drop-column';
SELECT part, statement, message FROM shift.lint_script(
  ARRAY['ALTER TABLE users ADD COLUMN a1 int',           -- phase 1 up
        'ALTER TABLE users ADD COLUMN a2 int',           -- phase 2 up
        'ALTER TABLE users DROP COLUMN a1, DROP COLUMN a2'],  -- phase 2 down: a1 is phase 1's
  phases => ARRAY[1, 2, 2]) WHERE rule = 'drop-column';
-- a rename in between: the name no longer means the column added
SELECT part, statement, message FROM shift.lint_script(
  ARRAY['ALTER TABLE users ADD COLUMN r int',
        'ALTER TABLE users RENAME COLUMN r TO r2',
        'ALTER TABLE users RENAME COLUMN name TO r',
        'ALTER TABLE users ADD COLUMN s int',
        'ALTER TABLE users RENAME TO users_old',
        'ALTER TABLE orders RENAME TO users',
        'ALTER TABLE users DROP COLUMN r, DROP COLUMN r2, DROP COLUMN s'],
  phases => ARRAY[1, 1, 1, 1, 1, 1, 1]) WHERE rule = 'drop-column';
-- rename-column asks drop-column's question (lint_column_is_new): a column
-- the phase added has no data and no code from before the phase; renaming
-- it breaks nothing, and it stays new under its new name
SELECT part, statement, rule, message FROM shift.lint_script(
  ARRAY['ALTER TABLE users ADD COLUMN nc int',
        'ALTER TABLE users RENAME COLUMN nc TO nc2',      -- new: not flagged
        'ALTER TABLE users RENAME COLUMN name TO name2',  -- there before: flagged
        'ALTER TABLE users DROP COLUMN nc2',              -- new under its new name: not flagged
        'ALTER TABLE users ADD COLUMN p1 int',            -- phase 1
        'ALTER TABLE users RENAME COLUMN p1 TO p2'],      -- phase 2: phase 1's column, flagged
  ARRAY['1s', '1s', '1s', '1s', '1s', '1s'],
  ARRAY[1, 1, 1, 1, 1, 2]) WHERE rule IN ('rename-column', 'drop-column') ORDER BY 1, 2;
-- the rules that reason about every row of the table still flag a column
-- the phase added: SET NOT NULL scans the rows, a type change rewrites
-- them, a CHECK reads each, an index is built over all of them, whatever
-- the column holds
SELECT statement, rule FROM shift.lint_script(
  ARRAY['ALTER TABLE users ADD COLUMN fresh_col int',
        'ALTER TABLE users ALTER fresh_col SET NOT NULL',
        'ALTER TABLE users ALTER fresh_col TYPE text',
        'ALTER TABLE users ADD CONSTRAINT fc CHECK (fresh_col > 0)',
        'CREATE INDEX users_fresh_col ON users (fresh_col)'],
  ARRAY['1s', '1s', '1s', '1s', '1s'],
  ARRAY[1, 1, 1, 1, 1]) ORDER BY 1, 2;
SELECT * FROM shift.lint_script(ARRAY['SELECT 1'], ARRAY['1s', '2s']);
SELECT * FROM shift.lint_script(ARRAY['SELECT 1'], ARRAY['later']);
SELECT * FROM shift.lint_script(ARRAY['SELECT 1'], phases => ARRAY[1, 2]);
SELECT (SELECT count(*) FROM shift.lint_script(NULL)) AS null_parts,
       (SELECT count(*) FROM shift.lint_script(ARRAY[NULL, 'SELECT 1'])) AS null_part;

-- ---- a comment "shift:allow rule ..." inside a statement silences those rules for it alone
SELECT statement, rule FROM shift.lint($$
  ALTER TABLE t_renamed RENAME COLUMN a TO b /* shift:allow rename-column: a sync keeps both */;
  ALTER TABLE t_renamed RENAME COLUMN b TO c;
  ALTER TABLE t_renamed RENAME COLUMN c TO d -- shift:allow missing-lock-timeout, rename-column
  ;
  TRUNCATE t_renamed /* shift:allow all */;
  ALTER TABLE t_renamed RENAME COLUMN d TO e /* shift:allow truncate */$$) ORDER BY 1, 2;

-- the comment after a statement's ';' on its line is that statement's; prose
-- after the rule ids names nothing; text inside literals is not a comment
SELECT statement, rule FROM shift.lint($$
  ALTER TABLE t_renamed RENAME COLUMN a TO b; -- shift:allow rename-column
  ALTER TABLE t_renamed RENAME COLUMN b TO c;
  ALTER TABLE t_renamed RENAME COLUMN c TO d /* shift:allow rename-column, since all readers moved */;
  ALTER TABLE t_renamed ALTER COLUMN d SET DEFAULT 'shift:allow all', DROP COLUMN e;
  ALTER TABLE t_renamed DROP COLUMN f /* $x$ shift:allow drop-column $x$ */$$, '1s') ORDER BY 1, 2;

-- ---- lint runs no user code: no input function converts a literal, no
-- domain CHECK is evaluated or planned, no user function is called or
-- inlined.  Each user function below counts its calls in a sequence, which
-- no rollback undoes; a domain CHECK made of built-ins sets a setting.
CREATE SEQUENCE user_code_calls;
CREATE FUNCTION user_code_ran() RETURNS bigint LANGUAGE sql AS
  $$ SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM lint_test.user_code_calls $$;
CREATE FUNCTION watch(int) RETURNS bool LANGUAGE plpgsql AS
  $$ BEGIN PERFORM nextval('lint_test.user_code_calls'); RETURN true; END $$;
CREATE FUNCTION watch_imm(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS
  $$ BEGIN PERFORM nextval('lint_test.user_code_calls'); RETURN $1; END $$;
CREATE FUNCTION sql_imm(int) RETURNS int LANGUAGE sql IMMUTABLE AS
  $$ SELECT lint_test.watch_imm($1) $$;
CREATE DOMAIN watched AS int CHECK (watch(VALUE));
CREATE TYPE watched_row AS (a watched);
CREATE TYPE watched_range AS RANGE (subtype = watched);
CREATE FUNCTION takes_row(watched_row) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT 1';
CREATE DOMAIN sets_config AS int CHECK (set_config('lint_test.ran', 'yes', false) IS NOT NULL);
CREATE TYPE sets_config_row AS (a sets_config);
CREATE DOMAIN folded AS int CHECK (VALUE > watch_imm(0));
CREATE DOMAIN folded_too AS int CHECK (VALUE > watch_imm(0));
CREATE TYPE boxed AS (v int);
CREATE FUNCTION box(int) RETURNS boxed LANGUAGE sql IMMUTABLE AS
  $$ SELECT ROW($1 + lint_test.watch_imm(1))::lint_test.boxed $$;
CREATE CAST (int AS boxed) WITH FUNCTION box(int) AS ASSIGNMENT;
-- a composite literal whose field is a domain with a CHECK (record_in -> domain_in)
SELECT * FROM l($$ALTER TABLE users ADD COLUMN c watched_row DEFAULT '(1)'$$);
-- an array and a range of that domain
SELECT * FROM l($$ALTER TABLE users ADD COLUMN c watched[] DEFAULT '{2}'$$);
SELECT * FROM l($$ALTER TABLE users ADD COLUMN c watched_range DEFAULT '[3,4)'$$);
-- an unknown literal made a composite by a function's argument type
SELECT * FROM l($$ALTER TABLE users ADD COLUMN c int DEFAULT takes_row('(5)')$$);
-- immutable user functions in a default: neither folded nor inlined
SELECT * FROM l('ALTER TABLE users ADD COLUMN c int DEFAULT watch_imm(6) + sql_imm(7)');
-- a domain whose CHECK calls an immutable user function on a constant: the
-- typcache would fold it while loading the domain's constraints
SELECT * FROM l('ALTER TABLE users ADD COLUMN c folded');
SELECT * FROM l('ALTER TABLE users ALTER COLUMN n TYPE folded_too');
-- a cast through a SQL function: planning would inline it and fold
-- watch_imm(1); lint says it cannot tell instead
SELECT * FROM l('ALTER TABLE users ALTER COLUMN n TYPE boxed');
SELECT user_code_ran() AS user_code_calls;
-- a domain CHECK made of built-ins only (set_config) is not evaluated either
SELECT * FROM l($$ALTER TABLE users ADD COLUMN c sets_config_row DEFAULT '(1)'$$);
SELECT current_setting('lint_test.ran', true) IS NULL AS setting_untouched;
-- after lint, the same functions run and inline as usual: the hook only acts
-- while lint analyses
SELECT '(8)'::watched_row AS still_converts, user_code_ran() AS user_code_calls;
CREATE FUNCTION sql_double(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 * 2';
EXPLAIN (VERBOSE, COSTS OFF) SELECT sql_double(n) FROM users;
SELECT watch_imm(9) AS called, user_code_ran() AS user_code_calls;

-- ---- linear in the input: earlier statements' facts are found through hash
-- tables, a statement's shift:allow comments are read once however many
-- findings it has, and each statement and subcommand is linted in memory
-- reset after it.  Each input is about as long as the limits allow (512 kB
-- a part, 1 MB a lint_script call); a quadratic implementation took from
-- 10 s to minutes on them, and hits this timeout.
SET statement_timeout = '5s';
-- 8 500 CHECK (cK IS NOT NULL) NOT VALID constraints, each validated, in two
-- parts, then SET NOT NULL on the first, the last (both proven) and one
-- never checked
SELECT part, statement, rule, message FROM shift.lint_script(
  (SELECT array_agg(p ORDER BY k) FROM (
     SELECT i % 2 AS k, string_agg(format('ALTER TABLE users ADD CONSTRAINT c%s CHECK (c%s IS NOT NULL) NOT VALID;
ALTER TABLE users VALIDATE CONSTRAINT c%s;', i, i, i), E'\n' ORDER BY i) AS p
       FROM generate_series(1, 8500) i GROUP BY i % 2) x)
  || ARRAY['ALTER TABLE users ALTER c1 SET NOT NULL, ALTER c8500 SET NOT NULL, ALTER n SET NOT NULL'],
  lock_timeout => '1s');
-- 20 000 tables created, each indexed while new, in two parts: no finding
SELECT count(*) AS findings FROM shift.lint_script(
  (SELECT array_agg(p ORDER BY k) FROM (
     SELECT i % 2 AS k, string_agg(format('CREATE TABLE t%s (); CREATE INDEX ON t%s (x);', i, i), E'\n') AS p
       FROM generate_series(1, 20000) i GROUP BY i % 2) x), lock_timeout => '1s');
-- the same name created and dropped 30 000 times, then used: it exists no more
SELECT part, statement, rule FROM shift.lint_script(
  ARRAY[repeat('CREATE TABLE t (); DROP TABLE t; ', 15000), repeat('CREATE TABLE t (); DROP TABLE t; ', 15000),
        'CREATE INDEX ON t (x)'], lock_timeout => '1s');
-- one ALTER TABLE with 9 000 type changes, each a finding
SELECT count(*) AS findings, count(DISTINCT message) AS messages FROM shift.lint(
  'ALTER TABLE users ' || repeat('ALTER n TYPE int8, ', 8999) || 'ALTER n TYPE int8', '1s');
-- one with 26 000, and one DROP TABLE of 45 000 tables, each silenced by a
-- comment at the end of its statement (which was read again for each)
SELECT count(*) AS findings FROM shift.lint(
  'ALTER TABLE users ' || repeat('ALTER n TYPE int8, ', 25999) || 'ALTER n TYPE int8 /* shift:allow column-type-rewrite */', '1s');
SELECT count(*) AS findings FROM shift.lint(
  (SELECT 'DROP TABLE ' || string_agg('gone' || i, ',') FROM generate_series(1, 45000) i) || ' /* shift:allow drop-table */', '1s');
RESET statement_timeout;

-- ---- every input is bounded: SQLSTATE 54000 naming it, its size and the limit
CREATE FUNCTION refusal(call text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE call;
  RETURN 'accepted';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
SELECT count(*) FROM shift.lint(repeat('-', 524289));
SELECT refusal($$SELECT count(*) FROM shift.lint(repeat(' ', 524281) || 'SELECT 1')$$) AS one_byte_over,
       refusal($$SELECT count(*) FROM shift.lint(repeat(' ', 524280) || 'SELECT 1')$$) AS at_the_limit;
SELECT refusal($$SELECT count(*) FROM shift.lint('SELECT 1', repeat('1', 1025))$$) AS lock_timeout;
SELECT refusal($$SELECT count(*) FROM shift.lint_script(ARRAY['SELECT 1', repeat(' ', 524289)])$$) AS part,
       refusal($$SELECT count(*) FROM shift.lint_script(array_fill(repeat(' ', 400000), ARRAY[3]))$$) AS parts_together,
       refusal($$SELECT count(*) FROM shift.lint_script(array_fill(repeat(' ', 400000), ARRAY[2]))$$) AS two_parts;
SELECT refusal($$SELECT count(*) FROM shift.lint_script(ARRAY['SELECT 1'], ARRAY[repeat('1', 1025)])$$) AS part_lock_timeout;
-- the output too: 10 000 findings at most (each of many relations named is one)
SELECT count(*) AS findings FROM shift.lint(repeat('TRUNCATE users; ', 10000), '1s');
SELECT count(*) FROM shift.lint(repeat('TRUNCATE users; ', 10000) || 'TRUNCATE users, orders', '1s');
-- runs of operator characters, on which PostgreSQL's scanner is quadratic:
-- 20 000 nested comment openers took 2.7 s and could not be cancelled
SELECT count(*) FROM shift.lint(repeat('/*', 20000) || repeat('*/', 20000));
SELECT refusal($$SELECT count(*) FROM shift.lint('SELECT 1 ' || repeat('+', 10001) || ' 1')$$) AS long_run,
       refusal($$SELECT count(*) FROM shift.lint(repeat('-- ' || repeat('-', 100) || E'\n', 5000) || 'SELECT 1')$$) AS banner_lines;

-- ---- privileges: anyone may lint; it never needs access to the tables
SELECT p.proname, has_function_privilege('public', p.oid, 'EXECUTE') AS public_execute
  FROM pg_proc p WHERE p.pronamespace = 'shift'::regnamespace AND p.proname LIKE 'lint%' ORDER BY 1;
SELECT proname, provolatile, proparallel, prosecdef FROM pg_proc
 WHERE pronamespace = 'shift'::regnamespace AND proname LIKE 'lint%' ORDER BY 1;
CREATE SCHEMA hidden;
CREATE TABLE hidden.t (x int);
REVOKE ALL ON SCHEMA hidden FROM PUBLIC;
CREATE ROLE regress_lint_nobody;
SET ROLE regress_lint_nobody;
SELECT statement, rule, object FROM shift.lint('CREATE INDEX ON hidden.t (x); ALTER TABLE hidden.t ALTER x TYPE bigint', '1s');
SELECT count(*) AS bookkeeping_still_closed FROM shift.migration;
RESET ROLE;
DROP ROLE regress_lint_nobody;
RESET search_path;
DROP SCHEMA lint_test, hidden CASCADE;
