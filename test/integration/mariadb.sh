# A throwaway MariaDB server beside the harness's PostgreSQL cluster, for
# tests that read MySQL tables through mysql_fdw (sourced after lib.sh).
# It runs as the mysql user when we are root (as ourselves otherwise), keeps
# its data, socket and log in a temporary directory, listens on a free port
# of 127.0.0.1 only (mysql_fdw connects by host and port: it has no socket
# option) and is stopped and removed by mariadb_stop, which the caller puts
# in its EXIT trap.  A server that does not start is an error, never a skip.
#
#   mariadb_start        sets MARIADB_DIR, MARIADB_PORT, MARIADB_PASSWORD; makes
#                        the user pgshift@127.0.0.1 (all privileges) and database app
#   mariadb_start_or_end mariadb_start as a test's step: ok, or not ok and exit 1
#   my SQL               runs SQL as root over the socket (tab-separated, no header)
#   mariadb_fdw_server NAME  makes server NAME and the user mapping of the current user
#   remote_statements LABEL SQL  what foreign scans sent while SQL ran (auto_explain)
#   stop_writers         stops the background writers in WRITERS (each loops until
#                        $WORK/writers.stop exists) and waits for them

MARIADB_DIR=""
MARIADB_PID=""
WRITERS=()

stop_writers() {
  touch "$WORK/writers.stop"
  local p; for p in "${WRITERS[@]}"; do wait "$p" 2>/dev/null; done
  WRITERS=()
  rm -f "$WORK/writers.stop"
}

_mariadb_as() { if [ "$(id -u)" -eq 0 ]; then runuser -u mysql -- "$@"; else "$@"; fi; }

_mariadb_free_port() {
  local port
  for _ in $(seq 1 50); do
    port=$(( 20000 + RANDOM % 40000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return 0; fi
  done
  return 1
}

# my SQL: SQL as MariaDB's root over the socket; fails on an error.
my() { mariadb --no-defaults --default-character-set=utf8mb4 -S "$MARIADB_DIR/sock" -uroot -N -B -e "$1"; }

mariadb_start() {
  local i
  command -v mariadbd >/dev/null || PATH=$PATH:/usr/sbin
  command -v mariadbd >/dev/null || { echo "mariadbd not found: install mariadb-server (test/harness.sh deps)" >&2; return 1; }
  MARIADB_DIR=$(mktemp -d /tmp/pgshift-mariadb.XXXXXX)
  chmod 755 "$MARIADB_DIR"
  [ "$(id -u)" -ne 0 ] || chown mysql: "$MARIADB_DIR"
  MARIADB_PORT=$(_mariadb_free_port) || { echo "no free port for MariaDB" >&2; return 1; }
  # small redo log and buffer pool: a test server, made in a few seconds
  local opts=(--no-defaults --datadir="$MARIADB_DIR/data" --skip-name-resolve
              --innodb-log-file-size=16M --innodb-buffer-pool-size=64M)
  _mariadb_as mariadb-install-db "${opts[@]}" --auth-root-authentication-method=normal \
    --skip-test-db >"$MARIADB_DIR/install.log" 2>&1 \
    || { cat "$MARIADB_DIR/install.log" >&2; return 1; }
  _mariadb_as mariadbd "${opts[@]}" --socket="$MARIADB_DIR/sock" --pid-file="$MARIADB_DIR/pid" \
    --port="$MARIADB_PORT" --bind-address=127.0.0.1 --log-error="$MARIADB_DIR/error.log" \
    --innodb-flush-log-at-trx-commit=0 --skip-log-bin >/dev/null 2>&1 &
  MARIADB_PID=$!
  for i in $(seq 1 300); do
    mariadb-admin --no-defaults -S "$MARIADB_DIR/sock" -uroot ping >/dev/null 2>&1 && break
    kill -0 "$MARIADB_PID" 2>/dev/null || break
    sleep 0.1
  done
  if ! mariadb-admin --no-defaults -S "$MARIADB_DIR/sock" -uroot ping >/dev/null 2>&1; then
    cat "$MARIADB_DIR/error.log" >&2
    return 1
  fi
  MARIADB_PASSWORD=pw$RANDOM$RANDOM
  my "CREATE DATABASE app CHARACTER SET utf8mb4;
      CREATE USER 'pgshift'@'127.0.0.1' IDENTIFIED BY '$MARIADB_PASSWORD';
      GRANT ALL ON app.* TO 'pgshift'@'127.0.0.1'" || return 1
  export MARIADB_DIR MARIADB_PORT MARIADB_PASSWORD
}

# mariadb_start_or_end: mariadb_start as a test file's step: ok once the
# server listens; otherwise not ok with the server's error, and the file ends.
mariadb_start_or_end() {
  if ! mariadb_start 2>"$WORK/mariadb.err"; then
    not_ok "MariaDB starts" "$(cat "$WORK/mariadb.err")"
    exit 1
  fi
  ok "a throwaway MariaDB listens on 127.0.0.1:$MARIADB_PORT"
}

mariadb_stop() {
  [ -n "$MARIADB_DIR" ] || return 0
  if [ -n "$MARIADB_PID" ] && kill -0 "$MARIADB_PID" 2>/dev/null; then
    mariadb-admin --no-defaults -S "$MARIADB_DIR/sock" -uroot shutdown >/dev/null 2>&1 \
      || kill "$MARIADB_PID" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$MARIADB_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$MARIADB_PID" 2>/dev/null
    wait "$MARIADB_PID" 2>/dev/null
  fi
  rm -rf "$MARIADB_DIR"
  MARIADB_DIR="" MARIADB_PID=""
}

# mariadb_fdw_server NAME: mysql_fdw (made if missing) server NAME on the
# MariaDB, and the current user's mapping to pgshift@127.0.0.1.  The
# connection's character set is utf8mb4: mysql_fdw's default (auto) follows
# the server's locale and turns what latin1 lacks into "?".
mariadb_fdw_server() {
  q "CREATE EXTENSION IF NOT EXISTS mysql_fdw;
     CREATE SERVER $1 FOREIGN DATA WRAPPER mysql_fdw OPTIONS (host '127.0.0.1', port '$MARIADB_PORT', character_set 'utf8mb4');
     CREATE USER MAPPING FOR CURRENT_USER SERVER $1 OPTIONS (username 'pgshift', password '$MARIADB_PASSWORD')"
}

# remote_statements LABEL SQL: runs SQL in database DB in a transaction that
# it rolls back, with auto_explain printing every statement's verbose plan,
# nested ones included, as a NOTICE; prints the plans' lines from LABEL on:
# the statements the foreign scans sent ("Remote query" for mysql_fdw,
# "Remote SQL" for postgres_fdw).
remote_statements() {
  psql -X -q -A -t -d "$DB" 2>&1 <<SQL | grep -o "$1: .*"
SET client_min_messages = notice;
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_nested_statements = on;
SET auto_explain.log_verbose = on;
SET auto_explain.log_level = notice;
BEGIN;
$2
ROLLBACK;
SQL
}
