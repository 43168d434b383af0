/*
 * script.c
 *	  The runner's Lua state: standard libraries, the db metatables, the
 *	  embedded prelude (scripts/prelude.lua), protected calls with a message
 *	  handler, and printing of failures.
 *
 * Every call into Lua goes through pgs_pcall(), whose message handler turns
 * whatever was raised into a "failure" table:
 *	 { message = "file:line: what", traceback = "...", sqlerror = <table|nil> }
 * so that callers print errors one way, whatever raised them.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lauxlib.h>
#include <lualib.h>

#include "pgshift.h"

/* runner/prelude_lua.c, generated from scripts/prelude.lua by the Makefile */
extern const unsigned char pgs_prelude[];
extern const size_t pgs_prelude_len;

#define PRELUDE_KEY "pgshift.prelude"

bool		pgs_quiet = false;

void
pgs_log(const char *fmt,...)
{
	va_list		ap;

	if (pgs_quiet)
		return;
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fflush(stdout);
}

void
pgs_errorf(const char *fmt,...)
{
	va_list		ap;

	fflush(stdout);
	fputs("pgshift: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fflush(stderr);
}

/* Does msg already start with "chunk:line:"? */
static bool
has_position(const char *msg)
{
	const char *colon = strchr(msg, ':');
	const char *p;

	if (colon == NULL || colon == msg || memchr(msg, '\n', colon - msg))
		return false;
	p = colon + 1;
	if (*p < '0' || *p > '9')
		return false;
	while (*p >= '0' && *p <= '9')
		p++;
	return *p == ':';
}

/*
 * Pushes "file:line: " of the innermost active function defined in a file
 * (chunk name "@..."), or "" when there is none.  assert() and error objects
 * without position get the line of the migration code that raised them.
 */
static void
push_file_where(lua_State *L)
{
	lua_Debug	ar;
	int			level;

	for (level = 1; lua_getstack(L, level, &ar); level++)
	{
		lua_getinfo(L, "Sl", &ar);
		if (ar.source[0] == '@' && ar.currentline > 0)
		{
			lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
			return;
		}
	}
	lua_pushliteral(L, "");
}

static bool
is_sqlerror(lua_State *L, int idx)
{
	bool		yes = false;

	if (lua_type(L, idx) == LUA_TTABLE && lua_getmetatable(L, idx))
	{
		luaL_getmetatable(L, PGS_SQLERROR_METATABLE);
		yes = lua_rawequal(L, -1, -2);
		lua_pop(L, 2);
	}
	return yes;
}

/* The message handler of every protected call: see the file header. */
static int
msghandler(lua_State *L)
{
	lua_createtable(L, 0, 3);	/* the failure, at index 2 */

	if (is_sqlerror(L, 1))
	{
		lua_pushvalue(L, 1);
		lua_setfield(L, 2, "sqlerror");
		luaL_tolstring(L, 1, NULL);
	}
	else if (lua_type(L, 1) == LUA_TSTRING || lua_type(L, 1) == LUA_TNUMBER)
	{
		const char *msg = lua_tostring(L, 1);

		if (has_position(msg))
			lua_pushstring(L, msg);
		else
		{
			push_file_where(L);
			lua_pushstring(L, msg);
			lua_concat(L, 2);
		}
	}
	else if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
	{
		/* an error object with a message of its own */
	}
	else
	{
		push_file_where(L);
		lua_pushfstring(L, "error object is a %s value", luaL_typename(L, 1));
		lua_concat(L, 2);
	}
	lua_setfield(L, 2, "message");

	luaL_traceback(L, L, NULL, 1);
	lua_setfield(L, 2, "traceback");
	return 1;
}

/*
 * pgs_pcall: lua_pcall with the message handler.  On error returns non-zero
 * and leaves a failure table on the stack (see the file header).
 */
int
pgs_pcall(lua_State *L, int nargs, int nresults)
{
	int			base = lua_gettop(L) - nargs;
	int			status;

	lua_pushcfunction(L, msghandler);
	lua_insert(L, base);
	status = lua_pcall(L, nargs, nresults, base);
	lua_remove(L, base);
	if (status != LUA_OK && lua_type(L, -1) != LUA_TTABLE)
	{
		/* the handler itself failed (out of memory): wrap what we got */
		lua_createtable(L, 0, 1);
		lua_insert(L, -2);
		if (lua_type(L, -1) != LUA_TSTRING)
		{
			lua_pop(L, 1);
			lua_pushliteral(L, "error while handling an error");
		}
		lua_setfield(L, -2, "message");
	}
	return status;
}

static const char *
field_string(lua_State *L, int idx, const char *name)
{
	const char *s;

	lua_getfield(L, idx, name);
	s = lua_tostring(L, -1);
	lua_pop(L, 1);				/* the table still references the string */
	return s;
}

/*
 * pgs_print_failure: prints the failure table at idx to out: the one-line
 * cause, then the context line (may be NULL), then the SQL error's detail,
 * hint and statement, then the traceback when verbose.
 */
void
pgs_print_failure(lua_State *L, int idx, FILE *out, const char *context,
				  bool verbose)
{
	const char *msg;
	const char *tb;

	idx = lua_absindex(L, idx);
	msg = field_string(L, idx, "message");
	fflush(stdout);
	fprintf(out, "pgshift: %s\n", msg ? msg : "unknown error");
	if (context)
		fprintf(out, "  %s\n", context);

	if (lua_getfield(L, idx, "sqlerror") == LUA_TTABLE)
	{
		int			e = lua_gettop(L);
		PgsError	err;

		/* borrowed strings: printed, never freed */
		memset(&err, 0, sizeof(err));
		err.detail = (char *) field_string(L, e, "detail");
		err.hint = (char *) field_string(L, e, "hint");
		err.statement = (char *) field_string(L, e, "statement");
		err.context = (char *) field_string(L, e, "context");
		lua_getfield(L, e, "position");
		err.position = (int) lua_tointeger(L, -1);
		lua_pop(L, 1);
		pgs_error_print(out, &err);
	}
	lua_pop(L, 1);

	tb = field_string(L, idx, "traceback");
	if (verbose && tb)
		fprintf(out, "%s\n", tb);
	fflush(out);
}

/* C.log(text): a migration's progress line, indented under its phase. */
static int
l_log(lua_State *L)
{
	const char *msg = luaL_checkstring(L, 1);

	pgs_log("    %s\n", msg);
	return 0;
}

static const luaL_Reg c_helpers[] = {
	{"log", l_log},
	{NULL, NULL}
};

/*
 * Runs the prelude with the C helpers as its argument and keeps its module
 * table in the registry.  Raises on failure (the caller is protected).
 */
static int
open_prelude(lua_State *L)
{
	if (luaL_loadbufferx(L, (const char *) pgs_prelude, pgs_prelude_len,
						 "=[prelude]", "t") != LUA_OK)
		return lua_error(L);
	luaL_newlib(L, c_helpers);
	lua_call(L, 1, 1);
	if (!lua_istable(L, -1))
		return luaL_error(L, "the prelude did not return its module table");
	lua_setfield(L, LUA_REGISTRYINDEX, PRELUDE_KEY);
	return 0;
}

/*
 * pgs_lua_new: a Lua state with the standard libraries, the db metatables
 * and the prelude, or NULL (with a message printed) if that fails.
 */
lua_State *
pgs_lua_new(void)
{
	lua_State  *L = luaL_newstate();

	if (L == NULL)
	{
		pgs_errorf("cannot create a Lua state: out of memory\n");
		return NULL;
	}
	luaL_openlibs(L);
	pgs_open_db(L);
	lua_pushcfunction(L, open_prelude);
	if (pgs_pcall(L, 0, 0) != LUA_OK)
	{
		pgs_print_failure(L, -1, stderr, "while loading the runner's prelude", true);
		lua_close(L);
		return NULL;
	}
	return L;
}

/* Pushes the prelude's function `name`. */
static void
push_prelude_function(lua_State *L, const char *name)
{
	lua_getfield(L, LUA_REGISTRYINDEX, PRELUDE_KEY);
	lua_getfield(L, -1, name);
	lua_remove(L, -2);
}

/* Pushes a failure table with just a message (no Lua stack behind it). */
void
pgs_push_failure(lua_State *L, const char *fmt,...)
{
	va_list		ap;

	lua_createtable(L, 0, 1);
	va_start(ap, fmt);
	lua_pushvfstring(L, fmt, ap);
	va_end(ap);
	lua_setfield(L, -2, "message");
}

/*
 * pgs_load_migration: loads and validates the migration file at path.
 * Returns PGS_EXIT_OK with the migration table pushed, or, with a failure
 * table pushed instead, PGS_EXIT_USAGE (the file cannot be read) or
 * PGS_EXIT_FAIL (it is not a valid migration).
 */
int
pgs_load_migration(lua_State *L, const char *path)
{
	struct stat st;
	FILE	   *f;

	if (stat(path, &st) != 0)
	{
		pgs_push_failure(L, "cannot open migration file \"%s\": %s", path,
						 strerror(errno));
		return PGS_EXIT_USAGE;
	}
	if (!S_ISREG(st.st_mode))
	{
		pgs_push_failure(L, "migration file \"%s\" is not a regular file", path);
		return PGS_EXIT_USAGE;
	}
	if ((f = fopen(path, "r")) == NULL)
	{
		pgs_push_failure(L, "cannot read migration file \"%s\": %s", path,
						 strerror(errno));
		return PGS_EXIT_USAGE;
	}
	fclose(f);

	push_prelude_function(L, "load");
	lua_pushstring(L, path);
	if (pgs_pcall(L, 1, 1) != LUA_OK)
		return PGS_EXIT_FAIL;
	return PGS_EXIT_OK;
}
