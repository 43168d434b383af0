-- ---------------------------------------------------------------------------
-- Bookkeeping: what every migration did, is doing, and who is doing it.
--
-- A runner works with two sessions: the "work" session runs the migration's
-- SQL and holds the migration's advisory lock (shift.try_lock); the "control"
-- session records progress through the functions below, which check that it
-- holds the lease (shift.migration_begin) and refuse impossible transitions
-- with SQLSTATE 55000.  Phase states:
--
--   pending -> running -> done -> rolling_back -> rolled_back -> running ...
--                      |-> failed (its own error) -> running (retry) | rolling_back
--                      \-> interrupted -> running (resume) | rolling_back
--
-- One rule decides between the two ends of a running phase (README,
-- "Interrupted or failed"): a phase that failed on its own (its SQL or Lua
-- raised, its verify gate refused) has its down run at once; a phase that
-- was interrupted (the runner killed or stopped by a signal, its session
-- terminated, the connection or the server lost, its lease taken over) is
-- resumed by the next run, which never runs its down first: what it did is
-- kept and a backfill goes on from its checkpoint.  A rollback runs the down
-- of an interrupted phase like that of a done one.
--
-- needs_cleanup is true while a phase's effects may be partial (it started and
-- neither finished nor had its down run since): a failed phase whose down has
-- not run (or failed) gets it before it runs again or is rolled back past.
-- ---------------------------------------------------------------------------

-- Role for non-superusers who run migrations: GRANT shift_operator TO someone.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'shift_operator') THEN
    CREATE ROLE shift_operator NOLOGIN;
  END IF;
END
$$;

CREATE TABLE @extschema@.migration (
  name              pg_catalog.text PRIMARY KEY
                    CHECK (name OPERATOR(pg_catalog.~) '^[A-Za-z0-9_.-]{1,120}$'),
  script_sha256     pg_catalog.text NOT NULL
                    CHECK (script_sha256 OPERATOR(pg_catalog.~) '^[0-9a-f]{64}$'),
  script_path       pg_catalog.text,
  -- pending (nothing done), running (leased), done, partial (some phases
  -- done, the rest not started or rolled back), failed, interrupted, rolled_back
  status            pg_catalog.text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'running', 'failed', 'interrupted', 'done',
                                      'partial', 'rolled_back')),
  operation         pg_catalog.text CHECK (operation IN ('run', 'rollback', 'verify')),
  current_phase     pg_catalog.text,
  nphases           pg_catalog.int4 NOT NULL CHECK (nphases > 0),
  created_at        pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now(),
  started_at        pg_catalog.timestamptz,
  finished_at       pg_catalog.timestamptz,
  -- the role that registered it: only it (a member with its privileges, or a
  -- superuser) may see it, run it, roll it back (see shift_internal.may_act)
  owner             pg_catalog.name NOT NULL,
  applied_by        pg_catalog.name NOT NULL,
  runner_version    pg_catalog.text,
  host              pg_catalog.text,
  -- the lease: set while a runner works on the migration
  lease_work_pid    pg_catalog.int4,
  lease_control_pid pg_catalog.int4,
  lease_runner_pid  pg_catalog.int4,
  lease_host        pg_catalog.text,
  lease_since       pg_catalog.timestamptz,
  lease_heartbeat   pg_catalog.timestamptz,
  CHECK ((status = 'running') = (lease_control_pid IS NOT NULL))
);
COMMENT ON TABLE @extschema@.migration IS
  'one row per migration pgshift has seen: script hash, state, and the lease of the runner working on it';

CREATE TABLE @extschema@.phase (
  migration         pg_catalog.text NOT NULL
                    REFERENCES @extschema@.migration (name) ON UPDATE CASCADE ON DELETE CASCADE,
  ordinal           pg_catalog.int4 NOT NULL CHECK (ordinal > 0),
  name              pg_catalog.text NOT NULL,
  status            pg_catalog.text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'running', 'done', 'failed', 'interrupted',
                                      'rolling_back', 'rolled_back')),
  reversible        pg_catalog.bool NOT NULL,
  has_verify        pg_catalog.bool NOT NULL DEFAULT false,
  needs_cleanup     pg_catalog.bool NOT NULL DEFAULT false,
  attempts          pg_catalog.int4 NOT NULL DEFAULT 0,
  started_at        pg_catalog.timestamptz,
  finished_at       pg_catalog.timestamptz,
  duration          pg_catalog.interval,
  rows_affected     pg_catalog.int8,
  error_message     pg_catalog.text,
  error_sqlstate    pg_catalog.text,
  memo              pg_catalog.jsonb,   -- what the phase's up remembered for its down (db:remember)
  memo_by           pg_catalog.name,    -- the role that wrote it: only that role reads it back
  PRIMARY KEY (migration, ordinal),
  UNIQUE (migration, name)
);
COMMENT ON TABLE @extschema@.phase IS
  'the phases of each migration in order, with their state, timings and last error';

CREATE TABLE @extschema@.event (
  id                pg_catalog.int8 GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at                pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
  migration         pg_catalog.text NOT NULL,
  phase             pg_catalog.text,
  kind              pg_catalog.text NOT NULL CHECK (kind IN (
                      'registered', 'run_started', 'run_finished', 'rollback_started',
                      'rollback_finished', 'verify_started', 'verify_finished',
                      'phase_started', 'phase_done', 'phase_failed', 'phase_cleaned_up',
                      'cleanup_failed', 'phase_rollback_started', 'phase_rolled_back',
                      'phase_rollback_failed', 'verify_passed', 'verify_failed', 'retry',
                      'takeover', 'drift_allowed', 'script_changed', 'interrupted', 'error')),
  message           pg_catalog.text,
  sqlstate          pg_catalog.text,
  detail            pg_catalog.jsonb,
  role              pg_catalog.name NOT NULL DEFAULT CURRENT_USER,
  backend_pid       pg_catalog.int4 NOT NULL DEFAULT pg_catalog.pg_backend_pid(),
  host              pg_catalog.text
);
CREATE INDEX event_migration_idx ON @extschema@.event (migration, id);
COMMENT ON TABLE @extschema@.event IS
  'append-only log of every start, finish, failure, rollback, retry and lease takeover';

CREATE FUNCTION @extschema@.event_append_only()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RAISE EXCEPTION 'shift.event is append-only'
    USING ERRCODE = 'insufficient_privilege',
          HINT = 'Events record what happened; they are never changed or deleted one by one.';
END
$$;
CREATE TRIGGER event_append_only BEFORE UPDATE OR DELETE ON @extschema@.event
  FOR EACH ROW EXECUTE FUNCTION @extschema@.event_append_only();

-- Each role sees its own migrations (and a member of a role, that role's);
-- nobody but the owner of pg_shift writes these tables (see sql/control.sql).
ALTER TABLE @extschema@.migration ENABLE ROW LEVEL SECURITY;
CREATE POLICY visible_to_owner ON @extschema@.migration FOR SELECT
  USING (shift_internal.may_act(owner));
ALTER TABLE @extschema@.phase ENABLE ROW LEVEL SECURITY;
CREATE POLICY visible_to_owner ON @extschema@.phase FOR SELECT
  USING (EXISTS (SELECT 1 FROM @extschema@.migration m
                  WHERE m.name OPERATOR(pg_catalog.=) phase.migration));
ALTER TABLE @extschema@.event ENABLE ROW LEVEL SECURITY;
CREATE POLICY visible_to_owner ON @extschema@.event FOR SELECT
  USING (EXISTS (SELECT 1 FROM @extschema@.migration m
                  WHERE m.name OPERATOR(pg_catalog.=) event.migration));

-- pg_dump keeps the history with the database.
SELECT pg_catalog.pg_extension_config_dump('@extschema@.migration', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.phase', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.event', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.event_id_seq', '');

-- ---------------------------------------------------------------------------
-- The migration lock: a session-level advisory lock, taken without waiting
-- (a runner blocked in pg_advisory_lock would hold a snapshot that makes
-- CREATE INDEX CONCURRENTLY in the other runner wait for it).
-- ---------------------------------------------------------------------------

-- Key: (0x73686674 'shft', hashtext(name)).  Two names may share a key; the
-- only effect is that their runners cannot work at the same time.
CREATE FUNCTION @extschema@.try_lock(migration pg_catalog.text)
RETURNS pg_catalog.bool
LANGUAGE sql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pg_catalog.pg_try_advisory_lock(1936221812, pg_catalog.hashtext(migration)) $$;
COMMENT ON FUNCTION @extschema@.try_lock(pg_catalog.text) IS
  'takes the migration''s advisory lock for this session if it is free; never waits';

CREATE FUNCTION @extschema@.unlock(migration pg_catalog.text)
RETURNS pg_catalog.bool
LANGUAGE sql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pg_catalog.pg_advisory_unlock(1936221812, pg_catalog.hashtext(migration)) $$;

-- Which session holds a migration's lock, and what the lease says about it.
CREATE FUNCTION @extschema@.lock_holder(migration pg_catalog.text)
RETURNS TABLE (pid pg_catalog.int4, application_name pg_catalog.text,
               client pg_catalog.text, backend_start pg_catalog.timestamptz,
               state pg_catalog.text, query pg_catalog.text,
               lease_host pg_catalog.text, lease_runner_pid pg_catalog.int4,
               lease_since pg_catalog.timestamptz, heartbeat_age pg_catalog.interval)
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT l.pid, a.application_name,
         coalesce(host(a.client_addr), 'local socket'), a.backend_start, a.state, a.query,
         m.lease_host, m.lease_runner_pid, m.lease_since, now() - m.lease_heartbeat
    FROM pg_locks l
    LEFT JOIN pg_stat_activity a ON a.pid = l.pid
    LEFT JOIN @extschema@.migration m ON m.name = lock_holder.migration
   WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
     AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
     AND l.classid = 1936221812::oid
     AND l.objid = (hashtext(lock_holder.migration)::int8 & 4294967295)::oid
$$;

-- ---------------------------------------------------------------------------
-- State transitions.  Each one locks the migration row, checks the lease and
-- the current state, and appends an event.
-- ---------------------------------------------------------------------------

-- The migration row, locked, leased to this session; raises otherwise.
CREATE FUNCTION shift_internal._leased(p_migration pg_catalog.text)
RETURNS @extschema@.migration
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  m @extschema@.migration;
BEGIN
  SELECT * INTO m FROM @extschema@.migration WHERE name = p_migration FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'migration "%" does not exist', p_migration
      USING ERRCODE = 'undefined_object';
  END IF;
  PERFORM shift_internal.check_owner(format('migration "%s"', p_migration), m.owner);
  IF m.lease_control_pid IS DISTINCT FROM pg_backend_pid() THEN
    RAISE EXCEPTION 'migration "%" is not leased by this session', p_migration
      USING ERRCODE = 'object_not_in_prerequisite_state',
            DETAIL = CASE WHEN m.lease_control_pid IS NULL THEN 'Nobody holds its lease.'
                          ELSE format('Session %s holds its lease.', m.lease_control_pid) END,
            HINT = 'Call shift.migration_begin first (pgshift does).';
  END IF;
  RETURN m;
END
$$;

-- The phase row, locked; raises if the migration has no such phase.
CREATE FUNCTION shift_internal._phase(p_migration pg_catalog.text, p_phase pg_catalog.text)
RETURNS @extschema@.phase
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  p @extschema@.phase;
BEGIN
  SELECT * INTO p FROM @extschema@.phase
   WHERE migration = p_migration AND name = p_phase FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'migration "%" has no phase "%"', p_migration, p_phase
      USING ERRCODE = 'undefined_object';
  END IF;
  RETURN p;
END
$$;

CREATE FUNCTION shift_internal._event(p_migration pg_catalog.text, p_phase pg_catalog.text,
                                   p_kind pg_catalog.text, p_message pg_catalog.text DEFAULT NULL,
                                   p_sqlstate pg_catalog.text DEFAULT NULL,
                                   p_detail pg_catalog.jsonb DEFAULT NULL)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
  INSERT INTO @extschema@.event (migration, phase, kind, message, sqlstate, detail, host, role)
  SELECT p_migration, p_phase, p_kind, shift_internal.cap(p_message), p_sqlstate, p_detail,
         (SELECT lease_host FROM @extschema@.migration WHERE name = p_migration),
         pg_get_userbyid(shift_internal.caller())
$$;

/*
 * The arguments of shift.migration_begin checked: its operation, the
 * migration's name and the phases' list (see there).
 */
CREATE FUNCTION shift_internal._migration_args(v_mig pg_catalog.text, phases pg_catalog.jsonb,
                                               operation pg_catalog.text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  n pg_catalog.int4;
  ph pg_catalog.jsonb;
BEGIN
  IF operation NOT IN ('run', 'rollback', 'verify') THEN
    RAISE EXCEPTION 'unknown operation "%"', operation
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Use run, rollback or verify.';
  END IF;
  IF v_mig IS NULL OR v_mig !~ '^[A-Za-z0-9_.-]{1,120}$' THEN
    RAISE EXCEPTION 'invalid migration name "%"', v_mig
      USING ERRCODE = 'invalid_parameter_value',
            DETAIL = 'Names are 1 to 120 letters, digits, "_", "." or "-".';
  END IF;
  IF jsonb_typeof(phases) IS DISTINCT FROM 'array' OR jsonb_array_length(phases) = 0 THEN
    RAISE EXCEPTION 'phases must be a non-empty JSON array'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  n := jsonb_array_length(phases);
  FOR i IN 0 .. n - 1 LOOP
    ph := phases -> i;
    IF jsonb_typeof(ph -> 'name') IS DISTINCT FROM 'string'
       OR jsonb_typeof(ph -> 'reversible') IS DISTINCT FROM 'boolean' THEN
      RAISE EXCEPTION 'phase % in phases needs a string "name" and a boolean "reversible"', i + 1
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF (ph ->> 'name') !~ '^[A-Za-z0-9_.-]{1,120}$' THEN
      RAISE EXCEPTION 'invalid phase name "%"', ph ->> 'name'
        USING ERRCODE = 'invalid_parameter_value',
              DETAIL = 'Names are 1 to 120 letters, digits, "_", "." or "-".';
    END IF;
  END LOOP;
  IF (SELECT count(DISTINCT e ->> 'name') FROM jsonb_array_elements(phases) e) <> n THEN
    RAISE EXCEPTION 'phase names must be unique' USING ERRCODE = 'invalid_parameter_value';
  END IF;
END
$$;

/*
 * Migration m, registered with another script than script_sha256: refused
 * if m was completed (unless allow_drift), or if a phase that has started
 * would lose its name or place; otherwise the change is logged.
 */
CREATE FUNCTION shift_internal._migration_drift(m @extschema@.migration, script_sha256 pg_catalog.text,
                                                phases pg_catalog.jsonb, allow_drift pg_catalog.bool)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  p @extschema@.phase;
  new_name pg_catalog.text;
BEGIN
  -- completed means every phase done (the status may say running after a crash)
  IF NOT EXISTS (SELECT FROM @extschema@.phase pp
                  WHERE pp.migration = m.name AND pp.status <> 'done')
     AND NOT allow_drift THEN
    RAISE EXCEPTION 'migration "%" was completed with a different script', m.name
      USING ERRCODE = 'object_not_in_prerequisite_state',
            DETAIL = format('It ran with sha256 %s; the script now has sha256 %s.',
                            m.script_sha256, script_sha256),
            HINT = 'Put changes in a new migration. To accept the edited script anyway, run with --allow-drift (it is logged).';
  END IF;
  -- Every phase that has started must keep its name and place.
  FOR p IN SELECT * FROM @extschema@.phase pp
            WHERE pp.migration = m.name AND pp.status <> 'pending' ORDER BY pp.ordinal LOOP
    new_name := phases -> (p.ordinal - 1) ->> 'name';
    IF new_name IS DISTINCT FROM p.name THEN
      RAISE EXCEPTION 'migration "%": phase % "%" is % but the script now has %',
                      m.name, p.ordinal, p.name, p.status,
                      coalesce(format('"%s" in its place', new_name), 'no such phase')
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = 'Phases that have started cannot be renamed, moved or removed; roll them back first.';
    END IF;
  END LOOP;
  PERFORM shift_internal._event(m.name, NULL,
    CASE WHEN NOT EXISTS (SELECT FROM @extschema@.phase pp
                           WHERE pp.migration = m.name AND pp.status <> 'done')
         THEN 'drift_allowed' ELSE 'script_changed' END,
    format('script sha256 %s... -> %s...', left(m.script_sha256, 12), left(script_sha256, 12)),
    NULL, jsonb_build_object('old_sha256', m.script_sha256, 'new_sha256', script_sha256));
END
$$;

/*
 * The phase list of migration p_migration made what phases says: names,
 * flags, new and removed phases (the state of a phase that keeps its place
 * is kept).
 */
CREATE FUNCTION shift_internal._phase_list(p_migration pg_catalog.text, phases pg_catalog.jsonb)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
  DELETE FROM @extschema@.phase pp
   WHERE pp.migration = p_migration AND pp.ordinal > jsonb_array_length(phases);
  -- two passes so that reordering pending phases never violates UNIQUE (migration, name)
  UPDATE @extschema@.phase pp SET name = '#' || pp.ordinal
   WHERE pp.migration = p_migration;
  INSERT INTO @extschema@.phase AS pp (migration, ordinal, name, reversible, has_verify)
  SELECT p_migration, e.ord::int4, e.val ->> 'name', (e.val ->> 'reversible')::bool,
         coalesce((e.val ->> 'has_verify')::bool, false)
    FROM jsonb_array_elements(phases) WITH ORDINALITY AS e(val, ord)
  ON CONFLICT ON CONSTRAINT phase_pkey DO UPDATE
    SET name = excluded.name, reversible = excluded.reversible,
        has_verify = excluded.has_verify
$$;

/*
 * shift.migration_begin(migration, script_sha256, phases, operation, work_pid, ...)
 *
 * Registers the migration (or reconciles it with the script as it is now) and
 * gives this session its lease.  phases is a JSON array of
 * {"name": text, "reversible": bool, "has_verify": bool} in order.  The
 * session work_pid must hold the migration's advisory lock (shift.try_lock):
 * that lock, not the lease, is what keeps two runners apart, so a lease
 * still marked as held is stale and is taken over (and logged).  A script
 * whose hash differs from the one a completed migration ran is refused
 * unless allow_drift; for a migration not yet complete it is accepted if
 * every phase that has started keeps its name and place.
 *
 * Returns the phases with their state.
 */
CREATE FUNCTION shift_internal.migration_begin(
  migration pg_catalog.text, script_sha256 pg_catalog.text, phases pg_catalog.jsonb,
  operation pg_catalog.text, work_pid pg_catalog.int4,
  runner_version pg_catalog.text DEFAULT NULL, host pg_catalog.text DEFAULT NULL,
  runner_pid pg_catalog.int4 DEFAULT NULL, script_path pg_catalog.text DEFAULT NULL,
  allow_drift pg_catalog.bool DEFAULT false)
RETURNS TABLE (ordinal pg_catalog.int4, name pg_catalog.text, status pg_catalog.text,
               reversible pg_catalog.bool, needs_cleanup pg_catalog.bool)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  m @extschema@.migration;
  n pg_catalog.int4;
  v_mig CONSTANT pg_catalog.text := migration_begin.migration;
BEGIN
  PERFORM shift_internal._migration_args(v_mig, phases, operation);
  n := jsonb_array_length(phases);

  IF NOT EXISTS (
      SELECT FROM pg_locks l
       WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
         AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
         AND l.classid = 1936221812::oid
         AND l.objid = (hashtext(v_mig)::int8 & 4294967295)::oid
         AND l.pid = work_pid) THEN
    RAISE EXCEPTION 'session % does not hold the lock of migration "%"', work_pid, v_mig
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Take it first with SELECT shift.try_lock(...) in the session that runs the migration.';
  END IF;

  SELECT * INTO m FROM @extschema@.migration mm WHERE mm.name = v_mig FOR UPDATE;
  IF NOT FOUND THEN
    INSERT INTO @extschema@.migration (name, script_sha256, script_path, nphases, owner, applied_by)
    VALUES (v_mig, script_sha256, script_path, n, pg_get_userbyid(shift_internal.caller()),
            pg_get_userbyid(shift_internal.caller()))
    RETURNING * INTO m;
    PERFORM shift_internal._phase_list(v_mig, phases);
    PERFORM shift_internal._event(v_mig, NULL, 'registered',
                               format('%s phase%s', n, CASE WHEN n = 1 THEN '' ELSE 's' END), NULL,
                               jsonb_build_object('script_sha256', script_sha256));
  ELSE
    PERFORM shift_internal.check_owner(format('migration "%s"', v_mig), m.owner);
    -- We hold the advisory lock, so a lease still recorded is stale.
    IF m.lease_control_pid IS NOT NULL THEN
      -- an interruption: resumed by a run, or undone by a rollback, never half of each
      UPDATE @extschema@.phase pp
         SET status = 'interrupted', needs_cleanup = pp.reversible, finished_at = now(),
             error_message = 'interrupted: the runner stopped while the phase was running'
       WHERE pp.migration = v_mig AND pp.status IN ('running', 'rolling_back');
      PERFORM shift_internal._event(v_mig, NULL, 'takeover',
        format('lease of pgshift pid %s on %s taken over: its sessions %s and %s are gone',
               coalesce(m.lease_runner_pid::text, '?'), coalesce(m.lease_host, '?'),
               m.lease_work_pid, m.lease_control_pid),
        NULL,
        jsonb_build_object('runner_pid', m.lease_runner_pid, 'host', m.lease_host,
                           'work_pid', m.lease_work_pid, 'control_pid', m.lease_control_pid,
                           'since', m.lease_since, 'heartbeat', m.lease_heartbeat));
    END IF;

    IF m.script_sha256 <> script_sha256 THEN
      PERFORM shift_internal._migration_drift(m, script_sha256, phases, allow_drift);
    END IF;

    PERFORM shift_internal._phase_list(v_mig, phases);
  END IF;

  UPDATE @extschema@.migration mm
     SET script_sha256 = migration_begin.script_sha256,
         script_path = coalesce(migration_begin.script_path, mm.script_path),
         nphases = n, status = 'running', operation = migration_begin.operation,
         started_at = now(), finished_at = NULL,
         runner_version = migration_begin.runner_version, host = migration_begin.host,
         lease_work_pid = work_pid, lease_control_pid = pg_backend_pid(),
         lease_runner_pid = runner_pid, lease_host = migration_begin.host,
         lease_since = now(), lease_heartbeat = now()
   WHERE mm.name = v_mig;
  PERFORM shift_internal._event(v_mig, NULL, operation || '_started',
                             format('pgshift %s (pid %s) on %s', coalesce(runner_version, '?'),
                                    coalesce(runner_pid::text, '?'), coalesce(host, '?')));

  RETURN QUERY
    SELECT pp.ordinal, pp.name, pp.status, pp.reversible, pp.needs_cleanup
      FROM @extschema@.phase pp WHERE pp.migration = v_mig ORDER BY pp.ordinal;
END
$$;
SELECT shift_internal._owner_call('migration_begin');

-- shift.heartbeat(migration): the lease holder is alive.
CREATE FUNCTION shift_internal.heartbeat(migration pg_catalog.text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM shift_internal._leased(migration);
  UPDATE @extschema@.migration SET lease_heartbeat = now() WHERE name = heartbeat.migration;
END
$$;
SELECT shift_internal._owner_call('heartbeat');

-- ---------------------------------------------------------------------------
-- The phase state machine, as a table: every move a phase can make, from
-- which state (and, for a failed phase, whether its down is still owed), to
-- which state (NULL: it stays), what needs_cleanup becomes ('true',
-- 'false', 'reversible': whether the phase has a down, NULL: unchanged),
-- and the event it records.  _phase_check says whether a move is allowed
-- (and names the state when it is not); _phase_apply makes it.  The
-- functions below add what is special to each move (the operation it
-- belongs to, the order of phases) and its fields.
-- ---------------------------------------------------------------------------
CREATE TABLE shift_internal.phase_move (
  move          pg_catalog.text NOT NULL,
  verb          pg_catalog.text NOT NULL,     -- "phase p of migration m cannot <verb>: it is ..."
  from_status   pg_catalog.text NOT NULL,
  owes_down     pg_catalog.bool,              -- NULL: either way
  to_status     pg_catalog.text,
  cleanup       pg_catalog.text CHECK (cleanup IN ('true', 'false', 'reversible')),
  event         pg_catalog.text NOT NULL,
  UNIQUE (move, from_status, owes_down)
);
INSERT INTO shift_internal.phase_move VALUES
  ('start', 'start', 'pending', NULL, 'running', 'true', 'phase_started'),
  ('start', 'start', 'failed', false, 'running', 'true', 'phase_started'),
  ('start', 'start', 'interrupted', NULL, 'running', 'true', 'phase_started'),
  ('start', 'start', 'rolled_back', NULL, 'running', 'true', 'phase_started'),
  ('done', 'finish', 'running', NULL, 'done', 'false', 'phase_done'),
  ('fail', 'fail', 'running', NULL, 'failed', 'reversible', 'phase_failed'),
  ('interrupt', 'fail', 'running', NULL, 'interrupted', 'reversible', 'interrupted'),
  ('clean', 'clean up', 'failed', true, NULL, 'false', 'phase_cleaned_up'),
  ('rollback', 'be rolled back', 'done', NULL, 'rolling_back', 'true', 'phase_rollback_started'),
  ('rollback', 'be rolled back', 'interrupted', NULL, 'rolling_back', 'true', 'phase_rollback_started'),
  ('rollback', 'be rolled back', 'failed', true, 'rolling_back', 'true', 'phase_rollback_started'),
  ('rolled_back', 'be marked rolled back', 'rolling_back', NULL, 'rolled_back', 'false', 'phase_rolled_back'),
  ('rollback_fail', 'fail its rollback', 'rolling_back', NULL, 'failed', 'true', 'phase_rollback_failed'),
  ('rollback_interrupt', 'fail its rollback', 'rolling_back', NULL, 'interrupted', 'true', 'interrupted');

-- The move allowed from p's state, or an error naming the state.
CREATE FUNCTION shift_internal._phase_check(p @extschema@.phase, p_move pg_catalog.text)
RETURNS shift_internal.phase_move
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  mv shift_internal.phase_move;
  verb pg_catalog.text;
  owes pg_catalog.bool := p.needs_cleanup AND p.reversible;
BEGIN
  SELECT * INTO mv FROM shift_internal.phase_move x
   WHERE x.move = p_move AND x.from_status = p.status AND (x.owes_down IS NULL OR x.owes_down = owes);
  IF FOUND THEN
    RETURN mv;
  END IF;
  verb := (SELECT min(x.verb) FROM shift_internal.phase_move x WHERE x.move = p_move);
  IF p_move = 'start' AND p.status = 'failed' THEN
    RAISE EXCEPTION 'phase "%" of migration "%" cannot start: it failed and its down has not run',
                    p.name, p.migration
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Run the phase''s down and record it with shift.phase_cleaned first (pgshift does).';
  ELSIF p_move = 'clean' THEN
    RAISE EXCEPTION 'phase "%" of migration "%" has nothing to clean up: it is %', p.name, p.migration,
                    CASE WHEN p.status = 'failed' THEN 'failed and clean' ELSE p.status END
      USING ERRCODE = 'object_not_in_prerequisite_state';
  ELSIF p_move = 'done' THEN
    RAISE EXCEPTION 'phase "%" of migration "%" cannot finish: it is %', p.name, p.migration, p.status
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Only a running phase can finish; start it with shift.phase_start.';
  END IF;
  RAISE EXCEPTION 'phase "%" of migration "%" cannot %: it is %', p.name, p.migration, verb,
                  CASE WHEN p.status = 'failed' AND p_move = 'rollback' THEN 'failed and already clean'
                       ELSE p.status END
    USING ERRCODE = 'object_not_in_prerequisite_state';
END
$$;

-- Makes move mv of phase p, with the fields the move sets (NULL: not its),
-- and records its event.
CREATE FUNCTION shift_internal._phase_apply(p @extschema@.phase, mv shift_internal.phase_move,
                                            message pg_catalog.text DEFAULT NULL,
                                            sqlstate pg_catalog.text DEFAULT NULL,
                                            rows_affected pg_catalog.int8 DEFAULT NULL,
                                            event_message pg_catalog.text DEFAULT NULL,
                                            event_detail pg_catalog.jsonb DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  starting CONSTANT pg_catalog.bool := mv.to_status IN ('running', 'rolling_back');
  ending CONSTANT pg_catalog.bool := mv.to_status IS NOT NULL AND NOT starting;
BEGIN
  UPDATE @extschema@.phase pp
     SET status = coalesce(mv.to_status, pp.status),
         needs_cleanup = CASE mv.cleanup WHEN 'true' THEN true WHEN 'false' THEN false
                                         WHEN 'reversible' THEN pp.reversible ELSE pp.needs_cleanup END,
         attempts = pp.attempts + CASE WHEN mv.to_status = 'running' THEN 1 ELSE 0 END,
         started_at = CASE WHEN starting THEN now() ELSE pp.started_at END,
         finished_at = CASE WHEN starting THEN NULL WHEN ending THEN now() ELSE pp.finished_at END,
         duration = CASE WHEN starting THEN NULL WHEN ending THEN now() - pp.started_at ELSE pp.duration END,
         rows_affected = CASE WHEN mv.to_status = 'running' THEN NULL WHEN mv.move = 'done'
                              THEN _phase_apply.rows_affected ELSE pp.rows_affected END,
         error_message = CASE WHEN starting THEN NULL WHEN message IS NOT NULL
                              THEN shift_internal.cap(message) ELSE pp.error_message END,
         error_sqlstate = CASE WHEN starting THEN NULL WHEN message IS NOT NULL
                               THEN _phase_apply.sqlstate ELSE pp.error_sqlstate END
   WHERE pp.migration = p.migration AND pp.name = p.name;
  UPDATE @extschema@.migration mm
     SET current_phase = CASE WHEN starting THEN p.name ELSE mm.current_phase END,
         lease_heartbeat = now()
   WHERE mm.name = p.migration;
  IF mv.move IN ('clean', 'rolled_back') THEN
    -- its down ran: a backfill it made would start over
    PERFORM shift_internal._forget_backfills(p.migration, p.name);
  END IF;
  PERFORM shift_internal._event(p.migration, p.name, mv.event, event_message, sqlstate, event_detail);
END
$$;

-- Phase p_phase of a migration whose lease this session holds, for a move
-- of operation p_operation ('run', 'rollback'); during another operation an
-- error says the phase cannot <verb>.
CREATE FUNCTION shift_internal._phase_during(p_migration pg_catalog.text, p_phase pg_catalog.text,
                                             p_operation pg_catalog.text, verb pg_catalog.text)
RETURNS @extschema@.phase
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  m @extschema@.migration := shift_internal._leased(p_migration);
  p @extschema@.phase := shift_internal._phase(p_migration, p_phase);
BEGIN
  IF m.operation <> p_operation THEN
    RAISE EXCEPTION 'phase "%" of migration "%" cannot % during a %', p_phase, p_migration, verb, m.operation
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  RETURN p;
END
$$;

-- Makes move p_move of phase p_phase of a migration whose lease this
-- session holds, for the moves that need no check of their own (the others
-- call _phase_check and _phase_apply themselves); timed adds to the event's
-- detail the seconds since the phase started.
CREATE FUNCTION shift_internal._phase_move(p_migration pg_catalog.text, p_phase pg_catalog.text,
                                           p_move pg_catalog.text,
                                           message pg_catalog.text DEFAULT NULL,
                                           sqlstate pg_catalog.text DEFAULT NULL,
                                           rows_affected pg_catalog.int8 DEFAULT NULL,
                                           event_message pg_catalog.text DEFAULT NULL,
                                           event_detail pg_catalog.jsonb DEFAULT NULL,
                                           timed pg_catalog.bool DEFAULT false)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  p @extschema@.phase;
BEGIN
  PERFORM shift_internal._leased(p_migration);
  p := shift_internal._phase(p_migration, p_phase);
  IF timed THEN
    event_detail := jsonb_build_object('seconds', extract(epoch FROM now() - p.started_at))
                    || coalesce(event_detail, '{}');
  END IF;
  PERFORM shift_internal._phase_apply(p, shift_internal._phase_check(p, p_move), message, sqlstate,
                                      rows_affected, event_message, event_detail);
END
$$;

-- shift.phase_start(migration, phase): phase -> running.  Every earlier phase
-- must be done; the phase must be pending, interrupted (resumed as it is),
-- rolled back, or failed with its down run.
CREATE FUNCTION shift_internal.phase_start(migration pg_catalog.text, phase pg_catalog.text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  p @extschema@.phase := shift_internal._phase_during(migration, phase, 'run', 'start');
  mv shift_internal.phase_move;
  blocker @extschema@.phase;
BEGIN
  mv := shift_internal._phase_check(p, 'start');
  SELECT * INTO blocker FROM @extschema@.phase pp
   WHERE pp.migration = phase_start.migration AND pp.ordinal < p.ordinal AND pp.status <> 'done'
   ORDER BY pp.ordinal LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'phase % "%" of migration "%" cannot start: phase % "%" is %',
                    p.ordinal, phase, migration, blocker.ordinal, blocker.name, blocker.status
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  -- a fresh up (not the resumption of an interrupted one) starts with no
  -- memo: what an earlier up remembered was for a down that has run
  IF p.status IN ('pending', 'rolled_back') OR (p.status = 'failed' AND NOT p.needs_cleanup) THEN
    UPDATE @extschema@.phase x SET memo = NULL, memo_by = NULL
     WHERE x.migration = p.migration AND x.name = p.name;
  END IF;
  PERFORM shift_internal._phase_apply(p, mv, event_message => format('attempt %s', p.attempts + 1));
END
$$;
SELECT shift_internal._owner_call('phase_start');

-- shift.phase_done(migration, phase, rows_affected): running -> done.
CREATE FUNCTION shift_internal.phase_done(migration pg_catalog.text, phase pg_catalog.text,
                                       rows_affected pg_catalog.int8 DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM shift_internal._phase_move(migration, phase, 'done', rows_affected => rows_affected,
    event_message => format('%s rows', coalesce(rows_affected::text, 'no count of')),
    event_detail => jsonb_build_object('rows', rows_affected), timed => true);
END
$$;
SELECT shift_internal._owner_call('phase_done');

-- shift.phase_failed(migration, phase, message, sqlstate, interrupted):
-- running -> failed (its own error: the runner runs its down next, then
-- shift.phase_cleaned), or -> interrupted (the next run resumes it).
CREATE FUNCTION shift_internal.phase_failed(migration pg_catalog.text, phase pg_catalog.text,
                                         message pg_catalog.text,
                                         sqlstate pg_catalog.text DEFAULT NULL,
                                         interrupted pg_catalog.bool DEFAULT false)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM shift_internal._phase_move(migration, phase, CASE WHEN interrupted THEN 'interrupt' ELSE 'fail' END,
                                     message, sqlstate, event_message => message);
END
$$;
SELECT shift_internal._owner_call('phase_failed');

-- shift.phase_memo(migration, phase, memo): a phase remembers, for its
-- down, what its up found before changing it (db:remember: a column's type,
-- default and comment before a change made in place).  Called by either
-- session of the runner holding the migration's lease (db:exec runs on the
-- work session), while the phase runs or rolls back; memo is a JSON object
-- merged into what is there, at most 64 kB.  The role that writes it is
-- recorded: db:recall gives it back only to that role, so nobody can plant
-- text for another role's rollback to run.
CREATE FUNCTION shift_internal.phase_memo(migration pg_catalog.text, phase pg_catalog.text,
                                          memo pg_catalog.jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  m @extschema@.migration;
  p @extschema@.phase;
  merged pg_catalog.jsonb;
BEGIN
  SELECT * INTO m FROM @extschema@.migration x WHERE x.name = phase_memo.migration;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'migration "%" does not exist', phase_memo.migration USING ERRCODE = 'undefined_object';
  END IF;
  PERFORM shift_internal.check_owner(format('migration "%s"', m.name), m.owner);
  IF pg_backend_pid() NOT IN (coalesce(m.lease_control_pid, 0), coalesce(m.lease_work_pid, 0)) THEN
    RAISE EXCEPTION 'migration "%" is not leased by this session', m.name
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'A phase remembers while pgshift runs it.';
  END IF;
  p := shift_internal._phase(m.name, phase_memo.phase);
  IF p.status NOT IN ('running', 'rolling_back') THEN
    RAISE EXCEPTION 'phase "%" of migration "%" is %: it remembers only while it runs or rolls back',
                    p.name, m.name, p.status USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  IF memo IS NULL OR jsonb_typeof(memo) <> 'object' THEN
    RAISE EXCEPTION 'a phase''s memo must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- another role acting for the owner does not replace what the running
  -- phase remembered: the role that wrote it reads it back for the down
  IF p.memo_by IS DISTINCT FROM pg_get_userbyid(shift_internal.caller()) AND p.memo IS NOT NULL
     AND p.memo <> '{}' THEN
    RAISE EXCEPTION 'phase "%" of migration "%" has remembered what role % wrote', p.name, m.name, p.memo_by
      USING ERRCODE = 'insufficient_privilege',
            HINT = format('Run or roll back this phase as role %s.', p.memo_by);
  END IF;
  merged := coalesce(p.memo, '{}') || memo;
  IF pg_column_size(merged) > 65536 THEN
    RAISE EXCEPTION 'the memo of phase "%" of migration "%" would be % bytes', p.name, m.name,
                    pg_column_size(merged)
      USING ERRCODE = 'program_limit_exceeded', DETAIL = 'A phase remembers at most 64 kB.';
  END IF;
  UPDATE @extschema@.phase x SET memo = merged, memo_by = pg_get_userbyid(shift_internal.caller())
   WHERE x.migration = m.name AND x.name = p.name;
END
$$;
SELECT shift_internal._owner_call('phase_memo');

-- shift.phase_cleaned(migration, phase): the down of a failed phase ran.
CREATE FUNCTION shift_internal.phase_cleaned(migration pg_catalog.text, phase pg_catalog.text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM shift_internal._phase_move(migration, phase, 'clean', event_message => 'its down ran');
END
$$;
SELECT shift_internal._owner_call('phase_cleaned');

-- shift.phase_rollback_start(migration, phase): done, interrupted, or failed
-- with its down owed -> rolling_back.  Phases are rolled back last first; a
-- phase without down is a point of no return.
CREATE FUNCTION shift_internal.phase_rollback_start(migration pg_catalog.text, phase pg_catalog.text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  p @extschema@.phase := shift_internal._phase_during(migration, phase, 'rollback', 'be rolled back');
  mv shift_internal.phase_move;
  blocker @extschema@.phase;
BEGIN
  IF NOT p.reversible THEN
    RAISE EXCEPTION 'phase "%" of migration "%" has no down: it is a point of no return', phase, migration
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  mv := shift_internal._phase_check(p, 'rollback');
  SELECT * INTO blocker FROM @extschema@.phase pp
   WHERE pp.migration = phase_rollback_start.migration AND pp.ordinal > p.ordinal
     AND (pp.status IN ('done', 'running', 'rolling_back', 'interrupted') OR pp.needs_cleanup
          OR (pp.status = 'failed' AND NOT pp.reversible))
   ORDER BY pp.ordinal DESC LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'phase % "%" of migration "%" cannot be rolled back before phase % "%", which is %',
                    p.ordinal, phase, migration, blocker.ordinal, blocker.name,
                    CASE WHEN blocker.needs_cleanup AND blocker.status = 'failed'
                         THEN 'failed and not cleaned up'
                         WHEN blocker.status = 'failed'
                         THEN 'failed and has no down (what it committed stays)'
                         ELSE blocker.status END
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Roll phases back in reverse order.';
  END IF;
  PERFORM shift_internal._phase_apply(p, mv);
END
$$;
SELECT shift_internal._owner_call('phase_rollback_start');

-- shift.phase_rolled_back(migration, phase): rolling_back -> rolled_back.
CREATE FUNCTION shift_internal.phase_rolled_back(migration pg_catalog.text, phase pg_catalog.text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM shift_internal._phase_move(migration, phase, 'rolled_back', timed => true);
END
$$;
SELECT shift_internal._owner_call('phase_rolled_back');

-- shift.phase_rollback_failed(migration, phase, message, sqlstate, interrupted):
-- rolling_back -> failed (its down raised), or -> interrupted: either way it
-- still needs its down.
CREATE FUNCTION shift_internal.phase_rollback_failed(migration pg_catalog.text, phase pg_catalog.text,
                                                  message pg_catalog.text,
                                                  sqlstate pg_catalog.text DEFAULT NULL,
                                                  interrupted pg_catalog.bool DEFAULT false)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM shift_internal._phase_move(migration, phase,
    CASE WHEN interrupted THEN 'rollback_interrupt' ELSE 'rollback_fail' END,
    CASE WHEN interrupted THEN 'rollback interrupted: ' ELSE 'rollback failed: ' END || message,
    sqlstate, event_message => message);
END
$$;
SELECT shift_internal._owner_call('phase_rollback_failed');

-- shift.log_event(migration, phase, kind, message, sqlstate, detail): an
-- event that changes no state (retry, verify result, cleanup failure, error).
CREATE FUNCTION shift_internal.log_event(migration pg_catalog.text, phase pg_catalog.text,
                                      kind pg_catalog.text, message pg_catalog.text DEFAULT NULL,
                                      sqlstate pg_catalog.text DEFAULT NULL,
                                      detail pg_catalog.jsonb DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM shift_internal._leased(migration);
  IF kind NOT IN ('retry', 'verify_passed', 'verify_failed', 'cleanup_failed', 'error') THEN
    RAISE EXCEPTION 'event kind "%" is recorded by the state functions, not by log_event', kind
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'log_event takes retry, verify_passed, verify_failed, cleanup_failed or error.';
  END IF;
  IF phase IS NOT NULL THEN
    PERFORM shift_internal._phase(migration, phase);
  END IF;
  PERFORM shift_internal._event(migration, phase, kind, message, sqlstate, detail);
END
$$;
SELECT shift_internal._owner_call('log_event');

-- shift.migration_end(migration): releases the lease; the migration's status
-- follows from its phases.  Returns that status.
CREATE FUNCTION shift_internal.migration_end(migration pg_catalog.text)
RETURNS pg_catalog.text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  m @extschema@.migration;
  s pg_catalog.text;
BEGIN
  m := shift_internal._leased(migration);
  IF EXISTS (SELECT FROM @extschema@.phase pp
              WHERE pp.migration = migration_end.migration
                AND pp.status IN ('running', 'rolling_back')) THEN
    RAISE EXCEPTION 'migration "%" cannot end while a phase is running', migration
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Record the phase''s outcome first (phase_done, phase_failed, phase_rolled_back, phase_rollback_failed).';
  END IF;
  -- After a rollback, a failed phase whose down already ran and that no done
  -- phase follows has nothing left: it is rolled back too.
  IF m.operation = 'rollback' THEN
    UPDATE @extschema@.phase pp SET status = 'rolled_back'
     WHERE pp.migration = migration_end.migration AND pp.status = 'failed'
       AND NOT pp.needs_cleanup AND pp.reversible
       AND NOT EXISTS (SELECT FROM @extschema@.phase q
                        WHERE q.migration = pp.migration AND q.ordinal > pp.ordinal
                          AND q.status <> 'rolled_back' AND q.status <> 'pending');
  END IF;
  SELECT CASE
           WHEN bool_or(pp.status = 'failed') THEN 'failed'
           WHEN bool_or(pp.status = 'interrupted') THEN 'interrupted'
           WHEN bool_and(pp.status = 'done') THEN 'done'
           WHEN bool_or(pp.status = 'done') THEN 'partial'
           WHEN bool_or(pp.status = 'rolled_back') THEN 'rolled_back'
           ELSE 'pending'
         END INTO s
    FROM @extschema@.phase pp WHERE pp.migration = migration_end.migration;
  UPDATE @extschema@.migration mm
     SET status = s, finished_at = now(), lease_work_pid = NULL, lease_control_pid = NULL,
         lease_runner_pid = NULL, lease_host = NULL, lease_since = NULL, lease_heartbeat = NULL
   WHERE mm.name = migration_end.migration;
  PERFORM shift_internal._event(migration, NULL, m.operation || '_finished',
                             format('status %s', s), NULL,
                             jsonb_build_object('seconds', extract(epoch FROM now() - m.started_at)));
  RETURN s;
END
$$;
SELECT shift_internal._owner_call('migration_end');

-- ---------------------------------------------------------------------------
-- Views
-- ---------------------------------------------------------------------------

CREATE VIEW @extschema@.status WITH (security_invoker = true) AS
SELECT m.name AS migration,
       -- a lease whose work session no longer holds the migration's lock is a
       -- runner that is gone: interrupted, whatever was recorded last
       CASE WHEN m.status = 'running' AND NOT live.holds THEN 'interrupted' ELSE m.status END AS status,
       m.operation,
       d.done AS phases_done,
       m.nphases,
       CASE WHEN cur.ordinal IS NOT NULL
            THEN format('%s of %s (%s)', cur.ordinal, m.nphases, cur.name)
            ELSE format('%s of %s', d.done, m.nphases) END AS phase,
       m.started_at,
       m.finished_at,
       coalesce(m.finished_at, pg_catalog.now()) - m.started_at AS elapsed,
       err.error_message AS last_error,
       err.error_sqlstate AS last_error_sqlstate,
       err.name AS last_error_phase,
       m.lease_host,
       m.lease_runner_pid,
       m.lease_work_pid,
       pg_catalog.now() - m.lease_heartbeat AS heartbeat_age,
       m.lease_work_pid IS NOT NULL AND live.holds AS runner_alive,
       m.applied_by,
       m.owner,
       m.runner_version,
       m.script_sha256,
       m.script_path
  FROM @extschema@.migration m
  CROSS JOIN LATERAL (
    SELECT EXISTS (SELECT FROM pg_catalog.pg_locks l
                    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
                      AND l.pid = m.lease_work_pid
                      AND l.classid = 1936221812::pg_catalog.oid
                      AND l.objid = (pg_catalog.hashtext(m.name)::pg_catalog.int8 & 4294967295)::pg_catalog.oid)
           AS holds) live
  CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE p.status = 'done') AS done
      FROM @extschema@.phase p WHERE p.migration = m.name) d
  LEFT JOIN LATERAL (
    SELECT p.ordinal, p.name FROM @extschema@.phase p
     WHERE p.migration = m.name AND p.status IN ('running', 'rolling_back')
     ORDER BY p.ordinal LIMIT 1) cur ON true
  LEFT JOIN LATERAL (
    SELECT p.error_message, p.error_sqlstate, p.name FROM @extschema@.phase p
     WHERE p.migration = m.name AND p.status IN ('failed', 'interrupted')
     ORDER BY p.finished_at DESC NULLS LAST LIMIT 1) err ON true;
COMMENT ON VIEW @extschema@.status IS
  'one row per migration: state, phase k of n, elapsed time, last error, lease holder';

CREATE VIEW @extschema@.history WITH (security_invoker = true) AS
SELECT e.id, e.at, e.migration, e.phase, e.kind, e.message, e.sqlstate, e.role, e.host, e.backend_pid
  FROM @extschema@.event e
 ORDER BY e.id;
COMMENT ON VIEW @extschema@.history IS 'every recorded event, oldest first';

-- ---------------------------------------------------------------------------
-- Privileges: nothing for PUBLIC; shift_operator may run migrations.
-- ---------------------------------------------------------------------------

-- What the current role lacks to run migrations (no rows: nothing): every
-- privilege shift_operator holds on pg_shift's objects, as the grants at the
-- end of the install script give them, so the list cannot fall behind them.
CREATE FUNCTION @extschema@.missing_privileges()
RETURNS SETOF pg_catalog.text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT format('SELECT on %s %s', CASE c.relkind WHEN 'v' THEN 'view' ELSE 'table' END,
                c.oid::pg_catalog.regclass)
    FROM pg_class c
   WHERE c.relnamespace = '@extschema@'::pg_catalog.regnamespace AND c.relkind IN ('r', 'v')
     AND has_table_privilege('shift_operator', c.oid, 'SELECT')
     AND NOT has_table_privilege(c.oid, 'SELECT')
  UNION ALL
  SELECT format('EXECUTE on %s %s', CASE p.prokind WHEN 'p' THEN 'procedure' ELSE 'function' END,
                p.oid::pg_catalog.regprocedure)
    FROM pg_proc p
   WHERE p.pronamespace = '@extschema@'::pg_catalog.regnamespace
     AND p.proname !~ '^_' AND p.prorettype <> 'pg_catalog.trigger'::pg_catalog.regtype
     AND has_function_privilege('shift_operator', p.oid, 'EXECUTE')
     AND NOT has_function_privilege(p.oid, 'EXECUTE')
   ORDER BY 1
$$;
COMMENT ON FUNCTION @extschema@.missing_privileges() IS
  'privileges the current role lacks to run migrations with pgshift (GRANT shift_operator gives them all)';

