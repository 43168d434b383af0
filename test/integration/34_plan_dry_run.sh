#!/usr/bin/env bash
# What a plan's dry run shows where a real run would have a name: a
# backfill's default name is MIGRATION:PHASE (then :2, ...), as db:backfill
# gives at run time, never "plan:plan".
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
