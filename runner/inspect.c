/*
 * inspect.c
 *	  Commands that only read: pgshift plan, pgshift status and pgshift lint.
 *
 * plan runs every phase function against the prelude's dry-run db, which
 * records the SQL instead of sending it; connected, it also reads the
 * recorded state (the shift.status and shift.phase_status views) and lints
 * the recorded SQL with shift.lint_script, in a read-only session.  lint
 * does the same dry run and reports only the findings.  status reads the
 * shift.status and shift.phase_status views.  The rendering (text,
 * markdown, JSON) is the prelude's.
 *
 * plan and lint review a file that need not be trusted: it runs in the
 * sandbox of pgs_lua_new_sandbox(), and a file the sandbox had to stop is
 * reported as such, in one line, whatever else failed after it.
 */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "pgshift.h"

typedef struct InspectArgs
{
	const PgsOptions *opts;
	const char *arg;			/* plan: the file; status: the name or NULL */
	int			rc;
} InspectArgs;

/* Connects, checks the extension, pushes a db owning the connection. */
static PGconn *
connect_checked(lua_State *L, const PgsOptions *opts)
{
	PgsError	err;
	PGconn	   *conn = pgs_connect_db(L, opts->dsn, "pgshift");

	if (conn == NULL)
		return NULL;
	memset(&err, 0, sizeof(err));
	if (pgs_check_extension(conn, &err) != PGS_EXIT_OK)
	{
		pgs_report_error(&err, NULL);
		pgs_error_clear(&err);
		return NULL;
	}
	return conn;
}

/* Reads the recorded state of migration `name` into a table {status, state}. */
static bool
push_recorded_state(lua_State *L, PGconn *conn, const char *name)
{
	const char *p[1] = {name};
	PgsError	err;
	PGresult   *res;
	int			i;

	memset(&err, 0, sizeof(err));
	res = pgs_exec(conn, "SET default_transaction_read_only = on", 0, NULL, &err);
	PQclear(res);
	if (res)
		res = pgs_exec(conn,
					   "SELECT s.status, p.name, p.status, p.needs_cleanup"
					   "  FROM shift.status s JOIN shift.phase_status p ON p.migration = s.migration"
					   " WHERE s.migration = $1 ORDER BY p.ordinal", 1, p, &err);
	if (res == NULL)
	{
		pgs_report_error(&err, "while reading the migration's state");
		if (err.sqlstate && strcmp(err.sqlstate, "42501") == 0)
			fprintf(stderr, "  hint: GRANT shift_operator TO %s; or plan with --offline\n",
					PQuser(conn));
		pgs_error_clear(&err);
		return false;
	}
	lua_createtable(L, 0, 2);
	lua_pushstring(L, PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "not run yet");
	lua_setfield(L, -2, "status");
	lua_createtable(L, 0, PQntuples(res));
	for (i = 0; i < PQntuples(res); i++)
	{
		lua_createtable(L, 0, 2);
		lua_pushstring(L, PQgetvalue(res, i, 2));
		lua_setfield(L, -2, "status");
		lua_pushboolean(L, strcmp(PQgetvalue(res, i, 3), "t") == 0);
		lua_setfield(L, -2, "needs_cleanup");
		lua_setfield(L, -2, PQgetvalue(res, i, 1));
	}
	lua_setfield(L, -2, "state");
	PQclear(res);
	return true;
}

/*
 * Prints the failure on the stack top with context, unless the sandbox
 * stopped the file's code: then that is the cause, whatever failed after it.
 */
static void
print_failure(lua_State *L, InspectArgs *a, const char *context, bool verbose)
{
	const char *stopped = pgs_sandbox_stopped(L);

	if (*stopped)
	{
		pgs_errorf("%s\n", stopped);
		fprintf(stderr, "  plan and lint stop a migration file at this limit "
				"(see the README); nothing was changed\n");
		a->rc = PGS_EXIT_FAIL;
		return;
	}
	pgs_print_failure(L, -1, stderr, context, verbose);
}

/*
 * pgs_pcall(L, nargs, nresults): true if it returned; false, with a->rc
 * PGS_EXIT_FAIL and the failure printed with context, if it raised an error.
 */
static bool
call_ok(lua_State *L, InspectArgs *a, int nargs, int nresults, const char *context)
{
	if (pgs_pcall(L, nargs, nresults) == LUA_OK)
		return true;
	a->rc = PGS_EXIT_FAIL;
	print_failure(L, a, context, true);
	return false;
}

/*
 * True, with a->rc set and the cause printed, if the sandbox stopped the
 * file's code, even though what ran it went on.
 */
static bool
stopped_anyway(lua_State *L, InspectArgs *a)
{
	if (!*pgs_sandbox_stopped(L))
		return false;
	a->rc = PGS_EXIT_FAIL;
	print_failure(L, a, NULL, false);
	return true;
}

/* Sets the file's name and digest in the table at info (plan and lint). */
static void
set_file_info(lua_State *L, int info, const InspectArgs *a, const char *sha)
{
	lua_pushstring(L, a->arg);
	lua_setfield(L, info, "file");
	lua_pushstring(L, sha);
	lua_setfield(L, info, "sha256");
}

/*
 * Loads and validates the migration file a->arg, pushing the migration, and
 * hashes it into sha.  False, with a->rc set and the error printed, if not.
 */
static bool
load_migration_file(lua_State *L, InspectArgs *a, char *sha)
{
	a->rc = pgs_load_migration(L, a->arg, sha);
	if (a->rc != PGS_EXIT_OK)
	{
		print_failure(L, a, a->rc == PGS_EXIT_FAIL ?
					  "the migration file is not valid" : NULL, a->opts->verbose);
		return false;
	}
	return true;
}

/*
 * The command's output: a string, bytes and all (the filter shows a zero),
 * or a list of pieces {text, style}, each in its colour on a terminal (see
 * pgs_styled).
 */
static void
print_result(lua_State *L, int idx)
{
	size_t		len;
	const char *text;

	idx = lua_absindex(L, idx);
	if (lua_istable(L, idx))
	{
		lua_Integer i;
		lua_Integer n = luaL_len(L, idx);

		for (i = 1; i <= n; i++)
		{
			lua_geti(L, idx, i);
			lua_geti(L, -1, 1);
			lua_geti(L, -2, 2);
			text = lua_tolstring(L, -2, &len);
			if (text)
				pgs_styled(stdout, pgs_style_named(lua_tostring(L, -1)), text, len);
			lua_pop(L, 3);
		}
	}
	else
	{
		text = lua_tolstring(L, idx, &len);
		fwrite(text, 1, len, stdout);
	}
	fflush(stdout);
}

static int
plan_main(lua_State *L)
{
	InspectArgs *a = lua_touserdata(L, 1);
	const PgsOptions *opts = a->opts;
	char		sha[65];
	int			mig;
	int			info;
	const char *format = opts->json ? "json" : (opts->format ? opts->format : "text");

	if (!load_migration_file(L, a, sha))
		return 0;
	mig = lua_gettop(L);

	a->rc = PGS_EXIT_USAGE;
	if (opts->offline)
	{
		lua_createtable(L, 0, 3);
		lua_pushboolean(L, true);
		lua_setfield(L, -2, "offline");
	}
	else
	{
		PGconn	   *conn = connect_checked(L, opts);

		lua_getfield(L, mig, "name");
		if (conn == NULL || !push_recorded_state(L, conn, lua_tostring(L, -1)))
			return 0;
		lua_remove(L, -2);		/* the name */
		lua_pushvalue(L, mig + 1);	/* the db: findings next to each statement */
		lua_setfield(L, -2, "lint_db");
	}
	info = lua_gettop(L);
	set_file_info(L, info, a, sha);

	pgs_push_prelude_function(L, "render_plan");
	pgs_push_prelude_function(L, "plan");
	lua_pushvalue(L, mig);
	lua_pushvalue(L, info);
	if (!call_ok(L, a, 2, 1, "while planning"))
		return 0;
	lua_pushstring(L, format);
	if (!call_ok(L, a, 2, 1, "while printing the plan"))
		return 0;
	/* stopped, yet the dry run went on: no plan from a stopped file */
	if (stopped_anyway(L, a))
		return 0;
	print_result(L, -1);
	a->rc = PGS_EXIT_OK;
	return 0;
}

static int
status_main(lua_State *L)
{
	InspectArgs *a = lua_touserdata(L, 1);
	int			db;

	a->rc = PGS_EXIT_USAGE;
	if (connect_checked(L, a->opts) == NULL)
		return 0;
	db = lua_gettop(L);
	pgs_push_prelude_function(L, "status");
	lua_pushvalue(L, db);
	if (a->arg)
		lua_pushstring(L, a->arg);
	else
		lua_pushnil(L);
	lua_pushstring(L, a->opts->json ? "json" : "text");
	if (pgs_pcall(L, 3, 2) != LUA_OK)
	{
		const char *sqlstate;

		pgs_failure_message(L, -1, &sqlstate);
		pgs_print_failure(L, -1, stderr, "while reading shift.status", a->opts->verbose);
		if (sqlstate && strcmp(sqlstate, "42501") == 0)
			fprintf(stderr, "  hint: GRANT shift_operator TO %s;\n", PQuser(pgs_db_conn(L, db)));
		return 0;
	}
	if (lua_isnil(L, -2))
	{
		pgs_errorf("%s\n", lua_tostring(L, -1));
		return 0;
	}
	print_result(L, -2);
	a->rc = PGS_EXIT_OK;
	return 0;
}

/*
 * pgshift lint: the plan's dry run, linted on the server; exit 1 when a
 * finding is at or above --fail-on.
 */
static int
lint_main(lua_State *L)
{
	InspectArgs *a = lua_touserdata(L, 1);
	const PgsOptions *opts = a->opts;
	char		sha[65];
	int			mig;
	int			db;
	int			info;
	PGresult   *res;
	PgsError	err;

	if (!load_migration_file(L, a, sha))
		return 0;
	mig = lua_gettop(L);
	a->rc = PGS_EXIT_USAGE;
	if (connect_checked(L, opts) == NULL)
	{
		fprintf(stderr, "  lint needs a server with pg_shift: it lints with PostgreSQL's own "
				"parser and reads the catalog (nothing is changed)\n");
		return 0;
	}
	db = lua_gettop(L);
	memset(&err, 0, sizeof(err));
	res = pgs_exec(pgs_db_conn(L, db), "SET default_transaction_read_only = on", 0, NULL, &err);
	if (res == NULL)
	{
		pgs_report_error(&err, "while starting a read-only session");
		pgs_error_clear(&err);
		return 0;
	}
	PQclear(res);

	pgs_push_prelude_function(L, "lint_report");
	lua_pushvalue(L, mig);
	lua_pushvalue(L, db);
	lua_createtable(L, 0, 4);
	info = lua_gettop(L);
	set_file_info(L, info, a, sha);
	lua_pushstring(L, opts->fail_on ? opts->fail_on : "HIGH");
	lua_setfield(L, info, "fail_on");
	lua_pushstring(L, opts->json ? "json" : "text");
	lua_setfield(L, info, "format");
	if (pgs_pcall(L, 3, 2) != LUA_OK)
	{
		print_failure(L, a, "while linting", opts->verbose);
		return 0;
	}
	if (stopped_anyway(L, a))
		return 0;
	print_result(L, -2);
	a->rc = (int) lua_tointeger(L, -1);
	return 0;
}

/* Runs fn in a new state: sandboxed when it runs a migration file. */
static int
run_protected(const PgsOptions *opts, lua_CFunction fn, const char *arg,
			  bool sandbox)
{
	lua_State  *L = sandbox ? pgs_lua_new_sandbox(opts) : pgs_lua_new(opts);
	InspectArgs a = {opts, arg, PGS_EXIT_FAIL};

	if (L == NULL)
		return PGS_EXIT_FAIL;
	lua_pushcfunction(L, fn);
	lua_pushlightuserdata(L, &a);
	(void) call_ok(L, &a, 1, 0, "internal error in pgshift");
	pgs_lua_close(L);
	return a.rc;
}

/* pgshift plan FILE [--format text|markdown|json] [--offline] */
int
pgs_cmd_plan(const PgsOptions *opts, const char *path)
{
	return run_protected(opts, plan_main, path, true);
}

/* pgshift status [NAME] [--json] */
int
pgs_cmd_status(const PgsOptions *opts, const char *name)
{
	return run_protected(opts, status_main, name, false);
}

/* pgshift lint FILE [--fail-on LEVEL] [--json] */
int
pgs_cmd_lint(const PgsOptions *opts, const char *path)
{
	return run_protected(opts, lint_main, path, true);
}
