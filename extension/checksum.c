/*-------------------------------------------------------------------------
 *
 * checksum.c
 *	  Chunk checksums: shift.table_checksum, shift.chunk_checksums,
 *	  shift.row_hashes, shift.key_rows, shift.checksum_columns,
 *	  shift.value_word.  What a checksum hashes (a side's columns and key)
 *	  is settled in checksum_side.c.
 *
 * A chunk's checksum is the row count and two 64-bit sums (mod 2^64) of
 * the rows' 128-bit hashes (checksum_scan.c): it does not depend on row
 * order, a duplicated row adds rather than cancels, and the chunks of a
 * table sum to its checksum with the same key.
 *
 * Chunks are key ranges (the key in the order of its btree operator
 * family, chunk_rows rows each or sized to target_ms) or key-hash buckets
 * (the top bits of the key hash, so a table needs one sequential scan, no
 * index and no collation).  Bucket b of 2^n buckets holds exactly buckets
 * 2b and 2b+1 of 2^(n+1): comparing sides can refine only the buckets that
 * differ.
 *
 * Every statement built here qualifies its operators, taken from the key's
 * btree operator family with their own schema (citext's live in the
 * schema citext was installed in), and its functions; the caller's column
 * expressions are the only SQL not written here, and when there are none,
 * search_path is pinned to pg_catalog as well.  Every call runs with the
 * display settings fixed (checksum_canon.c), reads in the calling
 * statement's snapshot as the calling role, and takes no lock beyond
 * AccessShareLock.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/nbtree.h"
#include "access/table.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "portability/instr_time.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "checksum.h"

PG_FUNCTION_INFO_V1(shift_table_checksum);
PG_FUNCTION_INFO_V1(shift_chunk_checksums);
PG_FUNCTION_INFO_V1(shift_row_hashes);
PG_FUNCTION_INFO_V1(shift_key_rows);
PG_FUNCTION_INFO_V1(shift_checksum_columns);
PG_FUNCTION_INFO_V1(shift_value_word);

/* ---------------------------------------------------------------- helpers */

int
bucket_bits(int32 buckets)
{
	int			bits = 0;

	if (buckets < 1 || buckets > (1 << MAX_BUCKET_BITS) || (buckets & (buckets - 1)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("buckets must be a power of two from 1 to %d", 1 << MAX_BUCKET_BITS),
				 errdetail("It was %d.", buckets),
				 errhint("Bucket b of n buckets splits into buckets 2b and 2b+1 of 2n.")));
	while ((1 << bits) < buckets)
		bits++;
	return bits;
}

/* A bitmap of the bucket numbers in only (NULL: every bucket). */
uint8 *
only_bitmap(ArrayType *only, int bits)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			i;
	uint8	   *map;

	if (only == NULL)
		return NULL;
	map = palloc0(((Size) 1 << bits) / 8 + 1);
	deconstruct_array(only, INT4OID, 4, true, TYPALIGN_INT, &elems, &nulls, &n);
	for (i = 0; i < n; i++)
	{
		int32		b = DatumGetInt32(elems[i]);

		if (nulls[i] || b < 0 || b >= (1 << bits))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("bucket %d is not one of the %d buckets", nulls[i] ? -1 : b, 1 << bits)));
		map[b >> 3] |= (uint8) (1 << (b & 7));
	}
	return map;
}

static Datum
acc_checksum(const Acc *a)
{
	return CStringGetTextDatum(hex128(a->hi, a->lo));
}

void
open_spi(void)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

/*
 * Pins the display settings, opens the side (the table argument 0 names,
 * its columns and key the text[] arguments colarg and keyarg: NULL, or past
 * the call's arguments, is not given), and pins search_path when it can.
 */
static int
begin_side(FunctionCallInfo fcinfo, Side *side, int colarg, int keyarg, bool key_defaults_to_pk)
{
	ArrayType  *arrays[2] = {NULL, NULL};
	int			args[2] = {colarg, keyarg};
	int			level = canon_pin_settings();
	int			i;

	for (i = 0; i < 2; i++)
		if (args[i] < PG_NARGS() && !PG_ARGISNULL(args[i]))
			arrays[i] = PG_GETARG_ARRAYTYPE_P(args[i]);
	side_init(side, "table", PG_GETARG_OID(0), arrays[0], arrays[1], key_defaults_to_pk);
	side_finish(side);
	if (!side->has_exprs)
		canon_pin_search_path();
	return level;
}

/* ---------------------------------------------------------------- table_checksum */

/*
 * shift.table_checksum(rel regclass, columns text[] DEFAULT NULL,
 *		key text[] DEFAULT NULL)
 *	 RETURNS TABLE (rows bigint, checksum text)
 *
 * The row count and 128-bit checksum of the whole table in one scan.
 * Without key the rows are hashed alone; with it each row is bound to its
 * key, as chunk_checksums hashes it (its chunks sum to this).
 */
Datum
shift_table_checksum(PG_FUNCTION_ARGS)
{
	Side		side;
	HashReceiver *r;
	TupleDesc	desc;
	Datum		values[2];
	bool		nulls[2] = {false, false};
	int			level;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the table must not be NULL")));
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	level = begin_side(fcinfo, &side, 1, 2, false);
	open_spi();
	r = receiver_create(RM_TOTAL, &side);
	scan_into(&side, r, page_range(0, true));
	values[0] = Int64GetDatum((int64) r->total.rows);
	SPI_finish();
	AtEOXact_GUC(true, level);
	/* after SPI_finish: the text must live in the caller's memory */
	values[1] = acc_checksum(&r->total);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}

/* ---------------------------------------------------------------- chunk_checksums */

/* text[] of key values for output (NULL when absent) */
static Datum
keys_out(Side *side, Datum *vals, bool *nulls, bool *isnull)
{
	int			n = list_length(side->key);
	Datum	   *out = palloc(sizeof(Datum) * n);
	int			dims[1] = {n};
	int			lbs[1] = {1};
	int			i;

	if (vals == NULL)
	{
		*isnull = true;
		return (Datum) 0;
	}
	*isnull = false;
	for (i = 0; i < n; i++)
	{
		Oid			outfn;
		bool		isvarlena;

		if (!nulls[i])
		{
			getTypeOutputInfo(((Column *) list_nth(side->key, i))->typid, &outfn, &isvarlena);
			out[i] = CStringGetTextDatum(OidOutputFunctionCall(outfn, vals[i]));
		}
	}
	return PointerGetDatum(construct_md_array(out, nulls, 1, dims, lbs, TEXTOID, -1, false,
											  TYPALIGN_INT));
}

/* One key's values read from their text with each key type's input function. */
static void
key_values_in(List *texts, List *cols, const char *what, Datum *vals, bool *nulls)
{
	ListCell   *lc;
	ListCell   *lc2;

	if (list_length(texts) != list_length(cols))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must have one value per key column (%d), not %d", what,
						list_length(cols), list_length(texts))));
	forboth(lc, texts, lc2, cols)
	{
		Column	   *col = lfirst(lc2);
		int			i = foreach_current_index(lc);
		Oid			infn;
		Oid			ioparam;

		nulls[i] = lfirst(lc) == NULL;
		if (nulls[i])
			continue;
		getTypeInputInfo(col->typid, &infn, &ioparam);
		vals[i] = OidInputFunctionCall(infn, lfirst(lc), ioparam, col->typmod);
	}
}

static ParamListInfo
make_params(int n, Oid *types, Datum *vals, bool *nulls)
{
	ParamListInfo p = makeParamList(n);
	int			i;

	for (i = 0; i < n; i++)
	{
		p->params[i].value = vals[i];
		p->params[i].isnull = nulls ? nulls[i] : false;
		p->params[i].pflags = PARAM_FLAG_CONST;
		p->params[i].ptype = types[i];
	}
	p->numParams = n;
	return p;
}

static void
emit_chunk(ReturnSetInfo *rsinfo, int64 chunk, Datum lower, bool lower_null, Datum upper,
		   bool upper_null, const Acc *a)
{
	Datum		values[5];
	bool		nulls[5] = {false, lower_null, upper_null, false, false};

	values[0] = Int64GetDatum(chunk);
	values[1] = lower;
	values[2] = upper;
	values[3] = Int64GetDatum((int64) a->rows);
	values[4] = acc_checksum(a);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/* Hash buckets: one scan, one row per non-empty bucket. */
static void
chunk_buckets(ReturnSetInfo *rsinfo, Side *side, int bits, ArrayType *only, Datum pages,
			  bool pages_null)
{
	HashReceiver *r;
	uint32		b;

	r = receiver_create(RM_BUCKETS, side);
	set_buckets(r, bits, only_bitmap(only, bits));
	scan_into(side, r, page_range(pages, pages_null));
	for (b = 0; b < ((uint32) 1 << bits); b++)
		if (r->accs[b].rows > 0)
			emit_chunk(rsinfo, b, 0, true, 0, true, &r->accs[b]);
}

/*
 * Refuses a key that is NULL in some row, or not unique: key ranges would
 * skip those rows.  The primary key needs no look; anything else is checked
 * once (a scan).
 */
static void
check_key_not_null(Side *side)
{
	ListCell   *lc;
	StringInfoData sql;

	if (side->key_is_pk)
		return;
	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT 1 FROM %s GROUP BY ", side->relname);
	append_key_list(&sql, side);
	appendStringInfoString(&sql, " HAVING pg_catalog.count(*) OPERATOR(pg_catalog.>) 1 LIMIT 1");
	if (SPI_execute(sql.data, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed: %s", sql.data);
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("key of %s \"%s\" is not unique", side->what, get_rel_name(side->relid)),
				 errdetail("Key ranges cut between rows of one key value would skip rows."),
				 errhint("Use a unique key, or buckets => n.")));

	foreach(lc, side->key)
	{
		Column	   *key = lfirst(lc);
		char	   *sql;

		if (key->notnull)
			continue;
		sql = psprintf("SELECT 1 FROM %s WHERE %s IS NULL LIMIT 1", side->relname, key->sql);
		if (SPI_execute(sql, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "SPI_execute failed: %s", sql);
		if (SPI_processed > 0)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("key column \"%s\" of %s \"%s\" is NULL in some rows", key->label,
							side->what, get_rel_name(side->relid)),
					 errdetail("Key ranges cannot hold rows whose key is NULL."),
					 errhint("Use buckets => n, which handles NULL keys.")));
	}
}

/*
 * chunk_ranges' two statements, [0] from the start and [1] after a lower
 * key: $1..$n the lower key, $n+1..$2n the upper key (when has_upper),
 * $2n+1 the limit; rows in key order.
 */
static void
prepare_range_plans(Side *side, KeyOps *ops, Oid *types, bool has_upper, SPIPlanPtr *plans)
{
	int			nkeys = list_length(side->key);
	StringInfoData sql;
	ListCell   *lc;
	int			p;

	initStringInfo(&sql);
	for (p = 0; p < 2; p++)
	{
		bool		any = false;

		resetStringInfo(&sql);
		appendStringInfo(&sql, "SELECT %s FROM %s", side_target_list(side), side->relname);
		if (p == 1)
		{
			appendStringInfoString(&sql, " WHERE ");
			append_key_bound(&sql, side, ops, true, 1);
			any = true;
		}
		if (has_upper)
		{
			appendStringInfoString(&sql, any ? " AND " : " WHERE ");
			append_key_bound(&sql, side, ops, false, nkeys + 1);
		}
		appendStringInfoString(&sql, " ORDER BY ");
		foreach(lc, side->key)
			appendStringInfo(&sql, "%s%s USING %s", foreach_current_index(lc) ? ", " : "",
							 ((Column *) lfirst(lc))->sql,
							 ops[foreach_current_index(lc)].ops[BTLessStrategyNumber]);
		appendStringInfo(&sql, " LIMIT $%d", 2 * nkeys + 1);
		plans[p] = prepare_plan(sql.data, 2 * nkeys + 1, types);
	}
}

/*
 * The next chunk's rows for chunks of target_ms, from the last one's size
 * and time: at most twice or half the last, from 100 to 10 000 000 rows.
 */
static int64
next_chunk_size(int64 size, int32 target_ms, double ms)
{
	double		next = ms > 0 ? size * (target_ms / ms) : size * 2.0;

	next = Min(next, size * 2.0);
	next = Max(next, size / 2.0);
	return (int64) Min(Max(next, 100.0), 10000000.0);
}

/*
 * Key ranges: chunk after chunk of chunk_rows rows in key order (or sized
 * to target_ms), each (lower, upper] with the first open below and the last
 * open above, so another table checked with the same bounds covers the same
 * keys.  The order and the bounds use the key's own btree operators.
 */
static void
chunk_ranges(ReturnSetInfo *rsinfo, Side *side, int64 chunk_rows, int32 target_ms,
			 ArrayType *lower_arr, ArrayType *upper_arr)
{
	int			nkeys = list_length(side->key);
	Oid			types[INDEX_MAX_KEYS * 2 + 1];
	Datum		vals[INDEX_MAX_KEYS * 2 + 1];
	Datum		upper[INDEX_MAX_KEYS];
	bool		upper_nulls[INDEX_MAX_KEYS];
	SPIPlanPtr	plans[2];		/* [0] from the start, [1] after a lower key */
	bool		no_nulls[INDEX_MAX_KEYS] = {false};
	MemoryContext param_cxt;
	HashReceiver *r;
	KeyOps	   *ops;
	int64		chunk = 0;
	int64		size = chunk_rows;
	bool		has_lower = lower_arr != NULL;
	bool		has_upper = upper_arr != NULL;
	ListCell   *lc;
	int			i;

	if (nkeys == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s \"%s\" has no primary key to cut into key ranges", side->what,
						get_rel_name(side->relid)),
				 errhint("Name its key with key => ARRAY['col'], or use buckets => n, which needs no key.")));
	ops = key_ops(side);
	require_key_ops(side, ops);
	check_key_not_null(side);
	r = receiver_create(RM_RANGE, side);
	/* the lower key's copy passed to a query; the receiver overwrites r->last meanwhile */
	param_cxt = AllocSetContextCreate(CurrentMemoryContext, "shift checksum bound",
									  ALLOCSET_SMALL_SIZES);

	foreach(lc, side->key)
		types[foreach_current_index(lc)] = ((Column *) lfirst(lc))->typid;
	for (i = 0; i < nkeys; i++)
		types[nkeys + i] = types[i];
	types[2 * nkeys] = INT8OID;
	if (has_upper)
	{
		key_values_in(text_array_list(upper_arr), side->key, "upper", upper, upper_nulls);
		for (i = 0; i < nkeys; i++)
			if (upper_nulls[i])
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("upper must not contain NULL")));
	}

	prepare_range_plans(side, ops, types, has_upper, plans);

	if (has_lower)
	{
		MemoryContext old = MemoryContextSwitchTo(r->last_cxt);

		key_values_in(text_array_list(lower_arr), side->key, "lower", r->last, r->last_null);
		MemoryContextSwitchTo(old);
		for (i = 0; i < nkeys; i++)
			if (r->last_null[i])
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("lower must not contain NULL")));
	}
	for (;;)
	{
		Datum		lower_out;
		bool		lower_null;
		Datum		upper_out;
		bool		upper_null;
		instr_time	start;
		instr_time	elapsed;
		bool		last_chunk;

		lower_out = keys_out(side, has_lower ? r->last : NULL, r->last_null, &lower_null);
		MemoryContextReset(param_cxt);
		for (i = 0; i < nkeys; i++)
		{
			if (has_lower)
			{
				int16		typlen;
				bool		typbyval;

				MemoryContext old = MemoryContextSwitchTo(param_cxt);

				get_typlenbyval(types[i], &typlen, &typbyval);
				vals[i] = datumCopy(r->last[i], typbyval, typlen);
				MemoryContextSwitchTo(old);
			}
			else
				vals[i] = (Datum) 0;
			vals[nkeys + i] = has_upper ? upper[i] : (Datum) 0;
		}
		vals[2 * nkeys] = Int64GetDatum(size);
		memset(&r->total, 0, sizeof(r->total));
		INSTR_TIME_SET_CURRENT(start);
		run_into(plans[has_lower ? 1 : 0], make_params(2 * nkeys + 1, types, vals, NULL), r);
		INSTR_TIME_SET_CURRENT(elapsed);
		INSTR_TIME_SUBTRACT(elapsed, start);

		last_chunk = (int64) r->total.rows < size;
		if (last_chunk)
			upper_out = keys_out(side, has_upper ? upper : NULL, no_nulls, &upper_null);
		else
			upper_out = keys_out(side, r->last, r->last_null, &upper_null);
		emit_chunk(rsinfo, chunk++, lower_out, lower_null, upper_out, upper_null, &r->total);
		if (last_chunk)
			break;
		has_lower = true;
		if (target_ms > 0)
			size = next_chunk_size(size, target_ms, INSTR_TIME_GET_MILLISEC(elapsed));
	}
}

/*
 * shift.chunk_checksums(rel regclass, columns text[], key text[],
 *		buckets integer, chunk_rows bigint, target_ms integer,
 *		lower text[], upper text[], only integer[], pages int8range)
 *	 RETURNS TABLE (chunk bigint, lower text[], upper text[], rows bigint, checksum text)
 */
Datum
shift_chunk_checksums(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Side		side;
	bool		by_bucket = !PG_ARGISNULL(3);
	bool		by_range = !PG_ARGISNULL(4) || !PG_ARGISNULL(5) || !PG_ARGISNULL(6) ||
		!PG_ARGISNULL(7);
	int64		chunk_rows;
	int32		target_ms;
	int			level;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the table must not be NULL")));
	if (by_bucket && by_range)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("buckets cannot be combined with chunk_rows, target_ms, lower or upper"),
				 errhint("Hash buckets and key ranges are two ways to cut a table; pick one.")));
	if (!by_bucket && (!PG_ARGISNULL(8) || !PG_ARGISNULL(9)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("only_buckets and pages need buckets => n")));
	InitMaterializedSRF(fcinfo, 0);
	level = begin_side(fcinfo, &side, 1, 2, true);
	open_spi();
	if (by_bucket)
	{
		int			bits = bucket_bits(PG_GETARG_INT32(3));

		chunk_buckets(rsinfo, &side, bits, PG_ARGISNULL(8) ? NULL : PG_GETARG_ARRAYTYPE_P(8),
					  PG_ARGISNULL(9) ? (Datum) 0 : PG_GETARG_DATUM(9), PG_ARGISNULL(9));
	}
	else
	{
		target_ms = PG_ARGISNULL(5) ? 0 : PG_GETARG_INT32(5);
		chunk_rows = PG_ARGISNULL(4) ? (target_ms > 0 ? 1000 : 100000) : PG_GETARG_INT64(4);
		if (chunk_rows < 1 || target_ms < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("chunk_rows must be at least 1 and target_ms positive")));
		chunk_ranges(rsinfo, &side, chunk_rows, target_ms,
					 PG_ARGISNULL(6) ? NULL : PG_GETARG_ARRAYTYPE_P(6),
					 PG_ARGISNULL(7) ? NULL : PG_GETARG_ARRAYTYPE_P(7));
	}
	SPI_finish();
	AtEOXact_GUC(true, level);
	return (Datum) 0;
}

/* ---------------------------------------------------------------- row hashes */

static void
emit_rows(ReturnSetInfo *rsinfo, HashReceiver *r, bool with_bucket)
{
	int64		i;

	for (i = 0; i < r->nrows; i++)
	{
		RowEntry   *e = &r->rows[i];
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};
		int			v = 0;

		if (with_bucket)
			values[v++] = Int32GetDatum((int32) e->bucket);
		values[v++] = e->keytext;
		values[v++] = CStringGetTextDatum(hex128(e->key.high64, e->key.low64));
		values[v++] = CStringGetTextDatum(hex128(e->row.high64, e->row.low64));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/*
 * shift.row_hashes(rel regclass, columns text[], key text[], buckets integer,
 *		only integer[])
 *	 RETURNS TABLE (bucket integer, key text[], key_hash text, row_hash text)
 */
Datum
shift_row_hashes(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Side		side;
	HashReceiver *r;
	int			bits;
	int			level;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the table and buckets must not be NULL")));
	bits = bucket_bits(PG_GETARG_INT32(3));
	InitMaterializedSRF(fcinfo, 0);
	level = begin_side(fcinfo, &side, 1, 2, true);
	open_spi();
	r = collect_rows(&side, bits, only_bitmap(PG_ARGISNULL(4) ? NULL : PG_GETARG_ARRAYTYPE_P(4), bits),
					 0, false);
	emit_rows(rsinfo, r, true);
	SPI_finish();
	AtEOXact_GUC(true, level);
	return (Datum) 0;
}

static int
cmp_hash_ptr(const void *a, const void *b)
{
	return cmp_hash(*(const XXH128_hash_t *) a, *(const XXH128_hash_t *) b);
}

/* A key (or keyless row) as row_hashes prints it: its values as text. */
static List *
key_texts(const char *literal)
{
	Datum		arr = OidInputFunctionCall(F_ARRAY_IN, (char *) literal, TEXTOID, -1);
	ArrayType  *a = DatumGetArrayTypeP(arr);
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			i;
	List	   *out = NIL;

	if (ARR_NDIM(a) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("a key must be a one-dimensional text array: %s", literal)));
	deconstruct_array(a, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (i = 0; i < n; i++)
		out = lappend(out, nulls[i] ? NULL : TextDatumGetCString(elems[i]));
	return out;
}

/*
 * shift.key_rows(rel regclass, keys text[], columns text[], key text[])
 *	 RETURNS TABLE (key text[], key_hash text, row_hash text)
 *
 * The rows with the given keys, each key as row_hashes prints it ('{42}'):
 * what pgshift compare reads again for the rows that differed.  A key with
 * btree operators (the primary key's, or its types' defaults) is looked up
 * with them, one probe per key; otherwise (and for a keyless table, whose
 * rows are their own keys) one scan picks the rows by key hash.
 */
Datum
shift_key_rows(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Side		side;
	HashReceiver *r;
	List	   *keys;
	List	   *cols;
	KeyOps	   *ops = NULL;
	bool		probe;
	int			n;
	Datum	   *vals;
	bool	   *nulls;
	ListCell   *lc;
	int			level;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the table and keys must not be NULL")));
	InitMaterializedSRF(fcinfo, 0);
	level = begin_side(fcinfo, &side, 2, 3, true);
	keys = text_array_list(PG_GETARG_ARRAYTYPE_P(1));
	open_spi();
	cols = side.key != NIL ? side.key : side.columns;
	n = list_length(cols);
	vals = palloc(sizeof(Datum) * n);
	nulls = palloc(sizeof(bool) * n);
	probe = side.key != NIL;
	if (probe)
	{
		int			k;

		ops = key_ops(&side);
		for (k = 0; k < n; k++)
			probe = probe && ops[k].found;
	}
	r = receiver_create(RM_ROWS, &side);
	set_buckets(r, 0, NULL);
	if (probe)
	{
		/* one plan per pattern of NULL key values, kept as they are needed */
		List	   *masks = NIL;
		List	   *plans = NIL;
		Oid		   *types = palloc(sizeof(Oid) * n);

		foreach(lc, cols)
			types[foreach_current_index(lc)] = ((Column *) lfirst(lc))->typid;
		foreach(lc, keys)
		{
			uint32		mask = 0;
			SPIPlanPtr	plan = NULL;
			ListCell   *m;
			int			k;

			CHECK_FOR_INTERRUPTS();
			key_values_in(key_texts(lfirst(lc)), cols, "a key", vals, nulls);
			for (k = 0; k < n; k++)
				if (nulls[k])
					mask |= (uint32) 1 << k;
			foreach(m, masks)
				if (lfirst_int(m) == (int) mask)
					plan = list_nth(plans, foreach_current_index(m));
			if (plan == NULL)
			{
				StringInfoData sql;

				initStringInfo(&sql);
				appendStringInfo(&sql, "SELECT %s FROM %s WHERE ", side_target_list(&side),
								 side.relname);
				for (k = 0; k < n; k++)
				{
					const char *ksql = ((Column *) list_nth(cols, k))->sql;

					if (nulls[k])
						appendStringInfo(&sql, "%s%s IS NULL", k ? " AND " : "", ksql);
					else
						appendStringInfo(&sql, "%s%s %s $%d", k ? " AND " : "", ksql,
										 ops[k].ops[BTEqualStrategyNumber], k + 1);
				}
				plan = prepare_plan(sql.data, n, types);
				masks = lappend_int(masks, (int) mask);
				plans = lappend(plans, plan);
			}
			run_into(plan, make_params(n, types, vals, nulls), r);
		}
	}
	else
	{
		/* one scan, keeping the rows whose key hash is wanted */
		r->nwant_keys = list_length(keys);
		r->want_keys = palloc(sizeof(XXH128_hash_t) * Max(r->nwant_keys, 1));
		foreach(lc, keys)
		{
			key_values_in(key_texts(lfirst(lc)), cols, "a key", vals, nulls);
			r->want_keys[foreach_current_index(lc)] = key_hash_of(r, vals, nulls);
		}
		qsort(r->want_keys, r->nwant_keys, sizeof(XXH128_hash_t), cmp_hash_ptr);
		if (r->nwant_keys > 0)
			scan_into(&side, r, page_range(0, true));
	}
	emit_rows(rsinfo, r, false);
	SPI_finish();
	AtEOXact_GUC(true, level);
	return (Datum) 0;
}

/* ---------------------------------------------------------------- checksum_columns */

/*
 * shift.checksum_columns(rel regclass, columns text[], key text[])
 *	 RETURNS TABLE (ord integer, label text, is_key boolean, type text, class text)
 *
 * What a checksum of rel hashes: each column (then each key column) with its
 * type and its class; columns of different classes never hash equal.  The
 * runner compares two servers' answers before it scans anything.
 */
Datum
shift_checksum_columns(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Side		side;
	List	   *items;
	ListCell   *lc;
	int			ncols;
	int			level;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the table must not be NULL")));
	InitMaterializedSRF(fcinfo, 0);
	level = begin_side(fcinfo, &side, 1, 2, true);
	ncols = list_length(side.columns);
	items = list_concat_copy(side.columns, side.key);
	foreach(lc, items)
	{
		Column	   *col = lfirst(lc);
		int			i = foreach_current_index(lc);
		ColHash		ch;
		Datum		values[5];
		bool		nulls[5] = {false, false, false, false, false};

		colhash_init(&ch, col->typid, col->typmod, CurrentMemoryContext);
		values[0] = Int32GetDatum(i < ncols ? i + 1 : i - ncols + 1);
		values[1] = CStringGetTextDatum(col->label);
		values[2] = BoolGetDatum(i >= ncols);
		values[3] = CStringGetTextDatum(format_type_be(col->typid));
		values[4] = CStringGetTextDatum(colhash_class(&ch));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	AtEOXact_GUC(true, level);
	return (Datum) 0;
}

/* ---------------------------------------------------------------- value_word */

/*
 * shift.value_word(value anyelement) RETURNS text
 *
 * The canonical word of one value (doc/checksum.md), as 16 hexadecimal
 * digits, most significant first: what a row hash is built from, for
 * checking another implementation or a single value.  NULL for NULL (a
 * NULL's word is NULL_WORD with its bit set in the row's bitmap).
 */
Datum
shift_value_word(PG_FUNCTION_ARGS)
{
	Oid			typid = get_fn_expr_argtype(fcinfo->flinfo, 0);
	ColHash		ch;
	Canon		cn;
	uint64		w;
	int			level;

	if (!OidIsValid(typid))
		elog(ERROR, "could not determine the type of the value");
	level = canon_pin_settings();
	colhash_init(&ch, typid, -1, CurrentMemoryContext);
	canon_init(&cn);
	w = value_word(&cn, &ch, PG_GETARG_DATUM(0));
	AtEOXact_GUC(true, level);
	PG_RETURN_TEXT_P(cstring_to_text(psprintf("%016llx", (unsigned long long) w)));
}
