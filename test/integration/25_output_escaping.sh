#!/usr/bin/env bash
# What pgshift prints comes from the server, the migration file and the
# recorded state, and none of it may drive the terminal: escape sequences and
# other control characters are shown as \xNN (C1 and bidi controls as
# \uNNNN).  With --json, every line of stdout is valid JSON, whatever bytes
# the migration put in its messages.
. "$(dirname "$0")/lib.sh"

new_db output
ESC=$'\e'

# no_controls DESC FILE: FILE is UTF-8 and holds no C0 control but newline and
# tab, no DEL, no C1 control and no bidi formatting character.
no_controls() {
  if ! iconv -f UTF-8 -t UTF-8 "$2" >/dev/null 2>&1 ||
     LC_ALL=C grep -qaP '[\x00-\x08\x0b-\x1f\x7f]|\xc2[\x80-\x9f]|\xe2\x80[\x8e\x8f\xaa-\xae]|\xe2\x81[\xa6-\xa9]' "$2"; then
    not_ok "$1: raw control characters" "$(od -c "$2" | head -20)"
  else
    ok "$1"
  fi
}

# json_lines DESC TEXT: every line of TEXT is one valid JSON document (jq),
# TEXT is UTF-8 (iconv), and it holds no DEL, C1 control or U+2028/U+2029.
json_lines() {
  local line bad=""
  printf '%s\n' "$2" | iconv -f UTF-8 -t UTF-8 >/dev/null 2>&1 || bad="not UTF-8"
  while IFS= read -r line; do
    [ -z "$line" ] || jq . >/dev/null 2>&1 <<<"$line" || bad="not JSON: $line"
  done <<<"$2"
  if printf '%s' "$2" | LC_ALL=C grep -qaP '\x7f|\xc2[\x80-\x9f]|\xe2\x80[\xa8\xa9]'; then bad="raw DEL, C1 or U+2028/9"; fi
  if [ -z "$2" ]; then bad="no output"; fi
  if [ -z "$bad" ]; then ok "$1"; else not_ok "$1: $bad" "$(printf '%s' "$2" | od -c | head -20)"; fi
}

# code_points JSON FILTER: the code points of the string FILTER selects, as numbers.
code_points() { jq -r "$2 | explode | map(tostring) | join(\",\")" <<<"$1"; }

q "CREATE TABLE t (id int PRIMARY KEY, c text)"
q "CREATE FUNCTION \"f${ESC}[2J\"() RETURNS void LANGUAGE plpgsql AS \$\$
   BEGIN
     RAISE WARNING E'warn \\x1b[31mred';
     RAISE EXCEPTION E'boom \\x1b[2J' USING DETAIL = E'detail \\x1b]0;title\\x07', HINT = E'hint \\u009b2J';
   END \$\$"

# ---- terminal: the server's error fields, a relayed warning, log(), phase names
f=$(mig esc <<'LUA'
local m = migration { name = "esc", phases = {
  { name = "a", up = function(db)
      log("log \27[2J here \226\128\174rtl")
      db:exec([[SELECT "f]] .. "\27" .. [[[2J"()]])
    end } } }
m.phases[1].name = "a\27[2J"        -- changed after the checks: no effect
return m
LUA
)
pgshift --dsn "dbname=$DB" run "$f"
expect_rc "the phase fails" 1
no_controls "stdout has no raw control characters" "$WORK/stdout"
no_controls "stderr has none either" "$WORK/stderr"
expect_in "log() is shown escaped" "$OUT" 'log \x1b[2J here \u202ertl'
expect_eq "the phase name is the one the checks saw" "$(grep -- '^--> ' <<<"$OUT")" "--> [1/1] a"
expect_in "the error message is shown escaped" "$ERR" 'boom \x1b[2J (SQLSTATE P0001)'
expect_in "the detail" "$ERR" 'detail: detail \x1b]0;title\x07'
expect_in "the hint (a C1 control)" "$ERR" 'hint: hint \u009b2J'
expect_in "the server's context (a function name)" "$ERR" 'PL/pgSQL function "f\x1b[2J"() line 4 at RAISE'
expect_in "the relayed warning" "$ERR" 'server WARNING: warn \x1b[31mred'

pgshift --dsn "dbname=$DB" status esc
expect_rc "status of it" 0
no_controls "status shows the recorded error escaped" "$WORK/stdout"
expect_in "as text" "$OUT" 'esc.lua:4: boom \x1b[2J (SQLSTATE P0001)'
pgshift --dsn "dbname=$DB" status
no_controls "status of all migrations too" "$WORK/stdout"

f=$(mig luaerr <<'LUA'
return migration { name = "luaerr", phases = {
  { name = "a", up = function(db) error("lua \27]0;pwned\7 \155 2J") end } } }
LUA
)
pgshift --dsn "dbname=$DB" run "$f"
expect_rc "a Lua error" 1
no_controls "is printed without raw control characters" "$WORK/stderr"
expect_in "escaped, a stray byte too" "$ERR" 'lua \x1b]0;pwned\x07 \x9b 2J'

# ---- plan and lint show the file's SQL and the server's findings escaped
q "CREATE TABLE \"t${ESC}[2J\" (id int PRIMARY KEY, c text)"
f=$(mig risky <<'LUA'
return migration { name = "risky", description = "desc \27[2J",
  phases = { { name = "a",
    up = function(db) db:exec('ALTER TABLE "t\27[2J" ALTER COLUMN c SET NOT NULL') end } } }
LUA
)
risky=$f
pgshift --dsn "dbname=$DB" plan "$f"
expect_rc "plan" 0
no_controls "plan output" "$WORK/stdout"
expect_in "shows the statement escaped" "$OUT" 'ALTER TABLE "t\x1b[2J" ALTER COLUMN c SET NOT NULL;'
expect_in "and the description" "$OUT" 'desc \x1b[2J'
pgshift --dsn "dbname=$DB" lint "$f"
expect_rc "lint finds SET NOT NULL" 1
no_controls "lint output" "$WORK/stdout"
expect_in "naming the table escaped" "$OUT" 'HIGH set-not-null: SET NOT NULL on "t\x1b[2J".c'

pgshift "${ESC}[2J"
expect_rc "an unknown command" 2
no_controls "is echoed escaped" "$WORK/stderr"
expect_in "as \\x1b" "$ERR" 'unknown command "\x1b[2J"'

# ---- --json: valid JSON whatever bytes the migration and the server send
f=$(mig jsonrun <<'LUA'
return migration { name = "jsonrun", phases = {
  { name = "a", up = function(db) log("L\255\254 \27[2J \226\128\168 \194\133 \127 \"q\" \\") end,
    down = function(db) end },
  { name = "b", up = function(db) error("E\255 \27[2J \226\128\169") end } } }
LUA
)
pgshift --dsn "dbname=$DB" --json run "$f"
expect_rc "run --json of a failing migration" 1
json_lines "run --json: every line is valid JSON" "$OUT"
expect_eq "log(): bytes that are not UTF-8 became U+FFFD, controls escaped" \
  "$(code_points "$(grep '"event":"log"' <<<"$OUT")" .message)" \
  "76,65533,65533,32,27,91,50,74,32,8232,32,133,32,127,32,34,113,34,32,92"
expect_eq "the error event's message too" \
  "$(code_points "$(grep '"event":"error"' <<<"$OUT")" .message | sed 's/.*,69,/69,/')" \
  "69,65533,32,27,91,50,74,32,8233"

pgshift --dsn "dbname=$DB" --json status jsonrun
json_lines "status --json with the recorded error" "$OUT"
pgshift --dsn "dbname=$DB" --json status esc
json_lines "status --json with the server's error" "$OUT"
expect_in "which reads back as the server sent it" "$(jq -r '.[0].last_error' <<<"$OUT")" "esc.lua:4: boom ${ESC}[2J (SQLSTATE P0001)"

f=$(mig jsonplan <<'LUA'
return migration { name = "jsonplan", description = "D\255 \27 \226\128\168",
  phases = { { name = "a", up = function(db) db:exec("SELECT '\255\27'", "p\255") end } } }
LUA
)
pgshift plan --offline --format json "$f"
expect_rc "plan --format json" 0
json_lines "plan --format json is valid JSON" "$OUT"
expect_eq "the description reads back" "$(code_points "$OUT" .description)" "68,65533,32,27,32,8232"
pgshift plan --offline --json "$f"
json_lines "plan --json too" "$OUT"
pgshift --dsn "dbname=$DB" --json lint "$risky"
json_lines "lint --json with a finding on a table named with ESC" "$OUT"
expect_eq "the finding's object reads back" "$(jq -r '.findings[0].object' <<<"$OUT")" "\"t${ESC}[2J\""

# ---- compare: a key from a SQL_ASCII database may hold any bytes
for side in a b; do
  dropdb --if-exists --force "it_ascii_$side" 2>/dev/null
  createdb -E SQL_ASCII -T template0 --locale=C "it_ascii_$side" || { echo "Bail out! createdb failed"; exit 1; }
  T_DBS+=("it_ascii_$side")
  psql -X -q -v ON_ERROR_STOP=1 -d "it_ascii_$side" -c "CREATE EXTENSION pg_shift;
    CREATE TABLE k (id text PRIMARY KEY, v int); INSERT INTO k VALUES ('same', 1)" >/dev/null
done
psql -X -q -v ON_ERROR_STOP=1 -d it_ascii_a -c "INSERT INTO k VALUES (E'\\xff\\x1b[2J', 2)" >/dev/null
pgshift compare --source dbname=it_ascii_a --target dbname=it_ascii_b --table k
expect_rc "compare finds the key only the source has" 1
no_controls "and prints it without raw control characters" "$WORK/stdout"
expect_in "escaped" "$OUT" 'missing_in_target  {\xff\x1b[2J}'
pgshift compare --source dbname=it_ascii_a --target dbname=it_ascii_b --table k --json
json_lines "compare --json with that key is valid JSON" "$OUT"
expect_eq "the key reads back, the byte that is not UTF-8 as U+FFFD" \
  "$(code_points "$(grep '"difference"' <<<"$OUT")" .key)" "123,65533,27,91,50,74,125"
