/*-------------------------------------------------------------------------
 *
 * backfill_cron.c
 *	  The pg_cron schedule of a backfill job (CALL backfill_run's
 *	  schedule =>): once the job is done or cancelled it has nothing left to
 *	  do.  Where pg_cron lives in this database the schedule is removed, as
 *	  the role running the job; otherwise the run says how to remove it in
 *	  pg_cron's database.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "backfill.h"


/* The pg_cron job a run was told about (schedule =>) is removed: in this database. */
static void
unschedule_call(void *arg)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum((char *) arg)};
	int			rc;

	rc = SPI_execute_with_args("SELECT cron.unschedule($1::pg_catalog.name)", 1, argtypes, args,
							   NULL, false, 1);
	spi_check(rc, "removing a pg_cron schedule");
}

/*
 * The job is done or cancelled (why): the pg_cron schedule that runs it
 * (schedule =>, now or in an earlier run) has nothing left to do.  Where
 * pg_cron lives in this database it is removed, as the role that runs it
 * (pg_cron runs a job as the role that scheduled it, which may remove it);
 * otherwise the run says how to remove it there.  Returns true if removed.
 */
bool
backfill_end_schedule(BackfillJob *job, const char *schedule, const char *why)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(job->name)};
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
	/* cron.unschedule(job_name name) since pg_cron 1.3 */
	rc = SPI_execute("SELECT pg_catalog.to_regprocedure('cron.unschedule(name)') IS NOT NULL", true, 1);
	spi_check(rc, "looking for pg_cron");
	if (DatumGetBool(spi_datum(1, &(bool){false})))
	{
		ErrorData  *e = shift_try(unschedule_call, (void *) schedule);

		if (e == NULL)
		{
			(void) ctl("UPDATE shift.backfill SET schedule = NULL WHERE name OPERATOR(pg_catalog.=) $1",
					   1, argtypes, args, NULL, false, 0);
			ereport(NOTICE,
					(errmsg("backfill job \"%s\" is %s: its pg_cron schedule \"%s\" was removed",
							job->name, why, schedule)));
			return true;
		}
		ereport(WARNING,
				(errmsg("backfill job \"%s\" is %s, but its pg_cron schedule \"%s\" could not be removed: %s",
						job->name, why, schedule, e->message),
				 errhint("Remove it with SELECT cron.unschedule('%s');", schedule)));
		return false;
	}
	cron_db = GetConfigOption("cron.database_name", true, false);
	ereport(NOTICE,
			(errmsg("backfill job \"%s\" is %s: its pg_cron schedule \"%s\" has nothing left to do",
					job->name, why, schedule),
			 errhint("Remove it in database \"%s\" with SELECT cron.unschedule('%s');",
					 cron_db ? cron_db : "postgres", schedule)));
	return false;
}
