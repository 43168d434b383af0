/*-------------------------------------------------------------------------
 *
 * sqlfrag.c
 *	  Checks of the SQL fragments users hand to pg_shift (a backfill's set,
 *	  where, select and throttle_query, a sync's assignments and select
 *	  lists): each is parsed alone with the server's own parser, so a
 *	  fragment that is more than it claims (a second statement, a FROM, a
 *	  trailing comment, an unbalanced parenthesis) is refused before it is
 *	  pasted into a statement.  shift_internal._select_list splits a select list into
 *	  its expressions (_select_items also into the names they are given);
 *	  _rename_column_refs renames a column where an expression, a CHECK
 *	  constraint or a CREATE INDEX statement refers to it.  Parsing only: no
 *	  catalog access, no locks.
 *
 * Every text is bounded first (shift_check_size): a parse tree takes many
 * times the text's size in memory, so an unbounded fragment could exhaust a
 * backend's memory (an OOM kill restarts the whole cluster).  The work on a
 * fragment is linear in its size.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/htup_details.h"
#include "funcapi.h"
#include "catalog/pg_type.h"
#include "common/keywords.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "mb/pg_wchar.h"
#include "parser/parser.h"
#include "parser/scanner.h"
/* after scanner.h, which it needs: the token numbers (PARAM) */
#include "parser/gram.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "pg_shift.h"

PG_FUNCTION_INFO_V1(shift_select_list);
PG_FUNCTION_INFO_V1(shift_plain_column);
PG_FUNCTION_INFO_V1(shift_select_items);
PG_FUNCTION_INFO_V1(shift_rename_column_refs);
PG_FUNCTION_INFO_V1(shift_check_query);

/*
 * Refuses a text longer than limit bytes (SQLSTATE 54000), naming it, its
 * size and the limit.  what is the text ("the SQL to lint", 'set of backfill
 * job "x"'); hint says what to do instead.
 */
void
shift_check_size(const char *what, Size size, Size limit, const char *hint)
{
	if (size <= limit)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 errmsg("%s is too long: %zu bytes, the limit is %zu", what, size, limit),
			 errdetail("The limit bounds the memory and time pg_shift spends on one input: a text is parsed in one piece, and its parse tree takes many times its size in memory."),
			 errhint("%s", hint)));
}

/*
 * Refuses a text on which PostgreSQL's scanner (scan.l) would take too long.
 * The scanner is linear except in runs of operator characters
 * (~!@#^&|`?+-*%<>= and the slash): there a token may match the rest of the
 * run and give all but its first characters back (an operator cut where a
 * comment starts, trailing signs trimmed from an operator, a comment opener
 * followed by more operator characters), so a run of L characters can take
 * L * L steps: comment openers nested 20 000 deep took 2.7 s, "+" 40 000
 * times 2.9 s, and no query cancel is seen meanwhile.  The sum of L * L over
 * the text's runs (wherever they are, in a comment or a string too) bounds
 * that work; a real statement's runs are a few characters long, and even a
 * thousand 100-character banner lines of dashes stay within the limit.
 */
void
shift_check_scannable(const char *what, const char *text, Size len, uint64 limit)
{
	static bool op_char[256];
	static bool op_char_ready = false;
	uint64		cost = 0;
	uint64		run = 0;
	Size		i;

	if (!op_char_ready)
	{
		const char *c;

		for (c = "~!@#^&|`?+-*/%<>="; *c; c++)
			op_char[(unsigned char) *c] = true;
		op_char_ready = true;
	}
	for (i = 0; i < len; i++)
	{
		if (op_char[(unsigned char) text[i]])
			run++;
		else if (run > 0)
		{
			cost += run * run;
			run = 0;
		}
	}
	cost += run * run;
	if (cost > limit)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s has too many operator characters in a row", what),
				 errdetail("PostgreSQL's scanner takes time quadratic in the length of a run of operator characters (~!@#^&|`?+-*/%%<>=); the runs of this text come to %llu units of that work, the limit is %llu.",
						   (unsigned long long) cost, (unsigned long long) limit),
				 errhint("Break long runs of operator characters (a long line of dashes or stars in a comment, many signs in a row) with spaces.")));
}

/* The tokens of a text: where each starts, and its code. */
typedef struct Tokens
{
	int			n;
	int		   *at;
	int		   *code;
} Tokens;

static void
scan_tokens(const char *sql, Tokens *t)
{
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext scan_cxt = AllocSetContextCreate(caller, "pg_shift fragment scan",
												   ALLOCSET_DEFAULT_SIZES);
	core_yy_extra_type yyextra;
	core_yyscan_t scanner;
	core_YYSTYPE yylval;
	YYLTYPE		yylloc;
	int			tok;
	int			size = 64;

	t->n = 0;
	t->at = palloc(sizeof(int) * size);
	t->code = palloc(sizeof(int) * size);
	MemoryContextSwitchTo(scan_cxt);
	scanner = scanner_init(sql, &yyextra, &ScanKeywords, ScanKeywordTokens);
	while ((tok = core_yylex(&yylval, &yylloc, scanner)) != 0)
	{
		if (t->n == size)
		{
			size *= 2;
			MemoryContextSwitchTo(caller);
			t->at = repalloc(t->at, sizeof(int) * size);
			t->code = repalloc(t->code, sizeof(int) * size);
			MemoryContextSwitchTo(scan_cxt);
		}
		t->at[t->n] = yylloc;
		t->code[t->n++] = tok;
	}
	scanner_finish(scanner);
	MemoryContextSwitchTo(caller);
	MemoryContextDelete(scan_cxt);
}

/*
 * The offsets in sql of its tokens of kind want (a token code such as ','
 * or PARAM), in order: a comma in a string, a quoted name or a comment is
 * not a token.  The array is in the caller's memory context, *n its length.
 */
static int *
token_offsets(const char *sql, int want, int *n)
{
	Tokens		t;

	scan_tokens(sql, &t);
	*n = 0;
	for (int i = 0; i < t.n; i++)
		if (t.code[i] == want)
			t.at[(*n)++] = t.at[i];
	pfree(t.code);
	return t.at;
}

/*
 * Does sql use a parameter ($1, ...)?  Read from its tokens rather than its
 * tree: the parser makes a ParamRef of each PARAM token and of nothing
 * else, and a tree walker knows only expressions and the DML statements,
 * while a throttle_query may parse as any statement at all.
 */
static bool
has_parameter(const char *sql)
{
	int			n;

	pfree(token_offsets(sql, PARAM, &n));
	return n > 0;
}

ErrorData *
shift_catch(void (*fn) (void *arg), void *arg)
{
	MemoryContext cxt = CurrentMemoryContext;
	ErrorData  *volatile failure = NULL;

	PG_TRY();
	{
		fn(arg);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		failure = CopyErrorData();
		FlushErrorState();
	}
	PG_END_TRY();
	return failure;
}

typedef struct RawParse
{
	const char *sql;
	List	   *stmts;
} RawParse;

static void
raw_parse(void *arg)
{
	RawParse   *rp = arg;

	rp->stmts = raw_parser(rp->sql, RAW_PARSE_DEFAULT);
}

List *
shift_raw_parse(const char *sql, ErrorData **error)
{
	RawParse	rp = {sql, NIL};

	/* raw parsing takes no lock and no buffer: nothing to roll back */
	*error = shift_catch(raw_parse, &rp);
	return *error ? NIL : rp.stmts;
}

/*
 * The error's position in sql as a byte offset (-1: none).  SPI's error
 * callback, and the callers' own, set the internal position with sql as
 * the internal query; a parser error raised directly has a cursor position.
 */
static int
error_offset(const char *sql, ErrorData *edata)
{
	int			pos = 0;
	int			at = 0;
	int			i;

	if (edata->internalpos > 0 && edata->internalquery != NULL &&
		strcmp(edata->internalquery, sql) == 0)
		pos = edata->internalpos;
	else if (edata->cursorpos > 0 && edata->internalquery == NULL)
		pos = edata->cursorpos;
	if (pos <= 0)
		return -1;
	for (i = 1; i < pos && sql[at] != '\0'; i++)
		at += pg_mblen(sql + at);
	return at;
}

void
shift_raise_in_fragment(const char *owner, const char *sql, int nspans,
						const ShiftFragSpan *spans, ErrorData *edata)
{
	int			at = error_offset(sql, edata);
	int			i;

	for (i = 0; at >= 0 && i < nspans; i++)
	{
		const ShiftFragSpan *f = &spans[i];
		int			ch;

		if (at < f->from || at >= f->to)
			continue;
		ch = pg_mbstrlen_with_len(f->text, at - f->from) + 1;
		ereport(ERROR,
				(errcode(edata->sqlerrcode),
				 errmsg("%s of %s: %s", f->what, owner, edata->message),
				 edata->detail ? errdetail("%s The %s given was: %s (the error is at character %d of it).",
										   edata->detail, f->what, f->text, ch) :
				 errdetail("The %s given was: %s (the error is at character %d of it).",
						   f->what, f->text, ch),
				 edata->hint ? errhint("%s", edata->hint) : 0));
	}
	ReThrowError(edata);
}

Node *
shift_parse_fragment(const char *owner, const char *what, const char *prefix, const char *text)
{
	char	   *sql;
	List	   *stmts;
	Node	   *stmt;
	ErrorData  *edata;
	Size		size = strlen(text);

	if (size > SHIFT_MAX_FRAGMENT)
		shift_check_size(psprintf("%s of %s", what, owner), size, SHIFT_MAX_FRAGMENT,
						 SHIFT_FRAGMENT_HINT);
	shift_check_scannable(psprintf("%s of %s", what, owner), text, size,
						  SHIFT_MAX_FRAGMENT_SCAN_COST);
	sql = psprintf("%s%s", prefix, text);
	stmts = shift_raw_parse(sql, &edata);
	if (edata != NULL)
		ereport(ERROR,
				(errcode(edata->sqlerrcode),
				 errmsg("%s of %s does not parse: %s", what, owner, edata->message),
				 errdetail("It was read as: %s", sql)));
	if (list_length(stmts) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("%s of %s must not contain several statements", what, owner)));
	stmt = linitial_node(RawStmt, stmts)->stmt;
	if (has_parameter(sql))
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

static bool
fragment_is(ShiftFragmentKind kind, Node *stmt)
{
	UpdateStmt *u = (UpdateStmt *) stmt;

	switch (kind)
	{
		case SHIFT_FRAGMENT_SET:
			return IsA(stmt, UpdateStmt) && !u->whereClause && u->fromClause == NIL &&
				u->returningList == NIL && !u->withClause;
		case SHIFT_FRAGMENT_WHERE:
			return shift_is_plain_select(stmt, true);
		case SHIFT_FRAGMENT_SELECT:
			return shift_is_plain_select(stmt, false);
		case SHIFT_FRAGMENT_QUERY:
			return IsA(stmt, SelectStmt);
	}
	return false;
}

void
shift_check_fragment(const char *owner, const char *what, const char *prefix, const char *text,
					 ShiftFragmentKind kind, const char *must_be, bool show_text, const char *hint)
{
	if (text == NULL || fragment_is(kind, shift_parse_fragment(owner, what, prefix, text)))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_SYNTAX_ERROR),
			 errmsg("%s of %s must be %s", what, owner, must_be),
			 show_text ? errdetail("It was: %s", text) : 0,
			 hint ? errhint("%s", hint) : 0));
}

void
shift_check_select_fragment(const char *owner, const char *text)
{
	shift_check_fragment(owner, "select", "SELECT ", text, SHIFT_FRAGMENT_SELECT,
						 "a list of expressions only", true,
						 "Write select => 'id::bigint, lower(email)'; the source table is FROM.");
}

/* ---------------------------------------------------------------- shift_internal._select_list */

/* Does "SELECT (item)" parse as a SELECT of exactly one expression? */
static bool
paren_expression(const char *item)
{
	ErrorData  *edata;
	List	   *stmts = shift_raw_parse(psprintf("SELECT (%s)", item), &edata);

	return edata == NULL && list_length(stmts) == 1 &&
		IsA(linitial_node(RawStmt, stmts)->stmt, SelectStmt) &&
		list_length(((SelectStmt *) linitial_node(RawStmt, stmts)->stmt)->targetList) == 1;
}

/*
 * Where the name an item of a select list gives its expression starts: the
 * offset in item of its AS keyword, or of the name itself when it has no AS
 * ("a b").  The name is the item's last token (comments are not tokens).
 */
static int
name_start(const char *item)
{
	Tokens		t;
	int			start;

	scan_tokens(item, &t);
	if (t.n == 0)
		elog(ERROR, "could not find the name in select item \"%s\"", item);
	start = (t.n >= 2 && t.code[t.n - 2] == AS) ? t.at[t.n - 2] : t.at[t.n - 1];
	pfree(t.at);
	pfree(t.code);
	return start;
}

/*
 * The items of select list list_text, split as shift_internal._select_list
 * describes: n expressions into *exprs and, if names is not NULL, the name
 * each one is given ("expr AS name"; NULL if none) into *names.  With names
 * NULL, an item that names its expression is refused.
 */
static int
split_select_list(text *list_text, Datum **exprs, Datum **names)
{
	const char *prefix = "SELECT ";
	char	   *list;
	char	   *sql;
	SelectStmt *s;
	ListCell   *lc;
	int			n;
	int			i = 0;
	int		   *starts;
	char	  **given;
	int		   *commas;
	int			ncommas;
	int			next_comma = 0;
	Datum	   *out;
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext item_cxt;

	list = text_to_cstring(list_text);
	sql = psprintf("%s%s", prefix, list);
	s = (SelectStmt *) shift_parse_fragment("the select list", "select", prefix, list);
	if (!shift_is_plain_select((Node *) s, false))
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("select must be a list of expressions only"),
				 errdetail("It was: %s", list),
				 errhint("Write select => 'id::bigint, lower(email)'; the source table is FROM.")));
	n = list_length(s->targetList);
	starts = palloc(sizeof(int) * (n + 1));
	given = palloc0(sizeof(char *) * n);
	foreach(lc, s->targetList)
	{
		ResTarget  *rt = lfirst(lc);

		if (rt->name != NULL && names == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_SYNTAX_ERROR),
					 errmsg("select must not name its expressions (\"AS %s\")", rt->name),
					 errhint("The expressions fill the columns in the order given.")));
		if (IsA(rt->val, ColumnRef) && IsA(llast(((ColumnRef *) rt->val)->fields), A_Star))
			ereport(ERROR,
					(errcode(ERRCODE_SYNTAX_ERROR),
					 errmsg("select must list its expressions, not *")));
		given[i] = rt->name;
		starts[i++] = rt->location;
	}
	starts[n] = strlen(sql);
	commas = token_offsets(sql, ',', &ncommas);
	out = palloc(sizeof(Datum) * n);
	if (names != NULL)
		*names = palloc0(sizeof(Datum) * n);
	item_cxt = AllocSetContextCreate(caller, "pg_shift select list item",
									 ALLOCSET_DEFAULT_SIZES);
	for (i = 0; i < n; i++)
	{
		int			len = starts[i + 1] - starts[i];
		char	   *item;

		CHECK_FOR_INTERRUPTS();
		MemoryContextSwitchTo(item_cxt);
		item = pnstrdup(sql + starts[i], len);
		if (i < n - 1)
		{
			/*
			 * Cut at the separating comma: the last comma token before the
			 * next item (a comment after the expression may hold commas).
			 * The items come in order, so the commas are walked once.
			 */
			int			cut = -1;

			while (next_comma < ncommas && commas[next_comma] < starts[i + 1])
				next_comma++;
			if (next_comma > 0 && commas[next_comma - 1] >= starts[i])
				cut = commas[next_comma - 1];
			if (cut < 0)
				elog(ERROR, "could not split the select list at item %d", i + 1);
			item[cut - starts[i]] = '\0';
		}
		/* the name it gives its expression goes, with its AS */
		if (given[i] != NULL)
			item[name_start(item)] = '\0';
		/* trim blanks around it */
		while (*item == ' ' || *item == '\t' || *item == '\n' || *item == '\r')
			item++;
		len = strlen(item);
		while (len > 0 && (item[len - 1] == ' ' || item[len - 1] == '\t' ||
						   item[len - 1] == '\n' || item[len - 1] == '\r'))
			item[--len] = '\0';

		/*
		 * It is used as "(item)": a trailing -- comment would swallow the
		 * ")".  Inside the list, the line break that ended one was trimmed
		 * above: put it back.  At the end of the list, refuse the comment.
		 */
		if ((i < n - 1 || given[i] != NULL) && !paren_expression(item))
			item = psprintf("%s\n", item);
		s = (SelectStmt *) shift_parse_fragment("the select list", "select item", "SELECT (",
												psprintf("%s)", item));
		if (!shift_is_plain_select((Node *) s, false) || list_length(s->targetList) != 1)
			ereport(ERROR,
					(errcode(ERRCODE_SYNTAX_ERROR),
					 errmsg("select item %d is not an expression on its own: %s", i + 1, item),
					 errhint("End a -- comment inside the list with a line break, or use /* */.")));
		MemoryContextSwitchTo(caller);
		out[i] = CStringGetTextDatum(item);
		if (names != NULL && given[i] != NULL)
			(*names)[i] = CStringGetTextDatum(given[i]);
		MemoryContextReset(item_cxt);
	}
	MemoryContextDelete(item_cxt);
	*exprs = out;
	return n;
}

/*
 * shift_internal._select_list(select text) returns text[]
 *
 * The expressions of a select list, one per element, each checked to stand
 * alone: "id::bigint, lower(email)" -> {"id::bigint", "lower(email)"}.
 * A list with a FROM, a star, an alias or anything past the expressions is
 * refused.
 *
 * Linear in the list's length: the list is parsed once and scanned once for
 * its commas; each item is then cut out and parsed on its own in a memory
 * context reset per item.
 */
Datum
shift_select_list(PG_FUNCTION_ARGS)
{
	Datum	   *out;
	int			n;

	/* before the text is even detoasted */
	shift_check_size("select of the select list",
					 toast_raw_datum_size(PG_GETARG_DATUM(0)) - VARHDRSZ,
					 SHIFT_MAX_FRAGMENT, SHIFT_FRAGMENT_HINT);
	n = split_select_list(PG_GETARG_TEXT_PP(0), &out, NULL);
	PG_RETURN_ARRAYTYPE_P(construct_array(out, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * shift_internal._select_items(select text, OUT expressions text[], OUT names text[])
 *
 * A select list whose items may name their expressions, as a version's view
 * does ("id, rating AS score, price * 100 cents"): the expressions, split
 * and checked as by _select_list, and the name each is given (NULL where
 * none), as the server's parser reads it (folded to lower case unless
 * quoted).  Same bounds as _select_list.
 */
Datum
shift_select_items(PG_FUNCTION_ARGS)
{
	Datum	   *exprs;
	Datum	   *names;
	bool	   *nulls;
	int			dims[1];
	int			lbs[1] = {1};
	int			n;
	int			i;
	TupleDesc	tupdesc;
	Datum		values[2];
	bool		isnull[2] = {false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	shift_check_size("select of the select list",
					 toast_raw_datum_size(PG_GETARG_DATUM(0)) - VARHDRSZ,
					 SHIFT_MAX_FRAGMENT, SHIFT_FRAGMENT_HINT);
	n = split_select_list(PG_GETARG_TEXT_PP(0), &exprs, &names);
	nulls = palloc(sizeof(bool) * n);
	for (i = 0; i < n; i++)
		nulls[i] = names[i] == (Datum) 0;
	dims[0] = n;
	values[0] = PointerGetDatum(construct_array(exprs, n, TEXTOID, -1, false, TYPALIGN_INT));
	values[1] = PointerGetDatum(construct_md_array(names, nulls, 1, dims, lbs, TEXTOID, -1,
												   false, TYPALIGN_INT));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, isnull)));
}

/* ---------------------------------------------------------------- plain columns */

char *
shift_plain_column_name(const char *expr)
{
	ErrorData  *edata;
	List	   *stmts = shift_raw_parse(psprintf("SELECT %s", expr), &edata);
	SelectStmt *sel;
	Node	   *v;
	ColumnRef  *cr;

	if (edata != NULL)
	{
		/* text that does not parse is not a column; anything else is raised */
		if (edata->sqlerrcode != ERRCODE_SYNTAX_ERROR)
			ReThrowError(edata);
		FreeErrorData(edata);
		return NULL;
	}
	if (list_length(stmts) != 1)
		return NULL;
	sel = (SelectStmt *) linitial_node(RawStmt, stmts)->stmt;
	if (!shift_is_plain_select((Node *) sel, false) || list_length(sel->targetList) != 1 ||
		((ResTarget *) linitial(sel->targetList))->name != NULL)
		return NULL;
	v = ((ResTarget *) linitial(sel->targetList))->val;
	if (IsA(v, TypeCast))
		v = ((TypeCast *) v)->arg;
	if (!IsA(v, ColumnRef))
		return NULL;
	cr = (ColumnRef *) v;
	if (list_length(cr->fields) != 1 || !IsA(linitial(cr->fields), String))
		return NULL;
	return strVal(linitial(cr->fields));
}

/*
 * shift_internal._plain_column(expr text) returns text
 *
 * The column an expression of a select list is, if it is nothing but one
 * column, maybe cast: 'id' -> id, '"Id"::bigint' -> Id; NULL for anything
 * else.  sync_create matches a select list to a key with it, by the same
 * reading as the sync's trigger (sync_plain_column).
 */
Datum
shift_plain_column(PG_FUNCTION_ARGS)
{
	char	   *expr;
	char	   *name;

	shift_check_size("expression", toast_raw_datum_size(PG_GETARG_DATUM(0)) - VARHDRSZ,
					 SHIFT_MAX_FRAGMENT, SHIFT_FRAGMENT_HINT);
	expr = text_to_cstring(PG_GETARG_TEXT_PP(0));
	shift_check_scannable("expression", expr, strlen(expr), SHIFT_MAX_FRAGMENT_SCAN_COST);
	name = shift_plain_column_name(expr);
	if (name == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(name));
}

/* ---------------------------------------------------------------- shift.rename_column_refs */

/* The index of the token starting at offset at (a node's location). */
static int
token_at(const Tokens *t, int at)
{
	int			lo = 0;
	int			hi = t->n - 1;

	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;

		if (t->at[mid] == at)
			return mid;
		if (t->at[mid] < at)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	elog(ERROR, "no token starts at offset %d", at);
	return -1;					/* keep the compiler quiet */
}

typedef struct RenameRefs
{
	const char *sql;
	const char *old;
	Tokens		tokens;
	bool	   *hit;			/* per token: a name to replace */
} RenameRefs;

/*
 * Marks the last field of every ColumnRef naming the column: its token is
 * the ColumnRef's first one (its location) or, qualified (t.col), the one
 * 2 * (fields - 1) on, the fields being separated by '.' tokens.
 */
static bool
rename_walker(Node *node, RenameRefs *rr)
{
	if (node == NULL)
		return false;
	if (IsA(node, ColumnRef))
	{
		ColumnRef  *cr = (ColumnRef *) node;
		Node	   *last = llast(cr->fields);
		int			first;
		int			i;

		if (!IsA(last, String) || strcmp(strVal(last), rr->old) != 0)
			return false;
		first = token_at(&rr->tokens, cr->location);
		for (i = 1; i < list_length(cr->fields); i++)
			if (first + 2 * i >= rr->tokens.n || rr->tokens.code[first + 2 * i - 1] != '.')
				elog(ERROR, "could not find field %d of the column reference at offset %d",
					 i + 1, cr->location);
		rr->hit[first + 2 * (list_length(cr->fields) - 1)] = true;
		return false;
	}
	return raw_expression_tree_walker(node, rename_walker, (void *) rr);
}

/*
 * Marks the names among the elements of the parenthesized list whose '('
 * is token open (an index's columns or its INCLUDE list): an element that
 * is a name (elems' IndexElem.name) starts with it.  The expressions are
 * walked for their column references.  Returns the token of the ')'.
 */
static int
rename_index_elems(RenameRefs *rr, int open, List *elems)
{
	const Tokens *t = &rr->tokens;
	ListCell   *lc = list_head(elems);
	int			depth = 0;
	int			i;
	bool		start = true;

	for (i = open + 1; i < t->n; i++)
	{
		int			code = t->code[i];

		if (start)
		{
			IndexElem  *e;

			if (lc == NULL)
				elog(ERROR, "more index elements than parsed at offset %d", t->at[i]);
			e = lfirst_node(IndexElem, lc);
			if (e->name != NULL && strcmp(e->name, rr->old) == 0)
				rr->hit[i] = true;
			if (e->expr != NULL)
				rename_walker(e->expr, rr);
			lc = lnext(elems, lc);
			start = false;
		}
		if (code == '(' || code == '[')
			depth++;
		else if ((code == ')' || code == ']') && depth > 0)
			depth--;
		else if (code == ')')
			break;
		else if (code == ',' && depth == 0)
			start = true;
	}
	if (i >= t->n || lc != NULL)
		elog(ERROR, "could not match the index elements to their text");
	return i;
}

/*
 * Where the name starting at offset at ends: a quoted name at its closing
 * quote (a doubled one is part of it), U&"..." likewise, a bare word or
 * keyword at its last identifier character (scan.l's ident_cont).
 */
static int
name_end(const char *sql, int at)
{
	const char *p = sql + at;

	if ((p[0] == 'U' || p[0] == 'u') && p[1] == '&' && p[2] == '"')
		p += 2;
	if (*p == '"')
	{
		for (p++; *p; p++)
		{
			if (*p == '"' && p[1] == '"')
				p++;
			else if (*p == '"')
				return p + 1 - sql;
		}
		elog(ERROR, "unterminated quoted name at offset %d", at);
	}
	while (IS_HIGHBIT_SET(*p) || isalnum((unsigned char) *p) || *p == '_' || *p == '$')
		p++;
	return p - sql;
}

/*
 * shift.rename_column_refs(expr text, old text, new text) returns text
 *
 * expr with every reference to column old replaced by new, quoted as
 * needed; every other byte is kept.  expr is an expression ("qty >= 0"), a
 * CHECK constraint's definition ("CHECK ((qty > 0)) NOT VALID", as
 * pg_get_constraintdef writes it) or a CREATE INDEX statement (as
 * pg_get_indexdef writes it).  A reference is what the server's parser
 * reads as one: a column reference whose last field is old (qty, t.qty),
 * or an index's key or INCLUDE column of that name; a type, a function, an
 * operator class, an access method, a schema or a string spelled like the
 * column stays as it is.  An expression is tried first, then a CREATE
 * INDEX statement, then a constraint (as ALTER TABLE ... ADD <it>); other
 * constraints than CHECK are refused (their column lists carry no
 * positions: the caller builds them from the catalog).
 *
 * Linear in expr's size: one parse, one scan, one walk of the tree.
 */
Datum
shift_rename_column_refs(PG_FUNCTION_ARGS)
{
	static const char *const prefixes[] = {"SELECT ", "", "ALTER TABLE x ADD "};
	RenameRefs	rr;
	char	   *expr;
	char	   *sql = NULL;
	const char *newname;
	Node	   *stmt = NULL;
	int			kind;
	int			plen = 0;
	int			i;
	StringInfoData out;
	int			copied;

	shift_check_size("expression", toast_raw_datum_size(PG_GETARG_DATUM(0)) - VARHDRSZ,
					 SHIFT_MAX_FRAGMENT, SHIFT_FRAGMENT_HINT);
	expr = text_to_cstring(PG_GETARG_TEXT_PP(0));
	shift_check_scannable("expression", expr, strlen(expr), SHIFT_MAX_FRAGMENT_SCAN_COST);
	rr.old = text_to_cstring(PG_GETARG_TEXT_PP(1));
	newname = quote_identifier(text_to_cstring(PG_GETARG_TEXT_PP(2)));

	for (kind = 0; kind < lengthof(prefixes) && stmt == NULL; kind++)
	{
		ErrorData  *edata;
		List	   *stmts;
		Node	   *s;

		sql = psprintf("%s%s", prefixes[kind], expr);
		stmts = shift_raw_parse(sql, &edata);
		if (edata != NULL)
		{
			if (edata->sqlerrcode != ERRCODE_SYNTAX_ERROR)
				ReThrowError(edata);
			FreeErrorData(edata);
			continue;
		}
		if (list_length(stmts) != 1)
			continue;
		s = linitial_node(RawStmt, stmts)->stmt;
		if (kind == 0 && shift_is_plain_select(s, false) &&
			list_length(((SelectStmt *) s)->targetList) == 1 &&
			((ResTarget *) linitial(((SelectStmt *) s)->targetList))->name == NULL)
			stmt = s;
		else if (kind == 1 && IsA(s, IndexStmt))
			stmt = s;
		else if (kind == 2 && IsA(s, AlterTableStmt) &&
				 list_length(((AlterTableStmt *) s)->cmds) == 1 &&
				 linitial_node(AlterTableCmd, ((AlterTableStmt *) s)->cmds)->subtype == AT_AddConstraint)
			stmt = s;
		if (stmt != NULL)
			plen = strlen(prefixes[kind]);
	}
	if (stmt == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("cannot rename column \"%s\" in text that is not an expression, a constraint or a CREATE INDEX statement", rr.old),
				 errdetail("The text was: %s", expr)));

	rr.sql = sql;
	scan_tokens(sql, &rr.tokens);
	rr.hit = palloc0(sizeof(bool) * (rr.tokens.n + 1));
	if (IsA(stmt, SelectStmt))
		rename_walker(((ResTarget *) linitial(((SelectStmt *) stmt)->targetList))->val, &rr);
	else if (IsA(stmt, IndexStmt))
	{
		IndexStmt  *ix = (IndexStmt *) stmt;
		int			open = token_at(&rr.tokens, ix->relation->location);
		int			close;

		/* the key columns' list: the first '(' after the table's name */
		while (open < rr.tokens.n && rr.tokens.code[open] != '(')
			open++;
		close = rename_index_elems(&rr, open, ix->indexParams);
		if (ix->indexIncludingParams != NIL)
		{
			if (close + 2 >= rr.tokens.n || rr.tokens.code[close + 1] != INCLUDE ||
				rr.tokens.code[close + 2] != '(')
				elog(ERROR, "could not find the INCLUDE list of the index");
			rename_index_elems(&rr, close + 2, ix->indexIncludingParams);
		}
		rename_walker(ix->whereClause, &rr);
	}
	else
	{
		Constraint *c = (Constraint *) linitial_node(AlterTableCmd,
													 ((AlterTableStmt *) stmt)->cmds)->def;

		if (!IsA(c, Constraint) || c->contype != CONSTR_CHECK)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot rename column \"%s\" in a constraint other than CHECK", rr.old),
					 errdetail("The constraint was: %s", expr)));
		rename_walker(c->raw_expr, &rr);
	}

	/* the text again, each name marked replaced */
	initStringInfo(&out);
	copied = plen;
	for (i = 0; i < rr.tokens.n; i++)
	{
		int			at = rr.tokens.at[i];
		int			end;

		if (!rr.hit[i])
			continue;
		if (at < plen)
			elog(ERROR, "column reference in the prefix at offset %d", at);
		if (rr.tokens.code[i] == UIDENT && i + 1 < rr.tokens.n && rr.tokens.code[i + 1] == UESCAPE)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot rename column \"%s\" written with UESCAPE", rr.old),
					 errdetail("The text was: %s", expr),
					 errhint("Write the column's name without UESCAPE.")));
		end = name_end(sql, at);
		appendBinaryStringInfo(&out, sql + copied, at - copied);
		appendStringInfoString(&out, newname);
		copied = end;
	}
	appendStringInfoString(&out, sql + copied);
	PG_RETURN_TEXT_P(cstring_to_text(out.data));
}

/* ---------------------------------------------------------------- shift_internal._check_query */

/*
 * shift_internal._check_query(what text, sql text) returns void
 *
 * Refuses sql unless it is one query (a SELECT, VALUES or TABLE, with a WITH
 * clause or set operations if it likes) and nothing else: no second
 * statement, no SELECT INTO, no parameters (SQLSTATE 42601); one longer than
 * a fragment may be, or that the scanner would take too long on, with
 * 54000.  What the query reads is its caller's business: it runs as the
 * caller.
 */
Datum
shift_check_query(PG_FUNCTION_ARGS)
{
	char	   *what = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *sql = text_to_cstring(PG_GETARG_TEXT_PP(1));
	Node	   *stmt = shift_parse_fragment(what, "the query", "", sql);

	if (!IsA(stmt, SelectStmt) || ((SelectStmt *) stmt)->intoClause != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("the query of %s must be a SELECT, VALUES or TABLE query", what),
				 errdetail("It was: %s", sql)));
	PG_RETURN_VOID();
}
