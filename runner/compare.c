/*
 * compare.c
 *	  pgshift compare: one table on two servers, compared by chunk checksums.
 *
 * Each side runs in a REPEATABLE READ READ ONLY transaction, so every query
 * on it sees one snapshot.  Both servers work at once (pgs_send and
 * pgs_wait_any of conn.c):
 *
 *	 1. each side sums its table into 2^n key-hash buckets
 *		(shift.chunk_checksums with buckets => 2^n), in page ranges so that
 *		progress can be shown;
 *	 2. buckets that differ and hold many rows are split 256 ways
 *		(bucket b of 2^n is buckets 256b .. 256b+255 of 2^(n+8)) and summed
 *		again, only those;
 *	 3. the rows of the small differing buckets are fetched as key, key hash
 *		and row hash (shift.row_hashes) and matched here.
 *
 * Only sums and the rows of differing buckets cross the wire.  Exit status:
 * 0 equal, 1 different, 2 usage or connection error.
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgshift.h"

#define LEVEL_BITS_MAX	24		/* shift.chunk_checksums' limit */
#define SPLIT_BITS		8		/* each refinement splits a bucket 256 ways */
#define ROWS_TO_FETCH	512		/* a bucket this small is fetched row by row */
#define PARTS			20		/* page ranges per side, for progress */

typedef struct Acc
{
	int64_t		rows;
	uint64_t	lo;
	uint64_t	hi;
} Acc;

typedef struct Row
{
	char		key_hash[33];
	char		row_hash[33];
	int			side;
	char	   *key;			/* text[] literal */
} Row;

typedef struct Side
{
	const char *name;			/* "source" or "target" */
	const char *dsn;
	const char *table;
	PGconn	   *conn;
	bool		busy;
	PGresult   *result;			/* of the last statement, or NULL */
	PgsError	err;
	bool		failed;
	char	   *sql;			/* the statement in flight */
	int64_t		pages;
	double		reltuples;
	PGresult   *columns;		/* shift.checksum_columns: label, type, class, is_key */
	int			next_part;
	int			parts_done;
	int64_t		rows;
} Side;

typedef struct Compare
{
	const PgsOptions *opts;
	const PgsCompareOptions *copts;
	Side		side[2];
	char	   *columns[2];		/* text[] literals (see side_lists) or NULL */
	char	   *key[2];
	int			bits;			/* level-1 buckets: 2^bits */
	Acc		   *acc[2];
	Row		   *rows;
	int64_t		nrows;
	int64_t		maxrows;
	int			pass;
	const char *pass_name;
	double		started;
	bool		tty;
	lua_State  *L;				/* with --json: the prelude, whose writer writes it */
} Compare;

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

static void *
xmalloc(size_t n)
{
	void	   *p = malloc(n ? n : 1);

	if (p == NULL)
	{
		pgs_errorf("out of memory\n");
		exit(PGS_EXIT_USAGE);
	}
	return p;
}

static char *
xstrdup(const char *s)
{
	char	   *p = xmalloc(strlen(s) + 1);

	strcpy(p, s);
	return p;
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
	char	  **ne = realloc(l->elem, sizeof(char *) * (l->n + 1));

	if (ne == NULL)
	{
		pgs_errorf("out of memory\n");
		exit(PGS_EXIT_USAGE);
	}
	l->elem = ne;
	l->elem[l->n] = xmalloc(len + 1);
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
 * "a,b,lower(c, d)" -> a | b | lower(c, d): the command line's list split at
 * commas outside parentheses and double quotes (the spaces after a comma
 * dropped); NULL: none given.
 */
static void
split_list(const char *text, List *l)
{
	int			depth = 0;
	bool		quoted = false;
	const char *start = text;
	const char *p;

	memset(l, 0, sizeof(*l));
	if (text == NULL)
		return;
	for (p = text; *p; p++)
	{
		if (*p == '"')
			quoted = !quoted;
		if (!quoted && *p == '(')
			depth++;
		if (!quoted && *p == ')' && depth > 0)
			depth--;
		if (!quoted && depth == 0 && *p == ',')
		{
			list_add(l, start, p - start);
			while (p[1] == ' ')
				p++;
			start = p + 1;
		}
	}
	list_add(l, start, p - start);
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
static bool
side_send(Side *s, const char *sql, int nparams, const char *const *values)
{
	free(s->sql);
	s->sql = xstrdup(sql);
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

static void cmp_progress(Compare *c, bool force);

/*
 * Waits until a side finishes its statement (or both, when both is true),
 * cancelling both on Ctrl-C and redrawing progress once a second.  Returns
 * the index of a side that finished, or -1 when none is busy.
 */
static int
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
			for (i = 0; i < 2; i++)
				if (c->side[i].busy)
					pgs_cancel(c->side[i].conn);
			cancelled = true;
		}
		if (pgs_monotonic_seconds() >= next)
		{
			cmp_progress(c, false);
			next = pgs_monotonic_seconds() + 1.0;
		}
	}
}

/* Runs one statement on a side and waits for it (setup, not the scans). */
static PGresult *
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

static int
side_error(Compare *c, Side *s, const char *what)
{
	char		context[512];

	snprintf(context, sizeof(context), "%s on the %s (%s)", what, s->name, s->dsn ? s->dsn : "libpq environment");
	pgs_report_error(&s->err, context);
	return PGS_EXIT_USAGE;
}

/* ---------------------------------------------------------------- progress and output */

static void
cmp_progress(Compare *c, bool force)
{
	char		line[256];
	double		el = pgs_monotonic_seconds() - c->started;

	if (!c->tty || c->opts->quiet || c->opts->json)
		return;
	if (c->pass == 1)
		snprintf(line, sizeof(line), "compare %s: checksums  source %3d%%  target %3d%%  %.0fs",
				 c->side[0].table, c->side[0].parts_done * 100 / PARTS,
				 c->side[1].parts_done * 100 / PARTS, el);
	else
		snprintf(line, sizeof(line), "compare %s: %s  %.0fs", c->side[0].table, c->pass_name, el);
	pgs_live_update(line);
	(void) force;
}

/* ---------------------------------------------------------------- the passes */

static void
parse_checksum(const char *hex, Acc *a)
{
	char		part[17];

	memcpy(part, hex, 16);
	part[16] = '\0';
	a->hi += strtoull(part, NULL, 16);
	a->lo += strtoull(hex + 16, NULL, 16);
}

/* Pass 1: every bucket of 2^bits, in page ranges, both sides at once. */
static int
pass_buckets(Compare *c)
{
	static const char *sql =
		"SELECT chunk, rows, checksum FROM shift.chunk_checksums($1::regclass, $2::text[], $3::text[],"
		" buckets => $4::int4, pages => $5::int8range)";
	char		buckets[16];
	int			i;

	snprintf(buckets, sizeof(buckets), "%d", 1 << c->bits);
	c->pass = 1;
	for (i = 0; i < 2; i++)
	{
		c->acc[i] = calloc((size_t) 1 << c->bits, sizeof(Acc));
		if (c->acc[i] == NULL)
			return PGS_EXIT_USAGE;
	}
	for (;;)
	{
		int			done;

		for (i = 0; i < 2; i++)
		{
			Side	   *s = &c->side[i];
			char		range[64];
			const char *values[5];
			int64_t		per = s->pages / PARTS + 1;

			if (s->busy || s->failed || s->next_part >= PARTS)
				continue;
			if (s->next_part == PARTS - 1)
				snprintf(range, sizeof(range), "[%" PRId64 ",)", per * s->next_part);
			else
				snprintf(range, sizeof(range), "[%" PRId64 ",%" PRId64 ")",
						 per * s->next_part, per * (s->next_part + 1));
			values[0] = s->table;
			values[1] = c->columns[i];
			values[2] = c->key[i];
			values[3] = buckets;
			values[4] = range;
			s->next_part++;
			side_send(s, sql, 5, values);
		}
		done = wait_sides(c);
		if (done < 0)
		{
			for (i = 0; i < 2; i++)
				if (c->side[i].failed)
					return side_error(c, &c->side[i], "computing bucket checksums");
			break;
		}
		if (c->side[done].failed)
			return side_error(c, &c->side[done], "computing bucket checksums");
		{
			PGresult   *res = c->side[done].result;
			int			r;

			for (r = 0; r < PQntuples(res); r++)
			{
				long		b = strtol(PQgetvalue(res, r, 0), NULL, 10);
				int64_t		rows = strtoll(PQgetvalue(res, r, 1), NULL, 10);
				Acc		   *a = &c->acc[done][b];

				a->rows += rows;
				c->side[done].rows += rows;
				parse_checksum(PQgetvalue(res, r, 2), a);
			}
			c->side[done].parts_done++;
		}
	}
	return PGS_EXIT_OK;
}

/* An int4[] literal of bucket numbers, malloc'd. */
static char *
int_list(const int64_t *v, int64_t n)
{
	char	   *out = xmalloc((size_t) n * 12 + 3);
	char	   *o = out;
	int64_t		i;

	*o++ = '{';
	for (i = 0; i < n; i++)
		o += sprintf(o, "%s%" PRId64, i ? "," : "", v[i]);
	*o++ = '}';
	*o = '\0';
	return out;
}

/* Buckets (at level bits) that differ; sums from acc, or from a refinement result. */
typedef struct Level
{
	int			bits;
	int64_t    *buckets;		/* differing */
	int64_t		n;
	int64_t		maxrows;		/* the most rows a side has in one of them */
} Level;

static void
level_add(Level *l, int64_t b, int64_t rows)
{
	if ((l->n & (l->n - 1)) == 0)
	{
		int64_t    *nb = realloc(l->buckets, sizeof(int64_t) * (l->n ? l->n * 2 : 1));

		if (nb == NULL)
		{
			pgs_errorf("out of memory\n");
			exit(PGS_EXIT_USAGE);
		}
		l->buckets = nb;
	}
	l->buckets[l->n++] = b;
	if (rows > l->maxrows)
		l->maxrows = rows;
}

/* Both sides sum the children of the differing buckets of l; returns the next level. */
static int
refine(Compare *c, Level *l, Level *next)
{
	static const char *sql =
		"SELECT chunk, rows, checksum FROM shift.chunk_checksums($1::regclass, $2::text[], $3::text[],"
		" buckets => $4::int4, only_buckets => $5::int4[])";
	int64_t		nchild = l->n << SPLIT_BITS;
	int64_t    *children = xmalloc(sizeof(int64_t) * nchild);
	Acc		   *sums[2];
	char	   *list;
	char		buckets[16];
	int64_t		i;
	int			s;

	for (i = 0; i < nchild; i++)
		children[i] = (l->buckets[i >> SPLIT_BITS] << SPLIT_BITS) | (i & ((1 << SPLIT_BITS) - 1));
	list = int_list(children, nchild);
	snprintf(buckets, sizeof(buckets), "%d", 1 << (l->bits + SPLIT_BITS));
	for (s = 0; s < 2; s++)
	{
		const char *values[5] = {c->side[s].table, c->columns[s], c->key[s], buckets, list};

		side_send(&c->side[s], sql, 5, values);
	}
	while (wait_sides(c) >= 0)
		;
	for (s = 0; s < 2; s++)
		if (c->side[s].failed)
		{
			free(children);
			free(list);
			return side_error(c, &c->side[s], "refining bucket checksums");
		}

	/* children are sorted: index a child by its position in children */
	for (s = 0; s < 2; s++)
	{
		PGresult   *res = c->side[s].result;
		int			r;

		sums[s] = calloc(nchild, sizeof(Acc));
		for (r = 0; r < PQntuples(res); r++)
		{
			int64_t		b = strtoll(PQgetvalue(res, r, 0), NULL, 10);
			int64_t		lo = 0,
						hi = nchild - 1;

			while (lo < hi)
			{
				int64_t		mid = (lo + hi) / 2;

				if (children[mid] < b)
					lo = mid + 1;
				else
					hi = mid;
			}
			sums[s][lo].rows = strtoll(PQgetvalue(res, r, 1), NULL, 10);
			parse_checksum(PQgetvalue(res, r, 2), &sums[s][lo]);
		}
	}
	memset(next, 0, sizeof(*next));
	next->bits = l->bits + SPLIT_BITS;
	for (i = 0; i < nchild; i++)
		if (memcmp(&sums[0][i], &sums[1][i], sizeof(Acc)) != 0)
			level_add(next, children[i],
					  sums[0][i].rows > sums[1][i].rows ? sums[0][i].rows : sums[1][i].rows);
	free(sums[0]);
	free(sums[1]);
	free(children);
	free(list);
	return PGS_EXIT_OK;
}

/* Fetches key, key hash and row hash of the rows in l's buckets from both sides. */
static int
fetch_rows(Compare *c, Level *l)
{
	static const char *sql =
		"SELECT key::text, key_hash, row_hash FROM shift.row_hashes($1::regclass, $2::text[], $3::text[],"
		" buckets => $4::int4, only_buckets => $5::int4[])";
	char	   *list = int_list(l->buckets, l->n);
	char		buckets[16];
	int			s;

	snprintf(buckets, sizeof(buckets), "%d", 1 << l->bits);
	for (s = 0; s < 2; s++)
	{
		const char *values[5] = {c->side[s].table, c->columns[s], c->key[s], buckets, list};

		side_send(&c->side[s], sql, 5, values);
	}
	while (wait_sides(c) >= 0)
		;
	free(list);
	for (s = 0; s < 2; s++)
	{
		PGresult   *res = c->side[s].result;
		int			r;

		if (c->side[s].failed)
			return side_error(c, &c->side[s], "fetching the rows of differing buckets");
		for (r = 0; r < PQntuples(res); r++)
		{
			Row		   *row;

			if (c->nrows == c->maxrows)
			{
				Row		   *nr;

				c->maxrows = c->maxrows ? c->maxrows * 2 : 1024;
				nr = realloc(c->rows, sizeof(Row) * c->maxrows);
				if (nr == NULL)
				{
					pgs_errorf("out of memory\n");
					exit(PGS_EXIT_USAGE);
				}
				c->rows = nr;
			}
			row = &c->rows[c->nrows++];
			row->key = xstrdup(PQgetvalue(res, r, 0));
			snprintf(row->key_hash, sizeof(row->key_hash), "%s", PQgetvalue(res, r, 1));
			snprintf(row->row_hash, sizeof(row->row_hash), "%s", PQgetvalue(res, r, 2));
			row->side = s;
		}
	}
	return PGS_EXIT_OK;
}

static int
cmp_row(const void *pa, const void *pb)
{
	const Row  *a = pa;
	const Row  *b = pb;
	int			r = strcmp(a->key_hash, b->key_hash);

	if (r == 0)
		r = strcmp(a->row_hash, b->row_hash);
	if (r == 0)
		r = a->side - b->side;
	return r;
}

typedef struct Counts
{
	int64_t		missing_in_target;
	int64_t		missing_in_source;
	int64_t		different;
} Counts;

static void
report(Compare *c, const char *kind, const Row *row, Counts *n)
{
	if (strcmp(kind, "different") == 0)
		n->different++;
	else if (strcmp(kind, "missing_in_target") == 0)
		n->missing_in_target++;
	else
		n->missing_in_source++;
	if (c->opts->json)
		pgs_json_line(c->L, "event", 's', "difference", "kind", 's', kind,
					  "key", 's', row->key, NULL);
	else if (!c->opts->quiet)
		printf("%-18s %s\n", kind, row->key);
}

/*
 * Matches the fetched rows: within one key hash, equal row hashes on both
 * sides cancel in pairs; the rest pairs up as different, or is missing.
 */
static void
match_rows(Compare *c, Counts *n)
{
	int64_t		i = 0;

	qsort(c->rows, c->nrows, sizeof(Row), cmp_row);
	while (i < c->nrows)
	{
		int64_t		end = i;
		int64_t		j;
		const Row **left[2];
		int64_t		nl[2] = {0, 0};

		while (end < c->nrows && strcmp(c->rows[end].key_hash, c->rows[i].key_hash) == 0)
			end++;
		left[0] = xmalloc(sizeof(Row *) * (end - i));
		left[1] = xmalloc(sizeof(Row *) * (end - i));
		for (j = i; j < end;)
		{
			int64_t		k = j;
			int64_t		cnt[2] = {0, 0};
			int64_t		m;
			int64_t		both;

			while (k < end && strcmp(c->rows[k].row_hash, c->rows[j].row_hash) == 0)
				cnt[c->rows[k++].side]++;
			both = cnt[0] < cnt[1] ? cnt[0] : cnt[1];
			for (m = both; m < cnt[0]; m++)
				left[0][nl[0]++] = &c->rows[j + m];
			for (m = both; m < cnt[1]; m++)
				left[1][nl[1]++] = &c->rows[j + cnt[0] + m];
			j = k;
		}
		for (j = 0; j < nl[0] || j < nl[1]; j++)
		{
			if (j < nl[0] && j < nl[1])
				report(c, "different", left[0][j], n);
			else if (j < nl[0])
				report(c, "missing_in_target", left[0][j], n);
			else
				report(c, "missing_in_source", left[1][j], n);
		}
		free(left[0]);
		free(left[1]);
		i = end;
	}
}

/* ---------------------------------------------------------------- the command */

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
	values = xmalloc(sizeof(char *) * (cols->n + key->n));
	sql = xmalloc(128 + 8 * (size_t) (cols->n + key->n));
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
		c->columns[i] = xstrdup(PQgetvalue(res, 0, 0));
	if (!PQgetisnull(res, 0, 1))
		c->key[i] = xstrdup(PQgetvalue(res, 0, 1));
	return PGS_EXIT_OK;
}

/*
 * Connects side i, starts its snapshot and reads its table's size and the
 * columns to compare.  The target's lists default to the source's, by name
 * (as in shift.compare), not to the target's own order.
 */
static int
open_side(Compare *c, Side *s, List given[2][2])
{
	static const char *size_sql =
		"SELECT coalesce(max(pg_catalog.pg_relation_size(relid)"
		"   / pg_catalog.current_setting('block_size')::int8), 0),"
		" (SELECT reltuples FROM pg_catalog.pg_class WHERE oid = $1::regclass)"
		" FROM pg_catalog.pg_partition_tree($1::regclass) WHERE isleaf";
	PGresult   *res;
	const char *values[1] = {s->table};
	int			rc;

	s->conn = pgs_connect(s->dsn, "pgshift compare", &s->err);
	if (s->conn == NULL)
		return side_error(c, s, "connecting");
	rc = pgs_check_extension(s->conn, &s->err);
	if (rc != PGS_EXIT_OK)
		return side_error(c, s, "checking the extension");
	if (side_exec(c, s, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL) == NULL)
		return side_error(c, s, "starting a snapshot");
	res = side_exec(c, s, size_sql, 1, values);
	if (res == NULL)
		return side_error(c, s, "finding the table");
	s->pages = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	s->reltuples = strtod(PQgetvalue(res, 0, 1), NULL);
	{
		int			i = s == &c->side[0] ? 0 : 1;
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
		int			i = s == &c->side[0] ? 0 : 1;
		const char *cv[3] = {s->table, c->columns[i], c->key[i]};

		res = side_exec(c, s, "SELECT label, type, class, is_key FROM shift.checksum_columns("
						"$1::regclass, $2::text[], $3::text[]) ORDER BY is_key, ord", 3, cv);
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

int
pgs_cmd_compare(const PgsOptions *opts, const PgsCompareOptions *copts)
{
	Compare		c;
	Level		level;
	Counts		n = {0, 0, 0};
	int64_t		received = 0;
	int64_t		sent = 0;
	double		est;
	int			rc = PGS_EXIT_OK;
	int			s;
	int64_t		b;
	List		given[2][2];	/* by side: --columns, --key; --target-... */

	memset(&c, 0, sizeof(c));
	memset(&level, 0, sizeof(level));
	c.opts = opts;
	c.copts = copts;
	c.tty = isatty(STDOUT_FILENO);
	c.started = pgs_monotonic_seconds();
	c.side[0].name = "source";
	c.side[0].dsn = copts->source;
	c.side[0].table = copts->table;
	c.side[1].name = "target";
	c.side[1].dsn = copts->target;
	c.side[1].table = copts->target_table ? copts->target_table : copts->table;
	split_list(copts->columns, &given[0][0]);
	split_list(copts->key, &given[0][1]);
	split_list(copts->target_columns, &given[1][0]);
	split_list(copts->target_key, &given[1][1]);

	/* the first Ctrl-C (or SIGTERM) cancels both sides' statements */
	pgs_catch_interrupts(NULL);
	if (opts->json && (c.L = pgs_lua_new(opts)) == NULL)
		return PGS_EXIT_USAGE;

	for (s = 0; s < 2 && rc == PGS_EXIT_OK; s++)
		rc = open_side(&c, &c.side[s], given);
	if (rc == PGS_EXIT_OK)
		rc = check_columns(&c);
	if (rc != PGS_EXIT_OK)
		goto done;

	/* level 1: about 20 000 rows a bucket, from 16 to 4096 buckets */
	est = c.side[0].reltuples > c.side[1].reltuples ? c.side[0].reltuples : c.side[1].reltuples;
	c.bits = 4;
	while (c.bits < 12 && (double) (1 << c.bits) * 20000.0 < est)
		c.bits++;
	if (copts->buckets > 0)
		for (c.bits = 0; (1 << c.bits) < copts->buckets; c.bits++)
			;

	rc = pass_buckets(&c);
	if (rc != PGS_EXIT_OK)
		goto done;

	level.bits = c.bits;
	for (b = 0; b < ((int64_t) 1 << c.bits); b++)
		if (memcmp(&c.acc[0][b], &c.acc[1][b], sizeof(Acc)) != 0)
			level_add(&level, b, c.acc[0][b].rows > c.acc[1][b].rows ?
					  c.acc[0][b].rows : c.acc[1][b].rows);

	/* refine while differing buckets are big; then fetch their rows */
	c.pass = 2;
	while (level.n > 0 && level.maxrows > ROWS_TO_FETCH &&
		   level.bits + SPLIT_BITS <= LEVEL_BITS_MAX && level.n <= 4096)
	{
		Level		next;

		c.pass_name = "narrowing down differing buckets";
		cmp_progress(&c, true);
		rc = refine(&c, &level, &next);
		if (rc != PGS_EXIT_OK)
			goto done;
		free(level.buckets);
		level = next;
	}
	if (level.n > 0)
	{
		c.pass_name = "fetching the rows of differing buckets";
		cmp_progress(&c, true);
		rc = fetch_rows(&c, &level);
		if (rc != PGS_EXIT_OK)
			goto done;
	}
	received = wire_received;
	sent = wire_sent;
	if (c.tty && !opts->quiet && !opts->json)
		pgs_live_clear();
	match_rows(&c, &n);
	if (pgs_interrupted)
	{
		pgs_errorf("compare interrupted\n");
		rc = PGS_EXIT_USAGE;
		goto done;
	}

	{
		int64_t		total = n.missing_in_target + n.missing_in_source + n.different;
		double		secs = pgs_monotonic_seconds() - c.started;

		if (opts->json)
			pgs_json_line(c.L, "event", 's', "compare",
						  "source", 's', c.side[0].table, "target", 's', c.side[1].table,
						  "equal", 'b', total == 0,
						  "source_rows", 'i', (long long) c.side[0].rows,
						  "target_rows", 'i', (long long) c.side[1].rows,
						  "missing_in_target", 'i', (long long) n.missing_in_target,
						  "missing_in_source", 'i', (long long) n.missing_in_source,
						  "different", 'i', (long long) n.different,
						  "buckets", 'i', (long long) 1 << c.bits,
						  "seconds", 'd', floor(secs * 1000.0 + 0.5) / 1000.0,
						  "bytes_received", 'i', (long long) received,
						  "bytes_sent", 'i', (long long) sent, NULL);
		else if (!opts->quiet)
		{
			if (total == 0)
				printf("%s: equal (%" PRId64 " rows on each side) in %.1fs\n",
					   c.side[0].table, c.side[0].rows, secs);
			else
				printf("%s: %" PRId64 " difference(s): %" PRId64 " missing in target, %" PRId64
					   " missing in source, %" PRId64 " different (source %" PRId64
					   " rows, target %" PRId64 " rows) in %.1fs\n",
					   c.side[0].table, total, n.missing_in_target, n.missing_in_source,
					   n.different, c.side[0].rows, c.side[1].rows, secs);
		}
		rc = total == 0 ? PGS_EXIT_OK : PGS_EXIT_FAIL;
	}

done:
	if (c.tty && !opts->quiet && !opts->json)
		pgs_live_clear();
	for (s = 0; s < 2; s++)
		if (c.side[s].busy)
			pgs_cancel(c.side[s].conn);	/* the other side failed: stop this one's scan */
	for (s = 0; s < 2; s++)
	{
		PQclear(c.side[s].result);
		PQclear(c.side[s].columns);
		if (c.side[s].conn)
			PQfinish(c.side[s].conn);
		pgs_error_clear(&c.side[s].err);
		free(c.side[s].sql);
		free(c.acc[s]);
		free(c.columns[s]);
		free(c.key[s]);
		list_free(&given[s][0]);
		list_free(&given[s][1]);
	}
	for (b = 0; b < c.nrows; b++)
		free(c.rows[b].key);
	free(c.rows);
	free(level.buckets);
	if (c.L)
		pgs_lua_close(c.L);
	return rc;
}
