/*-------------------------------------------------------------------------
 *
 * sync_column.c
 *	  The column-level sync (sync.c's header describes both kinds): set =>
 *	  and reverse_set => checked, compiled into executor expression state
 *	  once per session (sync_build_column_entry), and applied to the row a
 *	  BEFORE INSERT OR UPDATE trigger is given (sync_column_row), computing
 *	  the new columns from the old ones or, for the new version's writer,
 *	  the old ones from the new.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "optimizer/optimizer.h"
#include "parser/analyze.h"
#include "parser/parser.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "pg_shift.h"
#include "sync.h"

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
	MemoryContext cxt_of_caller = CurrentMemoryContext;
	Query	   *q;
	int			n;
	ListCell   *lc;
	int			i = 0;
	Bitmapset  *assigned = NULL;
	MemoryContext old;

	error_context_stack = &cb;
	PG_TRY();
	{
		q = parse_analyze_fixedparams(raw, sql, NULL, 0, NULL);
	}
	PG_CATCH();
	{
		/* raised again at once, as the fragment's: no subtransaction needed */
		ShiftFragSpan span = {what, clause, strlen(sql) - strlen(clause), strlen(sql)};
		ErrorData  *edata;

		error_context_stack = cb.previous;
		MemoryContextSwitchTo(cxt_of_caller);
		edata = CopyErrorData();
		FlushErrorState();
		shift_raise_in_fragment(sync_label(name), sql, 1, &span, edata);
	}
	PG_END_TRY();
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
void
sync_build_column_entry(SyncEntry *e, SyncConfig *c, Relation rel)
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
		e->new_version = c->new_version ? pstrdup(c->new_version) : NULL;
		e->writer_seen = 0;
		e->natts = RelationGetDescr(rel)->natts;
		e->values = palloc(sizeof(Datum) * e->natts);
		e->nulls = palloc(sizeof(bool) * e->natts);
		MemoryContextSwitchTo(old);
	}
}

/* Is column att of the two slots the same value (bytewise, after detoasting)? */
bool
sync_same_value(TupleTableSlot *a, TupleTableSlot *b, AttrNumber att)
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
 * The column-level trigger: returns the row to store.
 *
 * An old-version writer (and a backfill, always) gets the new columns
 * computed from the old by set.  A new-version writer keeps the new columns
 * it wrote, and given reverse_set gets the old ones computed from them.
 * Without new_version the writer is guessed: one-way (set only), every
 * writer is old; two-way, a writer that changed only new columns, to values
 * that disagree with set's, is new, and any other is old.
 */
HeapTuple
sync_column_row(SyncEntry *e, TriggerData *td, SyncWriter writer)
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
	if (writer == WRITER_NEW)
	{
		if (e->ndown == 0)
			return tuple;		/* one way: the new columns as written */
		for (i = 0; i < e->ndown; i++)
		{
			AttrNumber	att = e->down_att[i];

			values[att - 1] = ExecEvalExprSwitchContext(e->down_expr[i], ec, &nulls[att - 1]);
		}
	}
	else if (e->ndown == 0 || writer == WRITER_OLD)
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
				new_written = !sync_same_value(td->tg_trigslot, slot, e->up_att[i]);
			for (i = 0; i < e->ndown && !old_written; i++)
				old_written = !sync_same_value(td->tg_trigslot, slot, e->down_att[i]);
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
