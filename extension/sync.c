/*-------------------------------------------------------------------------
 *
 * sync.c
 *	  Dual-write triggers: shift._sync_trigger, shift._sync_check
 *	  (shift._select_list, which splits a select list, is in sqlfrag.c).
 *
 * A sync (a row of shift.sync, made by shift.sync_create) keeps new and old
 * in step while both are in use:
 *
 *	 - column level: a BEFORE INSERT OR UPDATE row trigger sets the new
 *	   columns from the old ones (set => 'email_lower = lower(email)') and,
 *	   given reverse_set =>, the old ones from the new ones when a writer
 *	   changed only the new side.  It modifies the row being written, so
 *	   nothing is written twice and nothing can ping-pong.
 *	 - table level: statement triggers with transition tables mirror every
 *	   INSERT, UPDATE, DELETE and TRUNCATE of one table into another through
 *	   a column mapping, set-wise (one INSERT ... ON CONFLICT DO UPDATE and
 *	   at most one DELETE per statement).  A partitioned source gets row
 *	   triggers instead (statement triggers do not fire for writes made to a
 *	   partition directly); each row then runs the same statements on a
 *	   one-row transition table.  After the cut-over the same mapping runs
 *	   the other way (the reverse mapping), so the old table stays current.
 *
 * Each trigger compiles what it runs once per session: the column-level
 * expressions into executor expression state, the table-level statements
 * into kept SPI plans.  The cache is keyed by trigger OID and invalidated
 * when either table's relcache entry or any function changes; entries left
 * behind are freed at the end of the transaction.
 *
 * Everything runs as the role writing the table, in its transaction: the
 * mirrored rows commit or roll back with the statement that caused them.
 * The stored search_path of the sync is in force while its SQL is parsed
 * and run, so the writer's own search_path cannot change what it means,
 * and the statements built around the sync's expressions name every
 * operator and type by schema (sqlgen.c).  The trigger reads the sync's
 * definition as the owner of pg_shift (no application role can read
 * shift.sync), and only if it is what was checked and what the trigger was
 * made for.  Checking and compiling a sync outside a trigger
 * (shift._sync_check, the cut-over's check) runs as the sync's owner.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/partition.h"
#include "catalog/pg_type.h"
#include "common/keywords.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "optimizer/optimizer.h"
#include "parser/analyze.h"
#include "parser/parser.h"
#include "parser/scanner.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/queryenvironment.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"

#include "pg_shift.h"

/* how often a REPEATABLE READ or SERIALIZABLE writer's mirror is tried */
#define SYNC_SERIALIZE_ATTEMPTS 3

PG_FUNCTION_INFO_V1(shift_sync_trigger);
PG_FUNCTION_INFO_V1(shift_sync_check);
PG_FUNCTION_INFO_V1(shift_cutover_check);

/* The transition tables' names, in the triggers and in the statements. */
#define NEW_ROWS	"pgs_new"
#define OLD_ROWS	"pgs_old"

/* ---------------------------------------------------------------- configuration */

/* One direction of a table-level sync: rows of src become rows of dst. */
typedef struct Mapping
{
	Oid			src;
	Oid			dst;
	char	   *alias;			/* src's name when the sync was made: qualifies its columns */
	List	   *columns;		/* dst columns written, of char * */
	List	   *exprs;			/* one SQL expression over src per column */
	List	   *key;			/* dst columns that identify a row */
} Mapping;

/* A row of shift.sync, as the trigger needs it. */
typedef struct SyncConfig
{
	char	   *name;
	bool		column_level;
	Oid			relation;
	char	   *set_clause;
	char	   *reverse_set;
	Mapping		forward;
	Mapping		reverse;		/* columns NIL: none */
	char	   *search_path;
	char	   *owner;
} SyncConfig;

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
 */
static SyncConfig *
load_config(const char *name, bool checked, const char *digest, MemoryContext cxt)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	SyncConfig *c;
	TupleDesc	desc;
	HeapTuple	tup;
	MemoryContext old;
	bool		isnull;

	args[0] = CStringGetTextDatum(name);
	if (checked)
		(void) shift_ctl_execute(
			"SELECT d->>'kind', (d->>'relation')::pg_catalog.oid, (d->>'target')::pg_catalog.oid,"
			"       d->>'set', d->>'reverse_set',"
			"       shift_internal.text_array(d->'columns'), shift_internal.text_array(d->'select'),"
			"       shift_internal.text_array(d->'key'), shift_internal.text_array(d->'reverse_columns'),"
			"       shift_internal.text_array(d->'reverse_select'), shift_internal.text_array(d->'reverse_key'),"
			"       d->>'search_path', d->>'relation_alias', d->>'target_alias',"
			"       pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(d::pg_catalog.text, 'UTF8')), 'hex'),"
			"       d->>'owner'"
			"  FROM (SELECT s.checked AS d FROM shift.sync s WHERE s.name OPERATOR(pg_catalog.=) $1) x",
			1, argtypes, args, NULL, true, 1);
	else
		(void) shift_ctl_execute(
			"SELECT kind, relation, target, set_clause, reverse_set, target_columns, expressions,"
			"       target_key, reverse_columns, reverse_expressions, relation_key, search_path,"
			"       relation_alias, target_alias, NULL::pg_catalog.text, owner"
			"  FROM shift.sync s WHERE name OPERATOR(pg_catalog.=) $1",
			1, argtypes, args, NULL, true, 1);
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
	if (!c->column_level)
	{
		Datum		d;

		c->forward.src = c->relation;
		c->forward.dst = DatumGetObjectId(SPI_getbinval(tup, desc, 3, &isnull));
		c->forward.alias = SPI_getvalue(tup, desc, 13);
		d = SPI_getbinval(tup, desc, 6, &isnull);
		c->forward.columns = text_array_to_list(d, isnull);
		d = SPI_getbinval(tup, desc, 7, &isnull);
		c->forward.exprs = text_array_to_list(d, isnull);
		d = SPI_getbinval(tup, desc, 8, &isnull);
		c->forward.key = text_array_to_list(d, isnull);
		c->reverse.src = c->forward.dst;
		c->reverse.dst = c->relation;
		c->reverse.alias = SPI_getvalue(tup, desc, 14);
		d = SPI_getbinval(tup, desc, 9, &isnull);
		c->reverse.columns = text_array_to_list(d, isnull);
		d = SPI_getbinval(tup, desc, 10, &isnull);
		c->reverse.exprs = text_array_to_list(d, isnull);
		d = SPI_getbinval(tup, desc, 11, &isnull);
		c->reverse.key = text_array_to_list(d, isnull);
	}
	MemoryContextSwitchTo(old);
	return c;
}

/* Makes the sync's search_path current; undo with AtEOXact_GUC(true, level). */
static int
enter_search_path(const char *search_path)
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
static void
as_sync_owner(SyncConfig *c, ShiftAs *as)
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
static char *
sync_label(const char *name)
{
	return psprintf("sync \"%s\"", name);
}

/* ---------------------------------------------------------------- the cache */

typedef struct SyncEntry
{
	Oid			tgoid;			/* hash key */
	bool		valid;
	MemoryContext cxt;			/* everything below but the plans */
	char	   *name;
	bool		column_level;
	Oid			relid;			/* the table the trigger is on */
	Oid			otherid;		/* the table it writes */
	char	   *search_path;

	/* column level: new columns from old (up), old from new (down) */
	int			nup;
	AttrNumber *up_att;
	ExprState **up_expr;
	int			ndown;
	AttrNumber *down_att;
	ExprState **down_expr;
	ExprContext *econtext;
	bool		busy;			/* computing a row: expressions are not re-entrant */
	int			natts;			/* of the row: the arrays below */
	Datum	   *values;
	bool	   *nulls;

	/* table level */
	SPIPlanPtr	upsert;			/* INSERT ... SELECT FROM new rows ON CONFLICT DO UPDATE */
	SPIPlanPtr	update_kept;	/* UPDATE the rows the new rows' keys find (NULL: only key columns) */
	SPIPlanPtr	insert_missing; /* the upsert of the new rows whose keys are not there */
	SPIPlanPtr	delete_gone;	/* DELETE the keys the old rows had and the new ones lack */
	SPIPlanPtr	delete_old;		/* DELETE the old rows' keys */
	SPIPlanPtr	delete_moved;	/* the same, but not the keys a source row holds now */
	SPIPlanPtr	truncate;
	/* on one partition of a partitioned source: its TRUNCATE */
	Oid			partition_of;	/* the partitioned source, InvalidOid if not */
	SPIPlanPtr	other_has_rows; /* SELECT 1 FROM the other table LIMIT 1 */
	SPIPlanPtr	delete_partition;	/* DELETE the keys of the partition's rows */
	int			nkeyatts;		/* the key's source columns, 0 if an expression hides them */
	AttrNumber *keyatts;		/* their numbers in the trigger's table */
} SyncEntry;

static HTAB *sync_cache = NULL;
static SyncEntry *last_entry = NULL;	/* the one found last: a bulk statement asks for it per row */
static uint64 invalidations = 0;	/* bumped by every callback */
static List *retired = NIL;		/* entries to free at the end of the transaction */
static bool callbacks_registered = false;

static void
free_entry_resources(SyncEntry *e)
{
	if (e->upsert)
		SPI_freeplan(e->upsert);
	if (e->update_kept)
		SPI_freeplan(e->update_kept);
	if (e->insert_missing)
		SPI_freeplan(e->insert_missing);
	if (e->delete_gone)
		SPI_freeplan(e->delete_gone);
	if (e->delete_old)
		SPI_freeplan(e->delete_old);
	if (e->delete_moved)
		SPI_freeplan(e->delete_moved);
	if (e->truncate)
		SPI_freeplan(e->truncate);
	if (e->other_has_rows)
		SPI_freeplan(e->other_has_rows);
	if (e->delete_partition)
		SPI_freeplan(e->delete_partition);
	if (e->cxt)
		MemoryContextDelete(e->cxt);
}

static void
free_retired(void)
{
	ListCell   *lc;

	foreach(lc, retired)
	{
		free_entry_resources(lfirst(lc));
		pfree(lfirst(lc));
	}
	list_free(retired);
	retired = NIL;
}

static void
sync_xact_callback(XactEvent event, void *arg)
{
	if (retired != NIL &&
		(event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		 event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT))
	{
		/* SPI plans are freed in TopMemoryContext's care: safe at this point */
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		free_retired();
		MemoryContextSwitchTo(old);
	}
}

static void
sync_relcache_callback(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS status;
	SyncEntry  *e;

	invalidations++;
	if (sync_cache == NULL)
		return;
	hash_seq_init(&status, sync_cache);
	while ((e = hash_seq_search(&status)) != NULL)
		if (relid == InvalidOid || e->relid == relid || e->otherid == relid)
			e->valid = false;
}

/* A function changed: compiled expressions may call it. */
static void
sync_syscache_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	sync_relcache_callback(arg, InvalidOid);
}

void
shift_sync_init(void)
{
	if (callbacks_registered)
		return;
	CacheRegisterRelcacheCallback(sync_relcache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(PROCOID, sync_syscache_callback, (Datum) 0);
	RegisterXactCallback(sync_xact_callback, NULL);
	callbacks_registered = true;
}

/* ---------------------------------------------------------------- column level */

/* error context: which statement of which sync */
typedef struct PrepareContext
{
	const char *name;
	const char *sql;
} PrepareContext;



static bool
contains_sublink_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, SubLink))
		return true;
	return raw_expression_tree_walker(node, contains_sublink_walker, context);
}

/*
 * Checks an assignment list (set or reverse_set) on its own: plain
 * "column = expression" items, no subqueries, DEFAULT or multi-column
 * assignments.  Returns the raw UPDATE statement over rel.
 */
static RawStmt *
check_assignments(const char *name, const char *what, Relation rel, const char *clause)
{
	char	   *relname = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
													 RelationGetRelationName(rel));
	char	   *prefix = psprintf("UPDATE %s SET ", relname);
	UpdateStmt *u;
	ListCell   *lc;
	RawStmt    *raw;

	u = (UpdateStmt *) shift_parse_fragment(sync_label(name), what, prefix, clause);
	if (!IsA(u, UpdateStmt) || u->whereClause || u->fromClause != NIL ||
		u->returningList != NIL || u->withClause)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("%s of sync \"%s\" must be assignments only", what, name),
				 errdetail("It was: %s", clause),
				 errhint("Write %s => 'col = expr, col2 = expr2'.", what)));
	foreach(lc, u->targetList)
	{
		ResTarget  *rt = lfirst(lc);

		if (rt->indirection != NIL || IsA(rt->val, MultiAssignRef) || IsA(rt->val, SetToDefault))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("%s of sync \"%s\" must assign whole columns one by one", what, name),
					 errdetail("Column \"%s\" is assigned a DEFAULT, a subscript, a field or a row.",
							   rt->name)));
		if (contains_sublink_walker(rt->val, NULL))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("%s of sync \"%s\" must not use subqueries", what, name),
					 errdetail("Column \"%s\" is computed with a subquery.", rt->name),
					 errhint("Wrap the lookup in a function if you must.")));
	}
	/* parse it again whole, with the positions the analyzer wants */
	raw = linitial_node(RawStmt, raw_parser(psprintf("%s%s", prefix, clause), RAW_PARSE_DEFAULT));
	return raw;
}

/* Errors from analyzing a sync's statement point into that statement. */
static void
statement_error_callback(void *arg)
{
	PrepareContext *p = arg;
	int			pos = geterrposition();

	if (pos > 0)
	{
		errposition(0);
		internalerrposition(pos);
		internalerrquery(p->sql);
	}
	errcontext("statement of sync \"%s\": %s", p->name, p->sql);
}

/*
 * Compiles an assignment list into (attribute, expression state) pairs,
 * allocated in cxt.  The expressions are coerced to their columns' types
 * by the analyzer exactly as an UPDATE would.
 */
static int
compile_assignments(const char *name, const char *what, Relation rel, const char *clause,
					MemoryContext cxt, AttrNumber **atts, ExprState ***exprs, Bitmapset **reads)
{
	RawStmt    *raw = check_assignments(name, what, rel, clause);
	char	   *sql = psprintf("UPDATE %s SET %s",
							   quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
														  RelationGetRelationName(rel)),
							   clause);
	PrepareContext pc = {name, sql};
	ErrorContextCallback cb = {error_context_stack, statement_error_callback, &pc};
	Query	   *q;
	int			n;
	ListCell   *lc;
	int			i = 0;
	Bitmapset  *assigned = NULL;
	MemoryContext old;

	error_context_stack = &cb;
	q = parse_analyze_fixedparams(raw, sql, NULL, 0, NULL);
	error_context_stack = cb.previous;
	n = list_length(q->targetList);

	*atts = MemoryContextAlloc(cxt, sizeof(AttrNumber) * Max(n, 1));
	*exprs = MemoryContextAlloc(cxt, sizeof(ExprState *) * Max(n, 1));
	foreach(lc, q->targetList)
	{
		TargetEntry *tle = lfirst(lc);
		Expr	   *expr;

		if (tle->resjunk)
			continue;
		/* the rewriter would refuse it; the trigger never runs through it */
		if (bms_is_member(tle->resno, assigned))
			ereport(ERROR,
					(errcode(ERRCODE_SYNTAX_ERROR),
					 errmsg("%s of sync \"%s\" assigns column \"%s\" more than once", what, name,
							tle->resname)));
		assigned = bms_add_member(assigned, tle->resno);
		if (TupleDescAttr(RelationGetDescr(rel), tle->resno - 1)->attgenerated)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("%s of sync \"%s\" assigns generated column \"%s\"", what, name,
							tle->resname)));
		if (reads)
			pull_varattnos((Node *) tle->expr, 1, reads);
		/*
		 * Planned here, then copied whole into cxt: the planner flat-copies
		 * Const nodes, so its output still points at the literals' datums
		 * in the analyzer's memory, which does not outlive this call.
		 */
		expr = expression_planner(tle->expr);
		old = MemoryContextSwitchTo(cxt);
		expr = copyObject(expr);
		(*atts)[i] = tle->resno;
		(*exprs)[i] = ExecInitExpr(expr, NULL);
		MemoryContextSwitchTo(old);
		i++;
	}
	return i;
}

/* Builds a column-level entry: compiles set and reverse_set against rel. */
static void
build_column_entry(SyncEntry *e, SyncConfig *c, Relation rel)
{
	Bitmapset  *up_reads = NULL;
	Bitmapset  *down_reads = NULL;
	int			i;
	int			j;

	e->nup = compile_assignments(c->name, "set", rel, c->set_clause, e->cxt,
								 &e->up_att, &e->up_expr, &up_reads);
	if (c->reverse_set)
		e->ndown = compile_assignments(c->name, "reverse_set", rel, c->reverse_set, e->cxt,
									   &e->down_att, &e->down_expr, &down_reads);
	/* a BEFORE trigger sees generated columns before they are computed */
	for (i = 1; i <= RelationGetDescr(rel)->natts; i++)
		if (TupleDescAttr(RelationGetDescr(rel), i - 1)->attgenerated &&
			(bms_is_member(i - FirstLowInvalidHeapAttributeNumber, up_reads) ||
			 bms_is_member(i - FirstLowInvalidHeapAttributeNumber, down_reads)))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("sync \"%s\" reads generated column \"%s\"", c->name,
							NameStr(TupleDescAttr(RelationGetDescr(rel), i - 1)->attname)),
					 errdetail("A row's generated columns are computed after its BEFORE triggers run."),
					 errhint("Compute from the columns the generated one is made of.")));
	for (i = 0; i < e->nup; i++)
	{
		const char *col = get_attname(RelationGetRelid(rel), e->up_att[i], false);

		if (bms_is_member(e->up_att[i] - FirstLowInvalidHeapAttributeNumber, up_reads))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("set of sync \"%s\" computes column \"%s\" from itself", c->name, col),
					 errhint("set => computes the new columns from the old ones.")));
		for (j = 0; j < e->ndown; j++)
			if (e->down_att[j] == e->up_att[i])
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("column \"%s\" is assigned by both set and reverse_set of sync \"%s\"",
								col, c->name),
						 errhint("set => fills the new columns; reverse_set => fills the old ones.")));
	}
	for (j = 0; j < e->ndown; j++)
		if (bms_is_member(e->down_att[j] - FirstLowInvalidHeapAttributeNumber, down_reads))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("reverse_set of sync \"%s\" computes column \"%s\" from itself", c->name,
							get_attname(RelationGetRelid(rel), e->down_att[j], false))));
	{
		MemoryContext old = MemoryContextSwitchTo(e->cxt);

		e->econtext = CreateStandaloneExprContext();
		e->natts = RelationGetDescr(rel)->natts;
		e->values = palloc(sizeof(Datum) * e->natts);
		e->nulls = palloc(sizeof(bool) * e->natts);
		MemoryContextSwitchTo(old);
	}
}

/* Is column att of the two slots the same value (bytewise, after detoasting)? */
static bool
same_value(TupleTableSlot *a, TupleTableSlot *b, AttrNumber att)
{
	Form_pg_attribute attr = TupleDescAttr(a->tts_tupleDescriptor, att - 1);
	bool		na;
	bool		nb;
	Datum		va = slot_getattr(a, att, &na);
	Datum		vb = slot_getattr(b, att, &nb);

	if (na || nb)
		return na == nb;
	return datum_image_eq(va, vb, attr->attbyval, attr->attlen);
}

/*
 * The column-level trigger: returns the row to store.  One-way (set only):
 * the new columns are always computed from the old.  Two-way: a writer that
 * changed only new columns, to values that disagree with the old ones, is a
 * new-version writer, and the old columns are computed from the new; any
 * other write computes the new columns (a backfill writing set's own values
 * agrees, and changes nothing).
 */
static HeapTuple
column_sync(SyncEntry *e, TriggerData *td)
{
	bool		inserting = TRIGGER_FIRED_BY_INSERT(td->tg_event);
	TupleTableSlot *slot = inserting ? td->tg_trigslot : td->tg_newslot;
	HeapTuple	tuple = inserting ? td->tg_trigtuple : td->tg_newtuple;
	TupleDesc	desc = RelationGetDescr(td->tg_relation);
	ExprContext *ec = e->econtext;
	Datum	   *values = e->values;
	bool	   *nulls = e->nulls;
	HeapTuple	result;
	bool		down = false;
	int			i;

	if (desc->natts != e->natts)
		elog(ERROR, "sync \"%s\": the row has %d columns, its trigger was compiled for %d",
			 e->name, desc->natts, e->natts);
	ResetExprContext(ec);
	ec->ecxt_scantuple = slot;
	/* the row as the writer gave it; the slot is deformed already */
	slot_getallattrs(slot);
	memcpy(values, slot->tts_values, sizeof(Datum) * desc->natts);
	memcpy(nulls, slot->tts_isnull, sizeof(bool) * desc->natts);
	if (e->ndown == 0)
	{
		for (i = 0; i < e->nup; i++)
		{
			AttrNumber	att = e->up_att[i];

			values[att - 1] = ExecEvalExprSwitchContext(e->up_expr[i], ec, &nulls[att - 1]);
		}
	}
	else
	{
		Datum	   *up = palloc(sizeof(Datum) * e->nup);
		bool	   *up_null = palloc(sizeof(bool) * e->nup);
		bool		agrees = true;

		for (i = 0; i < e->nup; i++)
			up[i] = ExecEvalExprSwitchContext(e->up_expr[i], ec, &up_null[i]);
		for (i = 0; i < e->nup && agrees; i++)
		{
			AttrNumber	att = e->up_att[i];
			Form_pg_attribute attr = TupleDescAttr(desc, att - 1);

			agrees = (nulls[att - 1] && up_null[i]) ||
				(!nulls[att - 1] && !up_null[i] &&
				 datum_image_eq(values[att - 1], up[i], attr->attbyval, attr->attlen));
		}
		if (agrees)
			return tuple;		/* both sides agree: nothing to change */
		if (inserting)
		{
			/* an old-version insert leaves the new columns NULL */
			for (i = 0; i < e->nup && !down; i++)
				down = !nulls[e->up_att[i] - 1];
		}
		else
		{
			bool		new_written = false;
			bool		old_written = false;

			for (i = 0; i < e->nup && !new_written; i++)
				new_written = !same_value(td->tg_trigslot, slot, e->up_att[i]);
			for (i = 0; i < e->ndown && !old_written; i++)
				old_written = !same_value(td->tg_trigslot, slot, e->down_att[i]);
			down = new_written && !old_written;
		}
		if (down)
			for (i = 0; i < e->ndown; i++)
			{
				AttrNumber	att = e->down_att[i];

				values[att - 1] = ExecEvalExprSwitchContext(e->down_expr[i], ec, &nulls[att - 1]);
			}
		else
			for (i = 0; i < e->nup; i++)
			{
				values[e->up_att[i] - 1] = up[i];
				nulls[e->up_att[i] - 1] = up_null[i];
			}
	}
	/* formed from the slot's values: no second deform of the row */
	result = heap_form_tuple(desc, values, nulls);
	result->t_data->t_ctid = tuple->t_data->t_ctid;
	result->t_self = tuple->t_self;
	result->t_tableOid = tuple->t_tableOid;
	return result;
}

/* ---------------------------------------------------------------- table level */

static char *
qualified_name(Oid relid)
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

/* The expressions, each in parentheses (shift._select_list made sure they can be). */
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
static const char *
key_expr(Mapping *m, const char *k)
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
				 errmsg("key column \"%s\" of %s does not exist", k, qualified_name(m->dst))));
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
static char *
upsert_sql(Mapping *m, bool only_missing)
{
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfo(&s, "INSERT INTO %s AS pgs_t (", qualified_name(m->dst));
	append_names(&s, m->columns, "");
	appendStringInfoString(&s, ") OVERRIDING SYSTEM VALUE SELECT ");
	if (only_missing)
	{
		append_names(&s, m->columns, "pgs_s.");
		appendStringInfoString(&s, " FROM ");
		append_mapped(&s, m, NEW_ROWS);
		appendStringInfo(&s, " WHERE NOT EXISTS (SELECT 1 FROM %s AS pgs_t WHERE ",
						 qualified_name(m->dst));
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
static char *
update_sql(Mapping *m)
{
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfo(&s, "UPDATE %s AS pgs_t SET ", qualified_name(m->dst));
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
static AttrNumber
plain_column(Oid rel, const char *expr)
{
	List	   *stmts = raw_parser(psprintf("SELECT %s", expr), RAW_PARSE_DEFAULT);
	SelectStmt *sel;
	Node	   *v;
	ColumnRef  *cr;

	if (list_length(stmts) != 1)
		return InvalidAttrNumber;
	sel = (SelectStmt *) linitial_node(RawStmt, stmts)->stmt;
	if (!IsA(sel, SelectStmt) || list_length(sel->targetList) != 1)
		return InvalidAttrNumber;
	v = ((ResTarget *) linitial(sel->targetList))->val;
	if (IsA(v, TypeCast))
		v = ((TypeCast *) v)->arg;
	if (!IsA(v, ColumnRef))
		return InvalidAttrNumber;
	cr = (ColumnRef *) v;
	if (list_length(cr->fields) != 1 || !IsA(linitial(cr->fields), String))
		return InvalidAttrNumber;
	return get_attnum(rel, strVal(linitial(cr->fields)));
}

/*
 * DELETE FROM dst WHERE its key is among the keys of rows [EXCEPT the keys
 * of except] [AND no row of src maps to the key now]
 */
static char *
delete_sql(Mapping *m, const char *rows, const char *except, bool unclaimed)
{
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfo(&s, "DELETE FROM %s AS pgs_t WHERE EXISTS (SELECT 1 FROM (SELECT ",
					 qualified_name(m->dst));
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
		appendStringInfo(&s, " AND NOT EXISTS (SELECT 1 FROM %s AS %s WHERE ", qualified_name(m->src),
						 quote_identifier(m->alias));
		foreach(lc, m->key)
		{
			const char *k = lfirst(lc);
			const char *expr = key_expr(m, k);
			AttrNumber	att = plain_column(m->src, expr);

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

/* An empty transition table of rel's row type, registered in the SPI connection. */
static void
register_rows(const char *name, Relation rel, Tuplestorestate *rows, int64 n)
{
	EphemeralNamedRelation enr = palloc0(sizeof(EphemeralNamedRelationData));

	enr->md.name = pstrdup(name);
	enr->md.reliddesc = RelationGetRelid(rel);
	enr->md.tupdesc = NULL;
	enr->md.enrtype = ENR_NAMED_TUPLESTORE;
	enr->md.enrtuples = n;
	enr->reldata = rows;
	if (SPI_register_relation(enr) != SPI_OK_REL_REGISTER)
		elog(ERROR, "could not register transition table \"%s\"", name);
}

static void
prepare_error_callback(void *arg)
{
	PrepareContext *p = arg;

	errcontext("statement of sync \"%s\": %s", p->name, p->sql);
}

static SPIPlanPtr
prepare_kept(const char *name, const char *sql)
{
	ErrorContextCallback cb;
	PrepareContext pc = {name, sql};
	SPIPlanPtr	plan;

	cb.callback = prepare_error_callback;
	cb.arg = &pc;
	cb.previous = error_context_stack;
	error_context_stack = &cb;
	plan = SPI_prepare(sql, 0, NULL);
	error_context_stack = cb.previous;
	if (plan == NULL)
		elog(ERROR, "could not prepare a statement of sync \"%s\": %s", name,
			 SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "could not keep a plan of sync \"%s\"", name);
	return plan;
}

/*
 * Prepares a mapping's statements against transition tables of rel's row
 * type (rel: the table the trigger is on, or one of its partitions).
 *
 * per_row: the trigger fires once per row, after the whole statement, so
 * the events of one statement run one after the other.  When two rows trade
 * keys (UPDATE ... SET id = 3 - id, or a swap across partitions, which comes
 * as a DELETE and an INSERT per row), the second row's delete would remove
 * what the first row's upsert just wrote under that key: these deletes
 * leave a key alone while a source row maps to it.
 */
static void key_columns(SyncEntry *e, Mapping *m, Relation rel);

static void
build_table_entry(SyncEntry *e, SyncConfig *c, Mapping *m, Relation rel, bool per_row)
{
	char	   *update;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (!per_row && RelationGetRelid(rel) != m->src)
	{
		/*
		 * A partition's own statement trigger fires for its TRUNCATE only:
		 * it needs only these two plans (and a TRUNCATE of the whole table
		 * builds one such entry per partition).
		 */
		e->partition_of = m->src;
		e->other_has_rows = prepare_kept(c->name, psprintf("SELECT 1 FROM %s LIMIT 1",
														   qualified_name(m->dst)));
		e->delete_partition = prepare_kept(c->name,
										   delete_sql(m, psprintf("ONLY %s", qualified_name(RelationGetRelid(rel))),
													  NULL, false));
		SPI_finish();
		return;
	}
	register_rows(NEW_ROWS, rel, NULL, 0);
	register_rows(OLD_ROWS, rel, NULL, 0);
	update = update_sql(m);
	e->upsert = prepare_kept(c->name, upsert_sql(m, false));
	if (update != NULL)
		e->update_kept = prepare_kept(c->name, update);
	e->insert_missing = prepare_kept(c->name, upsert_sql(m, true));
	e->delete_gone = prepare_kept(c->name, delete_sql(m, OLD_ROWS, NEW_ROWS, per_row));
	e->delete_old = prepare_kept(c->name, delete_sql(m, OLD_ROWS, NULL, false));
	if (per_row)
		e->delete_moved = prepare_kept(c->name, delete_sql(m, OLD_ROWS, NULL, true));
	e->truncate = prepare_kept(c->name, psprintf("TRUNCATE %s", qualified_name(m->dst)));
	SPI_finish();
	key_columns(e, m, rel);
}

/*
 * The source columns the destination key is made of, when every key
 * expression is a column (maybe cast): an UPDATE that leaves them alone
 * cannot take a key away, and skips delete_gone.  Numbered in rel, which
 * may be a partition with its own column order.
 */
static void
key_columns(SyncEntry *e, Mapping *m, Relation rel)
{
	AttrNumber *atts = MemoryContextAlloc(e->cxt, sizeof(AttrNumber) * list_length(m->key));
	ListCell   *lc;
	int			n = 0;

	foreach(lc, m->key)
	{
		AttrNumber	att = plain_column(m->src, key_expr(m, lfirst(lc)));

		if (att == InvalidAttrNumber)
			return;
		att = get_attnum(RelationGetRelid(rel), get_attname(m->src, att, false));
		if (att == InvalidAttrNumber)
			return;
		atts[n++] = att;
	}
	e->keyatts = atts;
	e->nkeyatts = n;
}

/* Do the two rows have the same key columns (see key_columns)? */
static bool
same_key(SyncEntry *e, TupleTableSlot *a, TupleTableSlot *b)
{
	int			i;

	for (i = 0; i < e->nkeyatts; i++)
		if (!same_value(a, b, e->keyatts[i]))
			return false;
	return true;
}

/*
 * Did an UPDATE keep every row's key?  Old and new rows are compared in
 * pairs, in the order the transition tables hold them; when every pair
 * agrees the old keys are the new keys, so no key is gone (whatever the
 * pairing).  Reads with read pointers of its own, as a scan of the
 * transition table would.
 */
static bool
keys_kept(SyncEntry *e, Relation rel, Tuplestorestate *oldrows, Tuplestorestate *newrows)
{
	TupleTableSlot *a;
	TupleTableSlot *b;
	MemoryContext row_cxt;
	MemoryContext old;
	bool		kept = true;

	if (tuplestore_tuple_count(oldrows) != tuplestore_tuple_count(newrows))
		return false;
	/* comparing may detoast a key: per row, in a context reset per row */
	row_cxt = AllocSetContextCreate(CurrentMemoryContext, "pg_shift key check",
									ALLOCSET_SMALL_SIZES);
	a = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsMinimalTuple);
	b = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsMinimalTuple);
	tuplestore_select_read_pointer(oldrows, tuplestore_alloc_read_pointer(oldrows, EXEC_FLAG_REWIND));
	tuplestore_select_read_pointer(newrows, tuplestore_alloc_read_pointer(newrows, EXEC_FLAG_REWIND));
	tuplestore_rescan(oldrows);
	tuplestore_rescan(newrows);
	while (kept && tuplestore_gettupleslot(oldrows, true, false, a))
	{
		CHECK_FOR_INTERRUPTS();
		/* fetched outside row_cxt: a tuple read back from disk belongs to its slot */
		if (!tuplestore_gettupleslot(newrows, true, false, b))
			kept = false;
		else
		{
			old = MemoryContextSwitchTo(row_cxt);
			kept = same_key(e, a, b);
			MemoryContextSwitchTo(old);
			MemoryContextReset(row_cxt);
		}
	}
	MemoryContextDelete(row_cxt);
	tuplestore_select_read_pointer(oldrows, 0);
	tuplestore_select_read_pointer(newrows, 0);
	ExecDropSingleTupleTableSlot(a);
	ExecDropSingleTupleTableSlot(b);
	return kept;
}

/*
 * Runs a mirror statement with snap, or with a new snapshot if snap is NULL
 * (SPI copies it and advances its command id: the statement sees what the
 * ones before it in this transaction wrote).  Never the writer's own
 * snapshot, as foreign key checks do not use it either: a REPEATABLE READ or
 * SERIALIZABLE writer would miss rows a backfill committed after that
 * snapshot was taken, and a mirrored DELETE would leave them.
 */
static void
run_plan_at(SPIPlanPtr plan, Snapshot snap)
{
	int			rc = SPI_execute_snapshot(plan, NULL, NULL, snap ? snap : GetLatestSnapshot(),
										  InvalidSnapshot, false, true, 0);

	if (rc < 0)
		elog(ERROR, "a statement of a sync failed: %s", SPI_result_code_string(rc));
}

static void
run_plan(SPIPlanPtr plan)
{
	run_plan_at(plan, NULL);
}

/* A tuplestore holding one row. */
static Tuplestorestate *
one_row(HeapTuple tuple)
{
	Tuplestorestate *ts = tuplestore_begin_heap(false, false, work_mem);

	tuplestore_puttuple(ts, tuple);
	return ts;
}

/*
 * Runs the statements that mirror what the trigger's statement (or row) did,
 * on an SPI connection with the transition rows (if any) registered.
 */
static void
mirror(SyncEntry *e, TriggerData *td, Tuplestorestate *oldrows, Tuplestorestate *newrows)
{
	TriggerEvent ev = td->tg_event;
	bool		per_row = TRIGGER_FIRED_FOR_ROW(ev);

	if (TRIGGER_FIRED_BY_TRUNCATE(ev) && !OidIsValid(e->partition_of))
		run_plan(e->truncate);
	else if (TRIGGER_FIRED_BY_TRUNCATE(ev))
	{
		/*
		 * One partition truncated: its keys go from the other table.  When
		 * the partitioned table is truncated as a whole, its own trigger has
		 * emptied the other table already and there is nothing to do; and a
		 * partition detached since is a table of its own, whose rows are not
		 * the source's.
		 */
		if (list_member_oid(get_partition_ancestors(RelationGetRelid(td->tg_relation)),
							e->partition_of))
		{
			run_plan(e->other_has_rows);
			if (SPI_processed > 0)
				run_plan(e->delete_partition);
		}
	}
	else if (TRIGGER_FIRED_BY_INSERT(ev))
		run_plan(e->upsert);
	else if (TRIGGER_FIRED_BY_UPDATE(ev))
	{
		if (e->nkeyatts > 0 &&
			(per_row ? same_key(e, td->tg_trigslot, td->tg_newslot) :
			 keys_kept(e, td->tg_relation, oldrows, newrows)))
		{
			/*
			 * Every key kept: update the rows there, then add those missing.
			 * Both statements read the other table with one snapshot.  With
			 * a fresh one for the second, a row a backfill batch had inserted
			 * but not committed when the UPDATE looked (so it found nothing
			 * to update) would be committed by the time the insert looked for
			 * missing rows, found there, and skipped: its copy would keep the
			 * batch's older values.  With one snapshot the insert does not
			 * see it either, runs into its key, and ON CONFLICT updates it.
			 */
			uint64		found = 0;
			Snapshot	snap = RegisterSnapshot(GetLatestSnapshot());

			if (e->update_kept)
			{
				run_plan_at(e->update_kept, snap);
				found = SPI_processed;
			}
			if (found < (uint64) tuplestore_tuple_count(newrows))
				run_plan_at(e->insert_missing, snap);
			UnregisterSnapshot(snap);
		}
		else
		{
			/* keys that changed: their old rows go, then every new row is upserted */
			run_plan(e->delete_gone);
			run_plan(e->upsert);
		}
	}
	else if (per_row && HeapTupleHeaderIndicatesMovedPartitions(td->tg_trigtuple->t_data))
		run_plan(e->delete_moved);	/* half of an UPDATE that moved the row */
	else
		run_plan(e->delete_old);
}

/*
 * mirror() for a REPEATABLE READ or SERIALIZABLE writer: in a subtransaction,
 * run again with a new snapshot when it fails to serialize.  A copy row that a
 * backfill batch (or another writer) had not committed when a mirror
 * statement took its snapshot makes ON CONFLICT DO UPDATE, or an UPDATE, wait
 * for it; read committed then goes on with the row, these levels refuse it
 * (40001) because the snapshot does not see it.  The copy mirrors what is
 * committed, not what the writer's snapshot saw, so the second attempt, whose
 * snapshot sees the row, is right.  A failure the retries do not cure (a
 * transaction SSI has doomed) reaches the writer as before.
 */
typedef struct MirrorCall
{
	SyncEntry  *e;
	TriggerData *td;
	Tuplestorestate *oldrows;
	Tuplestorestate *newrows;
} MirrorCall;

static void
mirror_call(void *arg)
{
	MirrorCall *m = arg;

	mirror(m->e, m->td, m->oldrows, m->newrows);
}

static void
mirror_retrying(SyncEntry *e, TriggerData *td, Tuplestorestate *oldrows, Tuplestorestate *newrows)
{
	MirrorCall	m = {e, td, oldrows, newrows};
	int			attempt;

	for (attempt = 1;; attempt++)
	{
		ErrorData  *edata = shift_try(mirror_call, &m);

		if (edata == NULL)
			return;
		if (edata->sqlerrcode != ERRCODE_T_R_SERIALIZATION_FAILURE ||
			attempt >= SYNC_SERIALIZE_ATTEMPTS)
			ReThrowError(edata);
		FreeErrorData(edata);
	}
}

/* The table-level trigger: mirrors what the statement (or row) did. */
static void
table_sync(SyncEntry *e, TriggerData *td)
{
	TriggerEvent ev = td->tg_event;
	bool		per_row = TRIGGER_FIRED_FOR_ROW(ev);
	Tuplestorestate *newrows = NULL;
	Tuplestorestate *oldrows = NULL;
	int			level;

	if (TRIGGER_FIRED_BY_TRUNCATE(ev))
	{
		/* no transition rows */
	}
	else if (per_row)
	{
		if (TRIGGER_FIRED_BY_INSERT(ev))
			newrows = one_row(td->tg_trigtuple);
		else if (TRIGGER_FIRED_BY_UPDATE(ev))
		{
			oldrows = one_row(td->tg_trigtuple);
			newrows = one_row(td->tg_newtuple);
		}
		else
			oldrows = one_row(td->tg_trigtuple);
	}
	else
	{
		newrows = td->tg_newtable;
		oldrows = td->tg_oldtable;
		/* a statement that wrote nothing has nothing to mirror */
		if ((newrows == NULL || tuplestore_tuple_count(newrows) == 0) &&
			(oldrows == NULL || tuplestore_tuple_count(oldrows) == 0))
			return;
	}

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (newrows)
		register_rows(NEW_ROWS, td->tg_relation, newrows, tuplestore_tuple_count(newrows));
	if (oldrows)
		register_rows(OLD_ROWS, td->tg_relation, oldrows, tuplestore_tuple_count(oldrows));
	level = enter_search_path(e->search_path);
	if (IsolationUsesXactSnapshot())
		mirror_retrying(e, td, oldrows, newrows);
	else
		mirror(e, td, oldrows, newrows);
	AtEOXact_GUC(true, level);
	SPI_finish();
	if (per_row)
	{
		if (newrows)
			tuplestore_end(newrows);
		if (oldrows)
			tuplestore_end(oldrows);
	}
}

/* ---------------------------------------------------------------- the trigger */

/*
 * The entry for the firing trigger, compiled now if it is missing or stale
 * (a stale one is retired, freed at the end of the transaction: it may be
 * running further up the stack).
 */
static SyncEntry *
get_entry(TriggerData *td)
{
	Trigger    *tg = td->tg_trigger;
	SyncEntry  *e;
	bool		found;
	bool		reverse;
	SyncConfig *c;
	MemoryContext cxt;
	MemoryContext old;
	int			level;
	uint64		seen;

	/* dynahash never moves an entry; an invalidation clears valid */
	if (last_entry != NULL && last_entry->tgoid == tg->tgoid && last_entry->valid)
		return last_entry;
	shift_sync_init();
	if (sync_cache == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(SyncEntry);
		ctl.hcxt = CacheMemoryContext;
		sync_cache = hash_create("pg_shift sync triggers", 32, &ctl,
								 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	e = hash_search(sync_cache, &tg->tgoid, HASH_ENTER, &found);
	if (found && e->valid)
		return last_entry = e;
	last_entry = NULL;
	if (found)
	{
		/* keep the stale resources alive until the transaction ends */
		SyncEntry  *dead = MemoryContextAlloc(TopMemoryContext, sizeof(SyncEntry));

		memcpy(dead, e, sizeof(SyncEntry));
		old = MemoryContextSwitchTo(TopMemoryContext);
		retired = lappend(retired, dead);
		MemoryContextSwitchTo(old);
	}
	memset(((char *) e) + sizeof(Oid), 0, sizeof(SyncEntry) - sizeof(Oid));

	if (tg->tgnargs < 3)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" of pg_shift has no sync name, direction and digest", tg->tgname),
				 errhint("Triggers are made by shift.sync_create; drop this one.")));
	reverse = strcmp(tg->tgargs[1], "reverse") == 0;
	cxt = AllocSetContextCreate(CacheMemoryContext, "pg_shift sync trigger",
								ALLOCSET_SMALL_SIZES);
	e->cxt = cxt;
	seen = invalidations;
	PG_TRY();
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		c = load_config(tg->tgargs[0], true, tg->tgargs[2], cxt);
		SPI_finish();
		old = MemoryContextSwitchTo(cxt);
		e->name = c->name;
		e->column_level = c->column_level;
		e->relid = RelationGetRelid(td->tg_relation);
		e->search_path = c->search_path;
		MemoryContextSwitchTo(old);
		level = enter_search_path(c->search_path);
		if (c->column_level)
		{
			e->otherid = InvalidOid;
			build_column_entry(e, c, td->tg_relation);
		}
		else
		{
			Mapping    *m = reverse ? &c->reverse : &c->forward;

			if (m->columns == NIL)
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("sync \"%s\" has no reverse mapping", c->name)));
			e->otherid = m->dst;
			build_table_entry(e, c, m, td->tg_relation, TRIGGER_FIRED_FOR_ROW(td->tg_event));
		}
		AtEOXact_GUC(true, level);
		/* used now; built again next time if something changed meanwhile */
		e->valid = (seen == invalidations);
		if (e->valid)
			last_entry = e;
	}
	PG_CATCH();
	{
		/* leave nothing half-built behind, nor a pointer to it */
		last_entry = NULL;
		free_entry_resources(e);
		hash_search(sync_cache, &tg->tgoid, HASH_REMOVE, NULL);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return e;
}

/*
 * shift._sync_trigger() returns trigger
 *
 * Arguments (from CREATE TRIGGER): the sync's name and its direction
 * ('forward' or 'reverse').  Column level: BEFORE INSERT OR UPDATE FOR EACH
 * ROW.  Table level: AFTER statement triggers with transition tables named
 * pgs_new / pgs_old, or AFTER row triggers on a partitioned source; AFTER
 * TRUNCATE, or BEFORE TRUNCATE on a partitioned source and on each of its
 * partitions.
 */
Datum
shift_sync_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td;
	SyncEntry  *e;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("shift._sync_trigger() must be called as a trigger")));
	td = (TriggerData *) fcinfo->context;
	e = get_entry(td);
	if (e->column_level)
	{
		if (!TRIGGER_FIRED_BEFORE(td->tg_event) || !TRIGGER_FIRED_FOR_ROW(td->tg_event) ||
			TRIGGER_FIRED_BY_DELETE(td->tg_event) || TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
			ereport(ERROR,
					(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
					 errmsg("column-level sync \"%s\" must fire BEFORE INSERT OR UPDATE FOR EACH ROW",
							e->name)));
		{
			HeapTuple	result;

			if (e->busy)
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("sync \"%s\" fired again while computing a row of its own", e->name),
						 errdetail("An expression of the sync writes the same table."),
						 errhint("Keep the sync's expressions free of writes to its table.")));
			e->busy = true;
			PG_TRY();
			{
				result = column_sync(e, td);
			}
			PG_FINALLY();
			{
				e->busy = false;
			}
			PG_END_TRY();
			return PointerGetDatum(result);
		}
	}
	if (TRIGGER_FIRED_BEFORE(td->tg_event) && !TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("table-level sync \"%s\" must fire AFTER", e->name)));
	table_sync(e, td);
	return PointerGetDatum(NULL);
}

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
	appendStringInfo(&s, " FROM %s AS %s ORDER BY ", qualified_name(rel), quote_identifier(alias));
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
	c = load_config(name, true, NULL, cxt);
	if (c->column_level || c->reverse.columns == NIL)
		elog(ERROR, "sync \"%s\" has nothing to check for a cut-over", name);
	m = reverse ? &c->reverse : &c->forward;
	/* the source's key: the other direction's key columns, of the source */
	src_key = reverse ? c->forward.key : c->reverse.key;
	as_sync_owner(c, &as);
	if (strcmp(mode, "count") == 0)
	{
		int64		n_src;
		int64		n_dst;

		rc = SPI_execute(psprintf("SELECT pg_catalog.count(*) FROM %s", qualified_name(m->src)), true, 1);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "could not count the rows of %s", qualified_name(m->src));
		n_src = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		rc = SPI_execute(psprintf("SELECT pg_catalog.count(*) FROM %s", qualified_name(m->dst)), true, 1);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "could not count the rows of %s", qualified_name(m->dst));
		n_dst = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		shift_as_end(&as);
		if (n_src != n_dst)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("cut-over check of sync \"%s\" failed: %s has " INT64_FORMAT " rows, %s has " INT64_FORMAT,
							name, qualified_name(m->src), n_src, qualified_name(m->dst), n_dst),
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
					 errmsg("column \"%s\" of %s does not exist", (char *) lfirst(lc), qualified_name(m->dst))));
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
						name, diff, rows, qualified_name(m->src), qualified_name(m->dst)),
				 errdetail("Compared: %s against %s", src_sql, dst_sql),
				 errhint("Find the differences with shift.compare; check => 'count' or 'none' skips this comparison.")));
	SPI_finish();
	PG_RETURN_VOID();
}

/* ---------------------------------------------------------------- shift._sync_check */

/*
 * shift._sync_check(name text) returns void
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
	c = load_config(name, false, NULL, cxt);
	SPI_finish();
	/* compiled as the sync's owner, under its search_path */
	as_sync_owner(c, &as);
	memset(&e, 0, sizeof(e));
	e.cxt = AllocSetContextCreate(cxt, "pg_shift sync check entry", ALLOCSET_SMALL_SIZES);
	if (c->column_level)
	{
		Relation	rel = table_open(c->relation, RowExclusiveLock);

		build_column_entry(&e, c, rel);
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
				free_entry_resources(&e);
				memset(&e, 0, sizeof(e));
				e.cxt = AllocSetContextCreate(cxt, "pg_shift sync check entry", ALLOCSET_SMALL_SIZES);
			}
			build_table_entry(&e, c, maps[i], rel, rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE);
			table_close(rel, NoLock);
		}
	}
	free_entry_resources(&e);
	shift_as_end(&as);
	MemoryContextDelete(cxt);
	PG_RETURN_VOID();
}
