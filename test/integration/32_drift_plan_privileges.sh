#!/usr/bin/env bash
# Drift refusal, plan changing nothing (catalog compared before and after),
# plan formats, the privilege check for a role without shift_operator, and
# COPY refused without hanging.
. "$(dirname "$0")/lib.sh"

new_db drift
f=$(mig drifty <<'LUA'
return migration { name = "drifty", phases = {
  { name = "make", up = function(db) db:exec("CREATE TABLE drifty_t (x int)") end,
    down = function(db) db:exec("DROP TABLE drifty_t") end },
} }
LUA
)
pgshift --dsn "dbname=$DB" run "$f"
expect_rc "drifty runs" 0
echo "-- an edit after the migration completed" >>"$f"
pgshift --dsn "dbname=$DB" run "$f"
expect_rc "a completed migration whose script changed is refused" 1
expect_first_line "it says so" "migration \"drifty\" was completed with a different script (SQLSTATE 55000)"
expect_in "with both hashes" "$ERR" "It ran with sha256 "
expect_in "and the way out" "$ERR" "--allow-drift"
expect_eq "the refusal changed nothing" "$(q "SELECT status || ' ' || (lease_control_pid IS NULL) FROM shift.migration WHERE name = 'drifty'")" "done true"
pgshift --dsn "dbname=$DB" run "$f" --allow-drift
expect_rc "--allow-drift accepts it" 0
expect_in "and logs it" "$(events drifty)" "drift_allowed run_started run_finished"
pgshift --dsn "dbname=$DB" run "$f"
expect_rc "the accepted script is the new reference" 0
echo "-- a fix to the down" >>"$f"
pgshift --dsn "dbname=$DB" rollback "$f"
expect_rc "rollback with a changed script is refused too" 1
pgshift --dsn "dbname=$DB" rollback "$f" --allow-drift
expect_rc "rollback --allow-drift accepts it" 0
expect_eq "and rolled back" "$(phase_status drifty)" "make=rolled_back"

# ---- the lock of a migration in another database is not ours
DB_A=$DB
new_db drift_other
DB=$DB_A
psql -X -q -d "it_drift_other" -c "SELECT shift.try_lock('drifty'), pg_sleep(5)" >/dev/null &
other=$!
# (locks of this database: files in the background hold others)
for _ in $(seq 1 50); do
  [ "$(psql -X -A -t -d it_drift_other -c "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
                  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")" = 1 ] && break
  sleep 0.1
done
expect_eq "lock_holder sees only this database's locks" "$(q "SELECT count(*) FROM shift.lock_holder('drifty')")" 0
pgshift --dsn "dbname=$DB" run "$f" --allow-drift
expect_rc "a runner here is not blocked by a lock in another database" 0
kill "$other" 2>/dev/null; wait "$other" 2>/dev/null

# ---- plan changes nothing
f=$(mig planned <<'LUA'
return migration { name = "planned", description = "a migration to plan", phases = {
  { name = "expand", description = "add a table",
    up = function(db)
      db:ddl("CREATE TABLE planned_t (id bigint PRIMARY KEY, v text)")
      db:exec("INSERT INTO planned_t VALUES ($1, $2)", 1, "one")
    end,
    down = function(db) db:exec("DROP TABLE planned_t") end },
  { name = "contract", up = function(db) db:exec("ALTER TABLE planned_t DROP COLUMN v") end,
    verify = function(db) assert(db:value("SELECT count(*) FROM planned_t") == 1) end },
} }
LUA
)
snapshot() {
  q "SELECT md5(string_agg(x, '|' ORDER BY x)) FROM (
       SELECT format('%s.%s %s', relnamespace::regnamespace, relname, relkind) x FROM pg_class
       UNION ALL SELECT format('%s.%s', attrelid, attname) FROM pg_attribute WHERE attnum > 0
       UNION ALL SELECT format('m %s', row_to_json(m)) FROM shift.migration m
       UNION ALL SELECT format('p %s', row_to_json(p)) FROM shift.phase p
       UNION ALL SELECT format('e %s', count(*)) FROM shift.event) s"
}
before=$(snapshot)
pgshift --dsn "dbname=$DB" plan "$f"
expect_rc "plan (text)" 0
expect_in "shows the SQL with its parameters" "$OUT" "INSERT INTO planned_t VALUES (\$1, \$2);  -- \$1 = 1, \$2 = \"one\""
expect_in "shows db:ddl's lock settings" "$OUT" "-- lock_timeout 2s, up to 5 retries"
expect_in "marks the point of no return" "$OUT" "[2/2] contract  (POINT OF NO RETURN: no down)"
expect_in "shows the verify gate" "$OUT" "SELECT count(*) FROM planned_t;"
expect_in "says it has not run" "$OUT" "state: not run yet"
pgshift --dsn "dbname=$DB" plan --format markdown "$f"
expect_rc "plan (markdown)" 0
expect_in "markdown has an overview" "$OUT" "## Overview"
expect_in "phases with goal and steps" "$OUT" "**Goal:** add a table"
expect_in "the rollback of each phase" "$OUT" "**Rollback:** none. This phase is a point of no return"
expect_in "validation" "$OUT" "## Validation"
expect_in "success criteria" "$OUT" "## Success criteria"
pgshift --dsn "dbname=$DB" plan --format json "$f"
expect_rc "plan (json)" 0
expect_eq "json names the migration" "$(json_field "$OUT" '{migration}')" planned
expect_eq "json lists the steps" "$(json_field "$OUT" '{phases,0,up,statements,1,params,1}')" '"one"'
expect_eq "json lists points of no return" "$(json_field "$OUT" '{points_of_no_return,0}')" contract
expect_eq "a statement without parameters has an empty array" "$(json_field "$OUT" '{phases,1,up,statements,0,params}')" "[]"
after=$(snapshot)
expect_eq "plan changed nothing in the catalog or shift.*" "$after" "$before"
pgshift --dsn "host=/nonexistent port=1" plan --offline "$f"
expect_rc "plan --offline needs no server" 0
expect_in "and says the state is unknown" "$OUT" "state: unknown (offline)"
pgshift --dsn "dbname=$DB" plan --offline --lock-wait 3 "$f"
expect_rc "an option another command takes is refused" 2
expect_first_line "naming it" "plan does not take --lock-wait"

# ---- a role without shift_operator is refused, with the grant to give
psql -X -q -d "$DB" -c "DROP ROLE IF EXISTS regress_pgshift_app; CREATE ROLE regress_pgshift_app LOGIN" 2>/dev/null
q "CREATE TABLE app_t (x int); GRANT ALL ON app_t TO regress_pgshift_app"
f=$(mig app <<'LUA'
return migration { name = "app", phases = {
  { name = "fill", up = function(db) db:exec("INSERT INTO app_t VALUES (1)") end } } }
LUA
)
pgshift --dsn "dbname=$DB user=regress_pgshift_app" run "$f"
expect_rc "a role without privileges on shift.* is refused" 2
expect_first_line "naming the role and database" "role \"regress_pgshift_app\" may not run migrations in database \"$DB\""
expect_in "listing what it lacks" "$ERR" "missing: EXECUTE on function shift."
expect_in "with the grant to give" "$ERR" "hint: GRANT shift_operator TO regress_pgshift_app;"
expect_eq "nothing ran" "$(q "SELECT count(*) FROM app_t")" 0
q "GRANT shift_operator TO regress_pgshift_app"
pgshift --dsn "dbname=$DB user=regress_pgshift_app" run "$f"
expect_rc "with shift_operator it runs" 0
expect_eq "recorded as applied by that role" "$(q "SELECT applied_by FROM shift.migration WHERE name = 'app'")" regress_pgshift_app
f=$(mig app2 <<'LUA'
return migration { name = "app2", phases = {
  { name = "steal", up = function(db) db:exec("CREATE TABLE pg_catalog.nope (x int)") end } } }
LUA
)
pgshift --dsn "dbname=$DB user=regress_pgshift_app" run "$f"
expect_rc "its SQL runs with its own privileges" 1
expect_first_line "PostgreSQL refuses what the role may not do" "permission denied"
q "REVOKE shift_operator FROM regress_pgshift_app; DROP OWNED BY regress_pgshift_app"
psql -X -q -d "$DB" -c "DROP ROLE regress_pgshift_app" 2>/dev/null

# ---- COPY to or from the client is refused, never hangs
q "CREATE TABLE copy_t (x int)"
f=$(mig copyout <<'LUA'
return migration { name = "copyout", phases = {
  { name = "c", up = function(db) db:exec("COPY (SELECT 1) TO STDOUT; COPY (SELECT 2) TO STDOUT") end } } }
LUA
)
RC=0; OUT=$(timeout 30 "$PGSHIFT" --dsn "dbname=$DB" run "$f" 2>&1) || RC=$?
expect_rc "two COPY TO STDOUT in one string are refused, without hanging" 1
expect_in "with the reason" "$OUT" "COPY to or from the client is not supported in a migration (SQLSTATE 0A000)"
f=$(mig copyin <<'LUA'
return migration { name = "copyin", phases = {
  { name = "c", up = function(db) db:exec("INSERT INTO copy_t VALUES (1); COPY copy_t FROM STDIN") end } } }
LUA
)
RC=0; OUT=$(timeout 30 "$PGSHIFT" --dsn "dbname=$DB" run "$f" 2>&1) || RC=$?
expect_rc "COPY FROM STDIN is refused" 1
expect_eq "and the string it was part of rolled back" "$(q "SELECT count(*) FROM copy_t")" 0
