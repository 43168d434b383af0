#!/usr/bin/env bash
# doc/checksum.md is the specification of the canonical form, and its test
# vectors are what a second implementation checks itself against: this test
# reads them from the document itself (not from a copy), so the document and
# the code cannot drift apart.  Every row of the "Test vectors" table must be
# what shift.value_word says of its value, and every hash the worked row
# quotes (row hashes, key hashes, checksums) must be what row_hashes,
# table_checksum and chunk_checksums print for that table.
. "$(dirname "$0")/lib.sh"

DOC="$PGSHIFT_ROOT/doc/checksum.md"
[ -r "$DOC" ] || { echo "Bail out! doc/checksum.md not found"; exit 1; }
export PGCLIENTENCODING=UTF8

new_db docvec
q "CREATE EXTENSION citext; CREATE EXTENSION seg;
   CREATE TYPE vec_mood AS ENUM ('sad', 'happy');
   CREATE TABLE vec (id int PRIMARY KEY, t text, n numeric);
   INSERT INTO vec VALUES (1, 'a', 1.5), (2, NULL, 0)" >/dev/null

# the "Test vectors" section, up to the next heading: rows | `value` | `word` |
section=$(awk '/^## Test vectors/ { on = 1; next } /^## / { on = 0 } on' "$DOC")
vectors=$(printf '%s\n' "$section" | sed -n 's/^| `\(.*\)` | `\([0-9a-f]\{16\}\)` |$/\1\t\2/p')
n=$(printf '%s\n' "$vectors" | grep -c .)
if [ "$n" -ge 40 ]; then ok "doc/checksum.md has $n test vectors"
else not_ok "doc/checksum.md has test vectors: found $n rows of | \`value\` | \`word\` |"; fi

while IFS=$'\t' read -r expr want; do
  [ -n "$expr" ] || continue
  got=$(q "SELECT shift.value_word($expr)" 2>&1)
  expect_eq "value_word($expr) = $want, as the document says" "$got" "$want"
done <<<"$vectors"

# the worked row: the hashes in the table of what the regression test prints
# (32 hexadecimal digits each; shortened ones, with an ellipsis, are prose)
doc_hashes() { printf '%s\n' "$section" | grep -F -- "$1" | grep -oE '\b[0-9a-f]{32}\b' | paste -sd' '; }
want=$(doc_hashes "| \`shift.row_hashes('vec', buckets => 4)\` |")
got=$(q "SELECT string_agg(key_hash || ' ' || row_hash, ' ' ORDER BY key) FROM shift.row_hashes('vec', buckets => 4)")
[ -n "$want" ] || want="(none in the document)"
expect_eq "row_hashes of the worked row: the key and row hashes the document quotes" "$got" "$want"
want=$(printf '%s\n' "$section" | grep -F -- "| \`shift.row_hashes('vec', buckets => 4)\` |" |
  grep -oE 'bucket [0-9]+' | awk '{ print $2 }' | paste -sd' ')
got=$(q "SELECT string_agg(bucket::text, ' ' ORDER BY key) FROM shift.row_hashes('vec', buckets => 4)")
expect_eq "and the buckets the document names" "$got" "${want:-(none in the document)}"
want=$(doc_hashes "| \`shift.table_checksum('vec', key => '{id}')\` |")
got=$(q "SELECT checksum FROM shift.table_checksum('vec', key => '{id}')")
expect_eq "table_checksum keyed by id: the document's sum" "$got" "${want:-(none in the document)}"
want=$(doc_hashes "| \`shift.chunk_checksums('vec', buckets => 2)\` |")
got=$(q "SELECT string_agg(checksum, ' ') FROM shift.chunk_checksums('vec', buckets => 2) WHERE rows > 0")
expect_eq "chunk_checksums in 2 buckets: the document's one chunk" "$got" "${want:-(none in the document)}"
want=$(doc_hashes "| \`shift.table_checksum('vec')\` (no key")
got=$(q "SELECT checksum FROM shift.table_checksum('vec')")
expect_eq "table_checksum without a key: the document's sum" "$got" "${want:-(none in the document)}"
# the bullet points' row and key hashes of the first row agree with the table
kh=$(printf '%s\n' "$section" | grep -A1 -F 'key hash `H128K(K)` =' | grep -oE '\b[0-9a-f]{32}\b' | head -1)
rh=$(printf '%s\n' "$section" | grep -A1 -F 'row hash `H128(C || K)` =' | grep -oE '\b[0-9a-f]{32}\b' | head -1)
got=$(q "SELECT key_hash || ' ' || row_hash FROM shift.row_hashes('vec', buckets => 4) WHERE key = '{1}'")
expect_eq "the worked row's key hash and row hash as the bullet points give them" "$got" "$kh $rh"
# its column words, as the bullets give them
words=$(printf '%s\n' "$section" | sed -n '/^- column words:/,/^- `C`/p' | grep -oE '\b[0-9a-f]{16}\b' | paste -sd' ')
got=$(q "SELECT shift.value_word(1) || ' ' || shift.value_word('a'::text) || ' ' || shift.value_word(1.5::numeric)")
expect_eq "the worked row's column words" "$got" "$words"
# and the bytes of C spell those words little-endian (then a bitmap byte 00)
cbytes=$(printf '%s\n' "$section" | sed -n '/^- `C` =/,/^- `K`/{/^- `K`/!p}' | grep -oE '`[0-9a-f ]+`' | tr -d '` \n')
wle=""
for w in $words; do wle+=$(printf '%s' "$w" | sed 's/../& /g' | awk '{ for (i = NF; i >= 1; i--) printf "%s", $i }'); done
expect_eq "C is the words little-endian and a bitmap byte" "$cbytes" "${wle}00"
