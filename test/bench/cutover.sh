#!/usr/bin/env bash
# Benchmark: how long the cut-over holds its locks (shift.cutover's
# locked_ms: from the moment both tables are locked to the commit of the
# swap, the time every writer of the two tables waits) on a synced int ->
# bigint copy of BENCH_CUTOVER_ROWS rows each (default "1000000 4000000
# 16000000"), with two pgbench clients updating and inserting all along, the
# default check (the last 1 000 rows of each, by their keys).  The lock hold
# must not grow with the table: the ratio of each size to the first is the
# figure (target: at most 200 ms at 16 M rows).  Never fails on timing.
set -euo pipefail
SIZES=${BENCH_CUTOVER_ROWS:-"1000000 4000000 16000000"}
DB=bench_cutover
PGBENCH=${PGSHIFT_PGBIN:-/usr/lib/postgresql/15/bin}/pgbench
export PGOPTIONS="-c client_min_messages=warning"
psql() { command psql -X -q -v ON_ERROR_STOP=1 -d "$DB" "$@"; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }
WORK=$(mktemp -d /tmp/pgshift-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

cat >"$WORK/app.sql" <<'SQL'
\set id random(1, :rows)
UPDATE orders SET amount = amount + 1 WHERE id = :id;
INSERT INTO orders (customer, amount) VALUES ('app', 1);
SQL

echo "## The cut-over's lock hold against table size"
echo
echo "| rows | locked (ms) | vs $(set -- $SIZES; echo "$1") rows | attempts | lock wait (ms) | writers' TPS during the run |"
echo "|---:|---:|---:|---:|---:|---:|"
first=""
for rows in $SIZES; do
  dropdb --if-exists "$DB" >/dev/null 2>&1
  createdb "$DB"
  psql >/dev/null <<SQL
CREATE EXTENSION pg_shift;
CREATE TABLE orders (id serial PRIMARY KEY, customer text NOT NULL, amount int NOT NULL);
INSERT INTO orders (customer, amount) SELECT 'c' || (g % 1000), g % 100 FROM generate_series(1, $rows) g;
CREATE TABLE orders_v2 (id bigint PRIMARY KEY DEFAULT nextval('orders_id_seq'),
                        customer text NOT NULL, amount int NOT NULL);
SELECT shift.sync_create('orders', 'orders', "into" => 'orders_v2');
INSERT INTO orders_v2 SELECT * FROM orders ON CONFLICT DO NOTHING;
VACUUM ANALYZE orders;
VACUUM ANALYZE orders_v2;
SQL
  "$PGBENCH" -n -c 2 -T 12 -D rows="$rows" -f "$WORK/app.sql" "$DB" >"$WORK/pgbench.out" 2>&1 &
  bench=$!
  sleep 4
  read -r locked attempts wait_ms < <(psql -At -F ' ' -c \
    "SELECT round(locked_ms::numeric, 1), attempts, round(lock_wait_ms::numeric, 1)
       FROM shift.cutover('orders', lock_timeout => '1s', retries => 20)")
  wait $bench || true
  tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$WORK/pgbench.out" | head -1)
  [ -n "$first" ] || first=$locked
  echo "| $rows | $locked | $(calc '%.2f' "$locked / $first")× | $attempts | $wait_ms | ${tps:-?} |"
done
dropdb --if-exists "$DB" >/dev/null 2>&1
echo
echo "The cut-over's check compares the last rows of each table through each one's key index, so"
echo "neither the check nor the swap reads the whole table under the locks."
echo
