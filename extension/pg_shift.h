/*-------------------------------------------------------------------------
 *
 * pg_shift.h
 *	  What the extension's C files share: checks of the SQL fragments users
 *	  give (sqlfrag.c), the sync layer's start-up hook (sync.c) and running
 *	  a piece of work in a subtransaction (pg_shift.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PG_SHIFT_H
#define PG_SHIFT_H

#include "access/attnum.h"
#include "nodes/nodes.h"
#include "nodes/pg_list.h"
#include "postgres_ext.h"

/*
 * Limits on the SQL users hand to pg_shift; beyond them shift_check_size
 * refuses it (SQLSTATE 54000) before parsing anything.  PostgreSQL parses a
 * text in one piece, and its raw parse tree alone takes up to about 90
 * bytes of memory per byte of SQL (1 MB of "SELECT 1;" made 86 MB); a
 * 200 kB select list once took 4.7 GB through a quadratic path, and a
 * backend the kernel kills for memory restarts the whole cluster.  Each
 * limit keeps the worst case of one call under 256 MB and a second of CPU
 * on a small machine (measured on this project's 2-core test machine),
 * while being far above what a migration writes:
 *	 - a fragment (a backfill's set, where, select or throttle_query, a
 *	   sync's assignments or select list): 128 kB.  What pg_shift does with
 *	   one costs far more than parsing it: sync_create compiles a select
 *	   list into several statements, about 1.1 kB of memory and 5 us of CPU
 *	   per byte (a 1 MB one took 1 GB and 5 s), so 128 kB is ~150 MB and
 *	   0.7 s.  The widest real fragment, a select list casting each of a
 *	   table's 1600 columns (PostgreSQL's maximum), is about 64 kB.
 *	 - a text lint parses at once (shift.lint's SQL, one part of
 *	   shift.lint_script, i.e. one db:exec): 512 kB.  Parsing and linting
 *	   take 0.3 to 0.6 s of CPU per MB for the costliest shapes tried, and
 *	   on a busy 2-core machine the wall clock was up to twice that: a
 *	   million fuzzed inputs up to 2 MB met the 1 s statement_timeout twice,
 *	   at 0.8 and 1.9 MB.  A hand-written migration statement is a few kB;
 *	   only a whole schema or data load comes near, and it can be split into
 *	   several db:exec calls.
 *	 - all parts of one shift.lint_script call (the array as stored): 1 MB.
 *	   Parts are parsed and freed one by one, so this bounds only the time.
 *	 - a lock_timeout given to lint: 1 kB (it is a duration such as '2s').
 *	 - lint's output: 10 000 findings in one call.  A statement naming many
 *	   relations has a finding for each (DROP TABLE a, b, ... of 130 000
 *	   tables made that many rows, spilled to a temporary file: over a
 *	   second of I/O for 0.3 s of CPU); a migration has a handful.
 */
#define SHIFT_MAX_FRAGMENT		(128 * 1024)
#define SHIFT_MAX_LINT_PART		(512 * 1024)
#define SHIFT_MAX_LINT_SCRIPT	(1024 * 1024)
#define SHIFT_MAX_SETTING		1024
#define SHIFT_MAX_LINT_FINDINGS	10000

/*
 * The most scanning work a text may cost in runs of operator characters,
 * in units of (run length)^2: see shift_check_scannable.  One unit took
 * 1.8 ns here, so lint's limit is about 0.2 s; a fragment's is a tenth of
 * that, since it is parsed again in each statement made from it.  A real
 * text's runs are a few characters long (a run of 3 000 is 1e7 alone).
 */
#define SHIFT_MAX_SCAN_COST		UINT64CONST(100000000)
#define SHIFT_MAX_FRAGMENT_SCAN_COST UINT64CONST(10000000)

#define SHIFT_FRAGMENT_HINT \
	"A fragment is one expression, condition or list; move long logic into a function and call it."

/*
 * Refuses a text of size bytes above limit with SQLSTATE 54000
 * (program_limit_exceeded), naming it (what), its size and the limit; hint
 * says what to do instead.
 */
extern void shift_check_size(const char *what, Size size, Size limit, const char *hint);

/*
 * Refuses (SQLSTATE 54000) a text whose runs of operator characters would
 * make PostgreSQL's scanner work more than limit (SHIFT_MAX_SCAN_COST or
 * SHIFT_MAX_FRAGMENT_SCAN_COST); what names it.
 */
extern void shift_check_scannable(const char *what, const char *text, Size len,
								  uint64 limit);

/*
 * Parses prefix || text with the server's parser and returns the one
 * statement it must be (no second statement, no $n parameters).  owner
 * names what the fragment belongs to in errors, e.g. 'backfill job "x"';
 * what names the fragment ("set", "where", ...).
 */
extern Node *shift_parse_fragment(const char *owner, const char *what, const char *prefix,
								  const char *text);

/*
 * Where a fragment the user gave (what: "set", "select", ...; text: as
 * given) sits in a statement built around it: byte offsets from, to.
 */
typedef struct ShiftFragSpan
{
	const char *what;
	const char *text;
	int			from;
	int			to;
} ShiftFragSpan;

/*
 * Raises edata, an error from parsing or analyzing sql, again as the
 * fragment's it points into ("set of backfill job "x": column ... does not
 * exist", the fragment and the character in it as detail), not as the
 * statement built around it, which the user never wrote; any other error
 * as it was.  Never returns.
 */
extern void shift_raise_in_fragment(const char *owner, const char *sql, int nspans,
									const ShiftFragSpan *spans, struct ErrorData *edata) pg_attribute_noreturn();

/*
 * Parses sql with the server's parser (raw_parser, RAW_PARSE_DEFAULT): its
 * statements, and *error NULL.  If the parser raises an error: NIL, and
 * *error a copy of the error (in the caller's memory context), the error
 * state cleared; the caller words it its own way or raises it again with
 * ReThrowError.  The one place pg_shift catches the parser's errors.
 */
extern List *shift_raw_parse(const char *sql, struct ErrorData **error);

/*
 * The name of the one column expr is, if it is nothing but a column, maybe
 * cast ("id", "\"Id\"::bigint"); NULL otherwise, also for text that does not
 * parse.  shift_internal._plain_column in SQL, sync_plain_column in the trigger.
 */
extern char *shift_plain_column_name(const char *expr);

/* A SELECT with nothing but a target list (and a WHERE clause when allowed). */
extern bool shift_is_plain_select(Node *stmt, bool with_where);

/* What a fragment must parse as (shift_check_fragment). */
typedef enum ShiftFragmentKind
{
	SHIFT_FRAGMENT_SET,			/* SET assignments only */
	SHIFT_FRAGMENT_WHERE,		/* a condition only */
	SHIFT_FRAGMENT_SELECT,		/* a list of expressions only */
	SHIFT_FRAGMENT_QUERY		/* one SELECT */
} ShiftFragmentKind;

/*
 * Raises (SQLSTATE 42601) unless fragment what of owner (text; NULL if it
 * has none), put after prefix, parses as kind alone: "<what> of <owner>
 * must be <must_be>", with the text as detail if show_text, and hint if not
 * NULL.  A fragment that is more (a second statement, a FROM, an
 * unbalanced parenthesis, a trailing comment) could otherwise change the
 * statement it is put into.
 */
extern void shift_check_fragment(const char *owner, const char *what, const char *prefix,
								 const char *text, ShiftFragmentKind kind, const char *must_be,
								 bool show_text, const char *hint);

/*
 * A copy's select => (a backfill's, a capture's): a list of expressions
 * only, which the statement puts between SELECT and FROM.
 */
extern void shift_check_select_fragment(const char *owner, const char *text);

/* Registers the sync triggers' cache invalidation callbacks (from _PG_init). */
extern void shift_sync_init(void);

/*
 * Installs lint's needs_fmgr_hook, which refuses user functions while lint
 * analyses SQL (from _PG_init; see lint.c).
 */
extern void shift_lint_init(void);

/*
 * Runs fn(arg) in an internal subtransaction: NULL when it succeeded, else
 * the error it raised (the subtransaction rolled back).  Cancels and
 * shutdowns are not caught.
 */
extern struct ErrorData *shift_try(void (*fn) (void *arg), void *arg);

/*
 * Runs fn(arg), which must take no lock, buffer pin or snapshot (raw
 * parsing, reading a parse tree): NULL when it succeeded, else the error it
 * raised, copied into the caller's memory context.  No subtransaction, and
 * every error is caught.
 */
extern struct ErrorData *shift_catch(void (*fn) (void *arg), void *arg);

/* ---- control.c: who pg_shift acts as ---- */

/* A role and search_path made current by shift_as_begin, until shift_as_end. */
typedef struct ShiftAs
{
	Oid			saved_user;
	int			saved_sec;
	int			guc_level;
} ShiftAs;

extern Oid	shift_extension_owner(void);
extern char *shift_sql_version(void);
extern Oid	shift_caller(void);
extern bool shift_may_act_for(const char *owner);
extern void shift_as_begin(ShiftAs *as, Oid role, const char *search_path);
extern void shift_as_end(ShiftAs *as);
extern int	shift_ctl_execute(const char *sql, int nargs, Oid *argtypes, Datum *values,
							  const char *nulls, bool read_only, long count);
struct _SPI_plan;
extern void shift_free_plans(struct _SPI_plan **plans, int n);
extern char *shift_pinned_search_path(const char *path);

/* ---- backfill_job.c: a table's key and columns, as a backfill and a capture read them ---- */

struct RelationData;

/*
 * The attribute numbers of the columns key_columns (a List of C strings)
 * names in rel, checked: each exists (no system column), none twice, at
 * most INDEX_MAX_KEYS.  owner names whose key it is in errors ('backfill
 * job "x"'); hint says what key_columns must name.
 */
extern void shift_key_column_attnums(struct RelationData *rel, List *key_columns,
									 const char *owner, const char *hint, AttrNumber *attnums);

/*
 * The valid unique btree index of rel whose key columns are exactly the n
 * columns attnums, in that order, without expressions or a WHERE clause
 * (the primary key first if several are); InvalidOid if there is none.
 * Raises if one of those columns may be NULL.
 */
extern Oid	shift_key_index(struct RelationData *rel, int n, const AttrNumber *attnums);

/*
 * The columns of into (a table being copied into) that source has too, by
 * name, in into's order: not dropped, not generated.
 */
extern List *shift_copy_columns(struct RelationData *into, Oid source);

/* ---- sqlgen.c: generated SQL that no search_path can redirect ---- */

/* The btree ordering of one key column: its operators and collation. */
typedef struct ShiftKeyOps
{
	Oid			opfamily;
	Oid			opcintype;		/* the type the family's operators take */
	Oid			collation;		/* InvalidOid: none */
	Oid			lt;
	Oid			le;
	Oid			eq;
	Oid			ge;
	Oid			gt;
	Oid			nsp;			/* the schema of lt */
	bool		same_nsp;		/* all five are in nsp */
} ShiftKeyOps;

struct StringInfoData;
extern char *shift_qualified_operator(Oid opno);
extern char *shift_qualified_type(Oid type, int32 typmod);
extern char *shift_collate_clause(Oid collation);
extern void shift_index_key_ops(struct RelationData *index, int i, ShiftKeyOps *ops);
extern void shift_type_key_ops(Oid type, Oid collation, ShiftKeyOps *ops);
extern void shift_append_compare(struct StringInfoData *s, const char *left, Oid opno,
								 const char *right);

#endif							/* PG_SHIFT_H */
