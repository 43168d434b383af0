/*-------------------------------------------------------------------------
 *
 * pg_shift.c
 *	  Module entry point of the pg_shift extension and shift.version().
 *
 * The capabilities live one per file (bookkeeping, backfill, checksum,
 * sync, lint); this file holds only what the whole module shares.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "pg_shift.h"
#include "sync.h"

#ifndef PG_SHIFT_VERSION
#error "PG_SHIFT_VERSION must be defined by the build (see the Makefile)"
#endif

PG_MODULE_MAGIC;

void		_PG_init(void);

/*
 * Module load: the sync triggers' cache invalidation callbacks, lint's hook
 * that keeps user functions from running while it analyses SQL, and
 * pg_shift.version, the version of the application a session writes as
 * (see "the writer's version" in sync.c).  Any role may set it: it only
 * chooses which of a sync's two directions, both its owner's SQL, applies.
 */
void
_PG_init(void)
{
	DefineCustomStringVariable("pg_shift.version",
							   "The version of the application this session writes as.",
							   "A column-level sync made with new_version takes the writes of a "
							   "session whose version is new_version for the new application's: "
							   "it keeps the new columns as written and computes the old ones. "
							   "Empty: the first schema of the search_path is the version.",
							   &sync_version_setting,
							   "",
							   PGC_USERSET,
							   0,
							   NULL,
							   sync_version_setting_assign,
							   NULL);
	shift_sync_init();
	shift_lint_init();
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

/*
 * Runs fn(arg) in an internal subtransaction.  Returns NULL when it
 * succeeded, or the error it raised, copied into the caller's memory context
 * after the subtransaction was rolled back (releasing the locks, buffer pins
 * and snapshots it held; what fn allocated stays in the caller's context).
 * A query cancel or a shutdown is rethrown, after that rollback too.
 */
ErrorData *
shift_try(void (*fn) (void *arg), void *arg)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	ErrorData  *volatile failure = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		/* rolled back before anything is rethrown: no caller may meet it open */
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED ||
			edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN)
			ReThrowError(edata);
		failure = edata;
	}
	PG_END_TRY();
	return failure;
}
