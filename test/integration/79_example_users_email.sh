#!/usr/bin/env bash
# Example (1), scripts/examples/users_email_lower.lua, end to end under
# pgbench writes (inserts and email changes all the time), with faults: the
# runner SIGKILLed mid-backfill, the server stopped -m immediate and restarted
# mid-backfill, and the index build's backend terminated (which leaves an
# INVALID index the next run replaces).  Then every phase is rolled back one by
# one and run again; at the end every row agrees, pgbench saw no failure, and
# the history records what happened.
# It restarts the server: test/harness.sh runs no background file beside it.
# harness: alone
. "$(dirname "$0")/lib.sh"

new_db ex_users
EX=$PGSHIFT_ROOT/scripts/examples/users_email_lower.lua
ROWS=${EX_USERS_ROWS:-150000}
q "CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
   INSERT INTO users (id, email) SELECT g, format('User%s@Example.COM', g) FROM generate_series(1, $ROWS) g;
   CREATE SEQUENCE users_new_id START $((ROWS + 1));
   ANALYZE users"
cat >"$WORK/app.sql" <<SQL
\\set id random(1, $ROWS)
UPDATE users SET email = 'Changed' || :id || '@Example.COM' WHERE id = :id;
INSERT INTO users (id, email) VALUES (nextval('users_new_id'), 'New' || :id || '@EXAMPLE.com');
SQL
JOB=users_email_lower:backfill
agree() { q "SELECT count(*) FROM users WHERE email_lower IS DISTINCT FROM lower(email)"; }

load_start app "$WORK/app.sql" 4
pgshift --dsn "dbname=$DB" run "$EX" --to sync
expect_rc "expand and sync under load" 0
synced_at=$(q "SELECT now()")     # after the sync committed: every write that starts later sees it
sleep 1
expect_eq "from the sync on, every new write has email_lower" \
  "$(q "SELECT count(*) FROM users WHERE id > $ROWS AND email_lower IS DISTINCT FROM lower(email)
          AND created_at > '$synced_at'")" 0

# ---- the runner killed in the middle of the backfill
slow_example_job "$JOB" users users_email_lower \
  "set => 'email_lower = lower(email)', \"where\" => 'email_lower IS DISTINCT FROM lower(email)'"
runner_bg run1 --dsn "dbname=$DB" run "$EX" --to validate
kill_runner_at "$JOB" 15000 "$ROWS"

# ---- the server crashes while the next run goes on
crash_mid_backfill "$JOB" "$ROWS" app --dsn "dbname=$DB" run "$EX" --to validate --lock-wait 15
full_speed "$JOB"
load_start app2 "$WORK/app.sql" 4
pgshift --dsn "dbname=$DB" run "$EX" --to validate --lock-wait 15
expect_rc "after the restart, backfill and validate complete under load" 0
expect_eq "the one backfill job finished over the three runs" \
  "$(q "SELECT state || ' ' || (keys_done >= $ROWS) FROM shift.backfill WHERE name = '$JOB'")" "done true"

# ---- the index build's backend terminated: an INVALID index is left and replaced
psql -X -q -d "$DB" -c "BEGIN; SELECT count(*) FROM users; SELECT pg_sleep(5); COMMIT" >/dev/null 2>&1 &
holder=$!     # CONCURRENTLY waits for this older transaction: time to hit it
sleep 0.5
"$PGSHIFT" --dsn "dbname=$DB" run "$EX" --to index >"$WORK/run3.out" 2>&1 &
runner=$!
wait_for "the index build is under way" 30 \
  "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE application_name = 'pgshift' AND query LIKE 'CREATE INDEX CONCURRENTLY%')"
q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pgshift' AND query LIKE 'CREATE INDEX CONCURRENTLY%'" >/dev/null
wait "$runner"
expect_eq "the run whose index build was killed stopped (interrupted)" "$?" 1
wait "$holder"
expect_eq "it left an INVALID index behind" \
  "$(q "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('users_email_lower_idx')")" f
pgshift --dsn "dbname=$DB" run "$EX" --to index
expect_rc "the next run builds the index" 0
expect_not_in "resumed, not undone (db:create_index replaces the invalid leftover itself)" "$OUT" "index (down"
expect_eq "the interruption was recorded as such" \
  "$(q "SELECT count(*) FROM shift.event WHERE migration = 'users_email_lower' AND phase = 'index' AND kind = 'interrupted'")" 1
expect_eq "the index is valid" "$(q "SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_email_lower_idx'::regclass")" t

# ---- every phase rolls back and runs again, under load
for to in validate backfill sync expand; do
  pgshift --dsn "dbname=$DB" rollback "$EX" --to "$to"
  expect_rc "rollback to $to under load" 0
done
pgshift --dsn "dbname=$DB" rollback "$EX"
expect_rc "and the first phase too" 0
expect_eq "the column is gone" "$(q "SELECT count(*) FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'email_lower' AND NOT attisdropped")" 0
pgshift --dsn "dbname=$DB" run "$EX" --to index
expect_rc "the migration runs again up to the index" 0
# the new application version writes email_lower itself: then the contract
cat >"$WORK/app_v2.sql" <<SQL
\\set id random(1, $ROWS)
UPDATE users SET email = 'Again' || :id || '@Example.COM', email_lower = lower('Again' || :id || '@Example.COM') WHERE id = :id;
INSERT INTO users (id, email, email_lower) VALUES (nextval('users_new_id'), 'V2' || :id || '@x.COM', lower('V2' || :id || '@x.COM'));
SQL
load_stop app2
load_start app3 "$WORK/app_v2.sql" 4
pgshift --dsn "dbname=$DB" run "$EX"
expect_rc "the contract runs under the new application's writes" 0
sleep 1
load_stop app3
expect_eq "every row agrees" "$(agree)" 0
expect_eq "email_lower is NOT NULL and the sync is gone" \
  "$(q "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'email_lower'") $(q "SELECT count(*) FROM shift.sync")" "t 0"
expect_no_load_failures app app2 app3
hist=$(events users_email_lower)
expect_eq "the history records both takeovers (kill, crash)" "$(grep -o takeover <<<"$hist" | wc -l)" 2
expect_in "and the index build whose session was terminated, as an interruption" "$hist" "interrupted:index"
expect_in "and the rollbacks" "$hist" "phase_rolled_back:expand"
