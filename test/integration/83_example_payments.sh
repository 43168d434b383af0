#!/usr/bin/env bash
# Example (5), scripts/examples/payments_account_fk.lua, end to end on a busy
# table: pgbench inserts payments and updates amounts all the time, as the
# application's own role, while the migration runs, and two faults are
# injected in the backfill:
#   - the runner is SIGKILLed;
#   - the server is stopped with -m immediate and restarted.
# Each time the next run goes on, and at last completes.  At the end no
# payment is without an account, NOT NULL and the foreign key hold and are
# validated, pgbench saw no failed transaction, the bookkeeping tells the
# true story, and a rollback to the start removes what the migration added.
# It restarts the server: test/harness.sh runs no background file beside it.
# harness: alone
. "$(dirname "$0")/lib.sh"

new_db ex_payments
EX=$PGSHIFT_ROOT/scripts/examples/payments_account_fk.lua
ROWS=${EX_PAYMENTS_ROWS:-100000}
ACCOUNTS=1000
JOB=payments_account_fk:backfill
q "CREATE ROLE ex_payments_app LOGIN" 2>/dev/null
# every third payment has no account; the others point at existing accounts
q "CREATE TABLE accounts (id bigint PRIMARY KEY, name text);
   INSERT INTO accounts SELECT g, 'account ' || g FROM generate_series(1, $ACCOUNTS) g;
   CREATE TABLE payments (id bigserial PRIMARY KEY, account_id bigint, amount numeric(12,2),
                          created_at timestamptz);
   INSERT INTO payments (account_id, amount, created_at)
        SELECT CASE WHEN g % 3 <> 0 THEN 1 + g % $ACCOUNTS END, (g % 1000) / 10.0,
               timestamptz '2024-01-01' + g * interval '1 min'
          FROM generate_series(1, $ROWS) g;
   GRANT SELECT, INSERT, UPDATE ON payments TO ex_payments_app;
   GRANT SELECT ON accounts TO ex_payments_app;
   GRANT USAGE ON SEQUENCE payments_id_seq TO ex_payments_app;
   ANALYZE accounts; ANALYZE payments"
nulls() { q "SELECT count(*) FROM payments WHERE account_id IS NULL"; }
expect_eq "the table starts with payments without an account" "$(nulls)" "$(( ROWS / 3 ))"

# the application, as its own role: new payments (always with an account)
# arrive, amounts of existing ones change
cat >"$WORK/app.sql" <<SQL
\\set id random(1, $ROWS)
\\set a random(1, $ACCOUNTS)
BEGIN;
INSERT INTO payments (account_id, amount, created_at) VALUES (:a, 12.34, now());
UPDATE payments SET amount = amount + 1 WHERE id = :id;
END;
SQL
pgshift --dsn "dbname=$DB" plan --format markdown "$EX"
expect_rc "the example's plan renders" 0
expect_in "as a document to review" "$OUT" "# Migration plan: payments_account_fk"
pgshift --dsn "dbname=$DB" lint "$EX"
expect_rc "and lints without a HIGH finding" 0

load_start load1 "$WORK/app.sql" 4 ex_payments_app
sleep 1
pgshift --dsn "dbname=$DB" run "$EX" --to index
expect_rc "the index is built under load" 0
expect_eq "and is valid" "$(q "SELECT indisvalid FROM pg_index WHERE indexrelid = 'payments_account_id_idx'::regclass")" t

# ---- fault 1: the runner SIGKILLed mid-backfill
# The backfill job, made beforehand with the definition the example gives it
# (db:backfill reuses a job of its name and definition, settings and all) but
# in small batches with long pauses, so that the faults find it part way.
slow_example_job "$JOB" payments payments_account_fk "set => 'account_id = 0', \"where\" => 'account_id IS NULL'" 250 100
runner_bg run1 --dsn "dbname=$DB" run "$EX" --to backfill
kill_runner_at "$JOB" 3000 "$ROWS"
left=$(nulls)
expect_eq "and left payments without an account" "$(( left > 0 && left < ROWS / 3 ))" 1

# ---- fault 2: the server crashes (-m immediate) while the resumed run backfills
crash_mid_backfill "$JOB" "$ROWS" load1 --dsn "dbname=$DB" run "$EX" --to backfill --lock-wait 15
expect_eq "payments without an account are still left" "$(( $(nulls) > 0 ))" 1
full_speed "$JOB"

load_start load2 "$WORK/app.sql" 4 ex_payments_app
sleep 1
pgshift --dsn "dbname=$DB" run "$EX" --lock-wait 15
expect_rc "after the restart the run completes backfill, not_null and foreign_key, under load" 0
sleep 1
load_stop load2
expect_eq "no payment is left without an account" "$(nulls)" 0
expect_eq "they have the 'unknown' account" \
  "$(q "SELECT a.name FROM accounts a WHERE a.id = (SELECT account_id FROM payments WHERE id = 3)")" unknown
expect_eq "account_id is NOT NULL" \
  "$(q "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'payments'::regclass AND attname = 'account_id'")" t
expect_eq "the helper CHECK is gone" \
  "$(q "SELECT count(*) FROM pg_constraint WHERE conrelid = 'payments'::regclass AND contype = 'c'")" 0
expect_eq "the foreign key references accounts and is validated" \
  "$(q "SELECT confrelid::regclass || ' ' || convalidated FROM pg_constraint WHERE conname = 'payments_account_id_fkey'")" "accounts true"
expect_eq "every payment points at an existing account" \
  "$(q "SELECT count(*) FROM payments p WHERE NOT EXISTS (SELECT FROM accounts a WHERE a.id = p.account_id)")" 0
q "INSERT INTO payments (account_id, amount) VALUES (NULL, 1)" 2>/dev/null
expect_eq "a payment without an account is refused" "$?" 1
q "INSERT INTO payments (account_id, amount) VALUES ($ACCOUNTS + 1, 1)" 2>/dev/null
expect_eq "so is one with an account that does not exist" "$?" 1
expect_no_load_failures load1 load2
expect_eq "pgbench wrote while the migration ran" "$(( $(load_transactions load1) > 0 && $(load_transactions load2) > 0 ))" 1

hist=$(events payments_account_fk)
expect_eq "the history records both lease takeovers (after the kill and after the crash)" \
  "$(grep -o 'takeover' <<<"$hist" | wc -l)" 2
for e in "phase_done:index" "phase_done:backfill" "phase_done:not_null" "phase_done:foreign_key" "run_finished"; do
  if grep -q "$e" <<<"$hist"; then ok "the history records $e"; else not_ok "the history lacks $e" "$hist"; fi
done
expect_eq "the backfill phase was started three times (two runs failed)" \
  "$(grep -o 'phase_started:backfill' <<<"$hist" | wc -l)" 3
expect_eq "the migration is done" "$(q "SELECT status FROM shift.status WHERE migration = 'payments_account_fk'")" done

# ---- the rollback, from the last phase back to the start
pgshift --dsn "dbname=$DB" rollback "$EX"
expect_rc "the whole migration rolls back" 0
expect_eq "the foreign key is gone" "$(q "SELECT count(*) FROM pg_constraint WHERE conname = 'payments_account_id_fkey'")" 0
expect_eq "account_id is nullable again" \
  "$(q "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'payments'::regclass AND attname = 'account_id'")" f
expect_eq "the index is gone" "$(q "SELECT to_regclass('payments_account_id_idx') IS NULL")" t
hist=$(events payments_account_fk)
for p in foreign_key not_null backfill index; do
  if grep -q "phase_rolled_back:$p" <<<"$hist"; then ok "the history records phase_rolled_back:$p"
  else not_ok "the history lacks phase_rolled_back:$p" "$hist"; fi
done
expect_eq "and the rollback went last phase first" \
  "$(grep -o 'phase_rolled_back:[a-z_]*' <<<"$hist" | tr '\n' ' ')" \
  "phase_rolled_back:foreign_key phase_rolled_back:not_null phase_rolled_back:backfill phase_rolled_back:index "
