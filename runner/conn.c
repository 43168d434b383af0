/*
 * conn.c
 *	  The runner's one libpq helper: connect, execute, and turn failures into
 *	  a PgsError that names the server message, SQLSTATE and statement.
 *
 * Every statement the runner sends goes through pgs_exec(), or, when
 * statements run on several connections at once (pgshift compare), through
 * pgs_send(), pgs_wait_any() and pgs_get_result().  Neither returns a failed
 * PGresult: either a result the caller must PQclear(), or NULL with *err
 * filled in, so callers cannot forget an error status.
 */
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pgshift.h"

static char *
dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* Copies s without trailing newlines (libpq messages end with one). */
static char *
dup_trimmed(const char *s)
{
	char	   *out;
	size_t		len;

	if (s == NULL)
		return NULL;
	len = strlen(s);
	while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == ' '))
		len--;
	out = malloc(len + 1);
	if (out)
	{
		memcpy(out, s, len);
		out[len] = '\0';
	}
	return out;
}

/*
 * libpq's own (client-side) messages span lines ("server closed the connection
 * unexpectedly\n\tThis probably means ...").  Keep the first line as the
 * message and move the rest, joined, to the detail, so that the cause of an
 * error always prints as one line.
 */
static void
split_message(PgsError *err)
{
	char	   *nl = err->message ? strchr(err->message, '\n') : NULL;
	char	   *rest;
	char	   *out;
	char	   *p;
	bool		space = false;

	if (nl == NULL || err->detail != NULL)
		return;
	rest = nl + 1;
	if ((out = malloc(strlen(rest) + 1)) == NULL)
		return;
	*nl = '\0';
	/* collapse newlines and indentation into single spaces */
	for (p = out; *rest; rest++)
	{
		if (*rest == '\n' || *rest == '\t' || *rest == ' ')
			space = (p != out);
		else
		{
			if (space)
				*p++ = ' ';
			space = false;
			*p++ = *rest;
		}
	}
	*p = '\0';
	err->detail = out;
}

void
pgs_error_clear(PgsError *err)
{
	free(err->severity);
	free(err->sqlstate);
	free(err->message);
	free(err->detail);
	free(err->hint);
	free(err->context);
	free(err->statement);
	memset(err, 0, sizeof(*err));
}

/* Replaces *err with a client-side error (sqlstate may be NULL). */
void
pgs_error_set(PgsError *err, const char *sqlstate, const char *fmt,...)
{
	va_list		ap;
	char		buf[2048];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	pgs_error_clear(err);
	err->severity = strdup("ERROR");
	err->sqlstate = dup_or_null(sqlstate);
	err->message = dup_trimmed(buf);
	split_message(err);
}

/*
 * Fills *err from a failed result, or from the connection when there is no
 * result at all (out of memory, connection lost before a reply).
 */
void
pgs_error_from_result(PGconn *conn, const PGresult *res, const char *sql,
					  PgsError *err)
{
	const char *msg = NULL;
	const char *pos;

	pgs_error_clear(err);
	if (res)
	{
		err->severity = dup_or_null(PQresultErrorField(res, PG_DIAG_SEVERITY));
		err->sqlstate = dup_or_null(PQresultErrorField(res, PG_DIAG_SQLSTATE));
		msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		err->detail = dup_or_null(PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL));
		err->hint = dup_or_null(PQresultErrorField(res, PG_DIAG_MESSAGE_HINT));
		err->context = dup_or_null(PQresultErrorField(res, PG_DIAG_CONTEXT));
		pos = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);
		err->position = pos ? atoi(pos) : 0;
		if (msg == NULL)
			msg = PQresultErrorMessage(res);
	}
	if (msg == NULL || *msg == '\0')
	{
		/* libpq's own message: may span lines, see split_message */
		msg = PQerrorMessage(conn);
		if (msg == NULL || *msg == '\0')
			msg = "unknown error (no message from libpq)";
		err->message = dup_trimmed(msg);
		split_message(err);
	}
	else
		err->message = dup_trimmed(msg);
	if (err->severity == NULL)
		err->severity = strdup("ERROR");
	/* libpq's own failures carry no SQLSTATE; a dead connection gets 08006. */
	if (err->sqlstate == NULL && PQstatus(conn) == CONNECTION_BAD)
		err->sqlstate = strdup("08006");
	err->statement = dup_or_null(sql);
}

/*
 * A COPY started by a statement we sent: refuse it and bring the connection
 * back to idle, so the next statement works.  COPY FROM STDIN is failed from
 * our side, which aborts the string's implicit transaction.  COPY TO STDOUT
 * cannot be failed by the client, so the statement is cancelled (statements
 * after it in the same string are then skipped, unless the server had already
 * finished them) and its output discarded.  A string may hold several COPYs:
 * loop until the connection leaves the copy state.
 */
static void
abandon_copy(PGconn *conn, ExecStatusType status)
{
	PGresult   *res;
	char	   *buf;
	bool		canceled = false;

	for (;;)
	{
		if (status == PGRES_COPY_IN)
			PQputCopyEnd(conn, "pgshift does not stream COPY data");
		else if (status == PGRES_COPY_OUT || status == PGRES_COPY_BOTH)
		{
			if (!canceled)
			{
				pgs_cancel(conn);
				canceled = true;
			}
			while (PQgetCopyData(conn, &buf, 0) > 0)
				PQfreemem(buf);
		}
		res = PQgetResult(conn);
		if (res == NULL)
			break;
		status = PQresultStatus(res);
		PQclear(res);
		if (PQstatus(conn) == CONNECTION_BAD)
			break;
	}
}

/*
 * The work connection: while a statement runs on it, tick_fn is called about
 * once a second, and an interrupt cancels the statement.  Other connections
 * (the control connection) are neither ticked nor cancelled: their short
 * bookkeeping statements must go through.
 */
static PGconn *work_conn = NULL;
static PgsTickFn tick_fn = NULL;
static void *tick_arg = NULL;
static bool in_tick = false;
static double next_tick = 0;	/* across statements: many short ones tick too */

volatile sig_atomic_t pgs_interrupted = 0;

void
pgs_set_work_conn(PGconn *conn, PgsTickFn fn, void *arg)
{
	work_conn = conn;
	tick_fn = fn;
	tick_arg = arg;
	next_tick = 0;
}

double
pgs_monotonic_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* pgs_cancel: asks the server to cancel the statement running on conn. */
void
pgs_cancel(PGconn *conn)
{
	PGcancel   *cancel = PQgetCancel(conn);
	char		errbuf[256];

	if (cancel)
	{
		PQcancel(cancel, errbuf, sizeof(errbuf));
		PQfreeCancel(cancel);
	}
}

/* Runs the tick function if a second has passed since the last tick. */
void
pgs_maybe_tick(void)
{
	double		now = pgs_monotonic_seconds();

	if (tick_fn == NULL || in_tick)
		return;
	if (next_tick == 0)
		next_tick = now + 1.0;
	if (now < next_tick)
		return;
	in_tick = true;
	tick_fn(tick_arg);
	in_tick = false;
	next_tick = pgs_monotonic_seconds() + 1.0;
}

/*
 * Waits for the results of the statement sent on conn; on the work
 * connection, ticking once a second and cancelling the statement once
 * pgs_interrupted is set.  Returns what PQexec would: the last result, or
 * the first error (the server stops at it), or a COPY result as soon as one
 * arrives.
 */
static PGresult *
wait_for_result(PGconn *conn)
{
	PGresult   *last = NULL;
	PGresult   *res;
	bool		canceled = false;
	bool		is_work = conn == work_conn;

	for (;;)
	{
		while (PQisBusy(conn))
		{
			struct pollfd pfd;
			int			rc;

			pfd.fd = PQsocket(conn);
			pfd.events = POLLIN;
			pfd.revents = 0;
			if (pfd.fd < 0)
				break;
			rc = poll(&pfd, 1, 250);
			if (is_work && pgs_interrupted && !canceled)
			{
				pgs_cancel(conn);
				canceled = true;
			}
			if (rc > 0 && !PQconsumeInput(conn))
				break;			/* connection lost: PQgetResult says so */
			if (is_work)
				pgs_maybe_tick();
		}
		res = PQgetResult(conn);
		if (res == NULL)
			break;
		switch (PQresultStatus(res))
		{
			case PGRES_COPY_IN:
			case PGRES_COPY_OUT:
			case PGRES_COPY_BOTH:
				PQclear(last);
				return res;
			default:
				break;
		}
		if (last && (PQresultStatus(last) == PGRES_FATAL_ERROR ||
					 PQresultStatus(last) == PGRES_NONFATAL_ERROR))
			PQclear(res);		/* keep the first error */
		else
		{
			PQclear(last);
			last = res;
		}
	}
	return last;
}

/*
 * pgs_exec: runs sql (with nparams text parameters, NULL for SQL NULL) and
 * returns its result, or NULL with *err set.
 *
 * Without parameters the simple query protocol is used, so a string may hold
 * several statements (they run as one implicit transaction and the result of
 * the last one is returned).  With parameters, exactly one statement is sent
 * with the extended protocol.  While the server works, the tick function
 * runs once a second, and an interrupt (pgs_interrupted) cancels the
 * statement, which then fails with SQLSTATE 57014.
 */
PGresult *
pgs_exec(PGconn *conn, const char *sql, int nparams,
		 const char *const *values, PgsError *err)
{
	PGresult   *res = NULL;
	ExecStatusType status;
	int			sent;

	/* interrupted: the phase's code gets no new statement on the work connection */
	if (conn == work_conn && pgs_interrupted)
	{
		pgs_error_set(err, "57014", "interrupted by %s: no new statement is sent",
					  pgs_interrupted == SIGTERM ? "SIGTERM" : "SIGINT (Ctrl-C)");
		err->statement = strdup(sql);
		return NULL;
	}
	if (nparams > 0)
		sent = PQsendQueryParams(conn, sql, nparams, NULL, values, NULL, NULL, 0);
	else
		sent = PQsendQuery(conn, sql);
	if (sent)
		res = wait_for_result(conn);

	status = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	switch (status)
	{
		case PGRES_COMMAND_OK:
		case PGRES_TUPLES_OK:
			return res;
		case PGRES_COPY_IN:
		case PGRES_COPY_OUT:
		case PGRES_COPY_BOTH:
			PQclear(res);
			abandon_copy(conn, status);
			pgs_error_set(err, "0A000",
						  "COPY to or from the client is not supported in a migration");
			err->detail = strdup(status == PGRES_COPY_IN ?
								 "pgshift failed the COPY, which rolled back the statement string it was part of." :
								 "pgshift cancelled the COPY; statements after it in the same string may have run.");
			err->hint = strdup("Use COPY with a server-side file or program, or INSERT ... SELECT.");
			err->statement = strdup(sql);
			return NULL;
		case PGRES_EMPTY_QUERY:
			PQclear(res);
			pgs_error_set(err, "42601", "empty statement");
			err->statement = strdup(sql);
			return NULL;
		default:
			pgs_error_from_result(conn, res, sql, err);
			PQclear(res);
			return NULL;
	}
}

/*
 * pgs_send: sends one statement (the extended protocol, nparams text
 * parameters, NULL for SQL NULL) and returns without waiting for it, so that
 * statements on several connections can run at once (pgshift compare).
 * pgs_wait_any says when its result is there, pgs_get_result takes it.
 * False, with *err set, if it could not be sent.  Neither ticks nor cancels
 * on an interrupt: the caller, which waits, decides (pgs_cancel).
 */
bool
pgs_send(PGconn *conn, const char *sql, int nparams,
		 const char *const *values, PgsError *err)
{
	if (PQsendQueryParams(conn, sql, nparams, NULL, values, NULL, NULL, 0))
		return true;
	pgs_error_from_result(conn, NULL, sql, err);
	return false;
}

/*
 * pgs_wait_any: waits at most timeout_ms for one of the n (at most
 * PGS_WAIT_MAX) connections that have a statement in flight (conns[i] not
 * NULL) to have its result ready, or to have lost its connection (then
 * pgs_get_result says so).  Returns that connection's index, or -1 if none
 * did in time, none has a statement in flight, or a signal came.
 */
int
pgs_wait_any(PGconn *const *conns, int n, int timeout_ms)
{
	struct pollfd pfd[PGS_WAIT_MAX];
	int			npfd = 0;
	int			i;

	for (i = 0; i < n && i < PGS_WAIT_MAX; i++)
	{
		if (conns[i] == NULL)
			continue;
		if (!PQconsumeInput(conns[i]) || !PQisBusy(conns[i]))
			return i;
		pfd[npfd].fd = PQsocket(conns[i]);
		pfd[npfd].events = POLLIN;
		pfd[npfd].revents = 0;
		npfd++;
	}
	if (npfd == 0 || poll(pfd, npfd, timeout_ms) <= 0)
		return -1;
	for (i = 0; i < n && i < PGS_WAIT_MAX; i++)
		if (conns[i] != NULL &&
			(!PQconsumeInput(conns[i]) || !PQisBusy(conns[i])))
			return i;
	return -1;
}

/*
 * pgs_get_result: the result of the statement pgs_send sent on conn, once
 * pgs_wait_any said it is ready (before that, it waits): the result to
 * PQclear(), or NULL with *err set to the statement's first error (or to
 * libpq's reason when the connection was lost).
 */
PGresult *
pgs_get_result(PGconn *conn, const char *sql, PgsError *err)
{
	PGresult   *res;
	PGresult   *last = NULL;
	bool		failed = false;

	while ((res = PQgetResult(conn)) != NULL)
	{
		ExecStatusType st = PQresultStatus(res);

		if (!failed && (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK))
		{
			PQclear(last);
			last = res;
			continue;
		}
		if (!failed)
			pgs_error_from_result(conn, res, sql, err);
		failed = true;
		PQclear(res);
	}
	if (failed)
	{
		PQclear(last);
		return NULL;
	}
	if (last == NULL)
		pgs_error_from_result(conn, NULL, sql, err);
	return last;
}

/*
 * pgs_exec_unchecked: runs sql (one statement, no parameters) whose outcome
 * changes nothing that follows: a ROLLBACK of a transaction a phase left
 * open, a session setting.  Unlike pgs_exec it also runs on the work
 * connection after an interrupt (that ROLLBACK must go through), and it
 * neither ticks nor can be cancelled, so use it only for statements that
 * take no time.  Returns whether it succeeded.
 */
bool
pgs_exec_unchecked(PGconn *conn, const char *sql)
{
	PGresult   *res = PQexec(conn, sql);
	ExecStatusType status = PQresultStatus(res);

	PQclear(res);
	return status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK;
}

/*
 * Server notices (warnings: see pgs_connect) go to stderr on a line of their
 * own, never into the middle of the live progress line.
 */
static void
notice_receiver(void *arg, const PGresult *res)
{
	pgs_print_notice(PQresultErrorField(res, PG_DIAG_SEVERITY),
					 PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));
}

/*
 * pgs_connect: opens a connection from a conninfo string or URI (NULL: the
 * libpq environment, PGHOST, PGDATABASE, ...), named appname unless the
 * connection string names it, in UTF8 whatever the database's encoding (so
 * --json output is UTF-8) but for SQL_ASCII (see below), reporting warnings
 * but not notices.  On failure returns NULL with *err set to libpq's reason
 * and SQLSTATE 08001.
 */
PGconn *
pgs_connect(const char *dsn, const char *appname, PgsError *err)
{
	const char *keys[] = {"dbname", "fallback_application_name", "client_encoding", NULL};
	const char *vals[] = {dsn, appname, "UTF8", NULL};
	PGconn	   *conn;
	const char *server_encoding;

	conn = PQconnectdbParams(keys, vals, 1);
	if (conn == NULL)
	{
		pgs_error_set(err, "08001", "could not connect: out of memory");
		return NULL;
	}
	if (PQstatus(conn) != CONNECTION_OK)
	{
		pgs_error_set(err, "08001", "could not connect to the database: %s",
					  PQerrorMessage(conn));
		PQfinish(conn);
		return NULL;
	}
	/*
	 * A SQL_ASCII database's text is bytes in no known encoding: the server
	 * refuses to send what is not valid UTF-8 to a UTF8 client, so there the
	 * bytes come as they are (the output filter escapes what is not UTF-8).
	 */
	server_encoding = PQparameterStatus(conn, "server_encoding");
	if (server_encoding != NULL && strcmp(server_encoding, "SQL_ASCII") == 0 &&
		PQsetClientEncoding(conn, "SQL_ASCII") != 0)
	{
		pgs_error_set(err, "08001", "could not set client_encoding to SQL_ASCII: %s",
					  PQerrorMessage(conn));
		PQfinish(conn);
		return NULL;
	}
	/*
	 * NOTICEs ("... does not exist, skipping") are noise in a migration's
	 * output; warnings and errors are not.  A phase may SET it lower.
	 */
	PQsetNoticeReceiver(conn, notice_receiver, NULL);
	pgs_exec_unchecked(conn, "SET client_min_messages = warning");
	return conn;
}

/*
 * pgs_conninfo_pair: "key='value'", malloc'd (NULL when out of memory), as
 * libpq's conninfo parser reads it back: a quote or a backslash in value is
 * escaped with a backslash, so that nothing in it ends the value and adds a
 * keyword.  The runner's one quoting of connection-string values.
 */
char *
pgs_conninfo_pair(const char *key, const char *value)
{
	size_t		klen = strlen(key);
	char	   *out = malloc(klen + 2 * strlen(value) + sizeof("=''"));
	char	   *p = out;

	if (out == NULL)
		return NULL;
	memcpy(p, key, klen);
	p += klen;
	*p++ = '=';
	*p++ = '\'';
	for (; *value; value++)
	{
		if (*value == '\'' || *value == '\\')
			*p++ = '\\';
		*p++ = *value;
	}
	*p++ = '\'';
	*p = '\0';
	return out;
}

/*
 * pgs_conn_server: "host:port" of conn into buf ("localhost" for libpq's
 * default host), for messages: never more of the connection string.
 */
void
pgs_conn_server(PGconn *conn, char *buf, size_t size)
{
	const char *host = PQhost(conn);

	snprintf(buf, size, "%s:%s", host && *host ? host : "localhost", PQport(conn));
}

/* "database "x" on /tmp:5432 as user y", malloc'd, for messages. */
char *
pgs_conn_describe(PGconn *conn)
{
	char		server[512];
	char		buf[1024];

	pgs_conn_server(conn, server, sizeof(server));
	snprintf(buf, sizeof(buf), "database \"%s\" on %s as user \"%s\"",
			 PQdb(conn), server, PQuser(conn));
	return strdup(buf);
}

static void
set_hint(PgsError *err, const char *fmt,...) __attribute__((format(printf, 2, 3)));

static void
set_hint(PgsError *err, const char *fmt,...)
{
	va_list		ap;
	char		buf[1024];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	free(err->hint);
	err->hint = strdup(buf);
}

/*
 * pgs_check_extension: checks that pg_shift is installed in the connected
 * database at exactly this runner's version, and that the library the server
 * loaded is that version too.  Returns PGS_EXIT_OK, or PGS_EXIT_USAGE with
 * *err explaining what to do.
 */
int
pgs_check_extension(PGconn *conn, PgsError *err)
{
	PGresult   *res;
	char	   *extversion;

	res = pgs_exec(conn,
				   "SELECT extversion FROM pg_catalog.pg_extension"
				   " WHERE extname = 'pg_shift'", 0, NULL, err);
	if (res == NULL)
		return PGS_EXIT_USAGE;
	if (PQntuples(res) == 0)
	{
		PQclear(res);
		pgs_error_set(err, NULL,
					  "extension pg_shift is not installed in database \"%s\"",
					  PQdb(conn));
		set_hint(err, "Run CREATE EXTENSION pg_shift; in database \"%s\" as a "
				 "role allowed to create extensions (this pgshift needs "
				 "version %s).", PQdb(conn), PGS_VERSION);
		return PGS_EXIT_USAGE;
	}
	extversion = strdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	if (extversion == NULL)
	{
		pgs_error_set(err, NULL, "out of memory");
		return PGS_EXIT_USAGE;
	}

	if (strcmp(extversion, PGS_VERSION) != 0)
	{
		pgs_error_set(err, NULL,
					  "extension pg_shift in database \"%s\" is version %s, "
					  "but this pgshift is version %s",
					  PQdb(conn), extversion, PGS_VERSION);
		set_hint(err, "Run ALTER EXTENSION pg_shift UPDATE TO '%s'; after "
				 "installing pg_shift %s on the server, or use pgshift %s.",
				 PGS_VERSION, PGS_VERSION, extversion);
		free(extversion);
		return PGS_EXIT_USAGE;
	}

	res = pgs_exec(conn, "SELECT shift.version()", 0, NULL, err);
	if (res == NULL)
	{
		free(extversion);
		return PGS_EXIT_USAGE;
	}
	if (strcmp(PQgetvalue(res, 0, 0), extversion) != 0)
	{
		pgs_error_set(err, NULL,
					  "the server loaded pg_shift library version %s, but "
					  "extension pg_shift in database \"%s\" is version %s",
					  PQgetvalue(res, 0, 0), PQdb(conn), extversion);
		set_hint(err, "Install pg_shift %s on the server and start a new "
				 "session (or restart the server).", extversion);
		PQclear(res);
		free(extversion);
		return PGS_EXIT_USAGE;
	}
	PQclear(res);
	free(extversion);
	return PGS_EXIT_OK;
}
