#!/usr/bin/env bash
# Bounded fuzz (fixed seed) of everything in pg_shift that reads SQL a user
# wrote: shift.lint, shift.lint_script, shift_internal._select_list and the fragment
# checks of shift.backfill_create and shift.sync_create (inside transactions
# that are rolled back).  The inputs are mutations of real SQL made by
# test/fuzz/sqlfuzz.c, the generator `make fuzz` runs for long in
# test/fuzz/sql_fragments.sh.  Each input must finish within 1 s
# (statement_timeout) and grow its backend by at most 256 MB (peak resident
# size read from /proc, address space capped), and raise no internal error;
# after each batch and at the end, the server must be up with no backend
# crashed.  60_lint.sh fuzzes lint's rules from inside the server; this one
# drives the server from outside, across all the entry points, and watches
# the backend.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../fuzz/sqlfuzz.bash"

new_db fuzz
fuzz_setup
fuzz_build || exit 0
fuzz_controls

start=$(date +%s)
sqlfuzz --seed 6262 --count 6000 --max-size 400000
rc=$?
elapsed=$(( $(date +%s) - start ))
if [ $rc -le 1 ]; then ok "the fuzzer ran to the end (${elapsed}s)"; else not_ok "the fuzzer stopped (exit $rc)" "$(tail -n 20 "$WORK/sqlfuzz.out")"; fi
fuzz_check 6000
