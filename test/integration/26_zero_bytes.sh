#!/usr/bin/env bash
# A zero byte in SQL text or a parameter: libpq sends only what comes before
# it, so "INSERT ...\0; DROP ..." ran the INSERT and the phase succeeded.
# Every db call refuses it before sending anything, naming the line.
. "$(dirname "$0")/lib.sh"

new_db zero
q "CREATE TABLE t (x int)"

f=$(mig cut <<'LUA'
return migration { name = "cut", phases = {
  { name = "a", up = function(db)
      db:exec("INSERT INTO t VALUES (1)\0; DROP TABLE t")
    end } } }
LUA
)
pgshift --dsn "dbname=$DB" run "$f"
expect_rc "a statement with a zero byte fails the phase" 1
expect_first_line "naming the call, the byte and that nothing was sent" \
  "$f:3: db:exec: the SQL text contains a zero byte (at byte 25), which PostgreSQL text cannot hold; nothing was sent"
expect_eq "the INSERT before the zero byte did not run" "$(q "SELECT count(*) FROM t")" 0
expect_eq "the phase is recorded as failed, with the whole message" \
  "$(q "SELECT status || ': ' || error_message FROM shift.phase WHERE migration = 'cut'")" \
  "failed: $f:3: db:exec: the SQL text contains a zero byte (at byte 25), which PostgreSQL text cannot hold; nothing was sent"

# every other way in: parameters, db:value, db:ddl, inside a transaction, a helper's identifier
f=$(mig paths <<'LUA'
local step = os.getenv("STEP")
return migration { name = "paths", phases = {
  { name = "a", up = function(db)
      if step == "query" then db:query("SELECT $1::text", "a\0b")
      elseif step == "value" then db:value("SELECT 1\0")
      elseif step == "ddl" then db:ddl("DROP TABLE t\0, u")
      elseif step == "transaction" then
        db:transaction(function(tx)
          tx:exec("INSERT INTO t VALUES (2)")
          tx:exec("INSERT INTO t VALUES (3)\0")
        end)
      elseif step == "helper" then db:create_index { name = "t_x\0", table = "t", columns = { "x" } }
      end
    end } } }
LUA
)
declare -A WANT=(
  [query]="$f:4: db:query: parameter \$1 contains a zero byte (at byte 2)"
  [value]="$f:5: db:value: the SQL text contains a zero byte (at byte 9)"
  [ddl]="$f:6: db:ddl: the SQL text contains a zero byte (at byte 13)"
  [transaction]="$f:10: db:exec: the SQL text contains a zero byte (at byte 25)"
  [helper]="$f:12: db:query: parameter \$2 contains a zero byte (at byte 4)"
)
for step in query value ddl transaction helper; do
  STEP=$step pgshift --dsn "dbname=$DB" run "$f"
  expect_rc "$step: refused" 1
  expect_first_line "$step: names the line" "${WANT[$step]}"
done
expect_eq "the transaction's first INSERT was rolled back" "$(q "SELECT count(*) FROM t")" 0
expect_eq "the table is still there" "$(q "SELECT to_regclass('t') IS NOT NULL")" t
expect_eq "no index was made" "$(q "SELECT count(*) FROM pg_indexes WHERE tablename = 't'")" 0

# plan: the dry run stops at the call, which lint then never sends
f=$(mig planned <<'LUA'
return migration { name = "planned", phases = {
  { name = "a", up = function(db)
      db:exec("SELECT 1")
      db:exec("SELECT 2\0; DROP TABLE t")
    end } } }
LUA
)
pgshift plan --offline "$f"
expect_rc "plan of it" 0
expect_in "the dry run stopped at the call" "$OUT" \
  "-- the dry run stopped here: $f:4: db:exec: the SQL text contains a zero byte (at byte 9)"
pgshift --dsn "dbname=$DB" lint "$f"
expect_rc "lint of it" 0
expect_in "lint says the rest was not linted" "$OUT" "not linted past this point"
expect_eq "nothing was dropped" "$(q "SELECT to_regclass('t') IS NOT NULL")" t
