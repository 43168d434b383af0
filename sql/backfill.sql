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
  key_index         pg_catalog.regclass,        -- NULL: a foreign table's key, its key_columns alone
  key_columns       pg_catalog.text[] NOT NULL,
  owner             pg_catalog.name NOT NULL,   -- made it; its SQL runs as this role
  search_path       pg_catalog.text NOT NULL,   -- recorded when it was made; its SQL runs under it
  checked           pg_catalog.jsonb,           -- what _backfill_check checked (backfill_definition)
  digest            pg_catalog.text,            -- sha256 of checked
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
  -- the pg_cron job that runs it (backfill_run's schedule =>), until it is removed
  schedule          pg_catalog.text,
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
  CHECK ((kind = 'copy') = (into_relation IS NOT NULL)),
  CHECK (key_index IS NOT NULL OR pg_catalog.cardinality(key_columns) > 0)
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
  -- the wall-clock time the batch took in its run: since the previous
  -- batch of the run committed (its rest, throttling and retries included),
  -- or since the run began; ms for a batch run alone (backfill_step)
  wall_ms           pg_catalog.float8,
  PRIMARY KEY (job, batch)
);
COMMENT ON TABLE @extschema@.backfill_batch IS
  'one row per committed batch of a backfill job (committed with it)';
-- backfill_progress reads a job's batches of the last minute
CREATE INDEX backfill_batch_job_at_idx ON @extschema@.backfill_batch (job, at);

SELECT pg_catalog.pg_extension_config_dump('@extschema@.backfill', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.backfill_batch', '');

-- Settings in range, or a clear error (instead of a CHECK violation).
-- Each role sees its own jobs; nobody but the owner of pg_shift writes them.
ALTER TABLE @extschema@.backfill ENABLE ROW LEVEL SECURITY;
CREATE POLICY visible_to_owner ON @extschema@.backfill FOR SELECT
  USING (shift_internal.may_act(owner));
ALTER TABLE @extschema@.backfill_batch ENABLE ROW LEVEL SECURITY;
CREATE POLICY visible_to_owner ON @extschema@.backfill_batch FOR SELECT
  USING (EXISTS (SELECT 1 FROM @extschema@.backfill b
                  WHERE b.name OPERATOR(pg_catalog.=) backfill_batch.job));

-- Everything of a job that is executed, or decides what is: what its digest covers.
CREATE FUNCTION shift_internal.backfill_definition(b @extschema@.backfill)
RETURNS pg_catalog.jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT jsonb_build_object(
    'name', b.name, 'relation', b.relation::pg_catalog.oid, 'kind', b.kind,
    'set', b.set_clause, 'where', b.where_clause, 'into', b.into_relation::pg_catalog.oid,
    'columns', b.into_columns, 'select', b.select_list, 'on_conflict', b.on_conflict,
    'key', b.key_index::pg_catalog.oid, 'key_columns', b.key_columns, 'owner', b.owner,
    'search_path', b.search_path, 'throttle_query', b.throttle_query)
$$;

-- Records what was checked, once _backfill_check has passed.
CREATE FUNCTION shift_internal._backfill_seal(p_name pg_catalog.text)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
  UPDATE @extschema@.backfill b
     SET checked = shift_internal.backfill_definition(b),
         digest = shift_internal.definition_digest(shift_internal.backfill_definition(b))
   WHERE b.name = p_name
$$;

/*
 * Makes a job of pg_shift 0.1.0 (never sealed: the upgrade seals none) the
 * caller's, from the definition the caller gave shift.backfill_create,
 * which has compared it with the stored one: the fields that run and the
 * settings (batch sizes, pace, lock timeout, retries, lag) are set from that
 * request, then checked as the caller and sealed.  The progress (state,
 * bound, checkpoint, counters) is kept: started again, a job whose SQL is
 * not idempotent would apply it twice to the rows it did.  A member of
 * shift_operator could also rewrite that progress under 0.1.0 (the update
 * says so, for every job it keeps; doc/operating.md).
 */
CREATE FUNCTION shift_internal._backfill_adopt(p_name pg_catalog.text, p_owner pg_catalog.oid,
                                               p_path pg_catalog.text, p_columns pg_catalog.text[],
                                               p_select pg_catalog.text, p_key pg_catalog.regclass,
                                               p_throttle pg_catalog.text, p_batch_min pg_catalog.int4,
                                               p_batch_max pg_catalog.int4, p_target_ms pg_catalog.int4,
                                               p_sleep_ratio pg_catalog.float8,
                                               p_lock_timeout_ms pg_catalog.int4,
                                               p_max_retries pg_catalog.int4, p_max_lag pg_catalog.interval)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  old_key pg_catalog.regclass;
BEGIN
  SELECT b.key_index INTO old_key FROM @extschema@.backfill b WHERE b.name = p_name;
  UPDATE @extschema@.backfill b
     SET owner = pg_catalog.pg_get_userbyid(p_owner), search_path = p_path,
         into_columns = CASE WHEN b.kind = 'copy' THEN p_columns END,
         select_list = CASE WHEN b.kind = 'copy' THEN p_select END,
         key_index = p_key, key_columns = '{}', throttle_query = p_throttle,
         batch_min = p_batch_min, batch_max = p_batch_max, target_ms = p_target_ms,
         sleep_ratio = p_sleep_ratio, lock_timeout_ms = p_lock_timeout_ms,
         max_retries = p_max_retries, max_lag = p_max_lag
   WHERE b.name = p_name;
  PERFORM shift_internal._backfill_check(p_name);   -- resolves a table to its primary key
  IF old_key IS DISTINCT FROM (SELECT b.key_index FROM @extschema@.backfill b WHERE b.name = p_name) THEN
    -- its checkpoint is a position in that index: another one would skip rows
    RAISE EXCEPTION 'backfill job "%" already exists with a different definition', p_name
      USING ERRCODE = 'duplicate_object',
            DETAIL = format('It walks the index %s.', old_key),
            HINT = format('Drop it with shift.backfill_drop(%L) or choose another name.', p_name);
  END IF;
  PERFORM shift_internal._backfill_seal(p_name);
END
$$;

/*
 * The job as checked, or an error naming what changed since: its SQL runs
 * only if every field it executes is what _backfill_check saw.  Called by
 * backfill_run and backfill_step (C) before anything runs.
 */
CREATE FUNCTION shift_internal.backfill_verify(p_name pg_catalog.text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  b @extschema@.backfill;
BEGIN
  SELECT * INTO b FROM @extschema@.backfill x WHERE x.name = p_name;
  IF NOT FOUND THEN
    RETURN;   -- the caller reports a missing job in its own words
  END IF;
  IF b.checked IS NULL AND b.digest IS NULL THEN
    RAISE EXCEPTION 'backfill job "%" was made by pg_shift 0.1.0 and has not been checked since', p_name
      USING ERRCODE = 'object_not_in_prerequisite_state',
            DETAIL = '0.1.0 let members of shift_operator change a job''s SQL and owner; 0.2.0 runs only what it checked.',
            HINT = 'pgshift run resumes it from its checkpoint; from SQL, call shift.backfill_create with the same '
                   'definition and if_exists => ''reuse''.';
  END IF;
  PERFORM shift_internal.verify_checked(format('backfill job "%s"', p_name), b.checked, b.digest,
    shift_internal.backfill_definition(b),
    'A job runs only the SQL shift.backfill_create checked; these fields differ from it.',
    'Drop the job with shift.backfill_drop and create it again.');
END
$$;

CREATE FUNCTION shift_internal._backfill_check_settings(
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

-- key_columns => of a backfill job or a capture (what names it): one or
-- more column names, or a clear error.
CREATE FUNCTION shift_internal._check_key_columns(what pg_catalog.text, key_columns pg_catalog.text[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF key_columns IS NULL OR array_ndims(key_columns) IS DISTINCT FROM 1
     OR EXISTS (SELECT FROM pg_catalog.unnest(key_columns) c WHERE c IS NULL) THEN
    RAISE EXCEPTION 'key_columns of % must list one or more column names', what
      USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('It was %L.', key_columns);
  END IF;
END
$$;

-- The arguments every *_create shares: the name's form and if_exists.
CREATE FUNCTION shift_internal._check_create(what pg_catalog.text, name pg_catalog.text,
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
 * key => a unique index to walk instead of the primary key, or
 * key_columns => '{a,b}' its columns: on a table, a unique index on them;
 * on a foreign table (which has no index, and is only copied from) the
 * columns themselves, which must be unique and NOT NULL on the remote side.
 * Every SQL
 * fragment is checked with the server's parser and the statements are
 * prepared once here, so mistakes surface now, not in the first batch.
 * With if_exists => 'reuse', an identical existing job is kept (a different
 * one is an error); the default refuses any existing job.  migration and
 * phase tie the job to the phase that made it: running that phase's down
 * drops the job, so that a new attempt starts from the beginning.
 */
CREATE FUNCTION shift_internal.backfill_create(
  name pg_catalog.text, relation pg_catalog.regclass,
  set pg_catalog.text DEFAULT NULL, "where" pg_catalog.text DEFAULT NULL,
  "into" pg_catalog.regclass DEFAULT NULL, columns pg_catalog.text[] DEFAULT NULL,
  "select" pg_catalog.text DEFAULT NULL, on_conflict pg_catalog.text DEFAULT 'error',
  key pg_catalog.regclass DEFAULT NULL, key_columns pg_catalog.text[] DEFAULT NULL,
  batch_min pg_catalog.int4 DEFAULT 100, batch_max pg_catalog.int4 DEFAULT 50000,
  target_ms pg_catalog.int4 DEFAULT 200, sleep_ratio pg_catalog.float8 DEFAULT 0,
  lock_timeout_ms pg_catalog.int4 DEFAULT 1000, max_retries pg_catalog.int4 DEFAULT 20,
  max_lag pg_catalog.interval DEFAULT '10 seconds', throttle_query pg_catalog.text DEFAULT NULL,
  if_exists pg_catalog.text DEFAULT 'error',
  migration pg_catalog.text DEFAULT NULL, phase pg_catalog.text DEFAULT NULL,
  search_path pg_catalog.text DEFAULT pg_catalog.current_setting('search_path'))
RETURNS pg_catalog.text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  old @extschema@.backfill;
  kind pg_catalog.text;
  v_name CONSTANT pg_catalog.text := backfill_create.name;
  who CONSTANT pg_catalog.oid := shift_internal.caller();
  path CONSTANT pg_catalog.text := shift_internal.pin_search_path(backfill_create.search_path);
BEGIN
  PERFORM shift_internal._check_create('backfill job', v_name, 250, if_exists);
  IF (set IS NULL) = ("into" IS NULL) THEN
    RAISE EXCEPTION 'backfill job "%" needs exactly one of set => (update in place) and into => (copy)', v_name
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'set => ''col = expr'' updates rows in place; into => ''table'' copies them.';
  END IF;
  kind := CASE WHEN set IS NOT NULL THEN 'update' ELSE 'copy' END;
  PERFORM shift_internal._backfill_check_settings(batch_min, batch_max, target_ms, sleep_ratio,
                                               lock_timeout_ms, max_retries);
  -- PostgreSQL refuses the run anyway; say so now, before anything starts
  IF kind = 'update' AND NOT (has_table_privilege(who, relation, 'SELECT') AND has_table_privilege(who, relation, 'UPDATE')) THEN
    RAISE EXCEPTION 'role "%" may not backfill %: it needs SELECT and UPDATE on it', pg_get_userbyid(who), relation
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF kind = 'copy' AND NOT (has_table_privilege(who, relation, 'SELECT') AND has_table_privilege(who, "into", 'INSERT')) THEN
    RAISE EXCEPTION 'role "%" may not copy % into %: it needs SELECT on the one and INSERT on the other',
                    pg_get_userbyid(who), relation, "into"
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF key IS NOT NULL AND key_columns IS NOT NULL THEN
    RAISE EXCEPTION 'backfill job "%" names its key twice: give key => (an index) or key_columns => (its columns)', v_name
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF key_columns IS NOT NULL THEN
    PERFORM shift_internal._check_key_columns(format('backfill job "%s"', v_name), key_columns);
  END IF;
  IF kind = 'update' AND (columns IS NOT NULL OR "select" IS NOT NULL OR on_conflict <> 'error') THEN
    RAISE EXCEPTION 'columns, select and on_conflict apply only to a copy (into =>)'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;

  SELECT * INTO old FROM @extschema@.backfill b WHERE b.name = v_name FOR UPDATE;
  IF FOUND THEN
    -- a name another role took is its job: never reused, never shown
    PERFORM shift_internal.check_owner(format('backfill job "%s"', v_name), old.owner);
    IF if_exists = 'reuse' AND old.relation = backfill_create.relation AND old.kind = kind
       AND old.set_clause IS NOT DISTINCT FROM set
       AND old.where_clause IS NOT DISTINCT FROM "where"
       AND old.into_relation IS NOT DISTINCT FROM "into"
       AND (columns IS NULL OR old.into_columns IS NOT DISTINCT FROM columns)
       AND ("select" IS NULL OR old.select_list IS NOT DISTINCT FROM "select")
       AND old.on_conflict = on_conflict
       AND (key IS NULL OR old.key_index = key)
       AND (key_columns IS NULL OR old.key_columns = key_columns)
       AND old.migration IS NOT DISTINCT FROM backfill_create.migration
       AND old.phase IS NOT DISTINCT FROM backfill_create.phase
       AND (old.search_path = path OR (old.digest IS NULL AND old.checked IS NULL)) THEN
      IF old.digest IS NULL AND old.checked IS NULL THEN
        -- a job of 0.1.0, never sealed: the caller's request becomes its
        -- definition (the defaults resolved anew under the caller's
        -- search_path, nothing of the stored row that runs kept), checked
        -- and sealed as the caller; its progress stays
        PERFORM shift_internal._backfill_adopt(v_name, who, path, columns, "select",
                                               coalesce(key, relation), throttle_query, batch_min,
                                               batch_max, target_ms, sleep_ratio, lock_timeout_ms,
                                               max_retries, max_lag);
      END IF;
      PERFORM shift_internal.backfill_verify(v_name);
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
                                    max_retries, max_lag, throttle_query, migration, phase,
                                    owner, search_path)
  VALUES (v_name, relation, kind, set, "where", "into", columns, "select", on_conflict,
          CASE WHEN key_columns IS NULL THEN coalesce(key, relation) END,
          coalesce(key_columns, '{}'), batch_min, batch_max, target_ms, sleep_ratio,
          lock_timeout_ms, max_retries, max_lag, throttle_query,
          backfill_create.migration, backfill_create.phase, pg_get_userbyid(who), path);
  -- resolves the key, the default column mapping, checks and prepares
  -- everything, as the job's owner under its search_path; then records it
  PERFORM shift_internal._backfill_check(v_name);
  PERFORM shift_internal._backfill_seal(v_name);
  RETURN v_name;
END
$$;
SELECT shift_internal._owner_call('backfill_create');

-- The two keys of a job's run lock, (0x73686266 'shbf', hashtext(name)), as
-- the C code takes it: backfill_run for its session, backfill_step and
-- backfill_drop for their transaction.  pg_locks shows it with classid =
-- key1, objid = key2 and objsubid = 2 (shift.backfill_progress).
CREATE FUNCTION shift_internal.backfill_lock_key(name pg_catalog.text,
                                                 OUT key1 pg_catalog.int4, OUT key2 pg_catalog.int4)
AS 'MODULE_PATHNAME', 'shift_backfill_lock_key'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- Resolves and checks a job's key, columns and SQL (C).
CREATE FUNCTION shift_internal._backfill_check(name pg_catalog.text)
RETURNS void
AS 'MODULE_PATHNAME', 'shift_backfill_check'
LANGUAGE C STRICT;

/*
 * CALL shift.backfill_run(name, max_runtime => NULL, max_batches => NULL,
 *                         schedule => NULL)
 *
 * Runs batches until the job is done, paused or cancelled, or max_runtime
 * or max_batches is reached, committing after every batch.  Must be called
 * with CALL outside an explicit transaction (pg_cron does that).  schedule
 * names the pg_cron job that calls it: once the job is done or cancelled,
 * that schedule is removed (when pg_cron lives in this database), or the
 * run says how to remove it.
 */
CREATE PROCEDURE @extschema@.backfill_run(name pg_catalog.text,
                                          max_runtime pg_catalog.interval DEFAULT NULL,
                                          max_batches pg_catalog.int8 DEFAULT NULL,
                                          schedule pg_catalog.text DEFAULT NULL)
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

CREATE FUNCTION shift_internal._backfill_job(p_name pg_catalog.text)
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
  PERFORM shift_internal.check_owner(format('backfill job "%s"', p_name), j.owner);
  RETURN j;
END
$$;

-- ---------------------------------------------------------------------------
-- What an operator does to a job (pause, resume, cancel), as a table: the
-- states each move is allowed from, the state it moves to (to_state while
-- the job's walk has not started, i.e. it has no upper key yet,
-- to_started once it has), whether it ends the job (finished_at), and the
-- error for a job in any other state (format(refusal, name, state)).  The
-- run sees the new state before its next batch.  _backfill_move makes a
-- move; the C code's enum BackfillState names the same six states as
-- the table's CHECK.
-- ---------------------------------------------------------------------------
CREATE TABLE shift_internal.backfill_move (
  move          pg_catalog.text PRIMARY KEY,
  from_states   pg_catalog.text[] NOT NULL,
  to_state      pg_catalog.text NOT NULL,
  to_started    pg_catalog.text NOT NULL,
  finishes      pg_catalog.bool NOT NULL,
  refusal       pg_catalog.text NOT NULL
);
INSERT INTO shift_internal.backfill_move VALUES
  ('pause', '{pending,active,paused,failed}', 'paused', 'paused', false,
   'backfill job "%s" is %s and cannot be paused'),
  ('resume', '{paused,failed}', 'pending', 'active', false,
   'backfill job "%s" is %s, not paused'),
  ('cancel', '{pending,active,paused,cancelled,failed}', 'cancelled', 'cancelled', true,
   'backfill job "%s" is already %s');

-- Makes move p_move of job p_name (its owner's); returns the new state.
CREATE FUNCTION shift_internal._backfill_move(p_name pg_catalog.text, p_move pg_catalog.text)
RETURNS pg_catalog.text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  j @extschema@.backfill := shift_internal._backfill_job(p_name);
  mv shift_internal.backfill_move;
  s pg_catalog.text;
BEGIN
  SELECT * INTO STRICT mv FROM shift_internal.backfill_move x WHERE x.move = p_move;
  IF NOT j.state = ANY (mv.from_states) THEN
    RAISE EXCEPTION USING MESSAGE = format(mv.refusal, p_name, j.state),
                          ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  s := CASE WHEN j.upper_key IS NULL THEN mv.to_state ELSE mv.to_started END;
  UPDATE @extschema@.backfill b
     SET state = s, finished_at = CASE WHEN mv.finishes THEN now() ELSE b.finished_at END
   WHERE b.name = p_name;
  RETURN s;
END
$$;

-- shift.backfill_pause(name): the job stops before its next batch.
CREATE FUNCTION shift_internal.backfill_pause(name pg_catalog.text)
RETURNS pg_catalog.text
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT shift_internal._backfill_move(name, 'pause') $$;
SELECT shift_internal._owner_call('backfill_pause');

-- shift.backfill_resume(name): a paused (or failed) job may run again.
CREATE FUNCTION shift_internal.backfill_resume(name pg_catalog.text)
RETURNS pg_catalog.text
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT shift_internal._backfill_move(name, 'resume') $$;
SELECT shift_internal._owner_call('backfill_resume');

-- shift.backfill_cancel(name): the job stops before its next batch, for good.
CREATE FUNCTION shift_internal.backfill_cancel(name pg_catalog.text)
RETURNS pg_catalog.text
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT shift_internal._backfill_move(name, 'cancel') $$;
SELECT shift_internal._owner_call('backfill_cancel');

-- shift.backfill_set(name, ...): changes settings; the next batch uses them.
CREATE FUNCTION shift_internal.backfill_set(name pg_catalog.text,
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
  j @extschema@.backfill := shift_internal._backfill_job(name);
BEGIN
  -- a job of 0.1.0 is sealed only by giving its definition again: sealing it
  -- here would seal whatever its row holds
  PERFORM shift_internal.backfill_verify(name);
  PERFORM shift_internal._backfill_check_settings(
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
  IF throttle_query IS NOT NULL OR clear_throttle_query THEN
    PERFORM shift_internal._backfill_check(name);
    PERFORM shift_internal._backfill_seal(name);
  END IF;
END
$$;
SELECT shift_internal._owner_call('backfill_set');

-- A job about to be dropped: its recorded pg_cron schedule (backfill_run's
-- schedule =>) is removed, as the caller, where pg_cron lives in this
-- database; otherwise a notice says how (C, backfill_cron.c).  Returns
-- whether the schedule is gone.
CREATE FUNCTION shift_internal._backfill_unschedule(name pg_catalog.text)
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'shift_backfill_unschedule'
LANGUAGE C STRICT;

-- shift.backfill_drop(name): forgets a job that is not running, and ends
-- the pg_cron schedule pg_shift recorded for it.
CREATE FUNCTION shift_internal.backfill_drop(name pg_catalog.text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  j @extschema@.backfill := shift_internal._backfill_job(name);
BEGIN
  IF NOT (SELECT pg_try_advisory_xact_lock(k.key1, k.key2)
            FROM shift_internal.backfill_lock_key(name) k) THEN
    RAISE EXCEPTION 'backfill job "%" is running and cannot be dropped', name
      USING ERRCODE = 'object_in_use', HINT = 'Cancel it first with shift.backfill_cancel.';
  END IF;
  IF j.schedule IS NOT NULL THEN
    PERFORM shift_internal._backfill_unschedule(name);
  END IF;
  DELETE FROM @extschema@.backfill b WHERE b.name = backfill_drop.name;
END
$$;
SELECT shift_internal._owner_call('backfill_drop');

-- Drops the backfill jobs a phase made, once its down has undone their
-- work, and the pg_cron schedules recorded for them.
CREATE FUNCTION shift_internal._forget_backfills(migration pg_catalog.text, phase pg_catalog.text)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT count(shift_internal._backfill_unschedule(b.name)) FROM @extschema@.backfill b
   WHERE b.migration = _forget_backfills.migration AND b.phase = _forget_backfills.phase
     AND b.schedule IS NOT NULL;
  DELETE FROM @extschema@.backfill b
   WHERE b.migration = _forget_backfills.migration AND b.phase = _forget_backfills.phase
$$;

CREATE VIEW @extschema@.backfill_progress WITH (security_invoker = true) AS
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
       round(w.rate::numeric, 1) AS rate,
       -- an ETA only while a session runs the job and nothing holds it back
       -- (paused, throttled, failed, ended, or no runner: NULL)
       -- (and none past a year: a rate near zero is a stall, not a forecast)
       CASE WHEN l.pid IS NOT NULL AND b.state IN ('active', 'pending') AND b.throttled IS NULL AND w.rate > 0
                 AND b.estimated_total IS NOT NULL
                 AND greatest(b.estimated_total - b.keys_done, 0) / w.rate < 31557600
            THEN make_interval(secs => greatest(b.estimated_total - b.keys_done, 0) / w.rate) END AS eta,
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
       b.owner,
       b.schedule,
       b.migration,
       b.phase,
       b.target_ms,
       b.sleep_ratio,
       b.lock_timeout_ms,
       b.max_retries,
       b.max_lag,
       b.throttle_query IS NOT NULL AS has_throttle_query,
       b.created_at
  FROM @extschema@.backfill b
  CROSS JOIN LATERAL shift_internal.backfill_lock_key(b.name) k
  LEFT JOIN pg_catalog.pg_locks l
    ON l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
   AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d
                      WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())
   AND l.classid = k.key1::pg_catalog.oid
   AND l.objid = k.key2::pg_catalog.oid
  -- keys per second of wall-clock time, rests and throttling included, over
  -- the batches of the last minute (up to the last one); while a job runs,
  -- the time since its last batch beyond a batch's usual time counts too, so
  -- a stalled job's rate falls
  CROSS JOIN LATERAL (
    SELECT sum(bb.keys)::pg_catalog.float8
           / nullif((sum(coalesce(bb.wall_ms, bb.ms))
                     + CASE WHEN l.pid IS NOT NULL
                            THEN greatest(1000 * extract(epoch FROM pg_catalog.clock_timestamp() - max(bb.at))
                                          - avg(coalesce(bb.wall_ms, bb.ms)), 0)
                            ELSE 0 END)::pg_catalog.float8 / 1000, 0) AS rate
      FROM @extschema@.backfill_batch bb
     WHERE bb.job = b.name
       AND bb.at >= (SELECT max(x.at) FROM @extschema@.backfill_batch x WHERE x.job = b.name)
                    - interval '60 seconds') w;
COMMENT ON VIEW @extschema@.backfill_progress IS
  'every backfill job: state, rows done, estimated total, percent, rate (keys/s), ETA, batch size, last key, retries, last error';

