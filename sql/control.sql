-- ---------------------------------------------------------------------------
-- Who may do what (see extension/control.c and the README's threat model).
--
-- The control tables are written only by their owner, the role that ran
-- CREATE EXTENSION.  A function that changes them is made in schema shift
-- by shift_internal._owner_call from its implementation in schema
-- shift_internal: shift_owner_call, its body, runs the implementation as
-- that owner and remembers the caller (shift_internal.caller()); it checks
-- that the caller may act for the row's owner.  Nobody else may execute
-- anything in shift_internal but the few read-only helpers granted below
-- (row-level security policies call them as the reading role).
-- ---------------------------------------------------------------------------

CREATE SCHEMA shift_internal;
COMMENT ON SCHEMA shift_internal IS
  'pg_shift''s implementation: functions that run as the extension''s owner, and helpers';
REVOKE ALL ON SCHEMA shift_internal FROM PUBLIC;
GRANT USAGE ON SCHEMA shift_internal TO PUBLIC;

/*
 * shift_internal._owner_call(name): makes, from an implementation, the
 * function that runs it as pg_shift's owner (shift_owner_call, in
 * extension/control.c), with its very arguments, defaults and result:
 * shift.NAME for each shift_internal.NAME, or, for a name written
 * shift_internal.NAME, shift_internal.NAME for each NAME_as_owner there.
 * The install script calls it after each implementation, and drops it at
 * its end (sql/grants.sql).
 */
CREATE FUNCTION shift_internal._owner_call(name pg_catalog.text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  internal CONSTANT pg_catalog.bool := name LIKE 'shift\_internal.%';
  fname CONSTANT pg_catalog.text := CASE WHEN internal THEN pg_catalog.substr(name, 16) ELSE name END;
  f pg_catalog.oid;
BEGIN
  FOR f IN SELECT p.oid FROM pg_catalog.pg_proc p
            WHERE p.pronamespace = 'shift_internal'::pg_catalog.regnamespace
              AND p.proname = CASE WHEN internal THEN fname || '_as_owner' ELSE fname END
  LOOP
    -- deparsed under this function's search_path: every type and function
    -- outside pg_catalog qualified, and read back under the same one
    EXECUTE format('CREATE FUNCTION %s.%I(%s) RETURNS %s AS %L, %L LANGUAGE C',
                   CASE WHEN internal THEN 'shift_internal' ELSE '@extschema@' END, fname,
                   pg_catalog.pg_get_function_arguments(f), pg_catalog.pg_get_function_result(f),
                   'MODULE_PATHNAME', 'shift_owner_call');
  END LOOP;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'pg_shift''s install script: no implementation of % in schema shift_internal', name;
  END IF;
END
$$;

-- The role an implementation works for: who called the shift function that runs it.
CREATE FUNCTION shift_internal.caller()
RETURNS pg_catalog.regrole
AS 'MODULE_PATHNAME', 'shift_caller_sql'
LANGUAGE C STABLE PARALLEL RESTRICTED;

-- May the caller act for (see, run, change) what owner made?  The owner, a role
-- with its privileges, and superusers may.  No SET search_path: it is the
-- row-level security policy of every control table, and must stay cheap.
CREATE FUNCTION shift_internal.may_act(owner pg_catalog.name)
RETURNS pg_catalog.bool
LANGUAGE sql STABLE PARALLEL RESTRICTED
AS $$
  SELECT owner OPERATOR(pg_catalog.=) pg_catalog.pg_get_userbyid(shift_internal.caller())
      OR EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
                  WHERE r.rolname OPERATOR(pg_catalog.=) owner
                    AND pg_catalog.pg_has_role(shift_internal.caller()::pg_catalog.oid, r.oid, 'USAGE'))
$$;

-- The search_path a job or sync records: "$user" resolved, names quoted, pg_temp last.
CREATE FUNCTION shift_internal.pin_search_path(path pg_catalog.text)
RETURNS pg_catalog.text
AS 'MODULE_PATHNAME', 'shift_pin_search_path'
LANGUAGE C STABLE STRICT;

-- Error texts and messages are kept, but not without end: a 20 MB message
-- would otherwise be copied into every row and view that shows it.
CREATE FUNCTION shift_internal.cap(t pg_catalog.text)
RETURNS pg_catalog.text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT CASE WHEN pg_catalog.length(t) OPERATOR(pg_catalog.<=) 4000 THEN t
              ELSE pg_catalog.left(t, 4000) OPERATOR(pg_catalog.||)
                   pg_catalog.format(' ... (%s more characters)', pg_catalog.length(t) OPERATOR(pg_catalog.-) 4000)
         END
$$;

-- Raises unless the caller may act for owner; what names the object.
CREATE FUNCTION shift_internal.check_owner(what pg_catalog.text, owner pg_catalog.name)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF NOT shift_internal.may_act(owner) THEN
    RAISE EXCEPTION '% belongs to role "%"', what, owner
      USING ERRCODE = 'insufficient_privilege',
            DETAIL = format('Role "%s" is neither that role, nor a member of it with its privileges, nor a superuser.',
                            shift_internal.caller()),
            HINT = format('Act as "%s" (SET ROLE, or connect as it), or ask its owner or a superuser.', owner);
  END IF;
END
$$;

-- A JSON array of strings as text[] (NULL for JSON null or no value).
CREATE FUNCTION shift_internal.text_array(j pg_catalog.jsonb)
RETURNS pg_catalog.text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT CASE WHEN pg_catalog.jsonb_typeof(j) OPERATOR(pg_catalog.=) 'array'
              THEN ARRAY(SELECT pg_catalog.jsonb_array_elements_text(j)) END
$$;

-- The digest a backfill job or a sync keeps of what was checked (def).
CREATE FUNCTION shift_internal.definition_digest(def pg_catalog.jsonb)
RETURNS pg_catalog.text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(def::pg_catalog.text, 'UTF8')), 'hex')
$$;

/*
 * Raises unless what (a backfill job or a sync) is as it was checked: its
 * record of what was checked (checked, with its digest) intact, and its
 * definition now (now_def) the same; the error names the fields that
 * differ.  detail says what runs only as checked, hint how to start over.
 */
CREATE FUNCTION shift_internal.verify_checked(what pg_catalog.text, checked pg_catalog.jsonb,
                                              digest pg_catalog.text, now_def pg_catalog.jsonb,
                                              detail pg_catalog.text, hint pg_catalog.text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  changed pg_catalog.text;
BEGIN
  IF checked IS NULL OR digest IS DISTINCT FROM shift_internal.definition_digest(checked) THEN
    RAISE EXCEPTION '% has no valid record of what was checked', what
      USING ERRCODE = 'data_corrupted',
            DETAIL = 'Its checked definition or digest was changed outside pg_shift''s functions.',
            HINT = hint;
  END IF;
  SELECT string_agg(k, ', ' ORDER BY k) INTO changed
    FROM jsonb_object_keys(now_def || checked) k
   WHERE now_def -> k IS DISTINCT FROM checked -> k;
  IF changed IS NOT NULL THEN
    RAISE EXCEPTION '% was changed since it was checked: %', what, changed
      USING ERRCODE = 'data_corrupted', DETAIL = detail, HINT = hint;
  END IF;
END
$$;
