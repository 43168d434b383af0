/*-------------------------------------------------------------------------
 *
 * sync_check.c
 *	  Checks of a sync outside its triggers, run as the sync's owner under
 *	  its search_path: shift_internal._sync_check compiles what the triggers will run
 *	  before sync_create installs them, and shift_internal.cutover_check
 *	  compares the two sides of a table-level sync under the cut-over's
 *	  locks.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "pg_shift.h"
#include "sync.h"

PG_FUNCTION_INFO_V1(shift_sync_check);
PG_FUNCTION_INFO_V1(shift_cutover_check);

/* ---------------------------------------------------------------- the cut-over's check */

/* One side of the check: "SELECT <cols> FROM rel AS alias ORDER BY alias.key DESC LIMIT n". */
static char *
check_side_sql(Oid rel, const char *alias, List *exprs, List *key, int rows)
{
	StringInfoData s;
	ListCell   *lc;

	initStringInfo(&s);
	appendStringInfoString(&s, "SELECT ");
	foreach(lc, exprs)
		appendStringInfo(&s, "%s%s", foreach_current_index(lc) ? ", " : "", (char *) lfirst(lc));
	appendStringInfo(&s, " FROM %s AS %s ORDER BY ", sync_qualified_name(rel), quote_identifier(alias));
	/*
	 * The table's own key column, qualified by the alias: a bare name would
	 * be the output column of that name, the mapped (maybe cast) value,
	 * which no index orders, and the whole table would be sorted under the
	 * cut-over's locks.
	 */
	foreach(lc, key)
		appendStringInfo(&s, "%s%s.%s DESC", foreach_current_index(lc) ? ", " : "",
						 quote_identifier(alias), quote_identifier(lfirst(lc)));
	appendStringInfo(&s, " LIMIT %d", rows);
	return s.data;
}

/*
 * shift_internal.cutover_check(sync text, reverse bool, check_mode text,
 *                              check_rows int) returns void
 *
 * Compares the two sides of a table-level sync under the cut-over's locks,
 * in the direction about to be taken (reverse: the revert): 'recent' the
 * last check_rows rows of each, the source's mapped through the sync's
 * expressions (each one's own key orders it, through its index), 'count'
 * the row counts, 'none' nothing.  Raises when they differ.  The sync's
 * expressions run as its owner, under its search_path.
 */
Datum
shift_cutover_check(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	bool		reverse = PG_GETARG_BOOL(1);
	char	   *mode = text_to_cstring(PG_GETARG_TEXT_PP(2));
	int			rows = PG_GETARG_INT32(3);
	MemoryContext cxt = CurrentMemoryContext;
	SyncConfig *c;
	Mapping    *m;
	List	   *src_key;
	List	   *src_exprs = NIL;
	List	   *dst_cols = NIL;
	char	   *src_sql;
	char	   *dst_sql;
	ListCell   *lc;
	ListCell   *lc2;
	ShiftAs		as;
	int64		diff;
	bool		isnull;
	int			rc;

	if (strcmp(mode, "none") == 0)
		PG_RETURN_VOID();
	if (strcmp(mode, "count") != 0 && strcmp(mode, "recent") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("check must be recent, count or none, not \"%s\"", mode)));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	c = sync_load_config(name, true, NULL, cxt);
	if (c->column_level || c->reverse.columns == NIL)
		elog(ERROR, "sync \"%s\" has nothing to check for a cut-over", name);
	m = reverse ? &c->reverse : &c->forward;
	/* the source's key: the other direction's key columns, of the source */
	src_key = reverse ? c->forward.key : c->reverse.key;
	sync_as_owner(c, &as);
	if (strcmp(mode, "count") == 0)
	{
		int64		n_src;
		int64		n_dst;

		rc = SPI_execute(psprintf("SELECT pg_catalog.count(*) FROM %s", sync_qualified_name(m->src)), true, 1);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "could not count the rows of %s", sync_qualified_name(m->src));
		n_src = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		rc = SPI_execute(psprintf("SELECT pg_catalog.count(*) FROM %s", sync_qualified_name(m->dst)), true, 1);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "could not count the rows of %s", sync_qualified_name(m->dst));
		n_dst = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		shift_as_end(&as);
		if (n_src != n_dst)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("cut-over check of sync \"%s\" failed: %s has " INT64_FORMAT " rows, %s has " INT64_FORMAT,
							name, sync_qualified_name(m->src), n_src, sync_qualified_name(m->dst), n_dst),
					 errhint("Find the differences with shift.compare; the sync keeps the tables equal once the backfill is done.")));
		SPI_finish();
		PG_RETURN_VOID();
	}
	/* each mapped value cast to its destination column's type, as stored */
	forboth(lc, m->columns, lc2, m->exprs)
	{
		AttrNumber	att = get_attnum(m->dst, lfirst(lc));
		Oid			type;
		int32		typmod;
		Oid			coll;

		if (att == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of %s does not exist", (char *) lfirst(lc), sync_qualified_name(m->dst))));
		get_atttypetypmodcoll(m->dst, att, &type, &typmod, &coll);
		src_exprs = lappend(src_exprs, psprintf("CAST((%s) AS %s)", (char *) lfirst(lc2),
												shift_qualified_type(type, typmod)));
		dst_cols = lappend(dst_cols, psprintf("pgs_d.%s", quote_identifier(lfirst(lc))));
	}
	src_sql = check_side_sql(m->src, m->alias, src_exprs, src_key, rows);
	dst_sql = check_side_sql(m->dst, "pgs_d", dst_cols, m->key, rows);
	rc = SPI_execute(psprintf("SELECT (SELECT pg_catalog.count(*) FROM ((%s) EXCEPT ALL (%s)) a)"
							  " OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM ((%s) EXCEPT ALL (%s)) b)",
							  src_sql, dst_sql, dst_sql, src_sql), true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not compare the last rows of sync \"%s\"", name);
	diff = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	shift_as_end(&as);
	if (diff > 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cut-over check of sync \"%s\" failed: " INT64_FORMAT " of the last %d rows of %s and %s differ",
						name, diff, rows, sync_qualified_name(m->src), sync_qualified_name(m->dst)),
				 errdetail("Compared: %s against %s", src_sql, dst_sql),
				 errhint("Find the differences with shift.compare; check => 'count' or 'none' skips this comparison.")));
	SPI_finish();
	PG_RETURN_VOID();
}

/* ---------------------------------------------------------------- shift_internal._sync_check */

/*
 * shift_internal._sync_check(name text) returns void
 *
 * Called by sync_create before it installs any trigger: compiles what the
 * triggers will run (both directions of a table-level sync), so every
 * mistake in the sync's SQL is reported now, with the statement.
 */
Datum
shift_sync_check(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "pg_shift sync check",
											  ALLOCSET_SMALL_SIZES);
	SyncConfig *c;
	SyncEntry	e;
	ShiftAs		as;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	c = sync_load_config(name, false, NULL, cxt);
	SPI_finish();
	/* compiled as the sync's owner, under its search_path */
	sync_as_owner(c, &as);
	memset(&e, 0, sizeof(e));
	e.cxt = AllocSetContextCreate(cxt, "pg_shift sync check entry", ALLOCSET_SMALL_SIZES);
	if (c->column_level)
	{
		Relation	rel = table_open(c->relation, RowExclusiveLock);

		sync_build_column_entry(&e, c, rel);
		table_close(rel, NoLock);
	}
	else
	{
		/* both directions, each in an entry of its own */
		Mapping    *maps[2] = {&c->forward, c->reverse.columns != NIL ? &c->reverse : NULL};
		int			i;

		for (i = 0; i < 2 && maps[i] != NULL; i++)
		{
			Relation	rel = table_open(maps[i]->src, AccessShareLock);

			if (i > 0)
			{
				sync_free_entry_resources(&e);
				memset(&e, 0, sizeof(e));
				e.cxt = AllocSetContextCreate(cxt, "pg_shift sync check entry", ALLOCSET_SMALL_SIZES);
			}
			sync_build_table_entry(&e, c, maps[i], rel, rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE);
			table_close(rel, NoLock);
		}
	}
	sync_free_entry_resources(&e);
	shift_as_end(&as);
	MemoryContextDelete(cxt);
	PG_RETURN_VOID();
}
