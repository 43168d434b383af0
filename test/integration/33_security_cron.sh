#!/usr/bin/env bash
# A job scheduled by pg_cron runs as the job's owner, like every other run,
# and only a role that may act for the owner can schedule it: pg_cron runs a
# command as the role that scheduled it, so a job another role made is
# refused, and a superuser's schedule of an operator's job runs the
# operator's SQL as the operator, never as the superuser.  (The rest of the
# security suite is pg_regress: test/sql/security.sql.)
# It waits for pg_cron's next minute: test/harness.sh starts it first and runs
# the other files beside it.
# harness: background
. "$(dirname "$0")/lib.sh"

new_db seccron
for r in regress_cron_owner regress_cron_op; do
  psql -X -q -d postgres -c "DROP ROLE IF EXISTS $r" 2>/dev/null
  psql -X -q -d postgres -c "CREATE ROLE $r LOGIN IN ROLE shift_operator" >/dev/null
done
trap 'psql -X -q -d postgres -c "SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname LIKE '"'"'pgshift-sec-%'"'"'" >/dev/null 2>&1;
      cleanup; psql -X -q -d postgres -c "DROP ROLE IF EXISTS regress_cron_owner, regress_cron_op" 2>/dev/null' EXIT
q "CREATE SCHEMA app AUTHORIZATION regress_cron_owner;
   CREATE SCHEMA open; GRANT USAGE, CREATE ON SCHEMA open TO PUBLIC;
   CREATE TABLE open.pwned (who name, superuser bool, how text);
   GRANT SELECT, INSERT ON open.pwned TO PUBLIC"
psql -X -q -d "$DB" -U regress_cron_op -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
CREATE FUNCTION open.trap(how text) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO open.pwned SELECT current_user, rolsuper, how FROM pg_roles WHERE rolname = current_user;
  RETURN 1;
END $$;
CREATE TABLE open.mine (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
INSERT INTO open.mine SELECT g, 0 FROM generate_series(1, 20) g;
SELECT shift.backfill_create('op_job', 'open.mine', set => 'n = open.trap(''cron'')');
SQL
psql -X -q -d "$DB" -U regress_cron_owner -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
CREATE TABLE app.t (id int PRIMARY KEY, n int NOT NULL DEFAULT 0, who name);
INSERT INTO app.t SELECT g, 0 FROM generate_series(1, 30) g;
SELECT shift.backfill_create('owner_job', 'app.t', set => 'n = n + 1, who = current_user');
SQL

# three schedules for the same minute (pg_cron 1.4 has no finer one)
psql -X -q -d postgres -c "CREATE EXTENSION IF NOT EXISTS pg_cron" >/dev/null
sched() {  # NAME COMMAND USER
  psql -X -A -t -q -d postgres -c "SELECT cron.schedule_in_database('pgshift-sec-$1', '* * * * *', \$\$$2\$\$, '$DB', '$3')"
}
j_theft=$(sched theft "CALL shift.backfill_run('owner_job')" regress_cron_op)
j_owner=$(sched owner "CALL shift.backfill_run('owner_job')" regress_cron_owner)
j_super=$(sched super "CALL shift.backfill_run('op_job')" postgres)
expect_eq "pg_cron accepted the three schedules" "$([ -n "$j_theft" ] && [ -n "$j_owner" ] && [ -n "$j_super" ] && echo yes)" yes

cron_done() {  # JOBID: t once a run of it has ended
  psql -X -A -t -q -d postgres -c "SELECT EXISTS (SELECT FROM cron.job_run_details
                                                  WHERE jobid = $1 AND status IN ('succeeded', 'failed'))"
}
for i in $(seq 1 150); do
  [ "$(cron_done "$j_theft")" = t ] && [ "$(cron_done "$j_owner")" = t ] && [ "$(cron_done "$j_super")" = t ] && break
  sleep 1
done
psql -X -q -d postgres -c "SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname LIKE 'pgshift-sec-%'" >/dev/null
run() { psql -X -A -t -q -d postgres -c "SELECT status || ': ' || coalesce(return_message, '')
                                          FROM cron.job_run_details WHERE jobid = $1 ORDER BY runid LIMIT 1"; }

theft=$(run "$j_theft")
expect_in "an operator's schedule of another role's job fails" "$theft" "failed: ERROR:  backfill job \"owner_job\" belongs to role \"regress_cron_owner\""
expect_in "the owner's schedule of its job succeeds" "$(run "$j_owner")" "succeeded"
expect_eq "its job ran as the owner, every row once" "$(q "SELECT who, n, count(*) FROM app.t GROUP BY 1, 2")" "regress_cron_owner|1|30"
expect_in "a superuser's schedule of an operator's job succeeds" "$(run "$j_super")" "succeeded"
expect_eq "and ran the operator's SQL as the operator, never as the superuser" \
  "$(q "SELECT who, superuser, count(*) FROM open.pwned GROUP BY 1, 2 ORDER BY 1")" "regress_cron_op|f|20"
