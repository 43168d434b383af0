/*-------------------------------------------------------------------------
 *
 * sync.c
 *	  Dual-write triggers: shift_internal._sync_trigger, its cache of compiled syncs,
 *	  and the table-level work it does per write (the column level is in
 *	  sync_column.c).  A sync's definition and the
 *	  statements its table-level triggers run are built in sync_config.c;
 *	  shift_internal._sync_check and the cut-over's check are in sync_check.c;
 *	  shift_internal._select_list, which splits a select list, is in sqlfrag.c.
 *
 * A sync (a row of shift.sync, made by shift.sync_create) keeps new and old
 * in step while both are in use:
 *
 *	 - column level: a BEFORE INSERT OR UPDATE row trigger sets the new
 *	   columns from the old ones (set => 'email_lower = lower(email)') and,
 *	   given reverse_set =>, the old ones from the new ones when the writer
 *	   is the new version of the application: the one new_version => names
 *	   (see "the writer's version" below), or without it, a writer that
 *	   changed only the new side.  A backfill's write is never the new
 *	   version's.  It modifies the row being written, so nothing is written
 *	   twice and nothing can ping-pong.
 *	 - table level: statement triggers with transition tables mirror every
 *	   INSERT, UPDATE, DELETE and TRUNCATE of one table into another through
 *	   a column mapping, set-wise (one INSERT ... ON CONFLICT DO UPDATE and
 *	   at most one DELETE per statement).  A partitioned source gets row
 *	   triggers instead (statement triggers do not fire for writes made to a
 *	   partition directly); each row then runs the same statements on a
 *	   one-row transition table.  After the cut-over the same mapping runs
 *	   the other way (the reverse mapping), so the old table stays current.
 *
 * Each trigger compiles what it runs once per session: the column-level
 * expressions into executor expression state, the table-level statements
 * into kept SPI plans.  The cache is keyed by trigger OID and invalidated
 * when either table's relcache entry or any function changes; entries left
 * behind are freed at the end of the transaction.
 *
 * Everything runs as the role writing the table, in its transaction: the
 * mirrored rows commit or roll back with the statement that caused them.
 * The stored search_path of the sync is in force while its SQL is parsed
 * and run, so the writer's own search_path cannot change what it means,
 * and the statements built around the sync's expressions name every
 * operator and type by schema (sqlgen.c).  The trigger reads the sync's
 * definition as the owner of pg_shift (no application role can read
 * shift.sync), and only if it is what was checked and what the trigger was
 * made for.  Checking and compiling a sync outside a trigger
 * (shift_internal._sync_check, the cut-over's check) runs as the sync's owner.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "optimizer/optimizer.h"
#include "parser/analyze.h"
#include "parser/parser.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/queryenvironment.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"

#include "pg_shift.h"
#include "sync.h"

/* how often a REPEATABLE READ or SERIALIZABLE writer's mirror is tried */
#define SYNC_SERIALIZE_ATTEMPTS 3

PG_FUNCTION_INFO_V1(shift_sync_trigger);

/* ---------------------------------------------------------------- the cache */

static HTAB *sync_cache = NULL;
static SyncEntry *last_entry = NULL;	/* the one found last: a bulk statement asks for it per row */
static uint64 invalidations = 0;	/* bumped by every callback */
static List *retired = NIL;		/* entries to free at the end of the transaction */
static bool callbacks_registered = false;

void
sync_free_entry_resources(SyncEntry *e)
{
	SPIPlanPtr	plans[] = {e->upsert, e->update_kept, e->insert_missing,
		e->delete_gone, e->delete_old, e->delete_moved, e->truncate,
		e->other_has_rows, e->delete_partition};

	shift_free_plans(plans, lengthof(plans));
	if (e->cxt)
		MemoryContextDelete(e->cxt);
}

static void
free_retired(void)
{
	ListCell   *lc;

	foreach(lc, retired)
	{
		sync_free_entry_resources(lfirst(lc));
		pfree(lfirst(lc));
	}
	list_free(retired);
	retired = NIL;
}

static void
sync_xact_callback(XactEvent event, void *arg)
{
	if (retired != NIL &&
		(event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		 event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT))
	{
		/* SPI plans are freed in TopMemoryContext's care: safe at this point */
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		free_retired();
		MemoryContextSwitchTo(old);
	}
}

static void
sync_relcache_callback(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS status;
	SyncEntry  *e;

	invalidations++;
	if (sync_cache == NULL)
		return;
	hash_seq_init(&status, sync_cache);
	while ((e = hash_seq_search(&status)) != NULL)
		if (relid == InvalidOid || e->relid == relid || e->otherid == relid)
			e->valid = false;
}

/* A function changed: compiled expressions may call it. */
static void
sync_syscache_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	sync_relcache_callback(arg, InvalidOid);
}

static void sync_namespace_callback(Datum arg, int cacheid, uint32 hashvalue);

void
shift_sync_init(void)
{
	if (callbacks_registered)
		return;
	CacheRegisterRelcacheCallback(sync_relcache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(PROCOID, sync_syscache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(NAMESPACEOID, sync_namespace_callback, (Datum) 0);
	RegisterXactCallback(sync_xact_callback, NULL);
	callbacks_registered = true;
}

/* ---------------------------------------------------------------- the writer's version */

/*
 * Which version of the application writes, as the column-level trigger of a
 * sync with new_version sees it:
 *
 *	 1. a pg_shift backfill's batch statement (sync_backfill_writing): the
 *		backfill, on the old side whatever its SET;
 *	 2. else pg_shift.version, if set and not empty;
 *	 3. else the first schema of the effective search_path, as
 *		current_schemas(false) gives it (schemas that do not exist are
 *		skipped, "$user" is the role's schema if there is one): a version
 *		schema the client put first.
 *
 * Rules 2 and 3 are what shift.writer_version() returns.  They only choose
 * between set and reverse_set, both the sync owner's SQL: no setting of the
 * writer's makes the trigger run anything else.
 *
 * The answer is cached: computing it per row would parse or copy the path
 * each time.  pg_shift.version's assign hook counts its changes; the search
 * path is remembered as an OverrideSearchPath, whose match against the
 * active path is a generation compare while the path is unchanged; a
 * renamed or dropped schema is seen through the namespace syscache.  Every
 * time the answer changes, writer_generation grows, and each sync entry
 * compares its version with the writer's again (SyncEntry.writer_seen).
 */
bool		sync_backfill_writing = false;
char	   *sync_version_setting = NULL;

static uint64 setting_changes = 0;	/* pg_shift.version assigned */
static uint64 schema_changes = 0;	/* a schema renamed, dropped or made */
static uint64 writer_generation = 1;	/* writer_version changed */
static bool writer_known = false;
static uint64 setting_seen = 0;
static uint64 schemas_seen = 0;
static bool writer_from_setting = false;
static OverrideSearchPath *writer_path = NULL;	/* rule 3: the path it is from */
static char *writer_version = NULL; /* NULL: none (no schema on the path) */

void
sync_version_setting_assign(const char *newval, void *extra)
{
	setting_changes++;
}

static void
sync_namespace_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	schema_changes++;
}

/* The writer's version by rules 2 and 3; its generation in *gen. */
static const char *
current_writer_version(uint64 *gen)
{
	bool		from_setting = sync_version_setting != NULL && sync_version_setting[0] != '\0';
	const char *now;
	char	   *schema = NULL;

	if (writer_known && setting_seen == setting_changes && schemas_seen == schema_changes &&
		from_setting == writer_from_setting &&
		(from_setting || OverrideSearchPathMatchesCurrent(writer_path)))
	{
		*gen = writer_generation;
		return writer_version;
	}
	setting_seen = setting_changes;
	schemas_seen = schema_changes;
	writer_from_setting = from_setting;
	writer_known = false;
	if (writer_path != NULL)
	{
		list_free(writer_path->schemas);
		pfree(writer_path);
		writer_path = NULL;
	}
	if (from_setting)
		now = sync_version_setting;
	else
	{
		writer_path = GetOverrideSearchPath(TopMemoryContext);
		if (writer_path->schemas != NIL)
			schema = get_namespace_name(linitial_oid(writer_path->schemas));
		now = schema;
	}
	if ((now == NULL) != (writer_version == NULL) ||
		(now != NULL && strcmp(now, writer_version) != 0))
	{
		if (writer_version != NULL)
			pfree(writer_version);
		writer_version = now ? MemoryContextStrdup(TopMemoryContext, now) : NULL;
		writer_generation++;
	}
	if (schema != NULL)
		pfree(schema);
	writer_known = true;
	*gen = writer_generation;
	return writer_version;
}

PG_FUNCTION_INFO_V1(shift_writer_version);

/*
 * shift.writer_version() returns text
 *
 * The version this session writes as (rules 2 and 3 above): pg_shift.version
 * if set, else the first schema of its effective search_path; NULL if there
 * is neither.
 */
Datum
shift_writer_version(PG_FUNCTION_ARGS)
{
	uint64		gen;
	const char *v;

	shift_sync_init();
	v = current_writer_version(&gen);
	if (v == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(v));
}

/*
 * Is the writer of the row the trigger of e is called for the new version
 * of the application (e has new_version)?  The comparison is cached in e
 * until the writer's version changes.
 */
static bool
is_new_writer(SyncEntry *e)
{
	uint64		gen;
	const char *v = current_writer_version(&gen);

	if (gen != e->writer_seen)
	{
		e->new_writer = v != NULL && strcmp(v, e->new_version) == 0;
		e->writer_seen = gen;
	}
	return e->new_writer;
}

/* ---------------------------------------------------------------- table level */

/* An empty transition table of rel's row type, registered in the SPI connection. */
static void
register_rows(const char *name, Relation rel, Tuplestorestate *rows, int64 n)
{
	EphemeralNamedRelation enr = palloc0(sizeof(EphemeralNamedRelationData));

	enr->md.name = pstrdup(name);
	enr->md.reliddesc = RelationGetRelid(rel);
	enr->md.tupdesc = NULL;
	enr->md.enrtype = ENR_NAMED_TUPLESTORE;
	enr->md.enrtuples = n;
	enr->reldata = rows;
	if (SPI_register_relation(enr) != SPI_OK_REL_REGISTER)
		elog(ERROR, "could not register transition table \"%s\"", name);
}

static void
prepare_error_callback(void *arg)
{
	PrepareContext *p = arg;

	errcontext("statement of sync \"%s\": %s", p->name, p->sql);
}

/*
 * Where each of a mapping's expressions (the user's select or
 * reverse_select items, each put in parentheses) sits in sql: an error in
 * one is reported as that item's, not as the statement's.
 */
static ShiftFragSpan *
mapping_spans(Mapping *m, const char *what, const char *sql, int *n)
{
	ShiftFragSpan *spans = NULL;
	int			max = 0;
	ListCell   *lc;

	*n = 0;
	if (m == NULL)
		return NULL;
	foreach(lc, m->exprs)
	{
		char	   *item = lfirst(lc);
		char	   *wrapped = psprintf("(%s)", item);
		const char *p = sql;

		while ((p = strstr(p, wrapped)) != NULL)
		{
			if (*n == max)
			{
				max = Max(8, 2 * max);
				spans = spans ? repalloc(spans, max * sizeof(ShiftFragSpan)) :
					palloc(max * sizeof(ShiftFragSpan));
			}
			spans[*n].what = what;
			spans[*n].text = item;
			spans[*n].from = (p - sql) + 1;
			spans[*n].to = spans[*n].from + strlen(item);
			(*n)++;
			p += strlen(wrapped);
		}
	}
	return spans;
}

/*
 * Prepares and keeps one statement of a sync; an error in one of the
 * mapping's expressions (m, what: "select" or "reverse_select"; m NULL:
 * none of the user's) is reported as that expression's.
 */
static SPIPlanPtr
prepare_kept(const char *name, const char *sql, Mapping *m, const char *what)
{
	ErrorContextCallback cb;
	PrepareContext pc = {name, sql};
	SPIPlanPtr	plan = NULL;
	MemoryContext cxt = CurrentMemoryContext;

	cb.callback = prepare_error_callback;
	cb.arg = &pc;
	cb.previous = error_context_stack;
	error_context_stack = &cb;
	PG_TRY();
	{
		plan = SPI_prepare(sql, 0, NULL);
	}
	PG_CATCH();
	{
		/* raised again at once (the transaction aborts): no subtransaction needed */
		ErrorData  *edata;
		int			n;
		ShiftFragSpan *spans;

		error_context_stack = cb.previous;
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		spans = mapping_spans(m, what, sql, &n);
		shift_raise_in_fragment(sync_label(name), sql, n, spans, edata);
	}
	PG_END_TRY();
	error_context_stack = cb.previous;
	if (plan == NULL)
		elog(ERROR, "could not prepare a statement of sync \"%s\": %s", name,
			 SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "could not keep a plan of sync \"%s\"", name);
	return plan;
}

/*
 * Prepares a mapping's statements against transition tables of rel's row
 * type (rel: the table the trigger is on, or one of its partitions).
 *
 * per_row: the trigger fires once per row, after the whole statement, so
 * the events of one statement run one after the other.  When two rows trade
 * keys (UPDATE ... SET id = 3 - id, or a swap across partitions, which comes
 * as a DELETE and an INSERT per row), the second row's delete would remove
 * what the first row's upsert just wrote under that key: these deletes
 * leave a key alone while a source row maps to it.
 */
static void key_columns(SyncEntry *e, Mapping *m, Relation rel);

void
sync_build_table_entry(SyncEntry *e, SyncConfig *c, Mapping *m, Relation rel, bool per_row)
{
	char	   *update;
	const char *what = m == &c->reverse ? "reverse_select item" : "select item";

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (!per_row && RelationGetRelid(rel) != m->src)
	{
		/*
		 * A partition's own statement trigger fires for its TRUNCATE only:
		 * it needs only these two plans (and a TRUNCATE of the whole table
		 * builds one such entry per partition).
		 */
		e->partition_of = m->src;
		e->other_has_rows = prepare_kept(c->name, psprintf("SELECT 1 FROM %s LIMIT 1",
														   sync_qualified_name(m->dst)), NULL, NULL);
		e->delete_partition = prepare_kept(c->name,
										   sync_delete_sql(m, psprintf("ONLY %s", sync_qualified_name(RelationGetRelid(rel))),
														   NULL, false), m, what);
		SPI_finish();
		return;
	}
	register_rows(NEW_ROWS, rel, NULL, 0);
	register_rows(OLD_ROWS, rel, NULL, 0);
	update = sync_update_sql(m);
	e->upsert = prepare_kept(c->name, sync_upsert_sql(m, false), m, what);
	if (update != NULL)
		e->update_kept = prepare_kept(c->name, update, m, what);
	e->insert_missing = prepare_kept(c->name, sync_upsert_sql(m, true), m, what);
	e->delete_gone = prepare_kept(c->name, sync_delete_sql(m, OLD_ROWS, NEW_ROWS, per_row), m, what);
	e->delete_old = prepare_kept(c->name, sync_delete_sql(m, OLD_ROWS, NULL, false), m, what);
	if (per_row)
		e->delete_moved = prepare_kept(c->name, sync_delete_sql(m, OLD_ROWS, NULL, true), m, what);
	e->truncate = prepare_kept(c->name, psprintf("TRUNCATE %s", sync_qualified_name(m->dst)), NULL, NULL);
	SPI_finish();
	key_columns(e, m, rel);
}

/*
 * The source columns the destination key is made of, when every key
 * expression is a column (maybe cast): an UPDATE that leaves them alone
 * cannot take a key away, and skips delete_gone.  Numbered in rel, which
 * may be a partition with its own column order.
 */
static void
key_columns(SyncEntry *e, Mapping *m, Relation rel)
{
	AttrNumber *atts = MemoryContextAlloc(e->cxt, sizeof(AttrNumber) * list_length(m->key));
	ListCell   *lc;
	int			n = 0;

	foreach(lc, m->key)
	{
		AttrNumber	att = sync_plain_column(m->src, sync_key_expr(m, lfirst(lc)));

		if (att == InvalidAttrNumber)
			return;
		att = get_attnum(RelationGetRelid(rel), get_attname(m->src, att, false));
		if (att == InvalidAttrNumber)
			return;
		atts[n++] = att;
	}
	e->keyatts = atts;
	e->nkeyatts = n;
}

/* Do the two rows have the same key columns (see key_columns)? */
static bool
same_key(SyncEntry *e, TupleTableSlot *a, TupleTableSlot *b)
{
	int			i;

	for (i = 0; i < e->nkeyatts; i++)
		if (!sync_same_value(a, b, e->keyatts[i]))
			return false;
	return true;
}

/*
 * Did an UPDATE keep every row's key?  Old and new rows are compared in
 * pairs, in the order the transition tables hold them; when every pair
 * agrees the old keys are the new keys, so no key is gone (whatever the
 * pairing).  Reads with read pointers of its own, as a scan of the
 * transition table would.
 */
static bool
keys_kept(SyncEntry *e, Relation rel, Tuplestorestate *oldrows, Tuplestorestate *newrows)
{
	TupleTableSlot *a;
	TupleTableSlot *b;
	MemoryContext row_cxt;
	MemoryContext old;
	bool		kept = true;

	if (tuplestore_tuple_count(oldrows) != tuplestore_tuple_count(newrows))
		return false;
	/* comparing may detoast a key: per row, in a context reset per row */
	row_cxt = AllocSetContextCreate(CurrentMemoryContext, "pg_shift key check",
									ALLOCSET_SMALL_SIZES);
	a = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsMinimalTuple);
	b = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsMinimalTuple);
	tuplestore_select_read_pointer(oldrows, tuplestore_alloc_read_pointer(oldrows, EXEC_FLAG_REWIND));
	tuplestore_select_read_pointer(newrows, tuplestore_alloc_read_pointer(newrows, EXEC_FLAG_REWIND));
	tuplestore_rescan(oldrows);
	tuplestore_rescan(newrows);
	while (kept && tuplestore_gettupleslot(oldrows, true, false, a))
	{
		CHECK_FOR_INTERRUPTS();
		/* fetched outside row_cxt: a tuple read back from disk belongs to its slot */
		if (!tuplestore_gettupleslot(newrows, true, false, b))
			kept = false;
		else
		{
			old = MemoryContextSwitchTo(row_cxt);
			kept = same_key(e, a, b);
			MemoryContextSwitchTo(old);
			MemoryContextReset(row_cxt);
		}
	}
	MemoryContextDelete(row_cxt);
	tuplestore_select_read_pointer(oldrows, 0);
	tuplestore_select_read_pointer(newrows, 0);
	ExecDropSingleTupleTableSlot(a);
	ExecDropSingleTupleTableSlot(b);
	return kept;
}

/*
 * Runs a mirror statement with snap, or with a new snapshot if snap is NULL
 * (SPI copies it and advances its command id: the statement sees what the
 * ones before it in this transaction wrote).  Never the writer's own
 * snapshot, as foreign key checks do not use it either: a REPEATABLE READ or
 * SERIALIZABLE writer would miss rows a backfill committed after that
 * snapshot was taken, and a mirrored DELETE would leave them.
 */
static void
run_plan_at(SPIPlanPtr plan, Snapshot snap)
{
	int			rc = SPI_execute_snapshot(plan, NULL, NULL, snap ? snap : GetLatestSnapshot(),
										  InvalidSnapshot, false, true, 0);

	if (rc < 0)
		elog(ERROR, "a statement of a sync failed: %s", SPI_result_code_string(rc));
}

static void
run_plan(SPIPlanPtr plan)
{
	run_plan_at(plan, NULL);
}

/* A tuplestore holding one row. */
static Tuplestorestate *
one_row(HeapTuple tuple)
{
	Tuplestorestate *ts = tuplestore_begin_heap(false, false, work_mem);

	tuplestore_puttuple(ts, tuple);
	return ts;
}

/*
 * Runs the statements that mirror what the trigger's statement (or row) did,
 * on an SPI connection with the transition rows (if any) registered.
 */
static void
mirror(SyncEntry *e, TriggerData *td, Tuplestorestate *oldrows, Tuplestorestate *newrows)
{
	TriggerEvent ev = td->tg_event;
	bool		per_row = TRIGGER_FIRED_FOR_ROW(ev);

	if (TRIGGER_FIRED_BY_TRUNCATE(ev) && !OidIsValid(e->partition_of))
		run_plan(e->truncate);
	else if (TRIGGER_FIRED_BY_TRUNCATE(ev))
	{
		/*
		 * One partition truncated: its keys go from the other table.  When
		 * the partitioned table is truncated as a whole, its own trigger has
		 * emptied the other table already and there is nothing to do; and a
		 * partition detached since is a table of its own, whose rows are not
		 * the source's.
		 */
		if (list_member_oid(get_partition_ancestors(RelationGetRelid(td->tg_relation)),
							e->partition_of))
		{
			run_plan(e->other_has_rows);
			if (SPI_processed > 0)
				run_plan(e->delete_partition);
		}
	}
	else if (TRIGGER_FIRED_BY_INSERT(ev))
		run_plan(e->upsert);
	else if (TRIGGER_FIRED_BY_UPDATE(ev))
	{
		if (e->nkeyatts > 0 &&
			(per_row ? same_key(e, td->tg_trigslot, td->tg_newslot) :
			 keys_kept(e, td->tg_relation, oldrows, newrows)))
		{
			/*
			 * Every key kept: update the rows there, then add those missing.
			 * Both statements read the other table with one snapshot.  With
			 * a fresh one for the second, a row a backfill batch had inserted
			 * but not committed when the UPDATE looked (so it found nothing
			 * to update) would be committed by the time the insert looked for
			 * missing rows, found there, and skipped: its copy would keep the
			 * batch's older values.  With one snapshot the insert does not
			 * see it either, runs into its key, and ON CONFLICT updates it.
			 */
			uint64		found = 0;
			Snapshot	snap = RegisterSnapshot(GetLatestSnapshot());

			if (e->update_kept)
			{
				run_plan_at(e->update_kept, snap);
				found = SPI_processed;
			}
			if (found < (uint64) tuplestore_tuple_count(newrows))
				run_plan_at(e->insert_missing, snap);
			UnregisterSnapshot(snap);
		}
		else
		{
			/* keys that changed: their old rows go, then every new row is upserted */
			run_plan(e->delete_gone);
			run_plan(e->upsert);
		}
	}
	else if (per_row && HeapTupleHeaderIndicatesMovedPartitions(td->tg_trigtuple->t_data))
		run_plan(e->delete_moved);	/* half of an UPDATE that moved the row */
	else
		run_plan(e->delete_old);
}

/*
 * mirror() for a REPEATABLE READ or SERIALIZABLE writer: in a subtransaction,
 * run again with a new snapshot when it fails to serialize.  A copy row that a
 * backfill batch (or another writer) had not committed when a mirror
 * statement took its snapshot makes ON CONFLICT DO UPDATE, or an UPDATE, wait
 * for it; read committed then goes on with the row, these levels refuse it
 * (40001) because the snapshot does not see it.  The copy mirrors what is
 * committed, not what the writer's snapshot saw, so the second attempt, whose
 * snapshot sees the row, is right.  A failure the retries do not cure (a
 * transaction SSI has doomed) reaches the writer as before.
 */
typedef struct MirrorCall
{
	SyncEntry  *e;
	TriggerData *td;
	Tuplestorestate *oldrows;
	Tuplestorestate *newrows;
} MirrorCall;

static void
mirror_call(void *arg)
{
	MirrorCall *m = arg;

	mirror(m->e, m->td, m->oldrows, m->newrows);
}

static void
mirror_retrying(SyncEntry *e, TriggerData *td, Tuplestorestate *oldrows, Tuplestorestate *newrows)
{
	MirrorCall	m = {e, td, oldrows, newrows};
	int			attempt;

	for (attempt = 1;; attempt++)
	{
		ErrorData  *edata = shift_try(mirror_call, &m);

		if (edata == NULL)
			return;
		if (edata->sqlerrcode != ERRCODE_T_R_SERIALIZATION_FAILURE ||
			attempt >= SYNC_SERIALIZE_ATTEMPTS)
			ReThrowError(edata);
		FreeErrorData(edata);
	}
}

/* The table-level trigger: mirrors what the statement (or row) did. */
static void
table_sync(SyncEntry *e, TriggerData *td)
{
	TriggerEvent ev = td->tg_event;
	bool		per_row = TRIGGER_FIRED_FOR_ROW(ev);
	Tuplestorestate *newrows = NULL;
	Tuplestorestate *oldrows = NULL;
	int			level;

	if (TRIGGER_FIRED_BY_TRUNCATE(ev))
	{
		/* no transition rows */
	}
	else if (per_row)
	{
		if (TRIGGER_FIRED_BY_INSERT(ev))
			newrows = one_row(td->tg_trigtuple);
		else if (TRIGGER_FIRED_BY_UPDATE(ev))
		{
			oldrows = one_row(td->tg_trigtuple);
			newrows = one_row(td->tg_newtuple);
		}
		else
			oldrows = one_row(td->tg_trigtuple);
	}
	else
	{
		newrows = td->tg_newtable;
		oldrows = td->tg_oldtable;
		/* a statement that wrote nothing has nothing to mirror */
		if ((newrows == NULL || tuplestore_tuple_count(newrows) == 0) &&
			(oldrows == NULL || tuplestore_tuple_count(oldrows) == 0))
			return;
	}

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (newrows)
		register_rows(NEW_ROWS, td->tg_relation, newrows, tuplestore_tuple_count(newrows));
	if (oldrows)
		register_rows(OLD_ROWS, td->tg_relation, oldrows, tuplestore_tuple_count(oldrows));
	level = sync_enter_search_path(e->search_path);
	if (IsolationUsesXactSnapshot())
		mirror_retrying(e, td, oldrows, newrows);
	else
		mirror(e, td, oldrows, newrows);
	AtEOXact_GUC(true, level);
	SPI_finish();
	if (per_row)
	{
		if (newrows)
			tuplestore_end(newrows);
		if (oldrows)
			tuplestore_end(oldrows);
	}
}

/* ---------------------------------------------------------------- the trigger */

/*
 * The entry for the firing trigger, compiled now if it is missing or stale
 * (a stale one is retired, freed at the end of the transaction: it may be
 * running further up the stack).
 */
static SyncEntry *
get_entry(TriggerData *td)
{
	Trigger    *tg = td->tg_trigger;
	SyncEntry  *e;
	bool		found;
	bool		reverse;
	SyncConfig *c;
	MemoryContext cxt;
	MemoryContext old;
	int			level;
	uint64		seen;

	/* dynahash never moves an entry; an invalidation clears valid */
	if (last_entry != NULL && last_entry->tgoid == tg->tgoid && last_entry->valid)
		return last_entry;
	shift_sync_init();
	if (sync_cache == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(SyncEntry);
		ctl.hcxt = CacheMemoryContext;
		sync_cache = hash_create("pg_shift sync triggers", 32, &ctl,
								 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	e = hash_search(sync_cache, &tg->tgoid, HASH_ENTER, &found);
	if (found && e->valid)
		return last_entry = e;
	last_entry = NULL;
	if (found)
	{
		/* keep the stale resources alive until the transaction ends */
		SyncEntry  *dead = MemoryContextAlloc(TopMemoryContext, sizeof(SyncEntry));

		memcpy(dead, e, sizeof(SyncEntry));
		old = MemoryContextSwitchTo(TopMemoryContext);
		retired = lappend(retired, dead);
		MemoryContextSwitchTo(old);
	}
	memset(((char *) e) + sizeof(Oid), 0, sizeof(SyncEntry) - sizeof(Oid));

	if (tg->tgnargs < 3)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" of pg_shift has no sync name, direction and digest", tg->tgname),
				 errhint("Triggers are made by shift.sync_create; drop this one.")));
	reverse = strcmp(tg->tgargs[1], "reverse") == 0;
	cxt = AllocSetContextCreate(CacheMemoryContext, "pg_shift sync trigger",
								ALLOCSET_SMALL_SIZES);
	e->cxt = cxt;
	seen = invalidations;
	PG_TRY();
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		c = sync_load_config(tg->tgargs[0], true, tg->tgargs[2], cxt);
		SPI_finish();
		old = MemoryContextSwitchTo(cxt);
		e->name = c->name;
		e->column_level = c->column_level;
		e->relid = RelationGetRelid(td->tg_relation);
		e->search_path = c->search_path;
		MemoryContextSwitchTo(old);
		level = sync_enter_search_path(c->search_path);
		if (c->column_level)
		{
			e->otherid = InvalidOid;
			sync_build_column_entry(e, c, td->tg_relation);
		}
		else
		{
			Mapping    *m = reverse ? &c->reverse : &c->forward;

			if (m->columns == NIL)
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("sync \"%s\" has no reverse mapping", c->name)));
			e->otherid = m->dst;
			sync_build_table_entry(e, c, m, td->tg_relation, TRIGGER_FIRED_FOR_ROW(td->tg_event));
		}
		AtEOXact_GUC(true, level);
		/* used now; built again next time if something changed meanwhile */
		e->valid = (seen == invalidations);
		if (e->valid)
			last_entry = e;
	}
	PG_CATCH();
	{
		/* leave nothing half-built behind, nor a pointer to it */
		last_entry = NULL;
		sync_free_entry_resources(e);
		hash_search(sync_cache, &tg->tgoid, HASH_REMOVE, NULL);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return e;
}

/*
 * shift_internal._sync_trigger() returns trigger
 *
 * Arguments (from CREATE TRIGGER): the sync's name and its direction
 * ('forward' or 'reverse').  Column level: BEFORE INSERT OR UPDATE FOR EACH
 * ROW.  Table level: AFTER statement triggers with transition tables named
 * pgs_new / pgs_old, or AFTER row triggers on a partitioned source; AFTER
 * TRUNCATE, or BEFORE TRUNCATE on a partitioned source and on each of its
 * partitions.
 */
Datum
shift_sync_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td;
	SyncEntry  *e;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("shift_internal._sync_trigger() must be called as a trigger")));
	td = (TriggerData *) fcinfo->context;
	e = get_entry(td);
	if (e->column_level)
	{
		SyncWriter	writer;

		/*
		 * The writer's version, from its own settings: get_entry() has put
		 * back the writer's search_path if it compiled the sync under the
		 * sync's.
		 */
		if (sync_backfill_writing)
			writer = WRITER_OLD;
		else if (e->new_version == NULL)
			writer = WRITER_GUESS;
		else
			writer = is_new_writer(e) ? WRITER_NEW : WRITER_OLD;

		if (!TRIGGER_FIRED_BEFORE(td->tg_event) || !TRIGGER_FIRED_FOR_ROW(td->tg_event) ||
			TRIGGER_FIRED_BY_DELETE(td->tg_event) || TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
			ereport(ERROR,
					(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
					 errmsg("column-level sync \"%s\" must fire BEFORE INSERT OR UPDATE FOR EACH ROW",
							e->name)));
		{
			HeapTuple	result;

			if (e->busy)
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("sync \"%s\" fired again while computing a row of its own", e->name),
						 errdetail("An expression of the sync writes the same table."),
						 errhint("Keep the sync's expressions free of writes to its table.")));
			e->busy = true;
			PG_TRY();
			{
				result = sync_column_row(e, td, writer);
			}
			PG_FINALLY();
			{
				e->busy = false;
			}
			PG_END_TRY();
			return PointerGetDatum(result);
		}
	}
	if (TRIGGER_FIRED_BEFORE(td->tg_event) && !TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("table-level sync \"%s\" must fire AFTER", e->name)));
	table_sync(e, td);
	return PointerGetDatum(NULL);
}
