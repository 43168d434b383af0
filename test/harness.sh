#!/usr/bin/env bash
# test/harness.sh: the one script that builds, installs, starts a throwaway
# PostgreSQL 15 cluster and runs things against it.  Used by `make test`,
# `make demo`, `make bench` and CI.
#
#   harness.sh deps                  install missing Debian packages (root)
#   harness.sh test [SUITE...]       SUITE: meta regress unit integration (default: all)
#   harness.sh demo                  run scripts/examples/users_email_lower.lua
#   harness.sh bench                 run test/bench/*.sh, write bench-report.md
#   harness.sh fuzz                  run test/fuzz/*.sh for long (FUZZ_SEED, FUZZ_MINUTES)
#   harness.sh soak                  the operator model for long (SEED, MINUTES: default 60)
#   harness.sh shell                 a shell with PGHOST/PGPORT set to a fresh cluster
#   harness.sh exec COMMAND...       run COMMAND with PGHOST/PGPORT set to a fresh cluster
#
# The cluster runs as the `postgres` user when we are root (initdb refuses
# root), listens only on a Unix socket in a temporary directory, preloads
# pg_cron, and is always stopped and removed on exit, even after a failure or
# Ctrl-C.  Set PGSHIFT_KEEP=1 to keep its directory for a post-mortem.
#
# Environment for the suites: PGHOST, PGPORT, PGUSER=postgres, PGSHIFT_ROOT,
# PGSHIFT (the installed runner), PGSHIFT_PGBIN (server binaries).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PGSHIFT_ROOT=$ROOT
cd "$ROOT"

PACKAGES=(postgresql-15 postgresql-server-dev-15 postgresql-15-cron postgresql-contrib
  liblua5.4-dev libyaml-dev libpq-dev libssl-dev libcmocka-dev libxxhash-dev pkg-config build-essential valgrind jq
  python3 python3-psycopg2
  groff-base man-db zsh bsdutils  # 15_help: man -l, groff -ww, zsh -n, script
  chromium python3-pil  # 16_report: the report rendered, its screenshot read
  mariadb-server postgresql-15-mysql-fdw  # 78_foreign_backfill: a MariaDB read through mysql_fdw
  pgcopydb  # make bench: test/bench/move_copy.sh's third copier
  pgloader)  # make bench: test/bench/mysql.sh's third copier

say() { printf '%s\n' "$*"; }
die() { printf 'harness: %s\n' "$*" >&2; exit 2; }

# ---------------------------------------------------------------- packages
deps() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "==> installing missing packages: ${missing[*]}"
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "not root and no sudo: install ${missing[*]} first"
    sudo=(sudo)
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

pg_config_path() {
  if [ -n "${PG_CONFIG:-}" ]; then echo "$PG_CONFIG"
  elif [ -x /usr/lib/postgresql/15/bin/pg_config ]; then echo /usr/lib/postgresql/15/bin/pg_config
  else command -v pg_config || die "pg_config not found: run 'make deps'"
  fi
}

# The FDWs the tests use come from Debian packages, installed into the
# system's PostgreSQL; a PostgreSQL elsewhere (PG_CONFIG=/opt/...: a private
# copy of it) gets their files copied into its own tree, as the package
# would have installed them there.
fdw_into_pg_tree() {
  local sudo=("$@") pkglib share pkg f
  pkglib=$("$(pg_config_path)" --pkglibdir)
  share=$("$(pg_config_path)" --sharedir)
  for pkg in postgresql-15-mysql-fdw; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || continue
    while IFS= read -r f; do
      [ -f "$f" ] || continue
      case "$f" in
        /usr/lib/postgresql/15/lib/*) [ "$pkglib" = /usr/lib/postgresql/15/lib ] ||
          "${sudo[@]}" install -D -m 644 "$f" "$pkglib/${f#/usr/lib/postgresql/15/lib/}" ;;
        /usr/share/postgresql/15/*) [ "$share" = /usr/share/postgresql/15 ] ||
          "${sudo[@]}" install -D -m 644 "$f" "$share/${f#/usr/share/postgresql/15/}" ;;
      esac
    done < <(dpkg -L "$pkg")
  done
}

build_install() {
  say "==> building and installing pg_shift"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  make -s all >/dev/null
  "${sudo[@]}" make -s install >/dev/null
  fdw_into_pg_tree "${sudo[@]}"
  export PGSHIFT=${RUNNER_BINDIR:-/usr/local/bin}/pgshift
  [ -x "$PGSHIFT" ] || die "pgshift was not installed at $PGSHIFT"
}

# ---------------------------------------------------------------- cluster
PGS_TMP=""
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
  local port
  for _ in $(seq 1 50); do
    port=$(( 20000 + RANDOM % 40000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
  done
  die "no free port found"
}

cluster_start() {
  local bindir
  bindir=$("$(pg_config_path)" --bindir)
  export PGSHIFT_PGBIN=$bindir
  # psql, createdb, dropdb of this server's own version, found first: on
  # Debian, /usr/bin/psql is pg_wrapper, a Perl script that costs some 50 ms
  # of CPU a call before it runs the same binary, and the suites call psql
  # many thousand times
  export PATH=$bindir:$PATH
  PGS_TMP=$(mktemp -d /tmp/pgshift-cluster.XXXXXX)
  chmod 755 "$PGS_TMP"
  [ "$(id -u)" -ne 0 ] || chown postgres: "$PGS_TMP"
  export PGHOST=$PGS_TMP PGPORT PGSHIFT_TMP=$PGS_TMP
  PGPORT=$(free_port)
  export PGUSER=postgres PGDATABASE=postgres
  export PGSHIFT_DATA=$PGS_TMP/data PGSHIFT_LOG=$PGS_TMP/server.log
  say "==> starting a throwaway PostgreSQL cluster in $PGS_TMP (port $PGPORT)"
  as_pg "$bindir/initdb" -D "$PGSHIFT_DATA" -U postgres --auth=trust -E UTF8 --locale=C \
    --no-sync >"$PGS_TMP/initdb.log" 2>&1 || { cat "$PGS_TMP/initdb.log" >&2; die "initdb failed"; }
  cat >>"$PGSHIFT_DATA/postgresql.conf" <<EOF
# added by test/harness.sh
listen_addresses = ''
port = $PGPORT
unix_socket_directories = '$PGS_TMP'
shared_preload_libraries = 'pg_cron'
cron.database_name = 'postgres'
cron.host = '$PGS_TMP'
fsync = off
full_page_writes = off
max_connections = 60
log_min_messages = warning
log_line_prefix = '%m [%p] %q%u@%d '
EOF
  as_pg "$bindir/pg_ctl" -D "$PGSHIFT_DATA" -l "$PGSHIFT_LOG" -w -t 60 start >/dev/null \
    || { cat "$PGSHIFT_LOG" >&2; die "the server did not start"; }
}

cluster_stop() {
  [ -n "$PGS_TMP" ] || return 0
  local h
  # the logical pair the move tests share (test/integration/cluster.sh)
  for h in "$PGS_TMP"/logical-pair/*/data; do
    [ -f "$h/postmaster.pid" ] && as_pg "$PGSHIFT_PGBIN/pg_ctl" -D "$h" -m immediate -w stop >/dev/null 2>&1
  done
  if [ -f "$PGSHIFT_DATA/postmaster.pid" ]; then
    as_pg "$PGSHIFT_PGBIN/pg_ctl" -D "$PGSHIFT_DATA" -m fast -w -t 60 stop >/dev/null 2>&1 \
      || as_pg "$PGSHIFT_PGBIN/pg_ctl" -D "$PGSHIFT_DATA" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  if [ -n "${PGSHIFT_KEEP:-}" ]; then
    say "==> cluster kept in $PGS_TMP (PGSHIFT_KEEP is set)"
  else
    rm -rf "$PGS_TMP"
  fi
  PGS_TMP=""
}

on_exit() { local rc=$?; bg_kill; cluster_stop; exit "$rc"; }
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- tests
PASSED=0
FAILED=0
FAILURES=()
pass() { PASSED=$((PASSED + 1)); }
fail() { FAILED=$((FAILED + 1)); FAILURES+=("$1"); }

# took NAME SECS: prints "# NAME took SECS s" (a TAP comment: not counted)
# and keeps it for the timing table printed at the end of the run.
TIMES=()
took() {
  local cpu=""
  [ -z "${3:-}" ] || cpu=" ($3 s of CPU in its own processes, not counting the server)"
  say "# $1 took $2 s$cpu"
  TIMES+=("$(printf '%5d s  %s' "$2" "$1")")
}

# child_cpu: the CPU time (user + system) of this shell's waited-for children
# so far, in hundredths of a second: less noisy than the clock on a shared
# machine.
# (times runs in this shell, not in a $(...) whose children are none)
CPU=0
child_cpu() {
  local u s f=${PGS_TMP:-/tmp}/times.$$
  times >"$f"
  { read -r _; read -r u s; } <"$f"
  rm -f "$f"
  CPU=$(awk -v u="$u" -v s="$s" 'function sec(t) { split(t, a, "m"); return a[1] * 60 + a[2] }
                                 BEGIN { printf "%d", (sec(u) + sec(s)) * 100 }')
}

# Counts TAP lines ("ok N - x" / "not ok N - x") from a file.
count_tap() {
  local file=$1 suite=$2 line
  while IFS= read -r line; do
    case "$line" in
      "not ok "*) fail "$suite: ${line#not ok }" ;;
      "ok "*) pass ;;
    esac
  done <"$file"
}

# run_tap OUT SUITE CMD...: runs CMD with its output in OUT, prints that and
# counts its TAP lines as SUITE's; TAP_RC is CMD's exit status.
run_tap() {
  local out=$1 suite=$2
  shift 2
  set +e
  "$@" >"$out" 2>&1
  TAP_RC=$?
  set -e
  cat "$out"
  count_tap "$out" "$suite"
}

suite_meta() {
  say "==> meta: version agreement"
  local cv mv pv
  cv=$(sed -n "s/^default_version *= *'\(.*\)'/\1/p" pg_shift.control)
  mv=$(sed -n 's/^  "version": *"\([^"]*\)".*/\1/p' META.json)
  pv=$(sed -n '/"provides"/,/}/s/^ *"version": *"\([^"]*\)".*/\1/p' META.json | head -n1)
  if [ -n "$cv" ] && [ "$cv" = "$mv" ] && [ "$cv" = "$pv" ]; then
    say "ok - META.json version $mv = pg_shift.control default_version $cv"; pass
  else
    say "not ok - META.json version '$mv' / provides '$pv' differ from pg_shift.control '$cv'"
    fail "meta: version mismatch"
  fi
  local rv
  rv=$("$PGSHIFT" --version | awk '{print $2}')
  if [ "$rv" = "$cv" ]; then say "ok - pgshift --version $rv = $cv"; pass
  else say "not ok - pgshift --version says '$rv', control file '$cv'"; fail "meta: runner version"; fi
}

suite_regress() {
  say "==> regress: pg_regress (test/sql, test/expected)"
  local out=$PGS_TMP/regress.out
  rm -rf test/results; mkdir -p test/results
  set +e
  make -s installcheck PG_CONFIG="$(pg_config_path)" >"$out" 2>&1
  set -e
  cat "$out"
  local line
  while IFS= read -r line; do
    case "$line" in
      *"... ok"*) pass ;;
      *"... FAILED"*|*"... failed"*)
        fail "regress: $(echo "$line" | sed 's/^[ a-z]*test //; s/ *\.\.\..*//')" ;;
    esac
  done <"$out"
  if ! grep -qE '\.\.\. (ok|FAILED|failed)' "$out"; then fail "regress: pg_regress did not run"; fi
  [ -f test/results/regression.diffs ] && cat test/results/regression.diffs
  return 0
}

suite_unit() {
  say "==> unit: cmocka tests of the runner"
  local out=$PGS_TMP/unit.out target=run
  command -v valgrind >/dev/null && target=valgrind
  run_tap "$out" unit make -s -C test/unit "$target"
  if [ $TAP_RC -ne 0 ] && ! grep -q '^not ok' "$out"; then
    fail "unit: make -C test/unit $target exited $TAP_RC"
  fi
}

# PGSHIFT_TESTS="30_phases 70_sync": run the integration files whose names
# contain one of the words
wanted_test() {
  local w
  for w in $PGSHIFT_TESTS; do
    [[ "$1" == *"$w"* ]] && return 0
  done
  return 1
}

# An integration file with the line "# harness: background" in its header
# spends most of its time waiting (for pg_cron's next minute): it is started
# first, in its own process group, and runs beside the other files in their
# order up to the first file with the line "# harness: alone" (one that restarts
# the server or uses the ports next to its port), before which the harness
# waits for it.  Its output is kept in its own file and printed, whole, once
# it has finished; its TAP lines are counted then, as any file's.
BG_PIDS=()
BG_FILES=()
marked() { grep -qx "# harness: $2" "$1"; }
bg_start() {
  setsid bash -c 'start=$SECONDS; bash "$1" >"$2" 2>&1; echo "$? $((SECONDS - start))" >"$2.rc"' _ "$1" "$2" &
  BG_PIDS+=($!)
  BG_FILES+=("$1")
}
# bg_prepare: makes, before files run side by side, what they would race to
# make on a fresh cluster: pg_shift's roles (the first CREATE EXTENSION of a
# cluster makes them; two at once, one fails on the duplicate) and pg_cron.
bg_prepare() {
  psql -X -q -d postgres -c "CREATE EXTENSION IF NOT EXISTS pg_cron" >/dev/null || die "CREATE EXTENSION pg_cron failed"
  createdb pgshift_prepare || die "createdb pgshift_prepare failed"
  psql -X -q -d pgshift_prepare -c "CREATE EXTENSION pg_shift" >/dev/null || die "CREATE EXTENSION pg_shift failed"
  dropdb pgshift_prepare
}
bg_join() {
  local i t out rc secs
  for i in "${!BG_PIDS[@]}"; do
    t=${BG_FILES[$i]}
    out=$PGS_TMP/$(basename "$t").out
    wait "${BG_PIDS[$i]}" || true
    read -r rc secs <"$out.rc" || { rc=99; secs=0; }
    say "--- $t (ran in the background)"
    cat "$out"
    count_tap "$out" "$(basename "$t" .sh)"
    took "$(basename "$t" .sh)" "$secs"
    if [ "$rc" -ne 0 ] && ! grep -q '^not ok' "$out"; then
      fail "$(basename "$t"): exited $rc before finishing"
    fi
  done
  BG_PIDS=()
  BG_FILES=()
}
bg_kill() {
  local p
  for p in "${BG_PIDS[@]}"; do kill -- "-$p" 2>/dev/null || true; done
}

suite_integration() {
  say "==> integration: pgshift against the server"
  local t out start cpu files=()
  for t in test/integration/[0-9]*.sh; do
    [ -e "$t" ] || continue
    if [ -n "${PGSHIFT_TESTS:-}" ] && ! wanted_test "$t"; then continue; fi
    files+=("$t")
  done
  for t in "${files[@]}"; do
    if marked "$t" background; then
      [ ${#BG_PIDS[@]} -gt 0 ] || bg_prepare
      say "--- $t: started in the background (its output follows once it has finished)"
      bg_start "$t" "$PGS_TMP/$(basename "$t").out"
    fi
  done
  for t in "${files[@]}"; do
    marked "$t" background && continue
    marked "$t" alone && bg_join
    out=$PGS_TMP/$(basename "$t").out
    say "--- $t"
    start=$SECONDS
    child_cpu; cpu=$CPU
    run_tap "$out" "$(basename "$t" .sh)" bash "$t"
    child_cpu; cpu=$((CPU - cpu))
    took "$(basename "$t" .sh)" $((SECONDS - start)) "$((cpu / 100)).$(printf '%02d' $((cpu % 100)))"
    if [ $TAP_RC -ne 0 ] && ! grep -q '^not ok' "$out"; then
      fail "$(basename "$t"): exited $TAP_RC before finishing"
    fi
  done
  bg_join
}

cmd_test() {
  local suites=("$@")
  [ ${#suites[@]} -gt 0 ] || suites=(meta regress unit integration)
  deps
  build_install
  cluster_start
  local s start
  for s in "${suites[@]}"; do
    case "$s" in
      meta|regress|unit|integration) start=$SECONDS; "suite_$s"; took "suite $s" $((SECONDS - start)) ;;
      *) die "unknown suite '$s' (meta, regress, unit, integration)" ;;
    esac
  done
  cluster_stop
  TIMES+=("$(printf '%5d s  %s' "$SECONDS" "the whole run (build and cluster included)")")
  say ""; say "timing (seconds, longest first):"
  printf '%s\n' "${TIMES[@]}" | sort -rn
  if [ ${#FAILURES[@]} -gt 0 ]; then
    say ""; say "failed:"; printf '  %s\n' "${FAILURES[@]}"
  fi
  say ""
  say "$PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ]
}

# ---------------------------------------------------------------- demo, bench, shell
cmd_demo() {
  deps
  build_install
  cluster_start
  bash "$ROOT/scripts/demo.sh"
  cluster_stop
}

cmd_bench() {
  deps
  build_install
  cluster_start
  local report=$ROOT/bench-report.md b found=0
  {
    echo "# pg_shift benchmark report"
    echo
    echo "- machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -m)"
    echo "- server: $(psql -XAtc 'SELECT version()')"
    echo "- pg_shift $(sed -n "s/^default_version *= *'\(.*\)'/\1/p" pg_shift.control), $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo
  } >"$report"
  for b in test/bench/*.sh; do
    [ -e "$b" ] || continue
    found=1
    say "==> bench: $b"
    bash "$b" | tee -a "$report"
  done
  [ $found -eq 1 ] || echo "No benchmarks are defined yet (test/bench/*.sh)." | tee -a "$report"
  cluster_stop
  say "==> report written to $report"
}

# Long fuzz runs: each test/fuzz/*.sh prints TAP like an integration test and
# reads FUZZ_SEED (default: from the clock, printed) and FUZZ_MINUTES (default
# 10, shared between the scripts).  The bounded, fixed-seed versions of the
# same fuzzers run inside `make test`.
cmd_fuzz() {
  deps
  build_install
  cluster_start
  export FUZZ_SEED=${FUZZ_SEED:-$(date +%s)} FUZZ_MINUTES=${FUZZ_MINUTES:-10}
  say "==> fuzz: seed $FUZZ_SEED, $FUZZ_MINUTES minutes"
  local f out found=0
  for f in test/fuzz/*.sh; do
    [ -e "$f" ] || continue
    found=1
    out=$PGS_TMP/$(basename "$f").out
    say "--- $f"
    run_tap "$out" "$(basename "$f" .sh)" bash "$f"
    [ $TAP_RC -eq 0 ] || grep -q '^not ok' "$out" || fail "$(basename "$f"): exited $TAP_RC before finishing"
  done
  [ $found -eq 1 ] || say "no fuzzers are defined yet (test/fuzz/*.sh)"
  cluster_stop
  say ""
  say "$PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ]
}

# The operator model (test/model/operator_model.py) for MINUTES, from SEED:
# random sequences of operator actions, invariants checked after each.
cmd_soak() {
  deps
  build_install
  cluster_start
  local seed=${SEED:-$(date +%s)} minutes=${MINUTES:-60} out=$PGS_TMP/soak.out rc
  say "==> soak: the operator model, seed $seed, $minutes minutes"
  set +e
  PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 test/model/operator_model.py --seed "$seed" \
    --minutes "$minutes" --actions "${ACTIONS:-20}" | tee "$out"
  rc=${PIPESTATUS[0]}
  set -e
  count_tap "$out" soak
  [ "$rc" -eq 0 ] || grep -q '^not ok' "$out" || fail "soak: the model exited $rc"
  cluster_stop
  say ""
  say "$PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ]
}

cmd_exec() {
  build_install
  cluster_start
  local rc=0
  "$@" || rc=$?
  cluster_stop
  return $rc
}

cmd_shell() {
  build_install
  cluster_start
  say "PGHOST=$PGHOST PGPORT=$PGPORT PGUSER=$PGUSER; exit the shell to stop the cluster"
  "${SHELL:-bash}" -i || true
}

case "${1:-}" in
  deps) deps ;;
  test) shift; cmd_test "$@" ;;
  demo) cmd_demo ;;
  bench) cmd_bench ;;
  fuzz) cmd_fuzz ;;
  soak) cmd_soak ;;
  shell) cmd_shell ;;
  exec) shift; cmd_exec "$@" ;;
  *) die "usage: harness.sh deps|test [SUITE...]|demo|bench|fuzz|soak|shell|exec COMMAND..." ;;
esac
