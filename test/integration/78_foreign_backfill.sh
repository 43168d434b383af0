#!/usr/bin/env bash
# Backfill from a foreign table: a real MariaDB (test/integration/mariadb.sh)
# read through mysql_fdw, and this cluster read back through postgres_fdw.
# The key is named as columns (key_columns); the batches' key range, order
# and limit reach the remote side (the plans auto_explain prints); MySQL's
# types are mapped on the way (select =>: TINYINT(1) -> boolean, DATETIME in
# a zone -> timestamptz, a zero date -> NULL, utf8mb4 text, JSON -> jsonb);
# the runner SIGKILLed and the backend terminated mid-backfill, each run
# resumes and every row arrives exactly once (EXCEPT ALL both ways against
# the foreign table itself).  A remote key that PostgreSQL orders otherwise
# and a NULL key are errors, not a walk that stands still or skips rows.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mariadb.sh"
trap 'mariadb_stop; cleanup' EXIT

mariadb_start_or_end

new_db foreign
ROWS=50000
mariadb_fdw_server maria

# ---- the MySQL table: the types a migration meets most
my "CREATE TABLE app.orders (
      id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
      customer_id INT NOT NULL,
      paid TINYINT(1) NOT NULL DEFAULT 0,
      status ENUM('new', 'paid', 'shipped') NOT NULL,
      amount DECIMAL(12, 2) NOT NULL,
      weight DOUBLE NULL,
      created DATETIME(6) NOT NULL,
      shipped DATE NULL,
      note VARCHAR(200) NULL,
      body TEXT NULL,
      code VARBINARY(16) NULL,
      doc JSON NULL
    ) CHARACTER SET utf8mb4;
    INSERT INTO app.orders
    SELECT seq, seq % 997, seq % 3 = 0, ELT(1 + seq % 3, 'new', 'paid', 'shipped'), seq * 1.25 / 3,
           IF(seq % 11 = 0, NULL, seq / 7e0), '2024-03-31 00:30:00' + INTERVAL seq * 61 SECOND,
           CASE WHEN seq % 10 = 0 THEN '0000-00-00' WHEN seq % 10 = 1 THEN NULL
                ELSE '2024-04-01' + INTERVAL seq % 300 DAY END,
           CONCAT('order ', seq, IF(seq % 5 = 0, ' crème brûlée 🐘', '')), REPEAT('x', seq % 50),
           UNHEX(LPAD(HEX(seq), 8, '0')), CONCAT('{\"n\": ', seq, ', \"tags\": [\"a\", \"b\"]}')
      FROM app.seq_1_to_$ROWS" || { not_ok "the MySQL table is filled"; exit 1; }
expect_eq "MariaDB holds $ROWS orders, some with a zero date" \
  "$(my "SELECT count(*), sum(shipped = '0000-00-00') FROM app.orders")" "$ROWS	5000"

# the foreign table as mysql_fdw reads it: a zero date is no PostgreSQL date,
# so the DATE column is read as text; DATETIME is a timestamp without zone
q "CREATE FOREIGN TABLE f_orders (
     id bigint NOT NULL, customer_id int NOT NULL, paid smallint NOT NULL, status text NOT NULL,
     amount numeric(12, 2) NOT NULL, weight float8, created timestamp NOT NULL, shipped text,
     note text, body text, code bytea, doc text)
   SERVER maria OPTIONS (dbname 'app', table_name 'orders');
   CREATE TABLE orders (
     id bigint PRIMARY KEY, customer_id int NOT NULL, paid boolean NOT NULL, status text NOT NULL,
     amount numeric(12, 2) NOT NULL, weight float8, created timestamptz NOT NULL, shipped date,
     note text, body text, code bytea, doc jsonb)"
SELECT_LIST="id, customer_id, paid <> 0, status, amount, weight, created AT TIME ZONE 'Europe/Berlin',
  CASE WHEN shipped LIKE '0000-%' THEN NULL ELSE shipped::date END, note, body, code, doc::jsonb"
# the oracle: what the copy must hold, computed from the foreign table itself
q "CREATE VIEW expected AS SELECT $SELECT_LIST FROM f_orders"

# ---- the batches' statements reach MariaDB with their key range, order and limit
q "SELECT shift.backfill_create('probe', 'f_orders', \"into\" => 'orders', key_columns => '{id}',
                                \"select\" => \$\$$SELECT_LIST\$\$, batch_min => 1000, batch_max => 1000)" >/dev/null
rq=$(remote_statements 'Remote query' "SELECT * FROM shift.backfill_step('probe');
                                       SELECT * FROM shift.backfill_step('probe');")
expect_in "the first batch's keys: the order and the limit are MariaDB's" "$rq" \
  'Remote query: SELECT `id` FROM `app`.`orders` WHERE ((`id` <= 50000)) ORDER BY `id` IS NULL, `id` ASC LIMIT 1000'
# after the first, an integer key's batches are ranges of computed width: no
# ORDER BY ... LIMIT, which MariaDB answered with a sort of every key left,
# each batch (batches shrank to 100 keys at 400 rows/s on 1 000 000 rows)
expect_eq "the next batch asks for no sorted keys: only the first batch's keys are sorted remotely" \
  "$(grep -c 'ORDER BY `id` IS NULL, `id` ASC LIMIT' <<<"$rq")" 1
expect_in "and its rows: the key range only" "$rq" \
  'FROM `app`.`orders` WHERE ((`id` > 1000)) AND ((`id` <= 2000))'
expect_in "the bound is MariaDB's largest key" "$rq" \
  'Remote query: SELECT `id` FROM `app`.`orders` ORDER BY `id` IS NOT NULL, `id` DESC LIMIT 1'
expect_in "NULL keys are looked for on the remote side" "$rq" \
  'Remote query: SELECT NULL FROM `app`.`orders` WHERE ((`id` IS NULL)) LIMIT 1'
expect_eq "the rolled-back steps left nothing behind" \
  "$(q "SELECT count(*) FROM orders") $(q "SELECT keys_done FROM shift.backfill WHERE name = 'probe'")" "0 0"
q "SELECT shift.backfill_drop('probe')" >/dev/null

# ---- an integer key with gaps and a dense block past one: every row copied
# once, a gap costs a batch, and no range holds more than batch_max rows
# (ranges that doubled across the gap took the whole block in one batch)
my "CREATE TABLE app.sparse (id BIGINT NOT NULL PRIMARY KEY, v VARCHAR(20) NOT NULL);
    INSERT INTO app.sparse VALUES (-5, 'a'), (1, 'b'), (2, 'c'), (3, 'd'), (1000000, 'e'), (1000001, 'f'),
                                  (5000000000, 'g'), (9223372036854775806, 'h');
    INSERT INTO app.sparse SELECT 1099511627776 + seq, 'dense' FROM app.seq_1_to_3000"
q "CREATE FOREIGN TABLE f_sparse (id bigint NOT NULL, v text NOT NULL) SERVER maria OPTIONS (dbname 'app', table_name 'sparse');
   CREATE TABLE sparse (id bigint PRIMARY KEY, v text NOT NULL);
   SELECT shift.backfill_create('sparse', 'f_sparse', \"into\" => 'sparse', key_columns => '{id}', batch_min => 2, batch_max => 100)" >/dev/null
q "CALL shift.backfill_run('sparse')"
expect_eq "across gaps of up to 2^63 the copy has every row once" \
  "$(q "SELECT count(*) || ' ' || (SELECT count(*) FROM (TABLE f_sparse EXCEPT ALL TABLE sparse) x) FROM sparse")" "3008 0"
expect_eq "no batch took more than batch_max (100) keys, and gaps cost few batches" \
  "$(q "SELECT b.state || ' ' || (SELECT max(keys) <= 100 FROM shift.backfill_batch WHERE job = 'sparse')::text
               || ' ' || (b.batches < 80)::text FROM shift.backfill b WHERE b.name = 'sparse'")" "done true true"
q "SELECT shift.backfill_drop('sparse')" >/dev/null

# ---- pgshift runs it; SIGKILLed mid-backfill, then its backend terminated
f=$(mig maria <<LUA
return migration { name = "maria", phases = {
  { name = "copy",
    up = function(db)
      db:backfill { table = "f_orders", into = "orders", key_columns = { "id" },
                    select = [[$SELECT_LIST]],
                    batch_min = 500, batch_max = 500, sleep_ratio = 2, max_lag = false }
    end,
    down = function(db) db:exec("TRUNCATE orders") end },
} }
LUA
)
runner_bg run1 --dsn "dbname=$DB" run "$f"
kill_runner_at maria:copy 3000 "$ROWS"
wait_for "the killed runner's session stops" 15 \
  "SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE query LIKE 'CALL shift.backfill_run%')"
expect_eq "what the killed run committed is in the copy, no more" \
  "$(q "SELECT count(*) FROM orders")" "$(job_keys maria:copy)"

runner_bg run2 --dsn "dbname=$DB" run "$f" --lock-wait 10
from=$(job_keys maria:copy)
wait_for "the second run goes on" 30 "SELECT keys_done >= $from + 2000 FROM shift.backfill WHERE name = 'maria:copy'"
q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'CALL shift.backfill_run(%'" >/dev/null
wait "$RUNNER"
expect_eq "the run whose backend was terminated failed" "$?" 1
at_term=$(job_keys maria:copy)
expect_eq "it stopped part way ($at_term of $ROWS keys)" "$(( at_term > from && at_term < ROWS ))" 1
expect_in "it took over the killed runner's lease" "$(cat "$WORK/run2.out")" "taking over from pgshift pid"

q "SELECT shift.backfill_set('maria:copy', batch_max => 50000, sleep_ratio => 0)" >/dev/null
start=$(date +%s.%N)
pgshift --dsn "dbname=$DB" run "$f" --lock-wait 10
expect_rc "the third run finishes the backfill" 0
echo "# the rest ($(( ROWS - at_term )) rows) went at about $(q "SELECT round(($ROWS - $at_term)
  / extract(epoch FROM clock_timestamp() - to_timestamp($start)))") rows/s"
expect_eq "the job walked every key once, in batches that grew" \
  "$(q "SELECT state, keys_done, rows_done, max(bb.batch_size) > 500 FROM shift.backfill b
          JOIN shift.backfill_batch bb ON bb.job = b.name WHERE b.name = 'maria:copy'
         GROUP BY state, keys_done, rows_done" | tr '|' ' ')" "done $ROWS $ROWS t"
# the foreign table read once, as the oracle's side of both comparisons
q "CREATE TABLE expected_rows AS SELECT * FROM expected"
expect_eq "no row lost: foreign table EXCEPT ALL copy is empty" "$(q "SELECT count(*) FROM (TABLE expected_rows EXCEPT ALL TABLE orders) x")" 0
expect_eq "no row doubled: copy EXCEPT ALL foreign table is empty" "$(q "SELECT count(*) FROM (TABLE orders EXCEPT ALL TABLE expected_rows) x")" 0
expect_eq "the types arrived mapped: booleans, zero dates as NULL, NULL dates, instants in Berlin, JSON" \
  "$(q "SELECT count(*) FILTER (WHERE paid), count(*) FILTER (WHERE shipped IS NULL),
               (SELECT created FROM orders WHERE id = 1) = '2024-03-30 23:31:01+00',
               (SELECT doc -> 'tags' ->> 1 FROM orders WHERE id = 7)
          FROM orders" | tr '|' ' ')" "16666 10000 t b"
expect_eq "utf8mb4 text arrived whole" "$(q "SELECT note FROM orders WHERE id = 5")" "order 5 crème brûlée 🐘"
expect_eq "and VARBINARY as bytea" "$(q "SELECT code FROM orders WHERE id = 258")" '\x00000102'

# ---- postgres_fdw: a loopback server on this cluster, a two-column key
q "CREATE EXTENSION postgres_fdw;
   CREATE SERVER loop FOREIGN DATA WRAPPER postgres_fdw
     OPTIONS (host '$PGHOST', port '$PGPORT', dbname '$DB');
   CREATE USER MAPPING FOR CURRENT_USER SERVER loop;
   CREATE TABLE pg_src AS SELECT * FROM orders;
   ALTER TABLE pg_src ADD PRIMARY KEY (customer_id, id);
   ANALYZE pg_src;
   CREATE FOREIGN TABLE f_pg (id bigint, customer_id int, paid boolean, status text, amount numeric(12, 2),
     weight float8, created timestamptz, shipped date, note text, body text, code bytea, doc jsonb)
     SERVER loop OPTIONS (table_name 'pg_src');
   CREATE TABLE pg_copy (LIKE pg_src INCLUDING ALL)"
q "SELECT shift.backfill_create('loop', 'f_pg', \"into\" => 'pg_copy', key_columns => '{customer_id,id}',
                                batch_min => 800, batch_max => 800, max_lag => NULL)" >/dev/null
rq=$(remote_statements 'Remote SQL' "SELECT * FROM shift.backfill_step('loop');
                                     SELECT * FROM shift.backfill_step('loop');")
# the second batch's key search: after the checkpoint (c, i), up to the bound, each column on its own
re='Remote SQL: SELECT id, customer_id FROM public\.pg_src WHERE \(\(customer_id >= [0-9]+\)\) AND \(\(customer_id <= 996\)\) AND \(\(\(customer_id > [0-9]+\) OR \(\(customer_id = [0-9]+\) AND \(id > [0-9]+::bigint\)\)\)\) AND .* ORDER BY customer_id ASC NULLS LAST, id ASC NULLS LAST'
if grep -qE "$re" <<<"$rq"; then ok "postgres_fdw: a two-column key's range and order reach the remote side"
else not_ok "postgres_fdw: the key search is not sent whole" "$rq"; fi
q "SELECT shift.backfill_set('loop', sleep_ratio => 4)" >/dev/null
psql -X -q -d "$DB" -c "CALL shift.backfill_run('loop')" >"$WORK/loop.out" 2>&1 &
bg=$!
wait_for "the postgres_fdw job is under way" 30 "SELECT keys_done >= 4000 FROM shift.backfill WHERE name = 'loop'"
q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = 'CALL shift.backfill_run(''loop'')'" >/dev/null
wait "$bg"
at_term=$(job_keys loop)
expect_eq "its backend terminated, it stopped part way ($at_term of $ROWS keys)" "$(( at_term > 0 && at_term < ROWS ))" 1
q "SELECT shift.backfill_set('loop', sleep_ratio => 0, batch_max => 50000)" >/dev/null
q "CALL shift.backfill_run('loop')"
expect_eq "resumed, it walked every key once" "$(q "SELECT state || ' ' || keys_done FROM shift.backfill WHERE name = 'loop'")" "done $ROWS"
expect_eq "and the copy equals the source, row for row (EXCEPT ALL both ways)" \
  "$(q "SELECT (SELECT count(*) FROM (TABLE f_pg EXCEPT ALL TABLE pg_copy) a) + (SELECT count(*) FROM (TABLE pg_copy EXCEPT ALL TABLE f_pg) b)")" 0

# ---- a remote key PostgreSQL orders otherwise, a NULL key: errors
my "CREATE TABLE app.names (name VARCHAR(20) COLLATE utf8mb4_general_ci PRIMARY KEY, n INT) CHARACTER SET utf8mb4;
    INSERT INTO app.names VALUES ('B', 1), ('a', 2), ('c', 3);
    CREATE TABLE app.holes (k INT NULL, n INT, UNIQUE KEY (k));
    INSERT INTO app.holes VALUES (1, 1), (NULL, 2), (3, 3)"
q "CREATE FOREIGN TABLE f_names (name text COLLATE \"C\", n int) SERVER maria OPTIONS (dbname 'app', table_name 'names');
   CREATE TABLE names (name text PRIMARY KEY, n int);
   CREATE FOREIGN TABLE f_holes (k int, n int) SERVER maria OPTIONS (dbname 'app', table_name 'holes');
   CREATE TABLE holes (k int, n int);
   SELECT shift.backfill_create('names', 'f_names', \"into\" => 'names', key_columns => '{name}', batch_min => 1, batch_max => 1);
   SELECT shift.backfill_create('holes', 'f_holes', \"into\" => 'holes', key_columns => '{k}')" >/dev/null
err=$(psql -X -q -d "$DB" -v VERBOSITY=verbose -c "CALL shift.backfill_run('names')" 2>&1)
expect_in "a case-insensitive remote key: the walk stops (SQLSTATE 22000)" "$err" \
  'ERROR:  22000: the key of foreign table public.f_names did not move past the checkpoint of backfill job "names"'
expect_in "saying where" "$err" "After key a the remote side returned key B"
expect_eq "the job is failed, its checkpoint after the one batch that was right" \
  "$(q "SELECT state, last_key, last_sqlstate FROM shift.backfill_progress WHERE name = 'names'" | tr '|' ' ')" "failed a 22000"
err=$(psql -X -q -d "$DB" -v VERBOSITY=verbose -c "CALL shift.backfill_run('holes')" 2>&1)
expect_in "a NULL remote key is refused before any batch (SQLSTATE 23502)" "$err" \
  'ERROR:  23502: foreign table public.f_holes has rows whose key is NULL'
expect_eq "and nothing was copied" "$(q "SELECT count(*) FROM holes")" 0

echo "# 78 took ${SECONDS}s"
