#!/usr/bin/env bash
# The prelude's db methods, seen from the migration file: an error about a
# call's arguments names the file's line of the call, never a line of the
# runner's own Lua; every statement a plan records (a helper's, an online
# recipe's) names the line of the migration file that made it; identifiers
# and literals are quoted by libpq (db:quote_ident, db:quote_literal), the
# same in a plan made offline; and plan reads the recorded state through the
# views meant for the runner, so a migration whose runner died reads as
# interrupted there as in `pgshift status`; no statement of the runner's
# sources reads a control table or shift_internal.
. "$(dirname "$0")/lib.sh"

new_db calls

# ---- argument errors point at the call (plan --offline: no server needed)
# bad_call NAME CALL MESSAGE [LINE]: a phase whose up makes CALL (from line
# 2) is planned; the dry run stops at the file's LINE (2) with MESSAGE,
# naming no prelude line.
bad_call() {
  local f
  f=$(mig "bad_$1" <<LUA
return migration { name = "bad", phases = { { name = "a", up = function(db)
  $2
end } } }
LUA
)
  pgshift plan --offline "$f"
  expect_in "$1: the dry run stops at the file's line" "$OUT" "-- the dry run stopped here: $f:${4:-2}: $3"
  expect_not_in "$1: and never at the prelude's" "$OUT" "[prelude"
}
bad_call checksum 'db:checksum{ table = "t", bogus = 1 }' \
  "db:checksum: unknown option 'bogus' (allowed: columns, table)"
bad_call backfill 'db:backfill{ table = "t", set = "x = 1", bogus = 1 }' "db:backfill: unknown option 'bogus'"
bad_call cutover 'db:cutover{ bogus = 1 }' "db:cutover: unknown option 'bogus'"
bad_call cutover_sync 'db:cutover{}' "db:cutover: 'sync' is required"
bad_call not_null 'db:drop_not_null{ table = "t" }' "db:drop_not_null: 'column' is required"
# from a function of the file's own: the line of the call, not of the function's caller
nested=$'local function f()
    db:cutover{ bogus = 1 }
  end
  f()'
bad_call nested_cutover "$nested" "db:cutover: unknown option 'bogus'" 3
nested=$'local function f()
    db:add_not_null{ table = "t" }
  end
  f()'
bad_call nested_not_null "$nested" "db:add_not_null: 'column' is required" 3
bad_call compare_key 'db:compare{ source = "a", target = "b", key = 5 }' "db:compare: 'key' must be a list"
bad_call sync_columns 'db:sync{ table = "t", set = "a = 1", columns = 5 }' "db:sync: 'columns' must be a list"

# ---- every recorded statement names the line of the migration file that made it
f=$(mig made <<'LUA'
return migration { name = "made", phases = {
  { name = "index",
    up = function(db)
      db:create_index{ name = "t_x", table = "t", columns = { "x" } }
    end,
    down = function(db) db:drop_index{ name = "t_x", table = "t" } end },
  online.change_column_type{ table = "t", column = "x", type = "bigint" },
} }
LUA
)
pgshift plan --offline --format json "$f"
expect_rc "plan of helpers and an online recipe" 0
expect_eq "a helper's statement: the helper's call" \
  "$(json_field "$OUT" '{phases,0,up,statements,0,where}')" "$f:4: "
expect_eq "its down's too" "$(json_field "$OUT" '{phases,0,down,statements,0,where}')" "$f:6: "
wheres=$(psql -X -q -A -t -d "$DB" -v j="$OUT" <<<"SELECT string_agg(DISTINCT s->>'where', '|')
  FROM jsonb_array_elements((:'j')::jsonb -> 'phases') WITH ORDINALITY p(ph, n),
       LATERAL (VALUES (ph -> 'up'), (ph -> 'down')) x(step),
       LATERAL jsonb_array_elements(step -> 'statements') s
 WHERE n > 1 AND step <> 'null'")
expect_eq "every statement of change_column_type's five phases: the recipe's call" "$wheres" "$f:7: "
expect_not_in "no statement names the prelude" "$OUT" "[prelude"

# ---- quoting through libpq: the same text in a run and in an offline plan
f=$(mig quoted <<'LUA'
return migration { name = "quoted", phases = {
  { name = "make",
    up = function(db)
      db:exec("CREATE TABLE " .. db:quote_ident('we"ird t') .. " (v text)")
      local insert = "INSERT INTO " .. db:quote_ident('we"ird t') .. " VALUES ("
        .. db:quote_literal("it's") .. "), (" .. db:quote_literal([[back\slash]]) .. ")"
      log(insert)
      db:exec(insert)
    end,
    down = function(db) db:exec("DROP TABLE " .. db:quote_ident('we"ird t')) end },
} }
LUA
)
insert="INSERT INTO \"we\"\"ird t\" VALUES ('it''s'), ( E'back\\\\slash')"
pgshift --dsn "dbname=$DB" run "$f"
expect_rc "a migration quoting with db:quote_ident and db:quote_literal runs" 0
expect_in "libpq quoted them" "$OUT" "    $insert"
expect_eq "the identifier and both literals arrived as written" \
  "$(q "SELECT string_agg(v, ',' ORDER BY v) FROM \"we\"\"ird t\"")" 'back\slash,it'"'"'s'
pgshift plan --offline "$f"
expect_in "an offline plan quotes the same way" "$OUT" "    $insert;"
f=$(mig zero <<'LUA'
return migration { name = "zero", phases = { { name = "a", up = function(db)
  db:quote_ident("a\0b")
end } } }
LUA
)
pgshift --dsn "dbname=$DB" run "$f"
expect_rc "quoting a zero byte is refused" 1
expect_first_line "naming the call" "$f:2: db:quote_ident: the text to quote contains a zero byte (at byte 2)"

# ---- a migration whose runner died reads as interrupted, in plan as in status
q "CREATE TABLE slept (x int)"
f=$(mig dies <<'LUA'
return migration { name = "dies", phases = {
  { name = "sleep", up = function(db)
      db:exec("INSERT INTO slept VALUES (1)")
      db:exec("SELECT pg_sleep(60)")
    end,
    down = function(db) end },
} }
LUA
)
"$PGSHIFT" --dsn "dbname=$DB" run "$f" >"$WORK/dies.out" 2>&1 &
k=$!
wait_for "the runner is in its phase" 20 "SELECT count(*) = 1 FROM slept"
{ kill -9 "$k"; wait "$k"; } 2>/dev/null
# its session ends within client_connection_check_interval, and the lock with it
wait_for "the dead runner's lock is gone" 20 \
  "SELECT NOT runner_alive FROM shift.status WHERE migration = 'dies'"
expect_eq "the recorded migration still says running" \
  "$(q "SELECT status FROM shift.migration WHERE name = 'dies'")" running
pgshift --dsn "dbname=$DB" status dies
expect_in "status says interrupted" "$OUT" "migration dies: interrupted"
pgshift --dsn "dbname=$DB" plan "$f"
expect_rc "plan of it" 0
expect_in "plan says interrupted too" "$OUT" "state: interrupted"
pgshift --dsn "dbname=$DB" plan --format json "$f"
expect_eq "its phase as recorded" "$(json_field "$OUT" '{phases,0,state}')" running
pgshift --dsn "dbname=$DB" rollback "$f"
expect_rc "and it rolls back" 0

# ---- what the runner reads: views and functions made for reading, never a
# control table.  Every shift.NAME that a statement of runner/*.c or
# scripts/prelude/*.lua reads FROM (or JOINs, UPDATEs, INSERTs INTO) is a
# view or a function of the installed extension, and nothing names
# shift_internal.
src=$(ls "$PGSHIFT_ROOT"/runner/*.c "$PGSHIFT_ROOT"/scripts/prelude/*.lua | grep -v '/prelude_lua\.c$')
read_names=$(cat $src | tr '\n' ' ' | sed 's/"[[:space:]]*"//g' |
  grep -oE '(FROM|JOIN|UPDATE|INTO)[[:space:]]+(ONLY[[:space:]]+)?shift\.[a-z_]+' | awk '{print $NF}' | sort -u)
expect_eq "the sources read several shift objects (the check sees them)" \
  "$(( $(wc -w <<<"$read_names") >= 10 ))" 1
for n in $read_names; do
  kind=$(q "SELECT coalesce((SELECT CASE c.relkind WHEN 'v' THEN 'view' ELSE 'table' END
              FROM pg_class c WHERE c.oid = to_regclass('$n')),
            (SELECT 'function' FROM pg_proc p JOIN pg_namespace s ON s.oid = p.pronamespace
              WHERE s.nspname || '.' || p.proname = '$n' LIMIT 1), 'missing')")
  case $kind in
    view|function) ok "the runner reads $n, a $kind" ;;
    *) not_ok "the runner reads $n, a $kind: read it through a view of sql/runner_api.sql" ;;
  esac
done
expect_eq "no statement names shift_internal" "$(cat $src | grep -c 'shift_internal\.')" 0
