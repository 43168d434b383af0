#!/usr/bin/env bash
# online.move_tables under faults (doc/move.md, "Faults"), between two
# clusters with wal_level = logical (A, the source; B, the target), while an
# application writes (as role app, on the side it believes live: one
# customer, one order and an update of an older order a transaction; a fence
# error sends it to the other side).  Each fault is injected at a point the
# test holds the runner at (a lock, a transaction open on a server, the
# redirect hook waiting for a file), never after a sleep:
#   - the runner killed (SIGKILL) in each phase: check, schema (its
#     transaction committed, the phase not yet recorded done), subscribe
#     (CREATE SUBSCRIPTION waiting for the source's slot), sync (during the
#     initial copy), validate (the compare waiting for the target), cutover
#     (the source fenced, before the way back is enabled; and in the
#     redirect hook, before the lift), contract (the way back dropped, the
#     rest not yet): the next run completes;
#   - the target restarted during the initial copy and while the target
#     follows the source (validate), the source restarted during the copy,
#     the target stopped during the copy (the runner says which server and
#     what to do): the next run completes;
#   - a duplicate key inserted on the target: the apply fails again and
#     again; validate reports the subscription, its error count and what to
#     do instead of waiting; once the row is deleted the next run completes;
#   - the move rolled back to the start after a cut-over, then made again
#     under the same name.
# After each: the moved tables equal on both sides (pgshift compare), every
# write the application was told committed is on the live side, every
# publication, subscription and replication slot on either side is one the
# move recorded (and every record's object exists), and exactly one side
# lets the application write.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cluster.sh"

T_START=$(date +%s.%N)
DB=it_move_faults
second_cluster_start || { echo "Bail out! could not start cluster A"; exit 1; }
A_HOST=$SECOND_HOST A_PORT=$SECOND_PORT
PGPORT_SAVED=$PGPORT; PGPORT=$((PGPORT + 2))
second_cluster_start || { SECOND_HOST=$A_HOST; second_cluster_stop; echo "Bail out! could not start cluster B"; exit 1; }
PGPORT=$PGPORT_SAVED
B_HOST=$SECOND_HOST B_PORT=$SECOND_PORT
WRITER="" RUNNER=""
stop_all() {
  [ -z "$RUNNER" ] || kill -9 "$RUNNER" 2>/dev/null
  touch "$WORK/writer.stop"; [ -z "$WRITER" ] || wait "$WRITER" 2>/dev/null
  SECOND_HOST=$B_HOST; second_cluster_stop
  SECOND_HOST=$A_HOST; second_cluster_stop
  cleanup
}
trap stop_all EXIT

# ctl A|B pg_ctl-ARGS...: pg_ctl on cluster A or B
ctl() {
  local h; if [ "$1" = A ]; then h=$A_HOST; else h=$B_HOST; fi; shift
  _second_as_owner "$PGSHIFT_PGBIN/pg_ctl" -D "$h/data" -l "$h/server.log" -w -t 60 "$@" >/dev/null
}
# wal_retrieve_retry_interval: a failed apply worker starts again after 1 s, not 5
for h in "$A_HOST" "$B_HOST"; do
  printf "wal_level = logical\nwal_retrieve_retry_interval = '1s'\n" >>"$h/data/postgresql.conf"
done
ctl A restart && ctl B restart || { echo "Bail out! could not restart the clusters"; exit 1; }
PSQL=$PGSHIFT_PGBIN/psql
qa() { "$PSQL" -X -q -A -t -v ON_ERROR_STOP=1 -h "$A_HOST" -p "$A_PORT" -U postgres -d "$DB" -c "$1"; }
qb() { "$PSQL" -X -q -A -t -v ON_ERROR_STOP=1 -h "$B_HOST" -p "$B_PORT" -U postgres -d "$DB" -c "$1"; }
q_on() { if [ "$1" = A ]; then qa "$2"; else qb "$2"; fi; }
for s in A B; do
  if [ $s = A ]; then h=$A_HOST p=$A_PORT; else h=$B_HOST p=$B_PORT; fi
  createdb -h "$h" -p "$p" -U postgres "$DB"
  q_on $s "CREATE EXTENSION pg_shift; CREATE ROLE app LOGIN" >/dev/null
done
SRC="host=$A_HOST port=$A_PORT user=postgres dbname=$DB"
TGT="host=$B_HOST port=$B_PORT user=postgres dbname=$DB"

# orders is big enough for its initial copy to take a moment: the faults
# "during the copy" wait until it has copied rows and is not done
qa "CREATE TABLE customers (id bigserial PRIMARY KEY, name text NOT NULL);
    CREATE TABLE orders (id bigserial PRIMARY KEY, customer bigint NOT NULL REFERENCES customers,
                         amount numeric(10,2), note text);
    INSERT INTO customers (name) SELECT 'c' || g FROM generate_series(1, 1000) g;
    INSERT INTO orders (customer, amount, note)
      SELECT 1 + g % 1000, g / 100.0, repeat('n', 60) FROM generate_series(1, 100000) g;
    GRANT SELECT, INSERT, UPDATE, DELETE ON customers, orders TO app;
    GRANT USAGE ON SEQUENCE customers_id_seq, orders_id_seq TO app"

f=$(mig move <<LUA
return migration {
  name = "move_orders",
  phases = {
    online.move_tables{ tables = { "customers", "orders" }, name = "orders", target = { dsn = "$TGT" }, sync_timeout = 60,
                        redirect = function(db, target, live)
                          if io.open("$WORK/hold-redirect") then
                            io.open("$WORK/in-redirect", "w"):close()
                            while io.open("$WORK/hold-redirect") do os.execute("sleep 0.05") end
                          end
                        end },
  },
}
LUA
)

# ---- the application
writer() {
  local side=A host port out
  while [ ! -e "$WORK/writer.stop" ]; do
    if [ -e "$WORK/writer.pause" ]; then touch "$WORK/writer.paused"; sleep 0.05; continue; fi
    rm -f "$WORK/writer.paused"
    if [ $side = A ]; then host=$A_HOST port=$A_PORT; else host=$B_HOST port=$B_PORT; fi
    if out=$("$PSQL" -X -q -A -t -v ON_ERROR_STOP=1 -h "$host" -p "$port" -U app -d "$DB" -c \
        "WITH c AS (INSERT INTO customers (name) VALUES ('app') RETURNING id),
              o AS (INSERT INTO orders (customer, amount) SELECT id, 2.50 FROM c RETURNING customer, id),
              u AS (UPDATE orders SET amount = amount + 1 WHERE id = 1 + (random() * 5000)::int RETURNING id)
         SELECT customer || ' ' || id FROM o, (SELECT count(*) FROM u) x" 2>&1); then
      echo "$side $out" >>"$WORK/writes"
    elif [[ $out == *"permission denied for table"* ]]; then
      echo "$side" >>"$WORK/retries"
      if [ $side = A ]; then side=B; else side=A; fi
      sleep 0.01
    elif [[ $out == *"connect"* || $out == *"terminat"* || $out == *"shutting down"* ||
            $out == *"starting up"* || $out == *"closed the connection"* ]]; then
      echo "$side $out" >>"$WORK/unavailable"     # a server restarted: not written, tried again
      sleep 0.05
    else
      echo "$side $out" >>"$WORK/errors"
    fi
  done
}
touch "$WORK/writes" "$WORK/retries" "$WORK/errors" "$WORK/unavailable"
pause_writer() {   # until the writer is between two writes, paused
  rm -f "$WORK/writer.paused"; touch "$WORK/writer.pause"
  for _ in $(seq 1 200); do [ -e "$WORK/writer.paused" ] && return 0; sleep 0.05; done
  not_ok "the application paused"
}
writes_on() { grep -c "^$1 " "$WORK/writes"; }
wait_writes_on() {   # SIDE N: until N more writes went to SIDE
  local want=$(( $(writes_on "$1") + $2 ))
  for _ in $(seq 1 200); do [ "$(writes_on "$1")" -ge "$want" ] && return 0; sleep 0.05; done
  not_ok "the application wrote $2 rows on $1" "$(tail -3 "$WORK/errors")"
}

# ---- holding the runner, killing it
# hold A|B NAME SQL: a session on the cluster that runs SQL in a transaction
# and keeps it open (a minute at most) until release NAME
hold() {
  local h p; if [ "$1" = A ]; then h=$A_HOST p=$A_PORT; else h=$B_HOST p=$B_PORT; fi
  PGAPPNAME="hold_$2" "$PSQL" -X -q -h "$h" -p "$p" -U postgres -d "$DB" -v ON_ERROR_STOP=1 \
    -c "BEGIN" -c "$3" -c "SELECT pg_sleep(60)" >/dev/null 2>&1 &
  wait_sql "$1" "$2 is held" "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE application_name = 'hold_$2'
                                             AND query LIKE '%pg_sleep(60)%')"
}
release() {
  local s
  for s in A B; do
    q_on $s "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'hold_$1'" \
      >/dev/null 2>&1
  done
}
# wait_sql A|B DESC SQL [SECONDS]: polls SQL on that cluster until t (30 s at most)
wait_sql() {
  local i
  for i in $(seq 1 $(( ${4:-30} * 20 ))); do
    [ "$(q_on "$1" "$3" 2>/dev/null)" = t ] && return 0
    sleep 0.05
  done
  not_ok "timed out waiting until $2"
  return 1
}
# waits_on A|B TEXT: SQL that is true once a session runs a statement
# holding TEXT and waits for a lock
waits_on() {
  wait_sql "$1" "the runner waits at $2" "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE wait_event_type = 'Lock'
                                                         AND query LIKE '%$2%' AND application_name NOT LIKE 'hold_%')"
}
kill_runner() { kill -9 "$RUNNER" 2>/dev/null; wait "$RUNNER" 2>/dev/null; RUNNER=""; }
phase_running() {
  wait_sql A "phase $1 runs" "SELECT EXISTS (SELECT FROM shift.phase WHERE migration = 'move_orders'
                                              AND name = '$1' AND status = 'running')"
}
# until the target's copy of orders is under way and held: its slot and
# snapshot made on the source (state d), the worker waiting for the lock the
# test holds on the target's table (a copy of 100 000 rows let run could end
# before a restart reached it: state r, no fault injected)
copying() {
  wait_sql B "the initial copy of orders is under way, held at the target's table" \
    "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'logical replication worker'
                     AND wait_event_type = 'Lock')
        AND EXISTS (SELECT FROM pg_subscription_rel WHERE srrelid = 'orders'::regclass AND srsubstate = 'd')" 90
}
orders_state() { qb "SELECT coalesce((SELECT srsubstate::text FROM pg_subscription_rel WHERE srrelid = 'orders'::regclass), '-')"; }

# ---- what must hold after each fault
# SIDE: its publications, subscriptions and slots | those recorded in
# shift.move_object | whether app may write both moved tables there
side_state() {
  q_on "$1" "SELECT (SELECT coalesce(string_agg(x, ', ' ORDER BY x), '') FROM (
                       SELECT 'publication ' || pubname AS x FROM pg_publication
                       UNION ALL SELECT 'slot ' || slot_name FROM pg_replication_slots
                       UNION ALL SELECT 'subscription ' || subname FROM pg_subscription) o)
              || '|' || (SELECT coalesce(string_agg(kind || ' ' || object, ', ' ORDER BY kind || ' ' || object), '')
                           FROM shift.move_object WHERE kind IN ('publication', 'slot', 'subscription'))
              || '|' || coalesce((SELECT bool_and(has_table_privilege('app', c.oid, 'INSERT'))
                                    FROM pg_class c WHERE c.relname IN ('customers', 'orders') AND c.relkind = 'r'), false)"
}
writable() {
  local a b
  a=$(side_state A) b=$(side_state B)
  case ${a##*|}${b##*|} in truefalse) echo A ;; falsetrue) echo B ;; truetrue) echo "A and B" ;; *) echo none ;; esac
}
# expect_state WHAT LIVE A-OBJECTS B-OBJECTS: on each side exactly these
# publications, subscriptions and slots, each recorded by the move and
# nothing else recorded; the application may write on LIVE only; both sides
# equal (pgshift compare) when B has the tables; every write the
# application saw commit is on LIVE
expect_state() {
  local live=$2 a b dsn other t
  a=$(side_state A) b=$(side_state B)
  expect_eq "$1: replication objects on A | B" "${a%%|*} | ${b%%|*}" "$3 | $4"
  a=${a#*|} b=${b#*|}
  expect_eq "$1: each recorded by the move, each record's object there" "${a%%|*} | ${b%%|*}" "$3 | $4"
  case ${a##*|}${b##*|} in truefalse) a=A ;; falsetrue) a=B ;; truetrue) a="A and B" ;; *) a=none ;; esac
  expect_eq "$1: the application may write on $live only" "$a" "$live"
  if [ "$live" = A ]; then dsn=$SRC other=$TGT; else dsn=$TGT other=$SRC; fi
  if [ -n "$3$4" ]; then
    for t in customers orders; do
      pgshift compare --source "$dsn" --target "$other" --table "$t"
      expect_rc "$1: $t equal on both sides" 0
    done
  fi
  expect_eq "$1: every write the application saw commit is on $live" "$(written_missing "$live")" 0
}
written_missing() {   # LIVE: how many logged writes are not there
  local h p; if [ "$1" = A ]; then h=$A_HOST p=$A_PORT; else h=$B_HOST p=$B_PORT; fi
  { echo "CREATE TEMP TABLE w (c bigint, o bigint);"
    echo "COPY w FROM STDIN;"
    awk 'NF == 3 { print $2 "\t" $3 }' "$WORK/writes"
    echo '\.'
    echo "SELECT count(*) FROM w LEFT JOIN customers c ON c.id = w.c LEFT JOIN orders o ON o.id = w.o
           WHERE c.id IS NULL OR o.id IS NULL;"
  } | "$PSQL" -X -q -A -t -v ON_ERROR_STOP=1 -h "$h" -p "$p" -U postgres -d "$DB" -f - 2>&1
}
FWD_A="publication shift_move_orders, slot shift_move_orders"
FWD_B="subscription shift_move_orders"
LIVE_A="publication shift_move_orders, subscription shift_move_orders_rev"
LIVE_B="publication shift_move_orders_rev, slot shift_move_orders_rev"
t_mark() { ok "$1 (at $(awk -v s="$T_START" -v n="$(date +%s.%N)" 'BEGIN { printf "%.1f", n - s }') s)"; }
run_to() { pgshift --dsn "$SRC" run "$f" ${1:+--to "$1"}; }

writer & WRITER=$!
wait_writes_on A 10

# ======== the runner killed in each phase
# check: held at the target's check (pg_replication_origin locked there)
hold B origin "LOCK TABLE pg_catalog.pg_replication_origin IN ACCESS EXCLUSIVE MODE"
runner_bg k1 --dsn "$SRC" run "$f" --to orders-check
waits_on B move_check && kill_runner
release origin
run_to orders-check
expect_rc "killed in check: the next run completes the check" 0
expect_in "it took over from the killed runner" "$OUT" "taking over from pgshift pid"
expect_state "after check" A "" ""

# schema: the target's transaction committed, shift.phase_done held
hold B records "LOCK TABLE shift.move_object IN EXCLUSIVE MODE"
runner_bg k2 --dsn "$SRC" run "$f" --to orders-schema
waits_on B move_record
hold A phase "SELECT FROM shift.phase WHERE migration = 'move_orders' AND name = 'orders-schema' FOR UPDATE"
release records
waits_on A phase_done && kill_runner
release phase
expect_eq "killed in schema after its transaction committed: the tables are on B" \
  "$(qb "SELECT count(*) FROM pg_class WHERE relname IN ('customers', 'orders') AND relkind = 'r'")" 2
run_to orders-schema
expect_rc "killed in schema: the next run makes the tables again" 0
expect_state "after schema" A "" ""

# subscribe: CREATE SUBSCRIPTION waits for the source's slot (a transaction
# open on the source delays it); sync: with the copy of orders held (a
# lock on the target's orders), the runner waiting for it
hold A xid "SELECT pg_current_xact_id()"
runner_bg k3 --dsn "$SRC" run "$f" --to orders-sync
wait_sql B "CREATE SUBSCRIPTION runs" \
  "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE query LIKE 'CREATE SUBSCRIPTION%' AND state = 'active')" &&
  kill_runner
hold B copy "LOCK TABLE orders IN SHARE MODE"
release xid
wait_sql B "the killed runner's CREATE SUBSCRIPTION committed" "SELECT count(*) = 1 FROM pg_subscription"
runner_bg k4 --dsn "$SRC" run "$f" --to orders-sync
# (the copy of orders starts when a table-sync worker is free: its state
# goes from i to d, the copy then waits on the lock)
phase_running orders-sync &&
  wait_sql B "the copy of orders has begun" \
    "SELECT EXISTS (SELECT FROM pg_subscription_rel WHERE srrelid = 'orders'::regclass AND srsubstate = 'd')" &&
  kill_runner
expect_eq "killed in sync during the initial copy (orders not ready)" "$(orders_state)" d
release copy
run_to orders-sync
expect_rc "killed in subscribe, then in sync: the next run completes the sync" 0
expect_in "the subscription the killed run made was used" "$(cat "$WORK/k4.out")" "subscription shift_move_orders exists already"
expect_state "after sync" A "$FWD_A" "$FWD_B"
t_mark "the runner killed in check, schema, subscribe and sync"

# ======== a duplicate key on the target: the apply fails again and again
next=$(qa "SELECT last_value + 5 FROM pg_sequences WHERE sequencename = 'customers_id_seq'")
qb "INSERT INTO customers (id, name) VALUES ($next, 'conflict')"
wait_writes_on A 10
run_to orders-validate
expect_rc "a conflict on the target: validate fails" 1
expect_in "naming the subscription and its failures" "$OUT$ERR" "subscription shift_move_orders on the target failed to apply"
expect_in "with the statistics to look at" "$OUT$ERR" "apply_error_count"
expect_in "and what to do" "$OUT$ERR" "remove the conflicting row on the target"
qb "DELETE FROM customers WHERE id = $next AND name = 'conflict'"
run_to orders-validate
expect_rc "once the row is deleted on the target, the next run validates" 0
expect_state "after the conflict" A "$FWD_A" "$FWD_B"
t_mark "a conflict on the target"

# ======== the target restarted while it follows the source (the compare
# of validate waits for it: its orders locked, the apply waits)
pgshift --dsn "$SRC" rollback "$f" --to orders-sync
hold B apply "LOCK TABLE orders IN ACCESS EXCLUSIVE MODE"
runner_bg r1 --dsn "$SRC" run "$f" --to orders-validate
phase_running orders-validate && sleep 0.5
ctl B restart -m fast
wait "$RUNNER"; rc=$?; RUNNER=""
expect_eq "the target restarted during validate: the run fails" "$rc" 1
expect_in "saying the target went away" "$(cat "$WORK/r1.out")" "on $B_HOST:$B_PORT"
run_to orders-validate
expect_rc "the next run validates" 0
expect_state "after the target restarted during validate" A "$FWD_A" "$FWD_B"

# validate: the runner killed while the compare waits for the target
pgshift --dsn "$SRC" rollback "$f" --to orders-sync
hold B apply "LOCK TABLE orders IN ACCESS EXCLUSIVE MODE"
runner_bg k5 --dsn "$SRC" run "$f" --to orders-validate
phase_running orders-validate && sleep 0.5 && kill_runner
release apply
run_to orders-validate
expect_rc "killed in validate: the next run validates" 0
t_mark "the target restarted during validate, the runner killed in validate"

# ======== restarts during the initial copy (the move rolled back to its
# schema phase, so that the copy starts again)
# copy_fault NAME WHAT CMD...: rolls back to the schema, runs up to the
# sync in the background, runs CMD once the copy of orders is under way
copy_fault() {
  local name=$1 what=$2
  shift 2
  pgshift --dsn "$SRC" rollback "$f" --to orders-schema
  expect_rc "$what: rolled back to the schema" 0
  expect_eq "$what: the target's tables are empty again" \
    "$(qb "SELECT (SELECT count(*) FROM customers) + (SELECT count(*) FROM orders)")" 0
  # the application pauses until the copy is held: the apply worker opens the
  # target's orders for the first change it receives, waits for the test's
  # lock there, and launches no table sync worker until it has it (CI: both
  # tables stayed in state i for the hold's whole 60 s)
  pause_writer
  hold B copy "LOCK TABLE orders IN SHARE MODE"
  runner_bg "$name" --dsn "$SRC" run "$f" --to orders-sync
  local held=0
  copying || held=1
  rm -f "$WORK/writer.pause"
  if [ $held -eq 0 ]; then wait_writes_on A 3; "$@"; fi
  release copy
  wait "$RUNNER"; RC=$?; RUNNER=""
  OUT=$(cat "$WORK/$name.out") ERR=$OUT
}
copy_fault r2 "the target restarted" ctl B restart -m fast
expect_eq "the target restarted during the copy of orders" "$(orders_state)" d
expect_rc "the target restarted during the copy: the run fails" 1
run_to orders-validate
expect_rc "the next run completes the copy and validates" 0
expect_state "after the target restarted during the copy" A "$FWD_A" "$FWD_B"

copy_fault r3 "the source restarted" ctl A restart -m fast
expect_eq "the source restarted during the copy of orders" "$(orders_state)" d
expect_rc "the source restarted during the copy: the run fails" 1
run_to orders-validate
expect_rc "the next run completes the copy and validates" 0
expect_state "after the source restarted during the copy" A "$FWD_A" "$FWD_B"

copy_fault r4 "the target stopped" ctl B stop -m fast
expect_rc "the target stopped during the copy: the run fails" 1
expect_in "saying which server" "$OUT" "the target host=$B_HOST port=$B_PORT dbname=$DB cannot be reached"
expect_in "and what to do" "$OUT" "start it (or mend the network), then run again"
wait_writes_on A 10
ctl B start
expect_eq "the target stopped during the copy of orders" "$(orders_state)" d
run_to orders-validate
expect_rc "the target back, the next run completes the copy and validates" 0
expect_state "after the target stopped during the copy" A "$FWD_A" "$FWD_B"
t_mark "the target restarted, the source restarted and the target stopped during the copy"

# ======== the cut-over
# killed with the source fenced, before the way back is enabled (the
# sequences' setval held on the target)
"$PSQL" -X -q -h "$B_HOST" -p "$B_PORT" -U postgres -d "$DB" -v ON_ERROR_STOP=1 >/dev/null 2>&1 <<'SQL' &
SET application_name = hold_seq;
DO $$ BEGIN
  -- made (its creation waits for the transactions under way: not for this one)
  WHILE NOT EXISTS (SELECT FROM pg_catalog.pg_replication_slots
                     WHERE slot_name = 'shift_move_orders_rev' AND confirmed_flush_lsn IS NOT NULL) LOOP
    PERFORM pg_catalog.pg_sleep(0.002);
  END LOOP;
END $$;
BEGIN;
ALTER SEQUENCE customers_id_seq CACHE 1;
SELECT pg_sleep(60);
SQL
runner_bg k6 --dsn "$SRC" run "$f" --to orders-cutover
waits_on B setval && kill_runner
release seq
expect_eq "killed in the fence: the application may write nowhere" "$(writable)" none
t_mark "killed in the fence"
run_to orders-cutover
expect_rc "the next run completes the cut-over" 0
expect_in "and lifts the fence" "$OUT" "fence held"
wait_writes_on B 10
expect_state "after the cut-over" B "$LIVE_A" "$LIVE_B"

pgshift --dsn "$SRC" rollback "$f" --to orders-validate
expect_rc "the way back" 0
wait_writes_on A 10
expect_state "after the way back" A "$FWD_A" "$FWD_B"
t_mark "the way back"

# killed in the redirect hook: the target brought level, the way back
# enabled, the fence not yet lifted
touch "$WORK/hold-redirect"
runner_bg k7 --dsn "$SRC" run "$f" --to orders-cutover
for _ in $(seq 1 600); do [ -e "$WORK/in-redirect" ] && break; sleep 0.05; done
kill_runner
rm -f "$WORK/hold-redirect"
expect_eq "killed in the redirect hook: the application may write nowhere" "$(writable)" none
run_to orders-cutover
expect_rc "the next run completes the cut-over" 0
wait_writes_on B 10
expect_state "after the cut-over" B "$LIVE_A" "$LIVE_B"
t_mark "the runner killed twice in the cut-over's fence, the way back"

# ======== rolled back to the start, then moved again under the same name
pgshift --dsn "$SRC" rollback "$f"
expect_rc "the whole move rolls back" 0
wait_writes_on A 10
expect_state "after the rollback to the start" A "" ""
expect_eq "the target's tables are gone" "$(qb "SELECT count(*) FROM pg_class WHERE relname IN ('customers', 'orders')")" 0
run_to orders-cutover
expect_rc "the same move runs again up to the cut-over" 0
wait_writes_on B 10
expect_state "after moving again" B "$LIVE_A" "$LIVE_B"

# ======== contract: killed once the way back is dropped
hold B records "LOCK TABLE shift.move_object IN EXCLUSIVE MODE"
runner_bg k8 --dsn "$SRC" run "$f"
waits_on B move_forget && kill_runner
release records
run_to
expect_rc "killed in contract: the next run completes the contract" 0
wait_writes_on B 10
touch "$WORK/writer.stop"; wait "$WRITER"; WRITER=""
expect_state "after the contract" B "" ""
expect_eq "no move records left on either side" \
  "$(qa "SELECT count(*) FROM shift.move_object")+$(qb "SELECT count(*) FROM shift.move_object")" "0+0"
expect_eq "the application saw no error but fences it retried and servers that restarted" "$(cat "$WORK/errors")" ""
ok "it wrote $(writes_on A) times on A, $(writes_on B) on B; retried $(wc -l <"$WORK/retries") fences; found a server down $(wc -l <"$WORK/unavailable") times"
t_mark "moved again, contract"
