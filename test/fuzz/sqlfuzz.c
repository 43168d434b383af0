/*-------------------------------------------------------------------------
 *
 * sqlfuzz.c
 *	  Fuzzes the parts of pg_shift that read SQL a user wrote: shift.lint,
 *	  shift.lint_script, shift_internal._select_list and the fragment checks of
 *	  shift.backfill_create (set, where, select, throttle_query) and
 *	  shift.sync_create (set, select), on a real server.
 *
 * Inputs are mutations of real SQL (statements and fragments read from the
 * corpus files given: pg_regress scripts, example migrations, the README):
 * truncations, token deletions, duplications, swaps and splices, random
 * bytes (non-UTF-8 and NUL included), quotes and comments, deep nesting,
 * huge repetitions, long runs of operator characters, statements glued
 * together.  Input i depends only on the seed and i, so any input can be
 * regenerated alone (--replay).  The inputs are made in sqlfuzz_input.c;
 * this file runs them and watches the server.
 *
 * Each input runs in one session with statement_timeout = 1s (backfill and
 * sync calls inside a transaction that is rolled back).  The session's
 * backend is watched: its peak resident memory is reset before each input
 * (/proc/PID/clear_refs) and read after it (VmHWM), and its address space
 * is capped (prlimit) so that a blow-up fails as "out of memory" instead of
 * taking the machine.  An input fails the run when it times out, grows the
 * backend by more than --rss-limit-mb, runs out of memory, raises an
 * internal error (SQLSTATE class XX, 53, 57, 58), or loses the connection;
 * after every batch the server log is read for a crashed backend.  Any
 * other error is a refusal of the input, which is what bad SQL must get.
 * With --tripwire SEQUENCE, a lint input also fails when the sequence
 * advanced while it ran: the database's tripwire functions (domain CHECKs,
 * immutable functions, casts) count their calls in it, and lint must run
 * none of them.  --self-test runs inputs that the watch must catch (one
 * that grows the backend by 300 MB, one that hits the address space cap,
 * one that sleeps 2 s) and says whether it did.
 *
 * Output: "# " lines (progress, failures with a replay), then one line
 * "sqlfuzz: inputs=N ..." with the counts.  Exit status 0 when nothing
 * failed, 1 when something did, 2 on a usage or setup error.
 *
 * Run it as the user the server runs as (prlimit and /proc need it).
 *
 *-------------------------------------------------------------------------
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "sqlfuzz.h"

/* ---------------------------------------------------------------- options */

uint64_t	opt_seed = 1;
static long opt_count = 1000;
static double opt_seconds = 0;	/* > 0: run until then instead of --count */
static long opt_replay = -1;
size_t		opt_max_size = 300 * 1024;
static long opt_rss_limit_mb = 256;
static long opt_as_headroom_mb = 1024;
static int	opt_batch = 250;
static const char *opt_log = NULL;
static const char *opt_failures = NULL;	/* directory for long failing inputs */
static int	opt_verbose = 0;
static const char *opt_tripwire = NULL;	/* a sequence user code advances */

/* ---------------------------------------------------------------- helpers */

void
die(const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	fprintf(stderr, "sqlfuzz: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

void *
xmalloc(size_t n)
{
	void	   *p = malloc(n ? n : 1);

	if (p == NULL)
		die("out of memory");
	return p;
}

char *
xstrndup(const char *s, size_t n)
{
	char	   *p = xmalloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static void
buf_reserve(Buf *b, size_t more)
{
	if (b->len + more + 1 <= b->cap)
		return;
	while (b->len + more + 1 > b->cap)
		b->cap = b->cap ? b->cap * 2 : 256;
	b->data = realloc(b->data, b->cap);
	if (b->data == NULL)
		die("out of memory");
}

void
buf_add(Buf *b, const char *s, size_t n)
{
	buf_reserve(b, n);
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void
buf_adds(Buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

void
buf_reset(Buf *b)
{
	b->len = 0;
	buf_reserve(b, 0);
	b->data[0] = '\0';
}

/* Inserts s at pos. */
void
buf_insert(Buf *b, size_t pos, const char *s, size_t n)
{
	if (pos > b->len)
		pos = b->len;
	buf_reserve(b, n);
	memmove(b->data + pos + n, b->data + pos, b->len - pos);
	memcpy(b->data + pos, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

/* Removes n bytes at pos. */
void
buf_delete(Buf *b, size_t pos, size_t n)
{
	if (pos >= b->len)
		return;
	if (n > b->len - pos)
		n = b->len - pos;
	memmove(b->data + pos, b->data + pos + n, b->len - pos - n);
	b->len -= n;
	b->data[b->len] = '\0';
}

/* ---------------------------------------------------------------- the backend */

static PGconn *conn;
static int	backend_pid;
static char proc_status[64];
static char proc_clear[64];
static int	can_clear_refs = 1;

static void
ignore_notice(void *arg, const char *message)
{
}

static PGresult *
exec_ok(const char *sql)
{
	PGresult   *res = PQexec(conn, sql);

	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
		die("setup statement failed: %s\n%s", sql, PQerrorMessage(conn));
	return res;
}

/* Reads a "Vm...:  N kB" line of /proc/PID/status, in kB (-1 if unknown). */
static long
proc_kb(const char *field)
{
	FILE	   *f = fopen(proc_status, "r");
	char		line[256];
	long		kb = -1;
	size_t		flen = strlen(field);

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, field, flen) == 0 && line[flen] == ':')
		{
			kb = atol(line + flen + 1);
			break;
		}
	fclose(f);
	return kb;
}

/* The backend's CPU time so far (user + system), in ms (-1 if unknown). */
static char proc_stat[64];

static long
proc_cpu_ms(void)
{
	FILE	   *f = fopen(proc_stat, "r");
	char		line[1024];
	char	   *p;
	unsigned long utime,
				stime;

	if (f == NULL)
		return -1;
	p = fgets(line, sizeof(line), f);
	fclose(f);
	/* after "pid (comm)", fields 3..: utime and stime are the 14th and 15th */
	if (p == NULL || (p = strrchr(line, ')')) == NULL ||
		sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
		return -1;
	return (long) ((utime + stime) * 1000 / sysconf(_SC_CLK_TCK));
}

static void
connect_backend(void)
{
	PGresult   *res;
	struct rlimit lim;
	long		vmsize;

	conn = PQconnectdb("");
	if (PQstatus(conn) != CONNECTION_OK)
		die("cannot connect: %s", PQerrorMessage(conn));
	PQsetNoticeProcessor(conn, ignore_notice, NULL);
	res = exec_ok("SELECT pg_backend_pid()");
	backend_pid = atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	/* errors are the normal outcome here: keep them out of the server log */
	PQclear(exec_ok("SET statement_timeout = '1s'; SET client_min_messages = error; "
					"SET log_min_messages = fatal; SET log_min_error_statement = panic; "
					"SET lock_timeout = '1s'"));
	snprintf(proc_status, sizeof(proc_status), "/proc/%d/status", backend_pid);
	snprintf(proc_clear, sizeof(proc_clear), "/proc/%d/clear_refs", backend_pid);
	snprintf(proc_stat, sizeof(proc_stat), "/proc/%d/stat", backend_pid);

	/* cap the backend's address space: a blow-up fails as out of memory */
	vmsize = proc_kb("VmSize");
	if (vmsize <= 0)
		die("cannot read %s (run as the server's user)", proc_status);
	lim.rlim_cur = lim.rlim_max = (rlim_t) (vmsize + opt_as_headroom_mb * 1024) * 1024;
	if (prlimit(backend_pid, RLIMIT_AS, &lim, NULL) != 0)
		die("cannot cap the memory of backend %d: %s (run as the server's user)",
			backend_pid, strerror(errno));
}

/* Resets the backend's peak resident size; returns its resident size in kB. */
static long
reset_peak(void)
{
	if (can_clear_refs)
	{
		FILE	   *f = fopen(proc_clear, "w");

		if (f == NULL || fputs("5", f) < 0 || fclose(f) != 0)
			die("cannot reset the peak memory of backend %d (%s): %s",
				backend_pid, proc_clear, strerror(errno));
	}
	return proc_kb("VmRSS");
}

/* ---------------------------------------------------------------- the server log */

static long log_offset = 0;

static void
log_start(void)
{
	FILE	   *f;

	if (opt_log == NULL)
		return;
	f = fopen(opt_log, "rb");
	if (f == NULL)
		die("cannot read the server log %s: %s", opt_log, strerror(errno));
	fseek(f, 0, SEEK_END);
	log_offset = ftell(f);
	fclose(f);
}

/* Lines of the server log written since the last call that tell of a crash. */
static int
log_crashes(Buf *out)
{
	FILE	   *f;
	char		line[4096];
	int			found = 0;

	if (opt_log == NULL)
		return 0;
	f = fopen(opt_log, "rb");
	if (f == NULL)
		return 0;
	fseek(f, log_offset, SEEK_SET);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "terminated by signal") || strstr(line, "was terminated") ||
			strstr(line, "exited with exit code") || strstr(line, "PANIC") ||
			strstr(line, "TRAP:") || strstr(line, "server process"))
		{
			buf_adds(out, "#   ");
			buf_adds(out, line);
			found++;
		}
	log_offset = ftell(f);
	fclose(f);
	return found;
}

/* ---------------------------------------------------------------- reporting */

static void
print_hex_literal(FILE *out, const Buf *b)
{
	size_t		i;

	fputs("convert_from('\\x", out);
	for (i = 0; i < b->len; i++)
		fprintf(out, "%02x", (unsigned char) b->data[i]);
	fputs("'::bytea, 'UTF8')", out);
}

/* The input as one SQL statement that runs it again. */
static void
print_replay(FILE *out, const Input *in)
{
	const char *sql = target_sql(in->target);
	const char *p;

	if (in_transaction(in->target))
		fputs("BEGIN; ", out);
	for (p = sql; *p; p++)
	{
		if (*p == '$' && p[1] >= '1' && p[1] <= '4')
		{
			int			k = p[1] - '1';

			if (in->null[k])
				fputs("NULL", out);
			else
				print_hex_literal(out, &in->param[k]);
			p++;
		}
		else
			fputc(*p, out);
	}
	fputs(in_transaction(in->target) ? "; ROLLBACK;\n" : ";\n", out);
}

static void
report_failure(const Input *in, const char *why)
{
	size_t		total = 0;
	int			k;
	char		head[121];
	size_t		i;

	for (k = 0; k < in->nparams; k++)
		total += in->param[k].len;
	for (i = 0; i < sizeof(head) - 1 && i < in->param[0].len; i++)
		head[i] = isprint((unsigned char) in->param[0].data[i]) ? in->param[0].data[i] : '.';
	head[i] = '\0';
	printf("# FAILED input %ld (%s, %zu bytes): %s\n", in->number,
		   target_names[in->target], total, why);
	printf("#   starts: %s\n", head);
	printf("#   regenerate (from the same corpus files): sqlfuzz --seed %llu --max-size %zu --replay %ld CORPUS...\n",
		   (unsigned long long) opt_seed, opt_max_size, in->number);
	if (total <= 4096 || opt_failures == NULL)
	{
		printf("#   replay: ");
		print_replay(stdout, in);
	}
	else
	{
		char		path[1024];
		FILE	   *f;

		snprintf(path, sizeof(path), "%s/input-%llu-%ld.sql", opt_failures,
				 (unsigned long long) opt_seed, in->number);
		f = fopen(path, "w");
		if (f)
		{
			print_replay(f, in);
			fclose(f);
			printf("#   replay: psql -f %s\n", path);
		}
		else
			printf("#   replay: (could not write %s: %s)\n", path, strerror(errno));
	}
	fflush(stdout);
}

/* ---------------------------------------------------------------- running */

typedef struct Stats
{
	long		inputs;
	long		accepted;
	long		refused;
	long		failures;
	long		per_target[T_CONTROL_TIME + 1];
	double		max_ms;			/* wall clock, as the client saw it */
	long		max_ms_input;
	long		max_cpu_ms;		/* the backend's CPU time, load aside */
	long		max_cpu_input;
	long		max_growth_kb;
	long		max_growth_input;
	size_t		max_bytes;
	long		by_class[64];	/* refusals by the first two SQLSTATE characters, hashed */
	char		classes[64][3];
} Stats;

static void
count_class(Stats *st, const char *sqlstate)
{
	int			h = ((unsigned char) sqlstate[0] * 31 + (unsigned char) sqlstate[1]) % 64;
	int			i;

	for (i = 0; i < 64; i++, h = (h + 1) % 64)
	{
		if (st->classes[h][0] == '\0')
		{
			st->classes[h][0] = sqlstate[0];
			st->classes[h][1] = sqlstate[1];
		}
		if (st->classes[h][0] == sqlstate[0] && st->classes[h][1] == sqlstate[1])
		{
			st->by_class[h]++;
			return;
		}
	}
}

/* How an input failed (run_input's result, a mask). */
#define FAIL_TIME		1
#define FAIL_MEMORY		2
#define FAIL_INTERNAL	4
#define FAIL_CONNECTION	8
#define FAIL_OUT_OF_MEMORY 16	/* the address space cap was hit */

/* An error that is not a refusal of bad input but a fault, or NULL. */
static const char *
fault(const char *sqlstate, int *kind)
{
	*kind = FAIL_INTERNAL;
	if (strcmp(sqlstate, "57014") == 0)
	{
		*kind = FAIL_TIME;
		return "over the time limit (statement_timeout = 1s)";
	}
	if (strncmp(sqlstate, "53", 2) == 0)
	{
		*kind = FAIL_OUT_OF_MEMORY;
		return "out of memory or another resource";
	}
	if (strncmp(sqlstate, "XX", 2) == 0)
		return "internal error";
	if (strncmp(sqlstate, "57", 2) == 0 || strncmp(sqlstate, "58", 2) == 0)
		return "the server stopped the query";
	return NULL;
}

/* Runs one input; returns 0, or how it failed (and reports why). */
static int
run_input(Input *in, Stats *st)
{
	const char *values[4];
	int			lengths[4];
	int			formats[4];
	Oid			types[4] = {25, 25, 25, 25};	/* text, sent in binary: any bytes */
	PGresult   *res;
	long		rss;
	long		hwm;
	long		cpu0;
	long		cpu;
	double		t0;
	double		ms;
	int			k;
	int			failed = 0;
	char		why[512];
	size_t		total = 0;

	for (k = 0; k < in->nparams; k++)
	{
		values[k] = in->null[k] ? NULL : in->param[k].data;
		lengths[k] = (int) in->param[k].len;
		formats[k] = 1;
		total += in->param[k].len;
	}
	if (total > st->max_bytes)
		st->max_bytes = total;
	rss = reset_peak();
	if (in_transaction(in->target))
		PQclear(PQexec(conn, "BEGIN"));
	cpu0 = proc_cpu_ms();
	t0 = now_ms();
	res = PQexecParams(conn, target_sql(in->target), in->nparams, types, values, lengths,
					   formats, 0);
	ms = now_ms() - t0;
	cpu = proc_cpu_ms();
	if (cpu >= 0 && cpu0 >= 0 && cpu - cpu0 > st->max_cpu_ms)
	{
		st->max_cpu_ms = cpu - cpu0;
		st->max_cpu_input = in->number;
	}
	if (PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK)
		st->accepted++;
	else if (PQstatus(conn) != CONNECTION_OK)
	{
		snprintf(why, sizeof(why), "the connection was lost: %s", PQerrorMessage(conn));
		report_failure(in, why);
		PQclear(res);
		st->failures++;
		return FAIL_CONNECTION;
	}
	else
	{
		const char *sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		const char *f;
		int			kind;

		if (sqlstate == NULL)
			sqlstate = "??";
		if ((f = fault(sqlstate, &kind)) != NULL)
		{
			snprintf(why, sizeof(why), "%s: SQLSTATE %s after %.0f ms: %s", f, sqlstate, ms,
					 PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) ?
					 PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : "?");
			report_failure(in, why);
			failed |= kind;
		}
		st->refused++;
		count_class(st, sqlstate);
		if (opt_verbose)
			printf("# input %ld %s: %s %s\n", in->number, target_names[in->target], sqlstate,
				   PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));
	}
	PQclear(res);
	if (in_transaction(in->target))
		PQclear(PQexec(conn, "ROLLBACK"));
	hwm = proc_kb("VmHWM");
	if (hwm >= 0 && rss >= 0 && hwm - rss > st->max_growth_kb)
	{
		st->max_growth_kb = hwm - rss;
		st->max_growth_input = in->number;
	}
	if (hwm >= 0 && rss >= 0 && hwm - rss > opt_rss_limit_mb * 1024)
	{
		snprintf(why, sizeof(why), "over the memory limit: the backend grew by %ld MB (limit %ld MB)",
				 (hwm - rss) / 1024, opt_rss_limit_mb);
		report_failure(in, why);
		failed |= FAIL_MEMORY;
	}
	if (opt_tripwire)
	{
		/* user code (the tripwire functions) must never run while lint reads SQL */
		static long calls = -1;
		char		sql[256];
		PGresult   *tw;
		long		now;

		snprintf(sql, sizeof(sql), "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM %s",
				 opt_tripwire);
		tw = PQexec(conn, sql);
		if (PQresultStatus(tw) != PGRES_TUPLES_OK)
			die("cannot read the tripwire %s: %s", opt_tripwire, PQerrorMessage(conn));
		now = atol(PQgetvalue(tw, 0, 0));
		PQclear(tw);
		if (calls >= 0 && now > calls && (in->target == T_LINT || in->target == T_LINT_SCRIPT))
		{
			snprintf(why, sizeof(why), "user code ran while lint read SQL (%ld calls of the tripwire functions)",
					 now - calls);
			report_failure(in, why);
			failed |= FAIL_INTERNAL;
		}
		calls = now;
	}
	if (ms > st->max_ms)
	{
		st->max_ms = ms;
		st->max_ms_input = in->number;
	}
	st->per_target[in->target]++;
	st->inputs++;
	st->failures += failed != 0;
	return failed;
}

static void
usage(void)
{
	fprintf(stderr,
			"usage: sqlfuzz [--seed N] [--count N | --seconds N] [--max-size BYTES]\n"
			"               [--rss-limit-mb N] [--log SERVER_LOG] [--failures DIR]\n"
			"               [--replay N] [--print N] [--verbose] CORPUS_FILE...\n"
			"Connects with the libpq environment (PGHOST, PGPORT, PGDATABASE, PGUSER);\n"
			"the database needs pg_shift and the tables fuzz.items, fuzz.items_copy.\n");
	exit(2);
}

/*
 * Reads the options into opt_* (and *print_only, *self_test); returns the
 * index of the first corpus file.
 */
static int
parse_options(int argc, char **argv, long *print_only, int *self_test)
{
	int			i;

	for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; i++)
	{
		const char *o = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(o, "--verbose") == 0)
		{
			opt_verbose = 1;
			continue;
		}
		if (strcmp(o, "--self-test") == 0)
		{
			*self_test = 1;
			continue;
		}
		if (v == NULL)
			usage();
		i++;
		if (strcmp(o, "--seed") == 0)
			opt_seed = strtoull(v, NULL, 10);
		else if (strcmp(o, "--count") == 0)
			opt_count = atol(v);
		else if (strcmp(o, "--seconds") == 0)
			opt_seconds = atof(v);
		else if (strcmp(o, "--max-size") == 0)
			opt_max_size = (size_t) atol(v);
		else if (strcmp(o, "--rss-limit-mb") == 0)
			opt_rss_limit_mb = atol(v);
		else if (strcmp(o, "--log") == 0)
			opt_log = v;
		else if (strcmp(o, "--failures") == 0)
			opt_failures = v;
		else if (strcmp(o, "--replay") == 0)
			opt_replay = atol(v);
		else if (strcmp(o, "--print") == 0)
			*print_only = atol(v);
		else if (strcmp(o, "--tripwire") == 0)
			opt_tripwire = v;
		else
			usage();
	}
	return i;
}

/*
 * --self-test: each control input must fail, through the same watch as
 * every input.  Returns the exit status: 1 when one was missed.
 */
static int
run_self_test(Input *in, Stats *st)
{
	Target		controls[] = {T_CONTROL_MEMORY, T_CONTROL_CAP, T_CONTROL_TIME};
	int			kinds[] = {FAIL_MEMORY, FAIL_OUT_OF_MEMORY, FAIL_TIME};
	const char *what[] = {"memory", "cap", "time"};
	int			missed = 0;
	int			i;

	for (i = 0; i < 3; i++)
	{
		int			caught;

		in->number = -1 - i;
		in->target = controls[i];
		in->nparams = 0;
		/* the memory controls may take longer than the time limit */
		if (controls[i] != T_CONTROL_TIME)
			PQclear(exec_ok("SET statement_timeout = '60s'"));
		caught = (run_input(in, st) & kinds[i]) != 0;
		PQclear(exec_ok("SET statement_timeout = '1s'"));
		printf("self-test: %s: %s\n", what[i], caught ? "caught" : "MISSED");
		missed += !caught;
	}
	PQfinish(conn);
	return missed ? 1 : 0;
}

/*
 * After a batch (or the input replayed): fails the run when the server log
 * tells of a crashed backend or the server does not answer; now and then
 * a progress line.  Returns 1 to stop.
 */
static int
check_server(long n, Stats *st, double start)
{
	Buf			crashes = {0};
	int			stop = 0;
	PGresult   *res;

	buf_reset(&crashes);
	if (log_crashes(&crashes))
	{
		printf("# FAILED: the server log tells of a crashed backend after input %ld:\n%s",
			   n, crashes.data);
		st->failures++;
		stop = 1;
	}
	res = PQexec(conn, "SELECT 1");
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		printf("# FAILED: the server does not answer after input %ld: %s\n", n,
			   PQerrorMessage(conn));
		st->failures++;
		stop = 1;
	}
	PQclear(res);
	if ((n + 1) % (opt_batch * 40) == 0)
	{
		printf("# %ld inputs, %.0f/s, %ld failures\n", st->inputs,
			   st->inputs / ((now_ms() - start) / 1000), st->failures);
		fflush(stdout);
	}
	free(crashes.data);
	return stop;
}

/* The last line: "sqlfuzz: inputs=N ..." with the counts. */
static void
print_summary(const Stats *st, double start)
{
	int			i;

	printf("sqlfuzz: inputs=%ld accepted=%ld refused=%ld failures=%ld seconds=%.0f "
		   "per_second=%.0f max_ms=%.0f (input %ld) max_cpu_ms=%ld (input %ld) "
		   "max_growth_mb=%.1f (input %ld) max_bytes=%zu",
		   st->inputs, st->accepted, st->refused, st->failures, (now_ms() - start) / 1000,
		   st->inputs / ((now_ms() - start) / 1000 + 1e-9), st->max_ms, st->max_ms_input,
		   st->max_cpu_ms, st->max_cpu_input, st->max_growth_kb / 1024.0, st->max_growth_input,
		   st->max_bytes);
	for (i = 0; i < T_COUNT; i++)
		printf(" %s=%ld", target_names[i], st->per_target[i]);
	printf(" sqlstate_classes=");
	for (i = 0; i < 64; i++)
		if (st->classes[i][0])
			printf("%c%c:%ld,", st->classes[i][0], st->classes[i][1], st->by_class[i]);
	printf("\n");
}

int
main(int argc, char **argv)
{
	int			i;
	Stats		st;
	Input		in;
	long		n;
	double		start;
	long		print_only = -1;
	int			stop = 0;
	int			self_test = 0;

	memset(&st, 0, sizeof(st));
	memset(&in, 0, sizeof(in));
	i = parse_options(argc, argv, &print_only, &self_test);
	if (i >= argc)
		usage();
	for (; i < argc; i++)
		load_file(argv[i]);
	if (statements.n == 0)
		die("no SQL statements found in the corpus files");
	for (i = 0; i < 4; i++)
		buf_reset(&in.param[i]);

	if (print_only >= 0)
	{
		generate(&in, print_only);
		print_replay(stdout, &in);
		return 0;
	}

	connect_backend();
	log_start();
	if (self_test)
		return run_self_test(&in, &st);
	printf("# sqlfuzz: seed %llu, %zu statements and %zu fragments in the corpus, backend %d\n",
		   (unsigned long long) opt_seed, statements.n, fragments.n, backend_pid);
	fflush(stdout);
	start = now_ms();
	for (n = opt_replay >= 0 ? opt_replay : 0; !stop; n++)
	{
		if (opt_replay >= 0 ? n > opt_replay :
			opt_seconds > 0 ? now_ms() - start > opt_seconds * 1000 : n >= opt_count)
			break;
		generate(&in, n);
		if (run_input(&in, &st) && PQstatus(conn) != CONNECTION_OK)
			stop = 1;
		if ((n + 1) % opt_batch == 0 || stop || opt_replay >= 0)
			stop |= check_server(n, &st, start);
	}
	print_summary(&st, start);
	PQfinish(conn);
	return st.failures ? 1 : 0;
}
