#!/usr/bin/env bash
# A runner killed while its work session is idle is shown as gone at once:
# between statements (busy in the file's own Lua) or asleep between db:ddl's
# retries (C.sleep), the session waits on the client's socket, so the
# server sees the client die, ends the session and frees the migration's
# lock; shift.status and pgshift status then say interrupted / gone, never
# "running now".  (A runner killed inside a statement, a backfill, is
# 42_backfill_progress.sh's last case.)
. "$(dirname "$0")/lib.sh"

new_db deadrunner
q "CREATE TABLE t (id int)" >/dev/null

# gone MIGRATION PID WHY: the runner PID of MIGRATION was killed -9 while WHY;
# within 5 s its lock is free and status says it is gone.
gone() {
  wait_for "$3: the session ends and frees the lock" 5 \
    "SELECT NOT runner_alive FROM shift.status WHERE migration = '$1'"
  expect_eq "$3: shift.status says interrupted" \
    "$(q "SELECT status || ' ' || runner_alive FROM shift.status WHERE migration = '$1'")" "interrupted false"
  pgshift --dsn "dbname=$DB" status "$1"
  expect_in "$3: pgshift status says its runner is gone" "$OUT" "its runner is gone: pgshift pid $2"
  expect_not_in "$3: not that it is running" "$OUT" "running now"
}

# release_holder: ends the session that holds the lock on t, and its psql.
release_holder() {
  kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null
  q "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database()
       AND pid <> pg_backend_pid() AND query LIKE 'BEGIN; LOCK TABLE t%'" >/dev/null
}

# ---- asleep between retries of a db:ddl that waits for a lock
psql -X -q -d "$DB" -c "BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(30)" >/dev/null 2>&1 &
holder=$!
wait_for "the other session holds the lock" 10 \
  "SELECT count(*) = 1 FROM pg_locks WHERE relation = 't'::regclass AND mode = 'AccessExclusiveLock' AND granted"
f=$(mig asleep <<'LUA'
return migration { name = "asleep", phases = {
  { name = "add", up = function(db)
      db:ddl("ALTER TABLE t ADD COLUMN x int", { lock_timeout = 50, retries = 20, backoff = 30, max_backoff = 30 })
    end },
} }
LUA
)
"$PGSHIFT" --dsn "dbname=$DB" run "$f" >"$WORK/a.out" 2>&1 &
r=$!
wait_for "the runner sleeps before a retry" 20 \
  "SELECT count(*) > 0 FROM shift.event WHERE migration = 'asleep' AND kind = 'retry'"
expect_eq "it is running before the kill" "$(q "SELECT runner_alive FROM shift.status WHERE migration = 'asleep'")" t
kill -9 "$r"; wait "$r" 2>/dev/null
gone asleep "$r" "killed in C.sleep"
release_holder

# ---- between statements, busy in the file's own Lua
f=$(mig busy <<'LUA'
return migration { name = "busy", phases = {
  { name = "work", up = function(db)
      db:exec("SELECT 1")
      local t0 = os.time()
      while os.time() - t0 < 30 do end   -- the session is idle meanwhile
    end },
} }
LUA
)
"$PGSHIFT" --dsn "dbname=$DB" run "$f" >"$WORK/b.out" 2>&1 &
r=$!
wait_for "the runner is in the phase" 20 \
  "SELECT count(*) > 0 FROM shift.event WHERE migration = 'busy' AND kind = 'phase_started'"
sleep 0.5
expect_eq "it is running before the kill" "$(q "SELECT runner_alive FROM shift.status WHERE migration = 'busy'")" t
kill -9 "$r"; wait "$r" 2>/dev/null
gone busy "$r" "killed between statements"

# ---- inside a statement that waits for a lock (not idle: the server checks
# the client every client_connection_check_interval while it waits)
psql -X -q -d "$DB" -c "BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(30)" >/dev/null 2>&1 &
holder=$!
wait_for "the other session holds the lock again" 10 \
  "SELECT count(*) = 1 FROM pg_locks WHERE relation = 't'::regclass AND mode = 'AccessExclusiveLock' AND granted"
f=$(mig waiting <<'LUA'
return migration { name = "waiting", phases = {
  { name = "add", up = function(db)
      db:ddl("ALTER TABLE t ADD COLUMN y int", { lock_timeout = "25s", retries = 0 })
    end },
} }
LUA
)
"$PGSHIFT" --dsn "dbname=$DB" run "$f" >"$WORK/w.out" 2>&1 &
r=$!
wait_for "the runner's statement waits for the lock" 20 \
  "SELECT count(*) > 0 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'ALTER TABLE t ADD COLUMN y%'"
kill -9 "$r"; wait "$r" 2>/dev/null
gone waiting "$r" "killed while its statement waits for a lock"
release_holder
