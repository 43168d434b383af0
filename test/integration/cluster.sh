# A second throwaway cluster beside the harness's one (sourced by tests and
# benchmarks that compare two servers).  It runs as the postgres user on a
# Unix socket in its own temporary directory, with pg_shift installable;
# second_cluster_stop removes it.  Sets SECOND_HOST, SECOND_PORT, SECOND_DSN.

_second_as_owner() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

second_cluster_start() {
  SECOND_HOST=$(mktemp -d /tmp/pgshift-second.XXXXXX)
  chmod 755 "$SECOND_HOST"
  [ "$(id -u)" -ne 0 ] || chown postgres: "$SECOND_HOST"
  SECOND_PORT=$(( PGPORT + 1 ))
  SECOND_DSN="host=$SECOND_HOST port=$SECOND_PORT user=postgres"
  _second_as_owner "$PGSHIFT_PGBIN/initdb" -D "$SECOND_HOST/data" -U postgres --auth=trust -E UTF8 \
    --locale=C --no-sync >"$SECOND_HOST/initdb.log" 2>&1 || { cat "$SECOND_HOST/initdb.log" >&2; return 1; }
  cat >>"$SECOND_HOST/data/postgresql.conf" <<CONF
listen_addresses = ''
port = $SECOND_PORT
unix_socket_directories = '$SECOND_HOST'
fsync = off
full_page_writes = off
log_min_messages = warning
CONF
  _second_as_owner "$PGSHIFT_PGBIN/pg_ctl" -D "$SECOND_HOST/data" -l "$SECOND_HOST/server.log" -w -t 60 start \
    >/dev/null || { cat "$SECOND_HOST/server.log" >&2; return 1; }
  export SECOND_HOST SECOND_PORT SECOND_DSN
}

second_cluster_stop() {
  [ -n "${SECOND_HOST:-}" ] || return 0
  _second_as_owner "$PGSHIFT_PGBIN/pg_ctl" -D "$SECOND_HOST/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$SECOND_HOST"
  SECOND_HOST=""
}

# ---- a pair of clusters with wal_level = logical of the caller's own (the
# move benchmarks, test/bench/move_*.sh): unlike the shared pair below, made
# afresh (two second_cluster_start, restarted with wal_level = logical) and
# removed by own_pair_stop, which the caller puts in its EXIT trap before it
# calls own_pair_start.  A on port PGPORT + 1, B on PGPORT + 2.  Sets
# A_HOST, A_PORT, B_HOST, B_PORT.
own_pair_start() {
  local saved=$PGPORT h rc=0
  second_cluster_start >/dev/null || rc=1
  A_HOST=$SECOND_HOST A_PORT=$SECOND_PORT
  [ $rc -eq 0 ] || return 1
  PGPORT=$(( PGPORT + 1 ))
  second_cluster_start >/dev/null || rc=1
  PGPORT=$saved
  B_HOST=$SECOND_HOST B_PORT=$SECOND_PORT
  [ $rc -eq 0 ] || return 1
  export A_HOST A_PORT B_HOST B_PORT
  for h in "$A_HOST" "$B_HOST"; do
    echo "wal_level = logical" >>"$h/data/postgresql.conf"
    _second_as_owner "$PGSHIFT_PGBIN/pg_ctl" -D "$h/data" -l "$h/server.log" -w -t 60 restart \
      >/dev/null || { cat "$h/server.log" >&2; return 1; }
  done
}

own_pair_stop() {
  SECOND_HOST=${B_HOST:-}; second_cluster_stop
  SECOND_HOST=${A_HOST:-}; second_cluster_stop
  A_HOST="" B_HOST=""
}

# ---- the pair of clusters with wal_level = logical that the move tests
# (73_move_tables, 76_move_cutover) share: A on port PGPORT + 3, B on
# PGPORT + 4 (clear of the second cluster's and 41's standby's port).  The
# first file that calls logical_pair_start makes them (one initdb, copied
# for B) under the harness's directory, PGSHIFT_TMP; the files after it
# reuse them, and test/harness.sh stops them at its end.  A file that uses
# them removes what it made there before it exits (logical_pair_clean).
# Sets A_HOST, A_PORT, B_HOST, B_PORT (and A_DSN, B_DSN without a dbname).
logical_pair_start() {
  local dir=${PGSHIFT_TMP:?run through test/harness.sh}/logical-pair s
  A_HOST=$dir/a B_HOST=$dir/b A_PORT=$(( PGPORT + 3 )) B_PORT=$(( PGPORT + 4 ))
  A_DSN="host=$A_HOST port=$A_PORT user=postgres" B_DSN="host=$B_HOST port=$B_PORT user=postgres"
  export A_HOST B_HOST A_PORT B_PORT A_DSN B_DSN
  if [ -e "$dir/ready" ]; then
    for s in "$A_HOST:$A_PORT" "$B_HOST:$B_PORT"; do
      "$PGSHIFT_PGBIN/pg_isready" -q -h "${s%:*}" -p "${s#*:}" || { echo "# the logical pair's $s is not up" >&2; return 1; }
    done
    return 0
  fi
  mkdir -p "$A_HOST" "$B_HOST"
  chmod 755 "$dir" "$A_HOST" "$B_HOST"
  [ "$(id -u)" -ne 0 ] || chown postgres: "$dir" "$A_HOST" "$B_HOST"
  _second_as_owner "$PGSHIFT_PGBIN/initdb" -D "$A_HOST/data" -U postgres --auth=trust -E UTF8 \
    --locale=C --no-sync >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; return 1; }
  cat >>"$A_HOST/data/postgresql.conf" <<CONF
listen_addresses = ''
fsync = off
full_page_writes = off
log_min_messages = warning
wal_level = logical
CONF
  _second_as_owner cp -a "$A_HOST/data" "$B_HOST/data" || return 1
  for s in "$A_HOST:$A_PORT" "$B_HOST:$B_PORT"; do
    printf "port = %s\nunix_socket_directories = '%s'\n" "${s#*:}" "${s%:*}" >>"${s%:*}/data/postgresql.conf"
    _second_as_owner "$PGSHIFT_PGBIN/pg_ctl" -D "${s%:*}/data" -l "${s%:*}/server.log" -w -t 60 start \
      >/dev/null || { cat "${s%:*}/server.log" >&2; return 1; }
  done
  touch "$dir/ready"
}

# logical_pair_clean DB: drops database DB on A and B, with the
# subscriptions in it and the slots of the moves made from it (its
# publications' names), so that the next file finds the pair as it was.
logical_pair_clean() {
  local s sub
  for s in "$A_HOST:$A_PORT" "$B_HOST:$B_PORT"; do
    for sub in $(psql -X -A -t -h "${s%:*}" -p "${s#*:}" -U postgres -d postgres -c \
        "SELECT subname FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid WHERE d.datname = '$1'" 2>/dev/null); do
      psql -X -q -h "${s%:*}" -p "${s#*:}" -U postgres -d "$1" -c "ALTER SUBSCRIPTION $sub DISABLE" \
        -c "ALTER SUBSCRIPTION $sub SET (slot_name = NONE)" -c "DROP SUBSCRIPTION $sub" >/dev/null 2>&1
    done
  done
  for s in "$A_HOST:$A_PORT" "$B_HOST:$B_PORT"; do
    for _ in 1 2 3 4 5; do
      [ "$(psql -X -A -t -h "${s%:*}" -p "${s#*:}" -U postgres -d postgres -c \
            "SELECT count(CASE WHEN active THEN pg_terminate_backend(active_pid)
                               ELSE pg_drop_replication_slot(slot_name) IS NULL END)
               FROM pg_replication_slots WHERE database = '$1'" 2>/dev/null)" = 0 ] && break
      sleep 0.2
    done
    dropdb --if-exists --force -h "${s%:*}" -p "${s#*:}" -U postgres "$1" 2>/dev/null
  done
  return 0
}

