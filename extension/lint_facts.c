/*-------------------------------------------------------------------------
 *
 * lint_facts.c
 *	  What lint knows beyond the statement it lints: the tables and indexes
 *	  earlier statements of the input created (new, hence empty and private
 *	  to the session, within their phase) or dropped, the CHECK (col IS NOT
 *	  NULL) constraints they added and validated, and what the catalog says
 *	  (does a relation exist, is it temporary, does a validated constraint
 *	  prove a column NOT NULL).
 *
 * Facts about earlier statements are found by name through hash tables, so
 * that linting stays linear in the number of statements (see NameKey in
 * lint.h).  Catalog lookups take no lock on the relation and check no
 * privilege, so linting SQL about objects one may not touch still works.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_class.h"
#include "catalog/pg_constraint.h"
#include "commands/defrem.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "lint.h"

/* ---------------------------------------------------------------- the catalog */

/*
 * The OID of an existing relation, or InvalidOid.  No lock is taken and no
 * privilege is checked (get_namespace_oid and RelnameGetRelid do neither),
 * so linting SQL about objects one may not touch still works.
 */
Oid
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

HTAB *
lint_name_table(LintState *st, const char *what, Size entrysize)
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

/* Adds item to the list of name key in table (a table of NameLists). */
static void
name_list_add(HTAB *table, NameKey *key, void *item)
{
	bool		found;
	NameList   *l = hash_search(table, key, HASH_ENTER, &found);

	if (!found)
		l->items = NIL;
	l->items = lappend(l->items, item);
}

/*
 * Calls fn(item, arg) on each item of the lists of keys[0 .. n - 1] in table
 * and empties those lists, so that an item is met at most once per list
 * over the whole input.
 */
static void
name_lists_take(HTAB *table, NameKey *keys, int n, void (*fn) (void *item, void *arg),
				void *arg)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		NameList   *l = hash_search(table, &keys[i], HASH_FIND, NULL);
		ListCell   *lc;

		if (l == NULL)
			continue;
		foreach(lc, l->items)
			fn(lfirst(lc), arg);
		list_free(l->items);
		l->items = NIL;
	}
}

/*
 * Is rv a table created earlier in this phase of the input, or a temporary
 * table?  Either way it is private to this session (or empty), so lock and
 * scan rules do not apply.
 */
bool
lint_is_new_rel(LintState *st, const RangeVar *rv)
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

void
lint_add_new_rel(LintState *st, const char *schema, const char *name)
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

		if (!found)
			c->live = 0;
		c->live++;
		keys[i].phase = 0;
		name_list_add(st->new_rel_lists, &keys[i], r);
	}
	MemoryContextSwitchTo(old);
}

/* Forgets LintRel item (once), as lint_forget_new_rel's name_lists_take visits it. */
static void
forget_new_rel(void *item, void *arg)
{
	LintState  *st = arg;
	LintRel    *r = item;
	NameKey		own[2];
	int			j;

	if (r->forgotten)
		return;
	r->forgotten = true;
	filing_keys(own, r->schema, r->name, NULL, r->phase);
	for (j = 0; j < 2; j++)
	{
		NewRelCount *c = hash_search(st->new_rel_counts, &own[j], HASH_FIND, NULL);

		if (c)
			c->live--;
	}
}

/*
 * Forgets the tables of that name (in any phase), as if never created.
 * Each LintRel is forgotten once and then dropped from the lists it is met
 * in, so this stays linear over the whole input.
 */
void
lint_forget_new_rel(LintState *st, const char *schema, const char *name)
{
	NameKey		keys[2];

	if (name == NULL)
		return;
	name_lists_take(st->new_rel_lists, keys, lookup_keys(keys, schema, name, NULL, 0),
					forget_new_rel, st);
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
void
lint_record_not_null_checks(LintState *st, const RangeVar *rv, Constraint *con,
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
			lint_record_not_null_checks(st, rv, con, lfirst(lc));
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
				name_list_add(st->check_names, &keys[i], c);
		}
		MemoryContextSwitchTo(old);
	}
}

/*
 * The tracked CHECK (col IS NOT NULL) constraints on rv.col: true if one of
 * them is validated; otherwise *last is the one added last, or NULL.
 */
bool
lint_find_check(LintState *st, const RangeVar *rv, const char *col, LintCheck **last)
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
bool
lint_catalog_not_null(Oid relid, const char *col)
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
/* Marks LintCheck item validated (once), in both its check_columns groups. */
static void
validate_check(void *item, void *arg)
{
	LintCheck  *c = item;

	if (c->validated)
		return;
	c->validated = true;
	c->columns[0]->validated++;
	c->columns[1]->validated++;
}

/*
 * VALIDATE CONSTRAINT: the tracked constraints of that name on the table are
 * validated.  Each is taken off the pending lists once, so this stays
 * linear over the whole input.
 */
void
lint_validate_constraint(LintState *st, RangeVar *rv, const char *conname)
{
	NameKey		keys[2];

	if (conname == NULL || rv->relname == NULL)
		return;
	name_lists_take(st->check_names, keys,
					lookup_keys(keys, rv->schemaname, rv->relname, conname, 0),
					validate_check, NULL);
}

/* ---------------------------------------------------------------- added columns */

/*
 * A column added by this input, under the table exactly as written (the
 * schema given or none: another spelling of the name may mean another
 * table) and the current phase.
 */
static NameKey
added_column_key(LintState *st, const RangeVar *rv, const char *col)
{
	return name_key(rv->schemaname ? NK_SCHEMA : NK_NONE, rv->schemaname,
					rv->relname, col, st->phase);
}

/*
 * ALTER TABLE rv ADD [IF NOT EXISTS] col on a table not new in this phase:
 * records that this phase makes the column, for lint_column_is_new.
 * Without IF NOT EXISTS it surely does (or fails).  With it (db:add_column
 * writes it, so that a phase can run again), only if the table is in the
 * catalog without such a column: a column there already may hold data from
 * before the migration.
 */
void
lint_add_column_fact(LintState *st, const RangeVar *rv, const char *col,
					 bool if_not_exists)
{
	MemoryContext old;
	NameKey		key;
	AddedColumn *a;
	bool		found;

	if (rv == NULL || rv->relname == NULL || rv->catalogname != NULL || col == NULL)
		return;
	if (if_not_exists)
	{
		Oid			relid = lint_relid(rv);
		HeapTuple	tup;

		if (!OidIsValid(relid))
			return;
		tup = SearchSysCacheAttName(relid, col);
		if (HeapTupleIsValid(tup))
		{
			ReleaseSysCache(tup);
			return;
		}
	}
	old = MemoryContextSwitchTo(st->keep);
	key = added_column_key(st, rv, col);
	key.schema = key.schema ? pstrdup(key.schema) : NULL;
	key.table = pstrdup(key.table);
	key.name = pstrdup(key.name);
	a = hash_search(st->added_columns, &key, HASH_ENTER, &found);
	a->live = true;
	a->names_moved = st->names_moved;
	MemoryContextSwitchTo(old);
}

/*
 * lint_column_is_new: was col added earlier in this phase (ALTER TABLE ...
 * ADD COLUMN, or a RENAME COLUMN of such a column) to the table rv names,
 * with nothing since that could make rv's name mean another table or col's
 * name another column?  Such a column holds no data from before the phase
 * and no code from before it uses it: dropping or renaming it is the way
 * back, not a loss.  Identifiers compare as the parser left them
 * (case-folded unless quoted), so "Flag" and flag differ and ADDED is added.
 */
bool
lint_column_is_new(LintState *st, const RangeVar *rv, const char *col)
{
	NameKey		key;
	AddedColumn *a;

	if (rv == NULL || rv->relname == NULL || rv->catalogname != NULL || col == NULL)
		return false;
	key = added_column_key(st, rv, col);
	a = hash_search(st->added_columns, &key, HASH_FIND, NULL);
	return a != NULL && a->live && a->names_moved == st->names_moved;
}

/*
 * lint_forget_column: DROP COLUMN or RENAME COLUMN col of rv: the column of
 * that name is gone, whether it was new or not (a column added later under
 * the name is new again).
 */
void
lint_forget_column(LintState *st, const RangeVar *rv, const char *col)
{
	NameKey		key;
	AddedColumn *a;

	if (rv == NULL || rv->relname == NULL || rv->catalogname != NULL || col == NULL)
		return;
	key = added_column_key(st, rv, col);
	a = hash_search(st->added_columns, &key, HASH_FIND, NULL);
	if (a != NULL)
		a->live = false;
}
