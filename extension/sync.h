/*-------------------------------------------------------------------------
 *
 * sync.h
 *	  What the files of the dual-write sync share (private to them):
 *
 *	  sync.c		 the trigger shift_internal._sync_trigger, its cache of compiled
 *					 syncs, the column-level and table-level work per write
 *	  sync_config.c	 a sync's definition read from shift.sync, and the
 *					 statements its table-level triggers run
 *	  sync_check.c	 shift_internal._sync_check and the cut-over's check
 *
 *-------------------------------------------------------------------------
 */
#ifndef PG_SHIFT_SYNC_H
#define PG_SHIFT_SYNC_H

#include "commands/trigger.h"
#include "executor/spi.h"
#include "nodes/execnodes.h"
#include "utils/rel.h"

#include "pg_shift.h"

/* The transition tables' names, in the triggers and in the statements. */
#define NEW_ROWS	"pgs_new"
#define OLD_ROWS	"pgs_old"

/* One direction of a table-level sync: rows of src become rows of dst. */
typedef struct Mapping
{
	Oid			src;
	Oid			dst;
	char	   *alias;			/* src's name when the sync was made: qualifies its columns */
	List	   *columns;		/* dst columns written, of char * */
	List	   *exprs;			/* one SQL expression over src per column */
	List	   *key;			/* dst columns that identify a row */
} Mapping;

/* A row of shift.sync, as the trigger needs it. */
typedef struct SyncConfig
{
	char	   *name;
	bool		column_level;
	Oid			relation;
	char	   *set_clause;
	char	   *reverse_set;
	Mapping		forward;
	Mapping		reverse;		/* columns NIL: none */
	char	   *search_path;
	char	   *owner;
	char	   *new_version;	/* the new application's version, or NULL */
	char	   *old_version;	/* the old one's (recorded, not needed), or NULL */
} SyncConfig;

/* A trigger compiled: the entry of the cache (sync.c), keyed by trigger OID. */
typedef struct SyncEntry
{
	Oid			tgoid;			/* hash key */
	bool		valid;
	MemoryContext cxt;			/* everything below but the plans */
	char	   *name;
	bool		column_level;
	Oid			relid;			/* the table the trigger is on */
	Oid			otherid;		/* the table it writes */
	char	   *search_path;

	/* column level: new columns from old (up), old from new (down) */
	int			nup;
	AttrNumber *up_att;
	ExprState **up_expr;
	int			ndown;
	AttrNumber *down_att;
	ExprState **down_expr;
	ExprContext *econtext;
	bool		busy;			/* computing a row: expressions are not re-entrant */
	char	   *new_version;	/* NULL: guess the writer from what it changed */
	uint64		writer_seen;	/* sync_writer_generation() new_writer is for */
	bool		new_writer;		/* the writer's version is new_version */
	int			natts;			/* of the row: the arrays below */
	Datum	   *values;
	bool	   *nulls;

	/* table level */
	SPIPlanPtr	upsert;			/* INSERT ... SELECT FROM new rows ON CONFLICT DO UPDATE */
	SPIPlanPtr	update_kept;	/* UPDATE the rows the new rows' keys find (NULL: only key columns) */
	SPIPlanPtr	insert_missing; /* the upsert of the new rows whose keys are not there */
	SPIPlanPtr	delete_gone;	/* DELETE the keys the old rows had and the new ones lack */
	SPIPlanPtr	delete_old;		/* DELETE the old rows' keys */
	SPIPlanPtr	delete_moved;	/* the same, but not the keys a source row holds now */
	SPIPlanPtr	truncate;
	/* on one partition of a partitioned source: its TRUNCATE */
	Oid			partition_of;	/* the partitioned source, InvalidOid if not */
	SPIPlanPtr	other_has_rows; /* SELECT 1 FROM the other table LIMIT 1 */
	SPIPlanPtr	delete_partition;	/* DELETE the keys of the partition's rows */
	int			nkeyatts;		/* the key's source columns, 0 if an expression hides them */
	AttrNumber *keyatts;		/* their numbers in the trigger's table */
} SyncEntry;

/*
 * True while a pg_shift backfill's batch statement runs (backfill_batch.c
 * sets it around that statement only, and restores it however the statement
 * ends): what the column-level trigger then sees is the backfill's write,
 * never an application's.  A C variable: no session can set it.
 */
extern bool sync_backfill_writing;

/* pg_shift.version (defined in _PG_init, pg_shift.c): the writer's version */
extern char *sync_version_setting;
extern void sync_version_setting_assign(const char *newval, void *extra);

/* ---- sync_config.c */
extern SyncConfig *sync_load_config(const char *name, bool checked, const char *digest,
									MemoryContext cxt);
extern int	sync_enter_search_path(const char *search_path);
extern void sync_as_owner(SyncConfig *c, ShiftAs *as);
extern char *sync_label(const char *name);
extern char *sync_qualified_name(Oid relid);
extern const char *sync_key_expr(Mapping *m, const char *k);
extern char *sync_upsert_sql(Mapping *m, bool only_missing);
extern char *sync_update_sql(Mapping *m);
extern AttrNumber sync_plain_column(Oid rel, const char *expr);
extern char *sync_delete_sql(Mapping *m, const char *rows, const char *except, bool unclaimed);

/* ---- sync.c */
extern void sync_free_entry_resources(SyncEntry *e);
extern void sync_build_table_entry(SyncEntry *e, SyncConfig *c, Mapping *m, Relation rel,
								   bool per_row);

/* error context of a sync's statement: which statement of which sync */
typedef struct PrepareContext
{
	const char *name;
	const char *sql;
} PrepareContext;

/* ---- sync_column.c */
/* Who wrote the row, as sync_column_row() is told */
typedef enum SyncWriter
{
	WRITER_OLD,					/* the old version, or a backfill: set */
	WRITER_NEW,					/* the new version: reverse_set, new columns kept */
	WRITER_GUESS				/* no new_version: guess from what changed */
} SyncWriter;

extern void sync_build_column_entry(SyncEntry *e, SyncConfig *c, Relation rel);
extern HeapTuple sync_column_row(SyncEntry *e, TriggerData *td, SyncWriter writer);
extern bool sync_same_value(TupleTableSlot *a, TupleTableSlot *b, AttrNumber att);

#endif							/* PG_SHIFT_SYNC_H */
