/*-------------------------------------------------------------------------
 *
 * backfill_sql.c
 *	  The statements a backfill job runs, built from its definition and
 *	  prepared as its owner under its search_path: the search for a batch's
 *	  upper key (the last of the next n keys in the key index's order) and the
 *	  batch's UPDATE or INSERT ... SELECT over the keys in (checkpoint, upper
 *	  key], each in a form for the first batch (no checkpoint yet) and the
 *	  next ones; and, for a job's first batch, the queries of its last key
 *	  (the bound) and of its row count when the planner has no estimate.
 *
 * Every operator is the key index's own, named with its schema (sqlgen.c),
 * every table with its schema; the job's fragments are put in as checked
 * (backfill_check_fragments), each inside its own clause.  A copy into a
 * table that a sync also writes locks the rows it reads
 * (backfill_copy_lock_mode).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "backfill.h"

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
 * The placeholder of argument arg (0-based) of a batch's arguments (the
 * checkpoint's n key values, the upper key's n, the batch size): "$arg+1",
 * or with a map, a placeholder of its own ("$k" for the k-th placeholder
 * of the statement, map->src[k-1] = arg).  A foreign table's statements
 * use each placeholder once: mysql_fdw 2.8 binds a parameter used twice
 * wrongly (the remote query returns no row).
 */
static char *
param_ref(BackfillArgMap *map, int arg)
{
	if (map == NULL)
		return psprintf("$%d", arg + 1);
	map->src[map->n++] = arg;
	return psprintf("$%d", map->n);
}

/* A map for a statement of the job: NULL unless the job's table is foreign. */
static BackfillArgMap *
new_arg_map(BackfillJob *job)
{
	BackfillArgMap *map;

	if (!job->foreign)
		return NULL;
	map = palloc0(sizeof(BackfillArgMap));
	/* two key conditions of at most n(n+3)/2 placeholders each, the limit */
	map->src = palloc(sizeof(int) * (job->nkeys * (job->nkeys + 3) + 1));
	return map;
}

/*
 * "(k1, k2) OPERATOR(s.>) ($1, $2)": the key in the index's order against
 * arguments first..first+nkeys-1 (0-based, see param_ref).  Operators of
 * several schemas cannot share one row comparison, and no FDW sends a row
 * comparison to its remote side: then it is spelled out column by column,
 * "k1 > $1 OR (k1 = $1 AND k2 > $2)", with the first column's range
 * (k1 >= $1) in front so that the index still bounds the scan; one column
 * is just "k1 > $1".
 */
static void
append_key_condition(StringInfo s, BackfillJob *job, const char *op, int first,
					 BackfillArgMap *map)
{
	int			i;

	if (job->key_rowcmp)
	{
		appendStringInfoChar(s, '(');
		for (i = 0; i < job->nkeys; i++)
			appendStringInfo(s, "%s%s", i ? ", " : "", job->key_sorted[i]);
		appendStringInfo(s, ") %s (", shift_qualified_operator(key_op(job, 0, op)));
		for (i = 0; i < job->nkeys; i++)
			appendStringInfo(s, "%s%s", i ? ", " : "", param_ref(map, first + i));
		appendStringInfoChar(s, ')');
		return;
	}
	else if (job->nkeys == 1)
		shift_append_compare(s, job->key_sorted[0], key_op(job, 0, op), param_ref(map, first));
	else
	{
		/* the strict form of op for every column but the last */
		const char *strict = op[0] == '<' ? "<" : ">";
		const char *loose = op[0] == '<' ? "<=" : ">=";
		int			j;

		appendStringInfoString(s, "(");
		shift_append_compare(s, job->key_sorted[0], key_op(job, 0, loose), param_ref(map, first));
		appendStringInfoString(s, " AND (");
		for (i = 0; i < job->nkeys; i++)
		{
			appendStringInfo(s, "%s(", i ? " OR " : "");
			for (j = 0; j < i; j++)
			{
				shift_append_compare(s, job->key_sorted[j], job->key_ops[j].eq,
									 param_ref(map, first + j));
				appendStringInfoString(s, " AND ");
			}
			shift_append_compare(s, job->key_sorted[i],
								 key_op(job, i, i == job->nkeys - 1 ? op : strict),
								 param_ref(map, first + i));
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
 * Where the job's own fragments sit in a statement built from them, so that
 * an error inside one is reported as the user's (see prepare).
 */
#define MAX_SPANS 2

typedef struct FragSpans
{
	int			n;
	ShiftFragSpan span[MAX_SPANS];
} FragSpans;

/* Appends fragment text (the job's what) to s, noting where it went. */
static void
append_fragment(StringInfo s, FragSpans *spans, const char *what, const char *text)
{
	ShiftFragSpan *f = &spans->span[spans->n++];

	Assert(spans->n <= MAX_SPANS);
	f->what = what;
	f->text = text;
	f->from = s->len;
	appendStringInfoString(s, text);
	f->to = s->len;
}

/*
 * WHERE clause of a batch: keys after $1..$n (unless first) up to
 * $n+1..$2n, and the job's own condition.
 */
static void
append_range(StringInfo s, BackfillJob *job, bool first, FragSpans *spans, BackfillArgMap *map)
{
	appendStringInfoString(s, "\n WHERE ");
	if (!first)
	{
		append_key_condition(s, job, ">", 0, map);
		appendStringInfoString(s, " AND ");
	}
	append_key_condition(s, job, "<=", job->nkeys, map);
	if (job->where_clause)
	{
		appendStringInfoString(s, " AND (\n");
		append_fragment(s, spans, "where", job->where_clause);
		appendStringInfoString(s, "\n)");
	}
}

/* The job's last key now (its upper bound, fixed on its first batch). */
char *
backfill_last_key_sql(BackfillJob *job)
{
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfoString(&s, "SELECT ");
	append_key_list(&s, job, NULL);
	appendStringInfo(&s, " FROM %s ORDER BY ", backfill_relation_name(job->relid, "table", job->name));
	append_key_list(&s, job, ">");
	appendStringInfoString(&s, " LIMIT 1");
	return s.data;
}

/*
 * A row of a foreign table whose key has a NULL column, if there is one:
 * such a row is in no key range, so no batch would ever copy it.
 */
char *
backfill_null_key_sql(BackfillJob *job)
{
	StringInfoData s;
	int			i;

	initStringInfo(&s);
	appendStringInfo(&s, "SELECT 1 FROM %s WHERE ",
					 backfill_relation_name(job->relid, "table", job->name));
	for (i = 0; i < job->nkeys; i++)
		appendStringInfo(&s, "%s%s IS NULL", i ? " OR " : "", quote_identifier(job->key_names[i]));
	appendStringInfoString(&s, " LIMIT 1");
	return s.data;
}

/*
 * The least key above $1 and up to $2 (one integer key): where a stride
 * batch goes on after an empty range, across a gap in the keys.
 */
char *
backfill_next_key_sql(BackfillJob *job)
{
	const char *col = quote_identifier(job->key_names[0]);

	return psprintf("SELECT pg_catalog.min(%s) FROM %s WHERE %s OPERATOR(pg_catalog.>) $1"
					" AND %s OPERATOR(pg_catalog.<=) $2",
					col, backfill_relation_name(job->relid, "table", job->name), col, col);
}

/* The number of rows the job walks, when the planner has no estimate. */
char *
backfill_count_sql(BackfillJob *job)
{
	return psprintf("SELECT pg_catalog.count(*) FROM %s",
					backfill_relation_name(job->relid, "table", job->name));
}

/*
 * The statement finding a batch's upper key and its number of keys: the
 * last of the next n keys in the index's order.  With max() (see
 * resolve_key_ordering), max() and count() stream over the index scan;
 * otherwise it takes the top row of the n in descending order (a top-1
 * sort, no full sort).
 */
static char *
hi_sql(BackfillJob *job, bool first, BackfillArgMap *map)
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
	appendStringInfo(&s, " FROM %s WHERE ", backfill_relation_name(job->relid, "table", job->name));
	if (!first)
	{
		append_key_condition(&s, job, ">", 0, map);
		appendStringInfoString(&s, " AND ");
	}
	append_key_condition(&s, job, "<=", job->nkeys, map);
	appendStringInfoString(&s, " ORDER BY ");
	append_key_list(&s, job, "<");
	appendStringInfo(&s, " LIMIT %s) s", param_ref(map, 2 * job->nkeys));
	if (!job->key_max)
	{
		appendStringInfoString(&s, " ORDER BY ");
		append_key_list(&s, job, ">");
		appendStringInfoString(&s, " LIMIT 1");
	}
	return s.data;
}

/*
 * A copy's "ON CONFLICT (pk) DO UPDATE SET col = EXCLUDED.col, ...": every
 * copied column outside the target's primary key takes the new value.
 */
static void
append_on_conflict_update(StringInfo s, BackfillJob *job)
{
	Relation	into = table_open(job->into_relid, AccessShareLock);
	Oid			pk = RelationGetPrimaryKeyIndex(into);
	HeapTuple	tup;
	Form_pg_index idx;
	StringInfoData set;
	ListCell   *lc;
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
	appendStringInfoString(s, "\nON CONFLICT (");
	for (i = 0; i < idx->indnkeyatts; i++)
		appendStringInfo(s, "%s%s", i ? ", " : "",
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
		appendStringInfo(s, ") DO UPDATE SET %s", set.data);
	else
		appendStringInfoString(s, ") DO NOTHING");
	ReleaseSysCache(tup);
	table_close(into, AccessShareLock);
}

/* The statement that does a batch's work; spans: where the job's fragments are. */
static char *
batch_sql(BackfillJob *job, bool first, FragSpans *spans, BackfillArgMap *map)
{
	StringInfoData s;
	const char *rel = backfill_relation_name(job->relid, "table", job->name);

	initStringInfo(&s);
	spans->n = 0;
	if (!job->copy)
	{
		appendStringInfo(&s, "UPDATE %s SET\n", rel);
		append_fragment(&s, spans, "set", job->set_clause);
		appendStringInfoString(&s, "\n");
		append_range(&s, job, first, spans, map);
	}
	else
	{
		ListCell   *lc;
		bool		first_col = true;

		appendStringInfo(&s, "INSERT INTO %s (", backfill_relation_name(job->into_relid, "target", job->name));
		foreach(lc, job->into_columns)
		{
			appendStringInfo(&s, "%s%s", first_col ? "" : ", ", quote_identifier(lfirst(lc)));
			first_col = false;
		}
		appendStringInfoString(&s, ") OVERRIDING SYSTEM VALUE\nSELECT\n");
		append_fragment(&s, spans, "select list", job->select_list);
		appendStringInfo(&s, "\n  FROM %s", rel);
		append_range(&s, job, first, spans, map);
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
			append_on_conflict_update(&s, job);
	}
	return s.data;
}

/*
 * An error preparing sql that points into one of the job's fragments is
 * raised again as that fragment's (shift_raise_in_fragment); any other as
 * it was.
 */
static void
raise_in_fragment(BackfillJob *job, const char *sql, FragSpans *spans, ErrorData *edata)
{
	if (spans == NULL)
		ReThrowError(edata);
	shift_raise_in_fragment(psprintf("backfill job \"%s\"", job->name), sql, spans->n, spans->span, edata);
}

static SPIPlanPtr
prepare_as_is(BackfillJob *job, const char *sql, int nargs, Oid *argtypes, const char *what,
			  FragSpans *spans)
{
	SPIPlanPtr	plan = NULL;
	MemoryContext cxt = CurrentMemoryContext;

	/* raised again at once (the transaction aborts): no subtransaction needed */
	PG_TRY();
	{
		plan = SPI_prepare(sql, nargs, argtypes);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		raise_in_fragment(job, sql, spans, edata);
	}
	PG_END_TRY();
	if (plan == NULL)
		elog(ERROR, "could not prepare the %s of backfill job \"%s\": %s", what, job->name,
			 SPI_result_code_string(SPI_result));
	return plan;
}

/*
 * Prepares sql, which takes nargs of a batch's arguments in their order
 * (see param_ref), or those map lists.
 */
static SPIPlanPtr
prepare(BackfillJob *job, const char *sql, int nargs, const char *what, FragSpans *spans,
		BackfillArgMap *map)
{
	Oid			logical[2 * INDEX_MAX_KEYS + 1];
	Oid		   *argtypes;
	int			i;

	for (i = 0; i < job->nkeys; i++)
		logical[i] = logical[job->nkeys + i] = job->key_types[i];
	logical[2 * job->nkeys] = INT8OID;
	if (map == NULL)
		return prepare_as_is(job, sql, nargs, logical, what, spans);
	argtypes = palloc(sizeof(Oid) * Max(map->n, 1));
	for (i = 0; i < map->n; i++)
		argtypes[i] = logical[map->src[i]];
	return prepare_as_is(job, sql, map->n, argtypes, what, spans);
}

/*
 * How a copy must lock the rows it reads: not at all unless a table-level
 * sync mirrors the source into the copy's target; then FOR KEY SHARE when
 * the target's key is the source's key (key_follows_source), FOR SHARE
 * otherwise.
 */
int
backfill_copy_lock_mode(BackfillJob *job)
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

/*
 * Prepares the job's statements (errors in its SQL surface here, with the
 * statement as context).  Kept plans when keep, for a whole run.
 */
void
backfill_prepare_plans(BackfillJob *job, BackfillPlans *plans, bool keep)
{
	int			n = job->nkeys;
	ShiftAs		as;
	FragSpans	spans;
	char	   *sql;

	job->lock_mode = backfill_copy_lock_mode(job);
	if (job->lock_mode != COPY_LOCK_NONE && strcmp(job->on_conflict, "nothing") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("backfill job \"%s\" copies into a table a sync writes, with on_conflict => '%s'",
						job->name, job->on_conflict),
				 errdetail("The sync writes each row as it changes; a copy that raised on those rows (error) or overwrote them with what it read earlier (update) would fail or lose the newer version."),
				 errhint("Use on_conflict => 'nothing': the rows the sync wrote are newer.")));
	/* parsed as the owner, under the job's search_path: what it will run */
	plans->hi_first_map = new_arg_map(job);
	plans->hi_next_map = new_arg_map(job);
	plans->batch_first_map = new_arg_map(job);
	plans->batch_next_map = new_arg_map(job);
	as_owner(job, &as);
	sql = hi_sql(job, true, plans->hi_first_map);
	plans->hi_first = prepare(job, sql, 2 * n + 1, "key search", NULL, plans->hi_first_map);
	sql = hi_sql(job, false, plans->hi_next_map);
	plans->hi_next = prepare(job, sql, 2 * n + 1, "key search", NULL, plans->hi_next_map);
	sql = batch_sql(job, true, &spans, plans->batch_first_map);
	plans->batch_first = prepare(job, sql, 2 * n, "batch statement", &spans,
								 plans->batch_first_map);
	sql = batch_sql(job, false, &spans, plans->batch_next_map);
	plans->batch_next = prepare(job, sql, 2 * n, "batch statement", &spans,
								plans->batch_next_map);
	shift_as_end(&as);
	if (keep)
	{
		SPI_keepplan(plans->hi_first);
		SPI_keepplan(plans->hi_next);
		SPI_keepplan(plans->batch_first);
		SPI_keepplan(plans->batch_next);
	}
}

/*
 * SPI_execute_plan of one of the job's statements with the batch's
 * arguments (args and nulls as prepare's logical order has them), through
 * the statement's map if it has one.
 */
int
backfill_execute_plan(SPIPlanPtr plan, BackfillArgMap *map, Datum *args, const char *nulls,
					  bool read_only, long count)
{
	Datum	   *a;
	char	   *n;
	int			i;

	if (map == NULL)
		return SPI_execute_plan(plan, args, nulls, read_only, count);
	a = palloc(sizeof(Datum) * Max(map->n, 1));
	n = palloc(map->n + 1);
	for (i = 0; i < map->n; i++)
	{
		a[i] = args[map->src[i]];
		n[i] = nulls[map->src[i]];
	}
	n[map->n] = '\0';
	return SPI_execute_plan(plan, a, n, read_only, count);
}

void
backfill_free_plans(BackfillPlans *plans)
{
	SPIPlanPtr	all[] = {plans->hi_first, plans->hi_next, plans->batch_first,
		plans->batch_next};

	shift_free_plans(all, lengthof(all));
	memset(plans, 0, sizeof(*plans));
}
