/*
 * lock.c
 *	  The migration's lock: a session-level advisory lock (shift.try_lock)
 *	  that the work connection of the runner working on a migration holds,
 *	  so that "the lock is held" means "the session doing the changes is
 *	  alive".  It is polled, never awaited in a blocking call (a session
 *	  blocked in pg_advisory_lock would hold a snapshot that makes CREATE
 *	  INDEX CONCURRENTLY in the other runner wait for it).  When it cannot be
 *	  had, this file says who holds it and what to do.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgshift.h"

static double
now_ms(void)
{
	return pgs_monotonic_seconds() * 1000.0;
}

/* One try at the migration's lock; -1 on an error (printed). */
static int
try_lock_once(PGconn *work, const char *name)
{
	const char *p[1] = {name};
	PgsError	err;
	PGresult   *res;
	int			got;

	memset(&err, 0, sizeof(err));
	res = pgs_exec(work, "SELECT shift.try_lock($1)", 1, p, &err);
	if (res == NULL)
	{
		pgs_report_error(&err, "while taking the migration's lock");
		pgs_error_clear(&err);
		return -1;
	}
	got = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	return got;
}

/* Polls for the lock until deadline (ms); 1 got it, 0 not, -1 error. */
static int
poll_lock(PGconn *work, const char *name, double deadline)
{
	for (;;)
	{
		int			got = try_lock_once(work, name);

		if (got != 0)
			return got;
		if (now_ms() >= deadline || pgs_interrupted)
			return 0;
		usleep(100000);
	}
}

/*
 * Says who holds the lock (res: a row of the query in pgs_take_lock), what
 * that session is doing, and what to do: wait for a live pgshift; end the
 * session only when it is no pgshift's.
 */
static void
print_holder(PGresult *res, const char *name, bool lease_is_holder)
{
	bool		holder_is_pgshift = strncmp(PQgetvalue(res, 0, 1), "pgshift", 7) == 0;

	if (lease_is_holder)
		pgs_errorf("migration %s is locked by pgshift pid %s on host %s (session pid %s)\n",
				   name, PQgetvalue(res, 0, 5), PQgetvalue(res, 0, 4), PQgetvalue(res, 0, 0));
	else if (holder_is_pgshift)
		pgs_errorf("migration %s is locked by another pgshift that is starting on it (session pid %s)\n",
				   name, PQgetvalue(res, 0, 0));
	else
		pgs_errorf("migration %s is locked by a session that is not pgshift (session pid %s, %s)\n",
				   name, PQgetvalue(res, 0, 0),
				   *PQgetvalue(res, 0, 1) ? PQgetvalue(res, 0, 1) : "no application name");
	if (lease_is_holder && !PQgetisnull(res, 0, 6))
		fprintf(stderr, "  running since %s, last heartbeat %s s ago\n",
				PQgetvalue(res, 0, 6), PQgetvalue(res, 0, 7));
	fprintf(stderr, "  that session is %s: %s\n", PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3));
	if (lease_is_holder || holder_is_pgshift)
		fprintf(stderr, "  hint: another pgshift is working on this migration: wait for it "
				"(--lock-wait=SECONDS) or stop that runner (Ctrl-C); it resumes where it stopped.\n");
	else
		fprintf(stderr, "  hint: wait for it (--lock-wait=SECONDS), or end that session "
				"(SELECT pg_terminate_backend(%s);) if it is not doing anything you need.\n",
				PQgetvalue(res, 0, 0));
}

/*
 * pgs_take_lock: takes the migration's lock on the work connection, polling
 * up to lock_wait seconds (--lock-wait).  A lock held by the session of a
 * runner that is gone (its lease names this host and a pgshift process that
 * no longer exists: killed, and its backend has not noticed yet) is taken
 * over at once: that session is ended (on the control connection), and the
 * lock awaited a few seconds.  Otherwise says who holds it (print_holder).
 */
bool
pgs_take_lock(lua_State *L, PGconn *work, PGconn *ctl, const char *name,
			  double lock_wait)
{
	const char *p[1] = {name};
	PgsError	err;
	PGresult   *res;
	char		host[256];
	int			got;
	bool		lease_is_holder;
	bool		runner_gone;

	got = poll_lock(work, name, now_ms() + lock_wait * 1000.0);
	if (got != 0)
		return got > 0;

	if (gethostname(host, sizeof(host)) != 0)
		strcpy(host, "?");
	host[sizeof(host) - 1] = '\0';
	memset(&err, 0, sizeof(err));
	res = pgs_exec(ctl, "SELECT h.pid, coalesce(h.application_name, ''), "
				 "coalesce(h.state, '?'), coalesce(left(h.query, 200), ''), "
				 "h.lease_host, h.lease_runner_pid, "
				 "to_char(h.lease_since, 'YYYY-MM-DD HH24:MI:SS'), "
				 "extract(epoch FROM h.heartbeat_age)::int, "
				 "l.work_pid IS NOT DISTINCT FROM h.pid "
				 "FROM shift.lock_holder($1) h LEFT JOIN shift.lease l ON l.migration = $1",
				 1, p, &err);
	if (res == NULL)
	{
		pgs_report_error(&err, PGS_CONTROL_CONTEXT);
		pgs_error_clear(&err);
		return false;
	}
	if (PQntuples(res) == 0)
	{
		/* released between the two looks: try once more */
		PQclear(res);
		got = poll_lock(work, name, now_ms() + 2000.0);
		if (got != 0)
			return got > 0;
		pgs_errorf("migration %s is locked by another session, which released it and took it again\n",
				   name);
		return false;
	}
	lease_is_holder = strcmp(PQgetvalue(res, 0, 8), "t") == 0;
	runner_gone = lease_is_holder && !PQgetisnull(res, 0, 4) && !PQgetisnull(res, 0, 5) &&
		strcmp(PQgetvalue(res, 0, 4), host) == 0 &&
		kill((pid_t) atoi(PQgetvalue(res, 0, 5)), 0) != 0 && errno == ESRCH;
	if (runner_gone)
	{
		const char *t[1] = {PQgetvalue(res, 0, 0)};
		PGresult   *r2;

		/*
		 * Its backend ends within client_connection_check_interval when idle;
		 * end it now.  A role that may not signal it (another role's) just
		 * waits the few seconds below.
		 */
		memset(&err, 0, sizeof(err));
		r2 = pgs_exec(ctl, "SELECT pg_catalog.pg_terminate_backend($1::int4, 5000)", 1, t, &err);
		PQclear(r2);
		pgs_error_clear(&err);
		got = poll_lock(work, name, now_ms() + 5000.0);
		if (got > 0)
		{
			pgs_emit(L, "note", "message", 's',
					 "the runner that held this migration is gone: its session was ended and the lock taken over",
					 NULL);
			PQclear(res);
			return true;
		}
	}
	print_holder(res, name, lease_is_holder);
	PQclear(res);
	return false;
}

