#!/usr/bin/env bash
# Runners dying and meeting each other: SIGKILL mid-phase then resume (the
# lease and the dead runner's lock taken over at once, the phase run again
# without its down: an interruption is resumed, never undone), two runners at
# once, Ctrl-C (SIGINT) mid-statement, and db:ddl retrying a lock timeout.
. "$(dirname "$0")/lib.sh"

new_db crash
q "CREATE TABLE applied (phase text, attempt int)"

# Phase "slow" marks that it started, then sleeps SLEEP seconds.
f=$(mig slow <<'LUA'
local sleep = tonumber(os.getenv("SLEEP") or "0")
return migration { name = "slow", phases = {
  { name = "first",
    up = function(db) db:exec("INSERT INTO applied VALUES ('first', 1)") end,
    down = function(db) db:exec("DELETE FROM applied WHERE phase = 'first'") end },
  { name = "slow",
    up = function(db)
      db:exec("CREATE TABLE IF NOT EXISTS slow_t (x int)")
      db:exec("INSERT INTO applied SELECT 'slow', count(*) + 1 FROM applied WHERE phase = 'slow'")
      db:exec("SELECT pg_sleep($1)", sleep)
    end,
    down = function(db) db:exec("DROP TABLE IF EXISTS slow_t") end },
  { name = "last",
    up = function(db) db:exec("INSERT INTO applied VALUES ('last', 1)") end,
    down = function(db) db:exec("DELETE FROM applied WHERE phase = 'last'") end },
} }
LUA
)

# ---- two runners at once: the second is refused, naming the first
SLEEP=4 "$PGSHIFT" --dsn "dbname=$DB" run "$f" >"$WORK/a.out" 2>&1 &
a=$!
wait_for "runner A reaches the slow phase" 20 "SELECT to_regclass('slow_t') IS NOT NULL"
pgshift --dsn "dbname=$DB" run "$f"
expect_rc "a second runner is refused while the first works" 2
expect_first_line "it names the holder's pid and host" "migration slow is locked by pgshift pid $a on host $(hostname)"
expect_in "and what its session is doing" "$ERR" "SELECT pg_sleep("
expect_in "and what to do: wait, not end a live runner's session" "$ERR" "another pgshift is working on this migration: wait for it"
expect_not_in "never the advice to terminate it" "$ERR" "pg_terminate_backend("
wait $a
rc_a=$?
expect_eq "the first runner finishes" "$rc_a" 0
expect_eq "every phase ran once" "$(q "SELECT string_agg(phase || attempt, ',' ORDER BY phase) FROM applied")" "first1,last1,slow1"

# ---- SIGKILL mid-phase, then resume
pgshift --dsn "dbname=$DB" rollback "$f"
expect_rc "rollback before the crash test" 0
q "DELETE FROM applied"
SLEEP=60 "$PGSHIFT" --dsn "dbname=$DB" run "$f" >"$WORK/k.out" 2>&1 &
k=$!
wait_for "the runner reaches the slow phase" 20 "SELECT to_regclass('slow_t') IS NOT NULL"
{ kill -9 "$k"; wait "$k"; } 2>/dev/null
expect_eq "the killed run left phase slow running" "$(phase_status slow)" "first=done slow=running last=rolled_back"
# at once, while the killed runner's session still holds the lock (it notices
# its client is gone only within client_connection_check_interval)
pgshift --dsn "dbname=$DB" run "$f"
expect_rc "the next run, started at once, takes the dead runner's lock and completes" 0
expect_in "it says it takes over" "$OUT" "taking over from pgshift pid $k on $(hostname)"
expect_not_in "it does not undo the interrupted phase" "$OUT" "slow (down"
expect_in "phase first is not run again" "$OUT" "[1/3] first: already done"
expect_eq "slow ran again (resumed), the rest once" "$(q "SELECT string_agg(phase || attempt, ',' ORDER BY phase, attempt) FROM applied")" \
  "first1,last1,slow1,slow2"
expect_eq "all done" "$(phase_status slow)" "first=done slow=done last=done"
expect_in "the takeover is logged" "$(events slow)" \
  "phase_started:slow takeover run_started phase_started:slow phase_done:slow"
expect_eq "it names the dead runner" \
  "$(q "SELECT message LIKE 'lease of pgshift pid $k on %' FROM shift.event WHERE migration = 'slow' AND kind = 'takeover'")" t

# ---- Ctrl-C mid-statement: cancelled, recorded as interrupted, resumed as it is
pgshift --dsn "dbname=$DB" rollback "$f" --to first
expect_rc "rollback to first" 0
SLEEP=60 "$PGSHIFT" --dsn "dbname=$DB" run "$f" >"$WORK/i.out" 2>"$WORK/i.err" &
i=$!
wait_for "the runner reaches the slow phase" 20 "SELECT to_regclass('slow_t') IS NOT NULL"
start=$(date +%s)
kill -INT "$i"
wait "$i"
RC=$?
ERR=$(cat "$WORK/i.err")
expect_rc "Ctrl-C stops the run" 1
expect_eq "promptly (the statement is cancelled)" "$(( $(date +%s) - start < 10 ))" 1
expect_first_line "the interrupt is the cause, at the running statement" "slow.lua:10: interrupted by SIGINT (Ctrl-C)"
expect_in "it says how to resume" "$ERR" "Run again to resume: the phase runs again from where it stopped"
expect_not_in "and nothing else: no internal error" "$ERR" "internal error"
expect_eq "the phase is interrupted (57014); a rollback would still run its down" \
  "$(q "SELECT status || ' ' || error_sqlstate || ' ' || needs_cleanup FROM shift.phase WHERE migration = 'slow' AND name = 'slow'")" "interrupted 57014 true"
expect_eq "no down ran: the table is still there" "$(q "SELECT to_regclass('slow_t') IS NOT NULL")" t
expect_in "the interruption is logged" "$(events slow)" "phase_started:slow interrupted:slow run_finished"
pgshift --dsn "dbname=$DB" run "$f"
expect_rc "the next run resumes" 0
expect_not_in "without the down" "$OUT" "slow (down"
expect_eq "all done" "$(phase_status slow)" "first=done slow=done last=done"

# ---- on a terminal, a live line shows the running phase's elapsed time
pgshift --dsn "dbname=$DB" rollback "$f" --to first
SLEEP=2.5 script -qec "'$PGSHIFT' --color=never --dsn 'dbname=$DB' run '$f'" /dev/null >"$WORK/tty.out" 2>&1
expect_in "the live line counts the seconds" "$(cat "$WORK/tty.out")" "... slow running for 0:02"
expect_in "and is cleared before the phase's result" "$(cat "$WORK/tty.out")" $'\r\033[K    done in 2.'
f2=$(mig shorts <<'LUA'
return migration { name = "shorts", phases = {
  { name = "many", up = function(db)
      for i = 1, 25 do db:exec("SELECT pg_sleep(0.1)") end
    end } } }
LUA
)
script -qec "'$PGSHIFT' --dsn 'dbname=$DB' run '$f2'" /dev/null >"$WORK/tty2.out" 2>&1
expect_in "many short statements tick too (live line and heartbeat)" "$(cat "$WORK/tty2.out")" "... many running for 0:02"
SLEEP=2.5 "$PGSHIFT" --dsn "dbname=$DB" rollback "$f" --to first >/dev/null
SLEEP=2.5 "$PGSHIFT" --dsn "dbname=$DB" run "$f" >"$WORK/notty.out" 2>&1
expect_not_in "without a terminal there is no live line" "$(cat "$WORK/notty.out")" "running for"

# ---- db:ddl in a transaction restores the transaction's lock_timeout
f3=$(mig ddltx <<'LUA'
return migration { name = "ddltx", phases = {
  { name = "t", up = function(db)
      db:transaction(function(tx)
        tx:exec("SET LOCAL lock_timeout = '7s'")
        tx:ddl("CREATE TABLE ddltx_t (x int)")
        local lt = tx:value("SELECT current_setting('lock_timeout')")
        assert(lt == "7s", "lock_timeout inside the transaction is " .. lt)
      end)
    end } } }
LUA
)
pgshift --dsn "dbname=$DB" run "$f3"
expect_rc "db:ddl inside db:transaction keeps the transaction's lock_timeout" 0

# hold_busy SECONDS: another session takes an ACCESS EXCLUSIVE lock on busy
# and holds it for SECONDS; HOLDER is its pid.  Returns once the lock is held.
hold_busy() {
  psql -X -q -d "$DB" -c "BEGIN; LOCK TABLE busy; SELECT pg_sleep($1); COMMIT;" >/dev/null &
  HOLDER=$!
  wait_for "the other session holds the lock" 10 \
    "SELECT EXISTS (SELECT FROM pg_locks WHERE relation = 'busy'::regclass AND mode = 'AccessExclusiveLock' AND granted)"
}

# ---- db:ddl waits out a lock held by another session, retrying
q "CREATE TABLE busy (x int)"
f=$(mig ddl <<'LUA'
return migration { name = "ddl", phases = {
  { name = "alter", up = function(db)
      db:exec("SET lock_timeout = '7s'")
      db:ddl("ALTER TABLE busy ADD COLUMN y int", { lock_timeout = "100ms", retries = 30, backoff = 0.1, max_backoff = 0.3 })
      local lt = db:value("SELECT current_setting('lock_timeout')")
      assert(lt == "7s", "lock_timeout after db:ddl is " .. lt)
    end } } }
LUA
)
hold_busy 2
pgshift --dsn "dbname=$DB" run "$f"
wait $HOLDER
expect_rc "db:ddl succeeds once the lock is free" 0
expect_in "each retry is logged" "$OUT" "canceling statement due to lock timeout (SQLSTATE 55P03); retry 1 of 30"
expect_eq "and recorded" "$(q "SELECT count(*) > 0 FROM shift.event WHERE migration = 'ddl' AND kind = 'retry' AND sqlstate = '55P03'")" t
expect_eq "the column was added" "$(q "SELECT count(*) FROM pg_attribute WHERE attrelid = 'busy'::regclass AND attname = 'y'")" 1
expect_eq "no pgshift session is left behind" "$(q "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'pgshift%' AND datname = current_database()")" 0

f=$(mig ddl2 <<'LUA'
return migration { name = "ddl2", phases = {
  { name = "alter", up = function(db)
      db:ddl("ALTER TABLE busy ADD COLUMN z int", { lock_timeout = 50, retries = 2, backoff = 0.05 })
    end } } }
LUA
)
hold_busy 3
pgshift --dsn "dbname=$DB" run "$f"
wait $HOLDER
expect_rc "db:ddl gives up after its retries" 1
expect_first_line "with the lock timeout as the cause, at the db:ddl line" "ddl2.lua:3: canceling statement due to lock timeout (SQLSTATE 55P03)"
