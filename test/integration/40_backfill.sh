#!/usr/bin/env bash
# Backfill under fire: the backend terminated, the runner SIGKILLed and the
# server stopped with -m immediate in the middle of a run; each time the next
# run finishes and every row was processed exactly once (a non-idempotent
# n = n + 1, compared row by row with a snapshot taken before).  Also:
# concurrent writers, parallel jobs, lock timeouts retried, Ctrl-C, progress.
# It restarts the server: test/harness.sh runs no background file beside it.
# harness: alone
. "$(dirname "$0")/lib.sh"

new_db backfill
ROWS=60000
make_table() {
  q "DROP TABLE IF EXISTS $1 CASCADE;
     CREATE TABLE $1 (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0, payload text NOT NULL);
     INSERT INTO $1 SELECT g, 0, md5(g::text) FROM generate_series(1, $ROWS) g;
     ANALYZE $1"
}
# a job slow enough to be caught mid-run: small batches, a pause after each
slow_job() {
  q "SELECT shift.backfill_create('$1', '$2', set => 'n = n + 1', batch_min => 500, batch_max => 500,
                                  sleep_ratio => 0, target_ms => 50, max_lag => NULL)" >/dev/null
  q "SELECT shift.backfill_set('$1', sleep_ratio => 8)" >/dev/null
}
keys_done() { q "SELECT keys_done FROM shift.backfill WHERE name = '$1'"; }

# ---- the backend is terminated mid-run
make_table t1
snapshot_rows t1
slow_job kill_backend t1
psql -X -q -d "$DB" -c "CALL shift.backfill_run('kill_backend')" >"$WORK/kb.out" 2>&1 &
runner=$!
wait_for "the job is under way" 30 "SELECT keys_done >= 3000 FROM shift.backfill WHERE name = 'kill_backend'"
q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'CALL shift.backfill_run(''kill_backend'')%'" >/dev/null
wait $runner
at_kill=$(keys_done kill_backend)
expect_eq "the terminated run stopped part way" "$(( at_kill > 0 && at_kill < ROWS ))" 1
expect_eq "its job is not running any more" "$(q "SELECT state FROM shift.backfill_progress WHERE name = 'kill_backend'")" active
q "SELECT shift.backfill_set('kill_backend', sleep_ratio => 0, batch_max => 20000)" >/dev/null
q "CALL shift.backfill_run('kill_backend')"
expect_eq "after the backend kill, every row was processed exactly once" "$(rows_changed_once t1)" 0
expect_eq "and the job walked every key once" "$(keys_done kill_backend)" "$ROWS"

# ---- the server stops as in a crash (-m immediate) mid-run, and comes back
make_table t2
snapshot_rows t2
slow_job kill_server t2
psql -X -q -d "$DB" -c "CALL shift.backfill_run('kill_server')" >"$WORK/ks.out" 2>&1 &
runner=$!
wait_for "the job is under way" 30 "SELECT keys_done >= 3000 FROM shift.backfill WHERE name = 'kill_server'"
restart_immediate
wait $runner
expect_in "the running CALL saw the server go" "$(cat "$WORK/ks.out")" "terminat"
at_crash=$(keys_done kill_server)
expect_eq "the crash stopped it part way" "$(( at_crash > 0 && at_crash < ROWS ))" 1
expect_eq "the checkpoint matches the rows recovery kept" \
  "$(q "SELECT count(*) FROM t2 WHERE n = 1")" "$(q "SELECT rows_done FROM shift.backfill WHERE name = 'kill_server'")"
q "SELECT shift.backfill_set('kill_server', sleep_ratio => 0, batch_max => 20000)" >/dev/null
q "CALL shift.backfill_run('kill_server')"
expect_eq "after the server crash, every row was processed exactly once" "$(rows_changed_once t2)" 0

# ---- pgshift is SIGKILLed mid-backfill; the next run resumes from the checkpoint
make_table t3
snapshot_rows t3
f=$(mig bf <<'LUA'
return migration { name = "bf", phases = {
  { name = "fill",
    up = function(db)
      db:backfill { table = "t3", set = "n = n + 1", batch_min = 500, batch_max = 500,
                    target_ms = 50, sleep_ratio = 8, max_lag = false }
    end,
    down = function(db) db:exec("UPDATE t3 SET n = n - 1") end },
} }
LUA
)
"$PGSHIFT" --dsn "dbname=$DB" run "$f" >"$WORK/bf1.out" 2>&1 &
runner=$!
wait_for "it has done some batches" 30 "SELECT keys_done >= 3000 FROM shift.backfill WHERE name = 'bf:fill'"
{ kill -9 "$runner"; wait "$runner"; } 2>/dev/null
wait_for "the killed runner's session stops" 15 \
  "SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE query LIKE 'CALL shift.backfill_run%')"
at_kill=$(keys_done 'bf:fill')
batches_at_kill=$(q "SELECT batches FROM shift.backfill WHERE name = 'bf:fill'")
q "SELECT shift.backfill_set('bf:fill', sleep_ratio => 0, batch_max => 20000)" >/dev/null
pgshift --dsn "dbname=$DB" run "$f" --lock-wait 10
expect_rc "the next run completes" 0
expect_in "it took over the dead runner's lease" "$OUT" "taking over from pgshift pid $runner"
expect_not_in "it did not undo the phase (the backfill resumes)" "$OUT" "(down of the interrupted attempt)"
expect_eq "after the runner kill, every row was processed exactly once" "$(rows_changed_once t3)" 0
expect_eq "the job went on from its checkpoint" \
  "$(q "SELECT (batches > $batches_at_kill)::text || ' ' || keys_done FROM shift.backfill WHERE name = 'bf:fill'") (at kill: $batches_at_kill batches)" "true $ROWS (at kill: $batches_at_kill batches)"
expect_eq "the phase counts the rows it wrote" \
  "$(q "SELECT rows_affected FROM shift.phase WHERE migration = 'bf' AND name = 'fill'")" "$(( ROWS - at_kill ))"

# ---- its down undoes the rows and drops the job, so a new run starts over
pgshift --dsn "dbname=$DB" rollback "$f"
expect_rc "rollback runs the phase's down" 0
expect_eq "the rows are back as they were" "$(q "SELECT count(*) FROM t3 WHERE n <> 0")" 0
expect_eq "and the job is gone" "$(q "SELECT count(*) FROM shift.backfill WHERE name = 'bf:fill'")" 0
pgshift --dsn "dbname=$DB" run "$f"
expect_rc "a new run fills again" 0
expect_eq "every row once, from the start" "$(rows_changed_once t3)" 0

# ---- Ctrl-C during a backfill: paused cleanly, resumed by the next run
make_table t4
snapshot_rows t4
f=$(mig bfint <<'LUA'
return migration { name = "bfint", phases = {
  { name = "fill",
    up = function(db)
      db:backfill { name = "bfint", table = "t4", set = "n = n + 1", batch_min = 500, batch_max = 500,
                    target_ms = 50, sleep_ratio = 6, max_lag = false }
    end,
    down = function(db) db:exec("UPDATE t4 SET n = 0") end },
} }
LUA
)
"$PGSHIFT" --dsn "dbname=$DB" run "$f" >"$WORK/int.out" 2>"$WORK/int.err" &
runner=$!
wait_for "the backfill is under way" 30 "SELECT keys_done >= 2000 FROM shift.backfill WHERE name = 'bfint'"
kill -INT "$runner"
wait "$runner"
RC=$?
ERR=$(cat "$WORK/int.err")
expect_rc "Ctrl-C stops the run" 1
expect_in "the backfill was cancelled mid-batch" "$ERR" "interrupted by SIGINT"
expect_eq "the phase is interrupted: the next run resumes it" \
  "$(q "SELECT status FROM shift.phase WHERE migration = 'bfint'")" "interrupted"
q "SELECT shift.backfill_set('bfint', sleep_ratio => 0, batch_max => 20000)" >/dev/null
pgshift --dsn "dbname=$DB" run "$f"
expect_rc "the next run resumes the backfill" 0
expect_not_in "without running the down" "$OUT" "(down"
expect_eq "every row exactly once" "$(rows_changed_once t4)" 0

# ---- three more interruptions of a runner's non-idempotent backfill: each is
# resumed from the checkpoint by the next run, never undone and redone
f6=$(mig bf6 <<'LUA'
return migration { name = "bf6", phases = {
  { name = "fill",
    up = function(db)
      db:backfill { table = "t6", set = "n = n + 1", batch_min = 500, batch_max = 500, target_ms = 50,
                    sleep_ratio = tonumber(os.getenv("SLEEP_RATIO") or "0"), max_lag = false }
      db:exec("SELECT pg_sleep($1)", tonumber(os.getenv("AFTER") or "0"))
    end,
    down = function(db) db:exec("UPDATE t6 SET n = 0") end },
} }
LUA
)
# (a) the work session terminated mid-backfill (an admin, a failover)
make_table t6
snapshot_rows t6
SLEEP_RATIO=8 "$PGSHIFT" --dsn "dbname=$DB" run "$f6" >"$WORK/t6a.out" 2>&1 &
runner=$!
wait_for "the backfill is under way" 30 "SELECT keys_done >= 3000 FROM shift.backfill WHERE name = 'bf6:fill'"
q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pgshift' AND datname = current_database()" >/dev/null
wait $runner
RC=$?
expect_rc "the run whose session was terminated stops" 1
expect_eq "as an interruption" "$(q "SELECT status FROM shift.phase WHERE migration = 'bf6'")" interrupted
expect_eq "and its job kept its checkpoint" "$(q "SELECT keys_done >= 3000 FROM shift.backfill WHERE name = 'bf6:fill'")" t
pgshift --dsn "dbname=$DB" run "$f6"
expect_rc "the next run resumes and completes" 0
expect_not_in "without undoing the phase" "$OUT" "(down"
expect_eq "after the termination, every row was processed exactly once" "$(rows_changed_once t6)" 0

# (b) the runner SIGKILLed after the backfill finished, before the phase was recorded done
pgshift --dsn "dbname=$DB" rollback "$f6"
expect_rc "rolled back for the next case" 0
snapshot_rows t6
AFTER=30 "$PGSHIFT" --dsn "dbname=$DB" run "$f6" >"$WORK/t6b.out" 2>&1 &
runner=$!
wait_for "the backfill is done, the phase not yet" 60 \
  "SELECT state = 'done' FROM shift.backfill WHERE name = 'bf6:fill' UNION ALL SELECT false LIMIT 1"
{ kill -9 "$runner"; wait "$runner"; } 2>/dev/null
pgshift --dsn "dbname=$DB" run "$f6"
expect_rc "the next run, started at once, completes" 0
expect_not_in "without undoing the phase" "$OUT" "(down"
expect_eq "after the kill between the backfill and the bookkeeping, every row exactly once" "$(rows_changed_once t6)" 0

# (c) a runner SIGKILLed while a second one waits for its lock (--lock-wait)
pgshift --dsn "dbname=$DB" rollback "$f6"
expect_rc "rolled back for the last case" 0
snapshot_rows t6
SLEEP_RATIO=8 "$PGSHIFT" --dsn "dbname=$DB" run "$f6" >"$WORK/t6c.out" 2>&1 &
first=$!
wait_for "the first runner's backfill is under way" 30 "SELECT keys_done >= 3000 FROM shift.backfill WHERE name = 'bf6:fill'"
"$PGSHIFT" --dsn "dbname=$DB" run "$f6" --lock-wait 60 >"$WORK/t6d.out" 2>&1 &
second=$!
sleep 1
{ kill -9 "$first"; wait "$first"; } 2>/dev/null
q "SELECT shift.backfill_set('bf6:fill', sleep_ratio => 0, batch_max => 20000)" >/dev/null
wait "$second"
RC=$?
OUT=$(cat "$WORK/t6d.out")
expect_rc "the waiting runner takes over and completes" 0
expect_not_in "without undoing the phase" "$OUT" "(down"
expect_eq "after the kill of the lock holder, every row exactly once" "$(rows_changed_once t6)" 0

# ---- concurrent writers: updates and inserts all along; no row missed, deadlocks handled
make_table t5
q "CREATE SEQUENCE t5_ids START $((ROWS + 1))"
snapshot_rows t5
cat >"$WORK/writer.sql" <<'SQL'
\set a random(1, 60000)
\set b random(1, 60000)
BEGIN;
UPDATE t5 SET payload = payload || '+' WHERE id = :a;
UPDATE t5 SET payload = payload || '+' WHERE id = :b;
INSERT INTO t5 (id, payload) VALUES (nextval('t5_ids'), 'new');
COMMIT;
SQL
q "SELECT shift.backfill_create('conc', 't5', set => 'n = n + 1', batch_min => 1000, batch_max => 2000,
                                target_ms => 100, lock_timeout_ms => 200, max_lag => NULL, max_retries => 50)" >/dev/null
"$PGSHIFT_PGBIN/pgbench" -n -c 4 -T 8 --max-tries=20 -f "$WORK/writer.sql" "$DB" >"$WORK/pgbench.out" 2>&1 &
bench=$!
sleep 1
q "CALL shift.backfill_run('conc')"
wait $bench
expect_eq "pgbench ran transactions meanwhile" "$(grep -c 'number of transactions actually processed' "$WORK/pgbench.out")" 1
expect_eq "every original row was processed exactly once" \
  "$(q "SELECT count(*) FROM t5_before b JOIN t5 a USING (id) WHERE a.n <> b.n + 1")" 0
expect_eq "the writers' updates are all there" \
  "$(q "SELECT count(*) FROM t5_before b JOIN t5 a USING (id) WHERE a.payload NOT LIKE b.payload || '%'")" 0
expect_eq "no original row went missing" "$(q "SELECT count(*) FROM t5_before b LEFT JOIN t5 a USING (id) WHERE a.id IS NULL")" 0
expect_eq "rows inserted before the job fixed its bound were processed once" \
  "$(q "SELECT count(*) FROM t5 WHERE id > $ROWS AND id <= (SELECT upper_key_text::bigint FROM shift.backfill WHERE name = 'conc') AND n <> 1")" 0
expect_eq "rows inserted after it are left to the application" \
  "$(q "SELECT count(*) FROM t5 WHERE id > (SELECT upper_key_text::bigint FROM shift.backfill WHERE name = 'conc') AND n <> 0")" 0
some=$(q "SELECT count(*) > 0 FROM t5 WHERE id > (SELECT upper_key_text::bigint FROM shift.backfill WHERE name = 'conc')")
expect_eq "and there were some" "$some" t
if [ "$some" != t ]; then
  # seen once in a whole-suite run: say what the writers did and where the bound fell
  q "SELECT 'bound ' || upper_key_text || ', started ' || started_at || ', max id ' || (SELECT max(id) FROM t5)
       FROM shift.backfill WHERE name = 'conc'" | sed 's/^/#   /'
  tail -25 "$WORK/pgbench.out" | sed 's/^/#   /'
fi
expect_eq "the job is done" "$(q "SELECT state FROM shift.backfill WHERE name = 'conc'")" done

# ---- lock timeouts are retried; parallel jobs on different tables; one runner per job
make_table t6
q "SELECT shift.backfill_create('locked', 't6', set => 'n = n + 1', lock_timeout_ms => 100, max_lag => NULL)" >/dev/null
psql -X -q -d "$DB" -c "BEGIN; SELECT * FROM t6 WHERE id = 5 FOR UPDATE; SELECT pg_sleep(2); COMMIT" >/dev/null &
holder=$!
wait_for "another session holds a row lock" 10 \
  "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE query LIKE '%FOR UPDATE; SELECT pg_sleep%' AND wait_event = 'PgSleep')"
q "CALL shift.backfill_run('locked')"
wait $holder
expect_eq "the job waited the lock out with retries" "$(q "SELECT state, retries > 0 FROM shift.backfill WHERE name = 'locked'")" "done|t"
expect_eq "the retries are in the batch log" "$(q "SELECT sum(retries) > 0 FROM shift.backfill_batch WHERE job = 'locked'")" t

make_table t7
make_table t8
slow_job par_a t7
slow_job par_b t8
q "SELECT shift.backfill_set('par_a', sleep_ratio => 2); SELECT shift.backfill_set('par_b', sleep_ratio => 2)" >/dev/null
psql -X -q -d "$DB" -c "CALL shift.backfill_run('par_a')" >/dev/null 2>&1 &
pa=$!
psql -X -q -d "$DB" -c "CALL shift.backfill_run('par_b')" >/dev/null 2>&1 &
pb=$!
wait_for "both jobs run at once" 30 "SELECT count(*) = 2 FROM shift.backfill_progress WHERE state = 'running'"
OUT=$(psql -X -q -d "$DB" -c "CALL shift.backfill_run('par_a')" 2>&1)
expect_in "a second runner of the same job is refused" "$OUT" "backfill job \"par_a\" is being run by another session"
# the run lock, as backfill_run takes it in C, is the one shift.backfill_progress
# and shift.backfill_drop look for in SQL
expect_eq "the progress view names the session running each job" \
  "$(q "SELECT string_agg((p.running_pid = a.pid)::text, ',' ORDER BY p.name)
          FROM shift.backfill_progress p
          JOIN pg_stat_activity a ON a.query = format('CALL shift.backfill_run(%L)', p.name)
         WHERE p.name LIKE 'par_%'")" "true,true"
OUT=$(q "SELECT shift.backfill_drop('par_b')" 2>&1)
expect_in "a job being run cannot be dropped" "$OUT" "backfill job \"par_b\" is running and cannot be dropped"
q "SELECT shift.backfill_set('par_a', sleep_ratio => 0, batch_max => 20000); SELECT shift.backfill_set('par_b', sleep_ratio => 0, batch_max => 20000)" >/dev/null
wait $pa; wait $pb
expect_eq "both finished" "$(q "SELECT string_agg(state, ',' ORDER BY name) FROM shift.backfill WHERE name LIKE 'par_%'")" "done,done"

# ---- progress: a bar on a terminal, lines (or JSON events) otherwise
make_table t9
f=$(mig bfprog <<'LUA'
return migration { name = "bfprog", phases = {
  { name = "fill", up = function(db)
      db:backfill { table = "t9", set = "n = n + 1", batch_min = 1000, batch_max = 1000,
                    target_ms = 50, sleep_ratio = 6, max_lag = false }
    end } } }
LUA
)
script -qec "'$PGSHIFT' --dsn 'dbname=$DB' run '$f'" /dev/null >"$WORK/bar.out" 2>&1
expect_in "a terminal gets a progress bar" "$(cat "$WORK/bar.out")" "keys/s  ETA"
expect_in "with the percent done" "$(grep -o '\] *[0-9.]*%' "$WORK/bar.out" | head -1)" "%"
