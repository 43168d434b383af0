-- ---------------------------------------------------------------------------
-- What pgshift reads.  The runner reads no control table's columns itself:
-- it reads the public views (shift.status, shift.backfill_progress,
-- shift.sync_status, shift.history) and the views below, made for it, so
-- that the tables can change shape while these keep theirs.  It writes only
-- through the state functions (sql/bookkeeping.sql).  The views run as whoever
-- reads them (security_invoker): each role sees its own migrations, as in
-- the tables beneath.
-- ---------------------------------------------------------------------------

-- shift.lease: one row per migration a runner holds the lease of (from
-- shift.migration_begin to shift.migration_end): the runner's host and
-- process, its two sessions, since when, and how long since its last
-- heartbeat.  pgshift reads it to say who holds a migration's lock, and to
-- say it takes over from a runner whose sessions are gone.
CREATE VIEW @extschema@.lease WITH (security_invoker = true) AS
SELECT m.name AS migration,
       m.lease_host AS host,
       m.lease_runner_pid AS runner_pid,
       m.lease_work_pid AS work_pid,
       m.lease_control_pid AS control_pid,
       m.lease_since AS since,
       pg_catalog.now() - m.lease_heartbeat AS heartbeat_age
  FROM @extschema@.migration m
 WHERE m.lease_control_pid IS NOT NULL;
COMMENT ON VIEW @extschema@.lease IS
  'the lease of each migration a runner is working on: host, runner and session pids, since, heartbeat age';

-- shift.phase_status: every phase of every migration, in order, with its
-- recorded state (status, needs_cleanup: its down must run before it runs
-- again), attempts, timings, rows and last error.  pgshift reads it for
-- `pgshift status NAME`, for the state `pgshift plan` shows, and to refuse
-- a rollback past a point of no return before it records anything.
CREATE VIEW @extschema@.phase_status WITH (security_invoker = true) AS
SELECT p.migration,
       p.ordinal,
       p.name,
       p.status,
       p.reversible,
       p.has_verify,
       p.needs_cleanup,
       p.attempts,
       p.started_at,
       p.finished_at,
       p.duration,
       p.rows_affected,
       p.error_message,
       p.error_sqlstate,
       p.memo,
       p.memo_by
  FROM @extschema@.phase p;
COMMENT ON VIEW @extschema@.phase_status IS
  'every phase of every migration with its recorded state, attempts, timings and last error';

-- shift.backfill_batches: every committed batch of every backfill job, with
-- the migration and phase of its job (pgshift report draws them).
CREATE VIEW @extschema@.backfill_batches WITH (security_invoker = true) AS
SELECT bb.job,
       b.migration,
       b.phase,
       bb.batch,
       bb.at,
       bb.keys,
       bb.rows,
       bb.ms,
       coalesce(bb.wall_ms, bb.ms) AS wall_ms,
       bb.batch_size,
       bb.retries
  FROM @extschema@.backfill_batch bb
  JOIN @extschema@.backfill b ON b.name OPERATOR(pg_catalog.=) bb.job;
COMMENT ON VIEW @extschema@.backfill_batches IS
  'every committed batch of every backfill job: when, keys, rows, ms working, wall_ms by the clock (rests included), size, retries';

GRANT SELECT ON @extschema@.lease, @extschema@.phase_status, @extschema@.backfill_batches TO shift_operator;
