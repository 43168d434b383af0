/*-------------------------------------------------------------------------
 *
 * checksum_side.c
 *	  What a checksum hashes: one side's relation, its columns and its key,
 *	  as the user named them (column names or SQL expressions) and as the
 *	  server's parser resolves them; and the key's btree operators, with
 *	  which key ranges are written (checksum.c, shift.key_rows).
 *
 * A column list item is a column name as it is, or one SQL expression over
 * the relation's columns, checked with the server's parser to be exactly
 * one expression and analyzed with the caller's search_path.  The key's
 * operators come from the operator family that orders it, never from a
 * lookup by name.  Opening a side takes AccessShareLock on its relation
 * and refuses one whose rows a row-level security policy hides.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/nbtree.h"
#include "access/table.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "parser/analyze.h"
#include "parser/parser.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/syscache.h"

#include "checksum.h"
#include "pg_shift.h"

/* ---------------------------------------------------------------- what to hash */

List *
text_array_list(ArrayType *arr)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			i;
	List	   *out = NIL;

	if (arr == NULL)
		return NIL;
	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("a list of columns must be a one-dimensional text array")));
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("a list of columns must not contain NULL")));
		out = lappend(out, TextDatumGetCString(elems[i]));
	}
	return out;
}

/*
 * A column given by the user: a column name of the relation as it is
 * (quoted here), or else one SQL expression over the relation's columns,
 * checked with the server's parser to be exactly one expression.  What it
 * resolves to is settled by side_finish.
 */
static Column *
make_column(Relation rel, const char *side, const char *text, bool must_exist)
{
	TupleDesc	desc = RelationGetDescr(rel);
	Column	   *col = palloc0(sizeof(Column));
	char	   *sql;
	List	   *stmts;
	SelectStmt *s;
	ErrorData  *edata;
	int			i;

	col->label = pstrdup(text);
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), text) == 0)
		{
			col->sql = pstrdup(quote_identifier(text));
			col->attnum = att->attnum;
			return col;
		}
	}
	if (must_exist)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("%s \"%s\" has no column \"%s\"", side, RelationGetRelationName(rel), text),
				 errhint("Name the columns on each side: columns => ARRAY[...], target_columns => ARRAY[...] (expressions such as 'id::bigint' are allowed).")));
	sql = psprintf("SELECT %s", text);
	stmts = shift_raw_parse(sql, &edata);
	if (edata != NULL)
		ereport(ERROR,
				(errcode(edata->sqlerrcode),
				 errmsg("%s column \"%s\" is neither a column of \"%s\" nor an expression: %s",
						side, text, RelationGetRelationName(rel), edata->message)));
	s = (list_length(stmts) == 1) ? (SelectStmt *) linitial_node(RawStmt, stmts)->stmt : NULL;
	if (s == NULL || !IsA(s, SelectStmt) || s->op != SETOP_NONE ||
		list_length(s->targetList) != 1 || s->fromClause != NIL || s->whereClause != NULL ||
		s->groupClause != NIL || s->havingClause != NULL || s->windowClause != NIL ||
		s->sortClause != NIL || s->limitCount != NULL || s->limitOffset != NULL ||
		s->lockingClause != NIL || s->withClause != NULL || s->intoClause != NULL ||
		s->distinctClause != NIL || s->valuesLists != NIL ||
		((ResTarget *) linitial(s->targetList))->name != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("%s column \"%s\" must be a column of \"%s\" or a single expression",
						side, text, RelationGetRelationName(rel)),
				 errhint("Give a column name as it is, or an expression such as 'id::bigint' or 'lower(email)'.")));
	/* on lines of its own, so that a trailing -- comment ends with it */
	col->sql = psprintf("(\n%s\n)", text);
	return col;
}

/*
 * Opens one side: columns default to every column in order, the key to the
 * primary key when key_defaults_to_pk (none: the whole row identifies
 * itself).  side_finish must follow once the lists are final.
 */
void
side_init(Side *side, const char *what, Oid relid, ArrayType *columns, ArrayType *key,
		  bool key_defaults_to_pk)
{
	Relation	rel;
	TupleDesc	desc;
	List	   *names;
	ListCell   *lc;
	int			i;

	memset(side, 0, sizeof(*side));
	side->what = what;
	side->relid = relid;
	rel = table_open(relid, AccessShareLock);
	side->relkind = rel->rd_rel->relkind;
	if (side->relkind != RELKIND_RELATION && side->relkind != RELKIND_PARTITIONED_TABLE &&
		side->relkind != RELKIND_MATVIEW && side->relkind != RELKIND_VIEW &&
		side->relkind != RELKIND_FOREIGN_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("%s \"%s\" has no rows to checksum", what, RelationGetRelationName(rel)),
				 errdetail_relkind_not_supported(side->relkind),
				 errhint("Checksums read tables, partitioned tables, materialized views, views and foreign tables.")));
	if (side->relkind == RELKIND_MATVIEW && !RelationIsPopulated(rel))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("materialized view \"%s\" has not been populated",
						RelationGetRelationName(rel)),
				 errhint("Use the REFRESH MATERIALIZED VIEW command.")));
	side->relname = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
											   RelationGetRelationName(rel));
	if (check_enable_rls(relid, InvalidOid, true) == RLS_ENABLED)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("row-level security hides rows of %s \"%s\" from role \"%s\"", what,
						RelationGetRelationName(rel), GetUserNameFromId(GetUserId(), false)),
				 errdetail("A checksum of the rows a policy lets you see would not be a checksum of the table."),
				 errhint("Run it as the table's owner or a role with BYPASSRLS.")));
	desc = RelationGetDescr(rel);

	names = text_array_list(columns);
	if (columns != NULL && names == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the %s column list is empty", what)));
	if (names == NIL)
	{
		for (i = 0; i < desc->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, i);

			if (!att->attisdropped)
				names = lappend(names, pstrdup(NameStr(att->attname)));
		}
		if (names == NIL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s \"%s\" has no columns", what, RelationGetRelationName(rel))));
	}
	foreach(lc, names)
		side->columns = lappend(side->columns, make_column(rel, what, lfirst(lc), false));

	names = text_array_list(key);
	if (key == NULL && key_defaults_to_pk)
	{
		Oid			pk = RelationGetPrimaryKeyIndex(rel);

		if (OidIsValid(pk))
		{
			Relation	idx = index_open(pk, AccessShareLock);

			for (i = 0; i < idx->rd_index->indnkeyatts; i++)
			{
				AttrNumber	attnum = idx->rd_index->indkey.values[i];

				names = lappend(names, pstrdup(NameStr(TupleDescAttr(desc, attnum - 1)->attname)));
			}
			index_close(idx, AccessShareLock);
			side->key_is_pk = true;
		}
	}
	foreach(lc, names)
		side->key = lappend(side->key, make_column(rel, what, lfirst(lc), false));
	if (list_length(side->key) > INDEX_MAX_KEYS)
		ereport(ERROR,
				(errcode(ERRCODE_TOO_MANY_COLUMNS),
				 errmsg("a key may have at most %d columns", INDEX_MAX_KEYS)));
	table_close(rel, AccessShareLock);
}

/*
 * The target's columns and key, when not given, are the source's: a source
 * item that resolves to a column stands for the target's column of that
 * name, an expression for the same expression over the target's columns.
 */
void
side_default_target(Side *tgt, Side *src, bool columns, bool key)
{
	Relation	rel = table_open(tgt->relid, AccessShareLock);
	Relation	srel = table_open(src->relid, AccessShareLock);
	int			pass;

	for (pass = 0; pass < 2; pass++)
	{
		List	   *from = pass == 0 ? src->columns : src->key;
		List	   *out = NIL;
		ListCell   *lc;

		if (pass == 0 ? !columns : !key)
			continue;
		foreach(lc, from)
		{
			Column	   *c = lfirst(lc);
			const char *name = c->label;
			bool		must_exist = true;

			if (c->attnum > 0)
				name = NameStr(TupleDescAttr(RelationGetDescr(srel), c->attnum - 1)->attname);
			else
				must_exist = false;
			out = lappend(out, make_column(rel, tgt->what, name, must_exist));
		}
		if (pass == 0)
			tgt->columns = out;
		else
			tgt->key = out;
	}
	table_close(srel, AccessShareLock);
	table_close(rel, AccessShareLock);
}

/* An error in the column list points into the query built from it, as SPI's do. */
static void
analyze_error_callback(void *arg)
{
	int			pos = geterrposition();

	if (pos > 0)
	{
		errposition(0);
		internalerrposition(pos);
		internalerrquery((const char *) arg);
	}
}

/*
 * Settles what each column and key item resolves to, with the server's
 * parser and the caller's search_path: an item that is a column (by name,
 * "(id)" or "ID") is that column, anything else an expression of its type.
 * Then the output list: the columns, and the key items that are none of
 * them (the same resolved expression is read once).
 */
void
side_finish(Side *side)
{
	Relation	rel = table_open(side->relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	List	   *items = list_concat_copy(side->columns, side->key);
	StringInfoData sql;
	List	   *raw;
	Query	   *query;
	ListCell   *lc;
	ListCell   *tlc;
	ErrorContextCallback errcallback;
	int			k;

	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT ");
	foreach(lc, items)
		appendStringInfo(&sql, "%s%s", foreach_current_index(lc) ? ", " : "",
						 ((Column *) lfirst(lc))->sql);
	appendStringInfo(&sql, " FROM %s", side->relname);
	errcallback.callback = analyze_error_callback;
	errcallback.arg = sql.data;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;
	raw = raw_parser(sql.data, RAW_PARSE_DEFAULT);
	query = parse_analyze_fixedparams(linitial_node(RawStmt, raw), sql.data, NULL, 0, NULL);
	error_context_stack = errcallback.previous;
	if (query->hasAggs || query->hasWindowFuncs || query->hasTargetSRFs)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_COLUMN_REFERENCE),
				 errmsg("the %s columns must give one value per row of \"%s\"", side->what,
						RelationGetRelationName(rel)),
				 errdetail("Aggregates, window functions and set-returning functions are not allowed in a column list.")));
	side->has_exprs = false;
	forboth(lc, items, tlc, query->targetList)
	{
		Column	   *col = lfirst(lc);
		TargetEntry *tle = lfirst(tlc);
		Node	   *expr = (Node *) tle->expr;

		col->expr = expr;
		col->typid = exprType(expr);
		col->typmod = exprTypmod(expr);
		if (IsA(expr, Var) && ((Var *) expr)->varattno > 0 && ((Var *) expr)->varlevelsup == 0)
		{
			Form_pg_attribute att = TupleDescAttr(desc, ((Var *) expr)->varattno - 1);

			col->attnum = att->attnum;
			col->notnull = att->attnotnull;
			col->sql = pstrdup(quote_identifier(NameStr(att->attname)));
		}
		else
		{
			col->attnum = 0;
			side->has_exprs = true;
		}
	}

	side->output = list_copy(side->columns);
	k = 0;
	foreach(lc, side->key)
	{
		Column	   *key = lfirst(lc);
		ListCell   *lc2;

		side->keypos[k] = -1;
		foreach(lc2, side->columns)
			if (equal(((Column *) lfirst(lc2))->expr, key->expr))
			{
				side->keypos[k] = foreach_current_index(lc2);
				break;
			}
		if (side->keypos[k] < 0)
		{
			side->keypos[k] = list_length(side->output);
			side->output = lappend(side->output, key);
		}
		k++;
	}
	if (list_length(side->output) > MaxTupleAttributeNumber)
		ereport(ERROR,
				(errcode(ERRCODE_TOO_MANY_COLUMNS),
				 errmsg("too many columns to hash for %s \"%s\"", side->what,
						RelationGetRelationName(rel)),
				 errdetail("A checksum reads at most %d columns and key columns.",
						   MaxTupleAttributeNumber)));
	table_close(rel, AccessShareLock);
}

/* The target list of the side's output. */
char *
side_target_list(Side *side)
{
	StringInfoData s;
	ListCell   *lc;

	initStringInfo(&s);
	foreach(lc, side->output)
		appendStringInfo(&s, "%s%s", s.len ? ", " : "", ((Column *) lfirst(lc))->sql);
	return s.data;
}

void
append_key_list(StringInfo s, Side *side)
{
	ListCell   *lc;

	foreach(lc, side->key)
		appendStringInfo(s, "%s%s", foreach_current_index(lc) ? ", " : "",
						 ((Column *) lfirst(lc))->sql);
}

/* ---------------------------------------------------------------- key operators */

/*
 * The operators of each key column, from the operator family that orders
 * it: the primary key index's operator classes, or for another key each
 * type's default btree operator class.  Never looked up by name: a key
 * of citext is compared as citext compares, and an operator someone put
 * in a schema on search_path is never chosen.  ops[k].found is false for
 * a column of a type without btree operators.
 */
KeyOps *
key_ops(Side *side)
{
	int			n = list_length(side->key);
	KeyOps	   *ops = palloc0(sizeof(KeyOps) * Max(n, 1));
	Oid			family[INDEX_MAX_KEYS];
	Oid			intype[INDEX_MAX_KEYS];
	ListCell   *lc;
	int			k;

	if (side->key_is_pk)
	{
		Relation	rel = table_open(side->relid, AccessShareLock);
		Relation	idx = index_open(RelationGetPrimaryKeyIndex(rel), AccessShareLock);

		for (k = 0; k < n; k++)
		{
			family[k] = idx->rd_opfamily[k];
			intype[k] = idx->rd_opcintype[k];
		}
		index_close(idx, AccessShareLock);
		table_close(rel, AccessShareLock);
	}
	else
	{
		foreach(lc, side->key)
		{
			Oid			opclass = GetDefaultOpClass(((Column *) lfirst(lc))->typid, BTREE_AM_OID);

			k = foreach_current_index(lc);
			family[k] = OidIsValid(opclass) ? get_opclass_family(opclass) : InvalidOid;
			intype[k] = OidIsValid(opclass) ? get_opclass_input_type(opclass) : InvalidOid;
		}
	}
	for (k = 0; k < n; k++)
	{
		int			strategy;

		if (!OidIsValid(family[k]))
			continue;
		ops[k].found = true;
		for (strategy = 1; strategy <= BTMaxStrategyNumber; strategy++)
		{
			Oid			opno = get_opfamily_member(family[k], intype[k], intype[k], strategy);
			HeapTuple	tup;
			Form_pg_operator op;
			char	   *schema;

			if (!OidIsValid(opno))
			{
				ops[k].found = false;
				break;
			}
			tup = SearchSysCache1(OPEROID, ObjectIdGetDatum(opno));
			if (!HeapTupleIsValid(tup))
				elog(ERROR, "cache lookup failed for operator %u", opno);
			op = (Form_pg_operator) GETSTRUCT(tup);
			schema = pstrdup(quote_identifier(get_namespace_name(op->oprnamespace)));
			ops[k].names[strategy] = pstrdup(NameStr(op->oprname));
			ops[k].ops[strategy] = psprintf("OPERATOR(%s.%s)", schema, NameStr(op->oprname));
			if (strategy == 1)
				ops[k].schema = schema;
			else if (ops[k].schema && strcmp(ops[k].schema, schema) != 0)
				ops[k].schema = NULL;
			ReleaseSysCache(tup);
		}
	}
	return ops;
}

void
require_key_ops(Side *side, KeyOps *ops)
{
	ListCell   *lc;

	foreach(lc, side->key)
		if (!ops[foreach_current_index(lc)].found)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_FUNCTION),
					 errmsg("key column \"%s\" of %s \"%s\" has no ordering",
							((Column *) lfirst(lc))->label, side->what, get_rel_name(side->relid)),
					 errdetail("Type %s has no default btree operator class.",
							   format_type_be(((Column *) lfirst(lc))->typid)),
					 errhint("Use buckets => n, which needs no ordering.")));
}

/*
 * Appends "key > ($p, ...)" (greater) or "key <= ($p, ...)" in the key's
 * order: one row comparison when every column's operator has the same
 * name and schema, else the same spelled out column by column.
 */
void
append_key_bound(StringInfo s, Side *side, KeyOps *ops, bool greater, int param)
{
	int			n = list_length(side->key);
	int			last = greater ? BTGreaterStrategyNumber : BTLessEqualStrategyNumber;
	int			before = greater ? BTGreaterStrategyNumber : BTLessStrategyNumber;
	bool		row = n > 1;
	int			k;

	for (k = 0; k < n && row; k++)
		if (ops[k].schema == NULL || strcmp(ops[k].schema, ops[0].schema) != 0 ||
			strcmp(ops[k].names[last], ops[0].names[last]) != 0)
			row = false;
	if (n == 1 || row)
	{
		appendStringInfoString(s, n == 1 ? "" : "ROW(");
		append_key_list(s, side);
		appendStringInfo(s, "%s %s %s", n == 1 ? "" : ")", ops[0].ops[last], n == 1 ? "" : "ROW(");
		for (k = 0; k < n; k++)
			appendStringInfo(s, "%s$%d", k ? ", " : "", param + k);
		appendStringInfoString(s, n == 1 ? "" : ")");
		return;
	}
	/* (k1 > $1 OR (k1 = $1 AND (k2 > $2 OR (k2 = $2 AND k3 > $3)))) */
	for (k = 0; k < n; k++)
	{
		const char *sql = ((Column *) list_nth(side->key, k))->sql;

		if (k < n - 1)
			appendStringInfo(s, "(%s %s $%d OR (%s %s $%d AND ", sql, ops[k].ops[before],
							 param + k, sql, ops[k].ops[BTEqualStrategyNumber], param + k);
		else
			appendStringInfo(s, "%s %s $%d", sql, ops[k].ops[last], param + k);
	}
	for (k = 0; k < n - 1; k++)
		appendStringInfoString(s, "))");
}
