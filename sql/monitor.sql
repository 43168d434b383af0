-- ---------------------------------------------------------------------------
-- shift_monitor: reads every migration's status and progress, runs nothing.
--
-- shift_operator may run migrations, and sees only its own (the policies of
-- each control table).  A dashboard, an on-call engineer or a monitoring
-- agent wants all of them and no power: GRANT shift_monitor TO someone.  It
-- reads the control tables and the views over them, every row (the
-- policies below), and executes no function of pg_shift's but version().
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
