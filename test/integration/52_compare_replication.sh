#!/usr/bin/env bash
# pgshift compare between two servers in a replication relationship reads
# both at one WAL position: the upstream side's snapshot first, the
# downstream side's once it has applied that position.  A logical
# subscription (the second cluster publishes, the harness's cluster
# subscribes) and a physical standby (a base backup of the second cluster);
# in each, writes the downstream side has not applied yet when the compare
# starts are waited for instead of being reported (with --recheck 0, so the
# recheck cannot hide them).
# It starts clusters on the ports after the harness's one: test/harness.sh
# runs no background file beside it.
# harness: alone
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/cluster.sh"

new_db repl
second_cluster_start || { echo "Bail out! could not start a second cluster"; exit 1; }
STANDBY=""
stop_all() {
  [ -z "$STANDBY" ] || _second_as_owner "$PGSHIFT_PGBIN/pg_ctl" -D "$STANDBY/data" -m immediate -w stop >/dev/null 2>&1
  [ -z "$STANDBY" ] || rm -rf "$STANDBY"
  q "DROP SUBSCRIPTION IF EXISTS sub" >/dev/null 2>&1
  second_cluster_stop; cleanup
}
trap stop_all EXIT

# logical decoding needs wal_level = logical on the publisher
echo "wal_level = logical" >>"$SECOND_HOST/data/postgresql.conf"
_second_as_owner "$PGSHIFT_PGBIN/pg_ctl" -D "$SECOND_HOST/data" -l "$SECOND_HOST/server.log" -w -t 60 restart \
  >/dev/null || { echo "Bail out! could not restart the second cluster"; exit 1; }
createdb -h "$SECOND_HOST" -p "$SECOND_PORT" -U postgres "$DB"
q2() { psql -X -q -A -t -v ON_ERROR_STOP=1 -h "$SECOND_HOST" -p "$SECOND_PORT" -U postgres -d "$DB" -c "$1"; }
SRC="$SECOND_DSN dbname=$DB"
TGT="dbname=$DB"

table="CREATE TABLE t (id int PRIMARY KEY, v int, note text)"
q2 "CREATE EXTENSION pg_shift; $table; INSERT INTO t SELECT g, 0, 'n' || g FROM generate_series(1, 20000) g;
    CREATE PUBLICATION pub FOR TABLE t"
q "$table"
q "CREATE SUBSCRIPTION sub CONNECTION '$SECOND_DSN dbname=$DB' PUBLICATION pub"
wait_for "the subscription copies the table" 60 \
  "SELECT count(*) = 1 AND bool_and(srsubstate = 'r') FROM pg_subscription_rel"

# ---- the subscriber has not applied the latest writes when the compare starts:
# a session there holds row 1, which the publisher's next transaction
# changes, so applying it waits 2 s
psql -X -q -d "$DB" -c "BEGIN; SELECT 1 FROM t WHERE id = 1 FOR UPDATE; SELECT pg_sleep(2); COMMIT" >/dev/null &
locker=$!
wait_for "the row is held" 10 "SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'transactionid' AND pid <> pg_backend_pid()"
q2 "UPDATE t SET v = v + 1 WHERE id <= 500; DELETE FROM t WHERE id = 777; INSERT INTO t VALUES (20001, 1, 'new')"
start=$(date +%s.%N)
pgshift compare --source "$SRC" --target "$TGT" --table t --recheck 0 --json
took=$(awk "BEGIN { print $(date +%s.%N) - $start }")
wait $locker
summary=$(tail -1 <<<"$OUT")
expect_rc "502 rows written on the publisher, not yet applied on the subscriber: equal" 0
expect_eq "no row is reported at all" "$(grep -c '"event":"difference"' <<<"$OUT")" 0
expect_eq "the compare waited for the subscription (${took}s)" "$(awk "BEGIN { print ($took >= 1.0) }")" 1
lsn=$(json_field "$summary" '{lsn}')
expect_eq "and says at which WAL position both were read ($lsn)" \
  "$(q2 "SELECT '$lsn'::pg_lsn <= pg_current_wal_flush_lsn()")" t
expect_eq "the source's rows are counted at that point" "$(json_field "$summary" '{source_rows}')" 20000

# ---- a difference the subscription does not carry is still found
q "UPDATE t SET note = 'local' WHERE id = 5"
pgshift compare --source "$SRC" --target "$TGT" --table t --recheck 0
expect_rc "a row changed on the subscriber alone is a difference" 1
expect_in "and is listed" "$OUT" "different          {5}"
q "UPDATE t SET note = 'n5' WHERE id = 5"

# ---- writers on the publisher during the compare: no difference, none in flight
(
  for i in $(seq 1 30); do
    psql -X -q -h "$SECOND_HOST" -p "$SECOND_PORT" -U postgres -d "$DB" \
      -c "UPDATE t SET v = v + 1 WHERE id BETWEEN $((i * 100)) AND $((i * 100 + 50))" >/dev/null 2>&1
    sleep 0.05
  done
) &
writer=$!
pgshift compare --source "$SRC" --target "$TGT" --table t --json
wait $writer
summary=$(tail -1 <<<"$OUT")
expect_rc "publisher written to during the compare: equal" 0
expect_eq "nothing different" "$(json_field "$summary" '{different}')" 0
q "DROP SUBSCRIPTION sub"

# ---- a physical standby whose replay is paused
STANDBY=$(mktemp -d /tmp/pgshift-standby.XXXXXX)
chmod 755 "$STANDBY"
[ "$(id -u)" -ne 0 ] || chown postgres: "$STANDBY"
SPORT=$((SECOND_PORT + 1))
_second_as_owner "$PGSHIFT_PGBIN/pg_basebackup" -h "$SECOND_HOST" -p "$SECOND_PORT" -U postgres -D "$STANDBY/data" -R -c fast \
  >"$STANDBY/backup.log" 2>&1 || { cat "$STANDBY/backup.log"; echo "Bail out! pg_basebackup failed"; exit 1; }
cat >>"$STANDBY/data/postgresql.conf" <<CONF
port = $SPORT
unix_socket_directories = '$STANDBY'
CONF
_second_as_owner "$PGSHIFT_PGBIN/pg_ctl" -D "$STANDBY/data" -l "$STANDBY/server.log" -w -t 60 start >/dev/null \
  || { cat "$STANDBY/server.log"; echo "Bail out! the standby did not start"; exit 1; }
qs() { psql -X -q -A -t -v ON_ERROR_STOP=1 -h "$STANDBY" -p "$SPORT" -U postgres -d "$DB" -c "$1"; }
for i in $(seq 1 100); do [ "$(qs "SELECT pg_is_in_recovery()" 2>/dev/null)" = t ] && break; sleep 0.1; done
qs "SELECT pg_wal_replay_pause()" >/dev/null
q2 "UPDATE t SET v = v + 1 WHERE id > 19000"
( sleep 2; qs "SELECT pg_wal_replay_resume()" >/dev/null ) &
resumer=$!
pgshift compare --source "$SRC" --target "host=$STANDBY port=$SPORT user=postgres dbname=$DB" --table t --recheck 0 --json
wait $resumer
summary=$(tail -1 <<<"$OUT")
expect_rc "1 000 rows written on the primary while the standby's replay was paused: equal" 0
expect_eq "read at one WAL position" "$(json_field "$summary" '{lsn}' | grep -c /)" 1
