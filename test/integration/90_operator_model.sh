#!/usr/bin/env bash
# The model-based operator test (test/model/operator_model.py), short and
# with a fixed seed: random sequences of run, run --to, Ctrl-C / SIGTERM /
# SIGKILL of the runner, pg_terminate_backend of its session, a server
# restart, rollback, rollback --to, a backfill paused, resumed, cancelled,
# retuned or run from another session, cut-over and revert from SQL, under
# writers, with every invariant checked after every action; then every
# sequence it once found failing (test/model/regressions/*.json, replayed as
# found); then twenty terminations of the runner's session during a backfill
# that is not idempotent.  `make soak SEED= MINUTES=` runs the same model for
# long.
# It restarts the server: test/harness.sh runs no background file beside it.
# harness: alone
set -uo pipefail
: "${PGSHIFT:?run integration tests through test/harness.sh (make test)}"
export PYTHONDONTWRITEBYTECODE=1
model=$PGSHIFT_ROOT/test/model/operator_model.py
/usr/bin/python3 "$model" --seed "${MODEL_SEED:-24}" --sequences "${MODEL_SEQUENCES:-3}" --actions "${MODEL_ACTIONS:-14}"
rc=$?
n=100
for f in "$PGSHIFT_ROOT"/test/model/regressions/*.json; do
  name=$(basename "$f" .json)
  /usr/bin/python3 "$model" --seed 1 --replay "$f" --shrink 0 |
    sed "s/^\(not \)\?ok 1 - sequence 1/\1ok $n - regression $name/"
  rc=$(( rc || PIPESTATUS[0] ))
  n=$((n + 1))
done
/usr/bin/python3 "$model" --seed "${MODEL_SEED:-24}" --terminations 20 | sed 's/^\(not \)\?ok \([0-9]*\)/\1ok 20\2/'
rc=$(( rc || PIPESTATUS[0] ))
exit $rc
