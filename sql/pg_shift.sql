-- pg_shift install script (source; the build writes pg_shift--@PG_SHIFT_VERSION@.sql from it)
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
