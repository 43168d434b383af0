#!/usr/bin/env bash
# Backfill with the world around it: a real pg_cron (preloaded by the harness)
# finishes a job over several scheduled runs, and a real streaming standby
# whose replay is paused makes a job wait until it catches up.
# It waits for pg_cron's next minute: test/harness.sh starts it first and runs
# the other files beside it.
# harness: background
. "$(dirname "$0")/lib.sh"

new_db bfcron
q "CREATE TABLE c (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
   INSERT INTO c SELECT g, 0 FROM generate_series(1, 1500) g"
q "SELECT shift.backfill_create('cronjob', 'c', set => 'n = n + 1', batch_min => 500, batch_max => 500)" >/dev/null

# ---- the README's recipe, at minute granularity (pg_cron 1.4): 3 batches, 2 a run
psql -X -q -d postgres -c "CREATE EXTENSION IF NOT EXISTS pg_cron" >/dev/null
jobid=$(psql -X -A -t -q -d postgres -c "SELECT cron.schedule_in_database('pgshift-it-backfill', '* * * * *',
          \$\$CALL shift.backfill_run('cronjob', max_runtime => '50 seconds', max_batches => 2)\$\$, '$DB')")
expect_eq "pg_cron accepted the schedule" "$([ -n "$jobid" ] && echo yes)" yes
wait_for "pg_cron finishes the job" 150 "SELECT state = 'done' FROM shift.backfill WHERE name = 'cronjob'"
runs=$(psql -X -A -t -q -d postgres -c "SELECT count(*) FROM cron.job_run_details WHERE jobid = $jobid AND status = 'succeeded'")
psql -X -q -d postgres -c "SELECT cron.unschedule($jobid)" >/dev/null
expect_eq "it took several scheduled runs" "$(( runs >= 2 ))" 1
expect_eq "every row exactly once" "$(q "SELECT count(*) FROM c WHERE n <> 1")" 0
expect_eq "in batches of the size asked" "$(q "SELECT count(*), max(keys) FROM shift.backfill_batch WHERE job = 'cronjob'")" "3|500"

# ---- a finished job ends its own schedule (schedule =>): in pg_cron's own
# database it removes it; elsewhere it says where and how
q "CREATE TABLE c2 (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
   INSERT INTO c2 SELECT g, 0 FROM generate_series(1, 300) g"
q "SELECT shift.backfill_create('other_db', 'c2', set => 'n = n + 1')" >/dev/null
msg=$(PGOPTIONS="-c client_min_messages=notice" psql -X -q -d "$DB" -c "CALL shift.backfill_run('other_db', schedule => 'pgshift-it-other')" 2>&1)
expect_in "a job done in another database than pg_cron's says how to end its schedule" "$msg" \
  "Remove it in database \"postgres\" with SELECT cron.unschedule('pgshift-it-other');"
expect_eq "and the progress view names the schedule" \
  "$(q "SELECT state || ' ' || schedule FROM shift.backfill_progress WHERE name = 'other_db'")" "done pgshift-it-other"
psql -X -q -d postgres -c "DROP EXTENSION IF EXISTS pg_shift; CREATE EXTENSION pg_shift;
  CREATE TABLE pgshift_it_cron (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
  INSERT INTO pgshift_it_cron SELECT g, 0 FROM generate_series(1, 300) g;
  SELECT shift.backfill_create('same_db', 'pgshift_it_cron', set => 'n = n + 1');
  SELECT shift.backfill_create('cancelled', 'pgshift_it_cron', set => 'n = n');
  SELECT shift.backfill_cancel('cancelled');
  SELECT cron.schedule('pgshift-it-same', '0 0 1 1 *', 'SELECT 1');
  SELECT cron.schedule('pgshift-it-cancelled', '0 0 1 1 *', 'SELECT 1');" >/dev/null
msg=$(PGOPTIONS="-c client_min_messages=notice" psql -X -q -d postgres -c "CALL shift.backfill_run('same_db', schedule => 'pgshift-it-same')" 2>&1)
expect_in "in pg_cron's database a finished job removes its schedule" "$msg" "its pg_cron schedule \"pgshift-it-same\" was removed"
expect_eq "it is gone from cron.job" "$(psql -X -A -t -q -d postgres -c "SELECT count(*) FROM cron.job WHERE jobname = 'pgshift-it-same'")" 0
psql -X -q -d postgres -c "CALL shift.backfill_run('cancelled', schedule => 'pgshift-it-cancelled')" >/dev/null 2>&1
rc=$?
expect_eq "a cancelled job's run removes its schedule instead of failing every minute" \
  "$rc $(psql -X -A -t -q -d postgres -c "SELECT count(*) FROM cron.job WHERE jobname = 'pgshift-it-cancelled'")" "0 0"

# ---- a cut-over refuses while a pg_cron schedule runs an unfinished job on
# its tables (in pg_cron's database, where cron.job is seen), naming it and
# how to unschedule it; dropping a job removes the schedule it recorded
pc() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d postgres -c "$1"; }
pc "CREATE TABLE pgshift_it_co (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
    CREATE TABLE pgshift_it_co2 (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
    INSERT INTO pgshift_it_co SELECT g, 0 FROM generate_series(1, 10) g;
    SELECT shift.sync_create('pgshift_it_co', 'pgshift_it_co', \"into\" => 'pgshift_it_co2');
    SELECT shift.backfill_create('co_copy', 'pgshift_it_co', \"into\" => 'pgshift_it_co2', on_conflict => 'nothing')" >/dev/null
cronid=$(pc "SELECT cron.schedule('pgshift-it-copy', '0 0 1 1 *', \$\$CALL shift.backfill_run('co_copy', max_runtime => '50 seconds')\$\$)")
err=$(psql -X -q -d postgres -c "SELECT * FROM shift.cutover('pgshift_it_co')" 2>&1)
expect_in "the cut-over names the pg_cron schedule that runs an unfinished job on its table" "$err" \
  "backfill job \"co_copy\" of role postgres (pending, run by pg_cron job $cronid \"pgshift-it-copy\" of role postgres)"
expect_in "and says how to unschedule it" "$err" \
  "To remove the pg_cron schedules that run it: SELECT cron.unschedule($cronid);"
expect_eq "nothing was renamed" "$(pc "SELECT to_regclass('pgshift_it_co_archive') IS NULL")" t
pc "SELECT cron.unschedule($cronid)" >/dev/null
pc "CALL shift.backfill_run('co_copy', max_batches => 0, schedule => 'pgshift-it-rec')" >/dev/null 2>&1
pc "SELECT cron.schedule('pgshift-it-rec', '0 0 1 1 *', \$\$CALL shift.backfill_run('co_copy', schedule => 'pgshift-it-rec')\$\$)" >/dev/null
err=$(psql -X -q -d postgres -c "SELECT * FROM shift.cutover('pgshift_it_co')" 2>&1)
expect_in "a schedule recorded by schedule => is named too" "$err" "\"pgshift-it-rec\" of role postgres)"
# another role's schedule of the same name is not this job's: a superuser's
# drop of the job must leave it
pc "DROP ROLE IF EXISTS pgshift_it_other; CREATE ROLE pgshift_it_other;
    GRANT USAGE ON SCHEMA cron TO pgshift_it_other;
    SET ROLE pgshift_it_other; SELECT cron.schedule('pgshift-it-rec', '0 0 1 1 *', 'SELECT 1');
    SELECT cron.schedule('pgshift-it-other-run', '0 0 1 1 *', \$\$CALL shift.backfill_run('co_copy')\$\$); RESET ROLE" >/dev/null
err=$(psql -X -q -d postgres -c "SELECT * FROM shift.cutover('pgshift_it_co')" 2>&1)
expect_in "with another role's schedules of that name or command, the cut-over names the job owner's" "$err" \
  "\"pgshift-it-rec\" of role postgres)"
expect_not_in "and neither names nor offers to unschedule another role's pg_cron jobs" "$err" "pgshift_it_other"
expect_eq "exactly one unschedule line, for the job owner's schedule" \
  "$(grep -o 'cron.unschedule([0-9]*)' <<<"$err" | wc -l)" 1
msg=$(PGOPTIONS="-c client_min_messages=notice" psql -X -q -d postgres -c "SELECT shift.backfill_drop('co_copy')" 2>&1)
expect_in "dropping the job removes the schedule it recorded" "$msg" \
  "backfill job \"co_copy\" is dropped: its pg_cron schedule \"pgshift-it-rec\" was removed"
expect_eq "it is gone from cron.job, and the other role's schedule of that name is still there" \
  "$(pc "SELECT string_agg(username, ',') FROM cron.job WHERE jobname = 'pgshift-it-rec'")" pgshift_it_other
pc "SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname IN ('pgshift-it-rec', 'pgshift-it-other-run'); REVOKE USAGE ON SCHEMA cron FROM pgshift_it_other; DROP ROLE pgshift_it_other" >/dev/null
pc "INSERT INTO pgshift_it_co2 SELECT * FROM pgshift_it_co" >/dev/null      # the backfill
expect_eq "and the cut-over goes through" "$(pc "SELECT archived FROM shift.cutover('pgshift_it_co')")" \
  "public.pgshift_it_co_archive"
pc "SELECT shift.sync_drop('pgshift_it_co'); DROP TABLE pgshift_it_co, pgshift_it_co_archive" >/dev/null
# the down of the phase that made a job drops it, and the schedule it recorded
psql -X -q -v ON_ERROR_STOP=1 -d postgres >"$WORK/down.out" 2>&1 <<'SQL'
SELECT shift.try_lock('pgshift_it_m');
SELECT count(*) FROM shift.migration_begin('pgshift_it_m', repeat('a', 64),
                                           '[{"name": "fill", "reversible": true}]', 'run', pg_backend_pid());
SELECT shift.phase_start('pgshift_it_m', 'fill');
CREATE TABLE pgshift_it_m (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
SELECT shift.backfill_create('pgshift_it_m:fill', 'pgshift_it_m', set => 'n = 1',
                             migration => 'pgshift_it_m', phase => 'fill');
CALL shift.backfill_run('pgshift_it_m:fill', max_batches => 0, schedule => 'pgshift-it-m');
SELECT cron.schedule('pgshift-it-m', '0 0 1 1 *', $$CALL shift.backfill_run('pgshift_it_m:fill')$$);
SELECT shift.phase_failed('pgshift_it_m', 'fill', 'boom', NULL, false);
SET client_min_messages = notice;
SELECT shift.phase_cleaned('pgshift_it_m', 'fill');
SQL
rc=$?
expect_eq "a phase made a job with a schedule, failed, and its down was recorded" "$rc" 0
[ "$rc" -eq 0 ] || sed 's/^/# /' "$WORK/down.out"
expect_in "the down removes the job's schedule" "$(cat "$WORK/down.out")" \
  "backfill job \"pgshift_it_m:fill\" is dropped: its pg_cron schedule \"pgshift-it-m\" was removed"
expect_eq "from cron.job, with the job" \
  "$(pc "SELECT (SELECT count(*) FROM cron.job WHERE jobname = 'pgshift-it-m') || ' ' || count(*) FROM shift.backfill WHERE name = 'pgshift_it_m:fill'")" \
  "0 0"
# in another database than pg_cron's, dropping a job says where and how
msg=$(PGOPTIONS="-c client_min_messages=notice" psql -X -q -d "$DB" -c "SELECT shift.backfill_drop('other_db')" 2>&1)
expect_in "elsewhere, dropping a job says how to end its schedule in pg_cron's database" "$msg" \
  "Remove it in database \"postgres\" with SELECT cron.unschedule('pgshift-it-other');"
psql -X -q -d postgres -c "DROP TABLE pgshift_it_cron; DROP EXTENSION pg_shift" >/dev/null

# ---- replication lag: a standby whose replay is paused holds the job back
SB=$(mktemp -d /tmp/pgshift-standby.XXXXXX)
chmod 700 "$SB"
[ "$(id -u)" -ne 0 ] || chown postgres: "$SB"
SBPORT=$((PGPORT + 1))
SLOT=pgshift_it_standby_$$
stop_standby() {
  as_owner "$PGSHIFT_PGBIN/pg_ctl" -D "$SB/data" -m immediate -w stop >/dev/null 2>&1; rm -rf "$SB"
  q "SELECT pg_drop_replication_slot('$SLOT') FROM pg_replication_slots WHERE slot_name = '$SLOT'" >/dev/null
}
trap 'stop_standby; cleanup' EXIT
# a slot of its own, holding WAL from before the backup starts: pg_basebackup's
# temporary slot was ended by a checkpoint that other files' CREATE and DROP
# DATABASE requested while they wrote much WAL ("terminating process ... to
# release replication slot")
q "SELECT pg_create_physical_replication_slot('$SLOT', true)" >/dev/null
as_owner "$PGSHIFT_PGBIN/pg_basebackup" -h "$PGHOST" -p "$PGPORT" -U postgres -D "$SB/data" -R -X stream \
  --slot "$SLOT" >"$WORK/basebackup.log" 2>&1 || { not_ok "pg_basebackup made a standby" "$(cat "$WORK/basebackup.log")"; exit 1; }
cat >>"$SB/data/postgresql.conf" <<CONF
port = $SBPORT
unix_socket_directories = '$SB'
shared_preload_libraries = ''
wal_receiver_status_interval = 1s
CONF
as_owner "$PGSHIFT_PGBIN/pg_ctl" -D "$SB/data" -l "$SB/log" -w -t 60 start >/dev/null
wait_for "the standby streams" 30 "SELECT EXISTS (SELECT FROM pg_stat_replication WHERE state = 'streaming')"

q "CREATE TABLE l (id int PRIMARY KEY, n int NOT NULL DEFAULT 0, pad text);
   INSERT INTO l SELECT g, 0, repeat('x', 200) FROM generate_series(1, 30000) g"
q "SELECT shift.backfill_create('lagged', 'l', set => 'n = n + 1', batch_min => 1000, batch_max => 1000,
                                max_lag => '1 second', sleep_ratio => 20)" >/dev/null
q "CALL shift.backfill_run('lagged', max_batches => 3)"
# paused only now: with replay paused first, the lag could pass max_lag before
# those three batches ran, and that run would wait for a replay nobody resumes
psql -X -q -h "$SB" -p "$SBPORT" -d "$DB" -c "SELECT pg_wal_replay_pause()" >/dev/null
psql -X -q -d "$DB" -c "CALL shift.backfill_run('lagged')" >"$WORK/lagged.out" 2>&1 &
runner=$!
wait_for "the job waits on the standby's lag" 30 \
  "SELECT throttled LIKE 'replication replay lag % is over max_lag 1.0 s' FROM shift.backfill WHERE name = 'lagged'"
held=$(q "SELECT keys_done FROM shift.backfill WHERE name = 'lagged'")
sleep 2
expect_eq "while it waits, no batch runs" "$(q "SELECT keys_done FROM shift.backfill WHERE name = 'lagged'")" "$held"
expect_eq "the progress view says why" \
  "$(q "SELECT state || ': ' || (throttled LIKE 'replication replay lag%') FROM shift.backfill_progress WHERE name = 'lagged'")" "running: true"
q "SELECT shift.backfill_set('lagged', sleep_ratio => 0)" >/dev/null
psql -X -q -h "$SB" -p "$SBPORT" -d "$DB" -c "SELECT pg_wal_replay_resume()" >/dev/null
wait $runner
expect_eq "once the standby caught up, the job finished" "$(q "SELECT state, throttled IS NULL FROM shift.backfill WHERE name = 'lagged'")" "done|t"
expect_eq "every row exactly once" "$(q "SELECT count(*) FROM l WHERE n <> 1")" 0
