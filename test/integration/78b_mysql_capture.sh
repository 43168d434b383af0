#!/usr/bin/env bash
# Change capture from MariaDB while two writers change the table there
# (sql/capture.sql): pgshift installs the changelog's triggers with the
# mariadb client (db:mysql), defines the capture before the backfill fixes
# its bound, copies through mysql_fdw, then applies the changelog
# (db:capture_drain).  The apply is SIGKILLed and its backend terminated
# mid-batch: the batch is not committed, its checkpoint neither, and the
# resumed run applies every changelog row exactly once (the capture's count
# of changes equals the changelog's rows).  After draining, the foreign
# table and the copy are equal (EXCEPT ALL both ways), hot keys updated many
# times, keys deleted and inserted again and keys changed by UPDATE
# included.  A change whose transaction commits after a later one (its seq
# skipped, then filled) is applied late, not lost; without the gaps
# (gap_timeout 0) it would be.  The rollback removes the triggers and the
# changelog from MariaDB.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mariadb.sh"
trap 'stop_writers; mariadb_stop; cleanup' EXIT

mariadb_start_or_end

echo "# ${SECONDS}s: MariaDB up"
new_db capture
ROWS=20000
mariadb_fdw_server maria
# the mariadb client's connection, for db:mysql: in an option file only we read
install -m 600 /dev/null "$WORK/my.cnf"
printf '[client]\nhost=127.0.0.1\nport=%s\nuser=pgshift\npassword=%s\ndatabase=app\n' \
  "$MARIADB_PORT" "$MARIADB_PASSWORD" >"$WORK/my.cnf"
my "GRANT TRIGGER ON app.* TO 'pgshift'@'127.0.0.1'"

my "CREATE TABLE app.orders (
      id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
      customer_id INT NOT NULL, paid TINYINT(1) NOT NULL DEFAULT 0,
      amount DECIMAL(12, 2) NOT NULL, note VARCHAR(200) NULL, created DATETIME(6) NOT NULL,
      KEY (customer_id)
    ) CHARACTER SET utf8mb4;
    INSERT INTO app.orders SELECT seq, seq % 997, seq % 3 = 0, seq * 1.25, CONCAT('order ', seq),
                                  '2024-03-31 00:30:00' + INTERVAL seq * 61 SECOND
      FROM app.seq_1_to_$ROWS" || { not_ok "the MySQL table is filled"; exit 1; }

SELECT_LIST="id, customer_id, paid <> 0, amount, note, created AT TIME ZONE 'UTC'"
q "CREATE FOREIGN TABLE f_orders (id bigint NOT NULL, customer_id int NOT NULL, paid smallint NOT NULL,
     amount numeric(12, 2) NOT NULL, note text, created timestamp NOT NULL)
     SERVER maria OPTIONS (dbname 'app', table_name 'orders');
   CREATE FOREIGN TABLE f_log (seq bigint NOT NULL, id bigint NOT NULL, kind text NOT NULL, at timestamp NOT NULL)
     SERVER maria OPTIONS (dbname 'app', table_name 'pgshift_log_orders');
   CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int NOT NULL, paid boolean NOT NULL,
     amount numeric(12, 2) NOT NULL, note text, created timestamptz NOT NULL);
   CREATE VIEW expected AS SELECT $SELECT_LIST FROM f_orders;
   -- a stale row the copy leaves alone (on_conflict nothing): only the capture brings it up to date
   INSERT INTO orders VALUES (7, 0, false, 0, 'stale', now())"

# ---- writers: autocommit changes, hot key 7, key 11 deleted and inserted
# again, key changes, multi-row updates, two-statement transactions (which
# may deadlock each other) and rolled-back ones (a seq never committed)
writer() {
  local w=$1 i=0 k
  while [ ! -e "$WORK/writers.stop" ]; do
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      i=$((i + 1)); k=$((RANDOM % ROWS + 1))
      case $((RANDOM % 10)) in
        0|1|2) echo "UPDATE orders SET amount = amount + 1, note = 'w$w-$i' WHERE id = $k;" ;;
        3) echo "UPDATE orders SET amount = amount + 1, note = 'hot w$w-$i' WHERE id = 7;" ;;
        4) echo "INSERT INTO orders (customer_id, paid, amount, note, created) VALUES ($k, 1, 1.5, 'new w$w-$i', NOW(6));" ;;
        5) echo "DELETE FROM orders WHERE id = $k;" ;;
        6) echo "DELETE FROM orders WHERE id = 11; INSERT INTO orders (id, customer_id, paid, amount, note, created) VALUES (11, 1, 0, 2.5, 'again w$w-$i', NOW(6));" ;;
        7) echo "BEGIN; UPDATE orders SET paid = 1 - paid WHERE id = $k; UPDATE orders SET id = id + 1000000 WHERE id = $((k + 1)); COMMIT;" ;;
        8) echo "BEGIN; UPDATE orders SET note = 'rolled back' WHERE id = $k; ROLLBACK;" ;;
        9) echo "UPDATE orders SET created = created + INTERVAL 1 SECOND WHERE customer_id = $((k % 997));" ;;
      esac
    done
    sleep 0.05
  done | mariadb --no-defaults -S "$MARIADB_DIR/sock" -uroot -f -B app >"$WORK/writer$w.log" 2>&1
}

f=$(mig maria_cdc <<LUA
local my_cnf = "$WORK/my.cnf"
local function script(db, action)
  return db:value("SELECT shift.capture_mysql_sql('orders', '{id}', '{INT UNSIGNED}', 'pgshift_log_orders', \$1)",
                  action)
end
return migration { name = "maria_cdc", phases = {
  { name = "capture",
    -- the triggers first, then the capture: the copy's bound comes after both
    up = function(db)
      db:mysql { sql = script(db, "install"), defaults_file = my_cnf }
      db:capture { name = "cap", changelog = "f_log", source = "f_orders", into = "orders",
                   key_columns = { "id" }, select = [[$SELECT_LIST]], backfill = "maria_cdc:copy",
                   batch_size = 500 }
    end,
    down = function(db)
      db:capture_drop { name = "cap" }
      db:mysql { sql = script(db, "remove"), defaults_file = my_cnf }
    end },
  { name = "copy",
    up = function(db)
      db:backfill { table = "f_orders", into = "orders", key_columns = { "id" }, select = [[$SELECT_LIST]],
                    on_conflict = "nothing", batch_min = 2000, batch_max = 2000, sleep_ratio = 1, max_lag = false }
    end,
    down = function(db) db:exec("TRUNCATE orders") end },
  { name = "apply",
    up = function(db) db:capture_drain { name = "cap" } end,
    down = function(db) end },
} }
LUA
)

# an apply batch with key 7 waits for this lock (the copy does not: DO NOTHING)
hold_key7() {
  psql -X -q -d "$DB" -v ON_ERROR_STOP=1 >/dev/null 2>&1 <<'SQL' &
SET application_name = 'locker';
BEGIN;
SELECT 1 FROM orders WHERE id = 7 FOR UPDATE;
SELECT pg_sleep(120);
SQL
  LOCKER=$!
  wait_for "the lock on key 7 is held" 10 \
    "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE application_name = 'locker' AND query LIKE '%pg_sleep%')"
}
release_key7() {
  q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'locker'" >/dev/null
  wait "$LOCKER" 2>/dev/null
}
APPLY_WAITS="SELECT EXISTS (SELECT FROM pg_stat_activity
                             WHERE query LIKE 'CALL shift.capture_run%' AND wait_event_type = 'Lock')"
capture_state() { q "SELECT changes || ' ' || last_seq || ' ' || batches FROM shift.capture WHERE name = 'cap'"; }

echo "# ${SECONDS}s: writers start"
writer 1 & WRITERS+=($!)
writer 2 & WRITERS+=($!)
hold_key7
runner_bg run1 --dsn "dbname=$DB" run "$f"
wait_for "the apply reaches key 7 and waits, mid-batch" 90 "$APPLY_WAITS"
expect_eq "the triggers were installed on MariaDB before the copy" \
  "$(my "SELECT count(*) FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_TABLE = 'orders'")" 3
expect_eq "the copy was done before any change was applied" \
  "$(q "SELECT state FROM shift.backfill WHERE name = 'maria_cdc:copy'")" done
echo "# ${SECONDS}s: first apply waits"
before=$(capture_state)
{ kill -9 "$RUNNER"; wait "$RUNNER"; } 2>/dev/null
wait_for "the SIGKILLed runner's session stops" 15 \
  "SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE query LIKE 'CALL shift.capture_run%')"
expect_eq "the interrupted batch committed nothing: checkpoint and counts as before the kill" \
  "$(capture_state)" "$before"
release_key7

echo "# ${SECONDS}s: killed"
hold_key7
runner_bg run2 --dsn "dbname=$DB" run "$f" --lock-wait 10
wait_for "the second run's apply waits mid-batch" 60 "$APPLY_WAITS"
before=$(capture_state)
q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'CALL shift.capture_run%'" >/dev/null
wait "$RUNNER"
expect_eq "the run whose backend was terminated failed" "$?" 1
expect_eq "and its batch left nothing either" "$(capture_state)" "$before"
release_key7

echo "# ${SECONDS}s: terminated"
pgshift --dsn "dbname=$DB" run "$f" --lock-wait 10
expect_rc "the third run drains the changelog while the writers go on" 0
expect_in "and says what it applied" "$OUT$ERR" "capture cap: "
echo "# ${SECONDS}s: third run done"
sleep 1
stop_writers
echo "# ${SECONDS}s: writers stopped"
q "CALL shift.capture_run('cap')"
lag=$(q "SELECT pending || ' ' || (remote_max_seq = c.last_seq)::int FROM shift.capture_lag('cap'), shift.capture c WHERE c.name = 'cap'")
expect_eq "drained: nothing pending, the checkpoint at MariaDB's last seq" "$lag" "0 1"
counts=$(q "SELECT c.changes, (SELECT count(*) FROM f_log), c.batches, c.late, c.upserted, c.deleted FROM shift.capture c WHERE c.name = 'cap'")
IFS='|' read -r changes logged batches late upserted deleted <<<"$counts"
echo "# changelog: $logged rows in $batches batches ($late found late), $upserted rows upserted, $deleted deleted"
expect_eq "every changelog row applied exactly once, across the kill and the termination" "$changes" "$logged"
expect_eq "the writers made changes of every kind" \
  "$(q "SELECT count(DISTINCT kind) >= 3 AND count(*) > 1000 FROM f_log")" t
echo "# ${SECONDS}s: drained"
q "CREATE TABLE expected_rows AS SELECT * FROM expected"
expect_eq "no change lost: foreign table EXCEPT ALL copy is empty" \
  "$(q "SELECT count(*) FROM (TABLE expected_rows EXCEPT ALL TABLE orders) x")" 0
expect_eq "nothing extra or stale: copy EXCEPT ALL foreign table is empty" \
  "$(q "SELECT count(*) FROM (TABLE orders EXCEPT ALL TABLE expected_rows) x")" 0
expect_eq "hot key 7 as MariaDB has it now, after many updates" \
  "$(q "SELECT note FROM orders WHERE id = 7")" "$(my "SELECT note FROM app.orders WHERE id = 7")"
expect_eq "rows the writers inserted, changed the key of and deleted are there or gone alike" \
  "$(q "SELECT count(*) FILTER (WHERE note LIKE 'new w%') > 0, count(*) FILTER (WHERE id > 1000000 AND note NOT LIKE 'new w%') > 0,
               count(*) FILTER (WHERE id <= $ROWS) < $ROWS FROM orders" | tr '|' ' ')" "t t t"

# ---- what reaches MariaDB: the changelog's range, order and limit; the keys' rows only
# (two rows that are there: the writers, stopped now, deleted or re-keyed some)
read -r p1 p2 <<<"$(my "SELECT id FROM app.orders WHERE id <= $ROWS ORDER BY id LIMIT 2" | tr '\n' ' ')"
my "UPDATE app.orders SET note = 'probe' WHERE id IN ($p1, $p2)"
rq=$(remote_statements 'Remote query' "SELECT * FROM shift.capture_apply('cap');")
last=$(q "SELECT last_seq FROM shift.capture WHERE name = 'cap'")
expect_in "the batch past the checkpoint: its order and limit are MariaDB's" "$rq" \
  "Remote query: SELECT \`seq\`, \`id\`, \`at\` FROM \`app\`.\`pgshift_log_orders\` WHERE ((\`seq\` > $last)) ORDER BY \`seq\` IS NULL, \`seq\` ASC LIMIT 500"
expect_in "the source is read for the batch's keys only" "$rq" \
  "FROM \`app\`.\`orders\` WHERE (\`id\`  IN ('$p1', '$p2'))"

echo "# ${SECONDS}s: compared"
# ---- a transaction that commits after a later one: its seq is a gap, then filled
q "CREATE TABLE orders_ng (LIKE orders INCLUDING ALL); INSERT INTO orders_ng SELECT * FROM orders;
   SELECT shift.capture_create('nogap', 'f_log', 'f_orders', 'orders_ng', '{id}', \"select\" => \$\$$SELECT_LIST\$\$,
                               gap_timeout => '0')" >/dev/null
q "CALL shift.capture_run('nogap')"
echo "# ${SECONDS}s: nogap caught up"
# two rows of their own (the writers deleted and moved keys at random)
my "INSERT INTO app.orders (id, customer_id, paid, amount, note, created)
    VALUES (900001, 1, 0, 1, 'five', NOW(6)), (900002, 1, 0, 1, 'six', NOW(6))"
q "SELECT shift.capture_apply('cap', 10), shift.capture_apply('nogap', 10)" >/dev/null
mkfifo "$WORK/tx.fifo"
mariadb --no-defaults -S "$MARIADB_DIR/sock" -uroot -B -n app <"$WORK/tx.fifo" >"$WORK/tx.out" 2>&1 &
TX=$!
exec 7>"$WORK/tx.fifo"
echo "BEGIN; UPDATE orders SET note = 'committed late' WHERE id = 900001; SELECT 'held';" >&7
for _ in $(seq 1 50); do grep -q held "$WORK/tx.out" && break; sleep 0.1; done
my "UPDATE app.orders SET note = 'committed first' WHERE id = 900002"
grep -q held "$WORK/tx.out" || not_ok "the transaction holding seq is open" "$(cat "$WORK/tx.out")"
q "SELECT shift.capture_apply('cap', 10), shift.capture_apply('nogap', 10)" >/dev/null
expect_eq "the apply saw the later change and kept the earlier seq as an open gap" \
  "$(q "SELECT o.note, (SELECT count(*) FROM shift.capture_gap g
                  WHERE g.capture = 'cap' AND (SELECT max(seq) - 1 FROM f_log) BETWEEN g.lo AND g.hi) FROM orders o WHERE id = 900002" | tr '|' ' ')" \
  "committed first 1"
echo "COMMIT;" >&7
exec 7>&-
wait "$TX"
q "SELECT shift.capture_apply('cap', 10), shift.capture_apply('nogap', 10)" >/dev/null
expect_eq "committed late, the change is applied from its gap" \
  "$(q "SELECT note || ' ' || (SELECT late FROM shift.capture WHERE name = 'cap') FROM orders WHERE id = 900001")" \
  "committed late $(( late + 1 ))"
expect_eq "without gaps (gap_timeout 0) the same change is lost" \
  "$(q "SELECT note FROM orders_ng WHERE id = 900001")" five
expect_eq "and the copy equals MariaDB again, both ways" \
  "$(q "SELECT (SELECT count(*) FROM (TABLE expected EXCEPT ALL TABLE orders) a) + (SELECT count(*) FROM (TABLE orders EXCEPT ALL TABLE expected) b)")" 0

# ---- the rollback removes the triggers and the changelog from MariaDB
echo "# ${SECONDS}s: late commit done"
q "SELECT shift.capture_drop('nogap')" >/dev/null
pgshift --dsn "dbname=$DB" rollback "$f"
expect_rc "the migration rolls back" 0
expect_eq "no trigger, no changelog left on MariaDB" \
  "$(my "SELECT (SELECT count(*) FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = 'app'),
                (SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'app' AND TABLE_NAME = 'pgshift_log_orders')")" "0	0"
expect_eq "and the capture is gone" "$(q "SELECT count(*) FROM shift.capture")" 0
echo "# 78b took ${SECONDS}s"
