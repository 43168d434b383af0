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
 *
 * pgs_lua_new_sandbox() makes the state in which `plan` and `lint` review a
 * migration file that need not be trusted (the guard and the hooks are in
 * hooks.c): the prelude runs the file in an
 * environment without os, io, debug, package, require or binary chunks (see
 * M.load), the strings' shared metatable is hidden from it, and a guard
 * bounds what the file's code can take from the reviewer's machine: Lua
 * instructions (a count hook every HOOK_STEP instructions, inherited by
 * every coroutine), memory (the state's allocator) and CPU time (SIGPROF,
 * for a loop inside one library call, which no hook sees).  The same guard
 * runs other code that need not be trusted, with limits of its own, in a
 * bare state: pgs_sandbox_run() (pgshift.conf).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>
#include <openssl/evp.h>

#include "pgshift.h"

#define PRELUDE_KEY "pgshift.prelude"
#define KEPT_KEY "pgshift.kept_migration"
#define FAILURE_METATABLE "pgshift.failure"

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

/* The short_src of the prelude's chunks: "[prelude/db.lua]" (open_prelude). */
#define PRELUDE_SOURCE "[prelude/"

/*
 * The length of msg's leading "[prelude/NAME.lua]:LINE:" when it names a
 * line of the runner's own Lua (the prelude), else 0.
 */
static size_t
prelude_position(const char *msg)
{
	const char *p;

	if (strncmp(msg, PRELUDE_SOURCE, strlen(PRELUDE_SOURCE)) != 0 ||
		!has_position(msg))
		return 0;
	p = strchr(msg, ':') + 1;
	while (*p >= '0' && *p <= '9')
		p++;
	return p + 1 - msg;
}

/*
 * Pushes "file:line: " of the migration file's line that led to the error
 * (pgs_push_where) and returns true; pushes nothing and returns false when
 * no line of a migration file is involved (the runner's own work).
 */
static bool
push_file_where(lua_State *L)
{
	pgs_push_where(L);
	if (lua_rawlen(L, -1) > 0)
		return true;
	lua_pop(L, 1);
	return false;
}

/*
 * The message handler of every protected call: see the file header.  A
 * failure that a nested handler already made (db:transaction re-raises one)
 * passes through unchanged, keeping its original traceback.
 *
 * An error the prelude raised, or a failed statement it sent, is reported
 * at the line of the migration file that called it (pgs_push_where: the
 * helper's call), never at the prelude's own line: the user's mistake is in
 * the file.  The prelude's line goes to the failure's "origin" and to the
 * top of its traceback (printed with --verbose).
 */
static int
msghandler(lua_State *L)
{
	bool		origin = false;

	if (is_failure(L, 1))
		return 1;
	lua_createtable(L, 0, 3);	/* the failure, at index 2 */
	luaL_setmetatable(L, FAILURE_METATABLE);

	if (is_sqlerror(L, 1))
	{
		size_t		len;
		const char *where;

		/* sent by the prelude: the sqlerror's where is the prelude's line */
		if (lua_getfield(L, 1, "where") == LUA_TSTRING &&
			(where = lua_tolstring(L, -1, &len)) &&
			prelude_position(where) > 0 && push_file_where(L))
		{
			lua_setfield(L, 1, "where");
			while (len > 0 && (where[len - 1] == ' ' || where[len - 1] == ':'))
				len--;
			lua_pushlstring(L, where, len);
			origin = true;
			lua_setfield(L, 2, "origin");
		}
		lua_pop(L, 1);
		lua_pushvalue(L, 1);
		lua_setfield(L, 2, "sqlerror");
		luaL_tolstring(L, 1, NULL);
	}
	else if (lua_type(L, 1) == LUA_TSTRING || lua_type(L, 1) == LUA_TNUMBER)
	{
		size_t		len;
		const char *msg = lua_tolstring(L, 1, &len);
		size_t		pos = prelude_position(msg);

		if (pos > 0 && push_file_where(L))
		{
			lua_pushlstring(L, msg, pos - 1);
			origin = true;
			lua_setfield(L, 2, "origin");
			if (msg[pos] == ' ')
				pos++;
			lua_pushlstring(L, msg + pos, len - pos);
			lua_concat(L, 2);
		}
		else if (has_position(msg))
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

	if (origin)
	{
		lua_getfield(L, 2, "origin");	/* keeps the text alive */
		lua_pushfstring(L, "raised in the runner's Lua at %s", lua_tostring(L, -1));
		luaL_traceback(L, L, lua_tostring(L, -1), 1);
		lua_remove(L, -2);
		lua_remove(L, -2);
	}
	else
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
	PgsError	err;
	bool		sql;

	idx = lua_absindex(L, idx);
	msg = field_string(L, idx, "message");
	tb = verbose ? field_string(L, idx, "traceback") : NULL;
	memset(&err, 0, sizeof(err));
	if ((sql = lua_getfield(L, idx, "sqlerror") == LUA_TTABLE))
	{
		int			e = lua_gettop(L);

		/* borrowed strings: printed, never freed */
		err.detail = (char *) field_string(L, e, "detail");
		err.hint = (char *) field_string(L, e, "hint");
		err.statement = (char *) field_string(L, e, "statement");
		err.context = (char *) field_string(L, e, "context");
		lua_getfield(L, e, "position");
		err.position = (int) lua_tointeger(L, -1);
		lua_pop(L, 1);
	}
	pgs_print_error(out, msg ? msg : "unknown error", NULL, context,
					sql ? &err : NULL, tb);
	lua_pop(L, 1);
}

/* ---- where an error is reported ---- */

/*
 * "file:line: " of the migration file's call that made the phase running
 * now, when a helper made it (online.change_column_type): its code is the
 * prelude's, with no line of the file on the stack.  Set by C.site.
 */
static char phase_site[LUA_IDSIZE + 32];

/*
 * pgs_push_where: pushes "file:line: " of the line of the migration file
 * that led to what runs now: the innermost active function defined in a
 * file (chunk name "@..."); else, in a phase a helper made, the helper's
 * call (C.site); else, while a file loads, its line (C.track); else "".
 * Errors raised in the runner's own Lua (the prelude) are reported there
 * (see msghandler), and so are assert() and error objects without position.
 */
void
pgs_push_where(lua_State *L)
{
	lua_Debug	ar;
	int			level;
	const char *tracked;
	int			line;

	for (level = 1; lua_getstack(L, level, &ar); level++)
	{
		lua_getinfo(L, "Sl", &ar);
		if (ar.source[0] == '@' && ar.currentline > 0)
		{
			lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
			return;
		}
	}
	if (phase_site[0] != '\0')
		lua_pushstring(L, phase_site);
	else if ((tracked = pgs_tracked_at(&line)) != NULL)
		lua_pushfstring(L, "%s:%d: ", tracked, line);
	else
		lua_pushliteral(L, "");
}

/*
 * C.site(where) -> the site it replaces (nil if none): where ("file:line: ",
 * or nil to clear) is the helper call a phase was made by, for as long as
 * the phase runs (loader.group sets it around the phase's functions).
 */
static int
l_site(lua_State *L)
{
	const char *where = luaL_optstring(L, 1, NULL);

	if (phase_site[0] != '\0')
		lua_pushstring(L, phase_site);
	else
		lua_pushnil(L);
	snprintf(phase_site, sizeof(phase_site), "%s", where ? where : "");
	return 1;
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

/*
 * C.write(text[, style]): progress output on stdout (clears the live line),
 * in the colour of style ("header", "ok", "HIGH", ...: see pgs_styled) if
 * stdout is coloured.
 */
static int
l_write(lua_State *L)
{
	size_t		len;
	const char *text = luaL_checklstring(L, 1, &len);
	const char *style = luaL_optstring(L, 2, NULL);

	pgs_live_clear();
	pgs_styled(stdout, pgs_style_named(style), text, len);
	fflush(stdout);
	return 0;
}

/*
 * C.sleep(seconds): sleeps, raising "interrupted" on SIGINT/SIGTERM.  In a
 * sandbox it returns at once: a dry run has nothing to wait for, and a file
 * must not keep its reviewer waiting.
 */
static int
l_sleep(lua_State *L)
{
	double		left = luaL_checknumber(L, 1);

	if (pgs_is_sandbox(L))
		return 0;

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

/*
 * C.sqlerror(message, sqlstate, hint, where): an error value like the ones
 * failed statements raise, for what the prelude reports in the same terms
 * (a backfill job an operator paused: SQLSTATE 57014, an interruption).
 */
static int
l_sqlerror(lua_State *L)
{
	PgsError	err;

	memset(&err, 0, sizeof(err));
	err.severity = (char *) "ERROR";
	err.message = (char *) luaL_checkstring(L, 1);
	err.sqlstate = (char *) luaL_checkstring(L, 2);
	err.hint = (char *) luaL_optstring(L, 3, NULL);
	pgs_push_sqlerror(L, &err);
	if (lua_type(L, 4) == LUA_TSTRING)
	{
		lua_pushvalue(L, 4);
		lua_setfield(L, -2, "where");
	}
	return 1;
}

/*
 * C.where() -> "file:line: " of the innermost line of a migration file
 * running (see pgs_push_where), "" if none.
 */
static int
l_where(lua_State *L)
{
	pgs_push_where(L);
	return 1;
}

static const luaL_Reg c_helpers[] = {
	{"where", l_where},
	{"sqlerror", l_sqlerror},
	{"write", l_write},
	{"sleep", l_sleep},
	{"event", l_event},
	{"current", l_current},
	{"backfill_watch", l_backfill_watch},
	{"add_rows", l_add_rows},
	{"msghandler", msghandler},
	{"track", pgs_l_track},
	{"tracked", pgs_l_tracked},
	{"site", l_site},
	{"json_string", l_json_string},
	{"connect", pgs_l_connect},	/* luadb.c: a second server (db:connect) */
	{"compare", pgs_l_compare},
	{"decl_read", pgs_l_decl_read},	/* decl.c: a JSON or YAML migration file */
	{"decl_schema", pgs_l_decl_schema},
	{NULL, NULL}
};

/*
 * Runs the prelude's modules in order (runner/Makefile's PRELUDE), each with
 * the C helpers and the table of the modules run before it as arguments,
 * and keeps the table of the last one, api.lua (what C calls by name), in
 * the registry.  Raises on failure (the caller is protected).
 */
static int
open_prelude(lua_State *L)
{
	const PgsPreludeModule *m;
	int			helpers;
	int			modules;

	luaL_newlib(L, c_helpers);
	pgs_push_db_methods(L);
	lua_setfield(L, -2, "db_methods");
	helpers = lua_gettop(L);
	lua_newtable(L);
	modules = lua_gettop(L);
	for (m = pgs_prelude; m->name; m++)
	{
		char		chunkname[64];

		/* tracebacks name the file: [prelude/db.lua]:42 */
		snprintf(chunkname, sizeof(chunkname), "=[prelude/%s.lua]", m->name);
		if (luaL_loadbufferx(L, (const char *) m->text, m->len, chunkname, "t") != LUA_OK)
			return lua_error(L);
		lua_pushvalue(L, helpers);
		lua_pushvalue(L, modules);
		lua_call(L, 2, 1);
		if (!lua_istable(L, -1))
			return luaL_error(L, "the prelude's module %s did not return its table", m->name);
		lua_setfield(L, modules, m->name);
	}
	if (lua_getfield(L, modules, "api") != LUA_TTABLE)
		return luaL_error(L, "the prelude has no module api");
	lua_setfield(L, LUA_REGISTRYINDEX, PRELUDE_KEY);
	return 0;
}

/*
 * What a sandboxed file could use to reach past its environment: the shared
 * metatable of strings (getmetatable("").__index is the real string table)
 * is hidden, and string.dump goes (no bytecode can be made, so none loaded).
 */
static void
hide_string_library(lua_State *L)
{
	lua_pushliteral(L, "");
	lua_getmetatable(L, -1);
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 2);
	lua_getglobal(L, LUA_STRLIBNAME);
	lua_pushnil(L);
	lua_setfield(L, -2, "dump");
	lua_pop(L, 1);
}

static lua_State *
new_state(const PgsOptions *opts, bool sandbox)
{
	lua_State  *L = luaL_newstate();

	if (L == NULL || (sandbox && !pgs_guard_sandbox(L)))
	{
		if (L)
			lua_close(L);
		pgs_errorf("cannot create a Lua state: out of memory\n");
		return NULL;
	}
	luaL_openlibs(L);
	if (sandbox)
		hide_string_library(L);
	pgs_open_db(L);
	luaL_newmetatable(L, FAILURE_METATABLE);
	lua_pop(L, 1);
	lua_pushcfunction(L, open_prelude);
	if (pgs_pcall(L, 0, 0) != LUA_OK)
	{
		pgs_print_failure(L, -1, stderr, "while loading the runner's prelude", true);
		pgs_lua_close(L);
		return NULL;
	}
	if (opts || sandbox)
	{
		pgs_push_prelude_function(L, "configure");
		lua_createtable(L, 0, 3);
		lua_pushstring(L, opts && opts->json ? "json" : "text");
		lua_setfield(L, -2, "format");
		lua_pushboolean(L, opts && opts->quiet);
		lua_setfield(L, -2, "quiet");
		lua_pushboolean(L, sandbox);
		lua_setfield(L, -2, "sandbox");
		if (pgs_pcall(L, 1, 0) != LUA_OK)
		{
			pgs_print_failure(L, -1, stderr, "while configuring the runner's prelude", true);
			pgs_lua_close(L);
			return NULL;
		}
	}
	return L;
}

/*
 * pgs_lua_new: a Lua state with the standard libraries, the db metatables
 * and the prelude, or NULL (with a message printed) if that fails.  The
 * migration file it loads is trusted: it gets all of Lua (run, rollback,
 * verify).
 */
lua_State *
pgs_lua_new(const PgsOptions *opts)
{
	return new_state(opts, false);
}

/*
 * pgs_lua_new_sandbox: the same for a file under review (plan, lint): it runs
 * in the sandbox the file header describes.  One at a time per process (the
 * CPU timer is the process's); close it with pgs_lua_close().
 */
lua_State *
pgs_lua_new_sandbox(const PgsOptions *opts)
{
	return new_state(opts, true);
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
 * pgs_sha256_file: the SHA-256 of the file at path, as 64 lowercase hex
 * digits and a NUL in hex (65 bytes), through libcrypto.  The drift check
 * compares it with the digest recorded when the migration last ran (and a
 * DBA may compare it with sha256sum).  Returns 0, or an errno value.
 */
int
pgs_sha256_file(const char *path, char *hex)
{
	FILE	   *f = fopen(path, "rb");
	EVP_MD_CTX *ctx;
	unsigned char buf[8192];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	size_t		n;
	int			rc = 0;
	unsigned int i;

	if (f == NULL)
		return errno;
	if ((ctx = EVP_MD_CTX_new()) == NULL ||
		EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		rc = ENOMEM;
	while (rc == 0 && (n = fread(buf, 1, sizeof(buf), f)) > 0)
		if (EVP_DigestUpdate(ctx, buf, n) != 1)
			rc = EIO;
	if (rc == 0 && ferror(f))
		rc = EIO;
	if (rc == 0 && (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32))
		rc = EIO;
	EVP_MD_CTX_free(ctx);
	fclose(f);
	if (rc == 0)
		for (i = 0; i < mdlen; i++)
			snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return rc;
}

/*
 * pgs_load_migration: loads and validates the migration file at path, and
 * (sha256 not NULL) hashes it into sha256 (65 bytes, see pgs_sha256_file).
 * Returns PGS_EXIT_OK with the migration table pushed, or, with a failure
 * table pushed instead, PGS_EXIT_USAGE (the file cannot be read) or
 * PGS_EXIT_FAIL (it is not a valid migration).  If the state kept the
 * migration of path (pgs_keep_migration), it is that one, hash included:
 * the file is not read or run again.
 */
int
pgs_load_migration(lua_State *L, const char *path, char *sha256)
{
	int			top = lua_gettop(L);
	struct stat st;
	FILE	   *f;
	int			e;

	/* loaded already, and kept for this load (pgs_keep_migration) */
	if (lua_getfield(L, LUA_REGISTRYINDEX, KEPT_KEY) == LUA_TTABLE &&
		lua_getfield(L, top + 1, "path") == LUA_TSTRING &&
		strcmp(lua_tostring(L, -1), path) == 0)
	{
		if (sha256)
		{
			lua_getfield(L, top + 1, "sha256");
			snprintf(sha256, 65, "%s", lua_tostring(L, -1));
		}
		lua_getfield(L, top + 1, "migration");
		lua_replace(L, top + 1);
		lua_settop(L, top + 1);
		lua_pushnil(L);
		lua_setfield(L, LUA_REGISTRYINDEX, KEPT_KEY);
		return PGS_EXIT_OK;
	}
	lua_settop(L, top);

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
	if (sha256 && (e = pgs_sha256_file(path, sha256)) != 0)
	{
		lua_pop(L, 1);
		pgs_push_failure(L, "cannot read migration file \"%s\": %s", path, strerror(e));
		return PGS_EXIT_USAGE;
	}
	return PGS_EXIT_OK;
}

/*
 * pgs_keep_migration: keeps the migration pgs_load_migration pushed (popped
 * from the stack) with its path and sha256, so that the next
 * pgs_load_migration of path in this state takes it instead of loading the
 * file again: run DIR checks every file before it runs one, and runs each
 * in the state it loaded it in, so that a file's top level runs once.
 */
void
pgs_keep_migration(lua_State *L, const char *path, const char *sha256)
{
	lua_createtable(L, 0, 3);
	lua_insert(L, -2);
	lua_setfield(L, -2, "migration");
	lua_pushstring(L, path);
	lua_setfield(L, -2, "path");
	lua_pushstring(L, sha256);
	lua_setfield(L, -2, "sha256");
	lua_setfield(L, LUA_REGISTRYINDEX, KEPT_KEY);
}

/*
 * Sets the fields of ap (key, type, value, ... up to a NULL key) in the
 * table on top of the stack, as pgs_emit describes; with keys (a stack
 * index, or 0) each key set is also appended to the list there.
 */
static void
set_fields(lua_State *L, va_list ap, int keys)
{
	const char *key;

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
		if (keys)
		{
			lua_pushstring(L, key);
			lua_rawseti(L, keys, (lua_Integer) lua_rawlen(L, keys) + 1);
		}
	}
}

/*
 * pgs_json_line(L, key, type, value, ..., NULL): one JSON object on stdout,
 * its keys in the order given, written by the prelude's one JSON writer
 * (output.lua); types as for pgs_emit.  For JSON that is not a progress
 * event (pgshift compare's lines).
 */
void
pgs_json_line(lua_State *L,...)
{
	va_list		ap;
	int			keys;

	pgs_push_prelude_function(L, "json_line");
	lua_newtable(L);			/* the object */
	lua_newtable(L);			/* its keys, in order */
	keys = lua_gettop(L);
	lua_pushvalue(L, -2);
	va_start(ap, L);
	set_fields(L, ap, keys);
	va_end(ap);
	lua_pop(L, 1);
	if (pgs_pcall(L, 2, 0) != LUA_OK)
	{
		pgs_print_failure(L, -1, stderr, "while printing JSON", true);
		lua_pop(L, 1);
	}
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

	pgs_push_prelude_function(L, "emit");
	lua_createtable(L, 0, 8);
	lua_pushstring(L, event);
	lua_setfield(L, -2, "event");
	va_start(ap, event);
	set_fields(L, ap, 0);
	va_end(ap);
	/*
	 * The interrupt hook is for the migration's code, not for our output:
	 * lift it while the event prints (the guard's stays), and put it back if
	 * an interrupt came.
	 */
	{
		bool		was_phase_code = pgs_own_code(L);

		if (pgs_pcall(L, 1, 0) != LUA_OK)
		{
			pgs_print_failure(L, -1, stderr, "while printing progress", true);
			lua_pop(L, 1);
		}
		pgs_own_code_end(L, was_phase_code);
	}
}
