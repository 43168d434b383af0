/*-------------------------------------------------------------------------
 *
 * lint_alter.c
 *	  Lint of ALTER TABLE, subcommand by subcommand: ADD COLUMN (rewrites,
 *	  NOT NULL without a default, constraints checked under the lock), ALTER
 *	  COLUMN TYPE (rewrite or not), SET NOT NULL (proven by a validated
 *	  CHECK or not), ADD CONSTRAINT (NOT VALID or not), DROP COLUMN, SET
 *	  LOGGED/UNLOGGED, SET TABLESPACE and SET ACCESS METHOD.  A table created
 *	  earlier in the same phase is new: only the facts later statements rely
 *	  on are recorded for it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_attribute.h"
#include "commands/tablecmds.h"
#include "utils/syscache.h"

#include "lint.h"
#include "pg_shift.h"

/* ---------------------------------------------------------------- ALTER TABLE */

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

typedef struct LockLevel
{
	List	   *cmds;
	LOCKMODE	mode;
} LockLevel;

static void
lock_level(void *arg)
{
	LockLevel  *ll = arg;

	ll->mode = AlterTableGetLockLevel(ll->cmds);
}

static LOCKMODE
alter_table_lock(List *cmds)
{
	LockLevel	ll = {cmds, AccessExclusiveLock};
	ErrorData  *error;

	/*
	 * AlterTableGetLockLevel() reads only the command list, which the raw
	 * parser fills in; it raises an error only for a subcommand it does not
	 * know, and then the strongest lock is the safe answer.
	 */
	error = shift_catch(lock_level, &ll);
	if (error)
	{
		FreeErrorData(error);
		return AccessExclusiveLock;
	}
	return ll.mode;
}

static void
lint_add_column(LintState *st, RangeVar *rv, ColumnDef *col)
{
	const char *table = lint_rv_name(rv);
	const char *cname = lint_qi(col->colname);
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
				lint_report(st, SEV_HIGH, "constraint-not-valid", table,
							psprintf("ADD COLUMN %s with a %s constraint checks every row of %s while holding an ACCESS EXCLUSIVE lock",
									 cname, con->contype == CONSTR_CHECK ? "CHECK" : "REFERENCES",
									 table),
							psprintf("Add the column without it, then ALTER TABLE %s ADD CONSTRAINT ... %s NOT VALID, then VALIDATE CONSTRAINT in a later statement (it does not block writes).",
									 table, con->contype == CONSTR_CHECK ? "CHECK (...)" :
									 "FOREIGN KEY (...) REFERENCES ..."));
				if (con->contype == CONSTR_FOREIGN && con->pktable)
					lint_note_lock(st, con->pktable, NULL, ShareRowExclusiveLock);
				break;
			case CONSTR_PRIMARY:
			case CONSTR_UNIQUE:
				lint_report(st, SEV_HIGH, "unique-without-index", table,
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
		lint_report(st, SEV_CRITICAL, "add-column-rewrite", table,
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
		failure = lint_try(lint_check_default, &dc);
		if (failure)
			lint_report(st, SEV_MEDIUM, "add-column-rewrite", table,
						psprintf("cannot tell whether ADD COLUMN %s rewrites %s: %s",
								 cname, table, failure),
						"If the default calls a volatile function, every row is rewritten under an ACCESS EXCLUSIVE lock; add the column without it and fill it with db:backfill.");
		else if (dc.is_volatile)
			lint_report(st, SEV_CRITICAL, "add-column-rewrite", table,
						psprintf("ADD COLUMN %s with a volatile default (%s) rewrites %s while holding an ACCESS EXCLUSIVE lock",
								 cname, dc.volatile_func ? dc.volatile_func : "?", table),
						"Add the column without a default, SET DEFAULT in a separate statement (new rows get it), then fill the existing rows with db:backfill (shift.backfill_create).");
		else if (dc.domain_checks)
			lint_report(st, SEV_CRITICAL, "add-column-rewrite", table,
						psprintf("ADD COLUMN %s of a domain with constraints rewrites %s while holding an ACCESS EXCLUSIVE lock",
								 cname, table),
						"Add the column with the domain's base type, fill it with db:backfill, then change its type to the domain.");
	}

	if (not_null && raw_default == NULL && !identity && !generated &&
		!is_serial(col->typeName))
		lint_report(st, SEV_HIGH, "add-column-not-null", table,
					psprintf("ADD COLUMN %s NOT NULL without a default fails if %s has rows",
							 cname, table),
					"Add the column as nullable, fill it with db:backfill, then add CHECK (col IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT and SET NOT NULL; or give it a constant DEFAULT.");
}

static void
lint_type_change(LintState *st, RangeVar *rv, AlterTableCmd *cmd)
{
	ColumnDef  *def = (ColumnDef *) cmd->def;
	const char *table = lint_rv_name(rv);
	const char *cname = lint_qi(cmd->name);
	TypeChangeCheck tc;
	Oid			relid = lint_relid(rv);
	HeapTuple	tup;
	char	   *failure;
	const char *rewrite_hint = "Add a column of the new type, keep it in sync with shift.sync_create, fill it with db:backfill, then switch the application and drop the old column.";

	if (def == NULL || !IsA(def, ColumnDef) || def->typeName == NULL)
		return;
	if (def->raw_default != NULL)
	{
		lint_report(st, SEV_CRITICAL, "column-type-rewrite", table,
					psprintf("ALTER COLUMN %s TYPE ... USING rewrites %s while holding an ACCESS EXCLUSIVE lock",
							 cname, table),
					rewrite_hint);
		return;
	}
	if (!OidIsValid(relid) || cmd->name == NULL ||
		!HeapTupleIsValid(tup = SearchSysCacheAttName(relid, cmd->name)))
	{
		lint_report(st, SEV_CRITICAL, "column-type-rewrite", table,
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
	failure = lint_try(lint_check_type_change, &tc);
	if (failure)
		lint_report(st, SEV_CRITICAL, "column-type-rewrite", table,
					psprintf("ALTER COLUMN %s TYPE probably rewrites %s while holding an ACCESS EXCLUSIVE lock (%s)",
							 cname, table, failure),
					rewrite_hint);
	else if (tc.rewrite)
		lint_report(st, SEV_CRITICAL, "column-type-rewrite", table,
					psprintf("ALTER COLUMN %s TYPE %s rewrites %s while holding an ACCESS EXCLUSIVE lock%s",
							 cname, tc.new_type, table, tc.no_cast ? " (and needs USING: there is no assignment cast)" : ""),
					rewrite_hint);
	else
		lint_report(st, SEV_LOW, "column-type-change", table,
					psprintf("ALTER COLUMN %s TYPE %s does not rewrite %s but takes an ACCESS EXCLUSIVE lock",
							 cname, tc.new_type, table),
					"It is quick; run it with a lock_timeout (db:ddl) so that it never queues in front of other sessions.");
}

static void
lint_set_not_null(LintState *st, RangeVar *rv, const char *col)
{
	const char *table = lint_rv_name(rv);
	LintCheck  *c;
	Oid			relid;

	if (col == NULL || lint_is_new_rel(st, rv))
		return;
	if (lint_find_check(st, rv, col, &c))
		return;
	relid = lint_relid(rv);
	if (OidIsValid(relid) && lint_catalog_not_null(relid, col))
		return;
	lint_report(st, SEV_HIGH, "set-not-null", table,
				c ? psprintf("SET NOT NULL on %s.%s scans the table while holding an ACCESS EXCLUSIVE lock: constraint %s is still NOT VALID",
							 table, lint_qi(col), lint_qi(c->conname)) :
				psprintf("SET NOT NULL on %s.%s scans the table while holding an ACCESS EXCLUSIVE lock",
						 table, lint_qi(col)),
				psprintf("First ALTER TABLE %s ADD CONSTRAINT ... CHECK (%s IS NOT NULL) NOT VALID, then VALIDATE CONSTRAINT (it does not block writes); SET NOT NULL then skips the scan, and the CHECK can be dropped.",
						 table, lint_qi(col)));
}

static void
lint_add_constraint(LintState *st, RangeVar *rv, Constraint *con)
{
	const char *table = lint_rv_name(rv);
	/* "CONSTRAINT name " or nothing */
	const char *cname = con->conname ?
		psprintf("CONSTRAINT %s ", lint_qi(con->conname)) : "";

	switch (con->contype)
	{
		case CONSTR_CHECK:
			lint_record_not_null_checks(st, rv, con, con->raw_expr);
			if (!con->skip_validation)
				lint_report(st, SEV_HIGH, "constraint-not-valid", table,
							psprintf("ADD %sCHECK checks every row of %s while holding an ACCESS EXCLUSIVE lock",
									 cname, table),
							psprintf("Add it with NOT VALID (new rows are checked at once), then ALTER TABLE %s VALIDATE CONSTRAINT in a later statement, which does not block reads or writes.",
									 table));
			break;
		case CONSTR_FOREIGN:
			if (con->pktable)
				lint_note_lock(st, con->pktable, NULL, ShareRowExclusiveLock);
			if (!con->skip_validation)
				lint_report(st, SEV_HIGH, "constraint-not-valid", table,
							psprintf("ADD %sFOREIGN KEY checks every row of %s while blocking writes to it and to %s",
									 cname, table, lint_rv_name(con->pktable)),
							psprintf("Add it with NOT VALID (new rows are checked at once), then ALTER TABLE %s VALIDATE CONSTRAINT in a later statement, which does not block writes.",
									 table));
			break;
		case CONSTR_PRIMARY:
		case CONSTR_UNIQUE:
			if (con->indexname == NULL)
				lint_report(st, SEV_HIGH, "unique-without-index", table,
							psprintf("ADD %s%s builds its index on %s while holding an ACCESS EXCLUSIVE lock",
									 cname, con->contype == CONSTR_PRIMARY ? "PRIMARY KEY" : "UNIQUE", table),
							psprintf("CREATE UNIQUE INDEX CONCURRENTLY first, then ALTER TABLE %s ADD CONSTRAINT ... %s USING INDEX, which only takes a brief lock.",
									 table, con->contype == CONSTR_PRIMARY ? "PRIMARY KEY" : "UNIQUE"));
			break;
		case CONSTR_EXCLUSION:
			lint_report(st, SEV_HIGH, "unique-without-index", table,
						psprintf("ADD %sEXCLUDE builds its index on %s while holding an ACCESS EXCLUSIVE lock",
								 cname, table),
						"An exclusion constraint cannot use an existing index; add it while the table is small, or enforce the rule another way (a unique index built CONCURRENTLY, a trigger).");
			break;
		default:
			break;
	}
}

void
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
	st->lock = lint_lock_name(mode);
	fresh = lint_is_new_rel(st, rv);
	table = lint_rv_name(rv);
	lint_note_lock(st, rv, NULL, mode);

	old = lint_items_begin(st);
	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst(lc);

		lint_item_next(st);

		if (cmd == NULL || !IsA(cmd, AlterTableCmd))
			continue;
		/* what later statements may rely on, whether the table is new or not */
		if (cmd->subtype == AT_AddConstraint && cmd->def && IsA(cmd->def, Constraint) &&
			fresh)
		{
			Constraint *con = (Constraint *) cmd->def;

			if (con->contype == CONSTR_CHECK)
				lint_record_not_null_checks(st, rv, con, con->raw_expr);
			if (con->contype == CONSTR_FOREIGN && con->pktable)
				lint_note_lock(st, con->pktable, NULL, ShareRowExclusiveLock);
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
				{
					lint_add_column(st, rv, (ColumnDef *) cmd->def);
					lint_add_column_fact(st, rv, ((ColumnDef *) cmd->def)->colname,
										 cmd->missing_ok);
				}
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
				{
					/* the way back from this phase's ADD COLUMN loses nothing */
					bool		is_new = lint_column_is_new(st, rv, cmd->name);

					lint_forget_column(st, rv, cmd->name);
					if (is_new)
						break;
				}
				lint_report(st, SEV_MEDIUM, "drop-column", table,
							psprintf("DROP COLUMN %s.%s breaks any running code that still reads or writes it, and its data is gone",
									 table, lint_qi(cmd->name)),
							"Deploy code that no longer uses the column first, then drop it in a contract phase of its own (a phase without down: a point of no return).");
				break;
			case AT_SetLogged:
			case AT_SetUnLogged:
				lint_report(st, SEV_CRITICAL, "set-logged", table,
							psprintf("SET %s rewrites %s while holding an ACCESS EXCLUSIVE lock",
									 cmd->subtype == AT_SetLogged ? "LOGGED" : "UNLOGGED", table),
							"Create a new table with the persistence you want, copy the rows with db:backfill (into =), keep it in sync with shift.sync_create, then swap the names.");
				break;
			case AT_SetTableSpace:
				lint_report(st, SEV_CRITICAL, "set-tablespace", table,
							psprintf("SET TABLESPACE %s copies %s while holding an ACCESS EXCLUSIVE lock",
									 lint_qi(cmd->name), table),
							"Move it outside busy hours, or copy into a new table in the target tablespace with db:backfill and swap; indexes can be rebuilt there with CREATE INDEX CONCURRENTLY ... TABLESPACE.");
				break;
			case AT_SetAccessMethod:
				lint_report(st, SEV_CRITICAL, "set-access-method", table,
							psprintf("SET ACCESS METHOD %s rewrites %s while holding an ACCESS EXCLUSIVE lock",
									 lint_qi(cmd->name), table),
							"Create a new table with the access method, copy the rows with db:backfill (into =), keep it in sync with shift.sync_create, then swap the names.");
				break;
			default:
				break;
		}
	}
	lint_items_end(st, old);
}
