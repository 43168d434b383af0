#!/usr/bin/env bash
# Benchmark: a column rename through version schemas (online.rename_column:
# the versions' views, ALTER TABLE ... RENAME COLUMN, the old version
# dropped) on tables of BENCH_RENAME_ROWS rows (default "1000000 10000000"):
# the phases' own time as the runner records it (shift.phase_status), and
# the whole run and its rollback timed here, each the best of three runs
# (each rolled back).  It moves no data, so the phases' time must not grow
# with the table: the ratio of each size to the first is the figure
# (target: about 1×).  The baseline, measured in the same run on the first
# size only, is what a rename costs when it copies the column (ADD COLUMN,
# then one UPDATE of every row; a batched backfill does the same work in
# pieces).  Never fails on timing.
set -euo pipefail
SIZES=${BENCH_RENAME_ROWS:-"1000000 10000000"}
DB=bench_rename
PGSHIFT=${PGSHIFT:-pgshift}
export PGOPTIONS="-c client_min_messages=warning"
psql() { command psql -X -q -v ON_ERROR_STOP=1 -d "$DB" "$@"; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
WORK=$(mktemp -d /tmp/pgshift-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

cat >"$WORK/rename.lua" <<'LUA'
return migration {
  name = "rename_rating",
  phases = {
    online.rename_column{ table = "orders", from = "rating", to = "score", name = "rating",
                          old_version = "app_v1", new_version = "app_v2" },
  },
}
LUA

echo "## A column rename through version schemas against table size"
echo
echo "| rows | table size | the three phases (ms) | vs $(set -- $SIZES; echo "$1") rows | whole run, with pgshift's start and bookkeeping (ms) | rollback of the three (ms) | copy baseline: ADD COLUMN + UPDATE (ms) |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
# a warm-up on a table of one row: the first runs of a new cluster pay for
# its cold caches, which would make the first size look slower
createdb "$DB"
psql -c "CREATE EXTENSION pg_shift" -c "CREATE TABLE orders (id bigint PRIMARY KEY, rating int NOT NULL DEFAULT 3, note text)" \
  -c "INSERT INTO orders VALUES (1, 1, 'one')" >/dev/null
"$PGSHIFT" --dsn "dbname=$DB" --quiet run "$WORK/rename.lua" >/dev/null 2>&1
"$PGSHIFT" --dsn "dbname=$DB" --quiet rollback "$WORK/rename.lua" >/dev/null 2>&1
first=""
for rows in $SIZES; do
  dropdb --if-exists "$DB" >/dev/null 2>&1
  createdb "$DB"
  psql >/dev/null <<SQL
CREATE EXTENSION pg_shift;
CREATE TABLE orders (id bigint PRIMARY KEY, rating int NOT NULL DEFAULT 3, note text);
INSERT INTO orders SELECT g, g % 5, 'order ' || g FROM generate_series(1, $rows) g;
VACUUM ANALYZE orders;
CHECKPOINT;
SQL
  size=$(psql -At -c "SELECT pg_size_pretty(pg_total_relation_size('orders'))")
  # the best of three runs, each rolled back (a first run also pays for cold caches)
  run="" rollback="" phases=""
  for _ in 1 2 3; do
    t0=$(now_ms)
    "$PGSHIFT" --dsn "dbname=$DB" --quiet run "$WORK/rename.lua" >"$WORK/run.out" 2>&1
    t1=$(now_ms)
    p=$(psql -At -c "SELECT round(sum(extract(epoch FROM duration)) * 1000)
                       FROM shift.phase_status WHERE migration = 'rename_rating'")
    [ -n "$phases" ] && [ "$phases" -le "$p" ] || phases=$p
    t1b=$(now_ms)
    "$PGSHIFT" --dsn "dbname=$DB" --quiet rollback "$WORK/rename.lua" >"$WORK/rollback.out" 2>&1
    t2=$(now_ms)
    [ -n "$run" ] && [ "$run" -le $((t1 - t0)) ] || run=$((t1 - t0))
    [ -n "$rollback" ] && [ "$rollback" -le $((t2 - t1b)) ] || rollback=$((t2 - t1b))
  done
  copy="-"
  if [ -z "$first" ]; then
    first=$phases
    # the baseline: the same rename by copying the column, on the same table
    t0=$(now_ms)
    psql -c "ALTER TABLE orders ADD COLUMN score int" -c "UPDATE orders SET score = rating" >/dev/null
    copy=$(( $(now_ms) - t0 ))
  fi
  echo "| $rows | $size | $phases | $(calc '%.2f' "$phases / $first")× | $run | $rollback | $copy |"
done
dropdb --if-exists "$DB" >/dev/null 2>&1
echo
echo "Each run is a fresh pgshift process (connection, migration bookkeeping, three phases); the"
echo "rename itself is a catalog change, and the views refer to the column by number."
echo
