#!/usr/bin/env bash
# The checksum property test (engine: checksum_property.sql).  Over every
# type family in turn -- the built-in ones, citext, hstore, an enum, a
# domain, a composite, and arrays of them -- it makes random tables and
# equal-value rewrites of them, which must keep their checksum, and
# mutations, whose effect on the checksum must match what EXCEPT ALL says
# about the values.  Every few tables, the table is copied to a second
# server whose enum, domain and composite have other OIDs and whose
# sessions use other settings: table_checksum must give the same words
# there, pgshift compare must find the copy equal, and a replayed
# value-changing mutation must make it differ.
#
# Bounded (integration 53): PROP_SEED, PROP_ROUNDS (rounds over all the
# families, default 1), PROP_MUTATIONS (per table, default 8).
# Long (make fuzz): FUZZ_SEED, FUZZ_MINUTES (shared between the scripts in
# test/fuzz: this one takes its share; rounds until the time is up, 30
# mutations per table unless PROP_MUTATIONS says otherwise).
# Prints TAP: one line per family (bounded) or per round (long), then the
# totals: checks made, mutations judged, disagreements.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../integration/lib.sh"
. "$HERE/../integration/cluster.sh"

if [ -n "${FUZZ_MINUTES:-}" ] && [ -z "${PROP_ROUNDS:-}" ]; then
  SEED=${FUZZ_SEED:-$(date +%s)}
  DEADLINE=$(( $(date +%s) + FUZZ_MINUTES * 60 / $(ls "$HERE"/*.sh | wc -l) ))
  ROUNDS=1000000
  MUTATIONS=${PROP_MUTATIONS:-30}
  PER_ROUND=1
else
  SEED=${PROP_SEED:-1}
  DEADLINE=0
  ROUNDS=${PROP_ROUNDS:-1}
  MUTATIONS=${PROP_MUTATIONS:-8}
  PER_ROUND=0
fi
CROSS_EVERY=${PROP_CROSS_EVERY:-8}
echo "# checksum property test: seed $SEED, $MUTATIONS mutations a table"

new_db prop
second_cluster_start || { echo "Bail out! could not start a second cluster"; exit 1; }
trap 'second_cluster_stop; cleanup' EXIT
createdb -h "$SECOND_HOST" -p "$SECOND_PORT" -U postgres "$DB"
q2() { psql -X -q -A -t -v ON_ERROR_STOP=1 -h "$SECOND_HOST" -p "$SECOND_PORT" -U postgres -d "$DB" -c "$1"; }
# other objects first, so the enum, the domain and the composite get other OIDs there;
# and other session settings
q2 "CREATE EXTENSION pg_shift; CREATE TYPE filler_e AS ENUM ('x'); CREATE DOMAIN filler_d AS text;
    CREATE TABLE filler_t (a int, b filler_e, c filler_d);
    ALTER DATABASE $DB SET TimeZone = 'Pacific/Chatham'; ALTER DATABASE $DB SET DateStyle = 'SQL, DMY';
    ALTER DATABASE $DB SET extra_float_digits = 0; ALTER DATABASE $DB SET IntervalStyle = 'sql_standard'"
psql -X -q -v ON_ERROR_STOP=1 -d "$DB" -f "$HERE/checksum_property.sql" >/dev/null || { echo "Bail out! loading the engine failed"; exit 1; }
psql -X -q -v ON_ERROR_STOP=1 -h "$SECOND_HOST" -p "$SECOND_PORT" -U postgres -d "$DB" -f "$HERE/checksum_property.sql" \
  >/dev/null || { echo "Bail out! loading the engine on the second server failed"; exit 1; }
oids1=$(q "SELECT string_agg(oid::regtype || '=' || oid, ' ' ORDER BY oid) FROM pg_type WHERE oid IN ('prop.mood'::regtype, 'prop.pair'::regtype, 'prop.posint'::regtype)")
oids2=$(q2 "SELECT string_agg(oid::regtype || '=' || oid, ' ' ORDER BY oid) FROM pg_type WHERE oid IN ('prop.mood'::regtype, 'prop.pair'::regtype, 'prop.posint'::regtype)")
if [ "$oids1" != "$oids2" ]; then ok "the two servers' types have different OIDs ($oids1 / $oids2)"
else not_ok "the two servers' types have different OIDs ($oids1 / $oids2)"; fi

mapfile -t FAMILIES < <(q "SELECT name FROM prop.family ORDER BY name")

# one session for the tables, so that each starts warm (a new backend per
# table was four fifths of the time)
coproc PSQL { psql -X -q -A -t -d "$DB" 2>&1; }
ask() {
  local line out=""
  printf '%s\n\\echo __END__\n' "$1" >&"${PSQL[1]}"
  while IFS= read -r line <&"${PSQL[0]}"; do
    [ "$line" = "__END__" ] && break
    out+="$line"$'\n'
  done
  printf '%s' "${out%$'\n'}"
}
TGT="$SECOND_DSN dbname=$DB"
checks=0 judged=0 disagreements=0 skipped=0 tables=0 cross=0 cross_bad=0
round=0
round_bad=()

# copies prop.a to the second server, checks its checksum and pgshift compare
# there, then replays the recorded value-changing mutation on the copy
cross_check() {
  local ddl cols mut c1 c2 list
  ddl=$(q "SELECT ddl_a FROM prop.last")
  cols=$(q "SELECT cols::text FROM prop.last")
  mut=$(q "SELECT coalesce(mutation, '') FROM prop.last")
  q2 "DROP TABLE IF EXISTS prop.a; DROP TABLE IF EXISTS prop.b; $ddl"
  psql -X -q -d "$DB" -c "\\copy prop.a TO STDOUT" |
    PGOPTIONS="-c DateStyle=ISO -c IntervalStyle=postgres" psql -X -q -v ON_ERROR_STOP=1 \
      -h "$SECOND_HOST" -p "$SECOND_PORT" -U postgres -d "$DB" -c "\\copy prop.a FROM STDIN"
  c1=$(q "SELECT rows || ':' || checksum FROM shift.table_checksum('prop.a', columns => '$cols')")
  c2=$(PGCLIENTENCODING=LATIN1 q2 "SELECT rows || ':' || checksum FROM shift.table_checksum('prop.a', columns => '$cols')")
  cross=$((cross + 1))
  list=${cols#\{}; list=${list%\}}
  if [ "$c1" != "$c2" ]; then
    cross_bad=$((cross_bad + 1)); round_bad+=("copy on the other server: checksum $c2, here $c1 ($ddl)"); return
  fi
  pgshift compare --source "dbname=$DB" --target "$TGT" --table prop.a --columns "$list" --recheck 0
  if [ "$RC" -ne 0 ]; then
    cross_bad=$((cross_bad + 1)); round_bad+=("pgshift compare of the copy: exit $RC: $OUT $ERR ($ddl)"); return
  fi
  if [ -n "$mut" ]; then
    q2 "${mut//prop.b/prop.a}" >/dev/null 2>&1 || return 0
    pgshift compare --source "dbname=$DB" --target "$TGT" --table prop.a --columns "$list" --recheck 0
    cross=$((cross + 1))
    if [ "$RC" -ne 1 ]; then
      cross_bad=$((cross_bad + 1)); round_bad+=("pgshift compare after '$mut' on the copy: exit $RC, want 1 ($ddl)")
    fi
  fi
}

while [ "$round" -lt "$ROUNDS" ]; do
  round=$((round + 1))
  round_bad=()
  i=0
  for fam in "${FAMILIES[@]}"; do
    i=$((i + 1))
    tables=$((tables + 1))
    res=$(ask "SELECT checks || '|' || judged || '|' || disagreements || '|' || skipped || '|' || replace(report, E'\n', ' // ')
               FROM prop.check_table(((($SEED::numeric * 7919 + $tables) % 1999993) / 1999993.0)::float8, '$fam', $MUTATIONS);")
    IFS='|' read -r n j d s rep <<<"$res"
    if ! [[ "$n" =~ ^[0-9]+$ ]]; then
      d=1; n=0; j=0; s=0; rep="$fam: the engine failed: $res"
    fi
    checks=$((checks + n)); judged=$((judged + j)); disagreements=$((disagreements + d)); skipped=$((skipped + s))
    bad=""
    [ "$d" -eq 0 ] || bad="$rep"
    if [ $((tables % CROSS_EVERY)) -eq 0 ] && [ "$n" -gt 0 ]; then
      before=${#round_bad[@]}
      cross_check
      [ ${#round_bad[@]} -eq "$before" ] || bad="$bad ${round_bad[*]:$before}"
    fi
    if [ "$PER_ROUND" -eq 0 ]; then
      if [ -z "$bad" ]; then ok "${rep%% //*} ($n checks, $s mutations skipped)"
      else not_ok "$fam" "$bad"; fi
    elif [ -n "$bad" ]; then
      round_bad+=("$bad")
    fi
    [ "$DEADLINE" -eq 0 ] || [ "$(date +%s)" -lt "$DEADLINE" ] || break
  done
  if [ "$PER_ROUND" -eq 1 ]; then
    if [ ${#round_bad[@]} -eq 0 ]; then ok "round $round: $i tables, no disagreement"
    else not_ok "round $round" "${round_bad[@]}"; fi
  fi
  [ "$DEADLINE" -eq 0 ] || [ "$(date +%s)" -lt "$DEADLINE" ] || break
done

echo "# $tables tables, $checks checks, $judged mutations judged by the oracle ($skipped failed and were skipped), $cross cross-server checks"
expect_eq "zero disagreements with the oracle over $checks checks" "$disagreements" 0
expect_eq "zero disagreements across the two servers over $cross checks" "$cross_bad" 0
