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
#   make unit       runner unit tests (cmocka), no server needed
#   make valgrind   runner unit tests under valgrind, failing on leaks

# PostgreSQL 15 is the target; prefer its pg_config over whatever is first on PATH.
PG_CONFIG ?= $(firstword $(wildcard /usr/lib/postgresql/15/bin/pg_config) pg_config)

EXTENSION = pg_shift
# The single source of the version: default_version in the control file.
EXTVERSION := $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" $(EXTENSION).control)

MODULE_big = pg_shift
OBJS = extension/pg_shift.o extension/sqlfrag.o extension/backfill.o extension/checksum.o \
	extension/checksum_canon.o extension/checksum_scan.o extension/checksum_compare.o \
	extension/sync.o extension/lint.o

# The install script is generated; released install scripts and the upgrade
# scripts between them are checked in and never edited once released.
DATA_built = sql/$(EXTENSION)--$(EXTVERSION).sql
RELEASED = 0.1.0
DATA = $(foreach v,$(RELEASED),sql/$(EXTENSION)--$(v).sql) $(wildcard sql/$(EXTENSION)--*--*.sql)

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
ifneq ($(wildcard $(PGXS)),)
include $(PGXS)
all: runner
install: install-runner
clean: clean-runner
else
# No PostgreSQL server headers yet: only the targets that can install them work.
all install:
	@echo "pg_shift: PostgreSQL 15 development files not found ($(PG_CONFIG) --pgxs)." >&2
	@echo "Run 'make deps' (as root) or 'make demo', or install postgresql-server-dev-15." >&2
	@exit 2
endif

# The install script's sources, in order: the header, then one file per capability.
SQL_SOURCES = sql/$(EXTENSION).sql sql/bookkeeping.sql sql/backfill.sql sql/checksum.sql sql/sync.sql sql/lint.sql sql/grants.sql

sql/$(EXTENSION)--$(EXTVERSION).sql: $(SQL_SOURCES) $(EXTENSION).control
	cat $(SQL_SOURCES) | sed 's/@PG_SHIFT_VERSION@/$(EXTVERSION)/g' > $@

$(OBJS): $(EXTENSION).control
extension/checksum.o extension/checksum_canon.o extension/checksum_scan.o extension/checksum_compare.o: extension/checksum.h

.PHONY: runner install-runner clean-runner deps demo test bench fuzz unit valgrind

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

unit: runner
	$(MAKE) -C test/unit run

valgrind: runner
	$(MAKE) -C test/unit valgrind
