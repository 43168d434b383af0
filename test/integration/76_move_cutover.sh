#!/usr/bin/env bash
# online.move_tables' cut-over, its way back and the contract, between two
# clusters with wal_level = logical (A, the source; B, the target: the pair
# the move tests share, cluster.sh), while an
# application writes: a loop that inserts a customer and an order as role
# app on whichever side it believes live, and on a fence error
# (insufficient_privilege) retries on the other side.  After the cut-over:
# each table equal (pgshift compare), the sequences on B past every id ever
# handed out, the app writing on B, nothing left of the forward direction.
# After the way back (rollback of the cutover phase): every write made on B
# is on A, A's sequences past B's, the app writing on A.  Then cut over
# again and contract: no publication, subscription or slot on either side.
# Before all that, a cut-over whose redirect hook fails: its down lifts the
# fence and drops the reverse path, the forward direction streams again.
# The writer saw no error but retried fences.  The fence durations are
# printed (test/bench/move_fence.sh measures them under load).
# It starts clusters on the ports after the harness's one: test/harness.sh
# runs no background file beside it.
# harness: alone
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/cluster.sh"

DB=it_move_cutover
logical_pair_start || { echo "Bail out! could not start the logical pair"; exit 1; }
WRITER=""
# what this file makes on the pair, removed (before and after it)
pair_reset() {
  logical_pair_clean "$DB"
  for h in "$A_HOST:$A_PORT" "$B_HOST:$B_PORT"; do
    psql -X -q -h "${h%:*}" -p "${h#*:}" -U postgres -d postgres -c "DROP ROLE IF EXISTS app, U&\"it76\\001Eapp\"" 2>/dev/null
  done
}
stop_all() {
  touch "$WORK/writer.stop"; [ -z "$WRITER" ] || wait "$WRITER" 2>/dev/null
  pair_reset; cleanup
}
trap stop_all EXIT
pair_reset

qa() { psql -X -q -A -t -v ON_ERROR_STOP=1 -h "$A_HOST" -p "$A_PORT" -U postgres -d "$DB" -c "$1"; }
qb() { psql -X -q -A -t -v ON_ERROR_STOP=1 -h "$B_HOST" -p "$B_PORT" -U postgres -d "$DB" -c "$1"; }
for h in "$A_HOST:$A_PORT" "$B_HOST:$B_PORT"; do
  createdb -h "${h%:*}" -p "${h#*:}" -U postgres "$DB"
  psql -X -q -h "${h%:*}" -p "${h#*:}" -U postgres -d "$DB" -c "CREATE EXTENSION pg_shift; CREATE ROLE app LOGIN;
    CREATE ROLE U&\"it76\\001Eapp\""
done
SRC="host=$A_HOST port=$A_PORT user=postgres dbname=$DB"
TGT="host=$B_HOST port=$B_PORT user=postgres dbname=$DB"

qa "CREATE TABLE customers (id bigserial PRIMARY KEY, name text NOT NULL);
    CREATE TABLE orders (id bigserial PRIMARY KEY, customer bigint NOT NULL REFERENCES customers,
                         amount numeric(10,2));
    INSERT INTO customers (name) SELECT 'c' || g FROM generate_series(1, 1000) g;
    INSERT INTO orders (customer, amount) SELECT 1 + g % 1000, g / 100.0 FROM generate_series(1, 5000) g;
    GRANT SELECT, INSERT, UPDATE, DELETE ON customers, orders TO app;
    GRANT USAGE ON SEQUENCE customers_id_seq, orders_id_seq TO app;
    GRANT INSERT, UPDATE ON orders TO U&\"it76\\001Eapp\""
# a second application role, whose name holds the byte 0x1e: the fence
# keeps the privileges it moves as rows, not joined into text by such
# bytes (review S2), so its privileges come back with app's
odd() { echo "has_table_privilege(U&'it76\\001Eapp', 'orders', 'INSERT')"; }

f=$(mig move <<LUA
return migration {
  name = "move_orders",
  phases = {
    online.move_tables{ tables = { "customers", "orders" }, name = "orders", target = { dsn = "$TGT" },
                        redirect = function(db, target, live)
                          if io.open("$WORK/refuse") then error("the load balancer said no") end
                          log("redirect hook: writes go to the " .. live .. " now, "
                            .. target:value("SELECT pg_catalog.current_setting('port')"))
                        end },
  },
}
LUA
)

# ---- the application: one customer and its order a transaction, as app,
# on the side it believes live; a fence error sends it to the other side
writer() {
  local side=A host port out
  while [ ! -e "$WORK/writer.stop" ]; do
    if [ -e "$WORK/writer.pause" ]; then touch "$WORK/writer.paused"; sleep 0.05; continue; fi
    rm -f "$WORK/writer.paused"
    if [ $side = A ]; then host=$A_HOST port=$A_PORT; else host=$B_HOST port=$B_PORT; fi
    if out=$(psql -X -q -A -t -v ON_ERROR_STOP=1 -h "$host" -p "$port" -U app -d "$DB" -c \
        "WITH c AS (INSERT INTO customers (name) VALUES ('app') RETURNING id)
         INSERT INTO orders (customer, amount) SELECT id, 2.50 FROM c RETURNING customer || ' ' || id" 2>&1); then
      echo "$side $out" >>"$WORK/writes"
    elif [[ $out == *"permission denied for table"* ]]; then
      echo "$side" >>"$WORK/retries"
      if [ $side = A ]; then side=B; else side=A; fi
      sleep 0.01
    else
      echo "$side $out" >>"$WORK/errors"
    fi
  done
}
touch "$WORK/writes" "$WORK/retries" "$WORK/errors"
pause_writer() {
  touch "$WORK/writer.pause"
  for _ in $(seq 1 100); do [ -e "$WORK/writer.paused" ] && return; sleep 0.05; done
}
resume_writer() { rm -f "$WORK/writer.pause"; }
writes_on() { grep -c "^$1 " "$WORK/writes"; }
wait_writes_on() {   # SIDE N: until N more writes went to SIDE
  local want=$(( $(writes_on "$1") + $2 ))
  for _ in $(seq 1 200); do [ "$(writes_on "$1")" -ge "$want" ] && return 0; sleep 0.05; done
  not_ok "the application wrote $2 rows on $1" "$(tail -3 "$WORK/errors")"
}
# both sides equal: the live side as the source of pgshift compare
compare_both() {   # LIVE-DSN OTHER-DSN WHAT
  local t
  for t in customers orders; do
    pgshift compare --source "$1" --target "$2" --table "$t"
    expect_rc "$3: pgshift compare $t: zero differences" 0
  done
}
max_id() { awk -v c="$1" '{ if ($c + 0 > m) m = $c + 0 } END { print m + 0 }' "$WORK/writes"; }

writer & WRITER=$!
wait_writes_on A 20

pgshift --dsn "$SRC" run "$f" --to orders-validate
expect_rc "the move runs up to validate while the application writes on A" 0

# ---- a cut-over that fails (the redirect hook refuses): its down lifts the fence
touch "$WORK/refuse"
pgshift --dsn "$SRC" run "$f" --to orders-cutover
expect_rc "a cut-over whose redirect hook fails fails" 1
expect_in "saying why" "$ERR" "the load balancer said no): the fence is lifted by the phase's down"
expect_in "its down ran" "$OUT" "orders-cutover (down)"
rm "$WORK/refuse"
expect_eq "the fence is lifted: app may write on A again, not on B" \
  "$(qa "SELECT has_table_privilege('app', 'orders', 'INSERT')")$(qb "SELECT has_table_privilege('app', 'orders', 'INSERT')")" "tf"
expect_eq "and so may the role whose name holds 0x1e" "$(qa "SELECT $(odd)")$(qb "SELECT $(odd)")" "tf"
expect_eq "the reverse path is gone; the forward subscription streams again" \
  "$(qa "SELECT count(*) FROM pg_subscription")+$(qb "SELECT count(*) FROM pg_publication")+$(qb "SELECT count(*) FROM pg_replication_slots")|$(qb "SELECT string_agg(subname || ' ' || subenabled, ',') FROM pg_subscription")" \
  "0+0+0|shift_move_orders true"
expect_eq "and the records say so" \
  "$(qa "SELECT string_agg(kind || ' ' || object, ', ' ORDER BY kind) FROM shift.move_object")|$(qb "SELECT string_agg(kind || ' ' || object, ', ' ORDER BY kind) FROM shift.move_object WHERE kind = 'subscription'")" \
  "publication shift_move_orders, slot shift_move_orders|subscription shift_move_orders"
expect_eq "the fence is recorded as ended" \
  "$(qa "SELECT count(*) FROM shift.move_fence WHERE fence_ms IS NULL")" 0
wait_writes_on A 20
a_rows=$(qa "SELECT count(*) FROM orders")
wait_for_b() { for _ in $(seq 1 100); do [ "$(qb "SELECT count(*) >= $a_rows FROM orders")" = t ] && return 0; sleep 0.1; done; return 1; }
wait_for_b && ok "the target goes on receiving the source's writes"

# ---- the cut-over
pgshift --dsn "$SRC" run "$f" --to orders-cutover
expect_rc "the cutover phase runs" 0
expect_in "it reports the fence" "$OUT" "fence held "
fence_ms=$(grep -o 'fence held [0-9.]* ms' <<<"$OUT" | head -1)
ok "cut-over: $fence_ms (not asserted: test/bench/move_fence.sh measures it)"
expect_in "the redirect hook ran, given the target" "$OUT" "redirect hook: writes go to the target now, $B_PORT"
expect_in "the sequences were carried" "$OUT" "2 sequences set past the source's"
expect_eq "the fence is recorded on the source" \
  "$(qa "SELECT count(*) FROM shift.move_fence WHERE move = 'orders' AND direction = 'forward' AND fence_ms > 0 AND lsn IS NOT NULL")" 1
wait_writes_on B 20
expect_eq "the application writes no more on A: app may not" \
  "$(qa "SELECT has_table_privilege('app', 'orders', 'INSERT')::text || has_table_privilege('app', 'customers', 'SELECT')::text")" "falsetrue"
expect_eq "and may on B" "$(qb "SELECT has_table_privilege('app', 'orders', 'INSERT')")" t
expect_eq "the role whose name holds 0x1e too, on B only" "$(qa "SELECT $(odd)")$(qb "SELECT $(odd)")" "ft"
expect_eq "the forward subscription and its slot are gone" \
  "$(qb "SELECT count(*) FROM pg_subscription")+$(qa "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'shift_move_orders'")" "0+0"
expect_eq "the way back streams: subscription on A, its slot on B active" \
  "$(qa "SELECT string_agg(subname || ' ' || subenabled, ',') FROM pg_subscription")|$(qb "SELECT string_agg(slot_name || ' ' || active, ',') FROM pg_replication_slots")" \
  "shift_move_orders_rev true|shift_move_orders_rev true"
pause_writer
compare_both "$TGT" "$SRC" "after the cut-over (B live)"
a_max_c=$(qa "SELECT max(id) FROM customers"); a_max_o=$(qa "SELECT max(id) FROM orders")
expect_eq "B's sequences are past every id handed out" \
  "$(qb "SELECT (SELECT last_value FROM customers_id_seq) >= greatest($(max_id 2), $a_max_c)
          AND (SELECT last_value FROM orders_id_seq) >= greatest($(max_id 3), $a_max_o)")" t
resume_writer
wait_writes_on B 30
pgshift --dsn "$SRC" status
expect_not_in "status: no slot of the move is inactive" "$OUT" "warning: replication slot"
# the way back stopped a while: status on B warns about its slot there
qa "ALTER SUBSCRIPTION shift_move_orders_rev DISABLE"
for _ in $(seq 1 50); do [ "$(qb "SELECT active FROM pg_replication_slots WHERE slot_name = 'shift_move_orders_rev'")" = f ] && break; sleep 0.1; done
wait_writes_on B 5
pgshift --dsn "$TGT" status
expect_in "status on the target warns about the way back's inactive slot" "$OUT" \
  "warning: replication slot shift_move_orders_rev of move orders (migration move_orders) is inactive and holds"
qa "ALTER SUBSCRIPTION shift_move_orders_rev ENABLE"

# ---- the way back
pgshift --dsn "$SRC" rollback "$f" --to orders-validate
expect_rc "the cutover phase rolls back: the way back" 0
expect_in "it reports its fence" "$OUT" "fence held "
ok "way back: $(grep -o 'fence held [0-9.]* ms' <<<"$OUT" | head -1)"
expect_in "the redirect hook ran back" "$OUT" "redirect hook: writes go to the source now"
wait_writes_on A 20
pause_writer
b_writes=$(grep '^B ' "$WORK/writes" | awk '{ print $2 }' | paste -sd, -)
expect_eq "every customer written on B is on A" \
  "$(qa "SELECT count(*) FROM customers WHERE id IN ($b_writes)")" "$(writes_on B)"
b_orders=$(grep '^B ' "$WORK/writes" | awk '{ print $3 }' | paste -sd, -)
expect_eq "and every order" "$(qa "SELECT count(*) FROM orders WHERE id IN ($b_orders)")" "$(writes_on B)"
compare_both "$SRC" "$TGT" "after the way back (A live)"
expect_eq "A's sequences are past B's and every id handed out" \
  "$(qa "SELECT (SELECT last_value FROM customers_id_seq) >= greatest($(max_id 2), $(qb "SELECT last_value FROM customers_id_seq"))
          AND (SELECT last_value FROM orders_id_seq) >= greatest($(max_id 3), $(qb "SELECT last_value FROM orders_id_seq"))")" t
expect_eq "the reverse direction is gone; the forward one streams" \
  "$(qa "SELECT count(*) FROM pg_subscription")+$(qb "SELECT count(*) FROM pg_publication")+$(qb "SELECT count(*) FROM pg_replication_slots")|$(qb "SELECT string_agg(subname || ' ' || subenabled, ',') FROM pg_subscription")" \
  "0+0+0|shift_move_orders true"
expect_eq "app may write A again, not B" \
  "$(qa "SELECT has_table_privilege('app', 'orders', 'INSERT')")$(qb "SELECT has_table_privilege('app', 'orders', 'INSERT')")" "tf"
expect_eq "and the role whose name holds 0x1e: on A again, not on B" "$(qa "SELECT $(odd)")$(qb "SELECT $(odd)")" "tf"
resume_writer
wait_writes_on A 20

# ---- cut over again, then contract
pgshift --dsn "$SRC" run "$f" --to orders-cutover
expect_rc "the cut-over runs again" 0
wait_writes_on B 20
pgshift --dsn "$SRC" run "$f"
expect_rc "the contract runs" 0
expect_in "and says what is left" "$OUT" "no publication, subscription or slot of move orders is left on either side"
wait_writes_on B 20
touch "$WORK/writer.stop"; wait "$WRITER"; WRITER=""
expect_eq "no publication, subscription or slot on either side" \
  "$(qa "SELECT (SELECT count(*) FROM pg_publication) + (SELECT count(*) FROM pg_subscription) + (SELECT count(*) FROM pg_replication_slots)")+$(qb "SELECT (SELECT count(*) FROM pg_publication) + (SELECT count(*) FROM pg_subscription) + (SELECT count(*) FROM pg_replication_slots)")" "0+0"
expect_eq "nor a record of one" \
  "$(qa "SELECT count(*) FROM shift.move_object")+$(qb "SELECT count(*) FROM shift.move_object")" "0+0"
expect_eq "the source's tables stay (drop_source not given)" "$(qa "SELECT count(*) > 0 FROM orders")" t
expect_eq "four fences recorded, each ended (the failed one took 0 ms)" \
  "$(qa "SELECT string_agg(direction || (fence_ms > 0)::text, ',' ORDER BY id) FROM shift.move_fence WHERE fence_ms IS NOT NULL")" \
  "forwardfalse,forwardtrue,backtrue,forwardtrue"
expect_eq "the application saw no error but fences it retried" "$(cat "$WORK/errors")" ""
ok "it wrote $(writes_on A) times on A, $(writes_on B) on B, and retried $(wc -l <"$WORK/retries") times"
expect_eq "the application retried at each of the three fences" "$(( $(wc -l <"$WORK/retries") >= 3 ))" 1
