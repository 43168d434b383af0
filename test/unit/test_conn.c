/*
 * test_conn.c
 *	  libpq error paths and the db object's handling of results, with libpq
 *	  replaced at link time (-Wl,--wrap, see the Makefile): a lost connection,
 *	  an out-of-memory NULL result, a COPY the runner must refuse, server
 *	  error fields, extension version mismatches, and every PGresult freed
 *	  exactly once even when Lua raises an error while holding it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <lauxlib.h>

#include "pgshift.h"

#define INT4OID		23
#define TEXTOID		25
#define BOOLOID		16

/* ---- a fake PGresult the wrapped functions read ---- */
typedef struct FakeResult
{
	ExecStatusType status;
	const char *fields[128];	/* error fields by PG_DIAG_* code */
	int			ntuples;
	int			nfields;
	const char *names[4];
	Oid			types[4];
	const char *values[4][4];
	int			cleared;		/* PQclear calls on this result */
	const char *cmdtuples;
} FakeResult;

static int	fake_conn;			/* its address is the PGconn */
#define CONN ((PGconn *) &fake_conn)

static ConnStatusType conn_status = CONNECTION_OK;
static const char *conn_error = "";
static int	pending_results;	/* PQgetResult returns extra_result this often */
static FakeResult extra_result;
static int	copy_end_calls;
static int	finish_calls;
static int	last_nparams;
static char last_params[4][32];

static void
reset(void)
{
	conn_status = CONNECTION_OK;
	conn_error = "";
	pending_results = 0;
	memset(&extra_result, 0, sizeof(extra_result));
	copy_end_calls = 0;
	finish_calls = 0;
	last_nparams = -1;
}

#define FAKE(r) ((FakeResult *) (r))

PGresult   *__wrap_PQexec(PGconn *conn, const char *query);
PGresult   *__wrap_PQexecParams(PGconn *conn, const char *command, int nParams,
								const Oid *paramTypes, const char *const *paramValues,
								const int *paramLengths, const int *paramFormats,
								int resultFormat);
ExecStatusType __wrap_PQresultStatus(const PGresult *res);
char	   *__wrap_PQresultErrorField(const PGresult *res, int fieldcode);
char	   *__wrap_PQresultErrorMessage(const PGresult *res);
char	   *__wrap_PQerrorMessage(const PGconn *conn);
ConnStatusType __wrap_PQstatus(const PGconn *conn);
void		__wrap_PQclear(PGresult *res);
int			__wrap_PQntuples(const PGresult *res);
int			__wrap_PQnfields(const PGresult *res);
char	   *__wrap_PQfname(const PGresult *res, int field_num);
Oid			__wrap_PQftype(const PGresult *res, int field_num);
char	   *__wrap_PQgetvalue(const PGresult *res, int tup_num, int field_num);
int			__wrap_PQgetlength(const PGresult *res, int tup_num, int field_num);
int			__wrap_PQgetisnull(const PGresult *res, int tup_num, int field_num);
char	   *__wrap_PQcmdTuples(PGresult *res);
int			__wrap_PQputCopyEnd(PGconn *conn, const char *errormsg);
int			__wrap_PQgetCopyData(PGconn *conn, char **buffer, int async);
PGresult   *__wrap_PQgetResult(PGconn *conn);
void		__wrap_PQfreemem(void *ptr);
char	   *__wrap_PQdb(const PGconn *conn);
void		__wrap_PQfinish(PGconn *conn);

PGresult *
__wrap_PQexec(PGconn *conn, const char *query)
{
	last_nparams = 0;
	return mock_ptr_type(PGresult *);
}

PGresult *
__wrap_PQexecParams(PGconn *conn, const char *command, int nParams,
					const Oid *paramTypes, const char *const *paramValues,
					const int *paramLengths, const int *paramFormats,
					int resultFormat)
{
	int			i;

	last_nparams = nParams;
	for (i = 0; i < nParams && i < 4; i++)
		snprintf(last_params[i], sizeof(last_params[i]), "%s",
				 paramValues[i] ? paramValues[i] : "<NULL>");
	return mock_ptr_type(PGresult *);
}

ExecStatusType
__wrap_PQresultStatus(const PGresult *res)
{
	return res ? FAKE(res)->status : PGRES_FATAL_ERROR;
}

char *
__wrap_PQresultErrorField(const PGresult *res, int fieldcode)
{
	return res ? (char *) FAKE(res)->fields[fieldcode] : NULL;
}

char *
__wrap_PQresultErrorMessage(const PGresult *res)
{
	return (char *) "";
}

char *
__wrap_PQerrorMessage(const PGconn *conn)
{
	return (char *) conn_error;
}

ConnStatusType
__wrap_PQstatus(const PGconn *conn)
{
	return conn_status;
}

void
__wrap_PQclear(PGresult *res)
{
	if (res)
		FAKE(res)->cleared++;
}

int
__wrap_PQntuples(const PGresult *res)
{
	return FAKE(res)->ntuples;
}

int
__wrap_PQnfields(const PGresult *res)
{
	return FAKE(res)->nfields;
}

char *
__wrap_PQfname(const PGresult *res, int field_num)
{
	return (char *) FAKE(res)->names[field_num];
}

Oid
__wrap_PQftype(const PGresult *res, int field_num)
{
	return FAKE(res)->types[field_num];
}

char *
__wrap_PQgetvalue(const PGresult *res, int tup_num, int field_num)
{
	const char *v = FAKE(res)->values[tup_num][field_num];

	return (char *) (v ? v : "");
}

int
__wrap_PQgetlength(const PGresult *res, int tup_num, int field_num)
{
	const char *v = FAKE(res)->values[tup_num][field_num];

	return v ? (int) strlen(v) : 0;
}

int
__wrap_PQgetisnull(const PGresult *res, int tup_num, int field_num)
{
	return FAKE(res)->values[tup_num][field_num] == NULL;
}

char *
__wrap_PQcmdTuples(PGresult *res)
{
	return (char *) (FAKE(res)->cmdtuples ? FAKE(res)->cmdtuples : "");
}

int
__wrap_PQputCopyEnd(PGconn *conn, const char *errormsg)
{
	assert_non_null(errormsg);	/* must fail the COPY, not complete it */
	copy_end_calls++;
	return 1;
}

int
__wrap_PQgetCopyData(PGconn *conn, char **buffer, int async)
{
	return -1;
}

PGresult *
__wrap_PQgetResult(PGconn *conn)
{
	if (pending_results > 0)
	{
		pending_results--;
		return (PGresult *) &extra_result;
	}
	return NULL;
}

void
__wrap_PQfreemem(void *ptr)
{
}

char *
__wrap_PQdb(const PGconn *conn)
{
	return (char *) "testdb";
}

void
__wrap_PQfinish(PGconn *conn)
{
	finish_calls++;
}

/* ---- pgs_exec ---- */

static void
test_conn_lost_connection_gets_08006(void **state)
{
	PgsError	err = {0};

	reset();
	conn_status = CONNECTION_BAD;
	conn_error = "server closed the connection unexpectedly\n";
	will_return(__wrap_PQexec, NULL);
	assert_null(pgs_exec(CONN, "SELECT 1", 0, NULL, &err));
	assert_string_equal(err.sqlstate, "08006");
	assert_string_equal(err.message, "server closed the connection unexpectedly");
	assert_string_equal(err.statement, "SELECT 1");
	pgs_error_clear(&err);
	assert_null(err.message);
}

static void
test_conn_out_of_memory_result(void **state)
{
	PgsError	err = {0};

	reset();
	conn_error = "out of memory\n";
	will_return(__wrap_PQexec, NULL);
	assert_null(pgs_exec(CONN, "SELECT 1", 0, NULL, &err));
	assert_null(err.sqlstate);	/* the connection is fine: no 08006 */
	assert_string_equal(err.message, "out of memory");
	pgs_error_clear(&err);
}

static void
test_conn_server_error_fields_copied(void **state)
{
	FakeResult	r = {.status = PGRES_FATAL_ERROR};
	PgsError	err = {0};

	reset();
	r.fields[PG_DIAG_SEVERITY] = "ERROR";
	r.fields[PG_DIAG_SQLSTATE] = "42P01";
	r.fields[PG_DIAG_MESSAGE_PRIMARY] = "relation \"nope\" does not exist";
	r.fields[PG_DIAG_MESSAGE_DETAIL] = "some detail";
	r.fields[PG_DIAG_MESSAGE_HINT] = "some hint";
	r.fields[PG_DIAG_STATEMENT_POSITION] = "15";
	will_return(__wrap_PQexecParams, &r);
	assert_null(pgs_exec(CONN, "SELECT * FROM nope WHERE $1", 1,
						 (const char *const[]) {"x"}, &err));
	assert_string_equal(err.sqlstate, "42P01");
	assert_string_equal(err.message, "relation \"nope\" does not exist");
	assert_string_equal(err.detail, "some detail");
	assert_string_equal(err.hint, "some hint");
	assert_int_equal(err.position, 15);
	assert_int_equal(r.cleared, 1);
	pgs_error_clear(&err);
}

static void
test_conn_copy_refused_and_drained(void **state)
{
	FakeResult	r = {.status = PGRES_COPY_IN};
	PgsError	err = {0};

	reset();
	pending_results = 2;
	will_return(__wrap_PQexec, &r);
	assert_null(pgs_exec(CONN, "COPY t FROM STDIN", 0, NULL, &err));
	assert_int_equal(copy_end_calls, 1);
	assert_int_equal(pending_results, 0);
	assert_int_equal(extra_result.cleared, 2);
	assert_int_equal(r.cleared, 1);
	assert_string_equal(err.sqlstate, "0A000");
	assert_non_null(strstr(err.message, "COPY"));
	pgs_error_clear(&err);
}

static void
test_conn_empty_statement(void **state)
{
	FakeResult	r = {.status = PGRES_EMPTY_QUERY};
	PgsError	err = {0};

	reset();
	will_return(__wrap_PQexec, &r);
	assert_null(pgs_exec(CONN, " ", 0, NULL, &err));
	assert_string_equal(err.sqlstate, "42601");
	assert_int_equal(r.cleared, 1);
	pgs_error_clear(&err);
}

/* ---- pgs_check_extension ---- */

static void
test_conn_extension_not_installed(void **state)
{
	FakeResult	r = {.status = PGRES_TUPLES_OK, .ntuples = 0, .nfields = 1};
	PgsError	err = {0};

	reset();
	will_return(__wrap_PQexec, &r);
	assert_int_equal(pgs_check_extension(CONN, &err), PGS_EXIT_USAGE);
	assert_string_equal(err.message,
						"extension pg_shift is not installed in database \"testdb\"");
	assert_non_null(strstr(err.hint, "CREATE EXTENSION pg_shift"));
	assert_int_equal(r.cleared, 1);
	pgs_error_clear(&err);
}

static void
test_conn_extension_wrong_version(void **state)
{
	FakeResult	r = {.status = PGRES_TUPLES_OK, .ntuples = 1, .nfields = 1};
	PgsError	err = {0};

	reset();
	r.values[0][0] = "0.0.9";
	will_return(__wrap_PQexec, &r);
	assert_int_equal(pgs_check_extension(CONN, &err), PGS_EXIT_USAGE);
	assert_non_null(strstr(err.message, "is version 0.0.9"));
	assert_non_null(strstr(err.message, "this pgshift is version " PGS_VERSION));
	assert_non_null(strstr(err.hint, "ALTER EXTENSION pg_shift UPDATE"));
	assert_int_equal(r.cleared, 1);
	pgs_error_clear(&err);
}

static void
test_conn_extension_library_mismatch(void **state)
{
	FakeResult	ext = {.status = PGRES_TUPLES_OK, .ntuples = 1, .nfields = 1};
	FakeResult	lib = {.status = PGRES_TUPLES_OK, .ntuples = 1, .nfields = 1};
	PgsError	err = {0};

	reset();
	ext.values[0][0] = PGS_VERSION;
	lib.values[0][0] = "9.9.9";
	will_return(__wrap_PQexec, &ext);
	will_return(__wrap_PQexec, &lib);
	assert_int_equal(pgs_check_extension(CONN, &err), PGS_EXIT_USAGE);
	assert_non_null(strstr(err.message, "library version 9.9.9"));
	assert_int_equal(ext.cleared, 1);
	assert_int_equal(lib.cleared, 1);
	pgs_error_clear(&err);
}

static void
test_conn_extension_ok(void **state)
{
	FakeResult	ext = {.status = PGRES_TUPLES_OK, .ntuples = 1, .nfields = 1};
	FakeResult	lib = {.status = PGRES_TUPLES_OK, .ntuples = 1, .nfields = 1};
	PgsError	err = {0};

	reset();
	ext.values[0][0] = PGS_VERSION;
	lib.values[0][0] = PGS_VERSION;
	will_return(__wrap_PQexec, &ext);
	will_return(__wrap_PQexec, &lib);
	assert_int_equal(pgs_check_extension(CONN, &err), PGS_EXIT_OK);
	assert_null(err.message);
	assert_int_equal(ext.cleared + lib.cleared, 2);
}

/* ---- pgs_error_print ---- */

static char *
render_error(PgsError *err)
{
	char	   *buf = NULL;
	size_t		len = 0;
	FILE	   *f = open_memstream(&buf, &len);

	pgs_error_print(f, err);
	fclose(f);
	return buf;
}

static void
test_conn_error_print_points_at_position(void **state)
{
	PgsError	err = {0};
	char	   *out;

	err.statement = (char *) "SELECT * FROM nope";
	err.position = 15;
	err.hint = (char *) "Check the name.";
	out = render_error(&err);
	assert_non_null(strstr(out, "  hint: Check the name.\n"));
	assert_non_null(strstr(out, "  statement: SELECT * FROM nope\n"
						   "                           ^\n"));
	free(out);

	err.statement = (char *) "SELECT 1,\n  é, nope";
	err.position = 16;			/* counts characters, not bytes */
	err.hint = NULL;
	out = render_error(&err);
	assert_non_null(strstr(out, "position: line 2, column 6 of the statement"));
	free(out);
}

/* ---- the db object ---- */

/* Runs Lua code with a db over the fake connection as `...`. */
static int
run_lua(lua_State *L, const char *code)
{
	if (luaL_loadstring(L, code) != LUA_OK)
		fail_msg("%s", lua_tostring(L, -1));
	pgs_push_db(L, CONN);
	return pgs_pcall(L, 1, 1);
}

static const char *
failure_message(lua_State *L)
{
	lua_getfield(L, -1, "message");
	return lua_tostring(L, -1);
}

static void
test_luadb_sql_error_object(void **state)
{
	lua_State  *L = pgs_lua_new();
	FakeResult	r = {.status = PGRES_FATAL_ERROR};

	reset();
	r.fields[PG_DIAG_SQLSTATE] = "42P01";
	r.fields[PG_DIAG_MESSAGE_PRIMARY] = "relation \"nope\" does not exist";
	will_return(__wrap_PQexec, &r);
	assert_int_equal(run_lua(L, "local db = ...\n"
							 "local ok, e = pcall(db.exec, db, 'SELECT * FROM nope')\n"
							 "assert(not ok)\n"
							 "assert(e.sqlstate == '42P01', e.sqlstate)\n"
							 "assert(e.statement == 'SELECT * FROM nope')\n"
							 "assert(e.message == 'relation \"nope\" does not exist')\n"
							 "return tostring(e)"), LUA_OK);
	assert_string_equal(lua_tostring(L, -1),
						"relation \"nope\" does not exist (SQLSTATE 42P01)");
	assert_int_equal(r.cleared, 1);

	/* uncaught: the failure names the line of the call */
	will_return(__wrap_PQexec, &r);
	assert_int_not_equal(run_lua(L, "local db = ...\n\ndb:exec('SELECT * FROM nope')"), LUA_OK);
	assert_string_equal(failure_message(L),
						"[string \"local db = ......\"]:3: relation \"nope\" does not exist (SQLSTATE 42P01)");
	lua_pop(L, 1);
	lua_getfield(L, -1, "sqlerror");
	assert_true(lua_istable(L, -1));
	assert_int_equal(r.cleared, 2);
	lua_close(L);
}

static void
test_luadb_query_converts_rows(void **state)
{
	lua_State  *L = pgs_lua_new();
	FakeResult	r = {.status = PGRES_TUPLES_OK, .ntuples = 2, .nfields = 3,
		.names = {"id", "name", "ok"}, .types = {INT4OID, TEXTOID, BOOLOID}};

	reset();
	r.values[0][0] = "1";
	r.values[0][1] = "a";
	r.values[0][2] = "t";
	r.values[1][0] = "2";
	r.values[1][1] = NULL;
	r.values[1][2] = "f";
	will_return(__wrap_PQexec, &r);
	assert_int_equal(run_lua(L, "local rows = (...):query('q')\n"
							 "assert(#rows == 2)\n"
							 "assert(math.type(rows[1].id) == 'integer' and rows[1].id == 1)\n"
							 "assert(rows[1].name == 'a' and rows[1].ok == true)\n"
							 "assert(rows[2].name == nil and rows[2].ok == false)\n"
							 "return true"), LUA_OK);
	assert_int_equal(r.cleared, 1);
	lua_close(L);
}

static void
test_luadb_duplicate_column_names_refused(void **state)
{
	lua_State  *L = pgs_lua_new();
	FakeResult	r = {.status = PGRES_TUPLES_OK, .ntuples = 1, .nfields = 2,
		.names = {"id", "id"}, .types = {INT4OID, INT4OID}};

	reset();
	r.values[0][0] = "1";
	r.values[0][1] = "2";
	will_return(__wrap_PQexec, &r);
	assert_int_not_equal(run_lua(L, "return (...):query('SELECT * FROM a JOIN b USING (x)')"), LUA_OK);
	assert_non_null(strstr(failure_message(L), "more than one column named \"id\""));
	/* raised while the result was held: freed by the result box */
	lua_close(L);
	assert_int_equal(r.cleared, 1);
}

static void
test_luadb_exec_counts_and_params(void **state)
{
	lua_State  *L = pgs_lua_new();
	FakeResult	upd = {.status = PGRES_COMMAND_OK, .cmdtuples = "5"};
	FakeResult	ddl = {.status = PGRES_COMMAND_OK};

	reset();
	will_return(__wrap_PQexecParams, &upd);
	will_return(__wrap_PQexec, &ddl);
	assert_int_equal(run_lua(L, "local db = ...\n"
							 "local n = db:exec('UPDATE t SET a = $1 WHERE b = $2 OR c = $3', 42, nil, true)\n"
							 "local m = db:exec('CREATE TABLE x ()')\n"
							 "return n * 10 + m"), LUA_OK);
	assert_int_equal(lua_tointeger(L, -1), 50);
	assert_int_equal(upd.cleared + ddl.cleared, 2);
	lua_close(L);
	/* the last statement had no parameters; check the UPDATE's */
	reset();
	L = pgs_lua_new();
	will_return(__wrap_PQexecParams, &upd);
	assert_int_equal(run_lua(L, "return (...):exec('x', 42, nil, true)"), LUA_OK);
	assert_int_equal(last_nparams, 3);
	assert_string_equal(last_params[0], "42");
	assert_string_equal(last_params[1], "<NULL>");
	assert_string_equal(last_params[2], "true");
	lua_close(L);
}

static void
test_luadb_closed_db(void **state)
{
	lua_State  *L = pgs_lua_new();

	reset();
	assert_int_not_equal(run_lua(L, "local db = ...\ndb:close()\ndb:close()\nreturn db:value('SELECT 1')"),
						 LUA_OK);
	assert_non_null(strstr(failure_message(L), "connection is closed"));
	lua_close(L);
	assert_int_equal(finish_calls, 1);	/* close twice + __gc: one PQfinish */
}

static void
test_luadb_bad_parameter_frees_nothing_twice(void **state)
{
	lua_State  *L = pgs_lua_new();

	reset();
	/* refused before anything is sent: no mock consumed */
	assert_int_not_equal(run_lua(L, "return (...):exec('SELECT $1', {})"), LUA_OK);
	assert_non_null(strstr(failure_message(L), ":1: parameter $1 is a table"));
	lua_close(L);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conn_lost_connection_gets_08006),
		cmocka_unit_test(test_conn_out_of_memory_result),
		cmocka_unit_test(test_conn_server_error_fields_copied),
		cmocka_unit_test(test_conn_copy_refused_and_drained),
		cmocka_unit_test(test_conn_empty_statement),
		cmocka_unit_test(test_conn_extension_not_installed),
		cmocka_unit_test(test_conn_extension_wrong_version),
		cmocka_unit_test(test_conn_extension_library_mismatch),
		cmocka_unit_test(test_conn_extension_ok),
		cmocka_unit_test(test_conn_error_print_points_at_position),
		cmocka_unit_test(test_luadb_sql_error_object),
		cmocka_unit_test(test_luadb_query_converts_rows),
		cmocka_unit_test(test_luadb_duplicate_column_names_refused),
		cmocka_unit_test(test_luadb_exec_counts_and_params),
		cmocka_unit_test(test_luadb_closed_db),
		cmocka_unit_test(test_luadb_bad_parameter_frees_nothing_twice),
	};

	return cmocka_run_group_tests_name("conn", tests, NULL, NULL);
}
