/*-------------------------------------------------------------------------
 *
 * lint_report.c
 *	  Lint's findings: how a finding names objects and locks, the
 *	  "shift:allow rule-id" comments that silence rules for one statement,
 *	  the output rows (bounded to SHIFT_MAX_LINT_FINDINGS), the strongest
 *	  lock a statement takes on an existing relation (for the lock-timeout
 *	  rule) and the memory context each item of a statement is linted in.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "common/keywords.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "parser/scanner.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "pg_shift.h"
#include "lint.h"

/* ---------------------------------------------------------------- names */

static const char *const lock_names[] = {
	NULL, "ACCESS SHARE", "ROW SHARE", "ROW EXCLUSIVE",
	"SHARE UPDATE EXCLUSIVE", "SHARE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE",
	"ACCESS EXCLUSIVE"
};

const char *
lint_lock_name(LOCKMODE mode)
{
	if (mode <= NoLock || mode > AccessExclusiveLock)
		return NULL;
	return lock_names[mode];
}

/* schema.name of a RangeVar, quoted where needed */
char *
lint_rv_name(const RangeVar *rv)
{
	if (rv == NULL || rv->relname == NULL)
		return pstrdup("?");
	if (rv->schemaname)
		return quote_qualified_identifier(rv->schemaname, rv->relname);
	return pstrdup(quote_identifier(rv->relname));
}

/* a list of String nodes (a qualified name), quoted; "?" if it is not one */
char *
lint_names_text(List *names)
{
	StringInfoData s;
	ListCell   *lc;

	initStringInfo(&s);
	foreach(lc, names)
	{
		Node	   *n = lfirst(lc);

		if (n == NULL || !IsA(n, String))
			return pstrdup("?");
		appendStringInfo(&s, "%s%s", s.len ? "." : "",
						 quote_identifier(strVal(n)));
	}
	return s.len ? s.data : pstrdup("?");
}

const char *
lint_qi(const char *name)
{
	return name ? quote_identifier(name) : "?";
}
/* ---------------------------------------------------------------- output */

/* The rule ids a "shift:allow" comment may name. */
static const char *const rule_ids[] = {
	"add-column-not-null", "add-column-rewrite", "cluster", "column-type-change",
	"column-type-rewrite", "constraint-not-valid", "drop-column", "drop-index-not-concurrent",
	"drop-table", "enum-value-in-transaction", "index-not-concurrent", "lock-table",
	"missing-lock-timeout", "not-in-transaction", "refresh-not-concurrent",
	"reindex-not-concurrent", "rename-column", "rename-table", "set-access-method",
	"set-logged", "set-not-null", "set-tablespace", "syntax-error", "truncate",
	"unique-without-index", "vacuum-full", "all", NULL
};

/* The bit of a rule id (its index in rule_ids), every bit for "all", or 0. */
static uint32
rule_bit(const char *word, size_t len)
{
	int			i;

	StaticAssertStmt(lengthof(rule_ids) <= 32, "a rule's bit must fit in a uint32");
	for (i = 0; rule_ids[i] != NULL; i++)
		if (len == strlen(rule_ids[i]) && strncmp(word, rule_ids[i], len) == 0)
			return strcmp(rule_ids[i], "all") == 0 ? ~(uint32) 0 : (uint32) 1 << i;
	return 0;
}

/*
 * The rules one comment's text allows.  "shift:allow" is followed by rule
 * ids (separated by blanks or commas); the list ends at the first word that
 * is not one, so prose after it ("... because readers moved") names nothing.
 */
static uint32
comment_allows(const char *c, int n)
{
	const char *end = c + n;
	const char *p;
	uint32		mask = 0;

	for (p = c; p + 11 <= end; p++)
	{
		const char *q;

		if (strncmp(p, "shift:allow", 11) != 0)
			continue;
		q = p + 11;
		for (;;)
		{
			const char *w;
			uint32		bit;

			while (q < end && (*q == ' ' || *q == '\t' || *q == ','))
				q++;
			w = q;
			while (q < end && (isalnum((unsigned char) *q) || *q == '-' || *q == '_'))
				q++;
			if (q == w || (bit = rule_bit(w, q - w)) == 0)
				break;
			mask |= bit;
		}
		p = q - 1;
	}
	return mask;
}

/*
 * The rules a statement allows.  A comment inside it (before its ';'), or a
 * -- comment right after its ';' on the same line, reading "shift:allow
 * rule-id ..." (or "shift:allow all") silences those rules for that
 * statement: for a risky form the author has made safe another way.  The
 * comments are what the core scanner (scan.l) skips between the statement's
 * tokens, so text in a literal, a quoted name or a dollar quote is never
 * taken for one; comments before the statement's first token belong to the
 * statement before it.  (A comment between the halves of a string literal
 * continued over a line break, 'a' -- ... 'b', is inside that one token and
 * is not read.)  Read once per statement, however many findings it has, and
 * scanned only if "shift:allow" is in its text at all.
 */
static uint32
statement_allows(LintState *st)
{
	const char *sql = st->sql;
	int			to = st->text_to;
	uint32		mask = 0;
	char	   *text;
	int			len;

	/* a -- comment after the ';' on that line: only blanks between them */
	if (sql[to] == ';')
	{
		int			k = to + 1;

		while (sql[k] == ' ' || sql[k] == '\t')
			k++;
		if (sql[k] == '-' && sql[k + 1] == '-')
		{
			int			start = k;

			while (sql[k] != '\0' && sql[k] != '\n')
				k++;
			mask |= comment_allows(sql + start, k - start);
		}
	}

	/* the comments between its tokens */
	len = to - st->text_from;
	text = pnstrdup(sql + st->text_from, len);
	if (strstr(text, "shift:allow") != NULL)
	{
		core_yy_extra_type extra;
		core_yyscan_t scanner;
		core_YYSTYPE yylval;
		YYLTYPE		yylloc;
		int			end = 0;	/* of the token before */

		/*
		 * It starts at a token, so the scanner reads it as the parser read
		 * the whole text.  Warnings were the parser's to give.
		 */
		scanner = scanner_init(text, &extra, &ScanKeywords, ScanKeywordTokens);
		extra.escape_string_warning = false;
		while (core_yylex(&yylval, &yylloc, scanner) != 0)
		{
			/*
			 * Between two tokens: nothing but blanks and comments, read as
			 * one text ("shift:allow" and a rule id cannot span two).
			 */
			if (yylloc > end)
				mask |= comment_allows(text + end, yylloc - end);

			/*
			 * The token ends where core_yylex left a '\0' in its copy of the
			 * text, until the next call (parser.c measures tokens so too).
			 */
			end = yylloc + strlen(extra.scanbuf + yylloc);
		}
		if (len > end)
			mask |= comment_allows(text + end, len - end);
		scanner_finish(scanner);
	}
	pfree(text);
	return mask;
}

/* Does the statement being linted allow the rule? */
static bool
allowed(LintState *st, const char *rule)
{
	if (st->text_from < 0)
		return false;
	if (!st->allows_known)
	{
		st->allows = statement_allows(st);
		st->allows_known = true;
	}
	return (st->allows & rule_bit(rule, strlen(rule))) != 0;
}

void
lint_report(LintState *st, const char *severity, const char *rule,
			const char *object, const char *message, const char *hint)
{
	Datum		values[9];
	bool		nulls[9];
	int			i = 0;

	if (allowed(st, rule))
		return;
	/* the output is bounded too: past the limit, stop at once */
	if (++st->findings > SHIFT_MAX_LINT_FINDINGS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("lint stopped after %d findings", SHIFT_MAX_LINT_FINDINGS),
				 errdetail("Statement %d of the linted SQL would be finding %d; no migration has that many, and the rest were not looked for.",
						   st->statement, st->findings),
				 errhint("Lint the script in pieces, or silence a rule that fires on each of many objects with a shift:allow comment.")));

	memset(nulls, 0, sizeof(nulls));
	if (st->with_part)
		values[i++] = Int32GetDatum(st->part);
	values[i++] = Int32GetDatum(st->statement);
	values[i++] = Int32GetDatum(st->line);
	values[i++] = CStringGetTextDatum(severity);
	values[i++] = CStringGetTextDatum(rule);
	if (st->lock)
		values[i] = CStringGetTextDatum(st->lock);
	else
		nulls[i] = true;
	i++;
	if (object)
		values[i] = CStringGetTextDatum(object);
	else
		nulls[i] = true;
	i++;
	values[i++] = CStringGetTextDatum(message);
	if (hint)
		values[i] = CStringGetTextDatum(hint);
	else
		nulls[i] = true;
	tuplestore_putvalues(st->out, st->desc, values, nulls);
}

/*
 * Notes that the statement locks an existing relation in `mode`; the
 * lock-timeout rule looks at the strongest such lock once the statement's
 * own rules have run.  A new or temporary relation waits for nobody.
 */
void
lint_note_lock(LintState *st, const RangeVar *rv, const char *what, LOCKMODE mode)
{
	if (rv != NULL && lint_is_new_rel(st, rv))
		return;
	if (mode > st->strongest)
	{
		/* it outlives the item being linted: in the statement's context */
		MemoryContext old = MemoryContextSwitchTo(st->stmt_cxt);

		st->strongest = mode;
		st->strongest_on = rv ? lint_rv_name(rv) : pstrdup(what);
		MemoryContextSwitchTo(old);
	}
}

/*
 * The items of a statement (ALTER TABLE's subcommands, the relations a
 * DROP, TRUNCATE, LOCK or VACUUM names, ...) are linted in st->item_cxt,
 * reset before each item and after the last: a statement of many items
 * keeps only its findings.  Usage:
 *		old = lint_items_begin(st); foreach (...) { lint_item_next(st); ... } lint_items_end(st, old);
 */
MemoryContext
lint_items_begin(LintState *st)
{
	return MemoryContextSwitchTo(st->item_cxt);
}

void
lint_item_next(LintState *st)
{
	CHECK_FOR_INTERRUPTS();
	MemoryContextReset(st->item_cxt);
}

void
lint_items_end(LintState *st, MemoryContext old)
{
	MemoryContextSwitchTo(old);
	MemoryContextReset(st->item_cxt);
}
