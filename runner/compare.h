/*
 * compare.h
 *	  Declarations shared by pgshift compare's files:
 *	  compare.c       the command: the sides, their snapshots, both
 *	                  servers at once, progress and the summary
 *	  compare_find.c  the passes that find the differing rows: bucket sums,
 *	                  refinement, the rows of the differing buckets
 *	  compare_diff.c  the differences: rows grouped by key, read again
 *	                  after the snapshots (in flight or not), reported
 */
#ifndef PGSHIFT_COMPARE_H
#define PGSHIFT_COMPARE_H

#include "pgshift.h"

#define LEVEL_BITS_MAX	24		/* shift.chunk_checksums' limit */
#define SPLIT_BITS		8		/* each refinement splits a bucket 256 ways */
#define ROWS_TO_FETCH	512		/* a bucket this small is fetched row by row */
#define PARTS			20		/* page ranges per side, for progress */
#define LSN_WAIT_SECS	60.0	/* the longest wait for a replica to catch up */
#define KEYS_PER_READ	1000	/* keys read again per statement (one parameter each) */

typedef struct Acc
{
	int64_t		rows;
	uint64_t	lo;
	uint64_t	hi;
} Acc;

typedef struct Row
{
	char		key_hash[33];
	char		row_hash[33];
	int			side;
	char	   *key;			/* text[] literal */
} Row;

typedef struct Side
{
	const char *name;			/* "source" or "target" */
	const char *dsn;
	const char *label;			/* what errors call it; NULL: the DSN */
	const char *table;
	PGconn	   *conn;
	bool		busy;
	PGresult   *result;			/* of the last statement, or NULL */
	PgsError	err;
	bool		failed;
	char	   *sql;			/* the statement in flight */
	int64_t		pages;
	double		reltuples;
	bool		paged;			/* stored in pages: a table or materialized view */
	PGresult   *columns;		/* shift.checksum_columns: label, type, class, is_key */
	int			parts;
	int			next_part;
	int			parts_done;
	int64_t		rows;
	/* replication, as read before the snapshot */
	char	   *sysid;
	bool		in_recovery;
	char	   *subs;			/* subscribed slot names, "{a,b}" or NULL */
	char	   *slots;			/* logical slots of this database, "{a,b}" or NULL */
} Side;

/*
 * A key whose rows differ: the rows each side has for it (their row
 * hashes), as first found and as last read again.
 */
typedef struct Group
{
	char		key_hash[33];
	char	   *key;			/* text[] literal */
	char	  **first[2];		/* row hashes per side, sorted */
	int			nfirst[2];
	char	  **last[2];
	int			nlast[2];
	bool		equal;			/* became equal on a recheck */
	bool		moved;			/* changed between two reads */
} Group;

typedef struct Compare
{
	const PgsOptions *opts;
	const PgsCompareOptions *copts;
	Side		side[2];
	char	   *columns[2];		/* text[] literals (see side_lists) or NULL */
	char	   *key[2];
	int			bits;			/* level-1 buckets: 2^bits */
	Acc		   *acc[2];
	Row		   *rows;
	int64_t		nrows;
	int64_t		maxrows;
	Group	   *groups;
	int64_t		ngroups;
	int			rechecks;		/* rounds done */
	char	   *lsn;			/* the WAL position both sides were read at, or NULL */
	int			pass;
	const char *pass_name;
	double		started;
	bool		tty;
	lua_State  *L;				/* with --json: the prelude, whose writer writes it */
} Compare;

typedef struct Counts
{
	int64_t		missing_in_target;
	int64_t		missing_in_source;
	int64_t		different;
	int64_t		in_flight;
} Counts;

/* Buckets (at level bits) that differ; sums from acc, or from a refinement result. */
typedef struct Level
{
	int			bits;
	int64_t    *buckets;		/* differing */
	int64_t		n;
	int64_t		maxrows;		/* the most rows a side has in one of them */
} Level;

/* compare.c */
extern bool side_send(Side *s, const char *sql, int nparams, const char *const *values);
extern int	wait_sides(Compare *c);
extern PGresult *side_exec(Compare *c, Side *s, const char *sql, int nparams, const char *const *values);
extern int	side_error(Compare *c, Side *s, const char *what);
extern bool nap(double secs);
extern void cmp_progress(Compare *c);

/* compare_find.c */
extern int	pass_buckets(Compare *c);
extern void level_add(Level *l, int64_t b, int64_t rows);
extern int	refine(Compare *c, Level *l, Level *next);
extern int	fetch_rows(Compare *c, Level *l);

/* compare_diff.c */
extern void group_rows(Compare *c);
extern int	recheck_rounds(Compare *c);
extern void report_groups(Compare *c, Counts *n);
extern void free_groups(Compare *c);

#endif							/* PGSHIFT_COMPARE_H */
