-- pg_shift upgrade 0.1.0 -> 0.2.0 (source; the build writes pg_shift--0.1.0--0.2.0.sql from it)
\echo Use "ALTER EXTENSION pg_shift UPDATE TO '0.2.0'" to load this file. \quit

-- ---------------------------------------------------------------------------
-- This file says what becomes of 0.1.0's data; 0.2.0's code comes from the
-- install script itself, which the build puts where the line
-- "-- @INSTALL_SCRIPT@" is below.  0.2.0 changed most of what 0.1.0 made
-- (owners and row-level security on the control tables, sealed definitions
-- with digests, implementations in schema shift_internal, new states), so
-- the update does not patch 0.1.0's objects one by one; it
--
--   1. locks the tables of every sync the way their writers do, checks that
--      each sync is what its triggers were made for, keeps the triggers'
--      definitions and drops them;
--   2. moves 0.1.0's tables, rows and all, aside into schema shift_0_1_0, and
--      drops 0.1.0's views and functions;
--   3. runs the whole 0.2.0 install script: every table, function, view,
--      type, policy and grant is what a fresh install makes;
--   4. copies the rows into the new tables, filling in what 0.2.0 adds (the
--      owner of a migration, the search_path a job or sync runs under, the
--      interrupted state, the constraints a cut-over left to validate),
--      checks and seals every sync again, makes each sync's triggers again
--      as they were but for the new digest, leaves every backfill job
--      unsealed (it runs once its definition is given again, see below),
--      and drops what was moved aside.
--
-- All of it happens in ALTER EXTENSION's one transaction.  The writers of a
-- synced table wait for it from step 1 on (they cannot deadlock with it: it
-- never waits for one of their tables while holding another), then go on
-- through the new triggers.  Before the update, a 0.2.0 library already runs
-- 0.1.0's sync triggers as 0.1.0 did (sync_load_config in
-- extension/sync_config.c) and refuses everything else
-- (shift_extension_owner in extension/control.c).
-- ---------------------------------------------------------------------------

-- Nothing outside pg_shift may depend on 0.1.0's objects, which are all
-- replaced: say what does, before anything is changed.  (The triggers of
-- the syncs are made again below.)  The statements of this script run under
-- search_path shift, pg_temp, with pg_catalog searched first.
DO $$
DECLARE
  users pg_catalog.text;
  path CONSTANT pg_catalog.text := current_setting('search_path');
BEGIN
  -- objects described with their schema
  PERFORM set_config('search_path', 'pg_catalog, pg_temp', true);
  WITH member AS (
    SELECT d.classid, d.objid FROM pg_depend d
     WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
       AND d.refobjid = (SELECT e.oid FROM pg_extension e WHERE e.extname = 'pg_shift')
  ), dependent AS (
    -- what depends on a member, and the relation it is part of (a view's
    -- rule, a table's constraint, trigger, default or policy)
    SELECT d.classid, d.objid, d.refclassid, d.refobjid,
           CASE d.classid
             WHEN 'pg_rewrite'::regclass THEN (SELECT r.ev_class FROM pg_rewrite r WHERE r.oid = d.objid)
             WHEN 'pg_constraint'::regclass THEN (SELECT c.conrelid FROM pg_constraint c WHERE c.oid = d.objid)
             WHEN 'pg_trigger'::regclass THEN (SELECT t.tgrelid FROM pg_trigger t WHERE t.oid = d.objid)
             WHEN 'pg_attrdef'::regclass THEN (SELECT a.adrelid FROM pg_attrdef a WHERE a.oid = d.objid)
             WHEN 'pg_policy'::regclass THEN (SELECT p.polrelid FROM pg_policy p WHERE p.oid = d.objid)
           END AS relation
      FROM pg_depend d
      JOIN member m ON m.classid = d.refclassid AND m.objid = d.refobjid
     WHERE d.deptype = 'n'
  )
  SELECT string_agg(DISTINCT format('%s depends on %s',
                                   CASE WHEN x.classid = 'pg_rewrite'::regclass      -- a view's rule: the view
                                        THEN pg_describe_object('pg_class'::regclass, x.relation, 0)
                                        ELSE pg_describe_object(x.classid, x.objid, 0) END,
                                   pg_describe_object(x.refclassid, x.refobjid, 0)), '; ')
    INTO users
    FROM dependent x
   WHERE NOT EXISTS (SELECT FROM member m WHERE m.classid = x.classid AND m.objid = x.objid)
     AND NOT EXISTS (SELECT FROM member m WHERE m.classid = 'pg_class'::regclass AND m.objid = x.relation)
     -- a sync's own triggers (those 0.1.0's _sync_uninstall drops)
     AND NOT EXISTS (SELECT FROM pg_trigger tg, @extschema@.sync s
                      WHERE x.classid = 'pg_trigger'::regclass AND tg.oid = x.objid AND tg.tgparentid = 0
                        AND tg.tgname = ANY (@extschema@._sync_trigger_names(s.name))
                        AND substr(tg.tgargs, 1, octet_length(s.name) + 1)
                            = (convert_to(s.name, current_setting('server_encoding')) || decode('00', 'hex')));
  PERFORM set_config('search_path', path, true);
  IF users IS NOT NULL THEN
    RAISE EXCEPTION 'objects outside pg_shift depend on objects of pg_shift 0.1.0, which the update replaces'
      USING ERRCODE = 'dependent_objects_still_exist',
            DETAIL = users || '.',
            HINT = 'Drop them before ALTER EXTENSION pg_shift UPDATE and create them again after it.';
  END IF;
END
$$;

-- ---------------------------------------------------------------------------
-- 1. The syncs' triggers.  0.1.0's carry 0.1.0's hash of the sync's row
-- (shift._sync_digest); 0.2.0's the digest of what was checked.  A sync
-- whose triggers agree with its row (what 0.1.0's library checked at every
-- write) has them made again in step 4; one that does not stops the update:
-- its row was edited since, and 0.2.0 seals only what was checked.  The
-- tables of every sync are locked before any trigger is dropped, so that
-- writers wait for the update rather than deadlock with it.  A transaction
-- of the application may use several synced tables in any order (read
-- orders, then write customers), so the update never waits for one of them
-- while it holds another: it waits for one alone, then takes the others
-- without waiting; if one is busy, it lets all go and starts again, waiting
-- for that one first.
-- ---------------------------------------------------------------------------

CREATE SCHEMA shift_0_1_0;
COMMENT ON SCHEMA shift_0_1_0 IS 'pg_shift 0.1.0''s tables while ALTER EXTENSION pg_shift UPDATE runs';

-- The triggers to make again: each one's definition, state and digest.
CREATE TABLE shift_0_1_0.sync_trigger (
  sync      pg_catalog.text NOT NULL,
  tgrelid   pg_catalog.oid NOT NULL,
  tgname    pg_catalog.name NOT NULL,
  def       pg_catalog.text NOT NULL,
  enabled   pg_catalog."char" NOT NULL,
  digest    pg_catalog.text NOT NULL
);

-- pg_get_triggerdef names the trigger's function and table in full only
-- where they are not on the search_path: pinned here.
CREATE FUNCTION shift_0_1_0.keep_triggers(p_name pg_catalog.text)
RETURNS pg_catalog.int4
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
  WITH t AS (
    INSERT INTO shift_0_1_0.sync_trigger
    SELECT p_name, tg.tgrelid, tg.tgname, pg_get_triggerdef(tg.oid), tg.tgenabled,
           (string_to_array(encode(tg.tgargs, 'escape'), '\000'))[3]
      FROM pg_trigger tg
     WHERE tg.tgfoid = '@extschema@._sync_trigger'::pg_catalog.regproc AND tg.tgparentid = 0
       AND tg.tgname = ANY (@extschema@._sync_trigger_names(p_name))
       AND substr(tg.tgargs, 1, octet_length(p_name) + 1)
           = convert_to(p_name, current_setting('server_encoding')) || decode('00', 'hex')
    RETURNING 1)
  SELECT count(*)::pg_catalog.int4 FROM t
$$;

DO $$
DECLARE
  s record;
  digests pg_catalog.text[];
  tables pg_catalog.regclass[];
  first pg_catalog.regclass;
  busy pg_catalog.regclass;
  t pg_catalog.regclass;
BEGIN
  -- no sync comes or goes meanwhile (writers only read it: they go on)
  LOCK TABLE @extschema@.sync IN SHARE MODE;
  SELECT array_agg(DISTINCT c.oid::pg_catalog.regclass) INTO tables
    FROM @extschema@.sync x, unnest(ARRAY[x.relation, x.target]) AS u(rel)
    JOIN pg_class c ON c.oid = u.rel;
  first := tables[1];
  WHILE first IS NOT NULL LOOP
    busy := NULL;
    BEGIN
      EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', first);
      FOREACH t IN ARRAY tables LOOP
        busy := t;
        IF t <> first THEN
          EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE NOWAIT', t);
        END IF;
      END LOOP;
      first := NULL;                    -- all taken; kept when the block ends
    EXCEPTION WHEN lock_not_available THEN
      IF busy IS NULL THEN              -- the wait itself (lock_timeout): say so
        RAISE;
      END IF;
      first := busy;                    -- all let go: wait for that one first
    END;
  END LOOP;
  FOR s IN SELECT x.name, @extschema@._sync_digest(x) AS digest FROM @extschema@.sync x ORDER BY x.name
  LOOP
    IF shift_0_1_0.keep_triggers(s.name) = 0 THEN
      RAISE WARNING 'sync "%" has no triggers: it is kept as it is, and nothing runs it', s.name
        USING HINT = format('Drop it with SELECT shift.sync_drop(%L) if it is not needed.', s.name);
      CONTINUE;
    END IF;
    SELECT array_agg(DISTINCT t.digest) INTO digests FROM shift_0_1_0.sync_trigger t WHERE t.sync = s.name;
    IF digests <> ARRAY[s.digest] THEN
      RAISE EXCEPTION 'sync "%" is not what its triggers were made for', s.name
        USING ERRCODE = 'data_corrupted',
              DETAIL = 'Its row in shift.sync was changed outside pg_shift''s functions after its triggers were made, '
                       'so pg_shift 0.1.0 has refused every write to its table since; 0.2.0 seals only what was checked.',
              HINT = format('Drop it with SELECT shift.sync_drop(%L) and update again; then create it anew.', s.name);
    END IF;
    PERFORM @extschema@._sync_uninstall(s.name);
  END LOOP;
END
$$;

-- ---------------------------------------------------------------------------
-- 2. 0.1.0's tables go aside with their rows (indexes, constraints and the
-- event sequence with them); its views and functions go.
-- ---------------------------------------------------------------------------

ALTER TABLE @extschema@.migration SET SCHEMA shift_0_1_0;
ALTER TABLE @extschema@.phase SET SCHEMA shift_0_1_0;
ALTER TABLE @extschema@.event SET SCHEMA shift_0_1_0;
ALTER TABLE @extschema@.backfill SET SCHEMA shift_0_1_0;
ALTER TABLE @extschema@.backfill_batch SET SCHEMA shift_0_1_0;
ALTER TABLE @extschema@.sync SET SCHEMA shift_0_1_0;
DROP TRIGGER event_append_only ON shift_0_1_0.event;

DO $$
DECLARE
  what pg_catalog.text;
BEGIN
  FOR what IN
    SELECT CASE WHEN d.classid = 'pg_class'::regclass THEN 'VIEW ' || d.objid::regclass::text
                WHEN p.prokind = 'p' THEN 'PROCEDURE ' || d.objid::regprocedure::text
                ELSE 'FUNCTION ' || d.objid::regprocedure::text END
      FROM pg_depend d
      LEFT JOIN pg_class c ON d.classid = 'pg_class'::regclass AND c.oid = d.objid
      LEFT JOIN pg_proc p ON d.classid = 'pg_proc'::regclass AND p.oid = d.objid
     WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
       AND d.refobjid = (SELECT e.oid FROM pg_extension e WHERE e.extname = 'pg_shift')
       AND (c.relkind = 'v' AND c.relnamespace = '@extschema@'::regnamespace
            OR p.pronamespace = '@extschema@'::regnamespace)
     ORDER BY d.classid = 'pg_proc'::regclass    -- the views first: they may call the functions
  LOOP
    EXECUTE 'DROP ' || what;
  END LOOP;
END
$$;

-- ---------------------------------------------------------------------------
-- 3. Version 0.2.0, as a fresh install makes it.
-- ---------------------------------------------------------------------------

-- @INSTALL_SCRIPT@

-- ---------------------------------------------------------------------------
-- 4. 0.1.0's rows in 0.2.0's tables.
-- ---------------------------------------------------------------------------

-- A search_path as 0.2.0 records it for a job or sync of owner: "$user"
-- is the owner (0.1.0 ran a sync's SQL with "$user" the writing role), names
-- quoted, pg_temp last.
CREATE FUNCTION shift_0_1_0.pinned_path(path pg_catalog.text, owner pg_catalog.name)
RETURNS pg_catalog.text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT shift_internal.pin_search_path(
           regexp_replace(path, '(^|,)\s*("\$user"|\$user)\s*(?=,|$)',
                          '\1' || replace(quote_ident(owner), '\', '\\'), 'g'))
$$;

-- A phase 0.1.0 marked failed because it was interrupted, in a part that
-- needs no down (a backfill), is what 0.2.0 calls interrupted: the next run
-- goes on with it.  One that still needs its down stays failed: it gets it.
CREATE VIEW shift_0_1_0.phase_now AS
SELECT p.*,
       CASE WHEN p.status = 'failed' AND NOT p.needs_cleanup
                 AND (p.error_message LIKE 'interrupted:%'
                      OR (SELECT e.kind FROM shift_0_1_0.event e
                           WHERE e.migration = p.migration AND e.phase = p.name
                           ORDER BY e.id DESC LIMIT 1) = 'interrupted')
            THEN 'interrupted' ELSE p.status END AS status_now
  FROM shift_0_1_0.phase p;

-- A migration's status follows from its phases, as 0.2.0's migration_end
-- says it (0.1.0 had no interrupted and no partial); a running one keeps
-- its lease, which the next run takes over.  Its owner is the role that
-- applied it.
INSERT INTO @extschema@.migration
  (name, script_sha256, script_path, status, operation, current_phase, nphases, created_at,
   started_at, finished_at, owner, applied_by, runner_version, host, lease_work_pid,
   lease_control_pid, lease_runner_pid, lease_host, lease_since, lease_heartbeat)
SELECT m.name, m.script_sha256, m.script_path,
       CASE WHEN m.status = 'running' THEN m.status
            ELSE coalesce((SELECT CASE WHEN bool_or(p.status_now = 'failed') THEN 'failed'
                                       WHEN bool_or(p.status_now = 'interrupted') THEN 'interrupted'
                                       WHEN bool_and(p.status_now = 'done') THEN 'done'
                                       WHEN bool_or(p.status_now = 'done') THEN 'partial'
                                       WHEN bool_or(p.status_now = 'rolled_back') THEN 'rolled_back'
                                       ELSE 'pending' END
                             FROM shift_0_1_0.phase_now p WHERE p.migration = m.name), m.status) END,
       m.operation, m.current_phase, m.nphases, m.created_at, m.started_at, m.finished_at,
       m.applied_by, m.applied_by, m.runner_version, m.host, m.lease_work_pid, m.lease_control_pid,
       m.lease_runner_pid, m.lease_host, m.lease_since, m.lease_heartbeat
  FROM shift_0_1_0.migration m;

INSERT INTO @extschema@.phase
  (migration, ordinal, name, status, reversible, has_verify, needs_cleanup, attempts, started_at,
   finished_at, duration, rows_affected, error_message, error_sqlstate)
SELECT p.migration, p.ordinal, p.name, p.status_now, p.reversible, p.has_verify, p.needs_cleanup,
       p.attempts, p.started_at, p.finished_at, p.duration, p.rows_affected,
       shift_internal.cap(p.error_message), p.error_sqlstate
  FROM shift_0_1_0.phase_now p;

INSERT INTO @extschema@.event
  (id, at, migration, phase, kind, message, sqlstate, detail, role, backend_pid, host)
OVERRIDING SYSTEM VALUE
SELECT e.id, e.at, e.migration, e.phase, e.kind, shift_internal.cap(e.message), e.sqlstate, e.detail,
       e.role, e.backend_pid, e.host
  FROM shift_0_1_0.event e ORDER BY e.id;
SELECT pg_catalog.setval(pg_catalog.pg_get_serial_sequence('@extschema@.event', 'id'), s.last_value, s.is_called)
  FROM shift_0_1_0.event_id_seq s;

-- A job's SQL was checked under search_path pg_catalog, pg_temp and ran
-- under whatever path its runner had.  The path recorded here is the one a
-- session has by default; the role that gives the job's definition again
-- (below) replaces it with its own.
INSERT INTO @extschema@.backfill
  (name, relation, kind, set_clause, where_clause, into_relation, into_columns, select_list,
   on_conflict, key_index, key_columns, owner, search_path, migration, phase, batch_min, batch_max,
   target_ms, sleep_ratio, lock_timeout_ms, max_retries, max_lag, throttle_query, state, upper_key,
   upper_key_text, last_key, last_key_text, estimated_total, keys_done, rows_done, batches, retries,
   batch_size, rate, busy_ms, throttled, last_error, last_sqlstate, created_at, started_at,
   updated_at, finished_at)
SELECT b.name, b.relation, b.kind, b.set_clause, b.where_clause, b.into_relation, b.into_columns,
       b.select_list, b.on_conflict, b.key_index, b.key_columns, b.owner,
       shift_0_1_0.pinned_path((SELECT s.reset_val FROM pg_catalog.pg_settings s
                                 WHERE s.name = 'search_path'), b.owner),
       b.migration, b.phase, b.batch_min, b.batch_max, b.target_ms, b.sleep_ratio,
       b.lock_timeout_ms, b.max_retries, b.max_lag, b.throttle_query, b.state, b.upper_key,
       b.upper_key_text, b.last_key, b.last_key_text, b.estimated_total, b.keys_done, b.rows_done,
       b.batches, b.retries, b.batch_size, b.rate, b.busy_ms, b.throttled,
       shift_internal.cap(b.last_error), b.last_sqlstate, b.created_at, b.started_at, b.updated_at,
       b.finished_at
  FROM shift_0_1_0.backfill b;

INSERT INTO @extschema@.backfill_batch (job, batch, at, keys, rows, ms, batch_size, retries)
SELECT bb.job, bb.batch, bb.at, bb.keys, bb.rows, bb.ms, bb.batch_size, bb.retries
  FROM shift_0_1_0.backfill_batch bb;

-- No job is sealed here.  0.1.0 let any member of shift_operator rewrite a
-- job's SQL, its owner and its checkpoint, and kept no record of what was
-- made: sealing a job as its recorded owner could run an operator's SQL as a
-- superuser.  A job left unsealed does not run (backfill_verify says why)
-- until its definition is given again by a role that may act as its owner
-- (shift.backfill_create with if_exists => 'reuse', which the runner's
-- db:backfill calls): only if the two agree is it checked, as that role,
-- and sealed, keeping its checkpoint.
DO $$
DECLARE
  b record;
  ended pg_catalog.text[];
BEGIN
  FOR b IN SELECT x.name FROM @extschema@.backfill x WHERE x.state NOT IN ('done', 'cancelled')
            ORDER BY x.name LOOP
    RAISE WARNING 'backfill job "%" of pg_shift 0.1.0 runs again once its definition is given again', b.name
      USING DETAIL = '0.1.0 let members of shift_operator change a job''s SQL, owner and checkpoint; 0.2.0 runs only what it checked, from the checkpoint recorded.',
            HINT = 'pgshift run resumes it from its checkpoint; from SQL, call shift.backfill_create with the same '
                   'definition and if_exists => ''reuse''.';
  END LOOP;
  -- ended jobs run no more, but a job recorded as done skips its phase's
  -- backfill when given again: say which are taken as recorded
  SELECT array_agg(x.name ORDER BY x.name) INTO ended
    FROM @extschema@.backfill x WHERE x.state IN ('done', 'cancelled');
  IF ended IS NOT NULL THEN
    RAISE WARNING '% backfill job(s) of pg_shift 0.1.0 recorded as done or cancelled are kept as recorded',
                  cardinality(ended)
      USING DETAIL = format('0.1.0 let members of shift_operator change a job''s state and checkpoint. The jobs: %s.',
                            array_to_string(ended[1:20], ', ') || CASE WHEN cardinality(ended) > 20 THEN ', ...' ELSE '' END),
            HINT = 'If you do not trust what those members did, compare the tables (shift.compare) before contracting.';
  END IF;
END
$$;

-- 0.1.0 kept the VALIDATE statements a cut-over left to run as text, which
-- it ran as they were; 0.2.0 keeps the constraints, and builds the
-- statements from the catalog.  Only foreign keys into the sync's tables.
CREATE FUNCTION shift_0_1_0.to_validate(s shift_0_1_0.sync)
RETURNS pg_catalog.oid[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE WHEN s.pending_validate IS NOT NULL THEN ARRAY(
    SELECT con.oid
      FROM unnest(s.pending_validate) WITH ORDINALITY AS v(stmt, ord)
      JOIN pg_constraint con
        ON format('ALTER TABLE %s VALIDATE CONSTRAINT %I', con.conrelid::regclass, con.conname) = v.stmt
     WHERE con.contype = 'f' AND con.confrelid IN (s.relation, s.target)
     ORDER BY v.ord) END
$$;

-- 0.1.0 knew no application versions: new_version and old_version stay
-- NULL, so each sync guesses its writer as before, and its definition (and
-- digest) has no version keys (shift_internal.sync_definition).
INSERT INTO @extschema@.sync
  (name, kind, relation, set_clause, reverse_set, target, target_columns, expressions, target_key,
   reverse_columns, reverse_expressions, relation_key, relation_alias, target_alias,
   key_follows_source, direction, search_path, owner, migration, phase, created_at, relation_name,
   target_name, archive_name, cutover_at, repointed_fks, to_validate)
SELECT s.name, s.kind, s.relation, s.set_clause, s.reverse_set, s.target, s.target_columns,
       s.expressions, s.target_key, s.reverse_columns, s.reverse_expressions, s.relation_key,
       s.relation_alias, s.target_alias, s.key_follows_source, s.direction,
       shift_0_1_0.pinned_path(s.search_path, s.owner), s.owner, s.migration, s.phase, s.created_at,
       s.relation_name, s.target_name, s.archive_name, s.cutover_at, s.repointed_fks,
       shift_0_1_0.to_validate(s)
  FROM shift_0_1_0.sync s;

-- Every sync is compiled again (as its owner, under its search_path) and
-- sealed.  One whose triggers were dropped in step 1 must compile: its
-- triggers are then made again as they were (same tables, events, state),
-- carrying the new digest; otherwise the update stops, and 0.1.0's
-- triggers stay as they were.
DO $$
DECLARE
  s record;
  t record;
  digest pg_catalog.text;
  def pg_catalog.text;
  msg pg_catalog.text;
  state pg_catalog.text;
BEGIN
  FOR s IN SELECT x.name, x.pending_validate, y.to_validate,
                  EXISTS (SELECT FROM shift_0_1_0.sync_trigger k WHERE k.sync = x.name) AS live
             FROM shift_0_1_0.sync x JOIN @extschema@.sync y ON y.name = x.name
            ORDER BY x.name
  LOOP
    IF cardinality(s.pending_validate) > cardinality(s.to_validate) THEN
      RAISE WARNING 'sync "%": of the statements its cut-over left to run, only those validating its foreign keys are kept', s.name
        USING DETAIL = format('Dropped: %s.',
                         (SELECT string_agg(v, '; ') FROM unnest(s.pending_validate) v
                           WHERE NOT EXISTS (SELECT FROM pg_constraint con
                                              WHERE con.oid = ANY (s.to_validate)
                                                AND format('ALTER TABLE %s VALIDATE CONSTRAINT %I',
                                                           con.conrelid::regclass, con.conname) = v)));
    END IF;
    BEGIN
      PERFORM shift_internal._sync_check(s.name);
    EXCEPTION WHEN OTHERS THEN
      GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, state = RETURNED_SQLSTATE;
      IF s.live THEN
        RAISE EXCEPTION 'sync "%" of pg_shift 0.1.0 does not compile under 0.2.0: %', s.name, msg
          USING ERRCODE = state,
                DETAIL = 'Its triggers would fail every write to its table.',
                HINT = 'Until the update, its triggers keep running as they did: finish or roll back its migration, '
                       'or drop it with shift.sync_drop, then update again.';
      END IF;
      RAISE WARNING 'sync "%" of pg_shift 0.1.0 does not compile under 0.2.0: %', s.name, msg
        USING HINT = format('It has no triggers; drop it with SELECT shift.sync_drop(%L).', s.name);
      CONTINUE;
    END;
    PERFORM shift_internal._sync_seal(s.name);
    digest := shift_internal.sync_verify(s.name);
    FOR t IN SELECT * FROM shift_0_1_0.sync_trigger x WHERE x.sync = s.name ORDER BY x.tgrelid, x.tgname LOOP
      -- on 0.2.0's trigger function: the definition ends in 0.1.0's
      -- "EXECUTE FUNCTION shift._sync_trigger('name', ..., 'digest')"; only
      -- the words change, never a quote, so the statement parses as it did
      def := regexp_replace(t.def, ' EXECUTE FUNCTION @extschema@\._sync_trigger(\((''([^'']|'''')*''(, )?)*\))$',
                            ' EXECUTE FUNCTION shift_internal._sync_trigger\1');
      IF def = t.def THEN
        RAISE EXCEPTION 'sync "%": trigger % does not run pg_shift 0.1.0''s trigger function as expected', s.name, t.tgname
          USING ERRCODE = 'data_corrupted', DETAIL = t.def;
      END IF;
      EXECUTE replace(def, format('%L)', t.digest), format('%L)', digest));
      IF t.enabled <> 'O' THEN
        EXECUTE format('ALTER TABLE %s %s TRIGGER %I', t.tgrelid::regclass,
                       CASE t.enabled WHEN 'D' THEN 'DISABLE' WHEN 'R' THEN 'ENABLE REPLICA'
                                      ELSE 'ENABLE ALWAYS' END, t.tgname);
      END IF;
    END LOOP;
  END LOOP;
END
$$;

-- What was moved aside goes; 0.1.0's tables leave the extension first, so
-- that pg_dump no longer looks for them (pg_extension.extconfig).
DROP FUNCTION shift_0_1_0.to_validate(shift_0_1_0.sync);
DROP FUNCTION shift_0_1_0.pinned_path(pg_catalog.text, pg_catalog.name);
DROP FUNCTION shift_0_1_0.keep_triggers(pg_catalog.text);
DROP VIEW shift_0_1_0.phase_now;
DROP TABLE shift_0_1_0.sync_trigger;
ALTER EXTENSION pg_shift DROP TABLE shift_0_1_0.backfill_batch;
ALTER EXTENSION pg_shift DROP TABLE shift_0_1_0.backfill;
ALTER EXTENSION pg_shift DROP TABLE shift_0_1_0.sync;
ALTER EXTENSION pg_shift DROP TABLE shift_0_1_0.event;
ALTER EXTENSION pg_shift DROP SEQUENCE shift_0_1_0.event_id_seq;
ALTER EXTENSION pg_shift DROP TABLE shift_0_1_0.phase;
ALTER EXTENSION pg_shift DROP TABLE shift_0_1_0.migration;
DROP TABLE shift_0_1_0.backfill_batch, shift_0_1_0.backfill, shift_0_1_0.sync, shift_0_1_0.event,
           shift_0_1_0.phase, shift_0_1_0.migration;
DROP SCHEMA shift_0_1_0;
