#!/usr/bin/env bash
# scripts/demo.sh: the body of `make demo`.  Runs against the throwaway
# cluster test/harness.sh started (PGHOST/PGPORT are set), with the installed
# pgshift in $PGSHIFT.
set -euo pipefail
cd "$PGSHIFT_ROOT"

ROWS=${DEMO_ROWS:-200000}
psql() { command psql -X -v ON_ERROR_STOP=1 -q "$@"; }

echo "==> creating database 'demo' with a users table of $ROWS rows"
createdb demo
psql -d demo <<SQL
CREATE EXTENSION pg_shift;
CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
INSERT INTO users (id, email)
  SELECT g, format('User%s@Example.COM', g) FROM generate_series(1, $ROWS) g;
ANALYZE users;
SQL
psql -d demo -c "SELECT shift.version() AS pg_shift_version"

echo "==> pgshift run scripts/examples/users_email_lower.lua"
"$PGSHIFT" --dsn "dbname=demo" run scripts/examples/users_email_lower.lua

echo "==> what happened"
psql -d demo -c "SELECT id, email, email_lower FROM users ORDER BY id LIMIT 3"
psql -d demo -c "SELECT count(*) AS rows, count(email_lower) AS filled FROM users"
echo "==> what the database recorded: pgshift status users_email_lower"
"$PGSHIFT" --dsn "dbname=demo" status users_email_lower
psql -d demo -c "SELECT name, state, rows_done, batches, batch_size, round(rate) AS keys_per_s FROM shift.backfill_progress"
echo "==> demo done; the cluster is stopped and removed next"
