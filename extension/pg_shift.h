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

#endif							/* PG_SHIFT_H */
