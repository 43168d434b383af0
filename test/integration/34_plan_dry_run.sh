#!/usr/bin/env bash
# What a plan's dry run shows where a real run would have a name or a value:
# a backfill's default name is MIGRATION:PHASE (then :2, ...), as db:backfill
# gives at run time, never "plan:plan"; db:value answers a placeholder "?"
# that concatenates, so the README's own check
# assert(bad == 0, bad .. " rows differ") does not break the plan: the plan
# says the check is left to the real run, and goes on.
. "$(dirname "$0")/lib.sh"

new_db plandry
q "CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL, email_lower text)" >/dev/null

# ---- a backfill's default name
f=$(mig names <<'LUA'
return migration { name = "names", phases = {
  { name = "fill", up = function(db)
      db:backfill { table = "users", set = "email_lower = lower(email)" }
      db:backfill { table = "users", set = "email_lower = upper(email)" }
    end },
  { name = "named", up = function(db)
      db:backfill { name = "mine", table = "users", set = "email_lower = email" }
    end },
} }
LUA
)
for mode in offline connected; do
  if [ $mode = offline ]; then pgshift plan --offline "$f"; else pgshift --dsn "dbname=$DB" plan "$f"; fi
  expect_rc "plan ($mode)" 0
  expect_not_in "$mode: no backfill is named plan:plan" "$OUT" "plan:plan"
  expect_in "$mode: the first backfill of a phase is MIGRATION:PHASE" "$OUT" 'CALL shift.backfill_run($1);  -- $1 = "names:fill"'
  expect_in "$mode: the second is MIGRATION:PHASE:2" "$OUT" 'CALL shift.backfill_run($1);  -- $1 = "names:fill:2"'
  expect_in "$mode: a name given is kept" "$OUT" 'CALL shift.backfill_run($1);  -- $1 = "mine"'
  expect_in "$mode: the job is created for the migration and phase, as a run does" "$OUT" \
    'migration => $4, phase => $5);  -- $1 = "names:fill", $2 = "users", $3 = "email_lower = lower(email)", $4 = "names", $5 = "fill"'
done

# the names a run gives are the ones the plan showed
q "INSERT INTO users VALUES (1, 'A@B.C')" >/dev/null
pgshift --dsn "dbname=$DB" run "$f"
expect_rc "run" 0
expect_eq "run names the jobs as the plan did" \
  "$(q "SELECT string_agg(name, ' ' ORDER BY name) FROM shift.backfill_progress")" \
  "mine names:fill names:fill:2"

# ---- the README's verify idiom, taken from the README itself
idiom=$(grep -F 'rows differ' README.md | head -n1 | sed 's/^ *//')
expect_eq "the README still has the idiom" "$idiom" 'assert(bad == 0, bad .. " rows differ")'
f=$(mig idiom <<LUA
return migration { name = "idiom", phases = {
  { name = "validate", up = function(db)
      local bad = db:value "SELECT count(*) FROM users WHERE email_lower IS DISTINCT FROM lower(email)"
      $idiom
      db:exec "ANALYZE users"
    end,
    verify = function(db)
      local bad = db:value "SELECT count(*) FROM users WHERE email_lower IS NULL"
      $idiom
    end },
} }
LUA
)
for mode in offline connected; do
  if [ $mode = offline ]; then pgshift plan --offline "$f"; else pgshift --dsn "dbname=$DB" plan "$f"; fi
  expect_rc "plan with the README's idiom ($mode)" 0
  expect_not_in "$mode: no nil concatenation" "$OUT" "concatenate"
  expect_not_in "$mode: the dry run does not stop" "$OUT" "the dry run stopped here"
  expect_in "$mode: the check is shown as left to the real run" "$OUT" \
    "-- not checked in a dry run: $f:4: assert: ? rows differ (it depends on a value only the database has)"
  expect_in "$mode: and the statements after it are shown" "$OUT" "ANALYZE users;"
done
pgshift --dsn "dbname=$DB" plan --format json "$f"
expect_eq "json: the check is listed with the step" \
  "$(json_field "$OUT" '{phases,0,up,unchecked,0,message}')" "? rows differ"

# ---- the placeholder does not lie: what would need its value stops the dry run
f=$(mig decide <<'LUA'
return migration { name = "decide", phases = {
  { name = "a", up = function(db)
      local n = db:value "SELECT count(*) FROM users"
      if n > 0 then db:exec "DELETE FROM users" end
    end },
  { name = "b", up = function(db)
      local n = db:value "SELECT count(*) FROM users"
      db:exec("SELECT " .. tostring(n + 1))
      assert(n, "a placeholder is a value")
      assert(n == 2, "n is " .. n)
    end },
  { name = "c", up = function(db)
      assert(1 == 2, "no value was asked for")
    end },
} }
LUA
)
pgshift plan --offline "$f"
expect_rc "plan of code that decides on a value" 0
expect_in "a comparison stops the dry run, saying why" "$OUT" \
  "-- the dry run stopped here: $f:4: the dry run has no value for this comparison: db:value answers ? in a dry run; a real run decides"
expect_not_in "and does not take a branch" "$OUT" "DELETE FROM users"
expect_in "arithmetic on it is unknown too" "$OUT" "SELECT ?;"
expect_in "a placeholder is true, as a value is" "$OUT" "[2/3] b"
expect_not_in "a placeholder passes assert" "$OUT" "a placeholder is a value"
expect_in "a failed assert after a placeholder is left to the real run" "$OUT" \
  "-- not checked in a dry run: $f:10: assert: n is ? (it depends on a value only the database has)"
expect_in "an assert before any value was asked for fails the dry run as before" "$OUT" \
  "-- the dry run stopped here: $f:13: no value was asked for"


# ---- only a check that involves a placeholder is left to the real run: a
# failed assert or error on plain values fails the dry run at its line, even
# after a placeholder was given (and a comparison of two placeholders needs
# their values, as n > 0 does)
f=$(mig plain <<'LUA'
return migration { name = "plain", phases = {
  { name = "a", up = function(db)
      local n = db:value('select 1')
      assert(n == 0, n .. ' rows differ')
      assert(n == 0, "there are " .. n + 1 .. " rows, not 0")
      if n then error("refs: " .. n) end
      assert(false, n)
      assert(1 == 2, 'plain')
      db:exec "SELECT 'after plain'"
    end },
  { name = "b", up = function(db)
      local n = db:value('select 1')
      db:exec("SELECT 1 WHERE $1 = 0", n)
      if n then error("a plain error") end
      db:exec "SELECT 'after a plain error'"
    end },
  { name = "c", up = function(db)
      local a, b = db:value('select 1'), db:value('select 2')
      if a ~= b then error("they differ") end
      db:exec "SELECT 'after two placeholders'"
    end },
} }
LUA
)
for mode in offline connected; do
  if [ $mode = offline ]; then pgshift plan --offline "$f"; else pgshift --dsn "dbname=$DB" plan "$f"; fi
  expect_rc "plan of plain checks after a placeholder ($mode)" 0
  expect_in "$mode: a check whose message holds the placeholder is not checked" "$OUT" \
    "-- not checked in a dry run: $f:4: assert: ? rows differ (it depends on a value only the database has)"
  expect_in "$mode: also when the placeholder is inside the message" "$OUT" \
    "-- not checked in a dry run: $f:5: assert: there are ? rows, not 0"
  expect_in "$mode: an error built from it too" "$OUT" "-- not checked in a dry run: $f:6: error: refs: ?"
  expect_in "$mode: and a placeholder as the message" "$OUT" "-- not checked in a dry run: $f:7: assert: ?"
  expect_in "$mode: an assert on plain values fails the dry run at its line" "$OUT" \
    "-- the dry run stopped here: $f:8: plain"
  expect_not_in "$mode: and nothing after it runs" "$OUT" "after plain"
  expect_in "$mode: an error with a plain message fails it too" "$OUT" \
    "-- the dry run stopped here: $f:14: a plain error"
  expect_not_in "$mode: nothing after the error runs" "$OUT" "after a plain error"
  expect_in "$mode: comparing two placeholders stops the dry run, saying why" "$OUT" \
    "-- the dry run stopped here: $f:19: the dry run has no value for this comparison"
  expect_not_in "$mode: and takes no branch" "$OUT" "they differ"
done
