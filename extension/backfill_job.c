/*-------------------------------------------------------------------------
 *
 * backfill_job.c
 *	  A backfill job's row in shift.backfill, as C reads and writes it: its
 *	  definition and settings (backfill_load_job, backfill_refresh_settings),
 *	  its state (parsed once per read, written by backfill_store_state), its
 *	  key (the key index's columns and ordering) and checkpoint (key values
 *	  stored as bytea[] of their binary send form), and the checks made
 *	  before any of its SQL runs: who may run it (backfill_check_owner),
 *	  whether each SQL fragment is only the clause it claims to be
 *	  (backfill_check_fragments) and, for a copy, its target and columns
 *	  (backfill_resolve_copy, when the job is made or changed).
 *
 * The row is read and written as the owner of pg_shift (shift_ctl_execute);
 * a batch locks it FOR UPDATE (backfill_lock_checkpoint), so the state and
 * checkpoint C holds are the row's until the batch commits.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_aggregate.h"
#include "catalog/pg_am.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "nodes/parsenodes.h"
#include "parser/parse_func.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "backfill.h"

static const char *const backfill_state_names[] = {
	[BACKFILL_PENDING] = "pending",
	[BACKFILL_ACTIVE] = "active",
	[BACKFILL_PAUSED] = "paused",
	[BACKFILL_DONE] = "done",
	[BACKFILL_CANCELLED] = "cancelled",
	[BACKFILL_FAILED] = "failed",
};

/* ---------------------------------------------------------------- state */

/* The text the table stores for state. */
const char *
backfill_state_name(BackfillState state)
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
void
backfill_store_state(BackfillJob *job, BackfillState state, const char *also)
{
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		args[2];

	args[0] = CStringGetTextDatum(job->name);
	args[1] = CStringGetTextDatum(backfill_state_name(state));
	(void) ctl(psprintf("UPDATE shift.backfill SET state = $2%s%s"
						" WHERE name OPERATOR(pg_catalog.=) $1",
						also ? ", " : "", also ? also : ""),
			   2, argtypes, args, NULL, false, 0);
	job->state = state;
}

/* ---------------------------------------------------------------- keys */

/* Key values as bytea[] of their binary send form: exact whatever DateStyle. */
Datum
backfill_keys_to_array(BackfillJob *job, Datum *values)
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
char *
backfill_keys_to_text(BackfillJob *job, Datum *values)
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

/* The key's columns, "id" or "a, b", for people. */
char *
backfill_key_names(BackfillJob *job)
{
	StringInfoData s;
	int			i;

	initStringInfo(&s);
	for (i = 0; i < job->nkeys; i++)
		appendStringInfo(&s, "%s%s", i ? ", " : "", quote_identifier(job->key_names[i]));
	return s.data;
}

/* Copies the key values into cxt. */
void
backfill_copy_keys(BackfillJob *job, MemoryContext cxt, Datum *dst, Datum *src)
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
void
backfill_set_last_key(BackfillJob *job, Datum *values)
{
	Datum		tmp[INDEX_MAX_KEYS];

	backfill_copy_keys(job, CurrentMemoryContext, tmp, values);
	MemoryContextReset(job->last_cxt);
	backfill_copy_keys(job, job->last_cxt, job->last, tmp);
	job->has_last = true;
}

/* ---------------------------------------------------------------- the job */

char *
backfill_relation_name(Oid relid, const char *what, const char *job)
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
 * With one key column whose pg_catalog.max() sorts by the key's own ">",
 * a batch's upper key is that max() over the batch's keys; otherwise the
 * top of the batch sorted (see hi_sql).
 */
static void
resolve_key_max(BackfillJob *job)
{
	Oid			argtype;
	Oid			maxfn;
	HeapTuple	agg;

	job->key_max = false;
	if (job->nkeys != 1)
		return;
	argtype = job->key_ops[0].opcintype;
	maxfn = LookupFuncName(list_make2(makeString("pg_catalog"), makeString("max")),
						   1, &argtype, true);
	if (!OidIsValid(maxfn))
		return;
	agg = SearchSysCache1(AGGFNOID, ObjectIdGetDatum(maxfn));
	if (HeapTupleIsValid(agg))
	{
		job->key_max = ((Form_pg_aggregate) GETSTRUCT(agg))->aggsortop == job->key_ops[0].gt;
		ReleaseSysCache(agg);
	}
}

/*
 * The order the job walks in is its key index's: each comparison and sort
 * uses that index's operator family (qualified with its schema, never
 * looked up through a search_path) and its collation.
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
	index_close(index, AccessShareLock);
	resolve_key_max(job);
}

/* Raises unless key column att of index indexoid is NOT NULL. */
static void
key_column_not_null(Form_pg_attribute att, Oid indexoid)
{
	if (!att->attnotnull)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("key column \"%s\" of index \"%s\" may be NULL", NameStr(att->attname),
						get_rel_name(indexoid)),
				 errdetail("Rows with a NULL key could not be walked in key order."),
				 errhint("Use a key whose columns are NOT NULL.")));
}

void
shift_key_column_attnums(Relation rel, List *key_columns, const char *owner, const char *hint,
						 AttrNumber *attnums)
{
	ListCell   *lc;
	int			n = 0;
	int			i;

	if (list_length(key_columns) > INDEX_MAX_KEYS)
		ereport(ERROR,
				(errcode(ERRCODE_TOO_MANY_COLUMNS),
				 errmsg("%s names %d key columns, at most %d are allowed",
						owner, list_length(key_columns), INDEX_MAX_KEYS)));
	foreach(lc, key_columns)
	{
		char	   *col = lfirst(lc);
		AttrNumber	attnum = get_attnum(RelationGetRelid(rel), col);

		if (attnum <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("key column \"%s\" of %s does not exist in \"%s\"",
							col, owner, RelationGetRelationName(rel)),
					 errhint("%s", hint)));
		for (i = 0; i < n; i++)
			if (attnums[i] == attnum)
				ereport(ERROR,
						(errcode(ERRCODE_DUPLICATE_COLUMN),
						 errmsg("key column \"%s\" of %s is named twice", col, owner)));
		attnums[n++] = attnum;
	}
}

/* key_column_attnums for a backfill job's key_columns => */
static void
key_column_attnums(BackfillJob *job, Relation rel, AttrNumber *attnums)
{
	shift_key_column_attnums(rel, job->key_columns, psprintf("backfill job \"%s\"", job->name),
							 "key_columns => names columns of the table the job walks.", attnums);
}

/*
 * The key of a foreign table, as key_columns => names it: no index says
 * how it sorts, so each column sorts by its type's default btree operator
 * class and its own collation, as PostgreSQL would sort it; an FDW that
 * pushes the key range, the order and the limit down (postgres_fdw,
 * mysql_fdw) has the remote server do it.  That the key is unique and NOT
 * NULL there cannot be checked here: the first batch looks for NULL keys
 * (fix_upper_bound) and every batch checks that its upper key is past the
 * checkpoint (backfill_do_batch).  Each column is compared on its own
 * (never ROW(...) > ROW(...), which no FDW sends to the remote side).
 */
static void
resolve_foreign_key(BackfillJob *job, Relation rel)
{
	AttrNumber	attnums[INDEX_MAX_KEYS];
	TupleDesc	desc = RelationGetDescr(rel);
	int			i;

	key_column_attnums(job, rel, attnums);
	job->nkeys = list_length(job->key_columns);
	for (i = 0; i < job->nkeys; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, attnums[i] - 1);

		job->key_names[i] = pstrdup(NameStr(att->attname));
		job->key_types[i] = att->atttypid;
		shift_type_key_ops(att->atttypid, att->attcollation, &job->key_ops[i]);
		job->key_sorted[i] = pstrdup(quote_identifier(job->key_names[i]));
	}
	job->key_rowcmp = false;
	resolve_key_max(job);
}

Oid
shift_key_index(Relation rel, int n, const AttrNumber *attnums)
{
	Oid			found = InvalidOid;
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;
	int			i;

	foreach(lc, indexes)
	{
		Oid			indexoid = lfirst_oid(lc);
		HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(indexoid));
		Form_pg_index idx;
		bool		match;

		if (!HeapTupleIsValid(tup))
			elog(ERROR, "cache lookup failed for index %u", indexoid);
		idx = (Form_pg_index) GETSTRUCT(tup);
		match = idx->indisunique && idx->indisvalid && idx->indnkeyatts == n &&
			heap_attisnull(tup, Anum_pg_index_indexprs, NULL) &&
			heap_attisnull(tup, Anum_pg_index_indpred, NULL) &&
			index_am(indexoid) == BTREE_AM_OID;
		for (i = 0; match && i < n; i++)
			match = idx->indkey.values[i] == attnums[i];
		if (match && (!OidIsValid(found) || idx->indisprimary))
			found = indexoid;
		ReleaseSysCache(tup);
	}
	if (!OidIsValid(found))
		return InvalidOid;
	for (i = 0; i < n; i++)
		key_column_not_null(TupleDescAttr(RelationGetDescr(rel), attnums[i] - 1), found);
	return found;
}

/* The columns key_columns => names, for people: "a, b". */
static char *
key_column_list(List *key_columns)
{
	StringInfoData cols;
	ListCell   *lc;

	initStringInfo(&cols);
	foreach(lc, key_columns)
		appendStringInfo(&cols, "%s%s", cols.len ? ", " : "", quote_identifier(lfirst(lc)));
	return cols.data;
}

/*
 * The unique index of a table whose key columns are exactly the columns
 * key_columns => names, in that order (shift_key_index), or an error.
 */
static Oid
index_of_key_columns(BackfillJob *job, Relation rel)
{
	AttrNumber	attnums[INDEX_MAX_KEYS];
	Oid			found;

	key_column_attnums(job, rel, attnums);
	found = shift_key_index(rel, list_length(job->key_columns), attnums);
	if (OidIsValid(found))
		return found;
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("table \"%s\" has no unique index on (%s) to walk",
					RelationGetRelationName(rel), key_column_list(job->key_columns)),
			 errdetail("A backfill of a local table walks a valid unique btree index whose columns are the key columns, in their order."),
			 errhint("Create such an index (CONCURRENTLY), or name the key with key => 'index_name'.")));
	pg_unreachable();
}

/*
 * Resolves the job's key: its primary key, the unique index named by
 * key => (key_index equal to the table itself means "the primary key"),
 * or the columns named by key_columns => (on a table, the unique index on
 * them; on a foreign table, the columns themselves).
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
	job->foreign = rel->rd_rel->relkind == RELKIND_FOREIGN_TABLE;
	if (rel->rd_rel->relkind != RELKIND_RELATION &&
		rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE && !job->foreign)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table", RelationGetRelationName(rel)),
				 errdetail("A backfill walks an ordinary, partitioned or foreign table.")));
	if (job->foreign && !job->copy)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("backfill job \"%s\" cannot update foreign table \"%s\" in place",
						job->name, RelationGetRelationName(rel)),
				 errdetail("A foreign table is only read: its rows are copied into a local table, whose writes commit together with the job's checkpoint."),
				 errhint("Copy it with into => 'table'.")));
	if (job->foreign)
	{
		if (job->key_columns == NIL)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("foreign table \"%s\" has no index for backfill job \"%s\" to walk",
							RelationGetRelationName(rel), job->name),
					 errhint("Name its key with key_columns => '{id}': columns that are unique and NOT NULL on the remote side.")));
		resolve_foreign_key(job, rel);
		table_close(rel, AccessShareLock);
		return;
	}
	if (job->key_columns != NIL)
		indexoid = index_of_key_columns(job, rel);
	else if (indexoid == job->relid)
	{
		indexoid = RelationGetPrimaryKeyIndex(rel);
		if (!OidIsValid(indexoid))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("table \"%s\" has no primary key to walk",
							RelationGetRelationName(rel)),
					 errhint("Name a unique index on NOT NULL columns with key => 'index_name', or its columns with key_columns => '{a,b}'.")));
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

		key_column_not_null(att, indexoid);
		job->key_names[i] = pstrdup(NameStr(att->attname));
		job->key_types[i] = att->atttypid;
	}
	job->key_index = indexoid;
	ReleaseSysCache(tup);
	resolve_key_ordering(job, desc);
	table_close(rel, AccessShareLock);
}

/*
 * The job's state and settings: the first columns of backfill_load_job's
 * and backfill_refresh_settings' queries, read by read_settings.
 */
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
BackfillJob *
backfill_load_job(const char *name, bool lock)
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
			 " upper_key, last_key, batches, batch_size, rate, search_path, key_columns"
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
	d = spi_datum(C(9), &isnull);
	job->key_index = isnull ? InvalidOid : DatumGetObjectId(d);
	if (isnull)
	{
		/* named by key_columns => (resolve_key finds a table's index) */
		Datum	   *elems;
		bool	   *nulls;
		int			n;
		int			i;

		d = spi_datum(C(17), &isnull);
		if (isnull)
			elog(ERROR, "backfill job \"%s\" has neither a key index nor key columns", name);
		deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT,
						  &elems, &nulls, &n);
		for (i = 0; i < n; i++)
		{
			if (nulls[i])
				elog(ERROR, "NULL key column in backfill job \"%s\"", name);
			job->key_columns = lappend(job->key_columns, TextDatumGetCString(elems[i]));
		}
		if (n == 0)
			elog(ERROR, "backfill job \"%s\" has neither a key index nor key columns", name);
	}
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
		backfill_set_last_key(job, last);
	}
#undef C
	return job;
}

/*
 * Locks the job's row and rereads its state and checkpoint: the
 * authoritative position, which backfill_step or an earlier run may have
 * moved since the job was loaded.
 */
void
backfill_lock_checkpoint(BackfillJob *job)
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
		backfill_set_last_key(job, last);
	}
	d = spi_datum(3, &isnull);
	if (!isnull && !job->has_upper)
	{
		Datum		upper[INDEX_MAX_KEYS];

		array_to_keys(job, d, upper);
		backfill_copy_keys(job, job->keep_cxt, job->upper, upper);
		job->has_upper = true;
	}
}

/*
 * Only the job's owner, a role with its privileges, or a superuser may run
 * it, and it runs as its owner; and only while it is what was checked.
 */
void
backfill_check_owner(BackfillJob *job)
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


/* Rereads the job's settings and state, without locking it. */
void
backfill_refresh_settings(BackfillJob *job)
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

List *
shift_copy_columns(Relation into, Oid source)
{
	TupleDesc	desc = RelationGetDescr(into);
	List	   *cols = NIL;
	int			i;

	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped || att->attgenerated)
			continue;
		if (get_attnum(source, NameStr(att->attname)) != InvalidAttrNumber)
			cols = lappend(cols, pstrdup(NameStr(att->attname)));
	}
	return cols;
}

/*
 * A copy's target and columns, checked: the target must be a table other
 * than the source; its columns are those named (columns =>), each of which
 * must exist, or else the target's columns the source has too, by name;
 * the select list defaults to those columns of the source.
 */
void
backfill_resolve_copy(BackfillJob *job)
{
	Relation	into = table_open(job->into_relid, AccessShareLock);
	StringInfoData cols;

	if (into->rd_rel->relkind != RELKIND_RELATION &&
		into->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table", RelationGetRelationName(into))));
	if (job->into_relid == job->relid)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("backfill job \"%s\" copies \"%s\" into itself", job->name,
						RelationGetRelationName(into)),
				 errhint("Use set => to change rows in place.")));
	if (job->into_columns == NIL)
	{
		job->into_columns = shift_copy_columns(into, job->relid);
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

/* ---------------------------------------------------------------- SQL fragments */

/*
 * Checks each SQL fragment on its own: set must be only SET assignments,
 * where only a condition, select only a list of expressions, the throttle
 * query one SELECT.  A fragment that is more than that (a second statement,
 * a FROM, an unbalanced parenthesis, a trailing comment) could otherwise
 * change the statement it is put into.
 */
void
backfill_check_fragments(BackfillJob *job)
{
	const char *owner = psprintf("backfill job \"%s\"", job->name);

	shift_check_fragment(owner, "set", "UPDATE x SET ", job->set_clause, SHIFT_FRAGMENT_SET,
						 "assignments only", true,
						 "Write set => 'col = expr, col2 = expr2'; put conditions in where =>.");
	shift_check_fragment(owner, "where", "SELECT 1 WHERE ", job->where_clause,
						 SHIFT_FRAGMENT_WHERE, "a condition only", true, NULL);
	shift_check_select_fragment(owner, job->select_list);
	shift_check_fragment(owner, "throttle_query", "", job->throttle_query, SHIFT_FRAGMENT_QUERY,
						 "a SELECT", false,
						 "It runs before every batch; while it returns true the job waits.");
}
