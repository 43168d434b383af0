/*
 * pgshift.h
 *	  Declarations shared by the pgshift runner's source files.
 *
 * The runner orders work over time (phases, retries, progress); everything
 * that moves rows is a call into the pg_shift extension.  All SQL goes
 * through conn.c (pgs_exec; pgs_send for statements run in parallel); all
 * Lua runs in protected mode through script.c; everything printed goes
 * through output.c.
 *
 * The files form layers, each calling only the layers before it:
 *	 output.c	the filtered streams, colour, JSON strings, the live line,
 *				error reports
 *	 conn.c		libpq: connect, execute, PgsError
 *	 luadb.c	the db object of Lua (its C methods)
 *	 script.c	the Lua state, the embedded prelude, protected calls, the sandbox
 *	 engine.c (with lock.c), inspect.c, report.c, compare.c (with compare_find.c,
 *		compare_diff.c; compare.h)	the commands
 *	 project.c	a directory of migrations (the commands, file by file)
 *	 help.c		help, the man page and shell completion, from main.c's tables
 *	 main.c		the command line
 */
#ifndef PGSHIFT_H
#define PGSHIFT_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <lua.h>

#include "version.h"

/* Exit codes: the contract with shell scripts and CI jobs (see README). */
#define PGS_EXIT_OK		0		/* done, or the check found no difference */
#define PGS_EXIT_FAIL	1		/* the migration failed / a difference found */
#define PGS_EXIT_USAGE	2		/* bad command line, file, connection or setup */

/* ---- output.c: everything printed (calls no other file) ---- */

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

typedef void (*PgsPutFn) (void *arg, const char *s, size_t len);

/* A backfill job's progress, as shift.backfill_progress shows it. */
typedef struct PgsBackfillProgress
{
	long long	rows;
	long long	keys;
	long long	total;			/* estimated keys in all; 0 if unknown */
	double		percent;
	double		rate;			/* keys a second */
	long long	eta;			/* seconds, or -1 if unknown */
	const char *waiting;		/* what it waits for, "" if nothing */
} PgsBackfillProgress;

/* --color=WHEN */
typedef enum PgsColorMode
{
	PGS_COLOR_AUTO,				/* on a terminal, unless NO_COLOR or TERM=dumb */
	PGS_COLOR_ALWAYS,
	PGS_COLOR_NEVER
} PgsColorMode;

/* What a piece of text is, for its colour (see pgs_styled). */
typedef enum PgsStyle
{
	PGS_STYLE_PLAIN,
	PGS_STYLE_HEADER,			/* "==> run migration ..." */
	PGS_STYLE_PHASE,			/* "--> [1/3] add_column" */
	PGS_STYLE_OK,				/* done, finished */
	PGS_STYLE_FAIL,				/* failed, stopped */
	PGS_STYLE_ERROR,			/* "pgshift:" before an error */
	PGS_STYLE_WARN,				/* a note, a server's warning */
	PGS_STYLE_CRITICAL,			/* lint severities */
	PGS_STYLE_HIGH,
	PGS_STYLE_MEDIUM,
	PGS_STYLE_LOW
} PgsStyle;

extern void pgs_output_init(void);
extern void pgs_output_json(bool on);
extern void pgs_color_mode(PgsColorMode mode);
extern bool pgs_color_on(FILE *out);
extern PgsStyle pgs_style_named(const char *name);
extern void pgs_styled(FILE *out, PgsStyle style, const char *text, size_t len);
extern void pgs_term_control(const char *seq);
extern int	pgs_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp);
extern size_t pgs_sanitize(const char *in, size_t len, bool json, bool final,
						   PgsPutFn put, void *arg);
extern void pgs_json_quote(const char *s, size_t len, PgsPutFn put, void *arg);
extern void pgs_live_update(const char *text);
extern void pgs_live_clear(void);
extern void pgs_live_elapsed(const char *phase, int secs);
extern void pgs_live_backfill(const PgsBackfillProgress *p);
extern void pgs_errorf(const char *fmt,...) __attribute__((format(printf, 1, 2)));
extern void pgs_print_notice(const char *severity, const char *message);
extern void pgs_error_print(FILE *out, const PgsError *err);
extern void pgs_print_error(FILE *out, const char *message, const char *sqlstate,
							const char *context, const PgsError *details,
							const char *traceback);
extern void pgs_report_error(const PgsError *err, const char *context);

/*
 * malloc, realloc, calloc and strdup that do not return NULL: out of memory is
 * reported and ends the runner with exit status 2.
 */
static inline void *
pgs_realloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (p == NULL)
	{
		pgs_errorf("out of memory\n");
		exit(PGS_EXIT_USAGE);
	}
	return p;
}

static inline void *
pgs_malloc(size_t n)
{
	return pgs_realloc(NULL, n);
}

static inline void *
pgs_calloc(size_t n, size_t size)
{
	void	   *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
	{
		pgs_errorf("out of memory\n");
		exit(PGS_EXIT_USAGE);
	}
	return p;
}

static inline char *
pgs_strdup(const char *s)
{
	size_t		n = strlen(s) + 1;

	return memcpy(pgs_malloc(n), s, n);
}

/* ---- conn.c: the one libpq helper ---- */

typedef void (*PgsTickFn) (void *arg);

extern volatile sig_atomic_t pgs_interrupted;
extern PGconn *pgs_connect(const char *dsn, const char *appname, PgsError *err);
extern void pgs_set_work_conn(PGconn *conn, PgsTickFn fn, void *arg);
extern void pgs_maybe_tick(void);
extern double pgs_monotonic_seconds(void);
extern PGresult *pgs_exec(PGconn *conn, const char *sql, int nparams,
						  const char *const *values, PgsError *err);
extern bool pgs_exec_unchecked(PGconn *conn, const char *sql);

#define PGS_WAIT_MAX	8		/* connections pgs_wait_any watches at once */
extern bool pgs_send(PGconn *conn, const char *sql, int nparams,
					 const char *const *values, PgsError *err);
extern int	pgs_wait_any(PGconn *const *conns, int n, int timeout_ms);
extern PGresult *pgs_get_result(PGconn *conn, const char *sql, PgsError *err);
extern void pgs_cancel(PGconn *conn);
extern void pgs_error_from_result(PGconn *conn, const PGresult *res,
								  const char *sql, PgsError *err);
extern void pgs_error_clear(PgsError *err);
extern void pgs_error_set(PgsError *err, const char *sqlstate,
						  const char *fmt,...) __attribute__((format(printf, 3, 4)));
extern char *pgs_conninfo_pair(const char *key, const char *value);
extern void pgs_conn_server(PGconn *conn, char *buf, size_t size);
extern char *pgs_conn_describe(PGconn *conn);
extern int	pgs_check_extension(PGconn *conn, PgsError *err);

/* ---- luadb.c: the db object migrations receive ---- */

#define PGS_DB_METATABLE		"pgshift.db"
#define PGS_SQLERROR_METATABLE	"pgshift.sqlerror"

extern void pgs_open_db(lua_State *L);
extern void pgs_push_db(lua_State *L, PGconn *conn);
extern void pgs_db_set_conn(lua_State *L, int idx, PGconn *conn);
extern PGconn *pgs_connect_db(lua_State *L, const char *dsn, const char *appname);
extern void pgs_push_db_methods(lua_State *L);
extern int	pgs_l_connect(lua_State *L);
extern int	pgs_l_compare(lua_State *L);
extern PGconn *pgs_db_conn(lua_State *L, int idx);
extern void pgs_db_pin(lua_State *L, int idx);
extern int64_t pgs_db_take_rows(lua_State *L, int idx);
extern void pgs_push_value(lua_State *L, const char *text, int len,
						   Oid type, bool isnull);
extern const char *pgs_param_text(lua_State *L, int idx, int argno);
extern void pgs_push_sqlerror(lua_State *L, const PgsError *err);
extern void pgs_push_where(lua_State *L);

/* ---- script.c: Lua state, prelude, protected calls, failures ---- */

/* A module of the prelude, scripts/prelude/NAME.lua (see prelude_lua.c). */
typedef struct PgsPreludeModule
{
	const char *name;
	const unsigned char *text;
	size_t		len;
} PgsPreludeModule;

extern const PgsPreludeModule pgs_prelude[];	/* in load order, then {NULL} */

/* ---- decl.c: declarative migration files (JSON, YAML) as Lua data ---- */

/* doc/migration.schema.json, embedded (decl_schema.c, made by the Makefile) */
extern const unsigned char pgs_decl_schema_text[];
extern const size_t pgs_decl_schema_len;
extern bool pgs_decl_parse(lua_State *L, const char *name, const char *text, size_t len,
						   char *err, size_t errlen);
extern int	pgs_l_decl_read(lua_State *L);
extern int	pgs_l_decl_schema(lua_State *L);
extern bool pgs_migration_file_name(const char *name);

struct PgsOptions;
extern lua_State *pgs_lua_new(const struct PgsOptions *opts);
extern lua_State *pgs_lua_new_sandbox(const struct PgsOptions *opts);
extern void pgs_lua_close(lua_State *L);
extern void pgs_sandbox_limits(long long steps, size_t memory, int cpu_seconds);
extern const char *pgs_sandbox_stopped(lua_State *L);

/* Why the sandbox's guard stopped the code it ran. */
typedef enum PgsSandboxStop
{
	PGS_SANDBOX_OK = 0,			/* it did not */
	PGS_SANDBOX_STEPS,			/* too many Lua instructions */
	PGS_SANDBOX_MEMORY,			/* too much memory */
	PGS_SANDBOX_CPU				/* too much CPU time */
} PgsSandboxStop;

/* pgs_sandbox_run's limits, and what happened */
typedef struct PgsSandboxRun
{
	long long	steps;			/* Lua instructions */
	size_t		memory;			/* bytes, beyond the state's own */
	int			cpu_seconds;	/* 0: no CPU timer */
	PgsSandboxStop stop;		/* out */
	char		where[LUA_IDSIZE + 16]; /* out: "file:line" of a stop, or "" */
	char	   *error;			/* out: the error raised (malloc'd), or NULL */
} PgsSandboxRun;

extern int	pgs_sandbox_run(PgsSandboxRun *run, lua_CFunction fn, void *ud);
extern int	pgs_pcall(lua_State *L, int nargs, int nresults);
extern void pgs_print_failure(lua_State *L, int idx, FILE *out,
							  const char *context, bool verbose);
extern int	pgs_load_migration(lua_State *L, const char *path, char *sha256);
extern void pgs_keep_migration(lua_State *L, const char *path, const char *sha256);
extern int	pgs_sha256_file(const char *path, char *hex);
extern void pgs_push_failure(lua_State *L, const char *fmt,...);
extern const char *pgs_failure_message(lua_State *L, int idx, const char **sqlstate);
extern void pgs_push_prelude_function(lua_State *L, const char *name);
extern void pgs_emit(lua_State *L, const char *event,...);
extern void pgs_json_line(lua_State *L,...);
extern void pgs_catch_interrupts(lua_State *L);
extern void pgs_stop_hook(lua_State *L, lua_Debug *ar);
extern void pgs_clear_interrupt_hook(lua_State *L);
extern void pgs_phase_code(lua_State *L, bool on, void (*give_up) (void *arg), void *arg);
/* hooks.c, for script.c */
extern bool pgs_is_sandbox(lua_State *L);
extern bool pgs_guard_sandbox(lua_State *L);
extern const char *pgs_tracked_at(int *line);
extern int	pgs_l_track(lua_State *L);
extern int	pgs_l_tracked(lua_State *L);
extern bool pgs_own_code(lua_State *L);
extern void pgs_own_code_end(lua_State *L, bool was_phase_code);

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
	const char *service;		/* --service: a service of pg_service.conf */
	bool		verbose;
	bool		quiet;
	bool		json;			/* events and reports as JSON */
	const char *to;				/* run/rollback: stop at this phase */
	double		lock_wait;		/* seconds to poll for the migration lock */
	bool		lock_wait_given;	/* --lock-wait was given (pgshift.conf's yields) */
	bool		allow_drift;	/* run a completed migration's edited script */
	const char *format;			/* plan: text, markdown or json */
	bool		offline;		/* plan: do not connect */
	const char *fail_on;		/* lint: the lowest failing severity */
} PgsOptions;

extern int	pgs_cmd_session(const PgsOptions *opts, const char *command,
							const char *path);
extern int	pgs_cmd_session_in(lua_State *L, const PgsOptions *opts,
							   const char *command, const char *path);

/* What a failed bookkeeping statement on the control connection says. */
#define PGS_CONTROL_CONTEXT "while recording progress in shift.* (control connection)"

/* ---- lock.c: the migration's lock ---- */
extern bool pgs_take_lock(lua_State *L, PGconn *work, PGconn *ctl,
						  const char *name, double lock_wait);

/* ---- inspect.c: commands that only read ---- */
extern int	pgs_cmd_plan(const PgsOptions *opts, const char *path);
extern int	pgs_cmd_status(const PgsOptions *opts, const char *name);
extern int	pgs_cmd_lint(const PgsOptions *opts, const char *path);

/* ---- report.c: a run report with charts ---- */
extern int	pgs_cmd_report(const PgsOptions *opts, const char *name,
						   const char *html, const char *svg);

/* ---- compare.c: one table on two servers ---- */
typedef struct PgsCompareOptions
{
	const char *source;			/* DSN; NULL: --dsn or the libpq environment */
	const char *target;
	const char *source_label;	/* what errors call a side; NULL: its DSN */
	const char *target_label;	/*   (a migration's compare: no password shown) */
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

/* ---- project.c: a directory of migrations, pgshift.conf, --service ---- */

/* What a project file (DIR/pgshift.conf) sets; unset: NULL, lock_wait < 0. */
typedef struct PgsConf
{
	char	   *service;
	char	   *dsn;
	double		lock_wait;		/* seconds */
	const char *fail_on;		/* CRITICAL, HIGH, MEDIUM or LOW */
} PgsConf;

extern bool pgs_is_directory(const char *path);
extern int	pgs_cmd_project(PgsOptions *opts, const char *command, const char *dir);
extern int	pgs_resolve_target(PgsOptions *opts);
extern char *pgs_service_dsn(const char *service);
extern double pgs_parse_duration(const char *text);
extern int	pgs_conf_read(const char *path, PgsConf *conf, char **error);
extern void pgs_conf_free(PgsConf *conf);

/* ---- help.c: help, man page, completion, from main.c's two tables ---- */

/* A command as the help shows it (main.c's commands[]). */
typedef struct PgsHelpCommand
{
	const char *name;
	unsigned	bit;			/* its bit in PgsHelpOption.commands */
	bool		file_arg;		/* its argument is a file */
	const char *synopsis;		/* after "pgshift [OPTION]... "; \n continues it */
	const char *summary;		/* one line or two; \n starts another */
	const char *description;	/* one paragraph, no \n */
	const char *example;		/* a command line; \n starts another */
} PgsHelpCommand;

/* An option as the help shows it (main.c's options[]). */
typedef struct PgsHelpOption
{
	const char *name;			/* without "--" */
	char		letter;			/* the short option, or 0 */
	const char *value;			/* the value's name; NULL: no value */
	unsigned	commands;		/* the commands that take it; 0: every command */
	const char *help;			/* \n starts another line; NULL: hidden */
} PgsHelpOption;

extern void pgs_help_tables(const PgsHelpCommand *commands, int ncommands,
							const PgsHelpOption *options, int noptions);
extern void pgs_help_usage(FILE *out);
extern int	pgs_help_command(FILE *out, const char *name);
extern int	pgs_help_unknown_command(const char *name);
extern void pgs_help_man(FILE *out);
extern int	pgs_help_completion(FILE *out, const char *shell);

#endif							/* PGSHIFT_H */
