#!/usr/bin/env bash
# Benchmark: how well shift.backfill_progress foretells the end of a
# throttled backfill (sleep_ratio 4: four fifths of its time at rest).  The
# ETA the view gives at 25 %, 50 % and 75 % is set against the time the job
# really took from then on.  Prints a markdown table; never fails on timing
# (the target, within 20 %, is judged by the reader: on a machine shared
# with other work the job's own pace drifts, which no ETA can foresee).
# The table is written and checkpointed first, so that the job starts in a
# steady state.  BENCH_PROGRESS_ROWS sets the size (default 600 000).
set -euo pipefail
ROWS=${BENCH_PROGRESS_ROWS:-600000}
DB=bench_progress
export PGOPTIONS="-c client_min_messages=warning"
psql() { command psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

dropdb --if-exists "$DB" >/dev/null 2>&1
createdb "$DB"
psql -c "CREATE EXTENSION pg_shift" >/dev/null
psql >/dev/null <<SQL
CREATE TABLE p (id int PRIMARY KEY, n int NOT NULL DEFAULT 0, pad text);
INSERT INTO p SELECT g, 0, repeat('x', 40) FROM generate_series(1, $ROWS) g;
VACUUM ANALYZE p;
CHECKPOINT;
SELECT shift.backfill_create('paced', 'p', set => 'n = n + 1', batch_min => 2000, batch_max => 2000,
                             sleep_ratio => 4);
SQL
started=$(psql -c "SELECT extract(epoch FROM clock_timestamp())")
psql -c "CALL shift.backfill_run('paced')" >/dev/null &
job=$!
# The samples are taken by one server session that sleeps between looks: a
# client starting a psql five times a second would take a share of the CPU
# from the job while it samples, and give it back after the last sample.
psql >/dev/null <<'SQL'
CREATE TABLE samples (mark int, eta float8, at float8, rate float8);
DO $$
DECLARE
  m int;
  r record;
BEGIN
  FOREACH m IN ARRAY '{25,50,75}'::int[] LOOP
    LOOP
      SELECT coalesce(percent, 0) AS percent, state, extract(epoch FROM eta) AS eta, rate INTO r
        FROM shift.backfill_progress WHERE name = 'paced';
      EXIT WHEN r.percent >= m OR r.state = 'done';
      PERFORM pg_sleep(0.2);
    END LOOP;
    INSERT INTO samples VALUES (m, coalesce(r.eta, -1), extract(epoch FROM clock_timestamp()), r.rate);
  END LOOP;
END
$$;
SQL
mapfile -t samples < <(psql -c "SELECT mark, eta, at, rate FROM samples ORDER BY mark" | tr '|' ' ')
wait "$job"
end=$(psql -c "SELECT extract(epoch FROM max(at)) FROM shift.backfill_batch WHERE job = 'paced'")
busy=$(psql -c "SELECT round((sum(ms) / 1000)::numeric, 1) FROM shift.backfill_batch WHERE job = 'paced'")

echo "## Progress: the ETA of a throttled backfill ($ROWS rows, sleep_ratio 4)"
echo
echo "The job took $(awk "BEGIN { printf \"%.1f\", $end - $started }") s, $busy s of them working."
echo
echo "| at | ETA given | time it really took | error | rate then (keys/s) |"
echo "|---:|---:|---:|---:|---:|"
for s in "${samples[@]}"; do
  read -r mark eta at rate <<<"$s"
  awk -v m="$mark" -v e="$eta" -v r="$(awk "BEGIN { print $end - $at }")" -v k="$rate" \
    'BEGIN { printf "| %d %% | %.1f s | %.1f s | %+.0f %% | %.0f |\n", m, e, r, (r > 0 ? 100 * (e - r) / r : 0), k }'
done
echo
echo "Target: each ETA within 20 % of the time it really took."
echo
dropdb "$DB"
