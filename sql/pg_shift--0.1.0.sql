-- pg_shift install script (source; the build writes pg_shift--0.1.0.sql from it)
\echo Use "CREATE EXTENSION pg_shift" to load this file. \quit

-- Schema "shift" is created by CREATE EXTENSION (schema = shift in the control
-- file) and owned by the installing role.  If it existed already, whoever owns
-- it could replace our functions: refuse a schema owned by anyone but the
-- installing role or a superuser.
DO $$
DECLARE
  owner pg_catalog.name;
BEGIN
  SELECT r.rolname INTO owner
    FROM pg_catalog.pg_namespace n JOIN pg_catalog.pg_roles r ON r.oid = n.nspowner
   WHERE n.nspname = 'shift' AND NOT r.rolsuper AND r.rolname <> current_user;
  IF FOUND THEN
    RAISE EXCEPTION 'schema "shift" is owned by role "%", not by the installing role', owner
      USING ERRCODE = 'insufficient_privilege',
            DETAIL = 'The owner of schema shift could replace the functions pg_shift installs in it.',
            HINT = 'Drop or rename that schema, or install as its owner.';
  END IF;
END
$$;

-- Nothing in the schema is writable by PUBLIC.
REVOKE ALL ON SCHEMA @extschema@ FROM PUBLIC;
GRANT USAGE ON SCHEMA @extschema@ TO PUBLIC;

CREATE FUNCTION @extschema@.version()
RETURNS pg_catalog.text
AS 'MODULE_PATHNAME', 'shift_version'
LANGUAGE C STABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION @extschema@.version() IS
  'version of the loaded pg_shift library (default_version of pg_shift.control at build time)';
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
--                      \-> failed -> running (retry) | rolling_back
--
-- needs_cleanup is true while a phase's effects may be partial (it started and
-- neither finished nor had its down run since); the runner runs the phase's
-- down before running it again or rolling back past it.
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
  status            pg_catalog.text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'running', 'failed', 'done', 'rolled_back')),
  operation         pg_catalog.text CHECK (operation IN ('run', 'rollback', 'verify')),
  current_phase     pg_catalog.text,
  nphases           pg_catalog.int4 NOT NULL CHECK (nphases > 0),
  created_at        pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now(),
  started_at        pg_catalog.timestamptz,
  finished_at       pg_catalog.timestamptz,
  applied_by        pg_catalog.name NOT NULL DEFAULT CURRENT_USER,
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
                    CHECK (status IN ('pending', 'running', 'done', 'failed',
                                      'rolling_back', 'rolled_back')),
  reversible        pg_catalog.bool NOT NULL,
  has_verify        pg_catalog.bool NOT NULL DEFAULT false,
  needs_cleanup     pg_catalog.bool NOT NULL DEFAULT false,
  resumable         pg_catalog.bool NOT NULL DEFAULT false,
  attempts          pg_catalog.int4 NOT NULL DEFAULT 0,
  started_at        pg_catalog.timestamptz,
  finished_at       pg_catalog.timestamptz,
  duration          pg_catalog.interval,
  rows_affected     pg_catalog.int8,
  error_message     pg_catalog.text,
  error_sqlstate    pg_catalog.text,
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
CREATE FUNCTION @extschema@._leased(p_migration pg_catalog.text)
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
CREATE FUNCTION @extschema@._phase(p_migration pg_catalog.text, p_phase pg_catalog.text)
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

CREATE FUNCTION @extschema@._event(p_migration pg_catalog.text, p_phase pg_catalog.text,
                                   p_kind pg_catalog.text, p_message pg_catalog.text DEFAULT NULL,
                                   p_sqlstate pg_catalog.text DEFAULT NULL,
                                   p_detail pg_catalog.jsonb DEFAULT NULL)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
  INSERT INTO @extschema@.event (migration, phase, kind, message, sqlstate, detail, host)
  SELECT p_migration, p_phase, p_kind, p_message, p_sqlstate, p_detail,
         (SELECT lease_host FROM @extschema@.migration WHERE name = p_migration)
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
CREATE FUNCTION @extschema@.migration_begin(
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
  p @extschema@.phase;
  n pg_catalog.int4;
  i pg_catalog.int4;
  ph pg_catalog.jsonb;
  new_name pg_catalog.text;
  v_mig CONSTANT pg_catalog.text := migration_begin.migration;
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
    INSERT INTO @extschema@.migration (name, script_sha256, script_path, nphases)
    VALUES (v_mig, script_sha256, script_path, n)
    RETURNING * INTO m;
    INSERT INTO @extschema@.phase (migration, ordinal, name, reversible, has_verify)
    SELECT v_mig, e.ord::int4, e.val ->> 'name', (e.val ->> 'reversible')::bool,
           coalesce((e.val ->> 'has_verify')::bool, false)
      FROM jsonb_array_elements(phases) WITH ORDINALITY AS e(val, ord);
    PERFORM @extschema@._event(v_mig, NULL, 'registered',
                               format('%s phase%s', n, CASE WHEN n = 1 THEN '' ELSE 's' END), NULL,
                               jsonb_build_object('script_sha256', script_sha256));
  ELSE
    -- We hold the advisory lock, so a lease still recorded is stale.
    IF m.lease_control_pid IS NOT NULL THEN
      UPDATE @extschema@.phase pp
         SET status = 'failed', needs_cleanup = pp.reversible AND NOT pp.resumable,
             finished_at = now(),
             error_message = 'interrupted: the runner stopped while the phase was running'
       WHERE pp.migration = v_mig AND pp.status IN ('running', 'rolling_back');
      PERFORM @extschema@._event(v_mig, NULL, 'takeover',
        format('lease of pgshift pid %s on %s taken over: its sessions %s and %s are gone',
               coalesce(m.lease_runner_pid::text, '?'), coalesce(m.lease_host, '?'),
               m.lease_work_pid, m.lease_control_pid),
        NULL,
        jsonb_build_object('runner_pid', m.lease_runner_pid, 'host', m.lease_host,
                           'work_pid', m.lease_work_pid, 'control_pid', m.lease_control_pid,
                           'since', m.lease_since, 'heartbeat', m.lease_heartbeat));
    END IF;

    IF m.script_sha256 <> script_sha256 THEN
      -- completed means every phase done (the status may say running after a crash)
      IF NOT EXISTS (SELECT FROM @extschema@.phase pp
                      WHERE pp.migration = v_mig AND pp.status <> 'done')
         AND NOT allow_drift THEN
        RAISE EXCEPTION 'migration "%" was completed with a different script', v_mig
          USING ERRCODE = 'object_not_in_prerequisite_state',
                DETAIL = format('It ran with sha256 %s; the script now has sha256 %s.',
                                m.script_sha256, script_sha256),
                HINT = 'Put changes in a new migration. To accept the edited script anyway, run with --allow-drift (it is logged).';
      END IF;
      -- Every phase that has started must keep its name and place.
      FOR p IN SELECT * FROM @extschema@.phase pp
                WHERE pp.migration = v_mig AND pp.status <> 'pending' ORDER BY pp.ordinal LOOP
        new_name := phases -> (p.ordinal - 1) ->> 'name';
        IF new_name IS DISTINCT FROM p.name THEN
          RAISE EXCEPTION 'migration "%": phase % "%" is % but the script now has %',
                          v_mig, p.ordinal, p.name, p.status,
                          coalesce(format('"%s" in its place', new_name), 'no such phase')
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Phases that have started cannot be renamed, moved or removed; roll them back first.';
        END IF;
      END LOOP;
      PERFORM @extschema@._event(v_mig, NULL,
        CASE WHEN NOT EXISTS (SELECT FROM @extschema@.phase pp
                               WHERE pp.migration = v_mig AND pp.status <> 'done')
             THEN 'drift_allowed' ELSE 'script_changed' END,
        format('script sha256 %s... -> %s...', left(m.script_sha256, 12), left(script_sha256, 12)),
        NULL, jsonb_build_object('old_sha256', m.script_sha256, 'new_sha256', script_sha256));
    END IF;

    -- Reconcile the phase list with the script: names, flags, new and removed phases.
    DELETE FROM @extschema@.phase pp
     WHERE pp.migration = v_mig AND pp.ordinal > n;
    -- two passes so that reordering pending phases never violates UNIQUE (migration, name)
    UPDATE @extschema@.phase pp SET name = '#' || pp.ordinal
     WHERE pp.migration = v_mig;
    INSERT INTO @extschema@.phase AS pp (migration, ordinal, name, reversible, has_verify)
    SELECT v_mig, e.ord::int4, e.val ->> 'name', (e.val ->> 'reversible')::bool,
           coalesce((e.val ->> 'has_verify')::bool, false)
      FROM jsonb_array_elements(phases) WITH ORDINALITY AS e(val, ord)
    ON CONFLICT ON CONSTRAINT phase_pkey DO UPDATE
      SET name = excluded.name, reversible = excluded.reversible,
          has_verify = excluded.has_verify;
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
  PERFORM @extschema@._event(v_mig, NULL, operation || '_started',
                             format('pgshift %s (pid %s) on %s', coalesce(runner_version, '?'),
                                    coalesce(runner_pid::text, '?'), coalesce(host, '?')));

  RETURN QUERY
    SELECT pp.ordinal, pp.name, pp.status, pp.reversible, pp.needs_cleanup
      FROM @extschema@.phase pp WHERE pp.migration = v_mig ORDER BY pp.ordinal;
END
$$;

-- shift.heartbeat(migration): the lease holder is alive.
CREATE FUNCTION @extschema@.heartbeat(migration pg_catalog.text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM @extschema@._leased(migration);
  UPDATE @extschema@.migration SET lease_heartbeat = now() WHERE name = heartbeat.migration;
END
$$;

-- shift.phase_start(migration, phase): phase -> running.  Every earlier phase
-- must be done; the phase must be pending, failed or rolled back, and clean.
CREATE FUNCTION @extschema@.phase_start(migration pg_catalog.text, phase pg_catalog.text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  m @extschema@.migration;
  p @extschema@.phase;
  blocker @extschema@.phase;
BEGIN
  m := @extschema@._leased(migration);
  p := @extschema@._phase(migration, phase);
  IF m.operation <> 'run' THEN
    RAISE EXCEPTION 'phase "%" of migration "%" cannot start during a %', phase, migration, m.operation
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  IF p.status NOT IN ('pending', 'failed', 'rolled_back') THEN
    RAISE EXCEPTION 'phase "%" of migration "%" cannot start: it is %', phase, migration, p.status
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  IF p.needs_cleanup AND p.reversible THEN
    RAISE EXCEPTION 'phase "%" of migration "%" cannot start: its last attempt was interrupted and its down has not run',
                    phase, migration
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Run the phase''s down and record it with shift.phase_cleaned first (pgshift does).';
  END IF;
  SELECT * INTO blocker FROM @extschema@.phase pp
   WHERE pp.migration = phase_start.migration AND pp.ordinal < p.ordinal AND pp.status <> 'done'
   ORDER BY pp.ordinal LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'phase % "%" of migration "%" cannot start: phase % "%" is %',
                    p.ordinal, phase, migration, blocker.ordinal, blocker.name, blocker.status
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  UPDATE @extschema@.phase pp
     SET status = 'running', needs_cleanup = true, resumable = false, attempts = pp.attempts + 1,
         started_at = now(), finished_at = NULL, duration = NULL, rows_affected = NULL,
         error_message = NULL, error_sqlstate = NULL
   WHERE pp.migration = phase_start.migration AND pp.name = phase;
  UPDATE @extschema@.migration mm SET current_phase = phase, lease_heartbeat = now()
   WHERE mm.name = phase_start.migration;
  PERFORM @extschema@._event(migration, phase, 'phase_started',
                             format('attempt %s', p.attempts + 1));
END
$$;

-- shift.phase_resumable(migration, phase, resumable): the running phase is in
-- (or has left) a section that an interruption does not need to undo.
CREATE FUNCTION @extschema@.phase_resumable(migration pg_catalog.text, phase pg_catalog.text,
                                            resumable pg_catalog.bool)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  p @extschema@.phase;
BEGIN
  PERFORM @extschema@._leased(migration);
  p := @extschema@._phase(migration, phase);
  IF p.status <> 'running' THEN
    RAISE EXCEPTION 'phase "%" of migration "%" is %, not running', phase, migration, p.status
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  UPDATE @extschema@.phase pp SET resumable = phase_resumable.resumable
   WHERE pp.migration = phase_resumable.migration AND pp.name = phase;
END
$$;

-- shift.phase_done(migration, phase, rows_affected): running -> done.
CREATE FUNCTION @extschema@.phase_done(migration pg_catalog.text, phase pg_catalog.text,
                                       rows_affected pg_catalog.int8 DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  p @extschema@.phase;
BEGIN
  PERFORM @extschema@._leased(migration);
  p := @extschema@._phase(migration, phase);
  IF p.status <> 'running' THEN
    RAISE EXCEPTION 'phase "%" of migration "%" cannot finish: it is %', phase, migration, p.status
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Only a running phase can finish; start it with shift.phase_start.';
  END IF;
  UPDATE @extschema@.phase pp
     SET status = 'done', needs_cleanup = false, finished_at = now(),
         duration = now() - pp.started_at, rows_affected = phase_done.rows_affected
   WHERE pp.migration = phase_done.migration AND pp.name = phase;
  UPDATE @extschema@.migration SET lease_heartbeat = now() WHERE name = phase_done.migration;
  PERFORM @extschema@._event(migration, phase, 'phase_done',
                             format('%s rows', coalesce(rows_affected::text, 'no count of')), NULL,
                             jsonb_build_object('seconds', extract(epoch FROM now() - p.started_at),
                                                'rows', rows_affected));
END
$$;

-- shift.phase_failed(migration, phase, message, sqlstate, interrupted):
-- running -> failed.  The phase keeps needs_cleanup until shift.phase_cleaned,
-- unless it was interrupted in a resumable section (a backfill, which goes
-- on from its checkpoint).
CREATE FUNCTION @extschema@.phase_failed(migration pg_catalog.text, phase pg_catalog.text,
                                         message pg_catalog.text,
                                         sqlstate pg_catalog.text DEFAULT NULL,
                                         interrupted pg_catalog.bool DEFAULT false)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  p @extschema@.phase;
BEGIN
  PERFORM @extschema@._leased(migration);
  p := @extschema@._phase(migration, phase);
  IF p.status <> 'running' THEN
    RAISE EXCEPTION 'phase "%" of migration "%" cannot fail: it is %', phase, migration, p.status
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  UPDATE @extschema@.phase pp
     SET status = 'failed', finished_at = now(), duration = now() - pp.started_at,
         error_message = phase_failed.message, error_sqlstate = phase_failed.sqlstate,
         needs_cleanup = pp.reversible AND NOT (interrupted AND pp.resumable)
   WHERE pp.migration = phase_failed.migration AND pp.name = phase;
  UPDATE @extschema@.migration SET lease_heartbeat = now() WHERE name = phase_failed.migration;
  PERFORM @extschema@._event(migration, phase,
                             CASE WHEN interrupted THEN 'interrupted' ELSE 'phase_failed' END,
                             message, sqlstate);
END
$$;

-- shift.phase_cleaned(migration, phase): the down of a failed phase ran.
CREATE FUNCTION @extschema@.phase_cleaned(migration pg_catalog.text, phase pg_catalog.text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  p @extschema@.phase;
BEGIN
  PERFORM @extschema@._leased(migration);
  p := @extschema@._phase(migration, phase);
  IF p.status <> 'failed' OR NOT p.needs_cleanup THEN
    RAISE EXCEPTION 'phase "%" of migration "%" has nothing to clean up: it is %', phase, migration,
                    CASE WHEN p.status = 'failed' THEN 'failed and clean' ELSE p.status END
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  UPDATE @extschema@.phase pp SET needs_cleanup = false
   WHERE pp.migration = phase_cleaned.migration AND pp.name = phase;
  PERFORM @extschema@._forget_backfills(migration, phase);
  PERFORM @extschema@._event(migration, phase, 'phase_cleaned_up', 'its down ran');
END
$$;

-- shift.phase_rollback_start(migration, phase): done (or failed and not clean)
-- -> rolling_back.  Phases are rolled back last first; a phase without down is
-- a point of no return.
CREATE FUNCTION @extschema@.phase_rollback_start(migration pg_catalog.text, phase pg_catalog.text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  m @extschema@.migration;
  p @extschema@.phase;
  blocker @extschema@.phase;
BEGIN
  m := @extschema@._leased(migration);
  p := @extschema@._phase(migration, phase);
  IF m.operation <> 'rollback' THEN
    RAISE EXCEPTION 'phase "%" of migration "%" cannot be rolled back during a %', phase, migration, m.operation
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  IF NOT p.reversible THEN
    RAISE EXCEPTION 'phase "%" of migration "%" has no down: it is a point of no return', phase, migration
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  IF NOT (p.status = 'done' OR (p.status = 'failed' AND p.needs_cleanup)) THEN
    RAISE EXCEPTION 'phase "%" of migration "%" cannot be rolled back: it is %', phase, migration,
                    CASE WHEN p.status = 'failed' THEN 'failed and already clean' ELSE p.status END
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  SELECT * INTO blocker FROM @extschema@.phase pp
   WHERE pp.migration = phase_rollback_start.migration AND pp.ordinal > p.ordinal
     AND (pp.status IN ('done', 'running', 'rolling_back') OR pp.needs_cleanup
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
  UPDATE @extschema@.phase pp
     SET status = 'rolling_back', needs_cleanup = true, started_at = now(), finished_at = NULL,
         duration = NULL, error_message = NULL, error_sqlstate = NULL
   WHERE pp.migration = phase_rollback_start.migration AND pp.name = phase;
  UPDATE @extschema@.migration mm SET current_phase = phase, lease_heartbeat = now()
   WHERE mm.name = phase_rollback_start.migration;
  PERFORM @extschema@._event(migration, phase, 'phase_rollback_started', NULL);
END
$$;

-- shift.phase_rolled_back(migration, phase): rolling_back -> rolled_back.
CREATE FUNCTION @extschema@.phase_rolled_back(migration pg_catalog.text, phase pg_catalog.text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  p @extschema@.phase;
BEGIN
  PERFORM @extschema@._leased(migration);
  p := @extschema@._phase(migration, phase);
  IF p.status <> 'rolling_back' THEN
    RAISE EXCEPTION 'phase "%" of migration "%" cannot be marked rolled back: it is %', phase, migration, p.status
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  UPDATE @extschema@.phase pp
     SET status = 'rolled_back', needs_cleanup = false, finished_at = now(),
         duration = now() - pp.started_at
   WHERE pp.migration = phase_rolled_back.migration AND pp.name = phase;
  PERFORM @extschema@._forget_backfills(migration, phase);
  UPDATE @extschema@.migration SET lease_heartbeat = now() WHERE name = phase_rolled_back.migration;
  PERFORM @extschema@._event(migration, phase, 'phase_rolled_back', NULL, NULL,
                             jsonb_build_object('seconds', extract(epoch FROM now() - p.started_at)));
END
$$;

-- shift.phase_rollback_failed(migration, phase, message, sqlstate):
-- rolling_back -> failed, still needing cleanup.
CREATE FUNCTION @extschema@.phase_rollback_failed(migration pg_catalog.text, phase pg_catalog.text,
                                                  message pg_catalog.text,
                                                  sqlstate pg_catalog.text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  p @extschema@.phase;
BEGIN
  PERFORM @extschema@._leased(migration);
  p := @extschema@._phase(migration, phase);
  IF p.status <> 'rolling_back' THEN
    RAISE EXCEPTION 'phase "%" of migration "%" cannot fail its rollback: it is %', phase, migration, p.status
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  UPDATE @extschema@.phase pp
     SET status = 'failed', needs_cleanup = true, finished_at = now(),
         duration = now() - pp.started_at,
         error_message = 'rollback failed: ' || phase_rollback_failed.message,
         error_sqlstate = phase_rollback_failed.sqlstate
   WHERE pp.migration = phase_rollback_failed.migration AND pp.name = phase;
  PERFORM @extschema@._event(migration, phase, 'phase_rollback_failed', message, sqlstate);
END
$$;

-- shift.log_event(migration, phase, kind, message, sqlstate, detail): an
-- event that changes no state (retry, verify result, cleanup failure, error).
CREATE FUNCTION @extschema@.log_event(migration pg_catalog.text, phase pg_catalog.text,
                                      kind pg_catalog.text, message pg_catalog.text DEFAULT NULL,
                                      sqlstate pg_catalog.text DEFAULT NULL,
                                      detail pg_catalog.jsonb DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM @extschema@._leased(migration);
  IF kind NOT IN ('retry', 'verify_passed', 'verify_failed', 'cleanup_failed', 'error') THEN
    RAISE EXCEPTION 'event kind "%" is recorded by the state functions, not by log_event', kind
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'log_event takes retry, verify_passed, verify_failed, cleanup_failed or error.';
  END IF;
  IF phase IS NOT NULL THEN
    PERFORM @extschema@._phase(migration, phase);
  END IF;
  PERFORM @extschema@._event(migration, phase, kind, message, sqlstate, detail);
END
$$;

-- shift.migration_end(migration): releases the lease; the migration's status
-- follows from its phases.  Returns that status.
CREATE FUNCTION @extschema@.migration_end(migration pg_catalog.text)
RETURNS pg_catalog.text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  m @extschema@.migration;
  s pg_catalog.text;
BEGIN
  m := @extschema@._leased(migration);
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
           WHEN bool_and(pp.status = 'done') THEN 'done'
           WHEN NOT bool_or(pp.status = 'done') AND bool_or(pp.status = 'rolled_back') THEN 'rolled_back'
           ELSE 'pending'
         END INTO s
    FROM @extschema@.phase pp WHERE pp.migration = migration_end.migration;
  UPDATE @extschema@.migration mm
     SET status = s, finished_at = now(), lease_work_pid = NULL, lease_control_pid = NULL,
         lease_runner_pid = NULL, lease_host = NULL, lease_since = NULL, lease_heartbeat = NULL
   WHERE mm.name = migration_end.migration;
  PERFORM @extschema@._event(migration, NULL, m.operation || '_finished',
                             format('status %s', s), NULL,
                             jsonb_build_object('seconds', extract(epoch FROM now() - m.started_at)));
  RETURN s;
END
$$;

-- ---------------------------------------------------------------------------
-- Views
-- ---------------------------------------------------------------------------

CREATE VIEW @extschema@.status AS
SELECT m.name AS migration,
       m.status,
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
       m.applied_by,
       m.runner_version,
       m.script_sha256,
       m.script_path
  FROM @extschema@.migration m
  CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE p.status = 'done') AS done
      FROM @extschema@.phase p WHERE p.migration = m.name) d
  LEFT JOIN LATERAL (
    SELECT p.ordinal, p.name FROM @extschema@.phase p
     WHERE p.migration = m.name AND p.status IN ('running', 'rolling_back')
     ORDER BY p.ordinal LIMIT 1) cur ON true
  LEFT JOIN LATERAL (
    SELECT p.error_message, p.error_sqlstate, p.name FROM @extschema@.phase p
     WHERE p.migration = m.name AND p.status = 'failed'
     ORDER BY p.finished_at DESC NULLS LAST LIMIT 1) err ON true;
COMMENT ON VIEW @extschema@.status IS
  'one row per migration: state, phase k of n, elapsed time, last error, lease holder';

CREATE VIEW @extschema@.history AS
SELECT e.id, e.at, e.migration, e.phase, e.kind, e.message, e.sqlstate, e.role, e.host, e.backend_pid
  FROM @extschema@.event e
 ORDER BY e.id;
COMMENT ON VIEW @extschema@.history IS 'every recorded event, oldest first';

-- ---------------------------------------------------------------------------
-- Privileges: nothing for PUBLIC; shift_operator may run migrations.
-- ---------------------------------------------------------------------------

-- What the current role lacks to run migrations (no rows: nothing).
CREATE FUNCTION @extschema@.missing_privileges()
RETURNS SETOF pg_catalog.text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  -- one privilege per row: has_*_privilege with a list is true if ANY is held
  SELECT format('%s on %s %s', priv, kind, obj)
    FROM (VALUES ('SELECT', '@extschema@.migration', 'table'),
                 ('INSERT', '@extschema@.migration', 'table'),
                 ('UPDATE', '@extschema@.migration', 'table'),
                 ('SELECT', '@extschema@.phase', 'table'),
                 ('INSERT', '@extschema@.phase', 'table'),
                 ('UPDATE', '@extschema@.phase', 'table'),
                 ('DELETE', '@extschema@.phase', 'table'),
                 ('SELECT', '@extschema@.event', 'table'),
                 ('INSERT', '@extschema@.event', 'columns of table'),
                 ('EXECUTE', '@extschema@.migration_begin(text,text,jsonb,text,integer,text,text,integer,text,boolean)', 'function'),
                 ('EXECUTE', '@extschema@.try_lock(text)', 'function'),
                 ('SELECT', '@extschema@.backfill', 'table'),
                 ('INSERT', '@extschema@.backfill', 'table'),
                 ('UPDATE', '@extschema@.backfill', 'table'),
                 ('INSERT', '@extschema@.backfill_batch', 'table'),
                 ('EXECUTE', '@extschema@.backfill_run(text,interval,bigint)', 'procedure')) AS v(priv, obj, kind)
   WHERE CASE kind
           WHEN 'table' THEN NOT has_table_privilege(obj, priv)
           WHEN 'columns of table' THEN NOT has_any_column_privilege(obj, priv)
           ELSE NOT has_function_privilege(obj, priv)  -- procedures too
         END
$$;
COMMENT ON FUNCTION @extschema@.missing_privileges() IS
  'privileges the current role lacks to run migrations with pgshift (GRANT shift_operator gives them all)';

-- ---------------------------------------------------------------------------
-- Backfill: batched, resumable, adaptive, throttled row moving (C in
-- extension/backfill.c).  A job walks its table by a unique key in key order
-- up to a bound fixed when it starts; each batch's rows and its checkpoint
-- commit together, so a killed session, runner or server loses nothing and
-- repeats nothing.
-- ---------------------------------------------------------------------------

CREATE TABLE @extschema@.backfill (
  name              pg_catalog.text PRIMARY KEY
                    CHECK (name OPERATOR(pg_catalog.~) '^[A-Za-z0-9_.:-]{1,250}$'),
  relation          pg_catalog.regclass NOT NULL,
  kind              pg_catalog.text NOT NULL CHECK (kind IN ('update', 'copy')),
  set_clause        pg_catalog.text,
  where_clause      pg_catalog.text,
  into_relation     pg_catalog.regclass,
  into_columns      pg_catalog.text[],
  select_list       pg_catalog.text,
  on_conflict       pg_catalog.text NOT NULL DEFAULT 'error'
                    CHECK (on_conflict IN ('error', 'nothing', 'update')),
  key_index         pg_catalog.regclass NOT NULL,
  key_columns       pg_catalog.text[] NOT NULL,
  owner             pg_catalog.name NOT NULL DEFAULT CURRENT_USER,
  migration         pg_catalog.text,   -- the migration phase that made it (db:backfill)
  phase             pg_catalog.text,
  -- settings, read before every batch (change them with shift.backfill_set)
  batch_min         pg_catalog.int4 NOT NULL DEFAULT 100 CHECK (batch_min >= 1),
  batch_max         pg_catalog.int4 NOT NULL DEFAULT 50000 CHECK (batch_max >= batch_min),
  target_ms         pg_catalog.int4 NOT NULL DEFAULT 200 CHECK (target_ms BETWEEN 10 AND 600000),
  sleep_ratio       pg_catalog.float8 NOT NULL DEFAULT 0 CHECK (sleep_ratio BETWEEN 0 AND 100),
  lock_timeout_ms   pg_catalog.int4 NOT NULL DEFAULT 1000 CHECK (lock_timeout_ms BETWEEN 1 AND 600000),
  max_retries       pg_catalog.int4 NOT NULL DEFAULT 20 CHECK (max_retries >= 0),
  max_lag           pg_catalog.interval DEFAULT '10 seconds',
  throttle_query    pg_catalog.text,
  -- state
  state             pg_catalog.text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'active', 'paused', 'done', 'cancelled', 'failed')),
  upper_key         pg_catalog.bytea[],
  upper_key_text    pg_catalog.text,
  last_key          pg_catalog.bytea[],
  last_key_text     pg_catalog.text,
  estimated_total   pg_catalog.int8,
  keys_done         pg_catalog.int8 NOT NULL DEFAULT 0,
  rows_done         pg_catalog.int8 NOT NULL DEFAULT 0,
  batches           pg_catalog.int8 NOT NULL DEFAULT 0,
  retries           pg_catalog.int8 NOT NULL DEFAULT 0,
  batch_size        pg_catalog.int4,
  rate              pg_catalog.float8,
  busy_ms           pg_catalog.float8 NOT NULL DEFAULT 0,
  throttled         pg_catalog.text,
  last_error        pg_catalog.text,
  last_sqlstate     pg_catalog.text,
  created_at        pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now(),
  started_at        pg_catalog.timestamptz,
  updated_at        pg_catalog.timestamptz,
  finished_at       pg_catalog.timestamptz,
  CHECK ((kind = 'update') = (set_clause IS NOT NULL)),
  CHECK ((kind = 'copy') = (into_relation IS NOT NULL))
);
COMMENT ON TABLE @extschema@.backfill IS
  'backfill jobs: definition, settings read before every batch, and the checkpoint';

CREATE TABLE @extschema@.backfill_batch (
  job               pg_catalog.text NOT NULL
                    REFERENCES @extschema@.backfill (name) ON DELETE CASCADE,
  batch             pg_catalog.int8 NOT NULL,
  at                pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
  keys              pg_catalog.int4 NOT NULL,
  rows              pg_catalog.int8 NOT NULL,
  ms                pg_catalog.float8 NOT NULL,
  batch_size        pg_catalog.int4 NOT NULL,
  retries           pg_catalog.int4 NOT NULL DEFAULT 0,
  PRIMARY KEY (job, batch)
);
COMMENT ON TABLE @extschema@.backfill_batch IS
  'one row per committed batch of a backfill job (committed with it)';

SELECT pg_catalog.pg_extension_config_dump('@extschema@.backfill', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.backfill_batch', '');

-- Settings in range, or a clear error (instead of a CHECK violation).
CREATE FUNCTION @extschema@._backfill_check_settings(
  batch_min pg_catalog.int4, batch_max pg_catalog.int4, target_ms pg_catalog.int4,
  sleep_ratio pg_catalog.float8, lock_timeout_ms pg_catalog.int4, max_retries pg_catalog.int4)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF batch_min < 1 OR batch_max < batch_min THEN
    RAISE EXCEPTION 'batch sizes must satisfy 1 <= batch_min <= batch_max (got % and %)', batch_min, batch_max
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF target_ms NOT BETWEEN 10 AND 600000 THEN
    RAISE EXCEPTION 'target_ms must be between 10 and 600000 (got %)', target_ms
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF sleep_ratio NOT BETWEEN 0 AND 100 THEN
    RAISE EXCEPTION 'sleep_ratio must be between 0 and 100 (got %)', sleep_ratio
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF lock_timeout_ms NOT BETWEEN 1 AND 600000 THEN
    RAISE EXCEPTION 'lock_timeout_ms must be between 1 and 600000 (got %)', lock_timeout_ms
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF max_retries < 0 THEN
    RAISE EXCEPTION 'max_retries must be 0 or more (got %)', max_retries
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
END
$$;

-- The arguments every *_create shares: the name's form and if_exists.
CREATE FUNCTION @extschema@._check_create(what pg_catalog.text, name pg_catalog.text,
                                          max_length pg_catalog.int4, if_exists pg_catalog.text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF name IS NULL OR name !~ ('^[A-Za-z0-9_.:-]{1,' || max_length || '}$') THEN
    RAISE EXCEPTION 'invalid % name "%"', what, name
      USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('Names are 1 to %s letters, digits, "_", ".", ":" or "-".', max_length);
  END IF;
  IF if_exists NOT IN ('error', 'reuse') THEN
    RAISE EXCEPTION 'if_exists must be error or reuse, not "%"', if_exists
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
END
$$;

/*
 * shift.backfill_create(name, relation, set => | into =>, ...)
 *
 * Defines a job.  In place: set => 'col = expr, ...' (optionally where =>).
 * Copy: into => 'target', with columns => the target's columns and
 * select => the matching expressions over the source (default: the target's
 * columns that the source has too, by name), on_conflict => 'error',
 * 'nothing' or 'update' (the target's primary key decides what conflicts).
 * key => a unique index to walk instead of the primary key.  Every SQL
 * fragment is checked with the server's parser and the statements are
 * prepared once here, so mistakes surface now, not in the first batch.
 * With if_exists => 'reuse', an identical existing job is kept (a different
 * one is an error); the default refuses any existing job.  migration and
 * phase tie the job to the phase that made it: running that phase's down
 * drops the job, so that a new attempt starts from the beginning.
 */
CREATE FUNCTION @extschema@.backfill_create(
  name pg_catalog.text, relation pg_catalog.regclass,
  set pg_catalog.text DEFAULT NULL, "where" pg_catalog.text DEFAULT NULL,
  "into" pg_catalog.regclass DEFAULT NULL, columns pg_catalog.text[] DEFAULT NULL,
  "select" pg_catalog.text DEFAULT NULL, on_conflict pg_catalog.text DEFAULT 'error',
  key pg_catalog.regclass DEFAULT NULL,
  batch_min pg_catalog.int4 DEFAULT 100, batch_max pg_catalog.int4 DEFAULT 50000,
  target_ms pg_catalog.int4 DEFAULT 200, sleep_ratio pg_catalog.float8 DEFAULT 0,
  lock_timeout_ms pg_catalog.int4 DEFAULT 1000, max_retries pg_catalog.int4 DEFAULT 20,
  max_lag pg_catalog.interval DEFAULT '10 seconds', throttle_query pg_catalog.text DEFAULT NULL,
  if_exists pg_catalog.text DEFAULT 'error',
  migration pg_catalog.text DEFAULT NULL, phase pg_catalog.text DEFAULT NULL)
RETURNS pg_catalog.text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  old @extschema@.backfill;
  kind pg_catalog.text;
  v_name CONSTANT pg_catalog.text := backfill_create.name;
BEGIN
  PERFORM @extschema@._check_create('backfill job', v_name, 250, if_exists);
  IF (set IS NULL) = ("into" IS NULL) THEN
    RAISE EXCEPTION 'backfill job "%" needs exactly one of set => (update in place) and into => (copy)', v_name
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'set => ''col = expr'' updates rows in place; into => ''table'' copies them.';
  END IF;
  kind := CASE WHEN set IS NOT NULL THEN 'update' ELSE 'copy' END;
  PERFORM @extschema@._backfill_check_settings(batch_min, batch_max, target_ms, sleep_ratio,
                                               lock_timeout_ms, max_retries);
  -- PostgreSQL refuses the run anyway; say so now, before anything starts
  IF kind = 'update' AND NOT (has_table_privilege(relation, 'SELECT') AND has_table_privilege(relation, 'UPDATE')) THEN
    RAISE EXCEPTION 'role "%" may not backfill %: it needs SELECT and UPDATE on it', current_user, relation
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF kind = 'copy' AND NOT (has_table_privilege(relation, 'SELECT') AND has_table_privilege("into", 'INSERT')) THEN
    RAISE EXCEPTION 'role "%" may not copy % into %: it needs SELECT on the one and INSERT on the other',
                    current_user, relation, "into"
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF kind = 'update' AND (columns IS NOT NULL OR "select" IS NOT NULL OR on_conflict <> 'error') THEN
    RAISE EXCEPTION 'columns, select and on_conflict apply only to a copy (into =>)'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;

  SELECT * INTO old FROM @extschema@.backfill b WHERE b.name = v_name FOR UPDATE;
  IF FOUND THEN
    IF if_exists = 'reuse' AND old.relation = backfill_create.relation AND old.kind = kind
       AND old.set_clause IS NOT DISTINCT FROM set
       AND old.where_clause IS NOT DISTINCT FROM "where"
       AND old.into_relation IS NOT DISTINCT FROM "into"
       AND (columns IS NULL OR old.into_columns IS NOT DISTINCT FROM columns)
       AND ("select" IS NULL OR old.select_list IS NOT DISTINCT FROM "select")
       AND old.on_conflict = on_conflict
       AND (key IS NULL OR old.key_index = key)
       AND old.migration IS NOT DISTINCT FROM backfill_create.migration
       AND old.phase IS NOT DISTINCT FROM backfill_create.phase THEN
      RETURN v_name;
    END IF;
    RAISE EXCEPTION 'backfill job "%" already exists%', v_name,
      CASE WHEN if_exists = 'reuse' THEN ' with a different definition' ELSE '' END
      USING ERRCODE = 'duplicate_object',
            HINT = 'Drop it with shift.backfill_drop(''' || v_name || ''') or choose another name.';
  END IF;

  INSERT INTO @extschema@.backfill (name, relation, kind, set_clause, where_clause, into_relation,
                                    into_columns, select_list, on_conflict, key_index, key_columns,
                                    batch_min, batch_max, target_ms, sleep_ratio, lock_timeout_ms,
                                    max_retries, max_lag, throttle_query, migration, phase)
  VALUES (v_name, relation, kind, set, "where", "into", columns, "select", on_conflict,
          coalesce(key, relation), '{}', batch_min, batch_max, target_ms, sleep_ratio,
          lock_timeout_ms, max_retries, max_lag, throttle_query,
          backfill_create.migration, backfill_create.phase);
  -- resolves the key, the default column mapping, checks and prepares everything
  PERFORM @extschema@._backfill_check(v_name);
  RETURN v_name;
END
$$;

-- Resolves and checks a job's key, columns and SQL (C).
CREATE FUNCTION @extschema@._backfill_check(name pg_catalog.text)
RETURNS void
AS 'MODULE_PATHNAME', 'shift_backfill_check'
LANGUAGE C STRICT;

/*
 * CALL shift.backfill_run(name, max_runtime => NULL, max_batches => NULL)
 *
 * Runs batches until the job is done, paused or cancelled, or max_runtime
 * or max_batches is reached, committing after every batch.  Must be called
 * with CALL outside an explicit transaction (pg_cron does that).
 */
CREATE PROCEDURE @extschema@.backfill_run(name pg_catalog.text,
                                          max_runtime pg_catalog.interval DEFAULT NULL,
                                          max_batches pg_catalog.int8 DEFAULT NULL)
AS 'MODULE_PATHNAME', 'shift_backfill_run'
LANGUAGE C;

/*
 * shift.backfill_step(name) -> (keys, rows, done)
 *
 * Exactly one batch, inside the caller's transaction (no commit, no
 * throttling, no retries): for tests, and for callers who drive batches.
 */
CREATE FUNCTION @extschema@.backfill_step(name pg_catalog.text,
                                          OUT keys pg_catalog.int8, OUT rows pg_catalog.int8,
                                          OUT done pg_catalog.bool)
AS 'MODULE_PATHNAME', 'shift_backfill_step'
LANGUAGE C STRICT;

CREATE FUNCTION @extschema@._backfill_job(p_name pg_catalog.text)
RETURNS @extschema@.backfill
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  j @extschema@.backfill;
BEGIN
  SELECT * INTO j FROM @extschema@.backfill WHERE name = p_name FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'backfill job "%" does not exist', p_name
      USING ERRCODE = 'undefined_object',
            HINT = 'SELECT name FROM shift.backfill_progress lists the jobs.';
  END IF;
  RETURN j;
END
$$;

-- shift.backfill_pause(name): the job stops before its next batch.
CREATE FUNCTION @extschema@.backfill_pause(name pg_catalog.text)
RETURNS pg_catalog.text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  j @extschema@.backfill := @extschema@._backfill_job(name);
BEGIN
  IF j.state IN ('done', 'cancelled') THEN
    RAISE EXCEPTION 'backfill job "%" is % and cannot be paused', name, j.state
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  UPDATE @extschema@.backfill b SET state = 'paused' WHERE b.name = backfill_pause.name;
  RETURN 'paused';
END
$$;

-- shift.backfill_resume(name): a paused (or failed) job may run again.
CREATE FUNCTION @extschema@.backfill_resume(name pg_catalog.text)
RETURNS pg_catalog.text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  j @extschema@.backfill := @extschema@._backfill_job(name);
  s pg_catalog.text;
BEGIN
  IF j.state NOT IN ('paused', 'failed') THEN
    RAISE EXCEPTION 'backfill job "%" is %, not paused', name, j.state
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  s := CASE WHEN j.upper_key IS NULL THEN 'pending' ELSE 'active' END;
  UPDATE @extschema@.backfill b SET state = s WHERE b.name = backfill_resume.name;
  RETURN s;
END
$$;

-- shift.backfill_cancel(name): the job stops before its next batch, for good.
CREATE FUNCTION @extschema@.backfill_cancel(name pg_catalog.text)
RETURNS pg_catalog.text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  j @extschema@.backfill := @extschema@._backfill_job(name);
BEGIN
  IF j.state = 'done' THEN
    RAISE EXCEPTION 'backfill job "%" is already done', name
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  UPDATE @extschema@.backfill b SET state = 'cancelled', finished_at = now()
   WHERE b.name = backfill_cancel.name;
  RETURN 'cancelled';
END
$$;

-- shift.backfill_set(name, ...): changes settings; the next batch uses them.
CREATE FUNCTION @extschema@.backfill_set(name pg_catalog.text,
  batch_min pg_catalog.int4 DEFAULT NULL, batch_max pg_catalog.int4 DEFAULT NULL,
  target_ms pg_catalog.int4 DEFAULT NULL, sleep_ratio pg_catalog.float8 DEFAULT NULL,
  lock_timeout_ms pg_catalog.int4 DEFAULT NULL, max_retries pg_catalog.int4 DEFAULT NULL,
  max_lag pg_catalog.interval DEFAULT NULL, throttle_query pg_catalog.text DEFAULT NULL,
  clear_max_lag pg_catalog.bool DEFAULT false, clear_throttle_query pg_catalog.bool DEFAULT false)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  j @extschema@.backfill := @extschema@._backfill_job(name);
BEGIN
  PERFORM @extschema@._backfill_check_settings(
    coalesce(batch_min, j.batch_min), coalesce(batch_max, j.batch_max),
    coalesce(target_ms, j.target_ms), coalesce(sleep_ratio, j.sleep_ratio),
    coalesce(lock_timeout_ms, j.lock_timeout_ms), coalesce(max_retries, j.max_retries));
  UPDATE @extschema@.backfill b
     SET batch_min = coalesce(backfill_set.batch_min, b.batch_min),
         batch_max = coalesce(backfill_set.batch_max, b.batch_max),
         target_ms = coalesce(backfill_set.target_ms, b.target_ms),
         sleep_ratio = coalesce(backfill_set.sleep_ratio, b.sleep_ratio),
         lock_timeout_ms = coalesce(backfill_set.lock_timeout_ms, b.lock_timeout_ms),
         max_retries = coalesce(backfill_set.max_retries, b.max_retries),
         max_lag = CASE WHEN clear_max_lag THEN NULL ELSE coalesce(backfill_set.max_lag, b.max_lag) END,
         throttle_query = CASE WHEN clear_throttle_query THEN NULL
                               ELSE coalesce(backfill_set.throttle_query, b.throttle_query) END
   WHERE b.name = backfill_set.name;
  IF throttle_query IS NOT NULL THEN
    PERFORM @extschema@._backfill_check(name);
  END IF;
END
$$;

-- shift.backfill_drop(name): forgets a job that is not running.
CREATE FUNCTION @extschema@.backfill_drop(name pg_catalog.text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  j @extschema@.backfill := @extschema@._backfill_job(name);
BEGIN
  -- the key of the job's run lock: (0x73686266 'shbf', hashtext(name))
  IF NOT pg_try_advisory_xact_lock(1936220774, hashtext(name)) THEN
    RAISE EXCEPTION 'backfill job "%" is running and cannot be dropped', name
      USING ERRCODE = 'object_in_use', HINT = 'Cancel it first with shift.backfill_cancel.';
  END IF;
  DELETE FROM @extschema@.backfill b WHERE b.name = backfill_drop.name;
END
$$;

-- Drops the backfill jobs a phase made, once its down has undone their work.
CREATE FUNCTION @extschema@._forget_backfills(migration pg_catalog.text, phase pg_catalog.text)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
  DELETE FROM @extschema@.backfill b
   WHERE b.migration = _forget_backfills.migration AND b.phase = _forget_backfills.phase
$$;

CREATE VIEW @extschema@.backfill_progress AS
SELECT b.name,
       b.relation,
       b.kind,
       CASE WHEN l.pid IS NOT NULL THEN 'running' ELSE b.state END AS state,
       l.pid AS running_pid,
       b.rows_done,
       b.keys_done,
       CASE WHEN b.estimated_total IS NOT NULL
            THEN greatest(b.estimated_total, b.keys_done) END AS estimated_total,
       CASE WHEN b.state = 'done' THEN 100.0
            WHEN coalesce(b.estimated_total, 0) > 0
            THEN least(99.9, round(100.0 * b.keys_done / b.estimated_total, 1)) END AS percent,
       round(b.rate::numeric, 1) AS rate,
       CASE WHEN b.state NOT IN ('done', 'cancelled') AND b.rate > 0 AND b.estimated_total IS NOT NULL
            THEN make_interval(secs => greatest(b.estimated_total - b.keys_done, 0) / b.rate) END AS eta,
       b.batch_size,
       b.batches,
       b.last_key_text AS last_key,
       b.upper_key_text AS upper_key,
       b.retries,
       b.throttled,
       b.last_error,
       b.last_sqlstate,
       b.started_at,
       b.updated_at,
       b.finished_at,
       coalesce(b.finished_at, b.updated_at) - b.started_at AS elapsed,
       b.owner
  FROM @extschema@.backfill b
  LEFT JOIN pg_catalog.pg_locks l
    ON l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
   AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d
                      WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())
   AND l.classid = 1936220774::oid
   AND l.objid = (pg_catalog.hashtext(b.name)::int8 & 4294967295)::oid;
COMMENT ON VIEW @extschema@.backfill_progress IS
  'every backfill job: state, rows done, estimated total, percent, rate (keys/s), ETA, batch size, last key, retries, last error';

-- ---------------------------------------------------------------------------
-- Checksums and compare (C in extension/checksum.c).  Every row is hashed in
-- a canonical binary form with XXH3-128; a chunk is a row count plus two
-- 64-bit sums of its rows' hashes.  All of these only read, as the calling
-- role, in the calling statement's snapshot.
-- ---------------------------------------------------------------------------

CREATE FUNCTION @extschema@.table_checksum(
  rel      pg_catalog.regclass,
  columns  pg_catalog.text[] DEFAULT NULL,
  OUT rows pg_catalog.int8,
  OUT checksum pg_catalog.text)
RETURNS record
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'shift_table_checksum';
COMMENT ON FUNCTION @extschema@.table_checksum(pg_catalog.regclass, pg_catalog.text[]) IS
  'Row count and 128-bit order-independent checksum of a table (or of the given columns/expressions) in one scan';

CREATE FUNCTION @extschema@.chunk_checksums(
  rel        pg_catalog.regclass,
  columns    pg_catalog.text[] DEFAULT NULL,
  key        pg_catalog.text[] DEFAULT NULL,
  buckets    pg_catalog.int4 DEFAULT NULL,
  chunk_rows pg_catalog.int8 DEFAULT NULL,
  target_ms  pg_catalog.int4 DEFAULT NULL,
  lower      pg_catalog.text[] DEFAULT NULL,
  upper      pg_catalog.text[] DEFAULT NULL,
  only_buckets pg_catalog.int4[] DEFAULT NULL,
  pages      pg_catalog.int8range DEFAULT NULL)
RETURNS TABLE (chunk pg_catalog.int8, lower pg_catalog.text[], upper pg_catalog.text[],
               rows pg_catalog.int8, checksum pg_catalog.text)
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'shift_chunk_checksums';
COMMENT ON FUNCTION @extschema@.chunk_checksums(pg_catalog.regclass, pg_catalog.text[], pg_catalog.text[], pg_catalog.int4, pg_catalog.int8, pg_catalog.int4, pg_catalog.text[], pg_catalog.text[], pg_catalog.int4[], pg_catalog.int8range) IS
  'Checksums per key range (chunk_rows, target_ms, lower, upper) or per key-hash bucket (buckets, only_buckets, pages)';

CREATE FUNCTION @extschema@.row_hashes(
  rel      pg_catalog.regclass,
  columns  pg_catalog.text[] DEFAULT NULL,
  key      pg_catalog.text[] DEFAULT NULL,
  buckets  pg_catalog.int4 DEFAULT 1,
  only_buckets pg_catalog.int4[] DEFAULT NULL)
RETURNS TABLE (bucket pg_catalog.int4, key pg_catalog.text[], key_hash pg_catalog.text,
               row_hash pg_catalog.text)
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'shift_row_hashes';
COMMENT ON FUNCTION @extschema@.row_hashes(pg_catalog.regclass, pg_catalog.text[], pg_catalog.text[], pg_catalog.int4, pg_catalog.int4[]) IS
  'Key and row hash of each row in the given key-hash buckets: the drill-down under chunk_checksums';

CREATE FUNCTION @extschema@.compare(
  source         pg_catalog.regclass,
  target         pg_catalog.regclass,
  columns        pg_catalog.text[] DEFAULT NULL,
  target_columns pg_catalog.text[] DEFAULT NULL,
  key            pg_catalog.text[] DEFAULT NULL,
  target_key     pg_catalog.text[] DEFAULT NULL,
  buckets        pg_catalog.int4 DEFAULT NULL)
RETURNS TABLE (kind pg_catalog.text, key pg_catalog.text[], columns pg_catalog.text[])
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'shift_compare';
COMMENT ON FUNCTION @extschema@.compare(pg_catalog.regclass, pg_catalog.regclass, pg_catalog.text[], pg_catalog.text[], pg_catalog.text[], pg_catalog.text[], pg_catalog.int4) IS
  'Rows missing in the target, missing in the source, or different (with the differing columns); no rows when equal';

CREATE FUNCTION @extschema@.checksum_columns(
  rel      pg_catalog.regclass,
  columns  pg_catalog.text[] DEFAULT NULL,
  key      pg_catalog.text[] DEFAULT NULL)
RETURNS TABLE (ord pg_catalog.int4, label pg_catalog.text, is_key pg_catalog.bool,
               type pg_catalog.text, class pg_catalog.text)
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'shift_checksum_columns';
COMMENT ON FUNCTION @extschema@.checksum_columns(pg_catalog.regclass, pg_catalog.text[], pg_catalog.text[]) IS
  'The columns and key a checksum of the table hashes, with their types and hash classes (columns of different classes never match)';

-- ---------------------------------------------------------------------------
-- Dual-write sync and cut-over (triggers in C in extension/sync.c).  A sync
-- keeps old and new in step while both are in use: a column-level sync sets
-- new columns from old ones (and back, given reverse_set); a table-level
-- sync mirrors every write of one table into another through a column
-- mapping, and after the cut-over mirrors the new table back into the old
-- one, so a rollback after the cut-over loses nothing.
-- ---------------------------------------------------------------------------

CREATE TABLE @extschema@.sync (
  name                pg_catalog.text PRIMARY KEY
                      CHECK (name OPERATOR(pg_catalog.~) '^[A-Za-z0-9_.:-]{1,48}$'),
  kind                pg_catalog.text NOT NULL CHECK (kind IN ('column', 'table')),
  relation            pg_catalog.regclass NOT NULL,   -- the table being replaced (or changed)
  -- column level
  set_clause          pg_catalog.text,                -- 'new = expr(old), ...'
  reverse_set         pg_catalog.text,                -- 'old = expr(new), ...'
  -- table level: relation -> target (forward) and target -> relation (reverse)
  target              pg_catalog.regclass,
  target_columns      pg_catalog.text[],
  expressions         pg_catalog.text[],              -- over relation, one per target column
  target_key          pg_catalog.text[],
  reverse_columns     pg_catalog.text[],              -- NULL: no reverse mapping
  reverse_expressions pg_catalog.text[],              -- over target, one per relation column
  relation_key        pg_catalog.text[],
  relation_alias      pg_catalog.text,                -- the tables' names when the sync was made:
  target_alias        pg_catalog.text,                --   what qualifies columns in the expressions
  key_follows_source  pg_catalog.bool NOT NULL DEFAULT false,  -- target key = source key columns (cast)
  direction           pg_catalog.text NOT NULL DEFAULT 'forward'
                      CHECK (direction IN ('forward', 'reverse')),
  search_path         pg_catalog.text NOT NULL,       -- in force when its SQL is parsed and run
  owner               pg_catalog.name NOT NULL DEFAULT CURRENT_USER,
  migration           pg_catalog.text,
  phase               pg_catalog.text,
  created_at          pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now(),
  -- the cut-over: names before it (cutover_revert restores them) and when
  relation_name       pg_catalog.text,
  target_name         pg_catalog.text,
  archive_name        pg_catalog.text,
  cutover_at          pg_catalog.timestamptz,
  repointed_fks       pg_catalog.text[],              -- valid foreign keys the cut-over re-pointed NOT VALID
  pending_validate    pg_catalog.text[],              -- VALIDATE statements the last swap left to run
  CHECK ((kind = 'column') = (set_clause IS NOT NULL)),
  CHECK ((kind = 'table') = (target IS NOT NULL)),
  CHECK (kind = 'table' OR direction = 'forward'),
  CHECK (cardinality(target_columns) = cardinality(expressions)),
  CHECK (cardinality(reverse_columns) = cardinality(reverse_expressions))
);
COMMENT ON TABLE @extschema@.sync IS
  'dual-write syncs: what their triggers compute, in which direction they run, and the cut-over';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.sync', '');

-- The trigger function (C): arguments are the sync's name and its direction.
CREATE FUNCTION @extschema@._sync_trigger()
RETURNS trigger
AS 'MODULE_PATHNAME', 'shift_sync_trigger'
LANGUAGE C;

-- Compiles everything a sync's triggers will run (C), so mistakes surface now.
CREATE FUNCTION @extschema@._sync_check(name pg_catalog.text)
RETURNS void
AS 'MODULE_PATHNAME', 'shift_sync_check'
LANGUAGE C STRICT;

-- 'a::bigint, lower(b)' -> {a::bigint,lower(b)}, each checked to stand alone (C).
CREATE FUNCTION @extschema@._select_list("select" pg_catalog.text)
RETURNS pg_catalog.text[]
AS 'MODULE_PATHNAME', 'shift_select_list'
LANGUAGE C STRICT IMMUTABLE;

-- The names of a sync's triggers (the first one is the column-level trigger).
CREATE FUNCTION @extschema@._sync_trigger_names(name pg_catalog.text)
RETURNS pg_catalog.text[]
LANGUAGE sql IMMUTABLE
AS $$
  SELECT ARRAY['shift_sync_' || name, 'shift_sync_' || name || '_ins', 'shift_sync_' || name || '_upd',
               'shift_sync_' || name || '_del', 'shift_sync_' || name || '_row',
               'shift_sync_' || name || '_trn']
$$;

-- What a sync's trigger is created for: a hash of everything it will run.
-- The trigger refuses a row that no longer hashes to it (see sync.c).
CREATE FUNCTION @extschema@._sync_digest(s @extschema@.sync)
RETURNS pg_catalog.text
LANGUAGE sql IMMUTABLE
AS $$
  SELECT pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(
           ROW(s.name, s.kind, s.relation::pg_catalog.oid, s.set_clause, s.reverse_set,
               s.target::pg_catalog.oid, s.target_columns, s.expressions, s.target_key,
               s.reverse_columns, s.reverse_expressions, s.relation_key, s.relation_alias,
               s.target_alias, s.direction, s.search_path)::pg_catalog.text, 'UTF8')), 'hex')
$$;

-- Creates the triggers of a sync in its current direction.
CREATE FUNCTION @extschema@._sync_install(p_name pg_catalog.text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  s @extschema@.sync;
  src pg_catalog.regclass;
  part pg_catalog.regclass;
  kind pg_catalog."char";
  owned boolean;
  base pg_catalog.text := 'shift_sync_' || p_name;
  fn pg_catalog.text := '@extschema@._sync_trigger';
  args pg_catalog.text;
BEGIN
  SELECT * INTO STRICT s FROM @extschema@.sync WHERE name = p_name;
  args := format('%L, %L, %L', p_name, s.direction, @extschema@._sync_digest(s));
  IF s.kind = 'column' THEN
    EXECUTE format('CREATE TRIGGER %I BEFORE INSERT OR UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION %s(%s)',
                   base, s.relation, fn, args);
    RETURN;
  END IF;
  src := CASE WHEN s.direction = 'forward' THEN s.relation ELSE s.target END;
  IF (SELECT c.relkind FROM pg_class c WHERE c.oid = src) = 'p' THEN
    -- statement triggers do not fire for writes made to a partition directly
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION %s(%s)',
                   base || '_row', src, fn, args);
    -- Nor for TRUNCATE of one partition, and PostgreSQL clones no statement
    -- trigger to partitions: each partition that holds rows now gets its own,
    -- which deletes that partition's keys from the other table first.  The
    -- partitioned table's fires BEFORE too, so that truncating all of it
    -- empties the other table before any partition's trigger looks (each
    -- then finds nothing to delete).
    FOR part, kind, owned IN
        SELECT t.relid, c.relkind, pg_has_role(c.relowner, 'USAGE') FROM pg_partition_tree(src) t
          JOIN pg_class c ON c.oid = t.relid
         WHERE t.isleaf ORDER BY t.relid::pg_catalog.regclass::pg_catalog.text
    LOOP
      IF kind = 'f' THEN
        RAISE WARNING 'TRUNCATE of foreign partition % will not be mirrored by sync "%"', part, p_name
          USING HINT = 'Foreign tables take no TRUNCATE triggers: empty it with DELETE.';
      ELSIF NOT owned THEN
        -- only its owner could drop the trigger again (sync_drop, the cut-over)
        RAISE WARNING 'TRUNCATE of partition % will not be mirrored by sync "%"', part, p_name
          USING DETAIL = format('Role %s does not own it, and only its owner could drop the trigger again.', current_user),
                HINT = 'Create the sync as a role that owns every partition, or empty that partition with DELETE.';
      ELSE
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION %s(%s)',
                       base || '_trn', part, fn, args);
      END IF;
    END LOOP;
    EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION %s(%s)',
                   base || '_trn', src, fn, args);
    RETURN;
  ELSE
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS pgs_new'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION %s(%s)',
                   base || '_ins', src, fn, args);
    EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %s REFERENCING OLD TABLE AS pgs_old NEW TABLE AS pgs_new'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION %s(%s)',
                   base || '_upd', src, fn, args);
    EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %s REFERENCING OLD TABLE AS pgs_old'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION %s(%s)',
                   base || '_del', src, fn, args);
  END IF;
  EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION %s(%s)',
                 base || '_trn', src, fn, args);
END
$$;

-- Drops whatever triggers of the sync exist, on either table or any partition.
CREATE FUNCTION @extschema@._sync_uninstall(p_name pg_catalog.text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  t record;
BEGIN
  FOR t IN SELECT tg.tgname, tg.tgrelid::pg_catalog.regclass AS rel
             FROM pg_trigger tg
            WHERE tg.tgfoid = '@extschema@._sync_trigger'::pg_catalog.regproc AND tg.tgparentid = 0
              AND tg.tgname = ANY (@extschema@._sync_trigger_names(p_name))
              -- its first argument names the sync: also a partition detached since
              AND pg_catalog.substr(tg.tgargs, 1, pg_catalog.octet_length(p_name) + 1)
                  = pg_catalog.convert_to(p_name, pg_catalog.current_setting('server_encoding'))
                    || pg_catalog.decode('00', 'hex')
  LOOP
    EXECUTE format('DROP TRIGGER %I ON %s', t.tgname, t.rel);
  END LOOP;
END
$$;

-- Column names of rel that are not dropped or generated, in order.
CREATE FUNCTION @extschema@._writable_columns(rel pg_catalog.regclass)
RETURNS pg_catalog.text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce(array_agg(a.attname::text ORDER BY a.attnum), '{}')
    FROM pg_attribute a
   WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
$$;

-- The primary key's column names, or NULL.
CREATE FUNCTION @extschema@._primary_key(rel pg_catalog.regclass)
RETURNS pg_catalog.text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT array_agg(a.attname::text ORDER BY k.ord)
    FROM pg_index i
   CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
   WHERE i.indrelid = rel AND i.indisprimary
$$;

/*
 * One direction of a table-level mapping, with its defaults filled in:
 * columns of dst (default: those src has too, by name), one expression over
 * src per column (default: the same names), and dst's key (default: its
 * primary key, which must be among the columns).
 */
CREATE FUNCTION @extschema@._sync_mapping(sync_name pg_catalog.text, what pg_catalog.text,
  src pg_catalog.regclass, dst pg_catalog.regclass, columns pg_catalog.text[],
  "select" pg_catalog.text, key pg_catalog.text[],
  OUT out_columns pg_catalog.text[], OUT out_expressions pg_catalog.text[], OUT out_key pg_catalog.text[])
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  c pg_catalog.text;
  src_cols pg_catalog.text[] := @extschema@._writable_columns(src);
  dst_cols pg_catalog.text[] := @extschema@._writable_columns(dst);
BEGIN
  IF columns IS NULL THEN
    SELECT coalesce(array_agg(x ORDER BY o), '{}') INTO out_columns
      FROM unnest(dst_cols) WITH ORDINALITY AS d(x, o)
     WHERE x = ANY (src_cols) OR EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = src
                                           AND a.attname = x AND a.attnum > 0 AND NOT a.attisdropped);
    IF cardinality(out_columns) = 0 THEN
      RAISE EXCEPTION '% and % have no column name in common (the % mapping of sync "%")', src, dst, what, sync_name
        USING ERRCODE = 'invalid_parameter_value',
              HINT = 'Give the columns and the select list.';
    END IF;
  ELSE
    out_columns := columns;
    FOREACH c IN ARRAY columns LOOP
      IF NOT c = ANY (dst_cols) THEN
        RAISE EXCEPTION 'column "%" of % does not exist or cannot be written (the % mapping of sync "%")',
                        c, dst, what, sync_name
          USING ERRCODE = 'undefined_column';
      END IF;
    END LOOP;
  END IF;
  IF "select" IS NULL THEN
    SELECT array_agg(quote_ident(x) ORDER BY o) INTO out_expressions
      FROM unnest(out_columns) WITH ORDINALITY AS d(x, o);
  ELSE
    out_expressions := @extschema@._select_list("select");
  END IF;
  IF cardinality(out_expressions) <> cardinality(out_columns) THEN
    RAISE EXCEPTION 'the % mapping of sync "%" has % columns but % expressions', what, sync_name,
                    cardinality(out_columns), cardinality(out_expressions)
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Give one expression per column, in the same order.';
  END IF;
  out_key := coalesce(key, @extschema@._primary_key(dst));
  IF out_key IS NULL THEN
    RAISE EXCEPTION '% has no primary key to match rows by (the % mapping of sync "%")', dst, what, sync_name
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Add one, or name a unique key.';
  END IF;
  FOREACH c IN ARRAY out_key LOOP
    IF NOT c = ANY (out_columns) THEN
      RAISE EXCEPTION 'key column "%" of % is not among the columns the % mapping of sync "%" writes',
                      c, dst, what, sync_name
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
  END LOOP;
  -- the trigger's upsert names the key in ON CONFLICT: only the executor would refuse it
  IF NOT EXISTS (SELECT 1 FROM pg_index i
                  WHERE i.indrelid = dst AND i.indisunique AND i.indimmediate AND i.indisvalid
                    AND i.indpred IS NULL AND i.indexprs IS NULL
                    AND (SELECT array_agg(a.attname::text ORDER BY a.attname::text)
                           FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
                           JOIN pg_attribute a ON a.attrelid = dst AND a.attnum = k.attnum
                          WHERE k.ord <= i.indnkeyatts)
                        = (SELECT array_agg(k ORDER BY k) FROM unnest(out_key) AS k)) THEN
    RAISE EXCEPTION 'key (%) of % is not the key of a unique index that can arbitrate ON CONFLICT (the % mapping of sync "%")',
                    array_to_string(out_key, ', '), dst, what, sync_name
      USING ERRCODE = 'object_not_in_prerequisite_state',
            DETAIL = 'The sync writes with INSERT ... ON CONFLICT (key) DO UPDATE.',
            HINT = 'Create a unique index on exactly these columns, not deferrable and not partial, or name another key.';
  END IF;
END
$$;

-- The column an expression is, if it is nothing but a column (maybe cast): 'id', '"Id"::bigint'.
CREATE FUNCTION @extschema@._plain_column(expr pg_catalog.text)
RETURNS pg_catalog.text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE WHEN m[1] IS NOT NULL THEN lower(m[1]) ELSE replace(m[2], '""', '"') END
    FROM regexp_match(expr, '^\s*(?:([A-Za-z_][A-Za-z0-9_$]*)|"((?:[^"]|"")+)")'
                            '\s*(?:::\s*[A-Za-z_][A-Za-z0-9_ ]*(?:\s*\([0-9, ]*\))?(?:\[\])?\s*)?$') AS m
$$;

/*
 * shift.sync_create(name, relation, set => | into =>, ...) -> name
 *
 * Column level: set => 'new_col = expr(old cols), ...' keeps new columns
 * computed on every INSERT and UPDATE; reverse_set => 'old_col = expr(new
 * cols)' computes the old ones instead when a writer changed only new
 * columns (to values that disagree with set's).
 * Table level: into => 'new_table' mirrors every INSERT, UPDATE, DELETE and
 * TRUNCATE of relation into it: columns => the new table's columns (default:
 * those relation has by name), select => one expression over relation per
 * column (default: the same names), key => the new table's key (default: its
 * primary key).  The reverse mapping (reverse_columns, reverse_select,
 * reverse_key, same defaults the other way) is what runs after the
 * cut-over; reverse => false makes a sync that cannot be cut over with a
 * way back.  Everything is compiled before any trigger exists.
 */
CREATE FUNCTION @extschema@.sync_create(
  name pg_catalog.text, relation pg_catalog.regclass,
  set pg_catalog.text DEFAULT NULL, reverse_set pg_catalog.text DEFAULT NULL,
  "into" pg_catalog.regclass DEFAULT NULL, columns pg_catalog.text[] DEFAULT NULL,
  "select" pg_catalog.text DEFAULT NULL, key pg_catalog.text[] DEFAULT NULL,
  reverse pg_catalog.bool DEFAULT true, reverse_columns pg_catalog.text[] DEFAULT NULL,
  reverse_select pg_catalog.text DEFAULT NULL, reverse_key pg_catalog.text[] DEFAULT NULL,
  if_exists pg_catalog.text DEFAULT 'error',
  migration pg_catalog.text DEFAULT NULL, phase pg_catalog.text DEFAULT NULL,
  search_path pg_catalog.text DEFAULT pg_catalog.current_setting('search_path'))
RETURNS pg_catalog.text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_name CONSTANT pg_catalog.text := sync_create.name;
  old @extschema@.sync;
  new_row @extschema@.sync;
  fwd record;
  rev record;
  missing pg_catalog.text;
  writers pg_catalog.text;
BEGIN
  PERFORM @extschema@._check_create('sync', v_name, 48, if_exists);
  IF (set IS NULL) = ("into" IS NULL) THEN
    RAISE EXCEPTION 'sync "%" needs exactly one of set => (columns of one table) and into => (another table)', v_name
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF set IS NOT NULL AND (columns IS NOT NULL OR "select" IS NOT NULL OR key IS NOT NULL
                          OR reverse_columns IS NOT NULL OR reverse_select IS NOT NULL
                          OR reverse_key IS NOT NULL) THEN
    RAISE EXCEPTION 'columns, select, key and their reverse_ forms apply only to a table-level sync (into =>)'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF "into" IS NOT NULL AND reverse_set IS NOT NULL THEN
    RAISE EXCEPTION 'reverse_set applies only to a column-level sync (set =>)'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF "into" = relation THEN
    RAISE EXCEPTION 'sync "%" would mirror % into itself', v_name, relation
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF (SELECT c.relkind FROM pg_class c WHERE c.oid = relation) NOT IN ('r', 'p')
     OR ("into" IS NOT NULL AND (SELECT c.relkind FROM pg_class c WHERE c.oid = "into") NOT IN ('r', 'p')) THEN
    RAISE EXCEPTION 'a sync works between tables (ordinary or partitioned)'
      USING ERRCODE = 'wrong_object_type';
  END IF;
  -- writes the triggers would not see, rows the writer would not see
  IF (SELECT c.relispartition FROM pg_class c WHERE c.oid = relation) THEN
    RAISE EXCEPTION '% is a partition: writes routed through its parent would not be mirrored', relation
      USING ERRCODE = 'wrong_object_type',
            HINT = 'Sync the partitioned table instead.';
  END IF;
  IF EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhparent
              WHERE i.inhparent = relation AND c.relkind = 'r') THEN
    RAISE EXCEPTION '% has inheritance children: writes made to them would not be mirrored', relation
      USING ERRCODE = 'wrong_object_type';
  END IF;
  IF EXISTS (SELECT 1 FROM pg_class c WHERE c.oid IN (relation, "into")
                AND (c.relrowsecurity OR c.relforcerowsecurity)) THEN
    RAISE EXCEPTION 'row-level security is enabled on %',
                    (SELECT string_agg(c.oid::pg_catalog.regclass::pg_catalog.text, ' and ')
                       FROM pg_class c WHERE c.oid IN (relation, "into")
                        AND (c.relrowsecurity OR c.relforcerowsecurity))
      USING ERRCODE = 'feature_not_supported',
            DETAIL = 'The sync writes as the writing role, so policies would hide rows from its deletes and updates, and its copy would not carry them.',
            HINT = 'Apply the policies to both tables by hand and mirror without pg_shift, or disable row-level security for the migration.';
  END IF;
  -- CREATE TRIGGER would refuse; say who may
  IF NOT has_table_privilege(relation, 'TRIGGER')
     OR ("into" IS NOT NULL AND NOT has_table_privilege("into", 'TRIGGER')) THEN
    RAISE EXCEPTION 'role "%" may not create triggers on %', current_user,
                    CASE WHEN NOT has_table_privilege(relation, 'TRIGGER') THEN relation ELSE "into" END
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'Create the sync as the tables'' owner, or GRANT TRIGGER.';
  END IF;

  -- the whole definition, defaults filled in
  new_row.name := v_name;
  new_row.relation := relation;
  new_row.relation_alias := (SELECT c.relname FROM pg_class c WHERE c.oid = relation);
  new_row.search_path := sync_create.search_path;
  new_row.migration := sync_create.migration;
  new_row.phase := sync_create.phase;
  new_row.direction := 'forward';
  new_row.owner := current_user;
  new_row.created_at := now();
  new_row.key_follows_source := false;
  IF set IS NOT NULL THEN
    new_row.kind := 'column';
    new_row.set_clause := set;
    new_row.reverse_set := reverse_set;
  ELSE
    new_row.kind := 'table';
    new_row.target := "into";
    new_row.target_alias := (SELECT c.relname FROM pg_class c WHERE c.oid = "into");
    SELECT * INTO fwd FROM @extschema@._sync_mapping(v_name, 'forward', relation, "into", columns,
                                                     "select", key);
    new_row.target_columns := fwd.out_columns;
    new_row.expressions := fwd.out_expressions;
    new_row.target_key := fwd.out_key;
    IF reverse THEN
      SELECT * INTO rev FROM @extschema@._sync_mapping(v_name, 'reverse', "into", relation,
                                                       reverse_columns, reverse_select, reverse_key);
      new_row.reverse_columns := rev.out_columns;
      new_row.reverse_expressions := rev.out_expressions;
      new_row.relation_key := rev.out_key;
    ELSIF reverse_columns IS NOT NULL OR reverse_select IS NOT NULL OR reverse_key IS NOT NULL THEN
      RAISE EXCEPTION 'reverse => false takes no reverse mapping'
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- is the new table's key the old table's primary key, column for column?
    -- Then a copy backfill need only lock the rows it reads against key
    -- changes (FOR KEY SHARE); otherwise against every change (FOR SHARE).
    new_row.key_follows_source := coalesce((
      SELECT bool_and(@extschema@._plain_column(m.e) = ANY (@extschema@._primary_key(relation)))
             AND count(DISTINCT @extschema@._plain_column(m.e)) = cardinality(@extschema@._primary_key(relation))
        FROM unnest(fwd.out_columns, fwd.out_expressions) AS m(c, e)
       WHERE m.c = ANY (fwd.out_key)), false);
  END IF;

  SELECT * INTO old FROM @extschema@.sync s WHERE s.name = v_name FOR UPDATE;
  IF FOUND THEN
    IF if_exists = 'reuse' AND old.kind = new_row.kind AND old.relation = new_row.relation
       AND old.set_clause IS NOT DISTINCT FROM new_row.set_clause
       AND old.reverse_set IS NOT DISTINCT FROM new_row.reverse_set
       AND old.target IS NOT DISTINCT FROM new_row.target
       AND old.target_columns IS NOT DISTINCT FROM new_row.target_columns
       AND old.expressions IS NOT DISTINCT FROM new_row.expressions
       AND old.target_key IS NOT DISTINCT FROM new_row.target_key
       AND old.reverse_columns IS NOT DISTINCT FROM new_row.reverse_columns
       AND old.reverse_expressions IS NOT DISTINCT FROM new_row.reverse_expressions
       AND old.relation_key IS NOT DISTINCT FROM new_row.relation_key
       AND old.search_path IS NOT DISTINCT FROM new_row.search_path
       AND old.migration IS NOT DISTINCT FROM new_row.migration
       AND old.phase IS NOT DISTINCT FROM new_row.phase THEN
      RETURN v_name;
    END IF;
    RAISE EXCEPTION 'sync "%" already exists%', v_name,
      CASE WHEN if_exists = 'reuse' THEN ' with a different definition' ELSE '' END
      USING ERRCODE = 'duplicate_object',
            HINT = 'Drop it with shift.sync_drop(''' || v_name || ''') or choose another name.';
  END IF;

  IF new_row.kind = 'table' AND reverse THEN
    -- columns of the old table the reverse sync never writes keep their defaults there
    SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO missing
      FROM pg_attribute a
     WHERE a.attrelid = relation AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
       AND NOT a.attname::text = ANY (new_row.reverse_columns);
    IF missing IS NOT NULL THEN
      RAISE WARNING 'the reverse mapping of sync "%" does not write % of %', v_name, missing, relation
        USING DETAIL = 'After the cut-over, rows written to the new table reach the old one without these columns (their defaults).',
              HINT = 'Give reverse_columns and reverse_select to compute them, if a rollback must restore them.';
    END IF;
  END IF;
  INSERT INTO @extschema@.sync SELECT new_row.*;
  IF new_row.kind = 'table' THEN
    -- roles that write the old table must be able to write the new one too
    SELECT string_agg(quote_ident(r.rolname), ', ' ORDER BY r.rolname) INTO writers
      FROM pg_roles r
     WHERE NOT r.rolsuper AND r.rolname !~ '^pg_'
       AND (has_table_privilege(r.oid, relation, 'INSERT') OR has_table_privilege(r.oid, relation, 'UPDATE')
            OR has_table_privilege(r.oid, relation, 'DELETE'))
       AND NOT (has_table_privilege(r.oid, "into", 'SELECT') AND has_table_privilege(r.oid, "into", 'INSERT')
                AND has_table_privilege(r.oid, "into", 'UPDATE') AND has_table_privilege(r.oid, "into", 'DELETE'));
    IF writers IS NOT NULL THEN
      RAISE WARNING 'roles % write % but could not write % through sync "%"', writers, relation, "into", v_name
        USING DETAIL = 'The sync runs as the role writing the table: it needs SELECT, INSERT, UPDATE and DELETE on the new table.',
              HINT = format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO %s;', "into", writers);
    END IF;
  END IF;
  PERFORM @extschema@._sync_check(v_name);
  PERFORM @extschema@._sync_install(v_name);
  RETURN v_name;
END
$$;

/*
 * shift.sync_drop(name, if_exists => false): removes the sync's triggers and
 * forgets it.  After a cut-over this is the contract step that stops keeping
 * the old table current.
 */
CREATE FUNCTION @extschema@.sync_drop(name pg_catalog.text, if_exists pg_catalog.bool DEFAULT false)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  rec @extschema@.sync;
BEGIN
  SELECT * INTO rec FROM @extschema@.sync s WHERE s.name = sync_drop.name FOR UPDATE;
  IF NOT FOUND THEN
    IF if_exists THEN
      RETURN;
    END IF;
    RAISE EXCEPTION 'sync "%" does not exist', name
      USING ERRCODE = 'undefined_object',
            HINT = 'SELECT name FROM shift.sync_status lists the syncs.';
  END IF;
  -- DROP TRIGGER takes an ACCESS EXCLUSIVE lock on each table (and on every
  -- partition of a partitioned one).  Writers lock the table they write, then
  -- through the sync the other one: taking both locks first, in that order,
  -- cannot deadlock with them (dropping the triggers one table at a time, the
  -- destination's or a partition's first, could).
  IF rec.kind = 'table' THEN
    IF rec.direction = 'reverse' THEN
      EXECUTE format('LOCK TABLE %s, %s IN ACCESS EXCLUSIVE MODE', rec.target, rec.relation);
    ELSE
      EXECUTE format('LOCK TABLE %s, %s IN ACCESS EXCLUSIVE MODE', rec.relation, rec.target);
    END IF;
  ELSE
    EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', rec.relation);
  END IF;
  PERFORM @extschema@._sync_uninstall(name);
  DELETE FROM @extschema@.sync s WHERE s.name = sync_drop.name;
END
$$;

CREATE VIEW @extschema@.sync_status AS
SELECT s.name,
       s.kind,
       s.direction,
       CASE WHEN s.direction = 'forward' THEN s.relation ELSE s.target END AS source,
       CASE WHEN s.kind = 'table'
            THEN CASE WHEN s.direction = 'forward' THEN s.target ELSE s.relation END END AS destination,
       t.triggers,
       coalesce(t.enabled, false) AS enabled,
       s.set_clause,
       s.reverse_set,
       s.target_columns,
       s.expressions,
       s.target_key,
       s.reverse_columns,
       s.reverse_expressions,
       s.relation_key,
       s.migration,
       s.phase,
       s.owner,
       s.created_at,
       s.cutover_at,
       s.archive_name
  FROM @extschema@.sync s
  LEFT JOIN LATERAL (
    SELECT array_agg(DISTINCT tg.tgname::pg_catalog.text ORDER BY tg.tgname::pg_catalog.text) AS triggers,
           bool_and(tg.tgenabled <> 'D') AS enabled
      FROM pg_catalog.pg_trigger tg
     WHERE tg.tgfoid = '@extschema@._sync_trigger'::pg_catalog.regproc AND tg.tgparentid = 0
       AND tg.tgrelid IN (SELECT s.relation UNION SELECT s.target
                          UNION SELECT t.relid FROM pg_catalog.pg_partition_tree(s.relation) t
                          UNION SELECT t.relid FROM pg_catalog.pg_partition_tree(s.target) t)
       AND tg.tgname = ANY (@extschema@._sync_trigger_names(s.name))) t ON true;
COMMENT ON VIEW @extschema@.sync_status IS
  'every sync: kind, direction, which table fires into which, its triggers and whether they are enabled, its SQL';

-- ---------------------------------------------------------------------------
-- Cut-over
-- ---------------------------------------------------------------------------

-- Sessions holding a lock on either table, as text for a message.
CREATE FUNCTION @extschema@._lock_holders(rel1 pg_catalog.regclass, rel2 pg_catalog.regclass,
                                          older_than pg_catalog.interval DEFAULT NULL)
RETURNS pg_catalog.text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT string_agg(DISTINCT format('pid %s (%s, transaction open %s%s)', x.pid, coalesce(x.state, '?'),
                                    coalesce(date_trunc('second', now() - x.xact_start)::text, '?'),
                                    CASE WHEN x.query IS NOT NULL AND x.query <> ''
                                         THEN ': ' || left(regexp_replace(x.query, '\s+', ' ', 'g'), 80)
                                         ELSE '' END), '; ')
    FROM (SELECT DISTINCT a.pid, a.state, a.xact_start, a.query
            FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
           WHERE l.locktype = 'relation' AND l.relation IN (rel1::oid, rel2::oid) AND l.granted
             AND l.pid <> pg_backend_pid()
             AND (older_than IS NULL OR a.xact_start < now() - older_than)) x
$$;

/*
 * Compares the two sides of a table-level sync under the cut-over's locks:
 * 'recent' the last check_rows rows of each (by each one's key, mapped),
 * 'count' the row counts, 'none' nothing.  Raises when they differ.
 */
CREATE FUNCTION @extschema@._cutover_check(s @extschema@.sync, reverse pg_catalog.bool,
                                           check_mode pg_catalog.text, check_rows pg_catalog.int4)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  src pg_catalog.regclass := CASE WHEN reverse THEN s.target ELSE s.relation END;
  dst pg_catalog.regclass := CASE WHEN reverse THEN s.relation ELSE s.target END;
  cols pg_catalog.text[] := CASE WHEN reverse THEN s.reverse_columns ELSE s.target_columns END;
  exprs pg_catalog.text[] := CASE WHEN reverse THEN s.reverse_expressions ELSE s.expressions END;
  src_key pg_catalog.text[] := CASE WHEN reverse THEN s.target_key ELSE s.relation_key END;
  dst_key pg_catalog.text[] := CASE WHEN reverse THEN s.relation_key ELSE s.target_key END;
  alias pg_catalog.text;
  src_sql pg_catalog.text;
  dst_sql pg_catalog.text;
  n_src pg_catalog.int8;
  n_dst pg_catalog.int8;
  diff pg_catalog.int8;
BEGIN
  IF check_mode = 'none' THEN
    RETURN;
  ELSIF check_mode = 'count' THEN
    EXECUTE format('SELECT count(*) FROM %s', src) INTO n_src;
    EXECUTE format('SELECT count(*) FROM %s', dst) INTO n_dst;
    IF n_src <> n_dst THEN
      RAISE EXCEPTION 'cut-over check of sync "%" failed: % has % rows, % has %', s.name, src, n_src, dst, n_dst
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = 'Find the differences with shift.compare; the sync keeps the tables equal once the backfill is done.';
    END IF;
    RETURN;
  ELSIF check_mode <> 'recent' THEN
    RAISE EXCEPTION 'check must be recent, count or none, not "%"', check_mode
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- the source's own name qualifies its columns in the expressions
  -- the source's name when the sync was made qualifies its columns, as in the trigger
  alias := CASE WHEN reverse THEN s.target_alias ELSE s.relation_alias END;
  SELECT format('SELECT %s FROM %s AS %I ORDER BY %s DESC LIMIT %s',
                string_agg(format('CAST((%s) AS %s)', e, format_type(a.atttypid, a.atttypmod)), ', ' ORDER BY o),
                src, alias,
                (SELECT string_agg(quote_ident(k), ' DESC, ') FROM unnest(src_key) k), check_rows)
    INTO src_sql
    FROM unnest(cols, exprs) WITH ORDINALITY AS m(c, e, o)
    JOIN pg_attribute a ON a.attrelid = dst AND a.attname = m.c;
  SELECT format('SELECT %s FROM %s ORDER BY %s DESC LIMIT %s',
                (SELECT string_agg(quote_ident(c), ', ') FROM unnest(cols) c), dst,
                (SELECT string_agg(quote_ident(k), ' DESC, ') FROM unnest(dst_key) k), check_rows)
    INTO dst_sql;
  EXECUTE format('SELECT (SELECT count(*) FROM ((%s) EXCEPT ALL (%s)) a) + (SELECT count(*) FROM ((%s) EXCEPT ALL (%s)) b)',
                 src_sql, dst_sql, dst_sql, src_sql) INTO diff;
  IF diff > 0 THEN
    RAISE EXCEPTION 'cut-over check of sync "%" failed: % of the last % rows of % and % differ', s.name, diff,
                    check_rows, src, dst
      USING ERRCODE = 'object_not_in_prerequisite_state',
            DETAIL = 'Compared: ' || src_sql || ' against ' || dst_sql,
            HINT = 'Find the differences with shift.compare; check => ''count'' or ''none'' skips this comparison.';
  END IF;
END
$$;

-- Before rel moves to schema nsp: its indexes and sequences move with it, so those whose
-- names nsp already has (orders_pkey of the old table) get free ones.  Returns how many.
CREATE FUNCTION @extschema@._free_names(rel pg_catalog.regclass, nsp pg_catalog.name)
RETURNS pg_catalog.int4
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  o record;
  candidate pg_catalog.name;
  n pg_catalog.int4 := 0;
  k pg_catalog.int4;
BEGIN
  FOR o IN SELECT c.oid::pg_catalog.regclass AS obj, c.relname, c.relkind
             FROM pg_class c
            WHERE (c.oid IN (SELECT i.indexrelid FROM pg_index i WHERE i.indrelid = rel)
                   OR c.oid IN (SELECT d.objid FROM pg_depend d
                                 WHERE d.classid = 'pg_class'::pg_catalog.regclass AND d.refobjid = rel
                                   AND d.refclassid = 'pg_class'::pg_catalog.regclass AND d.deptype IN ('a', 'i')))
              AND c.relkind IN ('i', 'I', 'S')
              AND EXISTS (SELECT 1 FROM pg_class x JOIN pg_namespace xn ON xn.oid = x.relnamespace
                           WHERE xn.nspname = nsp AND x.relname = c.relname)
  LOOP
    k := 1;
    LOOP
      candidate := left(o.relname, 55) || '_' || k;
      EXIT WHEN NOT EXISTS (SELECT 1 FROM pg_class x JOIN pg_namespace xn ON xn.oid = x.relnamespace
                             WHERE x.relname = candidate
                               AND xn.nspname IN (nsp, (SELECT cn.nspname FROM pg_class c2
                                                          JOIN pg_namespace cn ON cn.oid = c2.relnamespace
                                                         WHERE c2.oid = rel)));
      k := k + 1;
    END LOOP;
    EXECUTE format('ALTER %s %s RENAME TO %I', CASE WHEN o.relkind = 'S' THEN 'SEQUENCE' ELSE 'INDEX' END,
                   o.obj, candidate);
    n := n + 1;
  END LOOP;
  RETURN n;
END
$$;

/*
 * The swap itself, under the locks: make "to" what "from" was.  Views on
 * "from" are redefined on "to", foreign keys into "from" re-pointed at "to"
 * (NOT VALID: validate them after), sequences brought past both tables'
 * values and given to "to", "from"'s grants and owner copied, names
 * swapped, and the sync's triggers turned around.  Returns what it did.
 */
CREATE FUNCTION @extschema@._cutover_swap(s @extschema@.sync, reverse pg_catalog.bool,
                                          archive pg_catalog.text,
                                          OUT views pg_catalog.text[], OUT foreign_keys pg_catalog.text[],
                                          OUT to_validate pg_catalog.text[], OUT sequences pg_catalog.text[])
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  from_rel pg_catalog.regclass := CASE WHEN reverse THEN s.target ELSE s.relation END;
  to_rel pg_catalog.regclass := CASE WHEN reverse THEN s.relation ELSE s.target END;
  from_nsp pg_catalog.name;
  from_name pg_catalog.name;
  to_nsp pg_catalog.name;
  to_name pg_catalog.name;
  from_owner pg_catalog.name;
  to_owner pg_catalog.name;
  v record;
  fk record;
  g record;
  sq record;
  view_names pg_catalog.regclass[] := '{}';
  view_defs pg_catalog.text[] := '{}';
  view_opts pg_catalog.text[] := '{}';
  view_texts pg_catalog.text[] := '{}';
  view_owners pg_catalog.name[] := '{}';
  view_acls pg_catalog.text[] := '{}';
  view_comments pg_catalog.text[] := '{}';
  fk_children pg_catalog.regclass[] := '{}';
  fk_names pg_catalog.name[] := '{}';
  fk_defs pg_catalog.text[] := '{}';
  target_id pg_catalog.text[] := CASE WHEN s.target_name IS NOT NULL THEN parse_ident(s.target_name) END;
  repointed pg_catalog.text[] := '{}';
  left_behind pg_catalog.text;
  new_val pg_catalog.int8;
  col_max pg_catalog.int8;
  owned_seqs pg_catalog.regclass[] := '{}';
  owned_cols pg_catalog.name[] := '{}';
BEGIN
  views := '{}';
  foreign_keys := '{}';
  to_validate := '{}';
  sequences := '{}';
  SELECT n.nspname, c.relname, pg_get_userbyid(c.relowner) INTO from_nsp, from_name, from_owner
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = from_rel;
  SELECT n.nspname, c.relname, pg_get_userbyid(c.relowner) INTO to_nsp, to_name, to_owner
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_rel;

  -- what depends on "from", captured before the names change
  FOR v IN SELECT DISTINCT r.ev_class::pg_catalog.regclass AS vname, pg_get_viewdef(r.ev_class) AS def,
                  c.reloptions, pg_get_userbyid(c.relowner) AS owner, c.relacl::pg_catalog.text AS acl,
                  obj_description(r.ev_class, 'pg_class') AS comment
             FROM pg_depend d
             JOIN pg_rewrite r ON r.oid = d.objid
             JOIN pg_class c ON c.oid = r.ev_class
            WHERE d.classid = 'pg_rewrite'::pg_catalog.regclass AND d.refclassid = 'pg_class'::pg_catalog.regclass
              AND d.refobjid = from_rel AND c.relkind = 'v' AND r.ev_class <> from_rel
  LOOP
    view_names := view_names || v.vname;
    view_defs := view_defs || v.def;
    view_opts := view_opts || CASE WHEN v.reloptions IS NOT NULL
                                   THEN ' WITH (' || array_to_string(v.reloptions, ', ') || ')' ELSE '' END;
    view_texts := view_texts || v.vname::pg_catalog.text;
    view_owners := view_owners || v.owner;
    view_acls := view_acls || v.acl;
    view_comments := view_comments || v.comment;
  END LOOP;
  FOR fk IN SELECT con.conname, con.conrelid::pg_catalog.regclass AS child, pg_get_constraintdef(con.oid) AS def
              FROM pg_constraint con
             WHERE con.contype = 'f' AND con.confrelid = from_rel AND con.conparentid = 0
               AND con.conrelid NOT IN (from_rel, to_rel)
  LOOP
    fk_children := fk_children || fk.child;
    fk_names := fk_names || fk.conname;
    fk_defs := fk_defs || fk.def;
  END LOOP;

  -- "from"'s grants and owner (the owner first: a sequence can only be OWNED BY a
  -- table of its own owner, and the one "from" owned is given to "to" below)
  PERFORM @extschema@.copy_grants(from_rel, to_rel);
  IF to_owner <> from_owner THEN
    EXECUTE format('ALTER TABLE %s OWNER TO %I', to_rel, from_owner);
  END IF;

  -- sequences of "to": past every value either table holds or handed out
  FOR sq IN
    SELECT a.attname, a.attnum, format_type(a.atttypid, a.atttypmod) AS coltype, a.atttypid,
           dep.refobjid::pg_catalog.regclass AS seq
      FROM pg_attribute a
      JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
      JOIN pg_depend dep ON dep.classid = 'pg_attrdef'::pg_catalog.regclass AND dep.objid = ad.oid
                        AND dep.refclassid = 'pg_class'::pg_catalog.regclass
      JOIN pg_class sc ON sc.oid = dep.refobjid AND sc.relkind = 'S'
     WHERE a.attrelid = to_rel AND a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT a.attname, a.attnum, format_type(a.atttypid, a.atttypmod), a.atttypid,
           dep.objid::pg_catalog.regclass
      FROM pg_attribute a
      JOIN pg_depend dep ON dep.refclassid = 'pg_class'::pg_catalog.regclass AND dep.refobjid = a.attrelid
                        AND dep.refobjsubid = a.attnum AND dep.classid = 'pg_class'::pg_catalog.regclass
                        AND dep.deptype = 'i'
     WHERE a.attrelid = to_rel AND a.attidentity <> ''
  LOOP
    SELECT greatest(coalesce(ps.last_value, ps.start_value - 1), ps.start_value - 1) INTO new_val
      FROM pg_sequences ps
     WHERE ps.schemaname = (SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                             WHERE c.oid = sq.seq)
       AND ps.sequencename = (SELECT c.relname FROM pg_class c WHERE c.oid = sq.seq);
    IF sq.atttypid IN ('int2'::pg_catalog.regtype, 'int4'::pg_catalog.regtype, 'int8'::pg_catalog.regtype) THEN
      EXECUTE format('SELECT max(%I)::int8 FROM %s', sq.attname, to_rel) INTO col_max;
      new_val := greatest(new_val, col_max);
      -- and past what the same column of "from" handed out
      SELECT greatest(new_val, max(coalesce(ps.last_value, 0))) INTO new_val
        FROM pg_attribute fa
        JOIN pg_attrdef fad ON fad.adrelid = fa.attrelid AND fad.adnum = fa.attnum
        JOIN pg_depend fd ON fd.classid = 'pg_attrdef'::pg_catalog.regclass AND fd.objid = fad.oid
                         AND fd.refclassid = 'pg_class'::pg_catalog.regclass
        JOIN pg_class fsc ON fsc.oid = fd.refobjid AND fsc.relkind = 'S'
        JOIN pg_namespace fsn ON fsn.oid = fsc.relnamespace
        JOIN pg_sequences ps ON ps.schemaname = fsn.nspname AND ps.sequencename = fsc.relname
       WHERE fa.attrelid = from_rel AND fa.attname = sq.attname;
    END IF;
    -- a sequence declared narrower than its new column (serial int -> bigint)
    IF EXISTS (SELECT 1 FROM pg_sequence ps WHERE ps.seqrelid = sq.seq
                  AND ps.seqtypid IN ('int2'::pg_catalog.regtype, 'int4'::pg_catalog.regtype)
                  AND sq.atttypid = 'int8'::pg_catalog.regtype) THEN
      EXECUTE format('ALTER SEQUENCE %s AS bigint', sq.seq);
    END IF;
    IF new_val IS NOT NULL AND new_val >= (SELECT ps.seqmin FROM pg_sequence ps WHERE ps.seqrelid = sq.seq) THEN
      PERFORM setval(sq.seq, new_val, true);
    END IF;
    -- owned by a column of "from": it would go when the archive is dropped.  Given to "to"
    -- below, once "to" is in "from"'s schema (OWNED BY wants the table in the sequence's).
    IF EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::pg_catalog.regclass AND d.objid = sq.seq
                  AND d.refobjid = from_rel AND d.deptype = 'a') THEN
      owned_seqs := owned_seqs || sq.seq;
      owned_cols := owned_cols || sq.attname;
    END IF;
    sequences := sequences || format('%s (%s.%s, next %s)', sq.seq, from_name, sq.attname, coalesce(new_val + 1, 1));
    -- the reverse sync writes these values into the old table's narrower column
    IF NOT reverse THEN
      SELECT CASE fa.atttypid WHEN 'int2'::pg_catalog.regtype THEN 32767
                              WHEN 'int4'::pg_catalog.regtype THEN 2147483647 END - coalesce(new_val, 0)
        INTO col_max
        FROM pg_attribute fa WHERE fa.attrelid = from_rel AND fa.attname = sq.attname AND NOT fa.attisdropped;
      IF col_max IS NOT NULL AND col_max < 214748364 THEN   -- within a tenth of integer's range
        RAISE WARNING '% values are left before %.% outgrows the old table''s % column', col_max, from_name,
                      sq.attname, (SELECT format_type(fa.atttypid, NULL) FROM pg_attribute fa
                                    WHERE fa.attrelid = from_rel AND fa.attname = sq.attname)
          USING DETAIL = 'The reverse sync writes every new row into the archive; past that value those writes, and so the application''s, fail.',
                HINT = 'Contract (drop the reverse sync) before then.';
      END IF;
    END IF;
  END LOOP;

  -- the names: "from" steps aside, "to" takes its place
  IF reverse THEN
    EXECUTE format('ALTER TABLE %s RENAME TO %I', from_rel, left(target_id[2], 50) || '_shift_swap');
    EXECUTE format('ALTER TABLE %s RENAME TO %I', to_rel, from_name);
    IF to_nsp <> from_nsp THEN
      PERFORM @extschema@._free_names(to_rel, from_nsp);
      EXECUTE format('ALTER TABLE %s SET SCHEMA %I', to_rel, from_nsp);
    END IF;
    -- "to" is in the sequences' schema now, and "from" has not taken them along yet
    FOR i IN 1 .. coalesce(array_length(owned_seqs, 1), 0) LOOP
      EXECUTE format('ALTER SEQUENCE %s OWNED BY %s.%I', owned_seqs[i], to_rel, owned_cols[i]);
    END LOOP;
    IF target_id[1] <> from_nsp THEN
      PERFORM @extschema@._free_names(from_rel, target_id[1]);
      EXECUTE format('ALTER TABLE %s SET SCHEMA %I', from_rel, target_id[1]);
    END IF;
    EXECUTE format('ALTER TABLE %s RENAME TO %I', from_rel, target_id[2]);
  ELSE
    EXECUTE format('ALTER TABLE %s RENAME TO %I', from_rel, archive);
    IF to_nsp <> from_nsp THEN
      PERFORM @extschema@._free_names(to_rel, from_nsp);
      EXECUTE format('ALTER TABLE %s SET SCHEMA %I', to_rel, from_nsp);
    END IF;
    FOR i IN 1 .. coalesce(array_length(owned_seqs, 1), 0) LOOP
      EXECUTE format('ALTER SEQUENCE %s OWNED BY %s.%I', owned_seqs[i], to_rel, owned_cols[i]);
    END LOOP;
    IF to_name <> from_name THEN   -- v2.orders -> orders: renaming to its own name fails
      EXECUTE format('ALTER TABLE %s RENAME TO %I', to_rel, from_name);
    END IF;
  END IF;
  -- views: their text names the table, which is now "to"
  FOR i IN 1 .. coalesce(array_length(view_names, 1), 0) LOOP
    BEGIN
      EXECUTE format('CREATE OR REPLACE VIEW %s%s AS %s', view_names[i], view_opts[i],
                     rtrim(view_defs[i], '; '));
    EXCEPTION WHEN invalid_table_definition OR feature_not_supported OR datatype_mismatch THEN
      -- a column changes type: a view nothing depends on is dropped and made again, as it was
      IF EXISTS (SELECT 1 FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
                  WHERE d.classid = 'pg_rewrite'::pg_catalog.regclass AND d.refobjid = view_names[i]
                    AND r.ev_class <> view_names[i]) THEN
        RAISE EXCEPTION 'view % cannot follow % to its new table: %', view_names[i], from_name, SQLERRM
          USING ERRCODE = 'object_not_in_prerequisite_state',
                DETAIL = 'Other views depend on it, so it cannot be dropped and made again here.',
                HINT = 'Drop and recreate these views in the cut-over phase, then cut over.';
      END IF;
      EXECUTE format('DROP VIEW %s', view_texts[i]);
      EXECUTE format('CREATE VIEW %s%s AS %s', view_texts[i], view_opts[i],
                     rtrim(view_defs[i], '; '));
      EXECUTE format('ALTER VIEW %s OWNER TO %I', view_texts[i], view_owners[i]);
      FOR g IN SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END AS grantee,
                      a.privilege_type, a.is_grantable
                 FROM aclexplode(nullif(view_acls[i], '{}')::pg_catalog.aclitem[]) a   -- NULL, empty: none
                WHERE pg_get_userbyid(a.grantee) IS DISTINCT FROM view_owners[i]
      LOOP
        EXECUTE format('GRANT %s ON %s TO %s%s', g.privilege_type, view_texts[i], g.grantee,
                       CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
      END LOOP;
      IF view_comments[i] IS NOT NULL THEN
        EXECUTE format('COMMENT ON VIEW %s IS %L', view_texts[i], view_comments[i]);
      END IF;
    END;
    views := views || view_texts[i];
  END LOOP;
  -- foreign keys into the table: re-pointed, NOT VALID (validation takes no strong lock, later)
  FOR i IN 1 .. coalesce(array_length(fk_names, 1), 0) LOOP
    EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I, ADD CONSTRAINT %I %s%s', fk_children[i], fk_names[i],
                   fk_names[i], fk_defs[i], CASE WHEN fk_defs[i] LIKE '% NOT VALID' THEN '' ELSE ' NOT VALID' END);
    foreign_keys := foreign_keys || format('%s.%I', fk_children[i], fk_names[i]);
    -- valid before pg_shift touched it (now, or at the first cut-over): validate it after
    IF fk_defs[i] NOT LIKE '% NOT VALID'
       OR format('%s.%I', fk_children[i], fk_names[i]) = ANY (coalesce(s.repointed_fks, '{}')) THEN
      to_validate := to_validate || format('ALTER TABLE %s VALIDATE CONSTRAINT %I', fk_children[i], fk_names[i]);
      repointed := repointed || format('%s.%I', fk_children[i], fk_names[i]);
    END IF;
  END LOOP;

  -- what stays with the old table: say so
  SELECT string_agg(format('trigger %I', t.tgname), ', ') INTO left_behind
    FROM pg_trigger t
   WHERE t.tgrelid = from_rel AND NOT t.tgisinternal
     AND t.tgfoid <> '@extschema@._sync_trigger'::pg_catalog.regproc
     AND NOT EXISTS (SELECT 1 FROM pg_trigger t2 WHERE t2.tgrelid = to_rel AND t2.tgname = t.tgname);
  SELECT concat_ws(', ', left_behind, string_agg(DISTINCT format('materialized view %s', r.ev_class::pg_catalog.regclass), ', '))
    INTO left_behind
    FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class c ON c.oid = r.ev_class
   WHERE d.classid = 'pg_rewrite'::pg_catalog.regclass AND d.refobjid = from_rel AND c.relkind = 'm';
  SELECT concat_ws(', ', nullif(left_behind, ''),
                   string_agg(DISTINCT format('column privileges on %I', a.attname), ', '))
    INTO left_behind
    FROM pg_attribute a WHERE a.attrelid = from_rel AND a.attacl IS NOT NULL AND NOT a.attisdropped;
  IF nullif(left_behind, '') IS NOT NULL THEN
    RAISE WARNING 'these stay with % and do not follow it to %: %', from_name, to_name, left_behind
      USING HINT = 'Recreate them on the new table before or right after the cut-over.';
  END IF;

  -- the sync turns around
  PERFORM @extschema@._sync_uninstall(s.name);
  IF reverse THEN
    UPDATE @extschema@.sync x SET direction = 'forward', cutover_at = NULL, archive_name = NULL
     WHERE x.name = s.name;
  ELSE
    UPDATE @extschema@.sync x
       SET direction = 'reverse', cutover_at = now(), archive_name = quote_ident(from_nsp) || '.' || quote_ident(archive),
           relation_name = quote_ident(from_nsp) || '.' || quote_ident(from_name),
           target_name = quote_ident(to_nsp) || '.' || quote_ident(to_name),
           repointed_fks = repointed
     WHERE x.name = s.name;
  END IF;
  UPDATE @extschema@.sync x SET pending_validate = to_validate WHERE x.name = s.name;
  PERFORM @extschema@._sync_install(s.name);
  -- the turned-around triggers must compile against the renamed tables, now
  PERFORM @extschema@._sync_check(s.name);
END
$$;

-- Shared by cutover and cutover_revert: the locks, the retries, the check, the swap.
CREATE FUNCTION @extschema@._cutover(p_sync pg_catalog.text, reverse pg_catalog.bool, archive pg_catalog.text,
  check_mode pg_catalog.text, check_rows pg_catalog.int4, lock_timeout pg_catalog.text,
  retries pg_catalog.int4, backoff pg_catalog.float8, max_backoff pg_catalog.float8,
  max_xact_age pg_catalog.interval)
RETURNS TABLE (attempts pg_catalog.int4, lock_wait_ms pg_catalog.float8, locked_ms pg_catalog.float8,
               live pg_catalog.text, archived pg_catalog.text, views pg_catalog.text[],
               foreign_keys pg_catalog.text[], to_validate pg_catalog.text[], sequences pg_catalog.text[])
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  s @extschema@.sync;
  first_rel pg_catalog.regclass;
  second_rel pg_catalog.regclass;
  old_timeout pg_catalog.text := current_setting('lock_timeout');
  blockers pg_catalog.text;
  t0 pg_catalog.timestamptz;
  t1 pg_catalog.timestamptz;
  r record;
  attempt pg_catalog.int4 := 0;
  what pg_catalog.text := CASE WHEN reverse THEN 'revert the cut-over of' ELSE 'cut over' END;
BEGIN
  SELECT * INTO s FROM @extschema@.sync x WHERE x.name = p_sync FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'sync "%" does not exist', p_sync
      USING ERRCODE = 'undefined_object', HINT = 'SELECT name FROM shift.sync_status lists the syncs.';
  END IF;
  IF s.kind <> 'table' THEN
    RAISE EXCEPTION 'sync "%" is column-level: there is no table to cut over to', p_sync
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'A column-level sync serves both columns at once; drop it once the application has moved.';
  END IF;
  IF NOT reverse AND s.direction <> 'forward' THEN
    RAISE EXCEPTION 'sync "%" is already cut over (at %)', p_sync, s.cutover_at
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'shift.cutover_revert goes back; shift.sync_drop ends the reverse sync.';
  END IF;
  IF reverse AND s.direction <> 'reverse' THEN
    RAISE EXCEPTION 'sync "%" has not been cut over', p_sync
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  IF NOT reverse AND s.reverse_columns IS NULL THEN
    RAISE EXCEPTION 'sync "%" has no reverse mapping: after this cut-over nothing would keep % current', p_sync, s.relation
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Create the sync with a reverse mapping (the default) so that a rollback after the cut-over loses nothing.';
  END IF;
  IF check_rows < 1 OR retries < 0 OR backoff < 0 OR max_backoff < backoff THEN
    RAISE EXCEPTION 'check_rows must be positive, retries and backoff not negative, max_backoff at least backoff'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF NOT reverse THEN
    archive := coalesce(archive, (SELECT c.relname || '_archive' FROM pg_class c WHERE c.oid = s.relation));
    IF EXISTS (SELECT 1 FROM pg_class c WHERE c.relname = archive
                  AND c.relnamespace = (SELECT c2.relnamespace FROM pg_class c2 WHERE c2.oid = s.relation)) THEN
      RAISE EXCEPTION 'cannot rename % to "%": that name is taken', s.relation, archive
        USING ERRCODE = 'duplicate_table', HINT = 'Pass archive => another name.';
    END IF;
  END IF;
  -- what the swap could not do, said before taking any lock
  IF EXISTS (SELECT 1 FROM pg_class c WHERE c.oid IN (s.relation, s.target)
                AND (c.relrowsecurity OR c.relforcerowsecurity)) THEN
    RAISE EXCEPTION 'cannot % sync "%": row-level security is enabled on % or %', what, p_sync, s.relation, s.target
      USING ERRCODE = 'feature_not_supported',
            DETAIL = 'Policies do not follow the table to its new name.';
  END IF;
  blockers := (SELECT string_agg(format('%s.%I', con.conrelid::pg_catalog.regclass, con.conname), ', ')
                 FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
                WHERE con.contype = 'f' AND con.conparentid = 0 AND c.relkind = 'p'
                  AND con.confrelid = CASE WHEN reverse THEN s.target ELSE s.relation END);
  IF blockers IS NOT NULL THEN
    RAISE EXCEPTION 'cannot % sync "%": partitioned tables reference it (%)', what, p_sync, blockers
      USING ERRCODE = 'feature_not_supported',
            DETAIL = 'PostgreSQL 15 cannot add a NOT VALID foreign key to a partitioned table, and a validated one would scan it under the cut-over''s locks.',
            HINT = 'Drop those foreign keys before the cut-over and add them to the new table afterwards (db:add_foreign_key).';
  END IF;
  -- a long transaction holding either table would make every attempt time out
  blockers := @extschema@._lock_holders(s.relation, s.target, max_xact_age);
  IF blockers IS NOT NULL THEN
    RAISE EXCEPTION 'cannot % sync "%": long-running transactions hold % or %', what, p_sync, s.relation, s.target
      USING ERRCODE = 'object_in_use',
            DETAIL = 'Holding a lock for longer than ' || max_xact_age || ': ' || blockers || '.',
            HINT = 'Wait for them to finish, or end them with SELECT pg_terminate_backend(pid).';
  END IF;
  -- writers take the table they write first, then (through the sync) the
  -- other one: locking in that order cannot deadlock with them
  IF reverse THEN
    first_rel := s.target; second_rel := s.relation;
  ELSE
    first_rel := s.relation; second_rel := s.target;
  END IF;

  LOOP
    attempt := attempt + 1;
    BEGIN
      PERFORM set_config('lock_timeout', _cutover.lock_timeout, true);
      t0 := clock_timestamp();
      EXECUTE format('LOCK TABLE %s, %s IN ACCESS EXCLUSIVE MODE', first_rel, second_rel);
      t1 := clock_timestamp();
      PERFORM @extschema@._cutover_check(s, reverse, check_mode, check_rows);
      r := @extschema@._cutover_swap(s, reverse, archive);
      PERFORM set_config('lock_timeout', old_timeout, true);
      attempts := attempt;
      lock_wait_ms := 1000 * extract(epoch FROM t1 - t0);
      locked_ms := 1000 * extract(epoch FROM clock_timestamp() - t1);
      views := r.views;
      foreign_keys := r.foreign_keys;
      to_validate := r.to_validate;
      sequences := r.sequences;
      SELECT x.relation::pg_catalog.text, x.target::pg_catalog.text INTO archived, live
        FROM @extschema@.sync x WHERE x.name = p_sync;
      IF reverse THEN
        SELECT x.target::pg_catalog.text, x.relation::pg_catalog.text INTO archived, live
          FROM @extschema@.sync x WHERE x.name = p_sync;
      END IF;
      RETURN NEXT;
      RETURN;
    EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
      blockers := @extschema@._lock_holders(s.relation, s.target);
      IF attempt > retries THEN
        RAISE EXCEPTION 'could not % sync "%": % and % stayed locked through % attempts (lock_timeout %)',
                        what, p_sync, s.relation, s.target, attempt, _cutover.lock_timeout
          USING ERRCODE = 'lock_not_available',
                DETAIL = 'Last seen holding them: ' || coalesce(blockers, 'nobody (the locks were released meanwhile)') || '.',
                HINT = 'Run it again at a quieter time, raise retries, or end the blocking sessions.';
      END IF;
      RAISE NOTICE 'cut-over of sync "%": attempt % timed out waiting for locks (held by %); retrying',
                   p_sync, attempt, coalesce(blockers, 'nobody now');
      PERFORM pg_sleep(least(max_backoff, backoff * 2 ^ (attempt - 1)) * (0.5 + random() / 2));
    END;
  END LOOP;
END
$$;

/*
 * shift.cutover(sync, archive => '<relation>_archive', check => 'recent',
 *   check_rows => 1000, lock_timeout => '1s', retries => 10, backoff => 0.2,
 *   max_backoff => 5, max_xact_age => '1 minute')
 *
 * In one short transaction with a small lock_timeout, retried with backoff:
 * locks both tables, checks they agree, renames the old table to archive
 * and the new one to the old name, carries over views, foreign keys,
 * sequences, grants and owner, and turns the sync around so that the
 * archive stays current.  Refuses at once if a long transaction holds
 * either table, naming it.
 */
CREATE FUNCTION @extschema@.cutover(sync pg_catalog.text, archive pg_catalog.text DEFAULT NULL,
  "check" pg_catalog.text DEFAULT 'recent', check_rows pg_catalog.int4 DEFAULT 1000,
  lock_timeout pg_catalog.text DEFAULT '1s', retries pg_catalog.int4 DEFAULT 10,
  backoff pg_catalog.float8 DEFAULT 0.2, max_backoff pg_catalog.float8 DEFAULT 5,
  max_xact_age pg_catalog.interval DEFAULT '1 minute')
RETURNS TABLE (attempts pg_catalog.int4, lock_wait_ms pg_catalog.float8, locked_ms pg_catalog.float8,
               live pg_catalog.text, archived pg_catalog.text, views pg_catalog.text[],
               foreign_keys pg_catalog.text[], to_validate pg_catalog.text[], sequences pg_catalog.text[])
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT * FROM @extschema@._cutover(sync, false, archive, "check", check_rows, lock_timeout, retries,
                                     backoff, max_backoff, max_xact_age)
$$;

/*
 * shift.cutover_revert(sync, ...): the way back after a cut-over, in the same
 * kind of transaction: the archive (kept current by the reverse sync) takes
 * its name back, the new table its old name, and the sync runs forward again.
 */
CREATE FUNCTION @extschema@.cutover_revert(sync pg_catalog.text,
  "check" pg_catalog.text DEFAULT 'recent', check_rows pg_catalog.int4 DEFAULT 1000,
  lock_timeout pg_catalog.text DEFAULT '1s', retries pg_catalog.int4 DEFAULT 10,
  backoff pg_catalog.float8 DEFAULT 0.2, max_backoff pg_catalog.float8 DEFAULT 5,
  max_xact_age pg_catalog.interval DEFAULT '1 minute')
RETURNS TABLE (attempts pg_catalog.int4, lock_wait_ms pg_catalog.float8, locked_ms pg_catalog.float8,
               live pg_catalog.text, archived pg_catalog.text, views pg_catalog.text[],
               foreign_keys pg_catalog.text[], to_validate pg_catalog.text[], sequences pg_catalog.text[])
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT * FROM @extschema@._cutover(sync, true, NULL, "check", check_rows, lock_timeout, retries,
                                     backoff, max_backoff, max_xact_age)
$$;

/*
 * shift.copy_grants(from_table, to_table): grants on to_table what every
 * role has been granted on from_table (table privileges, not column ones).
 * Before a table-level sync, the roles that write the old table need the
 * same on the new one: its trigger writes as them.
 */
CREATE FUNCTION @extschema@.copy_grants(from_table pg_catalog.regclass, to_table pg_catalog.regclass)
RETURNS pg_catalog.int4
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  g record;
  n pg_catalog.int4 := 0;
BEGIN
  FOR g IN SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END AS grantee,
                  a.privilege_type, a.is_grantable
             FROM pg_class c, aclexplode(nullif(c.relacl, '{}')) a   -- NULL, empty: none
            WHERE c.oid = from_table AND a.grantee <> c.relowner
  LOOP
    EXECUTE format('GRANT %s ON %s TO %s%s', g.privilege_type, to_table, g.grantee,
                   CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    n := n + 1;
  END LOOP;
  RETURN n;
END
$$;
-- ---------------------------------------------------------------------------
-- Migration lint (C in extension/lint.c): PostgreSQL's own parser reads the
-- SQL, and each statement's raw tree is checked for what blocks other
-- sessions (strong locks, rewrites, scans under a lock, missing
-- lock_timeout) or breaks running code (renames, drops).  Nothing is
-- executed; only the system catalogs are read, without locking any table.
-- PARALLEL UNSAFE: parse analysis runs in internal subtransactions.
-- ---------------------------------------------------------------------------

CREATE FUNCTION @extschema@.lint(
  sql          pg_catalog.text,
  lock_timeout pg_catalog.text DEFAULT NULL)
RETURNS TABLE (statement pg_catalog.int4, line pg_catalog.int4, severity pg_catalog.text,
               rule pg_catalog.text, lock pg_catalog.text, object pg_catalog.text,
               message pg_catalog.text, hint pg_catalog.text)
LANGUAGE c STABLE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'shift_lint';
COMMENT ON FUNCTION @extschema@.lint(pg_catalog.text, pg_catalog.text) IS
  'Risky statements of a migration script (one row per finding), read with the server''s parser; lock_timeout: what is in force at the start (NULL: the session''s)';

CREATE FUNCTION @extschema@.lint_script(
  parts              pg_catalog.text[],
  part_lock_timeouts pg_catalog.text[] DEFAULT NULL,
  phases             pg_catalog.int4[] DEFAULT NULL,
  lock_timeout       pg_catalog.text DEFAULT NULL)
RETURNS TABLE (part pg_catalog.int4, statement pg_catalog.int4, line pg_catalog.int4,
               severity pg_catalog.text, rule pg_catalog.text, lock pg_catalog.text,
               object pg_catalog.text, message pg_catalog.text, hint pg_catalog.text)
LANGUAGE c STABLE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'shift_lint_script';
COMMENT ON FUNCTION @extschema@.lint_script(pg_catalog.text[], pg_catalog.text[], pg_catalog.int4[], pg_catalog.text) IS
  'Lint of what a runner sends in one session: each part one simple query, with its own lock_timeout (db:ddl) and phase';
-- ---------------------------------------------------------------------------
-- Privileges, last so that they cover every object above: nothing for PUBLIC
-- but version(), missing_privileges() and the lint functions (which only
-- parse text and read the catalog), and reading shift.sync (a sync's
-- trigger reads its definition as whichever role writes the table);
-- shift_operator may run migrations, backfills, syncs and cut-overs.  Every function runs as its caller (no SECURITY DEFINER).
-- ---------------------------------------------------------------------------

REVOKE ALL ON ALL TABLES IN SCHEMA @extschema@ FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA @extschema@ FROM PUBLIC;
REVOKE EXECUTE ON ALL ROUTINES IN SCHEMA @extschema@ FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.version() TO PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.missing_privileges() TO PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.lint(pg_catalog.text, pg_catalog.text) TO PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.lint_script(pg_catalog.text[], pg_catalog.text[], pg_catalog.int4[], pg_catalog.text) TO PUBLIC;

GRANT SELECT, INSERT, UPDATE ON @extschema@.migration TO shift_operator;
GRANT SELECT, INSERT, UPDATE, DELETE ON @extschema@.phase TO shift_operator;
-- events: only what _event writes, so who, when and which session stay true
GRANT SELECT ON @extschema@.event TO shift_operator;
GRANT INSERT (migration, phase, kind, message, sqlstate, detail, host) ON @extschema@.event TO shift_operator;
GRANT SELECT, INSERT, UPDATE, DELETE ON @extschema@.backfill, @extschema@.backfill_batch TO shift_operator;
GRANT SELECT, INSERT, UPDATE, DELETE ON @extschema@.sync TO shift_operator;
GRANT SELECT ON @extschema@.sync TO PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@._sync_digest(@extschema@.sync) TO PUBLIC;
GRANT SELECT ON @extschema@.status, @extschema@.history, @extschema@.backfill_progress,
                @extschema@.sync_status TO shift_operator;
GRANT EXECUTE ON ALL ROUTINES IN SCHEMA @extschema@ TO shift_operator;
