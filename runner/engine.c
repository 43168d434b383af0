/*
 * engine.c
 *	  The phase engine: `pgshift run FILE` loads and validates a migration,
 *	  connects, checks the extension's version, and runs each phase's `up`
 *	  in order, reporting each phase's result and duration.
 *
 * All Lua runs under pgs_pcall(); the whole command runs inside one
 * protected C function so that even an out-of-memory error is reported and
 * the connection (owned by the db object) is closed by lua_close().
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>

#include "pgshift.h"

typedef struct RunArgs
{
	const PgsOptions *opts;
	const char *path;
	int			rc;
} RunArgs;

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

/* "12 ms", "3.40 s", "2 min 05 s" */
static void
format_duration(char *buf, size_t len, double ms)
{
	if (ms < 1000)
		snprintf(buf, len, "%.0f ms", ms);
	else if (ms < 60000)
		snprintf(buf, len, "%.2f s", ms / 1000);
	else
		snprintf(buf, len, "%d min %02d s", (int) (ms / 60000),
				 (int) (ms / 1000) % 60);
}

/* Connects and checks the extension; pushes the db object on success. */
static int
open_database(lua_State *L, const PgsOptions *opts, char **where)
{
	PgsError	err;
	PGconn	   *conn;
	int			rc;

	memset(&err, 0, sizeof(err));
	conn = pgs_connect(opts->dsn, &err);
	if (conn == NULL)
	{
		pgs_report_error(&err, NULL);
		pgs_error_clear(&err);
		return PGS_EXIT_USAGE;
	}
	pgs_push_db(L, conn);		/* owns conn from here on */
	*where = pgs_conn_describe(conn);

	rc = pgs_check_extension(conn, &err);
	if (rc != PGS_EXIT_OK)
	{
		pgs_report_error(&err, *where);
		pgs_error_clear(&err);
		free(*where);
		*where = NULL;
		return rc;
	}
	return PGS_EXIT_OK;
}

static int
run_main(lua_State *L)
{
	RunArgs    *a = lua_touserdata(L, 1);
	const PgsOptions *opts = a->opts;
	int			mig;
	int			db;
	int			nphases;
	int			i;
	const char *name;
	char	   *where = NULL;
	char		dur[64];
	double		t_start;

	a->rc = pgs_load_migration(L, a->path);
	if (a->rc != PGS_EXIT_OK)
	{
		pgs_print_failure(L, -1, stderr, a->rc == PGS_EXIT_FAIL ?
						  "the migration file is not valid; nothing was run" : NULL,
						  opts->verbose);
		return 0;
	}
	mig = lua_gettop(L);
	lua_getfield(L, mig, "name");
	name = lua_tostring(L, -1);	/* kept alive on the stack */
	lua_getfield(L, mig, "phases");
	nphases = (int) luaL_len(L, -1);
	lua_pop(L, 1);

	a->rc = open_database(L, opts, &where);
	if (a->rc != PGS_EXIT_OK)
		return 0;
	db = lua_gettop(L);

	pgs_log("==> migration %s (%s): %d phase%s on %s\n", name, a->path,
			nphases, nphases == 1 ? "" : "s", where ? where : "?");
	free(where);

	t_start = now_ms();
	for (i = 1; i <= nphases; i++)
	{
		const char *pname;
		double		t0;
		int			phase;

		lua_getfield(L, mig, "phases");
		lua_geti(L, -1, i);
		lua_remove(L, -2);
		phase = lua_gettop(L);
		lua_getfield(L, phase, "name");
		pname = lua_tostring(L, -1);
		pgs_log("--> phase %d/%d %s\n", i, nphases, pname);

		t0 = now_ms();
		lua_getfield(L, phase, "up");
		lua_pushvalue(L, db);
		if (pgs_pcall(L, 1, 0) != LUA_OK)
		{
			const char *ctx;

			ctx = lua_pushfstring(L, "in phase '%s' (%d of %d) of migration '%s'",
								  pname, i, nphases, name);
			pgs_print_failure(L, -2, stderr, ctx, opts->verbose);
			fprintf(stderr, "migration %s stopped at phase %d/%d '%s'; "
					"the %d phase%s before it stay%s applied\n",
					name, i, nphases, pname, i - 1, i - 1 == 1 ? "" : "s",
					i - 1 == 1 ? "s" : "");
			a->rc = PGS_EXIT_FAIL;
			return 0;
		}
		format_duration(dur, sizeof(dur), now_ms() - t0);
		pgs_log("    done in %s\n", dur);
		lua_settop(L, phase - 1);
	}
	format_duration(dur, sizeof(dur), now_ms() - t_start);
	pgs_log("==> migration %s: %d phase%s done in %s\n", name, nphases,
			nphases == 1 ? "" : "s", dur);
	a->rc = PGS_EXIT_OK;
	return 0;
}

/* pgshift run FILE */
int
pgs_cmd_run(const PgsOptions *opts, const char *path)
{
	lua_State  *L = pgs_lua_new();
	RunArgs		a = {opts, path, PGS_EXIT_FAIL};

	if (L == NULL)
		return PGS_EXIT_FAIL;
	lua_pushcfunction(L, run_main);
	lua_pushlightuserdata(L, &a);
	if (pgs_pcall(L, 1, 0) != LUA_OK)
	{
		pgs_print_failure(L, -1, stderr, "internal error in pgshift", true);
		a.rc = PGS_EXIT_FAIL;
	}
	lua_close(L);
	return a.rc;
}
