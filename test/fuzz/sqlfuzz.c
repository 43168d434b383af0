/*-------------------------------------------------------------------------
 *
 * sqlfuzz.c
 *	  Fuzzes the parts of pg_shift that read SQL a user wrote: shift.lint,
 *	  shift.lint_script, shift._select_list and the fragment checks of
 *	  shift.backfill_create (set, where, select, throttle_query) and
 *	  shift.sync_create (set, select), on a real server.
 *
 * Inputs are mutations of real SQL (statements and fragments read from the
 * corpus files given: pg_regress scripts, example migrations, the README):
 * truncations, token deletions, duplications, swaps and splices, random
 * bytes (non-UTF-8 and NUL included), quotes and comments, deep nesting,
 * huge repetitions, long runs of operator characters, statements glued
 * together.  Input i depends only on the seed and i, so any input can be
 * regenerated alone (--replay).
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

/* ---------------------------------------------------------------- options */

static uint64_t opt_seed = 1;
static long opt_count = 1000;
static double opt_seconds = 0;	/* > 0: run until then instead of --count */
static long opt_replay = -1;
static size_t opt_max_size = 300 * 1024;
static long opt_rss_limit_mb = 256;
static long opt_as_headroom_mb = 1024;
static int	opt_batch = 250;
static const char *opt_log = NULL;
static const char *opt_failures = NULL;	/* directory for long failing inputs */
static int	opt_verbose = 0;
static const char *opt_tripwire = NULL;	/* a sequence user code advances */

/* ---------------------------------------------------------------- helpers */

static void
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

static void *
xmalloc(size_t n)
{
	void	   *p = malloc(n ? n : 1);

	if (p == NULL)
		die("out of memory");
	return p;
}

static char *
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

/* A growable byte buffer (inputs may hold NUL bytes). */
typedef struct Buf
{
	char	   *data;
	size_t		len;
	size_t		cap;
} Buf;

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

static void
buf_add(Buf *b, const char *s, size_t n)
{
	buf_reserve(b, n);
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void
buf_adds(Buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

static void
buf_reset(Buf *b)
{
	b->len = 0;
	buf_reserve(b, 0);
	b->data[0] = '\0';
}

/* Inserts s at pos. */
static void
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
static void
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

/* ---------------------------------------------------------------- random numbers */

/* splitmix64: one state per input, derived from the seed and its number */
typedef struct Rng
{
	uint64_t	s;
} Rng;

static uint64_t
rng_next(Rng *r)
{
	uint64_t	z = (r->s += UINT64_C(0x9E3779B97F4A7C15));

	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

static size_t
rng_below(Rng *r, size_t n)
{
	return n ? (size_t) (rng_next(r) % n) : 0;
}

static int
rng_chance(Rng *r, int percent)
{
	return (int) rng_below(r, 100) < percent;
}

/* ---------------------------------------------------------------- corpus */

typedef struct Corpus
{
	char	  **items;
	size_t		n;
	size_t		cap;
} Corpus;

static Corpus statements;		/* whole statements or scripts */
static Corpus fragments;		/* expressions, conditions, lists */

static void
corpus_add(Corpus *c, const char *s, size_t n)
{
	while (n > 0 && isspace((unsigned char) *s))
		s++, n--;
	while (n > 0 && isspace((unsigned char) s[n - 1]))
		n--;
	if (n < 3)
		return;
	if (c->n == c->cap)
	{
		c->cap = c->cap ? c->cap * 2 : 256;
		c->items = realloc(c->items, c->cap * sizeof(char *));
		if (c->items == NULL)
			die("out of memory");
	}
	c->items[c->n++] = xstrndup(s, n);
}

static int
looks_like_sql(const char *s, size_t n)
{
	static const char *const words[] = {
		"SELECT", "ALTER", "CREATE", "DROP", "UPDATE", "INSERT", "DELETE",
		"VACUUM", "LOCK", "TRUNCATE", "REINDEX", "CLUSTER", "REFRESH", "BEGIN",
		"COMMIT", "SET ", "WITH", "RESET", NULL
	};
	int			i;

	for (i = 0; words[i]; i++)
		if (memmem(s, n, words[i], strlen(words[i])) != NULL)
			return 1;
	return 0;
}

/* Does it look like a fragment: an assignment, a condition or a list? */
static int
looks_like_fragment(const char *s, size_t n)
{
	return n < 400 && !looks_like_sql(s, n) &&
		(memchr(s, '=', n) || memchr(s, '(', n) || memchr(s, ',', n));
}

/* Splits a .sql file into statements (at a ';' that ends a line). */
static void
load_sql(const char *text, size_t len)
{
	size_t		start = 0;
	size_t		i;

	for (i = 0; i < len; i++)
		if (text[i] == ';' && (i + 1 == len || text[i + 1] == '\n'))
		{
			/* drop whole-line -- comments and psql's \ commands at the start */
			size_t		s = start;

			while (s < i)
			{
				while (s < i && isspace((unsigned char) text[s]))
					s++;
				if ((s + 1 < i && text[s] == '-' && text[s + 1] == '-') || text[s] == '\\')
				{
					while (s < i && text[s] != '\n')
						s++;
				}
				else
					break;
			}
			corpus_add(&statements, text + s, i + 1 - s);
			start = i + 1;
		}
}

/*
 * Takes the string literals out of a Lua or Markdown file: "...", '...',
 * [[...]] and ``` fenced blocks; SQL-looking ones are statements, short
 * expression-looking ones fragments.
 */
static void
load_strings(const char *text, size_t len)
{
	size_t		i = 0;

	while (i < len)
	{
		const char *end = NULL;
		size_t		from = 0;

		if (text[i] == '"' || text[i] == '\'')
		{
			char		q = text[i];
			size_t		j = i + 1;

			while (j < len && text[j] != q && text[j] != '\n')
				j += (text[j] == '\\') ? 2 : 1;
			if (j < len && text[j] == q)
			{
				from = i + 1;
				end = text + j;
			}
			else
			{
				i = j;
				continue;
			}
		}
		else if (i + 1 < len && text[i] == '[' && text[i + 1] == '[')
		{
			end = memmem(text + i + 2, len - i - 2, "]]", 2);
			from = i + 2;
		}
		else if (text[i] == '$')
		{
			/* $$...$$ or $tag$...$tag$ */
			size_t		j = i + 1;

			while (j < len && (isalnum((unsigned char) text[j]) || text[j] == '_'))
				j++;
			if (j < len && text[j] == '$')
			{
				end = memmem(text + j + 1, len - j - 1, text + i, j + 1 - i);
				from = j + 1;
			}
		}
		else if (i + 2 < len && strncmp(text + i, "```", 3) == 0)
		{
			const char *nl = memchr(text + i, '\n', len - i);

			if (nl)
			{
				from = nl + 1 - text;
				end = memmem(text + from, len - from, "```", 3);
			}
		}
		if (end == NULL)
		{
			i++;
			continue;
		}
		if (end - (text + from) > 65536)
		{
			/* not a string after all: a quote that was never closed */
			i++;
			continue;
		}
		if (looks_like_sql(text + from, end - (text + from)))
		{
			/* a fenced block may hold several statements */
			load_sql(text + from, end - (text + from));
			corpus_add(&statements, text + from, end - (text + from));
		}
		else if (looks_like_fragment(text + from, end - (text + from)))
			corpus_add(&fragments, text + from, end - (text + from));
		i = (end - text) + 1;
	}
}

static void
load_file(const char *path)
{
	FILE	   *f = fopen(path, "rb");
	Buf			b = {0};
	char		chunk[65536];
	size_t		n;
	const char *dot = strrchr(path, '.');

	if (f == NULL)
		die("cannot read %s: %s", path, strerror(errno));
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_add(&b, chunk, n);
	fclose(f);
	if (b.data == NULL)
		return;
	/* a .sql file's statements, and the SQL in its strings (lint('...')) */
	if (dot && strcmp(dot, ".sql") == 0)
		load_sql(b.data, b.len);
	load_strings(b.data, b.len);
	free(b.data);
}

/* Fragments pg_shift is given in the README and the examples, by kind. */
static const char *const seed_sets[] = {
	"n = lower(t)::int", "m = n + 1, t = upper(t)", "n = coalesce(m, 0) * 2",
	"t = CASE WHEN n > 0 THEN 'a' ELSE 'b' END", "m = (SELECT 1)", NULL
};
static const char *const seed_wheres[] = {
	"id > 10 AND n IS NULL", "t LIKE 'a%'", "m IS DISTINCT FROM n + 1",
	"n IN (1, 2, 3) OR t ~ '^x'", NULL
};
static const char *const seed_selects[] = {
	"id, n + 1", "id::int, length(t)", "id, coalesce(m, n) /* a, b */",
	"id, (SELECT max(n) FROM fuzz.items)", NULL
};
static const char *const seed_throttles[] = {
	"SELECT count(*) < 5 FROM pg_stat_activity", "SELECT true",
	"SELECT pg_is_in_recovery() = false", NULL
};

/* SQL pieces the mutations insert. */
static const char *const specials[] = {
	"'", "\"", "$$", "$x$", "E'\\", "U&'\\0041'", "B'101'", "X'1F'", "--", "/*",
	"*/", ";", "(", ")", "[", "]", ",", "::", "\\", "\n", "\t", "\r", "NULL",
	"DEFAULT", "NOT VALID", "CONCURRENTLY", "BEGIN;", "COMMIT;", "ROLLBACK;",
	"SET lock_timeout = 0;", "SET LOCAL lock_timeout = '2s';", "RESET ALL;",
	"/* shift:allow all */", "-- shift:allow truncate\n", "ONLY", "IF EXISTS",
	"CHECK (n IS NOT NULL)", "USING", "ARRAY[", "ROW(", "CASE WHEN true THEN",
	"END", "$1", "%s", "\xff", "\xc3\x28", "\xe2\x82", "\xf0\x9f\x92\xa9", "é", NULL
};

/* ---------------------------------------------------------------- mutations */

static void
random_bytes(Rng *r, Buf *b, size_t pos)
{
	size_t		n = 1 + rng_below(r, 8);
	char		tmp[8];
	size_t		i;

	for (i = 0; i < n; i++)
		tmp[i] = (char) rng_below(r, 256);
	buf_insert(b, pos, tmp, n);
}

/* The token boundaries of b: starts of runs of non-blanks. */
static size_t
token_span(Rng *r, const Buf *b, size_t *len)
{
	size_t		pos;
	size_t		end;

	if (b->len == 0)
	{
		*len = 0;
		return 0;
	}
	pos = rng_below(r, b->len);
	while (pos > 0 && !isspace((unsigned char) b->data[pos - 1]))
		pos--;
	end = pos;
	while (end < b->len && !isspace((unsigned char) b->data[end]))
		end++;
	/* sometimes a few tokens */
	if (rng_chance(r, 30))
	{
		int			more = 1 + (int) rng_below(r, 4);

		while (more-- > 0 && end < b->len)
		{
			while (end < b->len && isspace((unsigned char) b->data[end]))
				end++;
			while (end < b->len && !isspace((unsigned char) b->data[end]))
				end++;
		}
	}
	*len = end - pos;
	return pos;
}

/* Repeats piece until b would be about target bytes long. */
static void
repeat_to(Buf *b, size_t pos, const char *piece, size_t plen, size_t target)
{
	Buf			rep = {0};

	if (plen == 0)
		return;
	buf_reset(&rep);
	while (rep.len + b->len + plen <= target)
		buf_add(&rep, piece, plen);
	buf_insert(b, pos, rep.data, rep.len);
	free(rep.data);
}

/*
 * How long a huge input should be: mostly up to a tenth of the budget,
 * sometimes up to all of it, sometimes just over a limit of pg_shift's.
 */
static size_t
huge_size(Rng *r)
{
	static const size_t limits[] = {128 * 1024, 512 * 1024, 1024 * 1024};
	int			k = (int) rng_below(r, 10);

	if (k < 6)
		return 1024 + rng_below(r, opt_max_size / 10 + 1);
	if (k < 9)
		return 1024 + rng_below(r, opt_max_size + 1);
	/* the edge of a limit, if the budget reaches it */
	{
		size_t		l = limits[rng_below(r, 3)];

		if (l + 64 > opt_max_size)
			return opt_max_size;
		return l - 32 + rng_below(r, 64);
	}
}

/* How often each mutation is picked, by its number in mutate(). */
#define lengthof_weights() (sizeof(mutation_weights) / sizeof(mutation_weights[0]))
static const int mutation_weights[] = {8, 10, 10, 8, 10, 4, 6, 6, 6, 5, 3, 10, 6, 4};

static int
pick_mutation(Rng *r)
{
	int			total = 0;
	int			k;

	for (k = 0; k < (int) lengthof_weights(); k++)
		total += mutation_weights[k];
	k = (int) rng_below(r, total);
	total = 0;
	while (k >= mutation_weights[total])
		k -= mutation_weights[total++];
	return total;
}

static void
mutate(Rng *r, Buf *b, const Corpus *pool)
{
	size_t		pos = b->len ? rng_below(r, b->len + 1) : 0;
	size_t		len;
	size_t		at;

	switch (pick_mutation(r))
	{
		case 0:					/* truncate */
			if (b->len)
				buf_delete(b, pos, b->len - pos);
			break;
		case 1:					/* delete tokens */
			at = token_span(r, b, &len);
			buf_delete(b, at, len);
			break;
		case 2:					/* duplicate tokens */
			at = token_span(r, b, &len);
			{
				char	   *copy = xstrndup(b->data + at, len);

				buf_insert(b, at, copy, len);
				buf_insert(b, at + len, " ", 1);
				free(copy);
			}
			break;
		case 3:					/* swap two token spans */
			{
				size_t		l1,
							l2;
				size_t		a1 = token_span(r, b, &l1);
				char	   *t1 = xstrndup(b->data + a1, l1);
				size_t		a2;
				char	   *t2;

				buf_delete(b, a1, l1);
				a2 = token_span(r, b, &l2);
				t2 = xstrndup(b->data + a2, l2);
				buf_delete(b, a2, l2);
				buf_insert(b, a2, t1, l1);
				buf_insert(b, a1 <= b->len ? a1 : b->len, t2, l2);
				free(t1);
				free(t2);
			}
			break;
		case 4:					/* splice tokens of another input */
			if (pool->n)
			{
				Buf			other = {0};

				buf_reset(&other);
				buf_adds(&other, pool->items[rng_below(r, pool->n)]);
				at = token_span(r, &other, &len);
				buf_insert(b, pos, " ", 1);
				buf_insert(b, pos + 1, other.data + at, len);
				free(other.data);
			}
			break;
		case 5:					/* random bytes */
			random_bytes(r, b, pos);
			break;
		case 6:					/* quotes, comments, keywords, odd bytes */
		case 7:
			{
				size_t		k = 0;

				while (specials[k])
					k++;
				k = rng_below(r, k + 1);
				if (specials[k] == NULL)
					buf_insert(b, pos, "", 1);	/* a NUL byte */
				else
					buf_insert(b, pos, specials[k], strlen(specials[k]));
			}
			break;
		case 8:					/* deep nesting around a span */
			{
				static const char *const open[] = {"(", "ARRAY[", "ROW(", "CASE WHEN true THEN ", "/* ", "coalesce("};
				static const char *const close[] = {")", "]", ")", " END", " */", ", 1)"};
				int			k = (int) rng_below(r, 6);
				size_t		depth = 1 + rng_below(r, rng_chance(r, 20) ? 20000 : 50);
				Buf			o = {0};
				Buf			c = {0};
				size_t		i;

				at = token_span(r, b, &len);
				buf_reset(&o);
				buf_reset(&c);
				for (i = 0; i < depth && o.len + c.len + b->len < opt_max_size; i++)
				{
					buf_adds(&o, open[k]);
					buf_adds(&c, close[k]);
				}
				buf_insert(b, at + len, c.data, c.len);
				buf_insert(b, at, o.data, o.len);
				free(o.data);
				free(c.data);
			}
			break;
		case 9:					/* huge repetition of a span */
			at = token_span(r, b, &len);
			if (len)
			{
				char	   *piece = xstrndup(b->data + at, len);
				Buf			p = {0};

				buf_reset(&p);
				buf_add(&p, piece, len);
				buf_add(&p, rng_chance(r, 50) ? ", " : " ", rng_chance(r, 50) ? 2 : 1);
				repeat_to(b, at, p.data, p.len, huge_size(r));
				free(piece);
				free(p.data);
			}
			break;
		case 10:				/* a run of operator characters */
			{
				static const char ops[] = "~!@#^&|`?+-*/%<>=";
				size_t		n = 1 + rng_below(r, rng_chance(r, 10) ? 20000 : 200);
				char	   *run = xmalloc(n);
				size_t		i;

				for (i = 0; i < n; i++)
					run[i] = ops[rng_below(r, sizeof(ops) - 1)];
				if (rng_chance(r, 30))
					for (i = 0; i + 1 < n; i += 2)
						run[i] = '/', run[i + 1] = '*';
				buf_insert(b, pos, run, n);
				free(run);
			}
			break;
		case 11:				/* glue another input on */
			if (pool->n)
			{
				const char *s = pool->items[rng_below(r, pool->n)];

				buf_adds(b, rng_chance(r, 70) ? ";\n" : " ");
				buf_adds(b, s);
			}
			break;
		case 12:				/* change case or blanks */
			at = token_span(r, b, &len);
			{
				size_t		i;

				for (i = at; i < at + len; i++)
					b->data[i] = rng_chance(r, 50) ? toupper((unsigned char) b->data[i]) :
						tolower((unsigned char) b->data[i]);
			}
			break;
		case 13:				/* a huge repetition of the whole input, as a script */
			if (b->len && b->len < 4096)
			{
				char	   *piece = xstrndup(b->data, b->len);
				Buf			p = {0};

				buf_reset(&p);
				buf_add(&p, piece, strlen(piece));
				buf_adds(&p, ";\n");
				repeat_to(b, b->len, p.data, p.len, huge_size(r));
				free(piece);
				free(p.data);
			}
			break;
	}
	if (b->len > opt_max_size)
		buf_delete(b, opt_max_size, b->len - opt_max_size);
}

/* ---------------------------------------------------------------- targets */

typedef enum Target
{
	T_LINT, T_LINT_SCRIPT, T_SELECT_LIST, T_BF_SET, T_BF_WHERE, T_BF_SELECT,
	T_BF_THROTTLE, T_SYNC_SET, T_SYNC_SELECT, T_COUNT,
	/* --self-test only: inputs the watch must catch */
	T_CONTROL_MEMORY, T_CONTROL_CAP, T_CONTROL_TIME
} Target;

static const char *const target_names[] = {
	"lint", "lint_script", "select_list", "backfill_set", "backfill_where",
	"backfill_select", "backfill_throttle", "sync_set", "sync_select", "-",
	"control_memory", "control_cap", "control_time"
};

/* The call, with $1 the input (and $2..$4 lint's other arguments). */
static const char *
target_sql(Target t)
{
	switch (t)
	{
		case T_LINT:
			return "SELECT count(*) FROM shift.lint($1, $2)";
		case T_LINT_SCRIPT:
			return "SELECT count(*) FROM shift.lint_script(string_to_array($1, chr(30)), "
				"string_to_array($2, chr(30)), string_to_array($3, ',')::int[], $4)";
		case T_SELECT_LIST:
			return "SELECT array_length(shift._select_list($1), 1)";
		case T_BF_SET:
			return "SELECT shift.backfill_create('fz', 'fuzz.items', set => $1)";
		case T_BF_WHERE:
			return "SELECT shift.backfill_create('fz', 'fuzz.items', set => 'n = 1', \"where\" => $1)";
		case T_BF_SELECT:
			return "SELECT shift.backfill_create('fz', 'fuzz.items', \"into\" => 'fuzz.items_copy', "
				"columns => ARRAY['id', 'n'], \"select\" => $1)";
		case T_BF_THROTTLE:
			return "SELECT shift.backfill_create('fz', 'fuzz.items', set => 'n = 1', throttle_query => $1)";
		case T_SYNC_SET:
			return "SELECT shift.sync_create('fz', 'fuzz.items', set => $1)";
		case T_SYNC_SELECT:
			return "SELECT shift.sync_create('fz', 'fuzz.items', \"into\" => 'fuzz.items_copy', "
				"columns => ARRAY['id', 'n'], \"select\" => $1)";
		case T_CONTROL_MEMORY:
			return "SELECT length(repeat(repeat('x', 1024 * 1024), 160))";
		case T_CONTROL_CAP:
			/* each lpad reserves 560 MB (4 bytes a character) and fills 140 MB */
			return "SELECT length(lpad('x', 140000000, 'y') || lpad('x', 140000000, 'y'))";
		case T_CONTROL_TIME:
			return "SELECT pg_sleep(2)";
		default:
			return NULL;
	}
}

static int
in_transaction(Target t)
{
	return t >= T_BF_SET && t < T_COUNT;
}

/* One generated input: the target and up to four parameters. */
typedef struct Input
{
	long		number;
	Target		target;
	Buf			param[4];
	int			null[4];
	int			nparams;
} Input;

static const char *
pick(Rng *r, const char *const *list)
{
	size_t		n = 0;

	while (list[n])
		n++;
	return list[rng_below(r, n)];
}

static void
base_text(Rng *r, Buf *b, Target t)
{
	buf_reset(b);
	if (t == T_LINT || t == T_LINT_SCRIPT)
	{
		if (statements.n)
			buf_adds(b, statements.items[rng_below(r, statements.n)]);
		return;
	}
	/* a fragment: a seed of its kind, one from the files, or a piece of a statement */
	switch (rng_below(r, 8))
	{
		case 0:
		case 1:
		case 2:
		case 3:
		case 4:
			buf_adds(b, pick(r, t == T_BF_SET || t == T_SYNC_SET ? seed_sets :
							 t == T_BF_WHERE ? seed_wheres :
							 t == T_BF_THROTTLE ? seed_throttles : seed_selects));
			break;
		case 5:
		case 6:
			if (fragments.n)
				buf_adds(b, fragments.items[rng_below(r, fragments.n)]);
			break;
		default:
			if (statements.n)
			{
				Buf			s = {0};
				size_t		at,
							len;

				buf_reset(&s);
				buf_adds(&s, statements.items[rng_below(r, statements.n)]);
				at = token_span(r, &s, &len);
				buf_add(b, s.data + at, len);
				free(s.data);
			}
			break;
	}
}

static void
generate(Input *in, long number)
{
	Rng			r;
	int			i;
	int			k;
	int			mutations;

	r.s = opt_seed * UINT64_C(0x100000001B3) ^ (uint64_t) number * UINT64_C(0x9E3779B97F4A7C15);
	(void) rng_next(&r);
	in->number = number;
	{
		/* weights: lint and the splitter most, the slow fragment calls less */
		static const int weights[T_COUNT] = {30, 14, 16, 8, 7, 6, 4, 8, 7};
		int			total = 0;

		for (k = 0; k < T_COUNT; k++)
			total += weights[k];
		k = (int) rng_below(&r, total);
		for (in->target = 0; k >= weights[in->target]; in->target++)
			k -= weights[in->target];
	}
	for (i = 0; i < 4; i++)
	{
		buf_reset(&in->param[i]);
		in->null[i] = 1;
	}
	in->nparams = in->target == T_LINT ? 2 : in->target == T_LINT_SCRIPT ? 4 : 1;

	base_text(&r, &in->param[0], in->target);
	/* mostly one or two mutations: the input stays close to real SQL */
	k = (int) rng_below(&r, 100);
	mutations = k < 20 ? 0 : k < 60 ? 1 : k < 85 ? 2 : 3 + (int) rng_below(&r, 2);
	for (i = 0; i < mutations; i++)
		mutate(&r, &in->param[0], in->target <= T_LINT_SCRIPT ? &statements : &fragments);
	in->null[0] = rng_chance(&r, 1);

	if (in->target == T_LINT)
	{
		static const char *const timeouts[] = {"0", "1s", "2s", "500ms", "soon", "-1", "5min"};

		if (rng_chance(&r, 40))
		{
			buf_adds(&in->param[1], pick(&r, timeouts));
			in->null[1] = 0;
		}
	}
	else if (in->target == T_LINT_SCRIPT)
	{
		/* parts: split the input at some blanks; each part may get a timeout and a phase */
		Buf		   *p = &in->param[0];
		size_t		i2;
		int			parts = 1;

		for (i2 = 0; i2 < p->len; i2++)
			if (p->data[i2] == '\n' && rng_chance(&r, 30))
			{
				p->data[i2] = 30;
				parts++;
			}
		if (rng_chance(&r, 60))
		{
			static const char *const timeouts[] = {"", "1s", "2s", "0", "later"};
			int			k;

			for (k = 0; k < parts + (rng_chance(&r, 3) ? 1 : 0); k++)
			{
				if (k)
					buf_add(&in->param[1], "\036", 1);
				buf_adds(&in->param[1], pick(&r, timeouts));
			}
			in->null[1] = 0;
		}
		if (rng_chance(&r, 60))
		{
			int			k;
			char		num[16];

			for (k = 0; k < parts + (rng_chance(&r, 3) ? 1 : 0); k++)
			{
				snprintf(num, sizeof(num), "%s%d", k ? "," : "", 1 + (int) rng_below(&r, 3));
				buf_adds(&in->param[2], num);
			}
			in->null[2] = 0;
		}
		if (rng_chance(&r, 50))
		{
			buf_adds(&in->param[3], rng_chance(&r, 50) ? "0" : "1s");
			in->null[3] = 0;
		}
	}
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
			self_test = 1;
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
			print_only = atol(v);
		else if (strcmp(o, "--tripwire") == 0)
			opt_tripwire = v;
		else
			usage();
	}
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
	{
		/* each control must fail, through the same watch as every input */
		Target		controls[] = {T_CONTROL_MEMORY, T_CONTROL_CAP, T_CONTROL_TIME};
		int			kinds[] = {FAIL_MEMORY, FAIL_OUT_OF_MEMORY, FAIL_TIME};
		const char *what[] = {"memory", "cap", "time"};
		int			missed = 0;

		for (i = 0; i < 3; i++)
		{
			int			caught;

			in.number = -1 - i;
			in.target = controls[i];
			in.nparams = 0;
			/* the memory controls may take longer than the time limit */
			if (controls[i] != T_CONTROL_TIME)
				PQclear(exec_ok("SET statement_timeout = '60s'"));
			caught = (run_input(&in, &st) & kinds[i]) != 0;
			PQclear(exec_ok("SET statement_timeout = '1s'"));
			printf("self-test: %s: %s\n", what[i], caught ? "caught" : "MISSED");
			missed += !caught;
		}
		PQfinish(conn);
		return missed ? 1 : 0;
	}
	printf("# sqlfuzz: seed %llu, %zu statements and %zu fragments in the corpus, backend %d\n",
		   (unsigned long long) opt_seed, statements.n, fragments.n, backend_pid);
	fflush(stdout);
	start = now_ms();
	for (n = opt_replay >= 0 ? opt_replay : 0; !stop; n++)
	{
		Buf			crashes = {0};

		if (opt_replay >= 0 ? n > opt_replay :
			opt_seconds > 0 ? now_ms() - start > opt_seconds * 1000 : n >= opt_count)
			break;
		generate(&in, n);
		if (run_input(&in, &st) && PQstatus(conn) != CONNECTION_OK)
			stop = 1;
		if ((n + 1) % opt_batch == 0 || stop || opt_replay >= 0)
		{
			PGresult   *res;

			buf_reset(&crashes);
			if (log_crashes(&crashes))
			{
				printf("# FAILED: the server log tells of a crashed backend after input %ld:\n%s",
					   n, crashes.data);
				st.failures++;
				stop = 1;
			}
			res = PQexec(conn, "SELECT 1");
			if (PQresultStatus(res) != PGRES_TUPLES_OK)
			{
				printf("# FAILED: the server does not answer after input %ld: %s\n", n,
					   PQerrorMessage(conn));
				st.failures++;
				stop = 1;
			}
			PQclear(res);
			if ((n + 1) % (opt_batch * 40) == 0)
			{
				printf("# %ld inputs, %.0f/s, %ld failures\n", st.inputs,
					   st.inputs / ((now_ms() - start) / 1000), st.failures);
				fflush(stdout);
			}
		}
		free(crashes.data);
	}
	printf("sqlfuzz: inputs=%ld accepted=%ld refused=%ld failures=%ld seconds=%.0f "
		   "per_second=%.0f max_ms=%.0f (input %ld) max_cpu_ms=%ld (input %ld) "
		   "max_growth_mb=%.1f (input %ld) max_bytes=%zu",
		   st.inputs, st.accepted, st.refused, st.failures, (now_ms() - start) / 1000,
		   st.inputs / ((now_ms() - start) / 1000 + 1e-9), st.max_ms, st.max_ms_input,
		   st.max_cpu_ms, st.max_cpu_input, st.max_growth_kb / 1024.0, st.max_growth_input,
		   st.max_bytes);
	for (i = 0; i < T_COUNT; i++)
		printf(" %s=%ld", target_names[i], st.per_target[i]);
	printf(" sqlstate_classes=");
	for (i = 0; i < 64; i++)
		if (st.classes[i][0])
			printf("%c%c:%ld,", st.classes[i][0], st.classes[i][1], st.by_class[i]);
	printf("\n");
	PQfinish(conn);
	return st.failures ? 1 : 0;
}
