/*-------------------------------------------------------------------------
 *
 * backfill_run.c
 *	  The body of CALL shift.backfill_run: batches, each in a subtransaction
 *	  and committed, until the job ends or the run's limits are reached.
 *	  Before each batch the job's settings and state are reread (so a pause,
 *	  cancel or backfill_set from any session takes effect there), the run
 *	  waits while replication replay lag is over max_lag or the throttle query
 *	  says so, and a batch that failed on a lock timeout, a deadlock or a
 *	  serialization failure is retried with a growing, jittered backoff.
 *	  Other errors mark the job failed and end the run.
 *
 * The caller holds the job's run lock for the session (backfill.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "common/pg_prng.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "backfill.h"

/* Sleeps up to ms, waking for interrupts (a cancel ends the run). */
static void
sleep_ms(double ms)
{
	TimestampTz until = GetCurrentTimestamp() + (TimestampTz) (ms * 1000);

	for (;;)
	{
		long		left = (long) ((until - GetCurrentTimestamp()) / 1000);

		if (left <= 0)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Min(left, 1000), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}


/*
 * Why the job should wait now, or NULL: replication replay lag over
 * max_lag, or the throttle query returning true.  lag_visible tells whether
 * the role can see the standbys' lag (pg_read_all_stats).
 */
static char *
throttle_reason(BackfillJob *job, bool lag_visible)
{
	int			rc;
	bool		isnull;

	if (job->has_max_lag && lag_visible)
	{
		double		lag;

		rc = SPI_execute("SELECT pg_catalog.date_part('epoch', pg_catalog.max(replay_lag))::pg_catalog.float8"
						 " FROM pg_catalog.pg_stat_replication", true, 1);
		spi_check(rc, "reading replication lag");
		lag = DatumGetFloat8(spi_datum(1, &isnull));
		if (!isnull && lag > job->max_lag_secs)
			return psprintf("replication replay lag %.1f s is over max_lag %.1f s", lag,
							job->max_lag_secs);
	}
	if (job->throttle_query)
	{
		ShiftAs		as;

		as_owner(job, &as);
		rc = SPI_execute(job->throttle_query, true, 1);
		shift_as_end(&as);
		if (rc != SPI_OK_SELECT || SPI_tuptable->tupdesc->natts != 1 ||
			SPI_gettypeid(SPI_tuptable->tupdesc, 1) != BOOLOID)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("throttle_query of backfill job \"%s\" must return one boolean column",
							job->name)));
		if (SPI_processed > 0)
		{
			Datum		d = spi_datum(1, &isnull);

			if (!isnull && DatumGetBool(d))
				return pstrdup("the throttle query returned true");
		}
	}
	return NULL;
}

static void
record_throttle(BackfillJob *job, const char *reason)
{
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		args[2];
	char		nulls[3] = "  ";

	args[0] = CStringGetTextDatum(job->name);
	if (reason)
		args[1] = CStringGetTextDatum(reason);
	else
		nulls[1] = 'n';
	(void) ctl("UPDATE shift.backfill SET throttled = $2"
			   " WHERE name OPERATOR(pg_catalog.=) $1",
			   2, argtypes, args, nulls, false, 0);
}

static void
record_failure(BackfillJob *job, ErrorData *edata)
{
	Oid			argtypes[3] = {TEXTOID, TEXTOID, TEXTOID};
	Datum		args[3];

	args[0] = CStringGetTextDatum(job->name);
	args[1] = CStringGetTextDatum(edata->message ? edata->message : "unknown error");
	args[2] = CStringGetTextDatum(unpack_sql_state(edata->sqlerrcode));
	(void) ctl("UPDATE shift.backfill SET last_error = shift_internal.cap($2), last_sqlstate = $3"
			   " WHERE name OPERATOR(pg_catalog.=) $1",
			   3, argtypes, args, NULL, false, 0);
	backfill_store_state(job, BACKFILL_FAILED, "updated_at = pg_catalog.clock_timestamp()");
}

static bool
is_retryable(int sqlerrcode)
{
	return sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE ||
		sqlerrcode == ERRCODE_T_R_DEADLOCK_DETECTED ||
		sqlerrcode == ERRCODE_T_R_SERIALIZATION_FAILURE;
}

/*
 * The lock_timeout a batch runs with: the job's, but at most half of
 * deadlock_timeout.  A batch and an application transaction can deadlock on
 * the copy's keys (each waits for a key of the other's uncommitted insert),
 * and the deadlock detector then aborts whichever began waiting first, most
 * often the application.  A batch that gives up before any deadlock check
 * runs is the one that loses: it rolls back and is retried.
 */
static int
batch_lock_timeout(int job_ms)
{
	return Min(job_ms, Max(DeadlockTimeout / 2, 1));
}

typedef struct OneBatch
{
	BackfillJob *job;
	BackfillPlans *plans;
	int			retries;
	BatchResult *res;
} OneBatch;

static void
one_batch(void *arg)
{
	OneBatch   *b = arg;
	BackfillJob *job = b->job;
	char		lt[32];

	snprintf(lt, sizeof(lt), "%dms", batch_lock_timeout(job->lock_timeout_ms));
	(void) set_config_option("lock_timeout", lt, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
	backfill_lock_checkpoint(job);
	memset(b->res, 0, sizeof(*b->res));
	if (!BACKFILL_HALTED(job->state))
		backfill_do_batch(job, b->plans, b->retries, b->res);
}

/*
 * One batch in a subtransaction, with batch_lock_timeout.  Returns NULL
 * when it committed its work into the current transaction, or the error of
 * a retryable failure (the subtransaction rolled back).  Other errors are
 * rethrown after the job is marked failed (a cancel or a shutdown is
 * rethrown as it is: the job resumes).
 */
static ErrorData *
run_one_batch(BackfillJob *job, BackfillPlans *plans, int retries, BatchResult *res)
{
	OneBatch	b = {job, plans, retries, res};
	ErrorData  *e = shift_try(one_batch, &b);

	if (e != NULL && !is_retryable(e->sqlerrcode))
	{
		record_failure(job, e);
		SPI_commit();
		ReThrowError(e);
	}
	return e;
}

/* Are there standbys (whose lag this role may not be allowed to see)? */
static bool
standbys_exist(void)
{
	int			rc = SPI_execute("SELECT 1 FROM pg_catalog.pg_stat_replication", true, 1);

	spi_check(rc, "looking for standbys");
	return SPI_processed > 0;
}

static bool
can_see_lag(void)
{
	return has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);
}

/*
 * The body of backfill_run: batches until the job ends or a limit is
 * reached.  Runs under the job's session lock; the caller releases it and
 * the plans whatever happens.
 */
void
backfill_run_batches(BackfillJob *job, BackfillPlans *plans, RunLimits *limits,
			MemoryContext job_cxt)
{
	MemoryContext batch_cxt = AllocSetContextCreate(job_cxt, "pg_shift backfill batch",
													ALLOCSET_DEFAULT_SIZES);
	TimestampTz started = GetCurrentTimestamp();
	bool		lag_visible = can_see_lag();
	bool		warned_lag = false;
	char	   *throttled = NULL;
	int			retries = 0;
	int64		ran = 0;

	job->since = started;
	for (;;)
	{
		BatchResult res;
		ErrorData  *edata;
		double		elapsed_ms;
		char	   *reason;

		CHECK_FOR_INTERRUPTS();
		MemoryContextReset(batch_cxt);
		MemoryContextSwitchTo(batch_cxt);
		elapsed_ms = (GetCurrentTimestamp() - started) / 1000.0;
		if ((limits->max_runtime_ms >= 0 && elapsed_ms >= limits->max_runtime_ms) ||
			(limits->max_batches >= 0 && ran >= limits->max_batches))
			break;

		backfill_refresh_settings(job);
		if (BACKFILL_HALTED(job->state))
			break;
		/* a sync made or dropped since the statements were prepared changes their locks */
		if (backfill_copy_lock_mode(job) != job->lock_mode)
		{
			MemoryContext cxt = MemoryContextSwitchTo(job_cxt);

			backfill_free_plans(plans);
			backfill_prepare_plans(job, plans, true);
			MemoryContextSwitchTo(cxt);
		}

		/* throttles: wait and look again */
		if (job->has_max_lag && !lag_visible && !warned_lag && standbys_exist())
		{
			ereport(WARNING,
					(errmsg("backfill job \"%s\" cannot see replication lag, so max_lag is not applied",
							job->name),
					 errhint("Grant pg_monitor (or pg_read_all_stats) to the role running it.")));
			warned_lag = true;
		}
		reason = throttle_reason(job, lag_visible);
		if (reason)
		{
			if (throttled == NULL || strcmp(throttled, reason) != 0)
			{
				record_throttle(job, reason);
				SPI_commit();
				throttled = MemoryContextStrdup(job_cxt, reason);
			}
			sleep_ms(limits->max_runtime_ms >= 0 ?
					 Min(1000, Max(0, limits->max_runtime_ms - elapsed_ms)) : 1000);
			continue;
		}
		throttled = NULL;

		edata = run_one_batch(job, plans, retries, &res);
		if (edata)
		{
			double		backoff;

			if (++retries > job->max_retries)
			{
				record_failure(job, edata);
				SPI_commit();
				ereport(ERROR,
						(errcode(edata->sqlerrcode),
						 errmsg("backfill job \"%s\" gave up after %d retries: %s", job->name,
								retries - 1, edata->message),
						 errhint("Raise max_retries (or lock_timeout_ms, which counts up to half of deadlock_timeout) with shift.backfill_set, or find what holds the locks.")));
			}
			backoff = Min(10000.0, 50.0 * pow(2.0, retries - 1)) *
				(0.5 + pg_prng_double(&pg_global_prng_state) / 2);
			SPI_commit();
			sleep_ms(backoff);
			continue;
		}
		SPI_commit();
		job->since = GetCurrentTimestamp();
		ran++;
		retries = 0;
		if (res.done || BACKFILL_HALTED(job->state))
			break;
		if (job->sleep_ratio > 0)
			sleep_ms(res.ms * job->sleep_ratio);
	}
	MemoryContextSwitchTo(job_cxt);
	MemoryContextDelete(batch_cxt);
}
