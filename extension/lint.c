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
 * Every input is bounded (shift_check_size, SQLSTATE 54000), and the work is
 * linear in it: earlier statements' facts are found through hash tables, and
 * each statement is linted in a memory context reset after it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "access/detoast.h"
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_class.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "commands/tablecmds.h"
#include "common/hashfn.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "optimizer/optimizer.h"
#include "parser/parse_coerce.h"
#include "parser/parse_collate.h"
#include "parser/parse_expr.h"
#include "parser/parse_node.h"
#include "parser/parse_param.h"
#include "parser/parse_type.h"
#include "parser/parser.h"
#include "storage/lockdefs.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"

#include "pg_shift.h"

PG_FUNCTION_INFO_V1(shift_lint);
PG_FUNCTION_INFO_V1(shift_lint_script);

#define SEV_CRITICAL	"CRITICAL"
#define SEV_HIGH		"HIGH"
#define SEV_MEDIUM		"MEDIUM"
#define SEV_LOW			"LOW"

/* lock_timeout values: milliseconds, 0 for none */
#define TIMEOUT_UNSET	(-1)

/*
 * Facts about earlier statements (tables created, CHECK (col IS NOT NULL)
 * constraints added) are found by name through hash tables, so that linting
 * stays linear in the number of statements.  A name written without a
 * schema matches the same name in any schema (same_name), so each fact is
 * filed twice: under its schema (or under "no schema" when it has none) and
 * under "any schema".  A lookup with a schema looks at that schema's group
 * and the no-schema group; a lookup without one at the any-schema group.
 */
typedef enum NameKind
{
	NK_SCHEMA,					/* written with this schema */
	NK_NONE,					/* written without a schema */
	NK_ANY						/* whatever the schema */
} NameKind;

typedef struct NameKey
{
	NameKind	kind;
	const char *schema;			/* NK_SCHEMA only, else NULL */
	const char *table;
	const char *name;			/* a column or constraint, or NULL */
	int			phase;			/* NewRelCount only, else 0 */
} NameKey;

/* A table or index created earlier in the input. */
typedef struct LintRel
{
	char	   *schema;			/* as written, or NULL */
	char	   *name;
	int			phase;			/* new (empty) only within this phase */
	bool		forgotten;		/* dropped since */
} LintRel;

/* new_rel_counts: how many live LintRels of a phase a group holds */
typedef struct NewRelCount
{
	NameKey		key;
	int			live;
} NewRelCount;

/* new_rel_lists: a group's LintRels (forgotten ones are skipped) */
typedef struct NewRelList
{
	NameKey		key;
	List	   *rels;
} NewRelList;

/* check_columns: the CHECK (col IS NOT NULL) constraints on a column */
typedef struct CheckColumn
{
	NameKey		key;
	int			validated;		/* how many are validated */
	struct LintCheck *last;		/* the one added last */
} CheckColumn;

/* A CHECK (col IS NOT NULL) constraint added earlier in the input. */
typedef struct LintCheck
{
	char	   *schema;
	char	   *table;
	char	   *conname;		/* given or the name PostgreSQL would choose */
	char	   *column;
	bool		validated;
	int64		added;			/* order of addition */
	CheckColumn *columns[2];	/* its groups in check_columns */
} LintCheck;

/* check_names: the constraints of a name not validated yet */
typedef struct CheckName
{
	NameKey		key;
	List	   *pending;
} CheckName;

typedef struct LintState
{
	/* output */
	Tuplestorestate *out;
	TupleDesc	desc;
	bool		with_part;		/* lint_script: a part column first */

	/* where we are */
	const char *sql;			/* the part being linted */
	int			part;			/* 1-based */
	int			phase;
	int			statement;		/* 1-based, over the whole input */
	int			line;			/* in the part, of the current statement */

	/* transactions and lock_timeout */
	bool		script_mode;	/* parts are sent as simple queries */
	bool		explicit_tx;	/* inside BEGIN ... COMMIT */
	bool		implicit_tx;	/* a part of several statements */
	int			start_timeout;	/* what RESET goes back to */
	int			session_timeout;
	int			local_timeout;	/* SET LOCAL in force, or TIMEOUT_UNSET */
	int			tx_saved_timeout;	/* session value at BEGIN */
	int			part_timeout;	/* db:ddl's, or TIMEOUT_UNSET */

	/* what earlier statements did, in memory that lasts the whole call */
	MemoryContext keep;
	HTAB	   *new_rel_counts; /* NewRelCount */
	HTAB	   *new_rel_lists;	/* NewRelList */
	HTAB	   *check_columns;	/* CheckColumn */
	HTAB	   *check_names;	/* CheckName */
	int64		checks_added;
	int			findings;		/* reported so far */

	/* the statement being linted */
	MemoryContext stmt_cxt;		/* reset after each statement */
	MemoryContext item_cxt;		/* reset after each of its items */
	const char *text;			/* its SQL (for shift:allow comments) */
	uint32		allows;			/* the rules it allows (rule_bit) ... */
	bool		allows_known;	/* ... once read from text */
	const char *lock;			/* lock on its main object, or NULL */
	LOCKMODE	strongest;		/* strongest lock on an existing relation */
	char	   *strongest_on;	/* ... and which */
} LintState;

static void lint_statement(LintState *st, Node *stmt);
static int	skip_space(const char *sql, int pos, int len);

/* ---------------------------------------------------------------- helpers */

static const char *const lock_names[] = {
	NULL, "ACCESS SHARE", "ROW SHARE", "ROW EXCLUSIVE",
	"SHARE UPDATE EXCLUSIVE", "SHARE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE",
	"ACCESS EXCLUSIVE"
};

static const char *
lock_name(LOCKMODE mode)
{
	if (mode <= NoLock || mode > AccessExclusiveLock)
		return NULL;
	return lock_names[mode];
}

/* schema.name of a RangeVar, quoted where needed */
static char *
rv_name(const RangeVar *rv)
{
	if (rv == NULL || rv->relname == NULL)
		return pstrdup("?");
	if (rv->schemaname)
		return quote_qualified_identifier(rv->schemaname, rv->relname);
	return pstrdup(quote_identifier(rv->relname));
}

/* a list of String nodes (a qualified name), quoted; "?" if it is not one */
static char *
names_text(List *names)
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

static const char *
qi(const char *name)
{
	return name ? quote_identifier(name) : "?";
}

/* Is the option (a DefElem list) `name` given and true? */
static bool
option_true(List *options, const char *name)
{
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *d = lfirst(lc);

		if (d == NULL || !IsA(d, DefElem) || d->defname == NULL ||
			strcmp(d->defname, name) != 0)
			continue;
		if (d->arg == NULL)
			return true;
		if (IsA(d->arg, Boolean))
			return boolVal(d->arg);
		if (IsA(d->arg, Integer))
			return intVal(d->arg) != 0;
		if (IsA(d->arg, String))
		{
			bool		b;

			return parse_bool(strVal(d->arg), &b) && b;
		}
		return false;
	}
	return false;
}

/*
 * The OID of an existing relation, or InvalidOid.  No lock is taken and no
 * privilege is checked (get_namespace_oid and RelnameGetRelid do neither),
 * so linting SQL about objects one may not touch still works.
 */
static Oid
lint_relid(const RangeVar *rv)
{
	Oid			nsp;

	if (rv == NULL || rv->relname == NULL || rv->catalogname != NULL)
		return InvalidOid;
	if (rv->schemaname == NULL)
		return RelnameGetRelid(rv->relname);
	nsp = get_namespace_oid(rv->schemaname, true);
	return OidIsValid(nsp) ? get_relname_relid(rv->relname, nsp) : InvalidOid;
}

/*
 * Is rv a temporary table?  The catalog is only asked when it could be:
 * for an unqualified name when this session has a temporary schema, for a
 * qualified one when the schema is temporary.  (Asking about a name that
 * does not exist leaves a negative entry in the session's catalog cache for
 * good; a long list of names would fill it.)
 */
static bool
is_temp_rel(const RangeVar *rv)
{
	Oid			nsp;
	Oid			toast_nsp;
	Oid			relid;

	if (rv == NULL || rv->relname == NULL || rv->catalogname != NULL)
		return false;
	if (rv->schemaname == NULL)
	{
		GetTempNamespaceState(&nsp, &toast_nsp);
		if (!OidIsValid(nsp))
			return false;
		relid = RelnameGetRelid(rv->relname);
	}
	else
	{
		nsp = get_namespace_oid(rv->schemaname, true);
		if (!OidIsValid(nsp) || !isAnyTempNamespace(nsp))
			return false;
		relid = get_relname_relid(rv->relname, nsp);
	}
	return OidIsValid(relid) && get_rel_persistence(relid) == RELPERSISTENCE_TEMP;
}

static bool
same_name(const char *schema1, const char *name1,
		  const char *schema2, const char *name2)
{
	if (name1 == NULL || name2 == NULL || strcmp(name1, name2) != 0)
		return false;
	return schema1 == NULL || schema2 == NULL || strcmp(schema1, schema2) == 0;
}

/* ---------------------------------------------------------------- facts by name */

static uint32
name_key_hash(const void *key, Size keysize)
{
	const NameKey *k = key;
	uint32		h = hash_uint32((uint32) k->kind);

	if (k->schema)
		h = hash_combine(h, string_hash(k->schema, NAMEDATALEN));
	if (k->table)
		h = hash_combine(h, string_hash(k->table, NAMEDATALEN));
	if (k->name)
		h = hash_combine(h, string_hash(k->name, NAMEDATALEN));
	return hash_combine(h, hash_uint32((uint32) k->phase));
}

static bool
same_string(const char *a, const char *b)
{
	return a == NULL ? b == NULL : b != NULL && strcmp(a, b) == 0;
}

static int
name_key_match(const void *key1, const void *key2, Size keysize)
{
	const NameKey *a = key1;
	const NameKey *b = key2;

	return !(a->kind == b->kind && a->phase == b->phase &&
			 same_string(a->schema, b->schema) && same_string(a->table, b->table) &&
			 same_string(a->name, b->name));
}

static HTAB *
name_table(LintState *st, const char *what, Size entrysize)
{
	HASHCTL		ctl;

	ctl.keysize = sizeof(NameKey);
	ctl.entrysize = entrysize;
	ctl.hash = name_key_hash;
	ctl.match = name_key_match;
	ctl.hcxt = st->keep;
	return hash_create(what, 64, &ctl,
					   HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
}

static NameKey
name_key(NameKind kind, const char *schema, const char *table, const char *name,
		 int phase)
{
	NameKey		k;

	memset(&k, 0, sizeof(k));
	k.kind = kind;
	k.schema = kind == NK_SCHEMA ? schema : NULL;
	k.table = table;
	k.name = name;
	k.phase = phase;
	return k;
}

/*
 * The groups a name is looked up in: with a schema, that schema's and the
 * no-schema group; without, the any-schema group.  Returns how many.
 */
static int
lookup_keys(NameKey *keys, const char *schema, const char *table,
			const char *name, int phase)
{
	if (schema == NULL)
	{
		keys[0] = name_key(NK_ANY, NULL, table, name, phase);
		return 1;
	}
	keys[0] = name_key(NK_SCHEMA, schema, table, name, phase);
	keys[1] = name_key(NK_NONE, NULL, table, name, phase);
	return 2;
}

/*
 * The groups a fact is filed in: its own (its schema's, or no-schema) and
 * the any-schema group.  The strings must last as long as the tables.
 */
static void
filing_keys(NameKey *keys, const char *schema, const char *table,
			const char *name, int phase)
{
	keys[0] = name_key(schema ? NK_SCHEMA : NK_NONE, schema, table, name, phase);
	keys[1] = name_key(NK_ANY, NULL, table, name, phase);
}

/*
 * Is rv a table created earlier in this phase of the input, or a temporary
 * table?  Either way it is private to this session (or empty), so lock and
 * scan rules do not apply.
 */
static bool
is_new_rel(LintState *st, const RangeVar *rv)
{
	NameKey		keys[2];
	int			n;
	int			i;

	if (rv == NULL || rv->relname == NULL)
		return false;
	n = lookup_keys(keys, rv->schemaname, rv->relname, NULL, st->phase);
	for (i = 0; i < n; i++)
	{
		NewRelCount *c = hash_search(st->new_rel_counts, &keys[i], HASH_FIND, NULL);

		if (c && c->live > 0)
			return true;
	}
	return is_temp_rel(rv);
}

static void
add_new_rel(LintState *st, const char *schema, const char *name)
{
	MemoryContext old;
	LintRel    *r;
	NameKey		keys[2];
	int			i;

	if (name == NULL)
		return;
	old = MemoryContextSwitchTo(st->keep);
	r = palloc0(sizeof(LintRel));
	r->schema = schema ? pstrdup(schema) : NULL;
	r->name = pstrdup(name);
	r->phase = st->phase;
	filing_keys(keys, r->schema, r->name, NULL, r->phase);
	for (i = 0; i < 2; i++)
	{
		bool		found;
		NewRelCount *c = hash_search(st->new_rel_counts, &keys[i], HASH_ENTER, &found);
		NewRelList *l;

		if (!found)
			c->live = 0;
		c->live++;
		keys[i].phase = 0;
		l = hash_search(st->new_rel_lists, &keys[i], HASH_ENTER, &found);
		if (!found)
			l->rels = NIL;
		l->rels = lappend(l->rels, r);
	}
	MemoryContextSwitchTo(old);
}

/*
 * Forgets the tables of that name (in any phase), as if never created.
 * Each LintRel is forgotten once and then dropped from the lists it is met
 * in, so this stays linear over the whole input.
 */
static void
forget_new_rel(LintState *st, const char *schema, const char *name)
{
	NameKey		keys[2];
	int			n;
	int			i;

	if (name == NULL)
		return;
	n = lookup_keys(keys, schema, name, NULL, 0);
	for (i = 0; i < n; i++)
	{
		NewRelList *l = hash_search(st->new_rel_lists, &keys[i], HASH_FIND, NULL);
		ListCell   *lc;

		if (l == NULL)
			continue;
		foreach(lc, l->rels)
		{
			LintRel    *r = lfirst(lc);
			NameKey		own[2];
			int			j;

			if (r->forgotten)
				continue;
			r->forgotten = true;
			filing_keys(own, r->schema, r->name, NULL, r->phase);
			for (j = 0; j < 2; j++)
			{
				NewRelCount *c = hash_search(st->new_rel_counts, &own[j], HASH_FIND, NULL);

				if (c)
					c->live--;
			}
		}
		list_free(l->rels);
		l->rels = NIL;
	}
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
 * statement: for a risky form the author has made safe another way.
 * Comments are found by skipping string literals, quoted identifiers and
 * dollar quotes; comments before the statement's first word belong to the
 * statement before it.  The text is read once per statement, however many
 * findings it has.
 */
static uint32
statement_allows(const char *t)
{
	int			len = strlen(t);
	int			i;
	uint32		mask = 0;

	for (i = 0; i < len;)
	{
		char		ch = t[i];

		if (ch == '\'' || ch == '"')
		{
			/* a literal or quoted identifier; doubled quotes stay inside */
			i++;
			while (i < len && !(t[i] == ch && (i + 1 >= len || t[i + 1] != ch)))
				i += (t[i] == ch) ? 2 : 1;
			i++;
		}
		else if (ch == '$')
		{
			/* $tag$ ... $tag$ */
			int			j = i + 1;

			while (j < len && (isalnum((unsigned char) t[j]) || t[j] == '_'))
				j++;
			if (j < len && t[j] == '$' && !(j > i + 1 && isdigit((unsigned char) t[i + 1])))
			{
				int			taglen = j - i + 1;
				const char *close = NULL;
				int			k;

				for (k = j + 1; k + taglen <= len; k++)
					if (strncmp(t + k, t + i, taglen) == 0)
					{
						close = t + k;
						break;
					}
				i = close ? (int) (close - t) + taglen : len;
			}
			else
				i = j;
		}
		else if (ch == '-' && i + 1 < len && t[i + 1] == '-')
		{
			int			start = i;

			while (i < len && t[i] != '\n')
				i++;
			mask |= comment_allows(t + start, i - start);
		}
		else if (ch == '/' && i + 1 < len && t[i + 1] == '*')
		{
			int			start = i;
			int			depth = 1;

			i += 2;
			while (i < len && depth > 0)
			{
				if (t[i] == '/' && i + 1 < len && t[i + 1] == '*')
					depth++, i += 2;
				else if (t[i] == '*' && i + 1 < len && t[i + 1] == '/')
					depth--, i += 2;
				else
					i++;
			}
			mask |= comment_allows(t + start, i - start);
		}
		else
			i++;
	}
	return mask;
}

/* Does the statement being linted allow the rule? */
static bool
allowed(LintState *st, const char *rule)
{
	if (st->text == NULL)
		return false;
	if (!st->allows_known)
	{
		st->allows = statement_allows(st->text);
		st->allows_known = true;
	}
	return (st->allows & rule_bit(rule, strlen(rule))) != 0;
}

static void
report(LintState *st, const char *severity, const char *rule,
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
static void
note_lock(LintState *st, const RangeVar *rv, const char *what, LOCKMODE mode)
{
	if (rv != NULL && is_new_rel(st, rv))
		return;
	if (mode > st->strongest)
	{
		/* it outlives the item being linted: in the statement's context */
		MemoryContext old = MemoryContextSwitchTo(st->stmt_cxt);

		st->strongest = mode;
		st->strongest_on = rv ? rv_name(rv) : pstrdup(what);
		MemoryContextSwitchTo(old);
	}
}

/*
 * The items of a statement (ALTER TABLE's subcommands, the relations a
 * DROP, TRUNCATE, LOCK or VACUUM names, ...) are linted in st->item_cxt,
 * reset before each item and after the last: a statement of many items
 * keeps only its findings.  Usage:
 *		old = items_begin(st); foreach (...) { item_next(st); ... } items_end(st, old);
 */
static MemoryContext
items_begin(LintState *st)
{
	return MemoryContextSwitchTo(st->item_cxt);
}

static void
item_next(LintState *st)
{
	CHECK_FOR_INTERRUPTS();
	MemoryContextReset(st->item_cxt);
}

static void
items_end(LintState *st, MemoryContext old)
{
	MemoryContextSwitchTo(old);
	MemoryContextReset(st->item_cxt);
}

/* The lock_timeout in force for the current statement, in ms (0: none). */
static int
timeout_in_force(LintState *st)
{
	if (st->part_timeout != TIMEOUT_UNSET)
		return st->part_timeout;
	if (st->local_timeout != TIMEOUT_UNSET)
		return st->local_timeout;
	return st->session_timeout;
}

static bool
in_transaction_block(LintState *st)
{
	return st->explicit_tx || st->implicit_tx;
}

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
static char *
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

typedef struct DefaultCheck
{
	ColumnDef  *col;
	Node	   *raw_default;	/* NULL: none given */
	char	   *volatile_func;	/* out: the volatile function, or NULL */
	bool		is_volatile;	/* out */
	bool		domain_checks;	/* out: a domain with constraints */
} DefaultCheck;

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
static void
check_default(void *arg)
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

/* Is the column's type one of the serial pseudo-types (as the parser sees them)? */
static bool
is_serial(TypeName *tn)
{
	static const char *const serials[] = {
		"smallserial", "serial2", "serial", "serial4", "bigserial", "serial8"
	};
	const char *name;
	int			i;

	if (tn == NULL || tn->pct_type || list_length(tn->names) != 1 ||
		!IsA(linitial(tn->names), String))
		return false;
	name = strVal(linitial(tn->names));
	for (i = 0; i < lengthof(serials); i++)
		if (strcmp(name, serials[i]) == 0)
			return true;
	return false;
}

/* ---------------------------------------------------------------- ALTER COLUMN TYPE */

typedef struct TypeChangeCheck
{
	Oid			relid;
	AttrNumber	attnum;
	Oid			atttypid;
	int32		atttypmod;
	Oid			attcollation;
	TypeName   *typeName;
	char	   *new_type;		/* out: the new type, as format_type prints it */
	bool		rewrite;		/* out */
	bool		no_cast;		/* out: needs USING */
} TypeChangeCheck;

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
static void
check_type_change(void *arg)
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

/* ---------------------------------------------------------------- NOT NULL proofs */

/* The column a raw "col IS NOT NULL" tests, or NULL. */
static const char *
raw_not_null_column(Node *n)
{
	NullTest   *nt;
	ColumnRef  *cr;
	Node	   *last;

	if (n == NULL || !IsA(n, NullTest))
		return NULL;
	nt = (NullTest *) n;
	if (nt->nulltesttype != IS_NOT_NULL || nt->arg == NULL ||
		!IsA(nt->arg, ColumnRef))
		return NULL;
	cr = (ColumnRef *) nt->arg;
	if (cr->fields == NIL)
		return NULL;
	last = llast(cr->fields);
	return IsA(last, String) ? strVal(last) : NULL;
}

/* Records each "col IS NOT NULL" of a CHECK expression (ANDs included). */
static void
record_not_null_checks(LintState *st, const RangeVar *rv, Constraint *con,
					   Node *expr)
{
	const char *col;

	check_stack_depth();
	if (expr == NULL)
		return;
	if (IsA(expr, BoolExpr) && ((BoolExpr *) expr)->boolop == AND_EXPR)
	{
		ListCell   *lc;

		foreach(lc, ((BoolExpr *) expr)->args)
			record_not_null_checks(st, rv, con, lfirst(lc));
		return;
	}
	if ((col = raw_not_null_column(expr)) != NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(st->keep);
		LintCheck  *c = palloc0(sizeof(LintCheck));
		NameKey		keys[2];
		int			i;

		c->schema = rv->schemaname ? pstrdup(rv->schemaname) : NULL;
		c->table = pstrdup(rv->relname);
		/* unnamed: "table_col_check", as AddRelationNewConstraints names it */
		c->conname = con->conname ? pstrdup(con->conname) :
			makeObjectName(rv->relname, col, "check");
		c->column = pstrdup(col);
		c->validated = !con->skip_validation;
		c->added = ++st->checks_added;
		filing_keys(keys, c->schema, c->table, c->column, 0);
		for (i = 0; i < 2; i++)
		{
			bool		found;
			CheckColumn *cc = hash_search(st->check_columns, &keys[i], HASH_ENTER, &found);

			if (!found)
				cc->validated = 0;
			cc->last = c;
			if (c->validated)
				cc->validated++;
			c->columns[i] = cc;
		}
		if (!c->validated)
		{
			filing_keys(keys, c->schema, c->table, c->conname, 0);
			for (i = 0; i < 2; i++)
			{
				bool		found;
				CheckName  *cn = hash_search(st->check_names, &keys[i], HASH_ENTER, &found);

				if (!found)
					cn->pending = NIL;
				cn->pending = lappend(cn->pending, c);
			}
		}
		MemoryContextSwitchTo(old);
	}
}

/*
 * The tracked CHECK (col IS NOT NULL) constraints on rv.col: true if one of
 * them is validated; otherwise *last is the one added last, or NULL.
 */
static bool
find_check(LintState *st, const RangeVar *rv, const char *col, LintCheck **last)
{
	NameKey		keys[2];
	int			n;
	int			i;

	*last = NULL;
	n = lookup_keys(keys, rv->schemaname, rv->relname, col, 0);
	for (i = 0; i < n; i++)
	{
		CheckColumn *cc = hash_search(st->check_columns, &keys[i], HASH_FIND, NULL);

		if (cc == NULL)
			continue;
		if (cc->validated > 0)
			return true;
		if (*last == NULL || cc->last->added > (*last)->added)
			*last = cc->last;
	}
	return false;
}

/* Does a cooked CHECK expression imply "attnum IS NOT NULL"? */
static bool
cooked_implies_not_null(Node *n, AttrNumber attnum)
{
	ListCell   *lc;

	check_stack_depth();
	if (n == NULL)
		return false;
	if (IsA(n, List))
	{
		foreach(lc, (List *) n)
			if (cooked_implies_not_null(lfirst(lc), attnum))
				return true;
		return false;
	}
	if (IsA(n, BoolExpr) && ((BoolExpr *) n)->boolop == AND_EXPR)
		return cooked_implies_not_null((Node *) ((BoolExpr *) n)->args, attnum);
	if (IsA(n, NullTest))
	{
		NullTest   *nt = (NullTest *) n;

		return nt->nulltesttype == IS_NOT_NULL && !nt->argisrow &&
			nt->arg && IsA(nt->arg, Var) &&
			((Var *) nt->arg)->varattno == attnum;
	}
	return false;
}

/*
 * Is the column already NOT NULL, or does a validated CHECK constraint in
 * the catalog prove it (which lets SET NOT NULL skip its scan)?
 */
static bool
catalog_not_null(Oid relid, const char *col)
{
	HeapTuple	tup;
	AttrNumber	attnum;
	bool		notnull;
	Relation	conrel;
	SysScanDesc scan;
	ScanKeyData key;
	bool		proven = false;

	tup = SearchSysCacheAttName(relid, col);
	if (!HeapTupleIsValid(tup))
		return false;
	attnum = ((Form_pg_attribute) GETSTRUCT(tup))->attnum;
	notnull = ((Form_pg_attribute) GETSTRUCT(tup))->attnotnull;
	ReleaseSysCache(tup);
	if (notnull)
		return true;

	conrel = table_open(ConstraintRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_constraint_conrelid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(relid));
	scan = systable_beginscan(conrel, ConstraintRelidTypidNameIndexId, true,
							  NULL, 1, &key);
	while (!proven && HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_constraint con = (Form_pg_constraint) GETSTRUCT(tup);
		Datum		bin;
		bool		isnull;

		if (con->contype != CONSTRAINT_CHECK || !con->convalidated)
			continue;
		bin = heap_getattr(tup, Anum_pg_constraint_conbin,
						   RelationGetDescr(conrel), &isnull);
		if (!isnull)
			proven = cooked_implies_not_null(stringToNode(TextDatumGetCString(bin)),
											 attnum);
	}
	systable_endscan(scan);
	table_close(conrel, AccessShareLock);
	return proven;
}

/* ---------------------------------------------------------------- ALTER TABLE */

static LOCKMODE
alter_table_lock(List *cmds)
{
	volatile LOCKMODE mode = AccessExclusiveLock;
	MemoryContext cxt = CurrentMemoryContext;

	/*
	 * AlterTableGetLockLevel() reads only the command list, which the raw
	 * parser fills in; it raises an error only for a subcommand it does not
	 * know, and then the strongest lock is the safe answer.
	 */
	PG_TRY();
	{
		mode = AlterTableGetLockLevel(cmds);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		FlushErrorState();
		mode = AccessExclusiveLock;
	}
	PG_END_TRY();
	return mode;
}

static void
lint_add_column(LintState *st, RangeVar *rv, ColumnDef *col)
{
	const char *table = rv_name(rv);
	const char *cname = qi(col->colname);
	Node	   *raw_default = NULL;
	bool		identity = false;
	bool		generated = false;
	bool		not_null = false;
	ListCell   *lc;

	foreach(lc, col->constraints)
	{
		Constraint *con = lfirst(lc);

		if (con == NULL || !IsA(con, Constraint))
			continue;
		switch (con->contype)
		{
			case CONSTR_DEFAULT:
				raw_default = con->raw_expr;
				break;
			case CONSTR_IDENTITY:
				identity = true;
				break;
			case CONSTR_GENERATED:
				generated = true;
				break;
			case CONSTR_NOTNULL:
				not_null = true;
				break;
			case CONSTR_CHECK:
			case CONSTR_FOREIGN:
				report(st, SEV_HIGH, "constraint-not-valid", table,
					   psprintf("ADD COLUMN %s with a %s constraint checks every row of %s while holding an ACCESS EXCLUSIVE lock",
								cname, con->contype == CONSTR_CHECK ? "CHECK" : "REFERENCES",
								table),
					   psprintf("Add the column without it, then ALTER TABLE %s ADD CONSTRAINT ... %s NOT VALID, then VALIDATE CONSTRAINT in a later statement (it does not block writes).",
								table, con->contype == CONSTR_CHECK ? "CHECK (...)" :
								"FOREIGN KEY (...) REFERENCES ..."));
				if (con->contype == CONSTR_FOREIGN && con->pktable)
					note_lock(st, con->pktable, NULL, ShareRowExclusiveLock);
				break;
			case CONSTR_PRIMARY:
			case CONSTR_UNIQUE:
				report(st, SEV_HIGH, "unique-without-index", table,
					   psprintf("ADD COLUMN %s %s builds an index on %s while holding an ACCESS EXCLUSIVE lock",
								cname, con->contype == CONSTR_PRIMARY ? "PRIMARY KEY" : "UNIQUE",
								table),
					   psprintf("Add the column, CREATE UNIQUE INDEX CONCURRENTLY on it, then ALTER TABLE %s ADD CONSTRAINT ... %s USING INDEX.",
								table, con->contype == CONSTR_PRIMARY ? "PRIMARY KEY" : "UNIQUE"));
				break;
			default:
				break;
		}
	}

	if (identity || generated || is_serial(col->typeName))
	{
		report(st, SEV_CRITICAL, "add-column-rewrite", table,
			   psprintf("ADD COLUMN %s %s rewrites %s while holding an ACCESS EXCLUSIVE lock",
						cname, identity ? "GENERATED ... AS IDENTITY" :
						generated ? "GENERATED ALWAYS AS (...) STORED" :
						"of a serial type", table),
			   "Add the column without a default (or with a constant one), then fill it with db:backfill (shift.backfill_create) and set the default or identity afterwards.");
	}
	else if (col->typeName != NULL)
	{
		DefaultCheck dc;
		char	   *failure;

		memset(&dc, 0, sizeof(dc));
		dc.col = col;
		dc.raw_default = raw_default;
		failure = lint_try(check_default, &dc);
		if (failure)
			report(st, SEV_MEDIUM, "add-column-rewrite", table,
				   psprintf("cannot tell whether ADD COLUMN %s rewrites %s: %s",
							cname, table, failure),
				   "If the default calls a volatile function, every row is rewritten under an ACCESS EXCLUSIVE lock; add the column without it and fill it with db:backfill.");
		else if (dc.is_volatile)
			report(st, SEV_CRITICAL, "add-column-rewrite", table,
				   psprintf("ADD COLUMN %s with a volatile default (%s) rewrites %s while holding an ACCESS EXCLUSIVE lock",
							cname, dc.volatile_func ? dc.volatile_func : "?", table),
				   "Add the column without a default, SET DEFAULT in a separate statement (new rows get it), then fill the existing rows with db:backfill (shift.backfill_create).");
		else if (dc.domain_checks)
			report(st, SEV_CRITICAL, "add-column-rewrite", table,
				   psprintf("ADD COLUMN %s of a domain with constraints rewrites %s while holding an ACCESS EXCLUSIVE lock",
							cname, table),
				   "Add the column with the domain's base type, fill it with db:backfill, then change its type to the domain.");
	}

	if (not_null && raw_default == NULL && !identity && !generated &&
		!is_serial(col->typeName))
		report(st, SEV_HIGH, "add-column-not-null", table,
			   psprintf("ADD COLUMN %s NOT NULL without a default fails if %s has rows",
						cname, table),
			   "Add the column as nullable, fill it with db:backfill, then add CHECK (col IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT and SET NOT NULL; or give it a constant DEFAULT.");
}

static void
lint_type_change(LintState *st, RangeVar *rv, AlterTableCmd *cmd)
{
	ColumnDef  *def = (ColumnDef *) cmd->def;
	const char *table = rv_name(rv);
	const char *cname = qi(cmd->name);
	TypeChangeCheck tc;
	Oid			relid = lint_relid(rv);
	HeapTuple	tup;
	char	   *failure;
	const char *rewrite_hint = "Add a column of the new type, keep it in sync with shift.sync_create, fill it with db:backfill, then switch the application and drop the old column.";

	if (def == NULL || !IsA(def, ColumnDef) || def->typeName == NULL)
		return;
	if (def->raw_default != NULL)
	{
		report(st, SEV_CRITICAL, "column-type-rewrite", table,
			   psprintf("ALTER COLUMN %s TYPE ... USING rewrites %s while holding an ACCESS EXCLUSIVE lock",
						cname, table),
			   rewrite_hint);
		return;
	}
	if (!OidIsValid(relid) || cmd->name == NULL ||
		!HeapTupleIsValid(tup = SearchSysCacheAttName(relid, cmd->name)))
	{
		report(st, SEV_CRITICAL, "column-type-rewrite", table,
			   psprintf("ALTER COLUMN %s TYPE probably rewrites %s while holding an ACCESS EXCLUSIVE lock (the column is not in the catalog, so this cannot be checked)",
						cname, table),
			   rewrite_hint);
		return;
	}
	memset(&tc, 0, sizeof(tc));
	tc.relid = relid;
	tc.attnum = ((Form_pg_attribute) GETSTRUCT(tup))->attnum;
	tc.atttypid = ((Form_pg_attribute) GETSTRUCT(tup))->atttypid;
	tc.atttypmod = ((Form_pg_attribute) GETSTRUCT(tup))->atttypmod;
	tc.attcollation = ((Form_pg_attribute) GETSTRUCT(tup))->attcollation;
	ReleaseSysCache(tup);
	tc.typeName = def->typeName;
	failure = lint_try(check_type_change, &tc);
	if (failure)
		report(st, SEV_CRITICAL, "column-type-rewrite", table,
			   psprintf("ALTER COLUMN %s TYPE probably rewrites %s while holding an ACCESS EXCLUSIVE lock (%s)",
						cname, table, failure),
			   rewrite_hint);
	else if (tc.rewrite)
		report(st, SEV_CRITICAL, "column-type-rewrite", table,
			   psprintf("ALTER COLUMN %s TYPE %s rewrites %s while holding an ACCESS EXCLUSIVE lock%s",
						cname, tc.new_type, table, tc.no_cast ? " (and needs USING: there is no assignment cast)" : ""),
			   rewrite_hint);
	else
		report(st, SEV_LOW, "column-type-change", table,
			   psprintf("ALTER COLUMN %s TYPE %s does not rewrite %s but takes an ACCESS EXCLUSIVE lock",
						cname, tc.new_type, table),
			   "It is quick; run it with a lock_timeout (db:ddl) so that it never queues in front of other sessions.");
}

static void
lint_set_not_null(LintState *st, RangeVar *rv, const char *col)
{
	const char *table = rv_name(rv);
	LintCheck  *c;
	Oid			relid;

	if (col == NULL || is_new_rel(st, rv))
		return;
	if (find_check(st, rv, col, &c))
		return;
	relid = lint_relid(rv);
	if (OidIsValid(relid) && catalog_not_null(relid, col))
		return;
	report(st, SEV_HIGH, "set-not-null", table,
		   c ? psprintf("SET NOT NULL on %s.%s scans the table while holding an ACCESS EXCLUSIVE lock: constraint %s is still NOT VALID",
						table, qi(col), qi(c->conname)) :
		   psprintf("SET NOT NULL on %s.%s scans the table while holding an ACCESS EXCLUSIVE lock",
					table, qi(col)),
		   psprintf("First ALTER TABLE %s ADD CONSTRAINT ... CHECK (%s IS NOT NULL) NOT VALID, then VALIDATE CONSTRAINT (it does not block writes); SET NOT NULL then skips the scan, and the CHECK can be dropped.",
					table, qi(col)));
}

static void
lint_add_constraint(LintState *st, RangeVar *rv, Constraint *con)
{
	const char *table = rv_name(rv);
	/* "CONSTRAINT name " or nothing */
	const char *cname = con->conname ?
		psprintf("CONSTRAINT %s ", qi(con->conname)) : "";

	switch (con->contype)
	{
		case CONSTR_CHECK:
			record_not_null_checks(st, rv, con, con->raw_expr);
			if (!con->skip_validation)
				report(st, SEV_HIGH, "constraint-not-valid", table,
					   psprintf("ADD %sCHECK checks every row of %s while holding an ACCESS EXCLUSIVE lock",
								cname, table),
					   psprintf("Add it with NOT VALID (new rows are checked at once), then ALTER TABLE %s VALIDATE CONSTRAINT in a later statement, which does not block reads or writes.",
								table));
			break;
		case CONSTR_FOREIGN:
			if (con->pktable)
				note_lock(st, con->pktable, NULL, ShareRowExclusiveLock);
			if (!con->skip_validation)
				report(st, SEV_HIGH, "constraint-not-valid", table,
					   psprintf("ADD %sFOREIGN KEY checks every row of %s while blocking writes to it and to %s",
								cname, table, rv_name(con->pktable)),
					   psprintf("Add it with NOT VALID (new rows are checked at once), then ALTER TABLE %s VALIDATE CONSTRAINT in a later statement, which does not block writes.",
								table));
			break;
		case CONSTR_PRIMARY:
		case CONSTR_UNIQUE:
			if (con->indexname == NULL)
				report(st, SEV_HIGH, "unique-without-index", table,
					   psprintf("ADD %s%s builds its index on %s while holding an ACCESS EXCLUSIVE lock",
								cname, con->contype == CONSTR_PRIMARY ? "PRIMARY KEY" : "UNIQUE", table),
					   psprintf("CREATE UNIQUE INDEX CONCURRENTLY first, then ALTER TABLE %s ADD CONSTRAINT ... %s USING INDEX, which only takes a brief lock.",
								table, con->contype == CONSTR_PRIMARY ? "PRIMARY KEY" : "UNIQUE"));
			break;
		case CONSTR_EXCLUSION:
			report(st, SEV_HIGH, "unique-without-index", table,
				   psprintf("ADD %sEXCLUDE builds its index on %s while holding an ACCESS EXCLUSIVE lock",
							cname, table),
				   "An exclusion constraint cannot use an existing index; add it while the table is small, or enforce the rule another way (a unique index built CONCURRENTLY, a trigger).");
			break;
		default:
			break;
	}
}

/*
 * VALIDATE CONSTRAINT: the tracked constraints of that name on the table are
 * validated.  Each is taken off the pending lists once, so this stays
 * linear over the whole input.
 */
static void
lint_validate_constraint(LintState *st, RangeVar *rv, const char *conname)
{
	NameKey		keys[2];
	int			n;
	int			i;

	if (conname == NULL || rv->relname == NULL)
		return;
	n = lookup_keys(keys, rv->schemaname, rv->relname, conname, 0);
	for (i = 0; i < n; i++)
	{
		CheckName  *cn = hash_search(st->check_names, &keys[i], HASH_FIND, NULL);
		ListCell   *lc;

		if (cn == NULL)
			continue;
		foreach(lc, cn->pending)
		{
			LintCheck  *c = lfirst(lc);

			if (c->validated)
				continue;
			c->validated = true;
			c->columns[0]->validated++;
			c->columns[1]->validated++;
		}
		list_free(cn->pending);
		cn->pending = NIL;
	}
}

static void
lint_alter_table(LintState *st, AlterTableStmt *stmt)
{
	RangeVar   *rv = stmt->relation;
	LOCKMODE	mode;
	bool		fresh;
	const char *table;
	ListCell   *lc;
	MemoryContext old;

	if (rv == NULL)
		return;
	mode = alter_table_lock(stmt->cmds);
	st->lock = lock_name(mode);
	fresh = is_new_rel(st, rv);
	table = rv_name(rv);
	note_lock(st, rv, NULL, mode);

	old = items_begin(st);
	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst(lc);

		item_next(st);

		if (cmd == NULL || !IsA(cmd, AlterTableCmd))
			continue;
		/* what later statements may rely on, whether the table is new or not */
		if (cmd->subtype == AT_AddConstraint && cmd->def && IsA(cmd->def, Constraint) &&
			fresh)
		{
			Constraint *con = (Constraint *) cmd->def;

			if (con->contype == CONSTR_CHECK)
				record_not_null_checks(st, rv, con, con->raw_expr);
			if (con->contype == CONSTR_FOREIGN && con->pktable)
				note_lock(st, con->pktable, NULL, ShareRowExclusiveLock);
			continue;
		}
		if (cmd->subtype == AT_ValidateConstraint)
		{
			lint_validate_constraint(st, rv, cmd->name);
			continue;
		}
		if (fresh)
			continue;

		switch (cmd->subtype)
		{
			case AT_AddColumn:
				if (cmd->def && IsA(cmd->def, ColumnDef))
					lint_add_column(st, rv, (ColumnDef *) cmd->def);
				break;
			case AT_AlterColumnType:
				lint_type_change(st, rv, cmd);
				break;
			case AT_SetNotNull:
				lint_set_not_null(st, rv, cmd->name);
				break;
			case AT_AddConstraint:
				if (cmd->def && IsA(cmd->def, Constraint))
					lint_add_constraint(st, rv, (Constraint *) cmd->def);
				break;
			case AT_DropColumn:
				report(st, SEV_MEDIUM, "drop-column", table,
					   psprintf("DROP COLUMN %s.%s breaks any running code that still reads or writes it, and its data is gone",
								table, qi(cmd->name)),
					   "Deploy code that no longer uses the column first, then drop it in a contract phase of its own (a phase without down: a point of no return).");
				break;
			case AT_SetLogged:
			case AT_SetUnLogged:
				report(st, SEV_CRITICAL, "set-logged", table,
					   psprintf("SET %s rewrites %s while holding an ACCESS EXCLUSIVE lock",
								cmd->subtype == AT_SetLogged ? "LOGGED" : "UNLOGGED", table),
					   "Create a new table with the persistence you want, copy the rows with db:backfill (into =), keep it in sync with shift.sync_create, then swap the names.");
				break;
			case AT_SetTableSpace:
				report(st, SEV_CRITICAL, "set-tablespace", table,
					   psprintf("SET TABLESPACE %s copies %s while holding an ACCESS EXCLUSIVE lock",
								qi(cmd->name), table),
					   "Move it outside busy hours, or copy into a new table in the target tablespace with db:backfill and swap; indexes can be rebuilt there with CREATE INDEX CONCURRENTLY ... TABLESPACE.");
				break;
			case AT_SetAccessMethod:
				report(st, SEV_CRITICAL, "set-access-method", table,
					   psprintf("SET ACCESS METHOD %s rewrites %s while holding an ACCESS EXCLUSIVE lock",
								qi(cmd->name), table),
					   "Create a new table with the access method, copy the rows with db:backfill (into =), keep it in sync with shift.sync_create, then swap the names.");
				break;
			default:
				break;
		}
	}
	items_end(st, old);
}

/* ---------------------------------------------------------------- other statements */

static void
lint_create_index(LintState *st, IndexStmt *stmt)
{
	RangeVar   *rv = stmt->relation;
	const char *index = stmt->idxname ? qi(stmt->idxname) : "(unnamed)";
	bool		fresh = is_new_rel(st, rv);

	st->lock = lock_name(stmt->concurrent ? ShareUpdateExclusiveLock : ShareLock);
	if (stmt->concurrent && in_transaction_block(st))
		report(st, SEV_HIGH, "not-in-transaction", rv_name(rv),
			   psprintf("CREATE INDEX CONCURRENTLY %s fails inside a transaction block", index),
			   "Run it on its own: outside BEGIN ... COMMIT (db:transaction) and as the only statement of its db:exec or db:ddl call.");
	if (fresh)
	{
		if (rv && stmt->idxname)
			add_new_rel(st, rv->schemaname, stmt->idxname);
		return;
	}
	note_lock(st, rv, NULL, stmt->concurrent ? ShareUpdateExclusiveLock : ShareLock);
	if (!stmt->concurrent)
		report(st, SEV_HIGH, "index-not-concurrent", rv_name(rv),
			   psprintf("CREATE INDEX %s blocks writes to %s until the index is built",
						index, rv_name(rv)),
			   "Use CREATE INDEX CONCURRENTLY (outside a transaction block); if it fails, drop the INVALID index it leaves and try again.");
}

static bool
is_relation_drop(ObjectType type)
{
	return type == OBJECT_TABLE || type == OBJECT_INDEX ||
		type == OBJECT_MATVIEW || type == OBJECT_VIEW ||
		type == OBJECT_FOREIGN_TABLE || type == OBJECT_SEQUENCE;
}

static void
lint_drop(LintState *st, DropStmt *stmt)
{
	ListCell   *lc;
	MemoryContext old;

	if (!is_relation_drop(stmt->removeType) && stmt->removeType != OBJECT_TRIGGER)
		return;
	st->lock = lock_name(stmt->removeType == OBJECT_INDEX && stmt->concurrent ?
						 ShareUpdateExclusiveLock : AccessExclusiveLock);
	if (stmt->removeType == OBJECT_INDEX && stmt->concurrent &&
		in_transaction_block(st))
		report(st, SEV_HIGH, "not-in-transaction", NULL,
			   "DROP INDEX CONCURRENTLY fails inside a transaction block",
			   "Run it on its own: outside BEGIN ... COMMIT (db:transaction) and as the only statement of its db:exec or db:ddl call.");

	old = items_begin(st);
	foreach(lc, stmt->objects)
	{
		List	   *names = lfirst(lc);
		RangeVar   *rv;
		char	   *name;

		item_next(st);

		if (names == NULL || !IsA(names, List))
			continue;
		if (stmt->removeType == OBJECT_TRIGGER)
		{
			/* (schema.)table.trigger: the table is locked */
			if (list_length(names) < 2)
				continue;
			names = list_copy_head(names, list_length(names) - 1);
		}
		name = names_text(names);
		if (strcmp(name, "?") == 0 || list_length(names) > 3)
			continue;
		rv = makeRangeVarFromNameList(names);
		if (is_new_rel(st, rv))
		{
			if (stmt->removeType != OBJECT_TRIGGER)
				forget_new_rel(st, rv->schemaname, rv->relname);
			continue;
		}
		note_lock(st, rv, NULL, stmt->removeType == OBJECT_INDEX && stmt->concurrent ?
				  ShareUpdateExclusiveLock : AccessExclusiveLock);
		if (stmt->removeType == OBJECT_TABLE)
			report(st, SEV_MEDIUM, "drop-table", name,
				   psprintf("DROP TABLE %s breaks any running code that still uses it, and its data is gone",
							name),
				   "Deploy code that no longer uses the table first, then drop it in a contract phase of its own (a phase without down: a point of no return); or rename it aside and drop it later.");
		else if (stmt->removeType == OBJECT_INDEX && !stmt->concurrent)
			report(st, SEV_MEDIUM, "drop-index-not-concurrent", name,
				   psprintf("DROP INDEX %s takes an ACCESS EXCLUSIVE lock on its table", name),
				   "Use DROP INDEX CONCURRENTLY (outside a transaction block), which does not block reads or writes.");
	}
	items_end(st, old);
}

static void
lint_rename(LintState *st, RenameStmt *stmt)
{
	RangeVar   *rv = stmt->relation;
	const char *table;

	if (rv == NULL)
		return;
	table = rv_name(rv);
	if (stmt->renameType == OBJECT_INDEX)
		st->lock = lock_name(ShareUpdateExclusiveLock);
	else
		st->lock = lock_name(AccessExclusiveLock);
	if (is_new_rel(st, rv))
	{
		if (stmt->renameType == OBJECT_TABLE && stmt->newname)
			add_new_rel(st, rv->schemaname, stmt->newname);
		return;
	}
	note_lock(st, rv, NULL, stmt->renameType == OBJECT_INDEX ?
			  ShareUpdateExclusiveLock : AccessExclusiveLock);
	if (stmt->renameType == OBJECT_COLUMN)
		report(st, SEV_HIGH, "rename-column", table,
			   psprintf("RENAME COLUMN %s.%s TO %s breaks running code that uses the old name",
						table, qi(stmt->subname), qi(stmt->newname)),
			   "Add a column with the new name, keep both in sync with shift.sync_create, fill it with db:backfill, move the code over, then drop the old column in a contract phase.");
	else if (stmt->renameType == OBJECT_TABLE || stmt->renameType == OBJECT_VIEW ||
			 stmt->renameType == OBJECT_MATVIEW ||
			 stmt->renameType == OBJECT_FOREIGN_TABLE)
		report(st, SEV_HIGH, "rename-table", table,
			   psprintf("RENAME %s TO %s breaks running code that uses the old name",
						table, qi(stmt->newname)),
			   "Rename it and create a view with the old name in the same transaction (simple views are updatable), then drop the view once no code uses it.");
}

static void
lint_vacuum(LintState *st, VacuumStmt *stmt)
{
	ListCell   *lc;
	MemoryContext old;
	bool		full = stmt->is_vacuumcmd && option_true(stmt->options, "full");

	st->lock = lock_name(full ? AccessExclusiveLock : ShareUpdateExclusiveLock);
	if (stmt->is_vacuumcmd && in_transaction_block(st))
		report(st, SEV_HIGH, "not-in-transaction", NULL,
			   "VACUUM fails inside a transaction block",
			   "Run it on its own: outside BEGIN ... COMMIT (db:transaction) and as the only statement of its db:exec call.");
	if (!full)
		return;
	if (stmt->rels == NIL)
	{
		note_lock(st, NULL, "every table in the database", AccessExclusiveLock);
		report(st, SEV_CRITICAL, "vacuum-full", NULL,
			   "VACUUM FULL rewrites every table in the database, each while holding an ACCESS EXCLUSIVE lock",
			   "Use plain VACUUM; to shrink a bloated table online, use pg_repack or copy it into a new table with db:backfill and swap.");
		return;
	}
	old = items_begin(st);
	foreach(lc, stmt->rels)
	{
		VacuumRelation *vr = lfirst(lc);

		item_next(st);

		if (vr == NULL || !IsA(vr, VacuumRelation) || vr->relation == NULL ||
			is_new_rel(st, vr->relation))
			continue;
		note_lock(st, vr->relation, NULL, AccessExclusiveLock);
		report(st, SEV_CRITICAL, "vacuum-full", rv_name(vr->relation),
			   psprintf("VACUUM FULL rewrites %s while holding an ACCESS EXCLUSIVE lock",
						rv_name(vr->relation)),
			   "Use plain VACUUM; to shrink a bloated table online, use pg_repack or copy it into a new table with db:backfill and swap.");
	}
	items_end(st, old);
}

static void
lint_reindex(LintState *st, ReindexStmt *stmt)
{
	bool		concurrent = option_true(stmt->params, "concurrently");
	const char *what;
	LOCKMODE	mode;

	mode = concurrent ? ShareUpdateExclusiveLock :
		stmt->kind == REINDEX_OBJECT_INDEX ? AccessExclusiveLock : ShareLock;
	st->lock = lock_name(mode);
	if ((concurrent || stmt->kind == REINDEX_OBJECT_SCHEMA ||
		 stmt->kind == REINDEX_OBJECT_SYSTEM || stmt->kind == REINDEX_OBJECT_DATABASE) &&
		in_transaction_block(st))
		report(st, SEV_HIGH, "not-in-transaction", NULL,
			   psprintf("REINDEX%s fails inside a transaction block",
						concurrent ? " CONCURRENTLY" : ""),
			   "Run it on its own: outside BEGIN ... COMMIT (db:transaction) and as the only statement of its db:exec call.");
	if (stmt->relation && is_new_rel(st, stmt->relation))
		return;
	what = stmt->relation ? rv_name(stmt->relation) :
		psprintf("%s %s", stmt->kind == REINDEX_OBJECT_SCHEMA ? "schema" : "database",
				 qi(stmt->name));
	note_lock(st, stmt->relation, what, mode);
	if (!concurrent)
		report(st, SEV_HIGH, "reindex-not-concurrent", what,
			   stmt->kind == REINDEX_OBJECT_INDEX ?
			   psprintf("REINDEX INDEX %s blocks writes to its table and every query that would use the index until it is rebuilt",
						what) :
			   stmt->relation ?
			   psprintf("REINDEX TABLE %s blocks writes to it until its indexes are rebuilt", what) :
			   psprintf("REINDEX %s blocks writes to each table until its indexes are rebuilt", what),
			   "Use REINDEX CONCURRENTLY (outside a transaction block).");
}

static void
lint_lock(LintState *st, LockStmt *stmt)
{
	ListCell   *lc;
	MemoryContext old;

	st->lock = lock_name(stmt->mode);
	old = items_begin(st);
	foreach(lc, stmt->relations)
	{
		RangeVar   *rv = lfirst(lc);

		item_next(st);

		if (rv == NULL || !IsA(rv, RangeVar) || is_new_rel(st, rv))
			continue;
		if (!stmt->nowait)
			note_lock(st, rv, NULL, stmt->mode);
		report(st, stmt->mode >= ShareLock ? SEV_HIGH : SEV_LOW, "lock-table", rv_name(rv),
			   psprintf("LOCK TABLE %s IN %s MODE %s until the transaction ends",
						rv_name(rv), lock_name(stmt->mode) ? lock_name(stmt->mode) : "?",
						stmt->mode >= ShareLock ? "blocks writes (or more)" : "holds its lock"),
			   "Keep the transaction short and take the lock with NOWAIT or under a short lock_timeout (db:ddl), retrying on failure.");
	}
	items_end(st, old);
}

static void
lint_truncate(LintState *st, TruncateStmt *stmt)
{
	ListCell   *lc;
	MemoryContext old;

	st->lock = lock_name(AccessExclusiveLock);
	old = items_begin(st);
	foreach(lc, stmt->relations)
	{
		RangeVar   *rv = lfirst(lc);

		item_next(st);

		if (rv == NULL || !IsA(rv, RangeVar) || is_new_rel(st, rv))
			continue;
		note_lock(st, rv, NULL, AccessExclusiveLock);
		report(st, SEV_HIGH, "truncate", rv_name(rv),
			   psprintf("TRUNCATE %s removes every row and takes an ACCESS EXCLUSIVE lock",
						rv_name(rv)),
			   "Delete in batches (db:backfill with a where condition, or a DELETE per key range) if the rows must go while the table is in use.");
	}
	items_end(st, old);
}

static void
lint_cluster(LintState *st, ClusterStmt *stmt)
{
	st->lock = lock_name(AccessExclusiveLock);
	if (stmt->relation && is_new_rel(st, stmt->relation))
		return;
	note_lock(st, stmt->relation, "every clustered table", AccessExclusiveLock);
	report(st, SEV_CRITICAL, "cluster", stmt->relation ? rv_name(stmt->relation) : NULL,
		   stmt->relation ?
		   psprintf("CLUSTER rewrites %s while holding an ACCESS EXCLUSIVE lock",
					rv_name(stmt->relation)) :
		   "CLUSTER rewrites every previously clustered table, each while holding an ACCESS EXCLUSIVE lock",
		   "Use pg_repack --order-by, or copy the rows in order into a new table with db:backfill and swap.");
}

static void
lint_refresh(LintState *st, RefreshMatViewStmt *stmt)
{
	st->lock = lock_name(stmt->concurrent ? ExclusiveLock : AccessExclusiveLock);
	if (stmt->relation == NULL || is_new_rel(st, stmt->relation))
		return;
	note_lock(st, stmt->relation, NULL, stmt->concurrent ? ExclusiveLock : AccessExclusiveLock);
	if (!stmt->concurrent)
		report(st, SEV_MEDIUM, "refresh-not-concurrent", rv_name(stmt->relation),
			   psprintf("REFRESH MATERIALIZED VIEW %s blocks reads of it until the refresh is done",
						rv_name(stmt->relation)),
			   "Use REFRESH MATERIALIZED VIEW CONCURRENTLY (it needs a unique index on the view).");
}

static void
lint_create_table(LintState *st, CreateStmt *stmt)
{
	RangeVar   *rv = stmt->relation;
	ListCell   *lc;

	if (rv == NULL)
		return;
	/* a partition locks its parent; a foreign key the referenced table */
	if (stmt->partbound && stmt->inhRelations != NIL &&
		IsA(linitial(stmt->inhRelations), RangeVar))
	{
		st->lock = lock_name(AccessExclusiveLock);
		note_lock(st, linitial(stmt->inhRelations), NULL, AccessExclusiveLock);
	}
	foreach(lc, stmt->tableElts)
	{
		Node	   *elt = lfirst(lc);
		List	   *cons = NIL;
		ListCell   *lc2;

		if (elt && IsA(elt, ColumnDef))
			cons = ((ColumnDef *) elt)->constraints;
		else if (elt && IsA(elt, Constraint))
			cons = list_make1(elt);
		foreach(lc2, cons)
		{
			Constraint *con = lfirst(lc2);

			if (con && IsA(con, Constraint) && con->contype == CONSTR_FOREIGN &&
				con->pktable && !same_name(con->pktable->schemaname, con->pktable->relname,
										   rv->schemaname, rv->relname))
				note_lock(st, con->pktable, NULL, ShareRowExclusiveLock);
		}
	}
	foreach(lc, stmt->constraints)
	{
		Constraint *con = lfirst(lc);

		if (con && IsA(con, Constraint) && con->contype == CONSTR_FOREIGN && con->pktable)
			note_lock(st, con->pktable, NULL, ShareRowExclusiveLock);
	}
	/* CREATE TABLE IF NOT EXISTS of an existing table creates nothing */
	if (!(stmt->if_not_exists && OidIsValid(lint_relid(rv))))
		add_new_rel(st, rv->schemaname, rv->relname);
}

static void
lint_alter_enum(LintState *st, AlterEnumStmt *stmt)
{
	if (stmt->oldVal != NULL || stmt->newVal == NULL || !in_transaction_block(st))
		return;
	report(st, SEV_MEDIUM, "enum-value-in-transaction", names_text(stmt->typeName),
		   psprintf("the value %s added to enum %s inside a transaction block cannot be used until the transaction commits",
					quote_literal_cstr(stmt->newVal), names_text(stmt->typeName)),
		   "Add the value in a statement of its own, outside BEGIN ... COMMIT, before the statements that use it.");
}

/* ---------------------------------------------------------------- lock_timeout tracking */

/* A constant's text ("2s", 500), or NULL if it is not a constant. */
static char *
const_text(Node *n)
{
	A_Const    *c;

	if (n == NULL || !IsA(n, A_Const) || ((A_Const *) n)->isnull)
		return NULL;
	c = (A_Const *) n;
	switch (nodeTag(&c->val))
	{
		case T_Integer:
			return psprintf("%d", intVal(&c->val));
		case T_Float:
		case T_String:
			return pstrdup(strVal(&c->val));
		default:
			return NULL;
	}
}

/* "2s" -> 2000; -1 if it is not a valid lock_timeout */
static int
parse_timeout(const char *text)
{
	int			ms;

	if (text == NULL || !parse_int(text, &ms, GUC_UNIT_MS, NULL) || ms < 0)
		return -1;
	return ms;
}

static void
set_timeout(LintState *st, int ms, bool is_local)
{
	if (ms < 0)
		return;
	if (!is_local)
	{
		st->session_timeout = ms;
		st->local_timeout = TIMEOUT_UNSET;
	}
	else if (in_transaction_block(st))
		st->local_timeout = ms;
	/* SET LOCAL outside a transaction block has no effect */
}

static void
lint_variable_set(LintState *st, VariableSetStmt *stmt)
{
	if (stmt->kind == VAR_RESET_ALL)
	{
		set_timeout(st, st->start_timeout, false);
		return;
	}
	if (stmt->name == NULL || pg_strcasecmp(stmt->name, "lock_timeout") != 0)
		return;
	switch (stmt->kind)
	{
		case VAR_SET_VALUE:
			if (list_length(stmt->args) == 1)
				set_timeout(st, parse_timeout(const_text(linitial(stmt->args))),
							stmt->is_local);
			break;
		case VAR_SET_DEFAULT:
		case VAR_RESET:
			set_timeout(st, st->start_timeout, stmt->is_local);
			break;
		default:
			break;
	}
}

/* SELECT [pg_catalog.]set_config('lock_timeout', '2s', is_local) */
static void
lint_select(LintState *st, SelectStmt *stmt)
{
	ListCell   *lc;
	MemoryContext old;

	old = items_begin(st);
	foreach(lc, stmt->targetList)
	{
		ResTarget  *rt = lfirst(lc);
		FuncCall   *fc;
		Node	   *last;
		char	   *name;
		char	   *local;
		bool		is_local;

		item_next(st);

		if (rt == NULL || !IsA(rt, ResTarget) || rt->val == NULL ||
			!IsA(rt->val, FuncCall))
			continue;
		fc = (FuncCall *) rt->val;
		if (fc->funcname == NIL || list_length(fc->args) != 3)
			continue;
		last = llast(fc->funcname);
		if (!IsA(last, String) || strcmp(strVal(last), "set_config") != 0)
			continue;
		name = const_text(linitial(fc->args));
		if (name == NULL || pg_strcasecmp(name, "lock_timeout") != 0)
			continue;
		if (lthird(fc->args) && IsA(lthird(fc->args), A_Const) &&
			!((A_Const *) lthird(fc->args))->isnull &&
			IsA(&((A_Const *) lthird(fc->args))->val, Boolean))
			is_local = boolVal(&((A_Const *) lthird(fc->args))->val);
		else if ((local = const_text(lthird(fc->args))) == NULL ||
				 !parse_bool(local, &is_local))
			continue;
		set_timeout(st, parse_timeout(const_text(lsecond(fc->args))), is_local);
	}
	items_end(st, old);
}

static void
lint_transaction(LintState *st, TransactionStmt *stmt)
{
	switch (stmt->kind)
	{
		case TRANS_STMT_BEGIN:
		case TRANS_STMT_START:
			if (!st->explicit_tx)
				st->tx_saved_timeout = st->session_timeout;
			st->explicit_tx = true;
			break;
		case TRANS_STMT_COMMIT:
		case TRANS_STMT_ROLLBACK:
		case TRANS_STMT_PREPARE:
			if (!st->explicit_tx)
				break;
			/* SET LOCAL ends with the transaction; a rollback undoes SET too */
			st->local_timeout = TIMEOUT_UNSET;
			if (stmt->kind != TRANS_STMT_COMMIT)
				st->session_timeout = st->tx_saved_timeout;
			if (stmt->chain && stmt->kind != TRANS_STMT_PREPARE)
				st->tx_saved_timeout = st->session_timeout;
			else
				st->explicit_tx = false;
			break;
		default:
			break;
	}
}

/* ---------------------------------------------------------------- one statement */

/*
 * Lints one raw statement, then applies the lock-timeout rule to the
 * strongest lock it takes on an existing relation.
 */
static void
lint_statement(LintState *st, Node *stmt)
{
	st->lock = NULL;
	st->strongest = NoLock;
	st->strongest_on = NULL;

	switch (nodeTag(stmt))
	{
		case T_AlterTableStmt:
			lint_alter_table(st, (AlterTableStmt *) stmt);
			break;
		case T_IndexStmt:
			lint_create_index(st, (IndexStmt *) stmt);
			break;
		case T_DropStmt:
			lint_drop(st, (DropStmt *) stmt);
			break;
		case T_RenameStmt:
			lint_rename(st, (RenameStmt *) stmt);
			break;
		case T_VacuumStmt:
			lint_vacuum(st, (VacuumStmt *) stmt);
			break;
		case T_ClusterStmt:
			lint_cluster(st, (ClusterStmt *) stmt);
			break;
		case T_ReindexStmt:
			lint_reindex(st, (ReindexStmt *) stmt);
			break;
		case T_LockStmt:
			lint_lock(st, (LockStmt *) stmt);
			break;
		case T_TruncateStmt:
			lint_truncate(st, (TruncateStmt *) stmt);
			break;
		case T_RefreshMatViewStmt:
			lint_refresh(st, (RefreshMatViewStmt *) stmt);
			break;
		case T_CreateStmt:
			lint_create_table(st, (CreateStmt *) stmt);
			break;
		case T_CreateTableAsStmt:
			{
				CreateTableAsStmt *ctas = (CreateTableAsStmt *) stmt;

				if (ctas->into && ctas->into->rel)
					add_new_rel(st, ctas->into->rel->schemaname, ctas->into->rel->relname);
				break;
			}
		case T_CreateTrigStmt:
			st->lock = lock_name(ShareRowExclusiveLock);
			note_lock(st, ((CreateTrigStmt *) stmt)->relation, NULL, ShareRowExclusiveLock);
			break;
		case T_AlterEnumStmt:
			lint_alter_enum(st, (AlterEnumStmt *) stmt);
			break;
		case T_AlterTableMoveAllStmt:
			{
				AlterTableMoveAllStmt *m = (AlterTableMoveAllStmt *) stmt;
				char	   *what = psprintf("every relation in tablespace %s",
											qi(m->orig_tablespacename));

				st->lock = lock_name(AccessExclusiveLock);
				note_lock(st, NULL, what, AccessExclusiveLock);
				report(st, SEV_CRITICAL, "set-tablespace", what,
					   psprintf("ALTER ... ALL IN TABLESPACE %s SET TABLESPACE copies %s, each while holding an ACCESS EXCLUSIVE lock",
								qi(m->orig_tablespacename), what),
					   "Move relations one at a time outside busy hours, or copy into new tables with db:backfill and swap.");
				break;
			}
		case T_VariableSetStmt:
			lint_variable_set(st, (VariableSetStmt *) stmt);
			break;
		case T_SelectStmt:
			lint_select(st, (SelectStmt *) stmt);
			break;
		case T_TransactionStmt:
			lint_transaction(st, (TransactionStmt *) stmt);
			break;
		default:
			break;
	}

	if (st->strongest >= ShareLock && timeout_in_force(st) == 0)
		report(st, st->strongest >= ExclusiveLock ? SEV_HIGH : SEV_MEDIUM,
			   "missing-lock-timeout", st->strongest_on,
			   psprintf("waits for %s %s lock on %s with no lock_timeout: while it waits, every later query on %s queues behind it",
						st->strongest == ShareLock || st->strongest == ShareRowExclusiveLock ? "a" : "an",
						lock_name(st->strongest), st->strongest_on, st->strongest_on),
			   "Run it with db:ddl, which sets a short lock_timeout and retries, or SET lock_timeout = '2s' before it.");
}

/* ---------------------------------------------------------------- parts */

/* Skips blanks and comments: where a statement's own text starts. */
static int
skip_space(const char *sql, int pos, int len)
{
	while (pos < len)
	{
		if (sql[pos] == ' ' || sql[pos] == '\t' || sql[pos] == '\n' ||
			sql[pos] == '\r' || sql[pos] == '\f' || sql[pos] == '\v')
			pos++;
		else if (sql[pos] == '-' && pos + 1 < len && sql[pos + 1] == '-')
		{
			while (pos < len && sql[pos] != '\n')
				pos++;
		}
		else if (sql[pos] == '/' && pos + 1 < len && sql[pos + 1] == '*')
		{
			int			depth = 1;

			pos += 2;
			while (pos < len && depth > 0)
			{
				if (sql[pos] == '/' && pos + 1 < len && sql[pos + 1] == '*')
					depth++, pos += 2;
				else if (sql[pos] == '*' && pos + 1 < len && sql[pos + 1] == '/')
					depth--, pos += 2;
				else
					pos++;
			}
		}
		else
			break;
	}
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
	MemoryContext cxt = CurrentMemoryContext;
	List	   *volatile stmts = NIL;
	ErrorData  *volatile edata = NULL;
	int			line;
	int			col;

	PG_TRY();
	{
		stmts = raw_parser(sql, RAW_PARSE_DEFAULT);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		/* only what the parser reports about the text; nothing else is ours */
		if (ERRCODE_TO_CATEGORY(edata->sqlerrcode) != ERRCODE_SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION &&
			ERRCODE_TO_CATEGORY(edata->sqlerrcode) != ERRCODE_DATA_EXCEPTION &&
			ERRCODE_TO_CATEGORY(edata->sqlerrcode) != ERRCODE_FEATURE_NOT_SUPPORTED &&
			edata->sqlerrcode != ERRCODE_PROGRAM_LIMIT_EXCEEDED &&
			edata->sqlerrcode != ERRCODE_STATEMENT_TOO_COMPLEX)
			PG_RE_THROW();
		FlushErrorState();
	}
	PG_END_TRY();
	if (edata == NULL)
		return stmts;

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
	report(st, SEV_CRITICAL, "syntax-error", NULL,
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
		st->line = line_at(sql, skip_space(sql, Min(Max(raw->stmt_location, 0), len), len),
						   &scanned, &line);
		{
			/* from its first word to its end, and a -- comment after its ';' on that line */
			int			from = skip_space(sql, Min(Max(raw->stmt_location, 0), len), len);
			int			to = raw->stmt_len > 0 ? Min(raw->stmt_location + raw->stmt_len, len) : len;

			if (to < len && sql[to] == ';')
			{
				int			k = to + 1;

				while (k < len && (sql[k] == ' ' || sql[k] == '\t'))
					k++;
				if (k + 1 < len && sql[k] == '-' && sql[k + 1] == '-')
				{
					while (k < len && sql[k] != '\n')
						k++;
					to = k;
				}
			}
			st->text = pnstrdup(sql + from, Max(to - from, 0));
			st->allows_known = false;
		}
		lint_statement(st, raw->stmt);
		st->text = NULL;
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
	st->keep = AllocSetContextCreate(CurrentMemoryContext, "pg_shift lint state",
									 ALLOCSET_DEFAULT_SIZES);
	st->new_rel_counts = name_table(st, "pg_shift lint new relations", sizeof(NewRelCount));
	st->new_rel_lists = name_table(st, "pg_shift lint new relation lists", sizeof(NewRelList));
	st->check_columns = name_table(st, "pg_shift lint checks by column", sizeof(CheckColumn));
	st->check_names = name_table(st, "pg_shift lint checks by name", sizeof(CheckName));
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

			timeout = parse_timeout(value);
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
