/*-------------------------------------------------------------------------
 *
 * pg_shift.c
 *	  Module entry point of the pg_shift extension and shift.version().
 *
 * The capabilities live one per file (bookkeeping, backfill, checksum,
 * sync, lint); this file holds only what the whole module shares.  Nothing
 * here takes locks or opens transactions of its own.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"

#include "pg_shift.h"

#ifndef PG_SHIFT_VERSION
#error "PG_SHIFT_VERSION must be defined by the build (see the Makefile)"
#endif

PG_MODULE_MAGIC;

void		_PG_init(void);

/* Module load: the sync triggers' cache invalidation callbacks. */
void
_PG_init(void)
{
	shift_sync_init();
}

PG_FUNCTION_INFO_V1(shift_version);

/*
 * shift.version() returns text
 *
 * The version of the loaded shared library, taken from default_version in
 * pg_shift.control at build time.  The runner compares it with its own
 * version and with pg_extension.extversion, so a library left behind by an
 * incomplete upgrade is caught before anything runs.
 */
Datum
shift_version(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(PG_SHIFT_VERSION));
}
