-- ---------------------------------------------------------------------------
-- Who may do what (see extension/control.c and the README's threat model).
--
-- The control tables are written only by their owner, the role that ran
-- CREATE EXTENSION.  A function that changes them is declared in schema
-- shift with shift_owner_call as its body, which runs the function of the
-- same name and argument types in schema shift_internal as that owner and
-- remembers the caller (shift_internal.caller()); the implementation checks
-- that the caller may act for the row's owner.  Nobody else may execute
-- anything in shift_internal but the few read-only helpers granted below
-- (row-level security policies call them as the reading role).
-- ---------------------------------------------------------------------------

CREATE SCHEMA shift_internal;
COMMENT ON SCHEMA shift_internal IS
  'pg_shift''s implementation: functions that run as the extension''s owner, and helpers';
REVOKE ALL ON SCHEMA shift_internal FROM PUBLIC;
GRANT USAGE ON SCHEMA shift_internal TO PUBLIC;

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
