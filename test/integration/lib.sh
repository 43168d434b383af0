# test/integration/lib.sh: sourced by every integration test.
# Runs pgshift against the harness's cluster (PGHOST/PGPORT set by
# test/harness.sh) and prints TAP lines ("ok N - ...", "not ok N - ...") that
# the harness counts.  Each test file gets its own databases and work dir.
set -uo pipefail
: "${PGSHIFT:?run integration tests through test/harness.sh (make test)}"

T_NUM=0
T_DBS=()
WORK=$(mktemp -d /tmp/pgshift-it.XXXXXX)
chmod 755 "$WORK"
RC=0 OUT="" ERR=""
export PGOPTIONS="-c client_min_messages=warning"

cleanup() {
  local d
  for d in "${T_DBS[@]}"; do dropdb --if-exists --force "$d" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT

ok() { T_NUM=$((T_NUM + 1)); echo "ok $T_NUM - $1"; }
not_ok() {
  T_NUM=$((T_NUM + 1)); echo "not ok $T_NUM - $1"; shift
  local l; for l in "$@"; do printf '%s\n' "$l" | sed 's/^/#   /'; done
}

# new_db NAME [VERSION]: a fresh database it_NAME with pg_shift installed
# (its default version, or VERSION); sets DB.
new_db() {
  DB="it_$1"
  dropdb --if-exists --force "$DB" 2>/dev/null
  createdb "$DB" || { echo "Bail out! createdb $DB failed"; exit 1; }
  T_DBS+=("$DB")
  q "CREATE EXTENSION pg_shift${2:+ VERSION '$2'}" >/dev/null
}

# q SQL: runs SQL in $DB, prints unaligned tuples, fails the script on error.
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$DB" -c "$1"; }

# mig NAME: writes stdin to $WORK/NAME.lua and prints the path.
mig() { cat >"$WORK/$1.lua"; echo "$WORK/$1.lua"; }

# pgshift ARGS...: runs the installed runner; sets RC, OUT (stdout), ERR (stderr).
pgshift() {
  "$PGSHIFT" "$@" >"$WORK/stdout" 2>"$WORK/stderr"
  RC=$?
  OUT=$(cat "$WORK/stdout")
  ERR=$(cat "$WORK/stderr")
}

show() { printf 'exit %s\n--- stdout\n%s\n--- stderr\n%s' "$RC" "$OUT" "$ERR"; }

# expect_rc DESC N: the last pgshift exited with N.
expect_rc() {
  if [ "$RC" -eq "$2" ]; then ok "$1 (exit $2)"; else not_ok "$1: expected exit $2" "$(show)"; fi
}

# expect_in DESC TEXT NEEDLE: TEXT contains NEEDLE (fixed string).
expect_in() {
  if grep -qF -- "$3" <<<"$2"; then ok "$1"; else not_ok "$1: missing '$3'" "$2"; fi
}

# expect_not_in DESC TEXT NEEDLE
expect_not_in() {
  if grep -qF -- "$3" <<<"$2"; then not_ok "$1: unexpected '$3'" "$2"; else ok "$1"; fi
}

# expect_eq DESC GOT WANT
expect_eq() {
  if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1: got '$2', want '$3'"; fi
}

# expect_first_line_re DESC REGEX: the first line of stderr matches REGEX (grep -E).
expect_first_line_re() {
  local first; first=$(head -n1 <<<"$ERR")
  if grep -qE -- "$2" <<<"$first"; then ok "$1"; else not_ok "$1: first line does not match /$2/" "$(show)"; fi
}

# expect_first_line DESC NEEDLE: the first line of stderr (the cause) has NEEDLE.
expect_first_line() {
  local first; first=$(head -n1 <<<"$ERR")
  if grep -qF -- "$2" <<<"$first"; then ok "$1"; else not_ok "$1: first line lacks '$2'" "$(show)"; fi
}

# events MIGRATION: the kinds of its events in order, space-separated.
events() { q "SELECT string_agg(kind || coalesce(':' || phase, ''), ' ' ORDER BY id) FROM shift.event WHERE migration = '$1'"; }

# phase_status MIGRATION: "name=status" for each phase, space-separated.
phase_status() { q "SELECT string_agg(name || '=' || status, ' ' ORDER BY ordinal) FROM shift.phase WHERE migration = '$1'"; }

# wait_for DESC SECONDS SQL: polls until SQL returns t; fails the test otherwise.
wait_for() {
  local i
  for i in $(seq 1 $(( $2 * 10 ))); do
    [ "$(q "$3")" = t ] && return 0
    sleep 0.1
  done
  not_ok "$1: timed out after $2 s waiting for: $3"
  return 1
}

# json_field JSON PATH: a value out of JSON text, read by the server.
json_field() { psql -X -q -A -t -d "$DB" -v j="$1" <<<"SELECT (:'j')::jsonb #>> '$2'"; }

# as_owner CMD...: runs a server binary as the cluster's owner (postgres when root).
as_owner() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# restart_immediate: stops the server as a crash would (-m immediate), starts it again.
restart_immediate() {
  as_owner "$PGSHIFT_PGBIN/pg_ctl" -D "$PGSHIFT_DATA" -m immediate -w stop >/dev/null 2>&1
  as_owner "$PGSHIFT_PGBIN/pg_ctl" -D "$PGSHIFT_DATA" -l "$PGSHIFT_LOG" -w -t 60 start >/dev/null
}

# ---- faults injected mid-backfill (the examples' end-to-end tests)
# job_keys JOB: the keys backfill job JOB has walked (0 before it exists).
job_keys() { q "SELECT coalesce((SELECT keys_done FROM shift.backfill WHERE name = '$1'), 0)"; }

# slow_example_job JOB RELATION MIGRATION DEFINITION [BATCH] [SLEEP_RATIO]: makes backfill
# job JOB of RELATION for MIGRATION's backfill phase beforehand, as the example
# defines it (DEFINITION: its set/where/into/on_conflict arguments, in SQL), in
# batches of BATCH keys (500) each followed by a rest SLEEP_RATIO (20) times as
# long: left to its default size, the first batches can finish the table before
# a fault is injected.  full_speed JOB lets it go flat out afterwards.
slow_example_job() {
  q "SELECT shift.backfill_create('$1', '$2', $4, batch_min => ${5:-500}, batch_max => ${5:-500},
                                  sleep_ratio => ${6:-20}, migration => '$3', phase => 'backfill')" >/dev/null
}
full_speed() { q "SELECT shift.backfill_set('$1', batch_max => 50000, sleep_ratio => 0)" >/dev/null; }

# runner_bg NAME ARGS...: pgshift ARGS in the background, its output in
# $WORK/NAME.out (complete once it has exited); RUNNER is its pid.
runner_bg() { local name=$1; shift; "$PGSHIFT" "$@" >"$WORK/$name.out" 2>&1 & RUNNER=$!; }

# kill_runner_at JOB KEYS TOTAL: once backfill job JOB has walked KEYS keys,
# SIGKILLs the runner RUNNER, and checks that the backfill stopped part way:
# AT_KILL keys of TOTAL.
kill_runner_at() {
  local job=$1 keys=$2 total=$3
  wait_for "the backfill has walked $keys keys" 60 \
    "SELECT coalesce((SELECT keys_done >= $keys FROM shift.backfill WHERE name = '$job'), false)"
  { kill -9 "$RUNNER"; wait "$RUNNER"; } 2>/dev/null
  AT_KILL=$(job_keys "$job")
  expect_eq "the kill stopped the backfill part way ($AT_KILL of $total keys)" "$(( AT_KILL > 0 && AT_KILL < total ))" 1
}

# crash_mid_backfill JOB TOTAL LOAD ARGS...: the run after the kill.  Runs
# pgshift ARGS until job JOB has gone 2000 keys past where it was when the
# run took the lease over, stops the load
# LOAD (the crash would break its connections), stops the server -m immediate
# and starts it again.  Checks that the run failed saying the server went away,
# that it had taken over the killed runner's lease, and that the checkpoint
# kept what committed: AT_CRASH keys, past the kill and short of TOTAL.
crash_mid_backfill() {
  local job=$1 total=$2 load=$3 rc=0 out from
  shift 3
  runner_bg crashed "$@"
  # The killed runner's session goes on until it notices (within a second,
  # client_connection_check_interval): count from when the new run holds the
  # lease, or that session's last batches could be all the progress seen.
  wait_for "the resumed run holds the lease" 60 \
    "SELECT coalesce((SELECT m.lease_runner_pid = $RUNNER FROM shift.migration m
                        JOIN shift.backfill b ON b.migration = m.name WHERE b.name = '$job'), false)"
  from=$(job_keys "$job")
  wait_for "the resumed backfill goes on" 60 "SELECT keys_done > $from + 2000 FROM shift.backfill WHERE name = '$job'"
  load_stop "$load"
  restart_immediate
  wait "$RUNNER" || rc=$?
  expect_eq "the crash stopped the run" "$rc" 1
  out=$(cat "$WORK/crashed.out")
  expect_in "which said the server went away" "$out" "terminat"
  expect_in "it had taken over the killed runner's lease" "$out" "taking over from pgshift pid"
  AT_CRASH=$(job_keys "$job")
  expect_eq "the checkpoint kept what committed before the crash ($AT_CRASH keys)" \
    "$(( AT_CRASH > AT_KILL && AT_CRASH < total ))" 1
}

# terminate_mid_cutover TABLE ARGS...: a reader keeps TABLE locked (ACCESS
# SHARE: the application goes on, the cut-over waits) while pgshift ARGS
# --to cutover runs; its backend is terminated while the cut-over waits for
# its locks.  Checks that the run failed with nothing swapped (sync TABLE
# still forward), then that the next run (ARGS --to cutover --lock-wait 15)
# cuts over and says so.
terminate_mid_cutover() {
  local table=$1 holder runner
  shift
  psql -X -q -d "$DB" -c "BEGIN; SELECT count(*) FROM $table; SELECT pg_sleep(6); COMMIT" >/dev/null 2>&1 &
  holder=$!
  sleep 0.5
  "$PGSHIFT" "$@" --to cutover >"$WORK/run3.out" 2>&1 &
  runner=$!
  wait_for "the cut-over is waiting for its locks" 30 \
    "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE application_name = 'pgshift' AND query LIKE '%shift.cutover%')"
  sleep 1
  q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pgshift' AND query LIKE '%shift.cutover%'" >/dev/null
  wait "$runner"
  expect_eq "the run whose backend was terminated failed" "$?" 1
  expect_eq "and nothing was swapped" "$(q "SELECT direction FROM shift.sync WHERE name = '$table'")" forward
  wait "$holder"
  pgshift "$@" --to cutover --lock-wait 15
  expect_rc "the next run cuts over, under load" 0
  expect_in "and says what it did" "$OUT" "public.$table is live, public.${table}_archive archived"
}

# expect_faulted_history MIG: the history of example migration MIG after the
# three faults and the way back and forth over the cut-over: both lease
# takeovers, the backfill, the interrupted cut-over, the cut-over, its
# revert and the contract; and MIG is done.
expect_faulted_history() {
  local hist e
  hist=$(events "$1")
  expect_eq "the history records both lease takeovers (after the kill and after the crash)" \
    "$(grep -o 'takeover' <<<"$hist" | wc -l)" 2
  for e in "phase_done:backfill" "phase_failed:cutover\|interrupted:cutover" \
           "phase_done:cutover" "phase_rolled_back:cutover" "phase_done:contract"; do
    if grep -q "$e" <<<"$hist"; then ok "the history records $e"; else not_ok "the history lacks $e" "$hist"; fi
  done
  expect_eq "the migration is done" "$(q "SELECT status FROM shift.status WHERE migration = '$1'")" done
}

# snapshot_rows TABLE: saves every row of TABLE as it is now, into TABLE_before.
snapshot_rows() { q "DROP TABLE IF EXISTS $1_before; CREATE TABLE $1_before AS SELECT * FROM $1"; }

# rows_changed_once TABLE: counts rows whose n did not go up by exactly one, or
# whose other columns changed, or that appeared or vanished (0: exactly once).
rows_changed_once() {
  q "SELECT count(*) FROM $1_before b FULL JOIN $1 a USING (id)
      WHERE a.n IS DISTINCT FROM b.n + 1 OR a.payload IS DISTINCT FROM b.payload"
}

# ---- load: pgbench in short rounds, so that it can be stopped between them
declare -A LOAD_PID=()
# load_start NAME SCRIPT [CLIENTS] [ROLE]: pgbench rounds of 3 s until load_stop NAME.
load_start() {
  local name=$1 script=$2 clients=${3:-4} role=${4:-$PGUSER}
  rm -f "$WORK/load-$name.stop" "$WORK/load-$name.out"
  (
    while [ ! -e "$WORK/load-$name.stop" ]; do
      # shellcheck disable=SC2086  # LOAD_OPTS: extra pgbench options, split on spaces
      PGUSER=$role "$PGSHIFT_PGBIN/pgbench" -n -c "$clients" -j 2 -T 3 ${LOAD_OPTS:-} -f "$script" "$DB" \
        >>"$WORK/load-$name.out" 2>&1 || echo "pgbench exited with status $?" >>"$WORK/load-$name.out"
    done
  ) &
  LOAD_PID[$name]=$!
}
# load_stop NAME: ends the load after its current round.
load_stop() { touch "$WORK/load-$1.stop"; wait "${LOAD_PID[$1]}" 2>/dev/null; }
# load_transactions NAME / load_failures NAME: summed over the rounds.  A
# failure is a failed or aborted transaction or a round that did not end cleanly.
load_transactions() { awk '/^number of transactions actually processed:/ { n += $6 } END { print n + 0 }' "$WORK/load-$1.out"; }
load_failures() {
  awk '/^number of failed transactions:/ { n += $5 } /aborted|exited with status/ { n++ } END { print n + 0 }' \
    "$WORK/load-$1.out"
}
# load_retried NAME: transactions pgbench retried (with LOAD_OPTS=--max-tries=N) after a deadlock.
load_retried() { awk '/^number of transactions retried:/ { n += $5 } END { print n + 0 }' "$WORK/load-$1.out"; }
# load_errors NAME: the first lines that explain failures (for a test's diagnostics).
load_errors() { grep -E 'error|aborted|exited' "$WORK/load-$1.out" | head -5; }

# expect_no_load_failures NAME...: one test per load, passed when its pgbench
# saw no failed transaction.
expect_no_load_failures() {
  local b n
  for b in "$@"; do
    n=$(load_failures "$b")
    if [ "$n" = 0 ]; then ok "pgbench ($b, $(load_transactions "$b") transactions) saw no failed transaction"
    else not_ok "pgbench ($b) saw $n failures" "$(load_errors "$b")"; fi
  done
}
