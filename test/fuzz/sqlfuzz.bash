# test/fuzz/sqlfuzz.bash: sourced (after test/integration/lib.sh) by the two
# fuzzers of the SQL pg_shift reads from users, which share one generator,
# test/fuzz/sqlfuzz.c, and differ only in their budget:
#   test/integration/62_fuzz.sh   bounded, fixed seed, inside `make test`
#   test/fuzz/sql_fragments.sh    long, FUZZ_SEED and FUZZ_MINUTES (`make fuzz`)
# (not named *.sh: `make fuzz` runs every test/fuzz/*.sh)

FUZZ_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# the corpus: real SQL from the regress scripts, the example migrations, the
# README and the reference in doc/, and the DDL corpus of 60_lint.sh's
# in-server fuzz of lint's rules
FUZZ_CORPUS=("$PGSHIFT_ROOT"/test/sql/*.sql "$PGSHIFT_ROOT"/scripts/examples/*.lua "$PGSHIFT_ROOT/README.md"
             "$PGSHIFT_ROOT"/doc/*.md "$PGSHIFT_ROOT/test/integration/60_lint.sh")

# fuzz_build: compiles sqlfuzz into $WORK/sqlfuzz; a TAP line either way.
fuzz_build() {
  local pgc=${PG_CONFIG:-$PGSHIFT_PGBIN/pg_config} out
  if out=$(cc -O2 -Wall -Wextra -Werror -Wno-unused-parameter -I"$("$pgc" --includedir)" \
             -o "$WORK/sqlfuzz" "$FUZZ_DIR/sqlfuzz.c" "$FUZZ_DIR/sqlfuzz_input.c" -L"$("$pgc" --libdir)" -lpq 2>&1); then
    ok "sqlfuzz builds"
  else
    not_ok "sqlfuzz does not build" "$out"
    return 1
  fi
  # failing inputs too long to print are written here, which outlives the test
  FUZZ_FAILURES=${FUZZ_FAILURES:-$(mktemp -d /tmp/pgshift-fuzz-failures.XXXXXX)}
  mkdir -p "$FUZZ_FAILURES"
  chmod 755 "$FUZZ_FAILURES"
  [ "$(id -u)" -ne 0 ] || chown postgres: "$FUZZ_FAILURES"
}

# fuzz_setup: in $DB, the tables the fragment calls work on, the objects the
# corpus's lint statements name, and tripwires: user functions (in a domain
# CHECK reached through a composite literal, an immutable function planning
# would fold, a SQL cast it would inline) that count their calls in
# fuzz.user_code_calls, which no lint input may advance.
fuzz_setup() {
  q "CREATE SCHEMA fuzz;
     CREATE TABLE fuzz.items (id int PRIMARY KEY, n int, m int, t text);
     CREATE TABLE fuzz.items_copy (id int PRIMARY KEY, n int);
     INSERT INTO fuzz.items SELECT g, g, g, 'x' || g FROM generate_series(1, 100) g;
     CREATE TABLE users (id int PRIMARY KEY, email varchar(10), name text, n int,
                         born timestamp, ok int NOT NULL, score int CHECK (score IS NOT NULL));
     CREATE INDEX users_email ON users (email);
     CREATE TABLE orders (id int PRIMARY KEY, user_id int, total numeric);
     CREATE MATERIALIZED VIEW mv AS SELECT 1 AS x;
     CREATE TYPE mood AS ENUM ('sad');
     CREATE DOMAIN positive AS int CHECK (VALUE > 0);
     CREATE SEQUENCE some_seq;
     CREATE SEQUENCE fuzz.user_code_calls;
     CREATE FUNCTION watch(int) RETURNS bool LANGUAGE plpgsql AS
       \$\$ BEGIN PERFORM nextval('fuzz.user_code_calls'); RETURN true; END \$\$;
     CREATE FUNCTION watch_imm(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS
       \$\$ BEGIN PERFORM nextval('fuzz.user_code_calls'); RETURN \$1; END \$\$;
     CREATE FUNCTION sql_imm(int) RETURNS int LANGUAGE sql IMMUTABLE AS \$\$ SELECT public.watch_imm(\$1) \$\$;
     CREATE DOMAIN watched AS int CHECK (watch(VALUE));
     CREATE TYPE watched_row AS (a watched);
     CREATE TYPE watched_range AS RANGE (subtype = watched);
     CREATE FUNCTION takes_row(watched_row) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT 1';
     CREATE DOMAIN sets_config AS int CHECK (set_config('fuzz.ran', 'yes', false) IS NOT NULL AND watch(VALUE));
     CREATE TYPE sets_config_row AS (a sets_config);
     CREATE DOMAIN folded AS int CHECK (VALUE > watch_imm(0));
     CREATE DOMAIN folded_too AS int CHECK (VALUE > watch_imm(0));
     CREATE TYPE boxed AS (v int);
     CREATE FUNCTION box(int) RETURNS boxed LANGUAGE sql IMMUTABLE AS
       \$\$ SELECT ROW(\$1 + public.watch_imm(1))::public.boxed \$\$;
     CREATE CAST (int AS boxed) WITH FUNCTION box(int) AS ASSIGNMENT;" >/dev/null
}

# sqlfuzz ARGS...: runs the fuzzer as the server's user (it caps and reads the
# memory of its session's backend) against $DB; output in $WORK/sqlfuzz.out.
sqlfuzz() {
  as_owner env PGHOST="$PGHOST" PGPORT="$PGPORT" PGUSER="$PGUSER" PGDATABASE="$DB" \
    "$WORK/sqlfuzz" --log "$PGSHIFT_LOG" --failures "$FUZZ_FAILURES" --tripwire fuzz.user_code_calls \
    "$@" "${FUZZ_CORPUS[@]}" \
    >"$WORK/sqlfuzz.out" 2>&1
}

# summary_field NAME: a count from the fuzzer's last line ("sqlfuzz: inputs=N ...").
summary_field() { sed -n 's/^sqlfuzz:.* '"$1"'=\([0-9.]*\).*/\1/p' "$WORK/sqlfuzz.out"; }

# fuzz_controls: the watch catches what it must: a query that grows its
# backend by 300 MB and one that outlasts the time limit.
fuzz_controls() {
  local out
  out=$(as_owner env PGHOST="$PGHOST" PGPORT="$PGPORT" PGUSER="$PGUSER" PGDATABASE="$DB" \
          "$WORK/sqlfuzz" --self-test "${FUZZ_CORPUS[@]}" 2>&1)
  expect_in "the memory watch fails an input that grows the backend by 300 MB" "$out" \
    "self-test: memory: caught"
  expect_in "the time limit fails an input that runs for 2 s" "$out" "self-test: time: caught"
}

# fuzz_check MIN_INPUTS: TAP lines about a run the fuzzer has finished.
fuzz_check() {
  local min=$1 inputs failures accepted refused
  inputs=$(summary_field inputs)
  failures=$(summary_field failures)
  accepted=$(summary_field accepted)
  refused=$(summary_field refused)
  if [ -z "$inputs" ]; then
    not_ok "the fuzzer did not finish" "$(tail -n 30 "$WORK/sqlfuzz.out")"
    return
  fi
  grep '^# ' "$WORK/sqlfuzz.out" | grep -v 'FAILED\|^#   ' | head -n 3
  grep '^sqlfuzz: ' "$WORK/sqlfuzz.out" | sed 's/^/# /'
  if [ "$inputs" -ge "$min" ]; then ok "$inputs inputs ran"; else not_ok "only $inputs inputs ran, want $min"; fi
  if [ "${failures:-1}" -eq 0 ]; then
    ok "no input crashed a backend, took over 1 s or grew its backend over 256 MB, or raised an internal error"
  else
    not_ok "$failures inputs failed (each with its replay)" "$(grep -A4 'FAILED' "$WORK/sqlfuzz.out" | head -n 60)"
  fi
  rmdir "$FUZZ_FAILURES" 2>/dev/null || echo "# long failing inputs kept in $FUZZ_FAILURES"
  if [ "${accepted:-0}" -gt $((inputs / 10)) ] && [ "${refused:-0}" -gt $((inputs / 10)) ]; then
    ok "both outcomes are exercised: $accepted accepted, $refused refused"
  else
    not_ok "too few of one outcome: $accepted accepted, $refused refused"
  fi
  local t missing=""
  for t in lint lint_script select_list backfill_set backfill_where backfill_select \
           backfill_throttle sync_set sync_select; do
    [ "$(summary_field "$t")" -gt 0 ] 2>/dev/null || missing="$missing $t"
  done
  expect_eq "every target was fuzzed" "$missing" ""
  expect_in "refusals include the size limits (SQLSTATE 54000)" "$(grep '^sqlfuzz: ' "$WORK/sqlfuzz.out")" "54:"
  expect_eq "the server still answers" "$(q "SELECT 1")" 1
  expect_eq "no backend was restarted" \
    "$(q "SELECT count(*) FROM pg_stat_activity WHERE backend_start < pg_postmaster_start_time()")" 0
  expect_eq "the fragment calls left nothing behind" \
    "$(q "SELECT (SELECT count(*) FROM shift.backfill_progress) + (SELECT count(*) FROM shift.sync_status)
               + (SELECT count(*) FROM pg_trigger WHERE tgrelid IN ('fuzz.items'::regclass, 'fuzz.items_copy'::regclass))
               + (SELECT count(*) FROM fuzz.items_copy)") / $(q "SELECT count(*) FROM fuzz.items")" "0 / 100"
}
