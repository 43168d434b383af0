/*
 * pgshift.h
 *	  Declarations shared by the pgshift runner's source files.
 *
 * The runner orders work over time (phases, retries, progress); everything
 * that moves rows is a call into the pg_shift extension.  All SQL goes
 * through pgs_exec() in conn.c; all Lua runs in protected mode through
 * script.c.
 */
#ifndef PGSHIFT_H
#define PGSHIFT_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <libpq-fe.h>
#include <lua.h>

#include "version.h"

/* Exit codes: the contract with shell scripts and CI jobs (see README). */
#define PGS_EXIT_OK		0		/* done, or the check found no difference */
#define PGS_EXIT_FAIL	1		/* the migration failed / a difference found */
#define PGS_EXIT_USAGE	2		/* bad command line, file, connection or setup */

/* ---- conn.c: the one libpq helper ---- */

/*
 * What went wrong with a statement, copied out of the PGresult (or out of the
 * connection for client-side failures) so it outlives the result.  Strings
 * are malloc'd or NULL; pgs_error_clear() frees them.
 */
typedef struct PgsError
{
	char	   *severity;		/* ERROR, FATAL, ... */
	char	   *sqlstate;		/* five characters; 08006 for a lost connection */
	char	   *message;		/* primary message, never NULL once set */
	char	   *detail;
	char	   *hint;
	char	   *context;
	char	   *statement;		/* the SQL that was sent */
	int			position;		/* 1-based character offset in statement, or 0 */
} PgsError;

typedef void (*PgsTickFn) (void *arg);

extern volatile sig_atomic_t pgs_interrupted;
extern PGconn *pgs_connect(const char *dsn, const char *appname, PgsError *err);
extern void pgs_set_work_conn(PGconn *conn, PgsTickFn fn, void *arg);
extern void pgs_maybe_tick(void);
extern double pgs_monotonic_seconds(void);
extern PGresult *pgs_exec(PGconn *conn, const char *sql, int nparams,
						  const char *const *values, PgsError *err);
extern void pgs_error_from_result(PGconn *conn, const PGresult *res,
								  const char *sql, PgsError *err);
extern void pgs_error_clear(PgsError *err);
extern void pgs_error_set(PgsError *err, const char *sqlstate,
						  const char *fmt,...) __attribute__((format(printf, 3, 4)));
extern void pgs_error_print(FILE *out, const PgsError *err);
extern char *pgs_conn_describe(PGconn *conn);
extern int	pgs_check_extension(PGconn *conn, PgsError *err);
extern void pgs_report_error(const PgsError *err, const char *context);

/* ---- luadb.c: the db object migrations receive ---- */

#define PGS_DB_METATABLE		"pgshift.db"
#define PGS_SQLERROR_METATABLE	"pgshift.sqlerror"

extern void pgs_open_db(lua_State *L);
extern void pgs_push_db(lua_State *L, PGconn *conn);
extern void pgs_db_set_conn(lua_State *L, int idx, PGconn *conn);
extern PGconn *pgs_connect_db(lua_State *L, const char *dsn, const char *appname);
extern void pgs_push_db_methods(lua_State *L);
extern PGconn *pgs_db_conn(lua_State *L, int idx);
extern void pgs_db_pin(lua_State *L, int idx);
extern int64_t pgs_db_take_rows(lua_State *L, int idx);
extern void pgs_push_value(lua_State *L, const char *text, int len,
						   Oid type, bool isnull);
extern const char *pgs_param_text(lua_State *L, int idx, int argno);
extern void pgs_push_sqlerror(lua_State *L, const PgsError *err);

/* ---- script.c: Lua state, prelude, protected calls, failures ---- */

struct PgsOptions;
extern lua_State *pgs_lua_new(const struct PgsOptions *opts);
extern int	pgs_pcall(lua_State *L, int nargs, int nresults);
extern void pgs_print_failure(lua_State *L, int idx, FILE *out,
							  const char *context, bool verbose);
extern int	pgs_load_migration(lua_State *L, const char *path);
extern void pgs_push_failure(lua_State *L, const char *fmt,...);
extern const char *pgs_failure_message(lua_State *L, int idx, const char **sqlstate);
extern void pgs_push_prelude_function(lua_State *L, const char *name);
extern void pgs_emit(lua_State *L, const char *event,...);
extern void pgs_catch_interrupts(lua_State *L);
extern void pgs_stop_hook(lua_State *L, lua_Debug *ar);
extern void pgs_clear_interrupt_hook(lua_State *L);

/*
 * What the engine offers the prelude while a phase runs (C.event, C.current,
 * C.backfill_watch, C.add_rows); outside a run the hooks are NULL.
 */
typedef struct PgsEngineHooks
{
	/* records an event of the running phase; false if it failed */
	bool		(*event) (void *arg, const char *kind, const char *message,
						  const char *sqlstate);
	/* the running migration and phase */
	const char *(*current) (void *arg, const char **phase);
	/* starts (job) or stops (NULL) showing a backfill job's progress */
	bool		(*watch) (void *arg, const char *job);
	/* rows written on the phase's behalf (by a backfill) */
	void		(*add_rows) (void *arg, int64_t rows);
	void	   *arg;
} PgsEngineHooks;

extern void pgs_set_engine(const PgsEngineHooks *hooks);

/* ---- engine.c: commands that run migrations ---- */

typedef struct PgsOptions
{
	const char *dsn;			/* NULL: the libpq environment decides */
	bool		verbose;
	bool		quiet;
	bool		json;			/* events and reports as JSON */
	const char *to;				/* run/rollback: stop at this phase */
	double		lock_wait;		/* seconds to poll for the migration lock */
	bool		allow_drift;	/* run a completed migration's edited script */
	const char *format;			/* plan: text, markdown or json */
	bool		offline;		/* plan: do not connect */
	const char *fail_on;		/* lint: the lowest failing severity */
} PgsOptions;

extern int	pgs_cmd_session(const PgsOptions *opts, const char *command,
							const char *path);

/* ---- inspect.c: commands that only read ---- */
extern int	pgs_cmd_plan(const PgsOptions *opts, const char *path);
extern int	pgs_cmd_status(const PgsOptions *opts, const char *name);
extern int	pgs_cmd_lint(const PgsOptions *opts, const char *path);

/* ---- compare.c: one table on two servers ---- */
typedef struct PgsCompareOptions
{
	const char *source;			/* DSN; NULL: --dsn or the libpq environment */
	const char *target;
	const char *table;
	const char *target_table;	/* NULL: the same name */
	const char *columns;		/* comma-separated; NULL: every column */
	const char *target_columns;
	const char *key;			/* comma-separated; NULL: the primary key */
	const char *target_key;
	int			buckets;		/* first-level buckets; 0: from the row estimate */
	int			recheck;		/* rounds of reading differing keys again; 0: none */
} PgsCompareOptions;

extern int	pgs_cmd_compare(const PgsOptions *opts, const PgsCompareOptions *copts);

/* ---- sha256.c ---- */
extern int	pgs_sha256_file(const char *path, char *hex);

/* ---- output ---- */
extern void pgs_live_update(const char *text);
extern void pgs_live_clear(void);
extern void pgs_errorf(const char *fmt,...) __attribute__((format(printf, 1, 2)));

#endif							/* PGSHIFT_H */
