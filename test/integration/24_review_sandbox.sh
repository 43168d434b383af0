#!/usr/bin/env bash
# Reviewing a migration file must be safe: `plan` (offline or connected) and
# `lint` run the file in a sandbox (no os, io, debug, package, require,
# binary chunks), and a file that loops or hoards memory is stopped with a
# clear error.  `run` trusts the file, like make trusts a Makefile.
. "$(dirname "$0")/lib.sh"

new_db sandbox
q "CREATE TABLE t (id int PRIMARY KEY, c text)"
marker=$WORK/escaped

# ---- a file whose top level runs a command and writes a file
f=$(mig toplevel <<LUA
os.execute("id > $marker")
return migration { name = "toplevel", phases = { { name = "a", up = function(db) end } } }
LUA
)
pgshift plan --offline "$f"
expect_rc "plan --offline of a file that runs a command fails" 1
expect_first_line "saying the sandbox has no os.execute" \
  "$f:1: os.execute is not available in pgshift plan and lint: they review the file in a sandbox"
expect_eq "and the command did not run" "$(test -e "$marker" && echo ran || echo absent)" absent
pgshift --dsn "dbname=$DB" plan "$f"
expect_rc "connected plan: the same" 1
expect_eq "the command did not run" "$(test -e "$marker" && echo ran || echo absent)" absent
pgshift --dsn "dbname=$DB" lint "$f"
expect_rc "lint: the same" 1
expect_in "lint names the call" "$ERR" "os.execute is not available in pgshift plan and lint"
expect_eq "the command did not run" "$(test -e "$marker" && echo ran || echo absent)" absent

# ---- the harm in a phase function: the dry run stops there, the plan says so
f=$(mig inphase <<LUA
return migration { name = "inphase", phases = {
  { name = "a", up = function(db)
      db:exec("UPDATE t SET c = 'x'")
      local f = io.open("$marker", "w"); f:write("x"); f:close()
      require("os").execute("id > $marker")
    end,
    down = function(db) db:exec("UPDATE t SET c = NULL") end } } }
LUA
)
pgshift plan --offline "$f"
expect_rc "plan of a phase that writes a file still prints the plan" 0
expect_in "with the statement before the write" "$OUT" "UPDATE t SET c = 'x';"
expect_in "and where the dry run stopped" "$OUT" \
  "-- the dry run stopped here: $f:4: io.open is not available in pgshift plan and lint"
expect_eq "no file was written" "$(test -e "$marker" && echo written || echo absent)" absent
pgshift --dsn "dbname=$DB" lint "$f"
expect_rc "lint of it" 0
expect_in "says what was not linted" "$OUT" "not linted past this point: the dry run stopped: $f:4: io.open is not available"
expect_eq "no file was written" "$(test -e "$marker" && echo written || echo absent)" absent

# `run` trusts the file: all of Lua, as the README says
pgshift --dsn "dbname=$DB" run "$f"
expect_rc "run of the same file" 0
expect_eq "run gave the file io and os" "$(test -s "$marker" && echo written || echo absent)" written
rm -f "$marker"

# ---- what reaches past the environment: the strings' metatable, binary chunks
f=$(mig reach <<'LUA'
local found = {}
found[#found + 1] = tostring(getmetatable(""))
found[#found + 1] = tostring(("").dump)
found[#found + 1] = tostring(load("\27Lua", "x", "b"))
found[#found + 1] = tostring(os.getenv("HOME"))
return migration { name = "reach", description = table.concat(found, " "),
  phases = { { name = "a", up = function(db) end } } }
LUA
)
pgshift plan --offline "$f"
expect_rc "plan of a file that looks for a way out" 0
expect_in "finds none (metatable, string.dump, binary load, environment)" "$OUT" "  false nil nil nil"

# ---- an endless loop and a memory bomb end with a clear error
f=$(mig loop <<'LUA'
local n = 0
while true do pcall(function() n = n + 1 end) end
LUA
)
# timeout: a guard against looping for ever, far above the seconds it takes
timeout 120 "$PGSHIFT" plan --offline "$f" >"$WORK/stdout" 2>"$WORK/stderr"
RC=$? OUT=$(cat "$WORK/stdout") ERR=$(cat "$WORK/stderr")
expect_rc "plan of an endless loop ends" 1
expect_first_line "saying where and why" "$f:2: the migration file's code ran more than 100000000 Lua instructions (an endless loop?)"
expect_in "and that nothing was changed" "$ERR" "nothing was changed"

f=$(mig loopphase <<'LUA'
return migration { name = "loopphase", phases = { { name = "a", up = function(db)
  while true do end
end } } }
LUA
)
timeout 120 "$PGSHIFT" --dsn "dbname=$DB" lint "$f" >"$WORK/stdout" 2>"$WORK/stderr"
RC=$? OUT=$(cat "$WORK/stdout") ERR=$(cat "$WORK/stderr")
expect_rc "lint of a phase that loops ends" 1
expect_first_line "saying so" "$f:2: the migration file's code ran more than 100000000 Lua instructions"

f=$(mig bomb <<'LUA'
local t = {}
while true do pcall(function() t[#t + 1] = ("x"):rep(1000000) .. #t end) end
LUA
)
# the old code ate memory until the system stopped it: 1 GiB and 120 s at most here
(ulimit -v 1048576; exec timeout 120 "$PGSHIFT" plan --offline "$f") >"$WORK/stdout" 2>"$WORK/stderr"
RC=$? OUT=$(cat "$WORK/stdout") ERR=$(cat "$WORK/stderr")
expect_rc "plan of a memory bomb ends" 1
expect_first_line "at the sandbox's limit" "the migration file's code used more than 256 MiB of memory"

# ---- what the examples use is all in the sandbox
for ex in "$PGSHIFT_ROOT"/scripts/examples/*.lua; do
  pgshift plan --offline --format markdown "$ex"
  expect_rc "the sandbox plans $(basename "$ex")" 0
done
