# pg_shift: the extension (built here with PGXS) and the pgshift runner
# (built by runner/Makefile; PGXS allows one MODULE_big or PROGRAM per file).
#
#   make            build the extension and the runner
#   make install    install both (pgshift goes to $(RUNNER_BINDIR))
#   make demo       install dependencies if missing, build, install, run an
#                   example migration against a throwaway cluster
#   make test       every test against a throwaway cluster; ends "N passed, N failed"
#   make bench      benchmarks (ratios against baselines, never pass/fail)
#   make fuzz       long fuzz runs (test/fuzz/*.sh; FUZZ_SEED=, FUZZ_MINUTES=)
#   make soak       the operator model for long (SEED=, MINUTES=, default 60)
#   make unit       runner unit tests (cmocka), no server needed
#   make valgrind   runner unit tests under valgrind, failing on leaks

# PostgreSQL 15 is the target; prefer its pg_config over whatever is first on PATH.
PG_CONFIG ?= $(firstword $(wildcard /usr/lib/postgresql/15/bin/pg_config) pg_config)

EXTENSION = pg_shift
# The single source of the version: default_version in the control file.
EXTVERSION := $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" $(EXTENSION).control)

MODULE_big = pg_shift
OBJS = extension/pg_shift.o extension/control.o extension/sqlgen.o extension/sqlfrag.o extension/backfill.o extension/backfill_job.o extension/backfill_sql.o \
	extension/backfill_batch.o extension/backfill_run.o extension/backfill_cron.o extension/checksum.o \
	extension/checksum_canon.o extension/checksum_scan.o extension/checksum_compare.o \
	extension/sync.o extension/lint.o extension/capture.o
OBJS += extension/lint_rules.o
OBJS += extension/lint_alter.o
OBJS += extension/lint_analyze.o
OBJS += extension/lint_facts.o
OBJS += extension/lint_report.o
OBJS += extension/sync_config.o
OBJS += extension/sync_check.o
OBJS += extension/sync_column.o
OBJS += extension/checksum_side.o
OBJS += extension/checksum_type.o

# The install script is generated; released install scripts and the upgrade
# scripts between them are checked in and never edited once released.
RELEASED = 0.1.0
LAST_RELEASE = $(lastword $(RELEASED))
DATA_built = sql/$(EXTENSION)--$(EXTVERSION).sql
# The upgrade from the last release to the version in development is
# generated too (see its rule below); at the release it is checked in as
# built, and the version joins RELEASED.
ifneq ($(LAST_RELEASE),$(EXTVERSION))
UPGRADE = sql/$(EXTENSION)--$(LAST_RELEASE)--$(EXTVERSION).sql
DATA_built += $(UPGRADE)
endif
DATA = $(foreach v,$(RELEASED),sql/$(EXTENSION)--$(v).sql) \
	$(filter-out $(UPGRADE),$(wildcard sql/$(EXTENSION)--*--*.sql))

PG_CPPFLAGS = -DPG_SHIFT_VERSION=\"$(EXTVERSION)\"
# PostgreSQL's headers and fmgr macros trip these three -Wextra warnings.
PG_CFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-sign-compare \
	-Wno-missing-field-initializers

# pg_regress suites, one per capability (test/sql/NAME.sql, test/expected/NAME.out).
REGRESS = $(patsubst test/sql/%.sql,%,$(sort $(wildcard test/sql/*.sql)))
REGRESS_OPTS = --inputdir=test --outputdir=test/results

RUNNER_BINDIR ?= /usr/local/bin
export PG_CONFIG EXTVERSION

PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
# "PostgreSQL 15.4 (...)" -> 15.  The checksums' heap path reads PostgreSQL 15
# internals, so another major version is refused, not built.
PG_VERSION_TEXT := $(shell $(PG_CONFIG) --version 2>/dev/null)
PG_MAJOR := $(firstword $(subst ., ,$(word 2,$(PG_VERSION_TEXT))))
ifeq ($(wildcard $(PGXS)),)
# No PostgreSQL server headers yet: only the targets that can install them work.
all install:
	@echo "pg_shift: PostgreSQL 15 development files not found ($(PG_CONFIG) --pgxs)." >&2
	@echo "Run 'make deps' (as root) or 'make demo', or install postgresql-server-dev-15." >&2
	@exit 2
else ifneq ($(PG_MAJOR),15)
all install:
	@echo "pg_shift: needs PostgreSQL 15, but $(PG_CONFIG) is $(PG_VERSION_TEXT)." >&2
	@echo "Point PG_CONFIG at PostgreSQL 15's pg_config: make PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config" >&2
	@exit 2
else
include $(PGXS)
# PGXS does not track headers: every object is rebuilt when a shared header changes
$(OBJS): $(wildcard extension/*.h)
all: runner
install: install-runner
clean: clean-runner
endif

# The install script's sources, in order: the header, then one file per capability.
SQL_SOURCES = sql/$(EXTENSION).sql sql/control.sql sql/bookkeeping.sql sql/backfill.sql sql/capture.sql sql/engines.sql sql/checksum.sql sql/sync.sql sql/cutover.sql sql/runner_api.sql sql/lint.sql sql/monitor.sql sql/move.sql sql/version.sql sql/comments.sql sql/grants.sql

sql/$(EXTENSION)--$(EXTVERSION).sql: $(SQL_SOURCES) $(EXTENSION).control
	cat $(SQL_SOURCES) | sed 's/@PG_SHIFT_VERSION@/$(EXTVERSION)/g' > $@

# The upgrade script: its hand-written part, sql/upgrade/A--B.sql (what
# becomes of the data: the last release's tables and rows), with the whole
# install script in place of its line "-- @INSTALL_SCRIPT@" (the install
# script's own \echo guard left out).  The functions, views, types, policies
# and grants an upgrade makes are thus exactly what a fresh install makes,
# however the sources change until the release.
ifdef UPGRADE
$(UPGRADE): sql/upgrade/$(LAST_RELEASE)--$(EXTVERSION).sql sql/$(EXTENSION)--$(EXTVERSION).sql
	awk -v script='$(word 2,$^)' \
	  '$$0 == "-- @INSTALL_SCRIPT@" { n++; while ((getline l < script) > 0) if (l !~ /^\\echo /) print l; next } \
	   { print } \
	   END { if (n != 1) { print FILENAME ": needs one line -- @INSTALL_SCRIPT@, has " n + 0 > "/dev/stderr"; exit 1 } }' \
	  $< > $@.tmp
	mv $@.tmp $@
endif

$(OBJS): $(EXTENSION).control
extension/checksum.o extension/checksum_side.o extension/checksum_type.o extension/checksum_canon.o \
	extension/checksum_scan.o extension/checksum_compare.o: extension/checksum.h

.PHONY: runner install-runner clean-runner deps demo test bench fuzz soak unit valgrind

runner:
	$(MAKE) -C runner

install-runner: runner
	$(MAKE) -C runner install BINDIR='$(DESTDIR)$(RUNNER_BINDIR)'

clean-runner:
	$(MAKE) -C runner clean
	$(MAKE) -C test/unit clean
	rm -rf test/results

deps:
	bash test/harness.sh deps

demo:
	bash test/harness.sh demo

test:
	bash test/harness.sh test

bench:
	bash test/harness.sh bench

fuzz:
	bash test/harness.sh fuzz

soak:
	bash test/harness.sh soak

unit: runner
	$(MAKE) -C test/unit run

valgrind: runner
	$(MAKE) -C test/unit valgrind
