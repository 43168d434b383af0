/*
 * luadb.c
 *	  The `db` object a migration's phase functions receive:
 *	  db:exec(sql, ...), db:query(sql, ...), db:value(sql, ...),
 *	  db:quote_ident(s), db:quote_literal(s).
 *
 * A db is a full userdata owning one PGconn, closed by __close/__gc.  Each
 * statement's PGresult lives in a small userdata of its own ("result box")
 * so that a Lua error raised while rows are converted (out of memory, a
 * duplicate column name) never leaks it.  SQL errors are raised as tables
 * with metatable pgshift.sqlerror: message, sqlstate, detail, hint, context,
 * statement, position and where (the file:line of the call).  SQL text or a
 * parameter holding a zero byte is refused before anything is sent: libpq
 * would send only the part before it.
 *
 * A migration may open more connections, to other servers, with
 * db:connect (C.connect here; the Lua method is in scripts/prelude/move.lua):
 * such a db has a label ("database "x" on host:port as user "u"") that
 * starts its SQL errors' messages, and keeps the connection string only in
 * memory, for C.compare (pgshift compare between two dbs), which never
 * prints it: no message names more of a server than its label.
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
	int64_t		rows;			/* rows affected by db:exec since last taken */
	bool		pinned;			/* owned by the engine: Lua code cannot close it */
	char	   *label;			/* db:connect's: names the server in errors */
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
				{
					/* the shortest form that reads back as the same double:
					 * 19.99, not 19.989999999999998 */
					int			prec;

					for (prec = 15; prec <= 17; prec++)
					{
						snprintf(buf, sizeof(buf), "%.*g", prec, (double) n);
						if (strtod(buf, NULL) == (double) n)
							break;
					}
				}
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
	const char *where;
	const char *msg;
	const char *state;

	luaL_checktype(L, 1, LUA_TTABLE);
	where = lua_getfield(L, 1, "where") == LUA_TSTRING ? lua_tostring(L, -1) : "";
	msg = lua_getfield(L, 1, "message") == LUA_TSTRING ? lua_tostring(L, -1) : "?";
	state = lua_getfield(L, 1, "sqlstate") == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
	if (state)
		lua_pushfstring(L, "%s%s (SQLSTATE %s)", where, msg, state);
	else
		lua_pushfstring(L, "%s%s", where, msg);
	return 1;
}

/*
 * Raises "file:line: db:METHOD: WHAT contains a zero byte ..." for a string
 * that libpq would cut short at its first zero byte: "INSERT ...\0; DROP ..."
 * would run the INSERT and report success.  file:line is the migration's
 * call.  Nothing has been sent when this is raised.
 */
static void
refuse_zero_byte(lua_State *L, int idx, const char *method, const char *what)
{
	size_t		len;
	const char *s;
	const char *zero;

	if (lua_type(L, idx) != LUA_TSTRING)
		return;
	s = lua_tolstring(L, idx, &len);
	if ((zero = memchr(s, '\0', len)) == NULL)
		return;
	pgs_push_where(L);
	lua_pushfstring(L, "db:%s: %s contains a zero byte (at byte %d), which PostgreSQL "
					"text cannot hold; nothing was sent", method, what,
					(int) (zero - s) + 1);
	lua_concat(L, 2);
	lua_error(L);
}

/*
 * Runs the statement in argument 2 with arguments 3.. as parameters and
 * returns the result box (on the stack top) holding a successful result.
 * Raises an sqlerror on failure.  method names the db method for errors.
 */
static ResultBox *
run_statement(lua_State *L, const char *method)
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
	refuse_zero_byte(L, 2, method, "the SQL text");
	for (i = 0; i < nparams; i++)
	{
		char		what[32];

		snprintf(what, sizeof(what), "parameter $%d", i + 1);
		refuse_zero_byte(L, 3 + i, method, what);
	}
	if (nparams > 0)
	{
		luaL_checkstack(L, nparams + 8, "too many parameters");
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
		if (db->label)
		{
			/* another server than the migration's: say which */
			const char *msg = box->err.message ? box->err.message : "unknown error";
			size_t		len = strlen(db->label) + strlen(msg) + 8;
			char	   *with = malloc(len);

			if (with)
			{
				snprintf(with, len, "on %s: %s", db->label, msg);
				free(box->err.message);
				box->err.message = with;
			}
		}
		pgs_push_sqlerror(L, &box->err);
		pgs_error_clear(&box->err);
		luaL_where(L, 1);
		lua_setfield(L, -2, "where");
		lua_error(L);
	}
	return box;
}

/* Pushes the value of row r, column c of res. */
static void
push_cell(lua_State *L, const PGresult *res, int r, int c)
{
	pgs_push_value(L, PQgetvalue(res, r, c), PQgetlength(res, r, c),
				   PQftype(res, c), PQgetisnull(res, r, c));
}

/* Frees the box's result now that it has been converted. */
static void
done_with(ResultBox *box)
{
	PQclear(box->res);
	box->res = NULL;
}

/* Does this command tag count as rows written? */
static bool
writes_rows(const char *tag)
{
	static const char *const writes[] = {"INSERT ", "UPDATE ", "DELETE ", "MERGE ", "COPY "};
	size_t		i;

	for (i = 0; i < sizeof(writes) / sizeof(writes[0]); i++)
		if (strncmp(tag, writes[i], strlen(writes[i])) == 0)
			return true;
	return false;
}

/*
 * db:exec(sql, ...) -> number of rows the statement affected or returned.
 * Rows written (INSERT, UPDATE, DELETE, MERGE, COPY) add to the phase's count.
 */
static int
db_exec(lua_State *L)
{
	ResultBox  *box = run_statement(L, "exec");
	const char *n = PQcmdTuples(box->res);
	lua_Integer count = (n && *n) ? (lua_Integer) strtoll(n, NULL, 10)
		: (lua_Integer) PQntuples(box->res);

	if (writes_rows(PQcmdStatus(box->res)))
		((LuaDb *) lua_touserdata(L, 1))->rows += count;
	lua_pushinteger(L, count);
	done_with(box);
	return 1;
}

/* db:query(sql, ...) -> { {col = value, ...}, ... } */
static int
db_query(lua_State *L)
{
	ResultBox  *box = run_statement(L, "query");
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
			push_cell(L, res, r, c);
			lua_setfield(L, -2, PQfname(res, c));
		}
		lua_rawseti(L, -2, r + 1);
	}
	done_with(box);
	return 1;
}

/* db:value(sql, ...) -> first column of the first row, nil if no row */
static int
db_value(lua_State *L)
{
	ResultBox  *box = run_statement(L, "value");
	PGresult   *res = box->res;

	if (PQntuples(res) == 0 || PQnfields(res) == 0)
		lua_pushnil(L);
	else
		push_cell(L, res, 0, 0);
	done_with(box);
	return 1;
}

/* __gc: closes the connection once. */
static int
db_gc(lua_State *L)
{
	LuaDb	   *db = luaL_checkudata(L, 1, PGS_DB_METATABLE);
	PGconn	   *conn = db->conn;

	db->conn = NULL;			/* closed before anything can fail */
	free(db->label);
	db->label = NULL;
	if (conn)
		PQfinish(conn);
	return 0;
}

/*
 * db:close() and __close: closes the connection, unless the engine owns the
 * db (a phase's db holds the migration's lock and outlives the phase).
 */
static int
db_close(lua_State *L)
{
	LuaDb	   *db = luaL_checkudata(L, 1, PGS_DB_METATABLE);

	if (db->pinned)
		return luaL_error(L, "the migration's db cannot be closed: pgshift closes it when the run ends");
	return db_gc(L);
}

/* The engine keeps this db (and its connection) to the end of the run. */
void
pgs_db_pin(lua_State *L, int idx)
{
	((LuaDb *) luaL_checkudata(L, idx, PGS_DB_METATABLE))->pinned = true;
}

/* db:in_transaction() -> true inside BEGIN ... COMMIT */
static int
db_in_transaction(lua_State *L)
{
	LuaDb	   *db = check_db(L);
	PGTransactionStatusType st = PQtransactionStatus(db->conn);

	lua_pushboolean(L, st == PQTRANS_INTRANS || st == PQTRANS_INERROR ||
					st == PQTRANS_ACTIVE);
	return 1;
}

/*
 * s quoted as libpq quotes it without a connection's settings, in a UTF-8
 * session: an identifier in double quotes, a literal in single quotes (with
 * " E" before it, and backslashes doubled, if it holds one).  Pushed.
 */
static void
push_quoted_offline(lua_State *L, const char *s, size_t len, bool literal)
{
	char		q = literal ? '\'' : '"';
	luaL_Buffer b;
	size_t		i;

	luaL_buffinit(L, &b);
	if (literal && memchr(s, '\\', len) != NULL)
		luaL_addstring(&b, " E");
	luaL_addchar(&b, q);
	for (i = 0; i < len; i++)
	{
		if (s[i] == q || (literal && s[i] == '\\'))
			luaL_addchar(&b, s[i]);
		luaL_addchar(&b, s[i]);
	}
	luaL_addchar(&b, q);
	luaL_pushresult(&b);
}

/*
 * db:quote_ident(s), db:quote_literal(s): s quoted by libpq for the db's
 * connection (PQescapeIdentifier, PQescapeLiteral), for SQL that cannot take
 * it as a parameter (DDL).  Called on anything but a db of this file (the
 * dry-run db of plan, which may have no server), the same quoting is done
 * here (push_quoted_offline): that text is shown, never sent.
 */
static int
quote(lua_State *L, bool literal)
{
	LuaDb	   *db = luaL_testudata(L, 1, PGS_DB_METATABLE);
	const char *method = literal ? "quote_literal" : "quote_ident";
	size_t		len;
	const char *s = luaL_checklstring(L, 2, &len);
	char	   *quoted;

	if (db && db->conn == NULL)
		return luaL_error(L, "the database connection is closed");
	refuse_zero_byte(L, 2, method, "the text to quote");
	if (db == NULL)
	{
		push_quoted_offline(L, s, len, literal);
		return 1;
	}
	quoted = literal ? PQescapeLiteral(db->conn, s, len) :
		PQescapeIdentifier(db->conn, s, len);
	if (quoted == NULL)
	{
		const char *msg = PQerrorMessage(db->conn);
		size_t		n = strlen(msg);

		while (n > 0 && msg[n - 1] == '\n')
			n--;
		pgs_push_where(L);
		lua_pushfstring(L, "db:%s: ", method);
		lua_pushlstring(L, msg, n);
		lua_concat(L, 3);
		return lua_error(L);
	}
	lua_pushstring(L, quoted);
	PQfreemem(quoted);
	return 1;
}

static int
db_quote_ident(lua_State *L)
{
	return quote(L, false);
}

static int
db_quote_literal(lua_State *L)
{
	return quote(L, true);
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
	{"in_transaction", db_in_transaction},
	{"quote_ident", db_quote_ident},
	{"quote_literal", db_quote_literal},
	{"close", db_close},
	{NULL, NULL}
};

static const luaL_Reg db_meta[] = {
	{"__gc", db_gc},
	{"__close", db_close},
	{"__tostring", db_tostring},
	{"__index", NULL},			/* set to the methods table below */
	{NULL, NULL}
};

/*
 * Registers the metatables of db objects, results and SQL errors.  The db
 * methods table is left in the metatable's __index, where the prelude adds
 * the methods written in Lua (pgs_push_db_methods).
 */
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

/* Pushes the table of db methods. */
void
pgs_push_db_methods(lua_State *L)
{
	luaL_getmetatable(L, PGS_DB_METATABLE);
	lua_getfield(L, -1, "__index");
	lua_remove(L, -2);
}

/*
 * Pushes a new db object that will own conn (closed when the object is).
 * The userdata is made before conn is stored, so a failed allocation cannot
 * leak it; pass conn NULL and set it with pgs_db_set_conn.
 */
void
pgs_push_db(lua_State *L, PGconn *conn)
{
	LuaDb	   *db = lua_newuserdatauv(L, sizeof(LuaDb), 0);

	db->conn = conn;
	db->rows = 0;
	db->pinned = false;
	db->label = NULL;
	luaL_setmetatable(L, PGS_DB_METATABLE);
}

void
pgs_db_set_conn(lua_State *L, int idx, PGconn *conn)
{
	((LuaDb *) luaL_checkudata(L, idx, PGS_DB_METATABLE))->conn = conn;
}

/*
 * pgs_connect_db: connects (see pgs_connect) and pushes a db object owning
 * the connection.  The object is made first, so the connection can never
 * leak.  On failure prints why and returns NULL, the (closed) db pushed all
 * the same.
 */
PGconn *
pgs_connect_db(lua_State *L, const char *dsn, const char *appname)
{
	PgsError	err;
	PGconn	   *conn;

	pgs_push_db(L, NULL);
	memset(&err, 0, sizeof(err));
	conn = pgs_connect(dsn, appname, &err);
	if (conn == NULL)
	{
		pgs_report_error(&err, NULL);
		pgs_error_clear(&err);
		return NULL;
	}
	pgs_db_set_conn(L, -1, conn);
	return conn;
}

/* The connection of the db object at idx (NULL once closed). */
PGconn *
pgs_db_conn(lua_State *L, int idx)
{
	return ((LuaDb *) luaL_checkudata(L, idx, PGS_DB_METATABLE))->conn;
}

/* Rows db:exec affected since the last call, and resets the count. */
int64_t
pgs_db_take_rows(lua_State *L, int idx)
{
	LuaDb	   *db = luaL_checkudata(L, idx, PGS_DB_METATABLE);
	int64_t		n = db->rows;

	db->rows = 0;
	return n;
}

/*
 * C.connect(dsn) -> a db connected to dsn (a conninfo string or URI: a
 * service is "service=NAME"), owning its connection (closed by
 * db:close(), or when the run's Lua state closes).  Fails with
 * "file:line: db:connect: could not connect ..." (libpq's reason, which
 * names host and port, never the password).
 */
int
pgs_l_connect(lua_State *L)
{
	size_t		len;
	const char *dsn = luaL_checklstring(L, 1, &len);
	PgsError	err;
	PGconn	   *conn;
	LuaDb	   *db;

	refuse_zero_byte(L, 1, "connect", "the connection string");
	pgs_push_db(L, NULL);
	db = lua_touserdata(L, -1);
	memset(&err, 0, sizeof(err));
	conn = pgs_connect(dsn, "pgshift", &err);
	if (conn == NULL)
	{
		pgs_push_where(L);
		lua_pushfstring(L, "db:connect: %s%s%s", err.message ? err.message : "could not connect",
						err.detail ? " " : "", err.detail ? err.detail : "");
		lua_concat(L, 2);
		pgs_error_clear(&err);
		return lua_error(L);
	}
	db->conn = conn;
	db->label = pgs_conn_describe(conn);
	return 1;
}

/*
 * Pushes the connection string that reaches again what conn reached: its
 * options as libpq used them (a password given in the DSN too: the string
 * is only passed to libpq, never shown).
 */
static void
push_conninfo(lua_State *L, PGconn *conn)
{
	PQconninfoOption *opts = PQconninfo(conn);
	PQconninfoOption *o;
	luaL_Buffer b;

	luaL_buffinit(L, &b);
	for (o = opts; o && o->keyword; o++)
		if (o->val && *o->val && strcmp(o->keyword, "fallback_application_name") != 0 &&
			strcmp(o->keyword, "client_encoding") != 0)
		{
			char	   *pair = pgs_conninfo_pair(o->keyword, o->val);

			if (pair == NULL)
			{
				PQconninfoFree(opts);
				luaL_error(L, "out of memory");
			}
			if (luaL_bufflen(&b) > 0)
				luaL_addchar(&b, ' ');
			luaL_addstring(&b, pair);
			free(pair);
		}
	PQconninfoFree(opts);
	luaL_pushresult(&b);
}

/*
 * C.compare(source_db, target_db, table, quiet) -> pgshift compare's exit
 * status (0 equal, 1 different, 2 an error, printed unless quiet: a --json
 * or --quiet run prints no text of its own): table on the two servers the
 * dbs are connected to, compared by pgshift compare itself, which reads
 * both at one WAL position when the target subscribes to the source.  Its
 * errors name the sides by their labels.
 */
int
pgs_l_compare(lua_State *L)
{
	LuaDb	   *src = luaL_checkudata(L, 1, PGS_DB_METATABLE);
	LuaDb	   *tgt = luaL_checkudata(L, 2, PGS_DB_METATABLE);
	const char *table = luaL_checkstring(L, 3);
	PgsOptions	opts;
	PgsCompareOptions copts;
	char	   *labels[2];
	int			rc;

	if (src->conn == NULL || tgt->conn == NULL)
		return luaL_error(L, "the database connection is closed");
	push_conninfo(L, src->conn);
	push_conninfo(L, tgt->conn);
	labels[0] = src->label ? NULL : pgs_conn_describe(src->conn);
	labels[1] = tgt->label ? NULL : pgs_conn_describe(tgt->conn);
	memset(&opts, 0, sizeof(opts));
	memset(&copts, 0, sizeof(copts));
	opts.quiet = lua_toboolean(L, 4);
	copts.source = lua_tostring(L, -2);
	copts.target = lua_tostring(L, -1);
	copts.source_label = src->label ? src->label : labels[0];
	copts.target_label = tgt->label ? tgt->label : labels[1];
	copts.table = table;
	copts.recheck = 3;
	rc = pgs_cmd_compare(&opts, &copts);
	free(labels[0]);
	free(labels[1]);
	/* compare took the signals for itself: they stop the phase again */
	lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
	pgs_catch_interrupts(lua_tothread(L, -1));
	lua_pop(L, 3);
	lua_pushinteger(L, rc);
	return 1;
}
