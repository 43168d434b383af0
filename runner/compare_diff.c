/*
 * compare_diff.c
 *	  pgshift compare, step 4 (compare.c): the differences.  The fetched
 *	  rows are grouped by key hash and the keys whose rows differ kept,
 *	  with each side's row hashes; unless --recheck 0, once the snapshots
 *	  have ended those keys are read again (shift.key_rows) up to N times,
 *	  after 0.5, 1, 2, ... s, and a key whose rows became equal or kept
 *	  changing is reported in flight rather than as a difference.
 */
#include <stdlib.h>
#include <string.h>

#include "compare.h"

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

static int
cmp_str(const void *pa, const void *pb)
{
	return strcmp(*(char *const *) pa, *(char *const *) pb);
}

static void
report(Compare *c, const char *kind, const char *key, Counts *n)
{
	if (strcmp(kind, "different") == 0)
		n->different++;
	else if (strcmp(kind, "missing_in_target") == 0)
		n->missing_in_target++;
	else if (strcmp(kind, "missing_in_source") == 0)
		n->missing_in_source++;
	else
		n->in_flight++;
	if (c->opts->json)
		pgs_json_line(c->L, "event", 's', "difference", "kind", 's', kind,
					  "key", 's', key, NULL);
	else if (!c->opts->quiet)
		printf("%-18s %s\n", kind, key);
}

/*
 * The differences between two sides' rows of one key (row hashes, sorted):
 * equal hashes cancel in pairs; what remains pairs up as different, the
 * rest is missing on one side.  Reports each with kind, or as in flight.
 */
static int
pair_rows(Compare *c, char **a, int na, char **b, int nb, const char *key, const char *as,
		  Counts *n)
{
	int			i = 0;
	int			j = 0;
	int			left[2] = {0, 0};
	int			k;

	while (i < na || j < nb)
	{
		int			r = i == na ? 1 : j == nb ? -1 : strcmp(a[i], b[j]);

		if (r == 0)
		{
			i++;
			j++;
		}
		else if (r < 0)
		{
			left[0]++;
			i++;
		}
		else
		{
			left[1]++;
			j++;
		}
	}
	for (k = 0; k < left[0] || k < left[1]; k++)
	{
		if (n)
			report(c, as ? as : k < left[0] && k < left[1] ? "different" :
				   k < left[0] ? "missing_in_target" : "missing_in_source", key, n);
	}
	return left[0] > left[1] ? left[0] : left[1];
}

/*
 * Groups the fetched rows by key hash and keeps the keys whose rows differ,
 * with each side's row hashes.
 */
void
group_rows(Compare *c)
{
	int64_t		i = 0;

	if (c->nrows > 1)
		qsort(c->rows, c->nrows, sizeof(Row), cmp_row);
	while (i < c->nrows)
	{
		int64_t		end = i;
		int64_t		j;
		Group		g;
		int			s;

		while (end < c->nrows && strcmp(c->rows[end].key_hash, c->rows[i].key_hash) == 0)
			end++;
		memset(&g, 0, sizeof(g));
		for (s = 0; s < 2; s++)
			g.first[s] = pgs_malloc(sizeof(char *) * (end - i));
		for (j = i; j < end; j++)
		{
			s = c->rows[j].side;
			g.first[s][g.nfirst[s]++] = c->rows[j].row_hash;
		}
		if (pair_rows(c, g.first[0], g.nfirst[0], g.first[1], g.nfirst[1], NULL, NULL, NULL) == 0)
		{
			free(g.first[0]);
			free(g.first[1]);
			i = end;
			continue;
		}
		memcpy(g.key_hash, c->rows[i].key_hash, sizeof(g.key_hash));
		g.key = c->rows[i].key;
		for (s = 0; s < 2; s++)
		{
			g.last[s] = g.first[s];
			g.nlast[s] = g.nfirst[s];
		}
		if ((c->ngroups & (c->ngroups - 1)) == 0)
			c->groups = pgs_realloc(c->groups, sizeof(Group) * (c->ngroups ? c->ngroups * 2 : 1));
		c->groups[c->ngroups++] = g;
		i = end;
	}
}

static int
find_group(Compare *c, const char *key_hash)
{
	int64_t		lo = 0;
	int64_t		hi = c->ngroups;

	while (lo < hi)
	{
		int64_t		mid = (lo + hi) / 2;

		if (strcmp(c->groups[mid].key_hash, key_hash) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < c->ngroups && strcmp(c->groups[lo].key_hash, key_hash) == 0 ? (int) lo : -1;
}

static bool
same_hashes(char **a, int na, char **b, int nb)
{
	int			i;

	if (na != nb)
		return false;
	for (i = 0; i < na; i++)
		if (strcmp(a[i], b[i]) != 0)
			return false;
	return true;
}

/* Frees a group's last read unless it is the first one (which c->rows owns). */
static void
free_last(Group *gr, int s)
{
	int			k;

	if (gr->last[s] == gr->first[s])
		return;
	for (k = 0; k < gr->nlast[s]; k++)
		free(gr->last[s][k]);
	free(gr->last[s]);
}

/*
 * Reads the keys still differing again on both sides (each side a new
 * snapshot, both at once), KEYS_PER_READ keys a statement, each key a
 * parameter: a key now equal was in flight; one whose rows changed since
 * the read before (the snapshot's, first) is moving.
 */
static int
recheck(Compare *c)
{
	static const char *head =
		"SELECT key_hash, row_hash FROM shift.key_rows($1::pg_catalog.regclass, ARRAY[";
	static const char *tail =
		"]::pg_catalog.text[], $2::pg_catalog.text[], $3::pg_catalog.text[])";
	int64_t    *open = pgs_malloc(sizeof(int64_t) * (c->ngroups ? c->ngroups : 1));
	int64_t		nopen = 0;
	int64_t		first;
	char	 ***fresh[2];
	int		   *nfresh[2];
	int64_t		g;
	int			s;

	for (g = 0; g < c->ngroups; g++)
		if (!c->groups[g].equal)
			open[nopen++] = g;
	for (s = 0; s < 2; s++)
	{
		fresh[s] = pgs_calloc(c->ngroups, sizeof(char **));
		nfresh[s] = pgs_calloc(c->ngroups, sizeof(int));
	}

	/* each open group's rows as read now, copied out of the results */
	for (first = 0; first < nopen; first += KEYS_PER_READ)
	{
		int			n = nopen - first < KEYS_PER_READ ? (int) (nopen - first) : KEYS_PER_READ;
		char	   *sql = pgs_malloc(strlen(head) + strlen(tail) + 8 * (size_t) n + 1);
		const char **values = pgs_malloc(sizeof(char *) * (3 + n));
		char	   *o = sql + sprintf(sql, "%s", head);
		int			k;

		for (k = 0; k < n; k++)
		{
			values[3 + k] = c->groups[open[first + k]].key;
			o += sprintf(o, "%s$%d", k ? "," : "", 4 + k);
		}
		strcpy(o, tail);
		for (s = 0; s < 2; s++)
		{
			values[0] = c->side[s].table;
			values[1] = c->columns[s];
			values[2] = c->key[s];
			side_send(&c->side[s], sql, 3 + n, values);
		}
		while (wait_sides(c) >= 0)
			;
		free(sql);
		free(values);
		for (s = 0; s < 2; s++)
		{
			PGresult   *res = c->side[s].result;
			int			r;

			if (c->side[s].failed)
			{
				free(open);
				return side_error(c, &c->side[s], "reading the differing keys again");
			}
			for (r = 0; r < PQntuples(res); r++)
			{
				int			kg = find_group(c, PQgetvalue(res, r, 0));

				if (kg < 0 || c->groups[kg].equal)
					continue;
				fresh[s][kg] = pgs_realloc(fresh[s][kg], sizeof(char *) * (nfresh[s][kg] + 1));
				fresh[s][kg][nfresh[s][kg]++] = pgs_strdup(PQgetvalue(res, r, 1));
			}
		}
	}
	free(open);
	for (g = 0; g < c->ngroups; g++)
	{
		Group	   *gr = &c->groups[g];

		if (gr->equal)
			continue;
		for (s = 0; s < 2; s++)
		{
			if (nfresh[s][g] > 1)
				qsort(fresh[s][g], nfresh[s][g], sizeof(char *), cmp_str);
			if (!same_hashes(gr->last[s], gr->nlast[s], fresh[s][g], nfresh[s][g]))
				gr->moved = true;
			free_last(gr, s);
			gr->last[s] = fresh[s][g] ? fresh[s][g] : pgs_malloc(sizeof(char *));
			gr->nlast[s] = nfresh[s][g];
		}
		if (same_hashes(gr->last[0], gr->nlast[0], gr->last[1], gr->nlast[1]))
			gr->equal = true;
	}
	for (s = 0; s < 2; s++)
	{
		free(fresh[s]);
		free(nfresh[s]);
	}
	return PGS_EXIT_OK;
}

/*
 * The recheck rounds, once the snapshots have ended: after 0.5 s, 1 s,
 * 2 s, ... each round reads the keys still differing, until all are equal.
 */
int
recheck_rounds(Compare *c)
{
	int			round;
	int			s;

	for (s = 0; s < 2; s++)
		if (side_exec(c, &c->side[s], "COMMIT", 0, NULL) == NULL)
			return side_error(c, &c->side[s], "ending the snapshot");
	c->pass_name = "reading the differing rows again";
	for (round = 1; round <= c->copts->recheck; round++)
	{
		double		delay = 0.5 * (double) (1 << (round - 1 < 5 ? round - 1 : 5));
		int64_t		g;
		int			rc;

		cmp_progress(c);
		if (!nap(delay))
			break;
		rc = recheck(c);
		if (rc != PGS_EXIT_OK)
			return rc;
		c->rechecks = round;
		for (g = 0; g < c->ngroups && c->groups[g].equal; g++)
			;
		if (g == c->ngroups)
			break;
	}
	return PGS_EXIT_OK;
}

/* Reports every group: in flight, or its differences as last read. */
void
report_groups(Compare *c, Counts *n)
{
	int64_t		g;

	for (g = 0; g < c->ngroups; g++)
	{
		Group	   *gr = &c->groups[g];

		if (gr->equal || gr->moved)
			pair_rows(c, gr->first[0], gr->nfirst[0], gr->first[1], gr->nfirst[1], gr->key,
					  "in_flight", n);
		else
			pair_rows(c, gr->last[0], gr->nlast[0], gr->last[1], gr->nlast[1], gr->key, NULL, n);
	}
}

void
free_groups(Compare *c)
{
	int64_t		g;
	int			s;

	for (g = 0; g < c->ngroups; g++)
		for (s = 0; s < 2; s++)
		{
			free_last(&c->groups[g], s);
			free(c->groups[g].first[s]);
		}
	free(c->groups);
}
