#!/usr/bin/env bash
# Benchmark: the fence of online.move_tables' cut-over and of its way back
# (doc/move.md): how long the application's writes to the moved tables are
# unavailable (fence_ms in shift.move_fence: from the fence's lock request
# on the live side to the GRANT on the side made live), with pgbench
# inserting at BENCH_MOVE_RATE writes/s (default 500) as the application
# role into the live side, two tables of BENCH_MOVE_ROWS rows (default
# 200 000) between two throwaway clusters (wal_level = logical).
# BENCH_MOVE_ROUNDS cut-overs and ways back (default 3).  pgbench stops at
# each fence (it does not retry a permission error) and is started again on
# the side made live.  Target (issue 29): at most 1 000 ms.  Never fails on
# timing.
set -euo pipefail
: "${PGSHIFT_ROOT:?run through test/harness.sh (bash test/harness.sh exec bash test/bench/move_fence.sh)}"
ROWS=${BENCH_MOVE_ROWS:-200000}
RATE=${BENCH_MOVE_RATE:-500}
ROUNDS=${BENCH_MOVE_ROUNDS:-3}
PGSHIFT=${PGSHIFT:-pgshift}
PGBENCH=${PGSHIFT_PGBIN:-/usr/lib/postgresql/15/bin}/pgbench
DB=bench_move
export PGOPTIONS="-c client_min_messages=warning"
WORK=$(mktemp -d /tmp/pgshift-bench.XXXXXX)
chmod 755 "$WORK"
. "$PGSHIFT_ROOT/test/integration/cluster.sh"

LOAD=""
finish() {
  [ -z "$LOAD" ] || { kill "$LOAD" 2>/dev/null; wait "$LOAD" 2>/dev/null; } || true
  own_pair_stop
  rm -rf "$WORK"
}
trap finish EXIT
own_pair_start
for s in "$A_HOST:$A_PORT" "$B_HOST:$B_PORT"; do
  command psql -X -q -h "${s%:*}" -p "${s#*:}" -U postgres -d postgres \
    -c "CREATE DATABASE $DB" -c "CREATE ROLE app LOGIN" >/dev/null
done
qa() { command psql -X -q -A -t -v ON_ERROR_STOP=1 -h "$A_HOST" -p "$A_PORT" -U postgres -d "$DB" -c "$1"; }
qb() { command psql -X -q -A -t -v ON_ERROR_STOP=1 -h "$B_HOST" -p "$B_PORT" -U postgres -d "$DB" -c "$1"; }
qb "CREATE EXTENSION pg_shift" >/dev/null
qa "CREATE EXTENSION pg_shift;
    CREATE TABLE customers (id bigserial PRIMARY KEY, name text NOT NULL);
    CREATE TABLE orders (id bigserial PRIMARY KEY, customer bigint NOT NULL REFERENCES customers,
                         amount numeric(10,2), note text);
    INSERT INTO customers (name) SELECT 'c' || g FROM generate_series(1, $ROWS / 10) g;
    INSERT INTO orders (customer, amount, note)
      SELECT 1 + g % ($ROWS / 10), g / 100.0, repeat('x', 40) FROM generate_series(1, $ROWS) g;
    GRANT SELECT, INSERT, UPDATE, DELETE ON customers, orders TO app;
    GRANT USAGE ON SEQUENCE customers_id_seq, orders_id_seq TO app" >/dev/null
SRC="host=$A_HOST port=$A_PORT user=postgres dbname=$DB"
TGT="host=$B_HOST port=$B_PORT user=postgres dbname=$DB"
cat >"$WORK/move.lua" <<LUA
return migration {
  name = "bench_move",
  phases = { online.move_tables{ tables = { "customers", "orders" }, name = "bench", target = { dsn = "$TGT" } } },
}
LUA
cat >"$WORK/app.sql" <<SQL
\set c random(1, $ROWS / 10)
INSERT INTO orders (customer, amount) VALUES (:c, 1.50);
SQL
load() {   # HOST PORT: pgbench at RATE writes/s as app until the fence stops it
  [ -z "$LOAD" ] || wait "$LOAD" 2>/dev/null || true
  "$PGBENCH" -n -c 4 -j 2 -T 600 -R "$RATE" -h "$1" -p "$2" -U app -f "$WORK/app.sql" "$DB" >>"$WORK/pgbench.out" 2>&1 &
  LOAD=$!
  sleep 2
}
run() { "$PGSHIFT" --dsn "$SRC" "$@" >>"$WORK/pgshift.out" 2>&1 || { cat "$WORK/pgshift.out" >&2; exit 1; }; }

load "$A_HOST" "$A_PORT"
t0=$(date +%s.%N)
run run "$WORK/move.lua" --to bench-validate
copy=$(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $t0 }")
for r in $(seq 1 "$ROUNDS"); do
  run run "$WORK/move.lua" --to bench-cutover
  load "$B_HOST" "$B_PORT"
  run rollback "$WORK/move.lua" --to bench-validate
  load "$A_HOST" "$A_PORT"
done
kill "$LOAD" 2>/dev/null; wait "$LOAD" 2>/dev/null || true; LOAD=""

echo "## Moving tables: the fence at the cut-over and on the way back"
echo
echo "$ROWS orders and $((ROWS / 10)) customers, pgbench inserting at $RATE writes/s as the application role"
echo "(4 clients) into the live side; copy, sync and validate took $copy s. Target: fence ≤ 1000 ms."
echo
echo "| round | cut-over fence (ms) | way back fence (ms) |"
echo "|---:|---:|---:|"
qa "SELECT string_agg(format('| %s | %s | %s |', n, round(f.fence_ms::numeric, 1), round(b.fence_ms::numeric, 1)),
                  E'\\n' ORDER BY n)
      FROM (SELECT row_number() OVER (ORDER BY id) AS n, fence_ms FROM shift.move_fence
             WHERE move = 'bench' AND direction = 'forward') f
      JOIN (SELECT row_number() OVER (ORDER BY id) AS n, fence_ms FROM shift.move_fence
             WHERE move = 'bench' AND direction = 'back') b USING (n)"
qa "SELECT format('| max | %s | %s |', round(max(fence_ms) FILTER (WHERE direction = 'forward')::numeric, 1),
                  round(max(fence_ms) FILTER (WHERE direction = 'back')::numeric, 1))
      FROM shift.move_fence WHERE move = 'bench'"
echo
