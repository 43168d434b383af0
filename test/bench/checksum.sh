#!/usr/bin/env bash
# Benchmark: checksumming a cached table with 8 columns (bigint, int, text with
# some NULLs, timestamptz, numeric(12,2), float8, boolean, jsonb) several
# ways on the same data in one run: count(*), count(last column) (a full
# deform), shift.table_checksum, sum(hashtext(t::text)),
# bit_xor(hash_record_extended), data-diff's PostgreSQL checksum (and the
# cheaper form this bench used before), and pt-table-checksum's
# md5(string_agg) per 100 000-row chunk.  Then shift.compare of two identical
# copies, and pgshift compare of two servers.  One process per statement
# (max_parallel_workers_per_gather = 0) so rows/s compare work, not cores;
# each statement timed on its second run in its session (see timed).
# Prints a markdown table of rows/s and ratios; never fails on timing.
# BENCH_CHECKSUM_ROWS sets the size (default 2 000 000, the
# table of issue 25's figures), BENCH_ROUNDS the rounds.
set -euo pipefail
ROWS=${BENCH_CHECKSUM_ROWS:-2000000}
ROUNDS=${BENCH_ROUNDS:-3}
DB=bench_checksum
export PGOPTIONS="-c client_min_messages=warning -c max_parallel_workers_per_gather=0"
psql() { command psql -X -q -v ON_ERROR_STOP=1 -d "$DB" "$@"; }
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

dropdb --if-exists "$DB" >/dev/null 2>&1
createdb "$DB"
psql -c "CREATE EXTENSION pg_shift" >/dev/null
psql >/dev/null <<SQL
CREATE TABLE t (id bigint PRIMARY KEY, n int, label text, created timestamptz, amount numeric(12,2),
                score float8, active boolean, doc jsonb);
INSERT INTO t
SELECT g, g % 1000, CASE WHEN g % 10 = 0 THEN NULL ELSE 'customer-' || lpad(g::text, 8, '0') || '-' || substr(md5(g::text), 1, 6) END,
       timestamptz '2024-01-01' + g * interval '1 second', (g % 100000) / 100.0, g * 0.25, g % 3 = 0,
       jsonb_build_object('k', g % 100, 'tag', 'T' || g % 17)
  FROM generate_series(1, $ROWS) g;
CREATE TABLE t2 AS SELECT * FROM t;
ALTER TABLE t2 ADD PRIMARY KEY (id);
SQL
psql -c "VACUUM ANALYZE t" -c "VACUUM ANALYZE t2" >/dev/null
# The backend's CPU time (user + system, from /proc/PID/stat, in clock ticks)
# as well as the wall clock: on a machine shared with other work, a query
# waits for a core for a varying share of its wall time, which the CPU time
# leaves out (the query's own work, including its cache misses, stays in).
# Each measurement runs the statement twice in one session and times the
# second run: the first statement a new backend runs that reads a table
# also pays for the backend's first touch of each shared buffer it maps (on
# this machine about 0.1 s for this table, whatever the statement), which is
# not the statement's work; a connection pool or data-diff's threads keep
# their sessions, and so does a DBA's psql.
psql -c "SELECT pg_catalog.pg_read_file('/proc/self/stat')" >/dev/null 2>&1 && HAVE_CPU=1 || HAVE_CPU=0
TICK=$(getconf CLK_TCK)
# timed SQL: "wall cpu" in seconds of the statement's second run in a session (cpu 0 where /proc cannot be read)
timed() {
  local ticks="0"
  [ "$HAVE_CPU" = 1 ] && ticks="pg_temp.cpu_ticks()"
  command psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$DB" \
    -c "CREATE FUNCTION pg_temp.cpu_ticks() RETURNS bigint LANGUAGE sql AS
          \$\$ SELECT f[12]::bigint + f[13]::bigint FROM (SELECT pg_catalog.string_to_array(pg_catalog.split_part(
          pg_catalog.pg_read_file('/proc/self/stat'), ') ', 2), ' ') AS f) s \$\$" \
    -c "$1" -c "SELECT 'T|' || $ticks || '|' || extract(epoch FROM clock_timestamp())" \
    -c "$1" -c "SELECT 'T|' || $ticks || '|' || extract(epoch FROM clock_timestamp())" |
    awk -F'|' -v tick="$TICK" '$1 == "T" { c[++n] = $2; w[n] = $3 } END { printf "%.3f %.3f", w[2] - w[1], (c[2] - c[1]) / tick }'
}

# The SQL data-diff (its last release, 0.11; data_diff/databases/base.py and
# postgresql.py) sends PostgreSQL to checksum a segment of these columns:
# count(*) and the sum of the low 12 hex digits of an md5, less an offset,
# over the columns' normalized texts joined by '|' (each NULL spelled
# '<null>', coalesced once as a column and again as a varchar).  Integers
# are cast to varchar, booleans through int, numeric and float8 through
# decimal(38, scale) (float8's 15 digits less data-diff's PostgreSQL
# correction of 2), jsonb to text.  PostgreSQL rounds when it loses
# precision (data-diff's ROUNDS_ON_PREC_LOSS), so a timestamp is clamped to
# the representable years, half a unit of its precision (6 digits) added,
# printed with to_char (twice: once to measure it) and padded.  The segment
# is the whole key range, so the scan is the same one table_checksum does.
dd_item() { printf "coalesce((coalesce(%s, '<null>'))::varchar, '<null>')" "$1"; }
dd_ts() {
  local max="'294276-12-31 23:59:59.0000'::timestamp" v
  v="greatest('4713-01-01 00:00:00.00 BC'::timestamp(6), least('294276-12-31 23:59:59.0000'::timestamp(6), $1::timestamp(6)))"
  v="to_char(least($max, $v) + interval '0.0000005', 'YYYY-mm-dd HH24:MI:SS.US')"
  printf "CASE WHEN %s IS NULL THEN NULL ELSE rpad(left(left(%s, length(%s) - 0), 26), 26, '0') END" "$1" "$v" "$v"
}
DD_COLS="$(dd_item 'id::varchar') || '|' || $(dd_item 'n::varchar') || '|' || $(dd_item 'label::varchar') || '|' ||
  $(dd_item "$(dd_ts created)") || '|' || $(dd_item 'amount::decimal(38, 2)::varchar') || '|' ||
  $(dd_item 'score::decimal(38, 13)::varchar') || '|' || $(dd_item 'active::int::varchar') || '|' || $(dd_item 'doc::text')"
DD_SQL="SELECT count(*), sum(('x' || substring(md5(($DD_COLS)), 21))::bit(48)::bigint - 140737488355327)
  FROM t WHERE id >= 1 AND id < $((ROWS + 1))"
# This bench's data-diff row before: timestamps printed once without the
# rounding, columns concatenated without separators, 15 hex digits; kept
# as a second, cheaper reference.
dd() { printf "coalesce(%s, '<null>')" "$1"; }
COLS="$(dd 'id::varchar'), $(dd 'n::varchar'), $(dd 'label'),
  $(dd "to_char(created::timestamp(6), 'YYYY-mm-dd HH24:MI:SS.US')"),
  $(dd 'amount::decimal(38, 2)::varchar'), $(dd 'score::decimal(38, 13)::varchar'),
  $(dd 'active::int::varchar'), $(dd 'doc::text')"
declare -A SQL=(
  [count]="SELECT count(*) FROM t"
  [deform]="SELECT count(doc) FROM t"
  [shift]="SELECT * FROM shift.table_checksum('t')"
  [hashtext]="SELECT sum(hashtext(t::text)) FROM t"
  [record]="SELECT bit_xor(hash_record_extended(t, 0)) FROM t"
  [datadiff]="$DD_SQL"
  [ddsimple]="SELECT sum(('x' || substring(md5(concat($COLS)), 18))::bit(60)::bigint) FROM t"
  [ptosc]="SELECT (id - 1) / 100000 AS chunk, md5(string_agg(t::text, '|' ORDER BY id)) FROM t GROUP BY 1"
  [compare]="SELECT count(*) FROM shift.compare('t', 't2')"
)
ORDER=(count deform shift hashtext record datadiff ddsimple ptosc compare)
declare -A TIMES CPUS
psql -c "SELECT count(doc) FROM t" -c "SELECT count(doc) FROM t2" >/dev/null   # warm the cache
# The targets' statements also as this bench timed them before: each in a
# new session, wall clock from the outside (first-statement costs in).
FRESH=(count deform shift datadiff)
declare -A FTIMES FMED
for r in $(seq 1 "$ROUNDS"); do
  for m in "${ORDER[@]}"; do
    read -r w c <<<"$(timed "${SQL[$m]}")"
    TIMES[$m]="${TIMES[$m]:-} $w"; CPUS[$m]="${CPUS[$m]:-} $c"
  done
  for m in "${FRESH[@]}"; do
    t0=$(now); psql -c "${SQL[$m]}" >/dev/null; t1=$(now)
    FTIMES[$m]="${FTIMES[$m]:-} $(calc "%.3f" "$t1 - $t0")"
  done
done
for m in "${FRESH[@]}"; do
  # shellcheck disable=SC2086
  FMED[$m]=$(median ${FTIMES[$m]})
done
declare -A MED CMED
for m in "${ORDER[@]}"; do
  # shellcheck disable=SC2086
  MED[$m]=$(median ${TIMES[$m]})
  # shellcheck disable=SC2086
  CMED[$m]=$(median ${CPUS[$m]})
done

# Two servers: the second is a copy of this cluster's table in a throwaway
# cluster; pgshift compare reads both at once.
cross=""
if [ -n "${PGSHIFT_PGBIN:-}" ] && pgshift --help 2>&1 | grep -q -- "--source"; then
  . "$PGSHIFT_ROOT/test/integration/cluster.sh"
  second_cluster_start
  command psql -X -q -d "host=$SECOND_HOST port=$SECOND_PORT dbname=postgres" -c "CREATE DATABASE $DB" >/dev/null
  command psql -X -q -v ON_ERROR_STOP=1 -d "host=$SECOND_HOST port=$SECOND_PORT dbname=$DB" -c "CREATE EXTENSION pg_shift" >/dev/null
  pg_dump -t t -d "$DB" | command psql -X -q -v ON_ERROR_STOP=1 -d "host=$SECOND_HOST port=$SECOND_PORT dbname=$DB" >/dev/null
  command psql -X -q -d "host=$SECOND_HOST port=$SECOND_PORT dbname=$DB" -c "VACUUM ANALYZE t" -c "SELECT count(doc) FROM t" >/dev/null
  SRC="dbname=$DB"
  TGT="host=$SECOND_HOST port=$SECOND_PORT dbname=$DB"
  ct=()
  for r in $(seq 1 "$ROUNDS"); do
    t0=$(now); pgshift compare --source "$SRC" --target "$TGT" --table t -q >/dev/null; t1=$(now)
    ct+=("$(calc "%.3f" "$t1 - $t0")")
  done
  cmed=$(median "${ct[@]}")
  # pgshift opens its sessions for the compare: its yardstick is one
  # table_checksum in a session of its own, timed from the outside.
  fmed=${FMED[shift]}
  command psql -X -q -d "host=$SECOND_HOST port=$SECOND_PORT dbname=$DB" -c "UPDATE t SET label = 'changed' WHERE id = $((ROWS / 2 + 7))" >/dev/null
  set +e
  out=$(pgshift compare --source "$SRC" --target "$TGT" --table t --json 2>&1)
  rc=$?
  set -e
  found=$(printf '%s\n' "$out" | grep -c '"kind":"different"' || true)
  wire=$(printf '%s\n' "$out" | sed -n 's/.*"bytes_received":\([0-9]*\).*/\1/p' | tail -1)
  sent=$(printf '%s\n' "$out" | sed -n 's/.*"bytes_sent":\([0-9]*\).*/\1/p' | tail -1)
  second_cluster_stop
  cross="yes"
fi

rate() { calc "%.0f" "$ROWS / $1"; }
ratio() { calc "%.2f" "$1 / $2"; }
s=${MED[shift]}
echo "## Checksums: $ROWS rows × 8 columns, cached (median of $ROUNDS rounds; each statement's second run in a session of its own)"
echo
echo "| method | seconds | rows/s | shift.table_checksum vs it |"
echo "|---|---:|---:|---:|"
row() { printf '| %s | %.2f | %s | %s× |\n' "$1" "${MED[$2]}" "$(rate "${MED[$2]}")" "$(ratio "${MED[$2]}" "$s")"; }
row 'SELECT count(*)' count
row 'SELECT count(doc) (deforms every column)' deform
row '**shift.table_checksum**' shift
row 'sum(hashtext(t::text))' hashtext
row 'bit_xor(hash_record_extended(t, 0))' record
row "data-diff 0.11's segment checksum: count(*), sum(('x' \\|\\| substring(md5(... \\|\\| '\\|' \\|\\| ...), 21))::bit(48)::bigint - offset)" datadiff
row "the same without its timestamp rounding and separators: sum(('x' \\|\\| substring(md5(concat(...)), 18))::bit(60)::bigint)" ddsimple
row 'pt-table-checksum style: md5(string_agg(t::text, ...)) per 100 000-row chunk' ptosc
row 'shift.compare of two identical tables (two scans)' compare
echo
for m in "${ORDER[@]}"; do printf '%s:%s; ' "$m" "${TIMES[$m]}"; done; echo
echo
echo "Targets: table_checksum ≥ 0.5× the speed of count(*): $(ratio "${MED[count]}" "$s")×;" \
  "≤ 1.3× the time of the scan that deforms every column: $(ratio "$s" "${MED[deform]}")×;" \
  "≥ 20× data-diff: $(ratio "${MED[datadiff]}" "$s")×; ≥ 4× hash_record_extended: $(ratio "${MED[record]}" "$s")×."
fs=${FMED[shift]}
echo
echo "Each statement in a new session instead (median seconds: count $(calc "%.2f" "${FMED[count]}"), deform $(calc "%.2f" "${FMED[deform]}")," \
  "table_checksum $(calc "%.2f" "$fs"), data-diff $(calc "%.2f" "${FMED[datadiff]}")): ≥ 0.5× count(*): $(ratio "${FMED[count]}" "$fs")×;" \
  "≤ 1.3× the full deform: $(ratio "$fs" "${FMED[deform]}")×; ≥ 20× data-diff: $(ratio "${FMED[datadiff]}" "$fs")×."
for m in "${FRESH[@]}"; do printf '%s:%s; ' "$m" "${FTIMES[$m]}"; done; echo
if [ "$HAVE_CPU" = 1 ]; then
  cs=${CMED[shift]}
  echo
  echo "The same by the backend's CPU time (median seconds: count $(calc "%.2f" "${CMED[count]}"), deform $(calc "%.2f" "${CMED[deform]}")," \
    "table_checksum $(calc "%.2f" "$cs"), data-diff $(calc "%.2f" "${CMED[datadiff]}"), hash_record_extended $(calc "%.2f" "${CMED[record]}")):" \
    "≥ 0.5× count(*): $(ratio "${CMED[count]}" "$cs")×; ≤ 1.3× the full deform: $(ratio "$cs" "${CMED[deform]}")×;" \
    "≥ 20× data-diff: $(ratio "${CMED[datadiff]}" "$cs")×; ≥ 4× hash_record_extended: $(ratio "${CMED[record]}" "$cs")×."
  for m in "${ORDER[@]}"; do printf '%s:%s; ' "$m" "${CPUS[$m]}"; done; echo
fi
if [ -n "$cross" ]; then
  echo
  echo "Two servers (pgshift compare, both scanned at once): $(calc "%.2f" "$cmed") s for two identical tables" \
    "= $(ratio "$cmed" "$fmed")× one table_checksum in a new session, $(calc "%.2f" "$fmed") s (target ≤ 1.3×; rounds: ${ct[*]})."
  echo "One changed row among $ROWS: exit $rc, $found row(s) reported different," \
    "$wire bytes received and $sent bytes sent by pgshift, counted from the protocol messages (target < 1 MB)."
fi
echo
dropdb "$DB"
