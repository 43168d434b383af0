/*
 * engine.c
 *	  The phase engine: pgshift run, rollback and verify.
 *
 * A session uses two connections to the same database.  The work connection
 * is the `db` the phases get; it holds the migration's advisory lock
 * (shift.try_lock, polled, never a blocking wait), so "the lock is held"
 * means "the session doing the changes is alive".  The control connection
 * records every step through the shift.* state functions, so a failure on
 * the work connection (even its loss) can still be recorded, and it sends a
 * heartbeat while long statements run.
 *
 * Every Lua call is protected; the whole command runs inside one protected C
 * function, and both connections are owned by db objects, so lua_close()
 * closes them whatever happened.
 */
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>

#include "pgshift.h"

typedef enum Operation
{
	OP_RUN,
	OP_ROLLBACK,
	OP_VERIFY
} Operation;

static const char *const op_names[] = {"run", "rollback", "verify"};

/* A phase's state as recorded in shift.phase. */
typedef struct PhaseState
{
	char		status[16];
	bool		needs_cleanup;
} PhaseState;

typedef struct Session
{
	const PgsOptions *opts;
	const char *path;
	Operation	op;
	int			rc;				/* the exit code */

	lua_State  *L;
	int			mig;			/* stack index: the migration table */
	int			workdb;			/* stack index: the db the phases get */
	int			ctldb;			/* stack index: the control connection's db */
	PGconn	   *work;
	PGconn	   *ctl;
	const char *name;			/* the migration's name (on the Lua stack) */
	int			nphases;
	PhaseState *state;			/* nphases entries, in a userdata */
	bool		leased;
	char		sha256[65];
	char		host[256];
	char		work_pid[16];

	/* the phase running now, for the live line and events */
	const char *cur_phase;
	int			cur_ordinal;
	double		cur_started;
	double		last_heartbeat;
	int64_t		extra_rows;		/* written by backfills on the phase's behalf */

	/* the backfill job running now (db:backfill), for its progress */
	char		watch_job[128];
	double		watch_next_line;
} Session;

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

/* ---- bookkeeping on the control connection ---- */

/*
 * Runs a bookkeeping statement on the control connection.  On failure prints
 * it and returns NULL (the caller stops: without bookkeeping nothing can go
 * on safely).
 */
static PGresult *
record(Session *s, const char *sql, int nparams, const char *const *params)
{
	PgsError	err;
	PGresult   *res;

	memset(&err, 0, sizeof(err));
	res = pgs_exec(s->ctl, sql, nparams, params, &err);
	if (res == NULL)
	{
		pgs_report_error(&err, PGS_CONTROL_CONTEXT);
		pgs_error_clear(&err);
	}
	return res;
}

static bool
record_ok(Session *s, const char *sql, int nparams, const char *const *params)
{
	PGresult   *res = record(s, sql, nparams, params);

	PQclear(res);
	return res != NULL;
}

/* C.event: events a phase reports (db:ddl retries). */
static bool
hook_event(void *arg, const char *kind, const char *message, const char *sqlstate)
{
	Session    *s = arg;
	const char *p[5] = {s->name, s->cur_phase, kind, message, sqlstate};

	return record_ok(s, "SELECT shift.log_event($1, $2, $3, $4, $5)", 5, p);
}

/* C.current: the running migration and phase. */
static const char *
hook_current(void *arg, const char **phase)
{
	Session    *s = arg;

	*phase = s->cur_phase;
	return s->name;
}

/*
 * C.backfill_watch: a backfill starts (job) or ends (NULL) in the running
 * phase: its progress is shown while it runs.
 */
static bool
hook_watch(void *arg, const char *job)
{
	Session    *s = arg;

	if (job)
	{
		snprintf(s->watch_job, sizeof(s->watch_job), "%s", job);
		s->watch_next_line = now_ms() + 10000;
	}
	else
	{
		s->watch_job[0] = '\0';
		pgs_live_clear();
	}
	return true;
}

static void
hook_add_rows(void *arg, int64_t rows)
{
	((Session *) arg)->extra_rows += rows;
}

/*
 * The progress of the backfill job the phase runs (db:backfill): a live bar
 * on a terminal, a line every 10 seconds otherwise (or a JSON event).
 */
static void
show_backfill_progress(Session *s, double t)
{
	const char *p[1] = {s->watch_job};
	PgsError	err;
	PGresult   *res;
	bool		tty = !s->opts->json && isatty(STDOUT_FILENO);
	PgsBackfillProgress bp;

	if (!tty && t < s->watch_next_line)
		return;
	memset(&err, 0, sizeof(err));
	res = pgs_exec(s->ctl, "SELECT rows_done, keys_done, coalesce(estimated_total, 0),"
				   " coalesce(percent, 0), coalesce(rate, 0),"
				   " coalesce(extract(epoch FROM eta)::int8, -1), coalesce(throttled, '')"
				   " FROM shift.backfill_progress WHERE name = $1", 1, p, &err);
	pgs_error_clear(&err);
	if (res == NULL || PQntuples(res) == 0)
	{
		PQclear(res);
		return;
	}
	bp.rows = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	bp.keys = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	bp.total = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
	bp.percent = strtod(PQgetvalue(res, 0, 3), NULL);
	bp.rate = strtod(PQgetvalue(res, 0, 4), NULL);
	bp.eta = strtoll(PQgetvalue(res, 0, 5), NULL, 10);
	bp.waiting = PQgetvalue(res, 0, 6);
	if (tty)
	{
		if (!s->opts->quiet)
			pgs_live_backfill(&bp);
	}
	else
	{
		pgs_emit(s->L, "progress", "job", 's', s->watch_job, "rows", 'i', bp.rows,
				 "keys", 'i', bp.keys, "total", 'i', bp.total, "percent", 'd', bp.percent,
				 "rate", 'd', bp.rate, "eta_seconds", 'i', bp.eta,
				 "waiting", 's', *bp.waiting ? bp.waiting : NULL, NULL);
		s->watch_next_line = t + 10000;
	}
	PQclear(res);
}

/* Once a second while a statement runs: the live line and the heartbeat. */
static void
tick(void *arg)
{
	Session    *s = arg;
	double		t = now_ms();

	if (s->watch_job[0])
		show_backfill_progress(s, t);
	else if (s->cur_phase && !s->opts->quiet && !s->opts->json && isatty(STDOUT_FILENO))
		pgs_live_elapsed(s->cur_phase, (int) ((t - s->cur_started) / 1000));
	if (s->leased && t - s->last_heartbeat > 10000)
	{
		const char *p[1] = {s->name};
		PgsError	err;
		PGresult   *res;

		/* a missed heartbeat is not fatal: the lock, not the lease, guards */
		memset(&err, 0, sizeof(err));
		res = pgs_exec(s->ctl, "SELECT shift.heartbeat($1)", 1, p, &err);
		PQclear(res);
		pgs_error_clear(&err);
		s->last_heartbeat = t;
	}
}

/* ---- phases ---- */

/* Pushes phase i's table (1-based) and returns its name. */
static const char *
push_phase(Session *s, int i)
{
	const char *name;

	lua_getfield(s->L, s->mig, "phases");
	lua_geti(s->L, -1, i);
	lua_remove(s->L, -2);
	lua_getfield(s->L, -1, "name");
	name = lua_tostring(s->L, -1);
	lua_pop(s->L, 1);			/* the phase table keeps the string alive */
	return name;
}

static bool
phase_has(Session *s, int phase, const char *fn)
{
	bool		yes = lua_getfield(s->L, phase, fn) == LUA_TFUNCTION;

	lua_pop(s->L, 1);
	return yes;
}

/* Rolls back a transaction the work session left open; true if there was one. */
static bool
rollback_open_transaction(Session *s)
{
	PGTransactionStatusType ts = PQtransactionStatus(s->work);

	if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR)
	{
		pgs_exec_unchecked(s->work, "ROLLBACK");
		return true;
	}
	return false;
}

/*
 * Was the step that just failed interrupted rather than failing on its own?
 * Interrupted: a signal to the runner (Ctrl-C, SIGTERM), the work session
 * lost (terminated by pg_terminate_backend, the server shut down or
 * crashed, the network cut).  Everything else, the step's own SQL or Lua
 * error, is a failure.  An interrupted phase is resumed by the next run,
 * never undone by its down first (README: "Interrupted or failed").
 */
static bool
step_interrupted(Session *s, const char *sqlstate)
{
	if (pgs_interrupted || PQstatus(s->work) != CONNECTION_OK)
		return true;
	if (sqlstate == NULL)
		return false;
	/* query_canceled: pg_cancel_backend, or an operator's pause of a backfill
	 * (db:backfill); not the phase's own statement_timeout */
	if (strcmp(sqlstate, "57014") == 0)
		return strstr(pgs_failure_message(s->L, -1, NULL), "statement timeout") == NULL;
	return strcmp(sqlstate, "57P01") == 0 ||	/* admin_shutdown: pg_terminate_backend */
		strcmp(sqlstate, "57P02") == 0 ||	/* crash_shutdown */
		strcmp(sqlstate, "57P03") == 0 ||	/* cannot_connect_now */
		strncmp(sqlstate, "08", 2) == 0;	/* connection_exception */
}

/*
 * Calls fn ("up", "down", "verify") of the phase table at index phase with
 * the work db.  Returns true, or false with a failure table pushed.  A
 * transaction the function left open is rolled back and is a failure.
 */
/*
 * The phase's code went on INTERRUPT_GRACE_SECONDS after an interrupt (it
 * catches the error the interrupt raises, in a loop): record the phase as
 * interrupted, release the lease, and end pgshift, so that the bookkeeping
 * never says "running" for a runner that is gone.  Called from the stop hook.
 */
static void
give_up_on_phase(void *arg)
{
	Session    *s = arg;
	const char *msg = "interrupted: the phase's code went on after the interrupt, and pgshift stopped it";
	const char *f[5] = {s->name, s->cur_phase, msg, "57014", "true"};
	const char *m[1] = {s->name};

	fprintf(stderr, "pgshift: the phase's code did not stop after the interrupt; "
			"recording it as interrupted and ending\n");
	if (s->cur_phase && s->op == OP_RUN)
		record_ok(s, "SELECT shift.phase_failed($1, $2, $3, $4, $5)", 5, f);
	else if (s->cur_phase && s->op == OP_ROLLBACK)
		record_ok(s, "SELECT shift.phase_rollback_failed($1, $2, $3, $4, $5)", 5, f);
	if (s->leased)
		record_ok(s, "SELECT shift.migration_end($1)", 1, m);
	fflush(stdout);
	_exit(PGS_EXIT_FAIL);
}

static bool
call_phase(Session *s, int phase, const char *fn)
{
	lua_State  *L = s->L;
	int			rc;

	lua_getfield(L, phase, fn);
	lua_pushvalue(L, s->workdb);
	pgs_phase_code(L, true, give_up_on_phase, s);
	rc = pgs_pcall(L, 1, 0);
	pgs_phase_code(L, false, NULL, NULL);
	if (rc != LUA_OK)
	{
		rollback_open_transaction(s);
		return false;
	}
	if (rollback_open_transaction(s))
	{
		pgs_push_failure(L, "%s: the phase's %s left a transaction open "
						 "(BEGIN without COMMIT); pgshift rolled it back",
						 s->path, fn);
		return false;
	}
	if (PQtransactionStatus(s->work) == PQTRANS_UNKNOWN)
	{
		pgs_push_failure(L, "the connection to the database was lost during the phase's %s", fn);
		return false;
	}
	return true;
}

/* Prints the failure on the stack top with the phase as context. */
static void
print_phase_failure(Session *s, int ordinal, const char *phase, const char *step)
{
	lua_State  *L = s->L;
	const char *ctx;
	const char *sqlstate;
	const char *msg = pgs_failure_message(L, -1, &sqlstate);

	ctx = lua_pushfstring(L, "in the %s of phase '%s' (%d of %d) of migration '%s'",
						  step, phase, ordinal, s->nphases, s->name);
	pgs_print_failure(L, -2, stderr, ctx, s->opts->verbose);
	lua_pop(L, 1);
	pgs_emit(L, "error", "migration", 's', s->name, "phase", 's', phase,
			 "step", 's', step, "message", 's', msg, "sqlstate", 's', sqlstate, NULL);
}

static void
emit_phase(Session *s, const char *event, int i, const char *phase,
		   const char *step, double t0, int64_t rows)
{
	if (t0 > 0)
		pgs_emit(s->L, event, "migration", 's', s->name, "phase", 's', phase,
				 "ordinal", 'i', (long long) i, "phases", 'i', (long long) s->nphases,
				 "step", 's', step, "ms", 'd', now_ms() - t0,
				 "rows", 'i', (long long) rows, NULL);
	else
		pgs_emit(s->L, event, "migration", 's', s->name, "phase", 's', phase,
				 "ordinal", 'i', (long long) i, "phases", 'i', (long long) s->nphases,
				 "step", 's', step, NULL);
}

static void
begin_step(Session *s, int i, const char *phase, const char *step)
{
	s->cur_phase = phase;
	s->cur_ordinal = i;
	s->cur_started = now_ms();
	emit_phase(s, "phase_start", i, phase, step, 0, 0);
	pgs_db_take_rows(s->L, s->workdb);
	s->extra_rows = 0;
	s->watch_job[0] = '\0';	/* an interrupted backfill's watch ends here */
}

/* Rows the step wrote: its db:exec writes and its backfills. */
static int64_t
take_rows(Session *s)
{
	int64_t		n = pgs_db_take_rows(s->L, s->workdb) + s->extra_rows;

	s->extra_rows = 0;
	return n;
}

/*
 * Runs the down of phase i after its up failed or was interrupted, and
 * records the outcome.  Returns true when the phase is clean again.
 */
static bool
clean_up(Session *s, int phase, int i, const char *name, const char *step)
{
	const char *p[2] = {s->name, name};
	double		t0;

	begin_step(s, i, name, step);
	t0 = now_ms();
	if (!call_phase(s, phase, "down"))
	{
		const char *sqlstate;
		const char *msg = pgs_failure_message(s->L, -1, &sqlstate);
		const char *ev[5] = {s->name, name, "cleanup_failed", msg, sqlstate};

		print_phase_failure(s, i, name, "down");
		record_ok(s, "SELECT shift.log_event($1, $2, $3, $4, $5)", 5, ev);
		lua_pop(s->L, 1);		/* the failure: ev borrowed its strings */
		fprintf(stderr, "the down of phase '%s' failed too: the phase may be half applied.\n"
				"Fix the cause, then run again (its down runs first) or roll back.\n", name);
		return false;
	}
	emit_phase(s, "phase_done", i, name, "down", t0, take_rows(s));
	s->cur_phase = NULL;
	if (!record_ok(s, "SELECT shift.phase_cleaned($1, $2)", 2, p))
		return false;
	s->state[i - 1].needs_cleanup = false;
	return true;
}

/*
 * The up (or the verify gate) of phase i, on the stack at index phase, did
 * not finish: the failure is on the stack top.  Interrupted, the phase is
 * recorded as such and the run stops, to be resumed; failed on its own, it
 * is recorded (a refused verify gate as verify_failed too) and its down runs
 * at once.  Returns false (the run stops) in every case but a failure whose
 * down ran; s->rc is set.
 */
static bool
phase_stopped(Session *s, int phase, int i, const char *name, const char *step)
{
	lua_State  *L = s->L;
	const char *sqlstate;
	const char *msg = pgs_failure_message(L, -1, &sqlstate);
	bool		interrupted = step_interrupted(s, sqlstate);
	const char *f[5] = {s->name, name, msg,
		interrupted && !sqlstate ? "57014" : sqlstate,
	interrupted ? "true" : "false"};
	bool		connected = PQstatus(s->work) == CONNECTION_OK;

	s->cur_phase = NULL;
	s->rc = PGS_EXIT_FAIL;
	print_phase_failure(s, i, name, step);
	if (!interrupted && strcmp(step, "verify") == 0)
	{
		const char *ev[5] = {s->name, name, "verify_failed", msg, sqlstate};

		if (!record_ok(s, "SELECT shift.log_event($1, $2, $3, $4, $5)", 5, ev))
			return false;
	}
	if (!record_ok(s, "SELECT shift.phase_failed($1, $2, $3, $4, $5)", 5, f))
		return false;
	lua_pop(L, 1);				/* the failure: f borrowed its strings */
	s->state[i - 1].needs_cleanup = phase_has(s, phase, "down");
	strcpy(s->state[i - 1].status, interrupted ? "interrupted" : "failed");
	if (interrupted)
	{
		fprintf(stderr, "migration %s was interrupted in phase %d/%d '%s'; nothing is undone.\n"
				"Run again to resume: the phase runs again from where it stopped "
				"(a backfill from its checkpoint), without its down.\n"
				"To undo it instead: pgshift rollback %s\n",
				s->name, i, s->nphases, name, s->path);
		return false;
	}
	if (phase_has(s, phase, "down") && connected)
	{
		if (!clean_up(s, phase, i, name, "down"))
			return false;
		fprintf(stderr, "phase '%s' was undone by its down; phases before it stay done.\n", name);
	}
	else if (phase_has(s, phase, "down"))
		fprintf(stderr, "the phase's down could not run (the connection is lost); "
				"it runs before the phase is tried again.\n");
	else
		fprintf(stderr, "phase '%s' has no down: what it committed before failing stays.\n",
				name);
	fprintf(stderr, "To retry after fixing the cause: pgshift run %s\n"
			"To undo the completed phases:    pgshift rollback %s\n",
			s->path, s->path);
	return false;
}

/* pgshift run: pending phases in order, each with its verify gate. */
static void
run_phases(Session *s)
{
	lua_State  *L = s->L;
	const char *to = s->opts->to;
	int			i;

	for (i = 1; i <= s->nphases; i++)
	{
		int			phase;
		const char *name = push_phase(s, i);
		const char *p[3] = {s->name, name, NULL};
		double		t0;
		int64_t		rows;
		char		rowbuf[32];
		const char *step;
		bool		ok;

		phase = lua_gettop(L);
		if (strcmp(s->state[i - 1].status, "done") == 0)
		{
			pgs_emit(L, "phase_skip", "migration", 's', s->name, "phase", 's', name,
					 "ordinal", 'i', (long long) i, "phases", 'i', (long long) s->nphases,
					 "reason", 's', "already done", NULL);
		}
		else
		{
			if (pgs_interrupted)
			{
				fprintf(stderr, "migration %s interrupted before phase %d/%d '%s'; "
						"run again to resume.\n", s->name, i, s->nphases, name);
				s->rc = PGS_EXIT_FAIL;
				return;
			}
			/* a failed attempt whose down failed too: undo what it left first */
			if (strcmp(s->state[i - 1].status, "failed") == 0 &&
				s->state[i - 1].needs_cleanup && phase_has(s, phase, "down") &&
				!clean_up(s, phase, i, name, "cleanup"))
			{
				s->rc = PGS_EXIT_FAIL;
				return;
			}
			if (!record_ok(s, "SELECT shift.phase_start($1, $2)", 2, p))
			{
				s->rc = PGS_EXIT_FAIL;
				return;
			}
			begin_step(s, i, name, "up");
			t0 = now_ms();
			step = "up";
			ok = call_phase(s, phase, "up");
			if (ok && phase_has(s, phase, "verify"))
			{
				step = "verify";
				ok = call_phase(s, phase, "verify");
			}
			if (ok)
			{
				rows = take_rows(s);
				snprintf(rowbuf, sizeof(rowbuf), "%lld", (long long) rows);
				p[2] = rowbuf;
				s->cur_phase = NULL;
				if (!record_ok(s, "SELECT shift.phase_done($1, $2, $3)", 3, p))
				{
					s->rc = PGS_EXIT_FAIL;
					return;
				}
				emit_phase(s, "phase_done", i, name, "up", t0, rows);
				strcpy(s->state[i - 1].status, "done");
			}
			else if (!phase_stopped(s, phase, i, name, step))
				return;
		}
		lua_settop(L, phase - 1);
		if (to && strcmp(name, to) == 0)
			break;
	}
}

/* Has the phase something to roll back: done, or failed and not clean? */
static bool
needs_rollback(const PhaseState *st)
{
	return strcmp(st->status, "done") == 0 || strcmp(st->status, "interrupted") == 0 ||
		(strcmp(st->status, "failed") == 0 && st->needs_cleanup);
}

/* The ordinal of --to's phase (phases at or before it stay), 0 without --to. */
static int
rollback_stop(Session *s)
{
	int			stop = 0;
	int			i;

	if (s->opts->to)
		for (i = 1; i <= s->nphases; i++)
		{
			if (strcmp(push_phase(s, i), s->opts->to) == 0)
				stop = i;
			lua_pop(s->L, 1);
		}
	return stop;
}

/*
 * Would rolling back the phases after stop cross a point of no return, given
 * their states?  Says so (and which phase) and returns true; else false, with
 * *count the phases there are to roll back.
 */
static bool
rollback_refused(Session *s, const PhaseState *states, int stop, int *count)
{
	lua_State  *L = s->L;
	int			i;

	*count = 0;
	for (i = s->nphases; i > stop; i--)
	{
		const PhaseState *st = &states[i - 1];
		const char *name = push_phase(s, i);
		bool		todo = needs_rollback(st);

		/* a failed phase without down left what it committed: no way past it */
		if (strcmp(st->status, "failed") == 0 && !phase_has(s, lua_gettop(L), "down"))
			todo = true;
		if (todo && !phase_has(s, lua_gettop(L), "down"))
		{
			pgs_errorf("cannot roll back phase %d '%s' of migration %s: it has no down "
					   "(a point of no return)\n", i, name, s->name);
			fprintf(stderr, "  nothing was rolled back\n"
					"  hint: roll back only the phases after it: pgshift rollback %s --to %s\n",
					s->path, name);
			pgs_emit(L, "error", "migration", 's', s->name, "phase", 's', name,
					 "message", 's', "point of no return", NULL);
			lua_pop(L, 1);
			return true;
		}
		if (todo)
			(*count)++;
		lua_pop(L, 1);
	}
	return false;
}

/* pgshift rollback [--to PHASE]: downs of completed phases, last first. */
static void
rollback_phases(Session *s)
{
	lua_State  *L = s->L;
	int			stop = rollback_stop(s);	/* phases at or before this ordinal stay */
	int			i;
	int			count;

	/* refuse before touching anything if a point of no return is in the way */
	if (rollback_refused(s, s->state, stop, &count))
	{
		s->rc = PGS_EXIT_FAIL;
		return;
	}
	if (count == 0)
		pgs_emit(L, "note", "message", 's', "nothing to roll back", NULL);

	for (i = s->nphases; i > stop; i--)
	{
		PhaseState *st = &s->state[i - 1];
		const char *name;
		const char *p[5];
		int			phase;
		double		t0;

		if (!needs_rollback(st))
			continue;
		name = push_phase(s, i);
		if (pgs_interrupted)
		{
			fprintf(stderr, "rollback of migration %s interrupted before phase %d '%s'; "
					"run it again to go on.\n", s->name, i, name);
			s->rc = PGS_EXIT_FAIL;
			return;
		}
		phase = lua_gettop(L);
		p[0] = s->name;
		p[1] = name;
		if (!record_ok(s, "SELECT shift.phase_rollback_start($1, $2)", 2, p))
		{
			s->rc = PGS_EXIT_FAIL;
			return;
		}
		begin_step(s, i, name, "down");
		t0 = now_ms();
		if (call_phase(s, phase, "down"))
		{
			s->cur_phase = NULL;
			if (!record_ok(s, "SELECT shift.phase_rolled_back($1, $2)", 2, p))
			{
				s->rc = PGS_EXIT_FAIL;
				return;
			}
			emit_phase(s, "phase_done", i, name, "down", t0, take_rows(s));
			strcpy(st->status, "rolled_back");
			st->needs_cleanup = false;
		}
		else
		{
			const char *sqlstate;
			bool		interrupted;

			s->cur_phase = NULL;
			p[2] = pgs_failure_message(L, -1, &sqlstate);
			p[3] = sqlstate;
			interrupted = step_interrupted(s, sqlstate);
			p[4] = interrupted ? "true" : "false";
			print_phase_failure(s, i, name, "down");
			record_ok(s, "SELECT shift.phase_rollback_failed($1, $2, $3, $4, $5)", 5, p);
			lua_pop(L, 1);		/* the failure: p borrowed its strings */
			fprintf(stderr, "the rollback %s at phase %d '%s'; phases before it stay done.\n"
					"%s: pgshift rollback %s\n",
					interrupted ? "was interrupted" : "stopped", i, name,
					interrupted ? "Run it again to go on" : "Fix the cause and run the rollback again",
					s->path);
			s->rc = PGS_EXIT_FAIL;
			return;
		}
		lua_settop(L, phase - 1);
	}
}

/* pgshift verify: the verify gates of completed phases. */
static void
verify_phases(Session *s)
{
	lua_State  *L = s->L;
	int			i;
	int			ran = 0;

	for (i = 1; i <= s->nphases; i++)
	{
		const char *name = push_phase(s, i);
		int			phase = lua_gettop(L);
		const char *p[5] = {s->name, name, NULL, NULL, NULL};
		double		t0;

		if (strcmp(s->state[i - 1].status, "done") == 0 && phase_has(s, phase, "verify"))
		{
			ran++;
			begin_step(s, i, name, "verify");
			t0 = now_ms();
			if (call_phase(s, phase, "verify"))
			{
				s->cur_phase = NULL;
				p[2] = "verify_passed";
				emit_phase(s, "phase_done", i, name, "verify", t0, take_rows(s));
			}
			else
			{
				s->cur_phase = NULL;
				p[2] = "verify_failed";
				p[3] = pgs_failure_message(L, -1, &p[4]);
				print_phase_failure(s, i, name, "verify");
				s->rc = PGS_EXIT_FAIL;
			}
			if (!record_ok(s, "SELECT shift.log_event($1, $2, $3, $4, $5)", 5, p))
				s->rc = PGS_EXIT_FAIL;
		}
		lua_settop(L, phase - 1);
	}
	if (ran == 0)
		pgs_emit(L, "note", "message", 's', "no completed phase has a verify gate", NULL);
}

/* ---- the session ---- */

/*
 * Pushes the migration's phases as the JSON that shift.migration_begin
 * takes, written by the prelude's JSON writer; NULL (the failure pushed and
 * printed) if that fails.
 */
static const char *
push_phases_json(Session *s)
{
	pgs_push_prelude_function(s->L, "phases_json");
	lua_pushvalue(s->L, s->mig);
	if (pgs_pcall(s->L, 1, 1) != LUA_OK)
	{
		pgs_print_failure(s->L, -1, stderr, "internal error in pgshift", true);
		return NULL;
	}
	return lua_tostring(s->L, -1);
}

/* Phase states from res (columns status, needs_cleanup), n rows at most. */
static void
read_states(PGresult *res, PhaseState *states, int n)
{
	int			i;

	for (i = 0; i < n && i < PQntuples(res); i++)
	{
		snprintf(states[i].status, sizeof(states[i].status), "%s", PQgetvalue(res, i, 0));
		states[i].needs_cleanup = strcmp(PQgetvalue(res, i, 1), "t") == 0;
	}
}

/*
 * The session's first step: the validated migration (pushed, s->mig), its
 * name, phases and script hash, and --to checked against its phases.
 */
static bool
load_file(Session *s)
{
	lua_State  *L = s->L;
	bool		found = false;
	int			i;

	s->rc = pgs_load_migration(L, s->path, s->sha256);
	if (s->rc != PGS_EXIT_OK)
	{
		pgs_print_failure(L, -1, stderr, s->rc == PGS_EXIT_FAIL ?
						  "the migration file is not valid; nothing was run" : NULL,
						  s->opts->verbose);
		return false;
	}
	s->mig = lua_gettop(L);
	lua_getfield(L, s->mig, "name");
	s->name = lua_tostring(L, -1);	/* stays on the stack */
	lua_getfield(L, s->mig, "phases");
	s->nphases = (int) luaL_len(L, -1);
	lua_pop(L, 1);
	if (s->opts->to == NULL)
		return true;
	for (i = 1; i <= s->nphases && !found; i++)
	{
		found = strcmp(push_phase(s, i), s->opts->to) == 0;
		lua_pop(L, 1);
	}
	if (!found)
	{
		pgs_errorf("--to %s: migration %s has no phase of that name\n", s->opts->to, s->name);
		s->rc = PGS_EXIT_USAGE;
	}
	return found;
}

/*
 * The control connection (checks and bookkeeping): the extension at this
 * runner's version, and every privilege a migration needs.
 */
static bool
connect_control(Session *s)
{
	PgsError	err;
	PGresult   *res;

	if ((s->ctl = pgs_connect_db(s->L, s->opts->dsn, "pgshift control")) == NULL)
		return false;
	s->ctldb = lua_gettop(s->L);
	memset(&err, 0, sizeof(err));
	if (pgs_check_extension(s->ctl, &err) != PGS_EXIT_OK)
	{
		pgs_report_error(&err, NULL);
		pgs_error_clear(&err);
		return false;
	}
	/* the first few of what is missing: the grant gives them all at once */
	if ((res = record(s, "SELECT string_agg(m, ', ') FILTER (WHERE n <= 4)"
					  " || CASE WHEN count(*) > 4 THEN format(' and %s more', count(*) - 4) ELSE '' END,"
					  " current_user"
					  " FROM (SELECT m, row_number() OVER () AS n FROM shift.missing_privileges() m) x",
					  0, NULL)) == NULL)
		return false;
	if (!PQgetisnull(res, 0, 0))
	{
		pgs_errorf("role \"%s\" may not run migrations in database \"%s\"\n",
				   PQgetvalue(res, 0, 1), PQdb(s->ctl));
		fprintf(stderr, "  missing: %s\n  hint: GRANT shift_operator TO %s;\n",
				PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
		PQclear(res);
		return false;
	}
	PQclear(res);
	return true;
}

/*
 * The work connection, which runs the phases' SQL and holds the
 * migration's lock; says so when it takes over from a runner that is gone.
 */
static bool
connect_work(Session *s)
{
	lua_State  *L = s->L;
	const char *p[1] = {s->name};
	PGresult   *res;

	if ((s->work = pgs_connect_db(L, s->opts->dsn, "pgshift")) == NULL)
		return false;
	s->workdb = lua_gettop(L);
	pgs_db_pin(L, s->workdb);
	/* a backend whose runner vanished stops its statement (and frees the lock) */
	pgs_exec_unchecked(s->work, "SET client_connection_check_interval = '1s'");
	snprintf(s->work_pid, sizeof(s->work_pid), "%d", PQbackendPID(s->work));
	if (!pgs_take_lock(L, s->work, s->ctl, s->name, s->opts->lock_wait))
		return false;

	/* a lease still recorded belongs to a runner whose sessions are gone */
	if ((res = record(s, "SELECT runner_pid, host FROM shift.lease WHERE migration = $1",
					  1, p)) == NULL)
		return false;
	if (PQntuples(res) > 0)
	{
		const char *msg = lua_pushfstring(L, "taking over from pgshift pid %s on %s, "
										  "which stopped without finishing (its sessions are gone)",
										  PQgetisnull(res, 0, 0) ? "?" : PQgetvalue(res, 0, 0),
										  PQgetisnull(res, 0, 1) ? "?" : PQgetvalue(res, 0, 1));

		pgs_emit(L, "note", "message", 's', msg, NULL);
		lua_pop(L, 1);
	}
	PQclear(res);
	return true;
}

/*
 * A rollback that would cross a point of no return is refused before
 * shift.migration_begin records it: a refused rollback changes nothing,
 * not even what status says about the last run.  True if refused (said so).
 */
static bool
rollback_refused_early(Session *s)
{
	const char *p[1] = {s->name};
	PGresult   *res;
	int			count;
	bool		refused = false;

	if (s->op != OP_ROLLBACK)
		return false;
	if ((res = record(s, "SELECT status, needs_cleanup FROM shift.phase_status "
					  "WHERE migration = $1 ORDER BY ordinal", 1, p)) == NULL)
		return true;
	if (PQntuples(res) == s->nphases)
	{
		PhaseState *states = calloc(s->nphases, sizeof(PhaseState));

		if (states)
		{
			read_states(res, states, s->nphases);
			refused = rollback_refused(s, states, rollback_stop(s), &count);
		}
		free(states);
	}
	PQclear(res);
	if (refused)
		s->rc = PGS_EXIT_FAIL;
	return refused;
}

/*
 * shift.migration_begin: the lease, the run recorded, the phases' states
 * (s->state); then the start event.
 */
static bool
begin_migration(Session *s)
{
	lua_State  *L = s->L;
	PGresult   *res;
	char	   *where;
	char		path[PATH_MAX];
	char		runner_pid[16];

	if (gethostname(s->host, sizeof(s->host)) != 0)
		strcpy(s->host, "?");
	s->host[sizeof(s->host) - 1] = '\0';
	snprintf(runner_pid, sizeof(runner_pid), "%d", (int) getpid());
	if (realpath(s->path, path) == NULL)
		snprintf(path, sizeof(path), "%s", s->path);
	{
		const char *p[10] = {s->name, s->sha256, push_phases_json(s), op_names[s->op],
							 s->work_pid, PGS_VERSION, s->host, runner_pid, path,
							 s->opts->allow_drift ? "true" : "false"};

		res = p[2] ? record(s, "SELECT status, needs_cleanup FROM shift.migration_begin("
							"$1, $2, $3::jsonb, $4, $5::int, $6, $7, $8::int, $9, $10::boolean)",
							10, p) : NULL;
		lua_pop(L, 1);
	}
	if (res == NULL)
	{
		s->rc = PGS_EXIT_FAIL;
		return false;
	}
	s->leased = true;
	s->last_heartbeat = now_ms();
	s->state = lua_newuserdatauv(L, sizeof(PhaseState) * s->nphases, 0);
	read_states(res, s->state, s->nphases);
	PQclear(res);

	where = pgs_conn_describe(s->work);
	lua_pushstring(L, where);
	free(where);
	pgs_emit(L, "start", "operation", 's', op_names[s->op], "migration", 's', s->name,
			 "file", 's', s->path, "phases", 'i', (long long) s->nphases,
			 "target", 's', lua_tostring(L, -1), "sha256", 's', s->sha256, NULL);
	lua_pop(L, 1);
	return true;
}

/*
 * Opens the session: validated migration, script hash, both connections,
 * version and privilege checks, the lock, and shift.migration_begin.
 * Returns false with s->rc set when the command cannot go on.
 */
static bool
open_session(Session *s)
{
	if (!load_file(s))
		return false;
	s->rc = PGS_EXIT_USAGE;
	if (!connect_control(s) || !connect_work(s) || rollback_refused_early(s) ||
		!begin_migration(s))
		return false;
	s->rc = PGS_EXIT_OK;
	return true;
}

/* Ends the lease; the migration's status follows from its phases. */
static void
close_session(Session *s, double t_start)
{
	const char *p[1] = {s->name};
	PGresult   *res;
	int			done = 0;
	int			i;

	res = record(s, "SELECT shift.migration_end($1)", 1, p);
	if (res == NULL)
	{
		s->rc = PGS_EXIT_FAIL;
		return;
	}
	s->leased = false;
	for (i = 0; i < s->nphases; i++)
		done += strcmp(s->state[i].status, "done") == 0;
	pgs_emit(s->L, "finish", "operation", 's', op_names[s->op], "migration", 's', s->name,
			 "status", 's', PQgetvalue(res, 0, 0), "ms", 'd', now_ms() - t_start,
			 "done", 'i', (long long) done, "phases", 'i', (long long) s->nphases,
			 "exit", 'i', (long long) s->rc, NULL);
	PQclear(res);
}

static int
session_main(lua_State *L)
{
	Session    *s = lua_touserdata(L, 1);
	double		t_start = now_ms();

	s->L = L;
	if (!open_session(s))
		return 0;
	{
		PgsEngineHooks hooks = {hook_event, hook_current, hook_watch, hook_add_rows, s};

		pgs_set_work_conn(s->work, tick, s);
		pgs_set_engine(&hooks);
	}
	switch (s->op)
	{
		case OP_RUN:
			run_phases(s);
			break;
		case OP_ROLLBACK:
			rollback_phases(s);
			break;
		case OP_VERIFY:
			verify_phases(s);
			break;
	}
	pgs_set_engine(NULL);
	pgs_set_work_conn(NULL, NULL, NULL);
	pgs_clear_interrupt_hook(L);
	close_session(s, t_start);
	return 0;
}

/* pgshift run|rollback|verify FILE */
int
pgs_cmd_session(const PgsOptions *opts, const char *command, const char *path)
{
	return pgs_cmd_session_in(pgs_lua_new(opts), opts, command, path);
}

/*
 * pgs_cmd_session_in: the same in L, a state of pgs_lua_new (NULL: it
 * failed), which it closes; run DIR's, which kept the file's migration
 * (pgs_keep_migration).
 */
int
pgs_cmd_session_in(lua_State *L, const PgsOptions *opts, const char *command,
				   const char *path)
{
	Session		s;

	memset(&s, 0, sizeof(s));
	s.opts = opts;
	s.path = path;
	s.rc = PGS_EXIT_FAIL;
	s.op = strcmp(command, "rollback") == 0 ? OP_ROLLBACK :
		strcmp(command, "verify") == 0 ? OP_VERIFY : OP_RUN;
	if (L == NULL)
		return PGS_EXIT_FAIL;
	pgs_catch_interrupts(L);
	lua_pushcfunction(L, session_main);
	lua_pushlightuserdata(L, &s);
	if (pgs_pcall(L, 1, 0) != LUA_OK)
	{
		pgs_print_failure(L, -1, stderr, "internal error in pgshift", true);
		s.rc = PGS_EXIT_FAIL;
	}
	pgs_set_work_conn(NULL, NULL, NULL);
	pgs_set_engine(NULL);
	pgs_lua_close(L);
	return s.rc;
}
