#!/usr/bin/env bash
# Benchmark: copying a MariaDB table into PostgreSQL (doc/mysql.md), three
# ways on the same rows of one throwaway MariaDB, and comparing it across the
# engines, two ways; in one run:
#   copy   (a) INSERT INTO orders SELECT <mapping> FROM f_orders, one
#              statement through mysql_fdw (the baseline);
#          (b) CALL shift.backfill_run of a job with key_columns and the same
#              select: keyset batches, each committed with its checkpoint;
#          (c) pgloader (Debian's pgloader; skipped, with a message, when it
#              is not installed), data only, into a table it makes.
#   compare (d) shift.capture_compare of a capture over the foreign table
#              (shift.compare: the bucket sums of both sides, then the rows of
#              the buckets that differ);
#          (e) pulling both sides and diffing them in PostgreSQL: EXCEPT ALL
#              both ways (MariaDB's rows read twice).
# BENCH_MYSQL_ROWS rows (default 1 000 000), BENCH_MYSQL_ROUNDS rounds
# (default 3, the medians reported, the methods' order reversed every other
# round).  Every copy is verified before it counts: (a) and (b) checksum
# equal, (c) the same row count.  Targets (issue 30): (b) ≥ 0.8× (a), and
# ahead of (c).  Never fails on timing.
set -euo pipefail
: "${PGSHIFT_ROOT:?run through test/harness.sh (bash test/harness.sh exec bash test/bench/mysql.sh)}"
ROWS=${BENCH_MYSQL_ROWS:-1000000}
ROUNDS=${BENCH_MYSQL_ROUNDS:-3}
DB=bench_mysql
export PGOPTIONS="-c client_min_messages=warning"
WORK=$(mktemp -d /tmp/pgshift-bench.XXXXXX)
chmod 755 "$WORK"
q() { command psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$DB" -c "$1"; }
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
. "$PGSHIFT_ROOT/test/integration/mariadb.sh"
finish() { mariadb_stop; rm -rf "$WORK"; }
trap finish EXIT

mariadb_start
dropdb --if-exists "$DB" >/dev/null 2>&1
createdb "$DB"
mariadb_fdw_server maria
MAP="id, customer_id, paid <> 0, amount, note, created AT TIME ZONE 'UTC'"
my "CREATE TABLE app.orders (
      id INT UNSIGNED NOT NULL PRIMARY KEY, customer_id INT UNSIGNED NOT NULL,
      paid TINYINT(1) NOT NULL, amount DECIMAL(12, 2) NOT NULL, note VARCHAR(200) NULL,
      created DATETIME(6) NOT NULL, KEY (customer_id)) CHARACTER SET utf8mb4;
    INSERT INTO app.orders SELECT seq, 1 + seq % 9973, seq % 3 = 0, seq * 1.25, CONCAT('order ', seq, ' ü'),
                                  '2024-03-31 00:30:00.123456' + INTERVAL seq * 61 SECOND
      FROM app.seq_1_to_$ROWS;
    ANALYZE TABLE app.orders" >/dev/null
q "CREATE EXTENSION pg_shift;
   CREATE FOREIGN TABLE f_orders (id bigint NOT NULL, customer_id bigint NOT NULL, paid smallint NOT NULL,
     amount numeric(12, 2) NOT NULL, note text, created timestamp NOT NULL)
     SERVER maria OPTIONS (dbname 'app', table_name 'orders');
   CREATE TABLE orders_a (id bigint PRIMARY KEY, customer_id bigint NOT NULL, paid boolean NOT NULL,
     amount numeric(12, 2) NOT NULL, note text, created timestamptz NOT NULL);
   CREATE TABLE orders_b (LIKE orders_a INCLUDING ALL)"

HAVE_PGLOADER=0
command -v pgloader >/dev/null && HAVE_PGLOADER=1
SOCK=$(q "SELECT split_part(current_setting('unix_socket_directories'), ',', 1)")
PORT=$(q "SELECT current_setting('port')")

copy_a() { q "TRUNCATE orders_a; INSERT INTO orders_a SELECT $MAP FROM f_orders"; }
copy_b() {
  q "SELECT shift.backfill_drop(name) FROM shift.backfill_progress WHERE name = 'bench_b'" >/dev/null
  q "TRUNCATE orders_b"
  q "SELECT shift.backfill_create('bench_b', 'f_orders', \"into\" => 'orders_b', key_columns => '{id}',
                                  \"select\" => \$\$$MAP\$\$, sleep_ratio => 0, max_lag => NULL)" >/dev/null
  q "CALL shift.backfill_run('bench_b')"
}
copy_c() {
  q "DROP SCHEMA IF EXISTS app CASCADE" >/dev/null
  cat >"$WORK/load" <<LOAD
LOAD DATABASE
  FROM mysql://pgshift:$MARIADB_PASSWORD@127.0.0.1:$MARIADB_PORT/app
  INTO postgresql://postgres@unix:$SOCK:$PORT/$DB
  WITH include no drop, create tables, no foreign keys, create no indexes, workers = 2, concurrency = 1
  INCLUDING ONLY TABLE NAMES MATCHING 'orders';
LOAD
  pgloader --quiet "$WORK/load" >"$WORK/pgloader.log" 2>&1 || { cat "$WORK/pgloader.log" >&2; return 1; }
}

declare -A SECS
for m in a b c d e; do SECS[$m]=""; done
for r in $(seq 1 "$ROUNDS"); do
  order="a b c"
  [ $((r % 2)) -eq 0 ] && order="c b a"
  for m in $order; do
    [ "$m" = c ] && [ $HAVE_PGLOADER -eq 0 ] && continue
    t0=$(now); "copy_$m"; t1=$(now)
    SECS[$m]="${SECS[$m]} $(calc '%.3f' "$t1 - $t0")"
  done
  # verified before it counts
  want=$(q "SELECT checksum FROM shift.table_checksum('orders_a')")
  [ "$(q "SELECT count(*) FROM orders_a")" = "$ROWS" ] || { echo "copy (a) has the wrong row count" >&2; exit 1; }
  [ "$(q "SELECT checksum FROM shift.table_checksum('orders_b')")" = "$want" ] \
    || { echo "copy (b) differs from (a)" >&2; exit 1; }
  if [ $HAVE_PGLOADER -eq 1 ]; then
    [ "$(q "SELECT count(*) FROM app.orders")" = "$ROWS" ] || { echo "copy (c) has the wrong row count" >&2; exit 1; }
  fi
done

# compare across the engines: one row changed on the PostgreSQL side
q "CREATE TABLE bench_log (seq bigint, id bigint, kind text, at timestamp);
   SELECT shift.capture_create('bench_cmp', changelog => 'bench_log', source => 'f_orders', \"into\" => 'orders_b',
     key_columns => '{id}', \"select\" => \$\$$MAP\$\$)" >/dev/null
q "UPDATE orders_b SET note = 'changed' WHERE id = $((ROWS / 2))"
for r in $(seq 1 "$ROUNDS"); do
  t0=$(now); nd=$(q "SELECT count(*) FROM shift.capture_compare('bench_cmp')"); t1=$(now)
  SECS[d]="${SECS[d]} $(calc '%.3f' "$t1 - $t0")"
  [ "$nd" = 1 ] || { echo "(d) found $nd differences, not 1" >&2; exit 1; }
  t0=$(now)
  ne=$(q "SELECT (SELECT count(*) FROM (SELECT $MAP FROM f_orders EXCEPT ALL TABLE orders_b) x)
               + (SELECT count(*) FROM (TABLE orders_b EXCEPT ALL SELECT $MAP FROM f_orders) y)")
  t1=$(now)
  SECS[e]="${SECS[e]} $(calc '%.3f' "$t1 - $t0")"
  [ "$ne" = 2 ] || { echo "(e) found $ne rows, not 2" >&2; exit 1; }
done

med() { echo "${SECS[$1]}" | median; }
A=$(med a); B=$(med b); D=$(med d); E=$(med e)
echo "## From MariaDB: copy $ROWS rows through mysql_fdw, and compare across the engines (median of $ROUNDS rounds)"
echo
echo "| method | seconds | rows/s | vs (a) |"
echo "|---|---:|---:|---:|"
echo "| (a) INSERT INTO ... SELECT <mapping> FROM f_orders | $A | $(calc '%.0f' "$ROWS / $A") | 1.00× |"
echo "| (b) CALL shift.backfill_run (keyset batches, checkpointed) | $B | $(calc '%.0f' "$ROWS / $B") | $(calc '%.2f' "$A / $B")× |"
if [ $HAVE_PGLOADER -eq 1 ]; then
  C=$(med c)
  echo "| (c) pgloader (data only, 2 workers) | $C | $(calc '%.0f' "$ROWS / $C") | $(calc '%.2f' "$A / $C")× |"
else
  echo "| (c) pgloader | skipped: pgloader is not installed (apt-get install pgloader) | | |"
fi
echo
echo "| compare, one row different | seconds | vs (e) |"
echo "|---|---:|---:|"
echo "| (d) shift.capture_compare (MariaDB read once: bucket sums, its rows spooled) | $D | $(calc '%.2f' "$E / $D")× |"
echo "| (e) EXCEPT ALL both ways (both sides pulled) | $E | 1.00× |"
echo
echo "Each round's seconds: (a)${SECS[a]}; (b)${SECS[b]}; (c)${SECS[c]:- skipped}; (d)${SECS[d]}; (e)${SECS[e]}."
echo "Targets: (b) ≥ 0.8× (a) (measured: $(calc '%.2f' "$A / $B")×)$([ $HAVE_PGLOADER -eq 1 ] && echo ", and ahead of pgloader (measured: $(calc '%.2f' "$C / $B")× its speed)")."
dropdb "$DB"
