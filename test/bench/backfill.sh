#!/usr/bin/env bash
# Benchmark: backfilling a column of a generated table four ways, each on its
# own identical copy, in one run: (a) one UPDATE of the whole table; (b) a
# PL/pgSQL keyset loop committing every 10 000 rows; (c) the pgroll/Reshape
# style batch, UPDATE ... WHERE id IN (SELECT ... LIMIT 1000); (d) CALL
# shift.backfill_run.  Prints a markdown table of rows/s and ratios; never
# fails on timing.  BENCH_ROWS sets the size (default 2 000 000).
set -euo pipefail
ROWS=${BENCH_ROWS:-2000000}
DB=bench_backfill
psql() { command psql -X -q -v ON_ERROR_STOP=1 -d "$DB" "$@"; }
export PGOPTIONS="-c client_min_messages=warning"
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }

dropdb --if-exists "$DB" >/dev/null 2>&1
createdb "$DB"
psql -c "CREATE EXTENSION pg_shift" >/dev/null
psql >/dev/null <<SQL
CREATE TABLE base (id bigint PRIMARY KEY, label text NOT NULL, created timestamptz NOT NULL,
                   amount numeric(12,2) NOT NULL, active boolean NOT NULL, doc jsonb NOT NULL,
                   label_lower text);
INSERT INTO base
SELECT g, 'Customer ' || g || ' ' || md5(g::text), timestamptz '2024-01-01' + g * interval '1 second',
       (g % 100000) / 100.0, g % 3 = 0, jsonb_build_object('k', g, 'tag', 'T' || g % 17), NULL
  FROM generate_series(1, $ROWS) g;
CREATE PROCEDURE keyset_loop(step int) LANGUAGE plpgsql AS \$\$
DECLARE last bigint := 0; hi bigint;
BEGIN
  LOOP
    SELECT max(id) INTO hi FROM (SELECT id FROM t_b WHERE id > last ORDER BY id LIMIT step) s;
    EXIT WHEN hi IS NULL;
    UPDATE t_b SET label_lower = lower(label) WHERE id > last AND id <= hi;
    last := hi;
    COMMIT;
  END LOOP;
END \$\$;
CREATE PROCEDURE pgroll_loop(step int) LANGUAGE plpgsql AS \$\$
DECLARE last bigint := 0; hi bigint;
BEGIN
  LOOP
    WITH u AS (UPDATE t_c SET label_lower = lower(label)
                WHERE id IN (SELECT id FROM t_c WHERE id > last ORDER BY id LIMIT step
                               FOR NO KEY UPDATE)
                RETURNING id)
    SELECT max(id) INTO hi FROM u;
    EXIT WHEN hi IS NULL;
    last := hi;
    COMMIT;
  END LOOP;
END \$\$;
SQL
copy_of() {
  psql >/dev/null <<SQL
DROP TABLE IF EXISTS $1;
CREATE TABLE $1 AS SELECT * FROM base;
ALTER TABLE $1 ADD PRIMARY KEY (id);
VACUUM ANALYZE $1;
CHECKPOINT;
SQL
}
timed() { local t0 t1; t0=$(now); psql -c "$1" >/dev/null; t1=$(now); calc "%.3f" "$t1 - $t0"; }

# Rounds interleave the methods (a b c d a b c d ...), each on a fresh copy,
# so that load drifting on the machine falls on all four alike; the medians
# are compared.
ROUNDS=${BENCH_ROUNDS:-3}
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ta=(); tb=(); tc=(); td=()
for r in $(seq 1 "$ROUNDS"); do
  copy_of t_a; ta+=("$(timed "UPDATE t_a SET label_lower = lower(label)")")
  copy_of t_b; tb+=("$(timed "CALL keyset_loop(10000)")")
  copy_of t_c; tc+=("$(timed "CALL pgroll_loop(1000)")")
  copy_of t_d
  psql -c "SELECT shift.backfill_drop(name) FROM shift.backfill WHERE name = 'bench'" >/dev/null
  psql -c "SELECT shift.backfill_create('bench', 't_d', set => 'label_lower = lower(label)')" >/dev/null
  td+=("$(timed "CALL shift.backfill_run('bench')")")
done
a=$(median "${ta[@]}"); b=$(median "${tb[@]}"); c=$(median "${tc[@]}"); d=$(median "${td[@]}")

check=$(psql -At -c "SELECT (SELECT count(*) FROM t_a WHERE label_lower IS NULL) + (SELECT count(*) FROM t_b WHERE label_lower IS NULL)
                          + (SELECT count(*) FROM t_c WHERE label_lower IS NULL) + (SELECT count(*) FROM t_d WHERE label_lower IS NULL)")
read -r p50 p99 batches size < <(psql -At -F ' ' -c "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1),
  round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1), count(*), round(avg(keys))
  FROM shift.backfill_batch WHERE job = 'bench'")
rate() { calc "%.0f" "$ROWS / $1"; }
ratio() { calc "%.2f" "$1 / $2"; }

echo "## Backfill: $ROWS rows, SET label_lower = lower(label) (median of $ROUNDS interleaved rounds)"
echo
echo "| method | seconds | rows/s | shift.backfill_run vs it |"
echo "|---|---:|---:|---:|"
printf '| (a) one UPDATE of the whole table | %.2f | %s | %s× |\n' "$a" "$(rate "$a")" "$(ratio "$a" "$d")"
printf '| (b) PL/pgSQL keyset loop, COMMIT every 10 000 | %.2f | %s | %s× |\n' "$b" "$(rate "$b")" "$(ratio "$b" "$d")"
printf '| (c) pgroll/Reshape style IN (SELECT ... LIMIT 1000) | %.2f | %s | %s× |\n' "$c" "$(rate "$c")" "$(ratio "$c" "$d")"
printf '| (d) CALL shift.backfill_run (target 200 ms) | %.2f | %s | 1.00× |\n' "$d" "$(rate "$d")"
echo
echo "Each round's seconds: (a) ${ta[*]}; (b) ${tb[*]}; (c) ${tc[*]}; (d) ${td[*]}."
echo "shift.backfill_run (last round): $batches batches of $size keys on average; batch duration p50 $p50 ms, p99 $p99 ms (target 200 ms; p99 / target = $(ratio "$p99" 200))."
echo "Targets: (d) ≥ 1.0× (b), ≥ 0.9× (a), ≥ 3× (c); p99 ≤ 2× target. Rows left unfilled by any method: $check."
echo
dropdb "$DB"
