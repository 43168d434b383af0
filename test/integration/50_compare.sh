#!/usr/bin/env bash
# pgshift compare across two throwaway servers: equal tables (including a
# TimeZone difference and different storage), then each kind of difference
# found and listed, an int key against its bigint copy, a keyless table,
# refinement through several bucket levels, a consistent snapshot under
# concurrent writes, and clear errors (bad table, missing extension, dead
# server) with exit 2.  Also db:checksum and db:compare in a migration.
# Then what used to give wrong answers: a key spelled differently in the two
# lists, a view, a quoted column name with a comma, enums, domains and
# composites whose type OIDs differ between the servers, a LATIN1 database,
# and rows written during the compare (in flight, not different).
# It starts clusters on the ports after the harness's one: test/harness.sh
# runs no background file beside it.
# harness: alone
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
  '{"event":"compare","source":"t","target":"t","equal":true,"source_rows":N,"target_rows":N,"missing_in_target":N,"missing_in_source":N,"different":N,"in_flight":N,"rechecks":N,"buckets":N,"seconds":N,"bytes_received":N,"bytes_sent":N}'
# with one side replicating the other, "lsn" comes between "rechecks" and "buckets" (52)

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

# ---- a key spelled differently in the two column lists is still the key
for spelling in 'id::bigint' '(id)' 'ID'; do
  pgshift compare --source "$SRC" --target "$TGT" --table acct --target-table account_new \
    --columns "$spelling,full_name" --target-columns "id,name"
  expect_rc "--columns '$spelling,full_name' against --target-columns 'id,name': the 9 changed rows are not all rows" 0
done

# ---- a view compares like a table (no pages), on either side
q "CREATE VIEW acct_v AS SELECT id, full_name AS name, score::text AS score FROM acct"
pgshift compare --source "$SRC" --target "$TGT" --table acct_v --target-table account_new --key id
expect_rc "a view on the source against a table on the target" 1
expect_in "finds the one changed score" "$OUT" "different          {9}"
expect_in "and only it" "$OUT" "1 difference(s): 0 missing in target, 0 missing in source, 1 different"

# ---- a quoted column name holding a comma is one column; so is a string literal with one
q "CREATE TABLE quoted (id int PRIMARY KEY, \"a,b\" text, c text); INSERT INTO quoted SELECT g, 'x' || g, 'c' FROM generate_series(1, 100) g"
q2 "CREATE TABLE quoted (id int PRIMARY KEY, \"a,b\" text, c text); INSERT INTO quoted SELECT g, 'x' || g, 'd' FROM generate_series(1, 100) g"
pgshift compare --source "$SRC" --target "$TGT" --table quoted --columns 'id,"a,b"'
expect_rc "--columns 'id,\"a,b\"' compares the column \"a,b\" (equal; c, which differs, is left out)" 0
pgshift compare --source "$SRC" --target "$TGT" --table quoted --columns "id, \"a,b\" || ',' || length(c)"
expect_rc "a string literal with a comma stays inside its expression" 0
q2 "UPDATE quoted SET \"a,b\" = 'changed' WHERE id = 42"
pgshift compare --source "$SRC" --target "$TGT" --table quoted --columns 'id,"a,b"'
expect_in "and a change in \"a,b\" is found" "$OUT" "different          {42}"

# ---- enums, domains, composites and arrays of them: the type OIDs differ between the servers
types="CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
  CREATE DOMAIN score AS int CHECK (VALUE >= 0);
  CREATE TYPE entry AS (m mood, s score, note text);
  CREATE TABLE typed_t (id int PRIMARY KEY, m mood, ms mood[], ss score[], e entry, es entry[]);"
q2 "CREATE TYPE filler AS ENUM ('x'); CREATE TABLE filler_t (a int, b text); CREATE DOMAIN filler_d AS text"
q "$types"; q2 "$types"
fill="INSERT INTO typed_t SELECT g, (ARRAY['sad','ok','happy'])[1 + g % 3]::mood, ARRAY['ok', NULL, 'happy']::mood[],
  ARRAY[g, g + 1]::score[], ROW('happy', g, 'n' || g)::entry, ARRAY[ROW('sad', g, NULL)::entry, NULL]
  FROM generate_series(1, 1000) g"
q "$fill"; q2 "$fill"
oids="$(q "SELECT 'mood'::regtype::oid, 'entry'::regtype::oid") / $(q2 "SELECT 'mood'::regtype::oid, 'entry'::regtype::oid")"
if [ "${oids%% / *}" != "${oids##* / }" ]; then ok "the types' OIDs differ between the servers ($oids)"; else not_ok "the types' OIDs differ between the servers ($oids)"; fi
pgshift compare --source "$SRC" --target "$TGT" --table typed_t
expect_rc "1 000 equal rows of enums, domains, composites and their arrays compare equal" 0
q2 "UPDATE typed_t SET es = ARRAY[ROW('sad', id, 'x')::entry, NULL] WHERE id = 500"
pgshift compare --source "$SRC" --target "$TGT" --table typed_t
expect_rc "one changed field deep in an array of composites" 1
expect_in "is the one difference" "$OUT" "1 difference(s): 0 missing in target, 0 missing in source, 1 different"

# ---- a LATIN1 database: the same characters compare equal, and --json stays UTF-8
createdb -h "$SECOND_HOST" -p "$SECOND_PORT" -U postgres -E LATIN1 --locale=C -T template0 latin
ql() { psql -X -q -A -t -v ON_ERROR_STOP=1 -h "$SECOND_HOST" -p "$SECOND_PORT" -U postgres -d latin -c "$1"; }
ql "CREATE EXTENSION pg_shift; CREATE EXTENSION citext; CREATE EXTENSION hstore"
q "CREATE EXTENSION IF NOT EXISTS citext; CREATE EXTENSION IF NOT EXISTS hstore"
enc="CREATE TYPE pair AS (a text, b int);
  CREATE TABLE words (w text PRIMARY KEY, ta text[], c citext, h hstore, p pair, j jsonb);
  INSERT INTO words VALUES ('café', '{crème,brûlée}', 'Ýes', 'clé=>été', ('à', 1), '{\"é\": \"ü\", \"a\": 1.50}'),
                           ('naïve', '{}', 'x', '', ('b', 2), '[]'), ('plain', NULL, NULL, NULL, NULL, NULL)"
q "$enc"; PGCLIENTENCODING=UTF8 ql "$enc"
expect_eq "the LATIN1 database stores é in one byte" "$(PGCLIENTENCODING=UTF8 ql "SELECT octet_length(w) FROM words WHERE w LIKE 'caf%'")" 4
pgshift compare --source "$SRC" --target "$SECOND_DSN dbname=latin" --table words
expect_rc "a UTF8 and a LATIN1 database holding the same characters compare equal" 0
PGCLIENTENCODING=UTF8 ql "UPDATE words SET c = 'Ýet' WHERE w = 'café'"
pgshift compare --source "$SECOND_DSN dbname=latin" --target "$SRC" --table words --json
expect_rc "a change in the LATIN1 database is found" 1
expect_in "and --json gives its key in UTF-8" "$OUT" '{"event":"difference","kind":"different","key":"{café}"}'
if printf '%s' "$OUT" | iconv -f UTF-8 -t UTF-8 >/dev/null 2>&1; then ok "the whole --json output is valid UTF-8"; else not_ok "the whole --json output is valid UTF-8" "$OUT"; fi

# ---- rows written during the compare: in flight, not different
# The writer changes 20 rows on the source, and the same rows on the target
# 0.2 s later (as a replica would), a batch every 0.05 s, while compare runs:
# at any moment a few batches are on the source only.
q "CREATE TABLE flight (id int PRIMARY KEY, v int); INSERT INTO flight SELECT g, 0 FROM generate_series(1, 100000) g; ANALYZE flight"
q2 "CREATE TABLE flight (id int PRIMARY KEY, v int); INSERT INTO flight SELECT g, 0 FROM generate_series(1, 100000) g; ANALYZE flight"
writer() {
  local k=0
  while [ ! -e "$WORK/stop" ]; do
    psql -X -q -d "$DB" -c "UPDATE flight SET v = v + 1 WHERE id > $k AND id <= $k + 20" >/dev/null 2>&1
    ( sleep 0.2; psql -X -q -h "$SECOND_HOST" -p "$SECOND_PORT" -U postgres -d "$DB" \
        -c "UPDATE flight SET v = v + 1 WHERE id > $k AND id <= $k + 20" >/dev/null 2>&1 ) &
    k=$(( (k + 20) % 100000 ))
    sleep 0.05
  done
  wait
}
rm -f "$WORK/stop"; writer & wpid=$!; sleep 0.5
pgshift compare --source "$SRC" --target "$TGT" --table flight --json
touch "$WORK/stop"; wait $wpid
summary=$(tail -1 <<<"$OUT")
expect_rc "writes reaching the target 0.2 s after the source: no difference (exit 0)" 0
expect_eq "none is reported different" "$(json_field "$summary" '{different}')" 0
expect_eq "rows written during the compare are reported in flight" "$(( $(json_field "$summary" '{in_flight}') > 0 ))" 1
expect_eq "after at least one recheck" "$(( $(json_field "$summary" '{rechecks}') >= 1 ))" 1
expect_in "each one as in_flight" "$OUT" '"kind":"in_flight"'
rm -f "$WORK/stop"; writer & wpid=$!; sleep 0.5
pgshift compare --source "$SRC" --target "$TGT" --table flight --recheck 0 --json
touch "$WORK/stop"; wait $wpid
expect_rc "with --recheck 0 the same rows are differences, as before" 1
pgshift compare --source "$SRC" --target "$TGT" --table flight --recheck x
expect_rc "--recheck takes a number" 2
# a row that stays different through the rechecks is a difference
q2 "UPDATE flight SET v = -1 WHERE id = 99999"
pgshift compare --source "$SRC" --target "$TGT" --table flight --recheck 1 --json
expect_rc "a change that stays is still a difference after the recheck" 1
expect_in "reported different" "$OUT" '{"event":"difference","kind":"different","key":"{99999}"}'

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
        -- shadow reads: the old query and the new one give the same rows
        local s = db:compare_queries{ source = "SELECT id, v FROM old_t WHERE id % 7 = 0",
                                      target = "SELECT id::int AS id, v FROM new_t WHERE id % 7 = 0", key = { "id" } }
        assert(s.equal, s.summary)
        s = db:compare_queries{ source = "SELECT id, v FROM old_t WHERE id <= 10",
                                target = "SELECT id, upper(v) AS v FROM new_t WHERE id < 10", key = { "id" } }
        assert(not s.equal and s.different == 9 and s.missing_in_target == 1, s.summary)
        assert(s.differences[1].columns[1] == "v", "the differing column is named")
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
