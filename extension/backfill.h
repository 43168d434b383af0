/*-------------------------------------------------------------------------
 *
 * backfill.h
 *	  What the files of the backfill share: a job as C sees it (BackfillJob,
 *	  read from its row in shift.backfill), its state, its prepared
 *	  statements, and what each file offers the others.
 *
 *	  backfill.c		the SQL entry points (_backfill_check, backfill_step,
 *						CALL backfill_run, backfill_lock_key) and the run lock
 *	  backfill_job.c	a job's row: its settings, key, checkpoint and state;
 *						who may run it and whether its SQL fragments are what
 *						they claim to be
 *	  backfill_sql.c	the statements a job runs, built and prepared
 *	  backfill_batch.c	one batch: the bound, the batch's keys, the work and
 *						the checkpoint, with the next batch size
 *	  backfill_run.c	the run loop: throttles, replication lag, retries,
 *						sleeping between batches
 *	  backfill_cron.c	the pg_cron schedule of a job that has finished
 *
 * The design (one transaction per batch, exactly once, who runs what) is
 * described at the top of backfill.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BACKFILL_H
#define BACKFILL_H

#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "utils/timestamp.h"

#include "pg_shift.h"

/* How a copy locks the rows it reads (see backfill_copy_lock_mode). */
#define COPY_LOCK_NONE		0
#define COPY_LOCK_KEY_SHARE	1
#define COPY_LOCK_SHARE		2

/*
 * The state of a job, as its row's state column stores it: the table's
 * CHECK lists the same six, backfill_state_name gives the text, and a read
 * of the row parses it (backfill_job.c).  Operators move a job between
 * them with shift.backfill_pause/resume/cancel (shift_internal.backfill_move
 * in sql/backfill.sql); batches move it to active, done or failed.
 */
typedef enum BackfillState
{
	BACKFILL_PENDING,			/* made, its walk not started */
	BACKFILL_ACTIVE,			/* walking */
	BACKFILL_PAUSED,			/* stopped by shift.backfill_pause */
	BACKFILL_DONE,				/* walked up to its bound */
	BACKFILL_CANCELLED,			/* stopped for good by shift.backfill_cancel */
	BACKFILL_FAILED				/* its last batch raised an error */
} BackfillState;

/* A job in these states runs no batch until an operator moves it. */
#define BACKFILL_HALTED(s) \
	((s) == BACKFILL_DONE || (s) == BACKFILL_PAUSED || (s) == BACKFILL_CANCELLED)

typedef struct BackfillJob
{
	char	   *name;
	Oid			relid;
	bool		copy;			/* INSERT INTO into_relid, else UPDATE */
	int			lock_mode;		/* a copy under a sync: how it locks the rows it reads */
	char	   *set_clause;
	char	   *where_clause;
	Oid			into_relid;
	List	   *into_columns;	/* of char * */
	char	   *select_list;
	char	   *on_conflict;
	Oid			key_index;		/* InvalidOid: a foreign table's key_columns */
	List	   *key_columns;	/* of char *: the key as key_columns => named
								 * it, NIL when named by an index */
	bool		foreign;		/* the table is a foreign table */
	char	   *owner;
	Oid			owner_id;
	char	   *search_path;	/* recorded at creation: the job's SQL runs under it */

	int			nkeys;
	char	   *key_names[INDEX_MAX_KEYS];
	Oid			key_types[INDEX_MAX_KEYS];
	/*
	 * the key's ordering (its index's, or for a foreign table each column
	 * type's default btree class): its operators, and the key as it sorts
	 */
	ShiftKeyOps key_ops[INDEX_MAX_KEYS];
	char	   *key_sorted[INDEX_MAX_KEYS];	/* "col" or "col COLLATE x" */
	bool		key_rowcmp;		/* one schema for all: ROW(...) op ROW(...) */
	bool		key_max;		/* one column whose pg_catalog.max() sorts as the index */

	/* settings, reread before every batch */
	int			batch_min;
	int			batch_max;
	int			target_ms;
	double		sleep_ratio;
	int			lock_timeout_ms;
	int			max_retries;
	bool		has_max_lag;
	double		max_lag_secs;
	char	   *throttle_query;

	/* memory: the job's lifetime, and the last key's (reset as it moves) */
	MemoryContext keep_cxt;
	MemoryContext last_cxt;

	/* state */
	BackfillState state;		/* as last read or written (backfill_store_state) */
	bool		has_upper;
	Datum		upper[INDEX_MAX_KEYS];
	bool		has_last;
	Datum		last[INDEX_MAX_KEYS];
	int64		batches;
	int			batch_size;
	double		rate;			/* keys/s while working: sizes the batches */
	int64		stride;			/* a foreign table's integer key: the width of
								 * the next batch's key range (0: not known yet) */
	bool		stride_gap;		/* the last range held no key: look for the next */
	TimestampTz since;			/* backfill_run: when the previous batch of
								 * this run committed (or the run began); 0
								 * outside a run.  A batch's wall time, its
								 * rest and throttling included, runs from it */
} BackfillJob;

/*
 * Which of a batch's arguments each placeholder of a statement takes: a
 * foreign table's statements use each placeholder once (see param_ref in
 * backfill_sql.c).  NULL for a table's: $1.. are the arguments in order.
 */
typedef struct BackfillArgMap
{
	int			n;				/* placeholders */
	int		   *src;			/* $k takes argument src[k - 1] */
} BackfillArgMap;

/*
 * The job's prepared statements: the search for a batch's upper key and
 * the batch itself, each for the first batch (no checkpoint) and the next,
 * with their argument maps.
 */
typedef struct BackfillPlans
{
	SPIPlanPtr	hi_first;
	SPIPlanPtr	hi_next;
	SPIPlanPtr	batch_first;
	SPIPlanPtr	batch_next;
	BackfillArgMap *hi_first_map;
	BackfillArgMap *hi_next_map;
	BackfillArgMap *batch_first_map;
	BackfillArgMap *batch_next_map;
} BackfillPlans;

/* What one batch did. */
typedef struct BatchResult
{
	int64		keys;
	int64		rows;
	bool		done;
	double		ms;
} BatchResult;

/* The limits of one run (CALL backfill_run's max_runtime, max_batches). */
typedef struct RunLimits
{
	double		max_runtime_ms; /* < 0: none */
	int64		max_batches;	/* < 0: none */
} RunLimits;

/* ---- SPI, and running SQL as the right role */

static inline void
spi_check(int rc, const char *what)
{
	if (rc < 0)
		elog(ERROR, "SPI failed while %s: %s", what, SPI_result_code_string(rc));
}

/* Column col of the first row of the last SPI result. */
static inline char *
spi_text(int col)
{
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col);
}

static inline Datum
spi_datum(int col, bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, isnull);
}

/* A fixed statement on the job's row or its batch log, as pg_shift's owner. */
static inline int
ctl(const char *sql, int nargs, Oid *argtypes, Datum *args, const char *nulls,
	bool read_only, long count)
{
	return shift_ctl_execute(sql, nargs, argtypes, args, nulls, read_only, count);
}

/* The job's own SQL runs between these two: as its owner, under its search_path. */
static inline void
as_owner(BackfillJob *job, ShiftAs *as)
{
	shift_as_begin(as, job->owner_id, job->search_path);
}

/* ---- backfill_job.c */

extern const char *backfill_state_name(BackfillState state);
extern void backfill_store_state(BackfillJob *job, BackfillState state, const char *also);
extern Datum backfill_keys_to_array(BackfillJob *job, Datum *values);
extern char *backfill_keys_to_text(BackfillJob *job, Datum *values);
extern char *backfill_key_names(BackfillJob *job);
extern void backfill_copy_keys(BackfillJob *job, MemoryContext cxt, Datum *dst, Datum *src);
extern void backfill_set_last_key(BackfillJob *job, Datum *values);
extern char *backfill_relation_name(Oid relid, const char *what, const char *job);
extern BackfillJob *backfill_load_job(const char *name, bool lock);
extern void backfill_lock_checkpoint(BackfillJob *job);
extern void backfill_refresh_settings(BackfillJob *job);
extern void backfill_check_owner(BackfillJob *job);
extern void backfill_check_fragments(BackfillJob *job);
extern void backfill_resolve_copy(BackfillJob *job);

/* ---- backfill_sql.c */

extern char *backfill_last_key_sql(BackfillJob *job);
extern char *backfill_count_sql(BackfillJob *job);
extern char *backfill_next_key_sql(BackfillJob *job);
extern char *backfill_null_key_sql(BackfillJob *job);
extern int	backfill_copy_lock_mode(BackfillJob *job);
extern void backfill_prepare_plans(BackfillJob *job, BackfillPlans *plans, bool keep);
extern void backfill_free_plans(BackfillPlans *plans);
extern int	backfill_execute_plan(SPIPlanPtr plan, BackfillArgMap *map, Datum *args,
								  const char *nulls, bool read_only, long count);

/* ---- backfill_batch.c */

extern void backfill_do_batch(BackfillJob *job, BackfillPlans *plans, int retries,
							  BatchResult *res);

/* ---- backfill_run.c */

extern void backfill_run_batches(BackfillJob *job, BackfillPlans *plans, RunLimits *limits,
								 MemoryContext job_cxt);

/* ---- backfill_cron.c */

extern bool backfill_end_schedule(const char *name, const char *schedule, const char *why);

#endif							/* BACKFILL_H */
