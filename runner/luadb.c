/*
 * luadb.c
 *	  The `db` object a migration's phase functions receive:
 *	  db:exec(sql, ...), db:query(sql, ...), db:value(sql, ...).
 *
 * A db is a full userdata owning one PGconn, closed by __close/__gc.  Each
 * statement's PGresult lives in a small userdata of its own ("result box")
 * so that a Lua error raised while rows are converted (out of memory, a
 * duplicate column name) never leaks it.  SQL errors are raised as tables
 * with metatable pgshift.sqlerror: message, sqlstate, detail, hint, context,
 * statement, position and where (the file:line of the call).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "pgshift.h"

/* Type OIDs from pg_type.dat; stable across PostgreSQL versions. */
#define BOOLOID		16
#define INT8OID		20
#define INT2OID		21
#define INT4OID		23
#define FLOAT4OID	700
#define FLOAT8OID	701

#define RESULT_METATABLE "pgshift.result"

/* The protocol carries the parameter count in 16 bits. */
#define MAX_PARAMS	65535

typedef struct LuaDb
{
	PGconn	   *conn;			/* NULL once closed */
} LuaDb;

typedef struct ResultBox
{
	PGresult   *res;
	PgsError	err;
} ResultBox;

static LuaDb *
check_db(lua_State *L)
{
	LuaDb	   *db = luaL_checkudata(L, 1, PGS_DB_METATABLE);

	if (db->conn == NULL)
		luaL_error(L, "the database connection is closed");
	return db;
}

static int
result_gc(lua_State *L)
{
	ResultBox  *box = luaL_checkudata(L, 1, RESULT_METATABLE);

	PQclear(box->res);
	box->res = NULL;
	pgs_error_clear(&box->err);
	return 0;
}

/*
 * Converts one result value (text format) to Lua: integers and floats to
 * numbers, booleans to booleans, NULL to nil, everything else to a string
 * (numeric too, so that no precision is lost).
 */
void
pgs_push_value(lua_State *L, const char *text, int len, Oid type, bool isnull)
{
	if (isnull)
	{
		lua_pushnil(L);
		return;
	}
	switch (type)
	{
		case INT2OID:
		case INT4OID:
		case INT8OID:
			{
				char	   *end;
				long long	v;

				errno = 0;
				v = strtoll(text, &end, 10);
				if (errno == 0 && end != text && *end == '\0')
				{
					lua_pushinteger(L, (lua_Integer) v);
					return;
				}
				break;
			}
		case FLOAT4OID:
		case FLOAT8OID:
			{
				char	   *end;
				double		v = strtod(text, &end);

				if (end != text && *end == '\0')
				{
					lua_pushnumber(L, (lua_Number) v);
					return;
				}
				break;
			}
		case BOOLOID:
			if (len == 1 && (text[0] == 't' || text[0] == 'f'))
			{
				lua_pushboolean(L, text[0] == 't');
				return;
			}
			break;
		default:
			break;
	}
	/* anything else, or a value the server sent in a form we do not expect */
	lua_pushlstring(L, text, len);
}

/*
 * Text of the Lua value at idx for use as query parameter $argno: NULL for
 * nil, the string itself, or a string pushed onto the stack (the caller keeps
 * the stack until the statement returns).
 */
const char *
pgs_param_text(lua_State *L, int idx, int argno)
{
	switch (lua_type(L, idx))
	{
		case LUA_TNIL:
			return NULL;
		case LUA_TBOOLEAN:
			return lua_toboolean(L, idx) ? "true" : "false";
		case LUA_TNUMBER:
			if (lua_isinteger(L, idx))
				lua_pushfstring(L, "%I", (LUAI_UACINT) lua_tointeger(L, idx));
			else
			{
				lua_Number	n = lua_tonumber(L, idx);
				char		buf[64];

				if (isnan(n))
					strcpy(buf, "NaN");
				else if (isinf(n))
					strcpy(buf, n > 0 ? "Infinity" : "-Infinity");
				else
					snprintf(buf, sizeof(buf), "%.17g", (double) n);
				lua_pushstring(L, buf);
			}
			return lua_tostring(L, -1);
		case LUA_TSTRING:
			{
				size_t		len;
				const char *s = lua_tolstring(L, idx, &len);

				if (strlen(s) != len)
					luaL_error(L, "parameter $%d contains a zero byte, which "
							   "PostgreSQL text cannot hold", argno);
				return s;
			}
		default:
			luaL_error(L, "parameter $%d is a %s; pass a string, number, "
					   "boolean or nil", argno, luaL_typename(L, idx));
			return NULL;		/* not reached */
	}
}

static void
set_string_field(lua_State *L, const char *name, const char *value)
{
	if (value)
	{
		lua_pushstring(L, value);
		lua_setfield(L, -2, name);
	}
}

/* Pushes a pgshift.sqlerror table describing err. */
void
pgs_push_sqlerror(lua_State *L, const PgsError *err)
{
	lua_createtable(L, 0, 9);
	set_string_field(L, "severity", err->severity);
	set_string_field(L, "sqlstate", err->sqlstate);
	set_string_field(L, "message", err->message ? err->message : "unknown error");
	set_string_field(L, "detail", err->detail);
	set_string_field(L, "hint", err->hint);
	set_string_field(L, "context", err->context);
	set_string_field(L, "statement", err->statement);
	lua_pushinteger(L, err->position);
	lua_setfield(L, -2, "position");
	luaL_setmetatable(L, PGS_SQLERROR_METATABLE);
}

/* __tostring of an sqlerror: "file:line: message (SQLSTATE xxxxx)" */
static int
sqlerror_tostring(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_getfield(L, 1, "where");
	lua_getfield(L, 1, "message");
	lua_getfield(L, 1, "sqlstate");
	if (lua_isstring(L, -1))
		lua_pushfstring(L, "%s%s (SQLSTATE %s)", luaL_optstring(L, -3, ""),
						luaL_optstring(L, -2, "?"), lua_tostring(L, -1));
	else
		lua_pushfstring(L, "%s%s", luaL_optstring(L, -3, ""),
						luaL_optstring(L, -2, "?"));
	return 1;
}

/*
 * Runs the statement in argument 2 with arguments 3.. as parameters and
 * returns the result box (on the stack top) holding a successful result.
 * Raises an sqlerror on failure.
 */
static ResultBox *
run_statement(lua_State *L)
{
	LuaDb	   *db = check_db(L);
	const char *sql = luaL_checkstring(L, 2);
	int			nparams = lua_gettop(L) - 2;
	const char **values = NULL;
	ResultBox  *box;
	int			i;

	if (nparams > MAX_PARAMS)
		luaL_error(L, "too many parameters (%d, the limit is %d)",
				   nparams, MAX_PARAMS);
	if (nparams > 0)
	{
		luaL_checkstack(L, nparams + 4, "too many parameters");
		values = lua_newuserdatauv(L, sizeof(char *) * nparams, 0);
		for (i = 0; i < nparams; i++)
			values[i] = pgs_param_text(L, 3 + i, i + 1);
	}

	box = lua_newuserdatauv(L, sizeof(ResultBox), 0);
	memset(box, 0, sizeof(*box));
	luaL_setmetatable(L, RESULT_METATABLE);

	box->res = pgs_exec(db->conn, sql, nparams, values, &box->err);
	if (box->res == NULL)
	{
		pgs_push_sqlerror(L, &box->err);
		pgs_error_clear(&box->err);
		luaL_where(L, 1);
		lua_setfield(L, -2, "where");
		lua_error(L);
	}
	return box;
}

/* db:exec(sql, ...) -> number of rows the statement affected or returned */
static int
db_exec(lua_State *L)
{
	ResultBox  *box = run_statement(L);
	const char *n = PQcmdTuples(box->res);

	lua_pushinteger(L, (n && *n) ? (lua_Integer) strtoll(n, NULL, 10)
					: (lua_Integer) PQntuples(box->res));
	PQclear(box->res);
	box->res = NULL;
	return 1;
}

/* db:query(sql, ...) -> { {col = value, ...}, ... } */
static int
db_query(lua_State *L)
{
	ResultBox  *box = run_statement(L);
	PGresult   *res = box->res;
	int			nrows = PQntuples(res);
	int			ncols = PQnfields(res);
	int			r;
	int			c;

	/* Two columns of one name would silently lose one of them. */
	lua_createtable(L, 0, ncols);
	for (c = 0; c < ncols; c++)
	{
		if (lua_getfield(L, -1, PQfname(res, c)) != LUA_TNIL)
			luaL_error(L, "query returns more than one column named \"%s\"; "
					   "give them distinct aliases", PQfname(res, c));
		lua_pop(L, 1);
		lua_pushboolean(L, 1);
		lua_setfield(L, -2, PQfname(res, c));
	}
	lua_pop(L, 1);

	lua_createtable(L, nrows, 0);
	for (r = 0; r < nrows; r++)
	{
		lua_createtable(L, 0, ncols);
		for (c = 0; c < ncols; c++)
		{
			pgs_push_value(L, PQgetvalue(res, r, c), PQgetlength(res, r, c),
						   PQftype(res, c), PQgetisnull(res, r, c));
			lua_setfield(L, -2, PQfname(res, c));
		}
		lua_rawseti(L, -2, r + 1);
	}
	PQclear(box->res);
	box->res = NULL;
	return 1;
}

/* db:value(sql, ...) -> first column of the first row, nil if no row */
static int
db_value(lua_State *L)
{
	ResultBox  *box = run_statement(L);
	PGresult   *res = box->res;

	if (PQntuples(res) == 0 || PQnfields(res) == 0)
		lua_pushnil(L);
	else
		pgs_push_value(L, PQgetvalue(res, 0, 0), PQgetlength(res, 0, 0),
					   PQftype(res, 0), PQgetisnull(res, 0, 0));
	PQclear(box->res);
	box->res = NULL;
	return 1;
}

/* __gc and __close: closes the connection once. */
static int
db_close(lua_State *L)
{
	LuaDb	   *db = luaL_checkudata(L, 1, PGS_DB_METATABLE);
	PGconn	   *conn = db->conn;

	db->conn = NULL;			/* closed before anything can fail */
	if (conn)
		PQfinish(conn);
	return 0;
}

static int
db_tostring(lua_State *L)
{
	LuaDb	   *db = luaL_checkudata(L, 1, PGS_DB_METATABLE);

	if (db->conn == NULL)
		lua_pushliteral(L, "db (closed)");
	else
		lua_pushfstring(L, "db (database \"%s\")", PQdb(db->conn));
	return 1;
}

static const luaL_Reg db_methods[] = {
	{"exec", db_exec},
	{"query", db_query},
	{"value", db_value},
	{"close", db_close},
	{NULL, NULL}
};

static const luaL_Reg db_meta[] = {
	{"__gc", db_close},
	{"__close", db_close},
	{"__tostring", db_tostring},
	{"__index", NULL},			/* set to the methods table below */
	{NULL, NULL}
};

/* Registers the metatables of db objects, results and SQL errors. */
void
pgs_open_db(lua_State *L)
{
	luaL_newmetatable(L, PGS_DB_METATABLE);
	luaL_setfuncs(L, db_meta, 0);
	luaL_newlib(L, db_methods);
	lua_setfield(L, -2, "__index");
	lua_pop(L, 1);

	luaL_newmetatable(L, RESULT_METATABLE);
	lua_pushcfunction(L, result_gc);
	lua_setfield(L, -2, "__gc");
	lua_pop(L, 1);

	luaL_newmetatable(L, PGS_SQLERROR_METATABLE);
	lua_pushcfunction(L, sqlerror_tostring);
	lua_setfield(L, -2, "__tostring");
	lua_pop(L, 1);
}

/* Pushes a new db object that owns conn (closed when the object is). */
void
pgs_push_db(lua_State *L, PGconn *conn)
{
	LuaDb	   *db = lua_newuserdatauv(L, sizeof(LuaDb), 0);

	db->conn = conn;
	luaL_setmetatable(L, PGS_DB_METATABLE);
}
