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

# ---- db:create_index's options: per-key operator class, collation, order and
# NULLS order, the access method, storage parameters; every name quoted
q "CREATE SCHEMA \"Ops\"\"S\";
   CREATE OPERATOR CLASS \"Ops\"\"S\".\"my ops\" FOR TYPE text USING btree AS
     OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >, FUNCTION 1 bttextcmp(text, text);
   CREATE TABLE people (id int PRIMARY KEY, email text, \"a\"\"b\" text, tags text[], seen timestamptz,
                        span tstzrange);
   INSERT INTO people SELECT g, 'p' || g || '@x', 'q' || g, ARRAY['t' || g % 7], now(),
                             tstzrange(now(), now() + interval '1 day') FROM generate_series(1, 2000) g"
k=$(mig index_options <<'LUA'
local indexes = {
  { name = "people_email", table = "people", with = { fillfactor = 70 },
    columns = { { "email", collate = "C", opclass = "text_pattern_ops", order = "desc", nulls = "last" } } },
  { name = "people_id_nulls", table = "people", columns = { { "id", order = "ASC", nulls = "first" } } },
  { name = "people_tags", table = "people", method = "gin", columns = { "tags" }, with = { fastupdate = false } },
  { name = "people_seen", table = "people", method = "brin", columns = { "seen" },
    with = { pages_per_range = 16, autosummarize = true } },
  { name = "people_span", table = "people", method = "gist", columns = { "span" }, with = { buffering = "auto" } },
  { name = "people_ab", table = "people",
    columns = { { 'a"b', opclass = 'Ops"S.my ops', collate = { "pg_catalog", "C" } } } },
  { name = "people_lower", table = "people", include = { "id" }, where = "id > 10",
    expressions = { { "lower(email)", order = "desc" } } },
  { name = "people_hash", table = "people", using = "hash", columns = { "email" } },
}
return migration { name = "index_options", phases = {
  { name = "indexes",
    up = function(db) for _, i in ipairs(indexes) do db:create_index(i) end end,
    down = function(db)
      for _, i in ipairs(indexes) do db:drop_index{ name = i.name, table = i.table } end
    end },
} }
LUA
)
pgshift --dsn "dbname=$DB" lint "$k"
expect_rc "the indexes with options lint clean" 0
pgshift --dsn "dbname=$DB" plan "$k"
expect_in "plan shows a key's collation, operator class, order and NULLS order, and WITH" "$OUT" \
  'CREATE INDEX CONCURRENTLY "people_email" ON people ("email" COLLATE "C" "text_pattern_ops" DESC NULLS LAST) WITH ("fillfactor" = 70)'
expect_in "plan shows the method" "$OUT" 'ON people USING "gin" ("tags") WITH ("fastupdate" = false)'
expect_in "plan shows quoted, schema-qualified names" "$OUT" \
  '("a""b" COLLATE "pg_catalog"."C" "Ops""S"."my ops")'
pgshift --dsn "dbname=$DB" run "$k"
expect_rc "every index is built" 0
idef() { q "SELECT indexdef FROM pg_indexes WHERE indexname = '$1'"; }
expect_eq "collation, operator class, DESC NULLS LAST, fillfactor" "$(idef people_email)" \
  "CREATE INDEX people_email ON public.people USING btree (email COLLATE \"C\" text_pattern_ops DESC NULLS LAST) WITH (fillfactor='70')"
expect_eq "ASC NULLS FIRST" "$(idef people_id_nulls)" \
  "CREATE INDEX people_id_nulls ON public.people USING btree (id NULLS FIRST)"
expect_eq "pg_index's options per key: DESC (1), NULLS FIRST (2)" \
  "$(q "SELECT string_agg(indoption::text, ' ' ORDER BY indexrelid::regclass::text) FROM pg_index
         WHERE indexrelid IN ('people_email'::regclass, 'people_id_nulls'::regclass)")" "1 2"
expect_eq "gin, with its storage parameter" "$(idef people_tags)" \
  "CREATE INDEX people_tags ON public.people USING gin (tags) WITH (fastupdate='false')"
expect_eq "brin, with two" "$(idef people_seen)" \
  "CREATE INDEX people_seen ON public.people USING brin (seen) WITH (autosummarize='true', pages_per_range='16')"
expect_eq "gist, with a string parameter" "$(idef people_span)" \
  "CREATE INDEX people_span ON public.people USING gist (span) WITH (buffering=auto)"
expect_eq "a column named a\"b, an operator class in a quoted schema" "$(idef people_ab)" \
  "CREATE INDEX people_ab ON public.people USING btree (\"a\"\"b\" COLLATE \"C\" \"Ops\"\"S\".\"my ops\")"
expect_eq "which pg_index holds" \
  "$(q "SELECT n.nspname || '.' || c.opcname FROM pg_index i JOIN pg_opclass c ON c.oid = i.indclass[0]
          JOIN pg_namespace n ON n.oid = c.opcnamespace WHERE i.indexrelid = 'people_ab'::regclass")" 'Ops"S.my ops'
expect_eq "an expression's key options, with INCLUDE and WHERE as before" "$(idef people_lower)" \
  "CREATE INDEX people_lower ON public.people USING btree (lower(email) DESC) INCLUDE (id) WHERE (id > 10)"
expect_eq "'using', the older name of 'method'" "$(idef people_hash)" \
  "CREATE INDEX people_hash ON public.people USING hash (email)"
expect_eq "all of them valid" "$(q "SELECT count(*) FILTER (WHERE indisvalid) || '/' || count(*) FROM pg_index
  WHERE indrelid = 'people'::regclass AND indexrelid <> 'people_pkey'::regclass")" "8/8"
pgshift --dsn "dbname=$DB" rollback "$k"
expect_rc "they roll back" 0
expect_eq "and are gone" "$(q "SELECT count(*) FROM pg_index WHERE indrelid = 'people'::regclass")" 1

# bad_index NAME OPTIONS MESSAGE [run]: db:create_index with OPTIONS (at line 2)
# fails there with MESSAGE, in a run and (unless "run": only the server can
# tell) in an offline plan, naming no line of the prelude; nothing is built.
bad_index() {
  local f
  f=$(mig "bad_index_$1" <<LUA
return migration { name = "bad_index_$1", phases = { { name = "a", up = function(db)
  db:create_index{ name = "people_bad", table = "people", $2 }
end } } }
LUA
)
  pgshift --dsn "dbname=$DB" run "$f"
  expect_first_line "$1: the run fails at the call" "$f:2: $3"
  expect_not_in "$1: naming no line of the prelude" "$ERR" "[prelude"
  if [ "${4:-}" != run ]; then
    pgshift plan --offline "$f"
    expect_in "$1: the plan stops at the call" "$OUT" "-- the dry run stopped here: $f:2: $3"
  fi
  expect_eq "$1: nothing was built" "$(q "SELECT count(*) FROM pg_class WHERE relname = 'people_bad'")" 0
}
bad_index order 'columns = { { "email", order = "up" } }' \
  "db:create_index: 'columns' entry 1: 'order' must be \"asc\" or \"desc\", got \"up\""
bad_index nulls 'expressions = { "1", { "lower(email)", nulls = "middle" } }' \
  "db:create_index: 'expressions' entry 2: 'nulls' must be \"first\" or \"last\", got \"middle\""
bad_index key_option 'columns = { { "email", opklass = "x" } }' \
  "db:create_index: 'columns' entry 1: unknown key option 'opklass' (allowed: collate, nulls, opclass, order)"
bad_index opclass 'columns = { { "email", opclass = "a.b.c" } }' \
  "db:create_index: 'columns' entry 1: 'opclass' must be a name, \"schema.name\", or { \"schema\", \"name\" }"
bad_index collate 'columns = { { "email", collate = 5 } }' "db:create_index: 'columns' entry 1: 'collate' must be a name"
bad_index opclass_part 'columns = { { "email", opclass = "ops." } }' \
  "db:create_index: 'columns' entry 1: 'opclass': each part of the name must be a non-empty string"
bad_index no_name 'columns = { { order = "desc" } }' "db:create_index: 'columns' entry 1 must be a column name"
bad_index method 'method = "rtree", columns = { "email" }' \
  "db:create_index: 'method': no index access method \"rtree\" on this server (it has: brin, btree, gin, gist, hash, spgist)" run
bad_index both 'method = "gin", using = "gin", columns = { "tags" }' \
  "db:create_index: give 'method' only ('using' is its older name)"
bad_index with_name 'columns = { "email" }, with = { ["fillfactor = 1) --"] = 1 }' \
  "db:create_index: 'with': a storage parameter's name must be an identifier"
bad_index with_value 'columns = { "email" }, with = { fillfactor = {} }' \
  "db:create_index: 'with': fillfactor must be a number, a boolean or a string, got a table"
# what only the server checks is its error, at the call, the value intact
bad_index server_value 'columns = { "email" }, with = { fillfactor = 5 }' \
  "value 5 out of bounds for option \"fillfactor\"" run
bad_index quoted_value "method = \"gist\", columns = { \"span\" }, with = { buffering = \"au'to\" }" \
  "invalid value for enum option \"buffering\": au'to" run

# ---- the swap's short transaction is retried when a lock holds it up
# (db:transaction re-raises a statement's error as a failure: the retry loop
# must see the lock timeout inside it)
q "CREATE TABLE held (id int PRIMARY KEY, v int); INSERT INTO held SELECT g, g FROM generate_series(1, 100) g"
w=$(mig held <<'LUA'
return migration { name = "held", phases = {
  online.change_column_type{ table = "held", column = "v", type = "bigint", lock_timeout = 100, retries = 8 },
} }
LUA
)
pgshift --dsn "dbname=$DB" run "$w" --to held_v_type-validate
expect_rc "up to the swap" 0
psql -X -q -d "$DB" -c "BEGIN; LOCK TABLE held IN ACCESS SHARE MODE; SELECT pg_sleep(1.5); COMMIT" >/dev/null &
locker=$!
wait_for "the other session holds its lock" 10 \
  "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE relation = 'held'::regclass AND mode = 'AccessShareLock' AND pid <> pg_backend_pid())"
pgshift --dsn "dbname=$DB" run "$w" --to held_v_type-swap
wait $locker
expect_rc "the swap waits the lock out, retrying" 0
expect_in "each lock timeout is a retry" "$OUT" "canceling statement due to lock timeout (SQLSTATE 55P03); retry 1 of 8"
expect_eq "and v is swapped" "$(q "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'held'::regclass AND attname = 'v'")" bigint
