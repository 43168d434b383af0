#!/usr/bin/env bash
# The phase engine: a full run recorded in shift.*, failure with automatic
# down, rollback to a phase, refusal at a point of no return, verify gates,
# transactions left open, db:transaction, --to.
. "$(dirname "$0")/lib.sh"

new_db phases
q "CREATE TABLE applied (phase text, at timestamptz DEFAULT now())"

# Three reversible phases that leave visible traces; FAIL_AT makes one fail.
f=$(mig three <<'LUA'
local fail_at = os.getenv("FAIL_AT")
local function step(name)
  return {
    name = name,
    up = function(db)
      db:exec("INSERT INTO applied (phase) VALUES ($1)", name)
      db:exec("CREATE TABLE t_" .. name .. " (x int)")
      if fail_at == name then
        db:exec("SELECT 1 / 0")
      end
    end,
    down = function(db)
      db:exec("DROP TABLE IF EXISTS t_" .. name)
      db:exec("DELETE FROM applied WHERE phase = $1", name)
    end,
  }
end
return migration { name = "three", phases = { step("a"), step("b"), step("c") } }
LUA
)
three=$f

# ---- failure in phase k runs its down, then a retry resumes at k
FAIL_AT=b pgshift --dsn "dbname=$DB" run "$f"
expect_rc "a failing phase fails the run" 1
expect_first_line "the cause is the SQL error" "division by zero (SQLSTATE 22012)"
expect_in "its down ran" "$ERR" "phase 'b' was undone by its down; phases before it stay done."
expect_in "it says how to resume" "$ERR" "To retry after fixing the cause: pgshift run $f"
expect_in "and how to roll back" "$ERR" "To undo the completed phases:    pgshift rollback $f"
expect_eq "phase a done, b failed, c pending" "$(phase_status three)" "a=done b=failed c=pending"
expect_eq "b's table is gone again" "$(q "SELECT to_regclass('t_b') IS NULL")" t
expect_eq "the failure is recorded with its SQLSTATE" \
  "$(q "SELECT error_sqlstate || ' ' || needs_cleanup FROM shift.phase WHERE migration = 'three' AND name = 'b'")" "22012 false"
expect_eq "shift.status says failed at b" \
  "$(q "SELECT status || ' ' || last_error_phase || ' ' || phase FROM shift.status WHERE migration = 'three'")" "failed b 1 of 3"
expect_eq "the events tell the story" "$(events three)" \
  "registered run_started phase_started:a phase_done:a phase_started:b phase_failed:b phase_cleaned_up:b run_finished"

pgshift --dsn "dbname=$DB" run "$f"
expect_rc "the retry completes" 0
expect_in "phase a is not run again" "$OUT" "--> [1/3] a: already done"
expect_eq "each phase applied once" "$(q "SELECT string_agg(phase, ',' ORDER BY at, phase) FROM applied")" "a,b,c"
expect_eq "all done" "$(phase_status three)" "a=done b=done c=done"
expect_eq "b took two attempts" "$(q "SELECT attempts FROM shift.phase WHERE migration = 'three' AND name = 'b'")" 2

pgshift --dsn "dbname=$DB" run "$f"
expect_rc "running a done migration again does nothing" 0
expect_in "and says so" "$OUT" "--> [3/3] c: already done"

# ---- rollback to a phase
pgshift --dsn "dbname=$DB" rollback "$f" --to a
expect_rc "rollback --to a" 0
expect_in "c is rolled back first" "$(echo "$OUT" | grep -- '-->' | head -1)" "[3/3] c (down)"
expect_eq "b and c are rolled back, a stays" "$(phase_status three)" "a=done b=rolled_back c=rolled_back"
expect_eq "their effects are gone" "$(q "SELECT string_agg(phase, ',') FROM applied")" "a"
expect_eq "the migration is partly applied (not pending: a is done)" "$(q "SELECT status FROM shift.migration WHERE name = 'three'")" partial
pgshift --dsn "dbname=$DB" run "$f" --to b
expect_rc "run --to b" 0
expect_eq "it stops after b" "$(phase_status three)" "a=done b=done c=rolled_back"
pgshift --dsn "dbname=$DB" rollback "$f"
expect_rc "a full rollback" 0
expect_eq "everything rolled back" "$(phase_status three)" "a=rolled_back b=rolled_back c=rolled_back"
expect_eq "status rolled_back" "$(q "SELECT status FROM shift.migration WHERE name = 'three'")" rolled_back
expect_eq "no trace left" "$(q "SELECT count(*) FROM applied")" 0
pgshift --dsn "dbname=$DB" rollback "$f" --to nosuch
expect_rc "--to an unknown phase is a usage error" 2
expect_first_line "naming it" "--to nosuch: migration three has no phase of that name"

# ---- a point of no return stops a rollback before it starts
f=$(mig nor <<'LUA'
return migration { name = "nor", phases = {
  { name = "expand", up = function(db) db:exec("CREATE TABLE nor_t (x int)") end,
    down = function(db) db:exec("DROP TABLE nor_t") end },
  { name = "contract", up = function(db) db:exec("INSERT INTO nor_t VALUES (1)") end },
  { name = "tidy", up = function(db) db:exec("CREATE INDEX nor_i ON nor_t (x)") end,
    down = function(db) db:exec("DROP INDEX nor_i") end },
} }
LUA
)
pgshift --dsn "dbname=$DB" run "$f"
expect_rc "nor runs" 0
last_run=$(q "SELECT operation || ' ' || status || ' ' || started_at FROM shift.migration WHERE name = 'nor'")
pgshift --dsn "dbname=$DB" rollback "$f"
expect_rc "rolling back across a phase without down is refused" 1
expect_eq "the refused rollback leaves the record of the last run as it was" \
  "$(q "SELECT operation || ' ' || status || ' ' || started_at FROM shift.migration WHERE name = 'nor'")" "$last_run"
expect_eq "and no rollback is in the history" "$(q "SELECT count(*) FROM shift.event WHERE migration = 'nor' AND kind LIKE 'rollback%'")" 0
expect_first_line "it names the point of no return" \
  "cannot roll back phase 2 'contract' of migration nor: it has no down (a point of no return)"
expect_in "and how far it can go" "$ERR" "pgshift rollback $f --to contract"
expect_eq "nothing was rolled back" "$(phase_status nor)" "expand=done contract=done tidy=done"
expect_eq "the index is still there" "$(q "SELECT to_regclass('nor_i') IS NOT NULL")" t
pgshift --dsn "dbname=$DB" rollback "$f" --to contract
expect_rc "rolling back to the point of no return works" 0
expect_eq "only tidy was rolled back" "$(phase_status nor)" "expand=done contract=done tidy=rolled_back"

# ---- verify gates: after up, and on demand
q "CREATE TABLE vt (x int); INSERT INTO vt VALUES (1)"
f=$(mig gate <<'LUA'
return migration { name = "gate", phases = {
  { name = "check",
    up = function(db) db:exec("INSERT INTO vt VALUES (2)") end,
    down = function(db) db:exec("DELETE FROM vt WHERE x = 2") end,
    verify = function(db)
      local n = db:value("SELECT count(*) FROM vt WHERE x < 0")
      assert(n == 0, n .. " negative rows")
    end },
} }
LUA
)
q "INSERT INTO vt VALUES (-1)"
pgshift --dsn "dbname=$DB" run "$f"
expect_rc "a failing verify gate fails the phase" 1
expect_first_line "with the gate's message and line" "gate.lua:7: 1 negative rows"
expect_eq "the phase's down ran" "$(q "SELECT count(*) FROM vt WHERE x = 2")" 0
expect_in "the failure is the gate's, not the up's" "$ERR" "in the verify of phase 'check'"
expect_eq "recorded as verify_failed, then the phase failed" \
  "$(q "SELECT string_agg(kind, ' ' ORDER BY id) FROM shift.event WHERE migration = 'gate' AND kind IN ('verify_failed', 'phase_failed')")" \
  "verify_failed phase_failed"
q "DELETE FROM vt WHERE x < 0"
pgshift --dsn "dbname=$DB" run "$f"
expect_rc "with the data fixed the gate passes" 0
pgshift --dsn "dbname=$DB" verify "$f"
expect_rc "pgshift verify passes" 0
expect_in "it ran the gate" "$OUT" "[1/1] check (verify)"
q "INSERT INTO vt VALUES (-5)"
pgshift --dsn "dbname=$DB" verify "$f"
expect_rc "pgshift verify finds the broken data" 1
expect_eq "verify results are logged" "$(q "SELECT string_agg(kind, ' ' ORDER BY id) FROM shift.event WHERE migration = 'gate' AND kind IN ('verify_passed', 'verify_failed')")" \
  "verify_failed verify_passed verify_failed"
expect_eq "verify changes no state" "$(q "SELECT status FROM shift.migration WHERE name = 'gate'")" done

# ---- transactions: left open, db:transaction rolls back on error
f=$(mig open <<'LUA'
return migration { name = "open", phases = {
  { name = "leaky", up = function(db)
      db:exec("BEGIN")
      db:exec("CREATE TABLE leaked (x int)")
    end } } }
LUA
)
pgshift --dsn "dbname=$DB" run "$f"
expect_rc "a phase that leaves a transaction open fails" 1
expect_in "and says so" "$ERR" "left a transaction open (BEGIN without COMMIT); pgshift rolled it back"
expect_eq "its work was rolled back" "$(q "SELECT to_regclass('leaked') IS NULL")" t

f=$(mig tx <<'LUA'
return migration { name = "tx", phases = {
  { name = "atomic", up = function(db)
      local n = db:transaction(function(tx)
        tx:exec("CREATE TABLE tx_ok (x int)")
        return tx:exec("INSERT INTO tx_ok SELECT generate_series(1, 3)")
      end)
      assert(n == 3)
      db:transaction(function(tx)
        tx:exec("CREATE TABLE tx_gone (x int)")
        tx:exec("INSERT INTO tx_gone VALUES (1 / 0)")
      end)
    end } } }
LUA
)
pgshift --dsn "dbname=$DB" run "$f"
expect_rc "an error inside db:transaction fails the phase" 1
expect_first_line "pointing at the statement inside the transaction" "tx.lua:10: division by zero (SQLSTATE 22012)"
expect_eq "the committed transaction stays" "$(q "SELECT count(*) FROM tx_ok")" 3
expect_eq "the failed one left nothing" "$(q "SELECT to_regclass('tx_gone') IS NULL")" t

# ---- a phase cannot close the migration's db (it holds the lock)
f=$(mig closer <<'LUA'
return migration { name = "closer", phases = {
  { name = "c", up = function(db) db:exec("SELECT 1"); db:close() end } } }
LUA
)
pgshift --dsn "dbname=$DB" run "$f"
expect_rc "db:close() in a phase fails the phase, cleanly" 1
expect_first_line "and says why" "closer.lua:2: the migration's db cannot be closed"
expect_eq "the failure is recorded" "$(phase_status closer)" "c=failed"

# ---- a failed phase without down is a point of no return for rollback
f=$(mig stuck <<'LUA'
return migration { name = "stuck", phases = {
  { name = "expand", up = function(db) db:exec("CREATE TABLE stuck_a (x int)") end,
    down = function(db) db:exec("DROP TABLE stuck_a") end },
  { name = "contract", up = function(db)
      db:exec("CREATE TABLE stuck_b (x int)")
      db:exec("SELECT 1 / 0")
    end },
} }
LUA
)
pgshift --dsn "dbname=$DB" run "$f"
expect_rc "stuck fails in contract" 1
pgshift --dsn "dbname=$DB" rollback "$f"
expect_rc "rolling back past a failed phase without down is refused" 1
expect_first_line "naming it" "cannot roll back phase 2 'contract' of migration stuck: it has no down"
expect_eq "expand is still done" "$(phase_status stuck)" "expand=done contract=failed"

# ---- a migration rolled back after a failure is rolled_back, not failed
pgshift --dsn "dbname=$DB" rollback "$three"
FAIL_AT=b pgshift --dsn "dbname=$DB" run "$three"
expect_rc "three fails in b (its down runs)" 1
pgshift --dsn "dbname=$DB" rollback "$three"
expect_rc "then a full rollback" 0
expect_eq "every phase is rolled back" "$(phase_status three)" "a=rolled_back b=rolled_back c=rolled_back"
expect_eq "and so is the migration" "$(q "SELECT status FROM shift.migration WHERE name = 'three'")" rolled_back

# ---- --json: one JSON object per line, and errors as events too
# (three is fully rolled back here: a and b run, c fails and its down runs)
FAIL_AT=c pgshift --dsn "dbname=$DB" --json run "$three"
expect_rc "a failing run with --json" 1
bad=0
while IFS= read -r line; do
  [ "$(json_field "$line" '{event}')" != "" ] || bad=$((bad + 1))
done <<<"$OUT"
expect_eq "every stdout line is a JSON event" "$bad" 0
expect_eq "the events in order" "$(while IFS= read -r l; do json_field "$l" '{event}'; done <<<"$OUT" | tr '\n' ' ')" \
  "start phase_start phase_done phase_start phase_done phase_start error phase_start phase_done finish "
expect_eq "the error event carries the SQLSTATE" "$(json_field "$(grep '"error"' <<<"$OUT")" '{sqlstate}')" 22012
expect_in "the human error still goes to stderr" "$ERR" "division by zero"

# ---- status and plan in JSON
pgshift --dsn "dbname=$DB" --json status three
expect_rc "status --json" 0
expect_eq "status --json is an array with the phases" "$(json_field "$OUT" '{0,phases,2,status}')" failed
pgshift --dsn "dbname=$DB" status
expect_rc "status of all" 0
expect_in "lists every migration" "$OUT" "nor "
pgshift --dsn "dbname=$DB" status nosuch
expect_rc "status of an unknown migration" 2
expect_first_line "says so" "no migration named 'nosuch' has run in this database"
