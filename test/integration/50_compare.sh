#!/usr/bin/env bash
# pgshift compare across two throwaway servers: equal tables (including a
# TimeZone difference and different storage), then each kind of difference
# found and listed, an int key against its bigint copy, a keyless table,
# refinement through several bucket levels, a consistent snapshot under
# concurrent writes, and clear errors (bad table, missing extension, dead
# server) with exit 2.  Also db:checksum and db:compare in a migration.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/cluster.sh"

new_db compare
second_cluster_start || { echo "Bail out! could not start a second cluster"; exit 1; }
trap 'second_cluster_stop; cleanup' EXIT
createdb -h "$SECOND_HOST" -p "$SECOND_PORT" -U postgres "$DB"
q2() { psql -X -q -A -t -v ON_ERROR_STOP=1 -h "$SECOND_HOST" -p "$SECOND_PORT" -U postgres -d "$DB" -c "$1"; }
q2 "CREATE EXTENSION pg_shift" >/dev/null
SRC="dbname=$DB"
TGT="$SECOND_DSN dbname=$DB"

ROWS=50000
make_t() {
  local sql="DROP TABLE IF EXISTS t; CREATE TABLE t (id int PRIMARY KEY, name text, amount numeric(12,2), at timestamptz, doc jsonb);
    INSERT INTO t SELECT g, CASE WHEN g % 7 = 0 THEN NULL ELSE 'name ' || g END, g / 100.0,
      timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute', jsonb_build_object('g', g) FROM generate_series(1, $ROWS) g;
    ANALYZE t"
  q "$sql"; q2 "$sql"
}
make_t
# the target's sessions run in another TimeZone and store numerics at another scale
q2 "ALTER DATABASE $DB SET TimeZone = 'Asia/Kolkata'"
q2 "ALTER TABLE t ALTER amount TYPE numeric(14,4)"

pgshift compare --source "$SRC" --target "$TGT" --table t
expect_rc "two equal tables on two servers compare equal" 0
expect_in "and the summary says so" "$OUT" "t: equal ($ROWS rows on each side)"

pgshift compare --source "$SRC" --target "$TGT" --table t --json
expect_rc "the json form also says equal" 0
summary=$(tail -1 <<<"$OUT")
expect_eq "json summary: equal" "$(json_field "$summary" '{equal}')" true
expect_eq "json summary: the source's rows" "$(json_field "$summary" '{source_rows}')" "$ROWS"
received=$(json_field "$summary" '{bytes_received}')
expect_eq "bytes received are measured and small (< 200 kB for $ROWS equal rows)" "$(( received > 0 && received < 200000 ))" 1
expect_eq "the summary's fields in their order, seconds to the millisecond" \
  "$(sed -E 's/[0-9]+(\.[0-9]{1,3})?([,}])/N\2/g' <<<"$summary")" \
  '{"event":"compare","source":"t","target":"t","equal":true,"source_rows":N,"target_rows":N,"missing_in_target":N,"missing_in_source":N,"different":N,"buckets":N,"seconds":N,"bytes_received":N,"bytes_sent":N}'

# ---- each kind of difference, found and named
q2 "UPDATE t SET name = 'changed' WHERE id = 777;
    UPDATE t SET amount = amount + 0.0001 WHERE id = 4242;
    DELETE FROM t WHERE id = 31337;
    INSERT INTO t VALUES ($((ROWS + 1)), 'new', 1, now(), '{}')"
pgshift compare --source "$SRC" --target "$TGT" --table t
expect_rc "differences make exit 1" 1
expect_in "a changed value is listed as different" "$OUT" "different          {777}"
expect_in "a changed numeric scale-4 digit is different" "$OUT" "different          {4242}"
expect_in "a row deleted on the target is missing_in_target" "$OUT" "missing_in_target  {31337}"
expect_in "a row only on the target is missing_in_source" "$OUT" "missing_in_source  {$((ROWS + 1))}"
expect_in "the summary counts them" "$OUT" "4 difference(s): 1 missing in target, 1 missing in source, 2 different"

pgshift compare --source "$SRC" --target "$TGT" --table t --json
expect_eq "json lists each difference" "$(grep -c '"event":"difference"' <<<"$OUT")" 4
expect_in "with its kind and key" "$OUT" '{"event":"difference","kind":"missing_in_target","key":"{31337}"}'

# ---- the columns can be narrowed: the name column alone differs in one row
pgshift compare --source "$SRC" --target "$TGT" --table t --columns "id,name" --json
expect_eq "with --columns id,name only the name change (and the two row changes) remain" \
  "$(json_field "$(tail -1 <<<"$OUT")" '{different}')" 1

# ---- an int key against its bigint copy, renamed and cast columns, another table name
q "CREATE TABLE acct (id int PRIMARY KEY, full_name text, score int);
   INSERT INTO acct SELECT g, 'n' || g, g FROM generate_series(1, 20000) g"
q2 "CREATE TABLE account_new (id bigint PRIMARY KEY, name text, score text);
    INSERT INTO account_new SELECT g, 'n' || g, g::text FROM generate_series(1, 20000) g"
pgshift compare --source "$SRC" --target "$TGT" --table acct --target-table account_new \
  --columns "id,full_name,score" --target-columns "id,name,score::int"
expect_rc "an int table and its bigint, renamed, retyped copy compare equal" 0
q2 "UPDATE account_new SET score = '7' WHERE id = 9"
pgshift compare --source "$SRC" --target "$TGT" --table acct --target-table account_new \
  --columns "id,full_name,score" --target-columns "id,name,score::int"
expect_in "and one changed score is found" "$OUT" "different          {9}"

# ---- column names that need quoting, in the lists the target takes from the source
odd='CREATE TABLE "od""d" ("k e,y" int PRIMARY KEY, "we""ird, col\" text, "{x}" int);
     INSERT INTO "od""d" SELECT g, $$v$$ || g, g FROM generate_series(1, 1000) g'
q "$odd"; q2 "$odd"
pgshift compare --source "$SRC" --target "$TGT" --table '"od""d"'
expect_rc "odd column names: equal tables compare equal" 0
q2 'UPDATE "od""d" SET "we""ird, col\" = $$x$$ WHERE "k e,y" = 7'
pgshift compare --source "$SRC" --target "$TGT" --table '"od""d"'
expect_in "and a changed value under an odd name is found" "$OUT" "different          {7}"
pgshift compare --source "$SRC" --target "$TGT" --table '"od""d"' --columns '"k e,y","{x}"'
expect_rc "a --columns list with quoted names, commas and braces in them" 0
pgshift compare --source "$SRC" --target "$TGT" --table '"od""d"' --columns '"k e,y", "we""ird, col\"'
expect_in "names the same difference" "$OUT" "different          {7}"

# ---- a table without a primary key: rows compared as a multiset
q "CREATE TABLE logs (msg text, n int); INSERT INTO logs SELECT 'm' || (g % 100), g % 3 FROM generate_series(1, 3000) g"
q2 "CREATE TABLE logs (msg text, n int); INSERT INTO logs SELECT 'm' || (g % 100), g % 3 FROM generate_series(1, 3000) g"
pgshift compare --source "$SRC" --target "$TGT" --table logs
expect_rc "keyless tables with duplicate rows compare equal" 0
q2 "INSERT INTO logs VALUES ('m5', 2)"
pgshift compare --source "$SRC" --target "$TGT" --table logs
expect_rc "one extra copy of a duplicated row is a difference" 1
expect_in "listed as missing in the source, with the row as its key" "$OUT" "missing_in_source  {m5,2}"

# ---- refinement: few first-level buckets force two narrowing levels
q "CREATE TABLE big (id int PRIMARY KEY, v text); INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 200000) g"
q2 "CREATE TABLE big (id int PRIMARY KEY, v text); INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 200000) g;
    UPDATE big SET v = 'x' WHERE id IN (5, 150000)"
pgshift compare --source "$SRC" --target "$TGT" --table big --buckets 1 --json
expect_rc "two changes among 200 000 rows, starting from one bucket" 1
expect_eq "both are found" "$(grep -c '"kind":"different"' <<<"$OUT")" 2
received=$(json_field "$(tail -1 <<<"$OUT")" '{bytes_received}')
expect_eq "narrowing keeps the traffic small (< 150 kB)" "$(( received < 150000 ))" 1

# ---- a consistent snapshot: writers during the compare change nothing it reports
q "CREATE TABLE busy (id int PRIMARY KEY, v int); INSERT INTO busy SELECT g, 0 FROM generate_series(1, 100000) g"
q2 "CREATE TABLE busy (id int PRIMARY KEY, v int); INSERT INTO busy SELECT g, 0 FROM generate_series(1, 100000) g"
q "CREATE FUNCTION slow_v(v int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT v'"
(
  for i in $(seq 1 40); do
    psql -X -q -d "$DB" -c "UPDATE busy SET v = v + 1 WHERE id = $((i * 1000)); SELECT pg_sleep(0.02)" >/dev/null 2>&1
  done
) &
writer=$!
pgshift compare --source "$SRC" --target "$TGT" --table busy --json
wait $writer
n=$(json_field "$(tail -1 <<<"$OUT")" '{different}')
src_changed=$(q "SELECT count(*) FROM busy WHERE v > 0")
expect_eq "the compare saw one snapshot: at most the rows changed so far, each once" \
  "$(( n >= 0 && n <= src_changed ))" 1
expect_eq "and its row count is the table's" "$(json_field "$(tail -1 <<<"$OUT")" '{source_rows}')" 100000

# ---- errors: exit 2, naming the side
pgshift compare --source "$SRC" --target "$TGT" --table no_such_table
expect_rc "a missing table is an error" 2
expect_in "naming the side and the table" "$ERR" "relation \"no_such_table\" does not exist"
expect_in "on the source" "$ERR" "source"
createdb -h "$SECOND_HOST" -p "$SECOND_PORT" -U postgres bare
pgshift compare --source "$SRC" --target "$SECOND_DSN dbname=bare" --table t
expect_rc "a target without the extension is an error" 2
expect_in "that says to create it" "$ERR" "CREATE EXTENSION pg_shift"
pgshift compare --source "$SRC" --target "host=/nonexistent port=1 dbname=x" --table t
expect_rc "an unreachable target is an error" 2
expect_in "about connecting to the target" "$ERR" "target"
pgshift compare --source "$SRC" --table t
expect_rc "--target is required" 2
pgshift compare --source "$SRC" --target "$TGT" --table t --buckets 3
expect_rc "--buckets must be a power of two" 2
q2 "CREATE TABLE typed (id int PRIMARY KEY, v text); INSERT INTO typed VALUES (1, '1')"
q "CREATE TABLE typed (id int PRIMARY KEY, v int); INSERT INTO typed VALUES (1, 1)"
pgshift compare --source "$SRC" --target "$TGT" --table typed
expect_rc "an int column against a text column is refused on the server" 2

# ---- Ctrl-C: the statements in flight are cancelled, exit 2 at once
q "CREATE TABLE held (id int PRIMARY KEY)"
q2 "CREATE TABLE held (id int PRIMARY KEY)"
psql -X -q -h "$SECOND_HOST" -p "$SECOND_PORT" -U postgres -d "$DB" \
  -c "BEGIN; LOCK TABLE held; SELECT pg_sleep(60)" >/dev/null 2>&1 &
holder=$!
held() { q2 "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
             WHERE c.relname = 'held' AND l.granted = $1"; }
for _ in $(seq 1 100); do [ "$(held true)" = 1 ] && break; sleep 0.1; done
"$PGSHIFT" compare --source "$SRC" --target "$TGT" --table held >"$WORK/int.out" 2>"$WORK/int.err" &
cmp=$!
for _ in $(seq 1 200); do [ "$(held false)" = 1 ] && break; sleep 0.1; done
expect_eq "the compare waits for the target's table" "$(held false)" 1
start=$(date +%s)
kill -INT "$cmp"
wait "$cmp"
RC=$? OUT=$(cat "$WORK/int.out") ERR=$(cat "$WORK/int.err")
expect_rc "Ctrl-C stops a compare" 2
expect_eq "promptly (the waiting statement is cancelled)" "$(( $(date +%s) - start < 10 ))" 1
expect_first_line "the cancelled statement is the cause" "canceling statement due to user request (SQLSTATE 57014)"
expect_in "on the target" "$ERR" "on the target (host="
sessions() { q2 "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgshift compare'"; }
for _ in $(seq 1 50); do [ "$(sessions)" = 0 ] && break; sleep 0.1; done
expect_eq "and its session is gone from the target" "$(sessions)" 0
q2 "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()" >/dev/null
wait "$holder"

# ---- db:checksum and db:compare in a validate phase
q "CREATE TABLE old_t (id int PRIMARY KEY, v text); INSERT INTO old_t SELECT g, 'v' || g FROM generate_series(1, 1000) g;
   CREATE TABLE new_t (id bigint PRIMARY KEY, v text); INSERT INTO new_t SELECT * FROM old_t"
f=$(mig validate <<'LUA'
return migration {
  name = "validate_copy",
  phases = {
    { name = "validate",
      up = function(db)
        local a = db:checksum{ table = "old_t" }
        local b = db:checksum{ table = "new_t" }
        assert(a.rows == 1000, "rows " .. tostring(a.rows))
        assert(a.checksum == b.checksum, a.checksum .. " ~= " .. b.checksum)
        local r = db:compare{ source = "old_t", target = "new_t" }
        assert(r.equal and #r.differences == 0)
      end },
    { name = "recheck",
      up = function(db)
        db:exec("UPDATE new_t SET v = 'x' WHERE id = 10")
        local r = db:compare{ source = "old_t", target = "new_t", limit = 5 }
        assert(not r.equal and r.different == 1, "expected one difference")
        assert(r.differences[1].key[1] == "10" and r.differences[1].columns[1] == "v")
        error("copy differs: " .. r.summary)
      end },
  },
}
LUA
)
pgshift --dsn "dbname=$DB" run "$f"
expect_rc "a validate phase with db:compare fails on a difference" 1
expect_in "with the summary in the error" "$OUT$ERR" "copy differs: 1 difference(s): 0 missing in target, 0 missing in source, 1 different"
expect_eq "the first phase passed with db:checksum and db:compare" "$(phase_status validate_copy)" "validate=done recheck=failed"
pgshift --dsn "dbname=$DB" plan "$f"
expect_rc "plan runs db:checksum and db:compare dry" 0
expect_in "and lists them" "$OUT" "shift.compare"
