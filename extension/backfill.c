/*-------------------------------------------------------------------------
 *
 * backfill.c
 *	  Batched, resumable, adaptive, throttled backfills: the SQL entry
 *	  points shift_internal._backfill_check, shift.backfill_step,
 *	  CALL shift.backfill_run and shift_internal.backfill_lock_key, and the
 *	  job's run lock.  What the other backfill_*.c files do is listed in
 *	  backfill.h.
 *
 * A job walks its table in key order (the primary key, or a unique index
 * on NOT NULL columns) from the start up to a bound fixed when it starts.
 * One batch, in one transaction:
 *
 *	 1. lock the job's row (FOR UPDATE) and read its checkpoint;
 *	 2. find the batch's upper key: the last of the next n keys after the
 *		checkpoint (a keyset LIMIT on the key index, never OFFSET);
 *	 3. UPDATE ... SET <set> (or INSERT INTO <into> SELECT ...) for the keys
 *		in (checkpoint, upper key];
 *	 4. write the new checkpoint and a batch log row.
 *
 * The rows and the checkpoint commit together, so however the session, the
 * runner or the server dies, every row is processed exactly once.
 *
 * backfill_run is a procedure called non-atomically: it runs each batch in
 * a subtransaction (so lock timeouts, deadlocks and serialization failures
 * can be retried) and commits after each.  It holds the job's run lock, a
 * session-level advisory lock on (0x73686266 'shbf', hashtext(name)) defined
 * by job_lock_key alone, for the whole run, so one session runs a job at a
 * time; backfill_step takes the same lock for its transaction.  Before each
 * batch it rereads the job's settings, so shift.backfill_pause/resume/
 * cancel/set from any session take effect at the next batch.  Batch sizes
 * adapt to a target duration; runs wait while replication replay lag or a
 * user throttle query says so.
 *
 * Who runs what (see control.c): the job's SQL (its set, where, select and
 * throttle query, and the statements built around them) runs as the job's
 * owner under the search_path recorded when it was made, whoever runs the
 * job; only the owner, a role with its privileges or a superuser may run
 * it, and only while every field it executes is what _backfill_check
 * checked (shift_internal.backfill_verify).  The job's row and its batch
 * log are read and written as the owner of pg_shift (shift_ctl_execute).
 * The generated parts name every operator by schema, as the key index's
 * operator family has it (sqlgen.c), and every table by schema; the
 * fragments are checked with the server's parser: each must be exactly the
 * clause it claims to be, so none can widen the key range.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "backfill.h"

PG_FUNCTION_INFO_V1(shift_backfill_check);
PG_FUNCTION_INFO_V1(shift_backfill_step);
PG_FUNCTION_INFO_V1(shift_backfill_run);
PG_FUNCTION_INFO_V1(shift_backfill_lock_key);

/* The first key of every job's run lock (see job_lock_key). */
#define BACKFILL_LOCK_KEY	0x73686266	/* 'shbf' */

/*
 * The job's run lock: the advisory lock on the two int4 keys
 * (0x73686266 'shbf', hashtext(name)), the only definition of it.  SQL gets
 * it from shift_internal.backfill_lock_key (backfill_drop takes it,
 * shift.backfill_progress finds its holder in pg_locks).  pg_shift 0.1.0
 * used the same keys, so a run started before ALTER EXTENSION UPDATE and
 * the new code still exclude each other.
 */
static void
job_lock_key(const char *name, int32 *key1, int32 *key2)
{
	*key1 = BACKFILL_LOCK_KEY;
	*key2 = DatumGetInt32(DirectFunctionCall1Coll(hashtext, DEFAULT_COLLATION_OID,
												  CStringGetTextDatum(name)));
}

/* Takes the job's run lock for the session (run) or the transaction (step). */
static bool
try_job_lock(const char *name, bool session)
{
	int32		key1;
	int32		key2;

	job_lock_key(name, &key1, &key2);
	return DatumGetBool(DirectFunctionCall2(session ? pg_try_advisory_lock_int4 :
											pg_try_advisory_xact_lock_int4,
											Int32GetDatum(key1), Int32GetDatum(key2)));
}

static void
release_job_lock(const char *name)
{
	int32		key1;
	int32		key2;

	job_lock_key(name, &key1, &key2);
	(void) DirectFunctionCall2(pg_advisory_unlock_int4, Int32GetDatum(key1),
							   Int32GetDatum(key2));
}

static void
lock_busy_error(const char *name)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_IN_USE),
			 errmsg("backfill job \"%s\" is being run by another session", name),
			 errhint("SELECT running_pid FROM shift.backfill_progress WHERE name = '%s' names it.",
					 name)));
}

/* ---------------------------------------------------------------- shift_internal.backfill_lock_key */

/*
 * shift_internal.backfill_lock_key(name text, OUT key1 int4, OUT key2 int4)
 *
 * The two keys of the job's run lock (see job_lock_key), as
 * pg_advisory_lock(key1, key2) takes them; pg_locks shows the lock with
 * classid = key1, objid = key2 (as oid) and objsubid = 2.
 */
Datum
shift_backfill_lock_key(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[2];
	bool		nulls[2] = {false, false};
	int32		key1;
	int32		key2;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "backfill_lock_key must return a row");
	job_lock_key(text_to_cstring(PG_GETARG_TEXT_PP(0)), &key1, &key2);
	values[0] = Int32GetDatum(key1);
	values[1] = Int32GetDatum(key2);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

/* ---------------------------------------------------------------- shift_internal._backfill_check */

/*
 * Stores what _backfill_check resolved: the key index (none for a foreign
 * table) and its columns, and a copy's columns and select list.
 */
static void
store_resolved(BackfillJob *job)
{
	Datum		keynames[INDEX_MAX_KEYS];
	Oid			argtypes[5] = {TEXTOID, OIDOID, TEXTARRAYOID, TEXTARRAYOID, TEXTOID};
	Datum		args[5];
	char		nulls[6] = "     ";
	int			i;

	for (i = 0; i < job->nkeys; i++)
		keynames[i] = CStringGetTextDatum(job->key_names[i]);
	args[0] = CStringGetTextDatum(job->name);
	args[1] = ObjectIdGetDatum(job->key_index);
	if (!OidIsValid(job->key_index))
		nulls[1] = 'n';			/* a foreign table's key: its columns alone */
	args[2] = PointerGetDatum(construct_array(keynames, job->nkeys, TEXTOID, -1, false, TYPALIGN_INT));
	if (job->copy)
	{
		Datum	   *c = palloc(sizeof(Datum) * list_length(job->into_columns));
		ListCell   *lc;

		i = 0;
		foreach(lc, job->into_columns)
			c[i++] = CStringGetTextDatum(lfirst(lc));
		args[3] = PointerGetDatum(construct_array(c, i, TEXTOID, -1, false, TYPALIGN_INT));
		args[4] = CStringGetTextDatum(job->select_list);
	}
	else
		nulls[3] = nulls[4] = 'n';
	(void) ctl("UPDATE shift.backfill SET key_index = $2::pg_catalog.regclass,"
			   " key_columns = $3, into_columns = $4, select_list = $5"
			   " WHERE name OPERATOR(pg_catalog.=) $1",
			   5, argtypes, args, nulls, false, 0);
}

/*
 * shift_internal._backfill_check(name text) returns void
 *
 * Called by backfill_create (and backfill_set) in the same transaction:
 * resolves the key and, for a copy, the default column mapping, stores them,
 * checks every SQL fragment and prepares the job's statements.
 */
Datum
shift_backfill_check(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	BackfillJob *job;
	BackfillPlans plans;

	SPI_connect();
	job = backfill_load_job(name, true);
	if (!OidIsValid(job->owner_id) || !shift_may_act_for(job->owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("backfill job \"%s\" belongs to role \"%s\"", name, job->owner)));
	backfill_check_fragments(job);

	if (job->copy)
		backfill_resolve_copy(job);
	store_resolved(job);

	/* every statement must prepare: errors in the job's SQL show up now */
	memset(&plans, 0, sizeof(plans));
	backfill_prepare_plans(job, &plans, false);
	if (job->throttle_query)
	{
		ShiftAs		as;
		SPIPlanPtr	plan;

		as_owner(job, &as);
		plan = SPI_prepare(job->throttle_query, 0, NULL);
		shift_as_end(&as);
		if (plan == NULL)
			elog(ERROR, "could not prepare the throttle query of backfill job \"%s\"", name);
	}
	SPI_finish();
	PG_RETURN_VOID();
}

/* ---------------------------------------------------------------- shift.backfill_step */

/*
 * shift.backfill_step(name text, OUT keys bigint, OUT rows bigint,
 *                     OUT done boolean)
 *
 * Exactly one batch in the caller's transaction: no commit, no throttling,
 * no retries.  Errors propagate to the caller (whose transaction then rolls
 * the batch and its checkpoint back together).
 */
Datum
shift_backfill_step(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	BackfillJob *job;
	BackfillPlans plans;
	BatchResult res;
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "backfill_step must return a row");
	tupdesc = BlessTupleDesc(tupdesc);
	if (!try_job_lock(name, false))
		lock_busy_error(name);

	SPI_connect();
	job = backfill_load_job(name, true);
	backfill_check_owner(job);
	memset(&res, 0, sizeof(res));
	if (job->state == BACKFILL_DONE)
		res.done = true;
	else if (job->state == BACKFILL_PAUSED || job->state == BACKFILL_CANCELLED)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("backfill job \"%s\" is %s", name, backfill_state_name(job->state)),
				 errhint("%s", job->state == BACKFILL_PAUSED ?
						 "Resume it with shift.backfill_resume." :
						 "A cancelled job does not run again; drop it and create a new one.")));
	else
	{
		backfill_check_fragments(job);
		memset(&plans, 0, sizeof(plans));
		backfill_prepare_plans(job, &plans, false);
		backfill_do_batch(job, &plans, 0, &res);
	}
	SPI_finish();

	values[0] = Int64GetDatum(res.keys);
	values[1] = Int64GetDatum(res.rows);
	values[2] = BoolGetDatum(res.done);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* ---------------------------------------------------------------- CALL shift.backfill_run */

/*
 * CALL shift.backfill_run(name text, max_runtime interval DEFAULT NULL,
 *                         max_batches bigint DEFAULT NULL,
 *                         schedule text DEFAULT NULL)
 *
 * Runs batches, committing after each, until the job is done, paused or
 * cancelled, or the limits are reached.  See the file header.  A job that
 * is paused when the run starts is an error (a pg_cron job shows it as
 * failed, with why); one that is done or cancelled ends its schedule.
 */
Datum
shift_backfill_run(PG_FUNCTION_ARGS)
{
	char	   *name;
	char	   *schedule;
	RunLimits	limits = {-1, -1};
	bool		nonatomic;
	BackfillPlans plans;
	BackfillJob *job;
	MemoryContext job_cxt;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("backfill_run needs a job name")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (!PG_ARGISNULL(1))
	{
		Interval   *iv = PG_GETARG_INTERVAL_P(1);

		limits.max_runtime_ms = (iv->time + (iv->day + iv->month * (double) DAYS_PER_MONTH) *
								 (double) USECS_PER_DAY) / 1000.0;
	}
	if (!PG_ARGISNULL(2))
		limits.max_batches = PG_GETARG_INT64(2);
	/* (the procedure of 0.1.0, before ALTER EXTENSION UPDATE, passes three) */
	schedule = PG_NARGS() < 4 || PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3));

	nonatomic = fcinfo->context && IsA(fcinfo->context, CallContext) &&
		!castNode(CallContext, fcinfo->context)->atomic;
	if (!nonatomic)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("backfill_run commits after every batch and cannot run inside a transaction block"),
				 errhint("CALL it outside BEGIN ... COMMIT (as pg_cron and pgshift do), or use shift.backfill_step in a transaction.")));

	SPI_connect_ext(SPI_OPT_NONATOMIC);
	job_cxt = AllocSetContextCreate(CurrentMemoryContext, "pg_shift backfill job",
									ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(job_cxt);
	memset(&plans, 0, sizeof(plans));
	job = backfill_load_job(name, false);
	backfill_check_owner(job);
	backfill_check_fragments(job);
	if (schedule != NULL)
	{
		Oid			argtypes[2] = {TEXTOID, TEXTOID};
		Datum		args[2] = {CStringGetTextDatum(name), CStringGetTextDatum(schedule)};

		(void) ctl("UPDATE shift.backfill SET schedule = $2 WHERE name OPERATOR(pg_catalog.=) $1",
				   2, argtypes, args, NULL, false, 0);
		SPI_commit();
	}
	if (job->state == BACKFILL_CANCELLED)
	{
		if (backfill_end_schedule(job->name, schedule, "cancelled"))
		{
			SPI_finish();
			PG_RETURN_VOID();
		}
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("backfill job \"%s\" was cancelled", name),
				 errhint("A cancelled job does not run again; drop it and create a new one.")));
	}
	if (job->state == BACKFILL_PAUSED)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("backfill job \"%s\" is paused", name),
				 errhint("Resume it with SELECT shift.backfill_resume('%s'); it goes on from its checkpoint.",
						 name)));
	if (job->state == BACKFILL_DONE)
	{
		(void) backfill_end_schedule(job->name, schedule, "done");
		SPI_finish();
		PG_RETURN_VOID();
	}
	if (!try_job_lock(name, true))
		lock_busy_error(name);

	PG_TRY();
	{
		backfill_prepare_plans(job, &plans, true);
		SPI_commit();
		backfill_run_batches(job, &plans, &limits, job_cxt);
	}
	PG_FINALLY();
	{
		backfill_free_plans(&plans);
		release_job_lock(name);
	}
	PG_END_TRY();

	if (job->state == BACKFILL_PAUSED)
		ereport(NOTICE, (errmsg("backfill job \"%s\" is paused", name)));
	else if (job->state == BACKFILL_DONE || job->state == BACKFILL_CANCELLED)
		(void) backfill_end_schedule(job->name, schedule, backfill_state_name(job->state));
	SPI_finish();
	PG_RETURN_VOID();
}
