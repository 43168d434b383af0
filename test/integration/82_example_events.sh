#!/usr/bin/env bash
# Example (4), scripts/examples/events_partition_by_month.lua, end to end on a
# busy table: pgbench (4 clients, as a role that does not own events) inserts,
# updates -- moving rows to another month's partition, or to the default one --
# and deletes events all the time while the migration runs, and three faults
# are injected:
#   - the runner is SIGKILLed in the middle of the backfill;
#   - the server is stopped with -m immediate and restarted mid-backfill;
#   - the runner's backend is terminated while the cut-over waits for locks.
# Each time the next run goes on and completes.  At the end pgbench saw no
# failed transaction, shift.compare finds no difference (forward, and in
# reverse after the cut-over and after its rollback), and the bookkeeping
# tells the true story, failures included.  Then, on a small fresh table, the
# migration is rolled back from each phase before its point of no return.
# It restarts the server: test/harness.sh runs no background file beside it.
# harness: alone
. "$(dirname "$0")/lib.sh"

EX=$PGSHIFT_ROOT/scripts/examples/events_partition_by_month.lua
ROWS=${EX_EVENTS_ROWS:-120000}
JOB=events_partition_by_month:backfill
MIG=events_partition_by_month

# make_events N: the table the example expects, N rows spread over 2025-2026
make_events() {
  q "CREATE TABLE events (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT now(),
                          kind text NOT NULL, payload jsonb);
     CREATE INDEX events_kind_created_at_idx ON events (kind, created_at);
     INSERT INTO events (created_at, kind, payload)
          SELECT timestamptz '2025-01-01 00:00+00' + (g::float8 / $1) * interval '700 days',
                 'k' || (g % 7), jsonb_build_object('n', g, 'tag', 't' || (g % 13))
            FROM generate_series(1, $1) g;
     GRANT SELECT, INSERT, UPDATE, DELETE ON events TO ex_events_app;
     GRANT USAGE ON SEQUENCE events_id_seq TO ex_events_app;
     ANALYZE events"
}
same_rows() { q "SELECT count(*) FROM shift.compare('$1', '$2', key => '{id,created_at}', target_key => '{id,created_at}')"; }

new_db ex_events
q "CREATE ROLE ex_events_app LOGIN" 2>/dev/null
make_events "$ROWS"

# the application, as its own role: new events arrive, payloads change, some
# events move to another month (another partition) or out of the partitioned
# range (into the default partition), some are deleted
cat >"$WORK/app.sql" <<SQL
\\set id random(1, $ROWS)
\\set op random(1, 10)
\\set d random(-90, 90)
BEGIN;
INSERT INTO events (kind, payload) VALUES ('k' || :op, jsonb_build_object('new', :id));
UPDATE events SET payload = payload || jsonb_build_object('seen', :op) WHERE id = :id;
UPDATE events SET created_at = created_at + :d * interval '1 day' WHERE :op <= 2 AND id = :id + 1;
UPDATE events SET created_at = timestamptz '2030-01-01' WHERE :op = 3 AND id = :id + 2;
DELETE FROM events WHERE :op = 10 AND id = :id + 3;
END;
SQL

pgshift --dsn "dbname=$DB" plan --format markdown "$EX"
expect_rc "the example's plan renders" 0
expect_in "as a document to review" "$OUT" "# Migration plan: events_partition_by_month"
expect_in "that shows the partitions" "$OUT" "PARTITION OF events_v2 FOR VALUES FROM ('2026-12-01') TO ('2027-01-01')"
pgshift --dsn "dbname=$DB" lint "$EX"
expect_rc "and lints without a HIGH finding" 0

load_start load1 "$WORK/app.sql" 4 ex_events_app
sleep 1
pgshift --dsn "dbname=$DB" run "$EX" --to sync
expect_rc "expand and sync run under load" 0
expect_eq "events_v2 is partitioned by range into 24 months and a default" \
  "$(q "SELECT p.partstrat::text || ' ' || count(*) FROM pg_partitioned_table p JOIN pg_inherits i ON i.inhparent = p.partrelid
         WHERE p.partrelid = 'events_v2'::regclass GROUP BY p.partstrat")" "r 25"
expect_eq "its key includes the partition key" \
  "$(q "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'events_v2'::regclass AND contype = 'p'")" \
  "PRIMARY KEY (id, created_at)"

# ---- fault 1: the runner SIGKILLed mid-backfill
slow_example_job "$JOB" events events_partition_by_month "\"into\" => 'events_v2', on_conflict => 'nothing'"
runner_bg run1 --dsn "dbname=$DB" run "$EX" --to validate
kill_runner_at "$JOB" 15000 "$ROWS"

# ---- fault 2: the server crashes (-m immediate) while the resumed run backfills
crash_mid_backfill "$JOB" "$ROWS" load1 --dsn "dbname=$DB" run "$EX" --to validate --lock-wait 15
full_speed "$JOB"
# Around the cut-over, its rollback and the contract, an application transaction
# has (rarely, under a loaded machine) been chosen as a deadlock victim: it is
# retried, as an application retries 40P01, and the retries are reported.
# Which lock pair deadlocks is not known yet (see the notes).
LOAD_OPTS=--max-tries=5 load_start load2 "$WORK/app.sql" 4 ex_events_app
sleep 1
pgshift --dsn "dbname=$DB" run "$EX" --to validate --lock-wait 15
expect_rc "after the restart the run completes backfill and validate, under load" 0
expect_in "validate found the copy equal" "$OUT" "events and events_v2 are equal"
expect_eq "the one backfill job finished over the three runs" \
  "$(q "SELECT state || ' ' || (keys_done >= $ROWS) FROM shift.backfill WHERE name = '$JOB'")" "done true"
expect_eq "rows moved out of the monthly range live in the default partition" \
  "$(q "SELECT count(*) > 0 AND bool_and(created_at < '2025-01-01' OR created_at >= '2027-01-01') FROM events_default")" t

# ---- fault 3: the runner's backend terminated while the cut-over waits for locks
terminate_mid_cutover events --dsn "dbname=$DB" run "$EX"
expect_eq "events is the partitioned table now" "$(q "SELECT relkind FROM pg_class WHERE oid = 'events'::regclass")" p
expect_eq "its partitions came along" "$(q "SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass")" 25
expect_eq "the sequence belongs to the new table" \
  "$(q "SELECT refobjid::regclass FROM pg_depend WHERE objid = 'events_id_seq'::regclass AND deptype = 'a'")" events
expect_eq "the application role kept its grants" \
  "$(q "SELECT has_table_privilege('ex_events_app', 'events', 'INSERT,UPDATE,DELETE')")" t
sleep 3
expect_eq "under load, the reverse sync keeps the archive equal" "$(same_rows events events_archive)" 0

# ---- the rollback of the cut-over, under load, loses nothing
pgshift --dsn "dbname=$DB" rollback "$EX" --to validate
expect_rc "the cut-over rolls back under load" 0
sleep 2
expect_eq "events is the plain table again" "$(q "SELECT relkind FROM pg_class WHERE oid = 'events'::regclass")" r
expect_eq "and events_v2 follows it again" "$(same_rows events events_v2)" 0

# ---- cut over for good and contract
pgshift --dsn "dbname=$DB" run "$EX"
expect_rc "cut-over and contract" 0
expect_eq "the archive is gone and the sync with it" \
  "$(q "SELECT (to_regclass('events_archive') IS NULL) AND NOT EXISTS (SELECT FROM shift.sync)")" t
load_stop load2
echo "# pgbench (load2) retried $(load_retried load2) transaction(s) after a deadlock"
expect_no_load_failures load1 load2
expect_eq "the sequence survived the archive's drop, ahead of every id" \
  "$(q "SELECT last_value >= (SELECT max(id) FROM events) FROM events_id_seq")" t
expect_eq "new rows still get ids" "$(q "INSERT INTO events (kind) VALUES ('after') RETURNING id > $ROWS")" t
expect_faulted_history $MIG

# ---- on a small fresh table: from each phase before the contract, a rollback
# undoes everything and leaves events as it was
new_db ex_events_rb
make_events 3000
before=$(q "SELECT count(*) || ':' || sum(hashtext(e::text)) FROM events e")
for to in expand sync backfill validate cutover; do
  pgshift --dsn "dbname=$DB" run "$EX" --to "$to" -q
  expect_rc "a fresh run up to $to" 0
  pgshift --dsn "dbname=$DB" rollback "$EX" -q
  expect_rc "rolls back from $to to the start" 0
  expect_eq "after the rollback from $to: events is the plain table with its rows, nothing of the migration is left" \
    "$(q "SELECT (SELECT relkind::text FROM pg_class WHERE oid = 'events'::regclass)
                 || ' ' || (SELECT count(*) || ':' || sum(hashtext(e::text)) FROM events e)
                 || ' ' || (to_regclass('events_v2') IS NULL AND to_regclass('events_archive') IS NULL
                            AND NOT EXISTS (SELECT FROM shift.sync) AND NOT EXISTS (SELECT FROM shift.backfill))")" \
    "r $before true"
done
