-- security: what a role may do with pg_shift, tried by the roles that should
-- not be able to (an operator with nothing, a role with nothing, a table
-- writer), against what another role made.  Each case gained a privilege or
-- broke a migration on 0.1.0.  pg_cron and the runner: integration tests.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_shift;
\set SHOW_CONTEXT never
CREATE SCHEMA sec;
CREATE SCHEMA open;          -- a schema every role may create in, as public often is
GRANT USAGE ON SCHEMA sec TO PUBLIC;
GRANT USAGE, CREATE ON SCHEMA open TO PUBLIC;
CREATE ROLE regress_sec_owner IN ROLE shift_operator;   -- owns the application's tables
CREATE ROLE regress_sec_op IN ROLE shift_operator;      -- may run migrations, owns nothing
CREATE ROLE regress_sec_nobody;                          -- nothing at all
CREATE ROLE regress_sec_writer;                          -- the application
GRANT CREATE ON SCHEMA sec TO regress_sec_owner;

-- the trap: anything that runs it is recorded with the role it ran as
CREATE TABLE open.pwned (who name, superuser bool, how text);
GRANT SELECT, INSERT ON open.pwned TO PUBLIC;
SET ROLE regress_sec_op;
CREATE FUNCTION open.trap(how text) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO open.pwned
    SELECT current_user, rolsuper, how FROM pg_roles WHERE rolname = current_user;
  RETURN 1;
END $$;
RESET ROLE;
CREATE VIEW sec.pwned AS
  SELECT how, who, superuser, count(*) AS times FROM open.pwned GROUP BY 1, 2, 3 ORDER BY 1, 2;

-- ======================================================================
-- no role but a superuser writes a control table; nothing runs as definer
-- ======================================================================
SELECT c.relname,
       bool_or(has_table_privilege(r, c.oid, 'SELECT')) AS readable,
       bool_or(has_table_privilege(r, c.oid, 'INSERT') OR has_table_privilege(r, c.oid, 'UPDATE')
               OR has_table_privilege(r, c.oid, 'DELETE') OR has_table_privilege(r, c.oid, 'TRUNCATE')) AS writable,
       c.relrowsecurity AS row_security
  FROM pg_class c,
       unnest(ARRAY['public', 'shift_operator', 'regress_sec_op', 'regress_sec_writer']) r
 WHERE c.relnamespace = 'shift'::regnamespace AND c.relkind = 'r'
 GROUP BY c.relname, c.relrowsecurity ORDER BY 1;
SELECT count(*) AS security_definer_functions
  FROM pg_proc WHERE pronamespace IN ('shift'::regnamespace, 'shift_internal'::regnamespace) AND prosecdef;
-- the implementations that run as the owner are the owner's alone: that of
-- shift.NAME is shift_internal.NAME, that of shift_internal.NAME is
-- shift_internal.NAME_as_owner (extension/control.c)
SELECT w.pronamespace::regnamespace AS wrapper_schema, count(i.oid) AS implementations,
       count(*) FILTER (WHERE has_function_privilege('shift_operator', i.oid, 'EXECUTE')
                           OR has_function_privilege('public', i.oid, 'EXECUTE')) AS callable_implementations
  FROM pg_proc w
  LEFT JOIN pg_proc i
    ON i.pronamespace = 'shift_internal'::regnamespace AND i.proargtypes = w.proargtypes
   AND i.proname = CASE WHEN w.pronamespace = 'shift'::regnamespace THEN w.proname
                        ELSE w.proname || '_as_owner' END
 WHERE w.prosrc = 'shift_owner_call'
 GROUP BY 1 ORDER BY 1;
-- a role with nothing may execute in shift_internal only what row-level
-- security and the caller-level checks need (sql/grants.sql) ...
SELECT p.oid::regprocedure AS public_internal_routines
  FROM pg_proc p
 WHERE p.pronamespace = 'shift_internal'::regnamespace
   AND has_function_privilege('regress_sec_nobody', p.oid, 'EXECUTE')
 ORDER BY 1::text;
-- ... and calling any other is refused for want of the privilege (the
-- arguments are not constants, which the planner would fold into the
-- result of a strict function without calling it)
SET ROLE regress_sec_nobody;
DO $$
DECLARE
  f regprocedure;
  denied int := 0;
  other text := '';
BEGIN
  FOR f IN SELECT p.oid FROM pg_proc p
            WHERE p.pronamespace = 'shift_internal'::regnamespace AND p.prorettype <> 'trigger'::regtype
              AND p.oid NOT IN (SELECT p2.oid FROM pg_proc p2, aclexplode(p2.proacl) a
                                 WHERE p2.pronamespace = p.pronamespace AND a.grantee = 0)
            ORDER BY p.oid::regprocedure::text LOOP
    BEGIN
      EXECUTE format('SELECT %s.%I(%s)', 'shift_internal', (SELECT proname FROM pg_proc WHERE oid = f),
                     (SELECT string_agg('(SELECT NULL::' || t::regtype::text || ')', ', ' ORDER BY n)
                        FROM pg_proc, unnest(proargtypes) WITH ORDINALITY u(t, n) WHERE oid = f));
      other := other || f || ' ran; ';
    EXCEPTION
      WHEN insufficient_privilege THEN denied := denied + 1;
      WHEN OTHERS THEN other := other || f || ': ' || SQLERRM || '; ';
    END;
  END LOOP;
  RAISE WARNING 'permission denied on % routines of shift_internal; otherwise: %', denied, coalesce(nullif(other, ''), 'none');
END
$$;
RESET ROLE;
SELECT has_function_privilege('regress_sec_nobody', 'shift_internal._sync_trigger()', 'EXECUTE') AS nobody_may_make_sync_triggers;
SET ROLE regress_sec_op;
SELECT shift_internal.phase_done('m', 'p', 1);
SELECT shift_internal.backfill_set('j', batch_min => 1);
SELECT shift_internal._sync_turn_as_owner('s', false, 'a', 'b', 'c', '{}', '{}');
RESET ROLE;

-- ======================================================================
-- backfill jobs: another role's job is not seen, changed, run or reused
-- ======================================================================
SET ROLE regress_sec_owner;
CREATE TABLE sec.acct (id int PRIMARY KEY, n int NOT NULL DEFAULT 0, who name);
INSERT INTO sec.acct SELECT g, 0 FROM generate_series(1, 300) g;
SELECT shift.backfill_create('owner_job', 'sec.acct', set => 'n = n + 1, who = current_user',
                             batch_min => 100, batch_max => 100);
RESET ROLE;
SET ROLE regress_sec_op;
SELECT name FROM shift.backfill;
SELECT name FROM shift.backfill_progress;
SELECT count(*) AS batches FROM shift.backfill_batch;
UPDATE shift.backfill SET throttle_query = 'SELECT open.trap(''throttle'') = 0' WHERE name = 'owner_job';
UPDATE shift.backfill SET last_key = '{}', owner = 'regress_sec_op' WHERE name = 'owner_job';
DELETE FROM shift.backfill_batch;
SELECT shift.backfill_set('owner_job', throttle_query => 'SELECT open.trap(''throttle'') = 0');
SELECT shift.backfill_pause('owner_job');
SELECT shift.backfill_resume('owner_job');
SELECT shift.backfill_cancel('owner_job');
SELECT shift.backfill_drop('owner_job');
CALL shift.backfill_run('owner_job');
SELECT * FROM shift.backfill_step('owner_job');
SELECT shift_internal._backfill_check('owner_job');
CREATE TABLE open.mine (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
INSERT INTO open.mine SELECT g, 0 FROM generate_series(1, 10) g;
SELECT shift.backfill_create('owner_job', 'open.mine', set => 'n = 1', if_exists => 'reuse');
-- a name another role's runner would derive, taken first, is never reused by that runner
SELECT shift.backfill_create('m1:backfill', 'open.mine', set => 'n = open.trap(''planted'')');
RESET ROLE;
SET ROLE regress_sec_owner;
SELECT shift.backfill_create('m1:backfill', 'sec.acct', set => 'n = n + 1', if_exists => 'reuse',
                             migration => 'm1', phase => 'backfill');
RESET ROLE;
-- nothing of the owner's job moved
SELECT name, state, keys_done, throttled IS NULL AS not_throttled FROM shift.backfill_progress
 WHERE name = 'owner_job';

-- a superuser (or pg_cron) running another role's job runs it as that role
CALL shift.backfill_run('owner_job');
SELECT who, n, count(*) FROM sec.acct GROUP BY who, n ORDER BY 1, 2;
SET ROLE regress_sec_op;
SELECT shift.backfill_create('op_job', 'open.mine', set => 'n = n + open.trap(''set'')',
                             throttle_query => 'SELECT open.trap(''throttle'') = 0',
                             "where" => 'open.trap(''where'') = 1');
-- the cut-over's guard names another role's unfinished job on a table by
-- its owner alone, and answers only about tables the caller owns
CREATE TABLE open.mine3 (id int PRIMARY KEY);
SELECT * FROM shift_internal._cutover_blockers('open.mine', 'open.mine3');
SELECT * FROM shift_internal._cutover_blockers('sec.acct', 'open.mine');
RESET ROLE;
SELECT shift.backfill_create('su_job', 'open.mine3', set => 'id = id');
SET ROLE regress_sec_op;
SELECT * FROM shift_internal._cutover_blockers('open.mine', 'open.mine3');
RESET ROLE;
SELECT shift.backfill_drop('su_job');
CALL shift.backfill_run('op_job');
SELECT * FROM sec.pwned;
TRUNCATE open.pwned;

-- ======================================================================
-- syncs: another role's sync is not seen, changed, dropped or cut over
-- ======================================================================
SET ROLE regress_sec_owner;
CREATE TABLE sec.acct2 (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0, who name);
GRANT SELECT, INSERT, UPDATE, DELETE ON sec.acct, sec.acct2 TO regress_sec_writer;
SELECT shift.sync_create('owner_sync', 'sec.acct', "into" => 'sec.acct2');
INSERT INTO sec.acct2 SELECT id, n, who FROM sec.acct ON CONFLICT DO NOTHING;
RESET ROLE;
SET ROLE regress_sec_op;
SELECT name FROM shift.sync;
SELECT name FROM shift.sync_status;
UPDATE shift.sync SET direction = 'reverse' WHERE name = 'owner_sync';
UPDATE shift.sync SET expressions = '{id, open.trap(''sync''), who}' WHERE name = 'owner_sync';
SELECT * FROM shift.cutover('owner_sync');
SELECT * FROM shift.cutover_revert('owner_sync');
SELECT * FROM shift.cutover_pending('owner_sync');
SELECT shift.sync_drop('owner_sync');
SELECT shift_internal._sync_forget('owner_sync');
SELECT shift_internal._sync_turn('owner_sync', false, 'sec.x', 'sec.acct', 'sec.acct2', '{}', '{}');
SELECT shift_internal._sync_check('owner_sync');
SELECT shift_internal.cutover_check('owner_sync', false, 'recent', 10);
SELECT shift.sync_create('owner_sync', 'open.mine', set => 'n = 1');
-- a sync of another role's tables cannot be recorded without its triggers
SELECT shift_internal._sync_record(s, 'error') FROM shift.sync s;
SELECT shift_internal._sync_record(ROW('planted', 'table', 'sec.acct'::regclass, NULL, NULL, 'sec.acct2'::regclass,
                              '{id}', '{id}', '{id}', NULL, NULL, NULL, 'acct', 'acct2', true, 'forward',
                              'sec', 'regress_sec_op', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                              NULL, NULL, NULL, NULL)::shift.sync, 'error');
RESET ROLE;
SELECT name, direction, definition_ok FROM shift.sync_status WHERE name = 'owner_sync';

-- a row edited by hand (only a superuser can) is never installed or cut over, and
-- the application's writes go on through what was checked
UPDATE shift.sync SET expressions = '{id, open.trap(''edited'') + n, who}' WHERE name = 'owner_sync';
SELECT * FROM shift.cutover('owner_sync');
SET ROLE regress_sec_writer;
INSERT INTO sec.acct VALUES (301, 5, 'writer');
UPDATE sec.acct SET n = n + 1 WHERE id = 301;
RESET ROLE;
SELECT id, n, who FROM sec.acct2 WHERE id = 301;
SELECT * FROM sec.pwned;
UPDATE shift.sync SET expressions = '{id,n,who}' WHERE name = 'owner_sync';
SELECT name, direction, definition_ok FROM shift.sync_status WHERE name = 'owner_sync';

-- the cut-over's check runs the sync's expressions as its owner, whoever cuts over
SET ROLE regress_sec_op;
SELECT shift.backfill_drop('m1:backfill');     -- unfinished on open.mine: it would block the cut-over
CREATE TABLE open.mine2 (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
SELECT shift.sync_create('op_sync', 'open.mine', "into" => 'open.mine2',
                         "select" => 'id, n * open.trap(''check'')');
INSERT INTO open.mine2 SELECT id, n FROM open.mine;
RESET ROLE;
TRUNCATE open.pwned;
SELECT live, archived FROM shift.cutover('op_sync');
SELECT * FROM sec.pwned;
SELECT * FROM shift.cutover_pending('op_sync');
TRUNCATE open.pwned;

-- ======================================================================
-- generated SQL: operators named by schema, never found on a search_path
-- ======================================================================
-- the operator's own role plants varchar operators where a search_path may look
SET ROLE regress_sec_op;
CREATE FUNCTION open.vc_cmp(a varchar, b varchar, op text) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN
  PERFORM open.trap('operator ' || op);
  RETURN CASE op WHEN '<' THEN a::text < b::text WHEN '<=' THEN a::text <= b::text
                 WHEN '=' THEN a::text = b::text WHEN '>=' THEN a::text >= b::text
                 ELSE a::text > b::text END;
END $$;
CREATE FUNCTION open.vc_lt(varchar, varchar) RETURNS bool LANGUAGE sql AS $$ SELECT open.vc_cmp($1, $2, '<') $$;
CREATE FUNCTION open.vc_le(varchar, varchar) RETURNS bool LANGUAGE sql AS $$ SELECT open.vc_cmp($1, $2, '<=') $$;
CREATE FUNCTION open.vc_eq(varchar, varchar) RETURNS bool LANGUAGE sql AS $$ SELECT open.vc_cmp($1, $2, '=') $$;
CREATE FUNCTION open.vc_ge(varchar, varchar) RETURNS bool LANGUAGE sql AS $$ SELECT open.vc_cmp($1, $2, '>=') $$;
CREATE FUNCTION open.vc_gt(varchar, varchar) RETURNS bool LANGUAGE sql AS $$ SELECT open.vc_cmp($1, $2, '>') $$;
CREATE OPERATOR open.< (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = open.vc_lt);
CREATE OPERATOR open.<= (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = open.vc_le);
CREATE OPERATOR open.= (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = open.vc_eq);
CREATE OPERATOR open.>= (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = open.vc_ge);
CREATE OPERATOR open.> (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = open.vc_gt);
RESET ROLE;
-- the owner makes a job and a sync with that schema on its path (as "$user", public is)
SET ROLE regress_sec_owner;
CREATE TABLE sec.vk (k varchar PRIMARY KEY, n int NOT NULL DEFAULT 0);
CREATE TABLE sec.vk2 (k varchar PRIMARY KEY, n int NOT NULL DEFAULT 0);
INSERT INTO sec.vk SELECT 'key' || g, 0 FROM generate_series(1, 50) g;
GRANT SELECT, INSERT, UPDATE, DELETE ON sec.vk, sec.vk2 TO regress_sec_writer;
SET search_path = open, sec;
-- (the trap shows the path really reaches the planted operator)
SELECT count(*) FROM vk WHERE k > 'key5';
SELECT shift.backfill_create('vk_job', 'vk', set => 'n = n + 1', batch_min => 7, batch_max => 7);
SELECT shift.sync_create('vk_sync', 'vk', "into" => 'vk2');
RESET search_path;
RESET ROLE;
SELECT * FROM sec.pwned;
TRUNCATE open.pwned;
SET search_path = open, sec, public;
CALL shift.backfill_run('vk_job');
SELECT n, count(*) FROM sec.vk GROUP BY n;
-- the application's own statements with a path of its own; the sync's mirror
-- statements use the sync's (open, sec)
SET search_path = sec;
SET ROLE regress_sec_writer;
INSERT INTO vk VALUES ('new', 1);
UPDATE vk SET n = n + 1 WHERE k IN ('key1', 'new');
UPDATE vk SET k = 'key1b' WHERE k = 'key2';
DELETE FROM vk WHERE k IN ('key3', 'new');
RESET ROLE;
RESET search_path;
SELECT k, n FROM sec.vk2 ORDER BY k;
SELECT * FROM sec.pwned;

-- ======================================================================
-- fragments are checked and run under the search_path recorded with them
-- ======================================================================
CREATE SCHEMA app;
GRANT USAGE ON SCHEMA app TO PUBLIC;
CREATE FUNCTION app.twice(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 * 2';
CREATE TABLE app.t (id int PRIMARY KEY, n int NOT NULL, m int, m2 int);
CREATE TABLE app.other (id int PRIMARY KEY);
INSERT INTO app.t SELECT g, g FROM generate_series(1, 20) g;
INSERT INTO app.other SELECT g FROM generate_series(1, 20, 2) g;
SET search_path = "$user", app;
SELECT shift.backfill_create('sp_job', 't', set => 'm = twice(n)',
                             "where" => 'id IN (SELECT id FROM other)');
SELECT shift.sync_create('sp_sync', 't', set => 'm2 = twice(n) + 1');
RESET search_path;
SELECT name, search_path FROM shift.backfill WHERE name = 'sp_job'
UNION ALL SELECT name, search_path FROM shift.sync WHERE name = 'sp_sync';
-- run where nothing but pg_catalog is on the path: the same names resolve
SET search_path = pg_catalog;
CALL shift.backfill_run('sp_job');
SELECT count(*) FILTER (WHERE m = 2 * n) AS doubled, count(*) FILTER (WHERE m IS NULL) AS untouched,
       count(*) FILTER (WHERE m2 = 2 * n + 1) AS synced
  FROM app.t;
INSERT INTO app.t (id, n) VALUES (100, 7);
SELECT m, m2 FROM app.t WHERE id = 100;
RESET search_path;

-- ======================================================================
-- migrations belong to their owner; stored error texts are capped
-- ======================================================================
SET ROLE regress_sec_owner;
SELECT shift.try_lock('owner_mig');
SELECT count(*) FROM shift.migration_begin('owner_mig', repeat('a', 64),
  '[{"name":"a","reversible":true}]', 'run', pg_backend_pid());
SELECT shift.phase_start('owner_mig', 'a');
SELECT shift.phase_failed('owner_mig', 'a', repeat('x', 1000000), 'XX000');
SELECT shift.migration_end('owner_mig');
SELECT shift.unlock('owner_mig');
SELECT length(error_message) < 5000 AS capped, right(error_message, 30) AS ends_with
  FROM shift.phase WHERE migration = 'owner_mig';
SELECT length(message) < 5000 AS capped FROM shift.event
 WHERE migration = 'owner_mig' AND kind = 'phase_failed';
RESET ROLE;
SET ROLE regress_sec_op;
SELECT migration FROM shift.status;
SELECT count(*) AS events_seen FROM shift.history WHERE migration = 'owner_mig';
SELECT shift.try_lock('owner_mig');
SELECT count(*) FROM shift.migration_begin('owner_mig', repeat('a', 64),
  '[{"name":"a","reversible":true}]', 'rollback', pg_backend_pid());
SELECT shift.unlock('owner_mig');
RESET ROLE;
SET ROLE regress_sec_nobody;
SELECT count(*) FROM shift.status;
SELECT shift.try_lock('owner_mig');
RESET ROLE;

-- ======================================================================
-- a cut-over checks names before it takes any lock
-- ======================================================================
CREATE TABLE sec.a_table_name_that_is_as_long_as_postgresql_allows_it_to_be_1234 (id int PRIMARY KEY);
CREATE TABLE sec.long_v2 (id int PRIMARY KEY);
SELECT shift.sync_create('long', 'sec.a_table_name_that_is_as_long_as_postgresql_allows_it_to_be_1234',
                         "into" => 'sec.long_v2');
BEGIN;
SELECT * FROM shift.cutover('long');
ROLLBACK;
SELECT shift.sync_drop('long');

-- ---- clean up
SELECT shift.sync_drop(name) FROM shift.sync ORDER BY name;
SELECT shift.backfill_drop(name) FROM shift.backfill ORDER BY name;
DROP SCHEMA sec, open, app CASCADE;
DROP OWNED BY regress_sec_owner, regress_sec_op, regress_sec_nobody, regress_sec_writer;
DROP ROLE regress_sec_owner, regress_sec_op, regress_sec_nobody, regress_sec_writer;
