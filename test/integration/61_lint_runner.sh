#!/usr/bin/env bash
# pgshift lint and the lint in pgshift plan: a risky migration fails with
# its findings and phases, a safe one (db:ddl, CONCURRENTLY, NOT VALID +
# VALIDATE + SET NOT NULL across phases) passes, --fail-on moves the bar,
# --json parses, plan shows findings next to statements, and without the
# extension or a server lint is a setup error.
. "$(dirname "$0")/lib.sh"

new_db lint_runner
q "CREATE TABLE accounts (id bigint PRIMARY KEY, email text, plan text, balance int);
   INSERT INTO accounts SELECT g, 'u' || g, 'free', g FROM generate_series(1, 100) g" >/dev/null
catalog() { q "SELECT md5(string_agg(attrelid::regclass || '.' || attname || ':' || attnotnull, ',' ORDER BY attrelid, attnum))
               FROM pg_attribute WHERE attrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'public'::regnamespace) AND attnum > 0"; }
before=$(catalog)

risky=$(mig risky <<'LUA'
return migration { name = "risky", phases = {
  { name = "expand",
    up = function(db)
      db:exec("CREATE INDEX accounts_email ON accounts (email)")
      db:ddl("ALTER TABLE accounts ADD COLUMN created timestamptz DEFAULT clock_timestamp()")
    end,
    down = function(db) db:ddl("ALTER TABLE accounts DROP COLUMN created, DROP COLUMN email") end },
  { name = "tighten",
    up = function(db) db:ddl("ALTER TABLE accounts ALTER COLUMN plan SET NOT NULL") end },
} }
LUA
)
pgshift --dsn "dbname=$DB" lint "$risky"
expect_rc "a migration with risky phases fails lint" 1
expect_in "naming file, phase, step and statement with the finding" "$OUT" \
  "$risky: phase 'expand' (up), statement 1: HIGH index-not-concurrent: CREATE INDEX accounts_email blocks writes to accounts"
expect_in "with the Lua line and the SQL" "$OUT" "    $risky:4: CREATE INDEX accounts_email ON accounts (email)"
expect_in "and the safe alternative" "$OUT" "    hint: Use CREATE INDEX CONCURRENTLY"
expect_in "a plain db:exec has no lock_timeout" "$OUT" \
  "phase 'expand' (up), statement 1: MEDIUM missing-lock-timeout"
expect_in "the volatile default is found from pg_proc" "$OUT" \
  "phase 'expand' (up), statement 2: CRITICAL add-column-rewrite: ADD COLUMN created with a volatile default (clock_timestamp)"
expect_not_in "db:ddl's lock_timeout counts" "$OUT" "statement 2: HIGH missing-lock-timeout"
expect_in "SET NOT NULL without a validated CHECK" "$OUT" "phase 'tighten' (up), statement 1: HIGH set-not-null"
expect_in "the down is linted too" "$OUT" "phase 'expand' (down), statement 1: MEDIUM drop-column: DROP COLUMN accounts.email"
expect_in "with a summary" "$OUT" "lint of migration risky: 5 findings: 1 CRITICAL, 2 HIGH, 2 MEDIUM; 3 at or above HIGH"
expect_eq "lint changed nothing" "$(catalog)" "$before"

safe=$(mig safe <<'LUA'
return migration { name = "safe", phases = {
  { name = "expand",
    up = function(db)
      db:ddl("CREATE TABLE plans (id int PRIMARY KEY, name text NOT NULL)")
      db:exec("CREATE INDEX plans_name ON plans (name)")     -- new, empty table
      db:exec("CREATE INDEX CONCURRENTLY accounts_email ON accounts (email)")
      db:ddl("ALTER TABLE accounts ADD COLUMN created timestamptz DEFAULT now()")
      db:ddl("ALTER TABLE accounts ADD CONSTRAINT plan_nn CHECK (plan IS NOT NULL) NOT VALID")
    end,
    down = function(db)
      db:exec("DROP INDEX CONCURRENTLY IF EXISTS accounts_email")
      db:ddl("ALTER TABLE accounts DROP CONSTRAINT IF EXISTS plan_nn")
      db:ddl("DROP TABLE plans")
    end },
  { name = "validate",
    up = function(db) db:ddl("ALTER TABLE accounts VALIDATE CONSTRAINT plan_nn") end,
    down = function(db) end,
    verify = function(db) assert(db:value("SELECT count(*) FROM accounts WHERE plan IS NULL") == 0) end },
  { name = "tighten",
    up = function(db)
      db:exec("SET lock_timeout = '1s'; ALTER TABLE accounts ALTER COLUMN plan SET NOT NULL")
    end,
    down = function(db) db:ddl("ALTER TABLE accounts ALTER COLUMN plan DROP NOT NULL") end },
} }
LUA
)
pgshift --dsn "dbname=$DB" lint "$safe"
expect_rc "a migration written the safe way passes" 0
expect_in "and says so" "$OUT" "lint of migration safe: no findings; 0 at or above HIGH"

# ---- --fail-on
medium=$(mig medium <<'LUA'
return migration { name = "medium", phases = {
  { name = "contract", up = function(db) db:ddl("ALTER TABLE accounts DROP COLUMN balance") end } } }
LUA
)
pgshift --dsn "dbname=$DB" lint "$medium"
expect_rc "a MEDIUM finding passes at the default --fail-on high" 0
expect_in "but is shown" "$OUT" "phase 'contract' (up), statement 1: MEDIUM drop-column"
pgshift --dsn "dbname=$DB" lint --fail-on medium "$medium"
expect_rc "--fail-on medium fails on it" 1
pgshift --dsn "dbname=$DB" lint --fail-on Low "$medium"
expect_rc "--fail-on is case-insensitive" 1
pgshift --dsn "dbname=$DB" lint --fail-on CRITICAL "$risky"
expect_rc "--fail-on critical fails on the CRITICAL finding" 1
pgshift --dsn "dbname=$DB" lint --fail-on critical "$medium"
expect_rc "--fail-on critical passes HIGH and below" 0
pgshift --dsn "dbname=$DB" lint --fail-on urgent "$medium"
expect_rc "an unknown level is a usage error" 2
expect_first_line "naming the levels" '--fail-on: "urgent" is not critical, high, medium or low'
pgshift --dsn "dbname=$DB" plan --fail-on high "$medium"
expect_rc "plan does not take --fail-on" 2

# ---- --json
pgshift --dsn "dbname=$DB" lint --json "$risky"
expect_rc "--json exits the same" 1
expect_eq "json: failed" "$(json_field "$OUT" '{failed}')" true
expect_eq "json: the first finding's rule" "$(json_field "$OUT" '{findings,0,rule}')" index-not-concurrent
expect_eq "json: its phase and step" "$(json_field "$OUT" '{findings,0,phase}') $(json_field "$OUT" '{findings,0,step}')" "expand up"
expect_eq "json: its Lua line" "$(json_field "$OUT" '{findings,0,where}')" "$risky:4"
expect_eq "json: its lock" "$(json_field "$OUT" '{findings,0,lock}')" SHARE
expect_eq "json: counts" "$(json_field "$OUT" '{counts,CRITICAL}')" 1
expect_eq "json: one document" "$(wc -l <<<"$OUT")" 1

# ---- the shapes of runner SQL: transactions, multi-statement strings, dry runs that stop
shapes=$(mig shapes <<'LUA'
return migration { name = "shapes", phases = {
  { name = "one",
    up = function(db)
      db:transaction(function(tx) tx:exec("CREATE INDEX CONCURRENTLY a_plan ON accounts (plan)") end)
      db:exec("SELECT 1;\nCREATE INDEX CONCURRENTLY a_plan2 ON accounts (plan)")
      db:exec("SELECT 1; SELEC 2")
      local n = db:value("SELECT count(*) FROM accounts")
      assert(n > 0)                  -- the dry run has no value: it stops here
      db:exec("TRUNCATE accounts")
    end } } }
LUA
)
pgshift --dsn "dbname=$DB" lint "$shapes"
expect_rc "shapes fail lint" 1
expect_in "CONCURRENTLY inside db:transaction" "$OUT" "phase 'one' (up), statement 2: HIGH not-in-transaction"
expect_in "CONCURRENTLY in a multi-statement string (one implicit transaction)" "$OUT" \
  "phase 'one' (up), statement 4: HIGH not-in-transaction"
expect_in "at its line in the string" "$OUT" "    $shapes:5: SELECT 1; ...  (line 2)"
expect_in "SQL that does not parse is a finding" "$OUT" "statement 5: CRITICAL syntax-error: does not parse: syntax error at or near \"SELEC\" (line 1, column 11)"
expect_in "a dry run that stops says what was not linted" "$OUT" "phase 'one' (up): not linted past this point: the dry run stopped: $shapes:8:"
expect_not_in "and nothing after it is linted" "$OUT" "truncate"

# ---- plan shows the findings when connected
pgshift --dsn "dbname=$DB" plan "$risky"
expect_rc "plan (text) with lint" 0
expect_in "the summary" "$OUT" "  lint: 5 findings: 1 CRITICAL, 2 HIGH, 2 MEDIUM"
expect_in "each finding under its statement" "$OUT" "    CREATE INDEX accounts_email ON accounts (email);
    -- lint HIGH index-not-concurrent: CREATE INDEX accounts_email blocks writes to accounts until the index is built"
pgshift --dsn "dbname=$DB" plan --format markdown "$risky"
expect_rc "plan (markdown) with lint" 0
expect_in "markdown: the summary row" "$OUT" "| Lint | 5 findings: 1 CRITICAL, 2 HIGH, 2 MEDIUM |"
expect_in "markdown: findings in the steps" "$OUT" "-- lint HIGH set-not-null: SET NOT NULL on accounts.plan"
pgshift --dsn "dbname=$DB" plan --format json "$risky"
expect_rc "plan (json) with lint" 0
expect_eq "json: findings on the statement" "$(json_field "$OUT" '{phases,0,up,statements,0,findings,0,rule}')" index-not-concurrent
expect_eq "json: the lint summary" "$(json_field "$OUT" '{lint,findings}')" 5
pgshift --dsn "host=/nonexistent port=1" plan --offline "$risky"
expect_rc "plan --offline" 0
expect_in "says lint was skipped" "$OUT" "  lint: skipped (offline)"
expect_not_in "and shows no findings" "$OUT" "-- lint"

# ---- setup errors: exit 2
createdb it_lint_noext && T_DBS+=(it_lint_noext)
pgshift --dsn "dbname=it_lint_noext" lint "$risky"
expect_rc "no extension in the database" 2
expect_in "says how to install it" "$ERR" "CREATE EXTENSION pg_shift"
expect_in "and why lint needs it" "$ERR" "lint needs a server with pg_shift"
pgshift --dsn "host=/nonexistent port=1" lint "$risky"
expect_rc "no server" 2
pgshift --dsn "dbname=$DB" lint
expect_rc "no file" 2
pgshift --dsn "dbname=$DB" lint --offline "$risky"
expect_rc "lint does not take --offline" 2

# ---- the safe migration runs; afterwards the catalog proves what lint assumed
pgshift --dsn "dbname=$DB" run "$safe"
expect_rc "the safe migration runs" 0
expect_eq "SET NOT NULL took effect" "$(q "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'accounts'::regclass AND attname = 'plan'")" t
pgshift --dsn "dbname=$DB" lint "$safe"
expect_rc "linting a migration that already ran works the same" 0
pgshift --dsn "dbname=$DB" lint "$risky"
expect_not_in "SET NOT NULL of a column that is NOT NULL now is fine" "$OUT" "set-not-null"

# ---- a down that drops the column its own up added is the way back
back=$(mig way_back <<'LUA'
return migration { name = "way_back", phases = {
  { name = "expand",
    up = function(db)
      db:ddl('ALTER TABLE accounts ADD COLUMN nick text')
      db:add_column { table = "accounts", column = "Score", type = "int" }
    end,
    down = function(db)
      db:ddl('ALTER TABLE accounts DROP COLUMN nick')
      db:drop_column { table = "accounts", column = "Score" }
    end },
  { name = "more",
    up = function(db) db:ddl("ALTER TABLE accounts ADD COLUMN later text") end,
    down = function(db)
      db:ddl("ALTER TABLE accounts DROP COLUMN later")
      db:ddl("ALTER TABLE accounts DROP COLUMN nick")    -- the first phase's
      db:ddl("ALTER TABLE accounts DROP COLUMN email")   -- there before
    end },
} }
LUA
)
pgshift --dsn "dbname=$DB" lint --fail-on MEDIUM "$back"
expect_not_in "the first phase's down drops what its up added: no finding" "$OUT" "phase 'expand' (down)"
expect_not_in "nor for the second phase's own column" "$OUT" "DROP COLUMN accounts.later"
expect_in "a down dropping an earlier phase's column is flagged" "$OUT" \
  "phase 'more' (down), statement 2: MEDIUM drop-column: DROP COLUMN accounts.nick"
expect_in "a down dropping a column that was there before is flagged" "$OUT" \
  "phase 'more' (down), statement 3: MEDIUM drop-column: DROP COLUMN accounts.email"
expect_rc "and fails at MEDIUM" 1
