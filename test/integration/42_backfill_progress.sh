#!/usr/bin/env bash
# What shift.backfill_progress (and so the runner's bar and JSON events, which
# read it) says of a job's pace: the rate is keys per second of wall-clock
# time, its rests (sleep_ratio) and throttling included, over the last
# minute; the ETA made from it holds; a job that is held back says why
# instead of an ETA; a resumed job's rows are counted the same way twice.
# Its jobs rest most of the time (sleep_ratio, a throttle, a pause): it runs
# beside the first files (test/harness.sh), in its own database, and its jobs
# do not wait on standbys (max_lag NULL): 41's standby pauses its replay.
# harness: background
. "$(dirname "$0")/lib.sh"

new_db bfprogress
ROWS=${PROGRESS_ROWS:-300000}
q "CREATE TABLE p (id int PRIMARY KEY, n int NOT NULL DEFAULT 0, pad text);
   INSERT INTO p SELECT g, 0, repeat('x', 40) FROM generate_series(1, $ROWS) g;
   ANALYZE p"

# ---- a throttled backfill (sleep_ratio 4: four fifths of its time at rest):
# while it runs, the rate it shows is its pace by the clock, rests included.
# (How well the ETA made from it holds, at 25, 50 and 75 %, is timing, not
# correctness: test/bench/progress.sh measures it.)
q "SELECT shift.backfill_create('paced', 'p', set => 'n = n + 1', batch_min => 1500, batch_max => 1500,
                                sleep_ratio => 4, max_lag => NULL)" >/dev/null
started=$(q "SELECT extract(epoch FROM clock_timestamp())")
psql -X -q -d "$DB" -c "CALL shift.backfill_run('paced')" >"$WORK/paced.out" 2>&1 &
runner=$!
wait_for "the job is half done" 120 "SELECT percent >= 50 FROM shift.backfill_progress WHERE name = 'paced'"
read -r state rate keys at <<<"$(q "SELECT state, rate, keys_done, extract(epoch FROM clock_timestamp())
                                    FROM shift.backfill_progress WHERE name = 'paced'" | tr '|' ' ')"
wait "$runner"
expect_eq "the job ran to its end" "$(q "SELECT state FROM shift.backfill WHERE name = 'paced'")" done
# the same span of time measured twice: the view's rate and the test's clock
# (which counts the call's start too); the last batch's own rate, rests left
# out, would be about five times the clock's
clock=$(awk "BEGIN { printf \"%.0f\", $keys / ($at - $started) }")
if [ "$state" = running ] && awk "BEGIN { exit !($rate > 0.75 * $clock && $rate < 1.25 * $clock) }"; then
  ok "half way, the rate shown ($rate keys/s) is the pace by the clock ($clock keys/s), rests included"
else
  not_ok "half way, the rate shown was $rate keys/s (state $state), the pace by the clock $clock keys/s"
fi
expect_eq "the batches rested four times their work: their wall time holds that rest, and not ten times it" \
  "$(q "SELECT sum(wall_ms - ms) >= 3.5 * sum(ms) AND sum(wall_ms) <= 10 * sum(ms)
          FROM shift.backfill_batch WHERE job = 'paced' AND batch > 1")" t
expect_eq "a finished job has no ETA" "$(q "SELECT eta IS NULL FROM shift.backfill_progress WHERE name = 'paced'")" t

# ---- held back: paused, throttled, or with nobody running it, no ETA
q "UPDATE p SET n = 0;
   SELECT shift.backfill_create('held', 'p', set => 'n = n + 1', batch_min => 1000, batch_max => 1000,
                                sleep_ratio => 1, max_lag => NULL)" >/dev/null
q "CALL shift.backfill_run('held', max_batches => 5)" >/dev/null
expect_eq "a job nobody runs has a rate from its batches but no ETA" \
  "$(q "SELECT state || ' ' || (rate > 0) || ' ' || (eta IS NULL) FROM shift.backfill_progress WHERE name = 'held'")" \
  "active true true"
q "SELECT shift.backfill_set('held', throttle_query => 'SELECT true')"
psql -X -q -d "$DB" -c "CALL shift.backfill_run('held', max_runtime => '60 seconds')" >/dev/null 2>&1 &
bg=$!
wait_for "the job says it is throttled" 10 "SELECT throttled IS NOT NULL FROM shift.backfill_progress WHERE name = 'held'"
expect_eq "a throttled job, running, says why instead of an ETA" \
  "$(q "SELECT state || ' ' || throttled || ' ' || (eta IS NULL) FROM shift.backfill_progress WHERE name = 'held'")" \
  "running the throttle query returned true true"
sleep 2
expect_eq "and its rate falls while it waits (the time since its last batch counts)" \
  "$(q "SELECT rate < (SELECT sum(keys) / (sum(wall_ms) / 1000) FROM shift.backfill_batch WHERE job = 'held')
          FROM shift.backfill_progress WHERE name = 'held'")" t
# paused, the throttled run ends (it looks at the job's state once a second)
q "SELECT shift.backfill_pause('held')" >/dev/null
wait "$bg"
q "SELECT shift.backfill_set('held', clear_throttle_query => true)" >/dev/null
expect_eq "a paused job has no ETA" "$(q "SELECT state || ' ' || (eta IS NULL) FROM shift.backfill_progress WHERE name = 'held'")" \
  "paused true"

# ---- the runner: a resumed backfill counts this run's rows in both lines
q "UPDATE p SET n = 0" >/dev/null
f=$(mig resumed <<'LUA'
return migration { name = "resumed", phases = {
  { name = "backfill",
    up = function(db)
      db:backfill { table = "p", set = "n = n + 1", batch_min = 5000, batch_max = 5000, sleep_ratio = 2,
                    max_lag = false }
    end },
} }
LUA
)
"$PGSHIFT" --dsn "dbname=$DB" run "$f" >"$WORK/r1.out" 2>&1 &
r=$!
wait_for "the first run has written some batches" 30 \
  "SELECT coalesce(max(batches), 0) >= 3 FROM shift.backfill WHERE name = 'resumed:backfill'"
kill -INT "$r"; wait "$r" 2>/dev/null
before=$(q "SELECT rows_done FROM shift.backfill WHERE name = 'resumed:backfill'")
# (the rest of the job without its rests: what it writes is counted the same)
q "SELECT shift.backfill_set('resumed:backfill', sleep_ratio => 0)" >/dev/null
pgshift --dsn "dbname=$DB" run "$f"
expect_rc "the second run resumes and finishes" 0
after=$((ROWS - before))
expect_in "the job's line counts this run's rows, and the total beside them" "$OUT" \
  "backfill resumed:backfill: $after rows written by this run ($ROWS in all)"
expect_in "as the phase's line does" "$OUT" "$after rows"
expect_eq "every row once" "$(q "SELECT count(*) FROM p WHERE n <> 1")" 0

# ---- a runner killed in the middle of a backfill is shown as gone, at once:
# its session stops within client_connection_check_interval and frees the lock
f=$(mig killed <<'LUA'
return migration { name = "killed", phases = {
  { name = "backfill",
    up = function(db)
      db:backfill { table = "p", set = "n = n + 1", batch_min = 2000, batch_max = 2000, sleep_ratio = 4,
                    max_lag = false }
    end },
} }
LUA
)
"$PGSHIFT" --dsn "dbname=$DB" run "$f" >"$WORK/k.out" 2>&1 &
k=$!
wait_for "the runner's backfill has written some batches" 30 \
  "SELECT coalesce(max(batches), 0) >= 2 FROM shift.backfill WHERE name = 'killed:backfill'"
kill -9 "$k"; wait "$k" 2>/dev/null
wait_for "its session ends and the job stops" 10 \
  "SELECT state <> 'running' FROM shift.backfill_progress WHERE name = 'killed:backfill'"
pgshift --dsn "dbname=$DB" status killed
expect_in "pgshift status says its runner is gone" "$OUT" "its runner is gone: pgshift pid $k"
expect_not_in "not that it is running" "$OUT" "running now"
expect_eq "shift.status says interrupted" "$(q "SELECT status || ' ' || runner_alive FROM shift.status WHERE migration = 'killed'")" \
  "interrupted false"
