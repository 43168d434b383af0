#!/usr/bin/env bash
# The upgrade from 0.1.0, the way a user makes it, under an application's
# writes.  With 0.1.0's own library (built from the commit that released it)
# and SQL objects, a migration runs half way, recorded as 0.1.0's runner
# did: a table-level sync into a copy, then a backfill interrupted after
# three batches; beside it a column-level sync, a disabled one, and a sync
# already cut over, whose stored VALIDATE statements an operator edited (the
# issue 23 attack).  Then the 0.2.0 library is installed and the server
# restarted: the sync triggers keep mirroring every write on 0.1.0's tables,
# and everything else refuses, saying to run ALTER EXTENSION pg_shift UPDATE.
# The update runs while pgbench writes and a REPEATABLE READ writer waits
# with an older snapshot; the schema it leaves is exactly a fresh 0.2.0
# install's (pg_dump --binary-upgrade of both); every sync is sealed again,
# its triggers made anew, and the 0.2.0 runner finishes the migration: the
# backfill goes on from 0.1.0's checkpoint, the copy compares equal, the
# cut-over and the contract run.  No write fails.  Last, updates that must
# not happen stop and change nothing: a view of the user's on a table of
# pg_shift, a sync whose row was edited since its triggers were made.
# It restarts the server: test/harness.sh runs no background file beside it.
# harness: alone
. "$(dirname "$0")/lib.sh"

PGBENCH=$PGSHIFT_PGBIN/pgbench
LIBDIR=$("$PGSHIFT_PGBIN/pg_config" --pkglibdir)
ROWS=20000

# ---- 0.1.0's library: built from the commit before the one that froze its
# install script, which must be the script that commit builds
added=$(git -C "$PGSHIFT_ROOT" log --format=%H --diff-filter=A -1 -- sql/pg_shift--0.1.0.sql 2>/dev/null)
if [ -z "$added" ] || ! git -C "$PGSHIFT_ROOT" cat-file -e "$added^" 2>/dev/null; then
  echo "ok 1 # SKIP needs the git history of pg_shift 0.1.0 to build its library (a shallow clone lacks it)"
  exit 0
fi
V010=$WORK/v0.1.0
mkdir -p "$V010"
if ! git -C "$PGSHIFT_ROOT" archive "$added^" Makefile pg_shift.control extension sql | tar -x -C "$V010" ||
   ! make -s -C "$V010" PG_CONFIG="$PGSHIFT_PGBIN/pg_config" COPT=-O0 pg_shift.so sql/pg_shift--0.1.0.sql \
       >"$WORK/build-0.1.0.log" 2>&1; then
  echo "Bail out! could not build pg_shift 0.1.0 from commit $added^"
  sed 's/^/# /' "$WORK/build-0.1.0.log"
  exit 1
fi
if cmp -s "$V010/sql/pg_shift--0.1.0.sql" "$PGSHIFT_ROOT/sql/pg_shift--0.1.0.sql"; then
  ok "0.1.0's library is built from the commit whose install script is the released one"
else
  not_ok "the install script of ${added:0:10}^ is not sql/pg_shift--0.1.0.sql"
fi

# The installed library is swapped for 0.1.0's and back, as a package
# upgrade would replace it (a new file, renamed into place: running servers
# keep what they mapped); whatever happens, 0.2.0's is put back at the end.
cp "$LIBDIR/pg_shift.so" "$WORK/pg_shift-0.2.0.so"
install_library() { cp "$1" "$LIBDIR/pg_shift.so.92_upgrade" && mv "$LIBDIR/pg_shift.so.92_upgrade" "$LIBDIR/pg_shift.so"; }
trap 'install_library "$WORK/pg_shift-0.2.0.so"; cleanup' EXIT
restart_server() {
  as_owner "$PGSHIFT_PGBIN/pg_ctl" -D "$PGSHIFT_DATA" -l "$PGSHIFT_LOG" -m fast -w -t 60 restart >/dev/null
}

# catalog_dump DB: the schema of pg_shift in DB as pg_upgrade would carry it
# over (every member object, its ACL, policies, comments, the extension's
# configuration tables), without what differs between any two databases:
# object ids, transaction ids, the event sequence's position, pg_dump's
# random \restrict key.
catalog_dump() {
  pg_dump --binary-upgrade --schema-only -N public -d "$1" |
    grep -v -e '^SELECT pg_catalog.binary_upgrade_set_next_' -e '^\\restrict ' -e '^\\unrestrict ' \
            -e "^SELECT pg_catalog.setval('shift.event_id_seq', " |
    sed -E -e "s/(binary_upgrade_create_empty_extension\('pg_shift', 'shift', false, '[^']*', )'\{[0-9,]*\}'/\1'{oids}'/" \
           -e "s/relfrozenxid = '[0-9]+', relminmxid = '[0-9]+'/relfrozenxid = 'x', relminmxid = 'x'/" \
           -e "s/^WHERE oid = '[0-9]+';$/WHERE oid = 'oid';/"
}

install_library "$V010/pg_shift.so"
new_db upgrade_tampered 0.1.0   # for the refusals at the end
q "CREATE TABLE t (id int PRIMARY KEY, v text); CREATE TABLE t_v2 (id bigint PRIMARY KEY, v text);
   SELECT shift.sync_create('t', 't', \"into\" => 't_v2');
   UPDATE shift.sync SET expressions = '{id,upper(v)}' WHERE name = 't';
   CREATE VIEW my_migrations AS SELECT name, status FROM shift.migration" >/dev/null
# 0.1.0 let any member of shift_operator rewrite a backfill job: this one,
# made by the superuser, is given a function of the operator's to run
q "CREATE TABLE notes (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
   INSERT INTO notes (id) SELECT g FROM generate_series(1, 10) g;
   SELECT shift.backfill_create('notes:bump', 'notes', set => 'n = n + 1');
   DROP ROLE IF EXISTS upgrade_mallory;
   CREATE ROLE upgrade_mallory LOGIN IN ROLE shift_operator;
   CREATE SCHEMA mallory AUTHORIZATION upgrade_mallory" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -U upgrade_mallory -d "$DB" >/dev/null <<'SQL'
CREATE FUNCTION mallory.bump(n int) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE 'ALTER ROLE upgrade_mallory SUPERUSER';
  RETURN n + 1;
END $$;
UPDATE shift.backfill SET set_clause = 'n = mallory.bump(n)' WHERE name = 'notes:bump';
SQL
expect_eq "under 0.1.0, an operator rewrote the superuser's backfill job" \
  "$(q "SELECT set_clause || ' ' || owner FROM shift.backfill WHERE name = 'notes:bump'")" "n = mallory.bump(n) postgres"
new_db upgrade 0.1.0
expect_eq "pg_shift 0.1.0: its library and its SQL objects" \
  "$(q "SELECT shift.version() || ' ' || extversion FROM pg_extension WHERE extname = 'pg_shift'")" "0.1.0 0.1.0"

q "CREATE TABLE orders (id serial PRIMARY KEY, customer int NOT NULL, amount int NOT NULL, updated timestamptz);
   INSERT INTO orders (customer, amount) SELECT g % 100, g % 1000 FROM generate_series(1, $ROWS) g;
   CREATE TABLE customers (id int PRIMARY KEY, email text NOT NULL, email_lower text);
   INSERT INTO customers (id, email) SELECT g, 'User' || g || '@Example.COM' FROM generate_series(1, 100) g;
   CREATE TABLE tags (id int PRIMARY KEY, name text NOT NULL, name_lower text);
   CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL);
   INSERT INTO accounts SELECT g, 'owner ' || g FROM generate_series(1, 100) g;
   CREATE TABLE ledger (id int PRIMARY KEY, account_id int REFERENCES accounts (id));
   INSERT INTO ledger SELECT g, g FROM generate_series(1, 50) g;
   CREATE TABLE accounts_v2 (id bigint PRIMARY KEY, owner text NOT NULL);
   ANALYZE orders" >/dev/null

# the application: one order changed, sometimes a new one, sometimes one
# deleted (never the first hundred, nor any order's customer: the test's own
# writes below, one of them in a REPEATABLE READ transaction, which a write
# of the application to the same row would rightly fail)
cat >"$WORK/app.sql" <<'SQL'
\set id random(101, 24000)
\set d random(-50, 50)
\set op random(1, 20)
BEGIN;
UPDATE orders SET amount = amount + :d, updated = now() WHERE id = :id;
INSERT INTO orders (customer, amount) SELECT :id % 100, :d WHERE :op = 1;
DELETE FROM orders WHERE id = :id AND :op = 2 AND id > 100;
END;
SQL

f=$(mig orders_v2 <<'LUA'
return migration {
  name = "orders_v2",
  phases = {
    { name = "expand",
      up = function(db)
        db:ddl([[CREATE TABLE IF NOT EXISTS orders_v2 (id bigint PRIMARY KEY DEFAULT nextval('orders_id_seq'),
                   customer int NOT NULL, amount int NOT NULL, updated timestamptz)]])
      end,
      down = function(db) db:ddl("DROP TABLE IF EXISTS orders_v2") end },
    { name = "sync",
      up = function(db) db:sync{ name = "orders", table = "orders", into = "orders_v2" } end,
      down = function(db) db:sync_drop("orders"); db:ddl("TRUNCATE orders_v2") end },
    { name = "backfill",
      up = function(db)
        db:backfill{ table = "orders", into = "orders_v2", on_conflict = "nothing", batch_max = 2000 }
      end,
      down = function(db) end },
    { name = "validate",
      up = function(db)
        local r = db:compare{ source = "orders", target = "orders_v2" }
        if not r.equal then error("orders_v2 differs: " .. r.summary) end
      end,
      down = function(db) end },
    { name = "cutover",
      up = function(db) db:cutover{ sync = "orders", lock_timeout = "500ms", retries = 20 } end,
      down = function(db) db:cutover_revert{ sync = "orders", lock_timeout = "500ms", retries = 20 } end },
    { name = "contract",
      up = function(db) db:sync_drop("orders") end },
  },
}
LUA
)
PHASES='[{"name": "expand", "reversible": true}, {"name": "sync", "reversible": true},
         {"name": "backfill", "reversible": true}, {"name": "validate", "reversible": true},
         {"name": "cutover", "reversible": true}, {"name": "contract", "reversible": false}]'

# ---- 0.1.0: the migration half way, as 0.1.0's runner recorded it (its
# work and control sessions in one), under the application's writes
load_start before "$WORK/app.sql" 2
sleep 1
psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$DB" -v sha="$(sha256sum "$f" | cut -d' ' -f1)" -v path="$f" \
  -v phases="$PHASES" >"$WORK/v010.out" 2>&1 <<'SQL'
SELECT shift.try_lock('orders_v2');
SELECT count(*) FROM shift.migration_begin('orders_v2', :'sha', :'phases', 'run', pg_backend_pid(),
                                           '0.1.0', 'upgrade-test', 4242, :'path');
SELECT shift.phase_start('orders_v2', 'expand');
CREATE TABLE orders_v2 (id bigint PRIMARY KEY DEFAULT nextval('orders_id_seq'),
                        customer int NOT NULL, amount int NOT NULL, updated timestamptz);
SELECT shift.phase_done('orders_v2', 'expand');
SELECT shift.phase_start('orders_v2', 'sync');
SELECT shift.sync_create('orders', relation => 'orders', "into" => 'orders_v2', if_exists => 'reuse',
                         migration => 'orders_v2', phase => 'sync');
SELECT shift.phase_done('orders_v2', 'sync');
SELECT shift.phase_start('orders_v2', 'backfill');
SELECT shift.phase_resumable('orders_v2', 'backfill', true);
SELECT shift.backfill_create('orders_v2:backfill', relation => 'orders', "into" => 'orders_v2',
                             on_conflict => 'nothing', batch_min => 1000, batch_max => 1000,
                             if_exists => 'reuse', migration => 'orders_v2', phase => 'backfill');
SELECT keys FROM shift.backfill_step('orders_v2:backfill');
SELECT keys FROM shift.backfill_step('orders_v2:backfill');
SELECT keys FROM shift.backfill_step('orders_v2:backfill');
-- Ctrl-C: the runner records the interruption and ends
SELECT shift.phase_failed('orders_v2', 'backfill', 'canceling statement due to user request', '57014', true);
SELECT shift.migration_end('orders_v2');
SQL
rc=$?
expect_eq "0.1.0 recorded the migration half way" "$rc" 0
[ "$rc" -eq 0 ] || sed 's/^/# /' "$WORK/v010.out"
q "SELECT shift.sync_create('customers', 'customers', set => 'email_lower = lower(email)');
   SELECT shift.sync_create('tags', 'tags', set => 'name_lower = lower(name)');
   ALTER TABLE tags DISABLE TRIGGER shift_sync_tags;
   SELECT shift.sync_create('accounts', 'accounts', \"into\" => 'accounts_v2');
   INSERT INTO accounts_v2 SELECT * FROM accounts ON CONFLICT DO NOTHING;
   SELECT attempts FROM shift.cutover('accounts');
   UPDATE shift.sync SET pending_validate = pending_validate || 'ALTER ROLE shift_operator SUPERUSER'::text
    WHERE name = 'accounts'" >/dev/null
expect_eq "its backfill stopped after three batches" \
  "$(q "SELECT state || ' ' || keys_done || ' ' || batches FROM shift.backfill")" "active 3000 3"
expect_eq "the cut-over of accounts left a foreign key to validate, and an operator's statement" \
  "$(q "SELECT array_to_string(pending_validate, '; ') FROM shift.sync WHERE name = 'accounts'")" \
  "ALTER TABLE public.ledger VALIDATE CONSTRAINT ledger_account_id_fkey; ALTER ROLE shift_operator SUPERUSER"
sleep 2
load_stop before
expect_eq "under 0.1.0, the application wrote without a failure" "$(load_failures before)" 0

# ---- the 0.2.0 library is installed; the server restarts, so that no
# session keeps 0.1.0's in memory
install_library "$WORK/pg_shift-0.2.0.so"
restart_server
load_start window "$WORK/app.sql" 2
expect_eq "the library is 0.2.0, the SQL objects still 0.1.0" \
  "$(q "SELECT shift.version() || ' ' || extversion FROM pg_extension WHERE extname = 'pg_shift'")" "0.2.0 0.1.0"
err=$(q "SELECT * FROM shift.backfill_step('orders_v2:backfill')" 2>&1)
expect_in "until the update, backfill_step refuses" "$err" \
  "ERROR:  pg_shift's SQL objects are version 0.1.0 but its library is 0.2.0"
expect_in "saying what to do" "$err" "HINT:  Run ALTER EXTENSION pg_shift UPDATE in this database."
err=$(psql -X -q -d "$DB" -c "CALL shift.backfill_run('orders_v2:backfill')" 2>&1)
expect_in "so does backfill_run" "$err" "pg_shift's SQL objects are version 0.1.0 but its library is 0.2.0"
err=$(q "SELECT shift.sync_create('tags2', 'tags', set => 'name_lower = upper(name)')" 2>&1)
expect_in "and sync_create" "$err" "pg_shift's SQL objects are version 0.1.0 but its library is 0.2.0"
expect_eq "none of them changed anything" \
  "$(q "SELECT keys_done || ' ' || batches || ' ' || (SELECT count(*) FROM shift.sync) FROM shift.backfill")" "3000 3 4"
events_before=$(q "SELECT count(*) || ' ' || (SELECT last_value FROM shift.event_id_seq) FROM shift.event")
job_before=$(q "SELECT created_at || ' ' || upper_key_text FROM shift.backfill")
pgshift --dsn "dbname=$DB" status
expect_rc "the runner refuses too" 2
expect_in "naming the versions" "$ERR" "is version 0.1.0, but this pgshift is version 0.2.0"
q "INSERT INTO customers (id, email) VALUES (1001, 'Window@Example.COM');
   UPDATE orders SET customer = -1 WHERE id = 7;
   INSERT INTO accounts (id, owner) VALUES (1001, 'window')" >/dev/null
expect_eq "meanwhile a column-level sync computes what it did" \
  "$(q "SELECT email_lower FROM customers WHERE id = 1001")" "window@example.com"
expect_eq "a table-level sync mirrors" "$(q "SELECT customer FROM orders_v2 WHERE id = 7")" "-1"
expect_eq "a cut-over one mirrors back into the archive" \
  "$(q "SELECT owner FROM accounts_archive WHERE id = 1001")" "window"
sleep 2

# ---- the update, while pgbench writes, while a REPEATABLE READ
# transaction that took its snapshot before it waits to write, and while
# another transaction that read orders, so the update waits for it on that
# table, goes on to write customers, another synced table: the update must
# not hold that one while it waits (the two would deadlock).  The update
# starts once both have begun.
psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$DB" >"$WORK/rr.out" 2>&1 <<'SQL' &
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT 1;
SELECT pg_sleep(3);
UPDATE orders SET customer = -3 WHERE id = 9;
INSERT INTO customers (id, email) VALUES (1003, 'Repeatable@Example.COM');
SELECT 'it saw ' || extversion FROM pg_extension WHERE extname = 'pg_shift';
COMMIT;
SQL
rr=$!
psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$DB" >"$WORK/reader.out" 2>&1 <<'SQL' &
BEGIN;
SELECT 'it read customer ' || customer FROM orders WHERE id = 9;
SELECT pg_sleep(2);
INSERT INTO customers (id, email) VALUES (1004, 'Reader@Example.COM');
COMMIT;
SQL
reader=$!
for _ in $(seq 600); do
  [ -s "$WORK/rr.out" ] && grep -q "it read customer" "$WORK/reader.out" && break
  sleep 0.1
done
out=$(PGOPTIONS="-c client_min_messages=warning" psql -X -q -d "$DB" -v ON_ERROR_STOP=1 \
        -c "ALTER EXTENSION pg_shift UPDATE" 2>&1)
expect_eq "ALTER EXTENSION pg_shift UPDATE runs under load" "$?" 0
wait $rr
rc=$?
expect_eq "a REPEATABLE READ writer whose snapshot predates the update writes after it" "$rc" 0
[ "$rc" -eq 0 ] || sed 's/^/# rr: /' "$WORK/rr.out"
expect_in "(its snapshot did predate it)" "$(cat "$WORK/rr.out")" "it saw 0.1.0"
wait $reader
rc=$?
expect_eq "a writer that read orders before the update, then writes customers, does not deadlock with it" \
  "$rc" 0
expect_in "(it read orders before the update began)" "$(cat "$WORK/reader.out")" "it read customer 9"
expect_eq "and its write was synced" "$(q "SELECT email_lower FROM customers WHERE id = 1004")" "reader@example.com"
[ "$rc" -eq 0 ] || sed 's/^/# reader: /' "$WORK/reader.out"
expect_eq "through the new triggers" \
  "$(q "SELECT o.customer || ' ' || c.email_lower FROM orders_v2 o, customers c WHERE o.id = 9 AND c.id = 1003")" \
  "-3 repeatable@example.com"
expect_eq "to 0.2.0" "$(q "SELECT extversion FROM pg_extension WHERE extname = 'pg_shift'")" "0.2.0"
expect_in "it kept of the stored statements only the foreign key's" "$out" \
  'sync "accounts": of the statements its cut-over left to run, only those validating its foreign keys are kept'
expect_in "saying which it dropped" "$out" "Dropped: ALTER ROLE shift_operator SUPERUSER."
expect_eq "no statement is left to run but that validation" "$(q "SELECT shift.cutover_pending('accounts')")" \
  "ALTER TABLE public.ledger VALIDATE CONSTRAINT ledger_account_id_fkey"
expect_in "it says the unfinished backfill job waits for its definition" "$out" \
  'WARNING:  backfill job "orders_v2:backfill" of pg_shift 0.1.0 runs again once its definition is given again'
expect_eq "nothing else was said" "$(grep -c WARNING <<<"$out")" 2

expect_eq "every sync is sealed, its triggers made for the new digest" \
  "$(q "SELECT string_agg(name || '=' || definition_ok || '/' || enabled, ' ' ORDER BY name) FROM shift.sync_status")" \
  "accounts=true/true customers=true/true orders=true/true tags=true/false"
expect_eq "as they were: on the same tables, for the same events" \
  "$(q "SELECT string_agg(tgrelid::regclass || '.' || tgname, ' ' ORDER BY tgname) FROM pg_trigger
         WHERE tgfoid = 'shift_internal._sync_trigger'::regproc")" \
  "accounts.shift_sync_accounts_del accounts.shift_sync_accounts_ins accounts.shift_sync_accounts_trn accounts.shift_sync_accounts_upd customers.shift_sync_customers orders.shift_sync_orders_del orders.shift_sync_orders_ins orders.shift_sync_orders_trn orders.shift_sync_orders_upd tags.shift_sync_tags"
expect_eq "their search_path is pinned, \$user being the owner" \
  "$(q "SELECT DISTINCT search_path FROM shift.sync")" "postgres, public, pg_temp"
expect_eq "the backfill job is not sealed: 0.1.0's operators could have rewritten it" \
  "$(q "SELECT digest IS NULL AND checked IS NULL FROM shift.backfill")" t
err=$(psql -X -q -d "$DB" -c "CALL shift.backfill_run('orders_v2:backfill')" 2>&1)
expect_in "so it does not run yet" "$err" \
  'ERROR:  backfill job "orders_v2:backfill" was made by pg_shift 0.1.0 and has not been checked since'
expect_eq "the interrupted backfill phase is what 0.2.0 calls interrupted" "$(phase_status orders_v2)" \
  "expand=done sync=done backfill=interrupted validate=pending cutover=pending contract=pending"
expect_eq "and so is the migration, owned by the role that ran it" \
  "$(q "SELECT status || ' ' || owner FROM shift.migration")" "interrupted postgres"
expect_eq "the history is kept, and its ids go on from where they were" \
  "$(q "SELECT count(*) || ' ' || (SELECT last_value FROM shift.event_id_seq) FROM shift.event")" "$events_before"
q "INSERT INTO customers (id, email) VALUES (1002, 'After@Example.COM');
   UPDATE orders SET customer = -2 WHERE id = 8;
   INSERT INTO accounts (id, owner) VALUES (1002, 'after');
   INSERT INTO tags (id, name) VALUES (1, 'Disabled')" >/dev/null
expect_eq "after the update the syncs go on: column level" \
  "$(q "SELECT email_lower FROM customers WHERE id = 1002")" "after@example.com"
expect_eq "table level" "$(q "SELECT customer FROM orders_v2 WHERE id = 8")" "-2"
expect_eq "the cut-over one, back into the archive" "$(q "SELECT owner FROM accounts_archive WHERE id = 1002")" "after"
expect_eq "the disabled one stays disabled" "$(q "SELECT name_lower IS NULL FROM tags WHERE id = 1")" t

# ---- the 0.2.0 runner finishes the migration 0.1.0 began
pgshift --dsn "dbname=$DB" run "$f" --to cutover
expect_rc "the 0.2.0 runner resumes the migration to its cut-over, under load" 0
expect_in "going on with the interrupted backfill" "$OUT" "backfill orders_v2:backfill"
expect_eq "from 0.1.0's checkpoint: its three batches are kept, the next ones follow" \
  "$(q "SELECT min(batch) || ' ' || (count(*) = max(batch)) || ' ' || (count(*) > 3) FROM shift.backfill_batch")" \
  "1 true true"
expect_eq "the same job, walking to the bound it had fixed when it started" \
  "$(q "SELECT created_at || ' ' || upper_key_text FROM shift.backfill")" "$job_before"
expect_eq "its settings are the migration file's (batch_max 2000), not those recorded under 0.1.0 (1000)" \
  "$(q "SELECT batch_min || ' ' || batch_max FROM shift.backfill")" "100 2000"
expect_eq "given again by db:backfill, it was sealed as the runner's role, with the search_path it runs under" \
  "$(q "SELECT digest IS NOT NULL AND checked IS NOT NULL AND owner = 'postgres'
               AND search_path = 'postgres, public, pg_temp' FROM shift.backfill")" t
# Each key up to the bound once: at most the bound (ids start at 1), at least
# the keys still there (a job started over, counters kept, would be 3000 over).
walked=$(q "SELECT state || ' ' || keys_done || ' ' || upper_key_text || ' '
                   || (SELECT count(*) FROM orders_archive WHERE id <= upper_key_text::int) FROM shift.backfill")
read -r st done_keys bound present <<<"$walked"
if [ "$st" = done ] && [ "$done_keys" -le "$bound" ] && [ "$done_keys" -ge "$present" ]; then
  ok "once: it walked each key up to its bound once ($done_keys keys, bound $bound, $present still there)"
else
  not_ok "the job did not walk each key once: state, keys walked, bound, keys still there: $walked"
fi
expect_in "the copy compared equal" "$OUT" "orders and orders_v2 are equal"
expect_eq "orders is the bigint table now" "$(q "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
                                                  WHERE attrelid = 'orders'::regclass AND attname = 'id'")" "bigint"
sleep 2
load_stop window
expect_eq "the archive followed the live table through the reverse sync" \
  "$(q "SELECT count(*) FROM shift.compare('orders', 'orders_archive', columns => '{id,customer,amount,updated}')")" 0
# the schema the update left (nothing since changed it), now that pgbench is done
dropdb --if-exists --force it_upgrade_fresh 2>/dev/null
createdb it_upgrade_fresh && T_DBS+=(it_upgrade_fresh)
psql -X -q -d it_upgrade_fresh -c "CREATE EXTENSION pg_shift" >/dev/null
catalog_dump "$DB" >"$WORK/upgraded.dump"
catalog_dump it_upgrade_fresh >"$WORK/fresh.dump"
if diff -u "$WORK/fresh.dump" "$WORK/upgraded.dump" >"$WORK/schema.diff"; then
  ok "the upgraded schema is a fresh 0.2.0 install's ($(grep -c 'ALTER EXTENSION pg_shift ADD' "$WORK/fresh.dump") objects, their grants, policies and comments)"
else
  not_ok "the upgraded schema differs from a fresh 0.2.0 install's" "$(head -40 "$WORK/schema.diff")"
fi
# fixed_rows DB: the rows of pg_shift's tables that pg_dump does not keep
# (its configuration tables'), which the install script fills (phase_move...)
fixed_rows() {
  local t
  for t in $(psql -X -A -t -d "$1" -c "
      SELECT c.oid::regclass FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
       WHERE d.classid = 'pg_class'::regclass AND d.deptype = 'e' AND c.relkind = 'r'
         AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_shift')
         AND c.oid <> ALL (coalesce((SELECT extconfig FROM pg_extension WHERE extname = 'pg_shift'), '{}'))
       ORDER BY 1"); do
    echo "$t"
    psql -X -A -t -d "$1" -c "SELECT x::text FROM $t x ORDER BY 1"
  done
}
fixed_rows "$DB" >"$WORK/upgraded.rows"
if [ -s "$WORK/upgraded.rows" ] && [ "$(fixed_rows it_upgrade_fresh)" = "$(cat "$WORK/upgraded.rows")" ]; then
  ok "and so are the rows of its fixed tables ($(grep -c '^shift' "$WORK/upgraded.rows" | tr -d '\n') tables)"
else
  not_ok "the rows of pg_shift's fixed tables differ from a fresh install's" "$(cat "$WORK/upgraded.rows")"
fi

pgshift --dsn "dbname=$DB" run "$f"
expect_rc "and contracts" 0
expect_eq "the migration is done" "$(q "SELECT status FROM shift.migration")" "done"
expect_eq "its sync is gone" "$(q "SELECT count(*) FROM shift.sync WHERE name = 'orders'")" 0
expect_eq "through the restart and the update, the application wrote without a failure" \
  "$(load_failures window)" 0
n_before=$(load_transactions before); n_window=$(load_transactions window)
if [ "$n_before" -gt 50 ] && [ "$n_window" -gt 200 ]; then
  ok "pgbench really wrote ($n_before transactions on 0.1.0, $n_window on 0.2.0's library)"
else
  not_ok "pgbench wrote too little ($n_before, $n_window)" "$(load_errors window)"
fi

# ---- updates that must not happen stop, and change nothing
DB=it_upgrade_tampered
err=$(q "ALTER EXTENSION pg_shift UPDATE" 2>&1)
expect_in "a view of the user's on a table of pg_shift stops the update" "$err" \
  "ERROR:  objects outside pg_shift depend on objects of pg_shift 0.1.0, which the update replaces"
expect_in "naming it" "$err" "DETAIL:  view public.my_migrations depends on table shift.migration."
q "DROP VIEW my_migrations" >/dev/null
err=$(q "ALTER EXTENSION pg_shift UPDATE" 2>&1)
expect_in "so does a sync whose row was edited since its triggers were made" "$err" \
  "ERROR:  sync \"t\" is not what its triggers were made for"
expect_in "with what to do" "$err" "HINT:  Drop it with SELECT shift.sync_drop('t') and update again; then create it anew."
expect_eq "both left 0.1.0's objects as they were" \
  "$(q "SELECT extversion || ' ' || (SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'shift_sync_t_%')
         || ' ' || (to_regnamespace('shift_0_1_0') IS NULL) FROM pg_extension WHERE extname = 'pg_shift'")" "0.1.0 4 true"
q "SELECT shift.sync_drop('t')" >/dev/null
q "ALTER EXTENSION pg_shift UPDATE" >/dev/null
expect_eq "once it is dropped (by 0.1.0's sync_drop), the update goes through" \
  "$(q "SELECT extversion FROM pg_extension WHERE extname = 'pg_shift'")" "0.2.0"
err=$(psql -X -q -d "$DB" -c "CALL shift.backfill_run('notes:bump')" 2>&1)
expect_in "the rewritten job of 0.1.0 does not run after the update" "$err" \
  'ERROR:  backfill job "notes:bump" was made by pg_shift 0.1.0 and has not been checked since'
expect_eq "so its SQL ran as nobody: the operator is no superuser, no row was bumped" \
  "$(q "SELECT rolsuper || ' ' || (SELECT sum(n) FROM notes) FROM pg_roles WHERE rolname = 'upgrade_mallory'")" "false 0"
err=$(q "SELECT shift.backfill_set('notes:bump', clear_throttle_query => true)" 2>&1)
expect_in "changing its settings does not seal it either" "$err" \
  'ERROR:  backfill job "notes:bump" was made by pg_shift 0.1.0 and has not been checked since'
err=$(psql -X -q -d "$DB" -c "CALL shift.backfill_run('notes:bump')" 2>&1)
expect_eq "so it still runs nothing: the operator is no superuser, no row was bumped" \
  "$(q "SELECT rolsuper || ' ' || (SELECT sum(n) FROM notes) FROM pg_roles WHERE rolname = 'upgrade_mallory'")" "false 0"
err=$(q "SELECT shift.backfill_create('notes:bump', 'notes', set => 'n = n + 1', if_exists => 'reuse')" 2>&1)
expect_in "given its definition again, it is refused: it is not what the superuser asks for" "$err" \
  'backfill job "notes:bump" already exists with a different definition'
q "SELECT shift.backfill_drop('notes:bump')" >/dev/null
q "DROP SCHEMA mallory CASCADE; DROP ROLE upgrade_mallory" >/dev/null
