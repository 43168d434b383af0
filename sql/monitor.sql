-- ---------------------------------------------------------------------------
-- shift_monitor: reads every migration's status and progress, runs nothing.
--
-- shift_operator may run migrations, and sees only its own (the policies of
-- each control table).  A dashboard, an on-call engineer or a monitoring
-- agent wants all of them and no power: GRANT shift_monitor TO someone.  It
-- reads the control tables and the views over them, every row (the
-- policies below), and executes none of pg_shift's functions but those
-- PUBLIC may (version(), missing_privileges(), the lint functions).  What it
-- reads includes what the jobs and syncs store: their SQL, their
-- checkpoints (key values of the tables they walk) and error messages
-- (which may quote a row's values), as pg_monitor reads the queries of
-- pg_stat_activity: grant it to whom may see that.
-- ---------------------------------------------------------------------------

DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'shift_monitor') THEN
    CREATE ROLE shift_monitor NOLOGIN;
  END IF;
END
$$;

-- Policies are permissive: a member of shift_monitor sees every row, and
-- its own as the other policies already let it.  Phases and events follow
-- the migrations it sees.
CREATE POLICY visible_to_monitor ON @extschema@.migration FOR SELECT TO shift_monitor USING (true);
CREATE POLICY visible_to_monitor ON @extschema@.backfill FOR SELECT TO shift_monitor USING (true);
CREATE POLICY visible_to_monitor ON @extschema@.backfill_batch FOR SELECT TO shift_monitor USING (true);
CREATE POLICY visible_to_monitor ON @extschema@.sync FOR SELECT TO shift_monitor USING (true);
