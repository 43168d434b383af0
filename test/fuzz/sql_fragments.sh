#!/usr/bin/env bash
# The long fuzz of everything in pg_shift that reads SQL a user wrote (see
# test/integration/62_fuzz.sh, its bounded version in `make test`): the same
# generator and checks, for FUZZ_MINUTES minutes (or FUZZ_INPUTS inputs)
# from FUZZ_SEED, with inputs up to past the largest limit (1 MB).  Any
# failing input is printed with the command that regenerates it and the SQL
# that replays it.
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/sqlfuzz.bash"

seed=${FUZZ_SEED:-$(date +%s)}
minutes=${FUZZ_MINUTES:-10}
if [ -n "${FUZZ_INPUTS:-}" ]; then budget=(--count "$FUZZ_INPUTS"); min=$FUZZ_INPUTS; what="$FUZZ_INPUTS inputs"
else budget=(--seconds "$(( minutes * 60 ))"); min=$(( minutes * 60 * 5 )); what="$minutes minutes"; fi
echo "# sql_fragments: seed $seed, $what"
new_db fuzz_long
fuzz_setup
fuzz_build || exit 0
fuzz_controls

sqlfuzz --seed "$seed" "${budget[@]}" --max-size 1200000
rc=$?
if [ $rc -le 1 ]; then ok "the fuzzer ran ($what)"; else not_ok "the fuzzer stopped (exit $rc)" "$(tail -n 20 "$WORK/sqlfuzz.out")"; fi
# all the inputs asked for, or at least a few a second whatever the machine
fuzz_check "$min"
