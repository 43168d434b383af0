/*-------------------------------------------------------------------------
 *
 * sqlfrag.c
 *	  Checks of the SQL fragments users hand to pg_shift (a backfill's set,
 *	  where and select, a sync's assignments and select lists): each is
 *	  parsed alone with the server's own parser, so a fragment that is more
 *	  than it claims (a second statement, a FROM, a trailing comment, an
 *	  unbalanced parenthesis) is refused before it is pasted into a
 *	  statement.  Parsing only: no catalog access, no locks.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "utils/memutils.h"

#include "pg_shift.h"

static bool
contains_param_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, ParamRef))
		return true;
	return raw_expression_tree_walker(node, contains_param_walker, context);
}

Node *
shift_parse_fragment(const char *owner, const char *what, const char *prefix, const char *text)
{
	char	   *sql = psprintf("%s%s", prefix, text);
	List	   *stmts;
	Node	   *stmt;
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		stmts = raw_parser(sql, RAW_PARSE_DEFAULT);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		ereport(ERROR,
				(errcode(edata->sqlerrcode),
				 errmsg("%s of %s does not parse: %s", what, owner, edata->message),
				 errdetail("It was read as: %s", sql)));
	}
	PG_END_TRY();
	if (list_length(stmts) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("%s of %s must not contain several statements", what, owner)));
	stmt = linitial_node(RawStmt, stmts)->stmt;
	if (contains_param_walker(stmt, NULL))
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("%s of %s must not use parameters ($1, ...)", what, owner)));
	return stmt;
}

bool
shift_is_plain_select(Node *stmt, bool with_where)
{
	SelectStmt *s;

	if (!IsA(stmt, SelectStmt))
		return false;
	s = (SelectStmt *) stmt;
	return s->op == SETOP_NONE && s->distinctClause == NIL && s->intoClause == NULL &&
		s->fromClause == NIL && (s->whereClause != NULL) == with_where &&
		s->groupClause == NIL && s->havingClause == NULL && s->windowClause == NIL &&
		s->valuesLists == NIL && s->sortClause == NIL && s->limitOffset == NULL &&
		s->limitCount == NULL && s->lockingClause == NIL && s->withClause == NULL &&
		s->targetList != NIL;
}
