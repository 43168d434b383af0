/*-------------------------------------------------------------------------
 *
 * lint_analyze.c
 *	  The parse analysis two of lint's rules need, run without running any
 *	  user code: is an ADD COLUMN's default volatile (lint_check_default),
 *	  does an ALTER COLUMN TYPE rewrite the table (lint_check_type_change).
 *	  Each runs through lint_try, in an internal subtransaction, so that a
 *	  failure (an unknown function, a type that does not exist yet) is
 *	  caught, rolled back and reported as "could not tell".
 *
 * Lint runs no user code.  Anyone may lint (shift.lint is granted to
 * PUBLIC), often as a role more privileged than whoever wrote the types and
 * functions the linted SQL names, so nothing a non-superuser can define may
 * run: no type input function, cast, operator, function body or domain
 * CHECK.  Parse analysis would run some: it converts a literal with its
 * type's input function (record_in reaches a field's domain CHECK, which
 * may call anything, built-in set_config included), the typcache plans a
 * domain's CHECK expressions (folding immutable functions on constants),
 * and the planner inlines SQL functions and folds immutable ones.  So:
 *	 - string literals are analysed as parameters of unknown type, which take
 *	   the type their context gives them without being converted (what
 *	   PREPARE does); no input function runs on them;
 *	 - whether a domain has constraints is read from pg_type and
 *	   pg_constraint, never through the typcache, and a type change to a
 *	   domain with constraints is a rewrite without planning anything;
 *	 - while the analysis runs, a needs_fmgr_hook (installed at load by
 *	   shift_lint_init) refuses any function whose language is not internal
 *	   or C (only a superuser can create those): looking one up to call it,
 *	   or the planner asking whether it may inline it, raises an error.  The
 *	   analysis then fails inside its subtransaction, and the finding says
 *	   the statement "cannot be analysed without running user code (function
 *	   X)": it is reported, never evaluated.
 * The hook answers as the previous hook would whenever lint is not
 * analysing, and it never asks fmgr to wrap a function, so FmgrInfos made
 * while it was active are the ordinary ones and it costs one test of a
 * counter per lookup of a non-built-in function (not per call) elsewhere.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parse_coerce.h"
#include "parser/parse_collate.h"
#include "parser/parse_expr.h"
#include "parser/parse_node.h"
#include "parser/parse_param.h"
#include "parser/parse_type.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "pg_shift.h"
#include "lint.h"

/* ---------------------------------------------------------------- running no user code */

/* > 0 while lint's parse analysis runs: user functions are refused */
static int	analysis_depth = 0;
static needs_fmgr_hook_type prev_needs_fmgr_hook = NULL;

/*
 * The needs_fmgr_hook: fmgr asks it when it looks up a function that is not
 * built in (to call it), and the planner when it would inline a SQL
 * function.  During lint's analysis a function in any language but internal
 * and C (which only a superuser can create) is refused with an error;
 * otherwise the previous hook answers.  It never answers true itself, so it
 * never changes how a function is called.
 */
static bool
lint_needs_fmgr_hook(Oid fn_oid)
{
	if (analysis_depth > 0)
	{
		HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn_oid));

		if (HeapTupleIsValid(tup))
		{
			Oid			lang = ((Form_pg_proc) GETSTRUCT(tup))->prolang;

			ReleaseSysCache(tup);
			if (lang != INTERNALlanguageId && lang != ClanguageId)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot be analysed without running user code (function %s)",
								format_procedure_qualified(fn_oid))));
		}
	}
	return prev_needs_fmgr_hook ? prev_needs_fmgr_hook(fn_oid) : false;
}

/* Installs the hook, after whatever was there (from _PG_init). */
void
shift_lint_init(void)
{
	prev_needs_fmgr_hook = needs_fmgr_hook;
	needs_fmgr_hook = lint_needs_fmgr_hook;
}

typedef struct Analysis
{
	void		(*fn) (void *arg);
	void	   *arg;
} Analysis;

/* Runs an analysis with user functions refused. */
static void
run_guarded(void *arg)
{
	Analysis   *a = arg;

	analysis_depth++;
	PG_TRY();
	{
		a->fn(a->arg);
	}
	PG_FINALLY();
	{
		analysis_depth--;
	}
	PG_END_TRY();
}

/*
 * Runs fn(arg), a parse analysis, in a subtransaction with user functions
 * refused: it may fail (an unknown function or type, a function lint will
 * not run) after taking catalog locks and buffer pins, which only a
 * subtransaction abort releases.  Returns NULL on success, or the error
 * message.  Memory fn allocates stays in the caller's context.
 */
char *
lint_try(void (*fn) (void *arg), void *arg)
{
	Analysis	a;
	ErrorData  *edata;

	a.fn = fn;
	a.arg = arg;
	edata = shift_try(run_guarded, &a);
	if (edata == NULL)
		return NULL;
	return edata->message ? edata->message : pstrdup("unknown error");
}

/*
 * Turns each string literal of a raw expression into a parameter of unknown
 * type, numbered from 1, in place (a ParamRef fits in an A_Const's memory;
 * the tree is the caller's copy).  Analysed with variable parameters, each
 * takes the type its context gives it, as in PREPARE, and no input function
 * ever sees its text.  Type names (and their modifiers) are left alone.
 */
static bool
literals_to_params(Node *node, int *count)
{
	StaticAssertStmt(sizeof(ParamRef) <= sizeof(A_Const),
					 "a ParamRef must fit where an A_Const was");

	if (node == NULL)
		return false;
	check_stack_depth();
	/* a DEFAULT cannot hold a subquery (analysis refuses it): no need to look in */
	if (IsA(node, TypeName) || IsA(node, SubLink))
		return false;
	if (IsA(node, TypeCast))
		return literals_to_params(((TypeCast *) node)->arg, count);
	if (IsA(node, A_Const))
	{
		A_Const    *c = (A_Const *) node;

		if (!c->isnull && IsA(&c->val, String))
		{
			int			location = c->location;
			ParamRef   *p = (ParamRef *) node;

			memset(node, 0, sizeof(A_Const));
			p->type = T_ParamRef;
			p->number = ++(*count);
			p->location = location;
		}
		return false;
	}
	return raw_expression_tree_walker(node, literals_to_params, count);
}

/*
 * Does the type, a domain, or a domain it is based on, have a NOT NULL or
 * CHECK constraint?  Read from the catalogs: DomainHasConstraints() would
 * load the typcache, which plans the CHECK expressions.
 */
static bool
domain_has_constraints(Oid typid)
{
	while (OidIsValid(typid))
	{
		HeapTuple	tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(typid));
		Form_pg_type typ;
		Oid			base;
		bool		notnull;
		Relation	conrel;
		SysScanDesc scan;
		ScanKeyData key[2];
		bool		found = false;

		if (!HeapTupleIsValid(tup))
			return false;
		typ = (Form_pg_type) GETSTRUCT(tup);
		if (typ->typtype != TYPTYPE_DOMAIN)
		{
			ReleaseSysCache(tup);
			return false;
		}
		base = typ->typbasetype;
		notnull = typ->typnotnull;
		ReleaseSysCache(tup);
		if (notnull)
			return true;

		conrel = table_open(ConstraintRelationId, AccessShareLock);
		ScanKeyInit(&key[0], Anum_pg_constraint_conrelid, BTEqualStrategyNumber,
					F_OIDEQ, ObjectIdGetDatum(InvalidOid));
		ScanKeyInit(&key[1], Anum_pg_constraint_contypid, BTEqualStrategyNumber,
					F_OIDEQ, ObjectIdGetDatum(typid));
		scan = systable_beginscan(conrel, ConstraintRelidTypidNameIndexId, true,
								  NULL, 2, key);
		while (!found && HeapTupleIsValid(tup = systable_getnext(scan)))
			found = ((Form_pg_constraint) GETSTRUCT(tup))->contype == CONSTRAINT_CHECK;
		systable_endscan(scan);
		table_close(conrel, AccessShareLock);
		if (found)
			return true;
		typid = base;
	}
	return false;
}

/* ---------------------------------------------------------------- ADD COLUMN defaults */

static bool
volatile_func_checker(Oid func_id, void *context)
{
	return func_volatile(func_id) == PROVOLATILE_VOLATILE;
}

/* Finds the first volatile function in a transformed expression. */
static bool
find_volatile_walker(Node *node, DefaultCheck *dc)
{
	if (node == NULL)
		return false;
	if (IsA(node, FuncExpr) &&
		func_volatile(((FuncExpr *) node)->funcid) == PROVOLATILE_VOLATILE)
	{
		dc->volatile_func = get_func_name(((FuncExpr *) node)->funcid);
		return true;
	}
	if (check_functions_in_node(node, volatile_func_checker, NULL))
	{
		dc->volatile_func = pstrdup("a volatile operator or cast");
		return true;
	}
	return expression_tree_walker(node, find_volatile_walker, dc);
}

/*
 * Decides from pg_proc whether the default would be computed per row:
 * transformed and coerced to the column's type as ALTER TABLE does, then
 * contain_volatile_functions().  Its string literals are parameters here
 * (literals_to_params), so no input function runs.  Without a default, the
 * type's (a domain's) default counts, and a domain with constraints is
 * checked on every row.
 */
void
lint_check_default(void *arg)
{
	DefaultCheck *dc = arg;
	ParseState *pstate = make_parsestate(NULL);
	Oid			typid;
	int32		typmod;
	Node	   *expr = NULL;

	typenameTypeIdAndMod(pstate, dc->col->typeName, &typid, &typmod);
	if (dc->raw_default)
	{
		Node	   *raw = copyObject(dc->raw_default);
		Node	   *coerced;
		int			nparams = 0;
		Oid		   *paramtypes;

		literals_to_params(raw, &nparams);
		/* sized once: the parser would enlarge it one parameter at a time */
		paramtypes = palloc0(sizeof(Oid) * Max(nparams, 1));
		setup_parse_variable_parameters(pstate, &paramtypes, &nparams);
		expr = transformExpr(pstate, raw, EXPR_KIND_COLUMN_DEFAULT);
		coerced = coerce_to_target_type(pstate, expr, exprType(expr),
										typid, typmod, COERCION_ASSIGNMENT,
										COERCE_IMPLICIT_CAST, -1);
		if (coerced)
			expr = coerced;
	}
	else
		expr = get_typdefault(typid);
	if (expr && contain_volatile_functions(expr))
	{
		dc->is_volatile = true;
		find_volatile_walker(expr, dc);
	}
	dc->domain_checks = domain_has_constraints(typid);
}

/* ---------------------------------------------------------------- ALTER COLUMN TYPE */

/*
 * Does the planned conversion expression need a rewrite?  This follows
 * ATColumnChangeRequiresRewrite() in tablecmds.c (static there): the column
 * itself, binary-compatible relabelings, domains without constraints and
 * the timestamp <-> timestamptz conversions that the session's TimeZone
 * makes free are no rewrite; anything else is.
 */
static bool
change_requires_rewrite(Node *expr, AttrNumber attnum)
{
	for (;;)
	{
		if (expr == NULL)
			return true;
		if (IsA(expr, Var) && ((Var *) expr)->varattno == attnum)
			return false;
		else if (IsA(expr, RelabelType))
			expr = (Node *) ((RelabelType *) expr)->arg;
		else if (IsA(expr, CoerceToDomain))
		{
			CoerceToDomain *d = (CoerceToDomain *) expr;

			if (domain_has_constraints(d->resulttype))
				return true;
			expr = (Node *) d->arg;
		}
		else if (IsA(expr, FuncExpr))
		{
			FuncExpr   *f = (FuncExpr *) expr;

			if ((f->funcid == F_TIMESTAMPTZ_TIMESTAMP ||
				 f->funcid == F_TIMESTAMP_TIMESTAMPTZ) &&
				!TimestampTimestampTzRequiresRewrite() && f->args != NIL)
				expr = linitial(f->args);
			else
				return true;
		}
		else
			return true;
	}
}

/* Is there a coercion to a domain with constraints in the expression? */
static bool
checked_domain_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, CoerceToDomain) &&
		domain_has_constraints(((CoerceToDomain *) node)->resulttype))
		return true;
	return expression_tree_walker(node, checked_domain_walker, context);
}

/*
 * What ALTER TABLE would do without USING: coerce the column to the new
 * type (assignment coercion), plan the expression (which drops length
 * coercions that cannot fail, such as varchar(10) to varchar(20)) and look
 * at what is left.  A coercion to a domain with constraints is a rewrite
 * whatever else the expression holds (planning keeps it), and is decided
 * before planning, which would load the domain's CHECK expressions into the
 * typcache and plan them.
 */
void
lint_check_type_change(void *arg)
{
	TypeChangeCheck *tc = arg;
	ParseState *pstate = make_parsestate(NULL);
	Oid			typid;
	int32		typmod;
	Node	   *expr;

	typenameTypeIdAndMod(pstate, tc->typeName, &typid, &typmod);
	tc->new_type = format_type_with_typemod(typid, typmod);
	expr = (Node *) makeVar(1, tc->attnum, tc->atttypid, tc->atttypmod,
							tc->attcollation, 0);
	expr = coerce_to_target_type(pstate, expr, tc->atttypid, typid, typmod,
								 COERCION_ASSIGNMENT, COERCE_IMPLICIT_CAST, -1);
	if (expr == NULL)
	{
		tc->no_cast = true;
		tc->rewrite = true;
		return;
	}
	if (checked_domain_walker(expr, NULL))
	{
		tc->rewrite = true;
		return;
	}
	assign_expr_collations(pstate, expr);
	expr = (Node *) expression_planner((Expr *) expr);
	tc->rewrite = change_requires_rewrite(expr, tc->attnum);
}
