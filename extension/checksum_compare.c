/*-------------------------------------------------------------------------
 *
 * checksum_compare.c
 *	  shift.compare: the rows that differ between two tables of one
 *	  database.
 *
 * Both tables are summed into key-hash buckets (checksum_scan.c); only the
 * rows of the buckets that differ are then read again, as key, key hash,
 * row hash and column words, and matched.  A foreign table is read once:
 * its rows are spooled while they are summed (sum_side).  Both scans read the calling
 * statement's snapshot as the calling role; nothing is written and no
 * lock beyond AccessShareLock is taken.  pgshift compare does the same
 * across two servers with chunk_checksums and row_hashes.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_class.h"
#include "funcapi.h"
#include "storage/buffile.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "checksum.h"

PG_FUNCTION_INFO_V1(shift_compare);

/* The planner's row estimate of a table (a million when never analyzed). */
static double
reltuples(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	double		n;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	n = ((Form_pg_class) GETSTRUCT(tup))->reltuples;
	ReleaseSysCache(tup);
	return n < 0 ? 1e6 : n;
}

/* by key hash, then row hash, then side */
static int
cmp_entry(const void *pa, const void *pb)
{
	const RowEntry *a = pa;
	const RowEntry *b = pb;
	int			c = cmp_hash(a->key, b->key);

	if (c == 0)
		c = cmp_hash(a->row, b->row);
	if (c == 0)
		c = a->side - b->side;
	return c;
}

static inline bool
colnull(const RowEntry *e, int i)
{
	return (e->colnull[i >> 3] & (1 << (i & 7))) != 0;
}

/* A difference; for different rows, the columns whose value or NULL-ness differ. */
static void
emit_difference(ReturnSetInfo *rsinfo, const char *kind, RowEntry *e, RowEntry *other,
				Side *src)
{
	Datum		values[3];
	bool		nulls[3] = {false, false, true};

	values[0] = CStringGetTextDatum(kind);
	values[1] = e->keytext;
	values[2] = (Datum) 0;
	if (other && e->colhash && other->colhash)
	{
		ArrayBuildState *astate = initArrayResult(TEXTOID, CurrentMemoryContext, false);
		ListCell   *lc;

		foreach(lc, src->columns)
		{
			int			i = foreach_current_index(lc);

			if (e->colhash[i] != other->colhash[i] || colnull(e, i) != colnull(other, i))
				astate = accumArrayResult(astate,
										  CStringGetTextDatum(((Column *) lfirst(lc))->label),
										  false, TEXTOID, CurrentMemoryContext);
		}
		values[2] = makeArrayResult(astate, CurrentMemoryContext);
		nulls[2] = false;
	}
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/* Refuses column pairs that can never hold equal values (int against text, ...). */
static void
check_column_types(Side *src, Side *tgt)
{
	List	   *a = list_concat_copy(src->columns, src->key);
	List	   *b = list_concat_copy(tgt->columns, tgt->key);
	int			ncols = list_length(src->columns);
	ListCell   *la;
	ListCell   *lb;

	forboth(la, a, lb, b)
	{
		Column	   *ca = lfirst(la);
		Column	   *cb = lfirst(lb);
		int			i = foreach_current_index(la);
		ColHash		ha;
		ColHash		hb;

		colhash_init(&ha, ca->typid, ca->typmod, CurrentMemoryContext);
		colhash_init(&hb, cb->typid, cb->typmod, CurrentMemoryContext);
		if (strcmp(colhash_class(&ha), colhash_class(&hb)) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("%s \"%s\" is %s in the source but %s \"%s\" is %s in the target",
							i < ncols ? "column" : "key column", ca->label,
							format_type_be(ca->typid),
							i < ncols ? "column" : "key column", cb->label,
							format_type_be(cb->typid)),
					 errdetail("Values of these two types never hash equal."),
					 errhint("Cast one side to the other's type, e.g. columns => ARRAY['id::bigint'].")));
	}
}

/*
 * Opens both sides from shift.compare's arguments: the target's columns and
 * key default to the source's, and both must pair up column for column,
 * with types whose values can hash equal.
 */
static void
open_sides(FunctionCallInfo fcinfo, Side *src, Side *tgt)
{
	side_init(src, "source", PG_GETARG_OID(0), PG_ARGISNULL(2) ? NULL : PG_GETARG_ARRAYTYPE_P(2),
			  PG_ARGISNULL(4) ? NULL : PG_GETARG_ARRAYTYPE_P(4), true);
	side_finish(src);
	side_init(tgt, "target", PG_GETARG_OID(1),
			  PG_ARGISNULL(3) ? (PG_ARGISNULL(2) ? NULL : PG_GETARG_ARRAYTYPE_P(2)) :
			  PG_GETARG_ARRAYTYPE_P(3),
			  PG_ARGISNULL(5) ? (PG_ARGISNULL(4) ? NULL : PG_GETARG_ARRAYTYPE_P(4)) :
			  PG_GETARG_ARRAYTYPE_P(5), false);
	/* the target's columns and key default to the source's, by what they resolve to */
	side_default_target(tgt, src, PG_ARGISNULL(3) && PG_ARGISNULL(2),
						PG_ARGISNULL(5) && PG_ARGISNULL(4));
	if (list_length(src->columns) != list_length(tgt->columns))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("source has %d columns to compare but target has %d",
						list_length(src->columns), list_length(tgt->columns)),
				 errhint("Give both lists: columns => ARRAY[...], target_columns => ARRAY[...].")));
	if (list_length(src->key) != list_length(tgt->key))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("source key has %d columns but target key has %d",
						list_length(src->key), list_length(tgt->key))));
	side_finish(tgt);
	if (!src->has_exprs && !tgt->has_exprs)
		canon_pin_search_path();
	check_column_types(src, tgt);
}

/* The buckets argument's bits, or enough for about a thousand rows per bucket. */
static int
compare_bits(FunctionCallInfo fcinfo, Oid relid)
{
	int			bits;

	if (PG_ARGISNULL(6))
	{
		double		est = reltuples(relid);

		bits = 4;
		while (bits < 20 && ((double) ((int64) 1 << bits)) * 1000.0 < est)
			bits++;
	}
	else
		bits = bucket_bits(PG_GETARG_INT32(6));
	return bits;
}

/*
 * One side summed into key-hash buckets.  A foreign table's rows are also
 * spooled to a temporary file as they are summed: the rows of the buckets
 * that differ then come from the file, and the remote side is read once.
 * (Its FDW cannot compute the sums: the words are PostgreSQL's, of values
 * that exist only after the FDW's conversion.)  A local side is cheaper to
 * scan again than to spool.
 */
static HashReceiver *
sum_side(Side *side, int bits)
{
	HashReceiver *r = receiver_create(RM_BUCKETS, side);

	set_buckets(r, bits, NULL);
	if (side->relkind == RELKIND_FOREIGN_TABLE)
		spool_rows(r);
	scan_into(side, r, page_range(0, true));
	return r;
}

static void
drop_spool(HashReceiver *r)
{
	if (r->spool)
		BufFileClose(r->spool);
	r->spool = NULL;
}

/*
 * Emits the differences among the rows all[i..] of one key hash (sorted by
 * row hash, then side) and returns where the next key hash starts: equal
 * row hashes on both sides cancel in pairs; what remains pairs up as
 * different, the rest is missing.
 */
static int64
emit_key_run(ReturnSetInfo *rsinfo, RowEntry *all, int64 n, int64 i, Side *src)
{
	int64		end = i;
	int64		j;
	List	   *left[2] = {NIL, NIL};

	while (end < n && cmp_hash(all[end].key, all[i].key) == 0)
		end++;
	for (j = i; j < end;)
	{
		int64		k = j;
		int64		count[2] = {0, 0};
		int64		m;

		while (k < end && cmp_hash(all[k].row, all[j].row) == 0)
			count[all[k++].side]++;
		/* sorted by side within the run: sources first */
		for (m = 0; m < count[0] - Min(count[0], count[1]); m++)
			left[0] = lappend(left[0], &all[j + m]);
		for (m = 0; m < count[1] - Min(count[0], count[1]); m++)
			left[1] = lappend(left[1], &all[j + count[0] + m]);
		j = k;
	}
	while (left[0] != NIL && left[1] != NIL)
	{
		emit_difference(rsinfo, "different", linitial(left[0]), linitial(left[1]), src);
		left[0] = list_delete_first(left[0]);
		left[1] = list_delete_first(left[1]);
	}
	for (j = 0; j < list_length(left[0]); j++)
		emit_difference(rsinfo, "missing_in_target", list_nth(left[0], j), NULL, src);
	for (j = 0; j < list_length(left[1]); j++)
		emit_difference(rsinfo, "missing_in_source", list_nth(left[1], j), NULL, src);
	return end;
}

/*
 * shift.compare(source regclass, target regclass, columns text[],
 *		target_columns text[], key text[], target_key text[], buckets integer)
 *	 RETURNS TABLE (kind text, key text[], columns text[])
 *
 * Sums both tables into key-hash buckets, then looks at the rows of the
 * buckets that differ only: a key on one side only is missing_in_target or
 * missing_in_source, a key on both sides with different rows is different
 * (columns lists which).  Without a key the rows themselves are compared as
 * multisets.  Both scans read the caller's snapshot.
 */
Datum
shift_compare(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Side		src;
	Side		tgt;
	HashReceiver *rs;
	HashReceiver *rt;
	HashReceiver *cs;
	HashReceiver *ct;
	int			bits;
	uint32		nb;
	uint32		b;
	uint8	   *differ;
	int64		ndiffer = 0;
	RowEntry   *all;
	int64		n;
	int64		i;
	int			level;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("source and target must not be NULL")));
	InitMaterializedSRF(fcinfo, 0);
	level = canon_pin_settings();
	open_sides(fcinfo, &src, &tgt);
	open_spi();

	bits = compare_bits(fcinfo, src.relid);
	nb = (uint32) 1 << bits;

	rs = sum_side(&src, bits);
	rt = sum_side(&tgt, bits);

	differ = palloc0(nb / 8 + 1);
	for (b = 0; b < nb; b++)
		if (memcmp(&rs->accs[b], &rt->accs[b], sizeof(Acc)) != 0)
		{
			differ[b >> 3] |= (uint8) (1 << (b & 7));
			ndiffer++;
		}
	if (ndiffer == 0)
	{
		drop_spool(rs);
		drop_spool(rt);
		SPI_finish();
		AtEOXact_GUC(true, level);
		return (Datum) 0;
	}

	cs = rs->spool ? spooled_rows(rs, &src, differ, 0, true) : collect_rows(&src, bits, differ, 0, true);
	ct = rt->spool ? spooled_rows(rt, &tgt, differ, 1, true) : collect_rows(&tgt, bits, differ, 1, true);
	n = cs->nrows + ct->nrows;
	all = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(RowEntry) * Max(n, 1));
	if (cs->nrows)
		memcpy(all, cs->rows, sizeof(RowEntry) * cs->nrows);
	if (ct->nrows)
		memcpy(all + cs->nrows, ct->rows, sizeof(RowEntry) * ct->nrows);
	if (n > 1)
		qsort(all, n, sizeof(RowEntry), cmp_entry);

	for (i = 0; i < n;)
		i = emit_key_run(rsinfo, all, n, i, &src);
	SPI_finish();
	AtEOXact_GUC(true, level);
	return (Datum) 0;
}
