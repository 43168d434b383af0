#!/usr/bin/env bash
# The documentation's code blocks, run: every sql, sh and lua block of
# README.md and doc/*.md, in order, against the harness's cluster, by
# test/docs/doctest.py (which says how each kind of block runs and what the
# <!-- doctest: ... --> marks mean).  Its TAP is this test's TAP, so a
# command, a function, an option or a Lua call the docs show that no longer
# works fails here, naming FILE:LINE.
set -uo pipefail
: "${PGSHIFT:?run integration tests through test/harness.sh (make test)}"
cd "$PGSHIFT_ROOT" || exit 2
export PGOPTIONS="-c client_min_messages=warning"
# the README's `make demo` starts its own cluster and fills 200 000 rows; a
# few thousand prove the same and keep this test short
export DEMO_ROWS=5000

exec python3 test/docs/doctest.py README.md doc/*.md
