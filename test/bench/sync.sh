#!/usr/bin/env bash
# Benchmark: the cost of keeping old and new in sync, on the same data in one
# run.  Column level: a bulk INSERT of BENCH_SYNC_ROWS rows (default 2 000 000)
# and a bulk UPDATE of half of them into a table whose new columns
# (email_lower = lower(email), n_big = n::bigint) are kept by no trigger, a
# PL/pgSQL trigger, shift's C trigger, or shift's C trigger of a sync made
# with new_version (written by the old version: the trigger checks the
# writer's version per row, from its cache).  The floor of any BEFORE row
# trigger is PostgreSQL's own contrib C trigger insert_username, setting
# email_lower to the user's name while the statement computes n_big: less
# work than shift's (no expression, a shorter value).  Table level: the same
# INSERT and UPDATE into a table mirrored into a second one (int key ->
# bigint) by a PL/pgSQL row trigger (the pgroll/Reshape way), a PL/pgSQL
# statement trigger with transition tables, or shift's C sync; the floor of
# any mirror is the statement run on the source and again on a copy.  Best of
# BENCH_SYNC_ROUNDS rounds (default 2), a CHECKPOINT before each statement.
# Prints a markdown table of seconds and ratios; never fails on timing.
set -euo pipefail
ROWS=${BENCH_SYNC_ROWS:-2000000}
ROUNDS=${BENCH_SYNC_ROUNDS:-2}
HALF=$((ROWS / 2))
DB=bench_sync
export PGOPTIONS="-c client_min_messages=warning -c max_parallel_workers_per_gather=0"
psql() { command psql -X -q -v ON_ERROR_STOP=1 -d "$DB" "$@"; }
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }
best() { printf '%s\n' "$@" | sort -g | head -1; }

dropdb --if-exists "$DB" >/dev/null 2>&1
createdb "$DB"
psql >/dev/null <<'SQL'
CREATE EXTENSION pg_shift;
-- column level: five identical tables
CREATE TABLE c_none (id bigint PRIMARY KEY, email text, n int, email_lower text, n_big bigint);
CREATE TABLE c_inline (LIKE c_none INCLUDING ALL);
CREATE TABLE c_floor (LIKE c_none INCLUDING ALL);
CREATE EXTENSION insert_username;
CREATE TRIGGER c_floor BEFORE INSERT OR UPDATE ON c_floor FOR EACH ROW EXECUTE FUNCTION insert_username(email_lower);
CREATE TABLE c_plpgsql (LIKE c_none INCLUDING ALL);
CREATE TABLE c_shift (LIKE c_none INCLUDING ALL);
CREATE TABLE c_shift_v (LIKE c_none INCLUDING ALL);
CREATE FUNCTION c_copy() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.email_lower := lower(NEW.email);
  NEW.n_big := NEW.n;
  RETURN NEW;
END $$;
CREATE TRIGGER c_copy BEFORE INSERT OR UPDATE ON c_plpgsql FOR EACH ROW EXECUTE FUNCTION c_copy();
SELECT shift.sync_create('c_shift', 'c_shift', set => 'email_lower = lower(email), n_big = n');
SELECT shift.sync_create('c_shift_v', 'c_shift_v', set => 'email_lower = lower(email), n_big = n',
                         new_version => 'bench_app_v2');

-- table level: a source and its bigint-keyed mirror, per method
CREATE TABLE m_none (id int PRIMARY KEY, a text, b int, c timestamptz);
CREATE TABLE m_row (LIKE m_none INCLUDING ALL);
CREATE TABLE m_row_t (id bigint PRIMARY KEY, a text, b int, c timestamptz);
CREATE TABLE m_stmt (LIKE m_none INCLUDING ALL);
CREATE TABLE m_stmt_t (LIKE m_row_t INCLUDING ALL);
CREATE TABLE m_shift (LIKE m_none INCLUDING ALL);
CREATE TABLE m_shift_t (LIKE m_row_t INCLUDING ALL);
-- the floor of any mirror: the application writes the copy itself
CREATE TABLE m_both_t (LIKE m_row_t INCLUDING ALL);
CREATE FUNCTION m_row_mirror() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    DELETE FROM m_row_t WHERE id = OLD.id;
    RETURN OLD;
  END IF;
  IF TG_OP = 'UPDATE' AND NEW.id <> OLD.id THEN
    DELETE FROM m_row_t WHERE id = OLD.id;
  END IF;
  INSERT INTO m_row_t (id, a, b, c) VALUES (NEW.id, NEW.a, NEW.b, NEW.c)
    ON CONFLICT (id) DO UPDATE SET a = EXCLUDED.a, b = EXCLUDED.b, c = EXCLUDED.c;
  RETURN NEW;
END $$;
CREATE TRIGGER m_row_mirror AFTER INSERT OR UPDATE OR DELETE ON m_row
  FOR EACH ROW EXECUTE FUNCTION m_row_mirror();
CREATE FUNCTION m_stmt_upsert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' THEN
    DELETE FROM m_stmt_t t WHERE t.id IN (SELECT id FROM old_rows EXCEPT SELECT id FROM new_rows);
  END IF;
  INSERT INTO m_stmt_t (id, a, b, c) SELECT id, a, b, c FROM new_rows
    ON CONFLICT (id) DO UPDATE SET a = EXCLUDED.a, b = EXCLUDED.b, c = EXCLUDED.c;
  RETURN NULL;
END $$;
CREATE TRIGGER m_stmt_ins AFTER INSERT ON m_stmt REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION m_stmt_upsert();
CREATE TRIGGER m_stmt_upd AFTER UPDATE ON m_stmt REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION m_stmt_upsert();
SELECT shift.sync_create('m_shift', 'm_shift', "into" => 'm_shift_t');
SQL

timed() {
  local t0 t1
  psql -c "CHECKPOINT" >/dev/null
  t0=$(now)
  psql -c "$1" >/dev/null
  t1=$(now)
  calc "%.3f" "$t1 - $t0"
}

EMAIL="'User' || g || '@Example.COM'"
declare -A T
for r in $(seq 1 "$ROUNDS"); do
  psql -c "TRUNCATE c_none, c_inline, c_floor, c_plpgsql, c_shift, c_shift_v, m_none, m_row, m_row_t, m_stmt, m_stmt_t, m_both_t" \
    -c "TRUNCATE m_shift" >/dev/null   # its sync truncates m_shift_t
  T[c_none_ins]+=" $(timed "INSERT INTO c_none (id, email, n) SELECT g, $EMAIL, g FROM generate_series(1, $ROWS) g")"
  T[c_inline_ins]+=" $(timed "INSERT INTO c_inline SELECT g, e, g, lower(e), g FROM (SELECT g, $EMAIL AS e FROM generate_series(1, $ROWS) g) s")"
  T[c_floor_ins]+=" $(timed "INSERT INTO c_floor (id, email, n, n_big) SELECT g, $EMAIL, g, g FROM generate_series(1, $ROWS) g")"
  T[c_plpgsql_ins]+=" $(timed "INSERT INTO c_plpgsql (id, email, n) SELECT g, $EMAIL, g FROM generate_series(1, $ROWS) g")"
  T[c_shift_ins]+=" $(timed "INSERT INTO c_shift (id, email, n) SELECT g, $EMAIL, g FROM generate_series(1, $ROWS) g")"
  T[c_shift_v_ins]+=" $(timed "INSERT INTO c_shift_v (id, email, n) SELECT g, $EMAIL, g FROM generate_series(1, $ROWS) g")"
  T[c_none_upd]+=" $(timed "UPDATE c_none SET email = email || 'x' WHERE id <= $HALF")"
  T[c_inline_upd]+=" $(timed "UPDATE c_inline SET email = email || 'x', email_lower = lower(email || 'x'), n_big = n WHERE id <= $HALF")"
  T[c_floor_upd]+=" $(timed "UPDATE c_floor SET email = email || 'x', n_big = n WHERE id <= $HALF")"
  T[c_plpgsql_upd]+=" $(timed "UPDATE c_plpgsql SET email = email || 'x' WHERE id <= $HALF")"
  T[c_shift_upd]+=" $(timed "UPDATE c_shift SET email = email || 'x' WHERE id <= $HALF")"
  T[c_shift_v_upd]+=" $(timed "UPDATE c_shift_v SET email = email || 'x' WHERE id <= $HALF")"
  for m in none both_t row stmt shift; do
    T[m_${m}_ins]+=" $(timed "INSERT INTO m_$m SELECT g, 'value ' || g, g, timestamptz '2024-01-01' + g * interval '1 s' FROM generate_series(1, $ROWS) g")"
    T[m_${m}_upd]+=" $(timed "UPDATE m_$m SET b = b + 1 WHERE id <= $HALF")"
  done
done
declare -A B
for k in "${!T[@]}"; do
  # shellcheck disable=SC2086
  B[$k]=$(best ${T[$k]})
done
# each statement run on the source and again on the copy
B[m_floor_ins]=$(calc "%.3f" "${B[m_none_ins]} + ${B[m_both_t_ins]}")
B[m_floor_upd]=$(calc "%.3f" "${B[m_none_upd]} + ${B[m_both_t_upd]}")

# the mirrors must hold what their sources hold
check_c=$(psql -At -c "SELECT (SELECT count(*) FROM c_shift WHERE email_lower IS DISTINCT FROM lower(email) OR n_big IS DISTINCT FROM n)
                            + (SELECT count(*) FROM c_shift_v WHERE email_lower IS DISTINCT FROM lower(email) OR n_big IS DISTINCT FROM n)")
check_m=$(psql -At -c "SELECT (SELECT count(*) FROM shift.compare('m_shift', 'm_shift_t'))
                            + (SELECT count(*) FROM shift.compare('m_row', 'm_row_t'))
                            + (SELECT count(*) FROM shift.compare('m_stmt', 'm_stmt_t'))")

ratio() { calc "%.2f" "$1 / $2"; }
pct() { calc "%+.0f %%" "100 * ($1 / $2 - 1)"; }
echo "## Dual-write sync: $ROWS-row INSERT, $HALF-row UPDATE (best of $ROUNDS rounds)"
echo
echo "Column level (email_lower = lower(email), n_big = n::bigint):"
echo
echo "| method | INSERT s | vs no trigger | vs inline | UPDATE s | vs no trigger | vs inline |"
echo "|---|---:|---:|---:|---:|---:|---:|"
crow() {
  printf '| %s | %.2f | %s | %s | %.2f | %s | %s |\n' "$1" "${B[${2}_ins]}" "$(pct "${B[${2}_ins]}" "${B[c_none_ins]}")" \
    "$(pct "${B[${2}_ins]}" "${B[c_inline_ins]}")" "${B[${2}_upd]}" "$(pct "${B[${2}_upd]}" "${B[c_none_upd]}")" \
    "$(pct "${B[${2}_upd]}" "${B[c_inline_upd]}")"
}
crow "no trigger (new columns left NULL)" c_none
crow "no trigger, values computed in the statement (same rows)" c_inline
crow "PostgreSQL's C trigger insert_username (floor of a BEFORE row trigger)" c_floor
crow "PL/pgSQL BEFORE row trigger" c_plpgsql
crow "**shift C trigger**" c_shift
crow "**shift C trigger, sync with new_version (old-version writer)**" c_shift_v
echo
echo "Table level (mirror into a bigint-keyed copy):"
echo
echo "| method | INSERT s | UPDATE s | shift vs it (INSERT) | shift vs it (UPDATE) |"
echo "|---|---:|---:|---:|---:|"
mrow() {
  printf '| %s | %.2f | %.2f | %s× | %s× |\n' "$1" "${B[${2}_ins]}" "${B[${2}_upd]}" \
    "$(ratio "${B[m_shift_ins]}" "${B[${2}_ins]}")" "$(ratio "${B[m_shift_upd]}" "${B[${2}_upd]}")"
}
mrow "no mirror" m_none
mrow "no mirror, the application writes the copy too (floor of any mirror)" m_floor
mrow "PL/pgSQL row trigger (pgroll, Reshape)" m_row
mrow "PL/pgSQL statement trigger, transition tables" m_stmt
mrow "**shift C sync**" m_shift
echo
for k in $(printf '%s\n' "${!T[@]}" | sort); do printf '%s:%s; ' "$k" "${T[$k]}"; done; echo
echo
echo "Targets: column-level overhead ≤ 15 % over no trigger: INSERT $(pct "${B[c_shift_ins]}" "${B[c_inline_ins]}")," \
  "UPDATE $(pct "${B[c_shift_upd]}" "${B[c_inline_upd]}") against the same rows written without a trigger" \
  "($(pct "${B[c_shift_ins]}" "${B[c_none_ins]}") / $(pct "${B[c_shift_upd]}" "${B[c_none_upd]}") against rows without the new values);" \
  "the floor, insert_username, costs $(pct "${B[c_floor_ins]}" "${B[c_inline_ins]}") / $(pct "${B[c_floor_upd]}" "${B[c_inline_upd]}") against the same rows," \
  "and shift is $(pct "${B[c_shift_ins]}" "${B[c_floor_ins]}") / $(pct "${B[c_shift_upd]}" "${B[c_floor_upd]}") over it;" \
  "table-level ≤ 0.6× the PL/pgSQL mirror: INSERT $(ratio "${B[m_shift_ins]}" "${B[m_row_ins]}")×, UPDATE $(ratio "${B[m_shift_upd]}" "${B[m_row_upd]}")×" \
  "(overhead over no mirror: $(ratio "(${B[m_shift_ins]} - ${B[m_none_ins]})" "(${B[m_row_ins]} - ${B[m_none_ins]})")× and" \
  "$(ratio "(${B[m_shift_upd]} - ${B[m_none_upd]})" "(${B[m_row_upd]} - ${B[m_none_upd]})")× of PL/pgSQL's;" \
  "the floor is $(ratio "${B[m_floor_ins]}" "${B[m_row_ins]}")× and $(ratio "${B[m_floor_upd]}" "${B[m_row_upd]}")×," \
  "and shift is $(pct "${B[m_shift_ins]}" "${B[m_floor_ins]}") / $(pct "${B[m_shift_upd]}" "${B[m_floor_upd]}") over it)."
echo "Versioned sync: its trigger costs $(ratio "${B[c_shift_v_ins]}" "${B[c_shift_ins]}")× (INSERT) and" \
  "$(ratio "${B[c_shift_v_upd]}" "${B[c_shift_upd]}")× (UPDATE) the unversioned one's statement time" \
  "(over no trigger: $(ratio "(${B[c_shift_v_ins]} - ${B[c_none_ins]})" "(${B[c_shift_ins]} - ${B[c_none_ins]})")× and" \
  "$(ratio "(${B[c_shift_v_upd]} - ${B[c_none_upd]})" "(${B[c_shift_upd]} - ${B[c_none_upd]})")× its overhead); target ≤ 1×, within noise."
echo "Rows that differ afterwards: column level $check_c, table level $check_m."
echo
dropdb "$DB"
