#!/usr/bin/env bash
# Benchmark: is the load held while example (2) (orders.id int -> bigint,
# scripts/examples/orders_id_bigint.lua) runs on a busy table?  BENCH_LOAD_ROWS
# orders (default 1 000 000), 4 pgbench clients running the application's mix
# (an order paid, a new order and order line now and then, a lookup through a
# view).  Measured from pgbench's per-transaction log, in the same run:
#   - baseline: the application alone, BENCH_LOAD_SECONDS (default 20);
#   - the floor of any dual write: the application writing orders_v2 itself
#     (each UPDATE and INSERT done twice, no trigger, orders_v2 full);
#   - the sync alone: every write mirrored by the trigger, no backfill;
#   - during the backfill (the sync trigger active, the copy running), at the
#     example's pace (its sleep_ratio: the copy rests that many times as long
#     as each batch took), then again from the start at sleep_ratio 3 and
#     flat out (sleep_ratio 0), for contrast;
#   - around the cut-over: the longest any transaction waited.
# Prints TPS and p50/p99/max latency with ratios to the baseline; never fails.
set -euo pipefail
ROWS=${BENCH_LOAD_ROWS:-1000000}
SECS=${BENCH_LOAD_SECONDS:-20}
DB=bench_load
EX=$PGSHIFT_ROOT/scripts/examples/orders_id_bigint.lua
PGBENCH=${PGSHIFT_PGBIN:-/usr/lib/postgresql/15/bin}/pgbench
# the pace the example's backfill runs at
PACE=$(sed -n 's/.*db:backfill {.*sleep_ratio = \([0-9.]*\).*/\1/p' "$EX")
[ -n "$PACE" ] || { echo "load.sh: no sleep_ratio in the db:backfill of $EX" >&2; exit 1; }
WORK=$(mktemp -d /tmp/pgshift-load.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export PGOPTIONS="-c client_min_messages=warning"
psql() { command psql -X -q -v ON_ERROR_STOP=1 -d "$DB" "$@"; }
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }

dropdb --if-exists "$DB" >/dev/null 2>&1
createdb "$DB"
psql >/dev/null <<SQL
CREATE EXTENSION pg_shift;
CREATE TABLE orders (id serial PRIMARY KEY, customer_id int NOT NULL, status text NOT NULL,
                     amount numeric(12,2) NOT NULL, created_at timestamptz NOT NULL, note text);
INSERT INTO orders (customer_id, status, amount, created_at)
     SELECT g % 50000, 'new', (g % 1000) / 10.0, timestamptz '2024-01-01' + g * interval '1 min'
       FROM generate_series(1, $ROWS) g;
CREATE INDEX orders_customer_id_idx ON orders (customer_id);
CREATE TABLE order_lines (id bigserial PRIMARY KEY, order_id int NOT NULL REFERENCES orders (id),
                          sku text NOT NULL, qty int NOT NULL);
INSERT INTO order_lines (order_id, sku, qty) SELECT g, 'sku-' || (g % 300), 1 FROM generate_series(1, $ROWS, 10) g;
CREATE VIEW open_orders AS SELECT id, customer_id, amount FROM orders WHERE status <> 'done';
VACUUM ANALYZE orders;
VACUUM ANALYZE order_lines;
SQL
# app_sql [both]: the application's transaction; with "both" the application
# keeps orders_v2 current itself (each UPDATE and INSERT done on both tables)
app_sql() {
  local new_order="INSERT INTO orders (customer_id, status, amount, created_at) SELECT :c, 'new', 9.99, now() WHERE :op <= 2"
  printf '%s\n' "\\set id random(1, $ROWS)" '\set c random(1, 50000)' '\set op random(1, 10)' 'BEGIN;' \
    "UPDATE orders SET status = 'paid', amount = amount + 1 WHERE id = :id;"
  if [ "${1:-}" = both ]; then
    echo "UPDATE orders_v2 SET status = 'paid', amount = amount + 1 WHERE id = :id;"
    echo "WITH n AS ($new_order RETURNING *) INSERT INTO orders_v2 SELECT * FROM n;"
  else
    echo "$new_order;"
  fi
  printf '%s\n' "INSERT INTO order_lines (order_id, sku, qty) SELECT :id, 'sku-x', :op WHERE :op = 3;" \
    'SELECT count(*) FROM open_orders WHERE customer_id = :c;' 'END;'
}
app_sql >"$WORK/app.sql"
app_sql both >"$WORK/both.sql"

# pgbench NAME SECONDS [SCRIPT]: the application for SECONDS, one log line per transaction
bench() {
  (cd "$WORK" && exec "$PGBENCH" -n -c 4 -j 2 -T "$2" -f "${3:-app.sql}" -l --log-prefix="log-$1" "$DB" \
     >"$WORK/summary-$1" 2>&1)
}
# bench_bg NAME SECONDS: the same in the background; bench_stop ends it
bench_bg() {
  (cd "$WORK" && exec "$PGBENCH" -n -c 4 -j 2 -T "$2" -f app.sql -l --log-prefix="log-$1" "$DB" \
     >"$WORK/summary-$1" 2>&1) &
  bench_pid=$!
}
bench_stop() { kill -TERM "$bench_pid" 2>/dev/null || true; wait "$bench_pid" 2>/dev/null || true; }
# stats NAME FROM TO: tps, p50, p99 and max latency (ms) of the transactions
# that ended between the epoch times FROM and TO (0 0: all)
stats() {
  cat "$WORK"/log-"$1".* | awk -v from="$2" -v to="$3" '
    { t = $5 + $6 / 1e6
      if (from > 0 && (t < from || t > to)) next
      printf "%.3f %.6f\n", $3 / 1000.0, t }' | sort -g >"$WORK/window"
  awk -v from="$2" -v to="$3" '
    { lat[NR] = $1; if (NR == 1 || $2 < first) first = $2; if ($2 > last) last = $2 }
    END {
      n = NR
      if (n == 0) { print "0 0 0 0"; exit }
      span = (from > 0) ? to - from : last - first
      printf "%.0f %.2f %.2f %.2f\n", n / span, lat[int(n * 0.5) + 1], lat[int(n * 0.99) + 1], lat[n]
    }' "$WORK/window"
}

bench base "$SECS"
read -r base_tps base_p50 base_p99 base_max < <(stats base 0 0)

"$PGSHIFT" --dsn "dbname=$DB" run "$EX" --to expand -q
psql -c "INSERT INTO orders_v2 SELECT * FROM orders" -c "VACUUM ANALYZE orders_v2" >/dev/null
bench both "$SECS" both.sql
read -r bo_tps bo_p50 bo_p99 bo_max < <(stats both 0 0)
psql -c "TRUNCATE orders_v2" >/dev/null

"$PGSHIFT" --dsn "dbname=$DB" run "$EX" --to sync -q
bench synced "$SECS"
read -r sy_tps sy_p50 sy_p99 sy_max < <(stats synced 0 0)

# the backfill at the example's pace, under load
bench_bg during $((SECS * 10))
sleep 3
t0=$(now)
"$PGSHIFT" --dsn "dbname=$DB" run "$EX" --to backfill -q
t1=$(now)
read -r bf_tps bf_p50 bf_p99 bf_max < <(stats during "$t0" "$t1")
# and the cut-over, still under load (its lock_timeout is 1 s, retried)
"$PGSHIFT" --dsn "dbname=$DB" run "$EX" --to validate -q
t2=$(now)
"$PGSHIFT" --dsn "dbname=$DB" run "$EX" --to cutover >"$WORK/cutover.out"
t3=$(now)
attempts=$(sed -n 's/.* \([0-9]*\) attempt(s).*/\1/p' "$WORK/cutover.out")
sleep 2
bench_stop
read -r co_tps co_p50 co_p99 co_max < <(stats during "$t2" "$(calc "%.6f" "$t3 + 1")")
bf_secs=$(calc "%.1f" "$t1 - $t0")

# again, from the start, at another pace: rerun NAME SLEEP_RATIO sets
# NAME_tps NAME_p50 NAME_p99 NAME_max NAME_secs
rerun() {
  local t4 t5
  "$PGSHIFT" --dsn "dbname=$DB" rollback "$EX" --to sync -q
  psql -c "SELECT shift.backfill_drop(name) FROM shift.backfill" -c "TRUNCATE orders_v2" >/dev/null
  bench_bg "$1" $((SECS * 10))
  sleep 3
  psql -c "SELECT shift.backfill_create('orders_id_bigint:backfill', 'orders', \"into\" => 'orders_v2',
             on_conflict => 'nothing', sleep_ratio => $2, target_ms => 50, if_exists => 'reuse',
             migration => 'orders_id_bigint', phase => 'backfill')" >/dev/null
  t4=$(now)
  "$PGSHIFT" --dsn "dbname=$DB" run "$EX" --to backfill -q
  t5=$(now)
  bench_stop
  read -r "${1}_tps" "${1}_p50" "${1}_p99" "${1}_max" < <(stats "$1" "$t4" "$t5")
  printf -v "${1}_secs" '%s' "$(calc "%.1f" "$t5 - $t4")"
}
QUICK=3
rerun quick "$QUICK"
rerun flat 0

ratio() { calc "%.2f" "$1 / $2"; }
echo "## Load held: example (2) on $ROWS orders, 4 pgbench clients"
echo
echo "| window | seconds | TPS | TPS vs baseline | p50 ms | p99 ms | p99 vs baseline | max ms |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
printf '| baseline (application alone) | %s | %s | 1.00 | %s | %s | 1.00 | %s |\n' "$SECS" "$base_tps" "$base_p50" "$base_p99" "$base_max"
printf '| the application writing orders_v2 itself (the floor of any dual write) | %s | %s | %s | %s | %s | %s | %s |\n' "$SECS" "$bo_tps" \
  "$(ratio "$bo_tps" "$base_tps")" "$bo_p50" "$bo_p99" "$(ratio "$bo_p99" "$base_p99")" "$bo_max"
printf '| the sync alone (every write mirrored, no backfill) | %s | %s | %s | %s | %s | %s | %s |\n' "$SECS" "$sy_tps" \
  "$(ratio "$sy_tps" "$base_tps")" "$sy_p50" "$sy_p99" "$(ratio "$sy_p99" "$base_p99")" "$sy_max"
printf '| backfill at the example'"'"'s pace (sleep_ratio %s) | %s | %s | %s | %s | %s | %s | %s |\n' "$PACE" "$bf_secs" "$bf_tps" "$(ratio "$bf_tps" "$base_tps")" \
  "$bf_p50" "$bf_p99" "$(ratio "$bf_p99" "$base_p99")" "$bf_max"
# shellcheck disable=SC2154  # set by rerun
printf '| backfill at sleep_ratio %s, for contrast | %s | %s | %s | %s | %s | %s | %s |\n' "$QUICK" "$quick_secs" "$quick_tps" "$(ratio "$quick_tps" "$base_tps")" \
  "$quick_p50" "$quick_p99" "$(ratio "$quick_p99" "$base_p99")" "$quick_max"
# shellcheck disable=SC2154
printf '| backfill flat out (sleep_ratio 0), for contrast | %s | %s | %s | %s | %s | %s | %s |\n' "$flat_secs" "$flat_tps" "$(ratio "$flat_tps" "$base_tps")" \
  "$flat_p50" "$flat_p99" "$(ratio "$flat_p99" "$base_p99")" "$flat_max"
printf '| cut-over (%s attempt(s)) | %s | %s | %s | %s | %s | %s | %s |\n' "$attempts" "$(calc "%.1f" "$t3 - $t2")" "$co_tps" \
  "$(ratio "$co_tps" "$base_tps")" "$co_p50" "$co_p99" "$(ratio "$co_p99" "$base_p99")" "$co_max"
echo
echo "Targets during the example's backfill: TPS ≥ 80 % of the baseline (measured: $(ratio "$bf_tps" "$base_tps"))," \
  "p99 ≤ 3× the baseline (measured: $(ratio "$bf_p99" "$base_p99")×);" \
  "around the cut-over no transaction waited longer than lock_timeout (1 s) plus one retry:" \
  "longest $(calc "%.0f" "$co_max") ms." \
  "Any dual write costs the application: writing orders_v2 itself it kept $(ratio "$bo_tps" "$base_tps") of the baseline's TPS."
echo
dropdb "$DB"
