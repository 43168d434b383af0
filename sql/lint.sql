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
