/*-------------------------------------------------------------------------
 *
 * capture.c
 *	  Change capture from a foreign table's changelog (sql/capture.sql): the
 *	  steps the SQL cannot take itself.  It runs and plans a capture's
 *	  statements as the role that defined it, under the search_path it
 *	  recorded; it checks the capture's select => as a backfill's; and it
 *	  reads the key of the capture's tables as a backfill does (the unique
 *	  index on the key columns, the equality operator of each).
 *
 * The apply (shift_internal.capture_apply, plpgsql) runs as pg_shift's
 * owner through shift_owner_call, so that it may write the control tables
 * (the checkpoint, the gaps, the counters) in the same transaction as the
 * rows.  The statements it builds from a capture's definition (the
 * changelog's batch, the upsert with the capture's select =>, the delete of
 * keys gone from the source) must run as the capture's owner instead: they
 * read its foreign tables through its user mappings and write its table,
 * and its select => is SQL that role stored.  shift_capture_exec and
 * shift_capture_plan are that switch, usable only by pg_shift's owner
 * inside a call for a role that may act for the capture's owner.  Each
 * statement is prepared first and must be exactly one: nothing in it may
 * add a second.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "pg_shift.h"

/* 'capture "name"', as errors name it. */
static char *
capture_label(const char *name)
{
	return psprintf("capture \"%s\"", name);
}

/*
 * The role the capture's statements run as (owner), once the caller is
 * checked: pg_shift's owner (the capture implementations run as that role),
 * inside a call for a role that may act for owner.
 */
static Oid
capture_owner(const char *fn, const char *owner)
{
	if (GetUserId() != shift_extension_owner())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("%s runs only inside pg_shift's capture functions", fn)));
	if (!shift_may_act_for(owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("capture belongs to role \"%s\"", owner),
				 errdetail("Role \"%s\" is neither that role, nor a member of it with its privileges, nor a superuser.",
						   GetUserNameFromId(shift_caller(), false))));
	return get_role_oid(owner, false);
}

/*
 * Prepares sql, which must be one statement, as the current role.  An
 * error inside span (the capture's select =>; NULL: none) is raised as the
 * select's, with the place in it.
 */
static SPIPlanPtr
prepare_one(const char *name, const char *sql, const ShiftFragSpan *span)
{
	SPIPlanPtr	plan = NULL;
	MemoryContext cxt = CurrentMemoryContext;

	/* raised again at once (the transaction aborts): no subtransaction needed */
	PG_TRY();
	{
		plan = SPI_prepare(sql, 0, NULL);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		if (span == NULL)
			ReThrowError(edata);
		shift_raise_in_fragment(capture_label(name), sql, 1, span, edata);
	}
	PG_END_TRY();
	if (plan == NULL)
		elog(ERROR, "could not prepare a statement of capture \"%s\": %s", name,
			 SPI_result_code_string(SPI_result));
	if (list_length(SPI_plan_get_plan_sources(plan)) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("a statement of capture \"%s\" is not one statement", name),
				 errdetail("It was: %s", sql)));
	return plan;
}

PG_FUNCTION_INFO_V1(shift_capture_exec);

/*
 * shift_internal._capture_exec(name text, owner name, search_path text,
 *                              sql text) returns text
 *
 * Runs sql, one statement of capture name, as role owner under search_path
 * and returns the first column of its first row as text (NULL without a
 * row); of a statement that returns no rows at all (an INSERT or DELETE
 * without RETURNING), the number of rows it processed.
 */
Datum
shift_capture_exec(PG_FUNCTION_ARGS)
{
	char	   *name;
	char	   *path;
	char	   *sql;
	Oid			ownerid;
	ShiftAs		as;
	SPIPlanPtr	plan;
	int			rc;
	char	   *value = NULL;
	MemoryContext outer = CurrentMemoryContext;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("_capture_exec takes no NULL argument")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ownerid = capture_owner("_capture_exec", NameStr(*PG_GETARG_NAME(1)));
	path = text_to_cstring(PG_GETARG_TEXT_PP(2));
	sql = text_to_cstring(PG_GETARG_TEXT_PP(3));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	shift_as_begin(&as, ownerid, path);
	plan = prepare_one(name, sql, NULL);
	rc = SPI_execute_plan(plan, NULL, NULL, false, 0);
	shift_as_end(&as);
	if (rc < 0)
		elog(ERROR, "SPI failed on a statement of capture \"%s\" (%s): %s", name,
			 SPI_result_code_string(rc), sql);
	if (SPI_tuptable != NULL && SPI_processed > 0)
	{
		char	   *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		if (v != NULL)
			value = MemoryContextStrdup(outer, v);
	}
	else if (SPI_tuptable == NULL)
		value = MemoryContextStrdup(outer, psprintf(UINT64_FORMAT, SPI_processed));
	SPI_finish();
	if (value == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(value));
}

PG_FUNCTION_INFO_V1(shift_capture_plan);

/*
 * shift_internal._capture_plan(name text, owner name, search_path text,
 *                              sql text, "select" text, select_at int4)
 *                              returns void
 *
 * Prepares sql, one statement of capture name, as role owner under
 * search_path, without running it: a wrong column, type or function
 * surfaces when the capture is made.  The capture's select => starts at
 * byte select_at of sql (NULL: sql has none); an error inside it is
 * reported as the select's.
 */
Datum
shift_capture_plan(PG_FUNCTION_ARGS)
{
	char	   *name;
	char	   *path;
	char	   *sql;
	Oid			ownerid;
	ShiftAs		as;
	ShiftFragSpan span;
	bool		has_span = !PG_ARGISNULL(4) && !PG_ARGISNULL(5);

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("_capture_plan takes no NULL name, owner, search_path or sql")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ownerid = capture_owner("_capture_plan", NameStr(*PG_GETARG_NAME(1)));
	path = text_to_cstring(PG_GETARG_TEXT_PP(2));
	sql = text_to_cstring(PG_GETARG_TEXT_PP(3));
	if (has_span)
	{
		span.what = "select";
		span.text = text_to_cstring(PG_GETARG_TEXT_PP(4));
		span.from = PG_GETARG_INT32(5);
		span.to = span.from + strlen(span.text);
		if (span.from < 0 || span.to > strlen(sql) ||
			strncmp(sql + span.from, span.text, strlen(span.text)) != 0)
			elog(ERROR, "the select of capture \"%s\" is not at byte %d of its statement",
				 name, span.from);
	}

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	shift_as_begin(&as, ownerid, path);
	SPI_freeplan(prepare_one(name, sql, has_span ? &span : NULL));
	shift_as_end(&as);
	SPI_finish();
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(shift_capture_check_select);

/*
 * shift_internal._capture_check_select(name text, sql text) returns void
 *
 * Refuses a capture's select => that is anything but a list of expressions
 * (SQLSTATE 42601), as a backfill's select is refused: it is put between
 * SELECT and FROM in every batch's statement, where a second statement or
 * a FROM of its own would change what that statement does.  Refuses
 * (SQLSTATE 54000) one longer than a fragment may be, or that PostgreSQL's
 * scanner would take too long on.
 */
Datum
shift_capture_check_select(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	text	   *sql = PG_GETARG_TEXT_PP(1);
	char	   *label = capture_label(name);

	/* before the text is copied and parsed */
	shift_check_size(psprintf("select of %s", label), VARSIZE_ANY_EXHDR(sql),
					 SHIFT_MAX_FRAGMENT, SHIFT_FRAGMENT_HINT);
	shift_check_select_fragment(label, text_to_cstring(sql));
	PG_RETURN_VOID();
}

/* The elements of a text[] without NULLs, as a List of C strings. */
static List *
text_array_list(ArrayType *arr, const char *what)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			i;
	List	   *out = NIL;

	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s has a NULL element", what)));
		out = lappend(out, TextDatumGetCString(elems[i]));
	}
	return out;
}

#define CAPTURE_KEY_HINT \
	"key_columns => names columns that the changelog, the source and the table all have."

PG_FUNCTION_INFO_V1(shift_capture_key_index);

/*
 * shift_internal._capture_key_index(name text, rel regclass,
 *                                   key_columns text[]) returns regclass
 *
 * The unique index of table rel that capture name finds its rows by: a
 * valid unique btree index on exactly key_columns, in that order, each NOT
 * NULL, as a backfill's key_columns => (shift_key_index); NULL if rel has
 * none.  A key column rel lacks is an error.
 */
Datum
shift_capture_key_index(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Relation	rel = table_open(PG_GETARG_OID(1), AccessShareLock);
	List	   *cols = text_array_list(PG_GETARG_ARRAYTYPE_P(2), "key_columns");
	AttrNumber	attnums[INDEX_MAX_KEYS];
	Oid			index;

	shift_key_column_attnums(rel, cols, capture_label(name), CAPTURE_KEY_HINT, attnums);
	index = shift_key_index(rel, list_length(cols), attnums);
	table_close(rel, AccessShareLock);
	if (!OidIsValid(index))
		PG_RETURN_NULL();
	PG_RETURN_OID(index);
}

PG_FUNCTION_INFO_V1(shift_capture_key_equality);

/*
 * shift_internal._capture_key_equality(name text, rel regclass,
 *                                      key_columns text[]) returns text[]
 *
 * The equality of each key column of rel, "OPERATOR(schema.op)": that of
 * its type's default btree operator class, which compares with the
 * column's own collation, as a backfill of a foreign table compares its key
 * (shift_type_key_ops).  A citext key is thus compared as citext, never as
 * the text pg_catalog.= would take it for.
 */
Datum
shift_capture_key_equality(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Relation	rel = table_open(PG_GETARG_OID(1), AccessShareLock);
	List	   *cols = text_array_list(PG_GETARG_ARRAYTYPE_P(2), "key_columns");
	AttrNumber	attnums[INDEX_MAX_KEYS];
	Datum		ops[INDEX_MAX_KEYS];
	int			n = list_length(cols);
	int			i;

	shift_key_column_attnums(rel, cols, capture_label(name), CAPTURE_KEY_HINT, attnums);
	for (i = 0; i < n; i++)
	{
		Form_pg_attribute att = TupleDescAttr(RelationGetDescr(rel), attnums[i] - 1);
		ShiftKeyOps key;

		shift_type_key_ops(att->atttypid, att->attcollation, &key);
		ops[i] = CStringGetTextDatum(shift_qualified_operator(key.eq));
	}
	table_close(rel, AccessShareLock);
	PG_RETURN_ARRAYTYPE_P(construct_array(ops, n, TEXTOID, -1, false, TYPALIGN_INT));
}

PG_FUNCTION_INFO_V1(shift_capture_copy_columns);

/*
 * shift_internal._capture_copy_columns("into" regclass, source regclass)
 *                                      returns text[]
 *
 * The columns a capture writes when columns => is not given: those of into
 * that source has too, by name, generated ones left out, as a backfill's
 * copy (shift_copy_columns).
 */
Datum
shift_capture_copy_columns(PG_FUNCTION_ARGS)
{
	Relation	into = table_open(PG_GETARG_OID(0), AccessShareLock);
	List	   *cols = shift_copy_columns(into, PG_GETARG_OID(1));
	Datum	   *elems = palloc(sizeof(Datum) * (list_length(cols) + 1));
	ListCell   *lc;
	int			n = 0;

	foreach(lc, cols)
		elems[n++] = CStringGetTextDatum(lfirst(lc));
	table_close(into, AccessShareLock);
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}
