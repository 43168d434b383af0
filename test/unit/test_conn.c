/*
 * test_conn.c
 *	  libpq error paths and the db object's handling of results, with libpq
 *	  replaced at link time (-Wl,--wrap, see the Makefile): a lost connection,
 *	  an out-of-memory NULL result, a COPY the runner must refuse, server
 *	  error fields, statements sent without waiting (pgs_send), extension version mismatches, and every PGresult freed
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
	const char *cmdstatus;
} FakeResult;

static int	fake_conn;			/* its address is the PGconn */
#define CONN ((PGconn *) &fake_conn)

static ConnStatusType conn_status = CONNECTION_OK;
static const char *conn_error = "";
/* What PQgetResult hands out after a send: queued results, then extra_result
 * pending_results times (as a COPY's trailing results), then NULL. */
static PGresult *queue[8];
static int	queue_len;
static int	queue_pos;
static int	pending_results;
static FakeResult extra_result;
static int	cancel_calls;
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
	cancel_calls = 0;
	last_nparams = -1;
	queue_len = queue_pos = 0;
}

/* Queues a further result for the statement being sent. */
static void
queue_result(FakeResult *r)
{
	queue[queue_len++] = (PGresult *) r;
}

#define FAKE(r) ((FakeResult *) (r))

int			__wrap_PQsendQuery(PGconn *conn, const char *query);
int			__wrap_PQsendQueryParams(PGconn *conn, const char *command, int nParams,
									 const Oid *paramTypes, const char *const *paramValues,
									 const int *paramLengths, const int *paramFormats,
									 int resultFormat);
int			__wrap_PQisBusy(PGconn *conn);
int			__wrap_PQconsumeInput(PGconn *conn);
int			__wrap_PQsocket(const PGconn *conn);
PGcancel   *__wrap_PQgetCancel(PGconn *conn);
int			__wrap_PQcancel(PGcancel *cancel, char *errbuf, int errbufsize);
void		__wrap_PQfreeCancel(PGcancel *cancel);
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
char	   *__wrap_PQcmdStatus(PGresult *res);
PGTransactionStatusType __wrap_PQtransactionStatus(const PGconn *conn);

/* A send takes the result the test queued with will_return; NULL: the send fails. */
static int
take_mock(PGresult *r)
{
	if (r == NULL)
		return 0;
	/* the will_return result comes first, then anything queue_result added */
	memmove(queue + 1, queue, sizeof(queue[0]) * queue_len);
	queue[0] = r;
	queue_len++;
	queue_pos = 0;
	return 1;
}

int
__wrap_PQsendQuery(PGconn *conn, const char *query)
{
	last_nparams = 0;
	return take_mock(mock_ptr_type(PGresult *));
}

int
__wrap_PQsendQueryParams(PGconn *conn, const char *command, int nParams,
						 const Oid *paramTypes, const char *const *paramValues,
						 const int *paramLengths, const int *paramFormats,
						 int resultFormat)
{
	int			i;

	last_nparams = nParams;
	for (i = 0; i < nParams && i < 4; i++)
		snprintf(last_params[i], sizeof(last_params[i]), "%s",
				 paramValues[i] ? paramValues[i] : "<NULL>");
	return take_mock(mock_ptr_type(PGresult *));
}

int
__wrap_PQisBusy(PGconn *conn)
{
	return 0;
}

int
__wrap_PQconsumeInput(PGconn *conn)
{
	return 1;
}

int
__wrap_PQsocket(const PGconn *conn)
{
	return -1;
}

PGcancel *
__wrap_PQgetCancel(PGconn *conn)
{
	return (PGcancel *) &fake_conn;
}

int
__wrap_PQcancel(PGcancel *cancel, char *errbuf, int errbufsize)
{
	cancel_calls++;
	return 1;
}

void
__wrap_PQfreeCancel(PGcancel *cancel)
{
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
	if (queue_pos < queue_len)
	{
		PGresult   *r = queue[queue_pos++];

		if (queue_pos == queue_len)
			queue_len = queue_pos = 0;
		return r;
	}
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

char *
__wrap_PQcmdStatus(PGresult *res)
{
	return (char *) (FAKE(res)->cmdstatus ? FAKE(res)->cmdstatus : "");
}

PGTransactionStatusType
__wrap_PQtransactionStatus(const PGconn *conn)
{
	return PQTRANS_IDLE;
}

/* ---- pgs_exec ---- */

static void
test_conn_lost_connection_gets_08006(void **state)
{
	PgsError	err = {0};

	reset();
	conn_status = CONNECTION_BAD;
	conn_error = "server closed the connection unexpectedly\n";
	will_return(__wrap_PQsendQuery, NULL);
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
	will_return(__wrap_PQsendQuery, NULL);
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
	will_return(__wrap_PQsendQueryParams, &r);
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
	will_return(__wrap_PQsendQuery, &r);
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
test_conn_copy_out_cancelled(void **state)
{
	FakeResult	r = {.status = PGRES_COPY_OUT};
	PgsError	err = {0};

	reset();
	pending_results = 1;
	will_return(__wrap_PQsendQuery, &r);
	assert_null(pgs_exec(CONN, "COPY t TO STDOUT; INSERT INTO t VALUES (1)", 0, NULL, &err));
	assert_int_equal(cancel_calls, 1);	/* the rest of the string must not run */
	assert_int_equal(copy_end_calls, 0);
	assert_int_equal(r.cleared, 1);
	assert_non_null(strstr(err.detail, "cancelled"));
	pgs_error_clear(&err);
}

static void
test_conn_first_error_of_a_string_wins(void **state)
{
	FakeResult	ok = {.status = PGRES_COMMAND_OK};
	FakeResult	bad = {.status = PGRES_FATAL_ERROR};
	FakeResult	after = {.status = PGRES_COMMAND_OK};
	PgsError	err = {0};

	reset();
	bad.fields[PG_DIAG_SQLSTATE] = "22012";
	bad.fields[PG_DIAG_MESSAGE_PRIMARY] = "division by zero";
	queue_result(&bad);
	queue_result(&after);
	will_return(__wrap_PQsendQuery, &ok);
	assert_null(pgs_exec(CONN, "SELECT 1; SELECT 1/0; SELECT 2", 0, NULL, &err));
	assert_string_equal(err.sqlstate, "22012");
	assert_int_equal(ok.cleared + bad.cleared + after.cleared, 3);
	pgs_error_clear(&err);
}

/* ---- pgs_send, pgs_wait_any, pgs_get_result (statements in parallel) ---- */

static void
test_conn_send_failure_sets_error(void **state)
{
	PgsError	err = {0};

	reset();
	conn_status = CONNECTION_BAD;
	conn_error = "no connection to the server\n";
	will_return(__wrap_PQsendQueryParams, NULL);
	assert_false(pgs_send(CONN, "SELECT 1", 0, NULL, &err));
	assert_string_equal(err.sqlstate, "08006");
	assert_string_equal(err.message, "no connection to the server");
	assert_string_equal(err.statement, "SELECT 1");
	pgs_error_clear(&err);
}

static void
test_conn_wait_any_names_the_ready_one(void **state)
{
	PGconn	   *none[2] = {NULL, NULL};
	PGconn	   *second[2] = {NULL, CONN};

	reset();
	assert_int_equal(pgs_wait_any(none, 2, 0), -1);	/* nothing in flight */
	assert_int_equal(pgs_wait_any(second, 2, 0), 1);	/* PQisBusy says done */
}

static void
test_conn_get_result_last_result_or_first_error(void **state)
{
	FakeResult	ok = {.status = PGRES_TUPLES_OK};
	FakeResult	bad = {.status = PGRES_FATAL_ERROR};
	FakeResult	after = {.status = PGRES_COMMAND_OK};
	PgsError	err = {0};

	reset();
	will_return(__wrap_PQsendQueryParams, &ok);
	assert_true(pgs_send(CONN, "SELECT $1", 1, (const char *const[]) {"x"}, &err));
	assert_ptr_equal(pgs_get_result(CONN, "SELECT $1", &err), (PGresult *) &ok);
	assert_null(err.message);
	assert_int_equal(ok.cleared, 0);	/* the caller's to clear */

	reset();
	bad.fields[PG_DIAG_SQLSTATE] = "57014";
	bad.fields[PG_DIAG_MESSAGE_PRIMARY] = "canceling statement due to user request";
	ok.cleared = 0;
	queue_result(&bad);
	queue_result(&after);
	will_return(__wrap_PQsendQueryParams, &ok);
	assert_true(pgs_send(CONN, "SELECT pg_sleep(9)", 0, NULL, &err));
	assert_null(pgs_get_result(CONN, "SELECT pg_sleep(9)", &err));
	assert_string_equal(err.sqlstate, "57014");
	assert_string_equal(err.statement, "SELECT pg_sleep(9)");
	assert_int_equal(ok.cleared + bad.cleared + after.cleared, 3);
	pgs_error_clear(&err);
}

static void
test_conn_get_result_none_is_an_error(void **state)
{
	PgsError	err = {0};

	reset();
	conn_status = CONNECTION_BAD;
	conn_error = "server closed the connection unexpectedly\n";
	assert_null(pgs_get_result(CONN, "SELECT 1", &err));
	assert_string_equal(err.sqlstate, "08006");
	assert_string_equal(err.message, "server closed the connection unexpectedly");
	pgs_error_clear(&err);
}

static void
test_conn_server_message_with_newline_kept_whole(void **state)
{
	FakeResult	r = {.status = PGRES_FATAL_ERROR};
	PgsError	err = {0};

	reset();
	r.fields[PG_DIAG_SQLSTATE] = "P0001";
	r.fields[PG_DIAG_MESSAGE_PRIMARY] = "first\nsecond";
	r.fields[PG_DIAG_MESSAGE_DETAIL] = "d";
	will_return(__wrap_PQsendQuery, &r);
	assert_null(pgs_exec(CONN, "DO $$ BEGIN RAISE ...; END $$", 0, NULL, &err));
	assert_string_equal(err.message, "first\nsecond");
	assert_string_equal(err.detail, "d");
	pgs_error_clear(&err);
}

static void
test_conn_empty_statement(void **state)
{
	FakeResult	r = {.status = PGRES_EMPTY_QUERY};
	PgsError	err = {0};

	reset();
	will_return(__wrap_PQsendQuery, &r);
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
	will_return(__wrap_PQsendQuery, &r);
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
	will_return(__wrap_PQsendQuery, &r);
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
	will_return(__wrap_PQsendQuery, &ext);
	will_return(__wrap_PQsendQuery, &lib);
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
	will_return(__wrap_PQsendQuery, &ext);
	will_return(__wrap_PQsendQuery, &lib);
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
	lua_State  *L = pgs_lua_new(NULL);
	FakeResult	r = {.status = PGRES_FATAL_ERROR};

	reset();
	r.fields[PG_DIAG_SQLSTATE] = "42P01";
	r.fields[PG_DIAG_MESSAGE_PRIMARY] = "relation \"nope\" does not exist";
	will_return(__wrap_PQsendQuery, &r);
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
	will_return(__wrap_PQsendQuery, &r);
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
	lua_State  *L = pgs_lua_new(NULL);
	FakeResult	r = {.status = PGRES_TUPLES_OK, .ntuples = 2, .nfields = 3,
		.names = {"id", "name", "ok"}, .types = {INT4OID, TEXTOID, BOOLOID}};

	reset();
	r.values[0][0] = "1";
	r.values[0][1] = "a";
	r.values[0][2] = "t";
	r.values[1][0] = "2";
	r.values[1][1] = NULL;
	r.values[1][2] = "f";
	will_return(__wrap_PQsendQuery, &r);
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
	lua_State  *L = pgs_lua_new(NULL);
	FakeResult	r = {.status = PGRES_TUPLES_OK, .ntuples = 1, .nfields = 2,
		.names = {"id", "id"}, .types = {INT4OID, INT4OID}};

	reset();
	r.values[0][0] = "1";
	r.values[0][1] = "2";
	will_return(__wrap_PQsendQuery, &r);
	assert_int_not_equal(run_lua(L, "return (...):query('SELECT * FROM a JOIN b USING (x)')"), LUA_OK);
	assert_non_null(strstr(failure_message(L), "more than one column named \"id\""));
	/* raised while the result was held: freed by the result box */
	lua_close(L);
	assert_int_equal(r.cleared, 1);
}

static void
test_luadb_exec_counts_and_params(void **state)
{
	lua_State  *L = pgs_lua_new(NULL);
	FakeResult	upd = {.status = PGRES_COMMAND_OK, .cmdtuples = "5"};
	FakeResult	ddl = {.status = PGRES_COMMAND_OK};

	reset();
	will_return(__wrap_PQsendQueryParams, &upd);
	will_return(__wrap_PQsendQuery, &ddl);
	assert_int_equal(run_lua(L, "local db = ...\n"
							 "local n = db:exec('UPDATE t SET a = $1 WHERE b = $2 OR c = $3', 42, nil, true)\n"
							 "local m = db:exec('CREATE TABLE x ()')\n"
							 "return n * 10 + m"), LUA_OK);
	assert_int_equal(lua_tointeger(L, -1), 50);
	assert_int_equal(upd.cleared + ddl.cleared, 2);
	lua_close(L);
	/* check the parameters of a statement that has some */
	reset();
	L = pgs_lua_new(NULL);
	will_return(__wrap_PQsendQueryParams, &upd);
	assert_int_equal(run_lua(L, "return (...):exec('x', 42, nil, true)"), LUA_OK);
	assert_int_equal(last_nparams, 3);
	assert_string_equal(last_params[0], "42");
	assert_string_equal(last_params[1], "<NULL>");
	assert_string_equal(last_params[2], "true");
	lua_close(L);
}

static void
test_luadb_counts_only_written_rows(void **state)
{
	lua_State  *L = pgs_lua_new(NULL);
	FakeResult	upd = {.status = PGRES_COMMAND_OK, .cmdtuples = "5", .cmdstatus = "UPDATE 5"};
	FakeResult	sel = {.status = PGRES_TUPLES_OK, .cmdtuples = "3", .cmdstatus = "SELECT 3", .ntuples = 3};
	FakeResult	ins = {.status = PGRES_COMMAND_OK, .cmdtuples = "2", .cmdstatus = "INSERT 0 2"};

	reset();
	will_return(__wrap_PQsendQuery, &upd);
	will_return(__wrap_PQsendQuery, &sel);
	will_return(__wrap_PQsendQuery, &ins);
	assert_true(luaL_loadstring(L, "local db = ...; db:exec('u'); db:exec('s'); db:exec('i')") == LUA_OK);
	pgs_push_db(L, CONN);
	lua_pushvalue(L, -1);
	lua_insert(L, -3);			/* keep the db below the chunk */
	assert_int_equal(pgs_pcall(L, 1, 0), LUA_OK);
	assert_int_equal(pgs_db_take_rows(L, -1), 7);
	assert_int_equal(pgs_db_take_rows(L, -1), 0);	/* taking resets */
	lua_close(L);
}

static void
test_luadb_closed_db(void **state)
{
	lua_State  *L = pgs_lua_new(NULL);

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
	lua_State  *L = pgs_lua_new(NULL);

	reset();
	/* refused before anything is sent: no mock consumed */
	assert_int_not_equal(run_lua(L, "return (...):exec('SELECT $1', {})"), LUA_OK);
	assert_non_null(strstr(failure_message(L), ":1: parameter $1 is a table"));
	lua_close(L);
}

/* Runs code loaded as file "mig.lua" with a db over the fake connection. */
static int
run_file(lua_State *L, const char *code, size_t len)
{
	if (luaL_loadbuffer(L, code, len, "@mig.lua") != LUA_OK)
		fail_msg("%s", lua_tostring(L, -1));
	pgs_push_db(L, CONN);
	return pgs_pcall(L, 1, 1);
}

/*
 * A zero byte in the SQL text or a parameter: libpq would send the text
 * before it ("INSERT ...\0; DROP ..." ran the INSERT and succeeded).  Each
 * call refuses it, naming the migration's line, and sends nothing: no mock
 * result is queued, so a send would fail the test.
 */
static void
test_luadb_zero_byte_refused_before_sending(void **state)
{
	static const char exec_code[] =
		"local db = ...\n\ndb:exec('INSERT INTO t VALUES (1)\\0; DROP TABLE t')\n";
	static const char query_code[] =
		"local db = ...\ndb:query('SELECT $1, $2', 'a', 'b\\0c')\n";
	static const char value_code[] =
		"local db = ...\nlocal x = 1\nreturn db:value('SELECT 1\\0')\n";
	static const char ddl_code[] =
		"local db = ...\ndb:ddl('DROP TABLE a\\0, b')\n";
	lua_State  *L = pgs_lua_new(NULL);

	reset();
	assert_int_not_equal(run_file(L, exec_code, sizeof(exec_code) - 1), LUA_OK);
	assert_string_equal(failure_message(L),
						"mig.lua:3: db:exec: the SQL text contains a zero byte (at byte 25), "
						"which PostgreSQL text cannot hold; nothing was sent");
	lua_settop(L, 0);
	assert_int_not_equal(run_file(L, query_code, sizeof(query_code) - 1), LUA_OK);
	assert_string_equal(failure_message(L),
						"mig.lua:2: db:query: parameter $2 contains a zero byte (at byte 2), "
						"which PostgreSQL text cannot hold; nothing was sent");
	lua_settop(L, 0);
	assert_int_not_equal(run_file(L, value_code, sizeof(value_code) - 1), LUA_OK);
	assert_non_null(strstr(failure_message(L), "mig.lua:3: db:value: the SQL text contains a zero byte"));
	lua_settop(L, 0);
	assert_int_not_equal(run_file(L, ddl_code, sizeof(ddl_code) - 1), LUA_OK);
	assert_string_equal(failure_message(L),
						"mig.lua:2: db:ddl: the SQL text contains a zero byte (at byte 13), "
						"which PostgreSQL text cannot hold; nothing was sent");
	assert_int_equal(last_nparams, -1);	/* nothing was sent at all */
	lua_close(L);
}

/* An error message with a zero byte is shown whole, the byte as \0. */
static void
test_luadb_failure_message_keeps_zero_bytes(void **state)
{
	static const char code[] = "error('before\\0after')\n";
	lua_State  *L = pgs_lua_new(NULL);

	assert_int_not_equal(run_file(L, code, sizeof(code) - 1), LUA_OK);
	assert_string_equal(failure_message(L), "mig.lua:1: before\\0after");
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
		cmocka_unit_test(test_conn_copy_out_cancelled),
		cmocka_unit_test(test_conn_first_error_of_a_string_wins),
		cmocka_unit_test(test_conn_send_failure_sets_error),
		cmocka_unit_test(test_conn_wait_any_names_the_ready_one),
		cmocka_unit_test(test_conn_get_result_last_result_or_first_error),
		cmocka_unit_test(test_conn_get_result_none_is_an_error),
		cmocka_unit_test(test_conn_server_message_with_newline_kept_whole),
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
		cmocka_unit_test(test_luadb_counts_only_written_rows),
		cmocka_unit_test(test_luadb_closed_db),
		cmocka_unit_test(test_luadb_bad_parameter_frees_nothing_twice),
		cmocka_unit_test(test_luadb_zero_byte_refused_before_sending),
		cmocka_unit_test(test_luadb_failure_message_keeps_zero_bytes),
	};

	return cmocka_run_group_tests_name("conn", tests, NULL, NULL);
}
