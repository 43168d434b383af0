#!/usr/bin/env bash
# Example (3), scripts/examples/customers_split_name.lua, end to end while two
# versions of the application write at once, each as the application's role:
# v1 writes full_name only, v2 writes first_name and last_name only.  Faults:
# the runner SIGKILLed mid-backfill, the server stopped -m immediate and
# restarted mid-backfill, and the runner's backend terminated while the
# contract waits for its lock.  Every phase before the contract is rolled back
# under load and run again.  At the end every row agrees, pgbench saw no
# failure, and the history records what happened.
# It restarts the server: test/harness.sh runs no background file beside it.
# harness: alone
. "$(dirname "$0")/lib.sh"

new_db ex_customers
EX=$PGSHIFT_ROOT/scripts/examples/customers_split_name.lua
ROWS=${EX_CUSTOMERS_ROWS:-150000}
APP=ex_customers_app
q "CREATE ROLE $APP LOGIN" 2>/dev/null
q "CREATE TABLE customers (id bigint PRIMARY KEY, full_name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
   INSERT INTO customers (id, full_name)
        SELECT g, CASE WHEN g % 10 = 0 THEN format('Single%s', g)
                       WHEN g % 10 = 1 THEN format('First%s van der Last%s', g, g)
                       ELSE format('First%s Last%s', g, g) END
          FROM generate_series(1, $ROWS) g;
   CREATE SEQUENCE customers_new_id START $((ROWS + 1));
   GRANT SELECT, INSERT, UPDATE ON customers TO $APP;
   GRANT USAGE ON SEQUENCE customers_new_id TO $APP;
   ANALYZE customers"
# v1: the old application, full_name only
cat >"$WORK/app_v1.sql" <<SQL
\\set id random(1, $((ROWS / 2)))
UPDATE customers SET full_name = 'Changed' || :id || ' Old Writer' WHERE id = :id;
INSERT INTO customers (id, full_name) VALUES (nextval('customers_new_id'), 'New' || :id || ' V1');
SQL
# v2: the new application, first_name and last_name only (full_name comes from the sync)
cat >"$WORK/app_v2.sql" <<SQL
\\set id random(1, $((ROWS / 2)))
\\set op random(1, 4)
UPDATE customers SET first_name = 'Renamed' || :id, last_name = CASE WHEN :op = 1 THEN '' ELSE 'New Writer' || :op END WHERE id = :id;
INSERT INTO customers (id, first_name, last_name) VALUES (nextval('customers_new_id'), 'V2' || :id, 'Family' || :op);
SQL
JOB=customers_split_name:backfill
# the example's own condition (the job made below must match its definition)
DISAGREE="first_name IS DISTINCT FROM split_part(full_name, ' ', 1) OR last_name IS DISTINCT FROM substr(full_name, length(split_part(full_name, ' ', 1)) + 2)"
disagree() { q "SELECT count(*) FROM customers WHERE ($DISAGREE) ${1:-}"; }

pgshift --dsn "dbname=$DB" plan --format markdown "$EX"
expect_rc "the example's plan renders" 0
expect_in "as a document to review" "$OUT" "# Migration plan: customers_split_name"
expect_in "with its point of no return" "$OUT" "no return"
pgshift --dsn "dbname=$DB" lint "$EX"
expect_rc "and lints without a HIGH finding" 0

load_start v1 "$WORK/app_v1.sql" 4 $APP
pgshift --dsn "dbname=$DB" run "$EX" --to sync
expect_rc "expand and sync under the old application's writes" 0
synced_at=$(q "SELECT now()")
sleep 1
expect_eq "from the sync on, every write of v1 is split" \
  "$(disagree "AND created_at > '$synced_at'")" 0
expect_eq "(v1 did write in that time)" \
  "$(q "SELECT count(*) > 0 FROM customers WHERE created_at > '$synced_at'")" t

# ---- the runner killed in the middle of the backfill (the job made beforehand
# in small slow batches, so that the kill finds it half done)
slow_example_job "$JOB" customers customers_split_name \
  "set => 'first_name = split_part(full_name, '' '', 1), last_name = substr(full_name, length(split_part(full_name, '' '', 1)) + 2)',
   \"where\" => '$(sed "s/'/''/g" <<<"$DISAGREE")'"
runner_bg run1 --dsn "dbname=$DB" run "$EX" --to validate
kill_runner_at "$JOB" 15000 "$ROWS"

# ---- the server crashes while the next run goes on
crash_mid_backfill "$JOB" "$ROWS" v1 --dsn "dbname=$DB" run "$EX" --to validate --lock-wait 15

# ---- after the restart: both versions write, the run completes
full_speed "$JOB"
load_start v1b "$WORK/app_v1.sql" 2 $APP
load_start v2 "$WORK/app_v2.sql" 2 $APP
pgshift --dsn "dbname=$DB" run "$EX" --to not_null --lock-wait 15
expect_rc "backfill, validate and not_null complete with v1 and v2 writing" 0
expect_eq "the one backfill job finished over the three runs" \
  "$(q "SELECT state || ' ' || (keys_done >= $ROWS) FROM shift.backfill WHERE name = '$JOB'")" "done true"
sleep 1
expect_eq "under both writers, every row agrees" "$(disagree)" 0
expect_eq "v2's rows got full_name from the sync" \
  "$(q "SELECT count(*) > 0 AND bool_and(full_name = concat_ws(' ', first_name, nullif(last_name, '')))
          FROM customers WHERE first_name LIKE 'V2%' OR first_name LIKE 'Renamed%'")" t
expect_eq "first_name and last_name are NOT NULL" \
  "$(q "SELECT string_agg(attnotnull::text, ' ' ORDER BY attname) FROM pg_attribute
          WHERE attrelid = 'customers'::regclass AND attname IN ('first_name', 'last_name')")" "true true"

# ---- every phase before the contract rolls back, under load, and runs again
for to in validate backfill sync; do
  pgshift --dsn "dbname=$DB" rollback "$EX" --to "$to"
  expect_rc "rollback to $to with both versions writing" 0
done
load_stop v2     # v2 needs the sync (it does not write full_name): it stops before the sync goes
pgshift --dsn "dbname=$DB" rollback "$EX"
expect_rc "sync and expand roll back with v1 writing" 0
expect_eq "the columns and the sync are gone" \
  "$(q "SELECT count(*) FROM pg_attribute WHERE attrelid = 'customers'::regclass AND attname IN ('first_name', 'last_name') AND NOT attisdropped") $(q "SELECT count(*) FROM shift.sync")" "0 0"
pgshift --dsn "dbname=$DB" run "$EX" --to not_null --lock-wait 15
expect_rc "the migration runs again up to not_null, under v1" 0
expect_eq "every row agrees again" "$(disagree)" 0

# ---- the application moved: only v2 writes; the contract's backend is
# terminated while it waits for its lock, and the next run completes it
load_start v2b "$WORK/app_v2.sql" 4 $APP
load_stop v1b
psql -X -q -d "$DB" -c "BEGIN; SELECT count(*) FROM customers; SELECT pg_sleep(6); COMMIT" >/dev/null 2>&1 &
holder=$!     # a reader holds ACCESS SHARE: the application goes on, the contract's ALTER waits
sleep 0.5
"$PGSHIFT" --dsn "dbname=$DB" run "$EX" --lock-wait 30 >"$WORK/run3.out" 2>&1 &
runner=$!
wait_for "the contract waits for its lock" 30 \
  "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE application_name = 'pgshift' AND wait_event_type = 'Lock')"
q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pgshift' AND wait_event_type = 'Lock'" >/dev/null
wait "$runner"
expect_eq "the run whose backend was terminated failed" "$?" 1
expect_eq "full_name is still there" \
  "$(q "SELECT count(*) FROM pg_attribute WHERE attrelid = 'customers'::regclass AND attname = 'full_name' AND NOT attisdropped")" 1
wait "$holder"
pgshift --dsn "dbname=$DB" run "$EX" --lock-wait 15
expect_rc "the next run completes the contract under v2's writes" 0
sleep 1
load_stop v2b
expect_eq "full_name and the sync are gone" \
  "$(q "SELECT count(*) FROM pg_attribute WHERE attrelid = 'customers'::regclass AND attname = 'full_name' AND NOT attisdropped") $(q "SELECT count(*) FROM shift.sync")" "0 0"
expect_eq "no customer lost a name" \
  "$(q "SELECT count(*) FROM customers WHERE first_name IS NULL OR first_name = '' OR last_name IS NULL")" 0
expect_eq "no customer lost, none made up" \
  "$(q "SELECT count(*) = max(id) AND min(id) = 1 FROM customers WHERE id <= $ROWS")" t
expect_eq "the names no application touched (the upper half) kept their split parts" \
  "$(q "SELECT count(*) || ' ' || count(*) FILTER (WHERE (first_name, last_name) IS DISTINCT FROM
            (CASE WHEN id % 10 = 0 THEN 'Single' ELSE 'First' END || id,
             CASE id % 10 WHEN 0 THEN '' WHEN 1 THEN 'van der Last' || id ELSE 'Last' || id END))
          FROM customers WHERE id > $((ROWS / 2)) AND id <= $ROWS")" "$((ROWS - ROWS / 2)) 0"
expect_no_load_failures v1 v1b v2 v2b
hist=$(events customers_split_name)
expect_eq "the history records both takeovers (kill, crash)" "$(grep -o takeover <<<"$hist" | wc -l)" 2
expect_in "and the terminated contract, as an interruption" "$hist" "interrupted:contract"
expect_in "and the rollbacks" "$hist" "phase_rolled_back:expand"
expect_eq "every phase is done" "$(phase_status customers_split_name)" \
  "expand=done sync=done backfill=done validate=done not_null=done contract=done"
