#!/usr/bin/env bash
# online.move_tables: two related tables (a foreign key between them,
# bigserial sequences) moved from a second cluster (the source, wal_level =
# logical: A of the pair the move tests share, cluster.sh) into the harness's cluster (the target) with PostgreSQL's logical
# replication, while writers insert on the source; phase by phase: check,
# schema, subscribe, sync (progress per table), validate (pgshift compare at
# one WAL position).  Then a slot left behind without its subscription:
# pgshift status warns, the rollback drops it, and no publication,
# subscription or slot is left on either side.  Last, the check's advice on
# a source with wal_level = replica.  The password given in the target's
# DSN is never printed nor stored.
# It starts clusters on the ports after the harness's one: test/harness.sh
# runs no background file beside it.
# harness: alone
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/cluster.sh"

new_db move
TGT_DB=$DB
# the source: cluster A of the pair the move tests share
logical_pair_start || { echo "Bail out! could not start the logical pair"; exit 1; }
SECOND_HOST=$A_HOST SECOND_PORT=$A_PORT SECOND_DSN=$A_DSN
WRITER=""
stop_all() {
  touch "$WORK/writer.stop"; [ -z "$WRITER" ] || wait "$WRITER" 2>/dev/null
  q "DROP SUBSCRIPTION IF EXISTS shift_move_orders" >/dev/null 2>&1
  logical_pair_clean "$TGT_DB"; cleanup
}
trap stop_all EXIT

logical_pair_clean "$DB"
createdb -h "$SECOND_HOST" -p "$SECOND_PORT" -U postgres "$DB"
q2() { psql -X -q -A -t -v ON_ERROR_STOP=1 -h "$SECOND_HOST" -p "$SECOND_PORT" -U postgres -d "$DB" -c "$1"; }
SRC="$SECOND_DSN dbname=$DB"
TGT="host=$PGHOST port=$PGPORT dbname=$TGT_DB"

q2 "CREATE EXTENSION pg_shift;
    CREATE TABLE customers (id bigserial PRIMARY KEY, name text NOT NULL);
    CREATE TABLE orders (id bigserial PRIMARY KEY, customer bigint NOT NULL REFERENCES customers,
                         amount numeric(10,2), placed date DEFAULT '2026-01-31');
    CREATE INDEX orders_customer ON orders (customer);
    INSERT INTO customers (name) SELECT 'c' || g FROM generate_series(1, 2000) g;
    INSERT INTO orders (customer, amount) SELECT 1 + g % 2000, g / 100.0 FROM generate_series(1, 30000) g"

f=$(mig move <<LUA
return migration {
  name = "move_orders",
  phases = {
    online.move_tables{ tables = { "customers", "orders" }, name = "orders",
                        target = { dsn = "$TGT password=sekrit-123" } },
  },
}
LUA
)

# ---- the plan: every phase, the target's statements marked, no password
pgshift --dsn "$SRC" plan "$f"
expect_rc "the move plans" 0
expect_in "seven phases" "$OUT" "orders-contract"
expect_in "the subscription is made on the target" "$OUT" "/* on target host=$PGHOST port=$PGPORT dbname=$TGT_DB */ CREATE SUBSCRIPTION"
expect_not_in "the plan shows no password" "$OUT$ERR" "sekrit"

# ---- a redirect hook in the plan: what the review's sandbox refuses it
# (os.execute) is noted and the plan goes on; any other error of the hook
# stops the phase's plan there, as it fails the run (review L9)
for hook in sandboxed failing; do
  if [ $hook = sandboxed ]; then body='os.execute("/usr/local/bin/switch-app-to db2")'
  else body='error("the load balancer said no")'; fi
  mig "redirect_$hook" >/dev/null <<LUA
return migration { name = "move_redirect_$hook", phases = {
  online.move_tables{ tables = { "customers", "orders" }, name = "redir", target = { dsn = "$TGT" },
                      redirect = function(db, target, live) $body end } } }
LUA
done
pgshift --dsn "$SRC" plan "$WORK/redirect_sandboxed.lua"
expect_rc "a redirect hook calling os.execute plans" 0
expect_in "the plan notes where the sandbox stopped it" "$OUT" \
  "-- the redirect hook (live = target) stopped in the plan: "
pgshift --dsn "$SRC" plan "$WORK/redirect_failing.lua"
expect_in "a redirect hook that fails otherwise stops the cut-over's plan, with the hook's error" "$OUT" \
  "-- the dry run stopped here: $WORK/redirect_failing.lua:2: the redirect hook failed ($WORK/redirect_failing.lua:3: the load balancer said no)"
expect_not_in "not noted as the sandbox's stop and passed over" "$OUT" "stopped in the plan"

# ---- writers on the source throughout the move
cat >"$WORK/writer.sql" <<'SQL'
\set c random(1, 2000)
INSERT INTO orders (customer, amount) VALUES (:c, 1.50);
INSERT INTO customers (name) VALUES ('w');
SQL
(
  while [ ! -e "$WORK/writer.stop" ]; do
    "$PGSHIFT_PGBIN/pgbench" -n -c 1 -T 2 -R 100 -h "$SECOND_HOST" -p "$SECOND_PORT" -U postgres \
      -f "$WORK/writer.sql" "$DB" >>"$WORK/writer.out" 2>&1 || echo "pgbench exited with status $?" >>"$WORK/writer.out"
  done
) &
WRITER=$!

pgshift --dsn "$SRC" run "$f" --to orders-check
expect_rc "check: both sides meet the prerequisites" 0
expect_in "and says so" "$OUT" "prerequisites met on both sides for 2 tables"

# the target's database belongs to a role that is no superuser: it may put
# objects in schema public and choose the database's search_path, public
# first.  The schema phase's DDL (run as a superuser) must resolve nothing
# through them: a default's nextval must stay pg_catalog's (review S3)
q "CREATE ROLE it73_dbowner; ALTER DATABASE $TGT_DB OWNER TO it73_dbowner;
   SET ROLE it73_dbowner;
   CREATE FUNCTION public.nextval(regclass) RETURNS bigint LANGUAGE sql
     AS 'SELECT pg_catalog.nextval(\$1) + 1000000';
   ALTER DATABASE $TGT_DB SET search_path = public, pg_catalog" >/dev/null
pgshift --dsn "$SRC" run "$f" --to orders-schema
expect_rc "schema: the tables are made on the target" 0
expect_eq "its defaults call pg_catalog's nextval, not one the database's owner put first on the search_path" \
  "$(q "SELECT string_agg(DISTINCT p.pronamespace::regnamespace::text, ',') FROM pg_depend d
          JOIN pg_proc p ON p.oid = d.refobjid AND d.refclassid = 'pg_proc'::regclass
         WHERE d.classid = 'pg_attrdef'::regclass")" ""
q "ALTER DATABASE $TGT_DB RESET search_path; ALTER DATABASE $TGT_DB OWNER TO CURRENT_USER;
   DROP FUNCTION public.nextval(regclass); DROP ROLE it73_dbowner" >/dev/null
# (the secondary index orders_customer waits for the end of the copy: indexes = "after_copy", the default)
expect_eq "with their keys, foreign key and sequences" \
  "$(q "SELECT (SELECT count(*) FROM pg_constraint WHERE conrelid IN ('customers'::regclass, 'orders'::regclass))
        || ' ' || (SELECT count(*) FROM pg_indexes WHERE tablename IN ('customers', 'orders'))
        || ' ' || pg_get_serial_sequence('orders', 'id') || ' ' || pg_get_serial_sequence('customers', 'id')
        || ' ' || (SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = 'orders'::regclass AND adnum = 4)")" \
  "3 2 public.orders_id_seq public.customers_id_seq '2026-01-31'::date"
expect_eq "recorded on the target" \
  "$(q "SELECT string_agg(kind || ' ' || object, ', ' ORDER BY kind, object) FROM shift.move_object")" \
  "sequence public.customers_id_seq, sequence public.orders_id_seq, table public.customers, table public.orders"

# the target's orders held in SHARE mode for 8 s: their copy waits while the sync phase watches
# (under load a table's sync worker has spent 4 s starting: state i, never d)
psql -X -q -d "$TGT_DB" -c "BEGIN; LOCK TABLE orders IN SHARE MODE; SELECT pg_sleep(8); COMMIT" >/dev/null &
locker=$!
wait_for "the target's orders are held" 10 "SELECT count(*) > 0 FROM pg_locks WHERE mode = 'ShareLock' AND relation = 'orders'::regclass"
pgshift --dsn "$SRC" run "$f" --to orders-sync
wait $locker
expect_rc "subscribe and sync: publication, subscription, every table copied" 0
expect_in "progress per table is printed: orders waits" "$OUT" "sync public.orders: copying (d)"
expect_eq "again each second until it is ready" \
  "$(grep 'sync public.orders: ' <<<"$OUT" | grep -vc 'ready (r)' | awk '{ print ($1 >= 3) }')" 1
expect_in "up to ready" "$OUT" "sync public.orders: ready (r)"
expect_in "customers too" "$OUT" "sync public.customers: ready (r)"
expect_in "then the lag" "$OUT" "every table ready in"
expect_eq "the secondary index is built once the copy is done" \
  "$(q "SELECT indexdef FROM pg_indexes WHERE indexname = 'orders_customer'")" \
  "$(q2 "SELECT indexdef FROM pg_indexes WHERE indexname = 'orders_customer'")"
expect_eq "a publication of both tables on the source" \
  "$(q2 "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_publication_tables WHERE pubname = 'shift_move_orders'")" \
  "customers,orders"
expect_eq "a subscription on the target" "$(q "SELECT count(*) FROM pg_subscription WHERE subname = 'shift_move_orders'")" 1
expect_eq "its slot on the source" "$(q2 "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'shift_move_orders'")" 1
expect_eq "publication and slot recorded on the source" \
  "$(q2 "SELECT string_agg(kind || ' ' || object, ', ' ORDER BY kind) FROM shift.move_object")" \
  "publication shift_move_orders, slot shift_move_orders"
expect_eq "the subscription recorded on the target" \
  "$(q "SELECT count(*) FROM shift.move_object WHERE kind = 'subscription'")" 1
expect_not_in "the subscription's conninfo holds no password" \
  "$(q "SELECT subconninfo FROM pg_subscription")" "password"
expect_eq "pg_subscription_rel says ready" "$(q "SELECT string_agg(srsubstate::text, '') FROM pg_subscription_rel")" "rr"
expect_eq "shift.move_status on the source: the slot is active" \
  "$(q2 "SELECT publication_exists AND slot_exists AND slot_active AND lag_bytes >= 0 AND NOT inactive_holding_wal FROM shift.move_status WHERE move = 'orders'")" t

pgshift --dsn "$SRC" run "$f" --to orders-validate
expect_rc "validate: pgshift compare of each table, writers still writing" 0
expect_in "the compare's own report" "$OUT" "public.orders: equal ("
expect_in "read at one WAL position" "$OUT" "both read at WAL position"
expect_in "both tables equal" "$OUT" "2 tables equal on both sides"
expect_eq "the phases up to validate are done" "$(q2 "SELECT string_agg(status, ',' ORDER BY ordinal) FROM shift.phase WHERE migration = 'move_orders'")" "done,done,done,done,done,pending,pending"

touch "$WORK/writer.stop"; wait "$WRITER"; WRITER=""
expect_eq "the writers saw no error" "$(grep -c -E 'error|aborted|exited' "$WORK/writer.out")" 0
wrote=$(q2 "SELECT count(*) FROM orders")
wait_for "the target applied every write" 30 "SELECT count(*) = $wrote FROM orders" &&
  ok "the target applied every write ($wrote orders; $(awk '/^number of transactions actually processed:/ { n += $6 } END { print n + 0 }' "$WORK/writer.out") written during the move)"
expect_eq "and the customers" "$(q "SELECT count(*) FROM customers")" "$(q2 "SELECT count(*) FROM customers")"
for t in customers orders; do
  pgshift compare --source "$SRC" --target "dbname=$TGT_DB" --table "$t"
  expect_rc "pgshift compare $t: zero differences" 0
done
expect_not_in "no password in the run's output" "$OUT$ERR" "sekrit"
expect_eq "nor in what pg_shift recorded" \
  "$(q2 "SELECT count(*) FROM shift.event WHERE message LIKE '%sekrit%' OR detail::text LIKE '%sekrit%'")" 0

# ---- a slot left on the source without its subscription: status warns, rollback drops it
q "ALTER SUBSCRIPTION shift_move_orders DISABLE;
   ALTER SUBSCRIPTION shift_move_orders SET (slot_name = NONE);
   DROP SUBSCRIPTION shift_move_orders"
q2 "INSERT INTO customers (name) SELECT 'late' FROM generate_series(1, 1000)"
for _ in $(seq 1 50); do [ "$(q2 "SELECT active FROM pg_replication_slots WHERE slot_name = 'shift_move_orders'")" = f ] && break; sleep 0.1; done
pgshift --dsn "$SRC" status
expect_rc "status" 0
expect_in "warns about the inactive slot holding WAL" "$OUT" "warning: replication slot shift_move_orders of move orders (migration move_orders) is inactive and holds"

# ---- another operator records a table of its own under this move's
# name: refused (review S1); the rollback, which drops what the move
# recorded, must not drop it either
q "DROP ROLE IF EXISTS it73_other; CREATE ROLE it73_other IN ROLE shift_operator;
   CREATE TABLE victim (id int); ALTER TABLE victim OWNER TO it73_other" >/dev/null
out=$(q "SET ROLE it73_other; SELECT shift.move_record('orders', 'table', 'public.victim', 'target')" 2>&1)
expect_in "another operator may not record its table under this move's name" "$out" "move orders belongs to role"
expect_eq "nothing of it is recorded" "$(q "SELECT count(*) FROM shift.move_object WHERE object = 'public.victim'")" 0
# a recorded table dropped and made again outside the move, another
# role's now: the rollback neither empties nor drops it (review M7)
q "DROP TABLE orders; CREATE TABLE orders (id int); INSERT INTO orders VALUES (7);
   ALTER TABLE orders OWNER TO it73_other" >/dev/null

# ---- the rollback of every phase
pgshift --dsn "$SRC" rollback "$f"
expect_rc "every phase rolls back" 0
expect_eq "a table another role recorded under the move's name is not dropped" \
  "$(q "SELECT to_regclass('public.victim') IS NOT NULL")" t
expect_eq "a table made again at a recorded name is neither emptied nor dropped" \
  "$(q "SELECT pg_get_userbyid(relowner) || ' ' || (SELECT count(*) FROM orders) FROM pg_class WHERE oid = 'orders'::regclass")" \
  "it73_other 1"
expect_in "the rollback says so" "$OUT" "warning: public.orders on the target is not the one this move made"
q "DROP TABLE victim, orders; DROP ROLE it73_other" >/dev/null
expect_eq "no publication, slot or record left on the source" \
  "$(q2 "SELECT (SELECT count(*) FROM pg_publication) + (SELECT count(*) FROM pg_replication_slots)
                + (SELECT count(*) FROM shift.move_object)")" 0
expect_eq "no subscription, table, sequence or record left on the target" \
  "$(q "SELECT (SELECT count(*) FROM pg_subscription) + (SELECT count(*) FROM pg_replication_slots)
               + (SELECT count(*) FROM pg_class WHERE relname IN ('customers', 'orders', 'orders_id_seq', 'customers_id_seq'))
               + (SELECT count(*) FROM shift.move_object)")" 0
pgshift --dsn "$SRC" status
expect_not_in "status warns no more" "$OUT" "warning: replication slot"

# ---- moved again, then rolled back from the sync: nothing left either
pgshift --dsn "$SRC" run "$f" --to orders-sync
expect_rc "the move runs again up to the sync" 0
expect_eq "the tables are copied again" "$(q "SELECT count(*) FROM customers")" "$(q2 "SELECT count(*) FROM customers")"
pgshift --dsn "$SRC" rollback "$f"
expect_rc "and rolls back" 0
expect_eq "no publication, subscription or slot on either side" \
  "$(q2 "SELECT (SELECT count(*) FROM pg_publication) + (SELECT count(*) FROM pg_replication_slots)")+$(q "SELECT (SELECT count(*) FROM pg_subscription) + (SELECT count(*) FROM pg_replication_slots)")" "0+0"

# ---- indexes = "after_copy": the secondary index is left out of the schema
# phase and built by the sync phase once the tables are copied
h=$(mig late <<LUA
return migration {
  name = "move_orders_late",
  phases = { online.move_tables{ tables = { "customers", "orders" }, name = "late", indexes = "after_copy",
                                 target = { dsn = "$TGT" } } },
}
LUA
)
pgshift --dsn "$SRC" plan "$h"
expect_rc "a move with indexes = after_copy plans" 0
expect_in "the plan shows the index builds in the sync phase" "$OUT" \
  "CREATE INDEX IF NOT EXISTS ... of each secondary index shift.move_schema gives (indexes = \"after_copy\")"
pgshift --dsn "$SRC" run "$h" --to late-schema
expect_rc "its schema phase" 0
expect_in "says the secondary index waits" "$OUT" "2 tables made on the target; 1 secondary index made after the initial copy"
expect_eq "the keys and the foreign key are made, the secondary index not yet" \
  "$(q "SELECT (SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes WHERE tablename IN ('customers', 'orders'))
     || ' ' || (SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND conrelid = 'orders'::regclass)")" \
  "customers_pkey,orders_pkey 1"
pgshift --dsn "$SRC" run "$h" --to late-sync
expect_rc "its sync phase" 0
expect_in "builds the index after the copy" "$OUT" "index orders_customer of public.orders built on the target in"
expect_eq "as the source has it" "$(q "SELECT indexdef FROM pg_indexes WHERE indexname = 'orders_customer'")" \
  "$(q2 "SELECT indexdef FROM pg_indexes WHERE indexname = 'orders_customer'")"
expect_eq "and every row is there" "$(q "SELECT count(*) FROM orders")" "$(q2 "SELECT count(*) FROM orders")"
pgshift --dsn "$SRC" rollback "$h" --to late-subscribe
pgshift --dsn "$SRC" run "$h" --to late-sync
expect_rc "the sync phase runs again" 0
expect_in "and finds the index made" "$OUT" "index orders_customer of public.orders exists already on the target"
pgshift --dsn "$SRC" rollback "$h"
expect_rc "and rolls back" 0
expect_eq "nothing left on the target" \
  "$(q "SELECT (SELECT count(*) FROM pg_subscription) + (SELECT count(*) FROM pg_class WHERE relname IN ('customers', 'orders', 'orders_customer'))")" 0
i=$(mig badindexes <<LUA
return migration { name = "move_bad", phases = { online.move_tables{ tables = { "orders" }, indexes = "later",
  target = { dsn = "$TGT" } } } }
LUA
)
pgshift --dsn "$SRC" plan "$i"
expect_in "another value of indexes is refused" "$OUT$ERR" \
  "online.move_tables: 'indexes' must be \"after_copy\" (the default) or \"before_copy\""

# ---- the check on a source without logical decoding says what to change
q "CREATE TABLE plain (id int PRIMARY KEY); CREATE TABLE nokey (v int)"
g=$(mig replica <<LUA
return migration {
  name = "move_plain",
  phases = { online.move_tables{ tables = { "plain", "nokey" }, target = { dsn = "$SRC" } } },
}
LUA
)
pgshift --dsn "dbname=$TGT_DB" run "$g"
expect_rc "the check refuses a source with wal_level = replica" 1
expect_in "and says what to change" "$OUT$ERR" "source: wal_level is replica: set wal_level = logical in postgresql.conf (or ALTER SYSTEM SET wal_level = logical) and restart the server"
expect_in "and about the table without a key" "$OUT$ERR" "source: table public.nokey is no primary key and no REPLICA IDENTITY"
expect_eq "nothing was made" "$(q2 "SELECT count(*) FROM pg_class WHERE relname IN ('plain', 'nokey')")" 0


# ---- db:connect in a migration: the same methods on the other server, its
# errors naming it (never the DSN's password), dry in a plan
c=$(mig connect <<LUA
return migration {
  name = "connect_demo",
  phases = {
    { name = "both", up = function(db)
        local other = db:connect{ dsn = "$TGT password=sekrit-123" }
        local n = other:value("SELECT count(*) FROM plain")
        other:transaction(function(tx) tx:exec("INSERT INTO plain VALUES (\$1)", n + 41) end)
        local rows = other:query("SELECT id FROM plain ORDER BY id")
        log("other server: " .. #rows .. " row(s), id " .. rows[1].id .. ", here: "
          .. db:value("SELECT pg_catalog.current_setting('port')"))
        other:exec("SELECT * FROM no_such_table")
      end },
  },
}
LUA
)
pgshift --dsn "$SRC" run "$c"
expect_rc "a failed statement on the other server fails the phase" 1
expect_in "its methods ran there" "$OUT" "other server: 1 row(s), id 41, here: $SECOND_PORT"
expect_eq "in its own transaction, committed" "$(q "SELECT string_agg(id::text, ',') FROM plain")" 41
expect_in "the error names that server" "$OUT$ERR" "on database \"$TGT_DB\" on $PGHOST:$PGPORT as user \"postgres\": relation \"no_such_table\" does not exist"
expect_not_in "and not the password" "$OUT$ERR" "sekrit"
pgshift --dsn "$SRC" plan "$c"
expect_rc "the plan connects nowhere else" 0
expect_in "and shows the other server's statements, marked" "$OUT" "/* on target host=$PGHOST port=$PGPORT dbname=$TGT_DB */ INSERT INTO plain"
expect_not_in "without the password" "$OUT$ERR" "sekrit"
pgshift --dsn "$SRC" rollback "$c"
d=$(mig noconnect <<LUA
return migration { name = "noconnect", phases = { { name = "x", up = function(db)
  db:connect("host=$PGHOST port=1 dbname=nope password=sekrit-123")
end } } }
LUA
)
pgshift --dsn "$SRC" run "$d"
expect_rc "a server that cannot be reached fails the phase" 1
expect_in "naming where it tried" "$OUT$ERR" "db:connect: could not connect to the database: connection to server on socket \"$PGHOST/.s.PGSQL.1\" failed"
expect_not_in "never the password" "$OUT$ERR" "sekrit"
