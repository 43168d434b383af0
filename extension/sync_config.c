/*-------------------------------------------------------------------------
 *
 * sync_config.c
 *	  A sync's definition and the SQL built from it: reading a row of
 *	  shift.sync as the trigger needs it (its checked copy, which must hash
 *	  to the digest the trigger was made with), acting as the sync's owner
 *	  under its search_path, and the statements a table-level sync runs on
 *	  its transition tables (the upsert, the update of rows that kept their
 *	  keys, the deletes), every operator and type in them qualified by
 *	  schema (sqlgen.c).  Building SQL only: nothing here runs it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "parser/parser.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "pg_shift.h"
#include "sync.h"

/* ---------------------------------------------------------------- configuration */

static List *
text_array_to_list(Datum d, bool isnull)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			i;
	List	   *out = NIL;

	if (isnull)
		return NIL;
	deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &n);
	for (i = 0; i < n; i++)
		if (!nulls[i])
			out = lappend(out, TextDatumGetCString(elems[i]));
	return out;
}

/*
 * One direction of a table sync from its row: alias in column alias_col,
 * then its columns, expressions and key in the three text[] columns from
 * first_col on.
 */
static void
read_mapping(Mapping *m, Oid src, Oid dst, HeapTuple tup, TupleDesc desc,
			 int alias_col, int first_col)
{
	bool		isnull;
	Datum		d;

	m->src = src;
	m->dst = dst;
	m->alias = SPI_getvalue(tup, desc, alias_col);
	d = SPI_getbinval(tup, desc, first_col, &isnull);
	m->columns = text_array_to_list(d, isnull);
	d = SPI_getbinval(tup, desc, first_col + 1, &isnull);
	m->exprs = text_array_to_list(d, isnull);
	d = SPI_getbinval(tup, desc, first_col + 2, &isnull);
	m->key = text_array_to_list(d, isnull);
}

/*
 * Reads a sync as the owner of pg_shift (SPI must be connected); allocates
 * in cxt.
 *
 * checked: what it was checked as (shift.sync.checked, sealed by
 * sync_create and the cut-over once _sync_check passed), which must still
 * hash to digest when digest is given (the trigger's own copy of it).  The
 * trigger always runs this: what a superuser may have edited by hand in the
 * row's columns since never reaches the application's writes, and a record
 * whose checked copy no longer hashes to the trigger's digest is refused,
 * not run.  Otherwise (checking a sync before it is sealed): the columns.
 *
 * A trigger can fire between the installation of this library and ALTER
 * EXTENSION pg_shift UPDATE, when shift.sync is still version 0.1.0's: it
 * has no checked definition, and the trigger's digest is 0.1.0's hash of the
 * row (shift._sync_digest).  The trigger then reads the row as 0.1.0's
 * library did, as the writing role (0.1.0 lets every role read shift.sync),
 * and runs it only if it hashes to the trigger's digest.  Writers thus keep
 * working until the update, which seals every sync again and makes its
 * triggers anew; everything else refuses meanwhile (shift_extension_owner).
 */
SyncConfig *
sync_load_config(const char *name, bool checked, const char *digest, MemoryContext cxt)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	SyncConfig *c;
	TupleDesc	desc;
	HeapTuple	tup;
	MemoryContext old;
	bool		isnull;
	bool		v010 = checked && strcmp(shift_sql_version(), "0.1.0") == 0;

	args[0] = CStringGetTextDatum(name);

	/*
	 * Read as committed now, as the catalog the trigger comes from is, not
	 * in the writer's snapshot: a REPEATABLE READ or SERIALIZABLE writer
	 * whose snapshot predates the sync, its cut-over or ALTER EXTENSION
	 * pg_shift UPDATE would find no row, or not the one its trigger was
	 * made for, and fail.  (The mirror statements run with a new snapshot
	 * too, see run_plan_at in sync.c.)
	 */
	PushActiveSnapshot(GetLatestSnapshot());
	if (v010)
	{
		ShiftAs		as;
		int			rc;

		shift_as_begin(&as, GetUserId(), "pg_catalog, pg_temp");
		rc = SPI_execute_with_args(
			"SELECT kind, relation, target, set_clause, reverse_set, target_columns, expressions,"
			"       target_key, reverse_columns, reverse_expressions, relation_key, search_path,"
			"       relation_alias, target_alias, shift._sync_digest(s), owner,"
			"       NULL::pg_catalog.text, NULL::pg_catalog.text"
			"  FROM shift.sync s WHERE name OPERATOR(pg_catalog.=) $1",
			1, argtypes, args, NULL, true, 1);
		shift_as_end(&as);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "could not read sync \"%s\": %s", name, SPI_result_code_string(rc));
	}
	else if (checked)
		(void) shift_ctl_execute(
			"SELECT d->>'kind', (d->>'relation')::pg_catalog.oid, (d->>'target')::pg_catalog.oid,"
			"       d->>'set', d->>'reverse_set',"
			"       shift_internal.text_array(d->'columns'), shift_internal.text_array(d->'select'),"
			"       shift_internal.text_array(d->'key'), shift_internal.text_array(d->'reverse_columns'),"
			"       shift_internal.text_array(d->'reverse_select'), shift_internal.text_array(d->'reverse_key'),"
			"       d->>'search_path', d->>'relation_alias', d->>'target_alias',"
			"       pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(d::pg_catalog.text, 'UTF8')), 'hex'),"
			"       d->>'owner', d->>'new_version', d->>'old_version'"
			"  FROM (SELECT s.checked AS d FROM shift.sync s WHERE s.name OPERATOR(pg_catalog.=) $1) x",
			1, argtypes, args, NULL, true, 1);
	else
		(void) shift_ctl_execute(
			"SELECT kind, relation, target, set_clause, reverse_set, target_columns, expressions,"
			"       target_key, reverse_columns, reverse_expressions, relation_key, search_path,"
			"       relation_alias, target_alias, NULL::pg_catalog.text, owner,"
			"       new_version, old_version"
			"  FROM shift.sync s WHERE name OPERATOR(pg_catalog.=) $1",
			1, argtypes, args, NULL, true, 1);
	PopActiveSnapshot();
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("sync \"%s\" does not exist", name),
				 errdetail("A trigger of pg_shift names a sync that shift.sync does not hold."),
				 errhint("Drop the trigger, or create the sync again with shift.sync_create.")));
	desc = SPI_tuptable->tupdesc;
	tup = SPI_tuptable->vals[0];
	if (checked && (SPI_getvalue(tup, desc, 1) == NULL ||
					(digest != NULL && strcmp(SPI_getvalue(tup, desc, 15), digest) != 0)))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("the checked definition of sync \"%s\" is not the one its trigger was made for", name),
				 v010 ?
				 errdetail("Its row in shift.sync was changed outside pg_shift's functions; running it could run SQL nobody checked.") :
				 errdetail("shift.sync.checked was changed outside pg_shift's functions; running it could run SQL nobody checked."),
				 errhint("Drop the sync with shift.sync_drop and create it again.")));
	old = MemoryContextSwitchTo(cxt);
	c = palloc0(sizeof(SyncConfig));
	c->name = pstrdup(name);
	c->column_level = strcmp(SPI_getvalue(tup, desc, 1), "column") == 0;
	c->relation = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
	c->set_clause = SPI_getvalue(tup, desc, 4);
	c->reverse_set = SPI_getvalue(tup, desc, 5);
	c->search_path = SPI_getvalue(tup, desc, 12);
	c->owner = SPI_getvalue(tup, desc, 16);
	c->new_version = SPI_getvalue(tup, desc, 17);
	c->old_version = SPI_getvalue(tup, desc, 18);
	if (!c->column_level)
	{
		Oid			target = DatumGetObjectId(SPI_getbinval(tup, desc, 3, &isnull));

		read_mapping(&c->forward, c->relation, target, tup, desc, 13, 6);
		read_mapping(&c->reverse, target, c->relation, tup, desc, 14, 9);
	}
	MemoryContextSwitchTo(old);
	return c;
}

/* Makes the sync's search_path current; undo with AtEOXact_GUC(true, level). */
int
sync_enter_search_path(const char *search_path)
{
	int			level = NewGUCNestLevel();

	(void) set_config_option("search_path", search_path, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return level;
}

/*
 * Makes the sync's owner the current user and its search_path current
 * (undo with shift_as_end), after checking the caller may act for it.
 */
void
sync_as_owner(SyncConfig *c, ShiftAs *as)
{
	Oid			owner = get_role_oid(c->owner, true);

	if (!OidIsValid(owner) || !shift_may_act_for(c->owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("sync \"%s\" belongs to role \"%s\"", c->name, c->owner),
				 errhint("Act as \"%s\", a member of it, or a superuser.", c->owner)));
	shift_as_begin(as, owner, c->search_path);
}

/* "sync "x"" for error messages */
char *
sync_label(const char *name)
{
	return psprintf("sync \"%s\"", name);
}

/* ---------------------------------------------------------------- table level statements */

char *
sync_qualified_name(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}

static void
append_names(StringInfo s, List *names, const char *prefix)
{
	ListCell   *lc;
	bool		first = true;

	foreach(lc, names)
	{
		appendStringInfo(s, "%s%s%s", first ? "" : ", ", prefix, quote_identifier(lfirst(lc)));
		first = false;
	}
}

/* The expressions, each in parentheses (shift_internal._select_list made sure they can be). */
static void
append_exprs(StringInfo s, List *items)
{
	ListCell   *lc;
	bool		first = true;

	foreach(lc, items)
	{
		appendStringInfo(s, "%s(%s)", first ? "" : ", ", (char *) lfirst(lc));
		first = false;
	}
}

/*
 * "(SELECT <exprs> FROM <rows> AS <alias>) pgs_s (<columns>)": the mapped
 * rows of a transition table, under the destination's column names.  The
 * alias is the source's own name, so expressions may qualify columns with it.
 */
static void
append_mapped(StringInfo s, Mapping *m, const char *rows)
{
	appendStringInfoString(s, "(SELECT ");
	append_exprs(s, m->exprs);
	appendStringInfo(s, " FROM %s AS %s) pgs_s (", rows, quote_identifier(m->alias));
	append_names(s, m->columns, "");
	appendStringInfoChar(s, ')');
}

/* The position of name in names, or -1. */
static int
list_index_of_name(List *names, const char *name)
{
	ListCell   *lc;

	foreach(lc, names)
		if (strcmp(lfirst(lc), name) == 0)
			return foreach_current_index(lc);
	return -1;
}

static bool
name_in(List *names, const char *name)
{
	return list_index_of_name(names, name) >= 0;
}

/* The expression over src that fills key column k of dst. */
const char *
sync_key_expr(Mapping *m, const char *k)
{
	return list_nth(m->exprs, list_index_of_name(m->columns, k));
}

/* May an UPDATE set column col of rel (not identity ALWAYS, not generated)? */
static bool
settable(Oid rel, const char *col)
{
	HeapTuple	tp = SearchSysCacheAttName(rel, col);
	bool		ok = false;

	if (HeapTupleIsValid(tp))
	{
		Form_pg_attribute a = (Form_pg_attribute) GETSTRUCT(tp);

		ok = a->attidentity != ATTRIBUTE_IDENTITY_ALWAYS && a->attgenerated == '\0';
		ReleaseSysCache(tp);
	}
	return ok;
}

/*
 * "c1 = <rows>.c1, ..." for the columns outside the key, and with keys for
 * the key columns that an UPDATE may set too; false if there are none
 */
static bool
append_set_list(StringInfo s, Mapping *m, const char *rows, bool keys)
{
	ListCell   *lc;
	bool		any = false;

	foreach(lc, m->columns)
	{
		char	   *col = lfirst(lc);

		if (name_in(m->key, col) && !(keys && settable(m->dst, col)))
			continue;
		appendStringInfo(s, "%s%s = %s.%s", any ? ", " : "", quote_identifier(col), rows,
						 quote_identifier(col));
		any = true;
	}
	return any;
}

/*
 * "dst_expr OPERATOR(s.=) CAST(other AS type)": other, a mapped key value,
 * compared with destination key column k the way the destination stores it
 * (cast to the column's type and modifier, as the upsert's assignment
 * would) by the equality of the column type's default btree class.
 */
static void
append_key_equal(StringInfo s, Mapping *m, const char *k, const char *dst_expr, const char *other)
{
	AttrNumber	att = get_attnum(m->dst, k);
	Oid			type;
	int32		typmod;
	Oid			coll;
	ShiftKeyOps ops;

	if (att == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("key column \"%s\" of %s does not exist", k, sync_qualified_name(m->dst))));
	get_atttypetypmodcoll(m->dst, att, &type, &typmod, &coll);
	shift_type_key_ops(type, coll, &ops);
	shift_append_compare(s, dst_expr, ops.eq,
						 psprintf("CAST(%s AS %s)", other, shift_qualified_type(type, typmod)));
}

/* "pgs_t.k1 = <rows>.k1 AND ...": a destination row and a mapped row with the same key */
static void
append_key_match(StringInfo s, Mapping *m, const char *rows)
{
	ListCell   *lc;

	foreach(lc, m->key)
	{
		if (foreach_current_index(lc) > 0)
			appendStringInfoString(s, " AND ");
		append_key_equal(s, m, lfirst(lc), psprintf("pgs_t.%s", quote_identifier(lfirst(lc))),
						 psprintf("%s.%s", rows, quote_identifier(lfirst(lc))));
	}
}

/*
 * INSERT INTO dst SELECT <exprs> FROM new rows ON CONFLICT (key) DO UPDATE;
 * only_missing: only the mapped rows whose key dst does not hold (yet: a
 * row committed since then is still caught by ON CONFLICT).
 */
char *
sync_upsert_sql(Mapping *m, bool only_missing)
{
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfo(&s, "INSERT INTO %s AS pgs_t (", sync_qualified_name(m->dst));
	append_names(&s, m->columns, "");
	appendStringInfoString(&s, ") OVERRIDING SYSTEM VALUE SELECT ");
	if (only_missing)
	{
		append_names(&s, m->columns, "pgs_s.");
		appendStringInfoString(&s, " FROM ");
		append_mapped(&s, m, NEW_ROWS);
		appendStringInfo(&s, " WHERE NOT EXISTS (SELECT 1 FROM %s AS pgs_t WHERE ",
						 sync_qualified_name(m->dst));
		append_key_match(&s, m, "pgs_s");
		appendStringInfoString(&s, ") ON CONFLICT (");
	}
	else
	{
		append_exprs(&s, m->exprs);
		appendStringInfo(&s, " FROM %s AS %s ON CONFLICT (", NEW_ROWS,
						 quote_identifier(m->alias));
	}
	append_names(&s, m->key, "");

	/*
	 * The key columns are set too: a key may change to a value its type
	 * calls equal but spells differently (numeric 1.0 to 1.00, citext 'a' to
	 * 'A'), and the copy must take the new spelling.  Set to the same bytes
	 * they leave a HOT update possible.
	 */
	appendStringInfoString(&s, ") DO UPDATE SET ");
	if (!append_set_list(&s, m, "EXCLUDED", true))
	{
		/* nothing an UPDATE may set */
		s.len -= strlen(" DO UPDATE SET ");
		s.data[s.len] = '\0';
		appendStringInfoString(&s, " DO NOTHING");
	}
	return s.data;
}

/*
 * UPDATE dst SET <non-key columns> FROM mapped new rows WHERE the keys
 * match, or NULL when every column is a key column.  For an UPDATE that
 * kept its keys this is cheaper than the upsert: a row found is updated
 * without a speculative insertion and the tuple lock ON CONFLICT takes.
 */
char *
sync_update_sql(Mapping *m)
{
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfo(&s, "UPDATE %s AS pgs_t SET ", sync_qualified_name(m->dst));
	if (!append_set_list(&s, m, "pgs_s", false))
		return NULL;
	appendStringInfoString(&s, " FROM ");
	append_mapped(&s, m, NEW_ROWS);
	appendStringInfoString(&s, " WHERE ");
	append_key_match(&s, m, "pgs_s");
	return s.data;
}

/*
 * The column of rel that expr is, if it is nothing but a column (maybe
 * cast): "id", "\"Id\"::bigint".  InvalidAttrNumber otherwise.
 */
AttrNumber
sync_plain_column(Oid rel, const char *expr)
{
	char	   *name = shift_plain_column_name(expr);

	return name ? get_attnum(rel, name) : InvalidAttrNumber;
}

/*
 * DELETE FROM dst WHERE its key is among the keys of rows [EXCEPT the keys
 * of except] [AND no row of src maps to the key now]
 */
char *
sync_delete_sql(Mapping *m, const char *rows, const char *except, bool unclaimed)
{
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfo(&s, "DELETE FROM %s AS pgs_t WHERE EXISTS (SELECT 1 FROM (SELECT ",
					 sync_qualified_name(m->dst));
	append_names(&s, m->key, "pgs_s.");
	appendStringInfoString(&s, " FROM ");
	append_mapped(&s, m, rows);
	if (except)
	{
		appendStringInfoString(&s, " EXCEPT SELECT ");
		append_names(&s, m->key, "pgs_s.");
		appendStringInfoString(&s, " FROM ");
		append_mapped(&s, m, except);
	}
	appendStringInfoString(&s, ") pgs_k WHERE ");
	append_key_match(&s, m, "pgs_k");
	appendStringInfoChar(&s, ')');
	if (unclaimed)
	{
		ListCell   *lc;
		bool		first = true;

		/*
		 * No row of src maps to the key now.  A key expression that is a
		 * column of src (maybe cast) is compared on that column, cast from
		 * the key's side, so that src's index on it serves the lookup.
		 */
		appendStringInfo(&s, " AND NOT EXISTS (SELECT 1 FROM %s AS %s WHERE ", sync_qualified_name(m->src),
						 quote_identifier(m->alias));
		foreach(lc, m->key)
		{
			const char *k = lfirst(lc);
			const char *expr = sync_key_expr(m, k);
			AttrNumber	att = sync_plain_column(m->src, expr);

			if (!first)
				appendStringInfoString(&s, " AND ");
			if (att != InvalidAttrNumber)
			{
				Oid			type;
				int32		typmod;
				Oid			coll;
				ShiftKeyOps ops;

				get_atttypetypmodcoll(m->src, att, &type, &typmod, &coll);
				shift_type_key_ops(type, coll, &ops);
				shift_append_compare(&s, psprintf("%s.%s", quote_identifier(m->alias),
												  quote_identifier(get_attname(m->src, att, false))),
									 ops.eq,
									 psprintf("CAST(pgs_t.%s AS %s)", quote_identifier(k),
											  shift_qualified_type(type, -1)));
			}
			else
				append_key_equal(&s, m, k, psprintf("pgs_t.%s", quote_identifier(k)),
								 psprintf("(%s)", expr));
			first = false;
		}
		appendStringInfoChar(&s, ')');
	}
	return s.data;
}
