/*-------------------------------------------------------------------------
 *
 * backfill_batch.c
 *	  One batch of a backfill job, in the caller's transaction with the job's
 *	  row locked: on the first, fix the job's upper bound (the largest key
 *	  now) and its estimated size; find the batch's upper key, run the batch
 *	  over the keys up to it, and write the checkpoint and a batch log row in
 *	  the same transaction as the rows.  The next batch's size aims at the
 *	  job's target duration at the rate observed (next_batch_size).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/int.h"
#include "portability/instr_time.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"

#include "backfill.h"
#include "sync.h"

/* The first batch of a run is small; later ones adapt. */
#define FIRST_BATCH			500

/*
 * Runs the batch statement (the UPDATE or the copy's INSERT) with
 * sync_backfill_writing set, and only while it runs: the rows it writes are
 * the backfill's, never taken for an application's by a column-level sync
 * (sync.c), whatever the job's SET computes.
 */
static int
run_batch_statement(SPIPlanPtr plan, BackfillArgMap *map, Datum *args, const char *nulls)
{
	bool		was = sync_backfill_writing;
	int			rc;

	sync_backfill_writing = true;
	PG_TRY();
	{
		rc = backfill_execute_plan(plan, map, args, nulls, false, 0);
	}
	PG_FINALLY();
	{
		sync_backfill_writing = was;
	}
	PG_END_TRY();
	return rc;
}

/*
 * A foreign table's key is unique and NOT NULL only if the remote side
 * says so, which pg_shift cannot check: a row whose key has a NULL column
 * is in no key range and would silently be left behind, so the first batch
 * looks for one (a query the FDW can send as it is) and refuses.
 */
static void
check_no_null_key(BackfillJob *job)
{
	ShiftAs		as;
	int			rc;

	as_owner(job, &as);
	rc = SPI_execute(backfill_null_key_sql(job), true, 1);
	shift_as_end(&as);
	spi_check(rc, "looking for NULL keys");
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_NOT_NULL_VIOLATION),
				 errmsg("foreign table %s has rows whose key is NULL",
						backfill_relation_name(job->relid, "table", job->name)),
				 errdetail("Backfill job \"%s\" walks the key (%s); a row with a NULL key column would never be copied.",
						   job->name, backfill_key_names(job)),
				 errhint("Name key columns that are NOT NULL on the remote side with key_columns =>.")));
}

/*
 * A foreign table's batch must end past the checkpoint: the remote side
 * found the batch's keys with "key > checkpoint", and PostgreSQL must
 * agree.  If it does not (the remote side compares the key otherwise: a
 * case-insensitive or space-padding collation, a type converted on the
 * way), the walk could stand still or skip rows; stop instead.
 */
static void
check_key_moved(BackfillJob *job, Datum *hi)
{
	int			i;

	for (i = 0; i < job->nkeys; i++)
	{
		ShiftKeyOps *ops = &job->key_ops[i];

		if (DatumGetBool(OidFunctionCall2Coll(get_opcode(ops->gt), ops->collation,
											  hi[i], job->last[i])))
			return;
		if (!DatumGetBool(OidFunctionCall2Coll(get_opcode(ops->eq), ops->collation,
											   hi[i], job->last[i])))
			break;
	}
	ereport(ERROR,
			(errcode(ERRCODE_DATA_EXCEPTION),
			 errmsg("the key of foreign table %s did not move past the checkpoint of backfill job \"%s\"",
					backfill_relation_name(job->relid, "table", job->name), job->name),
			 errdetail("After key %s the remote side returned key %s, which PostgreSQL does not sort after it.",
					   backfill_keys_to_text(job, job->last), backfill_keys_to_text(job, hi)),
			 errhint("The key must be unique and NOT NULL on the remote side and compare there as in PostgreSQL: an integer key, or text under a binary collation.")));
}

/*
 * Fixes the job's upper bound (the largest key now) and its estimated size,
 * on its first batch.  Returns false if the table is empty (the job is done).
 */
static bool
fix_upper_bound(BackfillJob *job)
{
	char	   *sql = backfill_last_key_sql(job);
	Datum		keys[INDEX_MAX_KEYS];
	Oid			argtypes[4] = {TEXTOID, BYTEAARRAYOID, TEXTOID, OIDOID};
	Datum		args[4];
	bool		isnull;
	int			i;
	int			rc;
	ShiftAs		as;

	if (job->foreign)
		check_no_null_key(job);
	as_owner(job, &as);
	rc = SPI_execute(sql, true, 1);
	shift_as_end(&as);
	spi_check(rc, "finding the last key");
	args[0] = CStringGetTextDatum(job->name);
	if (SPI_processed == 0)
	{
		backfill_store_state(job, BACKFILL_DONE,
							 "estimated_total = 0, started_at = pg_catalog.now(),"
							 " finished_at = pg_catalog.now(), updated_at = pg_catalog.now()");
		return false;
	}
	for (i = 0; i < job->nkeys; i++)
		keys[i] = spi_datum(i + 1, &isnull);
	backfill_copy_keys(job, job->keep_cxt, job->upper, keys);
	job->has_upper = true;

	/* the size: the planner's estimate, summed over leaf partitions */
	args[1] = backfill_keys_to_array(job, job->upper);
	args[2] = CStringGetTextDatum(backfill_keys_to_text(job, job->upper));
	args[3] = ObjectIdGetDatum(job->relid);
	(void) ctl("UPDATE shift.backfill SET upper_key = $2, upper_key_text = $3,"
			   "  estimated_total = (SELECT pg_catalog.round(pg_catalog.sum(c.reltuples)"
			   "                            FILTER (WHERE c.reltuples >= 0))::pg_catalog.int8"
			   "    FROM pg_catalog.pg_partition_tree($4::pg_catalog.regclass) t"
			   "    JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.relid WHERE t.isleaf),"
			   "  started_at = pg_catalog.now()"
			   " WHERE name OPERATOR(pg_catalog.=) $1 RETURNING estimated_total",
			   4, argtypes, args, NULL, false, 0);
	(void) spi_datum(1, &isnull);
	if (isnull)
	{
		/* never analyzed: count what there is to walk (as the job's owner) */
		Oid			counttypes[2] = {TEXTOID, INT8OID};
		Datum		countargs[2];

		sql = backfill_count_sql(job);
		as_owner(job, &as);
		rc = SPI_execute(sql, true, 1);
		shift_as_end(&as);
		spi_check(rc, "counting the rows to walk");
		countargs[0] = args[0];
		countargs[1] = spi_datum(1, &isnull);
		(void) ctl("UPDATE shift.backfill SET estimated_total = $2"
				   " WHERE name OPERATOR(pg_catalog.=) $1",
				   2, counttypes, countargs, NULL, false, 0);
	}
	/* the row is locked since its state was read: job->state is the row's */
	if (job->state == BACKFILL_PENDING || job->state == BACKFILL_FAILED)
		backfill_store_state(job, BACKFILL_ACTIVE, NULL);
	return true;
}

/* The next batch size: aimed at target_ms at the observed rate, bounded. */
static int
next_batch_size(BackfillJob *job, int64 keys, double ms)
{
	double		size = job->batch_size > 0 ? job->batch_size : Max(job->batch_min, FIRST_BATCH);

	if (keys > 0 && ms > 0)
	{
		double		rate = keys / (ms / 1000.0);

		job->rate = job->rate > 0 ? 0.7 * job->rate + 0.3 * rate : rate;
		size = Min(job->rate * job->target_ms / 1000.0, job->batch_size * 2.0);
		if (ms > 2.0 * job->target_ms)
			size = Min(size, job->batch_size / 2.0);
	}
	if (size < job->batch_min)
		size = job->batch_min;
	if (size > job->batch_max)
		size = job->batch_max;
	return (int) size;
}

/*
 * The end of a batch, in the transaction of its rows: the checkpoint moves
 * to hi, the batch goes into the batch log, and the next batch's size is
 * chosen from this one's rate.  retries: as for backfill_do_batch.
 */
static void
write_checkpoint(BackfillJob *job, Datum *hi, BatchResult *res, int retries)
{
	Oid			argtypes[11] = {TEXTOID, BYTEAARRAYOID, TEXTOID, INT8OID, INT8OID,
	INT4OID, FLOAT8OID, FLOAT8OID, INT4OID, INT4OID, FLOAT8OID};
	Datum		a[11];
	int			used = job->batch_size;
	double		wall_ms = res->ms;

	job->batch_size = next_batch_size(job, res->keys, res->ms);
	a[0] = CStringGetTextDatum(job->name);
	a[1] = backfill_keys_to_array(job, hi);
	a[2] = CStringGetTextDatum(backfill_keys_to_text(job, hi));
	a[3] = Int64GetDatum(res->keys);
	a[4] = Int64GetDatum(res->rows);
	a[5] = Int32GetDatum(job->batch_size);
	a[6] = Float8GetDatum(job->rate);
	a[7] = Float8GetDatum(res->ms);
	a[8] = Int32GetDatum(used);
	a[9] = Int32GetDatum(retries);
	if (job->since != 0)
		wall_ms = Max(res->ms, (GetCurrentTimestamp() - job->since) / 1000.0);
	a[10] = Float8GetDatum(wall_ms);
	(void) ctl("WITH cp AS ("
			   " UPDATE shift.backfill SET last_key = $2, last_key_text = $3,"
			   "  keys_done = keys_done + $4, rows_done = rows_done + $5, batches = batches + 1,"
			   "  batch_size = $6, rate = $7, busy_ms = busy_ms + $8, retries = retries + $10,"
			   "  updated_at = pg_catalog.clock_timestamp(), throttled = NULL,"
			   "  last_error = NULL, last_sqlstate = NULL"
			   " WHERE name OPERATOR(pg_catalog.=) $1 RETURNING batches)"
			   " INSERT INTO shift.backfill_batch (job, batch, keys, rows, ms, batch_size, retries, wall_ms)"
			   " SELECT $1, batches, $4, $5, $8, $9, $10, $11 FROM cp",
			   11, argtypes, a, NULL, false, 0);
	backfill_set_last_key(job, hi);
	/* the row is locked since its state was read: job->state is the row's */
	if (job->state == BACKFILL_FAILED)
		backfill_store_state(job, BACKFILL_ACTIVE, NULL);
	job->batches++;
}

/*
 * Stride batches.  A foreign table's batch asks the remote side for the
 * batch's last key (ORDER BY key LIMIT n), which mysql_fdw sends as ORDER
 * BY key IS NULL, key: MariaDB sorts every key left for it, each batch, and
 * as batches shrink towards their target time the copy slows to a few
 * hundred rows a second.  With one integer key, every batch after the first
 * is a key range of computed width instead, (last, last + stride], read by
 * the batch statement alone (a range scan on the remote side).  The width
 * follows the keys each range held, and is never more than batch_max: the
 * keys are unique integers, so no range holds more rows than that.  After
 * an empty range the next starts at the least key left (one min() the
 * remote side answers from its index): a gap costs one batch.
 */
static bool
striding(BackfillJob *job)
{
	Oid			t = job->key_types[0];

	return job->foreign && job->nkeys == 1 && (t == INT2OID || t == INT4OID || t == INT8OID);
}

static int64
key_int(BackfillJob *job, Datum d)
{
	switch (job->key_types[0])
	{
		case INT2OID:
			return DatumGetInt16(d);
		case INT4OID:
			return DatumGetInt32(d);
		default:
			return DatumGetInt64(d);
	}
}

static Datum
int_key(BackfillJob *job, int64 v)
{
	switch (job->key_types[0])
	{
		case INT2OID:
			return Int16GetDatum((int16) v);
		case INT4OID:
			return Int32GetDatum((int32) v);
		default:
			return Int64GetDatum(v);
	}
}

/*
 * The width of the next range: the keys wanted over the keys per unit of
 * width the last range held, at most twice the last width and at most
 * batch_max, at least 1; after an empty range the same width, from the
 * next key (stride_gap).
 */
static void
next_stride(BackfillJob *job, int64 width, int64 keys)
{
	double		w = width;

	if (keys > 0)
		w = Min((double) width * job->batch_size / keys, 2.0 * width);
	job->stride_gap = keys == 0;
	job->stride = (int64) Max(1.0, Min(w, (double) job->batch_max));
}

/*
 * The least key above lo and up to up on the remote side, as the job's
 * owner; false if there is none.
 */
static bool
next_key(BackfillJob *job, int64 lo, int64 up, int64 *next)
{
	Oid			types[2] = {job->key_types[0], job->key_types[0]};
	Datum		args[2] = {int_key(job, lo), int_key(job, up)};
	ShiftAs		as;
	bool		isnull;
	int			rc;

	as_owner(job, &as);
	rc = SPI_execute_with_args(backfill_next_key_sql(job), 2, types, args, NULL, true, 1);
	shift_as_end(&as);
	spi_check(rc, "finding the next key after a gap");
	if (SPI_processed == 0)
		return false;
	*next = key_int(job, spi_datum(1, &isnull));
	return !isnull;
}

/*
 * One batch inside the current transaction: the job's row must be locked
 * and its state current.  retries: how many attempts failed before this one.
 */
void
backfill_do_batch(BackfillJob *job, BackfillPlans *plans, int retries, BatchResult *res)
{
	Datum		args[2 * INDEX_MAX_KEYS + 1];
	char		nulls[2 * INDEX_MAX_KEYS + 2];
	Datum		hi[INDEX_MAX_KEYS];
	int			n = job->nkeys;
	int			i;
	int			rc;
	int			size;
	int64		width = 0;		/* a stride batch's range width */
	instr_time	start;
	instr_time	elapsed;
	ShiftAs		as;

	memset(res, 0, sizeof(*res));
	if (!job->has_upper && !fix_upper_bound(job))
	{
		res->done = true;
		return;
	}
	/* timed from here: the batch's own statements, not the one-time bound */
	INSTR_TIME_SET_CURRENT(start);
	if (job->batch_size <= 0)
		job->batch_size = Max(job->batch_min, Min(FIRST_BATCH, job->batch_max));
	job->batch_size = Max(job->batch_min, Min(job->batch_size, job->batch_max));
	size = job->batch_size;

	memset(nulls, ' ', sizeof(nulls));
	nulls[2 * n + 1] = '\0';
	for (i = 0; i < n; i++)
	{
		args[i] = job->has_last ? job->last[i] : (Datum) 0;
		if (!job->has_last)
			nulls[i] = 'n';
		args[n + i] = job->upper[i];
	}
	args[2 * n] = Int64GetDatum(size);

	/* 1. the batch's upper key: computed for a stride, else asked for */
	if (striding(job) && job->has_last)
	{
		int64		lo = key_int(job, job->last[0]);
		int64		up = key_int(job, job->upper[0]);

		int64		left;
		int64		from = lo;	/* the range's keys start after it */

		width = job->stride > 0 ? job->stride : Min(size, job->batch_max);
		if (lo < up && job->stride_gap)
		{
			int64		nk;

			if (next_key(job, lo, up, &nk))
				from = nk - 1;
			else
				lo = up;		/* no key left up to the bound */
		}
		if (lo >= up)
		{
			backfill_store_state(job, BACKFILL_DONE,
								 "finished_at = pg_catalog.now(), updated_at = pg_catalog.now(),"
								 " throttled = NULL");
			res->done = true;
			return;
		}
		if (pg_sub_s64_overflow(up, from, &left))
			left = PG_INT64_MAX;
		if (left <= width)
			width = left;
		hi[0] = int_key(job, from + width);
		goto work;
	}
	as_owner(job, &as);
	if (job->foreign)
	{
		/*
		 * The remote side must sort and limit the keys: without statistics
		 * on the foreign table, postgres_fdw's estimates make a local sort
		 * of every key left look cheaper, and each batch would fetch them
		 * all.  The cost a disabled sort gets would also JIT-compile the
		 * statement (a second, each batch): no JIT.  (Both undone by
		 * shift_as_end.)
		 */
		(void) set_config_option("enable_sort", "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
		(void) set_config_option("jit", "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	}
	rc = job->has_last ?
		backfill_execute_plan(plans->hi_next, plans->hi_next_map, args, nulls, true, 1) :
		backfill_execute_plan(plans->hi_first, plans->hi_first_map, args, nulls, true, 1);
	shift_as_end(&as);
	spi_check(rc, "finding the batch's keys");
	if (SPI_processed > 0)
	{
		bool		isnull;

		(void) spi_datum(1, &isnull);
		if (isnull)				/* max() of no rows */
			SPI_processed = 0;
	}
	if (SPI_processed == 0)
	{
		/* nothing left up to the bound */
		backfill_store_state(job, BACKFILL_DONE,
							 "finished_at = pg_catalog.now(), updated_at = pg_catalog.now(),"
							 " throttled = NULL");
		res->done = true;
		return;
	}
	for (i = 0; i < n; i++)
	{
		bool		isnull;

		hi[i] = spi_datum(i + 1, &isnull);
	}
	{
		bool		isnull;

		res->keys = DatumGetInt64(spi_datum(n + 1, &isnull));
	}
	backfill_copy_keys(job, CurrentMemoryContext, hi, hi);	/* out of SPI's result */
	if (job->foreign && job->has_last)
		check_key_moved(job, hi);

	/* 2. the work */
work:
	for (i = 0; i < n; i++)
		args[n + i] = hi[i];
	as_owner(job, &as);
	rc = job->has_last ?
		run_batch_statement(plans->batch_next, plans->batch_next_map, args, nulls) :
		run_batch_statement(plans->batch_first, plans->batch_first_map, args, nulls);
	shift_as_end(&as);
	spi_check(rc, "running a batch");
	res->rows = SPI_processed;
	if (width > 0)
		res->keys = res->rows;	/* a range: the keys it held are the rows read */

	/* 3. the checkpoint, committed with the rows */
	INSTR_TIME_SET_CURRENT(elapsed);
	INSTR_TIME_SUBTRACT(elapsed, start);
	res->ms = INSTR_TIME_GET_MILLISEC(elapsed);
	write_checkpoint(job, hi, res, retries);
	if (striding(job))
		next_stride(job, width > 0 ? width : res->keys, res->keys);
}
