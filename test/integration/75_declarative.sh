#!/usr/bin/env bash
# Declarative migration files (doc/declarative.md): a YAML and a JSON
# document of operations, mapped onto the Lua recipes and run by the same
# engine: phase by phase, rolled back, run again; their plan is the plan of
# the equivalent Lua file; bad documents are refused with the file, the
# JSON path and the line:column, and record nothing; a project directory
# mixes .lua and .yaml files in file-name order; the schema's operations
# are exactly those the runner accepts.
. "$(dirname "$0")/lib.sh"

SCHEMA=$(cd "$(dirname "$0")/../.." && pwd)/doc/migration.schema.json
setup_orders() {
  q "CREATE TABLE orders (id int PRIMARY KEY, amount text NOT NULL, email text, note text, qty int NOT NULL DEFAULT 1);
     INSERT INTO orders SELECT g, (g * 10)::text, 'u' || g || '@example.com', 'n' || g, 1 + g % 5
       FROM generate_series(1, 500) g" >/dev/null
}
# the table as the catalogs describe it: columns, constraints, indexes
shape() {
  q "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod) || CASE WHEN attnotnull THEN ' not null' ELSE '' END, ', ' ORDER BY attnum)
       FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attnum > 0 AND NOT attisdropped"
  q "SELECT coalesce(string_agg(conname || ':' || pg_get_constraintdef(oid), ', ' ORDER BY conname), '-')
       FROM pg_constraint WHERE conrelid = 'orders'::regclass"
  q "SELECT coalesce(string_agg(pg_get_indexdef(indexrelid), ', ' ORDER BY indexrelid::regclass::text), '-')
       FROM pg_index WHERE indrelid = 'orders'::regclass"
  q "SELECT coalesce(string_agg(relname, ', ' ORDER BY relname), '-') FROM pg_class WHERE relname = 'audit'"
}

cat >"$WORK/orders.yaml" <<'YAML'
# orders, declaratively: the same migration as orders.json and orders.lua
name: decl_orders
description: orders, declaratively
operations:
  - alter_column:
      table: orders
      column: amount
      type: bigint
      up: $old::bigint
      down: $new::text
  - add_column:
      table: orders
      column: status
      type: text
      up: "'new'"
  - create_index:
      table: orders
      name: orders_email_idx
      columns:
        - column: email
          order: desc
          nulls: last
      where: email IS NOT NULL
      with: { fillfactor: 70 }
  - rename_column:
      table: orders
      from: note
      to: remark
      old_version: v1
      new_version: v2
  - create_constraint:
      table: orders
      name: orders_qty_positive
      type: check
      check: qty > 0
  - sql:
      up: CREATE TABLE audit (id int)
      down: DROP TABLE audit
YAML

cat >"$WORK/orders.json" <<'JSON'
{
  "name": "decl_orders",
  "description": "orders, declaratively",
  "operations": [
    {"alter_column": {"table": "orders", "column": "amount", "type": "bigint",
                      "up": "$old::bigint", "down": "$new::text"}},
    {"add_column": {"table": "orders", "column": "status", "type": "text", "up": "'new'"}},
    {"create_index": {"table": "orders", "name": "orders_email_idx",
                      "columns": [{"column": "email", "order": "desc", "nulls": "last"}],
                      "where": "email IS NOT NULL", "with": {"fillfactor": 70}}},
    {"rename_column": {"table": "orders", "from": "note", "to": "remark",
                       "old_version": "v1", "new_version": "v2"}},
    {"create_constraint": {"table": "orders", "name": "orders_qty_positive", "type": "check",
                           "check": "qty > 0"}},
    {"sql": {"up": "CREATE TABLE audit (id int)", "down": "DROP TABLE audit"}}
  ]
}
JSON

# The same migration written in Lua, with the names the document derives.
cat >"$WORK/orders.lua" <<'LUA'
return migration {
  name = "decl_orders",
  description = "orders, declaratively",
  phases = {
    online.alter_column{ table = "orders", column = "amount", type = "bigint", up = "$old::bigint",
                         down = "$new::text", id = "1-alter_column-orders_amount" },
    online.add_column{ table = "orders", column = "status", type = "text", up = "'new'",
                       id = "2-add_column-orders_status" },
    { name = "3-create_index-orders_email_idx",
      description = "create index orders_email_idx on orders concurrently",
      up = function(db)
        db:create_index{ table = "orders", name = "orders_email_idx",
                         columns = { { "email", order = "desc", nulls = "last" } },
                         where = "email IS NOT NULL", with = { fillfactor = 70 } }
      end,
      down = function(db) db:drop_index{ name = "orders_email_idx", table = "orders" } end },
    online.rename_column{ table = "orders", from = "note", to = "remark", old_version = "v1",
                          new_version = "v2", name = "4-rename_column-orders_note" },
    { name = "5-create_constraint-orders_qty_positive",
      description = "add the check constraint orders_qty_positive on orders online (NOT VALID, then validated)",
      up = function(db)
        db:ddl('ALTER TABLE orders ADD CONSTRAINT "orders_qty_positive" CHECK (qty > 0) NOT VALID', {})
        db:ddl('ALTER TABLE orders VALIDATE CONSTRAINT "orders_qty_positive"', {})
      end,
      down = function(db) db:drop_constraint{ table = "orders", name = "orders_qty_positive" } end },
    { name = "6-sql", description = "SQL as written",
      up = function(db) db:exec("CREATE TABLE audit (id int)") end,
      down = function(db) db:exec("DROP TABLE audit") end },
  },
}
LUA

new_db decl
setup_orders
before=$(shape)

# ---- plan: the document's statements are the Lua file's
for f in orders.yaml orders.json orders.lua; do
  pgshift --dsn "dbname=$DB" plan "$WORK/$f" --format json
  expect_rc "plan $f" 0
  printf '%s\n' "$OUT" >"$WORK/plan.$f"
done
# the same statements, phases and descriptions, but for where each comes from
norm() { jq -S 'del(.file, .sha256) | walk(if type == "object" then del(.where) else . end)' "$1"; }
for f in orders.yaml orders.json; do
  if [ "$(norm "$WORK/plan.$f")" = "$(norm "$WORK/plan.orders.lua")" ]; then
    ok "plan of $f = plan of orders.lua (but for file, digest and sites)"
  else
    not_ok "plan of $f differs from orders.lua's" "$(diff <(norm "$WORK/plan.$f") <(norm "$WORK/plan.orders.lua") | head -20)"
  fi
done
expect_eq "plan names the document's phases" \
  "$(jq -r '[.phases[].name] | join(" ")' "$WORK/plan.orders.yaml")" \
  "1-alter_column-orders_amount-expand 1-alter_column-orders_amount-backfill 1-alter_column-orders_amount-validate 1-alter_column-orders_amount-contract 2-add_column-orders_status-expand 2-add_column-orders_status-backfill 2-add_column-orders_status-validate 2-add_column-orders_status-contract 3-create_index-orders_email_idx 4-rename_column-orders_note-expand 4-rename_column-orders_note-rename 4-rename_column-orders_note-contract 5-create_constraint-orders_qty_positive 6-sql"
expect_eq "a statement's site is the operation's line in the YAML file" \
  "$(jq -r '.phases[8].up.statements[-1].where' "$WORK/plan.orders.yaml")" "$WORK/orders.yaml:16: "
expect_eq "and in the JSON file" \
  "$(jq -r '.phases[12].up.statements[0].where' "$WORK/plan.orders.json")" "$WORK/orders.json:13: "
expect_eq "the digest is the document's bytes" "$(jq -r .sha256 "$WORK/plan.orders.yaml")" \
  "$(sha256sum "$WORK/orders.yaml" | cut -d' ' -f1)"

# ---- YAML: phase by phase up to the first contract, rolled back, then run to the end
for p in expand backfill validate; do
  pgshift --dsn "dbname=$DB" run "$WORK/orders.yaml" --to "1-alter_column-orders_amount-$p"
  expect_rc "run orders.yaml --to 1-alter_column-orders_amount-$p" 0
done
expect_eq "amount__new holds the bigint values" \
  "$(q "SELECT count(*) FROM orders WHERE amount__new IS DISTINCT FROM amount::bigint")" 0
pgshift --dsn "dbname=$DB" rollback "$WORK/orders.yaml"
expect_rc "rollback orders.yaml" 0
expect_eq "the rollback gave the table back as it was" "$(shape)" "$before"
pgshift --dsn "dbname=$DB" run "$WORK/orders.yaml"
expect_rc "run orders.yaml again, to the end" 0
expect_eq "every phase done" "$(phase_status decl_orders | tr ' ' '\n' | grep -vc '=done$')" 0
after=$(shape)
expect_in "amount is a bigint" "$after" "amount bigint not null"
expect_in "status was added and filled" "$after" "status text"
expect_eq "status filled for every row" "$(q "SELECT count(*) FROM orders WHERE status IS DISTINCT FROM 'new'")" 0
expect_in "note is remark" "$after" "remark text"
expect_in "the index has its options" "$after" \
  "CREATE INDEX orders_email_idx ON public.orders USING btree (email DESC NULLS LAST) WITH (fillfactor='70') WHERE (email IS NOT NULL)"
expect_in "the check is there, validated" "$after" "orders_qty_positive:CHECK ((qty > 0))"
expect_in "the sql operation ran" "$after" "audit"
# rolled back to before the first phase without a way back: the reversible tail goes
pgshift --dsn "dbname=$DB" rollback "$WORK/orders.yaml" --to 4-rename_column-orders_note-contract
expect_rc "rollback --to the rename's contract" 0
expect_not_in "the check went" "$(shape)" "orders_qty_positive"
expect_not_in "audit went" "$(shape)" "audit"
pgshift --dsn "dbname=$DB" run "$WORK/orders.yaml"
expect_rc "and run again" 0
expect_eq "the same shape as the first time" "$(shape)" "$after"

# ---- JSON: the same migration in another database ends in the same shape
yaml_db=$DB
new_db decl_json
setup_orders
pgshift --dsn "dbname=$DB" run "$WORK/orders.json" --to 1-alter_column-orders_amount-backfill
expect_rc "run orders.json part way" 0
pgshift --dsn "dbname=$DB" rollback "$WORK/orders.json"
expect_rc "rollback orders.json" 0
expect_eq "the JSON rollback gave the table back" "$(shape)" "$before"
pgshift --dsn "dbname=$DB" run "$WORK/orders.json"
expect_rc "run orders.json to the end" 0
expect_eq "the JSON migration made what the YAML one made" "$(shape)" "$after"
pgshift --dsn "dbname=$DB" verify "$WORK/orders.json"
expect_rc "verify orders.json" 0
pgshift --dsn "dbname=$DB" lint "$WORK/orders.json"
expect_rc "lint orders.json" 0
printf '\n' >>"$WORK/orders.json"
pgshift --dsn "dbname=$DB" run "$WORK/orders.json"
expect_rc "a changed document is drift" 1
expect_in "named as such" "$ERR" "was completed with a different script"

# ---- bad documents: a clear error, exit 1, nothing recorded
bad() {  # bad NAME.EXT DESCRIPTION EXPECTED-ERROR (stdin: the document)
  cat >"$WORK/$1"
  pgshift --dsn "dbname=$DB" run "$WORK/$1"
  expect_rc "$2: refused" 1
  expect_in "$2: the error says where and what" "$ERR" "$3"
  expect_eq "$2: nothing recorded" "$(q "SELECT count(*) FROM shift.migration WHERE name = 'bad'")" 0
}
bad unknown_op.yaml "an unknown operation" \
  "$WORK/unknown_op.yaml:3:5: operations[0].alter_colum: unknown operation 'alter_colum' (allowed: add_column, alter_column, create_constraint, create_index, drop_column, drop_constraint, drop_index, drop_table, rename_column, rename_table, sql)" <<'YAML'
name: bad
operations:
  - alter_colum: {table: orders, column: amount}
YAML
bad unknown_key.json "an unknown key" \
  "$WORK/unknown_key.json:3:61: operations[0].alter_column.tpye: unknown key 'tpye' (allowed: backfill, check, column," <<'JSON'
{"name": "bad",
 "operations": [
   {"alter_column": {"table": "orders", "column": "amount", "tpye": "bigint"}}]}
JSON
bad wrong_type.yaml "a wrong type" \
  "$WORK/wrong_type.yaml:5:13: operations[0].alter_column.type: must be a string, got integer 42" <<'YAML'
name: bad
operations:
  - alter_column:
      table: orders
      type: 42
      column: amount
YAML
bad wrong_enum.yaml "a value not in the list" \
  "operations[0].create_constraint.type: must be one of \"check\", \"foreign_key\", \"unique\", \"not_null\", got \"primary\"" <<'YAML'
name: bad
operations:
  - create_constraint: {table: orders, name: x, type: primary}
YAML
bad not_object.yaml "a document that is not an object" \
  "$WORK/not_object.yaml:1:1: must be an object, got string \"just words\"" <<'YAML'
just words
YAML
bad yes.yaml "YAML 1.1's yes is no boolean here" \
  "$WORK/yes.yaml:3:70: operations[0].create_index.unique: must be a boolean, got string \"yes\"" <<'YAML'
name: bad
operations:
  - create_index: {table: orders, name: i, columns: [email], unique: yes}
YAML
bad missing.yaml "a missing option" \
  "$WORK/missing.yaml:3:19: operations[0].create_index: missing 'name'" <<'YAML'
name: bad
operations:
  - create_index: {table: orders, columns: [email]}
YAML
bad two_ops.yaml "two operations in one item" \
  "operations[0]: must hold exactly one key, the operation (one of: add_column," <<'YAML'
name: bad
operations:
  - sql: {up: SELECT 1}
    drop_table: {table: orders}
YAML
bad alias.yaml "a YAML alias" \
  "$WORK/alias.yaml:3:10: operations[0].sql: anchors (&q) and aliases are not allowed: a migration document is plain data" <<'YAML'
name: bad
operations:
  - sql: &q {up: SELECT 1}
  - sql: *q
YAML
bad tag.yaml "a YAML tag" "tags (tag:yaml.org,2002:str) are not allowed" <<'YAML'
name: bad
operations:
  - sql: {up: !!str SELECT 1}
YAML
bad syntax.json "invalid JSON syntax" "$WORK/syntax.json:3:" <<'JSON'
{"name": "bad",
 "operations": [
   {"sql": {"up": "SELECT 1"}}}]}
JSON
expect_in "invalid syntax: says it is invalid JSON" "$ERR" "invalid JSON:"
bad syntax.yaml "invalid YAML syntax" "$WORK/syntax.yaml:5:1: operations[0].sql.up: invalid YAML: found unexpected end of stream while scanning a quoted scalar" <<'YAML'
name: bad
operations:
  - sql:
     up: "SELECT 1
YAML
{ echo 'name: bad'; echo 'operations:'; echo '  - sql:'; printf '      up: '; printf '[%.0s' $(seq 40); echo; } | \
  bad deep.yaml "a document nested too deep" "nested more than 32 levels deep"
{ echo 'name: bad'; echo 'operations:'; echo '  - sql:'; printf '      up: "'; head -c 1100000 /dev/zero | tr '\0' x; echo '"'; } | \
  bad big.yaml "a document too big" "$WORK/big.yaml: the document is larger than 1048576 bytes"
bad null.yaml "a null value" "$WORK/null.yaml:3:31: operations[0].sql.down: null is not a value here" <<'YAML'
name: bad
operations:
  - sql: {up: SELECT 1, down: }
YAML
bad dup.json "a duplicate key" "$WORK/dup.json:1:17: duplicate key 'name'" <<'JSON'
{"name": "bad", "name": "bad2", "operations": [{"sql": {"up": "SELECT 1"}}]}
JSON
bad constraint.yaml "an option of another constraint type" \
  "operations[0].create_constraint.columns: not an option of type check" <<'YAML'
name: bad
operations:
  - create_constraint: {table: orders, name: c, type: check, check: qty > 0, columns: [qty]}
YAML

# ---- the schema and the runner accept the same operations
ops=$(jq -r '."$defs".operation.properties | keys | join(", ")' "$SCHEMA")
expect_in "the runner's list of operations is the schema's" "$(cat "$WORK/unknown_op.yaml" >/dev/null; pgshift --dsn "dbname=$DB" plan "$WORK/unknown_op.yaml"; echo "$ERR")" "(allowed: $ops)"
for op in $(jq -r '."$defs".operation.properties | keys[]' "$SCHEMA"); do
  keys=$(jq -r --arg op "$op" '."$defs"[$op].properties | keys | join(", ")' "$SCHEMA")
  printf 'name: bad\noperations:\n  - %s: {nosuchoption: 1}\n' "$op" >"$WORK/op.yaml"
  pgshift --dsn "dbname=$DB" plan "$WORK/op.yaml"
  expect_in "$op: the runner allows the schema's options" "$ERR" "unknown key 'nosuchoption' (allowed: $keys)"
done
jq -e '."$schema" == "https://json-schema.org/draft/2020-12/schema"' "$SCHEMA" >/dev/null && ok "the schema is draft 2020-12" \
  || not_ok "the schema is not draft 2020-12"

# ---- a project directory mixing .lua and .yaml files runs in file-name order
DB=$yaml_db
D=$WORK/project
mkdir "$D"
cat >"$D/001_a.lua" <<'LUA'
return migration { name = "p_a", phases = { { name = "t",
  up = function(db) db:exec "CREATE TABLE p_log (n serial, who text)" db:exec "INSERT INTO p_log (who) VALUES ('a')" end } } }
LUA
cat >"$D/002_b.yaml" <<'YAML'
name: p_b
operations:
  - sql: {up: "INSERT INTO p_log (who) VALUES ('b')"}
YAML
cat >"$D/003_c.json" <<'JSON'
{"name": "p_c", "operations": [{"sql": {"up": "INSERT INTO p_log (who) VALUES ('c')"}}]}
JSON
cat >"$D/004_d.yml" <<'YAML'
name: p_d
operations: [{sql: {up: "INSERT INTO p_log (who) VALUES ('d')"}}]
YAML
pgshift --dsn "dbname=$DB" status "$D"
expect_in "status DIR lists the documents" "$OUT" "002_b.yaml"
pgshift --dsn "dbname=$DB" run "$D"
expect_rc "run DIR" 0
expect_eq "in file-name order" "$(q "SELECT string_agg(who, '' ORDER BY n) FROM p_log")" "abcd"
