/*-------------------------------------------------------------------------
 *
 * lint.h
 *	  What the files of shift.lint share (private to them):
 *
 *	  lint.c		  the SQL entry points; each part parsed and walked
 *					  statement by statement
 *	  lint_rules.c	  the walker: one function per kind of statement, and
 *					  the lock_timeout in force
 *	  lint_alter.c	  ALTER TABLE, subcommand by subcommand
 *	  lint_analyze.c  parse analysis that runs no user code (a default's
 *					  volatility, whether a type change rewrites)
 *	  lint_facts.c	  what lint knows beyond the statement: earlier
 *					  statements' tables, NOT NULL checks and added
 *					  columns, the catalog's
 *	  lint_report.c	  findings: naming objects, shift:allow comments, the
 *					  output rows and the locks a statement takes
 *
 *-------------------------------------------------------------------------
 */
#ifndef PG_SHIFT_LINT_H
#define PG_SHIFT_LINT_H

#include "access/tupdesc.h"
#include "nodes/parsenodes.h"
#include "storage/lockdefs.h"
#include "utils/hsearch.h"
#include "utils/tuplestore.h"

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

/*
 * The entries of new_rel_lists (a group's LintRels; forgotten ones are
 * skipped) and of check_names (the constraints of a name not validated yet).
 */
typedef struct NameList
{
	NameKey		key;
	List	   *items;
} NameList;

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

/*
 * added_columns: a column an ALTER TABLE ... ADD COLUMN added to an existing
 * table (with IF NOT EXISTS: one the catalog does not have), or such a column
 * renamed, filed under the table as written and the phase
 * (lint_column_is_new).  names_moved (see LintState) says whether the
 * table's name may since mean another table.
 */
typedef struct AddedColumn
{
	NameKey		key;
	bool		live;			/* not dropped or renamed since */
	int64		names_moved;	/* LintState.names_moved when it was added */
} AddedColumn;

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
	HTAB	   *new_rel_lists;	/* NameList of LintRel */
	HTAB	   *check_columns;	/* CheckColumn */
	HTAB	   *check_names;	/* NameList of LintCheck */
	HTAB	   *added_columns;	/* AddedColumn */
	int64		names_moved;	/* table renames, drops, SET SCHEMA and
								 * search_path changes so far */
	int64		checks_added;
	int			findings;		/* reported so far */

	/* the statement being linted */
	MemoryContext stmt_cxt;		/* reset after each statement */
	MemoryContext item_cxt;		/* reset after each of its items */
	int			text_from;		/* its text in sql: from its first token ... */
	int			text_to;		/* ... to its ';' or the end (-1: none) */
	uint32		allows;			/* the rules it allows (rule_bit) ... */
	bool		allows_known;	/* ... once read from its comments */
	const char *lock;			/* lock on its main object, or NULL */
	LOCKMODE	strongest;		/* strongest lock on an existing relation */
	char	   *strongest_on;	/* ... and which */
} LintState;

/* lint_check_default's question and answer */
typedef struct DefaultCheck
{
	ColumnDef  *col;
	Node	   *raw_default;	/* NULL: none given */
	char	   *volatile_func;	/* out: the volatile function, or NULL */
	bool		is_volatile;	/* out */
	bool		domain_checks;	/* out: a domain with constraints */
} DefaultCheck;

/* lint_check_type_change's question and answer */
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

/* ---- lint_rules.c */
extern void lint_statement(LintState *st, Node *stmt);
extern int	lint_parse_timeout(const char *text);

/* ---- lint_alter.c */
extern void lint_alter_table(LintState *st, AlterTableStmt *stmt);

/* ---- lint_analyze.c */
extern char *lint_try(void (*fn) (void *arg), void *arg);
extern void lint_check_default(void *arg);	/* a DefaultCheck */
extern void lint_check_type_change(void *arg);	/* a TypeChangeCheck */

/* ---- lint_facts.c */
extern Oid	lint_relid(const RangeVar *rv);
extern HTAB *lint_name_table(LintState *st, const char *what, Size entrysize);
extern bool lint_is_new_rel(LintState *st, const RangeVar *rv);
extern void lint_add_new_rel(LintState *st, const char *schema, const char *name);
extern void lint_forget_new_rel(LintState *st, const char *schema, const char *name);
extern void lint_record_not_null_checks(LintState *st, const RangeVar *rv,
										Constraint *con, Node *expr);
extern bool lint_find_check(LintState *st, const RangeVar *rv, const char *col,
							LintCheck **last);
extern void lint_validate_constraint(LintState *st, RangeVar *rv, const char *conname);
extern bool lint_catalog_not_null(Oid relid, const char *col);
extern void lint_add_column_fact(LintState *st, const RangeVar *rv, const char *col,
								 bool if_not_exists);
extern bool lint_column_is_new(LintState *st, const RangeVar *rv, const char *col);
extern void lint_forget_column(LintState *st, const RangeVar *rv, const char *col);

/* ---- lint_report.c */
extern const char *lint_lock_name(LOCKMODE mode);
extern char *lint_rv_name(const RangeVar *rv);
extern char *lint_names_text(List *names);
extern const char *lint_qi(const char *name);
extern void lint_report(LintState *st, const char *severity, const char *rule,
						const char *object, const char *message, const char *hint);
extern void lint_note_lock(LintState *st, const RangeVar *rv, const char *what,
						   LOCKMODE mode);
extern MemoryContext lint_items_begin(LintState *st);
extern void lint_item_next(LintState *st);
extern void lint_items_end(LintState *st, MemoryContext old);

#endif							/* PG_SHIFT_LINT_H */
