/*
 * compare.c
 *	  pgshift compare: one table on two servers, compared by chunk checksums.
 *
 * Each side runs in a REPEATABLE READ READ ONLY transaction, so every query
 * on it sees one snapshot.  When one side replicates the other (a physical
 * standby of it, or a logical subscription to it), the upstream side's
 * snapshot is taken first, with its WAL position, and the downstream side's
 * once it has applied that position: both see the same point.  Both
 * servers then work at once (pgs_send and pgs_wait_any of conn.c):
 *
 *	 1. each side sums its table into 2^n key-hash buckets
 *		(shift.chunk_checksums with buckets => 2^n), in page ranges so that
 *		progress can be shown (a view or foreign table in one part);
 *	 2. buckets that differ and hold many rows are split 256 ways
 *		(bucket b of 2^n is buckets 256b .. 256b+255 of 2^(n+8)) and summed
 *		again, only those;
 *	 3. the rows of the small differing buckets are fetched as key, key hash
 *		and row hash (shift.row_hashes) and matched here;
 *	 4. unless --recheck 0, the snapshots end and the keys that differed are
 *		read again (shift.key_rows) up to N times, after 0.5, 1, 2, ... s:
 *		a key whose rows became equal, or kept changing, was written during
 *		the compare and is reported "in flight", not as a difference; one
 *		that stays different and still is a difference.
 *
 * Only sums and the rows of differing buckets cross the wire.  Every
 * statement qualifies its functions, operators and types, and every value
 * it carries (table names, column lists, keys) is a parameter.  --json
 * lines are written by the prelude's one JSON writer.  Exit status:
 * 0 equal (rows in flight only), 1 different, 2 usage or connection error.
 *
 * This file opens the sides, takes the snapshots, runs statements on both
 * servers at once and prints; compare_find.c does steps 1 to 3 (the
 * passes), compare_diff.c step 4 and the differences' report.  compare.h
 * declares what they share.
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "compare.h"

/*
 * Protocol bytes each way, counted from the messages themselves (libpq does
 * not count them): what a query sends with the extended protocol (Parse,
 * Bind, Describe, Execute, Sync) and what a result brings back
 * (RowDescription, DataRows, CommandComplete, ReadyForQuery).
 */
static int64_t wire_sent = 0;
static int64_t wire_received = 0;

static void
count_sent(const char *sql, int nparams, const char *const *values)
{
	int			i;

	wire_sent += 1 + 4 + 1 + (int64_t) strlen(sql) + 1 + 2 + 4 * nparams;	/* Parse */
	wire_sent += 1 + 4 + 1 + 1 + 2 + 2 + 2;									/* Bind */
	for (i = 0; i < nparams; i++)
		wire_sent += 4 + (values[i] ? (int64_t) strlen(values[i]) : 0);
	wire_sent += 6 + 1 + 9 + 5;						/* Describe, Execute, Sync */
}

static void
count_received(const PGresult *res)
{
	int			nf = PQnfields(res);
	int			nt = PQntuples(res);
	int			f;
	int			r;

	wire_received += 1 + 4 + 2 + 1 + 4 + 6 + 1 + 4 + 1;	/* ParseComplete .. ReadyForQuery */
	if (nf > 0)
	{
		wire_received += 1 + 4 + 2;
		for (f = 0; f < nf; f++)
			wire_received += (int64_t) strlen(PQfname(res, f)) + 1 + 18;
	}
	for (r = 0; r < nt; r++)
	{
		wire_received += 1 + 4 + 2;
		for (f = 0; f < nf; f++)
			wire_received += 4 + PQgetlength(res, r, f);
	}
	wire_received += 1 + 4 + 16;	/* CommandComplete */
}

/*
 * A list of columns or key columns: what --columns and the like give, or
 * the source's own, by name.  given false: none (every column, the primary
 * key).
 */
typedef struct List
{
	bool		given;
	int			n;
	char	  **elem;
} List;

static void
list_add(List *l, const char *s, size_t len)
{
	l->elem = pgs_realloc(l->elem, sizeof(char *) * (l->n + 1));
	l->elem[l->n] = pgs_malloc(len + 1);
	memcpy(l->elem[l->n], s, len);
	l->elem[l->n][len] = '\0';
	l->n++;
	l->given = true;
}

static void
list_free(List *l)
{
	int			i;

	for (i = 0; i < l->n; i++)
		free(l->elem[i]);
	free(l->elem);
	memset(l, 0, sizeof(*l));
}

/*
 * "a, \"b,c\", lower(d, e), x || ','" -> a | "b,c" | lower(d, e) | x || ',':
 * the command line's list split at commas outside parentheses, brackets,
 * "quoted identifiers" and 'string literals' (a doubled quote stays
 * inside), each element trimmed; nothing given (NULL): none.
 */
static void
split_list(const char *text, List *l)
{
	int			depth = 0;
	char		quote = 0;
	const char *start = text;
	const char *p;

	memset(l, 0, sizeof(*l));
	if (text == NULL)
		return;
	for (p = text;; p++)
	{
		if (*p != '\0' && quote)
		{
			if (*p == quote)
			{
				if (p[1] == quote)
					p++;		/* "" or '': the quote itself */
				else
					quote = 0;
			}
			continue;
		}
		if (*p == '"' || *p == '\'')
			quote = *p;
		else if (*p == '(' || *p == '[')
			depth++;
		else if ((*p == ')' || *p == ']') && depth > 0)
			depth--;
		else if (*p == '\0' || (*p == ',' && depth == 0))
		{
			const char *end = p;

			while (start < end && (*start == ' ' || *start == '\t'))
				start++;
			while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
				end--;
			list_add(l, start, (size_t) (end - start));
			start = p + 1;
			if (*p == '\0')
				break;
		}
	}
}

/*
 * The labels of the source's columns (key false) or key columns (key true),
 * in order, from shift.checksum_columns: what the target's lists default to.
 * A keyless source gives an empty key list: the target is keyless too.
 */
static void
labels_list(PGresult *cols, bool key, List *l)
{
	int			r;

	memset(l, 0, sizeof(*l));
	l->given = true;
	for (r = 0; r < PQntuples(cols); r++)
		if ((strcmp(PQgetvalue(cols, r, 3), "t") == 0) == key)
			list_add(l, PQgetvalue(cols, r, 0), strlen(PQgetvalue(cols, r, 0)));
}

/* ---------------------------------------------------------------- both servers at once */

/* Sends a statement on a side (pgs_send), without waiting for it. */
bool
side_send(Side *s, const char *sql, int nparams, const char *const *values)
{
	free(s->sql);
	s->sql = pgs_strdup(sql);
	PQclear(s->result);
	s->result = NULL;
	count_sent(sql, nparams, values);
	if (!pgs_send(s->conn, sql, nparams, values, &s->err))
	{
		s->failed = true;
		return false;
	}
	s->busy = true;
	return true;
}

/* Collects a finished statement's result; the side's first error wins. */
static void
side_collect(Side *s)
{
	PgsError	err;

	memset(&err, 0, sizeof(err));
	s->result = pgs_get_result(s->conn, s->sql, &err);
	if (s->result)
		count_received(s->result);
	else if (!s->failed)
	{
		s->err = err;			/* the side's error now owns the strings */
		memset(&err, 0, sizeof(err));
		s->failed = true;
	}
	pgs_error_clear(&err);
	s->busy = false;
}

/* Cancels the statements in flight (pgs_cancel). */
static void
cancel_busy(Compare *c)
{
	int			i;

	for (i = 0; i < 2; i++)
		if (c->side[i].busy)
			pgs_cancel(c->side[i].conn);
}

/*
 * Waits until a side finishes its statement, cancelling both on Ctrl-C and
 * redrawing progress once a second.  Returns the index of a side that
 * finished, or -1 when none is busy.
 */
int
wait_sides(Compare *c)
{
	double		next = pgs_monotonic_seconds() + 1.0;
	bool		cancelled = false;

	for (;;)
	{
		PGconn	   *busy[2];
		int			i;

		for (i = 0; i < 2; i++)
			busy[i] = c->side[i].busy ? c->side[i].conn : NULL;
		if (busy[0] == NULL && busy[1] == NULL)
			return -1;
		i = pgs_wait_any(busy, 2, 250);
		if (i >= 0)
		{
			side_collect(&c->side[i]);
			return i;
		}
		if (pgs_interrupted && !cancelled)
		{
			cancel_busy(c);
			cancelled = true;
		}
		if (pgs_monotonic_seconds() >= next)
		{
			cmp_progress(c);
			next = pgs_monotonic_seconds() + 1.0;
		}
	}
}

/* Runs one statement on a side and waits for it (setup, not the scans). */
PGresult *
side_exec(Compare *c, Side *s, const char *sql, int nparams, const char *const *values)
{
	if (!side_send(s, sql, nparams, values))
		return NULL;
	while (s->busy)
		wait_sides(c);
	if (s->failed)
		return NULL;
	return s->result;
}

int
side_error(Compare *c, Side *s, const char *what)
{
	char		context[512];

	snprintf(context, sizeof(context), "%s on the %s (%s)", what, s->name,
			 s->label ? s->label : s->dsn ? s->dsn : "libpq environment");
	pgs_report_error(&s->err, context);
	return PGS_EXIT_USAGE;
}

/* Sleeps up to secs, less when interrupted; false when interrupted. */
bool
nap(double secs)
{
	double		until = pgs_monotonic_seconds() + secs;

	while (!pgs_interrupted)
	{
		double		left = until - pgs_monotonic_seconds();
		struct timespec ts;

		if (left <= 0)
			return true;
		if (left > 0.1)
			left = 0.1;
		ts.tv_sec = 0;
		ts.tv_nsec = (long) (left * 1e9);
		nanosleep(&ts, NULL);
	}
	return false;
}

/* ---------------------------------------------------------------- progress and output */

void
cmp_progress(Compare *c)
{
	char		line[256];
	double		el = pgs_monotonic_seconds() - c->started;

	if (!c->tty || c->opts->quiet || c->opts->json)
		return;
	if (c->pass == 1)
		snprintf(line, sizeof(line), "compare %s: checksums  source %3d%%  target %3d%%  %.0fs",
				 c->side[0].table, c->side[0].parts_done * 100 / c->side[0].parts,
				 c->side[1].parts_done * 100 / c->side[1].parts, el);
	else
		snprintf(line, sizeof(line), "compare %s: %s  %.0fs", c->side[0].table,
				 c->pass_name ? c->pass_name : "starting", el);
	pgs_live_update(line);
}

/* ---------------------------------------------------------------- the command */

/* What a side says about replication, read before its snapshot. */
static int
read_replication(Compare *c, Side *s)
{
	static const char *sql =
		"SELECT (SELECT system_identifier FROM pg_catalog.pg_control_system())::pg_catalog.text,"
		" pg_catalog.pg_is_in_recovery(),"
		" (SELECT pg_catalog.array_agg(subslotname::pg_catalog.text) FROM pg_catalog.pg_subscription"
		"   WHERE subenabled AND subdbid OPERATOR(pg_catalog.=) (SELECT oid FROM pg_catalog.pg_database"
		"     WHERE datname OPERATOR(pg_catalog.=) pg_catalog.current_database()))::pg_catalog.text,"
		" (SELECT pg_catalog.array_agg(slot_name::pg_catalog.text) FROM pg_catalog.pg_replication_slots"
		"   WHERE slot_type OPERATOR(pg_catalog.=) 'logical'"
		"     AND database OPERATOR(pg_catalog.=) pg_catalog.current_database())::pg_catalog.text";
	PGresult   *res = side_exec(c, s, sql, 0, NULL);

	if (res == NULL)
		return side_error(c, s, "reading its replication state");
	s->sysid = pgs_strdup(PQgetvalue(res, 0, 0));
	s->in_recovery = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
	s->subs = PQgetisnull(res, 0, 2) ? NULL : pgs_strdup(PQgetvalue(res, 0, 2));
	s->slots = PQgetisnull(res, 0, 3) ? NULL : pgs_strdup(PQgetvalue(res, 0, 3));
	return PGS_EXIT_OK;
}

/* The subscribed slot of down that is a logical slot of up, or NULL (malloc'd). */
static char *
shared_slot(Side *down, Side *up)
{
	char	   *subs;
	char	   *tok;
	char	   *save = NULL;
	char	   *found = NULL;

	if (down->subs == NULL || up->slots == NULL)
		return NULL;
	subs = pgs_strdup(down->subs);
	for (tok = strtok_r(subs, "{},\"", &save); tok; tok = strtok_r(NULL, "{},\"", &save))
	{
		size_t		n = strlen(tok);
		const char *p = up->slots;

		while ((p = strstr(p, tok)) != NULL)
		{
			bool		start = p == up->slots || strchr("{,\"", p[-1]) != NULL;
			bool		end = p[n] == '\0' || strchr("},\"", p[n]) != NULL;

			if (start && end)
			{
				found = pgs_strdup(tok);
				break;
			}
			p += n;
		}
		if (found)
			break;
	}
	free(subs);
	return found;
}

/*
 * Starts both snapshots.  When one side replicates the other, the upstream
 * snapshot comes first with its WAL flush position (what a sender can have
 * sent: every synchronous commit the snapshot sees is before it), and the
 * downstream one once that position is applied there (replayed by a
 * standby; for a subscription, the position its apply worker last heard
 * from the publisher in a keepalive, which it handles only after applying
 * everything sent before), so both see one point.  An asynchronous commit
 * not yet flushed can still differ; the recheck sorts it out, as it does
 * everything written meanwhile when the two snapshots are independent.
 */
static int
begin_snapshots(Compare *c)
{
	static const char *begin = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
	static const char *lsn_sql = "SELECT pg_catalog.pg_current_wal_flush_lsn()::pg_catalog.text";
	static const char *replay_sql =
		"SELECT pg_catalog.pg_last_wal_replay_lsn() OPERATOR(pg_catalog.>=) $1::pg_catalog.pg_lsn";
	static const char *applied_sql =
		"SELECT coalesce(pg_catalog.bool_or(latest_end_lsn OPERATOR(pg_catalog.>=) $1::pg_catalog.pg_lsn), false)"
		" FROM pg_catalog.pg_stat_subscription s JOIN pg_catalog.pg_subscription p ON p.oid OPERATOR(pg_catalog.=) s.subid"
		" WHERE s.relid IS NULL AND p.subslotname OPERATOR(pg_catalog.=) $2";
	int			up = -1;
	char	   *slot = NULL;
	int			s;

	for (s = 0; s < 2; s++)
	{
		int			rc = read_replication(c, &c->side[s]);

		if (rc != PGS_EXIT_OK)
			return rc;
	}
	if (strcmp(c->side[0].sysid, c->side[1].sysid) == 0 &&
		c->side[0].in_recovery != c->side[1].in_recovery)
		up = c->side[0].in_recovery ? 1 : 0;	/* a physical standby of the other */
	else if ((slot = shared_slot(&c->side[1], &c->side[0])) != NULL)
		up = 0;					/* the target subscribes to the source */
	else if ((slot = shared_slot(&c->side[0], &c->side[1])) != NULL)
		up = 1;
	if (up < 0)
	{
		for (s = 0; s < 2; s++)
			if (side_exec(c, &c->side[s], begin, 0, NULL) == NULL)
				return side_error(c, &c->side[s], "starting a snapshot");
		return PGS_EXIT_OK;
	}
	{
		Side	   *u = &c->side[up];
		Side	   *d = &c->side[1 - up];
		PGresult   *res;
		double		deadline = pgs_monotonic_seconds() + LSN_WAIT_SECS;
		char		line[200];

		if (side_exec(c, u, begin, 0, NULL) == NULL ||
			(res = side_exec(c, u, lsn_sql, 0, NULL)) == NULL)
		{
			free(slot);
			return side_error(c, u, "starting a snapshot");
		}
		c->lsn = pgs_strdup(PQgetvalue(res, 0, 0));
		snprintf(line, sizeof(line), "waiting for the %s to apply %s", d->name, c->lsn);
		c->pass_name = line;
		for (;;)
		{
			const char *values[2] = {c->lsn, slot};

			res = side_exec(c, d, slot ? applied_sql : replay_sql, slot ? 2 : 1, values);
			if (res == NULL)
			{
				free(slot);
				return side_error(c, d, "waiting for replication to catch up");
			}
			if (strcmp(PQgetvalue(res, 0, 0), "t") == 0)
				break;
			if (pgs_monotonic_seconds() > deadline || pgs_interrupted)
			{
				if (!c->opts->quiet)
					pgs_errorf("the %s did not apply %s within %.0f s: comparing two independent snapshots\n",
							   d->name, c->lsn, LSN_WAIT_SECS);
				free(c->lsn);
				c->lsn = NULL;
				break;
			}
			cmp_progress(c);
			nap(0.02);
		}
		c->pass_name = NULL;
		free(slot);
		if (side_exec(c, d, begin, 0, NULL) == NULL)
			return side_error(c, d, "starting a snapshot");
	}
	return PGS_EXIT_OK;
}

static int
open_side(Compare *c, Side *s)
{
	int			rc;

	s->conn = pgs_connect(s->dsn, "pgshift compare", &s->err);
	if (s->conn == NULL)
		return side_error(c, s, "connecting");
	rc = pgs_check_extension(s->conn, &s->err);
	if (rc != PGS_EXIT_OK)
		return side_error(c, s, "checking the extension");
	return PGS_EXIT_OK;
}

/*
 * The text[] literals of side i's column and key lists, as the server writes
 * them (the elements are parameters: nothing is quoted here), or NULL for a
 * list not given.
 */
static int
side_lists(Compare *c, Side *s, int i, const List *cols, const List *key)
{
	const List *lists[2] = {cols, key};
	const char **values;
	char	   *sql;
	char	   *o;
	PGresult   *res;
	int			nparams = 0;
	int			k;
	int			j;

	c->columns[i] = c->key[i] = NULL;
	if (!cols->given && !key->given)
		return PGS_EXIT_OK;
	values = pgs_malloc(sizeof(char *) * (cols->n + key->n));
	sql = pgs_malloc(128 + 8 * (size_t) (cols->n + key->n));
	o = sql + sprintf(sql, "SELECT ");
	for (k = 0; k < 2; k++)
	{
		if (k > 0)
			o += sprintf(o, ", ");
		if (!lists[k]->given)
		{
			o += sprintf(o, "NULL::pg_catalog.text");
			continue;
		}
		o += sprintf(o, "ARRAY[");
		for (j = 0; j < lists[k]->n; j++)
		{
			values[nparams++] = lists[k]->elem[j];
			o += sprintf(o, "%s$%d", j ? "," : "", nparams);
		}
		o += sprintf(o, "]::pg_catalog.text[]::pg_catalog.text");
	}
	res = side_exec(c, s, sql, nparams, values);
	free(sql);
	free(values);
	if (res == NULL)
		return side_error(c, s, "reading the lists of columns to compare");
	if (!PQgetisnull(res, 0, 0))
		c->columns[i] = pgs_strdup(PQgetvalue(res, 0, 0));
	if (!PQgetisnull(res, 0, 1))
		c->key[i] = pgs_strdup(PQgetvalue(res, 0, 1));
	return PGS_EXIT_OK;
}

/*
 * The table's size (in its snapshot), its kind, and the columns to compare.
 * The target's lists default to the source's, by name (as in
 * shift.compare), not to the target's own order: the source is described
 * first.
 */
static int
describe_side(Compare *c, Side *s, List given[2][2])
{
	static const char *size_sql =
		"WITH RECURSIVE tree(relid) AS ("
		"   SELECT $1::pg_catalog.regclass::pg_catalog.oid"
		"   UNION SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN tree t"
		"     ON i.inhparent OPERATOR(pg_catalog.=) t.relid)"
		" SELECT coalesce(pg_catalog.max(pg_catalog.pg_relation_size(relid::pg_catalog.regclass)"
		"   OPERATOR(pg_catalog./) pg_catalog.current_setting('block_size')::pg_catalog.int8), 0),"
		" coalesce(pg_catalog.sum(GREATEST(c.reltuples, 0)), 0),"
		" (SELECT relkind FROM pg_catalog.pg_class WHERE oid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass)"
		"   OPERATOR(pg_catalog.=) ANY ('{r,m,p}'::pg_catalog.\"char\"[])"
		" FROM tree JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) tree.relid";
	PGresult   *res;
	const char *values[1] = {s->table};
	int			i = s == &c->side[0] ? 0 : 1;
	int			rc;

	res = side_exec(c, s, size_sql, 1, values);
	if (res == NULL)
		return side_error(c, s, "finding the table");
	s->pages = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	s->reltuples = strtod(PQgetvalue(res, 0, 1), NULL);
	s->paged = strcmp(PQgetvalue(res, 0, 2), "t") == 0;
	s->parts = s->paged ? PARTS : 1;
	{
		List		own[2];
		const List *use[2];
		int			k;

		memset(own, 0, sizeof(own));
		for (k = 0; k < 2; k++)
		{
			use[k] = &given[i][k];
			if (i == 1 && !use[k]->given)
				use[k] = &given[0][k];
			if (i == 1 && !use[k]->given)
			{
				labels_list(c->side[0].columns, k == 1, &own[k]);
				use[k] = &own[k];
			}
		}
		rc = side_lists(c, s, i, use[0], use[1]);
		list_free(&own[0]);
		list_free(&own[1]);
		if (rc != PGS_EXIT_OK)
			return rc;
	}
	{
		const char *cv[3] = {s->table, c->columns[i], c->key[i]};

		res = side_exec(c, s, "SELECT label, type, class, is_key FROM shift.checksum_columns("
						"$1::pg_catalog.regclass, $2::pg_catalog.text[], $3::pg_catalog.text[])"
						" ORDER BY is_key, ord", 3, cv);
		if (res == NULL)
			return side_error(c, s, "reading the columns to compare");
		s->columns = res;
		s->result = NULL;		/* now owned by s->columns */
	}
	return PGS_EXIT_OK;
}

/*
 * Refuses what can never compare equal, before any scan: a different number
 * of columns or key columns, or a pair of columns whose hash classes differ
 * (int against text).  The server's shift.compare refuses the same.
 */
static int
check_columns(Compare *c)
{
	PGresult   *a = c->side[0].columns;
	PGresult   *b = c->side[1].columns;
	int			r;

	if (PQntuples(a) != PQntuples(b))
	{
		pgs_errorf("the source compares %d columns (with its key) but the target %d\n"
				   "  hint: give both lists: --columns and --target-columns (and --key, --target-key)\n",
				   PQntuples(a), PQntuples(b));
		return PGS_EXIT_USAGE;
	}
	for (r = 0; r < PQntuples(a); r++)
	{
		bool		key = strcmp(PQgetvalue(a, r, 3), "t") == 0;

		if (strcmp(PQgetvalue(a, r, 3), PQgetvalue(b, r, 3)) != 0)
		{
			pgs_errorf("the source's key has a different number of columns than the target's\n");
			return PGS_EXIT_USAGE;
		}
		if (strcmp(PQgetvalue(a, r, 2), PQgetvalue(b, r, 2)) != 0)
		{
			pgs_errorf("%s \"%s\" is %s in the source but %s \"%s\" is %s in the target\n"
					   "  detail: values of these two types never hash equal\n"
					   "  hint: cast one side, e.g. --target-columns 'id,score::int'\n",
					   key ? "key column" : "column", PQgetvalue(a, r, 0), PQgetvalue(a, r, 1),
					   key ? "key column" : "column", PQgetvalue(b, r, 0), PQgetvalue(b, r, 1));
			return PGS_EXIT_USAGE;
		}
	}
	return PGS_EXIT_OK;
}

static void
print_summary(Compare *c, const Counts *n, int64_t received, int64_t sent)
{
	int64_t		total = n->missing_in_target + n->missing_in_source + n->different;
	double		secs = pgs_monotonic_seconds() - c->started;

	if (c->opts->json)
	{
		pgs_json_line(c->L, "event", 's', "compare",
					  "source", 's', c->side[0].table, "target", 's', c->side[1].table,
					  "equal", 'b', total == 0,
					  "source_rows", 'i', (long long) c->side[0].rows,
					  "target_rows", 'i', (long long) c->side[1].rows,
					  "missing_in_target", 'i', (long long) n->missing_in_target,
					  "missing_in_source", 'i', (long long) n->missing_in_source,
					  "different", 'i', (long long) n->different,
					  "in_flight", 'i', (long long) n->in_flight,
					  "rechecks", 'i', (long long) c->rechecks,
					  "lsn", 's', c->lsn,	/* left out when the snapshots are independent */
					  "buckets", 'i', (long long) 1 << c->bits,
					  "seconds", 'd', floor(secs * 1000.0 + 0.5) / 1000.0,
					  "bytes_received", 'i', (long long) received,
					  "bytes_sent", 'i', (long long) sent, NULL);
		return;
	}
	if (c->opts->quiet)
		return;
	if (total == 0)
		printf("%s: equal (%" PRId64 " rows on each side", c->side[0].table, c->side[0].rows);
	else
		printf("%s: %" PRId64 " difference(s): %" PRId64 " missing in target, %" PRId64
			   " missing in source, %" PRId64 " different (source %" PRId64
			   " rows, target %" PRId64 " rows", c->side[0].table, total, n->missing_in_target,
			   n->missing_in_source, n->different, c->side[0].rows, c->side[1].rows);
	if (n->in_flight > 0)
		printf("; %" PRId64 " in flight: written during the compare", n->in_flight);
	if (c->lsn)
		printf("; both read at WAL position %s", c->lsn);
	printf(") in %.1fs\n", secs);
}

/* The compare's state before anything is connected. */
static void
compare_init(Compare *c, const PgsOptions *opts, const PgsCompareOptions *copts)
{
	memset(c, 0, sizeof(*c));
	c->opts = opts;
	c->copts = copts;
	c->tty = isatty(STDOUT_FILENO);
	c->started = pgs_monotonic_seconds();
	c->side[0].name = "source";
	c->side[0].dsn = copts->source;
	c->side[0].label = copts->source_label;
	c->side[0].table = copts->table;
	c->side[1].name = "target";
	c->side[1].dsn = copts->target;
	c->side[1].label = copts->target_label;
	c->side[1].table = copts->target_table ? copts->target_table : copts->table;
	c->side[0].parts = c->side[1].parts = 1;
}

/* Level 1's buckets: --buckets, or about 20 000 rows a bucket, from 16 to 4096. */
static int
level1_bits(Compare *c)
{
	double		est = c->side[0].reltuples > c->side[1].reltuples ?
		c->side[0].reltuples : c->side[1].reltuples;
	int			bits = 4;


	while (bits < 12 && (double) (1 << bits) * 20000.0 < est)
		bits++;
	if (c->copts->buckets > 0)
		for (bits = 0; (1 << bits) < c->copts->buckets; bits++)
			;
	return bits;
}

/*
 * From level 1's sums, the differing buckets into level; refines them while
 * they are big, then fetches their rows (compare_find.c).
 */
static int
narrow_down(Compare *c, Level *level)
{
	int64_t		b;
	int			rc;

	level->bits = c->bits;
	for (b = 0; b < ((int64_t) 1 << c->bits); b++)
		if (memcmp(&c->acc[0][b], &c->acc[1][b], sizeof(Acc)) != 0)
			level_add(level, b, c->acc[0][b].rows > c->acc[1][b].rows ?
					  c->acc[0][b].rows : c->acc[1][b].rows);

	/* refine while differing buckets are big; then fetch their rows */
	c->pass = 2;
	while (level->n > 0 && level->maxrows > ROWS_TO_FETCH &&
		   level->bits + SPLIT_BITS <= LEVEL_BITS_MAX && level->n <= 4096)
	{
		Level		next;

		c->pass_name = "narrowing down differing buckets";
		cmp_progress(c);
		rc = refine(c, level, &next);
		if (rc != PGS_EXIT_OK)
			return rc;
		free(level->buckets);
		*level = next;
	}
	if (level->n > 0)
	{
		c->pass_name = "fetching the rows of differing buckets";
		cmp_progress(c);
		rc = fetch_rows(c, level);
		if (rc != PGS_EXIT_OK)
			return rc;
	}
	return PGS_EXIT_OK;
}

/* Frees what the compare holds: connections, results, lists, rows. */
static void
compare_free(Compare *c, List given[2][2], Level *level)
{
	int64_t		b;
	int			s;

	for (s = 0; s < 2; s++)
	{
		PQclear(c->side[s].result);
		PQclear(c->side[s].columns);
		if (c->side[s].conn)
			PQfinish(c->side[s].conn);
		pgs_error_clear(&c->side[s].err);
		free(c->side[s].sql);
		free(c->side[s].sysid);
		free(c->side[s].subs);
		free(c->side[s].slots);
		free(c->acc[s]);
		free(c->columns[s]);
		free(c->key[s]);
		list_free(&given[s][0]);
		list_free(&given[s][1]);
	}
	free_groups(c);
	for (b = 0; b < c->nrows; b++)
		free(c->rows[b].key);
	free(c->rows);
	free(c->lsn);
	free(level->buckets);
	if (c->L)
		pgs_lua_close(c->L);
}

int
pgs_cmd_compare(const PgsOptions *opts, const PgsCompareOptions *copts)
{
	Compare		c;
	Level		level;
	Counts		n = {0, 0, 0, 0};
	int64_t		received = 0;
	int64_t		sent = 0;
	int			rc = PGS_EXIT_OK;
	int			s;
	List		given[2][2];	/* by side: --columns, --key; --target-... */

	compare_init(&c, opts, copts);
	memset(&level, 0, sizeof(level));

	/* the first Ctrl-C (or SIGTERM) cancels both sides' statements */
	pgs_catch_interrupts(NULL);
	if (opts->json && (c.L = pgs_lua_new(opts)) == NULL)
		return PGS_EXIT_USAGE;
	split_list(copts->columns, &given[0][0]);
	split_list(copts->key, &given[0][1]);
	split_list(copts->target_columns, &given[1][0]);
	split_list(copts->target_key, &given[1][1]);

	for (s = 0; s < 2 && rc == PGS_EXIT_OK; s++)
		rc = open_side(&c, &c.side[s]);
	if (rc == PGS_EXIT_OK)
		rc = begin_snapshots(&c);
	for (s = 0; s < 2 && rc == PGS_EXIT_OK; s++)
		rc = describe_side(&c, &c.side[s], given);
	if (rc == PGS_EXIT_OK)
		rc = check_columns(&c);
	if (rc != PGS_EXIT_OK)
		goto done;

	c.bits = level1_bits(&c);
	rc = pass_buckets(&c);
	if (rc != PGS_EXIT_OK)
		goto done;

	rc = narrow_down(&c, &level);
	if (rc != PGS_EXIT_OK)
		goto done;
	group_rows(&c);
	if (c.ngroups > 0 && copts->recheck > 0 && !pgs_interrupted)
	{
		rc = recheck_rounds(&c);
		if (rc != PGS_EXIT_OK)
			goto done;
	}
	received = wire_received;
	sent = wire_sent;
	if (c.tty && !opts->quiet && !opts->json)
		pgs_live_clear();
	if (pgs_interrupted)
	{
		pgs_errorf("compare interrupted\n");
		rc = PGS_EXIT_USAGE;
		goto done;
	}
	report_groups(&c, &n);
	print_summary(&c, &n, received, sent);
	rc = n.missing_in_target + n.missing_in_source + n.different == 0 ? PGS_EXIT_OK : PGS_EXIT_FAIL;

done:
	if (c.tty && !opts->quiet && !opts->json)
		pgs_live_clear();
	/* the other side failed: stop this one's scan rather than leave it running */
	cancel_busy(&c);
	compare_free(&c, given, &level);
	return rc;
}
