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
#include <time.h>

#include <lauxlib.h>
#include <lualib.h>

#include "pgshift.h"

/* runner/prelude_lua.c, generated from scripts/prelude.lua by the Makefile */
extern const unsigned char pgs_prelude[];
extern const size_t pgs_prelude_len;

#define PRELUDE_KEY "pgshift.prelude"
#define FAILURE_METATABLE "pgshift.failure"

/*
 * The live line: on a terminal, the running phase's elapsed time, redrawn in
 * place.  Everything else printed clears it first.
 */
static bool live_shown = false;

void
pgs_live_clear(void)
{
	if (live_shown)
	{
		pgs_term_control("\r\033[K");
		live_shown = false;
	}
}

/* The line's text goes through the output filter; only "\r\033[K" does not. */
void
pgs_live_update(const char *text)
{
	pgs_term_control("\r\033[K");
	fputs(text, stdout);
	fflush(stdout);
	live_shown = true;
}

void
pgs_errorf(const char *fmt,...)
{
	va_list		ap;

	pgs_live_clear();
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
 * pgs_push_where: pushes "file:line: " of the innermost active function
 * defined in a file (chunk name "@..."), or "" when there is none: the line
 * of the migration code that called into the runner.  assert() and error
 * objects without position get it too.
 */
void
pgs_push_where(lua_State *L)
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

/* Is the value at idx a table with the named metatable? */
static bool
has_metatable(lua_State *L, int idx, const char *name)
{
	bool		yes = false;

	if (lua_type(L, idx) == LUA_TTABLE && lua_getmetatable(L, idx))
	{
		luaL_getmetatable(L, name);
		yes = lua_rawequal(L, -1, -2);
		lua_pop(L, 2);
	}
	return yes;
}

#define is_sqlerror(L, idx) has_metatable(L, idx, PGS_SQLERROR_METATABLE)
#define is_failure(L, idx) has_metatable(L, idx, FAILURE_METATABLE)

/*
 * The message handler of every protected call: see the file header.  A
 * failure that a nested handler already made (db:transaction re-raises one)
 * passes through unchanged, keeping its original traceback.
 */
static int
msghandler(lua_State *L)
{
	if (is_failure(L, 1))
		return 1;
	lua_createtable(L, 0, 3);	/* the failure, at index 2 */
	luaL_setmetatable(L, FAILURE_METATABLE);

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
			lua_pushvalue(L, 1);	/* the whole string: it may hold a zero byte */
		else
		{
			pgs_push_where(L);
			lua_pushvalue(L, 1);
			lua_concat(L, 2);
		}
	}
	else if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
	{
		/* an error object with a message of its own */
	}
	else
	{
		lua_settop(L, 2);		/* drop a __tostring result that is no string */
		pgs_push_where(L);
		lua_pushfstring(L, "error object is a %s value", luaL_typename(L, 1));
		lua_concat(L, 2);
	}
	/* a zero byte would cut the message short wherever C reads it: "\0" */
	{
		size_t		len;
		const char *msg = lua_tolstring(L, -1, &len);

		if (strlen(msg) != len)
		{
			luaL_Buffer b;
			size_t		i;

			luaL_buffinit(L, &b);
			for (i = 0; i < len; i++)
			{
				if (msg[i] == '\0')
					luaL_addstring(&b, "\\0");
				else
					luaL_addchar(&b, msg[i]);
			}
			luaL_pushresult(&b);
			lua_remove(L, -2);
		}
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
	if (status != LUA_OK && !is_failure(L, -1))
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

	/* only a string: the table keeps it alive after the pop */
	s = lua_getfield(L, idx, name) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
	lua_pop(L, 1);
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
	pgs_live_clear();
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

/* C.json_string(s) -> s as a JSON string literal (see pgs_json_quote) */
static void
put_buffer(void *arg, const char *s, size_t len)
{
	luaL_addlstring((luaL_Buffer *) arg, s, len);
}

static int
l_json_string(lua_State *L)
{
	size_t		len;
	const char *s = luaL_checklstring(L, 1, &len);
	luaL_Buffer b;

	luaL_buffinit(L, &b);
	pgs_json_quote(s, len, put_buffer, &b);
	luaL_pushresult(&b);
	return 1;
}

/* C.write(text): progress output on stdout (clears the live line). */
static int
l_write(lua_State *L)
{
	size_t		len;
	const char *text = luaL_checklstring(L, 1, &len);

	pgs_live_clear();
	fwrite(text, 1, len, stdout);
	fflush(stdout);
	return 0;
}

/* C.sleep(seconds): sleeps, raising "interrupted" on SIGINT/SIGTERM. */
static int
l_sleep(lua_State *L)
{
	double		left = luaL_checknumber(L, 1);

	while (left > 0 && !pgs_interrupted)
	{
		double		step = left < 0.1 ? left : 0.1;
		struct timespec ts = {0, (long) (step * 1e9)};

		nanosleep(&ts, NULL);
		left -= step;
		pgs_maybe_tick();
	}
	if (pgs_interrupted)
		return luaL_error(L, "interrupted by %s",
						  pgs_interrupted == SIGTERM ? "SIGTERM" : "SIGINT (Ctrl-C)");
	return 0;
}

/* The engine's hooks while a run is on (see PgsEngineHooks). */
static PgsEngineHooks engine;

void
pgs_set_engine(const PgsEngineHooks *hooks)
{
	if (hooks)
		engine = *hooks;
	else
		memset(&engine, 0, sizeof(engine));
}

/* C.event(kind, message, sqlstate): records an event of the running phase. */
static int
l_event(lua_State *L)
{
	const char *kind = luaL_checkstring(L, 1);
	const char *msg = luaL_optstring(L, 2, NULL);
	const char *state = luaL_optstring(L, 3, NULL);

	if (engine.event && !engine.event(engine.arg, kind, msg, state))
		return luaL_error(L, "could not record the %s event in shift.event", kind);
	return 0;
}

/* C.current() -> migration, phase (nil outside a run) */
static int
l_current(lua_State *L)
{
	const char *phase = NULL;
	const char *mig = engine.current ? engine.current(engine.arg, &phase) : NULL;

	lua_pushstring(L, mig);
	lua_pushstring(L, phase);
	return 2;
}

/* C.backfill_watch(job or nil): show a backfill job's progress while it runs. */
static int
l_backfill_watch(lua_State *L)
{
	const char *job = luaL_optstring(L, 1, NULL);

	if (engine.watch && !engine.watch(engine.arg, job))
		return luaL_error(L, "could not record the backfill in shift.phase");
	return 0;
}

/* C.add_rows(n): rows a backfill wrote, counted for the phase. */
static int
l_add_rows(lua_State *L)
{
	lua_Integer n = luaL_checkinteger(L, 1);

	if (engine.add_rows)
		engine.add_rows(engine.arg, (int64_t) n);
	return 0;
}

static const luaL_Reg c_helpers[] = {
	{"write", l_write},
	{"sleep", l_sleep},
	{"event", l_event},
	{"current", l_current},
	{"backfill_watch", l_backfill_watch},
	{"add_rows", l_add_rows},
	{"msghandler", msghandler},
	{"json_string", l_json_string},
	{NULL, NULL}
};

/* ---- interrupts ---- */

static lua_State *interrupt_L = NULL;

void
pgs_stop_hook(lua_State *L, lua_Debug *ar)
{
	lua_sethook(L, NULL, 0, 0);
	luaL_error(L, "interrupted by %s", pgs_interrupted == SIGTERM ? "SIGTERM" : "SIGINT (Ctrl-C)");
}

static void
on_signal(int signo)
{
	pgs_interrupted = signo;
	signal(signo, SIG_DFL);		/* a second signal ends pgshift at once */
	if (interrupt_L)
		lua_sethook(interrupt_L, pgs_stop_hook,
					LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

/*
 * pgs_catch_interrupts: the first SIGINT or SIGTERM sets pgs_interrupted,
 * cancels the running statement (see pgs_exec) and stops the Lua code at its
 * next instruction; a second one ends the process.
 */
void
pgs_catch_interrupts(lua_State *L)
{
	struct sigaction sa;

	interrupt_L = L;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

/* Removes a stop hook an interrupt left behind (the code it was for is gone). */
void
pgs_clear_interrupt_hook(lua_State *L)
{
	lua_sethook(L, NULL, 0, 0);
}

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
	pgs_push_db_methods(L);
	lua_setfield(L, -2, "db_methods");
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
pgs_lua_new(const PgsOptions *opts)
{
	lua_State  *L = luaL_newstate();

	if (L == NULL)
	{
		pgs_errorf("cannot create a Lua state: out of memory\n");
		return NULL;
	}
	luaL_openlibs(L);
	pgs_open_db(L);
	luaL_newmetatable(L, FAILURE_METATABLE);
	lua_pop(L, 1);
	lua_pushcfunction(L, open_prelude);
	if (pgs_pcall(L, 0, 0) != LUA_OK)
	{
		pgs_print_failure(L, -1, stderr, "while loading the runner's prelude", true);
		lua_close(L);
		return NULL;
	}
	if (opts)
	{
		pgs_push_prelude_function(L, "configure");
		lua_createtable(L, 0, 2);
		lua_pushstring(L, opts->json ? "json" : "text");
		lua_setfield(L, -2, "format");
		lua_pushboolean(L, opts->quiet);
		lua_setfield(L, -2, "quiet");
		if (pgs_pcall(L, 1, 0) != LUA_OK)
		{
			pgs_print_failure(L, -1, stderr, "while configuring the runner's prelude", true);
			lua_close(L);
			return NULL;
		}
	}
	return L;
}

/* Pushes the prelude's function `name`. */
void
pgs_push_prelude_function(lua_State *L, const char *name)
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
	luaL_setmetatable(L, FAILURE_METATABLE);
	va_start(ap, fmt);
	lua_pushvfstring(L, fmt, ap);
	va_end(ap);
	lua_setfield(L, -2, "message");
}

/* The message and SQLSTATE (NULL if none) of the failure at idx. */
const char *
pgs_failure_message(lua_State *L, int idx, const char **sqlstate)
{
	const char *msg = field_string(L, idx, "message");

	if (sqlstate)
	{
		*sqlstate = NULL;
		if (lua_getfield(L, idx, "sqlerror") == LUA_TTABLE)
			*sqlstate = field_string(L, lua_gettop(L), "sqlstate");
		lua_pop(L, 1);
	}
	return msg ? msg : "unknown error";
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

	pgs_push_prelude_function(L, "load");
	lua_pushstring(L, path);
	if (pgs_pcall(L, 1, 1) != LUA_OK)
		return PGS_EXIT_FAIL;
	return PGS_EXIT_OK;
}

/*
 * pgs_emit(L, event, key, type, value, ..., NULL): one progress event through
 * the prelude's M.emit (text line or JSON line).  type is 's' (const char *,
 * NULL skipped), 'i' (long long), 'd' (double) or 'b' (int as boolean).
 */
void
pgs_emit(lua_State *L, const char *event,...)
{
	va_list		ap;
	const char *key;

	pgs_push_prelude_function(L, "emit");
	lua_createtable(L, 0, 8);
	lua_pushstring(L, event);
	lua_setfield(L, -2, "event");
	va_start(ap, event);
	while ((key = va_arg(ap, const char *)) != NULL)
	{
		int			type = va_arg(ap, int);

		switch (type)
		{
			case 's':
				{
					const char *v = va_arg(ap, const char *);

					if (v == NULL)
						continue;
					lua_pushstring(L, v);
					break;
				}
			case 'i':
				lua_pushinteger(L, (lua_Integer) va_arg(ap, long long));
				break;
			case 'd':
				lua_pushnumber(L, va_arg(ap, double));
				break;
			case 'b':
				lua_pushboolean(L, va_arg(ap, int));
				break;
			default:
				lua_pushnil(L);
				break;
		}
		lua_setfield(L, -2, key);
	}
	va_end(ap);
	/*
	 * The interrupt hook is for the migration's code, not for our output:
	 * lift it while the event prints, and put it back if an interrupt came.
	 */
	lua_sethook(L, NULL, 0, 0);
	if (pgs_pcall(L, 1, 0) != LUA_OK)
	{
		pgs_print_failure(L, -1, stderr, "while printing progress", true);
		lua_pop(L, 1);
	}
	if (pgs_interrupted)
		lua_sethook(L, pgs_stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}
