#!/usr/bin/env bash
# The online forms of risky DDL, each run for real, interrupted or failed and
# run again (resumable), rolled back (reversible), and linted clean:
# db:create_index, db:add_not_null, db:add_foreign_key, db:add_column and
# online.change_column_type (this last one under pgbench writes).
. "$(dirname "$0")/lib.sh"

new_db online
PGBENCH=$PGSHIFT_PGBIN/pgbench
q "CREATE TABLE items (id int PRIMARY KEY, sku text, qty int NOT NULL DEFAULT 1, owner int);
   INSERT INTO items SELECT g, 'sku-' || g, g % 50, g % 100 FROM generate_series(1, 20000) g;
   UPDATE items SET sku = 'sku-1' WHERE id = 2;          -- a duplicate: the unique index will fail
   CREATE TABLE owners (id int PRIMARY KEY);
   INSERT INTO owners SELECT g FROM generate_series(1, 98) g;   -- owners 0 and 99 are missing
   ANALYZE items"
relfile() { q "SELECT relfilenode FROM pg_class WHERE oid = 'items'::regclass"; }
before=$(relfile)

f=$(mig online <<'LUA'
return migration {
  name = "items_online",
  phases = {
    { name = "index",
      up = function(db) db:create_index{ name = "items_sku_key", table = "items", columns = {"sku"}, unique = true } end,
      down = function(db) db:drop_index{ name = "items_sku_key", table = "items" } end },
    { name = "fk",
      up = function(db) db:add_foreign_key{ table = "items", columns = {"owner"}, references = "owners" } end,
      down = function(db) db:drop_constraint{ table = "items", name = "items_owner_fkey" } end },
    { name = "sku-not-null",
      up = function(db) db:add_not_null{ table = "items", column = "sku" } end,
      down = function(db) db:drop_not_null{ table = "items", column = "sku" } end },
    { name = "token",
      up = function(db)
        db:add_column{ table = "items", column = "token", type = "uuid", default = "gen_random_uuid()",
                       not_null = true, backfill = { batch_max = 5000 } }
      end,
      down = function(db) db:drop_column{ table = "items", column = "token" } end },
    { name = "status",
      up = function(db) db:add_column{ table = "items", column = "status", type = "text", default = "'new'" } end,
      down = function(db) db:drop_column{ table = "items", column = "status" } end },
  },
}
LUA
)

pgshift --dsn "dbname=$DB" lint "$f"
expect_rc "the online forms lint clean (nothing at HIGH or above)" 0
pgshift --dsn "dbname=$DB" plan "$f"
expect_in "plan shows CREATE INDEX CONCURRENTLY" "$OUT" 'CREATE UNIQUE INDEX CONCURRENTLY "items_sku_key" ON items ("sku")'
expect_in "plan shows NOT VALID then VALIDATE for the foreign key" "$OUT" 'FOREIGN KEY ("owner") REFERENCES owners NOT VALID'
expect_in "plan shows the check that SET NOT NULL trusts" "$OUT" 'CHECK ("sku" IS NOT NULL) NOT VALID'
expect_not_in "plan shows no catalog lookups" "$OUT" "pg_catalog.pg_index"

# ---- a unique index that cannot be built leaves an invalid index; the next run replaces it
pgshift --dsn "dbname=$DB" run "$f" --to index
expect_rc "the unique index fails on the duplicate" 1
expect_in "with PostgreSQL's error" "$ERR" "could not create unique index"
expect_eq "its down dropped the invalid leftover" "$(q "SELECT count(*) FROM pg_class WHERE relname = 'items_sku_key'")" 0
# leave an invalid one behind, as a killed runner would
psql -X -q -d "$DB" -c "CREATE UNIQUE INDEX CONCURRENTLY items_sku_key ON items (sku)" >/dev/null 2>&1
expect_eq "an invalid leftover is there" "$(q "SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_sku_key'::regclass")" f
q "UPDATE items SET sku = 'sku-2' WHERE id = 2"
pgshift --dsn "dbname=$DB" run "$f" --to index
expect_rc "after the data is fixed the index builds" 0
expect_in "replacing the invalid leftover" "$OUT" "invalid leftover of a failed build: dropping it"
expect_eq "the index is valid" "$(q "SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_sku_key'::regclass")" t

# ---- a foreign key with orphans fails at VALIDATE; fixing the data lets it through
pgshift --dsn "dbname=$DB" run "$f" --to fk
expect_rc "the foreign key fails on rows without an owner" 1
expect_in "naming the violation" "$ERR" "violates foreign key constraint"
expect_eq "its down removed the NOT VALID constraint" "$(q "SELECT count(*) FROM pg_constraint WHERE conname = 'items_owner_fkey'")" 0
q "INSERT INTO owners VALUES (0), (99)"
# resumable: a NOT VALID constraint left by an interrupted run is validated, not re-added
q "ALTER TABLE items ADD CONSTRAINT items_owner_fkey FOREIGN KEY (owner) REFERENCES owners NOT VALID"
pgshift --dsn "dbname=$DB" run "$f" --to fk
expect_rc "the foreign key is validated" 0
expect_eq "and is valid" "$(q "SELECT convalidated FROM pg_constraint WHERE conname = 'items_owner_fkey'")" t

# ---- NOT NULL the online way, while another session writes
(
  for i in $(seq 1 30); do psql -X -q -d "$DB" -c "UPDATE items SET qty = qty + 1 WHERE id = $((i * 7))" >/dev/null 2>&1; done
) &
writer=$!
pgshift --dsn "dbname=$DB" run "$f" --to sku-not-null
wait $writer
expect_rc "SET NOT NULL through a validated check" 0
expect_eq "sku is NOT NULL" "$(q "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'items'::regclass AND attname = 'sku'")" t
expect_eq "and the helper's check is gone" "$(q "SELECT count(*) FROM pg_constraint WHERE conname = 'items_sku_not_null'")" 0

# ---- a volatile default without a rewrite: every old row gets its own value
pgshift --dsn "dbname=$DB" run "$f"
expect_rc "add_column with gen_random_uuid() and a plain default" 0
expect_eq "the table was never rewritten" "$(relfile)" "$before"
expect_eq "every existing row has a token of its own" \
  "$(q "SELECT count(DISTINCT token) = count(*) AND count(*) = 20000 FROM items")" t
q "INSERT INTO items (id, sku, owner) VALUES (30000, 'fresh', 1)"
expect_eq "new rows get the default" "$(q "SELECT token IS NOT NULL AND status = 'new' FROM items WHERE id = 30000")" t
expect_eq "token is NOT NULL" "$(q "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'items'::regclass AND attname = 'token'")" t
expect_eq "a non-volatile default took one statement, no backfill" \
  "$(q "SELECT count(*) FROM shift.backfill WHERE phase = 'status'")" 0

# ---- and all of it rolls back
pgshift --dsn "dbname=$DB" rollback "$f"
expect_rc "every phase rolls back" 0
expect_eq "columns, constraint, index and NOT NULL are gone" \
  "$(q "SELECT (SELECT count(*) FROM pg_attribute WHERE attrelid = 'items'::regclass AND attname IN ('token', 'status') AND NOT attisdropped)
             + (SELECT count(*) FROM pg_constraint WHERE conrelid = 'items'::regclass AND contype = 'f')
             + (SELECT count(*) FROM pg_class WHERE relname = 'items_sku_key')
             + (SELECT count(*) FROM pg_attribute WHERE attrelid = 'items'::regclass AND attname = 'sku' AND attnotnull)")" 0

# ---- a column's type changed under load, with its rollback from the swap
q "CREATE TABLE stock (id int PRIMARY KEY, qty int NOT NULL DEFAULT 0, note text);
   INSERT INTO stock SELECT g, g, 'n' FROM generate_series(1, 10000) g"
cat >"$WORK/stock.sql" <<'SQL'
\set id random(1, 12000)
\set d random(1, 9)
UPDATE stock SET qty = qty + :d WHERE id = :id;
INSERT INTO stock (id, qty) VALUES (:id + 20000, :d) ON CONFLICT (id) DO UPDATE SET qty = stock.qty + 1;
SQL
g=$(mig stock <<'LUA'
return migration {
  name = "stock_qty_bigint",
  phases = {
    online.change_column_type{ table = "stock", column = "qty", type = "bigint", name = "stock_qty" },
  },
}
LUA
)
"$PGBENCH" -n -c 2 -T 8 -f "$WORK/stock.sql" "$DB" >"$WORK/pgbench.out" 2>&1 &
bench=$!
sleep 1
pgshift --dsn "dbname=$DB" run "$g" --to stock_qty-validate
expect_rc "expand, backfill and validate run under writes" 0
q "INSERT INTO stock (id, qty) VALUES (90001, 42); INSERT INTO stock (id) VALUES (90002)"
expect_eq "an insert giving the column keeps its value, one leaving it gets the default, both sides" \
  "$(q "SELECT string_agg(qty || '/' || qty__new, ' ' ORDER BY id) FROM stock WHERE id IN (90001, 90002)")" "42/42 0/0"
pgshift --dsn "dbname=$DB" run "$g" --to stock_qty-swap
expect_rc "the swap runs under writes" 0
q "INSERT INTO stock (id, qty) VALUES (90003, 77); INSERT INTO stock (id) VALUES (90004)"
expect_eq "after the swap too (the default moved with the swap)" \
  "$(q "SELECT string_agg(qty || '/' || qty__old, ' ' ORDER BY id) FROM stock WHERE id IN (90003, 90004)")" "77/77 0/0"
pgshift --dsn "dbname=$DB" run "$g" --to stock_qty-swap
expect_rc "running the swap again is a no-op" 0
expect_eq "qty is bigint now" "$(q "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'stock'::regclass AND attname = 'qty'")" bigint
sleep 1
pgshift --dsn "dbname=$DB" rollback "$g" --to stock_qty-validate
expect_rc "the swap rolls back under writes" 0
wait $bench
expect_eq "pgbench finished without failures" \
  "$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$WORK/pgbench.out")" 0
expect_eq "qty is integer again" "$(q "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'stock'::regclass AND attname = 'qty'")" integer
q "INSERT INTO stock (id, qty) VALUES (90005, 5)"
expect_eq "and after the swap's rollback inserts keep their values" \
  "$(q "SELECT qty || '/' || qty__new FROM stock WHERE id = 90005")" "5/5"
expect_eq "and the copy agrees with it in every row" "$(q "SELECT count(*) FROM stock WHERE qty__new IS DISTINCT FROM qty")" 0
# the application's new version inserts without the old column while the
# contract drops the sync and that (NOT NULL) column: never between the two
cat >"$WORK/insert.sql" <<'SQL'
\set id random(100000, 100000000)
INSERT INTO stock (id, qty) VALUES (:id, 1) ON CONFLICT (id) DO NOTHING;
SQL
pgshift --dsn "dbname=$DB" run "$g" --to stock_qty-swap
expect_rc "the swap again" 0
# which transaction drops what: the gap between the sync's triggers and the
# old column is a window in which inserts fail, however short it is
q "CREATE TABLE drop_log (xid xid8, what text);
   CREATE FUNCTION log_drops() RETURNS event_trigger LANGUAGE plpgsql AS \$\$
   BEGIN
     INSERT INTO public.drop_log SELECT pg_current_xact_id(), object_type || ' ' || object_identity
       FROM pg_event_trigger_dropped_objects() WHERE object_type IN ('trigger', 'table column');
   END \$\$;
   CREATE EVENT TRIGGER log_drops ON sql_drop EXECUTE FUNCTION log_drops()"
"$PGBENCH" -n -c 2 -T 6 -f "$WORK/insert.sql" "$DB" >"$WORK/inserts.out" 2>&1 &
bench=$!
sleep 1
pgshift --dsn "dbname=$DB" run "$g"
expect_rc "the contract" 0
q "DROP EVENT TRIGGER log_drops"
expect_eq "the contract drops the sync's triggers and the old column in one transaction" \
  "$(q "SELECT count(DISTINCT xid) || ':' || count(*) FILTER (WHERE what LIKE 'table column %qty\_\_old')
               || ':' || (count(*) FILTER (WHERE what LIKE 'trigger %stock') > 0)
          FROM drop_log")" "1:1:true"
wait $bench
bench_rc=$?
expect_eq "no insert of the application failed while the sync and the old column went" \
  "$bench_rc:$(grep -c 'aborted\|ERROR' "$WORK/inserts.out")" "0:0"
expect_eq "qty is bigint, NOT NULL, with its default, and the helper columns are gone" \
  "$(q "SELECT format_type(atttypid, atttypmod) || ' ' || attnotnull || ' ' || pg_get_expr(d.adbin, d.adrelid)
          || ' ' || (SELECT count(*) FROM pg_attribute x WHERE x.attrelid = 'stock'::regclass AND x.attname LIKE 'qty\_\_%' AND NOT x.attisdropped)
          FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE a.attrelid = 'stock'::regclass AND a.attname = 'qty'")" "bigint true 0 0"
expect_eq "no sync is left" "$(q "SELECT count(*) FROM shift.sync")" 0
q "CREATE TABLE keyed (id int PRIMARY KEY)"
h=$(mig keyed <<'LUA'
return migration { name = "keyed", phases = { online.change_column_type{ table = "keyed", column = "id", type = "bigint" } } }
LUA
)
pgshift --dsn "dbname=$DB" run "$h"
expect_rc "a column in an index is refused" 1
expect_in "pointing at the table route" "$ERR" "is in index(es) keyed_pkey: change its type through a new table"
