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
