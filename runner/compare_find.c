/*
 * compare_find.c
 *	  pgshift compare, steps 1 to 3 (compare.c): the passes that find the
 *	  rows that differ.  Both sides sum their table into key-hash buckets
 *	  (shift.chunk_checksums), in page ranges for progress; buckets that
 *	  differ and hold many rows are split 256 ways and summed again; the
 *	  rows of the small differing buckets are fetched as key, key hash and
 *	  row hash (shift.row_hashes).  Only sums and those rows cross the
 *	  wire; every statement runs on both servers at once, inside each
 *	  side's snapshot.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "compare.h"

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
int
pass_buckets(Compare *c)
{
	static const char *sql =
		"SELECT chunk, rows, checksum FROM shift.chunk_checksums($1::pg_catalog.regclass,"
		" $2::pg_catalog.text[], $3::pg_catalog.text[], buckets => $4::pg_catalog.int4,"
		" pages => $5::pg_catalog.int8range)";
	char		buckets[16];
	int			i;

	snprintf(buckets, sizeof(buckets), "%d", 1 << c->bits);
	c->pass = 1;
	for (i = 0; i < 2; i++)
		c->acc[i] = pgs_calloc((size_t) 1 << c->bits, sizeof(Acc));
	for (;;)
	{
		int			done;

		for (i = 0; i < 2; i++)
		{
			Side	   *s = &c->side[i];
			char		range[64];
			const char *values[5];
			int64_t		per = s->pages / s->parts + 1;

			if (s->busy || s->failed || s->next_part >= s->parts)
				continue;
			if (s->next_part == s->parts - 1)
				snprintf(range, sizeof(range), "[%" PRId64 ",)", per * s->next_part);
			else
				snprintf(range, sizeof(range), "[%" PRId64 ",%" PRId64 ")",
						 per * s->next_part, per * (s->next_part + 1));
			values[0] = s->table;
			values[1] = c->columns[i];
			values[2] = c->key[i];
			values[3] = buckets;
			values[4] = s->paged ? range : NULL;	/* a view has no pages: one part */
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
	char	   *out = pgs_malloc((size_t) n * 12 + 3);
	char	   *o = out;
	int64_t		i;

	*o++ = '{';
	for (i = 0; i < n; i++)
		o += sprintf(o, "%s%" PRId64, i ? "," : "", v[i]);
	*o++ = '}';
	*o = '\0';
	return out;
}

/*
 * Runs sql on both sides at once, with the table, columns, key, 2^bits
 * buckets and the int4[] list of buckets as $1..$5, and waits for both.
 */
static void
run_on_buckets(Compare *c, const char *sql, int bits, const char *list)
{
	char		buckets[16];
	int			s;

	snprintf(buckets, sizeof(buckets), "%d", 1 << bits);
	for (s = 0; s < 2; s++)
	{
		const char *values[5] = {c->side[s].table, c->columns[s], c->key[s], buckets, list};

		side_send(&c->side[s], sql, 5, values);
	}
	while (wait_sides(c) >= 0)
		;
}

void
level_add(Level *l, int64_t b, int64_t rows)
{
	if ((l->n & (l->n - 1)) == 0)
		l->buckets = pgs_realloc(l->buckets, sizeof(int64_t) * (l->n ? l->n * 2 : 1));
	l->buckets[l->n++] = b;
	if (rows > l->maxrows)
		l->maxrows = rows;
}

/* Both sides sum the children of the differing buckets of l; returns the next level. */
int
refine(Compare *c, Level *l, Level *next)
{
	static const char *sql =
		"SELECT chunk, rows, checksum FROM shift.chunk_checksums($1::pg_catalog.regclass,"
		" $2::pg_catalog.text[], $3::pg_catalog.text[], buckets => $4::pg_catalog.int4,"
		" only_buckets => $5::pg_catalog.int4[])";
	int64_t		nchild = l->n << SPLIT_BITS;
	int64_t    *children = pgs_malloc(sizeof(int64_t) * nchild);
	Acc		   *sums[2];
	char	   *list;
	int64_t		i;
	int			s;

	for (i = 0; i < nchild; i++)
		children[i] = (l->buckets[i >> SPLIT_BITS] << SPLIT_BITS) | (i & ((1 << SPLIT_BITS) - 1));
	list = int_list(children, nchild);
	run_on_buckets(c, sql, l->bits + SPLIT_BITS, list);
	free(list);
	for (s = 0; s < 2; s++)
		if (c->side[s].failed)
		{
			free(children);
			return side_error(c, &c->side[s], "refining bucket checksums");
		}

	/* children are sorted: index a child by its position in children */
	for (s = 0; s < 2; s++)
	{
		PGresult   *res = c->side[s].result;
		int			r;

		sums[s] = pgs_calloc(nchild, sizeof(Acc));
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
	return PGS_EXIT_OK;
}

static void
add_row(Compare *c, const char *key, const char *key_hash, const char *row_hash, int side)
{
	Row		   *row;

	if (c->nrows == c->maxrows)
	{
		c->maxrows = c->maxrows ? c->maxrows * 2 : 1024;
		c->rows = pgs_realloc(c->rows, sizeof(Row) * c->maxrows);
	}
	row = &c->rows[c->nrows++];
	row->key = pgs_strdup(key);
	snprintf(row->key_hash, sizeof(row->key_hash), "%s", key_hash);
	snprintf(row->row_hash, sizeof(row->row_hash), "%s", row_hash);
	row->side = side;
}

/* Fetches key, key hash and row hash of the rows in l's buckets from both sides. */
int
fetch_rows(Compare *c, Level *l)
{
	static const char *sql =
		"SELECT key::pg_catalog.text, key_hash, row_hash FROM shift.row_hashes("
		"$1::pg_catalog.regclass, $2::pg_catalog.text[], $3::pg_catalog.text[],"
		" buckets => $4::pg_catalog.int4, only_buckets => $5::pg_catalog.int4[])";
	char	   *list = int_list(l->buckets, l->n);
	int			s;

	run_on_buckets(c, sql, l->bits, list);
	free(list);
	for (s = 0; s < 2; s++)
	{
		PGresult   *res = c->side[s].result;
		int			r;

		if (c->side[s].failed)
			return side_error(c, &c->side[s], "fetching the rows of differing buckets");
		for (r = 0; r < PQntuples(res); r++)
			add_row(c, PQgetvalue(res, r, 0), PQgetvalue(res, r, 1), PQgetvalue(res, r, 2), s);
	}
	return PGS_EXIT_OK;
}
