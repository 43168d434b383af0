/*-------------------------------------------------------------------------
 *
 * backfill_cron.c
 *	  The pg_cron schedule of a backfill job (CALL backfill_run's
 *	  schedule =>): once the job is done or cancelled it has nothing left to
 *	  do, and neither has a dropped job's.  Where pg_cron lives in this
 *	  database the schedule is removed, as the role running or dropping the
 *	  job; otherwise the caller is told how to remove it in pg_cron's
 *	  database.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "backfill.h"

PG_FUNCTION_INFO_V1(shift_backfill_unschedule);


/* A schedule to remove: its name, and how many were removed. */
typedef struct Unschedule
{
	const char *schedule;
	int64		removed;
} Unschedule;

/*
 * The caller's pg_cron jobs of this database named u->schedule are removed,
 * as the caller (the role that runs the job, or drops it).  Only the
 * caller's own, as cron.unschedule(name) would: a superuser sees every
 * role's rows of cron.job, and another role's schedule of the same name is
 * not this job's to remove.
 */
static void
unschedule_call(void *arg)
{
	Unschedule *u = arg;
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(u->schedule)};
	ShiftAs		as;
	int			rc;

	shift_as_begin(&as, shift_caller(), "pg_catalog, pg_temp");
	rc = SPI_execute_with_args("SELECT pg_catalog.count(cron.unschedule(j.jobid)) FROM cron.job j "
							   "WHERE j.jobname OPERATOR(pg_catalog.=) $1::pg_catalog.name "
							   "AND j.database OPERATOR(pg_catalog.=) pg_catalog.current_database() "
							   "AND j.username OPERATOR(pg_catalog.=) CURRENT_USER",
							   1, argtypes, args, NULL, false, 1);
	shift_as_end(&as);
	spi_check(rc, "removing a pg_cron schedule");
	u->removed = DatumGetInt64(spi_datum(1, &(bool){false}));
}

/*
 * The job is done, cancelled or dropped (why): the pg_cron schedule that
 * runs it (schedule =>, now or in an earlier run) has nothing left to do.
 * Where pg_cron lives in this database it is removed, as the caller (pg_cron
 * runs a job as the role that scheduled it, which may remove it; a role
 * dropping the job removes its own schedule, a superuser any); one already
 * gone is forgotten.  Otherwise the caller is told how to remove it there.
 * Returns true if the schedule is gone.
 */
bool
backfill_end_schedule(const char *name, const char *schedule, const char *why)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(name)};
	int			rc;
	const char *cron_db;

	if (schedule == NULL)
	{
		(void) ctl("SELECT schedule FROM shift.backfill WHERE name OPERATOR(pg_catalog.=) $1",
				   1, argtypes, args, NULL, true, 1);
		schedule = SPI_processed > 0 ? spi_text(1) : NULL;
		if (schedule == NULL)
			return false;
	}
	/* pg_cron's cron.job and cron.unschedule(bigint) in this database */
	rc = SPI_execute("SELECT shift_internal._pg_cron_here()", true, 1);
	spi_check(rc, "looking for pg_cron");
	if (DatumGetBool(spi_datum(1, &(bool){false})))
	{
		Unschedule	u = {schedule, 0};
		ErrorData  *e = shift_try(unschedule_call, &u);

		if (e == NULL)
		{
			(void) ctl("UPDATE shift.backfill SET schedule = NULL WHERE name OPERATOR(pg_catalog.=) $1",
					   1, argtypes, args, NULL, false, 0);
			if (u.removed > 0)
				ereport(NOTICE,
						(errmsg("backfill job \"%s\" is %s: its pg_cron schedule \"%s\" was removed",
								name, why, schedule)));
			else
				ereport(NOTICE,
						(errmsg("backfill job \"%s\" is %s: role \"%s\" has no pg_cron schedule \"%s\" in this database",
								name, why, GetUserNameFromId(shift_caller(), false), schedule),
						 errhint("If another role scheduled it, remove it as that role with SELECT cron.unschedule('%s');",
								 schedule)));
			return true;
		}
		ereport(WARNING,
				(errmsg("backfill job \"%s\" is %s, but its pg_cron schedule \"%s\" could not be removed: %s",
						name, why, schedule, e->message),
				 errhint("Remove it as the role that scheduled it with SELECT cron.unschedule('%s');", schedule)));
		return false;
	}
	cron_db = GetConfigOption("cron.database_name", true, false);
	ereport(NOTICE,
			(errmsg("backfill job \"%s\" is %s: its pg_cron schedule \"%s\" has nothing left to do",
					name, why, schedule),
			 errhint("Remove it in database \"%s\" with SELECT cron.unschedule('%s');",
					 cron_db ? cron_db : "postgres", schedule)));
	return false;
}

/*
 * shift_internal._backfill_unschedule(name text) returns bool
 *
 * Before a job is dropped (shift.backfill_drop, or the down of the phase
 * that made it): its recorded pg_cron schedule is removed where pg_cron
 * lives in this database, as the role that called pg_shift, or the caller
 * is told how.  Runs inside the owner's implementation of the drop, which
 * has checked that the caller may act for the job's owner.
 */
Datum
shift_backfill_unschedule(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	bool		gone;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	gone = backfill_end_schedule(name, NULL, "dropped");
	SPI_finish();
	PG_RETURN_BOOL(gone);
}
