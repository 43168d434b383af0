/*-------------------------------------------------------------------------
 *
 * backfill.c
 *	  Batched, resumable, adaptive, throttled backfills:
 *	  shift._backfill_check, shift.backfill_step, CALL shift.backfill_run.
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
 * time; backfill_step takes the same lock for its transaction.  Before each batch it rereads the job's settings, so
 * shift.backfill_pause/resume/cancel/set from any session take effect at the
 * next batch.  Batch sizes adapt to a target duration; runs wait while
 * replication replay lag or a user throttle query says so.
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

#include <math.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_aggregate.h"
#include "catalog/pg_am.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "parser/parse_func.h"
#include "parser/parser.h"
#include "pgstat.h"
#include "portability/instr_time.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "pg_shift.h"

PG_FUNCTION_INFO_V1(shift_backfill_check);
PG_FUNCTION_INFO_V1(shift_backfill_step);
PG_FUNCTION_INFO_V1(shift_backfill_run);
PG_FUNCTION_INFO_V1(shift_backfill_lock_key);

/* The first key of every job's run lock (see job_lock_key). */
#define BACKFILL_LOCK_KEY	0x73686266	/* 'shbf' */

/* How a copy locks the rows it reads (see copy_lock_mode). */
#define COPY_LOCK_NONE		0
#define COPY_LOCK_KEY_SHARE	1
#define COPY_LOCK_SHARE		2

/* The first batch of a run is small; later ones adapt. */
#define FIRST_BATCH			500

/*
 * The state of a job, as its row's state column stores it (the table's
 * CHECK lists the same six; backfill_state_names maps between them).
 */
typedef enum BackfillState
{
	BACKFILL_PENDING,			/* made, its walk not started */
	BACKFILL_ACTIVE,			/* walking */
	BACKFILL_PAUSED,			/* stopped by shift.backfill_pause */
	BACKFILL_DONE,				/* walked up to its bound */
	BACKFILL_CANCELLED,			/* stopped for good by shift.backfill_cancel */
	BACKFILL_FAILED				/* its last batch raised an error */
} BackfillState;

static const char *const backfill_state_names[] = {
	[BACKFILL_PENDING] = "pending",
	[BACKFILL_ACTIVE] = "active",
	[BACKFILL_PAUSED] = "paused",
	[BACKFILL_DONE] = "done",
	[BACKFILL_CANCELLED] = "cancelled",
	[BACKFILL_FAILED] = "failed",
};

/* A job in these states runs no batch until an operator moves it. */
#define BACKFILL_HALTED(s) \
	((s) == BACKFILL_DONE || (s) == BACKFILL_PAUSED || (s) == BACKFILL_CANCELLED)

typedef struct BackfillJob
{
	char	   *name;
	Oid			relid;
	bool		copy;			/* INSERT INTO into_relid, else UPDATE */
	int			lock_mode;		/* a copy under a sync: how it locks the rows it reads */
	char	   *set_clause;
	char	   *where_clause;
	Oid			into_relid;
	List	   *into_columns;	/* of char * */
	char	   *select_list;
	char	   *on_conflict;
	Oid			key_index;
	char	   *owner;
	Oid			owner_id;
	char	   *search_path;	/* recorded at creation: the job's SQL runs under it */

	int			nkeys;
	char	   *key_names[INDEX_MAX_KEYS];
	Oid			key_types[INDEX_MAX_KEYS];
	/* the key index's ordering: its operators, and the key as it sorts */
	ShiftKeyOps key_ops[INDEX_MAX_KEYS];
	char	   *key_sorted[INDEX_MAX_KEYS];	/* "col" or "col COLLATE x" */
	bool		key_rowcmp;		/* one schema for all: ROW(...) op ROW(...) */
	bool		key_max;		/* one column whose pg_catalog.max() sorts as the index */

	/* settings, reread before every batch */
	int			batch_min;
	int			batch_max;
	int			target_ms;
	double		sleep_ratio;
	int			lock_timeout_ms;
	int			max_retries;
	bool		has_max_lag;
	double		max_lag_secs;
	char	   *throttle_query;

	/* memory: the job's lifetime, and the last key's (reset as it moves) */
	MemoryContext keep_cxt;
	MemoryContext last_cxt;

	/* state */
	BackfillState state;		/* as last read or written (store_state) */
	bool		has_upper;
	Datum		upper[INDEX_MAX_KEYS];
	bool		has_last;
	Datum		last[INDEX_MAX_KEYS];
	int64		batches;
	int			batch_size;
	double		rate;
} BackfillJob;

typedef struct BackfillPlans
{
	SPIPlanPtr	hi_first;
	SPIPlanPtr	hi_next;
	SPIPlanPtr	batch_first;
	SPIPlanPtr	batch_next;
} BackfillPlans;

/* What one batch did. */
typedef struct BatchResult
{
	int64		keys;
	int64		rows;
	bool		done;
	double		ms;
} BatchResult;

/* ---------------------------------------------------------------- SPI */

static void
spi_check(int rc, const char *what)
{
	if (rc < 0)
		elog(ERROR, "SPI failed while %s: %s", what, SPI_result_code_string(rc));
}

static char *
spi_text(int col)
{
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col);
}

static Datum
spi_datum(int col, bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, isnull);
}

/* A fixed statement on the job's row or its batch log, as pg_shift's owner. */
static int
ctl(const char *sql, int nargs, Oid *argtypes, Datum *args, const char *nulls,
	bool read_only, long count)
{
	return shift_ctl_execute(sql, nargs, argtypes, args, nulls, read_only, count);
}

/* The job's own SQL runs between these two: as its owner, under its search_path. */
static void
as_owner(BackfillJob *job, ShiftAs *as)
{
	shift_as_begin(as, job->owner_id, job->search_path);
}

/* ---------------------------------------------------------------- state */

/* The text the table stores for state. */
static const char *
state_name(BackfillState state)
{
	return backfill_state_names[state];
}

/* The state the table's text names; any other text is an internal error. */
static BackfillState
parse_state(const char *job, const char *text)
{
	int			i;

	for (i = 0; i < lengthof(backfill_state_names); i++)
		if (strcmp(text, backfill_state_names[i]) == 0)
			return (BackfillState) i;
	ereport(ERROR,
			(errcode(ERRCODE_INTERNAL_ERROR),
			 errmsg("backfill job \"%s\" is in unknown state \"%s\"", job, text),
			 errdetail("The states of a backfill job are pending, active, paused, done, cancelled and failed.")));
	pg_unreachable();
}

/*
 * Writes the job's state into its row (with the assignments in also, if
 * any: a fixed list such as "finished_at = pg_catalog.now()") and into job.
 */
static void
store_state(BackfillJob *job, BackfillState state, const char *also)
{
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		args[2];

	args[0] = CStringGetTextDatum(job->name);
	args[1] = CStringGetTextDatum(state_name(state));
	(void) ctl(psprintf("UPDATE shift.backfill SET state = $2%s%s"
						" WHERE name OPERATOR(pg_catalog.=) $1",
						also ? ", " : "", also ? also : ""),
			   2, argtypes, args, NULL, false, 0);
	job->state = state;
}

/* ---------------------------------------------------------------- keys */

/* Key values as bytea[] of their binary send form: exact whatever DateStyle. */
static Datum
keys_to_array(BackfillJob *job, Datum *values)
{
	Datum		elems[INDEX_MAX_KEYS];
	int			i;

	for (i = 0; i < job->nkeys; i++)
	{
		Oid			sendfn;
		bool		isvarlena;

		getTypeBinaryOutputInfo(job->key_types[i], &sendfn, &isvarlena);
		elems[i] = PointerGetDatum(OidSendFunctionCall(sendfn, values[i]));
	}
	return PointerGetDatum(construct_array(elems, job->nkeys, BYTEAOID, -1, false,
										   TYPALIGN_INT));
}

static void
array_to_keys(BackfillJob *job, Datum array, Datum *values)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			i;

	deconstruct_array(DatumGetArrayTypeP(array), BYTEAOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &n);
	if (n != job->nkeys)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("checkpoint of backfill job \"%s\" has %d key values, its key has %d columns",
						job->name, n, job->nkeys),
				 errhint("The table's key changed after the job started; drop the job and create it again.")));
	for (i = 0; i < n; i++)
	{
		bytea	   *b = DatumGetByteaPP(elems[i]);
		StringInfoData buf;
		Oid			recvfn;
		Oid			ioparam;

		if (nulls[i])
			elog(ERROR, "NULL key value in the checkpoint of backfill job \"%s\"", job->name);
		getTypeBinaryInputInfo(job->key_types[i], &recvfn, &ioparam);
		initStringInfo(&buf);
		appendBinaryStringInfo(&buf, VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b));
		values[i] = OidReceiveFunctionCall(recvfn, &buf, ioparam, -1);
	}
}

/* "42" or "(7, abc)", for people. */
static char *
keys_to_text(BackfillJob *job, Datum *values)
{
	StringInfoData s;
	int			i;

	initStringInfo(&s);
	if (job->nkeys > 1)
		appendStringInfoChar(&s, '(');
	for (i = 0; i < job->nkeys; i++)
	{
		Oid			outfn;
		bool		isvarlena;

		getTypeOutputInfo(job->key_types[i], &outfn, &isvarlena);
		if (i > 0)
			appendStringInfoString(&s, ", ");
		appendStringInfoString(&s, OidOutputFunctionCall(outfn, values[i]));
	}
	if (job->nkeys > 1)
		appendStringInfoChar(&s, ')');
	return s.data;
}

/* Copies the key values into cxt. */
static void
copy_keys(BackfillJob *job, MemoryContext cxt, Datum *dst, Datum *src)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	int			i;

	for (i = 0; i < job->nkeys; i++)
	{
		int16		typlen;
		bool		typbyval;

		get_typlenbyval(job->key_types[i], &typlen, &typbyval);
		dst[i] = datumCopy(src[i], typbyval, typlen);
	}
	MemoryContextSwitchTo(old);
}

/* The job's checkpoint moves to values (copied; values may be anywhere). */
static void
set_last_key(BackfillJob *job, Datum *values)
{
	Datum		tmp[INDEX_MAX_KEYS];

	copy_keys(job, CurrentMemoryContext, tmp, values);
	MemoryContextReset(job->last_cxt);
	copy_keys(job, job->last_cxt, job->last, tmp);
	job->has_last = true;
}

/* ---------------------------------------------------------------- the job */

static char *
relation_name(Oid relid, const char *what, const char *job)
{
	char	   *rel = get_rel_name(relid);

	if (rel == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("the %s of backfill job \"%s\" no longer exists", what, job),
				 errhint("Drop the job with shift.backfill_drop and create it again.")));
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)), rel);
}

/* The access method of an index. */
static Oid
index_am(Oid indexoid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(indexoid));
	Oid			am;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", indexoid);
	am = ((Form_pg_class) GETSTRUCT(tup))->relam;
	ReleaseSysCache(tup);
	return am;
}

/*
 * The order the job walks in is its key index's: each comparison and sort
 * uses that index's operator family (qualified with its schema, never
 * looked up through a search_path) and its collation.  With one key column
 * whose pg_catalog.max() sorts by the same operator, a batch's upper key is
 * that max() over the batch's keys; otherwise the top of the batch sorted.
 */
static void
resolve_key_ordering(BackfillJob *job, TupleDesc desc)
{
	Relation	index = index_open(job->key_index, AccessShareLock);
	int			i;

	job->key_rowcmp = true;
	for (i = 0; i < job->nkeys; i++)
	{
		ShiftKeyOps *ops = &job->key_ops[i];
		Form_pg_attribute att = TupleDescAttr(desc, index->rd_index->indkey.values[i] - 1);

		shift_index_key_ops(index, i, ops);
		job->key_sorted[i] = psprintf("%s%s", quote_identifier(job->key_names[i]),
									  ops->collation != att->attcollation ?
									  shift_collate_clause(ops->collation) : "");
		if (!ops->same_nsp || ops->nsp != job->key_ops[0].nsp)
			job->key_rowcmp = false;
	}
	job->key_max = false;
	if (job->nkeys == 1)
	{
		Oid			argtype = job->key_ops[0].opcintype;
		Oid			maxfn = LookupFuncName(list_make2(makeString("pg_catalog"), makeString("max")),
										   1, &argtype, true);

		if (OidIsValid(maxfn))
		{
			HeapTuple	agg = SearchSysCache1(AGGFNOID, ObjectIdGetDatum(maxfn));

			if (HeapTupleIsValid(agg))
			{
				job->key_max = ((Form_pg_aggregate) GETSTRUCT(agg))->aggsortop == job->key_ops[0].gt;
				ReleaseSysCache(agg);
			}
		}
	}
	index_close(index, AccessShareLock);
}

/*
 * Resolves the job's key: its primary key, or the unique index named by
 * key => (key_index equal to the table itself means "the primary key").
 */
static void
resolve_key(BackfillJob *job)
{
	Relation	rel;
	Oid			indexoid = job->key_index;
	HeapTuple	tup;
	Form_pg_index idx;
	TupleDesc	desc;
	int			i;

	rel = table_open(job->relid, AccessShareLock);
	if (rel->rd_rel->relkind != RELKIND_RELATION &&
		rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table", RelationGetRelationName(rel)),
				 errdetail("A backfill walks an ordinary or partitioned table.")));
	if (indexoid == job->relid)
	{
		indexoid = RelationGetPrimaryKeyIndex(rel);
		if (!OidIsValid(indexoid))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("table \"%s\" has no primary key to walk",
							RelationGetRelationName(rel)),
					 errhint("Name a unique index on NOT NULL columns with key => 'index_name'.")));
	}
	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(indexoid));
	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not an index", get_rel_name(indexoid))));
	idx = (Form_pg_index) GETSTRUCT(tup);
	if (idx->indrelid != job->relid)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("index \"%s\" is not on table \"%s\"", get_rel_name(indexoid),
						RelationGetRelationName(rel))));
	if (!idx->indisunique || !idx->indisvalid || index_am(indexoid) != BTREE_AM_OID ||
		!heap_attisnull(tup, Anum_pg_index_indexprs, NULL) ||
		!heap_attisnull(tup, Anum_pg_index_indpred, NULL))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("index \"%s\" cannot be the key of a backfill", get_rel_name(indexoid)),
				 errdetail("The key must be a valid unique btree index on plain columns, without a WHERE clause.")));
	desc = RelationGetDescr(rel);
	job->nkeys = idx->indnkeyatts;
	for (i = 0; i < job->nkeys; i++)
	{
		AttrNumber	attnum = idx->indkey.values[i];
		Form_pg_attribute att = TupleDescAttr(desc, attnum - 1);

		if (!att->attnotnull)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("key column \"%s\" of index \"%s\" may be NULL", NameStr(att->attname),
							get_rel_name(indexoid)),
					 errdetail("Rows with a NULL key could not be walked in key order."),
					 errhint("Use a key whose columns are NOT NULL.")));
		job->key_names[i] = pstrdup(NameStr(att->attname));
		job->key_types[i] = att->atttypid;
	}
	job->key_index = indexoid;
	ReleaseSysCache(tup);
	resolve_key_ordering(job, desc);
	table_close(rel, AccessShareLock);
}

/* The job's state and settings: the first columns of load_job's and
 * refresh_settings' queries, read by read_settings. */
#define SETTINGS_COLUMNS \
	"state, batch_min, batch_max, target_ms, sleep_ratio, lock_timeout_ms, max_retries," \
	" pg_catalog.date_part('epoch', max_lag)::pg_catalog.float8, throttle_query"
#define SETTINGS_NCOLUMNS 9

/* Reads SETTINGS_COLUMNS from the first row of the last SPI result. */
static void
read_settings(BackfillJob *job)
{
	bool		isnull;
	Datum		d;

	job->state = parse_state(job->name, spi_text(1));
	job->batch_min = DatumGetInt32(spi_datum(2, &isnull));
	job->batch_max = DatumGetInt32(spi_datum(3, &isnull));
	job->target_ms = DatumGetInt32(spi_datum(4, &isnull));
	job->sleep_ratio = DatumGetFloat8(spi_datum(5, &isnull));
	job->lock_timeout_ms = DatumGetInt32(spi_datum(6, &isnull));
	job->max_retries = DatumGetInt32(spi_datum(7, &isnull));
	d = spi_datum(8, &isnull);
	job->has_max_lag = !isnull;
	job->max_lag_secs = isnull ? 0 : DatumGetFloat8(d);
	job->throttle_query = spi_text(9);
}

/*
 * Reads the job's row (locked FOR UPDATE when lock) into a new BackfillJob
 * allocated in the current memory context.
 */
static BackfillJob *
load_job(const char *name, bool lock)
{
	BackfillJob *job;
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	bool		isnull;
	Datum		d;
	MemoryContext cxt = CurrentMemoryContext;
	char		sql[1024];

	snprintf(sql, sizeof(sql),
			 "SELECT " SETTINGS_COLUMNS ", relation::pg_catalog.oid, kind, set_clause,"
			 " where_clause, into_relation::pg_catalog.oid, into_columns, select_list,"
			 " on_conflict, key_index::pg_catalog.oid, owner::pg_catalog.text,"
			 " upper_key, last_key, batches, batch_size, rate, search_path"
			 " FROM shift.backfill WHERE name OPERATOR(pg_catalog.=) $1%s",
			 lock ? " FOR UPDATE" : "");
	args[0] = CStringGetTextDatum(name);
	(void) ctl(sql, 1, argtypes, args, NULL, false, 1);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("backfill job \"%s\" does not exist", name),
				 errhint("Create it with shift.backfill_create; SELECT name FROM shift.backfill_progress lists the jobs.")));

	MemoryContextSwitchTo(cxt);
	job = palloc0(sizeof(BackfillJob));
	job->keep_cxt = cxt;
	job->last_cxt = AllocSetContextCreate(cxt, "pg_shift backfill checkpoint",
										  ALLOCSET_SMALL_SIZES);
	job->name = pstrdup(name);
	read_settings(job);
#define C(n) (SETTINGS_NCOLUMNS + (n))
	job->relid = DatumGetObjectId(spi_datum(C(1), &isnull));
	job->copy = strcmp(spi_text(C(2)), "copy") == 0;
	job->set_clause = spi_text(C(3));
	job->where_clause = spi_text(C(4));
	d = spi_datum(C(5), &isnull);
	job->into_relid = isnull ? InvalidOid : DatumGetObjectId(d);
	d = spi_datum(C(6), &isnull);
	if (!isnull)
	{
		Datum	   *elems;
		bool	   *nulls;
		int			n;
		int			i;

		deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT,
						  &elems, &nulls, &n);
		for (i = 0; i < n; i++)
			job->into_columns = lappend(job->into_columns, TextDatumGetCString(elems[i]));
	}
	job->select_list = spi_text(C(7));
	job->on_conflict = spi_text(C(8));
	job->key_index = DatumGetObjectId(spi_datum(C(9), &isnull));
	job->owner = spi_text(C(10));
	job->owner_id = get_role_oid(job->owner, true);
	job->search_path = spi_text(C(16));
	job->batches = DatumGetInt64(spi_datum(C(13), &isnull));
	d = spi_datum(C(14), &isnull);
	job->batch_size = isnull ? 0 : DatumGetInt32(d);
	d = spi_datum(C(15), &isnull);
	job->rate = isnull ? 0 : DatumGetFloat8(d);

	resolve_key(job);
	d = spi_datum(C(11), &isnull);
	job->has_upper = !isnull;
	if (!isnull)
		array_to_keys(job, d, job->upper);
	d = spi_datum(C(12), &isnull);
	if (!isnull)
	{
		Datum		last[INDEX_MAX_KEYS];

		array_to_keys(job, d, last);
		set_last_key(job, last);
	}
#undef C
	return job;
}

/*
 * Locks the job's row and rereads its state and checkpoint: the
 * authoritative position, which backfill_step or an earlier run may have
 * moved since the job was loaded.
 */
static void
lock_checkpoint(BackfillJob *job)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(job->name)};
	bool		isnull;
	Datum		d;

	(void) ctl("SELECT state, last_key, upper_key FROM shift.backfill"
			   " WHERE name OPERATOR(pg_catalog.=) $1 FOR UPDATE",
			   1, argtypes, args, NULL, false, 1);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("backfill job \"%s\" was dropped while it ran", job->name)));
	job->state = parse_state(job->name, spi_text(1));
	d = spi_datum(2, &isnull);
	if (isnull)
	{
		MemoryContextReset(job->last_cxt);
		job->has_last = false;
	}
	else
	{
		Datum		last[INDEX_MAX_KEYS];

		array_to_keys(job, d, last);
		set_last_key(job, last);
	}
	d = spi_datum(3, &isnull);
	if (!isnull && !job->has_upper)
	{
		Datum		upper[INDEX_MAX_KEYS];

		array_to_keys(job, d, upper);
		copy_keys(job, job->keep_cxt, job->upper, upper);
		job->has_upper = true;
	}
}

/*
 * Only the job's owner, a role with its privileges, or a superuser may run
 * it, and it runs as its owner; and only while it is what was checked.
 */
static void
check_owner(BackfillJob *job)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(job->name)};

	if (!OidIsValid(job->owner_id))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("backfill job \"%s\" belongs to role \"%s\", which no longer exists",
						job->name, job->owner),
				 errhint("Drop the job with shift.backfill_drop and create it again.")));
	if (!shift_may_act_for(job->owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("backfill job \"%s\" belongs to role \"%s\"", job->name, job->owner),
				 errdetail("A job runs as its owner; only that role, a member with its privileges or a superuser may run it."),
				 errhint("Run it as \"%s\" or a member of that role.", job->owner)));
	(void) ctl("SELECT shift_internal.backfill_verify($1)", 1, argtypes, args, NULL, true, 1);
}

/* ---------------------------------------------------------------- SQL fragments */

static Node *
parse_fragment(BackfillJob *job, const char *what, const char *prefix, const char *text)
{
	return shift_parse_fragment(psprintf("backfill job \"%s\"", job->name), what, prefix, text);
}

/*
 * Checks each SQL fragment on its own: set must be only SET assignments,
 * where only a condition, select only a list of expressions, the throttle
 * query one SELECT.  A fragment that is more than that (a second statement,
 * a FROM, an unbalanced parenthesis, a trailing comment) could otherwise
 * change the statement it is put into.
 */
static void
check_fragments(BackfillJob *job)
{
	Node	   *stmt;

	if (job->set_clause)
	{
		UpdateStmt *u;

		stmt = parse_fragment(job, "set", "UPDATE x SET ", job->set_clause);
		u = (UpdateStmt *) stmt;
		if (!IsA(stmt, UpdateStmt) || u->whereClause || u->fromClause != NIL ||
			u->returningList != NIL || u->withClause)
			ereport(ERROR,
					(errcode(ERRCODE_SYNTAX_ERROR),
					 errmsg("set of backfill job \"%s\" must be assignments only", job->name),
					 errdetail("It was: %s", job->set_clause),
					 errhint("Write set => 'col = expr, col2 = expr2'; put conditions in where =>.")));
	}
	if (job->where_clause)
	{
		stmt = parse_fragment(job, "where", "SELECT 1 WHERE ", job->where_clause);
		if (!shift_is_plain_select(stmt, true))
			ereport(ERROR,
					(errcode(ERRCODE_SYNTAX_ERROR),
					 errmsg("where of backfill job \"%s\" must be a condition only", job->name),
					 errdetail("It was: %s", job->where_clause)));
	}
	if (job->select_list)
	{
		stmt = parse_fragment(job, "select", "SELECT ", job->select_list);
		if (!shift_is_plain_select(stmt, false))
			ereport(ERROR,
					(errcode(ERRCODE_SYNTAX_ERROR),
					 errmsg("select of backfill job \"%s\" must be a list of expressions only",
							job->name),
					 errdetail("It was: %s", job->select_list),
					 errhint("Write select => 'id::bigint, lower(email)'; the source table is FROM.")));
	}
	if (job->throttle_query)
	{
		stmt = parse_fragment(job, "throttle_query", "", job->throttle_query);
		if (!IsA(stmt, SelectStmt))
			ereport(ERROR,
					(errcode(ERRCODE_SYNTAX_ERROR),
					 errmsg("throttle_query of backfill job \"%s\" must be a SELECT", job->name),
					 errhint("It runs before every batch; while it returns true the job waits.")));
	}
}

/* ---------------------------------------------------------------- statements */

/* The operator of key column i for a strategy ("<", "<=", ">", ">="). */
static Oid
key_op(BackfillJob *job, int i, const char *op)
{
	ShiftKeyOps *ops = &job->key_ops[i];

	if (strcmp(op, "<") == 0)
		return ops->lt;
	if (strcmp(op, "<=") == 0)
		return ops->le;
	if (strcmp(op, ">") == 0)
		return ops->gt;
	if (strcmp(op, ">=") == 0)
		return ops->ge;
	return ops->eq;
}

/*
 * "(k1, k2) OPERATOR(s.>) ($1, $2)": the key in the index's order against
 * parameters first..first+nkeys-1.  Operators of several schemas cannot
 * share one row comparison: then it is spelled out column by column,
 * "k1 > $1 OR (k1 = $1 AND k2 > $2)", with the first column's range
 * (k1 >= $1) in front so that the index still bounds the scan.
 */
static void
append_key_condition(StringInfo s, BackfillJob *job, const char *op, int first)
{
	int			i;

	if (job->key_rowcmp)
	{
		appendStringInfoChar(s, '(');
		for (i = 0; i < job->nkeys; i++)
			appendStringInfo(s, "%s%s", i ? ", " : "", job->key_sorted[i]);
		appendStringInfo(s, ") %s (", shift_qualified_operator(key_op(job, 0, op)));
		for (i = 0; i < job->nkeys; i++)
			appendStringInfo(s, "%s$%d", i ? ", " : "", first + i);
		appendStringInfoChar(s, ')');
		return;
	}
	else
	{
		/* the strict form of op for every column but the last */
		const char *strict = op[0] == '<' ? "<" : ">";
		const char *loose = op[0] == '<' ? "<=" : ">=";
		int			j;

		appendStringInfoString(s, "(");
		shift_append_compare(s, job->key_sorted[0], key_op(job, 0, loose), psprintf("$%d", first));
		appendStringInfoString(s, " AND (");
		for (i = 0; i < job->nkeys; i++)
		{
			appendStringInfo(s, "%s(", i ? " OR " : "");
			for (j = 0; j < i; j++)
			{
				shift_append_compare(s, job->key_sorted[j], job->key_ops[j].eq,
									 psprintf("$%d", first + j));
				appendStringInfoString(s, " AND ");
			}
			shift_append_compare(s, job->key_sorted[i],
								 key_op(job, i, i == job->nkeys - 1 ? op : strict),
								 psprintf("$%d", first + i));
			appendStringInfoChar(s, ')');
		}
		appendStringInfoString(s, "))");
	}
}

/* "k1, k2" (names only), or with ordering "k1 USING OPERATOR(s.<), ..." */
static void
append_key_list(StringInfo s, BackfillJob *job, const char *order)
{
	int			i;

	for (i = 0; i < job->nkeys; i++)
	{
		if (order == NULL)
			appendStringInfo(s, "%s%s", i ? ", " : "", quote_identifier(job->key_names[i]));
		else
			appendStringInfo(s, "%s%s USING %s", i ? ", " : "", job->key_sorted[i],
							 shift_qualified_operator(key_op(job, i, order)));
	}
}

/*
 * WHERE clause of a batch: keys after $1..$n (unless first) up to
 * $n+1..$2n, and the job's own condition.
 */
static void
append_range(StringInfo s, BackfillJob *job, bool first)
{
	appendStringInfoString(s, "\n WHERE ");
	if (!first)
	{
		append_key_condition(s, job, ">", 1);
		appendStringInfoString(s, " AND ");
	}
	append_key_condition(s, job, "<=", job->nkeys + 1);
	if (job->where_clause)
		appendStringInfo(s, " AND (\n%s\n)", job->where_clause);
}

/*
 * The statement finding a batch's upper key and its number of keys: the
 * last of the next n keys in the index's order.  With max() (see
 * resolve_key_ordering), max() and count() stream over the index scan;
 * otherwise it takes the top row of the n in descending order (a top-1
 * sort, no full sort).
 */
static char *
hi_sql(BackfillJob *job, bool first)
{
	StringInfoData s;

	initStringInfo(&s);
	if (job->key_max)
		appendStringInfo(&s, "SELECT pg_catalog.max(%s), pg_catalog.count(*) FROM (SELECT ",
						 job->key_sorted[0]);
	else
	{
		appendStringInfoString(&s, "SELECT ");
		append_key_list(&s, job, NULL);
		appendStringInfoString(&s, ", pg_catalog.count(*) OVER () FROM (SELECT ");
	}
	append_key_list(&s, job, NULL);
	appendStringInfo(&s, " FROM %s WHERE ", relation_name(job->relid, "table", job->name));
	if (!first)
	{
		append_key_condition(&s, job, ">", 1);
		appendStringInfoString(&s, " AND ");
	}
	append_key_condition(&s, job, "<=", job->nkeys + 1);
	appendStringInfoString(&s, " ORDER BY ");
	append_key_list(&s, job, "<");
	appendStringInfo(&s, " LIMIT $%d) s", 2 * job->nkeys + 1);
	if (!job->key_max)
	{
		appendStringInfoString(&s, " ORDER BY ");
		append_key_list(&s, job, ">");
		appendStringInfoString(&s, " LIMIT 1");
	}
	return s.data;
}

/* The statement that does a batch's work. */
static char *
batch_sql(BackfillJob *job, bool first)
{
	StringInfoData s;
	const char *rel = relation_name(job->relid, "table", job->name);

	initStringInfo(&s);
	if (!job->copy)
	{
		appendStringInfo(&s, "UPDATE %s SET\n%s\n", rel, job->set_clause);
		append_range(&s, job, first);
	}
	else
	{
		ListCell   *lc;
		bool		first_col = true;

		appendStringInfo(&s, "INSERT INTO %s (", relation_name(job->into_relid, "target", job->name));
		foreach(lc, job->into_columns)
		{
			appendStringInfo(&s, "%s%s", first_col ? "" : ", ", quote_identifier(lfirst(lc)));
			first_col = false;
		}
		appendStringInfo(&s, ") OVERRIDING SYSTEM VALUE\nSELECT\n%s\n  FROM %s", job->select_list, rel);
		append_range(&s, job, first);
		if (job->lock_mode != COPY_LOCK_NONE)
		{
			/*
			 * A sync mirrors writes of the source as they commit.  Without a
			 * lock, a row deleted by a transaction still in progress would be
			 * read here, copied after its mirrored delete ran, and live on in
			 * the copy; the lock waits for that transaction (and then skips
			 * the row).  When the copy's key is the source's key, FOR KEY
			 * SHARE is enough and updates of other columns do not wait; else
			 * any update could move a row to another key, so FOR SHARE.
			 */
			appendStringInfoString(&s, job->lock_mode == COPY_LOCK_KEY_SHARE ?
								   "\n   FOR KEY SHARE" : "\n   FOR SHARE");
		}
		if (strcmp(job->on_conflict, "nothing") == 0)
			appendStringInfoString(&s, "\nON CONFLICT DO NOTHING");
		else if (strcmp(job->on_conflict, "update") == 0)
		{
			Relation	into = table_open(job->into_relid, AccessShareLock);
			Oid			pk = RelationGetPrimaryKeyIndex(into);
			HeapTuple	tup;
			Form_pg_index idx;
			StringInfoData set;
			int			i;

			if (!OidIsValid(pk))
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("on_conflict => 'update' needs a primary key on \"%s\"",
								RelationGetRelationName(into))));
			tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(pk));
			if (!HeapTupleIsValid(tup))
				elog(ERROR, "cache lookup failed for index %u", pk);
			idx = (Form_pg_index) GETSTRUCT(tup);
			appendStringInfoString(&s, "\nON CONFLICT (");
			for (i = 0; i < idx->indnkeyatts; i++)
				appendStringInfo(&s, "%s%s", i ? ", " : "",
								 quote_identifier(get_attname(job->into_relid, idx->indkey.values[i], false)));
			/* every copied column outside the key takes the new value */
			initStringInfo(&set);
			foreach(lc, job->into_columns)
			{
				AttrNumber	att = get_attnum(job->into_relid, lfirst(lc));
				bool		in_pk = false;

				for (i = 0; i < idx->indnkeyatts; i++)
					in_pk |= idx->indkey.values[i] == att;
				if (!in_pk)
					appendStringInfo(&set, "%s%s = EXCLUDED.%s", set.len ? ", " : "",
									 quote_identifier(lfirst(lc)), quote_identifier(lfirst(lc)));
			}
			/* only key columns copied: there is nothing to update */
			if (set.len > 0)
				appendStringInfo(&s, ") DO UPDATE SET %s", set.data);
			else
				appendStringInfoString(&s, ") DO NOTHING");
			ReleaseSysCache(tup);
			table_close(into, AccessShareLock);
		}
	}
	return s.data;
}

static SPIPlanPtr
prepare(BackfillJob *job, const char *sql, int nargs, const char *what)
{
	Oid			argtypes[2 * INDEX_MAX_KEYS + 1];
	SPIPlanPtr	plan;
	int			i;

	for (i = 0; i < job->nkeys; i++)
		argtypes[i] = argtypes[job->nkeys + i] = job->key_types[i];
	argtypes[2 * job->nkeys] = INT8OID;
	plan = SPI_prepare(sql, nargs, argtypes);
	if (plan == NULL)
		elog(ERROR, "could not prepare the %s of backfill job \"%s\": %s", what, job->name,
			 SPI_result_code_string(SPI_result));
	return plan;
}

/*
 * Prepares the job's statements (errors in its SQL surface here, with the
 * statement as context).  Kept plans when keep, for a whole run.
 */
/*
 * How a copy must lock the rows it reads: not at all unless a table-level
 * sync mirrors the source into the copy's target; then FOR KEY SHARE when
 * the target's key is the source's key (key_follows_source), FOR SHARE
 * otherwise.
 */
static int
copy_lock_mode(BackfillJob *job)
{
	Oid			argtypes[2] = {OIDOID, OIDOID};
	Datum		args[2];
	bool		isnull;

	if (!job->copy)
		return COPY_LOCK_NONE;
	args[0] = ObjectIdGetDatum(job->relid);
	args[1] = ObjectIdGetDatum(job->into_relid);
	/* any role's sync: the copy's reads must respect it whoever made it */
	(void) ctl("SELECT bool_and(key_follows_source) FROM shift.sync WHERE kind OPERATOR(pg_catalog.=) 'table'"
			   " AND direction OPERATOR(pg_catalog.=) 'forward'"
			   " AND relation OPERATOR(pg_catalog.=) $1 AND target OPERATOR(pg_catalog.=) $2",
			   2, argtypes, args, NULL, true, 1);
	(void) spi_datum(1, &isnull);
	if (isnull)
		return COPY_LOCK_NONE;
	return DatumGetBool(spi_datum(1, &isnull)) ? COPY_LOCK_KEY_SHARE : COPY_LOCK_SHARE;
}

static void
prepare_plans(BackfillJob *job, BackfillPlans *plans, bool keep)
{
	int			n = job->nkeys;
	ShiftAs		as;

	job->lock_mode = copy_lock_mode(job);
	if (job->lock_mode != COPY_LOCK_NONE && strcmp(job->on_conflict, "nothing") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("backfill job \"%s\" copies into a table a sync writes, with on_conflict => '%s'",
						job->name, job->on_conflict),
				 errdetail("The sync writes each row as it changes; a copy that raised on those rows (error) or overwrote them with what it read earlier (update) would fail or lose the newer version."),
				 errhint("Use on_conflict => 'nothing': the rows the sync wrote are newer.")));
	/* parsed as the owner, under the job's search_path: what it will run */
	as_owner(job, &as);
	plans->hi_first = prepare(job, hi_sql(job, true), 2 * n + 1, "key search");
	plans->hi_next = prepare(job, hi_sql(job, false), 2 * n + 1, "key search");
	plans->batch_first = prepare(job, batch_sql(job, true), 2 * n, "batch statement");
	plans->batch_next = prepare(job, batch_sql(job, false), 2 * n, "batch statement");
	shift_as_end(&as);
	if (keep)
	{
		SPI_keepplan(plans->hi_first);
		SPI_keepplan(plans->hi_next);
		SPI_keepplan(plans->batch_first);
		SPI_keepplan(plans->batch_next);
	}
}

static void
free_plans(BackfillPlans *plans)
{
	if (plans->hi_first)
		SPI_freeplan(plans->hi_first);
	if (plans->hi_next)
		SPI_freeplan(plans->hi_next);
	if (plans->batch_first)
		SPI_freeplan(plans->batch_first);
	if (plans->batch_next)
		SPI_freeplan(plans->batch_next);
	memset(plans, 0, sizeof(*plans));
}

/* ---------------------------------------------------------------- batches */

/*
 * Fixes the job's upper bound (the largest key now) and its estimated size,
 * on its first batch.  Returns false if the table is empty (the job is done).
 */
static bool
fix_upper_bound(BackfillJob *job)
{
	StringInfoData s;
	Datum		keys[INDEX_MAX_KEYS];
	Oid			argtypes[4] = {TEXTOID, BYTEAARRAYOID, TEXTOID, OIDOID};
	Datum		args[4];
	bool		isnull;
	int			i;
	int			rc;
	ShiftAs		as;

	initStringInfo(&s);
	appendStringInfoString(&s, "SELECT ");
	append_key_list(&s, job, NULL);
	appendStringInfo(&s, " FROM %s ORDER BY ", relation_name(job->relid, "table", job->name));
	append_key_list(&s, job, ">");
	appendStringInfoString(&s, " LIMIT 1");
	as_owner(job, &as);
	rc = SPI_execute(s.data, true, 1);
	shift_as_end(&as);
	spi_check(rc, "finding the last key");
	args[0] = CStringGetTextDatum(job->name);
	if (SPI_processed == 0)
	{
		store_state(job, BACKFILL_DONE,
					"estimated_total = 0, started_at = pg_catalog.now(),"
					" finished_at = pg_catalog.now(), updated_at = pg_catalog.now()");
		return false;
	}
	for (i = 0; i < job->nkeys; i++)
		keys[i] = spi_datum(i + 1, &isnull);
	copy_keys(job, job->keep_cxt, job->upper, keys);
	job->has_upper = true;

	/* the size: the planner's estimate, summed over leaf partitions */
	args[1] = keys_to_array(job, job->upper);
	args[2] = CStringGetTextDatum(keys_to_text(job, job->upper));
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
		StringInfoData c;
		Oid			counttypes[2] = {TEXTOID, INT8OID};
		Datum		countargs[2];

		initStringInfo(&c);
		appendStringInfo(&c, "SELECT pg_catalog.count(*) FROM %s",
						 relation_name(job->relid, "table", job->name));
		as_owner(job, &as);
		rc = SPI_execute(c.data, true, 1);
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
		store_state(job, BACKFILL_ACTIVE, NULL);
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
 * One batch inside the current transaction: the job's row must be locked
 * and its state current.  retries: how many attempts failed before this one.
 */
static void
do_batch(BackfillJob *job, BackfillPlans *plans, int retries, BatchResult *res)
{
	Datum		args[2 * INDEX_MAX_KEYS + 1];
	char		nulls[2 * INDEX_MAX_KEYS + 2];
	Datum		hi[INDEX_MAX_KEYS];
	int			n = job->nkeys;
	int			i;
	int			rc;
	int			size;
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

	/* 1. the batch's upper key */
	as_owner(job, &as);
	rc = SPI_execute_plan(job->has_last ? plans->hi_next : plans->hi_first, args, nulls, true, 1);
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
		store_state(job, BACKFILL_DONE,
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
	copy_keys(job, CurrentMemoryContext, hi, hi);	/* out of SPI's result */

	/* 2. the work */
	for (i = 0; i < n; i++)
		args[n + i] = hi[i];
	as_owner(job, &as);
	rc = SPI_execute_plan(job->has_last ? plans->batch_next : plans->batch_first, args, nulls,
						  false, 0);
	shift_as_end(&as);
	spi_check(rc, "running a batch");
	res->rows = SPI_processed;

	/* 3. the checkpoint, committed with the rows */
	INSTR_TIME_SET_CURRENT(elapsed);
	INSTR_TIME_SUBTRACT(elapsed, start);
	res->ms = INSTR_TIME_GET_MILLISEC(elapsed);
	{
		Oid			argtypes[10] = {TEXTOID, BYTEAARRAYOID, TEXTOID, INT8OID, INT8OID,
		INT4OID, FLOAT8OID, FLOAT8OID, INT4OID, INT4OID};
		Datum		a[10];
		int			used = job->batch_size;

		job->batch_size = next_batch_size(job, res->keys, res->ms);
		a[0] = CStringGetTextDatum(job->name);
		a[1] = keys_to_array(job, hi);
		a[2] = CStringGetTextDatum(keys_to_text(job, hi));
		a[3] = Int64GetDatum(res->keys);
		a[4] = Int64GetDatum(res->rows);
		a[5] = Int32GetDatum(job->batch_size);
		a[6] = Float8GetDatum(job->rate);
		a[7] = Float8GetDatum(res->ms);
		a[8] = Int32GetDatum(used);
		a[9] = Int32GetDatum(retries);
		(void) ctl(
			"WITH cp AS ("
			" UPDATE shift.backfill SET last_key = $2, last_key_text = $3,"
			"  keys_done = keys_done + $4, rows_done = rows_done + $5, batches = batches + 1,"
			"  batch_size = $6, rate = $7, busy_ms = busy_ms + $8, retries = retries + $10,"
			"  updated_at = pg_catalog.clock_timestamp(), throttled = NULL,"
			"  last_error = NULL, last_sqlstate = NULL"
			" WHERE name OPERATOR(pg_catalog.=) $1 RETURNING batches)"
			" INSERT INTO shift.backfill_batch (job, batch, keys, rows, ms, batch_size, retries)"
			" SELECT $1, batches, $4, $5, $8, $9, $10 FROM cp",
			10, argtypes, a, NULL, false, 0);
	}
	set_last_key(job, hi);
	if (job->state == BACKFILL_FAILED)
		store_state(job, BACKFILL_ACTIVE, NULL);
	job->batches++;
}

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

/* ---------------------------------------------------------------- shift._backfill_check */

/*
 * shift._backfill_check(name text) returns void
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
	StringInfoData cols;
	Datum		keynames[INDEX_MAX_KEYS];
	Oid			argtypes[5] = {TEXTOID, OIDOID, TEXTARRAYOID, TEXTARRAYOID, TEXTOID};
	Datum		args[5];
	char		nulls[6] = "     ";
	int			i;

	SPI_connect();
	job = load_job(name, true);
	if (!OidIsValid(job->owner_id) || !shift_may_act_for(job->owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("backfill job \"%s\" belongs to role \"%s\"", name, job->owner)));
	check_fragments(job);

	if (job->copy)
	{
		Relation	into = table_open(job->into_relid, AccessShareLock);

		if (into->rd_rel->relkind != RELKIND_RELATION &&
			into->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("\"%s\" is not a table", RelationGetRelationName(into))));
		if (job->into_relid == job->relid)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("backfill job \"%s\" copies \"%s\" into itself", name,
							RelationGetRelationName(into)),
					 errhint("Use set => to change rows in place.")));
		if (job->into_columns == NIL)
		{
			/* the target's columns the source has too, by name */
			TupleDesc	desc = RelationGetDescr(into);

			for (i = 0; i < desc->natts; i++)
			{
				Form_pg_attribute att = TupleDescAttr(desc, i);

				if (att->attisdropped || att->attgenerated)
					continue;
				if (get_attnum(job->relid, NameStr(att->attname)) != InvalidAttrNumber)
					job->into_columns = lappend(job->into_columns, pstrdup(NameStr(att->attname)));
			}
			if (job->into_columns == NIL)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("\"%s\" and \"%s\" have no column name in common",
								get_rel_name(job->relid), RelationGetRelationName(into)),
						 errhint("Give columns => and select =>.")));
		}
		else
		{
			ListCell   *lc;

			foreach(lc, job->into_columns)
				if (get_attnum(job->into_relid, lfirst(lc)) == InvalidAttrNumber)
					ereport(ERROR,
							(errcode(ERRCODE_UNDEFINED_COLUMN),
							 errmsg("column \"%s\" of \"%s\" does not exist", (char *) lfirst(lc),
									RelationGetRelationName(into))));
		}
		if (job->select_list == NULL)
		{
			ListCell   *lc;

			initStringInfo(&cols);
			foreach(lc, job->into_columns)
				appendStringInfo(&cols, "%s%s", cols.len ? ", " : "", quote_identifier(lfirst(lc)));
			job->select_list = cols.data;
		}
		table_close(into, AccessShareLock);
	}

	/* store what was resolved */
	for (i = 0; i < job->nkeys; i++)
		keynames[i] = CStringGetTextDatum(job->key_names[i]);
	args[0] = CStringGetTextDatum(name);
	args[1] = ObjectIdGetDatum(job->key_index);
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

	/* every statement must prepare: errors in the job's SQL show up now */
	memset(&plans, 0, sizeof(plans));
	prepare_plans(job, &plans, false);
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
	job = load_job(name, true);
	check_owner(job);
	memset(&res, 0, sizeof(res));
	if (job->state == BACKFILL_DONE)
		res.done = true;
	else if (job->state == BACKFILL_PAUSED || job->state == BACKFILL_CANCELLED)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("backfill job \"%s\" is %s", name, state_name(job->state)),
				 errhint("%s", job->state == BACKFILL_PAUSED ?
						 "Resume it with shift.backfill_resume." :
						 "A cancelled job does not run again; drop it and create a new one.")));
	else
	{
		check_fragments(job);
		memset(&plans, 0, sizeof(plans));
		prepare_plans(job, &plans, false);
		do_batch(job, &plans, 0, &res);
	}
	SPI_finish();

	values[0] = Int64GetDatum(res.keys);
	values[1] = Int64GetDatum(res.rows);
	values[2] = BoolGetDatum(res.done);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* ---------------------------------------------------------------- CALL shift.backfill_run */

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

/* Rereads the job's settings and state, without locking it. */
static void
refresh_settings(BackfillJob *job)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(job->name)};
	MemoryContext cxt = CurrentMemoryContext;
	char	   *throttle = job->throttle_query;

	(void) ctl("SELECT " SETTINGS_COLUMNS
			   " FROM shift.backfill WHERE name OPERATOR(pg_catalog.=) $1",
			   1, argtypes, args, NULL, true, 1);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("backfill job \"%s\" was dropped while it ran", job->name)));
	MemoryContextSwitchTo(cxt);
	read_settings(job);
	/* a new throttle query runs only once it is what was checked */
	if ((throttle == NULL) != (job->throttle_query == NULL) ||
		(throttle != NULL && strcmp(throttle, job->throttle_query) != 0))
		(void) ctl("SELECT shift_internal.backfill_verify($1)", 1, argtypes, args, NULL, true, 1);
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
	store_state(job, BACKFILL_FAILED, "updated_at = pg_catalog.clock_timestamp()");
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
	lock_checkpoint(job);
	memset(b->res, 0, sizeof(*b->res));
	if (!BACKFILL_HALTED(job->state))
		do_batch(job, b->plans, b->retries, b->res);
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

/* The limits of one run. */
typedef struct RunLimits
{
	double		max_runtime_ms; /* < 0: none */
	int64		max_batches;	/* < 0: none */
} RunLimits;

/*
 * The body of backfill_run: batches until the job ends or a limit is
 * reached.  Runs under the job's session lock; the caller releases it and
 * the plans whatever happens.
 */
static void
run_batches(BackfillJob *job, BackfillPlans *plans, RunLimits *limits,
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

		refresh_settings(job);
		if (BACKFILL_HALTED(job->state))
			break;
		/* a sync made or dropped since the statements were prepared changes their locks */
		if (copy_lock_mode(job) != job->lock_mode)
		{
			MemoryContext cxt = MemoryContextSwitchTo(job_cxt);

			free_plans(plans);
			prepare_plans(job, plans, true);
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
static bool
end_schedule(BackfillJob *job, const char *schedule, const char *why)
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
	job = load_job(name, false);
	check_owner(job);
	check_fragments(job);
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
		if (end_schedule(job, schedule, "cancelled"))
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
		(void) end_schedule(job, schedule, "done");
		SPI_finish();
		PG_RETURN_VOID();
	}
	if (!try_job_lock(name, true))
		lock_busy_error(name);

	PG_TRY();
	{
		prepare_plans(job, &plans, true);
		SPI_commit();
		run_batches(job, &plans, &limits, job_cxt);
	}
	PG_FINALLY();
	{
		free_plans(&plans);
		release_job_lock(name);
	}
	PG_END_TRY();

	if (job->state == BACKFILL_PAUSED)
		ereport(NOTICE, (errmsg("backfill job \"%s\" is paused", name)));
	else if (job->state == BACKFILL_DONE || job->state == BACKFILL_CANCELLED)
		(void) end_schedule(job, schedule, state_name(job->state));
	SPI_finish();
	PG_RETURN_VOID();
}
