/*
 * report.c
 *	  pgshift report NAME --html FILE [--svg FILE]: a run report with
 *	  charts, from what the database recorded for migration NAME.
 *
 * It reads, in a read-only session, the views and tables the runner and the
 * extension write (shift.status, shift.phase, shift.event, shift.backfill,
 * shift.backfill_batch); the prelude (scripts/prelude/report.lua) draws the
 * charts as SVG and returns one self-contained HTML page and one SVG
 * document, which this file writes.  A migration the database has no record
 * of (or one of a role the user may not see) is a usage error: nothing is
 * written.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

#include "pgshift.h"

typedef struct ReportArgs
{
	const PgsOptions *opts;
	const char *name;
	const char *html;			/* the files to write, or NULL */
	const char *svg;
	int			rc;
} ReportArgs;

/*
 * Writes len bytes of text to path (created or truncated).  False, with the
 * cause printed, if that fails.
 */
static bool
write_file(const char *path, const char *what, const char *text, size_t len)
{
	FILE	   *f = fopen(path, "w");

	if (f == NULL)
	{
		pgs_errorf("could not write the %s to \"%s\": %s\n", what, path, strerror(errno));
		return false;
	}
	if (fwrite(text, 1, len, f) != len || ferror(f))
	{
		pgs_errorf("could not write the %s to \"%s\": %s\n", what, path, strerror(errno));
		fclose(f);
		return false;
	}
	if (fclose(f) != 0)
	{
		pgs_errorf("could not write the %s to \"%s\": %s\n", what, path, strerror(errno));
		return false;
	}
	return true;
}

static int
report_main(lua_State *L)
{
	ReportArgs *a = lua_touserdata(L, 1);
	PgsError	err;
	PGresult   *res;
	PGconn	   *conn;
	int			db;
	size_t		len;
	const char *text;
	char		server[512];

	a->rc = PGS_EXIT_USAGE;
	if ((conn = pgs_connect_db(L, a->opts->dsn, "pgshift")) == NULL)
		return 0;
	db = lua_gettop(L);
	memset(&err, 0, sizeof(err));
	if (pgs_check_extension(conn, &err) != PGS_EXIT_OK)
	{
		pgs_report_error(&err, NULL);
		pgs_error_clear(&err);
		return 0;
	}
	res = pgs_exec(conn, "SET default_transaction_read_only = on", 0, NULL, &err);
	if (res == NULL)
	{
		pgs_report_error(&err, "while starting a read-only session");
		pgs_error_clear(&err);
		return 0;
	}
	PQclear(res);

	pgs_conn_server(conn, server, sizeof(server));
	pgs_push_prelude_function(L, "report");
	lua_pushvalue(L, db);
	lua_pushstring(L, a->name);
	lua_createtable(L, 0, 2);
	lua_pushstring(L, server);
	lua_setfield(L, -2, "server");
	lua_pushstring(L, PGS_VERSION);
	lua_setfield(L, -2, "version");
	if (pgs_pcall(L, 3, 2) != LUA_OK)
	{
		const char *sqlstate;

		pgs_failure_message(L, -1, &sqlstate);
		pgs_print_failure(L, -1, stderr, "while reading what the database recorded",
						  a->opts->verbose);
		if (sqlstate && strcmp(sqlstate, "42501") == 0)
			fprintf(stderr, "  hint: GRANT shift_operator TO %s;\n", PQuser(conn));
		return 0;
	}
	if (lua_isnil(L, -2))
	{
		pgs_errorf("%s\n", lua_tostring(L, -1));
		fprintf(stderr, "  \"pgshift status\" lists the migrations this database recorded\n");
		return 0;
	}
	/* a file that cannot be written: exit 2, as for any file */
	if (a->html)
	{
		text = lua_tolstring(L, -2, &len);
		if (!write_file(a->html, "report", text, len))
			return 0;
	}
	if (a->svg)
	{
		text = lua_tolstring(L, -1, &len);
		if (!write_file(a->svg, "charts", text, len))
			return 0;
	}
	if (!a->opts->quiet)
	{
		if (a->html)
			printf("report of migration %s written to %s\n", a->name, a->html);
		if (a->svg)
			printf("charts of migration %s written to %s\n", a->name, a->svg);
	}
	a->rc = PGS_EXIT_OK;
	return 0;
}

/* pgshift report NAME [--html FILE] [--svg FILE] */
int
pgs_cmd_report(const PgsOptions *opts, const char *name, const char *html,
			   const char *svg)
{
	lua_State  *L = pgs_lua_new(opts);
	ReportArgs	a = {opts, name, html, svg, PGS_EXIT_FAIL};

	if (L == NULL)
		return PGS_EXIT_FAIL;
	lua_pushcfunction(L, report_main);
	lua_pushlightuserdata(L, &a);
	if (pgs_pcall(L, 1, 0) != LUA_OK)
	{
		pgs_print_failure(L, -1, stderr, "internal error in pgshift", true);
		a.rc = PGS_EXIT_FAIL;
	}
	pgs_lua_close(L);
	return a.rc;
}
