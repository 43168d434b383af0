#!/usr/bin/env bash
# A project of migrations: pgshift run|status|plan|lint DIR (the files not
# yet applied, in order of file name; drift; what only the database has),
# targets named through libpq's service file (--service, PGSERVICE), and the
# project file DIR/pgshift.conf (default target, lock_wait, fail_on; its
# errors at pgshift.conf:LINE).
. "$(dirname "$0")/lib.sh"

new_db project
q "CREATE TABLE orders (id int PRIMARY KEY, amount int);
   INSERT INTO orders SELECT g, g FROM generate_series(1, 100) g" >/dev/null
D=$WORK/migrations
mkdir "$D"

# file NAME MIGRATION UP DOWN: a one-phase migration file in $D.
file() {
  cat >"$D/$1" <<LUA
return migration { name = "$2", phases = {
  { name = "change",
    up   = function(db) db:exec [[$3]] end,
    down = function(db) db:exec [[$4]] end } } }
LUA
}
# runs MIGRATION: how many runs shift.event recorded of it.
runs() { q "SELECT count(*) FROM shift.event WHERE migration = '$1' AND kind = 'run_started'"; }

# The file names sort as written, byte by byte: 010 after 002, and the
# migration names (declared inside) are not in that order on purpose.
file 001_orders_bigint.lua orders_bigint "ALTER TABLE orders ALTER id TYPE bigint" \
  "ALTER TABLE orders ALTER id TYPE int"
file 002_orders_note.lua a_note "ALTER TABLE orders ADD COLUMN note text" \
  "ALTER TABLE orders DROP COLUMN note"
file 010_orders_note_default.lua b_default "ALTER TABLE orders ALTER note SET DEFAULT 'none'" \
  "ALTER TABLE orders ALTER note DROP DEFAULT"
printf 'not a migration\n' >"$D/README.txt"
mkdir "$D/drafts.lua"        # a directory named *.lua is not a migration

# ---- status before anything ran: every file pending
pgshift --dsn "dbname=$DB" status "$D"
expect_rc "status DIR on a new project" 0
expect_eq "it lists the three files, each pending" \
  "$(awk 'NR > 1 { print $1, $3 }' <<<"$OUT" | tr '\n' ' ')" \
  "001_orders_bigint.lua pending 002_orders_note.lua pending 010_orders_note_default.lua pending "

# ---- run DIR applies the three in order of file name
pgshift --dsn "dbname=$DB" run "$D"
expect_rc "run DIR applies the project" 0
expect_in "it says what it will do" "$OUT" "==> directory $D: 3 migration files, 0 applied, 3 to run"
expect_in "and what it did" "$OUT" "==> directory $D: 3 of 3 files run"
expect_eq "in order of file name (run_finished events)" \
  "$(q "SELECT string_agg(migration, ' ' ORDER BY id) FROM shift.event WHERE kind = 'run_finished'")" \
  "orders_bigint a_note b_default"
expect_eq "in order of file name (finished_at)" \
  "$(q "SELECT string_agg(name, ' ' ORDER BY finished_at) FROM shift.migration")" \
  "orders_bigint a_note b_default"
expect_eq "each recorded with its file" \
  "$(q "SELECT string_agg(script_path, ' ' ORDER BY finished_at) FROM shift.migration")" \
  "$(realpath "$D/001_orders_bigint.lua") $(realpath "$D/002_orders_note.lua") $(realpath "$D/010_orders_note_default.lua")"
expect_eq "the schema has all three changes" \
  "$(q "SELECT format_type(atttypid, -1) FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'id'") $(q "SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = 'orders'::regclass")" \
  "bigint 'none'::text"

pgshift --dsn "dbname=$DB" status "$D"
expect_rc "status DIR of an applied project" 0
expect_eq "status DIR: every file applied" \
  "$(awk 'NR > 1 { print $3 }' <<<"$OUT" | sort -u)" "applied"

# ---- a second run finds nothing to do and runs nothing
pgshift --dsn "dbname=$DB" run "$D"
expect_rc "run DIR again" 0
expect_in "says nothing is left to run" "$OUT" "3 migration files, 3 applied, 0 to run"
expect_eq "and ran none of them again" "$(runs orders_bigint) $(runs a_note) $(runs b_default)" "1 1 1"

# ---- an applied file edited afterwards: drift
cp "$D/002_orders_note.lua" "$WORK/002.saved"
echo "-- edited after it was applied" >>"$D/002_orders_note.lua"
pgshift --dsn "dbname=$DB" --json status "$D"
expect_rc "status DIR with an applied file changed (drift) exits 1, as run DIR refuses it" 1
expect_eq "status DIR shows the edited file as changed" "$(json_field "$OUT" '{files,1,state}')" changed
expect_eq "its recorded sha256 is the one of the file as it ran" \
  "$(json_field "$OUT" '{files,1,recorded_sha256}')" "$(sha256sum "$WORK/002.saved" | cut -d' ' -f1)"
expect_eq "and the file's sha256 is the one of the file now" \
  "$(json_field "$OUT" '{files,1,sha256}')" "$(sha256sum "$D/002_orders_note.lua" | cut -d' ' -f1)"
expect_eq "the others stay applied" "$(json_field "$OUT" '{files,0,state}') $(json_field "$OUT" '{files,2,state}')" \
  "applied applied"
pgshift --dsn "dbname=$DB" status "$D"
expect_rc "the text form exits 1 too" 1
expect_in "the text form says so, with both hashes" "$OUT" \
  "changed since applied: sha256 $(sha256sum "$WORK/002.saved" | cut -c1-12)... recorded, $(sha256sum "$D/002_orders_note.lua" | cut -c1-12)... now"
file 020_later.lua later "ALTER TABLE orders ADD COLUMN later int" "ALTER TABLE orders DROP COLUMN later"
pgshift --dsn "dbname=$DB" run "$D"
expect_rc "run DIR refuses a project whose applied file changed" 1
expect_first_line "naming how many" "1 applied migration file changed since it ran; nothing was run"
expect_in "and which" "$ERR" "$D/002_orders_note.lua (migration a_note)"
expect_eq "before running anything, even the new file" "$(runs later)" 0
cp "$WORK/002.saved" "$D/002_orders_note.lua"

# ---- a new file: the next run applies it alone
pgshift --dsn "dbname=$DB" run "$D"
expect_rc "run DIR with a new file" 0
expect_in "one to run" "$OUT" "4 migration files, 3 applied, 1 to run"
expect_eq "only the new file ran" \
  "$(runs orders_bigint) $(runs a_note) $(runs b_default) $(runs later)" "1 1 1 1"
expect_eq "the new column is there" "$(q "SELECT count(*) FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'later'")" 1

# ---- a file added with a name that sorts before applied ones: said so
file 015_between.lua between "SELECT 1" "SELECT 1"
pgshift --dsn "dbname=$DB" status "$D/"
expect_eq "status DIR/ (a trailing slash is the same directory) shows it pending" \
  "$(awk '$1 == "015_between.lua" { print $3 }' <<<"$OUT")" pending
expect_in "and notes it" "$(grep 015_between <<<"$OUT")" "sorts before an applied file: run applies it now, after them"
pgshift --dsn "dbname=$DB" plan --offline "$D"
expect_eq "plan --offline DIR plans every file, knowing no state" \
  "$(grep -c '^Plan for migration' <<<"$OUT")" 5
rm "$D/015_between.lua"

# ---- a failing file stops the run; the files after it stay pending
file 030_fails.lua fails "UPDATE orders SET amount = amount / 0" "SELECT 1"
file 040_after.lua after "ALTER TABLE orders ADD COLUMN after_fail int" "ALTER TABLE orders DROP COLUMN after_fail"
pgshift --dsn "dbname=$DB" run "$D"
expect_rc "a failing file stops run DIR with the migration's exit code" 1
expect_first_line "its error first" "030_fails.lua:3: division by zero (SQLSTATE 22012)"
expect_in "and where the directory's run stopped" "$OUT" "==> directory $D: stopped at $D/030_fails.lua (exit 1); 0 of 2 files run"
expect_eq "the file after it did not run" "$(runs after)" 0
pgshift --dsn "dbname=$DB" --json status "$D"
expect_rc "status DIR with a failed and a pending file exits 0 (run DIR retries them)" 0
expect_eq "status DIR: the failed file failed, the next pending" \
  "$(json_field "$OUT" '{files,4,state}') $(json_field "$OUT" '{files,5,state}')" "failed pending"
expect_in "with the failure's message" "$(json_field "$OUT" '{files,4,note}')" "change: $D/030_fails.lua:3: division by zero"

# ---- plan DIR: the files to run, in order; lint DIR: every file
pgshift --dsn "dbname=$DB" plan "$D"
expect_rc "plan DIR" 0
expect_eq "plans the files to run and only those, in order" \
  "$(grep -oE 'migration (fails|after|orders_bigint|a_note|b_default|later)\b' <<<"$OUT" | sort -u -k2 | tr '\n' ' ')" \
  "migration after migration fails "
if [ "$(grep -n 'fails' <<<"$OUT" | head -1 | cut -d: -f1)" -lt "$(grep -n 'after' <<<"$OUT" | head -1 | cut -d: -f1)" ]; then
  ok "030_fails.lua's plan comes before 040_after.lua's"
else not_ok "plan DIR's order" "$OUT"; fi
pgshift --dsn "dbname=$DB" --format json plan "$D"
expect_eq "--format json: one document per file to run, a line each" "$(wc -l <<<"$OUT")" 2
expect_eq "each a JSON document of its file" "$(json_field "$(head -1 <<<"$OUT")" '{migration}')" fails
pgshift --dsn "dbname=$DB" lint "$D"
expect_rc "lint DIR: findings at or above HIGH" 1
expect_eq "lints every file" "$(grep -c '^lint of migration' <<<"$OUT")" 6

# ---- a migration the database has that the directory lacks
f=$(mig elsewhere <<'LUA'
return migration { name = "elsewhere", phases = {
  { name = "a", up = function(db) db:exec "SELECT 1" end } } }
LUA
)
pgshift --dsn "dbname=$DB" run "$f"
expect_rc "a single FILE runs as before" 0
pgshift --dsn "dbname=$DB" status "$D"
expect_in "status DIR lists what only the database has" "$OUT" "recorded in the database, no file in $D:"
expect_in "by name, status and file" "$OUT" "elsewhere  done  1 of 1  $(realpath "$f")"
pgshift --dsn "dbname=$DB" --json status "$D"
expect_eq "in JSON too" "$(json_field "$OUT" '{not_in_directory,0,migration}')" elsewhere

# ---- what a directory cannot do
pgshift --dsn "dbname=$DB" run "$D" --to change
expect_rc "run DIR --to is refused" 2
expect_first_line "as ambiguous" "--to change: with a directory it is ambiguous"
pgshift --dsn "dbname=$DB" rollback "$D"
expect_rc "rollback DIR is refused" 2
expect_first_line "it takes one file" "rollback takes one migration FILE, not a directory"
mkdir "$WORK/dup"
cp "$D/001_orders_bigint.lua" "$WORK/dup/a.lua"
cp "$D/001_orders_bigint.lua" "$WORK/dup/b.lua"
pgshift --dsn "dbname=$DB" run "$WORK/dup"
expect_rc "two files of one migration name are refused" 2
expect_first_line "naming both" "$WORK/dup/a.lua and $WORK/dup/b.lua both declare migration \"orders_bigint\""
printf 'return migration { name = "broken", phases = {} }\n' >"$D/050_broken.lua"
before=$(q "SELECT count(*) FROM shift.event")
pgshift --dsn "dbname=$DB" run "$D"
expect_rc "an invalid file stops run DIR before anything runs" 1
expect_in "naming it" "$ERR" "050_broken.lua"
expect_eq "nothing was recorded" "$(q "SELECT count(*) FROM shift.event")" "$before"
pgshift --dsn "dbname=$DB" status "$D"
expect_rc "status DIR with an invalid file exits 1, as run DIR refuses it" 1
expect_in "status DIR shows it invalid" "$(grep 050_broken <<<"$OUT")" "invalid"
rm "$D/050_broken.lua" "$D/030_fails.lua" "$D/040_after.lua"

# ---- --service: a target named in libpq's service file
export PGSERVICEFILE=$WORK/pg_service.conf
cat >"$PGSERVICEFILE" <<EOF
[proj]
host=$PGHOST
port=$PGPORT
dbname=$DB
EOF
# PGDATABASE is postgres, which has no pg_shift: only the service reaches $DB
pgshift status elsewhere
expect_rc "without a target, the environment's database (no pg_shift) is refused" 2
pgshift --service proj status elsewhere
expect_rc "--service names the target" 0
expect_in "the service's database" "$OUT" "migration elsewhere: done"
PGSERVICE=proj pgshift status elsewhere
expect_rc "PGSERVICE names it as well, pgshift leaving it to libpq" 0
pgshift --service nosuch status
expect_rc "an unknown service" 2
expect_in "libpq says so" "$ERR" "nosuch"
pgshift --service proj --dsn "dbname=$DB" status
expect_rc "--service and --dsn together" 2
expect_first_line "are refused" "--dsn and --service both name the target: give one"

# ---- pgshift.conf: the project's default target, lock_wait and fail_on
cat >"$D/pgshift.conf" <<'EOF'
-- the project's defaults; the command line wins
service = "proj"
EOF
pgshift status "$D"
expect_rc "pgshift.conf's service is the default target" 0
expect_in "of the project's database" "$OUT" "001_orders_bigint.lua"
pgshift --dsn "dbname=postgres" status "$D"
expect_rc "--dsn wins over pgshift.conf" 2
expect_in "(postgres has no pg_shift)" "$ERR" "pg_shift"
printf 'dsn = "dbname=%s"\n' "$DB" >"$D/pgshift.conf"
pgshift status "$D"
expect_rc "pgshift.conf's dsn is a target as well" 0

file 060_locked.lua locked "ALTER TABLE orders ADD COLUMN locked int" "ALTER TABLE orders DROP COLUMN locked"
# hold_lock SECONDS: another session holds migration locked's advisory lock
# (shift.try_lock's key) for SECONDS
hold_lock() {
  psql -X -q -d "$DB" -c "SELECT pg_advisory_lock(1936221812, hashtext('locked')), pg_sleep($1)" >/dev/null &
  HOLDER=$!
  wait_for "the other session holds the lock" 10 \
    "SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND classid = 1936221812 AND granted AND pid <> pg_backend_pid()
                     AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))"
}
printf 'service = "proj"\nlock_wait = "20s"\nfail_on = "critical"\n' >"$D/pgshift.conf"
hold_lock 60
pgshift run "$D" --lock-wait 0
expect_rc "--lock-wait 0 wins over pgshift.conf's lock_wait" 2
# the holder lets go now (however long the run took to reach the file)
q "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND classid = 1936221812
     AND granted AND pid <> pg_backend_pid() AND database = (SELECT oid FROM pg_database WHERE datname = current_database())" >/dev/null
wait "$HOLDER" 2>/dev/null
expect_eq "(locked has not run)" "$(runs locked)" 0
hold_lock 2
pgshift run "$D"
expect_rc "pgshift.conf's lock_wait waits for the lock" 0
wait "$HOLDER"
expect_eq "and then runs the file" "$(runs locked)" 1

mkdir "$WORK/lintproj"
cp "$D/pgshift.conf" "$WORK/lintproj/"
D=$WORK/lintproj file risky.lua risky "CREATE INDEX orders_amount ON orders (amount)" "DROP INDEX orders_amount"
pgshift lint "$WORK/lintproj"
expect_rc "pgshift.conf's fail_on (critical) lets a HIGH finding pass" 0
expect_in "(the finding is there)" "$OUT" "HIGH index-not-concurrent"
pgshift lint "$WORK/lintproj" --fail-on high
expect_rc "--fail-on wins over it" 1

# ---- an invalid pgshift.conf: what and where, exit 2, nothing run
file 080_pending.lua pending_one "SELECT 1" "SELECT 1"
conf_error() {  # DESC CONTENT NEEDLE
  printf '%s' "$2" >"$D/pgshift.conf"
  pgshift run "$D"
  expect_rc "$1" 2
  expect_first_line "  says $3" "$3"
}
conf_error "an unquoted name" 'service = "proj"
lock_wait = 5
fail_on = high
' "pgshift.conf:3: \"high\" is not defined: pgshift.conf only sets values (quote text: service = \"staging\")"
conf_error "an unknown key" 'lockwait = 5' 'pgshift.conf:1: unknown setting "lockwait"'
conf_error "a wrong type" 'service = "proj"

lock_wait = true' "pgshift.conf:3: lock_wait must be seconds (5) or a duration"
conf_error "a bad duration" 'lock_wait = "5 parsecs"' "pgshift.conf:1: lock_wait: \"5 parsecs\" is not a duration"
conf_error "a bad level" 'fail_on = "severe"' 'pgshift.conf:1: fail_on: "severe" is not critical, high, medium or low'
conf_error "two targets" 'service = "proj"
dsn = "dbname=x"' "pgshift.conf:2: dsn: service is set already"
conf_error "a syntax error" 'service = "proj' "pgshift.conf:1: unfinished string"
conf_error "a loop" 'while true do end' "pgshift.conf:1: stopped after 1000000 Lua instructions (a loop?)"
conf_error "a loop on a later line, in a function" 'service = "proj"
local function spin() while true do end end
spin()' "pgshift.conf:2: stopped after 1000000 Lua instructions (a loop?): pgshift.conf only sets values"
conf_error "a huge string" 'local s = "xxxxxxxxxxxxxxxx"
for i = 1, 40 do s = s .. s end' "$D/pgshift.conf: uses more than 1024 kB of memory: pgshift.conf only sets values"
conf_error "a huge table" 'local t = {}
for i = 1, 1e7 do t[i] = i end' "$D/pgshift.conf: uses more than 1024 kB of memory"
conf_error "a call" 'os.execute("touch /tmp/x")' 'pgshift.conf:1: "os" is not defined'
expect_in "and says what it may hold" "$ERR" 'lock_wait = "5s"'
expect_eq "nothing ran meanwhile" "$(runs pending_one)" 0

# ---- a command that takes no FILE is not sent to the directory code: "help
# run" beside a directory named run is still help, and connects nowhere
mkdir -p "$WORK/cwd/run"
out=$(cd "$WORK/cwd" && PGHOST=/nonexistent "$PGSHIFT" help run 2>&1)
expect_eq "help run beside a directory named run exits 0" "$?" 0
expect_in "and prints run's help" "$out" "pgshift run migrations/"

# ---- run DIR loads each file once: the check before running and the run
# share the load (a trusted file's top level runs all of Lua: here it
# counts its loads in a file)
mkdir "$WORK/once"
for n in 1 2; do
  cat >"$WORK/once/00${n}_count.lua" <<LUA
local f = assert(io.open("$WORK/loads_$n", "a")); f:write("load\n"); f:close()
return migration { name = "count_loads_$n", phases = {
  { name = "a", up = function(db) db:exec "SELECT $n" end } } }
LUA
done
pgshift --dsn "dbname=$DB" run "$WORK/once"
expect_rc "run DIR of two files that count their loads" 0
expect_eq "each file ran" "$(runs count_loads_1) $(runs count_loads_2)" "1 1"
expect_eq "and was loaded once" "$(wc -l <"$WORK/loads_1") $(wc -l <"$WORK/loads_2")" "1 1"
pgshift --dsn "dbname=$DB" run "$WORK/once"
expect_rc "run DIR again: both applied" 0
expect_eq "each was loaded once more, for its name and hash, and not run" \
  "$(wc -l <"$WORK/loads_1") $(wc -l <"$WORK/loads_2") $(runs count_loads_1) $(runs count_loads_2)" "2 2 1 1"
