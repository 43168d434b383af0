-- ---------------------------------------------------------------------------
-- What psql's \df+, \dv+ and \dt+ say about pg_shift's public objects: each
-- function with its arguments, what it does and the doc/ page that has the
-- rest.  Tables and views are commented where they are made; the test
-- test/sql/comments.sql fails when a function, procedure, table or view of
-- schema shift has no comment.
-- ---------------------------------------------------------------------------

-- change capture (doc/sql.md, "Change capture from a foreign table")
COMMENT ON ROUTINE @extschema@.capture_create(pg_catalog.text, pg_catalog.regclass, pg_catalog.regclass, pg_catalog.regclass, pg_catalog.text[], pg_catalog.text[], pg_catalog.text, pg_catalog.text, pg_catalog.int4, pg_catalog.interval, pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text) IS
'capture_create(name, changelog, source, "into", key_columns, columns, "select", backfill, batch_size, gap_timeout, if_exists => error|reuse, migration, phase, search_path): defines a change capture from a changelog (seq, key, kind, at), checks its SQL and returns its name';
COMMENT ON ROUTINE @extschema@.capture_apply(pg_catalog.text, pg_catalog.int4) IS
'capture_apply(name, max_batches => 1): applies changelog batches in the caller''s transaction, each with its checkpoint; returns changes, keys, upserted, deleted, late, open_gaps, caught_up';
COMMENT ON ROUTINE @extschema@.capture_run(pg_catalog.text, pg_catalog.interval, pg_catalog.int8) IS
'CALL capture_run(name, max_runtime, max_batches): applies batches, one transaction each, until the changelog is caught up or a limit is reached; for pg_cron and draining';
COMMENT ON ROUTINE @extschema@.capture_lag(pg_catalog.text) IS
'capture_lag(name): asks the changelog now how far the capture is behind: pending changes, the remote largest seq, the time of the oldest pending change';
COMMENT ON ROUTINE @extschema@.capture_drop(pg_catalog.text) IS
'capture_drop(name): forgets a capture and its gaps (the source side''s triggers are removed by capture_mysql_sql(..., ''remove''))';
COMMENT ON ROUTINE @extschema@.compare_queries(pg_catalog.text, pg_catalog.text, pg_catalog.text[], pg_catalog.text[], pg_catalog.int4, pg_catalog.text) IS
'compare_queries(source_sql, target_sql, key, target_key, buckets, search_path): shadow reads, the rows two queries return compared as shift.compare compares two tables; no rows when equal';
COMMENT ON ROUTINE @extschema@.capture_pause(pg_catalog.text, pg_catalog.bool) IS
'capture_pause(name, paused => true): a paused capture is not applied (the cut-over pauses the forward capture while PostgreSQL takes the writes)';
COMMENT ON ROUTINE @extschema@.capture_log_create(pg_catalog.regclass, pg_catalog.text[], pg_catalog.text) IS
'capture_log_create(rel, key_columns, changelog): a changelog of rel''s writes on this server (statement triggers, one row per key), for a capture that carries them to another engine';
COMMENT ON ROUTINE @extschema@.capture_log_drop(pg_catalog.regclass, pg_catalog.text) IS
'capture_log_drop(rel, changelog): drops the triggers capture_log_create put on rel and the caller''s changelog';
COMMENT ON ROUTINE @extschema@.capture_forget_gaps(pg_catalog.text) IS
'capture_forget_gaps(name): forgets a capture''s open gaps (once its source is fenced and drained they are rolled-back values); returns how many';
COMMENT ON ROUTINE @extschema@.capture_compare(pg_catalog.text, pg_catalog.int4) IS
'capture_compare(name, buckets): shift.compare of the capture''s source, read through its select =>, against its table; no rows when equal';
COMMENT ON ROUTINE @extschema@.capture_sequences(pg_catalog.text, pg_catalog.int8) IS
'capture_sequences(name, floor): sets the sequences the capture''s table owns past its largest value and past floor (MySQL''s AUTO_INCREMENT less one), never back';
COMMENT ON ROUTINE @extschema@.fence_writes(pg_catalog.regclass, pg_catalog.text) IS
'fence_writes(rel, message): refuses writes to rel from every role but the caller (SQLSTATE 25006), once the writes in flight have ended';
COMMENT ON ROUTINE @extschema@.unfence_writes(pg_catalog.regclass) IS
'unfence_writes(rel): lifts the fence of fence_writes';
COMMENT ON ROUTINE @extschema@.mysql_next_id_sql(pg_catalog.text, pg_catalog.text) IS
'mysql_next_id_sql(table_name, database): the MySQL/MariaDB script whose output holds the table''s next AUTO_INCREMENT (SHOW CREATE TABLE)';
COMMENT ON ROUTINE @extschema@.mysql_fence_sql(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.int4) IS
'mysql_fence_sql(table_name, action => fence|unfence, exempt_user, database, lock_wait_timeout): the MySQL/MariaDB script that fences a table against every account but exempt_user, or lifts the fence';
COMMENT ON ROUTINE @extschema@.capture_mysql_sql(pg_catalog.text, pg_catalog.text[], pg_catalog.text[], pg_catalog.text, pg_catalog.text, pg_catalog.text) IS
'capture_mysql_sql(source_table, key_columns, key_types, changelog_table, action => install|remove, database): the MySQL/MariaDB script that makes or drops a changelog table and its three triggers, for the mariadb client';

-- backfill jobs (doc/sql.md, "Backfill")
COMMENT ON ROUTINE @extschema@.backfill_create(pg_catalog.text, pg_catalog.regclass, pg_catalog.text, pg_catalog.text, pg_catalog.regclass, pg_catalog.text[], pg_catalog.text, pg_catalog.text, pg_catalog.regclass, pg_catalog.text[], pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.float8, pg_catalog.int4, pg_catalog.int4, pg_catalog.interval, pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text) IS
'backfill_create(name, relation, set => ''col = expr'' [, "where" =>] | "into" => table [, columns, "select", on_conflict], key | key_columns, batch_min, batch_max, target_ms, sleep_ratio, lock_timeout_ms, max_retries, max_lag, throttle_query, if_exists => error|reuse, migration, phase, search_path): defines a resumable batched job, checks its SQL and returns its name';
COMMENT ON ROUTINE @extschema@.backfill_run(pg_catalog.text, pg_catalog.interval, pg_catalog.int8, pg_catalog.text) IS
'CALL backfill_run(name, max_runtime, max_batches, schedule): runs batches, one transaction each, until the job is done, paused, cancelled or a limit is reached; for pg_cron';
COMMENT ON ROUTINE @extschema@.backfill_step(pg_catalog.text) IS
'backfill_step(name) -> (keys, rows, done): runs one batch in the caller''s transaction';
COMMENT ON ROUTINE @extschema@.backfill_set(pg_catalog.text, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.float8, pg_catalog.int4, pg_catalog.int4, pg_catalog.interval, pg_catalog.text, pg_catalog.bool, pg_catalog.bool) IS
'backfill_set(name, batch_min, batch_max, target_ms, sleep_ratio, lock_timeout_ms, max_retries, max_lag, throttle_query, clear_max_lag, clear_throttle_query): changes a job''s pace; NULL keeps a setting';
COMMENT ON ROUTINE @extschema@.backfill_pause(pg_catalog.text) IS
'backfill_pause(name): stops a job after its current batch; backfill_resume goes on from its checkpoint';
COMMENT ON ROUTINE @extschema@.backfill_resume(pg_catalog.text) IS
'backfill_resume(name): makes a paused job runnable again, from its checkpoint';
COMMENT ON ROUTINE @extschema@.backfill_cancel(pg_catalog.text) IS
'backfill_cancel(name): stops a job for good; what it wrote stays';
COMMENT ON ROUTINE @extschema@.backfill_drop(pg_catalog.text) IS
'backfill_drop(name): forgets a job and its batches, and removes the pg_cron schedule backfill_run''s schedule => recorded (in this database; elsewhere it says how); the rows it wrote stay';

-- syncs and cut-over (doc/sql.md, "Sync" and "Cut-over")
COMMENT ON ROUTINE @extschema@.sync_create(pg_catalog.text, pg_catalog.regclass, pg_catalog.text, pg_catalog.text, pg_catalog.regclass, pg_catalog.text[], pg_catalog.text, pg_catalog.text[], pg_catalog.bool, pg_catalog.text[], pg_catalog.text, pg_catalog.text[], pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text) IS
'sync_create(name, relation, set => ''col = expr'' [, reverse_set, new_version, old_version] | "into" => table [, columns, "select", key, reverse, reverse_columns, reverse_select, reverse_key], if_exists, migration, phase, search_path): dual-write triggers keeping a column or a copy of the table in step with every write';
COMMENT ON ROUTINE @extschema@.sync_drop(pg_catalog.text, pg_catalog.bool) IS
'sync_drop(name, if_exists): drops a sync''s triggers and its record';
COMMENT ON ROUTINE @extschema@.cutover(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.int4, pg_catalog.text, pg_catalog.int4, pg_catalog.float8, pg_catalog.float8, pg_catalog.interval) IS
'cutover(sync, archive, "check" => recent|count|none, check_rows, lock_timeout, retries, backoff, max_backoff, max_xact_age): swaps a table-level sync''s copy in under short locks, with retries; the old table becomes the archive, kept in step the other way';
COMMENT ON ROUTINE @extschema@.cutover_revert(pg_catalog.text, pg_catalog.text, pg_catalog.int4, pg_catalog.text, pg_catalog.int4, pg_catalog.float8, pg_catalog.float8, pg_catalog.interval) IS
'cutover_revert(sync, "check", check_rows, lock_timeout, retries, backoff, max_backoff, max_xact_age): swaps the archive back in after a cut-over, no row lost';
COMMENT ON ROUTINE @extschema@.cutover_pending(pg_catalog.text) IS
'cutover_pending(sync): the VALIDATE CONSTRAINT statements the last cut-over or revert left to run';
COMMENT ON ROUTINE @extschema@.copy_grants(pg_catalog.regclass, pg_catalog.regclass) IS
'copy_grants(from_table, to_table): grants on to_table every table privilege a role holds on from_table';

-- migrations, for the runner (doc/sql.md, "Bookkeeping")
COMMENT ON ROUTINE @extschema@.migration_begin(pg_catalog.text, pg_catalog.text, pg_catalog.jsonb, pg_catalog.text, pg_catalog.int4, pg_catalog.text, pg_catalog.text, pg_catalog.int4, pg_catalog.text, pg_catalog.bool) IS
'migration_begin(migration, script_sha256, phases, operation, work_pid, runner_version, host, runner_pid, script_path, allow_drift): registers or resumes a migration run and takes its lease; returns its phases'' states';
COMMENT ON ROUTINE @extschema@.migration_end(pg_catalog.text) IS
'migration_end(migration): ends a run, recording its outcome, and gives the lease up';
COMMENT ON ROUTINE @extschema@.heartbeat(pg_catalog.text) IS
'heartbeat(migration): renews the lease of the run this session holds';
COMMENT ON ROUTINE @extschema@.lock_holder(pg_catalog.text) IS
'lock_holder(migration): which session holds a migration''s lock, and what its lease says';
COMMENT ON ROUTINE @extschema@.unlock(pg_catalog.text) IS
'unlock(migration): releases the migration''s advisory lock this session holds';
COMMENT ON ROUTINE @extschema@.log_event(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.jsonb) IS
'log_event(migration, phase, kind, message, sqlstate, detail): appends an event to a migration this session leases';
COMMENT ON ROUTINE @extschema@.event_append_only() IS
'trigger function of shift.event: its rows are never updated or deleted';
COMMENT ON ROUTINE @extschema@.phase_start(pg_catalog.text, pg_catalog.text) IS
'phase_start(migration, phase): a phase''s up begins';
COMMENT ON ROUTINE @extschema@.phase_done(pg_catalog.text, pg_catalog.text, pg_catalog.int8) IS
'phase_done(migration, phase, rows_affected): a phase''s up (and verify) succeeded';
COMMENT ON ROUTINE @extschema@.phase_failed(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.bool) IS
'phase_failed(migration, phase, message, sqlstate, interrupted): a phase''s up failed or was interrupted';
COMMENT ON ROUTINE @extschema@.phase_memo(pg_catalog.text, pg_catalog.text, pg_catalog.jsonb) IS
'phase_memo(migration, phase, memo): the running phase remembers a JSON object for its down (db:remember)';
COMMENT ON ROUTINE @extschema@.phase_cleaned(pg_catalog.text, pg_catalog.text) IS
'phase_cleaned(migration, phase): the down of a failed phase ran';
COMMENT ON ROUTINE @extschema@.phase_rollback_start(pg_catalog.text, pg_catalog.text) IS
'phase_rollback_start(migration, phase): a phase''s down begins (a rollback)';
COMMENT ON ROUTINE @extschema@.phase_rolled_back(pg_catalog.text, pg_catalog.text) IS
'phase_rolled_back(migration, phase): a phase''s down succeeded';
COMMENT ON ROUTINE @extschema@.phase_rollback_failed(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.bool) IS
'phase_rollback_failed(migration, phase, message, sqlstate, interrupted): a phase''s down failed or was interrupted';

-- the writer's version (doc/sql.md, "Application versions")
COMMENT ON ROUTINE @extschema@.writer_version() IS
'writer_version(): the application version this session writes as, for a column-level sync with new_version: pg_shift.version, else the first schema of the search_path';

-- moving tables to another cluster (doc/move.md)
COMMENT ON ROUTINE @extschema@.move_record(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text) IS
'move_record(move, kind, object, side, migration, phase): records a publication, slot or subscription a move is about to make on this server, or a table or sequence of the caller''s it made, so that cleanup finds it; a move name is one role''s';
COMMENT ON ROUTINE @extschema@.move_forget(pg_catalog.text, pg_catalog.text) IS
'move_forget(kind, object): forgets what a move made here once it is dropped';
COMMENT ON ROUTINE @extschema@.move_fence_begin(pg_catalog.text, pg_catalog.text, pg_catalog.text[], pg_catalog.text[]) IS
'move_fence_begin(move, direction => forward|back, tables, app_roles) -> id: a cut-over''s fence begins, in shift.move_fence, with the privileges it moves read from the catalog (forward) or the last forward fence (back), in shift.move_fence_grant';
COMMENT ON ROUTINE @extschema@.move_fence_end(pg_catalog.text, pg_catalog.text, pg_catalog.float8, pg_catalog.pg_lsn) IS
'move_fence_end(move, direction, fence_ms, lsn): the open fence of a move ended: its duration and WAL position';
COMMENT ON ROUTINE @extschema@.move_fence_statements(pg_catalog.int8, pg_catalog.text) IS
'move_fence_statements(fence, action => revoke writes|grant writes|grant all) -> the REVOKE or GRANT statements of a fence of the caller''s, built from its rows with every name quoted';
COMMENT ON ROUTINE @extschema@.move_target_table(pg_catalog.text) IS
'move_target_table(t) -> (decision, current, advice): absent, keep (an empty plain table of the caller''s own with nothing that runs code) or refuse, for what is at a moved table''s name on the target (doc/move.md)';
COMMENT ON ROUTINE @extschema@.move_check(pg_catalog.text, pg_catalog.text[]) IS
'move_check(side => source|target, tables) -> (item, current, advice): one row per prerequisite of a move that this server fails, with what to change (doc/move.md)';
COMMENT ON ROUTINE @extschema@.move_schema(pg_catalog.text[]) IS
'move_schema(tables) -> (ordinal, kind, object, statement): the DDL that makes the tables on another server as they are here (sequences, columns, constraints, indexes, foreign keys between them)';

-- version schemas (doc/versions.md)
COMMENT ON ROUTINE @extschema@.rename_column_refs(pg_catalog.text, pg_catalog.text, pg_catalog.text) IS
'rename_column_refs(expr, old, new): expr with each reference to column old renamed to new as the parser reads it, every other byte kept (doc/sql.md)';
COMMENT ON ROUTINE @extschema@.version_create(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text) IS
'version_create(version, if_exists => error|reuse, migration, phase): makes schema "version" (or adopts an empty one) and records it as an application version whose views version_view makes';
COMMENT ON ROUTINE @extschema@.version_view(pg_catalog.text, pg_catalog.regclass, pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text) IS
'version_view(version, relation, columns => ''*'' | ''col, col AS new_name, expr AS name'', view_name, if_exists, migration, phase, search_path): a simple security_invoker view of the table in the version''s schema, with the table''s grants; returns it';
COMMENT ON ROUTINE @extschema@.version_drop(pg_catalog.text, pg_catalog.bool, pg_catalog.bool, pg_catalog.text) IS
'version_drop(version, force, if_exists, migration): drops the views pg_shift made in the version (only those of migration, if given) and the schema if pg_shift made it and it is empty; refused while sessions visibly use it, unless force';
