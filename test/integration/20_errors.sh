#!/usr/bin/env bash
# pgshift run on bad input: each case prints a one-line cause plus context and
# exits with the documented code (1 the migration failed, 2 usage, file,
# connection or setup error), and leaves the database as it was.
. "$(dirname "$0")/lib.sh"

new_db errors
q "CREATE TABLE items (id int PRIMARY KEY, n int NOT NULL DEFAULT 0); INSERT INTO items SELECT generate_series(1, 10)"

# ---- missing file
pgshift --dsn "dbname=$DB" run "$WORK/missing.lua"
expect_rc "a missing file is a usage error" 2
expect_first_line "it names the file and the reason" "cannot open migration file \"$WORK/missing.lua\": No such file or directory"

# ---- Lua syntax error: reported with file:line, before any connection
f=$(mig syntax <<'LUA'
return migration {
  name = "syntax"
  phases = {},
}
LUA
)
pgshift --dsn "host=/nonexistent port=1" run "$f"
expect_rc "a Lua syntax error fails the migration, even with no server" 1
expect_first_line "it names file:line" "syntax.lua:3: '}' expected (to close '{' at line 1) near 'phases'"
expect_in "it says nothing was run" "$ERR" "nothing was run"

# ---- an invalid migration shape
f=$(mig shape <<'LUA'
return migration {
  name = "shape",
  phases = {
    { name = "a", up = function(db) end },
    { name = "a",
      up = function(db) end },
  },
}
LUA
)
pgshift --dsn "dbname=$DB" run "$f"
expect_rc "a duplicate phase name is refused" 1
expect_first_line "it names file:line of the phase" "shape.lua:6: migration 'shape': phase 2 'a': duplicate phase name"

# ---- a phase that calls a nonexistent table: SQL error with phase, statement, SQLSTATE
f=$(mig notable <<'LUA'
return migration {
  name = "notable",
  phases = {
    { name = "first", up = function(db) db:exec("UPDATE items SET n = n + 1") end },
    { name = "second", up = function(db)
        db:exec("UPDATE no_such_table SET x = 1")
      end },
    { name = "third", up = function(db) db:exec("UPDATE items SET n = n + 100") end },
  },
}
LUA
)
pgshift --dsn "dbname=$DB" run "$f"
expect_rc "an SQL error fails the migration" 1
expect_first_line "the cause has file:line, message and SQLSTATE" \
  "notable.lua:6: relation \"no_such_table\" does not exist (SQLSTATE 42P01)"
expect_in "the context names the phase" "$ERR" "in the up of phase 'second' (2 of 3) of migration 'notable'"
expect_in "the statement is shown" "$ERR" "statement: UPDATE no_such_table SET x = 1"
expect_in "it says what stays" "$ERR" "phase 'second' has no down: what it committed before failing stays."
expect_eq "phase 1 ran, phase 3 did not" "$(q "SELECT sum(n) FROM items")" 10

# ---- a Lua runtime error and a failed assert inside a phase
f=$(mig runtime <<'LUA'
return migration {
  name = "runtime",
  phases = {
    { name = "oops", up = function(db)
        local row = db:query("SELECT 1 AS x WHERE false")[1]
        return row.x
      end },
  },
}
LUA
)
pgshift --dsn "dbname=$DB" run "$f"
expect_rc "a Lua runtime error in a phase fails the migration" 1
expect_first_line "it names file:line" "runtime.lua:6: attempt to index a nil value (local 'row')"
expect_in "and the phase" "$ERR" "in the up of phase 'oops' (1 of 1)"
expect_not_in "no traceback without --verbose" "$ERR" "stack traceback"
pgshift --verbose --dsn "dbname=$DB" run "$f"
expect_in "--verbose adds the traceback" "$ERR" "stack traceback"

f=$(mig assert <<'LUA'
return migration {
  name = "assert",
  phases = {
    { name = "validate", up = function(db)
        local bad = db:value("SELECT count(*) FROM items WHERE n < 5")
        assert(bad == 0, bad .. " rows differ")
      end },
  },
}
LUA
)
pgshift --dsn "dbname=$DB" run "$f"
expect_rc "a failed assert fails the migration" 1
expect_first_line "assert gets the file:line of the call" "assert.lua:6: 10 rows differ"

# ---- an error inside a backfill's own fragment names the fragment, in the
# user's words, not the statement pg_shift built around it
q "CREATE TABLE copies (id int PRIMARY KEY, n int)" >/dev/null
fragment() {  # fragment NAME CALL FIRST-LINE DETAIL
  local f
  f=$(mig "frag_$1" <<LUA
return migration { name = "frag_$1", phases = { { name = "p", up = function(db)
  $2
end } } }
LUA
)
  pgshift --dsn "dbname=$DB" run "$f"
  expect_rc "$1: the migration fails" 1
  expect_first_line "$1: the error names the fragment and the file's line" "frag_$1.lua:2: $3"
  expect_in "$1: and shows the fragment as written, where the error is" "$ERR" "detail: $4"
  expect_not_in "$1: not the statement built around it" "$ERR" "UPDATE public.items"
  expect_eq "$1: nothing was created" "$(q "SELECT count(*) FROM shift.backfill_progress WHERE name = 'frag_$1:p'")" 0
}
fragment set_function 'db:backfill { table = "items", set = "n = nosuchfunc(n)" }' \
  'set of backfill job "frag_set_function:p": function nosuchfunc(integer) does not exist (SQLSTATE 42883)' \
  'The set given was: n = nosuchfunc(n) (the error is at character 5 of it).'
fragment set_type 'db:backfill { table = "items", set = "n = now()" }' \
  'set of backfill job "frag_set_type:p": column "n" is of type integer but expression is of type timestamp with time zone (SQLSTATE 42804)' \
  'The set given was: n = now() (the error is at character 5 of it).'
fragment where_column 'db:backfill { table = "items", set = "n = n + 1", where = "n > 0 AND nocol" }' \
  'where of backfill job "frag_where_column:p": column "nocol" does not exist (SQLSTATE 42703)' \
  'The where given was: n > 0 AND nocol (the error is at character 11 of it).'
fragment where_operator "db:backfill { table = \"items\", set = \"n = n + 1\", where = \"n = 'é' || 1 >>> 2\" }" \
  'where of backfill job "frag_where_operator:p": operator does not exist' \
  "The where given was: n = 'é' || 1 >>> 2 (the error is at character 14 of it)."
fragment select 'db:backfill { table = "items", into = "copies", select = "id, nosuch(n)" }' \
  'select list of backfill job "frag_select:p": function nosuch(integer) does not exist (SQLSTATE 42883)' \
  'The select list given was: id, nosuch(n) (the error is at character 5 of it).'

# ---- extension missing, or of another version: nothing runs
f=$(mig touch <<'LUA'
return migration { name = "touch", phases = {
  { name = "a", up = function(db) db:exec("UPDATE items SET n = -1") end } } }
LUA
)
DB_MAIN=$DB
new_db noext
q "DROP EXTENSION pg_shift; CREATE TABLE items (n int); INSERT INTO items VALUES (7)"
pgshift --dsn "dbname=$DB" run "$f"
expect_rc "a database without pg_shift is a setup error" 2
expect_first_line "it says so and names the database" "extension pg_shift is not installed in database \"$DB\""
expect_in "with the CREATE EXTENSION hint" "$ERR" "hint: Run CREATE EXTENSION pg_shift;"
expect_eq "nothing ran" "$(q "SELECT n FROM items")" 7

DB=$DB_MAIN
version=$("$PGSHIFT" --version | awk '{print $2}')
q "UPDATE pg_extension SET extversion = '0.0.9' WHERE extname = 'pg_shift'"
pgshift --dsn "dbname=$DB" run "$f"
expect_rc "a wrong extension version is a setup error" 2
expect_first_line "both versions are named" "extension pg_shift in database \"$DB\" is version 0.0.9, but this pgshift is version $version"
expect_in "with the ALTER EXTENSION hint" "$ERR" "ALTER EXTENSION pg_shift UPDATE TO '$version'"
expect_eq "nothing ran" "$(q "SELECT min(n) FROM items")" 1
q "UPDATE pg_extension SET extversion = '$version' WHERE extname = 'pg_shift'"

# ---- no server listening
pgshift --dsn "host=$WORK port=1" run "$f"
expect_rc "no server listening is a connection error" 2
expect_first_line "the cause names the failed connection and the socket" \
  "could not connect to the database: connection to server on socket \"$WORK/.s.PGSQL.1\" failed: No such file or directory"
expect_in "libpq's advice follows as detail" "$ERR" "detail: Is the server running locally"


# ---- the connection dies in the middle of a phase
f=$(mig dies <<'LUA'
return migration { name = "dies", phases = {
  { name = "a", up = function(db)
      db:exec("SELECT pg_terminate_backend(pg_backend_pid())")
    end } } }
LUA
)
pgshift --dsn "dbname=$DB" run "$f"
expect_rc "a connection lost mid-phase fails the migration" 1
# Whether the server's FATAL arrives before the socket closes is a race:
# either cause is right, on one line, with its SQLSTATE.
expect_first_line_re "the cause is one line with the SQLSTATE" \
  "dies.lua:3: (terminating connection due to administrator command \(SQLSTATE 57P01\)|server closed the connection unexpectedly \(SQLSTATE 08006\))$"
expect_eq "the cause is a single line before the context" "$(sed -n 2p <<<"$ERR" | cut -c1-12)" "  in the up "

# ---- an error raised in the runner's own Lua (a helper's, an online recipe's)
# names the migration file's line that called it, never the prelude's; the
# prelude's line is kept for --verbose
q "CREATE TYPE mood AS ENUM ('ok', 'sad');
   CREATE TABLE feelings (id int PRIMARY KEY, mood text DEFAULT 'ok');
   INSERT INTO feelings VALUES (1, 'ok'), (2, 'sad')"
f=$(mig enum_swap <<'LUA'
return migration { name = "enum_swap", phases = {
  { name = "first", up = function(db) db:exec("SELECT 1") end, down = function(db) end },
  online.change_column_type{ table = "feelings", column = "mood", type = "mood",
                             reverse_using = "$new::text" },
} }
LUA
)
pgshift --dsn "dbname=$DB" run "$f"
expect_rc "the swap's text default on the enum column fails in the database" 1
expect_first_line "the swap's SQL error names the recipe's call in the file" \
  "$f:3: column \"mood\" is of type mood but default expression is of type text (SQLSTATE 42804)"
expect_not_in "and no line of the prelude" "$ERR" "[prelude"
expect_in "it is the swap that failed" "$ERR" "in the up of phase 'feelings_mood_type-swap'"
expect_eq "the failure recorded names the file's line too" \
  "$(q "SELECT error_message LIKE '%enum_swap.lua:3: column \"mood\"%' FROM shift.phase WHERE migration = 'enum_swap' AND name = 'feelings_mood_type-swap'")" t
pgshift --dsn "dbname=$DB" --verbose run "$f"
expect_in "--verbose adds the prelude's line to the traceback" "$ERR" "raised in the runner's Lua at [prelude/online.lua]:"
pgshift --dsn "dbname=$DB" rollback "$f"
expect_rc "rolled back" 0

# bad_recipe NAME OPTIONS MESSAGE [run]: online.change_column_type with
# OPTIONS, called at line 3, fails there (as the file loads, or in a phase)
# with MESSAGE, naming no prelude line, in run and (unless "run": only the
# server can tell) in an offline plan.
bad_recipe() {
  local f
  f=$(mig "recipe_$1" <<LUA
return migration { name = "recipe_$1", phases = {
  { name = "first", up = function(db) db:exec("SELECT 1") end, down = function(db) end },
  online.change_column_type{ table = "items", column = "n", type = "bigint", $2 },
} }
LUA
)
  pgshift --dsn "dbname=$DB" run "$f"
  expect_first_line "$1: the run's error names the call's line" "$f:3: $3"
  expect_not_in "$1: and no line of the prelude" "$ERR" "[prelude"
  if [ "${4:-}" != run ]; then
    pgshift plan --offline "$f"
    expect_in "$1: so does the plan's" "$OUT$ERR" "$f:3: $3"
    expect_not_in "$1: the plan names no prelude line" "$OUT$ERR" "[prelude"
  fi
  pgshift --dsn "dbname=$DB" rollback "$f" >/dev/null
}
bad_recipe using 'using = 5' "online.change_column_type: 'using' must be an SQL expression (a string), got a number"
bad_recipe lock 'lock_timeout = "forever"' \
  "online.change_column_type: 'lock_timeout' must be milliseconds or a duration such as '2s'"
# found by a phase, not at the call: still the call's line
bad_recipe backfill 'backfill = { bogus = 1 }' "db:backfill: unknown option 'bogus'"
bad_recipe bad_sql "using = 'no_such_function(\$old)'" \
  'set of sync "items_n_type": function no_such_function(integer) does not exist' run

# recipe_call NAME CALL MESSAGE: a recipe called at line 3 without an option
# it requires, or with one it does not know, fails there as the file loads
recipe_call() {
  local f
  f=$(mig "call_$1" <<LUA
return migration { name = "call_$1", phases = {
  { name = "first", up = function(db) db:exec("SELECT 1") end, down = function(db) end },
  $2,
} }
LUA
)
  pgshift plan --offline "$f"
  expect_in "$1: the plan's error names the call's line" "$OUT$ERR" "$f:3: $3"
  expect_not_in "$1: and no line of the prelude" "$OUT$ERR" "[prelude"
}
recipe_call alter_column 'online.alter_column{ table = "items" }' "online.alter_column: 'column' is required"
recipe_call add_column 'online.add_column{ table = "items", column = "c", type = "int" }' \
  "online.add_column: 'up' is required"
recipe_call drop_column 'online.drop_column{ table = "items", column = "n", bogus = 1 }' \
  "online.drop_column: unknown option 'bogus'"
recipe_call change_type 'online.change_column_type{ table = "items", column = "n" }' \
  "online.change_column_type: 'type' is required"

# ---- bad command lines
pgshift
expect_rc "no command" 2
expect_in "usage hint" "$ERR" "Try \"pgshift --help\""
pgshift frobnicate
expect_rc "unknown command" 2
expect_first_line "names it" "unknown command \"frobnicate\""
pgshift --frob run "$f"
expect_rc "unknown option" 2
pgshift run "$f" extra
expect_rc "an extra argument" 2
pgshift run
expect_rc "run without FILE" 2
pgshift --help
expect_rc "--help" 0
expect_in "--help lists run" "$OUT" "run FILE"
