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

#include "nodes/nodes.h"
#include "postgres_ext.h"

/*
 * Parses prefix || text with the server's parser and returns the one
 * statement it must be (no second statement, no $n parameters).  owner
 * names what the fragment belongs to in errors, e.g. 'backfill job "x"';
 * what names the fragment ("set", "where", ...).
 */
extern Node *shift_parse_fragment(const char *owner, const char *what, const char *prefix,
								  const char *text);

/* A SELECT with nothing but a target list (and a WHERE clause when allowed). */
extern bool shift_is_plain_select(Node *stmt, bool with_where);

/* Registers the sync triggers' cache invalidation callbacks (from _PG_init). */
extern void shift_sync_init(void);

/*
 * Runs fn(arg) in an internal subtransaction: NULL when it succeeded, else
 * the error it raised (the subtransaction rolled back).  Cancels and
 * shutdowns are not caught.
 */
extern struct ErrorData *shift_try(void (*fn) (void *arg), void *arg);

/* ---- control.c: who pg_shift acts as ---- */

/* A role and search_path made current by shift_as_begin, until shift_as_end. */
typedef struct ShiftAs
{
	Oid			saved_user;
	int			saved_sec;
	int			guc_level;
} ShiftAs;

extern Oid	shift_extension_owner(void);
extern Oid	shift_caller(void);
extern bool shift_may_act_for(const char *owner);
extern void shift_as_begin(ShiftAs *as, Oid role, const char *search_path);
extern void shift_as_end(ShiftAs *as);
extern int	shift_ctl_execute(const char *sql, int nargs, Oid *argtypes, Datum *values,
							  const char *nulls, bool read_only, long count);
extern char *shift_pinned_search_path(const char *path);

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

struct RelationData;
struct StringInfoData;
extern char *shift_qualified_operator(Oid opno);
extern char *shift_qualified_type(Oid type, int32 typmod);
extern char *shift_collate_clause(Oid collation);
extern void shift_index_key_ops(struct RelationData *index, int i, ShiftKeyOps *ops);
extern void shift_type_key_ops(Oid type, Oid collation, ShiftKeyOps *ops);
extern void shift_append_compare(struct StringInfoData *s, const char *left, Oid opno,
								 const char *right);

#endif							/* PG_SHIFT_H */
