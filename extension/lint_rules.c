/*-------------------------------------------------------------------------
 *
 * lint_rules.c
 *	  The statement walker: lint_statement hands each raw statement to the
 *	  rule for its kind (ALTER TABLE to lint_alter.c), then applies the
 *	  lock-timeout rule to the strongest lock it takes.  Also tracks the
 *	  transaction block and the lock_timeout in force (SET, SET LOCAL, RESET,
 *	  set_config, BEGIN, COMMIT, ROLLBACK), which later statements' rules
 *	  depend on.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "lint.h"

/* ---------------------------------------------------------------- helpers */

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

static bool
same_name(const char *schema1, const char *name1,
		  const char *schema2, const char *name2)
{
	if (name1 == NULL || name2 == NULL || strcmp(name1, name2) != 0)
		return false;
	return schema1 == NULL || schema2 == NULL || strcmp(schema1, schema2) == 0;
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

/* ---------------------------------------------------------------- other statements */

static void
lint_create_index(LintState *st, IndexStmt *stmt)
{
	RangeVar   *rv = stmt->relation;
	const char *index = stmt->idxname ? lint_qi(stmt->idxname) : "(unnamed)";
	bool		fresh = lint_is_new_rel(st, rv);

	st->lock = lint_lock_name(stmt->concurrent ? ShareUpdateExclusiveLock : ShareLock);
	if (stmt->concurrent && in_transaction_block(st))
		lint_report(st, SEV_HIGH, "not-in-transaction", lint_rv_name(rv),
					psprintf("CREATE INDEX CONCURRENTLY %s fails inside a transaction block", index),
					"Run it on its own: outside BEGIN ... COMMIT (db:transaction) and as the only statement of its db:exec or db:ddl call.");
	if (fresh)
	{
		if (rv && stmt->idxname)
			lint_add_new_rel(st, rv->schemaname, stmt->idxname);
		return;
	}
	lint_note_lock(st, rv, NULL, stmt->concurrent ? ShareUpdateExclusiveLock : ShareLock);
	if (!stmt->concurrent)
		lint_report(st, SEV_HIGH, "index-not-concurrent", lint_rv_name(rv),
					psprintf("CREATE INDEX %s blocks writes to %s until the index is built",
							 index, lint_rv_name(rv)),
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
	if (stmt->removeType != OBJECT_TRIGGER)
		st->names_moved++;		/* a name may now mean another table */
	st->lock = lint_lock_name(stmt->removeType == OBJECT_INDEX && stmt->concurrent ?
							  ShareUpdateExclusiveLock : AccessExclusiveLock);
	if (stmt->removeType == OBJECT_INDEX && stmt->concurrent &&
		in_transaction_block(st))
		lint_report(st, SEV_HIGH, "not-in-transaction", NULL,
					"DROP INDEX CONCURRENTLY fails inside a transaction block",
					"Run it on its own: outside BEGIN ... COMMIT (db:transaction) and as the only statement of its db:exec or db:ddl call.");

	old = lint_items_begin(st);
	foreach(lc, stmt->objects)
	{
		List	   *names = lfirst(lc);
		RangeVar   *rv;
		char	   *name;

		lint_item_next(st);

		if (names == NULL || !IsA(names, List))
			continue;
		if (stmt->removeType == OBJECT_TRIGGER)
		{
			/* (schema.)table.trigger: the table is locked */
			if (list_length(names) < 2)
				continue;
			names = list_copy_head(names, list_length(names) - 1);
		}
		name = lint_names_text(names);
		if (strcmp(name, "?") == 0 || list_length(names) > 3)
			continue;
		rv = makeRangeVarFromNameList(names);
		if (lint_is_new_rel(st, rv))
		{
			if (stmt->removeType != OBJECT_TRIGGER)
				lint_forget_new_rel(st, rv->schemaname, rv->relname);
			continue;
		}
		lint_note_lock(st, rv, NULL, stmt->removeType == OBJECT_INDEX && stmt->concurrent ?
					   ShareUpdateExclusiveLock : AccessExclusiveLock);
		if (stmt->removeType == OBJECT_TABLE)
			lint_report(st, SEV_MEDIUM, "drop-table", name,
						psprintf("DROP TABLE %s breaks any running code that still uses it, and its data is gone",
								 name),
						"Deploy code that no longer uses the table first, then drop it in a contract phase of its own (a phase without down: a point of no return); or rename it aside and drop it later.");
		else if (stmt->removeType == OBJECT_INDEX && !stmt->concurrent)
			lint_report(st, SEV_MEDIUM, "drop-index-not-concurrent", name,
						psprintf("DROP INDEX %s takes an ACCESS EXCLUSIVE lock on its table", name),
						"Use DROP INDEX CONCURRENTLY (outside a transaction block), which does not block reads or writes.");
	}
	lint_items_end(st, old);
}

static void
lint_rename(LintState *st, RenameStmt *stmt)
{
	RangeVar   *rv = stmt->relation;
	const char *table;
	bool		new_column = false;

	/*
	 * A column this phase added keeps being new under its new name; the old
	 * name means none.
	 */
	if (stmt->renameType == OBJECT_COLUMN)
	{
		new_column = lint_column_is_new(st, rv, stmt->subname);
		lint_forget_column(st, rv, stmt->subname);
		if (new_column)
			lint_add_column_fact(st, rv, stmt->newname, false);
	}
	/* a table's name may now mean another table */
	if (stmt->renameType == OBJECT_TABLE || stmt->renameType == OBJECT_VIEW ||
		stmt->renameType == OBJECT_MATVIEW ||
		stmt->renameType == OBJECT_FOREIGN_TABLE ||
		stmt->renameType == OBJECT_SCHEMA)
		st->names_moved++;
	if (rv == NULL)
		return;
	table = lint_rv_name(rv);
	if (stmt->renameType == OBJECT_INDEX)
		st->lock = lint_lock_name(ShareUpdateExclusiveLock);
	else
		st->lock = lint_lock_name(AccessExclusiveLock);
	if (lint_is_new_rel(st, rv))
	{
		if (stmt->renameType == OBJECT_TABLE && stmt->newname)
			lint_add_new_rel(st, rv->schemaname, stmt->newname);
		return;
	}
	lint_note_lock(st, rv, NULL, stmt->renameType == OBJECT_INDEX ?
				   ShareUpdateExclusiveLock : AccessExclusiveLock);
	/* no code from before the phase uses a column the phase added */
	if (stmt->renameType == OBJECT_COLUMN && !new_column)
		lint_report(st, SEV_HIGH, "rename-column", table,
					psprintf("RENAME COLUMN %s.%s TO %s breaks running code that uses the old name",
							 table, lint_qi(stmt->subname), lint_qi(stmt->newname)),
					"Add a column with the new name, keep both in sync with shift.sync_create, fill it with db:backfill, move the code over, then drop the old column in a contract phase.");
	else if (stmt->renameType == OBJECT_TABLE || stmt->renameType == OBJECT_VIEW ||
			 stmt->renameType == OBJECT_MATVIEW ||
			 stmt->renameType == OBJECT_FOREIGN_TABLE)
		lint_report(st, SEV_HIGH, "rename-table", table,
					psprintf("RENAME %s TO %s breaks running code that uses the old name",
							 table, lint_qi(stmt->newname)),
					"Rename it and create a view with the old name in the same transaction (simple views are updatable), then drop the view once no code uses it.");
}

static void
lint_vacuum(LintState *st, VacuumStmt *stmt)
{
	ListCell   *lc;
	MemoryContext old;
	bool		full = stmt->is_vacuumcmd && option_true(stmt->options, "full");

	st->lock = lint_lock_name(full ? AccessExclusiveLock : ShareUpdateExclusiveLock);
	if (stmt->is_vacuumcmd && in_transaction_block(st))
		lint_report(st, SEV_HIGH, "not-in-transaction", NULL,
					"VACUUM fails inside a transaction block",
					"Run it on its own: outside BEGIN ... COMMIT (db:transaction) and as the only statement of its db:exec call.");
	if (!full)
		return;
	if (stmt->rels == NIL)
	{
		lint_note_lock(st, NULL, "every table in the database", AccessExclusiveLock);
		lint_report(st, SEV_CRITICAL, "vacuum-full", NULL,
					"VACUUM FULL rewrites every table in the database, each while holding an ACCESS EXCLUSIVE lock",
					"Use plain VACUUM; to shrink a bloated table online, use pg_repack or copy it into a new table with db:backfill and swap.");
		return;
	}
	old = lint_items_begin(st);
	foreach(lc, stmt->rels)
	{
		VacuumRelation *vr = lfirst(lc);

		lint_item_next(st);

		if (vr == NULL || !IsA(vr, VacuumRelation) || vr->relation == NULL ||
			lint_is_new_rel(st, vr->relation))
			continue;
		lint_note_lock(st, vr->relation, NULL, AccessExclusiveLock);
		lint_report(st, SEV_CRITICAL, "vacuum-full", lint_rv_name(vr->relation),
					psprintf("VACUUM FULL rewrites %s while holding an ACCESS EXCLUSIVE lock",
							 lint_rv_name(vr->relation)),
					"Use plain VACUUM; to shrink a bloated table online, use pg_repack or copy it into a new table with db:backfill and swap.");
	}
	lint_items_end(st, old);
}

static void
lint_reindex(LintState *st, ReindexStmt *stmt)
{
	bool		concurrent = option_true(stmt->params, "concurrently");
	const char *what;
	LOCKMODE	mode;

	mode = concurrent ? ShareUpdateExclusiveLock :
		stmt->kind == REINDEX_OBJECT_INDEX ? AccessExclusiveLock : ShareLock;
	st->lock = lint_lock_name(mode);
	if ((concurrent || stmt->kind == REINDEX_OBJECT_SCHEMA ||
		 stmt->kind == REINDEX_OBJECT_SYSTEM || stmt->kind == REINDEX_OBJECT_DATABASE) &&
		in_transaction_block(st))
		lint_report(st, SEV_HIGH, "not-in-transaction", NULL,
					psprintf("REINDEX%s fails inside a transaction block",
							 concurrent ? " CONCURRENTLY" : ""),
					"Run it on its own: outside BEGIN ... COMMIT (db:transaction) and as the only statement of its db:exec call.");
	if (stmt->relation && lint_is_new_rel(st, stmt->relation))
		return;
	what = stmt->relation ? lint_rv_name(stmt->relation) :
		psprintf("%s %s", stmt->kind == REINDEX_OBJECT_SCHEMA ? "schema" : "database",
				 lint_qi(stmt->name));
	lint_note_lock(st, stmt->relation, what, mode);
	if (!concurrent)
		lint_report(st, SEV_HIGH, "reindex-not-concurrent", what,
					stmt->kind == REINDEX_OBJECT_INDEX ?
					psprintf("REINDEX INDEX %s blocks writes to its table and every query that would use the index until it is rebuilt",
							 what) :
					stmt->relation ?
					psprintf("REINDEX TABLE %s blocks writes to it until its indexes are rebuilt", what) :
					psprintf("REINDEX %s blocks writes to each table until its indexes are rebuilt", what),
					"Use REINDEX CONCURRENTLY (outside a transaction block).");
}

/*
 * Calls fn(st, rv, stmt) for each relation of a LOCK or TRUNCATE (one item
 * each) that exists before the script.
 */
static void
lint_existing_rels(LintState *st, List *relations,
				   void (*fn) (LintState *st, RangeVar *rv, void *stmt), void *stmt)
{
	ListCell   *lc;
	MemoryContext old;

	old = lint_items_begin(st);
	foreach(lc, relations)
	{
		RangeVar   *rv = lfirst(lc);

		lint_item_next(st);

		if (rv == NULL || !IsA(rv, RangeVar) || lint_is_new_rel(st, rv))
			continue;
		fn(st, rv, stmt);
	}
	lint_items_end(st, old);
}

static void
lint_lock_rel(LintState *st, RangeVar *rv, void *arg)
{
	LockStmt   *stmt = arg;

	if (!stmt->nowait)
		lint_note_lock(st, rv, NULL, stmt->mode);
	lint_report(st, stmt->mode >= ShareLock ? SEV_HIGH : SEV_LOW, "lock-table", lint_rv_name(rv),
				psprintf("LOCK TABLE %s IN %s MODE %s until the transaction ends",
						 lint_rv_name(rv), lint_lock_name(stmt->mode) ? lint_lock_name(stmt->mode) : "?",
						 stmt->mode >= ShareLock ? "blocks writes (or more)" : "holds its lock"),
				"Keep the transaction short and take the lock with NOWAIT or under a short lock_timeout (db:ddl), retrying on failure.");
}

static void
lint_lock(LintState *st, LockStmt *stmt)
{
	st->lock = lint_lock_name(stmt->mode);
	lint_existing_rels(st, stmt->relations, lint_lock_rel, stmt);
}

static void
lint_truncate_rel(LintState *st, RangeVar *rv, void *stmt)
{
	lint_note_lock(st, rv, NULL, AccessExclusiveLock);
	lint_report(st, SEV_HIGH, "truncate", lint_rv_name(rv),
				psprintf("TRUNCATE %s removes every row and takes an ACCESS EXCLUSIVE lock",
						 lint_rv_name(rv)),
				"Delete in batches (db:backfill with a where condition, or a DELETE per key range) if the rows must go while the table is in use.");
}

static void
lint_truncate(LintState *st, TruncateStmt *stmt)
{
	st->lock = lint_lock_name(AccessExclusiveLock);
	lint_existing_rels(st, stmt->relations, lint_truncate_rel, stmt);
}

static void
lint_cluster(LintState *st, ClusterStmt *stmt)
{
	st->lock = lint_lock_name(AccessExclusiveLock);
	if (stmt->relation && lint_is_new_rel(st, stmt->relation))
		return;
	lint_note_lock(st, stmt->relation, "every clustered table", AccessExclusiveLock);
	lint_report(st, SEV_CRITICAL, "cluster", stmt->relation ? lint_rv_name(stmt->relation) : NULL,
				stmt->relation ?
				psprintf("CLUSTER rewrites %s while holding an ACCESS EXCLUSIVE lock",
						 lint_rv_name(stmt->relation)) :
				"CLUSTER rewrites every previously clustered table, each while holding an ACCESS EXCLUSIVE lock",
				"Use pg_repack --order-by, or copy the rows in order into a new table with db:backfill and swap.");
}

static void
lint_refresh(LintState *st, RefreshMatViewStmt *stmt)
{
	st->lock = lint_lock_name(stmt->concurrent ? ExclusiveLock : AccessExclusiveLock);
	if (stmt->relation == NULL || lint_is_new_rel(st, stmt->relation))
		return;
	lint_note_lock(st, stmt->relation, NULL, stmt->concurrent ? ExclusiveLock : AccessExclusiveLock);
	if (!stmt->concurrent)
		lint_report(st, SEV_MEDIUM, "refresh-not-concurrent", lint_rv_name(stmt->relation),
					psprintf("REFRESH MATERIALIZED VIEW %s blocks reads of it until the refresh is done",
							 lint_rv_name(stmt->relation)),
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
		st->lock = lint_lock_name(AccessExclusiveLock);
		lint_note_lock(st, linitial(stmt->inhRelations), NULL, AccessExclusiveLock);
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
				lint_note_lock(st, con->pktable, NULL, ShareRowExclusiveLock);
		}
	}
	foreach(lc, stmt->constraints)
	{
		Constraint *con = lfirst(lc);

		if (con && IsA(con, Constraint) && con->contype == CONSTR_FOREIGN && con->pktable)
			lint_note_lock(st, con->pktable, NULL, ShareRowExclusiveLock);
	}
	/* CREATE TABLE IF NOT EXISTS of an existing table creates nothing */
	if (!(stmt->if_not_exists && OidIsValid(lint_relid(rv))))
		lint_add_new_rel(st, rv->schemaname, rv->relname);
}

static void
lint_alter_enum(LintState *st, AlterEnumStmt *stmt)
{
	if (stmt->oldVal != NULL || stmt->newVal == NULL || !in_transaction_block(st))
		return;
	lint_report(st, SEV_MEDIUM, "enum-value-in-transaction", lint_names_text(stmt->typeName),
				psprintf("the value %s added to enum %s inside a transaction block cannot be used until the transaction commits",
						 quote_literal_cstr(stmt->newVal), lint_names_text(stmt->typeName)),
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
int
lint_parse_timeout(const char *text)
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
	/* an unqualified table name may now mean another table */
	if (stmt->kind == VAR_RESET_ALL ||
		(stmt->name && pg_strcasecmp(stmt->name, "search_path") == 0))
		st->names_moved++;
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
				set_timeout(st, lint_parse_timeout(const_text(linitial(stmt->args))),
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

	old = lint_items_begin(st);
	foreach(lc, stmt->targetList)
	{
		ResTarget  *rt = lfirst(lc);
		FuncCall   *fc;
		Node	   *last;
		char	   *name;
		char	   *local;
		bool		is_local;

		lint_item_next(st);

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
		set_timeout(st, lint_parse_timeout(const_text(lsecond(fc->args))), is_local);
	}
	lint_items_end(st, old);
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
void
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
		case T_AlterObjectSchemaStmt:
			st->names_moved++;	/* a name may now mean another table */
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
					lint_add_new_rel(st, ctas->into->rel->schemaname, ctas->into->rel->relname);
				break;
			}
		case T_CreateTrigStmt:
			st->lock = lint_lock_name(ShareRowExclusiveLock);
			lint_note_lock(st, ((CreateTrigStmt *) stmt)->relation, NULL, ShareRowExclusiveLock);
			break;
		case T_AlterEnumStmt:
			lint_alter_enum(st, (AlterEnumStmt *) stmt);
			break;
		case T_AlterTableMoveAllStmt:
			{
				AlterTableMoveAllStmt *m = (AlterTableMoveAllStmt *) stmt;
				char	   *what = psprintf("every relation in tablespace %s",
											lint_qi(m->orig_tablespacename));

				st->lock = lint_lock_name(AccessExclusiveLock);
				lint_note_lock(st, NULL, what, AccessExclusiveLock);
				lint_report(st, SEV_CRITICAL, "set-tablespace", what,
							psprintf("ALTER ... ALL IN TABLESPACE %s SET TABLESPACE copies %s, each while holding an ACCESS EXCLUSIVE lock",
									 lint_qi(m->orig_tablespacename), what),
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
		lint_report(st, st->strongest >= ExclusiveLock ? SEV_HIGH : SEV_MEDIUM,
					"missing-lock-timeout", st->strongest_on,
					psprintf("waits for %s %s lock on %s with no lock_timeout: while it waits, every later query on %s queues behind it",
							 st->strongest == ShareLock || st->strongest == ShareRowExclusiveLock ? "a" : "an",
							 lint_lock_name(st->strongest), st->strongest_on, st->strongest_on),
					"Run it with db:ddl, which sets a short lock_timeout and retries, or SET lock_timeout = '2s' before it.");
}
