-- ---------------------------------------------------------------------------
-- Privileges, last so that they cover every object above.
--
--   PUBLIC          shift.version(), shift.missing_privileges(), the lint
--                   functions and shift.rename_column_refs (they only parse
--                   text and read the catalog);
--                   the helpers the row-level security policies call.
--   shift_operator  reads its own rows of every control table and view (the
--                   policies decide which), calls every function of schema
--                   shift and the internal steps they call (listed below).  It writes no control table directly: nobody but
--                   the extension's owner does (see sql/control.sql).
--
-- Nothing is SECURITY DEFINER; the functions in shift_internal that the
-- shift_owner_call functions run are executable by the owner alone.
-- ---------------------------------------------------------------------------

DROP FUNCTION shift_internal._owner_call(pg_catalog.text);

REVOKE ALL ON ALL TABLES IN SCHEMA @extschema@ FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA @extschema@ FROM PUBLIC;
REVOKE EXECUTE ON ALL ROUTINES IN SCHEMA @extschema@ FROM PUBLIC;
REVOKE EXECUTE ON ALL ROUTINES IN SCHEMA shift_internal FROM PUBLIC;

GRANT EXECUTE ON FUNCTION @extschema@.version() TO PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.missing_privileges() TO PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.lint(pg_catalog.text, pg_catalog.text) TO PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.rename_column_refs(pg_catalog.text, pg_catalog.text, pg_catalog.text) TO PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.lint_script(pg_catalog.text[], pg_catalog.text[], pg_catalog.int4[], pg_catalog.text) TO PUBLIC;
-- row-level security policies run these as whoever reads
GRANT EXECUTE ON FUNCTION shift_internal.caller(), shift_internal.may_act(pg_catalog.name) TO PUBLIC;

GRANT SELECT ON @extschema@.migration, @extschema@.phase, @extschema@.event,
                @extschema@.backfill, @extschema@.backfill_batch, @extschema@.sync,
                @extschema@.status, @extschema@.history, @extschema@.backfill_progress,
                @extschema@.sync_status TO shift_operator;
GRANT EXECUTE ON ALL ROUTINES IN SCHEMA @extschema@ TO shift_operator;
-- what the caller-level functions of schema shift call in shift_internal:
-- checks and reads, each as the caller (row-level security applies), and
-- the cut-over's check, which runs a sync's SQL as the sync's owner once
-- the caller may act for it
GRANT EXECUTE ON FUNCTION shift_internal.pin_search_path(pg_catalog.text),
                          shift_internal.cap(pg_catalog.text),
                          shift_internal.check_owner(pg_catalog.text, pg_catalog.name),
                          shift_internal.definition_digest(pg_catalog.jsonb),
                          shift_internal.verify_checked(pg_catalog.text, pg_catalog.jsonb, pg_catalog.text, pg_catalog.jsonb,
                                                        pg_catalog.text, pg_catalog.text),
                          shift_internal._check_create(pg_catalog.text, pg_catalog.text, pg_catalog.int4, pg_catalog.text),
                          shift_internal.backfill_definition(@extschema@.backfill),
                          shift_internal.backfill_verify(pg_catalog.text),
                          shift_internal.backfill_lock_key(pg_catalog.text),
                          shift_internal.sync_definition(@extschema@.sync),
                          shift_internal._sync_same(@extschema@.sync, @extschema@.sync),
                          shift_internal.sync_row(pg_catalog.text),
                          shift_internal.sync_verify(pg_catalog.text),
                          shift_internal.sync_installed_digest(pg_catalog.text),
                          shift_internal.cutover_check(pg_catalog.text, pg_catalog.bool, pg_catalog.text, pg_catalog.int4),
                          shift_internal._pg_cron_here()
  TO PUBLIC;

-- the steps of the caller-level functions (sync_create, sync_drop, the
-- cut-over, backfill_create), kept in shift_internal out of \df shift.*'s
-- sight: executable by shift_operator, as they were when they lived in
-- schema shift; those of them that change a control table run their
-- NAME_as_owner implementation as the owner (shift_owner_call)
GRANT EXECUTE ON FUNCTION
  shift_internal._backfill_check(pg_catalog.text),
  shift_internal._cutover(pg_catalog.text, pg_catalog.bool, pg_catalog.text, pg_catalog.text, pg_catalog.int4,
                          pg_catalog.text, pg_catalog.int4, pg_catalog.float8, pg_catalog.float8, pg_catalog.interval),
  shift_internal._cutover_blockers(pg_catalog.regclass, pg_catalog.regclass),
  shift_internal._cutover_jobs(pg_catalog.regclass, pg_catalog.regclass),
  shift_internal._cutover_capture(pg_catalog.regclass, pg_catalog.regclass),
  shift_internal._cutover_carry(pg_catalog.jsonb, pg_catalog.text, pg_catalog.text[]),
  shift_internal._cutover_left_behind(pg_catalog.regclass, pg_catalog.regclass, pg_catalog.text, pg_catalog.text),
  shift_internal._cutover_refusal(@extschema@.sync, pg_catalog.bool, pg_catalog.text, pg_catalog.text, pg_catalog.int4,
                                  pg_catalog.int4, pg_catalog.float8, pg_catalog.float8, pg_catalog.interval),
  shift_internal._cutover_rename(pg_catalog.regclass, pg_catalog.regclass, pg_catalog.bool, pg_catalog.text,
                                 pg_catalog.text, pg_catalog.jsonb),
  shift_internal._cutover_sequences(pg_catalog.regclass, pg_catalog.regclass, pg_catalog.bool),
  shift_internal._cutover_swap(@extschema@.sync, pg_catalog.bool, pg_catalog.text),
  shift_internal._free_names(pg_catalog.regclass, pg_catalog.name),
  shift_internal._lock_holders(pg_catalog.regclass, pg_catalog.regclass, pg_catalog.interval),
  shift_internal._plain_column(pg_catalog.text),
  shift_internal._primary_key(pg_catalog.regclass),
  shift_internal._select_list(pg_catalog.text),
  shift_internal._sync_check(pg_catalog.text),
  shift_internal._sync_create_args(pg_catalog.text, pg_catalog.regclass, pg_catalog.text, pg_catalog.text,
                                   pg_catalog.regclass, pg_catalog.text[], pg_catalog.text, pg_catalog.text[],
                                   pg_catalog.text[], pg_catalog.text, pg_catalog.text[], pg_catalog.text),
  shift_internal._sync_forget(pg_catalog.text),
  shift_internal._sync_install(pg_catalog.text),
  shift_internal._sync_mapping(pg_catalog.text, pg_catalog.text, pg_catalog.regclass, pg_catalog.regclass,
                               pg_catalog.text[], pg_catalog.text, pg_catalog.text[]),
  shift_internal._sync_new_table(pg_catalog.text, pg_catalog.regclass, pg_catalog.regclass),
  shift_internal._sync_record(@extschema@.sync, pg_catalog.text),
  shift_internal._sync_trigger(),
  shift_internal._sync_trigger_names(pg_catalog.text),
  shift_internal._sync_turn(pg_catalog.text, pg_catalog.bool, pg_catalog.text, pg_catalog.text, pg_catalog.text,
                            pg_catalog.text[], pg_catalog.oid[]),
  shift_internal._sync_uninstall(pg_catalog.text),
  shift_internal._writable_columns(pg_catalog.regclass)
  TO shift_operator;

-- shift_monitor (sql/monitor.sql): reads, runs nothing.  The views are
-- security_invoker, so it reads them through the tables' policies; the
-- progress view computes a job's lock key (granted to PUBLIC above).
GRANT SELECT ON @extschema@.migration, @extschema@.phase, @extschema@.event,
                @extschema@.backfill, @extschema@.backfill_batch, @extschema@.sync,
                @extschema@.status, @extschema@.history, @extschema@.backfill_progress,
                @extschema@.sync_status, @extschema@.lease, @extschema@.phase_status,
                @extschema@.backfill_batches TO shift_monitor;

-- the version a session writes as: reads its own settings only (sql/sync.sql)
GRANT EXECUTE ON FUNCTION @extschema@.writer_version() TO PUBLIC;

-- moving tables to another cluster (sql/move.sql): the record and the view
-- are read like the other control tables; shift.move_* functions are
-- granted to shift_operator with schema shift's routines above
GRANT SELECT ON @extschema@.move_object, @extschema@.move_objects, @extschema@.move_status TO shift_operator, shift_monitor;
GRANT SELECT ON @extschema@.capture, @extschema@.capture_gap, @extschema@.capture_progress TO shift_operator, shift_monitor;
-- switching a table between engines (sql/engines.sql): the functions of
-- schema shift run as the caller; these are what they call and the
-- trigger functions they put on the caller's tables
GRANT EXECUTE ON FUNCTION
  shift_internal._capture_log(), shift_internal._capture_log_truncate(), shift_internal._fence_writes(),
  shift_internal.mysql_ident(pg_catalog.text), shift_internal.mysql_name(pg_catalog.text), shift_internal.mysql_literal(pg_catalog.text),
  shift_internal._check_key_columns(pg_catalog.text, pg_catalog.text[]),
  shift_internal._check_statement_triggers(pg_catalog.regclass, pg_catalog.text),
  shift_internal._check_query(pg_catalog.text, pg_catalog.text),
  shift_internal._capture_row(pg_catalog.text, pg_catalog.bool)
  TO shift_operator;
GRANT SELECT ON @extschema@.move_fence, @extschema@.move_fences, @extschema@.move_fence_grant,
                @extschema@.move_fence_grants TO shift_operator, shift_monitor;

-- version schemas (sql/version.sql): shift_operator makes and drops them
-- (the public functions, granted above, and the steps they call, below);
-- shift_monitor reads them.  shift.versions counts the sessions using a
-- version as whoever reads it (version_sessions reads pg_locks and
-- pg_stat_activity, which PUBLIC reads anyway).
GRANT SELECT ON @extschema@.version_schema, @extschema@.version_relation, @extschema@.versions
  TO shift_operator, shift_monitor;
GRANT EXECUTE ON FUNCTION shift_internal.version_sessions(pg_catalog.text) TO PUBLIC;
GRANT EXECUTE ON FUNCTION
  shift_internal._select_items(pg_catalog.text),
  shift_internal.version_row(pg_catalog.text),
  shift_internal._version_columns(pg_catalog.regclass, pg_catalog.text),
  shift_internal._version_view_live(@extschema@.version_relation),
  shift_internal._version_view_same(pg_catalog.regclass, pg_catalog.text, pg_catalog.name, pg_catalog.name, pg_catalog.text),
  shift_internal._version_record(pg_catalog.text, pg_catalog.bool, pg_catalog.text, pg_catalog.text),
  shift_internal._version_view_record(@extschema@.version_relation),
  shift_internal._version_forget(pg_catalog.text, pg_catalog.text)
  TO shift_operator;
