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
