#!/usr/bin/env bash
# Issue 28's matrix: every kind of column change made with online.alter_column,
# online.add_column and online.drop_column while two application versions
# write at once, one through the old version's schema (search_path = v1,
# public), one through the new one's (v2, public), and a backfill runs.
#
# Each case defines its value as a function of the row's id, in each
# version's shape: OLD(id) is what the old version reads and writes, NEW(id)
# what the new one does, with up(OLD) = NEW and down(NEW) = OLD.  Every row
# (the seed, the old writer's, the new writer's) must read as OLD through v1
# and as NEW through v2 after each phase, and as OLD through the table after
# each rollback, which also gives back the table's exact definition.  A
# writer's statement fails only by a rule its own version declares (none of
# the writes here breaks its own version's rules, so none may fail).
. "$(dirname "$0")/lib.sh"

APP=it74_app
psql -X -q -d postgres -c "DROP ROLE IF EXISTS $APP; CREATE ROLE $APP LOGIN" >/dev/null
trap 'cleanup; psql -X -q -d postgres -c "DROP ROLE IF EXISTS $APP" >/dev/null 2>&1' EXIT

# as VERSION SQL: SQL as the application of VERSION connects (its role, its
# schema first in the search_path); "-" is the table itself (no version).
as() {
  local path=public
  [ "$1" = "-" ] || path="$1,public"
  PGOPTIONS="-c client_min_messages=warning -c search_path=$path" \
    psql -X -q -A -t -v ON_ERROR_STOP=1 -U "$APP" -d "$DB" -c "$2" 2>>"$WORK/as.err"
}

# definition: the table's columns, defaults, constraints and indexes
definition() {
  q "SELECT string_agg(format('%s %s %s %s', attname, format_type(atttypid, atttypmod), attnotnull,
                              pg_get_expr(d.adbin, d.adrelid)), '; ' ORDER BY attnum)
       FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
      WHERE attrelid = 't'::regclass AND attnum > 0 AND NOT attisdropped"
  q "SELECT string_agg(pg_get_constraintdef(oid), '; ' ORDER BY conname) FROM pg_constraint
      WHERE conrelid = 't'::regclass"
  q "SELECT string_agg(pg_get_indexdef(indexrelid), '; ' ORDER BY indexrelid::regclass::text)
       FROM pg_index WHERE indrelid = 't'::regclass"
}

# Per case: NAME, SETUP (SQL: table t with ids 1..1000 holding OLD(id)),
# MIGRATION (Lua phases), the old and new version's writes of id $i (OLD_INS,
# NEW_INS) and their updates of row $i (OLD_UPD, NEW_UPD), and the two reads
# (OLD_BAD, NEW_BAD: how many rows break OLD / NEW; they use $W, a filter).
W="true"
writes() {   # writes FROM TO VERSION INS UPD: inserts ids FROM..TO, updates row id-FROM+1, one session
  local i sql=""
  for ((i = $1; i <= $2; i++)); do
    sql+="${4//\$i/$i};"$'\n'
    sql+="${5//\$i/$((i - $1 + 1))};"$'\n'
  done
  local path=public
  [ "$3" = "-" ] || path="$3,public"
  printf '%s' "$sql" | PGOPTIONS="-c client_min_messages=warning -c search_path=$path" \
    psql -X -q -A -t -U "$APP" -d "$DB" >/dev/null 2>"$WORK/writes.$3.err"
  grep -h "ERROR" "$WORK/writes.$3.err" | sed "s/^/$3: /" >>"$WORK/writes.err"
}
NEXT=100000
both_write() {   # both_write STEP: one writer per version, at once
  local n=${2:-5} o=$NEXT
  NEXT=$((NEXT + 2 * n))
  : >"$WORK/writes.err"
  writes "$o" "$((o + n - 1))" v1 "$OLD_INS" "$OLD_UPD" &
  writes "$((o + n))" "$((o + 2 * n - 1))" v2 "$NEW_INS" "$NEW_UPD" &
  wait
  expect_eq "$NAME, $1: no write of either version was refused" "$(cat "$WORK/writes.err")" ""
}
reads() {   # reads STEP VERSION_OLD VERSION_NEW: every row reads right in each shape
  W=${4:-true}
  if [ "$1" = "after the contract" ]; then
    local bad=${FINAL_BAD:-$NEW_BAD}
    expect_eq "$NAME, $1: every row reads as the new version wrote it (through $2)" \
      "$(as "$2" "${bad//\$W/$W}")" 0
    return
  fi
  expect_eq "$NAME, $1: every row reads as the old version wrote it (through ${2})" \
    "$(as "$2" "${OLD_BAD//\$W/$W}")" 0
  [ -z "$3" ] || expect_eq "$NAME, $1: every row reads as the new version wrote it (through $3)" \
    "$(as "$3" "${NEW_BAD//\$W/$W}")" 0
}

# shift.compare of the two shapes, each read through its version's view, with
# the old one converted by up (CMP_OLD, CMP_NEW: the columns compared, as SQL
# arrays of expressions): zero where the two releases must agree
compare_shapes() {
  expect_eq "$NAME, $1: shift.compare of the old shape (by up) and the new finds no difference" \
    "$(q "SELECT count(*) FROM shift.compare('v1.t', 'v2.t', columns => $CMP_OLD, target_columns => $CMP_NEW,
                                              key => '{id}', target_key => '{id}')")" 0
}

old_write() {   # old_write STEP [N]: the old version alone writes
  local n=${2:-5} o=$NEXT
  NEXT=$((NEXT + n))
  : >"$WORK/writes.err"
  writes "$o" "$((o + n - 1))" v1 "$OLD_INS" "$OLD_UPD"
  expect_eq "$NAME, $1: no write of the old version was refused" "$(cat "$WORK/writes.err")" ""
}

# The new version is published at the end of validate, when every row has
# its new value (as pgroll's start does its backfill before the new schema
# is used); until then the old version writes alone, through the backfill.
run_case() {
  local def0 f t0=$SECONDS
  case_setup
  pgshift --dsn "dbname=$DB" run "$f" --to c-expand
  expect_rc "$NAME: expand" 0
  old_write "after expand"
  reads "after expand" v1 ""
  expect_eq "$NAME: the new version is not published before its values exist" \
    "$(q "SELECT count(*) FROM pg_namespace WHERE nspname = 'v2'")" 0
  old_write "during the backfill" 100 &      # a subshell: NEXT moves on here
  local bg=$!
  NEXT=$((NEXT + 100))
  pgshift --dsn "dbname=$DB" run "$f" --to c-backfill
  wait "$bg"
  expect_rc "$NAME: backfill" 0
  reads "after the backfill" v1 ""
  pgshift --dsn "dbname=$DB" run "$f" --to c-validate
  expect_rc "$NAME: validate" 0
  both_write "after validate"
  both_write "after validate, more at once" 40
  reads "after validate" v1 v2
  compare_shapes "after validate"
  [ "$NAME" != add ] || expect_eq "add: the new version's writes kept their value ('toys')" \
    "$(q "SELECT count(*) FROM t WHERE category = 'toys'")" 85   # 45 inserted, 40 updated
  # every way back, one phase at a time
  pgshift --dsn "dbname=$DB" rollback "$f" --to c-backfill
  expect_rc "$NAME: validate rolled back" 0
  old_write "validate rolled back"
  reads "validate rolled back" v1 ""
  pgshift --dsn "dbname=$DB" rollback "$f" --to c-expand
  expect_rc "$NAME: backfill rolled back" 0
  reads "backfill rolled back" v1 ""
  pgshift --dsn "dbname=$DB" rollback "$f"
  expect_rc "$NAME: expand rolled back" 0
  reads "all rolled back" - ""
  expect_eq "$NAME: the table is as it was" "$(definition)" "$def0"
  expect_eq "$NAME: no version schema is left" \
    "$(q "SELECT count(*) FROM pg_namespace WHERE nspname IN ('v1', 'v2')")" 0
  # and the whole way, contract included
  pgshift --dsn "dbname=$DB" run "$f"
  expect_rc "$NAME: run to the end" 0
  expect_eq "$NAME: the old version is gone" "$(q "SELECT count(*) FROM pg_namespace WHERE nspname = 'v1'")" 0
  reads "after the contract" v2 ""
  [ -z "$FINAL" ] || expect_eq "$NAME: the table's final columns" "$(definition | head -1)" "$FINAL"
  echo "# case $NAME: $((SECONDS - t0)) s"
}

# case_setup: the case's database, its table (SETUP), the table's definition
# before (def0) and the migration file (f), in the caller's locals
case_setup() {
  new_db "alt_$NAME"
  NEXT=100000
  q "$SETUP; GRANT SELECT, INSERT, UPDATE, DELETE ON t TO $APP" >/dev/null
  def0=$(definition)
  f=$(mig "$NAME" <<LUA
return migration { name = "m_$NAME", phases = { $MIGRATION } }
LUA
)
}

# A change that moves no data (a rename, a drop): FIRST makes both versions
# at once, FIRST's down undoes it, the contract drops the old version.
two_phase_case() {   # two_phase_case FIRST
  local def0 f
  case_setup
  pgshift --dsn "dbname=$DB" run "$f" --to "$1"
  expect_rc "$NAME: $1" 0
  both_write "after $1" 40
  reads "after $1" v1 v2
  compare_shapes "after $1"
  pgshift --dsn "dbname=$DB" rollback "$f"
  expect_rc "$NAME: $1 rolled back" 0
  old_write "$1 rolled back" 3
  reads "$1 rolled back" - ""
  expect_eq "$NAME: the table is as it was" "$(definition)" "$def0"
  pgshift --dsn "dbname=$DB" run "$f"
  expect_rc "$NAME: run to the end" 0
  expect_eq "$NAME: the old version is gone" "$(q "SELECT count(*) FROM pg_namespace WHERE nspname = 'v1'")" 0
  reads "after the contract" v2 ""
  [ -z "$FINAL" ] || expect_eq "$NAME: the table's final columns" "$(definition | head -1)" "$FINAL"
}

# ---- a rename: no copy, no backfill, the table never rewritten
NAME=rename
CMP_OLD="ARRAY['id', 'title']"
CMP_NEW="ARRAY['id', 'headline']"
SETUP="CREATE TABLE t (id int PRIMARY KEY, title text NOT NULL);
       INSERT INTO t SELECT g, 't' || g FROM generate_series(1, 1000) g"
MIGRATION='online.alter_column{ table = "t", column = "title", name = "headline", id = "c",
             old_version = "v1", new_version = "v2" }'
OLD_INS="INSERT INTO t (id, title) VALUES (\$i, 't' || \$i)"
NEW_INS="INSERT INTO t (id, headline) VALUES (\$i, 't' || \$i)"
OLD_UPD="UPDATE t SET title = 't' || id WHERE id = \$i"
NEW_UPD="UPDATE t SET headline = 't' || id WHERE id = \$i + 500"
OLD_BAD="SELECT count(*) FROM t WHERE \$W AND title IS DISTINCT FROM 't' || id"
NEW_BAD="SELECT count(*) FROM t WHERE \$W AND headline IS DISTINCT FROM 't' || id"
FINAL="id integer t ; headline text t "
two_phase_case c-alter

# ---- a type change, text -> integer
NAME=type
CMP_OLD="ARRAY['id', 'rating::integer']"
CMP_NEW="ARRAY['id', 'rating']"
SETUP="CREATE TABLE t (id int PRIMARY KEY, rating text NOT NULL DEFAULT '3');
       INSERT INTO t SELECT g, (g % 6)::text FROM generate_series(1, 1000) g"
MIGRATION='online.alter_column{ table = "t", column = "rating", type = "integer", id = "c",
             up = "$old::integer", down = "$new::text", old_version = "v1", new_version = "v2" }'
OLD_INS='INSERT INTO t (id, rating) VALUES ($i, ($i % 6)::text)'
NEW_INS='INSERT INTO t (id, rating) VALUES ($i, $i % 6)'
OLD_UPD="UPDATE t SET rating = (id % 6)::text WHERE id = \$i"
NEW_UPD="UPDATE t SET rating = id % 6 WHERE id = \$i + 500"
OLD_BAD='SELECT count(*) FROM t WHERE $W AND rating IS DISTINCT FROM (id % 6)::text'
NEW_BAD='SELECT count(*) FROM t WHERE $W AND rating IS DISTINCT FROM id % 6'
FINAL="id integer t ; rating integer t ('3'::text)::integer"
run_case

# ---- NOT NULL with up: the old version writes NULLs, the new sees 'none'
NAME=notnull
CMP_OLD="ARRAY['id', 'coalesce(note, ''none'')']"
CMP_NEW="ARRAY['id', 'note']"
SETUP="CREATE TABLE t (id int PRIMARY KEY, note text);
       INSERT INTO t SELECT g, CASE WHEN g % 4 = 0 THEN NULL ELSE 'n' || g END FROM generate_series(1, 1000) g"
MIGRATION='online.alter_column{ table = "t", column = "note", nullable = false, id = "c",
             up = "coalesce($old, '"'none'"')", down = "nullif($new, '"'none'"')",
             old_version = "v1", new_version = "v2" }'
OLD_INS="INSERT INTO t (id, note) VALUES (\$i, CASE WHEN \$i % 4 = 0 THEN NULL ELSE 'n' || \$i END)"
NEW_INS="INSERT INTO t (id, note) VALUES (\$i, CASE WHEN \$i % 4 = 0 THEN 'none' ELSE 'n' || \$i END)"
OLD_UPD="UPDATE t SET note = CASE WHEN id % 4 = 0 THEN NULL ELSE 'n' || id END WHERE id = \$i"
NEW_UPD="UPDATE t SET note = CASE WHEN id % 4 = 0 THEN 'none' ELSE 'n' || id END WHERE id = \$i + 500"
OLD_BAD="SELECT count(*) FROM t WHERE \$W AND note IS DISTINCT FROM CASE WHEN id % 4 = 0 THEN NULL ELSE 'n' || id END"
NEW_BAD="SELECT count(*) FROM t WHERE \$W AND note IS DISTINCT FROM CASE WHEN id % 4 = 0 THEN 'none' ELSE 'n' || id END"
FINAL="id integer t ; note text t "
run_case

# ---- a CHECK with up: the old version writes negatives, the new one's rule is qty >= 0
# (who says which version wrote a row last: up is not invertible here)
NAME=check
CMP_OLD="ARRAY['id', 'greatest(qty, 0)']"
CMP_NEW="ARRAY['id', 'qty']"
SETUP="CREATE TABLE t (id int PRIMARY KEY, qty int, who text);
       INSERT INTO t SELECT g, g % 10 - 5, 'o' FROM generate_series(1, 1000) g"
MIGRATION='online.alter_column{ table = "t", column = "qty", check = "qty >= 0", id = "c",
             up = "greatest($old, 0)", down = "$new", old_version = "v1", new_version = "v2" }'
OLD_INS="INSERT INTO t (id, qty, who) VALUES (\$i, \$i % 10 - 5, 'o')"
NEW_INS="INSERT INTO t (id, qty, who) VALUES (\$i, greatest(\$i % 10 - 5, 0), 'n')"
OLD_UPD="UPDATE t SET qty = id % 10 - 5, who = 'o' WHERE id = \$i"
NEW_UPD="UPDATE t SET qty = greatest(id % 10 - 5, 0), who = 'n' WHERE id = \$i + 500"
OLD_BAD="SELECT count(*) FROM t WHERE \$W AND qty IS DISTINCT FROM
           CASE WHEN who = 'n' THEN greatest(id % 10 - 5, 0) ELSE id % 10 - 5 END"
NEW_BAD='SELECT count(*) FROM t WHERE $W AND qty IS DISTINCT FROM greatest(id % 10 - 5, 0)'
FINAL=""
run_case

# ---- UNIQUE with up: the old version's codes repeat, the new one's are unique
NAME=unique
CMP_OLD="ARRAY['id', 'code || ''-'' || id']"
CMP_NEW="ARRAY['id', 'code']"
SETUP="CREATE TABLE t (id int PRIMARY KEY, code text);
       INSERT INTO t SELECT g, 'c' || (g % 7) FROM generate_series(1, 1000) g"
MIGRATION='online.alter_column{ table = "t", column = "code", unique = true, id = "c",
             up = "$old || '"'-'"' || id", down = "split_part($new, '"'-'"', 1)",
             old_version = "v1", new_version = "v2" }'
OLD_INS="INSERT INTO t (id, code) VALUES (\$i, 'c' || (\$i % 7))"
NEW_INS="INSERT INTO t (id, code) VALUES (\$i, 'c' || (\$i % 7) || '-' || \$i)"
OLD_UPD="UPDATE t SET code = 'c' || (id % 7) WHERE id = \$i"
NEW_UPD="UPDATE t SET code = 'c' || (id % 7) || '-' || id WHERE id = \$i + 500"
OLD_BAD="SELECT count(*) FROM t WHERE \$W AND code IS DISTINCT FROM 'c' || (id % 7)"
NEW_BAD="SELECT count(*) FROM t WHERE \$W AND code IS DISTINCT FROM 'c' || (id % 7) || '-' || id"
FINAL=""
run_case

# ---- a FOREIGN KEY with up: the old version writes owner 0, which no owner has
NAME=fkey
CMP_OLD="ARRAY['id', 'nullif(owner, 0)']"
CMP_NEW="ARRAY['id', 'owner']"
SETUP="CREATE TABLE owners (id int PRIMARY KEY); INSERT INTO owners SELECT generate_series(1, 9);
       GRANT SELECT ON owners TO $APP;
       CREATE TABLE t (id int PRIMARY KEY, owner int);
       INSERT INTO t SELECT g, g % 10 FROM generate_series(1, 1000) g"
MIGRATION='online.alter_column{ table = "t", column = "owner", references = "owners (id)", id = "c",
             up = "nullif($old, 0)", down = "coalesce($new, 0)", old_version = "v1", new_version = "v2" }'
OLD_INS='INSERT INTO t (id, owner) VALUES ($i, $i % 10)'
NEW_INS='INSERT INTO t (id, owner) VALUES ($i, nullif($i % 10, 0))'
OLD_UPD='UPDATE t SET owner = id % 10 WHERE id = $i'
NEW_UPD='UPDATE t SET owner = nullif(id % 10, 0) WHERE id = $i + 500'
OLD_BAD='SELECT count(*) FROM t WHERE $W AND owner IS DISTINCT FROM id % 10'
NEW_BAD='SELECT count(*) FROM t WHERE $W AND owner IS DISTINCT FROM nullif(id % 10, 0)'
FINAL=""
run_case

# ---- several changes of one column at once: rename, type, NOT NULL, CHECK, default
NAME=several
CMP_OLD="ARRAY['id', 'coalesce(rating::smallint, 0)']"
CMP_NEW="ARRAY['id', 'stars']"
SETUP="CREATE TABLE t (id int PRIMARY KEY, rating text);
       INSERT INTO t SELECT g, CASE WHEN g % 9 = 0 THEN NULL ELSE (g % 6)::text END FROM generate_series(1, 1000) g"
MIGRATION='online.alter_column{ table = "t", column = "rating", name = "stars", type = "smallint",
             nullable = false, check = "stars BETWEEN 0 AND 5", default = "0", id = "c",
             up = "coalesce($old::smallint, 0)", down = "nullif($new, 0)::text",
             old_version = "v1", new_version = "v2" }'
OLD_INS="INSERT INTO t (id, rating) VALUES (\$i, CASE WHEN \$i % 9 = 0 THEN NULL ELSE (\$i % 6)::text END)"
NEW_INS="INSERT INTO t (id, stars) VALUES (\$i, CASE WHEN \$i % 9 = 0 THEN 0 ELSE \$i % 6 END)"
OLD_UPD="UPDATE t SET rating = CASE WHEN id % 9 = 0 THEN NULL ELSE (id % 6)::text END WHERE id = \$i"
NEW_UPD="UPDATE t SET stars = CASE WHEN id % 9 = 0 THEN 0 ELSE id % 6 END WHERE id = \$i + 500"
# 0 and NULL are one value to the old version (down maps 0 to NULL)
OLD_BAD="SELECT count(*) FROM t WHERE \$W AND nullif(rating, '0') IS DISTINCT FROM
           nullif(CASE WHEN id % 9 = 0 THEN NULL ELSE (id % 6)::text END, '0')"
NEW_BAD="SELECT count(*) FROM t WHERE \$W AND stars IS DISTINCT FROM CASE WHEN id % 9 = 0 THEN 0 ELSE id % 6 END"
FINAL="id integer t ; stars smallint t 0"
run_case

# ---- the column's own rules kept: a type change (int -> bigint) and a
# rename of a column with a CHECK, a FOREIGN KEY, a deferrable UNIQUE with
# another column and an index; each is rebuilt on the new column and has its
# name and kind after the contract (the unique one a constraint again)
NAME=kept
CMP_OLD="ARRAY['id', 'owner::bigint']"
CMP_NEW="ARRAY['id', 'owner_id']"
SETUP="CREATE TABLE owners (id bigint PRIMARY KEY); INSERT INTO owners SELECT generate_series(1, 9);
       GRANT SELECT ON owners TO $APP;
       CREATE TABLE t (id int PRIMARY KEY, owner int NOT NULL CHECK (owner > 0) REFERENCES owners (id),
                       code int NOT NULL, UNIQUE (owner, code) DEFERRABLE INITIALLY DEFERRED);
       CREATE INDEX t_owner ON t (owner);
       INSERT INTO t SELECT g, g % 9 + 1, g FROM generate_series(1, 1000) g"
MIGRATION='online.alter_column{ table = "t", column = "owner", name = "owner_id", type = "bigint", id = "c",
             up = "$old::bigint", down = "$new::integer", old_version = "v1", new_version = "v2" }'
OLD_INS='INSERT INTO t (id, owner, code) VALUES ($i, $i % 9 + 1, $i)'
NEW_INS='INSERT INTO t (id, owner_id, code) VALUES ($i, $i % 9 + 1, $i)'
OLD_UPD='UPDATE t SET owner = id % 9 + 1 WHERE id = $i'
NEW_UPD='UPDATE t SET owner_id = id % 9 + 1 WHERE id = $i + 500'
OLD_BAD='SELECT count(*) FROM t WHERE $W AND owner IS DISTINCT FROM id % 9 + 1'
NEW_BAD='SELECT count(*) FROM t WHERE $W AND owner_id IS DISTINCT FROM id % 9 + 1'
FINAL="id integer t ; code integer t ; owner_id bigint t "
run_case
expect_eq "kept: after the contract, the old column's rules are the new one's, under their names" \
  "$(q "SELECT string_agg(conname || ' ' || pg_get_constraintdef(oid) || ' ' || convalidated, '; ' ORDER BY conname)
          FROM pg_constraint WHERE conrelid = 't'::regclass")" \
  "t_owner_check CHECK ((owner_id > 0)) true; t_owner_code_key UNIQUE (owner_id, code) DEFERRABLE INITIALLY DEFERRED true; t_owner_fkey FOREIGN KEY (owner_id) REFERENCES owners(id) true; t_pkey PRIMARY KEY (id) true"
expect_eq "kept: and its indexes" \
  "$(q "SELECT string_agg(pg_get_indexdef(indexrelid), '; ' ORDER BY indexrelid::regclass::text)
          FROM pg_index WHERE indrelid = 't'::regclass")" \
  "CREATE INDEX t_owner ON public.t USING btree (owner_id); CREATE UNIQUE INDEX t_owner_code_key ON public.t USING btree (owner_id, code); CREATE UNIQUE INDEX t_pkey ON public.t USING btree (id)"
expect_eq "kept: the rules hold for the new version's writes (a row of no owner is refused)" \
  "$(as v2 "INSERT INTO t (id, owner_id, code) VALUES (999999, 0, 1)"; grep -o 'violates [a-z ]* constraint "[a-z_]*"' "$WORK/as.err" | tail -1)" \
  'violates check constraint "t_owner_check"'

# ---- the primary key's type, int -> bigint (serial): the key rebuilt
# concurrently and made the primary key again at the contract; the sequence
# follows the new column and counts as far as bigint does
NAME=pkey
CMP_OLD="ARRAY['id::bigint', 'name']"
CMP_NEW="ARRAY['id', 'name']"
SETUP="CREATE TABLE t (id serial PRIMARY KEY, name text NOT NULL);
       INSERT INTO t (name) SELECT 'n' || g FROM generate_series(1, 1000) g;
       GRANT USAGE ON SEQUENCE t_id_seq TO $APP"
MIGRATION='online.alter_column{ table = "t", column = "id", type = "bigint", id = "c",
             up = "$old::bigint", down = "$new::integer", old_version = "v1", new_version = "v2" }'
OLD_INS="INSERT INTO t (id, name) VALUES (\$i, 'n' || \$i)"
NEW_INS="INSERT INTO t (id, name) VALUES (\$i, 'n' || \$i)"
OLD_UPD="UPDATE t SET id = id, name = 'n' || id WHERE id = \$i"
NEW_UPD="UPDATE t SET id = id, name = 'n' || id WHERE id = \$i + 500"
OLD_BAD="SELECT count(*) FROM t WHERE \$W AND name IS DISTINCT FROM 'n' || id"
NEW_BAD="SELECT count(*) FROM t WHERE \$W AND name IS DISTINCT FROM 'n' || id"
FINAL="name text t ; id bigint t nextval('t_id_seq'::regclass)"
run_case
expect_eq "pkey: after the contract, id is the primary key again" \
  "$(q "SELECT string_agg(conname || ' ' || pg_get_constraintdef(oid), '; ') FROM pg_constraint WHERE conrelid = 't'::regclass")" \
  "t_pkey PRIMARY KEY (id)"
expect_eq "pkey: its sequence is the new column's, and a bigint one" \
  "$(q "SELECT pg_get_serial_sequence('t', 'id') || ' ' || format_type(seqtypid, NULL) || ' ' || seqmax
          FROM pg_sequence WHERE seqrelid = 't_id_seq'::regclass")" \
  "public.t_id_seq bigint 9223372036854775807"
expect_eq "pkey: an insert takes its id from the sequence" \
  "$(q "INSERT INTO t (name) VALUES ('fresh') RETURNING id = (SELECT last_value FROM t_id_seq)")" t

# a rule whose copy does not fit the new type is refused at expand, naming
# it; given as constraints = {name = ...} (or false) it is built as written
NAME=unfit
SETUP="CREATE TABLE t (id int PRIMARY KEY, code text CONSTRAINT t_code_short CHECK (length(code) < 6));
       INSERT INTO t SELECT g, g::text FROM generate_series(1, 100) g"
MIGRATION='online.alter_column{ table = "t", column = "code", type = "integer", id = "c",
             up = "$old::integer", down = "$new::text" }'
case_setup
pgshift --dsn "dbname=$DB" run "$f" --to c-expand
expect_rc "unfit: a CHECK that does not fit the new type stops expand" 1
expect_in "unfit: the error names the constraint and says what to give" "$ERR" \
  'constraint t_code_short of t.code copied onto code__new'
expect_in "unfit: with its hint" "$ERR" 'constraints = { t_code_short = "CHECK (... $new ...)" }'
pgshift --dsn "dbname=$DB" rollback "$f"
expect_rc "unfit: the failed expand rolls back" 0
expect_eq "unfit: and leaves the table as it was" "$(definition)" "$def0"
MIGRATION='online.alter_column{ table = "t", column = "code", type = "integer", id = "c",
             up = "$old::integer", down = "$new::text", constraints = { t_code_short = "CHECK ($new < 100000)" } }'
f=$(mig unfit2 <<LUA
return migration { name = "m_unfit2", phases = { $MIGRATION } }
LUA
)
pgshift --dsn "dbname=$DB" run "$f"
expect_rc "unfit: with the copy given, the change runs to the end" 0
expect_eq "unfit: the given rule is the column's, under the old name" \
  "$(q "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 't'::regclass AND conname = 't_code_short'")" \
  "CHECK ((code < 100000))"
MIGRATION='online.alter_column{ table = "t", column = "code", type = "bigint", id = "d",
             up = "$old::bigint", down = "$new::integer", constraints = { t_code_long = false } }'
f=$(mig unfit3 <<LUA
return migration { name = "m_unfit3", phases = { $MIGRATION } }
LUA
)
pgshift --dsn "dbname=$DB" run "$f"
expect_rc "unfit: a constraint name the column does not have is refused" 1
expect_in "unfit: naming the ones it has" "$ERR" "has no CHECK or FOREIGN KEY constraint t_code_long (it has t_code_short)"

# an exclusion constraint cannot be rebuilt without a long lock: refused at expand
NAME=exclude
SETUP="CREATE EXTENSION IF NOT EXISTS btree_gist; CREATE TABLE t (id int PRIMARY KEY, room int, EXCLUDE USING gist (room WITH =))"
MIGRATION='online.alter_column{ table = "t", column = "room", type = "bigint", id = "c", up = "$old::bigint" }'
case_setup
pgshift --dsn "dbname=$DB" run "$f"
expect_rc "exclude: a column in an exclusion constraint is refused" 1
expect_in "exclude: naming the constraint and the way" "$ERR" "is in exclusion constraint t_room_excl"
expect_eq "exclude: nothing changed" "$(definition)" "$def0"

# rules()/indexes(): the table's constraints and indexes, by name
rules() { definition | sed -n 2p; }
indexes() { definition | sed -n 3p; }
# run_all: case_setup, then the whole migration
run_all() {
  case_setup
  pgshift --dsn "dbname=$DB" run "$f"
  expect_rc "$NAME: run to the end" 0
}

# ---- names spelled like the column that are not references to it (a type,
# a function, a schema, an access method) stay as they are in the copies
# of its rules; after the contract the rules read as before
NAME=names
SETUP="CREATE SCHEMA date;
       CREATE FUNCTION date.ok(d date) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT d > ''1999-01-01''';
       CREATE TABLE t (id int PRIMARY KEY, date date CHECK (date > '2000-01-01') CONSTRAINT t_date_ok CHECK (date.ok(date)),
                       lower text, btree int);
       CREATE INDEX t_date ON t USING btree (date); CREATE INDEX t_lower ON t (lower(lower));
       CREATE INDEX t_btree ON t USING btree (btree) WHERE btree > 0;
       INSERT INTO t SELECT g, '2001-01-01'::date + g, 'l' || g, g FROM generate_series(1, 100) g"
MIGRATION='online.alter_column{ table = "t", column = "date", nullable = false, id = "c",
             up = "coalesce($old, '"'2001-01-01'"')", down = "$new" },
           online.alter_column{ table = "t", column = "lower", nullable = false, id = "d",
             up = "coalesce($old, '"''"')", down = "$new" },
           online.alter_column{ table = "t", column = "btree", nullable = false, id = "e",
             up = "coalesce($old, 1)", down = "$new" }'
t0=$SECONDS
run_all
expect_eq "names: the CHECKs read as before (the type date, the schema date kept)" "$(rules)" "$(sed -n 2p <<<"$def0")"
expect_eq "names: the indexes read as before (the function lower, the method btree kept)" "$(indexes)" \
  "$(sed -n 3p <<<"$def0")"
echo "# case $NAME: $((SECONDS - t0)) s"

# ---- foreign keys copied from the catalog: a quoted column with ")" in its
# name, PostgreSQL 15's ON DELETE SET NULL (columns), MATCH FULL, deferrable
NAME=fkeys
SETUP='CREATE TABLE owners (id int, k int, PRIMARY KEY (id, k));
       INSERT INTO owners SELECT g, g FROM generate_series(1, 9) g;
       CREATE TABLE t (id int PRIMARY KEY, owner int, "we)ird" int, k2 int,
         CONSTRAINT t_a FOREIGN KEY (owner, "we)ird") REFERENCES owners (id, k) MATCH FULL DEFERRABLE INITIALLY DEFERRED,
         CONSTRAINT t_b FOREIGN KEY (k2, owner) REFERENCES owners (id, k) ON DELETE SET NULL (owner) ON UPDATE CASCADE);
       INSERT INTO t SELECT g, g % 9 + 1, g % 9 + 1, g % 9 + 1 FROM generate_series(1, 100) g'
MIGRATION='online.alter_column{ table = "t", column = "owner", type = "bigint", id = "c",
             up = "$old::bigint", down = "$new::integer" }'
t0=$SECONDS
run_all
expect_eq "fkeys: the foreign keys read as before" "$(rules)" "$(sed -n 2p <<<"$def0")"
echo "# case $NAME: $((SECONDS - t0)) s"
# a foreign key whose copy fails: the hint says FOREIGN KEY, not CHECK
NAME=fkey_unfit
SETUP="CREATE TABLE owners (id int PRIMARY KEY); INSERT INTO owners VALUES (1);
       CREATE TABLE t (id int PRIMARY KEY, owner int REFERENCES owners)"
MIGRATION='online.alter_column{ table = "t", column = "owner", type = "text", id = "c",
             up = "$old::text", down = "$new::integer" }'
case_setup
pgshift --dsn "dbname=$DB" run "$f" --to c-expand
expect_rc "fkey_unfit: a FOREIGN KEY that does not fit the new type stops expand" 1
expect_in "fkey_unfit: the hint gives a FOREIGN KEY to write" "$ERR" 'constraints = { t_owner_fkey = "FOREIGN KEY ($new) REFERENCES ..." }'

# ---- unique = true/false against the indexes the column has, whatever their
# names: the uniqueness kept is any unique, non-partial index with the
# column as its only key column (INCLUDE columns aside)
NAME=uniques
SETUP="CREATE TABLE t (id int PRIMARY KEY, code text UNIQUE, u1 int, u2 int, u3 int);
       CREATE UNIQUE INDEX t_u1_plain ON t (u1);
       ALTER TABLE t ADD CONSTRAINT t_u2_inc UNIQUE (u2) INCLUDE (u1);
       CREATE UNIQUE INDEX t_u3_plain ON t (u3);
       INSERT INTO t SELECT g, 'c' || g, g, g, g FROM generate_series(1, 100) g"
MIGRATION='online.alter_column{ table = "t", column = "code", name = "ref", unique = true, id = "c", up = "$old" },
           online.alter_column{ table = "t", column = "id", type = "bigint", unique = true, id = "d",
             up = "$old::bigint", down = "$new::integer" },
           online.alter_column{ table = "t", column = "u1", unique = true, id = "e", up = "$old" },
           online.alter_column{ table = "t", column = "u2", unique = true, id = "f", up = "$old" },
           online.alter_column{ table = "t", column = "u3", unique = false, id = "g", up = "$old" }'
t0=$SECONDS
run_all
expect_eq "uniques: one unique index per column, under its old name; unique = false dropped t_u3_plain" \
  "$(q "SELECT string_agg(c.relname || ' ' || pg_get_indexdef(i.indexrelid, 1, true) || CASE WHEN i.indnatts > i.indnkeyatts THEN ' INCLUDE ' || pg_get_indexdef(i.indexrelid, i.indnatts, true) ELSE '' END, '; ' ORDER BY 1)
          FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 't'::regclass AND i.indisunique")" \
  "t_code_key ref; t_pkey id; t_u1_plain u1; t_u2_inc u2 INCLUDE u1"
expect_eq "uniques: the constraints are as they were, on the new columns" \
  "$(q "SELECT string_agg(conname || ' ' || pg_get_constraintdef(oid), '; ' ORDER BY conname) FROM pg_constraint WHERE conrelid = 't'::regclass")" \
  "t_code_key UNIQUE (ref); t_pkey PRIMARY KEY (id); t_u2_inc UNIQUE (u2) INCLUDE (u1)"
echo "# case $NAME: $((SECONDS - t0)) s"

# ---- a primary key's or unique constraint's copy must be able to become
# the constraint at the contract without a long lock: refused at expand
# when it could not
NAME=pkey_refused
SETUP="CREATE TABLE t (id int PRIMARY KEY, code int CONSTRAINT t_code_key UNIQUE)"
for m in 'id|nullable = true|t.id is in primary key t_pkey|nullable = true' \
         'id|indexes = { t_pkey = "CREATE INDEX ON t ($new)" }|index t_pkey backs constraint t_pkey|UNIQUE' \
         'id|indexes = { t_pkey = "CREATE UNIQUE INDEX ON t ($new) WHERE $new > 0" }|index t_pkey backs constraint t_pkey|partial' \
         'code|indexes = { t_code_key = "CREATE INDEX ON t ($new)" }|index t_code_key backs constraint t_code_key|UNIQUE'; do
  IFS='|' read -r col opt want1 want2 <<<"$m"
  MIGRATION='online.alter_column{ table = "t", column = "'"$col"'", type = "bigint", id = "c",
               up = "$old::bigint", down = "$new::integer", '"$opt"' }'
  case_setup
  pgshift --dsn "dbname=$DB" run "$f" --to c-expand
  expect_rc "pkey_refused ($opt): expand refuses" 1
  expect_in "pkey_refused ($opt): saying why" "$ERR" "$want1"
  expect_in "pkey_refused ($opt): and what" "$ERR" "$want2"
  expect_eq "pkey_refused ($opt): nothing changed" "$(definition)" "$def0"
done

# ---- REPLICA IDENTITY USING INDEX and CLUSTER ON follow the copy
NAME=marks
SETUP="CREATE TABLE t (id int PRIMARY KEY, code int NOT NULL);
       CREATE UNIQUE INDEX t_code_u ON t (code);
       ALTER TABLE t REPLICA IDENTITY USING INDEX t_code_u; ALTER TABLE t CLUSTER ON t_code_u;
       INSERT INTO t SELECT g, g FROM generate_series(1, 100) g"
MIGRATION='online.alter_column{ table = "t", column = "code", type = "bigint", id = "c",
             up = "$old::bigint", down = "$new::integer" }'
t0=$SECONDS
run_all
expect_eq "marks: the copy of t_code_u is the replica identity and the clustered index" \
  "$(q "SELECT string_agg(indexrelid::regclass || ' ' || indisreplident || ' ' || indisclustered, '; ' ORDER BY 1)
          FROM pg_index WHERE indrelid = 't'::regclass AND (indisreplident OR indisclustered)")" "t_code_u true true"
expect_eq "marks: the table's replica identity is an index" "$(q "SELECT relreplident FROM pg_class WHERE oid = 't'::regclass")" i
echo "# case $NAME: $((SECONDS - t0)) s"

# ---- a sequence the column owns is never narrowed: refused at expand
NAME=narrow
SETUP="CREATE TABLE t (id bigserial PRIMARY KEY, name text)"
MIGRATION='online.alter_column{ table = "t", column = "id", type = "integer", id = "c",
             up = "$old::integer", down = "$new::bigint" }'
case_setup
pgshift --dsn "dbname=$DB" run "$f" --to c-expand
expect_rc "narrow: a bigint sequence for an integer column stops expand" 1
expect_in "narrow: naming the sequence and the types" "$ERR" "sequence public.t_id_seq of t.id counts as bigint"
expect_eq "narrow: nothing changed" "$(definition)" "$def0"

# ---- the definitions copied are read with every name qualified, whatever
# the runner's search_path: the statements sent name app.ok (the server's
# log of DDL shows them)
NAME=qualified
SETUP="CREATE SCHEMA app; CREATE FUNCTION app.ok(v int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT v > 0';
       CREATE TABLE t (id int PRIMARY KEY, x int CONSTRAINT t_x_ok CHECK (app.ok(x)));
       CREATE INDEX t_x_ok_ix ON t (app.ok(x));
       INSERT INTO t SELECT g, g FROM generate_series(1, 100) g"
MIGRATION='online.alter_column{ table = "t", column = "x", nullable = false, id = "c", up = "coalesce($old, 1)", down = "$new" }'
case_setup
PGOPTIONS="-c search_path=app,public -c log_statement=ddl" pgshift --dsn "dbname=$DB" run "$f" --to c-validate
expect_rc "qualified: expand to validate under search_path app, public" 0
expect_in "qualified: the CHECK's copy names app.ok" "$(grep -a 't_x_ok__new' "$PGSHIFT_LOG" | grep -a 'ADD CONSTRAINT')" "app.ok(x__new)"
expect_in "qualified: the index's copy names app.ok" "$(grep -a 't_x_ok_ix__new' "$PGSHIFT_LOG" | grep -a 'CREATE INDEX')" "app.ok(x__new)"

# ---- add a column with up: the old version's rows get up, the new one's keep theirs ('toys')
NAME=add
CMP_OLD="ARRAY['id', 'name']"
CMP_NEW="ARRAY['id', 'name']"
SETUP="CREATE TABLE t (id int PRIMARY KEY, name text, who text);
       INSERT INTO t SELECT g, 'p' || g, 'o' FROM generate_series(1, 1000) g"
MIGRATION='online.add_column{ table = "t", column = "category", type = "text", id = "c",
             up = "'"'cat-'"' || (id % 3)", old_version = "v1", new_version = "v2" }'
OLD_INS="INSERT INTO t (id, name, who) VALUES (\$i, 'p' || \$i, 'o')"
NEW_INS="INSERT INTO t (id, name, category, who) VALUES (\$i, 'p' || \$i, 'toys', 'n')"
OLD_UPD="UPDATE t SET name = 'p' || id, who = 'o' WHERE id = \$i"
NEW_UPD="UPDATE t SET name = 'p' || id, category = 'toys', who = 'n' WHERE id = \$i + 500"
OLD_BAD="SELECT count(*) FROM t WHERE \$W AND name IS DISTINCT FROM 'p' || id"
NEW_BAD="SELECT count(*) FROM t WHERE \$W AND category IS DISTINCT FROM
           CASE WHEN who = 'n' THEN 'toys' ELSE 'cat-' || (id % 3) END"
# the full rollback dropped the column with what the new version wrote in
# it; the run after it gives every row up's value
FINAL_BAD="SELECT count(*) FROM t WHERE \$W AND category IS DISTINCT FROM 'cat-' || (id % 3)"
FINAL=""
run_case
FINAL_BAD=""

# ---- drop a column: the new version does not see it; its inserts leave down in it
NAME=drop
CMP_OLD="ARRAY['id', 'name']"
CMP_NEW="ARRAY['id', 'name']"
SETUP="CREATE TABLE t (id int PRIMARY KEY, name text, legacy text NOT NULL);
       INSERT INTO t SELECT g, 'p' || g, 'L' || g FROM generate_series(1, 1000) g"
MIGRATION='online.drop_column{ table = "t", column = "legacy", down = "'"'gone'"'", id = "c",
             old_version = "v1", new_version = "v2" }'
OLD_INS="INSERT INTO t (id, name, legacy) VALUES (\$i, 'p' || \$i, 'L' || \$i)"
NEW_INS="INSERT INTO t (id, name) VALUES (\$i, 'p' || \$i)"
OLD_UPD="UPDATE t SET legacy = 'L' || id WHERE id = \$i"
NEW_UPD="UPDATE t SET name = 'p' || id WHERE id = \$i + 500"
OLD_BAD="SELECT count(*) FROM t WHERE \$W AND (name IS DISTINCT FROM 'p' || id
           OR legacy NOT IN ('L' || id, 'gone'))"
NEW_BAD="SELECT count(*) FROM t WHERE \$W AND name IS DISTINCT FROM 'p' || id"
FINAL="id integer t ; name text f "
two_phase_case c-expand
