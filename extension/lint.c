/*-------------------------------------------------------------------------
 *
 * lint.c
 *	  Migration lint on PostgreSQL's own parser: shift.lint(sql) and
 *	  shift.lint_script(parts), one row per risky statement.
 *
 * The SQL is parsed with raw_parser(), exactly as the server would parse it
 * to run it, and each statement's raw tree is walked: no SQL is matched
 * with patterns.  Rules need context from earlier statements of the same
 * input (a table created above is new and empty; a CHECK (col IS NOT NULL)
 * validated above makes SET NOT NULL cheap; which lock_timeout is in force
 * after SET, SET LOCAL, RESET, BEGIN and COMMIT), so statements are linted
 * in order with a LintState that carries it.
 *
 * Nothing is executed and nothing is locked but system catalogs: relations
 * are looked up by name without a lock (and without the schema USAGE check,
 * so that linting never fails on privileges).  Two rules need parse analysis
 * (the volatility of an ADD COLUMN default, from pg_proc; whether an ALTER
 * COLUMN TYPE rewrites): that runs in an internal subtransaction, so that a
 * failure (an unknown function, a type that does not exist yet) is caught,
 * rolled back and reported as "could not tell".  The functions are
 * therefore PARALLEL UNSAFE.
 *
 * Lint runs no user code (see lint_analyze.c).  The rules are in
 * lint_rules.c and lint_alter.c, the facts they look up in lint_facts.c,
 * and findings and shift:allow comments in lint_report.c; this file parses
 * each part of the input and hands its statements, in order, to
 * lint_statement.
 *
 * Every input is bounded (shift_check_size, SQLSTATE 54000), and the work is
 * linear in it: earlier statements' facts are found through hash tables, and
 * each statement is linted in a memory context reset after it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/detoast.h"
#include "catalog/pg_type.h"
#include "common/keywords.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "parser/scanner.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "pg_shift.h"
#include "lint.h"

PG_FUNCTION_INFO_V1(shift_lint);
PG_FUNCTION_INFO_V1(shift_lint_script);

/* ---------------------------------------------------------------- parts */

/*
 * Where a statement's own text starts: its first token, read by the core
 * scanner (scan.l) from start, just after the previous statement's ';' (or
 * at the start of the part), where the parser's scanner was in its initial
 * state too; to, its end, if it has none.  Blanks and comments before it
 * are skipped exactly as the parser skipped them.
 */
static int
first_token(const char *sql, int start, int to)
{
	core_yy_extra_type extra;
	core_yyscan_t scanner;
	core_YYSTYPE yylval;
	YYLTYPE		yylloc;
	int			pos = to;

	scanner = scanner_init(pnstrdup(sql + start, to - start), &extra, &ScanKeywords,
						   ScanKeywordTokens);
	/* the parser gave them */
	extra.escape_string_warning = false;
	if (core_yylex(&yylval, &yylloc, scanner) != 0)
		pos = start + yylloc;
	scanner_finish(scanner);
	return pos;
}

/*
 * The line of byte offset pos, counting on from (*from, *line): statements
 * come in order, so a part is scanned once however many it holds.
 */
static int
line_at(const char *sql, int pos, int *from, int *line)
{
	for (; *from < pos && sql[*from]; (*from)++)
		if (sql[*from] == '\n')
			(*line)++;
	return *line;
}

/* Line and column (in characters) of a 1-based character position. */
static void
char_position(const char *sql, int cursorpos, int *line, int *col)
{
	const char *p = sql;
	int			n;

	*line = 1;
	*col = 1;
	for (n = 1; n < cursorpos && *p; n++)
	{
		if (*p == '\n')
		{
			(*line)++;
			*col = 1;
		}
		else
			(*col)++;
		p += pg_mblen(p);
	}
}

/*
 * Parses one part; on a syntax error, ERROR (shift.lint) or a syntax-error
 * finding (shift.lint_script), and NIL.
 */
static List *
parse_part(LintState *st, const char *sql)
{
	ErrorData  *edata;
	List	   *stmts = shift_raw_parse(sql, &edata);
	int			line;
	int			col;

	if (edata == NULL)
		return stmts;
	/* only what the parser reports about the text; nothing else is ours */
	if (ERRCODE_TO_CATEGORY(edata->sqlerrcode) != ERRCODE_SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION &&
		ERRCODE_TO_CATEGORY(edata->sqlerrcode) != ERRCODE_DATA_EXCEPTION &&
		ERRCODE_TO_CATEGORY(edata->sqlerrcode) != ERRCODE_FEATURE_NOT_SUPPORTED &&
		edata->sqlerrcode != ERRCODE_PROGRAM_LIMIT_EXCEEDED &&
		edata->sqlerrcode != ERRCODE_STATEMENT_TOO_COMPLEX)
		ReThrowError(edata);

	char_position(sql, edata->cursorpos, &line, &col);
	if (!st->script_mode)
		ereport(ERROR,
				(errcode(edata->sqlerrcode),
				 errmsg("SQL to lint does not parse: %s", edata->message),
				 edata->cursorpos > 0 ?
				 errdetail("The error is at line %d, column %d of the linted SQL.", line, col) :
				 errdetail("The linted SQL is not valid SQL."),
				 edata->cursorpos > 0 ? internalerrposition(edata->cursorpos) : 0,
				 internalerrquery(sql),
				 errhint("Fix the SQL; it would fail the same way when it runs.")));
	st->statement++;
	st->line = edata->cursorpos > 0 ? line : 1;
	st->lock = NULL;
	lint_report(st, SEV_CRITICAL, "syntax-error", NULL,
				edata->cursorpos > 0 ?
				psprintf("does not parse: %s (line %d, column %d)", edata->message, line, col) :
				psprintf("does not parse: %s", edata->message),
				"Fix the SQL; it would fail the same way when it runs.");
	return NIL;
}

/*
 * Lints one part (a text parsed at once): its parse tree lives in a context
 * of its own, freed after the part, and each statement is linted in a
 * context reset after it; what later statements need is kept in st->keep.
 */
static void
lint_part(LintState *st, text *part, int part_timeout)
{
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext part_cxt = AllocSetContextCreate(caller, "pg_shift lint part",
												   ALLOCSET_DEFAULT_SIZES);
	MemoryContext stmt_cxt = AllocSetContextCreate(part_cxt, "pg_shift lint statement",
												   ALLOCSET_DEFAULT_SIZES);
	MemoryContext item_cxt = AllocSetContextCreate(stmt_cxt, "pg_shift lint item",
												   ALLOCSET_DEFAULT_SIZES);
	char	   *sql;
	List	   *stmts;
	ListCell   *lc;
	int			len;
	int			start;
	int			scanned = 0;
	int			line = 1;

	st->stmt_cxt = stmt_cxt;
	st->item_cxt = item_cxt;
	MemoryContextSwitchTo(part_cxt);
	sql = text_to_cstring(part);
	len = (int) strlen(sql);
	shift_check_scannable(st->script_mode ? "a part of shift.lint_script" : "the SQL to lint",
						  sql, len, SHIFT_MAX_SCAN_COST);
	st->sql = sql;
	st->part_timeout = part_timeout;
	stmts = parse_part(st, sql);
	/* several statements in one simple query run as one implicit transaction */
	st->implicit_tx = st->script_mode && list_length(stmts) > 1;

	foreach(lc, stmts)
	{
		RawStmt    *raw = lfirst(lc);

		CHECK_FOR_INTERRUPTS();
		st->statement++;
		if (raw == NULL || !IsA(raw, RawStmt) || raw->stmt == NULL)
			continue;
		MemoryContextSwitchTo(stmt_cxt);
		/* its text: from its first token to its ';' (or the end) */
		start = Min(Max(raw->stmt_location, 0), len);
		st->text_to = raw->stmt_len > 0 ? Min(start + raw->stmt_len, len) : len;
		st->text_from = first_token(sql, start, st->text_to);
		st->allows_known = false;
		st->line = line_at(sql, st->text_from, &scanned, &line);
		lint_statement(st, raw->stmt);
		st->text_from = st->text_to = -1;
		st->strongest_on = NULL;
		MemoryContextSwitchTo(part_cxt);
		/* resets item_cxt too, and keeps it */
		MemoryContextReset(stmt_cxt);
	}
	if (st->implicit_tx && !st->explicit_tx)
		st->local_timeout = TIMEOUT_UNSET;
	st->implicit_tx = false;
	st->part_timeout = TIMEOUT_UNSET;
	st->sql = NULL;
	st->stmt_cxt = st->item_cxt = NULL;
	MemoryContextSwitchTo(caller);
	MemoryContextDelete(part_cxt);
}

/* ---------------------------------------------------------------- SQL entry points */

#define LINT_SIZE_HINT \
	"Lint a long script in pieces: split it into several db:exec calls (shift.lint_script parts) or shift.lint calls."

/* Refuses a lint input (a text or array argument) over limit, before detoasting it. */
static void
check_arg_size(FunctionCallInfo fcinfo, int argno, const char *what, Size limit)
{
	if (!PG_ARGISNULL(argno))
		shift_check_size(what, toast_raw_datum_size(PG_GETARG_DATUM(argno)) - VARHDRSZ,
						 limit, LINT_SIZE_HINT);
}

static int
start_timeout(FunctionCallInfo fcinfo, int argno)
{
	char	   *value;
	int			ms;
	const char *hint = NULL;

	if (PG_ARGISNULL(argno))
		return LockTimeout;
	check_arg_size(fcinfo, argno, "the lock_timeout given to lint", SHIFT_MAX_SETTING);
	value = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	if (!parse_int(value, &ms, GUC_UNIT_MS, &hint) || ms < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid lock_timeout \"%s\"", value),
				 errhint("%s", hint ? hint : "Give a duration such as '2s' or '500ms', or 0 for none.")));
	return ms;
}

static void
init_state(LintState *st, FunctionCallInfo fcinfo, bool script_mode, int timeout)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	memset(st, 0, sizeof(*st));
	InitMaterializedSRF(fcinfo, 0);
	st->out = rsinfo->setResult;
	st->desc = rsinfo->setDesc;
	st->with_part = script_mode;
	st->script_mode = script_mode;
	st->part = 1;
	st->phase = 1;
	st->start_timeout = st->session_timeout = timeout;
	st->local_timeout = TIMEOUT_UNSET;
	st->part_timeout = TIMEOUT_UNSET;
	st->text_from = st->text_to = -1;	/* not in a statement */
	st->keep = AllocSetContextCreate(CurrentMemoryContext, "pg_shift lint state",
									 ALLOCSET_DEFAULT_SIZES);
	st->new_rel_counts = lint_name_table(st, "pg_shift lint new relations", sizeof(NewRelCount));
	st->new_rel_lists = lint_name_table(st, "pg_shift lint new relation lists", sizeof(NameList));
	st->check_columns = lint_name_table(st, "pg_shift lint checks by column", sizeof(CheckColumn));
	st->check_names = lint_name_table(st, "pg_shift lint checks by name", sizeof(NameList));
	st->added_columns = lint_name_table(st, "pg_shift lint added columns", sizeof(AddedColumn));
}

static void
end_state(LintState *st)
{
	MemoryContextDelete(st->keep);
}

/*
 * shift.lint(sql text, lock_timeout text DEFAULT NULL)
 *	 RETURNS TABLE (statement int, line int, severity text, rule text,
 *					lock text, object text, message text, hint text)
 *
 * Lints a script as psql would run it, statement by statement, starting
 * with lock_timeout in force (NULL: the session's current lock_timeout).
 * SQL that does not parse is an error pointing into it.
 */
Datum
shift_lint(PG_FUNCTION_ARGS)
{
	LintState	st;

	check_arg_size(fcinfo, 0, "the SQL to lint", SHIFT_MAX_LINT_PART);
	init_state(&st, fcinfo, false, start_timeout(fcinfo, 1));
	if (!PG_ARGISNULL(0))
		lint_part(&st, PG_GETARG_TEXT_PP(0), TIMEOUT_UNSET);
	end_state(&st);
	return (Datum) 0;
}

/* The elements of a one-dimensional text or int array, NULLs kept. */
static int
array_elements(ArrayType *arr, Oid type, Datum **values, bool **nulls)
{
	int			n;

	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("the arrays of shift.lint_script must be one-dimensional")));
	if (type == TEXTOID)
		deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, values, nulls, &n);
	else
		deconstruct_array(arr, INT4OID, 4, true, TYPALIGN_INT, values, nulls, &n);
	return n;
}

/*
 * shift.lint_script(parts text[], part_lock_timeouts text[] DEFAULT NULL,
 *					 phases int[] DEFAULT NULL, lock_timeout text DEFAULT NULL)
 *	 RETURNS TABLE (part int, statement int, line int, severity text,
 *					rule text, lock text, object text, message text, hint text)
 *
 * Lints what a runner sends, in order, in one session: each part is one
 * simple query (several statements in a part are one implicit
 * transaction); a part with a lock timeout runs with it in force (db:ddl);
 * a table created in a phase is new only in that phase, since a later
 * phase may have filled it.  A part that does not parse is a syntax-error
 * finding and linting goes on.  statement counts over all parts; line is
 * within the part.
 */
Datum
shift_lint_script(PG_FUNCTION_ARGS)
{
	LintState	st;
	Datum	   *parts;
	bool	   *part_nulls;
	Datum	   *timeouts = NULL;
	bool	   *timeout_nulls = NULL;
	Datum	   *phases = NULL;
	bool	   *phase_nulls = NULL;
	int			nparts;
	int			i;

	check_arg_size(fcinfo, 0, "the array of parts of shift.lint_script", SHIFT_MAX_LINT_SCRIPT);
	check_arg_size(fcinfo, 1, "part_lock_timeouts of shift.lint_script", SHIFT_MAX_LINT_SCRIPT);
	check_arg_size(fcinfo, 2, "phases of shift.lint_script", SHIFT_MAX_LINT_SCRIPT);
	init_state(&st, fcinfo, true, start_timeout(fcinfo, 3));
	if (PG_ARGISNULL(0))
	{
		end_state(&st);
		return (Datum) 0;
	}
	nparts = array_elements(PG_GETARG_ARRAYTYPE_P(0), TEXTOID, &parts, &part_nulls);
	if (!PG_ARGISNULL(1) &&
		array_elements(PG_GETARG_ARRAYTYPE_P(1), TEXTOID, &timeouts, &timeout_nulls) != nparts)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("part_lock_timeouts must have one element per part")));
	if (!PG_ARGISNULL(2) &&
		array_elements(PG_GETARG_ARRAYTYPE_P(2), INT4OID, &phases, &phase_nulls) != nparts)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("phases must have one element per part")));
	/* each part alone, before any is linted */
	for (i = 0; i < nparts; i++)
	{
		Size		size;

		if (!part_nulls[i] &&
			(size = toast_raw_datum_size(parts[i]) - VARHDRSZ) > SHIFT_MAX_LINT_PART)
			shift_check_size(psprintf("part %d of shift.lint_script", i + 1), size,
							 SHIFT_MAX_LINT_PART, LINT_SIZE_HINT);
		if (timeouts && !timeout_nulls[i] &&
			(size = toast_raw_datum_size(timeouts[i]) - VARHDRSZ) > SHIFT_MAX_SETTING)
			shift_check_size(psprintf("the lock timeout of part %d of shift.lint_script", i + 1),
							 size, SHIFT_MAX_SETTING, LINT_SIZE_HINT);
	}

	for (i = 0; i < nparts; i++)
	{
		int			timeout = TIMEOUT_UNSET;

		st.part = i + 1;
		if (phases && !phase_nulls[i])
			st.phase = DatumGetInt32(phases[i]);
		if (timeouts && !timeout_nulls[i])
		{
			char	   *value = TextDatumGetCString(timeouts[i]);

			timeout = lint_parse_timeout(value);
			if (timeout < 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid lock_timeout \"%s\" for part %d", value, i + 1),
						 errhint("Give a duration such as '2s' or '500ms', or 0 for none.")));
		}
		if (!part_nulls[i])
			lint_part(&st, DatumGetTextPP(parts[i]), timeout);
	}
	end_state(&st);
	return (Datum) 0;
}
