#!/usr/bin/env bash
# Example (2), scripts/examples/orders_id_bigint.lua, end to end on a busy
# table: pgbench writes orders and order_lines all the time while the
# migration runs, and three faults are injected:
#   - the runner is SIGKILLed in the middle of the backfill;
#   - the server is stopped with -m immediate and restarted mid-backfill;
#   - the runner's backend is terminated while the cut-over waits for locks.
# Each time the next run goes on and completes.  At the end pgbench saw no
# failed transaction, shift.compare finds no difference (forward, and in
# reverse after the cut-over and after its rollback), and the bookkeeping
# tells the true story, failures included.
# It restarts the server: test/harness.sh runs no background file beside it.
# harness: alone
. "$(dirname "$0")/lib.sh"

new_db ex_orders
EX=$PGSHIFT_ROOT/scripts/examples/orders_id_bigint.lua
ROWS=${EX_ORDERS_ROWS:-150000}
q "CREATE ROLE ex_orders_app LOGIN" 2>/dev/null
q "CREATE TABLE orders (id serial PRIMARY KEY, customer_id int NOT NULL, status text NOT NULL,
                        amount numeric(12,2) NOT NULL, created_at timestamptz NOT NULL, note text);
   CREATE INDEX orders_customer_id_idx ON orders (customer_id);
   INSERT INTO orders (customer_id, status, amount, created_at)
        SELECT g % 5000, 'new', (g % 1000) / 10.0, timestamptz '2024-01-01' + g * interval '1 min'
          FROM generate_series(1, $ROWS) g;
   CREATE TABLE order_lines (id bigserial PRIMARY KEY, order_id int NOT NULL REFERENCES orders (id),
                             sku text NOT NULL, qty int NOT NULL);
   INSERT INTO order_lines (order_id, sku, qty) SELECT g, 'sku-' || (g % 300), 1 FROM generate_series(1, $ROWS, 3) g;
   CREATE VIEW open_orders AS SELECT id, customer_id, amount FROM orders WHERE status <> 'done';
   GRANT SELECT, INSERT, UPDATE, DELETE ON orders, order_lines TO ex_orders_app;
   GRANT USAGE ON SEQUENCE orders_id_seq, order_lines_id_seq TO ex_orders_app;
   GRANT SELECT ON open_orders TO ex_orders_app;
   ANALYZE orders; ANALYZE order_lines"

# the application, as its own role: orders change status, new orders and lines
# arrive, some new orders without lines are deleted (only new ones: a line for
# a random old order must find it, or pgbench fails on the foreign key)
cat >"$WORK/app.sql" <<SQL
\\set id random(1, $ROWS)
\\set c random(1, 5000)
\\set op random(1, 10)
BEGIN;
UPDATE orders SET status = 'paid', amount = amount + 1 WHERE id = :id;
INSERT INTO orders (customer_id, status, amount, created_at) SELECT :c, 'new', 9.99, now() WHERE :op <= 3;
INSERT INTO order_lines (order_id, sku, qty) VALUES (:id, 'sku-x', :op);
DELETE FROM orders WHERE :op = 10 AND id = (SELECT max(id) FROM orders o WHERE o.id > $ROWS
                                             AND NOT EXISTS (SELECT FROM order_lines l WHERE l.order_id = o.id));
SELECT count(*) FROM open_orders WHERE customer_id = :c;
END;
SQL
same_rows() { q "SELECT count(*) FROM shift.compare('$1', '$2', columns => '{id,customer_id,status,amount,created_at,note}')"; }
JOB=orders_id_bigint:backfill
pgshift --dsn "dbname=$DB" plan --format markdown "$EX"
expect_rc "the example's plan renders" 0
expect_in "as a document to review" "$OUT" "# Migration plan: orders_id_bigint"
pgshift --dsn "dbname=$DB" lint "$EX"
expect_rc "and lints without a HIGH finding" 0

load_start load1 "$WORK/app.sql" 4 ex_orders_app
sleep 1
pgshift --dsn "dbname=$DB" run "$EX" --to sync
expect_rc "expand and sync run under load" 0

# ---- fault 1: the runner SIGKILLed mid-backfill
slow_example_job "$JOB" orders orders_id_bigint "\"into\" => 'orders_v2', on_conflict => 'nothing'"
runner_bg run1 --dsn "dbname=$DB" run "$EX" --to validate
kill_runner_at "$JOB" 20000 "$ROWS"

# ---- fault 2: the server crashes (-m immediate) while the resumed run backfills
crash_mid_backfill "$JOB" "$ROWS" load1 --dsn "dbname=$DB" run "$EX" --to validate --lock-wait 15
full_speed "$JOB"
load_start load2 "$WORK/app.sql" 4 ex_orders_app
sleep 1
pgshift --dsn "dbname=$DB" run "$EX" --to validate --lock-wait 15
expect_rc "after the restart the run completes backfill and validate, under load" 0
expect_in "validate found the copy equal" "$OUT" "orders and orders_v2 are equal"

# ---- fault 3: the runner's backend terminated while the cut-over waits for locks
terminate_mid_cutover orders --dsn "dbname=$DB" run "$EX"
expect_eq "orders.id is bigint" "$(q "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'id'")" bigint
expect_eq "order_lines references the new table, validated" \
  "$(q "SELECT confrelid::regclass || ' ' || convalidated FROM pg_constraint WHERE conname = 'order_lines_order_id_fkey'")" "orders true"
expect_eq "the application role kept its grants" "$(q "SELECT has_table_privilege('ex_orders_app', 'orders', 'INSERT')")" t
sleep 3
expect_eq "under load, the reverse sync keeps the archive equal" "$(same_rows orders orders_archive)" 0

# ---- the rollback of the cut-over, under load, loses nothing
pgshift --dsn "dbname=$DB" rollback "$EX" --to validate
expect_rc "the cut-over rolls back under load" 0
sleep 2
expect_eq "orders.id is integer again" "$(q "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'id'")" integer
expect_eq "and orders_v2 follows it again" "$(same_rows orders orders_v2)" 0

# ---- cut over for good and contract
pgshift --dsn "dbname=$DB" run "$EX"
expect_rc "cut-over and contract" 0
expect_eq "the archive is gone and the sync with it" \
  "$(q "SELECT (to_regclass('orders_archive') IS NULL) AND NOT EXISTS (SELECT FROM shift.sync)")" t
load_stop load2
expect_no_load_failures load1 load2
expect_eq "every order line points at an existing order" \
  "$(q "SELECT count(*) FROM order_lines l WHERE NOT EXISTS (SELECT FROM orders o WHERE o.id = l.order_id)")" 0
expect_faulted_history orders_id_bigint
