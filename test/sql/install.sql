-- install: CREATE EXTENSION, shift.version(), the schema's privileges.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS pg_shift;
CREATE EXTENSION pg_shift;

-- the library and the catalog agree, and both carry the control file's version
SELECT shift.version() = extversion AS library_matches_catalog
  FROM pg_extension WHERE extname = 'pg_shift';
SELECT shift.version() ~ '^\d+\.\d+\.\d+$' AS version_is_semver;

-- not relocatable, lives in schema shift
SELECT n.nspname, e.extrelocatable
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE e.extname = 'pg_shift';
ALTER EXTENSION pg_shift SET SCHEMA public;

-- PUBLIC may use the schema but never create in it
SELECT has_schema_privilege('public', 'shift', 'USAGE') AS public_usage,
       has_schema_privilege('public', 'shift', 'CREATE') AS public_create;

-- a role without privileges can call version() but cannot create objects in shift
CREATE ROLE regress_pgshift_nobody;
SET ROLE regress_pgshift_nobody;
SELECT shift.version() IS NOT NULL AS nobody_can_read_version;
CREATE TABLE shift.intruder (x int);
RESET ROLE;
DROP ROLE regress_pgshift_nobody;

-- drop removes every object; PostgreSQL keeps the (empty) control-file schema
DROP EXTENSION pg_shift;
SELECT count(*) AS objects_left FROM pg_proc WHERE pronamespace = 'shift'::regnamespace;

-- a schema "shift" owned by another, unprivileged role is refused
DROP SCHEMA shift;
CREATE ROLE regress_pgshift_squatter;
CREATE SCHEMA shift AUTHORIZATION regress_pgshift_squatter;
CREATE EXTENSION pg_shift;
DROP SCHEMA shift;
DROP ROLE regress_pgshift_squatter;

-- and re-creating works; this is every object the extension owns
CREATE EXTENSION pg_shift;
SELECT pg_describe_object(classid, objid, objsubid) AS member
  FROM pg_depend
 WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
   AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_shift')
 ORDER BY 1;
