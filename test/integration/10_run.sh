#!/usr/bin/env bash
# pgshift run: the example migration end to end, the db API against a real
# server (type conversions, parameters, multi-statement strings), output modes
# and connection settings.
. "$(dirname "$0")/lib.sh"

# ---- the shipped example, end to end
new_db run
q "CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL);
   INSERT INTO users SELECT g, 'User' || g || '@Example.COM' FROM generate_series(1, 12345) g"
pgshift --dsn "dbname=$DB" run "$PGSHIFT_ROOT/scripts/examples/users_email_lower.lua"
expect_rc "example users_email_lower runs" 0
expect_in "each phase is reported" "$OUT" "--> [6/6] contract"
expect_in "the backfill logs its count" "$OUT" "backfill users_email_lower:backfill: 12345 rows written, 12345 keys walked"
expect_in "with the rows it wrote" "$OUT" "12345 rows"
expect_in "a summary line closes the run" "$OUT" "==> run of migration users_email_lower finished after"
expect_eq "every row was filled" "$(q "SELECT count(*) FROM users WHERE email_lower = lower(email)")" 12345
expect_eq "the index is valid" "$(q "SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_email_lower_idx'::regclass")" t

# ---- values from the server convert by type; parameters go in as text
f=$(mig types <<'LUA'
return migration {
  name = "types",
  phases = {
    { name = "check", up = function(db)
      local function is(v, want, what)
        if v ~= want or math.type(v) ~= math.type(want) then
          error(string.format("%s: got %s (%s), want %s (%s)", what, tostring(v),
            math.type(v) or type(v), tostring(want), math.type(want) or type(want)), 2)
        end
      end
      is(db:value("SELECT 32767::int2"), 32767, "int2")
      is(db:value("SELECT (-2147483648)::int4"), -2147483648, "int4")
      is(db:value("SELECT 9223372036854775807::int8"), math.maxinteger, "int8")
      is(db:value("SELECT 1.5::float8"), 1.5, "float8")
      is(db:value("SELECT 2::float4"), 2.0, "float4 stays a float")
      local nan = db:value("SELECT 'NaN'::float8"); assert(nan ~= nan, "NaN")
      is(db:value("SELECT 'Infinity'::float8"), math.huge, "Infinity")
      is(db:value("SELECT true"), true, "bool true")
      is(db:value("SELECT false"), false, "bool false")
      is(db:value("SELECT NULL::int"), nil, "NULL")
      is(db:value("SELECT 1.10::numeric"), "1.10", "numeric keeps its scale")
      is(db:value("SELECT 12345678901234567890.123456789::numeric"), "12345678901234567890.123456789", "big numeric")
      is(db:value("SELECT ''::text"), "", "empty string is not NULL")
      is(db:value("SELECT 'ümlaut ✓'::text"), "ümlaut ✓", "UTF-8 text")
      is(db:value("SELECT 1 WHERE false"), nil, "no row")
      -- parameters
      is(db:value("SELECT $1::int8 + 1", 41), 42, "integer parameter")
      is(db:value("SELECT $1::float8", 0.1), 0.1, "float parameter round-trips")
      is(db:value("SELECT $1::boolean", false), false, "boolean parameter")
      is(db:value("SELECT $1::text IS NULL", nil), true, "nil parameter is NULL")
      is(db:value("SELECT $1::text", "it's \"quoted\"; DROP TABLE x"), "it's \"quoted\"; DROP TABLE x", "hostile string parameter")
      is(db:value("SELECT $1 || $2 || $3", "a", "b", "c"), "abc", "three parameters")
      -- rows
      local rows = db:query("SELECT g AS n, g % 2 = 0 AS even, CASE WHEN g = 2 THEN NULL ELSE 'x' END AS s FROM generate_series(1, 3) g ORDER BY g")
      is(#rows, 3, "row count")
      is(rows[2].n, 2, "row 2 n"); is(rows[2].even, true, "row 2 even"); is(rows[2].s, nil, "row 2 NULL")
      is(#db:query("SELECT 1 WHERE false"), 0, "empty result")
      -- exec returns affected rows; several statements in one string
      is(db:exec("CREATE TABLE t (a int); INSERT INTO t SELECT generate_series(1, 7)"), 7, "multi-statement exec")
      is(db:exec("UPDATE t SET a = a + 1 WHERE a > $1", 4), 3, "rows affected")
      is(db:exec("DROP TABLE t"), 0, "DDL affects no rows")
      log("all", 33, "checks passed")
    end },
  },
}
LUA
)
new_db types
pgshift --dsn "dbname=$DB" run "$f"
expect_rc "values convert by type and parameters round-trip" 0
expect_in "log() prints its arguments" "$OUT" "all 33 checks passed"

# ---- the libpq environment is used without --dsn; --quiet prints nothing
f=$(mig envtest <<'LUA'
return migration { name = "envtest", phases = {
  { name = "a", up = function(db) db:exec("CREATE TABLE marker (db text DEFAULT current_database())") end } } }
LUA
)
new_db env
PGDATABASE=$DB pgshift --quiet run "$f"
expect_rc "PGDATABASE selects the database" 0
expect_eq "--quiet prints nothing on success" "$OUT$ERR" ""
expect_eq "the table was made in that database" "$(q "SELECT to_regclass('marker') IS NOT NULL")" t

# ---- a quoted, non-ASCII identifier passes through untouched
f=$(mig ident <<'LUA'
return migration { name = "ident", phases = {
  { name = "make", up = function(db)
      db:exec([[CREATE TABLE "We""ird Täble" ("Col" int)]])
      db:exec([[INSERT INTO "We""ird Täble" VALUES ($1)]], 5)
      assert(db:value([[SELECT "Col" FROM "We""ird Täble"]]) == 5)
    end } } }
LUA
)
new_db ident
pgshift --dsn "dbname=$DB" run "$f"
expect_rc "quoted non-ASCII identifiers work" 0
expect_eq "the oddly named table holds the row" "$(q "SELECT \"Col\" FROM \"We\"\"ird Täble\"")" 5
